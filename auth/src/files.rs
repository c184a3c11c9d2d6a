//! Where bundles live and how they are written.
//!
//! Bundles hold private keys, so they are created 0600 in a 0700
//! directory and never exist, even briefly, with wider permissions or
//! half written: a bundle is written to a temporary file beside its final
//! name, flushed, and renamed into place, and the directory is flushed so
//! the rename survives a crash. A reader (a server watching its bundle
//! for denylist changes) therefore sees either the old file or the new
//! one.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use crate::{AuthError, Result};

/// Name of the per-user directory under `$HOME`.
pub const DIR_NAME: &str = ".lockd";

/// Where lockd keeps its bundles for the user whose home is `home`.
pub fn default_dir(home: &Path) -> PathBuf {
    home.join(DIR_NAME)
}

/// Creates `dir` and any missing parents with mode 0700; directories
/// that already exist keep their mode.
pub fn create_private_dir(dir: &Path) -> Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .map_err(|e| AuthError::io("create directory", dir, e))
}

fn exists(path: &Path) -> bool {
    // A dangling symlink still occupies the name.
    fs::symlink_metadata(path).is_ok()
}

/// The directory a file lives in (`.` for a bare file name).
fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// A temporary name beside `path` that no one else is using: hidden, so
/// globs such as `server*.pem` never pick it up.
fn temp_name(path: &Path) -> Result<PathBuf> {
    let name = path
        .file_name()
        .ok_or_else(|| AuthError::io("write", path, ErrorKind::InvalidInput.into()))?;
    let mut salt = [0u8; 6];
    getrandom::fill(&mut salt).map_err(|e| AuthError::Generate(format!("no randomness: {e}")))?;
    let salt: String = salt.iter().map(|b| format!("{b:02x}")).collect();
    Ok(parent_of(path).join(format!(".{}.{}-{salt}.tmp", name.to_string_lossy(), std::process::id())))
}

/// Creates `tmp` with mode 0600 and writes and flushes `contents`.
fn write_temp(tmp: &Path, contents: &str) -> Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(tmp).map_err(|e| AuthError::io("create", tmp, e))?;
    // The umask can only take bits away; set 0600 exactly anyway so the
    // result does not depend on it.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(|e| AuthError::io("chmod", tmp, e))?;
    }
    file.write_all(contents.as_bytes())
        .map_err(|e| AuthError::io("write", tmp, e))?;
    file.sync_all().map_err(|e| AuthError::io("sync", tmp, e))
}

/// Moves the finished `tmp` to `path`. Without `force` the move must not
/// replace anything, which a hard link guarantees even against another
/// process creating `path` meanwhile; file systems without hard links
/// fall back to checking first.
fn install(tmp: &Path, path: &Path, force: bool) -> Result<()> {
    if force {
        return fs::rename(tmp, path).map_err(|e| AuthError::io("rename into place", path, e));
    }
    match fs::hard_link(tmp, path) {
        Ok(()) => {
            let _ = fs::remove_file(tmp);
            Ok(())
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Err(AuthError::Exists(path.to_path_buf())),
        Err(_) => {
            if exists(path) {
                return Err(AuthError::Exists(path.to_path_buf()));
            }
            fs::rename(tmp, path).map_err(|e| AuthError::io("rename into place", path, e))
        }
    }
}

/// Writes a file that holds secrets: mode 0600, atomically, durably.
///
/// Refuses with [`AuthError::Exists`] when `path` exists and `force` is
/// false, so `lockd auth new` never overwrites a key by accident. Missing
/// parent directories are created with mode 0700.
pub fn write_private(path: &Path, contents: &str, force: bool) -> Result<()> {
    if !force && exists(path) {
        return Err(AuthError::Exists(path.to_path_buf()));
    }
    let dir = parent_of(path);
    create_private_dir(dir)?;
    let tmp = temp_name(path)?;
    let result = write_temp(&tmp, contents).and_then(|()| install(&tmp, path, force));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    // Make the new directory entry durable too.
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| AuthError::io("sync directory", dir, e))
}

/// The first free name for a new bundle: `<stem>.pem`, then
/// `<stem>02.pem`, `<stem>03.pem`, ..., so issuing another client never
/// overwrites an existing one and the names still sort in issue order.
pub fn next_free(dir: &Path, stem: &str) -> PathBuf {
    let first = dir.join(format!("{stem}.pem"));
    if !exists(&first) {
        return first;
    }
    let mut n: u64 = 2;
    loop {
        let candidate = dir.join(format!("{stem}{n:02}.pem"));
        if !exists(&candidate) {
            return candidate;
        }
        n += 1;
    }
}

