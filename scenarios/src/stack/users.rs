//! What every simulated user does over the front door: sign-up, login, grants, and opening a
//! collaboration WebSocket (`tokio-tungstenite`'s `client_async` over a stream from the net
//! seam, never its own sockets). Failures are values: users retry with backoff, as people do.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sim::net::{Conn, Net};
use system::http::{self, Request};
use tokio_tungstenite::WebSocketStream;

/// Every HTTP or WebSocket service, the balancers' front door included.
pub const HTTP_PORT: u16 = 8080;
/// How long one HTTP call through a balancer may take.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Token {
    pub token: String,
    pub expires_at_ms: u64,
}

#[derive(Serialize)]
struct Credentials<'a> {
    tenant: &'a str,
    user: &'a str,
    password: &'a str,
}

#[derive(Serialize)]
struct Grant<'a> {
    user: &'a str,
    doc: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    perm: Option<&'a str>,
}

/// The status of a call, or why there is none.
pub type Status = Result<u16, String>;

async fn status(net: &Net, lb: &str, req: &Request) -> Status {
    http::call(net, lb, HTTP_PORT, req, CALL_TIMEOUT).await.map(|r| r.status).map_err(|e| e.to_string())
}

/// `POST /auth/signup`: 201 made, 409 already there.
pub async fn signup(net: &Net, lb: &str, tenant: &str, user: &str, password: &str) -> Status {
    status(net, lb, &Request::post_json("/auth/signup", &Credentials { tenant, user, password })).await
}

/// `POST /auth/login`.
pub async fn login(net: &Net, lb: &str, tenant: &str, user: &str, password: &str) -> Result<Token, String> {
    let req = Request::post_json("/auth/login", &Credentials { tenant, user, password });
    let resp = http::call(net, lb, HTTP_PORT, &req, CALL_TIMEOUT).await.map_err(|e| e.to_string())?;
    if resp.status != 200 {
        return Err(format!("login answered {}", resp.status));
    }
    resp.json_body::<Token>().map_err(|e| e.to_string())
}

/// `POST /auth/grant` (perm `read` or `write`) or, with `perm` None, `POST /auth/revoke`.
pub async fn grant(net: &Net, lb: &str, admin: &str, user: &str, doc: &str, perm: Option<&str>) -> Status {
    let path = if perm.is_some() { "/auth/grant" } else { "/auth/revoke" };
    let req = Request::post_json(path, &Grant { user, doc, perm }).header("authorization", &format!("Bearer {admin}"));
    status(net, lb, &req).await
}

/// `GET /docs/<doc>/state`: the whole document as a v1 update.
pub async fn load_state(net: &Net, lb: &str, doc: &str) -> Result<Vec<u8>, String> {
    let resp = http::call(net, lb, HTTP_PORT, &Request::get(&format!("/docs/{doc}/state")), CALL_TIMEOUT)
        .await
        .map_err(|e| e.to_string())?;
    if resp.status != 200 {
        return Err(format!("state answered {}", resp.status));
    }
    Ok(resp.body)
}

pub type Ws = WebSocketStream<Conn>;

#[derive(Debug)]
pub enum OpenError {
    /// The upgrade was answered with this status (401, 403, 503...).
    Refused(u16),
    Failed(String),
}

/// Opens `/collab/<doc>?token=..[&ack=1]` through balancer `lb`.
pub async fn open(
    net: &Net,
    lb: &str,
    doc: &str,
    token: Option<&str>,
    ack: bool,
    timeout: Duration,
) -> Result<Ws, OpenError> {
    let mut url = format!("ws://{lb}:{HTTP_PORT}/collab/{doc}");
    let mut sep = '?';
    if let Some(t) = token {
        url.push_str(&format!("{sep}token={t}"));
        sep = '&';
    }
    if ack {
        url.push_str(&format!("{sep}ack=1"));
    }
    let attempt = async {
        let conn = net.connect(lb, HTTP_PORT).await.map_err(|e| OpenError::Failed(e.to_string()))?;
        match tokio_tungstenite::client_async_with_config(url, conn, Some(system::collab::protocol::ws_config())).await
        {
            Ok((ws, _)) => Ok(ws),
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(OpenError::Refused(resp.status().as_u16())),
            Err(e) => Err(OpenError::Failed(e.to_string())),
        }
    };
    sim::timer::timeout(timeout, attempt).await.unwrap_or_else(|_| Err(OpenError::Failed("timed out".into())))
}

/// Sleeps until simulated time `at_ms` (no-op if past).
pub async fn sleep_until_ms(clock: &sim::clock::Clock, at_ms: u64) {
    let now = clock.now_ms();
    if at_ms > now {
        sim::timer::sleep(Duration::from_millis(at_ms - now)).await;
    }
}

/// The one way every scenario's clients record what a user saw.
pub use crate::availability::{op_since, record_op};
