//! Unit tests for the Raft core, plus (in `tests/cluster.rs`) a randomized cluster
//! harness with partitions, drops, reordering and crashes.

mod cluster;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::*;

// ---- shared helpers -------------------------------------------------------------------

/// What one node has on "disk": exactly what it persisted from processed Readys.
#[derive(Clone, Debug, Default)]
pub(super) struct Storage {
    pub hs: HardState,
    pub log: Vec<Entry>,
}

impl Storage {
    pub fn persist(&mut self, rd: &Ready) {
        if let Some(t) = rd.truncate_from {
            assert!(t >= 1 && t <= self.log.len() as u64, "truncate_from {t} outside persisted log");
            self.log.truncate(t as usize - 1);
        }
        if let Some(first) = rd.entries.first() {
            assert_eq!(first.index, self.log.len() as u64 + 1, "Ready entries leave a gap");
        }
        self.log.extend(rd.entries.iter().cloned());
        if let Some(hs) = rd.hard_state {
            self.hs = hs;
        }
        assert!(self.hs.commit <= self.log.len() as u64, "persisted commit beyond persisted log");
    }
}

fn ent(index: u64, term: u64) -> Entry {
    Entry { term, index, data: format!("{index}@{term}").into_bytes() }
}

/// A log whose entry `i + 1` has term `terms[i]`.
fn log_of(terms: &[u64]) -> Vec<Entry> {
    terms.iter().enumerate().map(|(i, &t)| ent(i as u64 + 1, t)).collect()
}

fn terms_of(log: &[Entry]) -> Vec<u64> {
    log.iter().map(|e| e.term).collect()
}

fn config(id: NodeId, n: u64) -> Config {
    Config::new(id, (1..=n).collect())
}

fn hs(term: u64, voted_for: Option<NodeId>, commit: u64) -> HardState {
    HardState { term, voted_for, commit }
}

/// Steps `msg` into `r` and returns the messages it produced.
fn step_collect(r: &mut Raft, from: NodeId, msg: Message) -> Vec<(NodeId, Message)> {
    r.step(from, msg);
    r.ready().messages
}

// ---- a synchronous in-memory cluster ----------------------------------------------------

/// Maps a message `(from, to, msg)` to what is actually sent (`None` drops it).
type Rewrite = fn(NodeId, NodeId, Message) -> Option<Message>;

/// Delivers every message immediately and in order, except over cut links.
struct Sim {
    nodes: BTreeMap<NodeId, Raft>,
    stores: BTreeMap<NodeId, Storage>,
    applied: BTreeMap<NodeId, Vec<Entry>>,
    cut: BTreeSet<(NodeId, NodeId)>,
    inbox: VecDeque<(NodeId, NodeId, Message)>,
    /// Every message delivered so far, for tests that count round trips.
    delivered: Vec<(NodeId, NodeId, Message)>,
    /// Rewrites (or drops, with `None`) messages as they are sent.
    rewrite: Option<Rewrite>,
}

impl Sim {
    fn new(n: u64, tweak: impl Fn(&mut Config)) -> Sim {
        let logs = (1..=n).map(|_| (HardState::default(), Vec::new())).collect();
        Sim::with_state(n, logs, tweak)
    }

    /// A cluster whose node `i + 1` starts from `state[i]` as if restarted.
    fn with_state(n: u64, state: Vec<(HardState, Vec<Entry>)>, tweak: impl Fn(&mut Config)) -> Sim {
        let mut sim = Sim {
            nodes: BTreeMap::new(),
            stores: BTreeMap::new(),
            applied: BTreeMap::new(),
            cut: BTreeSet::new(),
            inbox: VecDeque::new(),
            delivered: Vec::new(),
            rewrite: None,
        };
        for (i, (h, log)) in state.into_iter().enumerate() {
            let id = i as u64 + 1;
            let mut c = config(id, n);
            tweak(&mut c);
            sim.stores.insert(id, Storage { hs: h, log: log.clone() });
            sim.nodes.insert(id, Raft::new(c, h, log, id));
            sim.applied.insert(id, Vec::new());
        }
        sim
    }

    fn node(&self, id: NodeId) -> &Raft {
        &self.nodes[&id]
    }

    fn node_mut(&mut self, id: NodeId) -> &mut Raft {
        self.nodes.get_mut(&id).unwrap()
    }

    fn flush(&mut self) {
        for (&id, r) in self.nodes.iter_mut() {
            let rd = r.ready();
            self.stores.get_mut(&id).unwrap().persist(&rd);
            self.applied.get_mut(&id).unwrap().extend(rd.committed);
            for (to, m) in rd.messages {
                let m = match self.rewrite {
                    Some(f) => f(id, to, m),
                    None => Some(m),
                };
                if let Some(m) = m.filter(|_| !self.cut.contains(&(id, to))) {
                    self.inbox.push_back((id, to, m));
                }
            }
        }
    }

