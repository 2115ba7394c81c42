//! Per-request context: the request id and the authenticated actor.

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use keyledger_events::{Actor, RequestId};
use tracing::Instrument;
use uuid::Uuid;

use crate::ApiError;
use crate::service::AppState;

/// The header that carries request ids, in and out.
pub(crate) const REQUEST_ID: &str = "x-request-id";

/// Who is asking, and in which request. Set by the middleware below.
#[derive(Clone, Debug)]
pub(crate) struct RequestContext {
    pub(crate) request_id: RequestId,
    pub(crate) actor: Actor,
}

/// A new request id (a UUIDv7).
fn fresh_request_id() -> RequestId {
    Uuid::now_v7()
        .hyphenated()
        .to_string()
        .parse()
        .expect("a UUID is a valid request id")
}

/// Takes the caller's `X-Request-Id` when it is well-formed, else makes one;
/// echoes it back; and runs the request inside a span that carries it.
pub(crate) async fn request_id(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<RequestId>().ok())
        .unwrap_or_else(fresh_request_id);
    req.extensions_mut().insert(id.clone());
    // The route template, never the raw path: a pasted secret in a URL stays out of the logs.
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("(no route)", MatchedPath::as_str)
        .to_owned();
    let span = tracing::info_span!("request", request_id = %id, method = %req.method(), %route);
    async move {
        let mut response = next.run(req).await;
        tracing::info!(status = response.status().as_u16(), "answered");
        if let Ok(v) = HeaderValue::from_str(id.as_str()) {
            response.headers_mut().insert(REQUEST_ID, v);
        }
        response
    }
    .instrument(span)
    .await
}

/// Requires `Authorization: Bearer <admin token>`.
pub(crate) async fn authenticate(
    State(state): State<Arc<AppState>>,
    mut req: Request,
    next: Next,
) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    let Some(token) = presented.filter(|t| state.token.matches(t)) else {
        tracing::warn!("admin request without a valid admin token");
        return ApiError::Unauthorized.into_response();
    };
    let _ = token;
    let request_id = req
        .extensions()
        .get::<RequestId>()
        .cloned()
        .unwrap_or_else(fresh_request_id);
    req.extensions_mut().insert(RequestContext {
        request_id,
        actor: Actor::Bootstrap,
    });
    next.run(req).await
}
