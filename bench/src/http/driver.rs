//! What a workload needs from the system under test, and lockd's answer
//! to it over HTTP/1.1.
//!
//! The workloads speak in leases: acquire a key (waiting or not), stage a
//! document under the lease, release (commit) it, read a key's committed
//! document without a lease. [`Driver`] opens one [`Conn`] per worker;
//! another coordination service (etcd, Redis) can be measured with the
//! same workloads by implementing these two traits.
//!
//! The lockd driver holds one HTTP/1.1 connection per worker (keep-alive,
//! no pool, `TCP_NODELAY`), so concurrency N means N connections and at
//! most N requests in flight: the numbers describe the server, not a
//! client-side pool. Over mTLS (`--tls`) the same HTTP/1.1 connection runs
//! inside a TLS session set up once per connection (see [`super::tls`]).

use std::future::Future;
use std::path::PathBuf;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use lockd_net::wire::{self, AcquireRequest, AcquireResponse, ErrorEnvelope, ReleaseRequest};
use tokio::net::{TcpStream, UnixStream};

use super::tls::TlsClient;

/// Where a server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Addr {
    /// `host:port`.
    Tcp(String),
    /// A Unix-domain socket path.
    Unix(PathBuf),
}

impl Addr {
    /// Parses `host:port` or `unix:///absolute/path`.
    pub(crate) fn parse(s: &str) -> std::result::Result<Addr, String> {
        let t = s.trim();
        if let Some(path) = t.strip_prefix("unix://") {
            if !path.starts_with('/') {
                return Err(format!(
                    "{s:?}: a Unix socket needs an absolute path: unix:///run/lockd.sock"
                ));
            }
            return Ok(Addr::Unix(PathBuf::from(path)));
        }
        if t.contains("://") {
            return Err(format!(
                "{s:?}: give host:port for TCP (plain HTTP) or unix:///path for a Unix socket"
            ));
        }
        match t.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) => {
                Ok(Addr::Tcp(t.into()))
            }
            _ => Err(format!(
                "{s:?} is not host:port (example: 127.0.0.1:9341) nor unix:///path"
            )),
        }
    }
}

impl std::fmt::Display for Addr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Addr::Tcp(a) => f.write_str(a),
            Addr::Unix(p) => write!(f, "unix://{}", p.display()),
        }
    }
}

/// Why one operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OpError {
    /// The connection failed or broke; the worker must open a new one.
    Transport(String),
    /// The server answered, but not with success.
    Status {
        /// HTTP status.
        status: u16,
        /// lockd's error code (or the start of the body when it is not the envelope).
        code: String,
    },
}

impl OpError {
    /// True when the connection cannot be used any more.
    pub(crate) fn is_transport(&self) -> bool {
        matches!(self, OpError::Transport(_))
    }
}

impl std::fmt::Display for OpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpError::Transport(m) => write!(f, "transport: {m}"),
            OpError::Status { status, code } => write!(f, "HTTP {status} {code}"),
        }
    }
}

/// A held lease: everything later calls must present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Lease {
    /// Namespace of the key.
    pub namespace: String,
    /// The key.
    pub key: String,
    /// Lease id.
    pub lease_id: String,
    /// The lease's transaction.
    pub txn_id: String,
    /// Fencing token: one more than the previous holder's on this key.
    pub fencing_token: i64,
}

/// What an acquire returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Acquired {
    /// The lease is ours.
    Granted(Lease),
    /// Someone holds the key and we did not wait.
    Busy,
}

