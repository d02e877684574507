//! The Redis-like server shell: the keyspace, client commands, and asynchronous replication
//! (master side: `PSYNC` with partial resynchronisation from the backlog or a full snapshot, then
//! the command stream; replica side: the replication link, `REPLCONF ACK` every second).
//!
//! A write is acknowledged as soon as the master has applied it in memory; replicas get it
//! later. Nothing but the configuration (`redis.conf`, rewritten on `REPLICAOF` as Sentinel's
//! `CONFIG REWRITE` does) touches the disk, so a restarted node comes back empty, in the role its
//! configuration names.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sim::net::Conn;
use sim::NodeCtx;
use tokio::io::{ReadHalf, WriteHalf};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::keyspace::{Keyspace, MAX_KEY_LEN, MAX_VALUE_LEN};
use super::observations::RoleChanged;
use super::protocol::{Command, Op, Repl, ReplRole, Reply, RoleInfo, REDIS_PORT, REPLICATION_PORT};
use crate::wire;

/// `repl-backlog-size` is 1 MB in Redis; here the backlog holds this many writes.
const BACKLOG_OPS: usize = 10_000;
/// `repl-timeout` (60 s in Redis), scaled.
const REPL_TIMEOUT: Duration = Duration::from_secs(3);
const ACK_PERIOD: Duration = Duration::from_secs(1);
const ACTIVE_EXPIRE_PERIOD: Duration = Duration::from_millis(100);
/// Keys the active expire cycle deletes per run (Redis samples 20 per loop).
const ACTIVE_EXPIRE_KEYS: usize = 20;
/// The node's configuration file: only its role survives a restart.
pub(super) const CONFIG_FILE: &str = "redis.conf";
const CLIENT_IDLE: Duration = Duration::from_secs(10);
const MAX_PX_MS: u64 = 365 * 24 * 3600 * 1000;

/// How a node is set up; `replica_of` applies until a `redis.conf` exists.
#[derive(Clone)]
pub struct RedisConfig {
    pub replica_of: Option<String>,
    /// `replica-priority` (100 in Redis; 0: never promoted).
    pub priority: u32,
    /// The role names this node claims, namespaced by its cluster.
    pub roles: Roles,
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

#[derive(Clone, Debug, PartialEq, Eq)]
enum Role {
    Master,
    Replica { master: String },
}

struct Inner {
    /// Bumped by every role change; replication tasks of older generations stop.
    gen: u64,
    role: Role,
    keyspace: Keyspace,
    replid: String,
    /// The previous master's replication id and the offset up to which it is valid (PSYNC2).
    replid2: Option<(String, u64)>,
    offset: u64,
    backlog: VecDeque<(u64, Op)>,
    /// Master: each replica's acknowledged offset.
    replicas: BTreeMap<String, u64>,
    /// Replica: whether the link to the master is up, and whether we hold any master's data.
    link_up: bool,
    synced: bool,
}

struct Node {
    ctx: NodeCtx,
    config: RedisConfig,
    run_id: String,
    inner: Mutex<Inner>,
    /// Woken whenever a write is appended to the stream (a `Notify`, not a `watch`: see the
    /// PostgreSQL node for why).
    offset_moved: Notify,
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
    let inner = Inner {
        gen: 1,
        role: role.clone(),
        keyspace: Keyspace::default(),
        replid,
        replid2: None,
        offset: 0,
        backlog: VecDeque::new(),
        replicas: BTreeMap::new(),
        link_up: false,
        // A master offers its own history to PSYNC; a restarted replica has none.
        synced: role == Role::Master,
    };
    let node = Arc::new(Node { ctx, config, run_id, inner: Mutex::new(inner), offset_moved: Notify::new() });
    let replica_of = match &role {
        Role::Master => None,
        Role::Replica { master } => Some(master.clone()),
    };
    node.announce_role(replica_of, 0);
    if let Role::Replica { master } = role {
        tokio::spawn(node.clone().replicate(master, 1));
    }
    tokio::spawn(node.clone().expire_cycle());
    tokio::spawn(node.clone().serve_replicas());
    node.serve_clients().await;
}

impl Node {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn announce_role(&self, replica_of: Option<String>, offset: u64) {
        let master = replica_of.is_none();
        self.ctx.set_role(&self.config.roles.master, master);
        self.ctx.set_role(&self.config.roles.replica, !master);
        self.ctx.observe(&RoleChanged { replica_of, offset });
    }

