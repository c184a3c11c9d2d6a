//! Certificate serial numbers as operators type them.
//!
//! Serials show up in `lockd auth inspect` output, in denylists, in lease
//! owners (`#<hex-serial>`) and on the `lockd auth revoke` command line,
//! written by people and by other tools (`openssl x509 -serial` prints
//! upper-case hex, browsers use colons). One canonical spelling — lower-case
//! hex without separators or leading zeros — lets all of them compare.

use crate::{AuthError, Result};

/// The canonical spelling of a serial given as big-endian bytes (the DER
/// INTEGER content): lower-case hex, no leading zeros, `0` for zero.
pub fn from_bytes(bytes: &[u8]) -> String {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let trimmed = hex.trim_start_matches('0');
    if trimmed.is_empty() {
        "0".to_string()
    } else {
        trimmed.to_string()
    }
}

/// Parses a serial as an operator may write it (`0A:1B:2C`, `0x0a1b2c`,
/// `A1B2C`) into the canonical spelling.
pub fn normalize(text: &str) -> Result<String> {
    let t = text.trim();
    let t = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")).unwrap_or(t);
    let digits: String = t.chars().filter(|c| *c != ':').collect();
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(AuthError::Serial(text.to_string()));
    }
    let lower = digits.to_ascii_lowercase();
    let trimmed = lower.trim_start_matches('0');
    Ok(if trimmed.is_empty() {
        "0".to_string()
    } else {
        trimmed.to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_maps_to_one() {
        assert_eq!(from_bytes(&[0x00, 0x0a, 0x1b]), "a1b");
        assert_eq!(from_bytes(&[0, 0]), "0");
        for s in ["0A:1B", "0x0a1b", "A1B", " a1b ", "000a1b"] {
            assert_eq!(normalize(s).expect(s), "a1b");
        }
        for bad in ["", "0x", "g1", "12-34", ":"] {
            assert!(normalize(bad).is_err(), "{bad:?}");
        }
    }
}
