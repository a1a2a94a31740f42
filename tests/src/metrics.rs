//! Reading a Prometheus text exposition in tests: samples by name and
//! labels, and histogram count/sum/buckets.

use std::{collections::BTreeMap, net::SocketAddr};

use anyhow::{Context, bail};

/// One sample line.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A parsed scrape.
#[derive(Clone, Debug, Default)]
pub struct Scrape(pub Vec<Sample>);

impl Scrape {
    /// GETs /metrics (text format) from `addr` and parses it.
    pub fn get(addr: SocketAddr) -> anyhow::Result<Self> {
        let r = crate::http::get(addr, "/metrics", &[("Accept", "text/plain")])?;
        if r.status != 200 {
            bail!("GET /metrics answered {}", r.status);
        }
        parse(&r.body)
    }

    /// The value of the sample `name` whose labels include all of `labels`.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.find(name, labels).map(|s| s.value)
    }

    /// Like [`Scrape::value`], failing with the family's samples shown.
    pub fn require(&self, name: &str, labels: &[(&str, &str)]) -> anyhow::Result<f64> {
        self.value(name, labels).with_context(|| {
            let family: Vec<String> = self
                .0
                .iter()
                .filter(|s| s.name.starts_with(name))
                .map(|s| format!("{}{:?} {}", s.name, s.labels, s.value))
                .collect();
            format!("no sample {name}{labels:?}; samples of the family: {family:#?}")
        })
    }

    /// Every sample called `name` whose labels include `labels`.
    pub fn all(&self, name: &str, labels: &[(&str, &str)]) -> Vec<&Sample> {
        self.0
            .iter()
            .filter(|s| s.name == name && has_labels(s, labels))
            .collect()
    }

    fn find(&self, name: &str, labels: &[(&str, &str)]) -> Option<&Sample> {
        self.0
            .iter()
            .find(|s| s.name == name && has_labels(s, labels))
    }

    /// (count, sum) of histogram `name` with `labels`.
    pub fn histogram(&self, name: &str, labels: &[(&str, &str)]) -> anyhow::Result<(f64, f64)> {
        Ok((
            self.require(&format!("{name}_count"), labels)?,
            self.require(&format!("{name}_sum"), labels)?,
        ))
    }
}

fn has_labels(s: &Sample, labels: &[(&str, &str)]) -> bool {
    labels
        .iter()
        .all(|(k, v)| s.labels.get(*k).is_some_and(|x| x == v))
}

/// Parses the text format (comments skipped).
pub fn parse(text: &str) -> anyhow::Result<Scrape> {
    let mut samples = Vec::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (head, value) = line
            .rsplit_once(' ')
            .with_context(|| format!("no value in {line:?}"))?;
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v
                .parse()
                .with_context(|| format!("bad value in {line:?}"))?,
        };
        let (name, labels) = match head.split_once('{') {
            Some((name, rest)) => (
                name,
                parse_labels(rest.strip_suffix('}').context("unclosed labels")?)?,
            ),
            None => (head, BTreeMap::new()),
        };
        samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    Ok(Scrape(samples))
}

fn parse_labels(text: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"").context("label without =\"")?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => bail!("dangling escape"),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => bail!("unterminated label value"),
            }
        };
        labels.insert(key.trim_start_matches(',').to_owned(), value);
        rest = after[end + 1..].trim_start_matches(',');
    }
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_labels_values_and_histograms() {
        let s = parse(
            "# TYPE x counter\nx_total{a=\"1\",b=\"q\\\"\"} 2.5\nh_count{le=\"+Inf\",d=\"v\"} 3\nh_sum{d=\"v\"} 0.5\ny 1e3\n",
        )
        .unwrap();
        assert_eq!(s.value("x_total", &[("b", "q\"")]), Some(2.5));
        assert_eq!(s.histogram("h", &[("d", "v")]).unwrap(), (3.0, 0.5));
        assert_eq!(s.value("y", &[]), Some(1000.0));
        assert!(s.require("nope", &[]).is_err());
    }
}
