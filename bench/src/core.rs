//! `lockd-bench core`: the lease core in-process on `disk://`, next to the
//! logstore doing the same durable batches, in one run.
//!
//! A cycle is acquire → update (a JSON document of `--value-size` bytes) →
//! release (commit): the update and the release are one durable batch each
//! (document + metadata, then metadata + deletion of the replaced
//! document), the acquire writes nothing unless it extends the fencing
//! reservation. The baseline therefore runs the same number of tasks each
//! committing two-record batches of the same sizes back to back, and the
//! ratio is (cycles/s × 2) ÷ baseline batches/s.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Args;
use hdrhistogram::Histogram;
use lockd_actors::lease::LeaseProof;
use lockd_actors::{DiskBackend, LeaseConfig, MemBackend, Router};
use lockd_logstore::{Batch, IoMode, LogStore, Options};
use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::stats::{self, fmt_latency, fmt_rate, Latency};

/// Flags of `lockd-bench core`.
#[derive(Debug, Clone, Args)]
pub(crate) struct CoreArgs {
    /// Directory for the scratch stores (created inside, removed after). [default: current directory]
    #[arg(long, env = "LOCKD_BENCH_DIR", value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Seconds measured per configuration, after a 0.5 s warm-up.
    #[arg(long, default_value_t = 3.0, value_name = "SECS")]
    pub duration: f64,
    /// Concurrent tasks, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,8,64,256", value_name = "N,..")]
    pub concurrency: Vec<usize>,
    /// Distinct keys the cycle workload picks from.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub keys: usize,
    /// Size of the JSON document each update stages.
    #[arg(long, default_value_t = 256, value_name = "BYTES")]
    pub value_size: usize,
    /// Keys for the contention run.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub contention_keys: usize,
    /// Workers for the contention run.
    #[arg(long, default_value_t = 64, value_name = "N")]
    pub contention_workers: usize,
    /// Lease actors kept resident to measure memory per actor.
    #[arg(long, default_value_t = 20_000, value_name = "N")]
    pub resident_actors: usize,
    /// Smoke run: 1 s per configuration, concurrency 1 and 64.
    #[arg(long)]
    pub quick: bool,
}

struct Outcome {
    ops: u64,
    elapsed: Duration,
    latency: Latency,
    /// Hand-off latency from the release returning, and from it being called.
    handoff: Option<(Latency, Latency)>,
}

fn document(size: usize, n: u64) -> Bytes {
    let head = format!(r#"{{"n":{n},"pad":""#);
    let pad = size.saturating_sub(head.len() + 2);
    Bytes::from(format!("{head}{}\"}}", "x".repeat(pad)))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(std::thread::available_parallelism().map_or(2, |n| n.get()))
        .enable_all()
        .build()
        .map_err(|e| Error::Other(format!("tokio runtime: {e}")))
}

fn open_store(dir: &Path) -> Result<Arc<LogStore>> {
    let opts = Options {
        io: IoMode::Auto,
        compaction: false,
        ..Options::default()
    };
    LogStore::open(dir, opts)
        .map(Arc::new)
        .map_err(|e| Error::store(format!("open {}", dir.display()), e))
}

/// Runs `tasks` copies of `body` until the measured window closes; `body`
/// returns how long its operation took (None while warming up is fine).
async fn drive<F, Fut>(
    tasks: usize,
    warmup: Duration,
    duration: Duration,
    body: F,
) -> Result<(u64, Duration, Histogram<u64>)>
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<()>> + Send,
{
    let body = Arc::new(body);
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    for t in 0..tasks {
        let (body, measuring, stop) = (Arc::clone(&body), Arc::clone(&measuring), Arc::clone(&stop));
        handles.push(tokio::spawn(async move {
            let mut hist = stats::new_histogram()?;
            let mut ops = 0u64;
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let counted = measuring.load(Ordering::Relaxed);
                body(t, n).await?;
                n += 1;
                if counted && !stop.load(Ordering::Relaxed) {
                    ops += 1;
                    stats::record(&mut hist, started.elapsed());
                }
            }
            Ok::<_, Error>((ops, hist))
        }));
    }
    tokio::time::sleep(warmup).await;
    measuring.store(true, Ordering::Relaxed);
    let start = Instant::now();
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let elapsed = start.elapsed();
    let mut total = stats::new_histogram()?;
    let mut ops = 0;
    for h in handles {
        let (n, hist) = h.await.map_err(|e| Error::Other(format!("task: {e}")))??;
        ops += n;
        stats::merge(&mut total, &hist)?;
    }
    Ok((ops, elapsed, total))
}

