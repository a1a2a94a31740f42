//! A real Prometheus server (Debian's package) for end-to-end tests: a
//! generated configuration scraping given targets every second with given
//! rule files, its own TSDB directory and port; instant queries and the
//! loaded rules through its HTTP API.

use std::{
    fmt::Write as _,
    io::{BufRead, BufReader},
    net::{SocketAddr, TcpListener},
    path::Path,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{Context, bail, ensure};
use serde_json::Value;

/// Bound on Prometheus starting and answering /-/ready.
pub const READY_WITHIN: Duration = Duration::from_secs(30);

/// A running Prometheus, killed when dropped.
pub struct PrometheusServer {
    child: Child,
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
    log: mpsc::Receiver<String>,
}

/// A recording rule as Prometheus loaded it.
#[derive(Clone, Debug)]
pub struct RecordingRule {
    pub name: String,
    /// The expression as Prometheus parsed and printed it.
    pub query: String,
}

/// A free loopback port (released again; Prometheus binds it next).
fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl PrometheusServer {
    /// Starts Prometheus scraping `jobs` (job name, target) every second
    /// and evaluating `rule_files` every second.
    pub fn start(jobs: &[(&str, SocketAddr)], rule_files: &[&Path]) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let mut config = String::from(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nrule_files:\n",
        );
        for f in rule_files {
            writeln!(config, "  - {:?}", f.canonicalize()?.display().to_string())?;
        }
        config.push_str("scrape_configs:\n");
        for (job, target) in jobs {
            writeln!(
                config,
                "  - job_name: {job:?}\n    static_configs:\n      - targets: [\"{target}\"]"
            )?;
        }
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, &config)?;
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
        let mut child = Command::new("prometheus")
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("spawning prometheus (Debian package prometheus; `cargo xtask setup`)")?;
        let (tx, log) = mpsc::channel();
        let stderr = child.stderr.take().expect("piped stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let server = Self {
            child,
            addr,
            _dir: dir,
            log,
        };
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if let Ok(r) = crate::http::get(addr, "/-/ready", &[])
                && r.status == 200
            {
                return Ok(server);
            }
            if Instant::now() > deadline {
                bail!(
                    "Prometheus not ready within {READY_WITHIN:?}; its log:\n{}",
                    server.log_lines().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// What Prometheus logged so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.log.try_iter().collect()
    }

    fn api(&self, path: &str) -> anyhow::Result<Value> {
        let r = crate::http::get(self.addr, path, &[])?;
        let v: Value = serde_json::from_str(&r.body)
            .with_context(|| format!("GET {path}: not JSON: {}", r.body))?;
        ensure!(
            v["status"] == "success",
            "GET {path}: {} {}",
            r.status,
            v["error"]
        );
        Ok(v["data"].clone())
    }

    /// An instant query's result vector (samples as JSON: metric, value).
    pub fn query(&self, expr: &str) -> anyhow::Result<Vec<Value>> {
        let data = self
            .api(&format!("/api/v1/query?query={}", encode(expr)))
            .with_context(|| format!("query {expr}"))?;
        match data["resultType"].as_str() {
            Some("vector") => Ok(data["result"].as_array().cloned().unwrap_or_default()),
            Some("scalar") => Ok(vec![data["result"].clone()]),
            other => bail!("query {expr}: result type {other:?}"),
        }
    }

    /// The recording rules Prometheus loaded.
    pub fn recording_rules(&self) -> anyhow::Result<Vec<RecordingRule>> {
        let data = self.api("/api/v1/rules?type=record")?;
        let mut rules = Vec::new();
        for group in data["groups"].as_array().into_iter().flatten() {
            for r in group["rules"].as_array().into_iter().flatten() {
                if let Some(e) = r["lastError"].as_str().filter(|e| !e.is_empty()) {
                    bail!("rule {} fails: {e}", r["name"]);
                }
                rules.push(RecordingRule {
                    name: r["name"].as_str().context("rule name")?.to_owned(),
                    query: r["query"].as_str().context("rule query")?.to_owned(),
                });
            }
        }
        Ok(rules)
    }

    /// Scrape targets and their health ("up", "down", "unknown") by job.
    pub fn target_health(&self) -> anyhow::Result<Vec<(String, String, String)>> {
        let data = self.api("/api/v1/targets")?;
        Ok(data["activeTargets"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| {
                (
                    t["labels"]["job"].as_str().unwrap_or("").to_owned(),
                    t["health"].as_str().unwrap_or("").to_owned(),
                    t["lastError"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect())
    }
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Percent-encoding of a query parameter (RFC 3986 unreserved kept).
pub fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Runs promtool with `args` in `dir`; its output, or an error with it.
pub fn promtool(dir: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .context("running promtool (Debian package prometheus)")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(out.status.success(), "promtool {}: {text}", args.join(" "));
    Ok(text)
}
