//! Key rotation, sans-IO: which key signs, when a new one is due, when an old one may go.
//!
//! Every auth instance runs the same rule over the `signing_keys` rows it last read:
//! - the key of the highest generation is **current**: it alone signs;
//! - a new generation is **due** when there is no key, or the current one is `rotate_every_ms`
//!   old on this node's wall clock;
//! - an older key **retires** (its row is deleted) once every token it can have signed has
//!   expired: `token_lifetime_ms + grace_ms` after its successor was created. A key stops signing
//!   when its instance learns of the successor, so `grace_ms` must cover the interval at which
//!   instances re-read the table, plus clock skew between instances (checked by
//!   [`RotationPolicy::validate`]).
//!
//! Two instances that find a rotation due at once both try to create generation `n + 1`: the
//! transaction that creates it checks that the row of `n + 1` is absent and that the row of `n`
//! is present, so exactly one commits and the other re-reads and signs with the winner's key
//! (there is never more than one key per generation, hence one current key). The generation only
//! grows: the current key is never retired.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::keys::{row_key, PublicKey, StoredKey, TABLE};
use crate::postgres::data::{Check, Txn, Write};

/// When keys rotate and retire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotationPolicy {
    /// Age at which the current key is replaced.
    pub rotate_every_ms: u64,
    /// How long a token is valid (its `exp_ms - nbf_ms`).
    pub token_lifetime_ms: u64,
    /// Extra time an old key verifies after the last token it signed can have expired.
    pub grace_ms: u64,
}

impl RotationPolicy {
    /// The bounds the rule above relies on: the grace covers an instance's refresh interval and
    /// `skew_ms` of clock skew.
    pub fn validate(&self, refresh_ms: u64, skew_ms: u64) -> Result<(), String> {
        if self.rotate_every_ms == 0 || self.token_lifetime_ms == 0 {
            return Err("rotation interval and token lifetime must be positive".into());
        }
        if self.grace_ms < refresh_ms + skew_ms {
            return Err(format!("grace {} ms is under refresh {refresh_ms} ms + skew {skew_ms} ms", self.grace_ms));
        }
        Ok(())
    }
}

/// What the ring asks its shell to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyAction {
    /// Create the key of this generation (the shell draws it from the node's rng).
    Create { generation: u64 },
    /// Delete this generation's row: no valid token can name it any more.
    Retire { generation: u64 },
}

/// The keys one instance knows, by generation.
#[derive(Clone, Debug, Default)]
pub struct KeyRing {
    keys: BTreeMap<u64, StoredKey>,
}

impl KeyRing {
    /// The ring of the rows read from the table (already validated by [`StoredKey::from_row`]).
    pub fn new(keys: impl IntoIterator<Item = StoredKey>) -> Self {
        KeyRing { keys: keys.into_iter().map(|k| (k.generation, k)).collect() }
    }

    /// The signing key.
    pub fn current(&self) -> Option<&StoredKey> {
        self.keys.values().next_back()
    }

