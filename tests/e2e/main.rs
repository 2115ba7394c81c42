//! End-to-end tests: each starts its own nats-server, the real admin service
//! and two nodes, and drives them over HTTP.

mod admin_input;
mod binary;
mod concurrency;
mod eventlog;
mod lifecycle;
mod poison;
mod secrets;
