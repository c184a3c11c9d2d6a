//! `lockd client` the way people use it: from a shell, carrying the lease
//! between invocations through `eval` and `LOCKD_CLIENT_*` variables.
//!
//! Each test starts its own in-memory server on a free port and runs the
//! real binary with a cleared environment.

mod support;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use support::{lockd, ok_stdout, output, run, run_script, Server};

/// A document with whitespace to compact and a quote to survive.
const DOC: &str = "{ \"cursor\" : 42,\n  \"name\": \"o'neil\", \"tags\": [ \"a\", \"b\" ] }\n";
const COMPACT: &str = r#"{"cursor":42,"name":"o'neil","tags":["a","b"]}"#;

fn mem_server(home: &Path) -> (Server, String) {
    let mut cmd = lockd(home);
    cmd.args(["--store", "mem://", "--listen", "127.0.0.1:0", "--disable-mtls"]);
    let mut server = Server::start(cmd);
    let addr = server.addr();
    (server, format!("http://{addr}"))
}

/// `lockd client ARGS...` against `server`, nothing else in the environment.
fn client(home: &Path, server: &str, args: &[&str]) -> Command {
    let mut cmd = lockd(home);
    cmd.arg("client").args(args).env("LOCKD_CLIENT_SERVER", server);
    cmd
}

#[test]
fn eval_workflow_in_a_shell() {
    let home = tempfile::tempdir().expect("tempdir");
    let (mut server, url) = mem_server(home.path());
    std::fs::write(home.path().join("doc.json"), DOC).expect("write doc");
    let script = r#"
        set -euo pipefail
        lockd() { "$LOCKD_BIN" "$@"; }
        eval "$(lockd client acquire --key orders --owner w1)"
        # `set -e` ignores failures inside && lists: one check per line.
        [ "$LOCKD_CLIENT_KEY" = orders ]
        [ "$LOCKD_CLIENT_OWNER" = w1 ]
        [ -n "$LOCKD_CLIENT_LEASE" ]
        [ "$LOCKD_CLIENT_NAMESPACE" = default ]
        [ "$LOCKD_CLIENT_FENCING_TOKEN" -gt 0 ]
        [ -z "${LOCKD_CLIENT_ETAG+set}" ]
        eval "$(lockd client update ./doc.json)"
        [ "$LOCKD_CLIENT_VERSION" = 1 ]
        [ -n "$LOCKD_CLIENT_ETAG" ]
        lockd client get -o - > held.json
        lockd client get --public > before-release.json
        eval "$(lockd client keepalive --ttl 1m)"
        lockd client release > release.txt
        eval "$(cat release.txt)"
        [ -z "${LOCKD_CLIENT_LEASE+set}" ]
        [ "$LOCKD_CLIENT_KEY" = orders ]
        lockd client get --public > public.json
        lockd client describe > describe.txt
        printf '%s' "$LOCKD_CLIENT_ETAG" > etag.txt
    "#;
    run_script(script, home.path(), &url);
    let read = |name: &str| std::fs::read_to_string(home.path().join(name)).expect(name);
    assert_eq!(read("held.json"), COMPACT, "the holder sees its staged document");
    assert_eq!(read("before-release.json"), "", "staged state is not public");
    assert_eq!(read("public.json"), COMPACT, "release committed the document");
    let describe = read("describe.txt");
    assert!(describe.contains("version: 1\n"), "{describe}");
    assert!(
        describe.contains(&format!("etag: {}\n", read("etag.txt"))),
        "{describe}"
    );
    assert!(describe.contains("owner: -\n"), "nobody holds the key: {describe}");
    assert!(read("release.txt").starts_with("# lease released, staged changes committed\n"));
    assert!(server.terminate().success());
}

#[test]
fn update_from_stdin_and_get_to_a_file() {
    let home = tempfile::tempdir().expect("tempdir");
    let (mut server, url) = mem_server(home.path());
    let acquired: serde_json::Value = serde_json::from_str(&ok_stdout(&output(client(
        home.path(),
        &url,
        &["acquire", "-k", "stdin-doc", "--owner", "w2", "--output", "json"],
    ))))
    .expect("acquire prints JSON");
    let field = |name: &str| match &acquired[name] {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let lease_flags = [
        "--key".to_owned(),
        "stdin-doc".to_owned(),
        "--lease".to_owned(),
        field("lease_id"),
        "--fencing-token".to_owned(),
        field("fencing_token"),
    ];
    let lease_args: Vec<&str> = lease_flags.iter().map(String::as_str).collect();
    let txn = field("txn_id");

    // No state yet: the output file is emptied, --show-meta says so.
    let target = home.path().join("state.json");
    std::fs::write(&target, "stale").expect("write");
    let target_text = target.to_str().expect("utf-8 path");
    let mut get = client(home.path(), &url, &["get", "-o", target_text, "--show-meta"]);
    get.args(&lease_args);
    let out = output(get);
    ok_stdout(&out);
    assert_eq!(std::fs::read_to_string(&target).expect("read"), "");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "no state\n");

    let mut update = client(home.path(), &url, &["update", "-", "--txn-id", &txn]);
    update.args(&lease_args);
    let mut child = update
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn update");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(DOC.as_bytes())
        .expect("feed stdin");
    let out = child.wait_with_output().expect("update finishes");
    let text = ok_stdout(&out);
    assert!(
        text.starts_with("export LOCKD_CLIENT_VERSION=1\nexport LOCKD_CLIENT_ETAG="),
        "{text}"
    );

    let mut get = client(home.path(), &url, &["get", "--output", target_text, "--show-meta"]);
    get.args(&lease_args);
    let out = output(get);
    assert_eq!(ok_stdout(&out), "", "the document went to the file");
    assert_eq!(std::fs::read_to_string(&target).expect("read"), COMPACT);
    let meta = String::from_utf8_lossy(&out.stderr).into_owned();
    let etag = text.lines().nth(1).and_then(|l| l.split_once('=')).map(|(_, v)| v);
    assert_eq!(meta, format!("version: 1\netag: {}\n", etag.expect("etag line")));

    let mut release = client(home.path(), &url, &["release", "--txn-id", &txn]);
    release.args(&lease_args);
    let (status, stderr) = run(release);
    assert!(status.success(), "{stderr}");
    assert!(server.terminate().success());
}
