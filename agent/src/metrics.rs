//! The agent's in-memory metric model: what a collector returns.
//!
//! Collectors fill [`Families`] with plain values; the exposition module turns
//! them into Prometheus or OpenMetrics text, and the stream (later) into
//! telemetry. Keeping collectors free of any encoder makes them testable on
//! values, and lets a failing collector drop its partial output cleanly.

/// What kind of series a family holds, as Prometheus defines it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Monotonic counter. The family name carries no `_total` suffix; the
    /// encoder adds it, as OpenMetrics requires.
    Counter,
    /// A value that goes up and down.
    Gauge,
    /// Cumulative histogram with `le` buckets.
    Histogram,
}

/// One sample value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A counter or gauge value.
    Scalar(f64),
    /// A histogram: per-bucket (not cumulative) counts by upper bound,
    /// ascending and ending with `f64::INFINITY`; the total count and the sum
    /// of observations. The encoder makes the counts cumulative.
    Histogram {
        buckets: Vec<(f64, u64)>,
        count: u64,
        sum: f64,
    },
}

/// A labelled sample of a family.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub labels: Vec<(&'static str, String)>,
    pub value: Value,
}

/// A metric family: name, help, kind and samples.
#[derive(Clone, Debug, PartialEq)]
pub struct Family {
    pub name: String,
    pub help: String,
    pub kind: Kind,
    pub samples: Vec<Sample>,
}

impl Family {
    /// Creates an empty family.
    pub fn new(name: impl Into<String>, help: impl Into<String>, kind: Kind) -> Self {
        Self {
            name: name.into(),
            help: help.into(),
            kind,
            samples: Vec::new(),
        }
    }

    /// Adds a scalar sample.
    pub fn push(&mut self, labels: Vec<(&'static str, String)>, value: f64) -> &mut Self {
        self.samples.push(Sample {
            labels,
            value: Value::Scalar(value),
        });
        self
    }

    /// Adds an unlabelled scalar sample.
    pub fn with(mut self, value: f64) -> Self {
        self.push(Vec::new(), value);
        self
    }

    /// The value of the sample whose labels equal `labels`, if scalar.
    pub fn get(&self, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples.iter().find_map(|s| {
            let same = s.labels.len() == labels.len()
                && s.labels
                    .iter()
                    .zip(labels)
                    .all(|((k, v), (lk, lv))| k == lk && v == lv);
            match (&s.value, same) {
                (Value::Scalar(v), true) => Some(*v),
                _ => None,
            }
        })
    }
}

/// The families one collector produced in one collection.
#[derive(Debug, Default)]
pub struct Families(pub Vec<Family>);

impl Families {
    /// Adds a family and returns it for filling.
    pub fn add(&mut self, name: &str, help: &str, kind: Kind) -> &mut Family {
        self.0.push(Family::new(name, help, kind));
        self.0.last_mut().expect("just pushed")
    }

    /// Adds an unlabelled gauge.
    pub fn gauge(&mut self, name: &str, help: &str, value: f64) {
        self.add(name, help, Kind::Gauge).push(Vec::new(), value);
    }

    /// Adds an unlabelled counter (name without `_total`).
    pub fn counter(&mut self, name: &str, help: &str, value: f64) {
        self.add(name, help, Kind::Counter).push(Vec::new(), value);
    }

    /// Finds a family by name (without `_total` for counters).
    pub fn find(&self, name: &str) -> Option<&Family> {
        self.0.iter().find(|f| f.name == name)
    }
}
