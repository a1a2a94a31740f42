//! The demo's story: five steps, one per architecture, in the order the
//! scenarios make them happen, each recognised in what the watchdog shows
//! (its incidents' audit lines, its plans, the mail sink). A step has acted
//! when the fix happened (or, for the escalation, when people were told)
//! and settled when its incident resolved; each has a deadline derived
//! from the scenario's times and the policies' waits, so the demo always
//! ends.

use std::{collections::BTreeMap, path::Path};

use hyperwatch_policies::{CheckOptions, time::Duration};
use serde_json::Value;
use toml::Table;

use super::{
    DemoError,
    files::SCENARIOS,
    observe::{Observer, incident_number, rfc3339_to_demo, str_of, targets},
    scale::TimeScale,
    timeline::Timeline,
};

/// The host the demo kills, and when (story seconds at time scale 1; see
/// deploy/demo/scenarios/hv-2.toml).
pub const KILL: (&str, f64) = ("hv-2", 520.0);
/// Bound on a step beyond the time the scenario and the policies give it,
/// real seconds: detection, planning and copying, on a loaded machine.
const SLACK: f64 = 30.0;

/// How a step is recognised.
#[derive(Clone, Debug)]
enum Kind {
    /// A policy's recovery step on a target succeeded; with a plan of this
    /// kind when the planner carried it out.
    Recovery {
        action: &'static str,
        plan: Option<&'static str>,
        /// Settled at the incident's resolution (else when it acted).
        resolves: bool,
    },
    /// A policy told people: console, the runbook batch file, the email
    /// the sink received.
    Escalation,
}

/// One step of the story.
#[derive(Clone, Debug)]
pub struct Step {
    /// A word: migration, failover, restart, LUN move, escalation.
    pub name: &'static str,
    /// What it shows, in a sentence.
    pub title: &'static str,
    pub policy: &'static str,
    /// The incident's target, `kind:id`.
    pub target: &'static str,
    kind: Kind,
    /// When the scenario makes it due, seconds since the demo began.
    pub due: f64,
    act_by: f64,
    settle_by: f64,
    /// When it acted, and how.
    pub acted: Option<(f64, String)>,
    /// When it settled, and how.
    pub settled: Option<(f64, String)>,
    /// Why it did not happen.
    pub missed: Option<String>,
    /// The incident it is about, once seen.
    pub incident: Option<String>,
}

/// The steps and their progress.
pub struct Story {
    pub steps: Vec<Step>,
    /// Each policy's hold (`for`), by name: the progress lines say how
    /// long a pending incident has yet to wait.
    holds: BTreeMap<String, Duration>,
}

