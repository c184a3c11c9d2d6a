//! Segment files: a 32-byte file header followed by records.
//!
//! A segment is preallocated to `segment_size` when created, so appends
//! never change its size. Sealed segments are read through a shared
//! read-only memory map; the active one through `pread`, because the writer
//! is still appending to it (and writing through a map is never done: a full
//! disk would turn into SIGBUS).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use memmap2::Mmap;

use crate::fsutil;
use crate::{Error, Result};

/// Size of the file header at the start of every segment.
pub(crate) const SEGMENT_HEADER_LEN: u64 = 32;
const MAGIC: &[u8; 8] = b"LOCKDSEG";
const VERSION: u32 = 1;

pub(crate) fn file_name(id: u32) -> String {
    format!("{id:08}.seg")
}

/// Parses `00000012.seg` into 12.
pub(crate) fn parse_name(name: &str) -> Option<u32> {
    name.strip_suffix(".seg")?.parse().ok()
}

fn header(id: u32) -> [u8; SEGMENT_HEADER_LEN as usize] {
    let mut h = [0u8; SEGMENT_HEADER_LEN as usize];
    h[0..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h[12..16].copy_from_slice(&id.to_le_bytes());
    let crc = crc32fast::hash(&h[0..16]);
    h[16..20].copy_from_slice(&crc.to_le_bytes());
    h
}

/// An open segment file shared by the writer, readers and the compactor.
#[derive(Debug)]
pub(crate) struct SegmentFile {
    pub id: u32,
    pub path: PathBuf,
    file: File,
    map: OnceLock<Mmap>,
}

impl SegmentFile {
    /// Creates, preallocates and fsyncs a new segment (the caller fsyncs the
    /// directory once it is ready to reference the file).
    pub(crate) fn create(dir: &Path, id: u32, size: u64) -> Result<SegmentFile> {
        let path = dir.join(file_name(id));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| Error::io("create", &path, e))?;
        fsutil::preallocate(&file, &path, size)?;
        file.write_all_at(&header(id), 0)
            .map_err(|e| Error::io("write", &path, e))?;
        file.sync_all().map_err(|e| Error::io("fsync", &path, e))?;
        Ok(SegmentFile {
            id,
            path,
            file,
            map: OnceLock::new(),
        })
    }

    /// Opens an existing segment and checks its header.
    pub(crate) fn open(dir: &Path, id: u32, writable: bool) -> Result<SegmentFile> {
        let path = dir.join(file_name(id));
        let file = OpenOptions::new()
            .read(true)
            .write(writable)
            .open(&path)
            .map_err(|e| Error::io("open", &path, e))?;
        let mut h = [0u8; SEGMENT_HEADER_LEN as usize];
        file.read_exact_at(&mut h, 0)
            .map_err(|e| Error::io("read header", &path, e))?;
        if h != header(id) {
            return Err(Error::corrupt(
                &path,
                0,
                "bad segment header (wrong magic, version or id)",
            ));
        }
        Ok(SegmentFile {
            id,
            path,
            file,
            map: OnceLock::new(),
        })
    }

    pub(crate) fn file(&self) -> &File {
        &self.file
    }

    /// Switches reads to a memory map: called once the segment is sealed
    /// and no longer written.
    pub(crate) fn seal(&self) -> Result<()> {
        if self.map.get().is_none() {
            // SAFETY: the map is read-only and the file is never written or
            // truncated again while this process has it open: sealed segments
            // are immutable until they are unlinked.
            let map = unsafe { Mmap::map(&self.file) }.map_err(|e| Error::io("mmap", &self.path, e))?;
            let _ = self.map.set(map);
        }
        Ok(())
    }

    /// The mapped bytes of a sealed segment.
    pub(crate) fn mapped(&self) -> Option<&[u8]> {
        self.map.get().map(|m| &m[..])
    }

    /// Reads `len` bytes at `off`: a zero-copy view of the map for sealed
    /// segments, a `pread` for the active one.
    pub(crate) fn read(self: &Arc<Self>, off: u64, len: usize) -> Result<Bytes> {
        if let Some(map) = self.map.get() {
            let end = off as usize + len;
            if end > map.len() {
                return Err(Error::corrupt(&self.path, off, "record runs past the end of the file"));
            }
            return Ok(Bytes::from_owner(MappedRange {
                seg: Arc::clone(self),
                start: off as usize,
                end,
            }));
        }
        let mut buf = vec![0u8; len];
        self.file
            .read_exact_at(&mut buf, off)
            .map_err(|e| Error::io("pread", &self.path, e))?;
        Ok(Bytes::from(buf))
    }

    /// Reads the whole file for a scan during recovery.
    pub(crate) fn read_all(&self) -> Result<Vec<u8>> {
        std::fs::read(&self.path).map_err(|e| Error::io("read", &self.path, e))
    }
}

/// Keeps a segment (and so its map) alive for as long as a value read from
/// it is referenced.
struct MappedRange {
    seg: Arc<SegmentFile>,
    start: usize,
    end: usize,
}

impl AsRef<[u8]> for MappedRange {
    fn as_ref(&self) -> &[u8] {
        self.seg.mapped().map(|m| &m[self.start..self.end]).unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_open_and_read_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let seg = SegmentFile::create(dir.path(), 3, 8192).expect("create");
        seg.file().write_all_at(b"hello", SEGMENT_HEADER_LEN).expect("write");
        let meta = std::fs::metadata(&seg.path).expect("meta");
        assert_eq!(meta.len(), 8192, "preallocated to full size");
        let seg = Arc::new(SegmentFile::open(dir.path(), 3, false).expect("open"));
        assert_eq!(&seg.read(SEGMENT_HEADER_LEN, 5).expect("pread")[..], b"hello");
        seg.seal().expect("seal");
        assert_eq!(&seg.read(SEGMENT_HEADER_LEN, 5).expect("map")[..], b"hello");
        assert!(SegmentFile::open(dir.path(), 4, false).is_err());
        std::fs::rename(&seg.path, dir.path().join(file_name(4))).expect("rename");
        let err = SegmentFile::open(dir.path(), 4, false).expect_err("id mismatch");
        assert!(err.to_string().contains("bad segment header"), "{err}");
    }
}
