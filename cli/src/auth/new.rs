//! `lockd auth new ca|server|client`: minting the CA and the bundles it
//! signs, written 0600 under `$HOME/.lockd` unless `--out` says otherwise.
//!
//! Two things here go beyond "generate and write", both so that replacing
//! a file never quietly undoes an earlier decision:
//! * replacing a CA bundle with `--force` keeps its storage key, because
//!   stores encrypted under it would otherwise no longer open with server
//!   bundles issued by the new CA;
//! * a new server bundle starts with the revoked serials of the
//!   `server*.pem` bundles beside it (including the one it replaces), so
//!   adding or reissuing a server never re-admits a revoked client.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use lockd_auth::bundle::{CaBundle, ServerBundle};
use lockd_auth::cert::CertInfo;
use lockd_auth::verify::format_time;
use lockd_auth::{files, issue, AuthError};

use super::common::{self, bundle_dir, emit, failed, file_or_default, list, parent_dir, require_file};
use super::flags::{self, ClaimFlags};
use crate::error::CliError;

const NEW_AFTER_HELP: &str = "\
Examples:
  # A CA, then a server and a client bundle signed by it, all in ~/.lockd
  lockd auth new ca
  lockd auth new server --hosts lockd.internal,10.0.0.7
  lockd auth new client --cn worker-1 -n orders=rw";

const CA_AFTER_HELP: &str = "\
The CA bundle holds the CA certificate, its private key and the storage key \
(the root key for at-rest encryption that every server bundle it issues gets a \
copy of). It is written with mode 0600 in a 0700 directory. With --force, the \
certificate and key are replaced but the storage key of the bundle being \
replaced is kept, so existing encrypted stores still open; delete the file \
first to start over with a new storage key.

Examples:
  # ~/.lockd/ca.pem, valid for ten years
  lockd auth new ca

  # Somewhere else, with another name and lifetime
  lockd auth new ca --out /etc/lockd/ca.pem --cn acme-lockd-ca --valid-for 43800h

  # Replace an existing CA (then reissue every server and client bundle)
  lockd auth new ca --force";

const SERVER_AFTER_HELP: &str = "\
Without --out the bundle goes to the first free name in ~/.lockd: server.pem, \
then server02.pem, server03.pem, ... (with --force and no --out, server.pem is \
replaced). Without --hosts the certificate names *, localhost, 127.0.0.1 and \
::1. The bundle gets the CA certificate, the CA's storage key, and the revoked \
serials of the server*.pem bundles beside it.

Examples:
  # ~/.lockd/server.pem for local use
  lockd auth new server

  # A server reached by name and address, valid for 90 days
  lockd auth new server --hosts lockd.internal,10.0.0.7 --valid-for 2160h

  # Reissue ~/.lockd/server.pem in place (its denylist is kept)
  lockd auth new server --force --hosts lockd.internal";

const CLIENT_AFTER_HELP: &str = "\
Claims say which namespaces the certificate may read (r), write (w: leases \
and state changes) or both (rw). -n takes NAME=PERM items, repeated or \
comma-separated; a bare NAME means rw. --read-all, --write-all and --rw-all \
grant every namespace. With no claim flag at all the certificate gets \
default=rw. Without --out the bundle goes to the first free name in \
~/.lockd: client.pem, then client02.pem, ... (with --force and no --out, \
client.pem is replaced).

Examples:
  # ~/.lockd/client.pem with default=rw
  lockd auth new client

  # A worker that writes orders and reads reports
  lockd auth new client --cn worker-1 -n orders=rw -n reports=r

  # An operator who may read everything
  lockd auth new client --cn ops --read-all --out ops.pem";

/// `lockd auth new ...`.
#[derive(Debug, Args)]
#[command(after_help = NEW_AFTER_HELP)]
pub(super) struct NewArgs {
    /// What to create.
    #[command(subcommand)]
    command: NewCommand,
}

/// The three kinds of bundle `new` creates.
#[derive(Debug, Subcommand)]
enum NewCommand {
    /// Create the certificate authority that signs server and client certificates.
    #[command(after_help = CA_AFTER_HELP)]
    Ca(CaArgs),
    /// Create a server bundle (certificate, key, CA, storage key) signed by the CA.
    #[command(after_help = SERVER_AFTER_HELP)]
    Server(ServerArgs),
    /// Create a client bundle (certificate with namespace claims, key, CA) signed by the CA.
    #[command(after_help = CLIENT_AFTER_HELP)]
    Client(ClientArgs),
}

