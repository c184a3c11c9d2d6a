//! Harness shared by the black-box tests of the `lockd` binary: run it
//! with a clean environment, start a server and read its log lines, and
//! the few client steps (run a command, drive a shell script, store a
//! document) that more than one test file needs.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The binary under test.
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_lockd");
/// How long any wait in these tests may take before it counts as a hang.
pub(crate) const WAIT: Duration = Duration::from_secs(20);

/// `lockd` with a cleared environment and `HOME` at `home`, so neither the
/// developer's `~/.lockd` nor stray `LOCKD_*` variables change the outcome.
pub(crate) fn lockd(home: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear().env("HOME", home);
    cmd
}

/// A running server and the lines it has logged so far.
pub(crate) struct Server {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// Every line read so far.
    pub(crate) seen: Vec<String>,
}

impl Server {
    /// Spawns `cmd` and starts collecting its stderr lines.
    pub(crate) fn start(mut cmd: Command) -> Server {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn lockd");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Server {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a log line containing `needle` and returns it.
    pub(crate) fn wait_for(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => break,
            }
        }
        panic!("no log line containing {needle:?}; got:\n{}", self.seen.join("\n"));
    }

    /// The bound address from the start line (`listening on 127.0.0.1:41234`).
    pub(crate) fn addr(&mut self) -> String {
        let line = self.wait_for("listening on ");
        let rest = line.split("listening on ").nth(1).expect("address follows");
        rest.split_whitespace().next().expect("address").to_string()
    }

    /// Sends SIGTERM and waits for the exit status.
    pub(crate) fn terminate(&mut self) -> ExitStatus {
        let pid = i32::try_from(self.child.id()).expect("pid fits");
        // SAFETY: kill(2) on our own child's pid has no memory effects.
        let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(rc, 0, "SIGTERM delivered");
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "lockd did not exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the process has not exited yet.
    #[allow(dead_code)] // not every test file needs it
    pub(crate) fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// For a start that should fail: waits (at most [`WAIT`]) for the
    /// process to exit by itself and returns its status and its whole
    /// stderr. Panics if it is still running; the drop then kills it.
    #[allow(dead_code)] // not every test file needs it
    pub(crate) fn exited(&mut self) -> (ExitStatus, String) {
        let deadline = Instant::now() + WAIT;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            if Instant::now() >= deadline {
                panic!("lockd is still running; log so far:\n{}", self.seen.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // The reader thread hangs up at end of file, which ends this loop.
        while let Ok(line) = self.lines.recv_timeout(WAIT) {
            self.seen.push(line);
        }
        (status, self.seen.join("\n"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `cmd` to completion and returns (status, stderr).
pub(crate) fn run(mut cmd: Command) -> (ExitStatus, String) {
    let out = cmd.stdin(Stdio::null()).output().expect("run lockd");
    (out.status, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Runs `cmd` to completion with nothing on stdin and keeps everything it
/// printed, for tests that look at stdout as well as stderr.
#[allow(dead_code)] // not every test file needs it
pub(crate) fn output(mut cmd: Command) -> Output {
    cmd.stdin(Stdio::null()).output().expect("run lockd")
}

/// What a finished command wrote to stderr, as text for messages.
#[allow(dead_code)] // not every test file needs it
pub(crate) fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Stdout of a command that had to succeed. A failure panics with the
/// status and stderr, since that is where `lockd` explains itself.
#[allow(dead_code)] // not every test file needs it
pub(crate) fn ok_stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "status {:?}, stderr: {}",
        out.status,
        stderr_of(out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `script` with `bash -c` in `home`, the way a user would chain
/// `eval "$(lockd client ...)"` calls, and insists that it succeeds.
///
/// The environment is cleared like [`lockd`]'s, keeping only `PATH` (for
/// bash's own tools); the script finds the binary under test in
/// `$LOCKD_BIN` and the server in `$LOCKD_CLIENT_SERVER` (`server`).
#[allow(dead_code)] // not every test file needs it
pub(crate) fn run_script(script: &str, home: &Path, server: &str) -> Output {
    let out = Command::new("bash")
        .arg("-c")
        .arg(script)
        .current_dir(home)
        .env_clear()
        .env("HOME", home)
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("LOCKD_BIN", BIN)
        .env("LOCKD_CLIENT_SERVER", server)
        .stdin(Stdio::null())
        .output()
        .expect("run bash");
    assert!(
        out.status.success(),
        "script failed: {:?}\nstderr:\n{}",
        out.status,
        stderr_of(&out)
    );
    out
}

/// Commits `doc` as the public state of `key` in `namespace`: acquire
/// (`--output json`), update from a file written under `home`, release.
///
/// `client` turns arguments into a `lockd client` command; it carries
/// whatever the test's server needs (address, bundle), so the same steps
/// serve plain and mTLS servers alike. The lease travels between the
/// three commands in `LOCKD_CLIENT_*` variables, as it would in a shell.
#[allow(dead_code)] // not every test file needs it
pub(crate) fn put_doc(home: &Path, client: impl Fn(&[&str]) -> Command, namespace: &str, key: &str, doc: &str) {
    let acquire = [
        "acquire", "-k", key, "-n", namespace, "--owner", "writer", "--output", "json",
    ];
    let acquired: serde_json::Value =
        serde_json::from_str(&ok_stdout(&output(client(&acquire)))).expect("acquire prints JSON");
    let field = |name: &str| match &acquired[name] {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let lease = [
        ("LOCKD_CLIENT_KEY", key.to_string()),
        ("LOCKD_CLIENT_NAMESPACE", namespace.to_string()),
        ("LOCKD_CLIENT_LEASE", field("lease_id")),
        ("LOCKD_CLIENT_TXN_ID", field("txn_id")),
        ("LOCKD_CLIENT_FENCING_TOKEN", field("fencing_token")),
    ];
    let file = home.join(format!("{namespace}-{key}.json"));
    std::fs::write(&file, doc).expect("write doc");
    let file = file.to_str().expect("utf-8 path");
    for args in [&["update", file][..], &["release"]] {
        let mut cmd = client(args);
        cmd.envs(lease.iter().map(|(k, v)| (k, v)));
        ok_stdout(&output(cmd));
    }
}
