//! `lockd-bench json`: what validating and compacting one state upload
//! costs, with the server's serde_json path against simd-json.
//!
//! Every `/v1/update` body goes through
//! `lockd_net::server::json::compact_in_place` (serde_json validation
//! without building a value, a UTF-8 check, one in-place pass removing
//! whitespace). The question is whether simd-json would do the same job
//! faster for small, medium and large documents. Both paths start from a
//! fresh copy of the upload, as the server does with a body it owns:
//!
//! * `copy`: the copy alone, to subtract;
//! * `serde_json`: copy, then `compact_in_place`;
//! * `simd-json`: copy, then `to_tape_with_buffers` on a second copy
//!   (simd-json rewrites the bytes it parses, so the server would need that
//!   copy too; its buffers are reused across documents), then the same
//!   whitespace pass on the first copy.
//!
//! Paths and sizes are interleaved within each round, and the order of the
//! paths rotates from round to round, so that drifting clock speed or a
//! noisy neighbour lands on all of them alike.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;

use crate::cli::parse_size;
use crate::docgen;
use crate::error::{Error, Result};
use crate::json::Json;
use crate::stats::fmt_bytes;

/// Flags of `lockd-bench json`.
#[derive(Debug, Clone, Args)]
pub(crate) struct IngestArgs {
    /// Document sizes, comma-separated; k/KiB and m/MiB are powers of 1024.
    #[arg(long, value_delimiter = ',', value_parser = parse_size, default_value = "150,60k,2m", value_name = "BYTES,..")]
    pub sizes: Vec<usize>,
    /// Rounds; each measures every path at every size once. [default: 9, or 3 with --quick]
    #[arg(long, value_name = "N")]
    pub rounds: Option<usize>,
    /// Milliseconds of work per measurement (one path, one size, one round). [default: 200, or 30 with --quick]
    #[arg(long, value_name = "MS")]
    pub sample_ms: Option<u64>,
    /// Smoke run: 3 rounds of 30 ms samples. Flags given explicitly still win.
    #[arg(long)]
    pub quick: bool,
    /// Also write the results as JSON to this file.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
}

/// Seed of the generated documents: fixed, so every run sees the same bytes.
const SEED: u64 = 0x10CD;

/// One way of ingesting a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    Copy,
    Serde,
    Simd,
}

const PATHS: [Path; 3] = [Path::Copy, Path::Serde, Path::Simd];

impl Path {
    fn label(self) -> &'static str {
        match self {
            Path::Copy => "copy alone",
            Path::Serde => "serde_json compact_in_place",
            Path::Simd => "simd-json to_tape + strip",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Path::Copy => "copy",
            Path::Serde => "serde_json",
            Path::Simd => "simd_json",
        }
    }
}

/// Deepest nesting the simd path's strip accepts: the server's limit.
const MAX_DEPTH: usize = 10_000;

