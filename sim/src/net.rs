//! The net seam: connect to and listen on `(node name, port)`, with byte streams.
//!
//! One tokio implementation serves the real build (real TCP) and madsim (`--cfg madsim` swaps
//! tokio's `net` for madsim's simulated TCP); a turmoil implementation serves plain `cargo test`.
//! Partitions and node kills are the engines' own (madsim clogs, turmoil partitions), so streams
//! stall or reset exactly as each engine's TCP does. Per-link latency, jitter and loss are ours
//! ([`crate::link`]): a simulated connection holds each arriving chunk for the link's delay before
//! its reader sees it, keeping the stream's order as TCP does.

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use std::collections::VecDeque;
use std::future::Future;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use crate::world::WorldState;

/// Where each node name lives: its IP and how its ports map to real ports.
///
/// Simulations give every node its own IP and keep ports as they are. The real build runs every
/// node on 127.0.0.1, where a node's well-known ports must not collide with another's: either a
/// plain offset added to every port ([`Directory::insert`]), or a block of real ports from a base
/// with one slot per well-known port ([`Directory::insert_block`], slots from
/// [`Directory::set_port_slots`]).
#[derive(Clone, Debug, Default)]
pub struct Directory {
    hosts: BTreeMap<String, (IpAddr, Ports)>,
    /// The well-known ports a block holds, in slot order.
    slots: Vec<u16>,
}

#[derive(Clone, Copy, Debug)]
enum Ports {
    Offset(u16),
    Block(u16),
}

impl Directory {
    pub fn insert(&mut self, name: &str, ip: IpAddr, port_offset: u16) {
        self.hosts.insert(name.to_string(), (ip, Ports::Offset(port_offset)));
    }

    /// `name` listens on `base + slot`, where `slot` is a port's place in the slot list.
    pub fn insert_block(&mut self, name: &str, ip: IpAddr, base: u16) {
        self.hosts.insert(name.to_string(), (ip, Ports::Block(base)));
    }

    /// The well-known ports every block maps, in slot order.
    pub fn set_port_slots(&mut self, ports: &[u16]) {
        self.slots = ports.to_vec();
    }

    /// The real address of `name`'s `port`.
    pub fn addr(&self, name: &str, port: u16) -> io::Result<SocketAddr> {
        let (ip, ports) = self
            .hosts
            .get(name)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("unknown node {name}")))?;
        let real = match ports {
            Ports::Offset(offset) => port.checked_add(*offset),
            Ports::Block(base) => {
                let slot = self.slots.iter().position(|p| *p == port).ok_or_else(|| {
                    io::Error::new(io::ErrorKind::AddrNotAvailable, format!("port {port} has no slot in a block"))
                })?;
                u16::try_from(slot).ok().and_then(|s| base.checked_add(s))
            }
        };
        let real = real.ok_or_else(|| {
            io::Error::new(io::ErrorKind::AddrNotAvailable, format!("port {port} of {name} is past 65535"))
        })?;
        Ok(SocketAddr::new(*ip, real))
    }

    /// The node at `ip`, when exactly one node lives there (on a shared 127.0.0.1 a peer's IP
    /// names nobody: its source port is an ephemeral one).
    fn name_of(&self, ip: IpAddr) -> Option<&str> {
        let mut at = self.hosts.iter().filter(|(_, (i, _))| *i == ip);
        match (at.next(), at.next()) {
            (Some((name, _)), None) => Some(name.as_str()),
            _ => None,
        }
    }
}

/// A node's handle on the network.
#[derive(Clone)]
pub struct Net {
    me: String,
    backend: Backend,
    /// Present in simulations: per-link shaping and the link table live in the world.
    world: Option<Arc<WorldState>>,
}

#[derive(Clone)]
enum Backend {
    Tokio(Arc<Directory>),
    #[cfg(not(madsim))]
    Turmoil,
}

impl Net {
    /// The tokio seam: real TCP in the real build, simulated TCP under madsim.
    pub fn tokio(me: &str, directory: Arc<Directory>, world: Option<Arc<WorldState>>) -> Self {
        Net { me: me.into(), backend: Backend::Tokio(directory), world }
    }

