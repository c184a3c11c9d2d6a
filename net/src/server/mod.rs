//! The HTTP server: lockd v0.9's lease and state routes over HTTP/1.1 and
//! HTTP/2 (h2c prior knowledge), on TCP or a Unix-domain socket.
//!
//! Each connection is a hyper task; each request is parsed and validated
//! here and then becomes one message to the key's lease actor through the
//! [`Router`]. Nothing in this module decides lease semantics.
//!
//! Back-pressure lives at this door: actor mailboxes are unbounded, so the
//! number of requests in flight is capped ([`ServerConfig::max_in_flight`])
//! and the excess is answered `429 throttled` with `Retry-After` instead of
//! queueing without bound.

mod body;
mod caller;
pub mod json;
mod lease_routes;
mod listen;
mod params;
mod respond;
mod service;
mod state_routes;
pub mod tls;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use lockd_actors::{Backend, Router};

pub use listen::{ListenSpec, Listener, TcpFamily};

/// Front-end settings (lockd's flag defaults).
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Largest request body (`--json-max`, 100 MiB); larger ones get `400 invalid_body`.
    pub json_max: u64,
    /// Bodies above this spill to a temporary file (`--payload-spool-mem`, 4 MiB).
    pub payload_spool_mem: u64,
    /// Accept HTTP/2 with prior knowledge on plain connections.
    pub h2c: bool,
    /// A request body that sends nothing for this long is refused with
    /// `400 invalid_body` (30 s), so stalled uploads cannot pin requests.
    pub body_idle_timeout: Duration,
    /// Heap shared by all request bodies still being received (256 MiB);
    /// beyond it, bodies spill to temporary files at once.
    pub body_mem_budget: u64,
    /// `--http2-max-concurrent-streams` (1024).
    pub http2_max_concurrent_streams: u32,
    /// Requests in flight beyond this are answered `429 throttled`.
    pub max_in_flight: usize,
    /// How long shutdown waits for in-flight requests before closing connections.
    pub shutdown_timeout: Duration,
    /// Serve TLS on TCP connections (see [`tls::server_config`]); `None` is
    /// plain HTTP. With client roots, requests are checked against the
    /// client certificate's namespace claims.
    pub tls: Option<tls::TlsSettings>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            json_max: 100 * 1024 * 1024,
            payload_spool_mem: 4 * 1024 * 1024,
            body_idle_timeout: Duration::from_secs(30),
            body_mem_budget: 256 * 1024 * 1024,
            h2c: true,
            http2_max_concurrent_streams: 1024,
            max_in_flight: 4096,
            shutdown_timeout: Duration::from_secs(10),
            tls: None,
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// `--listen` is not an address we can parse or resolve.
    #[error("invalid listen address {addr:?}: {reason}")]
    BadListen {
        /// The address as given.
        addr: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The TLS certificate or key is unusable.
    #[error("TLS: {0}")]
    Tls(String),
    /// The socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address or socket path.
        addr: String,
        /// The operating system's reason.
        source: std::io::Error,
    },
}

/// A future that resolves on SIGTERM or SIGINT: the signals that start a
/// graceful shutdown. The handlers are installed by this call, not when the
/// future is first polled, so a signal that arrives while the server is
/// still starting is not lost (nor does it kill the process outright). Must
/// be called inside a tokio runtime.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    async move {
        match (term, int) {
            (Ok(mut term), Ok(mut int)) => tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM received, shutting down"),
                _ = int.recv() => tracing::info!("SIGINT received, shutting down"),
            },
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(error = %e, "cannot watch SIGTERM/SIGINT; stop the server with SIGKILL");
                std::future::pending::<()>().await;
            }
        }
    }
}

