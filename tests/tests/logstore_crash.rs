//! Crash tests for `lockd-logstore` with a real child process and SIGKILL.
//!
//! Each variant runs `logstore-crash-child` on one directory again and
//! again: the child recovers what the previous, killed run left, resumes
//! its numbered batches, and is killed after a random number of acks or a
//! random time. After every kill the directory is copied and the copy
//! opened in-process, and [`crash_model::check`] compares its full content
//! and sequence numbers with what the acks allow (see that module for the
//! exact rules). Checking a copy keeps the crashed directory as the kill
//! left it, so the next child exercises real crash recovery rather than a
//! clean close.
//!
//! `LOCKD_CRASH_ITERS` sets the iterations per variant (default 50);
//! `LOCKD_CRASH_SEED` replays a run (the seed is printed on stderr). On a
//! failure the crashed directory is kept under the system temp directory
//! and its path printed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use lockd_tests::crash_model::{self, History};
use lockd_tests::harness::{copy_dir, read_back, Child, Run, Stop};

const CHILD: &str = env!("CARGO_BIN_EXE_logstore-crash-child");

/// How long one child may run when it is waiting for an ack target: a
/// safety net for a slow machine, not part of the test's logic.
const ACK_CAP: Duration = Duration::from_secs(3);

/// xorshift64*: enough randomness for kill points, reproducible by seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn iterations() -> usize {
    match std::env::var("LOCKD_CRASH_ITERS") {
        Ok(v) => v.parse().expect("LOCKD_CRASH_ITERS must be a number"),
        Err(_) => 50,
    }
}

fn seed() -> u64 {
    if let Ok(v) = std::env::var("LOCKD_CRASH_SEED") {
        return v.parse().expect("LOCKD_CRASH_SEED must be a number");
    }
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).expect("getrandom");
    u64::from_le_bytes(b) | 1
}

/// Keeps a copy of the crashed directory for a post-mortem and fails.
fn fail(dir: &Path, mode: &str, seed: u64, iteration: usize, run: &Run, why: &str) -> ! {
    let keep: PathBuf = std::env::temp_dir().join(format!("lockd-crash-{mode}-{seed}-{iteration}"));
    let kept = match copy_dir(dir, &keep) {
        Ok(()) => keep.display().to_string(),
        Err(e) => format!("(could not keep the directory: {e})"),
    };
    panic!(
        "{mode} crash test failed in iteration {iteration} (LOCKD_CRASH_SEED={seed}): {why}\n\
         child ran {:?}, status {}, last lines {:?}, stderr: {}\ncrashed directory kept in {kept}",
        run.ran_for,
        run.status,
        run.tail(),
        run.stderr.trim()
    );
}

/// Summary of one variant, for the test log and the sanity assertions.
#[derive(Debug, Default)]
struct Totals {
    acks: u64,
    unacked_landed: u64,
    /// Background passes (compactions, checkpoints) that finished.
    background_done: usize,
    /// Runs killed while a background pass was under way.
    killed_mid_background: usize,
    killed_before_first_ack: usize,
}

/// The child's announcements of a background pass starting and ending.
#[derive(Debug, Clone, Copy)]
struct Background {
    start: &'static str,
    done: &'static str,
}

/// True if the last background line the child printed was a start, i.e.
/// the kill landed inside a pass.
fn killed_mid_pass(run: &Run, bg: Background) -> bool {
    run.lines
        .iter()
        .rev()
        .find(|l| l.starts_with(bg.start) || l.starts_with(bg.done))
        .is_some_and(|l| l.starts_with(bg.start))
}

/// Runs the kill/recover/check loop for one child mode.
fn crash_loop(mode: &str, background: Option<Background>) -> Totals {
    let iters = iterations();
    let seed = seed();
    eprintln!("{mode}: {iters} iterations, LOCKD_CRASH_SEED={seed}");
    let mut rng = Rng(seed ^ mode.bytes().fold(0u64, |h, b| h.rotate_left(7) ^ u64::from(b)) | 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut hist = History::new();
    let mut totals = Totals::default();
    for it in 0..iters {
        let io = if rng.below(2) == 0 { "auto" } else { "sync" };
        let stop = if rng.below(2) == 0 {
            Stop::Acks(1 + rng.below(150) as usize)
        } else {
            Stop::After(Duration::from_millis(20 + rng.below(281)))
        };
        let mut child = Child::spawn(Path::new(CHILD), dir.path(), mode, io).expect("spawn child");
        child.wait_for(stop, ACK_CAP);
        let run = child.kill().expect("kill and reap child");
        if !run.killed() {
            fail(dir.path(), mode, seed, it, &run, "the child exited by itself");
        }
        let copy = tempfile::tempdir().expect("tempdir");
        copy_dir(dir.path(), copy.path()).expect("copy crashed directory");
        let (found, last_seq) = match read_back(copy.path()) {
            Ok(r) => r,
            Err(e) => fail(dir.path(), mode, seed, it, &run, &format!("reopen failed: {e}")),
        };
        let acks = run.acks();
        if let Err(why) = crash_model::check(&mut hist, &acks, &found, last_seq) {
            fail(dir.path(), mode, seed, it, &run, &why);
        }
        totals.killed_before_first_ack += usize::from(acks.is_empty());
        if let Some(bg) = background {
            totals.background_done += run.count(bg.done);
            totals.killed_mid_background += usize::from(killed_mid_pass(&run, bg));
        }
    }
    totals.acks = hist.acks;
    totals.unacked_landed = hist.unacked_landed;
    eprintln!("{mode}: {totals:?}, last batches {:?}", hist.last);
    assert!(iters == 0 || totals.acks > 0, "{mode}: no batch was ever acknowledged");
    totals
}

#[test]
fn plain_writes_survive_sigkill() {
    crash_loop("plain", None);
}

/// A variant whose point is a background activity must actually have run
/// it, and been killed inside it, or it tests nothing more than `plain`.
fn assert_exercised(what: &str, t: &Totals) {
    if iterations() >= 20 {
        assert!(t.background_done > 0, "no {what} ever finished");
        assert!(t.killed_mid_background > 0, "no kill landed inside a {what}");
    }
}

#[test]
fn compaction_survives_sigkill() {
    let bg = Background {
        start: "compacting",
        done: "compacted",
    };
    assert_exercised("compaction", &crash_loop("compact", Some(bg)));
}

#[test]
fn checkpoints_survive_sigkill() {
    let bg = Background {
        start: "checkpointing",
        done: "checkpointed",
    };
    assert_exercised("checkpoint", &crash_loop("checkpoint", Some(bg)));
}

/// The checker must notice a batch that landed only in part: the `split`
/// child commits each batch as two commits and prints `half` in between,
/// then sleeps, so killing it right after that line leaves half a batch.
#[test]
fn checker_notices_a_torn_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Child::spawn(Path::new(CHILD), dir.path(), "split", "auto").expect("spawn child");
    assert!(
        child.wait_for(Stop::Line("half "), Duration::from_secs(30)),
        "split child never committed half a batch"
    );
    let run = child.kill().expect("kill and reap child");
    assert!(run.killed(), "child exited by itself: {}", run.stderr);
    let (found, last_seq) = read_back(dir.path()).expect("reopen");
    let err = crash_model::check(&mut History::new(), &run.acks(), &found, last_seq)
        .expect_err("half a batch must fail the check");
    assert!(err.contains("differs from the model"), "unexpected complaint: {err}");
}
