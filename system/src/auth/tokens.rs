//! Access tokens: JWTs (RFC 7519) signed with EdDSA over Ed25519 (RFC 8037), the signing key
//! named by the header's `kid`.
//!
//! Claims: `tenant`, `user`, `admin` (the tenant's creator), and the times `iat_ms`, `nbf_ms`,
//! `exp_ms` in Unix milliseconds on the issuing node's wall clock (milliseconds, not RFC 7519's
//! seconds, because the simulation's clock skews and bounds are in milliseconds; the standard
//! `exp`/`nbf` are absent, and a stock JWT library reading these tokens must be told so).
//!
//! jsonwebtoken's own `exp`/`nbf` checks read `SystemTime::now`, which the simulation must not
//! (and which would ignore a scenario's clock skew): they are off, no claim is "required" by the
//! library, and [`verify`] checks the times against the caller's wall clock from the clock seam,
//! with a leeway for skew between the issuer's clock and the verifier's.
//!
//! A token is untrusted input: its length is bounded, the header must name EdDSA and a
//! well-formed kid, and every claim is validated before the claims are returned.

use jsonwebtoken::{Algorithm, Header, Validation};
use serde::{Deserialize, Serialize};

use super::keys::{valid_kid, KeySet, StoredKey};
use super::names::valid_name;
use super::AuthError;

/// Longest token accepted (ours are about 400 bytes).
pub const MAX_TOKEN_LEN: usize = 2048;
/// Default tolerance for clock skew between issuer and verifier, either way.
pub const CLOCK_LEEWAY_MS: u64 = 2_000;

/// What a token says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub tenant: String,
    pub user: String,
    /// The tenant's admin (the user who created it): may grant and revoke.
    pub admin: bool,
    /// Issued at (Unix ms).
    pub iat_ms: u64,
    /// Not valid before (Unix ms).
    pub nbf_ms: u64,
    /// Not valid from (Unix ms).
    pub exp_ms: u64,
}

impl Claims {
    /// Claims issued at `now_ms` for `lifetime_ms`.
    pub fn new(tenant: &str, user: &str, admin: bool, now_ms: u64, lifetime_ms: u64) -> Self {
        Claims {
            tenant: tenant.into(),
            user: user.into(),
            admin,
            iat_ms: now_ms,
            nbf_ms: now_ms,
            exp_ms: now_ms.saturating_add(lifetime_ms),
        }
    }

    fn well_formed(&self) -> bool {
        valid_name(&self.tenant) && valid_name(&self.user) && self.nbf_ms < self.exp_ms
    }
}

/// A signed token for `claims`, under `key` (its kid in the header).
pub fn sign(key: &StoredKey, claims: &Claims) -> Result<String, AuthError> {
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, claims, &key.encoding_key()?).map_err(|e| AuthError::Malformed(e.to_string()))
}

/// The key id a token names, checked for shape only (nothing about it is trusted yet).
pub fn kid_of(token: &str) -> Result<String, AuthError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(AuthError::Malformed(format!("token of {} bytes", token.len())));
    }
    let header = jsonwebtoken::decode_header(token).map_err(|e| AuthError::Malformed(e.to_string()))?;
    if header.alg != Algorithm::EdDSA {
        return Err(AuthError::Malformed(format!("algorithm {:?}, not EdDSA", header.alg)));
    }
    match header.kid {
        Some(kid) if valid_kid(&kid) => Ok(kid),
        Some(_) => Err(AuthError::Malformed("malformed kid".into())),
        None => Err(AuthError::Malformed("no kid".into())),
    }
}

