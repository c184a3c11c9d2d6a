//! The connection flags every client command shares, the SDK client they
//! build, and the one-line messages for the SDK's errors.

use std::path::{Path, PathBuf};
use std::time::Duration;

use lockd_net::client::{ApiError, Client, ClientError};
use tracing::level_filters::LevelFilter;

use super::inputs::{optional, Origins, ENV_SERVER};
use crate::error::CliError;
use crate::logging;
use crate::parse;
use crate::resolve::LogFormat;

/// Server used when neither `--server` nor `LOCKD_CLIENT_SERVER` names one
/// (lockd's default); `http://` instead with `--disable-mtls`.
const DEFAULT_SERVER: &str = "https://127.0.0.1:9341";
const ENV_BUNDLE: &str = "LOCKD_CLIENT_BUNDLE";
const ENV_DISABLE_MTLS: &str = "LOCKD_CLIENT_DISABLE_MTLS";
const ENV_TIMEOUT: &str = "LOCKD_CLIENT_TIMEOUT";
const ENV_LOG_LEVEL: &str = "LOCKD_CLIENT_LOG_LEVEL";

/// Flags that say how to reach the server; accepted before or after the
/// command name (`lockd client --server X get` or `lockd client get --server X`).
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Connection")]
pub(super) struct Globals {
    /// Server URL(s): https://, http:// or unix:///path; comma-separated for failover [default: https://127.0.0.1:9341]
    ///
    /// A bare host:port means https:// (http:// with --disable-mtls), a bare /path a Unix socket.
    /// Listed endpoints are tried in order; the one that answers is used first from then on.
    /// Without --server the default is https://127.0.0.1:9341, or http://127.0.0.1:9341 with
    /// --disable-mtls.
    #[arg(
        id = "client_server",
        short = 's',
        long = "server",
        env = ENV_SERVER,
        global = true,
        value_name = "URL[,URL...]"
    )]
    pub(super) server: Option<String>,
    /// Client bundle for https:// servers: CA certificate, client certificate and key (PEM)
    ///
    /// Without it, the first client*.pem in $HOME/.lockd is used (client.pem first): the server
    /// creates $HOME/.lockd/client.pem when it bootstraps mTLS on its first start. Blocks may come in
    /// any order. The server's certificate must chain to the bundle's CA; its host name is not
    /// checked. Not read for http:// and unix:// servers.
    #[arg(id = "client_bundle", short = 'b', long = "bundle", env = ENV_BUNDLE, global = true, value_name = "FILE")]
    pub(super) bundle: Option<PathBuf>,
    /// Plain HTTP: bare host:port and the default server mean http://; for https:// servers the bundle supplies only the CA
    #[arg(
        id = "client_disable_mtls",
        long = "disable-mtls",
        env = ENV_DISABLE_MTLS,
        global = true,
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true"
    )]
    pub(super) disable_mtls: Option<String>,
    /// Deadline of each request (Go duration: 30s, 1m30s; 0 disables); acquire adds --block
    #[arg(
        id = "client_timeout",
        long = "timeout",
        env = ENV_TIMEOUT,
        global = true,
        value_name = "DURATION",
        default_value = "30s"
    )]
    pub(super) timeout: String,
    /// Log level on stderr: none, error, warn, info, debug (retries, failovers) or trace
    #[arg(
        id = "client_log_level",
        long = "log-level",
        env = ENV_LOG_LEVEL,
        global = true,
        value_name = "LEVEL",
        default_value = "none"
    )]
    pub(super) log_level: String,
}

impl Globals {
    /// Installs the stderr logger `--log-level` asks for (none by default,
    /// so that stdout and stderr carry only what the command prints).
    pub(super) fn init_logging(&self, origins: &Origins<'_>) -> Result<(), CliError> {
        let level = origins.parse("log-level", ENV_LOG_LEVEL, &self.log_level, log_level)?;
        match level {
            Some(level) => logging::init(level, LogFormat::Text),
            None => Ok(()),
        }
    }
}

