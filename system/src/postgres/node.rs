//! The server shell: one PostgreSQL-like server (the postmaster and its processes) over the
//! seams. Its Patroni agent is another node ([`super::agent`]) that drives it through the
//! control channel ([`Control`]): promote, demote (restart in recovery), follow, the
//! synchronous standby's name, the watchdog. The server serves clients on its own and knows
//! nothing of the leader lease; on an I/O error (or a watchdog reset) it restarts from its WAL
//! by itself, as the postmaster's crash recovery does.
//!
//! Every protocol decision is the sans-IO core's ([`Member`]); the shell does the I/O.
//! [`Node::step`] feeds the core one input under its lock and carries out at once what must
//! not wait (appends, so the disk holds records in log order; cuts; ending a role's tasks;
//! answers; observations) and hands back what may (fsyncs) or belongs to the caller (messages
//! for its connection). [`Node::finish`] performs the fsyncs and reports each back to the core.
//!
//! Each role (primary of an epoch, standby following a leader) runs tasks of a *generation*;
//! every role change bumps it and aborts those tasks. A demotion, an I/O error and a start all
//! go through [`Node::reload`]: the in-memory state is rebuilt from the WAL on disk, as Patroni
//! restarts PostgreSQL in recovery when it demotes it.

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::json;
use sim::NodeCtx;
use tokio::sync::{oneshot, Notify};
use tokio::task::JoinHandle;

use super::cluster::PgRoles;
use super::data::{Durability, Tables};
use super::manager::Timing;
use super::member::{Action, Input, Member, MemberConfig, Observed};
use super::observe::Acknowledged;
use super::planted::Planted;
use super::protocol::{
    Control, ControlReply, Replication, Request, Response, CLIENT_PORT, CONTROL_PORT, REPLICATION_PORT,
};
use super::wal::{read_segments, Cut, LoadTail, Wal};
use crate::rpc::{self, Answer, DialOptions, Dialer, Encoding, Listen};

/// Marks a WAL that lost synced records, until a peer has sent them again. Durable, so a second
/// restart does not forget the damage.
pub(super) const DAMAGE_FILE: &str = "pg.damaged";
/// How often the watchdog timer looks at its deadline (the core also checks it before every
/// acknowledgement, so this only bounds how late an idle node resets).
const WATCHDOG_TICK: Duration = Duration::from_millis(50);

/// How a server is set up.
#[derive(Clone)]
pub struct PgConfig {
    /// Every member's server node name, this one included.
    pub members: Vec<String>,
    /// Patroni's `synchronous_mode_strict`.
    pub sync_strict: bool,
    /// The object-store node that receives base backups and archived WAL, if any.
    pub archive: Option<String>,
    pub durability: Durability,
    pub timing: Timing,
    /// The roles this member claims, namespaced by its cluster.
    pub roles: PgRoles,
    /// Bugs planted for the checkers to catch (none in a safe configuration).
    pub planted: Planted,
}

/// Why the stream or flow a step belonged to ends.
#[derive(Debug)]
pub(super) struct Ended {
    pub reason: String,
    /// The peer broke the protocol or the timelines diverge (not merely a role change).
    pub refused: bool,
}

impl Ended {
    pub fn into_io(self) -> io::Error {
        let kind = if self.refused { io::ErrorKind::InvalidData } else { io::ErrorKind::Other };
        io::Error::new(kind, self.reason)
    }
}

/// What a step left for its caller once its fsyncs are done.
pub(super) struct Finished {
    /// Messages for the caller's connection, in order.
    pub sends: Vec<Replication>,
    pub ended: Option<Ended>,
}

impl Finished {
    pub fn result(self) -> Result<Vec<Replication>, Ended> {
        match self.ended {
            Some(e) => Err(e),
            None => Ok(self.sends),
        }
    }
}

