//! The broker's async shell: recovers its logs from disk, then runs the [`BrokerCore`] event
//! loop and the tasks around it — the client/replica listener, the controller heartbeat, one
//! replication fetcher per followed partition, and the OS writeback that makes log pages
//! durable every `writeback_interval_ms` (Kafka itself never fsyncs a produce).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use sim::disk::{records, Disk};
use sim::net::Net;
use sim::NodeCtx;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::broker::{Action, BrokerCore, Input, CHECKPOINT_FILE};
use super::config::BrokerSettings;
use super::controller::{AlterPartition, BrokerHeartbeat};
use super::coordinator::ReqId;
use super::log::{LogIo, PartitionLog};
use super::protocol::{
    ControllerRequest, ControllerResponse, FetchRequest, Request, Response, BROKER_PORT, CONTROLLER_PORT, ENCODING,
};
use super::topic::TopicPartition;
use crate::rpc::{self, Answer, Channel, ChannelOptions, Listen};

/// The file holding the broker's life counter (Kafka keeps an incarnation id in memory and a
/// `meta.properties` on disk; a counter on disk gives each life a larger id).
const INCARNATION_FILE: &str = "broker.incarnation";
const TICK: Duration = Duration::from_millis(50);
const CONTROLLER_TIMEOUT: Duration = Duration::from_millis(1_000);

/// What the loop's other tasks send it.
enum Envelope {
    Request(Request, oneshot::Sender<Response>),
    NextFetch(TopicPartition, oneshot::Sender<Option<(String, FetchRequest)>>),
    Input(Input),
}

enum Waiting {
    Response(oneshot::Sender<Response>),
    Plan(oneshot::Sender<Option<(String, FetchRequest)>>),
}

/// Runs a broker on this node until the node dies. `controllers` are the controller nodes.
pub async fn run(mut ctx: NodeCtx, settings: BrokerSettings, controllers: Vec<String>) {
    let incarnation = match next_incarnation(&ctx.disk).await {
        Ok(i) => i,
        Err(e) => {
            ctx.trace("kafka.broker_disk_error", json!({ "error": e.to_string() }));
            return;
        }
    };
    let logs = recover_logs(&ctx);
    let checkpoint = read_checkpoint(&ctx.disk);
    ctx.trace("kafka.broker_start", json!({ "incarnation": incarnation, "partitions": logs.len() }));
    let mut core = BrokerCore::new(settings.clone(), incarnation, logs, &checkpoint);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (alter_tx, alter_rx) = mpsc::unbounded_channel();
    tokio::spawn(listen(ctx.net.clone(), tx.clone()));
    let brokers = Channel::new(&mut ctx, ChannelOptions::new(BROKER_PORT, ENCODING));
    let hb = Heartbeater {
        channel: Channel::new(&mut ctx, ChannelOptions::new(CONTROLLER_PORT, ENCODING)),
        controllers,
        node: ctx.name.clone(),
        settings: settings.clone(),
        incarnation,
    };
    tokio::spawn(hb.run(tx.clone(), alter_rx));
    tokio::spawn(writeback(ctx.disk.clone(), settings.writeback_interval_ms));
    let mut waiting: BTreeMap<ReqId, Waiting> = BTreeMap::new();
    let mut next_id: ReqId = 1;
    let mut next_tick = Instant::now() + TICK;
    // One sleep for the whole loop, moved at each tick: a new one per turn would add a timer
    // entry per message the broker receives (see `sim::timer`).
    let mut tick = Box::pin(sim::timer::sleep_until(next_tick));
    loop {
        let input = tokio::select! {
            biased;
            Some(env) = rx.recv() => match env {
                Envelope::Request(req, reply) => {
                    waiting.insert(next_id, Waiting::Response(reply));
                    next_id += 1;
                    Input::Request { id: next_id - 1, req }
                }
                Envelope::NextFetch(tp, reply) => {
                    waiting.insert(next_id, Waiting::Plan(reply));
                    next_id += 1;
                    Input::NextFetch { id: next_id - 1, tp }
                }
                Envelope::Input(input) => input,
            },
            _ = tick.as_mut() => {
                next_tick += TICK;
                tick.as_mut().reset(next_tick);
                Input::Tick
            }
        };
        let actions = core.step(ctx.clock.now_ms(), input);
        let shell = Shell { ctx: &ctx, brokers: &brokers, settings: &settings, tx: &tx, alter_tx: &alter_tx };
        if let Err(e) = shell.execute(actions, &mut waiting) {
            // A log directory that fails writes takes the broker down, as Kafka's does with a
            // single log dir.
            ctx.trace("kafka.broker_disk_error", json!({ "error": e.to_string() }));
            return;
        }
    }
}

