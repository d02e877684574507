//! A simulated editor: logs in through a balancer, opens its document's collaboration
//! WebSocket with `ack=1`, syncs (step 1/2), types its script at human rates, records what the
//! server acknowledged, and on any drop reconnects with backoff and seeded jitter through the
//! next balancer, resyncing with step 1/2. Near the end it stops typing, waits for the room to go
//! quiet, asks the room for its whole state (step 1 with an empty state vector) and records its
//! last word ([`EditorFinal`]).
//!
//! Tokens expire (the collaboration service closes a session whose token ran out), so an editor
//! refreshes before that, as a real client does: a seeded margin (`refresh_margin_ms`) before
//! `expires_at_ms` it logs in again in the background while the session goes on, and once the
//! new token is there it switches at a convenient moment (no edit of its own waiting for its
//! acknowledgement, or at the latest [`REFRESH_FORCE_MS`] before expiry): it closes the session
//! and reconnects at once with the new token, through the same balancer; y-sync's step 1/2
//! makes the switch lossless. A refresh that fails is retried every [`REFRESH_RETRY_MS`]; only
//! when every retry fails until expiry does the server close the session as expired.
//!
//! A *trusting* editor (synthetic documents) behaves like a user who closes the tab once the
//! app shows "all changes saved": when its connection drops and every edit of its own was
//! acknowledged, it drops its copy and starts afresh (a new `yrs` client id) from whatever the
//! server has. That is exactly what makes an acknowledgement a promise: an edit acknowledged
//! before it was durable and then lost by the server is lost for good, and the lost-edit checker
//! sees it. Trace editors keep their copy and resync (their scripts build on it).
//!
//! The protocol logic is in [`EditorCore`] (sans-IO); this is its shell.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rand::Rng;
use sim::NodeCtx;
use system::collab::protocol::{self, Frame};
use tokio_tungstenite::tungstenite::Message;
use yrs::StateVector;

use super::acked::RangeSet;
use super::editor_core::EditorCore;
use super::observe::{AckedAt, Dropped, EditorFinal, Live};
use super::reconnect::Reconnect;
use super::save_latency::SaveLatency;
use super::typist::{Burst, Pace, Script, Typist};
use super::users::{self, OpenError, Token, Ws};
use super::ydoc::{self, DocState};

#[derive(Clone, Debug)]
pub struct EditorConfig {
    pub tenant: String,
    pub user: String,
    pub password: String,
    /// `tenant/name`.
    pub doc: String,
    pub balancers: Vec<String>,
    pub script: Script,
    /// The `yrs` client id to type as (a concurrent trace's agent); None: drawn from the RNG.
    pub client_id: Option<u64>,
    pub trusting: bool,
    pub pace: Pace,
    pub start_ms: u64,
    pub type_until_ms: u64,
    pub final_at_ms: u64,
    pub backoff_ms: (u64, u64),
    /// A connection whose step 2 has not come this long after opening is dropped.
    pub sync_timeout_ms: u64,
    /// A connection silent this long while own edits wait for their ack is dropped.
    pub stall_timeout_ms: u64,
    /// One [`Live`] record per capability per this period while it works.
    pub live_sample_ms: u64,
    /// The token is refreshed this long (drawn per editor from the range) before it expires.
    pub refresh_margin_ms: (u64, u64),
}

/// A fresh token is switched to at the latest this long before the old one expires.
pub const REFRESH_FORCE_MS: u64 = 5_000;
/// A failed background refresh is retried after this long.
pub const REFRESH_RETRY_MS: u64 = 3_000;

/// Samples of what works, recorded as [`Live`] observations.
#[derive(Default)]
pub struct LiveLog {
    last: BTreeMap<&'static str, (bool, u64)>,
}

impl LiveLog {
    pub fn record(&mut self, ctx: &NodeCtx, what: &'static str, ok: bool, sample_ms: u64) {
        let now = ctx.clock.now_ms();
        let due = match self.last.get(what) {
            Some((was, at)) => *was != ok || now >= at + sample_ms,
            None => true,
        };
        if due {
            self.last.insert(what, (ok, now));
            ctx.observe(&Live { what: what.to_string(), ok });
        }
    }
}

