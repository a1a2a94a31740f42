//! Who this agent is (host id, boot id) and what the host has (inventory),
//! for the hello.

use std::path::Path;

use hyperwatch_proto::v1;

/// The configured host id, else the kernel's host name.
pub fn host_id(configured: &str, procfs: &Path) -> String {
    if !configured.is_empty() {
        return configured.to_owned();
    }
    read_trimmed(&procfs.join("sys/kernel/hostname")).unwrap_or_else(|| "localhost".into())
}

/// The kernel's boot id: changes when the host reboots.
pub fn boot_id(procfs: &Path) -> String {
    read_trimmed(&procfs.join("sys/kernel/random/boot_id")).unwrap_or_default()
}

/// The host part of the inventory: CPU cores, memory and kernel. The VMs,
/// storage and roles are added by [`super::inventory`].
pub fn inventory(procfs: &Path) -> v1::Inventory {
    v1::Inventory {
        cpu_cores: std::thread::available_parallelism().map_or(0, |n| n.get() as u32),
        memory_bytes: std::fs::read_to_string(procfs.join("meminfo"))
            .ok()
            .and_then(|m| mem_total(&m))
            .unwrap_or(0),
        kernel_release: read_trimmed(&procfs.join("sys/kernel/osrelease")).unwrap_or_default(),
        ..Default::default()
    }
}

fn read_trimmed(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned())
}

/// MemTotal of /proc/meminfo, in bytes.
fn mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_memtotal() {
        assert_eq!(
            super::mem_total("MemTotal:       16303580 kB\nMemFree: 1 kB\n"),
            Some(16303580 * 1024)
        );
        assert_eq!(super::mem_total("nothing"), None);
    }
}
