//! Measurement: per-task counters and HDR histograms, swapped out every sampling interval and
//! merged into [`IntervalRow`]s (the time series) and whole-run totals.
//!
//! Each producer and consumer task owns one meter. The hot path touches only that meter: relaxed
//! atomics for "sent" counts (bumped by the sending thread), and an uncontended mutex around the
//! rest (taken by the producer's delivery reports, which its sending thread serves, or by the
//! consumer loop, and once per interval by the collector). Latency is recorded in microseconds with 3 significant digits
//! ([`latency_histogram`]). A message belongs to the warm-up when its (intended) send time lies
//! before the warm-up end; warm-up values go to the interval histograms (the time series shows
//! them, marked) but not to the whole-run ones.
//!
//! Timestamps are microseconds since the Unix epoch ([`now_us`]) because end-to-end latency
//! compares a time written by a producer with a time read by a consumer, possibly on another
//! host of a sharded run.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crossbeam_utils::CachePadded;

use hdrhistogram::Histogram;

use crate::ledger::{AckLedger, GroupLedger};
use crate::summary::{latency_histogram, IntervalRow};

/// Microseconds since the Unix epoch (0 before it).
pub fn now_us() -> u64 {
    // `clock_gettime` itself, read once or twice per message: `SystemTime::now()` and
    // `duration_since(UNIX_EPOCH)` added a checked subtraction and two normalisations, as many
    // instructions again as the (vDSO) clock read (callgrind, docs/hot-path.md part 7).
    match nix::time::clock_gettime(nix::time::ClockId::CLOCK_REALTIME) {
        Ok(t) => u64::try_from(t.tv_sec()).map_or(0, |s| {
            s * 1_000_000 + u64::try_from(t.tv_nsec() / 1_000).unwrap_or(0)
        }),
        Err(_) => 0,
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One task's latency values, recorded once each: into the open interval's histogram of the
/// measured window, or of values the time series shows but the window does not hold (warm-up
/// messages, another shard's clock). Closing an interval ([`Latencies::close_interval`], the
/// collector, once a second) folds the first into the run's histogram. Recording each value
/// into both an interval and a run histogram cost a second HDR record per message (about 67
/// instructions, docs/hot-path.md part 8).
#[derive(Debug)]
pub struct Latencies {
    /// Open interval, measured window.
    measured: Histogram<u64>,
    /// Open interval, the rest.
    unmeasured: Histogram<u64>,
    /// Closed intervals, measured window.
    run: Histogram<u64>,
}

impl Default for Latencies {
    fn default() -> Self {
        Latencies {
            measured: latency_histogram(),
            unmeasured: latency_histogram(),
            run: latency_histogram(),
        }
    }
}

impl Latencies {
    /// Records one value, µs; `measured`: it belongs to the measured window.
    fn record(&mut self, us: u64, measured: bool) {
        let h = if measured {
            &mut self.measured
        } else {
            &mut self.unmeasured
        };
        let _ = h.record(us);
    }

    /// Closes the open interval: adds all its values to `row` and keeps the measured ones.
    fn close_interval(&mut self, row: &mut Histogram<u64>) {
        let _ = row.add(&self.unmeasured);
        let _ = row.add(&self.measured);
        let _ = self.run.add(&self.measured);
        self.unmeasured.reset();
        self.measured.reset();
    }

    /// Adds the measured window's values so far, the open interval's included, to `into`.
    pub fn add_measured_to(&self, into: &mut Histogram<u64>) {
        let _ = into.add(&self.run);
        let _ = into.add(&self.measured);
    }

    /// The measured window's values so far.
    #[cfg(test)]
    fn measured(&self) -> Histogram<u64> {
        let mut h = latency_histogram();
        self.add_measured_to(&mut h);
        h
    }

    /// Values recorded in the open interval.
    #[cfg(test)]
    fn in_interval(&self) -> u64 {
        self.measured.len() + self.unmeasured.len()
    }
}

/// Start of the measured window (end of the warm-up), shared by every task.
#[derive(Debug, Default)]
pub struct WarmupEnd(AtomicU64);

impl WarmupEnd {
    /// Sets the warm-up end, µs since the epoch.
    pub fn set(&self, us: u64) {
        self.0.store(us, Ordering::Relaxed);
    }
    /// The warm-up end, µs since the epoch (0 until set).
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// One producer task's meter.
#[derive(Debug)]
pub struct ProducerMeter {
    /// Messages and bytes sent: the sending thread adds to them per message, so they sit on a
    /// cache line of their own, away from the lock the report thread takes per acknowledgement
    /// (sharing one made the two threads trade the line back and forth on every message).
    sent: CachePadded<[AtomicU64; 2]>,
    state: CachePadded<Mutex<ProducerState>>,
}

/// What a producer meter holds besides the sent counters.
#[derive(Debug)]
pub struct ProducerState {
    /// Acknowledged messages / bytes in the current interval.
    pub interval_acked: (u64, u64),
    /// Errors in the current interval.
    pub interval_errors: u64,
    /// Produce latency, µs: the current interval (warm-up included) and the measured window.
    pub latency: Latencies,
    /// Acknowledged messages / bytes, whole run.
    pub acked: (u64, u64),
    /// Acknowledged messages / bytes after the warm-up.
    pub measured: (u64, u64),
    /// Messages whose delivery failed.
    pub failed: u64,
    /// (Intended) send → failed delivery report of those messages, µs (whole run).
    pub failed_latency: Histogram<u64>,
    /// Errors by kind.
    pub errors: BTreeMap<String, u64>,
    /// Acknowledged sequence numbers, but for `ack_run` ([`ProducerState::ledger`] has all).
    ledger: AckLedger,
    /// Acknowledged sequences (producer, first, last) not yet in `ledger`. Reports come a batch
    /// at a time and a batch holds consecutive sequences (librdkafka's sticky partitioner gives
    /// a partition a run of messages), so a run goes into the bitmap as one range: a roaring
    /// insert per message was about 100 instructions (docs/hot-path.md part 8).
    ack_run: Option<(u32, u32, u32)>,
    /// Acknowledged messages per partition index.
    pub per_partition: Vec<u64>,
    /// Acknowledged payload bytes (key + value) per partition index.
    pub per_partition_bytes: Vec<u64>,
    /// Time of the last acknowledgement, µs since the epoch.
    pub last_ack_us: u64,
    /// Log records per partition index that are not committed messages: messages of aborted
    /// transactions and transaction markers (one per partition a transaction wrote to).
    pub per_partition_other: Vec<u64>,
    /// Acknowledgements of the open transaction, counted only once it commits.
    pub open_txn: Option<Vec<PendingAck>>,
    /// Transactions so far.
    pub txns: TxnCounts,
    /// Spans of held-up writes (see [`HeldUp`]), in time order, nearby ones merged.
    pub held_up: Vec<HeldUp>,
}

impl ProducerState {
    /// The acknowledged (and, when transactional, committed) sequences so far.
    pub fn ledger(&mut self) -> &AckLedger {
        if let Some((producer, first, last)) = self.ack_run.take() {
            self.ledger.ack_range(producer, first, last);
        }
        &self.ledger
    }

    /// Records an acknowledgement in the ledger: extends the open run, or closes it and opens
    /// another.
    fn ack(&mut self, producer: u32, seq: u32) {
        match &mut self.ack_run {
            Some((p, _, last)) if *p == producer && last.checked_add(1) == Some(seq) => *last = seq,
            run => {
                if let Some((p, first, last)) = run.replace((producer, seq, seq)) {
                    self.ledger.ack_range(p, first, last);
                }
            }
        }
    }
}

/// A write is held up when it is acknowledged more than this long after its (intended) send
/// time, µs, or when it fails.
pub const HELD_UP_US: u64 = 1_000_000;
/// Most spans a producer keeps; later ones merge into the last (a run that is held up that
/// often is described well enough by fewer, longer spans).
const MAX_HELD_UP_SPANS: usize = 10_000;

/// Writes that were held up, from the (intended) send of the first to the acknowledgement or
/// failure of the last; spans less than [`HELD_UP_US`] apart are one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeldUp {
    /// Earliest (intended) send time, µs since the epoch.
    pub from_us: u64,
    /// Latest acknowledgement or failure, µs since the epoch.
    pub to_us: u64,
    /// Writes held up in the span.
    pub messages: u64,
    /// Of which failed.
    pub failed: u64,
}

impl HeldUp {
    /// Adds a held-up write (`from_us` → `to_us`) to time-ordered `spans`: into the last span
    /// when it overlaps it or is less than [`HELD_UP_US`] away, else as a new span.
    pub fn note(spans: &mut Vec<HeldUp>, from_us: u64, to_us: u64, failed: bool) {
        let w = HeldUp {
            from_us,
            to_us,
            messages: 1,
            failed: u64::from(failed),
        };
        let full = spans.len() >= MAX_HELD_UP_SPANS;
        match spans.last_mut() {
            Some(last) if full || last.near(&w) => last.absorb(&w),
            _ => spans.push(w),
        }
    }

    /// Merges spans of several producers into time-ordered spans, nearby ones joined.
    pub fn merge(all: impl IntoIterator<Item = HeldUp>) -> Vec<HeldUp> {
        let mut v: Vec<HeldUp> = all.into_iter().collect();
        v.sort_by_key(|h| h.from_us);
        let mut out: Vec<HeldUp> = Vec::new();
        for h in v {
            match out.last_mut() {
                Some(last) if last.near(&h) => last.absorb(&h),
                _ => out.push(h),
            }
        }
        out
    }

    fn near(&self, o: &HeldUp) -> bool {
        o.from_us <= self.to_us.saturating_add(HELD_UP_US)
            && o.to_us.saturating_add(HELD_UP_US) >= self.from_us
    }

    fn absorb(&mut self, o: &HeldUp) {
        self.from_us = self.from_us.min(o.from_us);
        self.to_us = self.to_us.max(o.to_us);
        self.messages += o.messages;
        self.failed += o.failed;
    }
}

/// A message of the open transaction the cluster acknowledged.
#[derive(Debug, Clone, Copy)]
pub struct PendingAck {
    /// Sequence number.
    pub seq: u32,
    /// Partition it went to.
    pub partition: i32,
    /// Payload (+ key) bytes.
    pub bytes: u64,
    /// Sent after the warm-up.
    pub measured: bool,
}

/// How a transaction ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnEnd {
    /// Committed.
    Committed,
    /// Aborted on purpose.
    Aborted,
    /// Aborted after an abortable error.
    AbortedOnError,
}

/// Transaction counts and commit latency of one transactional client.
#[derive(Debug, Clone)]
pub struct TxnCounts {
    /// Committed transactions.
    pub committed: u64,
    /// Transactions aborted on purpose.
    pub aborted: u64,
    /// Transactions aborted after an error.
    pub aborted_on_error: u64,
    /// Begin → commit returned, µs.
    pub commit_latency: Histogram<u64>,
}

impl Default for TxnCounts {
    fn default() -> Self {
        TxnCounts {
            committed: 0,
            aborted: 0,
            aborted_on_error: 0,
            commit_latency: latency_histogram(),
        }
    }
}

impl TxnCounts {
    /// Folds `other` into `self`.
    pub fn merge(&mut self, other: &TxnCounts) {
        self.committed += other.committed;
        self.aborted += other.aborted;
        self.aborted_on_error += other.aborted_on_error;
        let _ = self.commit_latency.add(&other.commit_latency);
    }
}

fn bump(v: &mut Vec<u64>, partition: i32, n: u64) {
    if let Ok(p) = usize::try_from(partition) {
        if v.len() <= p {
            v.resize(p + 1, 0);
        }
        v[p] += n;
    }
}

impl Default for ProducerMeter {
    fn default() -> Self {
        ProducerMeter {
            sent: CachePadded::new([AtomicU64::new(0), AtomicU64::new(0)]),
            state: CachePadded::new(Mutex::new(ProducerState {
                interval_acked: (0, 0),
                interval_errors: 0,
                latency: Latencies::default(),
                acked: (0, 0),
                measured: (0, 0),
                failed: 0,
                failed_latency: latency_histogram(),
                errors: BTreeMap::new(),
                ledger: AckLedger::default(),
                ack_run: None,
                per_partition: Vec::new(),
                per_partition_bytes: Vec::new(),
                last_ack_us: 0,
                per_partition_other: Vec::new(),
                open_txn: None,
                txns: TxnCounts::default(),
                held_up: Vec::new(),
            })),
        }
    }
}

impl ProducerMeter {
    /// A message was handed to the client.
    pub fn sent(&self, bytes: u64) {
        self.sent[0].fetch_add(1, Ordering::Relaxed);
        self.sent[1].fetch_add(bytes, Ordering::Relaxed);
    }

    /// The cluster acknowledged a message sent (or meant to be sent) at `sent_us`.
    #[allow(clippy::too_many_arguments)]
    pub fn acked(
        &self,
        producer: u32,
        seq: u32,
        partition: i32,
        bytes: u64,
        sent_us: u64,
        now: u64,
        warmup_end: u64,
    ) {
        let latency = now.saturating_sub(sent_us).max(1);
        let mut s = lock(&self.state);
        if latency > HELD_UP_US {
            HeldUp::note(&mut s.held_up, sent_us, now, false);
        }
        if let Some(pending) = s.open_txn.as_mut() {
            // Latency is send → acknowledgement as always; the message counts as acknowledged
            // once (and if) its transaction commits.
            pending.push(PendingAck {
                seq,
                partition,
                bytes,
                measured: sent_us >= warmup_end,
            });
            s.latency.record(latency, sent_us >= warmup_end);
            return;
        }
        s.interval_acked.0 += 1;
        s.interval_acked.1 += bytes;
        s.acked.0 += 1;
        s.acked.1 += bytes;
        let measured = sent_us >= warmup_end;
        s.latency.record(latency, measured);
        if measured {
            s.measured.0 += 1;
            s.measured.1 += bytes;
        }
        s.ack(producer, seq);
        bump(&mut s.per_partition, partition, 1);
        bump(&mut s.per_partition_bytes, partition, bytes);
        s.last_ack_us = s.last_ack_us.max(now);
    }

    /// A transaction begins: acknowledgements wait for its end.
    pub fn begin_txn(&self) {
        lock(&self.state).open_txn = Some(Vec::new());
    }

    /// Acknowledgements received in the open transaction so far.
    pub fn txn_acked(&self) -> usize {
        lock(&self.state).open_txn.as_ref().map_or(0, Vec::len)
    }

    /// The open transaction, which held sequences `seqs` (first, last) of `producer`, ended
    /// `how`, `latency_us` after it began. Committed: its acknowledgements count. Aborted: every
    /// sequence it held goes to the ledger's aborted set.
    pub fn end_txn(
        &self,
        producer: u32,
        seqs: Option<(u32, u32)>,
        how: TxnEnd,
        latency_us: u64,
        now: u64,
    ) {
        let mut s = lock(&self.state);
        let pending = s.open_txn.take().unwrap_or_default();
        let mut partitions: Vec<i32> = pending.iter().map(|a| a.partition).collect();
        partitions.sort_unstable();
        partitions.dedup();
        for p in &partitions {
            // One commit or abort marker per partition the transaction wrote to.
            bump(&mut s.per_partition_other, *p, 1);
        }
        match how {
            TxnEnd::Committed => {
                s.txns.committed += 1;
                let _ = s.txns.commit_latency.record(latency_us.max(1));
                for a in &pending {
                    s.interval_acked.0 += 1;
                    s.interval_acked.1 += a.bytes;
                    s.acked.0 += 1;
                    s.acked.1 += a.bytes;
                    if a.measured {
                        s.measured.0 += 1;
                        s.measured.1 += a.bytes;
                    }
                    s.ack(producer, a.seq);
                    bump(&mut s.per_partition, a.partition, 1);
                    bump(&mut s.per_partition_bytes, a.partition, a.bytes);
                }
                if !pending.is_empty() {
                    s.last_ack_us = s.last_ack_us.max(now);
                }
            }
            TxnEnd::Aborted | TxnEnd::AbortedOnError => {
                if how == TxnEnd::Aborted {
                    s.txns.aborted += 1;
                } else {
                    s.txns.aborted_on_error += 1;
                }
                for a in &pending {
                    bump(&mut s.per_partition_other, a.partition, 1);
                }
                if let Some((first, last)) = seqs {
                    s.ledger.abort_range(producer, first, last);
                }
            }
        }
    }

    /// A delivery report said the message (sent, or meant to be sent, at `sent_us` if its
    /// header could be read) was not written; `now` = µs since the epoch.
    pub fn failed(&self, kind: &str, sent_us: Option<u64>, now: u64) {
        let mut s = lock(&self.state);
        HeldUp::note(&mut s.held_up, sent_us.unwrap_or(now), now, true);
        if let Some(sent) = sent_us {
            let _ = s.failed_latency.record(now.saturating_sub(sent).max(1));
        }
        s.failed += 1;
        s.interval_errors += 1;
        *s.errors.entry(format!("produce:{kind}")).or_default() += 1;
    }

    /// Something went wrong that is not a failed message (a send call refused, a client error).
    pub fn error(&self, kind: &str) {
        let mut s = lock(&self.state);
        s.interval_errors += 1;
        *s.errors.entry(format!("produce:{kind}")).or_default() += 1;
    }

    /// Messages and bytes sent so far.
    pub fn sent_totals(&self) -> (u64, u64) {
        (
            self.sent[0].load(Ordering::Relaxed),
            self.sent[1].load(Ordering::Relaxed),
        )
    }

    /// Acknowledged messages so far (for progress).
    pub fn acked_total(&self) -> u64 {
        lock(&self.state).acked.0
    }

    /// Runs `f` on the state (for the final totals).
    pub fn with_state<R>(&self, f: impl FnOnce(&mut ProducerState) -> R) -> R {
        f(&mut lock(&self.state))
    }
}

/// One consumer member's meter.
#[derive(Debug)]
pub struct ConsumerMeter {
    state: Mutex<ConsumerState>,
}

/// What a consumer meter holds.
#[derive(Debug)]
pub struct ConsumerState {
    /// Messages / bytes in the current interval.
    pub interval_consumed: (u64, u64),
    /// Errors in the current interval.
    pub interval_errors: u64,
    /// End-to-end latency, µs: the current interval (all messages) and the measured window (of
    /// this shard's producers; see `cross_latency`).
    pub latency: Latencies,
    /// Messages / bytes, whole run.
    pub consumed: (u64, u64),
    /// Messages / bytes sent after the warm-up.
    pub measured: (u64, u64),
    /// Errors by kind.
    pub errors: BTreeMap<String, u64>,
    /// What this member received.
    pub ledger: GroupLedger,
    /// Partition index → next offset to read (highest offset received + 1).
    pub next_offsets: BTreeMap<i32, i64>,
    /// Partitions currently assigned.
    pub assigned: usize,
    /// Rebalances seen (assignments received).
    pub assignments: u64,
    /// Time of the last message, µs since the epoch.
    pub last_recv_us: u64,
    /// Time of the first message, µs since the epoch (0 = none yet).
    pub first_recv_us: u64,
    /// Partitions currently assigned, by index (a shard drains these).
    pub held: Vec<i32>,
    /// In a sharded run, the producer indexes of this shard: end-to-end latency of other
    /// shards' messages (another host's clock) goes to `cross_latency` instead of `latency`.
    pub local_producers: Option<std::ops::Range<u32>>,
    /// End-to-end latency of the measured window of messages other shards produced, µs.
    pub cross_latency: Histogram<u64>,
}

impl ConsumerState {
    /// Records one message received at `now` (the caller sets the receive times).
    fn receive(&mut self, a: &Arrival, now: u64, warmup_end: u64) {
        self.interval_consumed.0 += 1;
        self.interval_consumed.1 += a.bytes;
        self.consumed.0 += 1;
        self.consumed.1 += a.bytes;
        let next = self.next_offsets.entry(a.partition).or_insert(0);
        *next = (*next).max(a.offset + 1);
        match a.id {
            Identity::Ours(id) => {
                let latency = now.saturating_sub(id.sent_us).max(1);
                let measured = id.sent_us >= warmup_end;
                let cross = measured
                    && self
                        .local_producers
                        .as_ref()
                        .is_some_and(|r| !r.contains(&id.producer));
                self.latency.record(latency, measured && !cross);
                if measured {
                    self.measured.0 += 1;
                    self.measured.1 += a.bytes;
                }
                if cross {
                    let _ = self.cross_latency.record(latency);
                }
                self.ledger.receive(id.producer, id.seq, a.partition);
            }
            Identity::Corrupted => self.ledger.receive_corrupted(),
            Identity::Foreign => self.ledger.receive_foreign(),
        }
    }
}

impl Default for ConsumerMeter {
    fn default() -> Self {
        ConsumerMeter {
            state: Mutex::new(ConsumerState {
                interval_consumed: (0, 0),
                interval_errors: 0,
                latency: Latencies::default(),
                consumed: (0, 0),
                measured: (0, 0),
                errors: BTreeMap::new(),
                ledger: GroupLedger::default(),
                next_offsets: BTreeMap::new(),
                assigned: 0,
                held: Vec::new(),
                local_producers: None,
                cross_latency: latency_histogram(),
                assignments: 0,
                last_recv_us: 0,
                first_recv_us: 0,
            }),
        }
    }
}

/// What a consumer makes of a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    /// One of this run's messages, intact.
    Ours(Received),
    /// One of this run's messages (by its run tag) whose length, checksum or transform does not
    /// check out: not delivered, counted as corrupted.
    Corrupted,
    /// Not a message of this run (other writers, older runs).
    Foreign,
}

