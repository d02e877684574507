//! Randomized cluster harness: many seeds of a 3- or 5-node cluster under partitions,
//! message drops, duplication, delay/reordering and crashes (a crash loses every Ready
//! the node had not processed yet, i.e. unpersisted state), with safety checked after
//! every tick and liveness checked after healing.

use std::collections::{BTreeMap, BTreeSet};

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sim::ratio::Ratio;

use super::super::*;
use super::Storage;

struct InFlight {
    at: u64,
    seq: u64,
    from: NodeId,
    to: NodeId,
    msg: Message,
}

/// A lossy, reordering network with directed link cuts.
struct Network {
    queue: Vec<InFlight>,
    cut: BTreeSet<(NodeId, NodeId)>,
    seq: u64,
    drop: Ratio,
    dup: Ratio,
    max_delay: u64,
}

impl Network {
    fn send(&mut self, rng: &mut ChaCha8Rng, now: u64, from: NodeId, to: NodeId, msg: Message) {
        if self.cut.contains(&(from, to)) || self.drop.draw(rng) {
            return;
        }
        let copies = if self.dup.draw(rng) { 2 } else { 1 };
        for _ in 0..copies {
            self.seq += 1;
            let at = now + rng.gen_range(1..=self.max_delay);
            self.queue.push(InFlight { at, seq: self.seq, from, to, msg: msg.clone() });
        }
    }

    /// Messages due at `now`, in delivery order; links cut meanwhile drop them.
    fn due(&mut self, now: u64) -> Vec<InFlight> {
        let (mut due, rest): (Vec<_>, Vec<_>) = self.queue.drain(..).partition(|m| m.at <= now);
        self.queue = rest;
        due.retain(|m| !self.cut.contains(&(m.from, m.to)));
        due.sort_by_key(|m| (m.at, m.seq));
        due
    }

    fn isolate(&mut self, id: NodeId, all: &[NodeId]) {
        for &o in all.iter().filter(|&&o| o != id) {
            self.cut.insert((id, o));
            self.cut.insert((o, id));
        }
    }

    fn partition(&mut self, side: &[NodeId], all: &[NodeId]) {
        for &a in side {
            for &b in all.iter().filter(|b| !side.contains(b)) {
                self.cut.insert((a, b));
                self.cut.insert((b, a));
            }
        }
    }
}

struct Node {
    cfg: Config,
    raft: Option<Raft>,
    store: Storage,
    down_until: u64,
    /// Index of the last committed entry this incarnation handed out.
    applied: u64,
    /// Highest commit index observed this incarnation: it must never go back.
    commit_seen: u64,
    restarts: u64,
}

/// Global safety bookkeeping across all nodes and incarnations.
#[derive(Default)]
struct Checker {
    leader_of_term: BTreeMap<u64, NodeId>,
    /// index -> (term, data) of every entry any node reported committed.
    committed: BTreeMap<u64, (u64, Vec<u8>)>,
    /// index -> term of the first node to report it committed. That node's term is at
    /// least the term in which the entry was committed, so every leader of this term or
    /// later must hold the entry (Leader Completeness). Deposed leaders of older terms
    /// need not.
    committed_by_term: BTreeMap<u64, u64>,
    /// (index, term) -> (data, term of the previous entry): log matching by induction.
    seen: BTreeMap<(u64, u64), (Vec<u8>, u64)>,
    /// (node, term) -> vote cast, as persisted.
    votes: BTreeMap<(NodeId, u64), NodeId>,
}

impl Checker {
    fn on_ready(&mut self, id: NodeId, node: &mut Node, term: u64, rd: &Ready) {
        if let Some(hs) = rd.hard_state {
            if let Some(v) = hs.voted_for {
                let prev = *self.votes.entry((id, hs.term)).or_insert(v);
                assert_eq!(prev, v, "node {id} voted for {prev} and {v} in term {}", hs.term);
            }
        }
        for e in &rd.entries {
            let prev_term = if e.index == 1 { 0 } else { node.store.log[e.index as usize - 2].term };
            let val = (e.data.clone(), prev_term);
            let old = self.seen.entry((e.index, e.term)).or_insert_with(|| val.clone());
            assert_eq!(*old, val, "log matching violated at ({}, {}) on node {id}", e.index, e.term);
        }
        for e in &rd.committed {
            assert_eq!(e.index, node.applied + 1, "node {id}: committed entries out of order");
            node.applied = e.index;
            assert_eq!(node.store.log.get(e.index as usize - 1), Some(e), "node {id}: applying unpersisted entry");
            self.committed_by_term.entry(e.index).or_insert(term);
            let old = self.committed.entry(e.index).or_insert_with(|| (e.term, e.data.clone()));
            assert_eq!(*old, (e.term, e.data.clone()), "node {id}: state machine safety at {}", e.index);
        }
    }

