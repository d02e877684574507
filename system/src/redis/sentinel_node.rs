//! The Sentinel shell: drives [`super::sentinel::Sentinel`] on its timer (Redis's `hz`, 10 to 20),
//! carries out its outputs over the net seam (each ping, ask, hello and reconfiguration its own
//! short task whose answer comes back as an event), answers peers and clients, and rewrites
//! `sentinel.conf` whenever its epochs, vote or master change, before any of that is released:
//! a failed save (or an unreadable file at start) stops it for good, until its process is
//! restarted. Each vote released is recorded as [`SentinelObserved::Voted`]. Its links to
//! instances and peers are [`Channel`]s (Redis's Sentinel keeps a command connection to each, and
//! reconnects).

use std::time::Duration;

use rand::RngCore;
use serde_json::json;
use sim::net::Net;
use sim::NodeCtx;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::observations::SentinelObserved;
use super::protocol::{Command, Reply, RoleInfo, SentinelReply, SentinelRequest, REDIS_PORT, SENTINEL_PORT};
use super::sentinel::{Output, Persisted, Sentinel, SentinelConfig};
use crate::rpc::{self, Channel, ChannelOptions, Encoding, Listen};

/// Bounds every call to an instance or a peer.
pub(super) const CALL_TIMEOUT: Duration = Duration::from_millis(500);
/// What a Sentinel keeps across restarts (its epochs, vote and master).
pub(super) const CONF_FILE: &str = "sentinel.conf";

enum Event {
    Info(RoleInfo),
    PeerReply { peer: String, down: bool, leader: Option<(String, u64)> },
    Hello { master: String, config_epoch: u64, current_epoch: u64 },
    VoteRequest { candidate: Option<String>, epoch: u64, reply: oneshot::Sender<SentinelReply> },
    GetMaster { reply: oneshot::Sender<SentinelReply> },
}

