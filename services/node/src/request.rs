//! Request ids on the node: every log line a request causes names it.
//!
//! The id is the caller's `X-Request-Id` when it is well-formed (nginx's
//! `$request_id`, Envoy's `x-request-id`), else one made here; it is echoed
//! back. The span is in its own target, [`REQUEST_TARGET`], which the
//! OpenTelemetry layer leaves out: exporting a span per verification would
//! cost the hot path more than it tells (sampled `verify` spans do that).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use keyledger_events::RequestId;
use tracing::Instrument as _;

/// The tracing target of the node's per-request span.
pub const REQUEST_TARGET: &str = "keyledger_node::request";

const REQUEST_ID: &str = "x-request-id";

/// Makes request ids: a random tag per process and a counter, so making
/// one costs an atomic increment.
#[derive(Clone, Default)]
pub(crate) struct RequestIds(Arc<AtomicU64>);

impl RequestIds {
    fn next(&self) -> String {
        static TAG: OnceLock<String> = OnceLock::new();
        let tag = TAG.get_or_init(|| {
            let mut bytes = [0u8; 4];
            // Without randomness the tag is only less unique across nodes.
            let _ = getrandom::fill(&mut bytes);
            format!("{:08x}", u32::from_le_bytes(bytes))
        });
        let n = self.0.fetch_add(1, Ordering::Relaxed);
        format!("node-{tag}-{n}")
    }
}

/// Runs the request in a span that carries its id, and echoes the id back.
/// An id that holds an API key (pasted into the wrong header) is replaced.
pub(crate) async fn request_span(
    axum::extract::State(ids): axum::extract::State<RequestIds>,
    req: Request,
    next: Next,
) -> Response {
    let id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .and_then(RequestId::from_caller)
        .map_or_else(|| ids.next(), |id| id.as_str().to_owned());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("(no route)", MatchedPath::as_str);
    let span = tracing::info_span!(target: REQUEST_TARGET, "request", request_id = %id, method = %req.method(), route);
    let mut response = next.run(req).instrument(span).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, v);
    }
    response
}
