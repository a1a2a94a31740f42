//! The outbox's metrics, per channel: notifications sent, failed (given up
//! and escalated), retried, folded into digests, pending, and the delivery
//! latency from the ladder's decision to the receiver's acceptance.

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::{Registry, Unit},
};

/// The label of every outbox metric.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChannelLabel {
    /// The channel's configured name.
    pub channel: String,
}

/// Latency buckets: 5 ms doubling to ~11 min, which covers a local relay's
/// acceptance and a delivery that waited through a ten-minute outage.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 18))
}

/// The outbox's metrics; clones share the same series.
#[derive(Clone)]
pub struct DeliveryMetrics {
    sent: Family<ChannelLabel, Counter>,
    failed: Family<ChannelLabel, Counter>,
    retried: Family<ChannelLabel, Counter>,
    digested: Family<ChannelLabel, Counter>,
    pending: Family<ChannelLabel, Gauge>,
    latency: Family<ChannelLabel, Histogram, fn() -> Histogram>,
}

impl Default for DeliveryMetrics {
    fn default() -> Self {
        Self {
            sent: Family::default(),
            failed: Family::default(),
            retried: Family::default(),
            digested: Family::default(),
            pending: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
        }
    }
}

fn label(channel: &str) -> ChannelLabel {
    ChannelLabel {
        channel: channel.to_owned(),
    }
}

impl DeliveryMetrics {
    /// Adds the series to a registry (the watchdog's /metrics).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "hyperwatch_notifications_sent",
            "Notifications the receiver accepted",
            self.sent.clone(),
        );
        registry.register(
            "hyperwatch_notifications_failed",
            "Notifications given up on after the retry bound; escalated to the fallback channels and the console",
            self.failed.clone(),
        );
        registry.register(
            "hyperwatch_notifications_retried",
            "Failed delivery attempts that will be retried",
            self.retried.clone(),
        );
        registry.register(
            "hyperwatch_notifications_digested",
            "Notifications sent inside a digest because a burst exceeded the rate limit",
            self.digested.clone(),
        );
        registry.register(
            "hyperwatch_notifications_pending",
            "Notifications recorded in the outbox and not yet accepted",
            self.pending.clone(),
        );
        registry.register_with_unit(
            "hyperwatch_notification_delivery_latency",
            "Time from the escalation ladder's decision to the receiver's acceptance",
            Unit::Seconds,
            self.latency.clone(),
        );
    }

    pub(crate) fn sent(&self, channel: &str, latencies: impl IntoIterator<Item = f64>) {
        let l = label(channel);
        let histogram = self.latency.get_or_create(&l);
        let mut n = 0;
        for seconds in latencies {
            histogram.observe(seconds);
            n += 1;
        }
        self.sent.get_or_create(&l).inc_by(n);
    }

    pub(crate) fn failed(&self, channel: &str) {
        self.failed.get_or_create(&label(channel)).inc();
    }

    pub(crate) fn retried(&self, channel: &str) {
        self.retried.get_or_create(&label(channel)).inc();
    }

    pub(crate) fn digested(&self, channel: &str, n: u64) {
        self.digested.get_or_create(&label(channel)).inc_by(n);
    }

    pub(crate) fn set_pending(&self, channel: &str, n: i64) {
        self.pending.get_or_create(&label(channel)).set(n);
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::encoding::text::encode;

    use super::*;

    #[test]
    fn exposes_per_channel_series_with_units() {
        let metrics = DeliveryMetrics::default();
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        metrics.sent("mail", [0.2, 0.4]);
        metrics.retried("mail");
        metrics.set_pending("sms", 3);
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        assert!(
            text.contains("hyperwatch_notifications_sent_total{channel=\"mail\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("hyperwatch_notifications_retried_total{channel=\"mail\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("hyperwatch_notifications_pending{channel=\"sms\"} 3"),
            "{text}"
        );
        assert!(
            text.contains(
                "hyperwatch_notification_delivery_latency_seconds_count{channel=\"mail\"} 2"
            ),
            "{text}"
        );
    }
}