/// Identity of a received message, as decoded from its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// Producer index.
    pub producer: u32,
    /// Sequence number.
    pub seq: u32,
    /// (Intended) send time, µs since the epoch.
    pub sent_us: u64,
}

/// One consumed message as a meter records it: its identity (checked), where it was read and
/// its size (key + value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    /// What the payload turned out to be.
    pub id: Identity,
    /// Partition index it was read from.
    pub partition: i32,
    /// Its offset there.
    pub offset: i64,
    /// Key + value bytes.
    pub bytes: u64,
}

impl ConsumerMeter {
    /// A message arrived at `now`, identified (and checked) as `id`.
    pub fn received(
        &self,
        id: Identity,
        partition: i32,
        offset: i64,
        bytes: u64,
        now: u64,
        warmup_end: u64,
    ) {
        let arrival = Arrival {
            id,
            partition,
            offset,
            bytes,
        };
        self.received_all(&[arrival], now, warmup_end);
    }

    /// Messages that arrived together at `now` (one poll batch of a member, all handed over by
    /// the client within microseconds): the meter's lock is taken once for all of them.
    pub fn received_all(&self, arrivals: &[Arrival], now: u64, warmup_end: u64) {
        if arrivals.is_empty() {
            return;
        }
        let mut s = lock(&self.state);
        for a in arrivals {
            s.receive(a, now, warmup_end);
        }
        s.last_recv_us = s.last_recv_us.max(now);
        if s.first_recv_us == 0 {
            s.first_recv_us = now;
        }
    }

