//! A real live migration on this machine: a small qemu VM (no disk; KVM when
//! /dev/kvm can be opened, TCG otherwise) and a destination qemu waiting
//! with `-incoming`; the planner empties the source host (maintenance) and
//! the executor migrates the VM through QMP. Afterwards the destination
//! runs the VM and the source qemu has exited. A second test migrates to a
//! destination that is not listening: the migration fails and the VM keeps
//! running at its source.
//!
//! Needs Debian's qemu-system-x86 (`cargo xtask setup` installs it).

use std::{
    collections::BTreeMap,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use hyperwatch::{
    migration::{
        Executor, ExecutorConfig, MoveStatus, Stage,
        qemu::{QemuActuator, QemuEndpoints},
        qmp::Qmp,
    },
    planner::{
        ClusterSnapshot, Host, HostState, MigrationPlan, MoveReason, PlannerSettings, Vm, rebalance,
    },
};

const QEMU: &str = "qemu-system-x86_64";
/// Bound on a qemu process creating its QMP socket, or exiting.
const PROCESS_WAIT: Duration = Duration::from_secs(15);
/// Bound on a whole test: 64 MiB copy over loopback takes well under a
/// second with KVM and a few with TCG.
const TEST_LIMIT: Duration = Duration::from_secs(60);

/// A qemu process, killed when dropped.
struct Qemu {
    child: Child,
    qmp: PathBuf,
}

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Qemu {
    /// A diskless 64 MiB q35 machine with its QMP socket in `dir`.
    fn start(dir: &Path, name: &str, incoming: Option<&str>) -> Qemu {
        let qmp = dir.join(format!("{name}.qmp"));
        let accel = if std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm")
            .is_ok()
        {
            "kvm"
        } else {
            "tcg"
        };
        let mut command = Command::new(QEMU);
        command
            .args([
                "-nodefaults",
                "-display",
                "none",
                "-m",
                "64",
                "-machine",
                "q35",
                "-accel",
                accel,
                "-name",
                name,
            ])
            .arg("-qmp")
            .arg(format!("unix:{},server=on,wait=off", qmp.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(uri) = incoming {
            command.args(["-incoming", uri]);
        }
        let child = command.spawn().unwrap_or_else(|e| {
            panic!("starting {QEMU} ({e}); `cargo xtask setup` installs qemu-system-x86")
        });
        let qemu = Qemu { child, qmp };
        let deadline = Instant::now() + PROCESS_WAIT;
        while !qemu.qmp.exists() {
            assert!(
                Instant::now() < deadline,
                "{name}: no QMP socket after {PROCESS_WAIT:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        qemu
    }

    /// Waits (bounded) for the process to end.
    fn wait_exit(&mut self) -> Option<ExitStatus> {
        let deadline = Instant::now() + PROCESS_WAIT;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

async fn run_state(socket: &Path) -> String {
    let mut qmp = Qmp::connect(socket).await.expect("QMP connect");
    let status = qmp
        .execute("query-status", None)
        .await
        .expect("query-status");
    status["status"].as_str().unwrap_or_default().to_owned()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The planner's view: `web` runs on `src`, which goes into maintenance;
/// `dst` is the only other host.
fn maintenance_plan() -> (ClusterSnapshot, MigrationPlan) {
    let host = |id: &str, state| Host {
        id: id.to_owned(),
        cores: 4,
        memory_bytes: 8 << 30,
        cpu_samples: Vec::new(),
        memory_samples: Vec::new(),
        state,
        cpu_threshold: None,
        headroom: None,
    };
    let snapshot = ClusterSnapshot {
        hosts: vec![
            host("src", HostState::Maintenance),
            host("dst", HostState::Healthy),
        ],
        vms: vec![Vm {
            id: "web".to_owned(),
            host: "src".to_owned(),
            vcpus: 1,
            memory_bytes: 64 << 20,
            cpu_samples: vec![0.1; 10],
            memory_samples: vec![32 << 20; 10],
            tenant: "demo".to_owned(),
            labels: BTreeMap::new(),
            priority: 0,
        }],
        constraints: Default::default(),
    };
    let plan = rebalance(&snapshot, &PlannerSettings::default()).expect("valid snapshot");
    (snapshot, plan)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_executor_live_migrates_a_qemu_vm_through_qmp() {
    tokio::time::timeout(TEST_LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let uri = format!("tcp:127.0.0.1:{port}");
        let mut source = Qemu::start(dir.path(), "source", None);
        let destination = Qemu::start(dir.path(), "destination", Some(&uri));
        assert_eq!(run_state(&source.qmp).await, "running");
        assert_eq!(run_state(&destination.qmp).await, "inmigrate");

        let (_, plan) = maintenance_plan();
        assert_eq!(plan.migrations.len(), 1);
        assert_eq!(plan.migrations[0].reason, MoveReason::Maintenance);
        let actuator = Arc::new(QemuActuator::new());
        actuator.register(
            "web",
            QemuEndpoints {
                source_qmp: source.qmp.clone(),
                destination_qmp: destination.qmp.clone(),
                migrate_uri: uri,
            },
        );

        // Rebalance plans only report until execution is switched on.
        let dry = Executor::new(ExecutorConfig::default(), actuator.clone())
            .run(&plan)
            .await;
        assert!(dry.dry_run);
        assert_eq!(run_state(&source.qmp).await, "running");
        assert_eq!(run_state(&destination.qmp).await, "inmigrate");

        let config = ExecutorConfig {
            execute_rebalance: true,
            migration_timeout_secs: 30,
            ..ExecutorConfig::default()
        };
        let report = Executor::new(config, actuator).run(&plan).await;
        assert_eq!(report.outcomes[0].status, MoveStatus::Done, "{report:#?}");
        assert_eq!(run_state(&destination.qmp).await, "running");
        let exit = source
            .wait_exit()
            .expect("the source qemu exits once released");
        assert!(exit.success(), "source qemu ended with {exit}");
    })
    .await
    .expect("live migration test took longer than its bound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_to_a_destination_that_is_not_listening_leaves_the_vm_running_at_its_source() {
    tokio::time::timeout(TEST_LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        let mut source = Qemu::start(dir.path(), "source", None);
        // A destination qemu that waits on another port than the one given.
        let destination = Qemu::start(
            dir.path(),
            "destination",
            Some(&format!("tcp:127.0.0.1:{}", free_port())),
        );
        let actuator = Arc::new(QemuActuator::new());
        let nowhere = format!("tcp:127.0.0.1:{}", free_port());
        actuator.register(
            "web",
            QemuEndpoints {
                source_qmp: source.qmp.clone(),
                destination_qmp: destination.qmp.clone(),
                migrate_uri: nowhere,
            },
        );
        let (_, plan) = maintenance_plan();
        let config = ExecutorConfig {
            execute_rebalance: true,
            migration_timeout_secs: 20,
            ..ExecutorConfig::default()
        };
        let report = Executor::new(config, actuator).run(&plan).await;
        assert!(
            matches!(
                &report.outcomes[0].status,
                MoveStatus::Failed {
                    stage: Stage::Transfer,
                    restored: true,
                    ..
                }
            ),
            "{report:#?}"
        );
        assert_eq!(run_state(&source.qmp).await, "running");
        assert!(
            source.child.try_wait().unwrap().is_none(),
            "the source qemu must still run"
        );
    })
    .await
    .expect("failed-migration test took longer than its bound");
}
