//! A node's Prometheus series: validations by outcome and their latency,
//! the applied sequence and the lag behind the stream head, events applied,
//! untrusted messages, readiness and staleness; plus HTTP requests by route
//! and status (from [`keyledger_http::Metrics`]).

use std::time::Duration;

use keyledger_projections::{Denial, Grant};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

/// The `outcome` label of a validation.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    outcome: &'static str,
}

/// Every outcome a validation can have, in [`outcome_index`] order.
const OUTCOMES: [&str; 11] = [
    "ok",
    "unknown",
    "disabled",
    "read_only_denied",
    "malformed",
    "missing",
    "conflicting",
    "admin_key",
    "state_unknown",
    "not_ready",
    "stale",
];

fn outcome_index(result: &Result<Grant, Denial>) -> usize {
    match result {
        Ok(_) => 0,
        Err(Denial::Unknown) => 1,
        Err(Denial::Disabled) => 2,
        Err(Denial::ReadOnly { .. }) => 3,
        Err(Denial::Malformed(_)) => 4,
        Err(Denial::Missing) => 5,
        Err(Denial::Conflicting) => 6,
        Err(Denial::AdminKey) => 7,
        Err(Denial::StateUnknown) => 8,
        Err(Denial::NotReady) => 9,
        Err(Denial::Stale) => 10,
    }
}

/// A node's metrics.
#[derive(Clone)]
pub(crate) struct NodeMetrics {
    http: keyledger_http::Metrics,
    /// One counter per outcome, resolved once so that counting is one atomic add.
    validations: [Counter; OUTCOMES.len()],
    latency: Histogram,
    feed: keyledger_http::FeedMetrics,
    poisoned_keys: Gauge,
    stale: Gauge,
}

impl NodeMetrics {
    pub(crate) fn new() -> Self {
        let http = keyledger_http::Metrics::new("node");
        let family = Family::<Outcome, Counter>::default();
        let validations =
            OUTCOMES.map(|outcome| family.get_or_create(&Outcome { outcome }).clone());
        // 100 ns to about 50 ms.
        let latency = Histogram::new(exponential_buckets(1e-7, 2.0, 20));
        let feed = keyledger_http::FeedMetrics::register(
            &http,
            "Messages in the stream not yet applied (head at the last probe minus applied)",
            "1 when the node validates keys",
        );
        let metrics = Self {
            http,
            validations,
            latency,
            feed,
            poisoned_keys: Gauge::default(),
            stale: Gauge::default(),
        };
        {
            let mut r = metrics.http.registry();
            r.register("validations", "Key validations, by outcome", family);
            r.register(
                "validation_duration_seconds",
                "Time to validate a presented key in process",
                metrics.latency.clone(),
            );
            r.register(
                "poisoned_keys",
                "Keys that fail closed",
                metrics.poisoned_keys.clone(),
            );
            r.register(
                "stale",
                "1 when the node cannot confirm it is up to date, so every key fails closed",
                metrics.stale.clone(),
            );
        }
        metrics
    }

    /// The HTTP metrics (for the request-counting middleware).
    pub(crate) fn http(&self) -> &keyledger_http::Metrics {
        &self.http
    }

    /// Counts one validation and its latency.
    pub(crate) fn observe(&self, result: &Result<Grant, Denial>, took: Duration) {
        self.validations[outcome_index(result)].inc();
        self.latency.observe(took.as_secs_f64());
    }

    /// Brings the scrape-time series up to date from the node's status.
    pub(crate) fn update(&self, status: &serde_json::Value, head: Option<u64>) {
        self.feed.update(status, head);
        self.stale.set(i64::from(status["stale"] == true));
        let poisoned = status["poisoned_keys"].as_array().map_or(0, Vec::len);
        self.poisoned_keys
            .set(i64::try_from(poisoned).unwrap_or(i64::MAX));
    }

    /// `/metrics`.
    pub(crate) fn render(&self) -> axum::response::Response {
        self.http.render()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_denial_has_its_own_outcome() {
        let denials = [
            Denial::Unknown,
            Denial::Disabled,
            Denial::ReadOnly {
                key_id: keyledger_events::KeyId::from_parts(1, [1; 10]),
            },
            Denial::Malformed(keyledger_events::KeyFormatError::Length),
            Denial::Missing,
            Denial::Conflicting,
            Denial::AdminKey,
            Denial::StateUnknown,
            Denial::NotReady,
            Denial::Stale,
        ];
        let mut seen: Vec<usize> = denials
            .into_iter()
            .map(|d| outcome_index(&Err(d)))
            .collect();
        seen.push(0);
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), OUTCOMES.len());
    }
}
