//! What mTLS costs lockd: throughput over mTLS against plain HTTP on TCP,
//! per workload and concurrency, both measured in the same interleaved
//! run, judged against the target that mTLS costs less than 15 % of the
//! plain throughput.
//!
//! Both sides are medians over the rounds, like every other comparison of
//! the report, so one unlucky round does not decide the verdict.

use std::fmt::Write as _;

use super::compare::Summary;
use super::report::TARGET_CONCURRENCY;
use super::systems::{MTLS_LABEL, PLAIN_TCP_LABEL};
use crate::json::Json;
use crate::stats::fmt_rate;

/// The most throughput mTLS may cost, in percent of plain TCP's (the
/// issue's target, stated at [`TARGET_CONCURRENCY`] with keep-alive
/// connections, and applied here at every concurrency measured).
pub(crate) const TARGET_COST_PERCENT: f64 = 15.0;

/// lockd over mTLS against lockd over plain TCP on one workload at one
/// concurrency.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TlsCost {
    /// Workload name.
    pub workload: &'static str,
    /// Workers (= connections) of both runs.
    pub concurrency: usize,
    /// Median throughput over plain TCP, ops/s.
    pub plain_ops_per_s: f64,
    /// Median throughput over mTLS, ops/s.
    pub mtls_ops_per_s: f64,
    /// Errors in the two median runs together: any makes the ratio suspect.
    pub errors: u64,
}

impl TlsCost {
    /// mTLS throughput divided by plain throughput.
    pub(crate) fn ratio(&self) -> f64 {
        self.mtls_ops_per_s / self.plain_ops_per_s
    }

    /// Throughput lost to mTLS in percent of plain; negative when mTLS
    /// happened to measure faster (noise between runs).
    pub(crate) fn cost_percent(&self) -> f64 {
        (1.0 - self.ratio()) * 100.0
    }

    /// Whether the cost stays under [`TARGET_COST_PERCENT`].
    pub(crate) fn met(&self) -> bool {
        self.cost_percent() < TARGET_COST_PERCENT
    }
}

