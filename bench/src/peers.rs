//! The systems lockd is compared with (etcd, Redis) as child processes of
//! the bench, and what their drivers share.
//!
//! The bench starts its own peers rather than using whatever runs on the
//! machine so that every system gets the same conditions: loopback, data
//! in the same scratch directory (the disk being measured), a fresh data
//! directory, and settings we state in the report (etcd's defaults, which
//! fsync; Redis with an append-only file fsynced on every write, or every
//! second for the non-durable variant). They run as plain children, found
//! on `PATH` (install them with `bench/peers.sh install`), and are stopped
//! by pid: SIGTERM, then SIGKILL after a bounded wait, in [`PeerProcess::stop`]
//! or, if the run fails before that, in `Drop`.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

use crate::error::{Error, Result};

/// How long a peer may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `stop` lets a peer shut down after SIGTERM before killing it.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// The same in `Drop`, which runs on error paths and should not hang them.
const DROP_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause between readiness probes.
const PROBE_INTERVAL: Duration = Duration::from_millis(50);
/// Lines of the peer's output kept to explain a failure.
const LOG_TAIL: usize = 40;
/// Where Debian puts the binaries when `PATH` is minimal (cron, sudo).
const FALLBACK_BIN_DIR: &str = "/usr/bin";

/// A peer system the bench can start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PeerKind {
    /// etcd v3, one member, default (fsyncing) settings.
    Etcd,
    /// Redis with `appendonly yes`, `appendfsync always`: an acknowledged
    /// write is on disk, the fair comparison for a durable lock service.
    RedisAlways,
    /// Redis with `appendfsync everysec`: up to a second of acknowledged
    /// writes lost on a crash; shown to say what skipping the fsync buys.
    RedisEverysec,
}

impl PeerKind {
    /// Every kind.
    #[cfg(test)]
    pub(crate) const ALL: [PeerKind; 3] = [PeerKind::Etcd, PeerKind::RedisAlways, PeerKind::RedisEverysec];

    /// The label in tables, charts and JSON (also its data directory's name).
    pub(crate) fn name(self) -> &'static str {
        match self {
            PeerKind::Etcd => "etcd",
            PeerKind::RedisAlways => "redis",
            PeerKind::RedisEverysec => "redis-everysec",
        }
    }

    /// Whether an acknowledged write survives a crash of the machine, so
    /// reports never put a non-durable number next to durable ones unlabelled.
    pub(crate) fn durable(self) -> bool {
        match self {
            PeerKind::Etcd | PeerKind::RedisAlways => true,
            PeerKind::RedisEverysec => false,
        }
    }

    /// The program to run.
    pub(crate) fn binary(self) -> &'static str {
        match self {
            PeerKind::Etcd => "etcd",
            PeerKind::RedisAlways | PeerKind::RedisEverysec => "redis-server",
        }
    }
}

/// The peer's program: on `PATH`, else in `/usr/bin`; `None` when absent.
pub(crate) fn find_binary(kind: PeerKind) -> Option<PathBuf> {
    let name = kind.binary();
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join(name));
    on_path
        .chain(std::iter::once(Path::new(FALLBACK_BIN_DIR).join(name)))
        .find(|p| p.is_file())
}

/// The error a missing program becomes: it says how to install it.
fn missing(kind: PeerKind) -> Error {
    Error::Invalid(format!(
        "{} not found on PATH nor in {FALLBACK_BIN_DIR}: run bench/peers.sh install \
         (or apt-get install etcd-server redis-server)",
        kind.binary()
    ))
}

/// The peer's version for reports (`etcd 3.4.23`, `redis 7.0.15`), or
/// `None` when it is not installed or says something unexpected.
pub(crate) fn version(kind: PeerKind) -> Option<String> {
    let bin = find_binary(kind)?;
    let out = Command::new(bin).arg("--version").stdin(Stdio::null()).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    parse_version(kind, &text)
}

/// The version in the first line of `--version` output: `etcd Version: X`
/// or `Redis server v=X sha=…`; the whole line if neither shape matches.
fn parse_version(kind: PeerKind, text: &str) -> Option<String> {
    let line = text.lines().map(str::trim).find(|l| !l.is_empty())?;
    let number = match kind {
        PeerKind::Etcd => line.strip_prefix("etcd Version:").map(str::trim),
        PeerKind::RedisAlways | PeerKind::RedisEverysec => line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("v="))
            .map(|v| v.trim()),
    };
    Some(match number {
        Some(n) if !n.is_empty() => format!("{} {n}", if kind == PeerKind::Etcd { "etcd" } else { "redis" }),
        _ => line.to_string(),
    })
}

