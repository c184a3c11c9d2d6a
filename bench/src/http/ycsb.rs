//! The YCSB core workloads A–F: which operation comes next and on which
//! record.
//!
//! The mixes and request distributions follow YCSB's `core` workload
//! definitions (A: 50 % read / 50 % update, B: 95/5, C: read only, D: 95 %
//! read / 5 % insert reading the latest records, E: 95 % short scans / 5 %
//! insert, F: 50 % read / 50 % read-modify-write), with zipfian requests by
//! default. Records are `user0000000000` …: zero-padded so key order is
//! insertion order, which is what a scan walks.
//!
//! What an "update" or "insert" is depends on the system: a lease-protected
//! cycle for lockd (it has no other way to write), a plain put for etcd and
//! Redis. The driver decides (`Conn::put`); this module only chooses.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use clap::ValueEnum;

/// How records are picked for reads, updates and scans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Distribution {
    /// Zipfian (θ = 0.99) over the records, hot records scattered over the
    /// key space (YCSB's scrambled zipfian); workload D favours the most
    /// recently inserted records instead.
    Zipfian,
    /// Every record equally likely.
    Uniform,
}

/// One of the YCSB core workloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mix {
    A,
    B,
    C,
    D,
    E,
    F,
}

/// Shares of each operation, in percent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Proportions {
    pub read: f64,
    pub update: f64,
    pub insert: f64,
    pub scan: f64,
    pub read_modify_write: f64,
}

impl Mix {
    /// The operation shares of this workload.
    pub(crate) fn proportions(self) -> Proportions {
        let p = |read, update, insert, scan, read_modify_write| Proportions {
            read,
            update,
            insert,
            scan,
            read_modify_write,
        };
        match self {
            Mix::A => p(50.0, 50.0, 0.0, 0.0, 0.0),
            Mix::B => p(95.0, 5.0, 0.0, 0.0, 0.0),
            Mix::C => p(100.0, 0.0, 0.0, 0.0, 0.0),
            Mix::D => p(95.0, 0.0, 5.0, 0.0, 0.0),
            Mix::E => p(0.0, 0.0, 5.0, 95.0, 0.0),
            Mix::F => p(50.0, 0.0, 0.0, 0.0, 50.0),
        }
    }

    /// Workload D reads what was inserted last.
    fn favours_latest(self) -> bool {
        self == Mix::D
    }
}

/// One operation to perform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// Read record `n`.
    Read(u64),
    /// Overwrite record `n`.
    Update(u64),
    /// Write the new record `n`.
    Insert(u64),
    /// Read `len` records from record `n` on.
    Scan(u64, usize),
    /// Read record `n`, then overwrite it.
    ReadModifyWrite(u64),
}

impl Op {
    /// Index of the operation kind in [`OP_NAMES`].
    pub(crate) fn kind(self) -> usize {
        match self {
            Op::Read(_) => 0,
            Op::Update(_) => 1,
            Op::Insert(_) => 2,
            Op::Scan(..) => 3,
            Op::ReadModifyWrite(_) => 4,
        }
    }
}

/// Names of the operation kinds, for per-kind latency in reports.
pub(crate) const OP_NAMES: [&str; 5] = ["read", "update", "insert", "scan", "rmw"];

/// The longest scan, as in YCSB's core workload E (lengths uniform in 1..=100).
pub(crate) const MAX_SCAN: usize = 100;

/// The record name of `n`.
pub(crate) fn record_key(n: u64) -> String {
    format!("user{n:010}")
}

/// The records of one system under test: the loaded ones, the counter
/// that numbers inserts, and how far inserts are acknowledged. Shared by
/// every worker, and by every workload run against that system, so the key
/// space only grows.
///
/// Requests only pick acknowledged records (all of `0..acked`), as YCSB's
/// acknowledged counter does: an insert still in flight does not exist yet,
/// and reading it would be a cheap miss counted as a read.
#[derive(Debug)]
pub(crate) struct Keyspace {
    next: AtomicU64,
    acked: AtomicU64,
    /// Inserts acknowledged out of order, above `acked`.
    early: Mutex<BTreeSet<u64>>,
}

impl Keyspace {
    /// A key space whose records `0..loaded` exist.
    pub(crate) fn new(loaded: u64) -> Keyspace {
        Keyspace {
            next: AtomicU64::new(loaded),
            acked: AtomicU64::new(loaded),
            early: Mutex::new(BTreeSet::new()),
        }
    }

