//! The consume-transform-produce stage (`[pipeline]`): transform workers between the producers'
//! topic and the output topic, and the supervisor that carries out the kill plan.
//!
//! Each worker is the seeds' exactly-once loop on a thread of its own: a `read_committed`
//! `BaseConsumer` in the transform group and a transactional `ThreadedProducer`
//! (`transactional.id = kbench-<name>-<run id>-w<i>`, the same for every incarnation of worker
//! `i`). Loop: poll a batch, begin, produce every record transformed to the same partition of the
//! output topic (the identity header is kept, so the verifier matches output to input; the
//! worker reseals the transformed value with a checksum of its own and the verifier checks the
//! body is the transform of what the producer wrote: [`super::payload::Check`]),
//! `send_offsets_to_transaction(positions, group metadata)`, commit. An abortable error aborts
//! the transaction and rewinds the consumer to the group's committed offsets; a batch that
//! straddles a rebalance is dropped (its records are re-read from the committed offsets).
//!
//! A kill ([`crate::scenario::Kill`]) makes the worker stop in the middle of a transaction —
//! after its records were written, before offsets and commit — and drop both clients without
//! committing or aborting: the transaction stays open on the broker, holding back the output's
//! last stable offset, until the restarted worker's `init_transactions` fences the dead
//! instance and aborts it (or the broker's transaction timeout does). The supervisor is one loop
//! over the plan (goose's test plan, not one code path per fault).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use roaring::RoaringBitmap;

use super::payload::{read_header, transform};
use super::{error_kind, Stop};
use crate::ledger::AckLedger;
use crate::measure::{now_us, TxnCounts};
use crate::scenario::{KillTrigger, Scenario};
use crate::summary::{Event, WorkerKill};
use crate::sut::ClusterAccess;

/// Bound on each transaction call and on committed-offset lookups.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What one worker slot (all its incarnations) did.
#[derive(Debug, Default)]
pub struct WorkerState {
    /// Transactions of this slot.
    pub txns: TxnCounts,
    /// Input records whose output was committed.
    pub input_committed: u64,
    /// Input partition → position of the current incarnation (cleared on revoke and death).
    pub positions: BTreeMap<i32, i64>,
    /// A transaction is open (from the batch's first record to the commit's end).
    pub busy: bool,
    /// Errors by kind.
    pub errors: BTreeMap<String, u64>,
    /// When the current incarnation's `init_transactions` returned (µs since the epoch).
    pub initialised_us: Option<u64>,
    /// Output records of the transaction left open by the last kill.
    pub left_open_records: u64,
    /// Input identities (producer → sequences) whose output was committed.
    pub committed: BTreeMap<u32, RoaringBitmap>,
}

/// The shared view of the pipeline: one state per worker slot.
#[derive(Debug)]
pub struct PipelineMeter {
    /// Per worker slot.
    pub workers: Vec<Mutex<WorkerState>>,
}

impl PipelineMeter {
    /// A meter for `workers` slots.
    pub fn new(workers: u32) -> Self {
        PipelineMeter {
            workers: (0..workers).map(|_| Mutex::default()).collect(),
        }
    }

    fn with<R>(&self, w: u32, f: impl FnOnce(&mut WorkerState) -> R) -> R {
        f(&mut lock(&self.workers[w as usize]))
    }

    /// How many workers have their transactional producer initialised (their first
    /// `init_transactions` returned; on a fresh cluster that call creates the transaction log).
    pub fn initialised(&self) -> usize {
        self.workers
            .iter()
            .filter(|w| lock(w).initialised_us.is_some())
            .count()
    }

    /// Input records committed over all workers.
    pub fn input_committed(&self) -> u64 {
        self.workers.iter().map(|w| lock(w).input_committed).sum()
    }

    /// Whether the output of every acknowledged input record has been committed. (Counted by
    /// identity rather than by offsets: a partition handed to a worker after its last record
    /// was committed has no position to report, and a trailing transaction marker is an offset
    /// no record stands for.)
    pub fn drained(&self, acks: &AckLedger) -> Result<(), String> {
        let mut committed = BTreeMap::<u32, RoaringBitmap>::new();
        for w in &self.workers {
            for (p, bits) in &lock(w).committed {
                *committed.entry(*p).or_default() |= bits;
            }
        }
        let empty = RoaringBitmap::new();
        let mut missing = 0;
        let mut first = None;
        for (p, acked) in &acks.acked {
            let left = acked - committed.get(p).unwrap_or(&empty);
            if first.is_none() {
                first = left.min().map(|s| (*p, s));
            }
            missing += left.len();
        }
        match first {
            None => Ok(()),
            Some((p, seq)) => Err(format!(
                "{missing} acknowledged input records not yet transformed and committed (first: producer {p} sequence {seq})"
            )),
        }
    }
}

