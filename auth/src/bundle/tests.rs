//! Tests of the bundle formats, kept apart from the parser to keep each file short.

use super::*;
use crate::claims::Claims;
use crate::issue::{self, Validity};
use std::time::Duration;

fn pki() -> (CaBundle, ServerBundle, ClientBundle) {
    let v = Validity::for_duration(Duration::from_secs(3600));
    let ca = issue::new_ca("test-ca", &v).expect("ca");
    let server = issue::new_server(&ca, "srv", &[], &v).expect("server");
    let mut claims = Claims::none();
    claims.parse_flag("orders=rw").expect("claims");
    let client = issue::new_client(&ca, "cli", &claims, &v).expect("client");
    (ca, server, client)
}

/// Reverses the block order of a bundle, to show order does not matter.
fn reversed(text: &str) -> String {
    let blocks = pem::parse(text, "t").expect("parses");
    blocks
        .iter()
        .rev()
        .map(|b| pem::encode(&b.label, &b.contents))
        .collect()
}

#[test]
fn bundles_round_trip_in_any_order() {
    let (ca, mut server, client) = pki();
    assert!(ca.storage_key.is_some());
    assert_eq!(CaBundle::parse(&reversed(&ca.to_pem()), "ca").expect("ca"), ca);
    server.denylist.insert("abc".into());
    let again = ServerBundle::parse(&reversed(&server.to_pem()), "server").expect("server");
    assert_eq!(again, server);
    assert_eq!(again.storage_key, ca.storage_key);
    assert_eq!(again.ca_ders().expect("ders"), vec![ca.cert_der().expect("der")]);
    assert_eq!(
        ClientBundle::parse(&reversed(&client.to_pem()), "client").expect("client"),
        client
    );
    assert_eq!(client.leaf.common_name.as_deref(), Some("cli"));
    let (chain, _key) = client.rustls_identity().expect("identity");
    assert_eq!(chain.len(), 1);
}

#[test]
fn denylist_accepts_operator_spellings() {
    let (_, server, _) = pki();
    let text = format!(
        "{}{}",
        server.to_pem(),
        pem::encode(DENYLIST_LABEL, b"0A:1B\n\n  0xFF  \nabc\n")
    );
    let parsed = ServerBundle::parse(&text, "s").expect("parses");
    let want: BTreeSet<String> = ["a1b", "ff", "abc"].iter().map(|s| s.to_string()).collect();
    assert_eq!(parsed.denylist, want);
    let bad = format!("{}{}", server.to_pem(), pem::encode(DENYLIST_LABEL, b"ab\nnot-hex\n"));
    let err = ServerBundle::parse(&bad, "s").expect_err("bad serial").to_string();
    assert!(err.contains("line 2"), "{err}");
}

#[test]
fn missing_and_extra_blocks_are_named() {
    let (ca, server, client) = pki();
    let ca_cert = ca.cert_pem.clone();
    // (case, parse as a client bundle?, text, expected message part)
    let cases: Vec<(&str, bool, String, &str)> = vec![
        (
            "server without key",
            false,
            format!("{}{}", server.ca_certs_pem, server.cert_pem),
            "no private key",
        ),
        (
            "server without CA",
            false,
            format!("{}{}", server.cert_pem, server.key_pem),
            "no CA certificate",
        ),
        (
            "server without leaf",
            false,
            format!("{}{}", ca_cert, server.key_pem),
            "no server certificate",
        ),
        (
            "two leaves",
            false,
            format!("{}{}{}{}", ca_cert, server.cert_pem, client.cert_pem, server.key_pem),
            "2 non-CA certificates",
        ),
        (
            "two storage keys",
            false,
            format!("{}{}", server.to_pem(), pem::encode(STORAGE_KEY_LABEL, &[1; 32])),
            "2 LOCKD STORAGE KEY blocks",
        ),
        (
            "client with storage key",
            true,
            format!("{}{}", client.to_pem(), pem::encode(STORAGE_KEY_LABEL, &[1; 32])),
            "must not carry",
        ),
        (
            "unknown block",
            true,
            format!("{}{}", client.to_pem(), pem::encode("X509 CRL", b"x")),
            "unexpected X509 CRL",
        ),
        (
            "sec1 key",
            true,
            format!("{}{}{}", ca_cert, client.cert_pem, pem::encode("EC PRIVATE KEY", b"x")),
            "PKCS#8",
        ),
        (
            "client without key",
            true,
            format!("{}{}", ca_cert, client.cert_pem),
            "no private key",
        ),
    ];
    for (case, as_client, text, needle) in cases {
        let err = if as_client {
            ClientBundle::parse(&text, "bundle /x.pem").expect_err(case).to_string()
        } else {
            ServerBundle::parse(&text, "bundle /x.pem").expect_err(case).to_string()
        };
        assert!(err.starts_with("bundle /x.pem: "), "{case}: {err}");
        assert!(err.contains(needle), "{case}: {err}");
    }
    // The short storage key: the message gives the expected length
    // (a server bundle already has one, so replace it).
    let mut short = server.clone();
    short.storage_key = None;
    let text = format!("{}{}", short.to_pem(), pem::encode(STORAGE_KEY_LABEL, &[1; 16]));
    let err = ServerBundle::parse(&text, "s").expect_err("short").to_string();
    assert!(err.contains("storage key must be 32 bytes, found 16"), "{err}");

    let err = CaBundle::parse(&server.to_pem(), "ca")
        .expect_err("server as CA")
        .to_string();
    assert!(err.contains("only the CA certificate"), "{err}");
    let err = CaBundle::parse(&format!("{}{}", client.cert_pem, client.key_pem), "ca")
        .expect_err("leaf as CA")
        .to_string();
    assert!(err.contains("not a CA"), "{err}");
    let err = CaBundle::parse(&ca.cert_pem, "ca").expect_err("no key").to_string();
    assert!(err.contains("no private key"), "{err}");
}

#[test]
fn load_names_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("client.pem");
    std::fs::write(&path, "-----BEGIN CERTIFICATE-----\nAAAA\n").expect("write");
    let err = ClientBundle::load(&path).expect_err("truncated").to_string();
    assert!(err.starts_with(&format!("client bundle {}", path.display())), "{err}");
    let err = ServerBundle::load(&dir.path().join("missing.pem"))
        .expect_err("missing")
        .to_string();
    assert!(err.contains("missing.pem"), "{err}");
}

#[test]
fn debug_never_shows_secrets() {
    let (ca, server, client) = pki();
    let key = ca.storage_key.expect("storage key");
    let key_bytes = format!("{:?}", key);
    let key_b64 = pem::encode(STORAGE_KEY_LABEL, &key);
    let key_b64 = key_b64.lines().nth(1).expect("body line");
    for shown in [format!("{ca:?}"), format!("{server:?}"), format!("{client:?}")] {
        assert!(shown.contains("<redacted>"), "{shown}");
        assert!(!shown.contains(&key_bytes) && !shown.contains(key_b64), "{shown}");
        assert!(!shown.contains("PRIVATE KEY"), "{shown}");
    }
}
