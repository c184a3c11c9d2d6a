//! Durable puts through the logstore: N writer threads, each committing
//! one-put batches back to back, against a fresh store.
//!
//! Throughput and the achieved batch size come from the store's own
//! counters sampled at the start and the end of the measured interval
//! (committed batches = growth of the last sequence number; group writes =
//! growth of `Stats::groups`), so no thread-side bookkeeping can skew them.
//! Latency is recorded by each thread for every commit it started inside
//! the interval.

use std::path::Path;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use lockd_logstore::{Batch, IoMode, LogStore, Options};

use crate::cli::{ClientChoice, IoChoice};
use crate::error::{Error, Result};
use crate::stats::{self, Latency};

const WARMUP: u8 = 0;
const MEASURE: u8 = 1;
const STOP: u8 = 2;

/// Stack size of a writer thread: it only builds a batch and waits.
const WRITER_STACK: usize = 256 << 10;

/// One point of the logstore matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StoreConfig {
    /// The write path asked for.
    pub io: IoChoice,
    /// How writers are driven.
    pub clients: ClientChoice,
    /// Bytes per value.
    pub value_bytes: usize,
    /// Concurrent writer threads.
    pub writers: usize,
}

/// What one configuration achieved.
#[derive(Debug, Clone)]
pub(crate) struct StoreResult {
    /// The configuration.
    pub config: StoreConfig,
    /// The write path the store reported (`io_uring`, `pwritev+fdatasync`).
    pub io_path: String,
    /// Batches (= puts, one put per batch) committed in the interval.
    pub commits: u64,
    /// Group writes (= fdatasyncs) in the interval.
    pub groups: u64,
    /// Length of the measured interval.
    pub elapsed: Duration,
    /// Commit latency as the writer threads saw it.
    pub latency: Latency,
}

impl StoreResult {
    /// `io_path/clients`, the name of a row in the tables.
    pub(crate) fn label(&self) -> String {
        format!("{}/{}", self.io_path, self.config.clients)
    }

    /// Durable puts per second.
    pub(crate) fn puts_per_s(&self) -> f64 {
        stats::rate(self.commits, self.elapsed)
    }

    /// fdatasyncs per second.
    pub(crate) fn groups_per_s(&self) -> f64 {
        stats::rate(self.groups, self.elapsed)
    }

    /// Commits per group write, if any group was written.
    pub(crate) fn batch(&self) -> Option<f64> {
        stats::achieved_batch(self.commits, self.groups)
    }
}

/// How a configuration ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// It ran.
    Done(StoreResult),
    /// io_uring was asked for and the store could not set it up; the reason.
    UringUnavailable(String),
}

/// The keys writers pick from and the value they write.
#[derive(Debug, Clone)]
pub(crate) struct Workload {
    keys: Arc<[Bytes]>,
    value: Bytes,
}

impl Workload {
    /// `keys` distinct keys and one incompressible value of `value_bytes`.
    pub(crate) fn new(keys: usize, value_bytes: usize) -> Workload {
        let keys: Arc<[Bytes]> = (0..keys).map(|i| Bytes::from(format!("bench/key/{i:08}"))).collect();
        let mut rng = Rng::new(value_bytes as u64);
        let value: Vec<u8> = (0..value_bytes).map(|_| rng.next_u64() as u8).collect();
        Workload {
            keys,
            value: Bytes::from(value),
        }
    }
}

/// xorshift64*: a fast, good-enough generator for picking keys.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value, zero included).
    pub(crate) fn new(seed: u64) -> Rng {
        // splitmix64 of the seed: never zero in practice, and nearby seeds diverge.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1)
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (`n` ≥ 1).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (((self.next_u64() >> 32) * n as u64) >> 32) as usize
    }
}

