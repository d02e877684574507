//! Minimal HTTP/1.1 over the net seam's streams: what the front door, the auth and document
//! services and their health checks need, and no more.
//!
//! One request per connection (`Connection: close`): the services here answer small JSON or
//! binary bodies, and a connection per request keeps every failure visible to the caller as a
//! connect error or a timeout instead of a half-used pooled stream. The one exception is the
//! balancers' health checks, which keep their connection open between probes ([`persistent`],
//! [`health`]) as Envoy's do by default: a probe every half second per balancer and instance,
//! each on a new connection, was more connections than all the stack's other traffic. Heads are parsed by
//! `httparse`; everything that arrives is untrusted, so the head and the body have size limits
//! and a malformed request is an error, never a panic. Chunked bodies are left out: no client of
//! the stack sends them, and a request with `Transfer-Encoding` is refused.
//!
//! The head is kept as received ([`Request::head_bytes`]) so a balancer can forward a request,
//! a WebSocket upgrade included, byte for byte after choosing where it goes.

pub mod health;
pub mod persistent;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use sim::net::Net;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The port of every HTTP or WebSocket service: the balancers' front door, the auth and
/// document services' APIs, the collaboration service's WebSocket endpoint.
pub const HTTP_PORT: u16 = 8080;

/// The longest request or response head accepted (a cookie-less API needs far less).
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// The largest body accepted (a document's whole state travels in one).
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
/// Most header lines accepted.
pub const MAX_HEADERS: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("connection closed before a complete head")]
    Closed,
    #[error("malformed: {0}")]
    Malformed(String),
    #[error("too large: {0}")]
    TooLarge(&'static str),
    #[error("timed out")]
    Timeout,
}

/// A parsed request. Header names are lower-cased; `path` is without the query, which is
/// split into `query` (percent-decoded).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub query: BTreeMap<String, String>,
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
    /// The head exactly as received (empty for a request built here until it is sent).
    head: Vec<u8>,
}

impl Request {
    pub fn new(method: &str, target: &str) -> Self {
        let (path, query) = split_target(target);
        Request { method: method.into(), path, query, ..Default::default() }
    }

    pub fn get(target: &str) -> Self {
        Request::new("GET", target)
    }

    /// A POST with a JSON body.
    pub fn post_json<T: Serialize>(target: &str, body: &T) -> Self {
        let mut r = Request::new("POST", target);
        r.body = serde_json::to_vec(body).expect("serializing plain data cannot fail");
        r.headers.insert("content-type".into(), "application/json".into());
        r
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.insert(name.to_ascii_lowercase(), value.into());
        self
    }

    /// The head as received from the network, for forwarding unchanged.
    pub fn head_bytes(&self) -> &[u8] {
        &self.head
    }

    /// `Authorization: Bearer <token>`, if present.
    pub fn bearer(&self) -> Option<&str> {
        self.headers.get("authorization")?.strip_prefix("Bearer ")
    }

    /// Asks the server to keep the connection open after answering (HTTP/1.1 keep-alive).
    pub fn keep_alive(self) -> Self {
        self.header("connection", KEEP_ALIVE)
    }

    /// Whether the sender asked to keep the connection open.
    pub fn wants_keep_alive(&self) -> bool {
        keeps_alive(&self.headers)
    }

    /// Whether this asks for a WebSocket upgrade.
    pub fn is_upgrade(&self) -> bool {
        self.headers.get("upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
    }

    /// The body parsed as JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, HttpError> {
        serde_json::from_slice(&self.body).map_err(|e| HttpError::Malformed(format!("json body: {e}")))
    }

    fn encode(&self) -> Vec<u8> {
        let mut target = self.path.clone();
        if !self.query.is_empty() {
            let q: Vec<String> =
                self.query.iter().map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v))).collect();
            target.push('?');
            target.push_str(&q.join("&"));
        }
        encode_message(format!("{} {} HTTP/1.1", self.method, target), &self.headers, &self.body)
    }
}

