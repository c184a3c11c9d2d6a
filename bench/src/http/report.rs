//! The results of `lockd-bench http` as a table, target verdicts and JSON.

use std::fmt::Write as _;
use std::time::Duration;

use super::compare;
use super::workload::{Measured, Workload};
use crate::raw::RawResult;
use crate::stats::{fmt_bytes, fmt_latency, fmt_rate, Latency};

/// Durable cycles/s wanted at [`TARGET_CONCURRENCY`] when fdatasync is fast.
pub(crate) const TARGET_CYCLES: f64 = 10_000.0;
/// Public reads/s wanted at [`TARGET_CONCURRENCY`].
pub(crate) const TARGET_READS: f64 = 50_000.0;
/// Contended hand-off p99 wanted, in microseconds.
pub(crate) const TARGET_HANDOFF_P99_US: u64 = 5_000;
/// Concurrency the throughput targets are stated at.
pub(crate) const TARGET_CONCURRENCY: usize = 64;
/// The cycle target only applies when fdatasync's median is below this (µs).
pub(crate) const FAST_FSYNC_US: u64 = 500;

/// Where and how the run happened.
#[derive(Debug, Clone)]
pub(crate) struct Meta {
    /// The command line.
    pub command: String,
    /// The systems measured.
    pub systems: Vec<SystemInfo>,
    /// Rounds each measurement was repeated.
    pub rounds: usize,
    /// Whether the servers were started by the bench.
    pub spawned: bool,
    /// The store of the spawned servers (`disk://…`, `mem://`), or `None` for an external server.
    pub store: Option<String>,
    /// Directory the fdatasync probe ran in (the spawned servers' data dir).
    pub probe_dir: String,
    /// Its filesystem.
    pub filesystem: String,
    /// True on tmpfs/ramfs.
    pub volatile: bool,
    /// `uname -r`.
    pub kernel: String,
    /// CPUs available to this process (and, on one machine, shared with the server).
    pub cpus: usize,
    /// Worker threads of the client runtime.
    pub client_threads: usize,
    /// Measured time per run.
    pub duration: Duration,
    /// Warm-up per run.
    pub warmup: Duration,
    /// Bytes of the document each update uploads (pretty-printed) and as stored (compacted).
    pub value_bytes: (usize, usize),
}

/// One system of the run, as the report describes it.
#[derive(Debug, Clone)]
pub(crate) struct SystemInfo {
    /// Its label.
    pub label: &'static str,
    /// Where it listened.
    pub addr: String,
    /// What a YCSB write is on it.
    pub writes: &'static str,
    /// Whether acknowledged writes survive a crash.
    pub durable: bool,
    /// Program version, when known.
    pub version: Option<String>,
}

impl SystemInfo {
    /// Describes `s`.
    pub(crate) fn of(s: &super::systems::System) -> SystemInfo {
        SystemInfo {
            label: s.label,
            addr: s.addr.clone(),
            writes: s.writes,
            durable: s.durable,
            version: s.version.clone(),
        }
    }
}

/// One measured run.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    /// What ran.
    pub workload: Workload,
    /// The system's label (`lockd-tcp`, `etcd`, …).
    pub system: &'static str,
    /// The server's address.
    pub addr: String,
    /// Which round (0-based) of the interleaved rounds.
    pub round: usize,
    /// Workers (= connections).
    pub concurrency: usize,
    /// Keys picked from.
    pub keys: usize,
    /// What it achieved.
    pub m: Measured,
}

impl Row {
    /// Which run this was, for messages: workload, system, concurrency, round.
    fn run(&self) -> String {
        format!(
            "{} on {} at {} (round {})",
            self.workload.name(),
            self.system,
            self.concurrency,
            self.round + 1
        )
    }

    /// Operations per second in the window.
    pub(crate) fn ops_per_s(&self) -> f64 {
        crate::stats::rate(self.m.ops, self.m.elapsed)
    }

