//! Lease sessions: a held lease plus the bookkeeping a worker would
//! otherwise repeat on every call (fencing token, version, ETag), and the
//! acquire → work → release pattern with automatic keepalive.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::task::JoinHandle;

use super::error::{ApiError, ClientError};
use super::handle::Client;
use super::ops::Meta;
use super::types::{Conditions, LeaseRef};
use crate::wire::{
    AcquireRequest, AcquireResponse, KeepaliveResponse, ReleaseResponse, RemoveResponse, UpdateResponse,
};

/// Shortest pause between two background keepalives.
const MIN_KEEPALIVE_INTERVAL: Duration = Duration::from_millis(100);
/// TTL assumed when the request left it to the server and the answer's
/// expiry cannot be trusted to tell it (lockd's default TTL).
const FALLBACK_TTL_SECONDS: i64 = 30;

/// A held lease with its bookkeeping.
///
/// Every answer that carries `X-Fencing-Token`, `X-Key-Version` or `ETag`
/// updates the session, so later calls present the right token and callers
/// can read the last version and ETag seen for CAS writes. Clones share the
/// same lease and bookkeeping.
#[derive(Clone)]
pub struct LeaseSession {
    client: Client,
    acquired: Arc<AcquireResponse>,
    state: Arc<Mutex<SessionState>>,
}

#[derive(Debug)]
struct SessionState {
    lease: LeaseRef,
    version: i64,
    etag: String,
    expires_at_unix: i64,
    released: bool,
    lost: Option<ApiError>,
}

impl std::fmt::Debug for LeaseSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseSession")
            .field("state", &*self.lock())
            .finish_non_exhaustive()
    }
}

impl LeaseSession {
    /// Wraps a lease obtained elsewhere (e.g. a [`LeaseRef`] rebuilt from
    /// the environment by the CLI) so that it gets the same bookkeeping.
    pub fn from_lease_ref(client: Client, lease: LeaseRef) -> LeaseSession {
        let acquired = AcquireResponse {
            namespace: lease.namespace.clone(),
            lease_id: lease.lease_id.clone(),
            txn_id: lease.txn_id.clone(),
            key: lease.key.clone(),
            fencing_token: lease.fencing_token,
            ..AcquireResponse::default()
        };
        LeaseSession::new(client, acquired, lease)
    }