    /// A partition reached its end or was positioned without a message: remember the position.
    pub fn position(&self, partition: i32, next_offset: i64) {
        let mut s = lock(&self.state);
        let next = s.next_offsets.entry(partition).or_insert(0);
        *next = (*next).max(next_offset);
    }

    /// An error (by kind) happened.
    pub fn error(&self, kind: &str) {
        let mut s = lock(&self.state);
        s.interval_errors += 1;
        *s.errors.entry(format!("consume:{kind}")).or_default() += 1;
    }

    /// The member now holds `partitions` partitions.
    pub fn assigned(&self, partitions: usize) {
        let mut s = lock(&self.state);
        s.assigned = partitions;
        s.assignments += 1;
    }

    /// Runs `f` on the state.
    pub fn with_state<R>(&self, f: impl FnOnce(&mut ConsumerState) -> R) -> R {
        f(&mut lock(&self.state))
    }
}

/// Collects every meter once per interval into an [`IntervalRow`].
#[derive(Debug, Default)]
pub struct Collector {
    /// One meter per producer task, by producer index.
    pub producers: Vec<Arc<ProducerMeter>>,
    /// One list of member meters per consumer group.
    pub groups: Vec<Vec<Arc<ConsumerMeter>>>,
    last_sent: (u64, u64),
    /// Every row so far.
    pub rows: Vec<IntervalRow>,
}

