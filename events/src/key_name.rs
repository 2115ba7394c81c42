//! Key names: what admins call a key.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// The most characters (Unicode scalar values) a name may have.
pub const MAX_NAME_CHARS: usize = 200;

/// A key's display name: 1 to 200 characters of UTF-8 after trimming, with no
/// control characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct KeyName(String);

/// Why a string cannot be a key name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyNameError {
    /// Nothing is left after trimming.
    #[error("name must not be empty")]
    Empty,
    /// More than [`MAX_NAME_CHARS`] characters.
    #[error("name must be at most {MAX_NAME_CHARS} characters")]
    TooLong,
    /// A control character (newline, tab, NUL, ...).
    #[error("name must not contain control characters")]
    ControlCharacter,
    /// An invisible or direction-changing character, which lets a name look
    /// like another in a listing.
    #[error("name must not contain invisible or text-direction characters")]
    InvisibleCharacter,
}

impl KeyName {
    /// Parses a new name: trims surrounding white space, then checks the rules.
    pub fn parse(raw: &str) -> Result<Self, KeyNameError> {
        let name = Self::parse_stored(raw)?;
        if !crate::visible::is_visible_text(&name.0) {
            return Err(KeyNameError::InvisibleCharacter);
        }
        Ok(name)
    }

    /// Accepts a name read back from the stream: by the rules every version
    /// has enforced, so that a later tightening (such as the invisible
    /// characters rule) never makes stored history undecodable.
    pub fn parse_stored(raw: &str) -> Result<Self, KeyNameError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(KeyNameError::Empty);
        }
        if trimmed.chars().count() > MAX_NAME_CHARS {
            return Err(KeyNameError::TooLong);
        }
        if trimmed.chars().any(char::is_control) {
            return Err(KeyNameError::ControlCharacter);
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for KeyName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse_stored(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_surrounding_white_space() {
        assert_eq!(
            KeyName::parse("  ci deploy \t").unwrap().as_str(),
            "ci deploy"
        );
    }

    #[test]
    fn counts_characters_not_bytes() {
        assert!(KeyName::parse(&"é".repeat(200)).is_ok());
        assert_eq!(KeyName::parse(&"é".repeat(201)), Err(KeyNameError::TooLong));
        assert!(KeyName::parse(&"a".repeat(200)).is_ok());
        assert_eq!(KeyName::parse(&"a".repeat(201)), Err(KeyNameError::TooLong));
    }

    #[test]
    fn rejects_empty_and_control_characters() {
        assert_eq!(KeyName::parse(""), Err(KeyNameError::Empty));
        assert_eq!(KeyName::parse("   "), Err(KeyNameError::Empty));
        assert_eq!(KeyName::parse("a\nb"), Err(KeyNameError::ControlCharacter));
        assert_eq!(
            KeyName::parse("a\u{0}b"),
            Err(KeyNameError::ControlCharacter)
        );
        assert_eq!(
            KeyName::parse("a\u{7f}b"),
            Err(KeyNameError::ControlCharacter)
        );
    }

    #[test]
    fn rejects_spoofing_characters_but_keeps_joiners() {
        for bad in [
            "admin\u{202E}txt",
            "a\u{200B}b",
            "\u{2066}x\u{2069}",
            "a\u{FEFF}",
            "soft\u{00AD}hyphen",
            "\u{3164}",
            "tag\u{E0041}\u{E007F}",
            "line\u{2028}sep",
            "\u{2800}",
            "a\u{1D173}",
        ] {
            assert_eq!(
                KeyName::parse(bad),
                Err(KeyNameError::InvisibleCharacter),
                "{bad:?}"
            );
        }
        assert!(KeyName::parse("family 👨\u{200D}👩\u{200D}👧").is_ok());
    }

    #[test]
    fn keeps_inner_unicode() {
        assert_eq!(KeyName::parse("données 🔑").unwrap().as_str(), "données 🔑");
    }
}
