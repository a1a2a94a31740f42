//! Helpers for the policy runtime's end-to-end tests: a console channel
//! writing to a file the test reads, the incidents API, the operator CLI as
//! a real process, and the real receivers the notifications go to (the
//! aiosmtpd sink the channel tests use, a small HTTP SMS gateway).

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpListener},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::{Arc, Mutex, mpsc},
    time::{Duration, Instant, SystemTime},
};

use anyhow::{Context, bail};
use serde_json::Value;

use crate::{
    process::binary,
    watchdog::{ClusterCerts, WatchdogProcess, watchdog_config},
};

/// Debian's python, where python3-aiosmtpd is installed (a pyenv or venv
/// python earlier on PATH would not see it).
pub const PYTHON: &str = "/usr/bin/python3";
/// Bound on a receiver's start.
const RECEIVER_START: Duration = Duration::from_secs(20);
/// Bound on one CLI run.
const CLI_TIMEOUT: Duration = Duration::from_secs(30);
/// How often waits look again: fine enough to time a 1 s tolerance.
const POLL: Duration = Duration::from_millis(20);

/// Polls `check` until it returns Some, or fails after `limit`.
pub fn wait_until<T>(
    what: &str,
    limit: Duration,
    mut check: impl FnMut() -> anyhow::Result<Option<T>>,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check()? {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("timed out after {limit:?} waiting for {what}");
        }
        std::thread::sleep(POLL);
    }
}

/// A console channel's output: a file the watchdog appends one line per
/// message to (`... [inc-3:L1:problem]`).
pub struct ConsoleFile {
    pub path: PathBuf,
}

impl ConsoleFile {
    /// Creates the (empty) file in `dir`.
    pub fn new(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join("console.txt");
        std::fs::write(&path, "")?;
        Ok(Self { path })
    }

    /// The `[channels.console]` table writing to this file.
    pub fn channel(&self) -> String {
        format!(
            "[channels.console]\ntype = \"console\"\ntty = \"{}\"\nsyslog = false\n",
            self.path.display()
        )
    }

    /// Every line written so far.
    pub fn lines(&self) -> anyhow::Result<Vec<String>> {
        Ok(std::fs::read_to_string(&self.path)?
            .lines()
            .map(str::to_owned)
            .collect())
    }

    /// The lines carrying idempotency key `key` (`inc-1:L1:problem`).
    pub fn with_key(&self, key: &str) -> anyhow::Result<Vec<String>> {
        let tag = format!("[{key}]");
        Ok(self
            .lines()?
            .into_iter()
            .filter(|l| l.ends_with(&tag))
            .collect())
    }

    /// Waits for a line with `key`.
    pub fn wait_for(&self, key: &str, limit: Duration) -> anyhow::Result<String> {
        wait_until(&format!("console line {key}"), limit, || {
            Ok(self.with_key(key)?.into_iter().next())
        })
    }
}

/// Email and SMS channels nobody listens behind: the shipped policies name
/// them, and tests that do not exercise them still need them configured.
pub fn unused_email_and_sms() -> &'static str {
    "[channels.email]\ntype = \"email\"\nfrom = \"hyperwatch@test\"\nto = [\"oncall@test\"]\nrelays = [{ host = \"127.0.0.1\", port = 9, tls = \"none\" }]\n\n[channels.sms]\ntype = \"sms\"\nto = [\"oncall\"]\n[channels.sms.http]\nurl = \"http://127.0.0.1:9/sms\"\n"
}

/// A `hyperwatch serve` in `certs`' directory running only the shipped
/// heartbeat-lost policy, its 30 s grouping wait cut to 1 s and nothing
/// else changed; placement with the agent actuator and quick bounds for
/// simulated hosts, its loops off (only the policy moves anything); the
/// console writing to `console`, email and SMS configured but unused.
pub fn heartbeat_lost_watchdog(
    certs: &ClusterCerts,
    console: &ConsoleFile,
) -> anyhow::Result<WatchdogProcess> {
    let dir = certs.dir.path();
    let shipped = include_str!("../../policies/default/heartbeat-lost.toml");
    let policy = shipped.replace("wait = \"30s\"", "wait = \"1s\"");
    anyhow::ensure!(
        policy != shipped,
        "the shipped policy no longer groups for 30 s"
    );
    write_policy(&dir.join("policies"), "heartbeat-lost", &policy)?;
    let extra = format!(
        "\n[policies]\ndir = \"{}\"\n\n[planner]\ninterval_seconds = 0.0\n\n\
         [migration]\nconfirm_poll_ms = 50\nmigration_timeout_seconds = 30\n\
         confirm_timeout_seconds = 10\ncleanup_timeout_seconds = 10\n\n\
         [storage]\ninterval_seconds = 0.0\nstate_dir = \"{}\"\n\n\
         [commands]\ntimeout_seconds = 30.0\n\n{}\n{}",
        dir.join("policies").display(),
        dir.join("lun-moves").display(),
        console.channel(),
        unused_email_and_sms(),
    );
    WatchdogProcess::start(dir, &watchdog_config(certs, 0, &extra))
}

