//! The async shell around the sans-IO [`crate::raft`] core: it persists through the disk seam,
//! talks to peers through the net seam, ticks on simulated time, and hands committed entries to
//! the application in order.
//!
//! Storage is two files: `<prefix>.log`, checksummed records of entries (appended and fsynced
//! before any message that depends on them leaves), and `<prefix>.hs`, the hard state, replaced
//! atomically (write, fsync, rename).
//!
//! Disk errors are fail-stop, as PostgreSQL treats a failed fsync (a `PANIC`): after an error
//! from a write, an fsync or the hard-state replace, none of the Ready's messages (the votes and
//! acknowledgements that depended on it) leave; the in-memory core is dropped and the member
//! starts again from what its disk holds, as a restarted process would. Recovery never reads an
//! I/O error as an empty log (only a missing file is empty): it retries until the disk reads,
//! and it fsyncs what it read before building on it (after a failed fsync, the page cache may
//! hold writes the disk never got; acknowledging them from a re-read would promise what a power
//! loss takes back).
//!
//! On start a torn tail of the log (an unsynced append cut by a crash) is cut off at the last
//! good record. A checksum failure, a record that does not follow, an unreadable hard state, a
//! hard-state commit beyond the log, or no hard state at all in a later life (a wiped disk)
//! means synced records are gone: the member is *damaged* ([`crate::raft::Raft::mark_damaged`]:
//! no votes, no campaigns, no acknowledgements) until it is repaired from the leader. The
//! damage is recorded in `<prefix>.damaged` (durably) so that a crash before the repair cannot
//! hide it behind the cut log; the file goes once the core says it is repaired.
//!
//! Left out: a failed read of a file while running (the log is only read at recovery), and
//! telling apart a wiped disk from a member killed before its first hard-state write (both
//! are treated as damaged: a cautious member votes again only after a repair).

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
            damage_recorded: false,
            term_mismatches: 0,
            applied_index: 0,
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
    /// `<prefix>.damaged` is on disk: the log lost synced records and is not repaired yet.
    damage_recorded: bool,
    /// The core's term-mismatch count last reported.
    term_mismatches: u64,
    /// The last committed index handed to the application in this life: a core rebuilt after a
    /// disk error hands out the committed log again from index 1, and the application must
    /// not see it twice.
    applied_index: u64,
}

type Pending = BTreeMap<u64, (u64, oneshot::Sender<Result<u64, ProposeError>>)>;

