//! The net seam: connect to and listen on `(node name, port)`, with byte streams.
//!
//! One tokio implementation serves the real build (real TCP) and madsim (`--cfg madsim` swaps
//! tokio's `net` for madsim's simulated TCP); a turmoil implementation serves plain `cargo test`.
//! Partitions and node kills are the engines' own (madsim clogs, turmoil partitions), so streams
//! stall or reset exactly as each engine's TCP does. Per-link latency, jitter and loss are ours
//! ([`crate::link`]): a simulated connection's writes go through a pump that holds each write for
//! the link's delay, keeping the stream's order as TCP does.

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf, ReadHalf, WriteHalf};
use tokio::sync::mpsc;

use crate::world::WorldState;

/// Where each node name lives: its IP and, for the real build where every node shares
/// 127.0.0.1, a port offset added to every port it listens on.
#[derive(Clone, Debug, Default)]
pub struct Directory {
    hosts: BTreeMap<String, (IpAddr, u16)>,
}

impl Directory {
    pub fn insert(&mut self, name: &str, ip: IpAddr, port_offset: u16) {
        self.hosts.insert(name.to_string(), (ip, port_offset));
    }

    fn addr(&self, name: &str, port: u16) -> io::Result<SocketAddr> {
        let (ip, offset) = self.hosts.get(name).ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, format!("unknown node {name}"))
        })?;
        Ok(SocketAddr::new(*ip, port + offset))
    }

    fn name_of(&self, ip: IpAddr) -> Option<&str> {
        self.hosts.iter().find(|(_, (i, _))| *i == ip).map(|(n, _)| n.as_str())
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
            Backend::Turmoil => {
                ListenerInner::Turmoil(turmoil::net::TcpListener::bind(("0.0.0.0", port)).await?)
            }
        };
        Ok(Listener { inner, me: self.me.clone(), world: self.world.clone() })
    }
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
pub struct Conn {
    read: ReadHalf<RawConn>,
    write: Writer,
}

enum Writer {
    Direct(WriteHalf<RawConn>),
    /// Writes queue to a pump task that delays them by the link's shape (simulations only).
    Shaped(Option<mpsc::UnboundedSender<(tokio::time::Instant, Vec<u8>)>>),
}

impl Conn {
    fn new(raw: RawConn, world: Option<Arc<WorldState>>, from: &str, to: &str) -> Self {
        let (read, write) = tokio::io::split(raw);
        let write = match world {
            None => Writer::Direct(write),
            Some(world) => {
                let (tx, rx) = mpsc::unbounded_channel();
                tokio::spawn(pump(write, rx, world, from.to_string(), to.to_string()));
                Writer::Shaped(Some(tx))
            }
        };
        Conn { read, write }
    }
}

/// Delivers queued writes in order, each no earlier than its send time plus the link's delay.
async fn pump(
    mut w: WriteHalf<RawConn>,
    mut rx: mpsc::UnboundedReceiver<(tokio::time::Instant, Vec<u8>)>,
    world: Arc<WorldState>,
    from: String,
    to: String,
) {
    let mut last_due = tokio::time::Instant::now();
    while let Some((sent, bytes)) = rx.recv().await {
        let due = (sent + world.link_delay(&from, &to)).max(last_due);
        last_due = due;
        tokio::time::sleep_until(due).await;
        if w.write_all(&bytes).await.is_err() || w.flush().await.is_err() {
            return;
        }
    }
    let _ = w.shutdown().await;
}

impl AsyncRead for Conn {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().read).poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().write {
            Writer::Direct(w) => Pin::new(w).poll_write(cx, buf),
            Writer::Shaped(Some(tx)) => match tx.send((tokio::time::Instant::now(), buf.to_vec())) {
                Ok(()) => Poll::Ready(Ok(buf.len())),
                Err(_) => Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
            },
            Writer::Shaped(None) => Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().write {
            Writer::Direct(w) => Pin::new(w).poll_flush(cx),
            Writer::Shaped(_) => Poll::Ready(Ok(())),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().write {
            Writer::Direct(w) => Pin::new(w).poll_shutdown(cx),
            Writer::Shaped(tx) => {
                tx.take();
                Poll::Ready(Ok(()))
            }
        }
    }
}
