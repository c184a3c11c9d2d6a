//! What a certificate says, in the terms lockd cares about.
//!
//! The TLS stack has already checked the chain when the server looks at a
//! client certificate; what is left is identity (who, for the lease owner
//! suffix), serial (for the denylist) and claims (for authorisation). The
//! `lockd auth inspect|verify` commands want the same fields plus
//! validity, usages and names, so one parsed form serves both.

use std::net::IpAddr;

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::claims::Claims;
use crate::{serial, AuthError, Result};

/// The fields of one X.509 certificate that lockd uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// Subject distinguished name (`CN=worker-1, O=lockd`).
    pub subject: String,
    /// Subject common name, if any.
    pub common_name: Option<String>,
    /// Issuer distinguished name.
    pub issuer: String,
    /// Serial in canonical hex ([`serial::from_bytes`]).
    pub serial: String,
    /// Start of validity, UNIX seconds.
    pub not_before: i64,
    /// End of validity, UNIX seconds.
    pub not_after: i64,
    /// Basic constraints say CA.
    pub is_ca: bool,
    /// Extended key usage allows TLS server authentication.
    pub server_auth: bool,
    /// Extended key usage allows TLS client authentication.
    pub client_auth: bool,
    /// DNS subject alternative names.
    pub dns_names: Vec<String>,
    /// IP subject alternative names.
    pub ip_addresses: Vec<IpAddr>,
    /// URI subject alternative names (namespace claims, SPIFFE id).
    pub uris: Vec<String>,
}

fn cert_error(e: impl std::fmt::Display) -> AuthError {
    AuthError::Certificate(e.to_string())
}

impl CertInfo {
    /// Parses a DER certificate.
    pub fn from_der(der: &[u8]) -> Result<CertInfo> {
        let (_, cert) = X509Certificate::from_der(der).map_err(cert_error)?;
        Self::from_parsed(&cert)
    }

    pub(crate) fn from_parsed(cert: &X509Certificate<'_>) -> Result<CertInfo> {
        let common_name = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_string);
        let (server_auth, client_auth) = match cert.extended_key_usage().map_err(cert_error)? {
            Some(eku) => (
                eku.value.server_auth || eku.value.any,
                eku.value.client_auth || eku.value.any,
            ),
            // No EKU extension means no restriction (RFC 5280 §4.2.1.12).
            None => (true, true),
        };
        let mut info = CertInfo {
            subject: cert.subject().to_string(),
            common_name,
            issuer: cert.issuer().to_string(),
            serial: serial::from_bytes(cert.raw_serial()),
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
            is_ca: cert.is_ca(),
            server_auth,
            client_auth,
            dns_names: Vec::new(),
            ip_addresses: Vec::new(),
            uris: Vec::new(),
        };
        if let Some(san) = cert.subject_alternative_name().map_err(cert_error)? {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(d) => info.dns_names.push((*d).to_string()),
                    GeneralName::URI(u) => info.uris.push((*u).to_string()),
                    GeneralName::IPAddress(bytes) => {
                        if let Ok(octets) = <[u8; 4]>::try_from(*bytes) {
                            info.ip_addresses.push(IpAddr::from(octets));
                        } else if let Ok(octets) = <[u8; 16]>::try_from(*bytes) {
                            info.ip_addresses.push(IpAddr::from(octets));
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(info)
    }

    /// The namespace claims among the URI SANs.
    pub fn claims(&self) -> Result<Claims> {
        Claims::from_uris(self.uris.iter().map(String::as_str))
    }

    /// Who this certificate is, as lockd appends it to a lease owner:
    /// `<subject>#<serial>`, the subject being the common name when there
    /// is one (the full DN otherwise).
    pub fn identity(&self) -> String {
        let who = self.common_name.as_deref().unwrap_or(&self.subject);
        format!("{who}#{}", self.serial)
    }

    /// Whether `now` (UNIX seconds) lies within the validity period.
    pub fn valid_at(&self, now: i64) -> bool {
        self.not_before <= now && now <= self.not_after
    }
}

/// Seconds since the UNIX epoch now (0 if the clock is before 1970).
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_identity_names_and_claims() {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(vec!["db.internal".to_string()]).expect("params");
        params.distinguished_name.push(rcgen::DnType::CommonName, "worker-1");
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&[0x00, 0xab, 0xcd]));
        params.subject_alt_names.push(rcgen::SanType::URI(
            "lockd://ns/orders?perm=rw".try_into().expect("ia5"),
        ));
        params
            .subject_alt_names
            .push(rcgen::SanType::IpAddress("127.0.0.1".parse().expect("ip")));
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.self_signed(&key).expect("cert");
        let info = CertInfo::from_der(cert.der()).expect("parses");
        assert_eq!(info.common_name.as_deref(), Some("worker-1"));
        assert_eq!(info.serial, "abcd");
        assert_eq!(info.identity(), "worker-1#abcd");
        assert!(info.client_auth && !info.server_auth && !info.is_ca);
        assert_eq!(info.dns_names, vec!["db.internal".to_string()]);
        assert_eq!(info.ip_addresses, vec!["127.0.0.1".parse::<IpAddr>().expect("ip")]);
        assert!(info
            .claims()
            .expect("claims")
            .allows("orders", crate::claims::Access::Write));
        assert!(info.valid_at(unix_now()));
        assert!(!info.valid_at(info.not_after + 1));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(CertInfo::from_der(b"").is_err());
        assert!(CertInfo::from_der(&[0x30, 0x82, 0xff, 0xff, 0x00]).is_err());
    }
}