/// Writes a policy file `name.toml` into `dir`, whole at once (written
/// aside, then renamed), as editors and deployment tools do.
pub fn write_policy(dir: &Path, name: &str, text: &str) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!("{name}.toml"));
    let aside = dir.join(format!(".{name}.toml.tmp"));
    std::fs::write(&aside, text)?;
    std::fs::rename(&aside, &path)?;
    Ok(path)
}

/// One incident from the API (open or resolved), with its timeline.
pub fn incident(w: &WatchdogProcess, id: &str) -> anyhow::Result<Option<Value>> {
    let r = crate::http::get(w.http_addr, &format!("/api/v1/incidents/{id}"), &[])?;
    match r.status {
        200 => Ok(Some(serde_json::from_str(&r.body)?)),
        404 => Ok(None),
        s => bail!("GET incident {id}: {s} {}", r.body),
    }
}

/// The latest incident (open or resolved) of `policy` on `target`.
pub fn find_incident(
    w: &WatchdogProcess,
    policy: &str,
    target: &str,
) -> anyhow::Result<Option<Value>> {
    let all = w.get_json("/api/v1/incidents?status=all")?;
    Ok(all
        .as_array()
        .into_iter()
        .flatten()
        .filter(|i| i["policy"] == policy)
        .filter(|i| {
            i["targets"]
                .as_array()
                .is_some_and(|ts| ts.iter().any(|t| t["target"] == target))
        })
        .max_by_key(|i| {
            i["id"]
                .as_str()
                .and_then(|id| id.strip_prefix("inc-"))
                .and_then(|n| n.parse::<u64>().ok())
        })
        .cloned())
}

/// Waits for an incident of `policy` on `target` other than `not` (an
/// earlier one's id); returns its id.
pub fn wait_new_incident(
    w: &WatchdogProcess,
    policy: &str,
    target: &str,
    not: Option<&str>,
    limit: Duration,
) -> anyhow::Result<String> {
    wait_until(
        &format!("an incident of {policy} on {target}"),
        limit,
        || {
            Ok(find_incident(w, policy, target)?
                .and_then(|i| i["id"].as_str().map(str::to_owned))
                .filter(|id| Some(id.as_str()) != not))
        },
    )
}

/// The timeline lines of an incident.
pub fn timeline(w: &WatchdogProcess, id: &str) -> anyhow::Result<Vec<String>> {
    let i = incident(w, id)?.with_context(|| format!("no incident {id}"))?;
    Ok(i["timeline"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["line"].as_str().map(str::to_owned))
        .collect())
}

/// Waits until incident `id` has `status`; returns it.
pub fn wait_status(
    w: &WatchdogProcess,
    id: &str,
    status: &str,
    limit: Duration,
) -> anyhow::Result<Value> {
    wait_until(&format!("{id} {status}"), limit, || {
        Ok(incident(w, id)?.filter(|i| i["status"] == status))
    })
}

/// An RFC 3339 time from the API.
pub fn time(v: &Value) -> anyhow::Result<SystemTime> {
    let text = v.as_str().with_context(|| format!("{v} is not a time"))?;
    humantime::parse_rfc3339_weak(text).with_context(|| format!("bad time {text:?}"))
}

/// Runs `hyperwatch ARGS...` (the operator CLI) to its end.
pub fn cli(args: &[&str]) -> anyhow::Result<Output> {
    let mut child = Command::new(binary("hyperwatch"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running hyperwatch")?;
    let deadline = Instant::now() + CLI_TIMEOUT;
    while child.try_wait()?.is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!("hyperwatch {args:?} did not finish within {CLI_TIMEOUT:?}");
        }
        std::thread::sleep(POLL);
    }
    Ok(child.wait_with_output()?)
}