    /// Client and server CPU microseconds per operation, when known.
    fn cpu_us_per_op(&self, cpu: Option<f64>) -> Option<f64> {
        (self.m.ops > 0).then(|| cpu.map(|c| c * 1e6 / self.m.ops as f64))?
    }

    /// CPU cores busy on average over the window.
    fn cores(&self, cpu: Option<f64>) -> Option<f64> {
        let s = self.m.elapsed.as_secs_f64();
        (s > 0.0).then(|| cpu.map(|c| c / s))?
    }
}

/// Everything a run produced.
#[derive(Debug, Clone)]
pub(crate) struct Report {
    /// Where and how.
    pub meta: Meta,
    /// fdatasync probes (`before`, `after`) of the data dir's disk.
    pub fsync: Vec<(&'static str, RawResult)>,
    /// Measured runs in the order they ran.
    pub rows: Vec<Row>,
    /// Things the reader must know.
    pub notes: Vec<String>,
}

/// One target and how the run fared against it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Verdict {
    /// What is wanted.
    pub target: String,
    /// The system it was measured on.
    pub system: &'static str,
    /// What was measured, as text.
    pub measured: String,
    /// `Some(true)` met, `Some(false)` missed, `None` does not apply here.
    pub met: Option<bool>,
    /// Shortfall or why it does not apply.
    pub comment: String,
}

fn opt(x: Option<f64>, f: impl Fn(f64) -> String) -> String {
    x.map_or("-".into(), f)
}

impl Report {
    /// The slowest median of the fdatasync probes, in µs.
    fn fsync_p50(&self) -> Option<u64> {
        self.fsync.iter().map(|(_, r)| r.latency.p50).max()
    }

    fn durable(&self) -> Option<bool> {
        self.meta
            .store
            .as_ref()
            .map(|s| s.starts_with("disk://") && !self.meta.volatile)
    }

    /// The verdicts against lockd's own targets, one per lockd listener
    /// measured, on the median round.
    pub(crate) fn verdicts(&self) -> Vec<Verdict> {
        let mut out = Vec::new();
        let fast = self.fsync_p50().is_some_and(|p| p < FAST_FSYNC_US);
        let medians = compare::medians(&self.rows);
        for r in medians.iter().map(|m| m.row).filter(|r| r.system.starts_with("lockd")) {
            let at64 = r.concurrency == TARGET_CONCURRENCY;
            let short = |got: f64, want: f64| {
                format!(
                    "short by {:.0}% ({} of {})",
                    (1.0 - got / want) * 100.0,
                    fmt_rate(got),
                    fmt_rate(want)
                )
            };
            match r.workload {
                Workload::Cycle if at64 => {
                    let got = r.ops_per_s();
                    let applies = fast && self.durable() != Some(false);
                    let met = got >= TARGET_CYCLES;
                    out.push(Verdict {
                        target: format!(
                            "durable cycles/s at concurrency {TARGET_CONCURRENCY} >= {}",
                            fmt_rate(TARGET_CYCLES)
                        ),
                        system: r.system,
                        measured: format!("{} cycles/s", fmt_rate(got)),
                        met: applies.then_some(met),
                        comment: if !applies {
                            match self.durable() {
                                Some(false) => "store is not durable here: the target does not apply".into(),
                                _ => format!(
                                    "fdatasync p50 {} is not < {}: the target does not apply",
                                    self.fsync_p50().map_or("unknown".into(), fmt_latency),
                                    fmt_latency(FAST_FSYNC_US)
                                ),
                            }
                        } else if met {
                            "met".into()
                        } else {
                            short(got, TARGET_CYCLES)
                        },
                    });
                }
                Workload::PublicRead if at64 => {
                    let got = r.ops_per_s();
                    let met = got >= TARGET_READS;
                    out.push(Verdict {
                        target: format!(
                            "public reads/s at concurrency {TARGET_CONCURRENCY} >= {}",
                            fmt_rate(TARGET_READS)
                        ),
                        system: r.system,
                        measured: format!("{} reads/s", fmt_rate(got)),
                        met: Some(met),
                        comment: if met { "met".into() } else { short(got, TARGET_READS) },
                    });
                }
                Workload::Contention => {
                    let h = r.m.handoff.unwrap_or_else(empty_latency);
                    let met = h.count > 0 && h.p99 < TARGET_HANDOFF_P99_US;
                    out.push(Verdict {
                        target: format!("contended hand-off p99 < {}", fmt_latency(TARGET_HANDOFF_P99_US)),
                        system: r.system,
                        measured: format!("p99 {} over {} hand-offs", fmt_latency(h.p99), h.count),
                        met: (h.count > 0).then_some(met),
                        comment: if h.count == 0 {
                            "no hand-off was observed".into()
                        } else if met {
                            "met".into()
                        } else {
                            format!("over by {}", fmt_latency(h.p99 - TARGET_HANDOFF_P99_US))
                        },
                    });
                }
                _ => {}
            }
        }
        out
    }

