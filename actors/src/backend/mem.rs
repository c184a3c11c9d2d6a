//! `mem://`: everything in a map, for tests and throw-away servers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use parking_lot::Mutex;

use super::{Backend, BackendError, BackendResult, MetaRecord, Rev, WriteSet};
use crate::meta::KeyMeta;

/// In-memory backend. Revisions are a global counter, so a stale
/// precondition is detected exactly as an object store would.
#[derive(Debug, Default)]
pub struct MemBackend {
    metas: Mutex<HashMap<(String, String), (KeyMeta, u64)>>,
    docs: Mutex<HashMap<(String, String, String), Bytes>>,
    rev: AtomicU64,
}

impl MemBackend {
    /// An empty store.
    pub fn new() -> MemBackend {
        MemBackend::default()
    }

    /// Number of stored documents (tests use it to check clean-up).
    pub fn doc_count(&self) -> usize {
        self.docs.lock().len()
    }
}

impl Backend for MemBackend {
    async fn load_meta(&self, ns: &str, key: &str) -> BackendResult<Option<MetaRecord>> {
        let metas = self.metas.lock();
        Ok(metas
            .get(&(ns.to_string(), key.to_string()))
            .map(|(meta, rev)| MetaRecord {
                meta: meta.clone(),
                rev: Rev(rev.to_string()),
            }))
    }

    async fn read_doc(&self, ns: &str, key: &str, doc: &str) -> BackendResult<Option<Bytes>> {
        Ok(self
            .docs
            .lock()
            .get(&(ns.to_string(), key.to_string(), doc.to_string()))
            .cloned())
    }

    async fn write(&self, ns: &str, key: &str, expect: Option<&Rev>, set: WriteSet) -> BackendResult<Rev> {
        let mut metas = self.metas.lock();
        let id = (ns.to_string(), key.to_string());
        let current = metas.get(&id).map(|(_, r)| Rev(r.to_string()));
        if current.as_ref() != expect {
            return Err(BackendError::Conflict(format!("{ns}/{key}")));
        }
        let mut docs = self.docs.lock();
        for (doc, body) in set.put_docs {
            docs.insert((ns.to_string(), key.to_string(), doc), body);
        }
        for doc in set.delete_docs {
            docs.remove(&(ns.to_string(), key.to_string(), doc));
        }
        let rev = self.rev.fetch_add(1, Ordering::Relaxed) + 1;
        metas.insert(id, (set.meta, rev));
        Ok(Rev(rev.to_string()))
    }

    async fn leased_keys(&self) -> BackendResult<Vec<(String, String)>> {
        Ok(self
            .metas
            .lock()
            .iter()
            .filter(|(_, (m, _))| m.lease.is_some())
            .map(|((ns, key), _)| (ns.clone(), key.clone()))
            .collect())
    }
}
