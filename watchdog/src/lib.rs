//! hyperwatch, the watchdog: receives every agent's stream, detects failures,
//! runs recovery policies and escalates what they cannot fix.
//!
//! Layout:
//! * [`version`]: what this build is, for `hyperwatch --version` and logs.
//!
//! The stream ingest, failure detector, policy runtime, channels, planner and
//! rebalancer arrive with their issues.

pub mod version;
