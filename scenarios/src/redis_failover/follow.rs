//! Clients follow the Sentinels: once the Sentinels name a new master, clients write to it, and
//! within a bound stop writing anywhere else.
//!
//! Judged from what survives: a write a demoted master acknowledged more than
//! `follow_bound_ms` after the Sentinels had moved on, and that the final master no longer holds,
//! was lost to a client that did not follow (Redis throws a demoted master's writes away when it
//! resynchronises from the new one). Writes acknowledged before that bound are the price of
//! asynchronous replication and Sentinel's detection time, recorded but allowed. The final
//! read-back must come from the master the Sentinels' durable configuration names.

use std::collections::BTreeSet;

use sim::Outcome;
use system::redis::RedisCluster;

use super::checker::{acks, read_back, Ack, SentinelView, LIST_AT_MOST};
use crate::scenario::{Checker, Verdict};

pub struct FollowChecker {
    pub redis: RedisCluster,
    /// How long clients may keep writing to a master the Sentinels have replaced.
    pub follow_bound_ms: u64,
    /// Clients stop writing here; a new master named too late to be written to owes nothing.
    pub writers_stop_ms: u64,
}

impl Checker for FollowChecker {
    fn check(&self, outcome: &Outcome, verdict: &mut Verdict) {
        let (view, acks, back) = outcome
            .observations(|o| (SentinelView::read(o, &self.redis), acks(o, &self.redis), read_back(o, &self.redis)));
        self.new_masters_written(&view, &acks, verdict);
        let Some((back_ms, node, keys)) = back else { return };
        let configured = self.redis.configured_master(&outcome.world);
        if node != configured {
            verdict.violation(
                "clients did not follow",
                format!("the final read-back was served by {node}; the Sentinels' configuration names {configured}"),
            );
        }
        let kept: BTreeSet<&str> = keys.iter().map(String::as_str).collect();
        let survivors: Vec<Ack> = acks.into_iter().filter(|a| a.outlives(back_ms)).collect();
        self.demoted_writes(outcome, &view, &survivors, &kept, verdict);
    }
}

impl FollowChecker {
    /// Every master the Sentinels named early enough took writes after it was named.
    fn new_masters_written(&self, view: &SentinelView, acks: &[Ack], verdict: &mut Verdict) {
        let mut named: Vec<(&str, u64)> = Vec::new();
        for s in &view.switches {
            if !named.iter().any(|(to, _)| *to == s.to.as_str()) {
                named.push((&s.to, s.t_ms));
            }
        }
        for (to, since) in named {
            let judged_by = since + self.follow_bound_ms;
            if judged_by > self.writers_stop_ms || view.master_at(judged_by) != to {
                continue;
            }
            if !acks.iter().any(|a| a.node == to && a.t_ms > since) {
                verdict.violation(
                    "clients did not follow",
                    format!("no write acknowledged by {to} after the Sentinels named it master at {since} ms"),
                );
            }
        }
    }

    /// Writes acknowledged by a node the Sentinels had replaced, and lost (of those whose TTL
    /// outlives the read-back).
    fn demoted_writes(
        &self,
        outcome: &Outcome,
        view: &SentinelView,
        acks: &[Ack],
        kept: &BTreeSet<&str>,
        v: &mut Verdict,
    ) {
        let mut demoted = 0;
        let mut late = Vec::new();
        let mut latest_ms = 0;
        for a in acks {
            let (master, epoch, since) = view.at(a.t_ms);
            if a.node == master {
                continue;
            }
            demoted += 1;
            let after_ms = a.t_ms - since;
            latest_ms = latest_ms.max(after_ms);
            if after_ms > self.follow_bound_ms && !kept.contains(a.key.as_str()) {
                late.push(format!(
                    "{} acknowledged by {} at {} ms, {after_ms} ms after the Sentinels named {master} (epoch {epoch}), \
                     is not on the final master",
                    a.key, a.node, a.t_ms
                ));
            }
        }
        v.metric("writes_to_demoted_master", demoted as f64);
        v.metric("demoted_master_write_after_switch_max_ms", latest_ms as f64);
        if demoted > 0 {
            outcome.world.sometimes("redis.writes_to_demoted_master");
        }
        v.violations_upto("write to demoted master", late, LIST_AT_MOST);
    }
}