/// Serves `listener` until `shutdown` resolves, then stops accepting, lets
/// in-flight requests finish (up to [`ServerConfig::shutdown_timeout`]) and
/// returns. Flushing storage is the caller's last step.
pub async fn serve<B: Backend>(
    listener: Listener,
    router: Router<B>,
    cfg: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), NetError> {
    let shutdown_timeout = cfg.shutdown_timeout;
    let builder = conn_builder(&cfg);
    let tls = cfg
        .tls
        .as_ref()
        .map(|t| tokio_rustls::TlsAcceptor::from(Arc::clone(&t.config)));
    let app = Arc::new(service::App::new(router, cfg));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = &mut shutdown => break,
        };
        match accepted {
            Ok(listen::Accepted::Tcp(s)) => match &tls {
                None => spawn_conn(&builder, &graceful, &app, s),
                Some(acceptor) => spawn_tls_conn(&builder, &graceful, &app, acceptor, s),
            },
            Ok(listen::Accepted::Unix(s)) => spawn_conn(&builder, &graceful, &app, s),
            Err(e) => {
                // Out of descriptors or a connection reset before accept:
                // back off briefly instead of spinning, keep serving.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    drop(listener);
    tracing::info!("stopped accepting; waiting for in-flight requests");
    if tokio::time::timeout(shutdown_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            timeout_ms = shutdown_timeout.as_millis() as u64,
            "in-flight requests did not finish in time; closing their connections"
        );
    }
    Ok(())
}

/// The per-connection protocol settings shared by every connection.
fn conn_builder(cfg: &ServerConfig) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Pipelined requests are answered in order; their responses share flushes.
    builder
        .http1()
        .timer(TokioTimer::new())
        .keep_alive(true)
        .pipeline_flush(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(cfg.http2_max_concurrent_streams)
        // Go's default header budget (1 MiB); hyper's HTTP/2 default is 16 MiB.
        .max_header_list_size(1 << 20);
    if cfg.h2c || cfg.tls.is_some() {
        builder
    } else {
        builder.http1_only()
    }
}

/// Serves one already-connected byte stream (plain HTTP) until the peer
/// closes it. This is the whole front-end minus the listener: the HTTP fuzz
/// target feeds it arbitrary bytes, and an embedder can hand it any stream.
pub async fn serve_stream<B, IO>(router: Router<B>, cfg: ServerConfig, io: IO) -> Result<(), String>
where
    B: Backend,
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let builder = conn_builder(&cfg);
    let app = Arc::new(service::App::new(router, cfg));
    builder
        .serve_connection(TokioIo::new(io), service_for(app, None))
        .await
        .map_err(|e| e.to_string())
}

/// Longest a client may take to complete the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs the TLS handshake off the accept loop, then serves the connection.
/// Handshake failures (wrong CA, plain HTTP on a TLS port) end only that
/// connection.
fn spawn_tls_conn<B: Backend>(
    builder: &auto::Builder<TokioExecutor>,
    graceful: &GracefulShutdown,
    app: &Arc<service::App<B>>,
    acceptor: &tokio_rustls::TlsAcceptor,
    stream: tokio::net::TcpStream,
) {
    let builder = builder.clone();
    let watcher = graceful.watcher();
    let app = app.clone();
    let acceptor = acceptor.clone();
    tokio::spawn(async move {
        let peer = stream.peer_addr().map(|a| a.to_string()).unwrap_or_default();
        match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
            Ok(Ok(tls)) => {
                // Read the verified client certificate once; every request
                // on this connection is authorised against it.
                let peer = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|chain| chain.first())
                    .map(|der| Arc::new(caller::Peer::from_certificate(der)));
                let conn = builder
                    .serve_connection(TokioIo::new(tls), service_for(app, peer))
                    .into_owned();
                if let Err(e) = watcher.watch(conn).await {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
            }
            Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
            Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
        }
    });
}

fn service_for<B: Backend>(
    app: Arc<service::App<B>>,
    peer: Option<Arc<caller::Peer>>,
) -> impl hyper::service::Service<
    http::Request<hyper::body::Incoming>,
    Response = http::Response<respond::Body>,
    Error = std::convert::Infallible,
    Future = impl Future<Output = Result<http::Response<respond::Body>, std::convert::Infallible>> + Send,
> + Clone
       + Send {
    service_fn(move |req| {
        let app = app.clone();
        let peer = peer.clone();
        async move { Ok::<_, std::convert::Infallible>(service::handle(app, req, peer.as_deref()).await) }
    })
}

fn spawn_conn<B, IO>(
    builder: &auto::Builder<TokioExecutor>,
    graceful: &GracefulShutdown,
    app: &Arc<service::App<B>>,
    io: IO,
) where
    B: Backend,
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let conn = builder
        .serve_connection(TokioIo::new(io), service_for(app.clone(), None))
        .into_owned();
    let conn = graceful.watch(conn);
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "connection ended with an error");
        }
    });
}