    /// Appends a write to the replication stream (master only).
    fn propagate(&self, inner: &mut Inner, op: Op) {
        inner.offset += 1;
        inner.backlog.push_back((inner.offset, op));
        if inner.backlog.len() > BACKLOG_OPS {
            inner.backlog.pop_front();
        }
        self.offset_moved.notify_waiters();
    }

    async fn serve_clients(self: Arc<Self>) {
        let Ok(listener) = self.ctx.net.bind(REDIS_PORT).await else { return };
        while let Ok((conn, _)) = listener.accept().await {
            tokio::spawn(self.clone().client_session(conn));
        }
    }

    async fn client_session(self: Arc<Self>, mut conn: Conn) {
        while let Ok(Ok(cmd)) = tokio::time::timeout(CLIENT_IDLE, wire::recv::<_, Command>(&mut conn)).await {
            let reply = match cmd {
                Command::ReplicaOf { master } => self.replica_of(master).await,
                other => self.execute(other),
            };
            if wire::send(&mut conn, &reply).await.is_err() {
                return;
            }
        }
    }

    fn execute(&self, cmd: Command) -> Reply {
        let now = self.ctx.clock.wall_ms();
        let mut inner = self.lock();
        let master = inner.role == Role::Master;
        match cmd {
            Command::Get { key } => {
                if master && inner.keyspace.is_expired(&key, now) {
                    inner.keyspace.del(&key);
                    self.propagate(&mut inner, Op::Del { key: key.clone() });
                }
                Reply::Value { value: inner.keyspace.get(&key, now).map(String::from) }
            }
            Command::Set { .. } | Command::Del { .. } if !master => Reply::ReadOnly,
            Command::Set { key, value, px } => {
                if key.is_empty()
                    || key.len() > MAX_KEY_LEN
                    || value.len() > MAX_VALUE_LEN
                    || px.is_some_and(|p| p == 0 || p > MAX_PX_MS)
                {
                    return Reply::Err { message: "ERR invalid SET".into() };
                }
                let expire_at_ms = px.map(|p| now + p);
                inner.keyspace.set(&key, &value, expire_at_ms);
                self.propagate(&mut inner, Op::Set { key, value, expire_at_ms });
                Reply::Ok
            }
            Command::Del { key } => {
                let existed = inner.keyspace.del(&key);
                if existed {
                    self.propagate(&mut inner, Op::Del { key });
                }
                Reply::Int { n: u64::from(existed) }
            }
            Command::Keys { prefix, limit } => {
                Reply::Keys { keys: inner.keyspace.keys(&prefix, now, limit.min(100_000)) }
            }
            Command::Role => Reply::Role { info: self.role_info(&inner) },
            Command::ReplicaOf { .. } => Reply::Err { message: "ERR handled elsewhere".into() },
        }
    }

    fn role_info(&self, inner: &Inner) -> RoleInfo {
        let role = match &inner.role {
            Role::Master => {
                ReplRole::Master { replicas: inner.replicas.iter().map(|(n, o)| (n.clone(), *o)).collect() }
            }
            Role::Replica { master } => ReplRole::Replica { master: master.clone(), link_up: inner.link_up },
        };
        RoleInfo {
            node: self.ctx.name.clone(),
            run_id: self.run_id.clone(),
            role,
            offset: inner.offset,
            priority: self.config.priority,
        }
    }

