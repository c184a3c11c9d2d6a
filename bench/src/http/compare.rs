//! Comparing systems: the median of interleaved rounds, lockd's ratios to
//! etcd and Redis (and, with `--tls`, mTLS to plain TCP: [`super::tls_cost`])
//! against the targets the comparison is judged by, and the charts.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::report::{Report, Row, SystemInfo, TARGET_CONCURRENCY};
use super::workload::Workload;
use crate::chart::{self, CdfSeries, ThroughputSeries};
use crate::error::{Error, Result};
use crate::json::Json;

/// One measurement repeated over rounds: the median round and the spread.
#[derive(Debug, Clone)]
pub(crate) struct Summary<'a> {
    /// The round with the median throughput (the lower middle one for an
    /// even count), whose latencies the table shows.
    pub row: &'a Row,
    /// Slowest round, ops/s.
    pub min: f64,
    /// Fastest round, ops/s.
    pub max: f64,
    /// Rounds measured.
    pub rounds: usize,
}

/// Groups `rows` by workload, system and concurrency (in the order they
/// first ran) and picks each group's median round.
pub(crate) fn medians(rows: &[Row]) -> Vec<Summary<'_>> {
    let mut groups: Vec<Vec<&Row>> = Vec::new();
    for r in rows {
        let same = |g: &&mut Vec<&Row>| {
            g.first()
                .is_some_and(|f| f.workload == r.workload && f.system == r.system && f.concurrency == r.concurrency)
        };
        match groups.iter_mut().find(same) {
            Some(g) => g.push(r),
            None => groups.push(vec![r]),
        }
    }
    groups
        .into_iter()
        .filter_map(|mut g| {
            g.sort_by(|a, b| a.ops_per_s().total_cmp(&b.ops_per_s()));
            let row = *g.get((g.len() - 1) / 2)?;
            Some(Summary {
                row,
                min: g.first()?.ops_per_s(),
                max: g.last()?.ops_per_s(),
                rounds: g.len(),
            })
        })
        .collect()
}

/// lockd's throughput against one peer on one workload.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Ratio {
    /// Workload name.
    pub workload: &'static str,
    /// Concurrency compared at.
    pub concurrency: usize,
    /// The lockd listener compared.
    pub lockd: &'static str,
    /// The peer.
    pub peer: &'static str,
    /// lockd ops/s divided by the peer's.
    pub ratio: f64,
    /// The ratio the comparison is judged by, where there is one.
    pub wanted: Option<f64>,
}

/// The ratio wanted of lockd over `peer` on `w` (issue #5's targets):
/// cycle ≥ 3× etcd and ≥ 1× durable Redis, public-read ≥ 1.5× etcd.
fn wanted(w: Workload, peer: &str) -> Option<f64> {
    match (w, peer) {
        (Workload::Cycle, "etcd") => Some(3.0),
        (Workload::Cycle, "redis") => Some(1.0),
        (Workload::PublicRead, "etcd") => Some(1.5),
        _ => None,
    }
}