fn log_level(text: &str) -> Result<Option<LevelFilter>, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "none" | "off" | "" => Ok(None),
        "error" => Ok(Some(LevelFilter::ERROR)),
        "warn" => Ok(Some(LevelFilter::WARN)),
        "info" => Ok(Some(LevelFilter::INFO)),
        "debug" => Ok(Some(LevelFilter::DEBUG)),
        "trace" => Ok(Some(LevelFilter::TRACE)),
        _ => Err("expected none, error, warn, info, debug or trace".into()),
    }
}

/// The SDK client plus what error messages need to name.
#[derive(Debug)]
pub(super) struct Conn {
    /// The SDK client; its own acquire retries are off (see `lease::acquire`).
    pub(super) client: Client,
    /// The endpoints as URLs, in failover order.
    pub(super) endpoints: Vec<String>,
    timeout: Option<Duration>,
}

impl Conn {
    /// Validates the connection flags and builds the client; nothing is
    /// dialled yet.
    /// `home` is `$HOME`, where a client bundle is looked for when
    /// `--bundle` is not given.
    pub(super) fn open(g: &Globals, origins: &Origins<'_>, home: Option<&Path>) -> Result<Conn, CliError> {
        let disable_mtls = match &g.disable_mtls {
            Some(text) => origins.parse("disable-mtls", ENV_DISABLE_MTLS, text, parse::switch)?,
            None => false,
        };
        let server = match &g.server {
            Some(text) => text.clone(),
            None if disable_mtls => DEFAULT_SERVER.replacen("https://", "http://", 1),
            None => DEFAULT_SERVER.to_string(),
        };
        let endpoints = origins.parse("server", ENV_SERVER, &server, |t| endpoints(t, !disable_mtls))?;
        let timeout = origins.parse("timeout", ENV_TIMEOUT, &g.timeout, parse::duration)?;
        let mut builder = endpoints
            .iter()
            .fold(Client::builder(), |b, e| b.endpoint(e))
            .timeout(timeout)
            .acquire_retries(0);
        let invalid_server = |e: ClientError| CliError::InvalidValue {
            flag: "server",
            value: server.clone(),
            origin: origins.origin("server", ENV_SERVER),
            reason: e.to_string(),
        };
        let client = if endpoints.iter().any(|e| e.to_ascii_lowercase().starts_with("https://")) {
            let (path, bundle_origin) = match &g.bundle {
                Some(path) => (path.clone(), origins.origin("bundle", ENV_BUNDLE)),
                None => (discover_bundle(home)?, " (found in $HOME/.lockd)".to_string()),
            };
            let path_text = path.display().to_string();
            let pem = std::fs::read(&path).map_err(|e| CliError::InvalidValue {
                flag: "bundle",
                value: path_text.clone(),
                origin: bundle_origin.clone(),
                reason: e.to_string(),
            })?;
            builder = if disable_mtls {
                builder.ca_pem(pem)
            } else {
                builder.bundle_pem(pem)
            };
            builder.build().map_err(|e| match e {
                ClientError::InvalidUrl(_) => invalid_server(e),
                other => CliError::InvalidValue {
                    flag: "bundle",
                    value: path_text.clone(),
                    origin: bundle_origin.clone(),
                    reason: other.to_string(),
                },
            })?
        } else {
            builder.build().map_err(invalid_server)?
        };
        Ok(Conn {
            client,
            endpoints,
            timeout: (!timeout.is_zero()).then_some(timeout),
        })
    }

    /// The one-line message for a failed call.
    pub(super) fn failed(&self, err: ClientError) -> CliError {
        let servers = self.endpoints.join(",");
        CliError::Request(match err {
            ClientError::Api(api) => api_message(&api),
            ClientError::Transport(m) => format!("cannot reach {servers}: {m}"),
            ClientError::Timeout => match self.timeout {
                Some(t) => format!(
                    "cannot reach {servers}: no answer within --timeout {}",
                    parse::format_duration(t)
                ),
                None => format!("cannot reach {servers}: request timed out"),
            },
            ClientError::Tls(m) => format!("cannot reach {servers}: {m}"),
            ClientError::Decode(m) => format!("unexpected answer from {servers}: {m}"),
            other => other.to_string(),
        })
    }
}

