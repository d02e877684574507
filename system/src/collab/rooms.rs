//! The node's rooms: a registry by document, and each room's task (the shell around
//! [`Room`]).
//!
//! The first session of a document opens its room: the task loads the document's state from
//! the document service (`GET /docs/<tenant>/<doc>/state` on the `docs-<i>` instances, in a
//! seeded order, each attempt bounded, until one answers 200 or `load_timeout_ms` passes),
//! catches it up with the log, and only then serves the sessions waiting in its inbox, so no
//! session gets a step 1 or step 2 of a document that is not loaded.
//!
//! The catch-up: the document service serves what the log consumers persisted into MongoDB,
//! which lags the log. An edit another instance acknowledged (it is in the log) but no consumer
//! persisted yet would be missing from the reopened room, and if its author had since dropped
//! its copy ("all changes saved", then a fresh tab) nobody would resend it: the live room and
//! its editors would diverge from the durable document for as long as the room stays open
//! (`kill-az` seed 1, a room moving back when its zone returns). So before loading, the room
//! reads the consumer group's committed offset of its document's partition (everything before
//! it is in MongoDB, since consumers commit only after persisting), and after loading it reads
//! the partition from there to the high watermark it finds, applying this document's updates
//! (applying one twice changes nothing). Everything acknowledged before the load started is
//! below that high watermark. If the log cannot be read within `load_timeout_ms` the room does
//! not open (its sessions are closed and reconnect), as when the document cannot be loaded. A room whose last session left lingers for
//! `room_grace_ms` (a reconnecting editor finds it warm), then closes; one that cannot load
//! closes its waiting sessions (they reconnect and try again).
//!
//! Sessions join under the registry's lock, and a room removes itself under the same lock only
//! when its inbox is empty, so a join never lands in a room that is going away.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::seq::SliceRandom;
use rand::Rng;
use sim::NodeCtx;
use tokio::sync::mpsc;

use super::durable::{partition_for, Durable, Produce, Report};
use super::observe::{AckSent, RoomClosed, RoomOpened, SessionClosed, UpdateApplied};
use super::protocol::Frame;
use super::room::{Action, CloseReason, Room, SessionId};
use super::{CollabConfig, HTTP_PORT};
use crate::byte_queue::ByteSender;
use crate::doc_update::{DocId, DocUpdate, TOPIC};
use crate::http;
use crate::kafka::client::{FetchError, GroupMember};
use crate::kafka::protocol::CommittedOffset;
use crate::kafka::TopicPartition;

/// A room's inbox capacity (sessions wait when it is full).
const INBOX: usize = 1_024;

/// What a session's task hears from its room.
#[derive(Debug)]
pub enum Out {
    Frame(Vec<u8>),
    Close(CloseReason),
}

/// What a room hears.
pub enum RoomMsg {
    Join { session: SessionId, wants_acks: bool, writable: bool, out: ByteSender<Out> },
    Frame { session: SessionId, frame: Frame, raw: Vec<u8> },
    SetWritable { session: SessionId, writable: bool },
    Leave { session: SessionId },
    Produced(Report),
}

/// The rooms of one node.
pub struct Rooms {
    inner: Mutex<Inner>,
    config: CollabConfig,
    durable: Durable,
}

struct Inner {
    /// Forked for each room's task.
    ctx: NodeCtx,
    open: BTreeMap<DocId, mpsc::Sender<RoomMsg>>,
}

impl Rooms {
    pub fn new(ctx: NodeCtx, config: CollabConfig, durable: Durable) -> Arc<Rooms> {
        Arc::new(Rooms { inner: Mutex::new(Inner { ctx, open: BTreeMap::new() }), config, durable })
    }