impl Collector {
    /// A collector over these meters.
    pub fn new(producers: Vec<Arc<ProducerMeter>>, groups: Vec<Vec<Arc<ConsumerMeter>>>) -> Self {
        Collector {
            producers,
            groups,
            last_sent: (0, 0),
            rows: Vec::new(),
        }
    }

    /// Closes the interval ending at `t_s` (seconds since the run start) and returns its row.
    pub fn collect(&mut self, t_s: f64, interval_s: f64, in_warmup: bool) -> &IntervalRow {
        let mut row = IntervalRow {
            t_s,
            interval_s,
            in_warmup,
            ..Default::default()
        };
        let mut produce = latency_histogram();
        let mut e2e = latency_histogram();
        let mut sent = (0, 0);
        for p in &self.producers {
            let (m, b) = p.sent_totals();
            sent.0 += m;
            sent.1 += b;
            let mut s = lock(&p.state);
            row.acked_msgs += s.interval_acked.0;
            row.acked_bytes += s.interval_acked.1;
            row.errors += s.interval_errors;
            s.interval_acked = (0, 0);
            s.interval_errors = 0;
            s.latency.close_interval(&mut produce);
        }
        for member in self.groups.iter().flatten() {
            let mut s = lock(&member.state);
            row.consumed_msgs += s.interval_consumed.0;
            row.consumed_bytes += s.interval_consumed.1;
            row.errors += s.interval_errors;
            s.interval_consumed = (0, 0);
            s.interval_errors = 0;
            s.latency.close_interval(&mut e2e);
        }
        row.produced_msgs = sent.0 - self.last_sent.0;
        row.produced_bytes = sent.1 - self.last_sent.1;
        self.last_sent = sent;
        if !produce.is_empty() {
            row.produce_p50_us = produce.value_at_quantile(0.5);
            row.produce_p99_us = produce.value_at_quantile(0.99);
            row.produce_max_us = produce.max();
        }
        if !e2e.is_empty() {
            row.e2e_p50_us = e2e.value_at_quantile(0.5);
            row.e2e_p99_us = e2e.value_at_quantile(0.99);
            row.e2e_max_us = e2e.max();
        }
        self.rows.push(row);
        self.rows.last().expect("just pushed")
    }

