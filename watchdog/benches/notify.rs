//! `cargo xtask bench notify` (or `cargo bench -p hyperwatch --bench
//! notify`): how fast the outbox turns decisions into accepted messages.
//!
//! 1. Latency: incidents fire at a steady rate (default 100/s); each is
//!    recorded in the outbox (SQLite, synchronous=FULL) and sent by the
//!    email channel over STARTTLS to a real aiosmtpd on loopback. Latency is
//!    the firing time to the SMTP server's acceptance (its own clock, same
//!    host), p50/p99/max over all incidents.
//! 2. Throughput: notifications recorded one by one (one transaction each,
//!    as the ladder decides them) and delivered to a local HTTP receiver,
//!    end to end, with synchronous=FULL, NORMAL, and OFF as the baseline
//!    measured in the same run.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use hyperwatch::{
    channels::{ChannelSet, Notification, Severity, Status, config::ChannelsSection},
    outbox::{DeliveryMetrics, Durability, Notifier, Outbox},
};

/// Debian's python with python3-aiosmtpd.
const PYTHON: &str = "/usr/bin/python3";
/// Bound on any one phase.
const PHASE_TIMEOUT: Duration = Duration::from_secs(120);

struct Options {
    incidents: usize,
    rate: u32,
    throughput: usize,
}

fn options() -> Options {
    let mut o = Options {
        incidents: 1000,
        rate: 100,
        throughput: 2000,
    };
    let args: Vec<String> = std::env::args().collect();
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .map(|v| {
                v.parse()
                    .unwrap_or_else(|_| panic!("{name} takes a number, got {v:?}"))
            })
    };
    if let Some(v) = value("--incidents") {
        o.incidents = v;
    }
    if let Some(v) = value("--rate") {
        o.rate = v as u32;
    }
    if let Some(v) = value("--throughput") {
        o.throughput = v;
    }
    o
}

fn main() {
    let o = options();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "notify benchmark ({} cores)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let latency = runtime.block_on(latency(o.incidents, o.rate));
    println!(
        "  incident firing -> SMTP acceptance (aiosmtpd, STARTTLS, synchronous=FULL), {} incidents at {}/s:",
        o.incidents, o.rate
    );
    println!(
        "    p50 {:.1} ms   p99 {:.1} ms   max {:.1} ms   (target: p99 < 1000 ms)",
        latency.p50 * 1e3,
        latency.p99 * 1e3,
        latency.max * 1e3
    );
    println!(
        "  throughput, {} notifications recorded one by one and delivered to a local HTTP receiver:",
        o.throughput
    );
    let mut baseline = 0.0;
    let mut rows = Vec::new();
    for durability in [Durability::Off, Durability::Normal, Durability::Full] {
        let rate = runtime.block_on(throughput(o.throughput, durability));
        if durability == Durability::Off {
            baseline = rate;
        }
        rows.push((durability, rate));
    }
    for (durability, rate) in rows {
        let name = match durability {
            Durability::Full => "synchronous=FULL  ",
            Durability::Normal => "synchronous=NORMAL",
            Durability::Off => "synchronous=OFF   ",
        };
        let note = if durability == Durability::Off {
            "(baseline: no fsync)".to_owned()
        } else {
            format!("({:.2} x baseline)", rate / baseline)
        };
        println!("    {name}  {rate:8.0} notifications/s  {note}");
    }
}

struct Latency {
    p50: f64,
    p99: f64,
    max: f64,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn notification(id: String) -> Notification {
    let now = SystemTime::now();
    Notification {
        incident_id: id,
        level: 0,
        repeat: 0,
        status: Status::Problem,
        severity: Severity::Critical,
        target: "host hv-12".to_owned(),
        summary: "heartbeats stopped".to_owned(),
        policy: "bench".to_owned(),
        labels: Default::default(),
        fired_at: now,
        decided_at: now,
    }
}

fn notifier(store: &Path, durability: Durability, channels: &str) -> Notifier {
    let section: ChannelsSection = toml::from_str(channels).unwrap();
    let outbox = Outbox::open(store, durability).unwrap();
    Notifier::new(
        outbox,
        ChannelSet::build(&section.channels).unwrap(),
        DeliveryMetrics::default(),
    )
}

struct Sink(Child);

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_sink(dir: &Path, port: u16, cert: &Path, key: &Path) -> Sink {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(PYTHON)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/smtp_sink.py"))
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--mode",
            "starttls",
        ])
        .arg("--cert")
        .arg(cert)
        .arg("--key")
        .arg(key)
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting aiosmtpd (cargo xtask setup installs python3-aiosmtpd)");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(
        line.contains("READY"),
        "the SMTP sink did not start: {line:?}"
    );
    Sink(child)
}

