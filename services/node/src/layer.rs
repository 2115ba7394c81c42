//! The key check as a tower Layer, for services that embed it.
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use axum::{Router, routing::get};
//! # use keyledger_projections::ValidationTable;
//! # use keyledger_node::KeyAuthLayer;
//! let table = Arc::new(ValidationTable::new()); // fed by keyledger_eventlog::feed
//! let app: Router = Router::new()
//!     .route("/items", get(|| async { "items" }).post(|| async { "created" }))
//!     .layer(KeyAuthLayer::new(table));
//! ```
//!
//! Allowed requests reach the inner service with the [`Grant`] in their
//! extensions; denied ones are answered 401/403 without reaching it.

use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::{Request, Response};
use futures::future::{BoxFuture, FutureExt};
use keyledger_projections::{Access, Grant, ValidationTable};
use tower::{Layer, Service};

use crate::metrics::NodeMetrics;
use crate::verify::{check, denial_response};

/// Wraps a service so that every request must present an allowed key.
#[derive(Clone)]
pub struct KeyAuthLayer {
    table: Arc<ValidationTable>,
    metrics: Option<NodeMetrics>,
}

impl KeyAuthLayer {
    /// A layer that checks keys against `table`.
    pub fn new(table: Arc<ValidationTable>) -> Self {
        Self {
            table,
            metrics: None,
        }
    }

    /// A layer that also counts each validation in a node's metrics
    /// ([`crate::Node::layer`] makes one).
    pub(crate) fn with_metrics(table: Arc<ValidationTable>, metrics: NodeMetrics) -> Self {
        Self {
            table,
            metrics: Some(metrics),
        }
    }
}

impl std::fmt::Debug for KeyAuthLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyAuthLayer").finish_non_exhaustive()
    }
}

impl<S> Layer<S> for KeyAuthLayer {
    type Service = KeyAuth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        KeyAuth {
            inner,
            table: self.table.clone(),
            metrics: self.metrics.clone(),
        }
    }
}

/// The service [`KeyAuthLayer`] makes.
#[derive(Clone)]
pub struct KeyAuth<S> {
    inner: S,
    table: Arc<ValidationTable>,
    metrics: Option<NodeMetrics>,
}

impl<S> std::fmt::Debug for KeyAuth<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyAuth").finish_non_exhaustive()
    }
}

impl<S, B> Service<Request<B>> for KeyAuth<S>
where
    S: Service<Request<B>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        // In process, the request's own method is the truth: headers such as
        // X-Forwarded-Method come from the client and are not trusted here.
        let access = Access::for_method(req.method().as_str());
        match check(&self.table, self.metrics.as_ref(), req.headers(), access) {
            Ok(grant) => {
                req.extensions_mut().insert::<Grant>(grant);
                // Take the service that was driven to readiness; leave a clone.
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                inner.call(req).boxed()
            }
            Err(denial) => {
                let response = denial_response(&denial);
                async move { Ok(response) }.boxed()
            }
        }
    }
}
