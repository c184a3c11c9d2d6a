//! The checks behind `lockd auth verify server|client`.
//!
//! A TLS handshake that fails says little more than "bad certificate".
//! These checks look at the bundles offline and say which of the usual
//! causes it is: a certificate out of its validity period, the wrong
//! extended key usage, a key pasted from another bundle, a leaf signed by
//! a CA the other side does not trust, or a revoked serial. Every check
//! runs even when an earlier one fails, so one run lists every problem.

use std::fmt;

use rcgen::KeyPair;
use time::OffsetDateTime;
use x509_parser::prelude::X509Certificate;

use crate::bundle::{CaBundle, ClientBundle, ServerBundle};
use crate::cert::CertInfo;
use crate::{AuthError, Result};

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Whether the check passed.
    pub ok: bool,
    /// Which check (`validity`, `key match`, `issuer match`, ...), stable
    /// so scripts and tests can look for it.
    pub check: &'static str,
    /// What was found, for the operator.
    pub detail: String,
}

/// Every finding of one verification, in the order the checks ran.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// The findings.
    pub findings: Vec<Finding>,
}

impl Report {
    /// Whether every check passed: the bundle should work.
    pub fn passed(&self) -> bool {
        self.findings.iter().all(|f| f.ok)
    }

    /// The checks that failed, for a short summary.
    pub fn failures(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| !f.ok)
    }

    fn push(&mut self, ok: bool, check: &'static str, detail: impl Into<String>) {
        self.findings.push(Finding {
            ok,
            check,
            detail: detail.into(),
        });
    }
}

impl fmt::Display for Report {
    /// One line per finding, `ok   check: detail` or `FAIL check: detail`,
    /// so failures line up and stand out in a terminal.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, finding) in self.findings.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            let mark = if finding.ok { "ok  " } else { "FAIL" };
            write!(f, "{mark} {}: {}", finding.check, finding.detail)?;
        }
        Ok(())
    }
}

/// A UNIX time as `YYYY-MM-DD HH:MM:SS UTC`, how validity dates are shown.
pub fn format_time(unix: i64) -> String {
    match OffsetDateTime::from_unix_timestamp(unix) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => format!("{unix} (UNIX seconds)"),
    }
}

fn parse_cert(der: &[u8]) -> Result<X509Certificate<'_>> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| AuthError::Certificate(e.to_string()))?;
    Ok(cert)
}

/// Whether the PKCS#8 private key `key_der` belongs to the certificate
/// `cert_der`, i.e. the certificate's public key is the key's. A key that
/// cannot be read at all is an error rather than `false`.
pub fn key_matches(cert_der: &[u8], key_der: &[u8]) -> Result<bool> {
    let cert = parse_cert(cert_der)?;
    let key = KeyPair::try_from(key_der).map_err(|e| {
        AuthError::bundle(
            "private key",
            format!("cannot be read (PKCS#8 ECDSA, Ed25519 or RSA expected): {e}"),
        )
    })?;
    Ok(cert.public_key().subject_public_key.data.as_ref() == key.public_key_raw())
}

/// Whether `issuer_der` issued `leaf_der`: its subject is the leaf's
/// issuer and its key verifies the leaf's signature.
fn signed_by(leaf_der: &[u8], issuer_der: &[u8]) -> bool {
    let (Ok(leaf), Ok(issuer)) = (parse_cert(leaf_der), parse_cert(issuer_der)) else {
        return false;
    };
    leaf.issuer().as_raw() == issuer.subject().as_raw() && leaf.verify_signature(Some(issuer.public_key())).is_ok()
}

/// The index of the first of `cas` that issued `leaf_der`.
fn find_issuer(leaf_der: &[u8], cas: &[Vec<u8>]) -> Option<usize> {
    cas.iter().position(|ca| signed_by(leaf_der, ca))
}

fn subjects(cas: &[CertInfo]) -> String {
    let names: Vec<&str> = cas.iter().map(|c| c.subject.as_str()).collect();
    names.join("; ")
}

fn validity(report: &mut Report, check: &'static str, info: &CertInfo, now: i64) {
    let (ok, detail) = if now < info.not_before {
        (
            false,
            format!("{} is not valid until {}", info.subject, format_time(info.not_before)),
        )
    } else if now > info.not_after {
        (
            false,
            format!("{} expired on {}", info.subject, format_time(info.not_after)),
        )
    } else {
        (
            true,
            format!("{} valid until {}", info.subject, format_time(info.not_after)),
        )
    };
    report.push(ok, check, detail);
}

