//! `lockd-actors`: the lease and state core of lockd-rs.
//!
//! Every key that is being worked on — leased, waited for, or holding
//! staged changes — is owned by exactly one ractor actor
//! ([`lease`]'s `LeaseActor`), so lease hand-off, fencing and staging need no
//! locks: each operation on a key is a message handled in order. Idle keys
//! have no actor at all; their state lives in the storage backend, and the
//! [`Router`] spawns an actor on demand and lets it retire once the key has
//! no lease and no waiters. A million keys touched once leave a million
//! metadata records on disk, not a million actors.
//!
//! The crate speaks typed requests and [`ApiError`]s, never HTTP; the
//! front-end maps them onto lockd v0.9's wire format.
//!
//! # Storage port
//!
//! [`Backend`] is all the actors need: read a key's metadata, read a
//! document, apply an atomic [`WriteSet`]. A staged document is written
//! under a fresh id and the metadata points at it; committing rewrites the
//! metadata (and deletes the document it replaces) in one write set, so no
//! value is ever moved. `mem://` is [`MemBackend`], `disk://` is
//! [`DiskBackend`] over the group-committed logstore, and the same shape
//! fits object stores later (documents are plain objects written first, the
//! metadata object is replaced conditionally on the [`Rev`] read before).
//!
//! # Fencing tokens across crashes
//!
//! Tokens must strictly increase per key even across `kill -9`, yet making
//! every acquire wait for an fdatasync would double the cost of a lease
//! cycle. So each key's metadata carries a durable *reservation*: the
//! highest token that may have been handed out. An acquire whose next token
//! is still under the reservation writes its grant lazily (no fsync); one
//! that would pass it first raises the reservation by
//! [`LeaseConfig::fencing_reserve`] (256) with a durable write. Metadata
//! also records which process run wrote it; a run that finds metadata from
//! an earlier run continues above the reservation, since that run may have
//! crashed after granting tokens it never persisted. Within one run tokens
//! grow by exactly one per acquire, as lockd's do; across a crash they may
//! jump by up to the reservation size, never backwards.
//!
//! # Durability contract
//!
//! * Durable (fdatasync before the answer): release (commit or rollback),
//!   the decision of an explicit transaction (before it is applied to any
//!   participant) and each participant's application of it, update,
//!   remove, metadata, keepalive, the first acquire of a key (so
//!   `if_not_exists` survives a crash) and any acquire that raises the
//!   fencing reservation.
//! * Not written at all: other acquires. The lease lives in the actor until
//!   the holder's first durable operation stores it, so handing a lease to
//!   the next waiter never waits for the disk.
//! * Lazy (written, not synced): clearing an expired lease, including
//!   committing its staging when its explicit transaction was decided so
//!   (if lost in a crash, the stored lease, staging and decision redo it
//!   when the key is loaded).
//!
//! Leases and staged changes are stored in the metadata, so they survive a
//! restart: after `kill -9` a holder can keep going (keepalive, update,
//! release) with the lease it had, and every update it was told succeeded is
//! still staged. This matters for lockd clients, which treat
//! `lease_required` on release as "already released": dropping leases on
//! restart would let them believe an update was committed when it was lost.
//! A lease that had not yet done a durable operation may be gone after a
//! crash; since it had staged nothing (staging is durable), nothing is lost
//! but the lease, and its holder learns so (`lease_required`) on its next
//! request. Staged data is only
//! ever visible to its own transaction, before and after a crash. After a
//! restart [`Router::sweep`] wakes every key with a stored lease so expiry
//! timers run again and already expired leases are cleared.
//!
//! # Large state
//!
//! Documents travel as [`bytes::Bytes`]: the front-end reads (or spools)
//! the body once, the router hashes it into its ETag on the caller's task,
//! and the same reference-counted buffer passes through the actor's mailbox
//! to the backend without another copy. The disk backend stores documents
//! above the logstore's inline limit as blob files written on the blocking
//! pool. Streaming reads for very large documents come with the HTTP layer.
//!
//! # Transactions
//!
//! Every lease has a transaction id and staged changes are tagged with it.
//! An *implicit* transaction (id minted at acquire) lives on one key: its
//! release commits or rolls back that key and touches nothing else.
//!
//! An *explicit* transaction (id brought by the caller, API.md §2.3, §6.4)
//! may span many keys, and releasing any one of them decides it for all:
//!
//! 1. the key's actor validates the release as usual and, in the same turn
//!    (so its own expiry cannot interleave), records the decision in
//!    [`txn`]'s reserved namespace `.txn-decisions` with a durable write,
//!    unless one is already recorded, in which case that one wins, whatever
//!    this release asked; it applies the decision to its own key;
//! 2. the [`Router`] then sends a `Decide` to every other key on its list
//!    of resident actors holding a lease of the transaction (a key is
//!    listed from its grant on, before its holder can stage anything), on
//!    a detached task so a client hanging up cannot cut it short. A key
//!    that staged commits or discards and frees its lease in one durable
//!    write; a key that only joined keeps its lease until its own release
//!    (API.md §2.3) but is refused (`409 txn_conflict`) if it tries to
//!    stage into the decided transaction. The release answers once all
//!    have.
//!
//! The participant list is in memory and only speeds up the common case.
//! What makes the decision reach every key is that a lease actor consults
//! the record whenever it finds a lease of an explicit transaction that
//! might be decided: when it loads the key (so [`Router::sweep`] settles
//! every participant after a restart), when that lease is released, and
//! when it expires. A participant that expires undecided decides the whole
//! transaction as rolled back, through the same first-decision-wins record,
//! so a transaction stays atomic even when one of its leases lapses (a
//! release racing the expiry applies whichever decision was recorded
//! first). A crash after step 1 therefore never leaves a transaction half
//! applied, and one before it leaves it undecided with every
//! participant's staging intact. Implicit leases never read or write the
//! record. Decision records are kept: nothing reaps them yet.

pub mod api_error;
pub mod backend;
pub mod ids;
pub mod lease;
pub mod meta;
pub mod names;
mod router;
pub mod txn;

pub use api_error::ApiError;
pub use backend::disk::DiskBackend;
pub use backend::mem::MemBackend;
pub use backend::{Backend, BackendError, Durability, MetaRecord, Rev, WriteSet};
pub use router::{LeaseConfig, Router};