    /// Runs message exchange to quiescence.
    fn deliver(&mut self) {
        for _ in 0..100_000 {
            self.flush();
            let Some((from, to, m)) = self.inbox.pop_front() else {
                return;
            };
            self.delivered.push((from, to, m.clone()));
            self.node_mut(to).step(from, m);
        }
        panic!("messages never quiesced: {:?}", &self.delivered[self.delivered.len() - 6..]);
    }

    fn tick_all(&mut self, ticks: u32) {
        for _ in 0..ticks {
            self.nodes.values_mut().for_each(Raft::tick);
            self.deliver();
        }
    }

    fn isolate(&mut self, id: NodeId) {
        for &other in self.nodes.keys() {
            if other != id {
                self.cut.insert((id, other));
                self.cut.insert((other, id));
            }
        }
    }

    fn heal(&mut self) {
        self.cut.clear();
    }

    /// Makes `id` campaign and runs the election to completion.
    fn elect(&mut self, id: NodeId) {
        self.node_mut(id).campaign();
        self.deliver();
        assert_eq!(self.node(id).role(), Role::Leader, "node {id} failed to win");
    }

    /// Whatever any node applied at an index, every other node applied the same there.
    fn assert_applied_agree(&self) {
        let mut applied: BTreeMap<u64, &Entry> = BTreeMap::new();
        for e in self.applied.values().flatten() {
            let first = *applied.entry(e.index).or_insert(e);
            assert_eq!(first, e, "divergent apply at {}", e.index);
        }
    }

    fn leaders(&self) -> Vec<NodeId> {
        self.nodes.values().filter(|r| r.role() == Role::Leader).map(Raft::id).collect()
    }

    fn restart(&mut self, id: NodeId, tweak: impl Fn(&mut Config)) {
        let st = self.stores[&id].clone();
        let mut c = self.node(id).config().clone();
        tweak(&mut c);
        self.nodes.insert(id, Raft::new(c, st.hs, st.log, id + 100));
        self.applied.insert(id, Vec::new());
    }
}

// ---- elections -------------------------------------------------------------------------------

#[test]
fn election_by_timeout_with_majority() {
    // (cluster size, pre_vote)
    for (n, pre_vote) in [(1, false), (1, true), (2, true), (3, false), (3, true), (4, true), (5, false), (5, true)] {
        let mut sim = Sim::new(n, |c| c.pre_vote = pre_vote);
        let mut ticks = 0;
        while sim.leaders().is_empty() {
            sim.node_mut(1).tick(); // only node 1's clock runs, so it must be the one to win
            sim.deliver();
            ticks += 1;
            assert!(ticks < 20, "n={n} pre_vote={pre_vote}: no election within 2x timeout");
        }
        assert!(ticks >= 10, "n={n}: campaigned after {ticks} ticks, before the minimum timeout");
        assert_eq!(sim.leaders(), vec![1], "n={n} pre_vote={pre_vote}");
        for r in sim.nodes.values() {
            assert_eq!(r.term(), 1, "pre-vote must not burn a term");
            assert_eq!(r.leader(), Some(1));
        }
        // The election no-op commits everywhere and is exposed with empty data.
        for (id, applied) in &sim.applied {
            assert_eq!(applied.len(), 1, "n={n} node {id}: {applied:?}");
            assert!(applied[0].is_noop() && applied[0].term == 1);
        }
    }
}

#[test]
fn election_timeout_is_randomized_in_range() {
    let mut seen = BTreeSet::new();
    for seed in 0..50 {
        let mut r = Raft::new(config(1, 3), HardState::default(), Vec::new(), seed);
        let mut t = 0;
        while r.role() == Role::Follower {
            r.tick();
            t += 1;
        }
        assert!((10..20).contains(&t), "timeout {t} outside [10, 20)");
        seen.insert(t);
    }
    assert!(seen.len() > 3, "timeouts are not randomized: {seen:?}");
}

