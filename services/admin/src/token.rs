//! The bootstrap admin token, compared in constant time.

use sha3::{Digest, Sha3_256};
use subtle::ConstantTimeEq;

/// The shortest admin token accepted.
pub const MIN_TOKEN_LEN: usize = 16;

/// The operator's admin token. Only its SHA3-256 digest is kept in memory
/// after start-up; presented tokens are hashed and compared in constant time,
/// so neither content nor length leaks through timing.
#[derive(Clone)]
pub struct AdminToken {
    digest: [u8; 32],
    len: usize,
}

/// Why a configured admin token is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminTokenError {
    /// Too short to resist guessing.
    #[error("the admin token must be at least {MIN_TOKEN_LEN} characters")]
    TooShort,
    /// Characters that do not survive an HTTP header.
    #[error("the admin token must be printable ASCII without spaces")]
    BadCharacters,
}

impl AdminToken {
    /// Accepts a configured token (surrounding white space, such as a file's
    /// trailing newline, is trimmed).
    pub fn new(raw: &str) -> Result<Self, AdminTokenError> {
        let raw = raw.trim();
        if raw.len() < MIN_TOKEN_LEN {
            return Err(AdminTokenError::TooShort);
        }
        if !raw.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(AdminTokenError::BadCharacters);
        }
        Ok(Self {
            digest: Sha3_256::digest(raw.as_bytes()).into(),
            len: raw.len(),
        })
    }

    /// Whether a presented token is this one.
    pub fn matches(&self, presented: &str) -> bool {
        let digest: [u8; 32] = Sha3_256::digest(presented.as_bytes()).into();
        digest.ct_eq(&self.digest).into()
    }
}

impl AdminToken {
    /// Whether `text` holds this token anywhere, even with spaces, control
    /// or non-ASCII characters put between its characters (the token is
    /// printable ASCII, so they are skipped; every window of the token's
    /// length is hashed and compared), so that a token pasted into a request
    /// id, a user agent or a name is never recorded.
    pub fn appears_in(&self, text: &str) -> bool {
        let squeezed: Vec<u8> = text.bytes().filter(u8::is_ascii_graphic).collect();
        squeezed.len() >= self.len
            && squeezed.windows(self.len).any(|window| {
                let digest: [u8; 32] = Sha3_256::digest(window).into();
                bool::from(digest.ct_eq(&self.digest))
            })
    }
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_only_the_same_token() {
        let t = AdminToken::new("correct-horse-battery-staple\n").unwrap();
        assert!(t.matches("correct-horse-battery-staple"));
        assert!(!t.matches("correct-horse-battery-stapl"));
        assert!(!t.matches(""));
        assert!(!format!("{t:?}").contains("horse"));
    }

    #[test]
    fn finds_the_token_inside_other_text() {
        let t = AdminToken::new("correct-horse-battery-staple").unwrap();
        assert!(t.appears_in("x.correct-horse-battery-staple"));
        assert!(t.appears_in("client/correct-horse-battery-staple (linux)"));
        assert!(!t.appears_in("correct-horse-battery-stapl"));
        assert!(t.appears_in("x correct-horse-\tbattery-\u{200B}staple"));
        assert!(!t.appears_in(""));
    }

    #[test]
    fn rejects_weak_tokens() {
        assert_eq!(
            AdminToken::new("short").unwrap_err(),
            AdminTokenError::TooShort
        );
        assert_eq!(
            AdminToken::new("has space in the token").unwrap_err(),
            AdminTokenError::BadCharacters
        );
    }
}
