//! Crash test of the real server: clients run acquire → update → release
//! cycles against `lockd --store disk://…`, the server is SIGKILLed at a
//! random moment, restarted on the same directory, and every commit a
//! client saw acknowledged must be there; fencing tokens never go back.
//!
//! Each client owns one key per round and writes `{"c":<client>,"seq":<n>}`
//! with increasing `n`, so after the restart the committed document of that
//! key must be the last acknowledged one, or the one whose release was in
//! flight at the kill (it may or may not have landed). A shared key that all
//! clients take turns on (1 s leases) carries the fencing check: the first
//! acquire after a restart must get a token above every token handed out
//! before the crash.
//!
//! `LOCKD_SERVER_CRASH_ITERS` sets the number of rounds (default 20).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use lockd_tests::server::{Client, LockdServer, Proto, Reply};

const CLIENTS: usize = 4;
const SHARED_KEY: &str = "crash-shared";

/// What one client knows about its key in the current round.
#[derive(Debug, Default, Clone)]
struct KeyLog {
    key: String,
    /// Highest `seq` whose release answered 200.
    acked: Option<u64>,
    /// `seq` whose release was sent but not answered when the server died.
    in_flight: Option<u64>,
}

/// Highest fencing token any client was granted on the shared key.
type Fencing = Arc<Mutex<i64>>;

fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).expect("getrandom");
    u64::from_le_bytes(b)
}

