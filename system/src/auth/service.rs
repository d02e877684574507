//! The HTTP API's handlers (routing and the checks that need no store are [`super::route`]),
//! over the shared state of one auth instance (its key ring, a pool of PostgreSQL clients, its
//! rng, a verifier for admin tokens).
//!
//! | request | answers |
//! | --- | --- |
//! | `POST /auth/signup {tenant, user, password}` | 201 [`api::SignedUp`], 400, 409 (user exists) |
//! | `POST /auth/login {tenant, user, password}` | 200 [`api::LoggedIn`], 400, 401 |
//! | `POST /auth/grant {user, doc, perm}` + admin bearer | 200 [`api::Changed`], 400, 401, 403, 404 (no such user) |
//! | `POST /auth/revoke {user, doc}` + admin bearer | 200 [`api::Changed`], 400, 401, 403 |
//! | `GET /auth/keys` | 200 [`api::Keys`] |
//!
//! Anything else is 404 (unknown path) or 405 (known path, other method); a body over
//! [`api::MAX_BODY_LEN`] is 413; a store that cannot answer is 503 (nothing was concluded, the
//! client retries). A sign-up retried after an unsettled commit finds its user and answers 201
//! again when the password matches, so a retry is idempotent.

use std::sync::{Arc, Mutex};

use rand_chacha::ChaCha8Rng;
use sim::NodeCtx;

use super::keys::StoredKey;
use super::passwords::Passwords;
use super::permissions::{self, Perm};
use super::rotation::KeyRing;
use super::route::{self, Call};
use super::store::{self, Commit};
use super::tokens::{self, Claims};
use super::{accounts, api, observe, AuthConfig, AuthError, Verifier};
use crate::http::{Request, Response};
use crate::postgres::client::PgClient;

/// A handler's failure, as the status it answers with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApiError {
    BadRequest(String),
    Unauthorized(String),
    Forbidden(String),
    NotFound(String),
    MethodNotAllowed,
    Conflict(String),
    TooLarge,
    Unavailable(String),
}

impl ApiError {
    pub fn status(&self) -> u16 {
        match self {
            ApiError::BadRequest(_) => 400,
            ApiError::Unauthorized(_) => 401,
            ApiError::Forbidden(_) => 403,
            ApiError::NotFound(_) => 404,
            ApiError::MethodNotAllowed => 405,
            ApiError::Conflict(_) => 409,
            ApiError::TooLarge => 413,
            ApiError::Unavailable(_) => 503,
        }
    }

    pub fn response(&self) -> Response {
        let message = match self {
            ApiError::MethodNotAllowed => "method not allowed",
            ApiError::TooLarge => "body too large",
            ApiError::BadRequest(m)
            | ApiError::Unauthorized(m)
            | ApiError::Forbidden(m)
            | ApiError::NotFound(m)
            | ApiError::Conflict(m)
            | ApiError::Unavailable(m) => m,
        };
        Response::error(self.status(), message)
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Unavailable(m) => ApiError::Unavailable(m),
            AuthError::Corrupt(m) => ApiError::Unavailable(format!("corrupt row: {m}")),
            other => ApiError::Unauthorized(other.to_string()),
        }
    }
}

/// One auth instance's state, shared by its connections and its key keeper.
pub struct AuthService {
    pub(super) config: AuthConfig,
    passwords: Passwords,
    pub(super) ring: Mutex<KeyRing>,
    /// The node's context, for forking new PostgreSQL clients; its rng for salts and txn ids.
    ctx: Mutex<NodeCtx>,
    rng: Mutex<ChaCha8Rng>,
    pool: Mutex<Vec<PgClient>>,
    verifier: tokio::sync::Mutex<Verifier>,
    node: String,
    incarnation: u64,
}

impl AuthService {
    pub fn new(mut ctx: NodeCtx, config: AuthConfig) -> Result<Arc<Self>, String> {
        let passwords = Passwords::new(config.password_cost).map_err(|e| e.to_string())?;
        let verifier = Verifier::with_options(&mut ctx, config.pg_proxies.clone(), config.verifier);
        let rng = ctx.fork().rng;
        Ok(Arc::new(AuthService {
            passwords,
            ring: Mutex::new(KeyRing::default()),
            rng: Mutex::new(rng),
            pool: Mutex::new(Vec::new()),
            verifier: tokio::sync::Mutex::new(verifier),
            node: ctx.name.clone(),
            incarnation: ctx.incarnation,
            ctx: Mutex::new(ctx),
            config,
        }))
    }

    /// A PostgreSQL client from the pool (a new one when all are in use).
    pub(super) fn take_pg(&self) -> PgClient {
        if let Some(pg) = self.pool.lock().expect("pool lock").pop() {
            return pg;
        }
        let mut ctx = self.ctx.lock().expect("ctx lock");
        PgClient::new(&mut ctx, self.config.pg_proxies.clone())
    }

    pub(super) fn put_pg(&self, pg: PgClient) {
        self.pool.lock().expect("pool lock").push(pg);
    }

    pub(super) fn txn_id(&self) -> String {
        store::txn_id(&self.node, self.incarnation, &mut *self.rng.lock().expect("rng lock"))
    }

