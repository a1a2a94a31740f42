//! Encodes collected families as OpenMetrics (through prometheus-client) or
//! as the Prometheus text format 0.0.4, chosen by the scraper's Accept header.
//!
//! prometheus-client writes OpenMetrics only. The 0.0.4 text is derived from
//! it line by line: counters are typed under their `_total` sample name, and
//! the `# EOF` marker goes. Both formats carry identical samples.

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
    registry::Registry,
};

use crate::metrics::{Family, Kind, Value};

/// Content type of the OpenMetrics exposition.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Content type of the classic Prometheus text exposition.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The exposition format a scraper asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    OpenMetrics,
    Text,
}

impl Format {
    /// Picks the format from an HTTP Accept header: OpenMetrics when the
    /// scraper lists it (Prometheus does, first, by default), text otherwise.
    pub fn negotiate(accept: Option<&str>) -> Self {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Text,
        }
    }

    /// The Content-Type header value of this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
            Format::Text => TEXT_CONTENT_TYPE,
        }
    }
}

/// Encodes `families` in `format`.
pub fn encode(families: Vec<Family>, format: Format) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Snapshot(families)));
    let mut out = String::with_capacity(64 * 1024);
    prometheus_client::encoding::text::encode(&mut out, &registry)
        .expect("writing to a String cannot fail");
    match format {
        Format::OpenMetrics => out,
        Format::Text => openmetrics_to_text(&out),
    }
}

/// Rewrites prometheus-client's OpenMetrics output as text format 0.0.4.
fn openmetrics_to_text(open: &str) -> String {
    let mut out = String::with_capacity(open.len());
    let mut pending_help: Option<&str> = None;
    for line in open.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            // Held until the TYPE line says whether the name needs `_total`.
            pending_help = Some(rest);
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let suffix = if kind == "counter" { "_total" } else { "" };
            if let Some(help) = pending_help.take() {
                let help = help.strip_prefix(name).unwrap_or(help);
                out.push_str("# HELP ");
                out.push_str(name);
                out.push_str(suffix);
                out.push_str(help);
                out.push('\n');
            }
            out.push_str("# TYPE ");
            out.push_str(name);
            out.push_str(suffix);
            out.push(' ');
            out.push_str(kind);
            out.push('\n');
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// A one-scrape collector over already collected families.
#[derive(Debug)]
struct Snapshot(Vec<Family>);

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for family in &self.0 {
            let metric_type = match family.kind {
                Kind::Counter => MetricType::Counter,
                Kind::Gauge => MetricType::Gauge,
                Kind::Histogram => MetricType::Histogram,
            };
            let mut metric =
                encoder.encode_descriptor(&family.name, &family.help, None, metric_type)?;
            for sample in &family.samples {
                let labels: &[(&'static str, String)] = &sample.labels;
                let mut series = metric.encode_family(&labels)?;
                match (&sample.value, family.kind) {
                    (Value::Scalar(v), Kind::Counter) => {
                        ConstCounter::new(*v).encode(series)?;
                    }
                    (Value::Scalar(v), _) => {
                        ConstGauge::new(*v).encode(series)?;
                    }
                    (
                        Value::Histogram {
                            buckets,
                            count,
                            sum,
                        },
                        _,
                    ) => {
                        series.encode_histogram::<NoLabelSet>(*sum, *count, buckets, None)?;
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Families;

    fn sample() -> Vec<Family> {
        let mut f = Families::default();
        f.add(
            "node_cpu_seconds",
            "Seconds the CPUs spent in each mode.",
            Kind::Counter,
        )
        .push(vec![("cpu", "0".into()), ("mode", "idle".into())], 12.5);
        f.gauge("node_load1", "1m load average.", 0.25);
        f.add("hyperwatch_lat_seconds", "Latency.", Kind::Histogram)
            .samples
            .push(crate::metrics::Sample {
                labels: vec![("device", "sd\"a".into())],
                value: Value::Histogram {
                    buckets: vec![(0.001, 2), (0.002, 3), (f64::INFINITY, 1)],
                    count: 6,
                    sum: 0.01,
                },
            });
        f.0
    }

    #[test]
    fn text_format_types_counters_by_their_total_name() {
        let text = encode(sample(), Format::Text);
        assert!(
            text.contains("# HELP node_cpu_seconds_total Seconds the CPUs spent in each mode.\n")
        );
        assert!(text.contains("# TYPE node_cpu_seconds_total counter\n"));
        assert!(text.contains("node_cpu_seconds_total{cpu=\"0\",mode=\"idle\"} 12.5\n"));
        assert!(text.contains("# TYPE node_load1 gauge\nnode_load1 0.25\n"));
        assert!(!text.contains("# EOF"));
    }

    #[test]
    fn openmetrics_keeps_family_names_and_eof() {
        let text = encode(sample(), Format::OpenMetrics);
        assert!(text.contains("# TYPE node_cpu_seconds counter\n"));
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_labels_escaped() {
        let text = encode(sample(), Format::Text);
        assert!(
            text.contains("hyperwatch_lat_seconds_bucket{le=\"0.002\",device=\"sd\\\"a\"} 5\n"),
            "{text}"
        );
        assert!(text.contains("hyperwatch_lat_seconds_bucket{le=\"+Inf\",device=\"sd\\\"a\"} 6\n"));
        assert!(text.contains("hyperwatch_lat_seconds_count{device=\"sd\\\"a\"} 6\n"));
    }

    #[test]
    fn negotiation_prefers_openmetrics_only_when_asked() {
        assert_eq!(Format::negotiate(None), Format::Text);
        assert_eq!(Format::negotiate(Some("text/plain")), Format::Text);
        assert_eq!(
            Format::negotiate(Some(
                "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
            )),
            Format::OpenMetrics
        );
    }
}
