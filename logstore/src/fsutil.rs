//! Small file-system helpers with the error context the store needs.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Makes a directory entry change (create, rename, unlink) durable.
pub(crate) fn fsync_dir(dir: &Path) -> Result<()> {
    let f = File::open(dir).map_err(|e| Error::io("open dir", dir, e))?;
    f.sync_all().map_err(|e| Error::io("fsync dir", dir, e))
}

/// Writes `bytes` to `path` so that after a crash the file holds either its
/// old content or all of `bytes`: temp file, fsync, rename, fsync dir.
pub(crate) fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let dst = dir.join(name);
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(|e| Error::io("create", &tmp, e))?;
    f.write_all(bytes).map_err(|e| Error::io("write", &tmp, e))?;
    f.sync_all().map_err(|e| Error::io("fsync", &tmp, e))?;
    drop(f);
    std::fs::rename(&tmp, &dst).map_err(|e| Error::io("rename", &dst, e))?;
    fsync_dir(dir)
}

/// The exclusive lock that keeps a second process out of a store directory.
/// Held for as long as the value lives; the kernel drops it if we die.
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
}

impl DirLock {
    pub(crate) fn acquire(dir: &Path) -> Result<DirLock> {
        let path = dir.join("LOCK");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io("open", &path, e))?;
        // SAFETY: flock takes a valid open descriptor owned by `file`.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                return Err(Error::Locked(dir.to_path_buf()));
            }
            return Err(Error::io("flock", &path, err));
        }
        Ok(DirLock { _file: file })
    }
}

/// Reserves `len` bytes for `file` so that later appends inside that range
/// change no size metadata (the size is set once, here).
pub(crate) fn preallocate(file: &File, path: &Path, len: u64) -> Result<()> {
    // SAFETY: fallocate on a valid descriptor; mode 0 extends the file size.
    let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len as libc::off_t) };
    if rc == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    match err.raw_os_error() {
        // Filesystems without fallocate (some NFS, tmpfs variants): fall back
        // to setting the length, which still keeps appends size-neutral.
        Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS) => file.set_len(len).map_err(|e| Error::io("set_len", path, e)),
        _ => Err(Error::io("fallocate", path, err)),
    }
}

/// Network filesystems on which io_uring's durability semantics are not
/// something to bet data on; the store uses the plain write path there.
pub(crate) fn network_filesystem(dir: &Path) -> Option<&'static str> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let c = CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statfs writes into the zeroed struct we own; the path is a
    // valid NUL-terminated string.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: see above.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    const NFS: i64 = 0x6969;
    const SMB: i64 = 0x517B;
    const CIFS: i64 = 0xFF53_4D42_u32 as i64;
    const SMB2: i64 = 0xFE53_4D42_u32 as i64;
    #[allow(clippy::unnecessary_cast)]
    let magic = st.f_type as i64;
    match magic {
        NFS => Some("nfs"),
        SMB | CIFS | SMB2 => Some("smb/cifs"),
        _ => None,
    }
}

/// Path of a file inside the store directory, for error messages.
pub(crate) fn in_dir(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}
