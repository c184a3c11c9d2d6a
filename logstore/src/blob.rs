//! Blob files: values too large to travel through the writer thread.
//!
//! A large value is streamed by the caller's own thread into its own file
//! (`<id>.blob`) in 1 MiB chunks, each with a CRC and, when encryption is on,
//! sealed separately, then fdatasync'ed. Only a 16-byte descriptor goes
//! through group commit. So a 128 MiB upload never stalls the small commits
//! queued behind it, and neither writing nor reading it needs the whole value
//! in memory.
//!
//! File layout: a 32-byte header (magic `LOCKDBLB`, version, id, plain
//! length, chunk size, CRC), then chunks `[u32 stored_len][u32 crc][stored]`.
//! An encrypted chunk's associated data names the blob, the chunk index and
//! whether it is the last one, so chunks cannot be swapped, reordered or
//! dropped unnoticed.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use crate::crypto::Codec;
use crate::shared::Shared;
use crate::{Error, Result};

const MAGIC: &[u8; 8] = b"LOCKDBLB";
const VERSION: u32 = 1;
const HEADER_LEN: usize = 32;
/// Plain bytes per chunk.
pub(crate) const CHUNK: usize = 1 << 20;
/// Size of the descriptor stored in the log record.
pub(crate) const DESCRIPTOR_LEN: usize = 16;

pub(crate) fn path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:08}.blob"))
}

pub(crate) fn parse_name(name: &str) -> Option<u64> {
    name.strip_suffix(".blob")?.parse().ok()
}

pub(crate) fn descriptor(id: u64, len: u64) -> [u8; DESCRIPTOR_LEN] {
    let mut d = [0u8; DESCRIPTOR_LEN];
    d[..8].copy_from_slice(&id.to_le_bytes());
    d[8..].copy_from_slice(&len.to_le_bytes());
    d
}

pub(crate) fn parse_descriptor(d: &[u8]) -> Option<(u64, u64)> {
    let id = u64::from_le_bytes(d.get(..8)?.try_into().ok()?);
    let len = u64::from_le_bytes(d.get(8..16)?.try_into().ok()?);
    (d.len() == DESCRIPTOR_LEN).then_some((id, len))
}

fn header(id: u64, len: u64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h[12..20].copy_from_slice(&id.to_le_bytes());
    h[20..28].copy_from_slice(&len.to_le_bytes());
    let crc = crc32fast::hash(&h[..28]);
    h[28..32].copy_from_slice(&crc.to_le_bytes());
    h
}

fn chunk_context(id: u64, index: u64, last: bool) -> Vec<u8> {
    format!("blob:{id}:{index}:{}", u8::from(last)).into_bytes()
}

/// A durable, not yet referenced large value. Put it in a batch with
/// [`crate::Batch::put_blob`]; if it is dropped without a successful
/// commit, its file is removed.
#[derive(Debug)]
pub struct Blob {
    pub(crate) id: u64,
    pub(crate) len: u64,
    pub(crate) path: PathBuf,
    /// Set by the writer once a batch referencing the blob is durable.
    pub(crate) committed: bool,
}

