//! Compares the expected timeline with what happened and writes the
//! difference: the whole timeline, `-` for expected lines that did not
//! happen, `+` for lines that happened unexpected, with times and file lines.

use std::fmt::Write;

use super::format::Expected;
use crate::time::Timestamp;

/// One line that happened.
pub(super) struct Actual {
    pub at: Timestamp,
    pub text: String,
}

/// The difference, or `None` when the timelines agree. At one instant,
/// lines may be expected in any order; `partial` allows unexpected lines.
pub(super) fn compare(expected: &[Expected], actual: &[Actual], partial: bool) -> Option<String> {
    let mut used = vec![false; expected.len()];
    // For each actual line, the expected line it matches.
    let matched: Vec<Option<usize>> = actual
        .iter()
        .map(|a| {
            let i = expected
                .iter()
                .enumerate()
                .position(|(i, e)| !used[i] && e.at == a.at && e.text == a.text)?;
            used[i] = true;
            Some(i)
        })
        .collect();
    let missing: Vec<&Expected> = expected
        .iter()
        .zip(&used)
        .filter(|(_, u)| !**u)
        .map(|(e, _)| e)
        .collect();
    let extra = matched.iter().filter(|m| m.is_none()).count();
    if missing.is_empty() && (partial || extra == 0) {
        return None;
    }
    let width = actual
        .iter()
        .map(|a| a.at.to_string().len())
        .chain(expected.iter().map(|e| e.at.to_string().len()))
        .max()
        .unwrap_or(2);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "timeline (- expected but did not happen, + happened but was not expected{}):",
        if partial {
            "; partial test: + lines are allowed"
        } else {
            ""
        }
    );
    // Merge by time: actual lines in the order they happened, missing
    // expected lines before the actual lines of a later instant.
    let mut m = missing.iter().peekable();
    for (a, matched) in actual.iter().zip(&matched) {
        while let Some(e) = m.next_if(|e| e.at < a.at) {
            let _ = writeln!(
                out,
                "  - {:>width$}  {}    (line {})",
                e.at.to_string(),
                e.text,
                e.line
            );
        }
        let mark = match matched {
            Some(_) => ' ',
            None if partial => '.',
            None => '+',
        };
        let _ = writeln!(out, "  {mark} {:>width$}  {}", a.at.to_string(), a.text);
    }
    for e in m {
        let _ = writeln!(
            out,
            "  - {:>width$}  {}    (line {})",
            e.at.to_string(),
            e.text,
            e.line
        );
    }
    // The commonest mistake: the right line at the wrong time.
    for e in &missing {
        let elsewhere = actual
            .iter()
            .zip(&matched)
            .find(|(a, m)| m.is_none() && a.text == e.text);
        if let Some((a, _)) = elsewhere {
            let _ = writeln!(
                out,
                "  hint: \"{}\" was expected at {} (line {}) and happened at {}",
                e.text, e.at, e.line, a.at
            );
        }
    }
    if expected.is_empty() && !actual.is_empty() {
        let _ = writeln!(
            out,
            "  hint: the test expects nothing; copy the lines above into `expect` once they look right"
        );
    }
    Some(out)
}
