//! The series every service that follows the stream has (admin and nodes):
//! the applied sequence, the lag behind the stream head, events applied,
//! untrusted messages (the alarm) and readiness, brought up to date at
//! scrape time from the service's `/v1/status` body.

use std::sync::{Arc, Mutex};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;

use crate::Metrics;

/// A service's stream-following series.
#[derive(Clone, Default)]
pub struct FeedMetrics {
    applied_seq: Gauge,
    lag: Gauge,
    events_applied: Counter,
    untrusted: Counter,
    ready: Gauge,
    /// What the status's cumulative counts were at the last scrape.
    last: Arc<Mutex<(u64, u64)>>,
}

impl FeedMetrics {
    /// Registers the series in `metrics`; `lag_help` says when the head is
    /// read, `ready_help` what ready means for this service.
    pub fn register(metrics: &Metrics, lag_help: &str, ready_help: &str) -> Self {
        let feed = Self::default();
        let mut r = metrics.registry();
        r.register(
            "applied_seq",
            "Last stream sequence applied",
            feed.applied_seq.clone(),
        );
        r.register("stream_lag", lag_help, feed.lag.clone());
        r.register(
            "events_applied",
            "Trusted events applied",
            feed.events_applied.clone(),
        );
        r.register(
            "untrusted_messages",
            "Messages that failed hash, link, signature or decoding checks (the alarm)",
            feed.untrusted.clone(),
        );
        r.register("ready", ready_help, feed.ready.clone());
        feed
    }

    /// Brings the series up to date from a status body (`applied_seq`,
    /// `ready`, `chain.trusted_events`, `chain.untrusted_messages`) and the
    /// stream head, when known.
    pub fn update(&self, status: &serde_json::Value, head: Option<u64>) {
        let applied = status["applied_seq"].as_u64().unwrap_or(0);
        self.applied_seq
            .set(i64::try_from(applied).unwrap_or(i64::MAX));
        if let Some(head) = head {
            self.lag
                .set(i64::try_from(head.saturating_sub(applied)).unwrap_or(i64::MAX));
        }
        self.ready.set(i64::from(status["ready"] == true));
        let trusted = status["chain"]["trusted_events"].as_u64().unwrap_or(0);
        let refused = status["chain"]["untrusted_messages"].as_u64().unwrap_or(0);
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.events_applied.inc_by(trusted.saturating_sub(last.0));
        self.untrusted.inc_by(refused.saturating_sub(last.1));
        *last = (last.0.max(trusted), last.1.max(refused));
    }
}
