//! The workload: producer tasks and consumer-group members, one rdkafka client each, on threads
//! of their own.
//!
//! Each producer is one thread with one `BaseProducer`: it builds and sends messages and serves
//! the client's delivery reports itself ([`delivery`]), which record each acknowledgement in the
//! producer's meter and ledger. Reports are served between sends and whenever the thread would
//! wait, woken by librdkafka through an eventfd the moment a report arrives, so a report is timed
//! when it arrives, not at the next poll (an earlier attempt that only polled between sends
//! recorded a 0.3 ms acknowledgement as 1.7 ms with a rate set; a poll thread per producer, the
//! design before, cost a thread wake-up per report batch and freed every message on another
//! thread than the one that allocated it). Messages are sent from a ring of buffers librdkafka
//! reads in place ([`ring`]): per message the thread writes a 32-byte header, and the report
//! gives the buffer back.
//!
//! With `[pipeline]`, transform workers ([`pipeline`]) sit between the producers' topic and the
//! topic the consumer groups read.
//!
//! Each consumer member is a `BaseConsumer` polled by its own thread. The threads stop on their own (message count, duration) or
//! when the shared [`Stop`] flag is raised (drain reached, Ctrl-C, a broker died, time limit).

pub mod consumer;
mod delivery;
pub mod payload;
pub mod pipeline;
pub mod producer;
pub mod rate;
pub mod ring;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::ClientConfig;

use crate::scenario::ConfigValue;

/// A flag every task checks between messages.
#[derive(Debug, Clone, Default)]
pub struct Stop(Arc<AtomicBool>);

impl Stop {
    /// Raises the flag.
    pub fn raise(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
    /// Whether the flag is up.
    pub fn is_raised(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// The producers' starting line: each producer creates its client (and initialises its
/// transactions), reports [`StartGate::ready`] and waits; the run opens the gate once all are
/// ready, and the time it opens at is the first send: client set-up stays out of the
/// measured window and out of every latency (with a rate, the pacer's schedule starts there).
#[derive(Debug, Clone, Default)]
pub struct StartGate(Arc<(AtomicUsize, AtomicU64)>);

impl StartGate {
    /// A producer's client is ready.
    pub fn ready(&self) {
        self.0 .0.fetch_add(1, Ordering::SeqCst);
    }
    /// Producers ready so far.
    pub fn ready_count(&self) -> usize {
        self.0 .0.load(Ordering::SeqCst)
    }
    /// Opens the gate: producing starts at `start_us` (µs since the epoch, not 0).
    pub fn open(&self, start_us: u64) {
        self.0 .1.store(start_us.max(1), Ordering::SeqCst);
    }
    /// Waits for the gate; the start time, or `None` when `stop` was raised first.
    pub fn wait(&self, stop: &Stop) -> Option<u64> {
        loop {
            let start = self.0 .1.load(Ordering::SeqCst);
            if start > 0 {
                return Some(start);
            }
            if stop.is_raised() {
                return None;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

/// The kind a broker's storage failure is counted under: KAFKA_STORAGE_ERROR (56), a log
/// directory that is full or failing. The run stops producing when it sees one (a full disk does
/// not heal itself during a run) and names it in its verdict.
pub const STORAGE_ERROR_KIND: &str = "storage";

/// librdkafka's `fetch.queue.backoff.ms` for kbench's readers (group members, pipeline workers,
/// the final read). With librdkafka's default, 1000, a partition whose pre-fetched messages are
/// over `queued.max.messages.kbytes` is not fetched again for a whole second, however fast the
/// application empties the queue: a reader faster than its fetches read in bursts with 1 s gaps
/// (the final read of 1 GiB from three brokers took 4–7 s, `rdkafka_performance -C` 1.1–1.6 s,
/// and a member capped at 8 MiB a third of the throughput of one at 32 MiB). 10 ms keeps the
/// queue bound and ends the gaps; a scenario's `client_configs` can set it.
pub const FETCH_QUEUE_BACKOFF_MS: &str = "10";

/// The name an error is counted under: [`STORAGE_ERROR_KIND`] for a broker's storage failure,
/// otherwise librdkafka's error code name (`MessageTimedOut`, `QueueFull`,
/// `BrokerTransportFailure`, ...), or the error variant when there is no code.
pub fn error_kind(e: &KafkaError) -> String {
    match e.rdkafka_error_code() {
        Some(RDKafkaErrorCode::KafkaStorageError) => STORAGE_ERROR_KIND.to_string(),
        Some(code) => format!("{code:?}"),
        None => {
            let debug = format!("{e:?}");
            debug
                .split(['(', ' ', '{'])
                .next()
                .unwrap_or("Unknown")
                .to_string()
        }
    }
}

/// Applies a scenario's `client_configs` over kbench's own settings (the user's win).
pub(crate) fn apply_client_configs(
    config: &mut ClientConfig,
    overrides: &std::collections::BTreeMap<String, ConfigValue>,
) {
    for (k, v) in overrides {
        config.set(k, &v.0);
    }
}

#[cfg(test)]
mod tests;