impl Story {
    /// The story for scenarios started `t0` seconds after the demo began,
    /// with the policies in `policies` (as the watchdog loads them).
    pub fn new(scale: TimeScale, t0: f64, policies: &Path) -> Result<Self, DemoError> {
        let set = hyperwatch_policies::load_dir(policies, &CheckOptions::default()).map_err(
            |report| DemoError::Start {
                what: "the demo's policies".into(),
                message: report.to_string(),
            },
        )?;
        let hold = |name: &str, clear: bool| -> f64 {
            set.iter()
                .find(|p| p.name == name)
                .and_then(|p| {
                    if clear {
                        p.clear.as_ref()
                    } else {
                        Some(&p.when)
                    }
                })
                .map_or(0.0, |c| c.hold.0 as f64 / 1e3)
        };
        let holds = set.iter().map(|p| (p.name.clone(), p.when.hold)).collect();
        let at = |story: f64| t0 + scale.real(story);
        let step = |name, title, policy, target, kind, due: f64, act_by: f64, settle: f64| Step {
            name,
            title,
            policy,
            target,
            kind,
            due,
            act_by: act_by + SLACK,
            settle_by: act_by + settle + 2.0 * SLACK,
            acted: None,
            settled: None,
            missed: None,
            incident: None,
        };
        let overload = at(phase_at("hv-1", "vm", "web-3", false)?);
        let crash = at(phase_at("hv-3", "service", "nginx", false)?);
        let full = at(phase_at("st-1", "device", "d2", true)?);
        let looping = at(phase_at("hv-4", "service", "api", true)?);
        let cpu = hold("host-cpu-capacity", false);
        let storage = hold("storage-capacity", false);
        let down = hold("service-down", false);
        let steps = vec![
            step(
                "migration",
                "a host grows overloaded and the planner migrates VMs off it",
                "host-cpu-capacity",
                "host:hv-1",
                Kind::Recovery {
                    action: "rebalance",
                    plan: Some("rebalance"),
                    resolves: true,
                },
                overload + cpu,
                overload + cpu,
                hold("host-cpu-capacity", true),
            ),
            step(
                "failover",
                "a host is killed and its VMs fail over",
                "heartbeat-lost",
                "host:hv-2",
                Kind::Recovery {
                    action: "failover",
                    plan: Some("failover"),
                    resolves: false,
                },
                at(KILL.1),
                at(KILL.1),
                0.0,
            ),
            step(
                "restart",
                "a service crashes and is restarted",
                "service-crashed",
                "service:hv-3/nginx",
                Kind::Recovery {
                    action: "restart-service",
                    plan: None,
                    resolves: true,
                },
                crash,
                crash,
                0.0,
            ),
            step(
                "LUN move",
                "a storage device fills and LUNs move",
                "storage-capacity",
                "storage-device:st-1/d2",
                Kind::Recovery {
                    action: "move-luns",
                    plan: Some("move-luns"),
                    resolves: true,
                },
                full + storage,
                full + storage,
                hold("storage-capacity", true),
            ),
            step(
                "escalation",
                "an incident the policies cannot fix escalates (console, batch file, email)",
                "service-down",
                "service:hv-4/api",
                Kind::Escalation,
                looping + down,
                looping + down,
                0.0,
            ),
        ];
        Ok(Self { steps, holds })
    }

    /// Looks at what the observer holds; returns the steps that acted or
    /// settled or were missed just now, for the timeline's banners.
    pub fn update(&mut self, obs: &Observer, tl: &Timeline) -> Vec<String> {
        let now = tl.now();
        let mut news = Vec::new();
        for (i, s) in self.steps.iter_mut().enumerate() {
            if s.missed.is_some() || s.settled.is_some() {
                continue;
            }
            let Some(inc) = latest(obs, s.policy, s.target) else {
                if now > s.act_by {
                    s.missed = Some(format!(
                        "no {} incident on {} by +{:.0}s",
                        s.policy, s.target, s.act_by
                    ));
                    news.push(format!(
                        "  ✗ {}/5 {}: {}",
                        i + 1,
                        s.name,
                        s.missed.as_deref().unwrap_or("")
                    ));
                }
                continue;
            };
            s.incident = Some(str_of(&inc["id"]).to_owned());
            if s.acted.is_none() {
                s.acted = match &s.kind {
                    Kind::Recovery { action, plan, .. } => {
                        recovered(obs, tl, inc, s.target, action, *plan)
                    }
                    Kind::Escalation => told(obs, tl, inc),
                };
                if let Some((at, how)) = &s.acted {
                    news.push(format!("  ✓ {}/5 {} at +{at:.1}s: {how}", i + 1, s.name));
                }
            }
            match (&s.kind, &s.acted) {
                (Kind::Recovery { resolves: true, .. }, Some(_)) => {
                    if inc["status"] == "resolved" {
                        let at = rfc3339_to_demo(tl, &inc["resolved_at"]);
                        s.settled = Some((at, format!("{} resolved", str_of(&inc["id"]))));
                    }
                }
                (_, Some(acted)) => s.settled = Some(acted.clone()),
                (_, None) => {}
            }
            let failed = s.acted.is_none().then(|| gave_up(inc, s.target)).flatten();
            let late = if s.acted.is_none() {
                now > s.act_by
            } else {
                now > s.settle_by
            };
            if s.settled.is_none() && (failed.is_some() || late) {
                s.missed = Some(failed.unwrap_or_else(|| {
                    format!(
                        "not {} by +{:.0}s",
                        if s.acted.is_none() {
                            "done"
                        } else {
                            "resolved"
                        },
                        if s.acted.is_none() {
                            s.act_by
                        } else {
                            s.settle_by
                        }
                    )
                }));
                news.push(format!(
                    "  ✗ {}/5 {}: {}",
                    i + 1,
                    s.name,
                    s.missed.as_deref().unwrap_or("")
                ));
            }
        }
        news
    }

