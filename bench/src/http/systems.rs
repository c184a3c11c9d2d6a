//! The systems one run compares: lockd (spawned or given) and the peers
//! the bench starts itself (etcd, Redis), each behind one driver type so
//! the workloads run unchanged against all of them.
//!
//! Dispatch is a `match` per operation rather than a trait object: the
//! workloads are generic over [`Driver`], and an enum keeps them so while
//! letting one run mix systems.

use std::sync::Arc;

use bytes::Bytes;
use clap::ValueEnum;

use super::driver::{Acquired, Addr, Conn, Driver, Lease, LockdConn, LockdDriver, OpError};
use super::etcd_driver::{EtcdConn, EtcdDriver};
use super::process::ServerProcess;
use super::redis_driver::{RedisConn, RedisDriver};
use super::tls::TlsClient;
use crate::error::Result;
use crate::peers::{PeerKind, PeerProcess};

/// A system under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Target {
    /// lockd-rs (or lockd v0.9) over plain HTTP, and also over mTLS with --tls: spawned (--spawn)
    /// or given (--addr).
    Lockd,
    /// etcd v3 over gRPC, started by the bench with its default (durable) settings.
    Etcd,
    /// Redis with appendonly yes + appendfsync always (durable), started by the bench.
    Redis,
    /// Redis with appendfsync everysec: NOT durable (up to a second of writes lost on a crash).
    RedisEverysec,
}

impl Target {
    /// The peer process kind, for the systems the bench starts.
    pub(crate) fn peer(self) -> Option<PeerKind> {
        match self {
            Target::Lockd => None,
            Target::Etcd => Some(PeerKind::Etcd),
            Target::Redis => Some(PeerKind::RedisAlways),
            Target::RedisEverysec => Some(PeerKind::RedisEverysec),
        }
    }
}

/// Opens connections to any of the systems.
pub(crate) enum AnyDriver {
    /// lockd over HTTP.
    Lockd(LockdDriver),
    /// etcd over gRPC.
    Etcd(EtcdDriver),
    /// Redis (either durability).
    Redis(RedisDriver),
}

/// A connection to any of the systems.
pub(crate) enum AnyConn {
    /// lockd over HTTP.
    Lockd(LockdConn),
    /// etcd over gRPC.
    Etcd(EtcdConn),
    /// Redis.
    Redis(RedisConn),
}

impl Driver for AnyDriver {
    type Conn = AnyConn;

    async fn connect(&self) -> std::result::Result<AnyConn, OpError> {
        Ok(match self {
            AnyDriver::Lockd(d) => AnyConn::Lockd(d.connect().await?),
            AnyDriver::Etcd(d) => AnyConn::Etcd(d.connect().await?),
            AnyDriver::Redis(d) => AnyConn::Redis(d.connect().await?),
        })
    }
}

/// Forwards one call to whichever connection this is.
macro_rules! each {
    ($conn:expr, $c:ident => $call:expr) => {
        match $conn {
            AnyConn::Lockd($c) => $call,
            AnyConn::Etcd($c) => $call,
            AnyConn::Redis($c) => $call,
        }
    };
}

impl Conn for AnyConn {
    async fn acquire(&mut self, namespace: &str, key: &str, wait: bool) -> std::result::Result<Acquired, OpError> {
        each!(self, c => c.acquire(namespace, key, wait).await)
    }

    async fn update(&mut self, lease: &Lease, doc: Bytes) -> std::result::Result<(), OpError> {
        each!(self, c => c.update(lease, doc).await)
    }

    async fn release(&mut self, lease: &Lease) -> std::result::Result<(), OpError> {
        each!(self, c => c.release(lease).await)
    }

    async fn read(&mut self, namespace: &str, key: &str) -> std::result::Result<usize, OpError> {
        each!(self, c => c.read(namespace, key).await)
    }

    async fn put(&mut self, namespace: &str, key: &str, doc: Bytes) -> std::result::Result<(), OpError> {
        each!(self, c => c.put(namespace, key, doc).await)
    }

    async fn scan(&mut self, namespace: &str, keys: &[String]) -> std::result::Result<usize, OpError> {
        each!(self, c => c.scan(namespace, keys).await)
    }
}