    /// Records numbered so far (loaded plus inserts, finished or not).
    #[cfg(test)]
    pub(crate) fn count(&self) -> u64 {
        self.next.load(Ordering::Relaxed)
    }

    /// Records that certainly exist: every one below this is loaded or
    /// acknowledged.
    pub(crate) fn acked(&self) -> u64 {
        self.acked.load(Ordering::Acquire)
    }

    /// Reserves the number of a new record.
    fn insert(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// The insert of record `n` finished (failed ones too, or a failure
    /// would stop the acknowledged range from ever growing again; reads of
    /// such a record are then counted as misses).
    pub(crate) fn acknowledge(&self, n: u64) {
        let mut early = self.early.lock();
        early.insert(n);
        let mut acked = self.acked.load(Ordering::Acquire);
        while early.remove(&acked) {
            acked += 1;
        }
        self.acked.store(acked, Ordering::Release);
    }
}

/// Zipfian ranks over `n` items, by the rejection-free method of Gray et
/// al. ("Quickly generating billion-record synthetic databases", 1994),
/// which is what YCSB uses: rank 0 is the most popular.
#[derive(Debug, Clone)]
pub(crate) struct Zipf {
    n: u64,
    alpha: f64,
    zeta_n: f64,
    eta: f64,
    half_pow_theta: f64,
}

/// YCSB's default skew.
pub(crate) const THETA: f64 = 0.99;

fn zeta(n: u64, theta: f64) -> f64 {
    (1..=n).map(|i| 1.0 / (i as f64).powf(theta)).sum()
}

impl Zipf {
    /// Ranks over `n ≥ 1` items with skew `theta` in (0, 1). Costs O(n)
    /// once (the normalising sum), about 20 ms per million items.
    pub(crate) fn new(n: u64, theta: f64) -> Zipf {
        let n = n.max(1);
        let zeta_n = zeta(n, theta);
        let zeta_2 = zeta(2, theta);
        Zipf {
            n,
            alpha: 1.0 / (1.0 - theta),
            zeta_n,
            eta: (1.0 - (2.0 / n as f64).powf(1.0 - theta)) / (1.0 - zeta_2 / zeta_n),
            half_pow_theta: 0.5f64.powf(theta),
        }
    }

    /// The rank for a uniform draw `u` in [0, 1).
    pub(crate) fn rank(&self, u: f64) -> u64 {
        let uz = u * self.zeta_n;
        if uz < 1.0 {
            return 0;
        }
        if uz < 1.0 + self.half_pow_theta {
            return 1.min(self.n - 1);
        }
        let r = (self.n as f64 * (self.eta * u - self.eta + 1.0).powf(self.alpha)) as u64;
        r.min(self.n - 1)
    }
}

/// FNV-1a of a 64-bit value: spreads zipfian ranks over the key space so
/// the hot records are not all neighbours (YCSB's "scrambled" zipfian).
fn fnv1a64(v: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in v.to_le_bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// SplitMix64: a worker's private, reproducible random numbers.
#[derive(Debug, Clone)]
pub(crate) struct Rand(u64);

impl Rand {
    /// A generator seeded with `seed`.
    pub(crate) fn new(seed: u64) -> Rand {
        Rand(seed)
    }

    /// Next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
        }
    }
}

/// Picks a worker's next operation.
#[derive(Debug, Clone)]
pub(crate) struct Chooser {
    mix: Mix,
    dist: Distribution,
    /// Cumulative shares: read, update, insert, scan (rmw takes the rest).
    cumulative: [f64; 4],
    zipf: Zipf,
    rand: Rand,
}

impl Chooser {
    /// A chooser for `mix`; `zipf` must cover the loaded records (build it
    /// once per run and clone it: its set-up is O(records)).
    pub(crate) fn new(mix: Mix, dist: Distribution, zipf: Zipf, seed: u64) -> Chooser {
        let p = mix.proportions();
        let total = p.read + p.update + p.insert + p.scan + p.read_modify_write;
        let mut acc = 0.0;
        let mut cumulative = [0.0; 4];
        for (slot, share) in cumulative.iter_mut().zip([p.read, p.update, p.insert, p.scan]) {
            acc += share / total;
            *slot = acc;
        }
        Chooser {
            mix,
            dist,
            cumulative,
            zipf,
            rand: Rand::new(seed),
        }
    }

