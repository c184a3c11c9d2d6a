//! `/v1/get`, `/v1/update`, `/v1/remove`, `/v1/describe`, `/v1/metadata`:
//! reading and staging a key's state.
//!
//! Checks run in lockd's order (API.md §2.4–2.8) so the first problem a
//! request has is the one reported; only then does the key's actor see it.

use http::{HeaderMap, Request, StatusCode};
use hyper::body::Incoming;
use lockd_actors::lease::LeaseProof;
use lockd_actors::{names, ApiError, Backend};
use lockd_auth::claims::Access;
use sha2::{Digest, Sha256};

use super::body;
use super::caller::Caller;
use super::json::{compact_in_place, decode_strict};
use super::params::{self, Query};
use super::respond;
use super::service::{App, Handled};
use crate::wire::{self, header};

/// Largest `/v1/metadata` body lockd accepts.
const METADATA_BODY_MAX: u64 = 4 * 1024;

/// A lease-guarded state request's target and proof, from the query and
/// the `X-Lease-ID` / `X-Txn-ID` / `X-Fencing-Token` headers.
struct Guarded {
    namespace: String,
    key: String,
    proof: LeaseProof,
}

/// key → namespace → namespace claims → key syntax → lease header → txn
/// header → fencing (update, remove and metadata share this order; all
/// three are writes).
fn guarded<B: Backend>(
    app: &App<B>,
    query: &Query,
    headers: &HeaderMap,
    caller: Caller<'_>,
) -> Result<Guarded, ApiError> {
    let key = query.get("key").trim().to_string();
    if key.is_empty() {
        return Err(ApiError::missing_key().with_detail("key query required"));
    }
    let namespace = query.get("namespace").to_string();
    let default_ns = &app.router.config().default_namespace;
    names::resolve_namespace(&namespace, default_ns)?;
    caller.authorize(&namespace, default_ns, Access::Write)?;
    names::normalize_key(&key)?;
    let lease_id = params::text(headers, header::LEASE_ID);
    if lease_id.is_empty() {
        return Err(ApiError::missing_lease().with_detail("X-Lease-ID required"));
    }
    let txn_id = params::text(headers, header::TXN_ID);
    if txn_id.is_empty() {
        return Err(ApiError::missing_txn().with_detail("X-Txn-ID required"));
    }
    let fencing_token = params::fencing_token(headers)?;
    Ok(Guarded {
        namespace,
        key,
        proof: LeaseProof {
            lease_id,
            fencing_token,
            txn_id: Some(txn_id),
        },
    })
}

/// `POST /v1/get`: a lease read (read-your-writes) or, with `public=1` and
/// no lease header, the committed state.
pub(super) async fn get<B: Backend>(app: &App<B>, req: Request<Incoming>, caller: Caller<'_>) -> Handled {
    let query = Query::parse(req.uri().query());
    let headers = req.headers();
    let lease_id = params::text(headers, header::LEASE_ID);
    let public = query.truthy("public") && lease_id.is_empty();
    let proof = if public {
        None
    } else {
        let fencing_token = params::fencing_token(headers)?;
        Some(fencing_token)
    };
    let key = query.get("key");
    if key.trim().is_empty() {
        return Err(ApiError::missing_params("key query required"));
    }
    let proof = match proof {
        None => None,
        Some(_) if lease_id.is_empty() => {
            return Err(ApiError::missing_params("lease_id required (or use public=1)"));
        }
        Some(fencing_token) => {
            let txn_id = Some(params::text(headers, header::TXN_ID)).filter(|t| !t.is_empty());
            Some(LeaseProof {
                lease_id,
                fencing_token,
                txn_id,
            })
        }
    };
    caller.authorize(
        query.get("namespace"),
        &app.router.config().default_namespace,
        Access::Read,
    )?;
    match app.router.get(query.get("namespace"), key, proof).await? {
        None => Ok(respond::empty(StatusCode::NO_CONTENT)),
        Some(doc) => {
            let mut resp = respond::with_body(StatusCode::OK, "application/json", doc.body);
            respond::set_str(&mut resp, "etag", &doc.etag);
            respond::set_version(&mut resp, doc.version);
            if let Some(token) = doc.fencing_token {
                respond::set_int(&mut resp, header::FENCING_TOKEN, token);
            }
            Ok(resp)
        }
    }
}

/// `POST /v1/update`: stage a new JSON document.
pub(super) async fn update<B: Backend>(app: &App<B>, req: Request<Incoming>, caller: Caller<'_>) -> Handled {
    let query = Query::parse(req.uri().query());
    let (parts, incoming) = req.into_parts();
    let g = guarded(app, &query, &parts.headers, caller)?;
    let if_version = params::if_version(&parts.headers)?;
    let expected_bytes = params::expected_bytes(&parts.headers)?;
    let expected_sha256 = params::expected_sha256(&parts.headers)?;
    check_query_hidden_header(&parts.headers)?;
    let limits = app.body_limits(app.cfg.json_max, app.cfg.payload_spool_mem);
    let mut payload = body::read_request(incoming, &parts.headers, limits).await?;
    let raw_len = payload.as_slice().len() as u64;
    let raw_sha256 = expected_sha256.as_ref().map(|_| Sha256::digest(payload.as_slice()));
    let compacted = compact_in_place(payload.as_mut_slice()).map_err(ApiError::invalid_body)?;
    if let Some(want) = expected_bytes {
        if want != raw_len {
            return Err(ApiError::expected_bytes_mismatch(format!(
                "expected {want} bytes, received {raw_len}"
            )));
        }
    }
    if let (Some(want), Some(got)) = (expected_sha256, raw_sha256) {
        let got: String = got.iter().map(|b| format!("{b:02x}")).collect();
        if want != got {
            return Err(ApiError::expected_sha256_mismatch(format!(
                "expected sha256 {want}, received {got}"
            )));
        }
    }
    let doc = payload.into_bytes(compacted);
    let ok = app
        .router
        .update(
            &g.namespace,
            &g.key,
            g.proof,
            doc,
            if_version,
            params::if_etag(&parts.headers),
        )
        .await?;
    let mut resp = respond::json(&wire::UpdateResponse {
        new_version: ok.new_version,
        new_state_etag: ok.new_state_etag.clone(),
        bytes: ok.bytes,
        metadata: wire::Attributes {
            query_hidden: ok.query_hidden,
        },
    });
    respond::set_version(&mut resp, ok.new_version);
    respond::set_str(&mut resp, "etag", &ok.new_state_etag);
    Ok(resp)
}