/// The files in `dir` named `<prefix>*.pem`, sorted by name. A missing
/// directory has none.
fn matching(dir: &Path, prefix: &str) -> Result<Vec<PathBuf>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(AuthError::io("read directory", dir, e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| AuthError::io("read directory", dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        let path = entry.path();
        if name.starts_with(prefix) && name.ends_with(".pem") && path.is_file() {
            found.push(path);
        }
    }
    found.sort();
    Ok(found)
}

/// Every server bundle (`server*.pem`) in `dir`, sorted: the files
/// `lockd auth revoke` updates. A missing directory has none.
pub fn server_bundles(dir: &Path) -> Result<Vec<PathBuf>> {
    matching(dir, "server")
}

/// The client bundle a client uses when none is named: `client.pem` if
/// present, else the first `client*.pem` by name, else `None` (also when
/// `dir` does not exist, so callers can fall back or explain).
pub fn discover_client_bundle(dir: &Path) -> Result<Option<PathBuf>> {
    let plain = dir.join("client.pem");
    if plain.is_file() {
        return Ok(Some(plain));
    }
    Ok(matching(dir, "client")?.into_iter().next())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(path).expect("metadata").permissions().mode() & 0o777
    }

    #[test]
    fn writes_private_files_and_refuses_to_clobber() {
        let home = tempfile::tempdir().expect("tempdir");
        let dir = default_dir(home.path());
        assert_eq!(dir, home.path().join(".lockd"));
        let path = dir.join("nested").join("ca.pem");
        write_private(&path, "first", false).expect("write");
        assert_eq!(fs::read_to_string(&path).expect("read"), "first");
        #[cfg(unix)]
        {
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(&dir), 0o700);
            assert_eq!(mode(&dir.join("nested")), 0o700);
        }
        let err = write_private(&path, "second", false).expect_err("exists");
        assert!(matches!(err, AuthError::Exists(ref p) if p == &path), "{err}");
        assert_eq!(fs::read_to_string(&path).expect("read"), "first", "untouched");
        write_private(&path, "second", true).expect("forced");
        assert_eq!(fs::read_to_string(&path).expect("read"), "second");
        #[cfg(unix)]
        assert_eq!(mode(&path), 0o600);
        // No temporary files are left behind.
        let names: Vec<_> = fs::read_dir(dir.join("nested"))
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("ca.pem")]);
    }

    #[cfg(unix)]
    #[test]
    fn forcing_replaces_a_world_readable_file_with_a_private_one() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("server.pem");
        fs::write(&path, "old").expect("write");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
        write_private(&path, "new", true).expect("forced");
        assert_eq!(mode(&path), 0o600);
    }

    #[test]
    fn next_free_counts_up() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(next_free(dir.path(), "client"), dir.path().join("client.pem"));
        fs::write(dir.path().join("client.pem"), "").expect("write");
        assert_eq!(next_free(dir.path(), "client"), dir.path().join("client02.pem"));
        fs::write(dir.path().join("client02.pem"), "").expect("write");
        fs::write(dir.path().join("client04.pem"), "").expect("write");
        assert_eq!(next_free(dir.path(), "client"), dir.path().join("client03.pem"));
    }

    #[test]
    fn finds_server_and_client_bundles() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("missing");
        assert_eq!(discover_client_bundle(&missing).expect("missing dir"), None);
        assert!(server_bundles(&missing).expect("missing dir").is_empty());

        for name in [
            "server02.pem",
            "server.pem",
            "server.pem.bak",
            "ca.pem",
            "clientb.pem",
            "clienta.pem",
        ] {
            fs::write(dir.path().join(name), "").expect("write");
        }
        fs::create_dir(dir.path().join("server-dir.pem")).expect("mkdir");
        assert_eq!(
            server_bundles(dir.path()).expect("list"),
            vec![dir.path().join("server.pem"), dir.path().join("server02.pem")]
        );
        assert_eq!(
            discover_client_bundle(dir.path()).expect("found"),
            Some(dir.path().join("clienta.pem"))
        );
        fs::write(dir.path().join("client.pem"), "").expect("write");
        assert_eq!(
            discover_client_bundle(dir.path()).expect("found"),
            Some(dir.path().join("client.pem"))
        );
        let empty = tempfile::tempdir().expect("tempdir");
        assert_eq!(discover_client_bundle(empty.path()).expect("none"), None);
    }
}
