//! The policy test file: TOML whose strings are short timeline lines
//! ("2s step restart-service succeeded", "10m inc-1 notify console level 1"),
//! parsed with errors that point at the word inside the string.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::lines::{Line, Tok};
use crate::diag::{Diagnostic, Source};
use crate::input::{InputKind, Sample, StepResult};
use crate::planner::PlanKind;
use crate::target::{TargetInfo, TargetRef};
use crate::time::{Duration, Timestamp};

/// A test file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileToml {
    /// Policy language version (1).
    version: Spanned<u32>,
    /// Policy files under test, relative to the test file.
    policies: Spanned<Vec<Spanned<String>>>,
    /// The inventory every test starts with: `KIND:ID [host=H] [name=N] [label=value ...]`.
    #[serde(default)]
    targets: Vec<Spanned<String>>,
    /// Planner work the simulated planner accepts (failover, rebalance, move-luns).
    #[serde(default)]
    planner: Vec<Spanned<String>>,
    /// How the simulated world answers steps, by action name or step kind.
    #[serde(default)]
    answers: BTreeMap<String, Spanned<String>>,
    /// The tests.
    #[serde(rename = "test", default)]
    tests: Vec<Spanned<CaseToml>>,
}

/// One `[[test]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseToml {
    /// What the test shows.
    name: Spanned<String>,
    /// How long the test runs in virtual time.
    until: Spanned<Duration>,
    /// Inputs: `TIME VERB ...`.
    #[serde(default)]
    given: Vec<Spanned<String>>,
    /// Metric series: `TARGET METRIC every DUR [from TIME] = VALUES`.
    #[serde(default)]
    series: Vec<Spanned<String>>,
    /// Answers for this test (override the file's, per key).
    #[serde(default)]
    answers: BTreeMap<String, Spanned<String>>,
    /// Planner work accepted in this test (replaces the file's list).
    planner: Option<Vec<Spanned<String>>>,
    /// The expected timeline: `TIME LINE`.
    #[serde(default)]
    expect: Vec<Spanned<String>>,
    /// Only check that the expected lines happen; allow others.
    #[serde(default)]
    partial: bool,
}

/// A parsed test file.
pub(super) struct Suite {
    pub policies: Vec<PathBuf>,
    pub targets: Vec<TargetInfo>,
    pub cases: Vec<Case>,
    /// Every answer key with its place, to check against the policies' steps.
    pub answer_keys: Vec<(String, Range<usize>)>,
}

/// A parsed test.
pub(super) struct Case {
    pub name: String,
    pub line: usize,
    pub until: Timestamp,
    pub given: Vec<Given>,
    pub answers: BTreeMap<String, Vec<Answer>>,
    pub planner: Vec<PlanKind>,
    pub expect: Vec<Expected>,
    pub partial: bool,
}

/// An input at a time, from a given line or a series.
pub(super) struct Given {
    pub at: Timestamp,
    pub line: usize,
    pub what: GivenKind,
}

pub(super) enum GivenKind {
    Input(InputKind),
    /// A step result; the run is found when it is due.
    Result {
        action: String,
        target: Option<TargetRef>,
        result: StepResult,
    },
}

/// How the simulated world answers one run of a step.
#[derive(Clone)]
pub(super) enum Answer {
    Reply { after: Duration, result: StepResult },
    Never,
}

/// An expected timeline line.
pub(super) struct Expected {
    pub at: Timestamp,
    pub text: String,
    pub line: usize,
}

