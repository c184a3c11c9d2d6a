//! The HTTP workloads and the loop that times them.
//!
//! N workers (one connection each) run the workload back to back. All of
//! them connect first; then a warm-up runs unmeasured; then the measured
//! window opens, and only operations that started and finished inside it
//! are counted. Errors are counted whenever they happen, warm-up included:
//! a clean run has none.

use std::sync::atomic::{AtomicI64, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::ValueEnum;
use hdrhistogram::Histogram;
use parking_lot::Mutex;
use tokio::sync::Barrier;

use super::driver::{Acquired, Conn, Driver, Lease, OpError};
use super::handoff::{Handoff, HandoffBook};
use super::process::CpuClock;
use super::ycsb::{self, Chooser, Distribution, Keyspace, Mix, Op, Zipf};
use crate::error::{Error, Result};
use crate::stats::{self, Latency};

/// A workload of `lockd-bench http`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Workload {
    /// acquire (no wait) -> update -> release (commit) on random keys; a held key counts as busy and
    /// another key is tried.
    Cycle,
    /// Lease-less reads (`public=1`) of random pre-populated keys.
    PublicRead,
    /// Workers acquire (waiting) a random key among a few, update, release; measures hand-off latency.
    Contention,
    /// YCSB A (update heavy): 50 % read, 50 % update.
    YcsbA,
    /// YCSB B (read mostly): 95 % read, 5 % update.
    YcsbB,
    /// YCSB C (read only).
    YcsbC,
    /// YCSB D (read latest): 95 % read of recent records, 5 % insert.
    YcsbD,
    /// YCSB E (short ranges): 95 % scan of 1–100 records, 5 % insert.
    YcsbE,
    /// YCSB F (read-modify-write): 50 % read, 50 % read then update.
    YcsbF,
}

impl Workload {
    /// The name used on the command line and in reports.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Workload::Cycle => "cycle",
            Workload::PublicRead => "public-read",
            Workload::Contention => "contention",
            Workload::YcsbA => "ycsb-a",
            Workload::YcsbB => "ycsb-b",
            Workload::YcsbC => "ycsb-c",
            Workload::YcsbD => "ycsb-d",
            Workload::YcsbE => "ycsb-e",
            Workload::YcsbF => "ycsb-f",
        }
    }

    /// The YCSB mix, for the YCSB workloads.
    pub(crate) fn mix(self) -> Option<Mix> {
        match self {
            Workload::YcsbA => Some(Mix::A),
            Workload::YcsbB => Some(Mix::B),
            Workload::YcsbC => Some(Mix::C),
            Workload::YcsbD => Some(Mix::D),
            Workload::YcsbE => Some(Mix::E),
            Workload::YcsbF => Some(Mix::F),
            Workload::Cycle | Workload::PublicRead | Workload::Contention => None,
        }
    }

    /// The namespace the workload's keys live in.
    pub(crate) fn namespace(self) -> &'static str {
        match self {
            Workload::Cycle => "bench-cycle",
            Workload::PublicRead => "bench-read",
            Workload::Contention => "bench-contention",
            // One key space for all YCSB mixes, loaded once per system.
            _ => YCSB_NAMESPACE,
        }
    }

    /// Names of the timed steps of one operation.
    pub(crate) fn steps(self) -> &'static [&'static str] {
        match self {
            Workload::Cycle | Workload::Contention => &["acquire", "update", "release"],
            Workload::PublicRead => &["read"],
            _ => &ycsb::OP_NAMES,
        }
    }
}

/// The YCSB mixes in the order YCSB recommends running them: the two that
/// insert (D, E) last, so the others see the loaded record count.
pub(crate) const YCSB_ORDER: [Workload; 6] = [
    Workload::YcsbA,
    Workload::YcsbB,
    Workload::YcsbC,
    Workload::YcsbF,
    Workload::YcsbD,
    Workload::YcsbE,
];

/// Namespace of the YCSB records.
pub(crate) const YCSB_NAMESPACE: &str = "bench-ycsb";

/// What the YCSB workloads need beyond a [`Spec`]: the system's records
/// (shared across runs, since inserts grow them) and the request
/// distribution.
#[derive(Debug, Clone)]
pub(crate) struct YcsbSpec {
    /// Records of the system under test.
    pub keyspace: Arc<Keyspace>,
    /// Zipfian ranks over the loaded records (built once, cloned per worker).
    pub zipf: Zipf,
    /// How records are picked.
    pub distribution: Distribution,
}

