//! mTLS end to end: the real `lockd` binary serving over a real socket,
//! driven by the real `lockd client`, with certificates made by
//! `lockd_auth` the way an operator's tooling would make them.
//!
//! Every server runs with a temporary `HOME`, so the `$HOME/.lockd` it
//! bootstraps is private to the test; client bundles issued by the tests
//! live outside `$HOME/.lockd` so that the client's own bundle discovery
//! keeps finding the bootstrap `client.pem`.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use lockd_auth::bundle::{CaBundle, ClientBundle, ServerBundle};
use lockd_auth::claims::Claims;
use lockd_auth::files::write_private;
use lockd_auth::issue::{new_client, Validity};
use support::{lockd, ok_stdout, output, put_doc, run, run_script, stderr_of, Server, WAIT};

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

fn lockd_dir(home: &Path) -> PathBuf {
    home.join(".lockd")
}

/// `lockd --listen 127.0.0.1:0 EXTRA...`: mTLS and the bundle location
/// stay at their defaults, so the first start bootstraps `$HOME/.lockd`.
fn secure_server(home: &Path, extra: &[&str]) -> (Server, String) {
    let mut cmd = lockd(home);
    cmd.args(["--listen", "127.0.0.1:0"]).args(extra);
    let mut server = Server::start(cmd);
    let addr = server.addr();
    (server, addr)
}

/// `lockd client ARGS...` with the server given as a bare `host:port`
/// and nothing else: the scheme and the bundle are the client's defaults.
fn client(home: &Path, addr: &str, args: &[&str]) -> Command {
    let mut cmd = lockd(home);
    cmd.arg("client").args(args).env("LOCKD_CLIENT_SERVER", addr);
    cmd
}

/// Like [`client`], presenting the bundle at `bundle`.
fn client_as(home: &Path, addr: &str, bundle: &Path, args: &[&str]) -> Command {
    let mut cmd = client(home, addr, args);
    cmd.env("LOCKD_CLIENT_BUNDLE", bundle);
    cmd
}

/// The command never got an answer from the API: the connection was
/// turned away (exit 1, `lockd: cannot reach <server>: ...`).
fn assert_turned_away(out: &Output, url: &str) {
    let err = stderr_of(out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.starts_with(&format!("lockd: cannot reach {url}: ")), "{err}");
    assert_eq!(out.stdout, b"", "nothing printed for a refused connection");
}

fn validity(from_now: Duration) -> Validity {
    Validity::for_duration(from_now)
}

/// Issues a client certificate from the server's own CA and writes its
/// bundle to `$HOME/<cn>.pem`. Returns the path and the certificate's serial.
fn issue_client(home: &Path, cn: &str, claims: &str, valid: &Validity) -> (PathBuf, String) {
    let ca = CaBundle::load(&lockd_dir(home).join("ca.pem")).expect("the server bootstrapped its CA");
    let mut grants = Claims::none();
    grants.parse_flag(claims).expect("claims");
    let bundle = new_client(&ca, cn, &grants, valid).expect("issue client");
    let path = home.join(format!("{cn}.pem"));
    write_private(&path, &bundle.to_pem(), false).expect("write client bundle");
    (path, bundle.leaf.serial.clone())
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
}

