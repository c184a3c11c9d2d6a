//! The SDK's error type and the decoding of lockd's error envelope.

use std::error::Error as StdError;
use std::fmt;

use http::{HeaderMap, StatusCode};

use crate::wire::{header, ErrorEnvelope};

/// Everything a client call can fail with.
///
/// Callers branch on the variant to decide what to do next: an [`ApiError`]
/// is the server's considered answer (look at [`ClientError::code`]), the
/// other variants mean the request never got such an answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with a non-2xx status (boxed: it is the largest variant).
    #[error("{0}")]
    Api(Box<ApiError>),
    /// No answer could be obtained: connection refused or reset, protocol error.
    #[error("transport error: {0}")]
    Transport(String),
    /// The per-request deadline passed before the answer was complete.
    #[error("request timed out")]
    Timeout,
    /// A base URL could not be used.
    #[error("invalid server URL: {0}")]
    InvalidUrl(String),
    /// The server answered 2xx but the body or a header was not what the API promises.
    #[error("unexpected response: {0}")]
    Decode(String),
    /// TLS could not be configured or the handshake failed.
    #[error("TLS error: {0}")]
    Tls(String),
    /// An argument cannot be put on the wire (e.g. a lease id with control characters).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A local I/O failure: reading a CA file, or the reader behind a streamed upload.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl ClientError {
    /// The server's error code (`waiting`, `lease_required`, …) when this is
    /// an API error with a non-empty code, so callers can match on the
    /// documented catalogue without destructuring.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api(api) if !api.code.is_empty() => Some(api.code.as_str()),
            _ => None,
        }
    }

    /// The API error, when the server answered; lets callers read
    /// `current_version` / `current_etag` after a CAS conflict.
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            ClientError::Api(api) => Some(api),
            _ => None,
        }
    }
}

/// A non-2xx answer, decoded from lockd's JSON error envelope.
///
/// When the body is not an envelope (lockd answers unknown paths with Go's
/// text/plain `404 page not found`), `code` is `not_found` for a 404 and
/// empty for any other status, and `detail` carries the start of the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status of the answer.
    pub status: u16,
    /// Machine-readable error code from the envelope.
    pub code: String,
    /// Human explanation from the envelope.
    pub detail: String,
    /// Committed version the server reported (CAS and lease errors), 0 if absent.
    pub current_version: i64,
    /// Committed ETag the server reported, empty if absent.
    pub current_etag: String,
    /// How long the server asked us to wait before retrying, in seconds
    /// (the larger of the envelope field and the `Retry-After` header).
    pub retry_after_seconds: i64,
    /// Leader endpoint named by transaction-coordinator errors.
    pub leader_endpoint: String,
    /// The answer's `X-Correlation-Id`, to quote in bug reports and logs.
    pub correlation_id: Option<String>,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let code = if self.code.is_empty() {
            "error"
        } else {
            self.code.as_str()
        };
        write!(f, "server answered {} {}", self.status, code)?;
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        if self.retry_after_seconds > 0 {
            write!(f, " (retry after {}s)", self.retry_after_seconds)?;
        }
        if let Some(id) = &self.correlation_id {
            write!(f, " [correlation id {id}]")?;
        }
        Ok(())
    }
}

impl StdError for ApiError {}

/// Longest slice of a non-envelope body copied into `detail`.
const MAX_DETAIL_BYTES: usize = 512;

impl ApiError {
    /// Builds the error for a non-2xx answer from its status, headers and body.
    pub(crate) fn from_response(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> ApiError {
        let header_retry = headers
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<i64>().ok())
            .unwrap_or(0);
        let correlation_id = header_str(headers, header::CORRELATION_ID).map(str::to_owned);
        match serde_json::from_slice::<ErrorEnvelope>(body) {
            Ok(env) => ApiError {
                status: status.as_u16(),
                code: env.error,
                detail: env.detail,
                current_version: env.current_version,
                current_etag: env.current_etag,
                retry_after_seconds: env.retry_after_seconds.max(header_retry),
                leader_endpoint: env.leader_endpoint,
                correlation_id,
            },
            Err(_) => ApiError {
                status: status.as_u16(),
                code: if status == StatusCode::NOT_FOUND {
                    "not_found".to_owned()
                } else {
                    String::new()
                },
                detail: plain_detail(body),
                current_version: 0,
                current_etag: String::new(),
                retry_after_seconds: header_retry,
                leader_endpoint: String::new(),
                correlation_id,
            },
        }
    }
}

