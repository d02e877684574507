//! One member's replication state machine, sans-IO: WAL shipping, commits, promotion, demotion
//! and rewind, as `step(now, input) -> actions`. The shell (the private `node`, `primary` and
//! `standby` modules) does the I/O the actions ask for (appends, fsyncs, sends) and feeds back
//! what came of it; this core reads no clock, touches no disk and owns no socket, so its edge
//! cases are table tests (the `tests` module).
//!
//! The member keeps its WAL in memory next to two states: `head` (every record, what the
//! primary checks transactions against) and `visible` (records up to the flush position, what
//! readers see). A role belongs to a *generation*: every role change ([`Input::Stop`]) bumps it,
//! settles every commit still in flight as indeterminate (its client learns nothing), and makes
//! every later input of the old generation a no-op. That is how a demotion racing a write is
//! decided: the write's fsync completes in a generation that ended, so it is never acknowledged.
//!
//! The pipeline of a write (a commit on the primary, streamed records on a standby): the core
//! appends to its log and asks for [`Action::Append`] (done at once, under the shell's lock, so
//! the disk holds records in log order) and [`Action::Sync`] (an fsync, done later); the shell
//! reports [`Input::Synced`], and only then does the flush position move, commits get answered
//! and a standby reports its progress. The primary half is in [`primary`], the standby half in
//! [`standby`].

mod primary;
mod standby;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use serde_json::Value;

use super::cluster::PgRoles;
use super::data::{Durability, SyncCommit, Tables, Txn};
use super::manager::{Local, LocalRole};
use super::observe::{Demoted, FirstWrite, Flushed, Promoted, Rewound, SyncStandby};
use super::observe::{SyncDegraded, WatchdogReset};
use super::planted::Planted;
use super::protocol::{MemberRole, MemberStatus, ReadInfo, Replication, Response};
use super::replication::{StandbyProgress, SyncRep};
use super::wal::{Cut, History, Position, Wal, WalRecord};

/// What a member is set up with.
#[derive(Clone, Debug)]
pub struct MemberConfig {
    pub me: String,
    pub zone: String,
    /// Every member of the cluster, this one included.
    pub members: Vec<String>,
    pub durability: Durability,
    /// `wal_sender_timeout`: a standby silent this long is no synchronous candidate.
    pub sender_timeout_ms: u64,
    /// Patroni's `synchronous_mode_strict`: block synchronous commits rather than acknowledge
    /// them without a synchronous standby.
    pub sync_strict: bool,
    pub roles: PgRoles,
    pub planted: Planted,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    Primary {
        epoch: u64,
    },
    /// Writing the first record of `epoch`'s timeline (at `index`); primary once it is durable.
    Promoting {
        epoch: u64,
        index: u64,
    },
    Standby {
        following: Option<(String, u64)>,
    },
}

/// What happens to the member. Inputs naming a generation that has ended change nothing.
#[derive(Clone, Debug)]
pub enum Input {
    /// Ends the current role and starts a standby one (following `following`, if any); `why`
    /// is recorded when a primary is demoted.
    Stop { following: Option<(String, u64)>, why: String },
    /// The WAL as the shell loaded it from disk after stopping into generation `gen`.
    Loaded { gen: u64, wal: Wal, damaged: bool },
    /// Flush everything received before promoting (a standby's last fsync may be in flight).
    FlushReceived { gen: u64 },
    /// The agent holds the leader key for `epoch`: start its timeline. `wall_ms` is the
    /// timeline's first commit timestamp. (The server knows nothing of the lease: only the
    /// agent, and the watchdog it pets, stop it.)
    Promote { gen: u64, epoch: u64, wall_ms: u64 },
    /// The agent pets the watchdog: the node resets unless petted again within `timeout_ms`
    /// (None: the agent disables it, as Patroni does when it stops being the leader).
    Watchdog { timeout_ms: Option<u64> },
    /// The watchdog timer's turn: resets the node if it was not petted in time.
    WatchdogTick,
    /// A client's transaction, to be answered with [`Action::Settle`] under `id`.
    Commit { id: u64, epoch: Option<u64>, txn: Txn, wall_ms: u64 },
    /// The last step's [`Action::Append`] from record `from` on failed: nothing of it is on disk.
    AppendFailed { gen: u64, from: u64, error: String },
    /// An [`Action::Sync`] succeeded: records up to `upto` are durable.
    Synced { gen: u64, upto: u64 },
    /// An [`Action::Sync`] (of records up to `upto`) failed.
    SyncFailed { gen: u64, upto: u64 },
    /// Some other disk operation failed: the member must reload from disk.
    IoFailed,
    /// The HA loop's turn to choose the synchronous standby.
    MaintainSync,
    /// The DCS now names `standby` as the synchronous standby of `epoch`.
    SyncWritten { epoch: u64, standby: Option<String> },
    /// Walsender: a standby says hello.
    Hello { name: String, position: Position },
    /// Walsender: the standby `name` (in `zone`) starts streaming from `from`.
    StartStreaming { gen: u64, name: String, zone: String, from: u64 },
    /// Walsender: the standby's positions.
    Feedback { gen: u64, name: String, flushed: u64, applied: u64 },
    /// Walreceiver: the primary's handshake.
    Welcome { gen: u64, epoch: u64, history: History, last_index: u64 },
    /// Walreceiver: streamed records.
    Records { gen: u64, records: Vec<WalRecord> },
    /// Walreceiver: the primary's flush position (with records, or in a keepalive).
    Progress { gen: u64, primary_flushed: u64 },
}

