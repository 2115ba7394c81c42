//! Wiring: state, routes, start-up.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router, middleware};
use keyledger_eventlog::{
    EventLog, EventLogError, FeedOptions, FeedState, SharedChain, StreamOptions, chain_status, feed,
};
use keyledger_events::SigningKey;
use keyledger_projections::Catalogue;
use serde_json::json;
use tokio::sync::{Mutex, watch};
use tracing::Instrument;

use crate::json::BODY_LIMIT;
use crate::metrics::AdminMetrics;
use crate::openapi::{ApiDoc, ErrorBody};
use crate::{AdminToken, ApiError, history, keys, request};
use utoipa::OpenApi;
use utoipa_axum::{router::OpenApiRouter, routes};

/// How to run the admin service.
#[derive(Clone, Debug)]
pub struct AdminConfig {
    /// The bootstrap admin token.
    pub token: AdminToken,
    /// Settings for the stream, used when admin creates it.
    pub stream: StreamOptions,
    /// What the feed trusts (the first signer's public key) and operator
    /// decisions (acknowledged untrusted messages).
    pub feed: FeedOptions,
    /// The key that signs the events this service appends.
    pub signing: SigningKey,
    /// A new signing key to rotate to: the next event announces it and every
    /// event after is signed with it.
    pub rotate_to: Option<SigningKey>,
}

pub(crate) struct AppState {
    pub(crate) log: EventLog,
    pub(crate) catalogue: Arc<Catalogue>,
    pub(crate) feed: watch::Receiver<FeedState>,
    pub(crate) token: AdminToken,
    pub(crate) append_turn: Mutex<()>,
    pub(crate) chain: SharedChain,
    pub(crate) signing: SigningKey,
    pub(crate) rotate_to: Option<SigningKey>,
    pub(crate) metrics: AdminMetrics,
}

/// A running admin service: its feed task and its router.
pub struct Admin {
    state: Arc<AppState>,
    feed_task: tokio::task::JoinHandle<()>,
}

impl Admin {
    /// Ensures the stream exists and starts replaying it into the catalogue.
    /// Serve [`Admin::router`] to answer requests; until the replay is done,
    /// commands get 503 and `/readyz` says not ready.
    pub async fn start(log: EventLog, config: AdminConfig) -> Result<Self, EventLogError> {
        log.ensure_stream(&config.stream).await?;
        let catalogue = Arc::new(Catalogue::new());
        let (progress, feed_rx) = watch::channel(FeedState::default());
        let chain = config.feed.chain();
        let feed_task = tokio::spawn(
            feed(
                log.clone(),
                catalogue.clone(),
                chain.clone(),
                progress,
                config.feed,
            )
            .in_current_span(),
        );
        let state = Arc::new(AppState {
            log,
            catalogue,
            feed: feed_rx,
            token: config.token,
            append_turn: Mutex::new(()),
            chain,
            signing: config.signing,
            rotate_to: config.rotate_to,
            metrics: AdminMetrics::new(),
        });
        Ok(Self { state, feed_task })
    }

    /// Progress of the replay.
    pub fn feed(&self) -> watch::Receiver<FeedState> {
        self.state.feed.clone()
    }

    /// The HTTP routes: the API (documented at `/openapi.json`) and the console.
    pub fn router(&self) -> Router {
        let (router, api) = self.api_router().split_for_parts();
        let api = Arc::new(api);
        router
            .route(
                "/openapi.json",
                get(move || {
                    let api = api.clone();
                    async move { Json(api.as_ref().clone()) }
                }),
            )
            .merge(crate::console::routes())
            .fallback(|| async { ApiError::RouteNotFound })
            .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
            .layer(DefaultBodyLimit::max(BODY_LIMIT))
            .layer(middleware::from_fn_with_state(
                self.state.metrics.http.clone(),
                keyledger_http::count_requests,
            ))
            .layer(middleware::from_fn_with_state(
                self.state.clone(),
                request::request_id,
            ))
            .with_state(self.state.clone())
    }

    /// The API's routes with their OpenAPI description.
    fn api_router(&self) -> OpenApiRouter<Arc<AppState>> {
        let v1 = OpenApiRouter::new()
            .routes(routes!(keys::list, keys::create))
            .routes(routes!(keys::get, keys::update, keys::remove))
            .routes(routes!(history::key_history))
            .routes(routes!(history::events))
            .routes(routes!(status))
            .layer(middleware::from_fn_with_state(
                self.state.clone(),
                request::authenticate,
            ))
            .layer(middleware::from_fn(request::no_stray_query));
        let public = OpenApiRouter::new()
            .routes(routes!(healthz))
            .routes(routes!(readyz))
            .routes(routes!(metrics));
        OpenApiRouter::with_openapi(ApiDoc::openapi())
            .merge(v1)
            .merge(public)
    }

    /// The OpenAPI document of [`Admin::router`]'s API.
    pub fn openapi(&self) -> utoipa::openapi::OpenApi {
        self.api_router().into_openapi()
    }
}

impl Drop for Admin {
    fn drop(&mut self) {
        self.feed_task.abort();
    }
}

fn status_body(state: &AppState) -> serde_json::Value {
    let feed = *state.feed.borrow();
    let catalogue = state.catalogue.status();
    let chain = chain_status(&state.chain);
    json!({
        "service": "admin",
        "stream": state.log.stream_name(),
        "applied_seq": catalogue.applied_seq,
        "stream_head_at_start": feed.head_at_start,
        "keys": catalogue.keys,
        "ready": feed.caught_up && catalogue.sealed.is_none(),
        "nats_connected": state.log.is_connected(),
        "poisoned_keys": catalogue.poisoned,
        "sealed": catalogue.sealed.map(|(seq, reason)| json!({ "seq": seq, "reason": reason })),
        "chain": chain,
    })
}

/// `GET /v1/status`.
#[utoipa::path(get, path = "/v1/status", tag = "operations", security(("admin_key" = [])),
    responses(
        (status = 200, description = "Applied sequence, keys, readiness, NATS connection, keys that fail closed, chain", body = Object),
        (status = 401, description = "No valid admin credential", body = ErrorBody),
    ))]
async fn status(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    Json(status_body(&state))
}

/// Prometheus metrics (unauthenticated, like `/readyz`: counts and
/// sequences, never keys, names or ids).
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus metrics (OpenMetrics text)", content_type = "application/openmetrics-text", body = String)))]
async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let head = tokio::time::timeout(std::time::Duration::from_secs(1), state.log.head())
        .await
        .ok()
        .and_then(Result::ok);
    state.metrics.update(&status_body(&state), head);
    state.metrics.http.render()
}

/// Readiness for load balancers and orchestrators: unauthenticated, so it
/// says only whether admin can answer, not what the ledger holds.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "Replaying, or sealed", body = Readiness),
    ))]
async fn readyz(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let status = status_body(&state);
    let ready = Readiness {
        service: "admin",
        ready: status["ready"] == true,
        applied_seq: status["applied_seq"].as_u64().unwrap_or(0),
        stream_head_at_start: status["stream_head_at_start"].as_u64().unwrap_or(0),
        nats_connected: status["nats_connected"] == true,
        sealed: !status["sealed"].is_null(),
    };
    let code = if ready.ready {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(ready))
}

/// `GET /healthz`: the process is alive.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Alive", body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Liveness.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct Health {
    /// Always `ok`.
    status: &'static str,
}

/// Readiness, without anything of the ledger itself.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct Readiness {
    service: &'static str,
    ready: bool,
    applied_seq: u64,
    stream_head_at_start: u64,
    nats_connected: bool,
    sealed: bool,
}
