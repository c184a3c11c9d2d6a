use std::path::{Path, PathBuf};

use super::*;
use crate::config_file;

fn home() -> &'static Path {
    Path::new("/home/tess")
}

/// Parses `args` and merges them with a config file holding `yaml`.
fn resolve(args: &[&str], yaml: &str) -> Result<ServerSettings, CliError> {
    resolve_with_home(Some(home()), args, yaml)
}

fn resolve_with_home(home: Option<&Path>, args: &[&str], yaml: &str) -> Result<ServerSettings, CliError> {
    let mut argv = vec!["lockd"];
    argv.extend_from_slice(args);
    let matches = crate::command(home)
        .try_get_matches_from(argv)
        .expect("arguments parse");
    let file = config_file::parse(Path::new("/etc/lockd.yaml"), yaml).expect("yaml parses");
    ServerSettings::from_raw(&RawSettings::merge(&matches, Some(&file)))
}

fn error_line(args: &[&str], yaml: &str) -> String {
    let err = resolve(args, yaml).expect_err("should be rejected");
    assert_eq!(err.exit_code(), 2, "{err}");
    let msg = err.to_string();
    assert!(!msg.contains('\n'), "one line: {msg}");
    msg
}

#[test]
fn precedence_is_flag_then_env_then_file_then_default() {
    use ValueSource::{CommandLine, DefaultValue, EnvVariable};
    let flag = pick(Some(("1s", CommandLine)), Some("3s"));
    assert_eq!(flag, Some(("1s".to_string(), Origin::Flag)));
    let env = pick(Some(("2s", EnvVariable)), Some("3s"));
    assert_eq!(env, Some(("2s".to_string(), Origin::Env)));
    let file = pick(Some(("30s", DefaultValue)), Some("3s"));
    assert_eq!(file, Some(("3s".to_string(), Origin::File)));
    let default = pick(Some(("30s", DefaultValue)), None);
    assert_eq!(default, Some(("30s".to_string(), Origin::Default)));
    assert_eq!(pick(None, Some("/b.pem")), Some(("/b.pem".to_string(), Origin::File)));
    assert_eq!(pick(None, None), None);
}

#[test]
fn defaults_match_lockd() {
    let s = resolve(&[], "").expect("defaults are valid");
    assert_eq!(
        s.listen,
        Listen::Tcp {
            addr: ":9341".into(),
            family: Family::Any
        }
    );
    assert_eq!(s.store, Store::Disk(PathBuf::from("/home/tess/.lockd/data")));
    assert_eq!(s.default_namespace, "default");
    assert_eq!((s.default_ttl_seconds, s.max_ttl_seconds), (30, 1800));
    assert_eq!(s.acquire_block, Duration::from_secs(60));
    assert_eq!((s.json_max, s.payload_spool_mem), (100 << 20, 4 << 20));
    assert_eq!(s.http2_max_concurrent_streams, 1024);
    assert_eq!(s.max_in_flight, 4096);
    assert_eq!(s.shutdown_timeout, Duration::from_secs(10));
    assert!(!s.disable_mtls && s.h2c);
    assert_eq!(s.bundle, Some(PathBuf::from("/home/tess/.lockd/server.pem")));
    assert!(!s.disable_storage_encryption && !s.storage_encryption_snappy);
    assert_eq!(s.logstore_io, lockd_logstore::IoMode::Auto);
    assert_eq!((s.log_level, s.log_format), (LevelFilter::INFO, LogFormat::Text));
}

#[test]
fn file_fills_what_flags_leave_at_default() {
    let yaml = "json-max: 1MiB\ndefault-ttl: 45\nstore: mem://\nlog-format: json\n";
    let s = resolve(&["--json-max", "2MiB"], yaml).expect("valid");
    assert_eq!(s.json_max, 2 << 20, "flag beats file");
    assert_eq!(s.default_ttl_seconds, 45, "file beats default");
    assert_eq!(s.store, Store::Mem);
    assert_eq!(s.log_format, LogFormat::Json);
    assert_eq!(s.max_ttl_seconds, 1800, "default when neither sets it");
}

#[test]
fn switches_can_be_turned_off_over_the_file() {
    let on = resolve(&[], "disable-h2c: true\ndisable-mtls: true\n").expect("valid");
    assert!(!on.h2c && on.disable_mtls);
    let off = resolve(&["--disable-h2c=false"], "disable-h2c: true\n").expect("valid");
    assert!(off.h2c);
    let bare = resolve(&["--disable-h2c"], "").expect("valid");
    assert!(!bare.h2c);
}

