//! The connector behind the pooled hyper client: plain TCP, TLS over TCP,
//! or a Unix-domain socket, chosen by the request URI's scheme.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::endpoint::{unix_socket_path, UNIX_SCHEME};

/// Why a connection could not be opened. The transport layer looks for
/// this type in an error's source chain to tell a dead endpoint (try the
/// next one) from a TLS misconfiguration (fail at once).
#[derive(Debug)]
pub(crate) enum ConnectError {
    /// Name resolution or socket connect failed.
    Io { target: String, source: io::Error },
    /// The connect (including the TLS handshake) took longer than allowed.
    Timeout { target: String },
    /// The TLS handshake failed (untrusted certificate, protocol mismatch).
    Tls { target: String, source: io::Error },
    /// An `https` endpoint was dialled without a CA bundle.
    NoCa { target: String },
    /// The request URI cannot be dialled.
    BadUri(String),
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::Io { target, source } => write!(f, "cannot connect to {target}: {source}"),
            ConnectError::Timeout { target } => write!(f, "connecting to {target} timed out"),
            ConnectError::Tls { target, source } => write!(f, "TLS handshake with {target} failed: {source}"),
            ConnectError::NoCa { target } => write!(
                f,
                "{target} is an https endpoint but no CA certificate is configured to verify it \
                 (set one with ClientBuilder::ca_pem or ClientBuilder::ca_file)"
            ),
            ConnectError::BadUri(why) => write!(f, "cannot dial {why}"),
        }
    }
}

impl StdError for ConnectError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            ConnectError::Io { source, .. } => Some(source),
            ConnectError::Tls { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl ConnectError {
    /// Whether the failure is about TLS trust or configuration rather than reachability.
    pub(crate) fn is_tls(&self) -> bool {
        matches!(self, ConnectError::Tls { .. } | ConnectError::NoCa { .. })
    }
}

/// Opens connections for the pooled client.
#[derive(Clone)]
pub(crate) struct Connector {
    tls: Option<Arc<ClientConfig>>,
    connect_timeout: Duration,
}

impl Connector {
    /// A connector; `tls` is `None` when no CA bundle was configured.
    pub(crate) fn new(tls: Option<Arc<ClientConfig>>, connect_timeout: Duration) -> Connector {
        Connector { tls, connect_timeout }
    }

    async fn connect(self, uri: Uri) -> Result<Conn, ConnectError> {
        let target = describe(&uri);
        let dial =
            async {
                match uri.scheme_str() {
                    Some(UNIX_SCHEME) => {
                        let path = unix_socket_path(&uri)
                            .ok_or_else(|| ConnectError::BadUri(format!("{uri}: bad socket path")))?;
                        let stream = UnixStream::connect(&path).await.map_err(|source| ConnectError::Io {
                            target: target.clone(),
                            source,
                        })?;
                        Ok(Conn::new(Stream::Unix(stream), false))
                    }
                    Some("http") => Ok(Conn::new(Stream::Tcp(self.tcp(&uri, 80, &target).await?), false)),
                    Some("https") => {
                        let config = self
                            .tls
                            .clone()
                            .ok_or_else(|| ConnectError::NoCa { target: target.clone() })?;
                        let tcp = self.tcp(&uri, 443, &target).await?;
                        let name =
                            server_name(&uri).ok_or_else(|| ConnectError::BadUri(format!("{uri}: bad host name")))?;
                        let tls = TlsConnector::from(config).connect(name, tcp).await.map_err(|source| {
                            ConnectError::Tls {
                                target: target.clone(),
                                source,
                            }
                        })?;
                        let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                        Ok(Conn::new(Stream::Tls(Box::new(tls)), h2))
                    }
                    _ => Err(ConnectError::BadUri(format!("{uri}: unsupported scheme"))),
                }
            };
        tokio::time::timeout(self.connect_timeout, dial)
            .await
            .map_err(|_| ConnectError::Timeout { target })?
    }

    async fn tcp(&self, uri: &Uri, default_port: u16, target: &str) -> Result<TcpStream, ConnectError> {
        let host = uri
            .host()
            .ok_or_else(|| ConnectError::BadUri(format!("{uri}: no host")))?;
        let port = uri.port_u16().unwrap_or(default_port);
        let io_err = |source| ConnectError::Io {
            target: target.to_owned(),
            source,
        };
        let addrs = tokio::net::lookup_host((host.trim_start_matches('[').trim_end_matches(']'), port))
            .await
            .map_err(io_err)?;
        let mut last = io::Error::new(io::ErrorKind::NotFound, "host name resolved to no address");
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(stream) => {
                    stream.set_nodelay(true).map_err(io_err)?;
                    return Ok(stream);
                }
                Err(e) => last = e,
            }
        }
        Err(io_err(last))
    }
}

