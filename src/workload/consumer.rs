//! One consumer-group member: a `BaseConsumer` subscribed to the run's topic on a thread of its
//! own, recording every message's identity and end-to-end latency in its [`ConsumerMeter`] and
//! committing as the scenario says. The run decides when the group has drained and raises the
//! stop flag.
//!
//! Messages are taken from the client in batches (up to [`POLL_BATCH`]: the first waited for,
//! the rest only if the client already holds them), then checked one by one and recorded
//! together: one clock read and one meter lock per batch, not per message. Every message of a
//! batch is received at the one time read after the batch was taken, so the end-to-end latency
//! it records (producer time stamp to consumer receipt) may be later than the message's own
//! hand-over by the microseconds taking the batch needed, never earlier.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, ClientContext};

use super::payload::Check;
use super::{apply_client_configs, error_kind, Stop};
use crate::measure::{now_us, Arrival, ConsumerMeter, WarmupEnd};
use crate::scenario::{Commit, Isolation, Scenario, Start};
use crate::sut::ClusterAccess;

/// Everything one member needs.
#[derive(Debug, Clone)]
pub struct MemberTask {
    /// Group index (0-based).
    pub group_index: u32,
    /// Member index within the group (0-based).
    pub member: u32,
    /// Consumer group id.
    pub group_id: String,
    /// How to recognise this run's messages and check them (length, checksum, transform).
    pub check: Check,
    /// Topic to read.
    pub topic: String,
    /// The cluster: bootstrap servers and the settings every client gets.
    pub cluster: ClusterAccess,
    /// The scenario.
    pub scenario: Arc<Scenario>,
    /// Where this member records.
    pub meter: Arc<ConsumerMeter>,
    /// Start of the measured window.
    pub warmup_end: Arc<WarmupEnd>,
    /// Raised to stop.
    pub stop: Stop,
    /// Raised (before `stop`) when the cluster is gone: stop without closing the client.
    pub abandon: Stop,
    /// Raised by a `kill_member` fault: drop the client at once, without committing or
    /// leaving the group (the coordinator notices only when the session times out).
    pub kill: Stop,
}

struct Context {
    meter: Arc<ConsumerMeter>,
}

impl ClientContext for Context {}

impl ConsumerContext for Context {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                self.meter.assigned(tpl.count());
                let held = tpl.elements().iter().map(|e| e.partition()).collect();
                self.meter.with_state(|st| st.held = held);
            }
            Rebalance::Revoke(_) => {
                self.meter.assigned(0);
                self.meter.with_state(|st| st.held.clear());
            }
            Rebalance::Error(e) => self.meter.error(&error_kind(e)),
        }
    }
}

/// The librdkafka settings of a member (the scenario's `client_configs` win).
pub fn client_config(task: &MemberTask) -> ClientConfig {
    let k = &task.scenario.consumers;
    let mut c = task
        .cluster
        .client(&format!("{}-m{}", task.group_id, task.member));
    c.set("group.id", &task.group_id)
        .set("enable.auto.commit", (k.commit == Commit::Auto).to_string())
        .set(
            "auto.offset.reset",
            match k.start {
                Start::Earliest => "earliest",
                Start::Latest => "latest",
            },
        )
        .set(
            "isolation.level",
            match k.isolation {
                Isolation::ReadCommitted => "read_committed",
                Isolation::ReadUncommitted => "read_uncommitted",
            },
        )
        .set("enable.partition.eof", "false")
        // librdkafka pre-fetches up to 64 MiB per member by default; half keeps a group of 4 within
        // the memory budget (less starves the consumer: 8 MiB gave a third of the throughput).
        .set("queued.max.messages.kbytes", "32768")
        .set("fetch.queue.backoff.ms", super::FETCH_QUEUE_BACKOFF_MS);
    if !task.scenario.faults.is_empty() {
        // As for producers: reconnect within 1 s of a restarted broker (librdkafka: up to 10 s).
        c.set("reconnect.backoff.max.ms", "1000");
    }
    apply_client_configs(&mut c, &k.client_configs);
    c
}

/// Starts the member on a thread of its own.
pub fn spawn(task: MemberTask) -> std::io::Result<JoinHandle<Result<(), String>>> {
    std::thread::Builder::new()
        .name(format!("kbench-g{}m{}", task.group_index, task.member))
        .spawn(move || run(task))
}