/// A typed observation for the checkers (the shell records it through its context).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Observed {
    Promoted(Promoted),
    Demoted(Demoted),
    Flushed(Flushed),
    Rewound(Rewound),
    FirstWrite(FirstWrite),
    SyncStandby(SyncStandby),
    SyncDegraded(SyncDegraded),
    WatchdogReset(WatchdogReset),
}

/// What the shell must do, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Append `bytes` to WAL segment `file` now, before any other step (records `from` on).
    Append {
        file: String,
        bytes: Vec<u8>,
        from: u64,
    },
    /// fsync `files`; then report [`Input::Synced`] (when `upto` is set) or nothing.
    Sync {
        gen: u64,
        files: Vec<String>,
        upto: Option<u64>,
    },
    /// Cut the WAL files to the rewind point (a sync of the truncated file follows).
    Cut(Cut),
    /// Answer client commit `id`.
    Settle {
        id: u64,
        response: Response,
    },
    /// Send on the connection the input came from.
    Send(Replication),
    /// End the connection or stream the input came from; `refused` when the peer broke the
    /// protocol or the timelines diverge (worth a trace), not merely a role change.
    Close {
        reason: String,
        refused: bool,
    },
    /// Write `standby` as the synchronous standby of `epoch` to the DCS, then report
    /// [`Input::SyncWritten`].
    WriteSync {
        epoch: u64,
        standby: Option<String>,
    },
    /// Abort the tasks of the generation that just ended.
    EndRoleTasks,
    /// Start archiving the timeline of `epoch` (a task of generation `gen`).
    StartArchiver {
        epoch: u64,
        gen: u64,
    },
    /// The WAL lost no more records: remove the durable damage marker.
    ClearDamage,
    SetRole {
        role: String,
        holds: bool,
    },
    Observe(Observed),
    Trace {
        kind: &'static str,
        fields: Value,
    },
    Sometimes(&'static str),
    /// Wake the HA loop early.
    WakeHa,
    /// The flush position moved: wake the walsenders.
    FlushMoved,
}

/// A commit appended and not answered yet.
#[derive(Clone, Debug)]
struct Pending {
    index: u64,
    epoch: u64,
    level: SyncCommit,
    /// Flushed locally; now waiting for the synchronous standby.
    waiting: bool,
}

/// The walreceiver's state on a standby.
#[derive(Clone, Debug, Default)]
struct Receiver {
    /// The primary's flush position as last reported.
    primary_flushed: u64,
    /// When we last knew we had everything the primary had flushed (the lag grows from there,
    /// as `now() - pg_last_xact_replay_timestamp()` does).
    caught_up_ms: Option<u64>,
    /// With a damaged WAL: repaired once flushed up to here.
    repair_target: Option<u64>,
    /// The primary's timeline, once the handshake compared it with ours (and we rewound).
    /// Until then our log may hold records the cluster discarded, so we serve no reads.
    timeline: Option<(u64, History)>,
}

/// One member's replication state (see the module doc).
pub struct Member {
    config: MemberConfig,
    generation: u64,
    role: Role,
    wal: Wal,
    head: Tables,
    visible: Tables,
    flushed: u64,
    damaged: bool,
    /// An I/O error happened (or the watchdog reset the node): the server reloads from disk
    /// before anything else.
    broken: bool,
    /// When the watchdog resets the node unless petted (ms); None while disabled.
    watchdog_ms: Option<u64>,
    sync: SyncRep,
    standbys: BTreeMap<String, StandbyProgress>,
    pending: BTreeMap<u64, Pending>,
    receiver: Receiver,
}

