//! The command actuator running real programs: a "cluster" of directories,
//! one per host, one file per VM saying `running` or `paused`, moved by
//! `sh` one-liners. Checks placeholder filling, exit codes, the confirm
//! protocol (0 running, 1 not yet), and that a command past its timeout is
//! killed and the migration undone.

use std::{path::Path, sync::Arc, time::Duration};

use hyperwatch::{
    migration::{
        Executor, ExecutorConfig, MoveStatus, Stage,
        command::{CommandActuator, CommandTemplates},
    },
    planner::{Change, ClusterFigures, Migration, MigrationPlan, MoveKind, MoveReason, PlanMode},
};

/// Templates over `dir`: `$0` is the cluster directory in every script.
fn templates(dir: &Path) -> CommandTemplates {
    let d = dir.display().to_string();
    let sh = |script: &str, args: &[&str]| {
        let mut argv = vec![
            "sh".to_owned(),
            "-c".to_owned(),
            script.to_owned(),
            d.clone(),
        ];
        argv.extend(args.iter().map(|a| (*a).to_owned()));
        argv
    };
    CommandTemplates {
        // VM `slow` takes 31.7 s to copy (an odd figure, to find the sleep
        // among the machine's processes); every VM first checks it is there.
        migrate: sh(
            r#"test -f "$0/$1/$2" || exit 3; [ "$2" = slow ] && sleep 31.7; cp "$0/$1/$2" "$0/$3/$2" && echo paused > "$0/$1/$2""#,
            &["{source}", "{vm}", "{destination}"],
        ),
        // VM `mute` never comes up on its destination.
        confirm: sh(
            r#"[ "$2" != mute ] && grep -qx running "$0/$1/$2""#,
            &["{destination}", "{vm}"],
        ),
        release: vec!["rm".to_owned(), format!("{d}/{{source}}/{{vm}}")],
        abort: sh(
            r#"rm -f "$0/$3/$2"; echo running > "$0/$1/$2""#,
            &["{source}", "{vm}", "{destination}"],
        ),
        restart: Vec::new(),
    }
}

fn migration(vm: &str, source: &str, destination: &str) -> Migration {
    let zero = Change {
        before: 0.0,
        after: 0.0,
    };
    Migration {
        vm: vm.to_owned(),
        source: source.to_owned(),
        destination: destination.to_owned(),
        kind: MoveKind::Live,
        depends_on: Vec::new(),
        cpu_cores: 1.0,
        memory_bytes: 1 << 30,
        bytes_to_copy: 1 << 29,
        reason: MoveReason::Maintenance,
        source_utilization: zero,
        destination_utilization: zero,
    }
}

fn state(dir: &Path, host: &str, vm: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(host).join(vm))
        .ok()
        .map(|s| s.trim().to_owned())
}

/// Whether a `sleep 31.7` still runs on the machine after up to a second
/// (SIGKILL is delivered asynchronously).
fn sleep_running() -> bool {
    let running = || {
        std::fs::read_dir("/proc").unwrap().flatten().any(|entry| {
            std::fs::read(entry.path().join("cmdline"))
                .is_ok_and(|cmdline| cmdline == b"sleep\x0031.7\x00")
        })
    };
    for _ in 0..50 {
        if !running() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

#[tokio::test]
async fn templated_commands_migrate_confirm_release_and_undo() {
    let dir = tempfile::tempdir().unwrap();
    for host in ["a", "b"] {
        std::fs::create_dir(dir.path().join(host)).unwrap();
    }
    for vm in ["web", "slow", "mute"] {
        std::fs::write(dir.path().join("a").join(vm), "running\n").unwrap();
    }
    let figures = ClusterFigures {
        spread: 0.0,
        mean_utilization: 0.0,
        max_utilization: 0.0,
        hosts_over_threshold: 0,
    };
    let plan = MigrationPlan {
        mode: PlanMode::Failover,
        migrations: vec![
            migration("web", "a", "b"),
            migration("slow", "a", "b"),
            migration("mute", "a", "b"),
            migration("absent", "a", "b"),
        ],
        unplaced: Vec::new(),
        before: figures,
        after: figures,
    };
    let config = ExecutorConfig {
        migration_timeout_secs: 2,
        confirm_timeout_secs: 2,
        confirm_poll_ms: 100,
        max_per_source: 4,
        max_per_destination: 4,
        ..ExecutorConfig::default()
    };
    let actuator = Arc::new(CommandActuator::new(templates(dir.path())));
    let report = tokio::time::timeout(
        Duration::from_secs(20),
        Executor::new(config, actuator).run(&plan),
    )
    .await
    .expect("bounded by the step timeouts");
    let status: Vec<&MoveStatus> = report.outcomes.iter().map(|o| &o.status).collect();

    assert_eq!(status[0], &MoveStatus::Done);
    assert_eq!(state(dir.path(), "b", "web").as_deref(), Some("running"));
    assert_eq!(
        state(dir.path(), "a", "web"),
        None,
        "released after the destination ran it"
    );

    match status[1] {
        MoveStatus::Failed {
            stage: Stage::Transfer,
            error,
            restored: true,
        } => assert!(error.contains("not complete after 2s"), "{error}"),
        other => panic!("slow: {other:?}"),
    }
    assert!(
        report.outcomes[1].elapsed_ms < 10_000,
        "the 31.7 s copy was stopped at its timeout"
    );
    assert!(
        !sleep_running(),
        "the timed-out command's children were killed too"
    );
    assert_eq!(state(dir.path(), "a", "slow").as_deref(), Some("running"));
    assert_eq!(state(dir.path(), "b", "slow"), None);

    match status[2] {
        MoveStatus::Failed {
            stage: Stage::Confirm,
            restored: true,
            ..
        } => {}
        other => panic!("mute: {other:?}"),
    }
    assert_eq!(
        state(dir.path(), "a", "mute").as_deref(),
        Some("running"),
        "the paused source was resumed"
    );
    assert_eq!(state(dir.path(), "b", "mute"), None);

    match status[3] {
        MoveStatus::Failed {
            stage: Stage::Transfer,
            error,
            ..
        } => assert!(error.contains("exit code 3"), "{error}"),
        other => panic!("absent: {other:?}"),
    }
}
