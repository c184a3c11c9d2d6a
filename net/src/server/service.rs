//! One request's path through the front-end: correlation id, admission,
//! routing to its handler, the error envelope, and the request log line.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use http::{HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use lockd_actors::{ApiError, Backend, Router};

use super::body::{Limits, MemBudget};
use super::caller::{Caller, Peer};
use super::respond::{self, Body};
use super::{lease_routes, params, state_routes, ServerConfig};
use crate::wire::header;

/// Everything a handler needs; shared by all connections.
pub(crate) struct App<B: Backend> {
    pub router: Router<B>,
    pub cfg: ServerConfig,
    in_flight: AtomicUsize,
    bodies: MemBudget,
}

impl<B: Backend> App<B> {
    pub(crate) fn new(router: Router<B>, cfg: ServerConfig) -> App<B> {
        App {
            router,
            bodies: MemBudget::new(cfg.body_mem_budget),
            cfg,
            in_flight: AtomicUsize::new(0),
        }
    }

    /// Body limits for a route taking at most `max` bytes, kept in memory
    /// up to `spool_at`.
    pub(crate) fn body_limits(&self, max: u64, spool_at: u64) -> Limits<'_> {
        Limits {
            max,
            spool_at,
            idle: self.cfg.body_idle_timeout,
            budget: &self.bodies,
        }
    }
}

/// What a handler returns: a response, or an error for the envelope.
pub(crate) type Handled = Result<Response<Body>, ApiError>;

/// Routes of this server. Paths match exactly, as Go's `ServeMux` does with
/// non-slash-terminated patterns; methods are not enforced on these routes
/// (lockd runs the handler for any method).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Probe,
    Acquire,
    Keepalive,
    Release,
    Get,
    Update,
    Remove,
    Describe,
    Metadata,
}

fn route(path: &str) -> Option<Route> {
    Some(match path {
        "/healthz" | "/readyz" => Route::Probe,
        "/v1/acquire" => Route::Acquire,
        "/v1/keepalive" => Route::Keepalive,
        "/v1/release" => Route::Release,
        "/v1/get" => Route::Get,
        "/v1/update" => Route::Update,
        "/v1/remove" => Route::Remove,
        "/v1/describe" => Route::Describe,
        "/v1/metadata" => Route::Metadata,
        _ => return None,
    })
}

/// Decrements the in-flight count however the request ends (including the
/// client going away and the future being dropped).
struct Admission<'a>(&'a AtomicUsize);

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serves one request. Never fails: every outcome is an HTTP response.
pub(crate) async fn handle<B: Backend>(
    app: Arc<App<B>>,
    req: Request<Incoming>,
    peer: Option<&Peer>,
) -> Response<Body> {
    let started = Instant::now();
    let supplied = params::text(req.headers(), header::CORRELATION_ID);
    let correlation_id = if params::valid_correlation_id(&supplied) {
        supplied
    } else {
        lockd_actors::ids::new_uuid_v7()
    };
    let method = req.method().clone();
    let path = req.uri().path().to_string();

    let mut resp = match route(&path) {
        None => respond::not_found(),
        Some(Route::Probe) => respond::empty(StatusCode::OK),
        Some(r) => {
            let admitted = app.in_flight.fetch_add(1, Ordering::Relaxed) < app.cfg.max_in_flight;
            let _admission = Admission(&app.in_flight);
            let caller = Caller {
                peer,
                denylist: app.cfg.tls.as_ref().map(|t| &**t.denylist()),
            };
            let outcome = if admitted {
                dispatch(&app, r, req, &correlation_id, caller).await
            } else {
                Err(ApiError::throttled(1))
            };
            match outcome {
                Ok(resp) => resp,
                Err(err) => {
                    if err.status >= 500 {
                        tracing::error!(%method, %path, correlation_id, error = %err, "request failed");
                    }
                    respond::error(&err)
                }
            }
        }
    };
    if let Ok(v) = HeaderValue::from_str(&correlation_id) {
        resp.headers_mut().insert(header::CORRELATION_ID, v);
    }
    tracing::debug!(
        %method,
        %path,
        status = resp.status().as_u16(),
        micros = started.elapsed().as_micros() as u64,
        correlation_id,
        "request"
    );
    resp
}

async fn dispatch<B: Backend>(
    app: &App<B>,
    route: Route,
    req: Request<Incoming>,
    correlation_id: &str,
    caller: Caller<'_>,
) -> Handled {
    match route {
        Route::Acquire => lease_routes::acquire(app, req, correlation_id, caller).await,
        Route::Keepalive => lease_routes::keepalive(app, req, caller).await,
        Route::Release => lease_routes::release(app, req, caller).await,
        Route::Get => state_routes::get(app, req, caller).await,
        Route::Update => state_routes::update(app, req, caller).await,
        Route::Remove => state_routes::remove(app, req, caller).await,
        Route::Describe => state_routes::describe(app, req, caller).await,
        Route::Metadata => state_routes::metadata(app, req, caller).await,
        Route::Probe => Ok(respond::empty(StatusCode::OK)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_is_exact() {
        assert_eq!(route("/v1/acquire"), Some(Route::Acquire));
        assert_eq!(route("/v1/acquire/"), None);
        assert_eq!(route("/v1/Acquire"), None);
        assert_eq!(route("/healthz"), Some(Route::Probe));
        assert_eq!(route("/v1/"), None);
    }
}
