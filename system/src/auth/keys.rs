//! Token signing keys: Ed25519 key pairs, one row each in the `signing_keys` table.
//!
//! A key is made from 32 bytes of the node's seeded rng (`SigningKey::from_bytes`), so a run is
//! reproducible; Ed25519 signing is deterministic too. The row (JSON, well under the store's
//! 4096-byte value limit) holds the key id, its generation, its creation time on the creating
//! node's wall clock, the public key `x` (base64url, as in a JWK's `x`) and the private seed `d`.
//! Its PostgreSQL key is the generation, zero-padded so key order is generation order: two
//! instances racing to create the same generation conflict on that key (see
//! [`super::rotation`]).
//!
//! Left out: a real deployment would keep `d` in a secrets manager or encrypt it with a KMS key;
//! here the table stands for that store, and only auth instances read `d` (the verifiers read the
//! same rows and keep only `x`).

use std::collections::BTreeMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use jsonwebtoken::{DecodingKey, EncodingKey};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use super::AuthError;
use crate::postgres::data::{Table, Write, MAX_VALUE_LEN};

/// The table the keys live in.
pub const TABLE: Table = Table::SigningKeys;
/// Longest key id accepted in a token header.
pub const MAX_KID_LEN: usize = 64;

/// One key as stored. `d` is absent in what [`KeySet`] and `GET /auth/keys` hand out.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredKey {
    pub kid: String,
    pub generation: u64,
    /// Wall-clock ms on the node that created it.
    pub created_ms: u64,
    /// The Ed25519 public key, base64url without padding.
    pub x: String,
    /// The private seed, base64url without padding.
    pub d: String,
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The seed stays out of logs and traces.
        f.debug_struct("StoredKey")
            .field("kid", &self.kid)
            .field("generation", &self.generation)
            .field("created_ms", &self.created_ms)
            .field("x", &self.x)
            .finish_non_exhaustive()
    }
}

/// The public half of a key, as `GET /auth/keys` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKey {
    pub kid: String,
    pub x: String,
}

/// The PostgreSQL key of a generation's row.
pub fn row_key(generation: u64) -> String {
    format!("{generation:012}")
}

/// A key id: letters, digits and `-`, at most [`MAX_KID_LEN`].
pub fn valid_kid(kid: &str) -> bool {
    (1..=MAX_KID_LEN).contains(&kid.len()) && kid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

impl StoredKey {
    /// A new key of `generation`, created at `created_ms`, from the node's rng. The kid carries
    /// random bits besides the generation, so a key made after the table was lost never shares
    /// an id with an older key of the same generation.
    pub fn generate(generation: u64, created_ms: u64, rng: &mut impl RngCore) -> Self {
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        let tag = rng.next_u32();
        let public = ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key();
        StoredKey {
            kid: format!("k{generation}-{tag:08x}"),
            generation,
            created_ms,
            x: URL_SAFE_NO_PAD.encode(public.as_bytes()),
            d: URL_SAFE_NO_PAD.encode(seed),
        }
    }

    /// The row that stores it.
    pub fn put(&self) -> Write {
        let value = serde_json::to_string(self).expect("a key serializes");
        Write::Put { table: TABLE, key: row_key(self.generation), value }
    }

    /// A row read back from the store, validated: the public key must be the seed's.
    pub fn from_row(key: &str, value: &str) -> Result<Self, AuthError> {
        let corrupt = |why: &str| AuthError::Corrupt(format!("signing key row {key}: {why}"));
        if value.len() > MAX_VALUE_LEN {
            return Err(corrupt("oversized"));
        }
        let k: StoredKey = serde_json::from_str(value).map_err(|e| corrupt(&e.to_string()))?;
        if row_key(k.generation) != key || !valid_kid(&k.kid) {
            return Err(corrupt("key, generation or kid do not match"));
        }
        let seed = decode_32(&k.d).ok_or_else(|| corrupt("bad seed"))?;
        let public = ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key();
        if URL_SAFE_NO_PAD.encode(public.as_bytes()) != k.x {
            return Err(corrupt("public key is not the seed's"));
        }
        Ok(k)
    }

    pub fn public(&self) -> PublicKey {
        PublicKey { kid: self.kid.clone(), x: self.x.clone() }
    }

    /// The key jsonwebtoken signs with (EdDSA takes a PKCS#8 document).
    pub fn encoding_key(&self) -> Result<EncodingKey, AuthError> {
        let seed = decode_32(&self.d).ok_or_else(|| AuthError::Corrupt(format!("seed of {}", self.kid)))?;
        let der = ed25519_dalek::SigningKey::from_bytes(&seed)
            .to_pkcs8_der()
            .map_err(|e| AuthError::Corrupt(format!("pkcs8 of {}: {e}", self.kid)))?;
        Ok(EncodingKey::from_ed_der(der.as_bytes()))
    }
}

fn decode_32(b64: &str) -> Option<[u8; 32]> {
    if b64.len() > 64 {
        return None;
    }
    URL_SAFE_NO_PAD.decode(b64).ok()?.try_into().ok()
}

/// Public keys by kid: what a verifier checks signatures with.
#[derive(Clone, Default)]
pub struct KeySet {
    keys: BTreeMap<String, DecodingKey>,
}

impl KeySet {
    /// The set of `keys` (a key whose `x` is not a 32-byte base64url string is skipped: it could
    /// verify nothing).
    pub fn new(keys: &[PublicKey]) -> Self {
        let keys = keys
            .iter()
            .filter(|k| valid_kid(&k.kid) && decode_32(&k.x).is_some())
            .filter_map(|k| Some((k.kid.clone(), DecodingKey::from_ed_components(&k.x).ok()?)))
            .collect();
        KeySet { keys }
    }

    pub fn get(&self, kid: &str) -> Option<&DecodingKey> {
        self.keys.get(kid)
    }

    pub fn contains(&self, kid: &str) -> bool {
        self.keys.contains_key(kid)
    }

    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;

    #[test]
    fn a_key_round_trips_through_its_row_and_a_tampered_row_is_refused() {
        let k = StoredKey::generate(3, 1_000, &mut ChaCha8Rng::seed_from_u64(1));
        assert!(k.kid.starts_with("k3-") && valid_kid(&k.kid), "{}", k.kid);
        let Write::Put { key, value, .. } = k.put() else { panic!() };
        assert_eq!(key, "000000000003");
        assert!(value.len() < 300);
        assert_eq!(StoredKey::from_row(&key, &value).unwrap(), k);
        assert!(StoredKey::from_row("000000000004", &value).is_err(), "row key and generation differ");
        let other = StoredKey::generate(3, 1_000, &mut ChaCha8Rng::seed_from_u64(2));
        let swapped = value.replace(&k.x, &other.x);
        assert!(StoredKey::from_row(&key, &swapped).is_err(), "public key not the seed's");
        assert!(StoredKey::from_row(&key, "{").is_err());
        assert!(!format!("{k:?}").contains(&k.d), "the seed stays out of Debug");
    }

    #[test]
    fn key_sets_skip_junk() {
        let k = StoredKey::generate(1, 0, &mut ChaCha8Rng::seed_from_u64(1));
        let junk = PublicKey { kid: "bad kid".into(), x: k.x.clone() };
        let short = PublicKey { kid: "short".into(), x: "AAAA".into() };
        let set = KeySet::new(&[k.public(), junk, short]);
        assert_eq!(set.kids().collect::<Vec<_>>(), [k.kid.as_str()]);
    }
}
