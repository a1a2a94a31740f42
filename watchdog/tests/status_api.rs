//! `GET /api/v1/status`, the status page and the status families of
//! /metrics, in process: a real watchdog on loopback, a bare protocol
//! client as the agent (insecure listener), and providers registered
//! through `Watchdog::status` the way the policy runtime and the planner
//! will register theirs.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use hyperwatch::{
    config,
    service::Watchdog,
    status::{
        self, IncidentSummary, LunSummary, MigrationSummary, PlanSummary, StatusSources,
        StorageSummary,
    },
};
use hyperwatch_proto::v1::{self, agent_message::Body, stream_client::StreamClient};
use hyperwatch_tests::http;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// Bound on the host and its telemetry showing up.
const SEEN_WITHIN: Duration = Duration::from_secs(10);

/// A running in-process watchdog and its handles.
struct Running {
    http: SocketAddr,
    sources: Arc<StatusSources>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<Result<(), hyperwatch::service::ServiceError>>,
    /// Keeps the fake agent's stream open.
    _agent: mpsc::Sender<v1::AgentMessage>,
}

impl Running {
    async fn stop(mut self) {
        let _ = self.stop.take().expect("running").send(());
        self.server.await.unwrap().unwrap();
    }
}

/// A watchdog with one connected host "hv-1" that reported a storage pool
/// with two LUNs, a VM, and a telemetry summary (CPU 0.42).
async fn start() -> Running {
    let text = "[stream]\nlisten = \"127.0.0.1:0\"\ninsecure = true\ncluster = \"lab\"\n[http]\nlisten = \"127.0.0.1:0\"\n";
    let watchdog = Watchdog::bind(config::parse(text, "test.toml").unwrap())
        .await
        .unwrap();
    let (stream, http, sources) = (
        watchdog.stream_addr,
        watchdog.http_addr,
        watchdog.status.clone(),
    );
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(watchdog.run(async {
        let _ = stop_rx.await;
    }));

    let (tx, rx) = mpsc::channel(16);
    let send = |b| v1::AgentMessage { body: Some(b) };
    tx.send(send(Body::Hello(v1::Hello {
        protocol_version: hyperwatch_proto::PROTOCOL_VERSION,
        host_id: "hv-1".into(),
        boot_id: "b1".into(),
        agent_instance: 1,
        agent_version: "test".into(),
        heartbeat_interval_ms: 200,
        inventory: Some(v1::Inventory {
            cpu_cores: 8,
            memory_bytes: 1 << 34,
            vms: vec![v1::VirtualMachine {
                name: "web-1".into(),
                vcpus: 2,
                state: "running".into(),
                ..Default::default()
            }],
            storage: vec![v1::StorageDevice {
                name: "fast".into(),
                kind: "pool".into(),
                capacity_bytes: 1000,
                used_bytes: 300,
                luns: vec![
                    v1::Lun {
                        id: "fast/a.img".into(),
                        size_bytes: 200,
                        consumer: "web-1".into(),
                        ..Default::default()
                    },
                    v1::Lun {
                        id: "fast/b.img".into(),
                        size_bytes: 100,
                        consumer: String::new(),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }],
            kernel_release: "6.18".into(),
            ..Default::default()
        }),
        ..Default::default()
    })))
    .await
    .unwrap();
    tx.send(send(Body::Telemetry(v1::Telemetry {
        seq: 1,
        cpu_utilisation: Some(0.42),
        memory_used_bytes: Some(1 << 32),
        memory_total_bytes: Some(1 << 34),
        load1: Some(1.5),
        ..Default::default()
    })))
    .await
    .unwrap();
    let mut client = StreamClient::connect(format!("http://{stream}"))
        .await
        .unwrap();
    let mut inbound = client
        .session(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    // Drain the welcome and acks in the background.
    tokio::spawn(async move { while let Ok(Some(_)) = inbound.message().await {} });
    let running = Running {
        http,
        sources,
        stop: Some(stop_tx),
        server,
        _agent: tx,
    };
    let deadline = tokio::time::Instant::now() + SEEN_WITHIN;
    loop {
        let s = get_json(http, "/api/v1/status").await;
        if s["hosts"][0]["cpu_utilisation"].as_f64().is_some() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "hv-1 and its telemetry not in the status within {SEEN_WITHIN:?}: {s}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    running
}

async fn get(addr: SocketAddr, path: &'static str) -> http::Response {
    tokio::task::spawn_blocking(move || http::get(addr, path, &[]))
        .await
        .unwrap()
        .unwrap()
}

async fn get_json(addr: SocketAddr, path: &'static str) -> Value {
    let r = get(addr, path).await;
    assert_eq!(r.status, 200, "GET {path}: {}", r.body);
    serde_json::from_str(&r.body).unwrap()
}

/// The sample lines of /metrics starting with `prefix`, sorted.
async fn samples(addr: SocketAddr, prefix: &str) -> Vec<String> {
    let body = get(addr, "/metrics").await.body;
    let mut lines: Vec<String> = body
        .lines()
        .filter(|l| l.starts_with(prefix))
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_providers_the_status_says_what_is_not_running() {
    let w = start().await;
    let s = get_json(w.http, "/api/v1/status").await;
    assert_eq!(s["cluster"], "lab");
    let host = &s["hosts"][0];
    assert_eq!(host["id"], "hv-1");
    assert_eq!(host["state"], "healthy");
    assert_eq!(host["cpu_utilisation"], 0.42);
    assert_eq!(host["memory_utilisation"], 0.25);
    assert_eq!(host["vms"], 1);
    assert_eq!(s["counts"]["healthy"], 1);
    assert_eq!(s["counts"]["failed"], 0);

    for (section, note) in [
        ("incidents", status::NO_INCIDENTS),
        ("plans", status::NO_PLANS),
    ] {
        assert_eq!(s[section]["available"], false, "{section}");
        assert_eq!(s[section]["note"], note, "{section}");
        assert_eq!(s[section]["items"], serde_json::json!([]), "{section}");
    }
    // Storage falls back to what the agent reported, and says so.
    assert_eq!(s["storage"]["source"], "agent inventory");
    assert_eq!(s["storage"]["note"], status::STORAGE_FROM_INVENTORY);
    let devices: Vec<StorageSummary> =
        serde_json::from_value(s["storage"]["items"].clone()).unwrap();
    assert_eq!(
        devices,
        vec![StorageSummary {
            host: "hv-1".into(),
            device: "fast".into(),
            capacity: 1000,
            used: 300,
            luns: vec![
                LunSummary {
                    id: "fast/a.img".into(),
                    size: 200,
                    consumer: "web-1".into()
                },
                LunSummary {
                    id: "fast/b.img".into(),
                    size: 100,
                    consumer: String::new()
                },
            ],
        }]
    );

    assert_eq!(
        samples(w.http, "hyperwatch_status_source_available").await,
        [
            "hyperwatch_status_source_available{source=\"incidents\"} 0",
            "hyperwatch_status_source_available{source=\"plans\"} 0",
            "hyperwatch_status_source_available{source=\"storage\"} 0",
        ]
    );
    assert!(
        samples(w.http, "hyperwatch_incidents_open{")
            .await
            .is_empty()
    );

    let page = get(w.http, "/").await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(
        page.body.contains("fetch(\"api/v1/status\""),
        "the page reads the status endpoint"
    );
    w.stop().await;
}

fn incident(
    id: &str,
    policy: &str,
    state: &str,
    step: Option<&str>,
    level: u32,
) -> IncidentSummary {
    IncidentSummary {
        id: id.into(),
        policy: policy.into(),
        target: "hv-1".into(),
        state: state.into(),
        step: step.map(str::to_owned),
        level,
        since: 1_700_000_000.0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registered_providers_are_served_live_in_status_and_metrics() {
    let w = start().await;
    // The runtime's state, shared with its provider as a real runtime would.
    let open = Arc::new(Mutex::new(vec![incident(
        "inc-1",
        "host-down",
        "firing",
        Some("1/2 failover"),
        0,
    )]));
    let shared = open.clone();
    w.sources
        .provide_incidents(move || shared.lock().unwrap().clone());
    let plan = PlanSummary {
        id: "plan-7".into(),
        mode: "failover".into(),
        moves: 3,
        done: 1,
        failed: 1,
        started: 1_700_000_100.0,
        reason: "hv-2 failed".into(),
        dry_run: false,
        migrations: vec![MigrationSummary {
            item: "web-1".into(),
            from: "hv-2".into(),
            to: "hv-1".into(),
            state: "done".into(),
        }],
    };
    let plans = vec![plan.clone()];
    w.sources.provide_plans(move || plans.clone());
    let device = StorageSummary {
        host: "st-1".into(),
        device: "array-a".into(),
        capacity: 10,
        used: 9,
        luns: vec![LunSummary {
            id: "lun-1".into(),
            size: 9,
            consumer: "db".into(),
        }],
    };
    let devices = vec![device.clone()];
    w.sources.provide_storage(move || devices.clone());

    let s = get_json(w.http, "/api/v1/status").await;
    assert_eq!(s["incidents"]["available"], true);
    assert_eq!(s["incidents"]["note"], Value::Null);
    let got: Vec<IncidentSummary> =
        serde_json::from_value(s["incidents"]["items"].clone()).unwrap();
    assert_eq!(got, *open.lock().unwrap());
    let got: Vec<PlanSummary> = serde_json::from_value(s["plans"]["items"].clone()).unwrap();
    assert_eq!(got, vec![plan]);
    assert_eq!(s["storage"]["source"], "provider");
    let got: Vec<StorageSummary> = serde_json::from_value(s["storage"]["items"].clone()).unwrap();
    assert_eq!(
        got,
        vec![device],
        "the provider replaces the inventory fallback"
    );

    assert_eq!(
        samples(w.http, "hyperwatch_incidents_open{").await,
        ["hyperwatch_incidents_open{policy=\"host-down\",state=\"firing\",level=\"0\"} 1"]
    );
    assert_eq!(
        samples(w.http, "hyperwatch_plan_moves_recent{").await,
        [
            "hyperwatch_plan_moves_recent{mode=\"failover\",outcome=\"done\"} 1",
            "hyperwatch_plan_moves_recent{mode=\"failover\",outcome=\"failed\"} 1",
            "hyperwatch_plan_moves_recent{mode=\"failover\",outcome=\"pending\"} 1",
        ]
    );
    assert_eq!(
        samples(w.http, "hyperwatch_plans_recent{").await,
        ["hyperwatch_plans_recent{mode=\"failover\"} 1"]
    );
    assert_eq!(
        samples(w.http, "hyperwatch_status_source_available").await,
        [
            "hyperwatch_status_source_available{source=\"incidents\"} 1",
            "hyperwatch_status_source_available{source=\"plans\"} 1",
            "hyperwatch_status_source_available{source=\"storage\"} 1",
        ]
    );

    // The runtime's state moves on: the next request and scrape show it.
    {
        let mut open = open.lock().unwrap();
        open[0] = incident("inc-1", "host-down", "escalated", None, 2);
        open.push(incident(
            "inc-2",
            "host-down",
            "escalated",
            Some("2/2 batch"),
            2,
        ));
    }
    let s = get_json(w.http, "/api/v1/status").await;
    assert_eq!(s["incidents"]["items"][0]["level"], 2);
    assert_eq!(s["incidents"]["items"][0]["step"], Value::Null);
    assert_eq!(s["incidents"]["items"][1]["step"], "2/2 batch");
    assert_eq!(
        samples(w.http, "hyperwatch_incidents_open{").await,
        ["hyperwatch_incidents_open{policy=\"host-down\",state=\"escalated\",level=\"2\"} 2"]
    );

    // A provider that panics costs its section, not the page.
    w.sources.provide_plans(|| panic!("planner state poisoned"));
    let s = get_json(w.http, "/api/v1/status").await;
    assert_eq!(s["plans"]["available"], false);
    assert_eq!(
        s["plans"]["note"],
        "provider failed: planner state poisoned"
    );
    assert_eq!(s["incidents"]["available"], true);
    assert_eq!(
        samples(
            w.http,
            "hyperwatch_status_source_available{source=\"plans\"}"
        )
        .await,
        ["hyperwatch_status_source_available{source=\"plans\"} 0"]
    );
    w.stop().await;
}
