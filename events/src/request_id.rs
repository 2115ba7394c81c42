//! Request ids: carried by every event so an audit line leads back to an HTTP request.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};

/// The id of the request that caused an event: 1 to 128 characters of
/// `A-Z a-z 0-9 . _ : -`, so it is safe in headers, logs and JSON.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct RequestId(String);

/// A string that cannot be a request id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a request id is 1 to 128 characters of A-Z a-z 0-9 . _ : -")]
pub struct RequestIdError;

impl RequestId {
    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id a caller sent (`X-Request-Id`), unless it is malformed or
    /// holds an API key: ids are logged and stored, so a key pasted into
    /// the wrong header must not be kept.
    pub fn from_caller(text: &str) -> Option<Self> {
        // Parse first: it bounds the length the scan reads.
        text.parse()
            .ok()
            .filter(|id: &Self| !crate::ApiKey::appears_in(id.as_str()))
    }
}

impl FromStr for RequestId {
    type Err = RequestIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = (1..=128).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(RequestIdError)
        }
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for RequestId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_uuids_and_trace_like_ids() {
        assert!(
            "0192d4e1-7a3b-7c00-8000-123456789abc"
                .parse::<RequestId>()
                .is_ok()
        );
        assert!("req_42.a:b".parse::<RequestId>().is_ok());
    }

    #[test]
    fn rejects_empty_long_and_unsafe_ids() {
        assert!("".parse::<RequestId>().is_err());
        assert!("a".repeat(129).parse::<RequestId>().is_err());
        assert!("a b".parse::<RequestId>().is_err());
        assert!("a\nb".parse::<RequestId>().is_err());
        assert!("é".parse::<RequestId>().is_err());
    }

    #[test]
    fn a_caller_id_holding_a_key_is_not_kept() {
        let key = crate::ApiKey::generate().unwrap();
        let pasted = format!("req-{}", key.expose_secret());
        assert!(pasted.parse::<RequestId>().is_ok(), "well-formed as an id");
        assert_eq!(RequestId::from_caller(&pasted), None);
        assert_eq!(
            RequestId::from_caller("req-42").map(|id| id.as_str().to_owned()),
            Some("req-42".to_owned())
        );
        assert_eq!(RequestId::from_caller("a b"), None);
    }
}
