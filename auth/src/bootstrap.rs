//! First-start set-up: make mTLS work with no preparation.
//!
//! lockd refuses plain connections by default, so the first `lockd serve`
//! on a machine needs a CA, a server bundle and a client bundle for the
//! operator. [`ensure`] creates whichever of them is missing and leaves
//! existing files alone, so running it on every start is safe, and an
//! operator who replaced a bundle by hand keeps theirs.
//!
//! Defaults, chosen for a single operator on their own machine:
//! * `ca.pem`: CN `lockd-ca`, valid 10 years. Replacing a CA means
//!   re-issuing every bundle, so it should outlive them comfortably.
//! * `server.pem`: CN `lockd-server`, valid 1 year, for the default hosts
//!   ([`crate::issue::DEFAULT_HOSTS`]): loopback plus `*`.
//! * `client.pem`: CN `lockd-client`, valid 1 year, claims `ALL=rw`. It is
//!   the operator's own administrator identity; other clients get
//!   narrower claims from `lockd auth new client`.
//!
//! Leaves expire after a year so that a copied bundle does not grant
//! access forever; deleting an expired `server.pem` or `client.pem` and
//! starting again issues a fresh one from the same CA.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::bundle::CaBundle;
use crate::claims::{Claims, Perm, ALL};
use crate::issue::{self, Validity};
use crate::{files, AuthError, Result};

const DAY: u64 = 24 * 60 * 60;

/// Lifetime of the bootstrap CA.
pub const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * DAY);
/// Lifetime of the bootstrap server certificate.
pub const SERVER_VALIDITY: Duration = Duration::from_secs(365 * DAY);
/// Lifetime of the bootstrap client certificate.
pub const CLIENT_VALIDITY: Duration = Duration::from_secs(365 * DAY);

/// Common name of the bootstrap CA.
pub const CA_CN: &str = "lockd-ca";
/// Common name of the bootstrap server certificate.
pub const SERVER_CN: &str = "lockd-server";
/// Common name of the bootstrap client certificate.
pub const CLIENT_CN: &str = "lockd-client";

/// File names inside the bundle directory.
pub const CA_FILE: &str = "ca.pem";
/// See [`CA_FILE`].
pub const SERVER_FILE: &str = "server.pem";
/// See [`CA_FILE`].
pub const CLIENT_FILE: &str = "client.pem";
/// See [`CA_FILE`].
pub const CONFIG_FILE: &str = "config.yaml";

/// Where the bundles are after [`ensure`], and which of them it wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bootstrapped {
    /// The bundle directory.
    pub dir: PathBuf,
    /// The CA bundle.
    pub ca: PathBuf,
    /// The server bundle.
    pub server: PathBuf,
    /// The client bundle.
    pub client: PathBuf,
    /// Files written by this call, in the order written; empty when
    /// everything was already there. Lets the caller tell the operator
    /// what was created and where.
    pub created: Vec<PathBuf>,
}

fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

