//! Ed25519 keys that sign the ledger's events.
//!
//! On disk and on the wire both keys are lowercase hex: the 32-byte seed of a
//! signing key, the 32-byte public key. A signing key never appears in `Debug`
//! output.

use std::fmt;

use ed25519_dalek::Signer as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::hex;

/// The admin service's private key: it signs every event it appends.
#[derive(Clone)]
pub struct SigningKey(ed25519_dalek::SigningKey);

/// Why key text could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyTextError {
    /// Not 64 lowercase hex characters.
    #[error("expected 64 lowercase hex characters (32 bytes)")]
    NotHex,
    /// 32 bytes that are not a valid Ed25519 public key.
    #[error("not a valid Ed25519 public key")]
    NotAPoint,
}

impl SigningKey {
    /// A new key from the OS CSPRNG.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed)?;
        Ok(Self(ed25519_dalek::SigningKey::from_bytes(&seed)))
    }

    /// Reads the hex seed (surrounding whitespace is ignored).
    pub fn from_hex(text: &str) -> Result<Self, KeyTextError> {
        let seed = hex::decode::<32>(text.trim()).ok_or(KeyTextError::NotHex)?;
        Ok(Self(ed25519_dalek::SigningKey::from_bytes(&seed)))
    }

    /// The hex seed, for writing the key file. Handle with care.
    pub fn expose_secret_hex(&self) -> String {
        hex::encode(self.0.as_bytes())
    }

    /// The matching public key, for nodes and auditors.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    pub(crate) fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.0.sign(message).to_bytes()
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey(public {})", self.public_key())
    }
}

/// A public key that verifies event signatures.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(ed25519_dalek::VerifyingKey);

impl PublicKey {
    /// Reads 64 lowercase hex characters (surrounding whitespace is ignored).
    pub fn from_hex(text: &str) -> Result<Self, KeyTextError> {
        let bytes = hex::decode::<32>(text.trim()).ok_or(KeyTextError::NotHex)?;
        ed25519_dalek::VerifyingKey::from_bytes(&bytes)
            .map(Self)
            .map_err(|_| KeyTextError::NotAPoint)
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0.as_bytes())
    }

    /// Strict verification (no malleable or small-order signatures).
    pub(crate) fn verifies(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        let signature = ed25519_dalek::Signature::from_bytes(signature);
        self.0.verify_strict(message, &signature).is_ok()
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_hex())
    }
}

impl Serialize for PublicKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for PublicKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::from_hex(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_hex_and_signatures_verify() {
        let key = SigningKey::generate().unwrap();
        let again = SigningKey::from_hex(&format!("{}\n", key.expose_secret_hex())).unwrap();
        assert_eq!(again.public_key(), key.public_key());
        let public = PublicKey::from_hex(&key.public_key().to_hex()).unwrap();
        let sig = key.sign(b"hello");
        assert!(public.verifies(b"hello", &sig));
        assert!(!public.verifies(b"hellp", &sig));
        let other = SigningKey::generate().unwrap().public_key();
        assert!(!other.verifies(b"hello", &sig));
    }

    #[test]
    fn debug_never_shows_the_seed() {
        let key = SigningKey::generate().unwrap();
        assert!(!format!("{key:?}").contains(&key.expose_secret_hex()));
    }

    #[test]
    fn bad_text_is_refused() {
        assert_eq!(
            SigningKey::from_hex("abc").err(),
            Some(KeyTextError::NotHex)
        );
        assert_eq!(
            PublicKey::from_hex(&"Z".repeat(64)).err(),
            Some(KeyTextError::NotHex)
        );
    }
}
