//! The smoke verifier: started when the run's ending restarts the replicas after the final power
//! loss, it reads what the log recovered. It first commits a barrier entry through the client
//! protocol (so a leader of the new term has committed everything before it), then reads each
//! replica's applied log up to the barrier and records it as a [`RecoveredLog`].
//!
//! A replica it cannot read before the run stops is simply not recorded; the checker reports it.

use std::time::Duration;

use sim::NodeCtx;
use system::rpc::{Channel, ChannelOptions, Encoding};

use super::client::append;
use super::history::RecoveredLog;
use super::replica::{Request, Response, CLIENT_PORT};
use super::REPLICAS;

const READ_TIMEOUT: Duration = Duration::from_secs(2);
const RETRY: Duration = Duration::from_millis(200);

pub async fn run(mut ctx: NodeCtx) {
    let channel = Channel::new(&mut ctx, ChannelOptions::new(CLIENT_PORT, Encoding::Json));
    let upto = barrier(&ctx, &channel).await;
    // Round after round over the replicas not read yet: one that never recovers must not keep
    // the others from being read.
    let mut unread: Vec<&str> = REPLICAS.to_vec();
    while !unread.is_empty() {
        let mut still = Vec::new();
        for replica in unread {
            let read = Request::ReadApplied { upto };
            match channel.call(replica, &read, READ_TIMEOUT).await {
                Ok(Response::Applied { entries }) => {
                    ctx.observe(&RecoveredLog { replica: replica.to_string(), upto, entries })
                }
                _ => {
                    // A connection that failed may be stuck (a restarted peer): dial afresh.
                    channel.forget(replica);
                    still.push(replica);
                }
            }
        }
        unread = still;
        if !unread.is_empty() {
            sim::timer::sleep(RETRY).await;
        }
    }
}

/// Appends the barrier until the log commits it; its index.
async fn barrier(ctx: &NodeCtx, channel: &Channel) -> u64 {
    let value = format!("{}-barrier", ctx.name);
    let mut next = 0;
    let mut target = REPLICAS[next].to_string();
    loop {
        match append(ctx, channel, &target, &value).await {
            Some(Response::Committed { index }) => return index,
            Some(Response::NotLeader { leader: Some(l) }) if l != target => target = l,
            _ => {
                channel.forget(&target);
                next = (next + 1) % REPLICAS.len();
                target = REPLICAS[next].to_string();
                sim::timer::sleep(RETRY).await;
            }
        }
    }
}
