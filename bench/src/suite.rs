//! `lockd-bench logstore`: the whole run, in order — raw disk, then the
//! logstore matrix with each configuration followed by the raw disk loop at
//! the batch size it reached — then the report.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::cli::{LogstoreArgs, Plan};
use crate::engine::{self, Outcome, StoreConfig, Workload};
use crate::error::{Error, Result};
use crate::fsinfo::{self, FsInfo};
use crate::raw::{self, RawResult};
use crate::report::{Meta, RawKind, RawRow, Report, StoreRow};
use crate::stats::{self, fmt_bytes, fmt_latency, fmt_rate};

/// Bytes per record in the fixed raw group loop.
const RAW_GROUP_RECORD: usize = 256;
/// Bytes per write in the single-record raw loop.
const RAW_SINGLE_RECORD: usize = 4096;

/// Runs `lockd-bench logstore`.
pub(crate) fn run(args: &LogstoreArgs) -> Result<()> {
    let plan = Plan::resolve(args)?;
    let base = match &args.dir {
        Some(d) => d.clone(),
        None => std::env::current_dir().map_err(|e| Error::io("current directory", Path::new("."), e))?,
    };
    let scratch = tempfile::Builder::new()
        .prefix(".lockd-bench-")
        .tempdir_in(&base)
        .map_err(|e| Error::io("create scratch directory in", &base, e))?;
    let fs = fsinfo::probe(scratch.path())?;
    progress(&format!(
        "scratch directory {} on {}; {} per configuration after {} warm-up",
        scratch.path().display(),
        fs.name,
        secs(plan.duration),
        secs(plan.warmup)
    ));
    if fs.volatile {
        progress(&format!(
            "WARNING: {} is {}: fdatasync does not reach a disk there and these numbers say nothing about \
             durability cost. Pass --dir on a real disk.",
            base.display(),
            fs.name
        ));
    }

    let mut raws: Vec<RawRow> = Vec::new();
    measure_raw(
        &mut raws,
        scratch.path(),
        &plan,
        RAW_SINGLE_RECORD,
        1,
        RawKind::SyncRate,
    )?;
    for &b in &plan.raw_batches {
        measure_raw(&mut raws, scratch.path(), &plan, RAW_GROUP_RECORD, b, RawKind::Fixed)?;
    }

    let (stores, notes) = measure_stores(scratch.path(), &plan)?;

    let report = Report {
        meta: meta(&base, scratch.path(), &fs, &plan),
        raw: raws,
        stores,
        notes,
    };
    let mut out = std::io::stdout().lock();
    out.write_all(report.table().as_bytes())
        .and_then(|_| out.flush())
        .map_err(|e| Error::io("write to", Path::new("stdout"), e))?;
    if let Some(path) = &args.json {
        std::fs::write(path, report.json().to_pretty()).map_err(|e| Error::io("write JSON to", path, e))?;
        progress(&format!("results written to {}", path.display()));
    }
    scratch
        .close()
        .map_err(|e| Error::io("remove scratch directory", &base, e))
}

/// Runs one standalone raw loop (skipped if this shape already ran).
fn measure_raw(
    raws: &mut Vec<RawRow>,
    dir: &Path,
    plan: &Plan,
    record_bytes: usize,
    per_sync: usize,
    kind: RawKind,
) -> Result<()> {
    if raws
        .iter()
        .any(|r| r.result.record_bytes == record_bytes && r.result.per_sync == per_sync)
    {
        return Ok(());
    }
    let r = run_raw(dir, plan, record_bytes, per_sync)?;
    raws.push(RawRow { result: r, kind });
    Ok(())
}

/// Runs the raw loop once and reports it on stderr.
fn run_raw(dir: &Path, plan: &Plan, record_bytes: usize, per_sync: usize) -> Result<RawResult> {
    let r = raw::run(dir, record_bytes, per_sync, plan.warmup, plan.duration)?;
    progress(&format!(
        "raw    {:>7} x {:>4} per fdatasync: {:>9} syncs/s {:>11} records/s  p50 {:>8} p99 {:>8}",
        fmt_bytes(record_bytes),
        per_sync,
        fmt_rate(r.syncs_per_s()),
        fmt_rate(r.records_per_s()),
        fmt_latency(r.latency.p50),
        fmt_latency(r.latency.p99),
    ));
    Ok(r)
}

/// The logstore matrix: every io path x value size x writer count, each on
/// a fresh store that is removed afterwards, each followed at once by the
/// raw loop at the batch size it reached (same record size), so that the
/// two figures of a ratio are measured seconds apart on the same disk.
fn measure_stores(dir: &Path, plan: &Plan) -> Result<(Vec<StoreRow>, Vec<String>)> {
    let mut results = Vec::new();
    let mut notes = Vec::new();
    let mut n = 0;
    for (&io, &clients) in plan.io.iter().flat_map(|io| plan.clients.iter().map(move |c| (io, c))) {
        'sizes: for &value_bytes in &plan.value_sizes {
            let workload = Workload::new(plan.keys, value_bytes);
            for &writers in &plan.writers {
                n += 1;
                let store_dir: PathBuf = dir.join(format!("store-{n:03}"));
                let config = StoreConfig {
                    io,
                    clients,
                    value_bytes,
                    writers,
                };
                let outcome = engine::run(&store_dir, config, &workload, plan.warmup, plan.duration);
                if store_dir.exists() {
                    std::fs::remove_dir_all(&store_dir).map_err(|e| Error::io("remove", &store_dir, e))?;
                }
                match outcome? {
                    Outcome::Done(r) => {
                        progress(&format!(
                            "store  {:<25} {:>7} x {:>4} writers: {:>9} puts/s  batch {:>6.1}  p50 {:>8} p99 {:>8}",
                            r.label(),
                            fmt_bytes(value_bytes),
                            writers,
                            fmt_rate(r.puts_per_s()),
                            r.batch().unwrap_or(0.0),
                            fmt_latency(r.latency.p50),
                            fmt_latency(r.latency.p99),
                        ));
                        let raw = match r.batch() {
                            Some(b) => Some(run_raw(dir, plan, value_bytes, stats::round_batch(b))?),
                            None => None,
                        };
                        results.push(StoreRow { result: r, raw });
                    }
                    Outcome::UringUnavailable(why) => {
                        let note = format!("io_uring unavailable ({why}): skipped; the sync path is measured");
                        progress(&note);
                        notes.push(note);
                        break 'sizes;
                    }
                }
            }
        }
    }
    if results.is_empty() {
        return Err(Error::Invalid(
            "no logstore configuration could run (io_uring was the only path asked for and is unavailable)".into(),
        ));
    }
    Ok((results, notes))
}

fn meta(base: &Path, scratch: &Path, fs: &FsInfo, plan: &Plan) -> Meta {
    Meta {
        command: std::env::args().collect::<Vec<_>>().join(" "),
        dir: base.display().to_string(),
        scratch: scratch.display().to_string(),
        filesystem: fs.name.clone(),
        volatile: fs.volatile,
        kernel: fsinfo::kernel_release().unwrap_or_else(|| "unknown".into()),
        cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
        duration: plan.duration,
        warmup: plan.warmup,
        keys: plan.keys,
    }
}

/// A progress line on stderr (the table goes to stdout).
fn progress(msg: &str) {
    eprintln!("{msg}");
}

fn secs(d: std::time::Duration) -> String {
    format!("{}s", d.as_secs_f64())
}
