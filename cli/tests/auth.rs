//! `lockd auth ...` end to end: the real binary with `HOME` in a temporary
//! directory, checking the files it writes, what it prints, and its exit
//! status (0 ok, 1 failed, 2 bad command line).

// Only `lockd` is needed from the shared harness; the server helpers are
// for the other test files.
#[allow(dead_code)]
mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use lockd_auth::bundle::CaBundle;
use serde_json::Value;
use support::{lockd, BIN};

/// What one run of the binary produced.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn exec(mut cmd: Command) -> Run {
    let out = cmd.stdin(Stdio::null()).output().expect("run lockd");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `lockd auth ARGS...` with `HOME=home` and nothing else in the
/// environment, run in `home` so relative paths land there too.
fn auth(home: &Path, args: &[&str]) -> Run {
    let mut cmd = lockd(home);
    cmd.current_dir(home).arg("auth").args(args);
    exec(cmd)
}

/// Runs and insists on success; returns stdout.
fn ok(home: &Path, args: &[&str]) -> String {
    let run = auth(home, args);
    assert_eq!(
        run.code,
        Some(0),
        "lockd auth {args:?} failed\nstdout:\n{}\nstderr:\n{}",
        run.stdout,
        run.stderr
    );
    run.stdout
}

/// Runs and insists on exit status `code`; returns the run.
fn fails(home: &Path, args: &[&str], code: i32) -> Run {
    let run = auth(home, args);
    assert_eq!(
        run.code,
        Some(code),
        "lockd auth {args:?}: expected exit {code}\nstdout:\n{}\nstderr:\n{}",
        run.stdout,
        run.stderr
    );
    run
}

fn dir(home: &Path) -> PathBuf {
    home.join(".lockd")
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).expect("metadata").permissions().mode() & 0o777
}

/// `inspect KIND --in FILE --output json`, parsed.
fn inspect_json(home: &Path, kind: &str, file: &Path) -> Value {
    let out = ok(home, &["inspect", kind, "--in", path_str(file), "--output", "json"]);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("inspect output is not JSON ({e}):\n{out}"))
}

fn serial_of(home: &Path, kind: &str, file: &Path) -> String {
    inspect_json(home, kind, file)["certificate"]["serial"]
        .as_str()
        .expect("serial is a string")
        .to_string()
}

fn denylist_of(home: &Path, server: &Path) -> Vec<String> {
    let json = inspect_json(home, "server", server);
    json["denylist"]
        .as_array()
        .expect("denylist is an array")
        .iter()
        .map(|v| v.as_str().expect("serial").to_string())
        .collect()
}

/// The body of the `label` PEM block in `text`.
fn block<'a>(text: &'a str, label: &str) -> &'a str {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin).unwrap_or_else(|| panic!("no {label} block")) + begin.len();
    let stop = text[start..].find(&end).expect("block end") + start;
    &text[start..stop]
}

/// A home with a CA, `server.pem` and `client.pem`, made by the binary.
fn fresh_set() -> tempfile::TempDir {
    let home = tempfile::tempdir().expect("tempdir");
    ok(home.path(), &["new", "ca"]);
    ok(home.path(), &["new", "server"]);
    ok(home.path(), &["new", "client"]);
    home
}

#[test]
fn new_writes_private_bundles_in_the_default_dir() {
    let home = tempfile::tempdir().expect("tempdir");
    let d = dir(home.path());
    let out = ok(home.path(), &["new", "ca"]);
    assert!(out.contains(&format!("wrote {}", d.join("ca.pem").display())), "{out}");
    assert!(out.contains("CN=lockd-ca"), "{out}");
    let out = ok(home.path(), &["new", "server"]);
    assert!(
        out.contains(&format!("wrote {}", d.join("server.pem").display())),
        "{out}"
    );
    assert!(out.contains("*, localhost, 127.0.0.1, ::1"), "default hosts: {out}");
    let out = ok(home.path(), &["new", "client"]);
    assert!(
        out.contains(&format!("wrote {}", d.join("client.pem").display())),
        "{out}"
    );
    assert!(out.contains("default=rw"), "{out}");
    for name in ["ca.pem", "server.pem", "client.pem"] {
        assert_eq!(mode(&d.join(name)), 0o600, "{name}");
    }
    assert_eq!(mode(&d), 0o700);

    // The next server (and client) goes to the next free name.
    let out = ok(
        home.path(),
        &["new", "server", "--hosts", "db.internal,10.0.0.7", "--hosts", "::1"],
    );
    let second = d.join("server02.pem");
    assert!(out.contains(&format!("wrote {}", second.display())), "{out}");
    assert_eq!(mode(&second), 0o600);
    let json = inspect_json(home.path(), "server", &second);
    assert_eq!(json["certificate"]["dns_names"], serde_json::json!(["db.internal"]));
    assert_eq!(
        json["certificate"]["ip_addresses"],
        serde_json::json!(["10.0.0.7", "::1"])
    );
    ok(home.path(), &["new", "client"]);
    assert!(d.join("client02.pem").exists());
}