    /// `REPLICAOF NO ONE` / `REPLICAOF master`, then `CONFIG REWRITE`.
    async fn replica_of(self: &Arc<Self>, master: Option<String>) -> Reply {
        if master.as_deref() == Some(self.ctx.name.as_str()) {
            return Reply::Err { message: "ERR cannot replicate myself".into() };
        }
        let (gen, changed) = {
            let mut inner = self.lock();
            let role = match &master {
                None => Role::Master,
                Some(m) => Role::Replica { master: m.clone() },
            };
            if inner.role == role {
                (inner.gen, None)
            } else {
                if role == Role::Master {
                    // PSYNC2: keep the old history valid up to here, start a new one.
                    let fresh = format!("{}-{}", self.run_id, inner.gen);
                    let old = std::mem::replace(&mut inner.replid, fresh);
                    inner.replid2 = Some((old, inner.offset));
                    inner.synced = true;
                }
                inner.gen += 1;
                inner.role = role;
                inner.replicas.clear();
                inner.link_up = false;
                (inner.gen, Some(inner.offset))
            }
        };
        if let Some(offset) = changed {
            self.announce_role(master.clone(), offset);
            if let Some(m) = master.clone() {
                tokio::spawn(self.clone().replicate(m, gen));
            }
        }
        let file = serde_json::to_vec(&ConfigFile { replica_of: master }).expect("config serializes");
        match crate::consensus::replace_file(&self.ctx.disk, CONFIG_FILE, &file).await {
            Ok(()) => Reply::Ok,
            Err(e) => Reply::Err { message: format!("ERR CONFIG REWRITE failed: {e}") },
        }
    }

    /// The master's active expire cycle: deleted keys are propagated as `DEL`.
    async fn expire_cycle(self: Arc<Self>) {
        loop {
            tokio::time::sleep(ACTIVE_EXPIRE_PERIOD).await;
            let now = self.ctx.clock.wall_ms();
            let mut inner = self.lock();
            if inner.role != Role::Master {
                continue;
            }
            for key in inner.keyspace.expired_keys(now, ACTIVE_EXPIRE_KEYS) {
                inner.keyspace.del(&key);
                self.propagate(&mut inner, Op::Del { key });
            }
        }
    }

    async fn serve_replicas(self: Arc<Self>) {
        let Ok(listener) = self.ctx.net.bind(REPLICATION_PORT).await else { return };
        while let Ok((conn, _)) = listener.accept().await {
            tokio::spawn(self.clone().feed_replica(conn));
        }
    }

    /// Master side of one replica's link: `PSYNC`, then the stream.
    async fn feed_replica(self: Arc<Self>, mut conn: Conn) {
        let Ok(Ok(Repl::Psync { name, replid, offset })) =
            tokio::time::timeout(REPL_TIMEOUT, wire::recv(&mut conn)).await
        else {
            return;
        };
        let answer = {
            let mut inner = self.lock();
            if inner.role != Role::Master || name == self.ctx.name {
                None
            } else {
                let (reply, next) = psync_answer(&inner, replid.as_deref(), offset);
                inner.replicas.insert(name.clone(), next - 1);
                Some((reply, next, inner.gen))
            }
        };
        let Some((reply, next, gen)) = answer else {
            let _ = wire::send(&mut conn, &Repl::NotMaster).await;
            return;
        };
        let full = matches!(reply, Repl::FullResync { .. });
        if wire::send(&mut conn, &reply).await.is_err() {
            return;
        }
        self.ctx.trace("redis.replica_synced", json!({ "replica": name, "full": full, "from": next }));
        let (rd, wr) = tokio::io::split(conn);
        let acks = tokio::spawn(self.clone().read_acks(rd, name, gen));
        self.stream_to(wr, next, gen).await;
        acks.abort();
    }