    /// Sends `join` to the document's room, opening it first if needed; returns the room's
    /// inbox. `None` when the room's inbox stays full (the node is overloaded).
    pub async fn join(self: &Arc<Self>, doc: &DocId, mut join: RoomMsg) -> Option<mpsc::Sender<RoomMsg>> {
        for _ in 0..50 {
            {
                let mut inner = self.inner.lock().expect("rooms lock");
                let tx = match inner.open.get(doc) {
                    Some(tx) if !tx.is_closed() => tx.clone(),
                    _ => {
                        let (tx, rx) = mpsc::channel(INBOX);
                        let ctx = inner.ctx.fork();
                        inner.open.insert(doc.clone(), tx.clone());
                        tokio::spawn(room_task(ctx, self.clone(), doc.clone(), tx.clone(), rx));
                        tx
                    }
                };
                match tx.try_send(join) {
                    Ok(()) => return Some(tx),
                    Err(mpsc::error::TrySendError::Full(j) | mpsc::error::TrySendError::Closed(j)) => join = j,
                }
            }
            sim::timer::sleep(Duration::from_millis(20)).await;
        }
        None
    }

    /// Removes the room of `doc` if `inbox` is still it and nothing waits in `rx`; gives back
    /// the message that arrived meanwhile otherwise.
    fn remove_if_idle(
        &self,
        doc: &DocId,
        inbox: &mpsc::Sender<RoomMsg>,
        rx: &mut mpsc::Receiver<RoomMsg>,
    ) -> Result<(), RoomMsg> {
        let mut inner = self.inner.lock().expect("rooms lock");
        if let Ok(msg) = rx.try_recv() {
            return Err(msg);
        }
        if inner.open.get(doc).is_some_and(|tx| tx.same_channel(inbox)) {
            inner.open.remove(doc);
        }
        rx.close();
        Ok(())
    }

    fn remove(&self, doc: &DocId, inbox: &mpsc::Sender<RoomMsg>) {
        let mut inner = self.inner.lock().expect("rooms lock");
        if inner.open.get(doc).is_some_and(|tx| tx.same_channel(inbox)) {
            inner.open.remove(doc);
        }
    }

    /// Documents with an open room.
    pub fn open_docs(&self) -> Vec<DocId> {
        self.inner.lock().expect("rooms lock").open.keys().cloned().collect()
    }
}

/// A session as its room's shell knows it.
struct Member {
    out: ByteSender<Out>,
}

async fn room_task(
    mut ctx: NodeCtx,
    rooms: Arc<Rooms>,
    doc: DocId,
    inbox: mpsc::Sender<RoomMsg>,
    mut rx: mpsc::Receiver<RoomMsg>,
) {
    let cfg = rooms.config.clone();
    let started_ms = ctx.clock.now_ms();
    let loaded = load(&mut ctx, &cfg, &doc).await;
    let client_id = ctx.rng.gen::<u64>();
    let room = loaded.and_then(|(node, state, tail)| {
        let mut room = Room::new(client_id, &state, cfg.ack_before_durable).ok()?;
        for update in &tail {
            room.apply_durable(update);
        }
        Some((node, state.len(), room))
    });
    let Some((docs_node, state_bytes, room)) = room else {
        ctx.observe(&RoomClosed { doc: doc.to_string(), reason: CloseReason::LoadFailed });
        rooms.remove(&doc, &inbox);
        rx.close();
        while let Some(msg) = rx.recv().await {
            if let RoomMsg::Join { out, .. } = msg {
                let _ = out.try_send(Out::Close(CloseReason::LoadFailed), 0);
            }
        }
        return;
    };
    let sv: Vec<(u64, u32)> = {
        let mut v: Vec<_> = room.state_vector().iter().map(|(c, k)| (c.get(), *k)).collect();
        v.sort();
        v
    };
    if !sv.is_empty() {
        // The document existed before this room: opened after a move or a restart.
        ctx.sometimes("collab.room_loaded_existing");
    }
    ctx.observe(&RoomOpened {
        doc: doc.to_string(),
        docs_node,
        state_bytes,
        state_vector: sv,
        load_ms: ctx.clock.now_ms() - started_ms,
    });
    let mut shell = Shell { ctx, doc, room, members: BTreeMap::new(), durable: rooms.durable.clone(), inbox };
    let grace = Duration::from_millis(cfg.room_grace_ms);
    loop {
        let msg = if shell.room.is_empty() {
            match sim::timer::timeout(grace, rx.recv()).await {
                Ok(Some(msg)) => msg,
                Ok(None) => return,
                Err(_) => match rooms.remove_if_idle(&shell.doc, &shell.inbox, &mut rx) {
                    Ok(()) => {
                        shell.ctx.observe(&RoomClosed { doc: shell.doc.to_string(), reason: CloseReason::Idle });
                        return;
                    }
                    Err(msg) => msg,
                },
            }
        } else {
            match rx.recv().await {
                Some(msg) => msg,
                None => return,
            }
        };
        if shell.handle(msg) {
            rooms.remove(&shell.doc, &shell.inbox);
            return;
        }
    }
}