#[test]
fn new_ca_refuses_to_overwrite_without_force() {
    let home = tempfile::tempdir().expect("tempdir");
    let ca = dir(home.path()).join("ca.pem");
    ok(home.path(), &["new", "ca"]);
    let before = fs::read_to_string(&ca).expect("read");
    let run = fails(home.path(), &["new", "ca"], 1);
    assert!(run.stderr.starts_with("lockd: "), "{}", run.stderr);
    assert!(
        run.stderr.contains("already exists") && run.stderr.contains("--force"),
        "{}",
        run.stderr
    );
    assert_eq!(run.stderr.lines().count(), 1, "one line: {}", run.stderr);
    assert_eq!(fs::read_to_string(&ca).expect("read"), before, "untouched");

    let out = ok(home.path(), &["new", "ca", "--force", "--cn", "second-ca"]);
    assert!(out.contains("CN=second-ca"), "{out}");
    let after = fs::read_to_string(&ca).expect("read");
    assert_ne!(
        block(&after, "CERTIFICATE"),
        block(&before, "CERTIFICATE"),
        "new certificate"
    );
    assert_ne!(block(&after, "PRIVATE KEY"), block(&before, "PRIVATE KEY"), "new key");
    assert_eq!(
        block(&after, "LOCKD STORAGE KEY"),
        block(&before, "LOCKD STORAGE KEY"),
        "the storage key survives, so encrypted stores still open"
    );
    assert_eq!(mode(&ca), 0o600);
}

#[test]
fn new_server_with_force_replaces_server_pem_and_keeps_its_denylist() {
    let home = fresh_set();
    let server = dir(home.path()).join("server.pem");
    let client = dir(home.path()).join("client.pem");
    let serial = serial_of(home.path(), "client", &client);
    ok(home.path(), &["revoke", "client", &serial]);
    let old = serial_of(home.path(), "server", &server);
    let out = ok(home.path(), &["new", "server", "--force"]);
    assert!(out.contains(&format!("wrote {}", server.display())), "{out}");
    assert_ne!(serial_of(home.path(), "server", &server), old, "a new certificate");
    assert_eq!(denylist_of(home.path(), &server), vec![serial.clone()]);
    assert!(!dir(home.path()).join("server02.pem").exists());
    // A further server bundle beside it starts with the same revocations.
    ok(home.path(), &["new", "server"]);
    assert_eq!(
        denylist_of(home.path(), &dir(home.path()).join("server02.pem")),
        vec![serial]
    );
}

#[test]
fn inspect_client_shows_the_claims() {
    let home = tempfile::tempdir().expect("tempdir");
    let d = dir(home.path());
    ok(home.path(), &["new", "ca"]);
    let out = ok(
        home.path(),
        &["new", "client", "-n", "orders=r", "-n", "reports=rw", "--out", "x"],
    );
    assert!(out.contains("orders=r,reports=rw"), "{out}");
    let shown = ok(home.path(), &["inspect", "client", "--in", "x"]);
    let claims = shown
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("claims:"))
        .unwrap_or_else(|| panic!("no claims line:\n{shown}"));
    assert_eq!(claims.trim(), "orders=r, reports=rw", "{shown}");
    assert!(shown.contains("key usage:    clientAuth"), "{shown}");
    assert!(!shown.contains("PRIVATE KEY"), "{shown}");

    // Without --in, inspect finds the bundle a client would use.
    ok(home.path(), &["new", "client", "--cn", "admin", "--rw-all"]);
    let shown = ok(home.path(), &["inspect", "client"]);
    assert!(
        shown.contains(&format!("client bundle {}", d.join("client.pem").display())),
        "{shown}"
    );
    assert!(shown.contains("ALL=rw"), "{shown}");
    assert!(shown.contains("identity:     admin#"), "{shown}");
}

