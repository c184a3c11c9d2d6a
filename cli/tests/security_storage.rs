//! At-rest encryption end to end: documents written through the real
//! server land on disk unreadable, a store only opens with the key it was
//! written with, tampering is caught by `lockd verify store` and by the
//! start-up check, and the permission check refuses a loose data directory.
//!
//! Each test bootstraps its own bundles with `lockd --bootstrap DIR` under
//! a temporary `HOME` and passes `--bundle` and `--store` explicitly.

mod support;

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use support::{lockd, ok_stdout, output, put_doc, run, Server};

/// Segment file layout (docs/logstore-format.md): a 32-byte file header,
/// then records with a 20-byte header each.
const SEGMENT_HEADER: usize = 32;
const RECORD_HEADER: usize = 20;
const KIND_PUT: u8 = 1;
const FLAG_ENCRYPTED: u8 = 0b10;

/// A fresh `lockd --bootstrap` directory (CA, server and client bundles).
fn bootstrap(home: &Path, name: &str) -> PathBuf {
    let dir = home.join(name);
    let mut cmd = lockd(home);
    cmd.arg("--bootstrap").arg(&dir);
    let (status, err) = run(cmd);
    assert!(status.success(), "{err}");
    dir
}

fn store_url(data: &Path) -> String {
    format!("disk://{}", data.display())
}

/// The server command for `data`, secured by the bundles in `bundles`.
fn server_cmd(home: &Path, bundles: &Path, data: &Path, extra: &[&str]) -> Command {
    let mut cmd = lockd(home);
    cmd.args(["--listen", "127.0.0.1:0", "--store", &store_url(data), "--bundle"])
        .arg(bundles.join("server.pem"))
        .args(extra);
    cmd
}

/// Starts a server that must come up; returns it, its address and its start line.
fn start(home: &Path, bundles: &Path, data: &Path, extra: &[&str]) -> (Server, String, String) {
    let mut server = Server::start(server_cmd(home, bundles, data, extra));
    let addr = server.addr();
    let line = server.seen.last().expect("start line").clone();
    (server, addr, line)
}

/// Starts a server that must refuse to start; returns its exit code and stderr.
fn refused_start(home: &Path, bundles: &Path, data: &Path, extra: &[&str]) -> (Option<i32>, String) {
    let mut server = Server::start(server_cmd(home, bundles, data, extra));
    let (status, log) = server.exited();
    (status.code(), log)
}

fn client(home: &Path, addr: &str, bundles: &Path, args: &[&str]) -> Command {
    let mut cmd = lockd(home);
    cmd.arg("client")
        .args(args)
        .env("LOCKD_CLIENT_SERVER", addr)
        .env("LOCKD_CLIENT_BUNDLE", bundles.join("client.pem"));
    cmd
}

/// Stores `doc` as the public state of `key` in the default namespace,
/// through the client of the bundles in `bundles`.
fn put_default(home: &Path, addr: &str, bundles: &Path, key: &str, doc: &str) {
    put_doc(home, |args| client(home, addr, bundles, args), "default", key, doc);
}

/// 64 random hex digits, repeated so that any copy of the document on
/// disk is long and unmistakable.
fn secret() -> String {
    let hex: String = (0..4)
        .map(|_| format!("{:016x}", RandomState::new().build_hasher().finish()))
        .collect();
    hex.repeat(4)
}

/// A document that carries `secret` in a string field.
fn secret_doc(secret: &str) -> String {
    format!("{{\"card\": \"{secret}\", \"n\": 1}}")
}

/// Standard base64 (with padding), for looking for encoded copies.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for group in bytes.chunks(3) {
        let n = group
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=group.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
        }
        out.extend(std::iter::repeat_n('=', 3 - group.len()));
    }
    out
}

/// What a copy of `secret` could look like on disk: the text itself, and
/// its base64 at each of the three alignments it could have inside a
/// longer encoded value (only whole 3-byte groups, so no padding).
fn disguises(secret: &str) -> Vec<Vec<u8>> {
    let bytes = secret.as_bytes();
    let mut all = vec![bytes.to_vec()];
    for shift in 0..3 {
        let whole = (bytes.len() - shift) / 3 * 3;
        all.push(base64(&bytes[shift..shift + whole]).into_bytes());
    }
    all
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            found.extend(files_under(&path));
        } else {
            found.push(path);
        }
    }
    found
}

