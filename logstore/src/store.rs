//! The public handle: reads, batches, commits, blobs.

use std::io::Read;
use std::path::Path;
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::thread::JoinHandle;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::blob::{self, Blob, BlobReader};
use crate::index::Loc;
use crate::maintenance::Maintenance;
use crate::options::Options;
use crate::record::{self, Decoded, Kind, FLAG_BATCH_END, MAX_KEY_LEN};
use crate::shared::Shared;
use crate::writer::io::IoPath;
use crate::writer::{Msg, Op, WriteRequest};
use crate::{Error, Result};

/// An atomic set of puts and deletes: after a crash either all of it is
/// there or none of it.
#[derive(Debug, Default)]
pub struct Batch {
    ops: Vec<BatchOp>,
}

#[derive(Debug)]
enum BatchOp {
    Put(Bytes, Bytes),
    PutBlob(Bytes, Blob),
    Delete(Bytes),
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Batch {
        Batch::default()
    }

    /// Sets `key` to `value` (stored inline in the log; at most
    /// `Options::max_inline_value` bytes).
    pub fn put(&mut self, key: impl Into<Bytes>, value: impl Into<Bytes>) -> &mut Batch {
        self.ops.push(BatchOp::Put(key.into(), value.into()));
        self
    }

    /// Sets `key` to a large value already written with
    /// [`LogStore::write_blob`].
    pub fn put_blob(&mut self, key: impl Into<Bytes>, blob: Blob) -> &mut Batch {
        self.ops.push(BatchOp::PutBlob(key.into(), blob));
        self
    }

    /// Deletes `key` (a no-op for a key that does not exist).
    pub fn delete(&mut self, key: impl Into<Bytes>) -> &mut Batch {
        self.ops.push(BatchOp::Delete(key.into()));
        self
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// True when the batch holds no operation.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// The latest value of a key and the sequence number of the batch that
/// wrote it. Sequence numbers grow with every commit, so they double as
/// versions.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The key.
    pub key: Bytes,
    /// Sequence number of the committing batch.
    pub seq: u64,
    /// The value, in memory or as a handle to stream from.
    pub value: Value,
}

/// A value read from the store.
#[derive(Clone)]
pub enum Value {
    /// A value stored inline, already checked and decrypted.
    Inline(Bytes),
    /// A large value; read it with [`Value::reader`] or [`Value::to_bytes`].
    Blob(BlobHandle),
}

impl std::fmt::Debug for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Inline(b) => write!(f, "Inline({} bytes)", b.len()),
            Value::Blob(h) => write!(f, "Blob(id {}, {} bytes)", h.id, h.len),
        }
    }
}

/// Where a large value lives. Reading it opens the blob file, so keep the
/// time between `get` and `reader` short: a superseded blob is deleted once
/// `Options::delete_grace` has passed.
///
/// The handle does not keep the store open: it holds only the directory
/// and the decryption context.
#[derive(Clone)]
pub struct BlobHandle {
    dir: Arc<Path>,
    codec: crate::crypto::Codec,
    id: u64,
    len: u64,
}

impl Value {
    /// Length in bytes.
    pub fn len(&self) -> u64 {
        match self {
            Value::Inline(b) => b.len() as u64,
            Value::Blob(h) => h.len,
        }
    }

    /// True for a zero-length value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The whole value in memory (one allocation for a blob).
    pub fn to_bytes(&self) -> Result<Bytes> {
        match self {
            Value::Inline(b) => Ok(b.clone()),
            Value::Blob(h) => {
                let mut out = Vec::with_capacity(h.len as usize);
                let mut r = self.reader()?;
                r.read_to_end(&mut out)
                    .map_err(|e| Error::io("read blob", blob::path(&h.dir, h.id), e))?;
                Ok(Bytes::from(out))
            }
        }
    }

    /// A stream over the value; blobs are read and checked chunk by chunk.
    pub fn reader(&self) -> Result<Box<dyn Read + Send>> {
        match self {
            Value::Inline(b) => Ok(Box::new(std::io::Cursor::new(b.clone()))),
            Value::Blob(h) => Ok(Box::new(BlobReader::open(&h.dir, h.codec.clone(), h.id, h.len)?)),
        }
    }
}

