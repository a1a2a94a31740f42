//! The process check: up while a matching process exists. Its death is
//! seen through the kernel's exit events the moment the last matching
//! process exits (with how it ended); /proc is searched only while the
//! service is down, or, without eBPF, polled for liveness.

use std::{
    collections::BTreeSet,
    path::Path,
    time::{Duration, SystemTime},
};

use tokio::sync::broadcast::error::RecvError;

use super::{Reporter, config::ProcessMatch};
use crate::{
    events::{AgentEvent, ExitOutcome, ProcessExit},
    exits::ExitFeed,
    vm::proc_scan::cmdline,
};

/// Watches one process service until the agent stops.
pub async fn watch(
    reporter: Reporter,
    matcher: ProcessMatch,
    interval: Duration,
    feed: Option<std::sync::Arc<ExitFeed>>,
    procfs: std::path::PathBuf,
) {
    // Subscribe before the first search so no exit falls between the two.
    let mut exits = feed.map(|f| f.subscribe());
    let mut pids = find(&procfs, &matcher);
    report_found(&reporter, &procfs, &pids);
    loop {
        let next_exit = async {
            match exits.as_mut() {
                Some(rx) => rx.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            received = next_exit => match received {
                Ok(exit) => {
                    if pids.remove(&exit.pid) {
                        reporter.publish(AgentEvent::ProcessExited {
                            service: reporter.name.clone(),
                            exit: exit.clone(),
                        });
                        if pids.is_empty() {
                            pids = find(&procfs, &matcher);
                            if pids.is_empty() {
                                reporter.report(false, exit.at, describe_exit(&exit));
                            }
                        }
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(service = %reporter.name, missed, "missed exit events; checking /proc");
                    pids.retain(|&pid| alive(&procfs, pid));
                    if pids.is_empty() {
                        reporter.report(false, SystemTime::now(), "process no longer in /proc".into());
                    }
                }
                Err(RecvError::Closed) => exits = None,
            },
            _ = tokio::time::sleep(interval) => {
                if exits.is_none() {
                    // Without exit events, liveness is polled.
                    pids.retain(|&pid| alive(&procfs, pid));
                    if pids.is_empty() {
                        reporter.report(false, SystemTime::now(), "process no longer in /proc".into());
                    }
                }
                if pids.is_empty() {
                    pids = find(&procfs, &matcher);
                    report_found(&reporter, &procfs, &pids);
                }
            }
        }
    }
}

fn report_found(reporter: &Reporter, procfs: &Path, pids: &BTreeSet<u32>) {
    match pids.iter().next() {
        Some(&pid) => {
            // Up since the oldest matching process started.
            let since = pids
                .iter()
                .filter_map(|&p| started_at(procfs, p))
                .min()
                .unwrap_or_else(SystemTime::now);
            let comm = std::fs::read_to_string(procfs.join(pid.to_string()).join("comm"))
                .unwrap_or_default();
            reporter.report(
                true,
                since,
                format!(
                    "{} process(es), pid {pid} ({})",
                    pids.len(),
                    comm.trim_end()
                ),
            );
        }
        None => reporter.report(false, SystemTime::now(), "no matching process".into()),
    }
}

fn describe_exit(exit: &ProcessExit) -> String {
    let how = match &exit.outcome {
        ExitOutcome::Exited { code } => format!("exited with status {code}"),
        ExitOutcome::Signaled { name, .. } => format!("killed by {name}"),
        ExitOutcome::Unknown => "exited".to_owned(),
    };
    format!("pid {} ({}) {how}", exit.pid, exit.comm)
}

/// Process ids (tgids) matching, the agent itself excluded.
pub fn find(procfs: &Path, matcher: &ProcessMatch) -> BTreeSet<u32> {
    let me = std::process::id();
    if let ProcessMatch::Pidfile(file) = matcher {
        return std::fs::read_to_string(file)
            .ok()
            .and_then(|t| t.trim().parse::<u32>().ok())
            .filter(|&pid| pid != me && alive(procfs, pid))
            .into_iter()
            .collect();
    }
    let Ok(entries) = std::fs::read_dir(procfs) else {
        return BTreeSet::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me)
        .filter(|&pid| matches(&procfs.join(pid.to_string()), matcher))
        .collect()
}

fn matches(dir: &Path, matcher: &ProcessMatch) -> bool {
    // Kernel threads and zombies have an empty command line; never a service.
    let Ok(argv) = cmdline(dir) else { return false };
    if argv.is_empty() {
        return false;
    }
    match matcher {
        ProcessMatch::Name(name) => {
            let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
            let argv0 = argv[0].rsplit('/').next().unwrap_or("");
            comm.trim_end() == name || argv0 == name
        }
        ProcessMatch::Cmdline(re) => re.is_match(&argv.join(" ")),
        ProcessMatch::Pidfile(_) => false,
    }
}

/// Whether `pid` exists and is not a zombie.
pub fn alive(procfs: &Path, pid: u32) -> bool {
    std::fs::read_to_string(procfs.join(pid.to_string()).join("stat"))
        .ok()
        .and_then(|s| {
            let state = s[s.rfind(')')? + 1..]
                .split_ascii_whitespace()
                .next()?
                .to_owned();
            Some(state != "Z" && state != "X")
        })
        .unwrap_or(false)
}

/// When `pid` started: its start time (field 22 of /proc/PID/stat, clock
/// ticks since boot) placed on the wall clock through CLOCK_BOOTTIME.
pub fn started_at(procfs: &Path, pid: u32) -> Option<SystemTime> {
    let stat = std::fs::read_to_string(procfs.join(pid.to_string()).join("stat")).ok()?;
    let ticks: u64 = stat[stat.rfind(')')? + 1..]
        .split_ascii_whitespace()
        .nth(19)?
        .parse()
        .ok()?;
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok()??;
    let boot = nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME).ok()?;
    let now_since_boot = Duration::new(boot.tv_sec() as u64, boot.tv_nsec() as u32);
    let started_since_boot = Duration::from_secs_f64(ticks as f64 / hz as f64);
    SystemTime::now().checked_sub(now_since_boot.saturating_sub(started_since_boot))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_real_child_by_name_cmdline_and_pidfile() {
        let mut child = std::process::Command::new("sleep")
            .arg("31.4159")
            .spawn()
            .unwrap();
        let pid = child.id();
        let proc = Path::new("/proc");
        // Until the child has exec'd, it still looks like this test.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while cmdline(&proc.join(pid.to_string()))
            .unwrap_or_default()
            .first()
            .map(String::as_str)
            != Some("sleep")
        {
            assert!(std::time::Instant::now() < deadline, "sleep did not start");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(find(proc, &ProcessMatch::Name("sleep".into())).contains(&pid));
        let re = regex::Regex::new(r"^sleep 31\.4159$").unwrap();
        assert_eq!(
            find(proc, &ProcessMatch::Cmdline(re)),
            BTreeSet::from([pid])
        );
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("x.pid");
        std::fs::write(&pidfile, format!("{pid}\n")).unwrap();
        assert_eq!(
            find(proc, &ProcessMatch::Pidfile(pidfile.clone())),
            BTreeSet::from([pid])
        );
        let started = started_at(proc, pid).unwrap();
        let age = SystemTime::now()
            .duration_since(started)
            .unwrap_or_default();
        assert!(age < Duration::from_secs(5), "{age:?}");
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(!alive(proc, pid));
        assert!(find(proc, &ProcessMatch::Pidfile(pidfile)).is_empty());
    }
}
