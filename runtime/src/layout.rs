//! The stack's layout on one host: which server nodes run (those of `steady`, composed by the
//! very builder the simulations use, without its users), where each listens on 127.0.0.1, and
//! how to tell that it is healthy.
//!
//! Every node keeps its well-known ports (PostgreSQL's 5432, Kafka's 9092, every service's 8080
//! and 8081, ...), so on one loopback address they would collide. Each node instead gets a block
//! of [`BLOCK`] consecutive real ports from the base port, in the plan's node order, and each
//! well-known port a slot in it ([`PORT_SLOTS`]); every process computes the same map.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use sim::net::Directory;
use sim::{NodeMain, Plan, Topology};
use system::auth::AuthConfig;
use system::http::health::HEALTH_PORT;
use system::http::HTTP_PORT;
use system::{kafka, mongo, postgres, redis};

/// The well-known ports a node may listen on, in slot order.
pub const PORT_SLOTS: &[u16] = &[
    postgres::dcs_server::DCS_CLIENT_PORT,
    postgres::dcs_server::DCS_RAFT_PORT,
    postgres::protocol::PROXY_PORT,
    postgres::protocol::CLIENT_PORT,
    postgres::protocol::REPLICATION_PORT,
    postgres::protocol::CONTROL_PORT,
    redis::protocol::REDIS_PORT,
    redis::protocol::REPLICATION_PORT,
    postgres::protocol::MEMBER_PORT,
    HTTP_PORT,
    HEALTH_PORT,
    system::objstore::OBJSTORE_PORT,
    kafka::protocol::BROKER_PORT,
    kafka::protocol::CONTROLLER_PORT,
    kafka::protocol::RAFT_PORT,
    redis::protocol::SENTINEL_PORT,
    mongo::protocol::MONGOD_PORT,
];

/// Real ports per node: the slots, and room for a few more.
pub const BLOCK: u16 = 20;
/// The first node's block starts here unless told otherwise: below Linux's ephemeral range
/// (32768 and up), so no outgoing connection holds a port a node needs.
pub const DEFAULT_BASE_PORT: u16 = 20_000;

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Auth on the real runtime: OWASP's argon2id cost (about 20 MiB and two passes, tens of
/// milliseconds per login on one core) and 15-minute tokens under daily key rotation, where the
/// simulation uses the cheapest cost and short lives. The keys are re-read every 2 s, not the
/// production 30 s: an instance that started before PostgreSQL elected its primary becomes
/// healthy (it needs a signing key) at its next read, and a whole stack's start waits for it.
pub fn real_auth(pg_proxies: Vec<String>) -> AuthConfig {
    AuthConfig { key_check_ms: 2_000, ..AuthConfig::production(pg_proxies) }
}

/// How the supervisor tells a node is healthy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// A service: `GET /health` on its health port answers 200.
    Health,
    /// A store member: it accepts connections on this (well-known) port.
    Listen(u16),
}

/// What a node is, for status lines.
#[derive(Clone, Debug)]
pub struct NodeSpot {
    pub name: String,
    pub zone: String,
    pub region: String,
    /// The first real port of its block.
    pub base: u16,
    pub probe: Probe,
}

/// The stack's nodes, their ports and mains.
pub struct Layout {
    plan: Plan,
    nodes: Vec<NodeSpot>,
    balancers: Vec<String>,
    collab: Vec<String>,
    servers: scenarios::stack::build::Servers,
    base_port: u16,
}

#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("base port {base}: {nodes} nodes need ports up to {last}, past 65535")]
    PortsPastEnd { base: u16, nodes: usize, last: u32 },
    #[error("base port {0} is a privileged port (below 1024)")]
    Privileged(u16),
}

impl Layout {
    /// The servers of `steady` on the real runtime, with [`real_auth`].
    pub fn new(base_port: u16) -> Result<Self, LayoutError> {
        if base_port < 1024 {
            return Err(LayoutError::Privileged(base_port));
        }
        let mut spec = scenarios::steady::spec(None);
        spec.auth = real_auth;
        let mut plan = Plan::new(Topology::new(), spec.duration_ms);
        let servers = scenarios::stack::build::add_servers(&spec, &mut plan);
        let count = plan.mains.len();
        let last = u32::from(base_port) + u32::from(BLOCK) * count as u32;
        if last > u32::from(u16::MAX) {
            return Err(LayoutError::PortsPastEnd { base: base_port, nodes: count, last });
        }
        let probe_of = |name: &str| -> Probe {
            let s = &servers;
            let n = &s.names;
            let is = |list: &[String]| list.iter().any(|x| x == name);
            if is(&n.balancers) || is(&n.auth) || is(&n.collab) || is(&n.docs) || is(&n.consumers) {
                Probe::Health
            } else if is(s.pg.members()) {
                Probe::Listen(postgres::protocol::CLIENT_PORT)
            } else if is(s.pg.agents()) {
                Probe::Listen(postgres::protocol::MEMBER_PORT)
            } else if is(s.pg.dcs()) {
                Probe::Listen(postgres::dcs_server::DCS_CLIENT_PORT)
            } else if name == s.pg.proxy() {
                Probe::Listen(postgres::protocol::PROXY_PORT)
            } else if is(&s.mongo.mongods()) {
                Probe::Listen(mongo::protocol::MONGOD_PORT)
            } else if is(s.redis.nodes()) {
                Probe::Listen(redis::protocol::REDIS_PORT)
            } else if is(s.redis.sentinels()) {
                Probe::Listen(redis::protocol::SENTINEL_PORT)
            } else if is(s.kafka.controllers()) {
                Probe::Listen(kafka::protocol::CONTROLLER_PORT)
            } else if is(s.kafka.brokers()) {
                Probe::Listen(kafka::protocol::BROKER_PORT)
            } else {
                // A kind this list does not know yet: fail loudly in tests, not silently here.
                Probe::Listen(HEALTH_PORT)
            }
        };
        let nodes = plan
            .mains
            .iter()
            .enumerate()
            .map(|(i, (name, _))| {
                let place = plan.topology.get(name).expect("every main has a place");
                NodeSpot {
                    name: name.clone(),
                    zone: place.zone.clone(),
                    region: place.region.clone(),
                    base: base_port + BLOCK * i as u16,
                    probe: probe_of(name),
                }
            })
            .collect();
        Ok(Layout {
            balancers: servers.names.balancers.clone(),
            collab: servers.names.collab.clone(),
            servers,
            plan,
            nodes,
            base_port,
        })
    }

