//! The hash chain and the signatures that make the history tamper-evident.
//!
//! Every event (schema version 2 on) carries:
//!
//! - `prev`: the `hash` of the event before it in the stream (all zeros for
//!   the first event), so the events form one chain in stream order;
//! - `signer`: the public key that signed it;
//! - `next_signer` (optional): announces the key that signs every later event;
//! - `hash`: `SHA3-256("keyledger/event/v2\n" || canonical(event))`, where
//!   `canonical(event)` is the [canonical JSON](crate::canonical) of the stored
//!   event object without its `hash` and `sig` members (so it covers `prev`,
//!   `signer` and `next_signer`);
//! - `sig`: the Ed25519 signature of `"keyledger/signature/v2\n" || hash`
//!   (the 32 raw hash bytes), strict verification.
//!
//! All four values are lowercase hex. Trust starts from one anchor public key
//! (the first signer) and follows `next_signer` announcements.
//!
//! A message that fails any check leaves the chain where it was: the next
//! trusted event must link to the last trusted one. Deleted, reordered,
//! replayed or forged messages therefore show up as the first sequence whose
//! event does not link, hash or verify.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use sha3::{Digest, Sha3_256};

use crate::commit::WireCommit;
use crate::{Commit, PublicKey, SigningKey, canonical, hex};

const HASH_DOMAIN: &[u8] = b"keyledger/event/v2\n";
const SIGNATURE_DOMAIN: &[u8] = b"keyledger/signature/v2\n";

/// The hash of one event: a link of the chain.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct EventHash([u8; 32]);

impl EventHash {
    /// What the first event's `prev` holds.
    pub const GENESIS: Self = Self([0; 32]);

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(&self.0)
    }

    /// Parses 64 lowercase hex characters.
    pub fn from_hex(s: &str) -> Option<Self> {
        hex::decode::<32>(s).map(Self)
    }
}

impl fmt::Display for EventHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for EventHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventHash({})", self.to_hex())
    }
}

impl Serialize for EventHash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for EventHash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::from_hex(&s).ok_or_else(|| serde::de::Error::custom("a hash is 64 lowercase hex"))
    }
}

/// One verified event's place in the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    /// The hash of the event before it.
    pub prev: EventHash,
    /// Its own hash.
    pub hash: EventHash,
    /// The key that signed it.
    pub signer: PublicKey,
    /// The key it announced for every later event, if any.
    pub next_signer: Option<PublicKey>,
}

/// Why a stored message is not part of the trusted chain. `index` is the
/// position of the offending event inside the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// Not `{"events":[{…}, …]}`.
    #[error("not a keyledger commit: {0}")]
    Malformed(String),
    /// No chain fields: a version 1 event, or something written without the admin service.
    #[error("event {index} is not signed (written before signing, or not by keyledger admin)")]
    Unsigned {
        /// Event index in the message.
        index: usize,
    },
    /// A chain field is not of its documented form.
    #[error("event {index} has a malformed {field}")]
    BadField {
        /// Event index in the message.
        index: usize,
        /// The field.
        field: &'static str,
    },
    /// The stored content does not hash to the stored `hash`: it was modified.
    #[error("event {index} was modified: its content does not match its hash")]
    Modified {
        /// Event index in the message.
        index: usize,
    },
    /// Signed by a key that is not the chain's current signer.
    #[error("event {index} is signed by {signer}, not by the current signing key {expected}")]
    UnknownSigner {
        /// Event index in the message.
        index: usize,
        /// The key it names (hex).
        signer: String,
        /// The key that should have signed (hex).
        expected: String,
    },
    /// The signature does not verify: a forgery.
    #[error("event {index} has an invalid signature (forged)")]
    BadSignature {
        /// Event index in the message.
        index: usize,
    },
    /// Well signed, but it does not follow the last trusted event: an event
    /// before it was deleted, or it was reordered or replayed.
    #[error(
        "event {index} does not follow the last trusted event (its prev is {found}, expected {expected}): deleted, reordered or replayed history"
    )]
    Unlinked {
        /// Event index in the message.
        index: usize,
        /// The hash it should have linked to.
        expected: EventHash,
        /// The hash it links to.
        found: EventHash,
    },
}

