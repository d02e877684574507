//! A mongod's connections: one listener for peers and clients alike, and one sender per peer.

use std::time::Duration;

use sim::net::{Conn, Net};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::CommandIn;
use crate::mongo::protocol::{Frame, PeerMsg};
use crate::wire;

/// A connection silent this long is closed (clients and peers reconnect).
const IDLE: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const WRITE_TIMEOUT: Duration = Duration::from_secs(1);
const RECONNECT_BACKOFF: Duration = Duration::from_millis(100);
/// Peer connections are replaced this often, so one stuck after a partition heals does not
/// outlive it.
const CONN_MAX_AGE: Duration = Duration::from_secs(3);

/// Accepts connections; peer frames go to the member, commands get their reply on the same
/// connection, in order.
pub async fn listen(
    net: Net,
    port: u16,
    set: String,
    me: usize,
    members: usize,
    peers: mpsc::UnboundedSender<(usize, PeerMsg)>,
    commands: mpsc::UnboundedSender<CommandIn>,
) {
    let listener = match net.bind(port).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(port, error = %e, "mongod cannot listen");
            return;
        }
    };
    while let Ok((conn, _)) = listener.accept().await {
        tokio::spawn(serve_conn(conn, set.clone(), me, members, peers.clone(), commands.clone()));
    }
}

async fn serve_conn(
    mut conn: Conn,
    set: String,
    me: usize,
    members: usize,
    peers: mpsc::UnboundedSender<(usize, PeerMsg)>,
    commands: mpsc::UnboundedSender<CommandIn>,
) {
    while let Ok(Ok(frame)) = tokio::time::timeout(IDLE, wire::recv::<_, Frame>(&mut conn)).await {
        match frame {
            Frame::Peer { set: s, from, msg } => {
                // Untrusted: a frame for another set or from an unknown member ends the stream.
                if s != set || from >= members || from == me || peers.send((from, msg)).is_err() {
                    return;
                }
            }
            Frame::Command(cmd) => {
                let (tx, rx) = oneshot::channel();
                if commands.send((cmd, tx)).is_err() {
                    return;
                }
                let Ok(reply) = rx.await else { return };
                if wire::send(&mut conn, &reply).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Where a peer link reports frames it could not deliver: (peer index, message).
pub type Undelivered = mpsc::UnboundedSender<(usize, PeerMsg)>;

/// Sends this member's frames to peer `index`, reconnecting as needed. Replication tolerates
/// loss (heartbeats repeat, fetches are retried), so frames produced while the peer is
/// unreachable are dropped rather than queued, and reported back.
pub async fn send_to(
    net: Net,
    peer: String,
    index: usize,
    port: u16,
    mut rx: mpsc::UnboundedReceiver<Frame>,
    undelivered: Undelivered,
) {
    let mut conn: Option<Conn> = None;
    let mut opened = Instant::now();
    let report = |frame: Frame| {
        if let Frame::Peer { msg, .. } = frame {
            let _ = undelivered.send((index, msg));
        }
    };
    while let Some(frame) = rx.recv().await {
        if conn.is_some() && opened.elapsed() > CONN_MAX_AGE {
            conn = None;
        }
        if conn.is_none() {
            match tokio::time::timeout(CONNECT_TIMEOUT, net.connect(&peer, port)).await {
                Ok(Ok(c)) => {
                    conn = Some(c);
                    opened = Instant::now();
                }
                _ => {
                    report(frame);
                    tokio::time::sleep(RECONNECT_BACKOFF).await;
                    while let Ok(f) = rx.try_recv() {
                        report(f);
                    }
                    continue;
                }
            }
        }
        let c = conn.as_mut().expect("connected above");
        // A write deadline, as in consensus.rs's twin of this loop: a stream stuck behind a
        // partition (send buffer full, never acknowledged) is abandoned, not waited on forever.
        if !matches!(tokio::time::timeout(WRITE_TIMEOUT, wire::send(c, &frame)).await, Ok(Ok(()))) {
            conn = None;
            report(frame);
        }
    }
}
