//! An HAProxy-like TCP proxy in front of the cluster, as Patroni's documentation sets one up:
//! it checks every member's agent (`option httpchk GET /primary`, `http-check expect status
//! 200`) every `inter` and forwards each client connection to a member marked up.
//!
//! The health table ([`Health`]) is sans-IO: `rise` consecutive passing checks mark a member
//! up, `fall` consecutive failures (a 503 or no answer within the interval) mark it down, and a
//! new connection goes to the next member up in round-robin order (HAProxy's default
//! `balance roundrobin`): with one healthy primary, to it. A connection stays on its member for
//! its life (TCP mode); it ends when the member's connection fails, when the member answers
//! "not primary" (a demotion restarts PostgreSQL, which ends every session), or, with
//! `on-marked-down shutdown-sessions`, when the member is marked down.
//!
//! Left out: TLS, `maxconn` and queueing, `slowstart`, the replica listener (clients read from
//! replicas directly), and the stats page. HAProxy's own default keeps established sessions on
//! a member marked down, and so does [`ProxyConfig::shutdown_sessions`] = false; Patroni's
//! template turns `shutdown-sessions` on.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;
use sim::NodeCtx;

use super::agent::MemberNodes;
use super::protocol::{MemberAnswer, MemberRequest, Request, Response, Routed, CLIENT_PORT, MEMBER_PORT, PROXY_PORT};
use crate::rpc::{self, ChannelOptions, DialOptions, Dialer, Encoding, Frames, Listen};

/// How long the proxy waits for a member's answer to a forwarded request (`timeout server`):
/// longer than any client waits, so the client's own deadline decides.
const SERVER_TIMEOUT: Duration = Duration::from_secs(5);
/// An idle client connection is closed after this long (`timeout client`).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT_MS: u64 = 500;

/// The proxy's settings, under HAProxy's names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyConfig {
    pub members: Vec<MemberNodes>,
    /// `inter`: how often each member is checked (also each check's timeout).
    pub check_interval_ms: u64,
    /// `rise`: passing checks in a row that mark a member up.
    pub rise: u32,
    /// `fall`: failed checks in a row that mark a member down.
    pub fall: u32,
    /// `on-marked-down shutdown-sessions`.
    pub shutdown_sessions: bool,
}

impl ProxyConfig {
    /// Patroni's template: `inter 3s fall 3 rise 2` (`inter` as given, scaled with the rest),
    /// without `shutdown-sessions` (HAProxy's default).
    pub fn new(members: Vec<MemberNodes>, check_interval_ms: u64) -> Self {
        ProxyConfig { members, check_interval_ms, rise: 2, fall: 3, shutdown_sessions: false }
    }
}

/// One member's check state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Check {
    up: bool,
    /// Consecutive results agreeing with each other, and whether they passed.
    streak: u32,
    passing: bool,
}

/// A member marked up or down by a check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transition {
    Up(String),
    Down(String),
}

/// The health table (see the module doc). Members start down, as HAProxy's do until their
/// first `rise` checks pass.
#[derive(Clone, Debug)]
pub struct Health {
    rise: u32,
    fall: u32,
    checks: BTreeMap<String, Check>,
    next: usize,
}

impl Health {
    pub fn new(members: impl IntoIterator<Item = String>, rise: u32, fall: u32) -> Self {
        let checks = members.into_iter().map(|m| (m, Check::default())).collect();
        Health { rise: rise.max(1), fall: fall.max(1), checks, next: 0 }
    }

    /// One check of `member` passed (`/primary` answered 200) or failed.
    pub fn checked(&mut self, member: &str, passed: bool) -> Option<Transition> {
        let (rise, fall) = (self.rise, self.fall);
        let c = self.checks.get_mut(member)?;
        if c.passing == passed {
            c.streak = c.streak.saturating_add(1);
        } else {
            c.passing = passed;
            c.streak = 1;
        }
        match (c.up, passed) {
            (false, true) if c.streak >= rise => {
                c.up = true;
                Some(Transition::Up(member.into()))
            }
            (true, false) if c.streak >= fall => {
                c.up = false;
                Some(Transition::Down(member.into()))
            }
            _ => None,
        }
    }

    pub fn is_up(&self, member: &str) -> bool {
        self.checks.get(member).is_some_and(|c| c.up)
    }

    /// The member a new connection goes to: the next one up, round robin.
    pub fn pick(&mut self) -> Option<String> {
        let up: Vec<&String> = self.checks.iter().filter(|(_, c)| c.up).map(|(m, _)| m).collect();
        if up.is_empty() {
            return None;
        }
        let chosen = up[self.next % up.len()].clone();
        self.next = self.next.wrapping_add(1);
        Some(chosen)
    }
}

