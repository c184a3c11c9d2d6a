//! Explicit (multi-key) transactions: the durable decision record and the
//! in-memory list of keys taking part.
//!
//! A transaction the caller named at acquire spans several keys, and the
//! release of any one of them decides it for all (API.md §2.3). The
//! decision is written first, durably, as a small document under the
//! reserved namespace [`DECISIONS_NAMESPACE`] (key = the transaction id),
//! through the ordinary [`Backend`] port; only then is it applied to the
//! participants. A crash in between leaves the record, and every lease
//! actor that loads a key holding a lease (or staging) of a decided
//! transaction applies the decision before anything else, so no transaction
//! stays half committed.
//!
//! The participant list (`Txns`) is only a shortcut for fanning a fresh
//! decision out to the keys that are resident right now; it starts empty
//! after a restart, and correctness never depends on it.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use bytes::Bytes;
use parking_lot::Mutex;

use crate::backend::{Backend, BackendError, BackendResult, Durability, WriteSet};
use crate::meta::KeyMeta;

/// Reserved namespace holding one decision record per decided transaction.
/// Callers can never name it (namespaces starting with `.` are refused).
pub const DECISIONS_NAMESPACE: &str = ".txn-decisions";

/// Document id of the decision inside its record.
const DECISION_DOC: &str = "decision";

/// Serialises deciders of transactions that hash alike, so that "read the
/// record, write it if absent" is atomic per transaction.
const GATES: usize = 64;

/// The outcome of a transaction, final once recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Promote every participant's staged changes.
    Commit,
    /// Discard every participant's staged changes.
    Rollback,
}

impl Decision {
    /// The decision a release asks for (`rollback` flag of `/v1/release`).
    pub fn from_rollback(rollback: bool) -> Decision {
        if rollback {
            Decision::Rollback
        } else {
            Decision::Commit
        }
    }

    fn encode(self) -> &'static [u8] {
        match self {
            Decision::Commit => b"commit",
            Decision::Rollback => b"rollback",
        }
    }

    fn decode(bytes: &[u8]) -> Option<Decision> {
        match bytes {
            b"commit" => Some(Decision::Commit),
            b"rollback" => Some(Decision::Rollback),
            _ => None,
        }
    }
}

/// The recorded decision of `txn_id`, if one was made. Lease actors call it
/// only for explicit transactions, so implicit leases never pay for it.
pub async fn recorded_decision<B: Backend>(backend: &B, txn_id: &str) -> BackendResult<Option<Decision>> {
    let Some(body) = backend.read_doc(DECISIONS_NAMESPACE, txn_id, DECISION_DOC).await? else {
        return Ok(None);
    };
    Decision::decode(&body).map(Some).ok_or_else(|| BackendError::Corrupt {
        key: format!("{DECISIONS_NAMESPACE}/{txn_id}"),
        reason: format!("unknown decision {:?}", String::from_utf8_lossy(&body)),
    })
}

/// Writes the decision of `txn_id` durably (fdatasync before returning).
/// The record must not exist yet, and the caller must exclude concurrent
/// deciders of the same transaction: the router does both, which is why it
/// is the only caller outside of tests and a future coordinator.
pub async fn store_decision<B: Backend>(backend: &B, txn_id: &str, decision: Decision) -> BackendResult<()> {
    let set = WriteSet {
        // The stamp lets a later sweeper reap old decisions.
        meta: KeyMeta {
            updated_at_unix: crate::lease::now_unix(),
            ..KeyMeta::default()
        },
        put_docs: vec![(DECISION_DOC.to_string(), Bytes::from_static(decision.encode()))],
        delete_docs: Vec::new(),
        durability: Durability::Durable,
    };
    backend.write(DECISIONS_NAMESPACE, txn_id, None, set).await.map(drop)
}

/// `(namespace, key)` → how many actors of that key enlisted it. A count
/// rather than a set because a retiring actor and its successor may
/// briefly both have the key enlisted.
type Enlisted = HashMap<(String, String), usize>;

/// Participants of explicit transactions held by resident lease actors, and
/// the locks that make deciding a transaction atomic.
pub(crate) struct Txns {
    /// txn id → its participants.
    enlisted: Mutex<HashMap<String, Enlisted>>,
    gates: Vec<tokio::sync::Mutex<()>>,
}