struct Shell<'a> {
    ctx: &'a NodeCtx,
    brokers: &'a Channel,
    settings: &'a BrokerSettings,
    tx: &'a mpsc::UnboundedSender<Envelope>,
    alter_tx: &'a mpsc::UnboundedSender<AlterPartition>,
}

impl Shell<'_> {
    fn execute(&self, actions: Vec<Action>, waiting: &mut BTreeMap<ReqId, Waiting>) -> std::io::Result<()> {
        for action in actions {
            match action {
                Action::Reply { id, resp } => {
                    if let Some(Waiting::Response(tx)) = waiting.remove(&id) {
                        let _ = tx.send(resp);
                    }
                }
                Action::FetchPlan { id, plan } => {
                    if let Some(Waiting::Plan(tx)) = waiting.remove(&id) {
                        let _ = tx.send(plan);
                    }
                }
                Action::Disk(LogIo::Append { file, bytes }) => self.ctx.disk.append(&file, &bytes)?,
                Action::Disk(LogIo::Truncate { file, len }) => self.ctx.disk.truncate(&file, len)?,
                Action::Checkpoint(bytes) => {
                    let disk = self.ctx.disk.clone();
                    tokio::spawn(async move {
                        let _ = disk.replace_file(CHECKPOINT_FILE, &records::encode(&bytes)).await;
                    });
                }
                Action::AlterPartition(req) => {
                    let _ = self.alter_tx.send(req);
                }
                Action::StartFetcher(tp) => {
                    let f = Fetcher {
                        brokers: self.brokers.clone(),
                        tp,
                        backoff_ms: self.settings.replica_fetch_backoff_ms,
                    };
                    tokio::spawn(f.run(self.tx.clone()));
                }
                Action::Trace(kind, fields) => self.ctx.trace(kind, fields),
                Action::Sometimes(what) => self.ctx.sometimes(what),
                Action::SetRole(role, holds) => self.ctx.set_role(&role, holds),
            }
        }
        Ok(())
    }
}

/// Bumps and persists the broker's life counter.
async fn next_incarnation(disk: &Disk) -> std::io::Result<u64> {
    let bytes = disk.read(INCARNATION_FILE).unwrap_or_default();
    let last = records::decode_all(&bytes)
        .records
        .first()
        .and_then(|r| r.as_slice().try_into().ok())
        .map_or(0, u64::from_le_bytes);
    let next = last + 1;
    disk.replace_file(INCARNATION_FILE, &records::encode(&next.to_le_bytes())).await?;
    Ok(next)
}

/// Reads every partition log on disk, cutting torn or corrupt tails.
fn recover_logs(ctx: &NodeCtx) -> Vec<(TopicPartition, PartitionLog)> {
    let mut out = Vec::new();
    for file in ctx.disk.list().unwrap_or_default() {
        let Some(tp) = parse_log_name(&file) else { continue };
        let bytes = ctx.disk.read(&file).unwrap_or_default();
        let (mut log, recovered) = PartitionLog::recover(&file, &bytes);
        for io in log.take_io() {
            if let LogIo::Truncate { file, len } = io {
                let _ = ctx.disk.truncate(&file, len);
            }
        }
        if recovered.cut_bytes > 0 {
            ctx.sometimes("kafka.log_tail_cut");
        }
        ctx.trace(
            "kafka.log_recovered",
            json!({ "tp": tp.to_string(), "records": recovered.records, "cut_bytes": recovered.cut_bytes }),
        );
        out.push((tp, log));
    }
    out
}

/// `edits-0.log` → edits, 0.
pub fn parse_log_name(file: &str) -> Option<TopicPartition> {
    TopicPartition::parse(file.strip_suffix(".log")?)
}

fn read_checkpoint(disk: &Disk) -> BTreeMap<String, u64> {
    let bytes = disk.read(CHECKPOINT_FILE).unwrap_or_default();
    records::decode_all(&bytes).records.first().and_then(|r| serde_json::from_slice(r).ok()).unwrap_or_default()
}

