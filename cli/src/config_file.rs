//! Loading the YAML config file.
//!
//! The file is a flat mapping of flag name → scalar, as lockd writes it.
//! Files written for lockd may hold settings this server does not have yet
//! (HA, S3 tuning, ...): those keys are reported so the operator knows
//! they are ignored, but do not stop the server. A known key with a value
//! of the wrong shape does stop it, since guessing could, say, serve on a
//! port nobody expects.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_norway::Value;

use crate::error::CliError;
use crate::settings::{self, Kind};

/// A parsed config file.
#[derive(Debug, Default)]
pub(crate) struct ConfigFile {
    /// Where it was read from (for messages).
    pub(crate) path: PathBuf,
    /// Known settings, as text in the syntax their flag takes.
    values: BTreeMap<&'static str, String>,
    /// Keys this server does not know, in file order.
    pub(crate) unknown: Vec<String>,
}

impl ConfigFile {
    /// The value the file gives `key`, if any.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    /// Prints one warning line per unknown key.
    pub(crate) fn warn_unknown(&self) {
        for key in &self.unknown {
            eprintln!(
                "lockd: warning: config file {}: ignoring unknown or not yet supported setting {key:?}",
                self.path.display()
            );
        }
    }
}

/// Reads `path`. A missing file is an error only if the operator named it
/// (`explicit`); the default location may simply not exist.
pub(crate) fn load(path: &Path, explicit: bool) -> Result<Option<ConfigFile>, CliError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => return Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(CliError::Config {
                path: path.to_path_buf(),
                reason: "no such file".into(),
            })
        }
        Err(e) => {
            return Err(CliError::Config {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })
        }
    };
    parse(path, &text).map(Some)
}

/// Parses the text of a config file read from `path`.
pub(crate) fn parse(path: &Path, text: &str) -> Result<ConfigFile, CliError> {
    let fail = |reason: String| CliError::Config {
        path: path.to_path_buf(),
        reason,
    };
    let doc: Value = serde_norway::from_str(text).map_err(|e| fail(one_line(&e.to_string())))?;
    let mut file = ConfigFile {
        path: path.to_path_buf(),
        ..ConfigFile::default()
    };
    let map = match doc {
        Value::Null => return Ok(file),
        Value::Mapping(m) => m,
        other => {
            return Err(fail(format!(
                "expected a mapping of setting: value, found {}",
                shape(&other)
            )))
        }
    };
    for (k, v) in map {
        let Value::String(key) = k else {
            return Err(fail(format!("setting names must be strings, found {}", shape(&k))));
        };
        let Some(setting) = settings::find(&key) else {
            file.unknown.push(key);
            continue;
        };
        let text = match (setting.kind, v) {
            (_, Value::Null) => continue,
            (Kind::Text, Value::String(s)) => s,
            (Kind::Text, Value::Number(n)) => n.to_string(),
            (Kind::Switch, Value::Bool(b)) => b.to_string(),
            (Kind::Text, other) => {
                return Err(fail(format!(
                    "setting {key:?}: expected a string or number, found {}",
                    shape(&other)
                )))
            }
            (Kind::Switch, other) => {
                return Err(fail(format!(
                    "setting {key:?}: expected true or false, found {}",
                    shape(&other)
                )))
            }
        };
        file.values.insert(setting.key, text);
    }
    Ok(file)
}

fn shape(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

/// Parser messages may span lines; the binary reports errors on one.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<ConfigFile, CliError> {
        parse(Path::new("/etc/lockd.yaml"), text)
    }

    #[test]
    fn known_keys_scalars_become_flag_text() {
        let f = parse_str("listen: \":9000\"\njson-max: 1048576\ndisable-mtls: true\nbundle:\n").expect("parses");
        assert_eq!(f.get("listen"), Some(":9000"));
        assert_eq!(f.get("json-max"), Some("1048576"));
        assert_eq!(f.get("disable-mtls"), Some("true"));
        assert_eq!(f.get("bundle"), None, "an empty value leaves the default");
        assert!(f.unknown.is_empty());
    }

    #[test]
    fn unknown_keys_are_collected_not_fatal() {
        let f = parse_str("ha: failover\nstore: mem://\ns3-sse: AES256\n").expect("parses");
        assert_eq!(f.unknown, vec!["ha".to_string(), "s3-sse".to_string()]);
        assert_eq!(f.get("store"), Some("mem://"));
    }

    #[test]
    fn wrong_types_fail_with_one_line() {
        let err = parse_str("listen: [a, b]\n").expect_err("a list is not a listen address");
        let msg = err.to_string();
        assert!(msg.contains("\"listen\"") && msg.contains("a list"), "{msg}");
        let err = parse_str("disable-mtls: sometimes\n").expect_err("not a boolean");
        assert!(err.to_string().contains("expected true or false"), "{err}");
        let err = parse_str("- a\n- b\n").expect_err("not a mapping");
        assert!(err.to_string().contains("expected a mapping"), "{err}");
        let err = parse_str("listen: [unclosed\n").expect_err("bad YAML");
        assert!(!err.to_string().contains('\n'), "{err}");
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn empty_file_is_fine() {
        let f = parse_str("").expect("parses");
        assert!(f.get("listen").is_none());
        let f = parse_str("# only a comment\n").expect("parses");
        assert!(f.unknown.is_empty());
    }

    #[test]
    fn missing_file_only_matters_when_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("absent.yaml");
        assert!(matches!(load(&path, false), Ok(None)));
        let err = load(&path, true).expect_err("named file is missing");
        assert!(err.to_string().contains("no such file"), "{err}");
    }
}