    /// The human-readable report.
    pub(crate) fn table(&self) -> String {
        let m = &self.meta;
        let mut t = String::new();
        let _ = writeln!(
            t,
            "\nlockd-bench http — one connection per worker (lockd: HTTP/1.1 keep-alive; etcd: a gRPC channel; \
             Redis: RESP); {:.1}s per run after {:.1}s warm-up; {} CPUs shared by client ({} threads) and \
             servers; kernel {}",
            m.duration.as_secs_f64(),
            m.warmup.as_secs_f64(),
            m.cpus,
            m.client_threads,
            m.kernel
        );
        let _ = writeln!(
            t,
            "server: {}; updates upload {} ({} stored compacted)",
            match (&m.store, m.spawned) {
                (Some(s), true) => format!("spawned by the bench, store {s}"),
                _ => "external (--addr)".to_string(),
            },
            fmt_bytes(m.value_bytes.0),
            fmt_bytes(m.value_bytes.1)
        );
        for (when, r) in &self.fsync {
            let _ = writeln!(
                t,
                "fdatasync of {} ({}), 4 KiB pwrite + fdatasync, {when}: p50 {} p99 {} ({} syncs/s)",
                m.probe_dir,
                m.filesystem,
                fmt_latency(r.latency.p50),
                fmt_latency(r.latency.p99),
                fmt_rate(r.syncs_per_s())
            );
        }
        if m.volatile {
            let _ = writeln!(
                t,
                "WARNING: {} is memory-backed: fdatasync costs nothing there.",
                m.filesystem
            );
        }
        let _ = writeln!(
            t,
            "\n  {:<11} {:<14} {:>4} {:>9} {:>17} {:>8} {:>8} {:>8} {:>8} {:>6} {:>6} {:>11} {:>11}  step p50s",
            "workload",
            "system",
            "conc",
            "ops/s",
            "min–max",
            "p50",
            "p95",
            "p99",
            "p99.9",
            "errors",
            "busy",
            "cpu cl/sv",
            "µs cpu/op",
        );
        let medians = compare::medians(&self.rows);
        for med in &medians {
            let r = med.row;
            let l = &r.m.latency;
            let cores = format!(
                "{}/{}",
                opt(r.cores(r.m.client_cpu_s), |c| format!("{c:.2}")),
                opt(r.cores(r.m.server_cpu_s), |c| format!("{c:.2}"))
            );
            let per_op = format!(
                "{}/{}",
                opt(r.cpu_us_per_op(r.m.client_cpu_s), |c| format!("{c:.0}")),
                opt(r.cpu_us_per_op(r.m.server_cpu_s), |c| format!("{c:.0}"))
            );
            let steps: Vec<String> =
                r.m.steps
                    .iter()
                    .filter(|(_, s)| s.count > 0)
                    .map(|(n, s)| format!("{n} {}", fmt_latency(s.p50)))
                    .collect();
            let _ = writeln!(
                t,
                "  {:<11} {:<14} {:>4} {:>9} {:>17} {:>8} {:>8} {:>8} {:>8} {:>6} {:>6} {:>11} {:>11}  {}",
                r.workload.name(),
                r.system,
                r.concurrency,
                fmt_rate(r.ops_per_s()),
                format!("{}–{}", fmt_rate(med.min), fmt_rate(med.max)),
                fmt_latency(l.p50),
                fmt_latency(l.p95),
                fmt_latency(l.p99),
                fmt_latency(l.p999),
                r.m.errors,
                r.m.busy,
                cores,
                per_op,
                steps.join(", ")
            );
        }
        let _ = writeln!(
            t,
            "  median of {} round(s), systems interleaved; ops = cycles (acquire -> update -> release), reads or YCSB \
             operations; busy = acquires refused because the key was held;\n  cpu cl/sv = CPU cores busy in the \
             client / the server during the window; µs cpu/op likewise per operation",
            self.meta.rounds
        );
        let contention: Vec<&Row> = medians
            .iter()
            .map(|m| m.row)
            .filter(|r| r.m.handoff.is_some())
            .collect();
        if !contention.is_empty() {
            let _ = writeln!(
                t,
                "\nHand-off on one key (each release paired with the next grant of its key), to the waiting acquirer's \
                 grant answered:\n  from = the holder's release answered (the target's measure), or sent (adds the \
                 release's commit); 0 when the grant arrived first"
            );
            for r in contention {
                for (from, h) in [("answered", r.m.handoff), ("sent", r.m.handoff_from_call)] {
                    let h = h.unwrap_or_else(empty_latency);
                    let _ = writeln!(
                        t,
                        "  {:<14} {} workers on {} keys, from release {from:<8}: {} hand-offs, p50 {} p95 {} p99 {} \
                         p99.9 {} max {}",
                        r.system,
                        r.concurrency,
                        r.keys,
                        h.count,
                        fmt_latency(h.p50),
                        fmt_latency(h.p95),
                        fmt_latency(h.p99),
                        fmt_latency(h.p999),
                        fmt_latency(h.max)
                    );
                }
            }
        }
        let verdicts = self.verdicts();
        if !verdicts.is_empty() {
            let _ = writeln!(t, "\nTargets (2-CPU machine, client and server together)");
            for v in verdicts {
                let mark = match v.met {
                    Some(true) => "met",
                    Some(false) => "MISSED",
                    None => "n/a",
                };
                let _ = writeln!(
                    t,
                    "  [{mark:>6}] {} via {}: {} — {}",
                    v.target, v.system, v.measured, v.comment
                );
            }
        }
        for r in &self.rows {
            if r.m.errors > 0 {
                let first = r.m.first_error.as_deref().unwrap_or("?");
                let _ = writeln!(t, "\nErrors in {}: {} (first: {first})", r.run(), r.m.errors);
            }
            if r.m.misses > 0 {
                let _ = writeln!(t, "\nMisses in {}: {} reads found no record", r.run(), r.m.misses);
            }
        }
        t.push_str(&compare::table(self, &medians));
        for n in &self.notes {
            let _ = writeln!(t, "\nNote: {n}");
        }
        t
    }
}