impl Txns {
    pub(crate) fn new() -> Txns {
        Txns {
            enlisted: Mutex::new(HashMap::new()),
            gates: (0..GATES).map(|_| tokio::sync::Mutex::new(())).collect(),
        }
    }

    /// Records that the actor of `(ns, key)` holds a lease of `txn`.
    pub(crate) fn enlist(&self, txn: &str, ns: &str, key: &str) {
        let mut map = self.enlisted.lock();
        *map.entry(txn.to_string())
            .or_default()
            .entry((ns.to_string(), key.to_string()))
            .or_default() += 1;
    }

    /// Undoes one [`Txns::enlist`].
    pub(crate) fn leave(&self, txn: &str, ns: &str, key: &str) {
        let mut map = self.enlisted.lock();
        let Some(keys) = map.get_mut(txn) else { return };
        let id = (ns.to_string(), key.to_string());
        if let Some(n) = keys.get_mut(&id) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                keys.remove(&id);
            }
        }
        if keys.is_empty() {
            map.remove(txn);
        }
    }

    /// The keys whose resident actors hold a lease of `txn`.
    pub(crate) fn participants(&self, txn: &str) -> Vec<(String, String)> {
        self.enlisted
            .lock()
            .get(txn)
            .map(|keys| keys.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Decides `txn`: returns the recorded decision if there is one (the
    /// first decision wins), otherwise durably records `wanted` and returns
    /// it.
    pub(crate) async fn decide<B: Backend>(&self, backend: &B, txn: &str, wanted: Decision) -> BackendResult<Decision> {
        let mut h = std::hash::DefaultHasher::new();
        txn.hash(&mut h);
        let _gate = self.gates[(h.finish() as usize) % GATES].lock().await;
        if let Some(existing) = recorded_decision(backend, txn).await? {
            return Ok(existing);
        }
        store_decision(backend, txn, wanted).await?;
        Ok(wanted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::mem::MemBackend;

    #[test]
    fn decisions_round_trip_and_reject_garbage() {
        for d in [Decision::Commit, Decision::Rollback] {
            assert_eq!(Decision::decode(d.encode()), Some(d));
        }
        assert_eq!(Decision::decode(b"maybe"), None);
        assert_eq!(Decision::from_rollback(true), Decision::Rollback);
        assert_eq!(Decision::from_rollback(false), Decision::Commit);
    }

    #[test]
    fn enlistment_is_counted_per_key() {
        let t = Txns::new();
        t.enlist("T", "ns", "a");
        t.enlist("T", "ns", "a");
        t.enlist("T", "ns", "b");
        t.leave("T", "ns", "a");
        let mut p = t.participants("T");
        p.sort();
        assert_eq!(p, vec![("ns".into(), "a".into()), ("ns".into(), "b".into())]);
        t.leave("T", "ns", "a");
        t.leave("T", "ns", "b");
        t.leave("U", "ns", "b");
        assert!(t.participants("T").is_empty());
        assert!(t.enlisted.lock().is_empty(), "empty transactions are dropped");
    }

    #[tokio::test]
    async fn the_first_decision_wins() {
        let b = MemBackend::new();
        let t = Txns::new();
        assert_eq!(recorded_decision(&b, "T").await.expect("read"), None);
        assert_eq!(
            t.decide(&b, "T", Decision::Rollback).await.expect("decide"),
            Decision::Rollback
        );
        assert_eq!(
            t.decide(&b, "T", Decision::Commit).await.expect("decide"),
            Decision::Rollback
        );
        assert_eq!(
            recorded_decision(&b, "T").await.expect("read"),
            Some(Decision::Rollback)
        );
        assert_eq!(
            t.decide(&b, "U", Decision::Commit).await.expect("decide"),
            Decision::Commit
        );
    }

    #[tokio::test]
    async fn an_unreadable_record_is_an_error_not_a_decision() {
        let b = MemBackend::new();
        let set = WriteSet {
            meta: KeyMeta::default(),
            put_docs: vec![(DECISION_DOC.to_string(), Bytes::from_static(b"perhaps"))],
            delete_docs: Vec::new(),
            durability: Durability::Durable,
        };
        b.write(DECISIONS_NAMESPACE, "T", None, set).await.expect("write");
        assert!(matches!(
            recorded_decision(&b, "T").await,
            Err(BackendError::Corrupt { .. })
        ));
    }
}
