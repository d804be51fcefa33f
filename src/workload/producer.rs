//! One producer task: a `BaseProducer` on a thread of its own, sending `messages_each` messages
//! (or for `duration`) flat out or paced ([`super::rate::Pacer`]), and recording every delivery
//! report in its [`ProducerMeter`]. The same thread serves the reports ([`super::delivery`]).
//!
//! With `transactional`, the task calls `init_transactions` once and then sends in transactions
//! of `messages_per_transaction` messages, committing each or, for the share `abort_ratio`
//! ([`AbortPlan`], deterministic per producer index so runs are reproducible), aborting it after
//! every message of it was written. Errors are handled by kind as librdkafka classifies them: an
//! abortable error aborts the transaction (its messages go to the ledger's aborted set) and the
//! task goes on; a retriable one is retried; a fatal one (fenced by another instance with the
//! same `transactional.id`) ends the task with an error naming the id.

use std::ffi::CString;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientConfig, ClientContext};

use super::delivery::{ReportClock, Wake, SERVE_EVERY};
use super::payload::{read_header, Filler, KeyChooser};
use super::rate::{sleep_until, Pacer};
use super::ring::PayloadRing;
use super::{apply_client_configs, error_kind, StartGate, Stop};
use crate::measure::{now_us, ProducerMeter, TxnEnd, WarmupEnd};
use crate::scenario::{self, Scenario};
use crate::sut::ClusterAccess;

/// Everything one producer task needs.
#[derive(Debug, Clone)]
pub struct ProducerTask {
    /// Producer index (0-based), written into every message.
    pub index: u32,
    /// Run tag written into every message.
    pub run_tag: u32,
    /// Topic to write.
    pub topic: String,
    /// Partition count of the topic.
    pub partitions: i32,
    /// The cluster: bootstrap servers and the settings every client gets.
    pub cluster: ClusterAccess,
    /// The scenario.
    pub scenario: Arc<Scenario>,
    /// Shared payload pool.
    pub filler: Filler,
    /// Where this task records.
    pub meter: Arc<ProducerMeter>,
    /// Start of the measured window.
    pub warmup_end: Arc<WarmupEnd>,
    /// Opened by the run once every producer's client is ready; the time it opens at is when
    /// producing starts (the schedule's origin, the first send).
    pub gate: StartGate,
    /// Raised to stop early.
    pub stop: Stop,
}

struct Context {
    index: u32,
    run_tag: u32,
    meter: Arc<ProducerMeter>,
    warmup_end: Arc<WarmupEnd>,
    /// The task's message buffers librdkafka reads in place; held here, by the client, so they
    /// outlive every message that points into them.
    ring: Option<PayloadRing>,
    /// What the sending thread waits on for reports; held by the client, which writes it.
    wake: Wake,
    /// When reports are served.
    clock: ReportClock,
}

impl ClientContext for Context {
    /// Client-level errors (a broker down: `BrokerTransportFailure`, `AllBrokersDown`) are
    /// counted by kind, so an outage shows in the errors even while librdkafka retries.
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!("librdkafka: {error}: {reason}");
        self.meter.error(&error_kind(&error));
    }
}

impl ProducerContext for Context {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let now = self.clock.now();
        let payload = match result {
            Ok(m) => {
                let payload = m.payload().unwrap_or_default();
                record_ack(
                    &self.meter,
                    self.index,
                    self.run_tag,
                    payload,
                    m.key().map_or(0, <[u8]>::len),
                    m.partition(),
                    now,
                    self.warmup_end.get(),
                );
                payload
            }
            Err((e, m)) => {
                let payload = m.payload().unwrap_or_default();
                self.meter.failed(
                    &error_kind(e),
                    read_header(payload, self.run_tag).map(|id| id.sent_us),
                    now,
                );
                payload
            }
        };
        // The report is the last time the payload is read: its buffer can take the next lap.
        if let Some(ring) = &self.ring {
            ring.release(payload.as_ptr());
        }
    }
}

