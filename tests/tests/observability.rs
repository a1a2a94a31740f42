//! Prometheus and Grafana against the real thing.
//!
//! Without a server: `promtool check config` on deploy/prometheus, and
//! `promtool test rules` (each recording rule's arithmetic on hand-worked
//! series).
//!
//! End to end (root: eBPF): a watchdog (the library's server, in process,
//! with an incident and a plan provider standing in for the policy runtime
//! and the placement service, so the panels have data without staging a
//! failure; status_page.rs and failover_policy.rs run the real ones) and a
//! real agent with eBPF, a qemu VM,
//! a watched service and a storage pool, streaming to it over mutual TLS;
//! Debian's Prometheus scrapes both every second with the shipped rules.
//! Then: the series arrive, every recording rule has a value, every query of
//! the Grafana dashboard evaluates to data, and every metric name a query
//! or rule reads is one the agent or the watchdog exports.

use std::{
    collections::BTreeSet,
    io::Write,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail, ensure};
use hyperwatch::{
    config,
    service::Watchdog,
    status::{IncidentSummary, PlanSummary},
};
use hyperwatch_tests::{
    ebpf, http, metrics,
    prometheus::{PrometheusServer, promtool},
    promql,
    watchdog::{ClusterCerts, start_agent, watchdog_config},
};

/// Bound on every rule and dashboard query having data: a few scrapes and
/// evaluations at 1 s, the VM's first refresh, rates needing two samples.
const DATA_WITHIN: Duration = Duration::from_secs(60);
/// The watched service's command line, unique to this test.
const SERVICE_ARG: &str = "271.828";

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(path)
}

#[test]
fn promtool_checks_the_config_and_the_rules_pass_their_tests() -> anyhow::Result<()> {
    let dir = deploy("prometheus");
    let out = promtool(&dir, &["check", "config", "prometheus.yml"])?;
    assert!(out.contains("SUCCESS: 1 rule files found"), "{out}");
    promtool(&dir, &["check", "rules", "hyperwatch.rules.yml"])?;
    let out = promtool(&dir, &["test", "rules", "hyperwatch.rules.test.yml"])?;
    assert!(out.contains("SUCCESS"), "{out}");
    // The rule tests can fail: a wrong expectation is caught.
    let scratch = tempfile::tempdir()?;
    std::fs::copy(
        dir.join("hyperwatch.rules.yml"),
        scratch.path().join("hyperwatch.rules.yml"),
    )?;
    let tests = std::fs::read_to_string(dir.join("hyperwatch.rules.test.yml"))?;
    std::fs::write(
        scratch.path().join("t.yml"),
        tests.replacen("value: 0.375", "value: 0.5", 1),
    )?;
    assert!(promtool(scratch.path(), &["test", "rules", "t.yml"]).is_err());
    Ok(())
}

/// A qemu VM on TCG with a tap (the agent inventories it from /proc),
/// killed when dropped.
struct Vm(Child);

