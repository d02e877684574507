//! The load generator: N y-sync clients on one document, each sending a prebuilt sequence of
//! small insertions, each receiving everyone else's and timing its fan-out.
//!
//! Every update is built before the clock starts (a client's own yrs document, one 4-character
//! insertion at a time), so sending is a memcpy. A receiver never integrates what it gets: it
//! reads only the update's header — (client, clock) of its one struct — which names the sender
//! and the sequence number (clock / 4), hence the send time. Receivers keep, per sender, the next
//! sequence number they expect; updates arrive in order on one TCP stream, so that is exactly
//! the clock a yrs document would hold for that sender, i.e. the receiver's state vector. A
//! fresh client that syncs the whole document from the server at the end checks the server's
//! own state vector with real yrs.
//!
//! Open loop: sender j sends update s at `t0 + (s + j/N) / rate`, whether or not the server
//! keeps up, and latency counts from that scheduled time, so a stalled server shows as latency
//! rather than as fewer samples (no coordinated omission). Closed loop: each sender keeps at
//! most `window` updates not yet delivered to every other client — and, against a server that
//! acknowledges durability (ours, `ack=1`), not yet acknowledged to it; latency counts from the
//! actual send. A server that acknowledges must have acknowledged every update by the end, or
//! the run is void; the time from (scheduled) send to acknowledgement is the ack latency.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use tokio::net::TcpStream;
use tokio::sync::{Barrier, Notify};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use yrs::block::ClientID;
use yrs::sync::{Message as YMessage, SyncMessage};
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{Doc, Options, ReadTxn, StateVector, Text, Transact, Update};

/// Characters per insertion: a clock advances by this much per update.
const CHARS: u32 = 4;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    /// A fixed rate per client (updates per second).
    Open { rate: f64 },
    /// As fast as delivery allows, with at most `window` updates in flight per sender.
    Closed { window: u32 },
}

/// One run: where the clients connect and how they load.
pub struct Load {
    /// The WebSocket URL of the document, and the TCP address it is on.
    pub url: String,
    pub host: String,
    pub clients: usize,
    pub mode: Mode,
    pub duration: Duration,
    /// The server acknowledges durable updates (our protocol's extension, asked for with
    /// `ack=1` in `url`).
    pub acks: bool,
}

/// What one run measured.
pub struct Outcome {
    pub deliveries: u64,
    pub elapsed: Duration,
    /// Fan-out latency in microseconds over every sender–receiver pair.
    pub latency: Histogram<u64>,
    /// Send-to-acknowledgement latency in microseconds, when the server acknowledges.
    pub ack_latency: Option<Histogram<u64>>,
    /// Why the run is void (a state vector differs, a client failed), if it is.
    pub void: Option<String>,
}

/// The sender side every receiver consults: per sender, per sequence number, the send time (ns
/// since t0) and how many receivers have it.
struct Shared {
    t0: Instant,
    sent_ns: Vec<Vec<AtomicU64>>,
    delivered: Vec<Vec<AtomicU32>>,
    /// Per sender, how many of its updates the server acknowledged as durable...
    acked: Vec<AtomicU32>,
    /// ...and which: an acknowledgement missing in the middle must show, not hide behind a
    /// later one.
    acked_each: Vec<Vec<AtomicBool>>,
    /// When readers stop waiting for what is missing (ns since t0; set once the senders are done).
    give_up_ns: AtomicU64,
    /// Wakes a closed-loop sender when one of its updates reached everyone or was acknowledged.
    progress: Vec<Notify>,
    client_ids: Vec<u64>,
}

impl Shared {
    fn sender_of(&self, client: u64) -> Option<usize> {
        // Client ids are base + index (see `prebuild`).
        let j = client.checked_sub(self.client_ids[0])? as usize;
        (j < self.client_ids.len()).then_some(j)
    }
}

/// Latencies in microseconds, 1 µs to 60 s at 3 significant digits: every histogram of a run
/// has these bounds, so the clients' histograms add up into the run's.
fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds")
}

