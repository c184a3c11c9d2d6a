//! The whole HTTP front-end (hyper, routing, header and query parsing, body
//! limits, strict JSON, the lease actors on `mem://`) fed one connection's
//! worth of arbitrary bytes. Whatever arrives, the server must not panic
//! and must never answer with a 5xx: bad input is a 4xx.
//!
//! Time is paused, so a request that would block (an acquire waiting on a
//! held key) costs nothing: the runtime jumps straight to the deadline.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use lockd_actors::{LeaseConfig, MemBackend, Router};
use lockd_net::server::{serve_stream, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("runtime")
    })
}

/// Status codes of the HTTP/1.1 responses in `raw`, walking each head and
/// skipping its `Content-Length` body.
fn statuses(raw: &[u8]) -> Vec<u16> {
    let mut out = Vec::new();
    let mut rest = raw;
    while let Some(end) = rest.windows(4).position(|w| w == b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&rest[..end]).to_string();
        let mut lines = head.lines();
        let Some(status) = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
        else {
            break;
        };
        out.push(status);
        let len: usize = lines
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.trim().parse().ok())
            .unwrap_or(0);
        rest = rest.get(end + 4 + len..).unwrap_or(&[]);
    }
    out
}

fuzz_target!(|data: &[u8]| {
    runtime().block_on(async {
        let router = Router::new(Arc::new(MemBackend::new()), LeaseConfig::default());
        let cfg = ServerConfig {
            json_max: 4096,
            payload_spool_mem: 1024,
            ..ServerConfig::default()
        };
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let served = tokio::spawn(serve_stream(router, cfg, server));
        let _ = client.write_all(data).await;
        let _ = client.shutdown().await;
        let mut raw = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(3600), client.read_to_end(&mut raw)).await;
        drop(client);
        let _ = served.await;
        for status in statuses(&raw) {
            assert!(
                status < 500,
                "server answered {status} to {:?}",
                String::from_utf8_lossy(data)
            );
        }
    });
});
