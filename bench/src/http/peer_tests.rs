//! Smoke tests of the etcd and Redis drivers against real servers started
//! by [`PeerProcess`]: the lease cycle the workloads rely on (a held key is
//! busy for others, release frees it, a waiting acquire gets it), reads,
//! puts and scans, then every workload of the comparison (YCSB's
//! included) through the same driver, and that stopping the peer leaves no
//! process behind.
//!
//! A peer that is not installed is skipped with a message, unless
//! `LOCKD_BENCH_REQUIRE_PEERS=1` (set in CI), where it fails the test.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::driver::{Acquired, Conn, Driver, Lease, OpError};
use super::etcd_driver::EtcdDriver;
use super::process::CpuClock;
use super::redis_driver::RedisDriver;
use super::tests::{every_workload, runtime};
use crate::peers::{find_binary, PeerKind, PeerProcess};

/// Whether missing peers fail the tests instead of skipping them.
fn peers_required() -> bool {
    std::env::var("LOCKD_BENCH_REQUIRE_PEERS").is_ok_and(|v| v == "1")
}

/// `false` (after saying so) when `kind` is not installed and may be skipped.
fn installed(kind: PeerKind) -> bool {
    if find_binary(kind).is_some() {
        return true;
    }
    assert!(
        !peers_required(),
        "{} not installed and LOCKD_BENCH_REQUIRE_PEERS=1: run bench/peers.sh install",
        kind.binary()
    );
    eprintln!("skipping: {} not installed", kind.binary());
    false
}

/// Whether a process with `pid` exists (zombies included).
fn alive(pid: u32) -> bool {
    let pid = libc::pid_t::try_from(pid).expect("pid fits");
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

fn granted(a: Result<Acquired, OpError>) -> Lease {
    match a {
        Ok(Acquired::Granted(l)) => l,
        other => panic!("expected a grant, got {other:?}"),
    }
}

/// The cycle the workloads run, on two connections of one peer.
async fn exercise<D: Driver>(driver: &D, fenced: bool) {
    let (ns, key) = ("smoke", "k1");
    let doc = Bytes::from_static(b"{\"state\":\"committed by the smoke test\"}");
    let mut a = driver.connect().await.expect("connect a");
    let mut b = driver.connect().await.expect("connect b");

    let first = granted(a.acquire(ns, key, false).await);
    assert_eq!((first.namespace.as_str(), first.key.as_str()), (ns, key));
    assert_eq!(
        b.acquire(ns, key, false).await,
        Ok(Acquired::Busy),
        "a held key is busy"
    );
    a.update(&first, doc.clone()).await.expect("update");
    a.release(&first).await.expect("release");
    let again = a.release(&first).await;
    assert!(
        matches!(again, Err(OpError::Status { status: 409, .. })),
        "a released lease cannot release again (it would free someone else's lock): {again:?}"
    );

    let second = granted(b.acquire(ns, key, false).await);
    assert_eq!(a.read(ns, key).await, Ok(doc.len()));
    let missing = a.read(ns, "never-written").await;
    assert!(
        matches!(missing, Err(OpError::Status { status: 204, .. })),
        "a key without state answers the 204 convention: {missing:?}"
    );

    // A waiting acquire gets the key once its holder lets go.
    let release_soon = async {
        tokio::time::sleep(Duration::from_millis(30)).await;
        b.release(&second).await
    };
    let (waited, released) = tokio::join!(a.acquire(ns, key, true), release_soon);
    released.expect("release second");
    let third = granted(waited);
    if fenced {
        assert!(
            first.fencing_token < second.fencing_token && second.fencing_token < third.fencing_token,
            "fencing tokens grow: {} {} {}",
            first.fencing_token,
            second.fencing_token,
            third.fencing_token
        );
    }
    a.release(&third).await.expect("release third");

    // Scan over three consecutive keys of which two exist; a fourth key
    // just past the range must not be counted.
    let name = |i: u32| format!("user{i:010}");
    for i in [1, 3, 4] {
        b.put("scan", &name(i), doc.clone()).await.expect("put");
    }
    let keys: Vec<String> = (1..=3).map(name).collect();
    assert_eq!(b.scan("scan", &keys).await, Ok(2));
    assert_eq!(b.scan("scan", &[]).await, Ok(0));
    assert_eq!(b.read("scan", &name(4)).await, Ok(doc.len()));
}

/// Starts `kind`, runs [`exercise`] through the driver `make` builds, stops
/// it and checks that its process is gone.
fn smoke<D: Driver>(kind: PeerKind, make: fn(String) -> D, fenced: bool) {
    if !installed(kind) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let peer = PeerProcess::start(kind, dir.path()).expect("start peer");
    assert_eq!(peer.kind, kind);
    assert!(alive(peer.pid));
    let driver = make(peer.addr.clone());
    let rt = runtime();
    rt.block_on(exercise(&driver, fenced));
    // And every workload the comparison runs, through the same driver.
    let clock = CpuClock::new(Some(peer.pid));
    rt.block_on(every_workload(Arc::new(driver), &clock, kind.name()));
    let pid = peer.pid;
    peer.stop().expect("stop");
    assert!(!alive(pid), "{} (pid {pid}) still runs after stop", kind.binary());
}

#[test]
fn etcd_smoke() {
    smoke(PeerKind::Etcd, EtcdDriver::new, true);
}

#[test]
fn redis_smoke() {
    smoke(PeerKind::RedisAlways, RedisDriver::new, false);
}

#[test]
fn redis_everysec_smoke() {
    smoke(PeerKind::RedisEverysec, RedisDriver::new, false);
}

#[test]
fn peer_dropped_without_stop_is_stopped_too() {
    if !installed(PeerKind::RedisEverysec) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let peer = PeerProcess::start(PeerKind::RedisEverysec, dir.path()).expect("start peer");
    let pid = peer.pid;
    assert!(alive(pid));
    drop(peer);
    assert!(!alive(pid), "redis-server (pid {pid}) survived the drop");
}

#[test]
fn unreachable_peers_are_transport_errors() {
    let rt = runtime();
    // A port nobody listens on: bind one, then let it go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let redis = rt.block_on(RedisDriver::new(addr.clone()).connect());
    assert!(matches!(&redis, Err(e) if e.is_transport()), "{:?}", redis.err());
    let etcd = rt.block_on(EtcdDriver::new(addr).connect());
    assert!(matches!(&etcd, Err(e) if e.is_transport()), "{:?}", etcd.err());
}
