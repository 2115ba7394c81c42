//! Key material: generating API keys, their format and checksum, and their hash.
//!
//! A key is 40 base62 characters: 34 random ones (202 bits from the OS CSPRNG)
//! followed by a 6-character checksum (CRC32 of the 34, in base62). The first
//! 8 characters are the key's public [`Prefix`]. Only the [`KeyHash`]
//! (SHA3-256 of the whole key) and the prefix are ever stored.

use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha3::{Digest, Sha3_256};

/// Length of every key, in characters.
pub const KEY_LEN: usize = 40;
/// Length of the public prefix, in characters.
pub const PREFIX_LEN: usize = 8;
const BODY_LEN: usize = 34;
const CHECKSUM_LEN: usize = KEY_LEN - BODY_LEN;
const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Why a presented string is not a well-formed key. Checked before any lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyFormatError {
    /// Not exactly [`KEY_LEN`] characters.
    #[error("a key is exactly {KEY_LEN} characters")]
    Length,
    /// A character outside `0-9 A-Z a-z`.
    #[error("a key has only the characters 0-9, A-Z and a-z")]
    Alphabet,
    /// The checksum does not match: a typo or a truncated copy.
    #[error("the key's checksum does not match")]
    Checksum,
}

/// A raw API key. It exists in memory only between generation and the create
/// response. It has no `Display`, `Serialize` or revealing `Debug`: reading it
/// takes a deliberate [`ApiKey::expose_secret`].
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Generates a fresh key from the OS CSPRNG.
    ///
    /// # Errors
    /// When the OS has no randomness to give (`getrandom` failed).
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut body = [0u8; BODY_LEN];
        let mut filled = 0;
        let mut pool = [0u8; 64];
        while filled < BODY_LEN {
            getrandom::fill(&mut pool)?;
            for byte in pool {
                // Rejection sampling: 248 = 4 * 62, so the accepted bytes map
                // uniformly onto the alphabet.
                if byte < 248 && filled < BODY_LEN {
                    body[filled] = ALPHABET[usize::from(byte % 62)];
                    filled += 1;
                }
            }
        }
        Ok(Self::from_body(&body))
    }

    fn from_body(body: &[u8; BODY_LEN]) -> Self {
        let mut key = String::with_capacity(KEY_LEN);
        key.extend(body.iter().map(|&b| char::from(b)));
        key.extend(checksum(body).iter().map(|&b| char::from(b)));
        Self(key)
    }

    /// Parses a presented key, checking length, alphabet and checksum.
    pub fn parse(presented: &str) -> Result<Self, KeyFormatError> {
        check_format(presented)?;
        Ok(Self(presented.to_owned()))
    }

    /// Whether `text` holds an API key anywhere: 40 key characters that pass
    /// the checksum, whatever surrounds them and whatever is put between
    /// them (spaces, tabs, invisible characters, punctuation: all are
    /// skipped). Used to keep keys pasted into the wrong field (a name, a
    /// request id, a user agent) out of the stream and the logs. A chance
    /// match needs a 6-character checksum to come out right (about 1 in
    /// 6e10 per window).
    pub fn appears_in(text: &str) -> bool {
        let squeezed: Vec<u8> = text.bytes().filter(|b| ALPHABET.contains(b)).collect();
        squeezed
            .windows(KEY_LEN)
            .any(|window| std::str::from_utf8(window).is_ok_and(|w| check_format(w).is_ok()))
    }

    /// The raw key. Call only to hand it to its owner, once.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// The key's public prefix: its leading 8 characters.
    pub fn prefix(&self) -> Prefix {
        Prefix(self.0[..PREFIX_LEN].to_owned())
    }

    /// The SHA3-256 hash under which the key is stored.
    pub fn hash(&self) -> KeyHash {
        KeyHash::of(&self.0)
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// Checks a presented key's length, alphabet and checksum without allocating.
pub(crate) fn check_format(presented: &str) -> Result<(), KeyFormatError> {
    let bytes = presented.as_bytes();
    if bytes.len() != KEY_LEN {
        return Err(KeyFormatError::Length);
    }
    if !bytes.iter().all(u8::is_ascii_alphanumeric) {
        return Err(KeyFormatError::Alphabet);
    }
    let (body, sum) = bytes.split_at(BODY_LEN);
    let body: &[u8; BODY_LEN] = body.try_into().map_err(|_| KeyFormatError::Length)?;
    if checksum(body) != sum {
        return Err(KeyFormatError::Checksum);
    }
    Ok(())
}

fn checksum(body: &[u8; BODY_LEN]) -> [u8; CHECKSUM_LEN] {
    let mut n = crc32fast::hash(body);
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(n % 62) as usize];
        n /= 62;
    }
    out
}

