//! `/v1/acquire` (API.md §2.1, §0.4, §0.5) and `/v1/keepalive` (§2.2) through the router.

mod common;

use std::time::{Duration, Instant};

use common::*;
use lockd_actors::ids::is_xid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acquire_requires_an_owner() {
    let r = router();
    for owner in ["", "   ", "\t"] {
        let e = expect_err(
            r.acquire("", "k", owner, 30, -1, false, None).await,
            400,
            "missing_owner",
        );
        assert_eq!(e.detail, "owner is required");
    }
    // Validation order (§2.1 step 2): namespace, key, owner, txn.
    let e = expect_err(
        r.acquire("Bad NS", "a b", "", 30, -1, false, Some("x")).await,
        400,
        "invalid_namespace",
    );
    assert!(e.detail.contains("invalid value \"bad ns\""), "{}", e.detail);
    expect_err(
        r.acquire("", "a b", "", 30, -1, false, Some("x")).await,
        400,
        "invalid_key",
    );
    expect_err(
        r.acquire("", "k", "", 30, -1, false, Some("x")).await,
        400,
        "missing_owner",
    );
    // Nothing was created by the refused requests.
    assert_eq!(r.describe("", "k").await.expect("describe"), Default::default());
    assert_eq!(acquire(&r, "k").await.fencing_token, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acquire_rejects_a_txn_id_that_is_not_an_xid() {
    let r = router();
    for bad in [
        "not-an-xid",
        "C5V9D0SL70B3M3Q8NDG0",  // uppercase
        "c5v9d0sl70b3m3q8ndg",   // 19 chars
        "c5v9d0sl70b3m3q8ndg01", // 21 chars
        "c5v9d0sl70b3m3q8ndg1",  // non-zero padding bits
        "c5v9d0sl70b3m3q8ndw0",  // 'w' is outside base32hex
    ] {
        let e = expect_err(
            r.acquire("", "k", "o", 30, -1, false, Some(bad)).await,
            400,
            "invalid_txn",
        );
        assert_eq!(e.detail, "txn_id must be a valid xid");
    }
    assert_eq!(r.describe("", "k").await.expect("describe").version, 0);
    assert_eq!(r.describe("", "k").await.expect("describe").owner, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acquire_validates_and_normalises_the_namespace() {
    let r = router();
    let e = expect_err(
        r.acquire(".txns", "k", "o", 30, -1, false, None).await,
        400,
        "invalid_namespace",
    );
    assert_eq!(e.detail, r#"namespace ".txns" is reserved"#);
    let e = expect_err(
        r.acquire(" .Hidden ", "k", "o", 30, -1, false, None).await,
        400,
        "invalid_namespace",
    );
    assert_eq!(e.detail, r#"namespace ".hidden" is reserved"#);
    let e = expect_err(
        r.acquire(&"n".repeat(129), "k", "o", 30, -1, false, None).await,
        400,
        "invalid_namespace",
    );
    assert_eq!(e.detail, "value too long (max 128 characters)");
    let e = expect_err(
        r.acquire("a/b", "k", "o", 30, -1, false, None).await,
        400,
        "invalid_namespace",
    );
    assert_eq!(
        e.detail,
        r#"invalid value "a/b" (allowed: lowercase letters, digits, '.', '_', '-')"#
    );

    let (ns, _) = r.acquire("", "k", "o", 30, -1, false, None).await.expect("default ns");
    assert_eq!(ns, "default");
    let (ns, ok) = r
        .acquire("  Orders ", "k", "o", 30, -1, false, None)
        .await
        .expect("orders");
    assert_eq!(
        (ns.as_str(), ok.fencing_token),
        ("orders", 1),
        "namespaces isolate keys"
    );
    // Same namespace spelled differently: the key is already held there.
    expect_err(r.acquire("ORDERS", "K", "o", 30, -1, false, None).await, 409, "waiting");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acquire_validates_the_key() {
    let r = router();
    let long = "k".repeat(129);
    let bad_seg =
        r#"invalid key segment "a b": invalid value "a b" (allowed: lowercase letters, digits, '.', '_', '-')"#;
    let cases = [
        ("a//b", "key contains empty segment"),
        ("a/", "key contains empty segment"),
        ("default/", "key contains empty segment"),
        (long.as_str(), "key too long (max 128 characters)"),
        ("a b", bad_seg),
    ];
    for (key, detail) in cases {
        let e = expect_err(r.acquire("", key, "o", 30, -1, false, None).await, 400, "invalid_key");
        assert_eq!(e.detail, detail, "{key:?}");
    }
    // 128 characters after stripping the namespace prefix are fine; `.`/`..` segments are syntax-valid.
    let long = format!("default/{}", "k".repeat(128));
    let (_, ok) = r.acquire("", &long, "o", 30, -1, false, None).await.expect("128 left");
    assert_eq!(ok.key, "k".repeat(128));
    let (_, ok) = r.acquire("", "a/../b", "o", 30, -1, false, None).await.expect("dots");
    assert_eq!(ok.key, "a/../b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acquire_strips_slash_and_namespace_prefix_and_echoes_the_callers_spelling() {
    let r = router();
    let (ns, ok) = r
        .acquire("Team", " /team/Orders/42 ", "o", 30, -1, false, None)
        .await
        .expect("acquire");
    assert_eq!(
        (ns.as_str(), ok.key.as_str()),
        ("team", "Orders/42"),
        "display-key quirk (§0.5)"
    );
    // Stored lowercased: other endpoints reach it under any case, without the prefix.
    let d = r.describe("team", "ORDERS/42").await.expect("describe");
    assert_eq!(d.lease_id.as_deref(), Some(ok.lease_id.as_str()));
    let d = r.describe("team", "/orders/42").await.expect("describe");
    assert_eq!(d.owner.as_deref(), Some("o"));
    // Only acquire strips the namespace prefix.
    assert_eq!(
        r.describe("team", "team/orders/42").await.expect("describe").owner,
        None
    );
    // A differently spelled acquire hits the same key.
    let e = expect_err(
        r.acquire("team", "orders/42", "o", 30, -1, false, None).await,
        409,
        "waiting",
    );
    assert!(e.retry_after_seconds >= 1);
    // Prefix match is case-insensitive and needs the slash; a bare namespace name is a key.
    let (_, ok) = r
        .acquire("", "DEFAULT/MiXeD", "o", 30, -1, false, None)
        .await
        .expect("prefixed");
    assert_eq!(ok.key, "MiXeD");
    let (_, ok) = r
        .acquire("", "defaultx/y", "o", 30, -1, false, None)
        .await
        .expect("not a prefix");
    assert_eq!(ok.key, "defaultx/y");
    let (_, ok) = r.acquire("", "default", "o", 30, -1, false, None).await.expect("bare");
    assert_eq!(ok.key, "default");
    assert_eq!(
        r.describe("", "mixed").await.expect("describe").owner.as_deref(),
        Some("o")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acquire_with_blank_key_generates_a_uuid_v7_key() {
    let r = router();
    let (ns, a) = r.acquire("", "", "o", 30, -1, false, None).await.expect("generated");
    let (_, b) = r.acquire("", "   ", "o", 30, -1, false, None).await.expect("generated");
    assert_eq!(ns, "default");
    for key in [&a.key, &b.key] {
        assert_eq!(key.len(), 36, "{key}");
        assert_eq!(key.to_lowercase(), *key);
        let id = uuid::Uuid::parse_str(key).expect("uuid");
        assert_eq!(id.get_version_num(), 7, "{key}");
        assert_eq!(id.hyphenated().to_string(), *key, "canonical form");
    }
    assert_ne!(a.key, b.key);
    assert_eq!((a.fencing_token, a.version, a.state_etag.as_deref()), (1, 0, None));
    let d = r.describe("", &a.key).await.expect("describe");
    assert_eq!(d.lease_id.as_deref(), Some(a.lease_id.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fencing_tokens_start_at_one_and_grow_by_one_per_acquire() {
    let r = router();
    let l = acquire(&r, "k").await;
    assert_eq!(l.fencing_token, 1);
    // Keepalive, update and release do not change the counter.
    r.keepalive("", "k", proof(&l), 60).await.expect("keepalive");
    r.update("", "k", proof(&l), json("{}"), None, None)
        .await
        .expect("update");
    let doc = lease_get(&r, "k", &l).await.expect("staged doc");
    assert_eq!(doc.3, Some(1));
    assert!(r.release("", "k", proof(&l), false).await.expect("release"));
    for want in 2..=5 {
        let l = acquire(&r, "k").await;
        assert_eq!(l.fencing_token, want);
        assert!(r.release("", "k", proof(&l), want % 2 == 0).await.expect("release"));
    }
    assert_eq!(acquire(&r, "other").await.fencing_token, 1, "the counter is per key");
    let (_, ok) = r
        .acquire("ns2", "k", "o", 30, -1, false, None)
        .await
        .expect("other namespace");
    assert_eq!(ok.fencing_token, 1, "and per namespace");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn if_not_exists_fails_once_the_key_was_ever_acquired() {
    let r = router();
    let (_, l) = r.acquire("", "k", "o", 30, -1, true, None).await.expect("first");
    assert_eq!(l.fencing_token, 1);
    // Held: already_exists at once, even when asked to wait forever.
    let res = tokio::time::timeout(Duration::from_secs(2), r.acquire("", "k", "o", 30, 0, true, None))
        .await
        .expect("already_exists must not wait");
    let e = expect_err(res, 409, "already_exists");
    assert_eq!(e.detail, "key already exists");
    // Released (with a commit): still exists.
    let up = r
        .update("", "k", proof(&l), json(r#"{"a":1}"#), None, None)
        .await
        .expect("update");
    assert!(r.release("", "k", proof(&l), false).await.expect("release"));
    let e = expect_err(r.acquire("", "k", "o", 30, -1, true, None).await, 409, "already_exists");
    assert_current(&e, 1, &up.new_state_etag);
    // Removed and committed: the metadata record stays, so still exists.
    let l = acquire(&r, "k").await;
    assert!(r.remove("", "k", proof(&l), None, None).await.expect("remove").removed);
    assert!(r.release("", "k", proof(&l), false).await.expect("release"));
    let e = expect_err(r.acquire("", "k", "o", 30, 5, true, None).await, 409, "already_exists");
    assert_current(&e, 2, "");
    // Acquired then rolled back without ever staging: exists too.
    let l = acquire(&r, "k2").await;
    assert!(r.release("", "k2", proof(&l), true).await.expect("release"));
    expect_err(
        r.acquire("", "k2", "o", 30, -1, true, None).await,
        409,
        "already_exists",
    );
    // A refused if_not_exists acquire does not consume a fencing token.
    assert_eq!(acquire(&r, "k").await.fencing_token, 3);
    // Other namespaces are other keys.
    let (_, ok) = r
        .acquire("elsewhere", "k", "o", 30, -1, true, None)
        .await
        .expect("new ns");
    assert_eq!(ok.fencing_token, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_wait_acquire_of_a_held_key_answers_waiting() {
    let r = router();
    let etag = commit_doc(&r, "k", r#"{"v":1}"#).await;
    let holder = acquire(&r, "k").await;
    // Any owner, including the holder's own (no re-entrancy).
    for owner in [OWNER, "someone-else"] {
        let e = expect_err(r.acquire("", "k", owner, 30, -1, false, None).await, 409, "waiting");
        assert_eq!(e.detail, "lease already held");
        assert!(
            (29..=30).contains(&e.retry_after_seconds),
            "retry after {}",
            e.retry_after_seconds
        );
        assert_current(&e, 1, &etag);
    }
    // The refused acquires changed nothing.
    let d = r.describe("", "k").await.expect("describe");
    assert_eq!(d.lease_id.as_deref(), Some(holder.lease_id.as_str()));
    assert!(r.release("", "k", proof(&holder), false).await.expect("release"));
    assert_eq!(acquire(&r, "k").await.fencing_token, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_acquire_times_out_with_waiting_or_is_woken_by_release() {
    let r = router();
    let holder = acquire(&r, "k").await;
    let started = Instant::now();
    let e = expect_err(r.acquire("", "k", "b", 30, 1, false, None).await, 409, "waiting");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(950), "gave up after {waited:?}");
    assert!(waited < Duration::from_secs(3), "waited {waited:?}");
    assert!((1..=30).contains(&e.retry_after_seconds), "{e:?}");
    assert_current(&e, 0, "");

    // block 0 waits forever, until the holder lets go; the release wakes it.
    let waiter = {
        let r = r.clone();
        tokio::spawn(async move { r.acquire("", "k", "w", 30, 0, false, None).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiter.is_finished(), "must wait while the lease is held");
    let released = Instant::now();
    assert!(r.release("", "k", proof(&holder), false).await.expect("release"));
    let (_, got) = tokio::time::timeout(Duration::from_secs(2), waiter)
        .await
        .expect("woken by the release")
        .expect("join")
        .expect("granted");
    assert!(
        released.elapsed() < Duration::from_millis(400),
        "woken late: {:?}",
        released.elapsed()
    );
    assert_eq!((got.owner.as_str(), got.fencing_token), ("w", 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negative_block_other_than_minus_one_waits_up_to_the_acquire_block() {
    use lockd_actors::lease::Block;
    let r = router();
    let cfg = r.config();
    assert_eq!(
        (
            cfg.default_namespace.as_str(),
            cfg.default_ttl_seconds,
            cfg.max_ttl_seconds
        ),
        ("default", 30, 1800)
    );
    assert_eq!(cfg.acquire_block, Duration::from_secs(60));
    assert_eq!(cfg.block(-1), Block::NoWait);
    assert_eq!(cfg.block(0), Block::Forever);
    assert_eq!(cfg.block(3), Block::For(Duration::from_secs(3)));
    for b in [-2, -60, i64::MIN] {
        assert_eq!(cfg.block(b), Block::For(Duration::from_secs(60)), "block_seconds {b}");
    }
    // Behaviour: -2 does not answer at once like -1; it waits and is woken by the release.
    let holder = acquire(&r, "k").await;
    let waiter = {
        let r = r.clone();
        tokio::spawn(async move { r.acquire("", "k", "w", 30, -2, false, None).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiter.is_finished(), "block -2 must wait");
    assert!(r.release("", "k", proof(&holder), true).await.expect("release"));
    let (_, got) = tokio::time::timeout(Duration::from_secs(2), waiter)
        .await
        .expect("woken by the release")
        .expect("join")
        .expect("granted");
    assert_eq!((got.owner.as_str(), got.fencing_token), ("w", 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_defaults_when_not_positive_and_is_clamped_to_the_maximum() {
    let r = router();
    let cases = [
        (0, 30),
        (-5, 30),
        (2, 2),
        (7, 7),
        (1800, 1800),
        (1801, 1800),
        (1_000_000, 1800),
    ];
    for (i, (ttl, want)) in cases.into_iter().enumerate() {
        let key = format!("k{i}");
        let before = now_unix();
        let l = acquire_ttl(&r, &key, ttl).await;
        let after = now_unix();
        assert!(
            (before + want..=after + want).contains(&l.expires_at_unix),
            "ttl {ttl}: expires {} not in [{}, {}]",
            l.expires_at_unix,
            before + want,
            after + want
        );
        let d = r.describe("", &key).await.expect("describe");
        assert_eq!(d.expires_at_unix, Some(l.expires_at_unix));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explicit_txn_ids_are_echoed_and_implicit_ones_minted() {
    let r = router();
    let txn = xid();
    let (_, a) = r
        .acquire("", "a", "o", 30, -1, false, Some(&txn))
        .await
        .expect("explicit");
    assert_eq!(a.txn_id, txn);
    let padded = format!("  {}  ", xid());
    let (_, b) = r
        .acquire("", "b", "o", 30, -1, false, Some(&padded))
        .await
        .expect("padded");
    assert_eq!(b.txn_id, padded.trim(), "surrounding blanks are trimmed");
    // A blank txn_id counts as none: the server mints one.
    let (_, c) = r.acquire("", "c", "o", 30, -1, false, Some("  ")).await.expect("blank");
    let (_, d) = r.acquire("", "d", "o", 30, -1, false, None).await.expect("implicit");
    for l in [&a, &b, &c, &d] {
        assert!(is_xid(&l.lease_id), "lease id {}", l.lease_id);
        assert!(is_xid(&l.txn_id), "txn id {}", l.txn_id);
        assert_ne!(l.lease_id, l.txn_id);
        assert_eq!((l.owner.as_str(), l.version, l.state_etag.as_deref()), ("o", 0, None));
    }
    assert_ne!(c.txn_id, d.txn_id);
    assert_ne!(c.lease_id, d.lease_id);
    // The explicit txn is the lease's txn: staging with it works, with another one does not.
    r.update("", "a", proof(&a), json("[1]"), None, None)
        .await
        .expect("update in explicit txn");
    let e = expect_err(
        r.update(
            "",
            "a",
            proof_of(&a.lease_id, a.fencing_token, Some(&d.txn_id)),
            json("[2]"),
            None,
            None,
        )
        .await,
        409,
        "txn_mismatch",
    );
    assert_current(&e, 0, "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acquire_reports_the_committed_version_and_etag() {
    let r = router();
    let l = acquire(&r, "k").await;
    assert_eq!(
        (l.key.as_str(), l.owner.as_str(), l.version, l.state_etag.as_deref()),
        ("k", OWNER, 0, None)
    );
    let up = r
        .update("", "k", proof(&l), json(r#"{"n":1}"#), None, None)
        .await
        .expect("update");
    assert!(r.release("", "k", proof(&l), false).await.expect("release"));
    let l = acquire(&r, "k").await;
    assert_eq!(
        (l.version, l.state_etag.as_deref()),
        (1, Some(up.new_state_etag.as_str()))
    );
    // Staged changes are not committed state.
    r.update("", "k", proof(&l), json(r#"{"n":2}"#), None, None)
        .await
        .expect("update");
    assert!(r.release("", "k", proof(&l), true).await.expect("rollback"));
    let l = acquire(&r, "k").await;
    assert_eq!(
        (l.version, l.state_etag.as_deref()),
        (1, Some(up.new_state_etag.as_str()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_sets_expiry_from_now_and_keeps_the_lease() {
    let r = router();
    let l = acquire_ttl(&r, "k", 5).await;
    for (ttl, want) in [(100, 100), (0, 30), (-1, 30), (5000, 1800), (3, 3)] {
        let before = now_unix();
        let expires = r.keepalive("", "k", proof(&l), ttl).await.expect("keepalive");
        let after = now_unix();
        assert!(
            (before + want..=after + want).contains(&expires),
            "ttl {ttl}: {expires}"
        );
        let d = r.describe("", "k").await.expect("describe");
        assert_eq!(d.expires_at_unix, Some(expires), "absolute from now, not added");
        assert_eq!(d.lease_id.as_deref(), Some(l.lease_id.as_str()));
    }
    // Same lease, same token, same txn afterwards.
    r.update("", "k", proof(&l), json("true"), None, None)
        .await
        .expect("update after keepalive");
    assert_eq!(lease_get(&r, "k", &l).await.expect("staged").3, Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_refusals() {
    let r = router();
    let e = expect_err(
        r.keepalive("", "never", proof_of(&xid(), 1, Some(&xid())), 30).await,
        403,
        "lease_required",
    );
    assert_current(&e, 0, "");
    let etag = commit_doc(&r, "k", "1").await;
    let l = acquire(&r, "k").await;
    let e = expect_err(
        r.keepalive("", "k", proof_of(&xid(), 2, Some(&l.txn_id)), 30).await,
        403,
        "lease_required",
    );
    assert_current(&e, 1, &etag);
    let e = expect_err(
        r.keepalive("", "k", proof_of(&l.lease_id, 1, Some(&l.txn_id)), 30)
            .await,
        403,
        "fencing_mismatch",
    );
    assert_current(&e, 1, &etag);
    let e = expect_err(
        r.keepalive("", "k", proof_of(&l.lease_id, 2, None), 30).await,
        400,
        "missing_txn",
    );
    assert_current(&e, 1, &etag);
    let e = expect_err(
        r.keepalive("", "k", proof_of(&l.lease_id, 2, Some(&xid())), 30).await,
        409,
        "txn_mismatch",
    );
    assert_current(&e, 1, &etag);
    // The refusals did not touch the lease's expiry.
    assert_eq!(
        r.describe("", "k").await.expect("describe").expires_at_unix,
        Some(l.expires_at_unix)
    );
    // A released lease cannot be kept alive.
    assert!(r.release("", "k", proof(&l), false).await.expect("release"));
    expect_err(r.keepalive("", "k", proof(&l), 30).await, 403, "lease_required");
}
