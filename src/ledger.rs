//! The delivery ledger: what was acknowledged and what each consumer group received, per
//! message identity (producer index, sequence number), in compact roaring bitmaps.
//!
//! Sequences of one producer are dense (0, 1, 2, ...), so a roaring bitmap stores 1 M of them in
//! about 130 KiB; the whole ledger of a 1 GiB run costs a few MiB. Every part is mergeable
//! ([`AckLedger::merge`], [`GroupLedger::merge`]) so per-task ledgers fold into one, and ledgers
//! of several kbench hosts running shards of one scenario fold the same way. The verdict
//! ([`verdict`]) is set arithmetic on the bitmaps: nothing is estimated.

use std::collections::BTreeMap;

use roaring::RoaringBitmap;

/// What the producers know: per producer index, the sequences the cluster acknowledged and,
/// for transactional producers, the sequences of aborted transactions.
///
/// A transactional message counts as acknowledged only once its transaction committed; every
/// message sent in a transaction that was aborted (deliberately or after an error, delivered or
/// not) is in `aborted`, and a `read_committed` consumer must never see it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AckLedger {
    /// Producer index → acknowledged (and, when transactional, committed) sequence numbers.
    pub acked: BTreeMap<u32, RoaringBitmap>,
    /// Producer index → sequence numbers sent in aborted transactions.
    pub aborted: BTreeMap<u32, RoaringBitmap>,
}

impl AckLedger {
    /// Records one acknowledgement.
    pub fn ack(&mut self, producer: u32, seq: u32) {
        self.ack_range(producer, seq, seq);
    }

    /// Records the acknowledgements of sequences `first..=last` of `producer`.
    pub fn ack_range(&mut self, producer: u32, first: u32, last: u32) {
        let bits = self.acked.entry(producer).or_default();
        if first == last {
            bits.insert(first);
        } else {
            bits.insert_range(first..=last);
        }
    }

    /// Records the sequences `first..=last` of `producer` as sent in an aborted transaction.
    pub fn abort_range(&mut self, producer: u32, first: u32, last: u32) {
        self.aborted
            .entry(producer)
            .or_default()
            .insert_range(first..=last);
    }

    /// Folds `other` into `self`.
    pub fn merge(&mut self, other: &AckLedger) {
        for (p, bits) in &other.acked {
            *self.acked.entry(*p).or_default() |= bits;
        }
        for (p, bits) in &other.aborted {
            *self.aborted.entry(*p).or_default() |= bits;
        }
    }

    /// Distinct messages of aborted transactions.
    pub fn aborted_total(&self) -> u64 {
        self.aborted.values().map(RoaringBitmap::len).sum()
    }

    /// Distinct acknowledged messages.
    pub fn total(&self) -> u64 {
        self.acked.values().map(RoaringBitmap::len).sum()
    }
}

/// What one consumer group (or one member of it) received.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupLedger {
    /// Producer index → sequences received at least once.
    pub received: BTreeMap<u32, RoaringBitmap>,
    /// Messages received (every copy).
    pub consumed: u64,
    /// Copies beyond the first.
    pub duplicated: u64,
    /// Messages whose sequence was lower than an earlier one of the same producer in the same
    /// partition (as seen by one member).
    pub reordered: u64,
    /// Messages without a kbench identity of this run (other writers, older runs).
    pub foreign: u64,
    /// Messages of this run whose length, checksum or transform did not check out; not counted
    /// as received.
    pub corrupted: u64,
    /// (producer, partition) → last sequence seen, for the order check.
    last: BTreeMap<(u32, i32), u32>,
}

impl GroupLedger {
    /// Records one received message; true when it is the first copy of it.
    pub fn receive(&mut self, producer: u32, seq: u32, partition: i32) -> bool {
        self.consumed += 1;
        let first = self.received.entry(producer).or_default().insert(seq);
        if !first {
            self.duplicated += 1;
        }
        match self.last.entry((producer, partition)) {
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert(seq);
            }
            std::collections::btree_map::Entry::Occupied(mut o) => {
                if seq < *o.get() {
                    self.reordered += 1;
                }
                // A re-delivery after a rebalance restarts from a committed offset: that is a
                // duplicate (counted above), not a reorder, so the order check follows the
                // stream only forward once it has been repeated.
                if seq > *o.get() {
                    o.insert(seq);
                }
            }
        }
        first
    }

    /// Records a message that carries no identity of this run.
    pub fn receive_foreign(&mut self) {
        self.foreign += 1;
    }

    /// Records a message of this run that arrived corrupted.
    pub fn receive_corrupted(&mut self) {
        self.consumed += 1;
        self.corrupted += 1;
    }

    /// Folds another member's (or host's) ledger of the same group into this one. A message
    /// both received counts as a duplicate.
    pub fn merge(&mut self, other: &GroupLedger) {
        for (p, bits) in &other.received {
            let mine = self.received.entry(*p).or_default();
            self.duplicated += mine.intersection_len(bits);
            *mine |= bits;
        }
        self.consumed += other.consumed;
        self.duplicated += other.duplicated;
        self.reordered += other.reordered;
        self.foreign += other.foreign;
        self.corrupted += other.corrupted;
        for (k, v) in &other.last {
            let e = self.last.entry(*k).or_insert(*v);
            *e = (*e).max(*v);
        }
    }
}

