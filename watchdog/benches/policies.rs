//! `cargo xtask bench policies`: the policy engine at a cluster's scale,
//! through a failure storm. The shipped policies watch N hosts (each with a
//! service and a storage device, 40 to a rack); a tenth of them have an
//! open eBPF incident (their programs failed to load); then every host is
//! declared failed within one second. Printed: the time to decide
//! everything (the storm's inputs, then the group wait passing so every
//! ladder level that is due pages), the cost per input, and the snapshot's
//! size and commit time through the watchdog's store (SQLite, WAL,
//! `synchronous = FULL`).
//!
//! It uses only engine and store calls that predate the host index, so
//! `cargo xtask bench policies` also builds it against the baseline commit
//! and prints both. Lines starting with `= ` are figures for that
//! comparison: `= NAME VALUE`.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use clap::Parser;
use hyperwatch::{
    outbox::{Durability, Outbox},
    runtime::record,
    store::{Commit, Store},
};
use hyperwatch_policies::{
    CheckOptions, Decision, Engine, Input, InputKind,
    input::Sample,
    load_dir,
    target::{HostState, TargetInfo, TargetRef},
    time::Timestamp,
};

/// Hosts per rack, as in the shipped example cluster (`rack = r{h/40}`).
const RACK_SIZE: usize = 40;
/// One host in this many has eBPF wanted but failed: an open incident each
/// before the storm (the situation the runtime met with ~2,000 incidents).
const EBPF_FAILED_EVERY: usize = 10;
/// The storm: every host declared failed within this span.
const STORM: Duration = Duration::from_secs(1);
/// Past the heartbeat policy's group wait (30 s), so its first level pages.
const AFTER_GROUP_WAIT: Duration = Duration::from_secs(31);
/// Commits of the snapshot timed for the median.
const COMMITS: usize = 5;

#[derive(Parser)]
struct Args {
    /// Hosts in the cluster.
    #[arg(long, default_value_t = 10_000)]
    hosts: usize,
    /// The policy directory (default: the shipped policies).
    #[arg(long)]
    policies: Option<PathBuf>,
    /// A name for this build in the output ("after", "baseline").
    #[arg(long, default_value = "this build")]
    label: String,
    /// Accepted for `cargo bench`'s sake.
    #[arg(long, hide = true)]
    bench: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = args
        .policies
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../policies/default"));
    let set = load_dir(&dir, &CheckOptions::default()).map_err(|r| anyhow::anyhow!("{r}"))?;
    let n = args.hosts;
    println!(
        "policy engine ({}): {n} hosts, each with a service and a storage device, {} policies from {}",
        args.label,
        set.len(),
        dir.display()
    );
    let mut engine = Engine::new(set);
    let mut decisions: Vec<Decision> = Vec::new();
    // The decisions are kept (and counted) between feeds; a closure
    // holding them borrowed would keep them from being read in between.
    let feed = |engine: &mut Engine, decisions: &mut Vec<Decision>, at: u64, kind: InputKind| {
        let d = engine
            .handle(Input {
                at: Timestamp(at),
                kind,
            })
            .expect("the bench's inputs are valid");
        decisions.extend(d);
    };

    let started = Instant::now();
    for h in 0..n {
        let host = TargetInfo {
            labels: [
                ("cluster".to_owned(), "prod".to_owned()),
                ("rack".to_owned(), format!("r{}", h / RACK_SIZE)),
            ]
            .into(),
            ..TargetInfo::bare(TargetRef::host(&format!("hv{h}")))
        };
        feed(&mut engine, &mut decisions, 0, InputKind::Target(host));
        for t in [
            format!("service:hv{h}/nginx"),
            format!("storage-device:hv{h}/nvme0"),
        ] {
            let info = TargetInfo::bare(t.parse()?);
            feed(&mut engine, &mut decisions, 0, InputKind::Target(info));
        }
    }
    println!(
        "inventory: {} targets in {:.0} ms",
        n * 3,
        ms(started.elapsed())
    );

    // Steady state: one telemetry summary per host.
    let mut costs = Vec::with_capacity(n);
    for h in 0..n {
        let host = TargetRef::host(&format!("hv{h}"));
        let dev: TargetRef = format!("storage-device:hv{h}/nvme0").parse()?;
        let sample = |target: &TargetRef, metric: &str, value| Sample {
            target: target.clone(),
            metric: metric.into(),
            value,
        };
        let samples = vec![
            sample(&host, "cpu_busy_ratio", 0.4),
            sample(&host, "memory_used_ratio", 0.5),
            sample(&dev, "storage_used_ratio", 0.6),
            sample(&dev, "io_latency_mean_seconds", 0.004),
        ];
        let t = Instant::now();
        feed(
            &mut engine,
            &mut decisions,
            10_000,
            InputKind::Samples(samples),
        );
        costs.push(t.elapsed());
    }
    report(
        "telemetry",
        "telemetry summaries (4 samples each)",
        &mut costs,
    );