fn iterations() -> usize {
    std::env::var("LOCKD_SERVER_CRASH_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
}

fn start(store: &str) -> LockdServer {
    LockdServer::start(&[
        "--store",
        store,
        "--listen",
        "127.0.0.1:0",
        "--disable-mtls",
        "--log-level",
        "info",
    ])
}

async fn post(client: &Client, path: &str, headers: &[(&str, &str)], body: String) -> Option<Reply> {
    let mut map = http::HeaderMap::new();
    for (k, v) in headers {
        map.insert(
            http::HeaderName::from_bytes(k.as_bytes()).expect("header name"),
            http::HeaderValue::from_str(v).expect("header value"),
        );
    }
    client.try_send_map("POST", path, map, body).await.ok()
}

struct Lease {
    id: String,
    txn: String,
    token: i64,
}

/// Acquires `key` without waiting; `None` when held (or the server is gone).
async fn acquire(client: &Client, key: &str, ttl: i64) -> Option<Lease> {
    let body = format!(r#"{{"key":"{key}","owner":"crash","ttl_seconds":{ttl},"block_seconds":-1}}"#);
    let r = post(client, "/v1/acquire", &[], body).await?;
    if r.status != 200 {
        assert_eq!(
            r.error_code().as_deref(),
            Some("waiting"),
            "acquire {key}: {}",
            r.text()
        );
        return None;
    }
    let v = r.json();
    Some(Lease {
        id: v["lease_id"].as_str().expect("lease_id").to_string(),
        txn: v["txn_id"].as_str().expect("txn_id").to_string(),
        token: v["fencing_token"].as_i64().expect("fencing_token"),
    })
}

async fn release(client: &Client, key: &str, lease: &Lease) -> Option<Reply> {
    let token = lease.token.to_string();
    let body = format!(
        r#"{{"key":"{key}","lease_id":"{}","txn_id":"{}"}}"#,
        lease.id, lease.txn
    );
    post(client, "/v1/release", &[("X-Fencing-Token", &token)], body).await
}

/// One client's load until the server dies: cycles on its own key, and now
/// and then a turn on the shared key.
async fn run_client(client: Client, c: usize, log: Arc<Mutex<KeyLog>>, fencing: Fencing) {
    let key = log.lock().expect("log").key.clone();
    for seq in 1u64.. {
        if seq % 4 == 0 {
            if let Some(lease) = acquire(&client, SHARED_KEY, 1).await {
                {
                    let mut max = fencing.lock().expect("fencing");
                    *max = (*max).max(lease.token);
                }
                if release(&client, SHARED_KEY, &lease).await.is_none() {
                    return;
                }
            }
        }
        let Some(lease) = acquire(&client, &key, 30).await else {
            return;
        };
        let token = lease.token.to_string();
        let guard = [
            ("X-Lease-ID", lease.id.as_str()),
            ("X-Txn-ID", lease.txn.as_str()),
            ("X-Fencing-Token", token.as_str()),
        ];
        let doc = format!(r#"{{"c":{c},"seq":{seq}}}"#);
        let Some(r) = post(&client, &format!("/v1/update?key={key}"), &guard, doc).await else {
            return;
        };
        assert_eq!(r.status, 200, "update {key}: {}", r.text());
        log.lock().expect("log").in_flight = Some(seq);
        let Some(r) = release(&client, &key, &lease).await else {
            return;
        };
        assert_eq!(r.status, 200, "release {key}: {}", r.text());
        let mut l = log.lock().expect("log");
        l.acked = Some(seq);
        l.in_flight = None;
    }
}

/// After a restart: every key holds its last acknowledged document or the
/// one whose release was in flight.
async fn check_round(client: &Client, logs: &[Arc<Mutex<KeyLog>>], round: usize) -> usize {
    let mut acked_total = 0;
    for (c, log) in logs.iter().enumerate() {
        let l = log.lock().expect("log").clone();
        let r = client
            .send("POST", &format!("/v1/get?key={}&public=1", l.key), &[], "")
            .await;
        let found = match r.status.as_u16() {
            204 => None,
            200 => {
                let v = r.json();
                assert_eq!(v["c"].as_u64(), Some(c as u64), "{}: {}", l.key, r.text());
                v["seq"].as_u64()
            }
            other => panic!("round {round}: get {} answered {other}: {}", l.key, r.text()),
        };
        let allowed = [l.acked, l.in_flight];
        assert!(
            allowed.contains(&found) && (found.is_some() || l.acked.is_none()),
            "round {round}: {} holds seq {found:?}; last acknowledged {:?}, in flight {:?}",
            l.key,
            l.acked,
            l.in_flight
        );
        acked_total += l.acked.unwrap_or(0) as usize;
    }
    acked_total
}

/// The first grant on the shared key after a restart must be above every
/// token seen before it. Waits out a 1 s lease left by the crash.
async fn check_fencing(client: &Client, fencing: &Fencing, round: usize) {
    let seen = *fencing.lock().expect("fencing");
    let body = format!(r#"{{"key":"{SHARED_KEY}","owner":"checker","ttl_seconds":1,"block_seconds":5}}"#);
    let r = client.send("POST", "/v1/acquire", &[], body).await;
    assert_eq!(r.status, 200, "round {round}: shared acquire: {}", r.text());
    let v = r.json();
    let token = v["fencing_token"].as_i64().expect("fencing_token");
    assert!(token > seen, "round {round}: fencing went from {seen} to {token}");
    *fencing.lock().expect("fencing") = token;
    let lease = Lease {
        id: v["lease_id"].as_str().expect("lease_id").to_string(),
        txn: v["txn_id"].as_str().expect("txn_id").to_string(),
        token,
    };
    let r = release(client, SHARED_KEY, &lease).await.expect("release");
    assert_eq!(r.status, 200, "round {round}: shared release: {}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_commits_survive_kill9_and_fencing_never_goes_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = format!("disk://{}", dir.path().join("data").display());
    let fencing: Fencing = Arc::new(Mutex::new(0));
    let mut server = start(&store);
    let mut acked_total = 0;
    for round in 0..iterations() {
        let logs: Vec<Arc<Mutex<KeyLog>>> = (0..CLIENTS)
            .map(|c| {
                Arc::new(Mutex::new(KeyLog {
                    key: format!("crash-r{round}-c{c}"),
                    ..KeyLog::default()
                }))
            })
            .collect();
        let tasks: Vec<_> = logs
            .iter()
            .enumerate()
            .map(|(c, log)| tokio::spawn(run_client(server.client(Proto::Http1), c, log.clone(), fencing.clone())))
            .collect();
        tokio::time::sleep(Duration::from_millis(100 + random_u64() % 300)).await;
        server.kill9();
        for t in tasks {
            t.await.expect("client task panicked");
        }
        server = start(&store);
        let client = server.client(Proto::Http1);
        acked_total += check_round(&client, &logs, round).await;
        check_fencing(&client, &fencing, round).await;
    }
    assert!(
        acked_total > 0,
        "no commit was ever acknowledged: the test checked nothing"
    );
    server.assert_healthy();
}
