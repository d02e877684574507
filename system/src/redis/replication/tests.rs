//! Table-driven tests of the replication core: `PSYNC` answers, a replica reconnecting mid-stream,
//! a demotion racing a write, and retired links and feeds.

use super::*;

fn at(ms: u64) -> Now {
    Now { wall_ms: ms, mono_ms: ms }
}

fn set(core: &mut Replication, key: &str) -> Vec<Action> {
    core.step(at(0), Input::Command(Command::Set { key: key.into(), value: "v".into(), px: None }))
}

fn reply(actions: &[Action]) -> Option<&Reply> {
    actions.iter().find_map(|a| if let Action::Reply(r) = a { Some(r) } else { None })
}

fn connect(actions: &[Action]) -> LinkId {
    actions
        .iter()
        .find_map(|a| if let Action::Connect { link, .. } = a { Some(*link) } else { None })
        .expect("a Connect action")
}

fn to_master(actions: Vec<Action>) -> Vec<Repl> {
    actions.into_iter().filter_map(|a| if let Action::ToMaster(m) = a { Some(m) } else { None }).collect()
}

fn to_replica(actions: Vec<Action>) -> Vec<Repl> {
    actions.into_iter().filter_map(|a| if let Action::ToReplica(m) = a { Some(m) } else { None }).collect()
}

/// A master that took `writes` writes (keys `k1`..), keeping `backlog` of them.
fn master(name: &str, writes: u64, backlog: usize) -> Replication {
    let (core, _) = Replication::new(name, name, &format!("{name}-id"), 100, Role::Master);
    let mut core = core.with_backlog(backlog);
    for i in 1..=writes {
        assert_eq!(reply(&set(&mut core, &format!("k{i}"))), Some(&Reply::Ok));
    }
    core
}

/// A fresh replica of `of`, and its link.
fn replica(name: &str, of: &str) -> (Replication, LinkId) {
    let (core, out) = Replication::new(name, name, &format!("{name}-id"), 100, Role::Replica { master: of.into() });
    let link = connect(&out);
    (core, link)
}

/// Connects `link` of `r` to `m` as feed `feed` and delivers the stream until it is drained.
/// Returns the master's answer to `PSYNC`.
fn sync(r: &mut Replication, link: LinkId, m: &mut Replication, feed: LinkId) -> Repl {
    let Some(Repl::Psync { name, replid, offset }) = to_master(r.step(at(0), Input::LinkConnected { link })).pop()
    else {
        panic!("no PSYNC on connect")
    };
    let answer = to_replica(m.step(at(0), Input::Psync { feed, replica: name, replid, offset })).remove(0);
    r.step(at(0), Input::FromMaster { link, msg: answer.clone() });
    pump(r, link, m, feed);
    answer
}

fn pump(r: &mut Replication, link: LinkId, m: &mut Replication, feed: LinkId) {
    loop {
        let batch = to_replica(m.step(at(0), Input::FeedPoll { feed }));
        if batch.is_empty() {
            return;
        }
        for msg in batch {
            let out = r.step(at(0), Input::FromMaster { link, msg });
            assert!(!out.contains(&Action::Close), "the stream was applied in order: {out:?}");
        }
    }
}

/// What a `PSYNC` gets: a continuation from `next`, or a full resync then the stream from `next`.
#[derive(Debug, PartialEq)]
enum Answer {
    Continue { next: u64 },
    Full { next: u64 },
}

fn answer(m: &mut Replication, replid: Option<&str>, offset: u64) -> Answer {
    let feed = 99;
    let out = m.step(at(0), Input::Psync { feed, replica: "r".into(), replid: replid.map(String::from), offset });
    let first = m.step(at(0), Input::FeedPoll { feed });
    let next = match to_replica(first).first() {
        Some(Repl::Op { offset, .. }) => *offset,
        _ => m.offset() + 1,
    };
    match to_replica(out).remove(0) {
        Repl::Continue { .. } => Answer::Continue { next },
        Repl::FullResync { offset, .. } => {
            assert_eq!(offset, m.offset(), "a snapshot is taken at the master's offset");
            Answer::Full { next }
        }
        other => panic!("unexpected answer {other:?}"),
    }
}

#[test]
fn psync_is_answered_from_the_backlog_when_the_history_is_known_and_kept() {
    // A master at offset 20 keeping the last 10 writes (11..=20).
    let cases: [(&str, Option<&str>, u64, Answer); 6] = [
        ("same history, inside the backlog", Some("m-id"), 15, Answer::Continue { next: 16 }),
        ("same history, just before the backlog", Some("m-id"), 10, Answer::Continue { next: 11 }),
        ("same history, fully caught up", Some("m-id"), 20, Answer::Continue { next: 21 }),
        ("same history, the backlog expired", Some("m-id"), 9, Answer::Full { next: 21 }),
        ("same id but ahead of the master", Some("m-id"), 25, Answer::Full { next: 21 }),
        ("an unknown history", Some("other"), 15, Answer::Full { next: 21 }),
    ];
    for (what, replid, offset, expected) in cases {
        let mut m = master("m", 20, 10);
        assert_eq!(answer(&mut m, replid, offset), expected, "{what}");
    }
    let mut m = master("m", 20, 10);
    assert_eq!(answer(&mut m, None, 0), Answer::Full { next: 21 }, "a replica with no history");
}

