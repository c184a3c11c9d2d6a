//! `lockd auth inspect server|client`: what a bundle holds, for people
//! (`--output text`) and for scripts (`--output json`).
//!
//! Private keys and the storage key are never printed, not even in part:
//! inspect output ends up in tickets and chat, so it says only whether a
//! storage key is present. Dates are UTC; JSON carries them as RFC 3339
//! strings and as UNIX seconds so scripts need no date parsing to compare.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use lockd_auth::bundle::{ClientBundle, ServerBundle};
use lockd_auth::cert::{unix_now, CertInfo};
use lockd_auth::files;
use lockd_auth::verify::format_time;
use serde::Serialize;

use super::common::{bundle_dir, emit, failed, file_or_default, list, require_file};
use crate::error::CliError;

const INSPECT_AFTER_HELP: &str = "\
Examples:
  lockd auth inspect server
  lockd auth inspect client --in ops.pem --output json";

const SERVER_AFTER_HELP: &str = "\
Shows the server certificate (subject, issuer, serial, validity, usages, host \
names), the CA certificates clients must chain to, the revoked client serials, \
and whether the bundle carries a storage key (never the key itself).

--output json prints one object: {\"kind\": \"server\", \"file\", \"certificate\", \
\"ca_certificates\": [...], \"denylist\": [serials], \"storage_key\": bool}. Each \
certificate is {\"subject\", \"common_name\", \"issuer\", \"serial\", \"not_before\", \
\"not_after\" (RFC 3339, UTC), \"not_before_unix\", \"not_after_unix\", \"is_ca\", \
\"extended_key_usage\": [\"serverAuth\"|\"clientAuth\"], \"dns_names\", \
\"ip_addresses\", \"uris\"}.

Examples:
  # ~/.lockd/server.pem
  lockd auth inspect server

  # Another bundle, as JSON: when does it expire?
  lockd auth inspect server --in /etc/lockd/server.pem --output json | jq -r .certificate.not_after";

const CLIENT_AFTER_HELP: &str = "\
Shows the client certificate (subject, issuer, serial, validity, usages, URI \
names), its namespace claims, the identity servers append to lease owners \
(NAME#SERIAL), and the CA certificates the server must chain to. Without --in, \
the bundle a client would use is shown: ~/.lockd/client.pem, else the first \
~/.lockd/client*.pem.

--output json prints one object: {\"kind\": \"client\", \"file\", \"certificate\", \
\"ca_certificates\": [...], \"identity\", \"claims\": {namespace: \"r\"|\"w\"|\"rw\"} \
(null when they cannot be read), \"claims_error\": string or null}, certificates \
shaped as for `lockd auth inspect server`.

Examples:
  # The bundle `lockd client` would present
  lockd auth inspect client

  # The serial to revoke
  lockd auth inspect client --in worker-1.pem --output json | jq -r .certificate.serial";

/// `lockd auth inspect ...`.
#[derive(Debug, Args)]
#[command(after_help = INSPECT_AFTER_HELP)]
pub(super) struct InspectArgs {
    /// Which kind of bundle.
    #[command(subcommand)]
    command: InspectCommand,
}

/// The bundle kinds inspect reads.
#[derive(Debug, Subcommand)]
enum InspectCommand {
    /// Show a server bundle: certificate, CA certificates, denylist, storage key presence.
    #[command(after_help = SERVER_AFTER_HELP)]
    Server(Target),
    /// Show a client bundle: certificate, namespace claims, CA certificates.
    #[command(after_help = CLIENT_AFTER_HELP)]
    Client(Target),
}

/// Flags of both inspect commands.
#[derive(Debug, Args)]
struct Target {
    /// Bundle to read [default: $HOME/.lockd/server.pem, or the client bundle a client would use].
    #[arg(long = "in", value_name = "FILE")]
    input: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_name = "FORMAT", value_enum, default_value_t = Output::Text)]
    output: Output,
}

/// How inspect prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    /// Aligned lines for people.
    Text,
    /// One JSON object with a fixed shape, for scripts.
    Json,
}

