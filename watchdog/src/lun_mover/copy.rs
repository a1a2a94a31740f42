//! The file mover's copy: chunked, SHA-256 hashed on the way, throttled to
//! a byte rate so a move does not starve the LUNs that stay, cancellable
//! between chunks, and fsynced before it counts.

use std::{
    fs::{File, OpenOptions},
    io::{Read, Write},
    path::Path,
    thread,
    time::{Duration, Instant},
};

use sha2::{Digest, Sha256};

use super::{Cancel, MoveError};

/// Bytes per read and write: large enough for sequential throughput, small
/// enough that cancel and the throttle react within milliseconds.
pub const CHUNK_BYTES: usize = 1 << 20;

/// Copies `src` to a new file `dst` (which must not exist) and returns the
/// source's SHA-256 as read during the copy. `dst` is fsynced.
pub fn copy_hashed(
    src: &Path,
    dst: &Path,
    max_bytes_per_second: Option<u64>,
    cancel: &Cancel,
) -> Result<String, MoveError> {
    let mut input = File::open(src).map_err(MoveError::io("opening", src))?;
    let mut output = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(dst)
        .map_err(MoveError::io("creating", dst))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK_BYTES];
    let started = Instant::now();
    let mut copied: u64 = 0;
    loop {
        if cancel.is_cancelled() {
            return Err(MoveError::Cancelled);
        }
        let n = input
            .read(&mut buf)
            .map_err(MoveError::io("reading", src))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        output
            .write_all(&buf[..n])
            .map_err(MoveError::io("writing", dst))?;
        copied += n as u64;
        if let Some(rate) = max_bytes_per_second.filter(|r| *r > 0) {
            let due = Duration::from_secs_f64(copied as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                thread::sleep(wait);
            }
        }
    }
    output.sync_all().map_err(MoveError::io("syncing", dst))?;
    Ok(hex(&hasher.finalize()))
}

/// The SHA-256 of a file's contents, in hex.
pub fn sha256_file(path: &Path) -> Result<String, MoveError> {
    let mut input = File::open(path).map_err(MoveError::io("opening", path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK_BYTES];
    loop {
        let n = input
            .read(&mut buf)
            .map_err(MoveError::io("reading", path))?;
        if n == 0 {
            return Ok(hex(&hasher.finalize()));
        }
        hasher.update(&buf[..n]);
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_and_hashes_and_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let (src, dst) = (dir.path().join("a"), dir.path().join("b"));
        let data: Vec<u8> = (0..3 * CHUNK_BYTES + 17)
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        std::fs::write(&src, &data).unwrap();
        let sum = copy_hashed(&src, &dst, None, &Cancel::default()).unwrap();
        assert_eq!(std::fs::read(&dst).unwrap(), data);
        assert_eq!(sum, sha256_file(&dst).unwrap());
        assert!(copy_hashed(&src, &dst, None, &Cancel::default()).is_err());
    }

    #[test]
    fn the_throttle_holds_the_rate() {
        let dir = tempfile::tempdir().unwrap();
        let (src, dst) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&src, vec![1u8; 2 * CHUNK_BYTES]).unwrap();
        let start = Instant::now();
        copy_hashed(&src, &dst, Some(8 * CHUNK_BYTES as u64), &Cancel::default()).unwrap();
        // 2 MiB at 8 MiB/s takes at least a quarter second.
        assert!(
            start.elapsed() >= Duration::from_millis(240),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn a_cancelled_copy_stops() {
        let dir = tempfile::tempdir().unwrap();
        let (src, dst) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&src, vec![1u8; CHUNK_BYTES]).unwrap();
        let cancel = Cancel::default();
        cancel.cancel();
        assert!(matches!(
            copy_hashed(&src, &dst, None, &cancel),
            Err(MoveError::Cancelled)
        ));
    }
}
