//! `stack up`: the supervisor. It starts one OS process per node (`stack node <name>`, its
//! output in `logs/<name>.log`), publishes the pids, ports and front doors in the data dir,
//! prints the balancers' URLs and one `ready` line once every node is healthy, and then takes
//! `status`, `kill` and `restart` on its control port. It never restarts a node on its own: a
//! node that dies stays dead until `restart`, so a kill is what the operator asked for.
//!
//! Ctrl-C or SIGTERM stops every node with SIGTERM (SIGKILL after [`STOP_GRACE`]) and exits 0.
//! The nodes run in their own process groups so a terminal's Ctrl-C reaches the supervisor
//! only, and each node exits by itself if the supervisor dies ([`crate::node`]).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use futures_util::future::join_all;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{signal, SignalKind};
use tokio::time::Instant;

use crate::control::{NodeStatus, Reply, Request};
use crate::data_dir::{BalancerEndpoint, DataDir, Endpoints, SupervisorFile};
use crate::layout::Layout;
use crate::probe;

/// How long nodes get between SIGTERM and SIGKILL when the stack stops.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// How often the supervisor probes nodes that are not healthy yet.
const PROBE_EVERY: Duration = Duration::from_millis(250);
/// How often it says which nodes it still waits for.
const WAITING_NOTE_EVERY: Duration = Duration::from_secs(15);
/// How long `restart` waits for the node's health.
const RESTART_HEALTH_WAIT: Duration = Duration::from_secs(90);
/// The nodes' log filter unless `RUST_LOG` says otherwise.
const NODE_LOG_DEFAULT: &str = "warn";

/// A node's process state as the supervisor knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    Running,
    /// Killed on request; stays down until `restart`.
    Killed,
    /// Died without being asked to (its exit status).
    Exited(String),
    Stopping,
    Stopped,
}

impl State {
    fn label(&self) -> String {
        match self {
            State::Running => "running".into(),
            State::Killed => "killed".into(),
            State::Exited(why) => format!("exited ({why})"),
            State::Stopping => "stopping".into(),
            State::Stopped => "stopped".into(),
        }
    }
}

struct Slot {
    pid: Option<u32>,
    state: State,
    /// Which spawn this is, so a late exit of an old process never touches a new one.
    spawn: u64,
}

struct Supervisor {
    layout: Arc<Layout>,
    data: DataDir,
    exe: PathBuf,
    slots: Mutex<BTreeMap<String, Slot>>,
    /// Serializes kill and restart (one operator command at a time).
    commands: tokio::sync::Mutex<()>,
    /// Serializes writes of `nodes.json` (each goes through the same temporary file).
    publishing: Mutex<()>,
}

/// Runs the stack until Ctrl-C or SIGTERM.
pub async fn up(layout: Layout, data: DataDir) -> anyhow::Result<()> {
    let started = Instant::now();
    // First, so a Ctrl-C at any point from here on stops what was started.
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    data.create().with_context(|| format!("creating {}", data.root().display()))?;
    refuse_second_supervisor(&data).await?;
    check_ports_free(&layout).await?;
    let control = TcpListener::bind(("127.0.0.1", 0)).await.context("binding the control port")?;
    let sup_file = SupervisorFile {
        pid: std::process::id(),
        control_port: control.local_addr()?.port(),
        base_port: layout.base_port(),
    };
    data.publish(&data.supervisor_file(), &sup_file).context("writing supervisor.json")?;
    let endpoints = endpoints(&layout);
    data.publish(&data.endpoints_file(), &endpoints).context("writing endpoints.json")?;
    let sup = Arc::new(Supervisor {
        layout: Arc::new(layout),
        data,
        exe: std::env::current_exe().context("finding the stack binary")?,
        slots: Mutex::new(BTreeMap::new()),
        commands: tokio::sync::Mutex::new(()),
        publishing: Mutex::new(()),
    });
    // Commands are taken from the start: `status` shows a start in progress.
    let control = tokio::spawn(sup.clone().serve_control(control));
    let names: Vec<String> = sup.layout.nodes().iter().map(|n| n.name.clone()).collect();
    for name in &names {
        if let Err(e) = sup.spawn(name) {
            control.abort();
            sup.stop().await;
            return Err(e.context(format!("starting {name}")));
        }
    }
    sup.publish_nodes();
    tracing::info!(nodes = names.len(), "started every node; waiting for health");
    let outcome = tokio::select! {
        r = sup.wait_ready(&names, started) => r,
        _ = interrupt.recv() => Err(anyhow::anyhow!("interrupted before the stack was ready")),
        _ = term.recv() => Err(anyhow::anyhow!("terminated before the stack was ready")),
    };
    if let Err(e) = outcome {
        control.abort();
        sup.stop().await;
        return Err(e);
    }
    let mut out = std::io::stdout().lock();
    for lb in &endpoints.balancers {
        writeln!(out, "balancer {} http={} ws={}", lb.name, lb.http, lb.ws)?;
    }
    writeln!(
        out,
        "ready: {} nodes healthy in {:.1} s (data dir {}; `cargo stack status`, Ctrl-C stops)",
        names.len(),
        started.elapsed().as_secs_f64(),
        sup.data.root().display()
    )?;
    out.flush()?;
    drop(out);
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = term.recv() => {}
    }
    control.abort();
    sup.stop().await;
    Ok(())
}