enum End {
    /// The room's whole state (None: it never answered).
    Final(Option<DocState>),
    Dropped(String),
    /// The editor closed the session to switch to this fresh token.
    Refresh(Token),
}

struct Editor {
    cfg: EditorConfig,
    core: EditorCore,
    typist: Typist,
    acked: RangeSet,
    reconnect: Reconnect,
    live: LiveLog,
    saves: SaveLatency,
    acked_at: Vec<AckedAt>,
    /// When the current attempt to open the document began (until it synced or failed).
    load_started_ms: Option<u64>,
    next_key_ms: u64,
    lb: String,
    /// The token of the current session.
    token: Option<Token>,
    /// This editor's refresh margin (drawn from the config's range).
    refresh_margin_ms: u64,
}

fn new_client_id(rng: &mut impl Rng) -> u64 {
    rng.gen_range(1..=ydoc::MAX_CLIENT_ID)
}

pub async fn run(mut ctx: NodeCtx, cfg: EditorConfig) {
    users::sleep_until_ms(&ctx.clock, cfg.start_ms).await;
    let id = cfg.client_id.unwrap_or_else(|| new_client_id(&mut ctx.rng));
    let first = ctx.rng.gen_range(0..cfg.balancers.len());
    let refresh_margin_ms = ctx.rng.gen_range(cfg.refresh_margin_ms.0..=cfg.refresh_margin_ms.1);
    let mut ed = Editor {
        core: EditorCore::new(id),
        typist: Typist::new(cfg.script.clone()),
        acked: RangeSet::default(),
        reconnect: Reconnect::new(cfg.backoff_ms.0, cfg.backoff_ms.1, cfg.balancers.len(), first),
        live: LiveLog::default(),
        saves: SaveLatency::default(),
        acked_at: Vec::new(),
        load_started_ms: None,
        next_key_ms: 0,
        lb: String::new(),
        token: None,
        refresh_margin_ms,
        cfg,
    };
    // Set after a refresh: reconnect at once, through the same balancer.
    let mut switching = false;
    loop {
        let now = ctx.clock.now_ms();
        if now >= ed.cfg.final_at_ms + 10_000 {
            ed.record_final(&ctx, None);
            return;
        }
        if !switching {
            ed.lb = ed.cfg.balancers[ed.reconnect.balancer()].clone();
        }
        switching = false;
        let wall = ctx.clock.wall_ms();
        let expiring = ed.token.as_ref().is_none_or(|t| t.expires_at_ms < wall + ed.refresh_margin_ms);
        if expiring {
            let started_ms = ctx.clock.now_ms();
            let login = users::login(&ctx.net, &ed.lb, &ed.cfg.tenant, &ed.cfg.user, &ed.cfg.password).await;
            users::op_since(&ctx, "login", login.is_ok(), started_ms);
            match login {
                Ok(t) => {
                    ed.live.record(&ctx, "login", true, ed.cfg.live_sample_ms);
                    ed.token = Some(t);
                }
                Err(e) => {
                    tracing::debug!(error = %e, lb = %ed.lb, "login failed");
                    ed.live.record(&ctx, "login", false, ed.cfg.live_sample_ms);
                    ed.back_off(&mut ctx).await;
                    continue;
                }
            }
        }
        let t = ed.token.as_ref().map(|t| t.token.clone());
        ed.load_started_ms = Some(ctx.clock.now_ms());
        let ws = match users::open(&ctx.net, &ed.lb, &ed.cfg.doc, t.as_deref(), true, Duration::from_secs(10)).await {
            Ok(ws) => ws,
            Err(e) => {
                tracing::debug!(error = ?e, lb = %ed.lb, "open failed");
                if matches!(e, OpenError::Refused(401)) {
                    ed.token = None;
                }
                ed.live.record(&ctx, "load", false, ed.cfg.live_sample_ms);
                ed.load_failed(&ctx);
                ed.back_off(&mut ctx).await;
                continue;
            }
        };
        let end = ed.session(&mut ctx, ws).await;
        ed.load_failed(&ctx);
        ed.core.disconnected();
        ed.fold_acks();
        match end {
            End::Final(room) => {
                ed.record_final(&ctx, room);
                return;
            }
            End::Refresh(fresh) => {
                ed.token = Some(fresh);
                switching = true;
                ctx.sometimes("stack.editor_refreshed_token");
            }
            End::Dropped(reason) => {
                ctx.observe(&Dropped { doc: ed.cfg.doc.clone(), balancer: ed.lb.clone(), reason });
                if ed.cfg.trusting && ed.core.unacked_own().is_empty() {
                    // "All changes saved": the user closes the tab and opens the document afresh.
                    ed.settle_saves(&ctx);
                    ed.core = EditorCore::new(new_client_id(&mut ctx.rng));
                    ctx.sometimes("stack.editor_reopened_after_saved");
                }
                ed.back_off(&mut ctx).await;
            }
        }
    }
}

