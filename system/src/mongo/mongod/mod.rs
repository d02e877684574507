//! The mongod process: the async shell that runs a [`ReplSet`] member over the seams.
//!
//! It persists the oplog (checksummed records, fsynced per fetched batch on secondaries and by a
//! group-commit journal flush on the primary, every `storage.journal.commitIntervalMs` = 100 ms
//! or at once when a `w:majority` write waits) and the last vote (replaced atomically), applies
//! entries to the [`Store`], serves commands, and answers writes by their write concern: `w:1`
//! as soon as the primary applied the entry, `w:majority` when the commit point reaches it.
//!
//! On start it reads back what its disk kept (a torn tail is cut at the last good record) and
//! rebuilds the store by replaying the oplog.
//!
//! What it claims about its replication (the oplog it recovered, elections won, step-downs,
//! rollbacks) it records as [`MemberEvent`] observations through its context; what it wrote is
//! on its disk, where checkers read it.

mod commands;
mod links;
pub(super) mod storage;

use std::time::Duration;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use sim::NodeCtx;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::observe::MemberEvent;
use super::oplog::{OpTime, OplogEntry};
use super::protocol::{Command, Frame, PeerMsg, Reply, MONGOD_PORT};
use super::replset::{Action, ElectionReason, Input, Now, Persisted, ReplSet, SetConfig, Settings};
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
        }
    }

    fn host(&self) -> &str {
        &self.set.members[self.me].host
    }
}

type CommandIn = (Command, oneshot::Sender<Reply>);

/// Runs one mongod until the node dies.
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
    let rng = ChaCha8Rng::from_rng(&mut ctx.rng).expect("chacha never fails");
    let mongod = Mongod::recover(ctx, config, peers, rng);
    mongod.serve(peer_rx, cmd_rx, undelivered_rx).await;
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
    peers: Vec<Option<PeerSender<Frame>>>,
    waiters: Vec<Waiter>,
    /// Set while the primary has oplog entries not yet fsynced: since when.
    journal_dirty_since_ms: Option<u64>,
    /// A config primary still has to check that the shard map is written.
    bootstrap_pending: bool,
    rollbacks: u64,
}

