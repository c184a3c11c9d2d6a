//! The client handle, its builder, and the request/answer exchange with
//! endpoint failover and per-request deadlines.

use std::error::Error as StdError;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::body::{self, ReqBody};
use super::connector::{ConnectError, Connector};
use super::endpoint::Endpoint;
use super::error::{chain_message, ApiError, ClientError, ReaderError};
use super::retry::{is_failover, Backoff};
use super::tls;

/// Default per-request deadline.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default deadline for opening a connection (TCP connect plus TLS handshake).
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default number of acquire retries after the first attempt.
const DEFAULT_ACQUIRE_RETRIES: u32 = 5;
/// How long an idle pooled connection is kept.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// A handle on one lockd deployment (one or several endpoints).
///
/// Cloning is cheap and clones share the connection pool and the memory of
/// which endpoint last answered, so one `Client` per process is enough.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    http: HyperClient<Connector, ReqBody>,
    endpoints: Vec<Endpoint>,
    preferred: AtomicUsize,
    pub(crate) timeout: Option<Duration>,
    pub(crate) acquire_retries: u32,
    pub(crate) backoff: Backoff,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("endpoints", &self.inner.endpoints)
            .field("timeout", &self.inner.timeout)
            .field("acquire_retries", &self.inner.acquire_retries)
            .finish_non_exhaustive()
    }
}

/// Options of a [`Client`], for anything beyond a single plain endpoint.
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    endpoints: Vec<String>,
    timeout: Option<Duration>,
    connect_timeout: Duration,
    acquire_retries: u32,
    backoff: Backoff,
    ca_pem: Option<Vec<u8>>,
    ca_file: Option<PathBuf>,
    identity_pem: Option<Vec<u8>>,
    bundle_pem: Option<Vec<u8>>,
}

impl Default for ClientBuilder {
    fn default() -> ClientBuilder {
        ClientBuilder {
            endpoints: Vec::new(),
            timeout: Some(DEFAULT_TIMEOUT),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            acquire_retries: DEFAULT_ACQUIRE_RETRIES,
            backoff: Backoff::default(),
            ca_pem: None,
            ca_file: None,
            identity_pem: None,
            bundle_pem: None,
        }
    }
}

impl ClientBuilder {
    /// Adds a server URL (`http://`, `https://` or `unix://`); repeat it to
    /// give failover candidates, tried in the order given.
    pub fn endpoint(mut self, url: impl Into<String>) -> ClientBuilder {
        self.endpoints.push(url.into());
        self
    }

    /// Deadline of each request (default 30 s); `Duration::ZERO` disables it.
    /// A blocking acquire's deadline is extended by its `block_seconds`.
    pub fn timeout(mut self, timeout: Duration) -> ClientBuilder {
        self.timeout = (!timeout.is_zero()).then_some(timeout);
        self
    }

    /// Deadline for opening a connection, TLS handshake included (default
    /// 10 s), so that an unreachable endpoint is abandoned for the next one
    /// even when requests themselves may wait for a long time.
    pub fn connect_timeout(mut self, timeout: Duration) -> ClientBuilder {
        self.connect_timeout = timeout;
        self
    }

    /// How many times `acquire` retries after the first attempt (default 5).
    pub fn acquire_retries(mut self, retries: u32) -> ClientBuilder {
        self.acquire_retries = retries;
        self
    }

    /// Bounds of the exponential backoff between acquire retries (default
    /// 100 ms doubling up to 5 s).
    pub fn backoff(mut self, base: Duration, max: Duration) -> ClientBuilder {
        self.backoff = Backoff {
            base,
            max: max.max(base),
        };
        self
    }

    /// The CA certificate(s), PEM, that `https` servers must chain to.
    pub fn ca_pem(mut self, pem: impl Into<Vec<u8>>) -> ClientBuilder {
        self.ca_pem = Some(pem.into());
        self
    }

    /// Like [`ClientBuilder::ca_pem`], read from a file when `build` runs.
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> ClientBuilder {
        self.ca_file = Some(path.into());
        self
    }

    /// Client certificate chain (leaf first) and its private key in one PEM,
    /// presented to servers that require mutual TLS.
    pub fn client_identity_pem(mut self, pem: impl Into<Vec<u8>>) -> ClientBuilder {
        self.identity_pem = Some(pem.into());
        self
    }

    /// A lockd client bundle, PEM: the CA certificate, the client
    /// certificate and its key in any order, as `lockd auth new client` and
    /// the server's first-start bootstrap write them. The client trusts the
    /// bundle's CA and presents its certificate (mTLS); this replaces
    /// [`ClientBuilder::ca_pem`] and [`ClientBuilder::client_identity_pem`].
    pub fn bundle_pem(mut self, pem: impl Into<Vec<u8>>) -> ClientBuilder {
        self.bundle_pem = Some(pem.into());
        self
    }

