//! Command-line interface and the run plan it resolves to.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::error::{Error, Result};

/// Benchmarks for lockd-rs.
#[derive(Debug, Parser)]
#[command(
    name = "lockd-bench",
    version,
    about = "Benchmarks for lockd-rs: what its parts achieve on this machine, next to what the hardware allows.",
    long_about = "Benchmarks for lockd-rs: what its parts achieve on this machine, next to what the hardware \
                  allows.\n\nEach subcommand prints a table to stdout (progress goes to stderr) and can write \
                  the same results as JSON with --json. Numbers only mean something for the disk and \
                  filesystem they ran on: run them where lockd will run.\n\nStart with:\n  \
                  lockd-bench logstore --quick\n  lockd-bench core --quick\n  \
                  lockd-bench json --quick\n  \
                  lockd-bench http --spawn --quick"
)]
pub(crate) struct Cli {
    /// Diagnostics to stderr, as a tracing filter (`warn`, `lockd_logstore=debug`, …).
    #[arg(long, global = true, env = "RUST_LOG", default_value = "warn", value_name = "FILTER")]
    pub log: String,

    /// What to benchmark.
    #[command(subcommand)]
    pub command: Command,
}

/// The benchmarks.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Durable puts/s and commit latency of the storage engine, against the raw fdatasync limit of the same disk.
    #[command(long_about = LOGSTORE_ABOUT)]
    Logstore(LogstoreArgs),
    /// Lease core in-process on disk://: acquire -> update -> release cycles/s, contended hand-off latency,
    /// memory per lease actor.
    Core(crate::core::CoreArgs),
    /// Validating and compacting one state upload: the server's serde_json path against simd-json,
    /// for 150 B, 60 KiB and 2 MiB documents.
    Json(crate::ingest::IngestArgs),
    /// A lockd server over HTTP: lease cycles, public reads and contended hand-offs at several
    /// concurrencies, over TCP and a Unix socket, with the disk's fdatasync latency.
    #[command(long_about = HTTP_ABOUT)]
    Http(crate::http::HttpArgs),
}

const HTTP_ABOUT: &str = "\
A lockd server over HTTP/1.1, as a client sees it, with the server and the client on this \
machine; and the same work against etcd and Redis (--target, --compare), started by the bench.

Workloads (one connection per worker, so concurrency N = N connections):
  cycle        acquire (no wait) -> update (a JSON document of --value-size) -> release (commit),
               on a random key of --keys; a held key is counted as busy and another is tried.
  public-read  lease-less reads (public=1) of random keys, all populated first.
  contention   --contention-workers workers on --contention-keys keys, acquire waits; reports the
               hand-off latency: the holder's release answered -> the next holder's grant answered.
  ycsb-a..f    YCSB's core mixes over --record-count records (zipfian, or --distribution uniform);
               a write is a lease cycle on lockd and a plain put on etcd and Redis.

Each run reports ops/s, latency p50/p95/p99/p99.9, errors and CPU time of client and server. The \
fdatasync latency of the scratch directory's disk is measured before and after, in the same run. \
With several systems, each measurement repeats over --rounds with the systems interleaved, and the \
table shows the median round with the min-max.

mTLS (--tls): lockd runs with mTLS by default, so --tls measures that too. With --spawn the bench \
makes certificates with `lockd --bootstrap` in the scratch directory, starts another lockd with \
them and runs every workload over plain TCP and over mTLS, interleaved per round; the comparison \
prints, per workload and concurrency, the mTLS/plain throughput ratio and what mTLS costs, against \
the target \"mTLS costs < 15 %\" (stated at concurrency 64). To a given server, add --addr and \
--tls-bundle FILE (a lockd client bundle: CA, client certificate and key in one PEM).

Examples:
  lockd-bench http --spawn --quick
  lockd-bench http --spawn --duration 5s --json http.json
  lockd-bench http --addr 127.0.0.1:9341 --workload cycle --concurrency 64
  lockd-bench http --spawn --tls --workload cycle,public-read --concurrency 64   # mTLS vs plain TCP
  lockd-bench http --addr 127.0.0.1:9341 --tls-bundle client.pem --workload cycle
  lockd-bench http --compare --quick --charts charts/     # lockd vs etcd vs Redis, every workload";

