//! The JSON form of events, with a schema version on each.
//!
//! Decoding dispatches on `(type, v)`. When a version 2 of an event appears,
//! its version 1 stays decodable here and is upcast to the current [`Change`],
//! so domain code only ever sees the current shape. Every version ever written
//! has a fixture under `events/fixtures/`, and a test that it still decodes.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::{Actor, Change, Event, EventId, KeyHash, KeyId, KeyName, Origin, Prefix, RequestId};

/// The schema version this build writes. Version 1 (no origin, no chain, no
/// admin scope) is still read and upcast.
pub const SCHEMA_VERSION: u32 = 2;

/// Every schema version this build can read.
pub(crate) const KNOWN_VERSIONS: std::ops::RangeInclusive<u32> = 1..=SCHEMA_VERSION;

/// Why bytes could not be decoded into events. Never skipped: a node that
/// cannot decode an event fails closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not JSON of the expected outer shape.
    #[error("malformed event: {0}")]
    Malformed(String),
    /// An event type this build does not know.
    #[error("unknown event type {kind:?} (schema version {version})")]
    UnknownType {
        /// The type string found.
        kind: String,
        /// The schema version found.
        version: u32,
    },
    /// A known event type at a schema version this build does not know.
    #[error("unsupported schema version {version} of event type {kind}")]
    UnknownVersion {
        /// The type string found.
        kind: String,
        /// The schema version found.
        version: u32,
    },
    /// A known type and version whose fields are wrong.
    #[error("invalid {kind} event: {reason}")]
    Invalid {
        /// The type string found.
        kind: String,
        /// What was wrong.
        reason: String,
    },
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WireEvent {
    v: u32,
    #[serde(rename = "type")]
    kind: String,
    id: EventId,
    key_id: KeyId,
    #[serde(with = "time::serde::rfc3339")]
    at: OffsetDateTime,
    actor: Actor,
    request_id: RequestId,
    #[serde(default)]
    data: Value,
    // From version 2 on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    origin: Option<Origin>,
    // The chain fields are checked by `Chain`, over the stored JSON; decoding
    // accepts them and leaves them alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    prev: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hash: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    signer: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sig: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    next_signer: Option<Value>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreatedV1 {
    name: KeyName,
    prefix: Prefix,
    hash: KeyHash,
    read_only: bool,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreatedV2 {
    name: KeyName,
    prefix: Prefix,
    hash: KeyHash,
    read_only: bool,
    admin: bool,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RenamedV1 {
    name: KeyName,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScopeChangedV1 {
    read_only: bool,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct NoDataV1 {}

impl From<&Event> for WireEvent {
    fn from(e: &Event) -> Self {
        let data = match &e.change {
            Change::Created {
                name,
                prefix,
                hash,
                read_only,
                admin,
            } => {
                json!({ "name": name, "prefix": prefix, "hash": hash, "read_only": read_only, "admin": admin })
            }
            Change::Renamed { name } => json!({ "name": name }),
            Change::ScopeChanged { read_only } => json!({ "read_only": read_only }),
            Change::Disabled | Change::Enabled | Change::Removed => json!({}),
        };
        Self {
            v: SCHEMA_VERSION,
            kind: e.change.type_name().to_owned(),
            id: e.event_id,
            key_id: e.key_id,
            at: e.at,
            actor: e.actor.clone(),
            request_id: e.request_id.clone(),
            data,
            origin: Some(e.origin.clone()),
            prev: None,
            hash: None,
            signer: None,
            sig: None,
            next_signer: None,
        }
    }
}

impl TryFrom<WireEvent> for Event {
    type Error = DecodeError;

    fn try_from(w: WireEvent) -> Result<Self, DecodeError> {
        let change = decode_change(&w.kind, w.v, w.data)?;
        Ok(Self {
            event_id: w.id,
            key_id: w.key_id,
            at: w.at,
            actor: w.actor,
            request_id: w.request_id,
            origin: w.origin.unwrap_or_default(),
            change,
        })
    }
}

fn decode_change(kind: &str, version: u32, data: Value) -> Result<Change, DecodeError> {
    fn parse<T: serde::de::DeserializeOwned>(kind: &str, data: Value) -> Result<T, DecodeError> {
        serde_json::from_value(data).map_err(|e| DecodeError::Invalid {
            kind: kind.to_owned(),
            reason: e.to_string(),
        })
    }
    const KNOWN: [&str; 6] = [
        "Created",
        "Renamed",
        "ScopeChanged",
        "Disabled",
        "Enabled",
        "Removed",
    ];
    if !KNOWN.contains(&kind) {
        return Err(DecodeError::UnknownType {
            kind: kind.to_owned(),
            version,
        });
    }
    if !KNOWN_VERSIONS.contains(&version) {
        return Err(DecodeError::UnknownVersion {
            kind: kind.to_owned(),
            version,
        });
    }
    Ok(match kind {
        // Version 1 knew no admin keys: upcast with `admin: false`.
        "Created" if version == 1 => {
            let d: CreatedV1 = parse(kind, data)?;
            Change::Created {
                name: d.name,
                prefix: d.prefix,
                hash: d.hash,
                read_only: d.read_only,
                admin: false,
            }
        }
        "Created" => {
            let d: CreatedV2 = parse(kind, data)?;
            Change::Created {
                name: d.name,
                prefix: d.prefix,
                hash: d.hash,
                read_only: d.read_only,
                admin: d.admin,
            }
        }
        "Renamed" => Change::Renamed {
            name: parse::<RenamedV1>(kind, data)?.name,
        },
        "ScopeChanged" => Change::ScopeChanged {
            read_only: parse::<ScopeChangedV1>(kind, data)?.read_only,
        },
        "Disabled" => parse::<NoDataV1>(kind, data).map(|_| Change::Disabled)?,
        "Enabled" => parse::<NoDataV1>(kind, data).map(|_| Change::Enabled)?,
        _ => parse::<NoDataV1>(kind, data).map(|_| Change::Removed)?,
    })
}
