//! The server under test as a child process (`--spawn`), plain or with
//! mTLS from a bundle set made by `lockd --bootstrap`, and CPU time of this
//! process and the server from `/proc`.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::driver::Addr;
use crate::error::{Error, Result};

/// How long a spawned server may take to say where it listens.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long it may take to shut down after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// Lines of the server's stderr kept to explain a failure.
const LOG_TAIL: usize = 40;

/// Where a spawned server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Listen {
    /// Any free port on 127.0.0.1.
    Loopback,
    /// A Unix socket at this path.
    Unix(PathBuf),
}

/// How a spawned server treats its clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Security {
    /// `--disable-mtls`: plain HTTP, no client certificates.
    Plain,
    /// mTLS (lockd's default) with this server bundle (`--bundle`).
    Mtls(PathBuf),
}

/// The bundles `lockd --bootstrap` wrote that the bench needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Bootstrapped {
    /// CA, server certificate and key: what the server is started with.
    pub server_bundle: PathBuf,
    /// CA, client certificate and key: what the bench connects with.
    pub client_bundle: PathBuf,
}

/// Makes a CA, a server bundle and a client bundle in `dir` with
/// `bin --bootstrap <dir>` (the same clean environment as [`ServerProcess::spawn`],
/// `home` as `$HOME`), so the bench can start lockd with mTLS without any
/// set-up by the user. Its output goes to `home/mtls-bootstrap.log` and is
/// quoted when it fails.
pub(crate) fn bootstrap(bin: &Path, dir: &Path, home: &Path) -> Result<Bootstrapped> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
    let log_path = home.join("mtls-bootstrap.log");
    let log = std::fs::File::create(&log_path).map_err(|e| Error::io("create", &log_path, e))?;
    let log_err = log.try_clone().map_err(|e| Error::io("open", &log_path, e))?;
    let mut cmd = clean_command(bin, home);
    cmd.arg("--bootstrap").arg(dir).stdout(log).stderr(log_err);
    die_with_parent(&mut cmd);
    let mut child = cmd.spawn().map_err(|e| Error::io("start", bin, e))?;
    let deadline = Instant::now() + START_TIMEOUT;
    let failed = |what: String| {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(LOG_TAIL)..].join("\n  ");
        Error::Other(format!(
            "{} --bootstrap {} {what}; its output:\n  {tail}",
            bin.display(),
            dir.display()
        ))
    };
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(failed(format!(
                    "did not finish within {START_TIMEOUT:?} and was killed"
                )));
            }
            Err(e) => return Err(Error::io("wait for", bin, e)),
        }
    };
    if !status.success() {
        return Err(failed(format!("failed ({status})")));
    }
    let made = Bootstrapped {
        server_bundle: dir.join("server.pem"),
        client_bundle: dir.join("client.pem"),
    };
    for f in [&made.server_bundle, &made.client_bundle] {
        if !f.is_file() {
            return Err(failed(format!("succeeded but wrote no {}", f.display())));
        }
    }
    Ok(made)
}

/// `bin` with `home` as `$HOME` and no `LOCKD_*` or `RUST_LOG` variables,
/// so neither a personal config file nor the caller's environment changes
/// what is measured.
fn clean_command(bin: &Path, home: &Path) -> Command {
    let mut cmd = Command::new(bin);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("LOCKD_") {
            cmd.env_remove(&k);
        }
    }
    cmd.env_remove("RUST_LOG").env("HOME", home).stdin(Stdio::null());
    cmd
}

/// A `lockd` child process.
pub(crate) struct ServerProcess {
    child: Option<Child>,
    /// Where it listens.
    pub addr: Addr,
    /// Its process id, for CPU time.
    pub pid: u32,
    tail: Arc<Mutex<VecDeque<String>>>,
}

/// The `lockd` binary to spawn: `explicit` if given, else the one built
/// next to this executable (`target/<profile>/lockd`; test binaries live
/// one level deeper, in `deps/`).
pub(crate) fn find_server_binary(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = explicit {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(Error::Invalid(format!("--server-bin {}: no such file", p.display())))
        };
    }
    let exe = std::env::current_exe().map_err(|e| Error::io("locate", Path::new("current executable"), e))?;
    let mut dir = exe.parent();
    for _ in 0..2 {
        let Some(d) = dir else { break };
        let candidate = d.join("lockd");
        if candidate.is_file() {
            return Ok(candidate);
        }
        dir = d.parent();
    }
    Err(Error::Invalid(format!(
        "no lockd binary next to {}: build it (cargo build --release -p lockd) or pass --server-bin",
        exe.display()
    )))
}

