//! The delivery loop: [`Notifier::enqueue`] records notifications in the
//! outbox and wakes the channel; one worker per channel sends what is due,
//! through the channel's rate limiter, and records each outcome: delivered,
//! retry later (exponential backoff with jitter), or give up after the
//! channel's bound and escalate (to the next fallback channel and a failure
//! notice to the console). Deliveries left pending by a crash are simply
//! due when the workers start again: delivery is at least once.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use futures_util::{StreamExt, stream};
use tokio::{
    sync::{Notify, watch},
    task::JoinHandle,
};

use super::{
    backoff::{self, Next},
    metrics::DeliveryMetrics,
    ratelimit::{RateLimiter, Unit},
    store::{Delivery, NewDelivery, Outbox, OutboxError},
};
use crate::channels::{
    CONSOLE, ChannelEntry, ChannelSet, Message, Notification, Receipt, SendError,
};

/// Most deliveries one worker takes from the store per round; a longer
/// backlog is served in further rounds.
const DUE_BATCH: usize = 500;
/// Longest sleep of an idle worker: it looks at the store at least this
/// often even without a wake-up (another process may have enqueued).
const IDLE_POLL: Duration = Duration::from_secs(1);
/// Pause after the store failed, before trying again.
const STORE_ERROR_PAUSE: Duration = Duration::from_secs(1);

/// A notification could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum EnqueueError {
    /// A policy names a channel the configuration lacks.
    #[error("notification {key}: no channel named {channel:?} (configured: {known})")]
    UnknownChannel {
        /// The notification's idempotency key.
        key: String,
        /// The unknown name.
        channel: String,
        /// The configured names.
        known: String,
    },
    /// The store failed; nothing of this call was recorded.
    #[error(transparent)]
    Store(#[from] OutboxError),
}

/// Records notifications and delivers them; cheap to clone.
#[derive(Clone)]
pub struct Notifier {
    inner: Arc<Inner>,
}

struct Inner {
    outbox: Outbox,
    channels: ChannelSet,
    metrics: DeliveryMetrics,
    wake: HashMap<String, Arc<Notify>>,
}

/// The running workers; [`DeliveryLoop::stop`] ends them.
pub struct DeliveryLoop {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl DeliveryLoop {
    /// Stops the workers after their current round (bounded by the
    /// channels' attempt timeouts). Unfinished deliveries stay pending.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

impl Notifier {
    /// A notifier over an outbox and the configured channels.
    pub fn new(outbox: Outbox, channels: ChannelSet, metrics: DeliveryMetrics) -> Self {
        let wake = channels
            .iter()
            .map(|e| (e.name.clone(), Arc::new(Notify::new())))
            .collect();
        Self {
            inner: Arc::new(Inner {
                outbox,
                channels,
                metrics,
                wake,
            }),
        }
    }

    /// The outbox (for inspection).
    pub fn outbox(&self) -> &Outbox {
        &self.inner.outbox
    }

    /// Records one notification for the named channels (one delivery per
    /// channel and recipient) and wakes them. Returns how many deliveries
    /// are new: 0 when this notification was recorded before.
    pub async fn enqueue(
        &self,
        notification: &Notification,
        channels: &[String],
    ) -> Result<usize, EnqueueError> {
        self.enqueue_many(&[(notification.clone(), channels.to_vec())])
            .await
    }

    /// Records many notifications in one transaction (one fsync).
    pub async fn enqueue_many(
        &self,
        batch: &[(Notification, Vec<String>)],
    ) -> Result<usize, EnqueueError> {
        let deliveries = self.deliveries(batch)?;
        let woken: Vec<String> = deliveries.iter().map(|d| d.channel.clone()).collect();
        let added = self.inner.outbox.enqueue(deliveries, now_ms()).await?;
        self.recorded(&woken).await;
        Ok(added)
    }

