//! An etcd-like DCS node: the [`super::dcs`] state machine replicated by [`crate::consensus`]
//! (Raft) over three nodes in three zones, serving the failover manager and clients.
//!
//! Reads are served by the Raft leader from its applied state (they may be slightly stale; every
//! decision that matters is a compare-and-set applied in log order). Writes are proposed, and
//! answered with their outcome once applied. The leader also times leases (see [`super::dcs`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;
use sim::NodeCtx;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::dcs::{ClusterView, Command, DcsState, Outcome};
use crate::consensus::{Consensus, ConsensusConfig, ProposeError};
use crate::raft::{self, Role};
use crate::rpc::{self, Answer, Encoding, Listen};

/// etcd's client port.
pub const DCS_CLIENT_PORT: u16 = 2379;
/// etcd's peer port (Raft traffic).
pub const DCS_RAFT_PORT: u16 = 2380;
const TICK_MS: u64 = 100;
const EXPIRY_CHECK: Duration = Duration::from_millis(100);
const PROPOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Outcomes are kept this many entries back for writers still waiting on them.
const KEEP_OUTCOMES: u64 = 1_000;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DcsRequest {
    Read,
    Write { cmd: Command },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DcsResponse {
    View { view: ClusterView },
    Applied { outcome: Outcome, view: ClusterView },
    NotLeader { leader: Option<String> },
    Unavailable { reason: String },
}

#[derive(Default)]
struct Applied {
    state: DcsState,
    index: u64,
    outcomes: BTreeMap<u64, Outcome>,
    /// When the current lease runs out on this node's clock, with the lease it belongs to.
    lease_deadline: Option<((u64, u64), Instant)>,
}

/// Runs one DCS member. `members` are the DCS node names, this node among them; the Raft
/// leader claims `leader_role`.
pub async fn run(mut ctx: NodeCtx, members: Vec<String>, leader_role: String) {
    let Some(pos) = members.iter().position(|m| *m == ctx.name) else {
        ctx.trace("dcs.not_a_member", json!({ "members": members }));
        return;
    };
    let ids: BTreeMap<u64, String> = members.iter().enumerate().map(|(i, m)| (i as u64 + 1, m.clone())).collect();
    let mut raft_config = raft::Config::new(pos as u64 + 1, ids.keys().copied().collect());
    raft_config.election_timeout_ticks = 10;
    raft_config.heartbeat_ticks = 1;
    let config = ConsensusConfig {
        me: pos as u64 + 1,
        members: ids,
        port: DCS_RAFT_PORT,
        tick_ms: TICK_MS,
        file_prefix: "dcs".into(),
        leader_role,
        raft: raft_config,
    };
    let (consensus, mut committed) = Consensus::start(&mut ctx, config);
    let applied = Arc::new(Mutex::new(Applied::default()));
    // A `Notify`, not a `watch`: tokio's `watch` wakes its waiters in an order drawn from a
    // process-global random stream, which would make runs of one seed differ.
    let moved = Arc::new(Notify::new());
    let (a, m) = (applied.clone(), moved.clone());
    tokio::spawn(async move {
        while let Some(entry) = committed.recv().await {
            apply_entry(&a, &entry);
            m.notify_waiters();
        }
    });
    tokio::spawn(expire_leases(consensus.clone(), applied.clone()));
    serve(ctx, consensus, applied, moved).await;
}

fn lock(a: &Mutex<Applied>) -> std::sync::MutexGuard<'_, Applied> {
    a.lock().unwrap_or_else(|e| e.into_inner())
}

fn apply_entry(applied: &Mutex<Applied>, entry: &raft::Entry) {
    let mut a = lock(applied);
    a.index = entry.index;
    if entry.is_noop() {
        return;
    }
    let outcome = match serde_json::from_slice::<Command>(&entry.data) {
        Ok(cmd) => {
            let outcome = a.state.apply(&cmd);
            if outcome == Outcome::Done && matches!(cmd, Command::Acquire { .. } | Command::Renew { .. }) {
                // Every applied acquisition or renewal restarts the lease on this node's clock.
                a.lease_deadline =
                    a.state.lease().map(|(e, r, ttl)| ((e, r), Instant::now() + Duration::from_millis(ttl)));
            }
            outcome
        }
        Err(e) => Outcome::Refused(format!("malformed command: {e}")),
    };
    a.outcomes.insert(entry.index, outcome);
    let floor = entry.index.saturating_sub(KEEP_OUTCOMES);
    a.outcomes = a.outcomes.split_off(&floor);
}

