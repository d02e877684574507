//! The async shell around the sans-IO [`crate::raft`] core: it persists through the disk seam,
//! talks to peers through the net seam, ticks on simulated time, and hands committed entries to
//! the application in order.
//!
//! Storage is two files: `<prefix>.log`, checksummed records of entries (appended and fsynced
//! before any message that depends on them leaves), and `<prefix>.hs`, the hard state, replaced
//! atomically (write, fsync, rename). On start a torn tail of the log is cut off at the last good
//! record; a corrupt record also ends the log there (and is traced). A failed write or fsync is
//! treated as PostgreSQL treats a failed fsync: the in-memory state can no longer be trusted, so
//! the shell rebuilds the core from what is on disk, as a restarted process would.

use std::collections::BTreeMap;
use std::io;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;
use sim::disk::records;
use sim::net::Net;
use sim::NodeCtx;
use tokio::sync::{mpsc, oneshot, watch};

use crate::raft::{self, Entry, HardState, Message, NodeId, Raft, Role};
use crate::rpc::{self, Answer, Encoding, Listen, PeerOptions, PeerSender};

/// How a consensus group is laid out and paced.
#[derive(Clone, Debug)]
pub struct ConsensusConfig {
    pub me: NodeId,
    /// Every voter's id and node name, including this node.
    pub members: BTreeMap<NodeId, String>,
    pub port: u16,
    pub tick_ms: u64,
    /// Prefix of this group's files on the node's disk (a node may host several groups).
    pub file_prefix: String,
    /// The role name this node claims while leader (for fault targeting), e.g. "raft-leader".
    pub leader_role: String,
    pub raft: raft::Config,
}

/// What the application sees of the group.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Status {
    pub role: Option<Role>,
    pub term: u64,
    pub leader: Option<String>,
    pub commit: u64,
}

#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProposeError {
    #[error("not the leader; try {0:?}")]
    NotLeader(Option<String>),
    #[error("the entry was overwritten by a newer leader")]
    Superseded,
    #[error("the consensus task has stopped")]
    Stopped,
}

/// Handle to a running group member.
#[derive(Clone)]
pub struct Consensus {
    commands: mpsc::UnboundedSender<Command>,
    status: watch::Receiver<Status>,
}

enum Command {
    Propose(Vec<u8>, oneshot::Sender<Result<u64, ProposeError>>),
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    from: NodeId,
    msg: Message,
}

impl Consensus {
    /// Starts the member's tasks on the current node; committed entries (no-ops included, with
    /// empty data) arrive on the returned receiver, in index order, from index 1 on every start.
    pub fn start(ctx: &mut NodeCtx, config: ConsensusConfig) -> (Consensus, mpsc::UnboundedReceiver<Entry>) {
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (applied_tx, applied_rx) = mpsc::unbounded_channel();
        let (status_tx, status_rx) = watch::channel(Status::default());
        let (inbound_tx, inbound_rx) = mpsc::unbounded_channel();
        tokio::spawn(listen(ctx.net.clone(), config.port, inbound_tx));
        // Raft tolerates loss (heartbeats repeat, the leader resends what a follower lacks), so
        // nothing needs to hear of frames the links could not deliver.
        let outbound = config
            .members
            .iter()
            .filter(|(id, _)| **id != config.me)
            .map(|(id, name)| (*id, PeerSender::spawn(ctx, name, peer_options(config.port), |_| {})))
            .collect();
        let member = Member {
            ctx: ctx.fork(),
            config,
            outbound,
            applied: applied_tx,
            status: status_tx,
            persisted: HardState::default(),
        };
        tokio::spawn(member.run(cmd_rx, inbound_rx));
        (Consensus { commands: cmd_tx, status: status_rx }, applied_rx)
    }

    /// Proposes `data`; resolves with its index once committed.
    pub async fn propose(&self, data: Vec<u8>) -> Result<u64, ProposeError> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(Command::Propose(data, tx)).map_err(|_| ProposeError::Stopped)?;
        rx.await.unwrap_or(Err(ProposeError::Stopped))
    }

    /// The member's latest status. (Read only: tokio's `watch` wakes multiple waiters in an
    /// order drawn from a process-global random stream, so simulated code must not await it.)
    pub fn status(&self) -> Status {
        self.status.borrow().clone()
    }
}

