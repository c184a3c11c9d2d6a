//! A deliberately thin HTTP client for wire tests: one fresh connection per
//! request, HTTP/1.1 or h2c (prior knowledge), over TCP or a Unix socket,
//! with exactly the headers the test gives (plus `Host` on HTTP/1.1).
//!
//! Higher-level clients normalise headers, retry and follow conventions;
//! a conformance test must not, so this uses hyper's connection-level API.
//! Every error envelope seen is recorded so tests can check the observed
//! (code, status) pairs against lockd's catalogue.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpStream, UnixStream};

/// Longest a single request may take before the test is failed: long
/// enough for blocking acquires, short enough that a hang is reported.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Every `(error code, status)` pair any [`Client`] in this process has seen.
static OBSERVED: Mutex<BTreeSet<(String, u16)>> = Mutex::new(BTreeSet::new());

/// The `(error code, HTTP status)` pairs of all error envelopes received so
/// far by this test process.
pub fn observed_errors() -> Vec<(String, u16)> {
    OBSERVED.lock().map(|s| s.iter().cloned().collect()).unwrap_or_default()
}

/// HTTP version spoken on the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// HTTP/1.1.
    Http1,
    /// HTTP/2 over plain TCP with prior knowledge (no upgrade dance).
    H2c,
}

#[derive(Debug, Clone)]
enum Target {
    Tcp(String),
    Unix(PathBuf),
}

/// Sends requests to one server over one transport and HTTP version.
#[derive(Debug, Clone)]
pub struct Client {
    target: Target,
    proto: Proto,
}

/// A complete response.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status code.
    pub status: StatusCode,
    /// Response headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

impl Reply {
    /// The body as JSON; panics with the raw body when it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {}: body is not JSON ({e}): {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// A response header as text ("" values and absent headers differ).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as text (lossy), for messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The envelope's `error` code, if the body is an error envelope.
    pub fn error_code(&self) -> Option<String> {
        let v: serde_json::Value = serde_json::from_slice(&self.body).ok()?;
        v.get("error")?.as_str().map(str::to_string)
    }
}

impl Client {
    /// A client for `host:port`.
    pub fn tcp(addr: impl Into<String>, proto: Proto) -> Client {
        Client {
            target: Target::Tcp(addr.into()),
            proto,
        }
    }

    /// A client for a Unix-domain socket.
    pub fn unix(path: PathBuf, proto: Proto) -> Client {
        Client {
            target: Target::Unix(path),
            proto,
        }
    }

    /// The HTTP version this client speaks.
    pub fn proto(&self) -> Proto {
        self.proto
    }

    /// Short label (`tcp-h1`, `unix-h2c`, ...) for messages and for making
    /// keys unique per transport.
    pub fn tag(&self) -> &'static str {
        match (&self.target, self.proto) {
            (Target::Tcp(_), Proto::Http1) => "tcp-h1",
            (Target::Tcp(_), Proto::H2c) => "tcp-h2c",
            (Target::Unix(_), Proto::Http1) => "unix-h1",
            (Target::Unix(_), Proto::H2c) => "unix-h2c",
        }
    }

    /// Sends one request and reads the whole response; panics on transport
    /// errors and after 30 s.
    pub async fn send(
        &self,
        method: &str,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Reply {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            let name = HeaderName::from_bytes(name.as_bytes()).unwrap_or_else(|e| panic!("header {name:?}: {e}"));
            let value = HeaderValue::from_str(value).unwrap_or_else(|e| panic!("header {name}: {e}"));
            map.append(name, value);
        }
        self.send_map(method, path_and_query, map, body).await
    }

    /// [`Client::send`] with a prepared header map (for values that are not
    /// text, such as raw non-ASCII bytes).
    pub async fn send_map(
        &self,
        method: &str,
        path_and_query: &str,
        headers: HeaderMap,
        body: impl Into<Bytes>,
    ) -> Reply {
        let what = format!("{} {method} {path_and_query}", self.tag());
        match self.try_send_map(method, path_and_query, headers, body).await {
            Ok(reply) => reply,
            Err(e) => panic!("{what}: {e}"),
        }
    }

    /// Like [`Client::send_map`] but returns transport failures (a reset
    /// stream, a closed connection) instead of panicking.
    pub async fn try_send_map(
        &self,
        method: &str,
        path_and_query: &str,
        headers: HeaderMap,
        body: impl Into<Bytes>,
    ) -> std::io::Result<Reply> {
        let method = Method::from_bytes(method.as_bytes()).map_err(std::io::Error::other)?;
        let uri = match self.proto {
            Proto::Http1 => path_and_query.to_string(),
            Proto::H2c => format!("http://localhost{path_and_query}"),
        };
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .body(Full::new(body.into()))
            .map_err(std::io::Error::other)?;
        *req.headers_mut() = headers;
        if self.proto == Proto::Http1 && !req.headers().contains_key(http::header::HOST) {
            req.headers_mut()
                .insert(http::header::HOST, HeaderValue::from_static("localhost"));
        }
        let reply = tokio::time::timeout(REQUEST_TIMEOUT, self.exchange(req))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no response within 30 s"))??;
        record(&reply);
        Ok(reply)
    }

    async fn exchange(&self, req: Request<Full<Bytes>>) -> std::io::Result<Reply> {
        match &self.target {
            Target::Tcp(addr) => {
                let stream = TcpStream::connect(addr.as_str()).await?;
                stream.set_nodelay(true)?;
                exchange_on(TokioIo::new(stream), self.proto, req).await
            }
            Target::Unix(path) => {
                let stream = UnixStream::connect(path).await?;
                exchange_on(TokioIo::new(stream), self.proto, req).await
            }
        }
    }
}

async fn exchange_on<IO>(io: TokioIo<IO>, proto: Proto, req: Request<Full<Bytes>>) -> std::io::Result<Reply>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let resp = match proto {
        Proto::Http1 => {
            let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
                .await
                .map_err(std::io::Error::other)?;
            tokio::spawn(conn);
            sender.send_request(req).await.map_err(std::io::Error::other)?
        }
        Proto::H2c => {
            let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .map_err(std::io::Error::other)?;
            tokio::spawn(conn);
            sender.send_request(req).await.map_err(std::io::Error::other)?
        }
    };
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.map_err(std::io::Error::other)?.to_bytes();
    Ok(Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    })
}

fn record(reply: &Reply) {
    if !(reply.status.is_client_error() || reply.status.is_server_error()) {
        return;
    }
    if let Some(code) = reply.error_code() {
        if let Ok(mut seen) = OBSERVED.lock() {
            seen.insert((code, reply.status.as_u16()));
        }
    }
}
