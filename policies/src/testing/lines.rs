//! Words inside the strings of a test file, with their places in the file,
//! so an error in "2s stpe restart-service succeeded" points at `stpe`.

use std::ops::Range;

use toml::Spanned;

use crate::diag::{Diagnostic, Source};

/// One word of a line and its byte offset in the string.
#[derive(Clone, Copy, Debug)]
pub(super) struct Tok<'a> {
    pub s: &'a str,
    pub at: usize,
}

/// A TOML string holding one line, and where it sits in the file.
pub(super) struct Line<'a> {
    src: &'a Source<'a>,
    text: &'a str,
    span: Range<usize>,
    /// Byte offset of the string's first character in the file, when the
    /// file holds it verbatim (no escapes), so words can be placed exactly.
    base: Option<usize>,
}

impl<'a> Line<'a> {
    pub fn of(src: &'a Source<'a>, s: &'a Spanned<String>) -> Line<'a> {
        let span = s.span();
        let inner = span.start + 1..span.end.saturating_sub(1);
        let verbatim = src.text.get(inner.clone()) == Some(s.get_ref().as_str());
        Line {
            src,
            text: s.get_ref(),
            span,
            base: verbatim.then_some(inner.start),
        }
    }

    pub fn tokens(&self) -> Vec<Tok<'a>> {
        let mut out = Vec::new();
        let mut start = None;
        for (i, c) in self.text.char_indices() {
            match (c.is_whitespace(), start) {
                (true, Some(s)) => {
                    out.push(Tok {
                        s: &self.text[s..i],
                        at: s,
                    });
                    start = None;
                }
                (false, None) => start = Some(i),
                _ => {}
            }
        }
        if let Some(s) = start {
            out.push(Tok {
                s: &self.text[s..],
                at: s,
            });
        }
        out
    }

    /// An error underlining one word.
    pub fn at(&self, t: &Tok, message: impl Into<String>) -> Diagnostic {
        match self.base {
            Some(b) => self.src.error(b + t.at..b + t.at + t.s.len(), message),
            None => self.src.error(self.span.clone(), message),
        }
    }

    /// An error underlining the whole string.
    pub fn whole(&self, message: impl Into<String>) -> Diagnostic {
        self.src.error(self.span.clone(), message)
    }

    /// The 1-based line of the file the string is on.
    pub fn number(&self) -> usize {
        self.src.error(self.span.clone(), "").line
    }
}

/// Expands one series value: `0.5`, `0.5x3` (3 times), `1+2x4` (1 3 5 7),
/// `10-1x3` (10 9 8), `_` (no sample), `_x3`. `None` if it does not parse.
pub(super) fn expand_values(v: &str) -> Option<Vec<Option<f64>>> {
    let (base, count) = match v.rsplit_once('x') {
        Some((b, n)) => (b, n.parse::<usize>().ok().filter(|n| *n > 0)?),
        None => (v, 1),
    };
    if base == "_" {
        return Some(vec![None; count]);
    }
    // An operator after the first character separates start and step
    // (the first may be a minus sign).
    let op = base
        .char_indices()
        .skip(1)
        .find(|(i, c)| (*c == '+' || *c == '-') && !base[..*i].ends_with(['e', 'E']));
    let (start, step) = match op {
        Some((i, c)) => {
            let step: f64 = base[i + 1..].parse().ok()?;
            (
                base[..i].parse::<f64>().ok()?,
                if c == '-' { -step } else { step },
            )
        }
        None => (base.parse::<f64>().ok()?, 0.0),
    };
    if !start.is_finite() || !step.is_finite() {
        return None;
    }
    Some((0..count).map(|k| Some(start + step * k as f64)).collect())
}

#[cfg(test)]
mod tests {
    use super::expand_values;

    #[test]
    fn series_values_expand() {
        assert_eq!(expand_values("0.5"), Some(vec![Some(0.5)]));
        assert_eq!(expand_values("2x3"), Some(vec![Some(2.0); 3]));
        assert_eq!(
            expand_values("1+2x4"),
            Some(vec![Some(1.0), Some(3.0), Some(5.0), Some(7.0)])
        );
        assert_eq!(
            expand_values("10-1x3"),
            Some(vec![Some(10.0), Some(9.0), Some(8.0)])
        );
        assert_eq!(expand_values("-1+1x2"), Some(vec![Some(-1.0), Some(0.0)]));
        assert_eq!(expand_values("_x2"), Some(vec![None, None]));
        assert_eq!(expand_values("1e3"), Some(vec![Some(1000.0)]));
        for bad in ["", "x3", "1x0", "abc", "1+x2", "nan", "inf"] {
            assert_eq!(expand_values(bad), None, "{bad}");
        }
    }
}