/// `lockd: <code>: <detail>` plus what the server said about the current
/// state, when to retry, and the correlation id to look for in its logs.
fn api_message(api: &ApiError) -> String {
    let mut out = if api.code.is_empty() {
        format!("HTTP {}", api.status)
    } else {
        api.code.clone()
    };
    out.push_str(": ");
    out.push_str(if api.detail.is_empty() {
        "(no detail)"
    } else {
        api.detail.as_str()
    });
    let mut notes = Vec::new();
    if api.current_version > 0 {
        notes.push(format!("current version {}", api.current_version));
    }
    if !api.current_etag.is_empty() {
        notes.push(format!("current etag {}", api.current_etag));
    }
    if api.retry_after_seconds > 0 {
        notes.push(format!("retry after {}s", api.retry_after_seconds));
    }
    if !api.leader_endpoint.is_empty() {
        notes.push(format!("leader {}", api.leader_endpoint));
    }
    if let Some(id) = &api.correlation_id {
        notes.push(format!("correlation id {id}"));
    }
    if !notes.is_empty() {
        out.push_str(&format!(" ({})", notes.join(", ")));
    }
    out
}

/// The client bundle the server's bootstrap left in `$HOME/.lockd`.
fn discover_bundle(home: Option<&Path>) -> Result<PathBuf, CliError> {
    let home = home.ok_or_else(|| {
        CliError::Missing(format!(
            "an https:// server needs a client bundle: pass --bundle FILE or set {ENV_BUNDLE} ($HOME is not set, so $HOME/.lockd cannot be searched)"
        ))
    })?;
    let dir = lockd_auth::files::default_dir(home);
    match lockd_auth::files::discover_client_bundle(&dir) {
        Ok(Some(path)) => Ok(path),
        Ok(None) => Err(CliError::Missing(format!(
            "an https:// server needs a client bundle and {} has no client*.pem: pass --bundle FILE or set {ENV_BUNDLE} \
             (a server with the default settings creates {}/client.pem on its first start), or --disable-mtls for a plain-HTTP server",
            dir.display(),
            dir.display()
        ))),
        Err(e) => Err(CliError::Missing(format!("looking for a client bundle: {e}"))),
    }
}

