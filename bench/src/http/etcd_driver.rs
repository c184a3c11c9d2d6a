//! etcd v3 over gRPC as the system under test: the closest honest
//! equivalent of a lockd lease cycle built from etcd's primitives.
//!
//! - acquire: grant a 30 s lease, then one transaction "if the lock key
//!   was never created (`create_revision == 0`), put it with our token,
//!   attached to the lease". The put's revision is the fencing token
//!   (etcd's revisions only grow, so it orders holders as lockd's does).
//! - update: a plain put of the state key (etcd fsyncs its WAL before it
//!   answers, so this is durable like lockd's staged write).
//! - release: a transaction "if the lock key still holds our token,
//!   delete it" (so a holder whose lease expired cannot delete its
//!   successor's lock), then a revoke of the lease. Both are raft writes;
//!   the revoke alone would also delete the key.
//! - read: a linearizable get of the state key.
//!
//! Keys: `lock/{namespace}/{key}` and `state/{namespace}/{key}`. Each
//! worker gets its own client, i.e. its own gRPC channel (one HTTP/2
//! connection), so concurrency N means N connections as for lockd.

use std::time::{Duration, Instant};

use bytes::Bytes;
use etcd_client::{Client, Compare, CompareOp, ConnectOptions, GetOptions, PutOptions, Txn, TxnOp};

use super::driver::{Acquired, Conn, Driver, Lease, OpError};
use crate::peers::{lock_token, Patience, WAIT_LIMIT};

/// TTL of the lease behind a lock, as lockd's driver asks for.
const LEASE_TTL_SECONDS: i64 = 30;
/// A waiting acquire grants itself a fresh lease when its lease is older
/// than this, so that a lock won after a long wait still has most of its
/// TTL left.
const REGRANT_AFTER: Duration = Duration::from_secs(10);
/// Bound on one gRPC call, so that a stuck server fails the run instead
/// of hanging it (a balanced channel with no ready endpoint waits forever).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on opening the HTTP/2 connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest server message quoted in an error code.
const MESSAGE_CHARS: usize = 80;

/// Opens one etcd client (one gRPC channel) per worker.
#[derive(Debug, Clone)]
pub(crate) struct EtcdDriver {
    endpoint: String,
}

impl EtcdDriver {
    /// A driver for the etcd member serving clients at `endpoint`
    /// (`127.0.0.1:2379`; an `http://` URL is accepted too).
    pub(crate) fn new(endpoint: String) -> EtcdDriver {
        EtcdDriver { endpoint }
    }

    /// The endpoint as the URL etcd-client wants.
    fn url(&self) -> String {
        if self.endpoint.contains("://") {
            self.endpoint.clone()
        } else {
            format!("http://{}", self.endpoint)
        }
    }
}

impl Driver for EtcdDriver {
    type Conn = EtcdConn;

    /// Connects and proves it with a status call: etcd-client connects
    /// lazily, and a worker should fail here rather than on its first
    /// measured operation.
    async fn connect(&self) -> Result<EtcdConn, OpError> {
        let opts = ConnectOptions::new()
            .with_connect_timeout(CONNECT_TIMEOUT)
            .with_timeout(REQUEST_TIMEOUT);
        let mut client = Client::connect([self.url()], Some(opts)).await.map_err(op_error)?;
        client.status().await.map_err(op_error)?;
        Ok(EtcdConn {
            client: Box::new(client),
        })
    }
}

/// One worker's etcd client.
pub(crate) struct EtcdConn {
    /// Boxed: the client is a bundle of eight service stubs (~1 KiB), and
    /// connections are moved around and stored in enums with small ones.
    client: Box<Client>,
}

/// The key whose existence is the lock.
fn lock_key(namespace: &str, key: &str) -> String {
    format!("lock/{namespace}/{key}")
}

/// The key holding the committed document.
fn state_key(namespace: &str, key: &str) -> String {
    format!("state/{namespace}/{key}")
}

/// The answer for a key without a document, as lockd's driver gives it.
fn no_state() -> OpError {
    OpError::Status {
        status: 204,
        code: "no committed state (was the key populated?)".into(),
    }
}

/// gRPC codes that mean the channel failed rather than etcd refusing.
fn is_transport_code(code: tonic::Code) -> bool {
    matches!(
        code,
        tonic::Code::Unavailable | tonic::Code::Cancelled | tonic::Code::Unknown | tonic::Code::DeadlineExceeded
    )
}

