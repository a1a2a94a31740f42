//! Running the watchdog as a real process, making a cluster's certificates,
//! and writing agent configurations that stream to it.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use hyperwatch::certs::{self, CaPem, Validity};
use hyperwatch_proto::spiffe::Role;
use serde_json::Value;

use crate::process::{START_TIMEOUT, binary, reap, terminate_child};

/// A cluster's CA, a watchdog certificate for 127.0.0.1/localhost, and agent
/// certificates, in a temporary directory.
pub struct ClusterCerts {
    pub dir: tempfile::TempDir,
    pub ca: CaPem,
    pub cluster: String,
}

impl ClusterCerts {
    /// A new CA for `cluster` and the watchdog's certificate ("wd").
    pub fn new(cluster: &str) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let ca = certs::new_ca(cluster)?;
        std::fs::write(dir.path().join("ca.pem"), &ca.cert)?;
        std::fs::write(dir.path().join("ca.key"), &ca.key)?;
        let this = Self {
            dir,
            ca,
            cluster: cluster.to_owned(),
        };
        let wd = certs::issue(
            &this.ca,
            Role::Watchdog("wd".into()),
            &["localhost".into()],
            &["127.0.0.1".parse()?],
            Validity::starting_now(certs::LEAF_VALIDITY),
        )?;
        this.write("wd", &wd)?;
        Ok(this)
    }

    /// Issues an agent certificate for `host` (files HOST.pem, HOST.key).
    pub fn agent(&self, host: &str) -> anyhow::Result<()> {
        self.agent_with_validity(host, Validity::starting_now(certs::LEAF_VALIDITY))
    }

    /// Issues an agent certificate with a chosen validity (expired ones).
    pub fn agent_with_validity(&self, host: &str, validity: Validity) -> anyhow::Result<()> {
        let leaf = certs::issue(&self.ca, Role::Host(host.into()), &[], &[], validity)?;
        self.write(host, &leaf)
    }

    fn write(&self, name: &str, leaf: &certs::LeafPem) -> anyhow::Result<()> {
        std::fs::write(self.path(&format!("{name}.pem")), &leaf.cert)?;
        std::fs::write(self.path(&format!("{name}.key")), &leaf.key)?;
        Ok(())
    }

    /// A file in the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// A running `hyperwatch serve`, killed when dropped.
pub struct WatchdogProcess {
    child: Child,
    pub stream_addr: SocketAddr,
    pub http_addr: SocketAddr,
    config: PathBuf,
    stderr: mpsc::Receiver<String>,
    log: Vec<String>,
}

/// A watchdog configuration for `certs` on loopback; `stream_port` 0 picks
/// a free port; its store is `store.db` in the certificates' directory.
/// `extra` goes at the end of the [stream] table: more [stream] keys, then
/// any further tables.
pub fn watchdog_config(certs: &ClusterCerts, stream_port: u16, extra: &str) -> String {
    let p = |n: &str| certs.path(n).display().to_string();
    format!(
        "[http]\nlisten = \"127.0.0.1:0\"\n\n[store]\npath = \"{}\"\n\n[stream]\nlisten = \"127.0.0.1:{stream_port}\"\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n{extra}\n",
        p("store.db"),
        p("ca.pem"),
        p("wd.pem"),
        p("wd.key")
    )
}

impl WatchdogProcess {
    /// Writes `config` to `dir/watchdog.toml` and starts the watchdog.
    pub fn start(dir: &Path, config: &str) -> anyhow::Result<Self> {
        let path = dir.join("watchdog.toml");
        std::fs::write(&path, config)?;
        Self::start_with(path)
    }

