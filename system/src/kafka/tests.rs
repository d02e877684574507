//! Table-driven tests of the sans-IO pieces: log, idempotence, controller decisions, replica
//! replication and truncation, the coordinator's group protocol.

use std::collections::BTreeMap;

use super::config::{Acks, ControllerSettings, GroupSettings, TopicSpec};
use super::controller::{AlterPartition, BrokerHeartbeat, ControllerCore};
use super::coordinator::{CoordOut, Coordinator};
use super::idempotence::{ProducerTable, SeqCheck};
use super::log::{decode, LogIo, PartitionLog};
use super::metadata::{MetadataImage, MetadataRecord, PartitionState};
use super::partition::{Replica, Served, Transition};
use super::protocol::{ErrorCode, FetchRequest, ProduceRequest, Request, Response};
use super::topic::{Record, TopicPartition};

fn tp() -> TopicPartition {
    TopicPartition::new("edits", 0)
}

fn rec(offset: u64, epoch: u64, pid: u64, seq: u64) -> Record {
    Record { offset, leader_epoch: epoch, producer_id: pid, seq, value: format!("v{offset}"), batch_end: true }
}

fn bytes_of(log: &mut PartitionLog) -> Vec<u8> {
    let mut out = Vec::new();
    for io in log.take_io() {
        match io {
            super::log::LogIo::Append { bytes, .. } => out.extend(bytes),
            super::log::LogIo::Truncate { len, .. } => out.truncate(len as usize),
        }
    }
    out
}

#[test]
fn log_recovers_its_records_and_cuts_a_torn_tail() {
    let mut log = PartitionLog::empty("edits-0.log");
    assert!(log.append(vec![rec(0, 1, 7, 0), rec(1, 1, 7, 1), rec(2, 3, 7, 2)]));
    assert!(!log.append(vec![rec(5, 3, 7, 3)]), "offsets must continue the log");
    assert!(!log.append(vec![rec(3, 2, 7, 3)]), "epochs never go back");
    let mut bytes = bytes_of(&mut log);
    let whole = bytes.len();
    bytes.extend_from_slice(&[9, 0, 0, 0, 1, 2]);
    let (again, recovered) = PartitionLog::recover("edits-0.log", &bytes);
    assert_eq!(again.records(), log.records());
    assert_eq!(recovered.cut_bytes, 6);
    assert_eq!(decode(&bytes[..whole]).0.len(), 3);
    assert_eq!(again.end_offset_for_epoch(1), Some((1, 2)));
    assert_eq!(again.end_offset_for_epoch(2), Some((1, 2)));
    assert_eq!(again.end_offset_for_epoch(3), Some((3, 3)));
    assert_eq!(again.end_offset_for_epoch(0), None);
}

#[test]
fn truncation_drops_records_epochs_and_sequences() {
    let mut log = PartitionLog::empty("edits-0.log");
    log.append(vec![rec(0, 1, 7, 0), rec(1, 2, 7, 1), rec(2, 2, 7, 2)]);
    log.truncate_to(1);
    assert_eq!(log.end_offset(), 1);
    assert_eq!(log.latest_epoch(), Some(1));
    assert_eq!(log.producers().last_seq(7), Some(0));
    let bytes = bytes_of(&mut log);
    assert_eq!(decode(&bytes).0, vec![rec(0, 1, 7, 0)]);
}

#[test]
fn sequence_checks() {
    let t = ProducerTable::rebuild(&[rec(0, 1, 7, 0), rec(1, 1, 7, 1), rec(2, 1, 7, 2)]);
    let cases = [
        (7, 3, 2, SeqCheck::Append),
        (7, 1, 2, SeqCheck::Duplicate { base_offset: 1 }),
        (7, 5, 1, SeqCheck::OutOfOrder { expected: 3 }),
        (7, 2, 3, SeqCheck::OutOfOrder { expected: 3 }),
        (8, 0, 1, SeqCheck::Append),
        (8, 4, 1, SeqCheck::OutOfOrder { expected: 0 }),
    ];
    for (pid, base, count, want) in cases {
        assert_eq!(t.check(pid, base, count), want, "pid {pid} base {base} count {count}");
    }
}

fn state(leader: Option<u32>, epoch: u64, isr: &[u32]) -> PartitionState {
    PartitionState { replicas: vec![1, 2, 3], leader, leader_epoch: epoch, partition_epoch: epoch, isr: isr.to_vec() }
}

fn produce(pid: u64, seq: u64, n: usize) -> ProduceRequest {
    ProduceRequest {
        tp: tp(),
        acks: Acks::All,
        timeout_ms: 1000,
        producer_id: pid,
        base_seq: seq,
        values: (0..n).map(|i| format!("p{pid}-{}", seq + i as u64)).collect(),
    }
}

fn follower_fetch(r: &Replica, broker: u32, offset: u64) -> FetchRequest {
    let _ = r;
    FetchRequest {
        tp: tp(),
        offset,
        max_records: 100,
        max_wait_ms: 0,
        current_leader_epoch: None,
        replica: Some(super::protocol::ReplicaFetch { broker, incarnation: 1, last_fetched_epoch: None }),
    }
}