#[test]
fn inspect_json_has_a_stable_shape() {
    let home = fresh_set();
    let d = dir(home.path());
    let server = inspect_json(home.path(), "server", &d.join("server.pem"));
    assert_eq!(server["kind"], "server");
    assert_eq!(server["storage_key"], true);
    assert_eq!(server["denylist"], serde_json::json!([]));
    assert_eq!(
        server["certificate"]["extended_key_usage"],
        serde_json::json!(["serverAuth"])
    );
    assert_eq!(server["certificate"]["is_ca"], false);
    assert_eq!(server["ca_certificates"][0]["subject"], "CN=lockd-ca");
    let not_after = server["certificate"]["not_after"].as_str().expect("date");
    assert!(not_after.ends_with('Z') && not_after.len() == 20, "{not_after}");
    assert!(server["certificate"]["not_after_unix"].as_i64().expect("unix") > 0);

    let client = inspect_json(home.path(), "client", &d.join("client.pem"));
    assert_eq!(client["kind"], "client");
    assert_eq!(client["claims"], serde_json::json!({"default": "rw"}));
    assert_eq!(client["claims_error"], Value::Null);
    let serial = client["certificate"]["serial"].as_str().expect("serial");
    assert_eq!(client["identity"], format!("lockd-client#{serial}"));
    assert!(client.get("storage_key").is_none());
    let text = client.to_string();
    assert!(!text.contains("PRIVATE KEY"), "{text}");
}

#[test]
fn verify_passes_on_a_fresh_set() {
    let home = fresh_set();
    let out = ok(home.path(), &["verify", "server"]);
    assert!(out.contains("ok   issuer match"), "{out}");
    assert!(out.contains("ok   storage key"), "{out}");
    assert!(!out.contains("FAIL"), "{out}");
    let out = ok(home.path(), &["verify", "client"]);
    for check in [
        "validity",
        "key usage",
        "key match",
        "signature",
        "issuer match",
        "server trust",
        "denylist",
    ] {
        assert!(out.contains(&format!("ok   {check}:")), "{check} missing:\n{out}");
    }
}

#[test]
fn verify_client_catches_a_client_from_another_ca() {
    let home = fresh_set();
    ok(home.path(), &["new", "ca", "--out", "other-ca.pem"]);
    ok(
        home.path(),
        &["new", "client", "--ca-in", "other-ca.pem", "--out", "stranger.pem"],
    );
    let run = fails(home.path(), &["verify", "client", "--in", "stranger.pem"], 1);
    assert!(run.stdout.contains("FAIL issuer match"), "{}", run.stdout);
    assert!(run.stdout.contains("FAIL server trust"), "{}", run.stdout);
    assert!(
        run.stdout.contains("ok   signature"),
        "its own CA did sign it: {}",
        run.stdout
    );
    assert_eq!(
        run.stderr.trim(),
        "lockd: client bundle stranger.pem failed 2 check(s): issuer match, server trust"
    );
    // And the server bundle does not match the other CA either.
    let run = fails(home.path(), &["verify", "server", "--ca-in", "other-ca.pem"], 1);
    assert!(run.stdout.contains("FAIL issuer match"), "{}", run.stdout);
}

#[test]
fn verify_client_catches_a_certificate_without_client_auth() {
    let home = fresh_set();
    let ca = CaBundle::load(&dir(home.path()).join("ca.pem")).expect("ca bundle");
    // Sign a server-only certificate with the real CA key, under the CA's name.
    let ca_key = rcgen::KeyPair::from_pem(&ca.key_pem).expect("ca key");
    let mut ca_params = rcgen::CertificateParams::default();
    ca_params.distinguished_name = rcgen::DistinguishedName::new();
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "lockd-ca");
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("params");
    params.is_ca = rcgen::IsCa::ExplicitNoCa;
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(&key, &issuer).expect("signed");
    let file = home.path().join("server-only.pem");
    fs::write(&file, format!("{}{}{}", ca.cert_pem, cert.pem(), key.serialize_pem())).expect("write");

    let run = fails(home.path(), &["verify", "client", "--in", path_str(&file)], 1);
    assert!(run.stdout.contains("FAIL key usage"), "{}", run.stdout);
    assert!(
        run.stdout.contains("ok   signature"),
        "signed by the real CA: {}",
        run.stdout
    );
    assert!(run.stdout.contains("ok   issuer match"), "{}", run.stdout);
    assert!(run.stderr.contains("failed 1 check(s): key usage"), "{}", run.stderr);
}

