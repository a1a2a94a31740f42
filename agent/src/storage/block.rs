//! Plain block devices: a configured disk under /sys/block is a device of
//! its size, its partitions are its LUNs, and what they cover is its use.

use std::path::Path;

use super::{Backend, StorageDevice, StorageError, StorageInventory, StorageLun};

/// /sys/block sizes count 512-byte sectors whatever the device's own.
const SYSFS_SECTOR_BYTES: u64 = 512;
/// The group of plain block devices.
pub const BLOCK_GROUP: &str = "block";

fn sectors(path: &Path) -> Result<u64, StorageError> {
    let text = std::fs::read_to_string(path).map_err(|source| StorageError::Read {
        path: path.to_owned(),
        source,
    })?;
    text.trim().parse().map_err(|e| StorageError::Parse {
        what: path.display().to_string(),
        message: format!("{e}"),
    })
}

/// Reads block device `name` (e.g. `sdb`) from `sysfs` into `inv`.
pub fn read(sysfs: &Path, name: &str, inv: &mut StorageInventory) -> Result<(), StorageError> {
    let dir = sysfs.join("block").join(name);
    let capacity = sectors(&dir.join("size"))? * SYSFS_SECTOR_BYTES;
    let mut parts: Vec<String> = std::fs::read_dir(&dir)
        .map_err(|source| StorageError::Read {
            path: dir.clone(),
            source,
        })?
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|p| p.starts_with(name) && dir.join(p).join("partition").exists())
        .collect();
    parts.sort();
    let mut used = 0;
    for p in parts {
        let size = sectors(&dir.join(&p).join("size"))? * SYSFS_SECTOR_BYTES;
        used += size;
        inv.luns.push(StorageLun {
            id: p.clone(),
            backend: Backend::Block,
            device: name.to_owned(),
            size_bytes: size,
            allocated_bytes: Some(size),
            kernel_device: Some(p),
            io: None,
            rates: None,
        });
    }
    inv.devices.push(StorageDevice {
        id: name.to_owned(),
        backend: Backend::Block,
        group: BLOCK_GROUP.to_owned(),
        capacity_bytes: capacity,
        used_bytes: used,
        kernel_device: Some(name.to_owned()),
        io: None,
        rates: None,
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_disk_and_its_partitions_from_a_sysfs_tree() {
        let sys = tempfile::tempdir().unwrap();
        let disk = sys.path().join("block/vdb");
        for (p, size) in [("vdb1", "2048"), ("vdb2", "4096")] {
            std::fs::create_dir_all(disk.join(p)).unwrap();
            std::fs::write(disk.join(p).join("size"), size).unwrap();
            std::fs::write(disk.join(p).join("partition"), "1").unwrap();
        }
        std::fs::create_dir_all(disk.join("queue")).unwrap();
        std::fs::write(disk.join("size"), "20480\n").unwrap();
        let mut inv = StorageInventory::default();
        read(sys.path(), "vdb", &mut inv).unwrap();
        assert_eq!(inv.devices[0].capacity_bytes, 20480 * 512);
        assert_eq!(inv.devices[0].used_bytes, 6144 * 512);
        assert_eq!(inv.luns.len(), 2);
        assert_eq!(inv.luns[1].id, "vdb2");
        assert!(
            read(sys.path(), "vdz", &mut inv)
                .unwrap_err()
                .to_string()
                .contains("vdz")
        );
    }
}
