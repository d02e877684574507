//! The RPC shell: the one place the stack accepts connections, keeps client connections, and
//! sends one-way frames to peers, with the deadlines, idle timeouts and backoff real RPC stacks
//! have. Every store's shell and the consensus shell talk through it, so they differ in protocol
//! only, never in how a stuck or restarted peer is handled.
//!
//! What it models: TCP connections carrying length-delimited frames ([`crate::wire::codec`]),
//! each frame one message in an [`Encoding`]; per connection, one request at a time, answered in
//! order. Five pieces:
//! - [`Frames`]: a connection wrapped in the frame codec, with deadlines on reads and writes;
//!   [`Frames::split`] gives a reading and a writing half for protocols that do both at once.
//! - [`serve`]: a request/reply listener. It binds, accepts, runs one task per connection,
//!   reads frames with an idle timeout, awaits the handler for each and writes its [`Answer`].
//!   A connection that idles out, errors or sends garbage is dropped: its client reconnects.
//!   [`accept_each`] is the bare accept loop, for protocols that stream rather than answer
//!   (WAL shipping, Redis replication).
//! - [`Channel`]: the client side, for any number of peers on one port. It caches connections
//!   (one per peer when calls are sequential, as many as there are concurrent calls otherwise),
//!   bounds connect, write and the whole call by deadlines, drops a connection on any failure,
//!   and reconnects after a seeded, jittered backoff ([`Backoff`]). [`call_once`] is one call
//!   on a fresh connection, for rare callers.
//! - [`Dialer`]: the client side of streaming protocols: one connect within its deadline, or
//!   [`Dialer::redial`], which keeps a session with a peer up, reconnecting after the backoff.
//! - [`PeerSender`]: a task per peer draining a queue of one-way frames over a cached
//!   connection, for protocols that retransmit on their own (Raft, MongoDB replication).
//!
//! No other module of the stack accepts or opens a connection.
//!
//! What it leaves out: TLS, multiplexing several requests on one connection (HTTP/2, MongoDB's
//! `moreToCome`), connection limits, and keep-alive probes (deadlines stand in for them).
//!
//! Why deadlines everywhere: in both simulators, and on real networks, a stream can stay stuck
//! after a partition heals (its send buffer full, never acknowledged). Code that waits on such a
//! stream without a deadline hangs forever; real clients time out and reconnect, and so do these.
//!
//! ```ignore
//! // A server answering `Ping` with `Pong`, and a client calling it.
//! tokio::spawn(rpc::serve(ctx.net.clone(), Listen::new(PORT, Encoding::Json), |req: Ping| async move {
//!     Answer::Reply(Pong(req.0))
//! }));
//! let channel = Channel::new(&mut ctx, ChannelOptions::new(PORT, Encoding::Json));
//! let pong: Pong = channel.call("server-1", &Ping(7), Duration::from_secs(1)).await?;
//! ```

mod backoff;
mod channel;
mod dial;
mod frames;
mod listen;
mod peer;
#[cfg(test)]
mod tests;

pub use backoff::Backoff;
pub use channel::{call_once, Channel, ChannelOptions, RpcError};
pub use dial::{DialOptions, Dialer};
pub use frames::{FrameReader, FrameWriter, Frames};
pub use listen::{accept_each, serve, Answer, Listen};
pub use peer::{PeerOptions, PeerSender};

pub use crate::wire::Encoding;
