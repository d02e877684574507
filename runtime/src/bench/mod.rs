//! `stack bench`: the collaboration server against the stock Node server, under one load
//! generator ([`load`]).
//!
//! It brings up both servers itself: a stack of its own (`stack up` on a fresh data dir), whose
//! collaboration instance owning the benchmark's document is loaded directly and through a
//! balancer, and the stock Node server (`@y/websocket-server` with `yjs`, pinned by
//! `bench/node-server/package-lock.json`, installed with `npm ci`). For every core count,
//! mode and client count it runs the same load against each and prints one table with the
//! ratios to the Node server. A run whose clients' state vectors differ at the end is void.
//!
//! Our server is measured as the collaboration instance's process (plus the balancer's
//! through it): CPU time and RSS from /proc. With `--cores 1` those processes and the Node
//! server are pinned to CPU 0 and the generator to CPU 1; the rest of the stack (Kafka, which
//! every update goes to) is not pinned.

pub mod load;
pub mod proc_stat;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::net::TcpStream;

use crate::control::{self, Reply, Request};
use crate::data_dir::DataDir;
use crate::layout::Layout;
use load::{Load, Mode};
use proc_stat::Sample;

pub struct Options {
    pub clients: Vec<usize>,
    pub cores: Vec<usize>,
    pub modes: Vec<Mode>,
    pub duration: Duration,
    pub base_port: u16,
    /// Where the Node server's package.json and package-lock.json are.
    pub node_dir: PathBuf,
    pub node_port: u16,
    /// Runs of each configuration against each server; the tables show medians.
    pub repeat: usize,
}

/// The servers under test.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Target {
    OursDirect,
    OursBalancer,
    Node,
}

impl Target {
    const ALL: [Target; 3] = [Target::OursDirect, Target::OursBalancer, Target::Node];

    fn label(self) -> &'static str {
        match self {
            Target::OursDirect => "ours (collab instance)",
            Target::OursBalancer => "ours (via balancer)",
            Target::Node => "node y-websocket-server",
        }
    }
}

struct Row {
    target: Target,
    throughput: f64,
    p50: f64,
    p99: f64,
    p999: f64,
    /// Send-to-durable-acknowledgement p50 and p99 (ours only: the Node server acknowledges
    /// nothing).
    ack: Option<(f64, f64)>,
    cpu: f64,
    rss_mib: f64,
    void: Option<String>,
}

/// Runs every configuration and prints its tables; false when a run was void.
pub async fn run(opts: Options) -> anyhow::Result<bool> {
    if opts.clients.iter().any(|&n| n < 2) {
        bail!("--clients: every count must be at least 2");
    }
    let mut node = start_node(&opts.node_dir, opts.node_port).await?;
    let tmp = tempfile::Builder::new().prefix("stack-bench-").tempdir().context("a temporary data dir")?;
    let root = tmp.path().join("stack");
    let layout = Layout::new(opts.base_port)?;
    println!("bench: starting a stack in {} (base port {})", root.display(), opts.base_port);
    let up = crate::stack_child::StackChild::start_own(&root, opts.base_port, "bench").await?;
    let outcome = drive(&opts, &layout, &DataDir::new(root), node.id()).await;
    let _ = up.stop().await;
    let _ = node.kill().await;
    outcome
}