    // eBPF: available everywhere but on one host in ten, which fire after
    // the policy's minute.
    for h in 0..n {
        let value = if h % EBPF_FAILED_EVERY == 0 {
            "unavailable"
        } else {
            "available"
        };
        feed(
            &mut engine,
            &mut decisions,
            20_000,
            InputKind::State {
                target: TargetRef::host(&format!("hv{h}")),
                name: "ebpf".into(),
                value: value.into(),
            },
        );
    }
    decisions.extend(engine.advance(Timestamp(90_000)));
    let open_before = engine.incidents().count();
    println!("before the storm: {open_before} open incidents");
    decisions.clear();

    // The storm.
    let storm_start = 100_000u64;
    let mut costs = Vec::with_capacity(n);
    let started = Instant::now();
    for h in 0..n {
        let at = storm_start + (h as u128 * STORM.as_millis() / n as u128) as u64;
        let t = Instant::now();
        feed(
            &mut engine,
            &mut decisions,
            at,
            InputKind::HostState {
                host: format!("hv{h}"),
                state: HostState::Failed,
            },
        );
        costs.push(t.elapsed());
    }
    let storm = started.elapsed();
    report("storm", "host-failed inputs", &mut costs);
    let started = Instant::now();
    let later = storm_start + STORM.as_millis() as u64 + AFTER_GROUP_WAIT.as_millis() as u64;
    decisions.extend(engine.advance(Timestamp(later)));
    let ladder = started.elapsed();
    let notifications = decisions
        .iter()
        .filter(|d| matches!(d.kind, hyperwatch_policies::DecisionKind::Notify(_)))
        .count();
    println!(
        "the group wait passing: {:.1} ms; {} decisions in all, {notifications} notifications, {} open incidents",
        ms(ladder),
        decisions.len(),
        engine.incidents().count()
    );
    println!(
        "time to decide everything: {:.1} ms for {n} hosts failed within {STORM:?}",
        ms(storm + ladder)
    );
    println!("= decide_ms {:.1}", ms(storm + ladder));

    // The snapshot, and committing it with the storm's audit lines.
    let started = Instant::now();
    let json = serde_json::to_string(&engine.snapshot())?;
    let serialize = started.elapsed();
    println!(
        "snapshot: {:.2} MiB of JSON, serialized in {:.1} ms",
        json.len() as f64 / 1_048_576.0,
        ms(serialize)
    );
    println!("= snapshot_mib {:.2}", json.len() as f64 / 1_048_576.0);
    println!("= serialize_ms {:.1}", ms(serialize));
    let dir = tempfile::tempdir()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let outbox = Outbox::open(&dir.path().join("store.db"), Durability::Full)?;
        let store = Store::open(outbox).await?;
        let started = Instant::now();
        store
            .commit(
                Commit {
                    state: Some(json.clone()),
                    audit: decisions.iter().map(record::audit).collect(),
                    ..Commit::default()
                },
                0,
            )
            .await?;
        let first = started.elapsed();
        let mut times = Vec::new();
        for i in 0..COMMITS {
            let started = Instant::now();
            let commit = Commit {
                state: Some(json.clone()),
                ..Commit::default()
            };
            store.commit(commit, i as i64 + 1).await?;
            times.push(started.elapsed());
        }
        times.sort();
        let median = times[times.len() / 2];
        println!(
            "commit (SQLite WAL, synchronous = FULL): the storm's {} audit lines with the snapshot {:.1} ms; the snapshot alone {:.1} ms (median of {COMMITS})",
            decisions.len(),
            ms(first),
            ms(median)
        );
        println!("= commit_ms {:.1}", ms(median));
        anyhow::Ok(())
    })
}

/// Prints the total, mean, p50, p99 and worst of per-input costs.
fn report(key: &str, what: &str, costs: &mut [Duration]) {
    let total: Duration = costs.iter().sum();
    costs.sort();
    let pct = |p: f64| costs[((costs.len() as f64 * p) as usize).min(costs.len() - 1)];
    let mean = total / costs.len().max(1) as u32;
    println!(
        "{what}: {} in {:.1} ms: mean {:.1} us, p50 {:.1} us, p99 {:.1} us, worst {:.1} ms",
        costs.len(),
        ms(total),
        us(mean),
        us(pct(0.5)),
        us(pct(0.99)),
        ms(costs[costs.len() - 1])
    );
    println!("= {key}_mean_us {:.1}", us(mean));
    println!("= {key}_p99_us {:.1}", us(pct(0.99)));
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
