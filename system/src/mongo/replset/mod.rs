//! A sans-IO replica set member: MongoDB's replication protocol version 1 (pv1) without I/O.
//!
//! [`ReplSet`] does no I/O and reads no clock: the shell feeds it [`Input`]s stamped with a
//! [`Now`] and carries out the [`Action`]s it returns, **in order** (an `Append { sync: true }`
//! or a `PersistHardState` must be durable before any later `Send` leaves). Writes enter through
//! [`ReplSet::write`] on the primary.
//!
//! What it models (MongoDB names in parentheses):
//! - Elections: terms, one vote per term kept durably (`local.replset.election`), a dry-run
//!   round before bumping the term, votes refused to candidates whose last applied optime is
//!   behind the voter's, an election timer reset by heartbeats from the primary and randomised by
//!   up to `electionTimeoutOffsetLimitFraction` (0.15) of `electionTimeoutMillis`, priority-0
//!   members that never stand, and priority takeover: a caught-up member (within
//!   `priorityTakeoverFreshnessWindowSeconds`) that outranks the primary calls an election after
//!   `(priority rank + 1) * electionTimeoutMillis` plus the random offset. A round ends when a
//!   majority grants, when enough refuse, or after `electionTimeoutMillis` (MongoDB's vote
//!   request timeout); a vote request that cannot be delivered counts as a refusal at once, as a
//!   refused connection does. Two candidates in one term split the vote and both wait for a new
//!   election timeout, as in MongoDB.
//! - Heartbeats to every member every `heartbeatIntervalMillis`; a primary that has not heard
//!   from a majority within `electionTimeoutMillis` steps down; any newer term deposes it.
//! - Replication by pulling: secondaries fetch the oplog from the primary (the oplog fetcher's
//!   awaitData `getMore`, parked up to half the election timeout), journal each batch, and report
//!   their durable optime with the next fetch (`replSetUpdatePosition`). A primary writes its
//!   entries before any secondary has them: `w:1` is acknowledged by the shell at once.
//! - The majority commit point: the newest optime of the current term held durably by a majority
//!   (`writeConcernMajorityJournalDefault: true`), learned by secondaries from their source.
//! - Rollback: a fetcher whose last optime the source lacks (`OplogStartMissing`) finds the
//!   common point and truncates everything after it. Entries acknowledged at `w:1` that never
//!   reached a majority are lost this way, exactly as in MongoDB.
//!
//! What it leaves out: reconfiguration (the member list is fixed), arbiters, non-voting
//! members, chained replication (members sync from the primary only), primary catch-up
//! (`catchUpTimeoutMillis` is taken as 0: a new primary accepts writes at once, which makes
//! `w:1` losses a little more likely than in MongoDB), catch-up takeover, election handoff and
//! `replSetStepDown`, and oplog size limits.

mod election;
mod sync;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::oplog::{Fence, Op, OpTime, Oplog, OplogEntry};
use super::protocol::PeerMsg;

/// One member of the set's configuration (`members[n]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberConfig {
    pub host: String,
    /// `members[n].priority`: 0 never stands for election; higher takes over from lower.
    pub priority: u32,
}

/// The replica set configuration (`_id` and `members`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetConfig {
    pub name: String,
    pub members: Vec<MemberConfig>,
}

impl SetConfig {
    pub fn majority(&self) -> usize {
        self.members.len() / 2 + 1
    }

    pub fn index_of(&self, host: &str) -> Option<usize> {
        self.members.iter().position(|m| m.host == host)
    }
}

/// Timing settings, MongoDB's defaults unless a scenario says otherwise.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// `settings.heartbeatIntervalMillis`.
    pub heartbeat_interval_ms: u64,
    /// `settings.electionTimeoutMillis`.
    pub election_timeout_ms: u64,
    /// `electionTimeoutOffsetLimitFraction`, in thousandths (0.15 = 150).
    pub election_offset_limit_permille: u64,
    /// `priorityTakeoverFreshnessWindowSeconds`, in ms.
    pub priority_takeover_freshness_ms: u64,
    /// How long a source parks an oplog fetch with nothing to send (the fetcher's
    /// `maxAwaitTimeMS`, half the election timeout in MongoDB).
    pub fetch_await_ms: u64,
    /// Entries per fetched batch.
    pub fetch_batch_max: usize,
    /// A planted bug (unsafe configs only): a candidate that wins its dry run takes office at
    /// once, in the term it already had, without the real round's term bump and durable votes.
    pub dry_run_elects: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            heartbeat_interval_ms: 2_000,
            election_timeout_ms: 10_000,
            election_offset_limit_permille: 150,
            priority_takeover_freshness_ms: 2_000,
            fetch_await_ms: 5_000,
            fetch_batch_max: 256,
            dry_run_elects: false,
        }
    }
}