    /// Produce-latency histogram of the measured window so far, all producers (for progress).
    pub fn produce_latency(&self) -> Histogram<u64> {
        let mut h = latency_histogram();
        for p in &self.producers {
            lock(&p.state).latency.add_measured_to(&mut h);
        }
        h
    }

    /// End-to-end histogram of the measured window, all groups.
    pub fn e2e_latency(&self) -> Histogram<u64> {
        let mut h = latency_histogram();
        for m in self.groups.iter().flatten() {
            lock(&m.state).latency.add_measured_to(&mut h);
        }
        h
    }

    /// Messages sent, acknowledged and consumed (all groups) so far.
    pub fn progress(&self) -> (u64, u64, u64) {
        let sent = self.producers.iter().map(|p| p.sent_totals().0).sum();
        let acked = self.producers.iter().map(|p| p.acked_total()).sum();
        let consumed = self
            .groups
            .iter()
            .flatten()
            .map(|m| lock(&m.state).consumed.0)
            .sum();
        (sent, acked, consumed)
    }
}

/// Adds `from` into `into` index by index (a partition count beyond `into`'s length is dropped:
/// it cannot be a partition of the run's topic).
fn add_counts(into: &mut [u64], from: &[u64]) {
    for (a, b) in into.iter_mut().zip(from) {
        *a += b;
    }
}