/// What both kinds of leaf bundle have in common.
struct Leaf<'a> {
    role: &'static str,
    info: &'a CertInfo,
    cas: &'a [CertInfo],
    cert_der: Result<Vec<u8>>,
    key_der: Result<Vec<u8>>,
    ca_ders: Result<Vec<Vec<u8>>>,
}

/// The checks every bundle gets: dates, usage, key, signature. Returns
/// the leaf's and the CA certificates' DER when they could be decoded.
fn common(
    report: &mut Report,
    leaf: Leaf<'_>,
    usage_ok: bool,
    usage: &str,
    now: i64,
) -> Option<(Vec<u8>, Vec<Vec<u8>>)> {
    validity(report, "validity", leaf.info, now);
    for ca in leaf.cas {
        validity(report, "CA validity", ca, now);
    }
    report.push(
        usage_ok,
        "key usage",
        if usage_ok {
            format!("extended key usage allows {usage}")
        } else {
            format!(
                "extended key usage does not allow {usage}: this is not a {} certificate",
                leaf.role
            )
        },
    );
    let (cert_der, ca_ders) = match (leaf.cert_der, leaf.ca_ders) {
        (Ok(cert), Ok(cas)) => (cert, cas),
        (Err(e), _) | (_, Err(e)) => {
            report.push(false, "decode", e.to_string());
            return None;
        }
    };
    match leaf.key_der.and_then(|key| key_matches(&cert_der, &key)) {
        Ok(true) => report.push(true, "key match", "the private key belongs to the certificate"),
        Ok(false) => report.push(
            false,
            "key match",
            format!(
                "the private key belongs to another certificate, not {}",
                leaf.info.subject
            ),
        ),
        Err(e) => report.push(false, "key match", e.to_string()),
    }
    match find_issuer(&cert_der, &ca_ders) {
        Some(i) => report.push(
            true,
            "signature",
            format!(
                "signed by {}",
                leaf.cas.get(i).map_or("a bundle CA", |c| c.subject.as_str())
            ),
        ),
        None => report.push(
            false,
            "signature",
            format!(
                "issued by {} but not signed by the bundle's CA certificate(s): {}",
                leaf.info.issuer,
                subjects(leaf.cas)
            ),
        ),
    }
    Some((cert_der, ca_ders))
}

/// Checks a server bundle; with `ca`, also that the bundle was issued by
/// that CA and carries its storage key. `now` is UNIX seconds.
pub fn verify_server(bundle: &ServerBundle, ca: Option<&CaBundle>, now: i64) -> Report {
    let mut report = Report::default();
    let leaf = Leaf {
        role: "server",
        info: &bundle.leaf,
        cas: &bundle.cas,
        cert_der: bundle.cert_der(),
        key_der: bundle.key_der(),
        ca_ders: bundle.ca_ders(),
    };
    let decoded = common(
        &mut report,
        leaf,
        bundle.leaf.server_auth,
        "TLS server authentication (serverAuth)",
        now,
    );
    let Some(ca) = ca else {
        return report;
    };
    match (decoded, ca.cert_der()) {
        (Some((cert_der, ca_ders)), Ok(ca_der)) => {
            let listed = ca_ders.contains(&ca_der);
            let signed = signed_by(&cert_der, &ca_der);
            let detail = match (listed, signed) {
                (true, true) => format!("issued by {} and trusts it for clients", ca.info.subject),
                (true, false) => format!(
                    "the bundle trusts {} but its certificate was issued by {}",
                    ca.info.subject, bundle.leaf.issuer
                ),
                (false, _) => format!(
                    "the bundle's CA certificate(s) ({}) are not the given CA {} (serial {})",
                    subjects(&bundle.cas),
                    ca.info.subject,
                    ca.info.serial
                ),
            };
            report.push(listed && signed, "issuer match", detail);
        }
        (_, Err(e)) => report.push(false, "issuer match", e.to_string()),
        (None, _) => report.push(false, "issuer match", "the server bundle could not be decoded"),
    }
    let (ok, detail) = match (&ca.storage_key, &bundle.storage_key) {
        (None, None) => (true, "neither bundle has one (the store is not encrypted at rest)"),
        (Some(a), Some(b)) if a == b => (true, "same as the CA bundle's"),
        (Some(_), Some(_)) => (
            false,
            "differs from the CA bundle's: the store would not open with one of them",
        ),
        (Some(_), None) => (false, "the CA bundle has one but the server bundle does not"),
        (None, Some(_)) => (false, "the server bundle has one but the CA bundle does not"),
    };
    report.push(ok, "storage key", detail);
    report
}

