//! The final read, as Jepsen ends its tests: once the run is over, one fresh reader (no group,
//! every partition assigned, from the first offset) reads the producers' topic to its end and
//! the ledger checks every acknowledged message against what the log *still* holds.
//!
//! The consumer groups only prove that a message was readable at some moment. A broker that
//! loses its data after the groups read it (a data directory wiped at reboot, a replica elected
//! leader with an empty log) leaves offsets pointing at nothing, and the groups' verdict would
//! call that run clean. This check would not: an acknowledged message missing from the final
//! read is `lost`, with the partitions that lost it named.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::ledger::{verdict, AckLedger, GroupLedger};
use crate::measure::Identity;
use crate::summary::{FinalRead, PartitionLoss};
use crate::sut::{topic, ClusterAccess};
use crate::workload::payload::Check;
use crate::workload::FETCH_QUEUE_BACKOFF_MS;

/// Reads `topic` (`partitions` partitions) from the start to its current end, recording every
/// record of this run in a ledger (with per-partition counts of distinct messages found).
/// Bounded by `bound`; a read that does not reach the end in time is an error naming the
/// partition (and the last transient error seen, if any). A broker that is down (a fault left
/// it stopped, or the bootstrap list names it) is not an error by itself: librdkafka reports
/// its refused connections and goes on with the others, and so does the read.
pub fn read(
    cluster: &ClusterAccess,
    topic_name: &str,
    partitions: i32,
    check: &Check,
    bound: Duration,
) -> Result<(GroupLedger, Vec<u64>), String> {
    let ends = topic::watermarks(cluster, topic_name, partitions, Duration::from_secs(10))
        .map_err(|e| format!("final read: {e}"))?;
    let consumer: BaseConsumer = cluster
        .client("kbench-final-read")
        .set("group.id", "kbench-final-read")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("isolation.level", "read_committed")
        .set("fetch.queue.backoff.ms", FETCH_QUEUE_BACKOFF_MS)
        .create()
        .map_err(|e| format!("final read: cannot create the reader: {e}"))?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic_name, p, Offset::Beginning)
            .map_err(|e| format!("final read: partition {p}: {e}"))?;
    }
    consumer
        .assign(&tpl)
        .map_err(|e| format!("final read: cannot assign {topic_name}: {e}"))?;
    let mut ledger = GroupLedger::default();
    let mut found = vec![0u64; partitions.max(0) as usize];
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    let deadline = Instant::now() + bound;
    let mut last_transient: Option<String> = None;
    let done = |next: &BTreeMap<i32, i64>| {
        ends.iter()
            .all(|(p, (low, high))| high <= low || next.get(p).is_some_and(|n| n >= high))
    };
    while !done(&next) {
        if Instant::now() >= deadline {
            let (p, (_, high)) = ends
                .iter()
                .find(|(p, (low, high))| high > low && next.get(p).is_none_or(|n| n < high))
                .map_or((&-1, &(0, 0)), |(p, w)| (p, w));
            let why = last_transient
                .as_deref()
                .map(|e| format!("; last error: {e}"))
                .unwrap_or_default();
            return Err(format!(
                "final read: {topic_name}-{p} not read to its end offset {high} within {bound:?} (at {}){why}",
                next.get(p).copied().unwrap_or(0)
            ));
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let p = m.partition();
                next.insert(p, m.offset() + 1);
                match check.identify(m.payload().unwrap_or_default()) {
                    Identity::Ours(id) => {
                        let new = !ledger
                            .received
                            .get(&id.producer)
                            .is_some_and(|r| r.contains(id.seq));
                        ledger.receive(id.producer, id.seq, p);
                        if new {
                            if let Some(f) = usize::try_from(p).ok().and_then(|i| found.get_mut(i))
                            {
                                *f += 1;
                            }
                        }
                    }
                    Identity::Corrupted => ledger.receive_corrupted(),
                    Identity::Foreign => ledger.receive_foreign(),
                }
            }
            Some(Err(e)) if topic::is_transient(&e) => last_transient = Some(e.to_string()),
            Some(Err(e)) => return Err(format!("final read of {topic_name}: {e}")),
            None => {
                // Markers and aborted records move the position without a message.
                if let Ok(pos) = consumer.position() {
                    for e in pos.elements() {
                        if let Offset::Offset(o) = e.offset() {
                            let n = next.entry(e.partition()).or_insert(0);
                            *n = (*n).max(o);
                        }
                    }
                }
            }
        }
    }
    Ok((ledger, found))
}

/// Judges a final read: every acknowledged message must be in it. Returns the summary part and
/// the failures (one line naming the topic, the numbers and the partitions short of messages).
pub fn judge(
    topic_name: &str,
    acks: &AckLedger,
    acked_per_partition: &[u64],
    ledger: &GroupLedger,
    found: &[u64],
    duration_s: f64,
) -> (FinalRead, Vec<String>) {
    let v = verdict(acks, ledger);
    let partitions: Vec<PartitionLoss> = acked_per_partition
        .iter()
        .enumerate()
        .filter_map(|(p, acked)| {
            let held = found.get(p).copied().unwrap_or(0);
            (held < *acked).then(|| PartitionLoss {
                partition: p as i32,
                acked: *acked,
                held,
                missing: acked - held,
            })
        })
        .collect();
    let mut failures = Vec::new();
    if v.lost > 0 {
        let named = if partitions.is_empty() {
            String::new()
        } else {
            format!(
                ": {}",
                partitions
                    .iter()
                    .map(|l| format!(
                        "{topic_name}-{} holds {} of {} ({} missing)",
                        l.partition, l.held, l.acked, l.missing
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        failures.push(format!(
            "final read: {} of {} acknowledged messages are no longer in the log{}{named}",
            v.lost,
            v.acked,
            if v.corrupted > 0 {
                " (a corrupted copy does not count)"
            } else {
                ""
            }
        ));
    }
    if v.corrupted > 0 {
        failures.push(format!(
            "final read: {} messages in {topic_name} are corrupted (length or CRC32C)",
            v.corrupted
        ));
    }
    let summary = FinalRead {
        read: ledger.consumed,
        lost: v.lost,
        corrupted: v.corrupted,
        partitions,
        duration_s,
        error: None,
    };
    (summary, failures)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_gone_from_the_log_is_lost_and_its_partition_named() {
        let mut acks = AckLedger::default();
        let mut log = GroupLedger::default();
        for s in 0..10 {
            acks.ack(0, s);
            // Partition 1 (odd sequences) lost 3 and 5.
            if s != 3 && s != 5 {
                log.receive(0, s, (s % 2) as i32);
            }
        }
        let (f, failures) = judge("t", &acks, &[5, 5], &log, &[5, 3], 0.1);
        assert_eq!((f.lost, f.read), (2, 8));
        assert_eq!(
            f.partitions,
            vec![PartitionLoss {
                partition: 1,
                acked: 5,
                held: 3,
                missing: 2
            }]
        );
        assert_eq!(failures.len(), 1);
        assert!(
            failures[0].contains("2 of 10 acknowledged")
                && failures[0].contains("t-1 holds 3 of 5"),
            "{failures:?}"
        );
        log.receive(0, 3, 1);
        log.receive(0, 5, 1);
        let (f, failures) = judge("t", &acks, &[5, 5], &log, &[5, 5], 0.1);
        assert_eq!((f.lost, failures.len()), (0, 0));
    }
}
