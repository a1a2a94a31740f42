//! hyperwatch, the watchdog: receives every agent's stream, detects failures,
//! runs recovery policies and escalates what they cannot fix.
//!
//! Layout:
//! * [`lun_mover`]: the executor and the movers (lvm, file, command,
//!   simulated) that carry plans out without ever losing a LUN.
//! * [`version`]: what this build is, for `hyperwatch --version` and logs.
//! * [`rebalancer`]: the LUN rebalancer, a pure function from a storage
//!   snapshot to a plan of LUN moves.
//!
//! The stream ingest, failure detector, policy runtime, channels, planner and
//! rebalancer arrive with their issues.

pub mod lun_mover;
pub mod rebalancer;
pub mod version;