/// Client `j`'s updates, each framed as a y-sync update message.
fn prebuild(client_id: u64, count: usize) -> Vec<Vec<u8>> {
    let doc = Doc::with_options(Options::with_client_id(ClientID::new(client_id)));
    let text = doc.get_or_insert_text(scenarios::stack::ydoc::TEXT);
    let mut out = Vec::with_capacity(count);
    for s in 0..count {
        let mut txn = doc.transact_mut();
        let before = txn.state_vector();
        let at = (s as u32) * CHARS;
        text.insert(&mut txn, at, "abcd");
        let update = txn.encode_state_as_update_v1(&before);
        out.push(YMessage::Sync(SyncMessage::Update(update)).encode_v1());
    }
    out
}

fn read_var(buf: &[u8], at: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    let mut shift = 0;
    loop {
        let b = *buf.get(*at)?;
        *at += 1;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(value);
        }
        shift += 7;
        if shift > 63 {
            return None;
        }
    }
}

/// What a frame from the server is, as far as the generator cares.
enum Frame {
    /// Sync step 1: answer with an empty step 2.
    Step1,
    /// Sync step 2: the initial state (empty here).
    Step2,
    /// An update: its first struct's (client, clock).
    Update(u64, u64),
    /// A durability acknowledgement (our extension): the (client, start clock, end clock) of
    /// each range.
    Ack(Vec<(u64, u32, u32)>),
    Other,
}

fn classify(bytes: &[u8]) -> Frame {
    let mut at = 0;
    match (read_var(bytes, &mut at), read_var(bytes, &mut at)) {
        (Some(0), Some(0)) => Frame::Step1,
        (Some(0), Some(1)) => Frame::Step2,
        (Some(0), Some(2)) => {
            let header = (|| {
                let _len = read_var(bytes, &mut at)?;
                let _clients = read_var(bytes, &mut at)?;
                let _structs = read_var(bytes, &mut at)?;
                let client = read_var(bytes, &mut at)?;
                let clock = read_var(bytes, &mut at)?;
                Some((client, clock))
            })();
            match header {
                Some((client, clock)) => Frame::Update(client, clock),
                None => Frame::Other,
            }
        }
        (Some(tag), _) if tag == u64::from(system::collab::protocol::MSG_ACK) => {
            match system::collab::protocol::decode(bytes) {
                Ok(system::collab::protocol::Frame::Ack(ranges)) => {
                    Frame::Ack(ranges.iter().map(|r| (r.client, r.clock_start, r.clock_end)).collect())
                }
                _ => Frame::Other,
            }
        }
        _ => Frame::Other,
    }
}

type Ws = tokio_tungstenite::WebSocketStream<TcpStream>;

async fn connect(load: &Load) -> anyhow::Result<Ws> {
    let conn = TcpStream::connect(&load.host).await.with_context(|| format!("connecting to {}", load.host))?;
    conn.set_nodelay(true)?;
    let (ws, _) =
        tokio_tungstenite::client_async_with_config(&load.url, conn, Some(system::collab::protocol::ws_config()))
            .await
            .with_context(|| format!("WebSocket upgrade at {}", load.url.split('?').next().unwrap_or("")))?;
    Ok(ws)
}

fn empty_step1() -> Vec<u8> {
    YMessage::Sync(SyncMessage::SyncStep1(StateVector::default())).encode_v1()
}

fn empty_step2() -> Vec<u8> {
    YMessage::Sync(SyncMessage::SyncStep2(Update::new().encode_v1())).encode_v1()
}

/// A client's end: per sender, the next sequence number it expected, and its histogram.
struct ClientEnd {
    next: Vec<u32>,
    latency: Histogram<u64>,
    ack_latency: Histogram<u64>,
    deliveries: u64,
    /// When the last delivery arrived (ns since t0).
    last_delivery_ns: u64,
    misordered: u64,
    /// The server's close frame, if it closed the connection.
    closed: Option<String>,
}

