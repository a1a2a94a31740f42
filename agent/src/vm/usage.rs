//! A VM's usage, read from its qemu process and tap devices: CPU time
//! (/proc/PID/stat, all threads), resident memory (/proc/PID/status), disk
//! bytes (/proc/PID/io: what the process read and wrote through the block
//! layer, i.e. the VM's disk images) and network bytes (the taps' counters
//! under /sys/class/net).

use std::path::Path;

/// Counters of one VM at one moment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VmUsage {
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
    pub disk_read_bytes: u64,
    pub disk_written_bytes: u64,
    /// (tap, bytes the VM received, bytes the VM sent).
    pub network: Vec<(String, u64, u64)>,
}

/// Reads the usage of qemu process `pid`; None once it is gone.
pub fn read(procfs: &Path, sysfs: &Path, pid: u32, taps: &[String]) -> Option<VmUsage> {
    let dir = procfs.join(pid.to_string());
    let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
    let mut usage = VmUsage {
        cpu_seconds: cpu_seconds(&stat, clock_ticks())?,
        ..VmUsage::default()
    };
    if let Ok(status) = std::fs::read_to_string(dir.join("status")) {
        usage.resident_bytes = status_kib(&status, "VmRSS:").unwrap_or(0) * 1024;
    }
    if let Ok(io) = std::fs::read_to_string(dir.join("io")) {
        usage.disk_read_bytes = io_field(&io, "read_bytes:").unwrap_or(0);
        usage.disk_written_bytes = io_field(&io, "write_bytes:").unwrap_or(0);
    }
    for tap in taps {
        let stats = sysfs.join("class/net").join(tap).join("statistics");
        let counter = |name: &str| {
            std::fs::read_to_string(stats.join(name))
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        // The host transmits on the tap what the VM receives, and the
        // other way round.
        if let (Some(host_tx), Some(host_rx)) = (counter("tx_bytes"), counter("rx_bytes")) {
            usage.network.push((tap.clone(), host_tx, host_rx));
        }
    }
    Some(usage)
}

/// USER_HZ, the unit of /proc/PID/stat times.
fn clock_ticks() -> f64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .map_or(100.0, |t| t as f64)
}

/// utime + stime (fields 14 and 15) of a /proc/PID/stat line, in seconds;
/// the fields are counted after the `(comm)`, which may hold spaces.
pub fn cpu_seconds(stat: &str, ticks_per_second: f64) -> Option<f64> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_comm.split_ascii_whitespace().skip(11);
    let utime: f64 = fields.next()?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) / ticks_per_second)
}

fn status_kib(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_ascii_whitespace().next()?.parse().ok())
}

fn io_field(io: &str, key: &str) -> Option<u64> {
    io.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_counted_after_a_comm_with_spaces() {
        let stat =
            "4242 (qemu system) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 150 0 0 20 0 5 0 100 0 0";
        assert_eq!(cpu_seconds(stat, 100.0), Some(4.0));
    }

    #[test]
    fn usage_from_a_fixture_tree() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("proc/7");
        std::fs::create_dir_all(&p).unwrap();
        std::fs::write(
            p.join("stat"),
            "7 (qemu-system-x86) S 1 7 7 0 -1 0 0 0 0 0 100 100 0 0 20 0 3 0 1 0 0",
        )
        .unwrap();
        std::fs::write(p.join("status"), "Name:\tqemu\nVmRSS:\t  2048 kB\n").unwrap();
        std::fs::write(
            p.join("io"),
            "rchar: 9\nwchar: 9\nread_bytes: 4096\nwrite_bytes: 512\n",
        )
        .unwrap();
        let s = dir.path().join("sys/class/net/tap0/statistics");
        std::fs::create_dir_all(&s).unwrap();
        std::fs::write(s.join("tx_bytes"), "1000\n").unwrap();
        std::fs::write(s.join("rx_bytes"), "300\n").unwrap();
        let u = read(
            &dir.path().join("proc"),
            &dir.path().join("sys"),
            7,
            &["tap0".into()],
        )
        .unwrap();
        assert_eq!(u.resident_bytes, 2048 * 1024);
        assert_eq!((u.disk_read_bytes, u.disk_written_bytes), (4096, 512));
        assert_eq!(u.network, vec![("tap0".to_owned(), 1000, 300)]);
        assert!(read(&dir.path().join("proc"), &dir.path().join("sys"), 8, &[]).is_none());
    }
}