    pub(super) fn new_key(&self, generation: u64, now_ms: u64) -> StoredKey {
        StoredKey::generate(generation, now_ms, &mut *self.rng.lock().expect("rng lock"))
    }

    fn observe<T: sim::Observation>(&self, v: &T) {
        self.ctx.lock().expect("ctx lock").observe(v);
    }

    fn wall_ms(&self) -> u64 {
        self.ctx.lock().expect("ctx lock").clock.wall_ms()
    }

    /// Answers one request (never panics on its content).
    pub async fn handle(&self, req: &Request) -> Response {
        let call = route::route(req);
        if let Err(ApiError::TooLarge) = call {
            return ApiError::TooLarge.response();
        }
        let mut pg = self.take_pg();
        let answer = match call {
            Ok(call) => self.call(&mut pg, call).await,
            Err(e) => Err(e),
        };
        self.put_pg(pg);
        answer.unwrap_or_else(|e| e.response())
    }

    async fn call(&self, pg: &mut PgClient, call: Call) -> Result<Response, ApiError> {
        match call {
            Call::Signup(body) => self.signup(pg, body).await,
            Call::Login(body) => self.login(pg, body).await,
            Call::Change { token, user, doc, perm } => self.change(pg, &token, &user, &doc, perm).await,
            Call::Keys => {
                let keys = self.ring.lock().expect("ring lock").public_keys();
                Ok(Response::json(200, &api::Keys { keys }))
            }
        }
    }

    /// A sign-up whose body [`route::route`] checked.
    async fn signup(&self, pg: &mut PgClient, body: api::Credentials) -> Result<Response, ApiError> {
        // Two attempts: the first may lose a race to create the same tenant, and then joins it.
        for _ in 0..2 {
            let new_tenant = accounts::admin_of(pg, &body.tenant).await?.is_none();
            let phc = {
                let mut rng = self.rng.lock().expect("rng lock");
                self.passwords.hash(&body.password, &mut *rng).map_err(|e| ApiError::Unavailable(e.to_string()))?
            };
            let txn = accounts::signup_txn(self.txn_id(), &body.tenant, &body.user, &phc, new_tenant);
            match store::commit(pg, &txn).await? {
                Commit::Done => return Ok(self.signed_up(&body, new_tenant)),
                Commit::CheckFailed(_) => {}
            }
            if let Some((phc, admin)) = accounts::credentials(pg, &body.tenant, &body.user).await? {
                if self.passwords.verify(&body.password, &phc) {
                    return Ok(self.signed_up(&body, admin));
                }
                return Err(ApiError::Conflict(format!("user {}/{} exists", body.tenant, body.user)));
            }
        }
        Err(ApiError::Unavailable("sign-up kept racing; retry".into()))
    }

    fn signed_up(&self, body: &api::Credentials, admin: bool) -> Response {
        self.observe(&observe::SignedUp { tenant: body.tenant.clone(), user: body.user.clone(), admin });
        let out = api::SignedUp { tenant: body.tenant.clone(), user: body.user.clone(), admin };
        Response::json(201, &out)
    }

    /// A login whose body [`route::route`] checked.
    async fn login(&self, pg: &mut PgClient, body: api::Credentials) -> Result<Response, ApiError> {
        let denied = route::denied;
        let Some((phc, admin)) = accounts::credentials(pg, &body.tenant, &body.user).await? else {
            return Err(denied());
        };
        if !self.passwords.verify(&body.password, &phc) {
            return Err(denied());
        }
        let key = self.ring.lock().expect("ring lock").current().cloned();
        let key = key.ok_or_else(|| ApiError::Unavailable("no signing key yet".into()))?;
        let now_ms = self.wall_ms();
        let claims = Claims::new(&body.tenant, &body.user, admin, now_ms, self.config.rotation.token_lifetime_ms);
        let token = tokens::sign(&key, &claims)?;
        self.observe(&observe::TokenIssued {
            tenant: claims.tenant.clone(),
            user: claims.user.clone(),
            kid: key.kid.clone(),
            exp_ms: claims.exp_ms,
        });
        Ok(Response::json(200, &api::LoggedIn { token, expires_at_ms: claims.exp_ms }))
    }

    /// A grant (`perm` Some) or a revocation, by the admin whose token the request bears.
    async fn change(
        &self,
        pg: &mut PgClient,
        token: &str,
        user: &str,
        doc: &str,
        perm: Option<Perm>,
    ) -> Result<Response, ApiError> {
        let now_ms = self.wall_ms();
        let claims = self.verifier.lock().await.verify(token, now_ms).await?;
        let doc = route::change_target(&claims, user, doc)?;
        let txn = match perm {
            Some(p) => permissions::grant_txn(self.txn_id(), &doc, user, p),
            None => permissions::revoke_txn(self.txn_id(), &doc, user),
        };
        if let Commit::CheckFailed(_) = store::commit(pg, &txn).await? {
            return Err(ApiError::NotFound(format!("no user {}/{user}", doc.tenant())));
        }
        self.observe(&observe::PermissionChanged { doc: doc.to_string(), user: user.into(), perm });
        let out = api::Changed { doc: doc.to_string(), user: user.into(), perm: perm.map(|p| p.as_str().into()) };
        Ok(Response::json(200, &out))
    }
}
