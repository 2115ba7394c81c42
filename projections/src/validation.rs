//! The validation table: what an API node consults for every request.
//!
//! One SHA3-256 of the presented key and one map lookup, in process.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use dashmap::DashMap;
use keyledger_events::{Change, Commit, KeyHash, KeyHashHasher, KeyId};

use crate::{Access, Denial, Grant, Projection};

// Four independent facts about a key, read together on every validation.
#[allow(clippy::struct_excessive_bools)]
#[derive(Clone, Copy, Debug)]
struct Entry {
    key_id: KeyId,
    read_only: bool,
    enabled: bool,
    admin: bool,
    poisoned: bool,
}

/// Where a key id stands, so that later events can find its hash.
#[derive(Clone, Copy, Debug)]
enum Known {
    Live(KeyHash),
    Removed,
}

/// Key hash -> grant, for API nodes. Reads are lock-free against the single
/// writer that feeds it from the stream.
#[derive(Debug, Default)]
pub struct ValidationTable {
    by_hash: DashMap<KeyHash, Entry, KeyHashHasher>,
    by_id: DashMap<KeyId, Known>,
    position: AtomicU64,
    /// Set when an untrusted message could not be tied to a key: then every
    /// key fails closed.
    sealed: AtomicBool,
    /// Set once the replay reached the stream head seen at start. Until then
    /// the table holds a half-replayed past and answers nothing.
    ready: AtomicBool,
    /// Set by the node while it cannot confirm it has every change in the
    /// stream: then every key fails closed (503).
    stale: AtomicBool,
    poisoned: Mutex<BTreeMap<KeyId, (u64, String)>>,
    seal_reason: Mutex<Option<(u64, String)>>,
}

/// What a node reports about its table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidationStatus {
    /// Whether the replay is done and keys are validated.
    pub ready: bool,
    /// Whether the node marked the table stale (every key fails closed).
    pub stale: bool,
    /// Last applied stream sequence.
    pub applied_seq: u64,
    /// Keys that grant access when enabled (live keys, enabled or not).
    pub keys: usize,
    /// Keys that fail closed because an event about them was not trusted:
    /// (key, sequence, reason).
    pub poisoned: Vec<(KeyId, u64, String)>,
    /// Set when every key fails closed: (sequence, reason).
    pub sealed: Option<(u64, String)>,
}