    /// At most one leader per term, and every leader holds every committed entry.
    fn on_state(&mut self, r: &Raft) {
        if r.role() != Role::Leader {
            return;
        }
        let l = *self.leader_of_term.entry(r.term()).or_insert(r.id());
        assert_eq!(l, r.id(), "two leaders in term {}: {l} and {}", r.term(), r.id());
        for (&i, (t, d)) in &self.committed {
            if self.committed_by_term[&i] > r.term() {
                continue;
            }
            let e = r.log().get(i as usize - 1);
            assert!(
                e.is_some_and(|e| e.term == *t && e.data == *d),
                "leader {} of term {} lacks committed entry {i}",
                r.id(),
                r.term()
            );
        }
    }
}

struct Cluster {
    rng: ChaCha8Rng,
    net: Network,
    nodes: BTreeMap<NodeId, Node>,
    ids: Vec<NodeId>,
    check: Checker,
    now: u64,
    seed: u64,
    proposals: u64,
    /// Scales the rate of chaos events for this seed.
    /// How often chaos strikes, in percent of the base rate (50..300).
    intensity_pct: u64,
}

impl Cluster {
    fn new(seed: u64, n: u64) -> Cluster {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let ids: Vec<NodeId> = (1..=n).collect();
        let (pre_vote, check_quorum) = (Ratio::new(3, 4).draw(&mut rng), Ratio::new(3, 4).draw(&mut rng));
        let mut nodes = BTreeMap::new();
        // At most one priority-0 member, so a majority of promotable nodes remains.
        let passive = if Ratio::new(3, 10).draw(&mut rng) { Some(rng.gen_range(1..=n)) } else { None };
        for &id in &ids {
            let mut cfg = Config::new(id, ids.clone());
            cfg.pre_vote = pre_vote;
            cfg.check_quorum = check_quorum;
            cfg.max_entries_per_msg = *[1, 1, 2, 3, 64].choose(&mut rng).unwrap();
            cfg.priority = if passive == Some(id) { 0 } else { 1 };
            let raft = Raft::new(cfg.clone(), HardState::default(), Vec::new(), seed * 1000 + id);
            let node = Node {
                cfg,
                raft: Some(raft),
                store: Storage::default(),
                down_until: 0,
                applied: 0,
                commit_seen: 0,
                restarts: 0,
            };
            nodes.insert(id, node);
        }
        let net = Network {
            queue: Vec::new(),
            cut: BTreeSet::new(),
            seq: 0,
            drop: Ratio::new(rng.gen_range(0..200), 1_000),
            dup: Ratio::new(2, 100),
            max_delay: rng.gen_range(1..=4),
        };
        let intensity_pct = rng.gen_range(50..300);
        Cluster { rng, net, nodes, ids, check: Checker::default(), now: 0, seed, proposals: 0, intensity_pct }
    }

    fn chaos(&mut self) {
        let ids = self.ids.clone();
        // Per 100,000, scaled by the intensity: the rarest faults are a few per 1,000 ticks.
        let roll: u64 = self.rng.gen_range(0..100_000) * 100 / self.intensity_pct;
        if roll < 2_000 {
            let mut side = ids.clone();
            side.shuffle(&mut self.rng);
            side.truncate(self.rng.gen_range(1..ids.len()));
            self.net.partition(&side, &ids);
        } else if roll < 4_000 {
            let id = *ids.choose(&mut self.rng).unwrap();
            self.net.isolate(id, &ids);
        } else if roll < 7_000 {
            self.net.cut.clear();
        } else if roll < 8_500 {
            let id = *ids.choose(&mut self.rng).unwrap();
            self.crash(id);
        } else if roll < 10_000 {
            // Leaders dying young leave uncommitted, divergent tails behind (Figure 8).
            let young =
                self.rafts().find(|r| r.role() == Role::Leader && r.last_index() > r.commit_index()).map(Raft::id);
            if let Some(id) = young {
                self.crash(id);
            }
        } else if roll < 10_500 {
            let to = *ids.choose(&mut self.rng).unwrap();
            if let Some(r) = self.leader_mut() {
                let _ = r.transfer_leadership(to);
            }
        } else if roll < 10_800 {
            if let Some(r) = self.leader_mut() {
                r.step_down();
            }
        }
    }

    fn leader_mut(&mut self) -> Option<&mut Raft> {
        self.nodes.values_mut().filter_map(|n| n.raft.as_mut()).find(|r| r.role() == Role::Leader)
    }

    /// Forgets everything not persisted, including any unprocessed Ready.
    fn crash(&mut self, id: NodeId) {
        let down = self.rng.gen_range(1..40);
        let node = self.nodes.get_mut(&id).unwrap();
        if node.raft.take().is_some() {
            node.down_until = self.now + down;
        }
    }

    fn restart_due(&mut self, force: bool) {
        for (&id, node) in self.nodes.iter_mut() {
            if node.raft.is_none() && (force || node.down_until <= self.now) {
                node.restarts += 1;
                node.applied = 0;
                node.commit_seen = 0;
                let seed = self.seed * 1000 + id + 100 * node.restarts;
                node.raft = Some(Raft::new(node.cfg.clone(), node.store.hs, node.store.log.clone(), seed));
            }
        }
    }