/// Counters for operators and benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Live keys.
    pub keys: usize,
    /// Live segment files.
    pub segments: usize,
    /// Sequence number of the last applied batch.
    pub last_seq: u64,
    /// Group writes done by the writer thread since open: each is one
    /// submission carrying every batch that queued meanwhile, followed by
    /// one fdatasync when any of them was durable. Committed batches
    /// divided by this is the achieved group-commit size.
    pub groups: u64,
}

/// A durable key-value log. Cheap to share behind an `Arc`; every method
/// takes `&self`.
pub struct LogStore {
    shared: Arc<Shared>,
    dir: Arc<Path>,
    tx: Mutex<Option<Sender<Msg>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    maintenance: Mutex<Option<Maintenance>>,
    io_path: IoPath,
}

impl std::fmt::Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore")
            .field("dir", &self.shared.dir)
            .field("io", &self.io_path)
            .finish()
    }
}

impl LogStore {
    /// Opens (creating if needed) the store in `dir`, recovering whatever a
    /// crash left behind. Fails if another process has it open.
    pub fn open(dir: impl AsRef<Path>, opts: Options) -> Result<LogStore> {
        LogStore::start(crate::open::open(dir.as_ref(), opts)?)
    }

    /// Opens with the writer's sink wrapped by `wrap` (fault injection).
    #[cfg(test)]
    pub(crate) fn open_wrapped(
        dir: impl AsRef<Path>,
        opts: Options,
        wrap: impl FnOnce(crate::writer::io::Sink) -> crate::writer::io::Sink,
    ) -> Result<LogStore> {
        let mut writer = crate::open::open(dir.as_ref(), opts)?;
        writer.sink = wrap(writer.sink);
        LogStore::start(writer)
    }

    fn start(writer: crate::writer::Writer) -> Result<LogStore> {
        let shared = Arc::clone(&writer.shared);
        let io_path = writer.sink.path();
        let (tx, rx) = std::sync::mpsc::channel();
        let handle = std::thread::Builder::new()
            .name("logstore-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| Error::io("spawn writer thread", &shared.dir, e))?;
        let maintenance = Maintenance::start(Arc::clone(&shared), tx.clone())?;
        Ok(LogStore {
            dir: Arc::from(shared.dir.as_path()),
            shared,
            tx: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(handle)),
            maintenance: Mutex::new(Some(maintenance)),
            io_path,
        })
    }

    /// The write path this store runs on.
    pub fn io_path(&self) -> IoPath {
        self.io_path
    }

    /// The latest committed value of `key`.
    pub fn get(&self, key: &[u8]) -> Result<Option<Entry>> {
        let found = {
            let state = self.shared.state.read();
            state
                .index
                .get(key)
                .and_then(|loc| state.segments.get(&loc.seg).map(|s| (loc, Arc::clone(s))))
        };
        match found {
            None => Ok(None),
            Some((loc, seg)) => {
                let raw = seg.read(loc.off, loc.len as usize)?;
                self.materialise(raw, &loc, &seg.path).map(Some)
            }
        }
    }

    /// Up to `limit` entries whose key starts with `prefix`, in key order,
    /// beginning after `start_after` when given.
    pub fn scan(&self, prefix: &[u8], start_after: Option<&[u8]>, limit: usize) -> Result<Vec<Entry>> {
        let hits: Vec<(Box<[u8]>, Loc, Arc<crate::segment::SegmentFile>)> = {
            let state = self.shared.state.read();
            state
                .index
                .scan(prefix, start_after, limit)
                .into_iter()
                .filter_map(|(k, l)| state.segments.get(&l.seg).map(|s| (k, l, Arc::clone(s))))
                .collect()
        };
        hits.into_iter()
            .map(|(_, loc, seg)| {
                let raw = seg.read(loc.off, loc.len as usize)?;
                self.materialise(raw, &loc, &seg.path)
            })
            .collect()
    }

