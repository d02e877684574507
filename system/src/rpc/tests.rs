//! The shell under the simulator (turmoil in `cargo test`, madsim under `cargo madsim-test`):
//! idle connections close, clients reconnect after a peer restarts, a stuck peer costs a caller
//! no more than its deadline, and a peer sender reports what it could not deliver.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sim::{node_main, Fault, Plan, RunOptions, Target, Topology};

use super::*;

const PORT: u16 = 7100;

/// What the nodes of a test saw, with the simulated time.
type Log = Arc<Mutex<Vec<(u64, String)>>>;

fn note(log: &Log, now_ms: u64, what: impl Into<String>) {
    log.lock().unwrap().push((now_ms, what.into()));
}

fn entries(log: &Log, prefix: &str) -> Vec<u64> {
    log.lock().unwrap().iter().filter(|(_, w)| w.starts_with(prefix)).map(|(t, _)| *t).collect()
}

/// A plan with an adding server on "srv" and `client` on "cli", run for `duration_ms`.
fn run(
    duration_ms: u64,
    faults: Vec<(u64, Fault)>,
    server: Listen,
    client: impl Fn(sim::NodeCtx, Log) -> Client + Send + Sync + 'static,
) -> Log {
    let log: Log = Arc::default();
    let mut topology = Topology::new();
    topology.add("srv", "az-1", "r-1");
    topology.add("cli", "az-1", "r-1");
    let mut plan = Plan::new(topology, duration_ms);
    plan.node(
        "srv",
        node_main(move |ctx| async move {
            serve(ctx.net.clone(), server, |n: u64| async move { Answer::Reply(n + 1) }).await;
        }),
    );
    let (l, c) = (log.clone(), Arc::new(client));
    plan.node("cli", node_main(move |ctx| c(ctx, l.clone())));
    for (at_ms, fault) in faults {
        plan.at(at_ms, fault);
    }
    sim::engine::run(plan, RunOptions { seed: 1, ..Default::default() });
    log
}

type Client = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// A plan of two nodes in one zone: `srv` and `cli`, for `duration_ms`.
fn server_and_client(duration_ms: u64) -> Plan {
    let mut topology = Topology::new();
    topology.add("srv", "az-1", "r-1");
    topology.add("cli", "az-1", "r-1");
    Plan::new(topology, duration_ms)
}

#[test]
fn an_idle_connection_is_closed_by_the_server() {
    let server = Listen::new(PORT, Encoding::Json).idle_timeout_ms(500);
    let log = run(3_000, vec![], server, |ctx, log| {
        Box::pin(async move {
            sim::timer::sleep(Duration::from_millis(100)).await;
            let mut frames = Frames::new(ctx.net.connect("srv", PORT).await.expect("connect"), Encoding::Json);
            frames.send(&41u64).await.expect("send");
            assert_eq!(frames.recv::<u64>().await.expect("reply"), 42);
            note(&log, ctx.clock.now_ms(), "replied");
            let err = frames.recv_within::<u64>(Duration::from_secs(2)).await.unwrap_err();
            note(&log, ctx.clock.now_ms(), format!("closed {:?}", err.kind()));
        })
    });
    let (replied, closed) = (entries(&log, "replied"), entries(&log, "closed UnexpectedEof"));
    assert_eq!((replied.len(), closed.len()), (1, 1), "{log:?}");
    let idle_ms = closed[0] - replied[0];
    assert!((450..700).contains(&idle_ms), "closed after {idle_ms} ms idle");
}

#[test]
fn a_channel_reconnects_after_its_peer_restarts() {
    let server = Listen::new(PORT, Encoding::Json);
    let faults = vec![(1_000, Fault::Kill(Target::node("srv"))), (2_000, Fault::Restart(Target::node("srv")))];
    let log = run(4_000, faults, server, |mut ctx, log| {
        Box::pin(async move {
            let channel = Channel::new(&mut ctx, ChannelOptions::new(PORT, Encoding::Json));
            sim::timer::sleep(Duration::from_millis(100)).await;
            for n in 0u64.. {
                let reply = channel.call::<_, u64>("srv", &n, Duration::from_millis(300)).await;
                let what = if reply.as_ref().is_ok_and(|r| *r == n + 1) { "ok" } else { "failed" };
                note(&log, ctx.clock.now_ms(), what);
                sim::timer::sleep(Duration::from_millis(50)).await;
            }
        })
    });
    let (ok, failed) = (entries(&log, "ok"), entries(&log, "failed"));
    assert!(ok.iter().any(|t| *t < 1_000), "served before the kill: {log:?}");
    assert!(!ok.iter().any(|t| (1_050..2_000).contains(t)), "no reply from a dead peer: {log:?}");
    assert!(failed.iter().any(|t| (1_000..2_000).contains(t)), "calls failed while it was down: {log:?}");
    let back = ok.iter().find(|t| **t >= 2_000).expect("served again after the restart");
    assert!(*back < 3_200, "reconnected within the backoff cap: {back} ms");
}

