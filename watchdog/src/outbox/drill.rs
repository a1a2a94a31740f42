//! A delivery drill: records `count` synthetic notifications for one
//! channel (idempotently: running it again adds none) and runs the delivery
//! loop until the outbox has nothing pending. The crash test SIGKILLs it
//! mid-way and starts it again; the benchmark measures it.

use std::{
    path::PathBuf,
    time::{Duration, Instant, SystemTime},
};

use super::{DeliveryMetrics, Durability, EnqueueError, Notifier, Outbox, OutboxError};
use crate::channels::{
    BuildError, ChannelSet, Notification, Severity, Status,
    config::{self, ConfigError},
};

/// How often the drill reports progress.
const PROGRESS_EVERY: Duration = Duration::from_millis(200);

/// What to drill.
#[derive(Clone, Debug)]
pub struct DrillOptions {
    /// The watchdog configuration file (its `[channels]` tables).
    pub config: PathBuf,
    /// The store file.
    pub store: PathBuf,
    /// The channel to deliver to.
    pub channel: String,
    /// How many notifications (drill-1 .. drill-N).
    pub count: usize,
    /// Bound on the whole drill.
    pub timeout: Duration,
}

/// Why a drill failed.
#[derive(Debug, thiserror::Error)]
pub enum DrillError {
    /// The configuration cannot be read.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A channel cannot be built.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] OutboxError),
    /// Recording failed.
    #[error(transparent)]
    Enqueue(#[from] EnqueueError),
    /// Deliveries were still pending at the bound.
    #[error("{pending} deliveries still pending after {timeout:?}")]
    Timeout {
        /// How many.
        pending: i64,
        /// The bound.
        timeout: Duration,
    },
}

/// The synthetic notification number `i`.
pub fn notification(i: usize, count: usize) -> Notification {
    let now = SystemTime::now();
    Notification {
        incident_id: format!("drill-{i}"),
        level: 0,
        repeat: 0,
        status: Status::Problem,
        severity: Severity::Info,
        target: format!("drill target {i}"),
        summary: format!("delivery drill notification {i} of {count}"),
        policy: "delivery drill".to_owned(),
        labels: Default::default(),
        fired_at: now,
        decided_at: now,
    }
}

/// Runs the drill; `progress` receives one line per step ("enqueued N new",
/// "pending N", "done").
pub async fn run(
    options: &DrillOptions,
    mut progress: impl FnMut(String),
) -> Result<(), DrillError> {
    let started = Instant::now();
    let channels = ChannelSet::build(&config::load(&options.config)?)?;
    let outbox = Outbox::open(&options.store, Durability::Full)?;
    let notifier = Notifier::new(outbox.clone(), channels, DeliveryMetrics::default());
    let batch: Vec<_> = (1..=options.count)
        .map(|i| {
            (
                notification(i, options.count),
                vec![options.channel.clone()],
            )
        })
        .collect();
    let added = notifier.enqueue_many(&batch).await?;
    progress(format!("enqueued {added} new"));
    let deliveries = notifier.start();
    let outcome = loop {
        let pending: i64 = outbox.pending_counts().await?.iter().map(|(_, n)| n).sum();
        progress(format!("pending {pending}"));
        if pending == 0 {
            break Ok(());
        }
        if started.elapsed() > options.timeout {
            break Err(DrillError::Timeout {
                pending,
                timeout: options.timeout,
            });
        }
        tokio::time::sleep(PROGRESS_EVERY).await;
    };
    deliveries.stop().await;
    if outcome.is_ok() {
        progress("done".to_owned());
    }
    outcome
}