    /// Like [`ClientBuilder::bundle_pem`] with the bundle a lockd server
    /// bootstraps: the first `client*.pem` in `$HOME/.lockd` (`client.pem`
    /// first). Fails when there is none.
    pub fn discover_bundle(self) -> Result<ClientBuilder, ClientError> {
        let home = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .ok_or_else(|| ClientError::Tls("$HOME is not set, so no client bundle can be found".to_owned()))?;
        let dir = lockd_auth::files::default_dir(std::path::Path::new(&home));
        let path = lockd_auth::files::discover_client_bundle(&dir)
            .map_err(|e| ClientError::Tls(e.to_string()))?
            .ok_or_else(|| ClientError::Tls(format!("no client*.pem in {}", dir.display())))?;
        let pem = std::fs::read(&path).map_err(|e| {
            ClientError::Io(std::io::Error::new(
                e.kind(),
                format!("reading {}: {e}", path.display()),
            ))
        })?;
        Ok(self.bundle_pem(pem))
    }

    /// Validates the options and builds the client. Fails on a bad URL, an
    /// unreadable CA file or unusable certificates; nothing is dialled yet.
    pub fn build(self) -> Result<Client, ClientError> {
        if self.endpoints.is_empty() {
            return Err(ClientError::InvalidUrl("no server endpoint configured".to_owned()));
        }
        let endpoints = self
            .endpoints
            .iter()
            .map(|u| Endpoint::parse(u))
            .collect::<Result<Vec<_>, _>>()?;
        let ca_pem = match (self.ca_pem, &self.ca_file) {
            (Some(pem), _) => Some(pem),
            (None, Some(path)) => Some(std::fs::read(path).map_err(|e| {
                ClientError::Io(std::io::Error::new(
                    e.kind(),
                    format!("reading CA file {}: {e}", path.display()),
                ))
            })?),
            (None, None) => None,
        };
        let tls = match (&self.bundle_pem, &ca_pem, &self.identity_pem) {
            (Some(bundle), _, _) => Some(tls::client_config_from_bundle(bundle)?),
            (None, Some(ca), identity) => Some(tls::client_config(ca, identity.as_deref())?),
            (None, None, Some(_)) => {
                return Err(ClientError::Tls(
                    "a client identity was given without a CA certificate".to_owned(),
                ));
            }
            (None, None, None) => None,
        };
        let connector = Connector::new(tls, self.connect_timeout);
        let http = HyperClient::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build(connector);
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                endpoints,
                preferred: AtomicUsize::new(0),
                timeout: self.timeout,
                acquire_retries: self.acquire_retries,
                backoff: self.backoff,
            }),
        })
    }
}

/// One API request, before it is addressed to an endpoint.
pub(crate) struct Call {
    pub(crate) method: Method,
    pub(crate) path: &'static str,
    pub(crate) query: String,
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
    pub(crate) body: Option<Bytes>,
    pub(crate) timeout: Option<Duration>,
}