    fn start_with(config: PathBuf) -> anyhow::Result<Self> {
        let mut child = Command::new(binary("hyperwatch"))
            .args(["serve", "--config"])
            .arg(&config)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("spawning hyperwatch serve")?;
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
        let (line_tx, line_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = line_tx.send(line);
            }
        });
        let Ok(line) = line_rx.recv_timeout(START_TIMEOUT) else {
            let _ = child.kill();
            let log: Vec<String> = err_rx.try_iter().collect();
            bail!(
                "watchdog did not announce its addresses; stderr:\n{}",
                log.join("\n")
            );
        };
        // "hyperwatch: cluster C stream at ADDR api at http://ADDR/"
        let word_after = |key: &str| {
            line.split(key)
                .nth(1)
                .and_then(|r| r.split_whitespace().next())
                .map(|s| {
                    s.trim_start_matches("http://")
                        .trim_end_matches('/')
                        .to_owned()
                })
                .with_context(|| format!("no {key:?} in {line:?}"))
        };
        Ok(Self {
            stream_addr: word_after("stream at ")?.parse()?,
            http_addr: word_after("api at ")?.parse()?,
            child,
            config,
            stderr: err_rx,
            log: Vec::new(),
        })
    }

    /// Starts the same configuration again on the same stream port
    /// (stopping the running one first, with SIGTERM).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        if self.child.try_wait()?.is_none() {
            let status = self.terminate()?;
            if !status.success() {
                bail!("watchdog exited with {status} on SIGTERM");
            }
        }
        let text = std::fs::read_to_string(&self.config)?;
        let pinned = text.replacen(
            "[stream]\nlisten = \"127.0.0.1:0\"",
            &format!("[stream]\nlisten = \"{}\"", self.stream_addr),
            1,
        );
        std::fs::write(&self.config, pinned)?;
        let old_log = std::mem::take(&mut self.log);
        *self = Self::start_with(self.config.clone())?;
        self.log = old_log;
        Ok(())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the watchdog logged so far.
    pub fn log(&mut self) -> &[String] {
        self.log.extend(self.stderr.try_iter());
        &self.log
    }

    /// Waits at most `limit` for a logged line that `matches`; returns it.
    /// (The log arrives through a pipe and a thread: what the watchdog did
    /// can show in its API a moment before the line about it is read.)
    pub fn wait_log(
        &mut self,
        what: &str,
        limit: Duration,
        matches: impl Fn(&str) -> bool,
    ) -> anyhow::Result<String> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(line) = self.log().iter().find(|l| matches(l)) {
                return Ok(line.clone());
            }
            if Instant::now() > deadline {
                bail!(
                    "timed out after {limit:?} waiting for {what} in the watchdog's log:\n{}",
                    self.log.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// GET a JSON document from the API.
    pub fn get_json(&self, path: &str) -> anyhow::Result<Value> {
        let r = crate::http::get(self.http_addr, path, &[])?;
        if r.status != 200 {
            bail!("GET {path}: {} {}", r.status, r.body);
        }
        serde_json::from_str(&r.body).with_context(|| format!("GET {path}: not JSON: {}", r.body))
    }

    /// One host, or None when the watchdog does not know it.
    pub fn host(&self, id: &str) -> anyhow::Result<Option<Value>> {
        let r = crate::http::get(self.http_addr, &format!("/api/v1/hosts/{id}"), &[])?;
        match r.status {
            200 => Ok(Some(serde_json::from_str(&r.body)?)),
            404 => Ok(None),
            s => bail!("GET host {id}: {s} {}", r.body),
        }
    }

    /// The state of `id` ("healthy", "failed", ...), None when unknown.
    pub fn state(&self, id: &str) -> anyhow::Result<Option<String>> {
        Ok(self
            .host(id)?
            .and_then(|h| h["state"].as_str().map(str::to_owned)))
    }

    /// Polls `check` every 20 ms (fine enough to time a 3 s bound) until
    /// it returns Some or `limit` passes.
    pub fn wait_for<T>(
        &self,
        what: &str,
        limit: Duration,
        mut check: impl FnMut(&Self) -> anyhow::Result<Option<T>>,
    ) -> anyhow::Result<T> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(v) = check(self)? {
                return Ok(v);
            }
            if Instant::now() > deadline {
                bail!("timed out after {limit:?} waiting for {what}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The value of a sample in /metrics (exact name and labels as written).
    pub fn metric(&self, sample: &str) -> anyhow::Result<Option<f64>> {
        let body = crate::http::get(self.http_addr, "/metrics", &[])?.body;
        Ok(body.lines().find_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            (name == sample).then(|| value.parse().ok())?
        }))
    }

    /// Resident memory of the process, KiB.
    pub fn rss_kib(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .context("no VmRSS")
    }

    /// SIGKILL (a crash: nothing is flushed, no handler runs) and reaping.
    pub fn kill(&mut self) -> anyhow::Result<ExitStatus> {
        self.child.kill()?;
        let status = self.child.wait()?;
        std::thread::sleep(Duration::from_millis(50));
        self.log();
        Ok(status)
    }

    /// SIGTERM and a bounded wait.
    pub fn terminate(&mut self) -> anyhow::Result<ExitStatus> {
        let status = terminate_child(&mut self.child, "watchdog")?;
        std::thread::sleep(Duration::from_millis(50));
        self.log();
        Ok(status)
    }
}

impl Drop for WatchdogProcess {
    fn drop(&mut self) {
        reap(&mut self.child);
    }
}

/// An agent configuration streaming to `endpoint` as `host_id` with the
/// certificate files HOST.pem/HOST.key from `certs` (eBPF off, 1 s
/// heartbeats, quick reconnects). `ca` overrides the CA file; `extra` is
/// appended.
pub fn agent_config(
    certs: &ClusterCerts,
    endpoint: SocketAddr,
    host_id: &str,
    cert_name: &str,
    extra: &str,
) -> String {
    let p = |n: &str| certs.path(n).display().to_string();
    format!(
        "[ebpf]\nenabled = false\n\n[stream]\nendpoints = [\"https://{endpoint}\"]\nhost_id = \"{host_id}\"\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\nheartbeat_interval_seconds = 1.0\ntelemetry_interval_seconds = 1.0\nbackoff_initial_seconds = 0.2\nbackoff_max_seconds = 1.0\n{extra}\n",
        p("ca.pem"),
        p(&format!("{cert_name}.pem")),
        p(&format!("{cert_name}.key"))
    )
}

/// Writes an agent configuration into `dir` and starts the agent with it.
pub fn start_agent(
    dir: &Path,
    name: &str,
    config: &str,
) -> anyhow::Result<crate::process::AgentProcess> {
    let path = dir.join(format!("agent-{name}.toml"));
    std::fs::write(&path, config)?;
    crate::process::AgentProcess::start(&["--config", path.to_str().context("utf-8 path")?])
}

/// Bound on agents coming up and being seen healthy.
pub const HEALTHY_WITHIN: Duration = Duration::from_secs(20);

/// A cluster "e2e": a watchdog (with `watchdog_extra` TOML) and one agent
/// per host name, each seen healthy with a few heartbeats.
pub fn start_cluster(
    hosts: &[&str],
    watchdog_extra: &str,
) -> anyhow::Result<(
    ClusterCerts,
    WatchdogProcess,
    Vec<crate::process::AgentProcess>,
)> {
    let certs = ClusterCerts::new("e2e")?;
    let watchdog = WatchdogProcess::start(
        certs.dir.path(),
        &watchdog_config(&certs, 0, watchdog_extra),
    )?;
    let mut agents = Vec::new();
    for h in hosts {
        certs.agent(h)?;
        let config = agent_config(&certs, watchdog.stream_addr, h, h, "");
        agents.push(start_agent(certs.dir.path(), h, &config)?);
    }
    for h in hosts {
        watchdog.wait_for(&format!("{h} healthy"), HEALTHY_WITHIN, |w| {
            Ok(w.host(h)?
                .filter(|v| v["state"] == "healthy" && v["heartbeats"].as_u64() >= Some(3)))
        })?;
    }
    Ok((certs, watchdog, agents))
}
