//! The lease actor's state machine.
//!
//! It exists only while its key is active: spawned by the router on the
//! first request, it retires (through the router, so no request can slip
//! in between) as soon as the key has no lease and no waiters. Everything
//! it knows lives in the backend; the actor's state is just a cache of the
//! metadata record plus the queue of parked acquirers.
//!
//! Staging lives in `stage`, release and transaction decisions in `txn`.

mod stage;
mod txn;

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ractor::{Actor, ActorProcessingErr, ActorRef};

use super::rules::{self, now_unix, with_current};
use super::{AcquireOk, AcquireReq, Block, DescribeOk, Doc, LeaseMsg, LeaseProof, Reply};
use crate::api_error::ApiError;
use crate::backend::{Backend, Durability, MetaRecord, WriteSet};
use crate::meta::{KeyMeta, Lease, StagedState};
use crate::router::RouterCore;
use txn::discard_staged;

/// Start-up arguments of a lease actor.
pub(crate) struct LeaseArgs<B: Backend> {
    pub core: Arc<RouterCore<B>>,
    pub ns: String,
    pub key: String,
}

/// The actor type; all state lives in [`KeyState`].
pub(crate) struct LeaseActor<B>(PhantomData<fn() -> B>);

impl<B> LeaseActor<B> {
    pub(crate) fn new() -> Self {
        LeaseActor(PhantomData)
    }
}

struct Waiter {
    id: u64,
    req: AcquireReq,
    reply: Reply<AcquireOk>,
    deadline: Option<Instant>,
}

/// What a lease actor holds while it runs.
pub(crate) struct KeyState<B: Backend> {
    core: Arc<RouterCore<B>>,
    ns: String,
    key: String,
    rec: Option<MetaRecord>,
    waiters: VecDeque<Waiter>,
    next_waiter: u64,
    /// The pending expiry timer of the current lease. Aborted when the
    /// lease goes away, so released leases leave no sleeping task behind
    /// (one per grant for a whole TTL would add up to hundreds of
    /// thousands at full load).
    expiry: Option<tokio::task::JoinHandle<Result<(), ractor::MessagingErr<LeaseMsg>>>>,
    /// The cached metadata has changes (an unwritten grant) that the store
    /// does not have yet. The actor may not retire before writing them: a
    /// reloaded record would carry an older fencing counter under this
    /// run's epoch, and a token could be handed out twice.
    dirty: bool,
    /// Whether `rec` has been read from the backend yet.
    loaded: bool,
    /// The explicit transaction this key is listed under in the router's
    /// participant list, if any.
    enlisted: Option<String>,
    /// An explicit transaction decided while this key's lease of it had
    /// staged nothing: the lease stays, further staging is refused.
    decided: Option<String>,
}

impl<B: Backend> Actor for LeaseActor<B> {
    type Msg = LeaseMsg;
    type State = KeyState<B>;
    type Arguments = LeaseArgs<B>;