/// The HTTP status closest to a gRPC code (the usual gRPC-gateway table),
/// so etcd's refusals sort with lockd's in the reports.
fn http_status(code: tonic::Code) -> u16 {
    use tonic::Code;
    match code {
        Code::InvalidArgument | Code::OutOfRange => 400,
        Code::Unauthenticated => 401,
        Code::PermissionDenied => 403,
        Code::NotFound => 404,
        Code::AlreadyExists | Code::Aborted => 409,
        Code::FailedPrecondition => 412,
        Code::ResourceExhausted => 429,
        Code::Unimplemented => 501,
        Code::Unavailable => 503,
        Code::DeadlineExceeded => 504,
        _ => 500,
    }
}

/// An etcd-client error as the workloads count it: channel failures are
/// [`OpError::Transport`] (the worker reconnects), etcd's refusals
/// (`ResourceExhausted: etcdserver: mvcc: database space exceeded`, …)
/// are [`OpError::Status`].
fn op_error(e: etcd_client::Error) -> OpError {
    match e {
        etcd_client::Error::GRpcStatus(s) if !is_transport_code(s.code()) => {
            let message: String = s.message().chars().take(MESSAGE_CHARS).collect();
            OpError::Status {
                status: http_status(s.code()),
                code: format!("{:?}: {message}", s.code()),
            }
        }
        etcd_client::Error::InvalidArgs(m) => OpError::Status {
            status: 400,
            code: m.chars().take(MESSAGE_CHARS).collect(),
        },
        other => OpError::Transport(format!("etcd: {other}")),
    }
}

/// The etcd lease id a [`Lease`] carries as its `lease_id`.
fn lease_number(lease: &Lease) -> Result<i64, OpError> {
    lease.lease_id.parse().map_err(|_| OpError::Status {
        status: 400,
        code: format!("not an etcd lease id: {:?}", lease.lease_id),
    })
}

impl EtcdConn {
    /// Grants a lease for a lock; returns its id and when it was granted.
    async fn grant(&mut self) -> Result<(i64, Instant), OpError> {
        let granted = Instant::now();
        let r = self
            .client
            .lease_grant(LEASE_TTL_SECONDS, None)
            .await
            .map_err(op_error)?;
        Ok((r.id(), granted))
    }

    /// Waits until `lock` looks free, polling with reads: a txn with a put
    /// is a raft write (and a WAL fsync) even when its compare fails, so
    /// retrying the txn itself would make every waiting poll cost etcd a
    /// durable write. `false` when patience ran out.
    async fn wait_free(&mut self, lock: &str, patience: &mut Patience) -> Result<bool, OpError> {
        loop {
            if !patience.pause().await {
                return Ok(false);
            }
            let held = self
                .client
                .get(lock, Some(GetOptions::new().with_count_only()))
                .await
                .map_err(op_error)?;
            if held.count() == 0 {
                return Ok(true);
            }
        }
    }

    /// Revokes a lease (deleting any key still attached to it).
    async fn revoke(&mut self, id: i64) -> Result<(), OpError> {
        self.client.lease_revoke(id).await.map(drop).map_err(op_error)
    }
}

impl Conn for EtcdConn {
    /// Without `wait`, a held lock costs three calls (grant, failed txn,
    /// revoke); with `wait`, the lease is kept across attempts (renewed
    /// after 10 s), and between attempts the lock is polled with reads
    /// spaced by [`Patience`], for up to 30 s.
    async fn acquire(&mut self, namespace: &str, key: &str, wait: bool) -> Result<Acquired, OpError> {
        let lock = lock_key(namespace, key);
        let token = lock_token();
        let mut patience = Patience::new(WAIT_LIMIT);
        let (mut lease_id, mut granted) = self.grant().await?;
        loop {
            let txn = Txn::new()
                .when([Compare::create_revision(lock.as_str(), CompareOp::Equal, 0)])
                .and_then([TxnOp::put(
                    lock.as_str(),
                    token.as_str(),
                    Some(PutOptions::new().with_lease(lease_id)),
                )]);
            let answer = match self.client.txn(txn).await {
                Ok(a) => a,
                Err(e) => {
                    let e = op_error(e);
                    if !e.is_transport() {
                        // Best effort: the lease expires by itself anyway.
                        let _ = self.revoke(lease_id).await;
                    }
                    return Err(e);
                }
            };
            if answer.succeeded() {
                let Some(revision) = answer.header().map(|h| h.revision()) else {
                    let _ = self.revoke(lease_id).await;
                    return Err(OpError::Status {
                        status: 502,
                        code: "etcd txn answer without a header".into(),
                    });
                };
                return Ok(Acquired::Granted(Lease {
                    namespace: namespace.to_string(),
                    key: key.to_string(),
                    lease_id: lease_id.to_string(),
                    txn_id: token,
                    fencing_token: revision,
                }));
            }
            if !wait {
                self.revoke(lease_id).await?;
                return Ok(Acquired::Busy);
            }
            if !self.wait_free(&lock, &mut patience).await? {
                let _ = self.revoke(lease_id).await;
                return Err(OpError::Status {
                    status: 408,
                    code: format!("{lock} still held after {WAIT_LIMIT:?}"),
                });
            }
            if granted.elapsed() > REGRANT_AFTER {
                self.revoke(lease_id).await?;
                (lease_id, granted) = self.grant().await?;
            }
        }
    }

