//! Redis as the system under test, with the standard single-instance lock
//! recipe:
//!
//! - acquire: `SET lock:{ns}:{key} <token> NX PX 30000` (nil: held).
//! - update: `SET state:{ns}:{key} <doc>`.
//! - release: the safe unlock, a Lua script run by EVALSHA that deletes
//!   the lock only if it still holds our token, so a holder whose lock
//!   expired cannot delete its successor's.
//! - read: `GET state:{ns}:{key}`.
//!
//! Redis has no fencing token: leases carry 0 (the hand-off workload pairs
//! holders itself). Whether a write is durable depends on how the server
//! runs (`appendfsync always` or `everysec`, see `crate::peers`), not on
//! this driver. Each worker holds one TCP connection (`TCP_NODELAY`, as
//! lockd's driver), so concurrency N means N connections.

use std::time::Duration;

use bytes::Bytes;
use redis::aio::MultiplexedConnection;
use redis::io::tcp::TcpSettings;
use redis::{AsyncConnectionConfig, Client, IntoConnectionInfo, RedisError, Script};

use super::driver::{Acquired, Conn, Driver, Lease, OpError};
use crate::peers::{lock_token, Patience, WAIT_LIMIT};

/// Lock expiry, as lockd's driver asks for a 30 s TTL.
const LOCK_TTL_MS: u64 = 30_000;
/// Bound on opening the connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on one command: the crate's default (500 ms) is shorter than an
/// fsync queue under load, which would turn slowness into errors; this
/// only stops a stuck server from hanging the run.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest server message quoted in an error code.
const MESSAGE_CHARS: usize = 80;

/// The safe unlock: delete the lock only if it still holds our token.
const UNLOCK: &str = r#"if redis.call("GET", KEYS[1]) == ARGV[1] then
    return redis.call("DEL", KEYS[1])
else
    return 0
end"#;

/// Opens one Redis connection per worker.
#[derive(Debug, Clone)]
pub(crate) struct RedisDriver {
    addr: String,
}

impl RedisDriver {
    /// A driver for the Redis server at `addr` (`127.0.0.1:6379`).
    pub(crate) fn new(addr: String) -> RedisDriver {
        RedisDriver { addr }
    }
}

impl Driver for RedisDriver {
    type Conn = RedisConn;

    async fn connect(&self) -> Result<RedisConn, OpError> {
        let info = format!("redis://{}/", self.addr)
            .into_connection_info()
            .map_err(|e| OpError::Transport(format!("redis address {:?}: {e}", self.addr)))?
            .set_tcp_settings(TcpSettings::default().set_nodelay(true));
        let client = Client::open(info).map_err(op_error)?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT));
        let conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(op_error)?;
        Ok(RedisConn {
            conn,
            unlock: Script::new(UNLOCK),
        })
    }
}

/// One worker's connection. A multiplexed connection is one TCP
/// connection; a worker never has more than one command in flight on it.
pub(crate) struct RedisConn {
    conn: MultiplexedConnection,
    /// The unlock script, sent by SHA (EVALSHA) and loaded on first miss.
    unlock: Script,
}

/// The key whose existence is the lock.
fn lock_key(namespace: &str, key: &str) -> String {
    format!("lock:{namespace}:{key}")
}

/// The key holding the committed document.
fn state_key(namespace: &str, key: &str) -> String {
    format!("state:{namespace}:{key}")
}

/// A Redis error as the workloads count it: a broken or timed-out
/// connection is [`OpError::Transport`] (the worker reconnects); an error
/// reply (`OOM`, `MISCONF` when the AOF cannot be written, …) is
/// [`OpError::Status`] 500 with Redis's code.
fn op_error(e: RedisError) -> OpError {
    if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() || e.is_unrecoverable_error() {
        return OpError::Transport(format!("redis: {e}"));
    }
    let detail: String = e.detail().unwrap_or_default().chars().take(MESSAGE_CHARS).collect();
    let code = match e.code() {
        Some(c) if detail.is_empty() => c.to_string(),
        Some(c) => format!("{c} {detail}"),
        None => format!("{}: {detail}", e.category()),
    };
    OpError::Status { status: 500, code }
}

