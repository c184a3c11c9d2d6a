//! The two ways the writer thread puts a group on disk: io_uring (linked
//! writev SQEs followed by an fdatasync SQE, one submission) and plain
//! `pwritev` + `fdatasync`.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// Most iovecs one `pwritev`/writev SQE takes (Linux `IOV_MAX`).
const IOV_MAX: usize = 1024;

/// Which path a store ended up on; reported by [`crate::LogStore::io_path`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoPath {
    /// Writes and fdatasync go through an io_uring.
    Uring,
    /// `pwritev` + `fdatasync` system calls.
    Sync,
}

impl std::fmt::Display for IoPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            IoPath::Uring => "io_uring",
            IoPath::Sync => "pwritev+fdatasync",
        })
    }
}

pub(crate) enum Sink {
    Sync,
    #[cfg(target_os = "linux")]
    Uring(Box<io_uring::IoUring>),
    /// Test-only wrapper that fails on demand: while the shared cell holds
    /// an errno, `ENOSPC` fails before writing and any other errno fails
    /// after writing, as a failed fdatasync would.
    #[cfg(test)]
    Faulty(Box<Sink>, std::sync::Arc<std::sync::atomic::AtomicI32>),
    /// Test-only wrapper counting the writes that asked for fdatasync.
    #[cfg(test)]
    CountingSyncs(Box<Sink>, std::sync::Arc<std::sync::atomic::AtomicU64>),
}

impl Sink {
    pub(crate) fn path(&self) -> IoPath {
        match self {
            Sink::Sync => IoPath::Sync,
            #[cfg(target_os = "linux")]
            Sink::Uring(_) => IoPath::Uring,
            #[cfg(test)]
            Sink::Faulty(inner, _) | Sink::CountingSyncs(inner, _) => inner.path(),
        }
    }

    /// Builds an io_uring sink if this kernel and sandbox allow one, with
    /// the opcodes the writer needs. The error says why not.
    #[cfg(target_os = "linux")]
    pub(crate) fn uring() -> io::Result<Sink> {
        use io_uring::{opcode, Probe};
        // Only the writer thread submits and reaps: let the kernel skip the
        // cross-thread completion signalling (kernel 6.1+), falling back to
        // a plain ring on older kernels.
        let ring = io_uring::IoUring::builder()
            .setup_coop_taskrun()
            .setup_single_issuer()
            .setup_defer_taskrun()
            .build(64)
            .or_else(|_| io_uring::IoUring::new(64))?;
        let mut probe = Probe::new();
        ring.submitter().register_probe(&mut probe)?;
        if !probe.is_supported(opcode::Writev::CODE) || !probe.is_supported(opcode::Fsync::CODE) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "kernel lacks writev/fsync ring opcodes",
            ));
        }
        Ok(Sink::Uring(Box::new(ring)))
    }

    #[cfg(not(target_os = "linux"))]
    pub(crate) fn uring() -> io::Result<Sink> {
        Err(io::Error::new(io::ErrorKind::Unsupported, "io_uring is Linux only"))
    }

    /// Writes `bufs` back to back at `off` and, if `sync`, makes them
    /// durable with fdatasync before returning.
    pub(crate) fn write(&mut self, file: &File, off: u64, bufs: &[&[u8]], sync: bool) -> io::Result<()> {
        match self {
            Sink::Sync => {
                pwritev_all(file, off, bufs)?;
                if sync {
                    fdatasync(file)?;
                }
                Ok(())
            }
            #[cfg(target_os = "linux")]
            Sink::Uring(ring) => uring_write(ring, file, off, bufs, sync),
            #[cfg(test)]
            Sink::Faulty(inner, errno) => match errno.load(std::sync::atomic::Ordering::SeqCst) {
                0 => inner.write(file, off, bufs, sync),
                libc::ENOSPC => Err(io::Error::from_raw_os_error(libc::ENOSPC)),
                other => {
                    inner.write(file, off, bufs, false)?;
                    Err(io::Error::from_raw_os_error(other))
                }
            },
            #[cfg(test)]
            Sink::CountingSyncs(inner, syncs) => {
                inner.write(file, off, bufs, sync)?;
                if sync {
                    syncs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                Ok(())
            }
        }
    }
}

fn fdatasync(file: &File) -> io::Result<()> {
    file.sync_data()
}

fn iovecs(bufs: &[&[u8]]) -> Vec<libc::iovec> {
    bufs.iter()
        .map(|b| libc::iovec {
            iov_base: b.as_ptr() as *mut libc::c_void,
            iov_len: b.len(),
        })
        .collect()
}

/// `pwritev` until every byte is written, resuming after short writes.
pub(crate) fn pwritev_all(file: &File, mut off: u64, bufs: &[&[u8]]) -> io::Result<()> {
    let mut rest: Vec<&[u8]> = bufs.iter().copied().filter(|b| !b.is_empty()).collect();
    let mut first = 0;
    while first < rest.len() {
        let chunk = &rest[first..rest.len().min(first + IOV_MAX)];
        let iov = iovecs(chunk);
        // SAFETY: every iovec points into a slice borrowed for this call and
        // the descriptor is owned by `file`.
        let n = unsafe {
            libc::pwritev(
                file.as_raw_fd(),
                iov.as_ptr(),
                iov.len() as libc::c_int,
                off as libc::off_t,
            )
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "pwritev wrote nothing"));
        }
        off += n as u64;
        advance(&mut rest, &mut first, n as usize);
    }
    Ok(())
}