    async fn read_acks(self: Arc<Self>, mut rd: ReadHalf<Conn>, name: String, gen: u64) {
        while let Ok(Ok(Repl::Ack { offset })) = tokio::time::timeout(REPL_TIMEOUT, wire::recv(&mut rd)).await {
            let mut inner = self.lock();
            if inner.gen != gen {
                return;
            }
            if offset <= inner.offset {
                inner.replicas.insert(name.clone(), offset);
            }
        }
    }

    /// Sends the backlog from `next` on, then every new write; pings when idle.
    async fn stream_to(&self, mut wr: WriteHalf<Conn>, mut next: u64, gen: u64) {
        loop {
            let moved = self.offset_moved.notified();
            let batch: Option<Vec<(u64, Op)>> = {
                let inner = self.lock();
                if inner.gen != gen {
                    return;
                }
                let first = inner.backlog.front().map_or(inner.offset + 1, |(o, _)| *o);
                if next < first && next <= inner.offset {
                    return; // fell out of the backlog: the replica must resynchronise
                }
                let skip = next.saturating_sub(first) as usize;
                let ops: Vec<(u64, Op)> = inner.backlog.iter().skip(skip).take(256).cloned().collect();
                (!ops.is_empty()).then_some(ops)
            };
            let msgs = match batch {
                Some(ops) => {
                    next = ops.last().map_or(next, |(o, _)| o + 1);
                    ops.into_iter().map(|(offset, op)| Repl::Op { offset, op }).collect()
                }
                None => {
                    tokio::select! {
                        biased;
                        _ = moved => continue,
                        _ = tokio::time::sleep(ACK_PERIOD) => vec![Repl::Ping],
                    }
                }
            };
            for m in msgs {
                if !matches!(tokio::time::timeout(REPL_TIMEOUT, wire::send(&mut wr, &m)).await, Ok(Ok(()))) {
                    return;
                }
            }
        }
    }

    /// Replica side: keeps a link to `master` for as long as generation `gen` lasts.
    async fn replicate(self: Arc<Self>, master: String, gen: u64) {
        loop {
            if self.lock().gen != gen {
                return;
            }
            let result = self.link(&master, gen).await;
            {
                let mut inner = self.lock();
                if inner.gen == gen {
                    inner.link_up = false;
                }
            }
            if let Err(e) = result {
                self.ctx.trace("redis.link_down", json!({ "master": master, "error": e.to_string() }));
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    async fn link(&self, master: &str, gen: u64) -> std::io::Result<()> {
        let mut conn = tokio::time::timeout(REPL_TIMEOUT, self.ctx.net.connect(master, REPLICATION_PORT)).await??;
        let psync = {
            let inner = self.lock();
            Repl::Psync {
                name: self.ctx.name.clone(),
                replid: inner.synced.then(|| inner.replid.clone()),
                offset: inner.offset,
            }
        };
        wire::send(&mut conn, &psync).await?;
        let first = tokio::time::timeout(REPL_TIMEOUT, wire::recv::<_, Repl>(&mut conn)).await??;
        self.start_link(first, gen)?;
        let mut last_ack = Instant::now();
        loop {
            let msg = tokio::time::timeout(REPL_TIMEOUT, wire::recv::<_, Repl>(&mut conn)).await??;
            let offset = {
                let mut inner = self.lock();
                if inner.gen != gen {
                    return Ok(());
                }
                match msg {
                    Repl::Op { offset, op } if offset == inner.offset + 1 => apply_replicated(&mut inner, offset, op),
                    Repl::Ping => {}
                    _ => {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            "replication stream out of order",
                        ))
                    }
                }
                inner.offset
            };
            if last_ack.elapsed() >= ACK_PERIOD {
                last_ack = Instant::now();
                wire::send(&mut conn, &Repl::Ack { offset }).await?;
            }
        }
    }

    /// Applies the master's answer to `PSYNC`.
    fn start_link(&self, first: Repl, gen: u64) -> std::io::Result<()> {
        let mut inner = self.lock();
        if inner.gen != gen {
            return Err(std::io::Error::other("role changed"));
        }
        match first {
            Repl::FullResync { replid, offset, snapshot } => {
                inner.keyspace = Keyspace::from_snapshot(snapshot);
                inner.replid = replid;
                inner.replid2 = None;
                inner.offset = offset;
                inner.backlog.clear();
                self.ctx.sometimes("redis.full_resync");
            }
            Repl::Continue { replid } => {
                if replid != inner.replid {
                    let old = std::mem::replace(&mut inner.replid, replid);
                    inner.replid2 = Some((old, inner.offset));
                }
                self.ctx.sometimes("redis.partial_resync");
            }
            _ => return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "not a master")),
        }
        inner.synced = true;
        inner.link_up = true;
        Ok(())
    }
}