/// `bytes` without its zero tail. Segments are preallocated and mostly
/// zeros, and no needle contains a zero byte, so only the head can match;
/// skipping the tail eight bytes at a time keeps the scan fast in a debug
/// build.
fn written_part(bytes: &[u8]) -> &[u8] {
    let mut end = bytes.len();
    while end >= 8 && bytes[end - 8..end] == [0; 8] {
        end -= 8;
    }
    while end > 0 && bytes[end - 1] == 0 {
        end -= 1;
    }
    &bytes[..end]
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The files under `dir` that hold any of `needles`.
fn files_holding(dir: &Path, needles: &[Vec<u8>]) -> Vec<PathBuf> {
    files_under(dir)
        .into_iter()
        .filter(|f| {
            let bytes = std::fs::read(f).expect("read file");
            let head = written_part(&bytes);
            needles.iter().any(|n| contains(head, n))
        })
        .collect()
}

#[test]
fn encrypted_store_keeps_documents_unreadable_on_disk() {
    let home = tempfile::tempdir().expect("tempdir");
    let bundles = bootstrap(home.path(), "bundles");
    let secret = secret();
    // (data directory, server flags, start line must say, plaintext on disk?)
    let cases: [(&str, &[&str], &str, bool); 3] = [
        ("encrypted", &[], "encryption=on (XChaCha20-Poly1305)", false),
        (
            "snappy",
            &["--storage-encryption-snappy"],
            "encryption=on (XChaCha20-Poly1305, snappy)",
            false,
        ),
        // The control: proves the scan finds the document when it is there.
        (
            "plaintext",
            &["--disable-storage-encryption"],
            "encryption=off (--disable-storage-encryption)",
            true,
        ),
    ];
    for (name, flags, note, visible) in cases {
        let data = home.path().join(name);
        let (mut server, addr, line) = start(home.path(), &bundles, &data, flags);
        assert!(line.contains(note), "{name}: {line}");
        put_default(home.path(), &addr, &bundles, "vault", &secret_doc(&secret));
        let out = output(client(
            home.path(),
            &addr,
            &bundles,
            &["get", "--public", "-k", "vault"],
        ));
        assert!(ok_stdout(&out).contains(&secret), "{name}: the document reads back");
        assert!(server.terminate().success(), "{name}");

        // The key names are not secret: finding one shows the scan reads
        // the files the records are in.
        let keys = files_holding(&data, &[b"d/default/vault/".to_vec()]);
        assert!(!keys.is_empty(), "{name}: no file holds the document's key");
        let leaks = files_holding(&data, &disguises(&secret));
        if visible {
            assert!(!leaks.is_empty(), "{name}: the control found no plaintext");
        } else {
            assert!(leaks.is_empty(), "{name}: the document is readable in {leaks:?}");
        }
    }
}

#[test]
fn a_store_opens_only_with_the_key_it_was_written_with() {
    let home = tempfile::tempdir().expect("tempdir");
    let first = bootstrap(home.path(), "first");
    let second = bootstrap(home.path(), "second");
    let data = home.path().join("data");
    let (mut server, addr, _) = start(home.path(), &first, &data, &[]);
    put_default(home.path(), &addr, &first, "k", "{\"a\":1}");
    assert!(server.terminate().success());
    let opening = format!("lockd: cannot open store in {}: ", data.display());

    let (code, log) = refused_start(home.path(), &second, &data, &[]);
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains(&opening), "{log}");
    assert!(log.contains("different root key"), "{log}");

    let (code, log) = refused_start(home.path(), &first, &data, &["--disable-storage-encryption"]);
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains(&opening), "{log}");
    assert!(log.contains("is encrypted"), "{log}");

    // The other way round: a plaintext store refuses a key.
    let plain = home.path().join("plain");
    let (mut server, _, _) = start(home.path(), &first, &plain, &["--disable-storage-encryption"]);
    assert!(server.terminate().success());
    let (code, log) = refused_start(home.path(), &first, &plain, &[]);
    assert_eq!(code, Some(1), "{log}");
    let opening = format!("lockd: cannot open store in {}: ", plain.display());
    assert!(log.contains(&opening), "{log}");
    assert!(log.contains("without encryption"), "{log}");

    // None of the refusals harmed the store: its own key still opens it.
    let (mut server, addr, _) = start(home.path(), &first, &data, &[]);
    let out = output(client(home.path(), &addr, &first, &["get", "--public", "-k", "k"]));
    assert_eq!(ok_stdout(&out), "{\"a\":1}");
    assert!(server.terminate().success());
}

