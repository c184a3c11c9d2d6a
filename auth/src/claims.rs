//! Namespace claims: which namespaces a client certificate may read or
//! write.
//!
//! A claim is a URI SAN on the client certificate,
//! `lockd://ns/<namespace>?perm=r|w|rw`, as lockd writes them; the
//! namespace `ALL` (upper case, which no real namespace can be since
//! namespaces are lower-cased) stands for every namespace. Claims travel
//! inside the certificate, so the server needs no user database: the CA
//! that signed the certificate vouches for them.
//!
//! A certificate whose claims cannot be parsed is refused as a whole
//! (`invalid_namespace_claims`) rather than read partially, so a typo in a
//! claim never silently widens or narrows what a client may do.

use std::collections::BTreeMap;
use std::fmt;

use crate::{AuthError, Result};

/// URI prefix of a namespace claim.
pub const CLAIM_PREFIX: &str = "lockd://ns/";

/// The wildcard namespace of a claim.
pub const ALL: &str = "ALL";

/// What a request does to a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Reading state or metadata.
    Read,
    /// Taking leases, staging and committing state.
    Write,
}

/// What a claim grants on a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Perm {
    /// `r`: reads only.
    Read,
    /// `w`: lease and state writes only.
    Write,
    /// `rw`: both.
    ReadWrite,
}

impl Perm {
    /// Parses `r`, `w` or `rw` (`wr` too; case-insensitive).
    pub fn parse(text: &str) -> Option<Perm> {
        match text.trim().to_ascii_lowercase().as_str() {
            "r" => Some(Perm::Read),
            "w" => Some(Perm::Write),
            "rw" | "wr" => Some(Perm::ReadWrite),
            _ => None,
        }
    }

    /// Whether this permission covers `access`.
    pub fn allows(self, access: Access) -> bool {
        matches!(
            (self, access),
            (Perm::ReadWrite, _) | (Perm::Read, Access::Read) | (Perm::Write, Access::Write)
        )
    }

    /// The union of two permissions (two claims on one namespace add up).
    pub fn union(self, other: Perm) -> Perm {
        if self == other {
            self
        } else {
            Perm::ReadWrite
        }
    }

    /// The spelling used in claim URIs.
    pub fn as_str(self) -> &'static str {
        match self {
            Perm::Read => "r",
            Perm::Write => "w",
            Perm::ReadWrite => "rw",
        }
    }
}

impl fmt::Display for Perm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The namespaces a certificate may touch, and how.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claims {
    /// Namespace (lower-cased, or [`ALL`]) → permission.
    grants: BTreeMap<String, Perm>,
}

fn claim_error(claim: &str, reason: impl Into<String>) -> AuthError {
    AuthError::Claim {
        claim: claim.to_string(),
        reason: reason.into(),
    }
}

/// Checks a claim's namespace: [`ALL`], or a name lockd would accept
/// (`a-z 0-9 . _ -`, at most 128 bytes, any case; stored lower-cased).
fn namespace(claim: &str, raw: &str) -> Result<String> {
    let raw = raw.trim();
    if raw == ALL {
        return Ok(ALL.to_string());
    }
    if raw.is_empty() {
        return Err(claim_error(claim, "no namespace"));
    }
    if raw.len() > 128 {
        return Err(claim_error(claim, "namespace longer than 128 bytes"));
    }
    let lower = raw.to_ascii_lowercase();
    if !lower
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
    {
        return Err(claim_error(
            claim,
            "namespaces may only contain a-z, 0-9, '.', '_' and '-' (or be ALL)",
        ));
    }
    Ok(lower)
}

impl Claims {
    /// No grants at all: every namespace is forbidden.
    pub fn none() -> Claims {
        Claims::default()
    }

    /// Adds (or widens) the grant on `namespace` (a namespace or [`ALL`]).
    pub fn grant(&mut self, namespace: &str, perm: Perm) -> Result<&mut Claims> {
        let ns = self::namespace(namespace, namespace)?;
        let merged = match self.grants.get(&ns) {
            Some(old) => old.union(perm),
            None => perm,
        };
        self.grants.insert(ns, merged);
        Ok(self)
    }