/// `N` different free ports on 127.0.0.1: bind port 0 `N` times (all held
/// until all are known, so they differ), read what the kernel chose, let
/// go. Another process could take one before the peer binds it; the peer
/// then fails to start and says so, which is rare on loopback.
fn free_ports<const N: usize>() -> Result<[u16; N]> {
    let io = |e| Error::io("bind a free port on", Path::new("127.0.0.1"), e);
    let listeners = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(io)?;
    let mut ports = [0; N];
    for (port, l) in ports.iter_mut().zip(&listeners) {
        *port = l.local_addr().map_err(io)?.port();
    }
    Ok(ports)
}

/// An etcd or Redis child process serving on loopback.
pub(crate) struct PeerProcess {
    /// Which system it is.
    pub kind: PeerKind,
    /// `127.0.0.1:port`, what the drivers connect to.
    pub addr: String,
    /// Its process id, for CPU time and for stopping it.
    pub pid: u32,
    child: Option<Child>,
    tail: Arc<Mutex<VecDeque<String>>>,
}

impl PeerProcess {
    /// Starts `kind` on a free loopback port with a fresh data directory
    /// `<scratch>/<name>` and waits (at most 30 s) until it serves: a Redis
    /// answers PING, an etcd answers a linearizable get (so it has elected
    /// itself leader).
    pub(crate) fn start(kind: PeerKind, scratch: &Path) -> Result<PeerProcess> {
        let bin = find_binary(kind).ok_or_else(|| missing(kind))?;
        let data_dir = scratch.join(kind.name());
        // Data left by an earlier start would be replayed (and etcd would
        // keep its old member configuration): always start empty.
        if data_dir.exists() {
            std::fs::remove_dir_all(&data_dir).map_err(|e| Error::io("remove old data directory", &data_dir, e))?;
        }
        std::fs::create_dir_all(&data_dir).map_err(|e| Error::io("create data directory", &data_dir, e))?;
        let mut cmd = Command::new(&bin);
        let addr = match kind {
            PeerKind::Etcd => {
                let [client, peer] = free_ports()?;
                let client_url = format!("http://127.0.0.1:{client}");
                let peer_url = format!("http://127.0.0.1:{peer}");
                cmd.args(["--name", "bench", "--data-dir"])
                    .arg(&data_dir)
                    .args(["--listen-client-urls", &client_url])
                    .args(["--advertise-client-urls", &client_url])
                    .args(["--listen-peer-urls", &peer_url])
                    .args(["--initial-advertise-peer-urls", &peer_url])
                    .args(["--initial-cluster", &format!("bench={peer_url}")]);
                // etcd reads any flag from ETCD_* variables: keep the
                // caller's environment from changing what we measure.
                for (k, _) in std::env::vars_os() {
                    if k.to_string_lossy().starts_with("ETCD_") {
                        cmd.env_remove(&k);
                    }
                }
                format!("127.0.0.1:{client}")
            }
            PeerKind::RedisAlways | PeerKind::RedisEverysec => {
                let [port] = free_ports()?;
                let fsync = if kind == PeerKind::RedisAlways {
                    "always"
                } else {
                    "everysec"
                };
                cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--dir"])
                    .arg(&data_dir)
                    .args(["--appendonly", "yes", "--appendfsync", fsync])
                    .args(["--save", "", "--protected-mode", "no"]);
                format!("127.0.0.1:{port}")
            }
        };
        cmd.current_dir(&data_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        crate::http::die_with_parent(&mut cmd);
        let mut child = cmd.spawn().map_err(|e| Error::io("start", &bin, e))?;
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        // Drain both pipes for the whole life of the peer so that it never
        // blocks on a full pipe; keep the last lines for error messages.
        if let Some(out) = child.stdout.take() {
            drain(out, Arc::clone(&tail));
        }
        if let Some(err) = child.stderr.take() {
            drain(err, Arc::clone(&tail));
        }
        let mut peer = PeerProcess {
            kind,
            addr,
            pid: child.id(),
            child: Some(child),
            tail,
        };
        peer.wait_ready()?;
        Ok(peer)
    }

    /// Polls until the peer serves, it exits, or [`START_TIMEOUT`] passes.
    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        let sock: SocketAddr = self
            .addr
            .parse()
            .map_err(|e| Error::Other(format!("peer address {}: {e}", self.addr)))?;
        loop {
            if let Some(c) = self.child.as_mut() {
                match c.try_wait() {
                    Ok(Some(status)) => return Err(self.failure(&format!("exited with {status} before serving"))),
                    Ok(None) => {}
                    Err(e) => return Err(Error::io("wait for", Path::new(self.kind.binary()), e)),
                }
            }
            let probe = match self.kind {
                PeerKind::Etcd => probe_tcp(sock).and_then(|()| probe_etcd(&self.addr)),
                PeerKind::RedisAlways | PeerKind::RedisEverysec => probe_redis(sock),
            };
            let last = match probe {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                return Err(self.failure(&format!(
                    "did not serve on {} within {START_TIMEOUT:?} (last probe: {last})",
                    self.addr
                )));
            }
            std::thread::sleep(PROBE_INTERVAL);
        }
    }

