//! Table tests of the core's edge cases. Each case starts from a member in a known state and
//! feeds it inputs one by one, checking what each step asks for and what state it leaves.

use super::*;
use crate::postgres::data::{Table, Write};
use crate::postgres::observe::WatchdogReset;
use crate::postgres::wal::{segment_file, Body};

fn config(me: &str, zone: &str) -> MemberConfig {
    MemberConfig {
        me: me.into(),
        zone: zone.into(),
        members: vec!["a".into(), "b".into(), "c".into()],
        durability: Durability::standard(),
        sender_timeout_ms: 3_000,
        sync_strict: false,
        roles: PgRoles::for_prefix("pg"),
        planted: Default::default(),
    }
}

fn pos(epoch: u64, index: u64) -> Position {
    Position { epoch, index }
}

fn promote_rec(index: u64, epoch: u64) -> WalRecord {
    WalRecord { index, epoch, commit_wall_ms: index, body: Body::Promote }
}

/// A commit big enough that a segment holds about ten of them, so positions fall mid-segment.
fn commit_rec(index: u64, epoch: u64) -> WalRecord {
    let writes = vec![Write::Put { table: Table::Users, key: format!("k{index}"), value: "v".repeat(3_000) }];
    WalRecord { index, epoch, commit_wall_ms: index, body: Body::Commit { txn: format!("t{index}"), writes } }
}

/// A log of one promotion at 1 then commits up to `last`, all in `epoch` 1, plus `more`.
fn log(last: u64, more: Vec<WalRecord>) -> Wal {
    let mut wal = Wal::default();
    wal.push(promote_rec(1, 1));
    for i in 2..=last {
        wal.push(commit_rec(i, 1));
    }
    for r in more {
        wal.push(r);
    }
    wal
}

fn txn(id: &str, table: Table) -> Txn {
    Txn { id: id.into(), checks: vec![], writes: vec![Write::Put { table, key: id.into(), value: "v".into() }] }
}

/// A member that loaded `wal` from disk (all of it flushed) and follows `following`.
fn standby(me: &str, wal: Wal, following: Option<(&str, u64)>) -> Member {
    let mut m = Member::new(config(me, &format!("z-{me}")));
    m.step(0, Input::Stop { following: None, why: "start".into() });
    m.step(0, Input::Loaded { gen: m.generation(), wal, damaged: false });
    if let Some((leader, epoch)) = following {
        m.step(0, Input::Stop { following: Some((leader.into(), epoch)), why: "follow".into() });
    }
    m
}

/// Member `a` (zone `z-a`), bootstrapped as the primary of epoch 1: its log is one promotion.
fn primary() -> Member {
    let mut m = standby("a", Wal::default(), None);
    let gen = m.generation();
    m.step(0, Input::Promote { gen, epoch: 1, wall_ms: 1 });
    m.step(0, Input::Synced { gen, upto: 1 });
    assert_eq!(m.role(), &Role::Primary { epoch: 1 });
    m
}

/// [`primary`] with `b` (another zone) streaming and named the synchronous standby.
fn primary_with_sync_standby() -> Member {
    let mut m = primary();
    let gen = m.generation();
    m.step(0, Input::Hello { name: "b".into(), position: pos(1, 1) });
    m.step(0, Input::StartStreaming { gen, name: "b".into(), zone: "z-b".into(), from: 2 });
    m.step(0, Input::Feedback { gen, name: "b".into(), flushed: 1, applied: 1 });
    let asked = m.step(100, Input::MaintainSync);
    assert_eq!(asked, vec![Action::WriteSync { epoch: 1, standby: Some("b".into()) }]);
    m.step(100, Input::SyncWritten { epoch: 1, standby: Some("b".into()) });
    assert_eq!(m.sync_rep().standby(), Some("b"));
    m
}

fn settled(actions: &[Action]) -> Vec<(u64, Response)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Settle { id, response } => Some((*id, response.clone())),
            _ => None,
        })
        .collect()
}

