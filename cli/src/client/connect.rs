//! The connection flags every client command shares, the SDK client they
//! build, and the one-line messages for the SDK's errors.

use std::path::PathBuf;
use std::time::Duration;

use lockd_net::client::{ApiError, Client, ClientBuilder, ClientError};
use tracing::level_filters::LevelFilter;

use super::inputs::{optional, Origins, ENV_SERVER};
use crate::error::CliError;
use crate::logging;
use crate::parse;
use crate::resolve::LogFormat;

/// Server used when neither `--server` nor `LOCKD_CLIENT_SERVER` names one.
/// lockd's default is `https://127.0.0.1:9341`; this server speaks plain
/// HTTP until mTLS is built, so the client's default does too.
const DEFAULT_SERVER: &str = "http://127.0.0.1:9341";
const ENV_BUNDLE: &str = "LOCKD_CLIENT_BUNDLE";
const ENV_DISABLE_MTLS: &str = "LOCKD_CLIENT_DISABLE_MTLS";
const ENV_TIMEOUT: &str = "LOCKD_CLIENT_TIMEOUT";
const ENV_LOG_LEVEL: &str = "LOCKD_CLIENT_LOG_LEVEL";

/// Flags that say how to reach the server; accepted before or after the
/// command name (`lockd client --server X get` or `lockd client get --server X`).
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Connection")]
pub(super) struct Globals {
    /// Server URL(s): http://, https:// (needs --bundle) or unix:///path; comma-separated for failover
    ///
    /// A bare host:port means http://, a bare /path a Unix socket. Listed endpoints are tried in
    /// order; the one that answers is used first from then on. The default is plain HTTP because
    /// this server has no TLS yet (lockd's own default is https://127.0.0.1:9341).
    #[arg(
        id = "client_server",
        short = 's',
        long = "server",
        env = ENV_SERVER,
        global = true,
        value_name = "URL[,URL...]",
        default_value = DEFAULT_SERVER
    )]
    pub(super) server: String,
    /// PEM bundle for https:// servers: CA certificate(s), plus client certificate and key for mTLS
    ///
    /// Certificates and key may come in any order. Server certificates must chain to the CA; their
    /// host name is not checked. Not read for http:// and unix:// servers.
    #[arg(id = "client_bundle", short = 'b', long = "bundle", env = ENV_BUNDLE, global = true, value_name = "FILE")]
    pub(super) bundle: Option<PathBuf>,
    /// Do not present the bundle's client certificate (the bundle still supplies the CA for https://)
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
    pub(super) fn open(g: &Globals, origins: &Origins<'_>) -> Result<Conn, CliError> {
        let endpoints = origins.parse("server", ENV_SERVER, &g.server, endpoints)?;
        let timeout = origins.parse("timeout", ENV_TIMEOUT, &g.timeout, parse::duration)?;
        let disable_mtls = match &g.disable_mtls {
            Some(text) => origins.parse("disable-mtls", ENV_DISABLE_MTLS, text, parse::switch)?,
            None => false,
        };
        let mut builder = endpoints
            .iter()
            .fold(Client::builder(), |b, e| b.endpoint(e))
            .timeout(timeout)
            .acquire_retries(0);
        let invalid_server = |e: ClientError| CliError::InvalidValue {
            flag: "server",
            value: g.server.clone(),
            origin: origins.origin("server", ENV_SERVER),
            reason: e.to_string(),
        };
        let client = if endpoints.iter().any(|e| e.to_ascii_lowercase().starts_with("https://")) {
            let Some(path) = &g.bundle else {
                return Err(CliError::Missing(format!(
                    "an https:// server needs the CA that signed its certificate: pass --bundle FILE or set {ENV_BUNDLE}"
                )));
            };
            let path_text = path.display().to_string();
            let bundle_origin = origins.origin("bundle", ENV_BUNDLE);
            let pem = std::fs::read(path).map_err(|e| CliError::InvalidValue {
                flag: "bundle",
                value: path_text.clone(),
                origin: bundle_origin.clone(),
                reason: e.to_string(),
            })?;
            builder = builder.ca_pem(pem.clone());
            let built = if disable_mtls {
                builder.build()
            } else {
                build_with_identity(builder, &pem)
            };
            built.map_err(|e| match e {
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

/// Splits `--server` into endpoint URLs: a comma-separated list; a bare
/// `host:port` becomes `http://host:port` and a bare absolute path a
/// Unix socket. The SDK validates each URL when the client is built.
fn endpoints(text: &str) -> Result<Vec<String>, String> {
    let list: Vec<String> = text
        .split(',')
        .filter_map(|item| optional(Some(item)))
        .map(|item| {
            if item.contains("://") {
                item
            } else if item.starts_with('/') {
                format!("unix://{item}")
            } else {
                format!("http://{item}")
            }
        })
        .collect();
    if list.is_empty() {
        return Err("no server URL (e.g. http://127.0.0.1:9341)".into());
    }
    Ok(list)
}

/// Builds the client presenting the bundle's certificate and key as the
/// client identity. The SDK wants the leaf certificate first and refuses
/// a chain whose leaf does not match the key; a lockd bundle usually puts
/// the CA first, so each certificate (and each key) is tried as the leaf
/// until the SDK accepts the pair. A bundle without a key builds a client
/// that only trusts the CA.
fn build_with_identity(builder: ClientBuilder, pem: &[u8]) -> Result<Client, ClientError> {
    let text = String::from_utf8_lossy(pem);
    let blocks = pem_blocks(&text);
    let certs: Vec<&str> = blocks
        .iter()
        .filter(|(label, _)| *label == "CERTIFICATE")
        .map(|(_, b)| *b)
        .collect();
    let keys: Vec<&str> = blocks
        .iter()
        .filter(|(label, _)| label.ends_with("PRIVATE KEY"))
        .map(|(_, b)| *b)
        .collect();
    if keys.is_empty() || certs.is_empty() {
        return builder.build();
    }
    let mut first_err = None;
    for key in &keys {
        for leaf in 0..certs.len() {
            let mut identity = String::from(certs[leaf]);
            for (i, cert) in certs.iter().enumerate() {
                if i != leaf {
                    identity.push_str(cert);
                }
            }
            identity.push_str(key);
            match builder.clone().client_identity_pem(identity).build() {
                Ok(client) => return Ok(client),
                Err(e @ ClientError::InvalidUrl(_)) => return Err(e),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
    }
    Err(first_err.unwrap_or_else(|| ClientError::Tls("no usable client certificate in the bundle".into())))
}

/// The PEM blocks of `text` as (label, whole block including its
/// BEGIN/END lines and a trailing newline).
fn pem_blocks(text: &str) -> Vec<(&str, &str)> {
    const BEGIN: &str = "-----BEGIN ";
    const DASHES: &str = "-----";
    let mut out = Vec::new();
    let mut rest = text;
    let mut base = 0;
    while let Some(start) = rest.find(BEGIN) {
        let after_begin = &rest[start + BEGIN.len()..];
        let Some(label_len) = after_begin.find(DASHES) else {
            break;
        };
        let label = &after_begin[..label_len];
        let end_marker = format!("-----END {label}-----");
        let Some(end) = rest[start..].find(&end_marker) else {
            break;
        };
        let mut stop = start + end + end_marker.len();
        if rest[stop..].starts_with('\n') {
            stop += 1;
        }
        out.push((label, &text[base + start..base + stop]));
        base += stop;
        rest = &rest[stop..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_lists_are_normalised() {
        assert_eq!(
            endpoints("127.0.0.1:9341"),
            Ok(vec!["http://127.0.0.1:9341".to_owned()])
        );
        assert_eq!(
            endpoints(" https://a:1 , b:2,,unix:///run/l.sock, /tmp/x.sock "),
            Ok(vec![
                "https://a:1".to_owned(),
                "http://b:2".to_owned(),
                "unix:///run/l.sock".to_owned(),
                "unix:///tmp/x.sock".to_owned()
            ])
        );
        assert!(endpoints(" , ").is_err());
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
            server: "127.0.0.1:1,127.0.0.1:2".into(),
            bundle: None,
            disable_mtls: None,
            timeout: "5s".into(),
            log_level: "none".into(),
        };
        let conn = Conn::open(&g, &Origins::new(None)).expect("valid flags");
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
    fn bad_flags_are_usage_errors() {
        let base = || Globals {
            server: "http://127.0.0.1:1".into(),
            bundle: None,
            disable_mtls: None,
            timeout: "30s".into(),
            log_level: "none".into(),
        };
        let origins = Origins::new(None);
        let err = Conn::open(
            &Globals {
                server: "ftp://x".into(),
                ..base()
            },
            &origins,
        )
        .expect_err("bad scheme");
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().starts_with("invalid --server \"ftp://x\""), "{err}");
        let err = Conn::open(
            &Globals {
                timeout: "soon".into(),
                ..base()
            },
            &origins,
        )
        .expect_err("bad timeout");
        assert!(err.to_string().starts_with("invalid --timeout"), "{err}");
        let err = Conn::open(
            &Globals {
                server: "https://h:1".into(),
                ..base()
            },
            &origins,
        )
        .expect_err("no bundle");
        assert!(
            err.to_string().contains("--bundle") && err.to_string().contains(ENV_BUNDLE),
            "{err}"
        );
        let err = Conn::open(
            &Globals {
                disable_mtls: Some("maybe".into()),
                ..base()
            },
            &origins,
        )
        .expect_err("bad switch");
        assert!(err.to_string().starts_with("invalid --disable-mtls"), "{err}");
        assert!(log_level("loud").is_err());
        assert_eq!(log_level("DEBUG"), Ok(Some(LevelFilter::DEBUG)));
        assert_eq!(log_level("none"), Ok(None));
    }

    /// A lockd-style client bundle: CA certificate first, then the client
    /// certificate, then the client key.
    fn ca_first_bundle() -> String {
        let ca_key = rcgen::KeyPair::generate().expect("key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).expect("ca");
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let client_key = rcgen::KeyPair::generate().expect("key");
        let client_params = rcgen::CertificateParams::new(vec!["lockd-client".to_owned()]).expect("params");
        let client_cert = client_params.signed_by(&client_key, &issuer).expect("client");
        format!("{}{}{}", ca_cert.pem(), client_cert.pem(), client_key.serialize_pem())
    }

    #[test]
    fn pem_blocks_are_split_with_their_labels() {
        let bundle = ca_first_bundle();
        let blocks = pem_blocks(&bundle);
        let labels: Vec<&str> = blocks.iter().map(|(l, _)| *l).collect();
        assert_eq!(labels, vec!["CERTIFICATE", "CERTIFICATE", "PRIVATE KEY"]);
        let joined: String = blocks.iter().map(|(_, b)| *b).collect();
        assert_eq!(joined.trim(), bundle.trim());
    }

    #[test]
    fn ca_first_bundles_still_yield_a_client_identity() {
        let bundle = ca_first_bundle();
        let builder = || Client::builder().endpoint("https://127.0.0.1:1").ca_pem(bundle.clone());
        assert!(
            builder().client_identity_pem(bundle.clone()).build().is_err(),
            "the SDK refuses the bundle as is: its first certificate is the CA"
        );
        build_with_identity(builder(), bundle.as_bytes()).expect("the client certificate is found");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("client.pem");
        std::fs::write(&path, &bundle).expect("write bundle");
        let g = Globals {
            server: "https://127.0.0.1:1".into(),
            bundle: Some(path),
            disable_mtls: None,
            timeout: "30s".into(),
            log_level: "none".into(),
        };
        Conn::open(&g, &Origins::new(None)).expect("bundle accepted");
    }
}
