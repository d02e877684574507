//! The shard map the config servers hold: which replica sets are shards (`config.shards`) and
//! which range of the hashed shard key each owns (`config.chunks`).
//!
//! Hashed sharding as in MongoDB: the shard key (the document id) is hashed to 64 bits and the
//! hash space is cut into chunks. MongoDB hashes with the first 64 bits of MD5; this uses FNV-1a
//! followed by a 64-bit finaliser (stable across platforms, spreads near-identical ids). Chunk
//! splits, migrations and the balancer are left out: the map is written once, when the config
//! replica set first elects a primary (standing in for the operator's `addShard` and
//! `shardCollection`), and never changes.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::oplog::Op;
use super::protocol::FoundDoc;

pub const SHARDS_NS: &str = "config.shards";
pub const CHUNKS_NS: &str = "config.chunks";

/// One chunk: hashes from `min` up to the next chunk's `min` live on `shard`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    pub min: u64,
    pub shard: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShardMap {
    /// Shard (replica set) name → member hosts.
    pub shards: BTreeMap<String, Vec<String>>,
    /// Sorted by `min`; the first starts at 0.
    pub chunks: Vec<Chunk>,
}

/// The hashed shard key of `key`.
pub fn hash_key(key: &str) -> u64 {
    let mut h = sim::trace::fnv1a(0xcbf2_9ce4_8422_2325, key.as_bytes());
    // A 64-bit avalanche finaliser (MurmurHash3's fmix64) so that ids differing in their last
    // byte land far apart.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

impl ShardMap {
    /// `chunks_per_shard` equal chunks per shard, dealt round-robin over the hash space.
    pub fn hashed(shards: &[(String, Vec<String>)], chunks_per_shard: u64) -> Self {
        assert!(!shards.is_empty() && chunks_per_shard > 0, "a map needs shards and chunks");
        let total = shards.len() as u64 * chunks_per_shard;
        let width = u64::MAX / total;
        let chunks = (0..total)
            .map(|i| Chunk { min: i * width, shard: shards[(i % shards.len() as u64) as usize].0.clone() })
            .collect();
        ShardMap { shards: shards.iter().cloned().collect(), chunks }
    }

    /// The shard owning `key`.
    pub fn shard_for(&self, key: &str) -> Option<&str> {
        let h = hash_key(key);
        let i = self.chunks.partition_point(|c| c.min <= h).checked_sub(1)?;
        Some(self.chunks[i].shard.as_str())
    }

    pub fn hosts(&self, shard: &str) -> Option<&[String]> {
        self.shards.get(shard).map(Vec::as_slice)
    }

    /// The documents that store this map on the config servers.
    pub fn to_ops(&self) -> Vec<Op> {
        let shards = self.shards.iter().map(|(name, hosts)| Op::Put {
            ns: SHARDS_NS.into(),
            id: name.clone(),
            doc: json!({ "hosts": hosts }).into(),
        });
        let chunks = self.chunks.iter().map(|c| Op::Put {
            ns: CHUNKS_NS.into(),
            id: format!("{:020}", c.min),
            doc: json!({ "min": c.min, "shard": c.shard }).into(),
        });
        shards.chain(chunks).collect()
    }

    /// Reads a map back from `config.shards` and `config.chunks`; None if it is incomplete
    /// (not yet written, or chunks naming unknown shards).
    pub fn from_docs(shards: &[FoundDoc], chunks: &[FoundDoc]) -> Option<Self> {
        let mut map = ShardMap::default();
        for s in shards {
            let hosts: Vec<String> =
                s.doc.get("hosts")?.as_array()?.iter().filter_map(Value::as_str).map(String::from).collect();
            if hosts.is_empty() {
                return None;
            }
            map.shards.insert(s.id.clone(), hosts);
        }
        for c in chunks {
            let min = c.doc.get("min")?.as_u64()?;
            let shard = c.doc.get("shard")?.as_str()?.to_string();
            if !map.shards.contains_key(&shard) {
                return None;
            }
            map.chunks.push(Chunk { min, shard });
        }
        map.chunks.sort_by_key(|c| c.min);
        (map.chunks.first()?.min == 0).then_some(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mongo::oplog::OpTime;

    fn two_shards() -> ShardMap {
        let shards = vec![("a".to_string(), vec!["a1".to_string()]), ("b".to_string(), vec!["b1".to_string()])];
        ShardMap::hashed(&shards, 2)
    }

    #[test]
    fn ids_spread_over_both_shards_and_the_map_round_trips_through_documents() {
        let map = two_shards();
        let on_a = (0..100).filter(|i| map.shard_for(&format!("doc-{i}")) == Some("a")).count();
        assert!((25..75).contains(&on_a), "{on_a} of 100 ids on shard a");
        let docs = |ns: &str| -> Vec<FoundDoc> {
            map.to_ops()
                .into_iter()
                .filter_map(|op| match op {
                    Op::Put { ns: n, id, doc } if n == ns => Some(FoundDoc { id, doc, optime: OpTime::ZERO }),
                    _ => None,
                })
                .collect()
        };
        let back = ShardMap::from_docs(&docs(SHARDS_NS), &docs(CHUNKS_NS)).expect("complete map");
        assert_eq!(back, map);
        assert_eq!(ShardMap::from_docs(&docs(SHARDS_NS), &[]), None);
    }
}