/// The master's answer to `PSYNC replid offset`, and the first offset to stream.
fn psync_answer(inner: &Inner, replid: Option<&str>, offset: u64) -> (Repl, u64) {
    let known = match replid {
        Some(r) if r == inner.replid => offset <= inner.offset,
        Some(r) => inner.replid2.as_ref().is_some_and(|(old, upto)| old == r && offset <= *upto),
        None => false,
    };
    let first = inner.backlog.front().map_or(inner.offset + 1, |(o, _)| *o);
    if known && offset + 1 >= first {
        return (Repl::Continue { replid: inner.replid.clone() }, offset + 1);
    }
    let snapshot = inner.keyspace.snapshot();
    (Repl::FullResync { replid: inner.replid.clone(), offset: inner.offset, snapshot }, inner.offset + 1)
}

/// A replica applies a write as the master sent it, and keeps it in its own backlog (so it can
/// serve partial resynchronisations once promoted).
fn apply_replicated(inner: &mut Inner, offset: u64, op: Op) {
    match &op {
        Op::Set { key, value, expire_at_ms } => inner.keyspace.set(key, value, *expire_at_ms),
        Op::Del { key } => {
            inner.keyspace.del(key);
        }
    }
    inner.offset = offset;
    inner.backlog.push_back((offset, op));
    if inner.backlog.len() > BACKLOG_OPS {
        inner.backlog.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inner() -> Inner {
        Inner {
            gen: 1,
            role: Role::Master,
            keyspace: Keyspace::default(),
            replid: "new".into(),
            replid2: Some(("old".into(), 10)),
            offset: 15,
            backlog: (6..=15).map(|o| (o, Op::Del { key: format!("k{o}") })).collect(),
            replicas: BTreeMap::new(),
            link_up: false,
            synced: true,
        }
    }

    #[test]
    fn psync_continues_from_the_backlog_or_falls_back_to_a_full_resync() {
        let i = inner();
        assert!(matches!(psync_answer(&i, Some("new"), 12), (Repl::Continue { .. }, 13)));
        // The old master's history is valid up to the promotion point only.
        assert!(matches!(psync_answer(&i, Some("old"), 9), (Repl::Continue { .. }, 10)));
        assert!(matches!(psync_answer(&i, Some("old"), 11), (Repl::FullResync { offset: 15, .. }, 16)));
        // Too far behind the backlog, unknown history, or a fresh replica: full resync.
        assert!(matches!(psync_answer(&i, Some("new"), 3), (Repl::FullResync { .. }, 16)));
        assert!(matches!(psync_answer(&i, Some("other"), 12), (Repl::FullResync { .. }, 16)));
        assert!(matches!(psync_answer(&i, None, 0), (Repl::FullResync { .. }, 16)));
    }

    #[test]
    fn replicas_apply_the_stream_and_keep_their_own_backlog() {
        let mut i = inner();
        apply_replicated(&mut i, 16, Op::Set { key: "a".into(), value: "1".into(), expire_at_ms: None });
        assert_eq!(i.keyspace.get("a", 0), Some("1"));
        assert_eq!((i.offset, i.backlog.back().map(|b| b.0)), (16, Some(16)));
    }
}
