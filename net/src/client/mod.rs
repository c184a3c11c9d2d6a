//! The Rust client SDK: typed async calls for lockd's lease and state API.
//!
//! A [`Client`] talks to one or several endpoints (`http://host:port`,
//! `https://host:port`, `unix:///path/to/socket`) over a pool of keep-alive
//! connections, fails over to the next endpoint when one cannot be reached,
//! and retries contended acquires with jittered exponential backoff.
//!
//! Three levels of convenience:
//! * plain calls ([`Client::acquire`], [`Client::update`], …) that map one
//!   to one onto the HTTP API and take a [`LeaseRef`];
//! * a [`LeaseSession`] ([`Client::acquire_session`]) that tracks the
//!   fencing token, version and ETag from every answer;
//! * [`Client::acquire_for_update`], which keeps the lease alive while a
//!   closure works and always releases it: commit on success, rollback on
//!   error.
//!
//! ```no_run
//! # async fn demo() -> Result<(), lockd_net::client::ClientError> {
//! use lockd_net::client::Client;
//! use lockd_net::wire::AcquireRequest;
//!
//! let client = Client::new("http://127.0.0.1:9341")?;
//! let req = AcquireRequest { key: Some("jobs/42".into()), owner: Some("worker-1".into()), ..Default::default() };
//! let done = client
//!     .acquire_for_update(&req, |session| async move {
//!         let mut count: u64 = session.load().await?.unwrap_or(0);
//!         count += 1;
//!         session.save(&count).await?;
//!         Ok(count)
//!     })
//!     .await?;
//! println!("counter is now {done}");
//! # Ok(())
//! # }
//! ```

mod body;
mod connector;
mod endpoint;
mod error;
mod handle;
mod ops;
mod retry;
mod session;
mod tls;
mod types;

pub use error::{ApiError, ClientError};
pub use handle::{Client, ClientBuilder};
pub use session::LeaseSession;
pub use tls::{client_config as tls_config, client_config_from_bundle as tls_config_from_bundle};
pub use types::{Conditions, Lease, LeaseRef, StateDoc};