    /// The deliveries that record `batch` (one per channel and recipient),
    /// for a caller that commits them in its own transaction (the policy
    /// runtime, with its engine state); then call [`Notifier::recorded`].
    pub fn deliveries(
        &self,
        batch: &[(Notification, Vec<String>)],
    ) -> Result<Vec<NewDelivery>, EnqueueError> {
        let mut deliveries = Vec::new();
        for (notification, channels) in batch {
            let key = notification.idempotency_key();
            for name in channels {
                let entry =
                    self.inner
                        .channels
                        .get(name)
                        .ok_or_else(|| EnqueueError::UnknownChannel {
                            key: key.clone(),
                            channel: name.clone(),
                            known: self.inner.channels.names().join(", "),
                        })?;
                for recipient in entry.channel.recipients() {
                    deliveries.push(NewDelivery {
                        key: key.clone(),
                        channel: name.clone(),
                        recipient,
                        notification: notification.clone(),
                        note: None,
                        tried: Vec::new(),
                    });
                }
            }
        }
        Ok(deliveries)
    }

    /// Deliveries to these channels were committed: their workers wake.
    pub async fn recorded(&self, channels: &[String]) {
        for name in channels {
            self.inner.wake(name);
        }
        self.inner.refresh_pending().await;
    }

    /// The configured channel names.
    pub fn channel_names(&self) -> Vec<String> {
        self.inner.channels.names()
    }

    /// Starts one worker per channel on the current tokio runtime. Pending
    /// deliveries to channels the configuration no longer has are given up
    /// first, with a notice to the console, so none waits forever.
    pub fn start(&self) -> DeliveryLoop {
        let (stop, stopped) = watch::channel(false);
        let mut tasks: Vec<JoinHandle<()>> = self
            .inner
            .channels
            .iter()
            .map(|entry| {
                let inner = self.inner.clone();
                let entry = entry.clone();
                let stopped = stopped.clone();
                tokio::spawn(async move { inner.work(entry, stopped).await })
            })
            .collect();
        let inner = self.inner.clone();
        tasks.push(tokio::spawn(async move { inner.reroute_orphans().await }));
        DeliveryLoop { stop, tasks }
    }
}

impl Inner {
    fn wake(&self, channel: &str) {
        if let Some(n) = self.wake.get(channel) {
            n.notify_one();
        }
    }

    async fn work(self: Arc<Self>, entry: Arc<ChannelEntry>, mut stopped: watch::Receiver<bool>) {
        let wake = self.wake[&entry.name].clone();
        let mut limiter = RateLimiter::new(entry.delivery.rate_limit);
        loop {
            if *stopped.borrow() {
                return;
            }
            let look_again_at = match self.round(&entry, &mut limiter).await {
                Ok(at) => at,
                Err(e) => {
                    tracing::error!(channel = %entry.name, error = %e, "outbox store failed; pausing");
                    now_ms() + millis(STORE_ERROR_PAUSE)
                }
            };
            let sleep = Duration::from_millis(
                (look_again_at - now_ms()).clamp(0, millis(IDLE_POLL)) as u64,
            );
            if sleep.is_zero() {
                continue;
            }
            tokio::select! {
                _ = tokio::time::sleep(sleep) => {}
                _ = wake.notified() => {}
                _ = stopped.changed() => return,
            }
        }
    }

    /// Sends what is due; returns when to look again (Unix milliseconds).
    async fn round(
        &self,
        entry: &ChannelEntry,
        limiter: &mut RateLimiter,
    ) -> Result<i64, OutboxError> {
        let now = now_ms();
        let due = self.outbox.due(&entry.name, now, DUE_BATCH).await?;
        if due.is_empty() {
            let next = self.outbox.next_due(&entry.name).await?;
            return Ok(next.unwrap_or(now + millis(IDLE_POLL)));
        }
        let plan = limiter.plan(
            due.into_iter().map(|d| (d.recipient.clone(), d)).collect(),
            now,
        );
        if plan.units.is_empty() {
            return Ok(plan.wait_until.unwrap_or(now + millis(IDLE_POLL)));
        }
        stream::iter(plan.units)
            .map(|unit| self.send(entry, unit))
            .buffer_unordered(entry.delivery.concurrency)
            .collect::<Vec<()>>()
            .await;
        self.refresh_pending().await;
        // More may be due already: look again at once.
        Ok(now)
    }

