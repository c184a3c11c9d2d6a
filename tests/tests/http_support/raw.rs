//! HTTP/1.1 written by hand over a TCP socket, for requests no well-behaved
//! client sends: a body that is announced but never finished.
//!
//! The writer sends the head and part of the body, then keeps the socket
//! open without sending more; the reader waits for the response. A response
//! that arrives proves the server decided before the body was complete.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A parsed HTTP/1.1 response.
#[derive(Debug)]
pub(crate) struct RawReply {
    /// Status code.
    pub(crate) status: u16,
    /// Header lines, names lowercased.
    pub(crate) headers: Vec<(String, String)>,
    /// The body (as delimited by `Content-Length`).
    pub(crate) body: Vec<u8>,
}

impl RawReply {
    /// First value of a header.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("status {}: body is not JSON ({e}): {:?}", self.status, self.body))
    }
}

/// Sends `head` (request line and headers, ending in a blank line) and then
/// `partial` (part of a body), never the rest, and returns the response.
/// Also returns how many bytes of `partial` the writer managed to hand to
/// the socket before the response came back. Panics after `wait`.
pub(crate) async fn send_unfinished(addr: &str, head: &str, partial: Vec<u8>, wait: Duration) -> (RawReply, usize) {
    let stream = TcpStream::connect(addr).await.expect("connect to lockd");
    let (mut rd, mut wr) = stream.into_split();
    let head = head.as_bytes().to_vec();
    let (written_tx, mut written_rx) = tokio::sync::watch::channel(0usize);
    let writer = tokio::spawn(async move {
        if wr.write_all(&head).await.is_err() {
            return wr;
        }
        for chunk in partial.chunks(16 * 1024) {
            if wr.write_all(chunk).await.is_err() {
                break;
            }
            written_tx.send_modify(|n| *n += chunk.len());
        }
        // Keep the write half open: the body stays unfinished.
        wr
    });
    let reply = tokio::time::timeout(wait, read_response(&mut rd))
        .await
        .unwrap_or_else(|_| panic!("no response within {wait:?} to an unfinished body"));
    let written = *written_rx.borrow_and_update();
    writer.abort();
    (reply, written)
}

async fn read_response(rd: &mut tokio::net::tcp::OwnedReadHalf) -> RawReply {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = rd.read(&mut chunk).await.expect("read response");
        assert!(
            n > 0,
            "connection closed before a response: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or_else(|| panic!("response without Content-Length: {head}"));
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let n = rd.read(&mut chunk).await.expect("read response body");
        assert!(n > 0, "connection closed inside the response body");
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(len);
    RawReply { status, headers, body }
}
