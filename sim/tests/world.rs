//! The world API, one test body per operation, run on whichever engine the build carries:
//! turmoil under plain `cargo test`, madsim under `cargo madsim-test` (see ci/test-all.sh).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sim::disk::DiskFaults;
use sim::link::LinkShape;
use sim::ratio::Ratio;
use sim::{node_main, Fault, Outcome, Plan, RunOptions, Target, Topology};

mod common;
use common::{echo_server, ping};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn topology() -> Topology {
    let mut t = Topology::new();
    t.add("a", "z1", "r1");
    t.add("b", "z2", "r1");
    t.add("c", "z3", "r2");
    t
}

fn run(plan: Plan, seed: u64) -> Outcome {
    std::thread::Builder::new()
        .spawn(move || sim::engine::run(plan, RunOptions { seed, ..RunOptions::default() }))
        .expect("thread")
        .join()
        .expect("run does not panic")
}

/// (simulated ms of the attempt, round trip in ms or None when it failed), per ping.
type PingLog = Arc<Mutex<Vec<(u64, Option<u64>)>>>;

/// `a` pings `b` every 500 ms and records (sim ms, round trip) per attempt.
fn pinger_plan(log: PingLog, duration_ms: u64) -> Plan {
    let mut plan = Plan::new(topology(), duration_ms);
    plan.node("b", node_main(echo_server));
    plan.node("c", node_main(echo_server));
    plan.node(
        "a",
        node_main(move |ctx| {
            let log = log.clone();
            async move {
                loop {
                    let at = ctx.clock.now_ms();
                    let rtt = ping(&ctx, "b").await;
                    ctx.trace("ping", serde_json::json!({ "rtt_ms": rtt }));
                    log.lock().unwrap().push((at, rtt));
                    sim::timer::sleep_until(tokio::time::Instant::now() + Duration::from_millis(500)).await;
                }
            }
        }),
    );
    plan
}

/// Nodes that only exist to fill the topology.
fn idle(plan: &mut Plan, names: &[&str]) {
    for name in names {
        plan.node(name, node_main(|_| std::future::pending::<()>()));
    }
}

fn outcomes_between(log: &[(u64, Option<u64>)], from: u64, to: u64) -> Vec<Option<u64>> {
    log.iter().filter(|(t, _)| *t >= from && *t < to).map(|(_, r)| *r).collect()
}

#[test]
fn partition_cuts_and_heal_restores() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut plan = pinger_plan(log.clone(), 12_000);
    plan.at(3_000, Fault::Partition { a: Target::node("a"), b: Target::zone("z2") });
    plan.at(7_000, Fault::HealNetwork);
    run(plan, 1);
    let log = log.lock().unwrap();
    assert!(outcomes_between(&log, 0, 3_000).iter().all(Option::is_some), "{log:?}");
    assert!(outcomes_between(&log, 3_100, 6_000).iter().all(Option::is_none), "{log:?}");
    assert!(outcomes_between(&log, 8_500, 12_000).iter().all(Option::is_some), "{log:?}");
}

#[test]
fn one_way_partition_blocks_one_direction() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut plan = pinger_plan(log.clone(), 8_000);
    plan.at(2_000, Fault::PartitionOneWay { from: Target::node("b"), to: Target::node("a") });
    run(plan, 2);
    let log = log.lock().unwrap();
    // Requests reach b, but its replies never come back.
    assert!(outcomes_between(&log, 2_100, 8_000).iter().all(Option::is_none), "{log:?}");
}

#[test]
fn pause_silences_a_node_until_resumed() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut plan = pinger_plan(log.clone(), 12_000);
    plan.at(3_000, Fault::Pause(Target::node("b")));
    plan.at(7_000, Fault::Resume(Target::node("b")));
    run(plan, 3);
    let log = log.lock().unwrap();
    assert!(outcomes_between(&log, 3_100, 6_000).iter().all(Option::is_none), "{log:?}");
    assert!(outcomes_between(&log, 8_500, 12_000).iter().all(Option::is_some), "{log:?}");
}

#[test]
fn link_latency_shows_in_round_trips() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut plan = pinger_plan(log.clone(), 8_000);
    let shape = LinkShape { latency_ms: 150, jitter_ms: 20, loss: Ratio::NEVER };
    plan.at(3_000, Fault::Link { a: Target::node("a"), b: Target::node("b"), shape });
    run(plan, 4);
    let log = log.lock().unwrap();
    let before: Vec<u64> = outcomes_between(&log, 0, 3_000).into_iter().flatten().collect();
    let after: Vec<u64> = outcomes_between(&log, 3_100, 8_000).into_iter().flatten().collect();
    assert!(!before.is_empty() && !after.is_empty(), "{log:?}");
    // Shaped both ways: at least two one-way latencies on top of the engine's own.
    assert!(after.iter().all(|rtt| *rtt >= 300), "{after:?}");
    assert!(before.iter().all(|rtt| *rtt < 100), "{before:?}");
}

