//! `lockd-bench http`: lease workloads against a lockd server over HTTP,
//! on TCP and on a Unix socket, with the disk's fdatasync latency measured
//! in the same run.
//!
//! The bench either drives servers it is given (`--addr`) or starts its
//! own (`--spawn`: the `lockd` binary built next to it, one listening on
//! 127.0.0.1 and one on a Unix socket, each with its own `disk://` store in
//! a scratch directory). Runs are interleaved: for each workload and
//! concurrency, every server in turn, so slow drift of the machine does not
//! favour one transport.

mod compare;
mod driver;
mod etcd_driver;
mod handoff;
#[cfg(test)]
mod peer_tests;
mod process;
mod progress;
mod redis_driver;
mod report;
mod report_json;
mod systems;
#[cfg(test)]
mod tests;
mod workload;
mod ycsb;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use clap::{Args, ValueEnum};

use crate::cli::{parse_duration, parse_size};
use crate::error::{Error, Result};
use crate::fsinfo;
use crate::raw;
use crate::stats::{fmt_latency, fmt_rate};
use driver::Addr;
pub(crate) use process::die_with_parent;
use process::{CpuClock, Listen, ServerProcess};
use report::{Meta, Report, Row};
use systems::{System, Target};
use workload::{Spec, Workload, YcsbSpec};
use ycsb::{Distribution, Keyspace, Zipf};

/// Flags of `lockd-bench http`.
#[derive(Debug, Clone, Args)]
pub(crate) struct HttpArgs {
    /// Systems to measure, comma-separated: lockd (needs --spawn or --addr), etcd, redis
    /// (appendfsync always), redis-everysec (not durable). etcd and Redis are started by the bench on
    /// loopback with data in the scratch directory (install them with bench/peers.sh install).
    /// [default: lockd]
    #[arg(long, value_delimiter = ',', value_enum, value_name = "T,..")]
    pub target: Vec<Target>,
    /// The whole comparison in one command: --spawn --transport tcp --target
    /// lockd,etcd,redis,redis-everysec and every workload, 3 rounds. Flags given explicitly still win.
    #[arg(long)]
    pub compare: bool,
    /// Rounds: every system runs each workload and concurrency once per round, systems interleaved
    /// and the first one rotating (A B C, B C A, …) so drift of the machine hits all alike; the table
    /// shows the median round and the min–max. [default: 3, or 1 with --quick]
    #[arg(long, value_name = "N")]
    pub rounds: Option<usize>,
    /// YCSB: records loaded before the first YCSB workload (per system; inserts add more).
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    pub record_count: u64,
    /// YCSB: stop each run after this many operations (or at --duration, whichever comes first).
    #[arg(long, value_name = "N")]
    pub op_count: Option<u64>,
    /// YCSB request distribution.
    #[arg(long, value_enum, default_value_t = Distribution::Zipfian)]
    pub distribution: Distribution,
    /// Write SVG charts (throughput vs concurrency and latency CDF per workload) into this directory.
    #[arg(long, value_name = "DIR")]
    pub charts: Option<PathBuf>,
    /// Server to drive: host:port (plain HTTP, start lockd with --disable-mtls) or unix:///path.
    /// Repeat to measure several listeners of one server.
    #[arg(long, value_name = "ADDR", conflicts_with = "spawn")]
    pub addr: Vec<String>,
    /// Start the servers: the lockd binary next to this one, with --disable-mtls and a disk:// store
    /// in the scratch directory, one on 127.0.0.1:0 and one on a Unix socket; stopped at the end.
    #[arg(long)]
    pub spawn: bool,
    /// Transports of the spawned servers, comma-separated. [default: tcp,unix]
    #[arg(long, value_delimiter = ',', value_enum, value_name = "T,..")]
    pub transport: Vec<Transport>,
    /// Store URL for the spawned servers (each gets its own). [default: disk://<scratch>/store-<transport>]
    /// mem:// measures everything but durability.
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// The lockd binary to spawn. [default: lockd next to lockd-bench]
    #[arg(long, value_name = "PATH")]
    pub server_bin: Option<PathBuf>,
    /// Where the scratch directory goes (spawned servers' data, the fdatasync probe). Put it on the
    /// disk you care about; /tmp is often tmpfs. [default: current directory]
    #[arg(long, env = "LOCKD_BENCH_DIR", value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Workloads, comma-separated or repeated. [default: cycle,public-read,contention; with --compare
    /// also ycsb-a..ycsb-f]
    #[arg(long, value_delimiter = ',', value_enum, value_name = "W,..")]
    pub workload: Vec<Workload>,
    /// Workers (= connections) for cycle and public-read, comma-separated. [default: 1,8,64,256, or 1,64 with --quick]
    #[arg(long, value_delimiter = ',', value_name = "N,..")]
    pub concurrency: Option<Vec<usize>>,
    /// Measured time per run (10s, 500ms, 2m; a bare number is seconds). [default: 10s, or 1s with --quick]
    #[arg(long, value_parser = parse_duration, value_name = "TIME")]
    pub duration: Option<Duration>,
    /// Unmeasured time before each run. [default: 2s, or 0.5s with --quick]
    #[arg(long, value_parser = parse_duration, value_name = "TIME")]
    pub warmup: Option<Duration>,
    /// Size of the pretty-printed JSON document each update uploads.
    #[arg(long, value_parser = parse_size, default_value = "256", value_name = "BYTES")]
    pub value_size: usize,
    /// Keys cycle and public-read pick from at random (public-read populates them all first).
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    pub keys: usize,
    /// Keys of the contention workload.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub contention_keys: usize,
    /// Workers of the contention workload.
    #[arg(long, default_value_t = 64, value_name = "N")]
    pub contention_workers: usize,
    /// Worker threads of the client's runtime. [default: number of CPUs]
    #[arg(long, value_name = "N")]
    pub client_threads: Option<usize>,
    /// Smoke run: 1 s runs after 0.5 s warm-up, concurrency 1 and 64. Flags given explicitly still win.
    #[arg(long)]
    pub quick: bool,
    /// Also write the results as JSON to this file.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
}