/// The vote a member cast, kept durably (`local.replset.election`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastVote {
    pub term: u64,
    pub candidate: usize,
}

/// What must survive a crash besides the oplog.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardState {
    pub term: u64,
    pub last_vote: Option<LastVote>,
}

/// What a member reads back from its disk when it starts.
#[derive(Clone, Debug, Default)]
pub struct Persisted {
    pub hs: HardState,
    pub oplog: Oplog,
    /// The shell found synced records damaged (a checksum failure inside the oplog, or an
    /// unreadable vote record) and cut the oplog before them: the member must not vote or count
    /// towards a majority until it is repaired from its peers.
    pub damaged: bool,
}

/// The time of an input: monotonic ms for timers, the member's wall clock for oplog `wall`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Now {
    pub ms: u64,
    pub wall_ms: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    /// Time passed; the shell ticks every few tens of ms.
    Tick,
    Recv {
        from: usize,
        msg: PeerMsg,
    },
    /// The shell made the oplog durable up to this optime: the primary's journal flush, a
    /// secondary's fetched batch or the file rewritten by a rollback. The core counts nothing as
    /// durable before this arrives.
    Durable(OpTime),
    /// The shell could not deliver `msg` to member `to` (connection refused or broken). A vote
    /// request that fails this way counts as answered, as a failed `replSetRequestVotes` does
    /// in MongoDB; anything else is left to the protocol's retries.
    Undeliverable {
        to: usize,
        msg: PeerMsg,
    },
}

/// Why a member stood for election.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ElectionReason {
    /// `replSetInitiate` on a fresh set: the initiating member stands at once.
    Initiate,
    ElectionTimeout,
    PriorityTakeover,
}

/// Work for the shell, to be done in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    Send {
        to: usize,
        msg: PeerMsg,
    },
    /// Write and fsync before any later action.
    PersistHardState(HardState),
    /// Append to the oplog file and apply to the store; `sync` means fsync at once and then feed
    /// [`Input::Durable`] (secondaries journal each batch before reporting it). An error from the
    /// append or the fsync must stop the member (fail-stop), never be passed over.
    Append {
        entries: Vec<OplogEntry>,
        sync: bool,
    },
    /// Truncate the oplog after `common` and undo the store to it, durably, then feed
    /// [`Input::Durable`]; `removed` goes to the rollback file. `past_commit` is MongoDB's fatal case: the rollback undid entries this
    /// member had learned were majority-committed.
    RollBack {
        common: OpTime,
        removed: Vec<OplogEntry>,
        past_commit: bool,
    },
    /// The majority commit point advanced.
    Commit(OpTime),
    /// A round of votes began (for the trace).
    Standing {
        term: u64,
        dry_run: bool,
        reason: ElectionReason,
    },
    /// The round ended without a majority (for the trace).
    ElectionLost {
        term: u64,
        dry_run: bool,
        granted: usize,
        refused: usize,
    },
    BecamePrimary {
        term: u64,
        reason: ElectionReason,
    },
    SteppedDown {
        term: u64,
        reason: &'static str,
    },
    /// A damaged member holds again everything the primary had when the repair began: it may
    /// vote and count towards a majority again.
    Repaired,
    /// Peer input that was dropped as invalid (for the trace).
    Ignored {
        from: usize,
        why: &'static str,
    },
}

/// `write` on a member that is not primary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not primary (primary is member {hint:?})")]
pub struct NotPrimary {
    pub hint: Option<usize>,
}

/// What this member knows of another.
#[derive(Clone, Debug, Default)]
struct Peer {
    next_heartbeat_ms: u64,
    last_heard_ms: Option<u64>,
    is_primary: bool,
    term: u64,
    applied: OpTime,
    applied_wall_ms: u64,
    /// Durable optime reported to us (used while primary to advance the commit point).
    position: OpTime,
}

struct Election {
    dry_run: bool,
    term: u64,
    reason: ElectionReason,
    granted: BTreeSet<usize>,
    refused: BTreeSet<usize>,
    started_ms: u64,
}

