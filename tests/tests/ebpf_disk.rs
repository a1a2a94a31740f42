//! Disk IO latency: direct-IO reads and writes on a loop device this test
//! creates; the agent's histogram counts for that device and operation
//! match the completed IOs in /proc/diskstats within 5 %.

use std::{
    alloc::Layout,
    os::{fd::AsRawFd, unix::fs::OpenOptionsExt},
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::{Context, bail};
use hyperwatch_tests::{ebpf, metrics::Scrape, process::AgentProcess};

/// Backing file size: room for the IOs, small enough for any /tmp.
const BACKING_BYTES: u64 = 64 << 20;
/// Each IO: one 4 KiB block, the loop device's logical block size at most.
const BLOCK: usize = 4096;
const READS: usize = 600;
const WRITES: usize = 400;

#[test]
fn histogram_counts_match_diskstats_for_a_loop_device() -> anyhow::Result<()> {
    if !ebpf::available("histogram_counts_match_diskstats_for_a_loop_device") {
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let backing = dir.path().join("disk.img");
    std::fs::File::create(&backing)?.set_len(BACKING_BYTES)?;
    let loop_dev = LoopDevice::attach(&backing)?;
    let name = loop_dev.name();
    let agent = AgentProcess::start(&[])?;
    // Let the kernel's own probe of the new device finish.
    std::thread::sleep(Duration::from_millis(300));

    let before = Scrape::get(agent.addr)?;
    let stats_before = diskstats(&name)?;
    direct_io(&loop_dev.path, READS, WRITES)?;
    let stats_after = diskstats(&name)?;
    let after = Scrape::get(agent.addr)?;

    let count = |s: &Scrape, op: &str| {
        s.value(
            "hyperwatch_disk_io_latency_seconds_count",
            &[("device", &name), ("operation", op)],
        )
        .unwrap_or(0.0)
    };
    for (op, kernel) in [
        ("read", stats_after.0 - stats_before.0),
        ("write", stats_after.1 - stats_before.1),
    ] {
        let ours = count(&after, op) - count(&before, op);
        eprintln!("{name} {op}: histogram +{ours}, /proc/diskstats +{kernel}");
        assert!(kernel > 0.0, "no {op}s completed on {name}");
        assert!(
            (ours - kernel).abs() <= 0.05 * kernel,
            "{op}: histogram counted {ours}, diskstats {kernel}"
        );
    }
    let (n, sum) = after.histogram(
        "hyperwatch_disk_io_latency_seconds",
        &[("device", &name), ("operation", "write")],
    )?;
    assert!(
        sum > 0.0 && sum / n < 1.0,
        "mean write latency {} s",
        sum / n
    );
    Ok(())
}

/// Reads and writes `BLOCK`-sized blocks with O_DIRECT, spread over the
/// device, so every one is a request of its own.
fn direct_io(device: &Path, reads: usize, writes: usize) -> anyhow::Result<()> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(device)
        .with_context(|| format!("opening {} with O_DIRECT", device.display()))?;
    let layout = Layout::from_size_align(BLOCK, BLOCK)?;
    // SAFETY: a non-zero-sized layout; freed below.
    let buf = unsafe { std::alloc::alloc_zeroed(layout) };
    let blocks = BACKING_BYTES / BLOCK as u64;
    let result = (|| {
        for i in 0..(reads + writes) {
            // A stride that is prime to the block count visits spread-out
            // blocks and never two neighbours in a row.
            let offset = ((i as u64 * 7919) % blocks) * BLOCK as u64;
            // SAFETY: buf holds BLOCK bytes, aligned as O_DIRECT needs.
            let n = unsafe {
                if i < writes {
                    libc::pwrite(file.as_raw_fd(), buf.cast(), BLOCK, offset as i64)
                } else {
                    libc::pread(file.as_raw_fd(), buf.cast(), BLOCK, offset as i64)
                }
            };
            if n != BLOCK as isize {
                bail!("IO {i} at {offset}: {}", std::io::Error::last_os_error());
            }
        }
        Ok(())
    })();
    // SAFETY: allocated above with this layout.
    unsafe { std::alloc::dealloc(buf, layout) };
    result
}

/// (reads completed, writes completed) of `device` in /proc/diskstats.
fn diskstats(device: &str) -> anyhow::Result<(f64, f64)> {
    let text = std::fs::read_to_string("/proc/diskstats")?;
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.get(2) == Some(&device) {
            return Ok((f[3].parse()?, f[7].parse()?));
        }
    }
    bail!("{device} is not in /proc/diskstats")
}

/// A loop device over a file, detached when dropped.
struct LoopDevice {
    path: PathBuf,
}

impl LoopDevice {
    fn attach(file: &Path) -> anyhow::Result<Self> {
        let out = Command::new("losetup")
            .args(["--find", "--show"])
            .arg(file)
            .output()
            .context("running losetup (util-linux)")?;
        if !out.status.success() {
            bail!("losetup failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(Self {
            path: PathBuf::from(String::from_utf8(out.stdout)?.trim()),
        })
    }

    fn name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.path).status();
    }
}