async fn drive(opts: &Options, layout: &Layout, data: &DataDir, node_pid: Option<u32>) -> anyhow::Result<bool> {
    let lb_name = layout.balancers().first().context("no balancer")?.clone();
    let lb = layout.balancer_addr(&lb_name).context("no balancer address")?;
    let token = crate::chaos::login(lb).await?;
    let pids = match control::send(data, &Request::Status).await {
        Ok(Reply::Status { nodes }) => nodes,
        other => bail!("stack status: {other:?}"),
    };
    let pid_of = |name: &str| pids.iter().find(|n| n.name == name).and_then(|n| n.pid);
    let node_pid = node_pid.context("the Node server has no pid")?;
    let node_addr = SocketAddr::from(([127, 0, 0, 1], opts.node_port));
    let mut all_valid = true;
    let mut run_no = 0u64;
    let cpus = proc_stat::cpus();
    let mut summary = Vec::new();
    for &cores in &opts.cores {
        for &mode in &opts.modes {
            for &n in &opts.clients {
                // Every repeat runs all three servers back to back, so a noisy stretch of the
                // machine falls on all of them; the table shows each server's medians.
                let mut runs: Vec<Vec<Row>> = Target::ALL.iter().map(|_| Vec::new()).collect();
                for _ in 0..opts.repeat {
                    for (t, target) in Target::ALL.into_iter().enumerate() {
                        run_no += 1;
                        let spec = RunSpec { target, cores, cpus, mode, n, run_no };
                        runs[t].push(
                            run_once(opts, layout, &lb_name, lb, &token, &pid_of, node_pid, node_addr, spec).await?,
                        );
                    }
                }
                let rows: Vec<Row> = runs.into_iter().map(median_row).collect();
                all_valid &= rows.iter().all(|r| r.void.is_none());
                print_table(cores, mode, n, opts, &rows);
                summary.push((cores, mode, n, rows));
            }
        }
    }
    print_summary(&summary);
    Ok(all_valid)
}

/// One run's coordinates.
#[derive(Clone, Copy)]
struct RunSpec {
    target: Target,
    cores: usize,
    cpus: usize,
    mode: Mode,
    n: usize,
    run_no: u64,
}

/// One load against one server, on a document of its own.
#[allow(clippy::too_many_arguments)]
async fn run_once(
    opts: &Options,
    layout: &Layout,
    lb_name: &str,
    lb: SocketAddr,
    token: &str,
    pid_of: &impl Fn(&str) -> Option<u32>,
    node_pid: u32,
    node_addr: SocketAddr,
    spec: RunSpec,
) -> anyhow::Result<Row> {
    let RunSpec { target, cores, cpus, mode, n, run_no } = spec;
    let doc = format!("bench-{run_no}");
    let tenant = crate::chaos::TENANT;
    let (host, url, server_pids) = match target {
        Target::OursDirect | Target::OursBalancer => {
            let owner = layout.collab_owner(&format!("{tenant}/{doc}")).context("no owner")?;
            let collab_pid = pid_of(owner).context("the collab instance has no pid")?;
            let (addr, pids) = if target == Target::OursDirect {
                (layout.addr(owner, system::http::HTTP_PORT).context("no collab address")?, vec![collab_pid])
            } else {
                (lb, vec![collab_pid, pid_of(lb_name).context("the balancer has no pid")?])
            };
            // `ack=1`: our server tells each sender when its update is durable.
            (addr.to_string(), format!("ws://{addr}/collab/{tenant}/{doc}?token={token}&ack=1"), pids)
        }
        Target::Node => (node_addr.to_string(), format!("ws://{node_addr}/{doc}"), vec![node_pid]),
    };
    // Pin the servers and this generator apart for a single core.
    let (server_cpus, own_cpus) =
        if cores == 1 && cpus >= 2 { (vec![0], vec![1]) } else { ((0..cpus).collect(), (0..cpus).collect()) };
    for &pid in &server_pids {
        proc_stat::pin_process(pid, &server_cpus)?;
    }
    proc_stat::pin_process(std::process::id(), &own_cpus)?;
    let acks = target != Target::Node;
    let load = Load { url, host, clients: n, mode, duration: opts.duration, acks };
    let before = Sample::of(&server_pids)?;
    let out = load::run(&load, 1_000 * run_no).await?;
    let after = Sample::of(&server_pids)?;
    let secs = out.elapsed.as_secs_f64().max(1e-9);
    let ms = |q: f64| out.latency.value_at_quantile(q) as f64 / 1_000.0;
    Ok(Row {
        target,
        throughput: out.deliveries as f64 / secs,
        p50: ms(0.5),
        p99: ms(0.99),
        p999: ms(0.999),
        ack: out
            .ack_latency
            .as_ref()
            .map(|h| (h.value_at_quantile(0.5) as f64 / 1_000.0, h.value_at_quantile(0.99) as f64 / 1_000.0)),
        cpu: after.cpu_secs_since(&before) / after.wall_since(&before).max(1e-9) * 100.0,
        rss_mib: after.rss_kib as f64 / 1024.0,
        void: out.void,
    })
}

