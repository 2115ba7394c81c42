//! Commands and the pure rules that turn them into events (decide) and fold
//! events into state (evolve).

use crate::{Change, KeyHash, KeyName, Prefix};

/// What an admin asks for, about one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Issue a key whose material the caller generated.
    Create {
        /// Display name.
        name: KeyName,
        /// Public prefix of the generated key.
        prefix: Prefix,
        /// Hash of the generated key.
        hash: KeyHash,
        /// Read-only scope.
        read_only: bool,
        /// An admin key.
        admin: bool,
    },
    /// Change any of name, scope and enabled flag. Each changed field becomes
    /// its own event; fields equal to the current value produce none.
    Update {
        /// New name.
        name: Option<KeyName>,
        /// New scope.
        read_only: Option<bool>,
        /// New enabled flag.
        enabled: Option<bool>,
    },
    /// Remove the key for good.
    Remove,
}

/// The state of one key, as decide needs it.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum KeyState {
    /// No event about this key yet.
    #[default]
    Absent,
    /// Created and not removed.
    Live(LiveKey),
    /// Removed; its id is never reused.
    Removed,
}

/// A key that exists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveKey {
    /// Display name.
    pub name: KeyName,
    /// Public prefix.
    pub prefix: Prefix,
    /// Read-only scope.
    pub read_only: bool,
    /// Whether it grants access.
    pub enabled: bool,
    /// An admin key.
    pub admin: bool,
}

/// Why a command cannot be carried out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Create for an id that already has events.
    #[error("a key with this id already exists")]
    AlreadyExists,
    /// Update or remove of a key that does not exist or was removed.
    #[error("no such key")]
    NotFound,
}

/// Decides which changes a command makes to a key in `state`.
///
/// An empty result means the command asks for nothing new (an idempotent update).
pub fn decide(state: &KeyState, command: &Command) -> Result<Vec<Change>, KeyError> {
    match (state, command) {
        (
            KeyState::Absent,
            Command::Create {
                name,
                prefix,
                hash,
                read_only,
                admin,
            },
        ) => Ok(vec![Change::Created {
            name: name.clone(),
            prefix: prefix.clone(),
            hash: *hash,
            read_only: *read_only,
            admin: *admin,
        }]),
        (_, Command::Create { .. }) => Err(KeyError::AlreadyExists),
        (KeyState::Absent | KeyState::Removed, _) => Err(KeyError::NotFound),
        (
            KeyState::Live(key),
            Command::Update {
                name,
                read_only,
                enabled,
            },
        ) => {
            let mut changes = Vec::new();
            if let Some(name) = name.as_ref().filter(|n| **n != key.name) {
                changes.push(Change::Renamed { name: name.clone() });
            }
            if let Some(read_only) = read_only.filter(|r| *r != key.read_only) {
                changes.push(Change::ScopeChanged { read_only });
            }
            match enabled {
                Some(true) if !key.enabled => changes.push(Change::Enabled),
                Some(false) if key.enabled => changes.push(Change::Disabled),
                _ => {}
            }
            Ok(changes)
        }
        (KeyState::Live(_), Command::Remove) => Ok(vec![Change::Removed]),
    }
}