fn sent(actions: &[Action]) -> Vec<Replication> {
    actions.iter().filter_map(|a| if let Action::Send(m) = a { Some(m.clone()) } else { None }).collect()
}

fn refused_stream(actions: &[Action]) -> bool {
    actions.iter().any(|a| matches!(a, Action::Close { refused: true, .. }))
}

fn closed_stream(actions: &[Action]) -> bool {
    actions.iter().any(|a| matches!(a, Action::Close { .. }))
}

fn syncs(actions: &[Action]) -> Vec<(Vec<String>, Option<u64>)> {
    actions
        .iter()
        .filter_map(|a| if let Action::Sync { files, upto, .. } = a { Some((files.clone(), *upto)) } else { None })
        .collect()
}

/// How many rows a session on `m` reads under `key` of `table`.
fn rows(m: &Member, table: Table, key: &str) -> usize {
    match m.read(0, |t| t.get(table, key).map(|r| vec![(key.to_string(), r.clone())]).unwrap_or_default()) {
        Response::Rows { rows, .. } => rows.len(),
        other => panic!("read refused: {other:?}"),
    }
}

fn indeterminate(reason: &str) -> Response {
    Response::Indeterminate { reason: reason.into() }
}

/// Checks a step's actions and the state it left.
type Expect = Box<dyn Fn(&[Action], &Member)>;

/// One input at a time: `input` builds it from the member (for its generation), `expect`
/// checks the actions and the state after it.
struct Step {
    now_ms: u64,
    input: Box<dyn Fn(&Member) -> Input>,
    expect: Expect,
}

fn step(
    now_ms: u64,
    input: impl Fn(&Member) -> Input + 'static,
    expect: impl Fn(&[Action], &Member) + 'static,
) -> Step {
    Step { now_ms, input: Box::new(input), expect: Box::new(expect) }
}

struct Case {
    name: &'static str,
    setup: fn() -> Member,
    steps: Vec<Step>,
}

fn run(cases: Vec<Case>) {
    for case in cases {
        let mut m = (case.setup)();
        for (i, s) in case.steps.iter().enumerate() {
            let input = (s.input)(&m);
            let actions = m.step(s.now_ms, input);
            let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (s.expect)(&actions, &m)));
            if let Err(e) = checked {
                eprintln!("case {:?}, step {i}: actions {actions:?}", case.name);
                std::panic::resume_unwind(e);
            }
        }
    }
}

