//! The service under the simulator (turmoil in `cargo test`): a collaboration node, a Kafka
//! cluster, a stand-in document service, two editors speaking y-sync over WebSockets, a
//! read-only user and an attacker. The editors converge, get acknowledgements of their own
//! edits (after the log has them), a revoked editor is cut off within the bound, and neither the read-only user's nor the attacker's bytes
//! reach the document.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use sim::{node_main, NodeCtx, Plan, RunOptions, Topology};
use tokio_tungstenite::tungstenite::Message;
use yrs::{Doc, GetString, ReadTxn, StateVector, Text, Transact};

use super::gate::{FakeGate, Perm, REVOCATION_BOUND_MS};
use super::observe::{AckSent, RoomOpened, SessionAdmitted, SessionClosed, SessionRefused, UpdateApplied};
use super::protocol::{self, AckRange, Frame};
use super::{CollabConfig, HTTP_PORT};
use crate::doc_update::TOPIC;
use crate::http;
use crate::kafka::KafkaClusterSpec;

/// When the admin revokes editor-3's permission.
const REVOKE_AT_MS: u64 = 5_000;

#[derive(Debug, Default, Clone)]
struct Seen {
    text: String,
    sv: Vec<(u64, u32)>,
    acked: Vec<AckRange>,
    client: u64,
    refused_status: Option<u16>,
    closed: bool,
}

type Results = Arc<Mutex<BTreeMap<String, Seen>>>;

fn url(token: &str) -> String {
    format!("ws://collab-1:{HTTP_PORT}/collab/acme/plan?token={token}&ack=1")
}

