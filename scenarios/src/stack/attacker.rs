//! The attacker: presents forged, wrongly signed, expired, other-tenant and missing tokens to
//! the collaboration endpoint (and an other-tenant admin token to the grant API), keeps writing
//! as a user whose permission gets revoked, and sends malformed WebSocket and y-sync frames on a
//! legitimate connection. Every attack is recorded ([`Attack`]); whatever an attack manages to
//! write carries [`ATTACK_MARK`], which no editor ever types.
//!
//! An attack is *accepted* when the WebSocket upgrade succeeds (101) with a token that must be
//! refused, or the grant API answers 2xx to another tenant's admin. A revoked user's reconnect
//! is recorded as attack `revoked`; the checker judges it against when the revocation took
//! effect and the bound.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rand::Rng;
use sim::NodeCtx;
use system::collab::protocol::{self, Frame};
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;
use yrs::StateVector;

use super::acked::ClockRange;
use super::check::security::ATTACK_MARK;
use super::observe::{Attack, MalformedSent, RevokedWrite};
use super::users::{self, OpenError, Token, Ws};
use super::ydoc;

#[derive(Clone, Debug)]
pub struct AttackerConfig {
    pub tenant: String,
    pub balancers: Vec<String>,
    /// A user granted write on `revoke_doc`, revoked by the admin later.
    pub revoked_user: (String, String),
    pub revoke_doc: String,
    /// A user granted write on `target_doc` (a real document with editors).
    pub insider: (String, String),
    pub target_doc: String,
    /// Another tenant, its admin and password (signed up by the attacker).
    pub other: (String, String, String),
    pub start_ms: u64,
    pub until_ms: u64,
    pub gap_ms: (u64, u64),
}

const ATTACKS: &[&str] = &[
    "no_token",
    "forged",
    "wrong_key",
    "other_tenant",
    "other_tenant_grant",
    "malformed_ws",
    "malformed_sync",
    "expired",
];

pub async fn run(mut ctx: NodeCtx, cfg: AttackerConfig) {
    users::sleep_until_ms(&ctx.clock, cfg.start_ms).await;
    let writer = ctx.fork();
    let writer_cfg = cfg.clone();
    tokio::spawn(async move { revoked_writer(writer, writer_cfg).await });
    let mut old_token: Option<Token> = None;
    let mut i = 0usize;
    while ctx.clock.now_ms() < cfg.until_ms {
        let gap = ctx.rng.gen_range(cfg.gap_ms.0..=cfg.gap_ms.1);
        sim::timer::sleep(Duration::from_millis(gap)).await;
        let lb = cfg.balancers[ctx.rng.gen_range(0..cfg.balancers.len())].clone();
        let attack = ATTACKS[i % ATTACKS.len()];
        i += 1;
        let (ru, rp) = &cfg.revoked_user;
        let token = match users::login(&ctx.net, &lb, &cfg.tenant, ru, rp).await {
            Ok(t) => t,
            Err(_) => continue,
        };
        if old_token.is_none() {
            old_token = Some(token.clone());
        }
        match attack {
            "no_token" => try_token(&mut ctx, &lb, &cfg.target_doc, None, attack).await,
            "forged" => {
                let forged = forge(&token.token).unwrap_or_else(|| token.token.clone());
                try_token(&mut ctx, &lb, &cfg.target_doc, Some(&forged), attack).await
            }
            "wrong_key" => {
                let sig: Vec<u8> = (0..64).map(|_| ctx.rng.gen()).collect();
                let resigned = match token.token.rsplit_once('.') {
                    Some((head, _)) => format!("{head}.{}", b64url(&sig)),
                    None => continue,
                };
                // On the document this user may write (until revoked): only the signature is wrong.
                try_token(&mut ctx, &lb, &cfg.revoke_doc, Some(&resigned), attack).await
            }
            "expired" => {
                let Some(old) = &old_token else { continue };
                if old.expires_at_ms + 5_000 > ctx.clock.wall_ms() {
                    continue;
                }
                let old = old.token.clone();
                try_token(&mut ctx, &lb, &cfg.revoke_doc, Some(&old), attack).await;
                old_token = Some(token);
            }
            "other_tenant" | "other_tenant_grant" => {
                let (t, u, p) = &cfg.other;
                if !matches!(users::signup(&ctx.net, &lb, t, u, p).await, Ok(201 | 409)) {
                    continue;
                }
                let Ok(other) = users::login(&ctx.net, &lb, t, u, p).await else { continue };
                if attack == "other_tenant" {
                    try_token(&mut ctx, &lb, &cfg.target_doc, Some(&other.token), attack).await
                } else {
                    let status = users::grant(&ctx.net, &lb, &other.token, u, &cfg.target_doc, Some("write")).await;
                    let accepted = matches!(status, Ok(s) if (200..300).contains(&s));
                    ctx.observe(&Attack { attack: attack.into(), accepted, detail: format!("{status:?}") });
                }
            }
            "malformed_ws" | "malformed_sync" => malformed(&mut ctx, &lb, &cfg, attack).await,
            _ => {}
        }
    }
}

