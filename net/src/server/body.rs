//! Reading request bodies under a hard size limit, spilling large ones to
//! disk.
//!
//! A body is refused as soon as it is known to be too large: up front from
//! `Content-Length`, or at the first chunk that crosses the limit, so an
//! oversized upload is never buffered. Bodies that outgrow
//! `payload_spool_mem` continue into an unlinked temporary file that is then
//! memory-mapped, so a 100 MiB state upload costs page cache, not heap, and
//! the rest of the server sees plain bytes either way.

use std::io;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use lockd_actors::ApiError;
use tokio::io::AsyncWriteExt;

/// Size limits for one body.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Larger bodies are refused.
    pub max: u64,
    /// Larger bodies go to a temporary file instead of memory.
    pub spool_at: u64,
}

/// Why a body could not be read.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// The body is larger than the limit (which is carried along for the message).
    TooLarge(u64),
    /// The client's stream failed (disconnect, protocol error).
    Read(String),
    /// The spool file could not be written.
    Spool(io::Error),
}

/// A fully received body, in memory or in a mapped spool file. Either way it
/// can be edited in place (JSON compaction only ever shrinks it).
pub(crate) enum Payload {
    /// Small body.
    Mem(BytesMut),
    /// Spilled body: a private, already-unlinked file mapped read-write.
    Spooled(memmap2::MmapMut),
}

impl Payload {
    /// The bytes.
    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            Payload::Mem(b) => b,
            Payload::Spooled(m) => m,
        }
    }

    /// The bytes, mutably (for in-place compaction).
    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        match self {
            Payload::Mem(b) => b,
            Payload::Spooled(m) => m,
        }
    }

    /// Freezes the first `len` bytes into shareable [`Bytes`]; a spooled body
    /// stays mapped for as long as those bytes live.
    pub(crate) fn into_bytes(self, len: usize) -> Bytes {
        match self {
            Payload::Mem(mut b) => {
                b.truncate(len);
                b.freeze()
            }
            Payload::Spooled(m) => Bytes::from_owner(m).slice(..len),
        }
    }
}

/// Reads a request body for a handler, mapping failures to lockd's codes:
/// oversize and broken bodies are `400 invalid_body` (not 413, API.md §0.7).
pub(crate) async fn read_request(
    body: Incoming,
    headers: &http::HeaderMap,
    limits: Limits,
) -> Result<Payload, ApiError> {
    let content_length = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    read(body, content_length, limits).await.map_err(|e| match e {
        BodyError::TooLarge(limit) => {
            ApiError::invalid_body(format!("http: request body too large (limit {limit} bytes)"))
        }
        BodyError::Read(why) => ApiError::invalid_body(format!("reading request body: {why}")),
        BodyError::Spool(io) => ApiError::internal(format!("spooling request body: {io}")),
    })
}

/// Reads `body` completely, refusing it past `limits.max`.
pub(crate) async fn read(
    mut body: Incoming,
    content_length: Option<u64>,
    limits: Limits,
) -> Result<Payload, BodyError> {
    if content_length.is_some_and(|n| n > limits.max) {
        return Err(BodyError::TooLarge(limits.max));
    }
    let mut mem = BytesMut::new();
    let mut spool: Option<(tokio::fs::File, u64)> = None;
    let mut total: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| BodyError::Read(e.to_string()))?;
        let Ok(chunk) = frame.into_data() else { continue };
        total += chunk.len() as u64;
        if total > limits.max {
            return Err(BodyError::TooLarge(limits.max));
        }
        match &mut spool {
            Some((file, written)) => {
                file.write_all(&chunk).await.map_err(BodyError::Spool)?;
                *written += chunk.len() as u64;
            }
            None if total > limits.spool_at => {
                let mut file = tokio::fs::File::from_std(tempfile::tempfile().map_err(BodyError::Spool)?);
                file.write_all(&mem).await.map_err(BodyError::Spool)?;
                file.write_all(&chunk).await.map_err(BodyError::Spool)?;
                spool = Some((file, total));
                mem = BytesMut::new();
            }
            None => mem.extend_from_slice(&chunk),
        }
    }
    match spool {
        None => Ok(Payload::Mem(mem)),
        Some((mut file, _)) => {
            file.flush().await.map_err(BodyError::Spool)?;
            let file = file.into_std().await;
            // SAFETY: the file comes from `tempfile()`, which unlinks it at
            // creation, so no other process can open, truncate or write it;
            // this process only touches it through this mapping from now on.
            let map = unsafe { memmap2::MmapMut::map_mut(&file) }.map_err(BodyError::Spool)?;
            Ok(Payload::Spooled(map))
        }
    }
}
