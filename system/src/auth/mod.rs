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
pub mod api;
mod keeper;
pub mod keys;
pub mod names;
pub mod observe;
pub mod passwords;
pub mod permissions;
pub mod rotation;
pub mod route;
pub mod service;
pub mod store;
#[cfg(test)]
mod tests;
pub mod tokens;
pub mod verifier;

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sim::NodeCtx;

pub use permissions::{Perm, PERMISSION_RECHECK_MS, REVOCATION_BOUND_MS};
pub use tokens::Claims;
pub use verifier::{Verifier, VerifierOptions};

use crate::http::health::{self, HealthFlag};
use crate::http::{read_request, write_response};
use passwords::PasswordCost;
use rotation::RotationPolicy;
use service::AuthService;

pub use crate::http::HTTP_PORT;
/// How long a client may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one request may take end to end (reads and a commit, each retried within budget).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// One auth instance's settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthConfig {
    /// The PostgreSQL cluster's proxies (`PgCluster::proxy`).
    pub pg_proxies: Vec<String>,
    pub password_cost: PasswordCost,
    /// Token lifetime, key rotation interval and grace.
    pub rotation: RotationPolicy,
    /// How often the instance re-reads the signing keys (and rotates when due).
    pub key_check_ms: u64,
    /// How this instance verifies admin tokens (grant, revoke).
    pub verifier: VerifierOptions,
}

impl AuthConfig {
    /// The simulation's settings: the cheapest argon2 cost, 2-minute tokens, keys rotated every
    /// minute and re-read every 5 s, so a 10-minute run sees several rotations and retirements.
    pub fn simulation(pg_proxies: Vec<String>) -> Self {
        AuthConfig {
            pg_proxies,
            password_cost: PasswordCost::simulation(),
            rotation: RotationPolicy { rotate_every_ms: 60_000, token_lifetime_ms: 120_000, grace_ms: 15_000 },
            key_check_ms: 5_000,
            verifier: VerifierOptions::default(),
        }
    }

    /// Production-like settings: OWASP's argon2id cost, 15-minute tokens, daily rotation.
    pub fn production(pg_proxies: Vec<String>) -> Self {
        AuthConfig {
            pg_proxies,
            password_cost: PasswordCost::production(),
            rotation: RotationPolicy { rotate_every_ms: 86_400_000, token_lifetime_ms: 900_000, grace_ms: 120_000 },
            key_check_ms: 30_000,
            verifier: VerifierOptions::default(),
        }
    }

    /// The bounds the rotation rule relies on (see [`rotation`]).
    pub fn validate(&self) -> Result<(), String> {
        if self.pg_proxies.is_empty() {
            return Err("no PostgreSQL proxy".into());
        }
        // The grace covers the re-read interval with its jitter (a quarter) and the verifier's
        // leeway for clock skew.
        let refresh_ms = self.key_check_ms + self.key_check_ms / 4;
        self.rotation.validate(refresh_ms, self.verifier.leeway_ms)
    }
}

/// An auth instance: health on the health port, the key keeper, and the HTTP API on
/// [`HTTP_PORT`]. Runs until the node dies.
pub async fn run(mut ctx: NodeCtx, config: AuthConfig) {
    if let Err(e) = config.validate() {
        tracing::error!(error = %e, "invalid auth config");
        return;
    }
    let flag = HealthFlag::new();
    tokio::spawn(health::serve(ctx.net.clone(), flag.clone()));
    let net = ctx.net.clone();
    let keeper_ctx = ctx.fork();
    let service = match AuthService::new(ctx.fork(), config) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot start auth");
            return;
        }
    };
    tokio::spawn(keeper::run(keeper_ctx, service.clone(), flag));
    let listener = match net.bind(HTTP_PORT).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen");
            return;
        }
    };
    while let Ok((conn, _peer)) = listener.accept().await {
        tokio::spawn(serve_one(conn, service.clone()));
    }
}

/// One connection, one request (the API closes every connection after its answer).
async fn serve_one(mut conn: sim::net::Conn, service: Arc<AuthService>) {
    let exchange = async {
        let response = match sim::timer::timeout(READ_TIMEOUT, read_request(&mut conn)).await {
            Ok(Ok(req)) => service.handle(&req).await,
            Ok(Err(crate::http::HttpError::TooLarge(_))) => service::ApiError::TooLarge.response(),
            Ok(Err(e)) => service::ApiError::BadRequest(e.to_string()).response(),
            Err(_) => return,
        };
        let _ = write_response(&mut conn, &response).await;
    };
    let _ = sim::timer::timeout(REQUEST_TIMEOUT, exchange).await;
}

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
