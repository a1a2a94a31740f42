//! `loadavg`: node_load1, node_load5 and node_load15 from /proc/loadavg.

use std::path::PathBuf;

use super::{CollectError, Collector, parse_error, read};
use crate::metrics::Families;

pub struct LoadavgCollector {
    path: PathBuf,
}

impl LoadavgCollector {
    pub fn new(procfs: PathBuf) -> Self {
        Self {
            path: procfs.join("loadavg"),
        }
    }
}

impl Collector for LoadavgCollector {
    fn name(&self) -> &'static str {
        "loadavg"
    }

    fn collect(&self, out: &mut Families) -> Result<(), CollectError> {
        let loads = parse(&read(&self.path)?).ok_or_else(|| {
            parse_error(
                &self.path,
                "expected three load averages at the start of the line",
            )
        })?;
        for (minutes, value) in ["1", "5", "15"].into_iter().zip(loads) {
            out.gauge(
                &format!("node_load{minutes}"),
                &format!("{minutes}m load average."),
                value,
            );
        }
        Ok(())
    }
}

/// The three load averages of a /proc/loadavg line.
fn parse(text: &str) -> Option<[f64; 3]> {
    let mut fields = text.split_ascii_whitespace().map(str::parse::<f64>);
    Some([
        fields.next()?.ok()?,
        fields.next()?.ok()?,
        fields.next()?.ok()?,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_real_line() {
        assert_eq!(
            parse("0.52 0.58 0.59 2/1187 123456\n"),
            Some([0.52, 0.58, 0.59])
        );
    }

    #[test]
    fn rejects_a_short_line() {
        assert_eq!(parse("0.52 0.58\n"), None);
        assert_eq!(parse(""), None);
    }

    #[test]
    fn missing_file_is_an_error_naming_it() {
        let c = LoadavgCollector::new("/nonexistent-procfs".into());
        let err = c.collect(&mut Families::default()).unwrap_err();
        assert!(err.to_string().contains("/nonexistent-procfs/loadavg"));
    }
}
