//! The results of a `logstore` run as a terminal table and as JSON.

use std::fmt::Write as _;
use std::time::Duration;

use crate::cli::IoChoice;
use crate::engine::StoreResult;
use crate::json::Json;
use crate::raw::RawResult;
use crate::stats::{self, fmt_bytes, fmt_latency, fmt_rate, Latency};

/// The target: logstore puts/s at least this fraction of the raw
/// group-fsync loop at the same batch size…
pub(crate) const TARGET_RATIO: f64 = 0.80;
/// …with this many writers…
pub(crate) const TARGET_WRITERS: usize = 64;
/// …and values of this size.
pub(crate) const TARGET_VALUE: usize = 256;

/// Where the run happened and how.
#[derive(Debug, Clone)]
pub(crate) struct Meta {
    /// The command line.
    pub command: String,
    /// The directory given (or the current one).
    pub dir: String,
    /// The scratch directory inside it.
    pub scratch: String,
    /// Its filesystem.
    pub filesystem: String,
    /// True on tmpfs/ramfs.
    pub volatile: bool,
    /// `uname -r`.
    pub kernel: String,
    /// CPUs available to this process.
    pub cpus: usize,
    /// Measured time per configuration.
    pub duration: Duration,
    /// Warm-up per configuration.
    pub warmup: Duration,
    /// Distinct keys.
    pub keys: usize,
}

/// Why a standalone raw loop shape was measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RawKind {
    /// 4 KiB per fdatasync: the disk's sync rate.
    SyncRate,
    /// One of `--raw-batches`.
    Fixed,
}

impl RawKind {
    fn label(self) -> &'static str {
        match self {
            RawKind::SyncRate => "sync rate",
            RawKind::Fixed => "group",
        }
    }
}

/// One raw loop result.
#[derive(Debug, Clone)]
pub(crate) struct RawRow {
    /// What it measured.
    pub result: RawResult,
    /// Why it was run.
    pub kind: RawKind,
}

/// One logstore result and the raw loop it is compared with.
#[derive(Debug, Clone)]
pub(crate) struct StoreRow {
    /// What the store achieved.
    pub result: StoreResult,
    /// The raw loop run right after it with the same record size and
    /// `round(batch)` records per sync; `None` when no group was written.
    pub raw: Option<RawResult>,
}

/// Everything a run produced.
#[derive(Debug, Clone)]
pub(crate) struct Report {
    /// Where and how.
    pub meta: Meta,
    /// Standalone raw loops, in the order they ran.
    pub raw: Vec<RawRow>,
    /// Logstore configurations, in the order they ran.
    pub stores: Vec<StoreRow>,
    /// Things the reader must know (a skipped io path, …).
    pub notes: Vec<String>,
}

/// A logstore row's comparison with the raw loop.
struct Compared<'a> {
    batch: usize,
    raw: &'a RawResult,
    raw_records_per_s: f64,
    ratio: Option<f64>,
}

