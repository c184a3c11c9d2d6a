//! `acquire`, `keepalive` and `release`: the life of a lease.

use std::time::Duration;

use lockd_net::client::{ClientError, Lease, LeaseRef};
use lockd_net::wire::AcquireRequest;

use super::connect::Conn;
use super::inputs::{
    self, lease_ref, optional, HoldArgs, KeyArgs, Origins, TxnArgs, ENV_CORRELATION_ID, ENV_ETAG, ENV_EXPIRES,
    ENV_FENCING_TOKEN, ENV_KEY, ENV_LEASE, ENV_NAMESPACE, ENV_OWNER, ENV_SERVER, ENV_TXN_ID, ENV_VERSION,
};
use super::shell::{print_json, Format, Script};
use crate::error::CliError;

/// Longest pause between two acquire attempts.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);
/// Pause before the first retry; doubled for each further one.
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(200);

const ACQUIRE_AFTER_HELP: &str = "\
Text output is shell: eval it and the other client commands pick up the lease
from the environment. It sets LOCKD_CLIENT_SERVER, _NAMESPACE, _KEY, _LEASE,
_OWNER, _TXN_ID, _FENCING_TOKEN, _VERSION, _ETAG (unset when the key has no
state), _EXPIRES_UNIX and _CORRELATION_ID.

A held key is waited for up to --block by the server, then the command fails
with `lockd: waiting: ...` (exit 1); --retries only covers unreachable or
overloaded servers. The owner defaults to LOCKD_CLIENT_OWNER, else $USER@hostname.
--txn-id has no environment fallback: a LOCKD_CLIENT_TXN_ID left over from an
earlier acquire must not silently join an unrelated transaction.

Examples:
  # Take the lease, work with it, release it
  eval \"$(lockd client acquire --key orders --owner worker-1)\"
  echo '{\"cursor\":42}' | lockd client update
  lockd client release

  # Fail at once if someone else holds the key
  lockd client acquire --key orders --block -1 || echo busy

  # The whole answer as JSON (with the fencing token)
  lockd client acquire --key orders --ttl 2m --output json";

const KEEPALIVE_AFTER_HELP: &str = "\
Text output is `export LOCKD_CLIENT_EXPIRES_UNIX=...` for eval.

Examples:
  eval \"$(lockd client keepalive --ttl 1m)\"
  while sleep 10; do lockd client keepalive --ttl 30s >/dev/null || break; done";

const RELEASE_AFTER_HELP: &str = "\
Text output is shell that unsets the lease's variables (LOCKD_CLIENT_LEASE,
_FENCING_TOKEN, _TXN_ID, _EXPIRES_UNIX; with --rollback also _VERSION and
_ETAG), keeping LOCKD_CLIENT_KEY and _NAMESPACE for later public reads. A lease
the server no longer knows counts as already released. The server answers
`released` even to a wrong fencing token and keeps the lease; the command
checks the key afterwards and fails with `lockd: fencing_mismatch: ...` then.

Examples:
  lockd client release                    # commit what was staged
  eval \"$(lockd client release --rollback)\" # discard it and forget the lease";

/// `lockd client acquire`.
#[derive(Debug, clap::Args)]
#[command(after_help = ACQUIRE_AFTER_HELP)]
pub(super) struct AcquireArgs {
    /// Key to lease; with neither this nor LOCKD_CLIENT_KEY the server generates one
    #[arg(short = 'k', long, env = ENV_KEY, value_name = "KEY")]
    pub(super) key: Option<String>,
    /// Namespace of the key (default: the server's default namespace)
    #[arg(short = 'n', long, env = ENV_NAMESPACE, value_name = "NAME")]
    pub(super) namespace: Option<String>,
    /// Lease TTL (Go duration, whole seconds, at least 1s); keepalive extends it
    #[arg(long, value_name = "DURATION", default_value = "30s")]
    pub(super) ttl: String,
    /// How long the server waits for a held key: a duration, 0 (or forever) without limit,
    /// -1 (or nowait) not at all
    #[arg(long, value_name = "DURATION", default_value = "10s", allow_hyphen_values = true)]
    pub(super) block: String,
    /// Owner label recorded with the lease (default: $USER@hostname)
    #[arg(long, env = ENV_OWNER, value_name = "NAME")]
    pub(super) owner: Option<String>,
    /// Fail with already_exists if the key has ever been acquired
    #[arg(long)]
    pub(super) if_not_exists: bool,
    /// Join this transaction (an xid) instead of starting a new one
    #[arg(long, value_name = "ID")]
    pub(super) txn_id: Option<String>,
    /// Further attempts when the server cannot be reached or answers 429/503 (0 or -1: none)
    #[arg(long, value_name = "N", default_value = "5", allow_hyphen_values = true)]
    pub(super) retries: String,
    /// Output format
    #[arg(long, value_enum, default_value_t)]
    pub(super) output: Format,
}