fn api(e: lockd_actors::ApiError) -> Error {
    Error::Other(format!("lease core: {e}"))
}

/// Per key, for hand-off latency: the last release (by the token it
/// released) and the last grant (by its token), whichever was seen first.
#[derive(Default)]
struct HandoffLog {
    /// Token released, when its release was called and when it returned.
    released: Option<(i64, Instant, Instant)>,
    granted: Option<(i64, Instant, Instant)>,
}

/// acquire → update → release cycles over `keys` keys. With `handoff`,
/// also records the time from a release returning to its successor's
/// acquire returning (token T after token T - 1), counted only when the
/// successor was already waiting. Both sides are matched by token, so a
/// successor that happens to run before its predecessor has noted the
/// release is paired correctly rather than with an older release.
async fn cycles(
    router: Router<DiskBackend>,
    tasks: usize,
    keys: usize,
    size: usize,
    plan: (Duration, Duration),
    handoff: bool,
) -> Result<Outcome> {
    let logs: Arc<Vec<Mutex<HandoffLog>>> = Arc::new((0..keys).map(|_| Mutex::new(HandoffLog::default())).collect());
    let handoffs = Arc::new(Mutex::new(stats::new_histogram()?));
    let from_call = Arc::new(Mutex::new(stats::new_histogram()?));
    let (l2, h2, c2) = (Arc::clone(&logs), Arc::clone(&handoffs), Arc::clone(&from_call));
    let (ops, elapsed, hist) = drive(tasks, plan.0, plan.1, move |t, n| {
        let router = router.clone();
        let (logs, handoffs, from_call) = (Arc::clone(&l2), Arc::clone(&h2), Arc::clone(&c2));
        async move {
            let k = ((t as u64)
                .wrapping_mul(2_654_435_761)
                .wrapping_add(n.wrapping_mul(40_503))
                % keys as u64) as usize;
            let key = format!("k{k}");
            let asked = Instant::now();
            let (_, ok) = router
                .acquire("bench", &key, "bench", 30, 0, false, None)
                .await
                .map_err(api)?;
            let token = ok.fencing_token;
            if handoff {
                let got = Instant::now();
                let mut log = logs[k].lock();
                match log.released.take() {
                    Some((prev, called, r)) if prev == token - 1 => {
                        if asked < r {
                            stats::record(&mut handoffs.lock(), got - r);
                            stats::record(&mut from_call.lock(), got - called);
                        }
                    }
                    _ => log.granted = Some((token, asked, got)),
                }
            }
            let p = LeaseProof {
                lease_id: ok.lease_id,
                fencing_token: token,
                txn_id: Some(ok.txn_id),
            };
            router
                .update("bench", &key, p.clone(), document(size, n), None, None)
                .await
                .map_err(api)?;
            let called = Instant::now();
            router.release("bench", &key, p, false).await.map_err(api)?;
            if handoff {
                let r = Instant::now();
                let mut log = logs[k].lock();
                match log.granted.take() {
                    // The successor's acquire returned before this task saw
                    // its release return: the hand-off took no observable time.
                    Some((next, asked, got)) if next == token + 1 => {
                        if asked < r {
                            stats::record(&mut handoffs.lock(), got.saturating_duration_since(r));
                            stats::record(&mut from_call.lock(), got - called);
                        }
                    }
                    _ => log.released = Some((token, called, r)),
                }
            }
            Ok(())
        }
    })
    .await?;
    let (h, c) = (handoffs.lock(), from_call.lock());
    Ok(Outcome {
        ops,
        elapsed,
        latency: Latency::of(&hist),
        handoff: handoff.then(|| (Latency::of(&h), Latency::of(&c))),
    })
}

