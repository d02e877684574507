//! The services' apply paths against raw `yrs`, on the sequential paper trace (issue 9's
//! benchmark: "the document service's apply path replaying the paper trace against raw yrs
//! applying the same updates, in one run, as a ratio; target at most 1.3").
//!
//! The trace (`scenarios/data/editing-traces/automerge-paper.json.gz`, Joseph Gentle's
//! `editing-traces`, attribution in that folder) is typed once into one editor document, as
//! `scenarios::stack::trace` does (each transaction's patches `[pos, del, ins]` in order; the
//! trace is ASCII, so character positions are yrs's UTF-16 offsets), keeping one yrs v1 update
//! per transaction. This crate cannot depend on `scenarios`, so the few lines that parse the
//! trace are repeated here rather than shared. Then, in the same process, interleaved over
//! several rounds (the order rotating each round), each path applies every update to a fresh
//! document, and the table gives each path's median:
//! - `raw yrs`: `Update::decode_v1` + `apply_update`, one transaction per update, in order;
//! - `docs rebuild (stored order)`: `system::docs::rebuild::rebuild(None, ops)` with the
//!   updates as the document service reads them back from MongoDB: `OpBytes` whose ids are
//!   `DocUpdate`'s content hashes, in id order (any order at all), so its causal sort does real
//!   work. Reading and hex-decoding the stored JSON is not timed (that is store I/O);
//! - `docs rebuild (trace order)`: the same, ops in the order they were typed;
//! - `collab room`: `system::collab::room::Room` receiving each update as a y-sync update frame
//!   from one writing session that asked for acks: `protocol::decode` (the session's
//!   validation), `Room::receive` (apply, fan-out to nobody, produce) and `Room::durable` for
//!   the produce it asked for (the ack).
//!
//! Every path's final text is checked against the trace's `endContent` (not timed).
//!
//! `cargo bench -p system --bench apply_path [-- --rounds N --txns N --only KEY]`: rounds
//! default to 5, txns to the whole trace (259,778 transactions); `--only raw|stored|trace|room`
//! runs one path alone (to profile it: `perf record -g` on the binary cargo names).

use std::time::Duration;

use serde::Deserialize;
use system::collab::protocol;
use system::collab::room::{Action, Room};
use system::doc_update::{DocId, DocUpdate};
use system::docs::rebuild::{self, OpBytes};
use yrs::updates::decoder::Decode;
use yrs::{Doc, GetString, Text, Transact, Update};

static PAPER_GZ: &[u8] = include_bytes!("../../scenarios/data/editing-traces/automerge-paper.json.gz");

/// The name of the text every path reads back (any name does: the updates carry it).
const TEXT: &str = "content";
const EDITOR_CLIENT: u64 = 7;

#[derive(Deserialize)]
struct Txn {
    patches: Vec<(u32, u32, String)>,
}

#[derive(Deserialize)]
struct Trace {
    #[serde(rename = "startContent", default)]
    start: String,
    #[serde(rename = "endContent")]
    end: String,
    txns: Vec<Txn>,
}

/// The trace's updates (one per transaction) and the text after them.
fn updates(txns: Option<usize>) -> (Vec<Vec<u8>>, String) {
    let trace: Trace = serde_json::from_reader(flate2::read::GzDecoder::new(PAPER_GZ)).expect("vendored trace parses");
    assert!(trace.start.is_empty(), "the paper trace starts empty");
    assert!(
        trace.txns.iter().flat_map(|t| &t.patches).all(|p| p.2.is_ascii()),
        "positions are characters in the trace and UTF-16 units in yrs: ASCII only"
    );
    let n = txns.unwrap_or(trace.txns.len()).min(trace.txns.len());
    let doc = Doc::with_client_id(EDITOR_CLIENT);
    let text = doc.get_or_insert_text(TEXT);
    let mut out = Vec::with_capacity(n);
    for txn in &trace.txns[..n] {
        let mut t = doc.transact_mut();
        for (pos, del, ins) in &txn.patches {
            if *del > 0 {
                text.remove_range(&mut t, *pos, *del);
            }
            if !ins.is_empty() {
                text.insert(&mut t, *pos, ins);
            }
        }
        out.push(t.encode_update_v1());
    }
    let typed = text.get_string(&doc.transact());
    if n == trace.txns.len() {
        assert_eq!(typed, trace.end, "the typed trace ends at its endContent");
    }
    (out, typed)
}

fn text_of(doc: &Doc) -> String {
    doc.get_or_insert_text(TEXT).get_string(&doc.transact())
}

#[allow(clippy::disallowed_methods, reason = "a benchmark measures real wall time, outside any simulation")]
fn timed<T>(f: impl FnOnce() -> T) -> (Duration, T) {
    let start = std::time::Instant::now();
    let out = f();
    (start.elapsed(), out)
}

