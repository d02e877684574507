//! The node shell: one PostgreSQL-like member and its Patroni-like manager, over the seams.
//!
//! Every protocol decision is the sans-IO core's ([`Member`], [`Manager`]); the shell does the
//! I/O. [`Node::step`] feeds the core one input under its lock and carries out at once what
//! must not wait (appends, so the disk holds records in log order; cuts; ending a role's tasks;
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
use tokio::time::Instant;

use super::cluster::PgRoles;
use super::data::{Durability, Tables};
use super::dcs::{ClusterView, Command, Outcome};
use super::dcs_client::DcsClient;
use super::manager::{Action as HaAction, LocalRole, Manager, Timing};
use super::member::{Action, Input, Member, MemberConfig, Observed};
use super::observe::Acknowledged;
use super::planted::Planted;
use super::protocol::{
    MemberRequest, MemberStatus, Replication, Request, Response, CLIENT_PORT, MEMBER_PORT, REPLICATION_PORT,
};
use super::wal::{read_segments, Cut, LoadTail, Wal};
use crate::rpc::{self, Answer, ChannelOptions, DialOptions, Dialer, Encoding, Listen};

/// Marks a WAL that lost synced records, until a peer has sent them again. Durable, so a second
/// restart does not forget the damage.
pub(super) const DAMAGE_FILE: &str = "pg.damaged";
const MEMBER_POLL_TIMEOUT: Duration = Duration::from_millis(300);

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
    /// Wakes the HA loop early (a synchronous standby caught up, an I/O error).
    pub wake: Notify,
    /// Clients waiting for their commit's answer, by commit id.
    answers: Mutex<BTreeMap<u64, oneshot::Sender<Response>>>,
    next_commit: AtomicU64,
    /// The walreceiver's connections to the primary it follows.
    pub wal_dialer: Dialer,
}

/// Runs one member until the node dies.
pub async fn run(mut ctx: NodeCtx, config: PgConfig) {
    if !config.members.contains(&ctx.name) || config.dcs.is_empty() {
        ctx.trace("pg.misconfigured", json!({ "members": config.members, "dcs": config.dcs }));
        return;
    }
    let dcs = DcsClient::new(&mut ctx, config.dcs.clone());
    let wal_dialer = Dialer::new(&mut ctx, DialOptions::new(REPLICATION_PORT, Encoding::Json));
    let manager = Manager::new(&ctx.name, config.timing.clone()).fenced(!config.planted.no_fence);
    let member = Member::new(MemberConfig {
        me: ctx.name.clone(),
        zone: ctx.zone.clone(),
        members: config.members.clone(),
        durability: config.durability.clone(),
        sender_timeout_ms: config.timing.wal_sender_timeout_ms,
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
    tokio::spawn(node.clone().serve_member_api());
    node.ha_loop(dcs, manager).await;
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
                    tokio::time::sleep(Duration::from_secs(1)).await;
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

    async fn ha_loop(self: Arc<Self>, mut dcs: DcsClient, mut manager: Manager) {
        let timing = self.config.timing.clone();
        loop {
            let started = Instant::now();
            if self.lock().is_broken() {
                manager.on_demoted();
                self.reload("I/O error").await;
            }
            let view = dcs.read(self.dcs_budget()).await.ok();
            let local = self.lock().local();
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
        let member = self.lock();
        let ms = match member.primary_epoch() {
            Some(_) => retry.min(member.fence_ms().saturating_sub(self.now_ms())).max(50),
            None => retry,
        };
        Duration::from_millis(ms)
    }

    async fn act(self: &Arc<Self>, action: HaAction, dcs: &mut DcsClient, manager: &mut Manager) {
        let retry = self.dcs_budget();
        let me = self.name().to_string();
        match action {
            HaAction::Renew { epoch } => {
                let sent = self.now_ms();
                match dcs.write(Command::Renew { who: me, epoch }, retry).await {
                    Ok((Outcome::Done, _)) => {
                        manager.on_lease(sent);
                        self.step(Input::Lease { fence_ms: manager.fence_ms() });
                    }
                    Ok((Outcome::Refused(reason), _)) => {
                        manager.on_demoted();
                        self.reload(&reason).await;
                    }
                    Err(_) => {}
                }
            }
            HaAction::Acquire => {
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
            HaAction::Demote { reason } => {
                manager.on_demoted();
                self.reload(&reason).await;
            }
            HaAction::Follow { leader, epoch } => self.follow(leader, epoch).await,
            HaAction::Release { epoch } => {
                let _ = dcs.write(Command::Release { who: me, epoch }, retry).await;
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

    /// Claims the roles faults target: the synchronous standby and the asynchronous replicas.
    fn claim_roles(&self, view: Option<&ClusterView>) {
        let Some(view) = view else { return };
        let primary = self.lock().primary_epoch().is_some();
        let sync = !primary && view.sync.standby.as_deref() == Some(self.name());
        self.ctx.set_role(&self.config.roles.sync_standby, sync);
        self.ctx.set_role(&self.config.roles.async_replica, !primary && !sync);
    }

    /// Asks every other member for its status (Patroni polls members' REST APIs); members that
    /// do not answer in time are left out, as Patroni leaves them out. A fresh connection each:
    /// members are polled only while the cluster has no leader.
    async fn poll_members(&self) -> Vec<MemberStatus> {
        let options = ChannelOptions::new(MEMBER_PORT, Encoding::Json);
        let mut out = Vec::new();
        for m in self.config.members.iter().filter(|m| *m != self.name()) {
            let asked = rpc::call_once::<_, MemberStatus>(
                &self.ctx.net,
                m,
                &options,
                &MemberRequest::Status,
                MEMBER_POLL_TIMEOUT,
            );
            match asked.await {
                Ok(status) if status.name == *m => out.push(status),
                _ => {}
            }
        }
        out
    }

    async fn serve_member_api(self: Arc<Self>) {
        let net = self.ctx.net.clone();
        rpc::serve(net, Listen::new(MEMBER_PORT, Encoding::Json), move |MemberRequest::Status| {
            let status = self.lock().status();
            async move { Answer::Reply(status) }
        })
        .await;
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
        if self.config.planted.ack_before_fsync {
            // The planted bug: the answer does not wait for this commit's fsync.
            let node = self.clone();
            tokio::spawn(async move { node.finish(actions).await });
        } else {
            self.finish(actions).await;
        }
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
