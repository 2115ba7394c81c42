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
pub(crate) struct WireCommit {
    pub(crate) events: Vec<serde_json::Value>,
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

    /// The events as JSON objects, without chain fields: what [`crate::Chain::sign`]
    /// links and signs.
    pub(crate) fn wire_values(&self) -> Vec<serde_json::Value> {
        self.events
            .iter()
            .map(|e| serde_json::to_value(WireEvent::from(e)).expect("events serialise to JSON"))
            .collect()
    }

    /// The JSON bytes of the commit *without* chain fields or signatures.
    /// Nodes never trust such a message; the admin service appends what
    /// [`crate::Chain::sign`] returns. Useful for fixtures and tests.
    pub fn encode_unsigned(&self) -> Vec<u8> {
        serde_json::to_vec(&WireCommit {
            events: self.wire_values(),
        })
        .expect("a commit serialises to JSON")
    }

    /// Decodes a stored commit. Any event that is unknown or invalid fails the
    /// whole commit: nothing in it may be applied in part. Decoding does not
    /// check the chain; [`crate::Chain::verify`] does.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let wire: WireCommit =
            serde_json::from_slice(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))?;
        Self::from_values(wire.events)
    }

    /// Decodes the events of a commit whose JSON was already parsed (and,
    /// usually, verified by [`crate::Chain::verify`]).
    pub fn from_values(values: Vec<serde_json::Value>) -> Result<Self, DecodeError> {
        let events = values
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
        (Some(kind), Some(v))
            if !u32::try_from(v).is_ok_and(|v| crate::wire::KNOWN_VERSIONS.contains(&v)) =>
        {
            DecodeError::UnknownVersion {
                kind: kind.to_owned(),
                version: u32::try_from(v).unwrap_or(u32::MAX),
            }
        }
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
            origin: crate::Origin::default(),
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
                admin: false,
            },
        )
    }

    const ALL_TYPES: [&str; 6] = [
        "Created",
        "Disabled",
        "Enabled",
        "Removed",
        "Renamed",
        "ScopeChanged",
    ];

    fn fixture_files(version: &str) -> Vec<std::path::PathBuf> {
        let dir = format!("{}/fixtures/{version}", env!("CARGO_MANIFEST_DIR"));
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|f| f.unwrap().path())
            .collect();
        files.sort();
        files
    }

    #[test]
    fn every_fixture_of_every_version_still_decodes() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures");
        let mut versions = 0;
        for version in std::fs::read_dir(dir).unwrap() {
            versions += 1;
            let version = version.unwrap().file_name().into_string().unwrap();
            let mut seen = std::collections::BTreeSet::new();
            for path in fixture_files(&version) {
                let bytes = std::fs::read(&path).unwrap();
                let commit = Commit::decode(&bytes)
                    .unwrap_or_else(|e| panic!("{} no longer decodes: {e}", path.display()));
                for e in commit.events() {
                    seen.insert(e.change.type_name());
                }
                // Upcast to the current shape, written again, decodes the same.
                let again = Commit::decode(&commit.encode_unsigned()).unwrap();
                assert_eq!(again, commit, "{}", path.display());
            }
            assert_eq!(
                seen.into_iter().collect::<Vec<_>>(),
                ALL_TYPES,
                "a fixture per event type in {version}"
            );
        }
        assert_eq!(
            versions,
            crate::SCHEMA_VERSION,
            "a fixture folder per schema version"
        );
    }

    /// The key that signed the v2 fixtures (a fixed test seed, never used elsewhere).
    fn fixture_key() -> crate::SigningKey {
        crate::SigningKey::from_hex(&"07".repeat(32)).unwrap()
    }

    fn v2_fixture_commits() -> Vec<(&'static str, Commit)> {
        use crate::{Origin, Prefix};
        let key_id: KeyId = "0193a0b1-0000-7000-8000-0000000000bb".parse().unwrap();
        let admin: KeyId = "0193a0b1-0000-7000-8000-0000000000ad".parse().unwrap();
        let mk = |n: u8, change: Change| Event {
            event_id: EventId::from_parts(1_764_583_200_000 + u64::from(n), [n; 10]),
            key_id,
            at: datetime!(2026-12-01 10:00:00.123456 UTC) + time::Duration::minutes(n.into()),
            actor: Actor::AdminKey {
                key_id: admin,
                prefix: Prefix::parse("Zx9yW8vU").unwrap(),
            },
            request_id: format!("req-{n}").parse::<RequestId>().unwrap(),
            origin: Origin::new(
                Some("192.0.2.10".into()),
                Some("curl/8.5.0"),
                Some("4bf92f3577b34da6a3ce929d0e0e4736"),
            ),
            change,
        };
        let one = |n, c| Commit::new(vec![mk(n, c)]).unwrap();
        vec![
            (
                "1-Created",
                one(
                    1,
                    Change::Created {
                        name: KeyName::parse("billing reader").unwrap(),
                        prefix: Prefix::parse("Ab3dE5fG").unwrap(),
                        hash: crate::KeyHash::of("fixture"),
                        read_only: true,
                        admin: false,
                    },
                ),
            ),
            (
                "2-Batch",
                Commit::new(vec![
                    mk(
                        2,
                        Change::Renamed {
                            name: KeyName::parse("billing writer").unwrap(),
                        },
                    ),
                    mk(3, Change::ScopeChanged { read_only: false }),
                    mk(4, Change::Disabled),
                ])
                .unwrap(),
            ),
            ("3-Enabled", one(5, Change::Enabled)),
            ("4-Removed", one(6, Change::Removed)),
        ]
    }

    /// The v2 fixtures are a signed chain. Set `KEYLEDGER_WRITE_FIXTURES=1`
    /// to write them (only ever for a new version: old fixtures are frozen).
    #[test]
    fn v2_fixtures_form_a_signed_chain() {
        let key = fixture_key();
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/v2");
        if std::env::var_os("KEYLEDGER_WRITE_FIXTURES").is_some() {
            std::fs::create_dir_all(dir).unwrap();
            let mut chain = crate::Chain::new(key.public_key());
            for (seq, (name, commit)) in v2_fixture_commits().into_iter().enumerate() {
                let signed = chain.sign(&commit, &key, None).unwrap();
                chain.accept(seq as u64 + 1, &signed);
                let mut bytes = signed.bytes;
                bytes.push(b'\n');
                std::fs::write(format!("{dir}/{name}.json"), bytes).unwrap();
            }
        }
        let mut chain = crate::Chain::new(key.public_key());
        let files = fixture_files("v2");
        assert_eq!(files.len(), v2_fixture_commits().len());
        for ((seq, path), (_, expected)) in files.iter().enumerate().zip(v2_fixture_commits()) {
            let verified = chain
                .verify(seq as u64 + 1, &std::fs::read(path).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(Commit::from_values(verified.values).unwrap(), expected);
        }
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
                admin: false,
            },
        )])
        .unwrap();
        let bytes = commit.encode_unsigned();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(!text.contains(key.expose_secret()));
        assert!(text.contains(&key.hash().to_hex()));
        assert!(text.contains(r#""v":2"#));
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
                .encode_unsigned(),
        )
        .unwrap();
        let unknown = text.replace(r#""type":"Created""#, r#""type":"Transferred""#);
        assert!(matches!(
            Commit::decode(unknown.as_bytes()),
            Err(DecodeError::UnknownType { .. })
        ));
        let future = text.replace(r#""v":2"#, r#""v":3"#);
        assert!(matches!(
            Commit::decode(future.as_bytes()),
            Err(DecodeError::UnknownVersion { .. })
        ));
        let extra = text.replace(r#""read_only":true"#, r#""read_only":true,"owner":"x""#);
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
