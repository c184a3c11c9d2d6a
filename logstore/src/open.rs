//! Opening a store directory: lock it, read the manifest, check the
//! encryption key, rebuild the index, cut a torn tail, clear out files
//! nothing references, and pick the write path.

use std::collections::{HashMap, HashSet};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::crypto::Codec;
use crate::fsutil::{self, DirLock};
use crate::index::{Index, Position};
use crate::manifest::{Manifest, SegmentEntry};
use crate::options::{IoMode, Options};
use crate::recovery::scan_segment;
use crate::segment::{self, SegmentFile, SEGMENT_HEADER_LEN};
use crate::shared::{Shared, State};
use crate::writer::io::Sink;
use crate::writer::Writer;
use crate::{blob, checkpoint, Error, Result};

pub(crate) fn open(dir: &Path, opts: Options) -> Result<Writer> {
    opts.validate()?;
    std::fs::create_dir_all(dir).map_err(|e| Error::io("create dir", dir, e))?;
    let lock = DirLock::acquire(dir)?;
    let codec = Codec::new(opts.encryption.clone());
    let manifest = match Manifest::load(dir)? {
        Some(m) => m,
        None => initialise(dir, &opts, &codec)?,
    };
    check_key(&manifest, &codec)?;

    let mut segments = HashMap::new();
    for entry in &manifest.segments {
        let seg = SegmentFile::open(dir, entry.id, entry.sealed_len.is_none())?;
        if entry.sealed_len.is_some() {
            seg.seal()?;
        }
        segments.insert(entry.id, Arc::new(seg));
    }

    let (mut index, start) = load_checkpoint(dir, &manifest);
    let mut max_seq = index.applied.seq.max(manifest.seq_floor);
    let mut active_end = SEGMENT_HEADER_LEN;
    let mut replaying = start.is_none();
    for entry in &manifest.segments {
        let from = match start {
            Some(p) if p.seg == entry.id => {
                replaying = true;
                p.off
            }
            _ if replaying => SEGMENT_HEADER_LEN,
            _ => continue,
        };
        let seg = &segments[&entry.id];
        let owned;
        let bytes: &[u8] = match seg.mapped() {
            Some(m) => m,
            None => {
                owned = seg.read_all()?;
                &owned
            }
        };
        let out = scan_segment(bytes, entry.id, from, entry.sealed_len, &seg.path, &mut |k, l| {
            index.apply(k, l);
        })?;
        max_seq = max_seq.max(out.max_seq);
        if entry.sealed_len.is_none() {
            active_end = out.valid_end;
            if let Some((off, reason)) = &out.torn {
                tracing::warn!(file = %seg.path.display(), offset = off, %reason, kept_up_to = out.valid_end,
                    "torn tail in the active segment: cutting the log back to the last whole batch");
            }
            clear_tail(seg, bytes, out.valid_end)?;
        }
    }
    if !replaying {
        return Err(Error::corrupt(
            dir.join(crate::manifest::FILE),
            0,
            "checkpoint names a segment that is not live",
        ));
    }
    let active = manifest.active();
    index.applied = Position {
        seg: active.id,
        off: active_end,
        seq: max_seq,
    };

    remove_unreferenced(dir, &manifest, &index)?;
    // A process killed before an fdatasync leaves written-but-unsynced
    // batches that replay just fine; make them durable before anything
    // (a checkpoint, a sealed length) is built on top of them.
    let active_file = &segments[&active.id];
    active_file
        .file()
        .sync_data()
        .map_err(|e| Error::io("fdatasync", &active_file.path, e))?;
    // Files written after the manifest last recorded `next-id` (blobs,
    // checkpoints) must never have their ids handed out again.
    let next_id = manifest.next_id.max(highest_file_id(dir)? + 1);

    let sink = choose_sink(dir, opts.io)?;
    tracing::info!(dir = %dir.display(), io = %sink.path(), keys = index.len(), segments = manifest.segments.len(), "logstore open");
    let active_seg = Arc::clone(&segments[&active.id]);
    let shared = Arc::new(Shared {
        dir: dir.to_path_buf(),
        opts,
        codec,
        state: RwLock::new(State { index, segments }),
        manifest: Mutex::new(manifest),
        poisoned: Mutex::new(None),
        next_id: AtomicU64::new(next_id),
        graveyard: Mutex::new(Vec::new()),
        since_checkpoint: AtomicU64::new(0),
        groups: AtomicU64::new(0),
        exclusive: Mutex::new(()),
        _lock: lock,
    });
    Ok(Writer {
        shared,
        active: active_seg,
        pos: active_end,
        next_seq: max_seq + 1,
        sink,
        unsynced: false,
    })
}

fn initialise(dir: &Path, opts: &Options, codec: &Codec) -> Result<Manifest> {
    let stray: Vec<String> = list(dir)?
        .into_iter()
        .filter(|n| segment::parse_name(n).is_some())
        .collect();
    if !stray.is_empty() {
        return Err(Error::corrupt(
            dir.join(crate::manifest::FILE),
            0,
            format!(
                "manifest missing but segment files exist ({}); refusing to start empty over them",
                stray.join(", ")
            ),
        ));
    }
    SegmentFile::create(dir, 1, opts.segment_size)?;
    let m = Manifest {
        next_id: 2,
        seq_floor: 0,
        encryption: codec.verifier(),
        snapshot: None,
        segments: vec![SegmentEntry {
            id: 1,
            sealed_len: None,
        }],
    };
    m.store(dir)?;
    Ok(m)
}

