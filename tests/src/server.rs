//! Running the real `lockd` binary for wire-level tests: build it once per
//! test process, start it on an ephemeral TCP port or a Unix socket, talk to
//! it with [`Client`], stop it with SIGTERM or SIGKILL.
//!
//! Every server gets its own temporary `HOME`, so a developer's
//! `~/.lockd/config.yaml` can never leak into a test, and the `LOCKD_*` and
//! `RUST_LOG` variables of the calling shell are removed for the same reason.

mod client;

use std::io::{BufRead, BufReader};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use client::{observed_errors, Client, Proto, Reply};

/// How long a server may take to print its `listening on` line.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// How long a SIGTERM'd server may take to exit before the test gives up.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// The marker the server logs once its socket is bound.
const LISTENING: &str = "listening on ";

/// A running `lockd` process. Dropping it kills the process.
#[derive(Debug)]
pub struct LockdServer {
    child: Child,
    exit: Option<ExitStatus>,
    addr: String,
    unix: Option<PathBuf>,
    log: Arc<Mutex<String>>,
    reader: Option<JoinHandle<()>>,
    home: tempfile::TempDir,
}

impl LockdServer {
    /// Starts `lockd <args>` and waits until it listens. Panics (with the
    /// server's stderr) if it does not start within 20 s.
    pub fn start(args: &[&str]) -> LockdServer {
        let home = tempfile::tempdir().expect("create a temporary HOME for lockd");
        Self::start_in(home, args)
    }

    /// An in-memory server on an ephemeral 127.0.0.1 port, plain HTTP;
    /// `extra` flags are appended.
    pub fn start_tcp(extra: &[&str]) -> LockdServer {
        let mut args = vec![
            "--store",
            "mem://",
            "--listen",
            "127.0.0.1:0",
            "--disable-mtls",
            "--log-level",
            "info",
        ];
        args.extend_from_slice(extra);
        Self::start(&args)
    }

    /// An in-memory server on a Unix socket inside its temporary HOME;
    /// `extra` flags are appended.
    pub fn start_unix(extra: &[&str]) -> LockdServer {
        let home = tempfile::tempdir().expect("create a temporary HOME for lockd");
        let sock = home.path().join("lockd.sock");
        let sock = sock.to_str().expect("temporary paths are UTF-8").to_string();
        let mut args = vec![
            "--store",
            "mem://",
            "--listen-proto",
            "unix",
            "--listen",
            sock.as_str(),
            "--disable-mtls",
            "--log-level",
            "info",
        ];
        args.extend_from_slice(extra);
        Self::start_in(home, &args)
    }

    fn start_in(home: tempfile::TempDir, args: &[&str]) -> LockdServer {
        let bin = lockd_binary();
        let mut cmd = Command::new(bin);
        cmd.args(args)
            .env("HOME", home.path())
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("LOCKD_") {
                cmd.env_remove(name);
            }
        }
        // SAFETY: the closure runs in the forked child before exec and only
        // calls prctl(2), which is async-signal-safe. It asks the kernel to
        // SIGKILL the server if the thread that spawned it dies, so a test
        // process killed by a timeout leaves no server behind.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
        let stderr = child.stderr.take().expect("stderr is piped");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, lines) = mpsc::channel::<String>();
        let sink = Arc::clone(&log);
        // The pipe is drained for the server's whole life so it never
        // blocks on a full pipe, and tests can inspect what it logged.
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                if let Ok(mut all) = sink.lock() {
                    all.push_str(&line);
                    all.push('\n');
                }
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + START_TIMEOUT;
        let addr = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(addr) = listening_addr(&line) {
                        break addr;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "lockd {args:?} did not print {LISTENING:?} within {START_TIMEOUT:?}; stderr so far:\n{}",
                        snapshot(&log)
                    );
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = child.wait();
                    let _ = reader_join(&mut Some(reader));
                    panic!(
                        "lockd {args:?} exited before listening ({status:?}); stderr:\n{}",
                        snapshot(&log)
                    );
                }
            }
        };
        let unix = addr.starts_with('/').then(|| PathBuf::from(&addr));
        LockdServer {
            child,
            exit: None,
            addr,
            unix,
            log,
            reader: Some(reader),
            home,
        }
    }

    /// The bound address as the server printed it: `ip:port`, or the socket
    /// path for a Unix listener.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The socket path when the server listens on a Unix socket.
    pub fn unix_path(&self) -> Option<&Path> {
        self.unix.as_deref()
    }

    /// The temporary HOME of this server (scratch space for a test too).
    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// Process id, for tests that inspect `/proc`.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the server wrote to stderr so far.
    pub fn stderr(&self) -> String {
        snapshot(&self.log)
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        if self.exit.is_some() {
            return false;
        }
        match self.child.try_wait() {
            Ok(None) => true,
            Ok(Some(status)) => {
                self.exit = Some(status);
                false
            }
            Err(_) => false,
        }
    }

    /// A client for this server over `proto`.
    pub fn client(&self, proto: Proto) -> Client {
        match &self.unix {
            Some(path) => Client::unix(path.clone(), proto),
            None => Client::tcp(self.addr.clone(), proto),
        }
    }

    /// Sends SIGTERM and waits for the exit (panics after 20 s, killing
    /// the server). Returns the exit status; stderr is then complete.
    pub fn stop(&mut self) -> ExitStatus {
        self.terminate();
        self.wait()
    }

    /// Sends SIGTERM and returns at once, so a test can watch the graceful
    /// shutdown while it happens; [`LockdServer::wait`] reaps the process.
    pub fn terminate(&self) {
        if self.exit.is_some() {
            return;
        }
        let pid = libc::pid_t::try_from(self.child.id()).expect("pids fit in pid_t");
        // SAFETY: kill(2) on our own child, not yet reaped (`exit` is unset):
        // the pid cannot have been reused by another process.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }

    /// Waits for the process to exit (panics after 20 s, killing it) and
    /// returns its status; stderr is then complete.
    pub fn wait(&mut self) -> ExitStatus {
        if let Some(status) = self.exit {
            return status;
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    self.exit = Some(status);
                    let _ = reader_join(&mut self.reader);
                    return status;
                }
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                _ => {
                    let status = self.kill9();
                    panic!(
                        "lockd did not exit within {STOP_TIMEOUT:?} (killed: {status:?}); stderr:\n{}",
                        self.stderr()
                    );
                }
            }
        }
    }

    /// SIGKILLs the server and reaps it.
    pub fn kill9(&mut self) -> ExitStatus {
        if let Some(status) = self.exit {
            return status;
        }
        let _ = self.child.kill();
        let status = self.child.wait().unwrap_or_else(|e| panic!("cannot reap lockd: {e}"));
        self.exit = Some(status);
        let _ = reader_join(&mut self.reader);
        status
    }

    /// Panics unless the process is alive and has logged no panic.
    pub fn assert_healthy(&mut self) {
        assert!(
            self.is_running(),
            "lockd exited: {:?}; stderr:\n{}",
            self.exit,
            self.stderr()
        );
        let log = self.stderr();
        assert!(!log.contains("panicked"), "lockd logged a panic:\n{log}");
    }
}

