//! `lockd verify store` and the same checks at start-up: is the configured
//! store usable, and can every record in it be read back?
//!
//! Three checks, each reported on its own line:
//! * **permissions**: the data directory is a directory we can write, and
//!   neither group nor others can write it (they could swap files under
//!   the server);
//! * **round trip**: a probe value is written durably, read back, compared
//!   and deleted, under the reserved `v/` prefix of the log that no lockd
//!   namespace maps to, so no user key is touched;
//! * **records**: existing records are read back, which checks their CRC
//!   and, on an encrypted store, authenticates and decrypts them. A
//!   tampered or damaged value fails here, naming its key.
//!
//! The logstore has no read-only mode, and it holds an exclusive lock on
//! its directory: the command opens the store like the server does (so it
//! cannot run next to a live server, and it says so) and changes nothing
//! but its own probe key.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use lockd_logstore::{Batch, LogStore};

/// How many records the start-up check reads (the command reads all).
pub(crate) const STARTUP_RECORD_LIMIT: usize = 1000;

/// Prefix of the probe key: outside `m/` and `d/`, which hold lockd's
/// metadata and documents.
const PROBE_PREFIX: &str = "v/verify-store/";

/// One check's outcome.
#[derive(Debug)]
pub(crate) struct Check {
    /// The check's name.
    pub(crate) name: &'static str,
    /// `Ok(what was seen)` or `Err(why it failed)`.
    pub(crate) outcome: Result<String, String>,
}

/// Every check's outcome, in order.
#[derive(Debug, Default)]
pub(crate) struct Report {
    /// The checks.
    pub(crate) checks: Vec<Check>,
}

impl Report {
    /// Whether every check passed.
    pub(crate) fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.outcome.is_ok())
    }

    /// The failures, joined on one line (for a start-up error).
    pub(crate) fn failures(&self) -> String {
        self.checks
            .iter()
            .filter_map(|c| c.outcome.as_ref().err().map(|e| format!("{}: {e}", c.name)))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for c in &self.checks {
            match &c.outcome {
                Ok(seen) => writeln!(f, "ok   {}: {seen}", c.name)?,
                Err(why) => writeln!(f, "FAIL {}: {why}", c.name)?,
            }
        }
        Ok(())
    }
}

/// Runs the checks on `store`, opened from `dir`. `limit` bounds how many
/// records are read back (`None`: all of them).
pub(crate) fn run(store: &LogStore, dir: &Path, limit: Option<usize>) -> Report {
    Report {
        checks: vec![
            Check {
                name: "permissions",
                outcome: permissions(dir),
            },
            Check {
                name: "round trip",
                outcome: round_trip(store),
            },
            Check {
                name: "records",
                outcome: records(store, limit),
            },
        ],
    }
}

fn permissions(dir: &Path) -> Result<String, String> {
    let meta = std::fs::metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if !meta.is_dir() {
        return Err(format!("{} is not a directory", dir.display()));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o022 != 0 {
        return Err(format!(
            "{} has mode {mode:04o}: group or others can write it (chmod 700 it)",
            dir.display()
        ));
    }
    Ok(format!("{} is a directory with mode {mode:04o}", dir.display()))
}

fn round_trip(store: &LogStore) -> Result<String, String> {
    let key = format!("{PROBE_PREFIX}{}", lockd_actors::ids::new_uuid_v7());
    let value = format!("lockd verify store probe {key}");
    let mut put = Batch::new();
    put.put(key.clone(), value.clone());
    store.commit(put).map_err(|e| format!("write: {e}"))?;
    let read = store
        .get(key.as_bytes())
        .map_err(|e| format!("read back: {e}"))?
        .ok_or("read back: the probe is missing after a durable write")?
        .value
        .to_bytes()
        .map_err(|e| format!("read back: {e}"))?;
    let mut delete = Batch::new();
    delete.delete(key.clone());
    store.commit(delete).map_err(|e| format!("delete: {e}"))?;
    if read.as_ref() != value.as_bytes() {
        return Err("read back: the probe came back different from what was written".into());
    }
    if store.get(key.as_bytes()).map_err(|e| format!("delete: {e}"))?.is_some() {
        return Err("delete: the probe is still there after a durable delete".into());
    }
    Ok("wrote, read back and deleted a probe (fdatasync'd)".into())
}

fn records(store: &LogStore, limit: Option<usize>) -> Result<String, String> {
    let max = limit.unwrap_or(usize::MAX);
    let mut checked = 0usize;
    let mut bytes = 0u64;
    let mut after: Option<bytes::Bytes> = None;
    'pages: loop {
        let page = store.scan_keys(b"", after.as_deref(), 1024);
        let Some((last, _)) = page.last() else { break };
        after = Some(last.clone());
        for (key, _) in page {
            if checked >= max {
                break 'pages;
            }
            let name = String::from_utf8_lossy(&key).into_owned();
            let Some(entry) = store.get(&key).map_err(|e| format!("{name}: {e}"))? else {
                continue;
            };
            let mut reader = entry.value.reader().map_err(|e| format!("{name}: {e}"))?;
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => bytes += n as u64,
                    Err(e) => return Err(format!("{name}: {e}")),
                }
            }
            checked += 1;
        }
    }
    let scope = match limit {
        Some(n) if checked >= n => format!(" (the first {n}; `lockd verify store` reads them all)"),
        _ => String::new(),
    };
    Ok(format!("{checked} records ({bytes} bytes) read back intact{scope}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_healthy_store_passes_and_keeps_no_probe() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).expect("chmod");
        let store = LogStore::open(dir.path(), lockd_logstore::Options::default()).expect("open");
        let mut b = Batch::new();
        b.put("m/default/a", "x");
        store.commit(b).expect("commit");
        let report = run(&store, dir.path(), None);
        assert!(report.passed(), "{report}");
        assert!(report.to_string().contains("1 records"), "{report}");
        assert!(store.scan_keys(PROBE_PREFIX.as_bytes(), None, 10).is_empty());
    }

    #[test]
    fn a_world_writable_directory_fails() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LogStore::open(dir.path(), lockd_logstore::Options::default()).expect("open");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).expect("chmod");
        let report = run(&store, dir.path(), None);
        assert!(!report.passed());
        assert!(report.failures().contains("mode 0777"), "{}", report.failures());
    }

    #[test]
    fn the_startup_limit_is_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).expect("chmod");
        let store = LogStore::open(dir.path(), lockd_logstore::Options::default()).expect("open");
        let mut b = Batch::new();
        for i in 0..5 {
            b.put(format!("m/default/k{i}"), "x");
        }
        store.commit(b).expect("commit");
        let report = run(&store, dir.path(), Some(3));
        assert!(report.to_string().contains("3 records"), "{report}");
        assert!(report.to_string().contains("the first 3"), "{report}");
    }
}
