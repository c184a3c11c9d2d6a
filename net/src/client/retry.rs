//! When to retry and how long to wait in between.

use std::time::Duration;

use http::StatusCode;

use super::error::ClientError;

/// Exponential backoff with "equal jitter": attempt `n` waits a random
/// duration in `[c/2, c]` with `c = min(max, base · 2ⁿ)`, so a crowd of
/// clients spreads out while none of them retries too eagerly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Backoff {
    pub(crate) base: Duration,
    pub(crate) max: Duration,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_secs(5),
        }
    }
}

impl Backoff {
    /// Upper bound of the wait before retry number `attempt` (0-based).
    pub(crate) fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// Wait before retry number `attempt`. `unit` is a uniform random
    /// number in `[0, 1)`; `server_hint` is the server's `Retry-After`, which
    /// is honoured as a minimum but never beyond `max`.
    pub(crate) fn delay(&self, attempt: u32, server_hint: Option<Duration>, unit: f64) -> Duration {
        let ceiling = self.ceiling(attempt);
        let half = ceiling / 2;
        let jittered = half + half.mul_f64(unit.clamp(0.0, 1.0));
        let floor = server_hint.map_or(Duration::ZERO, |hint| hint.min(self.max));
        jittered.max(floor)
    }
}

/// Whether a failed acquire is worth trying again, and the server's
/// suggested wait if it gave one. Retried: `409 waiting`, `429`, `503`,
/// timeouts and transport failures. Everything else — notably
/// `already_exists` and other 4xx — is final.
pub(crate) fn acquire_retry_hint(err: &ClientError) -> Option<Option<Duration>> {
    match err {
        ClientError::Api(api) => {
            let retryable = (api.status == StatusCode::CONFLICT.as_u16() && api.code == "waiting")
                || api.status == StatusCode::TOO_MANY_REQUESTS.as_u16()
                || api.status == StatusCode::SERVICE_UNAVAILABLE.as_u16();
            let hint = u64::try_from(api.retry_after_seconds)
                .ok()
                .filter(|s| *s > 0)
                .map(Duration::from_secs);
            retryable.then_some(hint)
        }
        ClientError::Transport(_) | ClientError::Timeout => Some(None),
        _ => None,
    }
}

/// Whether an answer means "this endpoint cannot serve you now, another
/// one may": no answer at all, or a node that is passive or draining.
pub(crate) fn is_failover(err: &ClientError) -> bool {
    match err {
        ClientError::Transport(_) | ClientError::Timeout => true,
        ClientError::Api(api) => {
            api.status == StatusCode::SERVICE_UNAVAILABLE.as_u16()
                && matches!(api.code.as_str(), "node_passive" | "shutdown_draining")
        }
        _ => false,
    }
}

/// The per-request deadline of an acquire: the server holds a blocking
/// acquire for up to `block_seconds`, so the deadline grows by as much.
/// `0` (or absent) blocks forever, so no deadline applies; other negative
/// values other than `-1` use the server's `--acquire-block`, assumed to be
/// its default of 60 s.
pub(crate) fn acquire_timeout(base: Option<Duration>, block_seconds: Option<i64>) -> Option<Duration> {
    const SERVER_ACQUIRE_BLOCK: Duration = Duration::from_secs(60);
    let base = base?;
    match block_seconds.unwrap_or(0) {
        0 => None,
        -1 => Some(base),
        b if b > 0 => Some(base.saturating_add(Duration::from_secs(b.unsigned_abs()))),
        _ => Some(base.saturating_add(SERVER_ACQUIRE_BLOCK)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::error::ApiError;

    fn api(status: u16, code: &str, retry_after: i64) -> ClientError {
        ClientError::Api(Box::new(ApiError {
            status,
            code: code.to_owned(),
            detail: String::new(),
            current_version: 0,
            current_etag: String::new(),
            retry_after_seconds: retry_after,
            leader_endpoint: String::new(),
            correlation_id: None,
        }))
    }

    #[test]
    fn ceiling_doubles_then_caps() {
        let b = Backoff::default();
        let ms: Vec<u128> = (0..8).map(|n| b.ceiling(n).as_millis()).collect();
        assert_eq!(ms, vec![100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        assert_eq!(
            b.ceiling(200),
            Duration::from_secs(5),
            "huge attempt numbers do not overflow"
        );
    }

    #[test]
    fn jitter_stays_within_half_and_full_ceiling() {
        let b = Backoff::default();
        for attempt in 0..10 {
            let c = b.ceiling(attempt);
            assert_eq!(b.delay(attempt, None, 0.0), c / 2);
            assert_eq!(b.delay(attempt, None, 1.0), c);
            for _ in 0..200 {
                let d = b.delay(attempt, None, fastrand::f64());
                assert!(
                    d >= c / 2 && d <= c,
                    "attempt {attempt}: {d:?} outside [{:?}, {c:?}]",
                    c / 2
                );
            }
        }
    }

    #[test]
    fn server_hint_is_a_floor_capped_by_max() {
        let b = Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_secs(2),
        };
        assert_eq!(b.delay(0, Some(Duration::from_secs(1)), 0.0), Duration::from_secs(1));
        assert_eq!(b.delay(0, Some(Duration::from_secs(30)), 0.0), Duration::from_secs(2));
        assert_eq!(b.delay(5, Some(Duration::from_millis(10)), 1.0), Duration::from_secs(2));
    }

    #[test]
    fn retry_classification() {
        assert_eq!(
            acquire_retry_hint(&api(409, "waiting", 3)),
            Some(Some(Duration::from_secs(3)))
        );
        assert_eq!(acquire_retry_hint(&api(409, "waiting", 0)), Some(None));
        assert_eq!(
            acquire_retry_hint(&api(429, "throttled", 1)),
            Some(Some(Duration::from_secs(1)))
        );
        assert_eq!(acquire_retry_hint(&api(503, "shutdown_draining", 0)), Some(None));
        assert_eq!(acquire_retry_hint(&ClientError::Timeout), Some(None));
        assert_eq!(acquire_retry_hint(&ClientError::Transport("reset".into())), Some(None));
        assert_eq!(acquire_retry_hint(&api(409, "already_exists", 0)), None);
        assert_eq!(acquire_retry_hint(&api(400, "missing_owner", 0)), None);
        assert_eq!(acquire_retry_hint(&api(403, "namespace_forbidden", 0)), None);
        assert_eq!(acquire_retry_hint(&ClientError::Tls("untrusted".into())), None);
    }

    #[test]
    fn failover_classification() {
        assert!(is_failover(&ClientError::Transport("refused".into())));
        assert!(is_failover(&ClientError::Timeout));
        assert!(is_failover(&api(503, "node_passive", 1)));
        assert!(!is_failover(&api(503, "state_not_published", 0)));
        assert!(!is_failover(&api(409, "waiting", 1)));
        assert!(!is_failover(&ClientError::Tls("no CA".into())));
    }

    #[test]
    fn acquire_deadline_follows_block_seconds() {
        let base = Some(Duration::from_secs(30));
        assert_eq!(acquire_timeout(base, None), None);
        assert_eq!(acquire_timeout(base, Some(0)), None);
        assert_eq!(acquire_timeout(base, Some(-1)), base);
        assert_eq!(acquire_timeout(base, Some(10)), Some(Duration::from_secs(40)));
        assert_eq!(acquire_timeout(base, Some(-7)), Some(Duration::from_secs(90)));
        assert_eq!(acquire_timeout(None, Some(10)), None, "no base deadline stays none");
    }
}