    /// Keys (with their sequence numbers) under `prefix`, without reading
    /// any value.
    pub fn scan_keys(&self, prefix: &[u8], start_after: Option<&[u8]>, limit: usize) -> Vec<(Bytes, u64)> {
        let state = self.shared.state.read();
        state
            .index
            .scan(prefix, start_after, limit)
            .into_iter()
            .map(|(k, l)| (Bytes::from(Vec::from(k)), l.seq))
            .collect()
    }

    fn materialise(&self, raw: Bytes, loc: &Loc, path: &Path) -> Result<Entry> {
        let rec = match record::decode(&raw) {
            Ok(Decoded::Record(r)) => r,
            Ok(Decoded::End) => return Err(Error::corrupt(path, loc.off, "index points at empty space")),
            Err(e) => return Err(Error::corrupt(path, loc.off, e.to_string())),
        };
        let key = raw.slice_ref(rec.key);
        let value = match rec.kind {
            Kind::BlobPut => {
                let (id, len) = blob::parse_descriptor(rec.value)
                    .ok_or_else(|| Error::corrupt(path, loc.off, "malformed blob descriptor"))?;
                Value::Blob(BlobHandle {
                    dir: Arc::clone(&self.dir),
                    codec: self.shared.codec.clone(),
                    id,
                    len,
                })
            }
            _ if rec.flags & (record::FLAG_ENCRYPTED | record::FLAG_COMPRESSED) != 0 => {
                Value::Inline(Bytes::from(self.shared.codec.open(rec.key, rec.flags, rec.value)?))
            }
            _ => Value::Inline(raw.slice_ref(rec.value)),
        };
        Ok(Entry {
            key,
            seq: rec.seq,
            value,
        })
    }

    /// Streams exactly `len` bytes from `src` into a new blob file, made
    /// durable before this returns. Runs on the caller's thread (use a
    /// blocking pool from async code); commit it with [`Batch::put_blob`].
    pub fn write_blob(&self, src: &mut dyn Read, len: u64) -> Result<Blob> {
        blob::write(&self.shared, src, len)
    }

    /// Commits `batch` atomically and returns its sequence number once it is
    /// on stable storage (fdatasync done). Blocks the calling thread: from
    /// async code use [`LogStore::commit_async`].
    pub fn commit(&self, batch: Batch) -> Result<u64> {
        self.submit(batch, true)?.blocking_recv().map_err(|_| Error::Closed)?
    }

    /// Async form of [`LogStore::commit`]: encodes on the calling task and
    /// resolves when the batch is durable.
    pub async fn commit_async(&self, batch: Batch) -> Result<u64> {
        self.submit(batch, true)?.await.map_err(|_| Error::Closed)?
    }

    /// Commits `batch` atomically but returns once it is written to the
    /// page cache, before fdatasync: a crash may lose it (whole). Only for
    /// data the caller can afford to lose.
    pub fn commit_nondurable_may_lose_on_crash(&self, batch: Batch) -> Result<u64> {
        self.submit(batch, false)?.blocking_recv().map_err(|_| Error::Closed)?
    }

    /// Async form of [`LogStore::commit_nondurable_may_lose_on_crash`].
    pub async fn commit_nondurable_async_may_lose_on_crash(&self, batch: Batch) -> Result<u64> {
        self.submit(batch, false)?.await.map_err(|_| Error::Closed)?
    }

    fn submit(&self, batch: Batch, durable: bool) -> Result<oneshot::Receiver<Result<u64>>> {
        self.shared.check_writable()?;
        let (tx, rx) = oneshot::channel();
        let req = self.encode(batch, durable, tx)?;
        self.send(Msg::Write(req))?;
        Ok(rx)
    }

