//! Redis replication and role changes, sans-IO: the keyspace and client commands, the master's
//! replication stream and backlog, `PSYNC` answers (partial from the backlog, PSYNC2 continuation
//! of a previous master's history, or a full resynchronisation), the replica's side of the link,
//! and `REPLICAOF` role changes. The shell ([`super::server`]) feeds [`Replication::step`] what
//! happened (a command, a link event, a message, a tick) and carries out the [`Action`]s it
//! returns; the core never touches a socket, a clock or a disk.
//!
//! Follows `replication.c`:
//! - a master appends every write to its stream at the next offset and keeps the last
//!   `repl-backlog-size` of it (here [`BACKLOG_OPS`] writes); replicas apply the stream in order
//!   and keep it in their own backlog, so a promoted replica can serve partial resyncs;
//! - `PSYNC replid offset` continues (`+CONTINUE`) when the master knows the history (its own
//!   replid, or its previous master's `replid2` up to the promotion offset) and still holds the
//!   next write in its backlog; otherwise it sends a snapshot (`+FULLRESYNC`);
//! - `REPLICAOF NO ONE` starts a new history, keeping the old id valid up to here (PSYNC2);
//!   `REPLICAOF host` turns the node into a replica that connects and `PSYNC`s with what it has;
//! - a replica acknowledges its offset (`REPLCONF ACK`) about once a second.
//!
//! Every replication connection has an id. Role changes retire the ids of the old role, and the
//! core answers anything from a retired link or feed with [`Action::Close`], so a message that
//! was in flight when the role changed can never be applied.
//!
//! `min-replicas-to-write N` with `min-replicas-max-lag S`: a master refuses writes (`NOREPLICAS`)
//! unless at least N replicas acknowledged within the lag (Redis counts replicas whose last
//! `REPLCONF ACK` is at most S seconds old). It bounds, and does not close, the window in which a
//! master cut off from its replicas acknowledges writes a failover then throws away: a write
//! accepted just before the cut is still lost if the promoted replica had not received it.
//!
//! Left out: `WAIT`, diskless sync options, `repl-diskless-load`, and the
//! replica's output buffer limits (a replica that falls out of the backlog is disconnected).

use std::collections::{BTreeMap, VecDeque};

use serde_json::{json, Value};

use super::keyspace::{Keyspace, MAX_KEY_LEN, MAX_VALUE_LEN};
use super::planted::Planted;
use super::protocol::{Command, Op, Repl, ReplRole, Reply, RoleInfo};

/// `repl-backlog-size` is 1 MB in Redis; here the backlog holds this many writes.
pub const BACKLOG_OPS: usize = 10_000;
/// How often a replica acknowledges its offset (`REPLCONF ACK` every second).
pub const ACK_PERIOD_MS: u64 = 1_000;
/// How long a replica waits before reconnecting a lost link.
pub const RECONNECT_DELAY_MS: u64 = 1_000;
/// Keys the active expire cycle deletes per run (Redis samples 20 per loop).
pub const ACTIVE_EXPIRE_KEYS: usize = 20;
/// Writes sent to a replica per poll.
pub const FEED_BATCH: usize = 256;
const MAX_PX_MS: u64 = 365 * 24 * 3600 * 1000;

/// A replica-side replication link, or a master-side feed to one replica.
pub type LinkId = u64;

/// The two clocks the core reads: wall time stamps key expiry (a skewed clock expires keys early
/// or late, as in Redis), monotonic time paces acknowledgements.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Now {
    pub wall_ms: u64,
    pub mono_ms: u64,
}

