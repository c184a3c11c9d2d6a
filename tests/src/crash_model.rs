//! The workload of the logstore crash tests, and the checker that judges a
//! store left behind by a killed writer.
//!
//! Both sides share this module so that they cannot drift apart: the child
//! process (`logstore-crash-child`) commits [`batch_ops`] for batch numbers
//! `n = t, t + THREADS, t + 2·THREADS, …` on writer thread `t = n % THREADS`,
//! one batch at a time per thread, and the test recomputes from the same
//! function what the store must hold.
//!
//! Why the check can be exact: every batch puts `meta/last/t{t}` = `n`. A
//! thread only starts batch `n + THREADS` once batch `n` was acknowledged,
//! and batches are atomic, so the value of `meta/last/t{t}` found after a
//! crash names the last batch of thread `t` that landed, and *all* earlier
//! batches of that thread must have landed too. The whole store content is
//! then a pure function of those per-thread "last" numbers ([`expected`]);
//! anything more (part of a later batch) or less (part of an acknowledged
//! batch) is a durability or atomicity failure.
//!
//! Sequence numbers are checked on top: all records of one batch carry the
//! batch's sequence number, which is the one the child printed in its ack;
//! it never changes across restarts; later batches get larger numbers, also
//! across a crash and recovery.

use std::collections::{BTreeMap, HashMap};

/// Writer threads in the child; each owns the keys under `t{t}/`.
pub const THREADS: u64 = 3;

/// Hot keys per thread, overwritten round-robin.
const HOT_KEYS: u64 = 4;

/// One operation of a batch in the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelOp {
    /// Set the key to the value.
    Put(String, Vec<u8>),
    /// Remove the key.
    Delete(String),
}

/// A well-mixed function of `n`, so sizes and shapes vary from batch to
/// batch without any state.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Number of `b{n}/k*` keys batch `n` puts (1..=8).
fn data_keys(n: u64) -> u64 {
    1 + mix(n) % 8
}

/// The value batch `n` writes under `key`: it names its batch and key (so
/// a value landing under the wrong key, or from the wrong batch, shows)
/// and is padded to a size between 0 and ~400 bytes so that segments fill
/// and roll at irregular points.
pub fn value(n: u64, key: &str) -> Vec<u8> {
    let mut v = format!("{n}|{key}|").into_bytes();
    let h = mix(n ^ mix(key.len() as u64 ^ u64::from(key.as_bytes().last().copied().unwrap_or(0))));
    let pad = (h % 400) as usize;
    v.extend((0..pad).map(|i| b'a' + ((h as usize + i) % 26) as u8));
    v
}

/// The batch number a value was written by (its prefix up to `|`).
pub fn origin(value: &[u8]) -> Option<u64> {
    let end = value.iter().position(|b| *b == b'|')?;
    std::str::from_utf8(&value[..end]).ok()?.parse().ok()
}

/// The key holding the last batch number thread `t` committed.
pub fn last_key(t: u64) -> String {
    format!("meta/last/t{t}")
}

/// The operations of batch `n`, in order. Thread `n % THREADS`, local
/// number `i = n / THREADS`:
///
/// * puts `t{t}/b{n}/k0 .. k{m-1}` with `m` in 1..=8;
/// * overwrites hot key `t{t}/hot/{i % 4}`; every 7th batch also deletes
///   the next hot key (a later batch puts it back);
/// * deletes the data keys of the same thread's batch `i - 3`, except for
///   every 5th such batch, which stays forever (so most data becomes
///   garbage for compaction, and tombstones are common);
/// * puts `meta/last/t{t}` = `n` last.
pub fn batch_ops(n: u64) -> Vec<ModelOp> {
    let t = n % THREADS;
    let i = n / THREADS;
    let mut ops = Vec::new();
    let put = |ops: &mut Vec<ModelOp>, key: String| {
        let v = value(n, &key);
        ops.push(ModelOp::Put(key, v));
    };
    for j in 0..data_keys(n) {
        put(&mut ops, format!("t{t}/b{n}/k{j}"));
    }
    put(&mut ops, format!("t{t}/hot/{}", i % HOT_KEYS));
    if i % 7 == 6 {
        ops.push(ModelOp::Delete(format!("t{t}/hot/{}", (i + 1) % HOT_KEYS)));
    }
    if i >= 3 && !(i - 3).is_multiple_of(5) {
        let old = n - 3 * THREADS;
        for j in 0..data_keys(old) {
            ops.push(ModelOp::Delete(format!("t{t}/b{old}/k{j}")));
        }
    }
    put(&mut ops, last_key(t));
    ops
}