#[test]
fn zero_flag_start_bootstraps_mtls_and_the_client_finds_its_bundle() {
    let home = tempfile::tempdir().expect("tempdir");
    let dir = lockd_dir(home.path());
    let mut server = Server::start({
        let mut cmd = lockd(home.path());
        cmd.args(["--listen", "127.0.0.1:0"]);
        cmd
    });
    let boot = server.wait_for("mTLS bootstrap");
    assert!(
        boot.contains(&dir.join("client.pem").display().to_string()),
        "the log names the client bundle: {boot}"
    );
    let addr = server.addr();
    let listening = server.seen.last().expect("start line").clone();
    assert!(listening.contains("(mTLS;"), "{listening}");
    assert!(listening.contains("encryption=on ("), "{listening}");

    assert_eq!(mode(&dir), 0o700, "{}", dir.display());
    for name in ["ca.pem", "server.pem", "client.pem"] {
        assert_eq!(mode(&dir.join(name)), 0o600, "{name}");
    }
    let serial = ClientBundle::load(&dir.join("client.pem"))
        .expect("bootstrap client bundle")
        .leaf
        .serial;
    assert!(!serial.is_empty());

    std::fs::write(
        home.path().join("doc.json"),
        "{ \"cursor\": 7, \"who\": \"zero-flag\" }\n",
    )
    .expect("write doc");
    let script = r#"
        set -euo pipefail
        eval "$("$LOCKD_BIN" client acquire --key orders --owner w1)"
        printf '%s' "$LOCKD_CLIENT_OWNER" > owner.txt
        printf '%s' "$LOCKD_CLIENT_SERVER" > server.txt
        eval "$("$LOCKD_BIN" client update ./doc.json)"
        "$LOCKD_BIN" client describe > held.txt
        eval "$("$LOCKD_BIN" client release)"
        "$LOCKD_BIN" client get --public > public.json
    "#;
    run_script(script, home.path(), &addr);
    let read = |name: &str| std::fs::read_to_string(home.path().join(name)).expect(name);
    let owner = format!("w1/lockd-client#{serial}");
    assert_eq!(read("owner.txt"), owner, "the certificate is appended to the owner");
    assert_eq!(
        read("server.txt"),
        format!("https://{addr}"),
        "a bare host:port meant https"
    );
    assert!(
        read("held.txt").contains(&format!("owner: {owner}\n")),
        "{}",
        read("held.txt")
    );
    assert_eq!(read("public.json"), r#"{"cursor":7,"who":"zero-flag"}"#);
    assert!(server.terminate().success());
}

#[test]
fn a_client_of_another_ca_is_refused_and_the_server_keeps_serving() {
    let home = tempfile::tempdir().expect("tempdir");
    let (mut server, addr) = secure_server(home.path(), &["--store", "mem://"]);
    let url = format!("https://{addr}");

    let other = home.path().join("other");
    let mut boot = lockd(home.path());
    boot.arg("--bootstrap").arg(&other);
    let (status, err) = run(boot);
    assert!(status.success(), "{err}");
    let foreign = other.join("client.pem");
    let out = output(client_as(home.path(), &addr, &foreign, &["describe", "-k", "k"]));
    assert_turned_away(&out, &url);

    // The bundle above does not trust our server either. This one trusts
    // both CAs, so only the server's check of the client can refuse it.
    let mut mixed = ClientBundle::load(&foreign).expect("foreign bundle");
    let ours = CaBundle::load(&lockd_dir(home.path()).join("ca.pem")).expect("our CA");
    mixed.ca_certs_pem = format!("{}{}", ours.cert_pem, mixed.ca_certs_pem);
    let mixed_path = home.path().join("mixed.pem");
    write_private(&mixed_path, &mixed.to_pem(), false).expect("write mixed bundle");
    let out = output(client_as(
        home.path(),
        &addr,
        &mixed_path,
        &["acquire", "-k", "k", "--owner", "x", "--retries", "0"],
    ));
    assert_turned_away(&out, &url);

    let out = output(client(home.path(), &addr, &["describe", "-k", "k"]));
    assert!(
        ok_stdout(&out).contains("owner: -\n"),
        "the refused acquire took nothing"
    );
    assert!(server.running());
    assert!(server.terminate().success());
}

#[test]
fn an_expired_client_certificate_is_refused() {
    let home = tempfile::tempdir().expect("tempdir");
    let (mut server, addr) = secure_server(home.path(), &["--store", "mem://"]);
    let now = SystemTime::now();
    let past = Validity {
        not_before: now - 2 * DAY,
        not_after: now - DAY,
    };
    let (expired, _) = issue_client(home.path(), "expired", "ALL=rw", &past);
    let out = output(client_as(home.path(), &addr, &expired, &["describe", "-k", "k"]));
    assert_turned_away(&out, &format!("https://{addr}"));

    // The same claims from the same CA, still valid: the period was the reason.
    let (fresh, _) = issue_client(home.path(), "fresh", "ALL=rw", &validity(DAY));
    ok_stdout(&output(client_as(home.path(), &addr, &fresh, &["describe", "-k", "k"])));
    assert!(server.terminate().success());
}

/// A kept-alive HTTP/1.1 connection over mTLS, outside the CLI, to show
/// that revocation also reaches connections opened before it.
struct OpenConnection {
    io: BufReader<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>,
}

impl OpenConnection {
    fn open(addr: &str, bundle: &ClientBundle) -> OpenConnection {
        let mut roots = rustls::RootCertStore::empty();
        for der in bundle.ca_ders().expect("CA certificates") {
            roots.add(der.into()).expect("root");
        }
        let (chain, key) = bundle.rustls_identity().expect("identity");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .expect("client identity");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let name = "127.0.0.1".try_into().expect("server name");
        let tls = rustls::ClientConnection::new(Arc::new(config), name).expect("TLS client");
        let tcp = TcpStream::connect(addr).expect("connect");
        tcp.set_read_timeout(Some(WAIT)).expect("timeout");
        OpenConnection {
            io: BufReader::new(rustls::StreamOwned::new(tls, tcp)),
        }
    }

    /// Sends `GET path` and returns the status and the body.
    fn get(&mut self, path: &str) -> (u16, String) {
        let stream = self.io.get_mut();
        write!(stream, "GET {path} HTTP/1.1\r\nHost: lockd\r\n\r\n").expect("send");
        stream.flush().expect("flush");
        let status_line = self.line();
        let status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("not an HTTP status line: {status_line:?}"));
        let (mut length, mut chunked) = (0usize, false);
        loop {
            let header = self.line();
            if header.is_empty() {
                break;
            }
            let (name, value) = header.split_once(':').expect("header");
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().expect("length"),
                "transfer-encoding" => chunked = value.to_ascii_lowercase().contains("chunked"),
                _ => {}
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                let size = usize::from_str_radix(self.line().trim(), 16).expect("chunk size");
                let mut chunk = vec![0; size];
                self.io.read_exact(&mut chunk).expect("chunk");
                self.line();
                if size == 0 {
                    break;
                }
                body.extend(chunk);
            }
        } else {
            body.resize(length, 0);
            self.io.read_exact(&mut body).expect("body");
        }
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.io.read_line(&mut line).expect("read line");
        line.trim_end_matches(['\r', '\n']).to_string()
    }
}