    /// One put of the state key; it does not check the lock, as lockd's
    /// staged write is checked by its lease instead.
    async fn update(&mut self, lease: &Lease, doc: Bytes) -> Result<(), OpError> {
        self.put(&lease.namespace, &lease.key, doc).await
    }

    /// Guarded delete of the lock key, then revoke of the lease. A lock no
    /// longer ours (lease expired, or released already) is reported as 409.
    async fn release(&mut self, lease: &Lease) -> Result<(), OpError> {
        let id = lease_number(lease)?;
        let lock = lock_key(&lease.namespace, &lease.key);
        let txn = Txn::new()
            .when([Compare::value(lock.as_str(), CompareOp::Equal, lease.txn_id.as_str())])
            .and_then([TxnOp::delete(lock.as_str(), None)]);
        let answer = self.client.txn(txn).await.map_err(op_error)?;
        if !answer.succeeded() {
            // The lease may be gone already (expired, or this is a second
            // release): revoking is only cleanup here.
            let _ = self.revoke(id).await;
            return Err(OpError::Status {
                status: 409,
                code: format!("{lock} no longer held by this lease"),
            });
        }
        self.revoke(id).await
    }

    async fn read(&mut self, namespace: &str, key: &str) -> Result<usize, OpError> {
        let answer = self
            .client
            .get(state_key(namespace, key), None)
            .await
            .map_err(op_error)?;
        answer.kvs().first().map(|kv| kv.value().len()).ok_or_else(no_state)
    }

    /// One plain put: etcd has a durable lease-free write.
    async fn put(&mut self, namespace: &str, key: &str, doc: Bytes) -> Result<(), OpError> {
        self.client
            .put(state_key(namespace, key), doc.to_vec(), None)
            .await
            .map(drop)
            .map_err(op_error)
    }

    /// One range read over `keys` (consecutive in key order), limited to
    /// as many keys.
    async fn scan(&mut self, namespace: &str, keys: &[String]) -> Result<usize, OpError> {
        let (Some(first), Some(last)) = (keys.first(), keys.last()) else {
            return Ok(0);
        };
        let limit = i64::try_from(keys.len()).unwrap_or(i64::MAX);
        let end = format!("{}\0", state_key(namespace, last));
        let answer = self
            .client
            .get(
                state_key(namespace, first),
                Some(GetOptions::new().with_range(end).with_limit(limit)),
            )
            .await
            .map_err(op_error)?;
        Ok(answer.kvs().len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_failures_and_refusals_are_told_apart() {
        let e = op_error(tonic::Status::unavailable("connection refused").into());
        assert!(e.is_transport(), "{e}");
        let e = op_error(tonic::Status::resource_exhausted("etcdserver: mvcc: database space exceeded").into());
        assert_eq!(
            e,
            OpError::Status {
                status: 429,
                code: "ResourceExhausted: etcdserver: mvcc: database space exceeded".into()
            }
        );
        let e = op_error(tonic::Status::not_found("x".repeat(500)).into());
        assert!(
            matches!(&e, OpError::Status { status: 404, code } if code.len() < 120),
            "{e}"
        );
    }

    #[test]
    fn keys_and_endpoints() {
        assert_eq!(lock_key("ns", "k1"), "lock/ns/k1");
        assert_eq!(state_key("ns", "k1"), "state/ns/k1");
        assert_eq!(EtcdDriver::new("127.0.0.1:2379".into()).url(), "http://127.0.0.1:2379");
        assert_eq!(EtcdDriver::new("http://h:1".into()).url(), "http://h:1");
        let mut lease = Lease {
            namespace: "n".into(),
            key: "k".into(),
            lease_id: "7587883".into(),
            txn_id: "t".into(),
            fencing_token: 1,
        };
        assert_eq!(lease_number(&lease), Ok(7_587_883));
        lease.lease_id = "L-1".into();
        assert!(lease_number(&lease).is_err());
    }
}