impl ValidationTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Validates a presented key for an access. Checks the key's format before
    /// hashing, then makes exactly one lookup.
    pub fn validate(&self, presented: &str, access: Access) -> Result<Grant, Denial> {
        let hash = KeyHash::of_presented(presented).map_err(Denial::Malformed)?;
        self.validate_hash(&hash, access)
    }

    /// Validates an already hashed key.
    pub fn validate_hash(&self, hash: &KeyHash, access: Access) -> Result<Grant, Denial> {
        if !self.ready.load(Ordering::Acquire) {
            return Err(Denial::NotReady);
        }
        if self.stale.load(Ordering::Acquire) {
            return Err(Denial::Stale);
        }
        if self.sealed.load(Ordering::Acquire) {
            return Err(Denial::StateUnknown);
        }
        let entry = *self.by_hash.get(hash).ok_or(Denial::Unknown)?;
        if entry.poisoned {
            return Err(Denial::StateUnknown);
        }
        if !entry.enabled {
            return Err(Denial::Disabled);
        }
        if entry.admin {
            return Err(Denial::AdminKey);
        }
        if entry.read_only && access == Access::Write {
            return Err(Denial::ReadOnly {
                key_id: entry.key_id,
            });
        }
        Ok(Grant {
            key_id: entry.key_id,
            read_only: entry.read_only,
        })
    }

    /// Marks the replay done: from now on keys are validated.
    pub fn mark_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }

    /// Marks the table stale (`true`: every key fails closed) or fresh again.
    /// The node decides, from how long ago it last confirmed it had applied
    /// the stream's head; the table never reads a clock.
    pub fn set_stale(&self, stale: bool) {
        self.stale.store(stale, Ordering::Release);
    }

    /// A snapshot for `/v1/status` and `/readyz`.
    pub fn status(&self) -> ValidationStatus {
        let poisoned = self
            .poisoned
            .lock()
            .map(|p| p.iter().map(|(k, (s, r))| (*k, *s, r.clone())).collect())
            .unwrap_or_default();
        ValidationStatus {
            ready: self.ready.load(Ordering::Acquire),
            stale: self.stale.load(Ordering::Acquire),
            applied_seq: self.position(),
            keys: self.by_hash.len(),
            poisoned,
            sealed: self.seal_reason.lock().ok().and_then(|s| s.clone()),
        }
    }

    fn advance(&self, seq: u64) -> bool {
        if seq <= self.position.load(Ordering::Acquire) {
            return false;
        }
        self.position.store(seq, Ordering::Release);
        true
    }

    fn poison_key(&self, seq: u64, key: KeyId, reason: &str) {
        if let Some(Known::Live(hash)) = self.by_id.get(&key).map(|k| *k)
            && let Some(mut e) = self.by_hash.get_mut(&hash)
        {
            e.poisoned = true;
        }
        if let Ok(mut p) = self.poisoned.lock() {
            p.entry(key).or_insert_with(|| (seq, reason.to_owned()));
        }
    }

    fn is_poisoned(&self, key: &KeyId) -> bool {
        self.poisoned.lock().map_or(true, |p| p.contains_key(key))
    }

    /// Folds a whole commit into a local copy, then writes once, so readers
    /// never see a request half-applied.
    fn apply_commit(&self, seq: u64, commit: &Commit) {
        let key = commit.key_id();
        let before = match self.by_id.get(&key).map(|k| *k) {
            None => Slot::Absent,
            Some(Known::Removed) => Slot::Removed,
            Some(Known::Live(hash)) => match self.by_hash.get(&hash).map(|e| *e) {
                Some(entry) => Slot::Live(hash, entry),
                None => Slot::Removed,
            },
        };
        let mut slot = before;
        for event in commit.events() {
            slot = match (slot, &event.change) {
                (
                    Slot::Absent,
                    Change::Created {
                        hash,
                        read_only,
                        admin,
                        ..
                    },
                ) => {
                    if self.by_hash.contains_key(hash) {
                        return self.poison_key(seq, key, "Created with the hash of another key");
                    }
                    let poisoned = self.is_poisoned(&key);
                    Slot::Live(
                        *hash,
                        Entry {
                            key_id: key,
                            read_only: *read_only,
                            enabled: true,
                            admin: *admin,
                            poisoned,
                        },
                    )
                }
                (Slot::Live(hash, mut entry), change) => match change {
                    Change::ScopeChanged { read_only } => {
                        entry.read_only = *read_only;
                        Slot::Live(hash, entry)
                    }
                    Change::Disabled | Change::Enabled => {
                        entry.enabled = matches!(change, Change::Enabled);
                        Slot::Live(hash, entry)
                    }
                    Change::Renamed { .. } => Slot::Live(hash, entry),
                    Change::Removed => Slot::Removed,
                    Change::Created { .. } => {
                        return self.poison_key(seq, key, "Created for a key that exists");
                    }
                },
                // A removed key stays removed; anything after is reported.
                (Slot::Removed, other) => {
                    let reason = format!("{} for a removed key", other.type_name());
                    self.poison_key(seq, key, &reason);
                    Slot::Removed
                }
                (Slot::Absent, other) => {
                    let reason = format!("{} for a key that was never created", other.type_name());
                    return self.poison_key(seq, key, &reason);
                }
            };
        }
        match (before, slot) {
            (_, Slot::Live(hash, entry)) => {
                self.by_hash.insert(hash, entry);
                self.by_id.insert(key, Known::Live(hash));
            }
            (Slot::Live(hash, _), Slot::Removed) => {
                self.by_hash.remove(&hash);
                self.by_id.insert(key, Known::Removed);
            }
            (_, Slot::Removed) => {
                self.by_id.insert(key, Known::Removed);
            }
            (_, Slot::Absent) => {}
        }
    }
}

#[derive(Clone, Copy)]
enum Slot {
    Absent,
    Live(KeyHash, Entry),
    Removed,
}

impl Projection for ValidationTable {
    fn position(&self) -> u64 {
        self.position.load(Ordering::Acquire)
    }

    fn apply(&self, seq: u64, commit: &Commit) -> bool {
        if seq <= self.position() {
            return false;
        }
        self.apply_commit(seq, commit);
        self.advance(seq)
    }

    fn caught_up(&self) {
        self.mark_ready();
    }

    fn seal(&self, reason: &str) {
        if let Ok(mut s) = self.seal_reason.lock() {
            s.get_or_insert_with(|| (self.position(), reason.to_owned()));
        }
        self.sealed.store(true, Ordering::Release);
    }

    fn acknowledge(&self, seq: u64) -> bool {
        self.advance(seq)
    }

    fn poison(&self, seq: u64, keys: &[KeyId], reason: &str) -> bool {
        if seq <= self.position() {
            return false;
        }
        for key in keys {
            self.poison_key(seq, *key, reason);
        }
        let advanced = self.advance(seq);
        if keys.is_empty() {
            self.seal(reason);
        }
        advanced
    }
}

#[cfg(test)]
mod tests {
    use keyledger_events::{ApiKey, Change, KeyId, KeyName};

    use super::*;
    use crate::test_commits::commit;

    fn ready_table() -> ValidationTable {
        let t = ValidationTable::new();
        t.mark_ready();
        t
    }

    #[test]
    fn nothing_is_validated_before_the_replay_is_done() {
        let t = ValidationTable::new();
        let key = ApiKey::generate().unwrap();
        t.apply(1, &commit(id(1), vec![created(&key, false)]));
        t.apply(2, &commit(id(1), vec![Change::Disabled]));
        assert_eq!(
            t.validate(key.expose_secret(), Access::Read),
            Err(Denial::NotReady)
        );
        t.mark_ready();
        assert_eq!(
            t.validate(key.expose_secret(), Access::Read),
            Err(Denial::Disabled)
        );
    }

