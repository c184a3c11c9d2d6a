//! mTLS in `lockd-bench http`: the flags, the TLS driver against
//! lockd-net's server started in-process with certificates made here, and
//! a spawned lockd with mTLS measured beside a plain one.
//!
//! The spawned test needs the `lockd` binary's `--bootstrap` flag; it fails
//! (with lockd's own complaint quoted) on a binary without it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use clap::{CommandFactory, Parser};
use lockd_actors::{LeaseConfig, MemBackend, Router};
use lockd_net::server::{serve, tls as server_tls, ListenSpec, Listener, ServerConfig, TcpFamily};
use tokio::sync::oneshot;

use super::driver::{Addr, Conn, Driver, LockdDriver, OpError};
use super::plan::{Plan, Transport};
use super::process::CpuClock;
use super::systems::{System, MTLS_LABEL, PLAIN_TCP_LABEL};
use super::tests::{args, build_lockd, check, runtime};
use super::tls::tests::TestCa;
use super::tls::TlsClient;
use super::workload::{self, Spec, Workload};
use crate::cli::Cli;

/// How long any single step against the in-process server may take before
/// the test calls it a hang.
const NO_HANG: Duration = Duration::from_secs(20);

fn refused(extra: &[&str]) -> String {
    match Plan::resolve(&args(extra)) {
        Ok(plan) => panic!("{extra:?} accepted: {plan:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn tls_flags_are_checked() {
    let msg = refused(&["--tls"]);
    assert!(
        msg.contains("--tls needs a server") && msg.contains("--spawn") && msg.contains("--tls-bundle FILE"),
        "{msg}"
    );
    assert!(refused(&["--tls", "--addr", "127.0.0.1:9341"]).contains("--tls-bundle FILE"));
    assert!(refused(&["--tls", "--spawn", "--transport", "unix"]).contains("keep tcp in --transport"));
    assert!(refused(&["--compare", "--tls-bundle", "/b.pem"]).contains("servers given with --addr"));
    assert!(refused(&["--addr", "unix:///s.sock", "--tls-bundle", "/b.pem"]).contains("TCP only"));
    assert!(refused(&[
        "--tls",
        "--addr",
        "127.0.0.1:1",
        "--tls-bundle",
        "/b.pem",
        "--target",
        "etcd"
    ])
    .contains("add lockd to --target"));
    assert!(
        Cli::try_parse_from(["lockd-bench", "http", "--spawn", "--tls-bundle", "/b.pem"]).is_err(),
        "--tls-bundle names a client bundle for --addr, spawned servers have their own"
    );
    assert!(
        Cli::try_parse_from(["lockd-bench", "http", "--spawn", "--transport", "mtls"]).is_err(),
        "mTLS comes with --tls only"
    );
}

#[test]
fn tls_plans_measure_plain_tcp_beside_mtls() {
    let spawned = Plan::resolve(&args(&["--spawn", "--tls"])).expect("plan");
    assert_eq!(
        spawned.spawn,
        vec![Transport::Tcp, Transport::Mtls],
        "TCP is the baseline"
    );
    let both = Plan::resolve(&args(&["--spawn", "--tls", "--transport", "unix,tcp"])).expect("plan");
    assert_eq!(both.spawn, vec![Transport::Unix, Transport::Tcp, Transport::Mtls]);
    let compare = Plan::resolve(&args(&["--compare", "--tls"])).expect("plan");
    assert_eq!(compare.spawn, vec![Transport::Tcp, Transport::Mtls]);
    assert_eq!(compare.targets.len(), 4);
    let plain = Plan::resolve(&args(&["--spawn"])).expect("plan");
    assert!(!plain.spawn.contains(&Transport::Mtls), "no mTLS unless asked");
    assert_eq!(plain.tls_bundle, None);
    for extra in [
        &["--addr", "127.0.0.1:9341", "--tls-bundle", "/b.pem"][..],
        &["--tls", "--addr", "127.0.0.1:9341", "--tls-bundle", "/b.pem"],
    ] {
        let given = Plan::resolve(&args(extra)).expect("plan");
        assert!(given.spawn.is_empty(), "{extra:?}");
        assert_eq!(given.tls_bundle.as_deref(), Some(std::path::Path::new("/b.pem")));
    }
}

#[test]
fn help_explains_tls() {
    let mut cli = Cli::command();
    let http = cli.find_subcommand_mut("http").expect("http subcommand");
    let help = http.render_long_help().to_string();
    assert!(help.lines().any(|l| l.trim() == "--tls"), "{help}");
    assert!(help.contains("--tls-bundle <FILE>"), "{help}");
    assert!(help.contains("mTLS costs"), "{help}");
    assert!(help.contains("lockd --bootstrap"), "{help}");
}

/// lockd-net's server on 127.0.0.1 with TLS and required client
/// certificates from `ca`. Its certificate names a host the bench never
/// dials, so the driver only gets through if it skips the name check as
/// lockd's clients do. Dropping the sender stops the server.
async fn start_mtls_server(ca: &TestCa) -> (Addr, oneshot::Sender<()>) {
    let server = ca.server("lockd-server.invalid");
    let tls = server_tls::server_config(server.cert_pem.as_bytes(), server.key_pem.as_bytes(), Some(ca.roots()))
        .expect("server TLS");
    let spec = ListenSpec::Tcp {
        addr: "127.0.0.1:0".into(),
        family: TcpFamily::V4,
    };
    let listener = Listener::bind(&spec).await.expect("bind");
    let addr = Addr::parse(&listener.local_addr()).expect("tcp address");
    let router = Router::new(Arc::new(MemBackend::new()), LeaseConfig::default());
    let (stop, stopped) = oneshot::channel::<()>();
    let cfg = ServerConfig {
        tls: Some(tls),
        ..ServerConfig::default()
    };
    tokio::spawn(serve(listener, router, cfg, async {
        let _ = stopped.await;
    }));
    (addr, stop)
}

fn short(workload: Workload, keys: usize, doc: &Bytes) -> Spec {
    Spec {
        workload,
        concurrency: 4,
        keys,
        doc: doc.clone(),
        warmup: Duration::from_millis(100),
        duration: Duration::from_millis(700),
        op_count: None,
        ycsb: None,
    }
}

#[test]
fn cycle_and_public_read_run_over_mtls_against_the_in_process_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    runtime().block_on(async {
        let ca = TestCa::new("lockd-bench test CA");
        let (addr, _stop) = start_mtls_server(&ca).await;

        // The server really speaks TLS: plain HTTP gets nowhere with it.
        let plain = LockdDriver::new(addr.clone());
        let attempt = tokio::time::timeout(NO_HANG, async {
            let mut conn = plain.connect().await?;
            conn.read("bench-read", "k0").await
        })
        .await
        .expect("plain HTTP against TLS fails quickly");
        assert!(matches!(attempt, Err(OpError::Transport(_))), "{attempt:?}");

        let bundle = dir.path().join("client.pem");
        std::fs::write(&bundle, ca.client_bundle()).expect("write bundle");
        let tls = TlsClient::from_bundle_file(&bundle).expect("client bundle");
        let system = System::lockd_mtls(addr.clone(), tls, None, true).expect("mTLS system");
        assert_eq!(system.label, MTLS_LABEL);
        assert_eq!(system.addr, format!("https://{addr}"));

        let doc = Bytes::from(crate::docgen::document(256, 1));
        let keys = 40;
        tokio::time::timeout(
            NO_HANG,
            workload::populate(
                Arc::clone(&system.driver),
                Workload::PublicRead.namespace(),
                keys as u64,
                |k| format!("k{k}"),
                doc.clone(),
            ),
        )
        .await
        .expect("populating does not hang")
        .expect("populate over mTLS");
        let clock = CpuClock::new(Some(std::process::id()));
        for w in [Workload::Cycle, Workload::PublicRead] {
            let m = tokio::time::timeout(
                NO_HANG,
                workload::measure(Arc::clone(&system.driver), short(w, keys, &doc), &clock),
            )
            .await
            .expect("the run ends")
            .expect("measure over mTLS");
            check(&m, &format!("{} over mTLS", w.name()));
        }
        system.stop().expect("nothing to stop");
    });
}

#[test]
fn a_bundle_of_another_ca_fails_with_an_error_not_a_hang() {
    runtime().block_on(async {
        let ca = TestCa::new("the server's CA");
        let stranger = TestCa::new("somebody else's CA");
        let (addr, _stop) = start_mtls_server(&ca).await;

        // Everything from the other CA: the server's certificate does not
        // chain to the CA the bench trusts, so the handshake fails here.
        let foreign = TlsClient::from_bundle_pem(stranger.client_bundle().as_bytes()).expect("well-formed bundle");
        let driver = LockdDriver::with_tls(addr.clone(), foreign).expect("driver");
        let outcome = tokio::time::timeout(NO_HANG, driver.connect())
            .await
            .expect("an answer, not a hang");
        match outcome {
            Ok(_) => panic!("connected with a bundle of another CA"),
            Err(e) => {
                assert!(e.is_transport(), "{e}");
                assert!(e.to_string().contains("TLS handshake"), "{e}");
            }
        }
        // The workloads give up with that error too.
        let doc = Bytes::from_static(b"{}");
        let run = tokio::time::timeout(
            NO_HANG,
            workload::measure(Arc::new(driver), short(Workload::Cycle, 4, &doc), &CpuClock::new(None)),
        )
        .await
        .expect("the run ends");
        let err = run.expect_err("a run that cannot connect is an error");
        assert!(err.to_string().contains("TLS handshake"), "{err}");

        // The right CA but a client certificate the server does not trust:
        // the server refuses it, during the handshake or at the first
        // request (TLS 1.3 finishes the client's side first).
        let intruder = stranger.client("intruder");
        let mixed = format!("{}{}{}", ca.pem(), intruder.cert_pem, intruder.key_pem);
        let mixed = TlsClient::from_bundle_pem(mixed.as_bytes()).expect("bundle");
        let driver = LockdDriver::with_tls(addr, mixed).expect("driver");
        let attempt = tokio::time::timeout(NO_HANG, async {
            let mut conn = driver.connect().await?;
            conn.read("bench-read", "k0").await
        })
        .await
        .expect("an answer, not a hang");
        assert!(matches!(attempt, Err(OpError::Transport(_))), "{attempt:?}");
    });
}

#[test]
fn a_unix_socket_cannot_be_driven_over_tls() {
    let ca = TestCa::new("CA");
    let tls = TlsClient::from_bundle_pem(ca.client_bundle().as_bytes()).expect("bundle");
    let err = LockdDriver::with_tls(Addr::Unix("/run/lockd.sock".into()), tls).expect_err("unix");
    assert!(err.contains("TCP listeners only"), "{err}");
}

/// Needs the `lockd` binary's `--bootstrap` (run it once that has landed).
#[test]
fn spawned_lockd_with_mtls_runs_beside_plain_tcp() {
    build_lockd();
    let dir = tempfile::tempdir().expect("tempdir");
    let dir_arg = dir.path().to_string_lossy().to_string();
    let json_path = dir.path().join("out.json");
    let a = args(&[
        "--spawn",
        "--tls",
        "--store",
        "mem://",
        "--dir",
        &dir_arg,
        "--workload",
        "cycle,public-read",
        "--concurrency",
        "2",
        "--rounds",
        "2",
        "--duration",
        "700ms",
        "--warmup",
        "200ms",
        "--keys",
        "50",
    ]);
    let plan = Plan::resolve(&a).expect("plan");
    assert_eq!(plan.spawn, vec![Transport::Tcp, Transport::Mtls]);
    let report = super::execute(&a, &plan).expect("run");
    // 2 workloads x 1 concurrency x 2 rounds x 2 systems.
    assert_eq!(report.rows.len(), 8);
    for r in &report.rows {
        check(&r.m, &format!("{} via {}", r.workload.name(), r.system));
        assert!(r.m.server_cpu_s.is_some_and(|s| s > 0.0), "server CPU time read");
    }
    let order: Vec<&str> = report.rows.iter().map(|r| r.system).collect();
    assert_eq!(
        order[..4],
        [PLAIN_TCP_LABEL, MTLS_LABEL, MTLS_LABEL, PLAIN_TCP_LABEL],
        "interleaved, the first system rotating per round"
    );
    let mtls = report
        .meta
        .systems
        .iter()
        .find(|s| s.label == MTLS_LABEL)
        .expect("mTLS system described");
    assert!(mtls.addr.starts_with("https://127.0.0.1:"), "{}", mtls.addr);
    let table = report.table();
    assert!(table.contains("mTLS against plain TCP"), "{table}");
    assert!(table.contains("cycle       x    2: lockd-mtls"), "{table}");
    assert!(table.contains("public-read x    2: lockd-mtls"), "{table}");
    std::fs::write(&json_path, report.json().to_pretty()).expect("write JSON");
    let json = std::fs::read_to_string(&json_path).expect("read JSON");
    assert_eq!(json.matches("\"target_cost_percent\"").count(), 2, "{json}");
    std::fs::remove_file(&json_path).expect("remove JSON");
    assert_eq!(
        std::fs::read_dir(dir.path()).expect("ls").count(),
        0,
        "scratch directory (bundles included) removed"
    );
}
