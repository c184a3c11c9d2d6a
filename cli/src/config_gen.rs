//! `lockd config gen`: a commented YAML template of every server setting.
//!
//! The template is generated from [`SETTINGS`], so it lists exactly the
//! settings the server reads, each with its built-in default and the same
//! explanation `--help` gives. Loading it back changes nothing: every value
//! is the default.
//!
//! One deliberate difference from lockd: lockd's template says
//! `store: mem://`, while this server's default store is
//! `disk://$HOME/.lockd/data`. The template writes the default (with
//! `$HOME` expanded), so that running with the generated file keeps data
//! across restarts exactly as running without it would; the comment above
//! the line shows how to switch to `mem://`.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use serde_norway::Value;

use crate::error::CliError;
use crate::settings::{self, Kind, SETTINGS};

const CONFIG_AFTER_HELP: &str = "\
Examples:
  # Write ~/.lockd/config.yaml (refuses to replace an existing file)
  lockd config gen

  # Look at the template without writing anything
  lockd config gen --stdout";

const GEN_AFTER_HELP: &str = "\
The file lists every server setting with its default and a one-line \
explanation. Keys are flag names; a flag or LOCKD_* variable overrides the file. \
The store line holds this server's default, disk://$HOME/.lockd/data with $HOME \
expanded (lockd writes mem:// there); set it to mem:// for a throwaway server.

Examples:
  # Write ~/.lockd/config.yaml (its directory is created with mode 0700)
  lockd config gen

  # Write somewhere else, replacing an older file
  lockd config gen --out /etc/lockd/config.yaml --force

  # Print it instead
  lockd config gen --stdout | less";

/// `lockd config ...`.
#[derive(Debug, Args)]
#[command(after_help = CONFIG_AFTER_HELP)]
pub(crate) struct ConfigArgs {
    #[command(subcommand)]
    command: ConfigCommand,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Write a commented config file with every server setting at its default.
    #[command(after_help = GEN_AFTER_HELP)]
    Gen(GenArgs),
}

#[derive(Debug, Args)]
struct GenArgs {
    /// Print the template on standard output instead of writing a file.
    #[arg(long, conflicts_with_all = ["out", "force"])]
    stdout: bool,
    /// File to write [default: $HOME/.lockd/config.yaml]; missing directories are created with mode 0700.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Replace the file if it already exists.
    #[arg(long)]
    force: bool,
}

/// Runs `lockd config ...`.
pub(crate) fn run(args: ConfigArgs, home: Option<&Path>) -> Result<(), CliError> {
    match args.command {
        ConfigCommand::Gen(g) => {
            let text = template(home);
            if g.stdout {
                let mut out = std::io::stdout().lock();
                return out.write_all(text.as_bytes()).map_err(|source| CliError::Write {
                    path: PathBuf::from("standard output"),
                    source,
                });
            }
            let path = match g.out.or_else(|| settings::default_config_path(home)) {
                Some(p) => p,
                None => {
                    return Err(CliError::Missing(
                        "$HOME is not set, so there is no default path; pass --out FILE or --stdout".into(),
                    ))
                }
            };
            write_file(&path, &text, g.force)?;
            println!("wrote {}", path.display());
            Ok(())
        }
    }
}

/// Writes `text` to `path` (mode 0600: later settings may hold secrets),
/// creating missing parent directories with mode 0700. Without `force` an
/// existing file is left alone; the check and the create are one step.
fn write_file(path: &Path, text: &str, force: bool) -> Result<(), CliError> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let fail = |p: &Path| {
        let p = p.to_path_buf();
        move |source| CliError::Write { path: p, source }
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(fail(dir))?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).mode(0o600);
    if force {
        opts.create(true).truncate(true);
    } else {
        opts.create_new(true);
    }
    let mut file = match opts.open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(CliError::Refused(format!(
                "{} already exists; pass --force to replace it",
                path.display()
            )))
        }
        Err(e) => return Err(fail(path)(e)),
    };
    file.write_all(text.as_bytes()).map_err(fail(path))?;
    file.sync_all().map_err(fail(path))
}

/// A YAML scalar for `text`: numbers stay numbers, booleans booleans, and
/// strings are quoted only where YAML needs it (`":9341"`).
fn scalar(kind: Kind, text: &str) -> String {
    let value = match (kind, text) {
        (Kind::Switch, "true") => Value::Bool(true),
        (Kind::Switch, _) => Value::Bool(false),
        (Kind::Text, t) => match t.parse::<u64>() {
            Ok(n) => Value::Number(n.into()),
            Err(_) => Value::String(t.to_string()),
        },
    };
    serde_norway::to_string(&value)
        .map(|s| s.trim_end().to_string())
        .unwrap_or_else(|_| format!("{text:?}"))
}