#[test]
fn high_watermark_waits_for_every_isr_member_and_min_isr_is_enforced() {
    let mut l = Replica::new(tp(), 1, PartitionLog::empty("edits-0.log"), 0);
    assert_eq!(l.apply_state(0, &state(Some(1), 1, &[1, 2, 3])), Transition::BecameLeader);
    let a = l.append_produce(&produce(7, 0, 2), 2).unwrap();
    assert_eq!((a.base_offset, a.last_offset, a.duplicate), (0, 1, false));
    assert_eq!(l.high_watermark(), 0);
    let mut f2 = follower_fetch(&l, 2, 0);
    let (served, _) = l.serve_fetch(10, &f2, true, true);
    assert!(matches!(served, Served::Ready(ref r) if r.records.len() == 2));
    f2.offset = 2;
    f2.replica.as_mut().unwrap().last_fetched_epoch = Some(1);
    l.serve_fetch(20, &f2, true, true);
    assert_eq!(l.high_watermark(), 0, "broker 3 has not fetched in this epoch");
    let mut f3 = follower_fetch(&l, 3, 2);
    f3.replica.as_mut().unwrap().last_fetched_epoch = Some(1);
    let (_, moved) = l.serve_fetch(30, &f3, true, true);
    assert!(moved);
    assert_eq!(l.high_watermark(), 2);
    let dup = l.append_produce(&produce(7, 0, 2), 2).unwrap();
    assert!(dup.duplicate);
    assert_eq!(dup.base_offset, 0);
    l.apply_state(40, &PartitionState { partition_epoch: 2, ..state(Some(1), 1, &[1]) });
    assert_eq!(l.append_produce(&produce(7, 2, 1), 2), Err(ErrorCode::NotEnoughReplicas));
    assert!(l.append_produce(&produce(7, 2, 1), 0).is_ok(), "acks=1 ignores min.insync.replicas");
}

#[test]
fn deposed_leader_truncates_what_the_new_leader_never_had() {
    // Broker 1 led epoch 1 and appended offsets 0..3; only 0..2 reached broker 2, which now
    // leads epoch 2 and appended offset 2 of its own.
    let mut old = Replica::new(tp(), 1, PartitionLog::empty("a.log"), 0);
    old.apply_state(0, &state(Some(1), 1, &[1, 2]));
    old.append_produce(&produce(7, 0, 3), 0).unwrap();
    let mut new = Replica::new(tp(), 2, PartitionLog::empty("b.log"), 0);
    new.apply_state(0, &state(Some(1), 1, &[1, 2]));
    new.log.append(old.log.read(0, 2, 10).to_vec());
    assert_eq!(new.apply_state(5, &state(Some(2), 2, &[2])), Transition::BecameLeader);
    new.append_produce(&produce(8, 0, 1), 0).unwrap();
    assert_eq!(old.apply_state(6, &state(Some(2), 2, &[2])), Transition::BecameFollower { was_leader: true });
    let (leader, req) = old.fetch_request(1, 100, 0).unwrap();
    assert_eq!((leader, req.offset), (2, 3));
    let (served, _) = new.serve_fetch(7, &req, true, true);
    let Served::Ready(resp) = served else { panic!("expected a response, got {served:?}") };
    assert_eq!(resp.diverging.map(|d| (d.epoch, d.end_offset)), Some((Some(1), 2)));
    let followed = old.apply_fetch(&req, resp).unwrap();
    assert_eq!(followed.truncated, 1);
    let (_, req) = old.fetch_request(1, 100, 0).unwrap();
    let (Served::Ready(resp), _) = new.serve_fetch(8, &req, true, true) else { panic!() };
    old.apply_fetch(&req, resp).unwrap();
    assert_eq!(old.log.records(), new.log.records());
}

#[test]
fn lagging_follower_leaves_the_isr_and_returns_when_caught_up() {
    let mut l = Replica::new(tp(), 1, PartitionLog::empty("a.log"), 0);
    l.apply_state(0, &state(Some(1), 1, &[1, 2, 3]));
    let mut f = follower_fetch(&l, 2, 0);
    l.serve_fetch(100, &f, true, true);
    let eligible = |_, _| true;
    assert_eq!(l.isr_change(1000, 3000, 1000, eligible), None);
    l.serve_fetch(3400, &f, true, true);
    let req = l.isr_change(3500, 3000, 1000, eligible).expect("broker 3 never fetched");
    assert_eq!(req.isr, vec![1, 2]);
    assert_eq!(l.isr_change(3600, 3000, 1000, eligible), None, "one request at a time");
    l.apply_state(3700, &PartitionState { partition_epoch: 2, ..state(Some(1), 1, &[1, 2]) });
    f.replica.as_mut().unwrap().broker = 3;
    l.serve_fetch(3800, &f, true, true);
    let req = l.isr_change(3900, 3000, 1000, eligible).expect("broker 3 caught up");
    assert_eq!(req.isr, vec![1, 2, 3]);
    let fenced = |b, _| b != 3;
    let retry = l.isr_change(5000, 3000, 1000, fenced).expect("no answer yet: the same request again");
    assert_eq!(retry, req);
    l.alter_rejected(&retry);
    assert_eq!(l.isr_change(5100, 3000, 1000, fenced), None, "a fenced broker is never added");
}

