//! Given lines of a policy test ("2s step restart-service succeeded"):
//! each a time, a verb and its words, turned into an engine input.

use std::collections::BTreeMap;

use super::format::{Given, GivenKind};
use super::lines::{Line, Tok};
use crate::diag::Diagnostic;
use crate::input::{InputKind, Sample, Silence, StepResult};
use crate::target::{HostState, TargetInfo, TargetRef};
use crate::time::{Duration, Timestamp};

/// `KIND:ID [host=H] [name=N] [label=value ...]`, from token `from` on.
pub(super) fn target_spec(
    line: &Line,
    from: usize,
    errors: &mut Vec<Diagnostic>,
) -> Option<TargetInfo> {
    let toks = line.tokens();
    let Some(first) = toks.get(from) else {
        errors.push(
            line.whole("the target is missing")
                .help("write KIND:ID [host=H] [name=N] [label=value ...]"),
        );
        return None;
    };
    let mut info = TargetInfo::bare(line.target(first, errors)?);
    for t in &toks[from + 1..] {
        let Some((k, v)) = t.s.split_once('=') else {
            errors.push(line.at(t, format!("`{}` is not label=value", t.s)));
            continue;
        };
        match k {
            "host" => info.host = Some(v.to_owned()),
            "name" => info.name = v.to_owned(),
            _ => {
                info.labels.insert(k.to_owned(), v.to_owned());
            }
        }
    }
    Some(info)
}

/// `TIME VERB ...`: one input.
pub(super) fn given_line(line: &Line, errors: &mut Vec<Diagnostic>) -> Option<Given> {
    let toks = line.tokens();
    let (Some(time), Some(verb)) = (toks.first(), toks.get(1)) else {
        errors.push(
            line.whole("a given line is `TIME VERB ...`")
                .help("for example \"0s state service:hv1/nginx service=exited\""),
        );
        return None;
    };
    let at = Timestamp(line.duration(time, errors)?.0);
    let args = &toks[2..];
    let need = |n: usize, usage: &str, errors: &mut Vec<Diagnostic>| {
        if args.len() < n {
            errors.push(line.at(verb, format!("`{}` needs more: {usage}", verb.s)));
            false
        } else {
            true
        }
    };
    let what = match verb.s {
        "sample" => {
            if !need(2, "sample TARGET METRIC=VALUE ...", errors) {
                return None;
            }
            let target = line.target(&args[0], errors)?;
            let mut samples = Vec::new();
            for t in &args[1..] {
                let (metric, value) = t.s.split_once('=').unwrap_or((t.s, ""));
                let Ok(value) = value.parse::<f64>() else {
                    errors.push(line.at(t, format!("`{}` is not METRIC=NUMBER", t.s)));
                    return None;
                };
                samples.push(Sample {
                    target: target.clone(),
                    metric: metric.to_owned(),
                    value,
                });
            }
            GivenKind::Input(InputKind::Samples(samples))
        }
        "state" => {
            if !need(2, "state TARGET NAME=VALUE", errors) {
                return None;
            }
            let target = line.target(&args[0], errors)?;
            let Some((name, value)) = args[1].s.split_once('=') else {
                errors.push(line.at(&args[1], format!("`{}` is not NAME=VALUE", args[1].s)));
                return None;
            };
            GivenKind::Input(InputKind::State {
                target,
                name: name.to_owned(),
                value: value.to_owned(),
            })
        }
        "event" => {
            if !need(2, "event TARGET NAME", errors) {
                return None;
            }
            GivenKind::Input(InputKind::Event {
                target: line.target(&args[0], errors)?,
                name: args[1].s.to_owned(),
            })
        }
        "host" => {
            if !need(2, "host HOST healthy|suspect|failed|recovered", errors) {
                return None;
            }
            let Some(state) = HostState::ALL.into_iter().find(|s| s.as_str() == args[1].s) else {
                errors.push(
                    line.at(&args[1], format!("`{}` is not a host state", args[1].s))
                        .help("host states are healthy, suspect, failed and recovered"),
                );
                return None;
            };
            GivenKind::Input(InputKind::HostState {
                host: args[0].s.to_owned(),
                state,
            })
        }
        "step" => return step_line(line, at, args, verb, errors),
        "ack" => {
            if !need(1, "ack INCIDENT [for DUR] [by NAME]", errors) {
                return None;
            }
            let incident = line.incident(&args[0], errors)?;
            let opts = line.options(&args[1..], &["for", "by"], errors)?;
            let until = match opts.get("for") {
                Some(d) => Some(at.plus(line.duration(d, errors)?)),
                None => None,
            };
            let by = opts.get("by").map_or("operator", |t| t.s).to_owned();
            GivenKind::Input(InputKind::Ack {
                incident,
                until,
                by,
            })
        }
        "unack" => {
            if !need(1, "unack INCIDENT", errors) {
                return None;
            }
            GivenKind::Input(InputKind::Unack {
                incident: line.incident(&args[0], errors)?,
            })
        }
        "silence" => {
            let usage = "silence ID LABEL=PATTERN ... for DUR [by NAME]";
            if !need(4, usage, errors) {
                return None;
            }
            let cut = args
                .iter()
                .position(|t| t.s == "for" || t.s == "by")
                .unwrap_or(args.len());
            let mut matchers = Vec::new();
            for t in &args[1..cut] {
                match t.s.parse() {
                    Ok(m) => matchers.push(m),
                    Err(e) => errors.push(line.at(t, format!("{e}"))),
                }
            }
            let opts = line.options(&args[cut..], &["for", "by"], errors)?;
            let Some(d) = opts.get("for") else {
                errors.push(line.at(verb, format!("a silence needs `for DUR`: {usage}")));
                return None;
            };
            let until = at.plus(line.duration(d, errors)?);
            let by = opts.get("by").map_or("operator", |t| t.s).to_owned();
            GivenKind::Input(InputKind::Silence(Silence {
                id: args[0].s.to_owned(),
                matchers,
                until,
                by,
                comment: String::new(),
            }))
        }
        "unsilence" => {
            if !need(1, "unsilence ID", errors) {
                return None;
            }
            GivenKind::Input(InputKind::Unsilence {
                id: args[0].s.to_owned(),
            })
        }
        "maintenance" => {
            if !need(1, "maintenance HOST [for DUR | off]", errors) {
                return None;
            }
            let host = args[0].s.to_owned();
            match &args[1..] {
                [] => GivenKind::Input(InputKind::Maintenance { host, until: None }),
                [off] if off.s == "off" => GivenKind::Input(InputKind::MaintenanceEnd { host }),
                [f, d] if f.s == "for" => GivenKind::Input(InputKind::Maintenance {
                    host,
                    until: Some(at.plus(line.duration(d, errors)?)),
                }),
                [t, ..] => {
                    errors.push(line.at(t, "expected `for DUR` or `off`"));
                    return None;
                }
            }
        }
        "target" => GivenKind::Input(InputKind::Target(target_spec(line, 2, errors)?)),
        "gone" => {
            if !need(1, "gone TARGET", errors) {
                return None;
            }
            GivenKind::Input(InputKind::TargetRemoved(line.target(&args[0], errors)?))
        }
        other => {
            let verbs = [
                "sample",
                "state",
                "event",
                "host",
                "step",
                "ack",
                "unack",
                "silence",
                "unsilence",
                "maintenance",
                "target",
                "gone",
            ];
            let mut d = line.at(
                verb,
                format!("`{other}` is not something that can happen in a test"),
            );
            d = match crate::diag::closest(other, verbs) {
                Some(c) => d.help(format!("did you mean `{c}`?")),
                None => d.help(format!("the verbs are {}", crate::diag::one_of(&verbs))),
            };
            errors.push(d);
            return None;
        }
    };
    Some(Given {
        at,
        line: line.number(),
        what,
    })
}

