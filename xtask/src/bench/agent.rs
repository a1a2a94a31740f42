//! `cargo xtask bench agent`: the agent's steady-state RSS and CPU time per
//! scrape (median over many scrapes), with eBPF loaded when root, and the
//! same figures for Debian's node_exporter measured in the same run.
//!
//! The agent is built with the `agent-release` profile, as shipped.
//! CPU per scrape is the growth of the process's on-CPU time
//! (/proc/PID/task/*/schedstat, nanoseconds) across one scrape.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};

use crate::sh;

/// Scrapes before measuring, so caches and allocations settle.
const WARMUP_SCRAPES: usize = 20;
/// Bound on waiting for a process to start serving.
const START_TIMEOUT: Duration = Duration::from_secs(20);

pub fn run(scrapes: usize) -> anyhow::Result<()> {
    let root = sh::root();
    sh::run(Command::new("cargo").current_dir(&root).args([
        "build",
        "--release",
        "--package",
        "hyperwatch-agent",
    ]))?;

    let mut agent = Command::new(root.join("target/agent-release/hyperwatch-agent"))
        .args(["--listen", "127.0.0.1:0", "--log-level", "warn"])
        .stdout(Stdio::piped())
        .spawn()
        .context("starting hyperwatch-agent")?;
    let agent_addr = read_agent_addr(&mut agent)?;
    let agent_figures = measure("hyperwatch-agent", agent.id(), agent_addr, scrapes);
    let ebpf = scrape(agent_addr)
        .map(|body| body.contains("hyperwatch_ebpf_enabled 1"))
        .unwrap_or(false);
    stop(&mut agent);
    let agent_figures = agent_figures?;

    let node_exporter = "/usr/bin/prometheus-node-exporter";
    let port = free_port()?;
    let mut node = Command::new(node_exporter)
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {node_exporter} (cargo xtask setup installs it)"))?;
    let node_addr: SocketAddr = ([127, 0, 0, 1], port).into();
    wait_serving(node_addr)?;
    let node_figures = measure("node_exporter", node.id(), node_addr, scrapes);
    stop(&mut node);
    let node_figures = node_figures?;

    println!();
    println!("agent benchmark: {scrapes} scrapes each, after {WARMUP_SCRAPES} warm-up scrapes");
    println!(
        "  hyperwatch-agent (eBPF {}):",
        if ebpf { "loaded" } else { "NOT loaded" }
    );
    agent_figures.print();
    println!("  node_exporter (Debian, default collectors):");
    node_figures.print();
    println!(
        "  ratio agent/node_exporter: RSS {:.2}, CPU per scrape (median) {:.2}",
        agent_figures.rss_kib as f64 / node_figures.rss_kib as f64,
        agent_figures.cpu_median_ms / node_figures.cpu_median_ms
    );
    Ok(())
}

struct Figures {
    rss_kib: u64,
    cpu_median_ms: f64,
    cpu_p90_ms: f64,
    bytes: usize,
    series: usize,
}

impl Figures {
    fn print(&self) {
        println!(
            "    RSS {:.1} MB | CPU per scrape median {:.3} ms, p90 {:.3} ms | {} series, {} bytes",
            self.rss_kib as f64 / 1024.0,
            self.cpu_median_ms,
            self.cpu_p90_ms,
            self.series,
            self.bytes
        );
    }
}

fn measure(name: &str, pid: u32, addr: SocketAddr, scrapes: usize) -> anyhow::Result<Figures> {
    eprintln!("bench: {name} (pid {pid}) at {addr}: {scrapes} scrapes");
    let mut body = String::new();
    for _ in 0..WARMUP_SCRAPES {
        body = scrape(addr)?;
    }
    let mut cpu = Vec::with_capacity(scrapes);
    let progress_every = (scrapes / 5).max(1);
    for i in 0..scrapes {
        let before = cpu_ns(pid)?;
        scrape(addr)?;
        cpu.push((cpu_ns(pid)? - before) as f64 / 1e6);
        if (i + 1) % progress_every == 0 {
            eprintln!("bench: {name}: {}/{scrapes} scrapes", i + 1);
        }
    }
    cpu.sort_by(f64::total_cmp);
    Ok(Figures {
        rss_kib: rss_kib(pid)?,
        cpu_median_ms: cpu[cpu.len() / 2],
        cpu_p90_ms: cpu[cpu.len() * 9 / 10],
        series: body
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .count(),
        bytes: body.len(),
    })
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
        .context("no VmRSS in /proc/PID/status")
}

/// One GET /metrics over HTTP/1.0; returns the body.
fn scrape(addr: SocketAddr) -> anyhow::Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: bench\r\nAccept: text/plain\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .context("HTTP response without a header end")?;
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        bail!(
            "scrape of {addr} answered: {}",
            head.lines().next().unwrap_or("")
        );
    }
    Ok(body.to_owned())
}

fn read_agent_addr(agent: &mut Child) -> anyhow::Result<SocketAddr> {
    let stdout = agent.stdout.take().context("agent stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .with_context(|| format!("agent did not announce its address: {line:?}"))?;
    Ok(addr.parse()?)
}

fn wait_serving(addr: SocketAddr) -> anyhow::Result<()> {
    let deadline = Instant::now() + START_TIMEOUT;
    while Instant::now() < deadline {
        if scrape(addr).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("{addr} did not serve /metrics within {START_TIMEOUT:?}")
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn stop(child: &mut Child) {
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let _ = child.wait();
}
