//! The Redis-like server shell: runs one node's replication core ([`super::replication`]) over
//! the seams. It serves clients ([`rpc::serve`]), accepts replicas ([`rpc::accept_each`]),
//! opens the replication link the core asks for (one [`Dialer::dial`]: when to try again is the
//! core's decision),
//! steps the core with every command, message, timer and connection event, and carries out the
//! actions it returns (send, close, connect, rewrite `redis.conf`, claim a role). What to do is
//! the core's call; the shell only knows how.
//!
//! A write is acknowledged as soon as the master has applied it in memory; replicas get it
//! later. Nothing but the configuration (`redis.conf`, rewritten on `REPLICAOF` as Sentinel's
//! `CONFIG REWRITE` does) touches the disk, so a restarted node comes back empty, in the role its
//! configuration names.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::RngCore;
use serde::{Deserialize, Serialize};
use sim::NodeCtx;
use tokio::sync::Notify;

use super::observations::RoleChanged;
use super::planted::Planted;
use super::protocol::{Command, Repl, Reply, REDIS_PORT, REPLICATION_PORT};
use super::replication::{Action, Input, LinkId, Now, Replication, Role, ACK_PERIOD_MS};
use crate::rpc::{self, Answer, DialOptions, Dialer, Encoding, FrameReader, FrameWriter, Frames, Listen};

/// `repl-timeout` (60 s in Redis), scaled: bounds the link's connect, every read and write.
const REPL_TIMEOUT: Duration = Duration::from_secs(3);
const ACTIVE_EXPIRE_PERIOD: Duration = Duration::from_millis(100);
/// The node's configuration file: only its role survives a restart.
pub(super) const CONFIG_FILE: &str = "redis.conf";

/// How a node is set up; `replica_of` applies until a `redis.conf` exists.
#[derive(Clone)]
pub struct RedisConfig {
    pub replica_of: Option<String>,
    /// `replica-priority` (100 in Redis; 0: never promoted).
    pub priority: u32,
    /// The role names this node claims, namespaced by its cluster.
    pub roles: Roles,
    /// `min-replicas-to-write` (0 in Redis: off).
    pub min_replicas_to_write: usize,
    /// `min-replicas-max-lag` (10 s in Redis).
    pub min_replicas_max_lag_ms: u64,
    /// Bugs planted on purpose (none in a safe configuration; see [`super::planted`]).
    pub planted: Planted,
}

/// The names of the roles a node claims (see [`sim::NodeCtx::set_role`]), e.g. `redis-master`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Roles {
    pub master: String,
    pub replica: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct ConfigFile {
    pub(super) replica_of: Option<String>,
}

struct Node {
    ctx: NodeCtx,
    config: RedisConfig,
    core: Mutex<Replication>,
    /// Woken whenever the stream grows (a `Notify`, not a `watch`: see the PostgreSQL node for
    /// why).
    stream_grew: Notify,
    /// Ids for master-side feeds, one per accepted replica connection.
    feeds: AtomicU64,
    /// The replica's link to its master.
    dialer: Dialer,
}

fn hex_id(ctx: &mut NodeCtx) -> String {
    format!("{:016x}{:016x}", ctx.rng.next_u64(), ctx.rng.next_u64())
}

/// Runs one Redis node until it dies.
pub async fn run(mut ctx: NodeCtx, config: RedisConfig) {
    let file: ConfigFile = ctx
        .disk
        .read(CONFIG_FILE)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(ConfigFile { replica_of: config.replica_of.clone() });
    let role = match file.replica_of {
        Some(m) if m != ctx.name => Role::Replica { master: m },
        _ => Role::Master,
    };
    let (run_id, replid) = (hex_id(&mut ctx), hex_id(&mut ctx));
    let (core, started) = Replication::new(&ctx.name, &run_id, &replid, config.priority, role);
    let core = core
        .with_min_replicas(config.min_replicas_to_write, config.min_replicas_max_lag_ms)
        .with_planted(config.planted);
    let link = DialOptions::new(REPLICATION_PORT, Encoding::Json).connect_timeout_ms(REPL_TIMEOUT.as_millis() as u64);
    let dialer = Dialer::new(&mut ctx, link);
    let (core, stream_grew, feeds) = (Mutex::new(core), Notify::new(), AtomicU64::new(0));
    let node = Arc::new(Node { ctx, config, core, stream_grew, feeds, dialer });
    node.carry_out(started);
    tokio::spawn(node.clone().expire_cycle());
    tokio::spawn(node.clone().serve_replicas());
    node.serve_clients().await;
}

impl Node {
    /// Steps the core, carries out what concerns the node as a whole, and returns what concerns
    /// the connection the input came from (replies, sends, close, the config rewrite).
    fn step(self: &Arc<Self>, input: Input) -> Vec<Action> {
        let now = Now { wall_ms: self.ctx.clock.wall_ms(), mono_ms: self.ctx.clock.now_ms() };
        let actions = self.core.lock().unwrap_or_else(|e| e.into_inner()).step(now, input);
        self.carry_out(actions)
    }

    fn carry_out(self: &Arc<Self>, actions: Vec<Action>) -> Vec<Action> {
        let mut mine = Vec::new();
        for action in actions {
            match action {
                Action::RoleChanged { replica_of, offset } => self.announce_role(replica_of, offset),
                Action::Connect { link, master, delay_ms } => {
                    tokio::spawn(self.clone().link(link, master, delay_ms));
                }
                Action::Wake => self.stream_grew.notify_waiters(),
                Action::Sometimes(what) => self.ctx.sometimes(what),
                Action::Trace(kind, fields) => self.ctx.trace(kind, fields),
                other => mine.push(other),
            }
        }
        mine
    }

