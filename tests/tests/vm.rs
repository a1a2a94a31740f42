//! The VMs on this host, with real qemu-system VMs started by the test (no
//! disk image: SeaBIOS finds nothing to boot and tries the network).
//!
//! The main VM runs on KVM when /dev/kvm is usable, TCG otherwise. Network
//! counters need a guest that drives its NIC (tun counts a packet when qemu
//! reads it, and qemu reads only for a guest ready to receive); SeaBIOS's
//! iPXE ROM does, asking for DHCP, under TCG but stays silent under the
//! nested KVM of the build machines, so a second, small VM runs on TCG for
//! the network figures.
//!
//! In process: the VmInventory the stream will carry (name, vCPUs, memory,
//! tap, pid). End to end: the per-VM metrics, including each VM's own
//! run-queue latency histogram (its qemu threads tagged in the kernel).

use std::{
    net::UdpSocket,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use hyperwatch_agent::{Agent, config, vm::VmSource};
use hyperwatch_tests::{ebpf, metrics::Scrape, process::AgentProcess};

const VM_NAME: &str = "hwtest-vm";
const VCPUS: u32 = 2;
const MEMORY_MIB: u64 = 64;
const NET_VM_NAME: &str = "hwtest-net";
/// Bound on the VM appearing in the inventory and metrics.
const APPEAR_BOUND: Duration = Duration::from_secs(20);
/// Link-local addresses for the host end of the tap: the ARP for the
/// second is traffic into the VM.
const HOST_ADDR: &str = "169.254.213.1/30";
const VM_SIDE_ADDR: &str = "169.254.213.2:9";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_qemu_vm_is_inventoried_and_measured() -> anyhow::Result<()> {
    if !ebpf::available("a_running_qemu_vm_is_inventoried_and_measured") {
        return Ok(());
    }
    let tap = format!("hwt{}", std::process::id() % 100_000);
    let accelerator = if kvm_usable() { "kvm" } else { "tcg" };
    let vm = Qemu::start(VM_NAME, &tap, accelerator, VCPUS, MEMORY_MIB, None)?;
    eprintln!("qemu pid {} ({accelerator}), tap {tap}", vm.child.id());
    let net_tap = format!("hwn{}", std::process::id() % 100_000);
    let _net_vm = Qemu::start(NET_VM_NAME, &net_tap, "tcg", 1, 32, Some(HOST_ADDR))?;

    // In process: the inventory.
    let config = config::parse(
        "[http]\nlisten = '127.0.0.1:0'\n[collectors.vm]\nsource = 'proc'\nrefresh_seconds = 0.5\n",
        "vm-test.toml",
    )?;
    let agent = Agent::new(&config);
    let _tasks = agent.start();
    let deadline = Instant::now() + APPEAR_BOUND;
    let found = loop {
        let inventory = agent.vm_inventory();
        if let Some(v) = inventory.vms.iter().find(|v| v.name == VM_NAME) {
            assert_eq!(inventory.source, VmSource::Proc);
            break v.clone();
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{VM_NAME} not in the inventory: {inventory:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(found.pid, vm.child.id());
    assert_eq!(found.vcpus, VCPUS);
    assert_eq!(found.memory_bytes, MEMORY_MIB << 20);
    assert_eq!(found.accelerator, accelerator);
    assert_eq!(found.tap_interfaces, vec![tap.clone()]);
    assert!(
        found.threads.len() > VCPUS as usize,
        "threads {:?}",
        found.threads
    );
    let json = serde_json::to_value(agent.vm_inventory())?;
    assert_eq!(json["source"], "proc");
    let entry = json["vms"]
        .as_array()
        .and_then(|vms| vms.iter().find(|v| v["name"] == VM_NAME))
        .context("VM missing from the inventory JSON")?;
    assert_eq!(entry["vcpus"], VCPUS);
    assert_eq!(entry["memory_bytes"], MEMORY_MIB << 20);
    assert!(
        entry.get("threads").is_none(),
        "threads are not part of the message"
    );

    // End to end: the metrics.
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("agent.toml");
    std::fs::write(
        &file,
        "[collectors.vm]\nsource = 'proc'\nrefresh_seconds = 0.5\n",
    )?;
    let process = AgentProcess::start(&["--config", file.to_str().context("utf-8 path")?])?;
    let labels = [("vm", VM_NAME)];
    let deadline = Instant::now() + APPEAR_BOUND;
    let first = loop {
        let s = Scrape::get(process.addr)?;
        if s.value("hyperwatch_vm_vcpus", &labels).is_some() {
            break s;
        }
        anyhow::ensure!(Instant::now() < deadline, "{VM_NAME} not in /metrics");
        std::thread::sleep(Duration::from_millis(200));
    };
    // Traffic into the network VM: the host resolves an address behind its
    // tap (ARP requests the guest's iPXE receives); out of it: iPXE's DHCP.
    let net = [("vm", NET_VM_NAME), ("interface", net_tap.as_str())];
    let received = |s: &Scrape| s.value("hyperwatch_vm_network_receive_bytes_total", &net);
    let sent = |s: &Scrape| s.value("hyperwatch_vm_network_transmit_bytes_total", &net);
    let sock = UdpSocket::bind("0.0.0.0:0")?;
    let deadline = Instant::now() + APPEAR_BOUND;
    let later = loop {
        let _ = sock.send_to(b"hyperwatch", VM_SIDE_ADDR);
        std::thread::sleep(Duration::from_millis(300));
        let s = Scrape::get(process.addr)?;
        let grew =
            |f: &dyn Fn(&Scrape) -> Option<f64>| f(&s).unwrap_or(0.0) > f(&first).unwrap_or(0.0);
        if grew(&received) && sent(&s).unwrap_or(0.0) > 0.0 {
            break s;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "no traffic counted on {net_tap}: received {:?}, sent {:?}",
            received(&s),
            sent(&s)
        );
    };

    assert_eq!(
        later.require("hyperwatch_vm_vcpus", &labels)?,
        f64::from(VCPUS)
    );
    assert_eq!(
        later.require("hyperwatch_vm_memory_bytes", &labels)?,
        (MEMORY_MIB << 20) as f64
    );
    assert!(later.require("hyperwatch_vm_memory_resident_bytes", &labels)? > 0.0);
    assert!(later.require("hyperwatch_vm_cpu_seconds_total", &labels)? > 0.0);
    later.require("hyperwatch_vm_disk_read_bytes_total", &labels)?;
    later.require("hyperwatch_vm_disk_written_bytes_total", &labels)?;
    eprintln!(
        "{NET_VM_NAME}: received {:?} B, sent {:?} B on {net_tap}",
        received(&later),
        sent(&later)
    );
    // The main VM's tap has its series (its guest drives no NIC here).
    later.require(
        "hyperwatch_vm_network_receive_bytes_total",
        &[("vm", VM_NAME), ("interface", tap.as_str())],
    )?;
    let (count, sum) = later.histogram("hyperwatch_vm_runqueue_latency_seconds", &labels)?;
    assert!(
        count > 0.0 && sum > 0.0,
        "no run-queue waits for the VM's threads"
    );
    assert_eq!(
        later.value(
            "hyperwatch_vm_info",
            &[("vm", VM_NAME), ("accelerator", accelerator)]
        ),
        Some(1.0)
    );
    assert_eq!(
        later.value("hyperwatch_vms", &[("source", "proc")]),
        Some(2.0)
    );
    Ok(())
}

/// A qemu-system-x86_64 VM, killed when dropped.
struct Qemu {
    child: Child,
}

impl Qemu {
    /// Starts a VM with a tap; `host_addr` gives the tap's host end an
    /// address.
    fn start(
        name: &str,
        tap: &str,
        accelerator: &str,
        vcpus: u32,
        memory_mib: u64,
        host_addr: Option<&str>,
    ) -> anyhow::Result<Self> {
        let mut child = Command::new("qemu-system-x86_64")
            .args(["-name", &format!("guest={name},debug-threads=on")])
            .args(["-accel", accelerator])
            .args(["-smp", &vcpus.to_string(), "-m", &memory_mib.to_string()])
            .args(["-nodefaults", "-display", "none", "-monitor", "none", "-serial", "none"])
            .args(["-netdev", &format!("tap,id=n0,ifname={tap},script=no,downscript=no")])
            .args(["-device", "virtio-net-pci,netdev=n0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting qemu-system-x86_64 (Debian package qemu-system-x86; cargo xtask setup installs it)")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !Path::new("/sys/class/net").join(tap).exists() {
            if let Some(status) = child.try_wait()? {
                bail!("qemu exited: {status}");
            }
            anyhow::ensure!(Instant::now() < deadline, "qemu did not create tap {tap}");
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut commands = vec![vec!["link", "set", tap, "up"]];
        if let Some(addr) = host_addr {
            commands.push(vec!["addr", "add", addr, "dev", tap]);
        }
        for args in commands {
            let status = Command::new("ip")
                .args(&args)
                .status()
                .context("running ip (iproute2)")?;
            anyhow::ensure!(status.success(), "ip {args:?} failed");
        }
        Ok(Self { child })
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn kvm_usable() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok()
}
