//! Deterministic, realistic state documents for the JSON ingest benchmark.
//!
//! Real lockd state is what clients marshal with an indenting encoder:
//! objects holding scalars, short arrays, nested objects and arrays of
//! records, strings with escapes and non-ASCII text, integers and floats.
//! A document built here has that shape, is pretty-printed with two-space
//! indentation (so compaction has whitespace to remove), and comes out the
//! same for the same size and seed, so runs on different days and machines
//! validate and compact the very same bytes.

use std::fmt::Write as _;

/// Top-level fields written before the `items` array of a large document.
const HEADER_FIELDS: usize = 8;

/// Below this target a document is a single flat-ish object (no `items`).
const SMALL_DOC: usize = 512;

/// A small deterministic generator (splitmix64): no dependency, the same
/// stream on every platform.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

/// Words for string values: ASCII, Latin-1, CJK, and characters that must
/// be escaped in JSON (written through [`push_string`]).
const WORDS: &[&str] = &[
    "alpha",
    "Bravo",
    "café",
    "naïve",
    "日本語",
    "queue/worker-7",
    "say \"hi\"",
    "C:\\jobs\\nightly",
    "line\nbreak",
    "tab\there",
    "ünïcödé",
    "emoji 🚀",
    "a/b/c",
    "ok",
];

/// Appends `s` as a JSON string literal, escaping what JSON requires plus
/// `/` and one non-ASCII character as `\u` escapes now and then, as some
/// encoders do.
fn push_string(out: &mut String, s: &str, rng: &mut Rng) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '/' if rng.below(2) == 0 => out.push_str("\\/"),
            c if !c.is_ascii() && (c as u32) < 0x1_0000 && rng.below(3) == 0 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn indent(out: &mut String, depth: usize) {
    for _ in 0..depth {
        out.push_str("  ");
    }
}

/// A phrase of 1..=4 words.
fn phrase(rng: &mut Rng) -> String {
    let n = 1 + rng.below(4);
    (0..n).map(|_| rng.pick(WORDS)).collect::<Vec<_>>().join(" ")
}

/// A number in one of the spellings encoders produce: integers (negative
/// too), decimals, exponents.
fn number(rng: &mut Rng) -> String {
    match rng.below(4) {
        0 => format!("{}", rng.below(1_000_000)),
        1 => format!("-{}", rng.below(100_000)),
        2 => format!("{}.{:03}", rng.below(10_000), rng.below(1000)),
        _ => format!("{}.{}e{}", 1 + rng.below(9), rng.below(100), rng.below(40) as i64 - 20),
    }
}

/// One top-level field of kind `i % 6`, written at depth 1 (without the
/// separating comma).
fn header_field(out: &mut String, i: usize, rng: &mut Rng) {
    indent(out, 1);
    match i % 6 {
        0 => {
            let _ = write!(out, "\"id{i}\": {}", rng.below(1 << 40));
        }
        1 => {
            let _ = write!(out, "\"label{i}\": ");
            push_string(out, &phrase(rng), rng);
        }
        2 => {
            let _ = write!(out, "\"ratio{i}\": {}", number(rng));
        }
        3 => {
            let _ = writeln!(out, "\"tags{i}\": [");
            for t in 0..2 {
                indent(out, 2);
                push_string(out, rng.pick(WORDS), rng);
                out.push_str(if t == 0 { ",\n" } else { "\n" });
            }
            indent(out, 1);
            out.push(']');
        }
        4 => {
            let _ = writeln!(out, "\"flags{i}\": {{");
            indent(out, 2);
            let _ = writeln!(out, "\"on\": {},", rng.below(2) == 0);
            indent(out, 2);
            out.push_str("\"none\": null\n");
            indent(out, 1);
            out.push('}');
        }
        _ => {
            let _ = write!(out, "\"owner{i}\": ");
            push_string(
                out,
                &format!("worker \"{}\" at C:\\jobs\\{}", rng.below(64), rng.below(10)),
                rng,
            );
        }
    }
}

