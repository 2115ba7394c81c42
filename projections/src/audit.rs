//! The auditor's read model: walk a history (from the stream or an export),
//! check every message against the chain, and answer what was true when.
//!
//! Everything here follows stream sequence, never wall-clock time, and never
//! reads the clock: walking the same history twice gives the same answers,
//! byte for byte.

use std::collections::BTreeMap;

use keyledger_events::{
    Actor, Chain, Change, Commit, EventHash, KeyHash, KeyId, Origin, Prefix, PublicKey, RequestId,
};
use serde::Serialize;
use time::OffsetDateTime;

use crate::Access;

/// One stored message, as the stream or an export gives it.
#[derive(Clone, Debug)]
pub struct Record<'a> {
    /// Stream sequence.
    pub seq: u64,
    /// When the stream stored it.
    pub time: OffsetDateTime,
    /// Its subject (`<stream>.keys.<key id>`).
    pub subject: &'a str,
    /// Its bytes.
    pub payload: &'a [u8],
}

/// Something wrong with the history, at a stream sequence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The first sequence concerned.
    pub seq: u64,
    /// What is wrong.
    pub problem: String,
}

/// One event of a key's timeline, for people: what changed, who, when, from where.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct HistoryEntry {
    /// Stream sequence of the message that holds it.
    pub seq: u64,
    /// When the stream stored it.
    #[serde(with = "time::serde::rfc3339")]
    pub stored_at: OffsetDateTime,
    /// The key.
    pub key_id: KeyId,
    /// The event type, or `Untrusted` for a message that failed verification.
    #[serde(rename = "type")]
    pub kind: String,
    /// What changed, in words a person reads (never the key's hash).
    pub change: String,
    /// When admin decided it (absent for untrusted messages).
    #[serde(with = "time::serde::rfc3339::option")]
    pub at: Option<OffsetDateTime>,
    /// Who.
    pub actor: Option<Actor>,
    /// From where.
    pub origin: Option<Origin>,
    /// In which request.
    pub request_id: Option<RequestId>,
    /// The event's hash (its link in the chain).
    pub hash: Option<EventHash>,
}

impl HistoryEntry {
    /// The entry for one event stored at `seq`.
    pub fn of_event(
        seq: u64,
        stored_at: OffsetDateTime,
        event: &keyledger_events::Event,
        hash: Option<EventHash>,
    ) -> Self {
        Self {
            seq,
            stored_at,
            key_id: event.key_id,
            kind: event.change.type_name().to_owned(),
            change: describe(&event.change),
            at: Some(event.at),
            actor: Some(event.actor.clone()),
            origin: Some(event.origin.clone()),
            request_id: Some(event.request_id.clone()),
            hash,
        }
    }

    /// The entry for a message about `key` that could not be trusted or read.
    pub fn untrusted(seq: u64, stored_at: OffsetDateTime, key: KeyId, reason: &str) -> Self {
        Self {
            seq,
            stored_at,
            key_id: key,
            kind: "Untrusted".into(),
            change: reason.to_owned(),
            at: None,
            actor: None,
            origin: None,
            request_id: None,
            hash: None,
        }
    }
}

/// A key's state at some point of the history.
#[allow(clippy::struct_excessive_bools)] // the flags an auditor reads, as the API shows them
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeyAt {
    /// The key.
    pub id: KeyId,
    /// Public prefix.
    pub prefix: Prefix,
    /// Name.
    pub name: String,
    /// Read-only scope.
    pub read_only: bool,
    /// Enabled.
    pub enabled: bool,
    /// Removed for good.
    pub removed: bool,
    /// An admin key.
    pub admin: bool,
    /// Stream sequence of its last event (up to the point asked about).
    pub last_seq: u64,
    /// Set when a message about it could not be trusted or read: it fails closed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub untrusted: Option<String>,
    #[serde(skip)]
    hash: KeyHash,
}

/// Where to stop a replay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cut {
    /// Everything stored at or before this sequence.
    Seq(u64),
    /// Everything the stream stored at or before this time.
    Time(OffsetDateTime),
    /// Everything.
    End,
}

impl Cut {
    fn includes(&self, record: &Record<'_>) -> bool {
        match self {
            Self::Seq(seq) => record.seq <= *seq,
            Self::Time(t) => record.time <= *t,
            Self::End => true,
        }
    }
}

