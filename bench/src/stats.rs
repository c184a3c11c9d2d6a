//! The arithmetic of the benchmark: latency histograms and their
//! percentiles, rates, achieved batch sizes and the logstore-to-disk ratio.

use std::time::Duration;

use hdrhistogram::Histogram;

use crate::error::{Error, Result};

/// Highest latency a histogram records exactly, in microseconds (60 s);
/// anything slower is counted at this value.
const MAX_LATENCY_US: u64 = 60_000_000;

/// A latency histogram in microseconds, 3 significant digits.
pub(crate) fn new_histogram() -> Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).map_err(|e| Error::Other(format!("latency histogram: {e}")))
}

/// Records one latency (rounded up to whole microseconds, at least 1).
pub(crate) fn record(h: &mut Histogram<u64>, d: Duration) {
    let us = u64::try_from(d.as_nanos().div_ceil(1000)).unwrap_or(u64::MAX);
    h.saturating_record(us.max(1));
}

/// Adds the samples of `src` into `dst`.
pub(crate) fn merge(dst: &mut Histogram<u64>, src: &Histogram<u64>) -> Result<()> {
    dst.add(src)
        .map_err(|e| Error::Other(format!("merging latency histograms: {e:?}")))
}

/// The percentiles reported for a latency distribution, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Latency {
    /// Number of samples.
    pub count: u64,
    /// Median.
    pub p50: u64,
    /// 95th percentile.
    pub p95: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Slowest sample.
    pub max: u64,
    /// Arithmetic mean.
    pub mean: f64,
}

impl Latency {
    /// Summarises a histogram; all zero when it holds no sample.
    pub(crate) fn of(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency {
                count: 0,
                p50: 0,
                p95: 0,
                p99: 0,
                p999: 0,
                max: 0,
                mean: 0.0,
            };
        }
        Latency {
            count: h.len(),
            p50: h.value_at_quantile(0.50),
            p95: h.value_at_quantile(0.95),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            mean: h.mean(),
        }
    }
}

/// Percentiles a latency CDF is drawn through: dense in the tail, where
/// systems differ.
const CDF_PERCENTILES: [f64; 17] = [
    0.0, 5.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 97.5, 99.0, 99.5, 99.9, 99.95, 99.99, 99.995, 99.999, 100.0,
];

/// `(percentile, µs)` points of a histogram's distribution; empty when it
/// holds no sample.
pub(crate) fn cdf(h: &Histogram<u64>) -> Vec<(f64, u64)> {
    if h.is_empty() {
        return Vec::new();
    }
    CDF_PERCENTILES
        .iter()
        .map(|&p| (p, h.value_at_quantile(p / 100.0)))
        .collect()
}

/// Events per second over `elapsed`; 0 for an empty interval.
pub(crate) fn rate(events: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        events as f64 / secs
    } else {
        0.0
    }
}

/// Average number of commits that shared one group write (and so one
/// fdatasync): `None` when no group was written.
pub(crate) fn achieved_batch(commits: u64, groups: u64) -> Option<f64> {
    (groups > 0).then(|| commits as f64 / groups as f64)
}

/// The whole batch size the raw disk loop is run with to match an achieved
/// (fractional) one: rounded to nearest, never below 1.
pub(crate) fn round_batch(achieved: f64) -> usize {
    if achieved.is_finite() && achieved >= 1.0 {
        achieved.round() as usize
    } else {
        1
    }
}

/// Logstore puts/s as a fraction of what the raw disk loop sustained with
/// the same number of records per fdatasync (`raw_syncs_per_s × batch`).
/// `None` when the raw figure is zero or not finite.
pub(crate) fn ratio(puts_per_s: f64, raw_syncs_per_s: f64, batch: usize) -> Option<f64> {
    let raw = raw_syncs_per_s * batch as f64;
    (raw.is_finite() && raw > 0.0 && puts_per_s.is_finite()).then(|| puts_per_s / raw)
}

/// A latency in microseconds for a table cell: `850µs`, `12.3ms`, `1.20s`.
pub(crate) fn fmt_latency(us: u64) -> String {
    match us {
        0..=999 => format!("{us}µs"),
        1_000..=99_999 => format!("{:.2}ms", us as f64 / 1e3),
        100_000..=999_999 => format!("{:.1}ms", us as f64 / 1e3),
        _ => format!("{:.2}s", us as f64 / 1e6),
    }
}