#[test]
fn kill_stops_and_restart_starts_a_new_incarnation_with_what_was_synced() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut plan = Plan::new(topology(), 6_000);
    let s = seen.clone();
    plan.node(
        "a",
        node_main(move |ctx| {
            let s = s.clone();
            async move {
                let before = ctx.disk.read("log").unwrap_or_default();
                s.lock().unwrap().push((ctx.incarnation, String::from_utf8_lossy(&before).into_owned()));
                ctx.disk.append("log", format!("synced-{};", ctx.incarnation).as_bytes()).unwrap();
                ctx.disk.sync("log").await.unwrap();
                ctx.disk.append("log", b"unsynced;").unwrap();
                std::future::pending::<()>().await;
            }
        }),
    );
    idle(&mut plan, &["b", "c"]);
    plan.at(1_000, Fault::Kill(Target::zone("z1")));
    plan.at(2_000, Fault::Restart(Target::node("a")));
    let outcome = run(plan, 5);
    let seen = seen.lock().unwrap();
    assert_eq!(*seen, vec![(1, String::new()), (2, "synced-1;".to_string())]);
    assert_eq!(outcome.world.sometimes_counts().get("fault.kill.zone"), Some(&1));
}

#[test]
fn torn_writes_leave_a_tail_the_checksummed_reader_rejects() {
    // Kill mid-fsync over many seeds: a tear must happen on some, and never damage synced data.
    let mut tears = 0;
    for seed in 0..24 {
        let mut plan = Plan::new(topology(), 2_000);
        plan.node(
            "a",
            node_main(|ctx| async move {
                let mut buf = Vec::new();
                for i in 0..200u32 {
                    buf.clear();
                    sim::disk::records::encode_into(&mut buf, &[i as u8; 700]);
                    ctx.disk.append("wal", &buf).unwrap();
                    if ctx.disk.sync("wal").await.is_err() {
                        return;
                    }
                }
            }),
        );
        idle(&mut plan, &["b", "c"]);
        plan.at(
            0,
            Fault::Disk {
                target: Target::node("a"),
                faults: DiskFaults { torn_writes: true, ..DiskFaults::default() },
            },
        );
        plan.at(150 + seed * 7, Fault::Kill(Target::node("a")));
        let outcome = run(plan, seed);
        let bytes = outcome.world.disks.disk("a").read("wal").unwrap_or_default();
        let decoded = sim::disk::records::decode_all(&bytes);
        for (i, r) in decoded.records.iter().enumerate() {
            assert_eq!(r, &vec![i as u8; 700], "seed {seed}: a surviving record was damaged");
        }
        tears += usize::from(outcome.world.sometimes_counts().contains_key("disk.torn_write"));
    }
    assert!(tears > 0, "no kill landed inside an fsync in 24 seeds");
}

#[test]
fn clock_skew_and_step_move_one_nodes_wall_clock() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut plan = Plan::new(topology(), 5_000);
    let s = seen.clone();
    plan.node(
        "a",
        node_main(move |ctx| {
            let s = s.clone();
            async move {
                loop {
                    let skew = ctx.clock.wall_ms() as i64 - (sim::clock::SIM_EPOCH_UNIX_MS + ctx.clock.now_ms()) as i64;
                    s.lock().unwrap().push((ctx.clock.now_ms(), skew));
                    sim::timer::sleep(Duration::from_millis(500)).await;
                }
            }
        }),
    );
    idle(&mut plan, &["b", "c"]);
    plan.at(1_200, Fault::ClockSkew { target: Target::node("a"), offset_ms: -4_000 });
    plan.at(2_700, Fault::ClockStep { target: Target::node("a"), delta_ms: 10_000 });
    run(plan, 6);
    let seen = seen.lock().unwrap();
    let skew_at = |t: u64| seen.iter().rev().find(|(at, _)| *at <= t).map(|(_, s)| *s);
    assert_eq!(skew_at(1_000), Some(0));
    assert_eq!(skew_at(2_000), Some(-4_000));
    assert_eq!(skew_at(4_000), Some(6_000));
}

