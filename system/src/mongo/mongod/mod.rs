//! The mongod process: the async shell that runs a [`ReplSet`] member over the seams.
//!
//! It persists the oplog (checksummed records, fsynced per fetched batch on secondaries and by a
//! group-commit journal flush on the primary, every `storage.journal.commitIntervalMs` = 100 ms
//! or at once when a `w:majority` write waits) and the last vote (replaced atomically), applies
//! entries to the [`Store`], serves commands, and answers writes by their write concern: `w:1`
//! as soon as the primary applied the entry, `w:majority` when the commit point reaches it.
//!
//! Nothing counts as durable before its fsync returned: a secondary reports a fetched batch (its
//! next fetch carries the position) only after fsyncing it, and the primary's commit point moves
//! only with its journal flush. An error from an append, an fsync or the vote's write stops the
//! member (MongoDB fasserts): it acknowledges and votes nothing past it, and a supervisor restarts
//! it from its disk a second later.
//!
//! On start it reads back what its disk kept (a torn tail is cut at the last good record),
//! fsyncs it, and rebuilds the store by replaying the oplog. Damage inside synced records (a
//! checksum failure with good records after it, or an unreadable vote record) makes it a
//! damaged member, marked on disk until it is repaired: it cuts the oplog before the damage,
//! never stands or votes, and its fetches count towards no majority, until it holds again
//! everything the primary had when the repair began (MongoDB would resync such a member; here
//! the good prefix is kept and the rest fetched, which is the same for the protocol).
//!
//! What it claims about its replication (the oplog it recovered, elections won, step-downs,
//! rollbacks) it records as [`MemberEvent`] observations through its context; what it wrote is
//! on its disk, where checkers read it.

mod commands;
mod links;
pub(super) mod storage;

use std::io;
use std::time::Duration;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use sim::NodeCtx;
use tokio::sync::mpsc::{self, UnboundedReceiver as Receiver};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::observe::MemberEvent;
use super::oplog::{OpTime, OplogEntry};
use super::protocol::{Command, Frame, PeerMsg, Reply, MONGOD_PORT};
use super::replset::{Action, ElectionReason, HardState, Input, Now, Persisted, ReplSet, SetConfig, Settings};
use super::shard_map::ShardMap;
use super::store::Store;
use crate::rpc::PeerSender;

/// How often the shell ticks the replication core.
const TICK_MS: u64 = 50;

/// What this mongod is in the cluster (`sharding.clusterRole`).
#[derive(Clone, Debug)]
pub enum ClusterRole {
    ShardServer,
    /// A config server; the first primary writes this map (the operator's `addShard`).
    ConfigServer {
        shard_map: ShardMap,
    },
}

#[derive(Clone, Debug)]
pub struct MongodConfig {
    pub set: SetConfig,
    /// This member's index in `set.members`.
    pub me: usize,
    pub settings: Settings,
    pub cluster_role: ClusterRole,
    /// The role claimed while primary, for fault targeting. Named by the cluster builder
    /// ([`crate::mongo::cluster`]) within its prefix, so two clusters never share one.
    pub primary_role: String,
    pub port: u16,
    /// `storage.journal.commitIntervalMs`.
    pub journal_commit_interval_ms: u64,
    /// Run `replSetInitiate` here on the very first start.
    pub initiate: bool,
    /// A bug planted on purpose (unsafe configs only), to prove a checker can fail.
    pub flaw: Option<Flaw>,
}

/// Bugs planted on purpose, each for an unsafe config whose checker must catch it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flaw {
    /// Oplog writes count as durable (journal flushed, fetched batch reported) without an fsync:
    /// acknowledgements rest on the page cache, which a power loss takes.
    AckBeforeFsync,
    /// A candidate that wins its dry run takes office in the term it already had (no term bump,
    /// no real round): a second primary in the term of the one it replaces.
    DryRunElects,
    /// A shard takes fenced writes whatever their token (it never compares it with the highest
    /// it accepted).
    IgnoreFence,
}