#[test]
fn standbys_stream_reconnect_and_rewind() {
    run(vec![
        Case {
            name: "a standby that reconnects mid-segment resumes right after its last record, and its next fsync covers what the broken stream left unsynced",
            setup: || standby("b", log(15, vec![]), Some(("a", 1))),
            steps: vec![
                step(0, |m| Input::Welcome { gen: m.generation(), epoch: 1, history: vec![(1, 1)], last_index: 20 }, |a, _| {
                    assert_eq!(sent(a), [Replication::Start { from: 16 }]);
                    assert!(!a.iter().any(|a| matches!(a, Action::Cut(_))), "nothing to rewind");
                }),
                step(10, |m| Input::Records { gen: m.generation(), records: vec![commit_rec(16, 1), commit_rec(17, 1)] }, |a, m| {
                    let segment = m.wal().segments_for(17, 17);
                    assert!(a.iter().any(|a| matches!(a, Action::Append { from: 16, .. })));
                    assert_eq!(syncs(a), [(m.wal().segments_for(16, 17), Some(17))]);
                    assert_eq!(segment, [segment_file(2)], "mid-segment 2: {:?}", m.wal().segments_for(1, 17));
                }),
                // The stream breaks before the fsync reports; the standby reconnects.
                step(20, |m| Input::Welcome { gen: m.generation(), epoch: 1, history: vec![(1, 1)], last_index: 20 }, |a, m| {
                    assert_eq!(sent(a), [Replication::Start { from: 18 }]);
                    assert_eq!((m.wal().last_index(), m.flushed()), (17, 15));
                }),
                step(30, |m| Input::Records { gen: m.generation(), records: vec![commit_rec(18, 1)] }, |a, m| {
                    assert_eq!(syncs(a), [(m.wal().segments_for(16, 18), Some(18))], "covers 16..=18, not just 18");
                }),
                step(40, |m| Input::Synced { gen: m.generation(), upto: 18 }, |_, m| assert_eq!(m.flushed(), 18)),
                step(50, |m| Input::Progress { gen: m.generation(), primary_flushed: 20 }, |a, _| {
                    assert_eq!(sent(a), [Replication::Feedback { flushed: 18, applied: 18 }]);
                }),
            ],
        },
        Case {
            name: "a standby ahead of a new primary rewinds to the switch point, then takes the new timeline",
            setup: || standby("b", log(6, vec![]), Some(("c", 2))),
            steps: vec![
                step(0, |m| Input::Welcome { gen: m.generation(), epoch: 2, history: vec![(1, 1), (2, 5)], last_index: 7 }, |a, m| {
                    assert!(a.contains(&Action::Cut(log(6, vec![]).cut_at(4))));
                    assert!(a.contains(&Action::Observe(Observed::Rewound(Rewound { kept: 4, discarded: 2 }))));
                    assert_eq!(sent(a), [Replication::Start { from: 5 }]);
                    assert_eq!((m.wal().last_index(), m.flushed(), m.visible().len()), (4, 4, 3));
                }),
                step(10, |m| Input::Records { gen: m.generation(), records: vec![promote_rec(5, 2), commit_rec(6, 2), commit_rec(7, 2)] }, |a, _| {
                    assert!(!closed_stream(a));
                    assert_eq!(syncs(a).len(), 1);
                }),
                step(20, |m| Input::Synced { gen: m.generation(), upto: 7 }, |_, m| assert_eq!(m.position(), pos(2, 7))),
            ],
        },
        Case {
            name: "a damaged standby serves no reads until it holds what the primary had",
            setup: || {
                let mut m = Member::new(config("b", "z-b"));
                m.step(0, Input::Stop { following: None, why: "start".into() });
                m.step(0, Input::Loaded { gen: m.generation(), wal: log(3, vec![]), damaged: true });
                m.step(0, Input::Stop { following: Some(("a".into(), 1)), why: "follow".into() });
                m
            },
            steps: vec![
                step(0, |m| Input::Welcome { gen: m.generation(), epoch: 1, history: vec![(1, 1)], last_index: 5 }, |_, m| {
                    assert!(matches!(m.read(0, |_| vec![]), Response::Unavailable { .. }));
                }),
                step(5, |m| Input::Records { gen: m.generation(), records: vec![commit_rec(4, 1), commit_rec(5, 1)] }, |_, _| {}),
                step(6, |m| Input::Synced { gen: m.generation(), upto: 5 }, |_, _| {}),
                step(7, |m| Input::Progress { gen: m.generation(), primary_flushed: 5 }, |a, m| {
                    assert!(a.contains(&Action::ClearDamage));
                    assert!(matches!(m.read(7, |_| vec![]), Response::Rows { .. }));
                }),
            ],
        },
    ]);
}