/// Flags of `lockd auth new ca`.
#[derive(Debug, Args)]
struct CaArgs {
    /// File to write [default: $HOME/.lockd/ca.pem]; missing directories are created with mode 0700.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Common name of the CA certificate.
    #[arg(long, value_name = "NAME", default_value = "lockd-ca")]
    cn: String,
    /// How long the CA is valid (Go duration: 87600h is ten years; or seconds).
    #[arg(long, value_name = "DURATION", default_value = "87600h")]
    valid_for: String,
    /// Replace the file if it exists (its storage key is kept).
    #[arg(long)]
    force: bool,
}

/// Flags of `lockd auth new server`.
#[derive(Debug, Args)]
struct ServerArgs {
    /// CA bundle to sign with [default: $HOME/.lockd/ca.pem].
    #[arg(long, value_name = "FILE")]
    ca_in: Option<PathBuf>,
    /// File to write [default: the first free $HOME/.lockd/server*.pem].
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Common name of the server certificate.
    #[arg(long, value_name = "NAME", default_value = "lockd-server")]
    cn: String,
    /// Host names and IP addresses clients reach the server by; comma-separated or repeated [default: *, localhost, 127.0.0.1, ::1].
    #[arg(long, value_name = "HOST[,HOST...]")]
    hosts: Vec<String>,
    /// How long the certificate is valid (Go duration: 8760h is a year; or seconds).
    #[arg(long, value_name = "DURATION", default_value = "8760h")]
    valid_for: String,
    /// Replace the file if it exists; without --out, replace server.pem.
    #[arg(long)]
    force: bool,
}