    fn announce_role(&self, replica_of: Option<String>, offset: u64) {
        let master = replica_of.is_none();
        self.ctx.set_role(&self.config.roles.master, master);
        self.ctx.set_role(&self.config.roles.replica, !master);
        self.ctx.observe(&RoleChanged { replica_of, offset });
    }

    async fn serve_clients(self: Arc<Self>) {
        let net = self.ctx.net.clone();
        rpc::serve(net, Listen::new(REDIS_PORT, Encoding::Json), move |cmd: Command| {
            let node = self.clone();
            async move { Answer::Reply(node.command(cmd).await) }
        })
        .await;
    }

    /// A command's answer; `REPLICAOF` is answered once `redis.conf` is rewritten.
    async fn command(self: &Arc<Self>, cmd: Command) -> Reply {
        for action in self.step(Input::Command(cmd)) {
            match action {
                Action::Reply(reply) => return reply,
                Action::PersistConfig { replica_of } => {
                    let file = serde_json::to_vec(&ConfigFile { replica_of }).expect("config serializes");
                    return match self.ctx.disk.replace_file(CONFIG_FILE, &file).await {
                        Ok(()) => Reply::Ok,
                        Err(e) => Reply::Err { message: format!("ERR CONFIG REWRITE failed: {e}") },
                    };
                }
                _ => {}
            }
        }
        Reply::Err { message: "ERR no answer".into() }
    }

    /// The master's active expire cycle.
    async fn expire_cycle(self: Arc<Self>) {
        loop {
            sim::timer::sleep(ACTIVE_EXPIRE_PERIOD).await;
            self.step(Input::ExpireTick);
        }
    }

    async fn serve_replicas(self: Arc<Self>) {
        let net = self.ctx.net.clone();
        let listen = Listen::new(REPLICATION_PORT, Encoding::Json);
        rpc::accept_each(net, listen, move |frames, _peer| self.clone().feed_replica(frames)).await;
    }

    /// Master side of one replica's connection: `PSYNC`, then the stream and the acks.
    async fn feed_replica(self: Arc<Self>, mut frames: Frames) {
        let Ok(Repl::Psync { name, replid, offset }) = frames.recv_within(REPL_TIMEOUT).await else { return };
        let feed = self.feeds.fetch_add(1, Ordering::Relaxed) + 1;
        let answer = self.step(Input::Psync { feed, replica: name, replid, offset });
        if send_all(&mut frames, answer, |a| if let Action::ToReplica(m) = a { Some(m) } else { None }).await {
            let (rx, tx) = frames.split();
            let acks = tokio::spawn(self.clone().read_acks(rx, feed));
            self.stream_to(tx, feed).await;
            acks.abort();
        }
        self.step(Input::FeedClosed { feed });
    }

    async fn read_acks(self: Arc<Self>, mut rx: FrameReader, feed: LinkId) {
        while let Ok(Repl::Ack { offset }) = rx.recv_within(REPL_TIMEOUT).await {
            if self.step(Input::Ack { feed, offset }).contains(&Action::Close) {
                return;
            }
        }
    }

    /// Sends the stream as the core hands it out; pings when idle for an ack period.
    async fn stream_to(self: &Arc<Self>, mut tx: FrameWriter, feed: LinkId) {
        loop {
            let grew = self.stream_grew.notified();
            let mut out = self.step(Input::FeedPoll { feed });
            if out.is_empty() {
                tokio::select! {
                    biased;
                    _ = grew => continue,
                    _ = sim::timer::sleep(Duration::from_millis(ACK_PERIOD_MS)) => out = self.step(Input::FeedIdle { feed }),
                }
            }
            for action in out {
                let sent = match action {
                    Action::ToReplica(msg) => tx.send_within(REPL_TIMEOUT, &msg).await,
                    Action::Close => return,
                    _ => continue,
                };
                if sent.is_err() {
                    return;
                }
            }
        }
    }

    /// Replica side: one attempt at the link the core asked for, after `delay_ms`.
    async fn link(self: Arc<Self>, link: LinkId, master: String, delay_ms: u64) {
        sim::timer::sleep(Duration::from_millis(delay_ms)).await;
        if let Err(e) = self.run_link(link, &master).await {
            self.step(Input::LinkLost { link, error: e.to_string() });
        }
    }

    /// Connects, `PSYNC`s and applies the stream until the link fails (an error) or the core
    /// closes it (`Ok`).
    async fn run_link(self: &Arc<Self>, link: LinkId, master: &str) -> std::io::Result<()> {
        let mut frames = self.dialer.dial(master).await?;
        let mut out = self.step(Input::LinkConnected { link });
        loop {
            if out.contains(&Action::Close) {
                return Ok(());
            }
            for action in out {
                if let Action::ToMaster(msg) = action {
                    frames.send_within(REPL_TIMEOUT, &msg).await?;
                }
            }
            let msg = frames.recv_within::<Repl>(REPL_TIMEOUT).await?;
            out = self.step(Input::FromMaster { link, msg });
        }
    }
}

/// Sends the messages `pick` finds in `actions`, in order; false if one failed or the core
/// closed the connection.
async fn send_all(frames: &mut Frames, actions: Vec<Action>, pick: impl Fn(Action) -> Option<Repl>) -> bool {
    if actions.contains(&Action::Close) {
        // A refusal (`NotMaster`) still goes out before the connection is dropped.
        for msg in actions.into_iter().filter_map(&pick) {
            let _ = frames.send_within(REPL_TIMEOUT, &msg).await;
        }
        return false;
    }
    for msg in actions.into_iter().filter_map(pick) {
        if frames.send_within(REPL_TIMEOUT, &msg).await.is_err() {
            return false;
        }
    }
    true
}
