//! Graceful shutdown as a client sees it: on SIGTERM the server stops
//! accepting connections, lets the requests already in flight finish,
//! syncs the store and exits 0; what it acknowledged is there on restart.
//! (The drain phase with `Shutdown-Imminent` and `503 shutdown_draining`
//! is a later addition.)

mod http_support;

use std::time::Duration;

use http::HeaderMap;
use http_support::*;
use lockd_tests::server::{exited_cleanly, LockdServer, Proto};
use serde_json::json;

fn start(store: &str) -> LockdServer {
    LockdServer::start(&[
        "--store",
        store,
        "--listen",
        "127.0.0.1:0",
        "--disable-mtls",
        "--log-level",
        "info",
        "--shutdown-timeout",
        "10s",
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_requests_then_exits_0_with_everything_synced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = format!("disk://{}", dir.path().join("data").display());
    let mut srv = start(&store);
    let c = srv.client(Proto::Http1);
    let committed = commit_doc(&c, "shut-a", r#"{"step":1}"#).await;
    // A 4 s lease: still held when the waiter below gives up (2 s), gone
    // by the time the restarted server is asked for the key again.
    let r = acquire(
        &c,
        json!({"key": "shut-b", "owner": "holder", "ttl_seconds": 4, "block_seconds": -1}),
    )
    .await;
    let holder = Lease::from_acquire("shut-b", &expect_json(&r));

    // A request in flight at SIGTERM: an acquire blocked on the held key
    // for up to 2 s. It must get its answer, not a reset connection.
    let waiter = {
        let c = c.clone();
        tokio::spawn(async move { acquire(&c, json!({"key": "shut-b", "owner": "waiter", "block_seconds": 2})).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    srv.terminate();
    let r = waiter.await.expect("waiter task");
    let v = expect_error(&r, 409, "waiting");
    assert!(int(&v, "retry_after_seconds") >= 1, "{v}");

    let status = srv.wait();
    assert!(
        exited_cleanly(&status),
        "exit status {status:?}; stderr:\n{}",
        srv.stderr()
    );
    let log = srv.stderr();
    assert!(log.contains("shutdown complete"), "{log}");
    assert!(!log.contains("panicked"), "{log}");
    assert!(
        c.try_send_map("GET", "/healthz", HeaderMap::new(), "").await.is_err(),
        "a stopped server still accepts connections"
    );

    let srv = start(&store);
    let c = srv.client(Proto::Http1);
    let r = public_get(&c, "shut-a").await;
    assert_eq!(r.status.as_u16(), 200);
    assert_eq!(r.text(), r#"{"step":1}"#);
    assert_eq!(describe(&c, "shut-a").await["state_etag"], committed["new_state_etag"]);
    // The lease taken before the shutdown may or may not have been stored
    // (leases are written lazily until their first durable operation), but
    // its fencing token is never handed out again.
    let r = acquire(
        &c,
        json!({"key": "shut-b", "owner": "after", "block_seconds": 8, "ttl_seconds": 5}),
    )
    .await;
    let v = expect_json(&r);
    assert!(int(&v, "fencing_token") > holder.token(), "{v}");
    assert_catalogue();
    finish_server(srv);
}
