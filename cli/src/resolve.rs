//! From flags, environment, config file and defaults to typed settings.
//!
//! clap already applies "flag > environment > default". The config file
//! slots in between the environment and the default: a value clap took
//! from its default is replaced by the file's value when the file has the
//! key. All values stay text until that merge is done, then each is parsed
//! once, so a bad value is reported the same way wherever it came from.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::ArgMatches;
use tracing::level_filters::LevelFilter;

use crate::config_file::ConfigFile;
use crate::error::CliError;
use crate::parse;
use crate::settings::{self, Setting, SETTINGS};

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Origin {
    /// The command line.
    Flag,
    /// A `LOCKD_*` environment variable.
    Env,
    /// The config file.
    File,
    /// The built-in default.
    Default,
}

/// Picks one setting's value by precedence: flag > environment > config
/// file > default. `cli` is what clap resolved (value and source), `file`
/// the config file's value.
pub(crate) fn pick(cli: Option<(&str, ValueSource)>, file: Option<&str>) -> Option<(String, Origin)> {
    match (cli, file) {
        (Some((v, ValueSource::CommandLine)), _) => Some((v.to_string(), Origin::Flag)),
        (Some((v, ValueSource::EnvVariable)), _) => Some((v.to_string(), Origin::Env)),
        (_, Some(f)) => Some((f.to_string(), Origin::File)),
        (Some((v, _)), None) => Some((v.to_string(), Origin::Default)),
        (None, None) => None,
    }
}

/// Every setting's merged text value and origin.
#[derive(Debug, Default)]
pub(crate) struct RawSettings {
    values: BTreeMap<&'static str, (String, Origin)>,
    config_path: Option<PathBuf>,
}

impl RawSettings {
    /// Merges clap's matches with the config file.
    pub(crate) fn merge(matches: &ArgMatches, file: Option<&ConfigFile>) -> RawSettings {
        let mut raw = RawSettings {
            values: BTreeMap::new(),
            config_path: file.map(|f| f.path.clone()),
        };
        for s in SETTINGS {
            let id = s.id();
            let cli = matches
                .get_one::<String>(&id)
                .zip(matches.value_source(&id))
                .map(|(v, src)| (v.as_str(), src));
            if let Some(picked) = pick(cli, file.and_then(|f| f.get(s.key))) {
                raw.values.insert(s.key, picked);
            }
        }
        raw
    }

    fn get(&self, key: &str) -> Option<&(String, Origin)> {
        self.values.get(key)
    }

    fn invalid(&self, s: &Setting, reason: String) -> CliError {
        let (value, origin) = self.get(s.key).cloned().unwrap_or((String::new(), Origin::Default));
        let origin = match origin {
            Origin::Flag => String::new(),
            Origin::Env => format!(" (from {})", s.env),
            Origin::File => match &self.config_path {
                Some(p) => format!(" (from config file {})", p.display()),
                None => " (from the config file)".into(),
            },
            Origin::Default => " (built-in default)".into(),
        };
        CliError::InvalidValue {
            flag: s.key,
            value,
            origin,
            reason,
        }
    }

    /// Parses `key` with `f`, turning its reason into an error naming the
    /// flag. `Ok(None)` when the setting has no value.
    fn parsed<T>(&self, key: &str, f: impl FnOnce(&str) -> Result<T, String>) -> Result<Option<T>, CliError> {
        let Some(s) = settings::find(key) else {
            return Err(CliError::Missing(format!("internal: unknown setting {key}")));
        };
        match self.get(key) {
            None => Ok(None),
            Some((v, _)) => f(v).map(Some).map_err(|reason| self.invalid(s, reason)),
        }
    }

    fn required<T>(&self, key: &str, f: impl FnOnce(&str) -> Result<T, String>) -> Result<T, CliError> {
        self.parsed(key, f)?
            .ok_or_else(|| CliError::Missing(format!("--{key} has no value")))
    }
}

/// TCP address family of a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    /// IPv4 and IPv6.
    Any,
    /// IPv4 only.
    V4,
    /// IPv6 only.
    V6,
}