/// Seed 1281: a follower cut off from the leader left the ISR by lag; with `acks=all`
/// produces refused, the high watermark stopped at the follower's last end offset, and the
/// leader re-added it on that stale state, with no fetch since it left, then acknowledged
/// under an ISR the controller had shrunk again. Kafka judges an expansion on a fetch.
#[test]
fn a_cut_off_follower_is_not_re_added_without_a_fetch() {
    let mut l = Replica::new(tp(), 1, PartitionLog::empty("a.log"), 0);
    l.apply_state(0, &state(Some(1), 1, &[1, 2]));
    let f = follower_fetch(&l, 2, 0);
    l.serve_fetch(100, &f, true, true);
    let eligible = |_, _| true;
    let req = l.isr_change(3500, 3000, 1000, eligible).expect("broker 2 lags");
    assert_eq!(req.isr, vec![1]);
    l.apply_state(3600, &PartitionState { partition_epoch: 2, ..state(Some(1), 1, &[1]) });
    assert_eq!(l.isr_change(3700, 3000, 1000, eligible), None, "no fetch since it left");
    assert_eq!(l.isr_change(9700, 3000, 1000, eligible), None, "still no fetch");
    l.serve_fetch(9800, &f, true, true);
    let req = l.isr_change(9900, 3000, 1000, eligible).expect("broker 2 fetched and is caught up");
    assert_eq!(req.isr, vec![1, 2]);
}

/// Seed 1221 (with a first fix for 1281): a leader sent an expansion to `[1, 2, 3]`, the
/// controller committed it, and the leader was cut off before it heard. Broker 3 stopped
/// fetching, so the leader, recomputing, wanted `[1, 2]` again, dropped the expansion and
/// advanced its high watermark on broker 2 alone, while the controller could elect broker 3.
/// An expansion in flight stays in the maximal ISR until the controller answers.
#[test]
fn an_expansion_in_flight_is_not_forgotten_without_an_answer() {
    let mut l = Replica::new(tp(), 1, PartitionLog::empty("a.log"), 0);
    l.apply_state(0, &state(Some(1), 1, &[1, 2]));
    let mut f2 = follower_fetch(&l, 2, 0);
    let f3 = follower_fetch(&l, 3, 0);
    l.serve_fetch(100, &f2, true, true);
    l.serve_fetch(100, &f3, true, true);
    let eligible = |_, _| true;
    let req = l.isr_change(200, 3000, 1000, eligible).expect("broker 3 caught up");
    assert_eq!(req.isr, vec![1, 2, 3]);
    l.append_produce(&produce(7, 0, 2), 2).unwrap();
    f2.offset = 2;
    f2.replica.as_mut().unwrap().last_fetched_epoch = Some(1);
    for now in [1_500, 3_000, 5_000, 8_000] {
        l.serve_fetch(now, &f2, true, true);
        let again = l.isr_change(now, 3000, 1000, eligible).expect("no answer: resent as it was");
        assert_eq!(again, req);
        assert_eq!(l.high_watermark(), 0, "broker 3 may be in the committed ISR: the high watermark waits for it");
    }
    l.apply_state(8_100, &PartitionState { partition_epoch: 2, ..state(Some(1), 1, &[1, 2, 3]) });
    let shrink = l.isr_change(8_200, 3000, 1000, eligible).expect("broker 3 lags");
    assert_eq!(shrink.isr, vec![1, 2]);
    l.apply_state(8_300, &PartitionState { partition_epoch: 3, ..state(Some(1), 1, &[1, 2]) });
    l.serve_fetch(8_400, &f2, true, true);
    assert_eq!(l.high_watermark(), 2);
}

fn controller(unclean: bool) -> ControllerCore {
    let mut spec = TopicSpec::new("edits", 1);
    spec.unclean_leader_election = unclean;
    let mut c = ControllerCore::new(ControllerSettings { broker_session_timeout_ms: 2000, topics: vec![spec] });
    c.activate(0);
    c
}

fn hb(broker: u32, incarnation: u64, offset: u64) -> BrokerHeartbeat {
    BrokerHeartbeat { broker, node: format!("kafka-{broker}"), incarnation, metadata_offset: offset }
}

/// Runs decide/apply rounds at `now`, as the shell would with instant commits.
fn settle(c: &mut ControllerCore, now: u64, index: &mut u64) {
    while let Some((token, records)) = c.decide(now) {
        *index += 1;
        c.apply(*index, &records);
        c.proposal_done(token);
    }
}

fn cluster(unclean: bool) -> (ControllerCore, u64) {
    let mut c = controller(unclean);
    let mut index = 0;
    for b in 1..=3 {
        assert!(c.heartbeat(0, &hb(b, 1, 0)));
    }
    settle(&mut c, 0, &mut index);
    for b in 1..=3 {
        c.heartbeat(100, &hb(b, 1, index));
    }
    settle(&mut c, 100, &mut index);
    (c, index)
}

