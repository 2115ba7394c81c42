//! The catalogue: id -> name, prefix and flags, which admins list and search.
//! It also holds each key's [`KeyState`] so the admin service can decide
//! commands against it.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use keyledger_events::{
    Change, Commit, KeyHash, KeyId, KeyName, KeyState, LiveKey, Prefix, evolve,
};
use serde::Serialize;
use time::OffsetDateTime;

use crate::Projection;

/// What admins see of a key: never its secret or hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct KeyView {
    /// The key's id.
    pub id: KeyId,
    /// Display name.
    pub name: KeyName,
    /// Public prefix (leading 8 characters).
    pub prefix: Prefix,
    /// Read-only scope.
    pub read_only: bool,
    /// Whether it grants access.
    pub enabled: bool,
    /// An admin key: manages keys through the admin API, never accepted by nodes.
    pub admin: bool,
    /// When it was created (from its `Created` event).
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it last changed (from its latest event).
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// Stream sequence of the last commit about this key.
    pub version: u64,
    /// Set when an event about this key could not be trusted: the key is
    /// frozen (nodes deny it, commands on it are refused). Says why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub untrusted: Option<String>,
}

impl KeyView {
    /// The view after `commit`, stored at stream sequence `seq`, given the
    /// view before it (`None` before a `Created`). `None` once removed. This is
    /// what the writer of a commit answers with, whatever was written after it.
    pub fn after(before: Option<KeyView>, seq: u64, commit: &Commit) -> Option<KeyView> {
        let mut view = before;
        for event in commit.events() {
            match &event.change {
                Change::Created {
                    name,
                    prefix,
                    read_only,
                    admin,
                    ..
                } => {
                    view = Some(KeyView {
                        id: commit.key_id(),
                        name: name.clone(),
                        prefix: prefix.clone(),
                        read_only: *read_only,
                        enabled: true,
                        admin: *admin,
                        created_at: event.at,
                        updated_at: event.at,
                        version: seq,
                        untrusted: None,
                    });
                }
                Change::Removed => return None,
                change => {
                    let v = view.as_mut()?;
                    match change {
                        Change::Renamed { name } => v.name = name.clone(),
                        Change::ScopeChanged { read_only } => v.read_only = *read_only,
                        Change::Disabled => v.enabled = false,
                        Change::Enabled => v.enabled = true,
                        Change::Created { .. } | Change::Removed => {}
                    }
                    v.updated_at = event.at;
                    v.version = seq;
                }
            }
        }
        view
    }
}

/// A key that failed closed, for status reports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PoisonedKey {
    /// The key.
    pub key_id: KeyId,
    /// The stream sequence of the message that could not be trusted.
    pub seq: u64,
    /// Why.
    pub reason: String,
}

/// One page of a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page {
    /// The keys, in id (creation) order.
    pub keys: Vec<KeyView>,
    /// Pass as `after` to get the next page; `None` on the last page.
    pub next: Option<KeyId>,
}

/// Catalogue health, for status reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// Last applied stream sequence.
    pub applied_seq: u64,
    /// Live keys.
    pub keys: usize,
    /// Keys that fail closed.
    pub poisoned: Vec<PoisonedKey>,
    /// Set when no key can be trusted: (sequence, reason).
    pub sealed: Option<(u64, String)>,
}

#[derive(Debug, Default)]
struct Inner {
    position: u64,
    live: BTreeMap<KeyId, Record>,
    removed: HashMap<KeyId, u64>,
    prefixes: HashMap<Prefix, KeyId>,
    hashes: HashMap<KeyHash, KeyId>,
    poisoned: BTreeMap<KeyId, PoisonedKey>,
    untrusted_messages: BTreeMap<u64, String>,
    sealed: Option<(u64, String)>,
}

#[derive(Debug, Clone)]
struct Record {
    view: KeyView,
    name_lower: String,
    hash: KeyHash,
}

/// The admin read model. Internally locked; every method takes `&self`.
#[derive(Debug, Default)]
pub struct Catalogue {
    inner: RwLock<Inner>,
}