#[test]
fn a_call_to_a_stuck_peer_ends_at_its_deadline() {
    let server = Listen::new(PORT, Encoding::Json);
    let log = run(3_000, vec![(1_000, Fault::Pause(Target::node("srv")))], server, |mut ctx, log| {
        Box::pin(async move {
            let channel = Channel::new(&mut ctx, ChannelOptions::new(PORT, Encoding::Json));
            sim::timer::sleep(Duration::from_millis(100)).await;
            let before = channel.call::<_, u64>("srv", &1u64, Duration::from_millis(500)).await;
            note(&log, ctx.clock.now_ms(), format!("before {}", before.is_ok()));
            sim::timer::sleep(Duration::from_millis(1_200)).await;
            let start = ctx.clock.now_ms();
            let stuck = channel.call::<_, u64>("srv", &2u64, Duration::from_millis(500)).await;
            note(&log, start, "stuck start");
            note(&log, ctx.clock.now_ms(), format!("stuck {}", matches!(stuck, Err(RpcError::TimedOut))));
        })
    });
    assert_eq!(entries(&log, "before true").len(), 1, "{log:?}");
    let (start, end) = (entries(&log, "stuck start"), entries(&log, "stuck true"));
    assert_eq!(end.len(), 1, "the call timed out: {log:?}");
    assert!((500..520).contains(&(end[0] - start[0])), "ended at its deadline: {log:?}");
}

#[test]
fn a_peer_sender_drops_and_reports_while_its_peer_is_down_then_delivers_again() {
    let received: Log = Arc::default();
    let r = received.clone();
    let mut plan = server_and_client(4_000);
    plan.node(
        "srv",
        node_main(move |ctx| {
            let r = r.clone();
            async move {
                let clock = ctx.clock.clone();
                let listen = Listen::new(PORT, Encoding::Postcard);
                serve(ctx.net.clone(), listen, move |n: u64| {
                    note(&r, clock.now_ms(), format!("got {n}"));
                    async { Answer::<()>::Quiet }
                })
                .await;
            }
        }),
    );
    let undelivered: Log = Arc::default();
    let u = undelivered.clone();
    plan.node(
        "cli",
        node_main(move |mut ctx| {
            let u = u.clone();
            async move {
                let clock = ctx.clock.clone();
                let report = move |n: u64| note(&u, clock.now_ms(), format!("lost {n}"));
                let sender = PeerSender::spawn(&mut ctx, "srv", PeerOptions::new(PORT, Encoding::Postcard), report);
                for n in 0u64.. {
                    sim::timer::sleep(Duration::from_millis(50)).await;
                    sender.send(n);
                }
            }
        }),
    );
    plan.at(1_000, Fault::Kill(Target::node("srv")));
    plan.at(2_000, Fault::Restart(Target::node("srv")));
    sim::engine::run(plan, RunOptions { seed: 1, ..Default::default() });
    let (got, lost) = (entries(&received, "got"), entries(&undelivered, "lost"));
    assert!(got.iter().any(|t| *t < 1_000), "delivered before the kill: {received:?}");
    // Frames written into the dead peer's connection vanish unreported, as on TCP, until the
    // stream errors (turmoil resets it only when the peer comes back; madsim at once).
    assert!(lost.iter().any(|t| (1_000..2_500).contains(t)), "reported after the kill: {undelivered:?}");
    let back = got.iter().find(|t| **t >= 2_000).expect("delivered after the restart");
    assert!(*back < 2_700, "reconnected within the backoff cap: {back} ms");
}

#[test]
fn a_dialer_keeps_a_split_stream_up_across_a_restart() {
    let (streamed, acked): (Log, Log) = (Arc::default(), Arc::default());
    let a = acked.clone();
    let mut plan = server_and_client(4_000);
    // The server streams a count on one half while the other reads the client's acks.
    plan.node(
        "srv",
        node_main(move |ctx| {
            let a = a.clone();
            async move {
                let clock = ctx.clock.clone();
                accept_each(ctx.net.clone(), Listen::new(PORT, Encoding::Postcard), move |frames, _peer| {
                    let (a, clock) = (a.clone(), clock.clone());
                    async move {
                        let (mut rx, mut tx) = frames.split();
                        tokio::spawn(async move {
                            while let Ok(n) = rx.recv_within::<u64>(Duration::from_secs(1)).await {
                                note(&a, clock.now_ms(), format!("ack {n}"));
                            }
                        });
                        for n in 0u64.. {
                            sim::timer::sleep(Duration::from_millis(50)).await;
                            if tx.send_within(Duration::from_secs(1), &n).await.is_err() {
                                return;
                            }
                        }
                    }
                })
                .await;
            }
        }),
    );
    let s = streamed.clone();
    plan.node(
        "cli",
        node_main(move |mut ctx| {
            let s = s.clone();
            async move {
                let dialer = Dialer::new(&mut ctx, DialOptions::new(PORT, Encoding::Postcard));
                let clock = ctx.clock.clone();
                dialer
                    .redial("srv", |mut frames| {
                        let (s, clock) = (s.clone(), clock.clone());
                        async move {
                            while let Ok(n) = frames.recv_within::<u64>(Duration::from_millis(500)).await {
                                note(&s, clock.now_ms(), "got");
                                if frames.send_within(Duration::from_millis(500), &n).await.is_err() {
                                    break;
                                }
                            }
                            std::ops::ControlFlow::Continue(())
                        }
                    })
                    .await;
            }
        }),
    );
    plan.at(1_000, Fault::Kill(Target::node("srv")));
    plan.at(2_000, Fault::Restart(Target::node("srv")));
    sim::engine::run(plan, RunOptions { seed: 1, ..Default::default() });
    let (got, acks) = (entries(&streamed, "got"), entries(&acked, "ack"));
    assert!(got.iter().any(|t| *t < 1_000) && acks.iter().any(|t| *t < 1_000), "streamed before the kill");
    assert!(!got.iter().any(|t| (1_050..2_000).contains(t)), "nothing from a dead peer: {streamed:?}");
    let back = got.iter().find(|t| **t >= 2_000).expect("streamed again after the restart");
    assert!(*back < 3_200, "redialled within the backoff cap: {back} ms");
    assert!(acks.iter().any(|t| *t > *back), "the reading half works on the new connection: {acked:?}");
}