    /// The next operation on `keys`.
    pub(crate) fn next(&mut self, keys: &Keyspace) -> Op {
        let u = self.rand.unit();
        if u < self.cumulative[0] {
            Op::Read(self.existing(keys))
        } else if u < self.cumulative[1] {
            Op::Update(self.existing(keys))
        } else if u < self.cumulative[2] {
            Op::Insert(keys.insert())
        } else if u < self.cumulative[3] {
            let len = 1 + self.rand.below(MAX_SCAN as u64) as usize;
            Op::Scan(self.existing(keys), len)
        } else {
            Op::ReadModifyWrite(self.existing(keys))
        }
    }

    /// A record that exists, by the request distribution.
    fn existing(&mut self, keys: &Keyspace) -> u64 {
        let count = keys.acked().max(1);
        match self.dist {
            Distribution::Uniform => self.rand.below(count),
            Distribution::Zipfian if self.mix.favours_latest() => {
                // The newest acknowledged record is the most popular.
                let rank = self.zipf.rank(self.rand.unit()).min(count - 1);
                count - 1 - rank
            }
            Distribution::Zipfian => fnv1a64(self.zipf.rank(self.rand.unit())) % count,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DRAWS: usize = 100_000;

    fn shares(mix: Mix) -> [f64; 5] {
        let keys = Keyspace::new(1000);
        let mut c = Chooser::new(mix, Distribution::Zipfian, Zipf::new(1000, THETA), 7);
        let mut n = [0usize; 5];
        for _ in 0..DRAWS {
            n[c.next(&keys).kind()] += 1;
        }
        n.map(|x| 100.0 * x as f64 / DRAWS as f64)
    }

    #[test]
    fn every_mix_draws_its_proportions() {
        for mix in [Mix::A, Mix::B, Mix::C, Mix::D, Mix::E, Mix::F] {
            let p = mix.proportions();
            let want = [p.read, p.update, p.insert, p.scan, p.read_modify_write];
            let got = shares(mix);
            for (kind, (w, g)) in want.iter().zip(got).enumerate() {
                assert!(
                    (w - g).abs() < 0.5,
                    "{mix:?} {}: want {w} %, drew {g:.2} %",
                    OP_NAMES[kind]
                );
            }
        }
    }

    #[test]
    fn zipfian_ranks_follow_the_power_law() {
        let n = 1000;
        let z = Zipf::new(n, THETA);
        let mut r = Rand::new(11);
        let mut hits = vec![0usize; n as usize];
        for _ in 0..DRAWS {
            hits[z.rank(r.unit()) as usize] += 1;
        }
        // P(rank k) = (1/(k+1)^θ) / ζ(n, θ): exact for ranks 0 and 1; Gray's
        // method draws the others from the continuous power law, which is
        // off by up to about a fifth next to the head.
        let zeta_n = zeta(n, THETA);
        for k in [0usize, 1, 2, 9, 99] {
            let want = DRAWS as f64 / ((k + 1) as f64).powf(THETA) / zeta_n;
            let got = hits[k] as f64;
            let slack = if k < 2 { 0.05 } else { 0.25 };
            let tolerance = slack * want + 3.0 * want.sqrt();
            assert!((got - want).abs() < tolerance, "rank {k}: want {want:.0}, got {got}");
        }
        // The hottest 10 % of records take most of the requests.
        let top: usize = hits[..100].iter().sum();
        assert!(top as f64 > 0.6 * DRAWS as f64, "top 10 % drew {top}");
        assert!(hits.iter().all(|&h| h < DRAWS), "ranks stay in range");
    }

    #[test]
    fn zipf_edges_stay_in_range() {
        let one = Zipf::new(1, THETA);
        let two = Zipf::new(2, THETA);
        for u in [0.0, 0.3, 0.5, 0.999_999] {
            assert_eq!(one.rank(u), 0);
            assert!(two.rank(u) < 2);
        }
        assert_eq!(Zipf::new(0, THETA).rank(0.9), 0, "an empty range acts as one item");
    }

    #[test]
    fn uniform_requests_cover_the_records_evenly() {
        let keys = Keyspace::new(10);
        let mut c = Chooser::new(Mix::C, Distribution::Uniform, Zipf::new(10, THETA), 3);
        let mut n = [0usize; 10];
        for _ in 0..DRAWS {
            match c.next(&keys) {
                Op::Read(k) => n[k as usize] += 1,
                other => panic!("workload C only reads, drew {other:?}"),
            }
        }
        assert!(n.iter().all(|&x| (9_000..11_000).contains(&x)), "{n:?}");
    }

    #[test]
    fn scrambled_zipfian_spreads_hot_records() {
        let keys = Keyspace::new(1000);
        let mut c = Chooser::new(Mix::C, Distribution::Zipfian, Zipf::new(1000, THETA), 5);
        let mut hits = vec![0usize; 1000];
        for _ in 0..DRAWS {
            if let Op::Read(k) = c.next(&keys) {
                hits[k as usize] += 1;
            }
        }
        let mut order: Vec<usize> = (0..1000).collect();
        order.sort_by_key(|&k| std::cmp::Reverse(hits[k]));
        // Skewed: the hottest record gets far more than its uniform share…
        assert!(hits[order[0]] > 20 * DRAWS / 1000, "hottest drew {}", hits[order[0]]);
        // …and the ten hottest are not one block of neighbouring keys.
        let (lo, hi) = order[..10]
            .iter()
            .fold((usize::MAX, 0), |(lo, hi), &k| (lo.min(k), hi.max(k)));
        assert!(hi - lo > 100, "hot records {lo}..{hi} are clustered");
    }

    #[test]
    fn inserts_number_new_records_and_latest_favours_them() {
        let keys = Keyspace::new(100);
        let mut c = Chooser::new(Mix::D, Distribution::Zipfian, Zipf::new(100, THETA), 9);
        let mut inserted = Vec::new();
        // How far behind the newest record each read was.
        let mut behind = Vec::new();
        for _ in 0..10_000 {
            match c.next(&keys) {
                Op::Insert(k) => {
                    inserted.push(k);
                    keys.acknowledge(k);
                }
                Op::Read(k) => {
                    assert!(k < keys.acked(), "read {k} of {} records", keys.acked());
                    behind.push(keys.acked() - 1 - k);
                }
                other => panic!("workload D reads and inserts, drew {other:?}"),
            }
        }
        let expected: Vec<u64> = (100..100 + inserted.len() as u64).collect();
        assert_eq!(inserted, expected, "inserts take fresh, consecutive numbers");
        assert_eq!(keys.count(), 100 + inserted.len() as u64);
        let recent = behind.iter().filter(|&&d| d < 10).count();
        assert!(
            recent * 100 > behind.len() * 45,
            "reads favour the newest: {recent} of {}",
            behind.len()
        );
    }

    #[test]
    fn only_acknowledged_records_are_requested() {
        let keys = Keyspace::new(10);
        let (a, b, c) = (keys.insert(), keys.insert(), keys.insert());
        assert_eq!((a, b, c, keys.count(), keys.acked()), (10, 11, 12, 13, 10));
        keys.acknowledge(b);
        assert_eq!(keys.acked(), 10, "11 is done but 10 is still in flight");
        keys.acknowledge(a);
        assert_eq!(keys.acked(), 12, "10 and 11 are both done");
        let mut chooser = Chooser::new(Mix::C, Distribution::Zipfian, Zipf::new(10, THETA), 2);
        for _ in 0..10_000 {
            if let Op::Read(k) = chooser.next(&keys) {
                assert!(k < 12, "picked record {k} whose insert is not acknowledged");
            }
        }
        keys.acknowledge(c);
        assert_eq!(keys.acked(), keys.count());
    }

    #[test]
    fn scans_are_short_and_keys_sort_in_insertion_order() {
        let keys = Keyspace::new(500);
        let mut c = Chooser::new(Mix::E, Distribution::Uniform, Zipf::new(500, THETA), 1);
        let mut lens = [0usize; MAX_SCAN + 1];
        for _ in 0..DRAWS {
            if let Op::Scan(_, len) = c.next(&keys) {
                lens[len] += 1;
            }
        }
        assert_eq!(lens[0], 0);
        assert!(
            lens[1..].iter().all(|&n| n > 600),
            "lengths 1..=100 all drawn: {lens:?}"
        );
        assert!(record_key(9) < record_key(10) && record_key(99) < record_key(1_000_000));
        assert_eq!(record_key(42), "user0000000042");
    }
}
