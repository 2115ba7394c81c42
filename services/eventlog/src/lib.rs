//! The only crate that talks to NATS JetStream.
//!
//! ```text
//!   admin ──append(expected last stream seq)──► JetStream stream KEYLEDGER
//!                                               subjects KEYLEDGER.keys.<key id>
//!   admin, nodes ◄──ordered push consumer── feed() ──► Projection::apply / poison
//! ```
//!
//! Appends are serialised through the stream's expected last sequence, so the
//! stream has one global order. A retried append whose first attempt was
//! stored comes back from nats-server 2.12+ as a conflict: [`EventLog::append`]
//! recognises its own message by `Nats-Msg-Id` and reports success.
//!
//! Each append runs in an `append` span whose W3C `traceparent` travels in
//! the message headers; a following feed applies a live message inside an
//! `apply` span that joins that trace.

mod feed;
mod log;
mod trace_context;

pub use feed::{FeedOptions, FeedState, SharedChain, chain_status, feed, lock_chain};
pub use log::{AppendError, EventLog, EventLogError, StoredMessage, StreamIdentity, StreamOptions};