/// The server's whitespace pass, written again for the simd path (the
/// server's is private): drops whitespace outside strings in place and
/// returns the new length, `None` past [`MAX_DEPTH`]. Only meaningful on
/// valid JSON.
pub(crate) fn strip_whitespace(buf: &mut [u8]) -> Option<usize> {
    let (mut write, mut depth) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for read in 0..buf.len() {
        let b = buf[read];
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
        } else {
            match b {
                b' ' | b'\t' | b'\n' | b'\r' => continue,
                b'"' => in_string = true,
                b'[' | b'{' => {
                    depth += 1;
                    if depth > MAX_DEPTH {
                        return None;
                    }
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        buf[write] = b;
        write += 1;
    }
    Some(write)
}

/// The reusable state of the simd path: the second copy and simd-json's
/// buffers, as a server thread would keep them between requests.
struct SimdScratch {
    copy: Vec<u8>,
    buffers: simd_json::Buffers,
}

impl SimdScratch {
    fn new(len: usize) -> SimdScratch {
        SimdScratch {
            copy: vec![0; len],
            buffers: simd_json::Buffers::new(len),
        }
    }
}

/// simd-json's ingest of `buf` (already a fresh copy of the upload):
/// validate a second copy, then compact `buf` in place.
fn simd_compact(buf: &mut [u8], scratch: &mut SimdScratch) -> std::result::Result<usize, String> {
    scratch.copy.clear();
    scratch.copy.extend_from_slice(buf);
    simd_json::to_tape_with_buffers(&mut scratch.copy, &mut scratch.buffers).map_err(|e| format!("simd-json: {e}"))?;
    strip_whitespace(buf).ok_or_else(|| format!("nested deeper than {MAX_DEPTH} levels"))
}

/// Runs `path` over `doc` `iters` times and returns the time taken.
fn sample(path: Path, doc: &[u8], iters: u64, buf: &mut [u8], simd: &mut SimdScratch) -> Result<Duration> {
    let start = Instant::now();
    for _ in 0..iters {
        buf.copy_from_slice(doc);
        match path {
            Path::Copy => {}
            Path::Serde => {
                let n = lockd_net::server::json::compact_in_place(buf).map_err(Error::Other)?;
                black_box(n);
            }
            Path::Simd => {
                let n = simd_compact(buf, simd).map_err(Error::Other)?;
                black_box(n);
            }
        }
        black_box(&mut *buf);
    }
    Ok(start.elapsed())
}

/// What both compacting paths make of `doc`; an error if they disagree.
pub(crate) fn check_same_output(doc: &[u8]) -> Result<Vec<u8>> {
    let mut a = doc.to_vec();
    let n = lockd_net::server::json::compact_in_place(&mut a).map_err(Error::Other)?;
    a.truncate(n);
    let mut b = doc.to_vec();
    let m = simd_compact(&mut b, &mut SimdScratch::new(doc.len())).map_err(Error::Other)?;
    b.truncate(m);
    if a != b {
        return Err(Error::Other(format!(
            "serde_json and simd-json paths compacted a {} document differently ({} vs {} bytes)",
            fmt_bytes(doc.len()),
            a.len(),
            b.len()
        )));
    }
    Ok(a)
}

/// Per-document times of one path at one size, one per round.
#[derive(Debug, Clone)]
struct Samples {
    ns_per_doc: Vec<f64>,
}

/// Median, min and max of a non-empty set of samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Spread {
    /// Median.
    pub median: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
}

impl Spread {
    /// The spread of `xs`; `None` when empty or not all finite.
    pub(crate) fn of(xs: &[f64]) -> Option<Spread> {
        if xs.is_empty() || xs.iter().any(|x| !x.is_finite()) {
            return None;
        }
        let mut v = xs.to_vec();
        v.sort_by(f64::total_cmp);
        let mid = v.len() / 2;
        let median = if v.len() % 2 == 1 {
            v[mid]
        } else {
            (v[mid - 1] + v[mid]) / 2.0
        };
        Some(Spread {
            median,
            min: v[0],
            max: v[v.len() - 1],
        })
    }
}

/// One document size's results.
struct SizeResult {
    target: usize,
    bytes: usize,
    compacted: usize,
    iters: u64,
    by_path: Vec<(Path, Spread)>,
}

impl SizeResult {
    fn get(&self, p: Path) -> Option<Spread> {
        self.by_path.iter().find(|(q, _)| *q == p).map(|(_, s)| *s)
    }
}

/// Iterations per sample so that one sample takes about `sample`.
fn calibrate(doc: &[u8], sample_time: Duration, buf: &mut [u8], simd: &mut SimdScratch) -> Result<u64> {
    let mut iters = 1u64;
    loop {
        let t = sample(Path::Simd, doc, iters, buf, simd)?.max(sample(Path::Serde, doc, iters, buf, simd)?);
        if t >= Duration::from_millis(10) || iters >= 1 << 30 {
            let per = t.as_secs_f64() / iters as f64;
            return Ok(((sample_time.as_secs_f64() / per) as u64).max(1));
        }
        iters *= 4;
    }
}

/// Entry point of `lockd-bench json`.
pub(crate) fn run(a: &IngestArgs) -> Result<()> {
    let rounds = a.rounds.unwrap_or(if a.quick { 3 } else { 9 });
    let sample_ms = a.sample_ms.unwrap_or(if a.quick { 30 } else { 200 });
    if rounds == 0 || rounds > 1000 {
        return Err(Error::Invalid("--rounds must be between 1 and 1000".into()));
    }
    if sample_ms == 0 || sample_ms > 60_000 {
        return Err(Error::Invalid("--sample-ms must be between 1 and 60000".into()));
    }
    if a.sizes.is_empty() || a.sizes.iter().any(|s| !(1..=(256 << 20)).contains(s)) {
        return Err(Error::Invalid(
            "--sizes values must be between 1 byte and 256 MiB".into(),
        ));
    }
    let sample_time = Duration::from_millis(sample_ms);
    let docs: Vec<Vec<u8>> = a.sizes.iter().map(|&s| docgen::document(s, SEED)).collect();
    let mut plans = Vec::new();
    for doc in &docs {
        let compacted = check_same_output(doc)?.len();
        let mut buf = vec![0u8; doc.len()];
        let mut simd = SimdScratch::new(doc.len());
        let iters = calibrate(doc, sample_time, &mut buf, &mut simd)?;
        eprintln!(
            "json  {:>9}: {} bytes pretty, {} compacted, {} documents per sample",
            fmt_bytes(doc.len()),
            doc.len(),
            compacted,
            iters
        );
        plans.push((compacted, iters, buf, simd));
    }
    let mut samples: Vec<Vec<Samples>> = docs
        .iter()
        .map(|_| PATHS.iter().map(|_| Samples { ns_per_doc: Vec::new() }).collect())
        .collect();
    for round in 0..rounds {
        for (i, doc) in docs.iter().enumerate() {
            let (_, iters, buf, simd) = &mut plans[i];
            for k in 0..PATHS.len() {
                let p = (k + round) % PATHS.len();
                let t = sample(PATHS[p], doc, *iters, buf, simd)?;
                samples[i][p].ns_per_doc.push(t.as_nanos() as f64 / *iters as f64);
            }
        }
        eprintln!("json  round {}/{rounds} done", round + 1);
    }
    let results: Vec<SizeResult> = docs
        .iter()
        .enumerate()
        .map(|(i, doc)| SizeResult {
            target: a.sizes[i],
            bytes: doc.len(),
            compacted: plans[i].0,
            iters: plans[i].1,
            by_path: PATHS
                .iter()
                .enumerate()
                .filter_map(|(p, path)| Spread::of(&samples[i][p].ns_per_doc).map(|s| (*path, s)))
                .collect(),
        })
        .collect();
    print!("{}", table(&results, rounds, sample_ms));
    if let Some(path) = &a.json {
        let doc = json(&results, rounds, sample_ms);
        std::fs::write(path, doc.to_pretty()).map_err(|e| Error::io("write JSON to", path, e))?;
        eprintln!("results written to {}", path.display());
    }
    Ok(())
}

/// MB/s (10^6 bytes) for `bytes` in `ns` nanoseconds.
fn mb_per_s(bytes: usize, ns: f64) -> f64 {
    if ns > 0.0 {
        bytes as f64 * 1e3 / ns
    } else {
        0.0
    }
}

fn fmt_ns(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2}ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.1}µs", ns / 1e3)
    } else {
        format!("{ns:.0}ns")
    }
}