/// One measurement: a workload at one concurrency against one server.
#[derive(Debug, Clone)]
pub(crate) struct Spec {
    /// What to run.
    pub workload: Workload,
    /// Workers, each with its own connection.
    pub concurrency: usize,
    /// Keys picked from at random (`k0` … `k<keys-1>`).
    pub keys: usize,
    /// The document each update stages.
    pub doc: Bytes,
    /// Unmeasured time first.
    pub warmup: Duration,
    /// Measured time (at most, with `op_count`).
    pub duration: Duration,
    /// Close the window after this many operations (YCSB's operation count).
    pub op_count: Option<u64>,
    /// Required by the YCSB workloads.
    pub ycsb: Option<YcsbSpec>,
}

/// What one measurement produced.
#[derive(Debug, Clone)]
pub(crate) struct Measured {
    /// Completed operations (cycles or reads) inside the window.
    pub ops: u64,
    /// Acquires refused because the key was held (cycle only).
    pub busy: u64,
    /// YCSB reads (and read-modify-writes) that found no record: should be
    /// none, since only acknowledged records are requested.
    pub misses: u64,
    /// Failed operations, warm-up included.
    pub errors: u64,
    /// The first failure, to say what went wrong.
    pub first_error: Option<String>,
    /// Length of the measured window.
    pub elapsed: Duration,
    /// Latency of whole operations.
    pub latency: Latency,
    /// Latency of each step, named as in [`Workload::steps`].
    pub steps: Vec<(&'static str, Latency)>,
    /// Contention only: release answered -> waiting acquirer's grant answered.
    pub handoff: Option<Latency>,
    /// Contention only: release sent -> waiting acquirer's grant answered
    /// (includes the release's commit).
    pub handoff_from_call: Option<Latency>,
    /// CPU seconds this process used in the window.
    pub client_cpu_s: Option<f64>,
    /// CPU seconds the server process used in the window (when its pid is known).
    pub server_cpu_s: Option<f64>,
    /// `(percentile, µs)` points of the latency distribution, for CDF charts.
    pub cdf: Vec<(f64, u64)>,
}

const WARMUP: u8 = 0;
const MEASURE: u8 = 1;
const STOP: u8 = 2;

/// Longest the workers may take to finish their last operation after the
/// window closes.
const STOP_GRACE: Duration = Duration::from_secs(60);

/// xorshift64*: each worker's key choices, cheap and reproducible.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1) as u64) as usize
    }
}

/// A worker's tallies.
struct Tally {
    ops: u64,
    busy: u64,
    misses: u64,
    errors: u64,
    first_error: Option<String>,
    total: Histogram<u64>,
    steps: Vec<Histogram<u64>>,
}

impl Tally {
    fn new(steps: usize) -> Result<Tally> {
        Ok(Tally {
            ops: 0,
            busy: 0,
            misses: 0,
            errors: 0,
            first_error: None,
            total: stats::new_histogram()?,
            steps: (0..steps).map(|_| stats::new_histogram()).collect::<Result<_>>()?,
        })
    }

    fn error(&mut self, e: &OpError) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(e.to_string());
        }
    }
}

/// How one operation ended.
enum Outcome {
    /// Completed, with the time of each step.
    Done([Duration; 3]),
    /// A YCSB operation of kind `.0` (index into its steps) completed;
    /// `.2` when it read a record that does not exist.
    Op(usize, Duration, bool),
    /// The key was held (cycle).
    Busy,
}

/// Everything the workers share.
struct Shared {
    spec: Spec,
    phase: AtomicU8,
    book: HandoffBook,
    /// Grants seen per key (contention). Grants of one key are strictly
    /// ordered, so numbering them here pairs hand-offs for every system,
    /// including those without fencing tokens.
    grants: Vec<AtomicI64>,
    /// Operations counted in the window (for `op_count`).
    counted: AtomicU64,
    /// Hand-offs from the release answered, and from the release sent.
    handoffs: Mutex<(Histogram<u64>, Histogram<u64>)>,
}

impl Shared {
    fn measuring(&self) -> bool {
        self.phase.load(Ordering::Relaxed) == MEASURE
    }