/// Makes the child get SIGTERM when the thread that starts it dies, so a
/// bench killed outright (CI timeout, SIGKILL) leaves no server behind;
/// `Drop` covers every orderly exit. Servers are started from the thread
/// that stops them, which outlives them.
pub(crate) fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the forked child before exec and only
    // calls prctl(2), which is async-signal-safe; it touches no memory of
    // the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// The address in a `listening on <addr> …` log line.
pub(crate) fn parse_listening(line: &str) -> Option<&str> {
    let rest = &line[line.find("listening on ")? + "listening on ".len()..];
    rest.split_whitespace().next()
}

impl ServerProcess {
    /// Starts `bin --store <store>` listening as `listen`, with
    /// `--disable-mtls` or `--bundle <server bundle>` as `security` says
    /// (the mTLS one with `--disable-storage-encryption`: the bootstrapped
    /// bundle holds a storage key, and the plain server stores plaintext, so
    /// the two differ by the transport alone),
    /// with `home` as its `$HOME` (so no personal config file is read) and
    /// no `LOCKD_*` or `RUST_LOG` variables, and waits until it listens.
    pub(crate) fn spawn(
        bin: &Path,
        store: &str,
        listen: &Listen,
        security: &Security,
        home: &Path,
    ) -> Result<ServerProcess> {
        let mut cmd = clean_command(bin, home);
        cmd.args(["--store", store, "--log-level", "info"]);
        match security {
            Security::Plain => cmd.arg("--disable-mtls"),
            Security::Mtls(bundle) => cmd.arg("--bundle").arg(bundle).arg("--disable-storage-encryption"),
        };
        match listen {
            Listen::Loopback => cmd.args(["--listen", "127.0.0.1:0"]),
            Listen::Unix(p) => cmd.arg("--listen").arg(p).args(["--listen-proto", "unix"]),
        };
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        die_with_parent(&mut cmd);
        let mut child = cmd.spawn().map_err(|e| Error::io("start", bin, e))?;
        let pid = child.id();
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let (tx, rx) = mpsc::channel::<String>();
        if let Some(stderr) = child.stderr.take() {
            let tail = Arc::clone(&tail);
            std::thread::spawn(move || {
                // Keep draining after the address is known so that the
                // server never blocks on a full pipe.
                for line in BufReader::new(stderr).lines().map_while(std::io::Result::ok) {
                    if let Some(addr) = parse_listening(&line) {
                        let _ = tx.send(addr.to_string());
                    }
                    let mut t = tail.lock();
                    if t.len() == LOG_TAIL {
                        t.pop_front();
                    }
                    t.push_back(line);
                }
            });
        }
        let mut server = ServerProcess {
            child: Some(child),
            addr: Addr::Tcp(String::new()),
            pid,
            tail,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        let announced = loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(a) => break a,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(server.failure("exited before listening"));
                }
                Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() > deadline => {
                    return Err(server.failure("did not say where it listens in time"));
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
        };
        server.addr = match listen {
            Listen::Loopback => Addr::parse(&announced)
                .map_err(|e| server.failure(&format!("announced an address this bench cannot use: {e}")))?,
            Listen::Unix(p) => Addr::Unix(p.clone()),
        };
        Ok(server)
    }

    /// An error naming the server and quoting the end of its log.
    fn failure(&mut self, what: &str) -> Error {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let tail: Vec<String> = self.tail.lock().iter().cloned().collect();
        Error::Other(format!(
            "lockd server (pid {}) {what}; its last log lines:\n  {}",
            self.pid,
            tail.join("\n  ")
        ))
    }

    /// Asks the server to shut down (SIGTERM) and waits; kills it if it
    /// does not stop in time.
    pub(crate) fn stop(mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let pid =
            libc::pid_t::try_from(self.pid).map_err(|_| Error::Other(format!("pid {} out of range", self.pid)))?;
        // SAFETY: plain kill(2) on the process we started and still own (not yet reaped).
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(status)) => {
                    let tail: Vec<String> = self.tail.lock().iter().cloned().collect();
                    return Err(Error::Other(format!(
                        "lockd server (pid {}) exited with {status}; its last log lines:\n  {}",
                        self.pid,
                        tail.join("\n  ")
                    )));
                }
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(Error::Other(format!(
                        "lockd server (pid {}) ignored SIGTERM for {STOP_TIMEOUT:?} and was killed",
                        self.pid
                    )));
                }
                Err(e) => return Err(Error::io("wait for", Path::new("lockd server"), e)),
            }
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `utime + stime` in clock ticks from the text of `/proc/<pid>/stat`.
pub(crate) fn parse_stat_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) may hold spaces and parentheses: count
    // fields from the last ')'. utime and stime are fields 14 and 15.
    let after = &stat[stat.rfind(')')? + 1..];
    let mut f = after.split_whitespace().skip(11);
    let utime: u64 = f.next()?.parse().ok()?;
    let stime: u64 = f.next()?.parse().ok()?;
    Some(utime + stime)
}