/// A 2xx answer with its body read completely.
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Client {
    /// A client for one server URL with default options.
    pub fn new(base_url: &str) -> Result<Client, ClientError> {
        Client::builder().endpoint(base_url).build()
    }

    /// A client that fails over between several server URLs: when one
    /// cannot be reached the next is tried, and the one that answered is
    /// used first from then on.
    pub fn new_with_endpoints<S: AsRef<str>>(urls: &[S]) -> Result<Client, ClientError> {
        urls.iter()
            .fold(Client::builder(), |b, u| b.endpoint(u.as_ref()))
            .build()
    }

    /// Starts a [`ClientBuilder`] with the defaults.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// The endpoint requests go to first: the one that answered last, as
    /// written in the configuration (useful in logs and diagnostics).
    pub fn current_endpoint(&self) -> String {
        let index = self.inner.preferred.load(Ordering::Relaxed) % self.inner.endpoints.len();
        self.inner.endpoints[index].to_string()
    }

    /// Sends a replayable request, trying the endpoints in turn (starting
    /// with the last one that answered) while the failure is one another
    /// endpoint might not have.
    pub(crate) async fn send(&self, call: &Call) -> Result<Answer, ClientError> {
        let count = self.inner.endpoints.len();
        let start = self.inner.preferred.load(Ordering::Relaxed) % count;
        let mut last = None;
        for step in 0..count {
            let index = (start + step) % count;
            let body = body::full(call.body.clone().unwrap_or_default());
            match self.exchange(index, call, body).await {
                Ok(answer) => {
                    if index != start {
                        self.inner.preferred.store(index, Ordering::Relaxed);
                    }
                    return Ok(answer);
                }
                Err(err) if is_failover(&err) => {
                    tracing::debug!(endpoint = %self.inner.endpoints[index], error = %err, "endpoint failed, trying the next");
                    last = Some(err);
                }
                Err(err) => return Err(err),
            }
        }
        Err(last.unwrap_or_else(|| ClientError::InvalidUrl("no server endpoint configured".to_owned())))
    }

    /// Sends a request whose body can be read only once: a single attempt
    /// at the preferred endpoint, no failover.
    pub(crate) async fn send_streamed(&self, call: &Call, body: ReqBody) -> Result<Answer, ClientError> {
        let index = self.inner.preferred.load(Ordering::Relaxed) % self.inner.endpoints.len();
        self.exchange(index, call, body).await
    }

    async fn exchange(&self, index: usize, call: &Call, body: ReqBody) -> Result<Answer, ClientError> {
        let endpoint = &self.inner.endpoints[index];
        let mut builder = Request::builder()
            .method(call.method.clone())
            .uri(endpoint.uri(call.path, &call.query)?);
        if endpoint.is_unix() {
            builder = builder.header(http::header::HOST, "localhost");
        }
        if call.body.is_some() {
            builder = builder.header(http::header::CONTENT_TYPE, "application/json");
        }
        for (name, value) in &call.headers {
            builder = builder.header(name, value);
        }
        let request = builder
            .body(body)
            .map_err(|e| ClientError::InvalidInput(format!("cannot build request: {e}")))?;
        let exchange = async {
            let response = self.inner.http.request(request).await.map_err(|e| map_send_error(&e))?;
            let (parts, incoming) = response.into_parts();
            let body = incoming.collect().await.map_err(|e| map_send_error(&e))?.to_bytes();
            Ok::<_, ClientError>(Answer {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        let answer = match call.timeout {
            Some(limit) => tokio::time::timeout(limit, exchange)
                .await
                .map_err(|_| ClientError::Timeout)??,
            None => exchange.await?,
        };
        if answer.status.is_success() {
            Ok(answer)
        } else {
            Err(ClientError::Api(Box::new(ApiError::from_response(
                answer.status,
                &answer.headers,
                &answer.body,
            ))))
        }
    }
}

/// Turns a hyper failure into the SDK's terms, looking through the source
/// chain for the connector's own error and for a failing upload reader.
fn map_send_error(err: &(dyn StdError + 'static)) -> ClientError {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(connect) = e.downcast_ref::<ConnectError>() {
            let msg = chain_message(connect);
            return if connect.is_tls() {
                ClientError::Tls(msg)
            } else {
                ClientError::Transport(msg)
            };
        }
        if let Some(reader) = e.downcast_ref::<ReaderError>() {
            return ClientError::Io(std::io::Error::new(reader.0.kind(), reader.to_string()));
        }
        cur = e.source();
    }
    ClientError::Transport(chain_message(err))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_requires_an_endpoint() {
        assert!(matches!(Client::builder().build(), Err(ClientError::InvalidUrl(_))));
        let empty: [&str; 0] = [];
        assert!(matches!(
            Client::new_with_endpoints(&empty),
            Err(ClientError::InvalidUrl(_))
        ));
    }

    #[test]
    fn builder_reports_the_bad_url() {
        match Client::new_with_endpoints(&["http://ok:1", "nope"]) {
            Err(ClientError::InvalidUrl(msg)) => assert!(msg.contains("nope"), "{msg}"),
            other => panic!("expected InvalidUrl, got {other:?}"),
        }
    }

    #[test]
    fn missing_ca_file_names_the_path() {
        let err = Client::builder()
            .endpoint("https://h:1")
            .ca_file("/nonexistent/ca.pem")
            .build()
            .expect_err("the call must fail");
        assert!(matches!(&err, ClientError::Io(_)));
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
    }

    #[test]
    fn identity_without_ca_is_refused() {
        let err = Client::builder()
            .endpoint("https://h:1")
            .client_identity_pem("x")
            .build()
            .expect_err("the call must fail");
        assert!(matches!(err, ClientError::Tls(_)), "{err:?}");
    }

    #[test]
    fn zero_timeout_disables_the_deadline() {
        let client = Client::builder()
            .endpoint("http://h:1")
            .timeout(Duration::ZERO)
            .build()
            .expect("test setup");
        assert_eq!(client.inner.timeout, None);
        let client = Client::new("http://h:1").expect("test setup");
        assert_eq!(client.inner.timeout, Some(DEFAULT_TIMEOUT));
        assert_eq!(client.inner.acquire_retries, DEFAULT_ACQUIRE_RETRIES);
    }

    #[tokio::test]
    async fn refused_endpoints_fail_over_and_report_the_last_error() {
        let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("test setup");
        let dead_addr = dead.local_addr().expect("test setup");
        drop(dead);
        let client = Client::new_with_endpoints(&[format!("http://{dead_addr}"), format!("http://{dead_addr}")])
            .expect("test setup");
        let err = client.healthz().await.expect_err("the call must fail");
        assert!(
            matches!(&err, ClientError::Transport(m) if m.contains(&dead_addr.to_string())),
            "{err:?}"
        );
    }
}
