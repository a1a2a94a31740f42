//! The LUN rebalancer: a pure function from a storage [`Snapshot`] to a
//! [`Plan`] of LUN moves. No I/O and no clock, so every decision is tested
//! deterministically; the executor in `lun_mover` carries plans out.
//!
//! Layout:
//! * [`snapshot`]: the input (groups with thresholds, devices, LUNs) and its checks.
//! * `state`: the working copy the passes change, sorted by name.
//! * `planner`: the passes (thresholds first, then the balance band).
//! * `order`: which moves must wait for which, so none overfills a device.
//! * [`plan`]: the output, with an explanation for each move.
//! * `focus`: a plan narrowed to the moves off one device, or to its
//!   first moves ([`narrow`]).
//!
//! What a plan promises:
//! * Run one at a time in plan order, or side by side as their `after`
//!   lists allow, no move fills a destination beyond its capacity threshold
//!   or its IOPS limit, and a LUN moves at most once.
//! * Pinned LUNs stay; devices in maintenance are neither sources nor
//!   destinations; draining devices are only sources.
//! * The same snapshot, in any order of its lists, gives the same plan.

pub mod plan;
pub mod snapshot;

mod focus;
mod order;
mod planner;
mod state;
#[cfg(test)]
mod tests;

pub use focus::{DeviceFill, Narrowed, narrow};
pub use plan::{GroupSpread, IdleCandidate, IopsCause, Move, Plan, Reason, Unresolved};
pub use snapshot::{
    DEFAULT_MAX_CAPACITY_USED, Device, DeviceGroup, DeviceState, Lun, Snapshot, Thresholds,
};

use state::State;

/// A snapshot the rebalancer cannot plan for.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RebalanceError {
    #[error("{kind} {id:?} appears more than once in the snapshot")]
    Duplicate { kind: &'static str, id: String },
    #[error("{kind} {id:?}: {message}")]
    Invalid {
        kind: &'static str,
        id: String,
        message: String,
    },
}

/// Plans the LUN moves for `snapshot`.
pub fn plan(snapshot: &Snapshot) -> Result<Plan, RebalanceError> {
    snapshot.validate()?;
    let mut state = State::new(snapshot);
    let groups = 0..state.groups.len();
    let before = groups.clone().map(|g| state.spread(g)).collect();
    let start: Vec<u64> = state.devs.iter().map(|d| d.used).collect();
    let limit: Vec<u64> = state.devs.iter().map(|d| d.cap_limit).collect();

    // Replay the passes' steps to record each destination's load after its
    // move, which the explanations quote.
    let initial = state.clone();
    let (steps, unresolved) = planner::make(&mut state);
    let shape: Vec<(u64, usize, usize)> = steps
        .iter()
        .map(|s| (initial.luns[s.lun].size, s.from, s.to))
        .collect();
    let after = order::dependencies(&start, &limit, &shape);
    let mut replay = initial;
    let moves = steps
        .into_iter()
        .zip(after)
        .map(|(step, after)| {
            replay.apply(step.lun, step.to);
            let (lun, to) = (&replay.luns[step.lun], &replay.devs[step.to]);
            Move {
                lun: lun.id.clone(),
                from: replay.devs[step.from].id.clone(),
                to: to.id.clone(),
                bytes: lun.size,
                iops: lun.iops,
                after,
                reason: step.reason,
                to_used_fraction: to.used as f64 / to.capacity as f64,
                to_iops: to.iops,
            }
        })
        .collect();

    Ok(Plan {
        moves,
        unresolved,
        idle_candidates: idle_candidates(&state),
        before,
        after: groups.map(|g| state.spread(g)).collect(),
    })
}

/// Active devices serving at most their group's idle IOPS in `state`.
fn idle_candidates(state: &State) -> Vec<IdleCandidate> {
    let mut luns_on = vec![0usize; state.devs.len()];
    for l in &state.luns {
        luns_on[l.device] += 1;
    }
    state
        .devs
        .iter()
        .zip(luns_on)
        .filter(|(d, _)| {
            d.state == DeviceState::Active && d.iops <= state.groups[d.group].idle_iops
        })
        .map(|(d, luns)| IdleCandidate {
            device: d.id.clone(),
            iops: d.iops,
            luns,
        })
        .collect()
}