#[test]
fn vote_requires_up_to_date_log() {
    // (voter log terms, candidate last index, candidate last term, granted)
    let cases: &[(&[u64], u64, u64, bool)] = &[
        (&[], 0, 0, true),
        (&[1, 1], 2, 1, true),
        (&[1, 1], 1, 1, false), // shorter, same last term
        (&[1, 1], 3, 1, true),  // longer
        (&[1, 2], 5, 1, false), // longer but older last term
        (&[1, 2], 1, 3, true),  // shorter but newer last term
        (&[1, 2, 2], 2, 2, false),
    ];
    for (i, &(voter, last_index, last_term, want)) in cases.iter().enumerate() {
        for pre_vote in [false, true] {
            let mut r = Raft::new(config(1, 3), hs(3, None, 0), log_of(voter), 7);
            let req = Message::RequestVote {
                term: 4,
                last_log_index: last_index,
                last_log_term: last_term,
                pre_vote,
                leader_transfer: false,
            };
            let out = step_collect(&mut r, 2, req);
            let granted = matches!(out.as_slice(), [(2, Message::Vote { granted: true, .. })]);
            assert_eq!(granted, want, "case {i} pre_vote={pre_vote}: {out:?}");
            // A pre-vote changes nothing; a real vote request moves the term.
            assert_eq!(r.term(), if pre_vote { 3 } else { 4 }, "case {i}");
        }
    }
}

#[test]
fn one_vote_per_term_survives_restart() {
    let req = |term| Message::RequestVote {
        term,
        last_log_index: 0,
        last_log_term: 0,
        pre_vote: false,
        leader_transfer: false,
    };
    let granted = |out: &[(NodeId, Message)]| matches!(out, [(_, Message::Vote { granted: true, .. })]);
    let mut r = Raft::new(config(1, 3), HardState::default(), Vec::new(), 1);
    assert!(granted(&step_collect(&mut r, 2, req(5))));
    let persisted = r.hard_state();
    assert_eq!(persisted, hs(5, Some(2), 0));
    assert!(!granted(&step_collect(&mut r, 3, req(5))), "second vote in term 5");
    assert!(granted(&step_collect(&mut r, 2, req(5))), "repeating the same vote is fine");
    // After a crash the vote is still remembered.
    let mut r = Raft::new(config(1, 3), persisted, Vec::new(), 2);
    assert!(!granted(&step_collect(&mut r, 3, req(5))), "voted twice after restart");
    assert!(granted(&step_collect(&mut r, 3, req(6))), "a new term allows a new vote");
}

#[test]
fn priority_zero_never_leads() {
    // Node 1 has priority 0; it must never campaign, even when told to by a transfer.
    let mut lone = Raft::new(Config { priority: 0, ..config(1, 1) }, HardState::default(), Vec::new(), 3);
    for _ in 0..1000 {
        lone.tick();
    }
    assert_eq!(lone.role(), Role::Follower);
    assert!(!lone.has_ready(), "a priority-0 node sent something");

    let mut sim = Sim::new(3, |c| c.priority = if c.id == 1 { 0 } else { 1 });
    for round in 0..20 {
        sim.tick_all(25);
        assert!(!sim.leaders().contains(&1), "round {round}: priority-0 node leads");
        if let Some(&l) = sim.leaders().first() {
            // Transfer to node 1 is ignored by node 1 and times out; knock out the
            // leader so the others must elect again.
            sim.node_mut(l).transfer_leadership(1).unwrap();
            sim.deliver();
            sim.isolate(l);
            sim.tick_all(25);
            sim.heal();
        }
    }
    assert!(sim.leaders().iter().all(|&l| l != 1));
}

#[test]
fn pre_vote_prevents_disruption_by_rejoining_node() {
    // (pre_vote, check_quorum, leader survives the rejoin). Without pre-vote the isolated
    // node inflates its term; check_quorum's lease makes the others ignore its votes,
    // but the leader still learns the higher term from its heartbeat and steps down.
    for (pre_vote, check_quorum, survives) in
        [(true, true, true), (true, false, true), (false, true, false), (false, false, false)]
    {
        let mut sim = Sim::new(3, |c| {
            c.pre_vote = pre_vote;
            c.check_quorum = check_quorum;
        });
        sim.elect(1);
        let term = sim.node(1).term();
        sim.isolate(3);
        for _ in 0..100 {
            sim.nodes.values_mut().for_each(Raft::tick);
            sim.deliver();
        }
        let t3 = sim.node(3).term();
        assert_eq!(t3 == term, pre_vote, "pre_vote={pre_vote}: isolated node term {t3} vs {term}");
        sim.heal();
        sim.node_mut(3).campaign(); // it rejoins while campaigning
        sim.deliver();
        sim.tick_all(5);
        let kept = sim.node(1).role() == Role::Leader && sim.node(1).term() == term;
        assert_eq!(kept, survives, "pre_vote={pre_vote} check_quorum={check_quorum}");
    }
}

