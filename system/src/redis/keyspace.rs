//! The keyspace: string keys and values with optional absolute expiry times, as Redis keeps
//! them (`PEXPIREAT` semantics: an expiry is a Unix time in ms on the clock of the node that set
//! it, so a skewed master clock expires keys early or late, as it does in Redis).
//!
//! A master deletes expired keys lazily on access and actively in a periodic cycle, and each
//! deletion is propagated to replicas as a `DEL`; a replica never deletes on its own, but
//! answers reads as if a logically expired key were gone (Redis 3.2 and later).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Longest key and value accepted from a client.
pub const MAX_KEY_LEN: usize = 512;
pub const MAX_VALUE_LEN: usize = 64 * 1024;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub value: String,
    /// Unix ms after which the key no longer exists.
    pub expire_at_ms: Option<u64>,
}

impl Entry {
    pub fn expired(&self, now_wall_ms: u64) -> bool {
        self.expire_at_ms.is_some_and(|t| now_wall_ms >= t)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Keyspace {
    entries: BTreeMap<String, Entry>,
}

impl Keyspace {
    /// The live value of `key` at `now_wall_ms` (expired keys read as absent).
    pub fn get(&self, key: &str, now_wall_ms: u64) -> Option<&str> {
        self.entries.get(key).filter(|e| !e.expired(now_wall_ms)).map(|e| e.value.as_str())
    }

    /// The planted `get_seeks` bug ([`super::planted`]): the first entry at or after `key`,
    /// whichever key it belongs to, and whether or not it has expired.
    pub fn seek(&self, key: &str) -> Option<&Entry> {
        self.entries.range(key.to_string()..).next().map(|(_, e)| e)
    }

    /// The entry of `key` as stored, expired or not (the planted `read_before_expire` bug).
    pub fn raw(&self, key: &str) -> Option<&Entry> {
        self.entries.get(key)
    }

    pub fn set(&mut self, key: &str, value: &str, expire_at_ms: Option<u64>) {
        self.entries.insert(key.into(), Entry { value: value.into(), expire_at_ms });
    }

    /// True if the key existed.
    pub fn del(&mut self, key: &str) -> bool {
        self.entries.remove(key).is_some()
    }

    /// Whether `key` is present but logically expired (a master then deletes it and
    /// propagates the deletion).
    pub fn is_expired(&self, key: &str, now_wall_ms: u64) -> bool {
        self.entries.get(key).is_some_and(|e| e.expired(now_wall_ms))
    }

    /// Keys whose expiry has passed, at most `limit` (the active expire cycle's sample).
    pub fn expired_keys(&self, now_wall_ms: u64, limit: usize) -> Vec<String> {
        self.entries.iter().filter(|(_, e)| e.expired(now_wall_ms)).take(limit).map(|(k, _)| k.clone()).collect()
    }

    /// Live keys starting with `prefix`, in order (`SCAN 0 MATCH prefix*`, in one go).
    pub fn keys(&self, prefix: &str, now_wall_ms: u64, limit: usize) -> Vec<String> {
        self.entries
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .filter(|(_, e)| !e.expired(now_wall_ms))
            .take(limit)
            .map(|(k, _)| k.clone())
            .collect()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every entry, for a full resynchronisation (Redis sends an RDB snapshot).
    pub fn snapshot(&self) -> Vec<(String, Entry)> {
        self.entries.iter().map(|(k, e)| (k.clone(), e.clone())).collect()
    }

    pub fn from_snapshot(entries: Vec<(String, Entry)>) -> Self {
        Keyspace { entries: entries.into_iter().collect() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_keys_read_as_absent_until_deleted() {
        let mut k = Keyspace::default();
        k.set("a", "1", Some(1_000));
        k.set("b", "2", None);
        assert_eq!(k.get("a", 999), Some("1"));
        assert_eq!(k.get("a", 1_000), None);
        assert!(k.is_expired("a", 1_000));
        assert_eq!(k.expired_keys(1_000, 10), vec!["a".to_string()]);
        assert_eq!(k.keys("", 1_000, 10), vec!["b".to_string()]);
        assert!(k.del("a"));
        assert!(!k.del("a"));
        assert_eq!(Keyspace::from_snapshot(k.snapshot()), k);
    }
}
