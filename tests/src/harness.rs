//! Driving `logstore-crash-child` from a test: spawn it, read its protocol
//! lines while it runs, SIGKILL it, and read the store it left behind.
//!
//! The binary's path is a parameter because only integration tests know
//! it (`env!("CARGO_BIN_EXE_logstore-crash-child")`).

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lockd_logstore::{LogStore, Options};

use crate::crash_model::Found;

/// SIGKILL's number (9 on every Unix this runs on).
const SIGKILL: i32 = 9;

/// When [`Child::wait_for`] returns.
#[derive(Debug, Clone, Copy)]
pub enum Stop {
    /// After this many `ack` lines.
    Acks(usize),
    /// This long after the child was spawned.
    After(Duration),
    /// At the first line starting with this prefix.
    Line(&'static str),
}

/// A running child with its output being collected.
#[derive(Debug)]
pub struct Child {
    child: std::process::Child,
    lines: Receiver<String>,
    seen: Vec<String>,
    stdout: Option<JoinHandle<()>>,
    stderr: Option<JoinHandle<String>>,
    started: Instant,
}

/// Everything a child said before it was killed, and how it ended.
#[derive(Debug)]
pub struct Run {
    /// Its stdout, line by line (including what was still in the pipe).
    pub lines: Vec<String>,
    /// Its stderr.
    pub stderr: String,
    /// How it ended.
    pub status: ExitStatus,
    /// Time from spawn to kill.
    pub ran_for: Duration,
}

impl Child {
    /// Starts `bin <dir> <mode> <io>` with stdout and stderr piped.
    pub fn spawn(bin: &Path, dir: &Path, mode: &str, io: &str) -> std::io::Result<Child> {
        let mut child = Command::new(bin)
            .arg(dir)
            .arg(mode)
            .arg(io)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let started = Instant::now();
        let out = child
            .stdout
            .take()
            .ok_or_else(|| std::io::Error::other("no stdout pipe"))?;
        let mut err = child
            .stderr
            .take()
            .ok_or_else(|| std::io::Error::other("no stderr pipe"))?;
        let (tx, lines) = mpsc::channel();
        // Reading happens on threads so the child never blocks on a full
        // pipe and the test can wait with a deadline.
        let stdout = std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        Ok(Child {
            child,
            lines,
            seen: Vec::new(),
            stdout: Some(stdout),
            stderr: Some(stderr),
            started,
        })
    }

    /// Collects output until `stop` is met, the child closes stdout (it
    /// died), or `cap` has passed since the spawn. Returns whether `stop`
    /// was met.
    pub fn wait_for(&mut self, stop: Stop, cap: Duration) -> bool {
        let mut deadline = self.started + cap;
        if let Stop::After(d) = stop {
            deadline = deadline.min(self.started + d);
        }
        let mut acks = self.seen.iter().filter(|l| l.starts_with("ack ")).count();
        loop {
            let met = match stop {
                Stop::Acks(k) => acks >= k,
                Stop::After(_) => Instant::now() >= deadline,
                Stop::Line(p) => self.seen.iter().any(|l| l.starts_with(p)),
            };
            if met {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            match self.lines.recv_timeout(deadline - now) {
                Ok(line) => {
                    acks += usize::from(line.starts_with("ack "));
                    self.seen.push(line);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return false,
            }
        }
    }

    /// Sends SIGKILL (`Child::kill` on Unix), reaps the child and returns
    /// all it printed, including lines still in the pipe: those acks were
    /// printed after their commit returned, so they count too.
    pub fn kill(mut self) -> std::io::Result<Run> {
        let ran_for = self.started.elapsed();
        // An already exited child makes kill fail; its status tells.
        let _ = self.child.kill();
        let status = self.child.wait()?;
        if let Some(h) = self.stdout.take() {
            let _ = h.join();
        }
        self.seen.extend(self.lines.try_iter());
        let stderr = self.stderr.take().and_then(|h| h.join().ok()).unwrap_or_default();
        Ok(Run {
            lines: std::mem::take(&mut self.seen),
            stderr,
            status,
            ran_for,
        })
    }
}

impl Drop for Child {
    /// A test that panics half-way must not leave a writer running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Run {
    /// True if the child died of our SIGKILL rather than by itself.
    pub fn killed(&self) -> bool {
        self.status.signal() == Some(SIGKILL)
    }

    /// The `(batch, seq)` pairs of its `ack` lines.
    pub fn acks(&self) -> Vec<(u64, u64)> {
        self.lines
            .iter()
            .filter_map(|l| {
                let mut w = l.strip_prefix("ack ")?.split(' ');
                Some((w.next()?.parse().ok()?, w.next()?.parse().ok()?))
            })
            .collect()
    }

    /// Number of lines starting with `prefix`.
    pub fn count(&self, prefix: &str) -> usize {
        self.lines.iter().filter(|l| l.starts_with(prefix)).count()
    }

    /// The last few lines, for failure messages.
    pub fn tail(&self) -> &[String] {
        &self.lines[self.lines.len().saturating_sub(5)..]
    }
}

/// Copies the regular files of `from` into `to` (created if needed).
pub fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name()))?;
        }
    }
    Ok(())
}

/// Opens the store in `dir` and returns its whole content and last
/// sequence number, then closes it.
///
/// Callers that want the crashed directory itself untouched (so the next
/// child recovers the crash, not a cleanly closed store) pass a copy.
pub fn read_back(dir: &Path) -> lockd_logstore::Result<(Vec<Found>, u64)> {
    let opts = Options {
        compaction: false,
        segment_size: 64 << 10,
        ..Options::default()
    };
    let store = LogStore::open(dir, opts)?;
    let mut found = Vec::new();
    for e in store.scan(b"", None, usize::MAX)? {
        found.push(Found {
            key: e.key.to_vec(),
            seq: e.seq,
            value: e.value.to_bytes()?.to_vec(),
        });
    }
    let last_seq = store.stats().last_seq;
    store.close()?;
    Ok((found, last_seq))
}
