//! `stack-edit`: our Rust y-sync client — the simulated editor's sans-IO core
//! ([`scenarios::stack::editor_core::EditorCore`]) in a real WebSocket shell — editing one
//! document of a running `stack up`, driven line by line on stdin so that a test (the Node
//! interop test in `interop/`) can make it type alongside stock Yjs clients.
//!
//! ```text
//! stack-edit --ws ws://127.0.0.1:P --tenant acme --doc notes --token JWT [--seed S] [--gap-ms G]
//! ```
//! Commands on stdin, one a line: `type N` (N random edits, one every G ms, as a person types:
//! each its own update frame), `state` (print the document's text and state vector), `quit`.
//! Output on stdout, one JSON object a line, each with an `event`: `connected`, `synced`,
//! `disconnected`, `typed` (a `type` command finished), `state`, `error`.
//!
//! It reconnects by itself (every 250 ms) when its connection ends, as y-websocket does; edits
//! typed while disconnected stay in its document and reach the server through the next
//! connection's sync step 1/2 exchange. It asks for acknowledgements (`ack=1`) and reports how
//! many of its own insertions are not acknowledged yet.
//! Exit codes: 0 after `quit` or the end of stdin, 1 on a protocol error, 2 on a usage error.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use rand::{Rng, SeedableRng};
use scenarios::stack::editor_core::EditorCore;
use scenarios::stack::ydoc::MAX_CLIENT_ID;
use serde_json::json;
use tokio::io::AsyncBufReadExt;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

#[derive(Parser)]
#[command(name = "stack-edit", about = "Our Rust y-sync client editing a document of a running `stack up`")]
struct Cli {
    /// A balancer's WebSocket URL (`ws=` in `stack up`'s output, or endpoints.json).
    #[arg(long)]
    ws: String,
    #[arg(long)]
    tenant: String,
    #[arg(long)]
    doc: String,
    /// A login token (`POST /auth/login`).
    #[arg(long)]
    token: String,
    /// Seeds the client id and the edits.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// The pause between two edits of one `type` command.
    #[arg(long, default_value_t = 10)]
    gap_ms: u64,
}

type Ws = WebSocketStream<TcpStream>;

/// What a line on stdin asked for.
enum Command {
    Type(u32),
    State,
    Quit,
}

fn parse(line: &str) -> Result<Command, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        ["type", n] => n.parse().map(Command::Type).map_err(|_| format!("bad count {n:?}")),
        ["state"] => Ok(Command::State),
        ["quit"] => Ok(Command::Quit),
        _ => Err(format!("unknown command {line:?}: type N | state | quit")),
    }
}

fn emit(value: serde_json::Value) {
    println!("{value}");
}

/// The editor and its pending typing.
struct Client {
    core: EditorCore,
    rng: rand::rngs::StdRng,
    to_type: u32,
}

impl Client {
    /// One random edit: usually an insertion of a short word, sometimes a deletion.
    fn random_edit(&mut self) -> Option<Vec<u8>> {
        let len = self.core.text_len();
        let pos = self.rng.gen_range(0..=len);
        if len > 0 && pos < len && self.rng.gen_bool(0.25) {
            let del = self.rng.gen_range(1..=3).min(len - pos);
            return self.core.type_patch(pos, del, "");
        }
        let word: String = (0..self.rng.gen_range(1..=4)).map(|_| self.rng.gen_range(b'a'..=b'z') as char).collect();
        self.core.type_patch(pos, 0, &word)
    }

    fn state(&self) -> serde_json::Value {
        let unacked: u32 = self.core.unacked_own().iter().map(|r| r.end - r.start).sum();
        json!({
            "event": "state",
            "client_id": self.core.client_id(),
            "text": self.core.text(),
            "sv": self.core.sv(),
            "connected": self.core.is_connected(),
            "synced": self.core.is_synced(),
            "unacked": unacked,
        })
    }

    /// Handles one command; false on `quit`.
    fn command(&mut self, line: &str) -> bool {
        match parse(line) {
            Ok(Command::Type(n)) => {
                self.to_type += n;
                if self.to_type == 0 {
                    emit(json!({ "event": "typed" }));
                }
            }
            Ok(Command::State) => emit(self.state()),
            Ok(Command::Quit) => return false,
            Err(message) => emit(json!({ "event": "error", "message": message })),
        }
        true
    }
}

