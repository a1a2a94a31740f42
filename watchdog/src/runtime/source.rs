//! Where the policies come from: a directory of policy files, or the
//! shipped policies compiled into the binary; loading them checked against
//! the configured channels and actions; and the watcher that reloads them
//! on SIGHUP and when a file changes.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use hyperwatch_policies::{
    CheckOptions, PolicySet, Report,
    checker::{self, parse_policy},
};
use tokio::sync::mpsc;

use crate::config::PoliciesConfig;

/// The shipped policies (policies/default/), built in so that `hyperwatch
/// serve` without a configuration runs them.
pub const SHIPPED: [(&str, &str); 7] = [
    (
        "ebpf-unavailable.toml",
        include_str!("../../../policies/default/ebpf-unavailable.toml"),
    ),
    (
        "heartbeat-lost.toml",
        include_str!("../../../policies/default/heartbeat-lost.toml"),
    ),
    (
        "host-cpu-capacity.toml",
        include_str!("../../../policies/default/host-cpu-capacity.toml"),
    ),
    (
        "host-memory-capacity.toml",
        include_str!("../../../policies/default/host-memory-capacity.toml"),
    ),
    (
        "service-crashed.toml",
        include_str!("../../../policies/default/service-crashed.toml"),
    ),
    (
        "storage-capacity.toml",
        include_str!("../../../policies/default/storage-capacity.toml"),
    ),
    (
        "storage-latency.toml",
        include_str!("../../../policies/default/storage-latency.toml"),
    ),
];

/// How built-in policy files are named in errors and in each policy's
/// `file`.
const EMBEDDED_DIR: &str = "<built-in>/policies/default";

/// Where the policies come from.
#[derive(Clone, Debug)]
pub enum PolicySource {
    /// The shipped policies, built in.
    Embedded,
    /// A directory of policy files.
    Dir(PathBuf),
}

impl PolicySource {
    /// The source `[policies]` names.
    pub fn of(config: &PoliciesConfig) -> Self {
        match &config.dir {
            Some(d) => PolicySource::Dir(d.clone()),
            None => PolicySource::Embedded,
        }
    }

    /// Loads and checks every policy: all of them, or (on any error)
    /// nothing, with a report naming file, line and column.
    pub fn load(&self, opts: &CheckOptions) -> Result<PolicySet, Report> {
        match self {
            PolicySource::Dir(dir) => hyperwatch_policies::load_dir(dir, opts),
            PolicySource::Embedded => load_embedded(opts),
        }
    }

    /// Checks without keeping the result (`serve --check-config`).
    pub fn check(&self, opts: &CheckOptions) -> Report {
        match self {
            PolicySource::Dir(dir) => hyperwatch_policies::check_dir(dir, opts),
            PolicySource::Embedded => match load_embedded(opts) {
                Ok(set) => Report {
                    files: SHIPPED
                        .iter()
                        .map(|(n, _)| Path::new(EMBEDDED_DIR).join(n))
                        .collect(),
                    policies: set.iter().map(|p| p.name.clone()).collect(),
                    ..Report::default()
                },
                Err(report) => report,
            },
        }
    }

    /// For people and the API: the directory, or "built-in".
    pub fn describe(&self) -> String {
        match self {
            PolicySource::Dir(d) => d.display().to_string(),
            PolicySource::Embedded => "built-in (policies/default)".to_owned(),
        }
    }

    /// What a change of the files would change: every policy file's name,
    /// modification time and size. `None` for the built-in policies.
    fn fingerprint(&self) -> Option<Vec<(PathBuf, Option<SystemTime>, u64)>> {
        let PolicySource::Dir(dir) = self else {
            return None;
        };
        // A directory that cannot be read is a state too: its return is a
        // change.
        let files = checker::policy_files(dir).unwrap_or_default();
        Some(
            files
                .into_iter()
                .map(|f| {
                    let meta = std::fs::metadata(&f).ok();
                    let modified = meta.as_ref().and_then(|m| m.modified().ok());
                    let len = meta.map_or(0, |m| m.len());
                    (f, modified, len)
                })
                .collect(),
        )
    }
}