impl MongodConfig {
    /// MongoDB's defaults; member 0 initiates the set.
    pub fn new(set: SetConfig, me: usize, cluster_role: ClusterRole, primary_role: String) -> Self {
        MongodConfig {
            set,
            me,
            settings: Settings::default(),
            cluster_role,
            primary_role,
            port: MONGOD_PORT,
            journal_commit_interval_ms: 100,
            initiate: me == 0,
            flaw: None,
        }
    }

    fn host(&self) -> &str {
        &self.set.members[self.me].host
    }
}

type CommandIn = (Command, oneshot::Sender<Reply>);
/// Peer frames, commands, and frames a peer link could not deliver.
type Receivers = (Receiver<(usize, PeerMsg)>, Receiver<CommandIn>, Receiver<(usize, PeerMsg)>);

/// Runs one mongod until the node dies. An I/O error on the oplog or the election record stops
/// the member at once (MongoDB fasserts): it answers nothing more, its waiting writes are never
/// acknowledged, and after [`RESTART_AFTER_MS`] (a supervisor restarting the process) it recovers
/// from its disk like any restarted mongod.
pub async fn run(mut ctx: NodeCtx, config: MongodConfig) {
    let (peer_tx, peer_rx) = mpsc::unbounded_channel();
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let (undelivered_tx, undelivered_rx) = mpsc::unbounded_channel();
    let me = config.me;
    let members = config.set.members.len();
    tokio::spawn(links::listen(ctx.net.clone(), config.port, config.set.name.clone(), me, members, peer_tx, cmd_tx));
    let peers = config
        .set
        .members
        .iter()
        .enumerate()
        .map(|(i, m)| (i != me).then(|| links::peer_link(&mut ctx, &m.host, i, config.port, undelivered_tx.clone())))
        .collect();
    let mut links = Links { peers, peer_rx, cmd_rx, undelivered_rx };
    loop {
        let life = ctx.fork();
        let fatal = match Mongod::recover(life, config.clone(), links).await {
            Ok(mut mongod) => {
                let fatal = mongod.serve().await;
                links = mongod.links;
                fatal
            }
            Err((fatal, returned)) => {
                links = returned;
                fatal
            }
        };
        ctx.trace("mongo.fail_stop", json!({ "file": fatal.file, "error": fatal.error.to_string() }));
        ctx.sometimes("mongo.fail_stop");
        sim::timer::sleep(Duration::from_millis(RESTART_AFTER_MS)).await;
        links.drain();
    }
}

/// How long a fail-stopped mongod stays down before its supervisor restarts it.
const RESTART_AFTER_MS: u64 = 1_000;

/// An I/O error the member must not pass over: it stops.
struct Fatal {
    file: &'static str,
    error: io::Error,
}

impl Fatal {
    fn on(file: &'static str) -> impl FnOnce(io::Error) -> Fatal {
        move |error| Fatal { file, error }
    }
}

/// The process's connections, which outlive a fail-stop (the listener and peer senders are the
/// node's; what arrived while the member was down is dropped, as a dead process would).
struct Links {
    peers: Vec<Option<PeerSender<Frame>>>,
    peer_rx: Receiver<(usize, PeerMsg)>,
    cmd_rx: Receiver<CommandIn>,
    undelivered_rx: Receiver<(usize, PeerMsg)>,
}

impl Links {
    fn take_receivers(&mut self) -> Receivers {
        let peer = std::mem::replace(&mut self.peer_rx, mpsc::unbounded_channel().1);
        let cmd = std::mem::replace(&mut self.cmd_rx, mpsc::unbounded_channel().1);
        (peer, cmd, std::mem::replace(&mut self.undelivered_rx, mpsc::unbounded_channel().1))
    }

    fn put_receivers(
        &mut self,
        peer: Receiver<(usize, PeerMsg)>,
        cmd: Receiver<CommandIn>,
        undelivered: Receiver<(usize, PeerMsg)>,
    ) {
        (self.peer_rx, self.cmd_rx, self.undelivered_rx) = (peer, cmd, undelivered);
    }

