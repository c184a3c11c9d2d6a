//! The router: `(namespace, key)` → the key's lease actor.
//!
//! Actors are spawned on demand and retire when idle, so the registry must
//! make two things impossible: two actors for one key, and a request sent
//! to an actor that is stopping. The registry is sharded under plain
//! mutexes (never held across an await). Spawning happens outside the lock;
//! if two requests race to spawn, the second one to re-lock keeps the first
//! actor and stops its own. Each slot counts the requests routed to its
//! actor and not yet handled; an actor retires only from inside the lock and
//! only when that count is zero, so nothing can be queued to it afterwards.
//!
//! The router also decides explicit transactions: a release that the key's
//! actor hands back as explicit is recorded durably (the first decision
//! wins) and then fanned out to every participant; see [`crate::txn`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use ractor::rpc::CallResult;
use ractor::{Actor, ActorId, ActorRef};

use crate::api_error::ApiError;
use crate::backend::Backend;
use crate::lease::{
    AcquireOk, AcquireReq, Block, DescribeOk, Doc, LeaseActor, LeaseArgs, LeaseMsg, LeaseProof, MetadataOk, Released,
    RemoveOk, StagedDoc, UpdateOk,
};
use crate::names;
use crate::txn::{Decision, Txns};

const SHARDS: usize = 64;

/// Server-wide lease settings (lockd's defaults).
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    /// Namespace used when a request names none.
    pub default_namespace: String,
    /// TTL for `ttl_seconds <= 0`.
    pub default_ttl_seconds: i64,
    /// Larger TTLs are clamped to this.
    pub max_ttl_seconds: i64,
    /// Wait used for negative `block_seconds` other than -1.
    pub acquire_block: Duration,
    /// Fencing tokens reserved per durable write (see crate docs).
    pub fencing_reserve: i64,
}

impl Default for LeaseConfig {
    fn default() -> Self {
        LeaseConfig {
            default_namespace: names::DEFAULT_NAMESPACE.to_string(),
            default_ttl_seconds: 30,
            max_ttl_seconds: 30 * 60,
            acquire_block: Duration::from_secs(60),
            fencing_reserve: 256,
        }
    }
}

impl LeaseConfig {
    /// `ttl_seconds <= 0` → default; above the maximum → the maximum.
    pub fn ttl(&self, requested: i64) -> i64 {
        if requested <= 0 {
            self.default_ttl_seconds
        } else {
            requested.min(self.max_ttl_seconds)
        }
    }

    /// `block_seconds` semantics of API.md §2.1.
    pub fn block(&self, block_seconds: i64) -> Block {
        match block_seconds {
            -1 => Block::NoWait,
            0 => Block::Forever,
            // Beyond a year is as good as forever, and keeps deadlines representable.
            n if n > 365 * 24 * 3600 => Block::Forever,
            n if n > 0 => Block::For(Duration::from_secs(n as u64)),
            _ => Block::For(self.acquire_block),
        }
    }
}

struct Slot {
    actor: ActorRef<LeaseMsg>,
    inflight: usize,
}

type Shard = Mutex<HashMap<(String, String), Slot>>;

/// Shared by the router handle and every lease actor.
pub(crate) struct RouterCore<B: Backend> {
    pub backend: Arc<B>,
    pub cfg: LeaseConfig,
    /// Identifies this process run in the metadata it writes.
    pub epoch: String,
    /// Participants of explicit transactions, and their deciding locks.
    pub txns: Txns,
    shards: Vec<Shard>,
}

impl<B: Backend> RouterCore<B> {
    fn shard(&self, ns: &str, key: &str) -> &Shard {
        use std::hash::{Hash, Hasher};
        let mut h = std::hash::DefaultHasher::new();
        (ns, key).hash(&mut h);
        &self.shards[(h.finish() as usize) % SHARDS]
    }

    /// Called by an actor after each message. Returns true if the actor was
    /// removed from the registry and must stop.
    pub(crate) fn finish(&self, ns: &str, key: &str, id: ActorId, routed: bool, idle: bool) -> bool {
        let mut shard = self.shard(ns, key).lock();
        let id_key = (ns.to_string(), key.to_string());
        let Some(slot) = shard.get_mut(&id_key).filter(|s| s.actor.get_id() == id) else {
            return true;
        };
        if routed {
            slot.inflight = slot.inflight.saturating_sub(1);
        }
        if idle && slot.inflight == 0 {
            shard.remove(&id_key);
            return true;
        }
        false
    }
}