/// A key's public prefix: its leading 8 base62 characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefix(String);

impl Prefix {
    /// Parses a stored or displayed prefix: exactly 8 base62 characters.
    pub fn parse(s: &str) -> Option<Self> {
        (s.len() == PREFIX_LEN && s.bytes().all(|b| b.is_ascii_alphanumeric()))
            .then(|| Self(s.to_owned()))
    }

    /// The prefix as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Prefix {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Prefix {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).ok_or_else(|| serde::de::Error::custom("a prefix is 8 base62 characters"))
    }
}

/// SHA3-256 of a key: what the ledger stores instead of the key.
///
/// Its `Hash` impl feeds the (already uniform) first 8 bytes to [`KeyHashHasher`].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct KeyHash([u8; 32]);

impl KeyHash {
    /// Hashes a presented key.
    pub fn of(presented: &str) -> Self {
        Self(Sha3_256::digest(presented.as_bytes()).into())
    }

    /// Checks a presented key's format, then hashes it. The format check
    /// rejects malformed and truncated keys before any lookup.
    pub fn of_presented(presented: &str) -> Result<Self, KeyFormatError> {
        check_format(presented)?;
        Ok(Self::of(presented))
    }

    /// The hash as lowercase hex.
    pub fn to_hex(&self) -> String {
        use fmt::Write;
        self.0.iter().fold(String::with_capacity(64), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
    }

    /// Parses 64 lowercase hex characters.
    pub fn from_hex(s: &str) -> Option<Self> {
        if s.len() != 64 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, slot) in out.iter_mut().enumerate() {
            *slot = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(Self(out))
    }
}

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Hashes stay out of logs too: show only enough to tell two apart in a test.
        write!(f, "KeyHash({:02x}{:02x}…)", self.0[0], self.0[1])
    }
}

impl Hash for KeyHash {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write(&self.0[..8]);
    }
}

impl Serialize for KeyHash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for KeyHash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::from_hex(&s)
            .ok_or_else(|| serde::de::Error::custom("a key hash is 64 lowercase hex characters"))
    }
}

/// A hasher for maps keyed by [`KeyHash`]: SHA3 output is already uniform,
/// so its first 8 bytes are the hash. Halves lookup time against SipHash.
#[derive(Clone, Copy, Default, Debug)]
pub struct KeyHashHasher(u64);

impl Hasher for KeyHashHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut word = [0u8; 8];
        let n = bytes.len().min(8);
        word[..n].copy_from_slice(&bytes[..n]);
        self.0 ^= u64::from_le_bytes(word);
    }
}

impl BuildHasher for KeyHashHasher {
    type Hasher = Self;