/// Pairs every mTLS median with the plain-TCP median of the same workload
/// and concurrency, in the order the medians come (the order of the run).
/// Pairs whose plain side completed nothing have no ratio and are left out.
pub(crate) fn costs(medians: &[Summary<'_>]) -> Vec<TlsCost> {
    medians
        .iter()
        .filter(|m| m.row.system == MTLS_LABEL)
        .filter_map(|tls| {
            let plain = medians.iter().find(|m| {
                m.row.system == PLAIN_TCP_LABEL
                    && m.row.workload == tls.row.workload
                    && m.row.concurrency == tls.row.concurrency
            })?;
            let plain_ops_per_s = plain.row.ops_per_s();
            (plain_ops_per_s > 0.0).then(|| TlsCost {
                workload: tls.row.workload.name(),
                concurrency: tls.row.concurrency,
                plain_ops_per_s,
                mtls_ops_per_s: tls.row.ops_per_s(),
                errors: plain.row.m.errors + tls.row.m.errors,
            })
        })
        .collect()
}

/// The mTLS section of the comparison, empty when the run had no mTLS and
/// plain-TCP pair.
pub(crate) fn table(medians: &[Summary<'_>]) -> String {
    let costs = costs(medians);
    let mut t = String::new();
    if costs.is_empty() {
        return t;
    }
    let _ = writeln!(
        t,
        "\nmTLS against plain TCP (median throughput, same run; target: mTLS costs < {TARGET_COST_PERCENT}% of \
         the throughput)"
    );
    for c in &costs {
        let cost = c.cost_percent();
        let price = if cost >= 0.0 {
            format!("costs {cost:.1}%")
        } else {
            format!("costs nothing measurable (mTLS {:.1}% faster: noise)", -cost)
        };
        let verdict = if c.met() {
            format!("[met: want < {TARGET_COST_PERCENT}%]")
        } else {
            format!(
                "[MISSED: want < {TARGET_COST_PERCENT}%, over by {:.1} points]",
                cost - TARGET_COST_PERCENT
            )
        };
        let suspect = if c.errors > 0 {
            format!(" — {} errors in these runs: the ratio is suspect", c.errors)
        } else {
            String::new()
        };
        let _ = writeln!(
            t,
            "  {:<11} x {:>4}: {MTLS_LABEL} {} ops/s vs {PLAIN_TCP_LABEL} {} ops/s = {:.2}×, {price}  {verdict}{suspect}",
            c.workload,
            c.concurrency,
            fmt_rate(c.mtls_ops_per_s),
            fmt_rate(c.plain_ops_per_s),
            c.ratio()
        );
    }
    let at_target: Vec<&TlsCost> = costs.iter().filter(|c| c.concurrency == TARGET_CONCURRENCY).collect();
    if !at_target.is_empty() {
        let met = at_target.iter().filter(|c| c.met()).count();
        let _ = writeln!(
            t,
            "  at concurrency {TARGET_CONCURRENCY}, where the target is stated: met on {met} of {} workloads",
            at_target.len()
        );
    }
    t
}

/// The costs as JSON, one object per workload and concurrency.
pub(crate) fn json(medians: &[Summary<'_>]) -> Json {
    Json::Arr(
        costs(medians)
            .into_iter()
            .map(|c| {
                Json::obj([
                    ("workload", Json::str(c.workload)),
                    ("concurrency", Json::Int(c.concurrency as u64)),
                    ("plain", Json::str(PLAIN_TCP_LABEL)),
                    ("mtls", Json::str(MTLS_LABEL)),
                    ("plain_ops_per_s", Json::Num(c.plain_ops_per_s)),
                    ("mtls_ops_per_s", Json::Num(c.mtls_ops_per_s)),
                    ("ratio", Json::Num(c.ratio())),
                    ("cost_percent", Json::Num(c.cost_percent())),
                    ("target_cost_percent", Json::Num(TARGET_COST_PERCENT)),
                    ("met", Json::Bool(c.met())),
                    ("errors", Json::Int(c.errors)),
                ])
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::super::compare::medians;
    use super::super::report::tests::row;
    use super::super::report::Row;
    use super::super::workload::Workload;
    use super::*;

    fn run(workload: Workload, system: &'static str, concurrency: usize, round: usize, ops: u64) -> Row {
        let mut r = row(workload, system, concurrency, ops, None);
        r.round = round;
        r
    }

    #[test]
    fn costs_pair_each_mtls_median_with_plain_tcp() {
        let rows = vec![
            // cycle x 64: plain medians 1000, mTLS medians 900 -> 10 % cost.
            run(Workload::Cycle, PLAIN_TCP_LABEL, 64, 0, 1000),
            run(Workload::Cycle, MTLS_LABEL, 64, 0, 900),
            run(Workload::Cycle, PLAIN_TCP_LABEL, 64, 1, 1200),
            run(Workload::Cycle, MTLS_LABEL, 64, 1, 100),
            run(Workload::Cycle, PLAIN_TCP_LABEL, 64, 2, 800),
            run(Workload::Cycle, MTLS_LABEL, 64, 2, 950),
            // public-read x 64: 20 % cost.
            run(Workload::PublicRead, PLAIN_TCP_LABEL, 64, 0, 5000),
            run(Workload::PublicRead, MTLS_LABEL, 64, 0, 4000),
            // public-read x 8: mTLS faster.
            run(Workload::PublicRead, PLAIN_TCP_LABEL, 8, 0, 1000),
            run(Workload::PublicRead, MTLS_LABEL, 8, 0, 1050),
            // No plain partner over TCP: no ratio.
            run(Workload::Contention, "lockd-unix", 64, 0, 500),
            run(Workload::Contention, MTLS_LABEL, 64, 0, 400),
        ];
        let m = medians(&rows);
        let c = costs(&m);
        assert_eq!(c.len(), 3, "{c:?}");
        assert_eq!((c[0].workload, c[0].concurrency), ("cycle", 64));
        assert_eq!((c[0].plain_ops_per_s, c[0].mtls_ops_per_s), (1000.0, 900.0));
        assert!((c[0].cost_percent() - 10.0).abs() < 1e-9);
        assert!(c[0].met());
        assert!((c[1].cost_percent() - 20.0).abs() < 1e-9);
        assert!(!c[1].met());
        assert_eq!(c[2].concurrency, 8);
        assert!(c[2].cost_percent() < 0.0 && c[2].met());

        let t = table(&m);
        assert!(t.contains("costs 10.0%  [met: want < 15%]"), "{t}");
        assert!(
            t.contains("costs 20.0%  [MISSED: want < 15%, over by 5.0 points]"),
            "{t}"
        );
        assert!(t.contains("5.0% faster: noise"), "{t}");
        assert!(t.contains("met on 1 of 2 workloads"), "{t}");
        let j = json(&m).to_pretty();
        assert!(j.contains("\"target_cost_percent\": 15"), "{j}");
        assert!(j.contains("\"mtls_ops_per_s\": 4000"), "{j}");
        assert!(j.contains("\"met\": false") && j.contains("\"met\": true"), "{j}");
    }

    #[test]
    fn a_cost_exactly_at_the_target_misses_it() {
        let c = TlsCost {
            workload: "cycle",
            concurrency: 64,
            plain_ops_per_s: 1000.0,
            mtls_ops_per_s: 850.0,
            errors: 0,
        };
        assert!((c.cost_percent() - 15.0).abs() < 1e-9);
        assert!(!c.met(), "the target is strictly less than 15 %");
    }

    #[test]
    fn errors_and_missing_partners_are_not_hidden() {
        let mut bad = run(Workload::Cycle, MTLS_LABEL, 64, 0, 900);
        bad.m.errors = 3;
        let rows = vec![run(Workload::Cycle, PLAIN_TCP_LABEL, 64, 0, 1000), bad];
        let t = table(&medians(&rows));
        assert!(t.contains("3 errors in these runs"), "{t}");
        let plain_only = vec![run(Workload::Cycle, PLAIN_TCP_LABEL, 64, 0, 1000)];
        assert_eq!(table(&medians(&plain_only)), "", "no mTLS, no section");
        let idle_plain = vec![
            run(Workload::Cycle, PLAIN_TCP_LABEL, 64, 0, 0),
            run(Workload::Cycle, MTLS_LABEL, 64, 0, 10),
        ];
        assert!(costs(&medians(&idle_plain)).is_empty(), "no ratio against zero");
    }
}