/// Parses a test file; every problem is reported.
pub(super) fn parse(src: &Source) -> Result<Suite, Vec<Diagnostic>> {
    let f: FileToml = toml::from_str(src.text).map_err(|e| vec![src.toml_error(&e)])?;
    let mut errors = Vec::new();
    if *f.version.get_ref() != crate::LANGUAGE_VERSION {
        errors.push(
            src.error(
                f.version.span(),
                format!("test file version {} is not supported", f.version.get_ref()),
            )
            .help(format!(
                "this build reads version {}",
                crate::LANGUAGE_VERSION
            )),
        );
    }
    if f.policies.get_ref().is_empty() {
        errors.push(
            src.error(f.policies.span(), "`policies` lists no policy file")
                .help("for example `policies = [\"service-crashed.toml\"]`"),
        );
    }
    let dir = src.path.parent().unwrap_or(std::path::Path::new(""));
    let policies = f
        .policies
        .get_ref()
        .iter()
        .map(|p| dir.join(p.get_ref()))
        .collect();
    let targets = f
        .targets
        .iter()
        .filter_map(|t| super::given::target_spec(&Line::of(src, t), 0, &mut errors))
        .collect();
    let planner = planner_list(src, &f.planner, &mut errors);
    let answers = answer_map(src, &f.answers, &mut errors);
    let mut answer_keys: Vec<(String, Range<usize>)> = f
        .answers
        .iter()
        .map(|(k, v)| (k.clone(), v.span()))
        .collect();
    if f.tests.is_empty() {
        errors.push(
            src.error(0..0, "the file has no [[test]]")
                .help("add `[[test]]` with `name`, `until`, `given` and `expect`"),
        );
    }
    let mut cases = Vec::new();
    for t in &f.tests {
        let c = t.get_ref();
        answer_keys.extend(c.answers.iter().map(|(k, v)| (k.clone(), v.span())));
        let mut merged = answers.clone();
        merged.extend(answer_map(src, &c.answers, &mut errors));
        let mut given: Vec<Given> = c
            .given
            .iter()
            .filter_map(|g| super::given::given_line(&Line::of(src, g), &mut errors))
            .collect();
        for s in &c.series {
            given.extend(series_line(&Line::of(src, s), &mut errors));
        }
        cases.push(Case {
            name: c.name.get_ref().clone(),
            line: src.error(c.name.span(), "").line,
            until: Timestamp(c.until.get_ref().0),
            given,
            answers: merged,
            planner: c
                .planner
                .as_ref()
                .map_or_else(|| planner.clone(), |p| planner_list(src, p, &mut errors)),
            expect: c
                .expect
                .iter()
                .filter_map(|e| expect_line(&Line::of(src, e), &mut errors))
                .collect(),
            partial: c.partial,
        });
    }
    if errors.is_empty() {
        Ok(Suite {
            policies,
            targets,
            cases,
            answer_keys,
        })
    } else {
        Err(errors)
    }
}

fn planner_list(
    src: &Source,
    names: &[Spanned<String>],
    errors: &mut Vec<Diagnostic>,
) -> Vec<PlanKind> {
    let kinds = [PlanKind::Failover, PlanKind::Rebalance, PlanKind::MoveLuns];
    names
        .iter()
        .filter_map(|n| {
            let k = kinds.into_iter().find(|k| k.to_string() == *n.get_ref());
            if k.is_none() {
                errors.push(
                    src.error(n.span(), format!("`{}` is not planner work", n.get_ref()))
                        .help("planner work is `failover`, `rebalance` or `move-luns`"),
                );
            }
            k
        })
        .collect()
}

fn answer_map(
    src: &Source,
    answers: &BTreeMap<String, Spanned<String>>,
    errors: &mut Vec<Diagnostic>,
) -> BTreeMap<String, Vec<Answer>> {
    answers
        .iter()
        .filter_map(|(k, v)| answer(&Line::of(src, v), errors).map(|a| (k.clone(), a)))
        .collect()
}