/// The OS writeback: dirty log pages reach the platter every `interval_ms`.
async fn writeback(disk: Disk, interval_ms: u64) {
    loop {
        sim::timer::sleep(Duration::from_millis(interval_ms)).await;
        for file in disk.list().unwrap_or_default() {
            if file.ends_with(".log") {
                let _ = disk.sync(&file).await;
            }
        }
    }
}

/// Accepts clients and replicas; each connection carries one request at a time, and one idle
/// for 30 s is closed.
async fn listen(net: Net, tx: mpsc::UnboundedSender<Envelope>) {
    rpc::serve(net, Listen::new(BROKER_PORT, ENCODING), move |req: Request| {
        let (reply_tx, reply_rx) = oneshot::channel();
        let queued = tx.send(Envelope::Request(req, reply_tx)).is_ok();
        async move {
            match reply_rx.await {
                Ok(resp) if queued => Answer::Reply(resp),
                _ => Answer::Close,
            }
        }
    })
    .await;
}

/// Replicates one partition from its leader for as long as the core says to.
struct Fetcher {
    /// The broker's channel to other brokers, shared by its fetchers.
    brokers: Channel,
    tp: TopicPartition,
    backoff_ms: u64,
}

impl Fetcher {
    async fn run(self, tx: mpsc::UnboundedSender<Envelope>) {
        loop {
            let (plan_tx, plan_rx) = oneshot::channel();
            if tx.send(Envelope::NextFetch(self.tp.clone(), plan_tx)).is_err() {
                return;
            }
            let Ok(Some((node, req))) = plan_rx.await else { return };
            let timeout = Duration::from_millis(req.max_wait_ms + 2_000);
            let resp = self.brokers.call::<_, Response>(&node, &Request::Fetch(req.clone()), timeout).await.ok();
            let failed = !matches!(resp, Some(Response::Fetched(_)));
            if tx.send(Envelope::Input(Input::Fetched { req, resp })).is_err() {
                return;
            }
            if failed {
                sim::timer::sleep(Duration::from_millis(self.backoff_ms)).await;
            }
        }
    }
}

/// Heartbeats to the active controller and carries AlterPartition requests to it.
struct Heartbeater {
    channel: Channel,
    controllers: Vec<String>,
    node: String,
    settings: BrokerSettings,
    incarnation: u64,
}

impl Heartbeater {
    async fn run(self, tx: mpsc::UnboundedSender<Envelope>, mut alters: mpsc::UnboundedReceiver<AlterPartition>) {
        let mut target = 0usize;
        let mut offset = 0u64;
        let interval = Duration::from_millis(self.settings.heartbeat_interval_ms);
        let mut next = Instant::now();
        loop {
            let req = tokio::select! {
                biased;
                Some(alter) = alters.recv() => ControllerRequest::AlterPartition(alter),
                _ = sim::timer::sleep_until(next) => {
                    next = Instant::now() + interval;
                    ControllerRequest::Heartbeat(BrokerHeartbeat {
                        broker: self.settings.broker_id,
                        node: self.node.clone(),
                        incarnation: self.incarnation,
                        metadata_offset: offset,
                    })
                }
            };
            let reply = self.channel.call(&self.controllers[target], &req, CONTROLLER_TIMEOUT).await;
            match reply.ok() {
                Some(ControllerResponse::AlterRejected { reason }) => {
                    if let ControllerRequest::AlterPartition(req) = req {
                        let _ = tx.send(Envelope::Input(Input::AlterRejected { req, reason }));
                    }
                }
                Some(ControllerResponse::Heartbeat { image }) => {
                    if image.offset >= offset {
                        offset = image.offset;
                        let _ = tx.send(Envelope::Input(Input::Image(image)));
                    }
                }
                Some(ControllerResponse::NotController { leader }) => {
                    self.channel.forget(&self.controllers[target]);
                    target = match leader.and_then(|l| self.controllers.iter().position(|c| *c == l)) {
                        Some(i) if i != target => i,
                        _ => (target + 1) % self.controllers.len(),
                    };
                    // Soon, but not in a tight loop while the quorum elects a leader.
                    next = Instant::now() + Duration::from_millis(50);
                }
                Some(_) => {}
                None => target = (target + 1) % self.controllers.len(),
            }
        }
    }
}
