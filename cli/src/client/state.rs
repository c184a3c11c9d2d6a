//! `get`, `update`, `remove` and `describe`: a key's state document.

use std::io::IsTerminal;
use std::path::PathBuf;

use lockd_net::client::{ClientError, Conditions};
use tokio::io::AsyncRead;

use super::connect::Conn;
use super::inputs::{self, lease_ref, optional, HoldArgs, KeyArgs, Origins, TxnArgs, ENV_ETAG, ENV_VERSION};
use super::shell::{print_json, write_stdout, Format, Script};
use crate::error::CliError;

const GET_AFTER_HELP: &str = "\
The document is written exactly as the server stores it (compacted JSON). A key
without state prints nothing (an -o file is truncated to empty) and exits 0;
use --show-meta to tell the two apart (`no state` on stderr).

Examples:
  lockd client get                                  # lease holder's view, to stdout
  lockd client get -o orders.json --show-meta       # to a file; version and etag on stderr
  lockd client get --public --key orders            # committed state, no lease needed";

const UPDATE_AFTER_HELP: &str = "\
The document is streamed to the server, which checks and compacts it; the change
is staged until `release` commits it. Text output is
`export LOCKD_CLIENT_VERSION=...` and `export LOCKD_CLIENT_ETAG=...` for eval.

Examples:
  eval \"$(lockd client update ./orders.json)\"
  echo '{\"cursor\":42}' | lockd client update
  lockd client get | jq '.cursor += 1' | lockd client update --if-version \"$LOCKD_CLIENT_VERSION\"";

const REMOVE_AFTER_HELP: &str = "\
The deletion is staged until `release` commits it. Text output is
`export LOCKD_CLIENT_VERSION=...` and `unset LOCKD_CLIENT_ETAG` for eval.

Examples:
  lockd client remove && lockd client release
  lockd client remove --if-etag \"$LOCKD_CLIENT_ETAG\"";

const DESCRIBE_AFTER_HELP: &str = "\
Shows the committed metadata only; staged changes and the document itself are not
included.

Examples:
  lockd client describe --key orders
  lockd client describe --key orders --output json | jq -r .owner";

/// `lockd client get`.
#[derive(Debug, clap::Args)]
#[command(after_help = GET_AFTER_HELP)]
pub(super) struct GetArgs {
    #[command(flatten)]
    key: KeyArgs,
    #[command(flatten)]
    hold: HoldArgs,
    /// Where to write the document: a file, or - for stdout
    #[arg(short = 'o', long, value_name = "PATH", default_value = "-")]
    output: PathBuf,
    /// Read the committed state without a lease (--lease and --fencing-token are ignored)
    #[arg(long)]
    public: bool,
    /// Print the state's version and ETag (or `no state`) to stderr
    #[arg(long)]
    show_meta: bool,
}

/// `--if-version` and `--if-etag`: compare-and-set conditions.
#[derive(Debug, clap::Args)]
struct CasArgs {
    /// Refuse (version_conflict) unless the state is still at this version
    #[arg(long, value_name = "N")]
    if_version: Option<String>,
    /// Refuse (etag_mismatch) unless the state still has this ETag
    #[arg(long, value_name = "ETAG")]
    if_etag: Option<String>,
}

impl CasArgs {
    fn resolve(&self, origins: &Origins<'_>) -> Result<Conditions, CliError> {
        let if_version = match optional(self.if_version.as_deref()) {
            Some(v) => Some(origins.parse("if-version", "", &v, inputs::version)?),
            None => None,
        };
        let if_etag = match optional(self.if_etag.as_deref()) {
            Some(e) => {
                origins.parse("if-etag", "", &e, inputs::header_safe)?;
                Some(e)
            }
            None => None,
        };
        Ok(Conditions { if_version, if_etag })
    }
}

/// `lockd client update`.
#[derive(Debug, clap::Args)]
#[command(after_help = UPDATE_AFTER_HELP)]
pub(super) struct UpdateArgs {
    /// File holding the new JSON document, or - for stdin
    #[arg(value_name = "INPUT", default_value = "-")]
    input: PathBuf,
    #[command(flatten)]
    key: KeyArgs,
    #[command(flatten)]
    hold: HoldArgs,
    #[command(flatten)]
    txn: TxnArgs,
    #[command(flatten)]
    cas: CasArgs,
    /// Output format
    #[arg(long, value_enum, default_value_t)]
    output: Format,
}

/// `lockd client remove`.
#[derive(Debug, clap::Args)]
#[command(after_help = REMOVE_AFTER_HELP)]
pub(super) struct RemoveArgs {
    #[command(flatten)]
    key: KeyArgs,
    #[command(flatten)]
    hold: HoldArgs,
    #[command(flatten)]
    txn: TxnArgs,
    #[command(flatten)]
    cas: CasArgs,
    /// Output format
    #[arg(long, value_enum, default_value_t)]
    output: Format,
}

