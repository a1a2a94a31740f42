//! Virtual time: instants and durations in milliseconds, written the way
//! operators write them ("90s", "1h30m") in policy and test files.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An instant in milliseconds since an epoch the caller chooses: the Unix
/// epoch in the watchdog, the start of the test in policy tests. The engine
/// never reads a clock; every instant it knows came from an input.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// The instant `d` later (saturating at the end of time).
    pub fn plus(self, d: Duration) -> Timestamp {
        Timestamp(self.0.saturating_add(d.0))
    }

    /// The instant `d` earlier (saturating at the epoch).
    pub fn minus(self, d: Duration) -> Timestamp {
        Timestamp(self.0.saturating_sub(d.0))
    }

    /// How long after `earlier` this instant is (zero if it is not later).
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration(self.0.saturating_sub(earlier.0))
    }
}

impl fmt::Display for Timestamp {
    /// Written as the duration since the epoch: test timelines read "10m30s".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Duration(self.0).fmt(f)
    }
}

/// A span of virtual time in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(pub u64);

/// Units a duration may be written in, largest first (the order `Display`
/// uses to write the shortest form).
const UNITS: [(&str, u64); 5] = [
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

/// A duration that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid duration `{text}`: {problem}; write a whole number and a unit (ms, s, m, h, d), several in a row if you like, for example \"90s\", \"5m\" or \"1h30m\""
)]
pub struct DurationError {
    /// What was written.
    pub text: String,
    /// What is wrong with it.
    pub problem: &'static str,
}

impl Duration {
    /// Zero length.
    pub const ZERO: Duration = Duration(0);

    /// `n` seconds.
    pub const fn secs(n: u64) -> Duration {
        Duration(n * 1_000)
    }

    /// `n` minutes.
    pub const fn mins(n: u64) -> Duration {
        Duration(n * 60_000)
    }

    /// Parses "500ms", "90s", "5m", "1h30m", "2d".
    pub fn parse(text: &str) -> Result<Duration, DurationError> {
        let err = |problem| DurationError {
            text: text.to_owned(),
            problem,
        };
        if text.is_empty() {
            return Err(err("it is empty"));
        }
        if text.contains(char::is_whitespace) {
            return Err(err("it contains a space"));
        }
        let mut rest = text;
        let mut total: u64 = 0;
        while !rest.is_empty() {
            let digits = rest.chars().take_while(char::is_ascii_digit).count();
            if digits == 0 {
                return Err(err("a number must come before each unit"));
            }
            let n: u64 = rest[..digits]
                .parse()
                .map_err(|_| err("the number is too large"))?;
            rest = &rest[digits..];
            let unit_len = rest.chars().take_while(char::is_ascii_alphabetic).count();
            if unit_len == 0 {
                return Err(err("the unit is missing"));
            }
            let unit = &rest[..unit_len];
            let Some(&(_, ms)) = UNITS.iter().find(|(u, _)| *u == unit) else {
                return Err(err("the unit is not one of ms, s, m, h, d"));
            };
            total = n
                .checked_mul(ms)
                .and_then(|v| total.checked_add(v))
                .ok_or_else(|| err("the number is too large"))?;
            rest = &rest[unit_len..];
        }
        Ok(Duration(total))
    }
}

impl fmt::Display for Duration {
    /// The shortest exact form: "0s", "500ms", "1h30m", "1m0s500ms" never
    /// appears because zero parts are skipped ("1m500ms").
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("0s");
        }
        let mut rest = self.0;
        for (unit, ms) in UNITS {
            if rest >= ms {
                write!(f, "{}{unit}", rest / ms)?;
                rest %= ms;
            }
        }
        Ok(())
    }
}

impl FromStr for Duration {
    type Err = DurationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Duration::parse(s)
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration string such as \"90s\" or \"5m\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Duration, E> {
                Duration::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_str(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_compound_durations() {
        assert_eq!(Duration::parse("90s").unwrap(), Duration::secs(90));
        assert_eq!(Duration::parse("1h30m").unwrap(), Duration::mins(90));
        assert_eq!(Duration::parse("250ms").unwrap(), Duration(250));
        assert_eq!(Duration::parse("2d").unwrap(), Duration(2 * 86_400_000));
        assert_eq!(Duration::parse("0s").unwrap(), Duration::ZERO);
    }

    #[test]
    fn rejects_what_is_not_a_duration_and_says_why() {
        for (text, problem) in [
            ("", "it is empty"),
            ("5", "the unit is missing"),
            ("m5", "a number must come before each unit"),
            ("5 min", "it contains a space"),
            ("5min", "the unit is not one of ms, s, m, h, d"),
            ("5w", "the unit is not one of ms, s, m, h, d"),
            ("99999999999999999999s", "the number is too large"),
        ] {
            let e = Duration::parse(text).unwrap_err();
            assert_eq!(e.problem, problem, "{text}");
            assert!(e.to_string().contains("\"1h30m\""), "{e}");
        }
    }

    #[test]
    fn writes_the_shortest_exact_form_and_reads_it_back() {
        for ms in [0, 1, 999, 1_000, 60_500, 5_400_000, 90_061_001] {
            let d = Duration(ms);
            assert_eq!(Duration::parse(&d.to_string()).unwrap(), d, "{d}");
        }
        assert_eq!(Duration::mins(90).to_string(), "1h30m");
        assert_eq!(Duration(60_500).to_string(), "1m500ms");
    }
}
