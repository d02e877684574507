//! The health endpoint every service node serves, and the flag its service raises when ready.
//!
//! A balancer's checks ask `GET /health` on [`HEALTH_PORT`]: 200 while the flag is up, 503 while
//! it is down (starting, or its dependencies unreachable). A node that is dead or partitioned
//! answers nothing, which the checker counts as a failure too.
//!
//! A connection serves requests until one does not ask for keep-alive, or none comes within
//! [`KEEP_ALIVE_IDLE_MS`]: the balancers keep theirs open between probes
//! ([`super::persistent`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use sim::net::Net;

use super::{read_request, write_response, Response};

/// The port of every service node's health endpoint.
pub const HEALTH_PORT: u16 = 8081;
/// How long one health exchange may take on the serving side before the connection is dropped.
const SERVE_TIMEOUT_MS: u64 = 2_000;
/// How long a kept connection may wait for its next request (many probe intervals).
pub const KEEP_ALIVE_IDLE_MS: u64 = 10_000;

/// Whether the service is ready; clones share it.
#[derive(Clone, Debug, Default)]
pub struct HealthFlag(Arc<AtomicBool>);

impl HealthFlag {
    pub fn new() -> Self {
        HealthFlag::default()
    }

    pub fn set(&self, up: bool) {
        self.0.store(up, Ordering::Relaxed);
    }

    pub fn is_up(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Serves `GET /health` on [`HEALTH_PORT`] until the node dies. Binding fails only if the port
/// is taken, which is a bug in the node's wiring.
pub async fn serve(net: Net, flag: HealthFlag) -> std::io::Result<()> {
    let listener = net.bind(HEALTH_PORT).await?;
    loop {
        let (mut conn, _peer) = listener.accept().await?;
        let flag = flag.clone();
        tokio::spawn(async move {
            let mut wait = SERVE_TIMEOUT_MS;
            loop {
                let exchange = async {
                    let (response, keep) = match read_request(&mut conn).await {
                        Ok(req) if req.method == "GET" && req.path == "/health" => {
                            let response =
                                if flag.is_up() { Response::new(200, "ok") } else { Response::new(503, "not ready") };
                            (response, req.wants_keep_alive())
                        }
                        Ok(req) => (Response::new(404, "not found"), req.wants_keep_alive()),
                        Err(_) => (Response::new(400, "bad request"), false),
                    };
                    let response = if keep { response.keep_alive() } else { response };
                    write_response(&mut conn, &response).await.is_ok() && keep
                };
                // The wait covers the next request's arrival as well as its exchange.
                match sim::timer::timeout(std::time::Duration::from_millis(wait), exchange).await {
                    Ok(true) => wait = KEEP_ALIVE_IDLE_MS,
                    _ => break,
                }
            }
        });
    }
}