/// Walks a history in stream order: verifies it, folds it into key states
/// and keeps each key's timeline.
#[derive(Debug)]
pub struct Audit {
    chain: Chain,
    cut: Cut,
    last_seq: u64,
    last_trusted: Option<(u64, EventHash)>,
    findings: Vec<Finding>,
    keys: BTreeMap<KeyId, KeyAt>,
    timelines: Option<BTreeMap<KeyId, Vec<HistoryEntry>>>,
    messages: u64,
    events: u64,
    seen_at: BTreeMap<u64, EventHash>,
    watch: Option<u64>,
    stopped: bool,
    replayed_to: u64,
}

/// A summary of a walk, as `verify` prints it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Messages walked.
    pub messages: u64,
    /// Events in trusted messages.
    pub events: u64,
    /// The last trusted message's sequence and the chain's tip (`SEQ:HASH`).
    pub head: Option<String>,
    /// Problems, in stream order.
    pub findings: Vec<Finding>,
}

impl Audit {
    /// An audit trusting `anchor` as the first signer. `cut` stops the fold
    /// (and the timelines) at a point; verification always covers what is fed.
    pub fn new(anchor: PublicKey, cut: Cut) -> Self {
        Self {
            chain: Chain::new(anchor),
            cut,
            last_seq: 0,
            last_trusted: None,
            findings: Vec::new(),
            keys: BTreeMap::new(),
            timelines: None,
            messages: 0,
            events: 0,
            seen_at: BTreeMap::new(),
            watch: None,
            stopped: false,
            replayed_to: 0,
        }
    }

    /// Also keep every key's timeline (for `history` and `lookup`).
    #[must_use]
    pub fn with_timelines(mut self) -> Self {
        self.timelines = Some(BTreeMap::new());
        self
    }

    /// Remember the chain hash at `seq`, to compare with an expected head.
    #[must_use]
    pub fn watching(mut self, seq: u64) -> Self {
        self.watch = Some(seq);
        self
    }

    /// Feeds the next stored message.
    pub fn feed(&mut self, record: &Record<'_>) {
        self.messages += 1;
        if record.seq <= self.last_seq {
            self.findings.push(Finding {
                seq: record.seq,
                problem: format!(
                    "out of order: sequence {} after {}",
                    record.seq, self.last_seq
                ),
            });
            return;
        }
        if record.seq > self.last_seq + 1 {
            let (from, to) = (self.last_seq + 1, record.seq - 1);
            self.findings.push(Finding {
                seq: from,
                problem: if from == to {
                    format!("message {from} is missing (deleted or purged)")
                } else {
                    format!("messages {from} to {to} are missing (deleted or purged)")
                },
            });
        }
        self.last_seq = record.seq;
        if !self.stopped && !self.cut.includes(record) {
            self.stopped = true;
        }
        if !self.stopped {
            self.replayed_to = record.seq;
        }
        let subject_key = record
            .subject
            .rsplit('.')
            .next()
            .and_then(|t| t.parse::<KeyId>().ok());
        match self.chain.verify(record.seq, record.payload) {
            Ok(verified) => {
                let links = verified.links;
                self.last_trusted = links.last().map(|l| (record.seq, l.hash));
                if let Some(last) = links.last()
                    && self.watch == Some(record.seq)
                {
                    self.seen_at.insert(record.seq, last.hash);
                }
                match Commit::from_values(verified.values) {
                    Ok(commit) if Some(commit.key_id()) == subject_key => {
                        self.events += commit.events().len() as u64;
                        if !self.stopped {
                            let hashes: Vec<EventHash> = links.iter().map(|l| l.hash).collect();
                            self.apply(record, &commit, &hashes);
                        }
                    }
                    Ok(commit) => {
                        let reason = format!(
                            "event for key {} stored under subject {}",
                            commit.key_id(),
                            record.subject
                        );
                        self.untrusted(record, &[Some(commit.key_id()), subject_key], &reason);
                    }
                    Err(e) => {
                        // Signed by admin, of a type or version this build does not know.
                        let reason = format!("cannot read: {e}");
                        self.untrusted(record, &[subject_key], &reason);
                    }
                }
            }
            Err(e) => {
                let reason = format!("untrusted: {e}");
                let payload_key = Commit::decode(record.payload).ok().map(|c| c.key_id());
                self.untrusted(record, &[subject_key, payload_key], &reason);
            }
        }
    }

