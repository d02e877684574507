//! Regions ⊃ zones ⊃ nodes: where every node of a run lives.
//!
//! Faults follow the topology (kill a node, a zone, a region), as FoundationDB's kill API does,
//! so the topology is the one place that answers "which nodes are in zone X".

use serde::Serialize;

/// One node's place in the world.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NodeSpec {
    pub name: String,
    pub zone: String,
    pub region: String,
}

/// All nodes of a run, in declaration order (which is also the order faults resolve in).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Topology {
    nodes: Vec<NodeSpec>,
}

impl Topology {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a node; names are unique across the world.
    pub fn add(&mut self, name: &str, zone: &str, region: &str) -> &NodeSpec {
        assert!(self.get(name).is_none(), "node {name} declared twice");
        self.nodes.push(NodeSpec { name: name.into(), zone: zone.into(), region: region.into() });
        self.nodes.last().expect("just pushed")
    }

    pub fn get(&self, name: &str) -> Option<&NodeSpec> {
        self.nodes.iter().find(|n| n.name == name)
    }

    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }

    pub fn nodes(&self) -> &[NodeSpec] {
        &self.nodes
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.nodes.iter().map(|n| n.name.as_str())
    }

    pub fn in_zone<'a>(&'a self, zone: &'a str) -> impl Iterator<Item = &'a str> {
        self.nodes.iter().filter(move |n| n.zone == zone).map(|n| n.name.as_str())
    }

    pub fn in_region<'a>(&'a self, region: &'a str) -> impl Iterator<Item = &'a str> {
        self.nodes.iter().filter(move |n| n.region == region).map(|n| n.name.as_str())
    }

    /// Distinct zones in declaration order.
    pub fn zones(&self) -> Vec<&str> {
        let mut zones: Vec<&str> = Vec::new();
        for n in &self.nodes {
            if !zones.contains(&n.zone.as_str()) {
                zones.push(&n.zone);
            }
        }
        zones
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_and_regions_select_their_nodes() {
        let mut t = Topology::new();
        t.add("a", "z1", "r1");
        t.add("b", "z2", "r1");
        t.add("c", "z3", "r2");
        assert_eq!(t.in_zone("z2").collect::<Vec<_>>(), ["b"]);
        assert_eq!(t.in_region("r1").collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(t.zones(), ["z1", "z2", "z3"]);
        assert_eq!(t.index_of("c"), Some(2));
    }
}
