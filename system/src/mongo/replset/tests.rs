//! Unit tests for the replica set core, over a tiny deterministic network that delivers
//! messages at once unless a link is cut.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;

struct Cluster {
    nodes: Vec<ReplSet>,
    now_ms: u64,
    queue: VecDeque<(usize, usize, PeerMsg)>,
    cut: BTreeSet<(usize, usize)>,
    /// Every (term, member) that became primary.
    primaries: Vec<(u64, usize)>,
    /// Every optime a primary reported as majority-committed.
    committed: BTreeSet<OpTime>,
    rolled_back: Vec<(usize, Vec<OplogEntry>)>,
}

fn config(priorities: &[u32]) -> SetConfig {
    let members =
        priorities.iter().enumerate().map(|(i, p)| MemberConfig { host: format!("m{i}"), priority: *p }).collect();
    SetConfig { name: "rs".into(), members }
}

impl Cluster {
    fn new(priorities: &[u32], seed: u64) -> Self {
        let cfg = config(priorities);
        let now = Now { ms: 0, wall_ms: 0 };
        let nodes = (0..priorities.len())
            .map(|i| {
                let rng = ChaCha8Rng::seed_from_u64(seed * 31 + i as u64);
                ReplSet::new(cfg.clone(), Settings::default(), i, Persisted::default(), rng, now, i == 0)
            })
            .collect();
        let mut c = Cluster {
            nodes,
            now_ms: 0,
            queue: VecDeque::new(),
            cut: BTreeSet::new(),
            primaries: Vec::new(),
            committed: BTreeSet::new(),
            rolled_back: Vec::new(),
        };
        // The initiating member already stood for election: deliver what it sent.
        let first = std::mem::take(&mut c.nodes[0].out);
        c.handle(0, first);
        c.settle();
        c
    }

    fn now(&self) -> Now {
        Now { ms: self.now_ms, wall_ms: self.now_ms }
    }

    fn handle(&mut self, node: usize, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::Send { to, msg } => self.queue.push_back((node, to, msg)),
                Action::BecamePrimary { term, .. } => self.primaries.push((term, node)),
                Action::Commit(c) if self.nodes[node].is_primary() => {
                    self.committed.insert(c);
                }
                Action::RollBack { removed, .. } => {
                    self.rolled_back.push((node, removed));
                    let last = self.nodes[node].last_applied();
                    let now = self.now();
                    let more = self.nodes[node].step(now, Input::Durable(last));
                    self.handle(node, more);
                }
                Action::Append { .. } => {
                    // The test journal is instant.
                    let last = self.nodes[node].last_applied();
                    let now = self.now();
                    let more = self.nodes[node].step(now, Input::Durable(last));
                    self.handle(node, more);
                }
                _ => {}
            }
        }
    }

    fn settle(&mut self) {
        while let Some((from, to, msg)) = self.queue.pop_front() {
            if self.cut.contains(&(from, to)) {
                continue;
            }
            let now = self.now();
            let actions = self.nodes[to].step(now, Input::Recv { from, msg });
            self.handle(to, actions);
        }
    }

    fn run_for(&mut self, ms: u64) {
        let end = self.now_ms + ms;
        while self.now_ms < end {
            self.now_ms += 50;
            for i in 0..self.nodes.len() {
                let now = self.now();
                let actions = self.nodes[i].step(now, Input::Tick);
                self.handle(i, actions);
            }
            self.settle();
        }
    }

    fn isolate(&mut self, node: usize) {
        for other in 0..self.nodes.len() {
            if other != node {
                self.cut.insert((node, other));
                self.cut.insert((other, node));
            }
        }
    }

    fn primary(&self) -> Option<usize> {
        let best = self.nodes.iter().filter(|n| n.is_primary()).max_by_key(|n| n.term())?;
        Some(best.me())
    }

    fn write(&mut self, node: usize, tag: &str) -> Option<OpTime> {
        let op = Op::Put { ns: "t".into(), id: tag.into(), doc: serde_json::json!(tag).into() };
        let now = self.now();
        let (optime, actions) = self.nodes[node].write(now, vec![op], None).ok()?;
        self.handle(node, actions);
        self.settle();
        Some(optime)
    }
}

