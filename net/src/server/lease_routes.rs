//! `/v1/acquire`, `/v1/keepalive`, `/v1/release`: the lease lifecycle.
//!
//! Each handler checks what lockd checks before the body (the fencing
//! header), decodes the strict JSON body, applies the query-parameter and
//! header fallbacks, and hands one message to the key's actor.

use http::Request;
use hyper::body::Incoming;
use lockd_actors::lease::LeaseProof;
use lockd_actors::{ApiError, Backend};
use lockd_auth::claims::Access;

use super::body;
use super::caller::Caller;
use super::json::decode_strict;
use super::params::{self, Query};
use super::respond;
use super::service::{App, Handled};
use crate::wire::{self, header};

/// Reads and strictly decodes a control body (empty not allowed).
pub(super) async fn control_body<B: Backend, T>(app: &App<B>, req: Request<Incoming>) -> Result<T, ApiError>
where
    T: serde::de::DeserializeOwned + Default,
{
    let limits = app.body_limits(app.cfg.json_max, app.cfg.payload_spool_mem);
    let (parts, incoming) = req.into_parts();
    let payload = body::read_request(incoming, &parts.headers, limits).await?;
    decode_strict(payload.as_slice(), false).map_err(ApiError::invalid_body)
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

/// `POST /v1/acquire`.
pub(super) async fn acquire<B: Backend>(
    app: &App<B>,
    req: Request<Incoming>,
    correlation_id: &str,
    caller: Caller<'_>,
) -> Handled {
    let query = Query::parse(req.uri().query());
    let header_txn = params::text(req.headers(), header::TXN_ID);
    let body: wire::AcquireRequest = control_body(app, req).await?;
    let key = body.key.unwrap_or_default();
    let key = if key.trim().is_empty() {
        query.get("key").to_string()
    } else {
        key
    };
    let txn = non_empty(body.txn_id).or(Some(header_txn).filter(|t| !t.is_empty()));
    // lockd ignores a `namespace` query parameter here; honouring it when the
    // body names none is an allowed addition (API.md quirk policy).
    let namespace = non_empty(body.namespace).unwrap_or_else(|| query.get("namespace").to_string());
    caller.authorize(&namespace, &app.router.config().default_namespace, Access::Write)?;
    let owner = caller.owner(body.owner.as_deref().unwrap_or(""));
    let (namespace, ok) = app
        .router
        .acquire(
            &namespace,
            &key,
            &owner,
            body.ttl_seconds.unwrap_or(0),
            body.block_seconds.unwrap_or(0),
            body.if_not_exists.unwrap_or(false),
            txn.as_deref(),
        )
        .await?;
    let answer = wire::AcquireResponse {
        namespace,
        lease_id: ok.lease_id,
        txn_id: ok.txn_id,
        key: ok.key,
        owner: ok.owner,
        expires_at_unix: ok.expires_at_unix,
        version: ok.version,
        state_etag: ok.state_etag.unwrap_or_default(),
        fencing_token: ok.fencing_token,
        retry_after_seconds: 0,
        correlation_id: correlation_id.to_string(),
    };
    let mut resp = respond::json(&answer);
    respond::set_int(&mut resp, header::FENCING_TOKEN, ok.fencing_token);
    respond::set_version(&mut resp, ok.version);
    Ok(resp)
}

/// The parts of a keepalive/release request that identify the lease.
struct LeaseTarget {
    namespace: String,
    key: String,
    proof: LeaseProof,
}

/// Resolves `namespace`/`key` (body, then query) and `lease_id`, in the
/// order lockd reports them missing.
fn lease_target(
    query: &Query,
    namespace: Option<String>,
    key: Option<String>,
    lease_id: Option<String>,
    txn_id: Option<String>,
    fencing_token: i64,
) -> Result<LeaseTarget, ApiError> {
    let key = non_empty(key)
        .or_else(|| non_empty(Some(query.get("key").to_string())))
        .ok_or_else(ApiError::missing_key)?;
    let lease_id = non_empty(lease_id).ok_or_else(ApiError::missing_lease)?;
    let namespace = non_empty(namespace).unwrap_or_else(|| query.get("namespace").to_string());
    Ok(LeaseTarget {
        namespace,
        key,
        proof: LeaseProof {
            lease_id,
            fencing_token,
            txn_id,
        },
    })
}

/// `POST /v1/keepalive`.
pub(super) async fn keepalive<B: Backend>(app: &App<B>, req: Request<Incoming>, caller: Caller<'_>) -> Handled {
    let fencing = params::fencing_token(req.headers())?;
    let query = Query::parse(req.uri().query());
    let header_txn = non_empty(Some(params::text(req.headers(), header::TXN_ID)));
    let body: wire::KeepaliveRequest = control_body(app, req).await?;
    let txn = header_txn.or(non_empty(body.txn_id));
    let t = lease_target(&query, body.namespace, body.key, body.lease_id, txn, fencing)?;
    caller.authorize(&t.namespace, &app.router.config().default_namespace, Access::Write)?;
    let expires_at_unix = app
        .router
        .keepalive(&t.namespace, &t.key, t.proof, body.ttl_seconds.unwrap_or(0))
        .await?;
    let mut resp = respond::json(&wire::KeepaliveResponse { expires_at_unix });
    respond::set_int(&mut resp, header::FENCING_TOKEN, fencing);
    Ok(resp)
}

/// `POST /v1/release`.
pub(super) async fn release<B: Backend>(app: &App<B>, req: Request<Incoming>, caller: Caller<'_>) -> Handled {
    let fencing = params::fencing_token(req.headers())?;
    let query = Query::parse(req.uri().query());
    let header_txn = non_empty(Some(params::text(req.headers(), header::TXN_ID)));
    let body: wire::ReleaseRequest = control_body(app, req).await?;
    let txn = non_empty(body.txn_id).or(header_txn);
    let rollback = body.rollback.unwrap_or(false);
    let t = lease_target(&query, body.namespace, body.key, body.lease_id, txn, fencing)?;
    if t.proof.txn_id.is_none() {
        return Err(ApiError::missing_txn().with_detail("txn_id required"));
    }
    caller.authorize(&t.namespace, &app.router.config().default_namespace, Access::Write)?;
    let released = app.router.release(&t.namespace, &t.key, t.proof, rollback).await?;
    Ok(respond::json(&wire::ReleaseResponse { released }))
}