    /// Validates and encodes a batch on the caller's thread (encryption
    /// included), so the writer thread only stamps sequence numbers.
    fn encode(&self, batch: Batch, durable: bool, done: oneshot::Sender<Result<u64>>) -> Result<WriteRequest> {
        if batch.is_empty() {
            return Err(Error::Invalid("empty batch".into()));
        }
        let max_value = self.shared.opts.max_inline_value;
        let n = batch.ops.len();
        let mut buf = Vec::new();
        let mut ops = Vec::with_capacity(n);
        let mut blobs = Vec::new();
        for (i, op) in batch.ops.into_iter().enumerate() {
            let end = if i + 1 == n { FLAG_BATCH_END } else { 0 };
            let at = buf.len();
            let key = match &op {
                BatchOp::Put(k, _) | BatchOp::PutBlob(k, _) | BatchOp::Delete(k) => k.clone(),
            };
            if key.is_empty() || key.len() > MAX_KEY_LEN {
                return Err(Error::Invalid(format!(
                    "key length {} outside 1..={MAX_KEY_LEN}",
                    key.len()
                )));
            }
            let mut blob_id = 0;
            match op {
                BatchOp::Put(_, value) => {
                    if value.len() > max_value {
                        return Err(Error::Invalid(format!(
                            "inline value of {} bytes exceeds max_inline_value ({max_value}); use write_blob",
                            value.len()
                        )));
                    }
                    let sealed = self.shared.codec.seal(&key, &value)?;
                    record::encode_unsealed(&mut buf, Kind::Put, end | sealed.flags, &key, &sealed.bytes);
                }
                BatchOp::PutBlob(_, blob) => {
                    blob_id = blob.id;
                    let d = blob::descriptor(blob.id, blob.len);
                    record::encode_unsealed(&mut buf, Kind::BlobPut, end, &key, &d);
                    blobs.push(blob);
                }
                BatchOp::Delete(_) => record::encode_unsealed(&mut buf, Kind::Delete, end, &key, b""),
            }
            let len = u32::try_from(buf.len() - at).map_err(|_| Error::Invalid("record too large".into()))?;
            let at = u32::try_from(at).map_err(|_| Error::Invalid("batch larger than 4 GiB".into()))?;
            ops.push(Op { at, len, blob: blob_id });
        }
        Ok(WriteRequest {
            buf,
            ops,
            blobs,
            durable,
            done,
        })
    }

    /// Makes everything committed so far durable, including non-durable
    /// commits.
    pub fn sync(&self) -> Result<()> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.send(Msg::Barrier(tx))?;
        rx.recv().map_err(|_| Error::Closed)?.map(|_| ())
    }

    /// Writes an index checkpoint now, so the next open replays only what
    /// comes after it.
    pub fn checkpoint(&self) -> Result<()> {
        crate::maintenance::checkpoint(&self.shared, &self.sender()?)
    }

    /// Runs one compaction pass now, whatever the thresholds say about
    /// segment count and reclaimable bytes (sealed segments only). Returns
    /// the number of segments rewritten.
    pub fn compact_now(&self) -> Result<usize> {
        crate::compaction::compact(&self.shared, &self.sender()?, true)
    }

    /// Unlinks obsolete files now, ignoring the grace period. For tests and
    /// for `lockd verify store`.
    pub fn purge_obsolete_files(&self) -> usize {
        self.shared.reap(true)
    }

    fn send(&self, msg: Msg) -> Result<()> {
        let tx = self.tx.lock();
        tx.as_ref().ok_or(Error::Closed)?.send(msg).map_err(|_| Error::Closed)
    }

    fn sender(&self) -> Result<Sender<Msg>> {
        self.tx.lock().clone().ok_or(Error::Closed)
    }

    /// Counters describing the store.
    pub fn stats(&self) -> Stats {
        let state = self.shared.state.read();
        Stats {
            keys: state.index.len(),
            segments: state.segments.len(),
            last_seq: state.index.applied.seq,
            groups: self.shared.groups.load(std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// Stops background work, flushes, writes a checkpoint and releases the
    /// directory. Dropping the store does the same; `close` reports errors.
    pub fn close(self) -> Result<()> {
        self.shutdown()
    }

    fn shutdown(&self) -> Result<()> {
        if let Some(m) = self.maintenance.lock().take() {
            m.stop();
        }
        let mut result = Ok(());
        if self.shared.check_writable().is_ok() && self.tx.lock().is_some() {
            result = self.checkpoint();
        }
        drop(self.tx.lock().take());
        if let Some(h) = self.writer.lock().take() {
            let _ = h.join();
        }
        self.shared.reap(false);
        result.and(self.shared.check_writable())
    }
}

impl Drop for LogStore {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::warn!(error = %e, "logstore shutdown");
        }
    }
}
