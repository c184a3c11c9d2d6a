//! At-rest encryption of values.
//!
//! Each value is sealed with XChaCha20-Poly1305 (the 24-byte-nonce variant
//! from the `chacha20poly1305` crate) under a key derived with HKDF-SHA256
//! from the caller's root key and the record's key, so no two objects share
//! a data key. Nonces are random: with 192 bits there is no realistic chance
//! of reuse, even across crashes that make the store reuse sequence numbers
//! of batches that never became durable. The record key is also the AEAD's
//! associated data, so a value moved under another key fails to open.
//!
//! Snappy compression, when enabled, runs before encryption (compressing
//! ciphertext gains nothing).

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use sha2::Sha256;

use crate::options::EncryptionOptions;
use crate::{Error, Result};

const NONCE_LEN: usize = 24;
const SALT: &[u8] = b"lockd-logstore/v1";

/// Transforms values on their way to and from disk.
#[derive(Clone)]
pub(crate) struct Codec {
    enc: Option<EncryptionOptions>,
}

/// A value ready for a record, with the flags that say how to undo it.
pub(crate) struct Encoded {
    pub bytes: Vec<u8>,
    pub flags: u8,
}

impl Codec {
    pub(crate) fn new(enc: Option<EncryptionOptions>) -> Self {
        Codec { enc }
    }

    /// A value derived from the root key that the manifest records, so a
    /// store reopened with another key is refused instead of failing on
    /// every read.
    pub(crate) fn verifier(&self) -> Option<String> {
        let enc = self.enc.as_ref()?;
        let hk = Hkdf::<Sha256>::new(Some(SALT), &enc.root_key);
        let mut out = [0u8; 16];
        hk.expand(b"root-key-verifier", &mut out).ok()?;
        Some(out.iter().map(|b| format!("{b:02x}")).collect())
    }

    fn cipher(&self, enc: &EncryptionOptions, context: &[u8]) -> XChaCha20Poly1305 {
        let hk = Hkdf::<Sha256>::new(Some(SALT), &enc.root_key);
        let mut key = [0u8; 32];
        let mut info = Vec::with_capacity(6 + context.len());
        info.extend_from_slice(b"value:");
        info.extend_from_slice(context);
        // HKDF-SHA256 can expand up to 8160 bytes; 32 always fits.
        let _ = hk.expand(&info, &mut key);
        XChaCha20Poly1305::new(&key.into())
    }

    /// Compresses and/or encrypts `plain` for the object named `context`
    /// (the record key, or a blob chunk's identity).
    pub(crate) fn seal(&self, context: &[u8], plain: &[u8]) -> Result<Encoded> {
        let Some(enc) = &self.enc else {
            return Ok(Encoded {
                bytes: plain.to_vec(),
                flags: 0,
            });
        };
        let mut flags = crate::record::FLAG_ENCRYPTED;
        let compressed;
        let body: &[u8] = if enc.snappy {
            compressed = snap::raw::Encoder::new()
                .compress_vec(plain)
                .map_err(|e| Error::Invalid(format!("snappy: {e}")))?;
            flags |= crate::record::FLAG_COMPRESSED;
            &compressed
        } else {
            plain
        };
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| Error::Invalid(format!("no randomness: {e}")))?;
        let ct = self
            .cipher(enc, context)
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: body,
                    aad: context,
                },
            )
            .map_err(|_| Error::Invalid("encryption failed".into()))?;
        let mut bytes = Vec::with_capacity(NONCE_LEN + ct.len());
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&ct);
        Ok(Encoded { bytes, flags })
    }

    /// Undoes [`Codec::seal`]. A value that fails authentication is an
    /// [`Error::Integrity`], never garbage.
    pub(crate) fn open(&self, context: &[u8], flags: u8, stored: &[u8]) -> Result<Vec<u8>> {
        let integrity = |reason: &str| Error::Integrity {
            key: String::from_utf8_lossy(context).into_owned(),
            reason: reason.to_string(),
        };
        let body = if flags & crate::record::FLAG_ENCRYPTED != 0 {
            let enc = self.enc.as_ref().ok_or_else(|| {
                Error::KeyMismatch("value is encrypted but the store was opened without a key".into())
            })?;
            if stored.len() < NONCE_LEN {
                return Err(integrity("encrypted value shorter than its nonce"));
            }
            let (nonce, ct) = stored.split_at(NONCE_LEN);
            let nonce = XNonce::try_from(nonce).map_err(|_| integrity("bad nonce length"))?;
            self.cipher(enc, context)
                .decrypt(&nonce, Payload { msg: ct, aad: context })
                .map_err(|_| integrity("authentication failed (tampered data or wrong key)"))?
        } else {
            stored.to_vec()
        };
        if flags & crate::record::FLAG_COMPRESSED != 0 {
            snap::raw::Decoder::new()
                .decompress_vec(&body)
                .map_err(|e| integrity(&format!("snappy: {e}")))
        } else {
            Ok(body)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codec(key: u8, snappy: bool) -> Codec {
        Codec::new(Some(EncryptionOptions {
            root_key: [key; 32],
            snappy,
        }))
    }

    #[test]
    fn seal_open_round_trip_and_hides_plaintext() {
        for snappy in [false, true] {
            let c = codec(1, snappy);
            let plain = b"a distinctive payload a distinctive payload".repeat(4);
            let sealed = c.seal(b"k", &plain).expect("seal");
            assert!(!sealed.bytes.windows(12).any(|w| w == b"distinctive "));
            assert_eq!(c.open(b"k", sealed.flags, &sealed.bytes).expect("open"), plain);
        }
    }

    #[test]
    fn wrong_key_context_or_tamper_is_an_integrity_error() {
        let c = codec(1, false);
        let sealed = c.seal(b"k", b"value").expect("seal");
        let other = codec(2, false);
        assert!(matches!(
            other.open(b"k", sealed.flags, &sealed.bytes),
            Err(Error::Integrity { .. })
        ));
        assert!(matches!(
            c.open(b"other", sealed.flags, &sealed.bytes),
            Err(Error::Integrity { .. })
        ));
        let mut bad = sealed.bytes.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(matches!(c.open(b"k", sealed.flags, &bad), Err(Error::Integrity { .. })));
        assert_ne!(c.verifier(), other.verifier());
    }
}
