//! Checks one parsed policy file and builds the [`Policy`] the engine runs:
//! targets, recovery steps, the ladder, grouping, flapping and the summary.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use toml::Spanned;

use super::CheckOptions;
use super::condition;
use crate::LANGUAGE_VERSION;
use crate::ast::{LevelIf, PolicyFile, StepKindName, StepSection, Verify};
use crate::diag::{Diagnostic, Source, closest};
use crate::policy::*;
use crate::target::{Selector, TargetKind};
use crate::time::Duration;

/// Checks a parsed file; every problem found is reported, not just the first.
pub fn compile(
    src: &Source,
    f: PolicyFile,
    opts: &CheckOptions,
) -> Result<Policy, Vec<Diagnostic>> {
    let mut errors = Vec::new();
    if *f.version.get_ref() != LANGUAGE_VERSION {
        errors.push(
            src.error(
                f.version.span(),
                format!(
                    "policy language version {} is not supported",
                    f.version.get_ref()
                ),
            )
            .help(format!(
                "this build reads version {LANGUAGE_VERSION}: `version = {LANGUAGE_VERSION}`"
            )),
        );
    }
    let name = match &f.name {
        Some(n) => {
            check_name(src, n, &mut errors);
            n.get_ref().clone()
        }
        None => file_stem(src.path),
    };
    let selector = selector(&f);
    let when = condition::compile(
        src,
        f.when.get_ref(),
        f.when.span(),
        "when",
        None,
        &mut errors,
    );
    let clear = f.clear.as_ref().and_then(|c| {
        condition::compile(
            src,
            c.get_ref(),
            c.span(),
            "clear",
            Some(f.when.get_ref()),
            &mut errors,
        )
    });
    if let (Some(w), Some(c), Some(cs)) = (&when, &clear, &f.clear) {
        check_hysteresis(src, w, c, cs.span(), &mut errors);
    }
    let clear_hold = clear.as_ref().map_or(Duration::ZERO, |c| c.hold);
    let steps: Vec<Step> = f
        .step
        .iter()
        .enumerate()
        .filter_map(|(i, s)| step(src, i + 1, s, selector.kind, clear_hold, opts, &mut errors))
        .collect();
    let budget = budget(src, &f, &mut errors);
    let ladder = ladder(src, &f, opts, &mut errors);
    let group = f.group.as_ref().map(|g| {
        if g.get_ref().by.get_ref().is_empty() {
            errors.push(
                src.error(g.get_ref().by.span(), "`by` lists no labels")
                    .help("for example `by = [\"cluster\", \"rack\"]`"),
            );
        }
        Grouping {
            by: g
                .get_ref()
                .by
                .get_ref()
                .iter()
                .map(|l| l.get_ref().clone())
                .collect(),
            wait: g
                .get_ref()
                .wait
                .as_ref()
                .map_or(DEFAULT_GROUP_WAIT, |w| *w.get_ref()),
        }
    });
    let flapping = flapping(src, &f, &mut errors);
    if let Some(s) = &f.summary {
        check_summary(src, s, &selector, group.as_ref(), &mut errors);
    }
    for s in &f.step {
        check_step_placeholders(src, s.get_ref(), &selector, group.as_ref(), &mut errors);
    }
    match (when, errors.is_empty()) {
        (Some(when), true) => Ok(Policy {
            name,
            file: src.path.to_owned(),
            description: f.description.unwrap_or_default(),
            summary: f
                .summary
                .map_or_else(|| "{policy} on {target}".to_owned(), Spanned::into_inner),
            severity: f.severity.unwrap_or_default(),
            selector,
            when,
            clear,
            steps,
            budget,
            ladder,
            group,
            flapping,
        }),
        _ => Err(errors),
    }
}

/// The file name without `.toml`: the policy's default name.
pub fn file_stem(path: &Path) -> String {
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    file.strip_suffix(".toml").unwrap_or(&file).to_owned()
}