/// Runs one load; the caller measures the server around it.
pub async fn run(load: &Load, client_base: u64) -> anyhow::Result<Outcome> {
    let n = load.clients;
    let per_sender = match load.mode {
        Mode::Open { rate } => ((rate * load.duration.as_secs_f64()).ceil() as usize).max(1),
        // Enough for the duration at any plausible speed; senders stop at the deadline.
        Mode::Closed { .. } => 200_000 / n.max(1) + 100,
    };
    let client_ids: Vec<u64> = (0..n as u64).map(|j| client_base + j).collect();
    let updates: Vec<Arc<Vec<Vec<u8>>>> = client_ids.iter().map(|&c| Arc::new(prebuild(c, per_sender))).collect();
    let warm_id = client_base + n as u64;
    warm_up(load, warm_id).await.context("warming up the document")?;
    let mut sockets = Vec::with_capacity(n);
    for _ in 0..n {
        sockets.push(connect(load).await?);
    }
    let shared = Arc::new(Shared {
        t0: Instant::now() + Duration::from_millis(500),
        sent_ns: (0..n).map(|_| (0..per_sender).map(|_| AtomicU64::new(0)).collect()).collect(),
        delivered: (0..n).map(|_| (0..per_sender).map(|_| AtomicU32::new(0)).collect()).collect(),
        acked: (0..n).map(|_| AtomicU32::new(0)).collect(),
        acked_each: (0..n).map(|_| (0..per_sender).map(|_| AtomicBool::new(false)).collect()).collect(),
        give_up_ns: AtomicU64::new(u64::MAX),
        progress: (0..n).map(|_| Notify::new()).collect(),
        client_ids: client_ids.clone(),
    });
    let synced = Arc::new(Barrier::new(n + 1));
    let deadline = shared.t0 + load.duration;
    let sent_counts: Arc<Vec<AtomicU32>> = Arc::new((0..n).map(|_| AtomicU32::new(0)).collect());
    let mut tasks = Vec::new();
    for (j, ws) in sockets.into_iter().enumerate() {
        let (mut sink, mut stream) = ws.split();
        let shared = shared.clone();
        let synced = synced.clone();
        let updates = updates[j].clone();
        let mode = load.mode;
        let acks = load.acks;
        let sent_counts = sent_counts.clone();
        // The receiving half runs as its own task; the sending half shares the sink with the
        // step-2 answer through a channel.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
        let writer = tokio::spawn(async move {
            while let Some(frame) = rx.recv().await {
                sink.send(Message::binary(frame)).await?;
            }
            let _ = sink.close().await;
            anyhow::Ok(())
        });
        let _ = tx.send(empty_step1());
        let reader_shared = shared.clone();
        let reader_tx = tx.clone();
        let total_expected = Arc::new(AtomicU64::new(u64::MAX));
        let expected = total_expected.clone();
        let own_sent = sent_counts.clone();
        let reader = tokio::spawn(async move {
            let shared = reader_shared;
            let mut end = ClientEnd {
                next: vec![0; n],
                latency: latency_histogram(),
                ack_latency: latency_histogram(),
                deliveries: 0,
                last_delivery_ns: 0,
                misordered: 0,
                closed: None,
            };
            let mut synced_once = Some(synced);
            loop {
                // Whole once it has everyone else's updates and, from a server that
                // acknowledges, the acknowledgement of all its own (`expected` is set only
                // once every sender finished, so `own_sent` is final by then).
                if end.deliveries >= expected.load(Ordering::Acquire)
                    && (!acks || shared.acked[j].load(Ordering::Acquire) >= own_sent[j].load(Ordering::Acquire))
                {
                    break;
                }
                if shared.t0.elapsed().as_nanos() as u64 > shared.give_up_ns.load(Ordering::Acquire) {
                    break;
                }
                // Wake now and then to see whether the senders have finished and set the count.
                let msg = tokio::select! {
                    msg = stream.next() => msg,
                    _ = sim::timer::sleep(Duration::from_millis(100)) => continue,
                };
                let Some(msg) = msg else { break };
                let bytes = match msg? {
                    Message::Binary(b) => b,
                    Message::Close(frame) => {
                        end.closed =
                            Some(frame.map_or_else(|| "no reason".into(), |f| format!("{} {}", f.code, f.reason)));
                        break;
                    }
                    _ => continue,
                };
                match classify(&bytes) {
                    Frame::Step1 => {
                        let _ = reader_tx.send(empty_step2());
                    }
                    Frame::Step2 => {
                        if let Some(b) = synced_once.take() {
                            b.wait().await;
                        }
                    }
                    Frame::Update(client, clock) => {
                        let Some(sender) = shared.sender_of(client) else { continue };
                        if sender == j {
                            continue; // the Node server echoes a sender's own updates
                        }
                        let seq = (clock / u64::from(CHARS)) as u32;
                        if seq != end.next[sender] {
                            end.misordered += 1;
                        }
                        end.next[sender] = end.next[sender].max(seq + 1);
                        let now = shared.t0.elapsed().as_nanos() as u64;
                        let sent = shared.sent_ns[sender][seq as usize].load(Ordering::Acquire);
                        end.latency.saturating_record(now.saturating_sub(sent) / 1_000);
                        end.deliveries += 1;
                        end.last_delivery_ns = now;
                        let got = shared.delivered[sender][seq as usize].fetch_add(1, Ordering::AcqRel) + 1;
                        if got as usize == n - 1 {
                            shared.progress[sender].notify_one();
                        }
                    }
                    Frame::Ack(ranges) => {
                        let now = shared.t0.elapsed().as_nanos() as u64;
                        // Update `s` of a sender is its clocks `s * CHARS .. (s + 1) * CHARS`.
                        let mut newly = 0;
                        for &(_, start, stop) in ranges.iter().filter(|&&(c, ..)| shared.sender_of(c) == Some(j)) {
                            for s in (start / CHARS) as usize..stop.div_ceil(CHARS) as usize {
                                let Some(flag) = shared.acked_each[j].get(s) else { break };
                                if !flag.swap(true, Ordering::AcqRel) {
                                    let sent = shared.sent_ns[j][s].load(Ordering::Acquire);
                                    end.ack_latency.saturating_record(now.saturating_sub(sent) / 1_000);
                                    newly += 1;
                                }
                            }
                        }
                        if newly > 0 {
                            shared.acked[j].fetch_add(newly, Ordering::AcqRel);
                            shared.progress[j].notify_one();
                        }
                    }
                    Frame::Other => {}
                }
            }
            anyhow::Ok(end)
        });
        let sender = tokio::spawn(async move {
            sim::timer::sleep_until(shared.t0).await;
            let start = shared.t0;
            for (s, frame) in updates.iter().enumerate() {
                match mode {
                    Mode::Open { rate } => {
                        let at = Duration::from_secs_f64((s as f64 + j as f64 / n as f64) / rate);
                        shared.sent_ns[j][s].store(at.as_nanos() as u64, Ordering::Release);
                        sim::timer::sleep_until(start + at).await;
                    }
                    Mode::Closed { window } => {
                        if Instant::now() >= deadline {
                            break;
                        }
                        if s >= window as usize {
                            let back = s - window as usize;
                            loop {
                                let notified = shared.progress[j].notified();
                                let delivered = shared.delivered[j][back].load(Ordering::Acquire) as usize >= n - 1;
                                let acked = !acks || shared.acked_each[j][back].load(Ordering::Acquire);
                                if delivered && acked {
                                    break;
                                }
                                if sim::timer::timeout(Duration::from_secs(10), notified).await.is_err() {
                                    return;
                                }
                            }
                        }
                        shared.sent_ns[j][s].store(shared.t0.elapsed().as_nanos() as u64, Ordering::Release);
                    }
                }
                if tx.send(frame.clone()).is_err() {
                    return;
                }
                sent_counts[j].fetch_add(1, Ordering::Release);
            }
        });
        tasks.push((reader, writer, sender, total_expected));
    }
    sim::timer::timeout(Duration::from_secs(30), synced.wait()).await.context("clients did not sync in 30 s")?;
    // Wait for the senders, then tell each reader how many deliveries make it whole.
    for (_, _, sender, _) in &mut tasks {
        sender.await?;
    }
    let sent: Vec<u32> = sent_counts.iter().map(|c| c.load(Ordering::Acquire)).collect();
    let total_sent: u64 = sent.iter().map(|&c| u64::from(c)).sum();
    let last_send = Instant::now();
    // An overloaded server delivers long after the last send: it gets three times the run's
    // length (at least 20 s) to catch up before the run is void.
    let drain = (load.duration * 3).max(Duration::from_secs(20));
    shared.give_up_ns.store((last_send + drain - shared.t0).as_nanos() as u64, Ordering::Release);
    let mut latency = latency_histogram();
    let mut ack_latency = latency_histogram();
    let mut deliveries = 0u64;
    let mut void = None;
    let mut ends = Vec::new();
    for (j, (_, _, _, expected)) in tasks.iter().enumerate() {
        expected.store(total_sent - u64::from(sent[j]), Ordering::Release);
    }
    for (j, (reader, writer, _, _)) in tasks.into_iter().enumerate() {
        let want = total_sent - u64::from(sent[j]);
        // A reader that already has everything stopped at the count; others stop at the drain
        // deadline with what they have (this bound is for a reader that hangs).
        let drained = last_send + drain + Duration::from_secs(5);
        match tokio::time::timeout_at(drained, reader).await {
            Ok(Ok(Ok(end))) => {
                let closed = end.closed.as_ref().map(|c| format!(" (the server closed it: {c})")).unwrap_or_default();
                if end.deliveries != want && void.is_none() {
                    void = Some(format!(
                        "client {j} received {} of {want} updates within {} s of the last send{closed}",
                        end.deliveries,
                        drain.as_secs()
                    ));
                }
                let acked = shared.acked[j].load(Ordering::Acquire);
                if load.acks && acked < sent[j] && void.is_none() {
                    void = Some(format!("client {j} had {acked} of its {} updates acknowledged{closed}", sent[j]));
                }
                ends.push((j, end));
            }
            Ok(Ok(Err(e))) => void = void.or(Some(format!("client {j}: {e:#}"))),
            Ok(Err(e)) => void = void.or(Some(format!("client {j}: {e}"))),
            Err(_) => {
                void = void.or(Some(format!(
                    "client {j} hung {} s after the last send",
                    drained.duration_since(last_send).as_secs()
                )))
            }
        }
        writer.abort();
    }
    // Deliveries per second over the time they took: until the last one arrived, which for an
    // overloaded server is long after the last send.
    let last_delivery = ends.iter().map(|(_, e)| e.last_delivery_ns).max().unwrap_or(0);
    let elapsed = (last_send.max(shared.t0) - shared.t0).max(Duration::from_nanos(last_delivery));
    for (j, end) in &ends {
        deliveries += end.deliveries;
        latency.add(&end.latency).expect("same bounds");
        ack_latency.add(&end.ack_latency).expect("same bounds");
        // The receiver's state vector: its own clock, and every sender's next expected clock.
        let mismatch = (0..n).find(|&k| k != *j && end.next[k] != sent[k]);
        if let Some(k) = mismatch {
            void = void.or(Some(format!(
                "client {j}'s state vector has client {} at {}, not {}",
                client_ids[k],
                end.next[k] * CHARS,
                sent[k] * CHARS
            )));
        }
        if end.misordered > 0 {
            void = void.or(Some(format!("client {j} saw {} updates out of order", end.misordered)));
        }
    }
    // The server's own document, synced by a fresh client with real yrs.
    if void.is_none() {
        let mut want: std::collections::BTreeMap<u64, u32> =
            (0..n).filter(|&k| sent[k] > 0).map(|k| (client_ids[k], sent[k] * CHARS)).collect();
        want.insert(warm_id, WARM_UP_UPDATES as u32 * CHARS);
        match server_state(load).await {
            Ok(sv) if sv == want => {}
            Ok(sv) => void = Some(format!("the server's state vector {sv:?} is not the clients' {want:?}")),
            Err(e) => void = Some(format!("syncing the server's document: {e:#}")),
        }
    }
    Ok(Outcome { deliveries, elapsed, latency, ack_latency: load.acks.then_some(ack_latency), void })
}

