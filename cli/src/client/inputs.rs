//! Values of client commands: the `LOCKD_CLIENT_*` variables, the flag
//! groups several commands share, and their parsing.
//!
//! clap applies "flag > environment variable > default"; this module turns
//! the resulting text into typed values and, when a value is missing or
//! malformed, into a one-line error that names both the flag and the
//! variable, so a stale or absent `eval` is easy to diagnose.

use std::time::Duration;

use clap::parser::ValueSource;
use clap::ArgMatches;
use lockd_net::client::LeaseRef;

use crate::error::CliError;
use crate::parse;

/// Server URL(s).
pub(super) const ENV_SERVER: &str = "LOCKD_CLIENT_SERVER";
/// The leased key.
pub(super) const ENV_KEY: &str = "LOCKD_CLIENT_KEY";
/// Lease id.
pub(super) const ENV_LEASE: &str = "LOCKD_CLIENT_LEASE";
/// Owner label of the lease.
pub(super) const ENV_OWNER: &str = "LOCKD_CLIENT_OWNER";
/// State version last seen.
pub(super) const ENV_VERSION: &str = "LOCKD_CLIENT_VERSION";
/// State ETag last seen.
pub(super) const ENV_ETAG: &str = "LOCKD_CLIENT_ETAG";
/// Lease expiry, unix seconds.
pub(super) const ENV_EXPIRES: &str = "LOCKD_CLIENT_EXPIRES_UNIX";
/// Fencing token of the lease.
pub(super) const ENV_FENCING_TOKEN: &str = "LOCKD_CLIENT_FENCING_TOKEN";
/// Transaction id of the lease.
pub(super) const ENV_TXN_ID: &str = "LOCKD_CLIENT_TXN_ID";
/// Correlation id of the acquire request.
pub(super) const ENV_CORRELATION_ID: &str = "LOCKD_CLIENT_CORRELATION_ID";
/// Namespace of the key.
pub(super) const ENV_NAMESPACE: &str = "LOCKD_CLIENT_NAMESPACE";

/// Hint appended to "missing" errors: every required value is one `acquire` exports.
const EVAL_HINT: &str = " (eval the output of `lockd client acquire` to set it)";

/// Tells whether clap took a value from the environment, for messages.
pub(super) struct Origins<'a> {
    matches: Option<&'a ArgMatches>,
}

