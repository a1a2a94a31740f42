//! Checks `[when]` and `[clear]` sections and turns them into conditions:
//! exactly one input (metric, state, event, absent), the keys that belong to
//! it, and nothing else.

use toml::Spanned;

use crate::ast::ConditionSection;
use crate::diag::{Diagnostic, Source, closest, one_of};
use crate::policy::{Comparison, Condition, Predicate};
use crate::target::{HOST_STATE, HostState};
use crate::time::Duration;

/// Which keys each kind of condition accepts, for "does not belong" errors.
const METRIC_KEYS: &[&str] = &[
    "above",
    "below",
    "rate_above",
    "rate_below",
    "over",
    "at_least",
    "of_last",
    "for",
];
const STATE_KEYS: &[&str] = &["is", "is_not", "for"];
const EVENT_KEYS: &[&str] = &["at_least", "within"];
const ABSENT_KEYS: &[&str] = &["for"];

/// Compiles one condition section. `inherit` is the `[when]` section when
/// compiling `[clear]`: a clear condition that names no input reads the same
/// metric, state or event. `span` is the section header, for missing keys.
pub fn compile(
    src: &Source,
    c: &ConditionSection,
    span: std::ops::Range<usize>,
    section: &str,
    inherit: Option<&ConditionSection>,
    errors: &mut Vec<Diagnostic>,
) -> Option<Condition> {
    let inputs = [
        ("metric", &c.metric),
        ("state", &c.state),
        ("event", &c.event),
        ("absent", &c.absent),
    ];
    let mut given: Vec<_> = inputs.iter().filter(|(_, v)| v.is_some()).collect();
    // Blame the input written last: the first one is what the author meant.
    given.sort_by_key(|(_, v)| v.as_ref().map(|v| v.span().start));
    let (input, name) = match given.as_slice() {
        [] => match inherit.and_then(inherited_input) {
            Some((input, name)) => (input, name.clone()),
            None => {
                errors.push(
                    src.error(span, format!("`[{section}]` names nothing to watch"))
                        .help("add one of `metric = \"...\"`, `state = \"...\"`, `event = \"...\"` or `absent = \"...\"`"),
                );
                return None;
            }
        },
        [(input, Some(name))] => (*input, (*name).clone()),
        [(first, _), (second, Some(v)), ..] => {
            errors.push(
                src.error(v.span(), format!("`{second}` cannot be combined with `{first}`: a condition watches one input"))
                    .help("split the policy in two, one per input"),
            );
            return None;
        }
        _ => unreachable!("filtered to present values"),
    };
    let before = errors.len();
    let hold = c.hold.as_ref().map_or(Duration::ZERO, |h| *h.get_ref());
    let predicate = match input {
        "metric" => metric(src, c, &name, section, errors),
        "state" => state(src, c, &name, inherit, errors),
        "event" => event(src, c, &name, section, errors),
        _ => absent(src, c, &name, span, section, errors),
    };
    (errors.len() == before).then_some(Condition {
        predicate: predicate?,
        hold: if input == "absent" {
            Duration::ZERO
        } else {
            hold
        },
    })
}

/// The input a `[clear]` without its own inherits from `[when]` (not
/// `absent`: "stop being absent" is not a clear condition one can guess).
fn inherited_input(w: &ConditionSection) -> Option<(&'static str, &Spanned<String>)> {
    [
        ("metric", &w.metric),
        ("state", &w.state),
        ("event", &w.event),
    ]
    .into_iter()
    .find_map(|(k, v)| v.as_ref().map(|v| (k, v)))
}

