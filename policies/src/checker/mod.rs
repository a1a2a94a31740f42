//! `hyperwatch policy check`: parses and checks policy files, reporting every
//! problem with file, line, column and what was expected; and loads a checked
//! directory into the [`PolicySet`] the engine runs.
//!
//! Layout:
//! * `condition`: `[when]` and `[clear]`.
//! * `compile`: the rest of a policy (targets, steps, ladder, grouping).

mod compile;
mod condition;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

pub use compile::file_stem;

use crate::ast::PolicyFile;
use crate::diag::{Diagnostic, Source};
use crate::policy::{Policy, PolicySet};

/// What the caller knows about the world the policies run in.
#[derive(Clone, Debug, Default)]
pub struct CheckOptions {
    /// Channel names configured in the watchdog; `None`: not checked.
    pub channels: Option<BTreeSet<String>>,
    /// Agent action names the agents allow; `None`: not checked.
    pub actions: Option<BTreeSet<String>>,
}

/// The result of checking policy files.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// The files looked at, in order.
    pub files: Vec<PathBuf>,
    /// Names of the policies that checked.
    pub policies: Vec<String>,
    /// Every problem found.
    pub errors: Vec<Diagnostic>,
    /// Which name lists were not given, so not checked.
    pub unchecked: Vec<&'static str>,
}

impl Report {
    /// Whether everything checked.
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for e in &self.errors {
            writeln!(f, "{e}\n")?;
        }
        let bad: BTreeSet<&PathBuf> = self.errors.iter().map(|e| &e.file).collect();
        let count =
            |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        let files = count(self.files.len(), "file", "files");
        if self.errors.is_empty() {
            write!(
                f,
                "ok: {} in {files}",
                count(self.policies.len(), "policy", "policies")
            )?;
        } else {
            write!(
                f,
                "{} in {} of {files}",
                count(self.errors.len(), "error", "errors"),
                bad.len()
            )?;
        }
        for what in &self.unchecked {
            write!(f, "\nnote: {what} names not checked (no list given)")?;
        }
        Ok(())
    }
}

/// Parses and checks one policy file's text; `path` names it in errors.
pub fn parse_policy(
    text: &str,
    path: &Path,
    opts: &CheckOptions,
) -> Result<Policy, Vec<Diagnostic>> {
    let src = Source { path, text };
    let file: PolicyFile = toml::from_str(text).map_err(|e| {
        let mut d = src.toml_error(&e);
        if d.message == "missing field `version`" {
            d = d.help(format!(
                "start the file with `version = {}`",
                crate::LANGUAGE_VERSION
            ));
        }
        vec![d]
    })?;
    compile::compile(&src, file, opts)
}

/// The policy files of a directory: `*.toml` except `*.test.toml`, sorted.
pub fn policy_files(dir: &Path) -> Result<Vec<PathBuf>, Diagnostic> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| Diagnostic::file(dir, format!("cannot read policy directory: {e}")))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            name.ends_with(".toml") && !name.ends_with(".test.toml") && p.is_file()
        })
        .collect();
    files.sort();
    Ok(files)
}

/// Checks the given policy files together (names must be unique across
/// them) and returns the policies that checked beside the report.
pub fn check_files(files: &[PathBuf], opts: &CheckOptions) -> (Vec<Policy>, Report) {
    let mut report = Report {
        files: files.to_vec(),
        ..Report::default()
    };
    if opts.channels.is_none() {
        report.unchecked.push("channel");
    }
    if opts.actions.is_none() {
        report.unchecked.push("action");
    }
    let mut policies: Vec<Policy> = Vec::new();
    let mut seen: BTreeMap<String, PathBuf> = BTreeMap::new();
    for path in files {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                report.errors.push(Diagnostic::file(
                    path,
                    format!("cannot read policy file: {e}"),
                ));
                continue;
            }
        };
        match parse_policy(&text, path, opts) {
            Ok(p) => {
                if let Some(first) = seen.get(&p.name) {
                    report.errors.push(duplicate(&text, path, &p.name, first));
                    continue;
                }
                seen.insert(p.name.clone(), path.clone());
                report.policies.push(p.name.clone());
                policies.push(p);
            }
            Err(errs) => report.errors.extend(errs),
        }
    }
    (policies, report)
}

fn duplicate(text: &str, path: &Path, name: &str, first: &Path) -> Diagnostic {
    let src = Source { path, text };
    // Point at the `name = ...` line when there is one; a name taken from the
    // file name has no place in the text.
    let at = text.lines().scan(0, |off, l| {
        let start = *off;
        *off += l.len() + 1;
        Some((start, l))
    });
    let span = at
        .filter(|(_, l)| l.trim_start().starts_with("name"))
        .map(|(s, l)| s..s + l.len())
        .next()
        .unwrap_or(0..0);
    src.error(
        span,
        format!(
            "policy name `{name}` is already used by {}",
            first.display()
        ),
    )
    .help("policy names must be unique: incidents, silences and the audit log refer to them")
}

/// `hyperwatch policy check DIR`: checks every policy file in `dir`.
pub fn check_dir(dir: &Path, opts: &CheckOptions) -> Report {
    match policy_files(dir) {
        Ok(files) => check_files(&files, opts).1,
        Err(d) => Report {
            errors: vec![d],
            ..Report::default()
        },
    }
}

/// Loads a directory for the engine: all of it, or (on any error) nothing,
/// so a reload with a broken file keeps the running set.
pub fn load_dir(dir: &Path, opts: &CheckOptions) -> Result<PolicySet, Report> {
    let files = policy_files(dir).map_err(|d| Report {
        errors: vec![d],
        ..Report::default()
    })?;
    let (policies, report) = check_files(&files, opts);
    if report.is_ok() {
        Ok(PolicySet::new(policies))
    } else {
        Err(report)
    }
}
