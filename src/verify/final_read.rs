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
    let mut progress = Progress::new(ends);
    let deadline = Instant::now() + bound;
    let mut last_transient: Option<String> = None;
    while !progress.done() {
        if Instant::now() >= deadline {
            let (p, at, high) = progress.first_short().unwrap_or((-1, 0, 0));
            let why = last_transient
                .as_deref()
                .map(|e| format!("; last error: {e}"))
                .unwrap_or_default();
            return Err(format!(
                "final read: {topic_name}-{p} not read to its end offset {high} within {bound:?} (at {at}){why}"
            ));
        }
        // Wait up to 100 ms for a message, then take what the client already holds without
        // waiting, up to POLL_BATCH, before the clock is read again.
        let mut wait = Duration::from_millis(100);
        for _ in 0..POLL_BATCH {
            match consumer.poll(wait) {
                Some(Ok(m)) => {
                    let p = m.partition();
                    progress.advance(p, m.offset() + 1);
                    match check.identify(m.payload().unwrap_or_default()) {
                        Identity::Ours(id) => {
                            if ledger.receive(id.producer, id.seq, p) {
                                if let Some(f) =
                                    usize::try_from(p).ok().and_then(|i| found.get_mut(i))
                                {
                                    *f += 1;
                                }
                            }
                        }
                        Identity::Corrupted => ledger.receive_corrupted(),
                        Identity::Foreign => ledger.receive_foreign(),
                    }
                    if progress.done() {
                        break;
                    }
                }
                Some(Err(e)) if topic::is_transient(&e) => {
                    last_transient = Some(e.to_string());
                    break;
                }
                Some(Err(e)) => return Err(format!("final read of {topic_name}: {e}")),
                None => {
                    // Markers and aborted records move the position without a message.
                    if let Ok(pos) = consumer.position() {
                        for e in pos.elements() {
                            if let Offset::Offset(o) = e.offset() {
                                progress.advance(e.partition(), o);
                            }
                        }
                    }
                    break;
                }
            }
            wait = Duration::ZERO;
        }
    }
    Ok((ledger, found))
}

/// Messages taken from the client per look at the clock (the read's deadline).
const POLL_BATCH: usize = 1024;

/// How far the read has come: per partition the next offset and the end offset it must reach,
/// and how many partitions are still short of their end, so that "read to the end?" costs
/// nothing per message.
struct Progress {
    /// Partition → (next offset, end offset). The next offset starts at the log start: a
    /// partition whose end is at or below it has nothing to read.
    offsets: BTreeMap<i32, (i64, i64)>,
    /// Partitions whose next offset is below their end.
    short: usize,
}

impl Progress {
    fn new(ends: BTreeMap<i32, (i64, i64)>) -> Progress {
        Progress {
            short: ends.values().filter(|(low, high)| high > low).count(),
            offsets: ends,
        }
    }

    /// The read of `partition` reached `next` (a partition not being read is ignored).
    fn advance(&mut self, partition: i32, next: i64) {
        if let Some((at, end)) = self.offsets.get_mut(&partition) {
            if *at < *end && next >= *end {
                self.short -= 1;
            }
            *at = (*at).max(next);
        }
    }

    fn done(&self) -> bool {
        self.short == 0
    }

    /// The first partition short of its end: (partition, next offset, end offset).
    fn first_short(&self) -> Option<(i32, i64, i64)> {
        self.offsets
            .iter()
            .find(|(_, (at, end))| at < end)
            .map(|(p, (at, end))| (*p, *at, *end))
    }
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

    #[test]
    fn the_read_is_done_when_every_partition_reached_its_end() {
        // Partition 0 holds offsets 0..3, 1 is empty, 2 starts at 5 (retention) and ends at 7.
        let ends = BTreeMap::from([(0, (0, 3)), (1, (4, 4)), (2, (5, 7))]);
        let mut p = Progress::new(ends);
        assert!(!p.done());
        assert_eq!(p.first_short(), Some((0, 0, 3)));
        p.advance(0, 3);
        p.advance(0, 2); // an older position (a marker seen late) does not move it back
        assert_eq!(p.first_short(), Some((2, 5, 7)));
        p.advance(9, 100); // a partition not read
        p.advance(2, 6);
        assert!(!p.done());
        p.advance(2, 8); // a position past a marker at the end
        p.advance(2, 8);
        assert!(p.done());
        assert_eq!(p.first_short(), None);

        // A topic with nothing to read is done at once.
        assert!(Progress::new(BTreeMap::from([(0, (3, 3))])).done());
    }
}
