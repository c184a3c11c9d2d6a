//! Minting a CA and the server and client certificates it signs.
//!
//! Everything lockd issues uses ECDSA P-256 keys (small, fast, accepted by
//! every TLS stack lockd talks to), random full-length serials, the common
//! name as the only subject attribute, and the extensions rustls/webpki
//! insist on (basic constraints, key usage, extended key usage, subject
//! alternative names). The CA is limited to path length 0: it signs leaves
//! only, so a leaked leaf key can never mint further identities.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType, SerialNumber,
};
use time::OffsetDateTime;

use crate::bundle::{CaBundle, ClientBundle, ServerBundle, CERTIFICATE_LABEL, PRIVATE_KEY_LABEL, STORAGE_KEY_LEN};
use crate::cert::CertInfo;
use crate::claims::Claims;
use crate::{pem, verify, AuthError, Result};

/// How far back `not_before` is set, so a peer whose clock is somewhat
/// behind ours still accepts a certificate issued a moment ago.
pub const CLOCK_SKEW: Duration = Duration::from_secs(3600);

/// Prefix of the SPIFFE-style identity URI every client certificate carries.
pub const CLIENT_ID_PREFIX: &str = "spiffe://lockd/client/";

/// The hosts a server certificate names when none are given: `*` for
/// clients that match names loosely, and the loopback names that the
/// TLS stacks we know do match.
pub const DEFAULT_HOSTS: [&str; 4] = ["*", "localhost", "127.0.0.1", "::1"];

/// The latest instant X.509 can express (GeneralizedTime 99991231235959Z).
const MAX_X509_UNIX: i64 = 253_402_300_799;

/// When a certificate is valid. Plain `SystemTime`s so callers (and tests
/// wanting expired certificates) can set any period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    /// First instant the certificate is valid.
    pub not_before: SystemTime,
    /// Last instant the certificate is valid.
    pub not_after: SystemTime,
}

impl Validity {
    /// Valid from an hour ago ([`CLOCK_SKEW`]) until `d` from now. A `d`
    /// too large for the clock ends at the latest date X.509 can express.
    pub fn for_duration(d: Duration) -> Validity {
        let now = SystemTime::now();
        let latest = SystemTime::UNIX_EPOCH + Duration::from_secs(MAX_X509_UNIX.unsigned_abs());
        Validity {
            not_before: now.checked_sub(CLOCK_SKEW).unwrap_or(SystemTime::UNIX_EPOCH),
            not_after: now.checked_add(d).map_or(latest, |t| t.min(latest)),
        }
    }

    /// Writes the period into `params`, in whole seconds (X.509 has no
    /// finer resolution) and within what X.509 can express.
    fn apply(&self, params: &mut CertificateParams) -> Result<()> {
        let secs = |t: SystemTime| -> i64 {
            match t.duration_since(SystemTime::UNIX_EPOCH) {
                Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX).min(MAX_X509_UNIX),
                Err(_) => 0,
            }
        };
        let (start, end) = (secs(self.not_before), secs(self.not_after));
        if end <= start {
            return Err(AuthError::Generate("validity ends before it starts".into()));
        }
        let at = |s: i64| OffsetDateTime::from_unix_timestamp(s).map_err(|e| AuthError::Generate(e.to_string()));
        params.not_before = at(start)?;
        params.not_after = at(end)?;
        Ok(())
    }
}

fn gen_error(e: impl std::fmt::Display) -> AuthError {
    AuthError::Generate(e.to_string())
}

fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| AuthError::Generate(format!("no randomness: {e}")))?;
    Ok(bytes)
}

/// A fresh serial: 16 random bytes, positive (top bit clear) and with a
/// non-zero first byte, so its DER encoding is always the full 16 bytes
/// and it never collides in practice.
fn random_serial() -> Result<SerialNumber> {
    loop {
        let mut bytes = random_bytes::<16>()?;
        bytes[0] &= 0x7f;
        if bytes[0] != 0 {
            return Ok(SerialNumber::from_slice(&bytes));
        }
    }
}

/// Parameters shared by everything we issue: subject CN, serial, validity.
fn base_params(cn: &str, validity: &Validity) -> Result<CertificateParams> {
    if cn.trim().is_empty() {
        return Err(AuthError::Generate("the common name must not be empty".into()));
    }
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    params.serial_number = Some(random_serial()?);
    validity.apply(&mut params)?;
    Ok(params)
}