impl Catalogue {
    /// An empty catalogue.
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A live key's view.
    pub fn get(&self, id: &KeyId) -> Option<KeyView> {
        self.read().live.get(id).map(|r| r.view.clone())
    }

    /// The key's state for deciding a command, or `Err` with the reason when
    /// the key (or everything) cannot be trusted.
    pub fn state(&self, id: &KeyId) -> Result<KeyState, String> {
        let inner = self.read();
        if let Some((seq, reason)) = &inner.sealed {
            return Err(format!("message {seq} could not be trusted: {reason}"));
        }
        if let Some(p) = inner.poisoned.get(id) {
            return Err(format!(
                "message {} could not be trusted: {}",
                p.seq, p.reason
            ));
        }
        Ok(inner.state(id))
    }

    /// Whether a live key already has this prefix.
    pub fn prefix_taken(&self, prefix: &Prefix) -> bool {
        self.read().prefixes.contains_key(prefix)
    }

    /// Lists live keys in id (creation) order, after `after`, matching `query`
    /// if given: a case-insensitive substring of the name, or the leading
    /// characters of the prefix. Filtering happens before the limit.
    pub fn search(&self, query: Option<&str>, after: Option<KeyId>, limit: usize) -> Page {
        let query = query.map(str::trim).filter(|q| !q.is_empty());
        let lower = query.map(str::to_lowercase);
        let matches = |r: &Record| match (query, &lower) {
            (Some(q), Some(l)) => r.name_lower.contains(l) || r.view.prefix.as_str().starts_with(q),
            _ => true,
        };
        let inner = self.read();
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        let mut hits = inner
            .live
            .range((start, Bound::Unbounded))
            .map(|(_, r)| r)
            .filter(|r| matches(r));
        let keys: Vec<KeyView> = hits.by_ref().take(limit).map(|r| r.view.clone()).collect();
        let next = if keys.len() == limit && hits.next().is_some() {
            keys.last().map(|k| k.id)
        } else {
            None
        };
        Page { keys, next }
    }

    /// The live key with this hash, if any: how the admin service finds the
    /// admin key a request presents.
    pub fn by_hash(&self, hash: &KeyHash) -> Option<KeyView> {
        let inner = self.read();
        let id = inner.hashes.get(hash)?;
        inner.live.get(id).map(|r| r.view.clone())
    }

    /// Whether any admin key can manage keys: live, enabled, read-write and
    /// trusted. While none can, the bootstrap token may create one, so that
    /// admins can never lock themselves out.
    pub fn has_managing_admin(&self) -> bool {
        self.read().live.values().any(|r| {
            r.view.admin && r.view.enabled && !r.view.read_only && r.view.untrusted.is_none()
        })
    }

    /// Why the message at `seq` was not trusted, if it was not.
    pub fn untrusted_message(&self, seq: u64) -> Option<String> {
        self.read().untrusted_messages.get(&seq).cloned()
    }

    /// A snapshot for status reports.
    pub fn status(&self) -> Status {
        let inner = self.read();
        Status {
            applied_seq: inner.position,
            keys: inner.live.len(),
            poisoned: inner.poisoned.values().cloned().collect(),
            sealed: inner.sealed.clone(),
        }
    }
}

impl Inner {
    fn state(&self, id: &KeyId) -> KeyState {
        if let Some(r) = self.live.get(id) {
            KeyState::Live(LiveKey {
                name: r.view.name.clone(),
                prefix: r.view.prefix.clone(),
                read_only: r.view.read_only,
                enabled: r.view.enabled,
                admin: r.view.admin,
            })
        } else if self.removed.contains_key(id) {
            KeyState::Removed
        } else {
            KeyState::Absent
        }
    }

    fn poison(&mut self, seq: u64, key_id: KeyId, reason: &str) {
        if let Some(r) = self.live.get_mut(&key_id) {
            r.view.untrusted.get_or_insert_with(|| reason.to_owned());
        }
        self.poisoned.entry(key_id).or_insert_with(|| PoisonedKey {
            key_id,
            seq,
            reason: reason.to_owned(),
        });
    }

