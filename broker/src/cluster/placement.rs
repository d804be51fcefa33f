//! Replica placement: which brokers hold each partition of a new topic.
//!
//! Kafka's rack-aware assignment, re-derived: brokers are ordered alternating across racks
//! (rack a, rack b, rack c, rack a, ...), partition `p`'s first replica (its preferred leader) is
//! the broker at `(start + p) % n`, so leaders are balanced; further replicas walk the list with a
//! shift that grows every `n` partitions (so follower sets differ between partitions), skipping a
//! broker whose rack already holds a replica until every rack holds one, and never repeating a
//! broker. Only unfenced brokers are candidates. Brokers without a rack share one unnamed rack,
//! which makes the algorithm degrade to Kafka's non-rack-aware one.

use std::collections::{BTreeMap, BTreeSet};

/// Why a placement is impossible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PlacementError {
    /// Replication factor below 1.
    ReplicationFactorTooSmall(i32),
    /// More replicas than unfenced brokers.
    NotEnoughBrokers {
        replication_factor: i32,
        available: usize,
    },
}

/// A candidate broker: id and rack.
pub(crate) type Candidate = (i32, Option<String>);

/// Orders brokers alternating across racks: racks sorted by name, brokers sorted by id in each.
pub(crate) fn rack_alternated(brokers: &[Candidate]) -> Vec<i32> {
    let mut by_rack: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (id, rack) in brokers {
        by_rack
            .entry(rack.as_deref().unwrap_or(""))
            .or_default()
            .push(*id);
    }
    for ids in by_rack.values_mut() {
        ids.sort_unstable();
    }
    let longest = by_rack.values().map(Vec::len).max().unwrap_or(0);
    let mut out = Vec::with_capacity(brokers.len());
    for i in 0..longest {
        for ids in by_rack.values() {
            if let Some(id) = ids.get(i) {
                out.push(*id);
            }
        }
    }
    out
}

/// Assigns replicas to partitions `first_partition .. first_partition + count`.
/// `start` rotates where the first leader lands (the controller uses a per-topic value).
pub(crate) fn assign(
    brokers: &[Candidate],
    first_partition: usize,
    count: usize,
    replication_factor: i32,
    start: usize,
) -> Result<Vec<Vec<i32>>, PlacementError> {
    if replication_factor < 1 {
        return Err(PlacementError::ReplicationFactorTooSmall(
            replication_factor,
        ));
    }
    let rf = replication_factor as usize;
    if rf > brokers.len() {
        return Err(PlacementError::NotEnoughBrokers {
            replication_factor,
            available: brokers.len(),
        });
    }
    let list = rack_alternated(brokers);
    let n = list.len();
    let rack_of: BTreeMap<i32, &str> = brokers
        .iter()
        .map(|(id, r)| (*id, r.as_deref().unwrap_or("")))
        .collect();
    let num_racks = rack_of.values().collect::<BTreeSet<_>>().len();
    let start = start % n;
    let mut shift = start;
    let mut out = Vec::with_capacity(count);
    for p in first_partition..first_partition + count {
        if p > 0 && p % n == 0 {
            shift += 1;
        }
        let first = (p + start) % n;
        let leader = list[first];
        let mut replicas = vec![leader];
        let mut racks: BTreeSet<&str> = BTreeSet::from([rack_of[&leader]]);
        let mut k = 0usize;
        while replicas.len() < rf && k < n * n + n {
            let idx = if n == 1 {
                first
            } else {
                (first + 1 + (shift * num_racks + k) % (n - 1)) % n
            };
            let b = list[idx];
            let rack = rack_of[&b];
            if (!racks.contains(rack) || racks.len() == num_racks) && !replicas.contains(&b) {
                replicas.push(b);
                racks.insert(rack);
            }
            k += 1;
        }
        out.push(replicas);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn racked(spec: &[(i32, &str)]) -> Vec<Candidate> {
        spec.iter()
            .map(|(id, r)| (*id, Some(r.to_string())))
            .collect()
    }

    #[test]
    fn rack_alternated_interleaves_racks() {
        let b = racked(&[(1, "a"), (2, "a"), (3, "b"), (4, "b"), (5, "c")]);
        assert_eq!(rack_alternated(&b), vec![1, 3, 5, 2, 4]);
    }

    #[test]
    fn replicas_are_distinct_and_span_racks() {
        let b = racked(&[(1, "a"), (2, "a"), (3, "b"), (4, "b"), (5, "c"), (6, "c")]);
        for start in 0..6 {
            let a = assign(&b, 0, 24, 3, start).unwrap();
            for reps in &a {
                let set: BTreeSet<_> = reps.iter().collect();
                assert_eq!(set.len(), 3, "distinct brokers in {reps:?}");
                let racks: BTreeSet<_> = reps
                    .iter()
                    .map(|r| b.iter().find(|x| x.0 == *r).unwrap().1.clone())
                    .collect();
                assert_eq!(racks.len(), 3, "three racks in {reps:?}");
            }
        }
        // Two racks, RF 3: spans both racks.
        let b = racked(&[(1, "a"), (2, "a"), (3, "b"), (4, "b")]);
        for reps in assign(&b, 0, 8, 3, 1).unwrap() {
            let racks: BTreeSet<_> = reps
                .iter()
                .map(|r| if *r <= 2 { "a" } else { "b" })
                .collect();
            assert_eq!(racks.len(), 2, "{reps:?}");
        }
    }

    #[test]
    fn leaders_are_balanced() {
        let b: Vec<Candidate> = (1..=3).map(|id| (id, None)).collect();
        let a = assign(&b, 0, 9, 3, 2).unwrap();
        let mut count = BTreeMap::new();
        for reps in &a {
            *count.entry(reps[0]).or_insert(0) += 1;
        }
        assert_eq!(
            count.values().copied().collect::<Vec<_>>(),
            vec![3, 3, 3],
            "{a:?}"
        );
        assert!(a
            .iter()
            .all(|r| r.len() == 3 && r.iter().collect::<BTreeSet<_>>().len() == 3));
    }

    #[test]
    fn too_few_brokers_is_an_error() {
        let b: Vec<Candidate> = (1..=2).map(|id| (id, None)).collect();
        assert_eq!(
            assign(&b, 0, 1, 3, 0),
            Err(PlacementError::NotEnoughBrokers {
                replication_factor: 3,
                available: 2
            })
        );
        assert_eq!(
            assign(&b, 0, 1, 0, 0),
            Err(PlacementError::ReplicationFactorTooSmall(0))
        );
    }
}
