//! Revoked client serials, shared between the bundle loader and the TLS
//! verifier.
//!
//! `lockd auth revoke` writes the denylist into every server bundle; a
//! running server re-reads its bundle when the file changes and swaps the
//! new set in here, so revocation takes effect for new handshakes (and,
//! through the per-request check, for open connections) without a
//! restart. Reads happen on every handshake and request, writes only on
//! reload, hence a read-write lock over a plain set.

use std::collections::BTreeSet;

use parking_lot::RwLock;

/// The live set of revoked serials (canonical hex, see [`crate::serial`]).
#[derive(Debug, Default)]
pub struct Denylist {
    serials: RwLock<BTreeSet<String>>,
}

impl Denylist {
    /// A denylist holding `serials` (already canonical).
    pub fn new(serials: BTreeSet<String>) -> Denylist {
        Denylist {
            serials: RwLock::new(serials),
        }
    }

    /// Whether `serial` (canonical hex) is revoked.
    pub fn contains(&self, serial: &str) -> bool {
        self.serials.read().contains(serial)
    }

    /// Replaces the whole set; returns whether it changed.
    pub fn replace(&self, serials: BTreeSet<String>) -> bool {
        let mut current = self.serials.write();
        if *current == serials {
            return false;
        }
        *current = serials;
        true
    }

    /// How many serials are revoked.
    pub fn len(&self) -> usize {
        self.serials.read().len()
    }

    /// Whether nothing is revoked.
    pub fn is_empty(&self) -> bool {
        self.serials.read().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_swaps_the_set_and_reports_changes() {
        let d = Denylist::default();
        assert!(!d.contains("ab"));
        assert!(d.replace(BTreeSet::from(["ab".to_string()])));
        assert!(d.contains("ab"));
        assert!(!d.replace(BTreeSet::from(["ab".to_string()])));
        assert_eq!(d.len(), 1);
    }
}
