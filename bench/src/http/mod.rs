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
//!
//! With `--tls` the bench also measures lockd as it runs by default, with
//! mTLS: a spawned server gets certificates from `lockd --bootstrap`, a
//! given one is driven with the client bundle of `--tls-bundle`, and the
//! report puts the price of mTLS against plain TCP next to its target.

mod compare;
mod driver;
mod etcd_driver;
mod handoff;
#[cfg(test)]
mod peer_tests;
mod plan;
mod process;
mod progress;
mod redis_driver;
mod report;
mod report_json;
mod systems;
#[cfg(test)]
mod tests;
mod tls;
mod tls_cost;
#[cfg(test)]
mod tls_tests;
mod workload;
mod ycsb;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::fsinfo;
use crate::raw;
use crate::stats::{fmt_latency, fmt_rate};
pub(crate) use plan::HttpArgs;
use plan::{Plan, Transport};
pub(crate) use process::die_with_parent;
use process::{CpuClock, Listen, Security, ServerProcess};
use report::{Meta, Report, Row};
use systems::System;
use tls::TlsClient;
use workload::{Spec, Workload, YcsbSpec};
use ycsb::{Keyspace, Zipf};

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

/// Starts the lockd server of transport `t` with its data under `scratch`
/// and returns it as a system of the run. The mTLS one first gets a fresh
/// CA and bundles from `lockd --bootstrap` in `scratch/mtls`.
fn spawn_lockd(
    bin: &Path,
    t: Transport,
    a: &HttpArgs,
    scratch: &Path,
    sock_dir: &Path,
    durable: bool,
) -> Result<System> {
    let (name, listen) = match t {
        Transport::Tcp => ("tcp", Listen::Loopback),
        Transport::Unix => ("unix", Listen::Unix(sock_dir.join("lockd.sock"))),
        Transport::Mtls => ("mtls", Listen::Loopback),
    };
    let store = match &a.store {
        Some(s) => s.clone(),
        None => format!("disk://{}", scratch.join(format!("store-{name}")).display()),
    };
    let (security, tls) = if t == Transport::Mtls {
        let made = process::bootstrap(bin, &scratch.join("mtls"), scratch)?;
        let tls = TlsClient::from_bundle_file(&made.client_bundle)?;
        (Security::Mtls(made.server_bundle), Some(tls))
    } else {
        (Security::Plain, None)
    };
    let p = ServerProcess::spawn(bin, &store, &listen, &security, scratch)?;
    eprintln!(
        "spawned {} (pid {}) on {} with store {store}{}",
        bin.display(),
        p.pid,
        p.addr,
        if tls.is_some() { ", mTLS" } else { "" }
    );
    match tls {
        None => Ok(System::lockd(p.addr.clone(), Some(p), durable)),
        Some(tls) => System::lockd_mtls(p.addr.clone(), tls, Some(p), durable),
    }
}

/// Runs the whole plan and returns the report (nothing printed to stdout).
fn execute(a: &HttpArgs, plan: &Plan) -> Result<Report> {
    // A bad client bundle is reported before anything is started or probed.
    let addr_tls = plan
        .tls_bundle
        .as_deref()
        .map(TlsClient::from_bundle_file)
        .transpose()?;
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
        for &t in &plan.spawn {
            systems.push(spawn_lockd(&bin, t, a, scratch.path(), &sock_dir, store_durable)?);
        }
    } else if !plan.addrs.is_empty() {
        notes.push(format!(
            "lockd is external: its CPU time is not measured, and the fdatasync probe ran in {}, which may \
             not be the server's disk",
            base.display()
        ));
    }
    for addr in &plan.addrs {
        systems.push(match &addr_tls {
            None => System::lockd(addr.clone(), None, true),
            Some(tls) => System::lockd_mtls(addr.clone(), tls.clone(), None, true)?,
        });
    }
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
