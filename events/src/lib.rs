//! keyledger's pure domain.
//!
//! Everything here is deterministic and free of I/O: the newtypes that can only
//! be built valid ([`KeyId`], [`KeyName`], [`Prefix`], [`KeyHash`], [`RequestId`]),
//! the key material ([`ApiKey`]: generate, format, checksum, SHA3-256), the
//! events and their versioned JSON encoding, and the decide/evolve rules.
//!
//! ```text
//!   admin request ──► Command ──decide(state)──► Vec<Change> ──► Commit (one JetStream message)
//!                                                                   │
//!   projections ◄──────────── evolve(state, change) ◄──── Commit::decode
//! ```
//!
//! The only impure call is [`ApiKey::generate`], which reads the OS CSPRNG.

mod actor;
mod canonical;
mod chain;
mod commit;
mod decision;
mod event;
mod export;
mod hex;
mod key_id;
mod key_material;
mod key_name;
mod request_id;
mod schema;
mod signing;
mod visible;
mod wire;

pub use actor::{Actor, Origin};
pub use chain::{Chain, ChainError, EventHash, Link, SignError, Signed, Verified};
pub use commit::{Commit, CommitError};
pub use decision::{Command, KeyError, KeyState, LiveKey, decide, evolve};
pub use event::{Change, Event, EventId};
pub use export::{ExportLine, ExportLineError};
pub use key_id::{KeyId, KeyIdError};
pub use key_material::{
    ApiKey, KEY_LEN, KeyFormatError, KeyHash, KeyHashHasher, PREFIX_LEN, Prefix,
};
pub use key_name::{KeyName, KeyNameError, MAX_NAME_CHARS};
pub use request_id::{RequestId, RequestIdError};
pub use signing::{KeyTextError, PublicKey, SigningKey};
pub use wire::{DecodeError, SCHEMA_VERSION};