/// One connection to the system under test, used by one worker.
pub(crate) trait Conn: Send + 'static {
    /// Takes a lease on `key`: `wait` blocks until it is free, otherwise a
    /// held key answers [`Acquired::Busy`].
    fn acquire(
        &mut self,
        namespace: &str,
        key: &str,
        wait: bool,
    ) -> impl Future<Output = Result<Acquired, OpError>> + Send;
    /// Stages `doc` as the key's new state under `lease`.
    fn update(&mut self, lease: &Lease, doc: Bytes) -> impl Future<Output = Result<(), OpError>> + Send;
    /// Releases `lease`, committing what it staged.
    fn release(&mut self, lease: &Lease) -> impl Future<Output = Result<(), OpError>> + Send;
    /// Reads the committed state of `key` without a lease; returns its size
    /// (an error if the key has none).
    fn read(&mut self, namespace: &str, key: &str) -> impl Future<Output = Result<usize, OpError>> + Send;

    /// The YCSB write: `doc` becomes the committed state of `key` with the
    /// system's usual durable write. lockd has no lease-free write, so its
    /// write is a whole cycle (acquire, waiting if held; update; release),
    /// which is this default; plain key-value stores override it with one
    /// put, and the report labels the difference.
    fn put(&mut self, namespace: &str, key: &str, doc: Bytes) -> impl Future<Output = Result<(), OpError>> + Send {
        async move {
            let lease = match self.acquire(namespace, key, true).await? {
                Acquired::Granted(l) => l,
                Acquired::Busy => {
                    return Err(OpError::Status {
                        status: 409,
                        code: "waiting acquire answered busy".into(),
                    })
                }
            };
            if let Err(e) = self.update(&lease, doc).await {
                if !e.is_transport() {
                    let _ = self.release(&lease).await;
                }
                return Err(e);
            }
            self.release(&lease).await
        }
    }

    /// The YCSB scan: reads the committed states of `keys` (consecutive in
    /// key order) and returns how many exist. The default reads them one by
    /// one, which is all lockd's API offers; stores with range reads
    /// override it.
    fn scan(&mut self, namespace: &str, keys: &[String]) -> impl Future<Output = Result<usize, OpError>> + Send {
        async move {
            let mut found = 0;
            for key in keys {
                match self.read(namespace, key).await {
                    Ok(_) => found += 1,
                    Err(OpError::Status { status: 204, .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(found)
        }
    }
}

/// Opens connections to one server.
pub(crate) trait Driver: Send + Sync + 'static {
    /// The connection type.
    type Conn: Conn;
    /// Opens a connection.
    fn connect(&self) -> impl Future<Output = Result<Self::Conn, OpError>> + Send;
}

/// lockd v0.9's HTTP API.
#[derive(Debug, Clone)]
pub(crate) struct LockdDriver {
    addr: Addr,
    /// Set for mTLS: every connection then starts with a TLS handshake.
    tls: Option<TlsClient>,
}

impl LockdDriver {
    /// A driver for the server at `addr` (plain HTTP: run it with `--disable-mtls`).
    pub(crate) fn new(addr: Addr) -> LockdDriver {
        LockdDriver { addr, tls: None }
    }

    /// A driver that speaks mTLS to the server at `addr`, so the bench can
    /// measure lockd as it runs by default. lockd serves TLS on TCP only,
    /// so a Unix socket address is refused here rather than failing on
    /// every connection later.
    pub(crate) fn with_tls(addr: Addr, tls: TlsClient) -> std::result::Result<LockdDriver, String> {
        match addr {
            Addr::Tcp(_) => Ok(LockdDriver { addr, tls: Some(tls) }),
            Addr::Unix(_) => Err(format!("{addr}: lockd serves TLS on TCP listeners only")),
        }
    }
}

impl Driver for LockdDriver {
    type Conn = LockdConn;

    async fn connect(&self) -> Result<LockdConn, OpError> {
        let transport = |e: std::io::Error| OpError::Transport(format!("connect to {}: {e}", self.addr));
        let sender = match &self.addr {
            Addr::Tcp(a) => {
                let s = TcpStream::connect(a.as_str()).await.map_err(transport)?;
                s.set_nodelay(true).map_err(transport)?;
                match &self.tls {
                    None => handshake(s).await?,
                    Some(tls) => {
                        let secured = tls
                            .handshake(s)
                            .await
                            .map_err(|e| OpError::Transport(format!("connect to {}: {e}", self.addr)))?;
                        handshake(secured).await?
                    }
                }
            }
            Addr::Unix(p) => handshake(UnixStream::connect(p).await.map_err(transport)?).await?,
        };
        Ok(LockdConn { sender })
    }
}

async fn handshake<S>(stream: S) -> Result<SendRequest<Full<Bytes>>, OpError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| OpError::Transport(format!("HTTP/1.1 handshake: {e}")))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "benchmark connection ended");
        }
    });
    Ok(sender)
}