/// The check options for the configured channels and actions.
pub fn check_options(channels: &[String], config: &PoliciesConfig) -> CheckOptions {
    CheckOptions {
        channels: Some(channels.iter().cloned().collect()),
        actions: Some(config.actions.iter().cloned().collect()),
    }
}

fn load_embedded(opts: &CheckOptions) -> Result<PolicySet, Report> {
    let mut report = Report {
        files: SHIPPED
            .iter()
            .map(|(n, _)| Path::new(EMBEDDED_DIR).join(n))
            .collect(),
        ..Report::default()
    };
    let mut policies = Vec::new();
    let mut names = BTreeSet::new();
    for (file, text) in SHIPPED {
        match parse_policy(text, &Path::new(EMBEDDED_DIR).join(file), opts) {
            // The shipped files have distinct file names and no `name`.
            Ok(p) if names.insert(p.name.clone()) => {
                report.policies.push(p.name.clone());
                policies.push(p);
            }
            Ok(p) => report
                .errors
                .push(hyperwatch_policies::diag::Diagnostic::file(
                    &p.file,
                    format!("policy name `{}` is used twice", p.name),
                )),
            Err(errors) => report.errors.extend(errors),
        }
    }
    if report.is_ok() {
        Ok(PolicySet::new(policies))
    } else {
        Err(report)
    }
}

/// Why policies are being reloaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// SIGHUP.
    Sighup,
    /// A policy file changed, appeared or vanished.
    Change,
}

impl Trigger {
    /// The metric label and audit word.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Sighup => "sighup",
            Trigger::Change => "change",
        }
    }
}

/// A reload: what triggered it and what loading gave.
pub struct Reload {
    /// SIGHUP or a change.
    pub trigger: Trigger,
    /// The checked set, or the report of why it does not check.
    pub result: Result<PolicySet, Report>,
}

/// Watches for SIGHUP and, for a directory, polls the files' modification
/// times every `poll`; sends each reload's result until `reloads` closes.
/// A change is loaded once two polls in a row agree, so a file caught
/// half-written by an editor is not reported as an error. One stat per
/// policy file per poll: a directory of a thousand policies costs a few
/// milliseconds every couple of seconds.
pub async fn watch(
    source: PolicySource,
    opts: CheckOptions,
    poll: Duration,
    reloads: mpsc::Sender<Reload>,
) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::error!(error = %e, "cannot handle SIGHUP; policies reload only when their files change");
            None
        }
    };
    let mut seen = source.fingerprint();
    let mut changing = None;
    let mut tick = tokio::time::interval(poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let trigger = tokio::select! {
            Some(()) = async {
                match hup.as_mut() {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                }
            } => Trigger::Sighup,
            _ = tick.tick() => {
                let now = source.fingerprint();
                if now == seen {
                    changing = None;
                    continue;
                }
                if changing.as_ref() != Some(&now) {
                    // Changed since the last poll: let it settle.
                    changing = Some(now);
                    continue;
                }
                Trigger::Change
            }
        };
        changing = None;
        seen = source.fingerprint();
        tracing::info!(trigger = trigger.as_str(), source = %source.describe(), "reloading policies");
        let result = source.load(&opts);
        if reloads.send(Reload { trigger, result }).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_policies_are_every_shipped_file_and_check() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/default");
        let files: Vec<String> = checker::policy_files(&dir)
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        let built_in: Vec<&str> = SHIPPED.iter().map(|(n, _)| *n).collect();
        assert_eq!(files, built_in, "add new shipped policies to SHIPPED");
        let opts = CheckOptions {
            channels: Some(["console", "email", "sms"].map(String::from).into()),
            actions: Some(["restart-service".to_owned()].into()),
        };
        let set = PolicySource::Embedded.load(&opts).unwrap();
        assert_eq!(set.len(), SHIPPED.len());
    }

    #[test]
    fn unknown_channels_make_the_built_in_set_fail_with_the_place() {
        let opts = CheckOptions {
            channels: Some(["console".to_owned()].into()),
            actions: None,
        };
        let report = PolicySource::Embedded.load(&opts).unwrap_err();
        let text = report.to_string();
        assert!(text.contains("heartbeat-lost.toml:"), "{text}");
        assert!(text.contains("email"), "{text}");
    }
}
