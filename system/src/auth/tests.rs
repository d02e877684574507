//! Two auth instances over a PostgreSQL-like cluster, in a small simulated world (turmoil in
//! `cargo test`): sign-up and login on either instance, each verifying the other's tokens,
//! grants and revocations by the tenant's admin, and a key rotation that old tokens survive.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sim::{node_main, NodeCtx, Plan, RunOptions, Topology};

use super::observe::KeyCreated;
use super::*;
use crate::doc_update::DocId;
use crate::http::{self, Request, Response};
use crate::postgres::cluster::PgClusterSpec;

const DURATION_MS: u64 = 22_000;

/// What the client saw, in order.
type Log = Arc<Mutex<Vec<String>>>;

fn config(proxy: &str) -> AuthConfig {
    AuthConfig {
        rotation: RotationPolicy { rotate_every_ms: 4_000, token_lifetime_ms: 9_000, grace_ms: 4_000 },
        key_check_ms: 1_000,
        ..AuthConfig::simulation(vec![proxy.into()])
    }
}

async fn call(ctx: &NodeCtx, node: &str, req: &Request) -> Response {
    match http::call(&ctx.net, node, HTTP_PORT, req, Duration::from_secs(20)).await {
        Ok(r) => r,
        Err(e) => Response::error(599, &e.to_string()),
    }
}

fn creds(tenant: &str, user: &str, password: &str) -> api::Credentials {
    api::Credentials { tenant: tenant.into(), user: user.into(), password: password.into() }
}

async fn login(ctx: &NodeCtx, node: &str, user: &str) -> api::LoggedIn {
    let r = call(ctx, node, &Request::post_json("/auth/login", &creds("acme", user, "pw-of-the-user"))).await;
    assert_eq!(r.status, 200, "login {user} at {node}: {}", String::from_utf8_lossy(&r.body));
    r.json_body().expect("login body")
}

fn grant(token: &str, user: &str, doc: &str, perm: &str) -> Request {
    let body = api::Grant { user: user.into(), doc: doc.into(), perm: perm.into() };
    Request::post_json("/auth/grant", &body).header("authorization", &format!("Bearer {token}"))
}

async fn client(mut ctx: NodeCtx, proxy: String, log: Log) {
    let note = |s: String| log.lock().unwrap().push(s);
    // Wait for both instances to be healthy (the cluster elects its primary first).
    for node in ["auth-1", "auth-2"] {
        loop {
            let r =
                http::call(&ctx.net, node, http::health::HEALTH_PORT, &Request::get("/health"), Duration::from_secs(1))
                    .await;
            if r.is_ok_and(|r| r.status == 200) {
                break;
            }
            sim::timer::sleep(Duration::from_millis(200)).await;
        }
    }
    note(format!("healthy at {}", ctx.clock.now_ms()));
    let signup = |c| Request::post_json("/auth/signup", &c);
    let statuses = [
        call(&ctx, "auth-1", &signup(creds("acme", "ann", "pw-of-the-user"))).await.status,
        call(&ctx, "auth-2", &signup(creds("acme", "bob", "pw-of-the-user"))).await.status,
        call(&ctx, "auth-2", &signup(creds("acme", "ann", "pw-of-the-user"))).await.status,
        call(&ctx, "auth-2", &signup(creds("acme", "ann", "another-password"))).await.status,
        call(&ctx, "auth-1", &signup(creds("Acme", "x", "pw-of-the-user"))).await.status,
        call(&ctx, "auth-1", &signup(creds("acme", "carl", "short"))).await.status,
        call(&ctx, "auth-1", &Request::new("POST", "/auth/signup")).await.status,
        call(&ctx, "auth-1", &Request::get("/auth/nothing")).await.status,
        call(&ctx, "auth-1", &Request::post_json("/auth/login", &creds("acme", "ann", "wrong-password"))).await.status,
        call(&ctx, "auth-1", &Request::post_json("/auth/login", &creds("acme", "zed", "pw-of-the-user"))).await.status,
    ];
    note(format!("statuses {statuses:?}"));
    let ann = login(&ctx, "auth-2", "ann").await;
    let bob = login(&ctx, "auth-1", "bob").await;
    let mut verifier = Verifier::new(&mut ctx, vec![proxy.clone()]);
    for (who, t) in [("ann", &ann), ("bob", &bob)] {
        let c = verifier.verify(&t.token, ctx.clock.wall_ms()).await.expect("a fresh token verifies");
        note(format!("verified {who} {}/{} admin {}", c.tenant, c.user, c.admin));
    }
    // Grants: ann (admin) through the instance that did not issue her token.
    let doc = DocId::parse("acme/plan").unwrap();
    let mut pg = crate::postgres::client::PgClient::new(&mut ctx, vec![proxy.clone()]);
    let grants = [
        call(&ctx, "auth-1", &grant(&ann.token, "bob", "acme/plan", "write")).await.status,
        call(&ctx, "auth-1", &grant(&bob.token, "bob", "acme/plan", "write")).await.status,
        call(&ctx, "auth-1", &grant(&ann.token, "bob", "other/plan", "write")).await.status,
        call(&ctx, "auth-1", &grant(&ann.token, "nobody", "plan", "read")).await.status,
        call(&ctx, "auth-1", &grant(&ann.token, "bob", "plan", "own")).await.status,
        call(&ctx, "auth-1", &grant("not.a.token", "bob", "plan", "read")).await.status,
        call(
            &ctx,
            "auth-1",
            &Request::post_json("/auth/grant", &api::Revoke { user: "bob".into(), doc: "plan".into() }),
        )
        .await
        .status,
    ];
    note(format!("grants {grants:?}"));
    let bob_perm = permissions::check(&mut pg, "acme", "bob", &doc).await;
    let revoke = Request::post_json("/auth/revoke", &api::Revoke { user: "bob".into(), doc: "plan".into() })
        .header("authorization", &format!("Bearer {}", ann.token));
    let revoked = call(&ctx, "auth-2", &revoke).await.status;
    let after = permissions::check(&mut pg, "acme", "bob", &doc).await;
    let ann_perm = permissions::check(&mut pg, "acme", "ann", &doc).await;
    let other_tenant = permissions::check(&mut pg, "evil", "ann", &doc).await;
    note(format!("perms {bob_perm:?} {revoked} {after:?} {ann_perm:?} {other_tenant:?}"));
    // Rotation: log in until a token names another key, then check both still verify, at the
    // verifier and at the other instance.
    let first_kid = tokens::kid_of(&ann.token).unwrap();
    let mut rotated = None;
    for _ in 0..40 {
        let t = login(&ctx, "auth-1", "ann").await;
        if tokens::kid_of(&t.token).unwrap() != first_kid {
            rotated = Some(t);
            break;
        }
        sim::timer::sleep(Duration::from_millis(250)).await;
    }
    let rotated = rotated.expect("a new key within 10 s");
    note(format!("rotated at {}", ctx.clock.now_ms()));
    let now = ctx.clock.wall_ms();
    let old_ok = verifier.verify(&ann.token, now).await.is_ok();
    let new_ok = verifier.verify(&rotated.token, now).await.is_ok();
    let via_other = call(&ctx, "auth-2", &grant(&rotated.token, "bob", "plan", "read")).await.status;
    note(format!("after rotation old {old_ok} new {new_ok} grant {via_other}"));
    let keys: Vec<api::Keys> = [
        call(&ctx, "auth-1", &Request::get("/auth/keys")).await,
        call(&ctx, "auth-2", &Request::get("/auth/keys")).await,
    ]
    .iter()
    .map(|r| r.json_body().expect("keys"))
    .collect();
    note(format!("keys {} {}", keys[0].keys.len(), keys[1].keys.len()));
    // The first token expires (9 s) and its key retires; the verifier then refuses it.
    sim::timer::sleep(Duration::from_millis(9_000)).await;
    let expired = verifier.verify(&ann.token, ctx.clock.wall_ms()).await;
    note(format!("later {expired:?}"));
}

