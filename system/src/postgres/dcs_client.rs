//! The DCS client: finds the DCS leader (following hints, then trying members in turn) and
//! retries within a time budget, as Patroni's etcd client does within `retry_timeout`. Its
//! connections are a [`Channel`]'s: cached per member, reconnected after a backoff.

use std::time::Duration;

use sim::NodeCtx;
use tokio::time::Instant;

use super::dcs::{ClusterView, Command, Outcome};
use super::dcs_server::{DcsRequest, DcsResponse, DCS_CLIENT_PORT};
use crate::rpc::{Channel, ChannelOptions, Encoding, RpcError};

/// One attempt against one DCS member.
const ATTEMPT: Duration = Duration::from_millis(600);
const BACKOFF: Duration = Duration::from_millis(100);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DcsError {
    /// No member answered within the budget. A write may or may not have been applied.
    #[error("DCS unavailable: {0}")]
    Unavailable(String),
}

pub struct DcsClient {
    channel: Channel,
    members: Vec<String>,
    leader: Option<String>,
    next: usize,
}

impl DcsClient {
    /// A client of this node (its reconnect jitter is forked from the node's rng).
    pub fn new(ctx: &mut NodeCtx, members: Vec<String>) -> Self {
        let channel = Channel::new(ctx, ChannelOptions::new(DCS_CLIENT_PORT, Encoding::Json));
        DcsClient { channel, members, leader: None, next: 0 }
    }

    pub async fn read(&mut self, budget: Duration) -> Result<ClusterView, DcsError> {
        match self.request(&DcsRequest::Read, budget).await? {
            DcsResponse::View { view } | DcsResponse::Applied { view, .. } => Ok(view),
            other => Err(DcsError::Unavailable(format!("unexpected answer {other:?}"))),
        }
    }

    /// Applies `cmd`; the outcome says whether its compare succeeded.
    pub async fn write(&mut self, cmd: Command, budget: Duration) -> Result<(Outcome, ClusterView), DcsError> {
        match self.request(&DcsRequest::Write { cmd }, budget).await? {
            DcsResponse::Applied { outcome, view } => Ok((outcome, view)),
            other => Err(DcsError::Unavailable(format!("unexpected answer {other:?}"))),
        }
    }

    async fn request(&mut self, req: &DcsRequest, budget: Duration) -> Result<DcsResponse, DcsError> {
        let deadline = Instant::now() + budget;
        let mut last = String::from("no attempt");
        while Instant::now() < deadline {
            let target = self.target();
            let left = deadline.saturating_duration_since(Instant::now()).min(ATTEMPT);
            match self.channel.call(&target, req, left).await {
                Ok(DcsResponse::NotLeader { leader }) => {
                    last = format!("{target} is not the leader");
                    self.leader = leader.filter(|l| *l != target && self.members.contains(l));
                    if self.leader.is_none() {
                        self.next += 1;
                        sim::timer::sleep(BACKOFF).await;
                    }
                }
                Ok(DcsResponse::Unavailable { reason }) => {
                    last = format!("{target}: {reason}");
                    self.leader = None;
                    self.next += 1;
                    sim::timer::sleep(BACKOFF).await;
                }
                Ok(resp) => {
                    self.leader = Some(target);
                    return Ok(resp);
                }
                Err(RpcError::TimedOut) => {
                    last = format!("{target}: timed out");
                    self.leader = None;
                    self.next += 1;
                }
                Err(e) => {
                    last = format!("{target}: {e}");
                    self.leader = None;
                    self.next += 1;
                    sim::timer::sleep(BACKOFF).await;
                }
            }
        }
        Err(DcsError::Unavailable(last))
    }

    fn target(&self) -> String {
        self.leader.clone().unwrap_or_else(|| self.members[self.next % self.members.len()].clone())
    }
}
