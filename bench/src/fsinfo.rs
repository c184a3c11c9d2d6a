//! What filesystem a directory is on (a benchmark of fdatasync on tmpfs
//! measures memory, not a disk, and must say so) and which kernel runs.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::error::{Error, Result};

/// The filesystem under a directory, as far as `statfs` tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FsInfo {
    /// A short name (`ext4`, `xfs`, `tmpfs`, …) or the magic number in hex.
    pub name: String,
    /// True when fdatasync cannot reach stable storage (tmpfs, ramfs): the
    /// numbers then say nothing about durability cost.
    pub volatile: bool,
}

/// Looks up the filesystem `dir` lives on.
pub(crate) fn probe(dir: &Path) -> Result<FsInfo> {
    let c = CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| Error::Invalid(format!("{} contains a NUL byte", dir.display())))?;
    // SAFETY: an all-zero statfs is a valid value for the kernel to fill in.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a struct we own.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return Err(Error::io("statfs", dir, std::io::Error::last_os_error()));
    }
    #[allow(clippy::unnecessary_cast)] // f_type's width differs between targets
    Ok(classify(st.f_type as i64))
}

/// Names a `statfs` magic number.
pub(crate) fn classify(magic: i64) -> FsInfo {
    let (name, volatile) = match magic as u32 {
        0xEF53 => ("ext2/3/4", false),
        0x5846_5342 => ("xfs", false),
        0x9123_683E => ("btrfs", false),
        0x2FC1_2FC1 => ("zfs", false),
        0xF2F5_2010 => ("f2fs", false),
        0x794C_7630 => ("overlayfs", false),
        0x6969 => ("nfs", false),
        0x6573_5546 => ("fuse", false),
        0x0102_1994 => ("tmpfs", true),
        0x8584_58F6 => ("ramfs", true),
        other => {
            return FsInfo {
                name: format!("0x{other:x}"),
                volatile: false,
            }
        }
    };
    FsInfo {
        name: name.to_string(),
        volatile,
    }
}

/// The running kernel's release (`uname -r`), if `uname` answers.
pub(crate) fn kernel_release() -> Option<String> {
    // SAFETY: an all-zero utsname is a valid value for the kernel to fill in.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a struct we own.
    if unsafe { libc::uname(&mut u) } != 0 {
        return None;
    }
    #[allow(clippy::unnecessary_cast)] // c_char is i8 or u8 depending on the target
    let bytes: Vec<u8> = u.release.iter().take_while(|c| **c != 0).map(|c| *c as u8).collect();
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_volatility() {
        assert_eq!(classify(0xEF53).name, "ext2/3/4");
        assert!(classify(0x0102_1994).volatile);
        assert!(!classify(0x5846_5342).volatile);
        assert_eq!(classify(0x1234).name, "0x1234");
    }

    #[test]
    fn probes_the_current_directory() {
        let info = probe(Path::new(".")).expect("statfs of .");
        assert!(!info.name.is_empty());
        assert!(kernel_release().is_some_and(|r| !r.is_empty()));
    }
}
