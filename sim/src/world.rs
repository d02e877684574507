//! The shared state of one simulated run, and the fault driver that applies a schedule to it.
//!
//! Both engines keep the same [`WorldState`]: the seed, topology, trace, disks, clock skews, link
//! shapes, role claims and "sometimes" records. Only the moves an engine must make itself (kill,
//! start, pause, clog) go through [`EngineOps`]; everything else about a fault (resolving targets,
//! crashing disks, bookkeeping, tracing) is shared here, so the engines cannot drift apart.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

use crate::disk::{CrashReport, DiskFarm, DiskFaults};
use crate::ending::{Action, EndingPhase, EndingStep};
use crate::fault::{Fault, Target};
use crate::link::{LinkShape, LinkTable};
use crate::observation::{DiskCorrupted, FaultApplied, Observation, Observations};
use crate::topology::Topology;
use crate::trace::{Event, Trace};

/// Where simulated time is read from.
pub enum TimeSource {
    /// madsim (and the real build): `tokio::time::Instant` is the engine's clock.
    Tokio(tokio::time::Instant),
    /// turmoil: each host has its own runtime clock, so the driver publishes the sim's elapsed
    /// time here after every step.
    Shared(AtomicU64),
}

pub struct WorldState {
    pub seed: u64,
    pub topology: Topology,
    pub disks: DiskFarm,
    time: TimeSource,
    trace: Mutex<Trace>,
    skews_ms: Mutex<BTreeMap<String, i64>>,
    /// Whether any node's clock is skewed: nodes read their wall clocks all the time, and
    /// most runs skew none, so the answer then needs no lock.
    any_skew: AtomicBool,
    incarnations: Mutex<BTreeMap<String, u64>>,
    links: Mutex<LinkTable>,
    /// Whether any link is shaped: every read of every simulated connection asks about its
    /// link, and most runs shape none, so the answer then needs no lock.
    any_link_shaped: AtomicBool,
    /// One random stream per directed link, so traffic or a fault on one link never shifts the
    /// delays drawn for another (a shrunk schedule keeps the rest of the run as it was).
    link_rngs: Mutex<BTreeMap<(String, String), ChaCha8Rng>>,
    roles: Mutex<BTreeMap<String, BTreeSet<String>>>,
    sometimes: Mutex<BTreeMap<String, u64>>,
    failures: Mutex<Vec<String>>,
    observations: Mutex<Observations>,
    /// Set when the ending's recovery starts: verifiers run only from then.
    recovering: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a world lock already fails the run; keep the state readable for
    // the report instead of cascading poison errors.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl WorldState {
    pub fn new(seed: u64, topology: Topology, time: TimeSource, trace: Trace) -> Self {
        WorldState {
            seed,
            topology,
            disks: DiskFarm::new(seed),
            time,
            trace: Mutex::new(trace),
            skews_ms: Mutex::default(),
            any_skew: AtomicBool::new(false),
            incarnations: Mutex::default(),
            links: Mutex::default(),
            any_link_shaped: AtomicBool::new(false),
            link_rngs: Mutex::default(),
            roles: Mutex::default(),
            sometimes: Mutex::default(),
            failures: Mutex::default(),
            observations: Mutex::default(),
            recovering: AtomicBool::new(false),
        }
    }

    /// True once the run's ending has restarted the servers after its power loss (see
    /// [`crate::ending`]); verifiers start only then.
    pub fn recovery_started(&self) -> bool {
        self.recovering.load(Ordering::SeqCst)
    }

    pub fn now_ms(&self) -> u64 {
        match &self.time {
            TimeSource::Tokio(base) => tokio::time::Instant::now().duration_since(*base).as_millis() as u64,
            TimeSource::Shared(ms) => ms.load(Ordering::Relaxed),
        }
    }

    #[cfg_attr(madsim, allow(dead_code))]
    pub(crate) fn publish_time(&self, elapsed: Duration) {
        if let TimeSource::Shared(ms) = &self.time {
            ms.store(elapsed.as_millis() as u64, Ordering::Relaxed);
        }
    }

    pub fn record(&self, node: &str, kind: &str, fields: Value) {
        self.record_event(&Event::new(self.now_ms(), node, kind, &fields));
    }