/// `succeeds after 2s, then fails after 1s because disk full, then never`.
fn answer(line: &Line, errors: &mut Vec<Diagnostic>) -> Option<Vec<Answer>> {
    let toks = line.tokens();
    let mut out = Vec::new();
    for part in toks.split(|t| t.s == "then") {
        let part: Vec<&Tok> = part.iter().collect();
        let Some(first) = part.first() else {
            errors.push(line.whole("an answer is missing around `then`"));
            return None;
        };
        let verb = first.s.trim_end_matches(',');
        let rest = &part[1..];
        let (after, rest) = match rest {
            [a, d, tail @ ..] if a.s == "after" => (line.duration(d, errors)?, tail),
            _ => (Duration::ZERO, rest),
        };
        let why = |rest: &[&Tok], default: &str| match rest {
            [b, tail @ ..] if b.s == "because" => tail
                .iter()
                .map(|t| t.s)
                .collect::<Vec<_>>()
                .join(" ")
                .trim_end_matches(',')
                .to_owned(),
            _ => default.to_owned(),
        };
        out.push(match verb {
            "succeeds" => Answer::Reply { after, result: StepResult::Succeeded },
            "fails" => Answer::Reply { after, result: StepResult::Failed(why(rest, "failed")) },
            "not-available" => Answer::Reply { after, result: StepResult::NotAvailable(why(rest, "not available")) },
            "never" => Answer::Never,
            _ => {
                errors.push(line.at(first, format!("`{verb}` is not an answer")).help(
                    "answers are `succeeds [after DUR]`, `fails [after DUR] [because WHY]`, `not-available [because WHY]` or `never`, joined by `then`",
                ));
                return None;
            }
        });
    }
    Some(out)
}

/// `TARGET METRIC every DUR [from TIME] = VALUES`.
fn series_line(line: &Line, errors: &mut Vec<Diagnostic>) -> Vec<Given> {
    let toks = line.tokens();
    let usage = "TARGET METRIC every DUR [from TIME] = VALUES, for example \"host:hv1 cpu_busy_ratio every 1m = 0.5x3 0.95x10\"";
    let Some(eq) = toks.iter().position(|t| t.s == "=") else {
        errors.push(line.whole(format!("a series is {usage}")));
        return Vec::new();
    };
    let (head, values) = (&toks[..eq], &toks[eq + 1..]);
    let (target, metric, every, from) = match head {
        [t, m, e, d] if e.s == "every" => (t, m, d, None),
        [t, m, e, d, f, s] if e.s == "every" && f.s == "from" => (t, m, d, Some(s)),
        _ => {
            errors.push(line.whole(format!("a series is {usage}")));
            return Vec::new();
        }
    };
    let (Some(target), Some(every)) = (line.target(target, errors), line.duration(every, errors))
    else {
        return Vec::new();
    };
    let start = match from {
        Some(f) => match line.duration(f, errors) {
            Some(d) => d,
            None => return Vec::new(),
        },
        None => Duration::ZERO,
    };
    let mut out = Vec::new();
    let mut i = 0u64;
    for v in values {
        let Some(expanded) = super::lines::expand_values(v.s) else {
            errors.push(line.at(v, format!("`{}` is not a series value", v.s)).help(
                "values are NUMBER, NUMBERxN (N times), A+BxN or A-BxN (N values stepping by B), _ (no sample) or _xN",
            ));
            return Vec::new();
        };
        for value in expanded {
            let at = Timestamp(start.0 + i * every.0);
            i += 1;
            if let Some(value) = value {
                let sample = Sample {
                    target: target.clone(),
                    metric: metric.s.to_owned(),
                    value,
                };
                out.push(Given {
                    at,
                    line: line.number(),
                    what: GivenKind::Input(InputKind::Samples(vec![sample])),
                });
            }
        }
    }
    out
}

/// `TIME LINE`.
fn expect_line(line: &Line, errors: &mut Vec<Diagnostic>) -> Option<Expected> {
    let toks = line.tokens();
    let Some(time) = toks.first() else {
        errors.push(
            line.whole("an expected line is `TIME WHAT`")
                .help("for example \"0s inc-1 firing: service-crashed on service:hv1/nginx\""),
        );
        return None;
    };
    let at = Timestamp(line.duration(time, errors)?.0);
    let text = toks[1..].iter().map(|t| t.s).collect::<Vec<_>>().join(" ");
    Some(Expected {
        at,
        text,
        line: line.number(),
    })
}
