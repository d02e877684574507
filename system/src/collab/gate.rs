//! Admission and permission re-checks: who may open a document, and for how long.
//!
//! A session is admitted at the WebSocket handshake: its token (query parameter `token`) is
//! verified against the signing keys and the clock seam, and the user's permission on the
//! document is read from the PostgreSQL-like store. A bad, expired or foreign token is refused
//! with 401, a missing permission with 403, an unreachable store with 503; nothing of the
//! document is sent before.
//!
//! **Revocation bound.** Every session re-checks its permission every
//! [`RECHECK_INTERVAL_MS`] (each check bounded by [`RECHECK_TIMEOUT_MS`]). A check that finds
//! the permission gone (or the token expired) closes the session; one that finds it lowered to
//! read makes the session read-only. A session whose last successful check *started* more than
//! `REVOCATION_BOUND_MS - RECHECK_INTERVAL_MS` ago (the store is unreachable) is closed too, and
//! no frame of a stale session is forwarded. So an edit is accepted at most
//! [`REVOCATION_BOUND_MS`] after the revocation committed: a check started after the commit
//! sees it and ends within interval + timeout (5 s), and without one the staleness rule closes
//! the session within 4 s plus one tick. The numbers are the auth service's
//! (`PERMISSION_RECHECK_MS`, `REVOCATION_BOUND_MS`).
//!
//! The service uses the gate through the [`Gate`] trait: [`AuthGateConfig`] builds the real one
//! (the auth service's `Verifier` and `permissions::check`), [`FakeGate`] is the test double
//! (fixed tokens, a revocation switch).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use sim::NodeCtx;

use crate::doc_update::DocId;

/// How often a session's permission is read again (the auth service's).
pub const RECHECK_INTERVAL_MS: u64 = crate::auth::PERMISSION_RECHECK_MS;
/// The longest one check may take (the auth store's read budget).
pub const RECHECK_TIMEOUT_MS: u64 = 3_000;
/// The longest an edit is accepted after its author's permission was revoked (the auth
/// service's).
pub const REVOCATION_BOUND_MS: u64 = crate::auth::REVOCATION_BOUND_MS;
const _: () = assert!(RECHECK_INTERVAL_MS + RECHECK_TIMEOUT_MS < REVOCATION_BOUND_MS);

pub use crate::auth::Perm;

/// An admitted session's identity and rights.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Access {
    pub tenant: String,
    pub user: String,
    pub perm: Perm,
    /// The token's expiry (wall clock).
    pub exp_ms: u64,
}

/// Why a session is refused or closed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum Denied {
    /// The token is malformed, forged, wrongly signed, or of an unknown key.
    #[error("bad token: {0}")]
    BadToken(String),
    #[error("token expired or not yet valid")]
    Expired,
    /// The token is good but names another tenant, or the user has no permission.
    #[error("forbidden")]
    Forbidden,
    /// The keys or permissions could not be read in time.
    #[error("auth store unavailable")]
    Unavailable,
}

impl Denied {
    /// The HTTP status refusing a handshake for this reason.
    pub fn status(&self) -> u16 {
        match self {
            Denied::BadToken(_) | Denied::Expired => 401,
            Denied::Forbidden => 403,
            Denied::Unavailable => 503,
        }
    }

    pub fn reason(&self) -> &'static str {
        match self {
            Denied::BadToken(_) => "bad_token",
            Denied::Expired => "expired",
            Denied::Forbidden => "forbidden",
            Denied::Unavailable => "unavailable",
        }
    }
}

/// Admission and re-checks for one node (shared by its sessions).
pub trait Gate: Send {
    /// Verifies `token` and reads the user's permission on `doc`.
    fn admit<'a>(
        &'a mut self,
        token: &'a str,
        doc: &'a DocId,
        now_wall_ms: u64,
    ) -> BoxFuture<'a, Result<Access, Denied>>;
    /// Reads the permission of an admitted session again (and checks the token's expiry).
    fn recheck<'a>(
        &'a mut self,
        access: &'a Access,
        doc: &'a DocId,
        now_wall_ms: u64,
    ) -> BoxFuture<'a, Result<Perm, Denied>>;
}

/// Builds a node's gate from its context (a gate holds connections to the auth store).
pub trait MakeGate: Send + Sync {
    fn make(&self, ctx: &mut NodeCtx) -> Box<dyn Gate>;
}

/// A test double: fixed tokens, and permissions that can be revoked or lowered at any time
/// (clones share them).
#[derive(Clone, Debug, Default)]
pub struct FakeGate {
    tokens: BTreeMap<String, Access>,
    state: Arc<Mutex<FakeState>>,
}

#[derive(Debug, Default)]
struct FakeState {
    revoked: BTreeSet<String>,
    read_only: BTreeSet<String>,
    unavailable: bool,
}

impl FakeGate {
    pub fn new() -> Self {
        FakeGate::default()
    }

    /// `token` admits `user` of `tenant` with `perm` until `exp_ms`.
    pub fn token(mut self, token: &str, tenant: &str, user: &str, perm: Perm, exp_ms: u64) -> Self {
        self.tokens.insert(token.into(), Access { tenant: tenant.into(), user: user.into(), perm, exp_ms });
        self
    }

    /// Every permission of `user` is gone from now on.
    pub fn revoke(&self, user: &str) {
        self.state.lock().expect("fake gate lock").revoked.insert(user.into());
    }

    /// `user` may only read from now on.
    pub fn lower_to_read(&self, user: &str) {
        self.state.lock().expect("fake gate lock").read_only.insert(user.into());
    }

