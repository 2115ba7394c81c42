//! keyledger's management API, and the web console it serves at `/`.
//!
//! ```text
//!   HTTP request ─► auth (admin token) ─► parse body into newtypes ─► Command
//!        ─► decide(state from the Catalogue) ─► Commit ─► EventLog::append(expected seq)
//!        ─► apply to the Catalogue ─► 200/201 with the view and `seq`
//! ```
//!
//! The admin service keeps its own view of the stream (a [`Catalogue`] fed
//! by [`keyledger_eventlog::feed`]). Several admin processes may share one
//! stream: an append that loses the race on the stream's last sequence is
//! decided again on the new state.
//!
//! [`Catalogue`]: keyledger_projections::Catalogue

mod console;
mod error;
mod execute;
mod history;
mod json;
mod keys;
mod metrics;
mod openapi;
mod request;
mod service;
mod token;

pub use error::ApiError;
pub use service::{Admin, AdminConfig};
pub use token::{AdminToken, AdminTokenError, MIN_TOKEN_LEN};
