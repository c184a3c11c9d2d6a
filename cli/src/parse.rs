//! Parsers for the value syntaxes lockd's flags use.
//!
//! lockd is a Go program, so operators write durations the way Go's
//! `time.ParseDuration` reads them (`1m30s`, `500ms`) and sizes the way
//! go-humanize does (`100MiB`, `4MB`). Existing config files and scripts
//! must keep working, so both syntaxes are accepted as they are, plus a
//! bare integer meaning seconds for durations. Each parser returns a short
//! reason; the caller adds which flag and value it was about.

use std::time::Duration;

/// Parses a Go duration (`300ms`, `1h2m3.5s`, `0`) or a bare integer of
/// seconds (`30`). Negative durations are refused: no setting uses them.
pub(crate) fn duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    if s.starts_with('-') {
        return Err("must not be negative".into());
    }
    let s = s.strip_prefix('+').unwrap_or(s);
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut rest = s;
    let mut total_ns: u128 = 0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(num_len);
        if num.is_empty() || num == "." {
            return Err(format!("expected a number at {rest:?} (e.g. 30s, 1m30s, 500ms)"));
        }
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let unit_ns: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60 * 1_000_000_000,
            "h" => 3600 * 1_000_000_000,
            "" => return Err(format!("missing unit after {num:?} (use ns, us, ms, s, m or h)")),
            other => return Err(format!("unknown unit {other:?} (use ns, us, ms, s, m or h)")),
        };
        total_ns = total_ns
            .checked_add(scaled(num, unit_ns)?)
            .ok_or_else(|| "duration is too large".to_string())?;
        rest = tail;
    }
    let secs = u64::try_from(total_ns / 1_000_000_000).map_err(|_| "duration is too large".to_string())?;
    // The remainder is below 1e9, so it always fits.
    let nanos = (total_ns % 1_000_000_000) as u32;
    Ok(Duration::new(secs, nanos))
}

/// `num` (digits with at most one `.`) times `unit`, truncated to an integer.
fn scaled(num: &str, unit: u128) -> Result<u128, String> {
    let (whole, frac) = num.split_once('.').unwrap_or((num, ""));
    if frac.contains('.') || (whole.is_empty() && frac.is_empty()) {
        return Err(format!("malformed number {num:?}"));
    }
    let too_large = || "value is too large".to_string();
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| too_large())?
    };
    let value = whole.checked_mul(unit).ok_or_else(too_large)?;
    // fraction × unit, exactly (then truncated); digits past the 18th
    // cannot matter for any unit up to hours or TiB and would overflow.
    let digits = &frac[..frac.len().min(18)];
    if digits.is_empty() {
        return Ok(value);
    }
    let numerator: u128 = digits.parse().map_err(|_| format!("malformed number {num:?}"))?;
    let denominator = 10_u128.pow(digits.len() as u32);
    value.checked_add(numerator * unit / denominator).ok_or_else(too_large)
}

/// Parses a byte size: `1048576`, `512KiB`, `4MB`, `1.5 GiB`. Decimal
/// units (`KB`, `MB`, ...; also bare `K`, `M`) are powers of 1000 and
/// binary ones (`KiB`, `Ki`, ...) powers of 1024, as in go-humanize.
/// Units are case-insensitive.
pub(crate) fn size(text: &str) -> Result<u64, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty size".into());
    }
    if s.starts_with('-') {
        return Err("must not be negative".into());
    }
    let num_len = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (num, unit) = s.split_at(num_len);
    if num.is_empty() {
        return Err("expected a number of bytes, optionally with a unit (e.g. 4MiB, 512KiB, 1048576)".into());
    }
    let unit = unit.trim();
    let multiplier: u128 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1000,
        "m" | "mb" => 1000_u128.pow(2),
        "g" | "gb" => 1000_u128.pow(3),
        "t" | "tb" => 1000_u128.pow(4),
        "ki" | "kib" => 1 << 10,
        "mi" | "mib" => 1 << 20,
        "gi" | "gib" => 1 << 30,
        "ti" | "tib" => 1 << 40,
        _ => {
            return Err(format!(
                "unknown unit {unit:?} (use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)"
            ))
        }
    };
    u64::try_from(scaled(num, multiplier)?).map_err(|_| "size is too large".to_string())
}