struct Proxy {
    ctx: NodeCtx,
    config: ProxyConfig,
    health: Mutex<Health>,
    dialer: Dialer,
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs the proxy until its node dies.
pub async fn run(mut ctx: NodeCtx, config: ProxyConfig) {
    let health = Health::new(config.members.iter().map(|m| m.server.clone()), config.rise, config.fall);
    let dialer =
        Dialer::new(&mut ctx, DialOptions::new(CLIENT_PORT, Encoding::Json).connect_timeout_ms(CONNECT_TIMEOUT_MS));
    let proxy = Arc::new(Proxy { ctx, config, health: Mutex::new(health), dialer });
    for member in proxy.config.members.clone() {
        tokio::spawn(proxy.clone().check_loop(member));
    }
    let net = proxy.ctx.net.clone();
    let listen = Listen::new(PROXY_PORT, Encoding::Json);
    rpc::accept_each(net, listen, move |frames, _peer| proxy.clone().session(frames)).await;
}

impl Proxy {
    fn health(&self) -> MutexGuard<'_, Health> {
        locked(&self.health)
    }

    /// Checks `member`'s `/primary` every `inter`.
    async fn check_loop(self: Arc<Self>, member: MemberNodes) {
        let inter = Duration::from_millis(self.config.check_interval_ms);
        let options = ChannelOptions::new(MEMBER_PORT, Encoding::Json);
        loop {
            sim::timer::sleep(inter).await;
            let asked = rpc::call_once::<_, MemberAnswer>(
                &self.ctx.net,
                &member.agent,
                &options,
                &MemberRequest::Primary,
                inter,
            );
            let passed = matches!(asked.await, Ok(MemberAnswer::Health { primary: true }));
            let change = self.health().checked(&member.server, passed);
            match change {
                Some(Transition::Up(m)) => self.ctx.trace("pg.proxy_up", json!({ "member": m })),
                Some(Transition::Down(m)) => self.ctx.trace("pg.proxy_down", json!({ "member": m })),
                None => {}
            }
        }
    }

    /// One client connection: each request goes to the member the connection was given (a
    /// healthy primary when it was given); see the module doc for when that ends.
    async fn session(self: Arc<Self>, mut client: Frames) {
        let mut pinned: Option<(String, Frames)> = None;
        loop {
            let Ok(req) = client.recv_within::<Request>(CLIENT_TIMEOUT).await else { return };
            if let Some((member, _)) = &pinned {
                if self.config.shutdown_sessions && !self.health().is_up(member) {
                    // The member's session was shut down when it was marked down; this request
                    // goes out on a new one, as the client's reconnect would.
                    pinned = None;
                }
            }
            if pinned.is_none() {
                pinned = self.connect().await;
            }
            let Some((member, server)) = pinned.as_mut() else {
                let answer = Routed { node: None, response: Response::NotPrimary { leader: None } };
                if client.send_within(SERVER_TIMEOUT, &answer).await.is_err() {
                    return;
                }
                continue;
            };
            let member = member.clone();
            if server.send_within(SERVER_TIMEOUT, &req).await.is_err() {
                // The member's end was gone before the request left: nothing was written, and
                // the client may try again.
                pinned = None;
                let answer = Routed { node: Some(member), response: Response::NotPrimary { leader: None } };
                if client.send_within(SERVER_TIMEOUT, &answer).await.is_err() {
                    return;
                }
                continue;
            }
            let Ok(response) = server.recv_within::<Response>(SERVER_TIMEOUT).await else { return };
            if matches!(response, Response::NotPrimary { .. }) {
                pinned = None;
            }
            if client.send_within(SERVER_TIMEOUT, &Routed { node: Some(member), response }).await.is_err() {
                return;
            }
        }
    }

    /// A connection to the member the health table picks, if any answers.
    async fn connect(&self) -> Option<(String, Frames)> {
        let member = self.health().pick()?;
        match self.dialer.dial(&member).await {
            Ok(frames) => Some((member, frames)),
            Err(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health() -> Health {
        Health::new(["a".to_string(), "b".to_string()], 2, 3)
    }

    #[test]
    fn rise_and_fall_need_consecutive_results() {
        let mut h = health();
        // (member, passed, transition expected, up afterwards)
        let steps: &[(&str, bool, Option<Transition>, bool)] = &[
            ("a", true, None, false),
            ("a", false, None, false),
            ("a", true, None, false),
            ("a", true, Some(Transition::Up("a".into())), true),
            ("a", false, None, true),
            ("a", false, None, true),
            ("a", true, None, true),
            ("a", false, None, true),
            ("a", false, None, true),
            ("a", false, Some(Transition::Down("a".into())), false),
            ("a", false, None, false),
            ("x", true, None, false),
        ];
        for (i, (m, passed, want, up)) in steps.iter().enumerate() {
            assert_eq!(h.checked(m, *passed), *want, "step {i}");
            assert_eq!(h.is_up(m), *up, "step {i}");
        }
    }

    #[test]
    fn connections_go_to_members_up_in_turn_and_nowhere_when_none_is() {
        let mut h = health();
        assert_eq!(h.pick(), None, "members start down");
        h.checked("b", true);
        h.checked("b", true);
        assert_eq!((h.pick(), h.pick()), (Some("b".into()), Some("b".into())));
        // Two members up (a stalled leader still passing, and a new one): round robin.
        h.checked("a", true);
        h.checked("a", true);
        let picks: Vec<_> = (0..4).map(|_| h.pick().unwrap()).collect();
        assert_eq!(picks.iter().filter(|m| *m == "a").count(), 2, "{picks:?}");
    }
}
