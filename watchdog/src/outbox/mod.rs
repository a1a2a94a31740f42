//! The durable outbox: every notification is recorded in the store before
//! any attempt and marked delivered only when the receiver accepted it, so
//! a page survives relay outages and watchdog restarts (at-least-once; the
//! idempotency key lets receivers drop the rare duplicate).
//!
//! Layout:
//! * [`store`]: the SQLite tables (deliveries and the attempts' audit trail).
//! * [`record`]: the rows: deliveries, their states, attempts.
//! * [`delivery`]: [`Notifier`]: enqueue, and the per-channel delivery workers.
//! * [`backoff`]: when to retry, and when to give up and escalate.
//! * [`ratelimit`]: per-recipient token buckets and digests of bursts.
//! * [`metrics`]: sent, failed, retried, digested, pending, latency per channel.
//! * [`drill`]: enqueue synthetic notifications and deliver them, for the
//!   crash test and the benchmark (`hyperwatch notify drill`, hidden).

pub mod backoff;
pub mod delivery;
pub mod drill;
pub mod metrics;
pub mod ratelimit;
pub mod record;
pub mod store;

pub use delivery::{DeliveryLoop, EnqueueError, Notifier};
pub use metrics::DeliveryMetrics;
pub use store::{Durability, Outbox, OutboxError};
