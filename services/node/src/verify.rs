//! The forward-auth endpoint and the denial responses shared with the Layer.

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keyledger_projections::{Access, Denial, Grant, ValidationTable};
use serde_json::json;

use crate::metrics::NodeMetrics;
use crate::{access_for, presented_key};

/// The header that names the key on an allowed request.
pub(crate) const KEY_ID: &str = "x-key-id";

/// Checks a request's key against the table for `access`, counting the
/// outcome and its latency when there are metrics.
pub(crate) fn check(
    table: &ValidationTable,
    metrics: Option<&NodeMetrics>,
    headers: &HeaderMap,
    access: Access,
) -> Result<Grant, Denial> {
    let started = metrics.map(|_| Instant::now());
    let result = presented_key(headers).and_then(|key| table.validate(key, access));
    if let (Some(metrics), Some(started)) = (metrics, started) {
        metrics.observe(&result, started.elapsed());
    }
    result
}

/// What `/v1/verify` checks against.
#[derive(Clone)]
pub(crate) struct Verifier {
    pub(crate) table: Arc<ValidationTable>,
    pub(crate) metrics: NodeMetrics,
}

/// The answer to a denied request: 401 (or 403 for a read-only key asked to
/// write) with a JSON error body. It never echoes the key.
pub fn denial_response(denial: &Denial) -> Response<Body> {
    let status = match denial {
        Denial::ReadOnly { .. } => StatusCode::FORBIDDEN,
        Denial::NotReady | Denial::Stale => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::UNAUTHORIZED,
    };
    let body = json!({ "error": { "code": denial.code(), "message": denial.to_string() } });
    let mut response = (status, Json(body)).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"keyledger\""),
        );
    }
    if let Denial::ReadOnly { key_id } = denial
        && let Ok(v) = HeaderValue::from_str(&key_id.to_string())
    {
        response.headers_mut().insert(KEY_ID, v);
    }
    response
}

/// `/v1/verify`: 200 with `X-Key-Id` when allowed, else 401/403.
pub(crate) async fn verify(
    State(verifier): State<Verifier>,
    method: Method,
    headers: HeaderMap,
) -> Response<Body> {
    // Forward auth: the proxy tells us the method it is authorising.
    let access = access_for(&headers, &method);
    match check(&verifier.table, Some(&verifier.metrics), &headers, access) {
        Ok(grant) => {
            let id = grant.key_id.to_string();
            let mut response = (
                StatusCode::OK,
                Json(json!({ "key_id": id, "read_only": grant.read_only })),
            )
                .into_response();
            if let Ok(v) = HeaderValue::from_str(&id) {
                response.headers_mut().insert(KEY_ID, v);
            }
            response
        }
        Err(denial) => {
            tracing::debug!(code = denial.code(), "key denied");
            denial_response(&denial)
        }
    }
}
