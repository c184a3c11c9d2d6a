//! The bundle, PEM, certificate and claim parsers of `lockd-auth` on
//! arbitrary input. Bundles are operator files, but client certificates
//! (and the claims inside them) arrive from the network, so none of these
//! may panic. A bundle that parses must survive a write/read round trip
//! unchanged: what `lockd auth revoke` writes back is what it read.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lockd_auth::bundle::{CaBundle, ClientBundle, ServerBundle};
use lockd_auth::cert::CertInfo;
use lockd_auth::claims::Claims;

fuzz_target!(|data: &[u8]| {
    // Certificates come as DER from the TLS layer.
    if let Ok(info) = CertInfo::from_der(data) {
        let _ = info.claims();
        let _ = info.identity();
    }
    let text = String::from_utf8_lossy(data);
    let _ = Claims::from_uris(text.lines());
    let _ = Claims::none().parse_flag(&text);
    let _ = lockd_auth::pem::parse(&text, "fuzz input");
    if let Ok(b) = ServerBundle::parse(&text, "fuzz server bundle") {
        let again = ServerBundle::parse(&b.to_pem(), "round trip").expect("a written server bundle parses");
        assert_eq!(again.leaf, b.leaf);
        assert_eq!(again.denylist, b.denylist);
        assert_eq!(again.storage_key, b.storage_key);
    }
    if let Ok(b) = ClientBundle::parse(&text, "fuzz client bundle") {
        let again = ClientBundle::parse(&b.to_pem(), "round trip").expect("a written client bundle parses");
        assert_eq!(again.leaf, b.leaf);
        assert_eq!(again.cas, b.cas);
    }
    if let Ok(b) = CaBundle::parse(&text, "fuzz CA bundle") {
        let again = CaBundle::parse(&b.to_pem(), "round trip").expect("a written CA bundle parses");
        assert_eq!(again.info, b.info);
        assert_eq!(again.storage_key, b.storage_key);
    }
});
