//! A commit: the events of one command, appended as one JetStream message so
//! that a request lands whole or not at all.

use serde::{Deserialize, Serialize};

use crate::wire::WireEvent;
use crate::{DecodeError, Event, EventId, KeyId};

/// The events one command produced, all about one key, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Commit {
    events: Vec<Event>,
}

/// Why a list of events cannot form a commit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommitError {
    /// A commit holds at least one event.
    #[error("a commit holds at least one event")]
    Empty,
    /// All events of a commit are about the same key.
    #[error("all events of a commit are about the same key")]
    MixedKeys,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireCommit {
    events: Vec<serde_json::Value>,
}

impl Commit {
    /// Groups the events of one command.
    pub fn new(events: Vec<Event>) -> Result<Self, CommitError> {
        let first = events.first().ok_or(CommitError::Empty)?;
        if events.iter().any(|e| e.key_id != first.key_id) {
            return Err(CommitError::MixedKeys);
        }
        Ok(Self { events })
    }

    /// The events, in order.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// The key all events are about.
    pub fn key_id(&self) -> KeyId {
        self.events[0].key_id
    }

    /// The commit's id: its first event's id. Used as the JetStream
    /// `Nats-Msg-Id`, so a retried append can recognise its own message.
    pub fn id(&self) -> EventId {
        self.events[0].event_id
    }

    /// The JSON bytes to append.
    pub fn encode(&self) -> Vec<u8> {
        let events = self
            .events
            .iter()
            .map(|e| serde_json::to_value(WireEvent::from(e)))
            .collect::<Result<Vec<_>, _>>()
            .expect("events serialise to JSON");
        serde_json::to_vec(&WireCommit { events }).expect("a commit serialises to JSON")
    }

    /// Decodes a stored commit. Any event that is unknown or invalid fails the
    /// whole commit: nothing in it may be applied in part.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let wire: WireCommit =
            serde_json::from_slice(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))?;
        let events = wire
            .events
            .into_iter()
            .map(|value| {
                let w: WireEvent = match serde_json::from_value(value.clone()) {
                    Ok(w) => w,
                    Err(e) => return Err(classify(&value, &e)),
                };
                Event::try_from(w)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(events).map_err(|e| DecodeError::Malformed(e.to_string()))
    }
}

/// Tells an envelope error on an unknown type or version apart from plain garbage,
/// so that what a node reports names the real cause.
fn classify(value: &serde_json::Value, err: &serde_json::Error) -> DecodeError {
    let kind = value.get("type").and_then(|t| t.as_str());
    let version = value.get("v").and_then(serde_json::Value::as_u64);
    match (kind, version) {
        (Some(kind), Some(v)) if v != 1 => DecodeError::UnknownVersion {
            kind: kind.to_owned(),
            version: u32::try_from(v).unwrap_or(u32::MAX),
        },
        (Some(kind), _) => DecodeError::Invalid {
            kind: kind.to_owned(),
            reason: err.to_string(),
        },
        _ => DecodeError::Malformed(err.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::{Actor, ApiKey, Change, KeyName, RequestId};

    fn event(key_id: KeyId, change: Change) -> Event {
        Event {
            event_id: EventId::from_parts(1_700_000_000_000, [1; 10]),
            key_id,
            at: datetime!(2026-12-01 10:00:00.5 UTC),
            actor: Actor::Bootstrap,
            request_id: "req-1".parse::<RequestId>().unwrap(),
            change,
        }
    }

    fn created(key_id: KeyId) -> Event {
        let key = ApiKey::generate().unwrap();
        event(
            key_id,
            Change::Created {
                name: KeyName::parse("ci").unwrap(),
                prefix: key.prefix(),
                hash: key.hash(),
                read_only: true,
            },
        )
    }

    #[test]
    fn every_fixture_of_every_version_still_decodes() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures");
        let mut seen = std::collections::BTreeSet::new();
        for version in std::fs::read_dir(dir).unwrap() {
            for file in std::fs::read_dir(version.unwrap().path()).unwrap() {
                let path = file.unwrap().path();
                let bytes = std::fs::read(&path).unwrap();
                let commit = Commit::decode(&bytes)
                    .unwrap_or_else(|e| panic!("{} no longer decodes: {e}", path.display()));
                for e in commit.events() {
                    seen.insert(e.change.type_name());
                }
                // What we decode, we write back the same way.
                let again = Commit::decode(&commit.encode()).unwrap();
                assert_eq!(again, commit, "{}", path.display());
            }
        }
        let all = [
            "Created",
            "Disabled",
            "Enabled",
            "Removed",
            "Renamed",
            "ScopeChanged",
        ];
        assert_eq!(
            seen.into_iter().collect::<Vec<_>>(),
            all,
            "a fixture per event type"
        );
    }

    #[test]
    fn round_trips_and_never_contains_the_raw_key() {
        let key = ApiKey::generate().unwrap();
        let id = KeyId::from_parts(1, [2; 10]);
        let commit = Commit::new(vec![event(
            id,
            Change::Created {
                name: KeyName::parse("ci").unwrap(),
                prefix: key.prefix(),
                hash: key.hash(),
                read_only: false,
            },
        )])
        .unwrap();
        let bytes = commit.encode();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(!text.contains(key.expose_secret()));
        assert!(text.contains(&key.hash().to_hex()));
        assert!(text.contains(r#""v":1"#));
        assert_eq!(Commit::decode(&bytes).unwrap(), commit);
    }

    #[test]
    fn a_commit_is_about_one_key_and_not_empty() {
        let a = KeyId::from_parts(1, [1; 10]);
        let b = KeyId::from_parts(1, [2; 10]);
        assert_eq!(Commit::new(vec![]), Err(CommitError::Empty));
        assert_eq!(
            Commit::new(vec![created(a), event(b, Change::Disabled)]),
            Err(CommitError::MixedKeys)
        );
    }

    #[test]
    fn unknown_types_and_versions_are_errors_not_skips() {
        let text = String::from_utf8(
            Commit::new(vec![created(KeyId::from_parts(1, [1; 10]))])
                .unwrap()
                .encode(),
        )
        .unwrap();
        let unknown = text.replace(r#""type":"Created""#, r#""type":"Transferred""#);
        assert!(matches!(
            Commit::decode(unknown.as_bytes()),
            Err(DecodeError::UnknownType { .. })
        ));
        let future = text.replace(r#""v":1"#, r#""v":2"#);
        assert!(matches!(
            Commit::decode(future.as_bytes()),
            Err(DecodeError::UnknownVersion { .. })
        ));
        let extra = text.replace(r#""read_only":true"#, r#""read_only":true,"admin":true"#);
        assert!(matches!(
            Commit::decode(extra.as_bytes()),
            Err(DecodeError::Invalid { .. })
        ));
        assert!(matches!(
            Commit::decode(b"not json"),
            Err(DecodeError::Malformed(_))
        ));
        assert!(matches!(
            Commit::decode(br#"{"events":[]}"#),
            Err(DecodeError::Malformed(_))
        ));
    }
}
