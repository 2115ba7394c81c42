//! The admin service's Prometheus series: append conflicts (races lost on
//! the stream's expected last sequence), the applied sequence and the lag
//! behind the stream head, events applied, untrusted messages, readiness;
//! plus HTTP requests by route and status.

use prometheus_client::metrics::counter::Counter;

/// Admin's metrics.
#[derive(Clone)]
pub(crate) struct AdminMetrics {
    pub(crate) http: keyledger_http::Metrics,
    pub(crate) append_conflicts: Counter,
    appends: Counter,
    feed: keyledger_http::FeedMetrics,
}

impl AdminMetrics {
    pub(crate) fn new() -> Self {
        let http = keyledger_http::Metrics::new("admin");
        let feed = keyledger_http::FeedMetrics::register(
            &http,
            "Messages in the stream not yet applied (head at scrape minus applied)",
            "1 when admin answers commands",
        );
        let metrics = Self {
            http,
            append_conflicts: Counter::default(),
            appends: Counter::default(),
            feed,
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
        }
        metrics
    }

    pub(crate) fn appended(&self) {
        self.appends.inc();
    }

    /// Brings the scrape-time series up to date from admin's status.
    pub(crate) fn update(&self, status: &serde_json::Value, head: Option<u64>) {
        self.feed.update(status, head);
    }
}