    /// An error naming the peer and quoting the end of its output; stops it.
    fn failure(&mut self, what: &str) -> Error {
        if let Some(mut c) = self.child.take() {
            let _ = terminate(&mut c, self.pid, DROP_TIMEOUT);
        }
        Error::Other(format!(
            "{} (pid {}) {what}; its last output lines:\n  {}",
            self.kind.binary(),
            self.pid,
            self.tail_lines().join("\n  ")
        ))
    }

    /// The kept output lines, oldest first.
    fn tail_lines(&self) -> Vec<String> {
        self.tail.lock().iter().cloned().collect()
    }

    /// Stops the peer: SIGTERM, then SIGKILL if it has not exited after
    /// 20 s. Exiting by SIGTERM counts as a clean stop (etcd re-raises it).
    pub(crate) fn stop(mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let name = self.kind.binary();
        let (status, killed) =
            terminate(&mut child, self.pid, STOP_TIMEOUT).map_err(|e| Error::io("stop", Path::new(name), e))?;
        if killed {
            return Err(Error::Other(format!(
                "{name} (pid {}) ignored SIGTERM for {STOP_TIMEOUT:?} and was killed",
                self.pid
            )));
        }
        if status.success() || status.signal() == Some(libc::SIGTERM) {
            return Ok(());
        }
        Err(Error::Other(format!(
            "{name} (pid {}) exited with {status}; its last output lines:\n  {}",
            self.pid,
            self.tail_lines().join("\n  ")
        )))
    }
}

impl Drop for PeerProcess {
    /// A run that fails half-way must not leave servers behind.
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = terminate(&mut c, self.pid, DROP_TIMEOUT);
        }
    }
}

/// Copies lines from one of the peer's pipes into the kept tail until the
/// pipe closes (the peer exited).
fn drain<R: Read + Send + 'static>(pipe: R, tail: Arc<Mutex<VecDeque<String>>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(std::io::Result::ok) {
            let mut t = tail.lock();
            if t.len() == LOG_TAIL {
                t.pop_front();
            }
            t.push_back(line);
        }
    });
}

/// SIGTERM, wait up to `grace`, then SIGKILL; returns how the process
/// ended and whether it had to be killed. `child` is not yet reaped, so
/// `pid` still names it and cannot have been reused.
fn terminate(child: &mut Child, pid: u32, grace: Duration) -> std::io::Result<(ExitStatus, bool)> {
    if let Some(status) = child.try_wait()? {
        return Ok((status, false));
    }
    let pid = libc::pid_t::try_from(pid).map_err(|_| std::io::Error::other(format!("pid {pid} out of range")))?;
    // SAFETY: kill(2) on our own unreaped child; no memory is involved.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait()? {
            return Ok((status, false));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill()?;
    Ok((child.wait()?, true))
}

/// Whether something accepts TCP connections at `addr`.
fn probe_tcp(addr: SocketAddr) -> std::result::Result<(), String> {
    TcpStream::connect_timeout(&addr, Duration::from_millis(500))
        .map(drop)
        .map_err(|e| format!("connect: {e}"))
}

/// Whether Redis at `addr` answers PING with PONG (it answers `-LOADING`
/// while it replays its append-only file).
fn probe_redis(addr: SocketAddr) -> std::result::Result<(), String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(1)))
        .map_err(|e| format!("set timeout: {e}"))?;
    s.write_all(b"PING\r\n").map_err(|e| format!("send PING: {e}"))?;
    let mut line = String::new();
    BufReader::new(s)
        .read_line(&mut line)
        .map_err(|e| format!("read PING answer: {e}"))?;
    if line.trim_end() == "+PONG" {
        Ok(())
    } else {
        Err(format!("PING answered {:?}", line.trim_end()))
    }
}

/// Whether etcd at `addr` serves a linearizable get, which needs an
/// elected leader and a working WAL. Runs on its own thread with its own
/// runtime so that it works whether or not the caller is inside one.
fn probe_etcd(addr: &str) -> std::result::Result<(), String> {
    let url = format!("http://{addr}");
    let probe = std::thread::spawn(move || -> std::result::Result<(), String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("tokio runtime: {e}"))?;
        rt.block_on(async move {
            let opts = etcd_client::ConnectOptions::new()
                .with_connect_timeout(Duration::from_secs(1))
                .with_timeout(Duration::from_secs(2));
            let attempt = async {
                let mut client = etcd_client::Client::connect([url], Some(opts)).await?;
                client.get("lockd-bench/probe", None).await.map(drop)
            };
            match tokio::time::timeout(Duration::from_secs(3), attempt).await {
                Ok(r) => r.map_err(|e| format!("etcd get: {e}")),
                Err(_) => Err("etcd get: no answer in 3s".to_string()),
            }
        })
    });
    probe.join().map_err(|_| "etcd probe thread panicked".to_string())?
}

