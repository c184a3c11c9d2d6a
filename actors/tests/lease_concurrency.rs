//! Many tasks, few keys: an independent checker watches the invariants
//! the lease core promises, and FIFO hand-off is checked exactly.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use lockd_actors::lease::LeaseProof;
use lockd_actors::{LeaseConfig, MemBackend, Router};
use parking_lot::Mutex;

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// What the checker knows about one key.
#[derive(Default)]
struct KeyLog {
    /// Token and expiry of the lease the checker believes is held.
    holder: Option<(i64, i64)>,
    last_token: i64,
    commits: i64,
}

fn proof(lease_id: &str, token: i64, txn: &str) -> LeaseProof {
    LeaseProof {
        lease_id: lease_id.to_string(),
        fencing_token: token,
        txn_id: Some(txn.to_string()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_tasks_never_break_the_invariants() {
    const TASKS: usize = 200;
    const ROUNDS: usize = 4;
    const KEYS: usize = 4;
    let router = Router::new(Arc::new(MemBackend::new()), LeaseConfig::default());
    let logs: Arc<Vec<Mutex<KeyLog>>> = Arc::new((0..KEYS).map(|_| Mutex::new(KeyLog::default())).collect());
    let stop = Arc::new(AtomicBool::new(false));

    // Public reader: staged documents carry "staged-only" until they are
    // committed by a release; rolled back and abandoned ones keep it forever
    // and must never be seen.
    let reader = {
        let (router, stop) = (router.clone(), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut reads = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for k in 0..KEYS {
                    if let Some(doc) = router.get("", &format!("k{k}"), None).await.expect("public get") {
                        let text = String::from_utf8_lossy(&doc.body).into_owned();
                        assert!(!text.contains("doomed"), "public read saw staged data: {text}");
                    }
                    reads += 1;
                }
                tokio::task::yield_now().await;
            }
            reads
        })
    };

    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let (router, logs) = (router.clone(), Arc::clone(&logs));
        tasks.push(tokio::spawn(async move {
            for round in 0..ROUNDS {
                let k = (t + round) % KEYS;
                let key = format!("k{k}");
                let abandon = t % 50 == 0 && round == 0;
                let ttl = if abandon { 1 } else { 30 };
                let (_, ok) = router
                    .acquire("", &key, &format!("task-{t}"), ttl, 0, false, None)
                    .await
                    .expect("acquire blocks until granted");
                {
                    let mut log = logs[k].lock();
                    if let Some((other, expires)) = log.holder {
                        assert!(
                            expires <= now_unix(),
                            "{key}: token {} granted while token {other} is held until {expires}",
                            ok.fencing_token
                        );
                    }
                    assert!(ok.fencing_token > log.last_token, "{key}: fencing went backwards");
                    log.last_token = ok.fencing_token;
                    log.holder = Some((ok.fencing_token, ok.expires_at_unix));
                }
                let p = proof(&ok.lease_id, ok.fencing_token, &ok.txn_id);
                let rollback = !abandon && (t + round) % 7 == 0;
                let marker = if abandon || rollback { "doomed" } else { "kept" };
                let body = format!(
                    r#"{{"task":{t},"round":{round},"token":{},"m":"{marker}"}}"#,
                    ok.fencing_token
                );
                let staged = router
                    .update("", &key, p.clone(), Bytes::from(body.clone()), None, None)
                    .await
                    .expect("update under a held lease");
                let public = router.get("", &key, None).await.expect("public get");
                assert_ne!(
                    public.map(|d| d.body),
                    Some(Bytes::from(body.clone())),
                    "own staged doc visible publicly"
                );
                let mine = router
                    .get("", &key, Some(p.clone()))
                    .await
                    .expect("lease get")
                    .expect("staged doc");
                assert_eq!(mine.body, Bytes::from(body), "holder reads its own write");
                if abandon {
                    // Never released: the lease must expire and take its staging with it.
                    continue;
                }
                logs[k].lock().holder = None;
                assert!(router.release("", &key, p, rollback).await.expect("release"));
                if !rollback {
                    logs[k].lock().commits += 1;
                    let seen = router.get("", &key, None).await.expect("get").expect("committed doc");
                    assert!(
                        seen.version >= staged.new_version,
                        "committed version {} not visible",
                        staged.new_version
                    );
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    stop.store(true, Ordering::Relaxed);
    assert!(reader.await.expect("reader") > 0);
    for k in 0..KEYS {
        let d = router.describe("", &format!("k{k}")).await.expect("describe");
        assert_eq!(
            d.version,
            logs[k].lock().commits,
            "k{k}: every commit bumped the version exactly once"
        );
        assert!(d.lease_id.is_none(), "k{k}: all leases released or expired");
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(router.resident_actors(), 0, "idle keys keep no actor");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_acquirers_are_served_in_arrival_order_and_quitters_never_get_the_lease() {
    let router = Router::new(Arc::new(MemBackend::new()), LeaseConfig::default());
    let (_, first) = router
        .acquire("", "fifo", "first", 30, -1, false, None)
        .await
        .expect("acquire");
    let order = Arc::new(Mutex::new(Vec::new()));
    let tokens = Arc::new(Mutex::new(HashMap::new()));
    let mut waiters = Vec::new();
    for i in 0..10usize {
        let (router, order, tokens) = (router.clone(), Arc::clone(&order), Arc::clone(&tokens));
        let quitter = i == 3;
        let short = i == 6;
        waiters.push(tokio::spawn(async move {
            let owner = format!("w{i}");
            let acquire = router.acquire("", "fifo", &owner, 30, if short { 1 } else { 0 }, false, None);
            let result = if quitter {
                // Gives up after 100 ms: its reply port is dropped.
                match tokio::time::timeout(Duration::from_millis(100), acquire).await {
                    Ok(r) => r,
                    Err(_) => return,
                }
            } else {
                acquire.await
            };
            match result {
                Ok((_, ok)) => {
                    order.lock().push(i);
                    tokens.lock().insert(i, ok.fencing_token);
                    let p = proof(&ok.lease_id, ok.fencing_token, &ok.txn_id);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    router.release("", "fifo", p, false).await.expect("release");
                }
                Err(e) => {
                    assert!(short, "only the short waiter may give up: {e:?}");
                    assert_eq!((e.status, e.code), (409, "waiting"));
                    order.lock().push(100 + i);
                }
            }
        }));
        // Let each request reach the actor before the next one is sent.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Hold until the short waiter's one-second deadline has passed.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let p = proof(&first.lease_id, first.fencing_token, &first.txn_id);
    router.release("", "fifo", p, false).await.expect("release");
    for w in waiters {
        w.await.expect("waiter");
    }
    let order = order.lock().clone();
    assert_eq!(
        order,
        vec![106, 0, 1, 2, 4, 5, 7, 8, 9],
        "arrival order, without the quitter"
    );
    let tokens = tokens.lock().clone();
    let mut granted: Vec<i64> = [0, 1, 2, 4, 5, 7, 8, 9].iter().map(|i| tokens[i]).collect();
    let sorted = {
        let mut s = granted.clone();
        s.sort_unstable();
        s
    };
    assert_eq!(granted, sorted);
    granted.insert(0, first.fencing_token);
    assert!(
        granted.windows(2).all(|w| w[1] == w[0] + 1),
        "no token was burned on the waiter that left: {granted:?}"
    );
}

/// A grant inside the fencing reservation is only cached in the actor. If
/// the actor retired with it unwritten (a request arriving after the lease
/// expired but before the expiry timer ran), the reloaded record would
/// carry the older counter under this run's epoch, and the next acquire
/// would repeat a token. Requests are aimed at that window on several keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_actor_never_retires_with_an_unwritten_grant() {
    let router = Router::new(Arc::new(MemBackend::new()), LeaseConfig::default());
    let mut tasks = Vec::new();
    for k in 0..8 {
        let router = router.clone();
        tasks.push(tokio::spawn(async move {
            let key = format!("edge{k}");
            // First acquire is written (new key); release; the second grant
            // is cached only.
            let (_, a) = router
                .acquire("", &key, "w", 30, -1, false, None)
                .await
                .expect("acquire");
            router
                .release("", &key, proof(&a.lease_id, a.fencing_token, &a.txn_id), false)
                .await
                .expect("release");
            let (_, b) = router
                .acquire("", &key, "w", 1, -1, false, None)
                .await
                .expect("acquire");
            // Sleep until just past the expiry second, before the timer fires.
            let at = std::time::UNIX_EPOCH
                + Duration::from_secs(b.expires_at_unix as u64)
                + Duration::from_micros(500 + k * 400);
            if let Ok(wait) = at.duration_since(std::time::SystemTime::now()) {
                tokio::time::sleep(wait).await;
            }
            router.describe("", &key).await.expect("describe");
            tokio::time::sleep(Duration::from_millis(20)).await;
            let (_, c) = router
                .acquire("", &key, "w", 30, -1, false, None)
                .await
                .expect("acquire");
            assert!(
                c.fencing_token > b.fencing_token,
                "{key}: token {} repeated after {}",
                c.fencing_token,
                b.fencing_token
            );
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absurd_block_seconds_waits_instead_of_killing_the_actor() {
    let router = Router::new(Arc::new(MemBackend::new()), LeaseConfig::default());
    let (_, a) = router
        .acquire("", "k", "a", 30, -1, false, None)
        .await
        .expect("acquire");
    // Held by a cached (unwritten) grant after one release, the case where
    // losing the actor would lose the lease.
    router
        .release("", "k", proof(&a.lease_id, a.fencing_token, &a.txn_id), false)
        .await
        .expect("release");
    let (_, b) = router
        .acquire("", "k", "b", 30, -1, false, None)
        .await
        .expect("acquire");
    let waiter = {
        let router = router.clone();
        tokio::spawn(async move { router.acquire("", "k", "c", 30, i64::MAX, false, None).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let err = router
        .acquire("", "k", "d", 30, -1, false, None)
        .await
        .expect_err("still held by b");
    assert_eq!(err.code, "waiting", "the actor survived and b still holds the lease");
    router
        .release("", "k", proof(&b.lease_id, b.fencing_token, &b.txn_id), false)
        .await
        .expect("release");
    let (_, c) = waiter.await.expect("join").expect("the patient waiter gets the lease");
    assert_eq!(c.fencing_token, b.fencing_token + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_from_an_earlier_run_continues_above_its_reservation() {
    use lockd_actors::meta::{KeyMeta, Lease};
    use lockd_actors::{Backend, Durability, WriteSet};
    // What an earlier run left on disk after a power loss: an expired lease
    // with token 5, tokens up to 260 reserved (some of them handed out but
    // never written).
    let backend = Arc::new(MemBackend::new());
    let meta = KeyMeta {
        fencing: 5,
        fencing_reserved: 260,
        epoch: "an-earlier-run".into(),
        lease: Some(Lease {
            lease_id: "c0000000000000000000".into(),
            owner: "gone".into(),
            expires_at_unix: now_unix() - 10,
            fencing_token: 5,
            txn_id: "c0000000000000000010".into(),
            txn_explicit: false,
        }),
        ..KeyMeta::default()
    };
    let set = WriteSet {
        meta,
        put_docs: Vec::new(),
        delete_docs: Vec::new(),
        durability: Durability::Durable,
    };
    backend.write("default", "k", None, set).await.expect("seed");
    let router = Router::new(backend, LeaseConfig::default());
    // The acquire first clears the expired lease (a write under this run's
    // epoch), then grants: the token must still clear the reservation.
    let (_, ok) = router
        .acquire("", "k", "w", 30, -1, false, None)
        .await
        .expect("acquire");
    assert!(
        ok.fencing_token > 260,
        "token {} could repeat one handed out before the crash",
        ok.fencing_token
    );
}
