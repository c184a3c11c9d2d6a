//! Harness shared by the black-box tests of the `lockd` binary: run it
//! with a clean environment, start a server and read its log lines.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
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
