//! Flag handling and smoke runs of every workload against real servers:
//! lockd-net's server in-process (always), and the `lockd` binary through
//! `--spawn` when it has been built.

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use lockd_actors::{LeaseConfig, MemBackend, Router};
use lockd_net::server::{serve, ListenSpec, Listener, ServerConfig, TcpFamily};

use super::driver::{Addr, LockdDriver};
use super::systems::Target;
use super::ycsb::Distribution;
use super::*;
use crate::cli::{Cli, Command};

/// `lockd-bench http <extra>` as parsed flags.
pub(super) fn args(extra: &[&str]) -> HttpArgs {
    let mut argv = vec!["lockd-bench", "http"];
    argv.extend_from_slice(extra);
    match Cli::try_parse_from(argv).expect("parse").command {
        Command::Http(a) => a,
        other => panic!("parsed as {other:?}"),
    }
}

#[test]
fn defaults_quick_and_explicit_flags() {
    let full = Plan::resolve(&args(&["--spawn"])).expect("plan");
    assert_eq!(full.spawn, vec![Transport::Tcp, Transport::Unix]);
    assert_eq!(
        full.workloads,
        vec![Workload::Cycle, Workload::PublicRead, Workload::Contention]
    );
    assert_eq!(full.concurrency, vec![1, 8, 64, 256]);
    assert_eq!(
        (full.duration, full.warmup),
        (Duration::from_secs(10), Duration::from_secs(2))
    );
    assert_eq!(
        (full.keys, full.contention_keys, full.contention_workers),
        (10_000, 10, 64)
    );
    let quick = Plan::resolve(&args(&["--quick", "--addr", "127.0.0.1:9341", "--addr", "unix:///s"])).expect("plan");
    assert_eq!(quick.concurrency, vec![1, 64]);
    assert_eq!(quick.duration, Duration::from_secs(1));
    assert!(quick.spawn.is_empty());
    assert_eq!(quick.addrs.len(), 2);
    let mixed = Plan::resolve(&args(&[
        "--quick",
        "--spawn",
        "--transport",
        "unix",
        "--workload",
        "contention,cycle",
        "--workload",
        "cycle",
        "--duration",
        "250ms",
    ]))
    .expect("plan");
    assert_eq!(mixed.spawn, vec![Transport::Unix]);
    assert_eq!(mixed.workloads, vec![Workload::Contention, Workload::Cycle]);
    assert_eq!(mixed.duration, Duration::from_millis(250));
    assert_eq!(mixed.rounds, 1, "--quick runs one round");
    assert_eq!(full.rounds, 3);
    assert_eq!(full.targets, vec![Target::Lockd]);
}

#[test]
fn compare_runs_everything_against_every_system() {
    let plan = Plan::resolve(&args(&["--compare"])).expect("plan");
    assert_eq!(
        plan.targets,
        vec![Target::Lockd, Target::Etcd, Target::Redis, Target::RedisEverysec]
    );
    assert_eq!(plan.spawn, vec![Transport::Tcp], "lockd over TCP, like the peers");
    assert_eq!(plan.workloads.len(), 9);
    assert_eq!(plan.workloads.last(), Some(&Workload::YcsbE), "inserting mixes last");
    assert_eq!(plan.rounds, 3);
    let peers_only = Plan::resolve(&args(&["--target", "etcd,redis", "--workload", "ycsb-c"])).expect("plan");
    assert!(peers_only.spawn.is_empty() && peers_only.addrs.is_empty());
    assert_eq!(peers_only.levels(Workload::YcsbC), (vec![1, 8, 64, 256], 10_000));
    let custom = Plan::resolve(&args(&[
        "--compare",
        "--rounds",
        "2",
        "--record-count",
        "500",
        "--op-count",
        "1000",
        "--distribution",
        "uniform",
    ]))
    .expect("plan");
    assert_eq!(
        (custom.rounds, custom.record_count, custom.op_count),
        (2, 500, Some(1000))
    );
    assert_eq!(custom.distribution, Distribution::Uniform);
}

