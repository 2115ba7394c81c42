//! W3C trace context in NATS message headers: the span of an append travels
//! with its message, so that every node's apply joins the admin's trace.
//!
//! With no OpenTelemetry pipeline installed the global propagator is a no-op:
//! nothing is written, nothing is read.

use async_nats::HeaderMap;
use opentelemetry::propagation::{Extractor, Injector};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The header that names the parent span (`00-<trace id>-<span id>-<flags>`).
const TRACEPARENT: &str = "traceparent";

struct Inject<'a>(&'a mut HeaderMap);

impl Injector for Inject<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key, value.as_str());
    }
}

struct Extract<'a>(&'a HeaderMap);

impl Extractor for Extract<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(async_nats::HeaderValue::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(name, _)| name.as_ref()).collect()
    }
}

/// Writes `span`'s context into `headers`.
pub(crate) fn inject(span: &tracing::Span, headers: &mut HeaderMap) {
    let context = span.context();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut Inject(headers));
    });
}

/// The remote parent a message's headers name, if they name one.
pub(crate) fn extract(headers: Option<&HeaderMap>) -> Option<opentelemetry::Context> {
    let headers = headers.filter(|h| h.get(TRACEPARENT).is_some())?;
    Some(opentelemetry::global::get_text_map_propagator(
        |propagator| propagator.extract(&Extract(headers)),
    ))
}