/// The claims of `token` if it is signed by a key of `keys` and valid at `now_ms` (the
/// verifier's wall clock), give or take `leeway_ms`.
pub fn verify(keys: &KeySet, token: &str, now_ms: u64, leeway_ms: u64) -> Result<Claims, AuthError> {
    let kid = kid_of(token)?;
    let key = keys.get(&kid).ok_or_else(|| AuthError::UnknownKey(kid.clone()))?;
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let data = jsonwebtoken::decode::<Claims>(token, key, &validation).map_err(|e| match e.kind() {
        jsonwebtoken::errors::ErrorKind::InvalidSignature => AuthError::BadSignature,
        _ => AuthError::Malformed(e.to_string()),
    })?;
    let claims = data.claims;
    if !claims.well_formed() {
        return Err(AuthError::Malformed("claims out of range".into()));
    }
    if now_ms.saturating_add(leeway_ms) < claims.nbf_ms {
        return Err(AuthError::NotYetValid { nbf_ms: claims.nbf_ms, now_ms });
    }
    if now_ms >= claims.exp_ms.saturating_add(leeway_ms) {
        return Err(AuthError::Expired { exp_ms: claims.exp_ms, now_ms });
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;

    const NOW: u64 = 1_767_225_600_000;
    const LIFETIME: u64 = 60_000;

    fn key(seed: u64, generation: u64) -> StoredKey {
        StoredKey::generate(generation, NOW, &mut ChaCha8Rng::seed_from_u64(seed))
    }

    fn token(k: &StoredKey, tenant: &str) -> String {
        sign(k, &Claims::new(tenant, "ann", true, NOW, LIFETIME)).unwrap()
    }

    #[test]
    fn a_token_verifies_under_its_key_and_signing_is_deterministic() {
        let k = key(1, 1);
        let t = token(&k, "acme");
        assert!(t.len() < 500, "{} bytes", t.len());
        assert_eq!(t, token(&k, "acme"));
        assert_eq!(kid_of(&t).unwrap(), k.kid);
        let claims = verify(&KeySet::new(&[k.public()]), &t, NOW + 1, 0).unwrap();
        assert_eq!(claims, Claims::new("acme", "ann", true, NOW, LIFETIME));
    }

    #[test]
    fn wrong_key_forgery_unknown_kid_and_junk_are_refused() {
        let (k, other) = (key(1, 1), key(2, 1));
        let t = token(&k, "acme");
        // The other key under the same kid: the signature does not verify.
        let impostor = KeySet::new(&[super::super::keys::PublicKey { kid: k.kid.clone(), x: other.x.clone() }]);
        assert_eq!(verify(&impostor, &t, NOW, 0), Err(AuthError::BadSignature));
        // A token the attacker signed with its own key, claiming the real kid.
        let forged =
            sign(&StoredKey { kid: k.kid.clone(), ..other.clone() }, &Claims::new("acme", "eve", true, NOW, LIFETIME))
                .unwrap();
        let keys = KeySet::new(&[k.public()]);
        assert_eq!(verify(&keys, &forged, NOW, 0), Err(AuthError::BadSignature));
        // Claims edited after signing.
        let parts: Vec<&str> = t.split('.').collect();
        let edited_claims = URL_SAFE_NO_PAD.encode(
            String::from_utf8(URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap().replace("\"ann\"", "\"eve\""),
        );
        let edited = format!("{}.{}.{}", parts[0], edited_claims, parts[2]);
        assert_eq!(verify(&keys, &edited, NOW, 0), Err(AuthError::BadSignature));
        // A kid nobody knows.
        assert_eq!(verify(&keys, &token(&other, "acme"), NOW, 0), Err(AuthError::UnknownKey(other.kid.clone())));
        // Junk of every shape.
        let none_alg = format!("{}.{}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#), parts[1]);
        let hs256 = format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"HS256","kid":"{}"}}"#, k.kid)),
            parts[1],
            parts[2]
        );
        let no_kid = format!("{}.{}.{}", URL_SAFE_NO_PAD.encode(r#"{"alg":"EdDSA"}"#), parts[1], parts[2]);
        let long = "a".repeat(MAX_TOKEN_LEN + 1);
        for junk in ["", "a.b", "a.b.c", "...", &none_alg, &hs256, &no_kid, &long, &t[..t.len() - 3]] {
            let got = verify(&keys, junk, NOW, 0);
            assert!(matches!(got, Err(AuthError::Malformed(_) | AuthError::BadSignature)), "{junk}: {got:?}");
        }
    }

    #[test]
    fn times_are_checked_against_the_given_clock_with_leeway() {
        let k = key(1, 1);
        let keys = KeySet::new(&[k.public()]);
        let t = token(&k, "acme");
        assert_eq!(verify(&keys, &t, NOW - 1, 0), Err(AuthError::NotYetValid { nbf_ms: NOW, now_ms: NOW - 1 }));
        assert!(verify(&keys, &t, NOW - 1_000, 1_000).is_ok(), "a verifier 1 s behind, within leeway");
        assert!(verify(&keys, &t, NOW + LIFETIME - 1, 0).is_ok());
        assert_eq!(
            verify(&keys, &t, NOW + LIFETIME, 0),
            Err(AuthError::Expired { exp_ms: NOW + LIFETIME, now_ms: NOW + LIFETIME })
        );
        assert!(verify(&keys, &t, NOW + LIFETIME + 999, 1_000).is_ok());
        assert!(verify(&keys, &t, NOW + LIFETIME + 1_000, 1_000).is_err());
    }

    #[test]
    fn claims_are_returned_as_signed_so_another_tenant_is_the_callers_to_refuse() {
        // The signature covers the tenant: a token of tenant "evil" verifies as "evil", never as
        // "acme", and the caller compares it with the document's tenant.
        let k = key(1, 1);
        let c = verify(&KeySet::new(&[k.public()]), &token(&k, "evil"), NOW, 0).unwrap();
        assert_eq!(c.tenant, "evil");
        // Claims that are signed but malformed (a name outside the charset) are refused too.
        let bad = sign(&k, &Claims::new("Evil/../x", "ann", false, NOW, LIFETIME)).unwrap();
        assert!(matches!(verify(&KeySet::new(&[k.public()]), &bad, NOW, 0), Err(AuthError::Malformed(_))));
    }
}
