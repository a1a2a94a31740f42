//! hyperwatch, the watchdog: receives every agent's stream, detects failures,
//! runs recovery policies and escalates what they cannot fix.
//!
//! Layout:
//! * [`version`]: what this build is, for `hyperwatch --version` and logs.
//! * [`rebalancer`]: the LUN rebalancer, a pure function from a storage
//!   snapshot to a plan of LUN moves.
//!
//! The stream ingest, failure detector, policy runtime, channels, planner and
//! rebalancer arrive with their issues.

pub mod rebalancer;
pub mod version;