impl Report {
    fn compare<'a>(&self, row: &'a StoreRow) -> Option<Compared<'a>> {
        let raw = row.raw.as_ref()?;
        let batch = raw.per_sync;
        Some(Compared {
            batch,
            raw,
            raw_records_per_s: raw.records_per_s(),
            ratio: stats::ratio(row.result.puts_per_s(), raw.syncs_per_s(), batch),
        })
    }

    /// The human-readable report.
    pub(crate) fn table(&self) -> String {
        let m = &self.meta;
        let mut t = String::new();
        let _ = writeln!(
            t,
            "\nlockd-bench logstore — {} ({}), kernel {}, {} CPUs, {:.2}s per configuration after {:.2}s warm-up",
            m.dir,
            m.filesystem,
            m.kernel,
            m.cpus,
            m.duration.as_secs_f64(),
            m.warmup.as_secs_f64()
        );
        if m.volatile {
            let _ = writeln!(
                t,
                "WARNING: {} is memory-backed; fdatasync costs nothing here.",
                m.filesystem
            );
        }

        let _ = writeln!(
            t,
            "\nRaw disk: records packed into one pwrite, then fdatasync, on a preallocated file"
        );
        let _ = writeln!(
            t,
            "  {:>7} {:>8} {:>10} {:>11} {:>8} {:>8} {:>8}  why",
            "record", "per sync", "syncs/s", "records/s", "p50", "p99", "p99.9"
        );
        let mut raws: Vec<&RawRow> = self.raw.iter().collect();
        raws.sort_by_key(|r| (r.result.record_bytes, r.result.per_sync));
        for r in raws {
            let x = &r.result;
            let _ = writeln!(
                t,
                "  {:>7} {:>8} {:>10} {:>11} {:>8} {:>8} {:>8}  {}",
                fmt_bytes(x.record_bytes),
                x.per_sync,
                fmt_rate(x.syncs_per_s()),
                fmt_rate(x.records_per_s()),
                fmt_latency(x.latency.p50),
                fmt_latency(x.latency.p99),
                fmt_latency(x.latency.p999),
                r.kind.label()
            );
        }

        let _ = writeln!(
            t,
            "\nLogstore: durable commits of one put each (compaction off); batch = commits per fdatasync;\n\
             raw@B = records/s of the raw loop run right after, with the same record size and B = round(batch)\n\
             records per sync; ratio = puts/s / raw@B"
        );
        let _ = writeln!(
            t,
            "  {:<25} {:>6} {:>7} {:>10} {:>9} {:>6} {:>8} {:>8} {:>8} {:>11} {:>6}",
            "io/clients", "value", "writers", "puts/s", "syncs/s", "batch", "p50", "p99", "p99.9", "raw@B", "ratio"
        );
        for row in &self.stores {
            let r = &row.result;
            let c = self.compare(row);
            let _ = writeln!(
                t,
                "  {:<25} {:>6} {:>7} {:>10} {:>9} {:>6} {:>8} {:>8} {:>8} {:>11} {:>6}",
                r.label(),
                fmt_bytes(r.config.value_bytes),
                r.config.writers,
                fmt_rate(r.puts_per_s()),
                fmt_rate(r.groups_per_s()),
                r.batch().map_or("-".into(), |b| format!("{b:.1}")),
                fmt_latency(r.latency.p50),
                fmt_latency(r.latency.p99),
                fmt_latency(r.latency.p999),
                c.as_ref().map_or("-".into(), |c| fmt_rate(c.raw_records_per_s)),
                c.as_ref().and_then(|c| c.ratio).map_or("-".into(), pct),
            );
        }

        let _ = writeln!(t, "\nRaw disk at each configuration's batch size B (the raw@B column)");
        let _ = writeln!(
            t,
            "  {:<25} {:>6} {:>7} {:>5} {:>10} {:>11} {:>8} {:>8} {:>8}",
            "after io/clients", "value", "writers", "B", "syncs/s", "records/s", "p50", "p99", "p99.9"
        );
        for row in &self.stores {
            let (r, Some(x)) = (&row.result, &row.raw) else {
                continue;
            };
            let _ = writeln!(
                t,
                "  {:<25} {:>6} {:>7} {:>5} {:>10} {:>11} {:>8} {:>8} {:>8}",
                r.label(),
                fmt_bytes(r.config.value_bytes),
                r.config.writers,
                x.per_sync,
                fmt_rate(x.syncs_per_s()),
                fmt_rate(x.records_per_s()),
                fmt_latency(x.latency.p50),
                fmt_latency(x.latency.p99),
                fmt_latency(x.latency.p999),
            );
        }

        let _ = writeln!(
            t,
            "\nTarget: at {TARGET_WRITERS} writers with {} values, logstore puts/s >= {} of the raw group-fsync \
             loop at the same batch size",
            fmt_bytes(TARGET_VALUE),
            pct(TARGET_RATIO)
        );
        let mut any = false;
        for row in self.target_rows() {
            let r = &row.result;
            any = true;
            match self.compare(row) {
                Some(c) => {
                    let verdict = match c.ratio {
                        Some(x) if x >= TARGET_RATIO => "met".to_string(),
                        Some(x) => format!("MISSED by {:.1} points", (TARGET_RATIO - x) * 100.0),
                        None => "no raw figure".to_string(),
                    };
                    let _ = writeln!(
                        t,
                        "  {:<25} {} puts/s vs raw {} records/s (B = {}: {} syncs/s x {}) = {} — {}",
                        r.label(),
                        fmt_rate(r.puts_per_s()),
                        fmt_rate(c.raw_records_per_s),
                        c.batch,
                        fmt_rate(c.raw.syncs_per_s()),
                        c.batch,
                        c.ratio.map_or("-".into(), pct),
                        verdict
                    );
                }
                None => {
                    let _ = writeln!(t, "  {:<25} no group write was measured", r.label());
                }
            }
        }
        if !any {
            let _ = writeln!(
                t,
                "  not measured in this run (needs --writers {TARGET_WRITERS} and a 256 B value size)"
            );
        }
        for n in &self.notes {
            let _ = writeln!(t, "\nNote: {n}");
        }
        t
    }

    /// Rows the target applies to (one per io path).
    fn target_rows(&self) -> impl Iterator<Item = &StoreRow> {
        self.stores
            .iter()
            .filter(|r| r.result.config.writers == TARGET_WRITERS && r.result.config.value_bytes == TARGET_VALUE)
    }

    /// The results as JSON.
    pub(crate) fn json(&self) -> Json {
        let m = &self.meta;
        let raw = self.raw.iter().map(|r| raw_json(&r.result, Some(r.kind)));
        let stores = self.stores.iter().map(|row| {
            let r = &row.result;
            let c = self.compare(row);
            Json::obj([
                ("io", Json::str(io_name(r.config.io))),
                ("io_path", Json::str(r.io_path.clone())),
                ("clients", Json::str(r.config.clients.to_string())),
                ("value_bytes", Json::Int(r.config.value_bytes as u64)),
                ("writers", Json::Int(r.config.writers as u64)),
                ("commits", Json::Int(r.commits)),
                ("groups", Json::Int(r.groups)),
                ("elapsed_s", Json::Num(r.elapsed.as_secs_f64())),
                ("puts_per_s", Json::Num(r.puts_per_s())),
                ("syncs_per_s", Json::Num(r.groups_per_s())),
                ("batch", Json::opt_num(r.batch())),
                ("latency_us", latency(&r.latency)),
                ("raw_at_batch", c.as_ref().map_or(Json::Null, |c| raw_json(c.raw, None))),
                ("ratio", Json::opt_num(c.as_ref().and_then(|c| c.ratio))),
            ])
        });
        let target = self.target_rows().map(|row| {
            let ratio = self.compare(row).and_then(|c| c.ratio);
            Json::obj([
                ("io_path", Json::str(row.result.io_path.clone())),
                ("clients", Json::str(row.result.config.clients.to_string())),
                ("ratio", Json::opt_num(ratio)),
                ("met", Json::Bool(ratio.is_some_and(|x| x >= TARGET_RATIO))),
            ])
        });
        Json::obj([
            ("command", Json::str(m.command.clone())),
            ("dir", Json::str(m.dir.clone())),
            ("scratch", Json::str(m.scratch.clone())),
            ("filesystem", Json::str(m.filesystem.clone())),
            ("memory_backed", Json::Bool(m.volatile)),
            ("kernel", Json::str(m.kernel.clone())),
            ("cpus", Json::Int(m.cpus as u64)),
            ("duration_s", Json::Num(m.duration.as_secs_f64())),
            ("warmup_s", Json::Num(m.warmup.as_secs_f64())),
            ("keys", Json::Int(m.keys as u64)),
            ("raw", Json::Arr(raw.collect())),
            ("logstore", Json::Arr(stores.collect())),
            (
                "target",
                Json::obj([
                    ("writers", Json::Int(TARGET_WRITERS as u64)),
                    ("value_bytes", Json::Int(TARGET_VALUE as u64)),
                    ("min_ratio", Json::Num(TARGET_RATIO)),
                    ("results", Json::Arr(target.collect())),
                ]),
            ),
            (
                "notes",
                Json::Arr(self.notes.iter().map(|n| Json::str(n.clone())).collect()),
            ),
        ])
    }
}

