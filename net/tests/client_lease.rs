//! The client SDK against the real server: plain calls and lease sessions.

mod support;

use bytes::Bytes;
use lockd_net::client::{Client, ClientError, Conditions};
use serde_json::json;
use support::{acquire_req, commit_doc, start_tcp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_answer() {
    let server = start_tcp().await;
    let client = Client::new(&server.url).expect("client");
    client.healthz().await.expect("healthz");
    client.readyz().await.expect("readyz");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_round_trip_commits_on_release() {
    let server = start_tcp().await;
    let client = Client::new(&server.url).expect("client");
    let session = client
        .acquire_session(&acquire_req("orders/1", "worker-a", 30))
        .await
        .expect("acquire");
    assert_eq!(session.namespace(), "default");
    assert_eq!(session.key(), "orders/1");
    assert_eq!(session.fencing_token(), 1, "first acquire of a key gets token 1");
    assert_eq!(session.version(), 0);
    assert_eq!(session.lease_id().len(), 20, "lease ids are xids");

    assert_eq!(session.load::<serde_json::Value>().await.expect("load empty"), None);
    let staged = session.save(&json!({"step": 1, "items": [1, 2]})).await.expect("save");
    assert_eq!(staged.new_version, 1);
    assert_eq!(session.version(), 1);
    assert_eq!(session.etag(), staged.new_state_etag);

    let read: serde_json::Value = session
        .load()
        .await
        .expect("load")
        .expect("staged doc is visible to the holder");
    assert_eq!(read, json!({"step": 1, "items": [1, 2]}));
    assert_eq!(
        client.get_public("", "orders/1").await.expect("public get"),
        None,
        "staged data is not public"
    );

    let ka = session.keepalive(60).await.expect("keepalive");
    assert_eq!(session.expires_at_unix(), ka.expires_at_unix);
    assert!(session.release().await.expect("release").released);
    assert!(session.is_released());

    let doc = client
        .get_public("", "orders/1")
        .await
        .expect("public get")
        .expect("committed doc");
    let body: serde_json::Value = serde_json::from_slice(&doc.body).expect("committed JSON");
    assert_eq!(body, json!({"step": 1, "items": [1, 2]}));
    assert_eq!(doc.version, 1);
    assert_eq!(doc.etag, staged.new_state_etag);
    assert_eq!(doc.fencing_token, None);

    let described = client.describe("default", "orders/1").await.expect("describe");
    assert_eq!(described.version, 1);
    assert!(described.lease_id.is_empty(), "released lease is gone");

    let again = client
        .acquire_session(&acquire_req("orders/1", "worker-b", 30))
        .await
        .expect("re-acquire");
    assert_eq!(again.fencing_token(), 2, "fencing tokens grow per acquire");
    assert_eq!(again.version(), 1);
    assert_eq!(again.etag(), staged.new_state_etag);
    again.rollback().await.expect("rollback");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_calls_with_lease_refs() {
    let server = start_tcp().await;
    let client = Client::new(&server.url).expect("client");
    let lease = client.acquire(&acquire_req("plain", "o", 30)).await.expect("acquire");
    assert_eq!(lease.fencing_token, 1);
    assert_eq!(lease.response.owner, "o");
    let lease_ref = lease.lease_ref();

    let up = client
        .update(&lease_ref, Bytes::from_static(b"{ \"a\" : 1 }"), &Conditions::default())
        .await
        .expect("update");
    assert_eq!(up.new_version, 1);
    assert_eq!(up.bytes, 7, "the server stores the compacted document");
    let doc = client.get(&lease_ref).await.expect("get").expect("doc");
    assert_eq!(doc.body.as_ref(), br#"{"a":1}"#);
    assert_eq!(doc.version, 1);
    assert_eq!(doc.fencing_token, Some(1));

    let meta = client.metadata(&lease_ref, true, Some(1)).await.expect("metadata");
    assert!(meta.metadata.query_hidden);
    let removed = client.remove(&lease_ref, &Conditions::default()).await.expect("remove");
    assert!(removed.removed);
    assert_eq!(client.get(&lease_ref).await.expect("get after remove"), None);
    assert!(client.release(&lease_ref, true).await.expect("rollback").released);
    assert_eq!(
        client.get_public("default", "plain").await.expect("public"),
        None,
        "nothing was committed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cas_conflicts_carry_the_current_state() {
    let server = start_tcp().await;
    let client = Client::new(&server.url).expect("client");
    commit_doc(&client, "cas", &json!({"v": 1})).await;
    let session = client
        .acquire_session(&acquire_req("cas", "o", 30))
        .await
        .expect("acquire");
    let stale = Conditions {
        if_version: Some(7),
        if_etag: None,
    };
    let err = session
        .update_with(Bytes::from_static(b"{}"), &stale)
        .await
        .expect_err("stale version");
    assert_eq!(err.code(), Some("version_conflict"));
    let api = err.api().expect("api error");
    assert_eq!(api.status, 409);
    assert_eq!(api.current_version, 1);
    assert_eq!(api.current_etag, session.etag());

    let wrong_etag = Conditions {
        if_version: None,
        if_etag: Some("nope".into()),
    };
    let err = session
        .update_with(Bytes::from_static(b"{}"), &wrong_etag)
        .await
        .expect_err("stale etag");
    assert_eq!(err.code(), Some("etag_mismatch"));

    let right = Conditions {
        if_version: Some(1),
        if_etag: Some(session.etag()),
    };
    let ok = session
        .update_with(Bytes::from_static(b"{\"v\":2}"), &right)
        .await
        .expect("matching CAS");
    assert_eq!(ok.new_version, 2);
    session.release().await.expect("release");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_typed() {
    let server = start_tcp().await;
    let client = Client::new(&server.url).expect("client");
    let no_owner = lockd_net::wire::AcquireRequest {
        key: Some("k".into()),
        ..Default::default()
    };
    let err = client.acquire(&no_owner).await.expect_err("owner is required");
    assert_eq!(err.code(), Some("missing_owner"));
    assert_eq!(err.api().map(|a| a.status), Some(400));

    let lease = client
        .acquire(&acquire_req("k", "o", 30))
        .await
        .expect("acquire")
        .lease_ref();
    let forged = lockd_net::client::LeaseRef {
        fencing_token: lease.fencing_token + 5,
        ..lease.clone()
    };
    let err = client.get(&forged).await.expect_err("wrong fencing token");
    assert_eq!(err.code(), Some("fencing_mismatch"));
    assert!(matches!(err, ClientError::Api(_)));

    let bad_json = client
        .update(&lease, Bytes::from_static(b"{not json"), &Conditions::default())
        .await;
    assert_eq!(bad_json.expect_err("invalid JSON").code(), Some("invalid_body"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_of_a_gone_lease_counts_as_released() {
    let server = start_tcp().await;
    let client = Client::new(&server.url).expect("client");
    let lease = client
        .acquire(&acquire_req("twice", "o", 30))
        .await
        .expect("acquire")
        .lease_ref();
    assert!(client.release(&lease, false).await.expect("first release").released);
    assert!(client.release(&lease, false).await.expect("second release").released);
    let unknown = lockd_net::client::LeaseRef {
        key: "never-acquired".into(),
        ..lease
    };
    assert!(client.release(&unknown, true).await.expect("unknown key").released);
}
