//! The raw limit of the disk: `pwrite` + `fdatasync` in a tight loop on a
//! preallocated file, with nothing of the logstore in between.
//!
//! Each iteration appends `per_sync` records of `record_bytes` (packed into
//! one buffer, so one `pwrite`) and then calls `fdatasync`. The file is
//! preallocated with `fallocate` like a logstore segment (64 MiB) and, when
//! full, replaced by a fresh preallocated file — the same work a segment
//! roll does, minus the manifest — so a long run never rewrites blocks that
//! were already written (which would be cheaper than appending).

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::stats::{self, Latency};

/// Size each raw file is preallocated to: the logstore's default segment.
const FILE_SIZE: u64 = 64 << 20;

/// One configuration of the raw loop and what it achieved.
#[derive(Debug, Clone)]
pub(crate) struct RawResult {
    /// Bytes per record.
    pub record_bytes: usize,
    /// Records packed into each `pwrite` + `fdatasync`.
    pub per_sync: usize,
    /// fdatasyncs completed in the measured interval.
    pub syncs: u64,
    /// Length of the measured interval.
    pub elapsed: Duration,
    /// Latency of one `pwrite` + `fdatasync` iteration.
    pub latency: Latency,
}

impl RawResult {
    /// fdatasyncs per second.
    pub(crate) fn syncs_per_s(&self) -> f64 {
        stats::rate(self.syncs, self.elapsed)
    }

    /// Records made durable per second (`syncs/s × per_sync`).
    pub(crate) fn records_per_s(&self) -> f64 {
        self.syncs_per_s() * self.per_sync as f64
    }
}

/// An append-only file that replaces itself with a new preallocated one
/// when full.
struct RollingFile {
    dir: PathBuf,
    path: PathBuf,
    file: File,
    size: u64,
    off: u64,
    next_id: u64,
}

impl RollingFile {
    fn create(dir: &Path, size: u64) -> Result<RollingFile> {
        let (path, file) = new_file(dir, 0, size)?;
        Ok(RollingFile {
            dir: dir.to_path_buf(),
            path,
            file,
            size,
            off: 0,
            next_id: 1,
        })
    }

    /// Appends `buf` and makes it durable with fdatasync.
    fn append_sync(&mut self, buf: &[u8]) -> Result<()> {
        if self.off + buf.len() as u64 > self.size {
            self.roll()?;
        }
        self.file
            .write_all_at(buf, self.off)
            .map_err(|e| Error::io("pwrite", &self.path, e))?;
        self.file
            .sync_data()
            .map_err(|e| Error::io("fdatasync", &self.path, e))?;
        self.off += buf.len() as u64;
        Ok(())
    }

    fn roll(&mut self) -> Result<()> {
        let (path, file) = new_file(&self.dir, self.next_id, self.size)?;
        self.next_id += 1;
        let old = std::mem::replace(&mut self.path, path);
        self.file = file;
        self.off = 0;
        std::fs::remove_file(&old).map_err(|e| Error::io("remove", &old, e))
    }
}

impl Drop for RollingFile {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.path) {
            tracing::warn!(path = %self.path.display(), error = %e, "could not remove raw benchmark file");
        }
    }
}

/// Creates `raw-<id>.dat`, preallocates it and makes it and its directory
/// entry durable.
fn new_file(dir: &Path, id: u64, size: u64) -> Result<(PathBuf, File)> {
    let path = dir.join(format!("raw-{id:04}.dat"));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| Error::io("create", &path, e))?;
    // SAFETY: fallocate on a descriptor owned by `file`; mode 0 sets the size.
    let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, size as libc::off_t) };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS) => {
                file.set_len(size).map_err(|e| Error::io("set_len", &path, e))?
            }
            _ => return Err(Error::io("fallocate", &path, err)),
        }
    }
    file.sync_all().map_err(|e| Error::io("fsync", &path, e))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("fsync directory", dir, e))?;
    Ok((path, file))
}

/// A buffer of `n` records of `record_bytes` pseudo-random bytes.
fn payload(record_bytes: usize, n: usize) -> Vec<u8> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ ((record_bytes as u64) << 20) ^ (n as u64);
    (0..record_bytes * n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// Runs the raw loop in `dir`: `warmup` unmeasured, then `duration`
/// measured.
pub(crate) fn run(
    dir: &Path,
    record_bytes: usize,
    per_sync: usize,
    warmup: Duration,
    duration: Duration,
) -> Result<RawResult> {
    if record_bytes == 0 || per_sync == 0 {
        return Err(Error::Invalid(
            "raw loop needs records of at least 1 byte, at least 1 per sync".into(),
        ));
    }
    let buf = payload(record_bytes, per_sync);
    let size = FILE_SIZE.max(buf.len() as u64);
    let mut file = RollingFile::create(dir, size)?;
    let warm_end = Instant::now() + warmup;
    while Instant::now() < warm_end {
        file.append_sync(&buf)?;
    }
    let mut hist = stats::new_histogram()?;
    let start = Instant::now();
    let end = start + duration;
    let mut syncs = 0u64;
    loop {
        let t = Instant::now();
        if t >= end {
            break;
        }
        file.append_sync(&buf)?;
        stats::record(&mut hist, t.elapsed());
        syncs += 1;
    }
    Ok(RawResult {
        record_bytes,
        per_sync,
        syncs,
        elapsed: start.elapsed(),
        latency: Latency::of(&hist),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_run_rolls_and_cleans_up() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut f = RollingFile::create(dir.path(), 8192).expect("create");
        for _ in 0..5 {
            f.append_sync(&[7u8; 4096]).expect("append");
        }
        // 5 appends of 4 KiB into 8 KiB files: two rolls, the live file is the third.
        assert_eq!(f.next_id, 3);
        assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 1);
        drop(f);
        assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 0);
    }

    #[test]
    fn measures_something() {
        let dir = tempfile::tempdir().expect("tempdir");
        let r = run(dir.path(), 256, 8, Duration::ZERO, Duration::from_millis(50)).expect("run");
        assert!(r.syncs > 0);
        assert_eq!(r.latency.count, r.syncs);
        assert!((r.records_per_s() - r.syncs_per_s() * 8.0).abs() < 1e-6);
        assert!(run(dir.path(), 0, 8, Duration::ZERO, Duration::ZERO).is_err());
    }
}