impl Editor {
    async fn back_off(&mut self, ctx: &mut NodeCtx) {
        let delay = self.reconnect.failed(&mut ctx.rng);
        sim::timer::sleep(Duration::from_millis(delay)).await;
    }

    fn fold_acks(&mut self) {
        for r in self.core.acked().ranges() {
            self.acked.insert(r);
        }
    }

    /// The edits whose acknowledgements arrived, as `edit` operations.
    fn record_saves(&mut self, ctx: &NodeCtx) {
        let own = self.core.client_id();
        let prefix =
            self.core.acked().ranges().into_iter().find(|r| r.client == own && r.start == 0).map_or(0, |r| r.end);
        for saved in self.saves.acked(prefix, ctx.clock.now_ms()) {
            users::record_op(ctx, "edit", saved.ok, saved.latency_ms);
        }
    }

    /// The editor leaves this copy (it stops, or reopens afresh): the acknowledged edits
    /// complete and every edit still waiting fails.
    fn settle_saves(&mut self, ctx: &NodeCtx) {
        self.record_saves(ctx);
        for saved in self.saves.abandon(ctx.clock.now_ms()) {
            users::record_op(ctx, "edit", saved.ok, saved.latency_ms);
        }
    }

    /// An attempt to open the document ended without the room's step 2 (nothing if it synced).
    fn load_failed(&mut self, ctx: &NodeCtx) {
        if let Some(started_ms) = self.load_started_ms.take() {
            users::op_since(ctx, "load", false, started_ms);
        }
    }

    fn own_clock(&self) -> u32 {
        self.core.own_clock()
    }

    fn record_final(&mut self, ctx: &NodeCtx, room: Option<DocState>) {
        self.settle_saves(ctx);
        self.fold_acks();
        let state = DocState { text: self.core.text(), sv: self.core.sv(), pending: self.core.has_pending() };
        ctx.observe(&EditorFinal {
            editor: ctx.name.clone(),
            doc: self.cfg.doc.clone(),
            client_id: self.core.client_id(),
            state,
            room,
            acked: self.acked.ranges(),
            acked_at: self.acked_at.clone(),
            unacked_own: self.core.unacked_own(),
            script: self.typist.label(),
            typed: self.typist.typed(),
            stats: self.core.stats.clone(),
        });
    }