/// Flips a byte in the middle of the value of every put record whose key
/// starts with `prefix`, and fixes the record's CRC the way someone who
/// knows the format would. Returns how many records were changed.
fn tamper(data: &Path, prefix: &[u8]) -> usize {
    let mut changed = 0;
    let segments = files_under(data)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "seg"));
    for path in segments {
        let mut bytes = std::fs::read(&path).expect("read segment");
        let mut at = SEGMENT_HEADER;
        let before = changed;
        while at + RECORD_HEADER <= bytes.len() && bytes[at..at + RECORD_HEADER].iter().any(|&b| b != 0) {
            let header = &bytes[at..at + RECORD_HEADER];
            let klen = usize::from(u16::from_le_bytes([header[12], header[13]]));
            let (kind, flags) = (header[14], header[15]);
            let vlen = u32::from_le_bytes([header[16], header[17], header[18], header[19]]) as usize;
            let end = at + RECORD_HEADER + klen + vlen;
            let key = &bytes[at + RECORD_HEADER..at + RECORD_HEADER + klen];
            if kind == KIND_PUT && key.starts_with(prefix) {
                assert_ne!(flags & FLAG_ENCRYPTED, 0, "the document record is encrypted");
                bytes[at + RECORD_HEADER + klen + vlen / 2] ^= 0x5a;
                let crc = crc32fast::hash(&bytes[at + 4..end]);
                bytes[at..at + 4].copy_from_slice(&crc.to_le_bytes());
                changed += 1;
            }
            at = end;
        }
        if changed > before {
            std::fs::write(&path, &bytes).expect("write segment");
        }
    }
    changed
}

/// `lockd verify store` for `data` with the bundles in `bundles`.
fn verify(home: &Path, bundles: &Path, data: &Path) -> (Option<i32>, String, String) {
    let mut cmd = lockd(home);
    cmd.args(["verify", "store", "--store", &store_url(data), "--bundle"])
        .arg(bundles.join("server.pem"));
    let out = output(cmd);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code(), stdout, stderr)
}

#[test]
fn tampered_ciphertext_is_caught_and_never_served() {
    let home = tempfile::tempdir().expect("tempdir");
    let bundles = bootstrap(home.path(), "bundles");
    let data = home.path().join("data");
    let secret = secret();
    let (mut server, addr, _) = start(home.path(), &bundles, &data, &[]);
    put_default(home.path(), &addr, &bundles, "ledger", &secret_doc(&secret));
    assert!(server.terminate().success());

    assert!(
        tamper(&data, b"d/default/ledger/") > 0,
        "no record of the document found"
    );

    let (code, stdout, stderr) = verify(home.path(), &bundles, &data);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    let fail = stdout
        .lines()
        .find(|l| l.starts_with("FAIL records: "))
        .unwrap_or_else(|| panic!("no FAIL line for the records: {stdout}"));
    assert!(fail.contains("d/default/ledger/"), "{fail}");
    assert!(fail.contains("integrity"), "{fail}");
    assert!(stderr.starts_with("lockd: "), "{stderr}");
    assert!(!stdout.contains(&secret) && !stderr.contains(&secret));

    let (code, log) = refused_start(home.path(), &bundles, &data, &[]);
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("store check failed"), "{log}");
    assert!(log.contains("integrity"), "{log}");
    assert!(!log.contains(&secret), "the server printed the tampered document");
}

#[test]
fn verify_store_passes_a_healthy_store_and_fails_loose_permissions() {
    let home = tempfile::tempdir().expect("tempdir");
    let bundles = bootstrap(home.path(), "bundles");
    let data = home.path().join("data");
    let (mut server, addr, _) = start(home.path(), &bundles, &data, &[]);
    put_default(home.path(), &addr, &bundles, "healthy", "{\"ok\":true}");
    assert!(server.terminate().success());

    let (code, stdout, stderr) = verify(home.path(), &bundles, &data);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines
            .first()
            .is_some_and(|l| l.starts_with("ok   open: ") && l.contains("encryption on")),
        "{stdout}"
    );
    for check in ["permissions", "round trip", "records"] {
        assert!(
            lines.iter().any(|l| l.starts_with(&format!("ok   {check}: "))),
            "{check}: {stdout}"
        );
    }
    assert!(!stdout.contains("FAIL"), "{stdout}");

    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let (code, stdout, stderr) = verify(home.path(), &bundles, &data);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    let fail = stdout
        .lines()
        .find(|l| l.starts_with("FAIL permissions: "))
        .unwrap_or_else(|| panic!("no FAIL line for the permissions: {stdout}"));
    assert!(fail.contains("0777"), "{fail}");
    assert!(
        stderr.starts_with("lockd: ") && stderr.contains("permissions"),
        "{stderr}"
    );

    let (code, log) = refused_start(home.path(), &bundles, &data, &[]);
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains("store check failed") && log.contains("permissions"),
        "{log}"
    );
}