#[test]
fn a_revoked_client_fails_verify_and_revoke_propagates() {
    let home = fresh_set();
    let d = dir(home.path());
    ok(home.path(), &["new", "server"]);
    let (server, server02) = (d.join("server.pem"), d.join("server02.pem"));
    let serial = serial_of(home.path(), "client", &d.join("client.pem"));

    // Upper case with colons, as openssl prints it, is read the same.
    let upper: Vec<char> = serial.to_uppercase().chars().collect();
    let spelled = upper
        .chunks(2)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join(":");
    let out = ok(home.path(), &["revoke", "client", &spelled]);
    assert!(out.contains(&format!("updated {}", server.display())), "{out}");
    assert!(out.contains(&format!("updated {}", server02.display())), "{out}");
    assert!(out.contains("no restart"), "{out}");
    assert_eq!(denylist_of(home.path(), &server), vec![serial.clone()]);
    assert_eq!(denylist_of(home.path(), &server02), vec![serial.clone()]);
    assert_eq!(mode(&server), 0o600);
    assert_eq!(mode(&server02), 0o600);

    for target in [&server, &server02] {
        let run = fails(home.path(), &["verify", "client", "--server-in", path_str(target)], 1);
        assert!(run.stdout.contains("FAIL denylist"), "{}", run.stdout);
        assert!(run.stdout.contains(&serial), "{}", run.stdout);
        assert!(run.stderr.contains("failed 1 check(s): denylist"), "{}", run.stderr);
    }
    // Revoking again changes nothing and says so.
    let out = ok(home.path(), &["revoke", "client", &serial]);
    assert!(out.contains(&format!("unchanged {}", server.display())), "{out}");

    // --propagate=false touches only the named bundle.
    ok(home.path(), &["new", "client"]);
    let second = serial_of(home.path(), "client", &d.join("client02.pem"));
    ok(home.path(), &["revoke", "client", "--propagate=false", &second]);
    assert!(denylist_of(home.path(), &server).contains(&second));
    assert!(!denylist_of(home.path(), &server02).contains(&second));
    // Other clients still pass.
    let run = auth(
        home.path(),
        &["verify", "client", "--in", path_str(&d.join("client02.pem"))],
    );
    assert_eq!(run.code, Some(1), "client02 is revoked on server.pem");
    let run = auth(
        home.path(),
        &[
            "verify",
            "client",
            "--in",
            path_str(&d.join("client02.pem")),
            "--server-in",
            path_str(&server02),
        ],
    );
    assert_eq!(run.code, Some(0), "{}", run.stdout);
}

#[test]
fn revoke_updates_what_it_can_and_fails_on_an_unreadable_bundle() {
    let home = fresh_set();
    let d = dir(home.path());
    ok(home.path(), &["new", "server"]);
    let broken = d.join("server03.pem");
    fs::write(&broken, "not a bundle\n").expect("write");
    let run = fails(home.path(), &["revoke", "client", "abc123"], 1);
    assert!(
        run.stdout.contains(&format!("skipped {}", broken.display())),
        "{}",
        run.stdout
    );
    assert!(run.stderr.contains(path_str(&broken)), "{}", run.stderr);
    assert_eq!(
        denylist_of(home.path(), &d.join("server.pem")),
        vec!["abc123".to_string()]
    );
    assert_eq!(
        denylist_of(home.path(), &d.join("server02.pem")),
        vec!["abc123".to_string()]
    );
    assert_eq!(fs::read_to_string(&broken).expect("read"), "not a bundle\n");
}

#[test]
fn revoke_with_out_leaves_the_input_alone() {
    let home = fresh_set();
    let server = dir(home.path()).join("server.pem");
    let before = fs::read_to_string(&server).expect("read");
    let copy = home.path().join("copy.pem");
    ok(home.path(), &["revoke", "client", "--out", path_str(&copy), "ff"]);
    assert_eq!(fs::read_to_string(&server).expect("read"), before);
    assert_eq!(denylist_of(home.path(), &copy), vec!["ff".to_string()]);
    assert_eq!(mode(&copy), 0o600);
}