/// A transport of a spawned server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Transport {
    /// TCP on 127.0.0.1.
    Tcp,
    /// A Unix-domain socket.
    Unix,
}

/// What an `http` run will do, with defaults and `--quick` applied.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Plan {
    targets: Vec<Target>,
    rounds: usize,
    record_count: u64,
    op_count: Option<u64>,
    distribution: Distribution,
    addrs: Vec<Addr>,
    spawn: Vec<Transport>,
    workloads: Vec<Workload>,
    concurrency: Vec<usize>,
    duration: Duration,
    warmup: Duration,
    keys: usize,
    contention_keys: usize,
    contention_workers: usize,
    client_threads: usize,
}

/// `v` without repeats, or `default` when `v` is empty.
fn or_default<T: PartialEq + Clone>(v: &[T], default: Vec<T>) -> Vec<T> {
    if v.is_empty() {
        default
    } else {
        dedup(v.to_vec())
    }
}

fn dedup<T: PartialEq>(v: Vec<T>) -> Vec<T> {
    let mut out: Vec<T> = Vec::with_capacity(v.len());
    for x in v {
        if !out.contains(&x) {
            out.push(x);
        }
    }
    out
}

impl Plan {
    /// Applies defaults and `--quick`, and checks every value.
    pub(crate) fn resolve(a: &HttpArgs) -> Result<Plan> {
        let bad = |m: &str| Err(Error::Invalid(m.to_string()));
        let addrs = a
            .addr
            .iter()
            .map(|s| Addr::parse(s).map_err(Error::Invalid))
            .collect::<Result<Vec<_>>>()?;
        let spawn_lockd = a.spawn || (a.compare && addrs.is_empty());
        let targets = or_default(
            &a.target,
            if a.compare {
                vec![Target::Lockd, Target::Etcd, Target::Redis, Target::RedisEverysec]
            } else {
                vec![Target::Lockd]
            },
        );
        let lockd = targets.contains(&Target::Lockd);
        if !spawn_lockd && (a.store.is_some() || a.server_bin.is_some() || !a.transport.is_empty()) {
            return bad("--store, --server-bin and --transport configure spawned servers: they need --spawn");
        }
        if lockd && addrs.is_empty() && !spawn_lockd {
            return bad("say which server to drive: --addr host:port (or unix:///path), or --spawn to start one");
        }
        if !lockd && (spawn_lockd || !addrs.is_empty()) && !a.compare {
            return bad("--spawn and --addr are for lockd: add lockd to --target");
        }
        let spawn = if spawn_lockd && lockd {
            let default = if a.compare || targets.len() > 1 {
                vec![Transport::Tcp]
            } else {
                vec![Transport::Tcp, Transport::Unix]
            };
            or_default(&a.transport, default)
        } else {
            Vec::new()
        };
        let mut all_workloads = vec![Workload::Cycle, Workload::PublicRead, Workload::Contention];
        if a.compare {
            all_workloads.extend(workload::YCSB_ORDER);
        }
        let plan = Plan {
            addrs: if lockd { addrs } else { Vec::new() },
            spawn,
            targets,
            rounds: a.rounds.unwrap_or(if a.quick { 1 } else { 3 }),
            record_count: a.record_count,
            op_count: a.op_count,
            distribution: a.distribution,
            workloads: or_default(&a.workload, all_workloads),
            concurrency: dedup(a.concurrency.clone().unwrap_or_else(|| {
                if a.quick {
                    vec![1, 64]
                } else {
                    vec![1, 8, 64, 256]
                }
            })),
            duration: a
                .duration
                .unwrap_or(Duration::from_secs_f64(if a.quick { 1.0 } else { 10.0 })),
            warmup: a
                .warmup
                .unwrap_or(Duration::from_secs_f64(if a.quick { 0.5 } else { 2.0 })),
            keys: a.keys,
            contention_keys: a.contention_keys,
            contention_workers: a.contention_workers,
            client_threads: a
                .client_threads
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
        };
        let in_range = |v: usize, hi: usize| (1..=hi).contains(&v);
        if plan.concurrency.is_empty() || !plan.concurrency.iter().all(|&c| in_range(c, 4096)) {
            return bad("--concurrency values must be between 1 and 4096");
        }
        if plan.duration.is_zero() || plan.duration > Duration::from_secs(86_400) {
            return bad("--duration must be more than 0 and at most 24h");
        }
        if plan.warmup > Duration::from_secs(3600) {
            return bad("--warmup must be at most 1h");
        }
        if !in_range(plan.keys, 10_000_000) || !in_range(plan.contention_keys, 1_000_000) {
            return bad("--keys and --contention-keys must be between 1 and 10 000 000");
        }
        if !in_range(plan.contention_workers, 4096) || !in_range(plan.client_threads, 256) {
            return bad("--contention-workers must be 1..4096 and --client-threads 1..256");
        }
        if !in_range(plan.rounds, 100) {
            return bad("--rounds must be between 1 and 100");
        }
        if !(1..=10_000_000).contains(&plan.record_count) || plan.op_count == Some(0) {
            return bad("--record-count must be between 1 and 10 000 000, and --op-count more than 0");
        }
        if !in_range(a.value_size, 16 << 20) {
            return bad("--value-size must be between 1 byte and 16 MiB");
        }
        Ok(plan)
    }
}

