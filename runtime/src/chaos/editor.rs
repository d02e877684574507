//! One chaos editor: a y-sync client over `system::collab::protocol` that asks for the
//! durability acknowledgements, types seeded edits at a human-ish rate into one document
//! through one balancer, and reconnects with jittered backoff whenever its connection goes.
//! What it saw acknowledged is kept in [`Seen`] for the verdict.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use system::collab::protocol::{decode, encode_step1, encode_step2, encode_update, ws_config, Frame};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use yrs::{GetString, ReadTxn, StateVector, Text, Transact};

/// What the editor does now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Typing,
    /// Stops typing; stays connected so its edits get acknowledged and others' arrive.
    Quiet,
    Close,
}

/// Longest silence on a connection with unacknowledged edits before the editor gives it up.
const SILENT_LIMIT: Duration = Duration::from_secs(8);
const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(3);

#[derive(Clone, Debug)]
pub struct EditorSpec {
    pub name: String,
    pub doc: String,
    pub client: u64,
    pub lb: SocketAddr,
    pub token: String,
    pub seed: u64,
}

/// What the editor saw, shared with the run.
#[derive(Debug, Default)]
pub struct Seen {
    /// Its insertions, as clock ranges of its client.
    pub edits: Vec<(u32, u32)>,
    /// Acknowledged ranges of its own client, merged.
    pub acked: Vec<(u32, u32)>,
    /// When each acknowledgement arrived.
    pub ack_times: Vec<Instant>,
    pub connects: u32,
    pub text: String,
    pub sv: Vec<(u64, u32)>,
}

