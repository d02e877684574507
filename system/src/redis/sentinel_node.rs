//! The Sentinel shell: drives [`super::sentinel::Sentinel`] on its timer (Redis's `hz`, 10 to 20),
//! carries out its outputs over the net seam (each ping, ask, hello and reconfiguration its own
//! short task whose answer comes back as an event), answers peers and clients, and rewrites
//! `sentinel.conf` whenever its epochs, vote or master change.

use std::time::Duration;

use rand::RngCore;
use serde_json::json;
use sim::net::{Conn, Net};
use sim::NodeCtx;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::observations::SentinelObserved;
use super::protocol::{Command, Reply, RoleInfo, SentinelReply, SentinelRequest, REDIS_PORT, SENTINEL_PORT};
use super::sentinel::{Output, Persisted, Sentinel, SentinelConfig};
use crate::wire;

const CALL_TIMEOUT: Duration = Duration::from_millis(500);
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
    if let Some(p) = ctx.disk.read(CONF_FILE).ok().and_then(|b| serde_json::from_slice::<Persisted>(&b).ok()) {
        core.restore(p);
    }
    let (tx, mut rx) = mpsc::unbounded_channel();
    tokio::spawn(serve(ctx.net.clone(), tx.clone()));
    let mut saved = core.persisted().clone();
    let mut next_tick = Instant::now() + Duration::from_millis(core.next_tick_ms());
    loop {
        let now = ctx.clock.now_ms();
        let (out, answer) = tokio::select! {
            biased;
            Some(ev) = rx.recv() => handle(&mut core, now, ev),
            _ = tokio::time::sleep_until(next_tick) => {
                next_tick += Duration::from_millis(core.next_tick_ms());
                (core.tick(now), None)
            }
        };
        for o in out {
            carry_out(&ctx, &config, &tx, o);
        }
        if *core.persisted() != saved {
            saved = core.persisted().clone();
            let bytes = serde_json::to_vec(&saved).expect("sentinel state serializes");
            if let Err(e) = crate::consensus::replace_file(&ctx.disk, CONF_FILE, &bytes).await {
                ctx.trace("sentinel.config_write_failed", json!({ "error": e.to_string() }));
            }
        }
        // A vote is answered only once it is on disk, so a restart cannot vote twice.
        if let Some((reply, answer)) = answer {
            let _ = reply.send(answer);
        }
    }
}

type Answer = Option<(oneshot::Sender<SentinelReply>, SentinelReply)>;

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

fn carry_out(ctx: &NodeCtx, cfg: &SentinelConfig, tx: &mpsc::UnboundedSender<Event>, o: Output) {
    let net = ctx.net.clone();
    match o {
        Output::Ping(node) => {
            let tx = tx.clone();
            tokio::spawn(async move {
                if let Ok(Reply::Role { info }) = call_redis(&net, &node, &Command::Role).await {
                    if info.node == node {
                        let _ = tx.send(Event::Info(info));
                    }
                }
            });
        }
        Output::Ask { candidate, current_epoch } => {
            for peer in cfg.peers.clone() {
                let (tx, net, candidate) = (tx.clone(), net.clone(), candidate.clone());
                tokio::spawn(async move {
                    let req = SentinelRequest::IsMasterDown { current_epoch, candidate };
                    if let Ok(SentinelReply::MasterDown { down, leader }) = call_sentinel(&net, &peer, &req).await {
                        let _ = tx.send(Event::PeerReply { peer, down, leader });
                    }
                });
            }
        }
        Output::ReplicaOf { node, master } => {
            tokio::spawn(async move {
                let _ = call_redis(&net, &node, &Command::ReplicaOf { master }).await;
            });
        }
        Output::Hello { master, config_epoch, current_epoch } => {
            for peer in cfg.peers.clone() {
                let (net, from, master) = (net.clone(), cfg.me.clone(), master.clone());
                tokio::spawn(async move {
                    let req = SentinelRequest::Hello { from, master, config_epoch, current_epoch };
                    let _ = call_sentinel(&net, &peer, &req).await;
                });
            }
        }
        Output::Event { kind, detail } => {
            ctx.sometimes(&format!("sentinel.{kind}"));
            match kind {
                "+failover-end" => ctx.observe(&SentinelObserved::FailoverEnd { promoted: detail }),
                "+convert-to-slave" => ctx.observe(&SentinelObserved::ConvertToReplica { node: detail }),
                _ => ctx.trace("sentinel.event", json!({ "event": kind, "detail": detail })),
            }
        }
        Output::SwitchMaster { from, to, config_epoch } => {
            ctx.sometimes("sentinel.switch_master");
            ctx.observe(&SentinelObserved::SwitchMaster { from, to, config_epoch });
        }
    }
}

pub(super) async fn call_redis(net: &Net, node: &str, cmd: &Command) -> std::io::Result<Reply> {
    let exchange = async {
        let mut conn = net.connect(node, REDIS_PORT).await?;
        wire::send(&mut conn, cmd).await?;
        wire::recv(&mut conn).await
    };
    tokio::time::timeout(CALL_TIMEOUT, exchange)
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
}

pub(super) async fn call_sentinel(net: &Net, peer: &str, req: &SentinelRequest) -> std::io::Result<SentinelReply> {
    let exchange = async {
        let mut conn = net.connect(peer, SENTINEL_PORT).await?;
        wire::send(&mut conn, req).await?;
        wire::recv(&mut conn).await
    };
    tokio::time::timeout(CALL_TIMEOUT, exchange)
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
}

/// Answers peers (`is-master-down-by-addr`, hellos) and clients (`get-master-addr-by-name`).
async fn serve(net: Net, tx: mpsc::UnboundedSender<Event>) {
    let Ok(listener) = net.bind(SENTINEL_PORT).await else { return };
    while let Ok((conn, _)) = listener.accept().await {
        tokio::spawn(session(conn, tx.clone()));
    }
}

async fn session(mut conn: Conn, tx: mpsc::UnboundedSender<Event>) {
    while let Ok(Ok(req)) =
        tokio::time::timeout(Duration::from_secs(10), wire::recv::<_, SentinelRequest>(&mut conn)).await
    {
        let reply = match req {
            SentinelRequest::Hello { master, config_epoch, current_epoch, .. } => {
                let _ = tx.send(Event::Hello { master, config_epoch, current_epoch });
                SentinelReply::Ok
            }
            SentinelRequest::IsMasterDown { current_epoch, candidate } => {
                let (reply, rx) = oneshot::channel();
                let _ = tx.send(Event::VoteRequest { candidate, epoch: current_epoch, reply });
                match rx.await {
                    Ok(r) => r,
                    Err(_) => return,
                }
            }
            SentinelRequest::GetMaster => {
                let (reply, rx) = oneshot::channel();
                let _ = tx.send(Event::GetMaster { reply });
                match rx.await {
                    Ok(r) => r,
                    Err(_) => return,
                }
            }
        };
        if wire::send(&mut conn, &reply).await.is_err() {
            return;
        }
    }
}
