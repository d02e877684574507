//! The smoke workload: one client appending unique values, following leader hints, retrying on
//! timeouts, and recording what the log acknowledged.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::Rng;
use sim::observation::OpOutcome;
use sim::NodeCtx;
use system::rpc::{Channel, ChannelOptions, Encoding};

use super::history::Acked;
use super::replica::{AppendRequest, Request, Response, CLIENT_PORT};
use super::REPLICAS;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// Concurrent writers: enough that replicas are often mid-fsync when a fault strikes.
const WRITERS: usize = 3;

/// The planted leak: process-global, so a second run of the same seed in the same process
/// sees different values.
static LEAK: AtomicU64 = AtomicU64::new(0);

pub async fn run(mut ctx: NodeCtx, leak: bool) {
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        writers.push(tokio::spawn(writer(ctx.fork(), w, leak)));
    }
    for w in writers {
        let _ = w.await;
    }
}

/// Appends until the run's ending stops the client.
async fn writer(mut ctx: NodeCtx, id: usize, leak: bool) {
    let mut target = REPLICAS[ctx.rng.gen_range(0..REPLICAS.len())].to_string();
    let channel = Channel::new(&mut ctx, ChannelOptions::new(CLIENT_PORT, Encoding::Json));
    let mut seq = 0u64;
    loop {
        seq += 1;
        let salt = if leak { LEAK.fetch_add(1, Ordering::Relaxed) } else { 0 };
        let value = format!("{}-{}-w{id}-{seq}-{salt}", ctx.name, ctx.incarnation);
        // Retry the same value until acknowledged: a retry after a timeout may append it twice,
        // which the checker tolerates (the log is at-least-once for retried appends).
        loop {
            let invoked_ms = ctx.clock.now_ms();
            let response = append(&ctx, &channel, &target, &value).await;
            // What the user saw, for the availability report: a commit is a success, a timeout
            // or a refusal without a leader to follow a failure; a redirect to the leader is
            // part of the same user action and is not counted.
            let ok = matches!(response, Some(Response::Committed { .. }));
            let redirected = matches!(&response, Some(Response::NotLeader { leader: Some(l) }) if *l != target);
            if !redirected {
                let latency_ms = ctx.clock.now_ms().saturating_sub(invoked_ms);
                ctx.observe(&OpOutcome { class: "append".into(), ok, latency_ms });
            }
            match response {
                Some(Response::Committed { index }) => {
                    ctx.observe(&Acked { value: value.clone(), index, replica: target.clone() });
                    break;
                }
                Some(Response::NotLeader { leader: Some(l) }) if l != target => {
                    channel.forget(&target);
                    target = l;
                }
                _ => {
                    channel.forget(&target);
                    target = REPLICAS[ctx.rng.gen_range(0..REPLICAS.len())].to_string();
                    sim::timer::sleep(Duration::from_millis(ctx.rng.gen_range(50..250))).await;
                }
            }
        }
        sim::timer::sleep(Duration::from_millis(ctx.rng.gen_range(20..200))).await;
    }
}

pub(super) async fn append(ctx: &NodeCtx, channel: &Channel, target: &str, value: &str) -> Option<Response> {
    let req = Request::Append(AppendRequest { value: value.to_string(), client_wall_ms: ctx.clock.wall_ms() });
    channel.call(target, &req, REQUEST_TIMEOUT).await.ok()
}
