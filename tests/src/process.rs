//! Locating the built binaries and running the agent as a real process.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use nix::{sys::signal, unistd::Pid};

/// Bound on an agent's start (eBPF load included).
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on a clean stop after SIGTERM.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Path of a binary built by this workspace (target/debug/NAME).
pub fn binary(name: &str) -> PathBuf {
    // This test runs as target/debug/deps/TEST-HASH.
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/*/deps");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built; run the tests with `cargo xtask test` (or cargo build --workspace first)",
        path.display()
    );
    path
}

/// A running hyperwatch-agent, killed when dropped.
pub struct AgentProcess {
    child: Child,
    pub addr: SocketAddr,
    stderr: mpsc::Receiver<String>,
    log: Vec<String>,
}

impl AgentProcess {
    /// Starts the agent with `args` (a `--listen 127.0.0.1:0` is added) and
    /// waits for it to announce its metrics address.
    pub fn start(args: &[&str]) -> anyhow::Result<Self> {
        Self::start_under(&[], args)
    }

    /// Like [`Self::start`], run through `wrapper` (a program and its
    /// arguments that execs the agent, such as `setpriv ...`).
    pub fn start_under(wrapper: &[&str], args: &[&str]) -> anyhow::Result<Self> {
        let agent = binary("hyperwatch-agent");
        let mut command = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(&agent);
                c
            }
            None => Command::new(&agent),
        };
        let mut child = command
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("spawning hyperwatch-agent")?;
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let (err_tx, err_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if err_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let (addr_tx, addr_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line
                    .split("http://")
                    .nth(1)
                    .and_then(|r| r.split('/').next())
                {
                    let _ = addr_tx.send(addr.to_owned());
                }
            }
        });
        let addr = match addr_rx.recv_timeout(START_TIMEOUT) {
            Ok(a) => a.parse().context("announced address")?,
            Err(_) => {
                let _ = child.kill();
                let log: Vec<String> = err_rx.try_iter().collect();
                bail!(
                    "agent did not announce its address within {START_TIMEOUT:?}; stderr:\n{}",
                    log.join("\n")
                );
            }
        };
        Ok(Self {
            child,
            addr,
            stderr: err_rx,
            log: Vec::new(),
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the agent logged so far.
    pub fn log(&mut self) -> &[String] {
        self.log.extend(self.stderr.try_iter());
        &self.log
    }

    /// SIGKILL (the agent dies without a word to the watchdog) and reaping.
    pub fn kill(&mut self) -> anyhow::Result<ExitStatus> {
        self.child.kill()?;
        Ok(self.child.wait()?)
    }

    /// Waits at most `limit` for the agent to exit on its own.
    pub fn wait_exit(&mut self, limit: Duration) -> anyhow::Result<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait()? {
                self.log();
                return Ok(status);
            }
            if Instant::now() > deadline {
                bail!("agent still running {limit:?} later");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM and waits (bounded) for the exit.
    pub fn terminate(&mut self) -> anyhow::Result<ExitStatus> {
        let status = terminate_child(&mut self.child, "agent")?;
        // Give the reader thread a moment to drain the last lines.
        std::thread::sleep(Duration::from_millis(50));
        self.log();
        Ok(status)
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        reap(&mut self.child);
    }
}

/// SIGTERM to `child` and a wait of at most [`STOP_TIMEOUT`] for its exit;
/// `what` names it in the error.
pub fn terminate_child(child: &mut Child, what: &str) -> anyhow::Result<ExitStatus> {
    signal::kill(Pid::from_raw(child.id() as i32), signal::Signal::SIGTERM)?;
    let deadline = Instant::now() + STOP_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if Instant::now() > deadline {
            bail!("{what} did not stop within {STOP_TIMEOUT:?} of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Kills `child` if it still runs, and reaps it: for `Drop`, so a failing
/// test leaves no process behind.
pub fn reap(child: &mut Child) {
    if let Ok(None) = child.try_wait() {
        let _ = child.kill();
        let _ = child.wait();
    }
}