/// Runs `lockd auth inspect ...`.
pub(super) fn run(args: InspectArgs, home: Option<&Path>) -> Result<(), CliError> {
    match args.command {
        InspectCommand::Server(t) => {
            let path = file_or_default(t.input, home, "in", "server.pem")?;
            require_file(&path, "server bundle", "in", "create one with `lockd auth new server`")?;
            let bundle = ServerBundle::load(&path).map_err(failed)?;
            show(t.output, &server_view(&path, &bundle))
        }
        InspectCommand::Client(t) => {
            let path = match t.input {
                Some(p) => p,
                None => discover_client(home)?,
            };
            require_file(&path, "client bundle", "in", "create one with `lockd auth new client`")?;
            let bundle = ClientBundle::load(&path).map_err(failed)?;
            show(t.output, &client_view(&path, &bundle))
        }
    }
}

/// The client bundle a client would use when none is named.
pub(super) fn discover_client(home: Option<&Path>) -> Result<PathBuf, CliError> {
    let dir = bundle_dir(home, "in")?;
    match files::discover_client_bundle(&dir).map_err(failed)? {
        Some(path) => Ok(path),
        None => Err(CliError::Startup(format!(
            "no client bundle (client*.pem) in {}: create one with `lockd auth new client`, or name one with --in",
            dir.display()
        ))),
    }
}

/// Prints `view` in the chosen format.
fn show(output: Output, view: &BundleView) -> Result<(), CliError> {
    match output {
        Output::Text => emit(&text(view)),
        Output::Json => {
            let json = serde_json::to_string_pretty(view)
                .map_err(|e| CliError::Startup(format!("cannot encode the bundle as JSON: {e}")))?;
            emit(&format!("{json}\n"))
        }
    }
}

/// One certificate as inspect shows it; also the JSON shape, so the two
/// outputs cannot drift apart.
#[derive(Debug, Serialize)]
struct CertView {
    /// Subject distinguished name.
    subject: String,
    /// Subject common name, if any.
    common_name: Option<String>,
    /// Issuer distinguished name.
    issuer: String,
    /// Serial in canonical hex, as `lockd auth revoke` takes it.
    serial: String,
    /// Start of validity, RFC 3339 UTC.
    not_before: String,
    /// End of validity, RFC 3339 UTC.
    not_after: String,
    /// Start of validity, UNIX seconds.
    not_before_unix: i64,
    /// End of validity, UNIX seconds.
    not_after_unix: i64,
    /// Whether it is a CA certificate.
    is_ca: bool,
    /// The TLS purposes its extended key usage allows.
    extended_key_usage: Vec<&'static str>,
    /// DNS subject alternative names.
    dns_names: Vec<String>,
    /// IP subject alternative names.
    ip_addresses: Vec<String>,
    /// URI subject alternative names (claims, identity).
    uris: Vec<String>,
}

impl CertView {
    /// The view of one parsed certificate.
    fn new(info: &CertInfo) -> CertView {
        let mut eku = Vec::new();
        if info.server_auth {
            eku.push("serverAuth");
        }
        if info.client_auth {
            eku.push("clientAuth");
        }
        CertView {
            subject: info.subject.clone(),
            common_name: info.common_name.clone(),
            issuer: info.issuer.clone(),
            serial: info.serial.clone(),
            not_before: rfc3339(info.not_before),
            not_after: rfc3339(info.not_after),
            not_before_unix: info.not_before,
            not_after_unix: info.not_after,
            is_ca: info.is_ca,
            extended_key_usage: eku,
            dns_names: info.dns_names.clone(),
            ip_addresses: info.ip_addresses.iter().map(|ip| ip.to_string()).collect(),
            uris: info.uris.clone(),
        }
    }
}