impl Drop for LockdServer {
    fn drop(&mut self) {
        if self.exit.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// True if the status is a clean `exit(0)`.
pub fn exited_cleanly(status: &ExitStatus) -> bool {
    status.code() == Some(0) && status.signal().is_none()
}

/// The address in a `... listening on <addr> ...` log line (text or JSON
/// log format).
fn listening_addr(line: &str) -> Option<String> {
    let (_, rest) = line.split_once(LISTENING)?;
    let token: String = rest
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != '"' && *c != ',')
        .collect();
    (!token.is_empty()).then_some(token)
}

fn snapshot(log: &Mutex<String>) -> String {
    log.lock().map(|s| s.clone()).unwrap_or_default()
}

fn reader_join(reader: &mut Option<JoinHandle<()>>) -> std::thread::Result<()> {
    reader.take().map(JoinHandle::join).unwrap_or(Ok(()))
}

/// Path of a freshly built `lockd`, built once per test process.
///
/// Cargo gives integration tests only the binaries of their own package, so
/// the `lockd` package is built here with the same cargo (`$CARGO`) and
/// profile; the binary lands next to the test's `deps` directory. A failed
/// build is remembered, so every test reports it at once instead of each
/// retrying it. `LOCKD_TEST_BIN=/path/to/lockd` skips the build and runs
/// that binary instead (another build, or another implementation).
pub fn lockd_binary() -> &'static Path {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match BIN.get_or_init(build_lockd) {
        Ok(path) => path,
        Err(why) => panic!("{why}"),
    }
}

fn build_lockd() -> Result<PathBuf, String> {
    if let Some(bin) = std::env::var_os("LOCKD_TEST_BIN") {
        let bin = PathBuf::from(bin);
        return if bin.is_file() {
            Ok(bin)
        } else {
            Err(format!("LOCKD_TEST_BIN={} is not a file", bin.display()))
        };
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("the tests crate lives inside the workspace")?;
    let out = Command::new(&cargo)
        .args(["build", "-p", "lockd", "--bin", "lockd"])
        .current_dir(workspace)
        .output()
        .map_err(|e| format!("cannot run {cargo:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`cargo build -p lockd` failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let exe = std::env::current_exe().map_err(|e| format!("the test binary does not know its path: {e}"))?;
    // .../target/debug/deps/<test> → .../target/debug/lockd
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|dir| dir.join("lockd"))
        .ok_or("test binaries live in target/<profile>/deps")?;
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!("built lockd, but {} does not exist", bin.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_line_forms() {
        let text = "2026-01-01T00:00:00Z  INFO lockd::serve: listening on 127.0.0.1:4321 (plain HTTP) store=mem://";
        assert_eq!(listening_addr(text).as_deref(), Some("127.0.0.1:4321"));
        let json = r#"{"fields":{"message":"listening on /tmp/x/lockd.sock (plain HTTP)"}}"#;
        assert_eq!(listening_addr(json).as_deref(), Some("/tmp/x/lockd.sock"));
        let bare = r#"{"message":"listening on [::1]:9341","level":"INFO"}"#;
        assert_eq!(listening_addr(bare).as_deref(), Some("[::1]:9341"));
        assert_eq!(listening_addr("starting up"), None);
    }
}