    pub fn base_port(&self) -> u16 {
        self.base_port
    }

    /// Every node, in plan order.
    pub fn nodes(&self) -> &[NodeSpot] {
        &self.nodes
    }

    pub fn node(&self, name: &str) -> Option<&NodeSpot> {
        self.nodes.iter().find(|n| n.name == name)
    }

    pub fn balancers(&self) -> &[String] {
        &self.balancers
    }

    /// The stores' clusters and the services' names, as the stack builder made them.
    pub fn servers(&self) -> &scenarios::stack::build::Servers {
        &self.servers
    }

    /// The collaboration instances.
    pub fn collab(&self) -> &[String] {
        &self.collab
    }

    /// The collaboration instance that owns `doc` (`tenant/name`) while every instance is
    /// healthy: the balancers' rendezvous choice.
    pub fn collab_owner(&self, doc: &str) -> Option<&str> {
        system::balancer::rendezvous::owner(doc, self.collab.iter().map(String::as_str))
    }

    /// `name`'s main function.
    pub fn main_of(&self, name: &str) -> Option<NodeMain> {
        self.plan.mains.iter().find(|(n, _)| n == name).map(|(_, main)| main.clone())
    }

    /// Where every node lives: 127.0.0.1, its block of ports.
    pub fn directory(&self) -> Directory {
        let mut dir = Directory::default();
        dir.set_port_slots(PORT_SLOTS);
        for node in &self.nodes {
            dir.insert_block(&node.name, LOOPBACK, node.base);
        }
        dir
    }

    /// The real address of `node`'s well-known `port`.
    pub fn addr(&self, node: &str, port: u16) -> Option<SocketAddr> {
        let spot = self.node(node)?;
        let slot = PORT_SLOTS.iter().position(|p| *p == port)?;
        Some(SocketAddr::new(LOOPBACK, spot.base + slot as u16))
    }

    /// A balancer's front door (HTTP and WebSocket share it).
    pub fn balancer_addr(&self, balancer: &str) -> Option<SocketAddr> {
        self.addr(balancer, HTTP_PORT)
    }

    /// Every real port the stack may listen on, to check they are free before starting.
    pub fn all_ports(&self) -> impl Iterator<Item = u16> + '_ {
        self.nodes.iter().flat_map(|n| (0..PORT_SLOTS.len() as u16).map(move |s| n.base + s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_node_has_its_own_ports_and_a_known_probe() {
        let layout = Layout::new(DEFAULT_BASE_PORT).unwrap();
        assert!(PORT_SLOTS.len() <= BLOCK as usize);
        let ports: Vec<u16> = layout.all_ports().collect();
        let unique: std::collections::BTreeSet<u16> = ports.iter().copied().collect();
        assert_eq!(ports.len(), unique.len());
        for node in layout.nodes() {
            assert_ne!(node.probe, Probe::Listen(HEALTH_PORT), "{} has no probe", node.name);
            assert!(layout.main_of(&node.name).is_some());
        }
        assert_eq!(layout.balancers().len(), 3);
        let dir = layout.directory();
        let lb = layout.balancer_addr("lb-1").unwrap();
        assert_eq!(dir.addr("lb-1", HTTP_PORT).unwrap(), lb);
        assert!(layout.collab_owner("acme/doc-1").is_some());
    }

    #[test]
    fn a_base_port_too_high_or_too_low_is_refused() {
        assert!(matches!(Layout::new(65_000), Err(LayoutError::PortsPastEnd { .. })));
        assert!(matches!(Layout::new(80), Err(LayoutError::Privileged(80))));
    }

    #[test]
    fn the_real_auth_settings_are_valid() {
        real_auth(vec!["pg-proxy".into()]).validate().unwrap();
    }
}