    /// Drops what arrived while the member was down; commands get no reply (their connection
    /// closes, as a dead process's would).
    fn drain(&mut self) {
        while self.peer_rx.try_recv().is_ok() {}
        while self.cmd_rx.try_recv().is_ok() {}
        while self.undelivered_rx.try_recv().is_ok() {}
    }
}

/// A `w:majority` write (or lock grant) waiting for the commit point.
struct Waiter {
    optime: OpTime,
    deadline_ms: u64,
    ok: Reply,
    reply: oneshot::Sender<Reply>,
}

struct Mongod {
    ctx: NodeCtx,
    config: MongodConfig,
    core: ReplSet,
    store: Store,
    links: Links,
    waiters: Vec<Waiter>,
    /// Set while the primary has oplog entries not yet fsynced: since when.
    journal_dirty_since_ms: Option<u64>,
    /// A config primary still has to check that the shard map is written.
    bootstrap_pending: bool,
    rollbacks: u64,
    /// Set by the first I/O error: the member stops.
    fatal: Option<Fatal>,
}

impl Mongod {
    /// Reads back what the disk kept and makes it durable before building on it (a process
    /// restart may read writes still in the page cache). Damage found, or found before and not
    /// yet repaired, makes a damaged member. An I/O error stops it again.
    async fn recover(mut ctx: NodeCtx, config: MongodConfig, links: Links) -> Result<Self, (Fatal, Links)> {
        let read = async {
            let hs = storage::read_hard_state(&ctx.disk).map_err(Fatal::on(storage::ELECTION_FILE))?;
            let recovered = storage::read_oplog(&ctx).map_err(Fatal::on(storage::OPLOG_FILE))?;
            let damaged = recovered.damaged || hs.is_none() || ctx.disk.exists(storage::DAMAGE_FILE);
            if damaged && !ctx.disk.exists(storage::DAMAGE_FILE) {
                ctx.disk
                    .replace_file(storage::DAMAGE_FILE, b"damaged")
                    .await
                    .map_err(Fatal::on(storage::DAMAGE_FILE))?;
            }
            if ctx.disk.exists(storage::OPLOG_FILE) && config.flaw != Some(Flaw::AckBeforeFsync) {
                ctx.disk.sync(storage::OPLOG_FILE).await.map_err(Fatal::on(storage::OPLOG_FILE))?;
            }
            Ok::<_, Fatal>((hs.unwrap_or_default(), recovered.oplog, damaged))
        };
        let (hs, oplog, damaged) = match read.await {
            Ok(read) => read,
            Err(fatal) => return Err((fatal, links)),
        };
        if damaged {
            ctx.trace("mongo.damaged", json!({ "last": oplog.last() }));
            ctx.sometimes("mongo.damaged");
        }
        let mut store = Store::default();
        for e in oplog.entries() {
            store.apply(e);
        }
        let (set, last, entries) = (config.set.name.clone(), oplog.last(), oplog.entries().len() as u64);
        ctx.observe(&MemberEvent::Recovered { set, term: hs.term, last, entries });
        let now = Now { ms: ctx.clock.now_ms(), wall_ms: ctx.clock.wall_ms() };
        let initiate = config.initiate && ctx.incarnation == 1;
        let rng = ChaCha8Rng::from_rng(&mut ctx.rng).expect("chacha never fails");
        let persisted = Persisted { hs, oplog, damaged };
        let core = ReplSet::new(config.set.clone(), config.settings.clone(), config.me, persisted, rng, now, initiate);
        Ok(Mongod {
            ctx,
            config,
            core,
            store,
            links,
            waiters: Vec::new(),
            journal_dirty_since_ms: None,
            bootstrap_pending: false,
            rollbacks: 0,
            fatal: None,
        })
    }

    /// The core's election deadline as a timer instant.
    fn election_instant(&self) -> Option<Instant> {
        let at = self.core.election_deadline_ms()?;
        let now = self.ctx.clock.now_ms();
        Some(Instant::now() + Duration::from_millis(at.saturating_sub(now)))
    }