/// What only one kind of bundle has.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum KindView {
    /// Server bundles: revocations and the storage key's presence.
    Server {
        /// Revoked client serials.
        denylist: Vec<String>,
        /// Whether a storage key is present (never the key).
        storage_key: bool,
    },
    /// Client bundles: who the server will see and what it may do.
    Client {
        /// `NAME#SERIAL`, as appended to lease owners.
        identity: String,
        /// Namespace → permission; `None` when the claims are malformed.
        claims: Option<BTreeMap<String, String>>,
        /// Why the claims cannot be read, if they cannot.
        claims_error: Option<String>,
    },
}

/// A whole bundle as inspect shows it.
#[derive(Debug, Serialize)]
struct BundleView {
    /// `server` or `client`.
    kind: &'static str,
    /// The file read.
    file: String,
    /// The bundle's own certificate.
    certificate: CertView,
    /// The CA certificates it carries.
    ca_certificates: Vec<CertView>,
    /// The kind-specific part, flattened into the same object.
    #[serde(flatten)]
    extra: KindView,
}

/// The view of a server bundle.
fn server_view(path: &Path, b: &ServerBundle) -> BundleView {
    BundleView {
        kind: "server",
        file: path.display().to_string(),
        certificate: CertView::new(&b.leaf),
        ca_certificates: b.cas.iter().map(CertView::new).collect(),
        extra: KindView::Server {
            denylist: b.denylist.iter().cloned().collect(),
            storage_key: b.storage_key.is_some(),
        },
    }
}

/// The view of a client bundle. Malformed claims are shown, not fatal:
/// inspecting a bundle the server refuses is exactly when one needs to.
fn client_view(path: &Path, b: &ClientBundle) -> BundleView {
    let (claims, claims_error) = match b.leaf.claims() {
        Ok(c) => (
            Some(c.grants().map(|(ns, p)| (ns.to_string(), p.to_string())).collect()),
            None,
        ),
        Err(e) => (None, Some(e.to_string())),
    };
    BundleView {
        kind: "client",
        file: path.display().to_string(),
        certificate: CertView::new(&b.leaf),
        ca_certificates: b.cas.iter().map(CertView::new).collect(),
        extra: KindView::Client {
            identity: b.leaf.identity(),
            claims,
            claims_error,
        },
    }
}

/// Whether a certificate is valid now, as a note after its end date.
fn status(c: &CertView, now: i64) -> &'static str {
    if now > c.not_after_unix {
        " (EXPIRED)"
    } else if now < c.not_before_unix {
        " (not yet valid)"
    } else {
        ""
    }
}

/// One `label: value` line, values aligned in one column.
fn field(pad: &str, label: &str, value: &str) -> String {
    format!("{pad}{label:<14}{value}\n")
}

/// The lines describing one certificate, indented by `pad`.
fn cert_lines(out: &mut String, c: &CertView, pad: &str, now: i64) {
    let mut line = |label: &str, value: String| out.push_str(&field(pad, label, &value));
    line("subject:", c.subject.clone());
    line("issuer:", c.issuer.clone());
    line("serial:", c.serial.clone());
    line("not before:", format_time(c.not_before_unix));
    line(
        "not after:",
        format!("{}{}", format_time(c.not_after_unix), status(c, now)),
    );
    line("CA:", if c.is_ca { "yes" } else { "no" }.to_string());
    if !c.is_ca {
        line("key usage:", list(&c.extended_key_usage));
        line("DNS names:", list(&c.dns_names));
        line("IP addresses:", list(&c.ip_addresses));
        line("URIs:", list(&c.uris));
    }
}