pub(super) struct Node {
    pub ctx: NodeCtx,
    pub config: PgConfig,
    member: Mutex<Member>,
    /// Woken (all waiters, in order) whenever the flush position moves. A plain `Notify`, not
    /// a `watch` channel: tokio's `watch` spreads waiters over several notifiers chosen by a
    /// process-global random stream, which would make wake-up order differ between runs.
    pub flushed_moved: Notify,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// Wakes the supervisor (an I/O error or a watchdog reset: restart from disk).
    pub wake: Notify,
    /// Clients waiting for their commit's answer, by commit id.
    answers: Mutex<BTreeMap<u64, oneshot::Sender<Response>>>,
    next_commit: AtomicU64,
    /// The walreceiver's connections to the primary it follows.
    pub wal_dialer: Dialer,
}

/// Runs one server until the node dies.
pub async fn run(mut ctx: NodeCtx, config: PgConfig) {
    if !config.members.contains(&ctx.name) {
        ctx.trace("pg.misconfigured", json!({ "members": config.members }));
        return;
    }
    let wal_dialer = Dialer::new(&mut ctx, DialOptions::new(REPLICATION_PORT, Encoding::Json));
    let member = Member::new(MemberConfig {
        me: ctx.name.clone(),
        zone: ctx.zone.clone(),
        members: config.members.clone(),
        durability: config.durability.clone(),
        sender_timeout_ms: config.timing.wal_sender_timeout_ms,
        sync_strict: config.sync_strict,
        roles: config.roles.clone(),
        planted: config.planted.clone(),
    });
    let node = Arc::new(Node {
        ctx,
        config,
        member: Mutex::new(member),
        flushed_moved: Notify::new(),
        tasks: Mutex::default(),
        wake: Notify::new(),
        answers: Mutex::default(),
        next_commit: AtomicU64::new(0),
        wal_dialer,
    });
    node.reload("start").await;
    tokio::spawn(node.clone().serve_clients());
    tokio::spawn(node.clone().serve_replication());
    tokio::spawn(node.clone().serve_control());
    tokio::spawn(node.clone().watchdog_timer());
    node.supervise().await;
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Node {
    /// The core, for reading. Never held across an await.
    pub fn lock(&self) -> MutexGuard<'_, Member> {
        locked(&self.member)
    }

    pub fn name(&self) -> &str {
        &self.ctx.name
    }

    pub fn now_ms(&self) -> u64 {
        self.ctx.clock.now_ms()
    }

    /// Feeds `input` to the core (see the module doc); returns the fsyncs, sends and closes
    /// left for the caller, in order.
    pub fn step(self: &Arc<Self>, input: Input) -> Vec<Action> {
        self.step_then(input, |_| ()).0
    }

    /// [`Node::step`], then reads `f` of the core under the same lock.
    pub fn step_then<R>(self: &Arc<Self>, input: Input, f: impl FnOnce(&Member) -> R) -> (Vec<Action>, R) {
        let mut member = self.lock();
        let now = self.now_ms();
        let mut queue: VecDeque<Action> = member.step(now, input).into();
        let mut later = Vec::new();
        while let Some(action) = queue.pop_front() {
            match action {
                Action::Append { file, bytes, from } => {
                    if let Err(e) = self.ctx.disk.append(&file, &bytes) {
                        // Nothing of this write may follow the failed append, its fsync least.
                        queue.retain(|a| !matches!(a, Action::Append { .. } | Action::Sync { .. }));
                        let failed = Input::AppendFailed { gen: member.generation(), from, error: e.to_string() };
                        queue.extend(member.step(now, failed));
                    }
                }
                Action::Cut(cut) => {
                    if let Err(e) = self.apply_cut(&cut) {
                        queue.clear();
                        queue.extend(member.step(now, Input::IoFailed));
                        later.push(Action::Close { reason: format!("cutting the WAL: {e}"), refused: false });
                    }
                }
                Action::Sync { .. } | Action::Send(_) | Action::Close { .. } | Action::WriteSync { .. } => {
                    later.push(action)
                }
                other => self.perform(other),
            }
        }
        let read = f(&member);
        (later, read)
    }

    /// Carries out an action that needs no waiting.
    fn perform(self: &Arc<Self>, action: Action) {
        match action {
            Action::Settle { id, response } => {
                if let Some(tx) = locked(&self.answers).remove(&id) {
                    let _ = tx.send(response);
                }
            }
            Action::EndRoleTasks => {
                for t in locked(&self.tasks).drain(..) {
                    t.abort();
                }
            }
            Action::StartArchiver { epoch, gen } => {
                if let Some(store) = self.config.archive.clone() {
                    self.push_task(tokio::spawn(self.clone().archive(epoch, gen, store)));
                }
            }
            Action::ClearDamage => {
                // Best effort: if the marker survives a crash, the node repairs itself again.
                let _ = self.ctx.disk.remove(DAMAGE_FILE);
            }
            Action::SetRole { role, holds } => self.ctx.set_role(&role, holds),
            Action::Observe(o) => match o {
                Observed::Promoted(p) => self.ctx.observe(&p),
                Observed::Demoted(d) => self.ctx.observe(&d),
                Observed::Flushed(f) => self.ctx.observe(&f),
                Observed::Rewound(r) => self.ctx.observe(&r),
                Observed::FirstWrite(w) => self.ctx.observe(&w),
                Observed::SyncStandby(s) => self.ctx.observe(&s),
                Observed::SyncDegraded(d) => self.ctx.observe(&d),
                Observed::WatchdogReset(w) => self.ctx.observe(&w),
            },
            Action::Trace { kind, fields } => self.ctx.trace(kind, fields),
            Action::Sometimes(what) => self.ctx.sometimes(what),
            Action::WakeHa => self.wake.notify_one(),
            Action::FlushMoved => self.flushed_moved.notify_waiters(),
            Action::Append { .. }
            | Action::Cut(_)
            | Action::Sync { .. }
            | Action::Send(_)
            | Action::Close { .. }
            | Action::WriteSync { .. } => {
                unreachable!("handled by the step")
            }
        }
    }

    /// Performs the fsyncs a step left, reporting each back to the core, and collects the
    /// messages for the caller's connection (stopping at the first close).
    pub async fn finish(self: &Arc<Self>, actions: Vec<Action>) -> Finished {
        let mut queue: VecDeque<Action> = actions.into();
        let mut sends = Vec::new();
        while let Some(action) = queue.pop_front() {
            match action {
                Action::Sync { gen, files, upto } => {
                    let synced = self.sync_files(&files).await;
                    let report = match (synced, upto) {
                        (Ok(()), Some(upto)) => Input::Synced { gen, upto },
                        (Ok(()), None) => continue,
                        (Err(_), Some(upto)) => Input::SyncFailed { gen, upto },
                        (Err(_), None) => Input::IoFailed,
                    };
                    let failed = !matches!(report, Input::Synced { .. });
                    let after = self.step(report);
                    if failed {
                        return Finished {
                            sends,
                            ended: Some(Ended { reason: "fsync failed".into(), refused: false }),
                        };
                    }
                    for a in after.into_iter().rev() {
                        queue.push_front(a);
                    }
                }
                Action::Send(msg) => sends.push(msg),
                Action::Close { reason, refused } => return Finished { sends, ended: Some(Ended { reason, refused }) },
                _ => {}
            }
        }
        Finished { sends, ended: None }
    }

    /// Spawns a task of generation `gen`; it is aborted at the next role change (or never
    /// started if that change already happened).
    pub fn spawn_role_task<F>(&self, gen: u64, fut: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let member = self.lock();
        if member.generation() == gen {
            self.push_task(tokio::spawn(fut));
        }
    }

    fn push_task(&self, task: JoinHandle<()>) {
        let mut tasks = locked(&self.tasks);
        tasks.retain(|t| !t.is_finished());
        tasks.push(task);
    }

    /// Ends the current role (as a standby following `following`); returns the new generation.
    pub fn stop(self: &Arc<Self>, following: Option<(String, u64)>, why: &str) -> u64 {
        self.step_then(Input::Stop { following, why: why.into() }, Member::generation).1
    }

    /// Rebuilds everything from the WAL on disk, as a PostgreSQL restart would, and comes up as
    /// a standby following nobody yet. Retries until the disk cooperates.
    pub async fn reload(self: &Arc<Self>, why: &str) {
        loop {
            match self.try_reload(why).await {
                Ok(()) => return,
                Err(e) => {
                    self.ctx.trace("pg.reload_failed", json!({ "why": why, "error": e.to_string() }));
                    sim::timer::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    async fn try_reload(self: &Arc<Self>, why: &str) -> io::Result<()> {
        let gen = self.stop(None, why);
        let disk = &self.ctx.disk;
        let loaded = Wal::load(&read_segments(disk)?);
        if loaded.cut_bytes > 0 {
            self.apply_cut(&loaded.wal.cut_at(loaded.wal.last_index()))?;
            self.ctx.trace("pg.wal_tail_cut", json!({ "tail": loaded.tail, "cut_bytes": loaded.cut_bytes }));
            self.ctx.sometimes("pg.wal_tail_cut");
        }
        let mut damaged = disk.exists(DAMAGE_FILE);
        if loaded.tail == LoadTail::Corrupt && !damaged {
            disk.replace_file(DAMAGE_FILE, b"wal damaged").await?;
            self.ctx.sometimes("pg.wal_corruption_detected");
            damaged = true;
        }
        // What survived is made durable before anything is built on it.
        let last = loaded.wal.last_index();
        self.sync_files(&loaded.wal.segments_for(1, last)).await?;
        self.ctx
            .trace("pg.reloaded", json!({ "why": why, "last_index": last, "tail": loaded.tail, "damaged": damaged }));
        let installed = self.finish(self.step(Input::Loaded { gen, wal: loaded.wal, damaged })).await;
        installed.result().map(drop).map_err(Ended::into_io)
    }

    /// Cuts the WAL files as `cut` says (the truncation is durable only after a sync).
    fn apply_cut(&self, cut: &Cut) -> io::Result<()> {
        if let Some((file, len)) = &cut.truncate {
            self.ctx.disk.truncate(file, *len)?;
        }
        for file in &cut.remove {
            self.ctx.disk.remove(file)?;
        }
        Ok(())
    }

    async fn sync_files(&self, files: &[String]) -> io::Result<()> {
        for file in files {
            self.ctx.disk.sync(file).await?;
        }
        Ok(())
    }

    /// The postmaster's crash recovery: after an I/O error or a watchdog reset, restart from
    /// the WAL on disk (as a standby; the agent decides what comes next).
    async fn supervise(self: Arc<Self>) {
        loop {
            self.wake.notified().await;
            if self.lock().is_broken() {
                self.reload("restart after a failure").await;
            }
        }
    }

    /// The watchdog device's timer: resets the node when its deadline passes unpetted.
    async fn watchdog_timer(self: Arc<Self>) {
        loop {
            sim::timer::sleep(WATCHDOG_TICK).await;
            if self.lock().watchdog_ms().is_some() {
                let _ = self.finish(self.step(Input::WatchdogTick)).await;
            }
        }
    }

    /// Starts following `leader` (the primary of `epoch`).
    async fn follow(self: &Arc<Self>, leader: String, epoch: u64) {
        if self.lock().primary_epoch().is_some() {
            self.reload("follow while primary").await;
        }
        self.ctx.trace("pg.follow", json!({ "leader": leader, "epoch": epoch }));
        let gen = self.stop(Some((leader.clone(), epoch)), "follow");
        self.spawn_role_task(gen, self.clone().receive_wal(leader, gen));
    }

    /// The control channel: what the agent asks of its server.
    async fn serve_control(self: Arc<Self>) {
        let net = self.ctx.net.clone();
        rpc::serve(net, Listen::new(CONTROL_PORT, Encoding::Json), move |req: Control| {
            let node = self.clone();
            async move { Answer::Reply(node.control(req).await) }
        })
        .await;
    }

    async fn control(self: Arc<Self>, req: Control) -> ControlReply {
        match req {
            Control::Status => {
                let member = self.lock();
                ControlReply::Status { local: member.local(), status: member.status() }
            }
            Control::Promote { epoch } => match self.promote(epoch).await {
                Ok(()) => ControlReply::Done,
                Err(e) => {
                    self.ctx.trace("pg.promote_failed", json!({ "epoch": epoch, "error": e.to_string() }));
                    self.reload("promotion failed").await;
                    ControlReply::Failed { reason: e.to_string() }
                }
            },
            Control::Demote { reason } => {
                self.step(Input::Watchdog { timeout_ms: None });
                self.reload(&reason).await;
                ControlReply::Done
            }
            Control::Follow { leader, epoch } => {
                let wanted = Some((leader.clone(), epoch));
                let following =
                    matches!(self.lock().role(), super::member::Role::Standby { following } if *following == wanted);
                if !following {
                    self.follow(leader, epoch).await;
                }
                ControlReply::Done
            }
            Control::MaintainSync => self.maintain_sync(),
            Control::SyncWritten { epoch, standby } => {
                let _ = self.finish(self.step(Input::SyncWritten { epoch, standby })).await;
                ControlReply::Done
            }
            Control::Watchdog { timeout_ms } => {
                self.step(Input::Watchdog { timeout_ms });
                ControlReply::Done
            }
            Control::Roles { sync_standby, async_replica } => {
                self.ctx.set_role(&self.config.roles.sync_standby, sync_standby);
                self.ctx.set_role(&self.config.roles.async_replica, async_replica);
                ControlReply::Done
            }
        }
    }

    async fn serve_clients(self: Arc<Self>) {
        let net = self.ctx.net.clone();
        rpc::serve(net, Listen::new(CLIENT_PORT, Encoding::Json), move |req: Request| {
            let node = self.clone();
            async move { Answer::Reply(node.answer(req).await) }
        })
        .await;
    }

    async fn answer(self: Arc<Self>, req: Request) -> Response {
        match req {
            Request::Execute { epoch, txn } => self.execute(epoch, txn).await,
            Request::Get { table, key } => {
                self.read(|t| t.get(table, &key).map(|r| vec![(key.clone(), r.clone())]).unwrap_or_default())
            }
            Request::Scan { table, prefix, limit } => self.read(|t| t.scan(table, &prefix, limit)),
        }
    }

    fn read(&self, query: impl FnOnce(&Tables) -> Vec<(String, super::data::Row)>) -> Response {
        self.lock().read(self.now_ms(), query)
    }

    /// Commits `txn` if this node is the primary of `epoch` (any, when None): the core answers
    /// once the commit is as durable as its tables require, or settles it otherwise.
    pub(super) async fn execute(self: &Arc<Self>, epoch: Option<u64>, txn: super::data::Txn) -> Response {
        let id = self.next_commit.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        locked(&self.answers).insert(id, tx);
        let wall_ms = self.ctx.clock.wall_ms();
        let txn_id = txn.id.clone();
        let actions = self.step(Input::Commit { id, epoch, txn, wall_ms });
        self.finish(actions).await;
        let response = rx
            .await
            .unwrap_or_else(|_| Response::Indeterminate { reason: "the member stopped before answering".into() });
        if let Response::Committed { epoch, index } = &response {
            let (epoch, index) = (*epoch, *index);
            self.ctx.observe(&Acknowledged { txn: txn_id, epoch, index });
        }
        response
    }
}
