//! The export format: one stored message per JSON line, as `keyledger audit
//! export` writes it and `GET /v1/events` answers it, so that a page of the
//! API or an export file can be verified and replayed offline alike.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

/// One stored message: its stream sequence, when and where it was stored,
/// and its payload (as JSON when it is JSON, else as hex).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportLine {
    /// Stream sequence.
    pub seq: u64,
    /// When the stream stored it.
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    /// The subject it was stored under.
    pub subject: String,
    /// The stored message, when it is JSON (it is, unless someone wrote garbage).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub payload: Option<Value>,
    /// The stored bytes as lowercase hex, when they are not JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_hex: Option<String>,
}

/// Why an export line's payload cannot be had.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ExportLineError {
    /// `payload_hex` is not lowercase hex of whole bytes.
    #[error("payload_hex is not hex")]
    BadHex,
    /// Both or neither of `payload` and `payload_hex`.
    #[error("give exactly one of payload and payload_hex")]
    NotOnePayload,
}

impl ExportLine {
    /// The line for a message stored at `seq`.
    pub fn new(seq: u64, time: OffsetDateTime, subject: String, bytes: &[u8]) -> Self {
        let (payload, payload_hex) = match serde_json::from_slice::<Value>(bytes) {
            Ok(v) => (Some(v), None),
            Err(_) => (None, Some(crate::hex::encode(bytes))),
        };
        Self {
            seq,
            time,
            subject,
            payload,
            payload_hex,
        }
    }

    /// The payload's bytes (JSON re-encoded, or the hex decoded).
    pub fn payload_bytes(&self) -> Result<Vec<u8>, ExportLineError> {
        match (&self.payload, &self.payload_hex) {
            (Some(v), None) => serde_json::to_vec(v).map_err(|_| ExportLineError::NotOnePayload),
            (None, Some(hex)) => crate::hex::decode_all(hex).ok_or(ExportLineError::BadHex),
            _ => Err(ExportLineError::NotOnePayload),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_stays_json_and_garbage_becomes_hex_both_ways() {
        let at = OffsetDateTime::UNIX_EPOCH;
        let json = ExportLine::new(1, at, "S.keys.x".into(), br#"{"events":[]}"#);
        assert!(json.payload.is_some() && json.payload_hex.is_none());
        assert_eq!(json.payload_bytes().unwrap(), br#"{"events":[]}"#);
        let junk = ExportLine::new(2, at, "S.keys.x".into(), b"\xff\xfe");
        assert_eq!(junk.payload_hex.as_deref(), Some("fffe"));
        assert_eq!(junk.payload_bytes().unwrap(), b"\xff\xfe");
        let text = serde_json::to_string(&junk).unwrap();
        let back: ExportLine = serde_json::from_str(&text).unwrap();
        assert_eq!(back, junk);
        let bad = ExportLine {
            payload_hex: Some("zz".into()),
            ..junk
        };
        assert_eq!(bad.payload_bytes(), Err(ExportLineError::BadHex));
    }
}
