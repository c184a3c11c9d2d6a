//! Turning the list-valued flags of `lockd auth new` into what the issuer
//! takes: `--hosts` into host names, and `-n/--namespace` with the
//! `--*-all` switches into namespace claims.
//!
//! These are pure functions so their rules (comma lists, repeatable flags,
//! the `default=rw` fallback) can be tested without minting certificates,
//! and so a malformed value is a usage error naming its flag before any
//! key is generated.

use std::net::IpAddr;

use lockd_auth::claims::{Claims, Perm, ALL};
use lockd_auth::AuthError;

use super::common::invalid;
use crate::error::CliError;

/// The namespace a client certificate is granted when no claim flag is
/// given: lockd's default namespace, read and write. A certificate with
/// no claims at all would be refused everywhere, which is never what a
/// bare `lockd auth new client` means.
pub(super) const DEFAULT_NAMESPACE: &str = "default";

/// Splits repeatable, comma-separated flag values (`--hosts a,b --hosts c`)
/// into trimmed items, dropping empty ones so a trailing comma is harmless.
pub(super) fn split_list(values: &[String]) -> Vec<String> {
    values
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_string)
        .collect()
}

/// Checks one `--hosts` item the way the issuer will read it (an IP
/// address, else an ASCII DNS name without spaces, slashes or colons), so
/// a typo is a usage error rather than a failure after key generation.
fn check_host(host: &str) -> Result<(), String> {
    if host.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    if host.chars().any(|c| c.is_whitespace() || c == '/' || c == ':') {
        return Err(format!("{host:?} is neither an IP address nor a DNS name"));
    }
    if !host.is_ascii() {
        return Err(format!(
            "{host:?} is not ASCII (write internationalised names in punycode)"
        ));
    }
    Ok(())
}

/// The host names for a server certificate from every `--hosts` value;
/// empty means "use the issuer's defaults".
pub(super) fn hosts(values: &[String]) -> Result<Vec<String>, CliError> {
    let hosts = split_list(values);
    for host in &hosts {
        check_host(host).map_err(|reason| invalid("hosts", &values.join(","), reason))?;
    }
    Ok(hosts)
}

/// The claim flags of `lockd auth new client`, as given.
#[derive(Debug, Default, Clone)]
pub(super) struct ClaimFlags {
    /// Every `-n/--namespace` value (`orders=rw,reports=r`; bare name = rw).
    pub(super) namespaces: Vec<String>,
    /// `--read-all`: read every namespace.
    pub(super) read_all: bool,
    /// `--write-all`: write every namespace.
    pub(super) write_all: bool,
    /// `--rw-all`: read and write every namespace.
    pub(super) rw_all: bool,
}

/// The reason part of a claim error, without repeating the value the
/// usage error already quotes.
fn claim_reason(spec: &str, e: AuthError) -> String {
    match e {
        AuthError::Claim { claim, reason } if claim.trim() == spec.trim() => reason,
        AuthError::Claim { claim, reason } => format!("{claim:?}: {reason}"),
        other => other.to_string(),
    }
}

impl ClaimFlags {
    /// Whether any claim flag was given at all.
    fn any(&self) -> bool {
        !self.namespaces.is_empty() || self.read_all || self.write_all || self.rw_all
    }

    /// The claims the certificate will carry. Grants on one namespace add
    /// up (`--read-all --write-all` is `ALL=rw`); no claim flag at all
    /// means `default=rw`. A value that names no namespace (`-n ''`) is
    /// refused rather than silently issuing a certificate that can do
    /// nothing.
    pub(super) fn claims(&self) -> Result<Claims, CliError> {
        let mut claims = Claims::none();
        let grant = |claims: &mut Claims, ns: &str, perm: Perm| {
            claims
                .grant(ns, perm)
                .map(|_| ())
                .map_err(|e| CliError::Startup(format!("cannot grant {ns}={perm}: {e}")))
        };
        if !self.any() {
            grant(&mut claims, DEFAULT_NAMESPACE, Perm::ReadWrite)?;
            return Ok(claims);
        }
        for spec in &self.namespaces {
            if spec.split(',').all(|item| item.trim().is_empty()) {
                return Err(invalid(
                    "namespace",
                    spec,
                    "names no namespace (use NAME or NAME=r|w|rw)",
                ));
            }
            claims
                .parse_flag(spec)
                .map_err(|e| invalid("namespace", spec, claim_reason(spec, e)))?;
        }
        for (on, perm) in [
            (self.read_all, Perm::Read),
            (self.write_all, Perm::Write),
            (self.rw_all, Perm::ReadWrite),
        ] {
            if on {
                grant(&mut claims, ALL, perm)?;
            }
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(namespaces: &[&str]) -> ClaimFlags {
        ClaimFlags {
            namespaces: namespaces.iter().map(|s| s.to_string()).collect(),
            ..ClaimFlags::default()
        }
    }

    #[test]
    fn no_claim_flag_means_the_default_namespace() {
        let claims = ClaimFlags::default().claims().expect("default");
        assert_eq!(claims.to_string(), "default=rw");
    }

    #[test]
    fn namespace_values_repeat_and_take_comma_lists() {
        let claims = flags(&["orders=r", "reports=rw,audit", "Orders=w"])
            .claims()
            .expect("valid");
        assert_eq!(claims.to_string(), "audit=rw,orders=rw,reports=rw");
        let claims = flags(&["orders=r"]).claims().expect("valid");
        assert_eq!(claims.to_string(), "orders=r", "an explicit claim replaces the default");
    }

    #[test]
    fn all_switches_grant_the_wildcard_and_add_up() {
        let read = ClaimFlags {
            read_all: true,
            ..ClaimFlags::default()
        };
        assert_eq!(read.claims().expect("r").to_string(), "ALL=r");
        let both = ClaimFlags {
            read_all: true,
            write_all: true,
            ..flags(&["orders=r"])
        };
        assert_eq!(both.claims().expect("rw").to_string(), "ALL=rw,orders=r");
        let rw = ClaimFlags {
            rw_all: true,
            ..ClaimFlags::default()
        };
        assert_eq!(rw.claims().expect("rw").to_string(), "ALL=rw");
    }

    #[test]
    fn bad_claims_are_usage_errors_naming_the_flag() {
        for bad in ["orders=x", "bad ns=r", "", " , ", "ok,=r"] {
            let err = flags(&[bad]).claims().expect_err(bad);
            assert_eq!(err.exit_code(), 2, "{bad:?}");
            assert!(err.to_string().starts_with("invalid --namespace"), "{err}");
        }
        let err = flags(&["orders=rw,bad ns"]).claims().expect_err("second item");
        assert!(err.to_string().contains("\"bad ns\""), "names the bad item: {err}");
    }

    #[test]
    fn hosts_split_trim_and_check() {
        let given = ["db.internal, 10.0.0.7,".to_string(), "::1".to_string()];
        assert_eq!(hosts(&given).expect("valid"), vec!["db.internal", "10.0.0.7", "::1"]);
        assert!(hosts(&[]).expect("none").is_empty());
        for bad in ["a b", "http://x", "host:80", "bücher.de"] {
            let err = hosts(&[bad.to_string()]).expect_err(bad);
            assert_eq!(err.exit_code(), 2);
            assert!(err.to_string().starts_with("invalid --hosts"), "{err}");
        }
    }
}
