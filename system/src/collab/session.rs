//! One WebSocket connection's shell: the handshake with admission, then frames between the
//! socket and the document's room, and the periodic permission re-check.
//!
//! The request head is read first (`GET /collab/<tenant>/<doc>?token=..[&ack=1]`, bounded like
//! every HTTP head here), the token and permission are checked, and only an admitted request is
//! handed to tungstenite's handshake (the head replayed in front of the stream); a refused one
//! gets a plain 400/401/403/404/503 response, so a client learns why, and nothing else.
//!
//! After the handshake each binary frame is decoded and validated ([`protocol::decode`], through
//! the sans-IO [`inbound`]) before it reaches the room; a malformed frame, a text frame or an
//! oversized message closes this connection only. A connection silent for `idle_timeout_ms` is
//! closed (pings go out every third of it; any frame counts as life), so a stream stuck behind a
//! healed partition does not hold a session forever.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use sim::net::Conn;
use sim::NodeCtx;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{mpsc, Mutex};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::gate::{Access, Denied, Gate, Perm, RECHECK_INTERVAL_MS, RECHECK_TIMEOUT_MS, REVOCATION_BOUND_MS};
use super::observe::{SessionAdmitted, SessionClosed, SessionRefused};
use super::protocol;
use super::room::{CloseReason, SessionId};
use super::rooms::{Out, RoomMsg, Rooms};
use crate::byte_queue::{byte_queue, ByteReceiver};
use crate::doc_update::DocId;
use crate::http;

/// Bytes of outgoing frames a session may have queued before it counts as a slow reader
/// (a frame larger than that still goes, alone): a whole largest frame's worth. Counted in
/// bytes, as a socket's send buffer is, so a burst of keystrokes (50 editors with 32 each in
/// flight is 1,568 frames of some 30 bytes for each session) is not taken for a stalled reader,
/// as a bound of 512 frames took it.
const OUTBOX_BYTES: usize = protocol::MAX_FRAME_BYTES;
/// Most queued frames written before one flush: a fan-out of many small frames goes out in
/// one write instead of a system call each, and a flood still yields to the other work.
const FRAMES_PER_FLUSH: usize = 64;
/// The longest the handshake (head, admission, upgrade) may take.
const HANDSHAKE_TIMEOUT_MS: u64 = 10_000;
/// The longest one frame write may take.
const WRITE_TIMEOUT_MS: u64 = 5_000;

/// What a session needs from its node.
pub struct Node {
    pub rooms: Arc<Rooms>,
    pub gate: Arc<Mutex<Box<dyn Gate>>>,
    pub idle_timeout_ms: u64,
}

/// What the request asked for.
#[derive(Debug, PartialEq, Eq)]
pub struct Target {
    pub doc: DocId,
    pub token: String,
    pub wants_acks: bool,
}

/// Parses `/collab/<tenant>/<doc>` and its query; the error is the status to answer.
pub fn parse_target(req: &http::Request) -> Result<Target, (u16, &'static str)> {
    let rest = req.path.strip_prefix("/collab/").ok_or((404, "not_found"))?;
    let doc = DocId::parse(rest).map_err(|_| (404, "bad_doc"))?;
    if req.method != "GET" || !req.is_upgrade() {
        return Err((400, "not_upgrade"));
    }
    let token = req.query.get("token").filter(|t| !t.is_empty()).ok_or((401, "no_token"))?;
    let wants_acks = req.query.get("ack").is_some_and(|v| v == "1");
    Ok(Target { doc, token: token.clone(), wants_acks })
}