/// A rate for a table cell, with thin grouping: `12 345`.
pub(crate) fn fmt_rate(r: f64) -> String {
    if !r.is_finite() {
        return "-".to_string();
    }
    let n = r.round() as u64;
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

/// A byte size for a table cell: `256 B`, `4 KiB`.
pub(crate) fn fmt_bytes(n: usize) -> String {
    if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{} MiB", n >> 20)
    } else if n >= 1024 && n.is_multiple_of(1024) {
        format!("{} KiB", n >> 10)
    } else {
        format!("{n} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut h = new_histogram().expect("histogram");
        for us in 1..=1000u64 {
            record(&mut h, Duration::from_micros(us));
        }
        let l = Latency::of(&h);
        assert_eq!(l.count, 1000);
        assert_eq!(l.p50, 500);
        assert_eq!(l.p95, 950);
        assert_eq!(l.p99, 990);
        assert_eq!(l.p999, 999);
        assert_eq!(l.max, 1000);
        assert!((l.mean - 500.5).abs() < 0.01, "mean {}", l.mean);
    }

    #[test]
    fn cdf_points_climb_with_the_percentile() {
        let mut h = new_histogram().expect("histogram");
        for us in 1..=10_000u64 {
            record(&mut h, Duration::from_micros(us));
        }
        let points = cdf(&h);
        assert_eq!(points.first().map(|p| p.0), Some(0.0));
        assert_eq!(points.last().map(|p| p.0), Some(100.0));
        assert!(
            points.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
            "{points:?}"
        );
        let median = points.iter().find(|p| p.0 == 50.0).map(|p| p.1).unwrap_or(0);
        assert!((4_950..=5_050).contains(&median), "median {median}");
        assert!(cdf(&new_histogram().expect("histogram")).is_empty());
    }

    #[test]
    fn merged_histograms_and_empty_ones() {
        let mut a = new_histogram().expect("histogram");
        let mut b = new_histogram().expect("histogram");
        assert_eq!(Latency::of(&a).count, 0);
        record(&mut a, Duration::from_nanos(1)); // rounds up to 1 µs
        record(&mut b, Duration::from_secs(3600)); // saturates at the top
        merge(&mut a, &b).expect("merge");
        let l = Latency::of(&a);
        assert_eq!(l.count, 2);
        assert_eq!(l.p50, 1);
        assert!(l.max >= MAX_LATENCY_US && l.max < MAX_LATENCY_US + MAX_LATENCY_US / 500);
    }

    #[test]
    fn batch_sizes_and_ratio() {
        assert_eq!(achieved_batch(1000, 0), None);
        assert_eq!(achieved_batch(1000, 16), Some(62.5));
        assert_eq!(round_batch(62.5), 63);
        assert_eq!(round_batch(62.4), 62);
        assert_eq!(round_batch(0.3), 1);
        assert_eq!(round_batch(f64::NAN), 1);
        // 40 000 puts/s against 800 syncs/s × 62 records = 49 600 records/s.
        let r = ratio(40_000.0, 800.0, 62).expect("ratio");
        assert!((r - 40_000.0 / 49_600.0).abs() < 1e-12);
        assert_eq!(ratio(1.0, 0.0, 8), None);
        assert_eq!(ratio(f64::NAN, 10.0, 8), None);
    }

    #[test]
    fn rates_and_cells() {
        assert_eq!(rate(500, Duration::from_millis(250)), 2000.0);
        assert_eq!(rate(5, Duration::ZERO), 0.0);
        assert_eq!(fmt_rate(1234567.4), "1 234 567");
        assert_eq!(fmt_rate(999.0), "999");
        assert_eq!(fmt_rate(f64::INFINITY), "-");
        assert_eq!(fmt_latency(850), "850µs");
        assert_eq!(fmt_latency(12_345), "12.35ms");
        assert_eq!(fmt_latency(123_456), "123.5ms");
        assert_eq!(fmt_latency(1_200_000), "1.20s");
        assert_eq!(fmt_bytes(256), "256 B");
        assert_eq!(fmt_bytes(4096), "4 KiB");
        assert_eq!(fmt_bytes(1000), "1000 B");
    }
}
