//! Identity for lockd-rs's mTLS: the certificates, the PEM bundles that
//! carry them, the namespace claims a client certificate grants, and the
//! denylist of revoked client serials.
//!
//! lockd is mTLS-on by default, so everything a server or an operator does
//! with certificates lives here, apart from the network: the server
//! (`lockd-net`) asks this crate who a peer is and what it may touch; the
//! `lockd auth` commands issue, inspect, verify and revoke; bootstrap makes
//! a first start work with zero set-up. Nothing in here does I/O on
//! sockets, and file I/O is confined to [`files`] and [`bootstrap`].
//!
//! Module map:
//! * [`serial`], [`claims`], [`cert`]: reading what a certificate says;
//! * [`denylist`]: revoked serials, shared with the TLS verifier;
//! * [`pem`], [`bundle`]: the on-disk bundle formats;
//! * [`issue`]: new CA, server and client certificates (rcgen);
//! * [`verify`]: the checks behind `lockd auth verify`;
//! * [`files`], [`bootstrap`]: writing bundles safely and the first-start set-up.

pub mod bootstrap;
pub mod bundle;
pub mod cert;
pub mod claims;
pub mod denylist;
mod error;
pub mod files;
pub mod issue;
pub mod pem;
pub mod serial;
pub mod verify;

pub use error::AuthError;

/// Results of this crate.
pub type Result<T> = std::result::Result<T, AuthError>;