    fn now(&self) -> Now {
        Now { ms: self.ctx.clock.now_ms(), wall_ms: self.ctx.clock.wall_ms() }
    }

    /// Serves until an I/O error stops the member.
    async fn serve(&mut self) -> Fatal {
        let tick = Duration::from_millis(TICK_MS);
        let mut next_tick = Instant::now();
        // The receivers are borrowed by the select while its branches need `self`.
        let (mut peer_rx, mut cmd_rx, mut undelivered_rx) = self.links.take_receivers();
        // Two sleeps for the whole loop, moved when their deadlines move: new ones on every turn
        // would add timer entries per message the member receives (see `sim::timer`).
        let mut ticker = Box::pin(sim::timer::sleep_until(next_tick));
        let mut election = Box::pin(sim::timer::sleep_until(next_tick));
        let fatal = loop {
            let election_at = self.election_instant().unwrap_or(next_tick);
            if election.deadline() != election_at {
                election.as_mut().reset(election_at);
            }
            tokio::select! {
                biased;
                Some((from, msg)) = peer_rx.recv() => self.feed(Input::Recv { from, msg }).await,
                Some((cmd, reply)) = cmd_rx.recv() => self.command(cmd, reply).await,
                Some((to, msg)) = undelivered_rx.recv() => self.feed(Input::Undeliverable { to, msg }).await,
                _ = ticker.as_mut() => {
                    next_tick += tick;
                    ticker.as_mut().reset(next_tick);
                    self.feed(Input::Tick).await;
                    self.expire_waiters();
                }
                _ = election.as_mut(), if election_at < next_tick => self.feed(Input::Tick).await,
            }
            self.flush_journal().await;
            self.bootstrap_shard_map().await;
            if let Some(fatal) = self.fatal.take() {
                break fatal;
            }
        };
        self.links.put_receivers(peer_rx, cmd_rx, undelivered_rx);
        fatal
    }

    async fn feed(&mut self, input: Input) {
        if self.fatal.is_none() {
            let actions = self.core.step(self.now(), input);
            self.execute(actions).await;
        }
    }

    /// Records an I/O error: nothing more is carried out, acknowledged or voted, and the serve
    /// loop stops the member.
    fn fail(&mut self, fatal: Fatal) {
        self.ctx.trace("mongo.io_error", json!({ "file": fatal.file, "error": fatal.error.to_string() }));
        self.fatal.get_or_insert(fatal);
    }

    /// Carries out the core's actions in order; durability before the sends that follow. What
    /// the shell made durable goes back to the core ([`Input::Durable`]) once the batch is done.
    /// After an I/O error nothing more is carried out.
    async fn execute(&mut self, actions: Vec<Action>) {
        let mut actions = actions;
        loop {
            let mut made_durable = None;
            for action in actions {
                if self.fatal.is_some() {
                    return;
                }
                match action {
                    Action::Send { to, msg } => self.send(to, msg),
                    Action::PersistHardState(hs) => self.persist_hard_state(&hs).await,
                    Action::Append { entries, sync } => {
                        if self.append(&entries, sync).await && sync {
                            made_durable = Some(self.core.last_applied());
                        }
                    }
                    Action::RollBack { common, removed, past_commit } => {
                        if self.roll_back(common, &removed, past_commit).await {
                            made_durable = Some(self.core.last_applied());
                        }
                    }
                    Action::Commit(commit) => self.resolve_waiters(commit),
                    Action::Standing { term, dry_run, reason } => {
                        let fields = json!({ "term": term, "dry_run": dry_run, "reason": reason });
                        self.ctx.trace("mongo.standing", fields);
                    }
                    Action::ElectionLost { term, dry_run, granted, refused } => {
                        let fields =
                            json!({ "term": term, "dry_run": dry_run, "granted": granted, "refused": refused });
                        self.ctx.trace("mongo.election_lost", fields);
                    }
                    Action::BecamePrimary { term, reason } => self.became_primary(term, reason),
                    Action::SteppedDown { term, reason } => self.stepped_down(term, reason),
                    Action::Repaired => self.repaired(),
                    Action::Ignored { from, why } => {
                        self.ctx.trace("mongo.ignored", json!({ "from": from, "why": why }))
                    }
                }
            }
            let Some(upto) = made_durable.filter(|_| self.fatal.is_none()) else { return };
            actions = self.core.step(self.now(), Input::Durable(upto));
        }
    }

