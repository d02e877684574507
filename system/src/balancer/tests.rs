//! Two balancers in a small simulated world (turmoil, a few simulated seconds) in front of toy
//! upstreams: HTTP routing round robin, 503 for an empty pool, sticky collab sessions both
//! balancers agree on, bytes spliced both ways, an instance removed after K failed probes when
//! it is killed (its sessions closed, editors reaching the new owner), and re-added after its
//! restart (the document moving back).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sim::net::Conn;
use sim::{node_main, Fault, NodeCtx, Plan, RunOptions, Target, Topology};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::http::health::HealthFlag;
use crate::http::{read_request, read_response, write_response, Request};

/// What the client saw, with the simulated time.
type Log = Arc<Mutex<Vec<(u64, String)>>>;

fn note(log: &Log, now_ms: u64, what: impl Into<String>) {
    log.lock().unwrap().push((now_ms, what.into()));
}

fn first(log: &Log, prefix: &str) -> Option<(u64, String)> {
    log.lock().unwrap().iter().find(|(_, w)| w.starts_with(prefix)).cloned()
}

const COLLAB: [&str; 3] = ["collab-1", "collab-2", "collab-3"];
const DOC: &str = "acme/plan";

/// A toy service: health on 8081; on 8080 HTTP requests are answered with the node's name and
/// what it received, and a WebSocket upgrade is accepted with a 101 and then echoes every chunk
/// prefixed with the node's name (a stand-in for a collaboration instance).
async fn toy(ctx: NodeCtx) {
    let flag = HealthFlag::new();
    flag.set(true);
    tokio::spawn(crate::http::health::serve(ctx.net.clone(), flag));
    let listener = ctx.net.bind(HTTP_PORT).await.expect("bind");
    loop {
        let Ok((mut conn, _)) = listener.accept().await else { return };
        let name = ctx.name.clone();
        tokio::spawn(async move {
            let Ok(req) = read_request(&mut conn).await else { return };
            if req.path.ends_with("/big") {
                let body = vec![b'x'; 100_000];
                let _ = write_response(&mut conn, &crate::http::Response::new(200, body)).await;
                return;
            }
            if !req.is_upgrade() {
                let body = format!("{name} {} {} {}", req.method, req.path, String::from_utf8_lossy(&req.body));
                let _ = write_response(&mut conn, &crate::http::Response::new(200, body)).await;
                return;
            }
            let accept = b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n";
            if conn.write_all(accept).await.is_err() || conn.flush().await.is_err() {
                return;
            }
            let mut buf = vec![0u8; 1024];
            while let Ok(n) = conn.read(&mut buf).await {
                if n == 0 {
                    return;
                }
                let mut reply = format!("{name}:").into_bytes();
                reply.extend_from_slice(&buf[..n]);
                if conn.write_all(&reply).await.is_err() || conn.flush().await.is_err() {
                    return;
                }
            }
        });
    }
}

/// One HTTP request through `balancer`: (status, body).
async fn http(ctx: &NodeCtx, balancer: &str, request: Request) -> Option<(u16, String)> {
    let r = crate::http::call(&ctx.net, balancer, HTTP_PORT, &request, Duration::from_secs(2)).await.ok()?;
    Some((r.status, String::from_utf8_lossy(&r.body).into_owned()))
}

/// A WebSocket-like session through `balancer` for `doc`, after the 101.
async fn upgrade(ctx: &NodeCtx, balancer: &str, doc: &str) -> Option<Conn> {
    let mut conn = ctx.net.connect(balancer, HTTP_PORT).await.ok()?;
    let head = format!(
        "GET /collab/{doc}?token=t HTTP/1.1\r\nhost: {balancer}\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n"
    );
    conn.write_all(head.as_bytes()).await.ok()?;
    conn.flush().await.ok()?;
    let response = sim::timer::timeout(Duration::from_secs(2), read_response(&mut conn)).await.ok()?.ok()?;
    (response.status == 101).then_some(conn)
}