    /// The turmoil seam (plain `cargo test` simulations).
    #[cfg(not(madsim))]
    pub fn turmoil(me: &str, world: Arc<WorldState>) -> Self {
        Net { me: me.into(), backend: Backend::Turmoil, world: Some(world) }
    }

    pub fn me(&self) -> &str {
        &self.me
    }

    pub async fn connect(&self, node: &str, port: u16) -> io::Result<Conn> {
        let raw = match &self.backend {
            Backend::Tokio(dir) => {
                let s = tokio::net::TcpStream::connect(dir.addr(node, port)?).await?;
                no_delay(&s)?;
                RawConn::Tokio(s)
            }
            #[cfg(not(madsim))]
            Backend::Turmoil => RawConn::Turmoil(turmoil::net::TcpStream::connect((node, port)).await?),
        };
        Ok(Conn::new(raw, self.world.clone(), &self.me, node))
    }

    pub async fn bind(&self, port: u16) -> io::Result<Listener> {
        let inner = match &self.backend {
            Backend::Tokio(dir) => {
                let mine = dir.addr(&self.me, port)?;
                let any = SocketAddr::new(unspecified_like(mine.ip()), mine.port());
                ListenerInner::Tokio(tokio::net::TcpListener::bind(any).await?, dir.clone())
            }
            #[cfg(not(madsim))]
            Backend::Turmoil => ListenerInner::Turmoil(turmoil::net::TcpListener::bind(("0.0.0.0", port)).await?),
        };
        Ok(Listener { inner, me: self.me.clone(), world: self.world.clone() })
    }
}

/// Real sockets send each frame at once: with Nagle's algorithm a small frame written while the
/// previous one is unacknowledged waits for the peer's delayed ACK (some 40 ms on Linux), which
/// showed as the fan-out p99 of `stack bench`. Simulated TCP has no such delay to turn off.
#[cfg(not(madsim))]
fn no_delay(s: &tokio::net::TcpStream) -> io::Result<()> {
    s.set_nodelay(true)
}

#[cfg(madsim)]
fn no_delay(_: &tokio::net::TcpStream) -> io::Result<()> {
    Ok(())
}

/// Loopback stays loopback (the real build binds 127.0.0.1 only); simulated IPs bind all.
fn unspecified_like(ip: IpAddr) -> IpAddr {
    if ip.is_loopback() {
        ip
    } else {
        IpAddr::from([0, 0, 0, 0])
    }
}

pub struct Listener {
    inner: ListenerInner,
    me: String,
    world: Option<Arc<WorldState>>,
}

enum ListenerInner {
    Tokio(tokio::net::TcpListener, Arc<Directory>),
    #[cfg(not(madsim))]
    Turmoil(turmoil::net::TcpListener),
}

impl Listener {
    /// Accepts one connection and names the peer node (or its address when it is not a node).
    pub async fn accept(&self) -> io::Result<(Conn, String)> {
        let (raw, peer) = match &self.inner {
            ListenerInner::Tokio(l, dir) => {
                let (s, addr) = l.accept().await?;
                no_delay(&s)?;
                let peer = dir.name_of(addr.ip()).map(str::to_string);
                (RawConn::Tokio(s), peer.unwrap_or_else(|| addr.to_string()))
            }
            #[cfg(not(madsim))]
            ListenerInner::Turmoil(l) => {
                let (s, addr) = l.accept().await?;
                let peer = turmoil::reverse_lookup(addr.ip()).unwrap_or_else(|| addr.to_string());
                (RawConn::Turmoil(s), peer)
            }
        };
        let conn = Conn::new(raw, self.world.clone(), &self.me, &peer);
        Ok((conn, peer))
    }
}

enum RawConn {
    Tokio(tokio::net::TcpStream),
    #[cfg(not(madsim))]
    Turmoil(turmoil::net::TcpStream),
}

macro_rules! delegate {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            RawConn::Tokio($s) => $e,
            #[cfg(not(madsim))]
            RawConn::Turmoil($s) => $e,
        }
    };
}

impl AsyncRead for RawConn {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for RawConn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        delegate!(self, s => Pin::new(s).poll_write(cx, buf))
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => Pin::new(s).poll_flush(cx))
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => Pin::new(s).poll_shutdown(cx))
    }
}