/// What a delivery report of an acknowledged message costs kbench, per message: read the
/// identity back from the payload librdkafka hands back, record it at `now` (the report's time,
/// read once per event: [`ReportClock`]) in the task's meter (counters, one histogram record,
/// the ledger's open run, per-partition counts). Public for the instruction-count guard
/// (`benches/hot_path.rs`), which drives exactly this.
#[allow(clippy::too_many_arguments)]
pub fn record_ack(
    meter: &ProducerMeter,
    index: u32,
    run_tag: u32,
    payload: &[u8],
    key_len: usize,
    partition: i32,
    now: u64,
    warmup_end: u64,
) {
    let bytes = (payload.len() + key_len) as u64;
    match read_header(payload, run_tag) {
        Some(id) => meter.acked(index, id.seq, partition, bytes, id.sent_us, now, warmup_end),
        None => meter.error("UnreadableDeliveryReport"),
    }
}

/// librdkafka `retries` of kbench's producers (see [`client_config`]).
pub const PRODUCER_RETRIES: u32 = 20;

/// The librdkafka settings of a producer (the scenario's `client_configs` win).
pub fn client_config(
    s: &Scenario,
    cluster: &ClusterAccess,
    run_tag: u32,
    index: u32,
) -> ClientConfig {
    let p = &s.producers;
    let mut c = cluster.client(&format!("kbench-{}-p{index}", s.name));
    c.set("acks", p.acks.as_config())
        .set("compression.type", p.compression.as_config())
        .set("enable.idempotence", p.idempotent().to_string())
        .set(
            "message.timeout.ms",
            // librdkafka requires message.timeout.ms ≤ transaction.timeout.ms.
            if p.transactional {
                p.transaction_timeout.0.as_millis().min(30_000).to_string()
            } else if s.faults.is_empty() {
                "30000".to_string()
            } else {
                // Long enough to ride out a broker restart (see scenarios/README.md, [[faults]]).
                "60000".to_string()
            },
        )
        // librdkafka retries forever by default, so a broker error that does not go away (a
        // full disk: KAFKA_STORAGE_ERROR) would only surface as MsgTimedOut. Bounded retries
        // (with its back-off, 100 ms doubling up to 1 s: about 17 s of one error) fail such a
        // message with the broker's own error, well inside message.timeout.ms, while a
        // broker restart or leader fail-over (a few retries) is still ridden out.
        .set("retries", PRODUCER_RETRIES.to_string())
        // Bound what librdkafka may buffer so 16 producers stay within a few hundred MiB.
        .set(
            "queue.buffering.max.kbytes",
            (((64u64 << 10) / u64::from(p.count.max(1))).clamp(2 << 10, 32 << 10)).to_string(),
        )
        .set("queue.buffering.max.messages", "1000000");
    if !s.faults.is_empty() {
        // librdkafka backs off reconnects up to 10 s; Kafka's Java clients stop at 1 s. With
        // faults, 1 s, so the time to recover measures the cluster, not the client's back-off.
        c.set("reconnect.backoff.max.ms", "1000");
    }
    if let Some(l) = p.linger {
        c.set("linger.ms", format!("{}", l.0.as_secs_f64() * 1000.0));
    }
    if let Some(b) = p.batch_size {
        c.set("batch.size", b.0.to_string());
    }
    if let Some(m) = p.max_in_flight {
        c.set("max.in.flight.requests.per.connection", m.to_string());
    }
    if p.transactional {
        c.set("transactional.id", transactional_id(s, run_tag, index))
            .set(
                "transaction.timeout.ms",
                p.transaction_timeout.0.as_millis().to_string(),
            );
    }
    apply_client_configs(&mut c, &p.client_configs);
    c
}

/// The `transactional.id` of producer task `index`: stable within a run, unique across runs.
pub fn transactional_id(s: &Scenario, run_tag: u32, index: u32) -> String {
    format!("kbench-{}-{run_tag:08x}-p{index}", s.name)
}

/// Which transactions of a producer are aborted on purpose: exactly the share `ratio`, spread
/// evenly, with a phase that depends on the producer index so producers do not abort in step.
#[derive(Debug, Clone, Copy)]
pub struct AbortPlan {
    ratio: f64,
    phase: f64,
}

impl AbortPlan {
    /// The plan of producer `index`.
    pub fn new(ratio: f64, index: u32) -> AbortPlan {
        let mut x = u64::from(index).wrapping_add(0x9E37_79B9_7F4A_7C15);
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^= x >> 31;
        AbortPlan {
            ratio,
            phase: (x >> 11) as f64 / (1u64 << 53) as f64,
        }
    }