fn cpu_seconds(stat_path: &str) -> Option<f64> {
    let text = std::fs::read_to_string(stat_path).ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (hz > 0).then(|| parse_stat_ticks(&text).map(|t| t as f64 / hz as f64))?
}

/// Reads the CPU time of this process and of the server (when its pid is
/// known: a spawned server).
#[derive(Debug, Clone)]
pub(crate) struct CpuClock {
    server: Option<String>,
}

/// One reading of a [`CpuClock`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct CpuSample {
    client: Option<f64>,
    server: Option<f64>,
}

impl CpuClock {
    /// A clock for this process and the server with `server_pid`.
    pub(crate) fn new(server_pid: Option<u32>) -> CpuClock {
        CpuClock {
            server: server_pid.map(|p| format!("/proc/{p}/stat")),
        }
    }

    /// CPU seconds used so far.
    pub(crate) fn sample(&self) -> CpuSample {
        CpuSample {
            client: cpu_seconds("/proc/self/stat"),
            server: self.server.as_deref().and_then(cpu_seconds),
        }
    }
}

impl CpuSample {
    /// CPU seconds (client, server) spent between this sample and `later`.
    pub(crate) fn since(&self, later: &CpuSample) -> (Option<f64>, Option<f64>) {
        let d = |a: Option<f64>, b: Option<f64>| Some((b? - a?).max(0.0));
        (d(self.client, later.client), d(self.server, later.server))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_address_in_the_log_line() {
        let line =
            "2026-11-23T19:49:04Z  INFO lockd::serve: listening on 127.0.0.1:39987 (plain HTTP; h2c) store=mem://";
        assert_eq!(parse_listening(line), Some("127.0.0.1:39987"));
        assert_eq!(parse_listening("INFO listening on /tmp/x.sock"), Some("/tmp/x.sock"));
        assert_eq!(parse_listening("INFO starting"), None);
    }

    #[test]
    fn cpu_ticks_survive_odd_command_names() {
        let stat = "1234 (we (ird) x) S 1 2 3 4 5 6 7 8 9 10 250 31 0 0 20 0 1";
        assert_eq!(parse_stat_ticks(stat), Some(281));
        assert_eq!(parse_stat_ticks("garbage"), None);
        let mine = CpuClock::new(Some(std::process::id())).sample();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        let (client, server) = mine.since(&CpuClock::new(Some(std::process::id())).sample());
        assert!(client.is_some_and(|c| c >= 0.0) && server.is_some());
        assert!(CpuClock::new(None).sample().server.is_none());
    }

    #[test]
    fn a_failed_or_empty_bootstrap_is_an_error() {
        let home = tempfile::tempdir().expect("tempdir");
        let dir = home.path().join("mtls");
        let err = bootstrap(Path::new("/bin/false"), &dir, home.path()).expect_err("false fails");
        assert!(
            err.to_string().contains("--bootstrap") && err.to_string().contains("failed"),
            "{err}"
        );
        let err = bootstrap(Path::new("/bin/true"), &dir, home.path()).expect_err("true writes nothing");
        assert!(err.to_string().contains("wrote no"), "{err}");
        std::fs::write(dir.join("server.pem"), "s").expect("write");
        std::fs::write(dir.join("client.pem"), "c").expect("write");
        let made = bootstrap(Path::new("/bin/true"), &dir, home.path()).expect("bundles present");
        assert_eq!(made.client_bundle, dir.join("client.pem"));
        assert_eq!(made.server_bundle, dir.join("server.pem"));
    }

    #[test]
    fn a_missing_server_binary_is_explained() {
        let err = find_server_binary(Some(Path::new("/nonexistent/lockd")));
        assert!(matches!(err, Err(Error::Invalid(m)) if m.contains("--server-bin")));
    }
}