#[test]
fn initiate_elects_at_once_and_a_write_commits_on_a_majority() {
    let mut c = Cluster::new(&[1, 1, 1], 1);
    assert_eq!(c.primary(), Some(0), "the initiating member stands at once");
    let w = c.write(0, "a").expect("primary accepts");
    c.run_for(500);
    assert!(c.nodes[0].commit_point() >= w, "commit point {} below {w}", c.nodes[0].commit_point());
    for n in &c.nodes {
        assert!(n.oplog().contains(w));
    }
}

#[test]
fn w1_write_on_an_isolated_primary_rolls_back_and_majority_writes_survive() {
    let mut c = Cluster::new(&[1, 1, 1], 2);
    let committed = c.write(0, "committed").expect("write");
    c.run_for(1_000);
    assert!(c.nodes[0].commit_point() >= committed);
    c.isolate(0);
    let w1 = c.write(0, "w1-only").expect("isolated primary still accepts");
    c.run_for(13_000);
    assert!(!c.nodes[0].is_primary(), "the isolated primary steps down");
    let new = c.primary().expect("the majority side elects");
    assert_ne!(new, 0);
    assert!(c.nodes[new].term() > 1);
    c.cut.clear();
    c.run_for(5_000);
    assert!(!c.nodes[0].oplog().contains(w1), "w:1 write must be rolled back");
    assert_eq!(c.rolled_back.len(), 1);
    assert!(c.rolled_back[0].1.iter().any(|e| e.optime == w1));
    for n in &c.nodes {
        assert!(n.oplog().contains(committed), "member {} lost a committed write", n.me());
        assert_eq!(n.last_applied(), c.nodes[new].last_applied());
    }
}

#[test]
fn a_member_votes_once_per_term_and_dry_runs_keep_no_vote() {
    let cfg = config(&[1, 1, 1]);
    let rng = ChaCha8Rng::seed_from_u64(3);
    let now = Now::default();
    let mut m = ReplSet::new(cfg, Settings::default(), 2, Persisted::default(), rng, now, false);
    let vote = |acts: Vec<Action>| {
        acts.into_iter().find_map(|a| match a {
            Action::Send { msg: PeerMsg::Vote { granted, .. }, .. } => Some(granted),
            _ => None,
        })
    };
    let req = |term, dry_run| PeerMsg::RequestVote { term, dry_run, last_applied: OpTime::ZERO };
    assert_eq!(vote(m.step(now, Input::Recv { from: 0, msg: req(1, true) })), Some(true));
    assert_eq!(m.hard_state().last_vote, None, "a dry run keeps no vote");
    assert_eq!(m.term(), 0, "a dry run does not bump the voter's term");
    assert_eq!(vote(m.step(now, Input::Recv { from: 0, msg: req(1, false) })), Some(true));
    assert_eq!(vote(m.step(now, Input::Recv { from: 1, msg: req(1, false) })), Some(false));
    assert_eq!(vote(m.step(now, Input::Recv { from: 0, msg: req(1, false) })), Some(true), "same candidate again");
    assert_eq!(vote(m.step(now, Input::Recv { from: 1, msg: req(2, false) })), Some(true));
    assert_eq!(m.hard_state().last_vote, Some(LastVote { term: 2, candidate: 1 }));
}

#[test]
fn a_staler_candidate_is_refused() {
    let mut c = Cluster::new(&[1, 1, 1], 4);
    c.write(0, "x");
    c.run_for(500);
    let stale = PeerMsg::RequestVote { term: 9, dry_run: false, last_applied: OpTime::new(1, 1) };
    let now = c.now();
    let acts = c.nodes[1].step(now, Input::Recv { from: 2, msg: stale });
    assert!(acts.iter().any(|a| matches!(a, Action::Send { msg: PeerMsg::Vote { granted: false, .. }, .. })));
}

