//! The Patroni agent's shell: a node of its own next to its server (same zone, same machine in
//! the model's terms), holding the DCS leader key and driving the server through the control
//! channel ([`Control`]). Every decision is the sans-IO [`Manager`]'s; this shell reads the
//! server and the DCS, performs the manager's actions, pets the watchdog, keeps the DCS
//! `/sync` key in step with the server, and serves the REST API the other agents and the proxy
//! ask ([`MemberRequest`]).
//!
//! Why a node of its own: the world's faults act on nodes, so `Fault::Pause` on the agent is a
//! stalled Patroni (SIGSTOP, a hung DCS call, an OOM-killed Python process) with a live
//! postmaster, and no new fault kind is needed. The agent claims its server's roles as well, so
//! faults aimed at "the primary" (kill, isolate, pause) hit the machine: server and agent
//! together; `<prefix>-primary-agent` names the primary's agent alone. What this leaves out:
//! the control channel is a network link here (a local socket in reality); schedules must not
//! cut an agent from its own server.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;
use sim::NodeCtx;
use tokio::time::Instant;

use super::cluster::PgRoles;
use super::dcs::{ClusterView, Command, Outcome};
use super::dcs_client::DcsClient;
use super::manager::{Action as HaAction, Local, LocalRole, Manager, Timing};
use super::protocol::{Control, ControlReply, MemberAnswer, MemberRequest, MemberStatus, CONTROL_PORT, MEMBER_PORT};
use crate::rpc::{self, Answer, Channel, ChannelOptions, Encoding, Listen};

/// One control call (a promotion fsyncs, so it gets longer than a status query).
const CONTROL_TIMEOUT: Duration = Duration::from_millis(1_000);
const MEMBER_POLL_TIMEOUT: Duration = Duration::from_millis(300);
/// While a synchronous standby switch waits for its barrier, how often the agent looks again
/// (Patroni waits for its next loop; this keeps synchronous commits from stalling a whole
/// `loop_wait` on every switch).
const SWITCH_POLL: Duration = Duration::from_millis(50);

/// One member of the cluster: its server and its agent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberNodes {
    pub server: String,
    pub agent: String,
}

/// How an agent is set up.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// The server this agent runs.
    pub server: String,
    /// Every member, this one included.
    pub members: Vec<MemberNodes>,
    pub dcs: Vec<String>,
    pub timing: Timing,
    pub roles: PgRoles,
    /// Patroni's `watchdog.mode`: `required` (true) or `off` (false).
    pub watchdog: bool,
}

struct Agent {
    ctx: NodeCtx,
    config: AgentConfig,
    control: Channel,
    /// Shared with the REST API, which answers `/primary` from the lease.
    manager: Mutex<Manager>,
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs one agent until its node dies.
pub async fn run(mut ctx: NodeCtx, config: AgentConfig) {
    if !config.members.iter().any(|m| m.server == config.server && m.agent == ctx.name) || config.dcs.is_empty() {
        ctx.trace("pg.agent_misconfigured", json!({ "server": config.server, "dcs": config.dcs }));
        return;
    }
    let dcs = DcsClient::new(&mut ctx, config.dcs.clone());
    let control = Channel::new(&mut ctx, ChannelOptions::new(CONTROL_PORT, Encoding::Json));
    let manager = Manager::new(&config.server, config.timing.clone());
    let agent = Arc::new(Agent { ctx, config, control, manager: Mutex::new(manager) });
    tokio::spawn(agent.clone().serve_api());
    agent.ha_loop(dcs).await;
}

impl Agent {
    fn now_ms(&self) -> u64 {
        self.ctx.clock.now_ms()
    }

    fn manager(&self) -> MutexGuard<'_, Manager> {
        locked(&self.manager)
    }

    async fn ask(&self, req: &Control) -> Option<ControlReply> {
        self.control.call(&self.config.server, req, CONTROL_TIMEOUT).await.ok()
    }

    async fn status(&self) -> Option<(Local, MemberStatus)> {
        match self.ask(&Control::Status).await? {
            ControlReply::Status { local, status } => Some((local, status)),
            _ => None,
        }
    }