/// Everything the pipeline needs.
#[derive(Debug, Clone)]
pub struct PipelineTask {
    /// The scenario (with `[pipeline]`).
    pub scenario: Arc<Scenario>,
    /// The cluster: bootstrap servers and the settings every client gets.
    pub cluster: ClusterAccess,
    /// Topic the producers write and the workers read.
    pub input: String,
    /// Topic the workers write and the consumer groups verify.
    pub output: String,
    /// Partition count of the output topic.
    pub output_partitions: i32,
    /// The transform group's id.
    pub group_id: String,
    /// Run tag (names transactional ids).
    pub run_tag: u32,
    /// Shared figures.
    pub meter: Arc<PipelineMeter>,
    /// Run start, for event times.
    pub t0: Instant,
    /// Producers' start, for `at` triggers (set once the producers start, after the workers
    /// are initialised; no `at` kill fires before).
    pub produce_start: Arc<std::sync::OnceLock<Instant>>,
    /// Events (kills, restarts) go here.
    pub events: Arc<Mutex<Vec<Event>>>,
    /// Raised to stop the pipeline.
    pub stop: Stop,
}

/// What the supervisor reports at the end.
#[derive(Debug, Default)]
pub struct PipelineOutcome {
    /// Kills carried out.
    pub kills: Vec<WorkerKill>,
    /// Problems: kills never carried out, workers that failed.
    pub failures: Vec<String>,
}

struct Running {
    handle: JoinHandle<Result<(), String>>,
    kill: Stop,
    stop: Stop,
}

/// Starts the supervisor (which starts the workers) on a thread of its own.
pub fn spawn(task: PipelineTask) -> std::io::Result<JoinHandle<PipelineOutcome>> {
    std::thread::Builder::new()
        .name("kbench-pipeline".into())
        .spawn(move || supervise(task))
}

