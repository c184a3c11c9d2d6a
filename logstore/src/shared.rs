//! State shared by the store handle, the writer thread and the maintenance
//! thread.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::{Mutex, RwLock};

use crate::crypto::Codec;
use crate::fsutil::DirLock;
use crate::index::Index;
use crate::manifest::Manifest;
use crate::options::Options;
use crate::segment::SegmentFile;
use crate::{Error, Result};

/// The index and the segment table, guarded together so that a reader
/// always finds the segment its index entry points to, and a compaction
/// swap changes both at once.
#[derive(Default)]
pub(crate) struct State {
    pub index: Index,
    pub segments: HashMap<u32, Arc<SegmentFile>>,
}

pub(crate) struct Shared {
    pub dir: PathBuf,
    pub opts: Options,
    pub codec: Codec,
    pub state: RwLock<State>,
    /// The manifest as last written. Whoever changes the segment set (the
    /// writer on a roll, the compactor on a swap) holds this lock across the
    /// rewrite, so the two never lose each other's change.
    pub manifest: Mutex<Manifest>,
    /// Set once a write or sync failed; every later write is refused.
    pub poisoned: Mutex<Option<String>>,
    /// Source of segment, blob and checkpoint file ids.
    pub next_id: AtomicU64,
    /// Files no longer referenced, with the time they may be unlinked.
    pub graveyard: Mutex<Vec<(Instant, PathBuf)>>,
    /// Bytes appended since the last index checkpoint.
    pub since_checkpoint: AtomicU64,
    /// Group writes the writer thread completed (one submission each, and
    /// one fdatasync when the group had to be durable).
    pub groups: AtomicU64,
    /// Serialises checkpoints and compactions (both rewrite the manifest's
    /// checkpoint reference and read the whole index).
    pub exclusive: Mutex<()>,
    pub _lock: DirLock,
}

impl Shared {
    pub(crate) fn check_writable(&self) -> Result<()> {
        match &*self.poisoned.lock() {
            Some(reason) => Err(Error::Poisoned(reason.clone())),
            None => Ok(()),
        }
    }

    pub(crate) fn poison(&self, reason: String) {
        tracing::error!(dir = %self.dir.display(), %reason, "logstore poisoned; writes refused until reopen");
        let mut p = self.poisoned.lock();
        if p.is_none() {
            *p = Some(reason);
        }
    }

    pub(crate) fn alloc_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Schedules `path` for deletion once the grace period has passed.
    pub(crate) fn bury(&self, path: PathBuf) {
        let at = Instant::now() + self.opts.delete_grace;
        self.graveyard.lock().push((at, path));
    }

    /// Unlinks every buried file whose grace period is over (all of them
    /// with `force`). Returns how many were removed.
    pub(crate) fn reap(&self, force: bool) -> usize {
        let now = Instant::now();
        let due: Vec<PathBuf> = {
            let mut g = self.graveyard.lock();
            let (due, keep): (Vec<_>, Vec<_>) = g.drain(..).partition(|(at, _)| force || *at <= now);
            *g = keep;
            due.into_iter().map(|(_, p)| p).collect()
        };
        let n = due.len();
        for p in &due {
            if let Err(e) = std::fs::remove_file(p) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(path = %p.display(), error = %e, "could not delete obsolete file");
                }
            }
        }
        if n > 0 {
            if let Err(e) = crate::fsutil::fsync_dir(&self.dir) {
                tracing::warn!(error = %e, "fsync of store directory after deletions failed");
            }
        }
        n
    }
}