/// On the Raft leader, proposes `Expire` for a lease whose deadline passed. A node that just
/// became leader restarts the lease at full TTL first, as etcd does.
async fn expire_leases(consensus: Consensus, applied: Arc<Mutex<Applied>>) {
    let mut was_leader = false;
    let mut proposed: Option<(u64, u64)> = None;
    loop {
        sim::timer::sleep(EXPIRY_CHECK).await;
        let is_leader = consensus.status().role == Some(Role::Leader);
        let due = {
            let mut a = lock(&applied);
            let lease = a.state.lease();
            if is_leader && !was_leader {
                a.lease_deadline = lease.map(|(e, r, ttl)| ((e, r), Instant::now() + Duration::from_millis(ttl)));
            }
            match (lease, a.lease_deadline) {
                (Some((e, r, _)), Some((of, at))) if of == (e, r) && Instant::now() >= at => Some((e, r)),
                _ => None,
            }
        };
        was_leader = is_leader;
        let Some((epoch, lease_rev)) = due.filter(|d| is_leader && proposed != Some(*d)) else { continue };
        let cmd = serde_json::to_vec(&Command::Expire { epoch, lease_rev }).expect("commands serialize");
        if let Ok(Ok(_)) = sim::timer::timeout(PROPOSE_TIMEOUT, consensus.propose(cmd)).await {
            proposed = Some((epoch, lease_rev));
        }
    }
}

/// Answers clients and managers on etcd's client port until the node dies.
async fn serve(ctx: NodeCtx, consensus: Consensus, applied: Arc<Mutex<Applied>>, moved: Arc<Notify>) {
    let listen = Listen::new(DCS_CLIENT_PORT, Encoding::Json);
    let error = rpc::serve(ctx.net.clone(), listen, move |req: DcsRequest| {
        let (consensus, applied, moved) = (consensus.clone(), applied.clone(), moved.clone());
        async move { Answer::Reply(handle(&consensus, &applied, &moved, req).await) }
    })
    .await;
    ctx.trace("dcs.serve_failed", json!({ "port": DCS_CLIENT_PORT, "error": error.to_string() }));
}

async fn handle(consensus: &Consensus, applied: &Mutex<Applied>, moved: &Notify, req: DcsRequest) -> DcsResponse {
    let status = consensus.status();
    match req {
        DcsRequest::Read if status.role == Some(Role::Leader) => {
            DcsResponse::View { view: lock(applied).state.view().clone() }
        }
        DcsRequest::Read => DcsResponse::NotLeader { leader: status.leader },
        DcsRequest::Write { cmd: Command::Expire { .. } } => {
            DcsResponse::Unavailable { reason: "expiry is the DCS leader's own decision".into() }
        }
        DcsRequest::Write { cmd } => {
            let data = serde_json::to_vec(&cmd).expect("commands serialize");
            let index = match sim::timer::timeout(PROPOSE_TIMEOUT, consensus.propose(data)).await {
                Ok(Ok(index)) => index,
                Ok(Err(ProposeError::NotLeader(leader))) => return DcsResponse::NotLeader { leader },
                Ok(Err(e)) => return DcsResponse::Unavailable { reason: e.to_string() },
                Err(_) => return DcsResponse::Unavailable { reason: "commit timed out".into() },
            };
            let applied_upto = async {
                loop {
                    let next = moved.notified();
                    if lock(applied).index >= index {
                        return;
                    }
                    next.await;
                }
            };
            if sim::timer::timeout(PROPOSE_TIMEOUT, applied_upto).await.is_err() {
                return DcsResponse::Unavailable { reason: "apply timed out".into() };
            }
            let a = lock(applied);
            match a.outcomes.get(&index) {
                Some(outcome) => DcsResponse::Applied { outcome: outcome.clone(), view: a.state.view().clone() },
                None => DcsResponse::Unavailable { reason: "outcome no longer kept".into() },
            }
        }
    }
}