/// Flags of `lockd auth new client`.
#[derive(Debug, Args)]
struct ClientArgs {
    /// CA bundle to sign with [default: $HOME/.lockd/ca.pem].
    #[arg(long, value_name = "FILE")]
    ca_in: Option<PathBuf>,
    /// File to write [default: the first free $HOME/.lockd/client*.pem].
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Common name of the client certificate (shown in lease owners as NAME#serial).
    #[arg(long, value_name = "NAME", default_value = "lockd-client")]
    cn: String,
    /// Namespace claims: NAME=r|w|rw, comma-separated or repeated; a bare NAME means rw.
    #[arg(short = 'n', long = "namespace", value_name = "SPEC")]
    namespaces: Vec<String>,
    /// May read every namespace (ALL=r).
    #[arg(long)]
    read_all: bool,
    /// May write every namespace (ALL=w).
    #[arg(long)]
    write_all: bool,
    /// May read and write every namespace (ALL=rw).
    #[arg(long)]
    rw_all: bool,
    /// How long the certificate is valid (Go duration: 8760h is a year; or seconds).
    #[arg(long, value_name = "DURATION", default_value = "8760h")]
    valid_for: String,
    /// Replace the file if it exists; without --out, replace client.pem.
    #[arg(long)]
    force: bool,
}

/// Runs `lockd auth new ...`.
pub(super) fn run(args: NewArgs, home: Option<&Path>) -> Result<(), CliError> {
    match args.command {
        NewCommand::Ca(a) => new_ca(a, home),
        NewCommand::Server(a) => new_server(a, home),
        NewCommand::Client(a) => new_client(a, home),
    }
}

/// Refuses early when `path` exists and `--force` was not given, so no
/// key is generated for nothing. `files::write_private` checks again at
/// the moment of writing, which is what actually protects the file.
fn refuse_existing(path: &Path, force: bool) -> Result<(), CliError> {
    if !force && common::exists(path) {
        return Err(failed(AuthError::Exists(path.to_path_buf())));
    }
    Ok(())
}

/// The output file of `new server|client`: `--out`, or `<stem>.pem` with
/// `--force` (the one to replace), or the first free `<stem>NN.pem`.
fn leaf_out(out: Option<PathBuf>, home: Option<&Path>, stem: &str, force: bool) -> Result<PathBuf, CliError> {
    if let Some(path) = out {
        return Ok(path);
    }
    let dir = bundle_dir(home, "out")?;
    Ok(if force {
        dir.join(format!("{stem}.pem"))
    } else {
        files::next_free(&dir, stem)
    })
}

/// Loads the CA bundle that signs, with a hint when there is none yet.
fn load_ca(ca_in: Option<PathBuf>, home: Option<&Path>) -> Result<(PathBuf, CaBundle), CliError> {
    let path = file_or_default(ca_in, home, "ca-in", "ca.pem")?;
    require_file(&path, "CA bundle", "ca-in", "create one with `lockd auth new ca`")?;
    let ca = CaBundle::load(&path).map_err(failed)?;
    Ok((path, ca))
}

/// The lines every `new` command shows about what it wrote.
fn written(path: &Path, info: &CertInfo) -> String {
    format!(
        "wrote {}\n  subject:     {}\n  serial:      {}\n  expires:     {}\n",
        path.display(),
        info.subject,
        info.serial,
        format_time(info.not_after)
    )
}

/// `lockd auth new ca`.
fn new_ca(args: CaArgs, home: Option<&Path>) -> Result<(), CliError> {
    let out = file_or_default(args.out, home, "out", "ca.pem")?;
    let cn = common::common_name(&args.cn)?;
    let validity = common::validity(&args.valid_for)?;
    refuse_existing(&out, args.force)?;
    let mut ca = issue::new_ca(cn, &validity).map_err(failed)?;
    let mut key_note = "new (not shown)".to_string();
    if args.force && common::exists(&out) {
        match CaBundle::load(&out) {
            Ok(old) if old.storage_key.is_some() => {
                ca.storage_key = old.storage_key;
                key_note = "kept from the CA bundle it replaces (not shown)".into();
            }
            Ok(_) => {}
            Err(e) => eprintln!("lockd: note: the file being replaced is not a readable CA bundle ({e}); the new CA has a new storage key"),
        }
    }
    files::write_private(&out, &ca.to_pem(), args.force).map_err(failed)?;
    emit(&format!("{}  storage key: {key_note}\n", written(&out, &ca.info)))
}

/// The union of the denylists of the `server*.pem` bundles beside `out`
/// and of `out` itself when it is about to be replaced, with how many
/// bundles were read. A bundle that cannot be read is skipped with a note
/// on stderr: it should not stop a new server from being issued, but the
/// operator should know its revocations were not carried over.
fn inherited_denylist(out: &Path) -> (BTreeSet<String>, usize) {
    let mut paths = match files::server_bundles(parent_dir(out)) {
        Ok(paths) => paths,
        Err(e) => {
            eprintln!("lockd: note: revoked serials of other server bundles not carried over: {e}");
            Vec::new()
        }
    };
    if common::exists(out) {
        paths.push(out.to_path_buf());
    }
    let mut seen = BTreeSet::new();
    paths.retain(|p| seen.insert(std::fs::canonicalize(p).unwrap_or_else(|_| p.clone())));
    let mut serials = BTreeSet::new();
    let mut read = 0;
    for path in paths {
        match ServerBundle::load(&path) {
            Ok(b) => {
                read += 1;
                serials.extend(b.denylist);
            }
            Err(e) => eprintln!(
                "lockd: note: revoked serials not carried over from {}: {e}",
                path.display()
            ),
        }
    }
    (serials, read)
}

/// `lockd auth new server`.
fn new_server(args: ServerArgs, home: Option<&Path>) -> Result<(), CliError> {
    let cn = common::common_name(&args.cn)?;
    let validity = common::validity(&args.valid_for)?;
    let hosts = flags::hosts(&args.hosts)?;
    let out = leaf_out(args.out, home, "server", args.force)?;
    let (_, ca) = load_ca(args.ca_in, home)?;
    refuse_existing(&out, args.force)?;
    let mut bundle = issue::new_server(&ca, cn, &hosts, &validity).map_err(failed)?;
    let (denylist, read) = inherited_denylist(&out);
    bundle.denylist = denylist;
    files::write_private(&out, &bundle.to_pem(), args.force).map_err(failed)?;
    let mut text = written(&out, &bundle.leaf);
    let names = bundle
        .leaf
        .dns_names
        .iter()
        .cloned()
        .chain(bundle.leaf.ip_addresses.iter().map(|ip| ip.to_string()));
    text.push_str(&format!("  hosts:       {}\n", list(names)));
    text.push_str(if bundle.storage_key.is_some() {
        "  storage key: copied from the CA bundle (not shown)\n"
    } else {
        "  storage key: none (the CA bundle has none; the store will not be encrypted at rest)\n"
    });
    if !bundle.denylist.is_empty() {
        text.push_str(&format!(
            "  denylist:    {} revoked serial(s) carried over from {read} server bundle(s) in {}\n",
            bundle.denylist.len(),
            parent_dir(&out).display()
        ));
    }
    emit(&text)
}

/// `lockd auth new client`.
fn new_client(args: ClientArgs, home: Option<&Path>) -> Result<(), CliError> {
    let cn = common::common_name(&args.cn)?;
    let validity = common::validity(&args.valid_for)?;
    let claims = ClaimFlags {
        namespaces: args.namespaces,
        read_all: args.read_all,
        write_all: args.write_all,
        rw_all: args.rw_all,
    }
    .claims()?;
    let out = leaf_out(args.out, home, "client", args.force)?;
    let (_, ca) = load_ca(args.ca_in, home)?;
    refuse_existing(&out, args.force)?;
    let bundle = issue::new_client(&ca, cn, &claims, &validity).map_err(failed)?;
    files::write_private(&out, &bundle.to_pem(), args.force).map_err(failed)?;
    emit(&format!(
        "{}  claims:      {claims}\n  identity:    {}\n",
        written(&out, &bundle.leaf),
        bundle.leaf.identity()
    ))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use lockd_auth::issue::Validity;

    use super::*;

    #[test]
    fn leaf_files_count_up_unless_forced() {
        let home = tempfile::tempdir().expect("tempdir");
        let dir = files::default_dir(home.path());
        let next = |force| leaf_out(None, Some(home.path()), "server", force).expect("path");
        assert_eq!(next(false), dir.join("server.pem"));
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join("server.pem"), "").expect("write");
        assert_eq!(next(false), dir.join("server02.pem"));
        assert_eq!(next(true), dir.join("server.pem"), "--force replaces the first");
        let named = PathBuf::from("/x/mine.pem");
        assert_eq!(
            leaf_out(Some(named.clone()), None, "server", false).expect("named"),
            named
        );
        let err = leaf_out(None, None, "client", false).expect_err("no home");
        assert!(err.to_string().contains("--out"), "{err}");
    }

