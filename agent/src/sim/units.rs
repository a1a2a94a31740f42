//! Sizes and times in scenario files: bytes as a number or with a unit
//! ("8 GiB", "500 MB"), seconds as a number or a duration ("1m30s").

use std::fmt;

use serde::{Deserialize, Deserializer, de};

/// A byte count: an integer, or a string with a unit ("8 GiB", "500 MB").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Bytes(pub u64);

/// Seconds: a number, or a duration string ("1m30s", "250ms").
#[derive(Clone, Copy, Debug, Default, PartialEq, PartialOrd)]
pub struct Seconds(pub f64);

/// Units a byte string may carry, with their factors.
const BYTE_UNITS: &[(&str, u64)] = &[
    ("b", 1),
    ("kb", 1_000),
    ("mb", 1_000_000),
    ("gb", 1_000_000_000),
    ("tb", 1_000_000_000_000),
    ("kib", 1 << 10),
    ("mib", 1 << 20),
    ("gib", 1 << 30),
    ("tib", 1 << 40),
];

/// Parses "8 GiB", "1.5TB", "4096".
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = (&t[..split], t[split..].trim().to_ascii_lowercase());
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size (for example \"8 GiB\" or 4096)"))?;
    let factor = if unit.is_empty() {
        1
    } else {
        BYTE_UNITS
            .iter()
            .find(|(u, _)| *u == unit)
            .map(|(_, f)| *f)
            .ok_or_else(|| {
                format!("{text:?}: unknown unit {unit:?} (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)")
            })?
    };
    Ok((value * factor as f64).round() as u64)
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Bytes;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a byte count or a size such as \"8 GiB\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Bytes, E> {
                Ok(Bytes(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Bytes, E> {
                u64::try_from(v)
                    .map(Bytes)
                    .map_err(|_| E::custom("a size cannot be negative"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Bytes, E> {
                parse_bytes(v).map(Bytes).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Seconds;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("seconds or a duration such as \"1m30s\"")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Seconds, E> {
                if v.is_finite() && v >= 0.0 {
                    Ok(Seconds(v))
                } else {
                    Err(E::custom("a time must be a finite number >= 0"))
                }
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Seconds, E> {
                Ok(Seconds(v as f64))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Seconds, E> {
                self.visit_f64(v as f64)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Seconds, E> {
                humantime::parse_duration(v)
                    .map(|d| Seconds(d.as_secs_f64()))
                    .map_err(|e| E::custom(format!("{v:?} is not a duration: {e}")))
            }
        }
        d.deserialize_any(V)
    }
}

/// `bytes` in the largest binary unit that keeps it at 1 or more, for the
/// timeline ("2 GiB", "512 MiB", "100 B").
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    let shown = format!("{value:.1}");
    format!("{} {}", shown.trim_end_matches(".0"), UNITS[unit])
}

#[cfg(test)]
mod tests {
    #[test]
    fn bytes_for_people() {
        assert_eq!(super::human_bytes(2 << 30), "2 GiB");
        assert_eq!(super::human_bytes(1536 << 20), "1.5 GiB");
        assert_eq!(super::human_bytes(100), "100 B");
    }
}
