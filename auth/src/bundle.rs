//! The three bundle files lockd keeps in `$HOME/.lockd/`.
//!
//! A bundle is a plain PEM file holding everything one party needs, so an
//! operator copies a single file per machine. Blocks may appear in any
//! order; certificates are told apart by basic constraints (CA or not),
//! not by position. Every file is written with mode 0600 because each
//! holds a private key.
//!
//! * `ca.pem`, the CA bundle:
//!   - one `CERTIFICATE`: the CA certificate (basic constraints CA=true);
//!   - one `PRIVATE KEY`: its key, PKCS#8;
//!   - optionally one `LOCKD STORAGE KEY`: exactly 32 random bytes, the
//!     root key for at-rest encryption of the store. It lives with the CA
//!     so that every server bundle issued from the CA can be given it.
//! * `server.pem` (or `server*.pem`), a server bundle:
//!   - one or more CA `CERTIFICATE`s: the roots client certificates must
//!     chain to (more than one while a CA is being rotated);
//!   - exactly one non-CA `CERTIFICATE`: the server's own (leaf);
//!   - one `PRIVATE KEY`: the leaf's key, PKCS#8;
//!   - optionally one `LOCKD STORAGE KEY`, a copy of the CA bundle's;
//!   - optionally one `LOCKD DENYLIST`: UTF-8 text, one revoked client
//!     serial per line. Blank lines are skipped; any spelling that
//!     [`crate::serial::normalize`] accepts is read, and the canonical
//!     spelling is written back.
//! * `client.pem` (or `client*.pem`), a client bundle:
//!   - one or more CA `CERTIFICATE`s: the roots the server certificate
//!     must chain to;
//!   - exactly one non-CA `CERTIFICATE`: the client's own;
//!   - one `PRIVATE KEY`: the leaf's key, PKCS#8.
//!
//! Any other block is an error, and so is a storage key or denylist in a
//! client bundle: a client bundle is handed to other people, and a
//! storage key that turns up in one is a leak we would rather refuse to
//! read than quietly accept.

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;

use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::cert::CertInfo;
use crate::pem::{self, Block};
use crate::{serial, AuthError, Result};

/// Label of the block holding the 32-byte at-rest encryption root key.
pub const STORAGE_KEY_LABEL: &str = "LOCKD STORAGE KEY";
/// Label of the block listing revoked client serials.
pub const DENYLIST_LABEL: &str = "LOCKD DENYLIST";
/// Label of certificate blocks (RFC 7468).
pub const CERTIFICATE_LABEL: &str = "CERTIFICATE";
/// Label of PKCS#8 private key blocks (RFC 7468).
pub const PRIVATE_KEY_LABEL: &str = "PRIVATE KEY";

/// Length of the storage key in bytes.
pub const STORAGE_KEY_LEN: usize = 32;

/// Labels of other private key encodings, refused with a hint rather than
/// as an unknown block, since converting them is a one-liner.
const OTHER_KEY_LABELS: [&str; 3] = ["RSA PRIVATE KEY", "EC PRIVATE KEY", "ENCRYPTED PRIVATE KEY"];

/// One certificate block, decoded and parsed.
struct Cert {
    der: Vec<u8>,
    info: CertInfo,
}

/// The blocks of a bundle sorted by meaning.
#[derive(Default)]
struct Sorted {
    certs: Vec<Cert>,
    keys: Vec<Vec<u8>>,
    storage_keys: Vec<Vec<u8>>,
    denylists: Vec<Vec<u8>>,
}

fn read_file(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| AuthError::io("read", path, e))
}