    /// Records a hand-off seen inside the measured window.
    fn handoff(&self, h: Option<Handoff>) {
        if let Some((answered, sent)) = h {
            if self.measuring() {
                let mut hs = self.handoffs.lock();
                stats::record(&mut hs.0, answered);
                stats::record(&mut hs.1, sent);
            }
        }
    }
}

/// Releases a lease after a failed step so that waiting workers are not
/// stuck until it expires; its own failure is not counted twice.
async fn abandon<C: Conn>(conn: &mut C, lease: &Lease) {
    if let Err(e) = conn.release(lease).await {
        tracing::debug!(error = %e, key = %lease.key, "could not release after a failed step");
    }
}

/// acquire -> update -> release on a random key. With `wait` (contention),
/// the acquire waits and hand-offs are booked.
async fn cycle<C: Conn>(conn: &mut C, sh: &Shared, rng: &mut Rng, wait: bool) -> std::result::Result<Outcome, OpError> {
    let ns = sh.spec.workload.namespace();
    let k = rng.below(sh.spec.keys);
    let key = format!("k{k}");
    let asked = Instant::now();
    let lease = match conn.acquire(ns, &key, wait).await? {
        Acquired::Granted(l) => l,
        Acquired::Busy => return Ok(Outcome::Busy),
    };
    let got = Instant::now();
    let seq = if wait {
        let seq = sh.grants.get(k).map_or(0, |g| g.fetch_add(1, Ordering::Relaxed) + 1);
        sh.handoff(sh.book.granted(k, seq, asked, got));
        seq
    } else {
        0
    };
    if let Err(e) = conn.update(&lease, sh.spec.doc.clone()).await {
        if !e.is_transport() {
            abandon(conn, &lease).await;
        }
        return Err(e);
    }
    let updated = Instant::now();
    conn.release(&lease).await?;
    let released = Instant::now();
    if wait {
        sh.handoff(sh.book.released(k, seq, updated, released));
    }
    Ok(Outcome::Done([got - asked, updated - got, released - updated]))
}

async fn read<C: Conn>(conn: &mut C, sh: &Shared, rng: &mut Rng) -> std::result::Result<Outcome, OpError> {
    let key = format!("k{}", rng.below(sh.spec.keys));
    let asked = Instant::now();
    conn.read(sh.spec.workload.namespace(), &key).await?;
    Ok(Outcome::Done([asked.elapsed(), Duration::ZERO, Duration::ZERO]))
}

/// One YCSB operation, chosen by `chooser`. A read of a record that does
/// not exist (yet: workload D may pick an insert still in flight) is a
/// miss, not a failure.
async fn ycsb_op<C: Conn>(conn: &mut C, sh: &Shared, chooser: &mut Chooser) -> std::result::Result<Outcome, OpError> {
    let Some(y) = sh.spec.ycsb.as_ref() else {
        return Err(OpError::Transport("a YCSB workload ran without its key space".into()));
    };
    let ns = YCSB_NAMESPACE;
    let op = chooser.next(&y.keyspace);
    let started = Instant::now();
    let mut missed = false;
    let mut miss_is_counted = |r: std::result::Result<usize, OpError>| match r {
        Err(OpError::Status { status: 204, .. }) => {
            missed = true;
            Ok(0)
        }
        other => other,
    };
    match op {
        Op::Read(k) => {
            miss_is_counted(conn.read(ns, &ycsb::record_key(k)).await)?;
        }
        Op::Update(k) => conn.put(ns, &ycsb::record_key(k), sh.spec.doc.clone()).await?,
        Op::Insert(k) => {
            let written = conn.put(ns, &ycsb::record_key(k), sh.spec.doc.clone()).await;
            y.keyspace.acknowledge(k);
            written?;
        }
        Op::Scan(k, len) => {
            let keys: Vec<String> = (k..k + len as u64).map(ycsb::record_key).collect();
            conn.scan(ns, &keys).await?;
        }
        Op::ReadModifyWrite(k) => {
            let key = ycsb::record_key(k);
            miss_is_counted(conn.read(ns, &key).await)?;
            conn.put(ns, &key, sh.spec.doc.clone()).await?;
        }
    }
    Ok(Outcome::Op(op.kind(), started.elapsed(), missed))
}