    async fn ha_loop(self: Arc<Self>, mut dcs: DcsClient) {
        let timing = self.config.timing.clone();
        loop {
            let started = Instant::now();
            let server = self.status().await;
            let view = dcs.read(self.dcs_budget()).await.ok();
            match &server {
                Some((local, _)) => {
                    let leaderless = view.as_ref().is_some_and(|v| v.leader.is_none());
                    let peers = match local.role {
                        LocalRole::Standby { .. } if leaderless => self.poll_members().await,
                        _ => Vec::new(),
                    };
                    let actions = self.manager().cycle(self.now_ms(), view.as_ref(), local, &peers);
                    for action in actions {
                        self.act(action, &mut dcs).await;
                    }
                    self.maintain_sync(&mut dcs, started).await;
                }
                None => self.server_down(view.as_ref(), &mut dcs).await,
            }
            self.claim_roles(view.as_ref()).await;
            let mut next = started + Duration::from_millis(timing.loop_wait_ms);
            // A leader wakes at its deadline too, so a lost lease demotes on time.
            let deadline_ms = self.manager().deadline_ms();
            if deadline_ms > 0 {
                let left = deadline_ms.saturating_sub(self.now_ms());
                next = next.min(Instant::now() + Duration::from_millis(left));
            }
            sim::timer::sleep_until(next).await;
        }
    }

    /// The server does not answer (it crashed, or its node is down): a leader gives the key up
    /// (`master_start_timeout` 0), as Patroni does once it cannot start PostgreSQL.
    async fn server_down(&self, view: Option<&ClusterView>, dcs: &mut DcsClient) {
        self.ctx.trace("pg.agent_server_down", json!({ "server": self.config.server }));
        let me = &self.config.server;
        let held = view.and_then(|v| v.leader.as_ref()).filter(|k| k.holder == *me).map(|k| k.epoch);
        self.manager().on_demoted();
        if let Some(epoch) = held {
            let _ = dcs.write(Command::Release { who: me.clone(), epoch }, self.dcs_budget()).await;
        }
    }

    /// How long one DCS operation may take: `retry_timeout`, but never past a leader's
    /// deadline, so a leader cut off from the DCS demotes on time.
    fn dcs_budget(&self) -> Duration {
        let retry = self.config.timing.retry_timeout_ms;
        let deadline = self.manager().deadline_ms();
        let ms = if deadline > 0 { retry.min(deadline.saturating_sub(self.now_ms())).max(50) } else { retry };
        Duration::from_millis(ms)
    }

    async fn act(&self, action: HaAction, dcs: &mut DcsClient) {
        let retry = self.dcs_budget();
        let me = self.config.server.clone();
        match action {
            HaAction::Renew { epoch } => {
                let sent = self.now_ms();
                match dcs.write(Command::Renew { who: me, epoch }, retry).await {
                    Ok((Outcome::Done, _)) => {
                        self.manager().on_lease(epoch, sent);
                        self.pet_watchdog().await;
                    }
                    Ok((Outcome::Refused(reason), _)) => self.demote(&reason).await,
                    Err(_) => {}
                }
            }
            HaAction::Acquire => {
                let sent = self.now_ms();
                let ttl_ms = self.config.timing.ttl_ms;
                let Ok((Outcome::Done, view)) = dcs.write(Command::Acquire { who: me.clone(), ttl_ms }, retry).await
                else {
                    return;
                };
                let Some(epoch) = view.leader.filter(|k| k.holder == me).map(|k| k.epoch) else { return };
                self.manager().on_lease(epoch, sent);
                // Patroni activates the watchdog before it promotes.
                self.pet_watchdog().await;
                match self.ask(&Control::Promote { epoch }).await {
                    Some(ControlReply::Done) => self.ctx.trace("pg.agent_promoted", json!({ "epoch": epoch })),
                    other => {
                        self.ctx
                            .trace("pg.agent_promote_failed", json!({ "epoch": epoch, "reply": format!("{other:?}") }));
                        self.demote("promotion failed").await;
                        let _ = dcs.write(Command::Release { who: me, epoch }, self.dcs_budget()).await;
                    }
                }
            }
            HaAction::Demote { reason } => self.demote(&reason).await,
            HaAction::Follow { leader, epoch } => {
                let _ = self.ask(&Control::Follow { leader, epoch }).await;
            }
            HaAction::Release { epoch } => {
                let _ = self.ask(&Control::Watchdog { timeout_ms: None }).await;
                let _ = dcs.write(Command::Release { who: me, epoch }, retry).await;
            }
        }
    }