    /// Whether transaction `i` (0-based) is aborted.
    pub fn aborts(&self, i: u64) -> bool {
        let at = |i: u64| (i as f64 * self.ratio + self.phase).floor();
        self.ratio > 0.0 && at(i + 1) > at(i)
    }
}

/// Starts the task on a thread of its own. The thread returns an error only when the client
/// cannot be created at all; message-level errors are counted in the meter.
pub fn spawn(task: ProducerTask) -> std::io::Result<JoinHandle<Result<(), String>>> {
    std::thread::Builder::new()
        .name(format!("kbench-p{}", task.index))
        .spawn(move || run(task))
}

fn run(task: ProducerTask) -> Result<(), String> {
    let s = &task.scenario;
    let p = &s.producers;
    let size = p.message_size.0 as usize;
    let config = client_config(s, &task.cluster, task.run_tag, task.index);
    let wake = Wake::new().map_err(|e| {
        format!(
            "producer {}: cannot make the eventfd its delivery reports wake it with: {e}",
            task.index
        )
    })?;
    let ctx = Context {
        index: task.index,
        run_tag: task.run_tag,
        meter: task.meter.clone(),
        warmup_end: task.warmup_end.clone(),
        ring: PayloadRing::new(
            &task.filler,
            task.index,
            p.count,
            size,
            queue_bytes(&config),
            match p.stop() {
                scenario::Stop::Messages(n) => n,
                scenario::Stop::Duration(_) => u64::MAX,
            },
        ),
        wake,
        clock: ReportClock::default(),
    };
    let producer: BaseProducer<Context> = config
        .create_with_context(ctx)
        .map_err(|e| format!("producer {}: cannot create the client: {e}", task.index))?;
    let reports = Reports::new(&producer);
    let mut txn = if p.transactional {
        let id = transactional_id(s, task.run_tag, task.index);
        producer.init_transactions(TXN_TIMEOUT).map_err(|e| {
            format!(
                "producer {} (transactional.id {id}): init_transactions failed: {e}",
                task.index
            )
        })?;
        Some(Txn {
            id,
            per: u64::from(p.messages_per_transaction),
            plan: AbortPlan::new(p.abort_ratio, task.index),
            index: 0,
            open: None,
        })
    } else {
        None
    };
    task.gate.ready();
    let Some(start_us) = task.gate.wait(&task.stop) else {
        return Ok(());
    };
    let sender = Sender::new(&producer, &task.topic)
        .map_err(|e| format!("producer {}: topic {:?}: {e}", task.index, task.topic))?;
    let mut keys = KeyChooser::new(p.keys, p.key_set, task.partitions);
    let pacer = p.rate_each().map(|r| Pacer::new(start_us, r));
    let limit_us = start_us + p.time_limit.0.as_micros() as u64;
    let (max_messages, end_us) = match p.stop() {
        scenario::Stop::Messages(n) => (n, u64::MAX),
        scenario::Stop::Duration(d) => (
            u64::from(u32::MAX),
            start_us + (d + p.warmup.0).as_micros() as u64,
        ),
    };
    // A message whose ring buffer is still in flight is built here and copied by librdkafka.
    let mut scratch = Vec::new();
    let mut copied: u64 = 0;
    let mut seq: u64 = 0;
    while seq < max_messages && !task.stop.is_raised() {
        let sent_us = match pacer {
            Some(pacer) => {
                let due = pacer.due_us(seq);
                if due >= end_us {
                    break;
                }
                let target = due.min(limit_us);
                sleep_until(target, now_us, |d| reports.wait(d));
                due
            }
            None => now_us(),
        };
        if seq % SERVE_EVERY == 0 {
            reports.drain();
        }
        if sent_us >= end_us || sent_us >= limit_us {
            break;
        }
        if let Some(t) = txn.as_mut() {
            if t.open.is_none() {
                begin(&reports, &task, t, seq)?;
            }
        }
        let payload = match sender.ring().and_then(|r| r.claim(seq)) {
            Some((slot, buf)) => {
                task.filler
                    .build_header(buf, task.run_tag, task.index, seq, sent_us);
                Payload::Ring(slot)
            }
            None => {
                copied += 1;
                scratch.resize(size, 0);
                task.filler
                    .build(&mut scratch, task.run_tag, task.index, seq, sent_us);
                Payload::Copied(&scratch)
            }
        };
        let (key, partition) = keys.choose(task.index, seq);
        let bytes = (size + key.map_or(0, <[u8]>::len)) as u64;
        loop {
            match sender.send(payload, partition, key, sent_us) {
                Ok(()) => {
                    task.meter.sent(bytes);
                    break;
                }
                Err(RDKafkaErrorCode::QueueFull) => {
                    // librdkafka's queue is full: delivery reports make room.
                    reports.wait(Duration::from_millis(1));
                    if task.stop.is_raised() || now_us() >= limit_us {
                        sender.give_back(payload);
                        break;
                    }
                }
                Err(code) => {
                    sender.give_back(payload);
                    task.meter
                        .error(&error_kind(&KafkaError::MessageProduction(code)));
                    // Do not spin on a persistent error.
                    reports.wait(Duration::from_millis(1));
                    break;
                }
            }
        }
        seq += 1;
        if let Some(t) = txn.as_mut() {
            if t.open.is_some_and(|(first, _)| seq - first >= t.per) {
                finish(&reports, &task, t, seq)?;
            }
        }
    }
    if let Some(t) = txn.as_mut() {
        if t.open.is_some() {
            finish(&reports, &task, t, seq)?;
        }
    }
    tracing::debug!(
        producer = task.index,
        messages = seq,
        copied,
        "sent; copied: no free ring buffer (or no ring)"
    );
    // Wait for the outstanding delivery reports, bounded by the time limit and the stop flag.
    while producer.in_flight_count() > 0 {
        if task.stop.is_raised() || now_us() >= limit_us {
            break;
        }
        reports.wait(Duration::from_millis(5));
    }
    let left = producer.in_flight_count();
    if left > 0 {
        // Give up on them: purged messages get failed delivery reports, counted as failed.
        producer.purge(rdkafka::producer::PurgeConfig::default().queue().inflight());
    }
    Ok(())
}

