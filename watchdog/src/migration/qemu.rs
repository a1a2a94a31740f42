//! Live migration between qemu processes through their QMP sockets: the
//! source is told to `migrate` to a destination qemu started with
//! `-incoming`; `query-migrate` is polled until the copy completes; the
//! destination's `query-status` must say running before the source is told
//! to `quit`.
//!
//! Where each VM's sockets are is registered per VM ([`QemuEndpoints`]):
//! starting the destination qemu with `-incoming` is the destination
//! host's job (its agent), done before the executor runs.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::Mutex,
    time::Duration,
};

use serde_json::{Value, json};

use super::{
    Actuator, ActuatorError, ActuatorFuture, MigrationRequest,
    qmp::{Qmp, QmpError},
};
use crate::planner::MoveKind;

/// How often `query-migrate` is asked while a copy runs. The executor's
/// migration timeout bounds the whole wait.
const MIGRATE_POLL: Duration = Duration::from_millis(100);

/// Where one VM's two qemu processes listen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuEndpoints {
    /// QMP socket of the running (source) qemu.
    pub source_qmp: PathBuf,
    /// QMP socket of the destination qemu, started with `-incoming`.
    pub destination_qmp: PathBuf,
    /// The destination's `-incoming` address, as `migrate` takes it
    /// (`tcp:HOST:PORT` or `unix:PATH`).
    pub migrate_uri: String,
}

/// Drives qemu live migrations over QMP.
#[derive(Debug, Default)]
pub struct QemuActuator {
    endpoints: Mutex<BTreeMap<String, QemuEndpoints>>,
}

impl QemuActuator {
    pub fn new() -> Self {
        QemuActuator::default()
    }

    /// Records where `vm`'s source and destination qemu listen.
    pub fn register(&self, vm: &str, endpoints: QemuEndpoints) {
        self.endpoints
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(vm.to_owned(), endpoints);
    }

    fn endpoints(&self, request: &MigrationRequest) -> Result<QemuEndpoints, ActuatorError> {
        if request.kind == MoveKind::Restart {
            // The source qemu died with its host; starting the VM afresh
            // needs its full command line, which QMP does not carry.
            return Err(ActuatorError::Unsupported {
                actuator: "qemu",
                what: "restart a VM whose host failed",
            });
        }
        self.endpoints
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&request.vm)
            .cloned()
            .ok_or_else(|| ActuatorError::UnknownVm {
                actuator: "qemu",
                vm: request.vm.clone(),
            })
    }
}

async fn connect(socket: &Path) -> Result<Qmp, ActuatorError> {
    Qmp::connect(socket)
        .await
        .map_err(|source| qmp_error(socket, source))
}

fn qmp_error(socket: &Path, source: QmpError) -> ActuatorError {
    ActuatorError::Qmp {
        socket: socket.display().to_string(),
        source,
    }
}

async fn execute(
    qmp: &mut Qmp,
    socket: &Path,
    command: &str,
    arguments: Option<Value>,
) -> Result<Value, ActuatorError> {
    qmp.execute(command, arguments)
        .await
        .map_err(|source| qmp_error(socket, source))
}

/// The `status` field of `query-status`.
async fn run_state(qmp: &mut Qmp, socket: &Path) -> Result<String, ActuatorError> {
    let status = execute(qmp, socket, "query-status", None).await?;
    Ok(status
        .get("status")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned())
}

impl Actuator for QemuActuator {
    fn name(&self) -> &'static str {
        "qemu"
    }

    fn transfer<'a>(&'a self, request: &'a MigrationRequest) -> ActuatorFuture<'a, ()> {
        Box::pin(async move {
            let ends = self.endpoints(request)?;
            let socket = ends.source_qmp.as_path();
            let mut qmp = connect(socket).await?;
            execute(
                &mut qmp,
                socket,
                "migrate",
                Some(json!({ "uri": ends.migrate_uri })),
            )
            .await?;
            loop {
                let state = execute(&mut qmp, socket, "query-migrate", None).await?;
                let status = state
                    .get("status")
                    .and_then(Value::as_str)
                    .unwrap_or("none");
                match status {
                    "completed" => return Ok(()),
                    "failed" | "cancelled" => {
                        return Err(ActuatorError::MigrationFailed {
                            vm: request.vm.clone(),
                            status: status.to_owned(),
                            detail: state
                                .get("error-desc")
                                .and_then(Value::as_str)
                                .map(str::to_owned),
                        });
                    }
                    _ => tokio::time::sleep(MIGRATE_POLL).await,
                }
            }
        })
    }

    fn confirm_running<'a>(&'a self, request: &'a MigrationRequest) -> ActuatorFuture<'a, bool> {
        Box::pin(async move {
            let ends = self.endpoints(request)?;
            let socket = ends.destination_qmp.as_path();
            let mut qmp = connect(socket).await?;
            Ok(run_state(&mut qmp, socket).await? == "running")
        })
    }

    fn release_source<'a>(&'a self, request: &'a MigrationRequest) -> ActuatorFuture<'a, ()> {
        Box::pin(async move {
            let ends = self.endpoints(request)?;
            let socket = ends.source_qmp.as_path();
            let mut qmp = connect(socket).await?;
            execute(&mut qmp, socket, "quit", None).await.map(drop)
        })
    }

    fn abort<'a>(&'a self, request: &'a MigrationRequest) -> ActuatorFuture<'a, ()> {
        Box::pin(async move {
            let ends = self.endpoints(request)?;
            let source = ends.source_qmp.as_path();
            let mut qmp = connect(source).await?;
            // Stop any copy in flight; an error only means none runs.
            let _ = execute(&mut qmp, source, "migrate_cancel", None).await;
            // The destination copy goes first, so that the VM never runs
            // twice; an unreachable destination has no copy to worry about.
            if let Ok(mut destination) = Qmp::connect(&ends.destination_qmp).await {
                let _ = destination.execute("quit", None).await;
            }
            // A completed copy leaves the source paused ("postmigrate").
            if run_state(&mut qmp, source).await? != "running" {
                execute(&mut qmp, source, "cont", None).await?;
            }
            Ok(())
        })
    }
}