/// What the store must hold when thread `t`'s last landed batch is
/// `last[t]` (`None`: none of its batches landed).
pub fn expected(last: &[Option<u64>]) -> BTreeMap<String, Vec<u8>> {
    let mut state = BTreeMap::new();
    advance(&mut state, &vec![None; last.len()], last);
    state
}

/// Applies to `state` (the store content for `from`) the batches that take
/// each thread from `from[t]` to `to[t]`. Incremental, so the checker's
/// cost per crash does not grow with the history of the directory.
fn advance(state: &mut BTreeMap<String, Vec<u8>>, from: &[Option<u64>], to: &[Option<u64>]) {
    for (t, (from, to)) in from.iter().zip(to).enumerate() {
        let Some(to) = *to else { continue };
        let first = from.map_or(t as u64, |f| f + THREADS);
        for n in (first..=to).step_by(THREADS as usize) {
            for op in batch_ops(n) {
                match op {
                    ModelOp::Put(k, v) => {
                        state.insert(k, v);
                    }
                    ModelOp::Delete(k) => {
                        state.remove(&k);
                    }
                }
            }
        }
    }
}

/// One entry read back from a recovered store.
#[derive(Debug, Clone)]
pub struct Found {
    /// The key.
    pub key: Vec<u8>,
    /// Sequence number the store reports for it.
    pub seq: u64,
    /// The value.
    pub value: Vec<u8>,
}

/// What the checker remembers between crash iterations on one directory.
#[derive(Debug, Default)]
pub struct History {
    /// Last landed batch per thread at the previous check.
    pub last: Vec<Option<u64>>,
    /// Sequence number of every batch ever acknowledged or seen landed.
    pub seqs: HashMap<u64, u64>,
    /// Highest sequence number acknowledged or seen so far.
    pub max_seq: u64,
    /// Acknowledgements seen over all iterations.
    pub acks: u64,
    /// Batches that landed although their ack was never read (killed
    /// between fdatasync and the print, or ack still in the pipe).
    pub unacked_landed: u64,
    /// The model's store content for `last`.
    state: BTreeMap<String, Vec<u8>>,
}

impl History {
    /// A history for a fresh, empty directory.
    pub fn new() -> History {
        History {
            last: vec![None; THREADS as usize],
            ..History::default()
        }
    }
}

/// Shorthand for building a failure message.
macro_rules! bail {
    ($($arg:tt)*) => { return Err(format!($($arg)*)) };
}