/// Parameters for a leaf: not a CA, names its issuer's key.
fn leaf_params(cn: &str, validity: &Validity) -> Result<CertificateParams> {
    let mut params = base_params(cn, validity)?;
    params.is_ca = IsCa::ExplicitNoCa;
    params.use_authority_key_identifier_extension = true;
    Ok(params)
}

/// What signing needs from a CA bundle, checked: an rcgen issuer built
/// from the CA certificate and key, and the CA certificate's DER.
fn issuer(ca: &CaBundle) -> Result<(Issuer<'static, KeyPair>, Vec<u8>)> {
    let cert_der = ca.cert_der()?;
    let key_der = ca.key_der()?;
    let what = format!("CA {}", ca.info.subject);
    if !verify::key_matches(&cert_der, &key_der)? {
        return Err(AuthError::bundle(
            what,
            "the private key does not belong to the CA certificate",
        ));
    }
    // rcgen copies the subject attribute by attribute and panics on an
    // empty attribute set; such a name is invalid X.509 anyway.
    let (_, parsed) =
        x509_parser::parse_x509_certificate(&cert_der).map_err(|e| AuthError::Certificate(e.to_string()))?;
    if !parsed.is_ca() {
        return Err(AuthError::bundle(what, "certificate is not a CA"));
    }
    if parsed.subject().iter().any(|rdn| rdn.iter().count() != 1) {
        return Err(AuthError::bundle(
            what,
            "subject has a multi-valued or empty name component, which lockd cannot sign under",
        ));
    }
    let key =
        KeyPair::try_from(key_der.as_slice()).map_err(|e| AuthError::bundle(&what, format!("private key: {e}")))?;
    let issuer = Issuer::from_ca_cert_der(&cert_der.as_slice().into(), key)
        .map_err(|e| AuthError::bundle(&what, format!("cannot sign with it: {e}")))?;
    Ok((issuer, cert_der))
}

/// Signs `params` with a fresh key; returns the certificate and key PEM
/// and what the certificate says.
fn sign_leaf(params: &CertificateParams, issuer: &Issuer<'_, KeyPair>) -> Result<(String, String, CertInfo)> {
    let key = KeyPair::generate().map_err(gen_error)?;
    let cert = params.signed_by(&key, issuer).map_err(gen_error)?;
    let info = CertInfo::from_der(cert.der())?;
    Ok((
        pem::encode(CERTIFICATE_LABEL, cert.der()),
        pem::encode(PRIVATE_KEY_LABEL, key.serialized_der()),
        info,
    ))
}

/// A new self-signed CA that signs certificates and CRLs only, with a
/// fresh random storage key for the servers it will issue.
pub fn new_ca(cn: &str, validity: &Validity) -> Result<CaBundle> {
    let mut params = base_params(cn, validity)?;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let key = KeyPair::generate().map_err(gen_error)?;
    let cert = params.self_signed(&key).map_err(gen_error)?;
    Ok(CaBundle {
        cert_pem: pem::encode(CERTIFICATE_LABEL, cert.der()),
        key_pem: pem::encode(PRIVATE_KEY_LABEL, key.serialized_der()),
        storage_key: Some(random_bytes::<STORAGE_KEY_LEN>()?),
        info: CertInfo::from_der(cert.der())?,
    })
}

