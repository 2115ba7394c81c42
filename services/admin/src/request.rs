//! Per-request context: the request id and the authenticated actor.

use std::sync::Arc;

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use keyledger_events::{Actor, KeyHash, Origin, RequestId};
use tracing::Instrument;
use uuid::Uuid;

use crate::ApiError;
use crate::service::AppState;

/// The header that carries request ids, in and out.
pub(crate) const REQUEST_ID: &str = "x-request-id";

/// Who is asking, from where, and in which request. Set by the middleware below.
#[derive(Clone, Debug)]
pub(crate) struct RequestContext {
    pub(crate) request_id: RequestId,
    pub(crate) actor: Actor,
    pub(crate) origin: Origin,
    /// Marked just before a change is sent (see [`keyledger_http::CommitPoint`]).
    pub(crate) commit_point: keyledger_http::CommitPoint,
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
///
/// A request id is logged and stored for good in the events, so one that is
/// an API key or the bootstrap token (pasted into the wrong header) is
/// replaced, never recorded.
pub(crate) async fn request_id(
    State(state): State<Arc<AppState>>,
    mut req: Request,
    next: Next,
) -> Response {
    let id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .and_then(RequestId::from_caller)
        .filter(|id| !state.token.appears_in(id.as_str()))
        .unwrap_or_else(fresh_request_id);
    req.extensions_mut().insert(id.clone());
    // The route template, never the raw path: a pasted secret in a URL stays out of the logs.
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("(no route)", MatchedPath::as_str)
        .to_owned();
    let span = tracing::info_span!(
        "request",
        otel.name = %format_args!("{} {route}", req.method()),
        otel.kind = "server",
        request_id = %id,
        method = %req.method(),
        %route,
        actor = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
    );
    // Not a trace named by the token (it would be exported and recorded).
    let names_token =
        header_text(req.headers(), "traceparent").is_some_and(|t| state.token.appears_in(t));
    if !names_token {
        keyledger_http::trace_context::join_remote_parent(&span, req.headers());
    }
    async move {
        let mut response = next.run(req).await;
        let status = response.status().as_u16();
        tracing::Span::current().record("http.response.status_code", status);
        tracing::info!(status, "answered");
        if let Ok(v) = HeaderValue::from_str(id.as_str()) {
            response.headers_mut().insert(REQUEST_ID, v);
        }
        response
    }
    .instrument(span)
    .await
}

/// Refuses a query string on routes that take none (a `?dry_run=true` on a
/// DELETE must not look as if it were honoured). The two listing routes
/// check their own parameters.
pub(crate) async fn no_stray_query(req: Request, next: Next) -> Response {
    let takes_query = req.method() == Method::GET
        && req
            .extensions()
            .get::<MatchedPath>()
            .is_some_and(|p| matches!(p.as_str(), "/v1/keys" | "/v1/events"));
    if !takes_query && req.uri().query().is_some_and(|q| !q.is_empty()) {
        return ApiError::bad_request("invalid_query", "this route takes no query parameters")
            .into_response();
    }
    next.run(req).await
}

/// Requires `Authorization: Bearer <credential>`: an enabled admin key, or
/// the bootstrap token, which may only create admin keys (checked by the
/// create handler). A read-only admin key may only read.
pub(crate) async fn authenticate(
    State(state): State<Arc<AppState>>,
    mut req: Request,
    next: Next,
) -> Response {
    // Two Authorization headers: which one is meant? Neither.
    if req.headers().get_all(header::AUTHORIZATION).iter().count() > 1 {
        tracing::warn!("admin request with more than one Authorization header");
        return ApiError::Unauthorized.into_response();
    }
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once([' ', '\t']))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    // Until the replay is done, neither the keys nor the admin keys that
    // authenticate are known: answer nothing rather than a wrong 401 or 404.
    if !state.feed.borrow().caught_up {
        return ApiError::Unavailable("still replaying the event stream; retry shortly".into())
            .into_response();
    }
    let Some(presented) = presented else {
        tracing::warn!("admin request without a credential");
        return ApiError::Unauthorized.into_response();
    };
    let actor = if state.token.matches(presented) {
        let creating = req.method() == Method::POST
            && req
                .extensions()
                .get::<MatchedPath>()
                .is_some_and(|p| p.as_str() == "/v1/keys");
        if !creating {
            return ApiError::forbidden(
                "bootstrap_limited",
                "the bootstrap token can only create the first admin keys (POST /v1/keys with \"admin\": true); use an admin key",
            )
            .into_response();
        }
        Actor::Bootstrap
    } else {
        let Some(view) = KeyHash::of_presented(presented)
            .ok()
            .and_then(|hash| state.catalogue.by_hash(&hash))
            .filter(|v| v.admin && v.enabled && v.untrusted.is_none())
        else {
            tracing::warn!("admin request with an invalid, disabled or removed credential");
            return ApiError::Unauthorized.into_response();
        };
        if view.read_only && !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS)
        {
            return ApiError::forbidden(
                "read_only_admin",
                "this admin key is read-only: it can list and read, not change",
            )
            .into_response();
        }
        Actor::AdminKey {
            key_id: view.id,
            prefix: view.prefix,
        }
    };
    let request_id = req
        .extensions()
        .get::<RequestId>()
        .cloned()
        .unwrap_or_else(fresh_request_id);
    let ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_string());
    // A user agent that holds a key or the token is not recorded at all.
    let user_agent = header_text(req.headers(), header::USER_AGENT.as_str())
        .map(Origin::printable_user_agent)
        .filter(|ua| !state.token.appears_in(ua));
    // The trace this request belongs to: ours when traces are exported (it
    // joined the caller's, if any), else the caller's.
    // A caller's trace id is recorded for good: not if it is the token (a
    // 32-hex-digit token would make a well-formed one).
    let trace = keyledger_http::trace_context::trace_id(&tracing::Span::current())
        .or_else(|| trace_id(req.headers()).filter(|t| !state.token.appears_in(t)));
    let origin = Origin::new(ip, user_agent.as_deref(), trace.as_deref());
    tracing::Span::current().record("actor", actor.label());
    let commit_point = req
        .extensions()
        .get::<keyledger_http::CommitPoint>()
        .cloned()
        .unwrap_or_default();
    req.extensions_mut().insert(RequestContext {
        request_id,
        actor,
        origin,
        commit_point,
    });
    next.run(req).await
}

fn header_text<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The trace id of a W3C `traceparent` header (`00-<trace id>-<span id>-<flags>`).
fn trace_id(headers: &HeaderMap) -> Option<String> {
    let parent = header_text(headers, "traceparent")?;
    let mut parts = parent.trim().split('-');
    let (_version, trace) = (parts.next()?, parts.next()?);
    Some(trace.to_owned())
}
