//! A real agent's inventory and usage at the watchdog, real processes over
//! mutual TLS: a qemu VM the test starts (found in /proc) and a directory
//! pool of image files arrive with the hello, their usage fills the
//! windows, and when the VM stops an InventoryUpdate takes it away.

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::Context;
use hyperwatch_tests::watchdog::{
    ClusterCerts, WatchdogProcess, agent_config, start_agent, watchdog_config,
};
use serde_json::Value;

const VM_NAME: &str = "hwinv-vm";
/// Bound on the VM and the pool reaching the watchdog, and on changes.
const ARRIVES_WITHIN: Duration = Duration::from_secs(30);

/// A qemu process, killed when dropped.
struct Qemu(std::process::Child);

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn find<'a>(list: &'a Value, key: &str, name: &str) -> Option<&'a Value> {
    list.as_array()?.iter().find(|v| v[key] == name)
}

#[test]
fn a_real_agent_streams_its_vms_and_storage_and_their_changes() -> anyhow::Result<()> {
    let certs = ClusterCerts::new("e2e")?;
    let watchdog = WatchdogProcess::start(certs.dir.path(), &watchdog_config(&certs, 0, ""))?;
    let pool = tempfile::tempdir()?;
    std::fs::write(pool.path().join("full.img"), vec![7u8; 4 << 20])?;
    std::fs::File::create(pool.path().join("sparse.img"))?.set_len(64 << 20)?;
    // Paused at start (-S): a VM that uses no CPU, found like any other.
    let qemu = Qemu(
        Command::new("qemu-system-x86_64")
            .args(["-name", &format!("guest={VM_NAME}"), "-S"])
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
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting qemu-system-x86_64 (Debian package qemu-system-x86)")?,
    );
    certs.agent("hv-real")?;
    let extra = format!(
        "\n[collectors.vm]\nsource = 'proc'\nrefresh_seconds = 0.5\n\n[storage.directory_pools]\npool1 = '{}'\n",
        pool.path().display()
    );
    let _agent = start_agent(
        certs.dir.path(),
        "real",
        &agent_config(&certs, watchdog.stream_addr, "hv-real", "hv-real", &extra),
    )?;

    let host = watchdog.wait_for("the VM and the pool with usage", ARRIVES_WITHIN, |w| {
        Ok(w.host("hv-real")?.filter(|h| {
            let vm_sampled = h["usage"]["vms"][VM_NAME]["cpu_cores"]["samples"].as_u64() >= Some(2);
            let pool_sampled =
                h["usage"]["devices"]["pool1"]["used_bytes"]["samples"].as_u64() >= Some(2);
            vm_sampled && pool_sampled
        }))
    })?;
    let inv = &host["inventory"];
    let roles: Vec<&str> = inv["roles"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(roles, ["hypervisor", "storage"]);
    let vm = find(&inv["vms"], "name", VM_NAME).context("the VM in the inventory")?;
    assert_eq!(
        (vm["vcpus"].as_u64(), vm["memory_bytes"].as_u64()),
        (Some(1), Some(32 << 20))
    );
    assert_eq!(vm["state"], "running");
    let pool1 = find(&inv["storage"], "name", "pool1").context("the pool in the inventory")?;
    assert_eq!(pool1["kind"], "directory_pool");
    assert!(!pool1["shared_group"].as_bool().unwrap());
    let images: Vec<&str> = pool1["luns"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["id"].as_str())
        .collect();
    assert_eq!(images, ["full.img", "sparse.img"]);
    let sparse = find(&pool1["luns"], "id", "sparse.img").unwrap();
    assert_eq!(sparse["size_bytes"].as_u64(), Some(64 << 20));
    assert!(
        sparse["used_bytes"].as_u64() < Some(1 << 20),
        "sparse: {sparse}"
    );

    let usage = &host["usage"]["vms"][VM_NAME];
    assert!(
        usage["cpu_cores"]["max"].as_f64() < Some(0.5),
        "a paused VM: {usage}"
    );
    assert!(
        usage["memory_resident_bytes"]["latest"].as_f64() > Some(0.0),
        "{usage}"
    );
    let revision = inv["revision"].as_u64().unwrap();

    // The VM stops: an InventoryUpdate without it, and its window goes.
    drop(qemu);
    let host = watchdog.wait_for("the VM gone", ARRIVES_WITHIN, |w| {
        Ok(w.host("hv-real")?
            .filter(|h| find(&h["inventory"]["vms"], "name", VM_NAME).is_none()))
    })?;
    assert!(host["inventory"]["revision"].as_u64() > Some(revision));
    assert!(host["usage"]["vms"].get(VM_NAME).is_none());
    assert!(find(&host["inventory"]["storage"], "name", "pool1").is_some());
    Ok(())
}