fn endpoints(layout: &Layout) -> Endpoints {
    let balancers = layout
        .balancers()
        .iter()
        .filter_map(|name| {
            let addr = layout.balancer_addr(name)?;
            Some(BalancerEndpoint { name: name.clone(), http: format!("http://{addr}"), ws: format!("ws://{addr}") })
        })
        .collect();
    Endpoints { balancers }
}

/// One supervisor per data dir: two would run two copies of every store on the same files.
async fn refuse_second_supervisor(data: &DataDir) -> anyhow::Result<()> {
    let Ok(sup) = data.read_supervisor() else { return Ok(()) };
    if TcpStream::connect(("127.0.0.1", sup.control_port)).await.is_ok() && pid_alive(sup.pid) {
        bail!(
            "a stack is already running on {} (supervisor pid {}); stop it first (Ctrl-C in its terminal)",
            data.root().display(),
            sup.pid
        );
    }
    Ok(())
}

/// Every port of every block must be free, or some node would fail to listen much later.
async fn check_ports_free(layout: &Layout) -> anyhow::Result<()> {
    for port in layout.all_ports() {
        let socket = tokio::net::TcpSocket::new_v4()?;
        // As tokio's own listeners do, so a port in TIME_WAIT from a previous run counts free.
        socket.set_reuseaddr(true)?;
        if let Err(e) = socket.bind(([127, 0, 0, 1], port).into()) {
            let last = layout.all_ports().max().unwrap_or(port);
            bail!(
                "port {port} on 127.0.0.1 is taken ({e}): the stack needs ports {}..={last}; pick another --base-port",
                layout.base_port()
            );
        }
    }
    Ok(())
}

fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else { return false };
    // SAFETY: kill with signal 0 only checks that the process exists; it sends nothing.
    unsafe { libc::kill(pid, 0) == 0 }
}

fn send_signal(pid: u32, sig: libc::c_int) {
    let Ok(pid) = libc::pid_t::try_from(pid) else { return };
    // SAFETY: kill(2) on a pid this supervisor spawned and has not reaped yet (the waiter task
    // clears the pid once it reaps the process, under the same lock callers hold).
    unsafe {
        libc::kill(pid, sig);
    }
}