/// Runs one Sentinel until the node dies.
pub async fn run(mut ctx: NodeCtx, config: SentinelConfig) {
    let seed = ctx.rng.next_u64();
    let mut core = Sentinel::new(config.clone(), seed, ctx.clock.now_ms());
    // A configuration that cannot be read is not the same as none: starting over from epoch 0
    // could vote twice in an epoch, so the Sentinel stops instead.
    match ctx.disk.read(CONF_FILE) {
        Ok(bytes) => match serde_json::from_slice::<Persisted>(&bytes) {
            Ok(p) => core.restore(p),
            Err(e) => halt(&ctx, std::io::Error::new(std::io::ErrorKind::InvalidData, e)).await,
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => halt(&ctx, e).await,
    }
    let links = Links::new(&mut ctx);
    let (tx, mut rx) = mpsc::unbounded_channel();
    tokio::spawn(serve(ctx.net.clone(), tx.clone()));
    let mut saved = core.persisted().clone();
    let mut next_tick = Instant::now() + Duration::from_millis(core.next_tick_ms());
    loop {
        let now = ctx.clock.now_ms();
        let (out, answer) = tokio::select! {
            biased;
            Some(ev) = rx.recv() => handle(&mut core, now, ev),
            _ = sim::timer::sleep_until(next_tick) => {
                next_tick += Duration::from_millis(core.next_tick_ms());
                (core.tick(now), None)
            }
        };
        // What the core decided is saved before anyone hears of it: a vote (its own, counted to
        // elect itself, or a peer's) and an epoch are released only once on disk, so a restart
        // cannot vote twice in an epoch. A failed save stops the Sentinel (fail-stop).
        if *core.persisted() != saved {
            let next = core.persisted().clone();
            let bytes = serde_json::to_vec(&next).expect("sentinel state serializes");
            if let Err(e) = ctx.disk.replace_file(CONF_FILE, &bytes).await {
                halt(&ctx, e).await;
            }
            if let (Some(candidate), true) = (&next.leader, next.leader_epoch > saved.leader_epoch) {
                ctx.observe(&SentinelObserved::Voted { candidate: candidate.clone(), epoch: next.leader_epoch });
            }
            saved = next;
        }
        for o in out {
            carry_out(&ctx, &config, &links, &tx, o);
        }
        if let Some((reply, answer)) = answer {
            let _ = reply.send(answer);
        }
    }
}

/// Fail-stop after a failed `sentinel.conf` save: the Sentinel neither answers nor acts again
/// until its process is restarted (Redis Sentinel only logs the failure and carries on, which
/// can release a vote a restart then forgets; this model stops instead). Requests keep queueing
/// and their callers time out, as with a hung process.
async fn halt(ctx: &NodeCtx, error: std::io::Error) -> ! {
    ctx.sometimes("sentinel.halted_on_save_error");
    ctx.observe(&SentinelObserved::Halted { error: error.to_string() });
    std::future::pending::<()>().await;
    unreachable!("a pending future never completes")
}

type Answer = Option<(oneshot::Sender<SentinelReply>, SentinelReply)>;

/// A Sentinel's or a client's connections to the instances and to the Sentinels. Every request
/// on them is idempotent (`ROLE`, `REPLICAOF`, a vote once cast is repeated), so a cached
/// connection found closed is retried once on a fresh one.
#[derive(Clone)]
pub(super) struct Links {
    redis: Channel,
    sentinels: Channel,
}

impl Links {
    pub(super) fn new(ctx: &mut NodeCtx) -> Self {
        let options = |port| ChannelOptions { retry_stale_once: true, ..ChannelOptions::new(port, Encoding::Json) };
        Links { redis: Channel::new(ctx, options(REDIS_PORT)), sentinels: Channel::new(ctx, options(SENTINEL_PORT)) }
    }

    pub(super) async fn redis(&self, node: &str, cmd: &Command) -> Result<Reply, rpc::RpcError> {
        self.redis.call(node, cmd, CALL_TIMEOUT).await
    }

    pub(super) async fn sentinel(&self, peer: &str, req: &SentinelRequest) -> Result<SentinelReply, rpc::RpcError> {
        self.sentinels.call(peer, req, CALL_TIMEOUT).await
    }
}

fn handle(core: &mut Sentinel, now: u64, ev: Event) -> (Vec<Output>, Answer) {
    match ev {
        Event::Info(info) => (core.on_info(now, info), None),
        Event::PeerReply { peer, down, leader } => {
            core.on_peer_reply(now, &peer, down, leader);
            (Vec::new(), None)
        }
        Event::Hello { master, config_epoch, current_epoch } => {
            (core.on_hello(now, &master, config_epoch, current_epoch), None)
        }
        Event::VoteRequest { candidate, epoch, reply } => {
            let (down, leader) = core.on_vote_request(now, candidate.as_deref(), epoch);
            (Vec::new(), Some((reply, SentinelReply::MasterDown { down, leader })))
        }
        Event::GetMaster { reply } => (
            Vec::new(),
            Some((reply, SentinelReply::Master { node: core.master().to_string(), config_epoch: core.config_epoch() })),
        ),
    }
}

fn carry_out(ctx: &NodeCtx, cfg: &SentinelConfig, links: &Links, tx: &mpsc::UnboundedSender<Event>, o: Output) {
    match o {
        Output::Ping(node) => {
            let (tx, links) = (tx.clone(), links.clone());
            tokio::spawn(async move {
                if let Ok(Reply::Role { info }) = links.redis(&node, &Command::Role).await {
                    if info.node == node {
                        let _ = tx.send(Event::Info(info));
                    }
                }
            });
        }
        Output::Ask { candidate, current_epoch } => {
            for peer in cfg.peers.clone() {
                let (tx, links, candidate) = (tx.clone(), links.clone(), candidate.clone());
                tokio::spawn(async move {
                    let req = SentinelRequest::IsMasterDown { current_epoch, candidate };
                    if let Ok(SentinelReply::MasterDown { down, leader }) = links.sentinel(&peer, &req).await {
                        let _ = tx.send(Event::PeerReply { peer, down, leader });
                    }
                });
            }
        }
        Output::ReplicaOf { node, master } => {
            let links = links.clone();
            tokio::spawn(async move {
                let _ = links.redis(&node, &Command::ReplicaOf { master }).await;
            });
        }
        Output::Hello { master, config_epoch, current_epoch } => {
            for peer in cfg.peers.clone() {
                let (links, from, master) = (links.clone(), cfg.me.clone(), master.clone());
                tokio::spawn(async move {
                    let req = SentinelRequest::Hello { from, master, config_epoch, current_epoch };
                    let _ = links.sentinel(&peer, &req).await;
                });
            }
        }
        Output::Event { kind, detail } => {
            ctx.sometimes(&format!("sentinel.{kind}"));
            match kind {
                "+failover-end" => ctx.observe(&SentinelObserved::FailoverEnd { promoted: detail }),
                "+convert-to-slave" => ctx.observe(&SentinelObserved::ConvertToReplica { node: detail }),
                "+sdown" | "-sdown" => ctx.observe(&SentinelObserved::Sdown { master: detail, down: kind == "+sdown" }),
                _ => ctx.trace("sentinel.event", json!({ "event": kind, "detail": detail })),
            }
        }
        Output::Elected { epoch, voters } => ctx.observe(&SentinelObserved::Elected { epoch, voters }),
        Output::SwitchMaster { from, to, config_epoch } => {
            ctx.sometimes("sentinel.switch_master");
            ctx.observe(&SentinelObserved::SwitchMaster { from, to, config_epoch });
        }
    }
}

/// Answers peers (`is-master-down-by-addr`, hellos) and clients (`get-master-addr-by-name`).
async fn serve(net: Net, tx: mpsc::UnboundedSender<Event>) {
    rpc::serve(net, Listen::new(SENTINEL_PORT, Encoding::Json), move |req: SentinelRequest| {
        let tx = tx.clone();
        async move {
            match answer(&tx, req).await {
                Some(reply) => rpc::Answer::Reply(reply),
                // The Sentinel's loop has stopped: nothing will answer on this connection.
                None => rpc::Answer::Close,
            }
        }
    })
    .await;
}

/// Hands a request to the Sentinel's loop and waits for its reply.
async fn answer(tx: &mpsc::UnboundedSender<Event>, req: SentinelRequest) -> Option<SentinelReply> {
    match req {
        SentinelRequest::Hello { master, config_epoch, current_epoch, .. } => {
            let _ = tx.send(Event::Hello { master, config_epoch, current_epoch });
            Some(SentinelReply::Ok)
        }
        SentinelRequest::IsMasterDown { current_epoch, candidate } => {
            let (reply, rx) = oneshot::channel();
            let _ = tx.send(Event::VoteRequest { candidate, epoch: current_epoch, reply });
            rx.await.ok()
        }
        SentinelRequest::GetMaster => {
            let (reply, rx) = oneshot::channel();
            let _ = tx.send(Event::GetMaster { reply });
            rx.await.ok()
        }
    }
}
