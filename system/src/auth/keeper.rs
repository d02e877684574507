//! The key keeper: the thin shell that drives [`super::rotation`] for one auth instance. Every
//! `key_check_ms` (with seeded jitter, so instances do not all read at once) it reads the
//! `signing_keys` rows, installs them as the instance's ring (the newest signs from then on),
//! retires what is due, and creates the next generation when one is due. A creation that loses
//! the race to another instance (its transaction's check fails) is simply re-read at once.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use sim::NodeCtx;

use super::observe::{KeyCreated, KeysRetired};
use super::rotation::{create_txn, retire_txn, KeyAction, KeyRing};
use super::service::AuthService;
use super::store::{self, Commit};
use super::verifier::read_keys;
use crate::http::health::HealthFlag;

/// Runs until the node dies; raises `health` once the store answered and a signing key exists.
pub async fn run(mut ctx: NodeCtx, service: Arc<AuthService>, health: HealthFlag) {
    let policy = service.config.rotation;
    let check_ms = service.config.key_check_ms;
    let mut pg = service.take_pg();
    loop {
        let mut again = false;
        match read_keys(&mut pg).await {
            Ok(keys) => {
                let ring = KeyRing::new(keys);
                let now_ms = ctx.clock.wall_ms();
                let actions = ring.plan(&policy, now_ms);
                let up = ring.current().is_some();
                *service.ring.lock().expect("ring lock") = ring;
                if up {
                    health.set(true);
                }
                again = apply(&ctx, &service, &mut pg, actions, now_ms).await;
            }
            Err(e) => tracing::warn!(error = %e, "cannot read signing keys"),
        }
        // After a change, re-read soon (not at once: a read that keeps disagreeing with the
        // store's checks must not spin).
        let pause_ms = if again { 50 } else { check_ms + ctx.rng.gen_range(0..=check_ms / 4) };
        sim::timer::sleep(Duration::from_millis(pause_ms)).await;
    }
}

/// Carries out the ring's actions; true when the ring changed and should be re-read now.
async fn apply(
    ctx: &NodeCtx,
    service: &AuthService,
    pg: &mut crate::postgres::client::PgClient,
    actions: Vec<KeyAction>,
    now_ms: u64,
) -> bool {
    let retire: Vec<u64> = actions
        .iter()
        .filter_map(|a| match a {
            KeyAction::Retire { generation } => Some(*generation),
            KeyAction::Create { .. } => None,
        })
        .collect();
    if !retire.is_empty() && matches!(store::commit(pg, &retire_txn(service.txn_id(), &retire)).await, Ok(Commit::Done))
    {
        ctx.trace("auth.keys_retired", serde_json::json!({ "generations": retire }));
        ctx.observe(&KeysRetired { generations: retire });
    }
    let Some(generation) = actions.iter().find_map(|a| match a {
        KeyAction::Create { generation } => Some(*generation),
        KeyAction::Retire { .. } => None,
    }) else {
        return false;
    };
    let key = service.new_key(generation, now_ms);
    match store::commit(pg, &create_txn(service.txn_id(), &key)).await {
        Ok(Commit::Done) => {
            ctx.observe(&KeyCreated { kid: key.kid.clone(), generation, created_ms: now_ms });
            if generation > 1 {
                ctx.sometimes("auth.key_rotated");
            }
            true
        }
        Ok(Commit::CheckFailed(_)) => {
            // Another instance made this generation first: use its key.
            ctx.sometimes("auth.key_race_lost");
            true
        }
        Err(e) => {
            tracing::warn!(error = %e, generation, "cannot create a signing key");
            false
        }
    }
}