#[test]
fn higher_priority_member_takes_over_once_caught_up() {
    let mut c = Cluster::new(&[1, 1, 2], 5);
    assert_eq!(c.primary(), Some(0));
    c.write(0, "x");
    c.run_for(15_000);
    assert_eq!(c.primary(), Some(2), "priority takeover after (rank + 1) * electionTimeoutMillis");
    assert!(c.nodes[2].term() >= 2);
    assert!(c.primaries.iter().any(|(t, m)| *m == 2 && *t >= 2));
}

#[test]
fn primary_without_a_majority_steps_down_within_an_election_timeout() {
    let mut c = Cluster::new(&[1, 1, 1], 6);
    c.run_for(1_000);
    c.isolate(0);
    c.run_for(9_000);
    assert!(c.nodes[0].is_primary(), "not before the election timeout");
    c.run_for(2_500);
    assert!(!c.nodes[0].is_primary());
}

#[test]
fn priority_zero_never_stands() {
    let mut c = Cluster::new(&[1, 0, 0], 7);
    c.run_for(1_000);
    c.isolate(0);
    c.run_for(30_000);
    assert!(!c.nodes[1].is_primary() && !c.nodes[2].is_primary());
}

#[test]
fn a_batch_that_skips_entries_is_ignored() {
    let mut c = Cluster::new(&[1, 1, 1], 8);
    c.run_for(500);
    let now = c.now();
    // Node 1 fetches from node 0; answer its fetch with a gap.
    c.nodes[1].fetch = Some(Fetching { id: 77, source: 0, sent_ms: now.ms });
    let bad = OplogEntry { optime: OpTime::new(1, 99), wall_ms: 0, ops: vec![], fence: None };
    let msg = PeerMsg::Batch { id: 77, term: 1, entries: vec![bad], commit: OpTime::ZERO };
    let acts = c.nodes[1].step(now, Input::Recv { from: 0, msg });
    assert!(acts.iter().any(|a| matches!(a, Action::Ignored { .. })));
    let acts =
        c.nodes[1].step(now, Input::Recv { from: 7, msg: PeerMsg::Vote { term: 1, dry_run: false, granted: true } });
    assert!(acts.iter().any(|a| matches!(a, Action::Ignored { .. })));
}

/// Random partitions and writes over many seeds: one primary per term, and no optime a
/// primary counted as majority-committed is ever missing from a later primary.
#[test]
fn random_partitions_keep_election_safety_and_committed_writes() {
    let (mut elections, mut rollbacks) = (0, 0);
    for seed in 0..30 {
        let mut c = Cluster::new(&[2, 1, 1], seed);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut n = 0;
        for _round in 0..12 {
            if rng.gen_range(0..3) == 0 {
                c.cut.clear();
            } else {
                c.isolate(rng.gen_range(0..3));
            }
            for _ in 0..rng.gen_range(1..20) {
                n += 1;
                let target = c.primary().unwrap_or(0);
                c.write(target, &format!("w{n}"));
                c.run_for(rng.gen_range(1..6) * 50);
            }
            c.run_for(rng.gen_range(1_000..14_000));
        }
        let mut by_term: BTreeMap<u64, usize> = BTreeMap::new();
        for (term, m) in &c.primaries {
            assert_eq!(*by_term.entry(*term).or_insert(*m), *m, "seed {seed}: two primaries in term {term}");
        }
        c.cut.clear();
        c.run_for(25_000);
        let p = c.primary().unwrap_or_else(|| panic!("seed {seed}: no primary after heal"));
        for committed in &c.committed {
            assert!(c.nodes[p].oplog().contains(*committed), "seed {seed}: committed {committed} lost");
        }
        elections += c.primaries.len();
        rollbacks += c.rolled_back.len();
    }
    assert!(elections > 60 && rollbacks > 5, "the faults must bite: {elections} elections, {rollbacks} rollbacks");
}