async fn connect(ctx: &NodeCtx) -> sim::net::Conn {
    loop {
        match ctx.net.connect("collab-1", HTTP_PORT).await {
            Ok(c) => return c,
            Err(_) => sim::timer::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// An editor: types `text` one character every 200 ms at the end of its document, answers
/// sync steps, applies what it receives, and records its acks.
async fn editor(ctx: NodeCtx, token: &'static str, client: u64, text: &'static str, until_ms: u64, results: Results) {
    sim::timer::sleep(Duration::from_millis(500)).await;
    let conn = connect(&ctx).await;
    let (mut ws, _) = tokio_tungstenite::client_async(url(token), conn).await.expect("handshake");
    let doc = Doc::with_client_id(client);
    let t = doc.get_or_insert_text("t");
    ws.send(Message::Binary(protocol::encode_step1(&doc.transact().state_vector()).into())).await.unwrap();
    let mut acked = Vec::new();
    let mut chars = text.chars();
    let mut typing = sim::timer::interval(Duration::from_millis(200));
    while ctx.clock.now_ms() < until_ms {
        tokio::select! {
            biased;
            msg = ws.next() => {
                let bytes = match msg {
                    Some(Ok(Message::Binary(bytes))) => bytes,
                    Some(Ok(_)) => continue,
                    _ => break,
                };
                match protocol::decode(&bytes).expect("the server sends valid frames") {
                    Frame::SyncStep1(sv) => {
                        let reply = protocol::encode_step2(doc.transact().encode_state_as_update_v1(&sv));
                        if ws.send(Message::Binary(reply.into())).await.is_err() {
                            break;
                        }
                    }
                    Frame::SyncStep2(_, u) | Frame::Update(_, u) => doc.transact_mut().apply_update(u).unwrap(),
                    Frame::Ack(r) => acked.extend(r),
                    _ => {}
                }
            }
            _ = typing.tick() => {
                if let Some(c) = chars.next() {
                    let update = {
                        let mut txn = doc.transact_mut();
                        let len = t.len(&txn);
                        t.insert(&mut txn, len, &c.to_string());
                        txn.encode_update_v1()
                    };
                    if ws.send(Message::Binary(protocol::encode_update(update).into())).await.is_err() {
                        break;
                    }
                }
            }
        }
    }
    let txn = doc.transact();
    let mut sv: Vec<_> = txn.state_vector().iter().map(|(c, k)| (c.get(), *k)).collect();
    sv.sort();
    let seen = Seen { text: t.get_string(&txn), sv, acked, client, ..Default::default() };
    results.lock().unwrap().insert(ctx.name.clone(), seen);
}

/// A read-only user who writes anyway: the server must close it.
async fn reader(ctx: NodeCtx, results: Results) {
    sim::timer::sleep(Duration::from_millis(3_000)).await;
    let conn = connect(&ctx).await;
    let (mut ws, _) = tokio_tungstenite::client_async(url("reader"), conn).await.expect("handshake");
    let doc = Doc::with_client_id(77);
    let update = {
        let t = doc.get_or_insert_text("t");
        let mut txn = doc.transact_mut();
        t.insert(&mut txn, 0, "ZZZ");
        txn.encode_update_v1()
    };
    ws.send(Message::Binary(protocol::encode_update(update).into())).await.unwrap();
    let mut closed = false;
    while let Ok(Some(msg)) = sim::timer::timeout(Duration::from_secs(5), ws.next()).await {
        if matches!(msg, Ok(Message::Close(_)) | Err(_)) {
            closed = true;
            break;
        }
    }
    results.lock().unwrap().insert(ctx.name.clone(), Seen { closed, ..Default::default() });
}

/// An attacker: a forged token, then a good token with a malformed frame.
async fn attacker(ctx: NodeCtx, results: Results) {
    sim::timer::sleep(Duration::from_millis(2_000)).await;
    let conn = connect(&ctx).await;
    let refused_status = match tokio_tungstenite::client_async(url("forged"), conn).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Some(resp.status().as_u16()),
        _ => None,
    };
    let conn = connect(&ctx).await;
    let (mut ws, _) = tokio_tungstenite::client_async(url("mallory"), conn).await.expect("handshake");
    ws.send(Message::Binary(vec![0, 2, 200, 200, 200, 200, 200, 1].into())).await.unwrap();
    let mut closed = false;
    while let Ok(Some(msg)) = sim::timer::timeout(Duration::from_secs(5), ws.next()).await {
        if matches!(msg, Ok(Message::Close(_)) | Err(_)) {
            closed = true;
            break;
        }
    }
    results.lock().unwrap().insert(ctx.name.clone(), Seen { refused_status, closed, ..Default::default() });
}

/// The document service's contract, for a new document: an empty state.
async fn fake_docs(ctx: NodeCtx) {
    let listener = ctx.net.bind(HTTP_PORT).await.expect("bind");
    loop {
        let Ok((mut conn, _)) = listener.accept().await else { continue };
        tokio::spawn(async move {
            let Ok(req) = http::read_request(&mut conn).await else { return };
            let empty = Doc::with_client_id(1).transact().encode_state_as_update_v1(&StateVector::default());
            let resp = if req.path == "/docs/acme/plan/state" {
                http::Response::new(200, empty)
            } else {
                http::Response::error(404, "no such document")
            };
            let _ = http::write_response(&mut conn, &resp).await;
        });
    }
}

#[test]
fn editors_converge_get_durable_acks_and_bad_clients_are_closed() {
    let until_ms = 12_000;
    let mut plan = Plan::new(Topology::new(), until_ms + 1_000);
    let mut spec = KafkaClusterSpec::new("kafka");
    spec.controllers = 1;
    spec.topics = vec![(TOPIC.into(), 2)];
    let kafka = spec.add_to(&mut plan);
    for (name, zone) in [("collab-1", "az-1"), ("docs-1", "az-2")] {
        plan.topology.add(name, zone, "region-1");
    }
    for name in ["editor-1", "editor-2", "editor-3", "reader-1", "attacker-1", "admin-1"] {
        plan.topology.add(name, "clients", "region-1");
    }
    let far = u64::MAX / 2;
    let gate = FakeGate::new()
        .token("ann", "acme", "ann", Perm::Write, far)
        .token("bob", "acme", "bob", Perm::Write, far)
        .token("reader", "acme", "rita", Perm::Read, far)
        .token("mallory", "acme", "mallory", Perm::Write, far)
        .token("carl", "acme", "carl", Perm::Write, far);
    let admin_gate = gate.clone();
    let config = CollabConfig::new(kafka.clone(), vec!["docs-1".into()], Arc::new(gate));
    plan.node("collab-1", node_main(move |ctx| super::run(ctx, config.clone())));
    plan.node("docs-1", node_main(fake_docs));
    let results: Results = Arc::default();
    let r = results.clone();
    plan.client("editor-1", node_main(move |ctx| editor(ctx, "ann", 11, "hello", until_ms, r.clone())));
    let r = results.clone();
    plan.client("editor-2", node_main(move |ctx| editor(ctx, "bob", 22, "world", until_ms, r.clone())));
    let r = results.clone();
    plan.client(
        "editor-3",
        node_main(move |ctx| {
            editor(ctx, "carl", 33, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", until_ms, r.clone())
        }),
    );
    plan.client(
        "admin-1",
        node_main(move |_ctx| {
            let g = admin_gate.clone();
            async move {
                sim::timer::sleep(Duration::from_millis(REVOKE_AT_MS)).await;
                g.revoke("carl");
            }
        }),
    );
    let r = results.clone();
    plan.client("reader-1", node_main(move |ctx| reader(ctx, r.clone())));
    let r = results.clone();
    plan.client("attacker-1", node_main(move |ctx| attacker(ctx, r.clone())));
    let outcome = sim::engine::run(plan, RunOptions { seed: 3, ..Default::default() });

    let seen = results.lock().unwrap().clone();
    let (a, b) = (&seen["editor-1"], &seen["editor-2"]);
    assert_eq!(a.text, b.text, "editors converge");
    assert_eq!(a.sv, b.sv);
    assert!(a.text.chars().filter(|c| *c != 'x').count() == 10, "{}", a.text);
    assert!(!a.text.contains('Z'), "the read-only user's edit never reached the document");
    for e in [a, b] {
        // Each editor typed 5 characters (clocks 0..5) and every one is acknowledged.
        let mut covered = [false; 5];
        for r in e.acked.iter().filter(|r| r.client == e.client) {
            for clock in r.clock_start..r.clock_end {
                covered[clock as usize] = true;
            }
        }
        assert!(covered.iter().all(|c| *c), "{:?} acked {:?}", e.client, e.acked);
        assert!(e.acked.iter().all(|r| r.client == e.client), "acks only of one's own edits");
    }
    assert!(seen["reader-1"].closed, "a read-only session writing is closed");
    assert_eq!(seen["attacker-1"].refused_status, Some(401));
    assert!(seen["attacker-1"].closed, "a malformed frame closes the connection");

    outcome.observations(|o| {
        assert_eq!(o.of::<RoomOpened>().count(), 1);
        assert!(o.of::<UpdateApplied>().count() >= 10);
        assert!(o.of::<AckSent>().count() >= 2);
        assert!(o.of::<SessionRefused>().any(|s| s.value.status == 401));
        let reasons: Vec<String> = o.of::<SessionClosed>().map(|s| s.value.reason).collect();
        assert!(reasons.iter().any(|r| r == "malformed"), "{reasons:?}");
        assert!(reasons.iter().any(|r| r == "read_only_write"), "{reasons:?}");
        // The revoked editor's edits stop within the bound, and its session is closed.
        let carl = o.of::<SessionAdmitted>().find(|s| s.value.user == "carl").expect("carl admitted").value.session;
        let last = o.of::<UpdateApplied>().filter(|u| u.value.session == carl).map(|u| u.t_ms).max().unwrap();
        assert!(last > REVOKE_AT_MS - 1_000 && last <= REVOKE_AT_MS + REVOCATION_BOUND_MS, "last carl edit at {last}");
        assert!(o.of::<SessionClosed>().any(|s| s.value.session == carl && s.value.reason == "revoked"));
    });
    // Every acknowledged update is in the log.
    let logs = kafka.final_logs(&outcome.world);
    let records: usize = logs
        .iter()
        .filter(|(tp, _)| tp.topic == TOPIC)
        .map(|(_, p)| p.replicas.values().map(Vec::len).max().unwrap_or(0))
        .sum();
    assert!(records >= 10, "{records} records in the log");
}