const LOGSTORE_ABOUT: &str = "\
Durable puts/s and commit latency of the storage engine (lockd-logstore), \
against the raw fdatasync limit of the same disk, in one run.

1. Raw disk: pwrite + fdatasync in a loop on a preallocated file: 4 KiB per sync, \
then N records of 256 B packed into one pwrite per sync for each N of --raw-batches.
2. Logstore: for every io path x value size x writer count, a fresh store (compaction off); \
each writer thread commits one-put batches (random key out of --keys) back to back. \
Reports puts/s and commit latency p50/p99/p99.9 after a warm-up.
3. Achieved batch size B = commits / group writes (each group write is one fdatasync), \
from the store's own counters.
4. Right after each configuration, the raw loop again with round(B) records of the same \
value size per sync, and the ratio logstore puts/s / (raw syncs/s at B x B): how close group \
commit comes to the disk's limit at the batch size it actually reached. The target is >= 80 % \
at 64 writers with 256 B values.

Everything runs in a scratch directory created inside --dir and removed afterwards. \
On tmpfs fdatasync is free and the numbers say nothing about a disk: a warning says so.";

/// A write path of the logstore.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum IoChoice {
    /// io_uring: linked writev + fdatasync in one submission.
    Uring,
    /// pwritev + fdatasync system calls on the writer thread.
    Sync,
}

impl std::fmt::Display for IoChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            IoChoice::Uring => "uring",
            IoChoice::Sync => "sync",
        })
    }
}

/// How the concurrent writers are driven.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ClientChoice {
    /// N tokio tasks calling `commit_async` on a runtime with one worker
    /// thread per CPU: how the server's actors drive the store.
    Tasks,
    /// N OS threads each blocked in `commit`: every commit costs a thread
    /// wake-up, which on a 2-CPU machine competes with the writer thread.
    Threads,
}

impl std::fmt::Display for ClientChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ClientChoice::Tasks => "tasks",
            ClientChoice::Threads => "threads",
        })
    }
}

/// Flags of `lockd-bench logstore`.
#[derive(Debug, Clone, Args)]
pub(crate) struct LogstoreArgs {
    /// Directory to benchmark in: a scratch directory is created inside it and removed at the end.
    /// Put it on the disk you care about; /tmp is often tmpfs. [default: the current directory]
    #[arg(long, env = "LOCKD_BENCH_DIR", value_name = "DIR")]
    pub dir: Option<PathBuf>,

    /// Seconds each configuration is measured, after its warm-up. [default: 3, or 1 with --quick]
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,

    /// Seconds each configuration runs before measuring starts (not counted). [default: 0.5, or 0.25 with --quick]
    #[arg(long, value_name = "SECS")]
    pub warmup: Option<f64>,

    /// Smoke run: 1 s per configuration, writers 1 and 64, 256 B values, both io paths.
    /// Flags given explicitly still win.
    #[arg(long)]
    pub quick: bool,

    /// Concurrent writer threads, comma-separated. [default: 1,8,64,256, or 1,64 with --quick]
    #[arg(long, value_delimiter = ',', value_name = "N,..")]
    pub writers: Option<Vec<usize>>,

    /// Value sizes, comma-separated; suffixes k/KiB and m/MiB are powers of 1024.
    /// [default: 256,4k, or 256 with --quick]
    #[arg(long, value_delimiter = ',', value_parser = parse_size, value_name = "BYTES,..")]
    pub value_size: Option<Vec<usize>>,

    /// Write paths to measure, comma-separated. If io_uring cannot be set up, that is reported
    /// and the run continues with sync. [default: uring,sync]
    #[arg(long, value_delimiter = ',', value_name = "PATH,..")]
    pub io: Option<Vec<IoChoice>>,

    /// How writers are driven, comma-separated: `tasks` (async tasks, as the server does) and/or
    /// `threads` (blocking OS threads). [default: tasks,threads, or tasks with --quick]
    #[arg(long, value_delimiter = ',', value_name = "MODE,..")]
    pub clients: Option<Vec<ClientChoice>>,