impl<'a> Origins<'a> {
    /// `matches` are those of the command that runs (global flags included).
    pub(super) fn new(matches: Option<&'a ArgMatches>) -> Origins<'a> {
        Origins { matches }
    }

    /// ` (from LOCKD_X)` when the value of `--<flag>` came from the
    /// environment variable `env`, else empty (it came from the flag).
    pub(super) fn origin(&self, flag: &str, env: &str) -> String {
        match self.matches.and_then(|m| m.value_source(&arg_id(flag))) {
            Some(ValueSource::EnvVariable) => format!(" (from {env})"),
            _ => String::new(),
        }
    }

    /// Parses `value` of the flag `--<flag>` (clap id `id`, variable `env`)
    /// with `f`, naming the flag, the value and its origin on failure.
    pub(super) fn parse<T>(
        &self,
        flag: &'static str,
        env: &str,
        value: &str,
        f: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, CliError> {
        f(value).map_err(|reason| CliError::InvalidValue {
            flag,
            value: value.to_owned(),
            origin: self.origin(flag, env),
            reason,
        })
    }
}

/// Flags of `lockd client` itself, accepted by every command. Their clap
/// ids carry [`GLOBAL_ID_PREFIX`]: clap hands a global flag's value down
/// by id, and the server flags of the same name (`--bundle`,
/// `--disable-mtls`, `--log-level`) would otherwise pass the server's
/// `LOCKD_BUNDLE`, ... to the client.
pub(super) const GLOBAL_FLAGS: [&str; 5] = ["server", "bundle", "disable-mtls", "timeout", "log-level"];
/// Prefix of the clap ids of [`GLOBAL_FLAGS`].
pub(super) const GLOBAL_ID_PREFIX: &str = "client_";

/// clap's id of `--<flag>`.
pub(super) fn arg_id(flag: &str) -> String {
    let id = flag.replace('-', "_");
    if GLOBAL_FLAGS.contains(&flag) {
        format!("{GLOBAL_ID_PREFIX}{id}")
    } else {
        id
    }
}

/// The trimmed value, or the "missing" error naming the flag and variable.
pub(super) fn required(value: Option<&str>, flag: &str, env: &str) -> Result<String, CliError> {
    optional(value)
        .ok_or_else(|| CliError::Missing(format!("no --{flag} given: pass --{flag} or set {env}{EVAL_HINT}")))
}

/// The trimmed value; empty counts as absent.
pub(super) fn optional(value: Option<&str>) -> Option<String> {
    value.map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned)
}

/// `--key` and `--namespace`: which key a command is about.
#[derive(Debug, clap::Args)]
pub(super) struct KeyArgs {
    /// The key; acquire exports it as LOCKD_CLIENT_KEY
    #[arg(short = 'k', long, env = ENV_KEY, value_name = "KEY")]
    pub(super) key: Option<String>,
    /// Namespace of the key (default: the server's default namespace)
    #[arg(short = 'n', long, env = ENV_NAMESPACE, value_name = "NAME")]
    pub(super) namespace: Option<String>,
}

impl KeyArgs {
    /// The key (required) and the namespace (empty: the server's default).
    pub(super) fn resolve(&self) -> Result<(String, String), CliError> {
        let key = required(self.key.as_deref(), "key", ENV_KEY)?;
        Ok((key, optional(self.namespace.as_deref()).unwrap_or_default()))
    }
}

/// `--lease` and `--fencing-token`: the proof of holding the lease.
#[derive(Debug, clap::Args)]
pub(super) struct HoldArgs {
    /// Lease id from acquire
    #[arg(long, env = ENV_LEASE, value_name = "ID")]
    pub(super) lease: Option<String>,
    /// Fencing token from acquire; the server refuses requests whose token is not the lease's current one
    #[arg(long, env = ENV_FENCING_TOKEN, value_name = "N")]
    pub(super) fencing_token: Option<String>,
}

/// `--txn-id`: the transaction the lease belongs to.
#[derive(Debug, clap::Args)]
pub(super) struct TxnArgs {
    /// Transaction id from acquire; lease-guarded writes, keepalive and release must carry it
    #[arg(long, env = ENV_TXN_ID, value_name = "ID")]
    pub(super) txn_id: Option<String>,
}

/// Builds the lease reference of a lease-guarded call from its flag
/// groups. `txn` is `None` for calls that do not need the transaction id
/// (reads); when given, the id is required.
pub(super) fn lease_ref(
    key: &KeyArgs,
    hold: &HoldArgs,
    txn: Option<&TxnArgs>,
    origins: &Origins<'_>,
) -> Result<LeaseRef, CliError> {
    let (key, namespace) = key.resolve()?;
    let lease_id = required(hold.lease.as_deref(), "lease", ENV_LEASE)?;
    origins.parse("lease", ENV_LEASE, &lease_id, header_safe)?;
    let token_text = required(hold.fencing_token.as_deref(), "fencing-token", ENV_FENCING_TOKEN)?;
    let fencing_token = origins.parse("fencing-token", ENV_FENCING_TOKEN, &token_text, fencing_token)?;
    let txn_id = match txn {
        Some(t) => {
            let id = required(t.txn_id.as_deref(), "txn-id", ENV_TXN_ID)?;
            origins.parse("txn-id", ENV_TXN_ID, &id, header_safe)?;
            id
        }
        None => String::new(),
    };
    Ok(LeaseRef {
        namespace,
        key,
        lease_id,
        txn_id,
        fencing_token,
    })
}

/// A value that travels in an HTTP header: visible ASCII and spaces only.
pub(super) fn header_safe(text: &str) -> Result<(), String> {
    if text.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b)) {
        Ok(())
    } else {
        Err("must be printable ASCII (it is sent in an HTTP header)".into())
    }
}

/// A fencing token: a positive integer.
pub(super) fn fencing_token(text: &str) -> Result<i64, String> {
    match text.trim().parse::<i64>() {
        Ok(n) if n > 0 => Ok(n),
        Ok(_) => Err("must be a positive integer".into()),
        Err(_) => Err("expected an integer (the fencing token acquire printed)".into()),
    }
}

/// A state version for `--if-version`.
pub(super) fn version(text: &str) -> Result<i64, String> {
    match text.trim().parse::<i64>() {
        Ok(n) if n >= 0 => Ok(n),
        _ => Err("expected a version number (0 or more)".into()),
    }
}

/// A lease TTL: a duration of at least one second, rounded up to whole
/// seconds (the API counts in seconds).
pub(super) fn ttl_seconds(text: &str) -> Result<i64, String> {
    let d = parse::duration(text)?;
    if d < Duration::from_secs(1) {
        return Err("must be at least 1s".into());
    }
    whole_seconds(d)
}

/// `--block`: `-1` (or any negative, or `nowait`) fails at once when the
/// key is held, `0` (or `forever`) waits without limit, anything else is a
/// duration rounded up to whole seconds.
pub(super) fn block_seconds(text: &str) -> Result<i64, String> {
    let t = text.trim().to_ascii_lowercase();
    match t.as_str() {
        "nowait" | "no-wait" => return Ok(-1),
        "forever" => return Ok(0),
        _ => {}
    }
    if let Some(magnitude) = t.strip_prefix('-') {
        return parse::duration(magnitude).map(|_| -1);
    }
    let d = parse::duration(&t)?;
    if d.is_zero() {
        return Ok(0);
    }
    whole_seconds(d)
}

fn whole_seconds(d: Duration) -> Result<i64, String> {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    i64::try_from(secs).map_err(|_| "duration is too large".to_string())
}