/// Routes requests to lease actors. Cheap to clone.
pub struct Router<B: Backend> {
    core: Arc<RouterCore<B>>,
}

impl<B: Backend> Clone for Router<B> {
    fn clone(&self) -> Self {
        Router {
            core: Arc::clone(&self.core),
        }
    }
}

impl<B: Backend> Router<B> {
    /// A router over `backend`. Call [`Router::sweep`] once at start-up.
    pub fn new(backend: Arc<B>, cfg: LeaseConfig) -> Router<B> {
        Router {
            core: Arc::new(RouterCore {
                backend,
                cfg,
                epoch: crate::ids::new_uuid_v7(),
                txns: Txns::new(),
                shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            }),
        }
    }

    /// The settings in use.
    pub fn config(&self) -> &LeaseConfig {
        &self.core.cfg
    }

    /// The backend.
    pub fn backend(&self) -> &Arc<B> {
        &self.core.backend
    }

    /// Number of lease actors alive right now.
    pub fn resident_actors(&self) -> usize {
        self.core.shards.iter().map(|s| s.lock().len()).sum()
    }

    /// Wakes an actor for every key whose stored metadata holds a lease, so
    /// leases that survived a restart get their expiry timers back (and
    /// already expired ones are cleared). Returns how many keys it touched.
    pub async fn sweep(&self) -> Result<usize, ApiError> {
        let keys = self
            .core
            .backend
            .leased_keys()
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let n = keys.len();
        for (ns, key) in keys {
            self.call(&ns, &key, LeaseMsg::Touch).await?;
        }
        Ok(n)
    }

    async fn actor(&self, ns: &str, key: &str) -> Result<ActorRef<LeaseMsg>, ApiError> {
        let id = (ns.to_string(), key.to_string());
        let shard = self.core.shard(ns, key);
        if let Some(slot) = shard.lock().get_mut(&id) {
            slot.inflight += 1;
            return Ok(slot.actor.clone());
        }
        let args = LeaseArgs {
            core: Arc::clone(&self.core),
            ns: ns.to_string(),
            key: key.to_string(),
        };
        let (fresh, _handle) = Actor::spawn(None, LeaseActor::<B>::new(), args)
            .await
            .map_err(|e| ApiError::internal(format!("spawning the actor of {ns}/{key}: {e}")))?;
        let mut guard = shard.lock();
        let slot = guard.entry(id).or_insert_with(|| Slot {
            actor: fresh.clone(),
            inflight: 0,
        });
        slot.inflight += 1;
        let chosen = slot.actor.clone();
        drop(guard);
        if chosen.get_id() != fresh.get_id() {
            fresh.stop(None);
        }
        Ok(chosen)
    }

