//! Carrying out LUN moves: one [`LunMover`] trait with one file per way of
//! moving a LUN, a durable [`journal`] per move, and the [`executor`] that
//! runs a plan's moves in dependency order within concurrency limits.
//!
//! Layout:
//! * [`journal`]: the small fsynced file per move that survives a crash.
//! * [`executor`]: dry run by default; limits, timeouts, restart recovery.
//! * [`lvm`]: `pvmove` of a logical volume to another physical volume.
//! * [`file`]: copy, verify, switch and release of a disk image file.
//! * [`copy`]: the file mover's throttled, hashed, cancellable copy.
//! * [`command`]: a templated command for storage the project cannot drive.
//! * [`simulated`]: moves in memory, for the demo and scale tests.
//! * [`agent`]: through the hosts' agents (`lun-migrate-in`/`-out`
//!   actions), confirmed by the destination's inventory.
//!
//! The safety rule every mover keeps: at every instant, a consumer finds
//! the LUN whole at its source or at its destination, never neither. A
//! move's `run` may stop anywhere (error, timeout, the process killed);
//! `recover` then looks at what is really there and finishes or rolls back.

pub mod agent;
pub mod command;
pub mod copy;
pub mod executor;
pub mod file;
pub mod journal;
pub mod lvm;
pub mod simulated;

use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use serde::{Deserialize, Serialize};

pub use executor::{Executor, ExecutorConfig, MoveOutcome};
pub use journal::{Journal, Phase};

/// One move to carry out: which LUN, from which device to which.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoveOrder {
    /// The LUN, as the inventory names it (`vg/lv`, an image file name).
    pub lun: String,
    /// Its device now (a PV path, a pool name).
    pub from: String,
    /// Its device afterwards.
    pub to: String,
    /// Bytes to copy.
    pub bytes: u64,
}

/// How a move found unfinished at start was settled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Recovered {
    /// The LUN is whole at its destination and the source is released.
    Finished,
    /// The LUN is whole at its source; whatever the move left is removed.
    RolledBack,
}

/// Asks a running move to stop; movers check it between steps.
#[derive(Clone, Debug, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// Asks the move to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    /// Whether the move was asked to stop.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// What went wrong in a move.
#[derive(Debug, thiserror::Error)]
pub enum MoveError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("{lun}: {message}")]
    Refused { lun: String, message: String },
    #[error("{lun}: the copy at {path} does not match the source (sha256 {copy} != {source_sum})")]
    Mismatch {
        lun: String,
        path: PathBuf,
        copy: String,
        source_sum: String,
    },
    #[error("cancelled (timeout or shutdown)")]
    Cancelled,
    #[error("journal {path}: {message}")]
    Journal { path: PathBuf, message: String },
}

impl MoveError {
    /// An I/O error naming what was done to which path.
    pub fn io(what: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { what, path, source }
    }
}

/// One way of moving a LUN between devices.
///
/// `run` and `recover` block (copies, external commands); the executor
/// calls them on tokio's blocking pool.
pub trait LunMover: Send + Sync {
    /// The name in journals and logs (`lvm`, `file`, ...).
    fn name(&self) -> &'static str;
    /// What `run` would do, in a line, for dry runs.
    fn describe(&self, order: &MoveOrder) -> String;
    /// Moves the LUN, recording each phase in `journal` before it starts
    /// and checking `cancel` between steps. On error it may leave work
    /// half done: the executor then calls [`LunMover::recover`].
    fn run(
        &self,
        order: &MoveOrder,
        journal: &mut Journal,
        cancel: &Cancel,
    ) -> Result<(), MoveError>;
    /// Settles a move that stopped part way (error, cancel, crash): looks
    /// at what is really there and finishes or rolls back.
    fn recover(&self, journal: &mut Journal) -> Result<Recovered, MoveError>;
}