/// Every key of a condition besides its input, with where it stands.
fn option_keys(c: &ConditionSection) -> [(&'static str, Option<std::ops::Range<usize>>); 11] {
    [
        ("above", sp(&c.above)),
        ("below", sp(&c.below)),
        ("rate_above", sp(&c.rate_above)),
        ("rate_below", sp(&c.rate_below)),
        ("over", sp(&c.over)),
        ("at_least", sp(&c.at_least)),
        ("of_last", sp(&c.of_last)),
        ("is", sp(&c.is)),
        ("is_not", sp(&c.is_not)),
        ("within", sp(&c.within)),
        ("for", sp(&c.hold)),
    ]
}

/// Reports each key of `c` a `kind` condition does not take; it takes
/// `valid`.
fn forbid_others(
    src: &Source,
    c: &ConditionSection,
    kind: &str,
    valid: &[&str],
    errors: &mut Vec<Diagnostic>,
) {
    let keys = option_keys(c);
    let others: Vec<_> = keys
        .iter()
        .filter(|(key, _)| !valid.contains(key))
        .cloned()
        .collect();
    let valid = valid
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ");
    forbid(src, &others, kind, &valid, errors);
}

/// Reports the keys in `keys` that are present: they do not belong to
/// this kind of condition, which takes `valid`.
fn forbid(
    src: &Source,
    keys: &[(&str, Option<std::ops::Range<usize>>)],
    kind: &str,
    valid: &str,
    errors: &mut Vec<Diagnostic>,
) {
    let a = if kind.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    for (key, span) in keys {
        if let Some(span) = span {
            errors.push(
                src.error(
                    span.clone(),
                    format!("`{key}` does not belong in {a} {kind} condition"),
                )
                .help(format!("{a} {kind} condition takes {valid}")),
            );
        }
    }
}

fn sp<T>(v: &Option<Spanned<T>>) -> Option<std::ops::Range<usize>> {
    v.as_ref().map(Spanned::span)
}

fn metric(
    src: &Source,
    c: &ConditionSection,
    name: &Spanned<String>,
    section: &str,
    errors: &mut Vec<Diagnostic>,
) -> Option<Predicate> {
    forbid_others(src, c, "metric", METRIC_KEYS, errors);
    let cmps = [
        ("above", &c.above),
        ("below", &c.below),
        ("rate_above", &c.rate_above),
        ("rate_below", &c.rate_below),
    ];
    let given: Vec<_> = cmps
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (*k, v)))
        .collect();
    let (key, value) = match given.as_slice() {
        [] => {
            let help = if section == "clear" {
                "a clear condition needs its own threshold (hysteresis): for example `below = 0.7`"
            } else {
                "add `above = ...` or `below = ...` (or `rate_above`/`rate_below` for a rate of change)"
            };
            errors.push(
                src.error(
                    name.span(),
                    format!("metric `{}` has no threshold", name.get_ref()),
                )
                .help(help),
            );
            return None;
        }
        [one] => *one,
        [(first, _), (second, v), ..] => {
            errors.push(
                src.error(
                    v.span(),
                    format!("`{second}` cannot be combined with `{first}`"),
                )
                .help("a condition compares against one threshold; use [clear] for a second one"),
            );
            return None;
        }
    };
    let t = *value.get_ref();
    let metric = name.get_ref().clone();
    if key.starts_with("rate_") {
        let cmp = if key == "rate_above" {
            Comparison::Above(t)
        } else {
            Comparison::Below(t)
        };
        forbid(
            src,
            &[("at_least", sp(&c.at_least)), ("of_last", sp(&c.of_last))],
            "rate",
            "`over` and `for`",
            errors,
        );
        let Some(over) = &c.over else {
            errors.push(
                src.error(
                    value.span(),
                    format!("`{key}` needs `over`: the window the rate is measured over"),
                )
                .help("add for example `over = \"10m\"`"),
            );
            return None;
        };
        if over.get_ref().0 == 0 {
            errors.push(src.error(over.span(), "`over` must be longer than 0s"));
        }
        return Some(Predicate::Rate {
            metric,
            cmp,
            over: *over.get_ref(),
        });
    }
    let cmp = if key == "above" {
        Comparison::Above(t)
    } else {
        Comparison::Below(t)
    };
    if let Some(over) = &c.over {
        errors.push(
            src.error(over.span(), "`over` belongs to `rate_above`/`rate_below`")
                .help("remove it, or compare the rate of change"),
        );
    }
    match (&c.at_least, &c.of_last) {
        (None, None) => Some(Predicate::Threshold { metric, cmp }),
        (Some(x), Some(y)) => {
            let (x_v, y_v) = (*x.get_ref(), *y.get_ref());
            if y_v == 0 {
                errors.push(src.error(y.span(), "`of_last` must be at least 1"));
            } else if x_v == 0 || x_v > y_v {
                errors.push(
                    src.error(
                        x.span(),
                        format!("`at_least = {x_v}` must be between 1 and `of_last` ({y_v})"),
                    )
                    .help("\"3 of the last 5 samples\" is `at_least = 3`, `of_last = 5`"),
                );
            }
            Some(Predicate::Count {
                metric,
                cmp,
                at_least: x_v,
                of_last: y_v,
            })
        }
        (Some(x), None) => {
            errors.push(
                src.error(x.span(), "`at_least` needs `of_last`")
                    .help("\"3 of the last 5 samples\" is `at_least = 3`, `of_last = 5`"),
            );
            None
        }
        (None, Some(y)) => {
            errors.push(
                src.error(y.span(), "`of_last` needs `at_least`")
                    .help("\"3 of the last 5 samples\" is `at_least = 3`, `of_last = 5`"),
            );
            None
        }
    }
}

