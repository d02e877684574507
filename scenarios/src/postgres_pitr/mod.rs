//! `postgres-pitr`: the `postgres-failover` cluster archives WAL and takes base backups to an
//! object store in another region while the workload runs (and, on most seeds, while the primary
//! is killed or isolated, so the archive spans two timelines). Late in the run a node in the
//! other region restores the newest timeline to a seeded target time and rebuilds the data
//! there; the checker compares the result with the history at that time, computed by its own
//! replay of the final timeline (see [`checker`]).
//!
//! The run ends (`sim::ending`) with a power loss of every server and a recovery; the checker
//! reads the members' WAL and the restored data from the recovered disks. The workload and the
//! restore node are clients: stopped for good when the ending begins (the restore is long done,
//! and its result was written durably).
//!
//! For the availability report the workload records what `postgres-failover`'s does (classes
//! `commit` and `read`, see [`crate::postgres_failover`]), and the restore node each restore
//! attempt as class [`RESTORE`] (successful when the archive could be read and replayed). Data
//! lost: each acknowledged `synchronous_commit = on` commit by the target time that the restore
//! lacks (`commit`).
//!
//! `--config pitr-stop-late` restores with an off-by-one stop rule (the first record after the
//! target is replayed too); the checker must report `pitr past target`.

mod checker;

use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};
use sim::clock::SIM_EPOCH_UNIX_MS;
use sim::disk::DiskFaults;
use sim::{node_main, Ending, Fault, NodeCtx, Observation, Scheduled, Target};
use system::postgres::archive::StopAt;
use system::postgres::data::Durability;
use system::postgres::wal::{History, Position};
use system::postgres::PgCluster;

use crate::availability::op_since;
use crate::postgres_failover::{cluster, names};
use crate::scenario::{Built, Scenario};

pub static SCENARIO: Scenario = Scenario {
    name: "postgres-pitr",
    about: "PostgreSQL-like WAL archiving and base backups to another region, then a point-in-time restore to a seeded time",
    configs: &[("pitr-stop-late", "a restore that also replays the first record after the target time (unsafe): the checker must report `pitr past target`")],
    sweep_must_reach: &["pg.base_backup", "pg.wal_archived", "pg.pitr.from_base_backup", "pg.pitr.second_timeline", "fault.kill"],
    window_probes: &[],
    draw: |seed, _config| schedule(&mut draw_target(seed).1, &names()),
    build,
};

pub const RESTORE_NODE: &str = "pg-restore";
/// The availability report's class of a restore attempt.
pub const RESTORE: &str = "restore";
const HEAL_AT_MS: u64 = 26_000;
const RESTORE_AT_MS: u64 = 36_000;
/// The run's ending: healed and quiet, then every server loses power and recovers.
const ENDING: Ending = Ending { settle_ms: 3_000, recover_ms: 10_000 };
/// The rebuilt data on the restore node: the restored tables, the base backup used, and where
/// replay stopped. The checker reads it back from that node's disk.
pub(crate) const RESTORED_FILE: &str = "restored.json";

/// How a restore ended, as the restore node observes it (the rebuilt tables are on its disk).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RestoreDone {
    /// The target, in simulated ms (the wall-clock target less the simulation's epoch).
    pub target_ms: u64,
    pub result: Result<RestoreSummary, String>,
}

impl Observation for RestoreDone {
    const KIND: &'static str = "pg.pitr.restore";
}

/// Where a restore started and stopped.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RestoreSummary {
    pub history: History,
    pub base: Option<Position>,
    pub position: Position,
    pub replayed: u64,
    pub stopped: String,
}

fn build(seed: u64, config: Option<&str>, schedule: Vec<Scheduled>) -> Built {
    let stop = match config {
        Some("pitr-stop-late") => StopAt::FirstAfter,
        _ => StopAt::LastAtOrBefore,
    };
    let (mut plan, pg) = cluster(Durability::standard());
    plan.topology.add(RESTORE_NODE, "az-b1", "region-2");
    let store = pg.backup().expect("the cluster archives").to_string();
    let (target_ms, _) = draw_target(seed);
    plan.schedule = schedule;
    plan.client(RESTORE_NODE, node_main(move |ctx| restore_node(ctx, store.clone(), target_ms, stop)));
    plan.ending = Some(ENDING);
    let checker = checker::PitrChecker { pg, restore_node: RESTORE_NODE.into(), restored_file: RESTORED_FILE.into() };
    Built::new(plan).checker(checker)
}

/// The restore's target time, and the seed's schedule stream after it.
fn draw_target(seed: u64) -> (u64, rand_chacha::ChaCha8Rng) {
    let mut rng = sim::rng::derive(seed, "~schedule", 0);
    (rng.gen_range(2_000..28_000), rng)
}

/// Torn writes armed; the primary killed (half the seeds) or isolated (a quarter) mid-run.
fn schedule(rng: &mut rand_chacha::ChaCha8Rng, pg: &PgCluster) -> Vec<Scheduled> {
    let members = Target::Nodes(pg.members().to_vec());
    let torn = DiskFaults { torn_writes: true, ..DiskFaults::default() };
    let mut s = vec![Scheduled { at_ms: 0, fault: Fault::Disk { target: members, faults: torn } }];
    let at_ms = rng.gen_range(8_000..16_000);
    let primary = Target::role(pg.role_primary());
    match rng.gen_range(0..4) {
        0 | 1 => s.push(Scheduled { at_ms, fault: Fault::Kill(primary) }),
        2 => s.push(Scheduled { at_ms, fault: Fault::Isolate(primary) }),
        _ => {}
    }
    s.push(Scheduled { at_ms: HEAL_AT_MS, fault: Fault::HealAll });
    s
}

/// Waits, restores the archive to the target time, and writes the rebuilt data durably.
async fn restore_node(ctx: NodeCtx, store: String, target_ms: u64, stop: StopAt) {
    sim::timer::sleep(Duration::from_millis(RESTORE_AT_MS.saturating_sub(ctx.clock.now_ms()))).await;
    let target_wall_ms = SIM_EPOCH_UNIX_MS + target_ms;
    let mut result = Err("not attempted".to_string());
    for _ in 0..3 {
        let invoked_ms = ctx.clock.now_ms();
        result =
            system::postgres::archive::restore(&ctx.net, &store, target_wall_ms, stop).await.map_err(|e| e.to_string());
        op_since(&ctx, RESTORE, result.is_ok(), invoked_ms);
        if result.is_ok() {
            break;
        }
        sim::timer::sleep(Duration::from_secs(1)).await;
    }
    if let Ok(r) = &result {
        if r.base.is_some() {
            ctx.sometimes("pg.pitr.from_base_backup");
        }
        if r.history.len() > 1 {
            ctx.sometimes("pg.pitr.second_timeline");
        }
        let bytes = serde_json::to_vec(r).expect("restores serialize");
        if let Err(e) = ctx.disk.replace_file(RESTORED_FILE, &bytes).await {
            result = Err(format!("writing the restored data: {e}"));
        }
    }
    let result = result.map(|r| RestoreSummary {
        history: r.history,
        base: r.base,
        position: r.position,
        replayed: r.replayed,
        stopped: r.stopped,
    });
    ctx.observe(&RestoreDone { target_ms, result });
}