#[test]
fn timeline_divergence_is_refused() {
    run(vec![
        Case {
            name: "a primary on an older timeline than the one followed",
            setup: || standby("b", log(6, vec![]), Some(("c", 3))),
            steps: vec![step(
                0,
                |m| Input::Welcome { gen: m.generation(), epoch: 2, history: vec![(1, 1), (2, 5)], last_index: 9 },
                |a, m| {
                    assert!(refused_stream(a));
                    assert!(sent(a).is_empty());
                    assert_eq!(m.wal().last_index(), 6, "nothing rewound");
                },
            )],
        },
        Case {
            name: "a history that does not end with the primary's timeline",
            setup: || standby("b", log(6, vec![]), Some(("c", 2))),
            steps: vec![step(
                0,
                |m| Input::Welcome { gen: m.generation(), epoch: 2, history: vec![(1, 1)], last_index: 9 },
                |a, _| {
                    assert!(refused_stream(a));
                },
            )],
        },
        Case {
            name: "streamed records that skip an index, or carry an epoch the history puts elsewhere",
            setup: || standby("b", log(4, vec![]), Some(("c", 2))),
            steps: vec![
                step(
                    0,
                    |m| Input::Welcome { gen: m.generation(), epoch: 2, history: vec![(1, 1), (2, 5)], last_index: 9 },
                    |a, _| {
                        assert_eq!(sent(a), [Replication::Start { from: 5 }]);
                    },
                ),
                step(
                    1,
                    |m| Input::Records { gen: m.generation(), records: vec![promote_rec(6, 2)] },
                    |a, m| {
                        assert!(refused_stream(a));
                        assert_eq!(m.wal().last_index(), 4);
                    },
                ),
                step(
                    2,
                    |m| Input::Records { gen: m.generation(), records: vec![commit_rec(5, 1)] },
                    |a, m| {
                        assert!(refused_stream(a));
                        assert_eq!(m.wal().last_index(), 4);
                    },
                ),
            ],
        },
        Case {
            name: "the walsender turns away a standby on a newer timeline, and strangers",
            setup: primary,
            steps: vec![
                step(
                    0,
                    |_| Input::Hello { name: "b".into(), position: pos(2, 3) },
                    |a, _| {
                        assert_eq!(sent(a), [Replication::NotPrimary]);
                        assert!(closed_stream(a));
                    },
                ),
                step(
                    0,
                    |_| Input::Hello { name: "mallory".into(), position: pos(1, 1) },
                    |a, _| {
                        assert!(sent(a).is_empty() && closed_stream(a));
                    },
                ),
                step(
                    0,
                    |_| Input::Hello { name: "b".into(), position: pos(1, 1) },
                    |a, _| {
                        assert_eq!(sent(a), [Replication::Welcome { epoch: 1, history: vec![(1, 1)], last_index: 1 }]);
                    },
                ),
                step(
                    0,
                    |m| Input::StartStreaming { gen: m.generation(), name: "b".into(), zone: "z-b".into(), from: 3 },
                    |a, _| {
                        assert!(closed_stream(a), "from past our flushed log");
                    },
                ),
            ],
        },
    ]);
}