/// What keeps a system running, so it can be stopped at the end.
enum Running {
    /// A lockd child process.
    Lockd(ServerProcess),
    /// An etcd or Redis child process.
    Peer(PeerProcess),
    /// Somebody else's server (`--addr`).
    External,
}

/// One system of the run.
pub(crate) struct System {
    /// Its name in tables, charts and JSON: `lockd-tcp`, `lockd-unix`,
    /// `lockd-mtls`, `etcd`, `redis`, `redis-everysec`.
    pub label: &'static str,
    /// Where it listens.
    pub addr: String,
    /// How the workloads reach it.
    pub driver: Arc<AnyDriver>,
    /// Its process id when the bench started it (for its CPU time).
    pub pid: Option<u32>,
    /// What a YCSB write is on this system.
    pub writes: &'static str,
    /// Whether an acknowledged write survives a crash of the machine.
    pub durable: bool,
    /// Program version, when known.
    pub version: Option<String>,
    running: Running,
}

/// Label of lockd over plain HTTP on TCP: the baseline mTLS is judged against.
pub(crate) const PLAIN_TCP_LABEL: &str = "lockd-tcp";
/// Label of lockd over mTLS, chosen to stand out next to the plain listeners.
pub(crate) const MTLS_LABEL: &str = "lockd-mtls";

/// How lockd writes in YCSB (it has no lease-free write).
pub(crate) const LEASE_CYCLE: &str = "lease cycle (acquire, update, release)";
/// How the key-value peers write in YCSB.
pub(crate) const PLAIN_PUT: &str = "plain put";

impl System {
    /// lockd at `addr`, started by the bench (`process`) or not.
    pub(crate) fn lockd(addr: Addr, process: Option<ServerProcess>, durable: bool) -> System {
        let label = match addr {
            Addr::Tcp(_) => PLAIN_TCP_LABEL,
            Addr::Unix(_) => "lockd-unix",
        };
        System {
            label,
            addr: addr.to_string(),
            driver: Arc::new(AnyDriver::Lockd(LockdDriver::new(addr))),
            pid: process.as_ref().map(|p| p.pid),
            writes: LEASE_CYCLE,
            durable,
            version: None,
            running: process.map_or(Running::External, Running::Lockd),
        }
    }

    /// lockd at `addr` over mTLS with the identity in `tls`, started by the
    /// bench (`process`) or not. Fails for a Unix socket, where lockd does
    /// not serve TLS.
    pub(crate) fn lockd_mtls(
        addr: Addr,
        tls: TlsClient,
        process: Option<ServerProcess>,
        durable: bool,
    ) -> Result<System> {
        let shown = format!("https://{addr}");
        let driver = LockdDriver::with_tls(addr, tls).map_err(crate::error::Error::Invalid)?;
        Ok(System {
            label: MTLS_LABEL,
            addr: shown,
            driver: Arc::new(AnyDriver::Lockd(driver)),
            pid: process.as_ref().map(|p| p.pid),
            writes: LEASE_CYCLE,
            durable,
            version: None,
            running: process.map_or(Running::External, Running::Lockd),
        })
    }

    /// Starts a peer with its data under `scratch`.
    pub(crate) fn start_peer(kind: PeerKind, scratch: &std::path::Path) -> Result<System> {
        let p = PeerProcess::start(kind, scratch)?;
        let driver = match kind {
            PeerKind::Etcd => AnyDriver::Etcd(EtcdDriver::new(p.addr.clone())),
            PeerKind::RedisAlways | PeerKind::RedisEverysec => AnyDriver::Redis(RedisDriver::new(p.addr.clone())),
        };
        Ok(System {
            label: kind.name(),
            addr: p.addr.clone(),
            driver: Arc::new(driver),
            pid: Some(p.pid),
            writes: PLAIN_PUT,
            durable: kind.durable(),
            version: crate::peers::version(kind),
            running: Running::Peer(p),
        })
    }

    /// Stops the process the bench started, if any.
    pub(crate) fn stop(self) -> Result<()> {
        match self.running {
            Running::Lockd(p) => p.stop(),
            Running::Peer(p) => p.stop(),
            Running::External => Ok(()),
        }
    }
}
