//! The demo's child processes: the SMTP sink, the watchdog, the real agent
//! and the simulated hosts. Each runs in its own process group (Ctrl-C at
//! the terminal reaches only the demo, which then stops them in order) and
//! dies with the demo even if the demo itself is killed (the parent-death
//! signal). Their stderr goes to a log file; their stdout is handed back
//! for the timeline.

use std::{
    path::Path,
    process::{ExitStatus, Stdio},
    time::Duration,
};

use nix::{
    sys::signal::{self, Signal},
    unistd::Pid,
};
use tokio::process::{Child, ChildStdout, Command};

use super::DemoError;

/// Bound on a process's clean stop after SIGTERM (the watchdog saves its
/// engine state within its own 10 s grace); then SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(15);
/// Bound on reaping a process after SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(5);

/// One child.
struct Proc {
    name: String,
    pid: u32,
    child: Child,
}

/// Every child the demo started, in start order.
#[derive(Default)]
pub struct Processes {
    procs: Vec<Proc>,
}

impl Processes {
    /// Starts `program` with `args` as `name`, its stderr into `log`;
    /// returns its pid and its stdout.
    pub fn spawn(
        &mut self,
        name: &str,
        program: &Path,
        args: &[&str],
        log: &Path,
    ) -> Result<(u32, ChildStdout), DemoError> {
        let stderr = std::fs::File::create(log).map_err(|e| DemoError::io("creating", log, e))?;
        let mut command = Command::new(program);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            // Ctrl-C at the terminal goes to the foreground process group:
            // the demo alone, which stops the children in a sensible order.
            .process_group(0)
            .kill_on_drop(true);
        // SAFETY: the closure runs between fork and exec and only makes one
        // system call (prctl), which is async-signal-safe.
        unsafe {
            command.pre_exec(|| {
                // The demo's children die with it, even if it is killed: the
                // demo runs on one thread, so "its thread exits" is "it
                // exits".
                nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)
                    .map_err(|e| std::io::Error::from_raw_os_error(e as i32))
            });
        }
        let mut child = command.spawn().map_err(|e| DemoError::Start {
            what: name.to_owned(),
            message: format!("{}: {e}", program.display()),
        })?;
        let pid = child.id().unwrap_or_default();
        let stdout = child.stdout.take().expect("piped stdout");
        self.procs.push(Proc {
            name: name.to_owned(),
            pid,
            child,
        });
        Ok((pid, stdout))
    }

    /// SIGKILL to `name`'s process group, and the reaping: a host dying
    /// without a word. Returns its pid.
    pub async fn kill(&mut self, name: &str) -> Result<u32, DemoError> {
        let i = self
            .procs
            .iter()
            .position(|p| p.name == name)
            .ok_or_else(|| DemoError::Start {
                what: name.to_owned(),
                message: "no such process to kill".into(),
            })?;
        let mut p = self.procs.remove(i);
        signal_group(p.pid, Signal::SIGKILL);
        let _ = tokio::time::timeout(KILL_GRACE, p.child.wait()).await;
        Ok(p.pid)
    }

    /// A child that exited on its own since the last look, with its status.
    pub fn exited(&mut self) -> Option<(String, ExitStatus)> {
        let i = self
            .procs
            .iter_mut()
            .position(|p| matches!(p.child.try_wait(), Ok(Some(_))))?;
        let mut p = self.procs.remove(i);
        let status = p.child.try_wait().ok().flatten()?;
        Some((p.name, status))
    }

    /// Stops `first` (the watchdog: it must not see the agents leave and
    /// call it a failure), then everyone else at once: SIGTERM, a bounded
    /// wait, SIGKILL for whoever is still there. Returns the names of those
    /// that needed SIGKILL.
    pub async fn stop_all(&mut self, first: &str) -> Vec<String> {
        let mut forced = Vec::new();
        let (head, rest): (Vec<Proc>, Vec<Proc>) = std::mem::take(&mut self.procs)
            .into_iter()
            .partition(|p| p.name == first);
        for batch in [head, rest] {
            forced.extend(stop(batch).await);
        }
        forced
    }
}

/// SIGTERM to each, then waits for all of them together within the grace.
async fn stop(mut batch: Vec<Proc>) -> Vec<String> {
    for p in &batch {
        signal_group(p.pid, Signal::SIGTERM);
    }
    let all = futures_util::future::join_all(batch.iter_mut().map(|p| p.child.wait()));
    if tokio::time::timeout(STOP_GRACE, all).await.is_ok() {
        return Vec::new();
    }
    let mut forced = Vec::new();
    for p in &mut batch {
        if !matches!(p.child.try_wait(), Ok(Some(_))) {
            signal_group(p.pid, Signal::SIGKILL);
            let _ = tokio::time::timeout(KILL_GRACE, p.child.wait()).await;
            forced.push(p.name.clone());
        }
    }
    forced
}

/// A signal to the process group a child leads (the child and whatever it
/// started, such as the watchdog's batch scripts that did not get their
/// own group).
fn signal_group(pid: u32, sig: Signal) {
    if pid > 0 {
        let _ = signal::killpg(Pid::from_raw(pid as i32), sig);
    }
}

impl Drop for Processes {
    /// The last resort (an error or a panic on the way out): nothing the
    /// demo started outlives it.
    fn drop(&mut self) {
        for p in &mut self.procs {
            signal_group(p.pid, Signal::SIGKILL);
            let _ = p.child.start_kill();
        }
    }
}