#[test]
fn check_quorum_leader_steps_down_when_isolated() {
    for check_quorum in [true, false] {
        let mut sim = Sim::new(3, |c| c.check_quorum = check_quorum);
        sim.elect(1);
        sim.isolate(1);
        for _ in 0..25 {
            sim.node_mut(1).tick();
            sim.deliver();
        }
        let still = sim.node(1).role() == Role::Leader;
        assert_eq!(still, !check_quorum, "check_quorum={check_quorum}");
        assert_eq!(sim.node_mut(1).propose(b"x".to_vec()).is_err(), check_quorum);
    }
}

#[test]
fn stale_term_messages_get_current_term() {
    let mut r = Raft::new(config(1, 3), hs(5, None, 0), Vec::new(), 1);
    let app = Message::Append { term: 3, prev_index: 0, prev_term: 0, entries: vec![], leader_commit: 0 };
    let out = step_collect(&mut r, 2, app);
    assert!(matches!(out.as_slice(), [(2, Message::AppendResp { term: 5, success: false, .. })]), "{out:?}");
    let rv =
        Message::RequestVote { term: 4, last_log_index: 9, last_log_term: 4, pre_vote: false, leader_transfer: false };
    let out = step_collect(&mut r, 3, rv);
    assert!(matches!(out.as_slice(), [(3, Message::Vote { term: 5, granted: false, .. })]), "{out:?}");
    assert_eq!(r.term(), 5);
}

// ---- replication -------------------------------------------------------------------------------

#[test]
fn replication_and_commit() {
    for n in [1, 2, 3, 4, 5] {
        let mut sim = Sim::new(n, |c| c.max_entries_per_msg = 2);
        sim.elect(1);
        let mut want = vec![Vec::new()];
        for i in 0..7u8 {
            let (index, term) = sim.node_mut(1).propose(vec![i + 1]).unwrap();
            assert_eq!((index, term), (i as u64 + 2, 1));
            want.push(vec![i + 1]);
        }
        sim.deliver();
        sim.tick_all(2); // a heartbeat carries the final commit index to followers
        for (id, applied) in &sim.applied {
            let got: Vec<Vec<u8>> = applied.iter().map(|e| e.data.clone()).collect();
            assert_eq!(got, want, "n={n} node {id}");
            assert_eq!(sim.node(*id).commit_index(), 8);
            assert_eq!(sim.stores[id].log, sim.node(1).log(), "persisted log of {id}");
        }
        let err = sim.node_mut(2.min(n)).propose(vec![9]);
        if n > 1 {
            assert_eq!(err, Err(NotLeader { leader_hint: Some(1) }));
        }
    }
}

#[test]
fn no_commit_without_majority() {
    let mut sim = Sim::new(5, |_| {});
    sim.elect(1);
    sim.tick_all(2);
    let before = sim.node(1).commit_index();
    for id in [3, 4, 5] {
        sim.isolate(id);
    }
    let (index, _) = sim.node_mut(1).propose(b"x".to_vec()).unwrap();
    sim.deliver();
    assert_eq!(sim.node(1).commit_index(), before, "committed with 2 of 5");
    sim.heal();
    sim.tick_all(2);
    assert!(sim.node(1).commit_index() >= index);
}

#[test]
fn only_current_term_entries_commit_by_counting() {
    // Raft paper Figure 8: node 1 leads term 3 with an uncommitted entry from term 2 at
    // index 2. A majority holding index 2 must not commit it; the no-op at index 3 does.
    // Nodes 2 and 3 hold only index 1; their answers are scripted below.
    let mut r = Raft::new(config(1, 3), hs(2, Some(1), 0), log_of(&[1, 2]), 1);
    r.campaign();
    let vote = |term| Message::Vote { term, granted: true, pre_vote: true };
    r.step(2, vote(3));
    let real = Message::Vote { term: 3, granted: true, pre_vote: false };
    r.step(2, real);
    assert_eq!(r.role(), Role::Leader);
    assert_eq!(terms_of(r.log()), vec![1, 2, 3]);
    let ack =
        |index| Message::AppendResp { term: 3, success: true, index, hint_index: 0, hint_term: 0, damaged: false };
    r.step(2, ack(2));
    assert_eq!(r.commit_index(), 0, "committed a previous-term entry by counting replicas");
    r.step(2, ack(3));
    assert_eq!(r.commit_index(), 3);
    let committed = r.ready().committed;
    assert_eq!(terms_of(&committed), vec![1, 2, 3]);
    assert!(committed[2].is_noop());
}