    fn new(client: Client, acquired: AcquireResponse, lease: LeaseRef) -> LeaseSession {
        let state = SessionState {
            lease,
            version: acquired.version,
            etag: acquired.state_etag.clone(),
            expires_at_unix: acquired.expires_at_unix,
            released: false,
            lost: None,
        };
        LeaseSession {
            client,
            acquired: Arc::new(acquired),
            state: Arc::new(Mutex::new(state)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, SessionState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The identifiers to present on guarded calls, with the latest fencing token.
    pub fn lease_ref(&self) -> LeaseRef {
        self.lock().lease.clone()
    }

    /// The acquire answer this session started from.
    pub fn acquire_response(&self) -> &AcquireResponse {
        &self.acquired
    }

    /// Namespace the server resolved for the key.
    pub fn namespace(&self) -> String {
        self.lock().lease.namespace.clone()
    }

    /// The leased key.
    pub fn key(&self) -> String {
        self.lock().lease.key.clone()
    }

    /// Id of the lease.
    pub fn lease_id(&self) -> String {
        self.lock().lease.lease_id.clone()
    }

    /// Transaction the lease's staged changes belong to.
    pub fn txn_id(&self) -> String {
        self.lock().lease.txn_id.clone()
    }

    /// Latest fencing token the server reported for this lease.
    pub fn fencing_token(&self) -> i64 {
        self.lock().lease.fencing_token
    }

    /// Last state version seen (acquire, read or write), for `if_version`.
    pub fn version(&self) -> i64 {
        self.lock().version
    }

    /// Last state ETag seen (empty when there is no state), for `if_etag`.
    pub fn etag(&self) -> String {
        self.lock().etag.clone()
    }

    /// Lease expiry (unix seconds) from the latest acquire or keepalive answer.
    pub fn expires_at_unix(&self) -> i64 {
        self.lock().expires_at_unix
    }

    /// Whether this session has already released (or rolled back) its lease.
    pub fn is_released(&self) -> bool {
        self.lock().released
    }

    fn absorb(&self, meta: &Meta) {
        let mut state = self.lock();
        if let Some(token) = meta.fencing_token {
            state.lease.fencing_token = token;
        }
        if let Some(version) = meta.version {
            state.version = version;
        }
        if let Some(etag) = &meta.etag {
            state.etag.clone_from(etag);
        }
    }

    /// Reads the state (the lease holder's view) and decodes it as JSON;
    /// `None` when the key has no state.
    pub async fn load<T: DeserializeOwned>(&self) -> Result<Option<T>, ClientError> {
        match self.load_bytes().await? {
            None => Ok(None),
            Some(body) => serde_json::from_slice(&body)
                .map(Some)
                .map_err(|e| ClientError::Decode(format!("state of {}: {e}", self.key()))),
        }
    }

    /// Reads the state as raw JSON bytes; `None` when the key has no state.
    pub async fn load_bytes(&self) -> Result<Option<Bytes>, ClientError> {
        let doc = self.client.get(&self.lease_ref()).await?;
        Ok(doc.map(|doc| {
            self.absorb(&Meta {
                fencing_token: doc.fencing_token,
                version: Some(doc.version),
                etag: Some(doc.etag),
            });
            doc.body
        }))
    }

    /// Stages `value`, encoded as JSON, as the key's new state.
    pub async fn save<T: Serialize + ?Sized>(&self, value: &T) -> Result<UpdateResponse, ClientError> {
        let body = serde_json::to_vec(value)
            .map_err(|e| ClientError::InvalidInput(format!("cannot encode state as JSON: {e}")))?;
        self.update_bytes(Bytes::from(body)).await
    }

    /// Stages `body` (a JSON document) as the key's new state.
    pub async fn update_bytes(&self, body: Bytes) -> Result<UpdateResponse, ClientError> {
        self.update_with(body, &Conditions::default()).await
    }

    /// Stages `body` only if the state still matches `cond`.
    pub async fn update_with(&self, body: Bytes, cond: &Conditions) -> Result<UpdateResponse, ClientError> {
        let (response, meta) = self.client.update_meta(&self.lease_ref(), body, cond).await?;
        self.absorb(&meta);
        let mut state = self.lock();
        state.version = response.new_version;
        state.etag.clone_from(&response.new_state_etag);
        drop(state);
        Ok(response)
    }

    /// Stages deletion of the key's state.
    pub async fn remove(&self) -> Result<RemoveResponse, ClientError> {
        let (response, meta) = self
            .client
            .remove_meta(&self.lease_ref(), &Conditions::default())
            .await?;
        self.absorb(&meta);
        let mut state = self.lock();
        if response.removed {
            state.version = response.new_version;
            state.etag.clear();
        }
        drop(state);
        Ok(response)
    }

    /// Extends the lease to `ttl_seconds` from now (≤ 0: the server's default).
    pub async fn keepalive(&self, ttl_seconds: i64) -> Result<KeepaliveResponse, ClientError> {
        self.keepalive_opt(Some(ttl_seconds)).await
    }

    async fn keepalive_opt(&self, ttl_seconds: Option<i64>) -> Result<KeepaliveResponse, ClientError> {
        let (response, meta) = self.client.keepalive_meta(&self.lease_ref(), ttl_seconds).await?;
        self.absorb(&meta);
        self.lock().expires_at_unix = response.expires_at_unix;
        Ok(response)
    }

    /// Releases the lease and commits everything staged under it.
    pub async fn release(&self) -> Result<ReleaseResponse, ClientError> {
        self.finish(false).await
    }

    /// Releases the lease and discards everything staged under it.
    pub async fn rollback(&self) -> Result<ReleaseResponse, ClientError> {
        self.finish(true).await
    }

    async fn finish(&self, rollback: bool) -> Result<ReleaseResponse, ClientError> {
        let response = self.client.release(&self.lease_ref(), rollback).await?;
        self.lock().released = true;
        Ok(response)
    }
}

impl Client {
    /// Acquires a lease (with the retries of [`Client::acquire`]) and wraps
    /// it in a [`LeaseSession`].
    pub async fn acquire_session(&self, req: &AcquireRequest) -> Result<LeaseSession, ClientError> {
        let lease = self.acquire(req).await?;
        let lease_ref = lease.lease_ref();
        Ok(LeaseSession::new(self.clone(), lease.response, lease_ref))
    }

    /// Acquires the lease, runs `work` with a session on it while a
    /// background task keeps the lease alive, then always releases it:
    /// committing when `work` succeeds, rolling back when it fails. Returns
    /// `work`'s result — or the error that lost the lease, if keepalive
    /// found it gone, because then nothing was committed. If the returned
    /// future is dropped before completion, the lease is rolled back in
    /// the background. The keepalive is a tokio task: on a current-thread
    /// runtime it only runs while `work` is awaiting, so long CPU-bound
    /// work belongs in `spawn_blocking`.
    pub async fn acquire_for_update<F, Fut, T>(&self, req: &AcquireRequest, work: F) -> Result<T, ClientError>
    where
        F: FnOnce(LeaseSession) -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        let session = self.acquire_session(req).await?;
        let requested_ttl = req.ttl_seconds.filter(|t| *t > 0);
        let mut guard = KeepaliveGuard::start(session.clone(), requested_ttl, ttl_estimate(req, &session));
        let outcome = work(session.clone()).await;
        guard.stop().await;
        let lost = session.lock().lost.take();
        match (outcome, lost) {
            (Ok(value), None) => {
                if !session.is_released() {
                    session.release().await?;
                }
                Ok(value)
            }
            (Ok(_), Some(lost)) => {
                session.rollback().await.ok();
                Err(ClientError::Api(Box::new(lost)))
            }
            (Err(err), _) => {
                if !session.is_released() {
                    if let Err(rollback_err) = session.rollback().await {
                        tracing::warn!(key = %session.key(), error = %rollback_err, "rollback after failed work failed");
                    }
                }
                Err(err)
            }
        }
    }
}

/// The TTL the server most likely granted, for scheduling keepalives: the
/// requested one (lockd's default when none was asked for), lowered to
/// what the answer's expiry shows when that is shorter — the server clamps
/// to its maximum, and a client clock running ahead only makes the
/// schedule more cautious.
fn ttl_estimate(req: &AcquireRequest, session: &LeaseSession) -> i64 {
    let asked = req.ttl_seconds.filter(|t| *t > 0).unwrap_or(FALLBACK_TTL_SECONDS);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0));
    let observed = session.expires_at_unix().saturating_sub(now);
    if observed >= 1 {
        asked.min(observed + 1)
    } else {
        asked
    }
}

