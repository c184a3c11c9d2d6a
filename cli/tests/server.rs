//! Black-box tests of the `lockd` binary: start it, talk HTTP to it, stop
//! it with SIGTERM, and check what an operator would see.
//!
//! Every child runs with a cleared environment and `HOME` pointing at a
//! temporary directory, so neither the developer's `~/.lockd/config.yaml`
//! nor stray `LOCKD_*` variables can change the outcome.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;

use support::{lockd, run, Server, BIN, WAIT};

/// A plain HTTP/1.1 GET; returns the whole response.
fn http_get(addr: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: lockd\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read response");
    response
}

#[test]
fn mem_server_answers_healthz_and_stops_cleanly_on_sigterm() {
    let home = tempfile::tempdir().expect("tempdir");
    let mut cmd = lockd(home.path());
    cmd.args(["--store", "mem://", "--listen", "127.0.0.1:0", "--disable-mtls"]);
    let mut server = Server::start(cmd);
    let addr = server.addr();
    let response = http_get(&addr, "/healthz");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let status = server.terminate();
    assert!(status.success(), "exit status {status:?}");
    server.wait_for("shutdown complete");
}

#[test]
fn disk_server_creates_its_data_directory() {
    use std::os::unix::fs::PermissionsExt;
    let home = tempfile::tempdir().expect("tempdir");
    let data = home.path().join("var").join("lockd");
    let mut cmd = lockd(home.path());
    cmd.arg("--store").arg(format!("disk://{}", data.display())).args([
        "--listen",
        "127.0.0.1:0",
        "--logstore-io",
        "sync",
        "--disable-mtls",
    ]);
    let mut server = Server::start(cmd);
    let addr = server.addr();
    let mode = std::fs::metadata(&data).expect("data dir exists").permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
    assert!(
        data.join("MANIFEST").exists(),
        "the logstore was opened in the data directory"
    );
    assert!(http_get(&addr, "/readyz").starts_with("HTTP/1.1 200"));
    let status = server.terminate();
    assert!(status.success(), "exit status {status:?}");
    server.wait_for("shutdown complete");
}

#[test]
fn bad_flag_value_exits_2_with_one_line_naming_the_flag() {
    let home = tempfile::tempdir().expect("tempdir");
    let mut cmd = lockd(home.path());
    cmd.args(["--store", "mem://", "--json-max", "12XB"]);
    let (status, stderr) = run(cmd);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("lockd: invalid --json-max \"12XB\": "), "{stderr}");
}

#[test]
fn unsupported_store_fails_at_start() {
    let home = tempfile::tempdir().expect("tempdir");
    let mut cmd = lockd(home.path());
    cmd.args(["--store", "s3://127.0.0.1:9000/bucket"]);
    let (status, stderr) = run(cmd);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("--store") && stderr.contains("not supported yet"),
        "{stderr}"
    );
}

#[test]
fn environment_beats_config_file_and_flag_beats_environment() {
    let home = tempfile::tempdir().expect("tempdir");
    let config = home.path().join("lockd.yaml");
    std::fs::write(&config, "store: mem://\nlisten: 127.0.0.1:0\ndefault-ttl: 45\n").expect("write config");

    let mut env_wins = lockd(home.path());
    env_wins.arg("-c").arg(&config).env("LOCKD_DEFAULT_TTL", "soon");
    let (status, stderr) = run(env_wins);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("invalid --default-ttl \"soon\" (from LOCKD_DEFAULT_TTL)"),
        "{stderr}"
    );

    let mut flag_wins = lockd(home.path());
    flag_wins
        .arg("-c")
        .arg(&config)
        .env("LOCKD_DEFAULT_TTL", "soon")
        .args(["--default-ttl", "10s"]);
    let mut server = Server::start(flag_wins);
    let addr = server.addr();
    assert!(
        addr.starts_with("127.0.0.1:"),
        "listen came from the config file: {addr}"
    );
    // SIGTERM right after the start line, with no request in between, must
    // still be graceful: the handlers are installed before the line is logged.
    assert!(server.terminate().success());
}

#[test]
fn unknown_config_keys_warn_but_do_not_stop_the_server() {
    let home = tempfile::tempdir().expect("tempdir");
    let config = home.path().join("lockd.yaml");
    std::fs::write(&config, "store: mem://\nlisten: 127.0.0.1:0\nha: failover\n").expect("write config");
    let mut cmd = lockd(home.path());
    cmd.arg("--config").arg(&config);
    let mut server = Server::start(cmd);
    let warning = server.wait_for("warning");
    assert!(
        warning.contains("\"ha\"") && warning.contains("lockd.yaml"),
        "{warning}"
    );
    server.addr();
    assert!(server.terminate().success());
}

