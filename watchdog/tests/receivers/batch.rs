//! The batch channel running real scripts: the incident in the environment
//! and as JSON on stdin, a hanging script killed with its children at the
//! timeout, a failing script recorded in the audit trail and escalated, and
//! EX_TEMPFAIL retried.

use std::{os::unix::fs::PermissionsExt, path::Path, time::Duration};

use hyperwatch::{
    channels::{Message, SendError, Status},
    outbox::store::State,
};
use serde_json::Value;

use super::support::{Harness, channels, notification, wait_for};

const DELIVERY_TIMEOUT: Duration = Duration::from_secs(20);

fn script(dir: &Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn script_gets_the_incident_in_its_environment_and_on_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().display().to_string();
    let command = script(
        dir.path(),
        "notify.sh",
        r#"env | grep '^HYPERWATCH_' | sort > "$OUT/env"
cat > "$OUT/stdin.json"
echo "ticket 4711 opened""#,
    );
    let h = Harness::start(&format!(
        r#"
        [channels.runbook]
        type = "batch"
        command = "{command}"
        env = {{ OUT = "{out}" }}
        "#
    ));
    h.enqueue(&notification("inc-batch", Status::Problem), &["runbook"])
        .await;
    let d = wait_for("the script's delivery", DELIVERY_TIMEOUT, async || {
        let d = h
            .outbox
            .find("inc-batch:L1:problem", "runbook", "")
            .await
            .unwrap()?;
        (d.state == State::Delivered).then_some(d)
    })
    .await;

    let env = std::fs::read_to_string(dir.path().join("env")).unwrap();
    for line in [
        "HYPERWATCH_INCIDENT_ID=inc-batch",
        "HYPERWATCH_LEVEL=1",
        "HYPERWATCH_STATUS=problem",
        "HYPERWATCH_SEVERITY=critical",
        "HYPERWATCH_TARGET=host hv-12",
        "HYPERWATCH_IDEMPOTENCY_KEY=inc-batch:L1:problem",
        "HYPERWATCH_LABEL_RACK=r7",
        "HYPERWATCH_TEST=0",
    ] {
        assert!(env.lines().any(|l| l == line), "{line} missing in:\n{env}");
    }
    let stdin: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("stdin.json")).unwrap())
            .unwrap();
    assert_eq!(stdin["incident_id"], "inc-batch");
    assert_eq!(stdin["summary"], "heartbeats stopped 45 s ago");
    assert_eq!(stdin["labels"]["rack"], "r7");

    let audit = h.outbox.attempts(d.id).await.unwrap();
    assert_eq!(audit.len(), 1);
    assert!(audit[0].accepted);
    assert!(
        audit[0].detail.starts_with("exit status 0"),
        "{}",
        audit[0].detail
    );
    assert!(
        audit[0].detail.contains("ticket 4711 opened"),
        "{}",
        audit[0].detail
    );
    h.stop().await;
}

/// Whether a process is gone (or a zombie no one has reaped yet).
fn gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_script_is_killed_with_its_children_at_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().display().to_string();
    let command = script(
        dir.path(),
        "hang.sh",
        r#"sleep 300 &
echo $! > "$OUT/child.pid"
echo $$ > "$OUT/script.pid"
echo "started"
sleep 300"#,
    );
    let set = channels(&format!(
        r#"
        [channels.hang]
        type = "batch"
        command = "{command}"
        timeout = "1s"
        env = {{ OUT = "{out}" }}
        "#
    ));
    let entry = set.get("hang").unwrap();
    let started = std::time::Instant::now();
    let result = entry
        .channel
        .send(&Message::single(
            notification("inc-hang", Status::Problem),
            "",
        ))
        .await;
    let took = started.elapsed();
    let err = result.expect_err("a hanging script does not deliver");
    assert!(
        matches!(err, SendError::Transient(_)),
        "a timeout is retried: {err}"
    );
    let text = err.to_string();
    assert!(text.contains("did not finish within 1s"), "{text}");
    assert!(
        text.contains("started"),
        "output before the kill is kept: {text}"
    );
    assert!(
        took < Duration::from_secs(10),
        "killed at the timeout, took {took:?}"
    );
    let pid = |f: &str| {
        std::fs::read_to_string(dir.path().join(f))
            .unwrap()
            .trim()
            .parse::<i32>()
            .unwrap()
    };
    let (script_pid, child_pid) = (pid("script.pid"), pid("child.pid"));
    wait_for(
        "the script and its child to die",
        Duration::from_secs(5),
        async || (gone(script_pid) && gone(child_pid)).then_some(()),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_script_is_recorded_and_escalated() {
    let dir = tempfile::tempdir().unwrap();
    let command = script(
        dir.path(),
        "fail.sh",
        "echo 'cannot reach the ticket system' >&2\nexit 3",
    );
    let console_file = dir.path().join("console");
    std::fs::write(&console_file, "").unwrap();
    let h = Harness::start(&format!(
        r#"
        [channels.console]
        type = "console"
        tty = "{}"
        syslog = false
        [channels.runbook]
        type = "batch"
        command = "{command}"
        "#,
        console_file.display()
    ));
    h.enqueue(&notification("inc-fail", Status::Problem), &["runbook"])
        .await;
    let d = wait_for("the failure to be recorded", DELIVERY_TIMEOUT, async || {
        let d = h
            .outbox
            .find("inc-fail:L1:problem", "runbook", "")
            .await
            .unwrap()?;
        (d.state == State::Failed).then_some(d)
    })
    .await;
    assert_eq!(d.attempts, 1, "a script's own failure is not retried");
    let audit = h.outbox.attempts(d.id).await.unwrap();
    assert!(!audit[0].accepted);
    assert!(
        audit[0].detail.contains("failed with exit status 3"),
        "{}",
        audit[0].detail
    );
    assert!(
        audit[0].detail.contains("cannot reach the ticket system"),
        "{}",
        audit[0].detail
    );
    wait_for("the console notice", DELIVERY_TIMEOUT, async || {
        std::fs::read_to_string(&console_file)
            .unwrap()
            .contains("NOT DELIVERED via runbook")
            .then_some(())
    })
    .await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ex_tempfail_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().display().to_string();
    let command = script(
        dir.path(),
        "flaky.sh",
        r#"if [ ! -e "$OUT/tried" ]; then touch "$OUT/tried"; echo busy >&2; exit 75; fi
echo done"#,
    );
    let h = Harness::start(&format!(
        r#"
        [channels.flaky]
        type = "batch"
        command = "{command}"
        env = {{ OUT = "{out}" }}
        [channels.flaky.delivery]
        initial_backoff = "100ms"
        "#
    ));
    h.enqueue(&notification("inc-flaky", Status::Problem), &["flaky"])
        .await;
    let d = wait_for("the second run to deliver", DELIVERY_TIMEOUT, async || {
        let d = h
            .outbox
            .find("inc-flaky:L1:problem", "flaky", "")
            .await
            .unwrap()?;
        (d.state == State::Delivered).then_some(d)
    })
    .await;
    assert_eq!(d.attempts, 2);
    h.stop().await;
}