/// Parses `text` and files each block under what it is.
fn sort_blocks(text: &str, what: &str) -> Result<Sorted> {
    let mut sorted = Sorted::default();
    for (n, Block { label, contents }) in pem::parse(text, what)?.into_iter().enumerate() {
        match label.as_str() {
            CERTIFICATE_LABEL => {
                let info = CertInfo::from_der(&contents)
                    .map_err(|e| AuthError::bundle(what, format!("block {}: {e}", n + 1)))?;
                sorted.certs.push(Cert { der: contents, info });
            }
            PRIVATE_KEY_LABEL => sorted.keys.push(contents),
            STORAGE_KEY_LABEL => sorted.storage_keys.push(contents),
            DENYLIST_LABEL => sorted.denylists.push(contents),
            other if OTHER_KEY_LABELS.contains(&other) => {
                return Err(AuthError::bundle(
                    what,
                    format!(
                        "the private key is a {other} block; lockd reads unencrypted PKCS#8 (PRIVATE KEY) \
                         keys (convert with `openssl pkcs8 -topk8 -nocrypt`)"
                    ),
                ))
            }
            other => return Err(AuthError::bundle(what, format!("unexpected {other} block"))),
        }
    }
    Ok(sorted)
}

impl Sorted {
    /// The single private key.
    fn one_key(&mut self, what: &str) -> Result<Vec<u8>> {
        match self.keys.len() {
            0 => Err(AuthError::bundle(what, "no private key (PRIVATE KEY block)")),
            1 => Ok(self.keys.remove(0)),
            n => Err(AuthError::bundle(what, format!("{n} private keys; expected one"))),
        }
    }

    /// The optional storage key, checked for length.
    fn storage_key(&mut self, what: &str) -> Result<Option<[u8; STORAGE_KEY_LEN]>> {
        match self.storage_keys.len() {
            0 => Ok(None),
            1 => {
                let bytes = self.storage_keys.remove(0);
                let key = <[u8; STORAGE_KEY_LEN]>::try_from(bytes.as_slice()).map_err(|_| {
                    AuthError::bundle(
                        what,
                        format!("storage key must be {STORAGE_KEY_LEN} bytes, found {}", bytes.len()),
                    )
                })?;
                Ok(Some(key))
            }
            n => Err(AuthError::bundle(
                what,
                format!("{n} {STORAGE_KEY_LABEL} blocks; expected at most one"),
            )),
        }
    }

    /// Splits the certificates into the CA certificates and the single
    /// leaf; `role` names the leaf in messages (`server`, `client`).
    fn cas_and_leaf(&mut self, what: &str, role: &str) -> Result<(Vec<Cert>, Cert)> {
        let (cas, mut leaves): (Vec<Cert>, Vec<Cert>) = self.certs.drain(..).partition(|c| c.info.is_ca);
        if cas.is_empty() {
            return Err(AuthError::bundle(what, "no CA certificate"));
        }
        let leaf = match leaves.len() {
            0 => {
                return Err(AuthError::bundle(
                    what,
                    format!("no {role} certificate (only CA certificates)"),
                ))
            }
            1 => leaves.remove(0),
            n => {
                return Err(AuthError::bundle(
                    what,
                    format!("{n} non-CA certificates; expected exactly one {role} certificate"),
                ))
            }
        };
        Ok((cas, leaf))
    }

    /// Refuses blocks this kind of bundle must not carry.
    fn refuse_extras(&self, what: &str, kind: &str) -> Result<()> {
        if !self.storage_keys.is_empty() {
            return Err(AuthError::bundle(
                what,
                format!("a {kind} bundle must not carry the {STORAGE_KEY_LABEL}"),
            ));
        }
        if !self.denylists.is_empty() {
            return Err(AuthError::bundle(
                what,
                format!("a {kind} bundle has no {DENYLIST_LABEL}"),
            ));
        }
        Ok(())
    }
}

fn certs_pem(certs: &[Cert]) -> String {
    certs.iter().map(|c| pem::encode(CERTIFICATE_LABEL, &c.der)).collect()
}

/// Decodes the certificate blocks of a PEM string held in a bundle field.
fn decode_certs(text: &str, what: &str) -> Result<Vec<Vec<u8>>> {
    let mut ders = Vec::new();
    for block in pem::parse(text, what)? {
        if block.label != CERTIFICATE_LABEL {
            return Err(AuthError::bundle(what, format!("unexpected {} block", block.label)));
        }
        ders.push(block.contents);
    }
    Ok(ders)
}

