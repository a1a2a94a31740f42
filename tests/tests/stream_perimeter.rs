//! The logical network perimeter with real agents: a certificate from
//! another cluster's CA, an expired certificate, and a hello whose host id
//! differs from the certificate are each refused, logged and counted in
//! `hyperwatch_stream_rejected_total{reason}`; a proper agent gets in
//! beside them.

use std::time::{Duration, SystemTime};

use hyperwatch::certs::Validity;
use hyperwatch_tests::watchdog::{
    ClusterCerts, HEALTHY_WITHIN, WatchdogProcess, agent_config, start_agent, watchdog_config,
};

/// Bound on each refusal showing in the metrics (agents retry every ≤1 s).
const REFUSED_WITHIN: Duration = Duration::from_secs(15);

#[test]
fn foreign_expired_and_impostor_agents_are_refused_logged_and_counted() -> anyhow::Result<()> {
    let certs = ClusterCerts::new("prod")?;
    let mut watchdog = WatchdogProcess::start(certs.dir.path(), &watchdog_config(&certs, 0, ""))?;
    let dir = certs.dir.path();
    let endpoint = watchdog.stream_addr;

    certs.agent("hv-good")?;
    let _good = start_agent(
        dir,
        "good",
        &agent_config(&certs, endpoint, "hv-good", "hv-good", ""),
    )?;

    // Another cluster's CA signed this one; it trusts our CA (public) to
    // reach the watchdog, as an intruder would.
    let other = ClusterCerts::new("other")?;
    other.agent("hv-foreign")?;
    let foreign = agent_config(&other, endpoint, "hv-foreign", "hv-foreign", "").replace(
        &other.path("ca.pem").display().to_string(),
        &certs.path("ca.pem").display().to_string(),
    );
    let _foreign = start_agent(dir, "foreign", &foreign)?;

    let day = Duration::from_secs(86_400);
    let now = SystemTime::now();
    certs.agent_with_validity(
        "hv-expired",
        Validity {
            not_before: now - 30 * day,
            not_after: now - day,
        },
    )?;
    let _expired = start_agent(
        dir,
        "expired",
        &agent_config(&certs, endpoint, "hv-expired", "hv-expired", ""),
    )?;

    certs.agent("hv-real")?;
    let _impostor = start_agent(
        dir,
        "impostor",
        &agent_config(&certs, endpoint, "hv-fake", "hv-real", ""),
    )?;

    for reason in ["unknown_ca", "expired", "host_mismatch"] {
        let sample = format!("hyperwatch_stream_rejected_total{{reason=\"{reason}\"}}");
        watchdog.wait_for(&sample, REFUSED_WITHIN, |w| {
            Ok(w.metric(&sample)?.filter(|n| *n >= 1.0))
        })?;
    }
    watchdog.wait_for("hv-good healthy", HEALTHY_WITHIN, |w| {
        Ok((w.state("hv-good")?.as_deref() == Some("healthy")).then_some(()))
    })?;
    let hosts = watchdog.get_json("/api/v1/hosts")?;
    let ids: Vec<&str> = hosts
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["id"].as_str())
        .collect();
    assert_eq!(ids, vec!["hv-good"], "only the proper agent got in");

    for reason in [
        "reason=\"unknown_ca\"",
        "reason=\"expired\"",
        "reason=\"host_mismatch\"",
    ] {
        watchdog.wait_log(&format!("the refusal {reason}"), REFUSED_WITHIN, |l| {
            l.contains("refused") && l.contains(reason)
        })?;
    }
    let log = watchdog.log().join("\n");
    assert!(
        log.contains("hv-fake") && log.contains("spiffe://prod/host/hv-real"),
        "the mismatch names both ids"
    );
    Ok(())
}
