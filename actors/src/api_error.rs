//! The error every actor replies with, shaped after lockd's error envelope (API.md §0.2).
//!
//! Actors decide *which* error a request gets (code, status, detail, the CAS hints); the HTTP
//! layer only serialises it. Keeping the status next to the code here, instead of a lookup in
//! the HTTP layer, means an actor can never produce a code whose status disagrees with lockd:
//! every constructor below is checked against [`CATALOGUE`] (API.md §8) by a unit test.

use std::fmt;

/// One API error, ready to become `{"error": code, "detail": ..., ...}` on the wire.
///
/// Wire rules (applied by the HTTP layer, not here): `detail` is omitted when empty,
/// `current_version` when 0, `current_etag` when empty and `retry_after_seconds` when 0; a
/// positive `retry_after_seconds` also sets the `Retry-After` header. `cause` never leaves
/// the process: it carries the real reason behind an `internal_error` for logs, because lockd
/// answers every unclassified failure with the fixed detail `internal server error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status of the response (400, 403, 409, ...).
    pub status: u16,
    /// Machine-readable error code (`lease_required`, `waiting`, ...); clients switch on it.
    pub code: &'static str,
    /// Human text; lockd clients show it but never parse it.
    pub detail: String,
    /// Committed version of the key, so a CAS loser can retry without a describe (0 = omit).
    pub current_version: i64,
    /// Committed state ETag for the same reason (empty = omit).
    pub current_etag: String,
    /// Seconds the client should wait before retrying (0 = omit).
    pub retry_after_seconds: i64,
    /// Server-side cause of an internal error; logged, never sent to clients.
    pub cause: Option<String>,
}