    #[test]
    fn new_servers_inherit_revocations_and_skip_broken_bundles() {
        let dir = tempfile::tempdir().expect("tempdir");
        let year = Validity::for_duration(Duration::from_secs(86_400));
        let ca = issue::new_ca("ca", &year).expect("ca");
        let mut a = issue::new_server(&ca, "a", &[], &year).expect("a");
        a.denylist.insert("aa".into());
        let mut b = issue::new_server(&ca, "b", &[], &year).expect("b");
        b.denylist.insert("bb".into());
        let mut other = issue::new_server(&ca, "c", &[], &year).expect("c");
        other.denylist.insert("cc".into());
        std::fs::write(dir.path().join("server.pem"), a.to_pem()).expect("write");
        std::fs::write(dir.path().join("server02.pem"), b.to_pem()).expect("write");
        std::fs::write(dir.path().join("server03.pem"), "garbage").expect("write");
        // Not a server*.pem, but the file being replaced.
        std::fs::write(dir.path().join("edge.pem"), other.to_pem()).expect("write");

        let (serials, read) = inherited_denylist(&dir.path().join("server04.pem"));
        assert_eq!(serials.iter().map(String::as_str).collect::<Vec<_>>(), vec!["aa", "bb"]);
        assert_eq!(read, 2);
        let (serials, read) = inherited_denylist(&dir.path().join("edge.pem"));
        assert_eq!(serials.len(), 3, "{serials:?}");
        assert_eq!(read, 3);
        // Replacing server.pem reads it once, not twice.
        let (_, read) = inherited_denylist(&dir.path().join("server.pem"));
        assert_eq!(read, 2);
    }
}
