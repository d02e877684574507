//! The controller's async shell: a member of the KRaft quorum (the project's Raft consensus,
//! persisted and fsynced, as KRaft's metadata log is), the controller listener for broker
//! heartbeats and AlterPartition, and the [`ControllerCore`] deciding what to commit.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use sim::net::Net;
use sim::NodeCtx;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::config::ControllerSettings;
use super::controller::ControllerCore;
use super::metadata::{Applied, MetadataRecord};
use super::observations::MetadataApplied;
use super::protocol::{ControllerRequest, ControllerResponse, CONTROLLER_PORT, ENCODING, RAFT_PORT};
use super::topic::{active_controller_role, quorum_leader_role};
use crate::consensus::{Consensus, ConsensusConfig};
use crate::raft::{self, Entry, Role};
use crate::rpc::{self, Answer, Listen};

/// Raft's tick: with the default 10-tick election timeout this is
/// `controller.quorum.election.timeout.ms` = 1000, Kafka's default.
const RAFT_TICK_MS: u64 = 100;
const TICK: Duration = Duration::from_millis(100);

#[derive(Clone)]
pub struct ControllerConfig {
    /// The cluster's name: it namespaces the roles this controller claims.
    pub cluster: String,
    /// This controller's id in the quorum (`node.id`).
    pub id: u64,
    /// Every controller's id and node name (`controller.quorum.voters`).
    pub voters: BTreeMap<u64, String>,
    pub settings: ControllerSettings,
}

type Pending = (ControllerRequest, oneshot::Sender<ControllerResponse>);

/// Runs a controller on this node until the node dies.
pub async fn run(mut ctx: NodeCtx, config: ControllerConfig) {
    let raft_config = raft::Config::new(config.id, config.voters.keys().copied().collect());
    let consensus_config = ConsensusConfig {
        me: config.id,
        members: config.voters.clone(),
        port: RAFT_PORT,
        tick_ms: RAFT_TICK_MS,
        file_prefix: "kraft".into(),
        leader_role: quorum_leader_role(&config.cluster),
        raft: raft_config,
    };
    let (consensus, mut committed) = Consensus::start(&mut ctx, consensus_config);
    let (req_tx, mut requests) = mpsc::unbounded_channel::<Pending>();
    let (done_tx, mut done) = mpsc::unbounded_channel::<u64>();
    tokio::spawn(listen(ctx.net.clone(), req_tx));
    let mut c = Controller {
        ctx,
        core: ControllerCore::new(config.settings.clone()),
        active_role: active_controller_role(&config.cluster),
        consensus,
    };
    let mut next_tick = Instant::now() + TICK;
    loop {
        tokio::select! {
            biased;
            Some(entry) = committed.recv() => c.apply(entry),
            Some(token) = done.recv() => c.core.proposal_done(token),
            Some((req, reply)) = requests.recv() => {
                let _ = reply.send(c.handle(req));
            }
            _ = sim::timer::sleep_until(next_tick) => {
                next_tick += TICK;
                c.tick(&done_tx);
            }
        }
    }
}

struct Controller {
    ctx: NodeCtx,
    core: ControllerCore,
    /// The role claimed while active, for fault targeting.
    active_role: String,
    consensus: Consensus,
}

impl Controller {
    fn apply(&mut self, entry: Entry) {
        if entry.is_noop() {
            // The first entry of a leader's term: once applied, this controller's image holds
            // everything committed before it, so it may act as the active controller.
            let status = self.consensus.status();
            if status.role == Some(Role::Leader) && status.term == entry.term && !self.core.is_active() {
                self.core.activate(self.ctx.clock.now_ms());
                self.ctx.set_role(&self.active_role, true);
                self.ctx.trace("kafka.controller_active", json!({ "term": entry.term, "offset": entry.index }));
                self.ctx.sometimes("kafka.controller_elected");
            }
            return;
        }
        let Ok(records) = serde_json::from_slice::<Vec<MetadataRecord>>(&entry.data) else {
            self.ctx.trace("kafka.bad_metadata_entry", json!({ "index": entry.index }));
            return;
        };
        for (n, change) in (0..).zip(self.core.apply(entry.index, &records)) {
            self.note(&change);
            // Every controller reports what it applied (the checkers keep the first sighting):
            // one that only the active controller reported could be missed, when a new leader
            // applies its predecessor's last records before it becomes active.
            self.ctx.observe(&MetadataApplied { offset: entry.index, n, change });
        }
    }