    fn untrusted(&mut self, record: &Record<'_>, keys: &[Option<KeyId>], reason: &str) {
        self.findings.push(Finding {
            seq: record.seq,
            problem: reason.to_owned(),
        });
        if self.stopped {
            return;
        }
        let mut named: Vec<KeyId> = keys.iter().flatten().copied().collect();
        named.dedup();
        for key in named {
            if let Some(k) = self.keys.get_mut(&key) {
                k.untrusted
                    .get_or_insert_with(|| format!("message {}: {reason}", record.seq));
                k.last_seq = record.seq;
            }
            if let Some(t) = self.timelines.as_mut() {
                t.entry(key).or_default().push(HistoryEntry::untrusted(
                    record.seq,
                    record.time,
                    key,
                    reason,
                ));
            }
        }
    }

    fn apply(&mut self, record: &Record<'_>, commit: &Commit, hashes: &[EventHash]) {
        let id = commit.key_id();
        for (event, hash) in commit.events().iter().zip(hashes) {
            match (&event.change, self.keys.get_mut(&id)) {
                (
                    Change::Created {
                        name,
                        prefix,
                        hash,
                        read_only,
                        admin,
                    },
                    None,
                ) => {
                    self.keys.insert(
                        id,
                        KeyAt {
                            id,
                            prefix: prefix.clone(),
                            name: name.as_str().to_owned(),
                            read_only: *read_only,
                            enabled: true,
                            removed: false,
                            admin: *admin,
                            last_seq: record.seq,
                            untrusted: None,
                            hash: *hash,
                        },
                    );
                }
                (change, Some(key))
                    if !key.removed && !matches!(change, Change::Created { .. }) =>
                {
                    match change {
                        Change::Renamed { name } => name.as_str().clone_into(&mut key.name),
                        Change::ScopeChanged { read_only } => key.read_only = *read_only,
                        Change::Disabled => key.enabled = false,
                        Change::Enabled => key.enabled = true,
                        Change::Removed => key.removed = true,
                        Change::Created { .. } => {}
                    }
                    key.last_seq = record.seq;
                }
                (change, key) => {
                    let problem = format!("{} does not fit the key's history", change.type_name());
                    self.findings.push(Finding {
                        seq: record.seq,
                        problem: problem.clone(),
                    });
                    if let Some(key) = key {
                        key.untrusted.get_or_insert(problem);
                    }
                }
            }
            if let Some(t) = self.timelines.as_mut() {
                t.entry(id).or_default().push(HistoryEntry::of_event(
                    record.seq,
                    record.time,
                    event,
                    Some(*hash),
                ));
            }
        }
    }

    /// What the walk found: counts, head and problems.
    pub fn summary(&self) -> Summary {
        Summary {
            messages: self.messages,
            events: self.events,
            head: self.last_trusted.map(|(seq, hash)| format!("{seq}:{hash}")),
            findings: self.findings.clone(),
        }
    }

    /// Checks an expected head `SEQ:HASH` recorded earlier: the history must
    /// still hold that very event at that sequence. Returns the problem if not.
    pub fn check_head(&self, seq: u64, hash: &EventHash) -> Option<Finding> {
        match self.seen_at.get(&seq) {
            Some(seen) if seen == hash => None,
            Some(seen) => Some(Finding {
                seq,
                problem: format!(
                    "history was rewritten: message {seq} ends in {seen}, expected {hash}"
                ),
            }),
            None if self.last_seq < seq => Some(Finding {
                seq: self.last_seq + 1,
                problem: format!(
                    "history was truncated: it ends at {}, expected at least {seq}",
                    self.last_seq
                ),
            }),
            None => Some(Finding {
                seq,
                problem: format!("message {seq} is not a trusted message any more"),
            }),
        }
    }

    /// The last sequence the fold took in (the point the state is "as of").
    pub fn replayed_to(&self) -> u64 {
        self.replayed_to
    }

    /// The last sequence fed.
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Every key as it stood at the cut, in key id order.
    pub fn keys(&self) -> impl Iterator<Item = &KeyAt> {
        self.keys.values()
    }

    /// Keys whose id is `query`, or whose prefix starts with it.
    pub fn find(&self, query: &str) -> Vec<&KeyAt> {
        if let Ok(id) = query.parse::<KeyId>() {
            return self.keys.get(&id).into_iter().collect();
        }
        self.keys
            .values()
            .filter(|k| !query.is_empty() && k.prefix.as_str().starts_with(query))
            .collect()
    }

    /// The key with this hash (a leaked key's), if it was ever created.
    pub fn by_hash(&self, hash: &KeyHash) -> Option<&KeyAt> {
        self.keys.values().find(|k| k.hash == *hash)
    }

