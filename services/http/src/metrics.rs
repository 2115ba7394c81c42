//! Prometheus metrics for a keyledger service: one registry per service
//! (admin, each node), HTTP requests counted by route template and status,
//! and `/metrics` in the OpenMetrics text format Prometheus scrapes.

use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// Labels of an HTTP request: the route template (never the raw path, which
/// could hold anything a client sent) and the status code.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteStatus {
    /// Route template, or `(no route)`.
    pub route: String,
    /// Status code.
    pub status: u16,
}

/// A service's metrics registry.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Mutex<Registry>>,
    http_requests: Family<RouteStatus, Counter>,
}

impl Metrics {
    /// A registry whose series are named `keyledger_*`, labelled with the
    /// service (`admin` or `node`).
    pub fn new(service: &str) -> Self {
        let mut registry = Registry::with_prefix_and_labels(
            "keyledger",
            [(
                std::borrow::Cow::Borrowed("service"),
                std::borrow::Cow::Owned(service.to_owned()),
            )]
            .into_iter(),
        );
        let http_requests = Family::<RouteStatus, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route and status",
            http_requests.clone(),
        );
        Self {
            registry: Arc::new(Mutex::new(registry)),
            http_requests,
        }
    }

    /// The registry, to register a service's own series.
    pub fn registry(&self) -> MutexGuard<'_, Registry> {
        self.registry
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts one answered request.
    pub fn count_request(&self, route: &str, status: u16) {
        self.http_requests
            .get_or_create(&RouteStatus {
                route: route.to_owned(),
                status,
            })
            .inc();
    }

    /// The registry in the OpenMetrics text format.
    pub fn render(&self) -> Response {
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.registry()).is_err() {
            return axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
        let mut response = text.into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        );
        response
    }
}

/// Middleware (`axum::middleware::from_fn_with_state(metrics, count_requests)`)
/// counting every answer by route template and status.
pub async fn count_requests(
    axum::extract::State(metrics): axum::extract::State<Metrics>,
    req: Request,
    next: Next,
) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "(no route)".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(req).await;
    metrics.count_request(&route, response.status().as_u16());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counted_requests_with_the_service_label() {
        let m = Metrics::new("node");
        m.count_request("/v1/verify", 200);
        m.count_request("/v1/verify", 200);
        m.count_request("/v1/verify", 401);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &m.registry()).unwrap();
        assert!(
            text.contains(
                r#"keyledger_http_requests_total{service="node",route="/v1/verify",status="200"} 2"#
            ),
            "{text}"
        );
        assert!(text.contains(r#"status="401"} 1"#), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }
}