/// Serves a producer's delivery reports on the sending thread ([`super::delivery`]).
struct Reports<'a> {
    producer: &'a BaseProducer<Context>,
    /// A handle of the client's main queue (where the reports land), to see whether it is
    /// empty; released on drop, before the producer (which it borrows).
    queue: *mut rdkafka::bindings::rd_kafka_queue_t,
}

/// Most events one [`Reports::drain`] serves, so sending goes on under a flood of reports.
const DRAIN_EVENTS: usize = 64;

// SAFETY (for every `unsafe` block of `Reports`): `queue` is a handle of the main queue of the
// borrowed producer's client, taken in `new` and released in `drop`, so it is live in between;
// the wake it is attached to is owned by the client's context.
#[allow(unsafe_code)]
impl<'a> Reports<'a> {
    /// Attaches the producer's wake to its report queue.
    fn new(producer: &'a BaseProducer<Context>) -> Self {
        let queue =
            unsafe { rdkafka::bindings::rd_kafka_queue_get_main(producer.client().native_ptr()) };
        unsafe { producer.context().wake.attach(queue) };
        Reports { producer, queue }
    }

    /// Events waiting in the queue.
    fn queued(&self) -> usize {
        unsafe { rdkafka::bindings::rd_kafka_queue_length(self.queue) }
    }

    /// Serves the reports librdkafka holds now, without waiting: one event (a batch's reports,
    /// or an error or a log line) per poll, one clock read per event.
    fn drain(&self) {
        let clock = &self.producer.context().clock;
        for _ in 0..DRAIN_EVENTS {
            if self.queued() == 0 {
                break;
            }
            clock.per_event(|| self.producer.poll(Duration::ZERO));
        }
    }

    /// Waits at most `timeout` for reports, then serves them.
    fn wait(&self, timeout: Duration) {
        self.drain();
        if self.queued() == 0 {
            self.producer.context().wake.wait(timeout);
            self.drain();
        }
    }
}

#[allow(unsafe_code)]
impl Drop for Reports<'_> {
    fn drop(&mut self) {
        unsafe { rdkafka::bindings::rd_kafka_queue_destroy(self.queue) };
    }
}