fn check_name(src: &Source, n: &Spanned<String>, errors: &mut Vec<Diagnostic>) {
    let ok = !n.get_ref().is_empty()
        && n.get_ref()
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if !ok {
        errors.push(
            src.error(
                n.span(),
                format!(
                    "policy name `{}` may only use letters, digits, `-`, `_` and `.`",
                    n.get_ref()
                ),
            )
            .help("names appear in incident fingerprints, silences and URLs"),
        );
    }
}

fn selector(f: &PolicyFile) -> Selector {
    let t = f.target.get_ref();
    let mut labels = BTreeMap::new();
    for (label, v) in [
        ("name", &t.name),
        ("cluster", &t.cluster),
        ("rack", &t.rack),
        ("tenant", &t.tenant),
        ("host", &t.host),
    ] {
        if let Some(v) = v {
            labels.insert(label.to_owned(), v.get_ref().0.clone());
        }
    }
    for (label, v) in t.labels.iter().flatten() {
        labels.insert(label.clone(), v.get_ref().0.clone());
    }
    Selector {
        kind: *t.kind.get_ref(),
        labels,
    }
}

/// The target kind each planner step works on.
fn planner_kind(kind: StepKindName) -> Option<TargetKind> {
    match kind {
        StepKindName::Failover | StepKindName::Rebalance => Some(TargetKind::Host),
        StepKindName::MoveLuns => Some(TargetKind::StorageDevice),
        _ => None,
    }
}