impl tower_service::Service<Uri> for Connector {
    type Response = Conn;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<Conn, ConnectError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), ConnectError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        Box::pin(self.clone().connect(uri))
    }
}

/// How the connection target is named in messages: the socket path for
/// Unix sockets (the URI's authority is only its hex encoding).
fn describe(uri: &Uri) -> String {
    if uri.scheme_str() == Some(UNIX_SCHEME) {
        if let Some(path) = unix_socket_path(uri) {
            return format!("unix socket {}", path.display());
        }
    }
    match (uri.scheme_str(), uri.authority()) {
        (Some(scheme), Some(auth)) => format!("{scheme}://{auth}"),
        _ => uri.to_string(),
    }
}

fn server_name(uri: &Uri) -> Option<ServerName<'static>> {
    let host = uri.host()?.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Some(ServerName::IpAddress(ip.into()));
    }
    ServerName::try_from(host.to_owned()).ok()
}

enum Stream {
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    Unix(UnixStream),
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
            Stream::Unix(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Tcp(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
            Stream::Unix(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// One open connection, as hyper sees it.
pub(crate) struct Conn {
    io: TokioIo<Stream>,
    h2: bool,
}

impl Conn {
    fn new(stream: Stream, h2: bool) -> Conn {
        Conn {
            io: TokioIo::new(stream),
            h2,
        }
    }
}

impl Connection for Conn {
    fn connected(&self) -> Connected {
        let connected = Connected::new();
        if self.h2 {
            connected.negotiated_h2()
        } else {
            connected
        }
    }
}

impl Read for Conn {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: ReadBufCursor<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl Write for Conn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::endpoint::Endpoint;

    #[test]
    fn server_names_cover_ips_and_hosts() {
        let uri: Uri = "https://[::1]:9341/x".parse().expect("test setup");
        assert!(matches!(server_name(&uri), Some(ServerName::IpAddress(_))));
        let uri: Uri = "https://lockd.internal:9341/x".parse().expect("test setup");
        assert!(matches!(server_name(&uri), Some(ServerName::DnsName(_))));
    }

    #[tokio::test]
    async fn https_without_ca_names_the_missing_ca() {
        let uri = Endpoint::parse("https://127.0.0.1:1")
            .expect("test setup")
            .uri("/healthz", "")
            .expect("test setup");
        let err = Connector::new(None, Duration::from_secs(1))
            .connect(uri)
            .await
            .err()
            .expect("the call must fail");
        assert!(err.is_tls());
        assert!(err.to_string().contains("no CA certificate"), "{err}");
    }

    #[tokio::test]
    async fn refused_tcp_is_an_io_error_naming_the_target() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("test setup");
        let addr = listener.local_addr().expect("test setup");
        drop(listener);
        let uri: Uri = format!("http://{addr}/healthz").parse().expect("test setup");
        let err = Connector::new(None, Duration::from_secs(5))
            .connect(uri)
            .await
            .err()
            .expect("the call must fail");
        assert!(matches!(err, ConnectError::Io { .. }), "{err:?}");
        assert!(!err.is_tls());
        assert!(err.to_string().contains(&addr.to_string()), "{err}");
    }

    #[tokio::test]
    async fn missing_unix_socket_names_the_path() {
        let uri = Endpoint::parse("unix:///nonexistent/lockd.sock")
            .expect("test setup")
            .uri("/healthz", "")
            .expect("test setup");
        let err = Connector::new(None, Duration::from_secs(1))
            .connect(uri)
            .await
            .err()
            .expect("the call must fail");
        assert!(err.to_string().contains("unix socket /nonexistent/lockd.sock"), "{err}");
    }
}