fn empty_latency() -> Latency {
    Latency {
        count: 0,
        p50: 0,
        p95: 0,
        p99: 0,
        p999: 0,
        max: 0,
        mean: 0.0,
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    fn lat(p50: u64, p99: u64, count: u64) -> Latency {
        Latency {
            count,
            p50,
            p95: p99,
            p99,
            p999: p99,
            max: p99,
            mean: p50 as f64,
        }
    }

    /// A row of one round with made-up but consistent measurements.
    pub(crate) fn row(
        workload: Workload,
        system: &'static str,
        concurrency: usize,
        ops: u64,
        handoff: Option<Latency>,
    ) -> Row {
        Row {
            workload,
            system,
            addr: "x".into(),
            round: 0,
            concurrency,
            keys: 10,
            m: Measured {
                ops,
                busy: 0,
                misses: 0,
                errors: 0,
                first_error: None,
                elapsed: Duration::from_secs(1),
                latency: lat(100, 900, ops),
                steps: vec![("read", lat(90, 800, ops))],
                handoff,
                handoff_from_call: handoff,
                client_cpu_s: Some(0.5),
                server_cpu_s: None,
                cdf: vec![(50.0, 100), (99.0, 900)],
            },
        }
    }

    /// A report around `rows`, for tests of the report and its readers.
    pub(crate) fn report(store: &str, fsync_p50: u64, rows: Vec<Row>) -> Report {
        Report {
            meta: Meta {
                command: "lockd-bench http".into(),
                systems: Vec::new(),
                rounds: 1,
                spawned: true,
                store: Some(store.into()),
                probe_dir: "/d".into(),
                filesystem: "ext2/3/4".into(),
                volatile: false,
                kernel: "6".into(),
                cpus: 2,
                client_threads: 2,
                duration: Duration::from_secs(1),
                warmup: Duration::ZERO,
                value_bytes: (256, 200),
            },
            fsync: vec![(
                "before",
                RawResult {
                    record_bytes: 4096,
                    per_sync: 1,
                    syncs: 100,
                    elapsed: Duration::from_secs(1),
                    latency: lat(fsync_p50, fsync_p50 * 2, 100),
                },
            )],
            rows,
            notes: vec![],
        }
    }

    #[test]
    fn verdicts_against_the_issue_targets() {
        let rows = vec![
            row(Workload::Cycle, "lockd-tcp", 64, 8_000, None),
            row(Workload::Cycle, "lockd-unix", 64, 12_000, None),
            row(Workload::Cycle, "lockd-tcp", 8, 1, None),
            row(Workload::PublicRead, "lockd-tcp", 64, 40_000, None),
            row(Workload::Contention, "lockd-tcp", 64, 500, Some(lat(300, 6_000, 400))),
            row(Workload::Contention, "lockd-unix", 64, 500, Some(lat(300, 2_000, 400))),
        ];
        let r = report("disk:///d/s", 200, rows);
        let v = r.verdicts();
        assert_eq!(v.len(), 5, "{v:?}");
        assert_eq!(v[0].met, Some(false));
        assert_eq!(v[0].comment, "short by 20% (8 000 of 10 000)");
        assert_eq!(v[1].met, Some(true));
        assert_eq!(v[2].met, Some(false));
        assert_eq!(v[3].comment, "over by 1.00ms");
        assert_eq!(v[4].met, Some(true));
        let table = r.table();
        assert!(table.contains("[MISSED] durable cycles/s"), "{table}");
        assert!(table.contains("0.50/-"), "client cores shown, server unknown: {table}");
        assert!(r.json().to_pretty().contains("\"met\": false"));
    }

    #[test]
    fn the_cycle_target_does_not_apply_to_slow_disks_or_memory() {
        let slow = report(
            "disk:///d/s",
            2_000,
            vec![row(Workload::Cycle, "lockd-tcp", 64, 800, None)],
        );
        let v = slow.verdicts();
        assert_eq!(v[0].met, None);
        assert!(v[0].comment.contains("not < 500µs"), "{}", v[0].comment);
        let mem = report("mem://", 100, vec![row(Workload::Cycle, "lockd-tcp", 64, 800, None)]);
        assert_eq!(mem.verdicts()[0].met, None);
        let none = report(
            "mem://",
            100,
            vec![row(Workload::Contention, "lockd-tcp", 2, 5, Some(lat(0, 0, 0)))],
        );
        assert_eq!(none.verdicts()[0].met, None);
    }
}
