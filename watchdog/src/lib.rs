//! hyperwatch, the watchdog: receives every agent's stream, detects failures,
//! runs recovery policies and escalates what they cannot fix.
//!
//! Layout:
//! * [`version`]: what this build is, for `hyperwatch --version` and logs.
//! * [`planner`]: VM placement, a pure function from a cluster snapshot to a
//!   migration plan (rebalance and failover modes), and a plan verifier.
//! * [`migration`]: the executor that carries a plan out through
//!   actuators (qemu QMP, libvirt, a command template, simulated).
//!
//! The stream ingest, failure detector, policy runtime, channels and
//! rebalancer arrive with their issues.

pub mod migration;
pub mod planner;
pub mod version;
