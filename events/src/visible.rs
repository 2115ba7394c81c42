//! What a new key name may hold: characters a reader can see, each where it
//! does its work, so that no name looks blank or passes for another.
//!
//! By Unicode general category (the `unicode-general-category` tables):
//! - format characters, private-use, unassigned and noncharacter code
//!   points, line and paragraph separators, and every space but U+0020 are
//!   refused, as are a few letters and symbols that draw nothing (Hangul
//!   fillers, the Braille blank, Khmer's inherent vowels…);
//! - the joiners U+200C and U+200D only between two non-ASCII characters
//!   (emoji sequences, Persian, Indic scripts), or after a virama at the end
//!   (Malayalam chillus), never next to ASCII (`qa\u{200C}admin` would pass
//!   for `qaadmin`);
//! - combining marks and variation selectors only after a visible character
//!   (not at the start, not after a space or a joiner), at most 8 in a row;
//!   a variation selector after an ASCII character only in a keycap (`1️⃣`);
//! - tag characters only in an emoji tag sequence (the flags of England,
//!   Scotland, Wales: 🏴 followed by tags and the cancel tag).

use unicode_general_category::{GeneralCategory as Gc, get_general_category};

/// Most combining marks one character may carry.
const MAX_MARKS: usize = 8;

/// Letters and symbols that draw nothing, whatever their category says.
fn draws_nothing(c: char) -> bool {
    matches!(c,
        '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}' | '\u{2800}' | '\u{3164}'
        | '\u{FFA0}' | '\u{FFFC}' | '\u{034F}' | '\u{180B}'..='\u{180F}'
        | '\u{1D173}'..='\u{1D17A}')
}

fn is_joiner(c: char) -> bool {
    matches!(c, '\u{200C}' | '\u{200D}')
}

fn is_variation_selector(c: char) -> bool {
    matches!(c, '\u{FE00}'..='\u{FE0F}' | '\u{E0100}'..='\u{E01EF}')
}

fn is_tag(c: char) -> bool {
    matches!(c, '\u{E0020}'..='\u{E007E}')
}

fn is_mark(c: char) -> bool {
    matches!(
        get_general_category(c),
        Gc::NonspacingMark | Gc::SpacingMark | Gc::EnclosingMark
    )
}

/// Whether every character of `text` is visible where it stands.
pub(crate) fn is_visible_text(text: &str) -> bool {
    let chars: Vec<char> = text.chars().collect();
    let mut marks = 0;
    chars.iter().enumerate().all(|(i, &c)| {
        let before = i.checked_sub(1).map(|j| chars[j]);
        let after = chars.get(i + 1).copied();
        let base = |b: char| !b.is_whitespace() && !is_joiner(b);
        marks = if is_mark(c) { marks + 1 } else { 0 };
        if draws_nothing(c) {
            false
        } else if is_joiner(c) {
            let joins = |x: char| !x.is_ascii() && base(x) && !is_variation_selector(x);
            before.is_some_and(|b| !b.is_ascii() && base(b))
                && (after.is_some_and(|a| joins(a) && !is_mark(a))
                    || (after.is_none() && c == '\u{200D}' && before.is_some_and(is_mark)))
        } else if is_tag(c) || c == '\u{E007F}' {
            before.is_some_and(|b| b == '\u{1F3F4}' || is_tag(b))
                && (c == '\u{E007F}' || after.is_some_and(|a| is_tag(a) || a == '\u{E007F}'))
        } else if is_variation_selector(c) {
            before.is_some_and(|b| base(b) && (!b.is_ascii() || after == Some('\u{20E3}')))
        } else if is_mark(c) {
            before.is_some_and(base) && marks <= MAX_MARKS
        } else {
            match get_general_category(c) {
                Gc::Format
                | Gc::PrivateUse
                | Gc::Unassigned
                | Gc::Surrogate
                | Gc::LineSeparator
                | Gc::ParagraphSeparator
                | Gc::Control => false,
                Gc::SpaceSeparator => c == ' ',
                _ => true,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::is_visible_text;

    #[test]
    fn blank_or_spoofing_text_is_refused() {
        for bad in [
            "\u{200C}",
            "\u{200D}\u{200D}",
            "\u{FE0F}",
            "\u{0301}",
            "\u{064B}",
            "a \u{0301}",
            "qa\u{200C}admin",
            "qa\u{200D}admin",
            "qa\u{FE0F}admin",
            "qa\u{E0100}admin",
            "x\u{200D}",
            "\u{17B4}",
            "a\u{FFF9}b",
            "\u{1BCA0}",
            "\u{0600}x",
            "\u{E000}",
            "\u{FDD0}",
            "\u{0378}",
            "qa\u{00A0}admin",
            "qa\u{3000}admin",
            "admin\u{202E}txt",
            "a\u{200B}b",
            "soft\u{00AD}hyphen",
            "\u{3164}",
            "tag\u{E0041}\u{E007F}",
            "line\u{2028}sep",
            "\u{2800}",
        ] {
            assert!(!is_visible_text(bad), "{bad:?}");
        }
        assert!(!is_visible_text(&format!("a{}", "\u{0301}".repeat(9))));
    }

    #[test]
    fn every_script_and_emoji_sequence_is_kept() {
        for good in [
            "billing reader",
            "données 🔑",
            "cafe\u{0301}",
            "family 👨\u{200D}👩\u{200D}👧",
            "❤\u{FE0F}\u{200D}🔥",
            "keycap 1\u{FE0F}\u{20E3}",
            "👨🏽\u{200D}💻 bot",
            "م\u{200C}ی",
            "ന്\u{200D}",
            "🏴\u{E0067}\u{E0062}\u{E0065}\u{E006E}\u{E0067}\u{E007F}",
            "שָׁלוֹם",
            "नमस्ते",
            "か\u{3099}",
        ] {
            assert!(is_visible_text(good), "{good:?}");
        }
    }
}