/// A message that verified: its parsed events and their links.
#[derive(Clone, Debug)]
pub struct Verified {
    /// The stored event objects, for [`Commit::from_values`].
    pub values: Vec<Value>,
    /// Each event's link, in order.
    pub links: Vec<Link>,
}

/// A commit signed onto the chain, ready to append.
#[derive(Clone, Debug)]
pub struct Signed {
    /// The message bytes.
    pub bytes: Vec<u8>,
    /// Its events' links.
    pub links: Vec<Link>,
}

/// The trusted end of the chain: what the next event must link to, and who
/// must have signed it.
#[derive(Clone, Debug)]
pub struct Chain {
    position: u64,
    tip: EventHash,
    signer: PublicKey,
    trusted_events: u64,
    refused: u64,
    last_refused: Option<(u64, String)>,
}

impl Chain {
    /// A chain that has seen nothing, trusting `anchor` as the first signer.
    pub fn new(anchor: PublicKey) -> Self {
        Self {
            position: 0,
            tip: EventHash::GENESIS,
            signer: anchor,
            trusted_events: 0,
            refused: 0,
            last_refused: None,
        }
    }

    /// A chain that continues from a known point: the last trusted event's
    /// hash at stream sequence `position`, with `signer` to sign next. For
    /// tools that pick up where a verified history ends.
    pub fn resume(position: u64, tip: EventHash, signer: PublicKey) -> Self {
        Self {
            position,
            tip,
            ..Self::new(signer)
        }
    }

    /// The stream sequence of the last message checked (trusted or not).
    pub fn position(&self) -> u64 {
        self.position
    }

    /// The hash of the last trusted event.
    pub fn tip(&self) -> EventHash {
        self.tip
    }

    /// The key that must sign the next event.
    pub fn signer(&self) -> PublicKey {
        self.signer
    }

    /// How many events have been trusted.
    pub fn trusted_events(&self) -> u64 {
        self.trusted_events
    }

    /// How many messages failed verification, and the last one that did.
    pub fn refused(&self) -> (u64, Option<&(u64, String)>) {
        (self.refused, self.last_refused.as_ref())
    }

    /// Checks the message stored at `seq`. When every event in it hashes,
    /// verifies and links, the chain moves past it and its events are returned.
    /// Otherwise the chain only records that `seq` was seen (and counts the
    /// refusal): the next trusted event must still link to the last trusted one.
    pub fn verify(&mut self, seq: u64, payload: &[u8]) -> Result<Verified, ChainError> {
        self.position = self.position.max(seq);
        let outcome = self.check(payload);
        if let Err(e) = &outcome {
            self.refused += 1;
            self.last_refused = Some((seq, e.to_string()));
        }
        outcome
    }

    fn check(&mut self, payload: &[u8]) -> Result<Verified, ChainError> {
        let wire: WireCommit =
            serde_json::from_slice(payload).map_err(|e| ChainError::Malformed(e.to_string()))?;
        if wire.events.is_empty() {
            return Err(ChainError::Malformed("no events".into()));
        }
        let mut tip = self.tip;
        let mut signer = self.signer;
        let mut links = Vec::with_capacity(wire.events.len());
        for (index, value) in wire.events.iter().enumerate() {
            let link = check_event(index, value, tip, signer)?;
            tip = link.hash;
            if let Some(next) = link.next_signer {
                signer = next;
            }
            links.push(link);
        }
        self.tip = tip;
        self.signer = signer;
        self.trusted_events += links.len() as u64;
        Ok(Verified {
            values: wire.events,
            links,
        })
    }

    /// Records that `seq` was passed over without being trusted (an operator
    /// acknowledged it). The chain's tip does not move.
    pub fn pass(&mut self, seq: u64) {
        self.position = self.position.max(seq);
    }

