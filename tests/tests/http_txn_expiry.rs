//! Lease behaviour that spans requests: explicit multi-key transactions
//! decided by one release (API.md §2.3), and lazy expiry that clears a
//! lease and discards its staging (API.md §0.8), against the real binary.
//!
//! As in `http_routes`, every scenario runs on TCP and a Unix socket, each
//! with HTTP/1.1 and h2c; the expiry scenarios run the four transports
//! concurrently so the test waits for one lease lifetime, not four.

mod http_support;

use std::time::Duration;

use http_support::*;
use lockd_tests::server::Client;
use serde_json::json;

/// Acquires `key` joining the explicit transaction `txn`.
async fn join(c: &Client, key: &str, txn: &str) -> Lease {
    let r = acquire(
        c,
        json!({"key": key, "owner": "tx", "txn_id": txn, "block_seconds": -1}),
    )
    .await;
    let lease = Lease::from_acquire(key, &expect_json(&r));
    assert_eq!(lease.txn_id, txn, "explicit txn joined as given");
    lease
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn releasing_one_participant_commits_the_whole_explicit_txn() {
    let world = World::start(&[]);
    for (i, c) in world.clients().into_iter().enumerate() {
        let tag = c.tag();
        let txn = fake_xid(800 + i as u32);
        let (ka, kb) = (format!("txa-{tag}"), format!("txb-{tag}"));
        let a = join(&c, &ka, &txn).await;
        let b = join(&c, &kb, &txn).await;
        expect_json(&update(&c, &a, r#"{"p":"a"}"#).await);
        expect_json(&update(&c, &b, r#"{"p":"b"}"#).await);

        release_ok(&c, &a, false).await;
        assert_eq!(public_get(&c, &ka).await.text(), r#"{"p":"a"}"#);
        assert_eq!(
            public_get(&c, &kb).await.text(),
            r#"{"p":"b"}"#,
            "{tag}: the decision covers every participant of the txn"
        );
        let d = describe(&c, &kb).await;
        assert!(d.get("lease_id").is_none(), "{tag}: participant lease cleared: {d}");
        assert_eq!(int(&d, "version"), 1);
        // The other participant's release finds its lease gone; the
        // recorded commit wins over a late rollback.
        release_ok(&c, &b, true).await;
        assert_eq!(public_get(&c, &kb).await.text(), r#"{"p":"b"}"#);
    }
    world.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_back_one_participant_discards_the_whole_explicit_txn() {
    let world = World::start(&[]);
    for (i, c) in world.clients().into_iter().enumerate() {
        let tag = c.tag();
        let txn = fake_xid(900 + i as u32);
        let (ka, kb) = (format!("rba-{tag}"), format!("rbb-{tag}"));
        commit_doc(&c, &kb, r#"{"p":"old"}"#).await;
        let a = join(&c, &ka, &txn).await;
        let b = join(&c, &kb, &txn).await;
        expect_json(&update(&c, &a, r#"{"p":"a"}"#).await);
        expect_json(&update(&c, &b, r#"{"p":"b"}"#).await);

        release_ok(&c, &a, true).await;
        assert_eq!(public_get(&c, &ka).await.status.as_u16(), 204);
        let d = describe(&c, &kb).await;
        assert!(d.get("lease_id").is_none(), "{tag}: participant lease cleared: {d}");
        release_ok(&c, &b, false).await;
        assert_eq!(
            public_get(&c, &kb).await.text(),
            r#"{"p":"old"}"#,
            "{tag}: the recorded rollback wins over a late commit"
        );
        assert_eq!(int(&describe(&c, &kb).await, "version"), 1);
    }
    world.finish();
}

/// Holds `key` with a 1 s lease and stages a document, waits for the lease
/// to lapse, and checks what the next requests see.
async fn expire_and_check(c: Client, key: String, via_keepalive: bool) {
    let tag = c.tag();
    let r = acquire(&c, json!({"key": key, "owner": "short", "ttl_seconds": 1})).await;
    let lease = Lease::from_acquire(&key, &expect_json(&r));
    expect_json(&update(&c, &lease, r#"{"never":"committed"}"#).await);
    // Expiry is second-granular: a 1 s lease is gone within 1 s; allow 2.5.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let d = describe(&c, &key).await;
    assert_eq!(
        d["lease_id"].as_str(),
        Some(lease.lease_id.as_str()),
        "{tag}: describe does not check expiry"
    );

    if via_keepalive {
        let fence = [("x-fencing-token", lease.fencing.as_str())];
        let r = post_json(
            &c,
            "/v1/keepalive",
            &fence,
            &lease.body_with(json!({"ttl_seconds": 30})),
        )
        .await;
        expect_error(&r, 403, "lease_expired");
    } else {
        expect_error(&update(&c, &lease, r#"{"late":true}"#).await, 403, "lease_expired");
    }
    // The expired lease was cleared with its staging.
    assert!(
        describe(&c, &key).await.get("lease_id").is_none(),
        "{tag}: expired lease cleared"
    );
    expect_error(&lease_get(&c, &lease).await, 403, "lease_required");
    let next = grab(&c, &key).await;
    assert_eq!(next.token(), 2, "{tag}");
    assert_eq!(
        lease_get(&c, &next).await.status.as_u16(),
        204,
        "{tag}: staging was discarded"
    );
    release_ok(&c, &next, false).await;
    assert_eq!(
        public_get(&c, &key).await.status.as_u16(),
        204,
        "{tag}: nothing was committed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lease_is_refused_cleared_and_its_staging_discarded() {
    let world = World::start(&[]);
    let runs: Vec<_> = world
        .clients()
        .into_iter()
        .flat_map(|c| {
            let tag = c.tag();
            [
                tokio::spawn(expire_and_check(c.clone(), format!("exp-ka-{tag}"), true)),
                tokio::spawn(expire_and_check(c, format!("exp-up-{tag}"), false)),
            ]
        })
        .collect();
    for run in runs {
        if let Err(e) = run.await {
            std::panic::resume_unwind(e.into_panic());
        }
    }
    world.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acquire_takes_over_an_expired_lease_without_waiting() {
    let world = World::start(&[]);
    let runs: Vec<_> = world
        .clients()
        .into_iter()
        .map(|c| {
            tokio::spawn(async move {
                let key = format!("takeover-{}", c.tag());
                let r = acquire(&c, json!({"key": key, "owner": "old", "ttl_seconds": 1})).await;
                let old = Lease::from_acquire(&key, &expect_json(&r));
                expect_json(&update(&c, &old, r#"{"old":1}"#).await);
                tokio::time::sleep(Duration::from_millis(2500)).await;
                let r = acquire(&c, json!({"key": key, "owner": "new", "block_seconds": -1})).await;
                let new = Lease::from_acquire(&key, &expect_json(&r));
                assert_eq!(new.token(), 2);
                assert_eq!(lease_get(&c, &new).await.status.as_u16(), 204, "old staging discarded");
                let fence = [("x-fencing-token", old.fencing.as_str())];
                let r = post_json(&c, "/v1/keepalive", &fence, &old.body_with(json!({}))).await;
                expect_error(&r, 403, "lease_required");
                release_ok(&c, &new, false).await;
            })
        })
        .collect();
    for run in runs {
        if let Err(e) = run.await {
            std::panic::resume_unwind(e.into_panic());
        }
    }
    world.finish();
}