#[test]
fn short_flags_and_unix_listener() {
    let s = resolve(
        &["-n", "Team-A", "--listen-proto", "unix", "--listen", "/run/l.sock"],
        "",
    )
    .expect("valid");
    assert_eq!(s.default_namespace, "team-a");
    assert_eq!(s.listen, Listen::Unix(PathBuf::from("/run/l.sock")));
    let v6 = resolve(&["--listen-proto", "tcp6", "--listen", "[::1]:0"], "").expect("valid");
    assert_eq!(
        v6.listen,
        Listen::Tcp {
            addr: "[::1]:0".into(),
            family: Family::V6
        }
    );
}

#[test]
fn bad_flag_values_name_the_flag() {
    let msg = error_line(&["--json-max", "12XB"], "");
    assert!(
        msg.starts_with("invalid --json-max \"12XB\": unknown unit \"XB\""),
        "{msg}"
    );
    let msg = error_line(&["--default-ttl", "soon"], "");
    assert!(msg.starts_with("invalid --default-ttl \"soon\": "), "{msg}");
    let msg = error_line(&["--default-ttl", "1500ms"], "");
    assert!(msg.contains("whole seconds"), "{msg}");
    let msg = error_line(&["--log-level", "loud"], "");
    assert!(msg.contains("--log-level") && msg.contains("trace, debug"), "{msg}");
    let msg = error_line(&["--listen", "localhost"], "");
    assert!(
        msg.starts_with("invalid --listen \"localhost\": expected host:port"),
        "{msg}"
    );
    let msg = error_line(&["--listen", ":99999"], "");
    assert!(msg.contains("--listen"), "{msg}");
    let msg = error_line(&["--listen-proto", "udp"], "");
    assert!(msg.contains("--listen-proto"), "{msg}");
    let msg = error_line(&["--http2-max-concurrent-streams", "0"], "");
    assert!(msg.contains("at least 1"), "{msg}");
    let msg = error_line(&["--logstore-io", "mmap"], "");
    assert!(msg.contains("--logstore-io") && msg.contains("uring"), "{msg}");
    let msg = error_line(&["--json-max", "0"], "");
    assert!(msg.contains("at least 1 byte"), "{msg}");
    let msg = error_line(&["-n", "bad/ns"], "");
    assert!(msg.contains("--default-namespace"), "{msg}");
    let msg = error_line(&["--disable-mtls=perhaps"], "");
    assert!(msg.contains("--disable-mtls") && msg.contains("true or false"), "{msg}");
}

#[test]
fn bad_file_values_say_they_came_from_the_file() {
    let msg = error_line(&[], "acquire-block: forever\n");
    assert!(
        msg.starts_with("invalid --acquire-block \"forever\" (from config file /etc/lockd.yaml): "),
        "{msg}"
    );
}

#[test]
fn max_ttl_must_cover_default_ttl() {
    let msg = error_line(&["--default-ttl", "2m", "--max-ttl", "1m"], "");
    assert_eq!(msg, "invalid --max-ttl \"1m\": must be at least --default-ttl (2m0s)");
    assert!(
        resolve(&["--default-ttl", "1m", "--max-ttl", "60"], "").is_ok(),
        "equal is fine"
    );
}

#[test]
fn store_urls() {
    let disk = resolve(&["--store", "disk:///var/lib/lockd"], "").expect("valid");
    assert_eq!(disk.store, Store::Disk(PathBuf::from("/var/lib/lockd")));
    assert_eq!(disk.store_url, "disk:///var/lib/lockd");
    for (url, want) in [
        ("s3://localhost:9000/bucket", "s3:// stores are not supported yet"),
        ("azure://acct/c", "azure:// stores are not supported yet"),
        ("disk://relative/dir", "absolute"),
        ("disk://", "absolute"),
        ("mem://x", "no path"),
        ("ftp://x", "unknown store scheme ftp://"),
        ("/var/lib/lockd", "not a store URL"),
    ] {
        let msg = error_line(&["--store", url], "");
        assert!(msg.starts_with(&format!("invalid --store {url:?}: ")), "{msg}");
        assert!(msg.contains(want), "{url}: {msg}");
    }
}

#[test]
fn without_home_the_store_must_be_given() {
    let err = resolve_with_home(None, &[], "").expect_err("no default store");
    assert!(err.to_string().contains("$HOME is not set"), "{err}");
    let s = resolve_with_home(None, &["--store", "mem://"], "").expect("given store");
    assert_eq!(s.store, Store::Mem);
}
