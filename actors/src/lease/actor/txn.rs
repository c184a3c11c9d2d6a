//! Ending a transaction on this key: release, and the decisions of
//! explicit transactions (see [`crate::txn`] for the protocol).
//!
//! An implicit transaction lives on one key and is committed or rolled back
//! right here by its release. An explicit one may span many keys, so its
//! release only validates the lease and hands the transaction back to the
//! router, which records the decision durably and then sends every
//! participant (this key included) a `Decide`. A key that missed the
//! fan-out — a crash in between, a failed write — applies the recorded
//! decision the next time it is loaded, released or found expired; those
//! are the only places that read the decision record, and only for leases
//! of explicit transactions.

use super::super::rules::{self, now_unix, with_current};
use super::super::Released;
use super::KeyState;
use crate::api_error::ApiError;
use crate::backend::{Backend, Durability};
use crate::lease::LeaseProof;
use crate::meta::{KeyMeta, Staged, StagedState};
use crate::txn::{recorded_decision, Decision};

impl<B: Backend> KeyState<B> {
    /// `/v1/release`: idempotent for unknown, foreign or expired leases.
    pub(super) async fn release(&mut self, proof: &LeaseProof, rollback: bool) -> Result<Released, ApiError> {
        let now = now_unix();
        let meta = self.meta();
        let Some(lease) = meta.lease.clone().filter(|l| l.lease_id == proof.lease_id) else {
            return Ok(Released::Done);
        };
        if rules::expired(&lease, now) {
            self.expire_if_due(now).await;
            return Ok(Released::Done);
        }
        if lease.fencing_token != proof.fencing_token {
            return Ok(Released::Done);
        }
        if proof.txn_id.as_deref() != Some(lease.txn_id.as_str()) {
            return Err(with_current(
                ApiError::txn_mismatch("transaction id does not match the lease"),
                &meta,
            ));
        }
        rules::other_txn_staged(&meta, &lease.txn_id)?;
        if lease.txn_explicit {
            // Decided here, in this key's turn: its own expiry cannot slip
            // a rollback in between (an earlier decision still wins).
            let decision = self
                .decide_txn(&lease.txn_id, Decision::from_rollback(rollback))
                .await?;
            self.apply_decision(meta, &lease.txn_id, decision).await?;
            return Ok(Released::Explicit(lease.txn_id, decision));
        }
        let mut next = meta;
        next.lease = None;
        let drop = settle(&mut next, &lease.txn_id, Decision::from_rollback(rollback));
        self.persist(next, Vec::new(), drop, Durability::Durable).await?;
        Ok(Released::Done)
    }

    /// `Decide`: another participant's release recorded `decision` for
    /// `txn`. A key that staged under it commits or discards and frees its
    /// lease; one that only joined keeps its lease until its own release
    /// (API.md §2.3) but may stage nothing more into the decided
    /// transaction. Anything else (no lease, a later holder, an implicit
    /// transaction) is left alone.
    pub(super) async fn decide(&mut self, txn: &str, decision: Decision) -> Result<(), ApiError> {
        let meta = self.meta();
        if !meta.lease.as_ref().is_some_and(|l| l.txn_explicit && l.txn_id == txn) {
            return Ok(());
        }
        if meta.staged_by(txn).is_none() {
            self.decided = Some(txn.to_string());
            return Ok(());
        }
        self.apply_decision(meta, txn, decision).await
    }

    /// Refuses staging under a transaction this key learned is decided.
    pub(super) fn refuse_if_decided(&self, txn: &str) -> Result<(), ApiError> {
        if self.decided.as_deref() == Some(txn) {
            return Err(ApiError::txn_conflict());
        }
        Ok(())
    }

    /// Records `wanted` as the decision of `txn` unless one is recorded
    /// already (that one wins and is returned).
    async fn decide_txn(&self, txn: &str, wanted: Decision) -> Result<Decision, ApiError> {
        self.core
            .txns
            .decide(&*self.core.backend, txn, wanted)
            .await
            .map_err(|e| {
                tracing::error!(txn = %txn, error = %e, "recording a transaction decision failed");
                ApiError::internal(format!("recording the decision of transaction {txn}: {e}"))
            })
    }

    /// Commits or discards the staging of `txn` and clears the lease, in one
    /// durable write: the caller answers "released" right after.
    async fn apply_decision(&mut self, mut meta: KeyMeta, txn: &str, decision: Decision) -> Result<(), ApiError> {
        meta.lease = None;
        let drop = settle(&mut meta, txn, decision);
        self.persist(meta, Vec::new(), drop, Durability::Durable).await
    }

    /// Right after loading: a stored lease of an explicit transaction that
    /// was decided while this key had no actor (a crash between recording
    /// and fan-out, a fan-out write that failed) gets that decision now,
    /// before any request sees the key.
    pub(super) async fn settle_on_load(&mut self) -> Result<(), ApiError> {
        let meta = self.meta();
        let Some(lease) = meta.lease.as_ref().filter(|l| l.txn_explicit) else {
            return Ok(());
        };
        // A lease that staged nothing here is not a participant: the
        // decision leaves it alone (its holder's own release, or expiry,
        // ends it), exactly as a fan-out would have.
        if meta.staged_by(&lease.txn_id).is_none() {
            return Ok(());
        }
        let txn = lease.txn_id.clone();
        match self.decision_of(&txn).await? {
            Some(decision) => self.apply_decision(meta, &txn, decision).await,
            None => Ok(()),
        }
    }

