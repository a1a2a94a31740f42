//! The demo, as `cargo xtask run` runs it (`hyperwatch demo`, here in its
//! short mode): a real watchdog, this host's real agent and six simulated
//! hosts over mutual TLS, an SMTP sink. Its story must happen step by step
//! in order (a live migration off an overloaded host, the failover of a
//! SIGKILLed host, a service restart, a LUN move, an escalation whose email
//! the sink received), each no sooner than its policy's wait allows and
//! within a bound after it; the demo exits 0 and leaves no process behind.
//! Ctrl-C stops it and every process it started.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Mutex, mpsc},
    time::{Duration, Instant},
};

use anyhow::{Context, bail, ensure};
use hyperwatch_tests::process::{binary, reap};
use nix::{sys::signal, unistd::Pid};
use serde_json::Value;

/// Bound on the whole short story: about 75 s of story (the opening lists
/// the steps' times, the last near +55 s, its incident resolving ~15 s
/// later) plus start-up, on a loaded 2-core machine.
const STORY_WITHIN: Duration = Duration::from_secs(180);
/// Bound on the demo's start-up: certificates, the sink, the watchdog, the
/// real agent loading its kernel programs, the simulated hosts.
const START_WITHIN: Duration = Duration::from_secs(90);
/// Bound on the demo's stop after Ctrl-C: two batches of processes, each
/// given 15 s after SIGTERM before SIGKILL (watchdog/src/demo/procs.rs).
const STOP_WITHIN: Duration = Duration::from_secs(45);
/// How late a step may act after the time the opening gives it: the
/// demo's own bound (`SLACK` in watchdog/src/demo/story.rs).
const STEP_SLACK: f64 = 30.0;
/// How early: the opening rounds its times to whole seconds.
const ROUNDING: f64 = 1.0;
/// The story's steps, in order.
const STEPS: [&str; 5] = ["migration", "failover", "restart", "LUN move", "escalation"];

/// The demos load the machine: one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A running `hyperwatch demo`, its stdout collected line by line.
struct Demo {
    child: Child,
    lines: mpsc::Receiver<String>,
    out: Vec<String>,
}

impl Demo {
    fn start(extra: &[&str]) -> anyhow::Result<Self> {
        // The real agent beside the watchdog binary, as `cargo xtask run`
        // builds them.
        let mut child = Command::new(binary("hyperwatch"))
            .args(["demo", "--short", "--http", "127.0.0.1:0"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("spawning hyperwatch demo")?;
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Self {
            child,
            lines,
            out: Vec::new(),
        })
    }

    /// Waits (bounded) for a line that `matches`; returns it.
    fn wait_line(
        &mut self,
        what: &str,
        within: Duration,
        matches: impl Fn(&str) -> bool,
    ) -> anyhow::Result<String> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.out.push(line.clone());
                    if matches(&line) {
                        return Ok(line);
                    }
                }
                Err(_) => bail!(
                    "no {what} within {within:?}; the demo printed:\n{}",
                    self.out.join("\n")
                ),
            }
        }
    }

    /// Waits (bounded) for the exit; every line is read by then.
    fn wait_exit(&mut self, within: Duration) -> anyhow::Result<ExitStatus> {
        let deadline = Instant::now() + within;
        let status = loop {
            if let Some(status) = self.child.try_wait()? {
                break status;
            }
            if Instant::now() > deadline {
                reap(&mut self.child);
                self.out.extend(self.lines.try_iter());
                bail!(
                    "the demo still ran {within:?} later; it printed:\n{}",
                    self.out.join("\n")
                );
            }
            self.out.extend(self.lines.try_iter());
            std::thread::sleep(Duration::from_millis(100));
        };
        // The reader ends when the pipe closes, right after the exit.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.out.push(line);
        }
        Ok(status)
    }

    fn output(&self) -> String {
        self.out.join("\n")
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        // SIGTERM first: the demo stops its children (their parent-death
        // signal covers a SIGKILL of the demo too).
        if let Ok(None) = self.child.try_wait() {
            let _ = signal::kill(
                Pid::from_raw(self.child.id() as i32),
                signal::Signal::SIGTERM,
            );
            let deadline = Instant::now() + STOP_WITHIN;
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        reap(&mut self.child);
    }
}

/// The demo's directory, named in its second line (`directory DIR;`).
fn demo_dir(out: &[String]) -> anyhow::Result<PathBuf> {
    out.iter()
        .find_map(|l| l.split("; directory ").nth(1)?.split(';').next())
        .map(PathBuf::from)
        .context("the demo named no directory")
}

/// Processes whose command line mentions `dir`: the demo's children
/// (their configurations, scenarios and scripts live there).
fn processes_in(dir: &Path) -> Vec<(u32, String)> {
    let dir = dir.to_string_lossy().into_owned();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| {
            let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            cmdline.contains(&dir).then_some((pid, cmdline))
        })
        .collect()
}

/// `(about +Ns)` of each step in the opening, in story order.
fn due_times(out: &[String]) -> anyhow::Result<Vec<f64>> {
    STEPS
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let head = format!("  {}. {name} ", i + 1);
            out.iter()
                .find_map(|l| {
                    let rest = l.strip_prefix(&head)?;
                    let about = rest.rsplit("(about +").next()?;
                    about.strip_suffix("s)")?.parse::<f64>().ok()
                })
                .with_context(|| format!("the opening lists no time for {name}"))
        })
        .collect()
}