impl Member {
    /// A member that has loaded nothing yet (a standby following nobody, empty log).
    pub fn new(config: MemberConfig) -> Self {
        let sync = SyncRep::new(config.sender_timeout_ms, config.sync_strict);
        Member {
            config,
            generation: 0,
            role: Role::Standby { following: None },
            wal: Wal::default(),
            head: Tables::default(),
            visible: Tables::default(),
            flushed: 0,
            damaged: false,
            broken: false,
            watchdog_ms: None,
            sync,
            standbys: BTreeMap::new(),
            pending: BTreeMap::new(),
            receiver: Receiver::default(),
        }
    }

    /// Takes one input at `now_ms` (the member's monotonic clock) and says what to do.
    pub fn step(&mut self, now_ms: u64, input: Input) -> Vec<Action> {
        let mut out = Vec::new();
        match input {
            Input::Stop { following, why } => self.stop(following, &why, &mut out),
            Input::Loaded { gen, wal, damaged } => self.loaded(gen, wal, damaged, &mut out),
            Input::Watchdog { timeout_ms } => self.watchdog_ms = timeout_ms.map(|t| now_ms + t),
            Input::WatchdogTick => {
                self.watchdog_fired(now_ms, &mut out);
            }
            Input::IoFailed => self.fail_io(&mut out),
            Input::Synced { gen, upto } => self.synced(now_ms, gen, upto, &mut out),
            Input::SyncFailed { gen, upto } => self.sync_failed(gen, upto, &mut out),
            Input::AppendFailed { gen, from, error } => self.append_failed(gen, from, &error, &mut out),
            Input::FlushReceived { gen } => self.flush_received(gen, &mut out),
            Input::Promote { gen, epoch, wall_ms } => self.promote(gen, epoch, wall_ms, &mut out),
            Input::Commit { id, epoch, txn, wall_ms } => self.commit(now_ms, id, epoch, txn, wall_ms, &mut out),
            Input::MaintainSync => self.maintain_sync(now_ms, &mut out),
            Input::SyncWritten { epoch, standby } => self.sync_written(now_ms, epoch, standby, &mut out),
            Input::Hello { name, position } => self.hello(&name, position, &mut out),
            Input::StartStreaming { gen, name, zone, from } => {
                self.start_streaming(now_ms, gen, name, zone, from, &mut out)
            }
            Input::Feedback { gen, name, flushed, applied } => {
                self.feedback(now_ms, gen, &name, flushed, applied, &mut out)
            }
            Input::Welcome { gen, epoch, history, last_index } => {
                self.welcome(gen, epoch, history, last_index, &mut out)
            }
            Input::Records { gen, records } => self.records(gen, records, &mut out),
            Input::Progress { gen, primary_flushed } => self.progress(now_ms, gen, primary_flushed, &mut out),
        }
        out
    }

    /// Ends the current role (see the module doc).
    fn stop(&mut self, following: Option<(String, u64)>, why: &str, out: &mut Vec<Action>) {
        self.generation += 1;
        let was = std::mem::replace(&mut self.role, Role::Standby { following });
        for (id, p) in std::mem::take(&mut self.pending) {
            let reason =
                if p.waiting { "demoted while waiting for the synchronous standby" } else { "demoted while flushing" };
            out.push(Action::Settle { id, response: Response::Indeterminate { reason: reason.into() } });
        }
        self.sync = SyncRep::new(self.config.sender_timeout_ms, self.config.sync_strict);
        self.standbys.clear();
        self.receiver.timeline = None;
        out.push(Action::EndRoleTasks);
        if let Role::Primary { epoch } = was {
            out.push(Action::SetRole { role: self.config.roles.primary.clone(), holds: false });
            out.push(Action::Observe(Observed::Demoted(Demoted { epoch, reason: why.into() })));
            out.push(Action::Sometimes("pg.demoted"));
        }
    }

    /// Installs the WAL loaded from disk, unless another role change came first.
    fn loaded(&mut self, gen: u64, wal: Wal, damaged: bool, out: &mut Vec<Action>) {
        if gen != self.generation {
            out.push(closed("superseded while reloading"));
            return;
        }
        let last = wal.last_index();
        self.head = wal.replay(last);
        self.visible = self.head.clone();
        self.wal = wal;
        self.flushed = last;
        self.damaged = damaged;
        self.broken = false;
        self.receiver = Receiver::default();
        out.push(Action::FlushMoved);
    }