#[test]
fn after_a_failover_the_old_history_continues_up_to_the_promotion_point_only() {
    // r1 and r2 replicate m's stream up to offset 15; r1 is promoted, then takes 3 writes.
    let mut m = master("m", 0, 100);
    let (mut r1, l1) = replica("r1", "m");
    sync(&mut r1, l1, &mut m, 1);
    let (mut r2, l2) = replica("r2", "m");
    sync(&mut r2, l2, &mut m, 2);
    for i in 1..=15 {
        set(&mut m, &format!("k{i}"));
    }
    pump(&mut r1, l1, &mut m, 1);
    pump(&mut r2, l2, &mut m, 2);
    assert_eq!((r1.offset(), r1.replid()), (15, "m-id"));
    r1.step(at(0), Input::Command(Command::ReplicaOf { master: None }));
    assert_ne!(r1.replid(), "m-id", "a promoted replica starts a new history");
    for k in ["a", "b", "c"] {
        set(&mut r1, k);
    }
    let cases: [(&str, Option<&str>, u64, Answer); 4] = [
        ("a replica of the old master, behind the promotion", Some("m-id"), 12, Answer::Continue { next: 13 }),
        ("a replica of the old master, at the promotion", Some("m-id"), 15, Answer::Continue { next: 16 }),
        ("the old master with writes past the promotion", Some("m-id"), 16, Answer::Full { next: 19 }),
        ("a replica of the new history", None, 0, Answer::Full { next: 19 }),
    ];
    for (what, replid, offset, expected) in cases {
        assert_eq!(answer(&mut r1, replid, offset), expected, "{what}");
    }
    // r2 follows r1 with a partial resync and adopts the new id.
    let out = r2.step(at(0), Input::Command(Command::ReplicaOf { master: Some("r1".into()) }));
    let l2 = connect(&out);
    assert!(matches!(sync(&mut r2, l2, &mut r1, 3), Repl::Continue { .. }));
    assert_eq!((r2.offset(), r2.replid()), (18, r1.replid()));
    assert_eq!(r2.keyspace(), r1.keyspace());
}

#[test]
fn a_write_racing_a_demotion_is_refused_after_it_and_discarded_if_accepted_before_it() {
    // Each case: whether the client's write reaches the old master before or after REPLICAOF.
    for write_first in [true, false] {
        let mut old = master("old", 5, 100);
        let (mut new, l) = replica("new", "old");
        sync(&mut new, l, &mut old, 1);
        new.step(at(0), Input::Command(Command::ReplicaOf { master: None }));
        let demote = Input::Command(Command::ReplicaOf { master: Some("new".into()) });
        let (acked, out) = if write_first {
            let acked = reply(&set(&mut old, "late")) == Some(&Reply::Ok);
            (acked, old.step(at(0), demote))
        } else {
            let out = old.step(at(0), demote);
            (reply(&set(&mut old, "late")) == Some(&Reply::Ok), out)
        };
        assert_eq!(acked, write_first, "a demoted master refuses writes (READONLY)");
        assert!(out.contains(&Action::PersistConfig { replica_of: Some("new".into()) }));
        let answer = sync(&mut old, connect(&out), &mut new, 2);
        // Accepted before the demotion, the write puts the old master past the promotion
        // point: it must resynchronise fully, and the write is gone.
        assert_eq!(matches!(answer, Repl::FullResync { .. }), write_first, "write first: {write_first}");
        assert_eq!(old.keyspace().get("late", 0), None);
        assert_eq!(old.keyspace(), new.keyspace());
    }
}

#[test]
fn a_replica_that_reconnects_mid_stream_resumes_and_ignores_its_old_link() {
    let mut m = master("m", 3, 100);
    let (mut r, l1) = replica("r", "m");
    sync(&mut r, l1, &mut m, 1);
    set(&mut m, "k4");
    let in_flight = to_replica(m.step(at(0), Input::FeedPoll { feed: 1 }));
    // The link drops before k4 arrives; the replica reconnects on a new link after a pause.
    let out = r.step(at(0), Input::LinkLost { link: l1, error: "reset".into() });
    let l2 = connect(&out);
    assert!(out.iter().any(|a| matches!(a, Action::Connect { delay_ms: RECONNECT_DELAY_MS, .. })));
    m.step(at(0), Input::FeedClosed { feed: 1 });
    // A message still arriving on the old link is never applied.
    let late = r.step(at(0), Input::FromMaster { link: l1, msg: in_flight[0].clone() });
    assert_eq!((late, r.offset()), (vec![Action::Close], 3));
    set(&mut m, "k5");
    assert!(matches!(sync(&mut r, l2, &mut m, 2), Repl::Continue { .. }));
    assert_eq!((r.offset(), r.keyspace()), (5, m.keyspace()));
}