struct Member {
    ctx: NodeCtx,
    config: ConsensusConfig,
    outbound: BTreeMap<NodeId, PeerSender<Envelope>>,
    applied: mpsc::UnboundedSender<Entry>,
    status: watch::Sender<Status>,
    /// The hard state last written to disk.
    persisted: HardState,
}

type Pending = BTreeMap<u64, (u64, oneshot::Sender<Result<u64, ProposeError>>)>;

impl Member {
    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut inbound: mpsc::UnboundedReceiver<Envelope>,
    ) {
        let tick = Duration::from_millis(self.config.tick_ms);
        let mut raft = self.recover();
        let mut pending = Pending::new();
        // One timer for the tick, reset when it fires: a fresh sleep per loop turn would leave
        // a cancelled timer in the simulator's queue for every message.
        let ticker = tokio::time::sleep(tick);
        tokio::pin!(ticker);
        loop {
            tokio::select! {
                biased;
                Some(env) = inbound.recv() => raft.step(env.from, env.msg),
                Some(Command::Propose(data, reply)) = commands.recv() => self.propose(&mut raft, &mut pending, data, reply),
                _ = &mut ticker => {
                    raft.tick();
                    let next = ticker.deadline() + tick;
                    ticker.as_mut().reset(next);
                }
            }
            if raft.has_ready() {
                if let Err(e) = self.handle_ready(&mut raft, &mut pending).await {
                    self.ctx.trace("consensus.io_error", json!({ "error": e.to_string() }));
                    self.ctx.sometimes("consensus.rebuilt_after_io_error");
                    fail_all(&mut pending, ProposeError::Superseded);
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    raft = self.recover();
                }
            }
        }
    }

    fn propose(
        &self,
        raft: &mut Raft,
        pending: &mut Pending,
        data: Vec<u8>,
        reply: oneshot::Sender<Result<u64, ProposeError>>,
    ) {
        match raft.propose(data) {
            Ok((index, term)) => {
                pending.insert(index, (term, reply));
            }
            Err(e) => {
                let hint = e.leader_hint.and_then(|id| self.config.members.get(&id).cloned());
                let _ = reply.send(Err(ProposeError::NotLeader(hint)));
            }
        }
    }

    async fn handle_ready(&mut self, raft: &mut Raft, pending: &mut Pending) -> io::Result<()> {
        let was_leader = self.status.borrow().role == Some(Role::Leader);
        let ready = raft.ready();
        if let Some(from) = ready.truncate_from {
            self.truncate_log(&log_before(raft, from)).await?;
            for (_, (_, reply)) in pending.split_off(&from) {
                let _ = reply.send(Err(ProposeError::Superseded));
            }
        }
        self.append_entries(&ready.entries).await?;
        if let Some(hs) = ready.hard_state {
            // Term and vote must be durable before any message leaves; the commit index need
            // not be (a restarted member relearns it from the leader), so a change of commit
            // alone costs no fsync.
            if (hs.term, hs.voted_for) != (self.persisted.term, self.persisted.voted_for) {
                self.write_hard_state(&hs).await?;
                self.persisted = hs;
            }
        }
        for (to, msg) in ready.messages {
            if let Some(link) = self.outbound.get(&to) {
                link.send(Envelope { from: self.config.me, msg });
            }
        }
        for entry in ready.committed {
            if let Some((term, reply)) = pending.remove(&entry.index) {
                let result = if term == entry.term { Ok(entry.index) } else { Err(ProposeError::Superseded) };
                let _ = reply.send(result);
            }
            let _ = self.applied.send(entry);
        }
        self.publish_status(raft, was_leader);
        Ok(())
    }

    fn publish_status(&self, raft: &Raft, was_leader: bool) {
        let leader = raft.leader().and_then(|id| self.config.members.get(&id).cloned());
        let status = Status { role: Some(raft.role()), term: raft.term(), leader, commit: raft.commit_index() };
        let is_leader = raft.role() == Role::Leader;
        if is_leader != was_leader {
            self.ctx.set_role(&self.config.leader_role, is_leader);
            if is_leader {
                self.ctx.trace("consensus.leader", json!({ "term": raft.term(), "last_index": raft.last_index() }));
                self.ctx.sometimes("consensus.leader_elected");
            }
        }
        self.status.send_if_modified(|s| {
            let changed = *s != status;
            *s = status;
            changed
        });
    }

    fn log_file(&self) -> String {
        format!("{}.log", self.config.file_prefix)
    }

    fn hs_file(&self) -> String {
        format!("{}.hs", self.config.file_prefix)
    }

    async fn append_entries(&self, entries: &[Entry]) -> io::Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::new();
        for e in entries {
            records::encode_into(&mut buf, &postcard::to_stdvec(e).expect("entries serialize"));
        }
        let disk = &self.ctx.disk;
        disk.append(&self.log_file(), &buf)?;
        disk.sync(&self.log_file()).await
    }

    /// Rewrites the log as `keep` (rare: only when a new leader overwrites a conflicting tail).
    async fn truncate_log(&self, keep: &[Entry]) -> io::Result<()> {
        let mut buf = Vec::new();
        for e in keep {
            records::encode_into(&mut buf, &postcard::to_stdvec(e).expect("entries serialize"));
        }
        self.ctx.disk.replace_file(&self.log_file(), &buf).await
    }

    async fn write_hard_state(&self, hs: &HardState) -> io::Result<()> {
        let bytes = records::encode(&postcard::to_stdvec(hs).expect("hard state serializes"));
        self.ctx.disk.replace_file(&self.hs_file(), &bytes).await
    }

    /// Rebuilds the core from disk, cutting a torn or corrupt log tail.
    fn recover(&mut self) -> Raft {
        let hs = self.read_hard_state();
        self.persisted = hs;
        let log = self.read_log();
        let mut hs = hs;
        let last = log.last().map_or(0, |e| e.index);
        if hs.commit > last {
            // Only a corrupt synced record can get here: the data it held is gone from this
            // node, and the leader will send it again.
            self.ctx.trace("consensus.commit_beyond_log", json!({ "commit": hs.commit, "last": last }));
            hs.commit = last;
        }
        self.ctx.trace("consensus.recovered", json!({ "term": hs.term, "commit": hs.commit, "last_index": last }));
        let seed = rand::RngCore::next_u64(&mut self.ctx.rng);
        Raft::new(self.config.raft.clone(), hs, log, seed)
    }

    fn read_hard_state(&self) -> HardState {
        let bytes = self.ctx.disk.read(&self.hs_file()).unwrap_or_default();
        let decoded = records::decode_all(&bytes);
        decoded.records.first().and_then(|r| postcard::from_bytes(r).ok()).unwrap_or_default()
    }

    fn read_log(&self) -> Vec<Entry> {
        let bytes = self.ctx.disk.read(&self.log_file()).unwrap_or_default();
        let decoded = records::decode_all(&bytes);
        if !decoded.is_clean() {
            self.ctx.trace(
                "consensus.log_tail_cut",
                json!({ "tail": format!("{:?}", decoded.tail), "valid_len": decoded.valid_len }),
            );
            self.ctx.sometimes("consensus.log_tail_cut");
            // Not yet durable: a crash before the next fsync cuts the same tail again.
            let _ = self.ctx.disk.truncate(&self.log_file(), decoded.valid_len as u64);
        }
        let mut entries: Vec<Entry> = Vec::new();
        for r in decoded.records {
            match postcard::from_bytes::<Entry>(&r) {
                Ok(e) if e.index == entries.len() as u64 + 1 => entries.push(e),
                _ => break,
            }
        }
        entries
    }
}

fn fail_all(pending: &mut Pending, err: ProposeError) {
    for (_, (_, reply)) in std::mem::take(pending) {
        let _ = reply.send(Err(err.clone()));
    }
}

/// The entries that survive truncation at `from`.
fn log_before(raft: &Raft, from: u64) -> Vec<Entry> {
    raft.log().iter().take_while(|e| e.index < from).cloned().collect()
}

/// The options of every member's peer links: postcard frames (replication is the hot path).
fn peer_options(port: u16) -> PeerOptions {
    PeerOptions::new(port, Encoding::Postcard)
}

/// Accepts peers' connections and forwards their messages to the member. Senders replace their
/// connections every few seconds and heartbeat every tick, so a connection idle for 10 s is one
/// whose sender is gone or cut off.
async fn listen(net: Net, port: u16, inbound: mpsc::UnboundedSender<Envelope>) {
    let listen = Listen::new(port, Encoding::Postcard).idle_timeout_ms(10_000);
    rpc::serve(net, listen, move |env: Envelope| {
        let delivered = inbound.send(env).is_ok();
        async move {
            if delivered {
                Answer::<()>::Quiet
            } else {
                Answer::Close
            }
        }
    })
    .await;
}