/// What a message is sent from: a buffer of the task's ring, which librdkafka reads in place
/// until the delivery report, or (when that buffer is still in flight) a scratch buffer that
/// librdkafka copies.
#[derive(Debug, Clone, Copy)]
enum Payload<'s> {
    Ring(usize),
    Copied(&'s [u8]),
}

/// Bytes librdkafka may queue per producer: `queue.buffering.max.kbytes` as configured (its
/// default when unset or unreadable), what the ring is sized by.
fn queue_bytes(config: &ClientConfig) -> usize {
    config
        .get("queue.buffering.max.kbytes")
        .and_then(|k| k.parse::<usize>().ok())
        .unwrap_or(1 << 20)
        .saturating_mul(1024)
}

/// Produces messages with `rd_kafka_produceva` directly: rust-rdkafka's `send` always asks for
/// `RD_KAFKA_MSG_F_COPY` and makes a `CString` of the topic per message. A ring buffer is handed
/// over without a copy (no flag: librdkafka neither copies nor frees it); a scratch payload with
/// `F_COPY`. Delivery reports are the same as `send`'s: the delivery opaque is `()` (null).
struct Sender<'a> {
    producer: &'a BaseProducer<Context>,
    /// librdkafka's handle of the topic, taken once: given the topic's name instead, librdkafka
    /// measures the string and looks the topic up for every message.
    topic: *mut rdkafka::bindings::rd_kafka_topic_t,
}

// SAFETY (for every `unsafe` block below): `producer.client().native_ptr()` is the live
// `rd_kafka_t` of a producer that outlives the `Sender` (borrowed). A ring buffer handed over
// without a flag must stay valid and unwritten until its delivery report: it lives in the
// producer's context, which the client keeps until it is destroyed (after every message), and
// the sending thread writes only buffers the reports have released (`PayloadRing`). A payload
// sent with `F_COPY` is copied before `rd_kafka_produceva` returns. Each field's union member is
// the one rdkafka.h's `rd_kafka_vu_t` names for its `RD_KAFKA_VTYPE_*`; the array outlives the
// call, and a non-null error is destroyed once.
// `topic` is a handle `new` took and `drop` releases (messages in flight hold their own).
#[allow(unsafe_code)]
impl<'a> Sender<'a> {
    fn new(producer: &'a BaseProducer<Context>, topic: &str) -> Result<Self, String> {
        let name = CString::new(topic).map_err(|e| format!("not a valid topic name: {e}"))?;
        let topic = unsafe {
            rdkafka::bindings::rd_kafka_topic_new(
                producer.client().native_ptr(),
                name.as_ptr(),
                std::ptr::null_mut(),
            )
        };
        if topic.is_null() {
            let code: RDKafkaErrorCode = unsafe { rdkafka::bindings::rd_kafka_last_error() }.into();
            return Err(format!("librdkafka refused the topic: {code}"));
        }
        Ok(Sender { producer, topic })
    }