/// A header's value as text, if present and printable.
pub(crate) fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

fn plain_detail(body: &[u8]) -> String {
    let cut = body.len().min(MAX_DETAIL_BYTES);
    String::from_utf8_lossy(&body[..cut]).trim().to_owned()
}

/// Private marker wrapped around errors of a streamed upload's reader, so
/// that a failing reader surfaces as [`ClientError::Io`] rather than as a
/// transport failure.
#[derive(Debug)]
pub(crate) struct ReaderError(pub(crate) std::io::Error);

impl fmt::Display for ReaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "reading the upload body: {}", self.0)
    }
}

impl StdError for ReaderError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&self.0)
    }
}

/// Joins an error and its sources into one line ("a: b: c").
pub(crate) fn chain_message(err: &(dyn StdError + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let msg = e.to_string();
        if !out.contains(&msg) {
            out.push_str(": ");
            out.push_str(&msg);
        }
        cur = e.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn envelope_fields_are_decoded() {
        let mut headers = HeaderMap::new();
        headers.insert("x-correlation-id", HeaderValue::from_static("abc"));
        headers.insert("retry-after", HeaderValue::from_static("3"));
        let body = br#"{"error":"waiting","detail":"lease already held","current_version":4,"current_etag":"e1","retry_after_seconds":2}"#;
        let err = ApiError::from_response(StatusCode::CONFLICT, &headers, body);
        assert_eq!(err.status, 409);
        assert_eq!(err.code, "waiting");
        assert_eq!(err.detail, "lease already held");
        assert_eq!(err.current_version, 4);
        assert_eq!(err.current_etag, "e1");
        assert_eq!(err.retry_after_seconds, 3, "the header is larger and wins");
        assert_eq!(err.correlation_id.as_deref(), Some("abc"));
        let shown = ClientError::Api(Box::new(err)).to_string();
        assert!(shown.contains("409 waiting: lease already held"), "{shown}");
        assert!(shown.contains("correlation id abc"), "{shown}");
    }

    #[test]
    fn plain_text_404_becomes_not_found() {
        let err = ApiError::from_response(StatusCode::NOT_FOUND, &HeaderMap::new(), b"404 page not found\n");
        assert_eq!(err.code, "not_found");
        assert_eq!(err.detail, "404 page not found");
        assert_eq!(ClientError::Api(Box::new(err)).code(), Some("not_found"));
    }

    #[test]
    fn non_envelope_other_status_has_no_code() {
        let err = ApiError::from_response(StatusCode::BAD_GATEWAY, &HeaderMap::new(), b"<html>bad gateway</html>");
        assert_eq!(err.code, "");
        assert_eq!(err.status, 502);
        assert_eq!(ClientError::Api(Box::new(err)).code(), None);
    }

    #[test]
    fn long_plain_bodies_are_cut() {
        let body = vec![b'x'; 4096];
        let err = ApiError::from_response(StatusCode::INTERNAL_SERVER_ERROR, &HeaderMap::new(), &body);
        assert_eq!(err.detail.len(), MAX_DETAIL_BYTES);
    }

    #[test]
    fn non_api_errors_have_no_code() {
        assert_eq!(ClientError::Timeout.code(), None);
        assert!(ClientError::Timeout.api().is_none());
    }

    #[test]
    fn chain_message_includes_sources() {
        let inner = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let outer = ReaderError(inner);
        let msg = chain_message(&outer);
        assert!(msg.starts_with("reading the upload body: refused"), "{msg}");
    }
}