/// Checks a recovered store against the model and updates `hist`.
///
/// `acks` are the `(batch, seq)` pairs the child printed before it was
/// killed; `found` is the whole store content (a full scan) and `last_seq`
/// the store's own idea of its highest sequence number. Returns an error
/// message describing the first class of violation found.
pub fn check(hist: &mut History, acks: &[(u64, u64)], found: &[Found], last_seq: u64) -> Result<(), String> {
    let by_key: BTreeMap<&[u8], &Found> = found.iter().map(|f| (&f.key[..], f)).collect();
    if by_key.len() != found.len() {
        bail!("scan returned duplicate keys");
    }
    // 1. The last landed batch of every thread, from meta/last/t{t}.
    let mut last = vec![None; THREADS as usize];
    for (t, slot) in last.iter_mut().enumerate() {
        let key = last_key(t as u64);
        if let Some(f) = by_key.get(key.as_bytes()) {
            let n = origin(&f.value).ok_or_else(|| format!("{key} holds a malformed value"))?;
            if n % THREADS != t as u64 {
                bail!("{key} = {n}, a batch of another thread");
            }
            *slot = Some(n);
        }
    }
    // 2. Acknowledged batches must have landed; previously seen ones must
    //    still be there; at most one unacknowledged batch per thread lands.
    let prev_max = hist.max_seq;
    let mut max_ack: Vec<Option<u64>> = vec![None; THREADS as usize];
    for &(n, seq) in acks {
        let t = (n % THREADS) as usize;
        if last[t].is_none_or(|l| l < n) {
            bail!(
                "acknowledged batch {n} (seq {seq}) is missing: thread {t} only has up to {:?}",
                last[t]
            );
        }
        max_ack[t] = max_ack[t].max(Some(n));
        match hist.seqs.insert(n, seq) {
            Some(old) if old != seq => bail!("batch {n} acknowledged twice, with seq {old} and {seq}"),
            Some(_) => {}
            None if seq <= prev_max => {
                bail!("batch {n} was acknowledged with seq {seq}, not above the {prev_max} handed out before")
            }
            None => {}
        }
    }
    for t in 0..THREADS as usize {
        let prev = hist.last[t];
        if last[t] < prev {
            bail!(
                "thread {t}: batch {prev:?} was in the store before this crash, now only up to {:?}",
                last[t]
            );
        }
        let base = prev.max(max_ack[t]);
        let next = base.map_or(t as u64, |b| b + THREADS);
        if last[t] != base && last[t] != Some(next) {
            bail!(
                "thread {t}: store holds up to batch {:?} but only {base:?} was acknowledged",
                last[t]
            );
        }
        if last[t] != base {
            hist.unacked_landed += 1;
        }
    }
    // 3. The exact content.
    let mut want = hist.state.clone();
    advance(&mut want, &hist.last, &last);
    let mut problems = Vec::new();
    for (k, v) in &want {
        match by_key.get(k.as_bytes()) {
            None => problems.push(format!("missing {k}")),
            Some(f) if f.value != *v => problems.push(format!(
                "{k}: value from batch {:?}, expected batch {:?}",
                origin(&f.value),
                origin(v)
            )),
            Some(_) => {}
        }
    }
    for f in found {
        if !std::str::from_utf8(&f.key).is_ok_and(|k| want.contains_key(k)) {
            problems.push(format!(
                "unexpected key {} (value from batch {:?})",
                String::from_utf8_lossy(&f.key),
                origin(&f.value)
            ));
        }
    }
    if !problems.is_empty() {
        let total = problems.len();
        problems.truncate(12);
        bail!("store content differs from the model for last = {last:?} ({total} problems): {problems:?}");
    }
    // 4. Sequence numbers: one per batch, stable, growing.
    let mut batch_seq: BTreeMap<u64, u64> = BTreeMap::new();
    for f in found {
        let n = origin(&f.value).ok_or("value without origin")?;
        if *batch_seq.entry(n).or_insert(f.seq) != f.seq {
            bail!(
                "batch {n} has records with different seqs ({} and {})",
                batch_seq[&n],
                f.seq
            );
        }
    }
    let mut prev_in_thread: Vec<Option<(u64, u64)>> = vec![None; THREADS as usize];
    for (&n, &seq) in &batch_seq {
        let t = (n % THREADS) as usize;
        if let Some((pn, ps)) = prev_in_thread[t] {
            if ps >= seq {
                bail!("batch {pn} has seq {ps} but the later batch {n} has seq {seq}");
            }
        }
        prev_in_thread[t] = Some((n, seq));
        let new_batch = hist.last[t].is_none_or(|l| n > l);
        match hist.seqs.get(&n) {
            Some(&known) if known != seq => bail!("batch {n} was acknowledged/seen with seq {known}, now has {seq}"),
            Some(_) => {}
            None if new_batch && seq <= prev_max => {
                bail!("new batch {n} got seq {seq}, not above the {prev_max} handed out before")
            }
            None => {}
        }
    }
    let acked_top = acks.iter().map(|a| a.1).max().unwrap_or(0);
    let top = batch_seq
        .values()
        .copied()
        .max()
        .unwrap_or(0)
        .max(acked_top)
        .max(prev_max);
    if last_seq < top {
        bail!("store reports last_seq {last_seq} below seq {top} it has acknowledged or holds");
    }
    for (&n, &seq) in &batch_seq {
        hist.seqs.insert(n, seq);
    }
    hist.max_seq = top;
    hist.acks += acks.len() as u64;
    hist.last = last;
    hist.state = want;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds the store content the model says, with seq = n + 1.
    fn store_for(last: &[Option<u64>]) -> Vec<Found> {
        expected(last)
            .into_iter()
            .map(|(k, v)| Found {
                key: k.into_bytes(),
                seq: origin(&v).expect("model value") + 1,
                value: v,
            })
            .collect()
    }

    /// Batches 0..=31 of threads 0 and 1, acknowledged with seq = n + 1.
    fn acks_up_to_31() -> Vec<(u64, u64)> {
        (0..=31).filter(|n| n % 3 != 2).map(|n| (n, n + 1)).collect()
    }

    #[test]
    fn model_round_trips_through_the_checker() {
        let mut h = History::new();
        let last = [Some(30), Some(31), None];
        check(&mut h, &acks_up_to_31(), &store_for(&last), 32).expect("consistent store passes");
        // An unacknowledged batch of thread 2 landed (seq 40): fine.
        let mut more = store_for(&[Some(30), Some(31), Some(2)]);
        more.iter_mut()
            .filter(|f| origin(&f.value) == Some(2))
            .for_each(|f| f.seq = 40);
        check(&mut h, &[], &more, 40).expect("in-flight batch may land");
        assert_eq!((h.unacked_landed, h.max_seq), (1, 40));
        // Reusing a sequence number for a new batch is caught.
        let mut reuse = store_for(&[Some(33), Some(31), Some(2)]);
        reuse
            .iter_mut()
            .filter(|f| origin(&f.value) == Some(2))
            .for_each(|f| f.seq = 40);
        reuse
            .iter_mut()
            .filter(|f| origin(&f.value) == Some(33))
            .for_each(|f| f.seq = 35);
        let err = check(&mut h, &[(33, 35)], &reuse, 40).expect_err("seq reuse");
        assert!(err.contains("not above"), "{err}");
    }

    #[test]
    fn checker_catches_lost_partial_and_reordered_batches() {
        let last = [Some(30), Some(31), None];
        let acks = acks_up_to_31();
        // Lost acknowledged batch.
        let err = check(&mut History::new(), &acks, &store_for(&[Some(27), Some(31), None]), 32);
        assert!(err.expect_err("lost batch").contains("missing"));
        // Partial batch: drop one data key of the last batch of thread 0.
        let mut partial = store_for(&last);
        partial.retain(|f| f.key != b"t0/b30/k0");
        let err = check(&mut History::new(), &acks, &partial, 32).expect_err("partial batch");
        assert!(err.contains("missing t0/b30/k0"), "{err}");
        // Two records of one batch with different seqs.
        let mut torn = store_for(&last);
        torn.iter_mut()
            .filter(|f| f.key == b"t0/b30/k0")
            .for_each(|f| f.seq = 99);
        assert!(check(&mut History::new(), &acks, &torn, 200).is_err());
        // Seq going backwards between batches of a thread.
        let mut back = store_for(&last);
        back.iter_mut()
            .filter(|f| origin(&f.value) == Some(30))
            .for_each(|f| f.seq = 2);
        assert!(check(&mut History::new(), &[], &back, 200).is_err());
    }
}
