//! Key ids: UUIDv7, so that ids sort by creation time.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

/// The public, stable identifier of an API key (a UUIDv7 in its hyphenated form).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(Uuid);

/// A string that is not a key id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a key id: expected a UUID such as 0192d4e1-7a3b-7c00-8000-123456789abc")]
pub struct KeyIdError;

impl KeyId {
    /// Wraps a UUID (services make them with `Uuid::now_v7`).
    pub fn from_uuid(id: Uuid) -> Self {
        Self(id)
    }

    /// A new id for a key created at `unix_millis` with the given random bits.
    ///
    /// Pure: the caller supplies time and randomness.
    pub fn from_parts(unix_millis: u64, random: [u8; 10]) -> Self {
        Self(uuid::Builder::from_unix_timestamp_millis(unix_millis, &random).into_uuid())
    }

    /// The underlying UUID.
    pub fn as_uuid(&self) -> &Uuid {
        &self.0
    }
}

impl FromStr for KeyId {
    type Err = KeyIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Only the canonical hyphenated form, so one key has one spelling.
        if s.len() != 36 {
            return Err(KeyIdError);
        }
        let id = Uuid::try_parse(s).map_err(|_| KeyIdError)?;
        if id.hyphenated().to_string() != s {
            return Err(KeyIdError);
        }
        Ok(Self(id))
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl Serialize for KeyId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for KeyId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_its_string_form() {
        let id = KeyId::from_parts(1_700_000_000_000, [7; 10]);
        let parsed: KeyId = id.to_string().parse().unwrap();
        assert_eq!(parsed, id);
    }

    #[test]
    fn ids_sort_by_creation_time() {
        let early = KeyId::from_parts(1_000, [9; 10]);
        let late = KeyId::from_parts(2_000, [0; 10]);
        assert!(early < late);
    }

    #[test]
    fn rejects_non_canonical_spellings() {
        let id = KeyId::from_parts(1_700_000_000_000, [7; 10]).to_string();
        assert!(id.to_uppercase().parse::<KeyId>().is_err());
        assert!(id.replace('-', "").parse::<KeyId>().is_err());
        assert!("".parse::<KeyId>().is_err());
        assert!("../etc/passwd".parse::<KeyId>().is_err());
    }
}
