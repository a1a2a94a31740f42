//! Host failure detection with real processes on loopback: a watchdog and
//! three agents with 1 s heartbeats over mutual TLS. `kill -9` of one agent
//! is declared failed within 3 s; a SIGSTOPped agent (a hung host) is
//! failed, and recovered after SIGCONT; the untouched agent stays healthy
//! throughout. Then the watchdog restarts: the agents reconnect by
//! themselves and the events raised while it was down arrive, none lost,
//! none repeated.

use std::time::{Duration, Instant};

use hyperwatch_tests::{
    http,
    process::AgentProcess,
    watchdog::{ClusterCerts, WatchdogProcess, start_cluster},
};
use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};

/// The issue's bound on declaring a killed host failed.
const FAILED_WITHIN: Duration = Duration::from_secs(3);
fn cluster(hosts: &[&str]) -> anyhow::Result<(ClusterCerts, WatchdogProcess, Vec<AgentProcess>)> {
    start_cluster(hosts, "")
}

fn signal(agent: &AgentProcess, s: Signal) {
    kill(Pid::from_raw(agent.pid() as i32), s).expect("signalling the agent");
}

#[test]
fn killed_and_hung_hosts_are_failed_and_a_hung_one_recovers() -> anyhow::Result<()> {
    let (_certs, watchdog, agents) = cluster(&["hv-kill", "hv-stop", "hv-calm"])?;

    signal(&agents[0], Signal::SIGKILL);
    let killed = Instant::now();
    watchdog.wait_for("hv-kill failed", Duration::from_secs(10), |w| {
        Ok((w.state("hv-kill")?.as_deref() == Some("failed")).then_some(()))
    })?;
    let took = killed.elapsed();
    eprintln!("kill -9 declared failed after {took:?}");
    assert!(
        took <= FAILED_WITHIN,
        "kill -9 declared failed after {took:?}, bound {FAILED_WITHIN:?}"
    );

    signal(&agents[1], Signal::SIGSTOP);
    let stopped = Instant::now();
    watchdog.wait_for("hv-stop failed", Duration::from_secs(10), |w| {
        Ok((w.state("hv-stop")?.as_deref() == Some("failed")).then_some(()))
    })?;
    eprintln!("SIGSTOP declared failed after {:?}", stopped.elapsed());
    assert!(
        stopped.elapsed() <= FAILED_WITHIN,
        "hung host failed after {:?}",
        stopped.elapsed()
    );
    signal(&agents[1], Signal::SIGCONT);
    watchdog.wait_for("hv-stop recovered", Duration::from_secs(5), |w| {
        Ok((w.state("hv-stop")?.as_deref() == Some("recovered")).then_some(()))
    })?;

    let calm = watchdog.host("hv-calm")?.expect("known host");
    assert_eq!(
        calm["state"], "healthy",
        "an untouched host stays healthy: {calm}"
    );
    assert_eq!(
        watchdog.metric("hyperwatch_host_state_changes_total{state=\"failed\"}")?,
        Some(2.0),
        "exactly the killed and the hung host failed"
    );
    assert_eq!(
        watchdog.metric("hyperwatch_hosts{state=\"failed\"}")?,
        Some(1.0)
    );
    Ok(())
}

/// Posts a generic event to an agent; returns its sequence number.
fn raise(agent: &AgentProcess, n: u32) -> anyhow::Result<u64> {
    let r = http::post(
        agent.addr,
        "/api/v1/events",
        &format!(r#"{{"name":"marker","fields":{{"n":"{n}"}}}}"#),
    )?;
    anyhow::ensure!(r.status == 200, "POST event: {} {}", r.status, r.body);
    let v: serde_json::Value = serde_json::from_str(&r.body)?;
    Ok(v["seq"].as_u64().unwrap_or(0))
}

/// The (seq, n) of the events the watchdog holds for `host`.
fn events(watchdog: &WatchdogProcess, host: &str) -> anyhow::Result<Vec<(u64, String)>> {
    let h = watchdog.host(host)?.expect("known host");
    Ok(h["recent_events"]
        .as_array()
        .expect("recent_events")
        .iter()
        .map(|e| {
            (
                e["seq"].as_u64().unwrap_or(0),
                e["fields"]["n"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect())
}

#[test]
fn after_a_watchdog_restart_agents_reconnect_and_buffered_events_arrive_once() -> anyhow::Result<()>
{
    let hosts = ["hv-a", "hv-b", "hv-c"];
    let (_certs, mut watchdog, agents) = cluster(&hosts)?;
    const BEFORE: u32 = 5;
    const DURING: u32 = 5;
    for agent in &agents {
        for n in 1..=BEFORE {
            raise(agent, n)?;
        }
    }
    for h in hosts {
        watchdog.wait_for(
            &format!("{h} events before"),
            Duration::from_secs(10),
            |w| Ok((w.host(h)?.expect("known")["events_through"] == BEFORE).then_some(())),
        )?;
    }
    let first: Vec<_> = hosts
        .iter()
        .map(|h| events(&watchdog, h))
        .collect::<Result<_, _>>()?;

    // Down: events raised now wait in the agents' buffers.
    let status = watchdog.terminate()?;
    assert!(status.success(), "clean stop: {status}");
    for agent in &agents {
        for n in BEFORE + 1..=BEFORE + DURING {
            raise(agent, n)?;
        }
    }
    std::thread::sleep(Duration::from_secs(2));
    watchdog.restart()?;

    for (h, before) in hosts.iter().zip(first) {
        watchdog.wait_for(
            &format!("{h} reconnected with its events"),
            Duration::from_secs(15),
            |w| {
                Ok(w.host(h)?
                    .filter(|v| v["connected"] == true && v["events_through"] == BEFORE + DURING)
                    .map(|_| ()))
            },
        )?;
        let after = events(&watchdog, h)?;
        let expected_before: Vec<(u64, String)> =
            (1..=BEFORE).map(|n| (n as u64, n.to_string())).collect();
        let expected_after: Vec<(u64, String)> = (BEFORE + 1..=BEFORE + DURING)
            .map(|n| (n as u64, n.to_string()))
            .collect();
        assert_eq!(
            before, expected_before,
            "{h}: the first watchdog got 1..{BEFORE} in order"
        );
        assert_eq!(
            after, expected_after,
            "{h}: the restarted watchdog got exactly the buffered events, in order, once"
        );
    }
    assert_eq!(
        watchdog.metric("hyperwatch_stream_events_total{outcome=\"duplicate\"}")?,
        None
    );
    for agent in &agents {
        let body = http::get(agent.addr, "/metrics", &[])?.body;
        assert!(
            body.contains("hyperwatch_stream_dropped_total{kind=\"event\"} 0"),
            "nothing dropped"
        );
        assert!(
            body.contains("hyperwatch_stream_reconnects_total 1"),
            "reconnected once"
        );
    }
    Ok(())
}
