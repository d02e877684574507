//! The editor's y-sync client, sans-IO: its own `yrs` document, what it must send on connect
//! and in answer to each frame, and the set of its edits the server acknowledged. The async
//! shell ([`super::editor`]) owns the WebSocket and the clock and feeds this core.
//!
//! Protocol (y-websocket's client): on connect, send sync step 1 (our state vector); answer the
//! server's step 1 with step 2 (what it lacks); apply the server's step 2 and updates; send each
//! local edit as an update while connected. Edits typed while disconnected stay in the document
//! and reach the server through the next connection's step 1/2 exchange, so a reconnect loses
//! nothing the editor still holds. Ack frames (type 100) add ranges to [`EditorCore::acked`].
//!
//! Left out: awareness (cursors), which the checkers do not judge; received awareness frames
//! are ignored.

use super::acked::{ClockRange, RangeSet};
use super::ydoc::{self, Sv, YError};
use system::collab::protocol::{self, Frame, ProtocolError};
use yrs::{Doc, ReadTxn, TextRef, Transact};

#[derive(Debug, thiserror::Error)]
pub enum EditorError {
    #[error(transparent)]
    Frame(#[from] ProtocolError),
    #[error(transparent)]
    Doc(#[from] YError),
}

/// Counters of what the core did (for metrics and "sometimes" records).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EditorStats {
    pub connects: u64,
    pub frames_in: u64,
    pub updates_out: u64,
    pub acks_in: u64,
    /// Step 2 frames from the server that carried something this copy lacked.
    pub resyncs_received: u64,
    /// Step 2 frames this copy sent that carried something the server lacked.
    pub resyncs_sent: u64,
}

pub struct EditorCore {
    doc: Doc,
    text: TextRef,
    client_id: u64,
    acked: RangeSet,
    connected: bool,
    synced: bool,
    pub stats: EditorStats,
}

impl EditorCore {
    pub fn new(client_id: u64) -> Self {
        let (doc, text) = ydoc::new_doc(client_id);
        EditorCore {
            doc,
            text,
            client_id,
            acked: RangeSet::default(),
            connected: false,
            synced: false,
            stats: Default::default(),
        }
    }

    pub fn client_id(&self) -> u64 {
        self.client_id
    }

    pub fn text(&self) -> String {
        ydoc::text_of(&self.doc, &self.text)
    }

    /// The text's length in UTF-16 code units (no pass over the text).
    pub fn text_len(&self) -> u32 {
        ydoc::len_of(&self.doc, &self.text)
    }

    pub fn sv(&self) -> Sv {
        ydoc::sv_of(&self.doc)
    }

    pub fn has_pending(&self) -> bool {
        ydoc::has_pending(&self.doc)
    }

    pub fn acked(&self) -> &RangeSet {
        &self.acked
    }

    /// The next clock of our own insertions (how many we made).
    pub fn own_clock(&self) -> u32 {
        // The document's own client is ours (`new_doc(client_id)`): its clock, without building
        // the whole state vector.
        self.doc.transact().store().get_local_state()
    }

    /// Our own insertions the server has not acknowledged yet.
    pub fn unacked_own(&self) -> Vec<ClockRange> {
        // Asked on every turn of the editor's loop: no copy of the state vector or the ranges.
        let own = self.own_clock();
        let mut missing = Vec::new();
        let mut at = 0;
        for &(start, end) in self.acked.of(self.client_id) {
            if start > at {
                missing.push(ClockRange { client: self.client_id, start: at, end: start });
            }
            at = at.max(end);
        }
        if own > at {
            missing.push(ClockRange { client: self.client_id, start: at, end: own });
        }
        missing
    }

    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// Whether the server's step 2 arrived on this connection.
    pub fn is_synced(&self) -> bool {
        self.synced
    }

    /// A connection opened: the frames to send first.
    pub fn connected(&mut self) -> Vec<Vec<u8>> {
        self.connected = true;
        self.synced = false;
        self.stats.connects += 1;
        vec![protocol::encode_step1(&ydoc::from_sv(&self.sv()))]
    }

