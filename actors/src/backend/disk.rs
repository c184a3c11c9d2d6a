//! `disk://`: the embedded logstore.
//!
//! Layout inside the log: `m/<namespace>/<key>` holds the JSON metadata,
//! `d/<namespace>/<key>/<doc-id>` a document. Namespaces never contain `/`
//! and document ids never do, so the names cannot collide. A write set is
//! one logstore batch, hence atomic; durable ones return after fdatasync.
//! Documents above the log's inline limit go to blob files, written on the
//! blocking pool before the batch that references them.
//!
//! This process is the only writer of the directory (the logstore holds an
//! exclusive lock) and the lease actor is the only writer of its key, so the
//! revision precondition is not re-checked here.

use std::sync::Arc;

use bytes::Bytes;
use lockd_logstore::{Batch, LogStore, Value};

use super::{Backend, BackendError, BackendResult, Durability, MetaRecord, Rev, WriteSet};
use crate::meta::KeyMeta;

/// Backend over a [`LogStore`].
#[derive(Debug, Clone)]
pub struct DiskBackend {
    store: Arc<LogStore>,
    inline_max: usize,
}

fn meta_key(ns: &str, key: &str) -> String {
    format!("m/{ns}/{key}")
}

fn doc_key(ns: &str, key: &str, doc: &str) -> String {
    format!("d/{ns}/{key}/{doc}")
}

impl DiskBackend {
    /// Wraps an open store. `inline_max` must not exceed the store's
    /// `max_inline_value`; larger documents become blobs.
    pub fn new(store: Arc<LogStore>, inline_max: usize) -> DiskBackend {
        DiskBackend { store, inline_max }
    }

    /// The underlying store.
    pub fn store(&self) -> &Arc<LogStore> {
        &self.store
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(Arc<LogStore>) -> BackendResult<T> + Send + 'static,
    ) -> BackendResult<T> {
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || f(store))
            .await
            .map_err(|e| BackendError::Task(e.to_string()))?
    }
}

impl Backend for DiskBackend {
    async fn load_meta(&self, ns: &str, key: &str) -> BackendResult<Option<MetaRecord>> {
        let Some(entry) = self.store.get(meta_key(ns, key).as_bytes())? else {
            return Ok(None);
        };
        let bytes = entry.value.to_bytes()?;
        let meta = KeyMeta::decode(&bytes).map_err(|e| BackendError::Corrupt {
            key: format!("{ns}/{key}"),
            reason: e.to_string(),
        })?;
        Ok(Some(MetaRecord {
            meta,
            rev: Rev(entry.seq.to_string()),
        }))
    }

    async fn read_doc(&self, ns: &str, key: &str, doc: &str) -> BackendResult<Option<Bytes>> {
        let Some(entry) = self.store.get(doc_key(ns, key, doc).as_bytes())? else {
            return Ok(None);
        };
        match entry.value {
            Value::Inline(b) => Ok(Some(b)),
            blob @ Value::Blob(_) => self.blocking(move |_| Ok(Some(blob.to_bytes()?))).await,
        }
    }

    async fn write(&self, ns: &str, key: &str, _expect: Option<&Rev>, set: WriteSet) -> BackendResult<Rev> {
        let mut batch = Batch::new();
        for (doc, body) in set.put_docs {
            let name = doc_key(ns, key, &doc);
            if body.len() <= self.inline_max {
                batch.put(name, body);
            } else {
                let len = body.len() as u64;
                let blob = self
                    .blocking(move |s| Ok(s.write_blob(&mut std::io::Cursor::new(body), len)?))
                    .await?;
                batch.put_blob(name, blob);
            }
        }
        for doc in set.delete_docs {
            batch.delete(doc_key(ns, key, &doc));
        }
        batch.put(meta_key(ns, key), set.meta.encode());
        let seq = match set.durability {
            Durability::Durable => self.store.commit_async(batch).await?,
            Durability::Lazy => self.store.commit_nondurable_async_may_lose_on_crash(batch).await?,
        };
        Ok(Rev(seq.to_string()))
    }

    async fn leased_keys(&self) -> BackendResult<Vec<(String, String)>> {
        let store = Arc::clone(&self.store);
        self.blocking(move |_| {
            let mut out = Vec::new();
            let mut after: Option<Bytes> = None;
            loop {
                let page = store.scan(b"m/", after.as_deref(), 1024)?;
                let Some(last) = page.last() else { break };
                after = Some(last.key.clone());
                for e in page {
                    let meta = KeyMeta::decode(&e.value.to_bytes()?).map_err(|err| BackendError::Corrupt {
                        key: String::from_utf8_lossy(&e.key).into_owned(),
                        reason: err.to_string(),
                    })?;
                    if meta.lease.is_some() {
                        let name = String::from_utf8_lossy(&e.key[2..]).into_owned();
                        if let Some((ns, key)) = name.split_once('/') {
                            out.push((ns.to_string(), key.to_string()));
                        }
                    }
                }
            }
            Ok(out)
        })
        .await
    }
}