    /// Links and signs `commit` onto the current tip with `key`. When `next`
    /// is given (key rotation), the first event announces its public key and
    /// every later event, in this commit and after, is signed with it. The
    /// chain itself does not move: call [`Chain::accept`] once the message is
    /// stored.
    pub fn sign(
        &self,
        commit: &Commit,
        key: &SigningKey,
        next: Option<&SigningKey>,
    ) -> Result<Signed, SignError> {
        self.sign_values(commit.wire_values(), key, next)
    }

    /// [`Chain::sign`] for event objects given as JSON: links and signs each
    /// as it stands. The admin service signs only what it decided; this is
    /// for tools and tests (e.g. an event of a type this build does not know).
    pub fn sign_values(
        &self,
        mut values: Vec<Value>,
        key: &SigningKey,
        next: Option<&SigningKey>,
    ) -> Result<Signed, SignError> {
        let announce = next.map(SigningKey::public_key);
        let mut signer = self.signer;
        if key.public_key() != signer {
            return Err(SignError::NotTheSigner {
                expected: signer.to_hex(),
            });
        }
        let mut key = key;
        let mut prev = self.tip;
        let mut links = Vec::new();
        for (index, value) in values.iter_mut().enumerate() {
            let Value::Object(map) = value else {
                return Err(SignError::NotAnObject { index });
            };
            let next_signer = announce.filter(|_| index == 0);
            map.insert("prev".into(), Value::String(prev.to_hex()));
            map.insert("signer".into(), Value::String(signer.to_hex()));
            if let Some(next) = next_signer {
                map.insert("next_signer".into(), Value::String(next.to_hex()));
            }
            map.remove("hash");
            map.remove("sig");
            let hash = hash_of(value);
            let sig = key.sign(&signature_message(&hash));
            if let Value::Object(map) = value {
                map.insert("hash".into(), Value::String(hash.to_hex()));
                map.insert("sig".into(), Value::String(hex::encode(&sig)));
            }
            links.push(Link {
                prev,
                hash,
                signer,
                next_signer,
            });
            prev = hash;
            if let Some(next) = next_signer {
                signer = next;
            }
            if let Some(next) = next.filter(|_| index == 0) {
                key = next;
            }
        }
        let bytes = serde_json::to_vec(&WireCommit { events: values })
            .expect("a commit serialises to JSON");
        Ok(Signed { bytes, links })
    }

    /// Moves the chain past a message this process signed and stored at `seq`.
    pub fn accept(&mut self, seq: u64, signed: &Signed) {
        if seq <= self.position {
            return;
        }
        self.position = seq;
        for link in &signed.links {
            self.tip = link.hash;
            if let Some(next) = link.next_signer {
                self.signer = next;
            }
        }
        self.trusted_events += signed.links.len() as u64;
    }
}

/// Why a commit cannot be signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// This process's key is not the chain's current signer.
    #[error("this signing key is not the chain's current signer ({expected})")]
    NotTheSigner {
        /// The key the chain expects (hex).
        expected: String,
    },
    /// An event given as JSON is not an object.
    #[error("event {index} is not a JSON object")]
    NotAnObject {
        /// Event index.
        index: usize,
    },
}

fn hash_of(event_without_hash_and_sig: &Value) -> EventHash {
    let mut bytes = HASH_DOMAIN.to_vec();
    canonical::write(event_without_hash_and_sig, &mut bytes);
    EventHash(Sha3_256::digest(&bytes).into())
}

fn signature_message(hash: &EventHash) -> Vec<u8> {
    let mut message = SIGNATURE_DOMAIN.to_vec();
    message.extend_from_slice(&hash.0);
    message
}