#[test]
fn rejects_what_cannot_run() {
    assert!(Plan::resolve(&args(&[])).is_err(), "no server named");
    assert!(Plan::resolve(&args(&["--addr", "localhost"])).is_err());
    assert!(Plan::resolve(&args(&["--spawn", "--concurrency", "0"])).is_err());
    assert!(Plan::resolve(&args(&["--spawn", "--duration", "0s"])).is_err());
    assert!(Plan::resolve(&args(&["--spawn", "--keys", "0"])).is_err());
    assert!(Plan::resolve(&args(&["--spawn", "--value-size", "0"])).is_err());
    assert!(Plan::resolve(&args(&["--addr", "127.0.0.1:1", "--store", "mem://"])).is_err());
    assert!(Plan::resolve(&args(&["--addr", "127.0.0.1:1", "--transport", "tcp"])).is_err());
    assert!(
        Plan::resolve(&args(&["--spawn", "--target", "etcd"])).is_err(),
        "--spawn is for lockd"
    );
    assert!(Plan::resolve(&args(&["--spawn", "--rounds", "0"])).is_err());
    assert!(Plan::resolve(&args(&["--spawn", "--record-count", "0"])).is_err());
    assert!(Plan::resolve(&args(&["--spawn", "--op-count", "0"])).is_err());
    for argv in [
        &["lockd-bench", "http", "--spawn", "--addr", "127.0.0.1:1"][..],
        &["lockd-bench", "http", "--spawn", "--workload", "scan"],
        &["lockd-bench", "http", "--spawn", "--target", "zookeeper"],
        &["lockd-bench", "http", "--spawn", "--distribution", "latest"],
        &["lockd-bench", "http", "--spawn", "--duration", "soon"],
    ] {
        assert!(Cli::try_parse_from(argv).is_err(), "{argv:?}");
    }
}

/// Asserts that a run did work, cleanly, and measured what it should.
pub(super) fn check(m: &workload::Measured, what: &str) {
    assert!(m.ops > 0, "{what}: no operation completed");
    assert_eq!(m.errors, 0, "{what}: {:?}", m.first_error);
    assert_eq!(m.latency.count, m.ops, "{what}: one latency per operation");
    if what.starts_with("ycsb") {
        let per_kind: u64 = m.steps.iter().map(|(_, l)| l.count).sum();
        assert_eq!(
            per_kind, m.ops,
            "{what}: each operation counted under its kind: {:?}",
            m.steps
        );
    } else {
        assert!(m.steps.iter().all(|(_, l)| l.count == m.ops), "{what}: {:?}", m.steps);
    }
    assert!(m.client_cpu_s.is_some(), "{what}: client CPU time read");
}

/// Every workload for a short while at concurrency 2 against `addr`.
async fn smoke(addr: Addr, server_pid: Option<u32>) {
    let driver = Arc::new(LockdDriver::new(addr.clone()));
    every_workload(driver, &CpuClock::new(server_pid), &addr.to_string()).await;
}

/// Every workload, YCSB's included, for a short while at concurrency 2
/// through `driver` (any system's).
pub(super) async fn every_workload<D: super::driver::Driver>(driver: Arc<D>, clock: &CpuClock, name: &str) {
    let doc = Bytes::from(crate::docgen::document(256, 1));
    workload::populate(Arc::clone(&driver), "bench-read", 20, |k| format!("k{k}"), doc.clone())
        .await
        .expect("populate");
    for (w, keys) in [
        (Workload::Cycle, 20),
        (Workload::PublicRead, 20),
        (Workload::Contention, 1),
    ] {
        let spec = Spec {
            workload: w,
            concurrency: 2,
            keys,
            doc: doc.clone(),
            warmup: Duration::from_millis(200),
            duration: Duration::from_millis(800),
            op_count: None,
            ycsb: None,
        };
        let m = workload::measure(Arc::clone(&driver), spec, clock)
            .await
            .expect("measure");
        let what = format!("{} via {name}", w.name());
        check(&m, &what);
        if w == Workload::Contention {
            let h = m.handoff.expect("contention reports hand-offs");
            assert!(h.count > 0, "{what}: two workers on one key must hand off");
        } else {
            assert!(m.handoff.is_none());
        }
    }
    ycsb_smoke(driver, clock, &doc, name).await;
}