/// Pause before the next keepalive. The server sets the expiry to
/// `floor(now + ttl)`, so a lease refreshed at `anchor` lives at least
/// `ttl − 1` seconds after it; the next keepalive goes at half of what is
/// left, measured on the local monotonic clock (no clock sync needed).
fn next_keepalive_in(ttl_seconds: i64, anchor: Instant, now: Instant) -> Duration {
    let life = Duration::from_secs(u64::try_from(ttl_seconds.saturating_sub(1)).unwrap_or(0));
    let remaining = (anchor + life).saturating_duration_since(now);
    (remaining / 2).max(MIN_KEEPALIVE_INTERVAL)
}

/// Whether a failed keepalive means the lease is gone for good (as opposed
/// to a transient failure worth retrying).
fn lease_lost(err: &ClientError) -> Option<&ApiError> {
    err.api()
        .filter(|api| (400..500).contains(&api.status) && api.status != 408 && api.status != 429)
}

/// Runs the keepalive loop and stops it when dropped; a guard dropped
/// without [`KeepaliveGuard::stop`] (the caller's future was cancelled)
/// also rolls the lease back in the background.
struct KeepaliveGuard {
    session: LeaseSession,
    task: Option<JoinHandle<()>>,
}

impl KeepaliveGuard {
    /// `requested_ttl` is sent with each keepalive (`None`: the server's
    /// default); `schedule_ttl` is the TTL the schedule assumes.
    fn start(session: LeaseSession, requested_ttl: Option<i64>, schedule_ttl: i64) -> KeepaliveGuard {
        let worker = session.clone();
        let task = tokio::spawn(async move {
            let mut anchor = Instant::now();
            loop {
                tokio::time::sleep(next_keepalive_in(schedule_ttl, anchor, Instant::now())).await;
                if worker.is_released() {
                    return;
                }
                let sent = Instant::now();
                match worker.keepalive_opt(requested_ttl).await {
                    Ok(_) => anchor = sent,
                    Err(err) => {
                        if let Some(api) = lease_lost(&err) {
                            let mut state = worker.lock();
                            // A release by the work itself is not a loss.
                            if !state.released {
                                tracing::warn!(key = %state.lease.key, error = %err, "lease lost, keepalive stopped");
                                state.lost = Some(api.clone());
                            }
                            return;
                        }
                        tracing::debug!(key = %worker.key(), error = %err, "keepalive failed, retrying");
                    }
                }
            }
        });
        KeepaliveGuard {
            session,
            task: Some(task),
        }
    }

