//! The auth service: sign-up and login against credentials in the PostgreSQL-like store, EdDSA
//! JWTs under rotating keys kept in that store, and per-document permissions granted by each
//! tenant's admin.
//!
//! # What it models
//! - **Credentials** ([`passwords`]): argon2id hashes (PHC strings) with salts from the node's
//!   seeded rng, in the `credentials` table, committed with `synchronous_commit = on` (the
//!   cluster derives the level from the tables a transaction writes), so an acknowledged sign-up
//!   survives a failover. The cost is a parameter ([`passwords::PasswordCost`]).
//! - **Tokens** ([`tokens`]): JWTs signed with EdDSA (Ed25519) by the `jsonwebtoken` crate's
//!   pure-Rust backend, the key named by the header's `kid`; `exp`/`nbf` checked against the
//!   verifying node's wall clock from the clock seam, never the library's system clock.
//! - **Keys** ([`keys`], [`rotation`]): Ed25519 keys from the node's rng, one row per generation
//!   in the `signing_keys` table (synchronous commit). Every instance reads the table every
//!   [`AuthConfig::key_check_ms`]; the newest generation signs; a new one is created when the
//!   newest is [`rotation::RotationPolicy::rotate_every_ms`] old, by a transaction that only
//!   commits if that generation does not exist yet (two instances rotating at once make one
//!   key); an old key is deleted once every token it can have signed has expired.
//! - **Verification anywhere** ([`verifier::Verifier`]): any node (auth, collaboration) reads the
//!   public keys from the table, caches them, and re-reads on an unknown kid at a bounded rate.
//! - **Permissions** ([`permissions`]): `read` or `write` per (document, user), granted and
//!   revoked by the tenant's admin (the user who created the tenant, who may also read and write
//!   every document of the tenant without a grant), committed synchronously; the revocation
//!   bound the collaboration service must meet is [`permissions::REVOCATION_BOUND_MS`].
//! - **The HTTP API** ([`service`]): `POST /auth/signup|login|grant|revoke` and
//!   `GET /auth/keys` on [`HTTP_PORT`], health on the health port once the store answered and a
//!   signing key exists.
//!
//! # What it leaves out
//! Refresh tokens and logout (a token lives until its `exp`; a revoked permission is enforced
//! by the re-check, not by revoking tokens), password change and reset, rate limiting of login
//! attempts, constant-time answers for unknown users, user deletion, and a secrets manager for
//! the private keys (the table stands for it; see [`keys`]).

pub mod accounts;
pub mod keys;
pub mod names;
pub mod passwords;
pub mod rotation;
pub mod store;
pub mod tokens;
pub mod verifier;

pub use tokens::Claims;
pub use verifier::Verifier;

/// Why a token, a request or a store access failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("malformed token: {0}")]
    Malformed(String),
    #[error("token names unknown key {0}")]
    UnknownKey(String),
    #[error("token signature does not verify")]
    BadSignature,
    #[error("token expired at {exp_ms} (now {now_ms})")]
    Expired { exp_ms: u64, now_ms: u64 },
    #[error("token not valid before {nbf_ms} (now {now_ms})")]
    NotYetValid { nbf_ms: u64, now_ms: u64 },
    /// The store could not answer now: nothing can be concluded (callers refuse).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A row in the store is not what this service writes.
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

impl AuthError {
    /// True when the failure says nothing about the token or the request (retry later).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, AuthError::Unavailable(_))
    }
}