/// `lockd client describe`.
#[derive(Debug, clap::Args)]
#[command(after_help = DESCRIBE_AFTER_HELP)]
pub(super) struct DescribeArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// Output format (text: one `field: value` per line)
    #[arg(long, value_enum, default_value_t)]
    output: Format,
}

fn is_stdio(path: &std::path::Path) -> bool {
    path.as_os_str() == "-"
}

/// Reads the state and writes it to the file or stdout.
pub(super) async fn get(conn: &Conn, a: GetArgs, origins: &Origins<'_>) -> Result<(), CliError> {
    let doc = if a.public {
        let (key, namespace) = a.key.resolve()?;
        conn.client.get_public(&namespace, &key).await
    } else {
        let lease = lease_ref(&a.key, &a.hold, None, origins)?;
        conn.client.get(&lease).await
    }
    .map_err(|e| conn.failed(e))?;
    let body: &[u8] = doc.as_ref().map_or(&[], |d| d.body.as_ref());
    if is_stdio(&a.output) {
        write_stdout(body)?;
        if !body.is_empty() && std::io::stdout().is_terminal() {
            write_stdout(b"\n")?;
        }
    } else {
        std::fs::write(&a.output, body).map_err(|source| CliError::Write {
            path: a.output.clone(),
            source,
        })?;
    }
    if a.show_meta {
        match &doc {
            Some(d) => eprintln!("version: {}\netag: {}", d.version, d.etag),
            None => eprintln!("no state"),
        }
    }
    Ok(())
}

/// Streams the input to the server as the new state.
pub(super) async fn update(conn: &Conn, a: UpdateArgs, origins: &Origins<'_>) -> Result<(), CliError> {
    let lease = lease_ref(&a.key, &a.hold, Some(&a.txn), origins)?;
    let cond = a.cas.resolve(origins)?;
    let (reader, name): (Box<dyn AsyncRead + Send + Unpin>, String) = if is_stdio(&a.input) {
        if std::io::stdin().is_terminal() {
            eprintln!("lockd: reading the document from stdin (end with Ctrl-D)");
        }
        (Box::new(tokio::io::stdin()), "stdin".to_owned())
    } else {
        let name = a.input.display().to_string();
        let file = tokio::fs::File::open(&a.input)
            .await
            .map_err(|e| CliError::Request(format!("cannot read {name}: {e}")))?;
        (Box::new(file), name)
    };
    let answer = conn
        .client
        .update_reader(&lease, reader, &cond)
        .await
        .map_err(|e| match e {
            ClientError::Io(io) => CliError::Request(format!("cannot read {name}: {io}")),
            other => conn.failed(other),
        })?;
    match a.output {
        Format::Json => print_json(&answer),
        Format::Text => Script::default()
            .export(ENV_VERSION, answer.new_version)
            .export_or_unset(ENV_ETAG, &answer.new_state_etag)
            .print(),
    }
}

/// Stages the deletion of the state.
pub(super) async fn remove(conn: &Conn, a: RemoveArgs, origins: &Origins<'_>) -> Result<(), CliError> {
    let lease = lease_ref(&a.key, &a.hold, Some(&a.txn), origins)?;
    let cond = a.cas.resolve(origins)?;
    let answer = conn.client.remove(&lease, &cond).await.map_err(|e| conn.failed(e))?;
    match a.output {
        Format::Json => print_json(&answer),
        Format::Text => {
            let mut script = Script::default();
            if !answer.removed {
                script.comment("the key had no state to remove");
            }
            script
                .export(ENV_VERSION, answer.new_version)
                .unset(&[ENV_ETAG])
                .print()
        }
    }
}

/// Prints the key's committed metadata.
pub(super) async fn describe(conn: &Conn, a: DescribeArgs) -> Result<(), CliError> {
    let (key, namespace) = a.key.resolve()?;
    let d = conn
        .client
        .describe(&namespace, &key)
        .await
        .map_err(|e| conn.failed(e))?;
    match a.output {
        Format::Json => print_json(&d),
        Format::Text => {
            let or_dash = |s: &str| if s.is_empty() { "-".to_owned() } else { s.to_owned() };
            let fields = [
                ("namespace", d.namespace.clone()),
                ("key", d.key.clone()),
                ("owner", or_dash(&d.owner)),
                ("lease", or_dash(&d.lease_id)),
                ("expires_at_unix", d.expires_at_unix.to_string()),
                ("version", d.version.to_string()),
                ("etag", or_dash(&d.state_etag)),
                ("updated_at_unix", d.updated_at_unix.to_string()),
                ("query_hidden", d.metadata.query_hidden.to_string()),
            ];
            let text: String = fields.iter().map(|(k, v)| format!("{k}: {v}\n")).collect();
            write_stdout(text.as_bytes())
        }
    }
}