    fn apply(&mut self, seq: u64, commit: &Commit) {
        let id = commit.key_id();
        let mut state = self.state(&id);
        let mut hash = self.live.get(&id).map(|r| r.hash);
        for event in commit.events() {
            let is_create = matches!(event.change, Change::Created { .. });
            let fits = match state {
                KeyState::Absent => is_create,
                KeyState::Live(_) => !is_create,
                KeyState::Removed => false,
            };
            if !fits {
                let reason = format!(
                    "{} does not fit the key's history",
                    event.change.type_name()
                );
                return self.poison(seq, id, &reason);
            }
            if let Change::Created { hash: created, .. } = &event.change {
                if self.hashes.contains_key(created) {
                    return self.poison(seq, id, "Created with the hash of another key");
                }
                hash = Some(*created);
            }
            state = evolve(state, &event.change);
        }
        let view = KeyView::after(self.live.get(&id).map(|r| r.view.clone()), seq, commit);
        match (state, view) {
            (KeyState::Live(_), Some(mut view)) => {
                let Some(hash) = hash else { return };
                self.hashes.insert(hash, id);
                view.untrusted = self.poisoned.get(&id).map(|p| p.reason.clone());
                self.prefixes.insert(view.prefix.clone(), id);
                let name_lower = view.name.as_str().to_lowercase();
                self.live.insert(
                    id,
                    Record {
                        view,
                        name_lower,
                        hash,
                    },
                );
            }
            (KeyState::Removed, _) => {
                if let Some(r) = self.live.remove(&id) {
                    self.prefixes.remove(&r.view.prefix);
                    self.hashes.remove(&r.hash);
                }
                self.removed.insert(id, seq);
            }
            _ => {}
        }
    }
}

impl Projection for Catalogue {
    fn position(&self) -> u64 {
        self.read().position
    }

    fn apply(&self, seq: u64, commit: &Commit) -> bool {
        let mut inner = self.write();
        if seq <= inner.position {
            return false;
        }
        inner.apply(seq, commit);
        inner.position = seq;
        true
    }

    fn poison(&self, seq: u64, keys: &[KeyId], reason: &str) -> bool {
        let mut inner = self.write();
        if seq <= inner.position {
            return false;
        }
        for key in keys {
            inner.poison(seq, *key, reason);
        }
        inner.untrusted_messages.insert(seq, reason.to_owned());
        if keys.is_empty() {
            inner.sealed.get_or_insert_with(|| (seq, reason.to_owned()));
        }
        inner.position = seq;
        true
    }

    fn seal(&self, reason: &str) {
        let mut inner = self.write();
        let seq = inner.position;
        inner.sealed.get_or_insert_with(|| (seq, reason.to_owned()));
    }

    fn acknowledge(&self, seq: u64) -> bool {
        let mut inner = self.write();
        if seq <= inner.position {
            return false;
        }
        inner.position = seq;
        true
    }
}

#[cfg(test)]
mod tests {
    use keyledger_events::ApiKey;

    use super::*;
    use crate::test_commits::commit;

    fn id(n: u32) -> KeyId {
        let mut r = [0u8; 10];
        r[..4].copy_from_slice(&n.to_be_bytes());
        KeyId::from_parts(1, r)
    }

    fn create(c: &Catalogue, seq: u64, n: u32, name: &str) -> ApiKey {
        let key = ApiKey::generate().unwrap();
        let change = Change::Created {
            name: KeyName::parse(name).unwrap(),
            prefix: key.prefix(),
            hash: key.hash(),
            read_only: true,
            admin: false,
        };
        assert!(c.apply(seq, &commit(id(n), vec![change])));
        key
    }

    #[test]
    fn views_follow_the_events() {
        let c = Catalogue::new();
        let key = create(&c, 1, 1, "ci");
        c.apply(
            2,
            &commit(
                id(1),
                vec![
                    Change::Renamed {
                        name: KeyName::parse("deploy").unwrap(),
                    },
                    Change::ScopeChanged { read_only: false },
                    Change::Disabled,
                ],
            ),
        );
        let v = c.get(&id(1)).unwrap();
        assert_eq!(v.name.as_str(), "deploy");
        assert!(!v.read_only);
        assert!(!v.enabled);
        assert_eq!(v.version, 2);
        assert_eq!(v.prefix, key.prefix());
        assert!(c.prefix_taken(&key.prefix()));
        c.apply(3, &commit(id(1), vec![Change::Removed]));
        assert_eq!(c.get(&id(1)), None);
        assert_eq!(c.state(&id(1)), Ok(KeyState::Removed));
        assert!(!c.prefix_taken(&key.prefix()));
        assert_eq!(c.status().keys, 0);
    }