/// A token no other acquire uses, in this process or another: the lock
/// value that lets a holder release only its own lock.
pub(crate) fn lock_token() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("{:016x}-{:x}", process_nonce(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Different in every process (pid and start time mixed), fixed within one.
fn process_nonce() -> u64 {
    static NONCE: OnceLock<u64> = OnceLock::new();
    *NONCE.get_or_init(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        splitmix64(nanos ^ (u64::from(std::process::id()) << 32))
    })
}

/// A well-mixed 64-bit value from `x` (SplitMix64's output function).
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// How long a waiting acquire on a peer may keep retrying. Holders release
/// within milliseconds in every workload; this only bounds a stuck run.
pub(crate) const WAIT_LIMIT: Duration = Duration::from_secs(30);

/// The retry loop of a waiting acquire on a peer with no blocking lock
/// call of its own: jittered pauses (so waiters do not retry in lockstep)
/// of 200 µs–2 ms, for at most a fixed time. tokio's timer has a 1 ms
/// resolution, so the shortest pauses last about 1 ms.
pub(crate) struct Patience {
    deadline: Instant,
    rng: u64,
}

impl Patience {
    /// Starts the clock: pauses are allowed for `limit` from now.
    pub(crate) fn new(limit: Duration) -> Patience {
        static SEEDS: AtomicU64 = AtomicU64::new(0);
        Patience {
            deadline: Instant::now() + limit,
            rng: process_nonce() ^ splitmix64(SEEDS.fetch_add(1, Ordering::Relaxed)),
        }
    }

    /// The next pause, 200 µs–2 ms.
    fn next_pause(&mut self) -> Duration {
        self.rng = self.rng.wrapping_add(1);
        Duration::from_micros(200 + splitmix64(self.rng) % 1801)
    }

    /// Pauses before the next attempt; `false` (without pausing) once the
    /// time is up, and the caller gives up.
    pub(crate) async fn pause(&mut self) -> bool {
        if Instant::now() >= self.deadline {
            return false;
        }
        tokio::time::sleep(self.next_pause()).await;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_named_and_labelled_for_durability() {
        let names: Vec<_> = PeerKind::ALL.iter().map(|k| k.name()).collect();
        assert_eq!(names, ["etcd", "redis", "redis-everysec"]);
        let durable: Vec<_> = PeerKind::ALL.iter().map(|k| k.durable()).collect();
        assert_eq!(durable, [true, true, false]);
        assert_eq!(PeerKind::RedisEverysec.binary(), "redis-server");
    }

    #[test]
    fn versions_are_read_from_the_first_line() {
        let etcd = "etcd Version: 3.4.23\nGit SHA: Not provided\nGo Version: go1.19.8\n";
        assert_eq!(parse_version(PeerKind::Etcd, etcd).as_deref(), Some("etcd 3.4.23"));
        let redis = "Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64 build=e08dbad3e\n";
        assert_eq!(
            parse_version(PeerKind::RedisAlways, redis).as_deref(),
            Some("redis 7.0.15")
        );
        assert_eq!(
            parse_version(PeerKind::Etcd, "something else\n").as_deref(),
            Some("something else")
        );
        assert_eq!(parse_version(PeerKind::Etcd, "\n"), None);
    }

    #[test]
    fn tokens_are_unique_and_pauses_bounded() {
        let tokens: std::collections::HashSet<_> = (0..1000).map(|_| lock_token()).collect();
        assert_eq!(tokens.len(), 1000);
        let mut p = Patience::new(Duration::from_secs(1));
        let pauses: Vec<_> = (0..1000).map(|_| p.next_pause()).collect();
        assert!(pauses
            .iter()
            .all(|d| (Duration::from_micros(200)..=Duration::from_millis(2)).contains(d)));
        assert!(pauses.iter().any(|d| *d != pauses[0]), "pauses are jittered");
    }

    #[tokio::test]
    async fn patience_runs_out() {
        let mut p = Patience::new(Duration::from_millis(20));
        let started = Instant::now();
        let mut pauses = 0;
        while p.pause().await {
            pauses += 1;
            assert!(started.elapsed() < Duration::from_secs(5), "never ran out");
        }
        assert!(pauses >= 1 && started.elapsed() >= Duration::from_millis(20));
    }

    #[test]
    fn free_ports_differ_and_missing_programs_are_explained() {
        let [a, b] = free_ports().expect("ports");
        assert!(a != b && a != 0 && b != 0);
        let msg = missing(PeerKind::Etcd).to_string();
        assert!(msg.contains("bench/peers.sh install") && msg.contains("etcd"), "{msg}");
    }
}