    /// A key's timeline, in stream order (kept only [`Audit::with_timelines`]).
    pub fn history(&self, id: &KeyId) -> &[HistoryEntry] {
        self.timelines
            .as_ref()
            .and_then(|t| t.get(id))
            .map_or(&[], Vec::as_slice)
    }
}

/// Whether a key granted an access at the cut, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Validity {
    /// The answer.
    pub valid: bool,
    /// Why, in words.
    pub reason: String,
}

/// Decides, like a node would have, whether `key` (as it stood) granted `access`.
pub fn validity(key: Option<&KeyAt>, access: Access) -> Validity {
    let no = |reason: String| Validity {
        valid: false,
        reason,
    };
    let Some(key) = key else {
        return no("the key did not exist yet".into());
    };
    if let Some(why) = &key.untrusted {
        return no(format!(
            "its history holds a message that cannot be trusted ({why}); it failed closed"
        ));
    }
    if key.removed {
        return no(format!("it had been removed (message {})", key.last_seq));
    }
    if !key.enabled {
        return no(format!("it was disabled (as of message {})", key.last_seq));
    }
    if key.admin {
        return no("it is an admin key, which API nodes never accept".into());
    }
    if key.read_only && access == Access::Write {
        return no(format!(
            "it was read-only (as of message {}), and the method writes",
            key.last_seq
        ));
    }
    Validity {
        valid: true,
        reason: format!(
            "it existed, was enabled and {} (as of message {})",
            if key.read_only {
                "read-only"
            } else {
                "read-write"
            },
            key.last_seq
        ),
    }
}

fn describe(change: &Change) -> String {
    match change {
        Change::Created {
            name,
            prefix,
            read_only,
            admin,
            ..
        } => format!(
            "created {}{} key \"{}\" with prefix {}",
            if *read_only {
                "read-only"
            } else {
                "read-write"
            },
            if *admin { " admin" } else { "" },
            name.as_str(),
            prefix.as_str()
        ),
        // Names hold no control characters, so they are shown as they are
        // (a Debug rendering would turn an emoji's variation selector into `\u{fe0f}`).
        Change::Renamed { name } => format!("renamed to \"{}\"", name.as_str()),
        Change::ScopeChanged { read_only: true } => "made read-only".into(),
        Change::ScopeChanged { read_only: false } => "made read-write".into(),
        Change::Disabled => "disabled".into(),
        Change::Enabled => "enabled".into(),
        Change::Removed => "removed".into(),
    }
}

#[cfg(test)]
mod tests {
    use keyledger_events::{ApiKey, KeyName, SigningKey};
    use time::macros::datetime;

    use super::*;
    use crate::test_commits::commit;

    struct History {
        key: SigningKey,
        messages: Vec<(u64, OffsetDateTime, String, Vec<u8>)>,
        chain: Chain,
    }

    impl History {
        fn new() -> Self {
            let key = SigningKey::generate().unwrap();
            let chain = Chain::new(key.public_key());
            Self {
                key,
                messages: Vec::new(),
                chain,
            }
        }

        fn push(&mut self, id: KeyId, changes: Vec<Change>) {
            let seq = self.messages.len() as u64 + 1;
            let signed = self
                .chain
                .sign(&commit(id, changes), &self.key, None)
                .unwrap();
            self.chain.accept(seq, &signed);
            let time = datetime!(2026-12-01 10:00 UTC)
                + time::Duration::hours(i64::try_from(seq).unwrap());
            self.messages
                .push((seq, time, format!("KEYLEDGER.keys.{id}"), signed.bytes));
        }

        fn audit(&self, cut: Cut) -> Audit {
            let mut audit = Audit::new(self.key.public_key(), cut).with_timelines();
            for (seq, time, subject, payload) in &self.messages {
                audit.feed(&Record {
                    seq: *seq,
                    time: *time,
                    subject,
                    payload,
                });
            }
            audit
        }
    }

    fn id(n: u8) -> KeyId {
        KeyId::from_parts(1, [n; 10])
    }

    fn created(key: &ApiKey) -> Change {
        Change::Created {
            name: KeyName::parse("ci").unwrap(),
            prefix: key.prefix(),
            hash: key.hash(),
            read_only: true,
            admin: false,
        }
    }