    fn step_time(&mut self, propose: Ratio, flush: Ratio) {
        self.now += 1;
        for node in self.nodes.values_mut() {
            if let Some(r) = node.raft.as_mut() {
                r.tick();
            }
        }
        for m in self.net.due(self.now) {
            if let Some(r) = self.nodes.get_mut(&m.to).unwrap().raft.as_mut() {
                r.step(m.from, m.msg);
            }
        }
        if propose.draw(&mut self.rng) {
            self.propose_somewhere();
        }
        let ids = self.ids.clone();
        for id in ids {
            // Sometimes a node does not get to persist this tick; a crash now loses it.
            if flush.draw(&mut self.rng) {
                self.flush(id);
            }
        }
        for node in self.nodes.values_mut() {
            if let Some(r) = &node.raft {
                self.check.on_state(r);
                assert!(r.commit_index() >= node.commit_seen, "commit moved backwards on {}", r.id());
                node.commit_seen = r.commit_index();
            }
        }
    }

    fn propose_somewhere(&mut self) {
        let leaders: Vec<NodeId> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.raft.as_ref().is_some_and(|r| r.role() == Role::Leader))
            .map(|(&id, _)| id)
            .collect();
        if let Some(&id) = leaders.choose(&mut self.rng) {
            self.proposals += 1;
            let data = format!("s{}-p{}", self.seed, self.proposals).into_bytes();
            let _ = self.nodes.get_mut(&id).unwrap().raft.as_mut().unwrap().propose(data);
        }
    }

    fn flush(&mut self, id: NodeId) {
        let node = self.nodes.get_mut(&id).unwrap();
        let Some(r) = node.raft.as_mut() else { return };
        let term = r.term();
        let rd = r.ready();
        node.store.persist(&rd);
        self.check.on_ready(id, node, term, &rd);
        for (to, msg) in rd.messages {
            self.net.send(&mut self.rng, self.now, id, to, msg);
        }
    }

    fn rafts(&self) -> impl Iterator<Item = &Raft> {
        self.nodes.values().filter_map(|n| n.raft.as_ref())
    }

    /// Heals everything and returns the ticks it took until a leader committed a fresh
    /// entry on every node and all logs agree up to it.
    fn converge(&mut self, limit: u64) -> u64 {
        self.net.cut.clear();
        self.net.drop = Ratio::NEVER;
        self.net.dup = Ratio::NEVER;
        self.restart_due(true);
        let start = self.now;
        let mut target: Option<(NodeId, u64, u64)> = None;
        while self.now - start < limit {
            self.step_time(Ratio::NEVER, Ratio::ALWAYS);
            if let Some((id, index, term)) = target {
                let leader = &self.nodes[&id].raft.as_ref().unwrap();
                if leader.role() != Role::Leader || leader.term() != term {
                    target = None; // lost leadership before finishing; try again
                } else if self.rafts().all(|r| r.commit_index() >= index) {
                    self.check_converged(index);
                    return self.now - start;
                }
            }
            if target.is_none() {
                target = self.propose_final();
            }
        }
        let states: Vec<_> =
            self.rafts().map(|r| (r.id(), r.role(), r.term(), r.commit_index(), r.last_index())).collect();
        panic!("seed {}: no convergence within {limit} ticks after healing: {states:?}", self.seed);
    }

    fn propose_final(&mut self) -> Option<(NodeId, u64, u64)> {
        let leader = self.rafts().filter(|r| r.role() == Role::Leader).max_by_key(|r| r.term())?.id();
        let r = self.nodes.get_mut(&leader).unwrap().raft.as_mut().unwrap();
        let (index, term) = r.propose(b"final".to_vec()).ok()?;
        Some((leader, index, term))
    }

    fn check_converged(&self, index: u64) {
        let first = self.rafts().next().unwrap().log()[..index as usize].to_vec();
        for r in self.rafts() {
            assert_eq!(&r.log()[..index as usize], first.as_slice(), "seed {}: logs differ", self.seed);
        }
        for (&i, (t, d)) in &self.check.committed {
            let e = &first[i as usize - 1];
            assert!(e.term == *t && e.data == *d, "seed {}: committed entry {i} lost", self.seed);
        }
    }
}

fn run(seed: u64, n: u64, ticks: u64) -> (u64, usize) {
    let mut c = Cluster::new(seed, n);
    for _ in 0..ticks {
        c.chaos();
        c.restart_due(false);
        c.step_time(Ratio::new(3, 10), Ratio::new(9, 10));
    }
    let healed_in = c.converge(200);
    (healed_in, c.check.committed.len())
}

fn run_many(n: u64, seeds: u64) {
    let mut worst = 0;
    let mut committed = 0;
    for seed in 0..seeds {
        let (t, c) = run(seed, n, 400);
        worst = worst.max(t);
        committed += c;
    }
    // Guard against a vacuous pass: chaos must still let plenty through.
    assert!(committed as u64 > seeds * 10, "only {committed} entries committed over {seeds} seeds");
    eprintln!("n={n}: worst convergence {worst} ticks, {committed} committed entries");
}

#[test]
fn randomized_three_nodes() {
    run_many(3, 200);
}

#[test]
fn randomized_four_nodes() {
    run_many(4, 100);
}

#[test]
fn randomized_five_nodes() {
    run_many(5, 200);
}