    /// One connection, until it drops or the final read is done.
    async fn session(&mut self, ctx: &mut NodeCtx, ws: Ws) -> End {
        let (mut tx, mut rx) = ws.split();
        let opened_ms = ctx.clock.now_ms();
        let mut last_frame_ms = opened_ms;
        let mut probe_deadline: Option<u64> = None;
        // The background login, the fresh token it got, and when to try again after a failure.
        let mut refreshing: Option<tokio::task::JoinHandle<Result<Token, String>>> = None;
        let mut fresh: Option<Token> = None;
        let mut refresh_retry_wall_ms = 0u64;
        let mut refresh_started_ms = 0u64;
        for f in self.core.connected() {
            if let Err(e) = tx.send(Message::Binary(f.into())).await {
                return End::Dropped(format!("send: {e}"));
            }
        }
        // One sleep for the session, moved only when the wake-up moves: a new one on every turn
        // would add a timer entry per frame received (see `sim::timer`). Deadlines count whole
        // milliseconds from one instant, so an unchanged wake-up is an unchanged deadline.
        let (base, base_ms) = (tokio::time::Instant::now(), ctx.clock.now_ms());
        let mut wakeup = Box::pin(sim::timer::sleep_until(base));
        loop {
            let now = ctx.clock.now_ms();
            let synced = self.core.is_synced();
            if !synced && now >= opened_ms + self.cfg.sync_timeout_ms {
                return End::Dropped("no sync step 2 in time".into());
            }
            if now >= last_frame_ms + self.cfg.stall_timeout_ms && !self.core.unacked_own().is_empty() {
                return End::Dropped("stalled with unacknowledged edits".into());
            }
            if let Some(d) = probe_deadline {
                if now >= d {
                    return End::Final(None);
                }
            } else if synced && now >= self.cfg.final_at_ms {
                let probe = protocol::encode_step1(&StateVector::default());
                if let Err(e) = tx.send(Message::Binary(probe.into())).await {
                    return End::Dropped(format!("send: {e}"));
                }
                probe_deadline = Some(now + 5_000);
            }
            let wall = ctx.clock.wall_ms();
            let expires = self.token.as_ref().map_or(u64::MAX, |t| t.expires_at_ms);
            let refresh_at_wall = expires.saturating_sub(self.refresh_margin_ms).max(refresh_retry_wall_ms);
            if probe_deadline.is_none() {
                if fresh.is_none() && refreshing.is_none() && wall >= refresh_at_wall {
                    let (net, lb, cfg) = (ctx.net.clone(), self.lb.clone(), self.cfg.clone());
                    refresh_started_ms = now;
                    refreshing = Some(tokio::spawn(async move {
                        users::login(&net, &lb, &cfg.tenant, &cfg.user, &cfg.password).await
                    }));
                }
                let convenient = self.core.unacked_own().is_empty() || wall + REFRESH_FORCE_MS >= expires;
                if convenient {
                    if let Some(t) = fresh.take() {
                        let _ = tx.send(Message::Close(None)).await;
                        return End::Refresh(t);
                    }
                }
            }
            if synced && probe_deadline.is_none() && now < self.cfg.type_until_ms && now >= self.next_key_ms {
                let frames = self.type_burst(ctx);
                for f in frames {
                    if let Err(e) = tx.send(Message::Binary(f.into())).await {
                        return End::Dropped(format!("send: {e}"));
                    }
                }
                self.next_key_ms = now + self.cfg.pace.gap(&mut ctx.rng);
            }
            // The stall deadline matters only while edits wait for acknowledgement (and typing,
            // which makes them, ends a turn of this loop): an idle editor that counted it would
            // wake every millisecond once the server had been quiet that long.
            let mut wake = u64::MAX;
            if !self.core.unacked_own().is_empty() {
                wake = (last_frame_ms + self.cfg.stall_timeout_ms).max(now + 1);
            }
            if !synced {
                wake = wake.min(opened_ms + self.cfg.sync_timeout_ms);
            }
            match probe_deadline {
                Some(d) => wake = wake.min(d),
                None => wake = wake.min(self.cfg.final_at_ms.max(now + 1)),
            }
            if synced && probe_deadline.is_none() && now < self.cfg.type_until_ms {
                wake = wake.min(self.next_key_ms.max(now + 1));
            }
            if probe_deadline.is_none() {
                // Wall deadlines, as simulated-time ones.
                let until = |at_wall: u64| now + at_wall.saturating_sub(wall).max(1);
                if fresh.is_none() && refreshing.is_none() {
                    wake = wake.min(until(refresh_at_wall));
                }
                if fresh.is_some() {
                    wake = wake.min(until(expires.saturating_sub(REFRESH_FORCE_MS)));
                }
            }
            let deadline = base + Duration::from_millis(wake - base_ms);
            if wakeup.deadline() != deadline {
                wakeup.as_mut().reset(deadline);
            }
            tokio::select! {
                biased;
                got = async { refreshing.as_mut().expect("guarded").await }, if refreshing.is_some() => {
                    refreshing = None;
                    users::op_since(ctx, "login", matches!(got, Ok(Ok(_))), refresh_started_ms);
                    match got {
                        Ok(Ok(t)) => {
                            self.live.record(ctx, "login", true, self.cfg.live_sample_ms);
                            fresh = Some(t);
                        }
                        _ => {
                            self.live.record(ctx, "login", false, self.cfg.live_sample_ms);
                            refresh_retry_wall_ms = ctx.clock.wall_ms() + REFRESH_RETRY_MS;
                        }
                    }
                }
                msg = rx.next() => {
                    let bytes = match msg {
                        Some(Ok(Message::Binary(b))) => b,
                        Some(Ok(Message::Close(Some(f)))) => return End::Dropped(format!("closed: {}", f.reason)),
                        Some(Ok(Message::Close(None))) | None => return End::Dropped("closed".into()),
                        Some(Err(e)) => return End::Dropped(format!("{e}")),
                        Some(Ok(_)) => continue,
                    };
                    last_frame_ms = ctx.clock.now_ms();
                    if probe_deadline.is_some() {
                        if let Ok(Frame::SyncStep2(u, _)) = protocol::decode(&bytes) {
                            let room = ydoc::read_update(&u).ok();
                            let _ = self.core.receive(&bytes);
                            return End::Final(room);
                        }
                    }
                    let (was_synced, acks_before) = (self.core.is_synced(), self.core.stats.acks_in);
                    match self.core.receive(&bytes) {
                        Ok(replies) => {
                            for f in replies {
                                if let Err(e) = tx.send(Message::Binary(f.into())).await {
                                    return End::Dropped(format!("send: {e}"));
                                }
                            }
                        }
                        Err(e) => return End::Dropped(format!("bad frame from the server: {e}")),
                    }
                    if !was_synced && self.core.is_synced() {
                        if let Some(started_ms) = self.load_started_ms.take() {
                            users::op_since(ctx, "load", true, started_ms);
                        }
                        self.reconnect.succeeded();
                        self.live.record(ctx, "load", true, self.cfg.live_sample_ms);
                        if self.core.stats.connects > 1 {
                            ctx.sometimes("stack.editor_reconnected_resynced");
                        }
                    }
                    if self.core.stats.acks_in > acks_before {
                        self.record_saves(ctx);
                        self.live.record(ctx, "edit", true, self.cfg.live_sample_ms);
                    }
                }
                _ = wakeup.as_mut() => {}
            }
        }
    }

    /// Types the script's next burst: the frames to send.
    fn type_burst(&mut self, ctx: &mut NodeCtx) -> Vec<Vec<u8>> {
        let burst = self.typist.next(&self.core, &self.cfg.pace, &mut ctx.rng);
        if matches!(burst, Burst::Patches(_) | Burst::Updates(_)) {
            let frames = self.type_now(burst);
            self.saves.typed(self.own_clock(), ctx.clock.now_ms());
            return frames;
        }
        Vec::new()
    }

    fn type_now(&mut self, burst: Burst) -> Vec<Vec<u8>> {
        match burst {
            Burst::Patches(ps) => self.core.type_patches(&ps).into_iter().collect(),
            Burst::Updates(us) => {
                let mut out = Vec::new();
                for u in us {
                    match self.core.type_update(&u) {
                        Ok(f) => out.extend(f),
                        Err(e) => tracing::error!(error = %e, "a trace step does not apply"),
                    }
                }
                out
            }
            Burst::Wait | Burst::Done => Vec::new(),
        }
    }
}