/// `lockd client keepalive`.
#[derive(Debug, clap::Args)]
#[command(after_help = KEEPALIVE_AFTER_HELP)]
pub(super) struct KeepaliveArgs {
    #[command(flatten)]
    key: KeyArgs,
    #[command(flatten)]
    hold: HoldArgs,
    #[command(flatten)]
    txn: TxnArgs,
    /// New TTL, counted from now (Go duration, whole seconds, at least 1s)
    #[arg(long, value_name = "DURATION", default_value = "30s")]
    ttl: String,
    /// Output format
    #[arg(long, value_enum, default_value_t)]
    output: Format,
}

/// `lockd client release`.
#[derive(Debug, clap::Args)]
#[command(after_help = RELEASE_AFTER_HELP)]
pub(super) struct ReleaseArgs {
    #[command(flatten)]
    key: KeyArgs,
    #[command(flatten)]
    hold: HoldArgs,
    #[command(flatten)]
    txn: TxnArgs,
    /// Discard the changes staged under the lease instead of committing them
    #[arg(long)]
    rollback: bool,
    /// Output format
    #[arg(long, value_enum, default_value_t)]
    output: Format,
}

/// Acquires the lease and prints it for `eval` (or as JSON).
pub(super) async fn acquire(conn: &Conn, a: AcquireArgs, origins: &Origins<'_>) -> Result<(), CliError> {
    let ttl = origins.parse("ttl", "", &a.ttl, inputs::ttl_seconds)?;
    let block = origins.parse("block", "", &a.block, inputs::block_seconds)?;
    let retries = origins.parse("retries", "", &a.retries, inputs::retries)?;
    let req = AcquireRequest {
        namespace: optional(a.namespace.as_deref()),
        key: optional(a.key.as_deref()),
        owner: Some(optional(a.owner.as_deref()).unwrap_or_else(inputs::default_owner)),
        ttl_seconds: Some(ttl),
        block_seconds: Some(block),
        if_not_exists: a.if_not_exists.then_some(true),
        txn_id: optional(a.txn_id.as_deref()),
    };
    let lease = acquire_with_retries(conn, &req, retries)
        .await
        .map_err(|e| conn.failed(e))?;
    match a.output {
        Format::Json => {
            // The header's token is authoritative; the body may lack it.
            let mut answer = lease.response;
            answer.fencing_token = lease.fencing_token;
            print_json(&answer)
        }
        Format::Text => {
            let r = &lease.response;
            Script::default()
                .export(ENV_SERVER, conn.endpoints.join(","))
                .export(ENV_NAMESPACE, &r.namespace)
                .export(ENV_KEY, &r.key)
                .export(ENV_LEASE, &r.lease_id)
                .export(ENV_OWNER, &r.owner)
                .export(ENV_TXN_ID, &r.txn_id)
                .export(ENV_FENCING_TOKEN, lease.fencing_token)
                .export(ENV_VERSION, r.version)
                .export_or_unset(ENV_ETAG, &r.state_etag)
                .export(ENV_EXPIRES, r.expires_at_unix)
                .export_or_unset(ENV_CORRELATION_ID, &r.correlation_id)
                .print()
        }
    }
}

/// One acquire, repeated up to `retries` more times while the failure is
/// one a later attempt may not have: no answer, or 429/503. A held key
/// (`waiting`) is final: `--block` already said how long to wait for it.
async fn acquire_with_retries(conn: &Conn, req: &AcquireRequest, retries: u32) -> Result<Lease, ClientError> {
    let mut attempt = 0;
    loop {
        let err = match conn.client.acquire(req).await {
            Ok(lease) => return Ok(lease),
            Err(err) => err,
        };
        let Some(wait) = retry_delay(attempt, &err).filter(|_| attempt < retries) else {
            return Err(err);
        };
        tracing::debug!(attempt, ?wait, error = %err, "acquire failed, retrying");
        tokio::time::sleep(wait).await;
        attempt += 1;
    }
}

/// Pause before retry number `attempt` (0-based) after `err`, or `None`
/// when retrying cannot help. Doubles from 200 ms up to 5 s, and honours
/// the server's Retry-After within that ceiling.
fn retry_delay(attempt: u32, err: &ClientError) -> Option<Duration> {
    let hint_seconds = match err {
        ClientError::Transport(_) | ClientError::Timeout => 0,
        ClientError::Api(api) if api.status == 429 || api.status == 503 => api.retry_after_seconds,
        _ => return None,
    };
    let backoff = FIRST_RETRY_DELAY
        .saturating_mul(1 << attempt.min(8))
        .min(MAX_RETRY_DELAY);
    let hint = Duration::from_secs(u64::try_from(hint_seconds).unwrap_or(0)).min(MAX_RETRY_DELAY);
    Some(backoff.max(hint))
}

