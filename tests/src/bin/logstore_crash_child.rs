//! `logstore-crash-child <dir> <mode> [io]`: the process the logstore crash
//! tests kill with SIGKILL.
//!
//! It opens the store in `dir` (recovering whatever the previous, killed
//! run left), finds where each writer thread stopped from the
//! `meta/last/t{t}` keys, and then commits the batches of
//! [`lockd_tests::crash_model`] forever from `THREADS` threads, printing
//! `ack {n} {seq}` on stdout after each commit returned (that is, after its
//! fdatasync). The test reads those lines to know what was acknowledged.
//!
//! Modes:
//! * `plain` — commits only, compaction off;
//! * `compact` — the background compactor on a 50 ms timer with every
//!   threshold at its minimum, plus a thread forcing `compact_now` in a
//!   loop, so that kills land inside compactions (prints `compacting`
//!   before and `compacted {k}` after each forced pass);
//! * `checkpoint` — a thread writing index checkpoints back to back, and
//!   size-triggered checkpoints every 16 KiB (prints `checkpointing` and
//!   `checkpointed`);
//! * `split` — deliberately wrong: commits each batch as two commits and
//!   prints `half {n}` in between, so a test can prove the checker notices
//!   a torn batch.
//!
//! `io` is `auto` (default), `uring` or `sync`.
//!
//! Any error ends the process with a non-zero status and a message on
//! stderr: the test treats a child that dies by itself as a failure.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use lockd_logstore::{Batch, IoMode, LogStore, Options};
use lockd_tests::crash_model::{self, ModelOp, THREADS};

/// Segment size: small, so that segments roll every few dozen batches and
/// kills land around rolls, seals and manifest rewrites.
const SEGMENT_SIZE: u64 = 64 << 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Plain,
    Compact,
    Checkpoint,
    Split,
}

fn parse_mode(s: &str) -> Option<Mode> {
    match s {
        "plain" => Some(Mode::Plain),
        "compact" => Some(Mode::Compact),
        "checkpoint" => Some(Mode::Checkpoint),
        "split" => Some(Mode::Split),
        _ => None,
    }
}

fn options(mode: Mode, io: IoMode) -> Options {
    let base = Options {
        io,
        segment_size: SEGMENT_SIZE,
        compaction: false,
        delete_grace: Duration::ZERO,
        ..Options::default()
    };
    match mode {
        Mode::Compact => Options {
            compaction: true,
            compaction_interval: Duration::from_millis(50),
            compaction_min_segments: 1,
            compaction_min_reclaim: 0,
            compaction_throttle: 0,
            ..base
        },
        Mode::Checkpoint => Options {
            snapshot_every_bytes: 16 << 10,
            ..base
        },
        Mode::Plain | Mode::Split => base,
    }
}

/// Ends the process: a child that cannot go on must not look like one that
/// was killed by the test.
fn die(msg: &str) -> ! {
    eprintln!("logstore-crash-child: {msg}");
    std::process::exit(3)
}

/// Prints one protocol line and flushes it at once, so that the test sees
/// every ack the moment it is true. A closed pipe means the test is gone.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
        std::process::exit(0);
    }
}

fn batch_of(ops: &[ModelOp]) -> Batch {
    let mut b = Batch::new();
    for op in ops {
        match op {
            ModelOp::Put(k, v) => b.put(k.clone().into_bytes(), v.clone()),
            ModelOp::Delete(k) => b.delete(k.clone().into_bytes()),
        };
    }
    b
}

/// The first batch number thread `t` has still to commit.
fn resume_point(store: &LogStore, t: u64) -> u64 {
    let key = crash_model::last_key(t);
    match store.get(key.as_bytes()) {
        Ok(None) => t,
        Ok(Some(e)) => {
            let bytes = e
                .value
                .to_bytes()
                .unwrap_or_else(|err| die(&format!("read {key}: {err}")));
            match crash_model::origin(&bytes) {
                Some(n) => n + THREADS,
                None => die(&format!("{key} holds a malformed value")),
            }
        }
        Err(err) => die(&format!("get {key}: {err}")),
    }
}

/// Commits thread `t`'s batches from `first` on, forever.
fn writer(store: &LogStore, mode: Mode, first: u64) {
    let mut n = first;
    loop {
        let ops = crash_model::batch_ops(n);
        let seq = if mode == Mode::Split {
            let (a, b) = ops.split_at(ops.len() / 2);
            if let Err(e) = store.commit(batch_of(a)) {
                die(&format!("commit of the first half of batch {n}: {e}"));
            }
            say(&format!("half {n}"));
            std::thread::sleep(Duration::from_millis(200));
            store.commit(batch_of(b))
        } else {
            store.commit(batch_of(&ops))
        };
        match seq {
            Ok(seq) => say(&format!("ack {n} {seq}")),
            Err(e) => die(&format!("commit of batch {n}: {e}")),
        }
        n += THREADS;
    }
}

/// Background pressure for the `compact` and `checkpoint` modes. Each
/// pass is announced before it starts, so the test can tell a kill that
/// landed inside one.
fn maintenance(store: &LogStore, mode: Mode) {
    loop {
        match mode {
            Mode::Compact => say("compacting"),
            Mode::Checkpoint => say("checkpointing"),
            Mode::Plain | Mode::Split => return,
        }
        match mode {
            Mode::Compact => match store.compact_now() {
                Ok(0) => {}
                Ok(k) => say(&format!("compacted {k}")),
                Err(e) => die(&format!("compact_now: {e}")),
            },
            Mode::Checkpoint => match store.checkpoint() {
                Ok(()) => say("checkpointed"),
                Err(e) => die(&format!("checkpoint: {e}")),
            },
            Mode::Plain | Mode::Split => return,
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 || args.len() > 4 {
        die("usage: logstore-crash-child <dir> <plain|compact|checkpoint|split> [auto|uring|sync]");
    }
    let mode = parse_mode(&args[2]).unwrap_or_else(|| die(&format!("unknown mode {:?}", args[2])));
    let io = match args.get(3) {
        Some(s) => s.parse::<IoMode>().unwrap_or_else(|e| die(&e)),
        None => IoMode::Auto,
    };
    let store = match LogStore::open(&args[1], options(mode, io)) {
        Ok(s) => Arc::new(s),
        Err(e) => die(&format!("open {}: {e}", args[1])),
    };
    let mut threads = Vec::new();
    for t in 0..THREADS {
        let first = resume_point(&store, t);
        let store = Arc::clone(&store);
        let spawned = std::thread::Builder::new()
            .name(format!("writer-{t}"))
            .spawn(move || writer(&store, mode, first));
        threads.push(spawned.unwrap_or_else(|e| die(&format!("spawn writer: {e}"))));
    }
    let bg = Arc::clone(&store);
    std::thread::Builder::new()
        .name("maintenance".into())
        .spawn(move || maintenance(&bg, mode))
        .unwrap_or_else(|e| die(&format!("spawn maintenance: {e}")));
    for t in threads {
        if t.join().is_err() {
            die("a writer thread panicked");
        }
    }
}
