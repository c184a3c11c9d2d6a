//! The flags of `lockd-bench http` and the plan they resolve to: defaults,
//! `--quick` and `--compare` applied, every value and combination checked
//! before anything is started.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::driver::Addr;
use super::systems::Target;
use super::workload::{self, Workload};
use super::ycsb::Distribution;
use crate::cli::{dedup, parse_duration, parse_size};
use crate::error::{Error, Result};

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
    /// Server to drive: host:port (plain HTTP, start lockd with --disable-mtls; mTLS with --tls-bundle)
    /// or unix:///path. Repeat to measure several listeners of one server.
    #[arg(long, value_name = "ADDR", conflicts_with = "spawn")]
    pub addr: Vec<String>,
    /// Start the servers: the lockd binary next to this one, with --disable-mtls and a disk:// store
    /// in the scratch directory, one on 127.0.0.1:0 and one on a Unix socket (with --tls, one more
    /// with mTLS); stopped at the end.
    #[arg(long)]
    pub spawn: bool,
    /// Measure lockd over mTLS next to plain HTTP. With --spawn the bench also starts a lockd with
    /// mTLS on 127.0.0.1 (certificates from `lockd --bootstrap` in the scratch directory; storage
    /// encryption off, as on the plain one, so only the transport differs) and runs every workload
    /// over plain TCP and over mTLS, interleaved per round; the comparison gives
    /// the mTLS/plain throughput ratio per workload and concurrency against the target "mTLS costs
    /// < 15 %". With --addr it needs --tls-bundle, and the TCP addresses are driven over mTLS.
    #[arg(long)]
    pub tls: bool,
    /// lockd client bundle (one PEM file: CA certificate, client certificate and its key, any
    /// order) to drive the --addr servers over mTLS; implies --tls. The server's certificate must
    /// chain to that CA; its host name is not checked.
    #[arg(long, value_name = "FILE", conflicts_with = "spawn")]
    pub tls_bundle: Option<PathBuf>,
    /// Transports of the spawned servers, comma-separated. [default: tcp,unix; tcp with --tls, with
    /// --compare or with several targets]
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
    /// TCP on 127.0.0.1 with mTLS. Not a `--transport` value: `--tls` adds
    /// it, so that plain TCP, its baseline, is always measured beside it.
    #[value(skip)]
    Mtls,
}

/// What an `http` run will do, with defaults and `--quick` applied.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Plan {
    pub(super) targets: Vec<Target>,
    pub(super) rounds: usize,
    pub(super) record_count: u64,
    pub(super) op_count: Option<u64>,
    pub(super) distribution: Distribution,
    /// lockd servers given with `--addr`.
    pub(super) addrs: Vec<Addr>,
    /// Client bundle for driving `addrs` over mTLS (`--tls-bundle`).
    pub(super) tls_bundle: Option<PathBuf>,
    /// lockd servers to start, one per transport ([`Transport::Mtls`] last).
    pub(super) spawn: Vec<Transport>,
    pub(super) workloads: Vec<Workload>,
    pub(super) concurrency: Vec<usize>,
    pub(super) duration: Duration,
    pub(super) warmup: Duration,
    pub(super) keys: usize,
    pub(super) contention_keys: usize,
    pub(super) contention_workers: usize,
    pub(super) client_threads: usize,
}

/// `v` without repeats, or `default` when `v` is empty.
fn or_default<T: PartialEq + Clone>(v: &[T], default: Vec<T>) -> Vec<T> {
    if v.is_empty() {
        default
    } else {
        dedup(v.to_vec())
    }
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
        let tls = a.tls || a.tls_bundle.is_some();
        if !spawn_lockd && (a.store.is_some() || a.server_bin.is_some() || !a.transport.is_empty()) {
            return bad("--store, --server-bin and --transport configure spawned servers: they need --spawn");
        }
        if a.tls && !spawn_lockd && a.tls_bundle.is_none() {
            return bad(
                "--tls needs a server to talk mTLS to: add --spawn (the bench starts lockd with certificates of \
                 its own, next to a plain one), or drive --addr host:port with the client bundle to connect \
                 with (--tls-bundle FILE)",
            );
        }
        if lockd && addrs.is_empty() && !spawn_lockd {
            return bad("say which server to drive: --addr host:port (or unix:///path), or --spawn to start one");
        }
        if !lockd && (spawn_lockd || !addrs.is_empty()) && !a.compare {
            return bad("--spawn and --addr are for lockd: add lockd to --target");
        }
        if tls && !lockd {
            return bad("--tls and --tls-bundle measure lockd over mTLS: add lockd to --target");
        }
        if a.tls_bundle.is_some() && spawn_lockd {
            return bad("--tls-bundle is for servers given with --addr: spawned servers get certificates of their own");
        }
        if a.tls_bundle.is_some() && addrs.iter().any(|x| matches!(x, Addr::Unix(_))) {
            return bad("--tls-bundle: lockd serves TLS on TCP only, so unix:/// addresses cannot be driven over mTLS");
        }
        let mut spawn = if spawn_lockd && lockd {
            let default = if a.compare || targets.len() > 1 || tls {
                vec![Transport::Tcp]
            } else {
                vec![Transport::Tcp, Transport::Unix]
            };
            or_default(&a.transport, default)
        } else {
            Vec::new()
        };
        if tls && !spawn.is_empty() {
            if !spawn.contains(&Transport::Tcp) {
                return bad("--tls judges mTLS against plain TCP: keep tcp in --transport");
            }
            spawn.push(Transport::Mtls);
        }
        let mut all_workloads = vec![Workload::Cycle, Workload::PublicRead, Workload::Contention];
        if a.compare {
            all_workloads.extend(workload::YCSB_ORDER);
        }
        let plan = Plan {
            addrs: if lockd { addrs } else { Vec::new() },
            tls_bundle: a.tls_bundle.clone(),
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

    /// Concurrency levels and key count of workload `w`.
    pub(super) fn levels(&self, w: Workload) -> (Vec<usize>, usize) {
        match w {
            Workload::Contention => (vec![self.contention_workers], self.contention_keys),
            _ if w.mix().is_some() => (self.concurrency.clone(), self.record_count as usize),
            _ => (self.concurrency.clone(), self.keys),
        }
    }
}
