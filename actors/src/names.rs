//! Namespace and key normalisation (API.md §0.5).
//!
//! Every request names its target through a namespace and a key typed by humans, so the same
//! object must be reachable whatever case or leading slash the caller used: keys and namespaces
//! are case-insensitive and stored lowercased. Normalising once, at the edge, lets the actor
//! registry, the storage port and the index all compare plain strings.
//!
//! Choices where API.md is not explicit (each matches lockd v0.9's `namespaces` package unless
//! noted):
//! * Length limits count UTF-8 bytes of the trimmed (and, for keys, slash/prefix-stripped)
//!   input, before lowercasing. Only ASCII survives validation, so for any accepted name bytes
//!   and characters coincide; the choice only decides which error a long non-ASCII name gets.
//! * Lowercasing is ASCII-only. Unicode lowercasing would let e.g. KELVIN SIGN (U+212A) turn
//!   into `k` and be accepted; we reject it like every other non-ASCII character.
//! * Key segments are not trimmed individually. lockd trims each segment (so `a/ b` became
//!   `a/b`); API.md restricts segments to `a-z 0-9 . _ -`, which we follow: `a/ b` is rejected.
//! * Detail texts quote values the way Go's `%q` does, since lockd builds them with `%q`.

use crate::api_error::ApiError;

/// Namespace used when a request names none (`--default-namespace` overrides it).
pub const DEFAULT_NAMESPACE: &str = "default";

/// Maximum length of a namespace, of a whole key and of a queue name (lockd `MaxLength`).
pub const MAX_NAME_LEN: usize = 128;

/// A key accepted by `acquire`, in the two spellings the response and the store need.
///
/// lockd echoes the caller's spelling in the acquire response (quirk in §0.5) but stores the
/// lowercased form, so the actor must keep both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcquireKey {
    /// Caller's spelling after trimming and slash/namespace-prefix stripping (case preserved).
    pub display: String,
    /// Lowercased, validated key used for routing and storage.
    pub storage: String,
}

/// Resolves the namespace of a request: trim, fall back to `default_ns` when empty, lowercase,
/// validate, and reject reserved names (leading `.`, e.g. `.txns`), which hold internal records
/// that clients must never touch. Errors are `400 invalid_namespace`.
pub fn resolve_namespace(raw: &str, default_ns: &str) -> Result<String, ApiError> {
    let mut ns = raw.trim();
    if ns.is_empty() {
        ns = default_ns.trim();
    }
    if ns.is_empty() {
        return Err(ApiError::invalid_namespace("namespace required"));
    }
    let normalized = normalize_component(ns).map_err(ApiError::invalid_namespace)?;
    if normalized.starts_with('.') {
        return Err(ApiError::invalid_namespace(format!(
            "namespace {} is reserved",
            go_quote(&normalized)
        )));
    }
    Ok(normalized)
}

/// Normalises a single-segment name (namespace, queue name): trim, at most 128 bytes,
/// lowercase, `a-z 0-9 . _ -` only. Returns lockd's detail text on failure so each caller can
/// wrap it in its own error code (`invalid_namespace`, `invalid_queue`, ...).
pub fn normalize_component(raw: &str) -> Result<String, String> {
    let name = raw.trim();
    if name.is_empty() {
        return Err("value required".to_owned());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!("value too long (max {MAX_NAME_LEN} characters)"));
    }
    let lower = name.to_ascii_lowercase();
    if !is_valid_component(&lower) {
        return Err(invalid_value_detail(&lower));
    }
    Ok(lower)
}

/// True when a key is empty after trimming: `acquire` then generates a UUIDv7 key instead of
/// failing, while every other endpoint answers `missing_key`. Both decisions belong to the
/// caller, so [`normalize_key`] itself treats an empty key as `invalid_key`.
pub fn is_blank(raw: &str) -> bool {
    raw.trim().is_empty()
}

/// Normalises a key to its storage form for every endpoint except `acquire`: trim, strip one
/// leading `/`, then validate (at most 128 bytes, `/`-separated non-empty segments of
/// `a-z 0-9 . _ -`, lowercased). `.` and `..` segments are allowed; containment is the storage
/// layer's job. An empty key is `400 invalid_key` (`key required`), see [`is_blank`].
pub fn normalize_key(raw: &str) -> Result<String, ApiError> {
    validate_key(strip_leading_slash(raw.trim()))
}