/// Verdict for one size: which path is faster, net of the copy both make,
/// and whether the rounds agree (no overlap of min–max ranges).
fn verdict(r: &SizeResult) -> Option<(f64, String)> {
    let (copy, serde, simd) = (r.get(Path::Copy)?, r.get(Path::Serde)?, r.get(Path::Simd)?);
    let ratio = serde.median / simd.median;
    let clear = serde.min > simd.max || simd.min > serde.max;
    let (winner, factor) = if ratio >= 1.0 {
        ("simd-json", ratio)
    } else {
        ("serde_json", 1.0 / ratio)
    };
    let net = (serde.median - copy.median) / (simd.median - copy.median).max(1.0);
    let text = format!(
        "{winner} faster by {:.0}% ({:.2}x; {:.2}x net of the copy){}",
        (factor - 1.0) * 100.0,
        factor,
        if ratio >= 1.0 { net } else { 1.0 / net.max(1e-9) },
        if clear {
            ""
        } else {
            " — within run-to-run noise (ranges overlap)"
        }
    );
    Some((ratio, text))
}

fn table(results: &[SizeResult], rounds: usize, sample_ms: u64) -> String {
    use std::fmt::Write as _;
    let mut t = String::new();
    let _ = writeln!(
        t,
        "\nlockd-bench json — validate + compact one state upload ({rounds} rounds, ~{sample_ms} ms per sample, \
         paths interleaved); median [min–max] per document"
    );
    let _ = writeln!(
        t,
        "  {:>9} {:<28} {:>10} {:>23} {:>9} {:>12}",
        "document", "path", "ns/doc", "[min–max]", "MB/s", "net of copy"
    );
    for r in results {
        let copy = r.get(Path::Copy).map_or(0.0, |c| c.median);
        for (i, (p, s)) in r.by_path.iter().enumerate() {
            let size = if i == 0 { fmt_bytes(r.bytes) } else { String::new() };
            let net = if *p == Path::Copy {
                String::new()
            } else {
                fmt_ns(s.median - copy)
            };
            let _ = writeln!(
                t,
                "  {:>9} {:<28} {:>10} {:>23} {:>9.0} {:>12}",
                size,
                p.label(),
                fmt_ns(s.median),
                format!("[{}–{}]", fmt_ns(s.min), fmt_ns(s.max)),
                mb_per_s(r.bytes, s.median),
                net
            );
        }
        if let Some((_, text)) = verdict(r) {
            let _ = writeln!(t, "  {:>9} => {text}", "");
        }
    }
    let _ = writeln!(
        t,
        "\nsizes are the pretty-printed uploads (targets {}); both paths produce identical compacted bytes \
         (checked before timing). simd-json rewrites what it parses, so its path includes a second copy.",
        results
            .iter()
            .map(|r| fmt_bytes(r.target))
            .collect::<Vec<_>>()
            .join(", ")
    );
    t
}

