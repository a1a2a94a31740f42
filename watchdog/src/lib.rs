//! hyperwatch, the watchdog: receives every agent's stream, detects failures,
//! runs recovery policies and escalates what they cannot fix.
//!
//! Layout:
//! * [`version`]: what this build is, for `hyperwatch --version` and logs.
//! * [`channels`]: the escalation channels (console, batch, email, SMS, SNMP
//!   trap, webhook, Jira), one file each behind one trait, with their
//!   configuration and message templates.
//! * [`outbox`]: the durable outbox in the store: notifications are recorded
//!   before any attempt and delivered at least once, with retries, rate
//!   limits, digests, fallback on failure and metrics.
//!
//! The stream ingest, failure detector, policy runtime, planner and
//! rebalancer arrive with their issues.

pub mod channels;
pub mod outbox;
pub mod version;