/// Decodes a PEM string that must hold exactly one `label` block.
fn decode_one(text: &str, label: &str, what: &str) -> Result<Vec<u8>> {
    let mut blocks = pem::parse(text, what)?;
    match (blocks.len(), blocks.first()) {
        (1, Some(b)) if b.label == label => Ok(blocks.remove(0).contents),
        _ => Err(AuthError::bundle(what, format!("expected exactly one {label} block"))),
    }
}

/// Reads a denylist block: one serial per line, canonicalised.
fn parse_denylist(bytes: &[u8], what: &str) -> Result<BTreeSet<String>> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| AuthError::bundle(what, format!("{DENYLIST_LABEL} is not UTF-8 text")))?;
    let mut serials = BTreeSet::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let serial = serial::normalize(line)
            .map_err(|e| AuthError::bundle(what, format!("{DENYLIST_LABEL} line {}: {e}", index + 1)))?;
        serials.insert(serial);
    }
    Ok(serials)
}

/// The denylist as its block body: one canonical serial per line.
fn denylist_text(serials: &BTreeSet<String>) -> String {
    serials.iter().map(|s| format!("{s}\n")).collect()
}

/// Shows whether a storage key is present without showing it.
fn redacted(key: &Option<[u8; STORAGE_KEY_LEN]>) -> &'static str {
    if key.is_some() {
        "Some(<redacted>)"
    } else {
        "None"
    }
}

/// `ca.pem`: what `lockd auth new server|client` signs with.
///
/// `Debug` leaves out the private key and the storage key.
#[derive(Clone, PartialEq, Eq)]
pub struct CaBundle {
    /// The CA certificate as one PEM block.
    pub cert_pem: String,
    /// The CA private key as one PKCS#8 PEM block.
    pub key_pem: String,
    /// The root key for at-rest encryption, handed on to server bundles.
    pub storage_key: Option<[u8; STORAGE_KEY_LEN]>,
    /// What the CA certificate says.
    pub info: CertInfo,
}

impl fmt::Debug for CaBundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaBundle")
            .field("info", &self.info)
            .field("key_pem", &"<redacted>")
            .field("storage_key", &redacted(&self.storage_key))
            .finish_non_exhaustive()
    }
}

impl CaBundle {
    /// Reads a CA bundle from PEM text; `what` names it in errors.
    pub fn parse(text: &str, what: &str) -> Result<CaBundle> {
        let mut sorted = sort_blocks(text, what)?;
        if !sorted.denylists.is_empty() {
            return Err(AuthError::bundle(what, format!("a CA bundle has no {DENYLIST_LABEL}")));
        }
        let cert = match sorted.certs.len() {
            0 => return Err(AuthError::bundle(what, "no CA certificate")),
            1 => sorted.certs.remove(0),
            n => {
                return Err(AuthError::bundle(
                    what,
                    format!(
                    "{n} certificates; a CA bundle holds only the CA certificate (is this a server or client bundle?)"
                ),
                ))
            }
        };
        if !cert.info.is_ca {
            return Err(AuthError::bundle(
                what,
                format!(
                    "certificate {} is not a CA (basic constraints CA=false)",
                    cert.info.subject
                ),
            ));
        }
        let key = sorted.one_key(what)?;
        let storage_key = sorted.storage_key(what)?;
        Ok(CaBundle {
            cert_pem: pem::encode(CERTIFICATE_LABEL, &cert.der),
            key_pem: pem::encode(PRIVATE_KEY_LABEL, &key),
            storage_key,
            info: cert.info,
        })
    }

    /// Reads the CA bundle at `path`.
    pub fn load(path: &Path) -> Result<CaBundle> {
        Self::parse(&read_file(path)?, &format!("CA bundle {}", path.display()))
    }