#[test]
fn controller_registers_creates_topics_and_elects_the_preferred_leader() {
    let (c, _) = cluster(false);
    let p = &c.image().partitions[&tp()];
    assert_eq!(p.leader, Some(p.replicas[0]));
    assert_eq!(p.isr.len(), 3);
    assert!(c.image().brokers.values().all(|r| !r.fenced));
}

#[test]
fn controller_fences_a_silent_leader_and_elects_from_the_isr() {
    let (mut c, mut index) = cluster(false);
    let old = c.image().partitions[&tp()].leader.unwrap();
    for b in (1..=3).filter(|b| *b != old) {
        c.heartbeat(2500, &hb(b, 1, index));
    }
    settle(&mut c, 2500, &mut index);
    let p = c.image().partitions[&tp()].clone();
    assert!(c.image().brokers[&old].fenced);
    assert!(p.leader.is_some() && p.leader != Some(old));
    assert!(!p.isr.contains(&old));
    assert_eq!(p.leader_epoch, 2);
    // A restarted life of the old leader registers fenced and only then is unfenced.
    c.heartbeat(2600, &hb(old, 2, index));
    settle(&mut c, 2600, &mut index);
    assert!(c.image().brokers[&old].fenced);
    assert_eq!(c.image().brokers[&old].incarnation, 2);
    c.heartbeat(2700, &hb(old, 2, index));
    settle(&mut c, 2700, &mut index);
    assert!(!c.image().brokers[&old].fenced);
    assert!(!c.heartbeat(2800, &hb(old, 1, index)), "an older life is refused");
}

#[test]
fn last_isr_member_keeps_the_partition_unless_unclean_election_is_enabled() {
    for unclean in [false, true] {
        let (mut c, mut index) = cluster(unclean);
        let p = c.image().partitions[&tp()].clone();
        let leader = p.leader.unwrap();
        let alter = AlterPartition {
            broker: leader,
            incarnation: 1,
            tp: tp(),
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            isr: vec![leader],
        };
        c.alter_partition(alter).unwrap();
        settle(&mut c, 200, &mut index);
        assert_eq!(c.image().partitions[&tp()].isr, vec![leader]);
        for b in (1..=3).filter(|b| *b != leader) {
            c.heartbeat(2500, &hb(b, 1, index));
        }
        settle(&mut c, 2500, &mut index);
        let p = &c.image().partitions[&tp()];
        if unclean {
            assert!(p.leader.is_some() && p.leader != Some(leader), "unclean: {p:?}");
        } else {
            assert_eq!((p.leader, p.isr.clone()), (None, vec![leader]));
        }
    }
}

#[test]
fn stale_partition_changes_are_skipped() {
    let mut img = MetadataImage::default();
    img.apply(&MetadataRecord::CreateTopic { spec: TopicSpec::new("edits", 1), assignment: vec![vec![1, 2, 3]] });
    let change = |e, l| MetadataRecord::PartitionChange {
        tp: tp(),
        expected_partition_epoch: e,
        leader: Some(l),
        isr: vec![1, 2, 3],
    };
    assert!(img.apply(&change(0, 1)).is_some());
    assert!(img.apply(&change(0, 2)).is_none(), "computed against an older partition epoch");
    assert_eq!(img.partitions[&tp()].leader, Some(1));
}

fn committed(offset: u64) -> super::protocol::CommittedOffset {
    super::protocol::CommittedOffset { offset, leader_epoch: Some(1) }
}

fn join(c: &mut Coordinator, now: u64, id: u64, member: Option<&str>, counts: &BTreeMap<String, u32>) {
    let req = Request::JoinGroup {
        group: "g".into(),
        member_id: member.map(String::from),
        client_id: "c".into(),
        topics: vec!["edits".into()],
    };
    c.handle(now, id, req, counts);
}

/// Commits what the coordinator appended, as the broker would once the high watermark passes.
fn commit_appends(c: &mut Coordinator) -> Vec<(u64, Response)> {
    commit_appends_into(c, &mut Vec::new())
}

/// [`commit_appends`], also keeping the committed records (the offsets partition's log).
fn commit_appends_into(c: &mut Coordinator, log: &mut Vec<Record>) -> Vec<(u64, Response)> {
    let mut replies = Vec::new();
    for out in c.take_out() {
        match out {
            CoordOut::Reply(id, r) => replies.push((id, r)),
            CoordOut::Append { records, on_commit, .. } => {
                let recs: Vec<Record> = records
                    .iter()
                    .map(|r| Record {
                        offset: log.len() as u64,
                        leader_epoch: 0,
                        producer_id: 0,
                        seq: 0,
                        value: serde_json::to_string(r).unwrap(),
                        batch_end: true,
                    })
                    .collect();
                c.apply_committed(&recs);
                log.extend(recs);
                replies.extend(on_commit);
            }
            CoordOut::LateCommitFenced { .. } => {}
        }
    }
    replies
}