    fn record_event(&self, event: &Event) {
        tracing::debug!(target: "trace", node = %event.node, kind = %event.kind, fields = %event.fields);
        lock(&self.trace).record(event);
    }

    /// Records a typed observation from `node`: into the trace, and into the stream the
    /// checkers read.
    pub fn observe<T: Observation>(&self, node: &str, value: &T) {
        let event = Event::new(self.now_ms(), node, T::KIND, value);
        self.record_event(&event);
        lock(&self.observations).push_event(event);
    }

    /// Reads the observations recorded so far.
    pub fn with_observations<R>(&self, f: impl FnOnce(&Observations) -> R) -> R {
        f(&lock(&self.observations))
    }

    pub fn with_trace<R>(&self, f: impl FnOnce(&mut Trace) -> R) -> R {
        f(&mut lock(&self.trace))
    }

    /// Marks that a rare state was reached ("sometimes" property / code probe).
    pub fn sometimes(&self, what: &str) {
        *lock(&self.sometimes).entry(what.to_string()).or_default() += 1;
    }

    pub fn sometimes_counts(&self) -> BTreeMap<String, u64> {
        lock(&self.sometimes).clone()
    }

    /// A failure observed by the world itself (a node panicked): always a violation.
    pub fn fail(&self, what: String) {
        lock(&self.failures).push(what);
    }

    pub fn failures(&self) -> Vec<String> {
        lock(&self.failures).clone()
    }

    pub fn clock_skew_ms(&self, node: &str) -> i64 {
        if !self.any_skew.load(Ordering::Acquire) {
            return 0;
        }
        lock(&self.skews_ms).get(node).copied().unwrap_or(0)
    }

    pub fn link_is_clear(&self, from: &str, to: &str) -> bool {
        !self.any_link_shaped.load(Ordering::Acquire) || lock(&self.links).get(from, to).is_clear()
    }

    /// Shapes the link both ways.
    fn shape_link(&self, a: &str, b: &str, shape: LinkShape) {
        let mut links = lock(&self.links);
        links.set(a, b, shape);
        links.set(b, a, shape);
        self.any_link_shaped.store(!links.is_empty(), Ordering::Release);
    }

    fn clear_links(&self) {
        lock(&self.links).clear();
        self.any_link_shaped.store(false, Ordering::Release);
    }

    pub fn link_delay(&self, from: &str, to: &str) -> Duration {
        let shape = lock(&self.links).get(from, to);
        if shape.is_clear() {
            return Duration::ZERO;
        }
        let mut rngs = lock(&self.link_rngs);
        let rng = rngs
            .entry((from.to_string(), to.to_string()))
            .or_insert_with(|| crate::rng::derive(self.seed, &format!("~link/{from}/{to}"), 0));
        shape.draw_delay(rng)
    }

    /// Counts a new life of `node` and returns its number (1 for the first start).
    pub fn next_incarnation(&self, node: &str) -> u64 {
        let mut inc = lock(&self.incarnations);
        let n = inc.entry(node.to_string()).or_default();
        *n += 1;
        *n
    }

    pub fn set_role(&self, node: &str, role: &str, holds: bool) {
        let mut roles = lock(&self.roles);
        let holders = roles.entry(role.to_string()).or_default();
        if holds {
            holders.insert(node.to_string());
        } else {
            holders.remove(node);
        }
    }

    pub fn holders_of(&self, role: &str) -> Vec<String> {
        lock(&self.roles).get(role).map(|s| s.iter().cloned().collect()).unwrap_or_default()
    }

    fn drop_roles(&self, node: &str) {
        for holders in lock(&self.roles).values_mut() {
            holders.remove(node);
        }
    }

    /// The nodes `target` names right now, in topology order.
    pub fn resolve(&self, target: &Target) -> Vec<String> {
        let t = &self.topology;
        let names: Vec<String> = match target {
            Target::Node(n) => vec![n.clone()],
            Target::Nodes(ns) => ns.clone(),
            Target::Zone(z) => t.in_zone(z).map(String::from).collect(),
            Target::Region(r) => t.in_region(r).map(String::from).collect(),
            Target::Role(r) => self.holders_of(r),
            Target::All => t.names().map(String::from).collect(),
        };
        t.names().filter(|n| names.iter().any(|m| m == n)).map(String::from).collect()
    }
}

