//! End-to-end tests: each starts its own nats-server, the real admin service
//! and two nodes, and drives them over HTTP.

#![allow(
    clippy::unwrap_used,
    clippy::missing_panics_doc,
    clippy::too_many_lines,
    clippy::type_complexity
)]

mod admin_input;
mod audit;
mod binary;
mod cli;
mod cluster;
mod compose;
mod concurrency;
mod eventlog;
mod freshness;
mod lifecycle;
mod metrics;
mod openapi;
mod poison;
mod secrets;
mod traces;