fn step(
    src: &Source,
    n: usize,
    s: &Spanned<StepSection>,
    target: TargetKind,
    clear_hold: Duration,
    opts: &CheckOptions,
    errors: &mut Vec<Diagnostic>,
) -> Option<Step> {
    let st = s.get_ref();
    let kind = *st.kind.get_ref();
    let before = errors.len();
    let mut only = |key: &str, span: Option<std::ops::Range<usize>>, owner: &str| {
        if let Some(span) = span {
            errors.push(src.error(
                span,
                format!("`{key}` belongs to {owner} steps, and step {n} is not one"),
            ));
        }
    };
    if kind != StepKindName::AgentAction {
        only(
            "action",
            st.action.as_ref().map(Spanned::span),
            "agent-action",
        );
        only(
            "params",
            st.params.as_ref().map(Spanned::span),
            "agent-action",
        );
    }
    if kind != StepKindName::Batch {
        only("command", st.command.as_ref().map(Spanned::span), "batch");
        only("args", st.args.as_ref().map(Spanned::span), "batch");
    }
    if kind != StepKindName::Wait {
        only("duration", st.duration.as_ref().map(Spanned::span), "wait");
    }
    if kind == StepKindName::Wait {
        for (key, span) in [
            ("timeout", st.timeout.as_ref().map(Spanned::span)),
            ("attempts", st.attempts.as_ref().map(Spanned::span)),
            ("verify", st.verify.as_ref().map(Spanned::span)),
            (
                "verify_within",
                st.verify_within.as_ref().map(Spanned::span),
            ),
        ] {
            if let Some(span) = span {
                errors.push(
                    src.error(span, format!("`{key}` has no meaning for a wait step"))
                        .help("a wait step waits `duration`, then moves on unless the condition has cleared"),
                );
            }
        }
    }
    if let Some(wanted) = planner_kind(kind).filter(|k| *k != target) {
        errors.push(src.error(
            st.kind.span(),
            format!(
                "a `{}` step works on a {wanted}, but this policy watches {target} targets",
                st.kind.get_ref().as_str()
            ),
        ));
    }
    let action = match kind {
        StepKindName::AgentAction => {
            let Some(a) = &st.action else {
                errors.push(src.error(s.span(), format!("step {n} (agent-action) needs `action`: the name of an action in the agent's allowlist")).help("for example `action = \"restart-service\"`"));
                return None;
            };
            if let Some(known) = &opts.actions
                && !known.contains(a.get_ref())
            {
                errors.push(unknown_name(
                    src,
                    a,
                    "action",
                    known,
                    "the actions the agents allow",
                ));
            }
            StepAction::AgentAction {
                action: a.get_ref().clone(),
                params: st
                    .params
                    .as_ref()
                    .map(|p| p.get_ref().clone())
                    .unwrap_or_default(),
            }
        }
        StepKindName::Failover => StepAction::Failover,
        StepKindName::Rebalance => StepAction::Rebalance,
        StepKindName::MoveLuns => StepAction::MoveLuns,
        StepKindName::Batch => {
            let Some(c) = &st.command else {
                errors.push(src.error(
                    s.span(),
                    format!(
                        "step {n} (batch) needs `command`: the program to run on the watchdog host"
                    ),
                ));
                return None;
            };
            if !c.get_ref().starts_with('/') {
                errors.push(src.error(c.span(), format!("`{}` is not an absolute path", c.get_ref()))
                    .help("batch files run on the watchdog host from its working directory; give the full path"));
            }
            StepAction::Batch {
                command: c.get_ref().clone(),
                args: st
                    .args
                    .as_ref()
                    .map(|a| a.get_ref().clone())
                    .unwrap_or_default(),
            }
        }
        StepKindName::Wait => {
            let Some(d) = &st.duration else {
                errors.push(
                    src.error(s.span(), format!("step {n} (wait) needs `duration`"))
                        .help("for example `duration = \"2m\"`"),
                );
                return None;
            };
            StepAction::Wait {
                duration: *d.get_ref(),
            }
        }
    };
    let timeout = st.timeout.as_ref().map_or(
        match kind {
            StepKindName::Batch => DEFAULT_BATCH_TIMEOUT,
            StepKindName::Failover | StepKindName::Rebalance | StepKindName::MoveLuns => {
                DEFAULT_PLANNER_TIMEOUT
            }
            _ => DEFAULT_AGENT_ACTION_TIMEOUT,
        },
        |t| *t.get_ref(),
    );
    if let Some(t) = st.timeout.as_ref().filter(|t| t.get_ref().0 == 0) {
        errors.push(src.error(t.span(), "`timeout` must be longer than 0s"));
    }
    let attempts = st.attempts.as_ref().map_or(1, |a| *a.get_ref());
    if let Some(a) = st.attempts.as_ref().filter(|a| *a.get_ref() == 0) {
        errors.push(src.error(a.span(), "`attempts` must be at least 1"));
    }
    let verify = st.verify.as_ref().map_or(Verify::Cleared, |v| *v.get_ref());
    let verify_within = st
        .verify_within
        .as_ref()
        .map_or(DEFAULT_VERIFY_WITHIN, |v| *v.get_ref());
    if verify == Verify::StepResult {
        if let Some(v) = &st.verify_within {
            errors.push(src.error(
                v.span(),
                "`verify_within` has no meaning with `verify = \"step-result\"`",
            ));
        }
    } else if kind != StepKindName::Wait && verify_within < clear_hold {
        let span = st.verify_within.as_ref().map_or(s.span(), Spanned::span);
        errors.push(src.error(span, format!(
            "step {n} can never be verified: it allows {verify_within} for the condition to clear, but [clear] must hold for {clear_hold}"
        )).help(format!("set `verify_within` to at least \"{clear_hold}\"")));
    }
    (errors.len() == before).then_some(Step {
        action,
        timeout,
        attempts,
        verify,
        verify_within,
    })
}

fn unknown_name(
    src: &Source,
    name: &Spanned<String>,
    what: &str,
    known: &BTreeSet<String>,
    from: &str,
) -> Diagnostic {
    let d = src.error(name.span(), format!("unknown {what} `{}`", name.get_ref()));
    match closest(name.get_ref(), known.iter().map(String::as_str)) {
        Some(c) => d.help(format!("did you mean `{c}`? ({from}: {})", list(known))),
        None => d.help(format!("{from}: {}", list(known))),
    }
}