    #[test]
    fn search_matches_names_case_insensitively_and_prefixes_by_leading_characters() {
        let c = Catalogue::new();
        let a = create(&c, 1, 1, "Billing Service");
        create(&c, 2, 2, "search indexer");
        create(&c, 3, 3, "CI");
        let names = |p: Page| {
            p.keys
                .into_iter()
                .map(|k| k.name.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(c.search(Some("SERVICE"), None, 10)),
            ["Billing Service"]
        );
        assert_eq!(names(c.search(Some("i"), None, 10)).len(), 3);
        let prefix = a.prefix().to_string();
        let hits = c.search(Some(&prefix[..5]), None, 10);
        assert!(hits.keys.iter().any(|k| k.prefix == a.prefix()));
        // Prefix matching is on leading characters only: an inner run of the
        // prefix does not find the key (the name does not contain it either).
        let hits = c.search(Some(&prefix[1..6]), None, 10);
        assert!(hits.keys.iter().all(|k| k.prefix != a.prefix()));
    }

    #[test]
    fn paging_never_skips_or_repeats_and_filters_before_the_limit() {
        let c = Catalogue::new();
        for n in 0..25u32 {
            let name = if n % 3 == 0 {
                format!("match {n}")
            } else {
                format!("other {n}")
            };
            create(&c, u64::from(n) + 1, n, &name);
        }
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = c.search(Some("match"), after, 4);
            assert!(page.keys.len() <= 4);
            seen.extend(page.keys.iter().map(|k| k.id));
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        let expected: Vec<KeyId> = (0..25).filter(|n| n % 3 == 0).map(id).collect();
        assert_eq!(seen, expected);
        // A key removed between pages does not shift the cursor.
        let first = c.search(None, None, 5);
        c.apply(100, &commit(first.keys[4].id, vec![Change::Removed]));
        let second = c.search(None, first.next, 5);
        assert_eq!(second.keys[0].id, id(5));
    }

    #[test]
    fn events_that_do_not_fit_poison_the_key() {
        let c = Catalogue::new();
        c.apply(1, &commit(id(1), vec![Change::Disabled]));
        assert!(c.state(&id(1)).is_err());
        assert_eq!(c.status().poisoned.len(), 1);
        assert!(c.poison(2, &[id(2)], "unknown event type"));
        assert!(c.state(&id(2)).is_err());
        assert!(c.state(&id(3)).is_ok());
        assert!(c.poison(3, &[], "garbage"));
        assert!(c.state(&id(3)).is_err());
    }

    #[test]
    fn a_second_key_with_the_same_hash_is_frozen_and_marked() {
        let c = Catalogue::new();
        let key = create(&c, 1, 1, "original");
        let copy = Change::Created {
            name: KeyName::parse("copy").unwrap(),
            prefix: key.prefix(),
            hash: key.hash(),
            read_only: false,
            admin: false,
        };
        c.apply(2, &commit(id(2), vec![copy]));
        assert!(c.state(&id(2)).is_err());
        assert!(c.state(&id(1)).is_ok());
        // A frozen live key says so in its view.
        c.poison(3, &[id(1)], "unknown event type");
        let view = c.get(&id(1)).unwrap();
        assert_eq!(view.untrusted.as_deref(), Some("unknown event type"));
        let json = serde_json::to_value(&view).unwrap();
        assert_eq!(json["untrusted"], "unknown event type");
        // Events after removal are reported too.
        let other = create(&c, 4, 3, "other");
        c.apply(5, &commit(id(3), vec![Change::Removed]));
        c.apply(6, &commit(id(3), vec![Change::Enabled]));
        assert!(c.status().poisoned.iter().any(|p| p.key_id == id(3)));
        assert!(!c.prefix_taken(&other.prefix()));
    }
}