impl Blob {
    /// Length of the value in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True for a zero-length value.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for Blob {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Streams exactly `len` bytes from `src` into a new blob file and makes it
/// durable. Fails if `src` ends early or has more than `len` bytes.
pub(crate) fn write(shared: &Shared, src: &mut dyn Read, len: u64) -> Result<Blob> {
    shared.check_writable()?;
    let id = shared.alloc_id();
    let path = path(&shared.dir, id);
    let blob = Blob {
        id,
        len,
        path: path.clone(),
        committed: false,
    };
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| Error::io("create", &path, e))?;
    let mut out = BufWriter::with_capacity(CHUNK + 64, file);
    let werr = |e| Error::io("write", &path, e);
    out.write_all(&header(id, len)).map_err(werr)?;
    let mut chunk = vec![0u8; CHUNK];
    let mut remaining = len;
    let mut index = 0u64;
    loop {
        let take = remaining.min(CHUNK as u64) as usize;
        read_full(src, &mut chunk[..take]).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => {
                Error::Invalid(format!("blob source ended before its announced {len} bytes"))
            }
            _ => Error::io("read blob source", &path, e),
        })?;
        remaining -= take as u64;
        let last = remaining == 0;
        let sealed = shared.codec.seal(&chunk_context(id, index, last), &chunk[..take])?;
        let mut frame = [0u8; 8];
        frame[..4].copy_from_slice(&(sealed.bytes.len() as u32).to_le_bytes());
        frame[4..].copy_from_slice(&crc32fast::hash(&sealed.bytes).to_le_bytes());
        out.write_all(&frame).map_err(werr)?;
        out.write_all(&[sealed.flags]).map_err(werr)?;
        out.write_all(&sealed.bytes).map_err(werr)?;
        index += 1;
        if last {
            break;
        }
    }
    let mut probe = [0u8; 1];
    if read_full(src, &mut probe).is_ok() {
        return Err(Error::Invalid(format!(
            "blob source has more than its announced {len} bytes"
        )));
    }
    let file = out
        .into_inner()
        .map_err(|e| Error::io("flush", &path, e.into_error()))?;
    file.sync_data().map_err(|e| Error::io("fdatasync", &path, e))?;
    crate::fsutil::fsync_dir(&shared.dir)?;
    Ok(blob)
}

fn read_full(src: &mut dyn Read, buf: &mut [u8]) -> io::Result<()> {
    src.read_exact(buf)
}

/// Streams a blob's plain bytes back, checking every chunk.
pub struct BlobReader {
    file: BufReader<File>,
    path: PathBuf,
    codec: Codec,
    id: u64,
    remaining: u64,
    index: u64,
    buf: Vec<u8>,
    pos: usize,
}

impl BlobReader {
    pub(crate) fn open(dir: &Path, codec: Codec, id: u64, len: u64) -> Result<BlobReader> {
        let path = path(dir, id);
        let file = File::open(&path).map_err(|e| Error::io("open", &path, e))?;
        let mut file = BufReader::with_capacity(CHUNK + 64, file);
        let mut h = [0u8; HEADER_LEN];
        file.read_exact(&mut h).map_err(|e| Error::io("read", &path, e))?;
        if h != header(id, len) {
            return Err(Error::corrupt(&path, 0, "bad blob header"));
        }
        Ok(BlobReader {
            file,
            path,
            codec,
            id,
            remaining: len,
            index: 0,
            buf: Vec::new(),
            pos: 0,
        })
    }

    fn next_chunk(&mut self) -> Result<()> {
        let at = self.index;
        let bad = |p: &Path, why: &str| Error::corrupt(p, at, format!("blob chunk {at}: {why}"));
        let mut frame = [0u8; 9];
        self.file
            .read_exact(&mut frame)
            .map_err(|_| bad(&self.path, "truncated chunk header"))?;
        let stored_len = u32::from_le_bytes([frame[0], frame[1], frame[2], frame[3]]) as usize;
        let crc = u32::from_le_bytes([frame[4], frame[5], frame[6], frame[7]]);
        if stored_len > 2 * CHUNK + 64 {
            return Err(bad(&self.path, "impossible chunk length"));
        }
        let mut stored = vec![0u8; stored_len];
        self.file
            .read_exact(&mut stored)
            .map_err(|_| bad(&self.path, "truncated chunk"))?;
        if crc32fast::hash(&stored) != crc {
            return Err(bad(&self.path, "checksum mismatch"));
        }
        let want = self.remaining.min(CHUNK as u64);
        let last = self.remaining == want;
        let plain = self
            .codec
            .open(&chunk_context(self.id, self.index, last), frame[8], &stored)?;
        if plain.len() as u64 != want {
            return Err(bad(&self.path, "chunk length disagrees with blob length"));
        }
        self.remaining -= want;
        self.index += 1;
        self.buf = plain;
        self.pos = 0;
        Ok(())
    }
}

impl Read for BlobReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.buf.len() {
            if self.remaining == 0 {
                return Ok(0);
            }
            self.next_chunk().map_err(io::Error::other)?;
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