    #[test]
    fn a_stale_table_fails_every_key_closed_until_fresh_again() {
        let t = ready_table();
        let key = ApiKey::generate().unwrap();
        t.apply(1, &commit(id(1), vec![created(&key, false)]));
        t.set_stale(true);
        assert!(t.status().stale);
        assert_eq!(
            t.validate(key.expose_secret(), Access::Read),
            Err(Denial::Stale)
        );
        t.set_stale(false);
        assert!(t.validate(key.expose_secret(), Access::Read).is_ok());
    }

    fn created(key: &ApiKey, read_only: bool) -> Change {
        Change::Created {
            name: KeyName::parse("n").unwrap(),
            prefix: key.prefix(),
            hash: key.hash(),
            read_only,
            admin: false,
        }
    }

    fn id(n: u8) -> KeyId {
        KeyId::from_parts(1, [n; 10])
    }

    #[test]
    fn a_created_key_is_valid_and_scoped() {
        let t = ready_table();
        let key = ApiKey::generate().unwrap();
        assert!(t.apply(1, &commit(id(1), vec![created(&key, true)])));
        let raw = key.expose_secret();
        assert_eq!(
            t.validate(raw, Access::Read),
            Ok(Grant {
                key_id: id(1),
                read_only: true
            })
        );
        assert_eq!(
            t.validate(raw, Access::Write),
            Err(Denial::ReadOnly { key_id: id(1) })
        );
        t.apply(
            2,
            &commit(id(1), vec![Change::ScopeChanged { read_only: false }]),
        );
        assert!(t.validate(raw, Access::Write).is_ok());
        assert_eq!(t.status().keys, 1);
        assert_eq!(t.status().applied_seq, 2);
    }

    #[test]
    fn disable_enable_remove() {
        let t = ready_table();
        let key = ApiKey::generate().unwrap();
        let raw = key.expose_secret();
        t.apply(1, &commit(id(1), vec![created(&key, false)]));
        t.apply(2, &commit(id(1), vec![Change::Disabled]));
        assert_eq!(t.validate(raw, Access::Read), Err(Denial::Disabled));
        t.apply(3, &commit(id(1), vec![Change::Enabled]));
        assert!(t.validate(raw, Access::Read).is_ok());
        t.apply(5, &commit(id(1), vec![Change::Removed]));
        assert_eq!(t.validate(raw, Access::Read), Err(Denial::Unknown));
        // Nothing after removal brings it back, and it is reported.
        t.apply(6, &commit(id(1), vec![Change::Enabled]));
        assert_eq!(t.validate(raw, Access::Read), Err(Denial::Unknown));
        assert_eq!(t.status().keys, 0);
        assert_eq!(t.status().poisoned.len(), 1);
    }

    #[test]
    fn replays_are_idempotent_by_sequence() {
        let t = ready_table();
        let key = ApiKey::generate().unwrap();
        t.apply(1, &commit(id(1), vec![created(&key, false)]));
        t.apply(2, &commit(id(1), vec![Change::Disabled]));
        assert!(!t.apply(2, &commit(id(1), vec![Change::Enabled])));
        assert!(!t.apply(1, &commit(id(1), vec![Change::Enabled])));
        assert_eq!(
            t.validate(key.expose_secret(), Access::Read),
            Err(Denial::Disabled)
        );
    }

    #[test]
    fn malformed_keys_are_rejected_before_lookup() {
        let t = ready_table();
        assert!(matches!(
            t.validate("", Access::Read),
            Err(Denial::Malformed(_))
        ));
        assert!(matches!(
            t.validate("short", Access::Read),
            Err(Denial::Malformed(_))
        ));
    }

    #[test]
    fn a_poisoned_key_fails_closed_even_if_created_later() {
        let t = ready_table();
        let a = ApiKey::generate().unwrap();
        let b = ApiKey::generate().unwrap();
        t.apply(1, &commit(id(1), vec![created(&a, false)]));
        assert!(t.poison(2, &[id(1)], "unknown event type"));
        assert!(t.poison(3, &[id(2)], "unknown event type"));
        t.apply(4, &commit(id(2), vec![created(&b, false)]));
        assert_eq!(
            t.validate(a.expose_secret(), Access::Read),
            Err(Denial::StateUnknown)
        );
        assert_eq!(
            t.validate(b.expose_secret(), Access::Read),
            Err(Denial::StateUnknown)
        );
        assert_eq!(t.status().poisoned.len(), 2);
        assert_eq!(t.status().applied_seq, 4);
    }

    #[test]
    fn events_for_keys_never_created_poison_them() {
        let t = ready_table();
        t.apply(1, &commit(id(9), vec![Change::Enabled]));
        assert_eq!(t.status().poisoned[0].0, id(9));
    }

    #[test]
    fn an_untrusted_message_with_no_key_seals_everything() {
        let t = ready_table();
        let key = ApiKey::generate().unwrap();
        t.apply(1, &commit(id(1), vec![created(&key, false)]));
        t.poison(2, &[], "garbage");
        assert_eq!(
            t.validate(key.expose_secret(), Access::Read),
            Err(Denial::StateUnknown)
        );
        assert_eq!(t.status().sealed, Some((2, "garbage".to_owned())));
    }
}