/// (incident id, acceptance time in seconds since the epoch) of every message.
fn accepted(dir: &Path) -> Vec<(String, f64)> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p: &PathBuf| p.extension().is_some_and(|e| e == "eml"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let meta: serde_json::Value =
                serde_json::from_str(text.lines().next().unwrap()).unwrap();
            (
                meta["parsed"]["incident"].as_str().unwrap().to_owned(),
                meta["accepted_at"].as_f64().unwrap(),
            )
        })
        .collect()
}

async fn latency(incidents: usize, rate: u32) -> Latency {
    let dir = tempfile::tempdir().unwrap();
    let mails = dir.path().join("mails");
    std::fs::create_dir(&mails).unwrap();
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _sink = start_sink(&mails, port, &cert, &key);
    let notifier = notifier(
        &dir.path().join("store.db"),
        Durability::Full,
        &format!(
            r#"
            [channels.mail]
            type = "email"
            from = "hyperwatch@example.net"
            to = ["oncall@example.net"]
            relays = [{{ host = "127.0.0.1", port = {port}, tls = "starttls", ca_file = "{}" }}]
            "#,
            cert.display()
        ),
    );
    let running = notifier.start();
    let channels = vec!["mail".to_owned()];
    let mut fired: HashMap<String, f64> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
    let mut tasks = Vec::new();
    for i in 0..incidents {
        tick.tick().await;
        let n = notification(format!("bench-{i}"));
        fired.insert(
            n.incident_id.clone(),
            n.decided_at
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs_f64(),
        );
        let notifier = notifier.clone();
        let channels = channels.clone();
        tasks.push(tokio::spawn(async move {
            notifier.enqueue(&n, &channels).await.unwrap()
        }));
        if i % (rate as usize * 5) == 0 {
            eprintln!("  fired {i}/{incidents}");
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    let started = Instant::now();
    let got = loop {
        let got = accepted(&mails);
        if got.len() >= incidents {
            break got;
        }
        assert!(
            started.elapsed() < PHASE_TIMEOUT,
            "only {} of {incidents} accepted",
            got.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    running.stop().await;
    let mut latencies: Vec<f64> = got
        .iter()
        .map(|(id, at)| (at - fired[id]).max(0.0))
        .collect();
    latencies.sort_by(f64::total_cmp);
    Latency {
        p50: percentile(&latencies, 0.50),
        p99: percentile(&latencies, 0.99),
        max: *latencies.last().unwrap(),
    }
}

async fn throughput(count: usize, durability: Durability) -> f64 {
    let received = Arc::new(AtomicUsize::new(0));
    let counter = received.clone();
    let router = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::Relaxed);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let dir = tempfile::tempdir().unwrap();
    let notifier = notifier(
        &dir.path().join("store.db"),
        durability,
        &format!(
            r#"
            [channels.hook]
            type = "webhook"
            url = "http://{addr}/hook"
            [channels.hook.delivery]
            concurrency = 8
            "#
        ),
    );
    let running = notifier.start();
    let channels = vec!["hook".to_owned()];
    let started = Instant::now();
    for i in 0..count {
        notifier
            .enqueue(&notification(format!("tp-{i}")), &channels)
            .await
            .unwrap();
    }
    while received.load(Ordering::Relaxed) < count {
        assert!(
            started.elapsed() < PHASE_TIMEOUT,
            "throughput run did not finish"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Delivered means recorded as delivered, too.
    loop {
        let pending: i64 = notifier
            .outbox()
            .pending_counts()
            .await
            .unwrap()
            .iter()
            .map(|(_, n)| n)
            .sum();
        if pending == 0 {
            break;
        }
        assert!(
            started.elapsed() < PHASE_TIMEOUT,
            "throughput run did not finish"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let rate = count as f64 / started.elapsed().as_secs_f64();
    running.stop().await;
    server.abort();
    rate
}
