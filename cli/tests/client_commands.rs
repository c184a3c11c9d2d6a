//! `lockd client` commands one by one: error surfaces and exit codes,
//! JSON output, Unix-socket and failover server URLs, and `--help`.
//!
//! Each test that needs a server starts its own in-memory one and runs the
//! real binary with a cleared environment.

mod support;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use support::{lockd, ok_stdout, output, run, stderr_of, Server};

fn start(home: &Path, listen: &[&str]) -> Server {
    let mut cmd = lockd(home);
    cmd.args(["--store", "mem://", "--disable-mtls"]).args(listen);
    Server::start(cmd)
}

fn mem_server(home: &Path) -> (Server, String) {
    let mut server = start(home, &["--listen", "127.0.0.1:0"]);
    let addr = server.addr();
    (server, format!("http://{addr}"))
}

/// `lockd client ARGS...` against `server` (a plain-HTTP one, so bare
/// `host:port` means `http://`), nothing else in the environment.
fn client(home: &Path, server: &str, args: &[&str]) -> Command {
    let mut cmd = lockd(home);
    cmd.arg("client")
        .args(args)
        .env("LOCKD_CLIENT_SERVER", server)
        .env("LOCKD_CLIENT_DISABLE_MTLS", "true");
    cmd
}

/// Stdout of a command that had to succeed, parsed as JSON (from the raw
/// bytes, so output that is not UTF-8 fails here instead of being patched).
fn ok_json(cmd: Command) -> Value {
    let out = output(cmd);
    ok_stdout(&out);
    serde_json::from_slice(&out.stdout).expect("stdout is JSON")
}

/// A held lease: the environment `eval "$(lockd client acquire ...)"` would set.
struct Held {
    vars: Vec<(&'static str, String)>,
}

impl Held {
    fn acquire(home: &Path, server: &str, key: &str) -> Held {
        Held::from_json(&ok_json(client(
            home,
            server,
            &["acquire", "-k", key, "--owner", "t", "--output", "json"],
        )))
    }

    /// The variables for the lease in `acquire --output json`'s answer.
    fn from_json(v: &Value) -> Held {
        let text = |name: &str| match &v[name] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        Held {
            vars: vec![
                ("LOCKD_CLIENT_KEY", text("key")),
                ("LOCKD_CLIENT_LEASE", text("lease_id")),
                ("LOCKD_CLIENT_TXN_ID", text("txn_id")),
                ("LOCKD_CLIENT_FENCING_TOKEN", text("fencing_token")),
            ],
        }
    }

    fn client(&self, home: &Path, server: &str, args: &[&str]) -> Command {
        let mut cmd = client(home, server, args);
        cmd.envs(self.vars.iter().map(|(k, v)| (k, v)));
        cmd
    }