/// The fetch this member has in flight to its sync source.
#[derive(Clone, Copy, Debug)]
struct Fetching {
    id: u64,
    source: usize,
    sent_ms: u64,
}

/// A fetch this member holds until it has entries to send or the await time passes.
#[derive(Clone, Copy, Debug)]
struct Parked {
    from: usize,
    id: u64,
    after: OpTime,
    until_ms: u64,
}

pub struct ReplSet {
    config: SetConfig,
    settings: Settings,
    me: usize,
    rng: ChaCha8Rng,
    hs: HardState,
    primary: bool,
    known_primary: Option<usize>,
    oplog: Oplog,
    commit: OpTime,
    durable: OpTime,
    peers: Vec<Peer>,
    election_at_ms: u64,
    election: Option<Election>,
    takeover_at_ms: Option<u64>,
    fetch: Option<Fetching>,
    next_fetch_id: u64,
    parked: Vec<Parked>,
    /// A fetched batch or a rollback is being made durable: no fetch (which reports the durable
    /// position) goes out until the shell says it is.
    syncing: bool,
    /// Synced records were found damaged: no votes, no positions reported, never a candidate,
    /// until the oplog reaches `repair_target` (the primary's last optime when first heard).
    damaged: bool,
    repair_target: Option<OpTime>,
    out: Vec<Action>,
}

impl ReplSet {
    /// A member restarting from what it persisted. `initiate` makes it stand at once (the
    /// member `replSetInitiate` ran on, for a set that has never elected anyone).
    pub fn new(
        config: SetConfig,
        settings: Settings,
        me: usize,
        persisted: Persisted,
        rng: ChaCha8Rng,
        now: Now,
        initiate: bool,
    ) -> Self {
        let Persisted { mut hs, oplog, damaged } = persisted;
        assert!(me < config.members.len(), "member {me} not in the set");
        // The term is at least that of the last entry (MongoDB takes it from the oplog too), so a
        // lost or stale election record never sends the term backwards.
        hs.term = hs.term.max(oplog.last().term);
        let peers = vec![Peer { next_heartbeat_ms: now.ms, ..Peer::default() }; config.members.len()];
        let durable = oplog.last();
        let mut set = ReplSet {
            config,
            settings,
            me,
            rng,
            hs,
            primary: false,
            known_primary: None,
            oplog,
            commit: OpTime::ZERO,
            durable,
            peers,
            election_at_ms: 0,
            election: None,
            takeover_at_ms: None,
            fetch: None,
            next_fetch_id: 1,
            parked: Vec::new(),
            syncing: false,
            damaged,
            repair_target: None,
            out: Vec::new(),
        };
        set.reset_election_timer(now);
        if initiate && !damaged && set.hs.term == 0 && set.oplog.last() == OpTime::ZERO {
            set.start_election(now, ElectionReason::Initiate);
        }
        set
    }

    /// Feeds one input; returns the actions to carry out, in order.
    pub fn step(&mut self, now: Now, input: Input) -> Vec<Action> {
        match input {
            Input::Tick => self.tick(now),
            Input::Recv { from, msg } => self.recv(now, from, msg),
            Input::Durable(optime) => self.on_durable(now, optime),
            Input::Undeliverable { to, msg } => self.on_undeliverable(now, to, &msg),
        }
        std::mem::take(&mut self.out)
    }

    /// Appends a write to the primary's oplog. The shell applies it, acknowledges `w:1` at
    /// once and `w:majority` when [`Action::Commit`] reaches its optime.
    pub fn write(&mut self, now: Now, ops: Vec<Op>, fence: Option<Fence>) -> Result<(OpTime, Vec<Action>), NotPrimary> {
        if !self.primary {
            return Err(NotPrimary { hint: self.known_primary });
        }
        let optime = self.append_local(now, ops, fence);
        Ok((optime, std::mem::take(&mut self.out)))
    }

    fn append_local(&mut self, now: Now, ops: Vec<Op>, fence: Option<Fence>) -> OpTime {
        let last = self.oplog.last();
        let optime = OpTime::new(self.hs.term, last.ts + 1);
        let entry = OplogEntry { optime, wall_ms: now.wall_ms.max(self.oplog.last_wall_ms()), ops, fence };
        self.oplog.push(entry.clone());
        self.out.push(Action::Append { entries: vec![entry], sync: false });
        self.release_parked(now);
        optime
    }