/// Drops `n` written bytes from the front of `rest[first..]`.
fn advance(rest: &mut [&[u8]], first: &mut usize, mut n: usize) {
    while n > 0 && *first < rest.len() {
        let len = rest[*first].len();
        if n >= len {
            n -= len;
            *first += 1;
        } else {
            rest[*first] = &rest[*first][n..];
            n = 0;
        }
    }
}

#[cfg(target_os = "linux")]
fn uring_write(ring: &mut io_uring::IoUring, file: &File, off: u64, bufs: &[&[u8]], sync: bool) -> io::Result<()> {
    use io_uring::{opcode, squeue, types};
    let bufs: Vec<&[u8]> = bufs.iter().copied().filter(|b| !b.is_empty()).collect();
    let iov = iovecs(&bufs);
    let fd = types::Fd(file.as_raw_fd());
    let chunks: Vec<&[libc::iovec]> = iov.chunks(IOV_MAX).collect();
    let capacity = ring.params().sq_entries() as usize;
    if chunks.len() + 1 > capacity {
        // More than the ring holds in one go: write the plain way, stay correct.
        pwritev_all(file, off, &bufs)?;
        return if sync { fdatasync(file) } else { Ok(()) };
    }
    let mut expected = Vec::with_capacity(chunks.len());
    let mut at = off;
    {
        let mut sq = ring.submission();
        for (i, chunk) in chunks.iter().enumerate() {
            let len: usize = chunk.iter().map(|v| v.iov_len).sum();
            let last = i + 1 == chunks.len() && !sync;
            let mut entry = opcode::Writev::new(fd, chunk.as_ptr(), chunk.len() as u32)
                .offset(at)
                .build()
                .user_data(i as u64);
            if !last {
                entry = entry.flags(squeue::Flags::IO_LINK);
            }
            // SAFETY: the iovecs and the buffers they point to outlive the
            // submission: we wait below for every completion before returning.
            unsafe { sq.push(&entry) }.map_err(|_| io::Error::other("io_uring submission queue full"))?;
            expected.push(len);
            at += len as u64;
        }
        if sync {
            let entry = opcode::Fsync::new(fd)
                .flags(types::FsyncFlags::DATASYNC)
                .build()
                .user_data(u64::MAX);
            // SAFETY: the fsync entry references only the descriptor.
            unsafe { sq.push(&entry) }.map_err(|_| io::Error::other("io_uring submission queue full"))?;
        }
    }
    let total = chunks.len() + usize::from(sync);
    let mut done = 0;
    let mut written = vec![0i64; chunks.len()];
    let mut sync_result = 0i32;
    while done < total {
        match ring.submit_and_wait(total - done) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        for cqe in ring.completion() {
            done += 1;
            match cqe.user_data() {
                u64::MAX => sync_result = cqe.result(),
                i => written[i as usize] = cqe.result() as i64,
            }
        }
    }
    // A short or failed write cancels the rest of the chain (including the
    // fsync). Finish what is missing with plain calls, then sync.
    let mut incomplete = false;
    let mut at = off;
    for (i, want) in expected.iter().enumerate() {
        let got = written[i];
        if got < 0 && got != -(libc::ECANCELED as i64) {
            return Err(io::Error::from_raw_os_error(-got as i32));
        }
        if got != *want as i64 {
            incomplete = true;
            let done_bytes = got.max(0) as usize;
            let slices: Vec<&[u8]> = chunks[i]
                .iter()
                // SAFETY: each iovec was built from a live `&[u8]` above.
                .map(|v| unsafe { std::slice::from_raw_parts(v.iov_base as *const u8, v.iov_len) })
                .collect();
            let mut rest = slices;
            let mut first = 0;
            advance(&mut rest, &mut first, done_bytes);
            pwritev_all(file, at + done_bytes as u64, &rest[first..])?;
        }
        at += *want as u64;
    }
    if sync {
        if incomplete || sync_result == -libc::ECANCELED {
            fdatasync(file)?;
        } else if sync_result < 0 {
            return Err(io::Error::from_raw_os_error(-sync_result));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    fn check(mut sink: Sink) {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.path().join("f"))
            .expect("open");
        let many: Vec<Vec<u8>> = (0..2500u32).map(|i| i.to_le_bytes().to_vec()).collect();
        let bufs: Vec<&[u8]> = many.iter().map(|v| &v[..]).collect();
        sink.write(&file, 8, &bufs, true).expect("write");
        sink.write(&file, 8 + 4 * 2500, &[b"tail"], false).expect("write");
        let mut out = vec![0u8; 4 * 2500 + 4];
        file.read_exact_at(&mut out, 8).expect("read");
        assert_eq!(&out[..4 * 2500], &many.concat()[..]);
        assert_eq!(&out[4 * 2500..], b"tail");
    }

    #[test]
    fn sync_sink_writes_everything_in_order() {
        check(Sink::Sync);
    }

    #[test]
    fn uring_sink_writes_everything_in_order() {
        match Sink::uring() {
            Ok(sink) => check(sink),
            // The sandbox forbids rings: the store falls back, and the
            // fallback is covered above. Say so loudly rather than pass quietly.
            Err(e) if std::env::var_os("LOCKD_REQUIRE_URING").is_none() => {
                eprintln!("io_uring unavailable here ({e}); set LOCKD_REQUIRE_URING=1 to make this fatal")
            }
            Err(e) => panic!("io_uring required but unavailable: {e}"),
        }
    }
}
