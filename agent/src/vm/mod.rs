//! The VMs this host runs: their inventory (for the watchdog's capacity
//! planner) and their usage (for /metrics).
//!
//! VMs come from libvirt when libvirtd runs here (`virsh`), otherwise from
//! the qemu-system processes in /proc. Either way each VM is one qemu
//! process whose threads (vCPUs among them) the run-queue programs tag with
//! the VM's slot.
//!
//! Layout:
//! * [`qemu_args`]: name, vCPUs, memory from a qemu command line.
//! * [`proc_scan`]: finding qemu processes, their threads and tap devices.
//! * [`libvirt`]: listing libvirt domains through virsh.
//! * [`usage`]: per-VM CPU, memory, disk and network counters.
//! * [`tracker`]: the current inventory, VM slots and the kernel's thread map.

pub mod libvirt;
pub mod proc_scan;
pub mod qemu_args;
pub mod tracker;
pub mod usage;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// One VM.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vm {
    /// libvirt's domain name, QEMU's `-name`, or `qemu-PID` without one.
    pub name: String,
    /// The VM's UUID when known (libvirt always sets one).
    pub uuid: Option<String>,
    /// The qemu process.
    pub pid: u32,
    /// Virtual CPUs.
    pub vcpus: u32,
    /// Memory size the VM was given, bytes.
    pub memory_bytes: u64,
    /// "kvm", "tcg", ...
    pub accelerator: String,
    /// Host-side tap devices of its network interfaces.
    pub tap_interfaces: Vec<String>,
    /// Thread ids of the qemu process (vCPU threads among them); not part
    /// of the inventory message.
    #[serde(skip)]
    pub threads: Vec<u32>,
}

/// Where the inventory came from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VmSource {
    /// libvirt's domains (virsh).
    Libvirt,
    /// qemu-system processes in /proc.
    #[default]
    Proc,
}

impl VmSource {
    pub fn as_str(self) -> &'static str {
        match self {
            VmSource::Libvirt => "libvirt",
            VmSource::Proc => "proc",
        }
    }
}

/// The VMs on this host, as the stream's hello and telemetry carry them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmInventory {
    pub source: VmSource,
    pub vms: Vec<Vm>,
}

/// Which source to use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceChoice {
    /// libvirt when libvirtd's socket and virsh are present, else /proc.
    #[default]
    Auto,
    Libvirt,
    Proc,
}

/// Settings of the `vm` collector.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct VmConfig {
    /// Whether VMs are inventoried and measured.
    pub enabled: bool,
    /// "auto", "libvirt" or "proc".
    pub source: SourceChoice,
    /// Seconds between inventory refreshes (VMs starting and stopping).
    pub refresh_seconds: f64,
    /// libvirt connection URI for virsh.
    pub libvirt_uri: String,
    /// The virsh program.
    pub virsh: PathBuf,
}

/// 10 s: a new VM appears in the inventory well within a scrape interval
/// or two, and a scan of /proc every 10 s costs next to nothing.
const DEFAULT_REFRESH_SECONDS: f64 = 10.0;

impl Default for VmConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            source: SourceChoice::Auto,
            refresh_seconds: DEFAULT_REFRESH_SECONDS,
            libvirt_uri: "qemu:///system".into(),
            virsh: "virsh".into(),
        }
    }
}

/// Why an inventory could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("running `{command}`: {message}")]
    Virsh { command: String, message: String },
}

/// Takes the inventory from the configured source.
pub async fn discover(config: &VmConfig, procfs: &std::path::Path) -> Result<VmInventory, VmError> {
    let use_libvirt = match config.source {
        SourceChoice::Libvirt => true,
        SourceChoice::Proc => false,
        SourceChoice::Auto => libvirt::available(&config.virsh),
    };
    if use_libvirt {
        let vms = libvirt::domains(config, procfs).await?;
        return Ok(VmInventory {
            source: VmSource::Libvirt,
            vms,
        });
    }
    let procfs = procfs.to_owned();
    let vms = tokio::task::spawn_blocking(move || proc_scan::scan(&procfs))
        .await
        .map_err(|e| VmError::Read {
            path: "/proc".into(),
            source: std::io::Error::other(e),
        })??;
    Ok(VmInventory {
        source: VmSource::Proc,
        vms,
    })
}