/// What an engine must do itself; everything else about a fault is [`FaultDriver`]'s.
pub trait EngineOps {
    fn kill(&mut self, node: &str);
    fn start(&mut self, node: &str);
    fn pause(&mut self, node: &str);
    fn resume(&mut self, node: &str);
    fn clog(&mut self, from: &str, to: &str);
    fn unclog(&mut self, from: &str, to: &str);
}

/// Who is who, for the ending: the plan's servers, clients and verifiers, by name.
pub(crate) struct Roster {
    pub servers: Vec<String>,
    pub clients: Vec<String>,
    pub verifiers: Vec<String>,
}

impl Roster {
    pub fn of(plan: &crate::plan::Plan) -> Self {
        Roster {
            servers: plan.servers(),
            clients: plan.clients.iter().cloned().collect(),
            verifiers: plan.verifiers.iter().map(|(n, _)| n.clone()).collect(),
        }
    }
}

/// Applies faults to a world, keeping track of who is dead, paused or cut off.
pub struct FaultDriver {
    world: Arc<WorldState>,
    dead: BTreeSet<String>,
    paused: BTreeSet<String>,
    clogged: BTreeSet<(String, String)>,
    disk_faulty: BTreeSet<String>,
    /// Clients the ending stopped: nothing restarts them.
    stopped: BTreeSet<String>,
    /// Dead nodes whose process alone died (`Crash`): their page cache is still there.
    process_dead: BTreeSet<String>,
}

impl FaultDriver {
    pub fn new(world: Arc<WorldState>) -> Self {
        FaultDriver {
            world,
            dead: BTreeSet::new(),
            paused: BTreeSet::new(),
            clogged: BTreeSet::new(),
            disk_faulty: BTreeSet::new(),
            stopped: BTreeSet::new(),
            process_dead: BTreeSet::new(),
        }
    }

    /// Does what the timeline says: a schedule fault, or a step of the ending.
    pub(crate) fn act(&mut self, ops: &mut dyn EngineOps, action: &Action, roster: &Roster) {
        match action {
            Action::Fault(f) => self.apply(ops, f),
            Action::Ending(phase) => self.ending(ops, *phase, roster),
        }
    }

    /// One step of the run's ending (see [`crate::ending`]). Not a fault: it is recorded as an
    /// [`EndingStep`], and counts no "sometimes".
    fn ending(&mut self, ops: &mut dyn EngineOps, phase: EndingPhase, roster: &Roster) {
        let mut lost_bytes = 0;
        let nodes = match phase {
            EndingPhase::ClientsStopped => {
                for n in &roster.clients {
                    if self.stopped.insert(n.clone()) {
                        self.lose_power(ops, n);
                    }
                }
                roster.clients.clone()
            }
            EndingPhase::Healed => self.heal_all(ops),
            EndingPhase::PowerLoss => {
                for n in &roster.servers {
                    lost_bytes += self.lose_power(ops, n).map_or(0, |r| r.lost_bytes());
                }
                roster.servers.clone()
            }
            EndingPhase::Recovery => {
                self.world.recovering.store(true, Ordering::SeqCst);
                for n in roster.servers.iter().chain(&roster.verifiers) {
                    self.dead.remove(n);
                    ops.start(n);
                }
                roster.servers.iter().chain(&roster.verifiers).cloned().collect()
            }
            EndingPhase::End => Vec::new(),
        };
        self.world.observe("world", &EndingStep { phase, nodes, lost_bytes });
    }

    pub fn is_alive(&self, node: &str) -> bool {
        !self.dead.contains(node)
    }

    pub fn apply(&mut self, ops: &mut dyn EngineOps, fault: &Fault) {
        let w = self.world.clone();
        let touched = self.apply_inner(ops, fault);
        w.sometimes(&format!("fault.{}", fault.kind()));
        if let Some(scope) = fault.target_scope() {
            w.sometimes(&format!("fault.{}.{scope}", fault.kind()));
        }
        w.observe("world", &FaultApplied { fault: fault.clone(), nodes: touched });
    }