fn run_world(seed: u64) -> (sim::Outcome, Vec<String>) {
    let log: Log = Arc::default();
    let mut plan = Plan::new(Topology::new(), DURATION_MS);
    let mut spec = PgClusterSpec::new("pg");
    spec.backup = None;
    let pg = spec.add_to(&mut plan);
    for (node, zone) in [("auth-1", "az-1"), ("auth-2", "az-2")] {
        plan.topology.add(node, zone, "region-1");
        let c = config(pg.proxy());
        plan.node(node, node_main(move |ctx| run(ctx, c.clone())));
    }
    plan.topology.add("user-1", "az-3", "region-1");
    let (proxy, l) = (pg.proxy().to_string(), log.clone());
    plan.client("user-1", node_main(move |ctx| client(ctx, proxy.clone(), l.clone())));
    let outcome = sim::engine::run(plan, RunOptions { seed, ..RunOptions::default() });
    let seen = log.lock().unwrap().clone();
    (outcome, seen)
}

#[test]
fn two_instances_sign_up_log_in_and_verify_each_others_tokens_across_a_rotation() {
    let seed = std::env::var("AUTH_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    let (outcome, log) = std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(move || run_world(seed))
        .expect("thread starts")
        .join()
        .expect("run completes");
    let text = log.join("\n");
    let find = |prefix: &str| {
        log.iter().find(|l| l.starts_with(prefix)).cloned().unwrap_or_else(|| panic!("no {prefix}: {text}"))
    };
    assert_eq!(find("statuses"), "statuses [201, 201, 201, 409, 400, 400, 400, 404, 401, 401]");
    assert!(log.contains(&"verified ann acme/ann admin true".to_string()), "{text}");
    assert!(log.contains(&"verified bob acme/bob admin false".to_string()), "{text}");
    assert_eq!(find("grants"), "grants [200, 403, 403, 404, 400, 401, 401]");
    assert_eq!(find("perms"), "perms Ok(Some(Write)) 200 Ok(None) Ok(Some(Write)) Ok(None)");
    assert_eq!(find("after rotation"), "after rotation old true new true grant 200");
    assert!(find("keys").starts_with("keys 2") || find("keys").starts_with("keys 3"), "{text}");
    assert!(find("later").contains("Expired") || find("later").contains("UnknownKey"), "{text}");
    let created: Vec<u64> = outcome.observations(|o| o.of::<KeyCreated>().map(|k| k.value.generation).collect());
    let mut unique = created.clone();
    unique.dedup();
    assert_eq!(created, unique, "one key per generation: {created:?}");
    assert!(created.len() >= 3, "several rotations: {created:?}");
}