#[test]
fn promotion_waits_for_what_was_received_and_a_lagging_sync_standby_holds_acks() {
    run(vec![
        Case {
            name: "a standby promoted while its last records are unsynced flushes them, then starts its timeline after them",
            setup: || standby("b", log(5, vec![]), Some(("a", 1))),
            steps: vec![
                step(0, |m| Input::Welcome { gen: m.generation(), epoch: 1, history: vec![(1, 1)], last_index: 7 }, |_, _| {}),
                step(1, |m| Input::Records { gen: m.generation(), records: vec![commit_rec(6, 1), commit_rec(7, 1)] }, |_, _| {}),
                step(2, |_| Input::Stop { following: None, why: "promote".into() }, |_, m| assert_eq!(m.flushed(), 5)),
                step(3, |m| Input::FlushReceived { gen: m.generation() }, |a, m| {
                    assert_eq!(syncs(a), [(m.wal().segments_for(6, 7), Some(7))]);
                }),
                step(4, |m| Input::Promote { gen: m.generation(), epoch: 2, wall_ms: 4 }, |a, m| {
                    assert!(closed_stream(a), "not before the received records are durable");
                    assert_eq!(m.wal().last_index(), 7);
                }),
                step(5, |m| Input::Synced { gen: m.generation(), upto: 7 }, |_, m| assert_eq!(m.flushed(), 7)),
                step(6, |m| Input::Promote { gen: m.generation(), epoch: 2, wall_ms: 6 }, |a, m| {
                    assert!(a.iter().any(|a| matches!(a, Action::Append { from: 8, .. })));
                    assert_eq!(m.primary_epoch(), None, "not primary before the record is durable");
                }),
                step(7, |m| Input::Synced { gen: m.generation(), upto: 8 }, |a, m| {
                    assert!(a.contains(&Action::Observe(Observed::Promoted(Promoted { epoch: 2, index: 8 }))));
                    assert!(a.contains(&Action::SetRole { role: "pg-primary".into(), holds: true }));
                    assert_eq!(m.primary_epoch(), Some(2));
                }),
            ],
        },
        Case {
            name: "with a lagging synchronous standby, credentials wait and are never acknowledged by a demoted primary; local commits are",
            setup: primary_with_sync_standby,
            steps: vec![
                step(200, |_| Input::Commit { id: 1, epoch: Some(1), txn: txn("cred", Table::Credentials), wall_ms: 200 }, |a, _| {
                    assert!(settled(a).is_empty());
                }),
                step(210, |_| Input::Commit { id: 2, epoch: Some(1), txn: txn("user", Table::Users), wall_ms: 210 }, |_, _| {}),
                step(220, |m| Input::Synced { gen: m.generation(), upto: 3 }, |a, _| {
                    assert_eq!(settled(a), [(2, Response::Committed { epoch: 1, index: 3 })], "only the local commit");
                }),
                step(230, |m| Input::Feedback { gen: m.generation(), name: "b".into(), flushed: 1, applied: 1 }, |a, _| {
                    assert!(settled(a).is_empty(), "the standby lags");
                }),
                step(240, |_| Input::Stop { following: None, why: "leader key lost".into() }, |a, _| {
                    assert_eq!(settled(a), [(1, indeterminate("demoted while waiting for the synchronous standby"))]);
                    assert!(a.contains(&Action::Observe(Observed::Demoted(Demoted { epoch: 1, reason: "leader key lost".into() }))));
                }),
            ],
        },
        Case {
            name: "the synchronous standby's flush releases the credentials commit",
            setup: primary_with_sync_standby,
            steps: vec![
                step(200, |_| Input::Commit { id: 1, epoch: Some(1), txn: txn("cred", Table::Credentials), wall_ms: 200 }, |_, _| {}),
                step(220, |m| Input::Synced { gen: m.generation(), upto: 2 }, |a, _| assert!(settled(a).is_empty())),
                step(230, |m| Input::Feedback { gen: m.generation(), name: "b".into(), flushed: 2, applied: 2 }, |a, _| {
                    assert_eq!(settled(a), [(1, Response::Committed { epoch: 1, index: 2 })]);
                }),
            ],
        },
    ]);
}