/// Splits `--server` into endpoint URLs: a comma-separated list; a bare
/// `host:port` becomes `https://host:port` (`http://` when `tls` is off)
/// and a bare absolute path a Unix socket. The SDK validates each URL when
/// the client is built.
fn endpoints(text: &str, tls: bool) -> Result<Vec<String>, String> {
    let list: Vec<String> = text
        .split(',')
        .filter_map(|item| optional(Some(item)))
        .map(|item| {
            if item.contains("://") {
                item
            } else if item.starts_with('/') {
                format!("unix://{item}")
            } else if tls {
                format!("https://{item}")
            } else {
                format!("http://{item}")
            }
        })
        .collect();
    if list.is_empty() {
        return Err("no server URL (e.g. https://127.0.0.1:9341)".into());
    }
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn globals(server: &str) -> Globals {
        Globals {
            server: Some(server.into()),
            bundle: None,
            disable_mtls: None,
            timeout: "30s".into(),
            log_level: "none".into(),
        }
    }

    #[test]
    fn server_lists_are_normalised() {
        assert_eq!(
            endpoints("127.0.0.1:9341", true),
            Ok(vec!["https://127.0.0.1:9341".to_owned()])
        );
        assert_eq!(
            endpoints("127.0.0.1:9341", false),
            Ok(vec!["http://127.0.0.1:9341".to_owned()])
        );
        assert_eq!(
            endpoints(" https://a:1 , b:2,,unix:///run/l.sock, /tmp/x.sock ", false),
            Ok(vec![
                "https://a:1".to_owned(),
                "http://b:2".to_owned(),
                "unix:///run/l.sock".to_owned(),
                "unix:///tmp/x.sock".to_owned()
            ])
        );
        assert!(endpoints(" , ", true).is_err());
    }

    #[test]
    fn api_errors_lead_with_the_code() {
        let api = ApiError {
            status: 409,
            code: "version_conflict".into(),
            detail: "state version mismatch".into(),
            current_version: 3,
            current_etag: "e3".into(),
            retry_after_seconds: 0,
            leader_endpoint: String::new(),
            correlation_id: Some("c1".into()),
        };
        assert_eq!(
            api_message(&api),
            "version_conflict: state version mismatch (current version 3, current etag e3, correlation id c1)"
        );
        let bare = ApiError {
            code: String::new(),
            detail: String::new(),
            current_version: 0,
            current_etag: String::new(),
            correlation_id: None,
            status: 502,
            ..api
        };
        assert_eq!(api_message(&bare), "HTTP 502: (no detail)");
    }

    #[test]
    fn timeouts_and_refusals_name_the_server() {
        let g = Globals {
            timeout: "5s".into(),
            disable_mtls: Some("true".into()),
            ..globals("127.0.0.1:1,127.0.0.1:2")
        };
        let conn = Conn::open(&g, &Origins::new(None), None).expect("valid flags");
        let msg = conn.failed(ClientError::Timeout).to_string();
        assert_eq!(
            msg,
            "cannot reach http://127.0.0.1:1,http://127.0.0.1:2: no answer within --timeout 5s"
        );
        let msg = conn
            .failed(ClientError::Transport("connection refused".into()))
            .to_string();
        assert!(msg.starts_with("cannot reach http://127.0.0.1:1,"), "{msg}");
    }

    #[test]
    fn the_default_server_follows_disable_mtls() {
        let plain = Globals {
            server: None,
            disable_mtls: Some("true".into()),
            ..globals("")
        };
        let conn = Conn::open(&plain, &Origins::new(None), None).expect("plain default");
        assert_eq!(conn.endpoints, vec!["http://127.0.0.1:9341".to_owned()]);
        let home = tempfile::tempdir().expect("tempdir");
        let secure = Globals {
            server: None,
            ..globals("")
        };
        let err = Conn::open(&secure, &Origins::new(None), Some(home.path())).expect_err("no bundle anywhere");
        let msg = err.to_string();
        assert!(msg.contains("client*.pem") && msg.contains("--bundle"), "{msg}");
    }

    #[test]
    fn bad_flags_are_usage_errors() {
        let origins = Origins::new(None);
        let err = Conn::open(&globals("ftp://x"), &origins, None).expect_err("bad scheme");
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().starts_with("invalid --server \"ftp://x\""), "{err}");
        let err = Conn::open(
            &Globals {
                timeout: "soon".into(),
                ..globals("http://127.0.0.1:1")
            },
            &origins,
            None,
        )
        .expect_err("bad timeout");
        assert!(err.to_string().starts_with("invalid --timeout"), "{err}");
        let err = Conn::open(&globals("https://h:1"), &origins, None).expect_err("no bundle");
        assert!(
            err.to_string().contains("--bundle") && err.to_string().contains(ENV_BUNDLE),
            "{err}"
        );
        let err = Conn::open(
            &Globals {
                disable_mtls: Some("maybe".into()),
                ..globals("http://127.0.0.1:1")
            },
            &origins,
            None,
        )
        .expect_err("bad switch");
        assert!(err.to_string().starts_with("invalid --disable-mtls"), "{err}");
        assert!(log_level("loud").is_err());
        assert_eq!(log_level("DEBUG"), Ok(Some(LevelFilter::DEBUG)));
        assert_eq!(log_level("none"), Ok(None));
    }

    #[test]
    fn a_bootstrapped_client_bundle_is_found_in_home() {
        let home = tempfile::tempdir().expect("tempdir");
        let dir = lockd_auth::files::default_dir(home.path());
        lockd_auth::bootstrap::ensure(&dir, None).expect("bootstrap");
        let conn = Conn::open(
            &Globals {
                server: None,
                ..globals("")
            },
            &Origins::new(None),
            Some(home.path()),
        )
        .expect("the bootstrapped client.pem is used");
        assert_eq!(conn.endpoints, vec!["https://127.0.0.1:9341".to_owned()]);
        let garbage = home.path().join("garbage.pem");
        std::fs::write(&garbage, "not a bundle").expect("write");
        let err = Conn::open(
            &Globals {
                bundle: Some(garbage),
                ..globals("https://127.0.0.1:1")
            },
            &Origins::new(None),
            None,
        )
        .expect_err("garbage bundle");
        assert!(err.to_string().starts_with("invalid --bundle"), "{err}");
    }
}