    async fn call<T: Send + 'static>(
        &self,
        ns: &str,
        key: &str,
        build: impl FnOnce(ractor::RpcReplyPort<Result<T, ApiError>>) -> LeaseMsg,
    ) -> Result<T, ApiError> {
        let actor = self.actor(ns, key).await?;
        match actor.call(build, None).await {
            Ok(CallResult::Success(r)) => r,
            Ok(CallResult::Timeout) => Err(ApiError::internal("lease actor timed out")),
            Ok(CallResult::SenderError) | Err(_) => {
                self.forget(ns, key, &actor);
                Err(ApiError::internal(format!(
                    "the actor of {ns}/{key} stopped unexpectedly"
                )))
            }
        }
    }

    /// Drops a registry slot whose actor died (a panic), so the next request
    /// spawns a fresh one from stored state.
    fn forget(&self, ns: &str, key: &str, actor: &ActorRef<LeaseMsg>) {
        let mut shard = self.core.shard(ns, key).lock();
        let id = (ns.to_string(), key.to_string());
        if shard.get(&id).is_some_and(|s| s.actor.get_id() == actor.get_id()) {
            shard.remove(&id);
        }
    }

    fn ns(&self, raw: &str) -> Result<String, ApiError> {
        names::resolve_namespace(raw, &self.core.cfg.default_namespace)
    }

    /// `/v1/acquire`. `key` empty → a generated UUIDv7 key.
    #[allow(clippy::too_many_arguments)]
    pub async fn acquire(
        &self,
        namespace: &str,
        key: &str,
        owner: &str,
        ttl_seconds: i64,
        block_seconds: i64,
        if_not_exists: bool,
        txn_id: Option<&str>,
    ) -> Result<(String, AcquireOk), ApiError> {
        let ns = self.ns(namespace)?;
        let (display, storage) = if names::is_blank(key) {
            let k = crate::ids::new_uuid_v7();
            (k.clone(), k)
        } else {
            let k = names::normalize_acquire_key(key, &ns)?;
            (k.display, k.storage)
        };
        if owner.trim().is_empty() {
            return Err(ApiError::missing_owner());
        }
        let txn_id = match txn_id.map(str::trim).filter(|t| !t.is_empty()) {
            Some(t) if !crate::ids::is_xid(t) => return Err(ApiError::invalid_txn()),
            Some(t) => Some(t.to_string()),
            None => None,
        };
        let req = AcquireReq {
            key_display: display,
            owner: owner.to_string(),
            ttl_seconds: self.core.cfg.ttl(ttl_seconds),
            block: self.core.cfg.block(block_seconds),
            if_not_exists,
            txn_id,
        };
        let ok = self.call(&ns, &storage, |r| LeaseMsg::Acquire(req, r)).await?;
        Ok((ns, ok))
    }

    fn target(&self, namespace: &str, key: &str) -> Result<(String, String), ApiError> {
        Ok((self.ns(namespace)?, names::normalize_key(key)?))
    }

    /// `/v1/keepalive`: returns the new expiry.
    pub async fn keepalive(
        &self,
        namespace: &str,
        key: &str,
        proof: LeaseProof,
        ttl_seconds: i64,
    ) -> Result<i64, ApiError> {
        let (ns, key) = self.target(namespace, key)?;
        let ttl_seconds = self.core.cfg.ttl(ttl_seconds);
        self.call(&ns, &key, |reply| LeaseMsg::Keepalive {
            proof,
            ttl_seconds,
            reply,
        })
        .await
    }

    /// `/v1/release`: commit (or roll back) and free the lease. For a lease
    /// of an explicit transaction this decides the whole transaction: the
    /// key's actor records the decision durably (an earlier one wins,
    /// silently, as in lockd) and applies it to its own key; the other
    /// participants get it before the answer.
    pub async fn release(
        &self,
        namespace: &str,
        key: &str,
        proof: LeaseProof,
        rollback: bool,
    ) -> Result<bool, ApiError> {
        let (ns, key) = self.target(namespace, key)?;
        let released = self
            .call(&ns, &key, |reply| LeaseMsg::Release { proof, rollback, reply })
            .await?;
        if let Released::Explicit(txn, decision) = released {
            if decision != Decision::from_rollback(rollback) {
                tracing::debug!(txn = %txn, ?decision, "an earlier decision of the transaction wins");
            }
            // Detached: a client hanging up mid fan-out drops this request
            // future, and must not leave the transaction half applied.
            let router = self.clone();
            tokio::spawn(async move { router.fan_out(&ns, &key, &txn, decision).await })
                .await
                .map_err(|e| ApiError::internal(format!("applying a transaction decision: {e}")))?;
        }
        Ok(true)
    }

    /// Sends the recorded `decision` of `txn` to every resident participant
    /// but the releasing key `(ns, key)`, which applied it already. One that
    /// fails keeps its lease and staging; the recorded decision settles it
    /// on its release, expiry or next load.
    async fn fan_out(&self, ns: &str, key: &str, txn: &str, decision: Decision) {
        let mut others = tokio::task::JoinSet::new();
        for (pns, pkey) in self.core.txns.participants(txn) {
            if pns == ns && pkey == key {
                continue;
            }
            let router = self.clone();
            let txn_id = txn.to_string();
            others.spawn(async move {
                let r = router
                    .call(&pns, &pkey, |reply| LeaseMsg::Decide {
                        txn_id: txn_id.clone(),
                        decision,
                        reply,
                    })
                    .await;
                if let Err(e) = r {
                    tracing::warn!(ns = %pns, key = %pkey, txn = %txn_id, error = %e,
                        "applying a transaction decision failed; it is applied when the key is next released, expires or is loaded");
                }
            });
        }
        while let Some(joined) = others.join_next().await {
            if let Err(e) = joined {
                tracing::warn!(txn = %txn, error = %e, "a transaction fan-out task failed");
            }
        }
    }

    /// `/v1/get`: `None` proof for a public read; `Ok(None)` is a 204.
    pub async fn get(&self, namespace: &str, key: &str, proof: Option<LeaseProof>) -> Result<Option<Doc>, ApiError> {
        let (ns, key) = self.target(namespace, key)?;
        if proof.is_none() && !self.is_resident(&ns, &key) {
            if let Some(answer) = self.read_committed(&ns, &key).await {
                return answer;
            }
        }
        self.call(&ns, &key, |reply| LeaseMsg::Get { proof, reply }).await
    }

    fn is_resident(&self, ns: &str, key: &str) -> bool {
        let id = (ns.to_string(), key.to_string());
        self.core.shard(ns, key).lock().contains_key(&id)
    }

    /// A public read of a key no actor owns, straight from the backend:
    /// spawning an actor to read and retire at once was about a third of
    /// the server's CPU per read. Committed state only changes through an
    /// actor, and a commit is visible in the backend before it is
    /// acknowledged, so this sees every acknowledged commit.
    ///
    /// `None` hands the read to the actor: the key has a lease or staged
    /// changes (after a restart, an actor may first have to settle them),
    /// or a concurrent commit replaced the document between the two reads.
    async fn read_committed(&self, ns: &str, key: &str) -> Option<Result<Option<Doc>, ApiError>> {
        let record = match self.core.backend.load_meta(ns, key).await {
            Ok(record) => record,
            Err(e) => return Some(Err(ApiError::internal(e.to_string()))),
        };
        let Some(meta) = record.map(|r| r.meta) else {
            return Some(Ok(None));
        };
        if meta.lease.is_some() || meta.staged.is_some() {
            return None;
        }
        let Some(doc) = meta.doc else { return Some(Ok(None)) };
        if meta.published_version < meta.version {
            return Some(Err(ApiError::state_not_published()));
        }
        match self.core.backend.read_doc(ns, key, &doc).await {
            Ok(Some(body)) => Some(Ok(Some(Doc {
                body,
                etag: meta.state_etag.unwrap_or_default(),
                version: meta.published_version,
                fencing_token: None,
            }))),
            Ok(None) => None,
            Err(e) => Some(Err(ApiError::internal(e.to_string()))),
        }
    }

    /// `/v1/update`: stage a (compacted, validated) JSON document.
    pub async fn update(
        &self,
        namespace: &str,
        key: &str,
        proof: LeaseProof,
        body: Bytes,
        if_version: Option<i64>,
        if_etag: Option<String>,
    ) -> Result<UpdateOk, ApiError> {
        let (ns, key) = self.target(namespace, key)?;
        let doc = StagedDoc::new(body);
        self.call(&ns, &key, |reply| LeaseMsg::Update {
            proof,
            doc,
            if_version,
            if_etag,
            reply,
        })
        .await
    }

    /// `/v1/remove`: stage deletion of the document.
    pub async fn remove(
        &self,
        namespace: &str,
        key: &str,
        proof: LeaseProof,
        if_version: Option<i64>,
        if_etag: Option<String>,
    ) -> Result<RemoveOk, ApiError> {
        let (ns, key) = self.target(namespace, key)?;
        self.call(&ns, &key, |reply| LeaseMsg::Remove {
            proof,
            if_version,
            if_etag,
            reply,
        })
        .await
    }

    /// `/v1/describe`.
    pub async fn describe(&self, namespace: &str, key: &str) -> Result<DescribeOk, ApiError> {
        let (ns, key) = self.target(namespace, key)?;
        self.call(&ns, &key, LeaseMsg::Describe).await
    }

    /// `/v1/metadata`: stage `query_hidden`.
    pub async fn metadata(
        &self,
        namespace: &str,
        key: &str,
        proof: LeaseProof,
        if_version: Option<i64>,
        query_hidden: bool,
    ) -> Result<MetadataOk, ApiError> {
        let (ns, key) = self.target(namespace, key)?;
        self.call(&ns, &key, |reply| LeaseMsg::Metadata {
            proof,
            if_version,
            query_hidden,
            reply,
        })
        .await
    }
}