    /// Sends one message (a delivery or a digest) and records the outcome.
    async fn send(&self, entry: &ChannelEntry, unit: Unit<Delivery>) {
        let rows = match unit {
            Unit::Single(d) => vec![d],
            Unit::Digest(ds) => ds,
        };
        let message = message_for(&rows);
        let timeout = entry.delivery.attempt_timeout;
        let result = match tokio::time::timeout(timeout, entry.channel.send(&message)).await {
            Ok(r) => r,
            Err(_) => Err(SendError::Transient(format!(
                "no answer within {timeout:?}"
            ))),
        };
        let now = now_ms();
        let outcome = match result {
            Ok(receipt) => self.accepted(entry, &rows, &message, receipt, now).await,
            Err(error) => {
                let mut outcome = Ok(());
                for row in rows {
                    outcome = outcome.and(self.failed(entry, row, &error, now).await);
                }
                outcome
            }
        };
        if let Err(e) = outcome {
            // The attempt stays recorded as pending: it will be made again
            // (at least once), never lost.
            tracing::error!(channel = %entry.name, key = %message.key, error = %e, "recording a delivery outcome failed");
        }
    }

    async fn accepted(
        &self,
        entry: &ChannelEntry,
        rows: &[Delivery],
        message: &Message,
        mut receipt: Receipt,
        now: i64,
    ) -> Result<(), OutboxError> {
        if rows.len() > 1 {
            receipt.answer = format!(
                "in digest {} of {}: {}",
                message.key,
                rows.len(),
                receipt.answer
            );
            self.metrics.digested(&entry.name, rows.len() as u64);
        }
        tracing::info!(channel = %entry.name, key = %message.key, answer = %receipt.answer, "notification delivered");
        self.outbox
            .delivered(rows.iter().map(|r| r.id).collect(), receipt, now)
            .await?;
        let latencies = rows.iter().map(|r| {
            let decided = r
                .notification
                .decided_at
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            ((now as f64 / 1000.0) - decided.as_secs_f64()).max(0.0)
        });
        self.metrics
            .sent(&entry.name, latencies.collect::<Vec<_>>());
        Ok(())
    }

    async fn failed(
        &self,
        entry: &ChannelEntry,
        row: Delivery,
        error: &SendError,
        now: i64,
    ) -> Result<(), OutboxError> {
        let attempts = row.attempts + 1;
        let next = match error {
            SendError::Permanent(_) => Next::GiveUp,
            SendError::RateLimited { retry_after, .. } => backoff::next(
                &entry.delivery,
                attempts,
                row.enqueued_ms,
                now,
                *retry_after,
                fastrand::f64(),
            ),
            SendError::Transient(_) => backoff::next(
                &entry.delivery,
                attempts,
                row.enqueued_ms,
                now,
                None,
                fastrand::f64(),
            ),
        };
        match next {
            Next::RetryAt(at) => {
                tracing::warn!(
                    channel = %entry.name, key = %row.key, attempts, error = %error,
                    retry_in_ms = at - now, "delivery failed; will retry"
                );
                self.outbox
                    .retry(row.id, error.to_string(), at, now)
                    .await?;
                self.metrics.retried(&entry.name);
            }
            Next::GiveUp => {
                tracing::error!(
                    channel = %entry.name, key = %row.key, attempts, error = %error,
                    "delivery given up; escalating the failure"
                );
                let escalations = self.escalations(entry, &row, attempts, error, now);
                let woken: Vec<String> = escalations.iter().map(|d| d.channel.clone()).collect();
                self.outbox
                    .give_up(row.id, error.to_string(), escalations, now)
                    .await?;
                self.metrics.failed(&entry.name);
                for name in woken {
                    self.wake(&name);
                }
            }
        }
        Ok(())
    }