    pub fn disconnected(&mut self) {
        self.connected = false;
        self.synced = false;
    }

    /// One frame from the server: the frames to answer with.
    pub fn receive(&mut self, bytes: &[u8]) -> Result<Vec<Vec<u8>>, EditorError> {
        self.stats.frames_in += 1;
        let frame = match protocol::decode(bytes) {
            Ok(frame) => frame,
            // A message type this client does not handle: a stock client ignores it too.
            Err(ProtocolError::UnknownTag(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        match frame {
            Frame::SyncStep1(server_sv) => {
                let server_sv = ydoc::to_sv(&server_sv);
                let diff = ydoc::diff(&self.doc, &server_sv);
                if lacks(&server_sv, &self.sv()) {
                    self.stats.resyncs_sent += 1;
                }
                Ok(vec![protocol::encode_step2(diff)])
            }
            Frame::SyncStep2(_, update) => {
                let before = self.sv();
                ydoc::integrate(&self.doc, update)?;
                if self.sv() != before {
                    self.stats.resyncs_received += 1;
                }
                self.synced = true;
                Ok(Vec::new())
            }
            Frame::Update(_, update) => {
                ydoc::integrate(&self.doc, update)?;
                Ok(Vec::new())
            }
            Frame::Ack(ranges) => {
                self.stats.acks_in += 1;
                for r in ranges {
                    self.acked.insert(ClockRange { client: r.client, start: r.clock_start, end: r.clock_end });
                }
                Ok(Vec::new())
            }
            Frame::Awareness(_) | Frame::AwarenessQuery => Ok(Vec::new()),
        }
    }

    /// Types one patch (`pos` and `del` are UTF-16 offsets into the current text):
    /// the frame to send now, if connected.
    pub fn type_patch(&mut self, pos: u32, del: u32, ins: &str) -> Option<Vec<u8>> {
        let update = ydoc::edit(&self.doc, &self.text, pos, del, ins);
        self.outgoing(update)
    }

    /// Types several patches as one transaction (one update frame).
    pub fn type_patches(&mut self, patches: &[(u32, u32, String)]) -> Option<Vec<u8>> {
        let update = ydoc::edit_many(&self.doc, &self.text, patches);
        self.outgoing(update)
    }

    /// Applies an update this editor authored elsewhere (a precomputed trace step): the frame
    /// to send now, if connected.
    pub fn type_update(&mut self, update: &[u8]) -> Result<Option<Vec<u8>>, YError> {
        ydoc::apply(&self.doc, update)?;
        Ok(self.outgoing(update.to_vec()))
    }

    fn outgoing(&mut self, update: Vec<u8>) -> Option<Vec<u8>> {
        if !self.connected {
            return None;
        }
        self.stats.updates_out += 1;
        Some(protocol::encode_update(update))
    }
}

/// Whether `a` lacks something `b` has.
pub fn lacks(a: &Sv, b: &Sv) -> bool {
    b.iter().any(|(c, k)| a.get(c).copied().unwrap_or(0) < *k)
}

#[cfg(test)]
mod tests {
    use super::*;
    use system::collab::protocol::AckRange;

    /// A minimal in-memory y-sync server room for the core to talk to.
    struct Room {
        doc: Doc,
    }

    impl Room {
        fn new() -> Self {
            Room { doc: ydoc::new_doc(999).0 }
        }
        /// Answers a client frame: (frames back to the sender, update to ack).
        fn receive(&mut self, bytes: &[u8]) -> Vec<Vec<u8>> {
            match protocol::decode(bytes).unwrap() {
                Frame::SyncStep1(sv) => vec![
                    protocol::encode_step2(ydoc::diff(&self.doc, &ydoc::to_sv(&sv))),
                    protocol::encode_step1(&ydoc::from_sv(&ydoc::sv_of(&self.doc))),
                ],
                Frame::SyncStep2(u, _) | Frame::Update(u, _) => {
                    let before = ydoc::sv_of(&self.doc);
                    ydoc::apply(&self.doc, &u).unwrap();
                    let after = ydoc::sv_of(&self.doc);
                    let ranges: Vec<AckRange> = after
                        .iter()
                        .filter(|(c, k)| before.get(c).copied().unwrap_or(0) < **k)
                        .map(|(c, k)| AckRange {
                            client: *c,
                            clock_start: before.get(c).copied().unwrap_or(0),
                            clock_end: *k,
                        })
                        .collect();
                    vec![protocol::encode_ack(&ranges)]
                }
                _ => Vec::new(),
            }
        }
    }

    fn exchange(core: &mut EditorCore, room: &mut Room, first: Vec<Vec<u8>>) {
        let mut to_room = first;
        while !to_room.is_empty() {
            let mut to_core = Vec::new();
            for f in to_room.drain(..) {
                to_core.extend(room.receive(&f));
            }
            for f in to_core {
                to_room.extend(core.receive(&f).unwrap());
            }
        }
    }

    #[test]
    fn offline_edits_reach_the_room_on_reconnect_and_get_acked() {
        let mut room = Room::new();
        let mut a = EditorCore::new(1);
        let hello = a.connected();
        exchange(&mut a, &mut room, hello);
        assert!(a.is_synced());
        let f = a.type_patch(0, 0, "abc").unwrap();
        exchange(&mut a, &mut room, vec![f]);
        assert_eq!(a.acked().ranges(), vec![ClockRange { client: 1, start: 0, end: 3 }]);
        a.disconnected();
        assert!(a.type_patch(3, 0, "de").is_none(), "nothing is sent while disconnected");
        assert_eq!(a.unacked_own(), vec![ClockRange { client: 1, start: 3, end: 5 }]);
        // Meanwhile another editor wrote to the room.
        let mut b = EditorCore::new(2);
        let hello = b.connected();
        exchange(&mut b, &mut room, hello);
        let f = b.type_patch(0, 0, "X").unwrap();
        exchange(&mut b, &mut room, vec![f]);
        // Reconnect: step 1/2 both ways.
        let hello = a.connected();
        exchange(&mut a, &mut room, hello);
        assert_eq!(a.stats.resyncs_sent, 1);
        assert_eq!(a.stats.resyncs_received, 1);
        assert!(a.unacked_own().is_empty(), "{:?}", a.unacked_own());
        assert_eq!(a.text(), ydoc::text_of(&room.doc, &room.doc.get_or_insert_text(ydoc::TEXT)));
    }

    #[test]
    fn state_vectors_cross_the_wire_unchanged() {
        let sv = Sv::from([(3, 10), (1 << 40, 2)]);
        match protocol::decode(&protocol::encode_step1(&ydoc::from_sv(&sv))).unwrap() {
            Frame::SyncStep1(got) => assert_eq!(ydoc::to_sv(&got), sv),
            other => panic!("{other:?}"),
        }
    }

    /// Malformed frames from the server are errors (the shell drops the connection), never
    /// panics; a well-formed message of a type the editor does not handle is ignored.
    #[test]
    fn garbage_frames_are_errors() {
        let mut a = EditorCore::new(1);
        let n = protocol::MAX_ACK_RANGES + 1;
        let too_many = vec![100, (n & 0x7f) as u8 | 0x80, (n >> 7) as u8];
        let bad: Vec<Vec<u8>> = vec![
            vec![],
            vec![0, 2, 5, 1, 2],
            vec![100, 1],
            vec![100, 1, 5],
            vec![100, 1, 1, 9, 3],
            vec![100, 0, 7],
            vec![0xff; 11],
            vec![0, 2, 200, 1],
            too_many,
        ];
        for b in bad {
            assert!(a.receive(&b).is_err(), "{b:?} accepted");
        }
        assert!(a.acked().is_empty());
        assert_eq!(a.receive(&[9]).unwrap(), Vec::<Vec<u8>>::new());
    }
}