/// What happened, as the shell saw it.
#[derive(Clone, Debug)]
pub enum Input {
    /// A client command (`REPLICAOF` included).
    Command(Command),
    /// The active expire cycle's timer.
    ExpireTick,
    /// Replica side: link `link` is connected to its master.
    LinkConnected { link: LinkId },
    /// Replica side: a message from the master on `link`.
    FromMaster { link: LinkId, msg: Repl },
    /// Replica side: `link` failed (connect, timeout, reset).
    LinkLost { link: LinkId, error: String },
    /// Master side: a replica opened feed `feed` with `PSYNC`.
    Psync { feed: LinkId, replica: String, replid: Option<String>, offset: u64 },
    /// Master side: the feed can take more of the stream.
    FeedPoll { feed: LinkId },
    /// Master side: nothing was sent on the feed for an ack period.
    FeedIdle { feed: LinkId },
    /// Master side: `REPLCONF ACK` on the feed.
    Ack { feed: LinkId, offset: u64 },
    /// Master side: the feed's connection is gone.
    FeedClosed { feed: LinkId },
}

/// What the shell must do. `ToMaster`, `ToReplica` and `Close` are about the link or feed the
/// stepped input came from.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Answer the command just stepped.
    Reply(Reply),
    /// `CONFIG REWRITE` with this role, then answer the `REPLICAOF` just stepped (`OK`, or the
    /// error writing the file).
    PersistConfig {
        replica_of: Option<String>,
    },
    /// The node took a role (None: master): claim it and record it.
    RoleChanged {
        replica_of: Option<String>,
        offset: u64,
    },
    /// Open link `link` to `master` after `delay_ms`, and step what happens on it.
    Connect {
        link: LinkId,
        master: String,
        delay_ms: u64,
    },
    ToMaster(Repl),
    ToReplica(Repl),
    /// The link or feed is finished: drop its connection.
    Close,
    /// The stream grew: wake the feeds waiting for writes.
    Wake,
    /// A rare path worth proving a sweep reaches.
    Sometimes(&'static str),
    Trace(&'static str, Value),
}

/// A node's role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    Master,
    Replica { master: String },
}

/// Master side: one replica's feed.
#[derive(Clone, Debug)]
struct Feed {
    replica: String,
    /// The next offset to send.
    next: u64,
    /// The replica's last acknowledged offset.
    ack: u64,
    /// When (monotonic ms) it last acknowledged (or synchronised): its lag for
    /// `min-replicas-max-lag`.
    ack_mono_ms: u64,
}

/// Replica side: the link to the master.
#[derive(Clone, Debug)]
struct Link {
    id: LinkId,
    master: String,
    /// Connected and past `PSYNC`.
    up: bool,
    last_ack_ms: u64,
}

/// One node's replication state machine.
pub struct Replication {
    name: String,
    run_id: String,
    priority: u32,
    backlog_ops: usize,
    /// `min-replicas-to-write` (0: off) and `min-replicas-max-lag` in ms.
    min_replicas: usize,
    min_replicas_max_lag_ms: u64,
    role: Role,
    keyspace: Keyspace,
    replid: String,
    /// The previous history's id and the offset up to which it is ours too (PSYNC2).
    replid2: Option<(String, u64)>,
    offset: u64,
    backlog: VecDeque<(u64, Op)>,
    feeds: BTreeMap<LinkId, Feed>,
    link: Option<Link>,
    /// Whether this node holds some master's history (a restarted replica holds none).
    synced: bool,
    /// Link ids and new replication ids are drawn from this counter.
    counter: u64,
    /// Bugs planted on purpose (none in a safe configuration).
    planted: Planted,
}

impl Replication {
    /// A node starting empty in `role`, with its run id and first replication id (random, from
    /// the shell's seeded rng). Returns the actions of taking that role.
    pub fn new(name: &str, run_id: &str, replid: &str, priority: u32, role: Role) -> (Self, Vec<Action>) {
        let mut core = Replication {
            name: name.into(),
            run_id: run_id.into(),
            priority,
            backlog_ops: BACKLOG_OPS,
            min_replicas: 0,
            min_replicas_max_lag_ms: 0,
            role: Role::Master,
            keyspace: Keyspace::default(),
            replid: replid.into(),
            replid2: None,
            offset: 0,
            backlog: VecDeque::new(),
            feeds: BTreeMap::new(),
            link: None,
            // A master offers its own (empty) history to PSYNC; a restarted replica has none.
            synced: role == Role::Master,
            counter: 0,
            planted: Planted::default(),
        };
        let mut out = vec![Action::RoleChanged { replica_of: None, offset: 0 }];
        if let Role::Replica { master } = role {
            out = core.become_replica(master);
        }
        (core, out)
    }