/// Each figure's median over the runs of one server (upper median for an even count); void
/// if any run was.
fn median_row(mut runs: Vec<Row>) -> Row {
    fn median(mut v: Vec<f64>) -> f64 {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    }
    let pick = |f: &dyn Fn(&Row) -> f64| median(runs.iter().map(f).collect());
    let ack = runs
        .iter()
        .all(|r| r.ack.is_some())
        .then(|| (pick(&|r| r.ack.map_or(0.0, |a| a.0)), pick(&|r| r.ack.map_or(0.0, |a| a.1))));
    let row = Row {
        target: runs[0].target,
        throughput: pick(&|r| r.throughput),
        p50: pick(&|r| r.p50),
        p99: pick(&|r| r.p99),
        p999: pick(&|r| r.p999),
        ack,
        cpu: pick(&|r| r.cpu),
        rss_mib: pick(&|r| r.rss_mib),
        void: None,
    };
    let void = runs.iter_mut().find_map(|r| r.void.take());
    Row { void, ..row }
}

/// One line per configuration: ours against the Node server, and whether the target holds.
/// A void run of ours is VOID; a void run of the Node server (it did not deliver everything in
/// time) still gives ratios, over what it delivered, marked `*`: ours did better than it.
fn print_summary(summary: &[(usize, Mode, usize, Vec<Row>)]) {
    println!();
    println!("## Summary: ours / Node (target: throughput >= 3x, p99 <= 0.5x)");
    println!(
        "| {:>5} | {:<28} | {:>4} | {:>12} | {:>12} | {:>12} | {:>12} | {:<7} |",
        "cores", "load", "N", "direct thr", "direct p99", "balancer thr", "balancer p99", "target"
    );
    println!("|{}", "---|".repeat(8));
    let mut node_void = false;
    for (cores, mode, n, rows) in summary {
        let Some(node) = rows.iter().find(|r| r.target == Target::Node) else { continue };
        let mark = if node.void.is_some() { "*" } else { "" };
        node_void |= node.void.is_some();
        let ratio = |t: Target| {
            let r = rows.iter().find(|r| r.target == t)?;
            let valid = r.void.is_none() && node.throughput > 0.0 && node.p99 > 0.0;
            Some((r.throughput / node.throughput.max(1e-9), r.p99 / node.p99.max(1e-9), valid))
        };
        let (Some(d), Some(b)) = (ratio(Target::OursDirect), ratio(Target::OursBalancer)) else { continue };
        let cell = |x: f64, valid: bool| if valid { format!("{}{mark}", ratio_text(x)) } else { "VOID".to_string() };
        let met = |r: (f64, f64, bool)| r.2 && r.0 >= 3.0 && r.1 <= 0.5;
        let target = match (met(d), met(b)) {
            (true, true) => "met",
            (true, false) => "direct",
            (false, true) => "lb only",
            (false, false) => "NOT met",
        };
        println!(
            "| {:>5} | {:<28} | {:>4} | {:>12} | {:>12} | {:>12} | {:>12} | {:<7} |",
            cores,
            short_mode(*mode),
            n,
            cell(d.0, d.2),
            cell(d.1, d.2),
            cell(b.0, b.2),
            cell(b.1, b.2),
            target
        );
    }
    if node_void {
        println!(
            "* the Node server's run was void (not every update delivered in time): ratios over what it delivered"
        );
    }
}

/// A ratio to two decimals, or to three significant digits below 0.1 (a p99 a thousandth of
/// the Node server's is not 0.00x).
fn ratio_text(x: f64) -> String {
    if x.is_finite() && x > 0.0 && x < 0.1 {
        format!("{:.*}x", (2 - x.log10().floor() as i32) as usize, x)
    } else {
        format!("{x:.2}x")
    }
}

fn short_mode(mode: Mode) -> String {
    match mode {
        Mode::Open { rate } => format!("open, {rate}/s per client"),
        Mode::Closed { window } => format!("closed, window {window}"),
    }
}

fn mode_label(mode: Mode) -> String {
    match mode {
        Mode::Open { rate } => format!("open loop, {rate} updates/s per client"),
        Mode::Closed { window } => format!("closed loop, window {window} per client (ours: delivered and durable)"),
    }
}