/// Serves one connection to the end.
pub async fn serve(ctx: NodeCtx, node: Arc<Node>, mut conn: Conn, peer: String, session: SessionId) {
    let handshake = async {
        let req = http::read_request(&mut conn).await.ok()?;
        let target = match parse_target(&req) {
            Ok(t) => t,
            Err((status, reason)) => {
                refuse(&ctx, &mut conn, &req.path, status, reason, &peer).await;
                return None;
            }
        };
        let admitted = node.gate.lock().await.admit(&target.token, &target.doc, ctx.clock.wall_ms()).await;
        let access = match admitted {
            Ok(a) => a,
            Err(denied) => {
                refuse(&ctx, &mut conn, &req.path, denied.status(), denied.reason(), &peer).await;
                return None;
            }
        };
        let config = protocol::ws_config();
        let stream = Replay { head: req.head_bytes().to_vec(), pos: 0, inner: conn };
        // Admission already happened on the head; the callback only completes the upgrade.
        #[allow(clippy::result_large_err)]
        let accept = |_: &_, resp| Ok(resp);
        let ws = tokio_tungstenite::accept_hdr_async_with_config(stream, accept, Some(config)).await.ok()?;
        Some((target, access, ws))
    };
    let Ok(Some((target, access, ws))) =
        sim::timer::timeout(Duration::from_millis(HANDSHAKE_TIMEOUT_MS), handshake).await
    else {
        return;
    };
    ctx.observe(&SessionAdmitted {
        doc: target.doc.to_string(),
        session,
        tenant: access.tenant.clone(),
        user: access.user.clone(),
        perm: access.perm,
        wants_acks: target.wants_acks,
        peer,
    });
    let reason = run_session(&ctx, &node, session, &target, access, ws).await;
    ctx.observe(&SessionClosed { doc: target.doc.to_string(), session, reason: reason.into() });
}

async fn refuse(ctx: &NodeCtx, conn: &mut Conn, path: &str, status: u16, reason: &str, peer: &str) {
    ctx.observe(&SessionRefused {
        path: path.chars().take(200).collect(),
        status,
        reason: reason.into(),
        peer: peer.into(),
    });
    ctx.sometimes(&format!("collab.refused_{status}"));
    let _ = http::write_response(conn, &http::Response::error(status, reason)).await;
}

type Ws = WebSocketStream<Replay<Conn>>;

/// Why the shell ended a session (the room's own reasons come as [`CloseReason`]).
async fn run_session(
    ctx: &NodeCtx,
    node: &Node,
    session: SessionId,
    target: &Target,
    access: Access,
    mut ws: Ws,
) -> &'static str {
    let (out_tx, mut out_rx) = byte_queue(OUTBOX_BYTES);
    let writable = access.perm == Perm::Write;
    let join = RoomMsg::Join { session, wants_acks: target.wants_acks, writable, out: out_tx };
    let Some(room) = node.rooms.join(&target.doc, join).await else {
        close(&mut ws, CloseCode::Again, "overloaded").await;
        return "overloaded";
    };
    // Re-checks run beside the session so a slow auth store never stalls its frames.
    let (check_tx, mut check_rx) = mpsc::channel(1);
    let checker =
        tokio::spawn(recheck_loop(ctx.clock.clone(), node.gate.clone(), access, target.doc.clone(), check_tx));
    let reason = pump(ctx, node, session, writable, &room, &mut ws, &mut out_rx, &mut check_rx).await;
    checker.abort();
    let _ = room.send(RoomMsg::Leave { session }).await;
    reason
}

