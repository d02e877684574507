//! A mongod's connections: one listener for peers and clients alike, and one sender per peer,
//! both from the RPC shell ([`crate::rpc`]).

use sim::net::Net;
use sim::NodeCtx;
use tokio::sync::{mpsc, oneshot};

use super::CommandIn;
use crate::mongo::protocol::{Frame, PeerMsg, Reply, ENCODING};
use crate::rpc::{self, Answer, Listen, PeerOptions, PeerSender};

/// Accepts connections; peer frames go to the member, commands get their reply on the same
/// connection, in order. A connection silent for 30 s is closed (clients and peers reconnect).
pub async fn listen(
    net: Net,
    port: u16,
    set: String,
    me: usize,
    members: usize,
    peers: mpsc::UnboundedSender<(usize, PeerMsg)>,
    commands: mpsc::UnboundedSender<CommandIn>,
) {
    rpc::serve(net, Listen::new(port, ENCODING), move |frame: Frame| {
        let routed = route(frame, &set, me, members, &peers, &commands);
        async move {
            match routed {
                Routed::Peer => Answer::Quiet,
                Routed::Command(reply) => reply.await.map_or(Answer::Close, Answer::Reply),
                Routed::Refused => Answer::Close,
            }
        }
    })
    .await;
}

enum Routed {
    Peer,
    Command(oneshot::Receiver<Reply>),
    Refused,
}

/// Hands a frame to the member. Untrusted: a frame for another set or from an unknown member
/// ends the stream, as does a member that has stopped.
fn route(
    frame: Frame,
    set: &str,
    me: usize,
    members: usize,
    peers: &mpsc::UnboundedSender<(usize, PeerMsg)>,
    commands: &mpsc::UnboundedSender<CommandIn>,
) -> Routed {
    match frame {
        Frame::Peer { set: s, from, msg } => {
            let trusted = s == set && from < members && from != me;
            if trusted && peers.send((from, msg)).is_ok() {
                Routed::Peer
            } else {
                Routed::Refused
            }
        }
        Frame::Command(cmd) => {
            let (tx, rx) = oneshot::channel();
            match commands.send((cmd, tx)) {
                Ok(()) => Routed::Command(rx),
                Err(_) => Routed::Refused,
            }
        }
    }
}

/// Where a peer link reports frames it could not deliver: (peer index, message).
pub type Undelivered = mpsc::UnboundedSender<(usize, PeerMsg)>;

/// The link to peer `index` at `host`. Replication tolerates loss (heartbeats repeat, fetches
/// are retried), so frames it cannot deliver are dropped, by the shell's one policy, and
/// reported back: an undeliverable vote request ends a split vote at once.
pub fn peer_link(
    ctx: &mut NodeCtx,
    host: &str,
    index: usize,
    port: u16,
    undelivered: Undelivered,
) -> PeerSender<Frame> {
    let report = move |frame: Frame| {
        if let Frame::Peer { msg, .. } = frame {
            let _ = undelivered.send((index, msg));
        }
    };
    PeerSender::spawn(ctx, host, PeerOptions::new(port, ENCODING), report)
}