#[test]
fn a_gap_in_the_stream_drops_the_link_and_a_replica_behind_the_backlog_is_cut_off() {
    let mut m = master("m", 2, 4);
    let (mut r, l) = replica("r", "m");
    sync(&mut r, l, &mut m, 1);
    let gap = Repl::Op { offset: 9, op: Op::Del { key: "x".into() } };
    let out = r.step(at(0), Input::FromMaster { link: l, msg: gap });
    assert_eq!(out[0], Action::Close);
    assert!(out.iter().any(|a| matches!(a, Action::Connect { .. })), "it reconnects: {out:?}");
    assert_eq!(r.offset(), 2, "the out-of-order write was not applied");
    // A feed that is not polled while 5 writes pass a 4-write backlog falls out of it.
    for i in 3..=7 {
        set(&mut m, &format!("k{i}"));
    }
    let out = m.step(at(0), Input::FeedPoll { feed: 1 });
    assert!(out.contains(&Action::Close), "{out:?}");
}

#[test]
fn role_changes_retire_feeds_and_links() {
    let mut m = master("m", 1, 100);
    let (mut r, l) = replica("r", "m");
    sync(&mut r, l, &mut m, 1);
    let out = m.step(at(0), Input::Command(Command::ReplicaOf { master: Some("r".into()) }));
    assert!(out.contains(&Action::RoleChanged { replica_of: Some("r".into()), offset: 1 }));
    assert_eq!(m.step(at(0), Input::FeedPoll { feed: 1 }), vec![Action::Close]);
    assert_eq!(m.step(at(0), Input::Ack { feed: 1, offset: 1 }), vec![Action::Close]);
    r.step(at(0), Input::Command(Command::ReplicaOf { master: None }));
    assert_eq!(r.step(at(0), Input::FromMaster { link: l, msg: Repl::Ping }), vec![Action::Close]);
    // Asking for the role a node already has changes nothing but still rewrites the config.
    let again = r.step(at(0), Input::Command(Command::ReplicaOf { master: None }));
    assert_eq!(again, vec![Action::PersistConfig { replica_of: None }]);
    let me = r.step(at(0), Input::Command(Command::ReplicaOf { master: Some("r".into()) }));
    assert!(matches!(reply(&me), Some(Reply::Err { .. })));
}

#[test]
fn replicas_acknowledge_about_once_a_second_and_the_master_reports_it() {
    let mut m = master("m", 0, 100);
    let (mut r, l) = replica("r", "m");
    sync(&mut r, l, &mut m, 1);
    let mut acks = Vec::new();
    for t in (0..=2_500).step_by(100) {
        set(&mut m, &format!("k{t}"));
        for msg in to_replica(m.step(at(t), Input::FeedPoll { feed: 1 })) {
            acks.extend(to_master(r.step(at(t), Input::FromMaster { link: l, msg })));
        }
    }
    let offsets: Vec<u64> = acks.iter().map(|a| if let Repl::Ack { offset } = a { *offset } else { 0 }).collect();
    assert_eq!(offsets, vec![11, 21], "one ack per second of stream");
    m.step(at(0), Input::Ack { feed: 1, offset: 21 });
    let Reply::Role { info } = reply(&m.step(at(0), Input::Command(Command::Role))).cloned().expect("ROLE") else {
        panic!("not a ROLE answer")
    };
    assert_eq!(info.role, ReplRole::Master { replicas: vec![("r".into(), 21)] });
}

#[test]
fn min_replicas_to_write_refuses_writes_once_the_replicas_acks_are_stale() {
    let (m, _) = Replication::new("m", "m", "m-id", 100, Role::Master);
    let mut m = m.with_min_replicas(1, 2_000);
    let write = |m: &mut Replication, ms: u64| {
        let out = m.step(at(ms), Input::Command(Command::Set { key: "k".into(), value: "v".into(), px: None }));
        reply(&out).cloned()
    };
    let refused = |r: Option<Reply>| matches!(r, Some(Reply::Err { message }) if message.starts_with("NOREPLICAS"));
    assert!(refused(write(&mut m, 0)), "no replica at all");
    m.step(at(100), Input::Psync { feed: 1, replica: "r".into(), replid: None, offset: 0 });
    assert_eq!(write(&mut m, 200), Some(Reply::Ok), "a replica that just synchronised is good");
    m.step(at(1_500), Input::Ack { feed: 1, offset: 1 });
    assert_eq!(write(&mut m, 3_500), Some(Reply::Ok), "acknowledged 2 s ago: within the lag");
    assert!(refused(write(&mut m, 3_501)), "lagging more than min-replicas-max-lag");
    m.step(at(4_000), Input::Ack { feed: 1, offset: 2 });
    assert_eq!(write(&mut m, 4_000), Some(Reply::Ok));
    m.step(at(4_100), Input::FeedClosed { feed: 1 });
    assert!(refused(write(&mut m, 4_200)), "the replica is gone");
    // Reads are still served.
    let out = m.step(at(4_300), Input::Command(Command::Get { key: "k".into() }));
    assert_eq!(reply(&out), Some(&Reply::Value { value: Some("v".into()) }));
}
