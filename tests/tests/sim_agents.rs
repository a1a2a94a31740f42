//! Simulated agents against a real watchdog, all real processes over
//! mutual TLS: a hypervisor's and a storage host's inventories and usage
//! windows arrive and follow the scenario's phases; a service crash is an
//! event and `restart-service` brings it back; the agent's /metrics carry
//! the simulated figures under the real names; a host the scenario crashes
//! exits and is declared failed.

use std::time::Duration;

use hyperwatch_tests::{
    http,
    metrics::Scrape,
    sim::start_simulated,
    watchdog::{ClusterCerts, WatchdogProcess, watchdog_config},
};
use serde_json::Value;

/// Bound on figures arriving: a few telemetry summaries at 1 s.
const ARRIVES_WITHIN: Duration = Duration::from_secs(30);

const HYPERVISOR: &str = r#"
[host]
name = "hv-sim"
kind = "hypervisor"
cores = 8
memory = "32 GiB"
seed = 11
tick = 0.2
noise = 0.02

[[vms]]
name = "web-1"
vcpus = 2
memory = "4 GiB"
resident = "3 GiB"
cpu_cores = 1.0
tenant = "shop"
priority = 7
labels = { app = "web" }

[[vms]]
name = "web-2"
vcpus = 4
memory = "4 GiB"
cpu_cores = 0.5

[[services]]
name = "nginx"

[[phases]]
at = "3s"
vm = "web-2"
cpu_cores = 3.5

[[phases]]
at = "4s"
service = "nginx"
state = "down"
"#;

const STORAGE: &str = r#"
[host]
name = "st-sim"
kind = "storage"
cores = 4
memory = "8 GiB"
tick = 0.2

[[devices]]
id = "d1"
group = "fast"
shared = true
capacity = "100 GiB"
used = "10 GiB"
iops = 10.0
latency_ms = 2.0

[[luns]]
id = "vol-1"
device = "d1"
size = "40 GiB"
used = "30 GiB"
iops = 200.0
consumer = "web-1"

[[luns]]
id = "vol-2"
device = "d1"
size = "10 GiB"
pinned = true
"#;

const CRASHING: &str = r#"
[host]
name = "hv-doomed"
kind = "hypervisor"
cores = 2
memory = "4 GiB"

[[phases]]
at = "3s"
host = "crash"
"#;

fn find<'a>(list: &'a Value, key: &str, name: &str) -> Option<&'a Value> {
    list.as_array()?.iter().find(|v| v[key] == name)
}

