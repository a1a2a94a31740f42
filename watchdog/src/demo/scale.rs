//! Time compression: the demo tells its story N times faster than real
//! life by dividing the waits of the policies (how long a condition must
//! hold, group waits, ladder delays) and the times of the scenarios'
//! phases by the same factor. What bounds an operation (step timeouts,
//! verification windows, recovery budgets) is left as shipped: a bound
//! that is longer than needed changes nothing the demo shows. Pure text to
//! text, so the rewriting is tested without running anything.

use toml::{Table, Value};

/// Keys holding a wait, per policy table: `[when]`/`[clear]` hold and
/// windows, `[group] wait`, a wait step's `duration`, a ladder level's
/// `after` and `repeat`.
const CONDITION_WAITS: [&str; 3] = ["for", "within", "over"];
const GROUP_WAITS: [&str; 1] = ["wait"];
const STEP_WAITS: [&str; 1] = ["duration"];
const LEVEL_WAITS: [&str; 2] = ["after", "repeat"];

/// A file that cannot be compressed.
#[derive(Debug, thiserror::Error)]
pub enum ScaleError {
    /// Not TOML at all.
    #[error("{file}: {message}")]
    Syntax { file: String, message: String },
    /// A value the compression cannot read; the place names the key.
    #[error("{file}: {place}: {message}")]
    Value {
        file: String,
        place: String,
        message: String,
    },
}

/// How much faster than real time the demo runs (1: as shipped).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TimeScale(pub f64);

impl TimeScale {
    /// A story time (seconds at scale 1) in real seconds.
    pub fn real(self, story_seconds: f64) -> f64 {
        story_seconds / self.0
    }

    /// A policy duration, divided; whole milliseconds, at least 1 ms so a
    /// wait never turns into "at once".
    fn duration(self, ms: u64) -> u64 {
        if ms == 0 {
            0
        } else {
            ((ms as f64 / self.0).round() as u64).max(1)
        }
    }

    /// A policy file with its waits divided, and a header saying so.
    pub fn policy(self, text: &str, file: &str) -> Result<String, ScaleError> {
        let mut table = parse(text, file)?;
        for (section, keys) in [("when", &CONDITION_WAITS[..]), ("clear", &CONDITION_WAITS)] {
            if let Some(Value::Table(t)) = table.get_mut(section) {
                self.durations(t, keys, file, section)?;
            }
        }
        if let Some(Value::Table(t)) = table.get_mut("group") {
            self.durations(t, &GROUP_WAITS, file, "group")?;
        }
        for (section, keys) in [("step", &STEP_WAITS[..]), ("escalate", &LEVEL_WAITS)] {
            if let Some(Value::Array(items)) = table.get_mut(section) {
                for (i, item) in items.iter_mut().enumerate() {
                    if let Value::Table(t) = item {
                        self.durations(t, keys, file, &format!("{section}[{i}]"))?;
                    }
                }
            }
        }
        Ok(format!(
            "# Written by `hyperwatch demo` from {file}, {}.\n{}",
            self.describe_policy(),
            render(&table)
        ))
    }

    /// What [`Self::policy`] did, in words.
    pub fn describe_policy(self) -> String {
        if self.0 == 1.0 {
            "with its times as shipped".to_owned()
        } else {
            format!(
                "with its waits (for, within, over, group wait, wait steps, after, repeat) divided by {}; timeouts, verify_within and budget windows as shipped",
                self.0
            )
        }
    }

    fn durations(
        self,
        table: &mut Table,
        keys: &[&str],
        file: &str,
        section: &str,
    ) -> Result<(), ScaleError> {
        for key in keys {
            let Some(value) = table.get_mut(*key) else {
                continue;
            };
            let place = || format!("[{section}] {key}");
            let text = value.as_str().ok_or_else(|| ScaleError::Value {
                file: file.to_owned(),
                place: place(),
                message: format!("{value} is not a duration string"),
            })?;
            let d = hyperwatch_policies::time::Duration::parse(text).map_err(|e| {
                ScaleError::Value {
                    file: file.to_owned(),
                    place: place(),
                    message: e.to_string(),
                }
            })?;
            let scaled = hyperwatch_policies::time::Duration(self.duration(d.0));
            *value = Value::String(scaled.to_string());
        }
        Ok(())
    }

    /// A scenario with its phases' times divided and its fill rates
    /// multiplied (the same bytes land in the shorter time).
    pub fn scenario(self, text: &str, file: &str) -> Result<String, ScaleError> {
        let mut table = parse(text, file)?;
        for section in ["devices", "luns", "phases"] {
            let Some(Value::Array(items)) = table.get_mut(section) else {
                continue;
            };
            for (i, item) in items.iter_mut().enumerate() {
                let Value::Table(t) = item else { continue };
                let place = |key: &str| format!("{section}[{i}] {key}");
                if let Some(at) = t.get_mut("at") {
                    let seconds = number(at, file, &place("at"))?;
                    *at = Value::Float(self.real(seconds));
                }
                if let Some(fill) = t.get_mut("fill_per_second") {
                    let rate = number(fill, file, &place("fill_per_second"))?;
                    *fill = Value::Integer((rate * self.0).round() as i64);
                }
            }
        }
        Ok(format!(
            "# Written by `hyperwatch demo` from {file}: phase times divided by {}, fill rates multiplied by it.\n{}",
            self.0,
            render(&table)
        ))
    }
}