#[test]
fn bad_values_are_usage_errors() {
    let home = fresh_set();
    let server = dir(home.path()).join("server.pem");
    let before = fs::read_to_string(&server).expect("read");
    let run = fails(home.path(), &["revoke", "client", "ab", "not-hex"], 2);
    assert!(run.stderr.contains("\"not-hex\""), "{}", run.stderr);
    assert_eq!(fs::read_to_string(&server).expect("read"), before, "nothing revoked");
    let run = fails(home.path(), &["revoke", "client", "--propagate=perhaps", "ab"], 2);
    assert!(run.stderr.contains("invalid --propagate"), "{}", run.stderr);

    let run = fails(home.path(), &["new", "client", "-n", "bad ns=r"], 2);
    assert!(
        run.stderr.starts_with("lockd: invalid --namespace \"bad ns=r\""),
        "{}",
        run.stderr
    );
    let run = fails(home.path(), &["new", "client", "-n", "orders=x"], 2);
    assert!(run.stderr.contains("invalid --namespace"), "{}", run.stderr);
    let run = fails(home.path(), &["new", "server", "--hosts", "a host"], 2);
    assert!(run.stderr.contains("invalid --hosts"), "{}", run.stderr);
    let run = fails(home.path(), &["new", "ca", "--out", "x.pem", "--valid-for", "1y"], 2);
    assert!(run.stderr.contains("invalid --valid-for"), "{}", run.stderr);
    assert!(!home.path().join("x.pem").exists());
    fails(home.path(), &["inspect", "server", "--output", "yaml"], 2);
    assert!(
        !dir(home.path()).join("client02.pem").exists(),
        "nothing written on usage errors"
    );
}

#[test]
fn missing_files_and_home_are_explained() {
    let home = tempfile::tempdir().expect("tempdir");
    let run = fails(home.path(), &["new", "server"], 1);
    assert!(run.stderr.contains("lockd auth new ca"), "{}", run.stderr);
    assert!(run.stderr.contains("--ca-in"), "{}", run.stderr);
    let run = fails(home.path(), &["verify", "client"], 1);
    assert!(run.stderr.contains("no client bundle"), "{}", run.stderr);

    // No HOME at all: the default paths do not exist, and the message
    // names the flag that replaces them.
    let mut cmd = Command::new(BIN);
    cmd.env_clear().current_dir(home.path()).args(["auth", "new", "ca"]);
    let run = exec(cmd);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(
        run.stderr.contains("$HOME is not set") && run.stderr.contains("--out"),
        "{}",
        run.stderr
    );
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .current_dir(home.path())
        .args(["auth", "new", "ca", "--out", "ca.pem"]);
    assert_eq!(exec(cmd).code, Some(0));
    assert!(home.path().join("ca.pem").exists());
}

#[test]
fn help_has_examples_and_says_what_matters() {
    let home = tempfile::tempdir().expect("tempdir");
    let mut cmd = lockd(home.path());
    cmd.args(["--help"]);
    let out = exec(cmd).stdout;
    let listed = out.lines().find(|l| l.trim_start().starts_with("auth "));
    assert!(
        listed.is_some_and(|l| l.contains("Create, inspect, verify and revoke certificates and bundles for mTLS")),
        "{out}"
    );
    for args in [
        &["auth", "--help"][..],
        &["auth", "new", "--help"],
        &["auth", "new", "ca", "--help"],
        &["auth", "new", "server", "--help"],
        &["auth", "new", "client", "--help"],
        &["auth", "inspect", "--help"],
        &["auth", "inspect", "server", "--help"],
        &["auth", "inspect", "client", "--help"],
        &["auth", "verify", "--help"],
        &["auth", "verify", "server", "--help"],
        &["auth", "verify", "client", "--help"],
        &["auth", "revoke", "--help"],
        &["auth", "revoke", "client", "--help"],
    ] {
        let mut cmd = lockd(home.path());
        cmd.args(args);
        let run = exec(cmd);
        assert_eq!(run.code, Some(0), "{args:?}: {}", run.stderr);
        assert!(run.stdout.contains("Examples:"), "{args:?}:\n{}", run.stdout);
    }
    let mut cmd = lockd(home.path());
    cmd.args(["auth", "revoke", "client", "--help"]);
    let out = exec(cmd).stdout;
    assert!(out.contains("no restart is needed"), "{out}");
    let mut cmd = lockd(home.path());
    cmd.args(["auth", "inspect", "server", "--help"]);
    assert!(exec(cmd).stdout.contains("--output json"));
}