#[test]
fn figure8_previous_term_entry_on_majority_is_not_committed() {
    // Raft paper Figure 8 (c)-(d), end to end. S1 leads term 4 and gets its term-2 entry
    // at index 2 onto S2 and S3 (a majority), but not its own no-op. If that counted as
    // committed, S5 (last log term 3) could still win and overwrite index 2.
    let state = vec![
        (hs(3, Some(1), 1), log_of(&[1, 2])),
        (hs(3, Some(1), 1), log_of(&[1, 2])),
        (hs(3, Some(5), 1), log_of(&[1])),
        (hs(3, Some(5), 1), log_of(&[1])),
        (hs(3, Some(5), 1), log_of(&[1, 3])),
    ];
    let mut sim = Sim::with_state(5, state, |c| c.max_entries_per_msg = 1);
    sim.isolate(4);
    sim.isolate(5);
    // S1's Appends lose every entry from index 3 on: S1 has "not sent them yet".
    sim.rewrite = Some(|_, _, mut m| {
        if let Message::Append { entries, .. } = &mut m {
            entries.retain(|e| e.index < 3);
        }
        Some(m)
    });
    sim.elect(1);
    assert_eq!((sim.node(1).term(), terms_of(sim.node(1).log())), (4, vec![1, 2, 4]));
    assert_eq!(terms_of(sim.node(3).log()), vec![1, 2], "S3 should hold index 2");
    assert_eq!(sim.node(1).commit_index(), 1, "term-2 entry committed by counting replicas");

    // S1 crashes. S2-S4 restart with priority 0 so that S5 is the one to win.
    sim.rewrite = None;
    sim.heal();
    sim.isolate(1);
    for id in 2..=4 {
        sim.restart(id, |c| c.priority = 0);
    }
    for _ in 0..3 {
        if sim.node(5).role() != Role::Leader {
            sim.node_mut(5).campaign(); // the first pre-vote may only teach S5 term 4
            sim.deliver();
        }
    }
    assert_eq!(sim.node(5).role(), Role::Leader);
    sim.tick_all(2);
    assert_eq!(terms_of(sim.node(3).log()), vec![1, 3, 5], "index 2 overwritten, as it was never committed");
    sim.assert_applied_agree();
}