    /// The bundle as file contents: certificate, key, then storage key.
    pub fn to_pem(&self) -> String {
        let mut out = format!("{}{}", self.cert_pem, self.key_pem);
        if let Some(key) = &self.storage_key {
            out.push_str(&pem::encode(STORAGE_KEY_LABEL, key));
        }
        out
    }

    /// The CA certificate's DER, decoded from `cert_pem` on each call
    /// (the fields are public, so the PEM is the one source of truth);
    /// fails only if `cert_pem` was edited into something invalid.
    pub fn cert_der(&self) -> Result<Vec<u8>> {
        decode_one(&self.cert_pem, CERTIFICATE_LABEL, "CA certificate")
    }

    /// The CA private key's PKCS#8 DER, for signing.
    pub fn key_der(&self) -> Result<Vec<u8>> {
        decode_one(&self.key_pem, PRIVATE_KEY_LABEL, "CA private key")
    }
}

/// `server.pem`: what a lockd server needs to serve mTLS and open its
/// store.
///
/// `Debug` leaves out the private key and the storage key.
#[derive(Clone, PartialEq, Eq)]
pub struct ServerBundle {
    /// The CA certificates, one PEM block each: roots for client certificates.
    pub ca_certs_pem: String,
    /// The server certificate as one PEM block.
    pub cert_pem: String,
    /// The server private key as one PKCS#8 PEM block.
    pub key_pem: String,
    /// The root key for at-rest encryption of the store, if the CA had one.
    pub storage_key: Option<[u8; STORAGE_KEY_LEN]>,
    /// Revoked client serials, canonical hex.
    pub denylist: BTreeSet<String>,
    /// What the server certificate says.
    pub leaf: CertInfo,
    /// What the CA certificates say, in `ca_certs_pem` order.
    pub cas: Vec<CertInfo>,
}

impl fmt::Debug for ServerBundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerBundle")
            .field("leaf", &self.leaf)
            .field("cas", &self.cas)
            .field("key_pem", &"<redacted>")
            .field("storage_key", &redacted(&self.storage_key))
            .field("denylist", &self.denylist)
            .finish_non_exhaustive()
    }
}

impl ServerBundle {
    /// Reads a server bundle from PEM text; `what` names it in errors.
    pub fn parse(text: &str, what: &str) -> Result<ServerBundle> {
        let mut sorted = sort_blocks(text, what)?;
        let (cas, leaf) = sorted.cas_and_leaf(what, "server")?;
        let key = sorted.one_key(what)?;
        let storage_key = sorted.storage_key(what)?;
        let denylist = match sorted.denylists.len() {
            0 => BTreeSet::new(),
            1 => parse_denylist(&sorted.denylists[0], what)?,
            n => {
                return Err(AuthError::bundle(
                    what,
                    format!("{n} {DENYLIST_LABEL} blocks; expected at most one"),
                ))
            }
        };
        Ok(ServerBundle {
            ca_certs_pem: certs_pem(&cas),
            cert_pem: pem::encode(CERTIFICATE_LABEL, &leaf.der),
            key_pem: pem::encode(PRIVATE_KEY_LABEL, &key),
            storage_key,
            denylist,
            leaf: leaf.info,
            cas: cas.into_iter().map(|c| c.info).collect(),
        })
    }

    /// Reads the server bundle at `path`.
    pub fn load(path: &Path) -> Result<ServerBundle> {
        Self::parse(&read_file(path)?, &format!("server bundle {}", path.display()))
    }

    /// The bundle as file contents: CA certificates, server certificate,
    /// key, storage key, and the denylist when it is not empty.
    pub fn to_pem(&self) -> String {
        let mut out = format!("{}{}{}", self.ca_certs_pem, self.cert_pem, self.key_pem);
        if let Some(key) = &self.storage_key {
            out.push_str(&pem::encode(STORAGE_KEY_LABEL, key));
        }
        if !self.denylist.is_empty() {
            out.push_str(&pem::encode(DENYLIST_LABEL, denylist_text(&self.denylist).as_bytes()));
        }
        out
    }