    /// Loads nothing: the spawner registers the actor only after this
    /// returns, and a predecessor for the same key may still be finishing
    /// its last write until then. The metadata is read when the first
    /// message arrives, which is always after registration.
    async fn pre_start(
        &self,
        _myself: ActorRef<LeaseMsg>,
        args: LeaseArgs<B>,
    ) -> Result<KeyState<B>, ActorProcessingErr> {
        Ok(KeyState {
            core: args.core,
            ns: args.ns,
            key: args.key,
            rec: None,
            loaded: false,
            waiters: VecDeque::new(),
            next_waiter: 0,
            expiry: None,
            dirty: false,
            enlisted: None,
            decided: None,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<LeaseMsg>,
        msg: LeaseMsg,
        st: &mut KeyState<B>,
    ) -> Result<(), ActorProcessingErr> {
        let routed = !matches!(msg, LeaseMsg::Expire(_) | LeaseMsg::WaiterDeadline(_));
        if !st.loaded {
            if let Err(e) = st.load(&myself).await {
                refuse(msg, e);
                // Retire so the next request starts over with a fresh load.
                if st.core.finish(&st.ns, &st.key, myself.get_id(), routed, true) {
                    myself.stop(None);
                }
                return Ok(());
            }
        }
        match msg {
            LeaseMsg::Acquire(req, reply) => st.acquire(&myself, req, reply).await,
            LeaseMsg::Keepalive {
                proof,
                ttl_seconds,
                reply,
            } => {
                let r = st.keepalive(&myself, &proof, ttl_seconds).await;
                let _ = reply.send(r);
            }
            LeaseMsg::Release { proof, rollback, reply } => {
                let r = st.release(&proof, rollback).await;
                let _ = reply.send(r);
            }
            LeaseMsg::Decide {
                txn_id,
                decision,
                reply,
            } => {
                let r = st.decide(&txn_id, decision).await;
                let _ = reply.send(r);
            }
            LeaseMsg::Get { proof, reply } => {
                let r = st.get(proof.as_ref()).await;
                let _ = reply.send(r);
            }
            LeaseMsg::Update {
                proof,
                doc,
                if_version,
                if_etag,
                reply,
            } => {
                let r = st.update(&proof, doc, if_version, if_etag).await;
                let _ = reply.send(r);
            }
            LeaseMsg::Remove {
                proof,
                if_version,
                if_etag,
                reply,
            } => {
                let r = st.remove(&proof, if_version, if_etag).await;
                let _ = reply.send(r);
            }
            LeaseMsg::Describe(reply) => {
                let _ = reply.send(Ok(st.describe()));
            }
            LeaseMsg::Metadata {
                proof,
                if_version,
                query_hidden,
                reply,
            } => {
                let r = st.metadata(&proof, if_version, query_hidden).await;
                let _ = reply.send(r);
            }
            LeaseMsg::Touch(reply) => {
                st.expire_if_due(now_unix()).await;
                let _ = reply.send(Ok(()));
            }
            LeaseMsg::Expire(lease_id) => {
                let now = now_unix();
                let ours = st.lease().is_some_and(|l| l.lease_id == lease_id);
                let due = ours && st.lease().is_some_and(|l| rules::expired(l, now));
                if due && st.waiters.is_empty() {
                    st.mark_expired().await;
                } else if due {
                    st.expire_if_due(now).await;
                }
                if ours && st.lease().is_some_and(|l| !rules::expired(l, now_unix())) {
                    // Fired early (clock slew) or the clearing write failed:
                    // try again, or parked waiters would wait forever.
                    st.arm_expiry(&myself);
                }
            }
            LeaseMsg::WaiterDeadline(id) => st.waiter_deadline(id),
        }
        // Whatever freed the lease (release, expiry, a refused check that
        // cleared an expired lease), the next waiter gets it now.
        if st.lease().is_none() {
            st.hand_off(&myself).await;
        }
        if st.lease().is_none() {
            st.disarm_expiry();
        }
        // Leases cleared by this message leave the participant list.
        st.sync_enlistment();
        let mut idle = st.lease().is_none_or(|l| rules::expired(l, now_unix())) && st.waiters.is_empty();
        if idle && st.dirty {
            st.flush().await;
            idle = !st.dirty;
        }
        if st.core.finish(&st.ns, &st.key, myself.get_id(), routed, idle) {
            st.disarm_expiry();
            st.leave_txn();
            myself.stop(None);
        }
        Ok(())
    }

    async fn post_stop(&self, _myself: ActorRef<LeaseMsg>, st: &mut KeyState<B>) -> Result<(), ActorProcessingErr> {
        st.disarm_expiry();
        st.leave_txn();
        Ok(())
    }
}

/// Answers a message that cannot be served with `err`.
fn refuse(msg: LeaseMsg, err: ApiError) {
    let _ = match msg {
        LeaseMsg::Acquire(_, reply) => reply.send(Err(err.clone())).map_err(drop),
        LeaseMsg::Keepalive { reply, .. } => reply.send(Err(err.clone())).map_err(drop),
        LeaseMsg::Release { reply, .. } => reply.send(Err(err.clone())).map_err(drop),
        LeaseMsg::Decide { reply, .. } => reply.send(Err(err.clone())).map_err(drop),
        LeaseMsg::Get { reply, .. } => reply.send(Err(err.clone())).map_err(drop),
        LeaseMsg::Update { reply, .. } => reply.send(Err(err.clone())).map_err(drop),
        LeaseMsg::Remove { reply, .. } => reply.send(Err(err.clone())).map_err(drop),
        LeaseMsg::Describe(reply) => reply.send(Err(err.clone())).map_err(drop),
        LeaseMsg::Metadata { reply, .. } => reply.send(Err(err.clone())).map_err(drop),
        LeaseMsg::Touch(reply) => reply.send(Err(err.clone())).map_err(drop),
        LeaseMsg::Expire(_) | LeaseMsg::WaiterDeadline(_) => Ok(()),
    };
}

impl<B: Backend> KeyState<B> {
    /// Reads the key's metadata (once, on the first message).
    async fn load(&mut self, myself: &ActorRef<LeaseMsg>) -> Result<(), ApiError> {
        let mut rec = self
            .core
            .backend
            .load_meta(&self.ns, &self.key)
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
        if let Some(r) = rec.as_mut() {
            if r.meta.epoch != self.core.epoch {
                // Written by an earlier run, which may have crashed after
                // handing out tokens it never persisted: continue above the
                // durable reservation. Done at load, before any write of
                // this run stamps the new epoch on the stale counter.
                r.meta.fencing = r.meta.fencing.max(r.meta.fencing_reserved);
            }
        }
        self.rec = rec;
        self.settle_on_load().await?;
        self.sync_enlistment();
        self.loaded = true;
        self.arm_expiry(myself);
        Ok(())
    }

    /// (Re)starts the expiry timer for the current lease, replacing any
    /// earlier one.
    fn arm_expiry(&mut self, myself: &ActorRef<LeaseMsg>) {
        self.disarm_expiry();
        let Some(lease) = self.lease() else { return };
        let at = UNIX_EPOCH + Duration::from_secs(lease.expires_at_unix.max(0) as u64);
        let delay = at.duration_since(SystemTime::now()).unwrap_or_default() + Duration::from_millis(5);
        let id = lease.lease_id.clone();
        self.expiry = Some(myself.send_after(delay, move || LeaseMsg::Expire(id)));
    }

    fn disarm_expiry(&mut self) {
        if let Some(timer) = self.expiry.take() {
            timer.abort();
        }
    }

    fn meta(&self) -> KeyMeta {
        self.rec.as_ref().map(|r| r.meta.clone()).unwrap_or_default()
    }

    fn lease(&self) -> Option<&Lease> {
        self.rec.as_ref().and_then(|r| r.meta.lease.as_ref())
    }

    /// Writes `meta` (plus document changes) and caches the result.
    async fn persist(
        &mut self,
        mut meta: KeyMeta,
        put_docs: Vec<(String, bytes::Bytes)>,
        delete_docs: Vec<String>,
        durability: Durability,
    ) -> Result<(), ApiError> {
        meta.epoch = self.core.epoch.clone();
        meta.updated_at_unix = now_unix();
        let set = WriteSet {
            meta: meta.clone(),
            put_docs,
            delete_docs,
            durability,
        };
        let expect = self.rec.as_ref().map(|r| r.rev.clone());
        match self.core.backend.write(&self.ns, &self.key, expect.as_ref(), set).await {
            Ok(rev) => {
                self.rec = Some(MetaRecord { meta, rev });
                self.dirty = false;
                Ok(())
            }
            Err(e) => {
                tracing::error!(ns = %self.ns, key = %self.key, error = %e, "storage write failed");
                Err(ApiError::internal(e.to_string()))
            }
        }
    }

    /// Updates the cached metadata without writing it: the next write
    /// carries the change.
    fn cache(&mut self, mut meta: KeyMeta) {
        meta.epoch = self.core.epoch.clone();
        meta.updated_at_unix = now_unix();
        if let Some(rec) = self.rec.as_mut() {
            rec.meta = meta;
            self.dirty = true;
        }
    }

    /// Writes cached-only changes (lazily: the fencing reservation already
    /// covers a crash) so the actor can retire without losing them.
    async fn flush(&mut self) {
        let meta = self.meta();
        if let Err(e) = self.persist(meta, Vec::new(), Vec::new(), Durability::Lazy).await {
            tracing::warn!(error = %e, "writing cached lease state failed; the actor stays resident");
        }
    }

    /// Clears the lease (and discards what it staged, unless its explicit
    /// transaction was decided to commit) if it has expired.
    async fn expire_if_due(&mut self, now: i64) {
        if self.lease().is_some_and(|l| rules::expired(l, now)) {
            let mut meta = self.meta();
            let Ok(drop) = self.settle_expired(&mut meta).await else {
                return;
            };
            meta.lease = None;
            if let Err(e) = self.persist(meta, Vec::new(), drop, Durability::Lazy).await {
                tracing::warn!(error = %e, "clearing an expired lease failed; it is retried on the next request");
            }
        }
    }

    /// The timer found the lease expired and nobody waiting: discard its
    /// staging but keep the lease record, so its holder's next request is
    /// told `lease_expired` (and clears it) rather than `lease_required`.
    async fn mark_expired(&mut self) {
        let mut meta = self.meta();
        let Ok(drop) = self.settle_expired(&mut meta).await else {
            return;
        };
        if let Err(e) = self.persist(meta, Vec::new(), drop, Durability::Lazy).await {
            tracing::warn!(error = %e, "discarding an expired lease's staging failed; retried on the next request");
        }
    }

    async fn acquire(&mut self, myself: &ActorRef<LeaseMsg>, req: AcquireReq, reply: Reply<AcquireOk>) {
        let now = now_unix();
        if req.if_not_exists && self.rec.is_some() {
            let _ = reply.send(Err(with_current(ApiError::already_exists(), &self.meta())));
            return;
        }
        self.expire_if_due(now).await;
        if self.lease().is_none() && self.waiters.is_empty() {
            let r = self.grant(myself, &req, now).await;
            let _ = reply.send(r);
            return;
        }
        let deadline = match req.block {
            Block::NoWait => {
                let meta = self.meta();
                let err = with_current(ApiError::waiting(rules::retry_after(&meta, now)), &meta);
                let _ = reply.send(Err(err));
                return;
            }
            Block::Forever => None,
            // A deadline too far to represent is no deadline at all.
            Block::For(d) => Instant::now().checked_add(d),
        };
        let id = self.next_waiter;
        self.next_waiter += 1;
        if let Some(at) = deadline {
            myself.send_after(at.saturating_duration_since(Instant::now()), move || {
                LeaseMsg::WaiterDeadline(id)
            });
        }
        self.waiters.push_back(Waiter {
            id,
            req,
            reply,
            deadline,
        });
    }

    /// Grants a new lease: next fencing token, new lease and (implicit)
    /// transaction ids. Written durably only when the key is new or the
    /// fencing reservation must grow; otherwise not written at all until the
    /// holder's first durable operation, so a hand-off never waits for the
    /// disk. A crash before then loses a lease that had staged nothing.
    async fn grant(&mut self, myself: &ActorRef<LeaseMsg>, req: &AcquireReq, now: i64) -> Result<AcquireOk, ApiError> {
        let mut meta = self.meta();
        let drop = discard_staged(&mut meta);
        let token = meta.fencing + 1;
        let mut durable = self.rec.is_none();
        if token > meta.fencing_reserved {
            meta.fencing_reserved = token + self.core.cfg.fencing_reserve - 1;
            durable = true;
        }
        let (txn_id, txn_explicit) = match &req.txn_id {
            Some(t) => (t.clone(), true),
            None => (crate::ids::new_xid(), false),
        };
        let lease = Lease {
            lease_id: crate::ids::new_xid(),
            owner: req.owner.clone(),
            expires_at_unix: now + req.ttl_seconds,
            fencing_token: token,
            txn_id,
            txn_explicit,
        };
        meta.fencing = token;
        meta.lease = Some(lease.clone());
        if durable {
            self.persist(meta, Vec::new(), drop, Durability::Durable).await?;
        } else if !drop.is_empty() {
            self.persist(meta, Vec::new(), drop, Durability::Lazy).await?;
        } else {
            // Nothing to store yet: the token is covered by the durable
            // reservation and the lease has staged nothing. The holder's
            // first durable operation persists the lease with it.
            self.cache(meta);
        }
        // Listed before the holder hears of the lease, so a release of
        // another participant can never miss it.
        self.sync_enlistment();
        self.decided = None;
        self.arm_expiry(myself);
        let meta = self.meta();
        Ok(AcquireOk {
            key: req.key_display.clone(),
            lease_id: lease.lease_id,
            txn_id: lease.txn_id,
            owner: lease.owner,
            expires_at_unix: lease.expires_at_unix,
            version: meta.version,
            state_etag: meta.state_etag,
            fencing_token: token,
        })
    }

    /// Gives a free lease to the first waiter still listening.
    async fn hand_off(&mut self, myself: &ActorRef<LeaseMsg>) {
        while self.lease().is_none() {
            let Some(w) = self.waiters.pop_front() else { return };
            if w.reply.is_closed() {
                continue;
            }
            let now = now_unix();
            if w.deadline.is_some_and(|d| d <= Instant::now()) {
                let _ = w.reply.send(Err(with_current(ApiError::waiting(1), &self.meta())));
                continue;
            }
            let granted = self.grant(myself, &w.req, now).await;
            let ok = granted.is_ok();
            if w.reply.send(granted).is_err() && ok {
                // The caller left between the check and the send: it must
                // never hold the lease, so take it back at once.
                let mut meta = self.meta();
                meta.lease = None;
                let _ = self.persist(meta, Vec::new(), Vec::new(), Durability::Lazy).await;
            }
        }
    }

    fn waiter_deadline(&mut self, id: u64) {
        if let Some(pos) = self.waiters.iter().position(|w| w.id == id) {
            if let Some(w) = self.waiters.remove(pos) {
                let meta = self.meta();
                let err = with_current(ApiError::waiting(rules::retry_after(&meta, now_unix())), &meta);
                let _ = w.reply.send(Err(err));
            }
        }
    }

    /// Runs the lease check; an expired lease found on the way is cleared
    /// (its staging discarded) before the refusal is returned.
    async fn checked(&mut self, proof: &LeaseProof, check_txn: bool) -> Result<Lease, ApiError> {
        let now = now_unix();
        let meta = self.meta();
        match rules::check(&meta, proof, now, check_txn) {
            Ok(lease) => Ok(lease.clone()),
            Err(refused) => {
                if refused.clear_expired {
                    self.expire_if_due(now).await;
                }
                Err(refused.error)
            }
        }
    }

    async fn keepalive(&mut self, myself: &ActorRef<LeaseMsg>, proof: &LeaseProof, ttl: i64) -> Result<i64, ApiError> {
        self.checked(proof, true).await?;
        let mut meta = self.meta();
        let expires = now_unix() + ttl;
        if let Some(l) = meta.lease.as_mut() {
            l.expires_at_unix = expires;
        }
        self.persist(meta, Vec::new(), Vec::new(), Durability::Durable).await?;
        self.arm_expiry(myself);
        Ok(expires)
    }

    async fn get(&mut self, proof: Option<&LeaseProof>) -> Result<Option<Doc>, ApiError> {
        let meta = self.meta();
        let Some(proof) = proof else {
            let Some(doc) = meta.doc.clone() else { return Ok(None) };
            if meta.published_version < meta.version {
                return Err(ApiError::state_not_published());
            }
            return self
                .read(
                    &doc,
                    meta.state_etag.clone().unwrap_or_default(),
                    meta.published_version,
                    None,
                )
                .await;
        };
        let lease = self.checked(proof, false).await?;
        let fencing = Some(lease.fencing_token);
        match meta.staged_by(&lease.txn_id).map(|s| (&s.state, s.version)) {
            Some((StagedState::Removed, _)) => Ok(None),
            Some((StagedState::Doc { doc, etag, .. }, version)) => self.read(doc, etag.clone(), version, fencing).await,
            _ => match meta.doc.clone() {
                Some(doc) => {
                    self.read(&doc, meta.state_etag.clone().unwrap_or_default(), meta.version, fencing)
                        .await
                }
                None => Ok(None),
            },
        }
    }

    async fn read(
        &self,
        doc: &str,
        etag: String,
        version: i64,
        fencing_token: Option<i64>,
    ) -> Result<Option<Doc>, ApiError> {
        match self.core.backend.read_doc(&self.ns, &self.key, doc).await {
            Ok(Some(body)) => Ok(Some(Doc {
                body,
                etag,
                version,
                fencing_token,
            })),
            Ok(None) => Err(ApiError::internal(format!(
                "document {doc} of {}/{} is missing",
                self.ns, self.key
            ))),
            Err(e) => Err(ApiError::internal(e.to_string())),
        }
    }

    fn describe(&self) -> DescribeOk {
        let meta = self.meta();
        let lease = meta.lease.as_ref();
        DescribeOk {
            owner: lease.map(|l| l.owner.clone()),
            lease_id: lease.map(|l| l.lease_id.clone()),
            expires_at_unix: lease.map(|l| l.expires_at_unix),
            version: meta.version,
            state_etag: meta.state_etag.clone(),
            updated_at_unix: meta.updated_at_unix,
            query_hidden: meta.query_hidden,
        }
    }
}