#[test]
fn same_seed_same_trace_hash_and_faults_are_traced_with_their_time() {
    let plan = |seed| {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut p = pinger_plan(log, 4_000);
        p.at(1_234, Fault::Isolate(Target::Region("r2".into())));
        run(p, seed)
    };
    let (a, b, c) = (plan(9), plan(9), plan(10));
    assert_eq!(a.trace_hash(), b.trace_hash());
    assert_ne!(a.trace_hash(), c.trace_hash());
    assert!(a.events() > 5);
}

/// A server for the ending tests: its first life writes one synced and one unsynced record;
/// every life answers each connection with its log as its disk holds it (a length byte, then
/// the bytes).
async fn log_server(ctx: sim::NodeCtx) {
    if ctx.incarnation == 1 {
        ctx.disk.append("log", b"synced;").unwrap();
        ctx.disk.sync("log").await.unwrap();
        ctx.disk.append("log", b"unsynced;").unwrap();
    }
    let listener = ctx.net.bind(common::PORT).await.expect("bind");
    while let Ok((mut conn, _)) = listener.accept().await {
        let log = ctx.disk.read("log").unwrap_or_default();
        let mut frame = vec![log.len() as u8];
        frame.extend_from_slice(&log);
        if conn.write_all(&frame).await.is_ok() {
            let _ = conn.flush().await;
        }
    }
}

/// Reads `node`'s log through the network, as a verifier does.
async fn read_log(ctx: &sim::NodeCtx, node: &str) -> Option<String> {
    let attempt = async {
        let mut conn = ctx.net.connect(node, common::PORT).await.ok()?;
        let mut len = [0u8; 1];
        conn.read_exact(&mut len).await.ok()?;
        let mut log = vec![0u8; usize::from(len[0])];
        conn.read_exact(&mut log).await.ok()?;
        Some(String::from_utf8_lossy(&log).into_owned())
    };
    sim::timer::timeout(Duration::from_secs(1), attempt).await.ok()?
}

/// What the ending test's verifier read, and when it started.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct VerifierRead {
    started_ms: u64,
    log: String,
}

impl sim::Observation for VerifierRead {
    const KIND: &'static str = "test.verifier_read";
}

/// `a` is a server writing a synced and an unsynced record, `b` a client logging its lives, `c`
/// a verifier reading `a`'s log. `b` is killed and healed mid-run.
fn ending_plan(lives: Arc<Mutex<Vec<(u64, u64)>>>) -> Plan {
    let mut plan = Plan::new(topology(), 4_000);
    plan.node("a", node_main(log_server));
    plan.client(
        "b",
        node_main(move |ctx| {
            let lives = lives.clone();
            async move {
                lives.lock().unwrap().push((ctx.incarnation, ctx.clock.now_ms()));
                std::future::pending::<()>().await;
            }
        }),
    );
    plan.verifier(
        "c",
        node_main(|ctx| async move {
            let started_ms = ctx.clock.now_ms();
            loop {
                if let Some(log) = read_log(&ctx, "a").await {
                    ctx.observe(&VerifierRead { started_ms, log });
                    return;
                }
                sim::timer::sleep(Duration::from_millis(100)).await;
            }
        }),
    );
    plan.at(1_000, Fault::Kill(Target::node("b")));
    plan.at(2_000, Fault::HealAll);
    // The ending owns the world from duration_ms on: this fault must not fire.
    plan.at(4_500, Fault::Kill(Target::node("a")));
    plan.ending = Some(sim::Ending { settle_ms: 1_000, recover_ms: 3_000 });
    plan
}

#[test]
fn the_ending_loses_unsynced_writes_and_keeps_synced_ones() {
    let outcome = run(ending_plan(Arc::default()), 11);
    assert_eq!(outcome.world.disks.disk("a").read("log").unwrap(), b"synced;");
    // The run stops after the recovery period (madsim's timers may land a millisecond late).
    assert!((8_000..8_010).contains(&outcome.sim_time_ms), "{}", outcome.sim_time_ms);
    outcome.observations(|o| {
        let steps: Vec<_> = o.ending().map(|s| (s.t_ms, s.value.phase)).collect();
        use sim::EndingPhase::*;
        assert_eq!(
            steps,
            vec![(4_000, ClientsStopped), (4_000, Healed), (5_000, PowerLoss), (5_000, Recovery), (8_000, End)]
        );
        let loss = o.ending().find(|s| s.value.phase == PowerLoss).unwrap();
        assert_eq!(loss.value.lost_bytes, b"unsynced;".len() as u64);
        // The ending's heal and power loss are not schedule faults.
        assert_eq!((o.last_heal_ms(), o.last_fault_ms()), (Some(2_000), Some(2_000)));
        assert_eq!(o.recovery_started_ms(), Some(5_000));
    });
}