/// Updates the warm-up client sends before the measured clients connect.
const WARM_UP_UPDATES: usize = 20;

/// Opens the document and makes its first updates durable before anything is timed: the
/// first produce of a room (the collaboration instance's first produce to that partition of
/// the log, its metadata and idempotent producer id) takes some 100 ms once, which is not
/// what a steady load costs. One more client sends [`WARM_UP_UPDATES`] updates and waits for
/// the last one's acknowledgement (ours) or its echo (the Node server echoes a sender's own
/// updates).
async fn warm_up(load: &Load, client_id: u64) -> anyhow::Result<()> {
    let ws = connect(load).await?;
    let (mut sink, mut stream) = ws.split();
    sink.send(Message::binary(empty_step1())).await?;
    for frame in prebuild(client_id, WARM_UP_UPDATES) {
        sink.send(Message::binary(frame)).await?;
    }
    let last_end = WARM_UP_UPDATES as u32 * CHARS;
    let settled = async {
        while let Some(msg) = stream.next().await {
            let Message::Binary(bytes) = msg? else { continue };
            match classify(&bytes) {
                Frame::Step1 => sink.send(Message::binary(empty_step2())).await?,
                Frame::Ack(ranges) if ranges.iter().any(|&(c, _, end)| c == client_id && end >= last_end) => {
                    return Ok(())
                }
                Frame::Update(c, clock)
                    if !load.acks && c == client_id && clock + u64::from(CHARS) >= u64::from(last_end) =>
                {
                    return Ok(())
                }
                _ => {}
            }
        }
        bail!("the connection ended during the warm-up")
    };
    sim::timer::timeout(Duration::from_secs(20), settled).await.context("the warm-up did not settle in 20 s")??;
    let _ = sink.close().await;
    Ok(())
}