    /// Reads the claims among a certificate's URI SANs. URIs that are not
    /// namespace claims (e.g. the `spiffe://` identity) are ignored; a
    /// malformed namespace claim fails the whole set.
    pub fn from_uris<'a>(uris: impl IntoIterator<Item = &'a str>) -> Result<Claims> {
        let mut claims = Claims::none();
        for uri in uris {
            let Some(rest) = uri.strip_prefix(CLAIM_PREFIX) else {
                continue;
            };
            let (ns, query) = rest.split_once('?').unwrap_or((rest, ""));
            let mut perm = None;
            for pair in query.split('&').filter(|p| !p.is_empty()) {
                match pair.split_once('=') {
                    Some(("perm", v)) => {
                        perm = Some(Perm::parse(v).ok_or_else(|| claim_error(uri, "perm must be r, w or rw"))?);
                    }
                    _ => return Err(claim_error(uri, format!("unknown parameter {pair:?}"))),
                }
            }
            let perm = perm.ok_or_else(|| claim_error(uri, "missing ?perm=r|w|rw"))?;
            let ns = namespace(uri, ns)?;
            let merged = match claims.grants.get(&ns) {
                Some(old) => old.union(perm),
                None => perm,
            };
            claims.grants.insert(ns, merged);
        }
        Ok(claims)
    }

    /// Parses the value of `--namespace`: `ns=perm` items separated by
    /// commas (`orders=rw,reports=r`); a bare `ns` means `rw`.
    pub fn parse_flag(&mut self, spec: &str) -> Result<&mut Claims> {
        for item in spec.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (ns, perm) = match item.split_once('=') {
                Some((ns, p)) => (
                    ns,
                    Perm::parse(p).ok_or_else(|| claim_error(item, "permission must be r, w or rw"))?,
                ),
                None => (item, Perm::ReadWrite),
            };
            let ns = namespace(item, ns)?;
            self.grant(&ns, perm)?;
        }
        Ok(self)
    }

    /// The URI SANs that carry these claims, one per namespace.
    pub fn to_uris(&self) -> Vec<String> {
        self.grants
            .iter()
            .map(|(ns, perm)| format!("{CLAIM_PREFIX}{ns}?perm={perm}"))
            .collect()
    }

    /// Whether a request doing `access` on `namespace` (already resolved
    /// and lower-cased) is allowed: by the namespace's own grant or by
    /// the `ALL` grant.
    pub fn allows(&self, namespace: &str, access: Access) -> bool {
        let own = self.grants.get(namespace).is_some_and(|p| p.allows(access));
        own || self.grants.get(ALL).is_some_and(|p| p.allows(access))
    }

    /// Whether there are no grants at all.
    pub fn is_empty(&self) -> bool {
        self.grants.is_empty()
    }

    /// The grants, namespace → permission, in name order.
    pub fn grants(&self) -> impl Iterator<Item = (&str, Perm)> {
        self.grants.iter().map(|(ns, p)| (ns.as_str(), *p))
    }
}

impl fmt::Display for Claims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.grants.is_empty() {
            return f.write_str("(none)");
        }
        let parts: Vec<String> = self.grants.iter().map(|(ns, p)| format!("{ns}={p}")).collect();
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_round_trip_and_merge() {
        let claims = Claims::from_uris([
            "lockd://ns/orders?perm=r",
            "spiffe://lockd/client/worker",
            "lockd://ns/Orders?perm=w",
            "lockd://ns/reports?perm=r",
        ])
        .expect("valid claims");
        assert!(claims.allows("orders", Access::Read));
        assert!(claims.allows("orders", Access::Write), "two claims add up");
        assert!(claims.allows("reports", Access::Read));
        assert!(!claims.allows("reports", Access::Write));
        assert!(!claims.allows("other", Access::Read));
        let again = Claims::from_uris(claims.to_uris().iter().map(String::as_str)).expect("round trip");
        assert_eq!(again, claims);
    }

    #[test]
    fn all_covers_every_namespace_with_its_permission() {
        let claims = Claims::from_uris(["lockd://ns/ALL?perm=r", "lockd://ns/mine?perm=w"]).expect("valid");
        assert!(claims.allows("anything", Access::Read));
        assert!(!claims.allows("anything", Access::Write));
        assert!(claims.allows("mine", Access::Write));
        assert!(claims.allows("mine", Access::Read), "ALL=r adds to mine=w");
        let lower_all = Claims::from_uris(["lockd://ns/all?perm=rw"]).expect("a namespace called all");
        assert!(!lower_all.allows("other", Access::Read), "only ALL is the wildcard");
    }

    #[test]
    fn malformed_claims_fail_the_whole_set() {
        for bad in [
            "lockd://ns/orders",
            "lockd://ns/orders?perm=x",
            "lockd://ns/?perm=r",
            "lockd://ns/or ders?perm=r",
            "lockd://ns/orders?perm=r&admin=1",
        ] {
            let err = Claims::from_uris(["lockd://ns/ok?perm=rw", bad]).expect_err(bad);
            assert!(err.to_string().contains("invalid namespace claim"), "{err}");
        }
        assert!(Claims::from_uris(["https://example.com/x"])
            .expect("ignored")
            .is_empty());
    }

    #[test]
    fn flag_values() {
        let mut c = Claims::none();
        c.parse_flag("orders=rw, reports=r,audit").expect("valid");
        c.parse_flag("ALL=r").expect("valid");
        assert_eq!(c.to_string(), "ALL=r,audit=rw,orders=rw,reports=r");
        assert!(Claims::none().parse_flag("orders=x").is_err());
        assert!(Claims::none().parse_flag("bad ns=r").is_err());
    }
}