    /// Restarts the server in recovery (it disables the watchdog first).
    async fn demote(&self, reason: &str) {
        self.manager().on_demoted();
        let _ = self.ask(&Control::Demote { reason: reason.into() }).await;
    }

    /// Pets the watchdog after the lease moved (nothing when `watchdog.mode` is off).
    async fn pet_watchdog(&self) {
        if !self.config.watchdog {
            return;
        }
        let timeout_ms = self.manager().watchdog_timeout_ms(self.now_ms());
        let _ = self.ask(&Control::Watchdog { timeout_ms }).await;
    }

    /// The synchronous standby's upkeep: the server picks, the DCS records, the server resumes.
    /// While a switch waits for the new standby to catch up, looks again every [`SWITCH_POLL`]
    /// until this loop's time is up.
    async fn maintain_sync(&self, dcs: &mut DcsClient, started: Instant) {
        let until = started + Duration::from_millis(self.config.timing.loop_wait_ms);
        loop {
            let Some(ControlReply::Sync { write, switching }) = self.ask(&Control::MaintainSync).await else { return };
            if let Some((epoch, standby)) = write {
                let cmd = Command::SetSync { who: self.config.server.clone(), epoch, standby: standby.clone() };
                if let Ok((Outcome::Done, _)) = dcs.write(cmd, self.dcs_budget()).await {
                    let _ = self.ask(&Control::SyncWritten { epoch, standby }).await;
                }
                return;
            }
            if !switching || Instant::now() + SWITCH_POLL >= until {
                return;
            }
            sim::timer::sleep(SWITCH_POLL).await;
        }
    }

    /// Claims the roles faults target, on this node and (through the control channel) on the
    /// server's: the primary's, the synchronous standby's and the asynchronous replicas'.
    async fn claim_roles(&self, view: Option<&ClusterView>) {
        let Some((local, _)) = self.status().await else {
            for role in [&self.config.roles.primary, &self.config.roles.primary_agent] {
                self.ctx.set_role(role, false);
            }
            return;
        };
        let primary = matches!(local.role, LocalRole::Primary { .. });
        self.ctx.set_role(&self.config.roles.primary, primary);
        self.ctx.set_role(&self.config.roles.primary_agent, primary);
        let Some(view) = view else { return };
        let sync = !primary && view.sync.standby.as_deref() == Some(self.config.server.as_str());
        let async_replica = !primary && !sync;
        self.ctx.set_role(&self.config.roles.sync_standby, sync);
        self.ctx.set_role(&self.config.roles.async_replica, async_replica);
        let _ = self.ask(&Control::Roles { sync_standby: sync, async_replica }).await;
    }

    /// Asks every other agent for its server's status (Patroni polls members' REST APIs);
    /// members that do not answer in time are left out, as Patroni leaves them out. A fresh
    /// connection each: members are polled only while the cluster has no leader.
    async fn poll_members(&self) -> Vec<MemberStatus> {
        let options = ChannelOptions::new(MEMBER_PORT, rpc::Encoding::Json);
        let mut out = Vec::new();
        for m in self.config.members.iter().filter(|m| m.server != self.config.server) {
            let asked = rpc::call_once::<_, MemberAnswer>(
                &self.ctx.net,
                &m.agent,
                &options,
                &MemberRequest::Status,
                MEMBER_POLL_TIMEOUT,
            );
            if let Ok(MemberAnswer::Status(status)) = asked.await {
                if status.name == m.server {
                    out.push(status);
                }
            }
        }
        out
    }

    /// The REST API: `/patroni` (the server's status) and `/primary` (the proxy's check).
    async fn serve_api(self: Arc<Self>) {
        let net = self.ctx.net.clone();
        rpc::serve(net, Listen::new(MEMBER_PORT, Encoding::Json), move |req: MemberRequest| {
            let agent = self.clone();
            async move { Answer::Reply(agent.answer(req).await) }
        })
        .await;
    }

    async fn answer(&self, req: MemberRequest) -> MemberAnswer {
        let Some((local, status)) = self.status().await else { return MemberAnswer::Unavailable };
        match req {
            MemberRequest::Status => MemberAnswer::Status(status),
            MemberRequest::Primary => {
                MemberAnswer::Health { primary: self.manager().healthy_primary(self.now_ms(), &local.role) }
            }
        }
    }
}
