//! What the demo prints around its story: the opening (what will happen,
//! in what order, when) and the closing summary (what happened and when,
//! and where to look).

use std::{fmt::Write, net::SocketAddr, path::Path};

use super::{observe::Observer, scale::TimeScale, story::Story};

/// Where a person looks while the cluster runs.
pub struct Places<'a> {
    /// The watchdog's HTTP address (status page, API, /metrics).
    pub api: SocketAddr,
    /// The real agent's /metrics address.
    pub agent: Option<SocketAddr>,
    /// This machine's host id.
    pub local: &'a str,
    /// The demo's directory.
    pub dir: &'a Path,
}

/// The lines naming the status page, /metrics and the API.
pub fn places(p: &Places) -> String {
    let mut s = String::new();
    let api = p.api;
    let _ = writeln!(s, "  status page  http://{api}/");
    let _ = writeln!(s, "  metrics      http://{api}/metrics (the watchdog)");
    if let Some(agent) = p.agent {
        let _ = writeln!(
            s,
            "               http://{agent}/metrics ({}'s real agent)",
            p.local
        );
    }
    let _ = writeln!(
        s,
        "  API          http://{api}/api/v1/hosts, .../incidents?status=all, .../plans, .../storage"
    );
    let _ = write!(
        s,
        "  files        {} (configs, certificates, policies, logs, mail)",
        p.dir.display()
    );
    s
}

/// The opening: what runs, and the story's steps with when they are due.
pub fn opening(scale: TimeScale, story: &Story) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "The story (time scale {}: each policy {}):",
        scale.0,
        scale.describe_policy()
    );
    for (i, step) in story.steps.iter().enumerate() {
        let _ = writeln!(
            s,
            "  {}. {:<11} {} (about +{:.0}s)",
            i + 1,
            step.name,
            step.title,
            step.due
        );
    }
    s
}

/// The closing: each step with when it acted and settled, or why not; the
/// incidents and plans there were; where to look.
pub fn closing(story: &Story, obs: &Observer, places_text: &str, forever: bool) -> String {
    let mut s = String::from("\n== hyperwatch demo: what happened ==\n");
    for (i, step) in story.steps.iter().enumerate() {
        match (&step.acted, &step.settled, &step.missed) {
            (_, _, Some(why)) => {
                let _ = writeln!(s, "  ✗ {}. {:<11} {why}", i + 1, step.name);
            }
            (Some((at, how)), settled, None) => {
                let _ = writeln!(s, "  ✓ {}. {:<11} +{at:.1}s  {how}", i + 1, step.name);
                if let Some((at, what)) = settled.as_ref().filter(|(_, w)| w != how) {
                    let _ = writeln!(s, "       {:<11} +{at:.1}s  {what}", "");
                }
            }
            (None, _, None) => {
                let _ = writeln!(s, "  … {}. {:<11} not yet", i + 1, step.name);
            }
        }
    }
    let open = obs
        .incidents
        .values()
        .filter(|i| i["status"] != "resolved" && !obs.is_quiet(i))
        .count();
    let plans = obs.plans.as_ref().map_or(0, Vec::len);
    let _ = writeln!(
        s,
        "  {} incidents ({} still open), {} plans, {} emails in the sink",
        obs.incidents.values().filter(|i| !obs.is_quiet(i)).count(),
        open,
        plans,
        obs.mails.len()
    );
    let _ = writeln!(s, "\nWhere to look:\n{places_text}");
    if !forever {
        let _ = writeln!(
            s,
            "\nThe demo stops its cluster now; `--forever` keeps it running to look around."
        );
    }
    s
}