    fn lease_id(&self) -> &str {
        &self.vars[1].1
    }
}

/// Runs `cmd` with `input` on stdin.
fn with_stdin(mut cmd: Command, input: &str) -> Output {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("feed stdin");
    child.wait_with_output().expect("finish")
}

#[test]
fn wrong_fencing_token_is_refused_and_the_lease_survives() {
    let home = tempfile::tempdir().expect("tempdir");
    let (mut server, url) = mem_server(home.path());
    let held = Held::acquire(home.path(), &url, "fenced");

    let out = with_stdin(
        held.client(home.path(), &url, &["update", "--fencing-token", "999"]),
        "{\"a\":1}",
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let err = stderr_of(&out);
    assert!(err.starts_with("lockd: fencing_mismatch: "), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");

    // The server answers `released: true` to a wrong token; the CLI must not.
    let (status, err) = run(held.client(home.path(), &url, &["release", "--fencing-token", "999"]));
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.starts_with("lockd: fencing_mismatch: "), "{err}");
    let d = ok_json(client(
        home.path(),
        &url,
        &["describe", "-k", "fenced", "--output", "json"],
    ));
    assert_eq!(d["lease_id"], held.lease_id(), "the lease is still held");

    let (status, err) = run(held.client(home.path(), &url, &["release"]));
    assert!(status.success(), "{err}");
    let d = ok_json(client(
        home.path(),
        &url,
        &["describe", "-k", "fenced", "--output", "json"],
    ));
    assert!(d.get("lease_id").is_none(), "released: {d}");
    assert!(server.terminate().success());
}

#[test]
fn held_key_without_waiting_fails_with_waiting() {
    let home = tempfile::tempdir().expect("tempdir");
    let (mut server, url) = mem_server(home.path());
    Held::acquire(home.path(), &url, "busy");
    let out = output(client(home.path(), &url, &["acquire", "-k", "busy", "--block", "-1"]));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(out.stdout, b"", "nothing to eval");
    let err = stderr_of(&out);
    assert!(err.starts_with("lockd: waiting: "), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(server.terminate().success());
}

#[test]
fn missing_values_exit_2_naming_flag_and_variable() {
    let home = tempfile::tempdir().expect("tempdir");
    // Nothing is dialled before the values are checked: no server needed.
    let dead = "http://127.0.0.1:9";
    for args in [
        &["keepalive"][..],
        &["release"],
        &["get"],
        &["get", "--public"],
        &["update", "-"],
        &["remove"],
        &["describe"],
    ] {
        let (status, err) = run(client(home.path(), dead, args));
        assert_eq!(status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.starts_with("lockd: ") && err.contains("--key") && err.contains("LOCKD_CLIENT_KEY"),
            "{args:?}: {err}"
        );
    }
    let (status, err) = run(client(
        home.path(),
        dead,
        &["release", "-k", "a", "--lease", "l", "--fencing-token", "1"],
    ));
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("--txn-id") && err.contains("LOCKD_CLIENT_TXN_ID"), "{err}");
    let mut bad_env = client(home.path(), dead, &["get", "-k", "a", "--lease", "l"]);
    bad_env.env("LOCKD_CLIENT_FENCING_TOKEN", "seven");
    let (status, err) = run(bad_env);
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(
        err.starts_with("lockd: invalid --fencing-token \"seven\" (from LOCKD_CLIENT_FENCING_TOKEN): "),
        "{err}"
    );
}

#[test]
fn server_variables_do_not_leak_into_the_client() {
    let home = tempfile::tempdir().expect("tempdir");
    let (mut server, url) = mem_server(home.path());
    // The server's flags of the same name must not hand these down.
    let mut cmd = client(home.path(), &url, &["describe", "-k", "k"]);
    cmd.env("LOCKD_LOG_LEVEL", "bogus")
        .env("LOCKD_BUNDLE", "/nonexistent")
        .env("LOCKD_DISABLE_MTLS", "maybe");
    let out = output(cmd);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("key: k\n"));
    assert!(server.terminate().success());
}

#[test]
fn unreachable_server_is_named() {
    let home = tempfile::tempdir().expect("tempdir");
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = dead.local_addr().expect("addr");
    drop(dead);
    let (status, err) = run(client(
        home.path(),
        &addr.to_string(),
        &["acquire", "-k", "a", "--retries", "0"],
    ));
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.starts_with(&format!("lockd: cannot reach http://{addr}: ")),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn failover_list_reaches_the_live_endpoint() {
    let home = tempfile::tempdir().expect("tempdir");
    let (mut server, url) = mem_server(home.path());
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead_addr = dead.local_addr().expect("addr");
    drop(dead);
    let list = format!("{dead_addr},{url}");
    let out = output(client(home.path(), &list, &["acquire", "-k", "fo", "--owner", "w"]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(
        text.contains(&format!("export LOCKD_CLIENT_SERVER=http://{dead_addr},{url}\n")),
        "normalised list exported: {text}"
    );
    assert!(server.terminate().success());
}

#[test]
fn unix_socket_server_url() {
    let home = tempfile::tempdir().expect("tempdir");
    let socket = home.path().join("lockd.sock");
    let socket_text = socket.to_str().expect("utf-8 path");
    let mut server = start(home.path(), &["--listen-proto", "unix", "--listen", socket_text]);
    server.addr();
    let url = format!("unix://{socket_text}");
    let held = Held::acquire(home.path(), &url, "over-unix");
    let out = with_stdin(held.client(home.path(), &url, &["update"]), "[1, 2, 3]");
    assert!(out.status.success(), "{}", stderr_of(&out));
    let (status, err) = run(held.client(home.path(), &url, &["release"]));
    assert!(status.success(), "{err}");
    let out = output(client(home.path(), &url, &["get", "--public", "-k", "over-unix"]));
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(out.stdout, b"[1,2,3]");
    assert!(server.terminate().success());
}

#[test]
fn json_output_shapes() {
    let home = tempfile::tempdir().expect("tempdir");
    let (mut server, url) = mem_server(home.path());
    let acquired = ok_json(client(
        home.path(),
        &url,
        &[
            "acquire", "-k", "shapes", "-n", "team-a", "--owner", "j", "--ttl", "45s", "--output", "json",
        ],
    ));
    assert_eq!(acquired["key"], "shapes");
    assert_eq!(acquired["namespace"], "team-a");
    assert_eq!(acquired["owner"], "j");
    assert_eq!(acquired["version"], 0);
    assert!(acquired["fencing_token"].as_i64().is_some_and(|t| t > 0), "{acquired}");
    for field in ["lease_id", "txn_id", "correlation_id"] {
        assert!(
            acquired[field].as_str().is_some_and(|s| !s.is_empty()),
            "{field}: {acquired}"
        );
    }
    assert!(acquired["expires_at_unix"].as_i64().is_some(), "{acquired}");

    let mut held = Held::from_json(&acquired);
    held.vars.push(("LOCKD_CLIENT_NAMESPACE", "team-a".into()));
    let json = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--output", "json"]);
        held.client(home.path(), &url, &all)
    };
    let ka = ok_json(json(&["keepalive", "--ttl", "1m"]));
    assert!(
        ka["expires_at_unix"].as_i64() > acquired["expires_at_unix"].as_i64(),
        "{ka}"
    );

    let out = with_stdin(json(&["update"]), "{\"n\": 1}");
    assert!(out.status.success(), "{}", stderr_of(&out));
    let up: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(up["new_version"], 1);
    assert_eq!(up["bytes"], 7, "compacted size: {up}");
    assert!(up["new_state_etag"].as_str().is_some_and(|e| !e.is_empty()), "{up}");

    let rm = ok_json(json(&["remove", "--if-version", "1"]));
    assert_eq!(rm, serde_json::json!({"removed": true, "new_version": 2}));
    let rel = ok_json(json(&["release", "--rollback"]));
    assert_eq!(rel, serde_json::json!({"released": true}));

    let d = ok_json(client(
        home.path(),
        &url,
        &["describe", "-k", "shapes", "-n", "team-a", "--output", "json"],
    ));
    assert_eq!(d["key"], "shapes");
    assert_eq!(d["namespace"], "team-a");
    assert_eq!(d["version"], 0, "rolled back: {d}");
    assert!(d["updated_at_unix"].as_i64().is_some(), "{d}");
    assert!(server.terminate().success());
}

#[test]
fn every_command_has_help_with_examples() {
    let home = tempfile::tempdir().expect("tempdir");
    for cmd in ["acquire", "keepalive", "release", "get", "update", "remove", "describe"] {
        let out = output(client(home.path(), "http://127.0.0.1:9", &[cmd, "--help"]));
        assert!(out.status.success(), "{cmd}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Examples:"), "{cmd}: {text}");
        assert!(
            text.contains("--server") && text.contains("LOCKD_CLIENT_SERVER"),
            "{cmd}: {text}"
        );
    }
    let out = output(client(home.path(), "http://127.0.0.1:9", &["acquire", "--help"]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("eval \"$(lockd client acquire --key orders"), "{text}");
    let (status, err) = run(client(home.path(), "http://127.0.0.1:9", &[]));
    assert_eq!(status.code(), Some(2), "a command is required: {err}");
}
