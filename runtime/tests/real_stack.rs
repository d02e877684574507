//! The whole stack on the real runtime, driven as an operator and a user would: `stack up` on a
//! temporary data dir, sign-up and login over HTTP through a balancer, a y-sync edit over a
//! WebSocket, acknowledged and read back from a second connection; a stop and a second `up` on
//! the same data dir that reads the document back unchanged; then a SIGKILL of the
//! collaboration instance owning the document, an edit made while it is down (the client
//! reconnects through the balancer), its restart, and the document read back whole.
#![cfg(not(madsim))]

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use system::collab::protocol::{decode, encode_step1, encode_step2, encode_update, ws_config, Frame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use yrs::{GetString, ReadTxn, StateVector, Text, Transact};

mod common;
use common::{free_base, Up, STACK};

const TENANT: &str = "acme";
const DOC: &str = "notes";
/// A generous bound for a loaded 2-core machine; it fails the test, it measures nothing.
const REPLY_WITHIN: Duration = Duration::from_secs(60);

/// `stack <args>` against the data dir; its stdout, asserting success.
fn stack(data: &Path, args: &[&str]) -> String {
    let out = Command::new(STACK).args(args).arg("--data-dir").arg(data).output().expect("run stack");
    assert!(out.status.success(), "stack {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8")
}

/// The exit code of `stack <args>` against the data dir.
fn exit_code(data: &Path, args: &[&str]) -> i32 {
    let out = Command::new(STACK).args(args).arg("--data-dir").arg(data).output().expect("run stack");
    out.status.code().expect("an exit code")
}

fn balancer(data: &Path) -> SocketAddr {
    let endpoints: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.join("endpoints.json")).expect("endpoints.json")).unwrap();
    let http = endpoints["balancers"][0]["http"].as_str().expect("a balancer");
    http.trim_start_matches("http://").parse().expect("an address")
}

/// One HTTP/1.1 request (the API closes the connection after answering): status and body.
async fn http(addr: SocketAddr, method: &str, path: &str, body: &serde_json::Value) -> (u16, String) {
    let body = body.to_string();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut conn = TcpStream::connect(addr).await.expect("connect to the balancer");
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    conn.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response).to_string();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

/// Logs in as the tenant's admin (signing up first if asked); retries while the answer is a
/// 5xx (an instance still finding its store).
async fn login(lb: SocketAddr, signup: bool) -> String {
    let creds = serde_json::json!({ "tenant": TENANT, "user": "ada", "password": "correct horse battery" });
    if signup {
        let (status, body) = retry_5xx(lb, "/auth/signup", &creds).await;
        assert_eq!(status, 201, "sign-up: {body}");
    }
    let (status, body) = retry_5xx(lb, "/auth/login", &creds).await;
    assert_eq!(status, 200, "login: {body}");
    let reply: serde_json::Value = serde_json::from_str(&body).expect("login JSON");
    reply["token"].as_str().expect("a token").to_string()
}

async fn retry_5xx(lb: SocketAddr, path: &str, body: &serde_json::Value) -> (u16, String) {
    for _ in 0..60 {
        let (status, text) = http(lb, "POST", path, body).await;
        if status < 500 {
            return (status, text);
        }
        sim::timer::sleep(Duration::from_millis(500)).await;
    }
    panic!("{path} kept failing with 5xx");
}

type Ws = WebSocketStream<TcpStream>;

/// A y-sync connection to the document through the balancer, with acknowledgements; retried
/// while the balancer has no live owner for it yet.
async fn open(lb: SocketAddr, token: &str) -> Ws {
    let url = format!("ws://{lb}/collab/{TENANT}/{DOC}?token={token}&ack=1");
    for _ in 0..120 {
        let conn = TcpStream::connect(lb).await.expect("connect to the balancer");
        match tokio_tungstenite::client_async_with_config(&url, conn, Some(ws_config())).await {
            Ok((ws, _)) => return ws,
            Err(e) => eprintln!("collab connection refused ({e}); retrying"),
        }
        sim::timer::sleep(Duration::from_millis(500)).await;
    }
    panic!("no collaboration connection through {lb}");
}

/// Syncs `doc` with the server: sends our state vector, answers the server's with what it
/// lacks (edits made offline), applies what comes back until the server's step 2 arrived.
async fn sync(ws: &mut Ws, doc: &yrs::Doc) {
    let sv = doc.transact().state_vector();
    ws.send(Message::binary(encode_step1(&sv))).await.expect("send step 1");
    pump(ws, doc, |frame| matches!(frame, Frame::SyncStep2(..))).await;
}