impl GroupLedger {
    /// A ledger read back from a run folder ([`read_bitmaps`] and the counters): the order
    /// check's positions are not kept there, so a merged ledger adds no reorders of its own.
    pub fn from_parts(
        received: BTreeMap<u32, RoaringBitmap>,
        [consumed, duplicated, reordered, foreign, corrupted]: [u64; 5],
    ) -> Self {
        GroupLedger {
            received,
            consumed,
            duplicated,
            reordered,
            foreign,
            corrupted,
            last: BTreeMap::new(),
        }
    }
}

/// Writes bitmaps per producer index as `(u32 LE producer, u64 LE length, bitmap in roaring's
/// portable serialization)` records, one after another: readable by any roaring library.
pub fn write_bitmaps(
    bitmaps: &BTreeMap<u32, RoaringBitmap>,
    out: &mut impl std::io::Write,
) -> std::io::Result<()> {
    for (p, bits) in bitmaps {
        out.write_all(&p.to_le_bytes())?;
        out.write_all(&(bits.serialized_size() as u64).to_le_bytes())?;
        bits.serialize_into(&mut *out)?;
    }
    Ok(())
}

/// Reads what [`write_bitmaps`] wrote; a truncated or corrupt record is an error naming its
/// byte offset.
pub fn read_bitmaps(bytes: &[u8]) -> Result<BTreeMap<u32, RoaringBitmap>, String> {
    let mut out = BTreeMap::new();
    let mut at = 0usize;
    while at < bytes.len() {
        let head = bytes
            .get(at..at + 12)
            .ok_or_else(|| format!("truncated record header at byte {at}"))?;
        let p = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        let mut len8 = [0u8; 8];
        len8.copy_from_slice(&head[4..12]);
        let len = usize::try_from(u64::from_le_bytes(len8))
            .map_err(|_| format!("record length too large at byte {at}"))?;
        let body = bytes
            .get(at + 12..(at + 12).saturating_add(len))
            .filter(|b| b.len() == len)
            .ok_or_else(|| format!("truncated bitmap of producer {p} at byte {at}"))?;
        let bits = RoaringBitmap::deserialize_from(body)
            .map_err(|e| format!("bad bitmap of producer {p} at byte {at}: {e}"))?;
        out.insert(p, bits);
        at += 12 + len;
    }
    Ok(out)
}

/// The delivery verdict of one group against the acknowledgements.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupVerdict {
    /// Distinct acknowledged messages.
    pub acked: u64,
    /// Messages received (every copy).
    pub consumed: u64,
    /// Acknowledged but never received.
    pub lost: u64,
    /// Copies beyond the first.
    pub duplicated: u64,
    /// Received but never acknowledged (and not of an aborted transaction).
    pub unexpected: u64,
    /// Out of per-producer order within a partition.
    pub reordered: u64,
    /// Distinct messages of aborted transactions that were received.
    pub aborted_seen: u64,
    /// Messages received corrupted (length, checksum or transform).
    pub corrupted: u64,
}

/// Compares what a group received with what was acknowledged.
pub fn verdict(acks: &AckLedger, group: &GroupLedger) -> GroupVerdict {
    let empty = RoaringBitmap::new();
    let mut lost = 0;
    let mut unexpected = 0;
    for (p, acked) in &acks.acked {
        let got = group.received.get(p).unwrap_or(&empty);
        lost += acked.difference_len(got);
    }
    let mut aborted_seen = 0;
    for (p, got) in &group.received {
        let acked = acks.acked.get(p).unwrap_or(&empty);
        let aborted = acks.aborted.get(p).unwrap_or(&empty);
        let not_acked = got - acked;
        aborted_seen += not_acked.intersection_len(aborted);
        unexpected += not_acked.difference_len(aborted);
    }
    GroupVerdict {
        acked: acks.total(),
        consumed: group.consumed,
        lost,
        duplicated: group.duplicated,
        unexpected,
        reordered: group.reordered,
        aborted_seen,
        corrupted: group.corrupted,
    }
}

