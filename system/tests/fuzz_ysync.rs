//! Fuzz targets for what a collaboration client sends: y-sync messages (sync step 1, step 2,
//! update, awareness, awareness query, and our ack extension, which a client must never send)
//! as WebSocket frames, decoded by `collab::protocol::decode`, judged by the session's sans-IO
//! `collab::session::inbound` and applied to a `collab::room::Room`.
//!
//! Inputs are raw bytes and, structure-aware, valid messages built from real yrs edits and then
//! damaged: bytes flipped, inserted, removed, truncated, and varints (lengths, counts, client
//! ids, clocks) replaced by huge values, in the frame or in the update inside it; and WebSocket
//! frames with mutated opcodes, masks and claimed lengths. The properties:
//! - nothing panics or aborts, and the heap one input costs is bounded by its size (a length
//!   field cannot make the decoder ask for gigabytes);
//! - a message the room refuses (a read-only writer, an ack from a client, a closed session)
//!   leaves the document exactly as it was; a message that fails to apply closes the room;
//! - every frame the room sends back decodes, and an ack acknowledges exactly what was applied.
//!
//! Under `cargo test` each target runs a fixed number of random inputs (a failure prints the
//! `BOLERO_RANDOM_SEED` that replays it); `cargo bolero test` runs them under libFuzzer for as
//! long as asked (see the README's "Fuzzing").
#![cfg(not(madsim))]

mod alloc_meter;

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bolero::{check, TypeGenerator};
use futures_util::{FutureExt, StreamExt};
use system::collab::protocol::{self, AckRange, Frame, MAX_FRAME_BYTES};
use system::collab::room::{Action, CloseReason, Room, SessionId};
use system::collab::session::{inbound, Inbound};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{Array, Doc, GetString, Map, ReadTxn, StateVector, Text, Transact};

#[global_allocator]
static METER: alloc_meter::Meter = alloc_meter::Meter;

/// Inputs per target under `cargo test` (a second or two each in a debug build);
/// `BOLERO_RANDOM_ITERATIONS` overrides them.
const RAW_ITERATIONS: usize = 20_000;
const CASE_ITERATIONS: usize = 8_000;
const WS_ITERATIONS: usize = 1_500;

/// The heap one input may cost: a fixed allowance plus a multiple of its size (yrs turns a
/// few bytes of a block into a block of some hundred bytes).
fn heap_bound(input_len: usize) -> usize {
    (256 << 10) + 512 * input_len
}

// ---------------------------------------------------------------------------------------------
// Structure-aware inputs.

/// An edit on one of three client documents, or a sync between two of them.
#[derive(Clone, Debug, TypeGenerator)]
enum Edit {
    Insert { client: u8, at: u8, text: Small },
    Delete { client: u8, at: u8, len: u8 },
    MapSet { client: u8, key: u8, value: i64 },
    ArrayPush { client: u8, value: Small },
    Sync { from: u8, to: u8 },
}