/// A response. Header names are lower-cased.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Response { status, headers: BTreeMap::new(), body: body.into() }
    }

    /// A JSON body.
    pub fn json<T: Serialize>(status: u16, body: &T) -> Self {
        let mut r = Response::new(status, serde_json::to_vec(body).expect("serializing plain data cannot fail"));
        r.headers.insert("content-type".into(), "application/json".into());
        r
    }

    /// `{"error": message}` with the status.
    pub fn error(status: u16, message: &str) -> Self {
        Response::json(status, &serde_json::json!({ "error": message }))
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.insert(name.to_ascii_lowercase(), value.into());
        self
    }

    /// Keeps the connection open for the next request (answering one that asked for it).
    pub fn keep_alive(self) -> Self {
        self.header("connection", KEEP_ALIVE)
    }

    /// Whether the server will read another request on this connection.
    pub fn keeps_alive(&self) -> bool {
        keeps_alive(&self.headers)
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    pub fn json_body<T: serde::de::DeserializeOwned>(&self) -> Result<T, HttpError> {
        serde_json::from_slice(&self.body).map_err(|e| HttpError::Malformed(format!("json body: {e}")))
    }

    fn encode(&self) -> Vec<u8> {
        encode_message(format!("HTTP/1.1 {} {}", self.status, reason(self.status)), &self.headers, &self.body)
    }
}

const KEEP_ALIVE: &str = "keep-alive";

fn keeps_alive(headers: &BTreeMap<String, String>) -> bool {
    headers.get("connection").is_some_and(|v| v.eq_ignore_ascii_case(KEEP_ALIVE))
}

/// A request or response on the wire: the start line, the headers (our own framing headers
/// replace any the caller set: `connection` is `close` unless the message asked to keep the
/// connection), the body.
fn encode_message(start_line: String, headers: &BTreeMap<String, String>, body: &[u8]) -> Vec<u8> {
    let mut out = start_line + "\r\n";
    for (k, v) in headers {
        if k != "content-length" && k != "connection" {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    let connection = if keeps_alive(headers) { KEEP_ALIVE } else { "close" };
    out.push_str(&format!("content-length: {}\r\nconnection: {connection}\r\n\r\n", body.len()));
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// Reads one request: the head, then a `Content-Length` body.
pub async fn read_request<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Request, HttpError> {
    let (head, rest) = read_head(stream).await?;
    let mut req = parse_request_head(head)?;
    req.body = read_body(stream, &req.headers, rest).await?;
    Ok(req)
}

/// A whole request already in memory (sans-IO, what [`read_request`] does over a stream that
/// yields `bytes` and then ends): a truncated one is [`HttpError::Closed`].
pub fn parse_request(bytes: &[u8]) -> Result<Request, HttpError> {
    let end = head_end(bytes)?.ok_or(HttpError::Closed)?;
    let mut req = parse_request_head(bytes[..end].to_vec())?;
    req.body = whole_body(&req.headers, &bytes[end..])?;
    Ok(req)
}

/// Parses a request head (the bytes up to and including its blank line); the body is the
/// caller's to read, [`body_len`] bytes of it.
pub fn parse_request_head(head: Vec<u8>) -> Result<Request, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    match parsed.parse(&head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(HttpError::Malformed("incomplete head".into())),
        Err(e) => return Err(HttpError::Malformed(e.to_string())),
    }
    let (path, query) = split_target(parsed.path.unwrap_or("/"));
    let method = parsed.method.unwrap_or("GET").to_string();
    let headers = header_map(parsed.headers)?;
    Ok(Request { method, path, query, headers, body: Vec::new(), head })
}

/// Writes a response and flushes (simulated streams send only on flush).
pub async fn write_response<S: AsyncWrite + Unpin>(stream: &mut S, response: &Response) -> Result<(), HttpError> {
    stream.write_all(&response.encode()).await?;
    stream.flush().await?;
    Ok(())
}

/// Sends `request` to `node:port` on a new connection and reads the response, all within
/// `timeout`.
pub async fn call(
    net: &Net,
    node: &str,
    port: u16,
    request: &Request,
    timeout: Duration,
) -> Result<Response, HttpError> {
    let exchange = async {
        let mut conn = net.connect(node, port).await?;
        conn.write_all(&request.encode()).await?;
        conn.flush().await?;
        read_response(&mut conn).await
    };
    sim::timer::timeout(timeout, exchange).await.map_err(|_| HttpError::Timeout)?
}

/// Reads one response: the head, then a `Content-Length` body.
pub async fn read_response<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Response, HttpError> {
    let (head, rest) = read_head(stream).await?;
    let mut response = parse_response_head(&head)?;
    response.body = read_body(stream, &response.headers, rest).await?;
    Ok(response)
}

/// A whole response already in memory (sans-IO, as [`parse_request`]).
pub fn parse_response(bytes: &[u8]) -> Result<Response, HttpError> {
    let end = head_end(bytes)?.ok_or(HttpError::Closed)?;
    let mut response = parse_response_head(&bytes[..end])?;
    response.body = whole_body(&response.headers, &bytes[end..])?;
    Ok(response)
}

/// Parses a response head: the status and headers (the body empty, [`body_len`] bytes to read).
pub fn parse_response_head(head: &[u8]) -> Result<Response, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut headers);
    match parsed.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(HttpError::Malformed("incomplete head".into())),
        Err(e) => return Err(HttpError::Malformed(e.to_string())),
    }
    let status = parsed.code.ok_or_else(|| HttpError::Malformed("no status".into()))?;
    let headers = header_map(parsed.headers)?;
    Ok(Response { status, headers, body: Vec::new() })
}