/// Parses a switch value: `true/false`, `1/0`, `yes/no`, `on/off`
/// (case-insensitive), as environment variables usually spell them.
pub(crate) fn switch(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err("expected true or false".into()),
    }
}

/// Parses a positive count (at least 1, at most `max`).
pub(crate) fn count(text: &str, max: u64) -> Result<u64, String> {
    let n: u64 = text.trim().parse().map_err(|_| "expected a whole number".to_string())?;
    if n == 0 {
        return Err("must be at least 1".into());
    }
    if n > max {
        return Err(format!("must be at most {max}"));
    }
    Ok(n)
}

/// Formats a duration the way Go prints one (`1m30s`, `500ms`), for
/// messages that quote a setting back to the operator.
pub(crate) fn format_duration(d: Duration) -> String {
    if d.subsec_nanos() != 0 && d.as_secs() == 0 {
        return format!("{}ms", d.as_millis());
    }
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    out.push_str(&format!("{s}s"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn go_durations() {
        assert_eq!(duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(duration("500ms"), Ok(ms(500)));
        assert_eq!(duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(duration("1h2m3s"), Ok(Duration::from_secs(3723)));
        assert_eq!(duration("1.5s"), Ok(ms(1500)));
        assert_eq!(duration(".5m"), Ok(Duration::from_secs(30)));
        assert_eq!(duration("10us"), Ok(Duration::from_micros(10)));
        assert_eq!(duration("10µs"), Ok(Duration::from_micros(10)));
        assert_eq!(duration("7ns"), Ok(Duration::from_nanos(7)));
        assert_eq!(duration("0"), Ok(Duration::ZERO));
        assert_eq!(duration(" 30s "), Ok(Duration::from_secs(30)));
    }

    #[test]
    fn bare_integers_are_seconds() {
        assert_eq!(duration("45"), Ok(Duration::from_secs(45)));
        assert_eq!(duration("+45"), Ok(Duration::from_secs(45)));
    }

    #[test]
    fn bad_durations_say_why() {
        for bad in ["", "s", "30x", "1.2.3s", "-5s", "1m30", "abc", "1e3s", "."] {
            assert!(duration(bad).is_err(), "{bad:?} should fail");
        }
        assert!(duration("30x").expect_err("30x").contains("unknown unit"));
        assert!(duration("1m30").expect_err("1m30").contains("missing unit"));
        assert!(duration("-5s").expect_err("-5s").contains("negative"));
        assert!(duration("99999999999999999999999h").is_err());
    }

    #[test]
    fn sizes_in_bytes_and_units() {
        assert_eq!(size("1048576"), Ok(1 << 20));
        assert_eq!(size("100MiB"), Ok(100 << 20));
        assert_eq!(size("4MB"), Ok(4_000_000));
        assert_eq!(size("512KiB"), Ok(512 << 10));
        assert_eq!(size("512kib"), Ok(512 << 10));
        assert_eq!(size("1.5 GiB"), Ok(3 << 29));
        assert_eq!(size("2Ki"), Ok(2048));
        assert_eq!(size("3k"), Ok(3000));
        assert_eq!(size("10b"), Ok(10));
        assert_eq!(size("1TiB"), Ok(1 << 40));
    }

    #[test]
    fn bad_sizes_say_why() {
        assert!(size("12XB").expect_err("12XB").contains("unknown unit"));
        assert!(size("MiB").expect_err("MiB").contains("expected a number"));
        assert!(size("-1").expect_err("-1").contains("negative"));
        assert!(size("").is_err());
        assert!(size("1.2.3MB").is_err());
        assert!(size("99999999999TiB")
            .expect_err("99999999999TiB")
            .contains("too large"));
    }

    #[test]
    fn switches_and_counts() {
        assert_eq!(switch("TRUE"), Ok(true));
        assert_eq!(switch("1"), Ok(true));
        assert_eq!(switch("off"), Ok(false));
        assert!(switch("maybe").is_err());
        assert_eq!(count("1024", u64::from(u32::MAX)), Ok(1024));
        assert!(count("0", 10).is_err());
        assert!(count("11", 10).is_err());
        assert!(count("ten", 10).is_err());
    }

    #[test]
    fn durations_print_like_go() {
        assert_eq!(format_duration(Duration::from_secs(30)), "30s");
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::from_secs(7200)), "2h0m0s");
        assert_eq!(format_duration(ms(500)), "500ms");
    }
}