fn io_name(io: IoChoice) -> String {
    io.to_string()
}

fn raw_json(x: &RawResult, kind: Option<RawKind>) -> Json {
    let mut fields = vec![
        ("record_bytes".to_string(), Json::Int(x.record_bytes as u64)),
        ("records_per_sync".to_string(), Json::Int(x.per_sync as u64)),
        ("syncs".to_string(), Json::Int(x.syncs)),
        ("elapsed_s".to_string(), Json::Num(x.elapsed.as_secs_f64())),
        ("syncs_per_s".to_string(), Json::Num(x.syncs_per_s())),
        ("records_per_s".to_string(), Json::Num(x.records_per_s())),
        ("latency_us".to_string(), latency(&x.latency)),
    ];
    if let Some(k) = kind {
        fields.insert(0, ("why".to_string(), Json::str(k.label())));
    }
    Json::Obj(fields)
}

fn latency(l: &Latency) -> Json {
    Json::obj([
        ("count", Json::Int(l.count)),
        ("p50", Json::Int(l.p50)),
        ("p99", Json::Int(l.p99)),
        ("p999", Json::Int(l.p999)),
        ("max", Json::Int(l.max)),
        ("mean", Json::Num(l.mean)),
    ])
}

/// A ratio as a percentage cell: `87%`.
fn pct(x: f64) -> String {
    format!("{:.0}%", x * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::StoreConfig;

    fn lat() -> Latency {
        Latency {
            count: 1,
            p50: 100,
            p95: 150,
            p99: 200,
            p999: 300,
            max: 400,
            mean: 120.0,
        }
    }

    fn raw(per_sync: usize, syncs: u64) -> RawResult {
        RawResult {
            record_bytes: 256,
            per_sync,
            syncs,
            elapsed: Duration::from_secs(1),
            latency: lat(),
        }
    }

    fn row(io: IoChoice, writers: usize, commits: u64, groups: u64, raw_syncs: u64) -> StoreRow {
        let result = StoreResult {
            config: StoreConfig {
                io,
                clients: crate::cli::ClientChoice::Threads,
                value_bytes: 256,
                writers,
            },
            io_path: io.to_string(),
            commits,
            groups,
            elapsed: Duration::from_secs(1),
            latency: lat(),
        };
        let b = stats::round_batch(commits as f64 / groups as f64);
        StoreRow {
            result,
            raw: Some(raw(b, raw_syncs)),
        }
    }

    fn report(stores: Vec<StoreRow>) -> Report {
        Report {
            meta: Meta {
                command: "lockd-bench logstore".into(),
                dir: "/d".into(),
                scratch: "/d/.x".into(),
                filesystem: "ext2/3/4".into(),
                volatile: false,
                kernel: "6".into(),
                cpus: 2,
                duration: Duration::from_secs(1),
                warmup: Duration::ZERO,
                keys: 10,
            },
            raw: vec![RawRow {
                result: raw(1, 1000),
                kind: RawKind::SyncRate,
            }],
            stores,
            notes: vec!["io_uring unavailable".into()],
        }
    }

    #[test]
    fn verdicts_against_the_raw_loop_at_the_same_batch() {
        // uring: 64 000 puts/s at B = 64 against 1 250 syncs/s x 64 = 80 000 records/s: 80 %, met.
        // sync: 35 000 puts/s at B = 50 against 1 000 syncs/s x 50 = 50 000 records/s: 70 %, missed by 10.
        let r = report(vec![
            row(IoChoice::Uring, 64, 64_000, 1_000, 1_250),
            row(IoChoice::Sync, 64, 35_000, 700, 1_000),
            row(IoChoice::Sync, 1, 900, 900, 1_000),
        ]);
        let table = r.table();
        assert!(table.contains("= 80% — met"), "{table}");
        assert!(table.contains("= 70% — MISSED by 10.0 points"), "{table}");
        assert!(table.contains("Note: io_uring unavailable"), "{table}");
        let Json::Obj(doc) = r.json() else {
            panic!("report JSON must be an object");
        };
        let target = doc.iter().find(|(k, _)| k == "target").map(|(_, v)| v.to_pretty());
        let target = target.expect("target field");
        assert!(
            target.contains("\"met\": true") && target.contains("\"met\": false"),
            "{target}"
        );
        assert!(!target.contains("\"writers\": 1,"), "{target}");
    }

    #[test]
    fn says_when_the_target_was_not_measured() {
        let table = report(vec![row(IoChoice::Sync, 8, 800, 100, 1_000)]).table();
        assert!(table.contains("not measured in this run"), "{table}");
    }
}
