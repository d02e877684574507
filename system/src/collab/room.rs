//! One document's live state on its collaboration instance, sans-IO: the `yrs` document, the
//! sessions connected to it, their awareness states, and the updates waiting for durability.
//!
//! The shell feeds it events (a session joined, sent a frame, left; an update was sent to or
//! acknowledged by Kafka) and carries out the [`Action`]s it returns, so every rule below is
//! unit-tested without a runtime:
//! - a joining session gets sync step 1 and the awareness states; its step 1 is answered with
//!   step 2 (what it lacks). y-websocket's server does the same.
//! - an update (or step 2) from a writer is applied to the live document, fanned out to every
//!   other session, and handed to the durable path ([`Action::Produce`], one per update, in
//!   arrival order). A step 2 that adds nothing is dropped: most sessions send one on connect.
//! - an update from a read-only session that changes anything closes that session.
//! - only once Kafka acknowledged an update (`acks=all`) does its sender, if it asked for
//!   acknowledgements, get an ack of the update's (client, clock) ranges. With the unsafe
//!   `ack_before_durable` the ack goes out as soon as the producer accepted the update
//!   ([`Room::accepted`]: Kafka's `send()` returned, the record sits in the producer's buffer),
//!   before any broker has it.
//! - awareness is relayed as it came; the room keeps each client's latest state for joiners, and
//!   when a session leaves, tells the others its clients are gone (Yjs's `null` state).
//!
//! Left out: y-websocket's persistence hooks and its `auth` message (admission happens at the
//! handshake); sub-documents.

use std::collections::{BTreeMap, BTreeSet};
use std::panic::{catch_unwind, AssertUnwindSafe};

use yrs::sync::awareness::AwarenessUpdate;
use yrs::{Doc, ReadTxn, StateVector, Transact, Update};

use super::protocol::{self, AckRange, Frame};

/// A connection's id, unique within the node's life.
pub type SessionId = u64;

/// Why the room closes a session (or itself).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    /// A read-only session sent an update that changes the document.
    ReadOnlyWrite,
    /// The session sent a message only a server sends (an ack, tag 2).
    Unexpected,
    /// Its outgoing queue is full: it does not read fast enough.
    SlowReader,
    /// The durable queue is full: the room closes rather than accept edits it cannot produce.
    DurableQueueFull,
    /// The document cannot apply an update (yrs failed): the room closes and reloads.
    ApplyFailed,
    /// The document could not be loaded from the document service in time.
    LoadFailed,
    /// (Room only) its last session left and the grace period passed.
    Idle,
}

/// What the shell must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send this frame to the session.
    Send { session: SessionId, frame: Vec<u8> },
    /// Close the session (it is already removed from the room).
    Close { session: SessionId, reason: CloseReason },
    /// Produce this update to the log; report back `accepted(seq)` once the producer took it
    /// and `durable(seq)` once the log acknowledged it.
    Produce { seq: u64, update: Vec<u8> },
    /// Observation: an update was applied to the live document.
    Applied { session: SessionId, ranges: Vec<AckRange> },
    /// Observation: an ack was sent.
    Acked { session: SessionId, ranges: Vec<AckRange> },
    /// The room can no longer go on (every session is closed with this reason): drop it, so the
    /// next session reloads the document from the document service.
    CloseRoom { reason: CloseReason },
}

struct Member {
    wants_acks: bool,
    writable: bool,
    /// Awareness client ids this session announced.
    awareness: BTreeSet<u64>,
}

struct Pending {
    session: Option<SessionId>,
    ranges: Vec<AckRange>,
}

/// The live room of one document.
pub struct Room {
    doc: Doc,
    members: BTreeMap<SessionId, Member>,
    /// Latest awareness state per client: (clock, json).
    awareness: BTreeMap<u64, (u32, String)>,
    /// Updates handed to the durable path and not yet acknowledged there, by sequence number.
    pending: BTreeMap<u64, Pending>,
    next_seq: u64,
    ack_before_durable: bool,
}