    fn apply_inner(&mut self, ops: &mut dyn EngineOps, fault: &Fault) -> Vec<String> {
        let w = self.world.clone();
        match fault {
            Fault::ClockSkew { target, offset_ms } => self.each(target, |_, n| {
                lock(&w.skews_ms).insert(n.into(), *offset_ms);
                w.any_skew.store(true, Ordering::Release);
            }),
            Fault::ClockStep { target, delta_ms } => self.each(target, |_, n| {
                *lock(&w.skews_ms).entry(n.into()).or_default() += delta_ms;
                w.any_skew.store(true, Ordering::Release);
            }),
            Fault::Link { a, b, shape } => {
                let (a, b) = (w.resolve(a), w.resolve(b));
                for (x, y) in pairs(&a, &b) {
                    w.shape_link(x, y, *shape);
                }
                union(a, b)
            }
            Fault::Disk { target, faults } => self.each(target, |d, n| {
                d.disk_faulty.insert(n.into());
                w.disks.set_faults(n, faults.clone());
            }),
            Fault::Pause(t) => self.each(t, |d, n| d.pause(ops, n)),
            Fault::Resume(t) => self.each(t, |d, n| d.resume(ops, n)),
            Fault::Partition { a, b } => self.cut(ops, &w.resolve(a), &w.resolve(b), true),
            Fault::PartitionOneWay { from, to } => self.cut(ops, &w.resolve(from), &w.resolve(to), false),
            Fault::Isolate(t) => {
                let inside = w.resolve(t);
                let outside: Vec<String> =
                    w.resolve(&Target::All).into_iter().filter(|n| !inside.contains(n)).collect();
                self.cut(ops, &inside, &outside, true);
                inside
            }
            Fault::HealNetwork => self.heal_network(ops),
            Fault::Crash(t) => self.each(t, |d, n| d.crash_process(ops, n)),
            Fault::Kill(t) => self.each(t, |d, n| d.kill(ops, n)),
            Fault::Wipe(t) => self.each(t, |d, n| {
                d.kill(ops, n);
                d.world.disks.wipe(n);
                d.world.record(n, "wipe", json!({}));
            }),
            Fault::Corrupt { target, file, file_prefix, block } => {
                let nodes = w.resolve(target);
                nodes.into_iter().filter(|n| self.corrupt(n, file.as_deref(), file_prefix.as_deref(), *block)).collect()
            }
            Fault::Restart(t) => self.each(t, |d, n| d.restart(ops, n)),
            Fault::HealAll => self.heal_all(ops),
        }
    }

    fn each(&mut self, target: &Target, mut f: impl FnMut(&mut Self, &str)) -> Vec<String> {
        let nodes = self.world.resolve(target);
        for n in &nodes {
            f(self, n);
        }
        nodes
    }

    fn cut(&mut self, ops: &mut dyn EngineOps, a: &[String], b: &[String], both: bool) -> Vec<String> {
        for (x, y) in pairs(a, b) {
            self.clog(ops, x, y);
            if both {
                self.clog(ops, y, x);
            }
        }
        union(a.to_vec(), b.to_vec())
    }

    fn clog(&mut self, ops: &mut dyn EngineOps, from: &str, to: &str) {
        if self.clogged.insert((from.into(), to.into())) {
            ops.clog(from, to);
        }
    }

    fn heal_network(&mut self, ops: &mut dyn EngineOps) -> Vec<String> {
        let mut touched = BTreeSet::new();
        for (from, to) in std::mem::take(&mut self.clogged) {
            ops.unclog(&from, &to);
            touched.insert(from);
            touched.insert(to);
        }
        touched.into_iter().collect()
    }

    fn kill(&mut self, ops: &mut dyn EngineOps, node: &str) {
        let Some(report) = self.lose_power(ops, node) else { return };
        if report.any_torn() {
            self.world.sometimes("disk.torn_write");
        }
        if report.lost_bytes() > 0 {
            self.world.sometimes("disk.unsynced_lost");
        }
    }

    /// Power loss: a live node dies and its disk crashes; a node whose process alone had died
    /// loses its page cache now. `None` if the node was already dead and powered off.
    fn lose_power(&mut self, ops: &mut dyn EngineOps, node: &str) -> Option<CrashReport> {
        if !self.dead.contains(node) {
            self.stop_process(ops, node);
        } else if !self.process_dead.remove(node) {
            return None;
        }
        let report = self.world.disks.crash(node);
        self.world.record(node, "crash", json!({ "lost_bytes": report.lost_bytes(), "torn": report.any_torn() }));
        Some(report)
    }

