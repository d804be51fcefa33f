//! The workload: producer tasks and consumer-group members, one rdkafka client each, on threads
//! of their own.
//!
//! Each producer is a `ThreadedProducer`: the task's thread only builds and sends messages, and
//! rdkafka's poll thread for that client runs the delivery callback (which records the
//! acknowledgement in the producer's meter and ledger) the moment a report arrives. Polling from
//! the sending thread instead made acknowledgements wait for the next poll: with a rate set, a
//! 0.3 ms acknowledgement was recorded as 1.7 ms. The sending thread touches only atomics, the
//! poll thread takes the meter's lock, so the two never contend.
//!
//! With `[pipeline]`, transform workers ([`pipeline`]) sit between the producers' topic and the
//! topic the consumer groups read.
//!
//! Each consumer member is a `BaseConsumer` polled by its own thread. The threads stop on their own (message count, duration) or
//! when the shared [`Stop`] flag is raised (drain reached, Ctrl-C, a broker died, time limit).

pub mod consumer;
pub mod payload;
pub mod pipeline;
pub mod producer;
pub mod rate;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rdkafka::error::KafkaError;
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

/// The name an error is counted under: librdkafka's error code name (`MessageTimedOut`,
/// `QueueFull`, `BrokerTransportFailure`, ...), or the error variant when there is no code.
pub fn error_kind(e: &KafkaError) -> String {
    match e.rdkafka_error_code() {
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