#[test]
fn a_revoked_client_is_cut_off_without_a_restart() {
    let home = tempfile::tempdir().expect("tempdir");
    let (mut server, addr) = secure_server(home.path(), &["--store", "mem://"]);
    let url = format!("https://{addr}");
    let (worker, serial) = issue_client(home.path(), "worker", "ALL=rw", &validity(DAY));
    ok_stdout(&output(client_as(
        home.path(),
        &addr,
        &worker,
        &["describe", "-k", "k"],
    )));
    let mut open = OpenConnection::open(&addr, &ClientBundle::load(&worker).expect("worker bundle"));
    let (status, body) = open.get("/v1/describe?key=k");
    assert_eq!(status, 200, "{body}");

    let server_pem = lockd_dir(home.path()).join("server.pem");
    let mut bundle = ServerBundle::load(&server_pem).expect("server bundle");
    bundle.denylist.insert(serial);
    write_private(&server_pem, &bundle.to_pem(), true).expect("rewrite server bundle");

    let describe = || output(client_as(home.path(), &addr, &worker, &["describe", "-k", "k"]));
    let deadline = Instant::now() + Duration::from_secs(10);
    let first = loop {
        let out = describe();
        if !out.status.success() {
            break out;
        }
        assert!(Instant::now() < deadline, "the revoked client still gets in after 10 s");
        std::thread::sleep(Duration::from_millis(100));
    };
    // A handshake that passed just before the reload meets the per-request
    // check instead; either way the first failure must be a revocation.
    let err = stderr_of(&first);
    assert!(
        err.starts_with(&format!("lockd: cannot reach {url}: "))
            || (err.starts_with("lockd: namespace_forbidden: ") && err.contains("revoked")),
        "{err}"
    );
    // From now on the handshake itself fails.
    assert_turned_away(&describe(), &url);
    let (status, body) = open.get("/v1/describe?key=k");
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("namespace_forbidden"), "{body}");

    ok_stdout(&output(client(home.path(), &addr, &["describe", "-k", "k"])));
    server.wait_for("denylist reloaded");
    assert!(server.running(), "the same process kept serving");
    let starts = server.seen.iter().filter(|l| l.contains("listening on ")).count();
    assert_eq!(starts, 1, "{}", server.seen.join("\n"));
    assert!(server.terminate().success());
}