#[test]
fn the_ending_never_restarts_a_client_and_starts_verifiers_at_recovery() {
    let lives = Arc::new(Mutex::new(Vec::new()));
    let outcome = run(ending_plan(lives.clone()), 12);
    // Killed at 1 s and healed at 2 s as before; stopped for good at 4 s.
    let lives: Vec<u64> = lives.lock().unwrap().iter().map(|(life, _)| *life).collect();
    assert_eq!(lives, vec![1, 2]);
    outcome.observations(|o| {
        let reads: Vec<_> = o.of::<VerifierRead>().map(|r| r.value).collect();
        assert_eq!(reads.len(), 1, "{reads:?}");
        assert_eq!(reads[0].started_ms, o.recovery_started_ms().unwrap());
        // What the server recovered, not what its page cache held before the power loss.
        assert_eq!(reads[0].log, "synced;");
    });
}

#[test]
fn a_run_with_an_ending_is_deterministic() {
    let hash = |seed| run(ending_plan(Arc::default()), seed).trace_hash();
    assert_eq!(hash(13), hash(13));
}

/// A node that, in each life, records what its "log" holds, then (first life only) writes one
/// synced and one unsynced record.
fn life_logger(lives: Arc<Mutex<Vec<(u64, String)>>>) -> sim::NodeMain {
    node_main(move |ctx| {
        let lives = lives.clone();
        async move {
            let log = ctx.disk.read("log").unwrap_or_default();
            lives.lock().unwrap().push((ctx.incarnation, String::from_utf8_lossy(&log).into_owned()));
            if ctx.incarnation == 1 {
                ctx.disk.append("log", b"s;").unwrap();
                ctx.disk.sync("log").await.unwrap();
                ctx.disk.append("log", b"u;").unwrap();
            }
            std::future::pending::<()>().await;
        }
    })
}

#[test]
fn a_process_crash_keeps_the_page_cache_until_a_power_loss() {
    let lives = Arc::new(Mutex::new(Vec::new()));
    let mut plan = Plan::new(topology(), 6_000);
    plan.node("a", life_logger(lives.clone()));
    idle(&mut plan, &["b", "c"]);
    plan.at(1_000, Fault::Crash(Target::node("a")));
    plan.at(2_000, Fault::Restart(Target::node("a")));
    plan.at(3_000, Fault::Crash(Target::node("a")));
    // Power lost while the process is down: the page cache goes now.
    plan.at(3_500, Fault::Kill(Target::node("a")));
    plan.at(4_000, Fault::HealAll);
    let outcome = run(plan, 21);
    let lives = lives.lock().unwrap().clone();
    assert_eq!(lives, vec![(1, String::new()), (2, "s;u;".into()), (3, "s;".into())]);
    let kinds: Vec<&str> = outcome.observations(|o| o.faults().map(|f| f.value.fault.kind()).collect());
    assert_eq!(kinds, vec!["crash", "restart", "crash", "kill", "heal_all"]);
    assert_eq!(outcome.world.sometimes_counts().get("fault.crash.node"), Some(&2));
}

#[test]
fn a_wiped_node_comes_back_with_no_files() {
    let lives = Arc::new(Mutex::new(Vec::new()));
    let mut plan = Plan::new(topology(), 4_000);
    plan.node("a", life_logger(lives.clone()));
    idle(&mut plan, &["b", "c"]);
    plan.at(1_000, Fault::Wipe(Target::zone("z1")));
    plan.at(2_000, Fault::Restart(Target::node("a")));
    let outcome = run(plan, 22);
    assert_eq!(*lives.lock().unwrap(), vec![(1, String::new()), (2, String::new())]);
    let faults: Vec<_> = outcome.observations(|o| o.faults().map(|f| (f.value.fault.kind(), f.value.nodes)).collect());
    assert_eq!(faults[0], ("wipe", vec!["a".to_string()]));
}

