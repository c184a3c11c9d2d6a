//! Staging: update, remove and metadata write a transaction's changes
//! beside the committed state, under the lease's transaction id, and never
//! touch what readers see until the transaction commits.

use super::super::rules;
use super::super::{MetadataOk, RemoveOk, StagedDoc, UpdateOk};
use super::KeyState;
use crate::api_error::ApiError;
use crate::backend::{Backend, Durability};
use crate::lease::LeaseProof;
use crate::meta::{KeyMeta, Staged, StagedState};

impl<B: Backend> KeyState<B> {
    /// Version and ETag of the key as transaction `txn` sees it.
    fn seen_by(meta: &KeyMeta, txn: &str) -> (i64, String) {
        let committed = meta.state_etag.clone().unwrap_or_default();
        match meta.staged_by(txn) {
            Some(s) => match &s.state {
                StagedState::Doc { etag, .. } => (s.version, etag.clone()),
                StagedState::Removed => (s.version, String::new()),
                StagedState::Unchanged => (s.version, committed),
            },
            None => (meta.version, committed),
        }
    }

    fn cas(meta: &KeyMeta, txn: &str, if_version: Option<i64>, if_etag: Option<&str>) -> Result<(), ApiError> {
        let (version, etag) = Self::seen_by(meta, txn);
        if if_version.is_some_and(|v| v != version) {
            return Err(ApiError::version_conflict().with_current(version, etag));
        }
        if let Some(want) = if_etag {
            if want.trim_matches('"') != etag {
                return Err(ApiError::etag_mismatch().with_current(version, etag));
            }
        }
        Ok(())
    }

    pub(super) async fn update(
        &mut self,
        proof: &LeaseProof,
        doc: StagedDoc,
        if_version: Option<i64>,
        if_etag: Option<String>,
    ) -> Result<UpdateOk, ApiError> {
        let lease = self.checked(proof, true).await?;
        self.refuse_if_decided(&lease.txn_id)?;
        let mut meta = self.meta();
        rules::other_txn_staged(&meta, &lease.txn_id)?;
        Self::cas(&meta, &lease.txn_id, if_version, if_etag.as_deref())?;
        let mine = meta.staged_by(&lease.txn_id).cloned();
        let mut drop = Vec::new();
        if let Some(Staged {
            state: StagedState::Doc { doc, .. },
            ..
        }) = &mine
        {
            drop.push(doc.clone());
        }
        let id = crate::ids::new_uuid_v7();
        let bytes = doc.body.len() as u64;
        let staged = Staged {
            txn_id: lease.txn_id.clone(),
            version: mine.as_ref().map_or(meta.version + 1, |s| s.version),
            state: StagedState::Doc {
                doc: id.clone(),
                etag: doc.etag.clone(),
                bytes,
            },
            query_hidden: mine.and_then(|s| s.query_hidden),
        };
        let out = UpdateOk {
            new_version: staged.version,
            new_state_etag: doc.etag,
            bytes,
            query_hidden: staged.query_hidden.unwrap_or(meta.query_hidden),
        };
        meta.staged = Some(staged);
        self.persist(meta, vec![(id, doc.body)], drop, Durability::Durable)
            .await?;
        Ok(out)
    }

    pub(super) async fn remove(
        &mut self,
        proof: &LeaseProof,
        if_version: Option<i64>,
        if_etag: Option<String>,
    ) -> Result<RemoveOk, ApiError> {
        let lease = self.checked(proof, true).await?;
        self.refuse_if_decided(&lease.txn_id)?;
        let mut meta = self.meta();
        rules::other_txn_staged(&meta, &lease.txn_id)?;
        Self::cas(&meta, &lease.txn_id, if_version, if_etag.as_deref())?;
        let (current, _) = Self::seen_by(&meta, &lease.txn_id);
        let mine = meta.staged_by(&lease.txn_id).cloned();
        let staged_doc = match &mine {
            Some(Staged {
                state: StagedState::Doc { doc, .. },
                ..
            }) => Some(doc.clone()),
            _ => None,
        };
        if meta.doc.is_none() && staged_doc.is_none() {
            return Ok(RemoveOk {
                removed: false,
                new_version: current,
            });
        }
        meta.staged = Some(Staged {
            txn_id: lease.txn_id.clone(),
            version: current + 1,
            state: StagedState::Removed,
            query_hidden: mine.and_then(|s| s.query_hidden),
        });
        self.persist(meta, Vec::new(), staged_doc.into_iter().collect(), Durability::Durable)
            .await?;
        Ok(RemoveOk {
            removed: true,
            new_version: current + 1,
        })
    }

    pub(super) async fn metadata(
        &mut self,
        proof: &LeaseProof,
        if_version: Option<i64>,
        query_hidden: bool,
    ) -> Result<MetadataOk, ApiError> {
        let lease = self.checked(proof, true).await?;
        self.refuse_if_decided(&lease.txn_id)?;
        let mut meta = self.meta();
        let (current, etag) = Self::seen_by(&meta, &lease.txn_id);
        if if_version.is_some_and(|v| v != current) {
            return Err(ApiError::version_conflict().with_current(current, etag));
        }
        rules::other_txn_staged(&meta, &lease.txn_id)?;
        let mut staged = meta.staged_by(&lease.txn_id).cloned().unwrap_or(Staged {
            txn_id: lease.txn_id.clone(),
            version: meta.version + 1,
            state: StagedState::Unchanged,
            query_hidden: None,
        });
        staged.query_hidden = Some(query_hidden);
        let version = staged.version;
        meta.staged = Some(staged);
        self.persist(meta, Vec::new(), Vec::new(), Durability::Durable).await?;
        Ok(MetadataOk { version, query_hidden })
    }
}