/// Like [`normalize_key`], but first strips a leading `<namespace>/` (ASCII case-insensitive,
/// since keys are case-insensitive) because lockd's acquire accepts namespace-qualified keys.
/// The prefix is only stripped when something follows it. Returns both spellings, see
/// [`AcquireKey`].
pub fn normalize_acquire_key(raw: &str, namespace: &str) -> Result<AcquireKey, ApiError> {
    let mut key = strip_leading_slash(raw.trim());
    let prefix_len = namespace.len() + 1;
    if !namespace.is_empty() && key.len() > prefix_len {
        let head = &key.as_bytes()[..prefix_len];
        // A match ends in the one-byte '/', so `prefix_len` is a char boundary of `key`.
        if head[..namespace.len()].eq_ignore_ascii_case(namespace.as_bytes()) && head[namespace.len()] == b'/' {
            key = &key[prefix_len..];
        }
    }
    let storage = validate_key(key)?;
    Ok(AcquireKey {
        display: key.to_owned(),
        storage,
    })
}

fn strip_leading_slash(key: &str) -> &str {
    key.strip_prefix('/').unwrap_or(key)
}

fn validate_key(key: &str) -> Result<String, ApiError> {
    if key.is_empty() {
        return Err(ApiError::invalid_key("key required"));
    }
    if key.len() > MAX_NAME_LEN {
        return Err(ApiError::invalid_key(format!(
            "key too long (max {MAX_NAME_LEN} characters)"
        )));
    }
    let mut out = String::with_capacity(key.len());
    for (i, segment) in key.split('/').enumerate() {
        if segment.is_empty() {
            return Err(ApiError::invalid_key("key contains empty segment"));
        }
        let lower = segment.to_ascii_lowercase();
        if !is_valid_component(&lower) {
            return Err(ApiError::invalid_key(format!(
                "invalid key segment {}: {}",
                go_quote(segment),
                invalid_value_detail(&lower)
            )));
        }
        if i > 0 {
            out.push('/');
        }
        out.push_str(&lower);
    }
    Ok(out)
}

fn is_valid_component(name: &str) -> bool {
    name.bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'))
}

fn invalid_value_detail(lower: &str) -> String {
    format!(
        "invalid value {} (allowed: lowercase letters, digits, '.', '_', '-')",
        go_quote(lower)
    )
}

/// Approximates Go's `strconv.Quote` (used by lockd's `%q`): printable characters verbatim,
/// `\"`, `\\`, the usual C escapes, `\xNN` for other ASCII controls and `\uNNNN`/`\UNNNNNNNN`
/// for non-printable Unicode (controls, whitespace other than ' ', common format characters).
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if c == ' ' || !(c.is_control() || c.is_whitespace() || is_format_char(c)) => out.push(c),
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