/// `TIME step ACTION [on TARGET] succeeded | failed [WHY...] | not-available [WHY...]`.
fn step_line(
    line: &Line,
    at: Timestamp,
    args: &[Tok],
    verb: &Tok,
    errors: &mut Vec<Diagnostic>,
) -> Option<Given> {
    let usage = "step ACTION [on TARGET] succeeded | failed [WHY] | not-available [WHY]";
    let (action, rest) = match args {
        [a, rest @ ..] => (a.s.to_owned(), rest),
        [] => {
            errors.push(line.at(verb, format!("`step` needs more: {usage}")));
            return None;
        }
    };
    let (target, rest) = match rest {
        [on, t, tail @ ..] if on.s == "on" => (Some(line.target(t, errors)?), tail),
        _ => (None, rest),
    };
    let why = |tail: &[Tok], default: &str| {
        if tail.is_empty() {
            default.to_owned()
        } else {
            tail.iter().map(|t| t.s).collect::<Vec<_>>().join(" ")
        }
    };
    let result = match rest {
        [r, ..] if r.s == "succeeded" => StepResult::Succeeded,
        [r, tail @ ..] if r.s == "failed" => StepResult::Failed(why(tail, "failed")),
        [r, tail @ ..] if r.s == "not-available" => {
            StepResult::NotAvailable(why(tail, "not available"))
        }
        [r, ..] => {
            errors.push(
                line.at(r, format!("`{}` is not a step result", r.s))
                    .help(usage),
            );
            return None;
        }
        [] => {
            errors.push(line.at(verb, format!("the result is missing: {usage}")));
            return None;
        }
    };
    Some(Given {
        at,
        line: line.number(),
        what: GivenKind::Result {
            action,
            target,
            result,
        },
    })
}

impl Line<'_> {
    pub(super) fn target(&self, t: &Tok, errors: &mut Vec<Diagnostic>) -> Option<TargetRef> {
        t.s.parse()
            .map_err(|e| errors.push(self.at(t, format!("{e}"))))
            .ok()
    }

    pub(super) fn incident(
        &self,
        t: &Tok,
        errors: &mut Vec<Diagnostic>,
    ) -> Option<crate::input::IncidentId> {
        t.s.parse()
            .map_err(|e| errors.push(self.at(t, format!("{e}"))))
            .ok()
    }

    pub(super) fn duration(&self, t: &Tok, errors: &mut Vec<Diagnostic>) -> Option<Duration> {
        Duration::parse(t.s)
            .map_err(|e| errors.push(self.at(t, e.to_string())))
            .ok()
    }

    /// `KEY VALUE` pairs among `keys`.
    pub(super) fn options<'t>(
        &self,
        toks: &'t [Tok],
        keys: &[&str],
        errors: &mut Vec<Diagnostic>,
    ) -> Option<BTreeMap<String, &'t Tok<'t>>> {
        let mut out = BTreeMap::new();
        let mut it = toks.iter();
        while let Some(k) = it.next() {
            if !keys.contains(&k.s) {
                errors.push(
                    self.at(k, format!("unexpected `{}`", k.s))
                        .help(format!("expected {}", crate::diag::one_of(keys))),
                );
                return None;
            }
            let Some(v) = it.next() else {
                errors.push(self.at(k, format!("`{}` needs a value", k.s)));
                return None;
            };
            out.insert(k.s.to_owned(), v);
        }
        Some(out)
    }
}