/// The timeline's `✓ N/5 NAME at +Ts: HOW` lines, in print order.
fn acted(out: &[String]) -> Vec<(usize, f64, String)> {
    out.iter()
        .filter_map(|l| {
            let rest = l.split("✓ ").nth(1)?;
            let (n, rest) = rest.split_once("/5 ")?;
            let at = rest.split(" at +").nth(1)?;
            let (t, how) = at.split_once("s: ")?;
            Some((n.parse().ok()?, t.parse().ok()?, how.to_owned()))
        })
        .collect()
}

#[test]
fn the_short_demo_tells_every_step_in_order_and_cleans_up() -> anyhow::Result<()> {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let started = Instant::now();
    let mut demo = Demo::start(&["--keep"])?;
    let status = demo.wait_exit(STORY_WITHIN)?;
    let out = demo.out.clone();
    let text = demo.output();
    eprintln!(
        "the short demo took {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let dir = demo_dir(&out)?;
    ensure!(status.success(), "the demo exited with {status}:\n{text}");
    ensure!(!text.contains('✗'), "a step was missed:\n{text}");

    // Every step acted, in the story's order, each no sooner than its
    // policy's waits allow and within the bound after.
    let due = due_times(&out)?;
    let steps = acted(&out);
    let order: Vec<usize> = steps.iter().map(|(n, _, _)| *n).collect();
    ensure!(
        order == [1, 2, 3, 4, 5],
        "steps acted in the order {order:?}:\n{text}"
    );
    for window in steps.windows(2) {
        ensure!(
            window[0].1 <= window[1].1,
            "step {} acted at +{}s, after step {} at +{}s:\n{text}",
            window[0].0,
            window[0].1,
            window[1].0,
            window[1].1
        );
    }
    for ((n, at, how), due) in steps.iter().zip(&due) {
        ensure!(
            *at >= due - ROUNDING && *at <= due + STEP_SLACK,
            "step {n} ({}) acted at +{at}s, due at +{due}s: {how}",
            STEPS[n - 1]
        );
    }
    // What each step did: plans that moved VMs and LUNs, a restart the
    // agent carried out, an incident told through three channels.
    ensure!(steps[0].2.contains("hv-1 ->"), "migration: {}", steps[0].2);
    ensure!(steps[1].2.contains("hv-2 ->"), "failover: {}", steps[1].2);
    ensure!(
        steps[2].2.contains("ran restart-service")
            || steps[2]
                .2
                .contains("restart-service on service:hv-3/nginx succeeded"),
        "restart: {}",
        steps[2].2
    );
    ensure!(
        steps[3].2.contains("st-1/d2 ->"),
        "LUN move: {}",
        steps[3].2
    );
    ensure!(
        steps[4]
            .2
            .contains("went to the console, the runbook hook and email"),
        "escalation: {}",
        steps[4].2
    );

    // The failed host was a real process, SIGKILLed before its failure was
    // declared, and gone since.
    let kill = out
        .iter()
        .position(|l| l.contains("SIGKILL to hv-2's agent (pid "))
        .context("no SIGKILL of hv-2")?;
    let failed = out
        .iter()
        .position(|l| l.contains("host hv-2 failed"))
        .context("hv-2 never failed")?;
    ensure!(kill < failed, "hv-2 failed before it was killed:\n{text}");

    // The email is in the sink's mailbox: the escalation's incident, the
    // demo's service-down summary.
    let incident = steps[4]
        .2
        .split_whitespace()
        .next()
        .context("escalation names no incident")?
        .to_owned();
    let mut mails = Vec::new();
    for entry in std::fs::read_dir(dir.join("mail")).context("the sink's mailbox")? {
        let raw = std::fs::read_to_string(entry?.path())?;
        let meta: Value = serde_json::from_str(raw.lines().next().unwrap_or_default())?;
        mails.push(meta);
    }
    ensure!(
        mails
            .iter()
            .any(|m| m["parsed"]["incident"] == incident.as_str()
                && m["parsed"]["subject"]
                    .as_str()
                    .is_some_and(|s| s.contains("service api on hv-4 has been down"))),
        "no email of {incident} in the sink: {mails:?}"
    );

    // Nothing the demo started outlives it.
    let left = processes_in(&dir);
    std::fs::remove_dir_all(&dir).ok();
    ensure!(left.is_empty(), "still running after the demo: {left:?}");
    Ok(())
}

#[test]
fn ctrl_c_stops_the_demo_and_every_process_it_started() -> anyhow::Result<()> {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let mut demo = Demo::start(&["--forever"])?;
    // The opening banner follows the start of every simulated host.
    demo.wait_line("the opening", START_WITHIN, |l| {
        l.starts_with("Where to look while it runs")
    })?;
    let dir = demo_dir(&demo.out)?;
    let children = processes_in(&dir);
    // The sink, the watchdog, the real agent and six simulated hosts.
    ensure!(
        children.len() >= 9,
        "expected 9 processes of the demo, found {children:?}"
    );
    signal::kill(
        Pid::from_raw(demo.child.id() as i32),
        signal::Signal::SIGINT,
    )?;
    let status = demo.wait_exit(STOP_WITHIN)?;
    let text = demo.output();
    ensure!(
        status.success(),
        "Ctrl-C: the demo exited with {status}:\n{text}"
    );
    ensure!(
        text.contains("stopped: every process is gone"),
        "no closing line:\n{text}"
    );
    let left = processes_in(&dir);
    ensure!(left.is_empty(), "still running after Ctrl-C: {left:?}");
    ensure!(!dir.exists(), "{} was not removed", dir.display());
    Ok(())
}