    /// Records of 256 B per fdatasync for the fixed raw group loop, comma-separated
    /// (the achieved batch sizes are measured in addition). [default: 1,8,64,256]
    #[arg(long, value_delimiter = ',', value_name = "N,..")]
    pub raw_batches: Option<Vec<usize>>,

    /// Number of distinct keys writers pick from at random.
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    pub keys: usize,

    /// Also write the results as JSON to this file.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
}

/// Largest value the bench writes inline (the store's default limit).
const MAX_VALUE: usize = 16 << 20;

/// What a `logstore` run will do, with defaults and `--quick` applied.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Plan {
    /// Measured time per configuration.
    pub duration: Duration,
    /// Unmeasured time before it.
    pub warmup: Duration,
    /// Writer counts.
    pub writers: Vec<usize>,
    /// Value sizes in bytes.
    pub value_sizes: Vec<usize>,
    /// Write paths.
    pub io: Vec<IoChoice>,
    /// Writer drivers.
    pub clients: Vec<ClientChoice>,
    /// Fixed raw group sizes (records of 256 B per sync).
    pub raw_batches: Vec<usize>,
    /// Distinct keys.
    pub keys: usize,
}

impl Plan {
    /// Applies defaults and `--quick`, and checks every value.
    pub(crate) fn resolve(a: &LogstoreArgs) -> Result<Plan> {
        let (duration, warmup, writers, sizes): (f64, f64, &[usize], &[usize]) = if a.quick {
            (1.0, 0.25, &[1, 64], &[256])
        } else {
            (3.0, 0.5, &[1, 8, 64, 256], &[256, 4096])
        };
        let clients: &[ClientChoice] = if a.quick {
            &[ClientChoice::Tasks]
        } else {
            &[ClientChoice::Tasks, ClientChoice::Threads]
        };
        let plan = Plan {
            duration: seconds("--duration", a.duration.unwrap_or(duration), false)?,
            warmup: seconds("--warmup", a.warmup.unwrap_or(warmup), true)?,
            writers: dedup(a.writers.clone().unwrap_or_else(|| writers.to_vec())),
            value_sizes: dedup(a.value_size.clone().unwrap_or_else(|| sizes.to_vec())),
            io: dedup(a.io.clone().unwrap_or_else(|| vec![IoChoice::Uring, IoChoice::Sync])),
            clients: dedup(a.clients.clone().unwrap_or_else(|| clients.to_vec())),
            raw_batches: dedup(a.raw_batches.clone().unwrap_or_else(|| vec![1, 8, 64, 256])),
            keys: a.keys,
        };
        let check = |ok: bool, msg: &str| {
            if ok {
                Ok(())
            } else {
                Err(Error::Invalid(msg.to_string()))
            }
        };
        check(!plan.writers.is_empty(), "--writers needs at least one value")?;
        check(
            plan.writers.iter().all(|w| (1..=4096).contains(w)),
            "--writers values must be between 1 and 4096",
        )?;
        check(!plan.value_sizes.is_empty(), "--value-size needs at least one value")?;
        check(
            plan.value_sizes.iter().all(|v| (1..=MAX_VALUE).contains(v)),
            "--value-size values must be between 1 byte and 16 MiB",
        )?;
        check(!plan.io.is_empty(), "--io needs at least one value")?;
        check(
            plan.raw_batches.iter().all(|b| (1..=65_536).contains(b)),
            "--raw-batches values must be between 1 and 65536",
        )?;
        check(plan.keys >= 1, "--keys must be at least 1")?;
        Ok(plan)
    }
}

/// A number of seconds from a flag; zero allowed only if `zero_ok`.
fn seconds(flag: &str, s: f64, zero_ok: bool) -> Result<Duration> {
    if !s.is_finite() || s < 0.0 || (s == 0.0 && !zero_ok) || s > 86_400.0 {
        let range = if zero_ok { "0" } else { "more than 0" };
        return Err(Error::Invalid(format!(
            "{flag} must be {range} and at most 86400 seconds, not {s}"
        )));
    }
    Ok(Duration::from_secs_f64(s))
}

/// Drops repeated values, keeping the first occurrence's place.
pub(crate) fn dedup<T: PartialEq>(v: Vec<T>) -> Vec<T> {
    let mut out: Vec<T> = Vec::with_capacity(v.len());
    for x in v {
        if !out.contains(&x) {
            out.push(x);
        }
    }
    out
}