    /// The CA certificates' DER, in `ca_certs_pem` order, e.g. for a
    /// rustls root store.
    pub fn ca_ders(&self) -> Result<Vec<Vec<u8>>> {
        decode_certs(&self.ca_certs_pem, "server bundle CA certificates")
    }

    /// The server certificate's DER (see [`CaBundle::cert_der`] on errors).
    pub fn cert_der(&self) -> Result<Vec<u8>> {
        decode_one(&self.cert_pem, CERTIFICATE_LABEL, "server certificate")
    }

    /// The server private key's PKCS#8 DER, for the TLS handshake.
    pub fn key_der(&self) -> Result<Vec<u8>> {
        decode_one(&self.key_pem, PRIVATE_KEY_LABEL, "server private key")
    }
}

/// `client.pem`: what a client (the CLI, an SDK) presents to a server.
///
/// `Debug` leaves out the private key.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientBundle {
    /// The CA certificates, one PEM block each: roots for the server certificate.
    pub ca_certs_pem: String,
    /// The client certificate as one PEM block.
    pub cert_pem: String,
    /// The client private key as one PKCS#8 PEM block.
    pub key_pem: String,
    /// What the client certificate says.
    pub leaf: CertInfo,
    /// What the CA certificates say, in `ca_certs_pem` order.
    pub cas: Vec<CertInfo>,
}

impl fmt::Debug for ClientBundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBundle")
            .field("leaf", &self.leaf)
            .field("cas", &self.cas)
            .field("key_pem", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl ClientBundle {
    /// Reads a client bundle from PEM text; `what` names it in errors.
    pub fn parse(text: &str, what: &str) -> Result<ClientBundle> {
        let mut sorted = sort_blocks(text, what)?;
        sorted.refuse_extras(what, "client")?;
        let (cas, leaf) = sorted.cas_and_leaf(what, "client")?;
        let key = sorted.one_key(what)?;
        Ok(ClientBundle {
            ca_certs_pem: certs_pem(&cas),
            cert_pem: pem::encode(CERTIFICATE_LABEL, &leaf.der),
            key_pem: pem::encode(PRIVATE_KEY_LABEL, &key),
            leaf: leaf.info,
            cas: cas.into_iter().map(|c| c.info).collect(),
        })
    }

    /// Reads the client bundle at `path`.
    pub fn load(path: &Path) -> Result<ClientBundle> {
        Self::parse(&read_file(path)?, &format!("client bundle {}", path.display()))
    }

    /// The bundle as file contents: client certificate, key, CA certificates.
    ///
    /// The client certificate comes first and its key second, so tools
    /// that read "certificate, then key, then chain" from one PEM file
    /// (`curl --cert client.pem`, OpenSSL) can use the bundle as it is.
    pub fn to_pem(&self) -> String {
        format!("{}{}{}", self.cert_pem, self.key_pem, self.ca_certs_pem)
    }

    /// The CA certificates' DER, in `ca_certs_pem` order: the roots a
    /// client trusts for the server certificate.
    pub fn ca_ders(&self) -> Result<Vec<Vec<u8>>> {
        decode_certs(&self.ca_certs_pem, "client bundle CA certificates")
    }

    /// The client certificate's DER (see [`CaBundle::cert_der`] on errors).
    pub fn cert_der(&self) -> Result<Vec<u8>> {
        decode_one(&self.cert_pem, CERTIFICATE_LABEL, "client certificate")
    }

    /// The client private key's PKCS#8 DER, for the TLS handshake.
    pub fn key_der(&self) -> Result<Vec<u8>> {
        decode_one(&self.key_pem, PRIVATE_KEY_LABEL, "client private key")
    }

    /// The chain and key in the types rustls takes
    /// (`ClientConfig::with_client_auth_cert`).
    pub fn rustls_identity(&self) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
        Ok((
            vec![CertificateDer::from(self.cert_der()?)],
            PrivatePkcs8KeyDer::from(self.key_der()?).into(),
        ))
    }
}

#[cfg(test)]
mod tests;