fn supervise(task: PipelineTask) -> PipelineOutcome {
    let Some(plan) = task.scenario.pipeline.clone() else {
        return PipelineOutcome::default();
    };
    let mut out = PipelineOutcome::default();
    let start = |w: u32, out: &mut PipelineOutcome| -> Option<Running> {
        let kill = Stop::default();
        let stop = Stop::default();
        let t = task.clone();
        let (k, s) = (kill.clone(), stop.clone());
        match std::thread::Builder::new()
            .name(format!("kbench-w{w}"))
            .spawn(move || worker(&t, w, &k, &s))
        {
            Ok(handle) => Some(Running { handle, kill, stop }),
            Err(e) => {
                out.failures
                    .push(format!("pipeline: cannot start worker {w}: {e}"));
                None
            }
        }
    };
    let mut running: Vec<Option<Running>> = (0..plan.workers).map(|w| start(w, &mut out)).collect();
    let mut done = vec![false; plan.kills.len()];
    // Worker → (restart due, index into out.kills, restarted yet).
    let mut restarts: BTreeMap<u32, (Instant, usize, bool)> = BTreeMap::new();
    let event = |kind: &str, detail: String| {
        lock(&task.events).push(Event {
            t_s: task.t0.elapsed().as_secs_f64(),
            kind: kind.into(),
            detail,
        });
    };
    while !task.stop.is_raised() {
        std::thread::sleep(Duration::from_millis(20));
        for (i, k) in plan.kills.iter().enumerate() {
            if done[i] || running[k.worker as usize].is_none() {
                continue;
            }
            let due = match k.trigger() {
                KillTrigger::At(d) => task.produce_start.get().is_some_and(|s| s.elapsed() >= d),
                KillTrigger::AfterMessages(n) => task.meter.input_committed() >= n,
            };
            if !due {
                continue;
            }
            done[i] = true;
            let Some(r) = running[k.worker as usize].take() else {
                continue;
            };
            r.kill.raise();
            let deadline = Instant::now() + Duration::from_secs(30);
            while !r.handle.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            let killed_at_s = task.t0.elapsed().as_secs_f64();
            if !r.handle.is_finished() {
                out.failures.push(format!(
                    "pipeline: worker {} did not die within 30 s of its kill",
                    k.worker
                ));
                continue;
            }
            if let Ok(Err(e)) = r.handle.join() {
                out.failures.push(e);
            }
            let open = task.meter.with(k.worker, |w| {
                w.positions.clear();
                w.busy = false;
                w.initialised_us = None;
                w.left_open_records
            });
            event(
                "worker_kill",
                format!(
                    "worker {} killed with a transaction of {open} records open",
                    k.worker
                ),
            );
            out.kills.push(WorkerKill {
                worker: k.worker,
                killed_at_s,
                open_transaction_records: open,
                restarted_at_s: None,
            });
            restarts.insert(
                k.worker,
                (
                    Instant::now() + k.restart_after.0,
                    out.kills.len() - 1,
                    false,
                ),
            );
        }
        for (w, (at, _, started)) in restarts.iter_mut() {
            if !*started && Instant::now() >= *at {
                *started = true;
                running[*w as usize] = start(*w, &mut out);
            }
        }
        // A restart counts once the new incarnation has fenced the old one.
        restarts.retain(|w, (_, kill, started)| {
            if !*started {
                return true;
            }
            match task.meter.with(*w, |s| s.initialised_us) {
                Some(_) => {
                    let t = task.t0.elapsed().as_secs_f64();
                    out.kills[*kill].restarted_at_s = Some(t);
                    event(
                        "worker_restart",
                        format!(
                            "worker {w} restarted; its transactional id fenced the killed instance"
                        ),
                    );
                    false
                }
                None => true,
            }
        });
        for (w, r) in running.iter_mut().enumerate() {
            if r.as_ref().is_some_and(|r| r.handle.is_finished()) {
                if let Some(r) = r.take() {
                    match r.handle.join() {
                        Ok(Err(e)) => out.failures.push(e),
                        Err(_) => out.failures.push(format!("pipeline: worker {w} panicked")),
                        Ok(Ok(())) => {}
                    }
                }
            }
        }
    }
    for r in running.iter().flatten() {
        r.stop.raise();
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    for (w, r) in running.into_iter().enumerate() {
        let Some(r) = r else { continue };
        while !r.handle.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if !r.handle.is_finished() {
            out.failures.push(format!(
                "pipeline: worker {w} did not stop within 15 s (left behind)"
            ));
            continue;
        }
        match r.handle.join() {
            Ok(Err(e)) => out.failures.push(e),
            Err(_) => out.failures.push(format!("pipeline: worker {w} panicked")),
            Ok(Ok(())) => {}
        }
    }
    for (i, k) in plan.kills.iter().enumerate() {
        if !done[i] {
            let when = match k.trigger() {
                KillTrigger::At(d) => format!("at {d:?}"),
                KillTrigger::AfterMessages(n) => format!("after {n} messages"),
            };
            out.failures.push(format!(
                "pipeline: kill #{i} (worker {} {when}) never happened: the pipeline had drained first; move it earlier or make the run longer",
                k.worker
            ));
        }
    }
    for kill in &out.kills {
        if kill.restarted_at_s.is_none() {
            out.failures.push(format!(
                "pipeline: worker {} killed at {:.1} s was not restarted before the run ended",
                kill.worker, kill.killed_at_s
            ));
        }
    }
    out
}

struct WorkerConsumerCtx {
    generation: AtomicUsize,
}

impl ClientContext for WorkerConsumerCtx {}

impl ConsumerContext for WorkerConsumerCtx {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, _: &Rebalance<'_>) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }
}

#[derive(Default)]
struct WorkerProducerCtx {
    delivered: AtomicU64,
    failed: AtomicU64,
}

impl ClientContext for WorkerProducerCtx {}

impl ProducerContext for WorkerProducerCtx {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => self.delivered.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.failed.fetch_add(1, Ordering::Relaxed),
        };
    }
}

/// The `transactional.id` of worker slot `w`: the same for every incarnation.
pub fn worker_transactional_id(s: &Scenario, run_tag: u32, w: u32) -> String {
    format!("kbench-{}-{run_tag:08x}-w{w}", s.name)
}

