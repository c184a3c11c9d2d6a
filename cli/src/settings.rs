//! The table of server settings.
//!
//! Each server setting can come from a flag, a `LOCKD_*` environment
//! variable, a key of the YAML config file or a built-in default. Keeping
//! the flag name, variable, default and explanation in one table means the
//! clap flags, the config-file key check and the `config gen` template can
//! never disagree about which settings exist or what they default to.

use std::path::PathBuf;

use clap::{Arg, ArgAction};

/// How a setting's value is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Takes a value (`--listen :9341`); YAML strings and numbers.
    Text,
    /// A switch (`--disable-mtls`, `--disable-mtls=false`); YAML booleans.
    Switch,
}

/// Where a setting's default comes from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum DefaultValue {
    /// A fixed value.
    Fixed(&'static str),
    /// A path under `$HOME`, prefixed by a scheme (`disk://` + `$HOME/.lockd/data`).
    UnderHome {
        /// Text placed before the absolute path.
        prefix: &'static str,
        /// Path relative to `$HOME`.
        rel: &'static str,
    },
}

/// One server setting.
#[derive(Debug)]
pub(crate) struct Setting {
    /// Flag name without dashes; also the config-file key.
    pub(crate) key: &'static str,
    /// Environment variable (`LOCKD_` + upper-cased key, `-` → `_`).
    pub(crate) env: &'static str,
    /// Optional one-letter flag.
    pub(crate) short: Option<char>,
    /// Placeholder shown in `--help`.
    pub(crate) value_name: &'static str,
    /// Text or switch.
    pub(crate) kind: Kind,
    /// Built-in default.
    pub(crate) default: DefaultValue,
    /// One-line explanation, shared by `--help` and the config template.
    pub(crate) help: &'static str,
}

const fn text(
    key: &'static str,
    env: &'static str,
    value_name: &'static str,
    default: DefaultValue,
    help: &'static str,
) -> Setting {
    Setting {
        key,
        env,
        short: None,
        value_name,
        kind: Kind::Text,
        default,
        help,
    }
}

const fn switch(key: &'static str, env: &'static str, help: &'static str) -> Setting {
    Setting {
        key,
        env,
        short: None,
        value_name: "BOOL",
        kind: Kind::Switch,
        default: DefaultValue::Fixed("false"),
        help,
    }
}

use DefaultValue::{Fixed, UnderHome};

/// Every server setting, in the order `--help` and `config gen` show them.
pub(crate) static SETTINGS: &[Setting] = &[
    text(
        "listen",
        "LOCKD_LISTEN",
        "ADDR",
        Fixed(":9341"),
        "Address to serve on: host:port for TCP (\":9341\" = every interface, port 0 = any free port) or a socket path with --listen-proto unix",
    ),
    text(
        "listen-proto",
        "LOCKD_LISTEN_PROTO",
        "PROTO",
        Fixed("tcp"),
        "Listener kind: tcp (IPv4 and IPv6), tcp4, tcp6 or unix",
    ),
    text(
        "store",
        "LOCKD_STORE",
        "URL",
        UnderHome {
            prefix: "disk://",
            rel: ".lockd/data",
        },
        "Storage backend: mem:// (in memory, gone on exit) or disk:///absolute/dir (created 0700 if missing); s3://, aws:// and azure:// are not supported yet",
    ),
    Setting {
        short: Some('n'),
        ..text(
            "default-namespace",
            "LOCKD_DEFAULT_NAMESPACE",
            "NAME",
            Fixed("default"),
            "Namespace used by requests that name none",
        )
    },
    text(
        "default-ttl",
        "LOCKD_DEFAULT_TTL",
        "DURATION",
        Fixed("30s"),
        "Lease TTL granted when a request asks for ttl_seconds <= 0 (whole seconds)",
    ),
    text(
        "max-ttl",
        "LOCKD_MAX_TTL",
        "DURATION",
        Fixed("30m"),
        "Longest lease TTL; larger requests are clamped to it (whole seconds, at least --default-ttl)",
    ),
    text(
        "acquire-block",
        "LOCKD_ACQUIRE_BLOCK",
        "DURATION",
        Fixed("60s"),
        "How long an acquire with a negative block_seconds (other than -1) waits for the lease",
    ),
    text(
        "json-max",
        "LOCKD_JSON_MAX",
        "SIZE",
        Fixed("100MiB"),
        "Largest JSON request body; bigger bodies are rejected with 400 invalid_body",
    ),
    text(
        "payload-spool-mem",
        "LOCKD_PAYLOAD_SPOOL_MEM",
        "SIZE",
        Fixed("4MiB"),
        "Request bodies up to this size are buffered in memory; larger ones are spooled to a temporary file",
    ),
    text(
        "http2-max-concurrent-streams",
        "LOCKD_HTTP2_MAX_CONCURRENT_STREAMS",
        "N",
        Fixed("1024"),
        "Most concurrent HTTP/2 streams one connection may open",
    ),
    text(
        "max-in-flight",
        "LOCKD_MAX_IN_FLIGHT",
        "N",
        Fixed("4096"),
        "Most requests handled at once; requests beyond it get 429 throttled with Retry-After",
    ),
    text(
        "shutdown-timeout",
        "LOCKD_SHUTDOWN_TIMEOUT",
        "DURATION",
        Fixed("10s"),
        "On SIGTERM/SIGINT, how long in-flight requests may take to finish before connections are closed",
    ),
    switch(
        "disable-mtls",
        "LOCKD_DISABLE_MTLS",
        "Serve plain HTTP instead of mTLS (no client certificates, no namespace claims); for tests and trusted networks only",
    ),
    text(
        "bundle",
        "LOCKD_BUNDLE",
        "FILE",
        UnderHome {
            prefix: "",
            rel: ".lockd/server.pem",
        },
        "Server bundle (CA + server certificate + key, optional denylist and storage key); the default one is created with a CA and a client bundle on first start",
    ),
    switch(
        "disable-storage-encryption",
        "LOCKD_DISABLE_STORAGE_ENCRYPTION",
        "Store values in plaintext even though the bundle holds a storage key (testing only; an encrypted store then refuses to open)",
    ),
    switch(
        "storage-encryption-snappy",
        "LOCKD_STORAGE_ENCRYPTION_SNAPPY",
        "Snappy-compress values before encrypting them (only with storage encryption on)",
    ),
    switch(
        "disable-h2c",
        "LOCKD_DISABLE_H2C",
        "Refuse cleartext HTTP/2 (prior knowledge) and serve HTTP/1.1 only",
    ),
    text(
        "logstore-io",
        "LOCKD_LOGSTORE_IO",
        "MODE",
        Fixed("auto"),
        "disk:// write path: auto (io_uring where the kernel allows it), uring (fail if unavailable) or sync (pwritev + fdatasync)",
    ),
    text(
        "log-level",
        "LOCKD_LOG_LEVEL",
        "LEVEL",
        Fixed("info"),
        "Log level: trace, debug, info, warn or error (RUST_LOG, when set, takes precedence)",
    ),
    text(
        "log-format",
        "LOCKD_LOG_FORMAT",
        "FORMAT",
        Fixed("text"),
        "Log format on stderr: text or json (one object per line)",
    ),
];