/// Reads up to the blank line ending a head; returns the head and any bytes read past it.
async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> Result<(Vec<u8>, Vec<u8>), HttpError> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = head_end(&buf)? {
            let rest = buf.split_off(end);
            return Ok((buf, rest));
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(HttpError::Closed);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Where the head at the start of `buf` ends (just past its blank line): `None` while more
/// bytes are needed, an error once the head is over [`MAX_HEAD_BYTES`].
pub fn head_end(buf: &[u8]) -> Result<Option<usize>, HttpError> {
    match find_head_end(buf) {
        Some(end) if end > MAX_HEAD_BYTES => Err(HttpError::TooLarge("head")),
        Some(end) => Ok(Some(end)),
        None if buf.len() > MAX_HEAD_BYTES => Err(HttpError::TooLarge("head")),
        None => Ok(None),
    }
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

async fn read_body<S: AsyncRead + Unpin>(
    stream: &mut S,
    headers: &BTreeMap<String, String>,
    mut body: Vec<u8>,
) -> Result<Vec<u8>, HttpError> {
    let len = body_len(headers, body.len())?;
    // The buffer grows with the bytes that arrive rather than to the declared length at once:
    // a head claiming the largest body and sending none must not cost that much memory.
    let missing = (len - body.len()) as u64;
    stream.take(missing).read_to_end(&mut body).await.map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => HttpError::Closed,
        _ => HttpError::Io(e),
    })?;
    if body.len() < len {
        return Err(HttpError::Closed);
    }
    Ok(body)
}

/// The body when all of it is in `rest` (the bytes after the head).
fn whole_body(headers: &BTreeMap<String, String>, rest: &[u8]) -> Result<Vec<u8>, HttpError> {
    let len = body_len(headers, rest.len())?;
    if rest.len() < len {
        return Err(HttpError::Closed);
    }
    Ok(rest.to_vec())
}

/// The length of the body the headers declare, `buffered` bytes of which were read with the
/// head. Refused: chunked bodies, a malformed or too large length, bytes past the body.
pub fn body_len(headers: &BTreeMap<String, String>, buffered: usize) -> Result<usize, HttpError> {
    if headers.contains_key("transfer-encoding") {
        return Err(HttpError::Malformed("transfer-encoding is not supported".into()));
    }
    let len = match headers.get("content-length") {
        None => 0,
        Some(v) => v.trim().parse::<usize>().map_err(|_| HttpError::Malformed("content-length".into()))?,
    };
    if len > MAX_BODY_BYTES {
        return Err(HttpError::TooLarge("body"));
    }
    if buffered > len {
        // Bytes past the declared body: a pipelined request, which one-request connections
        // do not take.
        return Err(HttpError::Malformed("bytes past the body".into()));
    }
    Ok(len)
}

fn header_map(headers: &[httparse::Header<'_>]) -> Result<BTreeMap<String, String>, HttpError> {
    let mut map = BTreeMap::new();
    for h in headers {
        let value = std::str::from_utf8(h.value)
            .map_err(|_| HttpError::Malformed(format!("header {} is not utf-8", h.name)))?;
        map.insert(h.name.to_ascii_lowercase(), value.trim().to_string());
    }
    Ok(map)
}

/// Splits `/a/b?x=1&y=2` into the path and the decoded query.
fn split_target(target: &str) -> (String, BTreeMap<String, String>) {
    let (path, q) = target.split_once('?').unwrap_or((target, ""));
    let query = q
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect();
    (path.to_string(), query)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            // Two hex digits exactly: `u8::from_str_radix` alone would also take a sign ("%+1").
            b'%' if i + 2 < bytes.len() && bytes[i + 1].is_ascii_hexdigit() && bytes[i + 2].is_ascii_hexdigit() => {
                out.push(hex_value(bytes[i + 1]) << 4 | hex_value(bytes[i + 2]));
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_value(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        _ => digit - b'A' + 10,
    }
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn reason(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

// Plain tokio drives these; under madsim a runtime exists only inside the simulator.
#[cfg(all(test, not(madsim)))]
mod tests;