    /// Traces and probes, from the active controller only (the others apply the same records).
    fn note(&self, applied: &Applied) {
        if !self.core.is_active() {
            return;
        }
        let (kind, fields) = match applied {
            Applied::LeaderChanged { tp, from, to, leader_epoch, isr, unclean } => {
                if from.is_some() && to.is_some() {
                    self.ctx.sometimes("kafka.leader_failover");
                }
                if *unclean {
                    self.ctx.sometimes("kafka.unclean_election");
                }
                // The ISR had shrunk to the leader alone, and that leader is gone: the window
                // where `min.insync.replicas` and unclean election decide what survives.
                if from.is_some()
                    && to != from
                    && (*unclean || (to.is_none() && isr.as_slice() == [from.unwrap_or_default()]))
                {
                    self.ctx.sometimes("kafka.isr_of_one_leader_lost");
                }
                let fields = json!({ "tp": tp.to_string(), "from": from, "to": to, "epoch": leader_epoch, "isr": isr, "unclean": unclean });
                ("kafka.leader_changed", fields)
            }
            Applied::IsrChanged { tp, from, to } => {
                self.ctx.sometimes(if to.len() < from.len() { "kafka.isr_shrink" } else { "kafka.isr_expand" });
                ("kafka.isr_changed", json!({ "tp": tp.to_string(), "from": from, "to": to }))
            }
            Applied::BrokerFenced(b) => {
                self.ctx.sometimes("kafka.broker_fenced");
                ("kafka.broker_fenced", json!({ "broker": b }))
            }
            Applied::BrokerUnfenced(b) => ("kafka.broker_unfenced", json!({ "broker": b })),
            Applied::BrokerRegistered(b) => ("kafka.broker_registered", json!({ "broker": b })),
            Applied::TopicCreated(t) => ("kafka.topic_created", json!({ "topic": t })),
        };
        self.ctx.trace(kind, fields);
    }

    fn handle(&mut self, req: ControllerRequest) -> ControllerResponse {
        if !self.core.is_active() {
            return ControllerResponse::NotController { leader: self.consensus.status().leader };
        }
        match req {
            ControllerRequest::Heartbeat(hb) => {
                if self.core.heartbeat(self.ctx.clock.now_ms(), &hb) {
                    ControllerResponse::Heartbeat { image: self.core.image().clone() }
                } else {
                    ControllerResponse::StaleIncarnation
                }
            }
            ControllerRequest::AlterPartition(alter) => match self.core.alter_partition(alter) {
                Ok(()) => ControllerResponse::AlterQueued,
                Err(reason) => ControllerResponse::AlterRejected { reason },
            },
        }
    }

    fn tick(&mut self, done: &mpsc::UnboundedSender<u64>) {
        let status = self.consensus.status();
        if self.core.is_active() && status.role != Some(Role::Leader) {
            self.core.deactivate();
            self.ctx.set_role(&self.active_role, false);
            self.ctx.trace("kafka.controller_resigned", json!({ "term": status.term }));
        }
        let Some((token, records)) = self.core.decide(self.ctx.clock.now_ms()) else {
            return;
        };
        let data = serde_json::to_vec(&records).expect("metadata records serialize");
        let (consensus, done) = (self.consensus.clone(), done.clone());
        tokio::spawn(async move {
            let _ = consensus.propose(data).await;
            let _ = done.send(token);
        });
    }
}

/// The controller listener: one request at a time per connection, idle ones closed after 30 s.
async fn listen(net: Net, tx: mpsc::UnboundedSender<Pending>) {
    rpc::serve(net, Listen::new(CONTROLLER_PORT, ENCODING), move |req: ControllerRequest| {
        let (reply_tx, reply_rx) = oneshot::channel();
        let queued = tx.send((req, reply_tx)).is_ok();
        async move {
            match reply_rx.await {
                Ok(resp) if queued => Answer::Reply(resp),
                _ => Answer::Close,
            }
        }
    })
    .await;
}
