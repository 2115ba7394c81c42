//! keyledger API node: validates API keys in process.
//!
//! ```text
//!   JetStream ──feed()──► ValidationTable (DashMap: SHA3-256 -> grant)
//!                                ▲
//!   request ─► presented key ─► format check ─► SHA3-256 ─► one lookup ─► 200 / 401 / 403
//!              (Authorization: Bearer, X-API-Key)
//! ```
//!
//! Two ways in: the forward-auth endpoint `GET /v1/verify` (nginx
//! `auth_request`, Traefik ForwardAuth, Envoy ext_authz) and [`KeyAuthLayer`],
//! a tower Layer any axum or tower service can embed.

mod credentials;
mod freshness;
mod layer;
mod metrics;
mod request;
mod service;
mod verify;
mod verify_tracing;

pub use credentials::{access_for, presented_key};
pub use freshness::DEFAULT_MAX_STALENESS;
pub use layer::{KeyAuth, KeyAuthLayer};
pub use request::REQUEST_TARGET;
pub use service::Node;
pub use verify::denial_response;
pub use verify_tracing::VerifyTracing;
