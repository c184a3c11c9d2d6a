//! The per-key metadata record: everything lockd keeps about a key besides
//! its documents.
//!
//! It is created by the first acquire and never deleted by normal use
//! (`if_not_exists` depends on that). The active lease and the staged
//! transaction live here too, so a restart finds them again; the fencing
//! counter and its durable reservation are explained in the crate docs.

use serde::{Deserialize, Serialize};

/// Persisted state of one key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyMeta {
    /// Committed version; 0 for a key whose state was never committed.
    pub version: i64,
    /// Version visible to public readers.
    pub published_version: i64,
    /// ETag of the committed document, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_etag: Option<String>,
    /// Id of the committed document, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub doc: Option<String>,
    /// Size of the committed document in bytes.
    #[serde(default)]
    pub doc_bytes: u64,
    /// Last fencing token handed out.
    pub fencing: i64,
    /// Durable high-water mark: no token above it was ever handed out.
    pub fencing_reserved: i64,
    /// Process run that last wrote this record (see `crate::epoch`).
    #[serde(default)]
    pub epoch: String,
    /// Committed `query_hidden` attribute.
    #[serde(default)]
    pub query_hidden: bool,
    /// Unix seconds of the last change.
    #[serde(default)]
    pub updated_at_unix: i64,
    /// The active lease, if any (it may have expired without being cleared).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<Lease>,
    /// Changes staged under a transaction, invisible to public readers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staged: Option<Staged>,
}

/// An exclusive lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// xid naming the lease.
    pub lease_id: String,
    /// Caller-supplied owner label.
    pub owner: String,
    /// Unix seconds at which the lease counts as expired (`<= now`).
    pub expires_at_unix: i64,
    /// The fencing token stamped on this lease.
    pub fencing_token: i64,
    /// Transaction the lease's changes belong to.
    pub txn_id: String,
    /// Whether the caller chose the transaction (a multi-key transaction)
    /// rather than the server minting one for this lease.
    pub txn_explicit: bool,
}

/// Staged, uncommitted changes of one transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Staged {
    /// The transaction that staged them.
    pub txn_id: String,
    /// Version the key gets if the staged state is committed.
    pub version: i64,
    /// What happens to the document on commit.
    pub state: StagedState,
    /// `query_hidden` to apply on commit, if staged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_hidden: Option<bool>,
}

/// The staged fate of the document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StagedState {
    /// Only attributes were staged; the document stays as committed.
    Unchanged,
    /// A new document replaces the committed one.
    Doc {
        /// Id of the staged document.
        doc: String,
        /// Its ETag.
        etag: String,
        /// Its size in bytes.
        bytes: u64,
    },
    /// The document is deleted on commit.
    Removed,
}

impl KeyMeta {
    /// Encodes for storage.
    pub fn encode(&self) -> Vec<u8> {
        // Serialising plain owned data with string keys cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Decodes what [`KeyMeta::encode`] wrote.
    pub fn decode(bytes: &[u8]) -> Result<KeyMeta, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// The staged state of `txn`, if that transaction staged anything.
    pub fn staged_by(&self, txn: &str) -> Option<&Staged> {
        self.staged.as_ref().filter(|s| s.txn_id == txn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let m = KeyMeta {
            version: 3,
            published_version: 3,
            state_etag: Some("e".into()),
            doc: Some("d1".into()),
            doc_bytes: 2,
            fencing: 9,
            fencing_reserved: 264,
            epoch: "x".into(),
            query_hidden: true,
            updated_at_unix: 17,
            lease: Some(Lease {
                lease_id: "l".into(),
                owner: "o".into(),
                expires_at_unix: 99,
                fencing_token: 9,
                txn_id: "t".into(),
                txn_explicit: false,
            }),
            staged: Some(Staged {
                txn_id: "t".into(),
                version: 4,
                state: StagedState::Doc {
                    doc: "d2".into(),
                    etag: "e2".into(),
                    bytes: 5,
                },
                query_hidden: None,
            }),
        };
        assert_eq!(KeyMeta::decode(&m.encode()).expect("decodes"), m);
        assert!(m.staged_by("t").is_some() && m.staged_by("u").is_none());
        assert!(KeyMeta::decode(b"{not json").is_err());
    }
}