impl Supervisor {
    /// Starts a new process for `name`, and a task that reaps it.
    fn spawn(self: &Arc<Self>, name: &str) -> anyhow::Result<u32> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data.log_of(name))
            .context("opening the node's log")?;
        let mut cmd = tokio::process::Command::new(&self.exe);
        cmd.arg("node")
            .arg(name)
            .arg("--data-dir")
            .arg(self.data.root())
            .arg("--base-port")
            .arg(self.layout.base_port().to_string())
            .arg("--supervisor")
            .arg(std::process::id().to_string())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0);
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", NODE_LOG_DEFAULT);
        }
        let mut child = cmd.spawn().context("spawning the node process")?;
        let pid = child.id().context("a just-spawned child has a pid")?;
        let spawn = {
            let mut slots = self.slots.lock().expect("slots lock");
            let slot = slots.entry(name.to_string()).or_insert(Slot { pid: None, state: State::Stopped, spawn: 0 });
            slot.spawn += 1;
            slot.pid = Some(pid);
            slot.state = State::Running;
            slot.spawn
        };
        let this = self.clone();
        let name = name.to_string();
        tokio::spawn(async move {
            let status = child.wait().await;
            {
                let mut slots = this.slots.lock().expect("slots lock");
                let Some(slot) = slots.get_mut(&name) else { return };
                if slot.spawn != spawn {
                    return;
                }
                slot.pid = None;
                slot.state = match &slot.state {
                    State::Running => {
                        let why = status.map_or_else(|e| e.to_string(), |s| s.to_string());
                        tracing::warn!(node = %name, %why, "node exited");
                        State::Exited(why)
                    }
                    State::Stopping => State::Stopped,
                    other => other.clone(),
                };
            }
            this.publish_nodes();
        });
        Ok(pid)
    }

    fn publish_nodes(&self) {
        let _one = self.publishing.lock().expect("publish lock");
        let nodes: Vec<NodeStatus> = self.snapshot().into_iter().map(|(s, _)| s).collect();
        if let Err(e) = self.data.publish(&self.data.nodes_file(), &nodes) {
            tracing::warn!(error = %e, "cannot write nodes.json");
        }
    }

    /// Every node's status without probing (`healthy` false), in layout order.
    fn snapshot(&self) -> Vec<(NodeStatus, usize)> {
        let slots = self.slots.lock().expect("slots lock");
        self.layout
            .nodes()
            .iter()
            .enumerate()
            .map(|(i, spot)| {
                let (pid, state) = match slots.get(&spot.name) {
                    Some(slot) => (slot.pid, slot.state.clone()),
                    None => (None, State::Stopped),
                };
                let status = NodeStatus {
                    name: spot.name.clone(),
                    pid,
                    state: state.label(),
                    alive: pid.is_some(),
                    healthy: false,
                    base_port: spot.base,
                };
                (status, i)
            })
            .collect()
    }

    /// Waits until every node in `names` answers healthy; fails if one of them dies first.
    async fn wait_ready(&self, names: &[String], started: Instant) -> anyhow::Result<()> {
        let mut waiting: Vec<String> = names.to_vec();
        let mut next_note = started + WAITING_NOTE_EVERY;
        while !waiting.is_empty() {
            for name in &waiting {
                let slots = self.slots.lock().expect("slots lock");
                if let Some(State::Exited(why)) = slots.get(name).map(|s| &s.state) {
                    bail!("node {name} exited ({why}) before it was healthy; see {}", self.data.log_of(name).display());
                }
            }
            let probes = waiting.iter().map(|name| async move {
                let spot = self.layout.node(name).expect("layout node");
                (name.clone(), probe::healthy(&self.layout, spot).await)
            });
            let results = join_all(probes).await;
            waiting = results.into_iter().filter(|(_, ok)| !ok).map(|(n, _)| n).collect();
            if waiting.is_empty() {
                break;
            }
            if Instant::now() >= next_note {
                eprintln!(
                    "waiting for {} of {} nodes after {:.0} s: {}",
                    waiting.len(),
                    names.len(),
                    started.elapsed().as_secs_f64(),
                    waiting.join(", ")
                );
                next_note += WAITING_NOTE_EVERY;
            }
            sim::timer::sleep(PROBE_EVERY).await;
        }
        Ok(())
    }

    /// Stops every running node: SIGTERM, then SIGKILL after the grace.
    async fn stop(&self) {
        let pids: Vec<u32> = {
            let mut slots = self.slots.lock().expect("slots lock");
            slots
                .values_mut()
                .filter(|s| s.state == State::Running && s.pid.is_some())
                .filter_map(|s| {
                    s.state = State::Stopping;
                    s.pid
                })
                .collect()
        };
        for pid in &pids {
            send_signal(*pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + STOP_GRACE;
        while self.any_alive() && Instant::now() < deadline {
            sim::timer::sleep(Duration::from_millis(50)).await;
        }
        {
            let slots = self.slots.lock().expect("slots lock");
            for (name, slot) in slots.iter() {
                if let Some(pid) = slot.pid {
                    tracing::warn!(node = %name, "still running after the grace; SIGKILL");
                    send_signal(pid, libc::SIGKILL);
                }
            }
        }
        while self.any_alive() {
            sim::timer::sleep(Duration::from_millis(20)).await;
        }
        self.publish_nodes();
        let _ = std::fs::remove_file(self.data.supervisor_file());
    }

    fn any_alive(&self) -> bool {
        self.slots.lock().expect("slots lock").values().any(|s| s.pid.is_some())
    }

    fn is_alive(&self, name: &str) -> bool {
        self.slots.lock().expect("slots lock").get(name).is_some_and(|s| s.pid.is_some())
    }

    /// Accepts control connections until the listener fails.
    async fn serve_control(self: Arc<Self>, listener: TcpListener) {
        loop {
            let Ok((conn, _)) = listener.accept().await else {
                tracing::error!("the control port failed");
                return;
            };
            let this = self.clone();
            tokio::spawn(async move {
                if let Err(e) = this.control_conn(conn).await {
                    tracing::warn!(error = %e, "control connection");
                }
            });
        }
    }

    async fn control_conn(self: &Arc<Self>, conn: TcpStream) -> anyhow::Result<()> {
        let (read, mut write) = conn.into_split();
        let mut line = String::new();
        BufReader::new(read).read_line(&mut line).await?;
        let reply = match serde_json::from_str::<Request>(&line) {
            Ok(request) => self.handle(request).await,
            Err(e) => Reply::Error { message: format!("bad request: {e}"), usage: true },
        };
        let mut out = serde_json::to_vec(&reply)?;
        out.push(b'\n');
        write.write_all(&out).await?;
        Ok(())
    }

    async fn handle(self: &Arc<Self>, request: Request) -> Reply {
        match request {
            Request::Status => {
                let snapshot = self.snapshot();
                let probes = snapshot.into_iter().map(|(mut status, i)| async move {
                    if status.alive {
                        status.healthy = probe::healthy(&self.layout, &self.layout.nodes()[i]).await;
                    }
                    status
                });
                Reply::Status { nodes: join_all(probes).await }
            }
            Request::Kill { node } => {
                let _one = self.commands.lock().await;
                if self.layout.node(&node).is_none() {
                    return self.unknown(&node);
                }
                match self.kill(&node).await {
                    Some(pid) => Reply::Done { message: format!("killed {node} (pid {pid}, SIGKILL)") },
                    None => Reply::Done { message: format!("{node} was not running") },
                }
            }
            Request::Restart { node } => {
                let _one = self.commands.lock().await;
                if self.layout.node(&node).is_none() {
                    return self.unknown(&node);
                }
                self.restart(&node).await
            }
        }
    }

    fn unknown(&self, node: &str) -> Reply {
        let names: Vec<&str> = self.layout.nodes().iter().map(|n| n.name.as_str()).collect();
        Reply::Error { message: format!("unknown node {node:?}; nodes: {}", names.join(" ")), usage: true }
    }

    /// SIGKILLs `name` if it runs and waits until it is reaped; its pid, if it ran.
    async fn kill(&self, name: &str) -> Option<u32> {
        let pid = {
            let mut slots = self.slots.lock().expect("slots lock");
            let slot = slots.get_mut(name)?;
            let pid = slot.pid?;
            slot.state = State::Killed;
            send_signal(pid, libc::SIGKILL);
            pid
        };
        while self.is_alive(name) {
            sim::timer::sleep(Duration::from_millis(10)).await;
        }
        self.publish_nodes();
        Some(pid)
    }

    async fn restart(self: &Arc<Self>, name: &str) -> Reply {
        self.kill(name).await;
        let started = Instant::now();
        let pid = match self.spawn(name) {
            Ok(pid) => pid,
            Err(e) => return Reply::Error { message: format!("cannot start {name}: {e:#}"), usage: false },
        };
        self.publish_nodes();
        let spot = self.layout.node(name).expect("checked").clone();
        while started.elapsed() < RESTART_HEALTH_WAIT {
            if !self.is_alive(name) {
                let log = self.data.log_of(name);
                return Reply::Error {
                    message: format!("{name} exited after restart; see {}", log.display()),
                    usage: false,
                };
            }
            if probe::healthy(&self.layout, &spot).await {
                let secs = started.elapsed().as_secs_f64();
                return Reply::Done { message: format!("restarted {name} (pid {pid}), healthy in {secs:.1} s") };
            }
            sim::timer::sleep(PROBE_EVERY).await;
        }
        Reply::Error {
            message: format!("restarted {name} (pid {pid}) but it is not healthy after {RESTART_HEALTH_WAIT:?}"),
            usage: false,
        }
    }
}