/// Handles frames as a Yjs client does until `done` says so about one of them.
async fn pump(ws: &mut Ws, doc: &yrs::Doc, mut done: impl FnMut(&Frame) -> bool) {
    loop {
        let msg = sim::timer::timeout(REPLY_WITHIN, ws.next())
            .await
            .expect("the server went silent")
            .expect("the connection ended")
            .expect("a WebSocket message");
        let Message::Binary(bytes) = msg else { continue };
        let frame = decode(&bytes).expect("a y-sync frame");
        let finished = done(&frame);
        match frame {
            Frame::SyncStep1(sv) => {
                let diff = doc.transact().encode_state_as_update_v1(&sv);
                ws.send(Message::binary(encode_step2(diff))).await.expect("send step 2");
            }
            Frame::SyncStep2(_, update) | Frame::Update(_, update) => {
                doc.transact_mut().apply_update(update).expect("apply an update");
            }
            Frame::Awareness(_) | Frame::AwarenessQuery | Frame::Ack(_) => {}
        }
        if finished {
            return;
        }
    }
}

/// Appends `text` locally; the (client, clock end) an acknowledgement must cover.
fn edit(doc: &yrs::Doc, text: &str) -> (u64, u32) {
    let body = doc.get_or_insert_text("content");
    let mut txn = doc.transact_mut();
    let len = body.len(&txn);
    body.insert(&mut txn, len, text);
    drop(txn);
    let client = doc.client_id();
    (client.get(), doc.transact().state_vector().get(&client))
}

/// Waits for the server's acknowledgement of `client`'s edits up to `end` (they are in the
/// durable log).
async fn acked(ws: &mut Ws, doc: &yrs::Doc, (client, end): (u64, u32)) {
    pump(
        ws,
        doc,
        |frame| matches!(frame, Frame::Ack(ranges) if ranges.iter().any(|r| r.client == client && r.clock_end >= end)),
    )
    .await;
}

/// The text a fresh connection reads once it is `want`, or the last one read: an instance that
/// just took a document over may still be catching up with the log.
async fn settled(lb: SocketAddr, token: &str, want: &str) -> String {
    let mut last = String::new();
    for _ in 0..30 {
        last = read_back(lb, token).await;
        if last == want {
            break;
        }
        sim::timer::sleep(Duration::from_secs(1)).await;
    }
    last
}

fn text_of(doc: &yrs::Doc) -> String {
    doc.get_or_insert_text("content").get_string(&doc.transact())
}

/// The document's text as a fresh connection sees it.
async fn read_back(lb: SocketAddr, token: &str) -> String {
    let mut ws = open(lb, token).await;
    let doc = yrs::Doc::with_client_id(1);
    sync(&mut ws, &doc).await;
    let _ = ws.close(None).await;
    text_of(&doc)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stack_serves_edits_survives_a_restart_and_a_killed_collab_instance() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("stack");
    let base = free_base(1);

    assert_eq!(exit_code(&data, &["status"]), 1, "no stack is running yet");
    // First life: sign up, log in, edit, read back from a second connection.
    let up = Up::start(&data, base).await;
    assert_eq!(exit_code(&data, &["kill", "no-such-node"]), 2, "an unknown node is a usage error");
    let lb = balancer(&data);
    let token = login(lb, true).await;
    let mut ws = open(lb, &token).await;
    let doc = yrs::Doc::with_client_id(41);
    sync(&mut ws, &doc).await;
    let typed = edit(&doc, "hello");
    let update = doc.transact().encode_state_as_update_v1(&StateVector::default());
    ws.send(Message::binary(encode_update(update))).await.expect("send update");
    acked(&mut ws, &doc, typed).await;
    assert_eq!(read_back(lb, &token).await, "hello");
    let _ = ws.close(None).await;
    let status = stack(&data, &["status"]);
    assert!(status.contains("lb-1") && status.contains("pg-1"), "{status}");
    up.stop().await;

    // Second life on the same data dir: the account and the document are still there.
    let up = Up::start(&data, base).await;
    let token = login(lb, false).await;
    assert_eq!(read_back(lb, &token).await, "hello", "the document after a restart");

    // Kill the document's collaboration instance under a connected client, which edits while
    // its connection is gone, reconnects through the balancer (the surviving instance takes
    // the document) and syncs the offline edit; then restart the instance.
    let owner = {
        let out = Command::new(STACK).args(["owner", &format!("{TENANT}/{DOC}")]).output().unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    assert!(owner.starts_with("collab-"), "owner {owner:?}");
    let mut ws = open(lb, &token).await;
    let doc = yrs::Doc::with_client_id(42);
    sync(&mut ws, &doc).await;
    assert_eq!(text_of(&doc), "hello");
    let killed = tokio::task::block_in_place(|| stack(&data, &["kill", &owner]));
    assert!(killed.contains("killed"), "{killed}");
    let typed = edit(&doc, " world");
    let _ = ws.close(None).await;
    let mut ws = open(lb, &token).await;
    sync(&mut ws, &doc).await;
    acked(&mut ws, &doc, typed).await;
    let _ = ws.close(None).await;
    let restarted = tokio::task::block_in_place(|| stack(&data, &["restart", &owner]));
    assert!(restarted.contains("healthy"), "{restarted}");
    assert_eq!(settled(lb, &token, "hello world").await, "hello world", "the edit made while the owner was down");
    up.stop().await;
}
