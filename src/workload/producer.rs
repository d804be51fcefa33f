//! One producer task: a `ThreadedProducer` fed by a thread of its own, sending `messages_each` messages
//! (or for `duration`) flat out or paced ([`super::rate::Pacer`]), and recording every delivery
//! report in its [`ProducerMeter`].

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientConfig, ClientContext};

use super::payload::{read_header, write_header, Filler, KeyChooser};
use super::rate::{sleep_until, Pacer};
use super::{apply_client_configs, error_kind, Stop};
use crate::measure::{now_us, ProducerMeter, WarmupEnd};
use crate::scenario::{self, Scenario};

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
    /// Bootstrap servers.
    pub bootstrap: String,
    /// The scenario.
    pub scenario: Arc<Scenario>,
    /// Shared payload pool.
    pub filler: Filler,
    /// Where this task records.
    pub meter: Arc<ProducerMeter>,
    /// Start of the measured window.
    pub warmup_end: Arc<WarmupEnd>,
    /// When producing starts, µs since the epoch (the schedule's origin).
    pub start_us: u64,
    /// Raised to stop early.
    pub stop: Stop,
}

struct Context {
    index: u32,
    run_tag: u32,
    meter: Arc<ProducerMeter>,
    warmup_end: Arc<WarmupEnd>,
}

impl ClientContext for Context {}

impl ProducerContext for Context {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(m) => {
                let payload = m.payload().unwrap_or_default();
                let bytes = (payload.len() + m.key().map_or(0, <[u8]>::len)) as u64;
                match read_header(payload, self.run_tag) {
                    Some(id) => self.meter.acked(
                        self.index,
                        id.seq,
                        m.partition(),
                        bytes,
                        id.sent_us,
                        now_us(),
                        self.warmup_end.get(),
                    ),
                    None => self.meter.error("UnreadableDeliveryReport"),
                }
            }
            Err((e, _)) => self.meter.failed(&error_kind(e)),
        }
    }
}

/// The librdkafka settings of a producer (the scenario's `client_configs` win).
pub fn client_config(s: &Scenario, bootstrap: &str, index: u32) -> ClientConfig {
    let p = &s.producers;
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("client.id", format!("kbench-{}-p{index}", s.name))
        .set("acks", p.acks.as_config())
        .set("compression.type", p.compression.as_config())
        .set("enable.idempotence", p.idempotence.to_string())
        .set("message.timeout.ms", "30000")
        // Bound what librdkafka may buffer so 16 producers stay within a few hundred MiB.
        .set(
            "queue.buffering.max.kbytes",
            (((64u64 << 10) / u64::from(p.count.max(1))).clamp(2 << 10, 32 << 10)).to_string(),
        )
        .set("queue.buffering.max.messages", "1000000");
    if let Some(l) = p.linger {
        c.set("linger.ms", format!("{}", l.0.as_secs_f64() * 1000.0));
    }
    if let Some(b) = p.batch_size {
        c.set("batch.size", b.0.to_string());
    }
    if let Some(m) = p.max_in_flight {
        c.set("max.in.flight.requests.per.connection", m.to_string());
    }
    apply_client_configs(&mut c, &p.client_configs);
    c
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
    let ctx = Context {
        index: task.index,
        run_tag: task.run_tag,
        meter: task.meter.clone(),
        warmup_end: task.warmup_end.clone(),
    };
    let producer: ThreadedProducer<Context> = client_config(s, &task.bootstrap, task.index)
        .create_with_context(ctx)
        .map_err(|e| format!("producer {}: cannot create the client: {e}", task.index))?;
    let size = p.message_size.0 as usize;
    let mut buf = vec![0u8; size];
    let mut keys = KeyChooser::new(p.keys, p.key_set, task.partitions);
    let pacer = p.rate_each().map(|r| Pacer::new(task.start_us, r));
    let limit_us = task.start_us + p.time_limit.0.as_micros() as u64;
    let (max_messages, end_us) = match p.stop() {
        scenario::Stop::Messages(n) => (n, u64::MAX),
        scenario::Stop::Duration(d) => (
            u64::from(u32::MAX),
            task.start_us + (d + p.warmup.0).as_micros() as u64,
        ),
    };
    let mut seq: u64 = 0;
    while seq < max_messages && !task.stop.is_raised() {
        let sent_us = match pacer {
            Some(pacer) => {
                let due = pacer.due_us(seq);
                if due >= end_us {
                    break;
                }
                let target = due.min(limit_us);
                sleep_until(target, now_us);
                due
            }
            None => now_us(),
        };
        if sent_us >= end_us || sent_us >= limit_us {
            break;
        }
        write_header(&mut buf, task.run_tag, task.index, seq, sent_us);
        task.filler.fill(&mut buf, task.index, seq);
        let (key, partition) = keys.choose(task.index, seq);
        let mut record: BaseRecord<'_, [u8], [u8], ()> =
            BaseRecord::to(&task.topic).payload(&buf[..]);
        if let Some(k) = key {
            record = record.key(k);
        }
        if let Some(part) = partition {
            record = record.partition(part);
        }
        let bytes = (size + key.map_or(0, <[u8]>::len)) as u64;
        loop {
            match producer.send(record) {
                Ok(()) => {
                    task.meter.sent(bytes);
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    // librdkafka's queue is full: wait for delivery reports to make room.
                    std::thread::sleep(Duration::from_micros(500));
                    if task.stop.is_raised() || now_us() >= limit_us {
                        break;
                    }
                    record = back;
                }
                Err((e, _)) => {
                    task.meter.error(&error_kind(&e));
                    // Do not spin on a persistent error.
                    std::thread::sleep(Duration::from_millis(1));
                    break;
                }
            }
        }
        seq += 1;
    }
    // Wait for the outstanding delivery reports, bounded by the time limit and the stop flag.
    while producer.in_flight_count() > 0 {
        if task.stop.is_raised() || now_us() >= limit_us {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let left = producer.in_flight_count();
    if left > 0 {
        // Give up on them: purged messages get failed delivery reports, counted as failed.
        producer.purge(rdkafka::producer::PurgeConfig::default().queue().inflight());
    }
    Ok(())
}
