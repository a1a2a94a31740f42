//! The policy runtime falling behind the cluster's events, in process: a
//! flood larger than the broadcast's capacity makes it lose the oldest; it
//! says so (metric, audit line), re-reads the registry, and keeps serving.

use std::{sync::Arc, time::Duration};

use hyperwatch::{
    config,
    events::{CLUSTER_EVENTS_CAPACITY, ClusterEvent},
    runtime::PolicyRuntime,
    service::Watchdog,
};
use hyperwatch_policies::planner::NoPlanner;
use hyperwatch_proto::v1;

/// Bound on the runtime noticing it fell behind.
const WITHIN: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runtime_that_falls_behind_resyncs_and_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    std::fs::write(
        policies.join("hot.toml"),
        "version = 1\n[target]\nkind = \"host\"\n[when]\nmetric = \"cpu_busy_ratio\"\nabove = 0.9\n[[escalate]]\nnotify = [\"console\"]\n",
    )
    .unwrap();
    let text = format!(
        "[stream]\nlisten = \"127.0.0.1:0\"\ninsecure = true\ncluster = \"lab\"\n[http]\nlisten = \"127.0.0.1:0\"\n[store]\npath = \"{}\"\n[policies]\ndir = \"{}\"\n[channels.console]\ntype = \"console\"\ntty = \"{}\"\nsyslog = false\n",
        dir.path().join("store.db").display(),
        policies.display(),
        dir.path().join("console").display(),
    );
    std::fs::write(dir.path().join("console"), "").unwrap();
    let config = config::parse(&text, "test.toml").unwrap();
    let mut watchdog = Watchdog::bind(config.clone()).await.unwrap();
    let mut runtime = PolicyRuntime::start(&config, &watchdog, Arc::new(NoPlanner))
        .await
        .unwrap();
    watchdog.add_routes(runtime.routes());
    let (events, registry, store) = (
        watchdog.events.clone(),
        watchdog.registry.clone(),
        runtime.store.clone(),
    );
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(watchdog.run(async {
        let _ = stop_rx.await;
    }));

    // Far more than the channel holds, faster than the engine digests them.
    let flood = 4 * CLUSTER_EVENTS_CAPACITY;
    tokio::task::spawn_blocking(move || {
        let t = Arc::new(v1::Telemetry {
            cpu_utilisation: Some(0.1),
            ..Default::default()
        });
        for _ in 0..flood {
            events.publish(ClusterEvent::Telemetry {
                host: "hv-flood".into(),
                telemetry: t.clone(),
            });
        }
    })
    .await
    .unwrap();

    let deadline = tokio::time::Instant::now() + WITHIN;
    loop {
        let metrics = registry.metrics.encode(&registry.count_by_state());
        let resyncs = metrics
            .lines()
            .find_map(|l| l.strip_prefix("hyperwatch_engine_resyncs_total "))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0);
        if resyncs >= 1.0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no resync counted after a flood of {flood} events"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let lines: Vec<String> = store
        .audit(None, 50)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.line)
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("fell behind the cluster events by ")),
        "{lines:?}"
    );

    // Still deciding: a hot host opens an incident (committed to the store).
    registry.events.publish(ClusterEvent::Telemetry {
        host: "hv-hot".into(),
        telemetry: Arc::new(v1::Telemetry {
            cpu_utilisation: Some(0.99),
            ..Default::default()
        }),
    });
    let deadline = tokio::time::Instant::now() + WITHIN;
    loop {
        let open = store.incidents(false, 10).await.unwrap();
        if open.iter().any(|i| i.targets == ["host:hv-hot"]) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no incident for the hot host after the resync: {open:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop_tx.send(());
    server.await.unwrap().unwrap();
    runtime.stop().await;
}