/// Approximate heap bytes used by a set of bitmaps (serialized size, which tracks memory).
pub fn approx_bytes(bitmaps: &BTreeMap<u32, RoaringBitmap>) -> usize {
    bitmaps.values().map(RoaringBitmap::serialized_size).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acked(n: u32, producers: u32) -> AckLedger {
        let mut a = AckLedger::default();
        for p in 0..producers {
            for s in 0..n {
                a.ack(p, s);
            }
        }
        a
    }

    fn received_all(n: u32, producers: u32) -> GroupLedger {
        let mut g = GroupLedger::default();
        for p in 0..producers {
            for s in 0..n {
                g.receive(p, s, 0);
            }
        }
        g
    }

    #[test]
    fn clean_run_is_clean() {
        let v = verdict(&acked(1000, 3), &received_all(1000, 3));
        assert_eq!(
            v,
            GroupVerdict {
                acked: 3000,
                consumed: 3000,
                ..Default::default()
            }
        );
    }

    #[test]
    fn detects_a_loss() {
        let a = acked(100, 2);
        let mut g = GroupLedger::default();
        for p in 0..2 {
            for s in 0..100 {
                if !(p == 1 && s == 42) {
                    g.receive(p, s, 0);
                }
            }
        }
        let v = verdict(&a, &g);
        assert_eq!(
            (v.lost, v.duplicated, v.unexpected, v.reordered),
            (1, 0, 0, 0)
        );
    }

    #[test]
    fn detects_a_duplicate() {
        let a = acked(100, 1);
        let mut g = received_all(100, 1);
        g.receive(0, 7, 0);
        let v = verdict(&a, &g);
        assert_eq!(
            (v.lost, v.duplicated, v.unexpected, v.consumed),
            (0, 1, 0, 101)
        );
    }

    #[test]
    fn detects_an_unexpected_message() {
        let mut a = acked(100, 1);
        a.acked.get_mut(&0).unwrap().remove(99); // sent, delivery report failed
        let g = received_all(100, 1);
        let v = verdict(&a, &g);
        assert_eq!((v.lost, v.duplicated, v.unexpected), (0, 0, 1));
        // A producer index nobody acknowledged at all is unexpected too.
        let mut g = received_all(100, 1);
        g.receive(9, 0, 0);
        assert_eq!(verdict(&acked(100, 1), &g).unexpected, 1);
    }

    #[test]
    fn detects_a_reorder_within_a_partition_only() {
        let mut g = GroupLedger::default();
        g.receive(0, 0, 0);
        g.receive(0, 2, 0);
        g.receive(0, 1, 0); // out of order in partition 0
        g.receive(0, 3, 1);
        g.receive(0, 4, 2); // different partitions: no order between them
        assert_eq!(g.reordered, 1);
        let mut a = AckLedger::default();
        for s in 0..5 {
            a.ack(0, s);
        }
        let v = verdict(&a, &g);
        assert_eq!((v.lost, v.duplicated, v.reordered), (0, 0, 1));
    }

    #[test]
    fn merging_members_counts_cross_member_duplicates() {
        let mut m1 = GroupLedger::default();
        let mut m2 = GroupLedger::default();
        for s in 0..60 {
            m1.receive(0, s, 0);
        }
        for s in 50..100 {
            m2.receive(0, s, 0); // 50..60 re-delivered to m2 after a rebalance
        }
        m1.merge(&m2);
        let v = verdict(&acked(100, 1), &m1);
        assert_eq!((v.lost, v.duplicated, v.consumed), (0, 10, 110));
    }

    #[test]
    fn messages_of_aborted_transactions_seen_are_counted_apart() {
        let mut a = acked(100, 1);
        a.abort_range(0, 100, 149); // a transaction of 50 messages, aborted
        let mut g = received_all(100, 1);
        g.receive(0, 120, 0);
        g.receive(0, 121, 0);
        g.receive(0, 500, 0); // never sent in any transaction: unexpected
        let v = verdict(&a, &g);
        assert_eq!((v.lost, v.aborted_seen, v.unexpected), (0, 2, 1));
        assert_eq!(a.aborted_total(), 50);
        let mut b = AckLedger::default();
        b.merge(&a);
        assert_eq!(b.aborted_total(), 50);
    }

    #[test]
    fn bitmaps_round_trip_and_truncation_is_named() {
        let a = acked(1000, 3);
        let mut bytes = Vec::new();
        write_bitmaps(&a.acked, &mut bytes).unwrap();
        assert_eq!(read_bitmaps(&bytes).unwrap(), a.acked);
        let err = read_bitmaps(&bytes[..bytes.len() - 3]).unwrap_err();
        assert!(err.contains("truncated bitmap of producer 2"), "{err}");
        assert!(read_bitmaps(&[]).unwrap().is_empty());
    }

    #[test]
    fn ack_ledgers_merge() {
        let mut a = AckLedger::default();
        a.ack(0, 1);
        let mut b = AckLedger::default();
        b.ack(0, 2);
        b.ack(1, 0);
        a.merge(&b);
        assert_eq!(a.total(), 3);
    }

    #[test]
    fn a_million_messages_cost_little() {
        let a = acked(65_536, 16);
        let g = received_all(65_536, 16);
        assert_eq!(verdict(&a, &g).lost, 0);
        assert!(approx_bytes(&a.acked) + approx_bytes(&g.received) < 4 << 20);
    }

    #[test]
    fn receive_tells_the_first_copy_of_a_message() {
        let mut log = GroupLedger::default();
        assert!(log.receive(1, 7, 0));
        assert!(!log.receive(1, 7, 0));
        assert!(log.receive(2, 7, 0));
        assert_eq!((log.consumed, log.duplicated), (3, 1));
    }
}
