//! What client commands print: shell lines meant for `eval`, or JSON.
//!
//! Values are single-quoted whenever they hold anything beyond a small
//! set of characters the shell never interprets, with embedded single
//! quotes written as `'\''`, so `eval` cannot run anything a key, owner or
//! ETag contains.

use std::io::Write;

use serde::Serialize;

use crate::error::CliError;

/// `--output` of the commands that report a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub(super) enum Format {
    /// Shell lines (`export NAME=value`, `unset NAME`) for eval
    #[default]
    Text,
    /// The server's JSON answer, indented
    Json,
}

/// Lines of shell, built up by a command and printed at once.
#[derive(Debug, Default)]
pub(super) struct Script {
    text: String,
}

impl Script {
    /// `export NAME=value`.
    pub(super) fn export(&mut self, name: &str, value: impl ToString) -> &mut Script {
        self.text
            .push_str(&format!("export {name}={}\n", quote(&value.to_string())));
        self
    }

    /// `export NAME=value` when there is a value, else `unset NAME`, so a
    /// value left over from an earlier `eval` does not linger.
    pub(super) fn export_or_unset(&mut self, name: &str, value: &str) -> &mut Script {
        if value.is_empty() {
            self.unset(&[name])
        } else {
            self.export(name, value)
        }
    }

    /// `unset NAME...`.
    pub(super) fn unset(&mut self, names: &[&str]) -> &mut Script {
        self.text.push_str(&format!("unset {}\n", names.join(" ")));
        self
    }

    /// A `# ...` line: read by people, ignored by `eval`.
    pub(super) fn comment(&mut self, text: &str) -> &mut Script {
        for line in text.lines() {
            self.text.push_str(&format!("# {line}\n"));
        }
        self
    }

    /// Writes the script to stdout.
    pub(super) fn print(&self) -> Result<(), CliError> {
        write_stdout(self.text.as_bytes())
    }
}

/// Quotes `value` for a POSIX shell.
pub(super) fn quote(value: &str) -> String {
    let plain = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.,:/@%+=".contains(&b));
    if plain {
        value.to_owned()
    } else {
        format!("'{}'", value.replace('\'', r"'\''"))
    }
}

/// Prints `value` as indented JSON (fields in the wire order) followed by
/// a newline.
pub(super) fn print_json<T: Serialize>(value: &T) -> Result<(), CliError> {
    let mut text = serde_json::to_vec_pretty(value)
        .map_err(|e| CliError::Request(format!("cannot encode the answer as JSON: {e}")))?;
    text.push(b'\n');
    write_stdout(&text)
}

/// Writes and flushes stdout, reporting a closed pipe as an error instead
/// of panicking the way `println!` does.
pub(super) fn write_stdout(bytes: &[u8]) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(|e| CliError::Request(format!("cannot write to stdout: {e}")))
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

    #[test]
    fn plain_values_stay_bare_and_others_are_quoted() {
        assert_eq!(quote("orders"), "orders");
        assert_eq!(quote("http://127.0.0.1:9341"), "http://127.0.0.1:9341");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote("$(rm -rf ~)"), "'$(rm -rf ~)'");
    }

    #[test]
    fn scripts_have_one_statement_per_line() {
        let mut s = Script::default();
        s.comment("hello\nworld")
            .export("A", 1)
            .export_or_unset("B", "")
            .export_or_unset("C", "x y");
        assert_eq!(s.text, "# hello\n# world\nexport A=1\nunset B\nexport C='x y'\n");
    }

    #[test]
    fn hostile_values_survive_a_real_shell() {
        let nasty = "it's \"$HOME\" `id` $(echo pwned) \\ \n; done";
        let mut s = Script::default();
        s.export("LOCKD_T", nasty);
        let script = format!("{}printf %s \"$LOCKD_T\"", s.text);
        let out = Command::new("sh").arg("-c").arg(script).output().expect("run sh");
        assert!(out.status.success());
        assert_eq!(String::from_utf8_lossy(&out.stdout), nasty);
    }
}