/// One keep-alive HTTP/1.1 connection to lockd.
pub(crate) struct LockdConn {
    sender: SendRequest<Full<Bytes>>,
}

/// Owner label of every lease the benchmark takes.
const OWNER: &str = "lockd-bench";

impl LockdConn {
    /// Sends one POST and returns the status and the whole body.
    async fn post(
        &mut self,
        uri: &str,
        headers: &[(&'static str, String)],
        body: Bytes,
    ) -> Result<(StatusCode, Bytes), OpError> {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(header::HOST, HeaderValue::from_static("lockd"))
            .header(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        for (name, value) in headers {
            req = req.header(*name, value.as_str());
        }
        let req = req
            .body(Full::new(body))
            .map_err(|e| OpError::Transport(format!("building request {uri}: {e}")))?;
        self.sender
            .ready()
            .await
            .map_err(|e| OpError::Transport(format!("connection not ready: {e}")))?;
        let resp = self
            .sender
            .send_request(req)
            .await
            .map_err(|e| OpError::Transport(format!("{uri}: {e}")))?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| OpError::Transport(format!("{uri}: reading the answer: {e}")))?
            .to_bytes();
        Ok((status, body))
    }
}

/// The error an unexpected answer becomes: lockd's code when the body is
/// its envelope.
fn status_error(status: StatusCode, body: &[u8]) -> OpError {
    let code = match serde_json::from_slice::<ErrorEnvelope>(body) {
        Ok(env) => env.error,
        Err(_) => String::from_utf8_lossy(&body[..body.len().min(80)]).trim().to_string(),
    };
    OpError::Status {
        status: status.as_u16(),
        code,
    }
}

/// `key` and `namespace` as query parameters. The workloads only use
/// `[a-z0-9-]` names, which need no escaping; anything else is refused
/// rather than sent wrong.
fn query(path: &str, namespace: &str, key: &str, extra: &str) -> Result<String, OpError> {
    let plain = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    if !plain(namespace) || !plain(key) {
        return Err(OpError::Transport(format!(
            "benchmark names must be [a-z0-9-]: {namespace:?}/{key:?}"
        )));
    }
    Ok(format!("{path}?key={key}&namespace={namespace}{extra}"))
}

fn json_body<T: serde::Serialize>(v: &T) -> Result<Bytes, OpError> {
    serde_json::to_vec(v)
        .map(Bytes::from)
        .map_err(|e| OpError::Transport(format!("encoding a request body: {e}")))
}

impl Conn for LockdConn {
    async fn acquire(&mut self, namespace: &str, key: &str, wait: bool) -> Result<Acquired, OpError> {
        let body = json_body(&AcquireRequest {
            namespace: Some(namespace.to_string()),
            key: Some(key.to_string()),
            owner: Some(OWNER.to_string()),
            ttl_seconds: Some(30),
            block_seconds: Some(if wait { 0 } else { -1 }),
            ..AcquireRequest::default()
        })?;
        let (status, body) = self.post("/v1/acquire", &[], body).await?;
        if status == StatusCode::OK {
            let r: AcquireResponse = serde_json::from_slice(&body).map_err(|e| OpError::Status {
                status: 200,
                code: format!("unreadable acquire answer: {e}"),
            })?;
            return Ok(Acquired::Granted(Lease {
                namespace: namespace.to_string(),
                key: key.to_string(),
                lease_id: r.lease_id,
                txn_id: r.txn_id,
                fencing_token: r.fencing_token,
            }));
        }
        let err = status_error(status, &body);
        match &err {
            OpError::Status { status: 409, code } if code == "waiting" && !wait => Ok(Acquired::Busy),
            _ => Err(err),
        }
    }

    async fn update(&mut self, lease: &Lease, doc: Bytes) -> Result<(), OpError> {
        let uri = query("/v1/update", &lease.namespace, &lease.key, "")?;
        let headers = [
            (wire::header::LEASE_ID, lease.lease_id.clone()),
            (wire::header::TXN_ID, lease.txn_id.clone()),
            (wire::header::FENCING_TOKEN, lease.fencing_token.to_string()),
        ];
        match self.post(&uri, &headers, doc).await? {
            (StatusCode::OK, _) => Ok(()),
            (status, body) => Err(status_error(status, &body)),
        }
    }

    async fn release(&mut self, lease: &Lease) -> Result<(), OpError> {
        let body = json_body(&ReleaseRequest {
            namespace: Some(lease.namespace.clone()),
            key: Some(lease.key.clone()),
            lease_id: Some(lease.lease_id.clone()),
            txn_id: Some(lease.txn_id.clone()),
            rollback: None,
        })?;
        let headers = [(wire::header::FENCING_TOKEN, lease.fencing_token.to_string())];
        match self.post("/v1/release", &headers, body).await? {
            (StatusCode::OK, _) => Ok(()),
            (status, body) => Err(status_error(status, &body)),
        }
    }

    async fn read(&mut self, namespace: &str, key: &str) -> Result<usize, OpError> {
        let uri = query("/v1/get", namespace, key, "&public=1")?;
        match self.post(&uri, &[], Bytes::new()).await? {
            (StatusCode::OK, body) if !body.is_empty() => Ok(body.len()),
            (StatusCode::OK | StatusCode::NO_CONTENT, _) => Err(OpError::Status {
                status: 204,
                code: "no committed state (was the key populated?)".into(),
            }),
            (status, body) => Err(status_error(status, &body)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(Addr::parse("127.0.0.1:9341"), Ok(Addr::Tcp("127.0.0.1:9341".into())));
        assert_eq!(Addr::parse("[::1]:80"), Ok(Addr::Tcp("[::1]:80".into())));
        assert_eq!(Addr::parse("localhost:1"), Ok(Addr::Tcp("localhost:1".into())));
        assert_eq!(
            Addr::parse("unix:///run/lockd.sock"),
            Ok(Addr::Unix(PathBuf::from("/run/lockd.sock")))
        );
        for bad in [
            "unix://run.sock",
            "http://127.0.0.1:9341",
            "127.0.0.1",
            ":9341",
            "h:0",
            "h:99999",
        ] {
            assert!(Addr::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Addr::parse("unix:///s").map(|a| a.to_string()),
            Ok("unix:///s".to_string())
        );
    }

    #[test]
    fn error_codes_come_from_the_envelope() {
        let e = status_error(StatusCode::FORBIDDEN, br#"{"error":"lease_required","detail":"x"}"#);
        assert_eq!(
            e,
            OpError::Status {
                status: 403,
                code: "lease_required".into()
            }
        );
        let e = status_error(StatusCode::NOT_FOUND, b"404 page not found\n");
        assert_eq!(e.to_string(), "HTTP 404 404 page not found");
        assert!(!e.is_transport());
    }

    #[test]
    fn query_strings_only_carry_plain_names() {
        assert_eq!(
            query("/v1/get", "bench-read", "k12", "&public=1"),
            Ok("/v1/get?key=k12&namespace=bench-read&public=1".to_string())
        );
        assert!(query("/v1/get", "ns", "a&b", "").is_err());
    }
}
