//! A small PEM (RFC 7468) reader and writer.
//!
//! lockd's bundles are several PEM blocks in one file, some with labels of
//! our own (`LOCKD STORAGE KEY`, `LOCKD DENYLIST`), so we need a reader
//! that returns every block with its label rather than one that only
//! knows certificates and keys. The reader is deliberately strict about
//! the blocks themselves (a truncated or corrupted bundle must not half
//! load) and lenient about everything outside them, where people like to
//! leave comments such as `openssl x509 -text` output.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use crate::{AuthError, Result};

const BEGIN: &str = "-----BEGIN ";
const END: &str = "-----END ";
const DASHES: &str = "-----";

/// Width of the base64 lines [`encode`] writes, as RFC 7468 asks.
const LINE_WIDTH: usize = 64;

/// One decoded PEM block.
///
/// `Debug` shows only the label and the length: blocks routinely hold
/// private keys and the storage key, which must not end up in logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Block {
    /// The label between `BEGIN ` and the dashes, e.g. `CERTIFICATE`.
    pub label: String,
    /// The base64-decoded body.
    pub contents: Vec<u8>,
}

impl fmt::Debug for Block {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Block")
            .field("label", &self.label)
            .field("contents", &format_args!("<{} bytes>", self.contents.len()))
            .finish()
    }
}

/// The label of an encapsulation boundary line (`-----BEGIN X-----` gives
/// `X` for `prefix` = `-----BEGIN `), or `None` if the line is not one.
fn boundary<'a>(line: &'a str, prefix: &str) -> Option<&'a str> {
    line.strip_prefix(prefix)?.strip_suffix(DASHES)
}

/// Reads every PEM block in `text`, in file order.
///
/// Text outside blocks is ignored. Inside a block only base64 is allowed
/// (RFC 1421 headers such as `Proc-Type:` mark encrypted keys, which lockd
/// does not read). A block that is never closed, closed with another
/// label, or whose body is not valid base64 is an error naming `what`, so
/// the operator learns which file is damaged.
pub fn parse(text: &str, what: &str) -> Result<Vec<Block>> {
    let mut blocks = Vec::new();
    // The block being read: its label, the line it began on, its base64.
    let mut open: Option<(String, usize, String)> = None;
    for (index, raw) in text.lines().enumerate() {
        let line_no = index + 1;
        let line = raw.trim();
        if let Some(label) = boundary(line, BEGIN) {
            if let Some((open_label, start, _)) = &open {
                return Err(AuthError::bundle(
                    what,
                    format!(
                        "line {line_no}: BEGIN {label} inside the {open_label} block started on line {start} \
                         (missing -----END {open_label}-----)"
                    ),
                ));
            }
            if label.trim().is_empty() {
                return Err(AuthError::bundle(
                    what,
                    format!("line {line_no}: PEM block without a label"),
                ));
            }
            open = Some((label.to_string(), line_no, String::new()));
        } else if let Some(label) = boundary(line, END) {
            let Some((open_label, start, body)) = open.take() else {
                return Err(AuthError::bundle(
                    what,
                    format!("line {line_no}: END {label} without a matching BEGIN"),
                ));
            };
            if label != open_label {
                return Err(AuthError::bundle(
                    what,
                    format!("line {line_no}: END {label} closes the {open_label} block started on line {start}"),
                ));
            }
            let contents = STANDARD.decode(body.as_bytes()).map_err(|e| {
                AuthError::bundle(
                    what,
                    format!("{open_label} block starting on line {start} is not valid base64: {e}"),
                )
            })?;
            blocks.push(Block {
                label: open_label,
                contents,
            });
        } else if let Some((open_label, start, body)) = &mut open {
            if line.contains(':') {
                return Err(AuthError::bundle(
                    what,
                    format!(
                        "line {line_no}: header line in the {open_label} block started on line {start} \
                         (encrypted PEM is not supported)"
                    ),
                ));
            }
            // Spaces inside a line are not base64 either; keep them so the
            // decoder reports the block as malformed.
            body.push_str(line);
        }
    }
    if let Some((label, start, _)) = open {
        return Err(AuthError::bundle(
            what,
            format!("the {label} block started on line {start} is never closed (missing -----END {label}-----)"),
        ));
    }
    Ok(blocks)
}