fn parse(text: &str, file: &str) -> Result<Table, ScaleError> {
    text.parse::<Table>().map_err(|e| ScaleError::Syntax {
        file: file.to_owned(),
        message: e.to_string(),
    })
}

fn render(table: &Table) -> String {
    toml::to_string(table).expect("a parsed table renders")
}

/// A plain number (integer or float); sizes and times in words are the
/// scenario format's, but the demo's own files keep these two numeric so
/// they can be scaled.
fn number(value: &Value, file: &str, place: &str) -> Result<f64, ScaleError> {
    match value {
        Value::Integer(i) => Ok(*i as f64),
        Value::Float(f) => Ok(*f),
        other => Err(ScaleError::Value {
            file: file.to_owned(),
            place: place.to_owned(),
            message: format!(
                "{other} is not a plain number; the demo scales this value, so write it in seconds or bytes per second"
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = r#"
version = 1
[target]
kind = "host"
[when]
metric = "cpu_busy_ratio"
above = 0.9
for = "5m"
[clear]
below = 0.75
for = "5m"
[recovery]
max_runs = 2
window = "2h"
[group]
by = ["rack"]
wait = "30s"
[[step]]
kind = "rebalance"
timeout = "20m"
verify_within = "15m"
[[step]]
kind = "wait"
duration = "1m"
[[escalate]]
if = "recovery-failed"
notify = ["console"]
[[escalate]]
after = "1h"
repeat = "30m"
notify = ["email"]
"#;

    #[test]
    fn policy_waits_are_divided_and_bounds_kept() {
        let out = TimeScale(20.0).policy(POLICY, "p.toml").unwrap();
        let t: Table = out.parse().unwrap();
        assert_eq!(t["when"]["for"].as_str(), Some("15s"));
        assert_eq!(t["clear"]["for"].as_str(), Some("15s"));
        assert_eq!(t["group"]["wait"].as_str(), Some("1s500ms"));
        assert_eq!(t["step"][0]["timeout"].as_str(), Some("20m"), "a bound");
        assert_eq!(t["step"][0]["verify_within"].as_str(), Some("15m"));
        assert_eq!(t["step"][1]["duration"].as_str(), Some("3s"));
        assert_eq!(t["recovery"]["window"].as_str(), Some("2h"), "a budget");
        assert_eq!(t["escalate"][1]["after"].as_str(), Some("3m"));
        assert_eq!(t["escalate"][1]["repeat"].as_str(), Some("1m30s"));
        assert!(t["escalate"][0].get("after").is_none());
        assert!(out.starts_with("# Written by `hyperwatch demo` from p.toml"));
    }

    #[test]
    fn every_shipped_policy_compresses_and_still_checks() {
        let dir = std::env::temp_dir().join(format!("hw-scale-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, text) in crate::runtime::source::SHIPPED {
            let out = TimeScale(20.0).policy(text, name).unwrap();
            std::fs::write(dir.join(name), out).unwrap();
        }
        let opts = hyperwatch_policies::CheckOptions {
            channels: Some(["console", "email", "sms"].map(String::from).into()),
            actions: Some(["restart-service".to_owned()].into()),
        };
        let set = hyperwatch_policies::load_dir(&dir, &opts);
        std::fs::remove_dir_all(&dir).unwrap();
        let set = set.unwrap_or_else(|r| panic!("{r}"));
        let cpu = set.iter().find(|p| p.name == "host-cpu-capacity").unwrap();
        assert_eq!(cpu.when.hold, hyperwatch_policies::time::Duration::secs(15));
    }

    #[test]
    fn scenario_phases_are_sooner_and_fills_faster() {
        let text = "[host]\nname = \"st\"\n[[devices]]\nid = \"d\"\nfill_per_second = 100\n[[phases]]\nat = 100\ndevice = \"d\"\nfill_per_second = 1000\n";
        let out = TimeScale(20.0).scenario(text, "s.toml").unwrap();
        let t: Table = out.parse().unwrap();
        assert_eq!(t["phases"][0]["at"].as_float(), Some(5.0));
        assert_eq!(t["phases"][0]["fill_per_second"].as_integer(), Some(20_000));
        assert_eq!(t["devices"][0]["fill_per_second"].as_integer(), Some(2000));
    }

    #[test]
    fn values_it_cannot_scale_name_their_place() {
        let e = TimeScale(5.0)
            .scenario("[[phases]]\nat = \"1m\"\n", "s.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("s.toml: phases[0] at: \"1m\" is not a plain number"),
            "{e}"
        );
        let e = TimeScale(5.0)
            .policy("[when]\nfor = \"5 minutes\"\n", "p.toml")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("p.toml: [when] for: invalid duration"), "{e}");
    }
}