impl Mongod {
    fn recover(ctx: NodeCtx, config: MongodConfig, peers: Vec<Option<PeerSender<Frame>>>, rng: ChaCha8Rng) -> Self {
        let hs = storage::read_hard_state(&ctx.disk);
        let oplog = storage::read_oplog(&ctx);
        let mut store = Store::default();
        for e in oplog.entries() {
            store.apply(e);
        }
        let (set, last, entries) = (config.set.name.clone(), oplog.last(), oplog.entries().len() as u64);
        ctx.observe(&MemberEvent::Recovered { set, term: hs.term, last, entries });
        let now = Now { ms: ctx.clock.now_ms(), wall_ms: ctx.clock.wall_ms() };
        let initiate = config.initiate && ctx.incarnation == 1;
        let core = ReplSet::new(
            config.set.clone(),
            config.settings.clone(),
            config.me,
            Persisted { hs, oplog },
            rng,
            now,
            initiate,
        );
        Mongod {
            ctx,
            config,
            core,
            store,
            peers,
            waiters: Vec::new(),
            journal_dirty_since_ms: None,
            bootstrap_pending: false,
            rollbacks: 0,
        }
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

    async fn serve(
        mut self,
        mut peer_rx: mpsc::UnboundedReceiver<(usize, PeerMsg)>,
        mut cmd_rx: mpsc::UnboundedReceiver<CommandIn>,
        mut undelivered_rx: mpsc::UnboundedReceiver<(usize, PeerMsg)>,
    ) {
        let tick = Duration::from_millis(TICK_MS);
        let mut next_tick = Instant::now();
        loop {
            let election_at = self.election_instant().unwrap_or(next_tick);
            tokio::select! {
                biased;
                Some((from, msg)) = peer_rx.recv() => self.feed(Input::Recv { from, msg }).await,
                Some((cmd, reply)) = cmd_rx.recv() => self.command(cmd, reply).await,
                Some((to, msg)) = undelivered_rx.recv() => self.feed(Input::Undeliverable { to, msg }).await,
                _ = tokio::time::sleep_until(next_tick) => {
                    next_tick += tick;
                    self.feed(Input::Tick).await;
                    self.expire_waiters();
                }
                _ = tokio::time::sleep_until(election_at), if election_at < next_tick => self.feed(Input::Tick).await,
            }
            self.flush_journal().await;
            self.bootstrap_shard_map().await;
        }
    }

    async fn feed(&mut self, input: Input) {
        let actions = self.core.step(self.now(), input);
        self.execute(actions).await;
    }

    /// Carries out the core's actions in order; durability before the sends that follow.
    async fn execute(&mut self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Send { to, msg } => self.send(to, msg),
                Action::PersistHardState(hs) => {
                    if let Err(e) = storage::write_hard_state(&self.ctx.disk, &hs).await {
                        self.ctx
                            .trace("mongo.io_error", json!({ "file": storage::ELECTION_FILE, "error": e.to_string() }));
                    }
                }
                Action::Append { entries, sync } => self.append(&entries, sync).await,
                Action::RollBack { common, removed, past_commit } => {
                    self.roll_back(common, &removed, past_commit).await
                }
                Action::Commit(commit) => self.resolve_waiters(commit),
                Action::Standing { term, dry_run, reason } => {
                    self.ctx.trace("mongo.standing", json!({ "term": term, "dry_run": dry_run, "reason": reason }));
                }
                Action::ElectionLost { term, dry_run, granted, refused } => {
                    let fields = json!({ "term": term, "dry_run": dry_run, "granted": granted, "refused": refused });
                    self.ctx.trace("mongo.election_lost", fields);
                }
                Action::BecamePrimary { term, reason } => self.became_primary(term, reason),
                Action::SteppedDown { term, reason } => self.stepped_down(term, reason),
                Action::Ignored { from, why } => self.ctx.trace("mongo.ignored", json!({ "from": from, "why": why })),
            }
        }
    }

    fn send(&self, to: usize, msg: PeerMsg) {
        if let Some(Some(link)) = self.peers.get(to) {
            link.send(Frame::Peer { set: self.config.set.name.clone(), from: self.config.me, msg });
        }
    }

    async fn append(&mut self, entries: &[OplogEntry], sync: bool) {
        for e in entries {
            self.store.apply(e);
        }
        let result = match storage::append_oplog(&self.ctx.disk, entries) {
            Ok(()) if sync => self.ctx.disk.sync(storage::OPLOG_FILE).await,
            other => other,
        };
        if let Err(e) = result {
            self.ctx.trace("mongo.io_error", json!({ "file": storage::OPLOG_FILE, "error": e.to_string() }));
        }
        if !sync {
            self.journal_dirty_since_ms.get_or_insert(self.ctx.clock.now_ms());
        }
    }

    /// MongoDB's rollback: undo the store to the common point, truncate the oplog, and keep
    /// what was undone in a rollback file for the operator.
    async fn roll_back(&mut self, common: OpTime, removed: &[OplogEntry], past_commit: bool) {
        self.rollbacks += 1;
        self.store.rollback_after(common.ts);
        let kept = self.core.oplog().entries().to_vec();
        if let Err(e) = storage::rewrite_oplog(&self.ctx.disk, &kept).await {
            self.ctx.trace("mongo.io_error", json!({ "file": storage::OPLOG_FILE, "error": e.to_string() }));
        }
        storage::write_rollback_file(&self.ctx.disk, self.rollbacks, removed);
        let (set, removed_count) = (self.config.set.name.clone(), removed.len() as u64);
        self.ctx.observe(&MemberEvent::RolledBack { set, common, removed: removed_count, past_commit });
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
        match self.ctx.disk.sync(storage::OPLOG_FILE).await {
            Ok(()) => self.feed(Input::Durable(upto)).await,
            Err(e) => self.ctx.trace("mongo.io_error", json!({ "file": storage::OPLOG_FILE, "error": e.to_string() })),
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
