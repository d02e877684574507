//! Clients follow the Sentinels: once the Sentinels name a new master, clients write to it within
//! a bound, and within that bound stop writing anywhere else.
//!
//! Judged from what survives: a write a demoted master acknowledged more than
//! `follow_bound_ms` after the Sentinels had moved on, and that the final master no longer holds,
//! was lost to a client that did not follow (Redis throws a demoted master's writes away when it
//! resynchronises from the new one). Writes acknowledged before that bound are the price of
//! asynchronous replication and Sentinel's detection time, recorded but allowed. The final
//! read-back must come from the master the Sentinels' durable configuration names.
//!
//! With `min-replicas-to-write` on, the promise is stronger: a master cut off from its replicas
//! refuses writes once their acknowledgements are `min-replicas-max-lag` old, so no node
//! acknowledges a write more than that lag (plus a second for the re-pointing to reach the
//! replicas) after the Sentinels replaced it, whatever its clients do. The lag is counted from the
//! switch or from the last heal, resume or restart that may have delivered a late acknowledgement
//! (Redis counts a replica as good from when it processes its `REPLCONF ACK`). It relies on the
//! replicas being re-pointed at the new master at the switch (the schedules keep them reachable by
//! a majority of the Sentinels).

use std::collections::BTreeSet;

use sim::{Fault, Outcome};
use system::redis::RedisCluster;

use super::checker::{acks, read_back, Ack, SentinelView, LIST_AT_MOST};
use super::history::CacheObserved;
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
        let configured = self.redis.configured_master(&outcome.world);
        let recovered = outcome.observations(|o| {
            o.of::<CacheObserved>().find_map(|c| match c.value {
                CacheObserved::Recovered { node, .. } if self.redis.nodes().contains(&node) => Some(node),
                _ => None,
            })
        });
        if let Some(node) = recovered.filter(|n| *n != configured) {
            verdict.violation(
                "clients did not follow",
                format!("after the power loss the verifier was served by {node}; the Sentinels' configuration names {configured}"),
            );
        }
        let Some((back_ms, node, keys)) = back else { return };
        if node != configured {
            verdict.violation(
                "clients did not follow",
                format!("the final read-back was served by {node}; the Sentinels' configuration names {configured}"),
            );
        }
        let kept: BTreeSet<&str> = keys.iter().map(String::as_str).collect();
        let all = acks.clone();
        let survivors: Vec<Ack> = acks.into_iter().filter(|a| a.outlives(back_ms)).collect();
        self.demoted_writes(outcome, &view, &survivors, &kept, verdict);
        if self.redis.min_replicas().0 > 0 {
            let wakes = outcome.observations(|o| {
                o.faults()
                    .filter(|f| {
                        matches!(
                            f.value.fault,
                            Fault::HealNetwork | Fault::HealAll | Fault::Resume(_) | Fault::Restart(_)
                        )
                    })
                    .map(|f| (f.t_ms, f.value.nodes.clone()))
                    .collect::<Vec<_>>()
            });
            self.min_replicas_refusals(&view, &all, &wakes, verdict);
        }
    }
}

impl FollowChecker {
    /// Every master the Sentinels named early enough, and kept naming for the bound, took a write
    /// within the bound of being named (clients that look again only after an error stay on a
    /// replaced master they still reach, and write to the new one only once the old is demoted).
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
            if !acks.iter().any(|a| a.node == to && a.t_ms > since && a.t_ms <= judged_by) {
                let first = acks.iter().find(|a| a.node == to && a.t_ms > since).map(|a| a.t_ms);
                verdict.violation(
                    "clients did not follow",
                    format!(
                        "no write acknowledged by {to} within {} ms of the Sentinels naming it master at {since} ms \
                         (the first at {first:?} ms)",
                        self.follow_bound_ms
                    ),
                );
            }
        }
    }

    /// With `min-replicas-to-write`: no write acknowledged by a replaced master once its replicas'
    /// acknowledgements must have gone stale (`wakes`: heals, resumes and restarts, with the
    /// nodes they touched; an empty list touches every node).
    fn min_replicas_refusals(&self, view: &SentinelView, acks: &[Ack], wakes: &[(u64, Vec<String>)], v: &mut Verdict) {
        let bound_ms = self.redis.min_replicas().1 + 1_000;
        let mut late = Vec::new();
        for a in acks {
            let (master, epoch, since) = view.at(a.t_ms);
            if a.node == master {
                continue;
            }
            let touched =
                |(t, nodes): &&(u64, Vec<String>)| *t <= a.t_ms && (nodes.is_empty() || nodes.contains(&a.node));
            let from_ms = wakes.iter().filter(touched).map(|w| w.0).max().unwrap_or(0).max(since);
            if a.t_ms > from_ms + bound_ms {
                late.push(format!(
                    "{} acknowledged by {} at {} ms, {} ms after the Sentinels named {master} (epoch {epoch}) at {since}                      ms, with min-replicas-to-write {} and max lag {} ms",
                    a.key,
                    a.node,
                    a.t_ms,
                    a.t_ms - since,
                    self.redis.min_replicas().0,
                    self.redis.min_replicas().1
                ));
            }
        }
        v.violations_upto("write past min-replicas", late, LIST_AT_MOST);
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