/// Every YCSB mix for a short while at concurrency 2 over 50 records.
async fn ycsb_smoke<D: super::driver::Driver>(driver: Arc<D>, clock: &CpuClock, doc: &Bytes, name: &str) {
    let records = 50;
    workload::populate(
        Arc::clone(&driver),
        workload::YCSB_NAMESPACE,
        records,
        ycsb::record_key,
        doc.clone(),
    )
    .await
    .expect("load YCSB records");
    let keyspace = Arc::new(ycsb::Keyspace::new(records));
    let zipf = ycsb::Zipf::new(records, ycsb::THETA);
    for w in workload::YCSB_ORDER {
        let spec = Spec {
            workload: w,
            concurrency: 2,
            keys: records as usize,
            doc: doc.clone(),
            warmup: Duration::from_millis(100),
            duration: Duration::from_secs(5),
            op_count: Some(200),
            ycsb: Some(YcsbSpec {
                keyspace: Arc::clone(&keyspace),
                zipf: zipf.clone(),
                distribution: Distribution::Zipfian,
            }),
        };
        let m = workload::measure(Arc::clone(&driver), spec, clock)
            .await
            .expect("measure");
        let what = format!("{} on {name}", w.name());
        check(&m, &what);
        assert!(m.ops >= 200, "{what}: ran to the operation count ({} ops)", m.ops);
        assert_eq!(m.misses, 0, "{what}: only acknowledged records are read");
        assert!(
            m.elapsed < Duration::from_secs(5),
            "{what}: stopped at the count, not the time"
        );
    }
    assert!(keyspace.count() > records, "D and E inserted records");
}

#[test]
fn every_workload_runs_cleanly_against_the_in_process_server() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = dir.path().join("s.sock");
    rt.block_on(async {
        let router = Router::new(Arc::new(MemBackend::new()), LeaseConfig::default());
        let mut stops = Vec::new();
        let mut addrs = Vec::new();
        for spec in [
            ListenSpec::Tcp {
                addr: "127.0.0.1:0".into(),
                family: TcpFamily::V4,
            },
            ListenSpec::Unix(sock.clone()),
        ] {
            let listener = Listener::bind(&spec).await.expect("bind");
            addrs.push(match spec {
                ListenSpec::Tcp { .. } => Addr::parse(&listener.local_addr()).expect("tcp address"),
                ListenSpec::Unix(p) => Addr::Unix(p),
            });
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            stops.push(tx);
            tokio::spawn(serve(listener, router.clone(), ServerConfig::default(), async {
                let _ = rx.await;
            }));
        }
        for addr in addrs {
            smoke(addr, Some(std::process::id())).await;
        }
        drop(stops);
    });
}

/// A two-worker runtime for tests that drive servers from async code.
pub(super) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Builds the lockd binary next to the test binary. It is another
/// package's, which `cargo test -p lockd-bench` does not build: building it
/// with the same cargo and profile makes the spawned tests always run
/// against the current server.
pub(super) fn build_lockd() {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("bench lives inside the workspace");
    let built = std::process::Command::new(&cargo)
        .args(["build", "-p", "lockd", "--bin", "lockd"])
        .current_dir(workspace)
        .status()
        .expect("run cargo build -p lockd");
    assert!(built.success(), "cargo build -p lockd failed");
    process::find_server_binary(None).expect("lockd next to the test binary");
}

#[test]
fn spawned_lockd_servers_run_every_workload() {
    build_lockd();
    let dir = tempfile::tempdir().expect("tempdir");
    let dir_arg = dir.path().to_string_lossy().to_string();
    let a = args(&[
        "--spawn",
        "--store",
        "mem://",
        "--dir",
        &dir_arg,
        "--quick",
        "--concurrency",
        "2",
        "--duration",
        "1s",
        "--warmup",
        "200ms",
        "--keys",
        "50",
        "--contention-keys",
        "1",
        "--contention-workers",
        "2",
    ]);
    let plan = Plan::resolve(&a).expect("plan");
    let report = execute(&a, &plan).expect("run");
    // 3 workloads x 1 concurrency x 1 round x 2 transports.
    assert_eq!(report.rows.len(), 6);
    for r in &report.rows {
        check(&r.m, &format!("{} via {}", r.workload.name(), r.system));
        assert!(r.m.server_cpu_s.is_some_and(|s| s > 0.0), "server CPU time read");
    }
    assert_eq!(
        report.rows.iter().map(|r| r.system).collect::<Vec<_>>(),
        [
            "lockd-tcp",
            "lockd-unix",
            "lockd-tcp",
            "lockd-unix",
            "lockd-tcp",
            "lockd-unix"
        ]
    );
    assert_eq!(report.fsync.len(), 2);
    let table = report.table();
    assert!(table.contains("Hand-off"), "{table}");
    assert_eq!(
        std::fs::read_dir(dir.path()).expect("ls").count(),
        0,
        "scratch directory removed"
    );
}