fn is_format_char(c: char) -> bool {
    matches!(
        c,
        '\u{ad}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2064}' | '\u{feff}'
            | '\u{e0000}'..='\u{e007f}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALLOWED: &str = "(allowed: lowercase letters, digits, '.', '_', '-')";
    const TOO_LONG: &str = "key too long (max 128 characters)";
    const EMPTY_SEG: &str = "key contains empty segment";

    /// Detail for a bad component; `quoted` is the expected Go-quoted lowercased value.
    fn bad(quoted: &str) -> String {
        format!("invalid value {quoted} {ALLOWED}")
    }

    /// Detail for a bad key segment: the segment as given, then its lowercased form.
    fn bad_seg(given: &str, lower: &str) -> String {
        format!("invalid key segment {given}: {}", bad(lower))
    }

    fn check(got: Result<String, ApiError>, want: Result<&str, (&str, &str)>, raw: &str) {
        match (got, want) {
            (Ok(g), Ok(w)) => assert_eq!(g, w, "{raw:?}"),
            (Err(e), Err((code, detail))) => {
                assert_eq!((e.status, e.code, e.detail.as_str()), (400, code, detail), "{raw:?}")
            }
            (got, want) => panic!("{raw:?}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn namespace_resolution_table() {
        let n128 = "n".repeat(128);
        let ok: &[(&str, &str)] = &[
            ("", "default"),
            ("   ", "default"),
            ("\t\n", "default"),
            ("Orders", "orders"),
            ("  team-a.prod_1 ", "team-a.prod_1"),
            ("ORDERS", "orders"),
            ("a..b", "a..b"),
            ("x.", "x."),
            ("-", "-"),
            (&n128, &n128),
        ];
        for (raw, want) in ok {
            check(resolve_namespace(raw, DEFAULT_NAMESPACE), Ok(want), raw);
        }
        let err: &[(&str, String)] = &[
            (&"n".repeat(129), "value too long (max 128 characters)".into()),
            ("Bad Name", bad(r#""bad name""#)),
            ("a/b", bad(r#""a/b""#)),
            ("a*", bad(r#""a*""#)),
            ("café", bad(r#""café""#)),
            ("\u{212a}", bad("\"\u{212a}\"")), // KELVIN SIGN: no Unicode lowercasing to 'k'
            ("a\"b", bad(r#""a\"b""#)),
            ("a\u{1}b", bad(r#""a\x01b""#)),
            ("a\u{a0}b", bad(r#""a\u00a0b""#)),
            (".txns", r#"namespace ".txns" is reserved"#.into()),
            (".TXN-Decisions", r#"namespace ".txn-decisions" is reserved"#.into()),
            ("  .hidden ", r#"namespace ".hidden" is reserved"#.into()),
            (".", r#"namespace "." is reserved"#.into()),
        ];
        for (raw, detail) in err {
            check(
                resolve_namespace(raw, DEFAULT_NAMESPACE),
                Err(("invalid_namespace", detail)),
                raw,
            );
        }
    }

    #[test]
    fn namespace_default_is_configurable_and_validated() {
        check(
            resolve_namespace("", " Tenant-A "),
            Ok("tenant-a"),
            "configured default",
        );
        check(
            resolve_namespace("explicit", "tenant-a"),
            Ok("explicit"),
            "explicit wins",
        );
        check(
            resolve_namespace("", ""),
            Err(("invalid_namespace", "namespace required")),
            "no default",
        );
        let reserved = r#"namespace ".txns" is reserved"#;
        check(
            resolve_namespace("", ".txns"),
            Err(("invalid_namespace", reserved)),
            "reserved default",
        );
    }

    #[test]
    fn namespace_length_counts_bytes_before_lowercasing() {
        // 64 two-byte characters: 128 bytes is not too long, so the charset error wins.
        let e = resolve_namespace(&"é".repeat(64), "default").expect_err("non-ascii");
        assert!(e.detail.starts_with("invalid value"), "{}", e.detail);
        let e = resolve_namespace(&format!("{}a", "é".repeat(64)), "default").expect_err("129 bytes");
        assert_eq!(e.detail, "value too long (max 128 characters)");
    }

    #[test]
    fn key_normalisation_table() {
        let (k128, two) = ("k".repeat(128), format!("{}/{}", "a".repeat(64), "b".repeat(63)));
        let slash128 = format!("/{k128}");
        let ok: &[(&str, &str)] = &[
            ("orders/42", "orders/42"),
            ("Orders/ABC", "orders/abc"),
            ("  spaced  ", "spaced"),
            ("/leading", "leading"),
            (" /Trimmed-Then-Slash ", "trimmed-then-slash"),
            ("a.b_c-d/0", "a.b_c-d/0"),
            ("./..", "./.."),
            ("a/../b", "a/../b"),
            ("...", "..."),
            ("default/x", "default/x"), // only acquire strips the namespace prefix
            (&k128, &k128),
            (&slash128, &k128),
            (&two, &two),
        ];
        for (raw, want) in ok {
            check(normalize_key(raw), Ok(want), raw);
        }
    }

    #[test]
    fn key_rejections_table() {
        let cases: &[(&str, String)] = &[
            ("", "key required".into()),
            ("   ", "key required".into()),
            ("/", "key required".into()),
            (&"k".repeat(129), TOO_LONG.into()),
            (&format!("  /{}  ", "k".repeat(129)), TOO_LONG.into()),
            ("//a", EMPTY_SEG.into()),
            ("a//b", EMPTY_SEG.into()),
            ("a/", EMPTY_SEG.into()),
            ("/a/", EMPTY_SEG.into()),
            ("a b", bad_seg(r#""a b""#, r#""a b""#)),
            ("x/ b", bad_seg(r#"" b""#, r#"" b""#)), // segments are not trimmed
            ("Ok/St*r", bad_seg(r#""St*r""#, r#""st*r""#)),
            ("naïve", bad_seg(r#""naïve""#, r#""naïve""#)),
            ("\u{212a}ey", bad_seg("\"\u{212a}ey\"", "\"\u{212a}ey\"")),
            ("a\\b", bad_seg(r#""a\\b""#, r#""a\\b""#)),
            ("tab\there", bad_seg(r#""tab\there""#, r#""tab\there""#)),
            ("q?x=1", bad_seg(r#""q?x=1""#, r#""q?x=1""#)),
        ];
        for (raw, detail) in cases {
            check(normalize_key(raw), Err(("invalid_key", detail)), raw);
        }
    }

    #[test]
    fn key_length_applies_after_stripping_and_counts_bytes() {
        // 128 after trimming and stripping the slash is fine even though the raw input is longer.
        assert!(normalize_key(&format!("   /{}   ", "k".repeat(128))).is_ok());
        // 43 three-byte characters = 129 bytes: rejected as too long before the charset check.
        check(
            normalize_key(&"€".repeat(43)),
            Err(("invalid_key", TOO_LONG)),
            "43 euros",
        );
        let e = normalize_key(&"€".repeat(42)).expect_err("126 bytes of non-ascii");
        assert!(e.detail.starts_with("invalid key segment"), "{}", e.detail);
    }

    #[test]
    fn acquire_key_strips_namespace_prefix_and_keeps_spelling() {
        let cases: &[(&str, &str, &str, &str)] = &[
            ("Orders/42", "default", "Orders/42", "orders/42"),
            ("/Orders/42", "default", "Orders/42", "orders/42"),
            ("default/Orders", "default", "Orders", "orders"),
            ("/default/Orders", "default", "Orders", "orders"),
            ("Default/Orders", "default", "Orders", "orders"),
            ("  team/a/b ", "team", "a/b", "a/b"),
            ("team/team/x", "team", "team/x", "team/x"),
            ("other/x", "team", "other/x", "other/x"),
            ("teamx/y", "team", "teamx/y", "teamx/y"),
            ("team", "team", "team", "team"),
            ("MiXeD", "default", "MiXeD", "mixed"),
        ];
        for (raw, ns, display, storage) in cases {
            let got = normalize_acquire_key(raw, ns).expect(raw);
            assert_eq!(
                (got.display.as_str(), got.storage.as_str()),
                (*display, *storage),
                "{raw:?} in {ns}"
            );
        }
    }

    #[test]
    fn acquire_key_rejections() {
        let cases: &[(&str, &str, String)] = &[
            ("", "default", "key required".into()),
            ("/", "default", "key required".into()),
            ("default/", "default", EMPTY_SEG.into()),
            ("default//x", "default", EMPTY_SEG.into()),
            ("default/a b", "default", bad_seg(r#""a b""#, r#""a b""#)),
            (&format!("default/{}", "k".repeat(129)), "default", TOO_LONG.into()),
            ("de€/x", "de", bad_seg(r#""de€""#, r#""de€""#)), // must not split '€' while matching "de/"
        ];
        for (raw, ns, detail) in cases {
            check(
                normalize_acquire_key(raw, ns).map(|k| k.storage),
                Err(("invalid_key", detail)),
                raw,
            );
        }
        // The length limit applies to what is left after stripping the namespace prefix.
        let long = format!("default/{}", "k".repeat(128));
        check(
            normalize_acquire_key(&long, "default").map(|k| k.storage),
            Ok(&"k".repeat(128)),
            "128 left",
        );
    }

    #[test]
    fn blank_detection() {
        for raw in ["", " ", "\t\r\n", "\u{a0}\u{2003}"] {
            assert!(is_blank(raw), "{raw:?}");
        }
        for raw in ["/", "a", " . "] {
            assert!(!is_blank(raw), "{raw:?}");
        }
    }

    #[test]
    fn component_rule_for_queue_names() {
        assert_eq!(
            normalize_component(" Jobs.High_Prio-1 ").as_deref(),
            Ok("jobs.high_prio-1")
        );
        assert_eq!(normalize_component("").expect_err("empty"), "value required");
        assert!(normalize_component("a/b").is_err());
        assert!(normalize_component(&"q".repeat(129)).is_err());
        assert!(normalize_component(&"q".repeat(128)).is_ok());
    }

    #[test]
    fn go_quote_escapes_like_strconv_quote() {
        let cases: &[(&str, &str)] = &[
            ("plain", r#""plain""#),
            ("a\"b\\c", r#""a\"b\\c""#),
            ("\u{7}\u{8}\u{c}\n\r\t\u{b}", r#""\a\b\f\n\r\t\v""#),
            ("\u{0}\u{1b}\u{7f}", r#""\x00\x1b\x7f""#),
            ("é €", "\"é €\""),
            ("\u{200b}\u{feff}\u{2028}", r#""\u200b\ufeff\u2028""#),
            ("\u{e0001}", r#""\U000e0001""#),
        ];
        for (raw, want) in cases {
            assert_eq!(go_quote(raw), *want, "{raw:?}");
        }
    }
}