impl Vm {
    fn start(name: &str, tap: &str) -> anyhow::Result<Self> {
        let child = Command::new("qemu-system-x86_64")
            .args(["-name", &format!("guest={name},debug-threads=on")])
            .args(["-accel", "tcg", "-smp", "1", "-m", "32"])
            .args([
                "-nodefaults",
                "-display",
                "none",
                "-monitor",
                "none",
                "-serial",
                "none",
            ])
            .args([
                "-netdev",
                &format!("tap,id=n0,ifname={tap},script=no,downscript=no"),
            ])
            .args(["-device", "virtio-net-pci,netdev=n0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("spawning qemu-system-x86_64 (Debian package qemu-system-x86)")?;
        Ok(Self(child))
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Sample names of a text exposition.
fn sample_names(text: &str) -> anyhow::Result<BTreeSet<String>> {
    Ok(metrics::parse(text)?
        .0
        .into_iter()
        .map(|s| s.name)
        .collect())
}

/// Writes and syncs a little, so the disk latency histogram of the device
/// under `dir` has new IOs.
fn disk_io(dir: &Path) -> anyhow::Result<()> {
    let mut f = std::fs::File::create(dir.join("io.bin"))?;
    f.write_all(&[7u8; 256 << 10])?;
    f.sync_all()?;
    Ok(())
}

#[test]
fn prometheus_scrapes_the_stack_and_every_rule_and_dashboard_query_has_data() -> anyhow::Result<()>
{
    if !ebpf::available("prometheus_scrapes_the_stack_and_every_rule_and_dashboard_query_has_data")
    {
        return Ok(());
    }
    let runtime = tokio::runtime::Runtime::new()?;
    let certs = ClusterCerts::new("obs")?;
    let config = config::parse(&watchdog_config(&certs, 0, ""), "observability.toml")?;
    let watchdog = runtime.block_on(Watchdog::bind(config))?;
    let (stream, http_addr) = (watchdog.stream_addr, watchdog.http_addr);
    // Stand-ins for the policy runtime and the placement service: their
    // figures on /metrics are what the dashboard's incident and plan panels
    // read.
    watchdog.status.provide_incidents(|| {
        vec![IncidentSummary {
            id: "inc-1".into(),
            policy: "host-down".into(),
            target: "hv-obs".into(),
            state: "firing".into(),
            step: Some("1/2 failover".into()),
            level: 1,
            since: 0.0,
        }]
    });
    watchdog.status.provide_plans(|| {
        vec![PlanSummary {
            id: "plan-1".into(),
            mode: "failover".into(),
            moves: 2,
            done: 1,
            failed: 0,
            started: 0.0,
            reason: "hv-gone failed".into(),
            dry_run: false,
            migrations: Vec::new(),
        }]
    });
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = runtime.spawn(watchdog.run(async {
        let _ = stop_rx.await;
    }));

    // What makes the agent's conditional families exist: a VM, a watched
    // service, a storage pool (its LUNs), disk IO, and eBPF.
    let tap = format!("hwo{}", std::process::id() % 100_000);
    let _vm = Vm::start("hwobs-vm", &tap)?;
    let _service = Killed(Command::new("sleep").arg(SERVICE_ARG).spawn()?);
    let pool = tempfile::tempdir()?;
    std::fs::File::create(pool.path().join("vol-a.img"))?.set_len(8 << 20)?;
    std::fs::File::create(pool.path().join("vol-b.img"))?.set_len(4 << 20)?;
    certs.agent("hv-obs")?;
    let p = |n: &str| certs.path(n).display().to_string();
    let agent_config = format!(
        "[stream]\nendpoints = [\"https://{stream}\"]\nhost_id = \"hv-obs\"\nca = {:?}\ncert = {:?}\nkey = {:?}\n\
         telemetry_interval_seconds = 1.0\n\
         [collectors.vm]\nsource = \"proc\"\nrefresh_seconds = 0.5\n\
         [storage.directory_pools]\nobs = {:?}\n\
         [[services]]\nname = \"obs-sleep\"\nprocess = {{ cmdline = '^sleep {}$' }}\ninterval_seconds = 0.5\n",
        p("ca.pem"),
        p("hv-obs.pem"),
        p("hv-obs.key"),
        pool.path().display().to_string(),
        SERVICE_ARG.replace('.', "\\."),
    );
    let agent = start_agent(certs.dir.path(), "hv-obs", &agent_config)?;

    let prometheus = PrometheusServer::start(
        &[
            ("hyperwatch-agent", agent.addr),
            ("hyperwatch-watchdog", http_addr),
        ],
        &[&deploy("prometheus/hyperwatch.rules.yml")],
    )?;
    let dashboard: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(deploy(
        "grafana/hyperwatch-dashboard.json",
    ))?)?;
    let queries = promql::dashboard_queries(&dashboard);
    ensure!(
        queries.len() > 20,
        "the dashboard has {} queries",
        queries.len()
    );
    let rules = prometheus.recording_rules()?;
    ensure!(
        rules.len() >= 10,
        "Prometheus loaded {} recording rules",
        rules.len()
    );

    // Everything must have data within the bound.
    let io_dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))?;
    let deadline = Instant::now() + DATA_WITHIN;
    let mut waiting: Vec<(String, String)> = Vec::new();
    loop {
        disk_io(io_dir.path())?;
        waiting.clear();
        for (job, health, error) in prometheus.target_health()? {
            if health != "up" {
                waiting.push((format!("target {job}"), format!("{health} {error}")));
            }
        }
        for r in &rules {
            if prometheus.query(&r.name)?.is_empty() {
                waiting.push((format!("rule {}", r.name), r.query.clone()));
            }
        }
        for q in &queries {
            let expr = promql::substitute_variables(&q.expr);
            if prometheus.query(&expr)?.is_empty() {
                waiting.push((q.place.clone(), expr));
            }
        }
        if waiting.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "after {DATA_WITHIN:?} still without data:\n{}",
                waiting
                    .iter()
                    .map(|(w, e)| format!("  {w}: {e}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    eprintln!(
        "{} targets up; {} recording rules and {} dashboard queries have data",
        prometheus.target_health()?.len(),
        rules.len(),
        queries.len()
    );
    // The series are the agent's and the watchdog's own.
    let hosts = prometheus.query("cluster:hyperwatch_hosts:sum_by_state{state=\"healthy\"}")?;
    assert_eq!(hosts[0]["value"][1], "1", "{hosts:?}");
    let open = prometheus.query("cluster:hyperwatch_incidents_open:sum")?;
    assert_eq!(open[0]["value"][1], "1", "{open:?}");
    let vm = prometheus.query("vm:hyperwatch_vm_cpu_seconds:rate1m{vm=\"hwobs-vm\"}")?;
    assert_eq!(vm.len(), 1, "{vm:?}");

    // Every name a query or rule reads is exported by someone.
    let agent_names = sample_names(&http::get(agent.addr, "/metrics", &[])?.body)?;
    let watchdog_names = sample_names(&http::get(http_addr, "/metrics", &[])?.body)?;
    let recorded: BTreeSet<&str> = rules.iter().map(|r| r.name.as_str()).collect();
    let mut unknown = Vec::new();
    let reads = queries
        .iter()
        .map(|q| (q.place.clone(), promql::substitute_variables(&q.expr)))
        .chain(
            rules
                .iter()
                .map(|r| (format!("rule {}", r.name), r.query.clone())),
        );
    let mut checked = BTreeSet::new();
    for (place, expr) in reads {
        for name in promql::metric_names(&expr).map_err(anyhow::Error::msg)? {
            let known = if name.contains(':') {
                recorded.contains(name.as_str())
            } else {
                agent_names.contains(&name) || watchdog_names.contains(&name)
            };
            if !known {
                unknown.push(format!("{place}: {name}"));
            }
            checked.insert(name);
        }
    }
    assert!(
        unknown.is_empty(),
        "metric names no one exports (agent: {} names, watchdog: {} names):\n{}",
        agent_names.len(),
        watchdog_names.len(),
        unknown.join("\n")
    );
    eprintln!(
        "{} distinct metric names read, all exported: {checked:?}",
        checked.len()
    );

    drop(prometheus);
    let _ = stop_tx.send(());
    runtime.block_on(server)??;
    Ok(())
}
