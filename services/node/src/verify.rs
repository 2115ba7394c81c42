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
use crate::verify_tracing::VerifyTracing;
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
    pub(crate) tracing: VerifyTracing,
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

/// An allowed key.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct Allowed {
    /// The key's id (also in the `X-Key-Id` header).
    key_id: String,
    /// Whether the key is read-only.
    read_only: bool,
}

pub(crate) use keyledger_http::ErrorBody;

/// `/v1/verify`: 200 with `X-Key-Id` when allowed, else 401/403.
#[utoipa::path(method(get, head, post, put, patch, delete, options), path = "/v1/verify", tag = "forward auth",
    description = "Forward auth for nginx auth_request, Traefik ForwardAuth and Envoy ext_authz (which may append the original path: /v1/verify/{original_path}). Any method: the method authorised comes from X-Forwarded-Method or X-Original-Method, else the request's own.",
    params(
        ("Authorization" = Option<String>, Header, description = "Bearer <key>"),
        ("X-API-Key" = Option<String>, Header, description = "The key"),
        ("X-Forwarded-Method" = Option<String>, Header, description = "The method being authorised"),
        ("X-Original-Method" = Option<String>, Header, description = "The method being authorised"),
    ),
    responses(
        (status = 200, description = "Allowed; X-Key-Id names the key", body = Allowed),
        (status = 401, description = "Missing, malformed, unknown, disabled, removed, admin or conflicting key", body = ErrorBody),
        (status = 403, description = "A read-only key asked to write", body = ErrorBody),
        (status = 503, description = "Not ready, or stale: the node answers nothing", body = ErrorBody),
    ))]
pub(crate) async fn verify(
    State(verifier): State<Verifier>,
    method: Method,
    headers: HeaderMap,
) -> Response<Body> {
    // Forward auth: the proxy tells us the method it is authorising.
    let access = access_for(&headers, &method);
    let checked = if verifier.tracing.samples(&headers) {
        traced_check(&verifier, &headers, access)
    } else {
        check(&verifier.table, Some(&verifier.metrics), &headers, access)
    };
    match checked {
        Ok(grant) => {
            let id = grant.key_id.to_string();
            let mut response = (
                StatusCode::OK,
                Json(Allowed {
                    key_id: id.clone(),
                    read_only: grant.read_only,
                }),
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

/// [`check`] inside a `verify` span that joins the caller's trace, if any,
/// and names the key (id and public prefix) when it is one the ledger knows;
/// never the key itself or its hash.
fn traced_check(verifier: &Verifier, headers: &HeaderMap, access: Access) -> Result<Grant, Denial> {
    let span = tracing::info_span!(
        "verify",
        otel.kind = "server",
        access = ?access,
        outcome = tracing::field::Empty,
        key_id = tracing::field::Empty,
        prefix = tracing::field::Empty,
    );
    keyledger_http::trace_context::join_remote_parent(&span, headers);
    let result = span.in_scope(|| check(&verifier.table, Some(&verifier.metrics), headers, access));
    let known = match &result {
        Ok(grant) => Some(grant.key_id),
        Err(Denial::ReadOnly { key_id }) => Some(*key_id),
        Err(_) => None,
    };
    if let Some(key_id) = known {
        span.record("key_id", tracing::field::display(key_id));
        // A key the ledger knows: its leading characters are its public prefix.
        if let Some(prefix) = presented_key(headers)
            .ok()
            .and_then(|k| k.get(..keyledger_events::PREFIX_LEN))
        {
            span.record("prefix", prefix);
        }
    }
    span.record(
        "outcome",
        result.as_ref().map_or_else(Denial::code, |_| "ok"),
    );
    result
}

/// `/v1/verify/{original_path}`: the same check, for Envoy's ext_authz,
/// which appends the original request's path to its `path_prefix`.
#[utoipa::path(method(get, head, post, put, patch, delete, options), path = "/v1/verify/{original_path}", tag = "forward auth",
    params(("original_path" = String, Path, description = "The original request's path (ignored)")),
    responses(
        (status = 200, description = "Allowed; X-Key-Id names the key", body = Allowed),
        (status = 401, description = "Denied", body = ErrorBody),
        (status = 403, description = "A read-only key asked to write", body = ErrorBody),
        (status = 503, description = "Not ready, or stale", body = ErrorBody),
    ))]
pub(crate) async fn verify_with_path(
    state: State<Verifier>,
    method: Method,
    headers: HeaderMap,
) -> Response<Body> {
    verify(state, method, headers).await
}
