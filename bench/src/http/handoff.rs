//! Hand-off bookkeeping for the contention workload: pairing each release
//! with the grant it let through, to time the hand-off.

use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Per key, the last release and the last grant seen, so that a release
/// and its successor's grant are paired by grant number (T, then T + 1;
/// the workload numbers a key's grants as they come, which works for
/// systems without fencing tokens too) whichever of the two workers
/// records first.
#[derive(Default)]
struct Slot {
    /// Grant number released, when the release was sent and when it was answered.
    released: Option<(i64, Instant, Instant)>,
    /// Grant number granted, when the acquire was sent and when it was answered.
    granted: Option<(i64, Instant, Instant)>,
}

/// One hand-off: from the release answered, and from the release sent.
pub(crate) type Handoff = (Duration, Duration);

/// Hand-off bookkeeping for the contention workload.
pub(crate) struct HandoffBook {
    slots: Vec<Mutex<Slot>>,
}

impl HandoffBook {
    /// Books for `keys` keys.
    pub(crate) fn new(keys: usize) -> HandoffBook {
        HandoffBook {
            slots: (0..keys).map(|_| Mutex::new(Slot::default())).collect(),
        }
    }

    /// Key `k` was granted with `token`; the acquire was sent at `asked`
    /// and answered at `got`. Returns the hand-off latency if the release
    /// of `token - 1` was already seen and this acquirer was waiting for it
    /// (sent before that release was answered).
    pub(crate) fn granted(&self, k: usize, token: i64, asked: Instant, got: Instant) -> Option<Handoff> {
        let mut slot = self.slots.get(k)?.lock();
        match slot.released.take() {
            Some((prev, called, r)) if prev == token - 1 => {
                (asked < r).then(|| (got.saturating_duration_since(r), got.saturating_duration_since(called)))
            }
            _ => {
                slot.granted = Some((token, asked, got));
                None
            }
        }
    }

    /// The lease with `token` on key `k` was released: sent at `called`,
    /// answered at `r`. Returns the hand-off latency if the successor's
    /// grant was already seen (zero when it arrived before this answer).
    pub(crate) fn released(&self, k: usize, token: i64, called: Instant, r: Instant) -> Option<Handoff> {
        let mut slot = self.slots.get(k)?.lock();
        match slot.granted.take() {
            Some((next, asked, got)) if next == token + 1 => {
                (asked < r).then(|| (got.saturating_duration_since(r), got.saturating_duration_since(called)))
            }
            _ => {
                slot.released = Some((token, called, r));
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handoffs_pair_by_token_whichever_side_comes_first() {
        let book = HandoffBook::new(2);
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let d = |a, b| Some((Duration::from_millis(a), Duration::from_millis(b)));
        // Release of token 4 (sent at 6, answered at 10) seen first, then the grant of 5 that was waiting.
        assert_eq!(book.released(0, 4, ms(6), ms(10)), None);
        assert_eq!(book.granted(0, 5, ms(2), ms(13)), d(3, 7));
        // The successor's grant is seen before the release answer: zero from the answer.
        assert_eq!(book.granted(1, 8, ms(1), ms(20)), None);
        assert_eq!(book.released(1, 7, ms(18), ms(21)), d(0, 2));
        // A grant that was not waiting (asked after the release) is no hand-off.
        assert_eq!(book.released(0, 5, ms(29), ms(30)), None);
        assert_eq!(book.granted(0, 6, ms(31), ms(32)), None);
        // Tokens that do not follow each other are not paired.
        assert_eq!(book.released(0, 9, ms(39), ms(40)), None);
        assert_eq!(book.granted(0, 11, ms(39), ms(41)), None);
        // Unknown keys are ignored.
        assert_eq!(book.granted(5, 1, ms(0), ms(1)), None);
    }
}
