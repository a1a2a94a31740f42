//! The `file` mover: moves a disk image file between directory pools.
//!
//! Consumers (a VM's disk definition) open the LUN through a stable name,
//! `<links>/<lun>`, a symlink to the image in its pool. A move copies the
//! image into the destination pool under a hidden partial name, fsyncs it,
//! drops it from the page cache and reads it back to check its SHA-256
//! against the source's, renames it into place, and only then switches the
//! symlink with an atomic rename. The source is removed after the switch is
//! durable. So the link always points at a whole image: the source until
//! the switch, the verified copy after it.
//!
//! The image must not be written while it moves (the VM paused or its disk
//! detached): a source whose size or modification time changes during the
//! copy fails the move, and the copy is discarded.

use std::{
    collections::BTreeMap,
    fs,
    os::unix::fs::symlink,
    path::{Path, PathBuf},
};

use serde::Deserialize;

use super::{
    Cancel, LunMover, MoveError, MoveOrder, Recovered,
    copy::{copy_hashed, sha256_file},
    journal::{Journal, Phase, sync_dir},
};

/// The file mover's configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileMoverConfig {
    /// Pools by name (the names the inventory uses as device ids): the
    /// directory holding each pool's image files.
    pub pools: BTreeMap<String, PathBuf>,
    /// Directory of the names consumers open: `<links>/<lun>` is a symlink
    /// to the LUN's image in its pool.
    pub links: PathBuf,
    /// Copy rate limit in bytes per second; unset: as fast as the disks go.
    #[serde(default)]
    pub max_bytes_per_second: Option<u64>,
}

/// Moves image files between directory pools.
pub struct FileMover {
    config: FileMoverConfig,
}

/// Every path one move touches.
struct Paths {
    src: PathBuf,
    dst: PathBuf,
    partial: PathBuf,
    link: PathBuf,
    link_tmp: PathBuf,
}

impl FileMover {
    pub fn new(config: FileMoverConfig) -> Self {
        Self { config }
    }

    fn paths(&self, order: &MoveOrder) -> Result<Paths, MoveError> {
        let refuse = |message: String| MoveError::Refused {
            lun: order.lun.clone(),
            message,
        };
        let lun = order.lun.as_str();
        if lun.is_empty() || lun == "." || lun == ".." || lun.contains('/') || lun.contains('\0') {
            return Err(refuse("a file LUN is a plain file name in its pool".into()));
        }
        let pool = |name: &str| {
            self.config
                .pools
                .get(name)
                .ok_or_else(|| refuse(format!("pool {name:?} is not configured")))
        };
        let (from, to) = (pool(&order.from)?, pool(&order.to)?);
        Ok(Paths {
            src: from.join(lun),
            dst: to.join(lun),
            partial: to.join(format!(".{lun}.hyperwatch-partial")),
            link: self.config.links.join(lun),
            link_tmp: self.config.links.join(format!(".{lun}.hyperwatch-link")),
        })
    }

    /// Points the consumers' link at the destination, atomically and
    /// durably.
    fn switch(&self, p: &Paths) -> Result<(), MoveError> {
        remove_if_present(&p.link_tmp)?;
        symlink(&p.dst, &p.link_tmp).map_err(MoveError::io("creating link", &p.link_tmp))?;
        fs::rename(&p.link_tmp, &p.link).map_err(MoveError::io("switching link", &p.link))?;
        sync_dir(&self.config.links)
    }

    /// Removes the source once consumers no longer find it.
    fn release(&self, p: &Paths) -> Result<(), MoveError> {
        remove_if_present(&p.src)?;
        sync_dir(parent(&p.src))
    }
}