/// Entry point of `lockd-bench http`.
pub(crate) fn run(a: &HttpArgs) -> Result<()> {
    let plan = Plan::resolve(a)?;
    let report = execute(a, &plan)?;
    print!("{}", report.table());
    if let Some(path) = &a.json {
        std::fs::write(path, report.json().to_pretty()).map_err(|e| Error::io("write JSON to", path, e))?;
        eprintln!("results written to {}", path.display());
    }
    if let Some(dir) = &a.charts {
        for path in compare::write_charts(&report, dir)? {
            eprintln!("chart written to {}", path.display());
        }
    }
    Ok(())
}

/// A short directory for Unix sockets when the scratch path is too long
/// for `sun_path` (108 bytes).
fn socket_dir(scratch: &Path) -> Result<(PathBuf, Option<tempfile::TempDir>)> {
    if scratch.as_os_str().len() < 90 {
        return Ok((scratch.to_path_buf(), None));
    }
    let short = tempfile::Builder::new()
        .prefix("lockd-bench-")
        .tempdir()
        .map_err(|e| Error::io("create socket directory in", &std::env::temp_dir(), e))?;
    Ok((short.path().to_path_buf(), Some(short)))
}

/// Runs the whole plan and returns the report (nothing printed to stdout).
fn execute(a: &HttpArgs, plan: &Plan) -> Result<Report> {
    let base = match &a.dir {
        Some(d) => d.clone(),
        None => std::env::current_dir().map_err(|e| Error::io("current directory", Path::new("."), e))?,
    };
    let scratch = tempfile::Builder::new()
        .prefix(".lockd-bench-http-")
        .tempdir_in(&base)
        .map_err(|e| Error::io("create scratch directory in", &base, e))?;
    let fs = fsinfo::probe(scratch.path())?;
    let mut notes = Vec::new();
    let probe = |when: &'static str| -> Result<(&'static str, raw::RawResult)> {
        let dir = scratch.path().join(format!("fsync-{when}"));
        std::fs::create_dir(&dir).map_err(|e| Error::io("create", &dir, e))?;
        let secs = if a.quick { 1.0 } else { 2.0 };
        let r = raw::run(&dir, 4096, 1, Duration::from_millis(200), Duration::from_secs_f64(secs))?;
        eprintln!(
            "fdatasync {when}: p50 {} p99 {} ({} syncs/s) on {}",
            fmt_latency(r.latency.p50),
            fmt_latency(r.latency.p99),
            fmt_rate(r.syncs_per_s()),
            fs.name
        );
        Ok((when, r))
    };
    let mut fsync = vec![probe("before")?];

    let mut systems = Vec::new();
    let (sock_dir, _sock_guard) = socket_dir(scratch.path())?;
    let store_durable = a.store.as_deref().is_none_or(|s| s.starts_with("disk://")) && !fs.volatile;
    if !plan.spawn.is_empty() {
        let bin = process::find_server_binary(a.server_bin.as_deref())?;
        for t in &plan.spawn {
            let (name, listen) = match t {
                Transport::Tcp => ("tcp", Listen::Loopback),
                Transport::Unix => ("unix", Listen::Unix(sock_dir.join("lockd.sock"))),
            };
            let store = match &a.store {
                Some(s) => s.clone(),
                None => format!("disk://{}", scratch.path().join(format!("store-{name}")).display()),
            };
            let p = ServerProcess::spawn(&bin, &store, &listen, scratch.path())?;
            eprintln!(
                "spawned {} (pid {}) on {} with store {store}",
                bin.display(),
                p.pid,
                p.addr
            );
            systems.push(System::lockd(p.addr.clone(), Some(p), store_durable));
        }
    } else if !plan.addrs.is_empty() {
        notes.push(format!(
            "lockd is external: its CPU time is not measured, and the fdatasync probe ran in {}, which may \
             not be the server's disk",
            base.display()
        ));
    }
    systems.extend(plan.addrs.iter().map(|addr| System::lockd(addr.clone(), None, true)));
    for kind in plan.targets.iter().filter_map(|t| t.peer()) {
        let sys = System::start_peer(kind, scratch.path())?;
        eprintln!(
            "started {} ({}) pid {} on {}",
            sys.label,
            sys.version.as_deref().unwrap_or("version unknown"),
            sys.pid.unwrap_or(0),
            sys.addr
        );
        systems.push(sys);
    }

    let doc = Bytes::from(crate::docgen::document(a.value_size, 1));
    let compacted = crate::ingest::check_same_output(&doc)?.len();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(plan.client_threads)
        .enable_all()
        .build()
        .map_err(|e| Error::Other(format!("tokio runtime: {e}")))?;
    let measured = rt.block_on(measure_all(plan, &systems, &doc));
    drop(rt);
    let described: Vec<report::SystemInfo> = systems.iter().map(report::SystemInfo::of).collect();
    let mut stopped = Ok(());
    for s in systems {
        stopped = stopped.and(s.stop());
    }
    let rows = measured?;
    stopped?;
    fsync.push(probe("after")?);
    if fs.volatile {
        notes.push(format!(
            "{} is memory-backed: durable numbers here say nothing about a disk",
            fs.name
        ));
    }
    let store = if plan.spawn.is_empty() {
        None
    } else {
        Some(
            a.store
                .clone()
                .unwrap_or_else(|| "disk://<scratch>/store-<transport>".into()),
        )
    };
    let meta = Meta {
        command: std::env::args().collect::<Vec<_>>().join(" "),
        systems: described,
        rounds: plan.rounds,
        spawned: !plan.spawn.is_empty(),
        store,
        probe_dir: base.display().to_string(),
        filesystem: fs.name.clone(),
        volatile: fs.volatile,
        kernel: fsinfo::kernel_release().unwrap_or_else(|| "unknown".into()),
        cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
        client_threads: plan.client_threads,
        duration: plan.duration,
        warmup: plan.warmup,
        value_bytes: (doc.len(), compacted),
    };
    scratch
        .close()
        .map_err(|e| Error::io("remove scratch directory", &base, e))?;
    Ok(Report {
        meta,
        fsync,
        rows,
        notes,
    })
}

