//! Carrying out a [`MigrationPlan`](crate::planner::MigrationPlan): the
//! executor runs its migrations under concurrency limits and timeouts
//! through an [`Actuator`], the one thing that knows a hypervisor.
//!
//! Every actuator splits a migration into the same four steps, so that the
//! executor alone decides when a source is let go: `transfer` the VM,
//! `confirm_running` on the destination (polled), and only then
//! `release_source`; anything failing or late on the way is undone with
//! `abort`, which leaves the VM running at its source.
//!
//! Layout:
//! * [`executor`]: limits, timeouts, dry-run, dependencies, the report.
//! * [`qmp`]: a minimal QEMU Machine Protocol client.
//! * [`qemu`]: live migration between qemu processes over QMP.
//! * [`libvirt`]: live migration through `virsh`.
//! * [`command`]: any hypervisor, through templated command lines.
//! * [`simulated`]: an in-memory cluster for the demo and scale tests.
//! * [`agent`]: through the hosts' agents (`vm-migrate-in`/`-out`
//!   actions), confirmed by the destination's inventory; simulated agents
//!   carry these out.

pub mod agent;
pub mod command;
pub mod executor;
pub mod libvirt;
pub mod qemu;
pub mod qmp;
pub mod simulated;

use std::{future::Future, pin::Pin};

use serde::{Deserialize, Serialize};

use crate::planner::{Migration, MoveKind};

pub use executor::{ExecutionReport, Executor, ExecutorConfig, MoveOutcome, MoveStatus, Stage};

/// One migration as an actuator sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrationRequest {
    /// Position in the plan.
    pub index: usize,
    pub vm: String,
    pub source: String,
    pub destination: String,
    /// Live migration, or a restart on the destination when the source host
    /// is dead.
    pub kind: MoveKind,
}

impl MigrationRequest {
    pub fn from_plan(index: usize, m: &Migration) -> Self {
        MigrationRequest {
            index,
            vm: m.vm.clone(),
            source: m.source.clone(),
            destination: m.destination.clone(),
            kind: m.kind,
        }
    }
}

/// A boxed future, so that actuators can be chosen at run time.
pub type ActuatorFuture<'a, T> =
    Pin<Box<dyn Future<Output = Result<T, ActuatorError>> + Send + 'a>>;

/// A way to move VMs between hosts of one hypervisor kind.
pub trait Actuator: Send + Sync {
    /// Short name for logs and reports ("qemu", "libvirt", ...).
    fn name(&self) -> &'static str;

    /// Moves the VM: for a live migration, returns once the hypervisor
    /// reports the copy complete (the source copy is then paused, not gone);
    /// for a restart, once the destination has been told to start it.
    fn transfer<'a>(&'a self, request: &'a MigrationRequest) -> ActuatorFuture<'a, ()>;

    /// Whether the destination reports the VM running.
    fn confirm_running<'a>(&'a self, request: &'a MigrationRequest) -> ActuatorFuture<'a, bool>;

    /// Lets go of the source copy; called only after the destination runs
    /// the VM.
    fn release_source<'a>(&'a self, request: &'a MigrationRequest) -> ActuatorFuture<'a, ()>;

    /// Undoes a transfer that failed, timed out or was never confirmed: the
    /// destination copy is discarded and the VM runs at its source.
    fn abort<'a>(&'a self, request: &'a MigrationRequest) -> ActuatorFuture<'a, ()>;
}

/// What went wrong inside an actuator.
#[derive(Debug, thiserror::Error)]
pub enum ActuatorError {
    #[error("{actuator} actuator does not know vm `{vm}`; register its endpoints first")]
    UnknownVm { actuator: &'static str, vm: String },
    #[error("{actuator} actuator cannot {what}")]
    Unsupported {
        actuator: &'static str,
        what: &'static str,
    },
    #[error("QMP on {socket}: {source}")]
    Qmp {
        socket: String,
        source: qmp::QmpError,
    },
    #[error("the hypervisor reports the migration of `{vm}` {status}{}", detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    MigrationFailed {
        vm: String,
        status: String,
        detail: Option<String>,
    },
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("simulated failure of `{vm}` at {stage}")]
    Simulated { vm: String, stage: &'static str },
}
