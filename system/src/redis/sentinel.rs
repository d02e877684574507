//! Redis Sentinel's monitoring and failover logic, sans-IO: the shell feeds it ticks, replies to
//! pings (`ROLE`/`INFO`), peers' answers and hello messages, and carries out what it returns.
//!
//! Follows `sentinel.c`: a master that has not answered for `down-after-milliseconds` is
//! subjectively down (SDOWN); once `quorum` Sentinels (this one included) report it down it is
//! objectively down (ODOWN) and this Sentinel starts a failover: it bumps the current epoch and
//! asks the others to vote for it (`is-master-down-by-addr` with its run id). Each Sentinel votes
//! once per epoch, for the first candidate that asks (or, as a candidate, for the candidate most
//! voted so far, else itself); after voting for someone else it will not start a failover of its
//! own for twice `failover-timeout`. A candidate with a majority of the Sentinels (and at least
//! `quorum`) selects the best replica (priority, then replication offset, then name), sends it
//! `REPLICAOF NO ONE`, waits for it to report the master role, then points every other instance at
//! it, adopts the new configuration under the failover epoch (its config epoch) and announces it
//! in hello messages; Sentinels adopt any configuration with a higher config epoch. Instances that
//! report the wrong role for a while (an old master coming back) are reconfigured.
//!
//! The shell ([`super::sentinel_node`]) saves [`Persisted`] before carrying out anything a step
//! returned or answering a vote, and halts when the save fails: Redis Sentinel only logs a
//! failed `sentinel.conf` rewrite and answers anyway, so a restart can forget a vote it released
//! and vote again in that epoch; this model does not.
//!
//! Left out: Sentinel auto-discovery (peers and replicas are configured), TILT mode, scripts,
//! `parallel-syncs` (every replica is reconfigured at once), and the `master_link_down_time`
//! freshness filter in replica selection.

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::protocol::{ReplRole, RoleInfo};

/// `SENTINEL_PING_PERIOD`.
pub const PING_PERIOD_MS: u64 = 1_000;
/// `SENTINEL_ASK_PERIOD`.
pub const ASK_PERIOD_MS: u64 = 1_000;
/// `SENTINEL_PUBLISH_PERIOD` (hello messages).
pub const HELLO_PERIOD_MS: u64 = 2_000;
/// `SENTINEL_MAX_DESYNC`.
pub const MAX_DESYNC_MS: u64 = 1_000;
/// `SENTINEL_ELECTION_TIMEOUT` (the effective one is the smaller of this and failover-timeout).
pub const ELECTION_TIMEOUT_MS: u64 = 10_000;
/// How long an instance may report the wrong role before it is reconfigured (Redis waits
/// `SENTINEL_PUBLISH_PERIOD * 4`, 8 s; scaled down with the rest).
pub const RECONF_DELAY_MS: u64 = 2_000;

/// One monitored master's settings (`sentinel monitor mymaster ... 2` and friends).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentinelConfig {
    pub me: String,
    /// The other Sentinels.
    pub peers: Vec<String>,
    /// Every Redis instance (master and replicas).
    pub instances: Vec<String>,
    pub initial_master: String,
    pub quorum: usize,
    pub down_after_ms: u64,
    pub failover_timeout_ms: u64,
    /// Unsafe, a planted fault: this Sentinel fails over on its own opinion, treating its own
    /// SDOWN as ODOWN and its own vote as a won election (quorum and majority ignored). It
    /// exists to prove the election checker catches a failover no majority decided.
    pub single_opinion: bool,
    /// Unsafe, a planted fault ([`super::planted`]'s `elect_on_quorum`): the election needs only
    /// `quorum` votes, not `max(quorum, majority)`.
    pub elect_on_quorum: bool,
}

impl SentinelConfig {
    /// `quorum` 2; `down-after-milliseconds` 30000 and `failover-timeout` 180000 in Redis,
    /// scaled for simulation to 3000 and 6000.
    pub fn simulation(me: &str, peers: Vec<String>, instances: Vec<String>, master: &str) -> Self {
        SentinelConfig {
            me: me.into(),
            peers,
            instances,
            initial_master: master.into(),
            quorum: 2,
            down_after_ms: 3_000,
            failover_timeout_ms: 6_000,
            single_opinion: false,
            elect_on_quorum: false,
        }
    }
}