fn check_key(m: &Manifest, codec: &Codec) -> Result<()> {
    match (&m.encryption, codec.verifier()) {
        (None, None) => Ok(()),
        (Some(want), Some(got)) if *want == got => Ok(()),
        (Some(_), Some(_)) => Err(Error::KeyMismatch(
            "the store was written with a different root key".into(),
        )),
        (Some(_), None) => Err(Error::KeyMismatch(
            "the store is encrypted but no root key was given".into(),
        )),
        (None, Some(_)) => Err(Error::KeyMismatch(
            "the store was written without encryption but a root key was given".into(),
        )),
    }
}

fn load_checkpoint(dir: &Path, m: &Manifest) -> (Index, Option<Position>) {
    let Some(r) = m.snapshot else {
        return (Index::default(), None);
    };
    let path = checkpoint::path(dir, r.id);
    let loaded = std::fs::read(&path)
        .map_err(|e| Error::io("read", &path, e))
        .and_then(|b| checkpoint::decode(&b, &path));
    match loaded {
        Ok(ix) if ix.applied.seg == r.segment && ix.applied.off == r.offset => {
            let at = ix.applied;
            (ix, Some(at))
        }
        Ok(_) => {
            tracing::warn!(file = %path.display(), "checkpoint does not match the manifest; replaying the whole log");
            (Index::default(), None)
        }
        Err(e) => {
            tracing::warn!(error = %e, "checkpoint unreadable; replaying the whole log");
            (Index::default(), None)
        }
    }
}

/// Zeroes whatever a crash left after the last whole batch, so a later,
/// shorter write cannot be followed by stale records that happen to decode.
fn clear_tail(seg: &SegmentFile, bytes: &[u8], valid_end: u64) -> Result<()> {
    let tail = &bytes[(valid_end as usize).min(bytes.len())..];
    let Some(dirty) = tail.iter().rposition(|b| *b != 0) else {
        return Ok(());
    };
    let len = dirty + 1;
    // SAFETY: fallocate on a descriptor owned by `seg`; the range lies inside the file.
    let rc = unsafe {
        libc::fallocate(
            seg.file().as_raw_fd(),
            libc::FALLOC_FL_ZERO_RANGE | libc::FALLOC_FL_KEEP_SIZE,
            valid_end as libc::off_t,
            len as libc::off_t,
        )
    };
    if rc != 0 {
        let zeros = vec![0u8; len];
        seg.file()
            .write_all_at(&zeros, valid_end)
            .map_err(|e| Error::io("zero torn tail", &seg.path, e))?;
    }
    seg.file().sync_data().map_err(|e| Error::io("fdatasync", &seg.path, e))
}

fn highest_file_id(dir: &Path) -> Result<u64> {
    Ok(list(dir)?
        .iter()
        .filter_map(|n| {
            segment::parse_name(n)
                .map(u64::from)
                .or_else(|| blob::parse_name(n))
                .or_else(|| checkpoint::parse_name(n).map(u64::from))
        })
        .max()
        .unwrap_or(0))
}

fn list(dir: &Path) -> Result<Vec<String>> {
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io("read dir", dir, e))?;
    Ok(rd
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect())
}

/// Deletes segments, checkpoints, blobs and temp files nothing references:
/// leftovers of a crash during a roll, a compaction or an upload.
fn remove_unreferenced(dir: &Path, m: &Manifest, index: &Index) -> Result<()> {
    let live_segs: HashSet<u32> = m.segments.iter().map(|s| s.id).collect();
    let live_blobs: HashSet<u64> = index.blob_ids().collect();
    let live_ckpt = m.snapshot.map(|s| s.id);
    let mut removed = 0;
    for name in list(dir)? {
        let dead = match () {
            _ if name.ends_with(".tmp") => true,
            _ if segment::parse_name(&name).is_some() => {
                segment::parse_name(&name).is_some_and(|id| !live_segs.contains(&id))
            }
            _ if blob::parse_name(&name).is_some() => {
                blob::parse_name(&name).is_some_and(|id| !live_blobs.contains(&id))
            }
            _ if checkpoint::parse_name(&name).is_some() => checkpoint::parse_name(&name) != live_ckpt,
            _ => false,
        };
        if dead {
            let path = fsutil::in_dir(dir, &name);
            std::fs::remove_file(&path).map_err(|e| Error::io("remove", &path, e))?;
            removed += 1;
        }
    }
    if removed > 0 {
        tracing::info!(removed, "removed files left unreferenced by an earlier run");
        fsutil::fsync_dir(dir)?;
    }
    Ok(())
}

fn choose_sink(dir: &Path, mode: IoMode) -> Result<Sink> {
    let nfs = fsutil::network_filesystem(dir);
    match (mode, nfs) {
        (IoMode::Sync, _) => Ok(Sink::Sync),
        (IoMode::Auto, Some(fs)) => {
            tracing::info!(filesystem = fs, "network filesystem: using pwritev + fdatasync");
            Ok(Sink::Sync)
        }
        (IoMode::Auto, None) => match Sink::uring() {
            Ok(s) => Ok(s),
            Err(e) => {
                tracing::info!(error = %e, "io_uring unavailable: using pwritev + fdatasync");
                Ok(Sink::Sync)
            }
        },
        (IoMode::Uring, Some(fs)) => Err(Error::Invalid(format!(
            "io = uring was requested but {} is on a network filesystem ({fs})",
            dir.display()
        ))),
        (IoMode::Uring, None) => Sink::uring().map_err(|e| Error::io("io_uring setup", dir, e)),
    }
}