impl Room {
    /// A room whose document starts from `state` (a v1 update of the whole document, as the
    /// document service serves it). `client_id` is the room's own yrs client id (it never
    /// edits, but yrs needs one).
    pub fn new(client_id: u64, state: &[u8], ack_before_durable: bool) -> Result<Self, protocol::ProtocolError> {
        let doc = crate::doc_update::server_doc(client_id & protocol::MAX_CLIENT_ID);
        if !state.is_empty() {
            let update = protocol::decode_update(state)?;
            let applied = catch_unwind(AssertUnwindSafe(|| doc.transact_mut().apply_update(update)));
            if !matches!(applied, Ok(Ok(()))) {
                return Err(protocol::ProtocolError::Malformed("document state"));
            }
        }
        Ok(Room {
            doc,
            members: BTreeMap::new(),
            awareness: BTreeMap::new(),
            pending: BTreeMap::new(),
            next_seq: 0,
            ack_before_durable,
        })
    }

    /// Applies an update read back from the log while the room opens (the catch-up in
    /// [`super::rooms`]): it is durable already, so nothing is produced or acknowledged. A record
    /// that does not apply is skipped (false); the log consumers skip it too.
    pub fn apply_durable(&mut self, update: &[u8]) -> bool {
        let Ok(update) = protocol::decode_update(update) else { return false };
        let applied = catch_unwind(AssertUnwindSafe(|| self.doc.transact_mut().apply_update(update)));
        matches!(applied, Ok(Ok(())))
    }

    pub fn state_vector(&self) -> StateVector {
        self.doc.transact().state_vector()
    }

    /// The whole document as one v1 update.
    pub fn state(&self) -> Vec<u8> {
        self.doc.transact().encode_state_as_update_v1(&StateVector::default())
    }

    pub fn doc(&self) -> &Doc {
        &self.doc
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn sessions(&self) -> impl Iterator<Item = SessionId> + '_ {
        self.members.keys().copied()
    }

    /// Updates produced but not yet acknowledged by the log.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// A session joins: it gets sync step 1 and the current awareness states.
    pub fn join(&mut self, session: SessionId, wants_acks: bool, writable: bool) -> Vec<Action> {
        self.members.insert(session, Member { wants_acks, writable, awareness: BTreeSet::new() });
        let mut out = vec![Action::Send { session, frame: protocol::encode_step1(&self.state_vector()) }];
        out.extend(self.awareness_states(session));
        out
    }

    /// A permission re-check changed what the session may do.
    pub fn set_writable(&mut self, session: SessionId, writable: bool) {
        if let Some(m) = self.members.get_mut(&session) {
            m.writable = writable;
        }
    }

    /// A session left (or was closed by the shell): forget it, and tell the others its awareness
    /// clients are gone.
    pub fn leave(&mut self, session: SessionId) -> Vec<Action> {
        let Some(member) = self.members.remove(&session) else {
            return Vec::new();
        };
        for p in self.pending.values_mut() {
            if p.session == Some(session) {
                p.session = None;
            }
        }
        let mut out = Vec::new();
        for client in member.awareness {
            let Some((clock, _)) = self.awareness.remove(&client) else { continue };
            let frame = protocol::encode_awareness_one(client, clock + 1, "null");
            out.extend(self.others(session).map(|s| Action::Send { session: s, frame: frame.clone() }));
        }
        out
    }

    /// A decoded frame from a session (`raw`: its bytes, relayed for awareness).
    pub fn receive(&mut self, session: SessionId, frame: Frame, raw: &[u8]) -> Vec<Action> {
        if !self.members.contains_key(&session) {
            return Vec::new();
        }
        match frame {
            Frame::SyncStep1(sv) => {
                let update = self.doc.transact().encode_state_as_update_v1(&sv);
                vec![Action::Send { session, frame: protocol::encode_step2(update) }]
            }
            Frame::SyncStep2(bytes, update) | Frame::Update(bytes, update) => self.update(session, bytes, update),
            Frame::Awareness(update) => self.awareness_update(session, update, raw),
            Frame::AwarenessQuery => self.awareness_states(session),
            Frame::Ack(_) => self.close(session, CloseReason::Unexpected),
        }
    }