/// The earlier of two times in µs since the epoch, where 0 means "none yet".
pub fn earliest_us(a: u64, b: u64) -> u64 {
    match (a, b) {
        (0, t) | (t, 0) => t,
        (a, b) => a.min(b),
    }
}

/// Every producer task's counts added up, as the run's summary and verdict need them: each
/// task's meter is merged in once the producers are done ([`ProduceTotals::merge`]).
pub struct ProduceTotals {
    /// Messages and payload bytes handed to the client.
    pub sent: (u64, u64),
    /// Messages and payload bytes acknowledged.
    pub acked: (u64, u64),
    /// Acknowledged in the measured window (after warm-up): messages, bytes.
    pub measured: (u64, u64),
    /// Messages whose delivery failed.
    pub failed: u64,
    /// Errors by kind.
    pub errors: BTreeMap<String, u64>,
    /// Acknowledged messages by identity.
    pub acks: AckLedger,
    /// Acknowledged messages per partition.
    pub per_partition: Vec<u64>,
    /// Payload bytes acknowledged per partition.
    pub per_partition_bytes: Vec<u64>,
    /// Records of other writers per partition (what a transactional producer's markers add).
    pub per_partition_other: Vec<u64>,
    /// Transactions committed and aborted.
    pub txns: TxnCounts,
    /// Produce latency of the measured window, µs.
    pub latency: Histogram<u64>,
    /// Time to failure of the failed messages, µs.
    pub failed_latency: Histogram<u64>,
    /// Time of the last acknowledgement, µs since the epoch.
    pub last_ack_us: u64,
}

impl ProduceTotals {
    /// Nothing counted yet, for a topic of `partitions` partitions.
    pub fn new(partitions: usize) -> ProduceTotals {
        ProduceTotals {
            sent: (0, 0),
            acked: (0, 0),
            measured: (0, 0),
            failed: 0,
            errors: BTreeMap::new(),
            acks: AckLedger::default(),
            per_partition: vec![0; partitions],
            per_partition_bytes: vec![0; partitions],
            per_partition_other: vec![0; partitions],
            txns: TxnCounts::default(),
            latency: latency_histogram(),
            failed_latency: latency_histogram(),
            last_ack_us: 0,
        }
    }

    /// Adds one producer task's counts.
    pub fn merge(&mut self, meter: &ProducerMeter) {
        let (msgs, bytes) = meter.sent_totals();
        self.sent.0 += msgs;
        self.sent.1 += bytes;
        meter.with_state(|st| {
            self.acked.0 += st.acked.0;
            self.acked.1 += st.acked.1;
            self.measured.0 += st.measured.0;
            self.measured.1 += st.measured.1;
            self.failed += st.failed;
            for (k, v) in &st.errors {
                *self.errors.entry(k.clone()).or_insert(0) += v;
            }
            self.acks.merge(st.ledger());
            add_counts(&mut self.per_partition, &st.per_partition);
            add_counts(&mut self.per_partition_bytes, &st.per_partition_bytes);
            add_counts(&mut self.per_partition_other, &st.per_partition_other);
            self.txns.merge(&st.txns);
            st.latency.add_measured_to(&mut self.latency);
            let _ = self.failed_latency.add(&st.failed_latency);
            self.last_ack_us = self.last_ack_us.max(st.last_ack_us);
        });
    }
}

/// One consumer group's members' counts added up ([`GroupTotals::merge`] per member).
pub struct GroupTotals {
    /// Messages and payload bytes received.
    pub consumed: (u64, u64),
    /// Received in the measured window: messages, bytes.
    pub measured: (u64, u64),
    /// Errors by kind.
    pub errors: BTreeMap<String, u64>,
    /// Received messages by identity.
    pub ledger: GroupLedger,
    /// End-to-end latency of the measured window, µs.
    pub latency: Histogram<u64>,
    /// In a sharded run, end-to-end latency of other shards' messages, µs.
    pub cross_latency: Histogram<u64>,
    /// Times of the first and last message received, µs since the epoch (0: none).
    pub first_recv_us: u64,
    /// See `first_recv_us`.
    pub last_recv_us: u64,
}

impl Default for GroupTotals {
    fn default() -> Self {
        GroupTotals {
            consumed: (0, 0),
            measured: (0, 0),
            errors: BTreeMap::new(),
            ledger: GroupLedger::default(),
            latency: latency_histogram(),
            cross_latency: latency_histogram(),
            first_recv_us: 0,
            last_recv_us: 0,
        }
    }
}