/// Folds one change into a key's state. Deterministic and total: a change that
/// does not fit the state (e.g. `Renamed` before `Created`) leaves an
/// inconsistent history, which projections detect with [`KeyState`] checks
/// before calling this.
pub fn evolve(state: KeyState, change: &Change) -> KeyState {
    match (state, change) {
        (
            KeyState::Absent,
            Change::Created {
                name,
                prefix,
                read_only,
                admin,
                ..
            },
        ) => KeyState::Live(LiveKey {
            name: name.clone(),
            prefix: prefix.clone(),
            read_only: *read_only,
            enabled: true,
            admin: *admin,
        }),
        (KeyState::Live(mut key), change) => match change {
            Change::Renamed { name } => {
                key.name = name.clone();
                KeyState::Live(key)
            }
            Change::ScopeChanged { read_only } => {
                key.read_only = *read_only;
                KeyState::Live(key)
            }
            Change::Disabled => {
                key.enabled = false;
                KeyState::Live(key)
            }
            Change::Enabled => {
                key.enabled = true;
                KeyState::Live(key)
            }
            Change::Removed => KeyState::Removed,
            Change::Created { .. } => KeyState::Live(key),
        },
        (state, _) => state,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ApiKey;

    fn name(s: &str) -> KeyName {
        KeyName::parse(s).unwrap()
    }

    fn create(read_only: bool) -> Command {
        let key = ApiKey::generate().unwrap();
        Command::Create {
            name: name("ci"),
            prefix: key.prefix(),
            hash: key.hash(),
            read_only,
            admin: false,
        }
    }

    fn live() -> KeyState {
        let changes = decide(&KeyState::Absent, &create(true)).unwrap();
        changes.iter().fold(KeyState::Absent, evolve)
    }

    fn update(name_: Option<&str>, read_only: Option<bool>, enabled: Option<bool>) -> Command {
        Command::Update {
            name: name_.map(name),
            read_only,
            enabled,
        }
    }

    #[test]
    fn given_nothing_when_created_then_a_live_enabled_key() {
        let changes = decide(&KeyState::Absent, &create(true)).unwrap();
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].type_name(), "Created");
        let KeyState::Live(key) = changes.iter().fold(KeyState::Absent, evolve) else {
            panic!("not live")
        };
        assert!(key.enabled);
        assert!(key.read_only);
        assert_eq!(key.name, name("ci"));
    }

    #[test]
    fn given_a_key_when_created_again_then_already_exists() {
        assert_eq!(
            decide(&live(), &create(false)),
            Err(KeyError::AlreadyExists)
        );
        assert_eq!(
            decide(&KeyState::Removed, &create(false)),
            Err(KeyError::AlreadyExists)
        );
    }

    #[test]
    fn given_a_key_when_every_field_changes_then_one_event_per_field_in_order() {
        let changes = decide(&live(), &update(Some("deploy"), Some(false), Some(false))).unwrap();
        let names: Vec<_> = changes.iter().map(Change::type_name).collect();
        assert_eq!(names, ["Renamed", "ScopeChanged", "Disabled"]);
        let KeyState::Live(key) = changes.iter().fold(live(), evolve) else {
            panic!()
        };
        assert_eq!(key.name, name("deploy"));
        assert!(!key.read_only);
        assert!(!key.enabled);
    }

    #[test]
    fn given_a_key_when_updated_to_what_it_is_then_no_events() {
        assert_eq!(
            decide(&live(), &update(Some("ci"), Some(true), Some(true))),
            Ok(vec![])
        );
        assert_eq!(decide(&live(), &update(None, None, None)), Ok(vec![]));
    }

    #[test]
    fn given_a_disabled_key_when_enabled_then_enabled() {
        let disabled = evolve(live(), &Change::Disabled);
        let changes = decide(&disabled, &update(None, None, Some(true))).unwrap();
        assert_eq!(changes, vec![Change::Enabled]);
    }

    #[test]
    fn given_a_removed_or_absent_key_when_updated_or_removed_then_not_found() {
        for state in [KeyState::Absent, KeyState::Removed] {
            assert_eq!(decide(&state, &Command::Remove), Err(KeyError::NotFound));
            assert_eq!(
                decide(&state, &update(Some("x"), None, None)),
                Err(KeyError::NotFound)
            );
        }
    }

    #[test]
    fn given_a_key_when_removed_then_removed_for_good() {
        let changes = decide(&live(), &Command::Remove).unwrap();
        assert_eq!(changes, vec![Change::Removed]);
        let state = changes.iter().fold(live(), evolve);
        assert_eq!(state, KeyState::Removed);
        // Nothing brings a removed key back.
        assert_eq!(evolve(state.clone(), &Change::Enabled), KeyState::Removed);
    }
}
