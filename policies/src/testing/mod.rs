//! `hyperwatch policy test`: unit tests for policies in virtual time. A test
//! file names policy files, an inventory, how the world answers steps, and
//! tests: inputs at times, then the exact expected timeline of incidents,
//! steps and notifications. See policies/README.md for the format.
//!
//! Layout:
//! * `lines`: words inside test-file strings, with their places.
//! * `format`: the test file format and its parser.
//! * `given`: given lines, each an input at a time.
//! * `run`: running a test against the real engine in virtual time.
//! * `diff`: comparing timelines and writing the difference.

mod diff;
mod format;
mod given;
mod lines;
mod run;

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::checker::{CheckOptions, check_files};
use crate::diag::{Diagnostic, Source, closest};
use crate::policy::PolicySet;

/// The result of one test.
#[derive(Clone, Debug)]
pub struct TestOutcome {
    /// Its name.
    pub name: String,
    /// The line of its name in the file.
    pub line: usize,
    /// Why it failed (the timeline difference, or an error); `None` passed.
    pub failure: Option<String>,
    /// How much virtual time it ran.
    pub ran_until: crate::time::Timestamp,
    /// How many timeline lines it produced.
    pub events: usize,
}

/// The result of a test file.
#[derive(Clone, Debug)]
pub struct TestReport {
    /// The test file.
    pub file: PathBuf,
    /// Problems with the file or its policies (then no test ran).
    pub errors: Vec<Diagnostic>,
    /// Each test's outcome, in file order.
    pub tests: Vec<TestOutcome>,
}

impl TestReport {
    /// Whether the file checked and every test passed.
    pub fn passed(&self) -> bool {
        self.errors.is_empty() && self.tests.iter().all(|t| t.failure.is_none())
    }
}

impl fmt::Display for TestReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.file.display())?;
        for e in &self.errors {
            writeln!(f, "{e}\n")?;
        }
        for t in &self.tests {
            match &t.failure {
                None => writeln!(
                    f,
                    "  ok    {} ({} lines over {})",
                    t.name, t.events, t.ran_until
                )?,
                Some(why) => {
                    writeln!(f, "  FAIL  {} ({}:{})", t.name, self.file.display(), t.line)?;
                    for l in why.lines() {
                        writeln!(f, "        {l}")?;
                    }
                }
            }
        }
        let failed = self.tests.iter().filter(|t| t.failure.is_some()).count();
        if self.errors.is_empty() {
            let n = self.tests.len();
            write!(
                f,
                "{n} test{}: {} passed, {failed} failed",
                if n == 1 { "" } else { "s" },
                n - failed
            )
        } else {
            write!(f, "{} errors: no test ran", self.errors.len())
        }
    }
}

/// Runs every test in the file at `path`.
pub fn test_file(path: &Path) -> TestReport {
    let mut report = TestReport {
        file: path.to_owned(),
        errors: Vec::new(),
        tests: Vec::new(),
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            report.errors.push(Diagnostic::file(
                path,
                format!("cannot read test file: {e}"),
            ));
            return report;
        }
    };
    let src = Source { path, text: &text };
    let suite = match format::parse(&src) {
        Ok(s) => s,
        Err(errors) => {
            report.errors = errors;
            return report;
        }
    };
    let missing: Vec<&PathBuf> = suite.policies.iter().filter(|p| !p.is_file()).collect();
    for m in missing {
        report.errors.push(Diagnostic::file(
            path,
            format!("policy file {} does not exist", m.display()),
        ));
    }
    if !report.errors.is_empty() {
        return report;
    }
    let (policies, checked) = check_files(&suite.policies, &CheckOptions::default());
    if !checked.is_ok() {
        report.errors = checked.errors;
        return report;
    }
    // Answers for steps no policy has are typos.
    let labels: BTreeSet<String> = policies
        .iter()
        .flat_map(|p| p.steps.iter().map(|s| s.action.label().to_owned()))
        .collect();
    for (key, span) in &suite.answer_keys {
        if !labels.contains(key) {
            let d = src.error(
                span.clone(),
                format!("answer for `{key}`, which no step of the policies asks for"),
            );
            report
                .errors
                .push(match closest(key, labels.iter().map(String::as_str)) {
                    Some(c) => d.help(format!("did you mean `{c}`?")),
                    None => d.help(format!(
                        "the steps are: {}",
                        labels.iter().cloned().collect::<Vec<_>>().join(", ")
                    )),
                });
        }
    }
    if !report.errors.is_empty() {
        return report;
    }
    let set = PolicySet::new(policies);
    for case in &suite.cases {
        let outcome = match run::run(set.clone(), &suite.targets, case) {
            Ok(decisions) => {
                let actual: Vec<diff::Actual> = decisions
                    .iter()
                    .map(|d| diff::Actual {
                        at: d.at,
                        text: d.line(),
                    })
                    .collect();
                TestOutcome {
                    name: case.name.clone(),
                    line: case.line,
                    failure: diff::compare(&case.expect, &actual, case.partial),
                    ran_until: case.until,
                    events: actual.len(),
                }
            }
            Err(e) => TestOutcome {
                name: case.name.clone(),
                line: case.line,
                failure: Some(format!("line {}, at {}: {}", e.line, e.at, e.message)),
                ran_until: e.at,
                events: 0,
            },
        };
        report.tests.push(outcome);
    }
    report
}
