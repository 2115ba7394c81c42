//! Which verifications get a trace span.
//!
//! A verification takes about a microsecond; building and exporting a span
//! for each would cost more than the check. So, when traces are exported, a
//! `verify` span is made for a request whose caller traces it (a sampled
//! `traceparent`: the proxy's own trace then shows the check), and for one
//! in every `1 / ratio` other requests. When traces are not exported, none.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::HeaderMap;

/// The sampling rule for `verify` spans.
#[derive(Clone, Debug, Default)]
pub struct VerifyTracing {
    /// Off: no spans at all (traces are not exported).
    on: bool,
    /// Trace one in `every` requests the caller does not trace (0: none).
    every: u64,
    seen: Arc<AtomicU64>,
}

impl VerifyTracing {
    /// No spans (the default: traces are not exported).
    pub fn off() -> Self {
        Self::default()
    }

    /// Spans for requests the caller traces, and for `ratio` (0 to 1) of the others.
    pub fn sampled(ratio: f64) -> Self {
        let every = if ratio.is_finite() && ratio > 0.0 {
            // 1 / ratio, rounded; a ratio of 1 or more traces every request.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let every = (1.0 / ratio.min(1.0)).round().min(1e18) as u64;
            every.max(1)
        } else {
            0
        };
        Self {
            on: true,
            every,
            seen: Arc::default(),
        }
    }

    /// Whether this request gets a span.
    pub(crate) fn samples(&self, headers: &HeaderMap) -> bool {
        if !self.on {
            return false;
        }
        if keyledger_http::trace_context::caller_samples(headers) {
            return true;
        }
        self.every != 0
            && self
                .seen
                .fetch_add(1, Ordering::Relaxed)
                .is_multiple_of(self.every)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn traced() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                .parse()
                .unwrap(),
        );
        h
    }

    #[test]
    fn off_means_never() {
        let t = VerifyTracing::off();
        assert!(!t.samples(&HeaderMap::new()));
        assert!(!t.samples(&traced()));
    }

    #[test]
    fn one_in_every_untraced_request() {
        let t = VerifyTracing::sampled(0.01);
        let hits = (0..1000).filter(|_| t.samples(&HeaderMap::new())).count();
        assert_eq!(hits, 10);
        let all = VerifyTracing::sampled(1.0);
        assert!((0..10).all(|_| all.samples(&HeaderMap::new())));
    }

    #[test]
    fn a_tracing_caller_is_always_followed() {
        let t = VerifyTracing::sampled(0.0);
        assert!(!t.samples(&HeaderMap::new()));
        assert!((0..5).all(|_| t.samples(&traced())));
    }
}
