//! Whether a node is healthy, asked from outside as an operator would: a service's
//! `GET /health` answers 200 (its flag is up once its dependencies answered), a store member
//! accepts connections on its port.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::layout::{Layout, NodeSpot, Probe};

/// How long one probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Probes `node` once.
pub async fn healthy(layout: &Layout, node: &NodeSpot) -> bool {
    let check = async {
        match node.probe {
            Probe::Health => match layout.addr(&node.name, system::http::health::HEALTH_PORT) {
                Some(addr) => health_ok(addr).await,
                None => false,
            },
            Probe::Listen(port) => match layout.addr(&node.name, port) {
                Some(addr) => TcpStream::connect(addr).await.is_ok(),
                None => false,
            },
        }
    };
    sim::timer::timeout(PROBE_TIMEOUT, check).await.unwrap_or(false)
}

/// `GET /health` answered with status 200.
async fn health_ok(addr: SocketAddr) -> bool {
    let Ok(mut conn) = TcpStream::connect(addr).await else { return false };
    let request = format!("GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if conn.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    if conn.read_exact(&mut head).await.is_err() {
        return false;
    }
    head.starts_with(b"HTTP/1.1 200") || head.starts_with(b"HTTP/1.0 200")
}