#[test]
fn corrupt_damages_one_block_of_a_synced_file() {
    let mut plan = Plan::new(topology(), 3_000);
    plan.node(
        "a",
        node_main(|ctx| async move {
            ctx.disk.append("wal-1", &[1u8; 2_000]).unwrap();
            ctx.disk.sync("wal-1").await.unwrap();
            ctx.disk.append("wal-1", &[2u8; 600]).unwrap();
            ctx.disk.replace_file("meta", &[3u8; 100]).await.unwrap();
            ctx.disk.append("unsynced", &[4u8; 100]).unwrap();
            std::future::pending::<()>().await;
        }),
    );
    idle(&mut plan, &["b", "c"]);
    let corrupt = |file: Option<&str>, file_prefix: Option<&str>, block| Fault::Corrupt {
        target: Target::node("a"),
        file: file.map(String::from),
        file_prefix: file_prefix.map(String::from),
        block,
    };
    plan.at(1_000, corrupt(None, Some("wal"), None));
    plan.at(1_500, corrupt(Some("meta"), None, Some(0)));
    // Nothing synced under this name: the fault touches nothing.
    plan.at(2_000, corrupt(Some("unsynced"), None, None));
    let outcome = run(plan, 23);
    let damaged: Vec<_> =
        outcome.observations(|o| o.of::<sim::observation::DiskCorrupted>().map(|d| d.value).collect());
    assert_eq!(damaged.len(), 2, "{damaged:?}");
    assert_eq!((damaged[0].file.as_str(), damaged[1].file.as_str(), damaged[1].block), ("wal-1", "meta", 0));
    let block = damaged[0].block as usize;
    assert!(block < 4, "block {block} is beyond the synced 2000 bytes");
    let disk = outcome.world.disks.disk("a");
    let wal = disk.read("wal-1").unwrap();
    let bad: Vec<usize> = (0..wal.len()).filter(|i| wal[*i] != if *i < 2_000 { 1 } else { 2 }).collect();
    assert_eq!(bad.first(), Some(&(block * 512)), "the damage starts at the block");
    assert!(bad.iter().all(|i| i / 512 == block));
    assert_eq!(disk.read("meta").unwrap(), vec![3u8 ^ 0xff; 100]);
    assert_eq!(disk.read("unsynced").unwrap(), vec![4u8; 100]);
    let touched: Vec<usize> = outcome.observations(|o| o.faults().map(|f| f.value.nodes.len()).collect());
    assert_eq!(touched, vec![1, 1, 0]);
}

#[test]
fn injected_io_errors_fail_writes_and_fsyncs_until_healed() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut plan = Plan::new(topology(), 3_000);
    let s = seen.clone();
    plan.node(
        "a",
        node_main(move |ctx| {
            let s = s.clone();
            async move {
                loop {
                    let ok = ctx.disk.append("log", b"x").is_ok() && ctx.disk.sync("log").await.is_ok();
                    s.lock().unwrap().push((ctx.clock.now_ms(), ok));
                    sim::timer::sleep(Duration::from_millis(100)).await;
                }
            }
        }),
    );
    idle(&mut plan, &["b", "c"]);
    let always = DiskFaults { io_error: Ratio::new(1, 1), ..DiskFaults::default() };
    plan.at(1_000, Fault::Disk { target: Target::node("a"), faults: always });
    plan.at(2_000, Fault::HealAll);
    run(plan, 24);
    let seen = seen.lock().unwrap();
    let during = |from, to| seen.iter().filter(move |(t, _)| *t >= from && *t < to).map(|(_, ok)| *ok);
    assert!(during(0, 1_000).all(|ok| ok) && during(0, 1_000).count() > 3);
    assert!(during(1_050, 2_000).all(|ok| !ok) && during(1_050, 2_000).count() > 3);
    assert!(during(2_050, 3_000).all(|ok| ok) && during(2_050, 3_000).count() > 3);
}

#[test]
fn disk_faults_round_trip_through_schedule_json() {
    let faults = vec![
        Fault::Crash(Target::node("a")),
        Fault::Wipe(Target::zone("z1")),
        Fault::Corrupt { target: Target::node("a"), file: None, file_prefix: Some("wal".into()), block: None },
        Fault::Corrupt { target: Target::All, file: Some("meta".into()), file_prefix: None, block: Some(3) },
        Fault::Disk {
            target: Target::node("b"),
            faults: DiskFaults { io_error: Ratio::new(1, 10), ..DiskFaults::default() },
        },
    ];
    let json = serde_json::to_string(&faults).unwrap();
    let back: Vec<Fault> = serde_json::from_str(&json).unwrap();
    assert_eq!(back, faults);
    let kinds: Vec<&str> = faults.iter().map(Fault::kind).collect();
    assert_eq!(kinds, vec!["crash", "wipe", "corrupt", "corrupt", "disk"]);
    // A hand-written schedule entry: unset fields are drawn when the fault fires.
    let hand: Fault = serde_json::from_str(r#"{"kind":"corrupt","target":{"Node":"a"}}"#).unwrap();
    assert_eq!(hand, Fault::Corrupt { target: Target::node("a"), file: None, file_prefix: None, block: None });
    let io: Fault =
        serde_json::from_str(r#"{"kind":"disk","target":"All","faults":{"io_error":{"num":1,"den":2}}}"#).unwrap();
    assert_eq!(io.kind(), "disk");
}