/// The document's state vector as the server has it: a fresh client's sync step 1/2 exchange.
async fn server_state(load: &Load) -> anyhow::Result<std::collections::BTreeMap<u64, u32>> {
    let ws = connect(load).await?;
    let (mut sink, mut stream) = ws.split();
    sink.send(Message::binary(empty_step1())).await?;
    let exchange = async {
        while let Some(msg) = stream.next().await {
            if let Message::Binary(bytes) = msg? {
                if let Ok(YMessage::Sync(SyncMessage::SyncStep2(update))) = YMessage::decode_v1(&bytes) {
                    let doc = Doc::with_client_id(1);
                    doc.transact_mut().apply_update(Update::decode_v1(&update)?)?;
                    let sv = doc.transact().state_vector();
                    return Ok(sv.iter().map(|(c, k)| (c.get(), *k)).collect());
                }
            }
        }
        bail!("the connection ended before sync step 2")
    };
    let out = sim::timer::timeout(Duration::from_secs(20), exchange).await.context("no sync step 2 in 20 s")?;
    let _ = sink.close().await;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prebuilt_update_names_its_sender_and_sequence_and_applies_in_yrs() {
        let updates = prebuild(4_242, 3);
        let doc = Doc::with_client_id(1);
        for (s, frame) in updates.iter().enumerate() {
            match classify(frame) {
                Frame::Update(client, clock) => assert_eq!((client, clock), (4_242, s as u64 * u64::from(CHARS))),
                _ => panic!("update {s} not read as an update"),
            }
            let Ok(YMessage::Sync(SyncMessage::Update(bytes))) = YMessage::decode_v1(frame) else {
                panic!("update {s} is not a y-sync update message")
            };
            doc.transact_mut().apply_update(Update::decode_v1(&bytes).unwrap()).unwrap();
        }
        let sv = doc.transact().state_vector();
        assert_eq!(sv.get(&ClientID::new(4_242)), 3 * CHARS);
    }

    #[test]
    fn handshake_frames_are_told_apart() {
        assert!(matches!(classify(&empty_step1()), Frame::Step1));
        assert!(matches!(classify(&empty_step2()), Frame::Step2));
        assert!(matches!(classify(&[1, 0]), Frame::Other));
        assert!(matches!(classify(&[]), Frame::Other));
    }

    #[test]
    fn an_ack_names_each_range() {
        use system::collab::protocol::{encode_ack, AckRange};
        let ack = encode_ack(&[
            AckRange { client: 9, clock_start: 0, clock_end: 8 },
            AckRange { client: 11, clock_start: 4, clock_end: 12 },
        ]);
        match classify(&ack) {
            Frame::Ack(ranges) => assert_eq!(ranges, vec![(9, 0, 8), (11, 4, 12)]),
            _ => panic!("an ack not read as an ack"),
        }
        // A malformed ack (empty range) is nothing.
        assert!(matches!(classify(&[100, 1, 7, 3, 3]), Frame::Other));
    }
}