fn check_event(
    index: usize,
    value: &Value,
    tip: EventHash,
    signer: PublicKey,
) -> Result<Link, ChainError> {
    let Value::Object(map) = value else {
        return Err(ChainError::Malformed(format!(
            "event {index} is not an object"
        )));
    };
    if !map.contains_key("hash") && !map.contains_key("sig") {
        return Err(ChainError::Unsigned { index });
    }
    let text = |field: &'static str| {
        map.get(field)
            .and_then(Value::as_str)
            .ok_or(ChainError::BadField { index, field })
    };
    let hash = EventHash::from_hex(text("hash")?).ok_or(ChainError::BadField {
        index,
        field: "hash",
    })?;
    let prev = EventHash::from_hex(text("prev")?).ok_or(ChainError::BadField {
        index,
        field: "prev",
    })?;
    let named = PublicKey::from_hex(text("signer")?).map_err(|_| ChainError::BadField {
        index,
        field: "signer",
    })?;
    let sig = hex::decode::<64>(text("sig")?).ok_or(ChainError::BadField {
        index,
        field: "sig",
    })?;
    let next_signer = match map.get("next_signer") {
        None => None,
        Some(v) => Some(v.as_str().and_then(|s| PublicKey::from_hex(s).ok()).ok_or(
            ChainError::BadField {
                index,
                field: "next_signer",
            },
        )?),
    };
    let mut unsealed = map.clone();
    unsealed.remove("hash");
    unsealed.remove("sig");
    if hash_of(&Value::Object(unsealed)) != hash {
        return Err(ChainError::Modified { index });
    }
    if named != signer {
        return Err(ChainError::UnknownSigner {
            index,
            signer: named.to_hex(),
            expected: signer.to_hex(),
        });
    }
    if !signer.verifies(&signature_message(&hash), &sig) {
        return Err(ChainError::BadSignature { index });
    }
    if prev != tip {
        return Err(ChainError::Unlinked {
            index,
            expected: tip,
            found: prev,
        });
    }
    Ok(Link {
        prev,
        hash,
        signer,
        next_signer,
    })
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::{Actor, ApiKey, Change, Event, EventId, KeyId, KeyName, Origin, RequestId};

    fn commit(n: u8, change: Change) -> Commit {
        Commit::new(vec![Event {
            event_id: EventId::from_parts(1_700_000_000_000, [n; 10]),
            key_id: KeyId::from_parts(1_700_000_000_000, [7; 10]),
            at: datetime!(2026-12-01 10:00:00 UTC),
            actor: Actor::Bootstrap,
            request_id: "req".parse::<RequestId>().unwrap(),
            origin: Origin::default(),
            change,
        }])
        .unwrap()
    }

    fn created() -> Commit {
        let key = ApiKey::generate().unwrap();
        commit(
            1,
            Change::Created {
                name: KeyName::parse("ci").unwrap(),
                prefix: key.prefix(),
                hash: key.hash(),
                read_only: true,
                admin: false,
            },
        )
    }

    /// Signs three commits onto a fresh chain and returns their bytes.
    fn history(key: &SigningKey) -> Vec<Vec<u8>> {
        let mut writer = Chain::new(key.public_key());
        let mut out = Vec::new();
        for (seq, c) in [
            created(),
            commit(2, Change::Disabled),
            commit(3, Change::Enabled),
        ]
        .iter()
        .enumerate()
        {
            let signed = writer.sign(c, key, None).unwrap();
            writer.accept(seq as u64 + 1, &signed);
            out.push(signed.bytes);
        }
        out
    }

    #[test]
    fn a_signed_history_verifies_and_decodes() {
        let key = SigningKey::generate().unwrap();
        let mut reader = Chain::new(key.public_key());
        for (i, bytes) in history(&key).iter().enumerate() {
            let verified = reader.verify(i as u64 + 1, bytes).unwrap();
            Commit::from_values(verified.values).unwrap();
        }
        assert_eq!(reader.trusted_events(), 3);
        assert_eq!(reader.position(), 3);
    }

    #[test]
    fn a_modified_field_is_caught_by_the_hash() {
        let key = SigningKey::generate().unwrap();
        let h = history(&key);
        let mut reader = Chain::new(key.public_key());
        let tampered = String::from_utf8(h[0].clone())
            .unwrap()
            .replace(r#""read_only":true"#, r#""read_only":false"#);
        assert_eq!(
            reader.verify(1, tampered.as_bytes()).unwrap_err(),
            ChainError::Modified { index: 0 }
        );
    }

    #[test]
    fn a_deleted_message_breaks_the_link_of_the_next() {
        let key = SigningKey::generate().unwrap();
        let h = history(&key);
        let mut reader = Chain::new(key.public_key());
        reader.verify(1, &h[0]).unwrap();
        assert!(matches!(
            reader.verify(3, &h[2]),
            Err(ChainError::Unlinked { index: 0, .. })
        ));
        // And replaying an old message is caught the same way.
        reader.verify(2, &h[1]).unwrap();
        reader.verify(3, &h[2]).unwrap();
        assert!(matches!(
            reader.verify(4, &h[1]),
            Err(ChainError::Unlinked { .. })
        ));
    }

    #[test]
    fn a_forged_event_with_a_valid_looking_chain_is_refused_and_the_chain_stays_put() {
        let key = SigningKey::generate().unwrap();
        let impostor = SigningKey::generate().unwrap();
        let h = history(&key);
        let mut reader = Chain::new(key.public_key());
        reader.verify(1, &h[0]).unwrap();
        // The impostor links properly and names the real signer, but cannot sign as it.
        let mut fake = Chain::new(impostor.public_key());
        fake.tip = reader.tip();
        let forged = fake
            .sign(&commit(9, Change::Enabled), &impostor, None)
            .unwrap();
        let text = String::from_utf8(forged.bytes)
            .unwrap()
            .replace(&impostor.public_key().to_hex(), &key.public_key().to_hex());
        assert!(matches!(
            reader.verify(2, text.as_bytes()),
            Err(ChainError::Modified { .. } | ChainError::BadSignature { .. })
        ));
        // Unaltered, it is signed by an unknown key.
        let forged = fake
            .sign(&commit(9, Change::Enabled), &impostor, None)
            .unwrap();
        assert!(matches!(
            reader.verify(2, &forged.bytes),
            Err(ChainError::UnknownSigner { .. })
        ));
        // The real next event still links to the last trusted one.
        reader.verify(3, &h[1]).unwrap();
    }

    #[test]
    fn unsigned_and_malformed_messages_are_refused() {
        let key = SigningKey::generate().unwrap();
        let mut reader = Chain::new(key.public_key());
        assert_eq!(
            reader.verify(1, &created().encode_unsigned()).unwrap_err(),
            ChainError::Unsigned { index: 0 }
        );
        assert!(matches!(
            reader.verify(2, b"garbage"),
            Err(ChainError::Malformed(_))
        ));
        assert_eq!(reader.position(), 2);
        assert_eq!(reader.tip(), EventHash::GENESIS);
    }

    #[test]
    fn a_rotation_hands_signing_to_the_announced_key() {
        let old = SigningKey::generate().unwrap();
        let new = SigningKey::generate().unwrap();
        let mut writer = Chain::new(old.public_key());
        let first = writer.sign(&created(), &old, Some(&new)).unwrap();
        writer.accept(1, &first);
        assert_eq!(writer.signer(), new.public_key());
        assert!(
            writer
                .sign(&commit(2, Change::Disabled), &old, None)
                .is_err()
        );
        let second = writer
            .sign(&commit(2, Change::Disabled), &new, None)
            .unwrap();

        let mut reader = Chain::new(old.public_key());
        reader.verify(1, &first.bytes).unwrap();
        reader.verify(2, &second.bytes).unwrap();
        assert_eq!(reader.signer(), new.public_key());
        // An event still signed by the old key after the rotation is refused.
        let mut stale = Chain::new(old.public_key());
        stale.tip = reader.tip();
        let late = stale.sign(&commit(3, Change::Enabled), &old, None).unwrap();
        assert!(matches!(
            reader.verify(3, &late.bytes),
            Err(ChainError::UnknownSigner { .. })
        ));
    }
}