/// Writes one PEM block: the boundaries, the body as base64 in 64-column
/// lines, and a newline after the END line so blocks can be concatenated
/// into a bundle as they are.
pub fn encode(label: &str, contents: &[u8]) -> String {
    let b64 = STANDARD.encode(contents);
    let mut out = String::with_capacity(b64.len() + b64.len() / LINE_WIDTH + 2 * label.len() + 40);
    out.push_str(BEGIN);
    out.push_str(label);
    out.push_str(DASHES);
    out.push('\n');
    // base64 output is ASCII, so slicing it at any byte offset is safe.
    let mut rest = b64.as_str();
    while !rest.is_empty() {
        let (line, tail) = rest.split_at(rest.len().min(LINE_WIDTH));
        out.push_str(line);
        out.push('\n');
        rest = tail;
    }
    out.push_str(END);
    out.push_str(label);
    out.push_str(DASHES);
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_wraps_at_64_columns() {
        let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let text = encode("LOCKD TEST", &data);
        assert!(text.ends_with("-----END LOCKD TEST-----\n"));
        let body_lines: Vec<&str> = text.lines().filter(|l| !l.starts_with("-----")).collect();
        assert!(body_lines.len() > 1);
        assert!(body_lines[..body_lines.len() - 1].iter().all(|l| l.len() == 64));
        assert!(body_lines.last().is_some_and(|l| l.len() <= 64));
        let blocks = parse(&text, "test").expect("round trip");
        assert_eq!(
            blocks,
            vec![Block {
                label: "LOCKD TEST".into(),
                contents: data
            }]
        );
    }

    #[test]
    fn keeps_order_ignores_text_between_blocks_and_accepts_crlf() {
        let text = format!(
            "Subject: a comment openssl printed\n{}between\r\n{}{}",
            encode("A", b"first"),
            encode("B", b"").replace('\n', "\r\n"),
            encode("A", b"third")
        );
        let blocks = parse(&text, "test").expect("valid");
        let got: Vec<(&str, &[u8])> = blocks
            .iter()
            .map(|b| (b.label.as_str(), b.contents.as_slice()))
            .collect();
        assert_eq!(got, vec![("A", &b"first"[..]), ("B", &b""[..]), ("A", &b"third"[..])]);
        assert!(parse("no blocks at all\n", "test").expect("empty").is_empty());
    }

    #[test]
    fn damaged_blocks_are_errors_naming_the_file() {
        let good = encode("CERTIFICATE", b"some bytes here");
        let truncated = good.replace("-----END CERTIFICATE-----\n", "");
        let bad_b64 = good.replacen("c29t", "c2*t", 1);
        let wrong_end = good.replace("END CERTIFICATE", "END PRIVATE KEY");
        let nested = format!("-----BEGIN A-----\n{good}");
        let stray_end = "-----END A-----\n".to_string();
        let header = good.replacen('\n', "\nProc-Type: 4,ENCRYPTED\n", 1);
        for (case, text, needle) in [
            ("truncated", truncated, "never closed"),
            ("bad base64", bad_b64, "not valid base64"),
            ("wrong end", wrong_end, "closes the CERTIFICATE block"),
            ("nested", nested, "inside the A block"),
            ("stray end", stray_end, "without a matching BEGIN"),
            ("header", header, "encrypted PEM"),
        ] {
            let err = parse(&text, "server bundle /x/server.pem").expect_err(case).to_string();
            assert!(err.starts_with("server bundle /x/server.pem: "), "{case}: {err}");
            assert!(err.contains(needle), "{case}: {err}");
        }
    }

    #[test]
    fn debug_hides_contents() {
        let block = Block {
            label: "PRIVATE KEY".into(),
            contents: b"secret-secret".to_vec(),
        };
        let shown = format!("{block:?}");
        assert!(shown.contains("13 bytes") && !shown.contains("115"), "{shown}");
    }
}