/// The subject alternative name for one `--host` value: an IP address
/// if it parses as one, a DNS name otherwise.
fn host_san(host: &str) -> Result<SanType> {
    let host = host.trim();
    if host.is_empty() {
        return Err(AuthError::Generate("empty host name".into()));
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    let bad = |why: &str| AuthError::Generate(format!("host {host:?} {why}"));
    if host.chars().any(|c| c.is_whitespace() || c == '/' || c == ':') {
        return Err(bad("is neither an IP address nor a DNS name"));
    }
    let name = host
        .try_into()
        .map_err(|_| bad("is not ASCII (write internationalised names in punycode)"))?;
    Ok(SanType::DnsName(name))
}

/// A server certificate for `hosts` (or [`DEFAULT_HOSTS`] when empty),
/// signed by `ca`, bundled with the CA certificate and the CA's storage
/// key, with an empty denylist.
pub fn new_server(ca: &CaBundle, cn: &str, hosts: &[String], validity: &Validity) -> Result<ServerBundle> {
    let (issuer, ca_der) = issuer(ca)?;
    let mut params = leaf_params(cn, validity)?;
    params.subject_alt_names = if hosts.is_empty() {
        DEFAULT_HOSTS.iter().map(|h| host_san(h)).collect::<Result<_>>()?
    } else {
        hosts.iter().map(|h| host_san(h)).collect::<Result<_>>()?
    };
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let (cert_pem, key_pem, leaf) = sign_leaf(&params, &issuer)?;
    Ok(ServerBundle {
        ca_certs_pem: pem::encode(CERTIFICATE_LABEL, &ca_der),
        cert_pem,
        key_pem,
        storage_key: ca.storage_key,
        denylist: Default::default(),
        leaf,
        cas: vec![CertInfo::from_der(&ca_der)?],
    })
}

/// Percent-encodes everything but RFC 3986 unreserved characters, so any
/// common name fits in the identity URI.
fn uri_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The identity URI a client certificate for `cn` carries.
pub fn client_id_uri(cn: &str) -> String {
    format!("{CLIENT_ID_PREFIX}{}", uri_escape(cn))
}

/// A client certificate for `cn` carrying `claims` as URI SANs (plus its
/// [`client_id_uri`]), signed by `ca` and bundled with the CA certificate.
pub fn new_client(ca: &CaBundle, cn: &str, claims: &Claims, validity: &Validity) -> Result<ClientBundle> {
    let (issuer, ca_der) = issuer(ca)?;
    let mut params = leaf_params(cn, validity)?;
    let mut uris = claims.to_uris();
    uris.push(client_id_uri(cn));
    for uri in uris {
        let ia5 = uri
            .as_str()
            .try_into()
            .map_err(|_| AuthError::Generate(format!("URI {uri:?} is not ASCII")))?;
        params.subject_alt_names.push(SanType::URI(ia5));
    }
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let (cert_pem, key_pem, leaf) = sign_leaf(&params, &issuer)?;
    Ok(ClientBundle {
        ca_certs_pem: pem::encode(CERTIFICATE_LABEL, &ca_der),
        cert_pem,
        key_pem,
        leaf,
        cas: vec![CertInfo::from_der(&ca_der)?],
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rustls::client::danger::ServerCertVerifier;
    use rustls::client::WebPkiServerVerifier;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::server::WebPkiClientVerifier;
    use rustls::RootCertStore;

    use super::*;
    use crate::claims::Access;

    fn year() -> Validity {
        Validity::for_duration(Duration::from_secs(365 * 86400))
    }

    fn roots(ca: &CaBundle) -> Arc<RootCertStore> {
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from(ca.cert_der().expect("ca der")))
            .expect("root");
        Arc::new(roots)
    }

    fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    fn server_verifier(ca: &CaBundle) -> Arc<WebPkiServerVerifier> {
        WebPkiServerVerifier::builder_with_provider(roots(ca), provider())
            .build()
            .expect("server verifier")
    }

    fn check_server(ca: &CaBundle, server: &ServerBundle, name: &str) -> std::result::Result<(), rustls::Error> {
        let leaf = CertificateDer::from(server.cert_der().expect("der"));
        let name = ServerName::try_from(name.to_string()).expect("server name");
        server_verifier(ca)
            .verify_server_cert(&leaf, &[], &name, &[], UnixTime::now())
            .map(|_| ())
    }

    fn check_client(ca: &CaBundle, der: Vec<u8>) -> std::result::Result<(), rustls::Error> {
        let verifier = WebPkiClientVerifier::builder_with_provider(roots(ca), provider())
            .build()
            .expect("client verifier");
        verifier
            .verify_client_cert(&CertificateDer::from(der), &[], UnixTime::now())
            .map(|_| ())
    }

    #[test]
    fn rustls_accepts_issued_certificates() {
        let ca = new_ca("lockd-ca", &year()).expect("ca");
        let server = new_server(&ca, "lockd-server", &[], &year()).expect("server");
        for name in ["localhost", "127.0.0.1", "::1"] {
            check_server(&ca, &server, name).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        let mut claims = Claims::none();
        claims.parse_flag("orders=rw").expect("claims");
        let client = new_client(&ca, "worker 1/é", &claims, &year()).expect("client");
        check_client(&ca, client.cert_der().expect("der")).expect("client accepted");

        // The verifiers are not merely accepting everything: usages, names
        // and issuers are enforced.
        assert!(
            check_client(&ca, server.cert_der().expect("der")).is_err(),
            "server cert as client"
        );
        assert!(
            check_server(&ca, &server, "db.example.com").is_err(),
            "bare * is no wildcard for webpki"
        );
        let other = new_ca("other-ca", &year()).expect("other ca");
        assert!(
            check_client(&other, client.cert_der().expect("der")).is_err(),
            "wrong CA"
        );
        let named = new_server(&ca, "srv", &["db.internal".into(), "10.0.0.7".into()], &year()).expect("named");
        check_server(&ca, &named, "db.internal").expect("dns name");
        check_server(&ca, &named, "10.0.0.7").expect("ip");
        assert!(
            check_server(&ca, &named, "localhost").is_err(),
            "explicit hosts replace the defaults"
        );
    }

    #[test]
    fn issued_fields_are_as_documented() {
        let ca = new_ca("lockd-ca", &year()).expect("ca");
        assert!(ca.info.is_ca);
        assert_eq!(ca.info.common_name.as_deref(), Some("lockd-ca"));
        assert_eq!(ca.info.subject, ca.info.issuer, "self-signed");
        let der = ca.cert_der().expect("der");
        let (_, parsed) = x509_parser::parse_x509_certificate(&der).expect("parses");
        let raw = parsed.raw_serial();
        assert_eq!(raw.len(), 16, "full-length serial: {raw:02x?}");
        assert!(raw[0] != 0 && raw[0] < 0x80, "positive, no padding byte: {raw:02x?}");

        let server = new_server(&ca, "lockd-server", &[], &year()).expect("server");
        assert_eq!(server.leaf.dns_names, vec!["*".to_string(), "localhost".to_string()]);
        assert_eq!(server.leaf.ip_addresses.len(), 2);
        assert!(server.leaf.server_auth && !server.leaf.client_auth && !server.leaf.is_ca);
        assert_eq!(server.storage_key, ca.storage_key);
        assert!(server.denylist.is_empty());
        assert_eq!(server.leaf.issuer, ca.info.subject);

        let mut claims = Claims::none();
        claims.parse_flag("ALL=r").expect("claims");
        let client = new_client(&ca, "a b", &claims, &year()).expect("client");
        assert!(client.leaf.client_auth && !client.leaf.server_auth);
        assert!(
            client.leaf.uris.contains(&"spiffe://lockd/client/a%20b".to_string()),
            "{:?}",
            client.leaf.uris
        );
        let read = client.leaf.claims().expect("claims");
        assert!(read.allows("anything", Access::Read) && !read.allows("anything", Access::Write));
        assert_ne!(client.leaf.serial, server.leaf.serial);

        let now = crate::cert::unix_now();
        assert!((now - 3600 - 5..=now - 3600 + 5).contains(&server.leaf.not_before));
        assert!((now + 365 * 86400 - 5..=now + 365 * 86400 + 5).contains(&server.leaf.not_after));
    }

    #[test]
    fn refuses_bad_input() {
        let ca = new_ca("ca", &year()).expect("ca");
        for host in ["", "bad host", "http://x", "bücher.example"] {
            assert!(new_server(&ca, "s", &[host.to_string()], &year()).is_err(), "{host:?}");
        }
        assert!(new_client(&ca, " ", &Claims::none(), &year()).is_err());
        let backwards = Validity {
            not_before: SystemTime::now(),
            not_after: SystemTime::now() - Duration::from_secs(60),
        };
        assert!(new_ca("ca", &backwards).is_err());

        // A CA bundle whose key is someone else's cannot sign.
        let other = new_ca("other", &year()).expect("other");
        let mut mixed = ca.clone();
        mixed.key_pem = other.key_pem.clone();
        let err = new_client(&mixed, "c", &Claims::none(), &year())
            .expect_err("mismatched key")
            .to_string();
        assert!(err.contains("does not belong"), "{err}");
    }

    #[test]
    fn huge_durations_are_clamped_not_panics() {
        let v = Validity::for_duration(Duration::MAX);
        let ca = new_ca("ca", &v).expect("ca");
        assert_eq!(ca.info.not_after, MAX_X509_UNIX);
    }
}