fn print_table(cores: usize, mode: Mode, n: usize, opts: &Options, rows: &[Row]) {
    println!();
    println!(
        "## {} core{}, {}, N = {n} clients, {} s{}",
        cores,
        if cores == 1 { "" } else { "s" },
        mode_label(mode),
        opts.duration.as_secs(),
        if opts.repeat > 1 { format!(", medians of {} runs", opts.repeat) } else { String::new() }
    );
    println!(
        "| {:<24} | {:>10} | {:>8} | {:>8} | {:>8} | {:>14} | {:>6} | {:>7} | {:>9} | {:>8} | {:<5} |",
        "server",
        "deliv/s",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "ack p50/p99 ms",
        "CPU %",
        "RSS MiB",
        "thr/node",
        "p99/node",
        "valid"
    );
    println!("|{}", "---|".repeat(11));
    let node = rows.iter().find(|r| r.target == Target::Node);
    for r in rows {
        let (thr, p99) = match node {
            Some(nd) if nd.throughput > 0.0 && nd.p99 > 0.0 => (r.throughput / nd.throughput, r.p99 / nd.p99),
            _ => (f64::NAN, f64::NAN),
        };
        println!(
            "| {:<24} | {:>10.0} | {:>8.2} | {:>8.2} | {:>8.2} | {:>14} | {:>6.0} | {:>7.1} | {:>9} | {:>8} | {:<5} |",
            r.target.label(),
            r.throughput,
            r.p50,
            r.p99,
            r.p999,
            r.ack.map_or_else(|| "-".to_string(), |(p50, p99)| format!("{p50:.2}/{p99:.2}")),
            r.cpu,
            r.rss_mib,
            ratio_text(thr),
            ratio_text(p99),
            if r.void.is_none() { "yes" } else { "VOID" }
        );
    }
    for r in rows {
        if let Some(why) = &r.void {
            println!("void: {}: {why}", r.target.label());
        }
    }
    if let Some(nd) = node {
        for r in rows.iter().filter(|r| r.target != Target::Node) {
            let thr = r.throughput / nd.throughput.max(1e-9);
            let p99 = r.p99 / nd.p99.max(1e-9);
            let met = thr >= 3.0 && p99 <= 0.5;
            println!(
                "target (>= 3x Node's throughput, <= 0.5x its p99) for {}: {} (throughput {:.2}x, p99 {:.2}x)",
                r.target.label(),
                if met { "met" } else { "NOT met" },
                thr,
                p99
            );
        }
    }
}

/// `npm ci` in the pinned directory, then the server on 127.0.0.1:`port`, once it accepts.
async fn start_node(dir: &std::path::Path, port: u16) -> anyhow::Result<tokio::process::Child> {
    if !dir.join("package-lock.json").is_file() {
        bail!("{}: no package-lock.json (the pinned Node server)", dir.display());
    }
    println!("bench: npm ci in {}", dir.display());
    let status = tokio::process::Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(dir)
        .stdout(Stdio::null())
        .status()
        .await
        .context("running npm ci (Node.js 20+ and npm are needed)")?;
    if !status.success() {
        bail!("npm ci failed: {status}");
    }
    let child = tokio::process::Command::new("node")
        .arg("node_modules/@y/websocket-server/src/server.js")
        .current_dir(dir)
        .env("HOST", "127.0.0.1")
        .env("PORT", port.to_string())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting the Node server")?;
    for _ in 0..100 {
        if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            println!("bench: node y-websocket-server on 127.0.0.1:{port}");
            return Ok(child);
        }
        sim::timer::sleep(Duration::from_millis(100)).await;
    }
    bail!("the Node server did not listen on port {port} in 10 s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_keep_their_digits() {
        assert_eq!(ratio_text(4.081), "4.08x");
        assert_eq!(ratio_text(0.5), "0.50x");
        assert_eq!(ratio_text(0.0026), "0.00260x");
        assert_eq!(ratio_text(0.05), "0.0500x");
        assert_eq!(ratio_text(f64::NAN), "NaNx");
    }
}
