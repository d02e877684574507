//! Token verification for any service: the public keys of every auth instance, read from the
//! `signing_keys` table, cached, and re-read when a token names a key the cache lacks (a key
//! another instance just created), at most once per `min_refetch_ms` (so a stream of tokens with
//! made-up key ids costs PostgreSQL one read a second, not one per token), and every
//! `refresh_ms` otherwise (so a retired key stops verifying).
//!
//! ```no_run
//! # async fn example(mut ctx: sim::NodeCtx, token: &str) {
//! use system::auth::Verifier;
//! let mut verifier = Verifier::new(&mut ctx, vec!["pg-proxy".into()]);
//! match verifier.verify(token, ctx.clock.wall_ms()).await {
//!     Ok(claims) => println!("{}/{}", claims.tenant, claims.user),
//!     Err(e) if e.is_unavailable() => println!("cannot tell now: {e}"),
//!     Err(e) => println!("refused: {e}"),
//! }
//! # }
//! ```

use serde::{Deserialize, Serialize};
use sim::NodeCtx;
use tokio::time::Instant;

use super::keys::{KeySet, StoredKey, TABLE};
use super::tokens::{self, Claims, CLOCK_LEEWAY_MS};
use super::{store, AuthError};
use crate::postgres::client::PgClient;
use crate::postgres::data::MAX_SCAN_ROWS;

/// How a verifier caches keys and judges times.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifierOptions {
    /// Tolerated clock skew between the issuing node and this one.
    pub leeway_ms: u64,
    /// Re-read the keys this often even when every kid is known.
    pub refresh_ms: u64,
    /// Never read the keys more often than this.
    pub min_refetch_ms: u64,
}

impl Default for VerifierOptions {
    fn default() -> Self {
        VerifierOptions { leeway_ms: CLOCK_LEEWAY_MS, refresh_ms: 30_000, min_refetch_ms: 1_000 }
    }
}

/// The cache's rule, sans-IO: whether to read the keys now (monotonic ms).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FetchPolicy {
    last_attempt_ms: Option<u64>,
    last_success_ms: Option<u64>,
}

impl FetchPolicy {
    pub fn wants_fetch(&self, options: &VerifierOptions, now_ms: u64, kid_known: bool) -> bool {
        let Some(attempt) = self.last_attempt_ms else { return true };
        if now_ms < attempt.saturating_add(options.min_refetch_ms) {
            return false;
        }
        let stale = self.last_success_ms.is_none_or(|s| now_ms >= s.saturating_add(options.refresh_ms));
        !kid_known || stale
    }

    pub fn attempted(&mut self, now_ms: u64, ok: bool) {
        self.last_attempt_ms = Some(now_ms);
        if ok {
            self.last_success_ms = Some(now_ms);
        }
    }
}

/// Verifies tokens of any auth instance (the contract's `system::auth::Verifier`).
pub struct Verifier {
    pg: PgClient,
    keys: KeySet,
    policy: FetchPolicy,
    options: VerifierOptions,
    started: Instant,
}

impl Verifier {
    /// A verifier on `ctx`'s node reading keys through the PostgreSQL proxies `pg_proxies`.
    pub fn new(ctx: &mut NodeCtx, pg_proxies: Vec<String>) -> Self {
        Self::with_options(ctx, pg_proxies, VerifierOptions::default())
    }

    pub fn with_options(ctx: &mut NodeCtx, pg_proxies: Vec<String>, options: VerifierOptions) -> Self {
        Verifier {
            pg: PgClient::new(ctx, pg_proxies),
            keys: KeySet::default(),
            policy: FetchPolicy::default(),
            options,
            started: Instant::now(),
        }
    }

    /// The claims of `token` if an auth instance signed it and it is valid at `now_wall_ms` (the
    /// caller's `ctx.clock.wall_ms()`). [`AuthError::Unavailable`] when the token names a key
    /// not cached and the keys cannot be read now: the caller cannot tell, and must refuse.
    pub async fn verify(&mut self, token: &str, now_wall_ms: u64) -> Result<Claims, AuthError> {
        let kid = tokens::kid_of(token)?;
        let now_ms = self.started.elapsed().as_millis() as u64;
        let mut fetch_error = None;
        if self.policy.wants_fetch(&self.options, now_ms, self.keys.contains(&kid)) {
            fetch_error = self.refresh_at(now_ms).await.err();
        }
        match tokens::verify(&self.keys, token, now_wall_ms, self.options.leeway_ms) {
            Err(AuthError::UnknownKey(_)) if fetch_error.is_some() => Err(fetch_error.expect("checked")),
            other => other,
        }
    }

    /// Reads the keys now (whatever the rate limit), returning how many are known.
    pub async fn refresh(&mut self) -> Result<usize, AuthError> {
        let now_ms = self.started.elapsed().as_millis() as u64;
        self.refresh_at(now_ms).await
    }

    async fn refresh_at(&mut self, now_ms: u64) -> Result<usize, AuthError> {
        let read = read_keys(&mut self.pg).await;
        self.policy.attempted(now_ms, read.is_ok());
        let keys = read?;
        let public: Vec<_> = keys.iter().map(StoredKey::public).collect();
        self.keys = KeySet::new(&public);
        Ok(self.keys.len())
    }

    /// The keys cached now.
    pub fn keys(&self) -> &KeySet {
        &self.keys
    }
}

/// Every valid key row (a corrupt row is skipped with a warning: it signs nothing).
pub async fn read_keys(pg: &mut PgClient) -> Result<Vec<StoredKey>, AuthError> {
    let rows = store::scan(pg, TABLE, "", MAX_SCAN_ROWS).await?;
    let mut keys = Vec::with_capacity(rows.len());
    for (key, value) in rows {
        match StoredKey::from_row(&key, &value) {
            Ok(k) => keys.push(k),
            Err(e) => tracing::warn!(error = %e, "skipping a signing key row"),
        }
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fetch_policy_refetches_unknown_kids_at_a_bounded_rate() {
        let o = VerifierOptions { leeway_ms: 0, refresh_ms: 30_000, min_refetch_ms: 1_000 };
        let mut p = FetchPolicy::default();
        assert!(p.wants_fetch(&o, 0, true), "nothing read yet");
        p.attempted(0, true);
        assert!(!p.wants_fetch(&o, 10, false), "an unknown kid waits for the rate limit");
        assert!(p.wants_fetch(&o, 1_000, false));
        assert!(!p.wants_fetch(&o, 29_999, true), "known kids are served from the cache");
        assert!(p.wants_fetch(&o, 30_000, true), "until the refresh interval");
        p.attempted(30_000, false);
        assert!(!p.wants_fetch(&o, 30_500, true), "a failed read is retried no faster either");
        assert!(p.wants_fetch(&o, 31_000, true), "and the cache is still stale");
    }
}
