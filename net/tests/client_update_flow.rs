//! `acquire_for_update` and acquire retries against the real server.

mod support;

use std::time::Duration;

use lockd_net::client::{Client, ClientError};
use lockd_net::wire::AcquireRequest;
use serde_json::json;
use support::{acquire_req, commit_doc, start_tcp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acquire_for_update_commits_on_ok() {
    let server = start_tcp().await;
    let client = Client::new(&server.url).expect("client");
    commit_doc(&client, "counter", &json!({"n": 41})).await;
    let result = client
        .acquire_for_update(&acquire_req("counter", "worker", 30), |session| async move {
            let mut doc: serde_json::Value = session.load().await?.unwrap_or_else(|| json!({"n": 0}));
            doc["n"] = json!(doc["n"].as_i64().unwrap_or(0) + 1);
            session.save(&doc).await?;
            Ok(doc["n"].clone())
        })
        .await
        .expect("work succeeds");
    assert_eq!(result, json!(42));
    let doc = client.get_public("", "counter").await.expect("get").expect("committed");
    assert_eq!(doc.body.as_ref(), br#"{"n":42}"#);
    assert_eq!(doc.version, 2);
    let described = client.describe("", "counter").await.expect("describe");
    assert!(described.lease_id.is_empty(), "lease released after the work");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acquire_for_update_rolls_back_on_err() {
    let server = start_tcp().await;
    let client = Client::new(&server.url).expect("client");
    commit_doc(&client, "job", &json!({"state": "old"})).await;
    let err = client
        .acquire_for_update(&acquire_req("job", "worker", 30), |session| async move {
            session.save(&json!({"state": "half-done"})).await?;
            Err::<(), _>(ClientError::InvalidInput("work failed halfway".into()))
        })
        .await
        .expect_err("the work's error is returned");
    assert!(
        matches!(&err, ClientError::InvalidInput(m) if m == "work failed halfway"),
        "{err:?}"
    );
    let doc = client.get_public("", "job").await.expect("get").expect("old doc");
    assert_eq!(
        doc.body.as_ref(),
        br#"{"state":"old"}"#,
        "staged change was rolled back"
    );
    assert!(
        client.describe("", "job").await.expect("describe").lease_id.is_empty(),
        "lease released"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_holds_a_short_lease_through_long_work() {
    let server = start_tcp().await;
    let client = Client::new(&server.url).expect("client");
    let rival = Client::builder()
        .endpoint(&server.url)
        .acquire_retries(0)
        .build()
        .expect("rival client");
    let result = client
        .acquire_for_update(&acquire_req("slow", "worker", 2), |session| {
            let rival = rival.clone();
            async move {
                session.save(&json!({"phase": 1})).await?;
                tokio::time::sleep(Duration::from_millis(2500)).await;
                let stolen = rival.acquire(&acquire_req("slow", "rival", 30)).await;
                assert_eq!(stolen.expect_err("the lease is still held").code(), Some("waiting"));
                tokio::time::sleep(Duration::from_millis(500)).await;
                session.save(&json!({"phase": 2})).await?;
                Ok(session.fencing_token())
            }
        })
        .await
        .expect("the lease survived three seconds on a two-second TTL");
    assert_eq!(result, 1);
    let doc = client.get_public("", "slow").await.expect("get").expect("committed");
    assert_eq!(doc.body.as_ref(), br#"{"phase":2}"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acquire_retries_while_held_and_wins_after_release() {
    let server = start_tcp().await;
    let holder = Client::new(&server.url).expect("holder");
    let lease = holder
        .acquire(&acquire_req("busy", "holder", 30))
        .await
        .expect("holder acquire");

    let impatient = Client::builder()
        .endpoint(&server.url)
        .acquire_retries(0)
        .build()
        .expect("client");
    let err = impatient
        .acquire(&acquire_req("busy", "impatient", 30))
        .await
        .expect_err("no retries");
    assert_eq!(err.code(), Some("waiting"));
    assert!(
        err.api().expect("api").retry_after_seconds >= 1,
        "server says when to come back"
    );

    let waiter = Client::builder()
        .endpoint(&server.url)
        .acquire_retries(50)
        .backoff(Duration::from_millis(20), Duration::from_millis(200))
        .build()
        .expect("waiter");
    let contender = tokio::spawn(async move { waiter.acquire(&acquire_req("busy", "waiter", 30)).await });
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        !contender.is_finished(),
        "the waiter keeps retrying while the key is held"
    );
    holder.release(&lease.lease_ref(), false).await.expect("release");
    let won = contender.await.expect("join").expect("acquired after the release");
    assert_eq!(won.response.owner, "waiter");
    assert_eq!(won.fencing_token, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn already_exists_is_never_retried() {
    let server = start_tcp().await;
    let client = Client::builder()
        .endpoint(&server.url)
        .acquire_retries(5)
        .backoff(Duration::from_secs(60), Duration::from_secs(60))
        .build()
        .expect("client");
    commit_doc(&client, "once", &json!({})).await;
    let req = AcquireRequest {
        if_not_exists: Some(true),
        ..acquire_req("once", "o", 30)
    };
    // A retry would sleep for a minute first; the answer must come at once.
    let outcome = tokio::time::timeout(Duration::from_secs(20), client.acquire(&req)).await;
    let err = outcome.expect("not retried").expect_err("key exists");
    assert_eq!(err.code(), Some("already_exists"));
    assert_eq!(err.api().expect("api").status, 409);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_acquire_outlives_the_request_timeout() {
    let server = start_tcp().await;
    let holder = Client::new(&server.url).expect("holder");
    let lease = holder
        .acquire(&acquire_req("blocked", "holder", 30))
        .await
        .expect("holder acquire");
    let waiter = Client::builder()
        .endpoint(&server.url)
        .timeout(Duration::from_millis(300))
        .acquire_retries(0)
        .build()
        .expect("waiter");
    let req = AcquireRequest {
        block_seconds: Some(10),
        ..acquire_req("blocked", "waiter", 30)
    };
    let contender = tokio::spawn(async move { waiter.acquire(&req).await });
    tokio::time::sleep(Duration::from_millis(1000)).await;
    holder.release(&lease.lease_ref(), false).await.expect("release");
    let won = contender
        .await
        .expect("join")
        .expect("the server-side wait is not cut by the 300 ms timeout");
    assert_eq!(won.response.owner, "waiter");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_lost_during_the_work_is_reported_not_committed() {
    let server = start_tcp().await;
    let client = Client::new(&server.url).expect("client");
    let saboteur = Client::new(&server.url).expect("saboteur");
    let err = client
        .acquire_for_update(&acquire_req("fragile", "worker", 2), |session| async move {
            session.save(&json!({"done": true})).await?;
            saboteur.release(&session.lease_ref(), true).await?;
            tokio::time::sleep(Duration::from_millis(1500)).await;
            Ok(())
        })
        .await
        .expect_err("the keepalive saw the lease vanish");
    assert_eq!(err.code(), Some("lease_required"), "{err:?}");
    assert_eq!(
        client.get_public("", "fragile").await.expect("get"),
        None,
        "nothing committed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_may_release_the_session_itself() {
    let server = start_tcp().await;
    let client = Client::new(&server.url).expect("client");
    client
        .acquire_for_update(&acquire_req("early", "worker", 2), |session| async move {
            session.save(&json!({"early": true})).await?;
            session.release().await?;
            tokio::time::sleep(Duration::from_millis(1500)).await;
            Ok(())
        })
        .await
        .expect("an early release by the work is not a lost lease");
    let doc = client
        .get_public("", "early")
        .await
        .expect("get")
        .expect("committed by the work");
    assert_eq!(doc.body.as_ref(), br#"{"early":true}"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_work_rolls_the_lease_back() {
    let server = start_tcp().await;
    let client = Client::new(&server.url).expect("client");
    let req = acquire_req("abandoned", "worker", 30);
    let work = client.acquire_for_update(&req, |session| async move {
        session.save(&json!({"partial": true})).await?;
        std::future::pending::<()>().await;
        Ok(())
    });
    assert!(
        tokio::time::timeout(Duration::from_millis(500), work).await.is_err(),
        "work never finishes"
    );
    let mut released = false;
    for _ in 0..50 {
        if client
            .describe("", "abandoned")
            .await
            .expect("describe")
            .lease_id
            .is_empty()
        {
            released = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(released, "dropping the future rolls the lease back in the background");
    assert_eq!(client.get_public("", "abandoned").await.expect("get"), None);
}