    /// The producer's ring, if it has one.
    fn ring(&self) -> Option<&'a PayloadRing> {
        self.producer.context().ring.as_ref()
    }

    /// A payload that was not sent after all: its ring buffer is free again.
    fn give_back(&self, payload: Payload<'_>) {
        if let (Payload::Ring(slot), Some(ring)) = (payload, self.ring()) {
            ring.release_slot(slot);
        }
    }

    /// Hands `payload` to librdkafka (partition `None` = the partitioner's choice; the key is
    /// copied); on an error the payload is still the caller's ([`Sender::give_back`] or retry).
    /// The record's timestamp (CreateTime) is `sent_us`, the send time in the message's header,
    /// in milliseconds: given none, librdkafka reads the clock once more per message for it.
    fn send(
        &self,
        payload: Payload<'_>,
        partition: Option<i32>,
        key: Option<&[u8]>,
        sent_us: u64,
    ) -> Result<(), RDKafkaErrorCode> {
        use rdkafka::bindings::rd_kafka_vtype_t::*;
        use rdkafka::bindings::{rd_kafka_vu_s__bindgen_ty_1 as U, rd_kafka_vu_t as Vu};
        let (ptr, len, flags) = match (payload, self.ring()) {
            (Payload::Ring(slot), Some(ring)) => (ring.slot_ptr(slot), ring.buffer_len(), 0),
            (Payload::Copied(bytes), _) => (
                bytes.as_ptr(),
                bytes.len(),
                rdkafka::bindings::RD_KAFKA_MSG_F_COPY,
            ),
            (Payload::Ring(_), None) => return Err(RDKafkaErrorCode::InvalidArgument),
        };
        let (key_ptr, key_len) = key.map_or((std::ptr::null(), 0), |k| (k.as_ptr(), k.len()));
        let mem = |ptr: *const u8, size| U {
            mem: rdkafka::bindings::rd_kafka_vu_s__bindgen_ty_1__bindgen_ty_1 {
                ptr: ptr.cast_mut().cast(),
                size,
            },
        };
        // The array form of `rd_kafka_producev`: the same fields, read from memory rather than
        // through `va_arg` (callgrind: a quarter of librdkafka's work per message on the
        // sending thread went to walking the variadic list). The opaque and the headers are
        // left at their defaults (none).
        let vus = [
            Vu {
                vtype: RD_KAFKA_VTYPE_RKT,
                u: U { rkt: self.topic },
            },
            Vu {
                vtype: RD_KAFKA_VTYPE_PARTITION,
                u: U {
                    i32_: partition.unwrap_or(-1),
                },
            },
            Vu {
                vtype: RD_KAFKA_VTYPE_MSGFLAGS,
                u: U { i: flags },
            },
            Vu {
                vtype: RD_KAFKA_VTYPE_VALUE,
                u: mem(ptr, len),
            },
            Vu {
                vtype: RD_KAFKA_VTYPE_KEY,
                u: mem(key_ptr, key_len),
            },
            Vu {
                vtype: RD_KAFKA_VTYPE_TIMESTAMP,
                u: U {
                    i64_: (sent_us / 1000) as i64,
                },
            },
        ];
        let error = unsafe {
            rdkafka::bindings::rd_kafka_produceva(
                self.producer.client().native_ptr(),
                vus.as_ptr(),
                vus.len(),
            )
        };
        if error.is_null() {
            return Ok(());
        }
        // An error object is the caller's to destroy.
        let code = unsafe { rdkafka::bindings::rd_kafka_error_code(error) };
        unsafe { rdkafka::bindings::rd_kafka_error_destroy(error) };
        Err(code.into())
    }
}

#[allow(unsafe_code)]
impl Drop for Sender<'_> {
    fn drop(&mut self) {
        // SAFETY: the handle `new` took, released once.
        unsafe { rdkafka::bindings::rd_kafka_topic_destroy(self.topic) };
    }
}

/// Bound on each transaction call (init, commit, abort).
const TXN_TIMEOUT: Duration = Duration::from_secs(30);

/// The transaction state of a transactional task.
struct Txn {
    /// `transactional.id`, for messages.
    id: String,
    /// Messages per transaction.
    per: u64,
    /// Which transactions are aborted on purpose.
    plan: AbortPlan,
    /// Index of the next (or open) transaction.
    index: u64,
    /// The open transaction: first sequence and when it began (µs since the epoch).
    open: Option<(u64, u64)>,
}

fn begin(reports: &Reports<'_>, task: &ProducerTask, t: &mut Txn, seq: u64) -> Result<(), String> {
    reports.producer.begin_transaction().map_err(|e| {
        format!(
            "producer {} (transactional.id {}): begin_transaction failed: {e}",
            task.index, t.id
        )
    })?;
    task.meter.begin_txn();
    t.open = Some((seq, now_us()));
    Ok(())
}