    fn update(&mut self, session: SessionId, bytes: Vec<u8>, update: Update) -> Vec<Action> {
        // Computed once for both: `protocol::is_noop` and `protocol::update_ranges` each walk
        // the update's blocks again.
        let insertions = update.insertions(true);
        if insertions.is_empty() && update.delete_set().is_empty() {
            return Vec::new(); // protocol::is_noop
        }
        if !self.members[&session].writable {
            return self.close(session, CloseReason::ReadOnlyWrite);
        }
        let ranges = protocol::ranges_of(&insertions);
        let applied = catch_unwind(AssertUnwindSafe(|| self.doc.transact_mut().apply_update(update)));
        if !matches!(applied, Ok(Ok(()))) {
            return self.close_room(CloseReason::ApplyFailed);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let wants_acks = self.members[&session].wants_acks;
        let mut out: Vec<Action> = Vec::new();
        if self.others(session).next().is_some() {
            // Framed only when someone else is there to get it (a lone writer is common).
            let frame = protocol::encode_update(bytes.clone());
            out.extend(self.others(session).map(|s| Action::Send { session: s, frame: frame.clone() }));
        }
        out.push(Action::Applied { session, ranges: ranges.clone() });
        out.push(Action::Produce { seq, update: bytes });
        self.pending.insert(seq, Pending { session: wants_acks.then_some(session), ranges });
        out
    }

    fn awareness_update(&mut self, session: SessionId, update: AwarenessUpdate, raw: &[u8]) -> Vec<Action> {
        let mut entries: Vec<_> = update.clients.into_iter().map(|(c, e)| (c.get(), e)).collect();
        entries.sort_by_key(|(c, _)| *c);
        for (client, entry) in entries {
            let newer = self.awareness.get(&client).is_none_or(|(clock, _)| entry.clock > *clock);
            if !newer {
                continue;
            }
            if &*entry.json == "null" {
                self.awareness.remove(&client);
            } else {
                self.awareness.insert(client, (entry.clock, entry.json.to_string()));
            }
            if let Some(m) = self.members.get_mut(&session) {
                m.awareness.insert(client);
            }
        }
        self.others(session).map(|s| Action::Send { session: s, frame: raw.to_vec() }).collect()
    }

    fn awareness_states(&self, session: SessionId) -> Vec<Action> {
        self.awareness
            .iter()
            .map(|(client, (clock, json))| Action::Send {
                session,
                frame: protocol::encode_awareness_one(*client, *clock, json),
            })
            .collect()
    }

    /// The producer accepted update `seq` into its buffer (it is on no broker yet). Only the
    /// unsafe `ack_before_durable` acknowledges here: the fire-and-forget `producer.send()`
    /// whose future nobody awaits.
    pub fn accepted(&mut self, seq: u64) -> Vec<Action> {
        if self.ack_before_durable {
            self.ack(seq)
        } else {
            Vec::new()
        }
    }

    /// The log acknowledged update `seq` (`acks=all`): it is durable.
    pub fn durable(&mut self, seq: u64) -> Vec<Action> {
        self.ack(seq)
    }

    fn ack(&mut self, seq: u64) -> Vec<Action> {
        let Some(p) = self.pending.remove(&seq) else { return Vec::new() };
        match p.session {
            Some(session) if self.members.contains_key(&session) && !p.ranges.is_empty() => vec![
                Action::Send { session, frame: protocol::encode_ack(&p.ranges) },
                Action::Acked { session, ranges: p.ranges },
            ],
            _ => Vec::new(),
        }
    }

    /// The shell could not queue update `seq` for the log: the live document now holds an edit
    /// that may never be durable, and a client resyncing against it would not resend it. The
    /// room closes every session and is dropped; the next session reloads from the document
    /// service, and each editor's step 2 resends what the log lacks.
    pub fn produce_refused(&mut self) -> Vec<Action> {
        self.close_room(CloseReason::DurableQueueFull)
    }

    /// Closes one session (for the shell: a slow reader, a revoked permission).
    pub fn close(&mut self, session: SessionId, reason: CloseReason) -> Vec<Action> {
        let mut out = vec![Action::Close { session, reason }];
        out.extend(self.leave(session));
        out
    }

    fn close_room(&mut self, reason: CloseReason) -> Vec<Action> {
        let mut out: Vec<Action> = self.members.keys().map(|&session| Action::Close { session, reason }).collect();
        self.members.clear();
        self.pending.clear();
        out.push(Action::CloseRoom { reason });
        out
    }

    fn others(&self, session: SessionId) -> impl Iterator<Item = SessionId> + '_ {
        self.members.keys().copied().filter(move |s| *s != session)
    }
}

#[cfg(test)]
mod tests {
    use yrs::updates::decoder::Decode;
    use yrs::{GetString, Text};

    use super::*;

    fn edit(doc: &Doc, at: u32, s: &str) -> Vec<u8> {
        let t = doc.get_or_insert_text("t");
        let mut txn = doc.transact_mut();
        t.insert(&mut txn, at, s);
        txn.encode_update_v1()
    }

    fn text(doc: &Doc) -> String {
        doc.get_or_insert_text("t").get_string(&doc.transact())
    }

