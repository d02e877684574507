//! Majority arithmetic over a fixed voter set.

use std::collections::BTreeMap;

use super::NodeId;

/// Size of a majority of `voters`.
pub(super) fn majority(voters: usize) -> usize {
    voters / 2 + 1
}

/// The highest index replicated on a majority, given each voter's match index.
pub(super) fn committed_index(matched: &mut [u64]) -> u64 {
    assert!(!matched.is_empty(), "no voters");
    matched.sort_unstable_by(|a, b| b.cmp(a));
    matched[majority(matched.len()) - 1]
}

/// Outcome of an election so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum VoteResult {
    Won,
    Lost,
    Pending,
}

/// Tallies `votes` (voter -> granted) among `voters` voters.
pub(super) fn tally(votes: &BTreeMap<NodeId, bool>, voters: usize) -> VoteResult {
    let granted = votes.values().filter(|g| **g).count();
    let rejected = votes.len() - granted;
    if granted >= majority(voters) {
        VoteResult::Won
    } else if rejected > voters - majority(voters) {
        VoteResult::Lost
    } else {
        VoteResult::Pending
    }
}