/// Makes sure `dir` holds a CA, server and client bundle (and
/// `config.yaml` when `config_yaml` is given), creating only what is
/// missing; existing files are never modified.
///
/// A missing `ca.pem` next to an existing `server.pem` or `client.pem` is
/// an error: those were issued by a CA we no longer have, and a new CA
/// would issue bundles that do not trust them, so the operator has to
/// restore the CA or move the old bundles away.
pub fn ensure(dir: &Path, config_yaml: Option<&str>) -> Result<Bootstrapped> {
    files::create_private_dir(dir)?;
    let ca_path = dir.join(CA_FILE);
    let server_path = dir.join(SERVER_FILE);
    let client_path = dir.join(CLIENT_FILE);
    let mut created = Vec::new();

    let ca = if exists(&ca_path) {
        CaBundle::load(&ca_path)?
    } else {
        let orphans: Vec<&str> = [(&server_path, SERVER_FILE), (&client_path, CLIENT_FILE)]
            .into_iter()
            .filter(|(path, _)| exists(path))
            .map(|(_, name)| name)
            .collect();
        if !orphans.is_empty() {
            return Err(AuthError::bundle(
                format!("lockd directory {}", dir.display()),
                format!(
                    "{CA_FILE} is missing but {} exist(s); they were issued by a CA that is no longer here and a \
                     new CA would not match them: restore {CA_FILE}, or move them away to start afresh",
                    orphans.join(" and ")
                ),
            ));
        }
        let ca = issue::new_ca(CA_CN, &Validity::for_duration(CA_VALIDITY))?;
        files::write_private(&ca_path, &ca.to_pem(), false)?;
        created.push(ca_path.clone());
        ca
    };

    if !exists(&server_path) {
        let server = issue::new_server(&ca, SERVER_CN, &[], &Validity::for_duration(SERVER_VALIDITY))?;
        files::write_private(&server_path, &server.to_pem(), false)?;
        created.push(server_path.clone());
    }

    if !exists(&client_path) {
        let mut claims = Claims::none();
        claims.grant(ALL, Perm::ReadWrite)?;
        let client = issue::new_client(&ca, CLIENT_CN, &claims, &Validity::for_duration(CLIENT_VALIDITY))?;
        files::write_private(&client_path, &client.to_pem(), false)?;
        created.push(client_path.clone());
    }

    if let Some(yaml) = config_yaml {
        let config_path = dir.join(CONFIG_FILE);
        if !exists(&config_path) {
            files::write_private(&config_path, yaml, false)?;
            created.push(config_path);
        }
    }

    Ok(Bootstrapped {
        dir: dir.to_path_buf(),
        ca: ca_path,
        server: server_path,
        client: client_path,
        created,
    })
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::bundle::{ClientBundle, ServerBundle};
    use crate::cert::unix_now;
    use crate::claims::Access;
    use crate::verify;

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(path).expect("metadata").permissions().mode() & 0o777
    }

    fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
        let mut all: Vec<_> = fs::read_dir(dir)
            .expect("list")
            .map(|e| {
                let path = e.expect("entry").path();
                let bytes = fs::read(&path).expect("read");
                (path, bytes)
            })
            .collect();
        all.sort();
        all
    }

    #[test]
    fn a_fresh_directory_gets_a_working_set() {
        let home = tempfile::tempdir().expect("tempdir");
        let dir = files::default_dir(home.path());
        let done = ensure(&dir, Some("listen: 127.0.0.1:7000\n")).expect("bootstrap");
        assert_eq!(
            done.created,
            vec![
                done.ca.clone(),
                done.server.clone(),
                done.client.clone(),
                dir.join(CONFIG_FILE)
            ]
        );
        #[cfg(unix)]
        {
            assert_eq!(mode(&dir), 0o700);
            for path in &done.created {
                assert_eq!(mode(path), 0o600, "{}", path.display());
            }
        }
        assert_eq!(
            fs::read_to_string(dir.join(CONFIG_FILE)).expect("config"),
            "listen: 127.0.0.1:7000\n"
        );

        let ca = CaBundle::load(&done.ca).expect("ca");
        let server = ServerBundle::load(&done.server).expect("server");
        let client = ClientBundle::load(&done.client).expect("client");
        assert_eq!(ca.info.common_name.as_deref(), Some(CA_CN));
        assert!(ca.storage_key.is_some());
        assert_eq!(server.storage_key, ca.storage_key);
        assert_eq!(client.leaf.common_name.as_deref(), Some(CLIENT_CN));
        assert!(client
            .leaf
            .claims()
            .expect("claims")
            .allows("any-namespace", Access::Write));
        let now = unix_now();
        let report = verify::verify_server(&server, Some(&ca), now);
        assert!(report.passed(), "{report}");
        let report = verify::verify_client(&client, Some(&server), now);
        assert!(report.passed(), "{report}");
        assert!(ca.info.not_after - now > 9 * 365 * 86400);
    }

    #[test]
    fn a_second_run_changes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        ensure(dir.path(), Some("a: 1\n")).expect("first");
        let before = snapshot(dir.path());
        let again = ensure(dir.path(), Some("a: 2\n")).expect("second");
        assert!(again.created.is_empty(), "{:?}", again.created);
        assert_eq!(snapshot(dir.path()), before);
        // Without a config, none is written.
        let bare = tempfile::tempdir().expect("tempdir");
        ensure(bare.path(), None).expect("bare");
        assert!(!bare.path().join(CONFIG_FILE).exists());
    }

    #[test]
    fn a_deleted_client_is_reissued_by_the_same_ca() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = ensure(dir.path(), None).expect("first");
        let old_client = ClientBundle::load(&first.client).expect("client");
        let ca_bytes = fs::read(&first.ca).expect("ca");
        let server_bytes = fs::read(&first.server).expect("server");
        fs::remove_file(&first.client).expect("delete");

        let second = ensure(dir.path(), None).expect("second");
        assert_eq!(second.created, vec![first.client.clone()]);
        assert_eq!(fs::read(&first.ca).expect("ca"), ca_bytes);
        assert_eq!(fs::read(&first.server).expect("server"), server_bytes);
        let new_client = ClientBundle::load(&second.client).expect("client");
        assert_ne!(new_client.leaf.serial, old_client.leaf.serial);
        let server = ServerBundle::load(&second.server).expect("server");
        let report = verify::verify_client(&new_client, Some(&server), unix_now());
        assert!(report.passed(), "{report}");
    }

    #[test]
    fn refuses_to_replace_a_lost_ca() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = ensure(dir.path(), None).expect("first");
        fs::remove_file(&first.ca).expect("delete ca");
        let before = snapshot(dir.path());
        let err = ensure(dir.path(), None).expect_err("orphaned bundles").to_string();
        assert!(
            err.contains("ca.pem is missing") && err.contains("server.pem and client.pem"),
            "{err}"
        );
        assert_eq!(snapshot(dir.path()), before, "nothing written");
    }
}