    /// The vote and term, durably before any vote or request that follows leaves.
    async fn persist_hard_state(&mut self, hs: &HardState) {
        if let Err(e) = storage::write_hard_state(&self.ctx.disk, hs).await {
            self.fail(Fatal { file: storage::ELECTION_FILE, error: e });
        }
    }

    /// A damaged member is whole again: it may vote and count towards majorities.
    fn repaired(&mut self) {
        if let Err(e) = self.ctx.disk.remove(storage::DAMAGE_FILE) {
            self.fail(Fatal { file: storage::DAMAGE_FILE, error: e });
            return;
        }
        self.ctx.trace("mongo.repaired", json!({ "last": self.core.last_applied() }));
        self.ctx.sometimes("mongo.repaired");
    }

    fn send(&self, to: usize, msg: PeerMsg) {
        if let Some(Some(link)) = self.links.peers.get(to) {
            link.send(Frame::Peer { set: self.config.set.name.clone(), from: self.config.me, msg });
        }
    }

    /// Applies and appends entries, fsyncing them when `sync`; false after an I/O error.
    async fn append(&mut self, entries: &[OplogEntry], sync: bool) -> bool {
        for e in entries {
            self.store.apply(e);
        }
        if let Err(e) = storage::append_oplog(&self.ctx.disk, entries) {
            self.fail(Fatal { file: storage::OPLOG_FILE, error: e });
            return false;
        }
        if !sync {
            self.journal_dirty_since_ms.get_or_insert(self.ctx.clock.now_ms());
            return true;
        }
        if self.config.flaw == Some(Flaw::AckBeforeFsync) {
            // The planted bug: the batch is reported durable from the page cache alone.
            return true;
        }
        match self.ctx.disk.sync(storage::OPLOG_FILE).await {
            Ok(()) => true,
            Err(e) => {
                self.fail(Fatal { file: storage::OPLOG_FILE, error: e });
                false
            }
        }
    }

    /// MongoDB's rollback: undo the store to the common point, truncate the oplog durably, and
    /// keep what was undone in a rollback file for the operator. False after an I/O error.
    async fn roll_back(&mut self, common: OpTime, removed: &[OplogEntry], past_commit: bool) -> bool {
        self.rollbacks += 1;
        self.store.rollback_after(common.ts);
        let kept = self.core.oplog().entries().to_vec();
        if let Err(e) = storage::rewrite_oplog(&self.ctx.disk, &kept).await {
            self.fail(Fatal { file: storage::OPLOG_FILE, error: e });
            return false;
        }
        // A rewritten oplog holds nothing unflushed.
        self.journal_dirty_since_ms = None;
        storage::write_rollback_file(&self.ctx.disk, self.rollbacks, removed);
        let (set, removed_optimes) = (self.config.set.name.clone(), removed.iter().map(|e| e.optime).collect());
        self.ctx.observe(&MemberEvent::RolledBack { set, common, removed: removed_optimes, past_commit });
        self.ctx.sometimes("mongo.rollback");
        if past_commit {
            self.ctx.sometimes("mongo.rollback_past_commit");
        }
        let oplog = self.core.oplog();
        let (lost, keep): (Vec<Waiter>, Vec<Waiter>) = self.waiters.drain(..).partition(|w| !oplog.contains(w.optime));
        self.waiters = keep;
        for w in lost {
            let _ = w.reply.send(Reply::WriteConcernFailed { optime: w.optime, reason: "rolled back".into() });
        }
        true
    }