/// Runs one configuration in `dir` (which must be empty or absent).
pub(crate) fn run(
    dir: &Path,
    config: StoreConfig,
    workload: &Workload,
    warmup: Duration,
    duration: Duration,
) -> Result<Outcome> {
    let opts = Options {
        io: match config.io {
            IoChoice::Uring => IoMode::Uring,
            IoChoice::Sync => IoMode::Sync,
        },
        compaction: false,
        ..Options::default()
    };
    let store = match LogStore::open(dir, opts) {
        Ok(s) => Arc::new(s),
        Err(e) if config.io == IoChoice::Uring => return Ok(Outcome::UringUnavailable(e.to_string())),
        Err(e) => return Err(Error::store(format!("open store in {}", dir.display()), e)),
    };
    let io_path = store.io_path().to_string();
    let phase = Arc::new(AtomicU8::new(WARMUP));
    let measure = |phase: &AtomicU8| {
        std::thread::sleep(warmup);
        let before = store.stats();
        let start = Instant::now();
        phase.store(MEASURE, Ordering::Release);
        sleep_unless_stopped(phase, duration);
        let after = store.stats();
        let elapsed = start.elapsed();
        phase.store(STOP, Ordering::Release);
        (before, after, elapsed)
    };
    let (before, after, elapsed, latency) = match config.clients {
        ClientChoice::Threads => {
            let handles = spawn_threads(dir, &store, &phase, workload, config.writers)?;
            let (before, after, elapsed) = measure(&phase);
            (before, after, elapsed, join_all(handles)?)
        }
        ClientChoice::Tasks => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(std::thread::available_parallelism().map_or(2, |n| n.get()))
                .enable_all()
                .build()
                .map_err(|e| Error::io("start tokio runtime", dir, e))?;
            let handles: Vec<_> = (0..config.writers)
                .map(|t| {
                    let (s, p, w) = (Arc::clone(&store), Arc::clone(&phase), workload.clone());
                    rt.spawn(async move { writer_task(&s, &p, &w, t as u64).await })
                })
                .collect();
            let (before, after, elapsed) = measure(&phase);
            let mut total = stats::new_histogram()?;
            let mut first_err = None;
            for h in handles {
                match rt.block_on(h) {
                    Ok(Ok(hist)) => stats::merge(&mut total, &hist)?,
                    Ok(Err(e)) => {
                        first_err.get_or_insert(e);
                    }
                    Err(_) => {
                        first_err.get_or_insert(Error::Other("a writer task panicked".into()));
                    }
                }
            }
            if let Some(e) = first_err {
                return Err(e);
            }
            (before, after, elapsed, total)
        }
    };
    let store = Arc::try_unwrap(store).map_err(|_| Error::Other("store still shared after the run".into()))?;
    store
        .close()
        .map_err(|e| Error::store(format!("close store in {}", dir.display()), e))?;
    Ok(Outcome::Done(StoreResult {
        config,
        io_path,
        commits: after.last_seq - before.last_seq,
        groups: after.groups - before.groups,
        elapsed,
        latency: Latency::of(&latency),
    }))
}

/// Starts `n` blocking writer threads.
fn spawn_threads(
    dir: &Path,
    store: &Arc<LogStore>,
    phase: &Arc<AtomicU8>,
    workload: &Workload,
    n: usize,
) -> Result<Vec<std::thread::JoinHandle<Result<Histogram<u64>>>>> {
    let mut handles = Vec::with_capacity(n);
    for t in 0..n {
        let (s, p, w) = (Arc::clone(store), Arc::clone(phase), workload.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("bench-writer-{t}"))
            .stack_size(WRITER_STACK)
            .spawn(move || writer(&s, &p, &w, t as u64));
        match spawned {
            Ok(h) => handles.push(h),
            Err(e) => {
                phase.store(STOP, Ordering::Release);
                let _ = join_all(handles);
                return Err(Error::io("spawn writer thread", dir, e));
            }
        }
    }
    Ok(handles)
}

/// Sleeps for `d`, waking early if a writer failed and stopped the run.
fn sleep_unless_stopped(phase: &AtomicU8, d: Duration) {
    let end = Instant::now() + d;
    loop {
        let now = Instant::now();
        if now >= end || phase.load(Ordering::Acquire) == STOP {
            return;
        }
        std::thread::sleep((end - now).min(Duration::from_millis(50)));
    }
}

