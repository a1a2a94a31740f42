//! How fast the engine takes telemetry, and how big its snapshot is, at a
//! cluster's scale: the shipped policies, N hosts each with a service and a
//! storage device, one sample batch per host per 10 s (the stream issue's
//! telemetry interval), a few failures along the way.
//!
//!     cargo run --release -p hyperwatch-policies --example engine_throughput [HOSTS]

use std::path::Path;
use std::time::Instant;

use hyperwatch_policies::input::Sample;
use hyperwatch_policies::target::{HostState, TargetInfo, TargetRef};
use hyperwatch_policies::time::Timestamp;
use hyperwatch_policies::{CheckOptions, Engine, Input, InputKind, load_dir};

/// Telemetry interval of the agent stream (issue 3: "every N seconds").
const TELEMETRY_EVERY_MS: u64 = 10_000;
/// Simulated rounds of telemetry.
const ROUNDS: u64 = 30;

fn main() {
    let hosts: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("default");
    let set = load_dir(&dir, &CheckOptions::default()).unwrap_or_else(|r| panic!("{r}"));
    let mut engine = Engine::new(set);
    let started = Instant::now();
    for h in 0..hosts {
        let labels = [
            ("cluster".to_owned(), "prod".to_owned()),
            ("rack".to_owned(), format!("r{}", h / 40)),
        ]
        .into();
        let host = TargetInfo {
            labels,
            ..TargetInfo::bare(TargetRef::host(&format!("hv{h}")))
        };
        engine
            .handle(Input {
                at: Timestamp(0),
                kind: InputKind::Target(host),
            })
            .unwrap();
        for t in [
            format!("service:hv{h}/nginx"),
            format!("storage-device:hv{h}/nvme0"),
        ] {
            let info = TargetInfo::bare(t.parse().unwrap());
            engine
                .handle(Input {
                    at: Timestamp(0),
                    kind: InputKind::Target(info),
                })
                .unwrap();
        }
    }
    let inventory = started.elapsed();
    let (mut inputs, mut decisions) = (0u64, 0usize);
    let started = Instant::now();
    for round in 1..=ROUNDS {
        let at = Timestamp(round * TELEMETRY_EVERY_MS);
        for h in 0..hosts {
            // Every 97th host runs hot; one in 500 fails in round 10.
            let cpu = if h % 97 == 0 { 0.97 } else { 0.4 };
            let host = TargetRef::host(&format!("hv{h}"));
            let dev: TargetRef = format!("storage-device:hv{h}/nvme0").parse().unwrap();
            let samples = vec![
                Sample {
                    target: host.clone(),
                    metric: "cpu_busy_ratio".into(),
                    value: cpu,
                },
                Sample {
                    target: host,
                    metric: "memory_used_ratio".into(),
                    value: 0.5,
                },
                Sample {
                    target: dev.clone(),
                    metric: "storage_used_ratio".into(),
                    value: 0.6,
                },
                Sample {
                    target: dev,
                    metric: "io_latency_mean_seconds".into(),
                    value: 0.004,
                },
            ];
            decisions += engine
                .handle(Input {
                    at,
                    kind: InputKind::Samples(samples),
                })
                .unwrap()
                .len();
            inputs += 1;
            if round == 10 && h % 500 == 0 {
                let kind = InputKind::HostState {
                    host: format!("hv{h}"),
                    state: HostState::Failed,
                };
                decisions += engine.handle(Input { at, kind }).unwrap().len();
                inputs += 1;
            }
        }
    }
    let feeding = started.elapsed();
    let started = Instant::now();
    let json = serde_json::to_vec(&engine.snapshot()).unwrap();
    let snapshot = started.elapsed();
    if let Ok(path) = std::env::var("SNAPSHOT_OUT") {
        std::fs::write(path, &json).unwrap();
    }
    println!(
        "hosts: {hosts} (each with a service and a storage device), policies: {}",
        engine.policies().len()
    );
    println!(
        "inventory: {:.0} ms for {} targets",
        inventory.as_secs_f64() * 1e3,
        hosts * 3
    );
    println!(
        "telemetry: {inputs} inputs (4 samples each) in {:.0} ms: {:.0} inputs/s, {:.1} us each; {decisions} decisions, {} open incidents",
        feeding.as_secs_f64() * 1e3,
        inputs as f64 / feeding.as_secs_f64(),
        feeding.as_secs_f64() * 1e6 / inputs as f64,
        engine.incidents().count()
    );
    println!(
        "snapshot: {:.1} MiB of JSON in {:.0} ms",
        json.len() as f64 / 1_048_576.0,
        snapshot.as_secs_f64() * 1e3
    );
}
