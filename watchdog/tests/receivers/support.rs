//! Helpers for the channel tests: free loopback ports, a self-signed
//! certificate, the real receivers (aiosmtpd, snmptrapd) as child
//! processes, a test harness around the outbox, and bounded waiting.

use std::{
    io::{BufRead, BufReader},
    net::{TcpListener, UdpSocket},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use hyperwatch::{
    channels::{ChannelSet, Notification, Severity, Status, config::ChannelsSection},
    outbox::{DeliveryLoop, DeliveryMetrics, Durability, Notifier, Outbox},
};

/// Debian's python, where python3-aiosmtpd is installed (a pyenv or venv
/// python earlier on PATH would not see it).
pub const PYTHON: &str = "/usr/bin/python3";
/// Bound on a receiver's start.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A loopback TCP port that was free a moment ago.
pub fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A loopback UDP port that was free a moment ago.
pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Writes a self-signed certificate for 127.0.0.1 and localhost; returns
/// (certificate, key) paths.
pub fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    let ck =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("generating a certificate");
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    (cert, key)
}

/// Polls `f` every 50 ms until it returns Some, or panics after `timeout`.
pub async fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut f: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A notification for tests.
pub fn notification(incident: &str, status: Status) -> Notification {
    let now = std::time::SystemTime::now();
    Notification {
        incident_id: incident.to_owned(),
        level: 1,
        repeat: 0,
        status,
        severity: Severity::Critical,
        target: "host hv-12".to_owned(),
        summary: "heartbeats stopped 45 s ago".to_owned(),
        policy: "hypervisor-heartbeat".to_owned(),
        labels: [("rack".to_owned(), "r7".to_owned())].into(),
        fired_at: now,
        decided_at: now,
    }
}

/// The channels of a `[channels]` TOML text.
pub fn channels(toml_text: &str) -> ChannelSet {
    let section: ChannelsSection = toml::from_str(toml_text).expect("test configuration parses");
    ChannelSet::build(&section.channels).expect("test channels build")
}

/// An outbox in a temporary store with its delivery loop running.
pub struct Harness {
    pub notifier: Notifier,
    pub metrics: DeliveryMetrics,
    pub outbox: Outbox,
    running: Option<DeliveryLoop>,
    _dir: tempfile::TempDir,
}

impl Harness {
    /// Starts delivering to the channels of `toml_text`.
    pub fn start(toml_text: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(&dir.path().join("store.db"), Durability::Full).unwrap();
        let metrics = DeliveryMetrics::default();
        let notifier = Notifier::new(outbox.clone(), channels(toml_text), metrics.clone());
        let running = Some(notifier.start());
        Self {
            notifier,
            metrics,
            outbox,
            running,
            _dir: dir,
        }
    }

    /// Records a notification for channels.
    pub async fn enqueue(&self, n: &Notification, channels: &[&str]) -> usize {
        let names: Vec<String> = channels.iter().map(|s| (*s).to_owned()).collect();
        self.notifier.enqueue(n, &names).await.expect("enqueue")
    }

    /// The metrics in the text format.
    pub fn metrics_text(&self) -> String {
        let mut registry = prometheus_client::registry::Registry::default();
        self.metrics.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        text
    }

    /// Stops the workers.
    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await;
        }
    }
}

/// A child process killed when dropped, with its stdout lines on a channel.
pub struct Receiver {
    child: Child,
    pub lines: mpsc::Receiver<String>,
}

impl Receiver {
    /// Spawns `command` and waits (bounded) for a stdout line containing `ready`.
    pub fn spawn(mut command: Command, ready: &str) -> Self {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("starting {command:?}: {e} (cargo xtask setup installs the receivers)")
            });
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let err_tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if err_tx.send(format!("stderr: {line}")).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + START_TIMEOUT;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) if line.contains(ready) => break,
                Ok(line) => seen.push(line),
                Err(_) => {
                    let _ = child.kill();
                    panic!(
                        "{command:?} did not print {ready:?} within {START_TIMEOUT:?}; output:\n{}",
                        seen.join("\n")
                    );
                }
            }
        }
        Self { child, lines }
    }

    /// Stops the process now.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.kill();
    }
}