    /// Takes the staging of an expired lease out of `meta` and returns the
    /// documents to delete. Normally it is discarded; but if the lease
    /// belongs to an explicit transaction, the transaction's recorded
    /// decision is applied (recording a rollback first if there is none).
    /// The caller may write the result lazily: were it lost, the stored
    /// lease, staging and decision would settle the key again on its next
    /// load.
    pub(super) async fn settle_expired(&self, meta: &mut KeyMeta) -> Result<Vec<String>, ApiError> {
        let explicit = meta
            .lease
            .as_ref()
            .filter(|l| l.txn_explicit && meta.staged_by(&l.txn_id).is_some())
            .map(|l| l.txn_id.clone());
        let Some(txn) = explicit else {
            return Ok(discard_staged(meta));
        };
        // An explicit transaction is atomic: a participant that expires
        // undecided decides the whole transaction as rolled back, through
        // the same first-decision-wins record a release uses. So a release
        // racing this expiry either got its decision in first (and it is
        // applied here too) or finds this rollback and applies that.
        let decision = self.decide_txn(&txn, Decision::Rollback).await?;
        Ok(settle(meta, &txn, decision))
    }

    async fn decision_of(&self, txn: &str) -> Result<Option<Decision>, ApiError> {
        recorded_decision(&*self.core.backend, txn).await.map_err(|e| {
            tracing::error!(txn = %txn, error = %e, "reading a transaction decision failed");
            ApiError::internal(e.to_string())
        })
    }

    /// Keeps the router's participant list in step with this key's lease:
    /// enlisted under its transaction from the grant on, so no decision can
    /// miss a key that stages later. Costs a comparison, no allocation, for
    /// implicit leases.
    pub(super) fn sync_enlistment(&mut self) {
        let holds = self.lease().filter(|l| l.txn_explicit).map(|l| l.txn_id.as_str());
        if holds == self.enlisted.as_deref() {
            return;
        }
        let holds = holds.map(str::to_string);
        self.leave_txn();
        if let Some(txn) = holds {
            self.core.txns.enlist(&txn, &self.ns, &self.key);
            self.enlisted = Some(txn);
        }
    }

    /// Drops this key from the participant list (the actor is stopping or
    /// its explicit lease is gone).
    pub(super) fn leave_txn(&mut self) {
        if let Some(txn) = self.enlisted.take() {
            self.core.txns.leave(&txn, &self.ns, &self.key);
        }
    }
}

/// Applies `decision` to the staging of `txn` in `meta`; another
/// transaction's staging is left alone. Returns the documents to delete.
fn settle(meta: &mut KeyMeta, txn: &str, decision: Decision) -> Vec<String> {
    if meta.staged_by(txn).is_none() {
        return Vec::new();
    }
    match (decision, meta.staged.take()) {
        (Decision::Commit, Some(staged)) => {
            let mut drop = Vec::new();
            commit(meta, staged, &mut drop);
            drop
        }
        (_, staged) => {
            meta.staged = staged;
            discard_staged(meta)
        }
    }
}

/// Drops staged changes from `meta`; returns the staged document to delete.
pub(super) fn discard_staged(meta: &mut KeyMeta) -> Vec<String> {
    match meta.staged.take() {
        Some(Staged {
            state: StagedState::Doc { doc, .. },
            ..
        }) => vec![doc],
        _ => Vec::new(),
    }
}

/// Promotes staged changes into the committed metadata.
fn commit(meta: &mut KeyMeta, staged: Staged, drop: &mut Vec<String>) {
    match staged.state {
        StagedState::Doc { doc, etag, bytes } => {
            drop.extend(meta.doc.replace(doc));
            meta.state_etag = Some(etag);
            meta.doc_bytes = bytes;
            meta.version = staged.version;
            meta.published_version = staged.version;
        }
        StagedState::Removed => {
            drop.extend(meta.doc.take());
            meta.state_etag = None;
            meta.doc_bytes = 0;
            meta.version = staged.version;
            meta.published_version = staged.version;
        }
        // lockd quirk kept: an attribute-only commit leaves the version.
        StagedState::Unchanged => {}
    }
    if let Some(q) = staged.query_hidden {
        meta.query_hidden = q;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn staged(txn: &str) -> KeyMeta {
        KeyMeta {
            version: 1,
            published_version: 1,
            doc: Some("old".into()),
            state_etag: Some("e1".into()),
            staged: Some(Staged {
                txn_id: txn.into(),
                version: 2,
                state: StagedState::Doc {
                    doc: "new".into(),
                    etag: "e2".into(),
                    bytes: 3,
                },
                query_hidden: Some(true),
            }),
            ..KeyMeta::default()
        }
    }

    #[test]
    fn settle_commits_or_discards_only_its_own_transaction() {
        let mut m = staged("T");
        assert_eq!(settle(&mut m, "T", Decision::Commit), vec!["old".to_string()]);
        assert_eq!((m.version, m.doc.as_deref(), m.query_hidden), (2, Some("new"), true));
        assert!(m.staged.is_none());

        let mut m = staged("T");
        assert_eq!(settle(&mut m, "T", Decision::Rollback), vec!["new".to_string()]);
        assert_eq!((m.version, m.doc.as_deref(), m.query_hidden), (1, Some("old"), false));
        assert!(m.staged.is_none());

        let mut m = staged("U");
        assert!(settle(&mut m, "T", Decision::Commit).is_empty());
        assert_eq!(m, staged("U"), "another transaction's staging is untouched");
    }
}