/// A loopback TCP port that was free a moment ago.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The aiosmtpd sink (watchdog/tests/smtp_sink.py) speaking plain SMTP on
/// loopback, as a local relay does; killed when dropped.
pub struct SmtpSink {
    child: Child,
    pub port: u16,
    dir: PathBuf,
}

impl SmtpSink {
    /// Starts the sink writing messages into `dir`.
    pub fn start(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let port = free_port()?;
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../watchdog/tests/smtp_sink.py");
        let mut child = Command::new(PYTHON)
            .arg(&script)
            .args(["--listen", &format!("127.0.0.1:{port}"), "--mode", "plain"])
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {PYTHON} {}", script.display()))?;
        let stdout = child.stdout.take().context("piped stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        loop {
            match rx.recv_timeout(RECEIVER_START) {
                Ok(l) if l.contains("READY") => break,
                Ok(_) => {}
                Err(_) => {
                    let _ = child.kill();
                    bail!("the SMTP sink did not start (is python3-aiosmtpd installed?)");
                }
            }
        }
        Ok(Self {
            child,
            port,
            dir: dir.to_owned(),
        })
    }

    /// `[channels.NAME]` for an email channel through this sink.
    pub fn channel(&self, name: &str) -> String {
        format!(
            "[channels.{name}]\ntype = \"email\"\nfrom = \"hyperwatch <hyperwatch@test>\"\nto = [\"oncall@test\"]\nrelays = [{{ host = \"127.0.0.1\", port = {}, tls = \"none\" }}]\n",
            self.port
        )
    }

    /// Every message accepted so far: the sink's JSON (envelope,
    /// `accepted_at` in Unix seconds, `parsed` headers and bodies).
    pub fn mails(&self) -> anyhow::Result<Vec<Value>> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|p| {
                let text = std::fs::read_to_string(p)?;
                let first = text.lines().next().unwrap_or_default();
                Ok(serde_json::from_str(first)?)
            })
            .collect()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One request the SMS gateway received.
#[derive(Clone, Debug)]
pub struct SmsRequest {
    /// When it arrived.
    pub at: SystemTime,
    /// Its body (the channel's JSON).
    pub body: Value,
}

/// A local HTTP SMS gateway: answers 200 to every POST and keeps what it
/// received. Its thread ends with the test process.
pub struct SmsGateway {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<SmsRequest>>>,
}

impl SmsGateway {
    /// Starts listening on a free loopback port.
    pub fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let received: Arc<Mutex<Vec<SmsRequest>>> = Arc::default();
        let keep = received.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                if let Some(r) = read_request(stream) {
                    keep.lock().expect("sms lock").push(r);
                }
            }
        });
        Ok(Self { addr, received })
    }

    /// `[channels.NAME]` for an SMS channel through this gateway.
    pub fn channel(&self, name: &str) -> String {
        format!(
            "[channels.{name}]\ntype = \"sms\"\nto = [\"+15550100\"]\n[channels.{name}.http]\nurl = \"http://{}/sms\"\nbody = '{{\"to\": {{{{ recipient|tojson }}}}, \"text\": {{{{ text|tojson }}}}, \"key\": {{{{ key|tojson }}}}}}'\n",
            self.addr
        )
    }

    /// What arrived so far.
    pub fn received(&self) -> Vec<SmsRequest> {
        self.received.lock().expect("sms lock").clone()
    }
}

/// Reads one HTTP/1.1 request (headers and a Content-Length body) and
/// answers 200.
fn read_request(mut stream: std::net::TcpStream) -> Option<SmsRequest> {
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    let (head_end, length) = loop {
        let n = stream.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        raw.extend_from_slice(&buf[..n]);
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            break (end + 4, length);
        }
    };
    while raw.len() < head_end + length {
        let n = stream.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
    }
    let at = SystemTime::now();
    let body = serde_json::from_slice(&raw[head_end..]).unwrap_or(Value::Null);
    let _ = stream.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\nConnection: close\r\n\r\n{\"ok\":true}",
    );
    Some(SmsRequest { at, body })
}