    /// Whether the watchdog reset the node at `now_ms` (it was not petted in time): the
    /// machine stops at once (nothing more is acknowledged), and the server comes back from
    /// disk as a standby. Checked before every acknowledgement too: a hardware timer is not
    /// late because a process was busy.
    fn watchdog_fired(&mut self, now_ms: u64, out: &mut Vec<Action>) -> bool {
        let Some(deadline) = self.watchdog_ms.filter(|d| now_ms >= *d) else { return false };
        self.watchdog_ms = None;
        let epoch = self.primary_epoch();
        out.push(Action::Observe(Observed::WatchdogReset(WatchdogReset { epoch, late_ms: now_ms - deadline })));
        out.push(Action::Sometimes("pg.watchdog_reset"));
        self.stop(None, "watchdog reset", out);
        self.broken = true;
        out.push(Action::WakeHa);
        true
    }

    /// The disk failed us: no promotion completes, and the HA loop reloads from disk.
    fn fail_io(&mut self, out: &mut Vec<Action>) {
        if let Role::Promoting { .. } = self.role {
            self.role = Role::Standby { following: None };
        }
        self.broken = true;
        out.push(Action::WakeHa);
    }

    /// Records up to `upto` are durable: the flush position moves, and the role takes it from
    /// there (a promotion completes, commits are answered).
    fn synced(&mut self, now_ms: u64, gen: u64, upto: u64, out: &mut Vec<Action>) {
        if gen != self.generation {
            out.push(closed("generation ended"));
            return;
        }
        if let Role::Promoting { epoch, index } = self.role {
            if upto >= index {
                self.become_primary(epoch, index, gen, out);
            }
        }
        self.advance_flushed(upto, out);
        if self.primary_epoch().is_some() {
            self.answer_flushed(now_ms, out);
        }
    }

    /// A sync failed: the commits it covered are of unknown fate, and the member must reload.
    fn sync_failed(&mut self, gen: u64, upto: u64, out: &mut Vec<Action>) {
        if gen != self.generation {
            return;
        }
        let failed: Vec<u64> =
            self.pending.iter().filter(|(_, p)| !p.waiting && p.index <= upto).map(|(id, _)| *id).collect();
        for id in failed {
            self.pending.remove(&id);
            out.push(Action::Settle { id, response: Response::Indeterminate { reason: "fsync failed".into() } });
        }
        self.fail_io(out);
    }

    /// An append failed, so nothing from `from` on is on disk: the log forgets it.
    fn append_failed(&mut self, gen: u64, from: u64, error: &str, out: &mut Vec<Action>) {
        if gen != self.generation || from == 0 || from > self.wal.last_index() {
            return;
        }
        self.wal.truncate(from - 1);
        self.head = self.wal.replay(from - 1);
        let failed: Vec<u64> = self.pending.iter().filter(|(_, p)| p.index >= from).map(|(id, _)| *id).collect();
        for id in failed {
            self.pending.remove(&id);
            out.push(Action::Settle {
                id,
                response: Response::Rejected { reason: format!("WAL write failed: {error}") },
            });
        }
        self.fail_io(out);
    }

    /// Moves the flush position to `upto` and applies the newly flushed records for readers.
    fn advance_flushed(&mut self, upto: u64, out: &mut Vec<Action>) {
        let upto = upto.min(self.wal.last_index());
        if upto <= self.flushed {
            return;
        }
        for i in self.flushed + 1..=upto {
            if let Some(r) = self.wal.get(i) {
                super::wal::apply(&mut self.visible, r);
            }
        }
        self.flushed = upto;
        out.push(Action::FlushMoved);
        if let Some(epoch) = self.primary_epoch() {
            out.push(Action::Observe(Observed::Flushed(Flushed { epoch, index: upto })));
        }
    }