    fn became_primary(&mut self, term: u64, reason: ElectionReason) {
        self.ctx.set_role(&self.config.primary_role, true);
        self.ctx.observe(&MemberEvent::BecamePrimary { set: self.config.set.name.clone(), term, reason });
        self.ctx.sometimes("mongo.election");
        if reason == ElectionReason::PriorityTakeover {
            self.ctx.sometimes("mongo.election.priority_takeover");
        }
        self.bootstrap_pending = matches!(self.config.cluster_role, ClusterRole::ConfigServer { .. });
    }

    fn stepped_down(&mut self, term: u64, reason: &str) {
        self.ctx.set_role(&self.config.primary_role, false);
        let set = self.config.set.name.clone();
        self.ctx.observe(&MemberEvent::SteppedDown { set, term, reason: reason.into() });
        self.ctx.sometimes("mongo.stepdown");
        if !self.waiters.is_empty() {
            // A window probe: writes waiting for a majority when their primary lost its office.
            self.ctx.sometimes("mongo.write_in_flight_at_failover");
        }
        for w in self.waiters.drain(..) {
            let _ = w.reply.send(Reply::WriteConcernFailed { optime: w.optime, reason: "primary stepped down".into() });
        }
    }

    /// Answers every waiter the commit point now covers; fails those whose entry is gone.
    fn resolve_waiters(&mut self, commit: OpTime) {
        let oplog = self.core.oplog();
        let mut keep = Vec::new();
        for w in self.waiters.drain(..) {
            if !oplog.contains(w.optime) {
                let _ = w.reply.send(Reply::WriteConcernFailed { optime: w.optime, reason: "rolled back".into() });
            } else if w.optime.ts <= commit.ts {
                let _ = w.reply.send(w.ok);
            } else {
                keep.push(w);
            }
        }
        self.waiters = keep;
    }

    /// `wtimeout`: the write stays applied, but the client is told it is not acknowledged.
    fn expire_waiters(&mut self) {
        let now = self.ctx.clock.now_ms();
        let (expired, keep): (Vec<Waiter>, Vec<Waiter>) = self.waiters.drain(..).partition(|w| now >= w.deadline_ms);
        self.waiters = keep;
        for w in expired {
            let _ = w.reply.send(Reply::WriteConcernFailed {
                optime: w.optime,
                reason: "waiting for replication timed out".into(),
            });
        }
    }

    /// Group commit: fsync the primary's oplog when a majority write waits, or every commit
    /// interval otherwise, then tell the core how far the journal is durable.
    async fn flush_journal(&mut self) {
        let Some(since) = self.journal_dirty_since_ms else { return };
        let due = since + self.config.journal_commit_interval_ms;
        if self.waiters.is_empty() && self.ctx.clock.now_ms() < due {
            return;
        }
        self.journal_dirty_since_ms = None;
        let upto = self.core.last_applied();
        if self.config.flaw == Some(Flaw::AckBeforeFsync) {
            // The planted bug: the journal is reported flushed without an fsync.
            return self.feed(Input::Durable(upto)).await;
        }
        match self.ctx.disk.sync(storage::OPLOG_FILE).await {
            Ok(()) => self.feed(Input::Durable(upto)).await,
            Err(e) => self.fail(Fatal { file: storage::OPLOG_FILE, error: e }),
        }
    }

    /// The first config primary writes the shard map if no one has.
    async fn bootstrap_shard_map(&mut self) {
        if !std::mem::take(&mut self.bootstrap_pending) || !self.core.is_primary() {
            return;
        }
        let ClusterRole::ConfigServer { shard_map } = self.config.cluster_role.clone() else { return };
        if !self.store.scan(super::shard_map::SHARDS_NS, "", None).is_empty() {
            return;
        }
        let ops = shard_map.to_ops();
        if let Ok((_, actions)) = self.core.write(self.now(), ops, None) {
            self.execute(actions).await;
            self.ctx.trace(
                "mongo.shard_map_written",
                json!({ "shards": shard_map.shards.len(), "chunks": shard_map.chunks.len() }),
            );
        }
    }
}
