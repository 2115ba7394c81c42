//! The outcome of presenting a key.

use keyledger_events::{KeyFormatError, KeyId};

/// What a request wants to do with its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// GET, HEAD or OPTIONS: allowed for read-only keys.
    Read,
    /// Any other method: needs a read-write key.
    Write,
}

impl Access {
    /// Classifies an HTTP method name (case-insensitively).
    pub fn for_method(method: &str) -> Self {
        if ["GET", "HEAD", "OPTIONS"]
            .iter()
            .any(|m| m.eq_ignore_ascii_case(method))
        {
            Self::Read
        } else {
            Self::Write
        }
    }
}

/// A key that may do what was asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grant {
    /// The key's id.
    pub key_id: KeyId,
    /// Whether it is read-only.
    pub read_only: bool,
}

/// Why a key may not do what was asked: `ReadOnly` is a 403, `NotReady` and
/// `Stale` a 503, every other variant a 401.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Denial {
    /// No key was presented.
    #[error("no API key was presented")]
    Missing,
    /// Two different keys were presented in one request.
    #[error("conflicting API keys were presented")]
    Conflicting,
    /// Not of the key format; no lookup was made.
    #[error("malformed API key: {0}")]
    Malformed(KeyFormatError),
    /// Well-formed but not a key that exists (never issued, or removed).
    #[error("unknown API key")]
    Unknown,
    /// The key exists but is disabled.
    #[error("the API key is disabled")]
    Disabled,
    /// An admin key: it manages keys and is never accepted as an API key.
    #[error("admin keys are not accepted as API keys")]
    AdminKey,
    /// The node could not trust an event about this key, so it fails closed.
    #[error("the key's state is unknown to this node; it fails closed")]
    StateUnknown,
    /// The node has not finished replaying the stream, so it cannot answer yet (503).
    #[error("this node is still replaying the event stream; it cannot validate keys yet")]
    NotReady,
    /// The node could not confirm for too long that it has every change in
    /// the stream (NATS unreachable?): a revocation may have passed it by, so
    /// it answers nothing (503) until it has caught up again.
    #[error("this node cannot confirm it is up to date with the event stream; it fails closed")]
    Stale,
    /// A read-only key asked for a write (403).
    #[error("the API key is read-only")]
    ReadOnly {
        /// The key's id.
        key_id: KeyId,
    },
}

impl Denial {
    /// A stable, machine-readable code for this denial.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Missing => "missing_key",
            Self::Conflicting => "conflicting_keys",
            Self::Malformed(_) => "malformed_key",
            Self::Unknown => "unknown_key",
            Self::Disabled => "disabled_key",
            Self::AdminKey => "admin_key",
            Self::StateUnknown => "key_state_unknown",
            Self::NotReady => "not_ready",
            Self::Stale => "stale",
            Self::ReadOnly { .. } => "read_only_key",
        }
    }

    /// Whether this is a 403 (forbidden) rather than a 401 (unauthenticated)
    /// or a 503 (not ready).
    pub fn is_forbidden(&self) -> bool {
        matches!(self, Self::ReadOnly { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_methods_are_reads() {
        for m in ["GET", "HEAD", "OPTIONS", "get", "Head"] {
            assert_eq!(Access::for_method(m), Access::Read, "{m}");
        }
        for m in [
            "POST", "PUT", "PATCH", "DELETE", "CONNECT", "TRACE", "", "GETX",
        ] {
            assert_eq!(Access::for_method(m), Access::Write, "{m}");
        }
    }
}