impl Seen {
    fn ack(&mut self, start: u32, end: u32, at: Instant) {
        if start >= end {
            return;
        }
        self.acked.push((start, end));
        self.acked.sort_unstable();
        let mut merged: Vec<(u32, u32)> = Vec::new();
        for &(s, e) in &self.acked {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        self.acked = merged;
        self.ack_times.push(at);
    }

    /// Whether every clock it typed is acknowledged.
    pub fn all_acked(&self) -> bool {
        let end = self.edits.last().map_or(0, |e| e.1);
        end == 0 || self.acked.first().is_some_and(|(s, e)| *s == 0 && *e >= end)
    }
}

type Ws = WebSocketStream<TcpStream>;

/// Runs the editor until the phase is `Close`.
pub async fn run(spec: EditorSpec, seen: Arc<Mutex<Seen>>, mut phase: watch::Receiver<Phase>) {
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let doc = yrs::Doc::with_client_id(spec.client);
    let mut backoff = BACKOFF_MIN;
    while *phase.borrow() != Phase::Close {
        match connect(&spec).await {
            Ok(ws) => {
                seen.lock().expect("seen").connects += 1;
                backoff = BACKOFF_MIN;
                if let Err(why) = session(&spec, ws, &doc, &seen, &mut phase, &mut rng).await {
                    tracing::info!(editor = %spec.name, %why, "connection lost; reconnecting");
                }
            }
            Err(why) => tracing::info!(editor = %spec.name, %why, "cannot connect"),
        }
        if *phase.borrow() == Phase::Close {
            break;
        }
        let jitter = rng.gen_range(0..=backoff.as_millis() as u64 / 2);
        sim::timer::sleep(backoff + Duration::from_millis(jitter)).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
    snapshot(&doc, &seen);
}

fn snapshot(doc: &yrs::Doc, seen: &Mutex<Seen>) {
    let text = doc.get_or_insert_text("content").get_string(&doc.transact());
    let sv: Vec<(u64, u32)> = doc.transact().state_vector().iter().map(|(c, k)| (c.get(), *k)).collect();
    let mut s = seen.lock().expect("seen");
    s.text = text;
    s.sv = sv;
}

async fn connect(spec: &EditorSpec) -> anyhow::Result<Ws> {
    let url = format!("ws://{}/collab/{}?token={}&ack=1", spec.lb, spec.doc, spec.token);
    let attempt = async {
        let conn = TcpStream::connect(spec.lb).await?;
        let (ws, _) = tokio_tungstenite::client_async_with_config(&url, conn, Some(ws_config())).await?;
        anyhow::Ok(ws)
    };
    sim::timer::timeout(Duration::from_secs(5), attempt).await.map_err(|_| anyhow::anyhow!("connect timed out"))?
}

/// One connection's life: sync, then type and handle frames until it fails or the run closes.
async fn session(
    spec: &EditorSpec,
    mut ws: Ws,
    doc: &yrs::Doc,
    seen: &Mutex<Seen>,
    phase: &mut watch::Receiver<Phase>,
    rng: &mut StdRng,
) -> anyhow::Result<()> {
    let sv = doc.transact().state_vector();
    ws.send(Message::binary(encode_step1(&sv))).await?;
    let mut next_key = Instant::now() + pause(rng);
    let mut last_heard = Instant::now();
    loop {
        let typing = *phase.borrow() == Phase::Typing;
        let unacked = !seen.lock().expect("seen").all_acked();
        if unacked && last_heard.elapsed() > SILENT_LIMIT {
            anyhow::bail!("silent for {SILENT_LIMIT:?} with unacknowledged edits");
        }
        tokio::select! {
            msg = ws.next() => {
                let msg = msg.ok_or_else(|| anyhow::anyhow!("the connection ended"))??;
                last_heard = Instant::now();
                let Message::Binary(bytes) = msg else { continue };
                match decode(&bytes)? {
                    Frame::SyncStep1(sv) => {
                        let diff = doc.transact().encode_state_as_update_v1(&sv);
                        ws.send(Message::binary(encode_step2(diff))).await?;
                    }
                    Frame::SyncStep2(_, update) | Frame::Update(_, update) => {
                        doc.transact_mut().apply_update(update)?;
                        snapshot(doc, seen);
                    }
                    Frame::Ack(ranges) => {
                        let now = Instant::now();
                        let mut s = seen.lock().expect("seen");
                        for r in ranges.iter().filter(|r| r.client == spec.client) {
                            s.ack(r.clock_start, r.clock_end, now);
                        }
                    }
                    Frame::Awareness(_) | Frame::AwarenessQuery => {}
                }
            }
            () = sim::timer::sleep_until(next_key), if typing => {
                next_key = Instant::now() + pause(rng);
                let before = doc.transact().state_vector();
                type_one(doc, rng, seen);
                let update = doc.transact().encode_state_as_update_v1(&before);
                snapshot(doc, seen);
                ws.send(Message::binary(encode_update(update))).await?;
            }
            () = sim::timer::sleep(Duration::from_millis(500)) => {}
            changed = phase.changed() => {
                if changed.is_err() || *phase.borrow() == Phase::Close {
                    let _ = ws.close(None).await;
                    return Ok(());
                }
            }
        }
    }
}

/// A human-ish pause between keystrokes: mostly 100-400 ms, sometimes a second of thought.
fn pause(rng: &mut StdRng) -> Duration {
    if rng.gen_bool(0.1) {
        Duration::from_millis(rng.gen_range(600..1_500))
    } else {
        Duration::from_millis(rng.gen_range(100..400))
    }
}

/// One seeded edit: mostly a short insertion at a random place, sometimes a deletion.
fn type_one(doc: &yrs::Doc, rng: &mut StdRng, seen: &Mutex<Seen>) {
    let body = doc.get_or_insert_text("content");
    let client = doc.client_id();
    let mut txn = doc.transact_mut();
    let len = body.len(&txn);
    if len > 8 && rng.gen_bool(0.15) {
        let at = rng.gen_range(0..len);
        body.remove_range(&mut txn, at, 1);
        return;
    }
    let at = rng.gen_range(0..=len);
    let n = rng.gen_range(1..=3);
    let word: String = (0..n).map(|_| char::from(b'a' + rng.gen_range(0..26u8))).collect();
    let start = txn.state_vector().get(&client);
    body.insert(&mut txn, at, &word);
    let end = txn.state_vector().get(&client);
    drop(txn);
    seen.lock().expect("seen").edits.push((start, end));
}

/// Unused by the editor but by the read-back: the state vector of a document as pairs.
pub fn sv_pairs(sv: &StateVector) -> Vec<(u64, u32)> {
    sv.iter().map(|(c, k)| (c.get(), *k)).collect()
}