/// `--retries`: how many more attempts after a failed one; `-1` as in lockd means none.
pub(super) fn retries(text: &str) -> Result<u32, String> {
    match text.trim() {
        "-1" => Ok(0),
        t => t
            .parse::<u32>()
            .ok()
            .filter(|n| *n <= 100)
            .ok_or_else(|| "expected a whole number from 0 to 100 (or -1 for none)".to_string()),
    }
}

/// Owner label when neither `--owner` nor `LOCKD_CLIENT_OWNER` gives one:
/// `user@host`, so that `describe` shows who holds a key.
pub(super) fn default_owner() -> String {
    let user = ["USER", "LOGNAME"]
        .iter()
        .find_map(|v| optional(std::env::var(v).ok().as_deref()))
        .unwrap_or_else(|| "lockd".to_owned());
    format!("{user}@{}", hostname())
}

fn hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| optional(std::fs::read_to_string(p).ok().as_deref()))
        .or_else(|| optional(std::env::var("HOSTNAME").ok().as_deref()))
        .unwrap_or_else(|| "localhost".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_values() {
        assert_eq!(block_seconds("10s"), Ok(10));
        assert_eq!(block_seconds("1m"), Ok(60));
        assert_eq!(block_seconds("1500ms"), Ok(2), "rounded up");
        assert_eq!(block_seconds("0"), Ok(0));
        assert_eq!(block_seconds("forever"), Ok(0));
        assert_eq!(block_seconds("-1"), Ok(-1));
        assert_eq!(block_seconds("-5s"), Ok(-1));
        assert_eq!(block_seconds("NoWait"), Ok(-1));
        assert_eq!(block_seconds("45"), Ok(45));
        assert!(block_seconds("soon").is_err());
        assert!(block_seconds("-soon").is_err());
    }

    #[test]
    fn ttl_values() {
        assert_eq!(ttl_seconds("30s"), Ok(30));
        assert_eq!(ttl_seconds("1.2s"), Ok(2));
        assert_eq!(ttl_seconds("2m"), Ok(120));
        assert!(ttl_seconds("0").expect_err("zero").contains("at least 1s"));
        assert!(ttl_seconds("500ms").is_err());
        assert!(ttl_seconds("-3s").is_err());
    }

    #[test]
    fn tokens_versions_and_retries() {
        assert_eq!(fencing_token("7"), Ok(7));
        assert!(fencing_token("0").is_err());
        assert!(fencing_token("seven").is_err());
        assert_eq!(version("0"), Ok(0));
        assert!(version("-2").is_err());
        assert_eq!(retries("3"), Ok(3));
        assert_eq!(retries("-1"), Ok(0));
        assert!(retries("101").is_err());
        assert!(retries("x").is_err());
    }

    #[test]
    fn header_values_must_be_printable() {
        assert!(header_safe("c5v1lq2b9h0s").is_ok());
        assert!(header_safe("a\nb").is_err());
        assert!(header_safe("é").is_err());
    }

    #[test]
    fn missing_values_name_flag_and_variable() {
        let err = required(None, "key", ENV_KEY).expect_err("missing");
        assert_eq!(err.exit_code(), 2);
        let msg = err.to_string();
        assert!(msg.contains("--key") && msg.contains("LOCKD_CLIENT_KEY"), "{msg}");
        assert!(!msg.contains('\n'), "{msg}");
        assert!(required(Some("  "), "key", ENV_KEY).is_err(), "blank counts as missing");
        assert_eq!(required(Some(" k "), "key", ENV_KEY).expect("present"), "k");
    }

    #[test]
    fn lease_ref_collects_the_identity() {
        let key = KeyArgs {
            key: Some("orders".into()),
            namespace: None,
        };
        let hold = HoldArgs {
            lease: Some("l1".into()),
            fencing_token: Some("4".into()),
        };
        let txn = TxnArgs {
            txn_id: Some("t1".into()),
        };
        let origins = Origins::new(None);
        let r = lease_ref(&key, &hold, Some(&txn), &origins).expect("complete");
        assert_eq!(
            (
                r.key.as_str(),
                r.namespace.as_str(),
                r.lease_id.as_str(),
                r.txn_id.as_str(),
                r.fencing_token
            ),
            ("orders", "", "l1", "t1", 4)
        );
        let read = lease_ref(&key, &hold, None, &origins).expect("reads need no txn");
        assert_eq!(read.txn_id, "");
        let no_txn = TxnArgs { txn_id: None };
        let err = lease_ref(&key, &hold, Some(&no_txn), &origins).expect_err("txn required");
        assert!(err.to_string().contains("LOCKD_CLIENT_TXN_ID"), "{err}");
        let bad = HoldArgs {
            lease: Some("l1".into()),
            fencing_token: Some("x".into()),
        };
        let err = lease_ref(&key, &bad, None, &origins).expect_err("bad token");
        assert!(err.to_string().starts_with("invalid --fencing-token \"x\""), "{err}");
    }

    #[test]
    fn default_owner_names_user_and_host() {
        let owner = default_owner();
        let (user, host) = owner.split_once('@').expect("user@host");
        assert!(!user.is_empty() && !host.is_empty(), "{owner}");
    }
}