    /// Runs with the bugs `planted` (an unsafe configuration; see [`super::planted`]).
    pub fn with_planted(mut self, planted: Planted) -> Self {
        self.planted = planted;
        self
    }

    /// A smaller backlog, for tests of what falls out of it.
    pub fn with_backlog(mut self, ops: usize) -> Self {
        self.backlog_ops = ops.max(1);
        self
    }

    /// `min-replicas-to-write n` and `min-replicas-max-lag` (`max_lag_ms`); `n` 0 turns it off.
    pub fn with_min_replicas(mut self, n: usize, max_lag_ms: u64) -> Self {
        self.min_replicas = n;
        self.min_replicas_max_lag_ms = max_lag_ms;
        self
    }

    pub fn role(&self) -> &Role {
        &self.role
    }

    pub fn offset(&self) -> u64 {
        self.offset
    }

    pub fn replid(&self) -> &str {
        &self.replid
    }

    pub fn keyspace(&self) -> &Keyspace {
        &self.keyspace
    }

    pub fn step(&mut self, now: Now, input: Input) -> Vec<Action> {
        match input {
            Input::Command(cmd) => self.command(now, cmd),
            Input::ExpireTick => self.expire(now),
            Input::LinkConnected { link } => self.link_connected(link),
            Input::FromMaster { link, msg } => self.master_sent(now, link, msg),
            Input::LinkLost { link, error } => self.link_lost(link, error),
            Input::Psync { feed, replica, replid, offset } => self.psync(now, feed, replica, replid.as_deref(), offset),
            Input::FeedPoll { feed } => self.feed_poll(feed),
            Input::FeedIdle { feed } => match self.feeds.contains_key(&feed) {
                true => vec![Action::ToReplica(Repl::Ping)],
                false => vec![Action::Close],
            },
            Input::Ack { feed, offset } => self.ack(now, feed, offset),
            Input::FeedClosed { feed } => {
                self.feeds.remove(&feed);
                Vec::new()
            }
        }
    }

    fn is_master(&self) -> bool {
        self.role == Role::Master
    }