/// The document's state from the document service, and the updates of the document in the
/// log from the consumers' committed offset on (see the module docs).
async fn load(ctx: &mut NodeCtx, cfg: &CollabConfig, doc: &DocId) -> Option<(String, Vec<u8>, Vec<Vec<u8>>)> {
    let deadline = ctx.clock.now_ms() + cfg.load_timeout_ms;
    let partitions = cfg.kafka.partitions_of(TOPIC);
    let tp = partitions.get(partition_for(doc, partitions.len() as u32) as usize)?.clone();
    let client = cfg.kafka.client(ctx);
    let mut log = GroupMember::new(client, crate::log_consumer::GROUP, &ctx.name, vec![TOPIC.to_string()], 0);
    let from = committed(ctx, &mut log, &tp, deadline).await?;
    let (node, state) = load_state(ctx, cfg, doc, deadline).await?;
    let tail = read_tail(ctx, &mut log, &tp, from, doc, deadline).await?;
    if !tail.is_empty() {
        ctx.sometimes("collab.room_caught_up_from_log");
    }
    Some((node, state, tail))
}

/// The consumer group's committed offset of `tp` (the start when it has none).
async fn committed(
    ctx: &mut NodeCtx,
    log: &mut GroupMember,
    tp: &TopicPartition,
    deadline_ms: u64,
) -> Option<CommittedOffset> {
    while ctx.clock.now_ms() < deadline_ms {
        match log.committed(&mut ctx.rng, vec![tp.clone()]).await {
            Ok(offsets) => {
                let c = offsets.into_iter().find(|(t, _)| t == tp).and_then(|(_, c)| c);
                return Some(c.unwrap_or(CommittedOffset { offset: 0, leader_epoch: None }));
            }
            Err(e) => tracing::debug!(error = ?e, "committed offsets unavailable"),
        }
        let backoff_ms = ctx.rng.gen_range(100..300);
        sim::timer::sleep(Duration::from_millis(backoff_ms)).await;
    }
    None
}

/// The updates of `doc` in `tp` from `from` up to the high watermark the first fetch reports.
async fn read_tail(
    ctx: &mut NodeCtx,
    log: &mut GroupMember,
    tp: &TopicPartition,
    from: CommittedOffset,
    doc: &DocId,
    deadline_ms: u64,
) -> Option<Vec<Vec<u8>>> {
    let mut position = from;
    let mut target: Option<u64> = None;
    let mut out = Vec::new();
    while ctx.clock.now_ms() < deadline_ms {
        if target.is_some_and(|t| position.offset >= t) {
            return Some(out);
        }
        match log.fetch(&mut ctx.rng, tp, position).await {
            Ok(resp) => {
                let t = *target.get_or_insert(resp.high_watermark);
                let start = position.offset;
                for r in resp.records.into_iter().filter(|r| r.offset >= start && r.offset < t) {
                    position = CommittedOffset { offset: r.offset + 1, leader_epoch: Some(r.leader_epoch) };
                    match DocUpdate::from_record(&r.value) {
                        Ok(u) if u.doc == *doc => out.push(u.update),
                        Ok(_) => {}
                        Err(e) => tracing::debug!(offset = r.offset, error = %e, "skipping a bad record"),
                    }
                }
            }
            // Below the log start: retention removed it, so the consumers persisted it.
            Err(FetchError::OutOfRange) => return Some(out),
            Err(FetchError::NoLeader) => {
                let backoff_ms = ctx.rng.gen_range(50..150);
                sim::timer::sleep(Duration::from_millis(backoff_ms)).await;
            }
        }
    }
    None
}