fn worker(task: &PipelineTask, w: u32, kill: &Stop, stop: &Stop) -> Result<(), String> {
    let s = &task.scenario;
    let Some(plan) = s.pipeline.as_ref() else {
        return Ok(());
    };
    let txn_id = worker_transactional_id(s, task.run_tag, w);
    let name = format!("pipeline worker {w} (transactional.id {txn_id})");
    let timeout_ms = plan.transaction_timeout.0.as_millis();
    let producer: ThreadedProducer<WorkerProducerCtx> = task
        .cluster
        .client(&txn_id)
        .set("transactional.id", &txn_id)
        .set("transaction.timeout.ms", timeout_ms.to_string())
        .set("message.timeout.ms", timeout_ms.min(30_000).to_string())
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create_with_context(WorkerProducerCtx::default())
        .map_err(|e| format!("{name}: cannot create the producer: {e}"))?;
    producer
        .init_transactions(CALL_TIMEOUT)
        .map_err(|e| format!("{name}: init_transactions failed: {e}"))?;
    task.meter.with(w, |st| st.initialised_us = Some(now_us()));
    let consumer: BaseConsumer<WorkerConsumerCtx> = task
        .cluster
        .client(&format!("{}-w{w}", task.group_id))
        .set("group.id", &task.group_id)
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("queued.max.messages.kbytes", "16384")
        .set("fetch.queue.backoff.ms", super::FETCH_QUEUE_BACKOFF_MS)
        .create_with_context(WorkerConsumerCtx {
            generation: AtomicUsize::new(0),
        })
        .map_err(|e| format!("{name}: cannot create the consumer: {e}"))?;
    consumer
        .subscribe(&[&task.input])
        .map_err(|e| format!("{name}: cannot subscribe to {}: {e}", task.input))?;
    let count_error = |kind: String| {
        task.meter
            .with(w, |st| *st.errors.entry(kind).or_default() += 1);
    };
    let per = plan.messages_per_transaction as usize;
    let mut value = Vec::new();
    let mut batch: Vec<(i32, Option<Vec<u8>>, Vec<u8>)> = Vec::with_capacity(per);
    let mut kill_seen: Option<Instant> = None;
    while !stop.is_raised() {
        batch.clear();
        let mut generation = consumer.context().generation.load(Ordering::SeqCst);
        let collect_until = Instant::now() + Duration::from_millis(100);
        while batch.len() < per && Instant::now() < collect_until {
            let polled = consumer.poll(Duration::from_millis(20));
            let now_gen = consumer.context().generation.load(Ordering::SeqCst);
            if now_gen != generation {
                // A rebalance: records polled before it may belong to partitions this worker
                // no longer owns; they are re-read from the committed offsets by their owner.
                batch.clear();
                generation = now_gen;
                task.meter.with(w, |st| st.positions.clear());
            }
            match polled {
                Some(Ok(m)) => {
                    transform(plan.transform, m.payload().unwrap_or_default(), &mut value);
                    batch.push((m.partition(), m.key().map(<[u8]>::to_vec), value.clone()));
                }
                Some(Err(e)) => count_error(format!("pipeline:{}", error_kind(&e))),
                None => {
                    if !batch.is_empty() {
                        break;
                    }
                }
            }
            if kill.is_raised() || stop.is_raised() {
                break;
            }
        }
        if kill.is_raised() && kill_seen.is_none() {
            kill_seen = Some(Instant::now());
        }
        if batch.is_empty() {
            record_positions(&consumer, task, w);
            // A kill waits (up to 5 s) for input, so that it leaves a transaction open.
            if kill_seen.is_some_and(|t| t.elapsed() >= Duration::from_secs(5)) {
                // Killed while idle: nothing open to leave behind.
                task.meter.with(w, |st| st.left_open_records = 0);
                return die(producer, consumer);
            }
            continue;
        }
        let began = now_us();
        task.meter.with(w, |st| st.busy = true);
        producer
            .begin_transaction()
            .map_err(|e| format!("{name}: begin_transaction failed: {e}"))?;
        let sent_before = producer.context().delivered.load(Ordering::Relaxed);
        for (partition, key, v) in &batch {
            let mut record: BaseRecord<'_, [u8], [u8], ()> = BaseRecord::to(&task.output)
                .payload(&v[..])
                .partition(partition % task.output_partitions.max(1));
            if let Some(k) = key {
                record = record.key(&k[..]);
            }
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        std::thread::sleep(Duration::from_micros(500));
                        record = back;
                    }
                    Err((e, _)) => {
                        count_error(format!("pipeline:Send{}", error_kind(&e)));
                        break;
                    }
                }
            }
        }
        wait_reports(&producer, CALL_TIMEOUT);
        if kill.is_raised() {
            // The kill: the records are in the log, the transaction is open; drop both clients
            // without offsets, commit or abort.
            let open = producer.context().delivered.load(Ordering::Relaxed) - sent_before;
            task.meter.with(w, |st| st.left_open_records = open);
            return die(producer, consumer);
        }
        let positions = match consumer.position() {
            Ok(p) => p,
            Err(e) => return Err(format!("{name}: cannot read the consumer's position: {e}")),
        };
        let mut offsets = TopicPartitionList::new();
        let mut next = BTreeMap::new();
        for e in positions.elements() {
            if let Offset::Offset(o) = e.offset() {
                let _ = offsets.add_partition_offset(e.topic(), e.partition(), Offset::Offset(o));
                next.insert(e.partition(), o);
            }
        }
        let result = consumer
            .group_metadata()
            .ok_or_else(|| KafkaError::Canceled)
            .and_then(|meta| producer.send_offsets_to_transaction(&offsets, &meta, CALL_TIMEOUT))
            .and_then(|()| producer.commit_transaction(CALL_TIMEOUT));
        match result {
            Ok(()) => {
                let now = now_us();
                task.meter.with(w, |st| {
                    st.txns.committed += 1;
                    let _ = st
                        .txns
                        .commit_latency
                        .record(now.saturating_sub(began).max(1));
                    st.input_committed += batch.len() as u64;
                    for (_, _, v) in &batch {
                        if let Some(id) = read_header(v, task.run_tag) {
                            st.committed.entry(id.producer).or_default().insert(id.seq);
                        }
                    }
                    for (p, o) in next {
                        st.positions.insert(p, o);
                    }
                    st.busy = false;
                });
            }
            Err(e) if matches!(&e, KafkaError::Transaction(r) if r.is_fatal()) => {
                return Err(format!("{name}: fatal transaction error (fenced?): {e}"));
            }
            Err(e) => {
                count_error(format!("pipeline:Txn{}", error_kind(&e)));
                producer.abort_transaction(CALL_TIMEOUT).map_err(|e2| {
                    format!("{name}: commit failed ({e}) and so did the abort: {e2}")
                })?;
                rewind(&consumer)
                    .map_err(|e| format!("{name}: cannot rewind to the committed offsets: {e}"))?;
                task.meter.with(w, |st| {
                    st.txns.aborted_on_error += 1;
                    st.positions.clear();
                    st.busy = false;
                });
            }
        }
    }
    task.meter.with(w, |st| st.busy = false);
    Ok(())
}

