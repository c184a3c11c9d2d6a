//! Query parameters and lockd's request headers, each parsed into the error
//! code lockd gives for it.

use http::HeaderMap;
use lockd_actors::ApiError;

use crate::wire::header;

/// Decoded query parameters (`+` and `%XX` decoded, as Go's `URL.Query`).
#[derive(Debug, Default)]
pub(crate) struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    /// Parses a raw query string.
    pub(crate) fn parse(raw: Option<&str>) -> Query {
        let pairs = raw
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        Query { pairs }
    }

    /// First value of `name`, or "" (Go's `Query().Get`).
    pub(crate) fn get(&self, name: &str) -> &str {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    /// `public=1|true|on|yes`, case-insensitive.
    pub(crate) fn truthy(&self, name: &str) -> bool {
        let v = self.get(name).trim();
        ["1", "true", "on", "yes"].iter().any(|t| v.eq_ignore_ascii_case(t))
    }
}

/// A header's value, trimmed; "" when absent. Bytes that are not visible
/// ASCII are kept (lossily) so that the value still fails the checks it
/// would fail in lockd instead of silently vanishing.
pub(crate) fn text(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_string())
        .unwrap_or_default()
}

/// `X-Fencing-Token`, required.
pub(crate) fn fencing_token(headers: &HeaderMap) -> Result<i64, ApiError> {
    let raw = text(headers, header::FENCING_TOKEN);
    if raw.is_empty() {
        return Err(ApiError::missing_fencing_token());
    }
    raw.parse::<i64>().map_err(|_| ApiError::invalid_fencing_token())
}

/// `X-If-Version`, optional.
pub(crate) fn if_version(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    let raw = text(headers, header::IF_VERSION);
    if raw.is_empty() {
        return Ok(None);
    }
    raw.parse::<i64>().map(Some).map_err(|_| ApiError::invalid_version())
}

/// `X-If-State-ETag`, optional (surrounding quotes are the actor's business).
pub(crate) fn if_etag(headers: &HeaderMap) -> Option<String> {
    Some(text(headers, header::IF_STATE_ETAG)).filter(|s| !s.is_empty())
}

/// `X-Expected-Bytes`, optional, a non-negative integer.
pub(crate) fn expected_bytes(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let raw = text(headers, header::EXPECTED_BYTES);
    if raw.is_empty() {
        return Ok(None);
    }
    raw.parse::<u64>()
        .map(Some)
        .map_err(|_| ApiError::invalid_expected_bytes())
}

/// `X-Expected-SHA256`, optional, 64 hex digits (any case); returned lowercase.
pub(crate) fn expected_sha256(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let raw = text(headers, header::EXPECTED_SHA256);
    if raw.is_empty() {
        return Ok(None);
    }
    if raw.len() != 64 || !raw.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::invalid_expected_sha256());
    }
    Ok(Some(raw.to_ascii_lowercase()))
}

/// Go's `strconv.ParseBool`, which lockd uses for boolean headers.
pub(crate) fn parse_go_bool(raw: &str) -> Option<bool> {
    match raw {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// A correlation id is usable when, trimmed, it is 1..=128 printable ASCII
/// characters (API.md §0.3).
pub(crate) fn valid_correlation_id(raw: &str) -> bool {
    let t = raw.trim();
    !t.is_empty() && t.len() <= 128 && t.bytes().all(|b| (0x20..=0x7e).contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(name: &'static str, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(name, v);
        }
        h
    }

    #[test]
    fn query_decodes_like_go() {
        let q = Query::parse(Some("key=a%2Fb+c&public=YES&key=second"));
        assert_eq!(q.get("key"), "a/b c");
        assert!(q.truthy("public"));
        assert!(!q.truthy("other"));
        assert_eq!(Query::parse(None).get("key"), "");
    }

    #[test]
    fn fencing_token_codes() {
        assert_eq!(
            fencing_token(&HeaderMap::new()).map_err(|e| e.code),
            Err("missing_fencing_token")
        );
        assert_eq!(
            fencing_token(&headers(header::FENCING_TOKEN, "x1")).map_err(|e| e.code),
            Err("invalid_fencing_token")
        );
        assert_eq!(fencing_token(&headers(header::FENCING_TOKEN, " 7 ")), Ok(7));
    }

    #[test]
    fn optional_headers() {
        assert_eq!(if_version(&HeaderMap::new()), Ok(None));
        assert_eq!(
            if_version(&headers(header::IF_VERSION, "v2")).map_err(|e| e.code),
            Err("invalid_version")
        );
        assert_eq!(
            expected_bytes(&headers(header::EXPECTED_BYTES, "-1")).map_err(|e| e.code),
            Err("invalid_expected_bytes")
        );
        let sha = "AB".repeat(32);
        assert_eq!(
            expected_sha256(&headers(header::EXPECTED_SHA256, &sha)),
            Ok(Some("ab".repeat(32)))
        );
        assert!(expected_sha256(&headers(header::EXPECTED_SHA256, "abc")).is_err());
    }

    #[test]
    fn correlation_ids() {
        assert!(valid_correlation_id(" abc "));
        assert!(!valid_correlation_id("   "));
        assert!(!valid_correlation_id(&"x".repeat(129)));
        assert!(!valid_correlation_id("tab\there"));
    }
}