impl GroupTotals {
    /// Adds one member's counts.
    pub fn merge(&mut self, meter: &ConsumerMeter) {
        meter.with_state(|st| {
            self.consumed.0 += st.consumed.0;
            self.consumed.1 += st.consumed.1;
            self.measured.0 += st.measured.0;
            self.measured.1 += st.measured.1;
            for (k, v) in &st.errors {
                *self.errors.entry(k.clone()).or_insert(0) += v;
            }
            self.ledger.merge(&st.ledger);
            st.latency.add_measured_to(&mut self.latency);
            let _ = self.cross_latency.add(&st.cross_latency);
            self.first_recv_us = earliest_us(self.first_recv_us, st.first_recv_us);
            self.last_recv_us = self.last_recv_us.max(st.last_recv_us);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_us_is_the_system_clock_in_microseconds() {
        let wall = || {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_micros() as u64
        };
        let (before, now, after) = (wall(), now_us(), wall());
        assert!(before <= now && now <= after, "{before} {now} {after}");
    }

    #[test]
    fn intervals_swap_and_totals_accumulate() {
        let p = Arc::new(ProducerMeter::default());
        let c = Arc::new(ConsumerMeter::default());
        let mut col = Collector::new(vec![p.clone()], vec![vec![c.clone()]]);
        let warmup_end = 1_000;
        // Warm-up message: in the interval, not in the whole-run histogram.
        p.sent(100);
        p.acked(0, 0, 0, 100, 500, 2_500, warmup_end);
        c.received(
            Identity::Ours(Received {
                producer: 0,
                seq: 0,
                sent_us: 500,
            }),
            0,
            0,
            100,
            3_500,
            warmup_end,
        );
        let row = col.collect(1.0, 1.0, true).clone();
        assert_eq!(
            (row.produced_msgs, row.acked_msgs, row.consumed_msgs),
            (1, 1, 1)
        );
        assert!((1990..=2010).contains(&row.produce_p50_us), "{row:?}");
        assert!((2990..=3010).contains(&row.e2e_max_us), "{row:?}");
        assert!(col.produce_latency().is_empty());
        // Measured message.
        p.sent(100);
        p.acked(0, 1, 3, 100, 2_000, 2_010, warmup_end);
        p.failed("MsgTimedOut", Some(2_100), 60_002_100);
        let row = col.collect(2.0, 1.0, false).clone();
        assert_eq!(
            (
                row.produced_msgs,
                row.produced_bytes,
                row.acked_msgs,
                row.errors
            ),
            (1, 100, 1, 1)
        );
        assert_eq!(col.produce_latency().len(), 1);
        p.with_state(|s| {
            assert_eq!(s.acked, (2, 200));
            assert_eq!(s.measured, (1, 100));
            assert_eq!(s.per_partition, vec![1, 0, 0, 1]);
            assert_eq!(s.errors["produce:MsgTimedOut"], 1);
            assert_eq!(s.failed_latency.len(), 1);
            assert!(
                s.failed_latency.max() >= 59_000_000,
                "send → failure report"
            );
            assert_eq!(s.ledger().total(), 2);
            // The failed message is held up; the prompt ones are not.
            assert_eq!(
                s.held_up,
                [HeldUp {
                    from_us: 2_100,
                    to_us: 60_002_100,
                    messages: 1,
                    failed: 1
                }]
            );
        });
        let row = col.collect(3.0, 1.0, false);
        assert_eq!(
            (row.produced_msgs, row.acked_msgs, row.produce_p50_us),
            (0, 0, 0)
        );
        c.with_state(|s| assert_eq!(s.next_offsets[&0], 1));
    }

    #[test]
    fn acknowledgements_in_any_order_reach_the_ledger() {
        // Runs, gaps, repeats, out-of-order batches and another producer index: the ledger
        // holds exactly the acknowledged sequences, read at any point.
        let p = ProducerMeter::default();
        let acks: Vec<(u32, u32)> = [0, 1, 2, 3, 10, 11, 4, 5, 5, 12, 9, 20, 30, 32]
            .iter()
            .map(|&s| (0, s))
            .chain([(1, 7), (1, 8), (0, 21), (0, 22), (0, u32::MAX)])
            .collect();
        let mut want: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
        for (i, &(producer, seq)) in acks.iter().enumerate() {
            p.acked(producer, seq, 0, 1, 0, 1, 0);
            want.entry(producer).or_default().push(seq);
            if i == 5 {
                // A read in the middle of a run closes it; later acknowledgements still count.
                p.with_state(|s| assert_eq!(s.ledger().total(), 6));
            }
        }
        p.with_state(|s| {
            let got: BTreeMap<u32, Vec<u32>> = s
                .ledger()
                .acked
                .iter()
                .map(|(p, bits)| (*p, bits.iter().collect()))
                .collect();
            for seqs in want.values_mut() {
                seqs.sort_unstable();
                seqs.dedup();
            }
            assert_eq!(got, want);
        });
    }

    #[test]
    fn latency_is_recorded_once_and_read_from_both_windows() {
        let mut l = Latencies::default();
        l.record(100, false); // warm-up
        l.record(200, true);
        // The open interval's measured values are part of the run's so far.
        assert_eq!((l.in_interval(), l.measured().len()), (2, 1));
        let mut row = latency_histogram();
        l.close_interval(&mut row);
        assert_eq!((row.len(), row.min(), row.max()), (2, 100, 200));
        assert_eq!((l.in_interval(), l.measured().len()), (0, 1));
        l.record(300, true);
        let mut row = latency_histogram();
        l.close_interval(&mut row);
        assert_eq!(row.len(), 1);
        let m = l.measured();
        assert_eq!((m.len(), m.min(), m.max()), (2, 200, 300));
    }

    #[test]
    fn totals_add_every_task_once() {
        let warmup_end = 1_000;
        let producers: Vec<ProducerMeter> = (0..2).map(|_| ProducerMeter::default()).collect();
        for (i, p) in producers.iter().enumerate() {
            for seq in 0..3 {
                p.sent(100);
                // Producer 0's acknowledgements to partition 0, producer 1's to partition 1;
                // the first of each in the warm-up.
                p.acked(
                    i as u32,
                    seq,
                    i as i32,
                    100,
                    500 + 1_000 * u64::from(seq),
                    5_000,
                    warmup_end,
                );
            }
        }
        producers[1].failed("MsgTimedOut", Some(4_000), 9_000);
        let mut produced = ProduceTotals::new(2);
        for p in &producers {
            produced.merge(p);
        }
        assert_eq!(produced.sent, (6, 600));
        assert_eq!(produced.acked, (6, 600));
        assert_eq!(produced.measured, (4, 400));
        assert_eq!(produced.failed, 1);
        assert_eq!(produced.errors["produce:MsgTimedOut"], 1);
        assert_eq!(produced.per_partition, [3, 3]);
        assert_eq!(produced.per_partition_bytes, [300, 300]);
        assert_eq!(produced.latency.len(), 4);
        assert_eq!(produced.acks.total(), 6);

        let members: Vec<ConsumerMeter> = (0..2).map(|_| ConsumerMeter::default()).collect();
        for (i, c) in members.iter().enumerate() {
            let id = Received {
                producer: 0,
                seq: i as u32,
                sent_us: 2_000,
            };
            c.received(
                Identity::Ours(id),
                0,
                i as i64,
                100,
                3_000 + i as u64,
                warmup_end,
            );
        }
        let mut group = GroupTotals::default();
        for c in &members {
            group.merge(c);
        }
        assert_eq!(group.consumed, (2, 200));
        assert_eq!(group.latency.len(), 2);
        assert_eq!((group.first_recv_us, group.last_recv_us), (3_000, 3_001));
    }

    #[test]
    fn a_batch_records_what_its_messages_one_by_one_would() {
        let ours = |seq| {
            Identity::Ours(Received {
                producer: 1,
                seq,
                sent_us: 1_000,
            })
        };
        let arrivals = [
            Arrival {
                id: ours(0),
                partition: 0,
                offset: 10,
                bytes: 100,
            },
            Arrival {
                id: ours(2),
                partition: 1,
                offset: 4,
                bytes: 100,
            },
            // Out of order in partition 1, and one seen twice.
            Arrival {
                id: ours(1),
                partition: 1,
                offset: 5,
                bytes: 100,
            },
            Arrival {
                id: ours(0),
                partition: 0,
                offset: 11,
                bytes: 100,
            },
            Arrival {
                id: Identity::Corrupted,
                partition: 0,
                offset: 12,
                bytes: 100,
            },
            Arrival {
                id: Identity::Foreign,
                partition: 2,
                offset: 0,
                bytes: 7,
            },
        ];
        let (batch, single) = (ConsumerMeter::default(), ConsumerMeter::default());
        batch.received_all(&arrivals, 3_000, 500);
        for a in &arrivals {
            single.received(a.id, a.partition, a.offset, a.bytes, 3_000, 500);
        }
        let view = |m: &ConsumerMeter| {
            m.with_state(|s| {
                (
                    s.consumed,
                    s.measured,
                    s.interval_consumed,
                    s.next_offsets.clone(),
                    (s.first_recv_us, s.last_recv_us),
                    (
                        s.latency.measured().len(),
                        s.latency.measured().max(),
                        s.latency.in_interval(),
                    ),
                    (
                        s.ledger.consumed,
                        s.ledger.duplicated,
                        s.ledger.reordered,
                        s.ledger.corrupted,
                        s.ledger.foreign,
                    ),
                )
            })
        };
        assert_eq!(view(&batch), view(&single));
        let (consumed, measured, _, next, times, latency, ledger) = view(&batch);
        assert_eq!(consumed, (6, 507));
        assert_eq!(measured, (4, 400));
        assert_eq!(next, BTreeMap::from([(0, 13), (1, 6), (2, 1)]));
        assert_eq!(times, (3_000, 3_000));
        assert_eq!(latency.0, 4);
        assert!(latency.1 >= 2_000 && latency.1 < 2_010, "{latency:?}");
        assert_eq!(ledger, (5, 1, 1, 1, 1));
        // An empty batch records nothing, not even a receive time.
        let idle = ConsumerMeter::default();
        idle.received_all(&[], 3_000, 500);
        assert_eq!(
            idle.with_state(|s| (s.consumed, s.first_recv_us)),
            ((0, 0), 0)
        );
    }

    #[test]
    fn held_up_writes_merge_into_spans() {
        let mut spans = Vec::new();
        // Two overlapping slow writes, one 0.5 s after them, then one 5 s later.
        HeldUp::note(&mut spans, 1_000_000, 3_000_000, false);
        HeldUp::note(&mut spans, 1_500_000, 3_200_000, false);
        HeldUp::note(&mut spans, 3_700_000, 4_900_000, true);
        HeldUp::note(&mut spans, 10_000_000, 11_500_000, false);
        assert_eq!(spans.len(), 2, "{spans:?}");
        assert_eq!(
            spans[0],
            HeldUp {
                from_us: 1_000_000,
                to_us: 4_900_000,
                messages: 3,
                failed: 1
            }
        );
        // Another producer's span bridges nothing: merged by time, they stay two.
        let other = HeldUp {
            from_us: 2_000_000,
            to_us: 5_500_000,
            messages: 7,
            failed: 0,
        };
        let merged = HeldUp::merge(spans.iter().copied().chain([other]));
        assert_eq!(merged.len(), 2, "{merged:?}");
        assert_eq!(
            (merged[0].from_us, merged[0].to_us, merged[0].messages),
            (1_000_000, 5_500_000, 10)
        );
        assert_eq!(merged[1].from_us, 10_000_000);
    }
}