#[allow(clippy::too_many_arguments)]
async fn pump(
    ctx: &NodeCtx,
    node: &Node,
    session: SessionId,
    writable: bool,
    room: &mpsc::Sender<RoomMsg>,
    ws: &mut Ws,
    out_rx: &mut ByteReceiver<Out>,
    check_rx: &mut mpsc::Receiver<(u64, Result<Perm, Denied>)>,
) -> &'static str {
    let write_timeout = Duration::from_millis(WRITE_TIMEOUT_MS);
    let idle_ms = node.idle_timeout_ms.max(300);
    let mut tick = sim::timer::interval(Duration::from_millis(idle_ms / 3));
    let mut last_heard_ms = ctx.clock.now_ms();
    let mut last_ok_check_ms = ctx.clock.now_ms();
    let mut writable_now = writable;
    let stale_after_ms = REVOCATION_BOUND_MS - RECHECK_INTERVAL_MS;
    loop {
        tokio::select! {
            biased;
            out = out_rx.recv() => match out {
                Some(Out::Frame(bytes)) => {
                    let mut then_close = None;
                    let write = async {
                        ws.feed(Message::Binary(bytes.into())).await?;
                        for _ in 1..FRAMES_PER_FLUSH {
                            match out_rx.try_recv() {
                                Some(Out::Frame(more)) => ws.feed(Message::Binary(more.into())).await?,
                                Some(Out::Close(reason)) => {
                                    then_close = Some(reason);
                                    break;
                                }
                                None => break,
                            }
                        }
                        ws.flush().await
                    };
                    if !matches!(sim::timer::timeout(write_timeout, write).await, Ok(Ok(()))) {
                        return "write_failed";
                    }
                    if let Some(reason) = then_close {
                        return close_for(ws, reason).await;
                    }
                }
                Some(Out::Close(reason)) => return close_for(ws, reason).await,
                None => {
                    close(ws, CloseCode::Again, "room closed").await;
                    return "room_gone";
                }
            },
            checked = check_rx.recv() => match checked {
                Some((started_ms, Ok(perm))) => {
                    last_ok_check_ms = started_ms;
                    let w = perm == Perm::Write;
                    if writable_now != w {
                        writable_now = w;
                        let _ = room.send(RoomMsg::SetWritable { session, writable: w }).await;
                    }
                }
                Some((_, Err(Denied::Unavailable))) | None => {}
                Some((_, Err(Denied::Expired))) => {
                    // The token ran out: not a revocation; the client logs in again and reconnects.
                    ctx.sometimes("collab.session_token_expired");
                    close(ws, CloseCode::Policy, "token expired").await;
                    return "expired";
                }
                Some((_, Err(_))) => {
                    ctx.sometimes("collab.session_revoked");
                    close(ws, CloseCode::Policy, "permission revoked").await;
                    return "revoked";
                }
            },
            msg = ws.next() => {
                last_heard_ms = ctx.clock.now_ms();
                // No frame of a session whose permission went unconfirmed too long is forwarded.
                let binary = matches!(msg, Some(Ok(Message::Binary(_))));
                if binary && ctx.clock.now_ms().saturating_sub(last_ok_check_ms) > stale_after_ms {
                    ctx.sometimes("collab.session_stale_permission");
                    close(ws, CloseCode::Again, "permission not confirmed").await;
                    return "stale_permission";
                }
                match inbound(msg) {
                    Inbound::Frame(frame, raw) => {
                        if room.send(RoomMsg::Frame { session, frame, raw }).await.is_err() {
                            return "room_gone";
                        }
                    }
                    Inbound::Flush => {
                        // tungstenite queued the pong; send it now (simulated streams send on flush).
                        if ws.flush().await.is_err() {
                            return "write_failed";
                        }
                    }
                    Inbound::Refuse { code, reason, error } => {
                        tracing::debug!(session, %error, "refused frame");
                        ctx.sometimes("collab.malformed_frame_closed");
                        close(ws, code, reason).await;
                        return "malformed";
                    }
                    Inbound::Failed(error) => {
                        tracing::debug!(session, %error, "websocket error");
                        return "malformed";
                    }
                    Inbound::Closed => return "client_closed",
                    Inbound::Ignore => {}
                }
            },
            _ = tick.tick() => {
                let now = ctx.clock.now_ms();
                if now.saturating_sub(last_ok_check_ms) > stale_after_ms {
                    ctx.sometimes("collab.session_stale_permission");
                    close(ws, CloseCode::Again, "permission not confirmed").await;
                    return "stale_permission";
                }
                if now.saturating_sub(last_heard_ms) > idle_ms {
                    return "idle";
                }
                let ping = sim::timer::timeout(write_timeout, ws.send(Message::Ping(Vec::new().into()))).await;
                if !matches!(ping, Ok(Ok(()))) {
                    return "write_failed";
                }
            }
        }
    }
}

