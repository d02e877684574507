//! `stack`: the whole stack on the real runtime (`cargo stack ...`).
//!
//! ```text
//! cargo stack up [--data-dir D] [--base-port P]   start every node; Ctrl-C stops them
//! cargo stack status [--data-dir D]               every node, its pid, whether alive and healthy
//! cargo stack kill NODE [--data-dir D]            SIGKILL one node (it stays down)
//! cargo stack restart NODE [--data-dir D]         start it again on its files, wait for health
//! cargo stack owner TENANT/DOC                    the collaboration instance owning a document
//! cargo stack chaos --seed N [--duration S]       real-process chaos on a stack of its own
//! cargo stack bench [--clients 2,10] [--cores 2] [--mode open] [--rate R] [--seconds S] [--repeat K]
//!                                                 our collaboration server against the stock Node server
//! ```
//! Exit codes: 0 done, 1 failed, 2 usage error (bad arguments, unknown node).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[cfg(not(madsim))]
use runtime::{control, data_dir::DataDir, layout};

#[derive(Parser)]
#[command(name = "stack", about = "The whole stack on the real runtime, one OS process per node")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start every node on 127.0.0.1 and wait until all are healthy; Ctrl-C stops them.
    Up {
        /// Where the nodes keep their files; a second `up` on it recovers every store.
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
        /// The first port of the nodes' port blocks (20 ports per node).
        #[arg(long, default_value_t = 20_000)]
        base_port: u16,
    },
    /// List the nodes with their pid, whether they run and whether they are healthy.
    Status {
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
    },
    /// SIGKILL one node; it stays down until `restart`.
    Kill {
        node: String,
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
    },
    /// Start one node again on its data (killing it first if it runs), and wait for its health.
    Restart {
        node: String,
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
    },
    /// Name the collaboration instance that owns a document (`tenant/doc`) while all are healthy.
    Owner { doc: String },
    /// Start a stack, kill its leaders and primaries under typing editors, judge; exit 1 on FAIL.
    Chaos {
        #[arg(long)]
        seed: u64,
        /// Seconds of typing and faults (the start and the final checks come on top).
        #[arg(long, default_value_t = 60)]
        duration: u64,
        /// Default: a fresh temporary directory.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[arg(long, default_value_t = 20_000)]
        base_port: u16,
    },
    /// Benchmark the collaboration server against the stock Node server (both brought up here).
    Bench {
        /// Clients per document, comma-separated.
        #[arg(long, value_delimiter = ',', default_values_t = [2usize, 10, 50, 200])]
        clients: Vec<usize>,
        /// Core counts: 1 pins the servers to CPU 0 and the generator to CPU 1; 2 leaves both free.
        #[arg(long, value_delimiter = ',', default_values_t = [2usize, 1])]
        cores: Vec<usize>,
        /// `open` (a fixed rate per client), `closed` (as fast as delivery allows), or both.
        #[arg(long, value_delimiter = ',', default_values_t = [BenchMode::Open, BenchMode::Closed])]
        mode: Vec<BenchMode>,
        /// Open loop: updates per second per client.
        #[arg(long, default_value_t = 10.0)]
        rate: f64,
        /// Closed loop: updates in flight per client (enough to keep either server busy).
        #[arg(long, default_value_t = 32)]
        window: u32,
        /// Seconds of load per run.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Runs of every configuration against every server, interleaved; the tables show
        /// medians.
        #[arg(long, default_value_t = 1)]
        repeat: usize,
        #[arg(long, default_value_t = 20_000)]
        base_port: u16,
        /// The Node server's port.
        #[arg(long, default_value_t = 19_990)]
        node_port: u16,
    },
    /// Run one node in this process (the supervisor's children).
    #[command(hide = true)]
    Node {
        name: String,
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        base_port: u16,
        /// The supervisor's pid: the node stops when its parent is no longer this process.
        #[arg(long)]
        supervisor: u32,
    },
}

const DEFAULT_DATA_DIR: &str = "target/stack";

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum BenchMode {
    Open,
    Closed,
}

impl std::fmt::Display for BenchMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BenchMode::Open => "open",
            BenchMode::Closed => "closed",
        })
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    run(cli.command)
}

#[cfg(madsim)]
fn run(_: Command) -> ExitCode {
    eprintln!("error: `stack` runs on the real runtime; build it without --cfg madsim");
    ExitCode::from(2)
}