    /// The deliveries a failure causes: the notification to the next
    /// fallback channel not tried yet, and a failure notice to the console.
    fn escalations(
        &self,
        entry: &ChannelEntry,
        row: &Delivery,
        attempts: u32,
        error: &SendError,
        now: i64,
    ) -> Vec<NewDelivery> {
        let mut tried = row.tried.clone();
        tried.push(entry.name.clone());
        let waited = humantime::format_duration(Duration::from_secs(
            ((now - row.enqueued_ms).max(0) / 1000) as u64,
        ));
        let to = if row.recipient.is_empty() {
            String::new()
        } else {
            format!(" to {}", row.recipient)
        };
        let why = format!("{attempts} attempt(s) over {waited}: {error}");
        let mut out = Vec::new();
        if let Some(next) = entry.delivery.fallback.iter().find(|f| !tried.contains(f))
            && let Some(fallback) = self.channels.get(next)
        {
            for recipient in fallback.channel.recipients() {
                out.push(NewDelivery {
                    key: row.key.clone(),
                    channel: next.clone(),
                    recipient,
                    notification: row.notification.clone(),
                    note: Some(format!(
                        "Fallback: channel {}{to} could not deliver this ({why})",
                        entry.name
                    )),
                    tried: tried.clone(),
                });
            }
        }
        if entry.name != CONSOLE {
            out.push(NewDelivery {
                key: format!("{}:undelivered:{}:{}", row.key, entry.name, row.recipient),
                channel: CONSOLE.to_owned(),
                recipient: String::new(),
                notification: row.notification.clone(),
                note: Some(format!("NOT DELIVERED via {}{to} ({why})", entry.name)),
                tried,
            });
        }
        out
    }

    /// Gives up pending deliveries whose channel is not configured (any
    /// more), escalating each to the console.
    async fn reroute_orphans(&self) {
        let known = self.channels.names();
        let orphans = match self.outbox.pending_elsewhere(known).await {
            Ok(o) => o,
            Err(e) => {
                tracing::error!(error = %e, "looking for deliveries to removed channels failed");
                return;
            }
        };
        let now = now_ms();
        for row in orphans {
            let error = format!("channel {:?} is no longer configured", row.channel);
            tracing::error!(key = %row.key, channel = %row.channel, "{error}; escalating to the console");
            let notice = NewDelivery {
                key: format!("{}:undelivered:{}:{}", row.key, row.channel, row.recipient),
                channel: CONSOLE.to_owned(),
                recipient: String::new(),
                notification: row.notification.clone(),
                note: Some(format!("NOT DELIVERED: {error}")),
                tried: vec![row.channel.clone()],
            };
            if let Err(e) = self.outbox.give_up(row.id, error, vec![notice], now).await {
                tracing::error!(error = %e, "escalating a delivery to a removed channel failed");
            }
        }
        self.wake(CONSOLE);
        self.refresh_pending().await;
    }

    /// Sets the pending gauges from the store.
    async fn refresh_pending(&self) {
        match self.outbox.pending_counts().await {
            Ok(counts) => {
                let counts: HashMap<String, i64> = counts.into_iter().collect();
                for entry in self.channels.iter() {
                    self.metrics
                        .set_pending(&entry.name, counts.get(&entry.name).copied().unwrap_or(0));
                }
            }
            Err(e) => tracing::warn!(error = %e, "counting pending notifications failed"),
        }
    }
}

/// The message for one delivery, or the digest of several (first one first).
fn message_for(rows: &[Delivery]) -> Message {
    let first = &rows[0];
    let mut message = Message::single(first.notification.clone(), &first.recipient);
    message.key = first.key.clone();
    message.note = first.note.clone();
    if rows.len() > 1 {
        message.key = format!("digest:{}+{}", first.key, rows.len() - 1);
        message.others = rows[1..].iter().map(|r| r.notification.clone()).collect();
    }
    message
}

/// Now, in Unix milliseconds (the store's clock: it survives restarts).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn millis(d: Duration) -> i64 {
    d.as_millis() as i64
}