/// Joins the writers and merges their histograms; the first error wins.
fn join_all(handles: Vec<std::thread::JoinHandle<Result<Histogram<u64>>>>) -> Result<Histogram<u64>> {
    let mut total = stats::new_histogram()?;
    let mut first_err = None;
    for h in handles {
        match h.join() {
            Ok(Ok(hist)) => stats::merge(&mut total, &hist)?,
            Ok(Err(e)) => {
                first_err.get_or_insert(e);
            }
            Err(_) => {
                first_err.get_or_insert(Error::Other("a writer thread panicked".into()));
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(total),
    }
}

/// The part of a writer's loop that does not care whether the commit is
/// blocking or async: pick a key, build the batch, account for the result.
struct WriterLoop<'a> {
    phase: &'a AtomicU8,
    workload: &'a Workload,
    rng: Rng,
    hist: Histogram<u64>,
}

impl<'a> WriterLoop<'a> {
    fn new(phase: &'a AtomicU8, workload: &'a Workload, seed: u64) -> Result<Self> {
        Ok(WriterLoop {
            phase,
            workload,
            rng: Rng::new(seed),
            hist: stats::new_histogram()?,
        })
    }

    /// The next one-put batch and the phase it starts in; `None` once the
    /// run is over.
    fn next(&mut self) -> Option<(u8, Batch)> {
        let p = self.phase.load(Ordering::Acquire);
        if p == STOP {
            return None;
        }
        let key = self.workload.keys[self.rng.below(self.workload.keys.len())].clone();
        let mut batch = Batch::new();
        batch.put(key, self.workload.value.clone());
        Some((p, batch))
    }

    /// Records a commit started at `t` in phase `p`; a failure stops every
    /// writer.
    fn done(&mut self, p: u8, t: Instant, result: lockd_logstore::Result<u64>) -> Result<()> {
        if let Err(e) = result {
            self.phase.store(STOP, Ordering::Release);
            return Err(Error::store("commit", e));
        }
        if p == MEASURE {
            stats::record(&mut self.hist, t.elapsed());
        }
        Ok(())
    }
}

/// One writer task: commit one-put batches with `commit_async` until told
/// to stop; record the latency of every commit started while measuring.
async fn writer_task(store: &LogStore, phase: &AtomicU8, workload: &Workload, seed: u64) -> Result<Histogram<u64>> {
    let mut w = WriterLoop::new(phase, workload, seed)?;
    while let Some((p, batch)) = w.next() {
        let t = Instant::now();
        let r = store.commit_async(batch).await;
        w.done(p, t, r)?;
    }
    Ok(w.hist)
}

/// One writer thread: the same with the blocking `commit`.
fn writer(store: &LogStore, phase: &AtomicU8, workload: &Workload, seed: u64) -> Result<Histogram<u64>> {
    let mut w = WriterLoop::new(phase, workload, seed)?;
    while let Some((p, batch)) = w.next() {
        let t = Instant::now();
        let r = store.commit(batch);
        w.done(p, t, r)?;
    }
    Ok(w.hist)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_stays_in_range_and_covers_it() {
        let mut rng = Rng::new(0);
        let mut seen = [false; 10];
        for _ in 0..10_000 {
            let i = rng.below(10);
            assert!(i < 10);
            seen[i] = true;
        }
        assert!(seen.iter().all(|s| *s));
        assert_ne!(Rng::new(1).next_u64(), Rng::new(2).next_u64());
    }

    #[test]
    fn a_short_run_counts_commits_and_groups() {
        for clients in [ClientChoice::Threads, ClientChoice::Tasks] {
            let dir = tempfile::tempdir().expect("tempdir");
            let config = StoreConfig {
                io: IoChoice::Sync,
                clients,
                value_bytes: 64,
                writers: 4,
            };
            let workload = Workload::new(100, 64);
            let outcome = run(
                &dir.path().join("store"),
                config,
                &workload,
                Duration::from_millis(20),
                Duration::from_millis(200),
            )
            .expect("run");
            let Outcome::Done(r) = outcome else {
                panic!("sync path must open");
            };
            assert!(r.commits > 0 && r.groups > 0, "{clients}: {r:?}");
            // Counters are sampled without stopping the writer: either end may
            // be off by one group, so allow a little slack around 1..=4.
            assert!(r.batch().is_some_and(|b| (0.8..=4.8).contains(&b)), "{clients}: {r:?}");
            assert!(r.latency.count > 0);
        }
    }
}
