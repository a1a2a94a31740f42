//! `cargo xtask bench ingest`: how many agents one watchdog holds on this
//! machine. A load generator (`hyperwatch loadgen`, one process, every host
//! with its own certificate and mutual-TLS stream) connects N hosts sending
//! heartbeats at 1 Hz and telemetry every 10 s; after a warm-up the
//! watchdog's own histogram gives the heartbeat processing lag (agent send
//! to watchdog processed, same clock on one machine) over a measuring
//! window. N grows step by step; the largest N with p99 lag under 100 ms,
//! every heartbeat received and no host failed is the result. The
//! watchdog's CPU and RSS at each step are printed; the load generator
//! shares the same two cores.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpStream},
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};

use crate::sh;

/// The lag budget the issue sets.
const LAG_BUDGET_SECONDS: f64 = 0.1;
/// Connections opened per second by the load generator.
const RAMP_PER_SECOND: usize = 1000;
/// After all hosts are up, before measuring: let handshakes and the first
/// telemetry round settle.
const WARMUP: Duration = Duration::from_secs(15);
/// Share of the expected heartbeats that must arrive in the window.
const DELIVERY_FLOOR: f64 = 0.98;

pub fn run(steps: &[usize], window: Duration) -> anyhow::Result<()> {
    let root = sh::root();
    sh::run(Command::new("cargo").current_dir(&root).args([
        "build",
        "--release",
        "--package",
        "hyperwatch",
    ]))?;
    let binary = root.join("target/release/hyperwatch");
    let dir = tempfile_dir()?;
    sh::run(
        Command::new(&binary)
            .args(["certs", "init", "--cluster", "bench", "--dir"])
            .arg(&dir),
    )?;
    sh::run(
        Command::new(&binary)
            .args([
                "certs",
                "issue",
                "--host",
                "wd",
                "--watchdog",
                "--ip",
                "127.0.0.1",
                "--dir",
            ])
            .arg(&dir),
    )?;
    let mut results = Vec::new();
    for &hosts in steps {
        eprintln!("bench ingest: step {hosts} hosts");
        let r = step(&binary, &dir, hosts, window)?;
        r.print();
        let ok = r.passes();
        results.push(r);
        if !ok {
            eprintln!("bench ingest: {hosts} hosts is past what this machine holds; stopping");
            break;
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!();
    println!(
        "ingest benchmark: mutual TLS, heartbeats 1 Hz, telemetry every 10 s, window {window:?} after {WARMUP:?} warm-up, load generator on the same {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "  {:>7} {:>10} {:>9} {:>11} {:>8} {:>8} {:>9} {:>7}  verdict",
        "hosts", "hb/s", "p99 lag", "<=100ms", "wd CPU", "lg CPU", "wd RSS", "failed"
    );
    for r in &results {
        println!(
            "  {:>7} {:>10.0} {:>9} {:>10.3}% {:>7.1}% {:>7.1}% {:>7.0}MB {:>7}  {}",
            r.hosts,
            r.heartbeats_per_second,
            r.p99_label(),
            r.within_budget * 100.0,
            r.watchdog_cpu * 100.0,
            r.loadgen_cpu * 100.0,
            r.watchdog_rss_kib as f64 / 1024.0,
            r.failed,
            if r.passes() { "held" } else { "NOT held" }
        );
    }
    match results
        .iter()
        .filter(|r| r.passes())
        .max_by_key(|r| r.hosts)
    {
        Some(best) => println!(
            "  largest load held: {} hosts (p99 heartbeat lag {}, watchdog CPU {:.1}% of one core, RSS {:.0} MB)",
            best.hosts,
            best.p99_label(),
            best.watchdog_cpu * 100.0,
            best.watchdog_rss_kib as f64 / 1024.0
        ),
        None => println!("  no step held the budget"),
    }
    Ok(())
}

struct StepResult {
    hosts: usize,
    heartbeats_per_second: f64,
    /// Upper bound of the histogram bucket holding the 99th percentile.
    p99_upper: f64,
    within_budget: f64,
    delivered: f64,
    watchdog_cpu: f64,
    loadgen_cpu: f64,
    watchdog_rss_kib: u64,
    failed: u64,
}

impl StepResult {
    fn passes(&self) -> bool {
        self.p99_upper <= LAG_BUDGET_SECONDS && self.delivered >= DELIVERY_FLOOR && self.failed == 0
    }

    fn p99_label(&self) -> String {
        if self.p99_upper.is_infinite() {
            "> 5 s".into()
        } else {
            format!("<= {:.1}ms", self.p99_upper * 1000.0)
        }
    }

    fn print(&self) {
        eprintln!(
            "bench ingest: {} hosts: {:.0} heartbeats/s ({:.1}% delivered), p99 lag {}, {:.2}% within 100 ms, watchdog CPU {:.1}% RSS {:.0} MB, load generator CPU {:.1}%, {} failed",
            self.hosts,
            self.heartbeats_per_second,
            self.delivered * 100.0,
            self.p99_label(),
            self.within_budget * 100.0,
            self.watchdog_cpu * 100.0,
            self.watchdog_rss_kib as f64 / 1024.0,
            self.loadgen_cpu * 100.0,
            self.failed
        );
    }
}

fn step(binary: &Path, dir: &Path, hosts: usize, window: Duration) -> anyhow::Result<StepResult> {
    let config = dir.join("watchdog.toml");
    std::fs::create_dir_all(dir.join("policies"))?;
    // Each step starts from an empty store, not the previous step's hosts.
    for f in ["store.db", "store.db-wal", "store.db-shm"] {
        let _ = std::fs::remove_file(dir.join(f));
    }
    std::fs::write(
        &config,
        format!(
            // No policies (an empty directory): this measures ingest, not
            // the policy runtime; its store stays in the bench's directory.
            "[stream]\nlisten = \"127.0.0.1:0\"\nca = \"{0}/ca.pem\"\ncert = \"{0}/wd.pem\"\nkey = \"{0}/wd.key\"\nmax_connections = 30000\n\n[http]\nlisten = \"127.0.0.1:0\"\n\n[store]\npath = \"{0}/store.db\"\n\n[policies]\ndir = \"{0}/policies\"\n",
            dir.display()
        ),
    )?;
    let mut watchdog = Command::new(binary)
        .args(["serve", "--log-level", "warn", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .spawn()
        .context("starting the watchdog")?;
    let (stream, http) = read_addresses(&mut watchdog)?;
    let ramp = Duration::from_secs_f64(hosts as f64 / RAMP_PER_SECOND as f64);
    let duration = ramp + WARMUP + window + Duration::from_secs(120);
    let mut loadgen = Command::new(binary)
        .args([
            "loadgen",
            "--log-level",
            "warn",
            "--target",
            &stream.to_string(),
            "--ca-dir",
        ])
        .arg(dir)
        .args([
            "--hosts",
            &hosts.to_string(),
            "--ramp",
            &RAMP_PER_SECOND.to_string(),
            "--duration-seconds",
            &duration.as_secs().to_string(),
        ])
        .spawn()
        .context("starting the load generator")?;
    let result = measure(&mut watchdog, &mut loadgen, http, hosts, ramp, window);
    stop(&mut loadgen);
    stop(&mut watchdog);
    result
}

fn measure(
    watchdog: &mut Child,
    loadgen: &mut Child,
    http: SocketAddr,
    hosts: usize,
    ramp: Duration,
    window: Duration,
) -> anyhow::Result<StepResult> {
    let deadline = Instant::now() + ramp + Duration::from_secs(90);
    loop {
        let m = scrape(http)?;
        let up = value(&m, "hyperwatch_hosts{state=\"healthy\"}");
        if up as usize >= hosts {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "only {up} of {hosts} hosts healthy after {:?}",
                ramp + Duration::from_secs(90)
            );
        }
        if let Some(status) = loadgen.try_wait()? {
            bail!("the load generator exited: {status}");
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    eprintln!("bench ingest: {hosts} hosts up; warming up {WARMUP:?}");
    std::thread::sleep(WARMUP);
    let (wd0, lg0) = (cpu_ns(watchdog.id())?, cpu_ns(loadgen.id())?);
    let before = scrape(http)?;
    let started = Instant::now();
    std::thread::sleep(window);
    let after = scrape(http)?;
    let elapsed = started.elapsed().as_secs_f64();
    let (wd1, lg1) = (cpu_ns(watchdog.id())?, cpu_ns(loadgen.id())?);
    let delta = |name: &str| value(&after, name) - value(&before, name);
    let count = delta("hyperwatch_heartbeat_lag_seconds_count");
    let buckets: Vec<(f64, f64)> = lag_buckets(&after)
        .into_iter()
        .map(|(le, n)| {
            (
                le,
                n - lag_buckets(&before)
                    .iter()
                    .find(|(l, _)| *l == le)
                    .map_or(0.0, |b| b.1),
            )
        })
        .collect();
    let p99_upper = buckets
        .iter()
        .find(|(_, n)| *n >= 0.99 * count)
        .map_or(f64::INFINITY, |(le, _)| *le);
    let within = buckets
        .iter()
        .find(|(le, _)| (*le - LAG_BUDGET_SECONDS).abs() < 1e-9)
        .map_or(0.0, |(_, n)| n / count.max(1.0));
    Ok(StepResult {
        hosts,
        heartbeats_per_second: count / elapsed,
        p99_upper,
        within_budget: within,
        delivered: count / (hosts as f64 * elapsed),
        watchdog_cpu: (wd1 - wd0) as f64 / 1e9 / elapsed,
        loadgen_cpu: (lg1 - lg0) as f64 / 1e9 / elapsed,
        watchdog_rss_kib: rss_kib(watchdog.id())?,
        failed: (delta("hyperwatch_host_state_changes_total{state=\"failed\"}")) as u64
            + value(&after, "hyperwatch_hosts{state=\"failed\"}") as u64,
    })
}

/// (upper bound, cumulative count) of the lag histogram, ascending.
fn lag_buckets(metrics: &str) -> Vec<(f64, f64)> {
    let mut b: Vec<(f64, f64)> = metrics
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("hyperwatch_heartbeat_lag_seconds_bucket{le=\"")?;
            let (le, rest) = rest.split_once("\"}")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, rest.trim().parse().ok()?))
        })
        .collect();
    b.sort_by(|x, y| x.0.total_cmp(&y.0));
    b
}

fn value(metrics: &str, sample: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| {
            let (name, v) = l.rsplit_once(' ')?;
            (name == sample).then(|| v.parse().ok())?
        })
        .unwrap_or(0.0)
}

fn scrape(addr: SocketAddr) -> anyhow::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: bench\r\n\r\n")?;
    let mut body = String::new();
    s.read_to_string(&mut body)?;
    Ok(body
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default())
}

fn read_addresses(watchdog: &mut Child) -> anyhow::Result<(SocketAddr, SocketAddr)> {
    let stdout = watchdog.stdout.take().context("watchdog stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let after = |key: &str| -> anyhow::Result<SocketAddr> {
        let word = line
            .split(key)
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .with_context(|| format!("watchdog did not announce {key:?}: {line:?}"))?;
        Ok(word
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()?)
    };
    Ok((after("stream at ")?, after("api at ")?))
}

/// On-CPU nanoseconds of every thread of `pid`.
fn cpu_ns(pid: u32) -> anyhow::Result<u64> {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let stat = std::fs::read_to_string(task?.path().join("schedstat")).unwrap_or_default();
        total += stat
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    }
    Ok(total)
}

fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .context("no VmRSS")
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("hyperwatch-bench-ingest-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn stop(child: &mut Child) {
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let _ = child.wait();
}
