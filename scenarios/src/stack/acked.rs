//! A set of (client, clock) ranges: what an editor saw acknowledged, merged as it arrives.

use std::collections::BTreeMap;

use super::ydoc::Sv;

/// A range of one client's clocks, `start..end` (end exclusive): the stack's form of
/// `system::collab::protocol::AckRange`, as observations record it and checkers read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct ClockRange {
    pub client: u64,
    pub start: u32,
    pub end: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RangeSet {
    /// Per client, disjoint and non-adjacent `start..end` ranges in order.
    by_client: BTreeMap<u64, Vec<(u32, u32)>>,
}

impl RangeSet {
    pub fn insert(&mut self, r: ClockRange) {
        if r.start >= r.end {
            return;
        }
        let v = self.by_client.entry(r.client).or_default();
        v.push((r.start, r.end));
        v.sort_unstable();
        let mut merged: Vec<(u32, u32)> = Vec::with_capacity(v.len());
        for &(s, e) in v.iter() {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        *v = merged;
    }

    pub fn ranges(&self) -> Vec<ClockRange> {
        self.by_client
            .iter()
            .flat_map(|(c, v)| v.iter().map(move |&(start, end)| ClockRange { client: *c, start, end }))
            .collect()
    }

    /// One client's ranges, `start..end` in order.
    pub fn of(&self, client: u64) -> &[(u32, u32)] {
        self.by_client.get(&client).map_or(&[], Vec::as_slice)
    }

    /// Clocks counted over every range.
    pub fn len(&self) -> u64 {
        self.by_client.values().flatten().map(|(s, e)| u64::from(e - s)).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.by_client.is_empty()
    }

    /// The ranges (or parts of them) a state vector does not cover: acknowledged but absent.
    pub fn missing_from(&self, sv: &Sv) -> Vec<ClockRange> {
        self.ranges()
            .into_iter()
            .filter_map(|r| {
                let have = sv.get(&r.client).copied().unwrap_or(0);
                (have < r.end).then(|| ClockRange { start: r.start.max(have), ..r })
            })
            .collect()
    }
}

impl FromIterator<ClockRange> for RangeSet {
    fn from_iter<I: IntoIterator<Item = ClockRange>>(iter: I) -> Self {
        let mut s = RangeSet::default();
        for r in iter {
            s.insert(r);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(client: u64, start: u32, end: u32) -> ClockRange {
        ClockRange { client, start, end }
    }

    #[test]
    fn merges_and_finds_what_a_state_vector_lacks() {
        let s: RangeSet =
            [r(1, 5, 8), r(1, 0, 3), r(1, 3, 5), r(2, 0, 4), r(1, 10, 12), r(3, 2, 2)].into_iter().collect();
        assert_eq!(s.ranges(), vec![r(1, 0, 8), r(1, 10, 12), r(2, 0, 4)]);
        assert_eq!(s.len(), 14);
        assert_eq!(s.missing_from(&Sv::from([(1, 11), (2, 4)])), vec![r(1, 11, 12)]);
        assert_eq!(s.missing_from(&Sv::from([(1, 6)])), vec![r(1, 6, 8), r(1, 10, 12), r(2, 0, 4)]);
    }
}
