//! /proc/diskstats: IO counters per kernel block device, attached to the
//! inventory's devices and LUNs by kernel device name (`dm-3`, `loop0`).

use std::{collections::BTreeMap, path::Path};

use super::{IoCounters, StorageError, StorageInventory};

/// Bytes per diskstats sector, fixed by the kernel whatever the device's.
const SECTOR_BYTES: u64 = 512;

/// Counters by kernel device name.
pub fn read(procfs: &Path) -> Result<BTreeMap<String, IoCounters>, StorageError> {
    let path = procfs.join("diskstats");
    let text = std::fs::read_to_string(&path).map_err(|source| StorageError::Read {
        path: path.clone(),
        source,
    })?;
    parse(&text).map_err(|message| StorageError::Parse {
        what: path.display().to_string(),
        message,
    })
}

/// Parses diskstats text with the diskstats collector's parser. Sector
/// counts near u64 wrap wrap rather than panic, as the kernel's own do.
pub fn parse(text: &str) -> Result<BTreeMap<String, IoCounters>, String> {
    Ok(crate::collectors::diskstats::parse(text)?
        .into_iter()
        .map(|d| {
            let s = &d.stats;
            let counters = IoCounters {
                reads_completed: s[0],
                read_bytes: s[2].wrapping_mul(SECTOR_BYTES),
                writes_completed: s[4],
                written_bytes: s[6].wrapping_mul(SECTOR_BYTES),
                io_time_ms: s[3].wrapping_add(s[7]),
            };
            (d.name.to_owned(), counters)
        })
        .collect())
}

/// Sets the counters of every device and LUN with a kernel device.
pub fn attach(stats: &BTreeMap<String, IoCounters>, inv: &mut StorageInventory) {
    for d in &mut inv.devices {
        d.io = d.kernel_device.as_ref().and_then(|k| stats.get(k)).copied();
    }
    for l in &mut inv.luns {
        l.io = l.kernel_device.as_ref().and_then(|k| stats.get(k)).copied();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_kernel_lines() {
        let text = "   7       0 loop0 120 0 960 30 5 0 80 10 0 40 40 0 0 0 0 0 0\n 253       2 dm-2 1 2 3 4 5 6 7 8 9 10 11\n";
        let s = super::parse(text).unwrap();
        assert_eq!(s["loop0"].reads_completed, 120);
        assert_eq!(s["loop0"].read_bytes, 960 * 512);
        assert_eq!(s["loop0"].written_bytes, 80 * 512);
        assert_eq!(s["loop0"].io_time_ms, 40);
        assert_eq!(s["dm-2"].writes_completed, 5);
        assert!(
            super::parse("8 0 sda 1 2\n")
                .unwrap_err()
                .contains("line 1")
        );
    }
}