/// Opens the document with a token that must be refused; if it is not, writes the mark.
async fn try_token(ctx: &mut NodeCtx, lb: &str, doc: &str, token: Option<&str>, attack: &str) {
    match users::open(&ctx.net, lb, doc, token, false, Duration::from_secs(10)).await {
        Ok(mut ws) => {
            let (d, t) = ydoc::new_doc(ctx.rng.gen_range(1..=ydoc::MAX_CLIENT_ID));
            let update = ydoc::edit(&d, &t, 0, 0, &ATTACK_MARK.to_string());
            let _ = ws.send(Message::Binary(protocol::encode_step1(&StateVector::default()).into())).await;
            let _ = ws.send(Message::Binary(protocol::encode_update(update).into())).await;
            sim::timer::sleep(Duration::from_secs(2)).await;
            let _ = ws.close(None).await;
            ctx.observe(&Attack { attack: attack.into(), accepted: true, detail: format!("upgraded through {lb}") });
        }
        Err(OpenError::Refused(s)) => {
            ctx.observe(&Attack { attack: attack.into(), accepted: false, detail: format!("refused {s}") });
        }
        Err(OpenError::Failed(e)) => tracing::debug!(error = %e, attack, "attack inconclusive"),
    }
}

/// A legitimate connection, then a malformed frame: the server must close it.
async fn malformed(ctx: &mut NodeCtx, lb: &str, cfg: &AttackerConfig, attack: &str) {
    let (u, p) = &cfg.insider;
    let Ok(token) = users::login(&ctx.net, lb, &cfg.tenant, u, p).await else { return };
    let Ok(mut ws) =
        users::open(&ctx.net, lb, &cfg.target_doc, Some(&token.token), false, Duration::from_secs(10)).await
    else {
        return;
    };
    if ws.send(Message::Binary(protocol::encode_step1(&StateVector::default()).into())).await.is_err() {
        return;
    }
    sim::timer::sleep(Duration::from_millis(500)).await;
    let sent = if attack == "malformed_ws" {
        // A frame with reserved bits and a reserved opcode: no WebSocket peer may accept it.
        let conn = ws.get_mut();
        conn.write_all(&[0xF3, 0x85, 1, 2, 3, 4, 0xde, 0xad, 0xbe, 0xef, 0x00]).await.is_ok()
            && conn.flush().await.is_ok()
    } else {
        // A y-sync update whose payload is no update at all, and whose mark must not land.
        let mut garbage = vec![0u8, 2, 9, 0xff, 0xff, 0xff, 0x7f];
        garbage.extend(ATTACK_MARK.to_string().as_bytes());
        ws.send(Message::Binary(garbage.into())).await.is_ok()
    };
    if !sent {
        return;
    }
    let closed = sim::timer::timeout(Duration::from_secs(5), async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return true,
                Some(Ok(_)) => {}
            }
        }
    })
    .await
    .unwrap_or(false);
    ctx.observe(&MalformedSent { doc: cfg.target_doc.clone(), closed });
    ctx.observe(&Attack { attack: attack.into(), accepted: false, detail: format!("closed: {closed}") });
}