impl fmt::Display for ApiError {
    // Mirrors lockd's `Failure.Error()` ("code: detail") so logs read the same; the cause is
    // appended because Display is only ever used for logs, where the real reason matters.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code)?;
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        if let Some(cause) = &self.cause {
            write!(f, " ({cause})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

/// Every error code of API.md §8 (plus the §7 TC-only codes) with its HTTP status.
///
/// It exists so that tests (here and in the HTTP layer) can assert that no code is emitted
/// with a status lockd would not use. Status `0` marks `tc_forward_failed`, whose status is
/// copied from the leader's answer.
#[rustfmt::skip]
pub const CATALOGUE: &[(&str, u16)] = &[
    // 400
    ("invalid_body", 400), ("invalid_namespace", 400), ("invalid_key", 400), ("missing_key", 400),
    ("missing_params", 400), ("missing_owner", 400), ("missing_lease", 400), ("missing_txn", 400),
    ("missing_fencing_token", 400), ("invalid_fencing_token", 400), ("invalid_ttl", 400), ("invalid_txn", 400),
    ("invalid_version", 400), ("invalid_expected_bytes", 400), ("invalid_expected_sha256", 400),
    ("invalid_metadata", 400), ("invalid_mutations", 400), ("missing_attachment", 400), ("invalid_max_bytes", 400),
    ("invalid_selector", 400), ("invalid_fields", 400), ("invalid_engine", 400), ("invalid_return", 400),
    ("invalid_refresh", 400), ("invalid_cursor", 400), ("query_engine_unavailable", 400), ("invalid_mode", 400),
    ("invalid_namespace_request", 400), ("invalid_content_type", 400), ("multipart_error", 400),
    ("missing_queue", 400), ("missing_fields", 400), ("invalid_queue", 400), ("invalid_nack_intent", 400),
    ("invalid_nack_last_error", 400), ("invalid_queue_key", 400), ("invalid_queue_state_key", 400),
    ("missing_txn_id", 400), ("invalid_txn_id", 400), ("invalid_state", 400), ("invalid_backend_hash", 400),
    ("tc_term_required", 400),
    // 400, TC cluster endpoints (§7 only)
    ("missing_candidate_id", 400), ("missing_candidate_endpoint", 400), ("invalid_term", 400),
    ("tc_invalid_ttl", 400), ("missing_leader_id", 400), ("missing_self_endpoint", 400),
    ("invalid_self_endpoint", 400), ("missing_backend_hash", 400), ("missing_endpoint", 400),
    ("invalid_endpoint", 400),
    // 403
    ("lease_required", 403), ("lease_expired", 403), ("fencing_mismatch", 403),
    ("queue_state_keepalive_unsupported", 403), ("namespace_forbidden", 403), ("invalid_namespace_claims", 403),
    ("tc_client_required", 403), ("tc_server_required", 403), ("tc_forbidden", 403),
    ("tc_cluster_identity_missing", 403),
    // 404, 405, 408
    ("not_found", 404), ("attachment_not_found", 404), ("staged_state_missing", 404), ("state_not_found", 404),
    ("txn_not_found", 404), ("method_not_allowed", 405), ("context_canceled", 408),
    // 409
    ("waiting", 409), ("already_exists", 409), ("txn_mismatch", 409), ("version_conflict", 409),
    ("etag_mismatch", 409), ("expected_bytes_mismatch", 409), ("expected_sha256_mismatch", 409),
    ("cas_mismatch", 409), ("queue_message_lease_mismatch", 409), ("lease_conflict", 409), ("txn_pending", 409),
    ("txn_conflict", 409), ("txn_backend_mismatch", 409), ("tc_term_stale", 409), ("tc_not_leader", 409),
    ("tc_lease_active", 409), ("index_flush_busy", 409), ("namespace_config_conflict", 409),
    // 413, 429
    ("document_too_large", 413), ("attachment_too_large", 413), ("throttled", 429),
    // 5xx
    ("internal_error", 500), ("internal", 500), ("streaming_unsupported", 500), ("queue_ack_retry_exceeded", 500),
    ("tc_cluster_sync_failed", 500), ("query_disabled", 501), ("queue_disabled", 501), ("index_unavailable", 501),
    ("namespace_config_unavailable", 501), ("txn_fanout_failed", 502), ("tc_rm_replication_failed", 502),
    ("shutdown_draining", 503), ("node_passive", 503), ("state_not_published", 503), ("staging_unavailable", 503),
    ("queue_busy", 503), ("txn_coordinator_unavailable", 503), ("tc_unavailable", 503),
    ("tc_cluster_unavailable", 503), ("tc_rm_unavailable", 503), ("backend_hash_unavailable", 503),
    // status copied from the TC leader
    ("tc_forward_failed", 0),
];

/// Status of `code` in [`CATALOGUE`], so other layers can validate codes they build by hand.
pub fn catalogue_status(code: &str) -> Option<u16> {
    CATALOGUE.iter().find(|(c, _)| *c == code).map(|(_, s)| *s)
}

/// Declares `pub fn name() -> ApiError` constructors with a fixed status, code and default detail.
macro_rules! fixed {
    ($($(#[$doc:meta])* $name:ident => $status:literal, $code:literal, $detail:literal;)*) => {$(
        $(#[$doc])*
        pub fn $name() -> Self {
            Self::new($status, $code, $detail)
        }
    )*};
}

/// Declares `pub fn name(detail) -> ApiError` constructors whose detail varies per call site.
macro_rules! with_detail {
    ($($(#[$doc:meta])* $name:ident => $status:literal, $code:literal;)*) => {$(
        $(#[$doc])*
        pub fn $name(detail: impl Into<String>) -> Self {
            Self::new($status, $code, detail)
        }
    )*};
}

/// Declares `pub fn name(retry_after_seconds) -> ApiError` constructors for "come back later" errors.
macro_rules! with_retry {
    ($($(#[$doc:meta])* $name:ident => $status:literal, $code:literal, $detail:literal;)*) => {$(
        $(#[$doc])*
        pub fn $name(retry_after_seconds: i64) -> Self {
            Self::new($status, $code, $detail).with_retry_after(retry_after_seconds)
        }
    )*};
}

impl ApiError {
    /// Any error by hand; prefer the named constructors, which pin lockd's status and detail.
    pub fn new(status: u16, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            current_version: 0,
            current_etag: String::new(),
            retry_after_seconds: 0,
            cause: None,
        }
    }

    /// Attaches the committed version/ETag: lease and CAS errors carry them so clients can
    /// resynchronise without another round trip (§0.8, §2.5).
    pub fn with_current(mut self, version: i64, etag: impl Into<String>) -> Self {
        self.current_version = version;
        self.current_etag = etag.into();
        self
    }

    /// Sets `retry_after_seconds` (and thereby the `Retry-After` header) for retryable errors.
    pub fn with_retry_after(mut self, seconds: i64) -> Self {
        self.retry_after_seconds = seconds;
        self
    }

    /// Replaces the default detail: lockd words the same code differently per endpoint
    /// (`missing_txn` is `transaction id required`, `txn_id required` or `X-Txn-ID required`).
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = detail.into();
        self
    }

    /// Unclassified failure: the client sees only `500 internal_error` / `internal server error`
    /// (§0.2) so storage paths and the like never leak; `cause` keeps the real reason for logs.
    pub fn internal(cause: impl Into<String>) -> Self {
        let mut err = Self::new(500, "internal_error", "internal server error");
        err.cause = Some(cause.into());
        err
    }

    /// A request whose context was cancelled or timed out: lockd answers `409 waiting`,
    /// `no messages available`, retry after 1 s (§0.2) so clients simply retry.
    pub fn request_cancelled() -> Self {
        Self::new(409, "waiting", "no messages available").with_retry_after(1)
    }

    fixed! {
        /// No lease, or another lease id, on the key (§0.8 check 1); release maps it to success.
        lease_required => 403, "lease_required", "active lease required";
        /// The caller's lease has expired (§0.8 check 2); its staged work is discarded.
        lease_expired => 403, "lease_expired", "lease expired";
        /// A stale holder presented an old fencing token (§0.8 check 3).
        fencing_mismatch => 403, "fencing_mismatch", "fencing token mismatch";
        /// Every lease has a txn, so lease operations must name it (§0.8 check 4).
        missing_txn => 400, "missing_txn", "transaction id required";
        /// `acquire` without `owner` (§2.1).
        missing_owner => 400, "missing_owner", "owner is required";
        /// Resolved TTL is not positive; unreachable with sane configuration (§2.1).
        invalid_ttl => 400, "invalid_ttl", "ttl_seconds must be positive";
        /// Caller-supplied `txn_id` on acquire is not an xid (§0.4, §2.1).
        invalid_txn => 400, "invalid_txn", "txn_id must be a valid xid";
        /// `if_not_exists` acquire on a key whose metadata record exists (§2.1 step 4).
        already_exists => 409, "already_exists", "key already exists";
        /// Lease operations need `X-Fencing-Token` (§2.2).
        missing_fencing_token => 400, "missing_fencing_token", "X-Fencing-Token header required";
        /// `X-Fencing-Token` is not an int64 (§2.2).
        invalid_fencing_token => 400, "invalid_fencing_token", "invalid fencing token";
        /// Key absent; update-style endpoints reword it as `key query required` (§2.2, §2.5).
        missing_key => 400, "missing_key", "key is required";
        /// Lease id absent; header-based endpoints reword it as `X-Lease-ID required` (§2.2, §2.5).
        missing_lease => 400, "missing_lease", "lease_id required";
        /// Queue workflow-state leases are extended through `/v1/queue/extend` instead (§2.2).
        queue_state_keepalive_unsupported => 403, "queue_state_keepalive_unsupported",
            "queue state leases must be extended via queue extend";
        /// The TC still reports the explicit txn as pending at release (§2.3).
        txn_pending => 409, "txn_pending", "transaction decision not recorded";
        /// Staging under an explicit transaction that is already decided: the
        /// change could no longer follow the decision its holder expects.
        txn_conflict => 409, "txn_conflict", "transaction already decided";
        /// Public read of a key whose `published_version < version` (§2.4).
        state_not_published => 503, "state_not_published", "state update not published yet";
        /// `X-If-Version` is not an int64 (§2.5).
        invalid_version => 400, "invalid_version", "invalid X-If-Version header";
        /// `X-Expected-Bytes` is not a non-negative integer (§2.5).
        invalid_expected_bytes => 400, "invalid_expected_bytes", "invalid X-Expected-Bytes header";
        /// `X-Expected-SHA256` is not 64 hex characters (§2.5).
        invalid_expected_sha256 => 400, "invalid_expected_sha256", "invalid X-Expected-SHA256 header";
        /// `X-If-Version` CAS lost (§2.5); add `with_current`.
        version_conflict => 409, "version_conflict", "state version mismatch";
        /// `X-If-State-ETag` CAS lost (§2.5, §2.6); add `with_current`.
        etag_mismatch => 409, "etag_mismatch", "current state etag does not match";
        /// Mutate stream cancelled by the client (§2.9).
        context_canceled => 408, "context_canceled", "request canceled";
        /// Wrong method on one of the few method-checked routes (§0.1).
        method_not_allowed => 405, "method_not_allowed", "method not allowed";
    }

    with_detail! {
        /// Bad namespace or reserved namespace (§0.5); detail from [`crate::names`].
        invalid_namespace => 400, "invalid_namespace";
        /// Bad key syntax (§0.5); detail from [`crate::names`].
        invalid_key => 400, "invalid_key";
        /// Bad, unknown-field, trailing or oversized JSON, invalid state JSON (§0.7, §0.8).
        invalid_body => 400, "invalid_body";
        /// Wrong txn id, or another txn already staged (§0.8 check 5, §2.3, §2.5).
        txn_mismatch => 409, "txn_mismatch";
        /// `get` without `key` or a lease read without `X-Lease-ID` (§2.4).
        missing_params => 400, "missing_params";
        /// `X-Expected-Bytes` differs from the body size (§2.5).
        expected_bytes_mismatch => 409, "expected_bytes_mismatch";
        /// `X-Expected-SHA256` differs from the raw body hash (§2.5).
        expected_sha256_mismatch => 409, "expected_sha256_mismatch";
        /// Bad `/v1/metadata` header or body (§2.8).
        invalid_metadata => 400, "invalid_metadata";
        /// LQL parse error or a client-only file mutator (§2.9).
        invalid_mutations => 400, "invalid_mutations";
        /// Mutate result above `--json-max` (§2.9).
        document_too_large => 413, "document_too_large";
        /// Mutate stream failure, which lockd reports as code `internal` with its detail (§2.9).
        internal_stream => 500, "internal";
        /// The client certificate's namespace claims do not cover the request (or it is revoked).
        namespace_forbidden => 403, "namespace_forbidden";
        /// The client certificate carries a malformed namespace claim, so none of them is trusted.
        invalid_namespace_claims => 403, "invalid_namespace_claims";
    }

    with_retry! {
        /// Lease held and the caller will not (or no longer) wait (§2.1 step 6); add `with_current`.
        waiting => 409, "waiting", "lease already held";
        /// Graceful-shutdown drain: retry on another node or after restart (§0.6).
        shutdown_draining => 503, "shutdown_draining", "server is draining existing leases";
        /// HA passive node (§0.6).
        node_passive => 503, "node_passive", "server is passive";
        /// QRF overload throttle (§0.6).
        throttled => 429, "throttled", "perimeter defence engaged";
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[rustfmt::skip]
    fn all_constructors() -> Vec<ApiError> {
        vec![
            ApiError::internal("disk on fire"), ApiError::request_cancelled(), ApiError::lease_required(),
            ApiError::lease_expired(), ApiError::fencing_mismatch(), ApiError::missing_txn(),
            ApiError::missing_owner(), ApiError::invalid_ttl(), ApiError::invalid_txn(), ApiError::already_exists(),
            ApiError::missing_fencing_token(), ApiError::invalid_fencing_token(), ApiError::missing_key(),
            ApiError::missing_lease(), ApiError::queue_state_keepalive_unsupported(), ApiError::txn_pending(), ApiError::txn_conflict(),
            ApiError::state_not_published(), ApiError::invalid_version(), ApiError::invalid_expected_bytes(),
            ApiError::invalid_expected_sha256(), ApiError::version_conflict(), ApiError::etag_mismatch(),
            ApiError::context_canceled(), ApiError::method_not_allowed(),
            ApiError::invalid_namespace("x"), ApiError::invalid_key("x"), ApiError::invalid_body("x"),
            ApiError::txn_mismatch("x"), ApiError::missing_params("x"), ApiError::expected_bytes_mismatch("x"),
            ApiError::expected_sha256_mismatch("x"), ApiError::invalid_metadata("x"),
            ApiError::invalid_mutations("x"), ApiError::document_too_large("x"), ApiError::internal_stream("x"),
            ApiError::namespace_forbidden("x"), ApiError::invalid_namespace_claims("x"),
            ApiError::waiting(3), ApiError::shutdown_draining(2), ApiError::node_passive(1), ApiError::throttled(1),
        ]
    }

    #[test]
    fn every_constructor_matches_the_catalogue() {
        for err in all_constructors() {
            assert_eq!(
                catalogue_status(err.code),
                Some(err.status),
                "{} has the wrong status",
                err.code
            );
            assert!(!err.detail.is_empty(), "{} has no default detail", err.code);
        }
    }

    #[test]
    fn catalogue_has_no_duplicates_and_sane_statuses() {
        let mut seen = HashSet::new();
        for (code, status) in CATALOGUE {
            assert!(seen.insert(*code), "{code} listed twice");
            assert!(*status == 0 || (400..600).contains(status), "{code}: {status}");
            assert!(
                code.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{code}"
            );
        }
        assert_eq!(catalogue_status("tc_forward_failed"), Some(0));
        assert_eq!(catalogue_status("no_such_code"), None);
    }

    #[test]
    fn spec_statuses_and_details() {
        let cases: &[(ApiError, u16, &str, &str)] = &[
            (
                ApiError::lease_required(),
                403,
                "lease_required",
                "active lease required",
            ),
            (ApiError::missing_txn(), 400, "missing_txn", "transaction id required"),
            (ApiError::waiting(1), 409, "waiting", "lease already held"),
            (ApiError::already_exists(), 409, "already_exists", "key already exists"),
            (
                ApiError::version_conflict(),
                409,
                "version_conflict",
                "state version mismatch",
            ),
            (
                ApiError::missing_fencing_token(),
                400,
                "missing_fencing_token",
                "X-Fencing-Token header required",
            ),
            (ApiError::missing_lease(), 400, "missing_lease", "lease_id required"),
            (ApiError::throttled(1), 429, "throttled", "perimeter defence engaged"),
            (
                ApiError::state_not_published(),
                503,
                "state_not_published",
                "state update not published yet",
            ),
            (ApiError::request_cancelled(), 409, "waiting", "no messages available"),
        ];
        for (err, status, code, detail) in cases {
            assert_eq!((err.status, err.code, err.detail.as_str()), (*status, *code, *detail));
        }
    }

    #[test]
    fn internal_hides_the_cause_from_the_wire_fields() {
        let err = ApiError::internal("open /var/lib/lockd/x: permission denied");
        assert_eq!((err.status, err.code), (500, "internal_error"));
        assert_eq!(err.detail, "internal server error");
        assert_eq!(err.cause.as_deref(), Some("open /var/lib/lockd/x: permission denied"));
        assert!(
            err.to_string().contains("permission denied"),
            "logs must show the cause"
        );
    }

    #[test]
    fn builders_set_the_optional_wire_fields() {
        let err = ApiError::waiting(7).with_current(4, "etag-1");
        assert_eq!(
            (err.retry_after_seconds, err.current_version, err.current_etag.as_str()),
            (7, 4, "etag-1")
        );
        assert_eq!(ApiError::request_cancelled().retry_after_seconds, 1);
        let plain = ApiError::lease_required();
        assert_eq!(
            (
                plain.current_version,
                plain.current_etag.as_str(),
                plain.retry_after_seconds
            ),
            (0, "", 0)
        );
        assert_eq!(plain.cause, None);
        let reworded = ApiError::missing_txn().with_detail("X-Txn-ID required");
        assert_eq!(
            (reworded.code, reworded.detail.as_str()),
            ("missing_txn", "X-Txn-ID required")
        );
    }

    #[test]
    fn display_follows_lockd_failure_format() {
        assert_eq!(ApiError::lease_expired().to_string(), "lease_expired: lease expired");
        assert_eq!(ApiError::new(400, "invalid_body", "").to_string(), "invalid_body");
        let boxed: Box<dyn std::error::Error> = Box::new(ApiError::etag_mismatch());
        assert!(boxed.to_string().starts_with("etag_mismatch"));
    }
}
