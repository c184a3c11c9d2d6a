//! JSON at the door: strict decoding of control bodies, validation and
//! compaction of state documents.
//!
//! State documents are stored compacted, as lockd does: insignificant
//! whitespace goes, everything else (key order, number spelling, string
//! escapes) stays byte for byte. Validation runs serde_json over the bytes
//! without building a value; compaction is then a single in-place pass, so a
//! document costs no allocation beyond the buffer it arrived in.

use serde::de::{DeserializeOwned, IgnoredAny};

/// Decodes exactly one JSON value of type `T`: unknown fields are rejected
/// by `T`'s `deny_unknown_fields`, trailing data here. `allow_empty` treats
/// an empty (or all-whitespace) body as `{}`.
pub fn decode_strict<T: DeserializeOwned + Default>(input: &[u8], allow_empty: bool) -> Result<T, String> {
    if input.iter().all(|b| is_ws(*b)) {
        return if allow_empty {
            Ok(T::default())
        } else {
            Err("request body is empty".to_string())
        };
    }
    // serde would also fill a struct from a JSON array of its fields in
    // declaration order; lockd's bodies are objects and nothing else.
    match input.iter().find(|b| !is_ws(**b)) {
        Some(b'{') => {}
        _ => return Err("json: request body must be a JSON object".to_string()),
    }
    let mut de = serde_json::Deserializer::from_slice(input);
    let value = T::deserialize(&mut de).map_err(|e| e.to_string())?;
    de.end().map_err(|_| "unexpected trailing JSON value".to_string())?;
    Ok(value)
}

/// Validates `buf` as one JSON value (UTF-8, any type, nothing after it) and
/// compacts it in place. Returns the compacted length.
pub fn compact_in_place(buf: &mut [u8]) -> Result<usize, String> {
    if buf.iter().all(|b| is_ws(*b)) {
        return Err("json: invalid input (empty document)".to_string());
    }
    std::str::from_utf8(buf).map_err(|e| format!("json: invalid UTF-8: {e}"))?;
    serde_json::from_slice::<IgnoredAny>(buf).map_err(|e| format!("json: {e}"))?;
    strip_whitespace(buf).ok_or_else(|| format!("json: document nested deeper than {MAX_DEPTH} levels"))
}

/// Deepest nesting accepted in a state document (Go's `encoding/json`
/// limit). The document is valid beyond it, but every later reader (queries,
/// mutations, clients) would have to survive it too.
const MAX_DEPTH: usize = 10_000;

/// Removes whitespace outside strings, in place, and returns the new length;
/// `None` if the nesting exceeds [`MAX_DEPTH`] (the buffer is then garbage).
/// The input must be valid JSON (strings are tracked by quotes and
/// backslash escapes only).
fn strip_whitespace(buf: &mut [u8]) -> Option<usize> {
    let mut write = 0;
    let mut in_string = false;
    let mut escaped = false;
    let mut depth = 0usize;
    for read in 0..buf.len() {
        let b = buf[read];
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if is_ws(b) {
            continue;
        } else if b == b'"' {
            in_string = true;
        } else if b == b'[' || b == b'{' {
            depth += 1;
            if depth > MAX_DEPTH {
                return None;
            }
        } else if b == b']' || b == b'}' {
            depth = depth.saturating_sub(1);
        }
        buf[write] = b;
        write += 1;
    }
    Some(write)
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compact(s: &str) -> Result<String, String> {
        let mut buf = s.as_bytes().to_vec();
        let n = compact_in_place(&mut buf)?;
        buf.truncate(n);
        String::from_utf8(buf).map_err(|e| e.to_string())
    }

    #[test]
    fn compaction_keeps_strings_order_and_number_spelling() {
        let got = compact(" { \"b\" : [1.50, 2e3 ,\n -0 ] ,\t\"a\":\"x y \\\" z\\\\\" , \"c\" : { } } ");
        assert_eq!(got.as_deref(), Ok(r#"{"b":[1.50,2e3,-0],"a":"x y \" z\\","c":{}}"#));
    }

    #[test]
    fn scalars_and_arrays_are_documents_too() {
        assert_eq!(compact(" 42 ").as_deref(), Ok("42"));
        assert_eq!(compact("\"s p\"").as_deref(), Ok("\"s p\""));
        assert_eq!(compact("[ true , null ]").as_deref(), Ok("[true,null]"));
    }

    #[test]
    fn invalid_documents_are_refused() {
        for bad in ["", "   ", "{", "{\"a\":1} {}", "{'a':1}", "[1,]", "nul", "{\"a\":1}x"] {
            assert!(compact(bad).is_err(), "{bad:?} accepted");
        }
        let mut bad_utf8 = b"\"\xff\"".to_vec();
        assert!(compact_in_place(&mut bad_utf8).is_err());
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = "[".repeat(100_000) + &"]".repeat(100_000);
        assert!(compact(&deep).is_err());
        let fine = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert_eq!(compact(&fine).map(|s| s.len()), Ok(2 * MAX_DEPTH));
    }

    #[derive(Debug, Default, serde::Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Probe {
        #[serde(default)]
        a: Option<i64>,
    }

    #[test]
    fn strict_decoding_rejects_unknown_fields_trailing_values_and_wrong_types() {
        assert_eq!(decode_strict::<Probe>(br#"{"a":1}"#, false), Ok(Probe { a: Some(1) }));
        assert_eq!(decode_strict::<Probe>(br#"{"a":null}"#, false), Ok(Probe { a: None }));
        assert!(decode_strict::<Probe>(br#"{"b":1}"#, false).is_err());
        assert_eq!(
            decode_strict::<Probe>(br#"{"a":1}{}"#, false),
            Err("unexpected trailing JSON value".to_string())
        );
        assert!(decode_strict::<Probe>(br#"{"a":"1"}"#, false).is_err());
        assert!(
            decode_strict::<Probe>(b"[1]", false).is_err(),
            "arrays fill structs in serde"
        );
        assert!(decode_strict::<Probe>(b" []", true).is_err());
        assert!(decode_strict::<Probe>(b"null", true).is_err());
        assert!(decode_strict::<Probe>(b"", false).is_err());
        assert_eq!(decode_strict::<Probe>(b" \n", true), Ok(Probe::default()));
    }
}