/// One worker: connect, wait for everyone, then run until told to stop.
async fn worker<D: Driver>(driver: Arc<D>, sh: Arc<Shared>, ready: Arc<Barrier>, id: usize) -> Result<Tally> {
    let first = driver.connect().await;
    ready.wait().await;
    let mut conn = first.map_err(|e| Error::Other(format!("worker {id}: {e}")))?;
    let workload = sh.spec.workload;
    let mut tally = Tally::new(workload.steps().len())?;
    let mut rng = Rng::new(id as u64 + 1);
    let mut chooser = match (workload.mix(), sh.spec.ycsb.as_ref()) {
        (Some(mix), Some(y)) => Some(Chooser::new(mix, y.distribution, y.zipf.clone(), id as u64 + 1)),
        (Some(_), None) => return Err(Error::Invalid(format!("{} needs a YCSB key space", workload.name()))),
        _ => None,
    };
    loop {
        let phase = sh.phase.load(Ordering::Relaxed);
        if phase == STOP {
            break;
        }
        let started = Instant::now();
        let outcome = match workload {
            Workload::Cycle => cycle(&mut conn, &sh, &mut rng, false).await,
            Workload::Contention => cycle(&mut conn, &sh, &mut rng, true).await,
            Workload::PublicRead => read(&mut conn, &sh, &mut rng).await,
            _ => match chooser.as_mut() {
                Some(c) => ycsb_op(&mut conn, &sh, c).await,
                None => return Err(Error::Invalid(format!("{} has no operation chooser", workload.name()))),
            },
        };
        let counted = phase == MEASURE && sh.measuring();
        match outcome {
            Ok(Outcome::Done(steps)) if counted => {
                tally.ops += 1;
                sh.counted.fetch_add(1, Ordering::Relaxed);
                stats::record(&mut tally.total, started.elapsed());
                for (h, d) in tally.steps.iter_mut().zip(steps) {
                    stats::record(h, d);
                }
            }
            Ok(Outcome::Op(kind, d, missed)) if counted => {
                tally.ops += 1;
                tally.misses += u64::from(missed);
                sh.counted.fetch_add(1, Ordering::Relaxed);
                stats::record(&mut tally.total, d);
                if let Some(h) = tally.steps.get_mut(kind) {
                    stats::record(h, d);
                }
            }
            Ok(Outcome::Busy) if counted => tally.busy += 1,
            Ok(_) => {}
            Err(e) => {
                tally.error(&e);
                if e.is_transport() {
                    conn = reconnect(driver.as_ref(), &sh, &mut tally).await?;
                }
            }
        }
    }
    Ok(tally)
}

