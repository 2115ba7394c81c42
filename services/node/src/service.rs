//! Wiring: the node's state, routes and start-up.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{any, get};
use axum::{Extension, Json, Router};
use keyledger_eventlog::{EventLog, FeedOptions, FeedState, SharedChain, chain_status, feed};
use keyledger_projections::{Grant, ValidationTable};
use serde_json::{Value, json};
use tokio::sync::watch;
use tracing::Instrument;

use crate::KeyAuthLayer;
use crate::freshness::{DEFAULT_MAX_STALENESS, Freshness, watchdog};
use crate::metrics::NodeMetrics;
use crate::request::{RequestIds, request_span};
use crate::verify::{
    __path_verify, __path_verify_with_path, Allowed, ErrorBody, Verifier, verify, verify_with_path,
};
use crate::verify_tracing::VerifyTracing;
use utoipa::OpenApi;

/// A running API node: the validation table and the task that feeds it.
pub struct Node {
    log: EventLog,
    table: Arc<ValidationTable>,
    chain: SharedChain,
    feed: watch::Receiver<FeedState>,
    freshness: Arc<Freshness>,
    max_staleness: Duration,
    metrics: NodeMetrics,
    verify_tracing: VerifyTracing,
    feed_task: tokio::task::JoinHandle<()>,
    watchdog_task: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct NodeState {
    log: EventLog,
    table: Arc<ValidationTable>,
    chain: SharedChain,
    feed: watch::Receiver<FeedState>,
    freshness: Arc<Freshness>,
    max_staleness: Duration,
    metrics: NodeMetrics,
}

impl Node {
    /// Starts replaying the stream into a fresh table, then follows it. Every
    /// message is verified against the chain that starts at `options.trust`
    /// before it is applied. If the stream does not exist yet, waits for
    /// admin to create it.
    ///
    /// A node that cannot confirm for [`DEFAULT_MAX_STALENESS`] that it has
    /// applied the stream's head fails every key closed until it can (see
    /// [`Node::start_with_max_staleness`]).
    pub fn start(log: EventLog, options: FeedOptions) -> Self {
        Self::start_with_max_staleness(log, options, DEFAULT_MAX_STALENESS)
    }

    /// [`Node::start`], failing closed after `max_staleness` without
    /// confirming it is up to date with the stream.
    pub fn start_with_max_staleness(
        log: EventLog,
        options: FeedOptions,
        max_staleness: Duration,
    ) -> Self {
        let table = Arc::new(ValidationTable::new());
        let (progress, feed_rx) = watch::channel(FeedState::default());
        let chain = options.chain();
        let feed_task = tokio::spawn(
            feed(log.clone(), table.clone(), chain.clone(), progress, options).in_current_span(),
        );
        let freshness = Arc::new(Freshness::default());
        let watchdog_task = tokio::spawn(
            watchdog(
                log.clone(),
                table.clone(),
                feed_rx.clone(),
                freshness.clone(),
                max_staleness,
            )
            .in_current_span(),
        );
        Self {
            log,
            table,
            chain,
            feed: feed_rx,
            freshness,
            max_staleness,
            metrics: NodeMetrics::new(),
            verify_tracing: VerifyTracing::off(),
            feed_task,
            watchdog_task,
        }
    }

    /// Which `/v1/verify` requests get a trace span (none by default; see
    /// [`VerifyTracing`]). Set before [`Node::router`].
    #[must_use]
    pub fn with_verify_tracing(mut self, tracing: VerifyTracing) -> Self {
        self.verify_tracing = tracing;
        self
    }

    /// The table, for embedding [`KeyAuthLayer`] or validating in process.
    pub fn table(&self) -> Arc<ValidationTable> {
        self.table.clone()
    }

    /// Progress of the replay and the live follow.
    pub fn feed(&self) -> watch::Receiver<FeedState> {
        self.feed.clone()
    }

    /// The node's routes: health, status, forward-auth, and a small example API
    /// protected by [`KeyAuthLayer`].
    pub fn router(&self) -> Router {
        let state = NodeState {
            log: self.log.clone(),
            table: self.table.clone(),
            chain: self.chain.clone(),
            feed: self.feed.clone(),
            freshness: self.freshness.clone(),
            max_staleness: self.max_staleness,
            metrics: self.metrics.clone(),
        };
        let verifier = Verifier {
            table: self.table.clone(),
            metrics: self.metrics.clone(),
            tracing: self.verify_tracing.clone(),
        };
        let example = Router::new()
            .route("/example/items", get(list_items).post(create_item))
            .with_state(ExampleItems::default())
            .layer(self.layer());
        Router::new()
            .route("/v1/verify", any(verify).with_state(verifier.clone()))
            // Envoy's ext_authz appends the original path to its path_prefix
            // (`/v1/verify/` for the protected API's root).
            .route(
                "/v1/verify/{*original_path}",
                any(verify_with_path).with_state(verifier.clone()),
            )
            .route("/v1/verify/", any(verify).with_state(verifier))
            .route("/v1/status", get(status).with_state(state.clone()))
            .route("/readyz", get(readyz).with_state(state.clone()))
            .route("/metrics", get(metrics).with_state(state))
            .route("/healthz", get(healthz))
            .route("/openapi.json", get(|| async { Json(NodeDoc::openapi()) }))
            .merge(example)
            .fallback(|| async { error(StatusCode::NOT_FOUND, "route_not_found", "no such route") })
            .method_not_allowed_fallback(|| async {
                error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method_not_allowed",
                    "method not allowed on this route",
                )
            })
            .layer(axum::middleware::from_fn_with_state(
                self.metrics.http().clone(),
                keyledger_http::count_requests,
            ))
            .layer(axum::middleware::from_fn_with_state(
                RequestIds::default(),
                request_span,
            ))
    }