/// Checks a client bundle and its namespace claims; with `server`, also
/// that the server would accept it (trusted issuer, serial not revoked)
/// and that the client would accept the server. `now` is UNIX seconds.
pub fn verify_client(bundle: &ClientBundle, server: Option<&ServerBundle>, now: i64) -> Report {
    let mut report = Report::default();
    let leaf = Leaf {
        role: "client",
        info: &bundle.leaf,
        cas: &bundle.cas,
        cert_der: bundle.cert_der(),
        key_der: bundle.key_der(),
        ca_ders: bundle.ca_ders(),
    };
    let decoded = common(
        &mut report,
        leaf,
        bundle.leaf.client_auth,
        "TLS client authentication (clientAuth)",
        now,
    );
    match bundle.leaf.claims() {
        Ok(claims) if claims.is_empty() => report.push(true, "claims", "none: every namespace is refused"),
        Ok(claims) => report.push(true, "claims", claims.to_string()),
        Err(e) => report.push(false, "claims", format!("{e}: the server refuses this certificate")),
    }
    let Some(server) = server else {
        return report;
    };
    match (decoded, server.ca_ders(), server.cert_der()) {
        (Some((cert_der, ca_ders)), Ok(server_cas), Ok(server_cert)) => {
            let (ok, detail) = match find_issuer(&cert_der, &server_cas) {
                Some(i) => {
                    let name = server.cas.get(i).map_or("a server CA", |c| c.subject.as_str());
                    (true, format!("signed by {name}, which the server trusts"))
                }
                None => (
                    false,
                    format!(
                        "issued by {}, which is not among the server's CA certificate(s): {}",
                        bundle.leaf.issuer,
                        subjects(&server.cas)
                    ),
                ),
            };
            report.push(ok, "issuer match", detail);
            let (ok, detail) = match find_issuer(&server_cert, &ca_ders) {
                Some(_) => (
                    true,
                    format!(
                        "the server certificate {} chains to this bundle's CA",
                        server.leaf.subject
                    ),
                ),
                None => (
                    false,
                    format!(
                        "the server certificate (issued by {}) does not chain to this bundle's CA certificate(s): {}",
                        server.leaf.issuer,
                        subjects(&bundle.cas)
                    ),
                ),
            };
            report.push(ok, "server trust", detail);
        }
        (None, ..) => report.push(false, "issuer match", "the client bundle could not be decoded"),
        (_, Err(e), _) | (_, _, Err(e)) => report.push(false, "issuer match", e.to_string()),
    }
    let revoked = server.denylist.contains(&bundle.leaf.serial);
    report.push(
        !revoked,
        "denylist",
        if revoked {
            format!("serial {} is revoked in the server bundle", bundle.leaf.serial)
        } else {
            format!("serial {} is not revoked", bundle.leaf.serial)
        },
    );
    report
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::bundle::{CERTIFICATE_LABEL, PRIVATE_KEY_LABEL};
    use crate::cert::unix_now;
    use crate::claims::Claims;
    use crate::issue::{self, Validity};
    use crate::pem;

    fn year() -> Validity {
        Validity::for_duration(Duration::from_secs(365 * 86400))
    }

    fn admin() -> Claims {
        let mut claims = Claims::none();
        claims.parse_flag("ALL=rw").expect("claims");
        claims
    }

    fn failed(report: &Report) -> Vec<&'static str> {
        report.failures().map(|f| f.check).collect()
    }

    #[test]
    fn a_good_set_passes() {
        let ca = issue::new_ca("ca", &year()).expect("ca");
        let server = issue::new_server(&ca, "srv", &[], &year()).expect("server");
        let client = issue::new_client(&ca, "cli", &admin(), &year()).expect("client");
        let now = unix_now();
        let s = verify_server(&server, Some(&ca), now);
        assert!(s.passed(), "{s}");
        assert!(s.findings.iter().any(|f| f.check == "issuer match"), "{s}");
        let c = verify_client(&client, Some(&server), now);
        assert!(c.passed(), "{c}");
        assert!(c.to_string().contains("ok   claims: ALL=rw"), "{c}");
        for check in [
            "validity",
            "key usage",
            "key match",
            "signature",
            "issuer match",
            "server trust",
            "denylist",
        ] {
            assert!(c.findings.iter().any(|f| f.check == check), "{check} missing:\n{c}");
        }
        // Without the other side only the bundle's own checks run.
        assert!(!verify_client(&client, None, now)
            .findings
            .iter()
            .any(|f| f.check == "denylist"));
    }

    #[test]
    fn a_client_from_another_ca_fails_issuer_match() {
        let ca = issue::new_ca("ca", &year()).expect("ca");
        let other = issue::new_ca("ca", &year()).expect("other ca with the same name");
        let server = issue::new_server(&ca, "srv", &[], &year()).expect("server");
        let client = issue::new_client(&other, "cli", &admin(), &year()).expect("client");
        let report = verify_client(&client, Some(&server), unix_now());
        assert_eq!(failed(&report), vec!["issuer match", "server trust"], "{report}");
        let report = verify_server(&server, Some(&other), unix_now());
        assert_eq!(failed(&report), vec!["issuer match", "storage key"], "{report}");
        let shown = report.to_string();
        assert!(shown.lines().any(|l| l.starts_with("FAIL issuer match: ")), "{shown}");
    }

    #[test]
    fn the_wrong_extended_key_usage_fails() {
        let ca = issue::new_ca("ca", &year()).expect("ca");
        let ca_key = KeyPair::try_from(ca.key_der().expect("der").as_slice()).expect("ca key");
        let ca_der = ca.cert_der().expect("ca der");
        let issuer = rcgen::Issuer::from_ca_cert_der(&ca_der.as_slice().into(), ca_key).expect("issuer");
        let key = KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("params");
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &issuer).expect("signed");
        let text = format!(
            "{}{}{}",
            ca.cert_pem,
            pem::encode(CERTIFICATE_LABEL, cert.der()),
            pem::encode(PRIVATE_KEY_LABEL, key.serialized_der())
        );
        let client = ClientBundle::parse(&text, "client").expect("parses");
        let report = verify_client(&client, None, unix_now());
        assert_eq!(failed(&report), vec!["key usage"], "{report}");

        // And a client certificate is no server certificate.
        let real_client = issue::new_client(&ca, "cli", &admin(), &year()).expect("client");
        let as_server = ServerBundle::parse(&real_client.to_pem(), "server").expect("parses");
        assert_eq!(failed(&verify_server(&as_server, None, unix_now())), vec!["key usage"]);
    }

    #[test]
    fn expired_and_future_certificates_fail_with_dates() {
        let ca = issue::new_ca("ca", &year()).expect("ca");
        let day = Duration::from_secs(86400);
        let past = Validity {
            not_before: SystemTime::now() - 10 * day,
            not_after: SystemTime::now() - day,
        };
        let client = issue::new_client(&ca, "old", &admin(), &past).expect("client");
        let report = verify_client(&client, None, unix_now());
        assert_eq!(failed(&report), vec!["validity"], "{report}");
        let expected = format_time(client.leaf.not_after);
        assert!(
            report.to_string().contains(&format!("expired on {expected}")),
            "{report}"
        );

        let server = issue::new_server(&ca, "srv", &[], &year()).expect("server");
        let before = server.leaf.not_before - 1;
        let report = verify_server(&server, None, before);
        assert!(failed(&report).contains(&"validity"), "{report}");
        assert!(report.to_string().contains("not valid until"), "{report}");
        // Ten years on, the CA has expired as well.
        let later = verify_server(&server, Some(&ca), unix_now() + 10 * 365 * 86400);
        assert_eq!(failed(&later), vec!["validity", "CA validity"], "{later}");
    }

    #[test]
    fn a_revoked_serial_fails() {
        let ca = issue::new_ca("ca", &year()).expect("ca");
        let mut server = issue::new_server(&ca, "srv", &[], &year()).expect("server");
        let client = issue::new_client(&ca, "cli", &admin(), &year()).expect("client");
        server.denylist.insert(client.leaf.serial.clone());
        let report = verify_client(&client, Some(&server), unix_now());
        assert_eq!(failed(&report), vec!["denylist"], "{report}");
        assert!(report.to_string().contains(&client.leaf.serial));
    }

    #[test]
    fn a_key_from_another_bundle_fails() {
        let ca = issue::new_ca("ca", &year()).expect("ca");
        let mut client = issue::new_client(&ca, "a", &admin(), &year()).expect("a");
        let other = issue::new_client(&ca, "b", &admin(), &year()).expect("b");
        client.key_pem = other.key_pem.clone();
        assert_eq!(failed(&verify_client(&client, None, unix_now())), vec!["key match"]);
        let mut server = issue::new_server(&ca, "srv", &[], &year()).expect("server");
        server.key_pem = ca.key_pem.clone();
        assert_eq!(
            failed(&verify_server(&server, Some(&ca), unix_now())),
            vec!["key match"]
        );
        assert!(!key_matches(&other.cert_der().expect("der"), &ca.key_der().expect("der")).expect("readable"));
        assert!(key_matches(&other.cert_der().expect("der"), &other.key_der().expect("der")).expect("readable"));
        assert!(key_matches(&other.cert_der().expect("der"), b"junk").is_err());
    }

    #[test]
    fn formats_dates() {
        assert_eq!(format_time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_time(1_700_000_000), "2023-11-14 22:13:20 UTC");
    }
}