#[test]
fn simulated_hosts_stream_inventories_usage_and_events() -> anyhow::Result<()> {
    let certs = ClusterCerts::new("e2e")?;
    let watchdog = WatchdogProcess::start(certs.dir.path(), &watchdog_config(&certs, 0, ""))?;
    let hv = start_simulated(&certs, watchdog.stream_addr, "hv-sim", HYPERVISOR)?;
    let _st = start_simulated(&certs, watchdog.stream_addr, "st-sim", STORAGE)?;

    // Inventory from the hello, usage windows from telemetry, and web-2's
    // load after its phase.
    let host = watchdog.wait_for("hv-sim usage after the phase", ARRIVES_WITHIN, |w| {
        Ok(w.host("hv-sim")?.filter(|h| {
            let web2 = &h["usage"]["vms"]["web-2"]["cpu_cores"];
            // A whole summary interval after the phase.
            web2["latest"].as_f64() > Some(3.4)
                && h["usage"]["cpu_cores"]["samples"].as_u64() >= Some(3)
        }))
    })?;
    let inv = &host["inventory"];
    assert_eq!(inv["roles"], serde_json::json!(["hypervisor"]));
    assert!(inv["revision"].as_u64() >= Some(1), "{inv}");
    assert_eq!(
        (inv["cpu_cores"].as_u64(), inv["memory_bytes"].as_u64()),
        (Some(8), Some(32 << 30))
    );
    let web1 = find(&inv["vms"], "name", "web-1").expect("web-1 listed");
    assert_eq!(web1["state"], "running");
    assert_eq!(web1["tenant"], "shop");
    assert_eq!(web1["priority"], 7);
    assert_eq!(web1["labels"]["app"], "web");
    assert!(
        host["capabilities"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "simulated")
    );

    let usage = &host["usage"];
    let web1 = &usage["vms"]["web-1"];
    let cores = web1["cpu_cores"]["p50"].as_f64().unwrap();
    assert!(
        (0.95..=1.05).contains(&cores),
        "web-1 at 1 core within 2 % noise: {web1}"
    );
    assert_eq!(
        web1["memory_resident_bytes"]["latest"].as_f64(),
        Some((3u64 << 30) as f64)
    );
    let host_cores = usage["cpu_cores"]["latest"].as_f64().unwrap();
    assert!(
        (4.3..=4.7).contains(&host_cores),
        "1 + 3.5 busy cores of 8: {host_cores}"
    );

    // The crash phase is an event; restart-service brings nginx back.
    let service_event = |w: &WatchdogProcess, state: &str| -> anyhow::Result<Option<()>> {
        let h = w.host("hv-sim")?.unwrap_or_default();
        Ok(h["recent_events"].as_array().and_then(|events| {
            events
                .iter()
                .any(|e| {
                    e["kind"] == "service_state_change"
                        && e["fields"]["service"] == "nginx"
                        && e["fields"]["new_state"] == state
                })
                .then_some(())
        }))
    };
    // The real agent's words, which the shipped service-crashed policy
    // watches.
    watchdog.wait_for("nginx failed", ARRIVES_WITHIN, |w| {
        service_event(w, "failed")
    })?;
    let r = http::post(
        watchdog.http_addr,
        "/api/v1/hosts/hv-sim/actions/restart-service",
        r#"{"args":{"service":"nginx"}}"#,
    )?;
    let outcome: Value = serde_json::from_str(&r.body)?;
    assert_eq!(outcome["status"], "succeeded", "{outcome}");
    watchdog.wait_for("nginx running", ARRIVES_WITHIN, |w| {
        service_event(w, "running")
    })?;

    // The storage map: st-sim's device with its LUN distribution.
    let storage = watchdog.wait_for("st-sim IOPS", ARRIVES_WITHIN, |w| {
        let map = w.get_json("/api/v1/storage")?;
        let host = find(&map["hosts"], "host", "st-sim").cloned();
        Ok(host.filter(|h| h["devices"][0]["iops"].as_f64().is_some()))
    })?;
    let d1 = &storage["devices"][0];
    assert_eq!(
        (
            d1["id"].as_str(),
            d1["group"].as_str(),
            d1["shared_group"].as_bool()
        ),
        (Some("d1"), Some("fast"), Some(true))
    );
    assert_eq!(d1["used_bytes"].as_u64(), Some((10 + 30 + 10) << 30));
    assert_eq!(d1["lun_count"], 2);
    let iops = d1["iops"].as_f64().unwrap();
    assert!(
        (200.0..=220.0).contains(&iops),
        "10 of its own and 200 of vol-1: {iops}"
    );
    let lat = d1["io_latency_seconds"].as_f64().unwrap();
    assert!((lat - 0.002).abs() < 1e-4, "{lat}");
    let vol2 = find(&d1["luns"], "id", "vol-2").expect("vol-2");
    assert_eq!(
        (vol2["pinned"].as_bool(), vol2["state"].as_str()),
        (Some(true), Some("active"))
    );
    assert!(watchdog.host("hv-sim")?.is_some_and(|h| {
        h["inventory"]["storage"]
            .as_array()
            .is_some_and(Vec::is_empty)
    }));

    // The agent's own /metrics: simulated figures under the real names.
    let scrape = Scrape::get(hv.addr)?;
    assert!(scrape.require("hyperwatch_vm_cpu_seconds_total", &[("vm", "web-1")])? > 0.0);
    assert_eq!(
        scrape.require("hyperwatch_vm_vcpus", &[("vm", "web-2")])?,
        4.0
    );
    assert_eq!(
        scrape.require("node_memory_MemTotal_bytes", &[])?,
        (32u64 << 30) as f64
    );
    assert!(scrape.require("node_cpu_seconds_total", &[("cpu", "7"), ("mode", "idle")])? > 0.0);
    assert_eq!(
        scrape.require("hyperwatch_service_up", &[("service", "nginx")])?,
        1.0
    );
    Ok(())
}

#[test]
fn a_host_the_scenario_crashes_exits_and_is_declared_failed() -> anyhow::Result<()> {
    let certs = ClusterCerts::new("e2e")?;
    let watchdog = WatchdogProcess::start(certs.dir.path(), &watchdog_config(&certs, 0, ""))?;
    let mut doomed = start_simulated(&certs, watchdog.stream_addr, "hv-doomed", CRASHING)?;
    watchdog.wait_for("hv-doomed healthy", ARRIVES_WITHIN, |w| {
        Ok(w.state("hv-doomed")?.filter(|s| s == "healthy"))
    })?;
    let status = doomed.wait_exit(ARRIVES_WITHIN)?;
    assert_eq!(status.code(), Some(4), "the simulated crash's exit status");
    watchdog.wait_for("hv-doomed failed", ARRIVES_WITHIN, |w| {
        Ok(w.state("hv-doomed")?.filter(|s| s == "failed"))
    })?;
    Ok(())
}