impl Member {
    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut inbound: mpsc::UnboundedReceiver<Envelope>,
    ) {
        let tick = Duration::from_millis(self.config.tick_ms);
        let mut raft = self.recover().await;
        let mut pending = Pending::new();
        // One timer for the tick, reset when it fires: a fresh sleep per loop turn would leave
        // a cancelled timer in the simulator's queue for every message.
        let ticker = sim::timer::sleep(tick);
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
            self.report_term_mismatches(&raft);
            if raft.has_ready() {
                if let Err(e) = self.handle_ready(&mut raft, &mut pending).await {
                    // Fail-stop: nothing that depended on the failed write left; the core is
                    // dropped and rebuilt from the disk, as after a restart.
                    self.ctx.trace("consensus.io_error", json!({ "error": e.to_string() }));
                    self.ctx.sometimes("consensus.rebuilt_after_io_error");
                    fail_all(&mut pending, ProposeError::Superseded);
                    self.publish_down();
                    sim::timer::sleep(Duration::from_millis(500)).await;
                    raft = self.recover().await;
                    self.term_mismatches = 0;
                } else if self.damage_recorded && !raft.is_damaged() {
                    // The repaired log was persisted by the Ready just handled.
                    if self.ctx.disk.remove(&self.damage_file()).is_ok() {
                        self.damage_recorded = false;
                        self.ctx
                            .trace("consensus.repaired", json!({ "term": raft.term(), "commit": raft.commit_index() }));
                        self.ctx.sometimes("raft.repaired");
                    }
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
            if entry.index > self.applied_index {
                self.applied_index = entry.index;
                let _ = self.applied.send(entry);
            }
        }
        self.publish_status(raft, was_leader);
        Ok(())
    }

    /// Reports each `Append` that found this log holding the leader's index with another term.
    fn report_term_mismatches(&mut self, raft: &Raft) {
        let n = raft.term_mismatches();
        if n > self.term_mismatches {
            self.term_mismatches = n;
            self.ctx.trace("raft.term_mismatch", json!({ "term": raft.term(), "last_index": raft.last_index() }));
            self.ctx.sometimes("raft.term_mismatch");
        }
    }

    /// The member is down (rebuilding after a disk error): no role, no leader.
    fn publish_down(&self) {
        if self.status.borrow().role == Some(Role::Leader) {
            self.ctx.set_role(&self.config.leader_role, false);
        }
        self.status.send_replace(Status::default());
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

    fn damage_file(&self) -> String {
        format!("{}.damaged", self.config.file_prefix)
    }

    /// Rebuilds the core from disk, retrying while the disk fails (fail-stop: the member takes
    /// no part in the group meanwhile).
    async fn recover(&mut self) -> Raft {
        loop {
            match self.try_recover().await {
                Ok(raft) => return raft,
                Err(e) => {
                    self.ctx.trace("consensus.recovery_failed", json!({ "error": e.to_string() }));
                    self.ctx.sometimes("consensus.recovery_failed");
                    sim::timer::sleep(Duration::from_millis(1_000)).await;
                }
            }
        }
    }

    async fn try_recover(&mut self) -> io::Result<Raft> {
        let hs = read_optional(&self.ctx.disk, &self.hs_file())?;
        let log = read_optional(&self.ctx.disk, &self.log_file())?;
        let mut loaded = load(hs.as_deref(), log.as_deref().unwrap_or_default(), self.ctx.incarnation);
        let disk = &self.ctx.disk;
        if let Some(valid_len) = loaded.cut_to {
            self.ctx.trace("consensus.log_tail_cut", json!({ "valid_len": valid_len, "damage": loaded.damage }));
            self.ctx.sometimes("consensus.log_tail_cut");
            disk.truncate(&self.log_file(), valid_len as u64)?;
        }
        if loaded.damage.is_none() && disk.exists(&self.damage_file()) {
            loaded.damage = Some("damage recorded before, not repaired yet");
        }
        if let Some(why) = loaded.damage {
            // Durable before anything is built on the cut log, so a crash cannot hide it.
            disk.replace_file(&self.damage_file(), why.as_bytes()).await?;
            self.ctx.trace("consensus.damaged", json!({ "why": why, "last_index": loaded.entries.len() }));
            self.ctx.sometimes("raft.damaged");
        }
        // What was read may be page cache a failed fsync never wrote: make it durable first.
        if log.is_some() {
            disk.sync(&self.log_file()).await?;
        }
        self.damage_recorded = loaded.damage.is_some();
        self.persisted = loaded.hs;
        let last = loaded.entries.len() as u64;
        self.ctx.trace(
            "consensus.recovered",
            json!({ "term": loaded.hs.term, "commit": loaded.hs.commit, "last_index": last, "damaged": self.damage_recorded }),
        );
        let seed = rand::RngCore::next_u64(&mut self.ctx.rng);
        let mut raft = Raft::new(self.config.raft.clone(), loaded.hs, loaded.entries, seed);
        if self.damage_recorded {
            raft.mark_damaged();
        }
        Ok(raft)
    }
}

/// A file's bytes; `None` when it does not exist. Any other error is an error, never "empty".
fn read_optional(disk: &sim::disk::Disk, file: &str) -> io::Result<Option<Vec<u8>>> {
    match disk.read(file) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// What a member's files hold, as recovery reads them.
#[derive(Debug, PartialEq, Eq)]
struct Loaded {
    hs: HardState,
    entries: Vec<Entry>,
    /// Cut the log file to this length (a torn or damaged tail).
    cut_to: Option<usize>,
    /// Why synced records are gone, if they are.
    damage: Option<&'static str>,
}

/// Decodes the hard state (`None`: no file) and the log of a member in its `incarnation`-th
/// life (the first is 1). Never panics on what it reads: anything malformed ends the log and is damage, except
/// a torn tail (an unsynced append cut by a crash).
fn load(hs: Option<&[u8]>, log: &[u8], incarnation: u64) -> Loaded {
    let mut damage = None;
    let mut hs = match hs {
        None if incarnation > 1 => {
            damage = Some("no hard state in a later life (a wiped disk)");
            HardState::default()
        }
        None => HardState::default(),
        Some(bytes) => match records::decode_all(bytes).records.first().map(|r| postcard::from_bytes(r)) {
            Some(Ok(hs)) => hs,
            _ => {
                damage = Some("unreadable hard state");
                HardState::default()
            }
        },
    };
    let decoded = records::decode_all(log);
    let mut cut_to = (!decoded.is_clean()).then_some(decoded.valid_len);
    if matches!(decoded.tail, records::Tail::Corrupt { .. }) {
        damage = damage.or(Some("checksum failure in the log"));
    }
    let mut entries: Vec<Entry> = Vec::new();
    let mut offset = 0;
    for r in &decoded.records {
        match postcard::from_bytes::<Entry>(r) {
            Ok(e) if e.index == entries.len() as u64 + 1 && e.term >= entries.last().map_or(1, |l| l.term) => {
                offset += records::HEADER_LEN + r.len();
                entries.push(e);
            }
            _ => {
                damage = damage.or(Some("a log record that does not follow"));
                cut_to = Some(offset);
                break;
            }
        }
    }
    let last = entries.len() as u64;
    if hs.commit > last {
        damage = damage.or(Some("hard-state commit beyond the log"));
        hs.commit = last;
    }
    Loaded { hs, entries, cut_to, damage }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(items: &[Vec<u8>]) -> Vec<u8> {
        let mut buf = Vec::new();
        items.iter().for_each(|p| records::encode_into(&mut buf, p));
        buf
    }

    fn entry(index: u64, term: u64) -> Vec<u8> {
        postcard::to_stdvec(&Entry { term, index, data: vec![1] }).unwrap()
    }

    fn hs(term: u64, commit: u64) -> Vec<u8> {
        records::encode(&postcard::to_stdvec(&HardState { term, voted_for: Some(1), commit }).unwrap())
    }

    #[test]
    fn a_torn_tail_is_cut_and_is_not_damage() {
        let mut log = encode(&[entry(1, 1), entry(2, 1)]);
        let full = log.len();
        log.extend_from_slice(&encode(&[entry(3, 1)])[..5]);
        let l = load(Some(&hs(1, 2)), &log, 1);
        assert_eq!((l.entries.len(), l.cut_to, l.damage), (2, Some(full), None));
    }

    #[test]
    fn a_checksum_failure_in_synced_records_is_damage() {
        let mut log = encode(&[entry(1, 1), entry(2, 1), entry(3, 1)]);
        log[records::HEADER_LEN + 2] ^= 0xff;
        let l = load(Some(&hs(1, 3)), &log, 1);
        assert_eq!(l.entries.len(), 0);
        assert_eq!(l.hs.commit, 0, "commit clamped to what is left");
        assert!(l.damage.is_some());
    }

    #[test]
    fn a_record_that_does_not_follow_or_a_commit_past_the_log_is_damage() {
        let skip = load(Some(&hs(2, 1)), &encode(&[entry(1, 1), entry(3, 1)]), 1);
        assert_eq!((skip.entries.len(), skip.damage.is_some()), (1, true));
        let older = load(Some(&hs(2, 1)), &encode(&[entry(1, 2), entry(2, 1)]), 1);
        assert_eq!((older.entries.len(), older.damage.is_some()), (1, true));
        let short = load(Some(&hs(2, 5)), &encode(&[entry(1, 1)]), 1);
        assert_eq!((short.hs.commit, short.damage.is_some()), (1, true));
    }

    #[test]
    fn lost_or_unreadable_hard_state_is_damage_after_the_first_life() {
        assert_eq!(load(None, &[], 1).damage, None, "a brand-new member");
        assert!(load(None, &[], 2).damage.is_some(), "a wiped disk");
        assert!(load(Some(b"garbage"), &[], 0).damage.is_some());
        let clean = load(Some(&hs(3, 1)), &encode(&[entry(1, 1)]), 4);
        assert_eq!((clean.hs.term, clean.entries.len(), clean.cut_to, clean.damage), (3, 1, None, None));
    }

    #[test]
    fn an_io_error_is_not_an_empty_file() {
        let farm = sim::disk::DiskFarm::new(1);
        let disk = sim::disk::Disk::Sim(farm.disk("n"));
        assert_eq!(read_optional(&disk, "raft.log").unwrap(), None);
        disk.append("raft.log", b"x").unwrap();
        farm.set_faults("n", sim::disk::DiskFaults { io_error: sim::ratio::Ratio::new(1, 1), ..Default::default() });
        assert!(read_optional(&disk, "raft.log").is_err());
    }
}