/// Extends the lease and prints the new expiry.
pub(super) async fn keepalive(conn: &Conn, a: KeepaliveArgs, origins: &Origins<'_>) -> Result<(), CliError> {
    let lease = lease_ref(&a.key, &a.hold, Some(&a.txn), origins)?;
    let ttl = origins.parse("ttl", "", &a.ttl, inputs::ttl_seconds)?;
    let answer = conn.client.keepalive(&lease, ttl).await.map_err(|e| conn.failed(e))?;
    match a.output {
        Format::Json => print_json(&answer),
        Format::Text => Script::default().export(ENV_EXPIRES, answer.expires_at_unix).print(),
    }
}

/// Releases the lease (commit or rollback) and prints what to forget.
pub(super) async fn release(conn: &Conn, a: ReleaseArgs, origins: &Origins<'_>) -> Result<(), CliError> {
    let lease = lease_ref(&a.key, &a.hold, Some(&a.txn), origins)?;
    let answer = conn
        .client
        .release(&lease, a.rollback)
        .await
        .map_err(|e| conn.failed(e))?;
    confirm_released(conn, &lease).await?;
    match a.output {
        Format::Json => print_json(&answer),
        Format::Text => {
            let mut script = Script::default();
            if a.rollback {
                script.comment("lease released, staged changes discarded").unset(&[
                    ENV_LEASE,
                    ENV_FENCING_TOKEN,
                    ENV_TXN_ID,
                    ENV_EXPIRES,
                    ENV_VERSION,
                    ENV_ETAG,
                ]);
            } else {
                script.comment("lease released, staged changes committed").unset(&[
                    ENV_LEASE,
                    ENV_FENCING_TOKEN,
                    ENV_TXN_ID,
                    ENV_EXPIRES,
                ]);
            }
            script.print()
        }
    }
}

/// Checks that a release took effect. lockd answers `released: true` to
/// a release whose fencing token does not match and leaves the lease in
/// place, so a script would carry on believing the key is free; the key's
/// metadata tells whether our lease is still there. Nothing is concluded
/// when the check itself fails: the release did get its answer.
async fn confirm_released(conn: &Conn, lease: &LeaseRef) -> Result<(), CliError> {
    match conn.client.describe(&lease.namespace, &lease.key).await {
        Ok(d) if d.lease_id == lease.lease_id => Err(CliError::Request(format!(
            "fencing_mismatch: lease {} on {:?} is still held: the server ignores a release whose fencing \
             token ({}) is not the lease's current one (pass the token acquire printed)",
            lease.lease_id, lease.key, lease.fencing_token
        ))),
        Ok(_) => Ok(()),
        Err(err) => {
            tracing::debug!(error = %err, "could not confirm the release");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use lockd_net::client::ApiError;

    use super::*;

    fn api(status: u16, code: &str, retry_after: i64) -> ClientError {
        ClientError::Api(Box::new(ApiError {
            status,
            code: code.into(),
            detail: String::new(),
            current_version: 0,
            current_etag: String::new(),
            retry_after_seconds: retry_after,
            leader_endpoint: String::new(),
            correlation_id: None,
        }))
    }

    #[test]
    fn held_keys_and_refusals_are_not_retried() {
        assert_eq!(retry_delay(0, &api(409, "waiting", 30)), None);
        assert_eq!(retry_delay(0, &api(409, "already_exists", 0)), None);
        assert_eq!(retry_delay(0, &api(400, "missing_owner", 0)), None);
    }

    #[test]
    fn unreachable_and_overloaded_servers_are_retried_with_backoff() {
        let transport = ClientError::Transport("refused".into());
        let delays: Vec<u128> = (0..7)
            .map(|n| retry_delay(n, &transport).expect("retried").as_millis())
            .collect();
        assert_eq!(delays, vec![200, 400, 800, 1600, 3200, 5000, 5000]);
        assert_eq!(retry_delay(0, &ClientError::Timeout), Some(FIRST_RETRY_DELAY));
        assert_eq!(
            retry_delay(0, &api(429, "throttled", 2)),
            Some(Duration::from_secs(2)),
            "Retry-After is a floor"
        );
        assert_eq!(
            retry_delay(0, &api(503, "shutdown_draining", 60)),
            Some(MAX_RETRY_DELAY),
            "within the ceiling"
        );
        assert_eq!(retry_delay(40, &transport), Some(MAX_RETRY_DELAY), "no overflow");
    }
}