#[test]
fn follower_truncates_conflicting_suffix() {
    // (follower log, commit, prev_index, prev_term, entries, want success, want log, want truncate_from)
    type Case = (&'static [u64], u64, u64, u64, &'static [u64], bool, &'static [u64], Option<u64>);
    let cases: &[Case] = &[
        (&[1, 1, 2, 2], 2, 2, 1, &[3], true, &[1, 1, 3], Some(3)),
        (&[1, 1, 2, 2], 1, 1, 1, &[1, 3, 3], true, &[1, 1, 3, 3], Some(3)),
        (&[1, 1, 2], 0, 3, 2, &[2, 2], true, &[1, 1, 2, 2, 2], None),
        (&[1, 1, 2, 2], 0, 1, 1, &[1], true, &[1, 1, 2, 2], None), // stale, already have it
        (&[1, 1], 0, 3, 1, &[1], false, &[1, 1], None),            // gap
        (&[1, 1, 2], 0, 3, 3, &[3], false, &[1, 1, 2], None),      // prev term mismatch
    ];
    for (i, &(log, commit, prev_index, prev_term, ents, ok, want, trunc)) in cases.iter().enumerate() {
        let mut r = Raft::new(config(1, 3), hs(3, None, commit), log_of(log), 1);
        let entries: Vec<Entry> = ents.iter().enumerate().map(|(k, &t)| ent(prev_index + 1 + k as u64, t)).collect();
        let app = Message::Append { term: 3, prev_index, prev_term, entries, leader_commit: 0 };
        let rd = {
            r.step(2, app);
            r.ready()
        };
        assert!(
            matches!(rd.messages.as_slice(), [(2, Message::AppendResp { success, .. })] if *success == ok),
            "case {i}: {:?}",
            rd.messages
        );
        assert_eq!(terms_of(r.log()), want, "case {i}");
        assert_eq!(rd.truncate_from, trunc, "case {i}");
        let mut st = Storage { hs: hs(3, None, commit), log: log_of(log) };
        st.persist(&rd);
        assert_eq!(st.log, r.log(), "case {i}: Ready does not reproduce the log");
    }
}

#[test]
fn follower_commit_is_bounded_by_what_matches_the_leader() {
    // (follower log, prev_index, prev_term, entries, leader_commit, want commit). Entries
    // past the verified prefix may be a stale tail from another term.
    type Case = (&'static [u64], u64, u64, &'static [u64], u64, u64);
    let cases: &[Case] = &[
        (&[1, 1, 2, 2], 1, 1, &[1], 4, 2),
        (&[1, 1, 2, 2], 2, 1, &[], 4, 2),
        (&[1, 1, 2, 2], 4, 2, &[], 9, 4),
        (&[1, 1], 2, 1, &[3, 3], 3, 3),
        (&[1, 1, 2, 2], 2, 1, &[], 1, 1),
    ];
    for (i, &(log, prev_index, prev_term, ents, leader_commit, want)) in cases.iter().enumerate() {
        let mut r = Raft::new(config(1, 3), hs(3, None, 0), log_of(log), 1);
        let entries = ents.iter().enumerate().map(|(k, &t)| ent(prev_index + 1 + k as u64, t)).collect();
        r.step(2, Message::Append { term: 3, prev_index, prev_term, entries, leader_commit });
        assert_eq!(r.commit_index(), want, "case {i}");
        // A stale, reordered Append never moves the commit index back.
        r.step(2, Message::Append { term: 3, prev_index: 0, prev_term: 0, entries: vec![], leader_commit: 0 });
        assert_eq!(r.commit_index(), want, "case {i}: commit went back");
    }
}

#[test]
fn majority_sizes() {
    let want = [(1, 1), (2, 2), (3, 2), (4, 3), (5, 3), (6, 4), (7, 4)];
    for (n, m) in want {
        assert_eq!(quorum::majority(n), m, "n={n}");
    }
    assert_eq!(quorum::committed_index(&mut [5, 1, 3, 4]), 3);
    assert_eq!(quorum::committed_index(&mut [5, 1, 3]), 3);
    let votes = |v: &[(NodeId, bool)]| v.iter().copied().collect::<BTreeMap<_, _>>();
    assert_eq!(quorum::tally(&votes(&[(1, true), (2, true)]), 4), quorum::VoteResult::Pending);
    assert_eq!(quorum::tally(&votes(&[(1, true), (2, false), (3, false)]), 4), quorum::VoteResult::Lost);
    assert_eq!(quorum::tally(&votes(&[(1, true), (2, true), (3, true)]), 4), quorum::VoteResult::Won);
}

#[test]
#[should_panic(expected = "truncating committed entry")]
fn truncating_committed_entry_is_a_bug() {
    let mut r = Raft::new(config(1, 3), hs(3, None, 3), log_of(&[1, 1, 2]), 1);
    r.step(2, Message::Append { term: 3, prev_index: 1, prev_term: 1, entries: vec![ent(2, 3)], leader_commit: 0 });
}

#[test]
fn rejection_hint_skips_conflicting_terms() {
    // (follower log, prev_index, prev_term, want hint_index, want hint_term)
    let cases: &[(&[u64], u64, u64, u64, u64)] = &[
        (&[1, 1, 1, 4, 4, 5, 5, 6, 6, 6], 12, 6, 10, 6), // follower shorter
        (&[1, 1, 1, 4, 4, 5, 5, 6, 6, 6], 10, 5, 7, 5),  // skip all of term 6
        (&[1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3], 10, 6, 10, 3),
        (&[1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3], 10, 2, 6, 2),
        (&[2, 2, 3], 3, 1, 0, 0),
    ];
    for (i, &(log, prev_index, prev_term, hi, ht)) in cases.iter().enumerate() {
        let mut r = Raft::new(config(1, 3), hs(7, None, 0), log_of(log), 1);
        let app = Message::Append { term: 7, prev_index, prev_term, entries: vec![], leader_commit: 0 };
        let out = step_collect(&mut r, 2, app);
        let want = Message::AppendResp {
            term: 7,
            success: false,
            index: prev_index,
            hint_index: hi,
            hint_term: ht,
            damaged: false,
        };
        assert_eq!(out, vec![(2, want)], "case {i}");
    }
}

#[test]
fn figure7_followers_converge_quickly() {
    // Raft paper Figure 7: the leader of term 8 and followers (a)-(f).
    let leader: &[u64] = &[1, 1, 1, 4, 4, 5, 5, 6, 6, 6];
    let followers: &[&[u64]] = &[
        &[1, 1, 1, 4, 4, 5, 5, 6, 6],
        &[1, 1, 1, 4],
        &[1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6],
        &[1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7],
        &[1, 1, 1, 4, 4, 4, 4],
        &[1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3],
    ];
    for (i, f) in followers.iter().enumerate() {
        let state =
            vec![(hs(7, None, 0), log_of(leader)), (hs(7, None, 0), log_of(f)), (hs(7, None, 0), log_of(leader))];
        let mut sim = Sim::with_state(3, state, |c| c.max_entries_per_msg = 100);
        sim.elect(1);
        let rejects = sim
            .delivered
            .iter()
            .filter(|(from, _, m)| *from == 2 && matches!(m, Message::AppendResp { success: false, .. }))
            .count();
        sim.tick_all(2);
        assert_eq!(sim.node(2).log(), sim.node(1).log(), "follower ({})", (b'a' + i as u8) as char);
        assert!(rejects <= 3, "follower ({}) needed {rejects} rejections", (b'a' + i as u8) as char);
        assert_eq!(sim.node(2).commit_index(), 11);
    }
}

// ---- persistence, transfer, step down -------------------------------------------------------------

#[test]
fn restart_restores_log_commit_and_vote() {
    let mut sim = Sim::new(3, |_| {});
    sim.elect(1);
    for i in 0..5u8 {
        sim.node_mut(1).propose(vec![i + 1]).unwrap();
    }
    sim.deliver();
    sim.tick_all(2);
    let before: Vec<Entry> = sim.node(2).log().to_vec();
    let (term, commit) = (sim.node(2).term(), sim.node(2).commit_index());
    assert_eq!(commit, 6);
    // applied = 0: the whole committed log is replayed into a fresh state machine.
    sim.restart(2, |_| {});
    assert_eq!(sim.node(2).log(), before.as_slice());
    assert_eq!((sim.node(2).term(), sim.node(2).commit_index()), (term, commit));
    sim.flush();
    assert_eq!(sim.applied[&2], before[..6]);
    // applied = 4: only the rest is handed out.
    sim.restart(2, |c| c.applied = 4);
    sim.flush();
    assert_eq!(sim.applied[&2], before[4..6]);
    // And it keeps working as a follower.
    sim.node_mut(1).propose(b"more".to_vec()).unwrap();
    sim.deliver();
    sim.tick_all(2);
    assert_eq!(sim.node(2).commit_index(), 7);
}

#[test]
fn restart_adopts_term_of_entries_persisted_before_hard_state() {
    // Crash between writing entries and the hard state of a single-node election.
    let r = Raft::new(config(1, 3), hs(1, Some(1), 0), log_of(&[1, 2]), 1);
    assert_eq!(r.term(), 2);
    assert_eq!(r.hard_state().voted_for, None);
}

#[test]
fn leadership_transfer() {
    let mut sim = Sim::new(3, |_| {});
    sim.elect(1);
    let term = sim.node(1).term();
    sim.isolate(2);
    sim.node_mut(1).propose(b"a".to_vec()).unwrap();
    sim.deliver();
    sim.heal();
    // Node 2 lags, so the transfer first catches it up, then hands over.
    sim.node_mut(1).transfer_leadership(2).unwrap();
    assert_eq!(sim.node_mut(1).propose(b"b".to_vec()), Err(NotLeader { leader_hint: Some(2) }));
    sim.deliver();
    assert_eq!(sim.leaders(), vec![2]);
    assert_eq!(sim.node(2).term(), term + 1);
    assert_eq!(sim.node(3).leader(), Some(2));
    assert!(sim.node_mut(3).transfer_leadership(1).is_err());
}

#[test]
fn step_down_leads_to_new_election() {
    let mut sim = Sim::new(3, |_| {});
    sim.elect(1);
    let term = sim.node(1).term();
    sim.node_mut(1).step_down();
    assert_eq!(sim.node(1).role(), Role::Follower);
    assert!(sim.node_mut(1).propose(vec![1]).is_err());
    sim.tick_all(40);
    assert_eq!(sim.leaders().len(), 1);
    assert!(sim.node(sim.leaders()[0]).term() > term);
}

#[test]
fn messages_from_unknown_nodes_are_ignored() {
    let mut r = Raft::new(config(1, 3), HardState::default(), Vec::new(), 1);
    let rv =
        Message::RequestVote { term: 9, last_log_index: 9, last_log_term: 9, pre_vote: false, leader_transfer: false };
    assert!(step_collect(&mut r, 42, rv).is_empty());
    assert_eq!(r.term(), 0);
}

#[test]
fn messages_serialize() {
    let m = Message::Append { term: 2, prev_index: 1, prev_term: 1, entries: vec![ent(2, 2)], leader_commit: 1 };
    let s = serde_json::to_string(&m).unwrap();
    assert_eq!(serde_json::from_str::<Message>(&s).unwrap(), m);
}

// ---- term mismatches and damaged logs ----------------------------------------------------------

#[test]
fn term_mismatch_at_a_matching_index_is_counted() {
    // (follower log, prev_index, prev_term, entries, counted)
    type Case = (&'static [u64], u64, u64, &'static [u64], bool);
    let cases: &[Case] = &[
        (&[1, 1, 2, 2], 2, 1, &[3], true), // entry 3 has term 2 here, 3 at the leader: truncated
        (&[1, 1, 2], 3, 3, &[3], true),    // prev entry 3 has term 2 here: consistency check fails
        (&[1, 1, 2], 3, 2, &[2], false),   // matches and extends
        (&[1, 1], 3, 1, &[1], false),      // a gap, not a mismatch
        (&[1, 1, 2, 2], 1, 1, &[1], false), // stale append of what we already have
    ];
    for (i, &(log, prev_index, prev_term, ents, counted)) in cases.iter().enumerate() {
        let mut r = Raft::new(config(1, 3), hs(3, None, 0), log_of(log), 1);
        let entries: Vec<Entry> = ents.iter().enumerate().map(|(k, &t)| ent(prev_index + 1 + k as u64, t)).collect();
        r.step(2, Message::Append { term: 3, prev_index, prev_term, entries, leader_commit: 0 });
        assert_eq!(r.term_mismatches(), u64::from(counted), "case {i}");
    }
}

#[test]
fn a_damaged_member_grants_no_vote_and_never_campaigns() {
    let mut r = Raft::new(config(1, 3), hs(2, None, 0), log_of(&[1]), 1);
    r.mark_damaged();
    assert!(!r.is_promotable());
    for pre_vote in [true, false] {
        let req =
            Message::RequestVote { term: 3, last_log_index: 5, last_log_term: 2, pre_vote, leader_transfer: false };
        let out = step_collect(&mut r, 2, req);
        assert!(matches!(out.as_slice(), [(2, Message::Vote { granted: false, .. })]), "pre_vote {pre_vote}: {out:?}");
    }
    assert_eq!(r.hard_state().voted_for, None);
    for _ in 0..100 {
        r.tick();
    }
    assert_eq!(r.role(), Role::Follower, "a damaged member campaigned");
    assert!(r.ready().messages.is_empty());
}

#[test]
fn a_damaged_members_answers_never_commit() {
    // Node 3 is down; node 2 lost its log. The leader and the damaged node are a majority,
    // but node 2's answers must not count.
    let mut sim = Sim::new(3, |_| {});
    sim.elect(1);
    sim.node_mut(1).propose(b"a".to_vec()).unwrap();
    sim.deliver();
    let committed = sim.node(1).commit_index();
    assert_eq!(committed, 2);
    sim.isolate(3);
    let mut c = sim.node(2).config().clone();
    c.applied = 0;
    sim.stores.insert(2, Storage { hs: hs(sim.node(1).term(), None, 0), log: Vec::new() });
    sim.nodes.insert(2, Raft::new(c, sim.stores[&2].hs, Vec::new(), 7));
    sim.node_mut(2).mark_damaged();
    sim.node_mut(1).propose(b"b".to_vec()).unwrap();
    sim.tick_all(1);
    assert!(sim.node(2).is_damaged(), "repaired before holding a committed entry of the leader's term");
    sim.tick_all(4);
    assert_eq!(sim.node(2).last_index(), 3, "the damaged member is not repaired from the leader");
    assert_eq!(sim.node(1).commit_index(), committed, "a damaged member's answer counted towards commitment");
    // It holds entry 2, committed in the leader's term, so everything committed: repaired.
    assert!(!sim.node(2).is_damaged(), "not repaired after holding a committed entry of the leader's term");
    assert_eq!(sim.node(2).hard_state().voted_for, Some(1), "the lost vote is not pinned to the leader");
    sim.heal();
    sim.tick_all(5);
    assert_eq!(sim.node(1).commit_index(), 3);
    sim.assert_applied_agree();
}

#[test]
fn a_damaged_member_cannot_elect_a_candidate_missing_committed_entries() {
    // Entry 2 was committed by nodes 1 and 2; node 2 then lost it. Node 3 never had it: with
    // node 2's vote it would win and overwrite the committed entry.
    let t = 2;
    let mut sim = Sim::with_state(
        3,
        vec![(hs(t, Some(1), 2), log_of(&[1, 2])), (hs(t, None, 0), log_of(&[1])), (hs(t, None, 1), log_of(&[1]))],
        |_| {},
    );
    sim.node_mut(2).mark_damaged();
    sim.isolate(1);
    sim.tick_all(200);
    assert!(sim.leaders().is_empty(), "node 3 was elected by a damaged voter");
    sim.heal();
    sim.tick_all(200);
    assert_eq!(sim.leaders().len(), 1);
    let leader = sim.leaders()[0];
    assert!(sim.node(leader).log().iter().any(|e| e.index == 2 && e.term == 2), "committed entry 2 lost");
}