    /// The auth store answers nothing (or again).
    pub fn set_unavailable(&self, down: bool) {
        self.state.lock().expect("fake gate lock").unavailable = down;
    }

    fn decide(&self, access: &Access, doc: &DocId, now_wall_ms: u64) -> Result<Access, Denied> {
        let s = self.state.lock().expect("fake gate lock");
        if s.unavailable {
            return Err(Denied::Unavailable);
        }
        if now_wall_ms >= access.exp_ms {
            return Err(Denied::Expired);
        }
        if access.tenant != doc.tenant() || s.revoked.contains(&access.user) {
            return Err(Denied::Forbidden);
        }
        let mut a = access.clone();
        if s.read_only.contains(&access.user) {
            a.perm = Perm::Read;
        }
        Ok(a)
    }
}

impl Gate for FakeGate {
    fn admit<'a>(
        &'a mut self,
        token: &'a str,
        doc: &'a DocId,
        now_wall_ms: u64,
    ) -> BoxFuture<'a, Result<Access, Denied>> {
        Box::pin(async move {
            let access = self.tokens.get(token).ok_or_else(|| Denied::BadToken("unknown token".into()))?;
            self.decide(access, doc, now_wall_ms)
        })
    }

    fn recheck<'a>(
        &'a mut self,
        access: &'a Access,
        doc: &'a DocId,
        now_wall_ms: u64,
    ) -> BoxFuture<'a, Result<Perm, Denied>> {
        Box::pin(async move { self.decide(access, doc, now_wall_ms).map(|a| a.perm) })
    }
}

impl MakeGate for FakeGate {
    fn make(&self, _ctx: &mut NodeCtx) -> Box<dyn Gate> {
        Box::new(self.clone())
    }
}

/// The real gate: tokens verified by the auth service's [`Verifier`] (keys from PostgreSQL),
/// permissions read with [`permissions::check`] on the primary.
pub struct AuthGate {
    verifier: crate::auth::Verifier,
    pg: crate::postgres::client::PgClient,
}

/// Builds an [`AuthGate`] reading through the PostgreSQL proxies `pg_proxies`.
#[derive(Clone, Debug)]
pub struct AuthGateConfig {
    pub pg_proxies: Vec<String>,
}

impl MakeGate for AuthGateConfig {
    fn make(&self, ctx: &mut NodeCtx) -> Box<dyn Gate> {
        Box::new(AuthGate {
            verifier: crate::auth::Verifier::new(ctx, self.pg_proxies.clone()),
            pg: crate::postgres::client::PgClient::new(ctx, self.pg_proxies.clone()),
        })
    }
}

fn denied(e: crate::auth::AuthError) -> Denied {
    use crate::auth::AuthError as E;
    match e {
        E::Expired { .. } | E::NotYetValid { .. } => Denied::Expired,
        E::Unavailable(_) | E::Corrupt(_) => Denied::Unavailable,
        other => Denied::BadToken(other.to_string()),
    }
}

impl Gate for AuthGate {
    fn admit<'a>(
        &'a mut self,
        token: &'a str,
        doc: &'a DocId,
        now_wall_ms: u64,
    ) -> BoxFuture<'a, Result<Access, Denied>> {
        Box::pin(async move {
            let claims = self.verifier.verify(token, now_wall_ms).await.map_err(denied)?;
            if claims.tenant != doc.tenant() {
                return Err(Denied::Forbidden);
            }
            let perm = crate::auth::permissions::check(&mut self.pg, &claims.tenant, &claims.user, doc)
                .await
                .map_err(denied)?
                .ok_or(Denied::Forbidden)?;
            Ok(Access { tenant: claims.tenant, user: claims.user, perm, exp_ms: claims.exp_ms })
        })
    }

    fn recheck<'a>(
        &'a mut self,
        access: &'a Access,
        doc: &'a DocId,
        now_wall_ms: u64,
    ) -> BoxFuture<'a, Result<Perm, Denied>> {
        Box::pin(async move {
            if now_wall_ms >= access.exp_ms {
                return Err(Denied::Expired);
            }
            let perm = crate::auth::permissions::check(&mut self.pg, &access.tenant, &access.user, doc)
                .await
                .map_err(denied)?
                .ok_or(Denied::Forbidden)?;
            Ok(perm)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block<T>(f: impl std::future::Future<Output = T>) -> T {
        futures_util::FutureExt::now_or_never(f).expect("the fake never waits")
    }

    #[test]
    fn fake_gate_admits_refuses_and_revokes() {
        let doc = DocId::parse("acme/plan").unwrap();
        let mut g = FakeGate::new().token("t1", "acme", "ann", Perm::Write, 10_000).token(
            "t2",
            "other",
            "bob",
            Perm::Write,
            10_000,
        );
        let a = block(g.admit("t1", &doc, 5)).unwrap();
        assert_eq!(a.perm, Perm::Write);
        assert_eq!(block(g.admit("nope", &doc, 5)).unwrap_err().status(), 401);
        assert_eq!(block(g.admit("t2", &doc, 5)).unwrap_err().status(), 403);
        assert_eq!(block(g.admit("t1", &doc, 10_000)).unwrap_err(), Denied::Expired);
        g.lower_to_read("ann");
        assert_eq!(block(g.recheck(&a, &doc, 6)), Ok(Perm::Read));
        g.revoke("ann");
        assert_eq!(block(g.recheck(&a, &doc, 6)), Err(Denied::Forbidden));
        g.set_unavailable(true);
        assert_eq!(block(g.admit("t1", &doc, 5)).unwrap_err().status(), 503);
    }
}