/// The logstore alone: `tasks` tasks committing the two-record batches a
/// cycle makes, durably, back to back.
async fn baseline(store: Arc<LogStore>, tasks: usize, size: usize, plan: (Duration, Duration)) -> Result<Outcome> {
    let meta = Bytes::from(vec![b'm'; 300]);
    let (ops, elapsed, hist) = drive(tasks, plan.0, plan.1, move |t, n| {
        let (store, meta) = (Arc::clone(&store), meta.clone());
        async move {
            let mut b = Batch::new();
            b.put(format!("d/bench/k{t}/{n}"), document(size, n))
                .put(format!("m/bench/k{t}"), meta);
            store.commit_async(b).await.map_err(|e| Error::store("commit", e))?;
            Ok(())
        }
    })
    .await?;
    Ok(Outcome {
        ops,
        elapsed,
        latency: Latency::of(&hist),
        handoff: None,
    })
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()))
        .map_or(0, |pages| pages * 4096)
}

/// Memory per resident lease actor: hold `n` leases on the in-memory
/// backend (no disk cache in the figure) and compare RSS.
async fn actor_memory(n: usize) -> Result<(usize, f64)> {
    let router = Router::new(Arc::new(MemBackend::new()), LeaseConfig::default());
    // Warm the allocator and the runtime first.
    for i in 0..1000 {
        router
            .acquire("warm", &format!("w{i}"), "b", 600, -1, false, None)
            .await
            .map_err(api)?;
    }
    let before = rss_bytes();
    for i in 0..n {
        router
            .acquire("mem", &format!("k{i}"), "b", 600, -1, false, None)
            .await
            .map_err(api)?;
    }
    let after = rss_bytes();
    Ok((router.resident_actors(), after.saturating_sub(before) as f64 / n as f64))
}