async fn connect(url: &str, host: &str) -> anyhow::Result<Ws> {
    let conn = TcpStream::connect(host).await?;
    let (ws, _) =
        tokio_tungstenite::client_async_with_config(url, conn, Some(system::collab::protocol::ws_config())).await?;
    Ok(ws)
}

/// How a connection ended.
enum Ended {
    Lost(String),
    Quit,
}

/// Serves one connection until it ends or `quit`.
async fn session(
    ws: Ws,
    client: &mut Client,
    stdin: &mut tokio::io::Lines<tokio::io::BufReader<tokio::io::Stdin>>,
    gap: Duration,
) -> anyhow::Result<Ended> {
    let (mut sink, mut stream) = ws.split();
    for frame in client.core.connected() {
        sink.send(Message::binary(frame)).await?;
    }
    emit(json!({ "event": "connected" }));
    let mut tick = sim::timer::interval(gap);
    loop {
        tokio::select! {
            msg = stream.next() => match msg {
                Some(Ok(Message::Binary(bytes))) => {
                    let was_synced = client.core.is_synced();
                    for frame in client.core.receive(&bytes)? {
                        sink.send(Message::binary(frame)).await?;
                    }
                    if !was_synced && client.core.is_synced() {
                        emit(json!({ "event": "synced" }));
                    }
                }
                Some(Ok(Message::Close(frame))) => return Ok(Ended::Lost(format!("closed: {frame:?}"))),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Ok(Ended::Lost(e.to_string())),
                None => return Ok(Ended::Lost("the connection ended".into())),
            },
            line = stdin.next_line() => match line? {
                Some(line) => if !client.command(&line) { return Ok(Ended::Quit) },
                None => return Ok(Ended::Quit),
            },
            _ = tick.tick(), if client.to_type > 0 => {
                let frame = client.random_edit();
                client.to_type -= 1;
                if client.to_type == 0 {
                    emit(json!({ "event": "typed" }));
                }
                if let Some(frame) = frame {
                    if let Err(e) = sink.send(Message::binary(frame)).await {
                        return Ok(Ended::Lost(e.to_string()));
                    }
                }
            }
        }
    }
}

/// Waits `pause` before the next connection attempt, typing and answering commands meanwhile;
/// false on `quit`.
async fn offline(
    client: &mut Client,
    stdin: &mut tokio::io::Lines<tokio::io::BufReader<tokio::io::Stdin>>,
    pause: Duration,
    gap: Duration,
) -> anyhow::Result<bool> {
    let until = sim::timer::sleep(pause);
    tokio::pin!(until);
    let mut tick = sim::timer::interval(gap);
    loop {
        tokio::select! {
            _ = &mut until => return Ok(true),
            line = stdin.next_line() => match line? {
                Some(line) => if !client.command(&line) { return Ok(false) },
                None => return Ok(false),
            },
            _ = tick.tick(), if client.to_type > 0 => {
                client.random_edit();
                client.to_type -= 1;
                if client.to_type == 0 {
                    emit(json!({ "event": "typed" }));
                }
            }
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let host = cli
        .ws
        .strip_prefix("ws://")
        .ok_or_else(|| anyhow::anyhow!("--ws must be a ws:// URL"))?
        .trim_end_matches('/')
        .to_string();
    let url = format!("ws://{host}/collab/{}/{}?token={}&ack=1", cli.tenant, cli.doc, cli.token);
    let mut rng = rand::rngs::StdRng::seed_from_u64(cli.seed);
    let client_id = rng.gen_range(1..=MAX_CLIENT_ID);
    let mut client = Client { core: EditorCore::new(client_id), rng, to_type: 0 };
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let gap = Duration::from_millis(cli.gap_ms.max(1));
    loop {
        match connect(&url, &host).await {
            Ok(ws) => match session(ws, &mut client, &mut stdin, gap).await? {
                Ended::Quit => return Ok(()),
                Ended::Lost(reason) => emit(json!({ "event": "disconnected", "reason": reason })),
            },
            Err(e) => emit(json!({ "event": "disconnected", "reason": format!("connect: {e}") })),
        }
        client.core.disconnected();
        if !offline(&mut client, &mut stdin, Duration::from_millis(250), gap).await? {
            return Ok(());
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            emit(json!({ "event": "error", "message": format!("{e:#}") }));
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