/// Opens a new connection after one broke, retrying every 50 ms until it
/// works or the run stops (then the last error ends the worker).
async fn reconnect<D: Driver>(driver: &D, sh: &Shared, tally: &mut Tally) -> Result<D::Conn> {
    loop {
        match driver.connect().await {
            Ok(c) => return Ok(c),
            Err(e) => {
                tally.error(&e);
                if sh.phase.load(Ordering::Relaxed) == STOP {
                    return Err(Error::Other(format!("reconnecting: {e}")));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Runs `spec` against `driver` and collects the results. `clock` reads
/// CPU time of this process and, when known, of the server.
pub(crate) async fn measure<D: Driver>(driver: Arc<D>, spec: Spec, clock: &CpuClock) -> Result<Measured> {
    if spec.concurrency == 0 || spec.keys == 0 {
        return Err(Error::Invalid(
            "a workload needs at least one worker and one key".into(),
        ));
    }
    let workload = spec.workload;
    // Hand-off books only for contention: YCSB's key spaces run to millions.
    let booked = if workload == Workload::Contention { spec.keys } else { 0 };
    let sh = Arc::new(Shared {
        book: HandoffBook::new(booked),
        grants: (0..booked).map(|_| AtomicI64::new(0)).collect(),
        counted: AtomicU64::new(0),
        handoffs: Mutex::new((stats::new_histogram()?, stats::new_histogram()?)),
        phase: AtomicU8::new(WARMUP),
        spec,
    });
    let ready = Arc::new(Barrier::new(sh.spec.concurrency + 1));
    let handles: Vec<_> = (0..sh.spec.concurrency)
        .map(|id| tokio::spawn(worker(Arc::clone(&driver), Arc::clone(&sh), Arc::clone(&ready), id)))
        .collect();
    ready.wait().await;
    tokio::time::sleep(sh.spec.warmup).await;
    let cpu0 = clock.sample();
    sh.phase.store(MEASURE, Ordering::Relaxed);
    let start = Instant::now();
    match sh.spec.op_count {
        None => tokio::time::sleep(sh.spec.duration).await,
        Some(n) => {
            while start.elapsed() < sh.spec.duration && sh.counted.load(Ordering::Relaxed) < n {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    }
    sh.phase.store(STOP, Ordering::Relaxed);
    let elapsed = start.elapsed();
    let cpu1 = clock.sample();
    let mut total = stats::new_histogram()?;
    let mut steps: Vec<Histogram<u64>> = workload
        .steps()
        .iter()
        .map(|_| stats::new_histogram())
        .collect::<Result<_>>()?;
    let (mut ops, mut busy, mut misses, mut errors, mut first_error) = (0, 0, 0, 0, None);
    let joined = tokio::time::timeout(STOP_GRACE, futures_join(handles))
        .await
        .map_err(|_| Error::Other(format!("workers still busy {STOP_GRACE:?} after the window closed")))?;
    for t in joined {
        let t = t?;
        ops += t.ops;
        busy += t.busy;
        misses += t.misses;
        errors += t.errors;
        if first_error.is_none() {
            first_error = t.first_error;
        }
        stats::merge(&mut total, &t.total)?;
        for (dst, src) in steps.iter_mut().zip(&t.steps) {
            stats::merge(dst, src)?;
        }
    }
    let (client_cpu_s, server_cpu_s) = cpu0.since(&cpu1);
    let contended = workload == Workload::Contention;
    let hs = sh.handoffs.lock();
    let (handoff, handoff_from_call) = (
        contended.then(|| Latency::of(&hs.0)),
        contended.then(|| Latency::of(&hs.1)),
    );
    Ok(Measured {
        ops,
        busy,
        misses,
        errors,
        first_error,
        elapsed,
        latency: Latency::of(&total),
        steps: workload
            .steps()
            .iter()
            .copied()
            .zip(steps.iter().map(Latency::of))
            .collect(),
        handoff,
        handoff_from_call,
        client_cpu_s,
        server_cpu_s,
        cdf: stats::cdf(&total),
    })
}

/// Awaits every worker, turning a panicked or cancelled task into an error.
async fn futures_join(handles: Vec<tokio::task::JoinHandle<Result<Tally>>>) -> Vec<Result<Tally>> {
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(
            h.await
                .unwrap_or_else(|e| Err(Error::Other(format!("worker task: {e}")))),
        );
    }
    out
}

/// Gives `count` keys of `namespace` (named by `key`) a committed document
/// with each system's write ([`Conn::put`]), over up to 64 connections.
pub(crate) async fn populate<D: Driver>(
    driver: Arc<D>,
    namespace: &'static str,
    count: u64,
    key: fn(u64) -> String,
    doc: Bytes,
) -> Result<()> {
    let workers = count.clamp(1, 64);
    let mut handles = Vec::new();
    for w in 0..workers {
        let (driver, doc) = (Arc::clone(&driver), doc.clone());
        handles.push(tokio::spawn(async move {
            let fail = |e: OpError| Error::Other(format!("populating {namespace}: {e}"));
            let mut conn = driver.connect().await.map_err(fail)?;
            for k in (w..count).step_by(workers as usize) {
                conn.put(namespace, &key(k), doc.clone()).await.map_err(fail)?;
            }
            Ok::<_, Error>(())
        }));
    }
    for r in futures_join_unit(handles).await {
        r?;
    }
    Ok(())
}

async fn futures_join_unit(handles: Vec<tokio::task::JoinHandle<Result<()>>>) -> Vec<Result<()>> {
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(
            h.await
                .unwrap_or_else(|e| Err(Error::Other(format!("populating task: {e}")))),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_spread_over_the_range() {
        let mut rng = Rng::new(3);
        let mut seen = [0u32; 10];
        for _ in 0..10_000 {
            seen[rng.below(10)] += 1;
        }
        assert!(seen.iter().all(|&n| n > 800 && n < 1200), "{seen:?}");
        assert_eq!(Rng::new(1).below(1), 0);
    }
}