/// What to listen on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Listen {
    /// A TCP address (Go syntax: `:9341`, `127.0.0.1:0`, `[::1]:9341`).
    Tcp {
        /// host:port.
        addr: String,
        /// Address family.
        family: Family,
    },
    /// A Unix socket path.
    Unix(PathBuf),
}

/// Which backend `--store` selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Store {
    /// `mem://`.
    Mem,
    /// `disk:///abs/dir`.
    Disk(PathBuf),
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The server's settings, parsed and checked.
#[derive(Debug, Clone)]
pub(crate) struct ServerSettings {
    /// Listener.
    pub(crate) listen: Listen,
    /// Backend selection, and the URL as given (for the start log line).
    pub(crate) store: Store,
    /// `--store` as given.
    pub(crate) store_url: String,
    /// Namespace for requests naming none.
    pub(crate) default_namespace: String,
    /// Default lease TTL in seconds.
    pub(crate) default_ttl_seconds: i64,
    /// Maximum lease TTL in seconds.
    pub(crate) max_ttl_seconds: i64,
    /// Wait for negative block values.
    pub(crate) acquire_block: Duration,
    /// Largest JSON body.
    pub(crate) json_max: u64,
    /// In-memory spool threshold.
    pub(crate) payload_spool_mem: u64,
    /// HTTP/2 stream limit per connection.
    pub(crate) http2_max_concurrent_streams: u32,
    /// In-flight request limit.
    pub(crate) max_in_flight: usize,
    /// Drain time on shutdown.
    pub(crate) shutdown_timeout: Duration,
    /// Serve plain HTTP instead of mTLS.
    pub(crate) disable_mtls: bool,
    /// The server bundle; `None` only when `$HOME` is unset and none was given.
    pub(crate) bundle: Option<PathBuf>,
    /// Do not encrypt values even when the bundle has a storage key.
    pub(crate) disable_storage_encryption: bool,
    /// Compress values before encrypting them.
    pub(crate) storage_encryption_snappy: bool,
    /// Accept cleartext HTTP/2.
    pub(crate) h2c: bool,
    /// Logstore write path.
    pub(crate) logstore_io: lockd_logstore::IoMode,
    /// Log level.
    pub(crate) log_level: LevelFilter,
    /// Log format.
    pub(crate) log_format: LogFormat,
}

fn store(s: &str) -> Result<Store, String> {
    let s = s.trim();
    let example = "use mem:// or disk:///absolute/dir";
    if s == "mem://" {
        return Ok(Store::Mem);
    }
    if let Some(rest) = s.strip_prefix("mem://") {
        return Err(format!("mem:// takes no path, found {rest:?}"));
    }
    if let Some(rest) = s.strip_prefix("disk://") {
        let path = PathBuf::from(rest);
        if rest.is_empty() || !path.is_absolute() {
            return Err("disk:// needs an absolute directory, e.g. disk:///var/lib/lockd (three slashes)".into());
        }
        return Ok(Store::Disk(path));
    }
    match s.split_once("://") {
        Some((scheme @ ("s3" | "aws" | "azure" | "minio"), _)) => {
            Err(format!("{scheme}:// stores are not supported yet; {example}"))
        }
        Some((scheme, _)) => Err(format!("unknown store scheme {scheme}://; {example}")),
        None => Err(format!("not a store URL; {example}")),
    }
}

fn listen_proto(s: &str) -> Result<Option<Family>, String> {
    match s.trim() {
        "tcp" => Ok(Some(Family::Any)),
        "tcp4" => Ok(Some(Family::V4)),
        "tcp6" => Ok(Some(Family::V6)),
        "unix" => Ok(None),
        _ => Err("expected tcp, tcp4, tcp6 or unix".into()),
    }
}

fn ttl_seconds(s: &str) -> Result<i64, String> {
    let d = parse::duration(s)?;
    if d.subsec_nanos() != 0 {
        return Err("lease TTLs are whole seconds".into());
    }
    if d.as_secs() == 0 {
        return Err("must be at least 1s".into());
    }
    i64::try_from(d.as_secs()).map_err(|_| "duration is too large".into())
}