    /// [`KeyAuthLayer`] on this node's table, counting in its `/metrics`.
    pub fn layer(&self) -> KeyAuthLayer {
        KeyAuthLayer::with_metrics(self.table.clone(), self.metrics.clone())
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.feed_task.abort();
        self.watchdog_task.abort();
    }
}

fn error(status: StatusCode, code: &str, message: &str) -> (StatusCode, Json<Value>) {
    (
        status,
        Json(json!({ "error": { "code": code, "message": message } })),
    )
}

fn status_body(state: &NodeState) -> Value {
    let feed = *state.feed.borrow();
    let table = state.table.status();
    let chain = chain_status(&state.chain);
    // Messages, and not one of them verifies: a wrong --public-key (or a
    // stream that is not this ledger's). Such a node denies every key, so
    // it must not look ready to a load balancer.
    let nothing_trusted = chain["trusted_events"].as_u64() == Some(0)
        && chain["untrusted_messages"].as_u64().is_some_and(|n| n > 0);
    let poisoned: Vec<Value> = table
        .poisoned
        .iter()
        .map(|(key, seq, reason)| json!({ "key_id": key, "seq": seq, "reason": reason }))
        .collect();
    json!({
        "service": "node",
        "stream": state.log.stream_name(),
        "applied_seq": table.applied_seq,
        "stream_head_at_start": feed.head_at_start,
        "keys": table.keys,
        "ready": table.ready && table.sealed.is_none() && !table.stale && !nothing_trusted,
        "nothing_trusted": nothing_trusted,
        "stale": table.stale,
        "max_staleness_ms": u64::try_from(state.max_staleness.as_millis()).unwrap_or(u64::MAX),
        "confirmed_up_to_date_ms_ago": state
            .freshness
            .age()
            .map(|age| u64::try_from(age.as_millis()).unwrap_or(u64::MAX)),
        "nats_connected": state.log.is_connected(),
        "poisoned_keys": poisoned,
        "sealed": table.sealed.map(|(seq, reason)| json!({ "seq": seq, "reason": reason })),
        "chain": chain,
    })
}

#[utoipa::path(get, path = "/v1/status", tag = "operations",
    responses((status = 200, description = "applied_seq, keys, readiness, staleness, NATS connection, keys that fail closed, sealed, chain", body = Object)))]
async fn status(State(state): State<NodeState>) -> impl IntoResponse {
    Json(status_body(&state))
}

#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus metrics (OpenMetrics text)", content_type = "application/openmetrics-text", body = String)))]
async fn metrics(State(state): State<NodeState>) -> impl IntoResponse {
    state
        .metrics
        .update(&status_body(&state), state.freshness.head());
    state.metrics.render()
}

#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready: the status body", body = Object),
        (status = 503, description = "Replaying, stale or sealed: the status body", body = Object),
    ))]
async fn readyz(State(state): State<NodeState>) -> impl IntoResponse {
    keyledger_http::readiness(status_body(&state))
}

/// The example API's items: a list in memory, per node.
#[derive(Clone, Default)]
struct ExampleItems(Arc<std::sync::Mutex<Vec<Value>>>);

/// `GET /example/items`: any allowed key may read.
#[utoipa::path(get, path = "/example/items", tag = "example",
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The node's in-memory items", body = Object),
        (status = 401, description = "No allowed key", body = ErrorBody),
    ))]
async fn list_items(
    State(items): State<ExampleItems>,
    Extension(grant): Extension<Grant>,
) -> Json<Value> {
    let items = items.0.lock().map(|i| i.clone()).unwrap_or_default();
    Json(json!({ "items": items, "read_by": grant.key_id }))
}

/// `POST /example/items`: only read-write keys get here (the Layer answers 403 to read-only ones).
#[utoipa::path(post, path = "/example/items", tag = "example",
    security(("api_key" = [])),
    responses(
        (status = 201, description = "Added", body = Object),
        (status = 401, description = "No allowed key", body = ErrorBody),
        (status = 403, description = "A read-only key", body = ErrorBody),
    ))]
async fn create_item(
    State(items): State<ExampleItems>,
    Extension(grant): Extension<Grant>,
) -> (StatusCode, Json<Value>) {
    let Ok(mut items) = items.0.lock() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "error": { "code": "unavailable", "message": "try again" } })),
        );
    };
    let item = json!({ "id": items.len() + 1, "created_by": grant.key_id });
    items.push(item.clone());
    (StatusCode::CREATED, Json(item))
}

/// `GET /healthz`: the process is alive.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Alive", body = Object)))]
async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

struct ApiKeyAuth;

impl utoipa::Modify for ApiKeyAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "api_key",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
    }
}

/// The node's OpenAPI 3.1 document, served at `/openapi.json`.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "keyledger API node",
        description = "Validates API keys in process: forward auth, status, metrics.",
        license(name = "Apache-2.0")
    ),
    paths(verify, verify_with_path, status, readyz, healthz, metrics, list_items, create_item),
    modifiers(&ApiKeyAuth),
    components(schemas(ErrorBody, Allowed))
)]
pub(crate) struct NodeDoc;