#[test]
fn an_undeliverable_vote_request_ends_a_split_vote_at_once() {
    let cfg = config(&[1, 1, 1]);
    let now = Now { ms: 20_000, wall_ms: 20_000 };
    let hs = HardState { term: 1, last_vote: None };
    let persisted = Persisted { hs, oplog: Oplog::default(), damaged: false };
    let mut m =
        ReplSet::new(cfg, Settings::default(), 1, persisted, ChaCha8Rng::seed_from_u64(9), Now::default(), false);
    let acts = m.step(now, Input::Tick);
    assert!(acts.iter().any(|a| matches!(a, Action::Standing { dry_run: true, .. })));
    let grant = PeerMsg::Vote { term: 1, dry_run: true, granted: true };
    let acts = m.step(now, Input::Recv { from: 2, msg: grant });
    assert!(acts.iter().any(|a| matches!(a, Action::Standing { dry_run: false, term: 2, .. })));
    let refuse = PeerMsg::Vote { term: 2, dry_run: false, granted: false };
    m.step(now, Input::Recv { from: 2, msg: refuse });
    let request = PeerMsg::RequestVote { term: 2, dry_run: false, last_applied: OpTime::ZERO };
    let acts = m.step(now, Input::Undeliverable { to: 0, msg: request });
    assert!(acts.iter().any(|a| matches!(a, Action::ElectionLost { term: 2, .. })), "{acts:?}");
    assert!(!m.is_primary());
}

/// A secondary of a 3-member set whose primary (member 0) is in term 1.
fn secondary(damaged: bool) -> ReplSet {
    let hs = HardState { term: 1, last_vote: None };
    let persisted = Persisted { hs, oplog: Oplog::default(), damaged };
    ReplSet::new(
        config(&[1, 1, 1]),
        Settings::default(),
        1,
        persisted,
        ChaCha8Rng::seed_from_u64(3),
        Now::default(),
        false,
    )
}

fn heartbeat_from_primary(applied: OpTime) -> Input {
    let msg = PeerMsg::Heartbeat { term: 1, primary: true, applied, applied_wall_ms: 0, commit: OpTime::ZERO };
    Input::Recv { from: 0, msg }
}

fn fetch_sent(acts: &[Action]) -> Option<(u64, OpTime, bool)> {
    acts.iter().find_map(|a| match a {
        Action::Send { to: 0, msg: PeerMsg::Fetch { id, after, repairing, .. } } => Some((*id, *after, *repairing)),
        _ => None,
    })
}

fn batch(id: u64, terms: &[u64]) -> Input {
    let entries = terms
        .iter()
        .enumerate()
        .map(|(i, t)| OplogEntry { optime: OpTime::new(*t, i as u64 + 1), wall_ms: 0, ops: vec![], fence: None })
        .collect();
    Input::Recv { from: 0, msg: PeerMsg::Batch { id, term: 1, entries, commit: OpTime::ZERO } }
}

#[test]
fn a_secondary_reports_a_batch_only_after_the_shell_made_it_durable() {
    let now = Now { ms: 100, wall_ms: 100 };
    let mut m = secondary(false);
    m.step(now, heartbeat_from_primary(OpTime::new(1, 2)));
    let (id, after, _) = fetch_sent(&m.step(now, Input::Tick)).expect("fetches from the primary");
    assert_eq!(after, OpTime::ZERO);
    let acts = m.step(now, batch(id, &[1, 1]));
    assert!(acts.iter().any(|a| matches!(a, Action::Append { sync: true, .. })));
    assert_eq!(fetch_sent(&acts), None, "no position reported before the fsync: {acts:?}");
    assert_eq!(m.durable(), OpTime::ZERO);
    // Nor on a heartbeat reply, nor on a tick.
    let acts = m.step(now, heartbeat_from_primary(OpTime::new(1, 2)));
    assert!(acts
        .iter()
        .any(|a| matches!(a, Action::Send { msg: PeerMsg::HeartbeatReply { durable: OpTime::ZERO, .. }, .. })));
    assert_eq!(fetch_sent(&m.step(now, Input::Tick)), None);
    let acts = m.step(now, Input::Durable(OpTime::new(1, 2)));
    assert_eq!(fetch_sent(&acts).map(|f| f.1), Some(OpTime::new(1, 2)));
}