    fn frame(bytes: &[u8]) -> Frame {
        protocol::decode(bytes).unwrap()
    }

    /// Delivers every `Send` to the matching client doc (sync messages only) and returns what
    /// else the room asked for.
    fn deliver(out: Vec<Action>, clients: &[(SessionId, &Doc)]) -> Vec<Action> {
        let mut rest = Vec::new();
        for a in out {
            match a {
                Action::Send { session, frame: f } => {
                    let Some((_, doc)) = clients.iter().find(|(s, _)| *s == session) else { continue };
                    match protocol::decode(&f).unwrap() {
                        Frame::SyncStep2(_, u) | Frame::Update(_, u) => doc.transact_mut().apply_update(u).unwrap(),
                        _ => rest.push(Action::Send { session, frame: f }),
                    }
                }
                other => rest.push(other),
            }
        }
        rest
    }

    #[test]
    fn join_sends_step1_and_answers_step1_with_step2() {
        let seed = Doc::with_client_id(1);
        let state = edit(&seed, 0, "abc");
        let mut room = Room::new(99, &state, false).unwrap();
        let out = room.join(1, false, true);
        assert!(matches!(&out[..], [Action::Send { session: 1, frame: f }] if matches!(frame(f), Frame::SyncStep1(_))));
        let client = Doc::with_client_id(2);
        let step1 = protocol::encode_step1(&client.transact().state_vector());
        let out = room.receive(1, frame(&step1), &step1);
        assert!(deliver(out, &[(1, &client)]).is_empty());
        assert_eq!(text(&client), "abc");
    }

    #[test]
    fn two_sessions_converge_through_fan_out() {
        let mut room = Room::new(99, &[], false).unwrap();
        let (a, b) = (Doc::with_client_id(10), Doc::with_client_id(20));
        room.join(1, false, true);
        room.join(2, false, true);
        let ua = protocol::encode_update(edit(&a, 0, "hello "));
        let ub = protocol::encode_update(edit(&b, 0, "world"));
        let out_a = room.receive(1, frame(&ua), &ua);
        let out_b = room.receive(2, frame(&ub), &ub);
        let rest: Vec<_> =
            deliver(out_a, &[(1, &a), (2, &b)]).into_iter().chain(deliver(out_b, &[(1, &a), (2, &b)])).collect();
        assert_eq!(rest.iter().filter(|a| matches!(a, Action::Produce { .. })).count(), 2);
        assert_eq!(text(&a), text(&b));
        let live = text(room.doc());
        assert_eq!(live, text(&a));
        assert_eq!(live.len(), "hello world".len());
    }

    #[test]
    fn acks_only_after_durable_and_only_to_asking_sender() {
        let mut room = Room::new(99, &[], false).unwrap();
        room.join(1, true, true);
        room.join(2, false, true);
        let a = Doc::with_client_id(10);
        let u = protocol::encode_update(edit(&a, 0, "abc"));
        let out = room.receive(1, frame(&u), &u);
        assert!(out.contains(&Action::Applied {
            session: 1,
            ranges: vec![AckRange { client: 10, clock_start: 0, clock_end: 3 }]
        }));
        assert!(out.iter().all(|a| !matches!(a, Action::Acked { .. })));
        assert!(out.contains(&Action::Produce { seq: 0, update: edit_bytes(&u) }));
        assert!(room.accepted(0).is_empty(), "no ack when only accepted by the producer");
        let acked = room.durable(0);
        let ranges = vec![AckRange { client: 10, clock_start: 0, clock_end: 3 }];
        assert_eq!(
            acked,
            vec![
                Action::Send { session: 1, frame: protocol::encode_ack(&ranges) },
                Action::Acked { session: 1, ranges }
            ]
        );
        assert!(room.durable(0).is_empty(), "acked once");
        // Session 2 did not ask for acks.
        let b = Doc::with_client_id(20);
        let u = protocol::encode_update(edit(&b, 0, "x"));
        room.receive(2, frame(&u), &u);
        assert!(room.durable(1).is_empty());
    }

    fn edit_bytes(framed: &[u8]) -> Vec<u8> {
        match frame(framed) {
            Frame::Update(b, _) => b,
            _ => unreachable!(),
        }
    }

    #[test]
    fn unsafe_config_acks_when_the_producer_accepts() {
        let mut room = Room::new(99, &[], true).unwrap();
        room.join(1, true, true);
        let a = Doc::with_client_id(10);
        let u = protocol::encode_update(edit(&a, 0, "abc"));
        room.receive(1, frame(&u), &u);
        assert!(room.accepted(0).iter().any(|a| matches!(a, Action::Acked { .. })));
        assert!(room.durable(0).is_empty());
    }