/// Commits (or, as planned, aborts) the open transaction, which holds sequences `first..end`.
fn finish(reports: &Reports<'_>, task: &ProducerTask, t: &mut Txn, end: u64) -> Result<(), String> {
    let Some((first, began_us)) = t.open.take() else {
        return Ok(());
    };
    let producer = reports.producer;
    let seqs = (end > first).then(|| (first as u32, (end - 1) as u32));
    let abort = t.plan.aborts(t.index);
    t.index += 1;
    let fatal = |what: &str, e: &KafkaError| {
        let fenced = matches!(
            e.rdkafka_error_code(),
            Some(RDKafkaErrorCode::ProducerFenced | RDKafkaErrorCode::InvalidProducerEpoch)
        );
        format!(
            "producer {} (transactional.id {}): {what} failed with a fatal error{}: {e}",
            task.index,
            t.id,
            if fenced {
                " (fenced: another producer initialised the same transactional.id)"
            } else {
                ""
            }
        )
    };
    let is_fatal = |e: &KafkaError| match e {
        KafkaError::Transaction(r) => r.is_fatal(),
        _ => false,
    };
    if abort {
        // Let every message of the transaction be written first, so the abort covers records
        // that are in the log (what read_committed consumers must skip).
        wait_reports(reports, TXN_TIMEOUT);
        match producer.abort_transaction(TXN_TIMEOUT) {
            Ok(()) => {
                wait_reports(reports, Duration::from_secs(5));
                task.meter
                    .end_txn(task.index, seqs, TxnEnd::Aborted, 0, now_us());
                return Ok(());
            }
            Err(e) if is_fatal(&e) => return Err(fatal("abort_transaction", &e)),
            Err(e) => {
                task.meter
                    .error(&format!("AbortTransaction{}", error_kind(&e)));
                return Err(format!(
                    "producer {} (transactional.id {}): abort_transaction failed: {e}",
                    task.index, t.id
                ));
            }
        }
    }
    // rdkafka's `commit_transaction` flushes first, in polls that go on to the end of each
    // millisecond: waiting for the reports here, woken by each, keeps the commit latency to
    // the reports' own.
    wait_reports(reports, TXN_TIMEOUT);
    let mut attempts = 0;
    loop {
        match producer.commit_transaction(TXN_TIMEOUT) {
            Ok(()) => {
                wait_reports(reports, Duration::from_secs(5));
                let now = now_us();
                task.meter.end_txn(
                    task.index,
                    seqs,
                    TxnEnd::Committed,
                    now.saturating_sub(began_us),
                    now,
                );
                return Ok(());
            }
            Err(e) if is_fatal(&e) => return Err(fatal("commit_transaction", &e)),
            Err(KafkaError::Transaction(r)) if r.is_retriable() && attempts < 3 => {
                attempts += 1;
                task.meter
                    .error(&format!("CommitTransactionRetried{:?}", r.code()));
            }
            Err(e) => {
                // Abortable (or out of retries): abort, count, go on.
                task.meter
                    .error(&format!("CommitTransaction{}", error_kind(&e)));
                match producer.abort_transaction(TXN_TIMEOUT) {
                    Ok(()) => {
                        wait_reports(reports, Duration::from_secs(5));
                        task.meter
                            .end_txn(task.index, seqs, TxnEnd::AbortedOnError, 0, now_us());
                        return Ok(());
                    }
                    Err(e2) if is_fatal(&e2) => return Err(fatal("abort_transaction", &e2)),
                    Err(e2) => {
                        return Err(format!(
                            "producer {} (transactional.id {}): commit failed ({e}) and so did the abort: {e2}",
                            task.index, t.id
                        ))
                    }
                }
            }
        }
    }
}

