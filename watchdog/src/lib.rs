//! hyperwatch, the watchdog: receives every agent's stream, detects failures,
//! runs recovery policies and escalates what they cannot fix.
//!
//! Layout:
//! * [`lun_mover`]: the executor and the movers (lvm, file, command,
//!   simulated) that carry plans out without ever losing a LUN.
//! * [`version`]: what this build is, for `hyperwatch --version` and logs.
//! * [`rebalancer`]: the LUN rebalancer, a pure function from a storage
//!   snapshot to a plan of LUN moves.
//! * [`channels`]: the escalation channels (console, batch, email, SMS, SNMP
//!   trap, webhook, Jira), one file each behind one trait, with their
//!   configuration and message templates.
//! * [`outbox`]: the durable outbox in the store: notifications are recorded
//!   before any attempt and delivered at least once, with retries, rate
//!   limits, digests, fallback on failure and metrics.
//! * [`planner`]: VM placement, a pure function from a cluster snapshot to a
//!   migration plan (rebalance and failover modes), and a plan verifier.
//! * [`migration`]: the executor that carries a plan out through
//!   actuators (qemu QMP, libvirt, a command template, simulated).
//!
//! The stream ingest, failure detector and policy runtime arrive with their issues.

pub mod channels;
pub mod lun_mover;
pub mod migration;
pub mod outbox;
pub mod planner;
pub mod rebalancer;
pub mod version;