    fn tick(&mut self, now: Now) {
        self.send_due_heartbeats(now);
        if self.primary {
            self.check_majority_visible(now);
        } else {
            self.check_election_timers(now);
            self.maybe_fetch(now);
        }
        self.expire_parked(now);
    }

    fn recv(&mut self, now: Now, from: usize, msg: PeerMsg) {
        if from >= self.config.members.len() || from == self.me {
            self.out.push(Action::Ignored { from, why: "sender is not another member of the set" });
            return;
        }
        self.peers[from].last_heard_ms = Some(now.ms);
        // A dry run must not disturb anyone, so its term is not adopted (as in MongoDB).
        let dry_run_request = matches!(msg, PeerMsg::RequestVote { dry_run: true, .. });
        if msg.term() > self.hs.term && !dry_run_request {
            self.update_term(now, msg.term());
        }
        match msg {
            PeerMsg::Heartbeat { term, primary, applied, applied_wall_ms, commit } => {
                self.on_heartbeat(now, from, term, primary, applied, applied_wall_ms, commit)
            }
            PeerMsg::HeartbeatReply { term, primary, applied, applied_wall_ms, durable } => {
                self.on_heartbeat_reply(now, from, term, primary, applied, applied_wall_ms, durable)
            }
            PeerMsg::RequestVote { term, dry_run, last_applied } => {
                self.on_request_vote(now, from, term, dry_run, last_applied)
            }
            PeerMsg::Vote { term, dry_run, granted } => self.on_vote(now, from, term, dry_run, granted),
            PeerMsg::Fetch { id, term: _, after, repairing } => self.serve_fetch(now, from, id, after, repairing),
            PeerMsg::Batch { id, term, entries, commit } => self.on_batch(now, from, id, term, entries, commit),
            PeerMsg::Diverged { id, term, boundaries, last } => {
                self.on_diverged(now, from, id, term, &boundaries, last)
            }
        }
    }

    fn update_term(&mut self, now: Now, term: u64) {
        self.hs.term = term;
        self.out.push(Action::PersistHardState(self.hs));
        self.election = None;
        self.known_primary = None;
        self.takeover_at_ms = None;
        if self.primary {
            self.step_down(now, "saw a newer term");
        }
    }

    fn send(&mut self, to: usize, msg: PeerMsg) {
        self.out.push(Action::Send { to, msg });
    }

    fn others(&self) -> impl Iterator<Item = usize> {
        let me = self.me;
        (0..self.config.members.len()).filter(move |i| *i != me)
    }

    fn reset_election_timer(&mut self, now: Now) {
        let limit = self.settings.election_timeout_ms * self.settings.election_offset_limit_permille / 1000;
        let offset = self.rng.gen_range(0..=limit);
        self.election_at_ms = now.ms + self.settings.election_timeout_ms + offset;
    }

    // ---- what the shell reads ---------------------------------------------------------------

    /// When this member next stands for election (or tries a priority takeover), if it may:
    /// the shell wakes at exactly this time, so that two members' randomised timeouts do not
    /// collapse onto one tick and split the vote.
    pub fn election_deadline_ms(&self) -> Option<u64> {
        if self.primary || self.damaged || self.election.is_some() || self.config.members[self.me].priority == 0 {
            return None;
        }
        Some(self.takeover_at_ms.map_or(self.election_at_ms, |t| t.min(self.election_at_ms)))
    }

    pub fn config(&self) -> &SetConfig {
        &self.config
    }

    pub fn me(&self) -> usize {
        self.me
    }

    pub fn is_primary(&self) -> bool {
        self.primary
    }

    pub fn term(&self) -> u64 {
        self.hs.term
    }

    pub fn hard_state(&self) -> HardState {
        self.hs
    }

    /// The member this one believes is primary (itself included).
    pub fn primary_hint(&self) -> Option<usize> {
        self.known_primary
    }

    /// Synced records were found damaged and are not repaired yet.
    pub fn is_damaged(&self) -> bool {
        self.damaged
    }

    /// What this member counts as durable (made so by the shell).
    pub fn durable(&self) -> OpTime {
        self.durable
    }

    pub fn commit_point(&self) -> OpTime {
        self.commit
    }

    pub fn last_applied(&self) -> OpTime {
        self.oplog.last()
    }

    pub fn oplog(&self) -> &Oplog {
        &self.oplog
    }
}
