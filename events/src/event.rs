//! Events: the facts the ledger records, named in the past tense.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{Actor, KeyHash, KeyId, KeyName, Origin, Prefix, RequestId};

/// The unique id of one event (a UUIDv7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventId(Uuid);

impl EventId {
    /// Wraps a UUID (services make them with `Uuid::now_v7`).
    pub fn from_uuid(id: Uuid) -> Self {
        Self(id)
    }

    /// A new id from a time and random bits supplied by the caller.
    pub fn from_parts(unix_millis: u64, random: [u8; 10]) -> Self {
        Self(uuid::Builder::from_unix_timestamp_millis(unix_millis, &random).into_uuid())
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl FromStr for EventId {
    type Err = uuid::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::try_parse(s).map(Self)
    }
}

impl Serialize for EventId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for EventId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One recorded change to one key, with who made it, when, and in which request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// This event's id.
    pub event_id: EventId,
    /// The key it is about.
    pub key_id: KeyId,
    /// When the admin service decided it. Apply never reads the clock; it reads this.
    pub at: OffsetDateTime,
    /// The admin credential that issued the command.
    pub actor: Actor,
    /// The HTTP request that carried the command.
    pub request_id: RequestId,
    /// Where the request came from (source IP, user agent, trace id).
    pub origin: Origin,
    /// What happened.
    pub change: Change,
}

/// What happened to a key. The persisted type names are frozen: see
/// [`Change::type_name`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// The key was issued. Keys start enabled.
    Created {
        /// Display name.
        name: KeyName,
        /// Public prefix (leading 8 characters).
        prefix: Prefix,
        /// SHA3-256 of the key; the key itself is never recorded.
        hash: KeyHash,
        /// Whether only GET, HEAD and OPTIONS are allowed.
        read_only: bool,
        /// An admin key: it manages keys through the admin API and is never
        /// accepted by API nodes. Fixed at creation.
        admin: bool,
    },
    /// The key's name changed.
    Renamed {
        /// The new name.
        name: KeyName,
    },
    /// The key became read-only or read-write.
    ScopeChanged {
        /// The new scope.
        read_only: bool,
    },
    /// The key stopped granting access.
    Disabled,
    /// The key grants access again.
    Enabled,
    /// The key is gone for good. Its events stay in the stream.
    Removed,
}

impl Change {
    /// The frozen wire name of this kind of event.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Created { .. } => "Created",
            Self::Renamed { .. } => "Renamed",
            Self::ScopeChanged { .. } => "ScopeChanged",
            Self::Disabled => "Disabled",
            Self::Enabled => "Enabled",
            Self::Removed => "Removed",
        }
    }
}