fn json(results: &[SizeResult], rounds: usize, sample_ms: u64) -> Json {
    let sizes = results.iter().map(|r| {
        let paths = r.by_path.iter().map(|(p, s)| {
            Json::obj([
                ("path", Json::str(p.key())),
                ("ns_per_doc_median", Json::Num(s.median)),
                ("ns_per_doc_min", Json::Num(s.min)),
                ("ns_per_doc_max", Json::Num(s.max)),
                ("mb_per_s_median", Json::Num(mb_per_s(r.bytes, s.median))),
            ])
        });
        let v = verdict(r);
        Json::obj([
            ("target_bytes", Json::Int(r.target as u64)),
            ("bytes", Json::Int(r.bytes as u64)),
            ("compacted_bytes", Json::Int(r.compacted as u64)),
            ("docs_per_sample", Json::Int(r.iters)),
            ("paths", Json::Arr(paths.collect())),
            ("serde_over_simd_time_ratio", Json::opt_num(v.as_ref().map(|(x, _)| *x))),
            ("verdict", v.map_or(Json::Null, |(_, text)| Json::str(text))),
        ])
    });
    Json::obj([
        ("command", Json::str(std::env::args().collect::<Vec<_>>().join(" "))),
        ("rounds", Json::Int(rounds as u64)),
        ("sample_ms", Json::Int(sample_ms)),
        ("sizes", Json::Arr(sizes.collect())),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_paths_compact_the_generated_documents_identically() {
        for target in [150, 60 << 10, 2 << 20] {
            let doc = docgen::document(target, SEED);
            let out = check_same_output(&doc).expect("same output");
            assert!(out.len() < doc.len(), "whitespace was removed");
            let reparsed: serde_json::Value = serde_json::from_slice(&out).expect("still valid");
            let original: serde_json::Value = serde_json::from_slice(&doc).expect("valid");
            assert_eq!(reparsed, original);
            assert!(!out.contains(&b'\n'), "no newline left outside strings");
        }
    }

    #[test]
    fn strip_keeps_strings_escapes_and_numbers() {
        let mut b = b" { \"a b\" : [ 1.50 , -2e3 ] , \"c\" : \"x \\\" \\\\ y\" } ".to_vec();
        let n = strip_whitespace(&mut b).expect("depth");
        assert_eq!(&b[..n], br#"{"a b":[1.50,-2e3],"c":"x \" \\ y"}"#);
        let mut deep = "[".repeat(MAX_DEPTH + 1).into_bytes();
        assert_eq!(strip_whitespace(&mut deep), None);
    }

    #[test]
    fn simd_path_refuses_what_the_server_refuses() {
        for bad in [&b"{\"a\":1"[..], b"[1,]", b"\"\xff\"", b"{'a':1}"] {
            let mut buf = bad.to_vec();
            assert!(
                simd_compact(&mut buf, &mut SimdScratch::new(bad.len())).is_err(),
                "{bad:?}"
            );
            let mut buf = bad.to_vec();
            assert!(lockd_net::server::json::compact_in_place(&mut buf).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn spread_and_sampling() {
        assert_eq!(
            Spread::of(&[3.0, 1.0, 2.0]),
            Some(Spread {
                median: 2.0,
                min: 1.0,
                max: 3.0
            })
        );
        assert_eq!(Spread::of(&[4.0, 1.0]).map(|s| s.median), Some(2.5));
        assert_eq!(Spread::of(&[]), None);
        assert_eq!(Spread::of(&[f64::NAN]), None);
        let doc = docgen::document(150, 1);
        let mut buf = vec![0; doc.len()];
        let mut simd = SimdScratch::new(doc.len());
        for p in PATHS {
            assert!(sample(p, &doc, 3, &mut buf, &mut simd).is_ok());
        }
        assert!((mb_per_s(1_000_000, 1e9) - 1.0).abs() < 1e-12);
    }
}
