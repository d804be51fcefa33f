//! The cluster a run is pointed at: an embedded cluster of `kbroker` processes that kbench starts
//! (and always stops), or an external cluster given by `--bootstrap`, used as is.
//!
//! Both are only ever talked to through rdkafka and the Kafka protocol, so everything the run
//! does against kbroker it does unchanged against Apache Kafka or Redpanda.

pub mod embedded;
pub mod netns;
pub mod topic;

use std::path::PathBuf;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;

use crate::summary::{TargetInfo, TargetKind};
pub use embedded::EmbeddedCluster;

/// Why the cluster cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// A broker process could not be started.
    #[error("broker {id}: cannot start `{command}`: {source}")]
    Spawn {
        /// Broker id.
        id: u32,
        /// The command line.
        command: String,
        /// Why.
        source: std::io::Error,
    },
    /// A broker process exited before it answered Metadata.
    #[error("broker {id} exited during start-up ({status}); last lines of {log}:\n{tail}")]
    Exited {
        /// Broker id.
        id: u32,
        /// Exit status.
        status: String,
        /// Log file.
        log: String,
        /// Its last lines.
        tail: String,
    },
    /// The cluster did not answer Metadata in time.
    #[error("{what} did not answer Metadata within {timeout:?} at {bootstrap}: {detail}")]
    Unreachable {
        /// "embedded broker 1", "the cluster".
        what: String,
        /// Bootstrap servers.
        bootstrap: String,
        /// How long we waited.
        timeout: Duration,
        /// Last error.
        detail: String,
    },
    /// Something else about the output folder or the system.
    #[error("{0}")]
    Io(String),
}

/// The cluster of a run.
#[derive(Debug)]
pub enum Target {
    /// Broker processes kbench started; stopped when this is dropped.
    Embedded(EmbeddedCluster),
    /// A cluster given by bootstrap servers.
    External {
        /// `host:port,...`.
        bootstrap: String,
        /// Brokers seen in Metadata.
        brokers: u32,
    },
}

impl Target {
    /// Connects to an external cluster and checks that it answers Metadata.
    pub fn external(bootstrap: &str, timeout: Duration) -> Result<Target, TargetError> {
        let brokers = wait_for_metadata(bootstrap, timeout, "the cluster", 1, || None)?;
        Ok(Target::External {
            bootstrap: bootstrap.to_string(),
            brokers,
        })
    }

    /// Bootstrap servers, `host:port,...`.
    pub fn bootstrap(&self) -> String {
        match self {
            Target::Embedded(c) => c.bootstrap(),
            Target::External { bootstrap, .. } => bootstrap.clone(),
        }
    }

    /// What goes into `summary.json`.
    pub fn info(&self) -> TargetInfo {
        match self {
            Target::Embedded(c) => TargetInfo {
                kind: TargetKind::Embedded,
                bootstrap: c.bootstrap(),
                brokers: c.len() as u32,
            },
            Target::External { bootstrap, brokers } => TargetInfo {
                kind: TargetKind::External,
                bootstrap: bootstrap.clone(),
                brokers: *brokers,
            },
        }
    }

    /// Broker processes to watch: (label, pid).
    pub fn processes(&self) -> Vec<(String, u32)> {
        match self {
            Target::Embedded(c) => c.processes(),
            Target::External { .. } => Vec::new(),
        }
    }

    /// Log directories of the brokers, when kbench can see them.
    pub fn log_dirs(&self) -> Option<Vec<PathBuf>> {
        match self {
            Target::Embedded(c) => Some(c.log_dirs()),
            Target::External { .. } => None,
        }
    }

    /// Ids of embedded brokers a fault took down and that are still down.
    pub fn down_on_purpose(&self) -> Vec<u32> {
        match self {
            Target::Embedded(c) => c.down_on_purpose(),
            Target::External { .. } => Vec::new(),
        }
    }

    /// A broker that exited since start, described; `None` while all run (or for external).
    pub fn dead_broker(&mut self) -> Option<String> {
        match self {
            Target::Embedded(c) => c.dead_broker(),
            Target::External { .. } => None,
        }
    }
}

/// Asks for Metadata until it lists at least `min_brokers` brokers (returns the broker count)
/// or `timeout` passes; `gave_up` is asked between attempts and may end the wait early with a
/// better error.
pub fn wait_for_metadata(
    bootstrap: &str,
    timeout: Duration,
    what: &str,
    min_brokers: u32,
    mut gave_up: impl FnMut() -> Option<TargetError>,
) -> Result<u32, TargetError> {
    let unreachable = |detail: String| TargetError::Unreachable {
        what: what.to_string(),
        bootstrap: bootstrap.to_string(),
        timeout,
        detail,
    };
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("client.id", "kbench-probe")
        .set("log_level", "3")
        .create()
        .map_err(|e| {
            unreachable(format!(
                "invalid bootstrap servers ({e}); write host:port,host:port"
            ))
        })?;
    let deadline = std::time::Instant::now() + timeout;
    let mut last = String::from("no answer");
    loop {
        if let Some(e) = gave_up() {
            return Err(e);
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(unreachable(last));
        }
        match consumer.fetch_metadata(None, left.min(Duration::from_secs(1))) {
            Ok(md) if !md.brokers().is_empty() && md.brokers().len() as u32 >= min_brokers => {
                return Ok(md.brokers().len() as u32)
            }
            Ok(md) if md.brokers().is_empty() => last = "Metadata listed no brokers".to_string(),
            Ok(md) => {
                let ids: Vec<String> = md.brokers().iter().map(|b| b.id().to_string()).collect();
                last = format!(
                    "Metadata lists {} of the {min_brokers} brokers (ids {}); the others have not joined the cluster",
                    ids.len(),
                    ids.join(",")
                )
            }
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