    async fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            // The task only ends by finishing or by this abort.
            let _ = task.await;
        }
    }
}

impl Drop for KeepaliveGuard {
    fn drop(&mut self) {
        let Some(task) = self.task.take() else { return };
        task.abort();
        if self.session.is_released() {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let session = self.session.clone();
            runtime.spawn(async move {
                if let Err(err) = session.rollback().await {
                    tracing::warn!(key = %session.key(), error = %err, "rollback of an abandoned lease failed");
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> LeaseSession {
        let client = Client::new("http://127.0.0.1:1").expect("test setup");
        LeaseSession::from_lease_ref(
            client,
            LeaseRef {
                namespace: "ns".into(),
                key: "k".into(),
                lease_id: "l".into(),
                txn_id: "t".into(),
                fencing_token: 1,
            },
        )
    }

    #[test]
    fn answers_update_the_fencing_token_version_and_etag() {
        let s = session();
        s.absorb(&Meta {
            fencing_token: Some(5),
            version: Some(3),
            etag: Some("e".into()),
        });
        assert_eq!(s.fencing_token(), 5);
        assert_eq!(s.lease_ref().fencing_token, 5);
        assert_eq!((s.version(), s.etag()), (3, "e".to_owned()));
        s.absorb(&Meta::default());
        assert_eq!(
            (s.fencing_token(), s.version(), s.etag()),
            (5, 3, "e".to_owned()),
            "absent headers keep values"
        );
        let clone = s.clone();
        clone.absorb(&Meta {
            fencing_token: Some(6),
            ..Meta::default()
        });
        assert_eq!(s.fencing_token(), 6, "clones share the bookkeeping");
    }

    #[test]
    fn keepalive_schedule_stays_inside_the_guaranteed_lifetime() {
        let t0 = Instant::now();
        assert_eq!(next_keepalive_in(2, t0, t0), Duration::from_millis(500));
        assert_eq!(next_keepalive_in(30, t0, t0), Duration::from_millis(14_500));
        assert_eq!(
            next_keepalive_in(30, t0, t0 + Duration::from_secs(27)),
            Duration::from_secs(1)
        );
        assert_eq!(next_keepalive_in(1, t0, t0), MIN_KEEPALIVE_INTERVAL);
        assert_eq!(
            next_keepalive_in(30, t0, t0 + Duration::from_secs(60)),
            MIN_KEEPALIVE_INTERVAL
        );
    }

    #[test]
    fn lost_lease_classification() {
        let api = |status: u16| {
            ClientError::Api(Box::new(ApiError {
                status,
                code: String::new(),
                detail: String::new(),
                current_version: 0,
                current_etag: String::new(),
                retry_after_seconds: 0,
                leader_endpoint: String::new(),
                correlation_id: None,
            }))
        };
        assert!(lease_lost(&api(403)).is_some());
        assert!(lease_lost(&api(409)).is_some());
        assert!(lease_lost(&api(429)).is_none());
        assert!(lease_lost(&api(503)).is_none());
        assert!(lease_lost(&ClientError::Timeout).is_none());
    }

    #[test]
    fn ttl_estimate_prefers_the_request_and_respects_the_answer() {
        let s = session();
        let req = |ttl: Option<i64>| AcquireRequest {
            ttl_seconds: ttl,
            ..AcquireRequest::default()
        };
        assert_eq!(
            ttl_estimate(&req(Some(7)), &s),
            7,
            "no usable expiry: the request decides"
        );
        assert_eq!(ttl_estimate(&req(None), &s), FALLBACK_TTL_SECONDS);
        let now = i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs()).expect("now");
        s.lock().expires_at_unix = now + 1800;
        assert!(
            ttl_estimate(&req(Some(3600)), &s) <= 1801,
            "a TTL clamped by the server is noticed"
        );
        assert_eq!(ttl_estimate(&req(Some(7)), &s), 7);
        s.lock().expires_at_unix = now + 10;
        assert!(
            ttl_estimate(&req(None), &s) <= 11,
            "a shorter server default is noticed"
        );
    }
}
