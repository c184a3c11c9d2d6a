//! lockd v0.9's JSON bodies and header names, shared by the server and the
//! client SDK so that both sides agree on one spelling.
//!
//! Request bodies are decoded strictly by the server (`deny_unknown_fields`,
//! no trailing value). Every request field is optional on the wire: lockd's
//! Go decoder treats a missing field, and `null`, as the zero value, and the
//! handlers apply the defaults and the "required" checks themselves, so that
//! each missing field gets its documented error code rather than a generic
//! decode error.

use serde::{Deserialize, Serialize};

/// Header names lockd uses. HTTP header names are case-insensitive; these
/// are the lowercase forms `http` wants for constants.
pub mod header {
    /// Lease id of a lease-guarded request.
    pub const LEASE_ID: &str = "x-lease-id";
    /// Transaction id of the lease.
    pub const TXN_ID: &str = "x-txn-id";
    /// Fencing token of the lease (request) or granted (response).
    pub const FENCING_TOKEN: &str = "x-fencing-token";
    /// Compare-and-set on the state version.
    pub const IF_VERSION: &str = "x-if-version";
    /// Compare-and-set on the state ETag.
    pub const IF_STATE_ETAG: &str = "x-if-state-etag";
    /// Version of the state the response describes.
    pub const KEY_VERSION: &str = "x-key-version";
    /// Request/response correlation id.
    pub const CORRELATION_ID: &str = "x-correlation-id";
    /// Upload integrity: SHA-256 of the raw body.
    pub const EXPECTED_SHA256: &str = "x-expected-sha256";
    /// Upload integrity: length of the raw body.
    pub const EXPECTED_BYTES: &str = "x-expected-bytes";
    /// `query_hidden` attribute (metadata; parsed but ignored on update).
    pub const META_QUERY_HIDDEN: &str = "x-lockd-meta-query-hidden";
    /// Set on every response while the server drains.
    pub const SHUTDOWN_IMMINENT: &str = "shutdown-imminent";
}

/// `POST /v1/acquire` body.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AcquireRequest {
    /// Namespace; empty → the server's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Key; empty → the server generates a UUIDv7 key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Owner label (required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Lease TTL; ≤ 0 → server default, above max → clamped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<i64>,
    /// `-1` no wait, `0` forever, `> 0` seconds, other negatives → server's acquire-block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_seconds: Option<i64>,
    /// Fail with `already_exists` if the key was ever acquired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub if_not_exists: Option<bool>,
    /// Join this explicit transaction (an xid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub txn_id: Option<String>,
}

/// `POST /v1/acquire` answer.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct AcquireResponse {
    /// Resolved namespace.
    #[serde(default)]
    pub namespace: String,
    /// The new lease.
    pub lease_id: String,
    /// The lease's transaction.
    #[serde(default)]
    pub txn_id: String,
    /// The key as the caller spelled it (or the generated key).
    pub key: String,
    /// Owner label.
    pub owner: String,
    /// Lease expiry, unix seconds.
    pub expires_at_unix: i64,
    /// Committed version of the key.
    pub version: i64,
    /// Committed state ETag, if any.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub state_etag: String,
    /// Fencing token of the lease.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub fencing_token: i64,
    /// Never filled on success (kept for shape compatibility).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retry_after_seconds: i64,
    /// Correlation id of the request.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub correlation_id: String,
}

/// `POST /v1/keepalive` body.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct KeepaliveRequest {
    /// Namespace (or the `namespace` query parameter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Key (required; or the `key` query parameter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Lease id (required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_id: Option<String>,
    /// New TTL counted from now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<i64>,
    /// The lease's transaction (or `X-Txn-ID`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub txn_id: Option<String>,
}

/// `POST /v1/keepalive` answer.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct KeepaliveResponse {
    /// New expiry, unix seconds.
    pub expires_at_unix: i64,
}

/// `POST /v1/release` body.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ReleaseRequest {
    /// Namespace (or the `namespace` query parameter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Key (required; or the `key` query parameter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Lease id (required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_id: Option<String>,
    /// The lease's transaction (required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub txn_id: Option<String>,
    /// Discard staged changes instead of committing them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<bool>,
}

/// `POST /v1/release` answer.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReleaseResponse {
    /// Always true: release is idempotent.
    pub released: bool,
}

/// Attributes of a key (`metadata` objects in answers).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Attributes {
    /// Present (and true) only when the key is hidden from queries.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub query_hidden: bool,
}

/// `POST /v1/update` answer.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct UpdateResponse {
    /// Staged version.
    pub new_version: i64,
    /// Staged ETag (equal to the committed ETag after release).
    pub new_state_etag: String,
    /// Size of the stored (compacted) document.
    pub bytes: u64,
    /// Effective attributes; always present.
    #[serde(default)]
    pub metadata: Attributes,
}

/// `POST /v1/remove` answer.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct RemoveResponse {
    /// Whether a remove was staged.
    pub removed: bool,
    /// Staged (or current) version.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub new_version: i64,
}

/// `GET /v1/describe` answer.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct DescribeResponse {
    /// Resolved namespace.
    pub namespace: String,
    /// The key as given.
    pub key: String,
    /// Holder's owner label, if leased.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub owner: String,
    /// Lease id, if leased.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub lease_id: String,
    /// Lease expiry, if leased.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub expires_at_unix: i64,
    /// Committed version.
    pub version: i64,
    /// Committed ETag, if any.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub state_etag: String,
    /// Last metadata change, unix seconds.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub updated_at_unix: i64,
    /// Committed attributes.
    #[serde(default)]
    pub metadata: Attributes,
}

/// `POST /v1/metadata` body.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MetadataRequest {
    /// Hide (or unhide) the key from queries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_hidden: Option<bool>,
}

/// `POST /v1/metadata` answer.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct MetadataResponse {
    /// Resolved namespace.
    pub namespace: String,
    /// The key.
    pub key: String,
    /// Staged version.
    pub version: i64,
    /// Staged attributes.
    #[serde(default)]
    pub metadata: Attributes,
}

/// The error envelope every handled failure is answered with.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorEnvelope {
    /// Machine-readable code (`waiting`, `lease_required`, …).
    pub error: String,
    /// Human explanation.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
    /// Leader to retry against (transaction-coordinator errors).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub leader_endpoint: String,
    /// Committed version, on CAS and lease errors.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub current_version: i64,
    /// Committed ETag, on CAS and lease errors.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub current_etag: String,
    /// How long to wait before retrying.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retry_after_seconds: i64,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}