#[test]
fn a_demotion_racing_a_write_is_never_acknowledged() {
    run(vec![
        Case {
            name: "demoted while the commit's fsync is in flight: indeterminate, and the late fsync answers nothing",
            setup: primary,
            steps: vec![
                step(100, |_| Input::Commit { id: 7, epoch: Some(1), txn: txn("user", Table::Users), wall_ms: 100 }, |a, _| {
                    assert_eq!(syncs(a).len(), 1);
                }),
                step(110, |_| Input::Stop { following: None, why: "could not renew the leader lease in time".into() }, |a, _| {
                    assert_eq!(settled(a), [(7, indeterminate("demoted while flushing"))]);
                    assert!(a.contains(&Action::SetRole { role: "pg-primary".into(), holds: false }));
                }),
                step(120, |m| Input::Synced { gen: m.generation() - 1, upto: 2 }, |a, m| {
                    assert!(settled(a).is_empty());
                    assert_eq!(m.flushed(), 1, "a stale fsync moves nothing");
                }),
                step(130, |_| Input::Commit { id: 8, epoch: Some(1), txn: txn("late", Table::Users), wall_ms: 130 }, |a, _| {
                    assert_eq!(settled(a), [(8, Response::NotPrimary { leader: None })]);
                }),
            ],
        },
        Case {
            name: "the server knows no lease: without a watchdog it acknowledges for as long as it is primary",
            setup: primary,
            steps: vec![
                step(1_000_000, |_| Input::Commit { id: 1, epoch: None, txn: txn("user", Table::Users), wall_ms: 1 }, |_, _| {}),
                step(1_000_001, |m| Input::Synced { gen: m.generation(), upto: 2 }, |a, _| {
                    assert_eq!(settled(a), [(1, Response::Committed { epoch: 1, index: 2 })]);
                }),
            ],
        },
        Case {
            name: "the watchdog petted in time keeps the primary; unpetted, it resets the node and nothing is acknowledged after",
            setup: primary,
            steps: vec![
                step(0, |_| Input::Watchdog { timeout_ms: Some(1_000) }, |a, _| assert!(a.is_empty())),
                step(900, |_| Input::Watchdog { timeout_ms: Some(1_000) }, |_, m| assert_eq!(m.watchdog_ms(), Some(1_900))),
                step(1_500, |_| Input::WatchdogTick, |a, m| {
                    assert!(a.is_empty());
                    assert_eq!(m.role(), &Role::Primary { epoch: 1 });
                }),
                step(1_899, |_| Input::Commit { id: 1, epoch: None, txn: txn("user", Table::Users), wall_ms: 1 }, |_, _| {}),
                step(1_900, |m| Input::Synced { gen: m.generation(), upto: 2 }, |a, m| {
                    assert_eq!(settled(a), [(1, indeterminate("demoted while flushing"))]);
                    assert!(a.contains(&Action::Observe(Observed::WatchdogReset(WatchdogReset { epoch: Some(1), late_ms: 0 }))));
                    assert!(m.is_broken() && a.contains(&Action::WakeHa), "the server restarts from disk");
                    assert_eq!(m.watchdog_ms(), None);
                }),
                step(1_901, |_| Input::Commit { id: 2, epoch: None, txn: txn("user2", Table::Users), wall_ms: 2 }, |a, _| {
                    assert!(matches!(settled(a)[..], [(2, Response::NotPrimary { .. })]));
                }),
            ],
        },
        Case {
            name: "an idle primary is reset by the timer; a disabled watchdog never fires",
            setup: primary,
            steps: vec![
                step(0, |_| Input::Watchdog { timeout_ms: Some(1_000) }, |_, _| {}),
                step(999, |_| Input::WatchdogTick, |a, _| assert!(a.is_empty())),
                step(1_050, |_| Input::WatchdogTick, |a, m| {
                    assert!(a.contains(&Action::Observe(Observed::WatchdogReset(WatchdogReset { epoch: Some(1), late_ms: 50 }))));
                    assert!(matches!(m.role(), Role::Standby { following: None }));
                }),
                step(2_000, |_| Input::Watchdog { timeout_ms: None }, |_, _| {}),
                step(9_000, |_| Input::WatchdogTick, |a, _| assert!(a.is_empty())),
            ],
        },
        Case {
            name: "a commit waiting for the synchronous standby is invisible to other sessions until it confirms",
            setup: primary_with_sync_standby,
            steps: vec![
                step(200, |_| Input::Commit { id: 1, epoch: None, txn: txn("perm", Table::DocPermissions), wall_ms: 2 }, |_, _| {}),
                step(210, |m| Input::Synced { gen: m.generation(), upto: 2 }, |a, m| {
                    assert!(settled(a).is_empty(), "waits for b");
                    assert_eq!(rows(m, Table::DocPermissions, "perm"), 0, "not visible before b confirms");
                }),
                // A local commit after it is visible at once, the waiting one still not.
                step(220, |_| Input::Commit { id: 2, epoch: None, txn: txn("tenant", Table::Tenants), wall_ms: 3 }, |_, _| {}),
                step(230, |m| Input::Synced { gen: m.generation(), upto: 3 }, |a, m| {
                    assert_eq!(settled(a), [(2, Response::Committed { epoch: 1, index: 3 })]);
                    assert_eq!(rows(m, Table::Tenants, "tenant"), 1);
                    assert_eq!(rows(m, Table::DocPermissions, "perm"), 0);
                }),
                step(240, |m| Input::Feedback { gen: m.generation(), name: "b".into(), flushed: 2, applied: 2 }, |a, m| {
                    assert_eq!(settled(a), [(1, Response::Committed { epoch: 1, index: 2 })]);
                    assert_eq!(rows(m, Table::DocPermissions, "perm"), 1, "visible once confirmed");
                }),
            ],
        },
        Case {
            name: "strict synchronous mode: a new primary acknowledges no synchronous commit before it names a standby",
            setup: || {
                let mut m = Member::new(MemberConfig { sync_strict: true, ..config("a", "z-a") });
                m.step(0, Input::Stop { following: None, why: "start".into() });
                m.step(0, Input::Loaded { gen: m.generation(), wal: Wal::default(), damaged: false });
                let gen = m.generation();
                m.step(0, Input::Promote { gen, epoch: 1, wall_ms: 1 });
                m.step(0, Input::Synced { gen, upto: 1 });
                m
            },
            steps: vec![
                step(10, |_| Input::Commit { id: 1, epoch: None, txn: txn("perm", Table::DocPermissions), wall_ms: 2 }, |_, _| {}),
                step(20, |m| Input::Synced { gen: m.generation(), upto: 2 }, |a, _| {
                    assert!(settled(a).is_empty(), "blocked: no synchronous standby");
                }),
                step(30, |_| Input::MaintainSync, |a, _| assert!(a.is_empty(), "never /sync = none")),
            ],
        },
        Case {
            name: "a failed append is a definite no and is forgotten; a failed fsync leaves the commit unknown; both stop writes",
            setup: primary,
            steps: vec![
                step(1, |_| Input::Commit { id: 1, epoch: Some(1), txn: txn("x", Table::Users), wall_ms: 1 }, |_, _| {}),
                step(1, |m| Input::AppendFailed { gen: m.generation(), from: 2, error: "disk full".into() }, |a, m| {
                    assert!(matches!(settled(a)[..], [(1, Response::Rejected { .. })]));
                    assert_eq!(m.wal().last_index(), 1);
                    assert!(m.is_broken() && a.contains(&Action::WakeHa));
                }),
                step(2, |_| Input::Commit { id: 2, epoch: Some(1), txn: txn("y", Table::Users), wall_ms: 2 }, |a, _| {
                    assert!(matches!(settled(a)[..], [(2, Response::NotPrimary { .. })]), "broken: no more writes");
                }),
            ],
        },
        Case {
            name: "a failed fsync",
            setup: primary,
            steps: vec![
                step(1, |_| Input::Commit { id: 1, epoch: Some(1), txn: txn("x", Table::Users), wall_ms: 1 }, |_, _| {}),
                step(2, |m| Input::SyncFailed { gen: m.generation(), upto: 2 }, |a, m| {
                    assert_eq!(settled(a), [(1, indeterminate("fsync failed"))]);
                    assert!(m.is_broken());
                }),
            ],
        },
        Case {
            name: "a commit naming another epoch, or failing its checks, is refused without touching the log",
            setup: primary,
            steps: vec![
                step(1, |_| Input::Commit { id: 1, epoch: Some(2), txn: txn("x", Table::Users), wall_ms: 1 }, |a, m| {
                    assert_eq!(settled(a), [(1, Response::NotPrimary { leader: None })]);
                    assert_eq!(m.wal().last_index(), 1);
                }),
                step(2, |_| {
                    let mut t = txn("y", Table::Users);
                    t.checks = vec![crate::postgres::data::Check::Present { table: Table::Users, key: "nobody".into() }];
                    Input::Commit { id: 2, epoch: Some(1), txn: t, wall_ms: 2 }
                }, |a, m| {
                    assert!(matches!(settled(a)[..], [(2, Response::Rejected { .. })]));
                    assert_eq!(m.wal().last_index(), 1);
                }),
            ],
        },
    ]);
}
