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
        if name.0.chars().any(is_invisible) || !joiners_join(&name.0) {
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

/// Bidirectional controls, zero-width and blank-looking characters that are
/// not needed to write any language: the soft hyphen, the combining grapheme
/// joiner, the Mongolian vowel separator, line and paragraph separators, the
/// Hangul fillers, the Braille blank, tag characters and invisible musical
/// formatting, Khmer's inherent vowels, Mongolian variation selectors,
/// interlinear annotations and shorthand format controls. The joiners
/// U+200C and U+200D and variation selectors stay allowed where they do
/// their work (see [`joiners_join`]): emoji and several scripts need them.
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{180E}'
        | '\u{200B}' | '\u{200E}' | '\u{200F}'
        | '\u{2028}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{206F}'
        | '\u{17B4}' | '\u{17B5}' | '\u{180B}'..='\u{180D}' | '\u{180F}'
        | '\u{2800}' | '\u{3164}' | '\u{FEFF}' | '\u{FFA0}' | '\u{FFF9}'..='\u{FFFB}'
        | '\u{1BCA0}'..='\u{1BCA3}'
        | '\u{1D173}'..='\u{1D17A}'
        | '\u{E0000}'..='\u{E007F}')
}

/// The zero-width joiner and non-joiner.
fn is_joiner(c: char) -> bool {
    matches!(c, '\u{200C}' | '\u{200D}')
}

/// Characters that only change the one before them: variation selectors and
/// combining marks.
fn is_modifier(c: char) -> bool {
    matches!(c,
        '\u{0300}'..='\u{036F}'
        | '\u{1AB0}'..='\u{1AFF}'
        | '\u{1DC0}'..='\u{1DFF}'
        | '\u{20D0}'..='\u{20FF}'
        | '\u{FE00}'..='\u{FE0F}'
        | '\u{FE20}'..='\u{FE2F}'
        | '\u{E0100}'..='\u{E01EF}')
}

/// Joiners and modifiers are kept only where they do their work: a joiner
/// between two non-ASCII characters (emoji sequences, Persian, Indic
/// scripts), a modifier after a character it can modify. Alone, at the
/// start, or between ASCII letters (`qa\u{200C}admin` would pass for
/// `qaadmin`) they only hide in a name.
fn joiners_join(name: &str) -> bool {
    let chars: Vec<char> = name.chars().collect();
    chars.iter().enumerate().all(|(i, &c)| {
        let before = i.checked_sub(1).map(|j| chars[j]);
        let after = chars.get(i + 1).copied();
        if is_joiner(c) {
            before.is_some_and(|b| !b.is_ascii() && !is_joiner(b))
                && after.is_some_and(|a| !a.is_ascii() && !is_joiner(a) && !is_modifier(a))
        } else if is_modifier(c) {
            before.is_some_and(|b| !is_joiner(b))
        } else {
            true
        }
    })
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
    fn joiners_and_modifiers_only_where_they_join_or_modify() {
        for bad in [
            "\u{200C}",
            "\u{200D}\u{200D}",
            "\u{FE0F}",
            "\u{0301}",
            "qa\u{200C}admin",
            "qa\u{200D}admin",
            "x\u{200D}",
            "\u{17B4}",
            "a\u{FFF9}b",
            "\u{1BCA0}",
        ] {
            assert_eq!(
                KeyName::parse(bad),
                Err(KeyNameError::InvisibleCharacter),
                "{bad:?}"
            );
        }
        for good in [
            "❤\u{FE0F}\u{200D}🔥",
            "keycap 1\u{FE0F}\u{20E3}",
            "م\u{200C}ی",
            "cafe\u{0301}",
            "👨🏽\u{200D}💻 bot",
        ] {
            assert!(KeyName::parse(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn keeps_inner_unicode() {
        assert_eq!(KeyName::parse("données 🔑").unwrap().as_str(), "données 🔑");
    }
}