/// Every workload x concurrency x round, each against every system in turn
/// (rotating which goes first).
async fn measure_all(plan: &Plan, systems: &[System], doc: &Bytes) -> Result<Vec<Row>> {
    let clocks: Vec<CpuClock> = systems.iter().map(|s| CpuClock::new(s.pid)).collect();
    let mut keyspaces: Vec<Option<Arc<Keyspace>>> = systems.iter().map(|_| None).collect();
    let zipf = plan
        .workloads
        .iter()
        .any(|w| w.mix().is_some())
        .then(|| Zipf::new(plan.record_count, ycsb::THETA));
    let runs: usize = plan
        .workloads
        .iter()
        .map(|w| plan.levels(*w).0.len() * plan.rounds * systems.len())
        .sum();
    let progress = progress::bar(runs as u64);
    let mut rows = Vec::new();
    for &w in &plan.workloads {
        let (levels, keys) = plan.levels(w);
        if w == Workload::PublicRead {
            for s in systems {
                progress.println(format!("populating {keys} keys on {} for public-read", s.label));
                workload::populate(
                    Arc::clone(&s.driver),
                    w.namespace(),
                    keys as u64,
                    |k| format!("k{k}"),
                    doc.clone(),
                )
                .await?;
            }
        }
        if w.mix().is_some() {
            for (s, space) in systems.iter().zip(keyspaces.iter_mut()) {
                if space.is_none() {
                    progress.println(format!("loading {} YCSB records on {}", plan.record_count, s.label));
                    workload::populate(
                        Arc::clone(&s.driver),
                        w.namespace(),
                        plan.record_count,
                        ycsb::record_key,
                        doc.clone(),
                    )
                    .await?;
                    *space = Some(Arc::new(Keyspace::new(plan.record_count)));
                }
            }
        }
        for &c in &levels {
            for round in 0..plan.rounds {
                // Each round starts with the next system, so whatever one
                // run leaves behind (dirty pages, a warm cache) does not
                // always land on the same successor.
                for i in 0..systems.len() {
                    let at = (i + round) % systems.len();
                    let (s, clock, space) = (&systems[at], &clocks[at], &keyspaces[at]);
                    let spec = Spec {
                        workload: w,
                        concurrency: c,
                        keys,
                        doc: doc.clone(),
                        warmup: plan.warmup,
                        duration: plan.duration,
                        op_count: w.mix().and(plan.op_count),
                        ycsb: match (w.mix(), space, &zipf) {
                            (Some(_), Some(space), Some(zipf)) => Some(YcsbSpec {
                                keyspace: Arc::clone(space),
                                zipf: zipf.clone(),
                                distribution: plan.distribution,
                            }),
                            _ => None,
                        },
                    };
                    let m = workload::measure(Arc::clone(&s.driver), spec, clock).await?;
                    let row = Row {
                        workload: w,
                        system: s.label,
                        addr: s.addr.clone(),
                        round,
                        concurrency: c,
                        keys,
                        m,
                    };
                    progress.println(format!(
                        "{:<11} {:<14} x {:>4} #{}: {:>9} ops/s  p50 {:>8} p99 {:>8}  errors {}{}",
                        w.name(),
                        row.system,
                        c,
                        round + 1,
                        fmt_rate(row.ops_per_s()),
                        fmt_latency(row.m.latency.p50),
                        fmt_latency(row.m.latency.p99),
                        row.m.errors,
                        row.m
                            .handoff
                            .map_or(String::new(), |h| format!("  hand-off p99 {}", fmt_latency(h.p99)))
                    ));
                    progress.inc(1);
                    rows.push(row);
                }
            }
        }
    }
    progress.finish_and_clear();
    Ok(rows)
}

impl Plan {
    /// Concurrency levels and key count of workload `w`.
    fn levels(&self, w: Workload) -> (Vec<usize>, usize) {
        match w {
            Workload::Contention => (vec![self.contention_workers], self.contention_keys),
            _ if w.mix().is_some() => (self.concurrency.clone(), self.record_count as usize),
            _ => (self.concurrency.clone(), self.keys),
        }
    }
}