fn list(names: &BTreeSet<String>) -> String {
    if names.is_empty() {
        return "none".to_owned();
    }
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn budget(src: &Source, f: &PolicyFile, errors: &mut Vec<Diagnostic>) -> RecoveryBudget {
    let r = f.recovery.as_ref();
    let max_runs = r.and_then(|r| r.max_runs.as_ref());
    if let Some(m) = max_runs.filter(|m| *m.get_ref() == 0) {
        errors.push(
            src.error(m.span(), "`max_runs = 0` means recovery never runs")
                .help("remove the [[step]] sections instead"),
        );
    }
    if f.step.is_empty()
        && let Some(m) = max_runs
    {
        errors.push(src.error(
            m.span(),
            "`[recovery]` limits recovery steps, but this policy has no [[step]]",
        ));
    }
    RecoveryBudget {
        max_runs: max_runs.map_or(DEFAULT_MAX_RUNS, |m| *m.get_ref()),
        window: r
            .and_then(|r| r.window.as_ref())
            .map_or(DEFAULT_RECOVERY_WINDOW, |w| *w.get_ref()),
    }
}

fn ladder(
    src: &Source,
    f: &PolicyFile,
    opts: &CheckOptions,
    errors: &mut Vec<Diagnostic>,
) -> Vec<Level> {
    let mut out: Vec<Level> = Vec::new();
    for (i, l) in f.escalate.iter().enumerate() {
        let n = i + 1;
        let lv = l.get_ref();
        if lv.notify.get_ref().is_empty() {
            errors.push(
                src.error(lv.notify.span(), format!("level {n} notifies no channel"))
                    .help("for example `notify = [\"console\"]`"),
            );
        }
        if let Some(known) = &opts.channels {
            for ch in lv.notify.get_ref() {
                if !known.contains(ch.get_ref()) {
                    errors.push(unknown_name(
                        src,
                        ch,
                        "channel",
                        known,
                        "the channels configured in the watchdog",
                    ));
                }
            }
        }
        if let Some(c) = &lv.only_if
            && *c.get_ref() == LevelIf::RecoveryFailed
            && f.step.is_empty()
        {
            errors.push(
                    src.error(c.span(), format!("level {n} is unreachable: `if = \"recovery-failed\"` but the policy has no recovery steps to fail"))
                        .help("add a [[step]] or remove the `if`"),
                );
        }
        let after = lv.after.as_ref().map_or(Duration::ZERO, |a| *a.get_ref());
        if let Some(prev) = out.last().filter(|p| p.after > after) {
            let span = lv.after.as_ref().map_or(l.span(), Spanned::span);
            errors.push(src.error(span, format!(
                "level {n} (after {after}) comes before level {} (after {}): order the levels by `after`",
                n - 1,
                prev.after
            )));
        }
        if let Some(r) = lv.repeat.as_ref().filter(|r| r.get_ref().0 == 0) {
            errors.push(src.error(r.span(), "`repeat` must be longer than 0s"));
        }
        out.push(Level {
            after,
            if_recovery_failed: lv.only_if.is_some(),
            unless_acked: lv.unless.is_some(),
            channels: lv
                .notify
                .get_ref()
                .iter()
                .map(|c| c.get_ref().clone())
                .collect(),
            repeat: lv.repeat.as_ref().map(|r| *r.get_ref()),
            on_resolve: lv.on_resolve.unwrap_or(true),
            on_ack: lv.on_ack.unwrap_or(true),
        });
    }
    out
}

fn flapping(src: &Source, f: &PolicyFile, errors: &mut Vec<Diagnostic>) -> Flapping {
    let fl = f.flapping.as_ref();
    let threshold = fl.and_then(|f| f.threshold.as_ref());
    if let Some(t) = threshold.filter(|t| *t.get_ref() < 2) {
        errors.push(src.error(
            t.span(),
            "`threshold` must be at least 2: with 1 every incident would be flapping",
        ));
    }
    Flapping {
        threshold: threshold.map_or(DEFAULT_FLAP_THRESHOLD, |t| *t.get_ref()),
        window: fl
            .and_then(|f| f.window.as_ref())
            .map_or(DEFAULT_FLAP_WINDOW, |w| *w.get_ref()),
    }
}

/// A clear threshold on the failing side of the `when` threshold would make
/// a value both failing and fixed: the incident would open and close on
/// every sample.
fn check_hysteresis(
    src: &Source,
    when: &Condition,
    clear: &Condition,
    span: std::ops::Range<usize>,
    errors: &mut Vec<Diagnostic>,
) {
    let (Predicate::Threshold { metric: m1, cmp: w }, Predicate::Threshold { metric: m2, cmp: c }) =
        (&when.predicate, &clear.predicate)
    else {
        return;
    };
    let overlap = match (w, c) {
        (Comparison::Above(w), Comparison::Below(c)) => c > w,
        (Comparison::Below(w), Comparison::Above(c)) => c < w,
        _ => false,
    };
    if m1 == m2 && overlap {
        errors.push(src.error(span, format!("the [clear] threshold overlaps the [when] threshold of `{m1}`: a value between them would be failing and fixed at once"))
            .help("for hysteresis, clear on the healthy side: `above = 0.9` in [when] goes with for example `below = 0.75` in [clear]"));
    }
}

/// The placeholders summaries and step parameters may use: the built-ins,
/// the usual labels, and the labels the selector or `[group]` names.
fn known_placeholders(sel: &Selector, group: Option<&Grouping>) -> BTreeSet<String> {
    let mut known: BTreeSet<String> = SUMMARY_BUILTINS.iter().map(|b| (*b).to_owned()).collect();
    known.extend(["cluster", "rack", "tenant"].map(String::from));
    known.extend(sel.labels.keys().cloned());
    known.extend(group.iter().flat_map(|g| g.by.iter().cloned()));
    known
}

/// Every `{placeholder}` must be a built-in or a label the policy can know.
fn check_summary(
    src: &Source,
    s: &Spanned<String>,
    sel: &Selector,
    group: Option<&Grouping>,
    errors: &mut Vec<Diagnostic>,
) {
    // The string's content starts one byte after its opening quote.
    let base = s.span().start + 1;
    check_placeholders(
        src,
        s.get_ref(),
        &known_placeholders(sel, group),
        |r| base + r.start..base + r.end,
        errors,
    );
}

/// Agent-action `params` values and batch `args` are filled in like the
/// summary (`params = { service = "{name}" }`); an unknown placeholder is
/// an error at the table or list.
fn check_step_placeholders(
    src: &Source,
    step: &StepSection,
    sel: &Selector,
    group: Option<&Grouping>,
    errors: &mut Vec<Diagnostic>,
) {
    let known = known_placeholders(sel, group);
    if let Some(p) = &step.params {
        for v in p.get_ref().values() {
            check_placeholders(src, v, &known, |_| p.span(), errors);
        }
    }
    if let Some(a) = &step.args {
        for v in a.get_ref() {
            check_placeholders(src, v, &known, |_| a.span(), errors);
        }
    }
}

/// Reports unknown or unclosed `{placeholders}` of `text`; `place` maps a
/// range of the text to the range of the file the error points at.
fn check_placeholders(
    src: &Source,
    text: &str,
    known: &BTreeSet<String>,
    place: impl Fn(std::ops::Range<usize>) -> std::ops::Range<usize>,
    errors: &mut Vec<Diagnostic>,
) {
    let mut at = 0;
    while let Some(open) = text[at..].find('{').map(|o| at + o) {
        let Some(close) = text[open..].find('}').map(|c| open + c) else {
            errors.push(
                src.error(place(open..open + 1), "`{` is not closed")
                    .help("placeholders are written `{name}`"),
            );
            return;
        };
        let key = &text[open + 1..close];
        if !known.contains(key) {
            let d = src.error(
                place(open..close + 1),
                format!("unknown placeholder `{{{key}}}`"),
            );
            errors.push(match closest(key, known.iter().map(String::as_str)) {
                Some(c) => d.help(format!("did you mean `{{{c}}}`?")),
                None => d.help(format!("placeholders: {}", list(known))),
            });
        }
        at = close + 1;
    }
}