fn run(task: MemberTask) -> Result<(), String> {
    let consumer: BaseConsumer<Context> = client_config(&task)
        .create_with_context(Context {
            meter: task.meter.clone(),
        })
        .map_err(|e| {
            format!(
                "consumer {} member {}: cannot create the client: {e}",
                task.group_id, task.member
            )
        })?;
    consumer.subscribe(&[&task.topic]).map_err(|e| {
        format!(
            "consumer {}: cannot subscribe to {}: {e}",
            task.group_id, task.topic
        )
    })?;
    let commit = task.scenario.consumers.commit;
    let mut uncommitted = 0u64;
    let mut last_commit = Instant::now();
    // One clock read per poll batch serves every message's latency and this timer (a second
    // read per message was a fifth of the member thread's time at 300k msgs/s, docs/hot-path.md).
    let mut last_position_us = now_us();
    let warmup_end = task.warmup_end.clone();
    while !task.stop.is_raised() {
        if task.kill.is_raised() {
            task.meter.assigned(0);
            destroy_without_leaving(consumer);
            return Ok(());
        }
        // Wait up to 100 ms for a message, then take what the client already holds without
        // waiting, up to POLL_BATCH: one clock read and one meter lock for the batch.
        let mut batch = Vec::new();
        let mut wait = Duration::from_millis(100);
        while batch.len() < POLL_BATCH {
            match consumer.poll(wait) {
                Some(Ok(m)) => batch.push(m),
                Some(Err(e)) => task.meter.error(&error_kind(&e)),
                None => break,
            }
            wait = Duration::ZERO;
        }
        let now = now_us();
        if now.saturating_sub(last_position_us) >= 100_000 {
            // The position moves past records the application never sees (transaction markers,
            // aborted records under read_committed); the drain needs it to know a partition is
            // read to its end.
            record_positions(&consumer, &task.meter);
            last_position_us = now;
        }
        record_batch(
            &task.check,
            &task.meter,
            batch.iter().map(|m| Consumed {
                payload: m.payload().unwrap_or_default(),
                key_len: m.key().map_or(0, <[u8]>::len),
                partition: m.partition(),
                offset: m.offset(),
            }),
            now,
            warmup_end.get(),
        );
        uncommitted += batch.len() as u64;
        if uncommitted > 0
            && matches!(commit, Commit::ManualSync | Commit::ManualAsync)
            && (uncommitted >= 10_000 || last_commit.elapsed() >= Duration::from_millis(200))
        {
            commit_now(&consumer, commit, &task.meter);
            uncommitted = 0;
            last_commit = Instant::now();
        }
    }
    if task.abandon.is_raised() {
        // The cluster is gone: closing would wait for a group leave nobody answers. The
        // process is about to end, so let the client go without its goodbye.
        std::mem::forget(consumer);
        return Ok(());
    }
    if uncommitted > 0 && matches!(commit, Commit::ManualSync | Commit::ManualAsync) {
        commit_now(&consumer, Commit::ManualSync, &task.meter);
    }
    Ok(())
}

/// Most messages a member takes from the client per clock read and meter lock: the first it
/// waits for, then only those the client already holds (taking them is microseconds, so every
/// message of a batch is received at the batch's one time stamp, read after the last).
pub const POLL_BATCH: usize = 256;

/// One message as the client handed it over.
#[derive(Debug, Clone, Copy)]
pub struct Consumed<'a> {
    /// The value.
    pub payload: &'a [u8],
    /// Length of the key (0 without one).
    pub key_len: usize,
    /// Partition index it was read from.
    pub partition: i32,
    /// Its offset there.
    pub offset: i64,
}

/// What consumed messages cost kbench: check each (run tag, length, CRC32C of the whole
/// message, a pipeline's transform), then record them, all received at `now` (µs since the
/// epoch, read once after the batch was taken), in the member's meter under one lock (counters,
/// histograms, ledger, offsets). Public for the instruction-count guard (`benches/hot_path.rs`),
/// which drives exactly this.
pub fn record_batch<'a>(
    check: &Check,
    meter: &ConsumerMeter,
    messages: impl IntoIterator<Item = Consumed<'a>>,
    now: u64,
    warmup_end: u64,
) {
    let arrivals: Vec<Arrival> = messages
        .into_iter()
        .map(|m| Arrival {
            id: check.identify(m.payload),
            partition: m.partition,
            offset: m.offset,
            bytes: (m.payload.len() + m.key_len) as u64,
        })
        .collect();
    meter.received_all(&arrivals, now, warmup_end);
}

/// Destroys the client the way a crashed process would leave it: no LeaveGroup, no commit.
fn destroy_without_leaving(consumer: BaseConsumer<Context>) {
    let rk = consumer.client().native_ptr();
    // SAFETY: `rk` is the live handle owned by `consumer`. `rd_kafka_destroy_flags` with
    // NO_CONSUMER_CLOSE frees it without the consumer close (which would leave the group), and
    // the Rust wrapper is then forgotten so its Drop never touches the freed handle (its small
    // queue handle is leaked, once per killed member). rdkafka offers no safe way to do this.
    #[allow(unsafe_code)]
    unsafe {
        rdkafka::bindings::rd_kafka_destroy_flags(
            rk,
            rdkafka::bindings::RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE,
        );
    }
    std::mem::forget(consumer);
}

/// Records the consumer's position in every assigned partition (a local call, no request).
pub(crate) fn record_positions<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    meter: &ConsumerMeter,
) {
    if let Ok(tpl) = consumer.position() {
        for e in tpl.elements() {
            if let rdkafka::Offset::Offset(o) = e.offset() {
                meter.position(e.partition(), o);
            }
        }
    }
}

fn commit_now(consumer: &BaseConsumer<Context>, commit: Commit, meter: &ConsumerMeter) {
    let mode = if commit == Commit::ManualSync {
        CommitMode::Sync
    } else {
        CommitMode::Async
    };
    if let Err(e) = consumer.commit_consumer_state(mode) {
        meter.error(&format!("Commit{}", error_kind(&e)));
    }
}
