//! Who issued a command.

use serde::{Deserialize, Serialize};

/// The admin credential behind an event.
///
/// Today there is one kind: the bootstrap admin token. Admin keys come later
/// and will be a new variant; the wire form is an object tagged by `type`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Actor {
    /// The operator's bootstrap admin token (`KEYLEDGER_ADMIN_TOKEN`).
    Bootstrap,
}

impl Actor {
    /// A short label for logs and listings.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Bootstrap => "bootstrap",
        }
    }
}