fn state(
    src: &Source,
    c: &ConditionSection,
    name: &Spanned<String>,
    inherit: Option<&ConditionSection>,
    errors: &mut Vec<Diagnostic>,
) -> Option<Predicate> {
    forbid_others(src, c, "state", STATE_KEYS, errors);
    let (values, negate) = match (&c.is, &c.is_not) {
        (Some(v), None) => (v, false),
        (None, Some(v)) => (v, true),
        (Some(_), Some(v)) => {
            errors.push(src.error(v.span(), "`is_not` cannot be combined with `is`"));
            return None;
        }
        // A clear condition on the same state: "no longer in a failing value".
        (None, None) => match inherit {
            Some(w) if w.state.as_ref().map(Spanned::get_ref) == Some(name.get_ref()) => {
                match (&w.is, &w.is_not) {
                    (Some(v), _) => (v, true),
                    (_, Some(v)) => (v, false),
                    _ => return None,
                }
            }
            _ => {
                errors.push(
                    src.error(
                        name.span(),
                        format!(
                            "state `{}` needs `is` (or `is_not`): the values that count",
                            name.get_ref()
                        ),
                    )
                    .help("for example `is = \"exited\"` or `is = [\"failed\", \"suspect\"]`"),
                );
                return None;
            }
        },
    };
    if values.get_ref().0.is_empty() {
        errors.push(src.error(values.span(), "the list of state values is empty"));
    }
    if name.get_ref() == HOST_STATE {
        let valid: Vec<&str> = HostState::ALL.iter().map(|s| s.as_str()).collect();
        for v in &values.get_ref().0 {
            if !valid.contains(&v.as_str()) {
                let mut d = src.error(
                    values.span(),
                    format!(
                        "`{v}` is not a host state; host states are {}",
                        one_of(&valid)
                    ),
                );
                if let Some(c) = closest(v, valid.iter().copied()) {
                    d = d.help(format!("did you mean `{c}`?"));
                }
                errors.push(d);
            }
        }
    }
    Some(Predicate::State {
        name: name.get_ref().clone(),
        values: values.get_ref().0.clone(),
        negate,
    })
}

fn event(
    src: &Source,
    c: &ConditionSection,
    name: &Spanned<String>,
    section: &str,
    errors: &mut Vec<Diagnostic>,
) -> Option<Predicate> {
    forbid_others(src, c, "event", EVENT_KEYS, errors);
    let at_least = c.at_least.as_ref().map_or(1, |v| *v.get_ref());
    if let Some(v) = c.at_least.as_ref().filter(|v| *v.get_ref() == 0) {
        errors.push(src.error(v.span(), "`at_least` must be at least 1"));
    }
    let Some(within) = &c.within else {
        errors.push(
            src.error(name.span(), format!("event `{}` needs `within`: the window events are counted in", name.get_ref()))
                .help(format!("for example `within = \"10m\"`; the [{section}] holds while at least `at_least` events fall in it")),
        );
        return None;
    };
    if within.get_ref().0 == 0 {
        errors.push(src.error(within.span(), "`within` must be longer than 0s"));
    }
    Some(Predicate::Events {
        name: name.get_ref().clone(),
        at_least,
        within: *within.get_ref(),
    })
}

fn absent(
    src: &Source,
    c: &ConditionSection,
    name: &Spanned<String>,
    span: std::ops::Range<usize>,
    section: &str,
    errors: &mut Vec<Diagnostic>,
) -> Option<Predicate> {
    forbid_others(src, c, "absent", ABSENT_KEYS, errors);
    match &c.hold {
        Some(h) if h.get_ref().0 > 0 => Some(Predicate::Absent {
            name: name.get_ref().clone(),
            after: *h.get_ref(),
        }),
        Some(h) => {
            errors.push(src.error(
                h.span(),
                "`for` must be longer than 0s: how long the input must be missing",
            ));
            None
        }
        None => {
            errors.push(
                src.error(
                    span,
                    format!(
                        "`absent` in [{section}] needs `for`: how long `{}` must be missing",
                        name.get_ref()
                    ),
                )
                .help("for example `for = \"30s\"`"),
            );
            None
        }
    }
}