#[test]
fn group_rebalances_on_join_and_session_expiry_and_keeps_offsets() {
    let counts: BTreeMap<String, u32> = [("edits".to_string(), 3)].into();
    let mut c = Coordinator::new(GroupSettings::default(), "b1.1".into());
    c.start_loading(0);
    assert!(c.maybe_finish_loading(0, 0));
    join(&mut c, 0, 1, None, &counts);
    join(&mut c, 10, 2, None, &counts);
    assert!(commit_appends(&mut c).is_empty(), "the initial delay holds the first rebalance");
    c.tick(400, &counts);
    let replies = commit_appends(&mut c);
    let members: Vec<String> = replies
        .iter()
        .map(|(_, r)| match r {
            Response::Joined { generation: 1, member_id, .. } => member_id.clone(),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(members.len(), 2);
    c.handle(410, 3, Request::SyncGroup { group: "g".into(), generation: 1, member_id: members[0].clone() }, &counts);
    let Some((_, Response::Synced { assignment })) = commit_appends(&mut c).pop() else { panic!() };
    assert_eq!(assignment.len(), 2, "range assignor: 3 partitions over 2 members");
    let commit = Request::OffsetCommit {
        group: "g".into(),
        generation: 1,
        member_id: members[0].clone(),
        commit_seq: 1,
        offsets: vec![(tp(), committed(42))],
    };
    c.handle(420, 4, commit, &counts);
    assert_eq!(commit_appends(&mut c), vec![(4, Response::Done)]);
    // Only the first member heartbeats; the second's session expires.
    c.handle(4000, 5, Request::Heartbeat { group: "g".into(), generation: 1, member_id: members[0].clone() }, &counts);
    commit_appends(&mut c);
    c.tick(5000, &counts);
    c.handle(5010, 6, Request::Heartbeat { group: "g".into(), generation: 1, member_id: members[0].clone() }, &counts);
    assert_eq!(commit_appends(&mut c), vec![(6, Response::error(ErrorCode::RebalanceInProgress))]);
    let stale = Request::OffsetCommit {
        group: "g".into(),
        generation: 0,
        member_id: members[0].clone(),
        commit_seq: 2,
        offsets: vec![(tp(), committed(1))],
    };
    c.handle(5020, 7, stale, &counts);
    assert_eq!(commit_appends(&mut c), vec![(7, Response::error(ErrorCode::IllegalGeneration))]);
    join(&mut c, 5030, 8, Some(&members[0]), &counts);
    let replies = commit_appends(&mut c);
    assert!(matches!(replies.as_slice(), [(8, Response::Joined { generation: 2, .. })]), "{replies:?}");
    c.handle(5040, 9, Request::OffsetFetch { group: "g".into(), partitions: vec![tp()] }, &counts);
    assert_eq!(commit_appends(&mut c), vec![(9, Response::Offsets(vec![(tp(), Some(committed(42)))]))]);
}

/// A stable one-member group of generation 1 on a fresh coordinator; returns its member id.
fn stable_group(c: &mut Coordinator, log: &mut Vec<Record>, counts: &BTreeMap<String, u32>) -> String {
    c.start_loading(0);
    assert!(c.maybe_finish_loading(0, 0));
    join(c, 0, 1, None, counts);
    c.tick(400, counts);
    let replies = commit_appends_into(c, log);
    let [(1, Response::Joined { generation: 1, member_id, .. })] = replies.as_slice() else { panic!("{replies:?}") };
    member_id.clone()
}

fn offset_commit(member: &str, commit_seq: u64, offset: u64) -> Request {
    Request::OffsetCommit {
        group: "g".into(),
        generation: 1,
        member_id: member.into(),
        commit_seq,
        offsets: vec![(tp(), committed(offset))],
    }
}

fn fetched_offset(c: &mut Coordinator, now: u64, id: u64, counts: &BTreeMap<String, u32>) -> Option<u64> {
    let fetch = Request::OffsetFetch { group: "g".into(), partitions: vec![tp()] };
    c.handle(now, id, fetch, counts);
    match commit_appends(c).as_slice() {
        [(_, Response::Offsets(o))] => o[0].1.map(|c| c.offset),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_late_commit_older_than_an_accepted_one_is_rejected_and_a_fresh_retry_is_not() {
    let counts: BTreeMap<String, u32> = [("edits".to_string(), 1)].into();
    let mut c = Coordinator::new(GroupSettings::default(), "b1.1".into());
    let member = stable_group(&mut c, &mut Vec::new(), &counts);
    // Sequence 1 (offset 520) timed out at the client, which then committed 657 as sequence 2;
    // the network delivers sequence 1 afterwards, in the same generation.
    c.handle(500, 2, offset_commit(&member, 2, 657), &counts);
    assert_eq!(commit_appends(&mut c), vec![(2, Response::Done)]);
    c.handle(600, 3, offset_commit(&member, 1, 520), &counts);
    let fenced =
        CoordOut::LateCommitFenced { group: "g".into(), member_id: member.clone(), commit_seq: 1, last_seq: 2 };
    assert_eq!(
        c.take_out(),
        vec![fenced, CoordOut::Reply(3, Response::error(ErrorCode::StaleCommitSequence))],
        "nothing is appended for a late commit"
    );
    assert_eq!(fetched_offset(&mut c, 610, 4, &counts), Some(657));
    // The client's next commit, a retry of the same offsets included, takes a new sequence.
    c.handle(700, 5, offset_commit(&member, 3, 657), &counts);
    c.handle(710, 6, offset_commit(&member, 4, 700), &counts);
    assert_eq!(commit_appends(&mut c), vec![(5, Response::Done), (6, Response::Done)]);
    assert_eq!(fetched_offset(&mut c, 720, 7, &counts), Some(700));
}

#[test]
fn a_late_commit_is_rejected_by_a_coordinator_that_loaded_the_group_from_the_log() {
    // The diagnosed run: the commit of 520 was sent to a coordinator that was then isolated;
    // another coordinator accepted 657; the first became coordinator again (generation 1
    // still live) and only then received the bytes of the old request.
    let counts: BTreeMap<String, u32> = [("edits".to_string(), 1)].into();
    let mut log = Vec::new();
    let mut first = Coordinator::new(GroupSettings::default(), "b1.1".into());
    let member = stable_group(&mut first, &mut log, &counts);
    first.resign();
    let mut second = Coordinator::new(GroupSettings::default(), "b2.1".into());
    second.start_loading(log.len() as u64);
    second.apply_committed(&log);
    assert!(second.maybe_finish_loading(1_000, log.len() as u64));
    second.handle(1_100, 2, offset_commit(&member, 6, 657), &counts);
    assert_eq!(commit_appends_into(&mut second, &mut log), vec![(2, Response::Done)]);
    second.resign();
    first.start_loading(log.len() as u64);
    first.apply_committed(&log);
    assert!(first.maybe_finish_loading(17_000, log.len() as u64));
    first.handle(17_100, 3, offset_commit(&member, 5, 520), &counts);
    assert_eq!(commit_appends(&mut first), vec![(3, Response::error(ErrorCode::StaleCommitSequence))]);
    assert_eq!(fetched_offset(&mut first, 17_200, 4, &counts), Some(657));
}

#[test]
fn without_the_fence_a_late_commit_overwrites_a_newer_one_as_in_kafka() {
    let counts: BTreeMap<String, u32> = [("edits".to_string(), 1)].into();
    let settings = GroupSettings { fence_late_commits: false, ..GroupSettings::default() };
    let mut c = Coordinator::new(settings, "b1.1".into());
    let member = stable_group(&mut c, &mut Vec::new(), &counts);
    c.handle(500, 2, offset_commit(&member, 2, 657), &counts);
    c.handle(600, 3, offset_commit(&member, 1, 520), &counts);
    assert_eq!(commit_appends(&mut c), vec![(2, Response::Done), (3, Response::Done)]);
    assert_eq!(fetched_offset(&mut c, 610, 4, &counts), Some(520), "the group's offset went back");
}

#[test]
fn commit_sequences_of_members_that_left_are_forgotten_with_their_generation() {
    let counts: BTreeMap<String, u32> = [("edits".to_string(), 1)].into();
    let mut c = Coordinator::new(GroupSettings::default(), "b1.1".into());
    let member = stable_group(&mut c, &mut Vec::new(), &counts);
    c.handle(500, 2, offset_commit(&member, 9, 10), &counts);
    commit_appends(&mut c);
    assert_eq!(c.last_commit_seq("g", &member), Some(9));
    c.handle(600, 3, Request::LeaveGroup { group: "g".into(), member_id: member.clone() }, &counts);
    commit_appends(&mut c);
    c.tick(700, &counts);
    commit_appends(&mut c);
    assert_eq!(c.last_commit_seq("g", &member), None, "dropped with the generation record");
    // The member is gone: its late commit fails the member check, whatever its sequence.
    c.handle(800, 4, offset_commit(&member, 10, 5), &counts);
    assert_eq!(commit_appends(&mut c), vec![(4, Response::error(ErrorCode::UnknownMemberId))]);
    assert_eq!(fetched_offset(&mut c, 810, 5, &counts), Some(10));
}

#[test]
fn images_and_metadata_survive_the_wire() {
    let (c, _) = cluster(false);
    let json = serde_json::to_string(c.image()).unwrap();
    let back: MetadataImage = serde_json::from_str(&json).unwrap();
    assert_eq!(&back, c.image());
    assert_eq!(TopicPartition::parse("__consumer_offsets-0"), Some(TopicPartition::new("__consumer_offsets", 0)));
    assert_eq!(TopicPartition::parse("-3"), None);
    assert!(serde_json::from_str::<TopicPartition>("\"edits\"").is_err());
}

#[test]
fn a_leader_that_appended_nothing_follows_a_successor_with_older_records() {
    // Broker 1 led epoch 2 without appending (its log: offsets 0..2 of epoch 1). Broker 2
    // never fetched from it, kept offsets 0..4 of epoch 1, and leads epoch 3.
    let mut x = Replica::new(tp(), 1, PartitionLog::empty("a.log"), 0);
    x.apply_state(0, &state(Some(2), 1, &[1, 2]));
    x.log.append(vec![rec(0, 1, 7, 0), rec(1, 1, 7, 1)]);
    assert_eq!(x.apply_state(1, &state(Some(1), 2, &[1, 2])), Transition::BecameLeader);
    let mut y = Replica::new(tp(), 2, PartitionLog::empty("b.log"), 0);
    y.apply_state(0, &state(Some(2), 1, &[1, 2]));
    y.log.append((0..4).map(|o| rec(o, 1, 7, o)).collect());
    y.apply_state(2, &state(Some(2), 3, &[2]));
    x.apply_state(3, &state(Some(2), 3, &[2]));
    for round in 0..3 {
        let (_, req) = x.fetch_request(1, 100, 0).unwrap();
        let (Served::Ready(resp), _) = y.serve_fetch(4, &req, true, true) else { panic!("round {round}") };
        x.apply_fetch(&req, resp).expect("applies");
    }
    assert_eq!(x.log.records(), y.log.records());
}

mod broker_core {
    use super::*;
    use crate::kafka::broker::{Action, BrokerCore, Input};
    use crate::kafka::config::BrokerSettings;
    use crate::kafka::metadata::BrokerRegistration;

    fn image(leader: u32, epoch: u64, isr: &[u32]) -> MetadataImage {
        let mut img = MetadataImage { offset: epoch, ..MetadataImage::default() };
        for b in 1..=3 {
            let reg = BrokerRegistration { node: format!("kafka-{b}"), incarnation: 1, fenced: false, broker_epoch: 1 };
            img.brokers.insert(b, reg);
        }
        img.topics.insert("edits".into(), TopicSpec::new("edits", 1));
        img.partitions.insert(tp(), PartitionState { partition_epoch: epoch, ..state(Some(leader), epoch, isr) });
        img
    }

    fn cores() -> Vec<BrokerCore> {
        (1..=3).map(|b| BrokerCore::new(BrokerSettings::new("kafka", b), 1, Vec::new(), &BTreeMap::new())).collect()
    }

    fn replies(actions: &[Action]) -> Vec<(u64, Response)> {
        actions
            .iter()
            .filter_map(|a| if let Action::Reply { id, resp } = a { Some((*id, resp.clone())) } else { None })
            .collect()
    }

    /// One replication round: each follower asks for its plan, the leader serves it.
    fn replicate(cores: &mut [BrokerCore], leader: usize, now: u64) -> Vec<(u64, Response)> {
        let mut leader_replies = Vec::new();
        for f in (0..cores.len()).filter(|f| *f != leader) {
            let plan = cores[f].step(now, Input::NextFetch { id: 1, tp: tp() });
            let Some(Action::FetchPlan { plan: Some((_, mut req)), .. }) = plan.into_iter().next() else {
                continue;
            };
            req.max_wait_ms = 0;
            let out = cores[leader].step(now, Input::Request { id: 100 + f as u64, req: Request::Fetch(req.clone()) });
            let mut rs = replies(&out);
            let pos = rs.iter().position(|(id, _)| *id == 100 + f as u64);
            let resp = pos.map(|p| rs.remove(p).1);
            leader_replies.extend(rs);
            cores[f].step(now, Input::Fetched { req, resp });
        }
        leader_replies
    }

    #[test]
    fn acks_all_answers_once_every_isr_member_has_the_batch() {
        let mut cores = cores();
        for c in cores.iter_mut() {
            c.step(0, Input::Image(image(1, 1, &[1, 2, 3])));
        }
        let out = cores[0].step(10, Input::Request { id: 7, req: Request::Produce(produce(5, 0, 3)) });
        assert!(replies(&out).is_empty(), "acks=all waits for the ISR");
        assert!(replicate(&mut cores, 0, 20).is_empty(), "followers have it; the leader learns on their next fetch");
        let acked = replicate(&mut cores, 0, 30);
        assert_eq!(acked, vec![(7, Response::Produced { base_offset: 0, duplicate: false })]);
        for c in &cores {
            assert_eq!(c.replica(&tp()).unwrap().log.end_offset(), 3);
        }
    }

    #[test]
    fn a_deposed_leader_fails_its_waiting_produce() {
        let mut cores = cores();
        for c in cores.iter_mut() {
            c.step(0, Input::Image(image(1, 1, &[1, 2, 3])));
        }
        cores[0].step(10, Input::Request { id: 7, req: Request::Produce(produce(5, 0, 1)) });
        let out = cores[0].step(20, Input::Image(image(2, 2, &[2, 3])));
        let failed = replies(&out);
        assert!(
            matches!(
                failed.as_slice(),
                [(7, Response::Error { code: ErrorCode::NotLeaderOrFollower, leader_hint: Some(2) })]
            ),
            "{failed:?}"
        );
        assert!(out.contains(&Action::SetRole(tp().leader_role("kafka"), false)));
    }
}

/// The same nodes on the real runtime: real TCP on 127.0.0.1, files in a temporary directory,
/// the real clock. Not compiled into the madsim build, whose tokio is the simulator.
#[cfg(not(madsim))]
mod real_runtime {
    use std::sync::Arc;
    use std::time::Duration;

    use rand::SeedableRng;
    use sim::disk::{Disk, RealDisk};
    use sim::net::{Directory, Net};
    use sim::NodeCtx;

    use super::*;
    use crate::kafka::client::{Client, GroupMember, PartitionProducer};
    use crate::kafka::config::{BrokerSettings, ClientSettings};
    use crate::kafka::controller_node::ControllerConfig;

    const CONTROLLERS: [&str; 3] = ["kraft-1", "kraft-2", "kraft-3"];
    const BROKERS: [&str; 3] = ["kafka-1", "kafka-2", "kafka-3"];

    fn ctx(dir: &std::path::Path, directory: &Arc<Directory>, name: &str) -> NodeCtx {
        let disk = Disk::Real(RealDisk::new(dir.join(name)).expect("data dir"));
        NodeCtx::real(name, "az", "local", Net::tokio(name, directory.clone(), None), disk, 1)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cluster_on_the_real_runtime_acknowledges_and_delivers() {
        let dir = std::env::temp_dir().join(format!("kafka-real-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut directory = Directory::default();
        // Every node shares 127.0.0.1; each gets its own port range.
        let base = 20_000 + (std::process::id() % 400) as u16 * 40;
        for (i, n) in CONTROLLERS.iter().chain(BROKERS.iter()).chain(["client"].iter()).enumerate() {
            directory.insert(n, [127, 0, 0, 1].into(), base + 5 * i as u16);
        }
        let directory = Arc::new(directory);
        let voters: BTreeMap<u64, String> =
            CONTROLLERS.iter().enumerate().map(|(i, c)| (i as u64 + 1, c.to_string())).collect();
        let settings =
            ControllerSettings { topics: vec![TopicSpec::new("edits", 1), TopicSpec::offsets()], ..Default::default() };
        for (i, c) in CONTROLLERS.iter().enumerate() {
            let config = ControllerConfig {
                cluster: "kafka".into(),
                id: i as u64 + 1,
                voters: voters.clone(),
                settings: settings.clone(),
            };
            tokio::spawn(crate::kafka::controller_node::run(ctx(&dir, &directory, c), config));
        }
        let controllers: Vec<String> = CONTROLLERS.iter().map(|c| c.to_string()).collect();
        for (i, b) in BROKERS.iter().enumerate() {
            let node = crate::kafka::broker_node::run(
                ctx(&dir, &directory, b),
                BrokerSettings::new("kafka", i as u32 + 1),
                controllers.clone(),
            );
            tokio::spawn(node);
        }
        let mut client_ctx = ctx(&dir, &directory, "client");
        let bootstrap: Vec<String> = BROKERS.iter().map(|b| b.to_string()).collect();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let work = async {
            let client = Client::new(&mut client_ctx, bootstrap.clone(), ClientSettings::default());
            let mut producer = PartitionProducer::new(client, tp(), Acks::All, 1);
            let d = producer.send(&mut rng, vec!["hello".into(), "world".into()], || 2).await;
            let client = Client::new(&mut client_ctx, bootstrap.clone(), ClientSettings::default());
            let mut member = GroupMember::new(client, "g", "c", vec!["edits".into()], 5_000);
            let assignment = loop {
                if let Ok(a) = member.join(&mut rng).await {
                    break a;
                }
            };
            let fetched = loop {
                if let Ok(r) = member.fetch(&mut rng, &tp(), committed(0)).await {
                    break r;
                }
            };
            member.commit(&mut rng, vec![(tp(), committed(2))]).await.expect("commit");
            let committed = member.committed(&mut rng, vec![tp()]).await.expect("offset fetch");
            (d, assignment, fetched, committed)
        };
        let (d, assignment, fetched, committed) =
            sim::timer::timeout(Duration::from_secs(30), work).await.expect("done in time");
        assert_eq!((d.base_offset, d.duplicate), (0, false));
        assert_eq!(assignment, vec![tp()]);
        let values: Vec<&str> = fetched.records.iter().map(|r| r.value.as_str()).collect();
        assert_eq!(values, ["hello", "world"]);
        assert_eq!(committed, vec![(tp(), Some(super::committed(2)))]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn recovery_cuts_a_batch_that_lost_its_end() {
    let mut log = PartitionLog::empty("p.log");
    let batch = |o: u64, n: u64| {
        (0..n).map(|i| Record { batch_end: i + 1 == n, ..rec(o + i, 1, 7, o + i) }).collect::<Vec<_>>()
    };
    assert!(log.append(batch(0, 2)));
    assert!(log.append(batch(2, 3)));
    let bytes: Vec<u8> = log
        .take_io()
        .into_iter()
        .flat_map(|io| match io {
            LogIo::Append { bytes, .. } => bytes,
            LogIo::Truncate { .. } => Vec::new(),
        })
        .collect();
    let whole = decode(&bytes);
    assert_eq!(whole.0.len(), 5);
    // Lose the last record: the second batch goes whole.
    let last_len = postcard::to_stdvec(&batch(2, 3)[2]).unwrap().len() + sim::disk::records::HEADER_LEN;
    let (recs, valid) = decode(&bytes[..bytes.len() - last_len]);
    assert_eq!(recs.len(), 2);
    assert_eq!(decode(&bytes[..valid]).0.len(), 2);
}
