//! Diagnostics: errors that name file, line and column, show the line with a
//! caret, and say what was expected (with the closest valid name).

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem in one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file the problem is in.
    pub file: PathBuf,
    /// 1-based line; 0 when the problem is the whole file (cannot read it).
    pub line: usize,
    /// 1-based column in characters; 0 with line 0.
    pub column: usize,
    /// What is wrong and what was expected.
    pub message: String,
    /// A suggestion ("did you mean `timeout`?").
    pub help: Option<String>,
    /// The source line, to print under the message.
    pub source_line: Option<String>,
    /// How many characters of the source line the caret underlines.
    pub width: usize,
}

impl Diagnostic {
    /// A problem with the whole file (it cannot be read, it is missing).
    pub fn file(file: &Path, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            file: file.to_owned(),
            line: 0,
            column: 0,
            message: message.into(),
            help: None,
            source_line: None,
            width: 0,
        }
    }

    /// Adds a suggestion.
    pub fn help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    /// `file:line:column`, the place as editors and terminals link it.
    pub fn place(&self) -> String {
        if self.line == 0 {
            self.file.display().to_string()
        } else {
            format!("{}:{}:{}", self.file.display(), self.line, self.column)
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: error: {}", self.place(), self.message)?;
        if let Some(src) = &self.source_line {
            let gutter = self.line.to_string().len();
            let pad = " ".repeat(gutter);
            write!(f, "\n{pad} |\n{} | {src}\n{pad} | ", self.line)?;
            write!(
                f,
                "{}{}",
                " ".repeat(self.column - 1),
                "^".repeat(self.width.max(1))
            )?;
        }
        if let Some(help) = &self.help {
            write!(f, "\n  = help: {help}")?;
        }
        Ok(())
    }
}

/// A file's text, to turn byte spans into places.
#[derive(Clone, Copy)]
pub struct Source<'a> {
    /// Where the text came from.
    pub path: &'a Path,
    /// The whole text.
    pub text: &'a str,
}

impl Source<'_> {
    /// A diagnostic underlining the bytes `span` of the text.
    pub fn error(&self, span: Range<usize>, message: impl Into<String>) -> Diagnostic {
        let start = floor_char_boundary(self.text, span.start.min(self.text.len()));
        let before = &self.text[..start];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let line_end = self.text[start..]
            .find('\n')
            .map_or(self.text.len(), |i| start + i);
        let source_line = self.text[line_start..line_end].trim_end_matches('\r');
        let column = self.text[line_start..start].chars().count() + 1;
        let end = floor_char_boundary(self.text, span.end.clamp(start, line_end));
        Diagnostic {
            file: self.path.to_owned(),
            line,
            column,
            message: message.into(),
            help: None,
            source_line: Some(source_line.to_owned()),
            width: self.text[start..end].chars().count(),
        }
    }

    /// Translates a TOML or serde error, adding the closest valid name to
    /// "unknown field" and "unknown variant" errors.
    pub fn toml_error(&self, e: &toml::de::Error) -> Diagnostic {
        let message = e.message().trim_end().to_owned();
        let span = e.span().unwrap_or(0..0);
        let help = unknown_name_help(&message);
        let mut d = self.error(span, message);
        d.help = help;
        d
    }
}

fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// For serde's "unknown field `x`, expected one of `a`, `b`" messages: the
/// closest of the expected names.
fn unknown_name_help(message: &str) -> Option<String> {
    let rest = message
        .strip_prefix("unknown field `")
        .or_else(|| message.strip_prefix("unknown variant `"))?;
    let (word, expected) = rest.split_once('`')?;
    let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    closest(word, candidates.iter().copied()).map(|c| format!("did you mean `{c}`?"))
}

/// The candidate closest to `word`, if any is close enough to be a likely
/// typo: a case or `_`/`-` slip, or an edit distance of at most a third of
/// the word's length.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let norm = |s: &str| s.to_lowercase().replace('_', "-");
    let w = norm(word);
    candidates
        .into_iter()
        .map(|c| (strsim::osa_distance(&w, &norm(c)), c))
        .filter(|(d, _)| *d <= w.chars().count().div_ceil(3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// `a`, `b` or `c`: a list of names for messages.
pub fn one_of<S: AsRef<str>>(names: &[S]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{}`", n.as_ref())).collect();
    match quoted.as_slice() {
        [] => "nothing".to_owned(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_and_carets_follow_characters_not_bytes() {
        let text = "a = 1\n# é\nbad = 2\n";
        let src = Source {
            path: Path::new("p.toml"),
            text,
        };
        let start = text.find("bad").unwrap();
        let d = src.error(start..start + 3, "unknown field `bad`");
        assert_eq!((d.line, d.column, d.width), (3, 1, 3));
        assert_eq!(
            d.to_string(),
            "p.toml:3:1: error: unknown field `bad`\n  |\n3 | bad = 2\n  | ^^^"
        );
    }

    #[test]
    fn closest_name_catches_typos_but_not_strangers() {
        let keys = ["timeout", "attempts", "verify_within", "kind"];
        assert_eq!(closest("tiemout", keys), Some("timeout"));
        assert_eq!(closest("verify-within", keys), Some("verify_within"));
        assert_eq!(closest("Kind", keys), Some("kind"));
        assert_eq!(closest("colour", keys), None);
    }

    #[test]
    fn unknown_field_messages_get_a_suggestion() {
        let help = unknown_name_help("unknown field `atempts`, expected one of `kind`, `attempts`");
        assert_eq!(help.as_deref(), Some("did you mean `attempts`?"));
        assert_eq!(unknown_name_help("missing field `kind`"), None);
    }
}