/// Sends `msg` and reads the echo: the instance that answered, None if the session ended.
async fn echo(conn: &mut Conn, msg: &str) -> Option<String> {
    conn.write_all(msg.as_bytes()).await.ok()?;
    conn.flush().await.ok()?;
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while !got.ends_with(msg.as_bytes()) {
        let n = sim::timer::timeout(Duration::from_secs(1), conn.read(&mut buf)).await.ok()?.ok()?;
        if n == 0 {
            return None;
        }
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8(got).ok()?;
    Some(text.strip_suffix(msg)?.strip_suffix(':')?.to_string())
}

/// Waits until the balancer ends the session (EOF or error), up to `limit`.
async fn ended(conn: &mut Conn, limit: Duration) -> bool {
    let mut buf = [0u8; 64];
    matches!(sim::timer::timeout(limit, conn.read(&mut buf)).await, Ok(Ok(0) | Err(_)))
}

/// Connects for `doc` through `balancer` until a session echoes, retrying as an editor would.
async fn reconnect(ctx: &NodeCtx, balancer: &str, doc: &str) -> (Conn, String) {
    loop {
        if let Some(mut conn) = upgrade(ctx, balancer, doc).await {
            if let Some(instance) = echo(&mut conn, "hello").await {
                return (conn, instance);
            }
        }
        sim::timer::sleep(Duration::from_millis(100)).await;
    }
}

async fn client(ctx: NodeCtx, log: Log) {
    let now = || ctx.clock.now_ms();
    sim::timer::sleep(Duration::from_millis(1_000)).await;
    // HTTP: round robin over the auth pool, the body forwarded; an empty pool and an unknown
    // path answered by the balancer itself.
    for _ in 0..4 {
        let answer = http(&ctx, "lb-1", Request::post_json("/auth/login", &"pw")).await;
        note(&log, now(), format!("auth {answer:?}"));
    }
    let big = http(&ctx, "lb-1", Request::get("/auth/big")).await.map(|(s, b)| (s, b.len()));
    note(&log, now(), format!("big {big:?}"));
    note(&log, now(), format!("docs {:?}", http(&ctx, "lb-2", Request::get("/docs/acme/plan/state")).await));
    note(&log, now(), format!("nowhere {:?}", http(&ctx, "lb-2", Request::get("/nowhere")).await));
    note(&log, now(), format!("bad doc {:?}", http(&ctx, "lb-1", Request::get("/collab/ACME/x")).await));
    // Collab: both balancers send the document to one instance; bytes flow both ways.
    let (mut one, owner) = reconnect(&ctx, "lb-1", DOC).await;
    let (mut two, owner_two) = reconnect(&ctx, "lb-2", DOC).await;
    note(&log, now(), format!("owner {owner} {owner_two}"));
    note(&log, now(), format!("again {:?}", echo(&mut one, "again").await));
    // The owner is killed at 2 s: the session ends (reset, or closed by the balancer once the
    // owner is out of rotation), and the editor's reconnect reaches the second choice.
    let closed = ended(&mut one, Duration::from_secs(3)).await;
    note(&log, now(), format!("closed {closed}"));
    // auth-1 died too and is still in rotation: the request goes to auth-2 after the connect
    // to auth-1 fails.
    let answer = http(&ctx, "lb-2", Request::get("/auth/keys")).await;
    note(&log, now(), format!("after kill {answer:?}"));
    let (mut one, moved_to) = reconnect(&ctx, "lb-1", DOC).await;
    note(&log, now(), format!("moved {moved_to}"));
    let _ = two.shutdown().await;
    // The owner restarts at 4 s: once it is back in rotation the document moves back.
    let closed = ended(&mut one, Duration::from_secs(3)).await;
    note(&log, now(), format!("closed again {closed}"));
    let (_one, back) = reconnect(&ctx, "lb-1", DOC).await;
    note(&log, now(), format!("back {back}"));
}

#[test]
fn two_balancers_route_stick_remove_and_readd() {
    let owner = rendezvous::owner(DOC, COLLAB).unwrap();
    let second = rendezvous::ranked(DOC, COLLAB)[1];
    let mut topology = Topology::new();
    topology.add("lb-1", "az-1", "r-1");
    topology.add("lb-2", "az-2", "r-1");
    for (i, node) in ["auth-1", "auth-2"].into_iter().chain(COLLAB).enumerate() {
        topology.add(node, &format!("az-{}", 1 + i % 2), "r-1");
    }
    topology.add("cli", "clients", "r-1");
    let mut plan = Plan::new(topology, 8_000);
    let mut config = BalancerConfig::new(
        vec!["auth-1".into(), "auth-2".into()],
        vec![],
        COLLAB.iter().map(|c| c.to_string()).collect(),
    );
    (config.health_interval_ms, config.health_timeout_ms) = (200, 150);
    for lb in ["lb-1", "lb-2"] {
        let config = config.clone();
        plan.node(lb, node_main(move |ctx| run(ctx, config.clone())));
    }
    for node in ["auth-1", "auth-2"].into_iter().chain(COLLAB) {
        plan.node(node, node_main(toy));
    }
    let log: Log = Arc::default();
    let l = log.clone();
    plan.client("cli", node_main(move |ctx| client(ctx, l.clone())));
    plan.at(2_000, Fault::Kill(Target::Nodes(vec![owner.into(), "auth-1".into()])));
    plan.at(4_000, Fault::Restart(Target::node(owner)));
    let outcome = sim::engine::run(plan, RunOptions { seed: 3, ..Default::default() });
    let log_text = format!("{:#?}", log.lock().unwrap());

    let auth: Vec<String> =
        log.lock().unwrap().iter().filter(|(_, w)| w.starts_with("auth")).map(|(_, w)| w.clone()).collect();
    assert_eq!(auth.len(), 4, "{log_text}");
    for (i, line) in auth.iter().enumerate() {
        let want = format!("auth Some((200, \"auth-{} POST /auth/login \\\"pw\\\"\"))", 1 + i % 2);
        assert_eq!(line, &want, "round robin with the body forwarded: {log_text}");
    }
    assert!(first(&log, "big Some((200, 100000))").is_some(), "a response of many chunks: {log_text}");
    assert!(first(&log, "docs Some((503").is_some(), "empty pool: {log_text}");
    assert!(first(&log, "nowhere Some((404").is_some(), "{log_text}");
    assert!(first(&log, "bad doc Some((400").is_some(), "{log_text}");
    assert!(first(&log, &format!("owner {owner} {owner}")).is_some(), "both balancers agree: {log_text}");
    assert!(first(&log, &format!("again Some(\"{owner}\")")).is_some(), "{log_text}");
    // Closed by the upstream's reset (turmoil resets a killed host's streams, as madsim does),
    // or at the latest when the owner leaves rotation.
    let (t, _) = first(&log, "closed true").expect(&log_text);
    assert!((2_000..3_000).contains(&t), "session closed at {t}: {log_text}");
    let (t, _) = first(&log, "after kill Some((200, \"auth-2 GET /auth/keys").expect(&log_text);
    assert!(t < 2_700, "retried on auth-2 before auth-1 left rotation: {log_text}");
    assert!(first(&log, &format!("moved {second}")).is_some(), "to the second choice: {log_text}");
    let (t, _) = first(&log, "closed again true").expect(&log_text);
    assert!((4_000..5_000).contains(&t), "moved back at {t}: {log_text}");
    assert!(first(&log, &format!("back {owner}")).is_some(), "{log_text}");

    outcome.observations(|o| {
        for lb in ["lb-1", "lb-2"] {
            let removed: Vec<_> =
                o.of::<InstanceRemoved>().filter(|r| r.node == lb && r.value.pool == Pool::Collab).collect();
            assert_eq!(removed.len(), 1, "{lb}: {removed:?}");
            let r = &removed[0].value;
            assert_eq!((r.instance.as_str(), r.failures, r.pool), (owner, 3, Pool::Collab));
            assert!((2_400..3_000).contains(&r.at_ms), "{r:?}");
            let readded: Vec<_> = o.of::<InstanceAdded>().filter(|a| a.node == lb && !a.value.first).collect();
            assert!(o.of::<InstanceRemoved>().any(|r| r.node == lb && r.value.instance == "auth-1"), "{lb}");
            assert_eq!(readded.len(), 1, "{lb}: {readded:?}");
            assert!(readded[0].value.at_ms > 4_000, "{readded:?}");
        }
        let ends: Vec<SessionEnd> = o.of::<SessionEnded>().map(|e| e.value.end).collect();
        assert!(ends.contains(&SessionEnd::Moved), "the move back closed a session: {ends:?}");
        let routed: Vec<_> = o.of::<SessionRouted>().map(|r| r.value.instance).collect();
        assert!(routed.iter().all(|i| i == owner || i == second), "{routed:?}");
    });
    let counts = outcome.world.sometimes_counts();
    for what in [
        "balancer.instance_removed",
        "balancer.instance_readded",
        "balancer.sessions_moved",
        "balancer.retried_another_instance",
    ] {
        assert!(counts.get(what).is_some_and(|n| *n > 0), "{what}: {counts:?}");
    }
}

/// A plan of one balancer in front of the collab pool, and a client, for `duration_ms`;
/// `tune` adjusts the balancer's config.
fn one_balancer(duration_ms: u64, tune: impl FnOnce(&mut BalancerConfig)) -> Plan {
    let mut topology = Topology::new();
    topology.add("lb-1", "az-1", "r-1");
    for (i, node) in COLLAB.into_iter().enumerate() {
        topology.add(node, &format!("az-{}", 1 + i), "r-1");
    }
    topology.add("cli", "clients", "r-1");
    let mut plan = Plan::new(topology, duration_ms);
    let mut config = BalancerConfig::new(vec![], vec![], COLLAB.iter().map(|c| c.to_string()).collect());
    (config.health_interval_ms, config.health_timeout_ms) = (200, 150);
    tune(&mut config);
    plan.node("lb-1", node_main(move |ctx| run(ctx, config.clone())));
    for node in COLLAB {
        plan.node(node, node_main(toy));
    }
    plan
}

#[test]
fn a_silent_owner_leaves_rotation_and_the_balancer_closes_its_sessions() {
    // A paused instance resets nothing: only the balancer's probes notice it.
    let owner = rendezvous::owner(DOC, COLLAB).unwrap();
    let second = rendezvous::ranked(DOC, COLLAB)[1];
    let mut plan = one_balancer(4_000, |_| {});
    let log: Log = Arc::default();
    let l = log.clone();
    plan.client(
        "cli",
        node_main(move |ctx| {
            let log = l.clone();
            async move {
                sim::timer::sleep(Duration::from_millis(1_000)).await;
                let (mut session, instance) = reconnect(&ctx, "lb-1", DOC).await;
                note(&log, ctx.clock.now_ms(), format!("on {instance}"));
                let closed = ended(&mut session, Duration::from_secs(3)).await;
                note(&log, ctx.clock.now_ms(), format!("closed {closed}"));
                let (_session, instance) = reconnect(&ctx, "lb-1", DOC).await;
                note(&log, ctx.clock.now_ms(), format!("moved {instance}"));
            }
        }),
    );
    plan.at(2_000, Fault::Pause(Target::node(owner)));
    let outcome = sim::engine::run(plan, RunOptions { seed: 5, ..Default::default() });
    let log_text = format!("{:#?}", log.lock().unwrap());
    assert!(first(&log, &format!("on {owner}")).is_some(), "{log_text}");
    // Three failed probes 200 ms apart, each failing at its 150 ms timeout.
    let (t, _) = first(&log, "closed true").expect(&log_text);
    assert!((2_400..3_000).contains(&t), "session closed at {t}: {log_text}");
    let (t, _) = first(&log, &format!("moved {second}")).expect(&log_text);
    assert!(t < 3_200, "the editor reached the new owner at {t}: {log_text}");
    outcome.observations(|o| {
        let ends: Vec<_> = o.of::<SessionEnded>().map(|e| (e.value.instance, e.value.end)).collect();
        // (The second session ends when the client's task does.)
        assert_eq!(ends[0], (owner.to_string(), SessionEnd::Moved), "{ends:?}");
    });
}

#[test]
fn connections_beyond_the_limit_and_slow_heads_are_cut() {
    let mut plan = one_balancer(3_000, |c| (c.head_timeout_ms, c.max_connections) = (1_000, 2));
    let log: Log = Arc::default();
    let l = log.clone();
    plan.client(
        "cli",
        node_main(move |ctx| {
            let log = l.clone();
            async move {
                sim::timer::sleep(Duration::from_millis(1_000)).await;
                // A head that never ends is cut at the head timeout.
                let mut slow = ctx.net.connect("lb-1", HTTP_PORT).await.expect("connect");
                slow.write_all(b"GET /collab/acme/plan HTTP/1.1\r\nx: ").await.unwrap();
                slow.flush().await.unwrap();
                let cut = ended(&mut slow, Duration::from_millis(1_500)).await;
                note(&log, ctx.clock.now_ms(), format!("slow cut {cut}"));
                // An oversized head is refused with 413.
                let mut big = ctx.net.connect("lb-1", HTTP_PORT).await.expect("connect");
                let head = format!("GET /docs/a/b HTTP/1.1\r\nx: {}\r\n\r\n", "a".repeat(crate::http::MAX_HEAD_BYTES));
                let _ = big.write_all(head.as_bytes()).await;
                let _ = big.flush().await;
                let status = sim::timer::timeout(Duration::from_secs(1), read_response(&mut big)).await;
                note(&log, ctx.clock.now_ms(), format!("big {:?}", status.ok().and_then(|r| r.ok()).map(|r| r.status)));
                // Two sessions fill the limit; a third connection is closed on accept.
                let (_a, _) = reconnect(&ctx, "lb-1", DOC).await;
                let (_b, _) = reconnect(&ctx, "lb-1", DOC).await;
                let third = upgrade(&ctx, "lb-1", DOC).await;
                note(&log, ctx.clock.now_ms(), format!("third {}", third.is_some()));
            }
        }),
    );
    sim::engine::run(plan, RunOptions { seed: 7, ..Default::default() });
    let log_text = format!("{:#?}", log.lock().unwrap());
    let (t, _) = first(&log, "slow cut true").expect(&log_text);
    assert!((1_990..2_100).contains(&t), "cut at the head timeout: {log_text}");
    assert!(first(&log, "big Some(413)").is_some(), "{log_text}");
    assert!(first(&log, "third false").is_some(), "{log_text}");
}
