//! The agent's side of delivery: failover to the next endpoint when the
//! first is down, and a full buffer while the watchdog is away: the oldest
//! events fall off, are counted in `hyperwatch_stream_dropped_total` and
//! reported to the watchdog, and the rest arrive in order.

use std::{net::TcpListener, time::Duration};

use hyperwatch_tests::{
    http,
    process::AgentProcess,
    watchdog::{
        ClusterCerts, HEALTHY_WITHIN, WatchdogProcess, agent_config, start_agent, watchdog_config,
    },
};

fn raise(agent: &AgentProcess, n: u32) -> anyhow::Result<()> {
    let r = http::post(
        agent.addr,
        "/api/v1/events",
        &format!(r#"{{"name":"marker","fields":{{"n":"{n}"}}}}"#),
    )?;
    anyhow::ensure!(r.status == 200, "POST event: {} {}", r.status, r.body);
    Ok(())
}

#[test]
fn fails_over_past_a_dead_endpoint_and_counts_what_a_full_buffer_drops() -> anyhow::Result<()> {
    let certs = ClusterCerts::new("e2e")?;
    let mut watchdog = WatchdogProcess::start(certs.dir.path(), &watchdog_config(&certs, 0, ""))?;
    let dead = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    certs.agent("hv-buf")?;
    // The first endpoint refuses connections; the second is the watchdog.
    // A buffer of 3 records; telemetry only once, at start.
    let config = agent_config(&certs, watchdog.stream_addr, "hv-buf", "hv-buf", "")
        .replace(
            &format!("endpoints = [\"https://{}\"]", watchdog.stream_addr),
            &format!(
                "endpoints = [\"https://{dead}\", \"https://{}\"]\nbuffer_records = 3",
                watchdog.stream_addr
            ),
        )
        .replace(
            "telemetry_interval_seconds = 1.0",
            "telemetry_interval_seconds = 3600.0",
        );
    let agent = start_agent(certs.dir.path(), "buf", &config)?;
    watchdog.wait_for(
        "hv-buf connected through the second endpoint",
        HEALTHY_WITHIN,
        |w| {
            Ok(w.host("hv-buf")?
                .filter(|h| h["connected"] == true)
                .map(|_| ()))
        },
    )?;

    raise(&agent, 1)?;
    watchdog.wait_for("event 1", Duration::from_secs(10), |w| {
        Ok((w.host("hv-buf")?.expect("known")["events_through"] == 1).then_some(()))
    })?;
    watchdog.terminate()?;
    for n in 2..=11 {
        raise(&agent, n)?;
    }
    let metrics = http::get(agent.addr, "/metrics", &[])?.body;
    assert!(
        metrics.contains("hyperwatch_stream_dropped_total{kind=\"event\"} 7"),
        "10 events into a buffer of 3: 7 dropped and counted:\n{metrics}"
    );
    watchdog.restart()?;
    let host = watchdog.wait_for("the kept events", Duration::from_secs(15), |w| {
        Ok(w.host("hv-buf")?.filter(|h| h["events_through"] == 11))
    })?;
    let got: Vec<u64> = host["recent_events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["seq"].as_u64())
        .collect();
    assert_eq!(got, vec![9, 10, 11], "the newest three, in order");
    assert_eq!(
        host["agent_dropped_events"], 7,
        "the watchdog is told what was dropped: {host}"
    );
    Ok(())
}