fn log_level(s: &str) -> Result<LevelFilter, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "trace" => Ok(LevelFilter::TRACE),
        "debug" => Ok(LevelFilter::DEBUG),
        "info" => Ok(LevelFilter::INFO),
        "warn" => Ok(LevelFilter::WARN),
        "error" => Ok(LevelFilter::ERROR),
        _ => Err("expected trace, debug, info, warn or error".into()),
    }
}

fn log_format(s: &str) -> Result<LogFormat, String> {
    match s.trim() {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err("expected text or json".into()),
    }
}

fn namespace(s: &str) -> Result<String, String> {
    lockd_actors::names::resolve_namespace(s, "").map_err(|e| e.detail)
}

impl ServerSettings {
    /// Parses and cross-checks the merged values.
    pub(crate) fn from_raw(raw: &RawSettings) -> Result<ServerSettings, CliError> {
        let family = raw.required("listen-proto", listen_proto)?;
        let listen = raw.required("listen", |s| {
            let s = s.trim();
            if s.is_empty() {
                return Err("empty address".to_string());
            }
            match family {
                Some(family) => {
                    let port = s.rsplit_once(':').map(|(_, p)| p.parse::<u16>());
                    if !matches!(port, Some(Ok(_))) {
                        return Err("expected host:port or :port (e.g. :9341, 127.0.0.1:9341, [::1]:9341)".into());
                    }
                    Ok(Listen::Tcp {
                        addr: s.to_string(),
                        family,
                    })
                }
                None => Ok(Listen::Unix(PathBuf::from(s))),
            }
        })?;
        let store_url = raw.get("store").map(|(v, _)| v.clone()).ok_or_else(|| {
            CliError::Missing(
                "--store has no default because $HOME is not set; pass --store mem:// or --store disk:///dir".into(),
            )
        })?;
        let store = raw.required("store", store)?;
        let default_ttl_seconds = raw.required("default-ttl", ttl_seconds)?;
        let max_ttl_seconds = raw.required("max-ttl", ttl_seconds)?;
        if max_ttl_seconds < default_ttl_seconds {
            let default_ttl = parse::format_duration(Duration::from_secs(default_ttl_seconds.unsigned_abs()));
            let s = settings::find("max-ttl").ok_or_else(|| CliError::Missing("max-ttl".into()))?;
            return Err(raw.invalid(s, format!("must be at least --default-ttl ({default_ttl})")));
        }
        let u32_max = u64::from(u32::MAX);
        Ok(ServerSettings {
            listen,
            store,
            store_url,
            default_namespace: raw.required("default-namespace", namespace)?,
            default_ttl_seconds,
            max_ttl_seconds,
            acquire_block: raw.required("acquire-block", parse::duration)?,
            json_max: raw.required("json-max", |s| match parse::size(s)? {
                0 => Err("must be at least 1 byte".into()),
                n => Ok(n),
            })?,
            payload_spool_mem: raw.required("payload-spool-mem", parse::size)?,
            http2_max_concurrent_streams: raw.required("http2-max-concurrent-streams", |s| {
                parse::count(s, u32_max).and_then(|n| u32::try_from(n).map_err(|e| e.to_string()))
            })?,
            max_in_flight: raw.required("max-in-flight", |s| {
                parse::count(s, u32_max).and_then(|n| usize::try_from(n).map_err(|e| e.to_string()))
            })?,
            shutdown_timeout: raw.required("shutdown-timeout", parse::duration)?,
            disable_mtls: raw.required("disable-mtls", parse::switch)?,
            bundle: raw.parsed("bundle", |s| match s.trim() {
                "" => Err("empty path".to_string()),
                p => Ok(PathBuf::from(p)),
            })?,
            disable_storage_encryption: raw.required("disable-storage-encryption", parse::switch)?,
            storage_encryption_snappy: raw.required("storage-encryption-snappy", parse::switch)?,
            h2c: !raw.required("disable-h2c", parse::switch)?,
            logstore_io: raw.required("logstore-io", |s| s.trim().parse())?,
            log_level: raw.required("log-level", log_level)?,
            log_format: raw.required("log-format", log_format)?,
        })
    }
}

#[cfg(test)]
#[path = "resolve_tests.rs"]
mod tests;