impl LunMover for FileMover {
    fn name(&self) -> &'static str {
        "file"
    }

    fn describe(&self, order: &MoveOrder) -> String {
        match self.paths(order) {
            Ok(p) => format!(
                "copy {} to {}, verify sha256, point {} at it, remove the source",
                p.src.display(),
                p.dst.display(),
                p.link.display()
            ),
            Err(e) => format!("cannot move: {e}"),
        }
    }

    fn run(
        &self,
        order: &MoveOrder,
        journal: &mut Journal,
        cancel: &Cancel,
    ) -> Result<(), MoveError> {
        let p = self.paths(order)?;
        let refuse = |message: String| MoveError::Refused {
            lun: order.lun.clone(),
            message,
        };
        let target = fs::read_link(&p.link).map_err(MoveError::io("reading link", &p.link))?;
        if target != p.src {
            return Err(refuse(format!(
                "consumers find it at {}, not in pool {}",
                target.display(),
                order.from
            )));
        }
        if p.dst.exists() || p.partial.exists() {
            return Err(refuse(format!(
                "{} or its partial copy already exists",
                p.dst.display()
            )));
        }
        let before = fs::metadata(&p.src).map_err(MoveError::io("reading", &p.src))?;
        let free = free_bytes(parent(&p.dst))?;
        if free < before.len() {
            return Err(refuse(format!(
                "pool {} has {free} bytes free, the image needs {}",
                order.to,
                before.len()
            )));
        }

        journal.advance(Phase::Copying, &[])?;
        let sum = copy_hashed(&p.src, &p.partial, self.config.max_bytes_per_second, cancel)?;
        let after = fs::metadata(&p.src).map_err(MoveError::io("reading", &p.src))?;
        if after.len() != before.len() || after.modified().ok() != before.modified().ok() {
            return Err(refuse(
                "the image changed while it was copied; pause or detach its consumer".into(),
            ));
        }
        drop_cached(&p.partial)?;
        let copy = sha256_file(&p.partial)?;
        if copy != sum {
            return Err(MoveError::Mismatch {
                lun: order.lun.clone(),
                path: p.partial.clone(),
                copy,
                source_sum: sum,
            });
        }
        fs::rename(&p.partial, &p.dst).map_err(MoveError::io("renaming copy to", &p.dst))?;
        sync_dir(parent(&p.dst))?;
        journal.advance(Phase::Copied, &[("sha256", &sum)])?;

        self.switch(&p)?;
        journal.advance(Phase::Switched, &[])?;
        self.release(&p)
    }

    fn recover(&self, journal: &mut Journal) -> Result<Recovered, MoveError> {
        let record = journal.record().clone();
        let order = &record.order;
        let p = self.paths(order)?;
        remove_if_present(&p.link_tmp)?;
        let target = fs::read_link(&p.link).map_err(MoveError::io("reading link", &p.link))?;
        if target == p.dst {
            // Switched: consumers use the copy; the source only needs to go.
            remove_if_present(&p.partial)?;
            self.release(&p)?;
            return Ok(Recovered::Finished);
        }
        if target != p.src {
            return Err(MoveError::Refused {
                lun: order.lun.clone(),
                message: format!(
                    "its link {} points at {}, neither source nor destination; left for the operator",
                    p.link.display(),
                    target.display()
                ),
            });
        }
        // The source is the LUN. A verified copy is finished forward;
        // anything less is removed (the move checked that neither the copy
        // nor its partial existed before it started copying).
        if record.phase == Phase::Copied
            && let Some(sum) = record.facts.get("sha256")
            && p.dst.exists()
            && sha256_file(&p.dst)? == *sum
        {
            self.switch(&p)?;
            journal.advance(Phase::Switched, &[])?;
            self.release(&p)?;
            return Ok(Recovered::Finished);
        }
        remove_if_present(&p.partial)?;
        if record.phase >= Phase::Copying {
            remove_if_present(&p.dst)?;
        }
        sync_dir(parent(&p.dst))?;
        Ok(Recovered::RolledBack)
    }
}

fn parent(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new("."))
}

fn remove_if_present(path: &Path) -> Result<(), MoveError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(MoveError::io("removing", path)(e))
        }
        _ => Ok(()),
    }
}

/// Bytes an unprivileged writer may still use on the file system of `dir`.
fn free_bytes(dir: &Path) -> Result<u64, MoveError> {
    let s = nix::sys::statvfs::statvfs(dir)
        .map_err(|e| MoveError::io("statvfs", dir)(std::io::Error::from(e)))?;
    Ok(s.blocks_available() as u64 * s.fragment_size() as u64)
}

/// Drops a file's pages from the page cache, so reading it back checks
/// what reached the disk rather than what is still in memory.
fn drop_cached(path: &Path) -> Result<(), MoveError> {
    let f = fs::File::open(path).map_err(MoveError::io("opening", path))?;
    nix::fcntl::posix_fadvise(
        &f,
        0,
        0,
        nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
    )
    .map_err(|e| MoveError::io("dropping cached pages of", path)(std::io::Error::from(e)))
}

#[cfg(test)]
#[path = "file_tests.rs"]
mod tests;