/// Waits (at most `bound`) until every message handed to librdkafka has had its delivery report
/// served to the meter.
fn wait_reports(reports: &Reports<'_>, bound: Duration) {
    let deadline = std::time::Instant::now() + bound;
    reports.drain();
    while reports.producer.in_flight_count() > 0 {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            break;
        }
        reports.wait(left.min(Duration::from_millis(5)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(extra: &str) -> Scenario {
        let text = format!(
            "name = \"t\"\n[producers]\ncount = 1\nmessages_each = 10\nacks = \"all\"\n{extra}"
        );
        let loaded = crate::scenario::load_str(&text, std::path::Path::new("t.toml"), &[])
            .expect("scenario");
        loaded.variants[0].scenario.clone()
    }

    #[test]
    fn retries_are_bounded_so_a_lasting_broker_error_surfaces_as_itself() {
        let c = client_config(
            &scenario(""),
            &ClusterAccess::plaintext("127.0.0.1:9092"),
            1,
            0,
        );
        assert_eq!(c.get("retries"), Some("20"));
        let mine = scenario("client_configs = { retries = 3 }");
        let c = client_config(&mine, &ClusterAccess::plaintext("127.0.0.1:9092"), 1, 0);
        assert_eq!(
            c.get("retries"),
            Some("3"),
            "the scenario's client_configs win"
        );
    }

    #[test]
    fn a_refused_payload_stays_the_senders_and_an_accepted_ring_buffer_is_held_until_its_report() {
        let filler = Filler::new(crate::scenario::PayloadKind::Random, 1.0, 64, 1);
        let ctx = Context {
            index: 0,
            run_tag: 1,
            meter: Arc::new(ProducerMeter::default()),
            warmup_end: Arc::new(WarmupEnd::default()),
            ring: PayloadRing::new(&filler, 0, 1, 64, 1 << 20, 2),
            wake: Wake::new().expect("eventfd"),
            clock: ReportClock::default(),
        };
        // Nothing listens there: librdkafka queues locally, one message at most.
        let producer: BaseProducer<Context> = ClientConfig::new()
            .set("bootstrap.servers", "127.0.0.1:1")
            .set("queue.buffering.max.messages", "1")
            .set("message.timeout.ms", "1000")
            .create_with_context(ctx)
            .expect("client");
        let sender = Sender::new(&producer, "t").expect("topic");
        let ring = sender.ring().expect("a ring");
        let (slot, buf) = ring.claim(0).expect("free");
        filler.build_header(buf, 1, 0, 0, 7);
        assert!(sender.send(Payload::Ring(slot), Some(0), None, 7).is_ok());
        assert!(ring.claim(0).is_none(), "librdkafka holds it");
        let mut scratch = vec![0u8; 64];
        filler.build(&mut scratch, 1, 0, 1, 7);
        match sender.send(Payload::Copied(&scratch), Some(0), Some(b"k"), 7) {
            Err(RDKafkaErrorCode::QueueFull) => {
                // Still ours, intact: it can be sent again.
                let id = read_header(&scratch, 1).expect("our message");
                assert_eq!((id.seq, id.sent_us), (1, 7));
            }
            other => panic!("expected QueueFull, got {other:?}"),
        }
        let (second, _) = ring.claim(1).expect("free");
        assert_eq!(
            sender.send(Payload::Ring(second), Some(0), None, 7),
            Err(RDKafkaErrorCode::QueueFull)
        );
        sender.give_back(Payload::Ring(second));
        assert!(ring.claim(1).is_some(), "given back");
        // The first message times out after a second: its (failed) delivery report wakes the
        // waiting sender, which serves it, and that frees its buffer.
        let reports = Reports::new(&producer);
        let waited = std::time::Instant::now();
        reports.wait(Duration::from_secs(30));
        while producer.in_flight_count() > 0 && waited.elapsed() < Duration::from_secs(30) {
            reports.wait(Duration::from_secs(30)); // a wake from another event (a log line)
        }
        assert!(
            waited.elapsed() < Duration::from_secs(20),
            "woken by the report, not by the wait's end: {:?}",
            waited.elapsed()
        );
        assert_eq!(producer.in_flight_count(), 0, "the report was served");
        assert!(ring.claim(0).is_some(), "released by the report");
        let failed = producer.context().meter.with_state(|s| s.failed);
        assert_eq!(failed, 1);
        let e = Sender::new(&producer, "bad\0topic")
            .err()
            .expect("a NUL is refused");
        assert!(e.contains("not a valid topic name"), "{e}");
    }

    #[test]
    fn abort_plan_aborts_exactly_the_share_and_is_reproducible() {
        for (ratio, index) in [(0.1, 0), (0.25, 3), (0.5, 7), (1.0, 1)] {
            let plan = AbortPlan::new(ratio, index);
            let aborted = (0..1000).filter(|i| plan.aborts(*i)).count();
            assert!(
                (aborted as f64 - 1000.0 * ratio).abs() <= 1.0,
                "{ratio}: {aborted}"
            );
            let again = AbortPlan::new(ratio, index);
            assert!((0..100).all(|i| plan.aborts(i) == again.aborts(i)));
        }
        assert!(!(0..1000).any(|i| AbortPlan::new(0.0, 2).aborts(i)));
        // Different producers abort different transactions.
        let a: Vec<bool> = (0..40).map(|i| AbortPlan::new(0.1, 0).aborts(i)).collect();
        let b: Vec<bool> = (0..40).map(|i| AbortPlan::new(0.1, 1).aborts(i)).collect();
        assert_ne!(a, b);
    }
}
