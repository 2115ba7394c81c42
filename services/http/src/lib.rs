//! Serving keyledger's HTTP listeners with the limits a public listener needs.
//!
//! `axum::serve` has no timeouts: a client that sends half a header, or a
//! `Content-Length` it never fills, holds a connection forever, and a few
//! hundred of them starve the process of file descriptors. [`serve`] runs
//! the same router with:
//!
//! ```text
//!   accept ─► connection cap ─► header read timeout ─► request timeout (408, until the handler's commit point) ─► router
//!                                                      graceful shutdown: stop accepting, finish in-flight
//! ```

mod error_body;
mod feed_metrics;
mod metrics;
pub mod trace_context;

pub use error_body::{ErrorBody, ErrorDetail};
pub use feed_metrics::FeedMetrics;
pub use metrics::{Metrics, RouteStatus, count_requests};

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt as _;

/// The answer to `/readyz`: the status body, with 200 when its `ready` is
/// true and 503 otherwise.
pub fn readiness(status: serde_json::Value) -> (StatusCode, axum::Json<serde_json::Value>) {
    let ready = status["ready"].as_bool().unwrap_or(false);
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, axum::Json(status))
}

/// The point past which a request must run to its end: a handler marks it
/// just before it sends a change that may land. Until then the request
/// timeout answers 408 (nothing was changed); after it, the handler's own
/// answer, which says what became of the change. Handlers find it in the
/// request extensions; outside [`serve`] nothing reads it.
#[derive(Clone, Debug, Default)]
pub struct CommitPoint(Arc<AtomicBool>);

impl CommitPoint {
    /// From here on the request timeout no longer cuts this request short.
    pub fn reached(&self) {
        self.0.store(true, Ordering::Release);
    }

    fn is_reached(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Limits for one listener.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Time a client has to send a request's headers.
    pub header_read_timeout: Duration,
    /// Time a request may take, body included; then 408.
    pub request_timeout: Duration,
    /// Open connections at most; further ones are closed at once.
    pub max_connections: usize,
    /// Time in-flight requests get to finish on shutdown.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_connections: 4096,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets
/// in-flight requests finish (for at most [`Limits::shutdown_grace`]).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let timeout = limits.request_timeout;
    let router = router.layer(axum::middleware::from_fn(
        move |mut req: axum::extract::Request, next: axum::middleware::Next| async move {
            let point = CommitPoint::default();
            req.extensions_mut().insert(point.clone());
            let run = next.run(req);
            tokio::pin!(run);
            match tokio::time::timeout(timeout, &mut run).await {
                Ok(response) => response,
                // Past its commit point a request may have changed
                // something: only its own answer can say what.
                Err(_) if point.is_reached() => run.await,
                Err(_) => request_timeout(timeout),
            }
        },
    ));
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: back off, do not spin.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(
                max = limits.max_connections,
                "connection limit reached; closing a new connection"
            );
            continue;
        };
        let _ = stream.set_nodelay(true);
        // HTTP/1.1 only: forward auth and the admin API need nothing more,
        // and HTTP/2's version sniffing would wait for a first byte with no
        // timeout at all. The header read timeout runs from the moment the
        // connection opens, so a client that sends nothing is closed too.
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout);
        let connection = builder.serve_connection(
            TokioIo::new(stream),
            TowerToHyperService::new(router.clone().map_request(
                move |mut req: axum::extract::Request<hyper::body::Incoming>| {
                    // Handlers read the peer as axum's ConnectInfo.
                    req.extensions_mut()
                        .insert(axum::extract::ConnectInfo(peer));
                    req
                },
            )),
        );
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("in-flight requests did not finish in time; closing them");
    }
}

/// 408 with the error shape every keyledger answer has; the connection is
/// closed, since the request's body may not have been read.
fn request_timeout(limit: Duration) -> axum::response::Response {
    use axum::response::IntoResponse;
    let body = serde_json::json!({ "error": {
        "code": "request_timeout",
        "message": format!("the request took longer than {} s", limit.as_secs()),
    }});
    (
        StatusCode::REQUEST_TIMEOUT,
        [(axum::http::header::CONNECTION, "close")],
        axum::Json(body),
    )
        .into_response()
}