fn raw_yrs(updates: &[Vec<u8>]) -> Doc {
    let doc = Doc::with_client_id(rebuild::REBUILD_CLIENT);
    for u in updates {
        let update = Update::decode_v1(u).expect("valid update");
        doc.transact_mut().apply_update(update).expect("applies");
    }
    doc
}

fn docs_rebuild(ops: &[OpBytes]) -> rebuild::Rebuilt {
    let r = rebuild::rebuild(None, ops).expect("no snapshot to fail");
    assert!(r.is_complete() && r.invalid.is_empty(), "every op integrates");
    r
}

fn collab_room(frames: &[Vec<u8>]) -> Room {
    const SESSION: u64 = 1;
    let mut room = Room::new(rebuild::REBUILD_CLIENT, &[], false).expect("empty room");
    room.join(SESSION, true, true);
    for raw in frames {
        let frame = protocol::decode(raw).expect("valid frame");
        for action in room.receive(SESSION, frame, raw) {
            match action {
                Action::Produce { seq, .. } => {
                    room.durable(seq);
                }
                Action::Close { .. } | Action::CloseRoom { .. } => panic!("the room refused an update: {action:?}"),
                _ => {}
            }
        }
    }
    room
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort_unstable();
    v[v.len() / 2]
}

fn main() {
    let mut rounds = 5usize;
    let mut txns = None;
    let mut only: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--rounds" => rounds = args.next().and_then(|v| v.parse::<usize>().ok()).expect("--rounds N").max(1),
            "--txns" => txns = Some(args.next().and_then(|v| v.parse().ok()).expect("--txns N")),
            "--only" => only = Some(args.next().expect("--only KEY")),
            "--bench" => {} // cargo bench passes it
            other => panic!("unknown argument {other} (--rounds N, --txns N, --only raw|stored|trace|room)"),
        }
    }

    let (gen_time, (updates, expected)) = timed(|| updates(txns));
    let doc = DocId::parse("bench/paper").expect("valid id");
    let mut stored: Vec<OpBytes> = updates
        .iter()
        .map(|u| {
            let d = DocUpdate::new(doc.clone(), u.clone());
            OpBytes { op_id: d.op_id, update: d.update }
        })
        .collect();
    let typed_order = stored.clone();
    stored.sort_by(|a, b| a.op_id.cmp(&b.op_id));
    let frames: Vec<Vec<u8>> = updates.iter().map(|u| protocol::encode_update(u.clone())).collect();
    let bytes: usize = updates.iter().map(Vec::len).sum();
    println!(
        "paper trace: {} updates ({} bytes, {} chars of text), typed in {:.0} ms; {rounds} rounds, medians",
        updates.len(),
        bytes,
        expected.len(),
        gen_time.as_secs_f64() * 1e3
    );

    const PATHS: [&str; 4] = ["raw yrs", "docs rebuild (stored order)", "docs rebuild (trace order)", "collab room"];
    const KEYS: [&str; 4] = ["raw", "stored", "trace", "room"];
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); PATHS.len()];
    for round in 0..rounds {
        for k in 0..PATHS.len() {
            let path = (round + k) % PATHS.len();
            if only.as_deref().is_some_and(|o| o != KEYS[path]) {
                continue;
            }
            let (t, text) = match path {
                0 => {
                    let (t, d) = timed(|| raw_yrs(&updates));
                    (t, text_of(&d))
                }
                1 => {
                    let (t, r) = timed(|| docs_rebuild(&stored));
                    (t, text_of(&r.doc))
                }
                2 => {
                    let (t, r) = timed(|| docs_rebuild(&typed_order));
                    (t, text_of(&r.doc))
                }
                _ => {
                    let (t, room) = timed(|| collab_room(&frames));
                    (t, text_of(room.doc()))
                }
            };
            assert!(text == expected, "{} ends at a different text", PATHS[path]);
            times[path].push(t);
        }
    }

    let medians: Vec<Option<Duration>> = times.iter_mut().map(|v| (!v.is_empty()).then(|| median(v))).collect();
    let raw = medians[0].map(|m| m.as_secs_f64());
    println!("{:<30} {:>10} {:>12} {:>8}", "path", "total ms", "updates/s", "ratio");
    for (name, m) in PATHS.iter().zip(&medians) {
        let Some(m) = m else { continue };
        let s = m.as_secs_f64();
        let ratio = raw.map_or("-".to_string(), |raw| format!("{:.2}", s / raw));
        println!("{name:<30} {:>10.1} {:>12.0} {ratio:>8}", s * 1e3, updates.len() as f64 / s);
    }
}
