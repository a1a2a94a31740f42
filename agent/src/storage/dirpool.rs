//! Directory pools: a directory on a mounted file system is a device (its
//! capacity and use from statvfs), each regular image file in it a LUN
//! (its size, and the blocks really allocated, which differ for sparse
//! images). Hidden files (a move's partial copy) are not LUNs.

use std::{os::unix::fs::MetadataExt, path::Path};

use super::{Backend, StorageDevice, StorageError, StorageInventory, StorageLun};

/// Bytes per `st_blocks` unit, fixed by POSIX whatever the file system.
const STAT_BLOCK_BYTES: u64 = 512;
/// The group every directory pool is in: image files can be copied
/// between any two.
pub const POOL_GROUP: &str = "pools";

/// Reads pool `name` at `dir` into `inv`.
pub fn read(name: &str, dir: &Path, inv: &mut StorageInventory) -> Result<(), StorageError> {
    let read_err = |source: std::io::Error| StorageError::Read {
        path: dir.to_owned(),
        source,
    };
    let vfs = nix::sys::statvfs::statvfs(dir).map_err(|e| read_err(e.into()))?;
    let frsize = vfs.fragment_size() as u64;
    inv.devices.push(StorageDevice {
        id: name.to_owned(),
        backend: Backend::DirectoryPool,
        group: POOL_GROUP.to_owned(),
        capacity_bytes: vfs.blocks() as u64 * frsize,
        used_bytes: (vfs.blocks() as u64 - vfs.blocks_free() as u64) * frsize,
        kernel_device: None,
        io: None,
        rates: None,
    });
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(read_err)?
        .filter_map(Result::ok)
        .collect();
    files.sort_by_key(|e| e.file_name());
    for entry in files {
        let file = entry.file_name().to_string_lossy().into_owned();
        let Ok(meta) = entry.metadata() else { continue };
        if file.starts_with('.') || !meta.is_file() {
            continue;
        }
        inv.luns.push(StorageLun {
            id: file,
            backend: Backend::DirectoryPool,
            device: name.to_owned(),
            size_bytes: meta.len(),
            allocated_bytes: Some(meta.blocks() * STAT_BLOCK_BYTES),
            kernel_device: None,
            io: None,
            rates: None,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_luns_with_size_and_allocation() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("full.img"), vec![1u8; 1 << 20]).unwrap();
        let sparse = std::fs::File::create(dir.path().join("sparse.img")).unwrap();
        sparse.set_len(64 << 20).unwrap();
        std::fs::write(dir.path().join(".full.img.hyperwatch-partial"), b"x").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let mut inv = StorageInventory::default();
        read("fast", dir.path(), &mut inv).unwrap();
        assert_eq!(inv.devices[0].id, "fast");
        assert!(inv.devices[0].capacity_bytes >= inv.devices[0].used_bytes);
        let ids: Vec<&str> = inv.luns.iter().map(|l| l.id.as_str()).collect();
        assert_eq!(ids, ["full.img", "sparse.img"]);
        assert_eq!(inv.luns[0].size_bytes, 1 << 20);
        assert!(inv.luns[0].allocated_bytes.unwrap() >= 1 << 20);
        assert_eq!(inv.luns[1].size_bytes, 64 << 20);
        assert!(inv.luns[1].allocated_bytes.unwrap() < 1 << 20);
    }

    #[test]
    fn a_missing_pool_is_an_error_naming_it() {
        let err = read(
            "x",
            Path::new("/nonexistent-pool"),
            &mut StorageInventory::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("/nonexistent-pool"));
    }
}