    /// Every step settled or missed.
    pub fn over(&self) -> bool {
        self.steps
            .iter()
            .all(|s| s.settled.is_some() || s.missed.is_some())
    }

    /// Every step settled.
    pub fn all_done(&self) -> bool {
        self.steps.iter().all(|s| s.settled.is_some())
    }

    /// What the demo is waiting for, in a line: the next step and the
    /// incidents still pending, with how long their condition has held.
    pub fn waiting(&self, obs: &Observer, tl: &Timeline) -> String {
        let now = tl.now();
        let next = self
            .steps
            .iter()
            .find(|s| s.settled.is_none() && s.missed.is_none())
            .map(|s| {
                if s.acted.is_some() {
                    format!(
                        "{}: waiting for {} to resolve",
                        s.name,
                        s.incident.as_deref().unwrap_or("its incident")
                    )
                } else if now < s.due {
                    format!("{}: due at about +{:.0}s", s.name, s.due)
                } else {
                    format!("{}: due since +{:.0}s", s.name, s.due)
                }
            })
            .unwrap_or_else(|| "nothing".into());
        let pending: Vec<String> = obs
            .incidents
            .values()
            .filter(|i| i["status"] == "pending" && !obs.is_quiet(i))
            .map(|i| {
                let held = now - rfc3339_to_demo(tl, &i["opened_at"]);
                let of = self
                    .holds
                    .get(str_of(&i["policy"]))
                    .map(|d| format!(" of {}", d))
                    .unwrap_or_default();
                format!(
                    "{} {} pending {held:.0}s{of}",
                    str_of(&i["id"]),
                    str_of(&i["policy"])
                )
            })
            .collect();
        if pending.is_empty() {
            format!("... {next}")
        } else {
            format!("... {next}; {}", pending.join(", "))
        }
    }
}

/// The latest incident of `policy` on `target`.
fn latest<'a>(obs: &'a Observer, policy: &str, target: &str) -> Option<&'a Value> {
    obs.incidents
        .values()
        .filter(|i| i["policy"] == policy && targets(i).contains(&target))
        .max_by_key(|i| incident_number(i))
}

/// The line of `inc`'s timeline ending with `tail`, and when.
fn entry<'a>(tl: &Timeline, inc: &'a Value, tail: &str) -> Option<(f64, &'a str)> {
    inc["timeline"].as_array()?.iter().find_map(|e| {
        let line = str_of(&e["line"]);
        line.ends_with(tail)
            .then(|| (rfc3339_to_demo(tl, &e["at"]), line))
    })
}

/// The recovery step succeeded (and, for planner work, its plan is done):
/// when, and what moved.
fn recovered(
    obs: &Observer,
    tl: &Timeline,
    inc: &Value,
    target: &str,
    action: &str,
    plan: Option<&str>,
) -> Option<(f64, String)> {
    let Some(kind) = plan else {
        // The agent's answer, or the step's success: when the service's
        // own "up" reaches the watchdog before the command's answer, the
        // condition clears first and the step ends as cancelled, with the
        // agent's answer in the timeline all the same.
        let ran = format!("ran {action} (");
        return inc["timeline"].as_array()?.iter().find_map(|e| {
            let line = str_of(&e["line"]);
            let done = line.ends_with(&format!("{action} on {target} succeeded"))
                || (line.contains(&ran) && line.contains("): succeeded"));
            done.then(|| (rfc3339_to_demo(tl, &e["at"]), line.to_owned()))
        });
    };
    let (at, _) = entry(tl, inc, &format!("{action} on {target} succeeded"))?;
    let bare = target.split_once(':').map_or(target, |(_, id)| id);
    let done = obs
        .plans
        .as_ref()?
        .iter()
        .find(|p| p["kind"] == kind && p["target"] == bare && p["state"] == "done")?;
    let moves: Vec<String> = done["moves"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            format!(
                "{} {} -> {}",
                str_of(&m["item"]),
                str_of(&m["from"]),
                str_of(&m["to"])
            )
        })
        .collect();
    Some((
        at,
        format!(
            "plan {} moved {} ({})",
            str_of(&done["id"]),
            moves.join(", "),
            str_of(&inc["id"])
        ),
    ))
}

