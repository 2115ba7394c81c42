//! The admin service's Prometheus series: append conflicts (races lost on
//! the stream's expected last sequence), the applied sequence and the lag
//! behind the stream head, events applied, untrusted messages, readiness;
//! plus HTTP requests by route and status.

use std::sync::Mutex;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;

/// Admin's metrics.
#[derive(Clone)]
pub(crate) struct AdminMetrics {
    pub(crate) http: keyledger_http::Metrics,
    pub(crate) append_conflicts: Counter,
    appends: Counter,
    applied_seq: Gauge,
    lag: Gauge,
    events_applied: Counter,
    untrusted: Counter,
    ready: Gauge,
    last: std::sync::Arc<Mutex<(u64, u64)>>,
}

impl AdminMetrics {
    pub(crate) fn new() -> Self {
        let metrics = Self {
            http: keyledger_http::Metrics::new("admin"),
            append_conflicts: Counter::default(),
            appends: Counter::default(),
            applied_seq: Gauge::default(),
            lag: Gauge::default(),
            events_applied: Counter::default(),
            untrusted: Counter::default(),
            ready: Gauge::default(),
            last: std::sync::Arc::default(),
        };
        {
            let mut r = metrics.http.registry();
            r.register(
                "append_conflicts",
                "Appends that lost the race for the stream's last sequence and were decided again",
                metrics.append_conflicts.clone(),
            );
            r.register(
                "appends",
                "Commits appended to the stream",
                metrics.appends.clone(),
            );
            r.register(
                "applied_seq",
                "Last stream sequence applied",
                metrics.applied_seq.clone(),
            );
            r.register(
                "stream_lag",
                "Messages in the stream not yet applied (head at scrape minus applied)",
                metrics.lag.clone(),
            );
            r.register(
                "events_applied",
                "Trusted events applied",
                metrics.events_applied.clone(),
            );
            r.register(
                "untrusted_messages",
                "Messages that failed hash, link, signature or decoding checks (the alarm)",
                metrics.untrusted.clone(),
            );
            r.register(
                "ready",
                "1 when admin answers commands",
                metrics.ready.clone(),
            );
        }
        metrics
    }

    pub(crate) fn appended(&self) {
        self.appends.inc();
    }

    /// Brings the scrape-time series up to date from admin's status.
    pub(crate) fn update(&self, status: &serde_json::Value, head: Option<u64>) {
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