/// lockd (TCP first, else any listener) against every other system, for
/// every workload, at [`TARGET_CONCURRENCY`] when it was measured (else the
/// highest concurrency measured).
pub(crate) fn ratios(medians: &[Summary<'_>]) -> Vec<Ratio> {
    let mut out = Vec::new();
    let mut workloads: Vec<Workload> = Vec::new();
    for m in medians {
        if !workloads.contains(&m.row.workload) {
            workloads.push(m.row.workload);
        }
    }
    for w in workloads {
        let of_w: Vec<&Summary<'_>> = medians.iter().filter(|m| m.row.workload == w).collect();
        let at = if of_w.iter().any(|m| m.row.concurrency == TARGET_CONCURRENCY) {
            TARGET_CONCURRENCY
        } else {
            of_w.iter().map(|m| m.row.concurrency).max().unwrap_or(0)
        };
        let at_c: Vec<&Summary<'_>> = of_w.into_iter().filter(|m| m.row.concurrency == at).collect();
        let lockd = at_c
            .iter()
            .find(|m| m.row.system == "lockd-tcp")
            .or_else(|| at_c.iter().find(|m| m.row.system.starts_with("lockd")));
        let Some(lockd) = lockd else { continue };
        for peer in at_c.iter().filter(|m| !m.row.system.starts_with("lockd")) {
            let theirs = peer.row.ops_per_s();
            if theirs > 0.0 {
                out.push(Ratio {
                    workload: w.name(),
                    concurrency: at,
                    lockd: lockd.row.system,
                    peer: peer.row.system,
                    ratio: lockd.row.ops_per_s() / theirs,
                    wanted: wanted(w, peer.row.system),
                });
            }
        }
    }
    out
}

/// The comparison section of the table: what each system is, the ratios,
/// and where the client may have been the bottleneck.
pub(crate) fn table(report: &Report, medians: &[Summary<'_>]) -> String {
    let mut t = String::new();
    let systems = &report.meta.systems;
    if systems.len() > 1 {
        let _ = writeln!(t, "\nSystems");
        for s in systems {
            let _ = writeln!(
                t,
                "  {:<14} {:<24} {:<11} YCSB writes: {}{}",
                s.label,
                s.addr,
                if s.durable { "durable" } else { "NOT durable" },
                s.writes,
                s.version.as_ref().map_or(String::new(), |v| format!("; {v}"))
            );
        }
    }
    let ratios = ratios(medians);
    if !ratios.is_empty() {
        let _ = writeln!(t, "\nlockd against the others (median throughput, same run)");
        for r in &ratios {
            let verdict = match r.wanted {
                Some(w) if r.ratio >= w => format!("  [met: want ≥ {w}×]"),
                Some(w) => format!("  [MISSED: want ≥ {w}×, short by {:.0}%]", (1.0 - r.ratio / w) * 100.0),
                None => String::new(),
            };
            let _ = writeln!(
                t,
                "  {:<11} x {:>4}: {} is {:.2}× {}{verdict}",
                r.workload, r.concurrency, r.lockd, r.ratio, r.peer
            );
        }
    }
    t.push_str(&super::tls_cost::table(medians));
    let cpus = report.meta.cpus.max(1) as f64;
    let client_bound: Vec<String> = medians
        .iter()
        .filter_map(|m| {
            let r = m.row;
            let secs = r.m.elapsed.as_secs_f64();
            let cores = r.m.client_cpu_s.filter(|_| secs > 0.0)? / secs;
            (cores >= 0.5 * cpus).then(|| {
                format!(
                    "{} on {} x {} ({cores:.2} of {cpus} cores)",
                    r.workload.name(),
                    r.system,
                    r.concurrency
                )
            })
        })
        .collect();
    if !client_bound.is_empty() {
        let _ = writeln!(
            t,
            "\nThe load generator used half the machine or more in: {}.\n  These numbers are bounded by the \
             client as much as by the system measured.",
            client_bound.join("; ")
        );
    }
    t
}

/// The systems as JSON.
pub(crate) fn systems_json(systems: &[SystemInfo]) -> Json {
    Json::Arr(
        systems
            .iter()
            .map(|s| {
                Json::obj([
                    ("label", Json::str(s.label)),
                    ("addr", Json::str(s.addr.clone())),
                    ("durable", Json::Bool(s.durable)),
                    ("ycsb_writes", Json::str(s.writes)),
                    ("version", s.version.clone().map_or(Json::Null, Json::Str)),
                ])
            })
            .collect(),
    )
}

/// The ratios, the costs of mTLS and the median summaries as JSON.
pub(crate) fn comparisons_json(medians: &[Summary<'_>]) -> Json {
    let ratios = ratios(medians).into_iter().map(|r| {
        Json::obj([
            ("workload", Json::str(r.workload)),
            ("concurrency", Json::Int(r.concurrency as u64)),
            ("lockd", Json::str(r.lockd)),
            ("peer", Json::str(r.peer)),
            ("ratio", Json::Num(r.ratio)),
            ("wanted", Json::opt_num(r.wanted)),
        ])
    });
    let summaries = medians.iter().map(|m| {
        Json::obj([
            ("workload", Json::str(m.row.workload.name())),
            ("system", Json::str(m.row.system)),
            ("concurrency", Json::Int(m.row.concurrency as u64)),
            ("rounds", Json::Int(m.rounds as u64)),
            ("median_ops_per_s", Json::Num(m.row.ops_per_s())),
            ("min_ops_per_s", Json::Num(m.min)),
            ("max_ops_per_s", Json::Num(m.max)),
            ("p99_us", Json::Int(m.row.m.latency.p99)),
        ])
    });
    Json::obj([
        ("ratios", Json::Arr(ratios.collect())),
        ("tls_costs", super::tls_cost::json(medians)),
        ("medians", Json::Arr(summaries.collect())),
    ])
}

/// Writes, per workload, `<workload>-throughput.svg` (ops/s against
/// concurrency, median with min–max) and `<workload>-latency-cdf.svg` (at
/// [`TARGET_CONCURRENCY`], or the highest measured) into `dir`.
pub(crate) fn write_charts(report: &Report, dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
    let medians = medians(&report.rows);
    let mut workloads: Vec<Workload> = Vec::new();
    for m in &medians {
        if !workloads.contains(&m.row.workload) {
            workloads.push(m.row.workload);
        }
    }
    let mut written = Vec::new();
    for w in workloads {
        let of_w: Vec<&Summary<'_>> = medians.iter().filter(|m| m.row.workload == w).collect();
        let mut labels: Vec<&'static str> = Vec::new();
        for m in &of_w {
            if !labels.contains(&m.row.system) {
                labels.push(m.row.system);
            }
        }
        let throughput: Vec<ThroughputSeries> = labels
            .iter()
            .map(|&label| ThroughputSeries {
                label: label.to_string(),
                points: of_w
                    .iter()
                    .filter(|m| m.row.system == label)
                    .map(|m| (m.row.concurrency, m.row.ops_per_s(), m.min, m.max))
                    .collect(),
            })
            .collect();
        let title = format!("{}: throughput (median of {} rounds)", w.name(), report.meta.rounds);
        written.push(save(
            dir,
            &format!("{}-throughput.svg", w.name()),
            chart::throughput_svg(&title, &throughput)?,
        )?);

        let at = if of_w.iter().any(|m| m.row.concurrency == TARGET_CONCURRENCY) {
            TARGET_CONCURRENCY
        } else {
            of_w.iter().map(|m| m.row.concurrency).max().unwrap_or(0)
        };
        let cdf: Vec<CdfSeries> = of_w
            .iter()
            .filter(|m| m.row.concurrency == at)
            .map(|m| CdfSeries {
                label: m.row.system.to_string(),
                points: m.row.m.cdf.iter().map(|&(p, us)| (p, us as f64)).collect(),
            })
            .collect();
        let title = format!("{}: latency at concurrency {at} (median round)", w.name());
        written.push(save(
            dir,
            &format!("{}-latency-cdf.svg", w.name()),
            chart::cdf_svg(&title, &cdf)?,
        )?);
    }
    Ok(written)
}

fn save(dir: &Path, name: &str, svg: String) -> Result<PathBuf> {
    let path = dir.join(name);
    std::fs::write(&path, svg).map_err(|e| Error::io("write", &path, e))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(workload: Workload, system: &'static str, concurrency: usize, round: usize, ops: u64) -> Row {
        let mut r = super::super::report::tests::row(workload, system, concurrency, ops, None);
        r.round = round;
        r
    }

    #[test]
    fn the_median_round_and_its_spread() {
        let rows = vec![
            row(Workload::Cycle, "lockd-tcp", 64, 0, 900),
            row(Workload::Cycle, "etcd", 64, 0, 300),
            row(Workload::Cycle, "lockd-tcp", 64, 1, 1000),
            row(Workload::Cycle, "etcd", 64, 1, 100),
            row(Workload::Cycle, "lockd-tcp", 64, 2, 700),
            row(Workload::Cycle, "etcd", 64, 2, 200),
        ];
        let m = medians(&rows);
        assert_eq!(m.len(), 2, "one summary per system");
        assert_eq!(
            (m[0].row.system, m[0].row.m.ops, m[0].min, m[0].max),
            ("lockd-tcp", 900, 700.0, 1000.0)
        );
        assert_eq!((m[1].row.system, m[1].row.m.ops, m[1].rounds), ("etcd", 200, 3));
        let even = medians(&rows[..4]);
        assert_eq!(even[0].row.m.ops, 900, "lower middle of two rounds");
    }

    #[test]
    fn ratios_are_judged_against_the_targets() {
        let rows = vec![
            row(Workload::Cycle, "lockd-tcp", 64, 0, 900),
            row(Workload::Cycle, "etcd", 64, 0, 200),
            row(Workload::Cycle, "redis", 64, 0, 1000),
            row(Workload::Cycle, "redis-everysec", 64, 0, 3000),
            row(Workload::Cycle, "etcd", 8, 0, 1),
            row(Workload::PublicRead, "lockd-unix", 8, 0, 300),
            row(Workload::PublicRead, "etcd", 8, 0, 100),
        ];
        let m = medians(&rows);
        let r = ratios(&m);
        assert_eq!(r.len(), 4, "{r:?}");
        assert_eq!((r[0].peer, r[0].wanted), ("etcd", Some(3.0)));
        assert!((r[0].ratio - 4.5).abs() < 1e-9);
        assert_eq!((r[1].peer, r[1].wanted), ("redis", Some(1.0)));
        assert!((r[1].ratio - 0.9).abs() < 1e-9);
        assert_eq!((r[2].peer, r[2].wanted), ("redis-everysec", None));
        assert_eq!(
            (r[3].workload, r[3].concurrency, r[3].lockd),
            ("public-read", 8, "lockd-unix")
        );
        assert!((r[3].ratio - 3.0).abs() < 1e-9);
        let json = comparisons_json(&m).to_pretty();
        assert!(json.contains("\"ratio\": 4.5"), "{json}");
    }

    #[test]
    fn charts_are_written_per_workload() {
        let rows = vec![
            row(Workload::Cycle, "lockd-tcp", 1, 0, 90),
            row(Workload::Cycle, "etcd", 1, 0, 20),
            row(Workload::Cycle, "lockd-tcp", 64, 0, 900),
            row(Workload::Cycle, "etcd", 64, 0, 200),
        ];
        let report = super::super::report::tests::report("disk:///d", 100, rows);
        let dir = tempfile::tempdir().expect("tempdir");
        let written = write_charts(&report, dir.path()).expect("charts");
        assert_eq!(written.len(), 2);
        let svg = std::fs::read_to_string(dir.path().join("cycle-throughput.svg")).expect("read");
        assert!(svg.contains("lockd-tcp") && svg.contains("etcd"), "{svg}");
        let cdf = std::fs::read_to_string(dir.path().join("cycle-latency-cdf.svg")).expect("read");
        assert!(cdf.contains("concurrency 64"), "{cdf}");
    }
}
