//! The offsets check: per partition, the high watermark after the run minus the one before must
//! equal the messages acknowledged into that partition, plus, with transactions, the records
//! that are not committed messages (messages of aborted transactions and one commit/abort marker
//! per transaction and partition, each of which takes an offset). More means the log holds
//! records nobody acknowledged (retries that wrote twice, other writers); fewer means
//! acknowledged records are not in the log.

use std::collections::BTreeMap;

use crate::summary::{OffsetsSummary, PartitionOffsets};

/// Compares watermarks (partition → (low, high)) before and after with acknowledged counts and
/// other transactional records (both indexed by partition).
pub fn check(
    topic: &str,
    before: &BTreeMap<i32, (i64, i64)>,
    after: &BTreeMap<i32, (i64, i64)>,
    acked: &[u64],
    other: &[u64],
) -> (OffsetsSummary, Vec<String>) {
    let mut summary = OffsetsSummary {
        ok: true,
        partitions: Vec::new(),
    };
    let mut failures = Vec::new();
    for (p, (_, end)) in after {
        let start = before.get(p).map_or(0, |w| w.1);
        let acked = usize::try_from(*p)
            .ok()
            .and_then(|i| acked.get(i))
            .copied()
            .unwrap_or(0);
        let extra = usize::try_from(*p)
            .ok()
            .and_then(|i| other.get(i))
            .copied()
            .unwrap_or(0);
        let written = end - start;
        let expected = (acked + extra) as i64;
        let ok = written == expected;
        if !ok {
            summary.ok = false;
            let plus = if extra > 0 {
                format!(" (+ {extra} records of aborted transactions and transaction markers)")
            } else {
                String::new()
            };
            failures.push(format!(
                "offsets: {topic}-{p} grew by {written} offsets ({start} → {end}) but {acked} messages were acknowledged into it{plus} ({})",
                if written > expected { "the log holds unacknowledged records" } else { "acknowledged records are missing from the log" }
            ));
        }
        summary.partitions.push(PartitionOffsets {
            topic: topic.to_string(),
            partition: *p,
            start,
            end: *end,
            acked,
            ok,
        });
    }
    (summary, failures)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_partition_and_numbers() {
        let before: BTreeMap<_, _> = [(0, (0, 0)), (1, (0, 10))].into();
        let after: BTreeMap<_, _> = [(0, (0, 5)), (1, (0, 13))].into();
        let (s, f) = check("t", &before, &after, &[5, 4], &[]);
        assert!(!s.ok);
        assert!(s.partitions[0].ok && !s.partitions[1].ok);
        assert_eq!(f.len(), 1);
        assert!(
            f[0].contains("t-1 grew by 3 offsets (10 → 13) but 4"),
            "{f:?}"
        );
        // Markers and aborted records take offsets too.
        let (s, f) = check("t", &before, &after, &[3, 1], &[2, 2]);
        assert!(s.ok && f.is_empty(), "{f:?}");
    }
}
