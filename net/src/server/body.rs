//! Reading request bodies under a hard size limit, spilling large ones to
//! disk.
//!
//! A body is refused as soon as it is known to be too large: up front from
//! `Content-Length`, or at the first chunk that crosses the limit, so an
//! oversized upload is never buffered. Bodies that outgrow
//! `payload_spool_mem` continue into an unlinked temporary file that is then
//! memory-mapped, so a 100 MiB state upload costs page cache, not heap, and
//! the rest of the server sees plain bytes either way.
//!
//! Two guards keep slow or stalled uploads from pinning the server: a body
//! that sends nothing for `idle` is refused, and the bytes held in memory
//! by all bodies still being received (beyond the first 64 KiB of each)
//! share one [`MemBudget`]; past it, a body spills to its temporary file at
//! once.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use lockd_actors::ApiError;
use tokio::io::AsyncWriteExt;

/// Limits for one body.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits<'a> {
    /// Larger bodies are refused.
    pub max: u64,
    /// Larger bodies go to a temporary file instead of memory.
    pub spool_at: u64,
    /// A body that sends nothing for this long is refused.
    pub idle: Duration,
    /// Memory shared by every body being received.
    pub budget: &'a MemBudget,
}

/// Bytes of request bodies held in memory while they are being received,
/// across all requests. Thousands of clients each trickling a body just
/// under the spool threshold would otherwise hold gigabytes of heap.
#[derive(Debug)]
pub(crate) struct MemBudget {
    capacity: u64,
    used: AtomicU64,
}

impl MemBudget {
    pub(crate) fn new(capacity: u64) -> MemBudget {
        MemBudget {
            capacity,
            used: AtomicU64::new(0),
        }
    }

    /// Takes `n` bytes if they fit.
    fn try_take(&self, n: u64) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(n).filter(|&total| total <= self.capacity)
            })
            .is_ok()
    }

    fn give_back(&self, n: u64) {
        self.used.fetch_sub(n, Ordering::AcqRel);
    }

    /// Bytes currently taken.
    #[cfg(test)]
    fn used(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }
}

/// Bytes at the start of every body that the budget does not count, so
/// control requests (a few hundred bytes) stay in memory even when large
/// uploads have used the budget up.
const UNCOUNTED: u64 = 64 * 1024;

/// What one body has taken from the budget; returned when reading ends,
/// however it ends (the body is then either refused or handed on whole).
struct Held<'a> {
    budget: &'a MemBudget,
    bytes: u64,
}

impl Held<'_> {
    fn take(&mut self, n: u64) -> bool {
        let ok = self.budget.try_take(n);
        if ok {
            self.bytes += n;
        }
        ok
    }

    /// Gives everything back (the body moved to its spool file).
    fn clear(&mut self) {
        self.budget.give_back(std::mem::take(&mut self.bytes));
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.budget.give_back(self.bytes);
    }
}

/// Why a body could not be read.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// The body is larger than the limit (which is carried along for the message).
    TooLarge(u64),
    /// The client's stream failed (disconnect, protocol error).
    Read(String),
    /// The client sent nothing for the idle limit (carried for the message).
    Stalled(Duration),
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
    limits: Limits<'_>,
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
        BodyError::Stalled(idle) => ApiError::invalid_body(format!(
            "reading request body: nothing received for {}s",
            idle.as_secs()
        )),
        BodyError::Spool(io) => ApiError::internal(format!("spooling request body: {io}")),
    })
}

/// Reads `body` completely, refusing it past `limits.max` or when it stalls.
pub(crate) async fn read(
    mut body: Incoming,
    content_length: Option<u64>,
    limits: Limits<'_>,
) -> Result<Payload, BodyError> {
    if content_length.is_some_and(|n| n > limits.max) {
        return Err(BodyError::TooLarge(limits.max));
    }
    let mut held = Held {
        budget: limits.budget,
        bytes: 0,
    };
    let mut mem = BytesMut::new();
    let mut spool: Option<(tokio::fs::File, u64)> = None;
    let mut total: u64 = 0;
    loop {
        let next = tokio::time::timeout(limits.idle, body.frame())
            .await
            .map_err(|_| BodyError::Stalled(limits.idle))?;
        let Some(frame) = next else { break };
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
            None if total <= limits.spool_at && (total <= UNCOUNTED || held.take(chunk.len() as u64)) => {
                mem.extend_from_slice(&chunk);
            }
            None => {
                let mut file = tokio::fs::File::from_std(tempfile::tempfile().map_err(BodyError::Spool)?);
                file.write_all(&mem).await.map_err(BodyError::Spool)?;
                file.write_all(&chunk).await.map_err(BodyError::Spool)?;
                spool = Some((file, total));
                mem = BytesMut::new();
                held.clear();
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_shared_and_given_back_when_a_body_ends() {
        let budget = MemBudget::new(100);
        let mut a = Held {
            budget: &budget,
            bytes: 0,
        };
        assert!(a.take(60));
        let mut b = Held {
            budget: &budget,
            bytes: 0,
        };
        assert!(!b.take(41), "over the shared capacity");
        assert!(b.take(40));
        assert_eq!(budget.used(), 100);
        a.clear();
        assert_eq!(budget.used(), 40, "a spilled body gives its bytes back at once");
        assert!(a.take(10));
        drop(b);
        drop(a);
        assert_eq!(budget.used(), 0, "ending a body returns all it held");
        assert!(
            !Held {
                budget: &budget,
                bytes: 0
            }
            .take(u64::MAX),
            "no overflow"
        );
    }
}