/// Asks the document service for the document's state.
async fn load_state(ctx: &mut NodeCtx, cfg: &CollabConfig, doc: &DocId, deadline: u64) -> Option<(String, Vec<u8>)> {
    let request = http::Request::get(&format!("/docs/{}/{}/state", doc.tenant(), doc.name()));
    let mut order = cfg.docs.clone();
    order.shuffle(&mut ctx.rng);
    let mut failures = 0u32;
    while ctx.clock.now_ms() < deadline {
        for node in &order {
            let timeout = Duration::from_millis(cfg.load_attempt_timeout_ms);
            match http::call(&ctx.net, node, HTTP_PORT, &request, timeout).await {
                Ok(resp) if resp.status == 200 => {
                    if failures > 0 {
                        ctx.sometimes("collab.load_retried");
                    }
                    return Some((node.clone(), resp.body));
                }
                Ok(resp) => tracing::debug!(node, status = resp.status, "docs could not load"),
                Err(e) => tracing::debug!(node, error = %e, "docs unreachable"),
            }
            failures += 1;
            if ctx.clock.now_ms() >= deadline {
                break;
            }
        }
        let backoff_ms = 100 * u64::from(failures.min(10)) + ctx.rng.gen_range(0..100);
        sim::timer::sleep(Duration::from_millis(backoff_ms)).await;
    }
    None
}

/// The room's shell: carries out the actions of the sans-IO [`Room`].
struct Shell {
    ctx: NodeCtx,
    doc: DocId,
    room: Room,
    members: BTreeMap<SessionId, Member>,
    durable: Durable,
    inbox: mpsc::Sender<RoomMsg>,
}

impl Shell {
    /// Handles one message; returns true when the room must close.
    fn handle(&mut self, msg: RoomMsg) -> bool {
        let actions = match msg {
            RoomMsg::Join { session, wants_acks, writable, out } => {
                self.members.insert(session, Member { out });
                self.room.join(session, wants_acks, writable)
            }
            RoomMsg::Frame { session, frame, raw } => self.room.receive(session, frame, &raw),
            RoomMsg::SetWritable { session, writable } => {
                self.room.set_writable(session, writable);
                Vec::new()
            }
            RoomMsg::Leave { session } => {
                self.members.remove(&session);
                self.room.leave(session)
            }
            RoomMsg::Produced(Report::Durable(seq)) => self.room.durable(seq),
        };
        self.run(actions)
    }

    fn run(&mut self, actions: Vec<Action>) -> bool {
        let mut queue: std::collections::VecDeque<Action> = actions.into();
        let mut close_room = false;
        while let Some(a) = queue.pop_front() {
            match a {
                Action::Send { session, frame } => {
                    let Some(m) = self.members.get(&session) else { continue };
                    let len = frame.len();
                    if m.out.try_send(Out::Frame(frame), len).is_err() && !m.out.is_closed() {
                        self.ctx.sometimes("collab.slow_reader_closed");
                        queue.extend(self.room.close(session, CloseReason::SlowReader));
                    }
                }
                Action::Close { session, reason } => {
                    if let Some(m) = self.members.remove(&session) {
                        let _ = m.out.try_send(Out::Close(reason), 0);
                    }
                    self.ctx.observe(&SessionClosed {
                        doc: self.doc.to_string(),
                        session,
                        reason: format!("{reason:?}"),
                    });
                }
                Action::Produce { seq, update } => {
                    let p = Produce { doc: self.doc.clone(), seq, update, reply: self.inbox.clone() };
                    if self.durable.enqueue(p).is_ok() {
                        queue.extend(self.room.accepted(seq));
                    } else {
                        self.ctx.sometimes("collab.durable_queue_full");
                        queue.extend(self.room.produce_refused());
                    }
                }
                Action::Applied { session, ranges } => {
                    self.ctx.observe(&UpdateApplied { doc: self.doc.to_string(), session, ranges });
                }
                Action::Acked { session, ranges } => {
                    self.ctx.observe(&AckSent { doc: self.doc.to_string(), session, ranges });
                }
                Action::CloseRoom { reason } => {
                    self.ctx.observe(&RoomClosed { doc: self.doc.to_string(), reason });
                    close_room = true;
                }
            }
        }
        close_room
    }
}