/// What a session does with one message from its client's WebSocket, sans-IO.
#[derive(Debug)]
pub enum Inbound {
    /// A valid y-sync message for the room, with its bytes.
    Frame(protocol::Frame, Vec<u8>),
    /// A ping or pong: send the pong tungstenite queued.
    Flush,
    /// Close the connection with `code` and `reason`: the client broke the protocol.
    Refuse { code: CloseCode, reason: &'static str, error: String },
    /// The WebSocket failed (a malformed or oversized frame, an I/O error).
    Failed(String),
    /// The client closed, or the stream ended.
    Closed,
    /// Nothing to do (a raw frame, which a read never yields).
    Ignore,
}

/// Judges one message (`ws.next()`'s output): only a binary message holding exactly one valid
/// y-sync message ([`protocol::decode`]) reaches the room.
pub fn inbound(msg: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>) -> Inbound {
    match msg {
        Some(Ok(Message::Binary(bytes))) => match protocol::decode(&bytes) {
            Ok(frame) => Inbound::Frame(frame, bytes.to_vec()),
            Err(e) => Inbound::Refuse { code: CloseCode::Protocol, reason: "malformed", error: e.to_string() },
        },
        Some(Ok(Message::Ping(_) | Message::Pong(_))) => Inbound::Flush,
        Some(Ok(Message::Text(_))) => {
            Inbound::Refuse { code: CloseCode::Unsupported, reason: "binary frames only", error: "text frame".into() }
        }
        Some(Ok(Message::Close(_))) | None => Inbound::Closed,
        Some(Ok(Message::Frame(_))) => Inbound::Ignore,
        Some(Err(e)) => Inbound::Failed(e.to_string()),
    }
}

fn close_reason_name(r: CloseReason) -> &'static str {
    match r {
        CloseReason::ReadOnlyWrite => "read_only_write",
        CloseReason::Unexpected => "unexpected_message",
        CloseReason::SlowReader => "slow_reader",
        CloseReason::DurableQueueFull => "durable_queue_full",
        CloseReason::ApplyFailed => "apply_failed",
        CloseReason::LoadFailed => "load_failed",
        CloseReason::Idle => "idle",
    }
}

/// Closes for a reason of the room's.
async fn close_for(ws: &mut Ws, reason: CloseReason) -> &'static str {
    let code = if reason == CloseReason::ReadOnlyWrite { CloseCode::Policy } else { CloseCode::Again };
    close(ws, code, &format!("{reason:?}")).await;
    close_reason_name(reason)
}

async fn close(ws: &mut Ws, code: CloseCode, reason: &str) {
    let frame = CloseFrame { code, reason: reason.to_string().into() };
    let _ = sim::timer::timeout(Duration::from_millis(WRITE_TIMEOUT_MS), ws.close(Some(frame))).await;
}

/// Re-reads the session's permission every [`RECHECK_INTERVAL_MS`]; reports (start time, result).
async fn recheck_loop(
    clock: sim::clock::Clock,
    gate: Arc<Mutex<Box<dyn Gate>>>,
    access: Access,
    doc: DocId,
    tx: mpsc::Sender<(u64, Result<Perm, Denied>)>,
) {
    loop {
        sim::timer::sleep(Duration::from_millis(RECHECK_INTERVAL_MS)).await;
        let started_ms = clock.now_ms();
        let check = async { gate.lock().await.recheck(&access, &doc, clock.wall_ms()).await };
        let result = sim::timer::timeout(Duration::from_millis(RECHECK_TIMEOUT_MS), check)
            .await
            .unwrap_or(Err(Denied::Unavailable));
        if tx.send((started_ms, result)).await.is_err() {
            return;
        }
    }
}

/// A stream that first yields `head` (the request head already read), then `inner`.
pub struct Replay<S> {
    head: Vec<u8>,
    pos: usize,
    inner: S,
}

impl<S: AsyncRead + Unpin> AsyncRead for Replay<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        if me.pos < me.head.len() {
            let n = (me.head.len() - me.pos).min(buf.remaining());
            buf.put_slice(&me.head[me.pos..me.pos + n]);
            me.pos += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut me.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Replay<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(target: &str, upgrade: bool) -> http::Request {
        let r = http::Request::get(target);
        if upgrade {
            r.header("upgrade", "websocket")
        } else {
            r
        }
    }

    #[test]
    fn targets_are_parsed_and_refused_with_a_status() {
        let t = parse_target(&req("/collab/acme/plan?token=abc&ack=1", true)).unwrap();
        assert_eq!((t.doc.to_string().as_str(), t.token.as_str(), t.wants_acks), ("acme/plan", "abc", true));
        assert!(!parse_target(&req("/collab/acme/plan?token=abc", true)).unwrap().wants_acks);
        assert_eq!(parse_target(&req("/docs/acme/plan?token=abc", true)), Err((404, "not_found")));
        assert_eq!(parse_target(&req("/collab/ACME/plan?token=abc", true)), Err((404, "bad_doc")));
        assert_eq!(parse_target(&req("/collab/acme/plan/x?token=abc", true)), Err((404, "bad_doc")));
        assert_eq!(parse_target(&req("/collab/acme/plan?token=abc", false)), Err((400, "not_upgrade")));
        assert_eq!(parse_target(&req("/collab/acme/plan", true)), Err((401, "no_token")));
    }
}
