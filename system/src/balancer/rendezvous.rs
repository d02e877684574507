//! Rendezvous (highest random weight) hashing: which collaboration instance owns a document.
//!
//! Every (document, instance) pair gets a score from a fixed hash; the owner of a document is
//! the healthy instance with the highest score (Thaler and Ravishankar's HRW). Two properties
//! follow, and the balancers rely on both:
//! - **Agreement without coordination.** The hash is a pure function of the two names (FNV-1a
//!   64, then the SplitMix64 finaliser to spread similar names such as `collab-1`/`collab-2`
//!   over the whole range), never std's per-process `RandomState`, so every balancer, in every
//!   zone, in every run, computes the same owner from the same healthy set.
//! - **Minimal movement.** Removing an instance moves only the documents it owned (each to its
//!   second-highest score); adding one takes only the documents it now scores highest on.
//!
//! Left out: weights per instance (every collaboration instance is the same size here), and the
//! skeleton/virtual-node variants that make the lookup sub-linear (a handful of instances makes
//! the linear scan cheaper than any index).

/// FNV-1a 64 over the bytes, continuing from `state`.
fn fnv1a(mut state: u64, bytes: &[u8]) -> u64 {
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    for b in bytes {
        state ^= u64::from(*b);
        state = state.wrapping_mul(PRIME);
    }
    state
}

/// SplitMix64's finaliser: every input bit affects every output bit.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The score of `instance` for `key`. The key's length goes in first so that no two distinct
/// (key, instance) pairs hash the same concatenation (`"ab" + "c"` vs `"a" + "bc"`).
pub fn score(key: &str, instance: &str) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    let state = fnv1a(OFFSET, &(key.len() as u64).to_le_bytes());
    let state = fnv1a(state, key.as_bytes());
    mix(fnv1a(state, instance.as_bytes()))
}

/// The owner of `key` among `instances`: the highest score, ties (never seen in practice, but
/// possible) broken by the greater name so the answer never depends on the order given.
pub fn owner<'a>(key: &str, instances: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    instances.into_iter().max_by_key(|i| (score(key, i), *i))
}

/// Every instance, best first: the owner, then who would own `key` if the owner left, and so on.
pub fn ranked<'a>(key: &str, instances: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let mut all: Vec<&str> = instances.into_iter().collect();
    all.sort_by_key(|i| std::cmp::Reverse((score(key, i), *i)));
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instances(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("collab-{i}")).collect()
    }

    fn docs(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("tenant-{}/doc-{i}", i % 7)).collect()
    }

    fn owners(docs: &[String], set: &[&str]) -> Vec<String> {
        docs.iter().map(|d| owner(d, set.iter().copied()).unwrap().to_string()).collect()
    }

    #[test]
    fn the_score_is_a_fixed_function_of_the_names() {
        // Pinned values: a change of hash would make balancers of two builds disagree, and
        // would move every document of a running stack.
        assert_eq!(score("acme/plan", "collab-1"), score("acme/plan", "collab-1"));
        assert_ne!(score("acme/plan", "collab-1"), score("acme/plan", "collab-2"));
        assert_ne!(score("ab", "c"), score("a", "bc"));
        assert_eq!(score("", ""), mix(fnv1a(fnv1a(0xcbf2_9ce4_8422_2325, &[0; 8]), b"")));
        assert_eq!(fnv1a(0xcbf2_9ce4_8422_2325, b"a"), 0xaf63_dc4c_8601_ec8c, "FNV-1a 64 test vector");
    }

    #[test]
    fn no_instance_no_owner() {
        assert_eq!(owner("acme/plan", std::iter::empty()), None);
        assert!(ranked("acme/plan", std::iter::empty()).is_empty());
    }

    #[test]
    fn the_owner_does_not_depend_on_the_order_instances_are_listed() {
        let all = instances(5);
        let forward: Vec<&str> = all.iter().map(String::as_str).collect();
        let backward: Vec<&str> = forward.iter().rev().copied().collect();
        for d in docs(200) {
            assert_eq!(owner(&d, forward.iter().copied()), owner(&d, backward.iter().copied()), "{d}");
            assert_eq!(ranked(&d, forward.iter().copied())[0], owner(&d, backward.iter().copied()).unwrap());
        }
    }

    #[test]
    fn removing_an_instance_moves_only_its_documents_to_their_second_choice() {
        let all = instances(4);
        let set: Vec<&str> = all.iter().map(String::as_str).collect();
        let docs = docs(400);
        let before = owners(&docs, &set);
        for gone in &set {
            let rest: Vec<&str> = set.iter().copied().filter(|i| i != gone).collect();
            let after = owners(&docs, &rest);
            for (d, (b, a)) in docs.iter().zip(before.iter().zip(&after)) {
                if b == gone {
                    assert_eq!(a, ranked(d, set.iter().copied())[1], "{d} goes to its second choice");
                } else {
                    assert_eq!(a, b, "{d} did not belong to {gone} and must not move");
                }
            }
        }
    }

    #[test]
    fn adding_an_instance_takes_only_documents_it_now_owns() {
        let all = instances(4);
        let three: Vec<&str> = all[..3].iter().map(String::as_str).collect();
        let four: Vec<&str> = all.iter().map(String::as_str).collect();
        let docs = docs(400);
        let moved = owners(&docs, &three)
            .iter()
            .zip(owners(&docs, &four))
            .filter(|(b, a)| {
                assert!(*b == a || a == "collab-4", "a document moved between old instances");
                *b != a
            })
            .count();
        // About a quarter of the documents move to the new instance.
        assert!((60..140).contains(&moved), "{moved} of 400 moved");
    }

    #[test]
    fn documents_spread_over_instances() {
        let all = instances(3);
        let set: Vec<&str> = all.iter().map(String::as_str).collect();
        let owned = owners(&docs(900), &set);
        for i in &set {
            let n = owned.iter().filter(|o| o == i).count();
            assert!((200..400).contains(&n), "{i} owns {n} of 900");
        }
    }
}