/// Writes as the user whose permission will be revoked, reconnecting whenever dropped; each
/// write is recorded with its clock range, each reconnect as attack `revoked`.
async fn revoked_writer(mut ctx: NodeCtx, cfg: AttackerConfig) {
    let (u, p) = cfg.revoked_user.clone();
    let mut sessions = 0u64;
    while ctx.clock.now_ms() < cfg.until_ms {
        let lb = cfg.balancers[ctx.rng.gen_range(0..cfg.balancers.len())].clone();
        sim::timer::sleep(Duration::from_millis(ctx.rng.gen_range(1_000..3_000))).await;
        let Ok(token) = users::login(&ctx.net, &lb, &cfg.tenant, &u, &p).await else { continue };
        let ws = match users::open(&ctx.net, &lb, &cfg.revoke_doc, Some(&token.token), true, Duration::from_secs(10))
            .await
        {
            Ok(ws) => ws,
            Err(OpenError::Refused(s)) => {
                if sessions > 0 {
                    ctx.observe(&Attack { attack: "revoked".into(), accepted: false, detail: format!("refused {s}") });
                }
                continue;
            }
            Err(OpenError::Failed(_)) => continue,
        };
        if sessions > 0 {
            ctx.observe(&Attack {
                attack: "revoked".into(),
                accepted: true,
                detail: format!("reconnected through {lb}"),
            });
        }
        sessions += 1;
        write_session(&mut ctx, ws, &cfg).await;
    }
}

async fn write_session(ctx: &mut NodeCtx, mut ws: Ws, cfg: &AttackerConfig) {
    let (doc, text) = ydoc::new_doc(ctx.rng.gen_range(1..=ydoc::MAX_CLIENT_ID));
    let client = doc.client_id().get();
    if ws.send(Message::Binary(protocol::encode_step1(&StateVector::default()).into())).await.is_err() {
        return;
    }
    while ctx.clock.now_ms() < cfg.until_ms {
        let wait = sim::timer::sleep(Duration::from_millis(ctx.rng.gen_range(500..1_500)));
        tokio::pin!(wait);
        loop {
            tokio::select! {
                biased;
                msg = ws.next() => match msg {
                    Some(Ok(Message::Binary(b))) => {
                        match protocol::decode(&b) {
                            Ok(Frame::SyncStep1(sv)) => {
                                let step2 = protocol::encode_step2(ydoc::diff(&doc, &ydoc::to_sv(&sv)));
                                let _ = ws.send(Message::Binary(step2.into())).await;
                            }
                            Ok(Frame::SyncStep2(_, u) | Frame::Update(_, u)) => {
                                let _ = ydoc::integrate(&doc, u);
                            }
                            _ => {}
                        }
                    }
                    Some(Ok(_)) => {}
                    None | Some(Err(_)) => return,
                },
                _ = &mut wait => break,
            }
        }
        let start = ydoc::sv_of(&doc).get(&client).copied().unwrap_or(0);
        let len = ydoc::text_of(&doc, &text).len() as u32;
        let update = ydoc::edit(&doc, &text, len, 0, "m");
        if ws.send(Message::Binary(protocol::encode_update(update).into())).await.is_err() {
            return;
        }
        ctx.observe(&RevokedWrite { doc: cfg.revoke_doc.clone(), range: ClockRange { client, start, end: start + 1 } });
    }
}

/// The token with its claims changed to an admin's, signature kept.
fn forge(token: &str) -> Option<String> {
    let mut parts = token.split('.');
    let (head, payload, sig) = (parts.next()?, parts.next()?, parts.next()?);
    let mut claims: serde_json::Value = serde_json::from_slice(&b64url_decode(payload)?).ok()?;
    let obj = claims.as_object_mut()?;
    obj.insert("admin".into(), serde_json::Value::Bool(true));
    obj.insert("user".into(), serde_json::Value::String("admin".into()));
    if let Some(exp) = obj.get("exp").and_then(|v| v.as_u64()) {
        obj.insert("exp".into(), serde_json::Value::from(exp + 86_400));
    }
    Some(format!("{head}.{}.{sig}", b64url(serde_json::to_string(&claims).ok()?.as_bytes())))
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn b64url(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

fn b64url_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes() {
        let v = B64.iter().position(|b| *b == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_round_trips_and_forging_keeps_the_signature() {
        for s in ["", "a", "ab", "abc", "abcd", "{\"user\":\"m\"}"] {
            assert_eq!(b64url_decode(&b64url(s.as_bytes())).unwrap(), s.as_bytes());
        }
        let token = format!("{}.{}.SIG", b64url(b"{\"alg\":\"EdDSA\"}"), b64url(b"{\"user\":\"m\",\"exp\":5}"));
        let forged = forge(&token).unwrap();
        assert!(forged.ends_with(".SIG"));
        let claims: serde_json::Value =
            serde_json::from_slice(&b64url_decode(forged.split('.').nth(1).unwrap()).unwrap()).unwrap();
        assert_eq!(claims["user"], "admin");
        assert_eq!(claims["admin"], true);
    }
}