    fn next_id(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    // ---- client commands -------------------------------------------------------------------

    fn command(&mut self, now: Now, cmd: Command) -> Vec<Action> {
        let mut out = Vec::new();
        let reply = match cmd {
            Command::Get { key } => {
                // The planted bugs ([`super::planted`]): the entry fetched before lazy expiry, or
                // the first entry at or after the key.
                let fetched = self.planted.read_before_expire.then(|| self.keyspace.raw(&key).map(|e| e.value.clone()));
                if self.is_master() && self.keyspace.is_expired(&key, now.wall_ms) {
                    self.keyspace.del(&key);
                    self.propagate(Op::Del { key: key.clone() }, &mut out);
                }
                let value = match fetched {
                    Some(v) => v,
                    None if self.planted.get_seeks => self.keyspace.seek(&key).map(|e| e.value.clone()),
                    None => self.keyspace.get(&key, now.wall_ms).map(String::from),
                };
                Reply::Value { value }
            }
            Command::Set { .. } | Command::Del { .. } if !self.is_master() => Reply::ReadOnly,
            Command::Set { .. } | Command::Del { .. } if self.good_replicas(now) < self.min_replicas => {
                out.push(Action::Sometimes("redis.write_refused_min_replicas"));
                Reply::Err { message: "NOREPLICAS Not enough good replicas to write.".into() }
            }
            Command::Set { key, value, px } => {
                let bad_px = px.is_some_and(|p| p == 0 || p > MAX_PX_MS);
                if key.is_empty() || key.len() > MAX_KEY_LEN || value.len() > MAX_VALUE_LEN || bad_px {
                    return vec![Action::Reply(Reply::Err { message: "ERR invalid SET".into() })];
                }
                let expire_at_ms = px.map(|p| now.wall_ms + p);
                self.keyspace.set(&key, &value, expire_at_ms);
                self.propagate(Op::Set { key, value, expire_at_ms }, &mut out);
                Reply::Ok
            }
            Command::Del { key } => {
                let existed = self.keyspace.del(&key);
                if existed {
                    self.propagate(Op::Del { key }, &mut out);
                }
                Reply::Int { n: u64::from(existed) }
            }
            Command::Keys { prefix, limit } => {
                Reply::Keys { keys: self.keyspace.keys(&prefix, now.wall_ms, limit.min(100_000)) }
            }
            Command::Role => Reply::Role { info: self.role_info() },
            Command::ReplicaOf { master } => return self.replica_of(master),
        };
        out.push(Action::Reply(reply));
        out
    }

    /// Replicas that acknowledged within `min-replicas-max-lag` (Redis's `repl_good_slaves_count`).
    fn good_replicas(&self, now: Now) -> usize {
        let lag_ok = |f: &&Feed| now.mono_ms.saturating_sub(f.ack_mono_ms) <= self.min_replicas_max_lag_ms;
        self.feeds.values().filter(lag_ok).count()
    }

    /// What `ROLE` / `INFO replication` report.
    pub fn role_info(&self) -> RoleInfo {
        let role = match &self.role {
            Role::Master => {
                let mut acks: BTreeMap<&str, u64> = BTreeMap::new();
                for f in self.feeds.values() {
                    acks.insert(&f.replica, f.ack);
                }
                ReplRole::Master { replicas: acks.into_iter().map(|(n, o)| (n.to_string(), o)).collect() }
            }
            Role::Replica { master } => {
                ReplRole::Replica { master: master.clone(), link_up: self.link.as_ref().is_some_and(|l| l.up) }
            }
        };
        RoleInfo {
            node: self.name.clone(),
            run_id: self.run_id.clone(),
            role,
            offset: self.offset,
            priority: self.priority,
        }
    }

    /// Appends a write to the stream (master only).
    fn propagate(&mut self, op: Op, out: &mut Vec<Action>) {
        self.offset += 1;
        self.push_backlog(self.offset, op);
        if !out.contains(&Action::Wake) {
            out.push(Action::Wake);
        }
    }

    fn push_backlog(&mut self, offset: u64, op: Op) {
        self.backlog.push_back((offset, op));
        if self.backlog.len() > self.backlog_ops {
            self.backlog.pop_front();
        }
    }

    /// The master's active expire cycle: expired keys are deleted and the deletion propagated.
    fn expire(&mut self, now: Now) -> Vec<Action> {
        let mut out = Vec::new();
        if !self.is_master() {
            return out;
        }
        for key in self.keyspace.expired_keys(now.wall_ms, ACTIVE_EXPIRE_KEYS) {
            self.keyspace.del(&key);
            self.propagate(Op::Del { key }, &mut out);
        }
        out
    }

    // ---- role changes ----------------------------------------------------------------------

    /// `REPLICAOF NO ONE` / `REPLICAOF master`, then `CONFIG REWRITE` (also when the role is
    /// already the one asked for, as Redis answers `OK` then).
    fn replica_of(&mut self, master: Option<String>) -> Vec<Action> {
        if master.as_deref() == Some(self.name.as_str()) {
            return vec![Action::Reply(Reply::Err { message: "ERR cannot replicate myself".into() })];
        }
        let wanted = match &master {
            None => Role::Master,
            Some(m) => Role::Replica { master: m.clone() },
        };
        let mut out = match master.clone() {
            _ if wanted == self.role => Vec::new(),
            None => self.become_master(),
            Some(m) => self.become_replica(m),
        };
        out.push(Action::PersistConfig { replica_of: master });
        out
    }

    /// PSYNC2: the old history stays valid up to here under `replid2`; a new one starts.
    fn become_master(&mut self) -> Vec<Action> {
        let id = self.next_id();
        let fresh = format!("{}-{id}", self.run_id);
        let old = std::mem::replace(&mut self.replid, fresh);
        self.replid2 = Some((old, self.offset));
        self.synced = true;
        self.role = Role::Master;
        self.link = None;
        self.feeds.clear();
        vec![Action::RoleChanged { replica_of: None, offset: self.offset }]
    }

    /// Stops serving writes and feeds at once; the data stays until the new master's `PSYNC`
    /// answer says whether it continues or is replaced.
    fn become_replica(&mut self, master: String) -> Vec<Action> {
        self.role = Role::Replica { master: master.clone() };
        self.feeds.clear();
        let link = self.next_id();
        self.link = Some(Link { id: link, master: master.clone(), up: false, last_ack_ms: 0 });
        vec![
            Action::RoleChanged { replica_of: Some(master.clone()), offset: self.offset },
            Action::Connect { link, master, delay_ms: 0 },
        ]
    }

    // ---- replica side ----------------------------------------------------------------------

    fn current_link(&mut self, link: LinkId) -> Option<&mut Link> {
        self.link.as_mut().filter(|l| l.id == link)
    }

    fn link_connected(&mut self, link: LinkId) -> Vec<Action> {
        if self.current_link(link).is_none() {
            return vec![Action::Close];
        }
        let replid = self.synced.then(|| self.replid.clone());
        vec![Action::ToMaster(Repl::Psync { name: self.name.clone(), replid, offset: self.offset })]
    }

    fn link_lost(&mut self, link: LinkId, error: String) -> Vec<Action> {
        let Some(l) = self.current_link(link) else { return Vec::new() };
        l.up = false;
        let master = l.master.clone();
        let next = self.next_id();
        self.link = Some(Link { id: next, master: master.clone(), up: false, last_ack_ms: 0 });
        vec![
            Action::Trace("redis.link_down", json!({ "master": master, "error": error })),
            Action::Connect { link: next, master, delay_ms: RECONNECT_DELAY_MS },
        ]
    }

    fn master_sent(&mut self, now: Now, link: LinkId, msg: Repl) -> Vec<Action> {
        let Some(l) = self.current_link(link) else { return vec![Action::Close] };
        let (up, due) = (l.up, now.mono_ms >= l.last_ack_ms + ACK_PERIOD_MS);
        let mut out = match (up, msg) {
            (false, Repl::FullResync { replid, offset, snapshot }) => {
                self.keyspace = Keyspace::from_snapshot(snapshot);
                self.replid = replid;
                self.replid2 = None;
                self.offset = offset;
                self.backlog.clear();
                self.link_up(now);
                vec![Action::Sometimes("redis.full_resync")]
            }
            (false, Repl::Continue { replid }) => {
                if replid != self.replid {
                    let old = std::mem::replace(&mut self.replid, replid);
                    self.replid2 = Some((old, self.offset));
                }
                self.link_up(now);
                vec![Action::Sometimes("redis.partial_resync")]
            }
            (true, Repl::Op { offset, op }) if offset == self.offset + 1 => {
                self.apply(offset, op);
                Vec::new()
            }
            (true, Repl::Ping) => Vec::new(),
            (_, other) => {
                let mut out = vec![Action::Close];
                out.extend(self.link_lost(link, format!("unexpected {}", describe(&other))));
                return out;
            }
        };
        if up && due {
            if let Some(l) = self.current_link(link) {
                l.last_ack_ms = now.mono_ms;
            }
            out.push(Action::ToMaster(Repl::Ack { offset: self.offset }));
        }
        out
    }

    fn link_up(&mut self, now: Now) {
        self.synced = true;
        if let Some(l) = self.link.as_mut() {
            l.up = true;
            l.last_ack_ms = now.mono_ms;
        }
    }

    /// Applies a write as the master sent it, and keeps it in the backlog (so this node can serve
    /// partial resynchronisations once promoted).
    fn apply(&mut self, offset: u64, op: Op) {
        match &op {
            Op::Set { key, value, expire_at_ms } => self.keyspace.set(key, value, *expire_at_ms),
            Op::Del { key } => {
                self.keyspace.del(key);
            }
        }
        self.offset = offset;
        self.push_backlog(offset, op);
    }

    // ---- master side -----------------------------------------------------------------------

    fn psync(&mut self, now: Now, feed: LinkId, replica: String, replid: Option<&str>, offset: u64) -> Vec<Action> {
        if !self.is_master() || replica == self.name {
            return vec![Action::ToReplica(Repl::NotMaster), Action::Close];
        }
        let (reply, next) = self.psync_answer(replid, offset);
        let full = matches!(reply, Repl::FullResync { .. });
        self.feeds.retain(|_, f| f.replica != replica);
        self.feeds.insert(feed, Feed { replica: replica.clone(), next, ack: next - 1, ack_mono_ms: now.mono_ms });
        vec![
            Action::ToReplica(reply),
            Action::Trace("redis.replica_synced", json!({ "replica": replica, "full": full, "from": next })),
        ]
    }

    /// The answer to `PSYNC replid offset`, and the first offset to stream after it.
    fn psync_answer(&self, replid: Option<&str>, offset: u64) -> (Repl, u64) {
        let known = match replid {
            Some(r) if r == self.replid => offset <= self.offset,
            Some(r) => self.replid2.as_ref().is_some_and(|(old, upto)| old == r && offset <= *upto),
            None => false,
        };
        if known && offset + 1 >= self.backlog_start() {
            return (Repl::Continue { replid: self.replid.clone() }, offset + 1);
        }
        let snapshot = self.keyspace.snapshot();
        (Repl::FullResync { replid: self.replid.clone(), offset: self.offset, snapshot }, self.offset + 1)
    }

    /// The first offset the backlog still holds (one past the end if it is empty).
    fn backlog_start(&self) -> u64 {
        self.backlog.front().map_or(self.offset + 1, |(o, _)| *o)
    }

    /// The next writes for a feed, or `Close` if it is retired or fell out of the backlog (the
    /// replica reconnects and resynchronises).
    fn feed_poll(&mut self, feed: LinkId) -> Vec<Action> {
        let start = self.backlog_start();
        let offset = self.offset;
        let Some(f) = self.feeds.get_mut(&feed) else { return vec![Action::Close] };
        if f.next < start && f.next <= offset {
            self.feeds.remove(&feed);
            return vec![Action::Sometimes("redis.replica_fell_behind"), Action::Close];
        }
        let skip = (f.next - start) as usize;
        let ops: Vec<Action> = self
            .backlog
            .iter()
            .skip(skip)
            .take(FEED_BATCH)
            .map(|(offset, op)| Action::ToReplica(Repl::Op { offset: *offset, op: op.clone() }))
            .collect();
        f.next += ops.len() as u64;
        ops
    }

    fn ack(&mut self, now: Now, feed: LinkId, offset: u64) -> Vec<Action> {
        let current = self.offset;
        match self.feeds.get_mut(&feed) {
            Some(f) if offset <= current => {
                f.ack = f.ack.max(offset);
                f.ack_mono_ms = now.mono_ms;
                Vec::new()
            }
            Some(_) => Vec::new(),
            None => vec![Action::Close],
        }
    }
}

fn describe(msg: &Repl) -> &'static str {
    match msg {
        Repl::Psync { .. } => "PSYNC",
        Repl::FullResync { .. } => "FULLRESYNC",
        Repl::Continue { .. } => "CONTINUE",
        Repl::Op { .. } => "write out of order",
        Repl::Ping => "PING",
        Repl::Ack { .. } => "ACK",
        Repl::NotMaster => "not a master",
    }
}

#[cfg(test)]
mod tests;
