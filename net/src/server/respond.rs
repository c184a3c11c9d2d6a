//! Building responses: JSON bodies, the error envelope, and Go's plain-text 404.
//!
//! lockd writes every JSON answer with `json.Encoder`, which appends a
//! newline; clients compare bodies loosely, but tools that diff answers
//! (and our own black-box tests) see the same bytes as against lockd.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use lockd_actors::ApiError;
use serde::Serialize;

use crate::wire::{self, ErrorEnvelope};

/// The body type of every response the server writes.
pub(crate) type Body = Full<Bytes>;

/// A JSON answer with status 200.
pub(crate) fn json<T: Serialize>(value: &T) -> Response<Body> {
    match serde_json::to_vec(value) {
        Ok(mut buf) => {
            buf.push(b'\n');
            with_body(StatusCode::OK, "application/json", Bytes::from(buf))
        }
        // Our wire structs always serialise; failing here is a bug, reported as such.
        Err(e) => error(&ApiError::internal(format!("encoding response: {e}"))),
    }
}

/// The error envelope of API.md §0.2, with `Retry-After` when the error asks for a wait.
pub(crate) fn error(err: &ApiError) -> Response<Body> {
    let envelope = ErrorEnvelope {
        error: err.code.to_string(),
        detail: err.detail.clone(),
        leader_endpoint: String::new(),
        current_version: err.current_version,
        current_etag: err.current_etag.clone(),
        retry_after_seconds: err.retry_after_seconds,
    };
    let mut buf = serde_json::to_vec(&envelope).unwrap_or_else(|_| br#"{"error":"internal_error"}"#.to_vec());
    buf.push(b'\n');
    let status = StatusCode::from_u16(err.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = with_body(status, "application/json", Bytes::from(buf));
    if err.retry_after_seconds > 0 {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(err.retry_after_seconds));
    }
    resp
}

/// Go's `http.NotFound`: unknown paths answer in plain text, not with the envelope.
pub(crate) fn not_found() -> Response<Body> {
    let mut resp = with_body(
        StatusCode::NOT_FOUND,
        "text/plain; charset=utf-8",
        Bytes::from_static(b"404 page not found\n"),
    );
    resp.headers_mut()
        .insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    resp
}

/// A bodiless answer (probes, `204 No Content`).
pub(crate) fn empty(status: StatusCode) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = status;
    resp
}

/// A body with its content type.
pub(crate) fn with_body(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Body> {
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// Sets a header whose value is an integer.
pub(crate) fn set_int(resp: &mut Response<Body>, name: &'static str, value: i64) {
    resp.headers_mut().insert(name, HeaderValue::from(value));
}

/// Sets a header from a string we produced (ETags, ids); values that are not
/// valid header text are skipped rather than failing the whole answer.
pub(crate) fn set_str(resp: &mut Response<Body>, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        resp.headers_mut().insert(name, v);
    }
}

/// Sets `X-Key-Version`.
pub(crate) fn set_version(resp: &mut Response<Body>, version: i64) {
    set_int(resp, wire::header::KEY_VERSION, version);
}