#[test]
fn namespace_claims_decide_reads_and_writes() {
    let home = tempfile::tempdir().expect("tempdir");
    let (mut server, addr) = secure_server(home.path(), &["--store", "mem://"]);
    // Written with the bootstrap client, which may do anything (ALL=rw).
    let admin = |args: &[&str]| client(home.path(), &addr, args);
    for ns in ["orders", "default"] {
        put_doc(home.path(), admin, ns, "shared", &format!("{{\"ns\":\"{ns}\"}}"));
    }
    // (certificate, claims, allowed in orders, allowed in default), each
    // as (acquire, describe, get --public).
    let cases = [
        ("reader", "orders=r", [false, true, true], [false; 3]),
        ("writer", "orders=w", [true, false, false], [false; 3]),
        ("both", "orders=rw", [true, true, true], [false; 3]),
        ("auditor", "ALL=r", [false, true, true], [false, true, true]),
    ];
    for (cn, claims, in_orders, in_default) in cases {
        let (bundle, _) = issue_client(home.path(), cn, claims, &validity(DAY));
        for (ns, allowed) in [("orders", in_orders), ("default", in_default)] {
            let own_key = format!("key-of-{cn}");
            let acquire = [
                "acquire",
                "-k",
                &own_key,
                "-n",
                ns,
                "--owner",
                cn,
                "--block=-1",
                "--output=json",
            ];
            let ops: [(&str, &[&str]); 3] = [
                ("write", &acquire),
                ("read", &["describe", "-k", "shared", "-n", ns]),
                ("read", &["get", "--public", "-k", "shared", "-n", ns]),
            ];
            for ((verb, args), allow) in ops.iter().zip(allowed) {
                let out = output(client_as(home.path(), &addr, &bundle, args));
                let what = format!("{cn} ({claims}) {args:?}");
                if allow {
                    let text = ok_stdout(&out);
                    match args[0] {
                        "get" => assert_eq!(text, format!("{{\"ns\":\"{ns}\"}}"), "{what}"),
                        "describe" => assert!(text.contains("version: 1\n"), "{what}: {text}"),
                        _ => release_json(home.path(), &addr, &bundle, ns, &own_key, &text),
                    }
                } else {
                    let err = stderr_of(&out);
                    assert_eq!(out.status.code(), Some(1), "{what}: {err}");
                    assert!(err.starts_with("lockd: namespace_forbidden: "), "{what}: {err}");
                    assert!(
                        err.contains(&format!("may not {verb} namespace \"{ns}\"")),
                        "{what}: {err}"
                    );
                    assert_eq!(out.stdout, b"", "{what}");
                }
            }
        }
    }
    assert!(server.terminate().success());
}

/// Releases the lease `acquire --output json` printed (`text`), which a
/// writer may do: release needs `w` too.
fn release_json(home: &Path, addr: &str, bundle: &Path, ns: &str, key: &str, text: &str) {
    let v: serde_json::Value = serde_json::from_str(text).expect("acquire JSON");
    let token = v["fencing_token"].to_string();
    let out = output(client_as(
        home,
        addr,
        bundle,
        &[
            "release",
            "-k",
            key,
            "-n",
            ns,
            "--lease",
            v["lease_id"].as_str().expect("lease id"),
            "--txn-id",
            v["txn_id"].as_str().expect("txn id"),
            "--fencing-token",
            &token,
        ],
    ));
    ok_stdout(&out);
}

#[test]
fn plain_http_needs_disable_mtls_on_both_sides() {
    let home = tempfile::tempdir().expect("tempdir");
    let (mut server, addr) = secure_server(home.path(), &["--store", "mem://"]);
    let mut raw = TcpStream::connect(&addr).expect("connect");
    raw.set_read_timeout(Some(WAIT)).expect("timeout");
    raw.write_all(b"GET /healthz HTTP/1.1\r\nHost: lockd\r\nConnection: close\r\n\r\n")
        .expect("send");
    let mut answer = Vec::new();
    // A reset is as good an answer as a TLS alert; an HTTP response is not.
    let _ = raw.read_to_end(&mut answer);
    assert!(!answer.starts_with(b"HTTP/"), "{}", String::from_utf8_lossy(&answer));
    let out = output(client(home.path(), &addr, &["describe", "-k", "k", "--disable-mtls"]));
    assert_turned_away(&out, &format!("http://{addr}"));
    assert!(server.terminate().success());

    let bare = tempfile::tempdir().expect("tempdir");
    let (mut plain, plain_addr) = secure_server(bare.path(), &["--store", "mem://", "--disable-mtls"]);
    let listening = plain.seen.last().expect("start line").clone();
    assert!(listening.contains("(plain HTTP"), "{listening}");
    assert!(listening.contains("encryption=off (no bundle)"), "{listening}");
    let out = output(client(
        bare.path(),
        &plain_addr,
        &["acquire", "-k", "k", "--owner", "p", "--disable-mtls"],
    ));
    assert!(ok_stdout(&out).contains(&format!("export LOCKD_CLIENT_SERVER=http://{plain_addr}\n")));
    let out = output(client(
        bare.path(),
        &plain_addr,
        &["describe", "-k", "k", "--disable-mtls"],
    ));
    assert!(ok_stdout(&out).contains("owner: p\n"), "no certificate, no suffix");
    assert!(
        !lockd_dir(bare.path()).exists(),
        "nothing was bootstrapped for a plain-HTTP server"
    );
    assert!(plain.terminate().success());
}
