//! W3C trace context on HTTP requests: a request that arrives with a
//! `traceparent` header joins its caller's trace.

use axum::http::HeaderMap;
use opentelemetry::propagation::Extractor;
use opentelemetry::trace::TraceContextExt as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

struct Extract<'a>(&'a HeaderMap);

impl Extractor for Extract<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(axum::http::HeaderName::as_str).collect()
    }
}

/// Makes `span` a child of the trace the request's headers name, if any.
/// Without an OpenTelemetry pipeline this does nothing.
pub fn join_remote_parent(span: &tracing::Span, headers: &HeaderMap) {
    if !headers.contains_key("traceparent") {
        return;
    }
    let parent = opentelemetry::global::get_text_map_propagator(|p| p.extract(&Extract(headers)));
    // Fails only when no OpenTelemetry layer is installed: nothing to join.
    let _ = span.set_parent(parent);
}

/// Whether the request's caller is tracing it: a well-formed `traceparent`
/// whose sampled flag is set. Cheap: no parsing beyond the header's shape.
pub fn caller_samples(headers: &HeaderMap) -> bool {
    headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .and_then(|v| v.rsplit_once('-'))
        .and_then(|(_, flags)| u8::from_str_radix(flags, 16).ok())
        .is_some_and(|flags| flags & 1 == 1)
}

/// The OpenTelemetry trace id of `span`, when it belongs to a trace.
pub fn trace_id(span: &tracing::Span) -> Option<String> {
    let context = span.context();
    let span_context = context.span().span_context().clone();
    span_context
        .is_valid()
        .then(|| span_context.trace_id().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("traceparent", value.parse().unwrap());
        headers
    }

    #[test]
    fn the_sampled_flag_decides() {
        let id = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7";
        assert!(caller_samples(&with(&format!("{id}-01"))));
        assert!(!caller_samples(&with(&format!("{id}-00"))));
        assert!(!caller_samples(&with("garbage")));
        assert!(!caller_samples(&HeaderMap::new()));
    }

    #[test]
    fn no_pipeline_no_trace() {
        let span = tracing::info_span!("request");
        join_remote_parent(
            &span,
            &with("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        );
        assert_eq!(trace_id(&span), None);
    }
}