#[test]
fn missing_named_config_file_is_an_error() {
    let home = tempfile::tempdir().expect("tempdir");
    let mut cmd = lockd(home.path());
    cmd.args(["--store", "mem://", "-c"])
        .arg(home.path().join("absent.yaml"));
    let (status, stderr) = run(cmd);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("absent.yaml") && stderr.contains("no such file"),
        "{stderr}"
    );
}

#[test]
fn generated_config_is_the_default_and_loads_without_warnings() {
    use std::os::unix::fs::PermissionsExt;
    let home = tempfile::tempdir().expect("tempdir");
    let mut gen = lockd(home.path());
    gen.args(["config", "gen"]);
    let (status, stderr) = run(gen);
    assert!(status.success(), "{stderr}");
    let dir = home.path().join(".lockd");
    let mode = std::fs::metadata(&dir).expect("~/.lockd").permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
    let text = std::fs::read_to_string(dir.join("config.yaml")).expect("config written");
    let want_store = format!("store: disk://{}/.lockd/data", home.path().display());
    assert!(text.contains(&want_store), "{text}");

    let mut again = lockd(home.path());
    again.args(["config", "gen"]);
    let (status, stderr) = run(again);
    assert!(!status.success(), "refuses to overwrite");
    assert!(stderr.contains("--force"), "{stderr}");

    // The default config file is picked up by itself: no -c needed.
    let mut cmd = lockd(home.path());
    cmd.args(["--listen", "127.0.0.1:0", "--logstore-io", "sync"]);
    let mut server = Server::start(cmd);
    server.addr();
    assert!(server.terminate().success());
    assert!(
        !server.seen.iter().any(|l| l.contains("warning")),
        "{}",
        server.seen.join("\n")
    );
    assert!(
        dir.join("data").join("MANIFEST").exists(),
        "the default disk store was used"
    );
}

#[test]
fn version_flag_prints_the_version() {
    let out = Command::new(BIN).arg("--version").output().expect("run");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.trim(), format!("lockd {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn a_named_bundle_must_exist_even_without_mtls() {
    let home = tempfile::tempdir().expect("tempdir");
    let missing = home.path().join("typo.pem");
    for extra in [&["--disable-mtls"][..], &[]] {
        let mut cmd = lockd(home.path());
        cmd.args(["--store", "mem://", "--listen", "127.0.0.1:0", "--bundle"])
            .arg(&missing)
            .args(extra);
        let (status, stderr) = run(cmd);
        assert_eq!(status.code(), Some(1), "{extra:?}: {stderr}");
        assert!(
            stderr.contains("typo.pem") && stderr.contains("does not exist"),
            "{extra:?}: {stderr}"
        );
    }
    assert!(
        !home.path().join(".lockd").exists(),
        "nothing is bootstrapped for a named bundle"
    );
}

/// A server bundle whose certificate is valid from `from` to `until`
/// seconds from now, written where `--bundle` will find it.
fn server_bundle_valid(dir: &std::path::Path, from: i64, until: i64) -> std::path::PathBuf {
    use lockd_auth::issue::{new_ca, new_server, Validity};
    use std::time::{Duration, SystemTime};
    let at = |offset: i64| {
        let now = SystemTime::now();
        let d = Duration::from_secs(offset.unsigned_abs());
        if offset < 0 {
            now - d
        } else {
            now + d
        }
    };
    let ca = new_ca("test-ca", &Validity::for_duration(Duration::from_secs(86_400))).expect("ca");
    let validity = Validity {
        not_before: at(from),
        not_after: at(until),
    };
    let server = new_server(&ca, "lockd-server", &[], &validity).expect("server");
    let path = dir.join("server.pem");
    lockd_auth::files::write_private(&path, &server.to_pem(), true).expect("write bundle");
    path
}

#[test]
fn an_expired_server_certificate_stops_the_start_and_a_near_expiry_warns() {
    let home = tempfile::tempdir().expect("tempdir");
    let expired = server_bundle_valid(home.path(), -2 * 86_400, -86_400);
    let mut cmd = lockd(home.path());
    cmd.args(["--store", "mem://", "--listen", "127.0.0.1:0", "--bundle"])
        .arg(&expired);
    let (status, stderr) = run(cmd);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("expired on") && stderr.contains("lockd auth new server"),
        "{stderr}"
    );

    let soon = server_bundle_valid(home.path(), -3600, 5 * 86_400);
    let mut cmd = lockd(home.path());
    cmd.args(["--store", "mem://", "--listen", "127.0.0.1:0", "--bundle"])
        .arg(&soon);
    let mut server = Server::start(cmd);
    let warning = server.wait_for("server certificate expires on");
    assert!(warning.contains("WARN"), "{warning}");
    server.addr();
    assert!(server.terminate().success());
}