/// Entry point of `lockd-bench core`.
pub(crate) fn run(a: &CoreArgs) -> Result<()> {
    let (duration, concurrency) = if a.quick {
        (Duration::from_secs(1), vec![1, 64])
    } else {
        (Duration::from_secs_f64(a.duration.max(0.1)), a.concurrency.clone())
    };
    let plan = (Duration::from_millis(500), duration);
    let base = a.dir.clone().unwrap_or_else(|| PathBuf::from("."));
    let scratch = tempfile::Builder::new()
        .prefix(".lockd-bench-core-")
        .tempdir_in(&base)
        .map_err(|e| Error::io("create scratch dir", &base, e))?;
    let rt = runtime()?;
    let mut rows = Vec::new();
    for (i, &c) in concurrency.iter().enumerate() {
        let dir = scratch.path().join(format!("cycles-{i}"));
        let store = open_store(&dir)?;
        let io = store.io_path();
        let router = Router::new(
            Arc::new(DiskBackend::new(Arc::clone(&store), 1 << 20)),
            LeaseConfig::default(),
        );
        let groups0 = store.stats().groups;
        let out = rt.block_on(cycles(router, c, a.keys, a.value_size, plan, false))?;
        let groups = store.stats().groups - groups0;
        drop(store);
        let bdir = scratch.path().join(format!("baseline-{i}"));
        let bstore = open_store(&bdir)?;
        let b = rt.block_on(baseline(Arc::clone(&bstore), c, a.value_size, plan))?;
        drop(bstore);
        eprintln!(
            "core  {c:>4} tasks: {:>9} cycles/s   logstore {:>9} batches/s",
            fmt_rate(stats::rate(out.ops, out.elapsed)),
            fmt_rate(stats::rate(b.ops, b.elapsed))
        );
        rows.push((c, io, out, b, groups));
    }
    let cdir = scratch.path().join("contention");
    let cstore = open_store(&cdir)?;
    let crouter = Router::new(
        Arc::new(DiskBackend::new(Arc::clone(&cstore), 1 << 20)),
        LeaseConfig::default(),
    );
    let contention = rt.block_on(cycles(
        crouter,
        a.contention_workers,
        a.contention_keys,
        a.value_size,
        plan,
        true,
    ))?;
    drop(cstore);
    let (resident, per_actor) = rt.block_on(actor_memory(a.resident_actors))?;

    println!(
        "\nlockd-bench core — lease core in-process on disk:// ({} s per configuration, {} keys, {} B documents)",
        duration.as_secs_f64(),
        a.keys,
        a.value_size
    );
    println!("cycle = acquire -> update -> release(commit); baseline = the logstore alone committing the same two durable batches per cycle");
    println!(
        "  {:>5} {:>10} {:>8} {:>8} {:>8} {:>11} {:>13} {:>6}",
        "tasks", "cycles/s", "p50", "p99", "p99.9", "fsync/cycle", "base batch/s", "ratio"
    );
    let mut table: HashMap<usize, f64> = HashMap::new();
    for (c, io, out, b, groups) in &rows {
        let cps = stats::rate(out.ops, out.elapsed);
        let bps = stats::rate(b.ops, b.elapsed);
        let ratio = if bps > 0.0 { cps * 2.0 / bps } else { 0.0 };
        table.insert(*c, ratio);
        println!(
            "  {:>5} {:>10} {:>8} {:>8} {:>8} {:>11.2} {:>13} {:>5.0}%   ({io})",
            c,
            fmt_rate(cps),
            fmt_latency(out.latency.p50),
            fmt_latency(out.latency.p99),
            fmt_latency(out.latency.p999),
            if out.ops > 0 {
                *groups as f64 / out.ops as f64
            } else {
                0.0
            },
            fmt_rate(bps),
            ratio * 100.0
        );
    }
    let h = contention.handoff.as_ref().map(|(h, _)| h);
    let c = contention.handoff.as_ref().map(|(_, c)| c);
    let lat = |l: Option<&Latency>, f: fn(&Latency) -> u64| l.map_or("-".into(), |l| fmt_latency(f(l)));
    println!(
        "\nContention: {} workers on {} keys: {} cycles/s over {} hand-offs\n  \
         hand-off, release returned -> waiting acquirer granted: p50 {} p99 {} p99.9 {}\n  \
         the same from the release call (includes its durable commit): p50 {} p99 {} p99.9 {}",
        a.contention_workers,
        a.contention_keys,
        fmt_rate(stats::rate(contention.ops, contention.elapsed)),
        h.map_or(0, |l| l.count),
        lat(h, |l| l.p50),
        lat(h, |l| l.p99),
        lat(h, |l| l.p999),
        lat(c, |l| l.p50),
        lat(c, |l| l.p99),
        lat(c, |l| l.p999),
    );
    println!(
        "Resident memory: {resident} lease actors holding leases (mem://): {:.0} bytes each",
        per_actor
    );
    println!("\nTargets: hand-off p99 < 1 ms: {}; cycles/s at 64 tasks >= 70% of the logstore's batches/s for the same records: {}",
        h.map_or("not measured".into(), |l| if l.p99 < 1000 { "met".to_string() } else { format!("MISSED ({})", fmt_latency(l.p99)) }),
        table.get(&64).map_or("not measured".into(), |r| if *r >= 0.7 { format!("met ({:.0}%)", r * 100.0) } else { format!("MISSED ({:.0}%)", r * 100.0) }));
    Ok(())
}