/// One element of `items`, written at depth 2: a record with a nested
/// array of arrays and a nested object.
fn record(out: &mut String, seq: usize, rng: &mut Rng) {
    indent(out, 2);
    out.push_str("{\n");
    let field = |out: &mut String, name: &str, value: &str, last: bool| {
        indent(out, 3);
        let _ = write!(out, "\"{name}\": {value}");
        out.push_str(if last { "\n" } else { ",\n" });
    };
    let mut s = String::new();
    push_string(&mut s, &phrase(rng), rng);
    field(out, "seq", &seq.to_string(), false);
    field(out, "name", &s, false);
    field(out, "price", &number(rng), false);
    field(out, "weight", &number(rng), false);
    field(out, "active", if rng.below(2) == 0 { "true" } else { "false" }, false);
    field(out, "parent", "null", false);
    let mut dims = String::from("[\n");
    for row in 0..2 {
        indent(&mut dims, 4);
        dims.push('[');
        for col in 0..3 {
            if col > 0 {
                dims.push_str(", ");
            }
            dims.push_str(&number(rng));
        }
        dims.push_str(if row == 0 { "],\n" } else { "]\n" });
    }
    indent(&mut dims, 3);
    dims.push(']');
    field(out, "dims", &dims, false);
    let mut attrs = String::from("{\n");
    indent(&mut attrs, 4);
    attrs.push_str("\"note\": ");
    push_string(&mut attrs, &phrase(rng), rng);
    attrs.push_str(",\n");
    indent(&mut attrs, 4);
    let _ = writeln!(attrs, "\"rank\": {}", rng.below(1000));
    indent(&mut attrs, 3);
    attrs.push('}');
    field(out, "attrs", &attrs, true);
    indent(out, 2);
    out.push('}');
}

/// Whether appending `piece` (plus a separator) to a document now `len`
/// bytes long, `close` more to finish it, brings it nearer to `target`
/// than stopping here.
fn worth_adding(len: usize, piece: usize, close: usize, target: usize) -> bool {
    let without = len + close;
    let with = without + 2 + piece;
    without < target && with.abs_diff(target) <= without.abs_diff(target)
}

/// A pretty-printed JSON document as close to `target` bytes as whole
/// fields or records allow, the same for the same `(target, seed)`.
///
/// Small targets give one object of mixed fields; from [`SMALL_DOC`] bytes
/// on, a few header fields are followed by an `items` array of records.
pub(crate) fn document(target: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed ^ (target as u64).wrapping_mul(0x2545_F491_4F6C_DD1D));
    let mut out = String::with_capacity(target + 512);
    out.push_str("{\n");
    let large = target >= SMALL_DOC;
    let close = if large { "\n  ]\n}\n".len() } else { "\n}\n".len() };
    let mut i = 0;
    loop {
        let mut field = String::new();
        header_field(&mut field, i, &mut rng);
        let more = if large {
            i < HEADER_FIELDS
        } else {
            i == 0 || worth_adding(out.len(), field.len(), close, target)
        };
        if !more {
            break;
        }
        if i > 0 {
            out.push_str(",\n");
        }
        out.push_str(&field);
        i += 1;
    }
    if large {
        out.push_str(",\n");
        indent(&mut out, 1);
        out.push_str("\"items\": [\n");
        let mut seq = 0;
        loop {
            let mut item = String::new();
            record(&mut item, seq, &mut rng);
            if seq > 0 && !worth_adding(out.len(), item.len(), close, target) {
                break;
            }
            if seq > 0 {
                out.push_str(",\n");
            }
            out.push_str(&item);
            seq += 1;
        }
        out.push('\n');
        indent(&mut out, 1);
        out.push(']');
    }
    out.push_str("\n}\n");
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_valid_json_of_roughly_the_requested_size() {
        for (target, slack) in [(150usize, 0.3), (60 << 10, 0.01), (2 << 20, 0.001)] {
            let doc = document(target, 7);
            let off = doc.len().abs_diff(target) as f64 / target as f64;
            assert!(off <= slack, "target {target}: got {} bytes", doc.len());
            let value: serde_json::Value = serde_json::from_slice(&doc).expect("valid JSON");
            assert!(value.is_object());
            let text = std::str::from_utf8(&doc).expect("UTF-8");
            assert!(text.contains("\n  "), "pretty-printed");
            if target >= SMALL_DOC {
                let items = value["items"].as_array().expect("items array");
                assert!(items.len() > 1);
                assert!(items[0]["dims"][1].is_array(), "nested arrays");
                assert!(text.contains("\\\"") && text.contains("\\\\") && text.contains("\\u"));
                assert!(text.contains('e') && text.contains('-'));
            }
        }
    }

    #[test]
    fn the_small_document_still_has_escapes_numbers_and_nesting() {
        let doc = document(150, 7);
        let text = std::str::from_utf8(&doc).expect("UTF-8");
        assert!(text.contains('\\'), "{text}");
        assert!(text.contains('['), "{text}");
        assert!(text.contains(|c: char| c.is_ascii_digit()), "{text}");
    }

    #[test]
    fn same_size_and_seed_same_bytes() {
        assert_eq!(document(60 << 10, 1), document(60 << 10, 1));
        assert_ne!(document(60 << 10, 1), document(60 << 10, 2));
        // Tiny targets still give one whole, valid document.
        let one = document(1, 0);
        assert!(serde_json::from_slice::<serde_json::Value>(&one).is_ok());
    }
}