    #[test]
    fn read_only_session_writing_is_closed_but_empty_step2_is_fine() {
        let mut room = Room::new(99, &[], false).unwrap();
        room.join(1, false, false);
        room.join(2, false, true);
        let c = Doc::with_client_id(10);
        let empty = protocol::encode_step2(c.transact().encode_state_as_update_v1(&StateVector::default()));
        assert!(room.receive(1, frame(&empty), &empty).is_empty());
        let u = protocol::encode_update(edit(&c, 0, "evil"));
        let out = room.receive(1, frame(&u), &u);
        assert_eq!(out, vec![Action::Close { session: 1, reason: CloseReason::ReadOnlyWrite }]);
        assert_eq!(text(room.doc()), "");
        assert_eq!(room.sessions().collect::<Vec<_>>(), vec![2]);
    }

    #[test]
    fn a_client_sending_an_ack_is_closed() {
        let mut room = Room::new(99, &[], false).unwrap();
        room.join(1, false, true);
        let ack = protocol::encode_ack(&[AckRange { client: 1, clock_start: 0, clock_end: 1 }]);
        assert_eq!(
            room.receive(1, frame(&ack), &ack)[0],
            Action::Close { session: 1, reason: CloseReason::Unexpected }
        );
    }

    #[test]
    fn leaving_sender_gets_no_ack_and_awareness_is_cleared() {
        let mut room = Room::new(99, &[], false).unwrap();
        room.join(1, true, true);
        room.join(2, false, true);
        let aw = protocol::encode_awareness_one(10, 1, "{\"u\":1}");
        let out = room.receive(1, frame(&aw), &aw);
        assert_eq!(out, vec![Action::Send { session: 2, frame: aw.clone() }]);
        // A joiner gets the state.
        let out = room.join(3, false, true);
        assert!(out.contains(&Action::Send { session: 3, frame: aw }));
        let a = Doc::with_client_id(10);
        let u = protocol::encode_update(edit(&a, 0, "abc"));
        room.receive(1, frame(&u), &u);
        let out = room.leave(1);
        let gone = protocol::encode_awareness_one(10, 2, "null");
        assert_eq!(
            out,
            vec![Action::Send { session: 2, frame: gone.clone() }, Action::Send { session: 3, frame: gone }]
        );
        assert!(room.durable(0).is_empty());
        assert_eq!(room.pending(), 0);
    }

    #[test]
    fn queue_overflow_closes_the_room() {
        let mut room = Room::new(99, &[], false).unwrap();
        room.join(1, true, true);
        room.join(2, true, true);
        let out = room.produce_refused();
        assert_eq!(
            out,
            vec![
                Action::Close { session: 1, reason: CloseReason::DurableQueueFull },
                Action::Close { session: 2, reason: CloseReason::DurableQueueFull },
                Action::CloseRoom { reason: CloseReason::DurableQueueFull },
            ]
        );
        assert!(room.is_empty());
    }

    #[test]
    fn caught_up_updates_are_applied_once_without_produce_or_ack() {
        let a = Doc::with_client_id(10);
        let first = edit(&a, 0, "abc");
        let second = edit(&a, 3, "def");
        let mut room = Room::new(99, &first, false).unwrap();
        room.join(1, true, true);
        // The log's tail overlaps what was loaded: applying a record twice changes nothing.
        assert!(room.apply_durable(&first));
        assert!(room.apply_durable(&second));
        assert!(room.apply_durable(&second));
        assert!(!room.apply_durable(&[0xff, 0xff]));
        assert_eq!(text(room.doc()), "abcdef");
        assert_eq!(room.pending(), 0);
    }

    #[test]
    fn reloaded_room_serves_the_state_it_was_given() {
        let a = Doc::with_client_id(10);
        edit(&a, 0, "abc");
        let state = a.transact().encode_state_as_update_v1(&StateVector::default());
        let room = Room::new(99, &state, false).unwrap();
        assert_eq!(text(room.doc()), "abc");
        let again = Room::new(98, &room.state(), false).unwrap();
        assert_eq!(again.state_vector(), room.state_vector());
        assert!(Room::new(97, &[0, 2, 5, 1, 2], false).is_err());
        let _ = Update::decode_v1(&state).unwrap();
    }
}