/// The text output: the bundle's certificate, its kind-specific fields,
/// then its CA certificates.
fn text(v: &BundleView) -> String {
    let now = unix_now();
    let mut out = format!("{} bundle {}\n", v.kind, v.file);
    cert_lines(&mut out, &v.certificate, "  ", now);
    match &v.extra {
        KindView::Server { denylist, storage_key } => {
            out.push_str(&field("  ", "denylist:", &list(denylist)));
            let key = if *storage_key { "present (not shown)" } else { "absent" };
            out.push_str(&field("  ", "storage key:", key));
        }
        KindView::Client {
            identity,
            claims,
            claims_error,
        } => {
            let shown = match (claims, claims_error) {
                (_, Some(e)) => format!("INVALID: {e} (the server refuses this certificate)"),
                (Some(c), None) if c.is_empty() => "(none): every namespace is refused".to_string(),
                (Some(c), None) => list(c.iter().map(|(ns, p)| format!("{ns}={p}"))),
                (None, None) => "(none)".to_string(),
            };
            out.push_str(&field("  ", "claims:", &shown));
            out.push_str(&field("  ", "identity:", identity));
        }
    }
    for (i, ca) in v.ca_certificates.iter().enumerate() {
        out.push_str(&format!("CA certificate {}\n", i + 1));
        cert_lines(&mut out, ca, "  ", now);
    }
    out
}

/// A UNIX time as RFC 3339 in UTC (`2025-01-31T12:00:00Z`), computed with
/// the civil-from-days algorithm (H. Hinnant) since the binary has no
/// date library of its own.
fn rfc3339(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use lockd_auth::claims::Claims;
    use lockd_auth::issue::{self, Validity};

    use super::*;

    /// The value on the first line labelled `label`.
    fn value<'a>(shown: &'a str, label: &str) -> &'a str {
        shown
            .lines()
            .find_map(|l| l.trim_start().strip_prefix(label))
            .map(str::trim)
            .unwrap_or_else(|| panic!("no {label} line in:\n{shown}"))
    }

    #[test]
    fn rfc3339_agrees_with_the_library_dates() {
        let samples = [
            0,
            951_782_400,   // 2000-02-29, a leap day in a century leap year
            1_700_000_000, // 2023-11-14 22:13:20
            4_107_542_399, // 2100-02-28 23:59:59, no leap day in 2100
            253_402_300_799,
            -86_400,
        ];
        for t in samples {
            let expected = format_time(t).replace(' ', "T").replace("TUTC", "Z");
            assert_eq!(rfc3339(t), expected, "{t}");
        }
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn views_show_what_matters_and_never_keys() {
        let year = Validity::for_duration(Duration::from_secs(365 * 86_400));
        let ca = issue::new_ca("test-ca", &year).expect("ca");
        let mut server = issue::new_server(&ca, "srv", &[], &year).expect("server");
        server.denylist.insert("abc".into());
        let view = server_view(Path::new("/x/server.pem"), &server);
        let shown = text(&view);
        assert_eq!(value(&shown, "denylist:"), "abc", "{shown}");
        assert_eq!(value(&shown, "storage key:"), "present (not shown)", "{shown}");
        assert_eq!(value(&shown, "key usage:"), "serverAuth", "{shown}");
        assert_eq!(value(&shown, "IP addresses:"), "127.0.0.1, ::1", "{shown}");
        let json = serde_json::to_value(&view).expect("json");
        assert_eq!(json["storage_key"], true);
        assert_eq!(json["certificate"]["is_ca"], false);
        assert_eq!(json["ca_certificates"][0]["is_ca"], true);
        let json_text = json.to_string();
        let key = server.storage_key.expect("key");
        let key_hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
        assert!(!json_text.contains(&key_hex) && !shown.contains(&key_hex));
        assert!(!json_text.contains("PRIVATE KEY") && !shown.contains("PRIVATE KEY"));

        let mut claims = Claims::none();
        claims.parse_flag("orders=r,reports=rw").expect("claims");
        let client = issue::new_client(&ca, "worker", &claims, &year).expect("client");
        let view = client_view(Path::new("c.pem"), &client);
        assert_eq!(value(&text(&view), "claims:"), "orders=r, reports=rw");
        let json = serde_json::to_value(&view).expect("json");
        assert_eq!(json["claims"]["orders"], "r");
        assert_eq!(json["claims_error"], serde_json::Value::Null);
        assert_eq!(json["identity"], format!("worker#{}", client.leaf.serial));
        assert!(json.get("denylist").is_none(), "client views have no denylist");
    }
}