    /// The process dies; the machine and its page cache stay up.
    fn crash_process(&mut self, ops: &mut dyn EngineOps, node: &str) {
        if self.dead.contains(node) {
            return;
        }
        self.stop_process(ops, node);
        self.process_dead.insert(node.into());
        self.world.record(node, "process_crash", json!({}));
    }

    fn stop_process(&mut self, ops: &mut dyn EngineOps, node: &str) {
        self.dead.insert(node.into());
        // A paused process that dies is no longer paused; engines that model a pause as held
        // links (turmoil) must release them, or the restarted node would stay cut off.
        if self.paused.remove(node) {
            ops.resume(node);
        }
        ops.kill(node);
        self.world.drop_roles(node);
    }

    /// Starts dead targets (a crashed process finds its page cache); a live one is killed
    /// (power loss) and started again.
    fn restart(&mut self, ops: &mut dyn EngineOps, node: &str) {
        if self.stopped.contains(node) {
            return;
        }
        if !self.dead.contains(node) {
            self.kill(ops, node);
        }
        self.dead.remove(node);
        self.process_dead.remove(node);
        ops.start(node);
    }

    /// Damages one block of a synced file of `node` (chosen from the seed where not given);
    /// false if the disk has no such synced file.
    fn corrupt(&mut self, node: &str, file: Option<&str>, prefix: Option<&str>, block: Option<u64>) -> bool {
        let w = &self.world;
        let candidates: Vec<(String, usize)> = w
            .disks
            .synced_files(node)
            .into_iter()
            .filter(|(f, _)| file.is_none_or(|want| f == want) && prefix.is_none_or(|p| f.starts_with(p)))
            .collect();
        // One stream per node and moment: removing another fault from the schedule does not
        // move this one's choice.
        let mut rng = crate::rng::derive(w.seed, &format!("~corrupt/{node}"), w.now_ms());
        let Some((file, len)) = candidates.choose(&mut rng).cloned() else {
            w.record(node, "corrupt_missed", json!({ "file": file, "file_prefix": prefix }));
            return false;
        };
        let blocks = len.div_ceil(crate::disk::sim_disk::BLOCK_SIZE) as u64;
        let block = block.unwrap_or_else(|| rng.gen_range(0..blocks));
        if !w.disks.corrupt_block(node, &file, block as usize) {
            w.record(node, "corrupt_missed", json!({ "file": file, "block": block }));
            return false;
        }
        w.sometimes("disk.corrupted");
        w.observe(node, &DiskCorrupted { file, block });
        true
    }

    fn pause(&mut self, ops: &mut dyn EngineOps, node: &str) {
        if !self.dead.contains(node) && self.paused.insert(node.into()) {
            ops.pause(node);
        }
    }

    fn resume(&mut self, ops: &mut dyn EngineOps, node: &str) {
        if self.paused.remove(node) {
            ops.resume(node);
        }
    }

    fn heal_all(&mut self, ops: &mut dyn EngineOps) -> Vec<String> {
        let mut touched: BTreeSet<String> = self.heal_network(ops).into_iter().collect();
        self.world.clear_links();
        lock(&self.world.skews_ms).clear();
        self.world.any_skew.store(false, Ordering::Release);
        for n in std::mem::take(&mut self.disk_faulty) {
            self.world.disks.set_faults(&n, DiskFaults::default());
        }
        for n in std::mem::take(&mut self.paused) {
            ops.resume(&n);
            touched.insert(n);
        }
        let stopped = &self.stopped;
        let (stay, back): (BTreeSet<String>, BTreeSet<String>) =
            std::mem::take(&mut self.dead).into_iter().partition(|n| stopped.contains(n));
        self.dead = stay;
        for n in back {
            self.process_dead.remove(&n);
            ops.start(&n);
            touched.insert(n);
        }
        touched.into_iter().collect()
    }
}

fn pairs<'a>(a: &'a [String], b: &'a [String]) -> impl Iterator<Item = (&'a str, &'a str)> {
    a.iter().flat_map(move |x| b.iter().filter(move |y| *y != x).map(move |y| (x.as_str(), y.as_str())))
}

fn union(mut a: Vec<String>, b: Vec<String>) -> Vec<String> {
    for n in b {
        if !a.contains(&n) {
            a.push(n);
        }
    }
    a
}