    fn build_hasher(&self) -> Self::Hasher {
        Self(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_the_documented_shape() {
        let key = ApiKey::generate().unwrap();
        let raw = key.expose_secret();
        assert_eq!(raw.len(), KEY_LEN);
        assert!(raw.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_eq!(ApiKey::parse(raw).unwrap(), key);
        assert_eq!(key.prefix().as_str(), &raw[..8]);
    }

    #[test]
    fn generated_keys_differ() {
        let a = ApiKey::generate().unwrap();
        let b = ApiKey::generate().unwrap();
        assert_ne!(a, b);
        assert_ne!(a.hash(), b.hash());
    }

    #[test]
    fn generation_uses_the_whole_alphabet_roughly_evenly() {
        let mut counts = [0u32; 62];
        for _ in 0..400 {
            let key = ApiKey::generate().unwrap();
            for b in key.expose_secret()[..BODY_LEN].bytes() {
                let i = ALPHABET.iter().position(|&a| a == b).unwrap();
                counts[i] += 1;
            }
        }
        // 13,600 draws over 62 symbols: about 219 each. A biased mapping
        // (e.g. byte % 62 without rejection) would skew the first symbols.
        for (i, &c) in counts.iter().enumerate() {
            assert!((130..320).contains(&c), "symbol {i} drawn {c} times");
        }
    }

    #[test]
    fn rejects_wrong_length_alphabet_and_checksum() {
        let key = ApiKey::generate().unwrap();
        let raw = key.expose_secret();
        assert_eq!(ApiKey::parse(&raw[..39]), Err(KeyFormatError::Length));
        assert_eq!(
            ApiKey::parse(&format!("{raw}x")),
            Err(KeyFormatError::Length)
        );
        assert_eq!(ApiKey::parse(""), Err(KeyFormatError::Length));
        let mut bad = raw.to_owned();
        bad.replace_range(3..4, "_");
        assert_eq!(ApiKey::parse(&bad), Err(KeyFormatError::Alphabet));
        // Changing any one body character breaks the checksum.
        for i in 0..BODY_LEN {
            let mut typo = raw.as_bytes().to_vec();
            typo[i] = if typo[i] == b'a' { b'b' } else { b'a' };
            let typo = String::from_utf8(typo).unwrap();
            assert_eq!(
                ApiKey::parse(&typo),
                Err(KeyFormatError::Checksum),
                "position {i}"
            );
        }
    }

    #[test]
    fn hash_is_sha3_256_of_the_key() {
        // Known answer: SHA3-256("") from FIPS 202.
        assert_eq!(
            KeyHash::of("").to_hex(),
            "a7ffc6f8bf1ed76651c14756a061d662f580ff4de43b49fa82d80a4b80f8434a"
        );
        let h = KeyHash::of("abc");
        assert_eq!(KeyHash::from_hex(&h.to_hex()), Some(h));
    }

    #[test]
    fn debug_output_never_shows_the_secret() {
        let key = ApiKey::generate().unwrap();
        let shown = format!("{key:?} {:?}", key.hash());
        assert!(!shown.contains(key.expose_secret()));
        assert!(!shown.contains(&key.hash().to_hex()));
    }

    #[test]
    fn prefix_parsing() {
        assert!(Prefix::parse("Ab3dE5fG").is_some());
        assert!(Prefix::parse("Ab3dE5f").is_none());
        assert!(Prefix::parse("Ab3dE5f_").is_none());
    }

    #[test]
    fn a_key_is_found_anywhere_in_a_text() {
        let key = ApiKey::generate().unwrap();
        let raw = key.expose_secret();
        for text in [
            raw.to_owned(),
            format!("{raw}x"),
            format!("1{raw}"),
            format!("req-{raw}"),
            format!("client/{raw} (linux)"),
            format!("x_{raw}_x"),
            format!("{} {}", &raw[..20], &raw[20..]),
            format!("{}\u{FE0F}{}", &raw[..20], &raw[20..]),
            format!("{}.{}:{}", &raw[..10], &raw[10..30], &raw[30..]),
        ] {
            assert!(ApiKey::appears_in(&text), "{text}");
        }
        assert!(!ApiKey::appears_in(&raw[..39]));
        assert!(!ApiKey::appears_in("billing reader"));
        let mut changed = raw.to_owned().into_bytes();
        changed[10] = if changed[10] == b'a' { b'b' } else { b'a' };
        assert!(!ApiKey::appears_in(std::str::from_utf8(&changed).unwrap()));
    }
}
