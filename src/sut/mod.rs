//! The system under test: the cluster a run is pointed at, an embedded cluster of `kbroker`
//! processes that kbench starts (and always stops), or an external cluster given by
//! `--bootstrap`, used as is. (Named `sut`, not `target`, so that it is not mistaken for Cargo's
//! build folder; `summary.json` still calls it the run's `target`.)
//!
//! Both are only ever talked to through rdkafka and the Kafka protocol, so everything the run
//! does against kbroker it does unchanged against Apache Kafka or Redpanda.

mod access;
pub mod embedded;
pub mod netns;
pub mod probe;
pub mod topic;

use std::path::PathBuf;
use std::time::Duration;

use std::sync::{Mutex, PoisonError};

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::ClientContext;

use crate::summary::{TargetInfo, TargetKind};
pub use access::{load_client_config, ClientConfigError, ClusterAccess};
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
    /// The cluster refused the client's security settings (TLS, SASL).
    #[error(
        "{bootstrap} refused the connection's security (security.protocol={protocol}): {detail}; \
         check --client-config / [cluster] client_configs (security.protocol, sasl.*, ssl.ca.location)"
    )]
    Refused {
        /// Bootstrap servers.
        bootstrap: String,
        /// The client's `security.protocol`.
        protocol: String,
        /// What librdkafka said.
        detail: String,
    },
    /// librdkafka refused the client settings themselves.
    #[error("cannot create a client for {bootstrap}: {detail} (check --bootstrap and the client settings)")]
    Config {
        /// Bootstrap servers.
        bootstrap: String,
        /// librdkafka's complaint.
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
    pub fn external(cluster: &ClusterAccess, timeout: Duration) -> Result<Target, TargetError> {
        let brokers =
            wait_for_metadata(cluster, timeout, "the cluster", Listed::AtLeast(1), || None)?;
        Ok(Target::External {
            bootstrap: cluster.bootstrap().to_string(),
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

    /// Log directory of each broker, by broker id, when kbench can see them.
    pub fn replica_dirs(&self) -> Option<Vec<(i32, PathBuf)>> {
        match self {
            Target::Embedded(c) => Some(
                c.ids()
                    .into_iter()
                    .map(|id| id as i32)
                    .zip(c.log_dirs())
                    .collect(),
            ),
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

/// The controller's broker id as Metadata names it (-1 when unknown within `timeout`).
pub fn controller_id(client: &BaseConsumer, timeout: Duration) -> i32 {
    let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: `rd_kafka_controllerid` reads the client's cached metadata (refreshing it within
    // `timeout_ms`); the pointer is the live handle owned by `client`, which outlives the call.
    // rdkafka has no safe wrapper for it and Metadata's safe view omits the controller id.
    #[allow(unsafe_code)]
    unsafe {
        rdkafka::bindings::rd_kafka_controllerid(client.client().native_ptr(), ms)
    }
}

/// What Metadata must list before [`wait_for_metadata`] is content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listed {
    /// At least this many brokers (a cluster formed).
    AtLeast(u32),
    /// This broker id (a restarted broker has joined again).
    Broker(u32),
}

impl Listed {
    fn holds(self, ids: &[i32]) -> bool {
        match self {
            Listed::AtLeast(n) => !ids.is_empty() && ids.len() as u32 >= n,
            Listed::Broker(id) => ids.iter().any(|b| i64::from(*b) == i64::from(id)),
        }
    }
}

/// Asks for Metadata until it lists what `want` says (returns the broker count) or `timeout`
/// passes; `gave_up` is asked between attempts and may end the wait early with a better
/// error.
///
/// A cluster that refuses the client's security (a TLS listener spoken to in plaintext, a
/// certificate that does not verify, credentials it rejects) fails at once with the cause: no
/// retry would change it, and librdkafka itself would only say "transport failure" at the end.
pub fn wait_for_metadata(
    cluster: &ClusterAccess,
    timeout: Duration,
    what: &str,
    want: Listed,
    mut gave_up: impl FnMut() -> Option<TargetError>,
) -> Result<u32, TargetError> {
    let bootstrap = cluster.bootstrap();
    let unreachable = |detail: String| TargetError::Unreachable {
        what: what.to_string(),
        bootstrap: bootstrap.to_string(),
        timeout,
        detail,
    };
    let consumer: BaseConsumer<ProbeContext> = cluster
        .client("kbench-probe")
        .set_log_level(RDKafkaLogLevel::Info)
        .create_with_context(ProbeContext::default())
        .map_err(|e| TargetError::Config {
            bootstrap: bootstrap.to_string(),
            detail: e.to_string(),
        })?;
    let deadline = std::time::Instant::now() + timeout;
    let mut last = String::from("no answer");
    loop {
        if let Some(e) = gave_up() {
            return Err(e);
        }
        if let Some(detail) = consumer.context().refused(&cluster.security_protocol()) {
            return Err(TargetError::Refused {
                bootstrap: bootstrap.to_string(),
                protocol: cluster.security_protocol(),
                detail,
            });
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(unreachable(last));
        }
        match consumer.fetch_metadata(None, left.min(Duration::from_millis(500))) {
            Ok(md) => {
                let ids: Vec<i32> = md.brokers().iter().map(|b| b.id()).collect();
                if want.holds(&ids) {
                    return Ok(ids.len() as u32);
                }
                let shown = ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
                last = match want {
                    _ if ids.is_empty() => "Metadata listed no brokers".to_string(),
                    Listed::AtLeast(n) => format!(
                        "Metadata lists {} of the {n} brokers (ids {shown}); the others have not joined the cluster",
                        ids.len()
                    ),
                    Listed::Broker(id) => format!(
                        "Metadata lists brokers {shown}, not yet broker {id}: it has not joined the cluster"
                    ),
                };
            }
            Err(e) => {
                last = consumer
                    .context()
                    .last_error()
                    .unwrap_or_else(|| e.to_string())
            }
        }
        // Waits a little while serving the client's logs and error callbacks (a consumer
        // delivers them from poll): that is where a security refusal shows.
        let _ = consumer.poll(Duration::from_millis(100));
    }
}

/// Watches a probe client's logs and errors for the ones no retry cures (security refused).
#[derive(Default)]
struct ProbeContext {
    seen: Mutex<ProbeSeen>,
}

/// What the probe's client reported so far.
#[derive(Default)]
struct ProbeSeen {
    /// The first security failure librdkafka reported.
    refused: Option<String>,
    /// Disconnects while the client asked for ApiVersions: its first request on a connection.
    handshake_drops: Vec<String>,
    /// The last error of any kind, for the time-out message.
    last: Option<String>,
}

/// Connections dropped at the first request before a plaintext client is told it is
/// probably talking to a TLS or SASL listener.
const HANDSHAKE_DROPS: usize = 2;

impl ProbeContext {
    fn seen(&self) -> std::sync::MutexGuard<'_, ProbeSeen> {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Why the cluster refused the client, once that is certain. A plaintext client whose
    /// connections the broker closes at the very first request (ApiVersions) is talking to a
    /// listener that expects TLS or SASL: librdkafka reports that only as a disconnect.
    fn refused(&self, protocol: &str) -> Option<String> {
        let seen = self.seen();
        if seen.refused.is_some() {
            return seen.refused.clone();
        }
        (protocol == "plaintext" && seen.handshake_drops.len() >= HANDSHAKE_DROPS).then(|| {
            format!(
                "the broker closed the connection at the client's first request ({}); \
                 the listener probably expects TLS or SASL",
                seen.handshake_drops[0]
            )
        })
    }

    fn last_error(&self) -> Option<String> {
        self.seen().last.clone()
    }
}

impl rdkafka::consumer::ConsumerContext for ProbeContext {}

impl ClientContext for ProbeContext {
    fn error(&self, error: KafkaError, reason: &str) {
        let text = format!("{reason} ({error})");
        let mut seen = self.seen();
        if security_refusal(&error, reason) {
            seen.refused.get_or_insert(text.clone());
        }
        seen.last = Some(text);
    }

    /// Some refusals show only in librdkafka's log lines (the error callback gets a bare
    /// transport failure), so the probe reads them too.
    fn log(&self, level: RDKafkaLogLevel, fac: &str, line: &str) {
        if fac != "FAIL" && (level as i32) > (RDKafkaLogLevel::Error as i32) {
            return;
        }
        let mut seen = self.seen();
        if security_refusal_text(line) {
            seen.refused.get_or_insert(line.to_owned());
        } else if line.contains("in state APIVERSION_QUERY") {
            seen.handshake_drops.push(line.to_owned());
        }
        seen.last = Some(line.to_owned());
    }
}

/// Whether a librdkafka error means the broker refused the client's security settings: an
/// authentication failure, or a TLS handshake or certificate failure.
fn security_refusal(error: &KafkaError, reason: &str) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(RDKafkaErrorCode::Authentication)
            | Some(RDKafkaErrorCode::SaslAuthenticationFailed)
            | Some(RDKafkaErrorCode::SSL)
    ) || security_refusal_text(reason)
}

/// Whether a librdkafka message says the broker refused the client's security.
fn security_refusal_text(text: &str) -> bool {
    text.contains("incorrect security.protocol")
        || text.contains("SSL handshake failed")
        || text.contains("SASL authentication error")
        || text.contains("Authentication failed")
}