    /// The files an fsync of everything not yet flushed, up to `upto`, must cover.
    fn sync_upto(&self, upto: u64) -> Action {
        Action::Sync { gen: self.generation, files: self.wal.segments_for(self.flushed + 1, upto), upto: Some(upto) }
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn role(&self) -> &Role {
        &self.role
    }

    pub fn primary_epoch(&self) -> Option<u64> {
        match self.role {
            Role::Primary { epoch } => Some(epoch),
            _ => None,
        }
    }

    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// When the watchdog will reset the node unless petted (None: disabled).
    pub fn watchdog_ms(&self) -> Option<u64> {
        self.watchdog_ms
    }

    pub fn flushed(&self) -> u64 {
        self.flushed
    }

    pub fn wal(&self) -> &Wal {
        &self.wal
    }

    /// State of the flushed records (what readers see, and what a base backup holds).
    pub fn visible(&self) -> &Tables {
        &self.visible
    }

    fn position_at(&self, index: u64) -> Position {
        self.wal.get(index).map_or(Position::default(), |r| Position { epoch: r.epoch, index })
    }

    /// Where our flushed log ends (what a standby tells a primary, what the manager compares).
    pub fn position(&self) -> Position {
        self.position_at(self.flushed)
    }

    /// Our state for the failover manager.
    pub fn local(&self) -> Local {
        let role = match &self.role {
            Role::Primary { epoch } => LocalRole::Primary { epoch: *epoch },
            Role::Promoting { .. } => LocalRole::Standby { following: None },
            Role::Standby { following } => LocalRole::Standby { following: following.clone() },
        };
        Local { role, position: self.position(), damaged: self.damaged }
    }

    /// Our answer on the member API.
    pub fn status(&self) -> MemberStatus {
        let (role, epoch) = match &self.role {
            Role::Primary { epoch } => (MemberRole::Primary, *epoch),
            Role::Promoting { .. } => (MemberRole::Standby, 0),
            Role::Standby { following } => (MemberRole::Standby, following.as_ref().map_or(0, |f| f.1)),
        };
        MemberStatus { name: self.config.me.clone(), role, epoch, position: self.position(), damaged: self.damaged }
    }

    /// Serves a read from flushed state (a hot standby's, or the primary's), with its staleness.
    pub fn read(&self, now_ms: u64, query: impl FnOnce(&Tables) -> Vec<(String, super::data::Row)>) -> Response {
        if self.damaged {
            return Response::Unavailable { reason: "WAL damaged; waiting to repair it from a peer".into() };
        }
        let primary = self.primary_epoch().is_some();
        if !primary && self.receiver.timeline.is_none() {
            return Response::Unavailable { reason: "not yet on the leader's timeline".into() };
        }
        let lag_records = if primary { 0 } else { self.receiver.primary_flushed.saturating_sub(self.flushed) };
        let lag_ms = if primary { 0 } else { self.receiver.caught_up_ms.map_or(0, |t| now_ms.saturating_sub(t)) };
        let read = ReadInfo { node: self.config.me.clone(), primary, applied: self.position(), lag_records, lag_ms };
        // A commit waiting for the synchronous standby is still in progress for every other
        // session (PostgreSQL waits before it clears the transaction from the proc array), so
        // the primary's readers see the state without it.
        let waiting: std::collections::BTreeSet<u64> =
            self.pending.values().filter(|p| p.waiting).map(|p| p.index).collect();
        if primary && !waiting.is_empty() {
            return Response::Rows { rows: query(&self.wal.replay_without(self.flushed, &waiting)), read };
        }
        Response::Rows { rows: query(&self.visible), read }
    }
}

fn closed(reason: &str) -> Action {
    Action::Close { reason: reason.into(), refused: false }
}

fn refused(reason: String) -> Action {
    Action::Close { reason, refused: true }
}

fn trace(kind: &'static str, fields: Value) -> Action {
    Action::Trace { kind, fields }
}

impl Member {
    /// The promotion's first record is durable: this member is the primary of `epoch`.
    fn become_primary(&mut self, epoch: u64, index: u64, gen: u64, out: &mut Vec<Action>) {
        self.role = Role::Primary { epoch };
        out.push(Action::SetRole { role: self.config.roles.primary.clone(), holds: true });
        out.push(Action::Observe(Observed::Promoted(Promoted { epoch, index })));
        out.push(Action::Sometimes(if epoch == 1 { "pg.bootstrapped" } else { "pg.promoted_standby" }));
        out.push(Action::StartArchiver { epoch, gen });
    }

    /// A rewind to `keep` records: the log, the states and the files.
    fn rewind(&mut self, keep: u64, out: &mut Vec<Action>) {
        let last = self.wal.last_index();
        if keep >= last {
            return;
        }
        let cut = self.wal.cut_at(keep);
        let truncated = cut.truncate.as_ref().map(|(file, _)| file.clone());
        self.wal.truncate(keep);
        self.head = self.wal.replay(keep);
        self.visible = self.head.clone();
        self.flushed = self.flushed.min(keep);
        out.push(Action::Cut(cut));
        out.push(Action::Sync { gen: self.generation, files: truncated.into_iter().collect(), upto: None });
        out.push(Action::Observe(Observed::Rewound(Rewound { kept: keep, discarded: last - keep })));
        out.push(Action::Sometimes("pg.rewind"));
    }
}