/// Drops both clients of a killed worker: the producer without ending its transaction, the
/// consumer without committing (it leaves the group, so its partitions move on at once).
fn die(
    producer: ThreadedProducer<WorkerProducerCtx>,
    consumer: BaseConsumer<WorkerConsumerCtx>,
) -> Result<(), String> {
    drop(producer);
    drop(consumer);
    Ok(())
}

fn record_positions(consumer: &BaseConsumer<WorkerConsumerCtx>, task: &PipelineTask, w: u32) {
    if let Ok(tpl) = consumer.position() {
        task.meter.with(w, |st| {
            for e in tpl.elements() {
                if let Offset::Offset(o) = e.offset() {
                    st.positions.insert(e.partition(), o);
                }
            }
        });
    }
}

/// After an aborted transaction: back to the group's committed offsets (or the log start).
fn rewind(consumer: &BaseConsumer<WorkerConsumerCtx>) -> Result<(), KafkaError> {
    let committed = consumer.committed(CALL_TIMEOUT)?;
    let mut tpl = TopicPartitionList::new();
    for e in committed.elements() {
        let o = match e.offset() {
            Offset::Offset(o) => Offset::Offset(o),
            _ => Offset::Beginning,
        };
        tpl.add_partition_offset(e.topic(), e.partition(), o)?;
    }
    consumer.seek_partitions(tpl, CALL_TIMEOUT)?;
    Ok(())
}

fn wait_reports(producer: &ThreadedProducer<WorkerProducerCtx>, bound: Duration) {
    let deadline = Instant::now() + bound;
    while producer.in_flight_count() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Total transaction counts over the slots, and the slots' errors.
pub fn totals(meter: &PipelineMeter) -> (TxnCounts, u64, BTreeMap<String, u64>) {
    let mut t = TxnCounts::default();
    let mut input = 0;
    let mut errors = BTreeMap::new();
    for w in &meter.workers {
        let w = lock(w);
        t.merge(&w.txns);
        input += w.input_committed;
        for (k, v) in &w.errors {
            *errors.entry(k.clone()).or_insert(0) += v;
        }
    }
    (t, input, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drained_when_every_acknowledged_record_was_committed_by_some_worker() {
        let m = PipelineMeter::new(2);
        let mut acks = AckLedger::default();
        for s in 0..10 {
            acks.ack(0, s);
        }
        assert!(m.drained(&acks).unwrap_err().contains("10 acknowledged"));
        m.with(0, |s| s.committed.entry(0).or_default().insert_range(0..6));
        m.with(1, |s| s.committed.entry(0).or_default().insert_range(4..9));
        let e = m.drained(&acks).unwrap_err();
        assert!(
            e.contains("1 acknowledged") && e.contains("sequence 9"),
            "{e}"
        );
        m.with(1, |s| s.committed.entry(0).or_default().insert(9));
        assert!(m.drained(&acks).is_ok());
    }
}
