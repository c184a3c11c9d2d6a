//! The results of `lockd-bench http` as JSON, for scripts and for
//! comparing runs later.

use super::compare;
use super::report::Report;
use crate::json::Json;
use crate::stats::Latency;

impl Report {
    /// The results as JSON.
    pub(crate) fn json(&self) -> Json {
        let m = &self.meta;
        let fsync = self.fsync.iter().map(|(when, r)| {
            Json::obj([
                ("when", Json::str(*when)),
                ("syncs_per_s", Json::Num(r.syncs_per_s())),
                ("latency_us", latency(&r.latency)),
            ])
        });
        let rows = self.rows.iter().map(|r| {
            let steps = r.m.steps.iter().map(|(n, l)| (n.to_string(), latency(l))).collect();
            Json::obj([
                ("workload", Json::str(r.workload.name())),
                ("system", Json::str(r.system)),
                ("addr", Json::str(r.addr.clone())),
                ("round", Json::Int(r.round as u64)),
                ("concurrency", Json::Int(r.concurrency as u64)),
                ("keys", Json::Int(r.keys as u64)),
                ("ops", Json::Int(r.m.ops)),
                ("elapsed_s", Json::Num(r.m.elapsed.as_secs_f64())),
                ("ops_per_s", Json::Num(r.ops_per_s())),
                ("errors", Json::Int(r.m.errors)),
                ("first_error", r.m.first_error.clone().map_or(Json::Null, Json::Str)),
                ("busy", Json::Int(r.m.busy)),
                ("misses", Json::Int(r.m.misses)),
                ("latency_us", latency(&r.m.latency)),
                ("steps_latency_us", Json::Obj(steps)),
                ("handoff_latency_us", r.m.handoff.as_ref().map_or(Json::Null, latency)),
                (
                    "handoff_from_release_sent_us",
                    r.m.handoff_from_call.as_ref().map_or(Json::Null, latency),
                ),
                ("client_cpu_s", Json::opt_num(r.m.client_cpu_s)),
                ("server_cpu_s", Json::opt_num(r.m.server_cpu_s)),
                (
                    "latency_cdf_us",
                    Json::Arr(
                        r.m.cdf
                            .iter()
                            .map(|(p, us)| Json::Arr(vec![Json::Num(*p), Json::Int(*us)]))
                            .collect(),
                    ),
                ),
            ])
        });
        let verdicts = self.verdicts().into_iter().map(|v| {
            Json::obj([
                ("target", Json::str(v.target)),
                ("system", Json::str(v.system)),
                ("measured", Json::str(v.measured)),
                ("met", v.met.map_or(Json::Null, Json::Bool)),
                ("comment", Json::str(v.comment)),
            ])
        });
        Json::obj([
            ("command", Json::str(m.command.clone())),
            ("rounds", Json::Int(m.rounds as u64)),
            ("systems", compare::systems_json(&m.systems)),
            ("comparisons", compare::comparisons_json(&compare::medians(&self.rows))),
            ("spawned", Json::Bool(m.spawned)),
            ("store", m.store.clone().map_or(Json::Null, Json::Str)),
            ("probe_dir", Json::str(m.probe_dir.clone())),
            ("filesystem", Json::str(m.filesystem.clone())),
            ("memory_backed", Json::Bool(m.volatile)),
            ("kernel", Json::str(m.kernel.clone())),
            ("cpus", Json::Int(m.cpus as u64)),
            ("client_threads", Json::Int(m.client_threads as u64)),
            ("duration_s", Json::Num(m.duration.as_secs_f64())),
            ("warmup_s", Json::Num(m.warmup.as_secs_f64())),
            ("value_bytes", Json::Int(m.value_bytes.0 as u64)),
            ("value_bytes_compacted", Json::Int(m.value_bytes.1 as u64)),
            ("fdatasync", Json::Arr(fsync.collect())),
            ("runs", Json::Arr(rows.collect())),
            ("targets", Json::Arr(verdicts.collect())),
            (
                "notes",
                Json::Arr(self.notes.iter().map(|n| Json::str(n.clone())).collect()),
            ),
        ])
    }
}

fn latency(l: &Latency) -> Json {
    Json::obj([
        ("count", Json::Int(l.count)),
        ("p50", Json::Int(l.p50)),
        ("p95", Json::Int(l.p95)),
        ("p99", Json::Int(l.p99)),
        ("p999", Json::Int(l.p999)),
        ("max", Json::Int(l.max)),
        ("mean", Json::Num(l.mean)),
    ])
}
