//! The tenant's admin: signs the tenant's admin up (which creates the tenant), signs every
//! user up, grants each editor write on its document, then at a set moment revokes one user's
//! permission and records when the revocation took effect ([`Revoked`]). Each call is retried
//! with backoff through the next balancer until it gets a definite answer.
//!
//! Once the users exist it also runs a synthetic monitor ([`probe`]): every `probe_ms` until
//! `probe_until_ms` it logs in and loads `probe_doc` through the next balancer, recording each
//! outcome as liveness. Editors log in and load only when they (re)connect, so without it the
//! liveness checker would measure when someone next tried, not when the service came back.

use std::time::Duration;

use rand::Rng;
use sim::NodeCtx;

use super::editor::LiveLog;
use super::observe::Revoked;
use super::users;

#[derive(Clone, Debug)]
pub struct AdminConfig {
    pub tenant: String,
    pub admin: (String, String),
    pub balancers: Vec<String>,
    /// Other users of the tenant: (user, password).
    pub users: Vec<(String, String)>,
    /// (user, doc, "read" | "write").
    pub grants: Vec<(String, String, String)>,
    /// (user, doc, when): revoke then.
    pub revoke: Option<(String, String, u64)>,
    pub start_ms: u64,
    pub live_sample_ms: u64,
    /// The monitor's document, period and end.
    pub probe_doc: String,
    pub probe_ms: u64,
    pub probe_until_ms: u64,
}

struct Retry {
    lb: usize,
    n: usize,
}

impl Retry {
    async fn wait(&mut self, ctx: &mut NodeCtx, attempt: u32) {
        self.lb = (self.lb + 1) % self.n;
        let cap = (200u64 << attempt.min(5)).min(5_000);
        let ms = ctx.rng.gen_range(cap / 2..=cap);
        sim::timer::sleep(Duration::from_millis(ms)).await;
    }
}

pub async fn run(mut ctx: NodeCtx, cfg: AdminConfig) {
    users::sleep_until_ms(&ctx.clock, cfg.start_ms).await;
    let mut retry = Retry { lb: ctx.rng.gen_range(0..cfg.balancers.len()), n: cfg.balancers.len() };
    let lbs = cfg.balancers.clone();
    let net = ctx.net.clone();
    let (admin, admin_pw) = cfg.admin.clone();
    let mut attempt = 0;
    loop {
        match users::signup(&net, &lbs[retry.lb], &cfg.tenant, &admin, &admin_pw).await {
            Ok(201 | 409) => break,
            other => tracing::debug!(?other, "admin sign-up retried"),
        }
        attempt += 1;
        retry.wait(&mut ctx, attempt).await;
    }
    for (user, pw) in &cfg.users {
        let mut attempt = 0;
        loop {
            match users::signup(&net, &lbs[retry.lb], &cfg.tenant, user, pw).await {
                Ok(201 | 409) => break,
                other => tracing::debug!(?other, user, "sign-up retried"),
            }
            attempt += 1;
            retry.wait(&mut ctx, attempt).await;
        }
    }
    ctx.sometimes("stack.users_signed_up");
    tokio::spawn(probe(ctx.fork(), cfg.clone()));
    let mut live = LiveLog::default();
    let mut token = login(&mut ctx, &mut retry, &lbs, &cfg, &mut live).await;
    for (user, doc, perm) in &cfg.grants {
        let mut attempt = 0;
        loop {
            match users::grant(&net, &lbs[retry.lb], &token.token, user, doc, Some(perm)).await {
                Ok(200) => break,
                Ok(401) => token = login(&mut ctx, &mut retry, &lbs, &cfg, &mut live).await,
                other => tracing::debug!(?other, user, doc, "grant retried"),
            }
            attempt += 1;
            retry.wait(&mut ctx, attempt).await;
        }
    }
    ctx.sometimes("stack.permissions_granted");
    let Some((user, doc, at_ms)) = cfg.revoke.clone() else { return };
    users::sleep_until_ms(&ctx.clock, at_ms).await;
    let mut attempt = 0;
    loop {
        if token.expires_at_ms < ctx.clock.wall_ms() + 10_000 {
            token = login(&mut ctx, &mut retry, &lbs, &cfg, &mut live).await;
        }
        match users::grant(&net, &lbs[retry.lb], &token.token, &user, &doc, None).await {
            Ok(200) => break,
            Ok(401) => token = login(&mut ctx, &mut retry, &lbs, &cfg, &mut live).await,
            other => tracing::debug!(?other, "revoke retried"),
        }
        attempt += 1;
        retry.wait(&mut ctx, attempt).await;
    }
    ctx.observe(&Revoked { user, doc });
    ctx.sometimes("stack.permission_revoked");
}

async fn login(
    ctx: &mut NodeCtx,
    retry: &mut Retry,
    lbs: &[String],
    cfg: &AdminConfig,
    live: &mut LiveLog,
) -> users::Token {
    let mut attempt = 0;
    loop {
        match users::login(&ctx.net, &lbs[retry.lb], &cfg.tenant, &cfg.admin.0, &cfg.admin.1).await {
            Ok(t) => {
                live.record(ctx, "login", true, cfg.live_sample_ms);
                return t;
            }
            Err(e) => {
                live.record(ctx, "login", false, cfg.live_sample_ms);
                tracing::debug!(error = %e, "admin login retried");
            }
        }
        attempt += 1;
        retry.wait(ctx, attempt).await;
    }
}

/// The synthetic monitor: a login and a document load through each balancer in turn, every
/// `probe_ms`, each recorded as liveness (`login`, `load`) and as an operation of the
/// availability report (`monitor_login`, `monitor_load`: a front door that is down fails them,
/// as it fails a client that knows only that one).
async fn probe(mut ctx: NodeCtx, cfg: AdminConfig) {
    let mut live = LiveLog::default();
    let mut lb = ctx.rng.gen_range(0..cfg.balancers.len());
    while ctx.clock.now_ms() < cfg.probe_until_ms {
        lb = (lb + 1) % cfg.balancers.len();
        let node = &cfg.balancers[lb];
        let started_ms = ctx.clock.now_ms();
        let login = users::login(&ctx.net, node, &cfg.tenant, &cfg.admin.0, &cfg.admin.1).await;
        live.record(&ctx, "login", login.is_ok(), 0);
        users::op_since(&ctx, "monitor_login", login.is_ok(), started_ms);
        let started_ms = ctx.clock.now_ms();
        let load = users::load_state(&ctx.net, node, &cfg.probe_doc).await;
        live.record(&ctx, "load", load.is_ok(), 0);
        users::op_since(&ctx, "monitor_load", load.is_ok(), started_ms);
        sim::timer::sleep(Duration::from_millis(cfg.probe_ms)).await;
    }
}