/// Looks a setting up by its flag name / config key.
pub(crate) fn find(key: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.key == key)
}

/// `$HOME`, if set and not empty.
pub(crate) fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME").filter(|h| !h.is_empty()).map(PathBuf::from)
}

impl Setting {
    /// The clap argument id (the key with `-` → `_`).
    pub(crate) fn id(&self) -> String {
        self.key.replace('-', "_")
    }

    /// The default as text, resolved against `home`. `None` when the
    /// setting has no default or its default needs an unset `$HOME`.
    pub(crate) fn default_text(&self, home: Option<&std::path::Path>) -> Option<String> {
        match self.default {
            Fixed(v) => Some(v.to_string()),
            UnderHome { prefix, rel } => home.map(|h| format!("{prefix}{}", h.join(rel).display())),
        }
    }

    /// The clap argument for this setting.
    pub(crate) fn arg(&self, home: Option<&std::path::Path>) -> Arg {
        let mut arg = Arg::new(self.id())
            .long(self.key)
            .env(self.env)
            .value_name(self.value_name)
            .help(self.help)
            .action(ArgAction::Set);
        if let Some(c) = self.short {
            arg = arg.short(c);
        }
        if self.kind == Kind::Switch {
            // `--disable-h2c` alone means true; `--disable-h2c=false`
            // overrides a `true` from the config file.
            arg = arg.num_args(0..=1).require_equals(true).default_missing_value("true");
        }
        if let Some(d) = self.default_text(home) {
            arg = arg.default_value(d);
        }
        arg
    }
}

/// Default config file: `$HOME/.lockd/config.yaml`.
pub(crate) fn default_config_path(home: Option<&std::path::Path>) -> Option<PathBuf> {
    home.map(|h| h.join(".lockd").join("config.yaml"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_names_follow_the_lockd_rule() {
        for s in SETTINGS {
            let want = format!("LOCKD_{}", s.key.to_uppercase().replace('-', "_"));
            assert_eq!(s.env, want, "setting {}", s.key);
        }
    }

    #[test]
    fn keys_are_unique_and_helps_are_single_lines() {
        let mut keys: Vec<_> = SETTINGS.iter().map(|s| s.key).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), SETTINGS.len());
        for s in SETTINGS {
            assert!(!s.help.contains('\n'), "{}", s.key);
        }
    }

    #[test]
    fn store_default_lives_under_home() {
        let store = find("store").map(|s| s.default_text(Some(std::path::Path::new("/home/ann"))));
        assert_eq!(store, Some(Some("disk:///home/ann/.lockd/data".to_string())));
        let without_home = find("store").map(|s| s.default_text(None));
        assert_eq!(without_home, Some(None));
    }
}