/// A connection: `AsyncRead + AsyncWrite`, the same type on every engine.
///
/// Writes go straight to the engine's stream. In simulations, reads pass through a shaper that
/// holds each arriving chunk for the link's extra delay (latency, jitter, loss as retransmission
/// time) before handing it over, keeping the stream's order: the same effect as delaying the
/// sender's segments, without a task per connection.
pub struct Conn {
    raw: RawConn,
    shaper: Option<Shaper>,
}

// SAFETY: `Conn` offers no `&self` access to anything it holds: every method takes `&mut self`
// or `Pin<&mut Self>`, so a shared reference to a `Conn` can never reach its insides, and
// sharing one between threads is harmless (the reasoning of std's `Exclusive`). It is needed
// because madsim's simulated `TcpStream` is `Send` but not `Sync`, while tokio's is both: without
// it, code holding a `Conn` across an `.await` behind `&self` compiles in one build only.
unsafe impl Sync for Conn {}

struct Shaper {
    world: Arc<WorldState>,
    /// The link is peer → me: that is the direction a read receives.
    peer: String,
    me: String,
    /// Arrived chunks with the time each may be read.
    held: VecDeque<(Instant, Vec<u8>)>,
    timer: Option<Pin<Box<crate::timer::Sleep>>>,
    eof: bool,
    /// Allocated on the first read that goes through the shaper.
    scratch: Vec<u8>,
}

impl Conn {
    fn new(raw: RawConn, world: Option<Arc<WorldState>>, me: &str, peer: &str) -> Self {
        let shaper = world.map(|world| Shaper {
            world,
            peer: peer.to_string(),
            me: me.to_string(),
            held: VecDeque::new(),
            timer: None,
            eof: false,
            scratch: Vec::new(),
        });
        Conn { raw, shaper }
    }
}

impl Shaper {
    /// Takes everything the stream has now, stamping each chunk with its release time.
    fn drain(&mut self, raw: &mut RawConn, cx: &mut Context<'_>) -> io::Result<()> {
        if self.scratch.is_empty() {
            self.scratch = vec![0u8; 16 * 1024];
        }
        while !self.eof {
            // Read into the one scratch buffer and keep only what came: a fresh zeroed 16 KiB
            // per read, held at full capacity while the chunk waits, cost more than the copy.
            let mut rb = ReadBuf::new(&mut self.scratch);
            match Pin::new(&mut *raw).poll_read(cx, &mut rb) {
                Poll::Pending => return Ok(()),
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Ready(Ok(())) if rb.filled().is_empty() => self.eof = true,
                Poll::Ready(Ok(())) => {
                    let chunk = rb.filled().to_vec();
                    let arrived = Instant::now() + self.world.link_delay(&self.peer, &self.me);
                    let due = self.held.back().map_or(arrived, |(last, _)| arrived.max(*last));
                    self.held.push_back((due, chunk));
                }
            }
        }
        Ok(())
    }

    fn poll_read(&mut self, raw: &mut RawConn, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if self.held.is_empty() && !self.eof && self.world.link_is_clear(&self.peer, &self.me) {
            return Pin::new(raw).poll_read(cx, buf);
        }
        if let Err(e) = self.drain(raw, cx) {
            if self.held.is_empty() {
                return Poll::Ready(Err(e));
            }
            // Deliver what arrived before the error; the error shows on a later read.
            self.eof = true;
        }
        let Some((due, _)) = self.held.front() else {
            return if self.eof { Poll::Ready(Ok(())) } else { Poll::Pending };
        };
        if *due > Instant::now() {
            let due = *due;
            let timer = self.timer.get_or_insert_with(|| Box::pin(crate::timer::sleep_until(due)));
            if timer.deadline() != due {
                timer.as_mut().reset(due);
            }
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
        self.timer = None;
        let (due, mut chunk) = self.held.pop_front().expect("front exists");
        let n = chunk.len().min(buf.remaining());
        buf.put_slice(&chunk[..n]);
        if n < chunk.len() {
            self.held.push_front((due, chunk.split_off(n)));
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for Conn {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match &mut this.shaper {
            None => Pin::new(&mut this.raw).poll_read(cx, buf),
            Some(shaper) => shaper.poll_read(&mut this.raw, cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().raw).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().raw).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().raw).poll_shutdown(cx)
    }
}
