//! The node shell: one PostgreSQL-like member and its Patroni-like manager, over the seams.
//!
//! The node keeps its WAL, its tables and its role in one [`Inner`] behind a mutex (never held
//! across an await). Each role (primary of an epoch, standby following a leader) runs tasks that
//! belong to a *generation*; every role change bumps the generation and aborts those tasks, and
//! every step that awaits re-checks the generation before acting on what it found. A demotion, an
//! I/O error and a start all go through [`Node::reload`]: the in-memory state is rebuilt from the
//! WAL on disk, as Patroni restarts PostgreSQL in recovery when it demotes it.

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::json;
use sim::net::Conn;
use sim::NodeCtx;
use tokio::sync::{oneshot, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::cluster::PgRoles;
use super::data::{Durability, Tables};
use super::dcs::{ClusterView, Command, Outcome};
use super::dcs_client::DcsClient;
use super::manager::{Action, Local, LocalRole, Manager, Timing};
use super::observe::{Demoted, Flushed};
use super::protocol::{MemberRole, MemberStatus, ReadInfo, Request, Response, CLIENT_PORT, MEMBER_PORT};
use super::replication::{StandbyProgress, SyncRep};
use super::wal::{read_segments, Cut, LoadTail, Position, Wal};
use crate::wire;

/// Marks a WAL that lost synced records, until a peer has sent them again. Durable, so a second
/// restart does not forget the damage.
pub(super) const DAMAGE_FILE: &str = "pg.damaged";
const MEMBER_POLL_TIMEOUT: Duration = Duration::from_millis(300);
const CLIENT_IDLE: Duration = Duration::from_secs(10);

/// How a member is set up.
#[derive(Clone)]
pub struct PgConfig {
    /// Every member's node name, this one included.
    pub members: Vec<String>,
    /// The DCS nodes.
    pub dcs: Vec<String>,
    /// The object-store node that receives base backups and archived WAL, if any.
    pub archive: Option<String>,
    pub durability: Durability,
    pub timing: Timing,
    /// The roles this member claims, namespaced by its cluster.
    pub roles: PgRoles,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Role {
    Primary { epoch: u64 },
    Standby { following: Option<(String, u64)> },
}

pub(super) struct Inner {
    pub generation: u64,
    pub role: Role,
    pub wal: Wal,
    /// State including records not yet flushed (the primary checks transactions against it).
    pub head: Tables,
    /// State of the flushed records: what readers see.
    pub visible: Tables,
    pub flushed: u64,
    pub damaged: bool,
    /// An I/O error happened: the HA loop reloads from disk before anything else.
    pub broken: bool,
    /// The primary acknowledges writes only before this (simulated ms).
    pub fence_ms: u64,
    pub sync: SyncRep,
    pub standbys: BTreeMap<String, StandbyProgress>,
    pub waiters: BTreeMap<u64, oneshot::Sender<()>>,
    pub next_waiter: u64,
    /// Standby: the primary's flush position as last reported, and when we last knew we had
    /// all of it (the lag grows from there while nothing arrives, as `now() -
    /// pg_last_xact_replay_timestamp()` does).
    pub primary_flushed: u64,
    pub caught_up_ms: Option<u64>,
    /// Standby with a damaged WAL: repaired once flushed up to here.
    pub repair_target: Option<u64>,
    /// A standby has compared timelines with its leader (and rewound) since its last role
    /// change: until then its log may hold records the cluster discarded, so it serves no reads.
    pub streamed: bool,
}

impl Inner {
    pub fn position_at(&self, index: u64) -> Position {
        self.wal.get(index).map_or(Position::default(), |r| Position { epoch: r.epoch, index })
    }

    pub fn primary_epoch(&self) -> Option<u64> {
        match self.role {
            Role::Primary { epoch } => Some(epoch),
            Role::Standby { .. } => None,
        }
    }
}

pub(super) struct Node {
    pub ctx: NodeCtx,
    pub config: PgConfig,
    inner: Mutex<Inner>,
    /// Woken (all waiters, in order) whenever the flush position moves. A plain `Notify`, not
    /// a `watch` channel: tokio's `watch` spreads waiters over several notifiers chosen by a
    /// process-global random stream, which would make wake-up order differ between runs.
    pub flushed_moved: Notify,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// Wakes the HA loop early (a synchronous standby caught up, an I/O error).
    pub wake: Notify,
}

/// Runs one member until the node dies.
pub async fn run(ctx: NodeCtx, config: PgConfig) {
    if !config.members.contains(&ctx.name) || config.dcs.is_empty() {
        ctx.trace("pg.misconfigured", json!({ "members": config.members, "dcs": config.dcs }));
        return;
    }
    let dcs = DcsClient::new(ctx.net.clone(), config.dcs.clone());
    let manager = Manager::new(&ctx.name, config.timing.clone());
    let sync = SyncRep::new(config.timing.wal_sender_timeout_ms);
    let inner = Inner {
        generation: 0,
        role: Role::Standby { following: None },
        wal: Wal::default(),
        head: Tables::default(),
        visible: Tables::default(),
        flushed: 0,
        damaged: false,
        broken: false,
        fence_ms: 0,
        sync,
        standbys: BTreeMap::new(),
        waiters: BTreeMap::new(),
        next_waiter: 0,
        primary_flushed: 0,
        caught_up_ms: None,
        repair_target: None,
        streamed: false,
    };
    let node = Arc::new(Node { ctx, config, inner: Mutex::new(inner), flushed_moved: Notify::new(), tasks: Mutex::default(), wake: Notify::new() });
    node.reload("start").await;
    tokio::spawn(node.clone().serve_clients());
    tokio::spawn(node.clone().serve_replication());
    tokio::spawn(node.clone().serve_member_api());
    node.ha_loop(dcs, manager).await;
}

impl Node {
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn name(&self) -> &str {
        &self.ctx.name
    }

    pub fn now_ms(&self) -> u64 {
        self.ctx.clock.now_ms()
    }

    /// Spawns a task of generation `gen`; it is aborted at the next role change (or never
    /// started if that change already happened).
    pub fn spawn_role_task<F>(&self, gen: u64, fut: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let inner = self.lock();
        if inner.generation != gen {
            return;
        }
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        tasks.retain(|t| !t.is_finished());
        tasks.push(tokio::spawn(fut));
    }

    /// Ends the current role: bumps the generation, aborts its tasks, fails every waiting
    /// commit (its client learns nothing: indeterminate). Returns the new generation.
    pub fn stop(&self, role: Role) -> u64 {
        let mut inner = self.lock();
        let was_primary = inner.primary_epoch().is_some();
        inner.generation += 1;
        inner.role = role;
        inner.waiters.clear();
        inner.sync = SyncRep::new(self.config.timing.wal_sender_timeout_ms);
        inner.standbys.clear();
        inner.fence_ms = 0;
        inner.streamed = false;
        for t in self.tasks.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
            t.abort();
        }
        if was_primary {
            self.ctx.set_role(&self.config.roles.primary, false);
        }
        inner.generation
    }

    /// Moves the flush position to `upto` and applies the newly flushed records for readers.
    pub fn advance_flushed(&self, inner: &mut Inner, upto: u64) {
        let upto = upto.min(inner.wal.last_index());
        if upto <= inner.flushed {
            return;
        }
        for i in inner.flushed + 1..=upto {
            if let Some(r) = inner.wal.get(i) {
                super::wal::apply(&mut inner.visible, r);
            }
        }
        inner.flushed = upto;
        self.flushed_moved.notify_waiters();
        if let Some(epoch) = inner.primary_epoch() {
            self.ctx.observe(&Flushed { epoch, index: upto });
        }
    }

    /// Rebuilds everything from the WAL on disk, as a PostgreSQL restart would, and comes up as
    /// a standby following nobody yet. Retries until the disk cooperates.
    pub async fn reload(&self, why: &str) {
        loop {
            match self.try_reload(why).await {
                Ok(()) => return,
                Err(e) => {
                    self.ctx.trace("pg.reload_failed", json!({ "why": why, "error": e.to_string() }));
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    async fn try_reload(&self, why: &str) -> io::Result<()> {
        let gen = self.stop(Role::Standby { following: None });
        let disk = &self.ctx.disk;
        let loaded = Wal::load(&read_segments(disk)?);
        if loaded.cut_bytes > 0 {
            self.apply_cut(&loaded.wal.cut_at(loaded.wal.last_index()))?;
            self.ctx.trace("pg.wal_tail_cut", json!({ "tail": loaded.tail, "cut_bytes": loaded.cut_bytes }));
            self.ctx.sometimes("pg.wal_tail_cut");
        }
        let mut damaged = disk.exists(DAMAGE_FILE);
        if loaded.tail == LoadTail::Corrupt && !damaged {
            crate::consensus::replace_file(disk, DAMAGE_FILE, b"wal damaged").await?;
            self.ctx.sometimes("pg.wal_corruption_detected");
            damaged = true;
        }
        // What survived is made durable before anything is built on it.
        for file in loaded.wal.segments_for(1, loaded.wal.last_index()) {
            disk.sync(&file).await?;
        }
        let head = loaded.wal.replay(loaded.wal.last_index());
        let mut inner = self.lock();
        if inner.generation != gen {
            return Err(io::Error::other("superseded while reloading"));
        }
        let last = loaded.wal.last_index();
        self.ctx.trace("pg.reloaded", json!({ "why": why, "last_index": last, "tail": loaded.tail, "damaged": damaged }));
        inner.visible = head.clone();
        inner.head = head;
        inner.wal = loaded.wal;
        inner.flushed = last;
        inner.damaged = damaged;
        inner.broken = false;
        inner.repair_target = None;
        inner.primary_flushed = 0;
        inner.caught_up_ms = None;
        self.flushed_moved.notify_waiters();
        Ok(())
    }

    /// Cuts the WAL files as `cut` says (the truncation is durable only after a sync).
    pub fn apply_cut(&self, cut: &Cut) -> io::Result<()> {
        if let Some((file, len)) = &cut.truncate {
            self.ctx.disk.truncate(file, *len)?;
        }
        for file in &cut.remove {
            self.ctx.disk.remove(file)?;
        }
        Ok(())
    }

    /// fsyncs the segments holding records `from..=to`.
    pub async fn sync_wal(&self, from: u64, to: u64) -> io::Result<()> {
        let files = self.lock().wal.segments_for(from, to);
        for file in files {
            self.ctx.disk.sync(&file).await?;
        }
        Ok(())
    }

    /// Our state for the manager. A standby's position is what it has flushed.
    fn local(&self) -> Local {
        let inner = self.lock();
        let role = match &inner.role {
            Role::Primary { epoch } => LocalRole::Primary { epoch: *epoch },
            Role::Standby { following } => LocalRole::Standby { following: following.clone() },
        };
        Local { role, position: inner.position_at(inner.flushed), damaged: inner.damaged }
    }

    pub fn status(&self) -> MemberStatus {
        let inner = self.lock();
        let (role, epoch) = match &inner.role {
            Role::Primary { epoch } => (MemberRole::Primary, *epoch),
            Role::Standby { following } => (MemberRole::Standby, following.as_ref().map_or(0, |f| f.1)),
        };
        MemberStatus { name: self.name().into(), role, epoch, position: inner.position_at(inner.flushed), damaged: inner.damaged }
    }

    async fn ha_loop(self: Arc<Self>, mut dcs: DcsClient, mut manager: Manager) {
        let timing = self.config.timing.clone();
        loop {
            let started = Instant::now();
            if self.lock().broken {
                manager.on_demoted();
                self.reload("I/O error").await;
            }
            let view = dcs.read(self.dcs_budget()).await.ok();
            let local = self.local();
            let leaderless = view.as_ref().is_some_and(|v| v.leader.is_none());
            let peers = match local.role {
                LocalRole::Standby { .. } if leaderless => self.poll_members().await,
                _ => Vec::new(),
            };
            for action in manager.cycle(self.now_ms(), view.as_ref(), &local, &peers) {
                self.act(action, &mut dcs, &mut manager).await;
            }
            self.maintain_sync(&mut dcs).await;
            self.claim_roles(view.as_ref());
            let next = started + Duration::from_millis(timing.loop_wait_ms);
            tokio::select! {
                biased;
                _ = self.wake.notified() => tokio::time::sleep(Duration::from_millis(20)).await,
                _ = tokio::time::sleep_until(next) => {}
            }
        }
    }

    /// How long one DCS operation may take: `retry_timeout`, but never past a primary's fence,
    /// so a primary cut off from the DCS notices its lease ran out (and demotes) on time.
    pub fn dcs_budget(&self) -> Duration {
        let retry = self.config.timing.retry_timeout_ms;
        let inner = self.lock();
        let ms = match inner.primary_epoch() {
            Some(_) => retry.min(inner.fence_ms.saturating_sub(self.now_ms())).max(50),
            None => retry,
        };
        Duration::from_millis(ms)
    }

    async fn act(self: &Arc<Self>, action: Action, dcs: &mut DcsClient, manager: &mut Manager) {
        let retry = self.dcs_budget();
        let me = self.name().to_string();
        match action {
            Action::Renew { epoch } => {
                let sent = self.now_ms();
                match dcs.write(Command::Renew { who: me, epoch }, retry).await {
                    Ok((Outcome::Done, _)) => {
                        manager.on_lease(sent);
                        self.lock().fence_ms = manager.fence_ms();
                    }
                    Ok((Outcome::Refused(reason), _)) => {
                        manager.on_demoted();
                        self.demote(&reason).await;
                    }
                    Err(_) => {}
                }
            }
            Action::Acquire => {
                let sent = self.now_ms();
                let ttl_ms = self.config.timing.ttl_ms;
                if let Ok((Outcome::Done, view)) = dcs.write(Command::Acquire { who: me, ttl_ms }, retry).await {
                    let Some(epoch) = view.leader.filter(|k| k.holder == self.name()).map(|k| k.epoch) else { return };
                    manager.on_lease(sent);
                    if let Err(e) = self.promote(epoch, manager.fence_ms()).await {
                        self.ctx.trace("pg.promote_failed", json!({ "epoch": epoch, "error": e.to_string() }));
                        manager.on_demoted();
                        self.reload("promotion failed").await;
                    }
                }
            }
            Action::Demote { reason } => {
                manager.on_demoted();
                self.demote(&reason).await;
            }
            Action::Follow { leader, epoch } => self.follow(leader, epoch).await,
            Action::Release { epoch } => {
                let _ = dcs.write(Command::Release { who: me, epoch }, retry).await;
            }
        }
    }

    async fn demote(&self, reason: &str) {
        let epoch = self.lock().primary_epoch();
        if let Some(epoch) = epoch {
            self.ctx.observe(&Demoted { epoch, reason: reason.into() });
            self.ctx.sometimes("pg.demoted");
        }
        self.reload("demote").await;
    }

    /// Starts following `leader` (the primary of `epoch`).
    async fn follow(self: &Arc<Self>, leader: String, epoch: u64) {
        if self.lock().primary_epoch().is_some() {
            self.reload("follow while primary").await;
        }
        self.ctx.trace("pg.follow", json!({ "leader": leader, "epoch": epoch }));
        let gen = self.stop(Role::Standby { following: Some((leader.clone(), epoch)) });
        self.spawn_role_task(gen, self.clone().receive_wal(leader, epoch, gen));
    }

    /// Claims the roles faults target: the synchronous standby and the asynchronous replicas.
    fn claim_roles(&self, view: Option<&ClusterView>) {
        let Some(view) = view else { return };
        let primary = self.lock().primary_epoch().is_some();
        let sync = !primary && view.sync.standby.as_deref() == Some(self.name());
        self.ctx.set_role(&self.config.roles.sync_standby, sync);
        self.ctx.set_role(&self.config.roles.async_replica, !primary && !sync);
    }

    /// Asks every other member for its status (Patroni polls members' REST APIs); members that
    /// do not answer in time are left out, as Patroni leaves them out.
    async fn poll_members(&self) -> Vec<MemberStatus> {
        let mut out = Vec::new();
        for m in self.config.members.iter().filter(|m| *m != self.name()) {
            let ask = async {
                let mut conn = self.ctx.net.connect(m, MEMBER_PORT).await.ok()?;
                wire::recv::<_, MemberStatus>(&mut conn).await.ok()
            };
            if let Ok(Some(status)) = tokio::time::timeout(MEMBER_POLL_TIMEOUT, ask).await {
                if status.name == *m {
                    out.push(status);
                }
            }
        }
        out
    }

    async fn serve_member_api(self: Arc<Self>) {
        let Ok(listener) = self.ctx.net.bind(MEMBER_PORT).await else { return };
        while let Ok((mut conn, _)) = listener.accept().await {
            let status = self.status();
            tokio::spawn(async move {
                let _ = wire::send(&mut conn, &status).await;
            });
        }
    }

    async fn serve_clients(self: Arc<Self>) {
        let Ok(listener) = self.ctx.net.bind(CLIENT_PORT).await else { return };
        while let Ok((conn, _)) = listener.accept().await {
            tokio::spawn(self.clone().client_session(conn));
        }
    }

    async fn client_session(self: Arc<Self>, mut conn: Conn) {
        while let Ok(Ok(req)) = tokio::time::timeout(CLIENT_IDLE, wire::recv::<_, Request>(&mut conn)).await {
            let resp = match req {
                Request::Execute { epoch, txn } => self.execute(epoch, txn).await,
                Request::Get { table, key } => self.read(|t| t.get(table, &key).map(|r| vec![(key.clone(), r.clone())]).unwrap_or_default()),
                Request::Scan { table, prefix, limit } => self.read(|t| t.scan(table, &prefix, limit)),
            };
            if wire::send(&mut conn, &resp).await.is_err() {
                return;
            }
        }
    }

    /// Serves a read from flushed state (a hot standby's, or the primary's), with its staleness.
    fn read(&self, query: impl FnOnce(&Tables) -> Vec<(String, super::data::Row)>) -> Response {
        let inner = self.lock();
        if inner.damaged {
            return Response::Unavailable { reason: "WAL damaged; waiting to repair it from a peer".into() };
        }
        let primary = inner.primary_epoch().is_some();
        if !primary && !inner.streamed {
            return Response::Unavailable { reason: "not yet on the leader's timeline".into() };
        }
        let lag_records = if primary { 0 } else { inner.primary_flushed.saturating_sub(inner.flushed) };
        let lag_ms = inner.caught_up_ms.map_or(0, |t| self.now_ms().saturating_sub(t));
        let read = ReadInfo {
            node: self.name().into(),
            primary,
            applied: inner.position_at(inner.flushed),
            lag_records,
            lag_ms: if primary { 0 } else { lag_ms },
        };
        Response::Rows { rows: query(&inner.visible), read }
    }
}