/// What must survive a Sentinel restart (Redis rewrites `sentinel.conf` on every change).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Persisted {
    pub master: String,
    pub config_epoch: u64,
    pub current_epoch: u64,
    pub leader: Option<String>,
    pub leader_epoch: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Send `ROLE`/`INFO` to an instance; feed the answer to [`Sentinel::on_info`].
    Ping(String),
    /// Ask every peer `is-master-down-by-addr` (`candidate` None: just asking, Redis's `*`).
    Ask {
        candidate: Option<String>,
        current_epoch: u64,
    },
    /// `REPLICAOF` (None: `NO ONE`) plus `CONFIG REWRITE`.
    ReplicaOf {
        node: String,
        master: Option<String>,
    },
    Hello {
        master: String,
        config_epoch: u64,
        current_epoch: u64,
    },
    /// Something worth a trace line (`+sdown`, `+odown`, `+try-failover`, ...).
    Event {
        kind: &'static str,
        detail: String,
    },
    SwitchMaster {
        from: String,
        to: String,
        config_epoch: u64,
    },
    /// `+elected-leader`: this Sentinel won the election of `epoch` with the votes of `voters`
    /// (itself included when it voted for itself), as it counted them.
    Elected {
        epoch: u64,
        voters: Vec<String>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Failover {
    Idle,
    WaitStart { epoch: u64 },
    WaitPromotion { epoch: u64, replica: String, since_ms: u64 },
}

#[derive(Clone, Debug, Default)]
struct Instance {
    last_ok_ms: u64,
    next_ping_ms: u64,
    info: Option<RoleInfo>,
    wrong_since_ms: Option<u64>,
}

pub struct Sentinel {
    cfg: SentinelConfig,
    rng: ChaCha8Rng,
    state: Persisted,
    instances: BTreeMap<String, Instance>,
    /// Peers' answers: SDOWN view and when it came.
    peer_down: BTreeMap<String, (bool, u64)>,
    /// Peers' votes: (leader, epoch).
    peer_votes: BTreeMap<String, (String, u64)>,
    failover: Failover,
    /// When the last failover attempt started (or, after voting for another, when this one
    /// may start at the earliest minus twice the failover timeout).
    failover_start_ms: Option<u64>,
    last_ask_ms: u64,
    next_hello_ms: u64,
    sdown: bool,
    odown: bool,
}

impl Sentinel {
    pub fn new(cfg: SentinelConfig, seed: u64, now_ms: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        // Random phases, so that Sentinels started together do not ping and announce in step.
        let phase = |rng: &mut ChaCha8Rng| now_ms + rng.gen_range(0..PING_PERIOD_MS);
        let instances = cfg
            .instances
            .iter()
            .map(|n| (n.clone(), Instance { last_ok_ms: now_ms, next_ping_ms: phase(&mut rng), ..Instance::default() }))
            .collect();
        let next_hello_ms = phase(&mut rng);
        let state = Persisted { master: cfg.initial_master.clone(), ..Persisted::default() };
        Sentinel {
            cfg,
            rng,
            state,
            instances,
            peer_down: BTreeMap::new(),
            peer_votes: BTreeMap::new(),
            failover: Failover::Idle,
            failover_start_ms: None,
            last_ask_ms: 0,
            next_hello_ms,
            sdown: false,
            odown: false,
        }
    }

    pub fn persisted(&self) -> &Persisted {
        &self.state
    }

    /// Restores what a previous life persisted.
    pub fn restore(&mut self, p: Persisted) {
        if self.instances.contains_key(&p.master) {
            self.state = p;
        }
    }

    /// The delay to the next tick: Redis sets `hz` to 10 plus a random 0..10 on every Sentinel
    /// timer run, precisely so that Sentinels drift apart and rarely start failovers together.
    pub fn next_tick_ms(&mut self) -> u64 {
        1_000 / (10 + self.rng.gen_range(0..10))
    }

    /// The master in this Sentinel's configuration (`get-master-addr-by-name`).
    pub fn master(&self) -> &str {
        &self.state.master
    }

    pub fn config_epoch(&self) -> u64 {
        self.state.config_epoch
    }

    /// Every timer tick (10 to 20 per second): pings, down checks, asks, failover progress,
    /// reconfiguration, hellos.
    pub fn tick(&mut self, now_ms: u64) -> Vec<Output> {
        let mut out = Vec::new();
        for (node, inst) in self.instances.iter_mut() {
            if now_ms >= inst.next_ping_ms {
                inst.next_ping_ms = now_ms + PING_PERIOD_MS;
                out.push(Output::Ping(node.clone()));
            }
        }
        self.check_down(now_ms, &mut out);
        self.failover_step(now_ms, &mut out);
        if self.sdown && now_ms >= self.last_ask_ms + ASK_PERIOD_MS {
            self.ask(now_ms, &mut out);
        }
        if matches!(self.failover, Failover::Idle) {
            self.reconfigure(now_ms, &mut out);
        }
        if now_ms >= self.next_hello_ms {
            self.next_hello_ms = now_ms + HELLO_PERIOD_MS;
            out.push(self.hello());
        }
        out
    }

    fn hello(&self) -> Output {
        Output::Hello {
            master: self.state.master.clone(),
            config_epoch: self.state.config_epoch,
            current_epoch: self.state.current_epoch,
        }
    }

    fn ask(&mut self, now_ms: u64, out: &mut Vec<Output>) {
        self.last_ask_ms = now_ms;
        let candidate = matches!(self.failover, Failover::WaitStart { .. }).then(|| self.cfg.me.clone());
        out.push(Output::Ask { candidate, current_epoch: self.state.current_epoch });
    }

    fn check_down(&mut self, now_ms: u64, out: &mut Vec<Output>) {
        let master = self.state.master.clone();
        let last_ok = self.instances.get(&master).map_or(0, |i| i.last_ok_ms);
        let sdown = now_ms > last_ok + self.cfg.down_after_ms;
        if sdown != self.sdown {
            self.sdown = sdown;
            let kind = if sdown { "+sdown" } else { "-sdown" };
            out.push(Output::Event { kind, detail: master.clone() });
            if !sdown {
                self.peer_down.clear();
            }
        }
        let fresh = |(down, at): &(bool, u64)| *down && now_ms <= at + 5 * ASK_PERIOD_MS;
        let quorum = if self.cfg.single_opinion { 1 } else { self.cfg.quorum };
        let odown = sdown && 1 + self.peer_down.values().filter(|r| fresh(r)).count() >= quorum;
        if odown != self.odown {
            self.odown = odown;
            out.push(Output::Event { kind: if odown { "+odown" } else { "-odown" }, detail: master });
        }
    }

    fn failover_step(&mut self, now_ms: u64, out: &mut Vec<Output>) {
        match self.failover.clone() {
            Failover::Idle => {
                let recent = self.failover_start_ms.is_some_and(|t| now_ms < t + 2 * self.cfg.failover_timeout_ms);
                if self.odown && !recent {
                    self.state.current_epoch += 1;
                    let epoch = self.state.current_epoch;
                    self.failover = Failover::WaitStart { epoch };
                    self.failover_start_ms = Some(now_ms + self.rng.gen_range(0..MAX_DESYNC_MS));
                    out.push(Output::Event { kind: "+try-failover", detail: format!("epoch {epoch}") });
                    self.ask(now_ms, out);
                }
            }
            Failover::WaitStart { epoch } => self.wait_start(now_ms, epoch, out),
            Failover::WaitPromotion { since_ms, replica, .. } => {
                if now_ms > since_ms + self.cfg.failover_timeout_ms {
                    out.push(Output::Event { kind: "-failover-abort-slave-timeout", detail: replica });
                    self.failover = Failover::Idle;
                }
            }
        }
    }

    fn wait_start(&mut self, now_ms: u64, epoch: u64, out: &mut Vec<Output>) {
        match self.leader(epoch) {
            Some((l, voters)) if l == self.cfg.me => {
                out.push(Output::Event { kind: "+elected-leader", detail: format!("epoch {epoch}") });
                out.push(Output::Elected { epoch, voters });
                match self.select_replica(now_ms) {
                    Some(replica) => {
                        out.push(Output::Event { kind: "+selected-slave", detail: replica.clone() });
                        out.push(Output::ReplicaOf { node: replica.clone(), master: None });
                        self.failover = Failover::WaitPromotion { epoch, replica, since_ms: now_ms };
                    }
                    None => {
                        out.push(Output::Event {
                            kind: "-failover-abort-no-good-slave",
                            detail: self.state.master.clone(),
                        });
                        self.failover = Failover::Idle;
                    }
                }
            }
            _ => {
                let timeout = ELECTION_TIMEOUT_MS.min(self.cfg.failover_timeout_ms);
                let started = self.failover_start_ms.unwrap_or(now_ms);
                if now_ms > started + timeout {
                    out.push(Output::Event { kind: "-failover-abort-not-elected", detail: format!("epoch {epoch}") });
                    self.failover = Failover::Idle;
                }
            }
        }
    }

    /// `sentinelGetLeader`: counts votes for `epoch`, casting ours (for the most voted
    /// candidate, else ourselves) if we have not voted yet; the winner needs a majority of all
    /// Sentinels and at least `quorum`. Returns the winner and who voted for it.
    fn leader(&mut self, epoch: u64) -> Option<(String, Vec<String>)> {
        let mut ballots: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (peer, (l, e)) in &self.peer_votes {
            if *e == epoch {
                ballots.entry(l.clone()).or_default().push(peer.clone());
            }
        }
        let most = most_voted(&ballots).map(|(l, _)| l.clone());
        if self.state.leader_epoch < epoch {
            self.state.leader = Some(most.unwrap_or_else(|| self.cfg.me.clone()));
            self.state.leader_epoch = epoch;
        }
        if self.state.leader_epoch == epoch {
            if let Some(l) = &self.state.leader {
                ballots.entry(l.clone()).or_default().push(self.cfg.me.clone());
            }
        }
        let voters = self.cfg.peers.len() + 1;
        let needed = match (self.cfg.single_opinion, self.cfg.elect_on_quorum) {
            (true, _) => 1,
            (false, true) => self.cfg.quorum,
            (false, false) => self.cfg.quorum.max(voters / 2 + 1),
        };
        let (winner, votes) = most_voted(&ballots)?;
        (votes.len() >= needed).then(|| (winner.clone(), votes.clone()))
    }

    /// The best replica of the current master: answering, priority > 0, then by priority, the
    /// highest replication offset, and name.
    fn select_replica(&self, now_ms: u64) -> Option<String> {
        let master = &self.state.master;
        let mut candidates: Vec<(u32, std::cmp::Reverse<u64>, String)> = self
            .instances
            .iter()
            .filter(|(n, i)| *n != master && now_ms <= i.last_ok_ms + 5 * PING_PERIOD_MS)
            .filter_map(|(n, i)| {
                let info = i.info.as_ref()?;
                match &info.role {
                    ReplRole::Replica { master: m, .. } if m == master && info.priority > 0 => {
                        Some((info.priority, std::cmp::Reverse(info.offset), n.clone()))
                    }
                    _ => None,
                }
            })
            .collect();
        candidates.sort();
        candidates.into_iter().next().map(|c| c.2)
    }

    /// Points instances that report the wrong role at the master, once they have done so for
    /// [`RECONF_DELAY_MS`] (an old master coming back, a replica of the wrong master).
    fn reconfigure(&mut self, now_ms: u64, out: &mut Vec<Output>) {
        let master = self.state.master.clone();
        for (node, inst) in self.instances.iter_mut().filter(|(n, _)| **n != master) {
            let fresh = now_ms <= inst.last_ok_ms + 2 * PING_PERIOD_MS;
            let wrong = fresh
                && match inst.info.as_ref().map(|i| &i.role) {
                    Some(ReplRole::Master { .. }) => true,
                    Some(ReplRole::Replica { master: m, .. }) => *m != master,
                    None => false,
                };
            if !wrong {
                inst.wrong_since_ms = None;
                continue;
            }
            let since = *inst.wrong_since_ms.get_or_insert(now_ms);
            if now_ms >= since + RECONF_DELAY_MS {
                inst.wrong_since_ms = Some(now_ms);
                out.push(Output::Event { kind: "+convert-to-slave", detail: node.clone() });
                out.push(Output::ReplicaOf { node: node.clone(), master: Some(master.clone()) });
            }
        }
    }

    /// An instance answered `ROLE`/`INFO`.
    pub fn on_info(&mut self, now_ms: u64, info: RoleInfo) -> Vec<Output> {
        let Some(inst) = self.instances.get_mut(&info.node) else { return Vec::new() };
        inst.last_ok_ms = now_ms;
        let promoted = matches!(info.role, ReplRole::Master { .. });
        inst.info = Some(info.clone());
        match self.failover.clone() {
            Failover::WaitPromotion { epoch, replica, .. } if replica == info.node && promoted => {
                self.switch(now_ms, epoch)
            }
            _ => Vec::new(),
        }
    }

    /// The promoted replica reports the master role: adopt it and reconfigure everyone else.
    fn switch(&mut self, now_ms: u64, epoch: u64) -> Vec<Output> {
        let Failover::WaitPromotion { replica, .. } = std::mem::replace(&mut self.failover, Failover::Idle) else {
            return Vec::new();
        };
        let mut out = self.adopt(now_ms, &replica, epoch);
        for node in self.cfg.instances.iter().filter(|n| **n != replica) {
            out.push(Output::ReplicaOf { node: node.clone(), master: Some(replica.clone()) });
        }
        out.push(Output::Event { kind: "+failover-end", detail: replica });
        self.next_hello_ms = now_ms + HELLO_PERIOD_MS;
        out.push(self.hello());
        out
    }

    fn adopt(&mut self, now_ms: u64, master: &str, config_epoch: u64) -> Vec<Output> {
        let from = std::mem::replace(&mut self.state.master, master.to_string());
        self.state.config_epoch = config_epoch;
        self.failover = Failover::Idle;
        self.peer_down.clear();
        self.peer_votes.clear();
        let mut out = Vec::new();
        if std::mem::take(&mut self.sdown) {
            out.push(Output::Event { kind: "-sdown", detail: from.clone() });
        }
        self.odown = false;
        if let Some(i) = self.instances.get_mut(master) {
            i.last_ok_ms = i.last_ok_ms.max(now_ms);
        }
        if from != master {
            out.push(Output::SwitchMaster { from, to: master.to_string(), config_epoch });
        }
        out
    }

    /// A peer's answer to our `is-master-down-by-addr`.
    pub fn on_peer_reply(&mut self, now_ms: u64, peer: &str, down: bool, leader: Option<(String, u64)>) {
        if !self.cfg.peers.iter().any(|p| p == peer) {
            return;
        }
        self.peer_down.insert(peer.to_string(), (down, now_ms));
        if let Some(vote) = leader {
            self.state.current_epoch = self.state.current_epoch.max(vote.1);
            self.peer_votes.insert(peer.to_string(), vote);
        }
    }

    /// A peer's hello: adopt its configuration if it is newer.
    pub fn on_hello(&mut self, now_ms: u64, master: &str, config_epoch: u64, current_epoch: u64) -> Vec<Output> {
        self.state.current_epoch = self.state.current_epoch.max(current_epoch);
        if config_epoch <= self.state.config_epoch || !self.instances.contains_key(master) {
            return Vec::new();
        }
        self.adopt(now_ms, master, config_epoch)
    }

    /// Answers a peer's `is-master-down-by-addr`, voting for `candidate` if we have not voted in
    /// `epoch` yet (`sentinelVoteLeader`).
    pub fn on_vote_request(
        &mut self,
        now_ms: u64,
        candidate: Option<&str>,
        epoch: u64,
    ) -> (bool, Option<(String, u64)>) {
        let Some(candidate) = candidate else { return (self.sdown, None) };
        self.state.current_epoch = self.state.current_epoch.max(epoch);
        if self.state.leader_epoch < epoch && self.state.current_epoch == epoch {
            self.state.leader = Some(candidate.to_string());
            self.state.leader_epoch = epoch;
            if candidate != self.cfg.me {
                self.failover_start_ms = Some(now_ms + self.rng.gen_range(0..MAX_DESYNC_MS));
            }
        }
        let vote = self.state.leader.clone().map(|l| (l, self.state.leader_epoch));
        (self.sdown, vote)
    }
}

/// The candidate with the most votes (ties go to the smallest name, as every Sentinel counts
/// them alike).
fn most_voted(ballots: &BTreeMap<String, Vec<String>>) -> Option<(&String, &Vec<String>)> {
    ballots.iter().max_by(|a, b| a.1.len().cmp(&b.1.len()).then_with(|| b.0.cmp(a.0)))
}

#[cfg(test)]
mod tests;
