//! Who is calling, and whether they may touch a namespace.
//!
//! On an mTLS connection the client certificate is read once, after the
//! handshake, into a [`Peer`]: its identity (appended to lease owners, as
//! lockd does) and its namespace claims. Each request then checks its
//! resolved namespace against the claims: reads need `r`, lease and state
//! writes need `w`. Plain-HTTP and Unix-socket connections carry no
//! certificate; they are trusted as the listener's configuration says
//! (`--disable-mtls`, socket file permissions) and skip these checks.

use lockd_actors::{names, ApiError};
use lockd_auth::cert::CertInfo;
use lockd_auth::claims::{Access, Claims};
use lockd_auth::denylist::Denylist;

/// The verified client certificate of one connection.
#[derive(Debug)]
pub(crate) struct Peer {
    /// `<subject CN>#<serial>`, appended to lease owners.
    identity: String,
    /// Canonical serial, for the per-request denylist check.
    serial: String,
    /// The claims, or why they are malformed (`invalid_namespace_claims`).
    claims: Result<Claims, String>,
}

impl Peer {
    /// Reads a client certificate the TLS layer has already verified.
    pub(crate) fn from_certificate(der: &[u8]) -> Peer {
        match CertInfo::from_der(der) {
            Ok(info) => Peer {
                identity: info.identity(),
                serial: info.serial.clone(),
                claims: info.claims().map_err(|e| e.to_string()),
            },
            Err(e) => Peer {
                identity: String::from("unreadable-certificate"),
                serial: String::new(),
                claims: Err(e.to_string()),
            },
        }
    }
}

/// One request's caller: the connection's peer (if any) and the live
/// denylist. Cheap to copy into every handler.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Caller<'a> {
    pub(crate) peer: Option<&'a Peer>,
    pub(crate) denylist: Option<&'a Denylist>,
}

impl Caller<'_> {
    /// Allows or refuses `access` to `raw_namespace` (as the request spelt
    /// it; empty means `default_ns`). A namespace that does not resolve is
    /// let through: the handler reports it as `invalid_namespace` next.
    pub(crate) fn authorize(&self, raw_namespace: &str, default_ns: &str, access: Access) -> Result<(), ApiError> {
        let Some(peer) = self.peer else {
            return Ok(());
        };
        // A connection opened before its certificate was revoked must not
        // keep working: revocation is checked per request too.
        if self.denylist.is_some_and(|d| d.contains(&peer.serial)) {
            return Err(ApiError::namespace_forbidden(format!(
                "client certificate {} has been revoked",
                peer.identity
            )));
        }
        let claims = peer
            .claims
            .as_ref()
            .map_err(|e| ApiError::invalid_namespace_claims(e.clone()))?;
        let Ok(namespace) = names::resolve_namespace(raw_namespace, default_ns) else {
            return Ok(());
        };
        if claims.allows(&namespace, access) {
            return Ok(());
        }
        let verb = match access {
            Access::Read => "read",
            Access::Write => "write",
        };
        Err(ApiError::namespace_forbidden(format!(
            "client certificate {} may not {verb} namespace {namespace:?} (its claims: {claims})",
            peer.identity
        )))
    }

    /// The lease owner as stored: with mTLS, lockd appends
    /// `/<subject>#<serial>` so an owner name cannot be borrowed by another
    /// certificate. An empty owner stays empty (and is refused later).
    pub(crate) fn owner(&self, owner: &str) -> String {
        match self.peer {
            Some(peer) if !owner.trim().is_empty() => format!("{owner}/{}", peer.identity),
            _ => owner.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::time::Duration;

    use lockd_auth::issue::{new_ca, new_client, Validity};

    use super::*;

    fn peer(claims: &str) -> Peer {
        let validity = Validity::for_duration(Duration::from_secs(3600));
        let ca = new_ca("test-ca", &validity).expect("ca");
        let mut c = Claims::none();
        c.parse_flag(claims).expect("claims");
        let client = new_client(&ca, "worker", &c, &validity).expect("client");
        Peer::from_certificate(&client.cert_der().expect("der"))
    }

    #[test]
    fn claims_decide_per_namespace_and_access() {
        let p = peer("orders=r,jobs=w");
        let caller = Caller {
            peer: Some(&p),
            denylist: None,
        };
        assert!(caller.authorize("orders", "default", Access::Read).is_ok());
        let err = caller
            .authorize("Orders", "default", Access::Write)
            .expect_err("r only");
        assert_eq!((err.status, err.code), (403, "namespace_forbidden"));
        assert!(
            err.detail.contains("\"orders\"") && err.detail.contains("worker#"),
            "{}",
            err.detail
        );
        assert!(caller.authorize("jobs", "default", Access::Write).is_ok());
        assert!(
            caller.authorize("", "jobs", Access::Write).is_ok(),
            "empty means the default namespace"
        );
        assert!(caller.authorize("", "default", Access::Read).is_err());
        assert!(
            caller.authorize("bad ns!", "default", Access::Write).is_ok(),
            "an unresolvable namespace is left to the handler's 400"
        );
    }

    #[test]
    fn owners_carry_the_certificate_identity() {
        let p = peer("ALL=rw");
        let caller = Caller {
            peer: Some(&p),
            denylist: None,
        };
        let owner = caller.owner("worker-1");
        assert!(owner.starts_with("worker-1/worker#"), "{owner}");
        assert_eq!(
            caller.owner(" "),
            " ",
            "an empty owner is left for the missing_owner check"
        );
        assert_eq!(Caller::default().owner("worker-1"), "worker-1");
        assert!(Caller::default().authorize("x", "default", Access::Write).is_ok());
    }

    #[test]
    fn revoked_peers_are_refused_on_open_connections() {
        let p = peer("ALL=rw");
        let denylist = Denylist::default();
        let caller = Caller {
            peer: Some(&p),
            denylist: Some(&denylist),
        };
        assert!(caller.authorize("orders", "default", Access::Read).is_ok());
        denylist.replace(BTreeSet::from([p.serial.clone()]));
        let err = caller
            .authorize("orders", "default", Access::Read)
            .expect_err("revoked");
        assert!(err.detail.contains("revoked"), "{}", err.detail);
    }

    #[test]
    fn malformed_claims_refuse_everything() {
        let p = Peer {
            identity: "x#1".into(),
            serial: "1".into(),
            claims: Err("bad claim".into()),
        };
        let caller = Caller {
            peer: Some(&p),
            denylist: None,
        };
        let err = caller
            .authorize("orders", "default", Access::Read)
            .expect_err("bad claims");
        assert_eq!(err.code, "invalid_namespace_claims");
    }
}