/// Parses `256`, `4k`, `4KiB`, `1m`, `1MiB` (powers of 1024) into bytes.
pub(crate) fn parse_size(s: &str) -> std::result::Result<usize, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: usize = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a size (examples: 256, 4k, 4KiB, 1m)"))?;
    let mult: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        _ => return Err(format!("{s:?}: unknown unit (use k/KiB or m/MiB)")),
    };
    n.checked_mul(mult).ok_or_else(|| format!("{s:?} is too large"))
}

/// Parses `10s`, `500ms`, `2m`, `1.5s` or a bare number of seconds.
pub(crate) fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (examples: 10s, 500ms, 2m)"))?;
    let secs = match unit.trim() {
        "" | "s" => n,
        "ms" => n / 1e3,
        "m" | "min" => n * 60.0,
        _ => return Err(format!("{s:?}: unknown unit (use ms, s or m)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{s:?} is out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> LogstoreArgs {
        let mut argv = vec!["lockd-bench", "logstore"];
        argv.extend_from_slice(extra);
        match Cli::try_parse_from(argv).expect("parse").command {
            Command::Logstore(a) => a,
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn core_flags_parse_with_defaults() {
        let Command::Core(c) = Cli::try_parse_from(["lockd-bench", "core", "--concurrency", "2,4"])
            .expect("parse")
            .command
        else {
            panic!("core subcommand expected")
        };
        assert_eq!(c.concurrency, vec![2, 4]);
        assert_eq!(
            (c.keys, c.value_size, c.contention_keys, c.contention_workers),
            (1000, 256, 10, 64)
        );
        assert!(Cli::try_parse_from(["lockd-bench", "core", "--keys", "many"]).is_err());
    }

    #[test]
    fn defaults_quick_and_explicit_flags() {
        let full = Plan::resolve(&args(&[])).expect("plan");
        assert_eq!(full.duration, Duration::from_secs(3));
        assert_eq!(full.writers, vec![1, 8, 64, 256]);
        assert_eq!(full.value_sizes, vec![256, 4096]);
        assert_eq!(full.io, vec![IoChoice::Uring, IoChoice::Sync]);
        let quick = Plan::resolve(&args(&["--quick"])).expect("plan");
        assert_eq!(quick.duration, Duration::from_secs(1));
        assert_eq!(quick.writers, vec![1, 64]);
        assert_eq!(quick.value_sizes, vec![256]);
        assert_eq!(quick.io, vec![IoChoice::Uring, IoChoice::Sync]);
        let mixed = Plan::resolve(&args(&[
            "--quick",
            "--writers",
            "4,4,2",
            "--io",
            "sync",
            "--duration",
            "0.5",
        ]))
        .expect("plan");
        assert_eq!(mixed.writers, vec![4, 2]);
        assert_eq!(mixed.io, vec![IoChoice::Sync]);
        assert_eq!(mixed.duration, Duration::from_millis(500));
        assert_eq!(mixed.value_sizes, vec![256]);
    }

    #[test]
    fn rejects_what_cannot_run() {
        assert!(Plan::resolve(&args(&["--writers", "0"])).is_err());
        assert!(Plan::resolve(&args(&["--duration", "0"])).is_err());
        assert!(Plan::resolve(&args(&["--duration", "NaN"])).is_err());
        assert!(Plan::resolve(&args(&["--warmup", "0"])).is_ok());
        assert!(Plan::resolve(&args(&["--value-size", "32m"])).is_err());
        assert!(Plan::resolve(&args(&["--keys", "0"])).is_err());
        assert!(Cli::try_parse_from(["lockd-bench", "logstore", "--io", "auto"]).is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        for bad in ["", "s", "-1s", "10h", "1e400"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("256"), Ok(256));
        assert_eq!(parse_size("4k"), Ok(4096));
        assert_eq!(parse_size("4KiB"), Ok(4096));
        assert_eq!(parse_size("1m"), Ok(1 << 20));
        assert_eq!(parse_size("12 B"), Ok(12));
        assert!(parse_size("k").is_err());
        assert!(parse_size("4x").is_err());
        assert!(parse_size("99999999999999999999").is_err());
    }
}