/// lockd parses `X-Lockd-Meta-Query-Hidden` on update and ignores it; a
/// malformed value is a 500 there, a `400 invalid_metadata` here (bad input
/// never gets a 5xx).
fn check_query_hidden_header(headers: &HeaderMap) -> Result<(), ApiError> {
    let raw = params::text(headers, header::META_QUERY_HIDDEN);
    if !raw.is_empty() && params::parse_go_bool(&raw).is_none() {
        return Err(ApiError::invalid_metadata(format!(
            "invalid {} header {raw:?}",
            "X-Lockd-Meta-Query-Hidden"
        )));
    }
    Ok(())
}

/// `POST /v1/remove`: stage deletion of the document.
pub(super) async fn remove<B: Backend>(app: &App<B>, req: Request<Incoming>, caller: Caller<'_>) -> Handled {
    let query = Query::parse(req.uri().query());
    let headers = req.headers();
    let g = guarded(app, &query, headers, caller)?;
    let if_version = params::if_version(headers)?;
    let ok = app
        .router
        .remove(&g.namespace, &g.key, g.proof, if_version, params::if_etag(headers))
        .await?;
    let mut resp = respond::json(&wire::RemoveResponse {
        removed: ok.removed,
        new_version: ok.new_version,
    });
    respond::set_version(&mut resp, ok.new_version);
    Ok(resp)
}

/// `GET /v1/describe`: committed metadata, no payload, no lease needed.
pub(super) async fn describe<B: Backend>(app: &App<B>, req: Request<Incoming>, caller: Caller<'_>) -> Handled {
    let query = Query::parse(req.uri().query());
    let key = query.get("key").trim().to_string();
    if key.is_empty() {
        return Err(ApiError::missing_key().with_detail("key query required"));
    }
    let namespace = names::resolve_namespace(query.get("namespace"), &app.router.config().default_namespace)?;
    caller.authorize(&namespace, &app.router.config().default_namespace, Access::Read)?;
    let ok = app.router.describe(&namespace, &key).await?;
    Ok(respond::json(&wire::DescribeResponse {
        namespace,
        key,
        owner: ok.owner.unwrap_or_default(),
        lease_id: ok.lease_id.unwrap_or_default(),
        expires_at_unix: ok.expires_at_unix.unwrap_or(0),
        version: ok.version,
        state_etag: ok.state_etag.unwrap_or_default(),
        updated_at_unix: ok.updated_at_unix,
        metadata: wire::Attributes {
            query_hidden: ok.query_hidden,
        },
    }))
}

/// `POST /v1/metadata`: stage `query_hidden` (header wins over body).
pub(super) async fn metadata<B: Backend>(app: &App<B>, req: Request<Incoming>, caller: Caller<'_>) -> Handled {
    let query = Query::parse(req.uri().query());
    let (parts, incoming) = req.into_parts();
    let g = guarded(app, &query, &parts.headers, caller)?;
    let if_version = params::if_version(&parts.headers)?;
    let raw_header = params::text(&parts.headers, header::META_QUERY_HIDDEN);
    let from_header = if raw_header.is_empty() {
        None
    } else {
        Some(params::parse_go_bool(&raw_header).ok_or_else(|| {
            ApiError::invalid_metadata(format!("invalid X-Lockd-Meta-Query-Hidden header {raw_header:?}"))
        })?)
    };
    let limits = app.body_limits(METADATA_BODY_MAX, METADATA_BODY_MAX);
    let payload = body::read_request(incoming, &parts.headers, limits)
        .await
        .map_err(|e| ApiError::invalid_metadata(e.detail))?;
    let from_body: wire::MetadataRequest =
        decode_strict(payload.as_slice(), true).map_err(ApiError::invalid_metadata)?;
    let query_hidden = from_header
        .or(from_body.query_hidden)
        .ok_or_else(|| ApiError::invalid_metadata("no metadata fields provided"))?;
    let namespace = names::resolve_namespace(&g.namespace, &app.router.config().default_namespace)?;
    let ok = app
        .router
        .metadata(&namespace, &g.key, g.proof, if_version, query_hidden)
        .await?;
    let mut resp = respond::json(&wire::MetadataResponse {
        namespace,
        key: g.key,
        version: ok.version,
        metadata: wire::Attributes {
            query_hidden: ok.query_hidden,
        },
    });
    respond::set_version(&mut resp, ok.version);
    Ok(resp)
}