#[test]
fn a_damaged_member_neither_votes_nor_counts_until_it_holds_what_the_primary_had() {
    let now = Now { ms: 100, wall_ms: 100 };
    let mut m = secondary(true);
    assert_eq!(m.election_deadline_ms(), None, "a damaged member never stands");
    let request = PeerMsg::RequestVote { term: 2, dry_run: false, last_applied: OpTime::new(1, 9) };
    let acts = m.step(now, Input::Recv { from: 2, msg: request });
    assert!(acts.iter().any(|a| matches!(a, Action::Send { msg: PeerMsg::Vote { granted: false, .. }, .. })));
    assert!(!acts.iter().any(|a| matches!(a, Action::PersistHardState(HardState { last_vote: Some(_), .. }))));
    // Back to term 1's primary, which had two entries when the repair began.
    let mut m = secondary(true);
    m.step(now, heartbeat_from_primary(OpTime::new(1, 2)));
    let (id, _, repairing) = fetch_sent(&m.step(now, Input::Tick)).expect("fetches to repair");
    assert!(repairing, "its fetches count towards no majority");
    m.step(now, batch(id, &[1]));
    let acts = m.step(now, Input::Durable(OpTime::new(1, 1)));
    assert!(m.is_damaged() && !acts.contains(&Action::Repaired));
    let (id, after, _) = fetch_sent(&acts).expect("fetches the rest");
    let rest = PeerMsg::Batch {
        id,
        term: 1,
        entries: vec![OplogEntry { optime: OpTime::new(1, 2), wall_ms: 0, ops: vec![], fence: None }],
        commit: OpTime::ZERO,
    };
    assert_eq!(after, OpTime::new(1, 1));
    m.step(now, Input::Recv { from: 0, msg: rest });
    let acts = m.step(now, Input::Durable(OpTime::new(1, 2)));
    assert!(acts.contains(&Action::Repaired) && !m.is_damaged(), "{acts:?}");
    assert_eq!(fetch_sent(&acts).map(|f| f.2), Some(false));
}

#[test]
fn the_term_never_goes_back_behind_the_oplog() {
    let entry = OplogEntry { optime: OpTime::new(4, 1), wall_ms: 0, ops: vec![], fence: None };
    let persisted = Persisted { hs: HardState::default(), oplog: Oplog::from_entries([entry]), damaged: false };
    let m = ReplSet::new(
        config(&[1, 1, 1]),
        Settings::default(),
        1,
        persisted,
        ChaCha8Rng::seed_from_u64(3),
        Now::default(),
        false,
    );
    assert_eq!(m.term(), 4);
}

#[test]
fn a_diverged_reply_from_a_source_behind_us_rolls_nothing_back() {
    let now = Now { ms: 100, wall_ms: 100 };
    let mut m = secondary(false);
    m.step(now, heartbeat_from_primary(OpTime::new(1, 3)));
    let (id, _, _) = fetch_sent(&m.step(now, Input::Tick)).expect("fetches");
    m.step(now, batch(id, &[1, 1, 1]));
    let acts = m.step(now, Input::Durable(OpTime::new(1, 3)));
    let (id, _, _) = fetch_sent(&acts).expect("fetches again");
    // The source restarted with only its first entry (it lost the rest, or found it damaged).
    let msg = PeerMsg::Diverged { id, term: 1, boundaries: vec![OpTime::new(1, 1)], last: OpTime::new(1, 1) };
    let acts = m.step(now, Input::Recv { from: 0, msg });
    assert!(!acts.iter().any(|a| matches!(a, Action::RollBack { .. })), "{acts:?}");
    assert_eq!(m.last_applied(), OpTime::new(1, 3));
}