/// People were told of `inc`: the console line, the runbook's batch line,
/// and the email in the sink; when the last of them arrived.
fn told(obs: &Observer, tl: &Timeline, inc: &Value) -> Option<(f64, String)> {
    let id = str_of(&inc["id"]);
    let names = |l: &str| {
        l.match_indices(id)
            .any(|(i, _)| !l[i + id.len()..].starts_with(|c: char| c.is_ascii_digit()))
    };
    let console = obs.console.iter().find(|(_, l)| names(l))?.0;
    let batch = obs
        .batch
        .iter()
        .find(|(_, l)| l.starts_with("runbook ") && names(l))?
        .0;
    let mail = obs.mails.iter().find(|m| m["parsed"]["incident"] == id)?;
    let mail_at = super::observe::unix_to_demo(tl, mail["accepted_at"].as_f64());
    Some((
        console.max(batch).max(mail_at),
        format!(
            "{id} went to the console, the runbook hook and email (\"{}\")",
            str_of(&mail["parsed"]["subject"])
        ),
    ))
}

/// Why `inc`'s recovery of `target` ended without success, once it has.
fn gave_up(inc: &Value, target: &str) -> Option<String> {
    let lines: Vec<&str> = inc["timeline"]
        .as_array()?
        .iter()
        .map(|e| str_of(&e["line"]))
        .collect();
    lines
        .iter()
        .any(|l| l.ends_with(&format!("recovery of {target} failed")))
        .then(|| {
            lines
                .iter()
                .rev()
                .find(|l| l.contains(&format!(" on {target} ")))
                .map_or_else(|| "its recovery failed".to_owned(), |l| (*l).to_owned())
        })
}

/// The story time of `host`'s first (or last) phase on `key = value`.
fn phase_at(host: &str, key: &str, value: &str, last: bool) -> Result<f64, DemoError> {
    let text = SCENARIOS
        .iter()
        .find(|(h, _)| *h == host)
        .map(|(_, t)| *t)
        .unwrap_or_default();
    let table: Table = text.parse().map_err(|e| DemoError::Start {
        what: format!("deploy/demo/scenarios/{host}.toml"),
        message: format!("{e}"),
    })?;
    let mut times = table
        .get("phases")
        .and_then(|p| p.as_array())
        .into_iter()
        .flatten()
        .filter(|p| p.get(key).and_then(|v| v.as_str()) == Some(value))
        .filter_map(|p| {
            p.get("at")
                .and_then(|a| a.as_float().or(a.as_integer().map(|i| i as f64)))
        });
    let found = if last {
        times.next_back()
    } else {
        times.next()
    };
    found.ok_or_else(|| DemoError::Start {
        what: format!("deploy/demo/scenarios/{host}.toml"),
        message: format!("no phase with {key} = {value:?}, which the demo's story needs"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_story_reads_its_times_from_the_scenarios_in_order() {
        assert_eq!(phase_at("hv-1", "vm", "web-3", false).unwrap(), 100.0);
        assert_eq!(phase_at("st-1", "device", "d2", true).unwrap(), 160.0);
        assert!(phase_at("hv-1", "service", "nope", false).is_err());
        let hv4_first = phase_at("hv-4", "service", "api", false).unwrap();
        let hv4_last = phase_at("hv-4", "service", "api", true).unwrap();
        // The story's order: overload, kill, crash, the LUN incident (it
        // fires 10 minutes after d2 fills), the crash loop.
        let nginx = phase_at("hv-3", "service", "nginx", false).unwrap();
        assert!(100.0 + 300.0 < KILL.1 && KILL.1 < nginx);
        assert!(nginx < 160.0 + 600.0 && 160.0 + 600.0 < hv4_first);
        assert!(hv4_first < hv4_last);
    }
}