#[cfg(not(madsim))]
fn run(command: Command) -> ExitCode {
    let layout_for = |base: u16| match layout::Layout::new(base) {
        Ok(l) => Ok(l),
        Err(e) => Err(fail(2, e)),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return fail(1, e),
    };
    match command {
        Command::Up { data_dir, base_port } => {
            let layout = match layout_for(base_port) {
                Ok(l) => l,
                Err(code) => return code,
            };
            match runtime.block_on(runtime::supervisor::up(layout, DataDir::new(data_dir))) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(1, format!("{e:#}")),
            }
        }
        Command::Node { name, data_dir, base_port, supervisor } => {
            let layout = match layout_for(base_port) {
                Ok(l) => l,
                Err(code) => return code,
            };
            let outcome = runtime.block_on(runtime::node::run(layout, &name, &DataDir::new(data_dir), supervisor));
            // The node's tasks never end by themselves: leave them, do not wait for them.
            runtime.shutdown_background();
            match outcome {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(1, format!("node {name}: {e:#}")),
            }
        }
        Command::Chaos { seed, duration, data_dir, base_port } => {
            if let Err(code) = layout_for(base_port) {
                return code;
            }
            let opts = runtime::chaos::Options {
                seed,
                duration: std::time::Duration::from_secs(duration),
                data_dir,
                base_port,
            };
            match runtime.block_on(runtime::chaos::run(opts)) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::from(1),
                Err(e) => fail(1, format!("chaos: {e:#}")),
            }
        }
        Command::Bench { clients, cores, mode, rate, window, seconds, repeat, base_port, node_port } => {
            if let Err(code) = layout_for(base_port) {
                return code;
            }
            if clients.iter().any(|&n| n < 2) || cores.iter().any(|&c| c != 1 && c != 2) {
                return fail(2, "--clients counts must be at least 2, --cores 1 or 2");
            }
            if !(rate > 0.0 && rate.is_finite()) || window == 0 || seconds == 0 || repeat == 0 {
                return fail(2, "--rate, --window, --seconds and --repeat must be positive");
            }
            let modes = mode
                .iter()
                .map(|m| match m {
                    BenchMode::Open => runtime::bench::load::Mode::Open { rate },
                    BenchMode::Closed => runtime::bench::load::Mode::Closed { window },
                })
                .collect();
            let opts = runtime::bench::Options {
                clients,
                cores,
                modes,
                duration: std::time::Duration::from_secs(seconds),
                repeat,
                base_port,
                node_dir: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../bench/node-server"),
                node_port,
            };
            match runtime.block_on(runtime::bench::run(opts)) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::from(1),
                Err(e) => fail(1, format!("bench: {e:#}")),
            }
        }
        Command::Status { data_dir } => {
            runtime.block_on(command_reply(DataDir::new(data_dir), control::Request::Status))
        }
        Command::Kill { node, .. } | Command::Restart { node, .. } if !known_node(&node) => {
            fail(2, format!("unknown node {node:?}; `cargo stack status` lists them"))
        }
        Command::Kill { node, data_dir } => {
            runtime.block_on(command_reply(DataDir::new(data_dir), control::Request::Kill { node }))
        }
        Command::Restart { node, data_dir } => {
            runtime.block_on(command_reply(DataDir::new(data_dir), control::Request::Restart { node }))
        }
        Command::Owner { doc } => {
            let layout = match layout_for(layout::DEFAULT_BASE_PORT) {
                Ok(l) => l,
                Err(code) => return code,
            };
            let doc = match system::doc_update::DocId::parse(&doc) {
                Ok(d) => d.to_string(),
                Err(_) => return fail(2, format!("bad document {doc:?}: tenant/doc, [a-z0-9-]{{1,64}} each")),
            };
            match layout.collab_owner(&doc) {
                Some(owner) => {
                    println!("{owner}");
                    ExitCode::SUCCESS
                }
                None => fail(1, "no collaboration instance"),
            }
        }
    }
}

#[cfg(not(madsim))]
fn known_node(name: &str) -> bool {
    layout::Layout::new(layout::DEFAULT_BASE_PORT).is_ok_and(|l| l.node(name).is_some())
}

#[cfg(not(madsim))]
async fn command_reply(data: DataDir, request: control::Request) -> ExitCode {
    match control::send(&data, &request).await {
        Ok(control::Reply::Status { nodes }) => {
            println!("{:<24} {:>8} {:<16} {:<6} {:<8} {:>5}", "NODE", "PID", "STATE", "ALIVE", "HEALTHY", "PORTS");
            for n in &nodes {
                let pid = n.pid.map_or("-".to_string(), |p| p.to_string());
                println!(
                    "{:<24} {:>8} {:<16} {:<6} {:<8} {:>5}",
                    n.name,
                    pid,
                    n.state,
                    yes(n.alive),
                    yes(n.healthy),
                    n.base_port
                );
            }
            let healthy = nodes.iter().filter(|n| n.healthy).count();
            println!("{healthy} of {} nodes healthy", nodes.len());
            ExitCode::SUCCESS
        }
        Ok(control::Reply::Done { message }) => {
            println!("{message}");
            ExitCode::SUCCESS
        }
        Ok(control::Reply::Error { message, .. }) => fail(1, message),
        Err(control::ControlError::Usage(message)) => fail(2, message),
        Err(e) => fail(1, e),
    }
}

#[cfg(not(madsim))]
fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

fn fail(code: u8, e: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(code)
}