    pub fn public_keys(&self) -> Vec<PublicKey> {
        self.keys.values().map(StoredKey::public).collect()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// What is due at `now_ms` (this node's wall clock) under `policy`: retirements first, then
    /// at most one creation.
    pub fn plan(&self, policy: &RotationPolicy, now_ms: u64) -> Vec<KeyAction> {
        let mut actions = Vec::new();
        let gens: Vec<&StoredKey> = self.keys.values().collect();
        for pair in gens.windows(2) {
            let (old, successor) = (pair[0], pair[1]);
            let retire_at = successor.created_ms.saturating_add(policy.token_lifetime_ms + policy.grace_ms);
            if now_ms >= retire_at {
                actions.push(KeyAction::Retire { generation: old.generation });
            }
        }
        match self.current() {
            None => actions.push(KeyAction::Create { generation: 1 }),
            Some(k) if now_ms >= k.created_ms.saturating_add(policy.rotate_every_ms) => {
                actions.push(KeyAction::Create { generation: k.generation + 1 })
            }
            Some(_) => {}
        }
        actions
    }
}

/// The transaction creating `key`: it commits only if its generation is new and follows the
/// generation the creator saw as current (so a creator with a stale view loses the race).
pub fn create_txn(id: String, key: &StoredKey) -> Txn {
    let mut checks = vec![Check::Absent { table: TABLE, key: row_key(key.generation) }];
    if key.generation > 1 {
        checks.push(Check::Present { table: TABLE, key: row_key(key.generation - 1) });
    }
    Txn { id, checks, writes: vec![key.put()] }
}

/// The transaction retiring `generations`.
pub fn retire_txn(id: String, generations: &[u64]) -> Txn {
    let writes = generations.iter().map(|g| Write::Delete { table: TABLE, key: row_key(*g) }).collect();
    Txn { id, checks: vec![], writes }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::postgres::data::Tables;

    const POLICY: RotationPolicy =
        RotationPolicy { rotate_every_ms: 60_000, token_lifetime_ms: 120_000, grace_ms: 10_000 };

    fn key(generation: u64, created_ms: u64) -> StoredKey {
        StoredKey::generate(generation, created_ms, &mut ChaCha8Rng::seed_from_u64(generation))
    }

    /// Keys as (generation, created at), the time, the actions due.
    type Case = (&'static [(u64, u64)], u64, &'static [KeyAction]);

    #[test]
    fn the_ring_creates_rotates_and_retires_on_schedule() {
        let cases: [Case; 6] = [
            (&[], 0, &[KeyAction::Create { generation: 1 }]),
            (&[(1, 1_000)], 60_999, &[]),
            (&[(1, 1_000)], 61_000, &[KeyAction::Create { generation: 2 }]),
            // Generation 1 signed until generation 2 appeared at 61 s: it verifies until
            // 61 + 120 + 10 s.
            (&[(1, 1_000), (2, 61_000)], 190_999, &[KeyAction::Create { generation: 3 }]),
            (
                &[(1, 1_000), (2, 61_000)],
                191_000,
                &[KeyAction::Retire { generation: 1 }, KeyAction::Create { generation: 3 }],
            ),
            (&[(1, 1_000), (2, 61_000), (3, 121_000)], 121_500, &[]),
        ];
        for (keys, now, want) in cases {
            let ring = KeyRing::new(keys.iter().map(|(g, c)| key(*g, *c)));
            assert_eq!(ring.plan(&POLICY, now), want, "keys {keys:?} at {now}");
        }
        let ring = KeyRing::new([key(2, 61_000), key(1, 1_000)]);
        assert_eq!(ring.current().unwrap().generation, 2, "the highest generation signs");
        assert_eq!(ring.public_keys().len(), 2, "older keys still verify");
    }

    #[test]
    fn two_instances_racing_to_rotate_make_one_current_key() {
        let mut table = Tables::default();
        table.apply(1, 1, &create_txn("a1".into(), &key(1, 0)).writes);
        // Both saw generation 1 as current and found a rotation due.
        let mine = StoredKey::generate(2, 60_000, &mut ChaCha8Rng::seed_from_u64(10));
        let theirs = StoredKey::generate(2, 60_001, &mut ChaCha8Rng::seed_from_u64(11));
        let (a, b) = (create_txn("a2".into(), &mine), create_txn("b2".into(), &theirs));
        assert!(table.check(&a.checks).is_ok());
        table.apply(1, 2, &a.writes);
        assert!(table.check(&b.checks).is_err(), "the loser's check fails");
        // A creator with a stale view (it missed generation 2) cannot skip to 3 over a gap, nor
        // create 2 again.
        assert!(table.check(&create_txn("c".into(), &key(2, 0)).checks).is_err());
        let jump = create_txn("d".into(), &key(4, 0));
        assert!(table.check(&jump.checks).is_err(), "generation 3 is absent, so 4 cannot follow");
        let rows = table.scan(TABLE, "", 10);
        let ring = KeyRing::new(rows.iter().map(|(k, r)| StoredKey::from_row(k, &r.value).unwrap()));
        assert_eq!(ring.current(), Some(&mine));
    }

    #[test]
    fn the_policy_bounds_are_checked() {
        assert!(POLICY.validate(5_000, 5_000).is_ok());
        assert!(POLICY.validate(5_000, 6_000).is_err());
        assert!(RotationPolicy { rotate_every_ms: 0, ..POLICY }.validate(0, 0).is_err());
    }
}