    /// create, rename + read-write, disable, enable, remove: seqs 1..=5.
    fn scripted() -> (History, ApiKey) {
        let key = ApiKey::generate().unwrap();
        let mut h = History::new();
        h.push(id(1), vec![created(&key)]);
        h.push(
            id(1),
            vec![
                Change::Renamed {
                    name: KeyName::parse("deploy").unwrap(),
                },
                Change::ScopeChanged { read_only: false },
            ],
        );
        h.push(id(1), vec![Change::Disabled]);
        h.push(id(1), vec![Change::Enabled]);
        h.push(id(1), vec![Change::Removed]);
        (h, key)
    }

    #[test]
    fn a_clean_history_has_no_findings_and_a_head() {
        let (h, _) = scripted();
        let audit = h.audit(Cut::End);
        let summary = audit.summary();
        assert!(summary.findings.is_empty(), "{:?}", summary.findings);
        assert_eq!(summary.events, 6);
        assert!(summary.head.unwrap().starts_with("5:"));
    }

    #[test]
    fn point_in_time_answers_follow_the_script() {
        let (h, key) = scripted();
        let expect = [
            (0, false, false),
            (1, true, false),
            (2, true, true),
            (3, false, false),
            (4, true, true),
            (5, false, false),
        ];
        for (seq, read, write) in expect {
            let audit = h.audit(Cut::Seq(seq));
            let k = audit.by_hash(&key.hash());
            assert_eq!(validity(k, Access::Read).valid, read, "read at {seq}");
            assert_eq!(validity(k, Access::Write).valid, write, "write at {seq}");
        }
        // By time: message n was stored at 10:00 + n hours.
        let audit = h.audit(Cut::Time(datetime!(2026-12-01 13:30 UTC)));
        let k = audit.find(&id(1).to_string())[0];
        assert!(!k.enabled);
        assert_eq!(k.name, "deploy");
    }

    #[test]
    fn the_same_history_replays_to_byte_identical_state() {
        let (h, _) = scripted();
        let a = serde_json::to_vec(&h.audit(Cut::End).keys().collect::<Vec<_>>()).unwrap();
        let b = serde_json::to_vec(&h.audit(Cut::End).keys().collect::<Vec<_>>()).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn gaps_and_tampering_name_the_sequence() {
        let (mut h, _) = scripted();
        // Delete message 3.
        h.messages.remove(2);
        let findings = h.audit(Cut::End).summary().findings;
        assert_eq!(findings[0].seq, 3, "{findings:?}");
        assert!(findings[0].problem.contains("missing"));
        // Message 4 no longer links.
        assert_eq!(findings[1].seq, 4);

        let (mut h, _) = scripted();
        let text = String::from_utf8(h.messages[1].3.clone()).unwrap();
        h.messages[1].3 = text.replace("deploy", "deplox").into_bytes();
        let findings = h.audit(Cut::End).summary().findings;
        assert_eq!(findings[0].seq, 2, "{findings:?}");
        assert!(findings[0].problem.contains("modified"));
    }

    #[test]
    fn an_expected_head_catches_truncation_and_rewrites() {
        let (h, _) = scripted();
        let full = h.audit(Cut::End);
        let head = full.summary().head.unwrap();
        let (seq, hash) = head.split_once(':').unwrap();
        let (seq, hash): (u64, _) = (seq.parse().unwrap(), EventHash::from_hex(hash).unwrap());
        let mut watched = Audit::new(h.key.public_key(), Cut::End).watching(seq);
        for (s, time, subject, payload) in &h.messages {
            watched.feed(&Record {
                seq: *s,
                time: *time,
                subject,
                payload,
            });
        }
        assert_eq!(watched.check_head(seq, &hash), None);
        // Truncated to 3 messages.
        let mut short = Audit::new(h.key.public_key(), Cut::End).watching(seq);
        for (s, time, subject, payload) in &h.messages[..3] {
            short.feed(&Record {
                seq: *s,
                time: *time,
                subject,
                payload,
            });
        }
        assert!(
            short
                .check_head(seq, &hash)
                .unwrap()
                .problem
                .contains("truncated")
        );
    }

    #[test]
    fn timelines_name_who_and_when() {
        let (h, _) = scripted();
        let audit = h.audit(Cut::End);
        let history = audit.history(&id(1));
        let kinds: Vec<&str> = history.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "Created",
                "Renamed",
                "ScopeChanged",
                "Disabled",
                "Enabled",
                "Removed"
            ]
        );
        assert_eq!(history[1].seq, 2);
        assert_eq!(history[0].actor, Some(Actor::Bootstrap));
    }
}