impl Conn for RedisConn {
    /// With `wait`, retries the SET NX spaced by [`Patience`] for up to
    /// 30 s (Redis has no blocking lock).
    async fn acquire(&mut self, namespace: &str, key: &str, wait: bool) -> Result<Acquired, OpError> {
        let lock = lock_key(namespace, key);
        let token = lock_token();
        let mut patience = Patience::new(WAIT_LIMIT);
        loop {
            let set: Option<String> = redis::cmd("SET")
                .arg(&lock)
                .arg(&token)
                .arg("NX")
                .arg("PX")
                .arg(LOCK_TTL_MS)
                .query_async(&mut self.conn)
                .await
                .map_err(op_error)?;
            if set.is_some() {
                return Ok(Acquired::Granted(Lease {
                    namespace: namespace.to_string(),
                    key: key.to_string(),
                    lease_id: token.clone(),
                    txn_id: token,
                    fencing_token: 0,
                }));
            }
            if !wait {
                return Ok(Acquired::Busy);
            }
            if !patience.pause().await {
                return Err(OpError::Status {
                    status: 408,
                    code: format!("{lock} still held after {WAIT_LIMIT:?}"),
                });
            }
        }
    }

    /// One SET of the state key; like etcd's, it does not check the lock.
    async fn update(&mut self, lease: &Lease, doc: Bytes) -> Result<(), OpError> {
        self.put(&lease.namespace, &lease.key, doc).await
    }

    /// The safe unlock; a lock that expired or passed to another holder is
    /// reported as 409.
    async fn release(&mut self, lease: &Lease) -> Result<(), OpError> {
        let lock = lock_key(&lease.namespace, &lease.key);
        let deleted: i64 = self
            .unlock
            .key(&lock)
            .arg(&lease.txn_id)
            .invoke_async(&mut self.conn)
            .await
            .map_err(op_error)?;
        if deleted == 1 {
            Ok(())
        } else {
            Err(OpError::Status {
                status: 409,
                code: format!("{lock} no longer held by this lease"),
            })
        }
    }

    async fn read(&mut self, namespace: &str, key: &str) -> Result<usize, OpError> {
        let value: Option<Vec<u8>> = redis::cmd("GET")
            .arg(state_key(namespace, key))
            .query_async(&mut self.conn)
            .await
            .map_err(op_error)?;
        value.map(|v| v.len()).ok_or_else(|| OpError::Status {
            status: 204,
            code: "no committed state (was the key populated?)".into(),
        })
    }

    /// One SET: Redis has a lease-free write.
    async fn put(&mut self, namespace: &str, key: &str, doc: Bytes) -> Result<(), OpError> {
        redis::cmd("SET")
            .arg(state_key(namespace, key))
            .arg(doc.as_ref())
            .query_async::<()>(&mut self.conn)
            .await
            .map_err(op_error)
    }

    /// One MGET of all `keys`; counts those that exist.
    async fn scan(&mut self, namespace: &str, keys: &[String]) -> Result<usize, OpError> {
        if keys.is_empty() {
            return Ok(0);
        }
        let mut cmd = redis::cmd("MGET");
        for k in keys {
            cmd.arg(state_key(namespace, k));
        }
        let values: Vec<Option<Vec<u8>>> = cmd.query_async(&mut self.conn).await.map_err(op_error)?;
        Ok(values.iter().filter(|v| v.is_some()).count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert_eq!(lock_key("ns", "k1"), "lock:ns:k1");
        assert_eq!(state_key("ns", "k1"), "state:ns:k1");
    }

    #[test]
    fn error_replies_are_statuses_and_io_is_transport() {
        let io = RedisError::from(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset"));
        assert!(op_error(io).is_transport());
        let reply = RedisError::from((redis::ErrorKind::Client, "bad thing", "detail here".to_string()));
        let e = op_error(reply);
        assert!(
            matches!(&e, OpError::Status { status: 500, code } if code.contains("detail here")),
            "{e}"
        );
    }
}