/// `text` as `# ` lines of at most 80 columns.
fn comment(text: &str) -> String {
    let mut out = String::new();
    let mut line = String::from("#");
    for word in text.split_whitespace() {
        if line.len() > 1 && line.len() + 1 + word.len() > 80 {
            out.push_str(&line);
            out.push('\n');
            line = String::from("#");
        }
        line.push(' ');
        line.push_str(word);
    }
    out.push_str(&line);
    out.push('\n');
    out
}

/// The template text; `home` expands the `$HOME`-relative defaults.
pub(crate) fn template(home: Option<&Path>) -> String {
    let mut out = format!(
        "# lockd server configuration, written by `lockd config gen` (lockd-rs {}).\n\
         #\n\
         # Keys are the server's flag names (see `lockd --help`). A flag on the\n\
         # command line or its LOCKD_* environment variable overrides the value here.\n\
         # Durations: 30s, 1m30s, 500ms or plain seconds. Sizes: bytes or 512KiB, 4MB,\n\
         # 100MiB. Keys this version does not know are reported and ignored.\n",
        env!("CARGO_PKG_VERSION")
    );
    for s in SETTINGS {
        out.push('\n');
        out.push_str(&comment(&format!("{} (env {})", s.help, s.env)));
        match (s.default_text(home), s.default) {
            (Some(v), _) => out.push_str(&format!("{}: {}\n", s.key, scalar(s.kind, &v))),
            (None, _) if s.key == "store" => out.push_str(&format!(
                "# $HOME was not set when this file was written: choose a store.\n# {}: disk:///var/lib/lockd\n",
                s.key
            )),
            (None, _) => out.push_str(&format!(
                "# $HOME was not set when this file was written: name the file.\n# {}: /etc/lockd/{}.pem\n",
                s.key, s.key
            )),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config_file;
    use crate::resolve::{RawSettings, ServerSettings, Store};

    fn home() -> &'static Path {
        Path::new("/home/tess")
    }

    #[test]
    fn template_loads_back_without_warnings_and_changes_nothing() {
        let text = template(Some(home()));
        let file = config_file::parse(Path::new("gen.yaml"), &text).expect("template parses");
        assert!(file.unknown.is_empty(), "unknown keys: {:?}", file.unknown);
        for s in SETTINGS {
            let want = s.default_text(Some(home()));
            assert_eq!(file.get(s.key).map(str::to_string), want, "key {}", s.key);
        }
        let matches = crate::command(Some(home()))
            .try_get_matches_from(["lockd"])
            .expect("no arguments parse");
        let settings = ServerSettings::from_raw(&RawSettings::merge(&matches, Some(&file))).expect("settings valid");
        assert_eq!(settings.store, Store::Disk(PathBuf::from("/home/tess/.lockd/data")));
        assert_eq!(settings.json_max, 100 << 20);
    }

    #[test]
    fn template_quotes_what_yaml_needs() {
        let text = template(Some(home()));
        assert!(text.contains("\nlisten: "), "{text}");
        assert!(text.lines().all(|l| l.len() <= 80), "comments are wrapped: {text}");
        assert!(text.contains("\nhttp2-max-concurrent-streams: 1024\n"), "{text}");
        assert!(text.contains("\ndisable-mtls: false\n"), "{text}");
        assert!(text.contains("\nbundle: /home/"), "bundle defaults under HOME: {text}");
        assert!(text.contains("(env LOCKD_JSON_MAX)"), "{text}");
    }

    #[test]
    fn template_without_home_comments_the_store_out() {
        let text = template(None);
        let file = config_file::parse(Path::new("gen.yaml"), &text).expect("template parses");
        assert!(file.unknown.is_empty());
        assert_eq!(file.get("store"), None);
    }

    #[test]
    fn write_refuses_to_overwrite_without_force() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("nested").join("config.yaml");
        write_file(&path, "listen: ':1'\n", false).expect("first write");
        let mode = |p: &Path| std::fs::metadata(p).map(|m| m.permissions().mode() & 0o777).ok();
        assert_eq!(mode(&dir.path().join("nested")), Some(0o700));
        assert_eq!(mode(&path), Some(0o600));
        let err = write_file(&path, "listen: ':2'\n", false).expect_err("exists");
        assert!(err.to_string().contains("--force"), "{err}");
        assert_eq!(std::fs::read_to_string(&path).ok().as_deref(), Some("listen: ':1'\n"));
        write_file(&path, "listen: ':2'\n", true).expect("forced write");
        assert_eq!(std::fs::read_to_string(&path).ok().as_deref(), Some("listen: ':2'\n"));
    }
}