/// A short string (bolero's strings can be long; edits need not be).
#[derive(Clone, Debug, TypeGenerator)]
struct Small(#[generator(bolero::produce::<Vec<char>>().with().len(0usize..6))] Vec<char>);

impl Small {
    fn text(&self) -> String {
        self.0.iter().collect()
    }
}

/// The message sent, before damage.
#[derive(Clone, Debug, TypeGenerator)]
enum Message {
    /// Sync step 1 with a client's state vector.
    Step1 {
        client: u8,
    },
    /// Sync step 2: a client's state relative to another's state vector.
    Step2 {
        client: u8,
        since: u8,
    },
    /// One edit's update, as the editing client sent it.
    Update {
        edit: u8,
    },
    Awareness {
        client: u64,
        clock: u32,
        json: Json,
    },
    AwarenessQuery,
    /// The server-only extension.
    Ack {
        ranges: Vec<(u64, u32, u32)>,
    },
    Raw(Vec<u8>),
}

#[derive(Clone, Debug, TypeGenerator)]
enum Json {
    Null,
    User(Small),
    Raw(Small),
}

/// One damage to a message, at a position taken modulo its length.
#[derive(Clone, Debug, TypeGenerator)]
enum Mutation {
    Flip {
        at: u16,
        bit: u8,
    },
    Set {
        at: u16,
        byte: u8,
    },
    Insert {
        at: u16,
        bytes: Vec<u8>,
    },
    Remove {
        at: u16,
        len: u8,
    },
    Truncate {
        at: u16,
    },
    /// The varint starting at `at` replaced by a huge (or any) value.
    Varint {
        at: u16,
        value: Huge,
    },
    Append(Vec<u8>),
}

#[derive(Clone, Copy, Debug, TypeGenerator)]
enum Huge {
    U64Max,
    U32Max,
    /// 2^(k mod 64).
    Pow2(u8),
    /// Just over a 53-bit client id.
    OverClientId,
    Any(u64),
}

impl Huge {
    fn value(self) -> u64 {
        match self {
            Huge::U64Max => u64::MAX,
            Huge::U32Max => u32::MAX as u64,
            Huge::Pow2(k) => 1u64 << (k % 64),
            Huge::OverClientId => protocol::MAX_CLIENT_ID + 1,
            Huge::Any(v) => v,
        }
    }
}

/// Where the damage goes: the whole frame, or the update (state vector, awareness buffer)
/// inside it, which is then framed with a correct length.
#[derive(Clone, Copy, Debug, TypeGenerator)]
enum Layer {
    Frame,
    Payload,
}

/// A damaged message from one of the room's sessions.
#[derive(Clone, Debug, TypeGenerator)]
struct Case {
    /// The room loads client 0's state after these edits (or starts empty).
    edits: Vec<Edit>,
    load_state: bool,
    message: Message,
    layer: Layer,
    mutations: Vec<Mutation>,
    /// Session 1 writes and asks for acks, 2 reads only, 3 writes, 4 never joined.
    sender: u8,
}

const CLIENTS: [u64; 3] = [11, 22, 33];

/// The client documents after the edits, and each edit's update.
fn play(edits: &[Edit]) -> ([Doc; 3], Vec<Vec<u8>>) {
    let docs = CLIENTS.map(Doc::with_client_id);
    let mut updates = Vec::new();
    for e in edits {
        let pick = |c: &u8| &docs[*c as usize % 3];
        let update = match e {
            Edit::Insert { client, at, text } => {
                let doc = pick(client);
                let t = doc.get_or_insert_text("t");
                let mut txn = doc.transact_mut();
                let at = char_boundary(&t.get_string(&txn), *at as usize);
                t.insert(&mut txn, at, &text.text());
                txn.encode_update_v1()
            }
            Edit::Delete { client, at, len } => {
                let doc = pick(client);
                let t = doc.get_or_insert_text("t");
                let mut txn = doc.transact_mut();
                // Whole characters only: yrs counts a text's offsets in bytes here.
                let s = t.get_string(&txn);
                let start = char_boundary(&s, *at as usize);
                let end = char_boundary(&s, *at as usize + *len as usize).max(start);
                t.remove_range(&mut txn, start, end - start);
                txn.encode_update_v1()
            }
            Edit::MapSet { client, key, value } => {
                let doc = pick(client);
                let m = doc.get_or_insert_map("m");
                let mut txn = doc.transact_mut();
                m.insert(&mut txn, format!("k{}", key % 4), *value);
                txn.encode_update_v1()
            }
            Edit::ArrayPush { client, value } => {
                let doc = pick(client);
                let a = doc.get_or_insert_array("a");
                let mut txn = doc.transact_mut();
                a.push_back(&mut txn, value.text());
                txn.encode_update_v1()
            }
            Edit::Sync { from, to } => {
                let (from, to) = (pick(from), pick(to));
                let sv = to.transact().state_vector();
                let update = from.transact().encode_state_as_update_v1(&sv);
                let decoded = yrs::Update::decode_v1(&update).expect("yrs decodes its own update");
                to.transact_mut().apply_update(decoded).expect("a real update applies");
                update
            }
        };
        updates.push(update);
    }
    (docs, updates)
}

/// The byte offset of character `n` (modulo the count, end included) of `s`.
fn char_boundary(s: &str, n: usize) -> u32 {
    let chars = s.chars().count();
    s.char_indices().map(|(i, _)| i).chain([s.len()]).nth(n % (chars + 1)).unwrap_or(s.len()) as u32
}

/// The frame the case sends.
fn frame_of(case: &Case, docs: &[Doc; 3], updates: &[Vec<u8>]) -> Vec<u8> {
    let damage = |mut bytes: Vec<u8>, layer: Layer| {
        if std::mem::discriminant(&layer) == std::mem::discriminant(&case.layer) {
            for m in &case.mutations {
                mutate(&mut bytes, m);
            }
        }
        bytes
    };
    let doc = |c: &u8| &docs[*c as usize % 3];
    match &case.message {
        Message::Step1 { client } => {
            let sv = damage(doc(client).transact().state_vector().encode_v1(), Layer::Payload);
            damage(framed(&[0, 0], &sv), Layer::Frame)
        }
        Message::Step2 { client, since } => {
            let sv = doc(since).transact().state_vector();
            let update = damage(doc(client).transact().encode_state_as_update_v1(&sv), Layer::Payload);
            damage(framed(&[0, 1], &update), Layer::Frame)
        }
        Message::Update { edit } => {
            let update = match updates.len() {
                0 => doc(&0).transact().encode_state_as_update_v1(&StateVector::default()),
                n => updates[*edit as usize % n].clone(),
            };
            let update = damage(update, Layer::Payload);
            damage(framed(&[0, 2], &update), Layer::Frame)
        }
        Message::Awareness { client, clock, json } => {
            let json = match json {
                Json::Null => "null".to_string(),
                Json::User(s) => serde_json::json!({ "user": s.text() }).to_string(),
                Json::Raw(s) => s.text(),
            };
            let whole = protocol::encode_awareness_one(*client, *clock, &json);
            // The payload layer is the awareness buffer, after the tag and its length.
            let buf_at = 1 + varint_len(&whole[1..]);
            let inner = damage(whole[buf_at..].to_vec(), Layer::Payload);
            damage(framed(&[1], &inner), Layer::Frame)
        }
        Message::AwarenessQuery => damage(vec![3], Layer::Frame),
        Message::Ack { ranges } => {
            let ranges: Vec<AckRange> = ranges
                .iter()
                .map(|&(client, clock_start, clock_end)| AckRange { client, clock_start, clock_end })
                .collect();
            damage(damage(protocol::encode_ack(&ranges), Layer::Payload), Layer::Frame)
        }
        Message::Raw(bytes) => damage(bytes.clone(), Layer::Frame),
    }
}

/// A message of `tags` (the message tag, and the sync step for sync messages) whose body is
/// `payload` as a length-prefixed buffer: a state vector, an update, an awareness update.
fn framed(tags: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut out = tags.to_vec();
    write_varint(&mut out, payload.len() as u64);
    out.extend_from_slice(payload);
    out
}

fn varint_len(bytes: &[u8]) -> usize {
    bytes.iter().position(|b| b & 0x80 == 0).map_or(bytes.len(), |p| p + 1)
}

fn write_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn mutate(bytes: &mut Vec<u8>, m: &Mutation) {
    let at = |i: u16, len: usize| if len == 0 { 0 } else { i as usize % len };
    match m {
        Mutation::Flip { at: i, bit } => {
            if !bytes.is_empty() {
                let i = at(*i, bytes.len());
                bytes[i] ^= 1 << (bit % 8);
            }
        }
        Mutation::Set { at: i, byte } => {
            if !bytes.is_empty() {
                let i = at(*i, bytes.len());
                bytes[i] = *byte;
            }
        }
        Mutation::Insert { at: i, bytes: b } => {
            let i = at(*i, bytes.len() + 1);
            bytes.splice(i..i, b.iter().copied().take(64));
        }
        Mutation::Remove { at: i, len } => {
            let i = at(*i, bytes.len());
            let end = (i + *len as usize).min(bytes.len());
            bytes.drain(i..end);
        }
        Mutation::Truncate { at: i } => {
            let i = at(*i, bytes.len() + 1);
            bytes.truncate(i);
        }
        Mutation::Varint { at: i, value } => {
            let i = at(*i, bytes.len() + 1);
            let end = i + varint_len(&bytes[i..]);
            let mut v = Vec::new();
            write_varint(&mut v, value.value());
            bytes.splice(i..end, v);
        }
        Mutation::Append(b) => bytes.extend(b.iter().copied().take(64)),
    }
}

// ---------------------------------------------------------------------------------------------
// The room and its checks.

const WRITER_ACKS: SessionId = 1;
const READER: SessionId = 2;
const WRITER: SessionId = 3;
const STRANGER: SessionId = 4;

fn room_with_sessions(state: &[u8]) -> Room {
    let mut room = Room::new(99, state, false).expect("a real state loads");
    room.join(WRITER_ACKS, true, true);
    room.join(READER, false, false);
    room.join(WRITER, false, true);
    room
}

fn sender_of(n: u8) -> SessionId {
    [WRITER_ACKS, READER, WRITER, STRANGER][n as usize % 4]
}

/// The document as bytes (the same map, unmodified, encodes the same way) and its snapshot.
fn fingerprint(room: &Room) -> (Vec<u8>, yrs::Snapshot) {
    (room.state(), room.doc().transact().snapshot())
}

/// Decodes `bytes`, checking the heap it took, and hands a valid frame to the room.
fn decode_and_apply(room: &mut Room, sender: SessionId, bytes: &[u8]) {
    let (decoded, usage) = alloc_meter::measure(|| protocol::decode(bytes));
    assert!(
        usage.peak_bytes <= heap_bound(bytes.len()) && usage.largest_bytes <= heap_bound(bytes.len()),
        "decoding {} bytes took {usage:?}",
        bytes.len()
    );
    if let Ok(frame) = decoded {
        apply(room, sender, frame, bytes);
    }
}

/// Gives a decoded frame to the room and checks what it did.
fn apply(room: &mut Room, sender: SessionId, frame: Frame, raw: &[u8]) {
    let is_ack = matches!(frame, Frame::Ack(_));
    let before = fingerprint(room);
    let was_member = room.sessions().any(|s| s == sender);
    let writable = sender != READER;
    let (actions, usage) = alloc_meter::measure(|| room.receive(sender, frame, raw));
    assert!(usage.largest_bytes <= heap_bound(raw.len()) + room.state().len() * 4, "applying took {usage:?}");
    if actions.iter().any(|a| matches!(a, Action::CloseRoom { .. })) {
        assert!(
            actions.contains(&Action::CloseRoom { reason: CloseReason::ApplyFailed }),
            "a room closes on a frame only when the update fails to apply: {actions:?}"
        );
        *room = room_with_sessions(&[]);
        return;
    }
    let refused = actions.iter().any(|a| matches!(a, Action::Close { session, .. } if *session == sender));
    if !was_member {
        assert!(actions.is_empty(), "a stranger's frame did something: {actions:?}");
    }
    if is_ack && was_member {
        assert!(refused, "a client's ack was not refused");
    }
    if refused || !was_member || !writable {
        assert!(fingerprint(room) == before, "a refused frame changed the document");
    }
    check_sent(room, &actions);
    if refused {
        // Back in, so later checks have all three sessions.
        room.join(sender, sender == WRITER_ACKS, writable);
    }
}

/// Every frame the room sends decodes; an ack acknowledges exactly what was applied for it.
fn check_sent(room: &mut Room, actions: &[Action]) {
    let mut applied = Vec::new();
    let mut durable = Vec::new();
    for a in actions {
        match a {
            Action::Send { frame, .. } => {
                assert!(protocol::decode(frame).is_ok(), "the room sent an undecodable frame {frame:?}");
            }
            Action::Applied { session, ranges } => applied.push((*session, ranges.clone())),
            Action::Produce { seq, update } => {
                assert!(protocol::decode_update(update).is_ok(), "the room produced an undecodable update");
                durable.push(*seq);
            }
            _ => {}
        }
    }
    for seq in durable {
        for a in room.durable(seq) {
            if let Action::Send { session, frame } = &a {
                let Ok(Frame::Ack(ranges)) = protocol::decode(frame) else { panic!("not an ack: {frame:?}") };
                assert_eq!(*session, WRITER_ACKS, "an ack to a session that did not ask for acks");
                assert!(applied.contains(&(*session, ranges)), "an ack of something not applied");
            }
        }
    }
}

fn run_case(case: &Case) {
    let (docs, updates) = play(&case.edits);
    let state = match case.load_state {
        true => docs[0].transact().encode_state_as_update_v1(&StateVector::default()),
        false => Vec::new(),
    };
    let mut room = room_with_sessions(&state);
    let frame = frame_of(case, &docs, &updates);
    decode_and_apply(&mut room, sender_of(case.sender), &frame);
    // The same damaged bytes as a document state (from the document service) and as a record
    // read back from the log: refused or applied, never a panic.
    let payload = match protocol::decode(&frame) {
        Ok(Frame::Update(bytes, _) | Frame::SyncStep2(bytes, _)) => bytes,
        _ => frame.get(2..).unwrap_or_default().to_vec(),
    };
    let _ = Room::new(98, &payload, false);
    let mut fresh = room_with_sessions(&state);
    let before = fingerprint(&fresh);
    if !fresh.apply_durable(&payload) {
        assert!(fingerprint(&fresh) == before, "a log record that did not apply changed the document");
    }
}

#[test]
fn raw_frames_into_a_room() {
    check!().with_iterations(RAW_ITERATIONS).for_each(|bytes: &[u8]| {
        let mut room = room_with_sessions(&[]);
        for sender in [WRITER_ACKS, READER, STRANGER] {
            decode_and_apply(&mut room, sender, bytes);
        }
    });
}

#[test]
fn damaged_ysync_messages_into_a_room() {
    check!().with_type::<Case>().with_iterations(CASE_ITERATIONS).for_each(run_case);
}

// ---------------------------------------------------------------------------------------------
// WebSocket frames into a session.

/// A WebSocket frame a client might send, damaged or not.
#[derive(Clone, Debug, TypeGenerator)]
struct WsFrame {
    fin: bool,
    rsv: u8,
    /// Mostly binary; any of the sixteen.
    opcode: Opcode,
    mask: Option<[u8; 4]>,
    payload: WsPayload,
    /// The length the header claims, when not the payload's.
    claimed: Option<Huge>,
}

#[derive(Clone, Debug, TypeGenerator)]
enum Opcode {
    Binary,
    Text,
    Continuation,
    Ping,
    Pong,
    Close,
    Any(u8),
}

#[derive(Clone, Debug, TypeGenerator)]
enum WsPayload {
    Ysync(Box<Case>),
    Bytes(Vec<u8>),
}

fn encode_ws(frame: &WsFrame, payload: &[u8]) -> Vec<u8> {
    let opcode = match frame.opcode {
        Opcode::Binary => 2,
        Opcode::Text => 1,
        Opcode::Continuation => 0,
        Opcode::Ping => 9,
        Opcode::Pong => 10,
        Opcode::Close => 8,
        Opcode::Any(v) => v % 16,
    };
    let mut out = vec![(frame.fin as u8) << 7 | (frame.rsv % 8) << 4 | opcode];
    let len = frame.claimed.map_or(payload.len() as u64, Huge::value);
    let mask_bit = (frame.mask.is_some() as u8) << 7;
    match len {
        0..=125 => out.push(mask_bit | len as u8),
        126..=0xffff => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&len.to_be_bytes());
        }
    }
    match frame.mask {
        Some(key) => {
            out.extend_from_slice(&key);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

/// A client's side of the socket: yields `input`, then the end of the stream; takes any write.
struct Wire {
    input: Vec<u8>,
    pos: usize,
}

impl AsyncRead for Wire {
    fn poll_read(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        let n = (me.input.len() - me.pos).min(buf.remaining());
        buf.put_slice(&me.input[me.pos..me.pos + n]);
        me.pos += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Wire {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Runs a client's bytes through the server side of a WebSocket with the service's settings and
/// the session's judgement into a room, as the session shell does, until it would close.
fn session_over(input: Vec<u8>, sender: SessionId) {
    let input_len = input.len();
    let mut room = room_with_sessions(&[]);
    let wire = Wire { input, pos: 0 };
    let ((), usage) = alloc_meter::measure(|| {
        let connect = WebSocketStream::from_raw_socket(wire, Role::Server, Some(protocol::ws_config()));
        let mut ws = connect.now_or_never().expect("no handshake to wait for");
        // Every read is ready, so each `next` completes at once; the bound is a backstop.
        for _ in 0..=input_len {
            let msg = ws.next().now_or_never().expect("an in-memory stream never waits");
            match inbound(msg) {
                Inbound::Frame(frame, raw) => apply(&mut room, sender, frame, &raw),
                Inbound::Flush | Inbound::Ignore => {}
                Inbound::Refuse { .. } | Inbound::Failed(_) | Inbound::Closed => return,
            }
        }
        panic!("the session did not end with its input");
    });
    let bound = MAX_FRAME_BYTES + heap_bound(input_len) + (1 << 20);
    assert!(usage.largest_bytes <= bound, "{input_len} bytes of WebSocket took {usage:?}");
}

#[test]
fn websocket_frames_into_a_session() {
    check!().with_type::<(Vec<WsFrame>, u8)>().with_iterations(WS_ITERATIONS).for_each(|(frames, sender)| {
        let mut input = Vec::new();
        for f in frames {
            let payload = match &f.payload {
                WsPayload::Ysync(case) => {
                    let (docs, updates) = play(&case.edits);
                    frame_of(case, &docs, &updates)
                }
                WsPayload::Bytes(b) => b.clone(),
            };
            input.extend(encode_ws(f, &payload));
        }
        session_over(input, sender_of(*sender));
    });
}

#[test]
fn raw_websocket_bytes_into_a_session() {
    check!().with_iterations(RAW_ITERATIONS).for_each(|bytes: &[u8]| session_over(bytes.to_vec(), WRITER_ACKS));
}

// ---------------------------------------------------------------------------------------------
// Regressions: inputs the fuzzers found, and the length bombs they are meant to find.

/// Counts that claim far more entries than the frame holds.
#[test]
fn huge_counts_are_refused_without_reserving_for_them() {
    let huge = [u32::MAX as u64, 1 << 28, 1 << 24, 1 << 20];
    for n in huge {
        let mut count = Vec::new();
        write_varint(&mut count, n);
        let frames = [
            // A state vector of n entries.
            framed(&[0, 0], &count),
            // An update of n clients.
            framed(&[0, 2], &[&count[..], &[0, 0]].concat()),
            // An update of one client with n blocks.
            framed(&[0, 2], &[&[1u8][..], &count, &[11, 0]].concat()),
            // An awareness update of n clients.
            framed(&[1], &[&count[..], &[0, 0]].concat()),
        ];
        for f in frames {
            let (decoded, usage) = alloc_meter::measure(|| protocol::decode(&f));
            assert!(decoded.is_err(), "{f:?} decoded");
            assert!(usage.largest_bytes < 4096, "{f:?} asked for {usage:?}");
        }
    }
    // Awareness counts are 64-bit: one over `u32::MAX` must not wrap to a small one.
    let mut count = Vec::new();
    write_varint(&mut count, (1 << 40) + 1);
    let f = framed(&[1], &[&count[..], &[0, 0]].concat());
    let (decoded, usage) = alloc_meter::measure(|| protocol::decode(&f));
    assert!(decoded.is_err() && usage.largest_bytes < 4096, "{usage:?}");
}

/// Arrays nested two bytes a level: yrs decodes `Any` recursively, so a frame well under the
/// limit would overflow the stack and kill the process. Run on a thread with a tokio worker's
/// stack (2 MiB).
#[test]
fn deeply_nested_values_are_refused_without_recursing() {
    let depth = 300_000;
    // One client, one block: an item of `Any` content (info 8) in the root type "t".
    let mut update = vec![1, 1, 11, 0, 8, 1, 1, b't', 1];
    for _ in 0..depth {
        update.extend([117, 1]);
    }
    update.extend([126, 0]);
    let frame = framed(&[0, 2], &update);
    assert!(frame.len() < MAX_FRAME_BYTES);
    let decoded = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || protocol::decode(&frame).map(drop))
        .expect("spawn")
        .join()
        .expect("the decoder did not panic");
    assert_eq!(decoded, Err(protocol::ProtocolError::Malformed("value nested too deep")));
    // Nested as deep as allowed, the value decodes.
    let mut update = vec![1, 1, 11, 0, 8, 1, 1, b't', 1];
    for _ in 0..system::v1_update::MAX_ANY_DEPTH {
        update.extend([117, 1]);
    }
    update.extend([126, 0]);
    assert!(protocol::decode(&framed(&[0, 2], &update)).is_ok());
}

/// Found by `cargo bolero test` (libFuzzer): an update of one legacy JSON content item, which
/// yrs decoded (n + 1 strings for a count of n) but could not encode again, so the room's
/// state, every later sync step 2 and the log's record of it panicked.
#[test]
fn legacy_json_content_is_refused() {
    let update = [1, 1, 0, 0, 2, 0, 0, 0, 0, 0, 0];
    assert_eq!(protocol::decode_update(&update).err(), Some(protocol::ProtocolError::Malformed("legacy JSON content")));
    let mut room = room_with_sessions(&[]);
    decode_and_apply(&mut room, WRITER_ACKS, &framed(&[0, 2], &update));
    let step1 = protocol::encode_step1(&StateVector::default());
    let answer = room.receive(READER, protocol::decode(&step1).expect("a step 1"), &step1);
    assert!(matches!(&answer[..], [Action::Send { session: READER, .. }]));
}

/// Found by the fuzz target's corpus: a delete range splitting a surrogate pair made yrs's text
/// length underflow (with offsets in bytes) partway through applying the delete set.
#[test]
fn a_delete_splitting_a_surrogate_pair_applies() {
    let doc = Doc::with_client_id(11);
    let t = doc.get_or_insert_text("t");
    for s in ["\u{10688}\u{10688}", "\u{10688}\0"] {
        t.insert(&mut doc.transact_mut(), 0, s);
    }
    let state = doc.transact().encode_state_as_update_v1(&StateVector::default());
    // Deletes client 11's clocks 68..79, 0..5 and 0..6: the second splits the pair at 4..6.
    let update = [0, 1, 11, 4, 68, 11, 0, 5, 240, 144, 154, 136, 0, 0, 0, 6];
    let mut room = room_with_sessions(&state);
    assert!(room.apply_durable(&update));
    let u = framed(&[0, 2], &update);
    decode_and_apply(&mut room, WRITER, &u);
    let mut room = room_with_sessions(&state);
    decode_and_apply(&mut room, WRITER, &u);
    assert_eq!(room.doc().get_or_insert_text("t").get_string(&room.doc().transact()), "\0");
}

/// Clocks near `u32::MAX`: yrs adds a block's length to its clock unchecked.
#[test]
fn clocks_that_overflow_are_refused() {
    let mut update = vec![1, 1, 11];
    write_varint(&mut update, u32::MAX as u64 - 1);
    // A GC block of length 5, then an empty delete set.
    update.extend([0, 5, 0]);
    assert!(protocol::decode(&framed(&[0, 2], &update)).is_err());
    // A deleted range whose end overflows.
    let mut update = vec![0, 1, 11, 1];
    write_varint(&mut update, u32::MAX as u64 - 1);
    update.push(5);
    assert!(protocol::decode(&framed(&[0, 2], &update)).is_err());
}
