//! Broker configuration in Kafka's own `server.properties` format.
//!
//! Users bring existing Kafka configuration files, so the keys, units and defaults are Kafka's.
//! Parsing is two-stage: the raw properties (file, then `--override key=value` in order) are
//! collected into a map, then turned into a typed, checked [`BrokerConfig`]. Keys Kafka knows but
//! kbroker has no use for are accepted silently (they describe deployment details such as thread
//! counts); keys nobody knows produce a warning, never an error, so a file can be reused as is.
//! A value that cannot be used is an error naming the key, the value and what is allowed.
//!
//! Every key kbroker reads has one entry in [`keys`] (type, default, range, documentation):
//! parsing reads values through it, DescribeConfigs lists it, the unknown-key warning asks it.
//! The subsystem settings (groups, transactions, replication, log defaults) are taken from the
//! typed [`BrokerConfig`] as they are, never clamped: a range the subsystem needs is the table's,
//! so a value outside it stops the broker at start with the key and the range named.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

pub(crate) mod keys;

/// What went wrong while reading the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The properties file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The properties file is not in Java properties syntax.
    #[error("cannot parse config file {path}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
    /// An `--override` argument without `=`.
    #[error("override {0:?} is not of the form key=value")]
    Override(String),
    /// A key has a value kbroker cannot use.
    #[error("invalid value {value:?} for {key}: {allowed}")]
    Invalid {
        /// The property name.
        key: String,
        /// The value given.
        value: String,
        /// What is allowed instead.
        allowed: String,
    },
}

/// Where the broker listens and what it tells clients to connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// Listener name (`PLAINTEXT` unless the file says otherwise).
    pub name: String,
    /// Host to bind; empty means all interfaces.
    pub host: String,
    /// Port to bind; 0 picks a free one.
    pub port: u16,
}

/// The typed broker configuration. Every field names the Kafka key it comes from.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// `node.id` / `broker.id`: this broker's id.
    pub node_id: i32,
    /// `listeners`: the address to bind.
    pub listener: Listener,
    /// `advertised.listeners`: the address given to clients (host is always an IPv4 literal or a
    /// name that resolved to one, never a name that may resolve to `::1`).
    pub advertised: Listener,
    /// `log.dirs` / `log.dir`: directories holding partition logs.
    pub log_dirs: Vec<PathBuf>,
    /// `num.partitions`: partitions of an auto-created topic or of one created with -1.
    pub num_partitions: i32,
    /// `default.replication.factor`.
    pub default_replication_factor: i16,
    /// `min.insync.replicas`.
    pub min_insync_replicas: i32,
    /// `auto.create.topics.enable`.
    pub auto_create_topics: bool,
    /// `log.segment.bytes`.
    pub log_segment_bytes: u64,
    /// `log.roll.ms` / `log.roll.hours` (ms).
    pub log_roll_ms: u64,
    /// `log.retention.ms` / `.minutes` / `.hours` (ms); `None` keeps data forever (-1).
    pub log_retention_ms: Option<i64>,
    /// `log.retention.bytes`; `None` is unlimited (-1).
    pub log_retention_bytes: Option<u64>,
    /// `log.retention.check.interval.ms`.
    pub log_retention_check_interval_ms: u64,
    /// `log.cleaner.backoff.ms`: the pause between two passes of the log cleaner over the
    /// compacted topics (Kafka's default 15 s).
    pub log_cleaner_backoff_ms: u64,
    /// `log.flush.interval.messages`; `None` leaves flushing to the OS (Kafka's default).
    pub log_flush_interval_messages: Option<u64>,
    /// `log.flush.interval.ms`; `None` leaves flushing to the OS (Kafka's default).
    pub log_flush_interval_ms: Option<u64>,
    /// `log.index.interval.bytes`.
    pub log_index_interval_bytes: u32,
    /// `message.max.bytes`: largest record batch accepted.
    pub message_max_bytes: usize,
    /// `socket.request.max.bytes`: largest request frame accepted.
    pub socket_request_max_bytes: usize,
    /// `connections.max.idle.ms`: idle (or half-sent-request) connections are closed after this.
    pub connections_max_idle_ms: u64,
    /// `offsets.topic.num.partitions`.
    pub offsets_topic_num_partitions: i32,
    /// `offsets.retention.minutes`.
    pub offsets_retention_minutes: u64,
    /// `offsets.retention.check.interval.ms`: how often expired committed offsets are removed.
    pub offsets_retention_check_interval_ms: u64,
    /// `offset.metadata.max.bytes`: the longest metadata string an offset commit may carry.
    pub offset_metadata_max_bytes: usize,
    /// `transaction.max.timeout.ms`: the longest `transaction.timeout.ms` a producer may ask for.
    pub transaction_max_timeout_ms: i32,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`: how often transactions
    /// past their timeout are aborted.
    pub transaction_abort_check_interval_ms: u64,
    /// `group.initial.rebalance.delay.ms`.
    pub group_initial_rebalance_delay_ms: u64,
    /// `group.min.session.timeout.ms`.
    pub group_min_session_timeout_ms: u64,
    /// `group.max.session.timeout.ms`.
    pub group_max_session_timeout_ms: u64,
    /// `broker.rack`.
    pub rack: Option<String>,
    /// Set when `controller.quorum.voters` is. `None`: a lone broker, a quorum of one
    /// ([`BrokerConfig::quorum`]).
    pub cluster: Option<ClusterSettings>,
    /// Replication between brokers (used when topics have followers).
    pub replication: ReplicationSettings,
    /// `offsets.topic.replication.factor`: replicas of `__consumer_offsets` (capped at the
    /// brokers alive when it is created).
    pub offsets_topic_replication_factor: i16,
    /// `transaction.state.log.replication.factor`.
    pub transaction_state_log_replication_factor: i16,
    /// `transaction.state.log.num.partitions`: partitions of `__transaction_state` in a
    /// cluster (transactional ids are spread over them; each partition's leader coordinates
    /// its ids).
    pub transaction_state_log_num_partitions: i32,
    /// `transaction.state.log.min.isr`: `min.insync.replicas` of `__transaction_state` (capped
    /// at its replication factor).
    pub transaction_state_log_min_isr: i32,
    /// `offsets.topic.segment.bytes`: `segment.bytes` of `__consumer_offsets` in a cluster
    /// (Kafka's default 100 MiB; small segments let the log cleaner compact sooner).
    pub offsets_topic_segment_bytes: u64,
    /// `transaction.state.log.segment.bytes`: `segment.bytes` of `__transaction_state` in a
    /// cluster (Kafka's default 100 MiB).
    pub transaction_state_log_segment_bytes: u64,
    /// Every property as given (file then overrides), for DescribeConfigs.
    pub raw: BTreeMap<String, String>,
}

/// How this broker takes part in a cluster (KRaft combined mode: every broker is a voter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSettings {
    /// `controller.quorum.voters`: node id → controller address, every voter of the quorum.
    pub voters: BTreeMap<i32, SocketAddr>,
    /// The controller listener to bind (the `listeners` entry named by
    /// `controller.listener.names`).
    pub controller_listener: Listener,
    /// `broker.session.timeout.ms`: a broker that has not been heard from for this long is fenced.
    pub session_timeout_ms: u64,
    /// `unclean.leader.election.enable`: elect a replica outside the ISR when no ISR member is left.
    pub unclean_leader_election: bool,
    /// `auto.leader.rebalance.enable`: the controller gives partitions back to their preferred
    /// replica when a broker's leader imbalance exceeds the percentage below.
    pub auto_leader_rebalance: bool,
    /// `leader.imbalance.check.interval.seconds`: how often the imbalance is checked.
    pub leader_imbalance_check_interval_s: u64,
    /// `leader.imbalance.per.broker.percentage`: the imbalance a broker may have.
    pub leader_imbalance_per_broker_percentage: u32,
    /// `metadata.log.dir`: where the Raft log lives (default: `<first log dir>/__cluster_metadata-0`).
    pub metadata_dir: PathBuf,
}

/// Replica fetching and ISR settings, Kafka's keys and defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicationSettings {
    /// `replica.lag.time.max.ms`: a follower not caught up for this long leaves the ISR.
    pub replica_lag_time_max_ms: u64,
    /// `replica.fetch.wait.max.ms`: how long a follower's fetch waits at the leader for data.
    pub replica_fetch_wait_max_ms: u64,
    /// `replica.fetch.max.bytes`: per partition and fetch.
    pub replica_fetch_max_bytes: i32,
    /// `replica.fetch.response.max.bytes`: per fetch response.
    pub replica_fetch_response_max_bytes: i32,
    /// `replica.fetch.backoff.ms`: pause after a failed fetch.
    pub replica_fetch_backoff_ms: u64,
}

/// Keys Kafka knows that describe deployment details kbroker has no use for. Accepted quietly.
const ACCEPTED_KEYS: &[&str] = &[
    "controller.quorum.bootstrap.servers",
    "listener.security.protocol.map",
    "inter.broker.listener.name",
    "num.network.threads",
    "num.io.threads",
    "num.recovery.threads.per.data.dir",
    "num.replica.fetchers",
    "socket.send.buffer.bytes",
    "socket.receive.buffer.bytes",
    "share.coordinator.state.topic.replication.factor",
    "share.coordinator.state.topic.min.isr",
    "zookeeper.connect",
    "zookeeper.connection.timeout.ms",
    "delete.topic.enable",
    "log.cleaner.enable",
    "log.cleanup.policy",
    "log.flush.scheduler.interval.ms",
    "log.flush.offset.checkpoint.interval.ms",
    "compression.type",
    "group.coordinator.rebalance.protocols",
];

impl BrokerConfig {
    /// Reads `path` (if given) and applies `overrides` (`key=value`, later wins).
    pub fn load(path: Option<&Path>, overrides: &[String]) -> Result<Self, ConfigError> {
        let text = match path {
            Some(path) => std::fs::read(path).map_err(|source| ConfigError::Read {
                path: path.to_owned(),
                source,
            })?,
            None => Vec::new(),
        };
        Self::parse(&text, path.unwrap_or(Path::new("")), overrides, system_ipv4)
    }

    /// [`BrokerConfig::load`] on the bytes of a `server.properties` file already read: Java
    /// properties syntax, then `overrides` (`key=value`, later wins), then the typed checks.
    /// `source` only names the file in messages. Host names in the listeners and voters are
    /// turned into IPv4 addresses by `resolve` ([`system_ipv4`] in the broker; the fuzz target
    /// `server_properties` passes one that never touches the network).
    pub fn parse(
        text: &[u8],
        source: &Path,
        overrides: &[String],
        resolve: Resolve,
    ) -> Result<Self, ConfigError> {
        let mut raw = BTreeMap::new();
        let props = read_properties(text).map_err(|e| ConfigError::Syntax {
            path: source.to_owned(),
            message: e.to_string(),
        })?;
        raw.extend(props);
        for o in overrides {
            let (k, v) = o
                .split_once('=')
                .ok_or_else(|| ConfigError::Override(o.clone()))?;
            raw.insert(k.trim().to_owned(), v.trim().to_owned());
        }
        Self::from_map_resolving(raw, resolve)
    }

    /// Builds a typed configuration from raw properties, warning about keys nobody knows.
    pub fn from_map(raw: BTreeMap<String, String>) -> Result<Self, ConfigError> {
        Self::from_map_resolving(raw, system_ipv4)
    }

    /// [`BrokerConfig::from_map`] with host names resolved by `resolve`.
    pub fn from_map_resolving(
        raw: BTreeMap<String, String>,
        resolve: Resolve,
    ) -> Result<Self, ConfigError> {
        // Every key of the table is checked, read or not (a cluster key on a lone broker, the
        // minutes of a retention the milliseconds override): a bad value is never let through.
        for (key, value) in &raw {
            match keys::find(key) {
                Some(k) => k.check(value)?,
                None if ACCEPTED_KEYS.contains(&key.as_str())
                    || key.starts_with("listener.name.")
                    || key.starts_with("ssl.")
                    || key.starts_with("sasl.") => {}
                None => tracing::warn!(key = %key, "unknown configuration key ignored"),
            }
        }
        let p = Props(&raw);
        let node_id = if p.get("node.id").is_some() {
            p.int(&keys::NODE_ID)? as i32
        } else {
            // Kafka's broker.id=-1 asks for a generated id; a single local broker is node 0.
            p.int(&keys::BROKER_ID)?.max(0) as i32
        };
        let listeners = parse_listeners("listeners", p.text(&keys::LISTENERS))?;
        let controller_names: Vec<String> = p
            .text(&keys::CONTROLLER_LISTENER_NAMES)
            .split(',')
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty())
            .collect();
        let listener = listeners
            .iter()
            .find(|l| !controller_names.contains(&l.name))
            .cloned()
            .ok_or_else(|| {
                invalid(
                    "listeners",
                    p.get("listeners").unwrap_or_default(),
                    "at least one client listener besides the controller listener(s), e.g. \
                     PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093",
                )
            })?;
        let advertised = match p.get("advertised.listeners") {
            Some(v) => {
                let all = parse_listeners("advertised.listeners", v)?;
                all.iter()
                    .find(|l| l.name == listener.name)
                    .unwrap_or(&all[0])
                    .clone()
            }
            None => listener.clone(),
        };
        let advertised = Listener {
            host: advertise_host("advertised.listeners", &advertised.host, resolve)?,
            ..advertised
        };
        let log_dirs: Vec<PathBuf> = p
            .get("log.dirs")
            .unwrap_or_else(|| p.text(&keys::LOG_DIR))
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .collect();
        if log_dirs.is_empty() {
            return Err(ConfigError::Invalid {
                key: "log.dirs".into(),
                value: p.get("log.dirs").unwrap_or_default().into(),
                allowed: "a comma-separated list of at least one directory".into(),
            });
        }
        let retention_ms = if p.get("log.retention.ms").is_some() {
            let ms = p.int(&keys::LOG_RETENTION_MS)?;
            (ms >= 0).then_some(ms)
        } else if p.get("log.retention.minutes").is_some() {
            let m = p.int(&keys::LOG_RETENTION_MINUTES)?;
            (m >= 0).then_some(m * 60_000)
        } else {
            let h = p.int(&keys::LOG_RETENTION_HOURS)?;
            (h >= 0).then_some(h * 3_600_000)
        };
        let roll_ms = if p.get("log.roll.ms").is_some() {
            p.int(&keys::LOG_ROLL_MS)? as u64
        } else {
            p.int(&keys::LOG_ROLL_HOURS)? as u64 * 3_600_000
        };
        let retention_bytes = p.int(&keys::LOG_RETENTION_BYTES)?;
        let flush_messages = p.int(&keys::LOG_FLUSH_INTERVAL_MESSAGES)?;
        let flush_ms = match p.get("log.flush.interval.ms") {
            Some(_) => Some(p.int(&keys::LOG_FLUSH_INTERVAL_MS)? as u64),
            None => None,
        };
        let cluster = match p
            .get("controller.quorum.voters")
            .filter(|v| !v.trim().is_empty())
        {
            None => None,
            Some(v) => {
                let voters = parse_voters(v, resolve)?;
                if !voters.contains_key(&node_id) {
                    return Err(invalid(
                        "controller.quorum.voters",
                        v,
                        &format!(
                            "a list that includes this broker's node.id {node_id}: every kbroker \
                             is a voter (combined mode)"
                        ),
                    ));
                }
                let controller_listener = listeners
                    .iter()
                    .find(|l| controller_names.contains(&l.name))
                    .cloned()
                    .ok_or_else(|| {
                        invalid(
                            "listeners",
                            p.get("listeners").unwrap_or_default(),
                            &format!(
                                "a listener named by controller.listener.names ({}) when \
                                 controller.quorum.voters is set, e.g. \
                                 PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093",
                                controller_names.join(",")
                            ),
                        )
                    })?;
                let metadata_dir = p
                    .get("metadata.log.dir")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| log_dirs[0].join("__cluster_metadata-0"));
                Some(ClusterSettings {
                    voters,
                    controller_listener,
                    session_timeout_ms: p.int(&keys::BROKER_SESSION_TIMEOUT_MS)? as u64,
                    unclean_leader_election: p.bool(&keys::UNCLEAN_LEADER_ELECTION_ENABLE)?,
                    auto_leader_rebalance: p.bool(&keys::AUTO_LEADER_REBALANCE_ENABLE)?,
                    leader_imbalance_check_interval_s: p
                        .int(&keys::LEADER_IMBALANCE_CHECK_INTERVAL_SECONDS)?
                        as u64,
                    leader_imbalance_per_broker_percentage: p
                        .int(&keys::LEADER_IMBALANCE_PER_BROKER_PERCENTAGE)?
                        as u32,
                    metadata_dir,
                })
            }
        };
        let replication = ReplicationSettings {
            replica_lag_time_max_ms: p.int(&keys::REPLICA_LAG_TIME_MAX_MS)? as u64,
            replica_fetch_wait_max_ms: p.int(&keys::REPLICA_FETCH_WAIT_MAX_MS)? as u64,
            replica_fetch_max_bytes: p.int(&keys::REPLICA_FETCH_MAX_BYTES)? as i32,
            replica_fetch_response_max_bytes: p.int(&keys::REPLICA_FETCH_RESPONSE_MAX_BYTES)?
                as i32,
            // Kafka waits 1000 ms; a local cluster fails over faster with a shorter pause.
            replica_fetch_backoff_ms: p.int(&keys::REPLICA_FETCH_BACKOFF_MS)? as u64,
        };
        let cfg = BrokerConfig {
            cluster,
            replication,
            offsets_topic_replication_factor: p.int(&keys::OFFSETS_TOPIC_REPLICATION_FACTOR)?
                as i16,
            transaction_state_log_replication_factor: p
                .int(&keys::TRANSACTION_STATE_LOG_REPLICATION_FACTOR)?
                as i16,
            transaction_state_log_num_partitions: p
                .int(&keys::TRANSACTION_STATE_LOG_NUM_PARTITIONS)?
                as i32,
            transaction_state_log_min_isr: p.int(&keys::TRANSACTION_STATE_LOG_MIN_ISR)? as i32,
            offsets_topic_segment_bytes: p.int(&keys::OFFSETS_TOPIC_SEGMENT_BYTES)? as u64,
            transaction_state_log_segment_bytes: p
                .int(&keys::TRANSACTION_STATE_LOG_SEGMENT_BYTES)?
                as u64,
            node_id,
            listener,
            advertised,
            log_dirs,
            num_partitions: p.int(&keys::NUM_PARTITIONS)? as i32,
            default_replication_factor: p.int(&keys::DEFAULT_REPLICATION_FACTOR)? as i16,
            min_insync_replicas: p.int(&keys::MIN_INSYNC_REPLICAS)? as i32,
            auto_create_topics: p.bool(&keys::AUTO_CREATE_TOPICS_ENABLE)?,
            log_segment_bytes: p.int(&keys::LOG_SEGMENT_BYTES)? as u64,
            log_roll_ms: roll_ms,
            log_retention_ms: retention_ms,
            log_retention_bytes: (retention_bytes >= 0).then_some(retention_bytes as u64),
            log_retention_check_interval_ms: p.int(&keys::LOG_RETENTION_CHECK_INTERVAL_MS)? as u64,
            log_cleaner_backoff_ms: p.int(&keys::LOG_CLEANER_BACKOFF_MS)? as u64,
            log_flush_interval_messages: (flush_messages != i64::MAX)
                .then_some(flush_messages as u64),
            log_flush_interval_ms: flush_ms,
            log_index_interval_bytes: p.int(&keys::LOG_INDEX_INTERVAL_BYTES)? as u32,
            message_max_bytes: p.int(&keys::MESSAGE_MAX_BYTES)? as usize,
            socket_request_max_bytes: p.int(&keys::SOCKET_REQUEST_MAX_BYTES)? as usize,
            connections_max_idle_ms: p.int(&keys::CONNECTIONS_MAX_IDLE_MS)? as u64,
            offsets_topic_num_partitions: p.int(&keys::OFFSETS_TOPIC_NUM_PARTITIONS)? as i32,
            offsets_retention_minutes: p.int(&keys::OFFSETS_RETENTION_MINUTES)? as u64,
            offsets_retention_check_interval_ms: p
                .int(&keys::OFFSETS_RETENTION_CHECK_INTERVAL_MS)?
                as u64,
            offset_metadata_max_bytes: p.int(&keys::OFFSET_METADATA_MAX_BYTES)? as usize,
            transaction_max_timeout_ms: p.int(&keys::TRANSACTION_MAX_TIMEOUT_MS)? as i32,
            transaction_abort_check_interval_ms: p
                .int(&keys::TRANSACTION_ABORT_CHECK_INTERVAL_MS)?
                as u64,
            group_initial_rebalance_delay_ms: p.int(&keys::GROUP_INITIAL_REBALANCE_DELAY_MS)?
                as u64,
            group_min_session_timeout_ms: p.int(&keys::GROUP_MIN_SESSION_TIMEOUT_MS)? as u64,
            group_max_session_timeout_ms: p.int(&keys::GROUP_MAX_SESSION_TIMEOUT_MS)? as u64,
            rack: p
                .get("broker.rack")
                .filter(|r| !r.is_empty())
                .map(str::to_owned),
            raw: raw.clone(),
        };
        Ok(cfg)
    }

    /// Every key of the broker table with the value in force, as DescribeConfigs shows them.
    /// Optional settings left unset have no value (`None`), like Kafka's null defaults.
    pub fn effective(&self) -> Vec<(&'static str, Option<String>)> {
        keys::ALL.iter().map(|k| (k.name, k.shown(self))).collect()
    }

    /// The metadata quorum this broker takes part in: `controller.quorum.voters` when set, else
    /// a quorum of one, this broker alone (Kafka's KRaft combined mode with one voter), so a
    /// lone broker runs the same code as a cluster. A lone voter elects itself and never dials
    /// anyone: its recorded address (`127.0.0.1:0`) is a placeholder, nothing is bound for it,
    /// and the settings that only matter between brokers keep their defaults.
    pub fn quorum(&self) -> ClusterSettings {
        if let Some(c) = &self.cluster {
            return c.clone();
        }
        let placeholder = SocketAddr::from(([127, 0, 0, 1], 0));
        ClusterSettings {
            voters: BTreeMap::from([(self.node_id, placeholder)]),
            controller_listener: Listener {
                name: "CONTROLLER".into(),
                host: "127.0.0.1".into(),
                port: 0,
            },
            session_timeout_ms: 9000,
            unclean_leader_election: false,
            auto_leader_rebalance: false,
            leader_imbalance_check_interval_s: 300,
            leader_imbalance_per_broker_percentage: 10,
            metadata_dir: self
                .raw
                .get("metadata.log.dir")
                .map(PathBuf::from)
                .unwrap_or_else(|| self.log_dirs[0].join("__cluster_metadata-0")),
        }
    }

    /// The controller listener's address to bind when `controller.quorum.voters` is set (a
    /// lone broker, a quorum of one, binds none).
    pub fn controller_bind_addr(&self) -> Option<Result<SocketAddr, ConfigError>> {
        let c = self.cluster.as_ref()?;
        let l = &c.controller_listener;
        let host = if l.host.is_empty() {
            "0.0.0.0"
        } else {
            &l.host
        };
        Some(
            (host, l.port)
                .to_socket_addrs()
                .ok()
                .and_then(|mut it| it.find(SocketAddr::is_ipv4))
                .ok_or_else(|| {
                    invalid(
                        "listeners",
                        &format!("{host}:{}", l.port),
                        "a controller listener host that resolves to a local IPv4 address",
                    )
                }),
        )
    }

    /// The address to bind.
    pub fn bind_addr(&self) -> Result<SocketAddr, ConfigError> {
        let host = if self.listener.host.is_empty() {
            "0.0.0.0"
        } else {
            &self.listener.host
        };
        (host, self.listener.port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut it| it.find(SocketAddr::is_ipv4).or_else(|| it.next()))
            .ok_or_else(|| {
                invalid(
                    "listeners",
                    &format!("{host}:{}", self.listener.port),
                    "a host that resolves to a local address",
                )
            })
    }
}

/// Reads Java properties syntax from the bytes of a file, decoded as `java_properties::read`
/// decodes them: Windows-1252 (Java's ISO-8859-1, and more) unless a byte-order mark says UTF-8
/// or UTF-16.
///
/// The decoding is done here, in one piece, and the crate is handed UTF-8, because the crate's
/// own streaming decoder panics ("Must not use a decoder that has finished", java-properties
/// 2.0.0) whenever its decoder still holds bytes at the end of the input and so emits characters
/// in its final call: a file that is only the start of a byte-order mark (`EF`, `EF BB`, `FE`,
/// `FF`), a UTF-8 file with a BOM that ends inside a character, a UTF-16 file of odd length.
/// kbroker then died at startup instead of naming the file. Valid UTF-8 passes through that
/// decoder whole, so the end of input never finds it holding anything. (Found by the
/// `server_properties` fuzz target: `fuzz/regressions/server_properties/`.)
fn read_properties(
    text: &[u8],
) -> Result<std::collections::HashMap<String, String>, java_properties::PropertiesError> {
    let (decoded, _, _) = encoding_rs::WINDOWS_1252.decode(text);
    let mut props = std::collections::HashMap::new();
    java_properties::PropertiesIter::new_with_encoding(decoded.as_bytes(), encoding_rs::UTF_8)
        .read_into(|k, v| {
            props.insert(k, v);
        })?;
    Ok(props)
}

/// Turns a host name of the configuration (a listener's or a voter's) into its first IPv4
/// address, `None` when it has none.
pub type Resolve = fn(&str) -> Option<Ipv4Addr>;

/// [`Resolve`] with the system resolver (IP literals, `/etc/hosts`, DNS): what the broker uses.
pub fn system_ipv4(host: &str) -> Option<Ipv4Addr> {
    (host, 0).to_socket_addrs().ok()?.find_map(|a| match a {
        SocketAddr::V4(v4) => Some(*v4.ip()),
        SocketAddr::V6(_) => None,
    })
}

/// A read-only view over raw properties with typed getters that produce specific errors.
struct Props<'a>(&'a BTreeMap<String, String>);

impl Props<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// A text key's value as given, else its default (empty when it has none).
    fn text(&self, key: &keys::BrokerKey) -> &str {
        self.get(key.name).or(key.default).unwrap_or_default()
    }

    /// The key's value as given, else its default, checked against the table.
    fn value(&self, key: &keys::BrokerKey) -> Result<Option<&str>, ConfigError> {
        match self.get(key.name) {
            Some(v) => key.check(v).map(|()| Some(v)),
            None => Ok(key.default),
        }
    }

    /// An integer key's value (given or default), within the table's range.
    fn int(&self, key: &keys::BrokerKey) -> Result<i64, ConfigError> {
        let v = self.value(key)?.unwrap_or_default();
        v.trim()
            .parse()
            .map_err(|_| invalid(key.name, v, &key.allowed()))
    }

    /// A boolean key's value (given or default).
    fn bool(&self, key: &keys::BrokerKey) -> Result<bool, ConfigError> {
        Ok(self
            .value(key)?
            .is_some_and(|v| v.eq_ignore_ascii_case("true")))
    }
}

fn invalid(key: &str, value: &str, allowed: &str) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_owned(),
        value: value.to_owned(),
        allowed: allowed.to_owned(),
    }
}

/// Parses a Kafka listener list: `NAME://host:port[,NAME://host:port...]`.
fn parse_listeners(key: &str, value: &str) -> Result<Vec<Listener>, ConfigError> {
    let list = value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|one| parse_listener(key, one))
        .collect::<Result<Vec<_>, _>>()?;
    if list.is_empty() {
        return Err(invalid(key, value, "at least one NAME://host:port"));
    }
    Ok(list)
}

/// Parses `controller.quorum.voters`: `id@host:port[,id@host:port...]`.
fn parse_voters(value: &str, resolve: Resolve) -> Result<BTreeMap<i32, SocketAddr>, ConfigError> {
    let key = "controller.quorum.voters";
    let allowed = "id@host:port,... e.g. 1@127.0.0.1:9093,2@127.0.0.1:9095,3@127.0.0.1:9097";
    let mut voters = BTreeMap::new();
    for entry in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (id, addr) = entry
            .split_once('@')
            .ok_or_else(|| invalid(key, value, allowed))?;
        let id: i32 = id
            .trim()
            .parse()
            .ok()
            .filter(|id| *id >= 0)
            .ok_or_else(|| invalid(key, value, allowed))?;
        let (host, port) = addr
            .rsplit_once(':')
            .ok_or_else(|| invalid(key, value, allowed))?;
        let port: u16 = port.parse().map_err(|_| invalid(key, value, allowed))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let resolved = resolve(host)
            .map(|ip| SocketAddr::from((ip, port)))
            .ok_or_else(|| {
                invalid(
                    key,
                    value,
                    &format!("voter {id}'s host {host:?} must resolve to an IPv4 address"),
                )
            })?;
        if voters.insert(id, resolved).is_some() {
            return Err(invalid(key, value, &format!("node id {id} listed twice")));
        }
    }
    if voters.is_empty() {
        return Err(invalid(key, value, allowed));
    }
    Ok(voters)
}

/// Parses one listener: `NAME://host:port`.
fn parse_listener(key: &str, value: &str) -> Result<Listener, ConfigError> {
    let allowed = "NAME://host:port, e.g. PLAINTEXT://127.0.0.1:9092 (host may be empty)";
    let first = value.trim();
    let (name, rest) = first
        .split_once("://")
        .ok_or_else(|| invalid(key, value, allowed))?;
    let (host, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| invalid(key, value, allowed))?;
    let port: u16 = port.parse().map_err(|_| invalid(key, value, allowed))?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    if name.is_empty() {
        return Err(invalid(key, value, allowed));
    }
    Ok(Listener {
        name: name.to_owned(),
        host,
        port,
    })
}

/// The host clients are told to connect to: an IPv4 literal where the name would be ambiguous.
///
/// An empty host or a wildcard address is advertised as 127.0.0.1 (this is a local broker);
/// a name is resolved and its first IPv4 address is used, so clients never get `localhost`,
/// which some resolvers map to `::1` first while the broker listens on IPv4.
fn advertise_host(key: &str, host: &str, resolve: Resolve) -> Result<String, ConfigError> {
    if host.is_empty() || host == "0.0.0.0" || host == "::" {
        return Ok(Ipv4Addr::LOCALHOST.to_string());
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(ip.to_string());
    }
    resolve(host)
        .map(|ip| ip.to_string())
        .ok_or_else(|| invalid(key, host, "a host name that resolves to an IPv4 address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(overrides: &[&str]) -> Result<BrokerConfig, ConfigError> {
        let o: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
        BrokerConfig::load(None, &o)
    }

    #[test]
    fn parse_reads_text_and_resolves_names_only_through_its_resolver() {
        fn literals(host: &str) -> Option<Ipv4Addr> {
            host.parse().ok()
        }
        let text = b"node.id=1\nlisteners=PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093\n\
                     controller.quorum.voters=1@127.0.0.1:9093\n";
        let c = BrokerConfig::parse(
            text,
            Path::new("s.properties"),
            &["node.id=1".into()],
            literals,
        )
        .unwrap();
        assert_eq!(c.cluster.unwrap().voters[&1].to_string(), "127.0.0.1:9093");
        // A name the resolver does not know is refused without asking the system resolver.
        let e = BrokerConfig::parse(
            b"advertised.listeners=PLAINTEXT://kafka-1.example.invalid:9092",
            Path::new("s.properties"),
            &[],
            literals,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("kafka-1.example.invalid") && e.contains("IPv4"),
            "{e}"
        );
        let e = BrokerConfig::parse(b"a=\\uZZZZ", Path::new("s.properties"), &[], literals)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("cannot parse config file s.properties"),
            "{e}"
        );
    }

    #[test]
    fn truncated_byte_order_marks_and_characters_are_read_not_a_panic() {
        let parse = |text: &[u8]| BrokerConfig::parse(text, Path::new("s"), &[], system_ipv4);
        // Each of these made java-properties' decoder panic ("a decoder that has finished").
        for text in [
            &b"\xef"[..],
            b"\xef\xbb",
            b"\xfe",
            b"\xff",
            b"\xfe\xff\x00",
            b"\xff\xfea\x00=",
            b"\xef\xbb\xbfbroker.rack=\xc3",
        ] {
            assert!(parse(text).is_ok(), "{text:?}");
        }
        // Decoding is what it was: Windows-1252, or what a byte-order mark says.
        let rack = |text: &[u8]| parse(text).unwrap().rack.unwrap();
        assert_eq!(rack(b"broker.rack=caf\xe9"), "caf\u{e9}");
        assert_eq!(rack(b"broker.rack=\x80"), "\u{20ac}");
        assert_eq!(rack(b"\xef\xbb\xbfbroker.rack=caf\xc3\xa9"), "caf\u{e9}");
        assert_eq!(rack(b"\xef\xbb\xbfbroker.rack=r\xc3"), "r\u{fffd}");
        assert_eq!(
            rack(b"\xff\xfeb\x00r\x00o\x00k\x00e\x00r\x00.\x00r\x00a\x00c\x00k\x00=\x00r\x001\x00"),
            "r1"
        );
    }

    #[test]
    fn defaults_are_kafkas() {
        let c = load(&[]).unwrap();
        assert_eq!(c.node_id, 0);
        assert_eq!(c.listener.port, 9092);
        assert_eq!(c.advertised.host, "127.0.0.1");
        assert_eq!(c.num_partitions, 1);
        assert_eq!(c.log_segment_bytes, 1 << 30);
        assert_eq!(c.log_retention_ms, Some(168 * 3_600_000));
        assert_eq!(c.log_retention_bytes, None);
        assert_eq!(c.message_max_bytes, 1_048_588);
        assert_eq!(c.socket_request_max_bytes, 104_857_600);
        assert_eq!(c.group_initial_rebalance_delay_ms, 3000);
        assert_eq!(c.log_flush_interval_messages, None);
        assert!(c.auto_create_topics);
    }

    #[test]
    fn file_then_overrides_later_wins() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.properties");
        std::fs::write(
            &path,
            "# comment\nbroker.id=3\nlisteners=PLAINTEXT://127.0.0.1:19092\nlog.dirs=/a, /b\n\
             log.retention.minutes=5\nsome.future.key=1\n",
        )
        .unwrap();
        let c = BrokerConfig::load(Some(&path), &["broker.id=4".into()]).unwrap();
        assert_eq!(c.node_id, 4);
        assert_eq!(c.listener.port, 19092);
        assert_eq!(c.log_dirs, vec![PathBuf::from("/a"), PathBuf::from("/b")]);
        assert_eq!(c.log_retention_ms, Some(300_000));
    }

    #[test]
    fn bad_value_names_key_value_and_range() {
        let e = load(&["num.partitions=zero"]).unwrap_err().to_string();
        assert!(
            e.contains("num.partitions") && e.contains("zero") && e.contains("integer"),
            "{e}"
        );
        let e = load(&["auto.create.topics.enable=yes"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("true or false"), "{e}");
        let e = load(&["listeners=9092"]).unwrap_err().to_string();
        assert!(
            e.contains("listeners") && e.contains("NAME://host:port"),
            "{e}"
        );
        assert!(matches!(load(&["novalue"]), Err(ConfigError::Override(_))));
    }

    #[test]
    fn coordinator_settings_are_checked_not_silently_defaulted() {
        // These four were read by the coordinators from the raw map, and a bad value fell back
        // to the default without a word.
        for (kv, key) in [
            ("transaction.max.timeout.ms=0", "transaction.max.timeout.ms"),
            (
                "transaction.max.timeout.ms=15min",
                "transaction.max.timeout.ms",
            ),
            (
                "transaction.abort.timed.out.transaction.cleanup.interval.ms=-5",
                "transaction.abort.timed.out.transaction.cleanup.interval.ms",
            ),
            (
                "offsets.retention.check.interval.ms=0",
                "offsets.retention.check.interval.ms",
            ),
            ("offset.metadata.max.bytes=4k", "offset.metadata.max.bytes"),
        ] {
            let e = load(&[kv]).unwrap_err().to_string();
            assert!(
                e.contains(key) && e.contains(kv.split('=').nth(1).unwrap()),
                "{kv}: {e}"
            );
        }
        let c = load(&[
            "transaction.max.timeout.ms=60000",
            "offset.metadata.max.bytes=100",
        ])
        .unwrap();
        assert_eq!(c.transaction_max_timeout_ms, 60_000);
        assert_eq!(
            crate::txn::TxnConfig::from_broker(&c).max_timeout_ms,
            60_000
        );
        assert_eq!(
            crate::group::GroupConfig::from_broker(&c).offset_metadata_max_bytes,
            100
        );
        let d = load(&[]).unwrap();
        assert_eq!(
            crate::group::GroupConfig::from_broker(&d).offsets_retention_check_interval_ms,
            600_000
        );
        assert_eq!(
            crate::txn::TxnConfig::from_broker(&d).abort_check_interval_ms,
            10_000
        );
    }

    #[test]
    fn values_subsystems_clamped_are_refused_naming_key_and_range() {
        // GroupConfig::from_broker raised offsets.topic.num.partitions to 1, and
        // ReplicationSettings::from_broker cut the replica fetch sizes to i32::MAX: the table's
        // ranges refuse those values at start instead.
        for (kv, range) in [
            ("offsets.topic.num.partitions=0", "from 1 to 100000"),
            ("offsets.topic.num.partitions=-3", "from 1 to 100000"),
            ("replica.fetch.max.bytes=2147483648", "from 0 to 2147483647"),
            (
                "replica.fetch.response.max.bytes=9999999999",
                "from 0 to 2147483647",
            ),
            (
                "transaction.max.timeout.ms=2147483648",
                "from 1 to 2147483647",
            ),
            // Kafka's INT keys: a value beyond 32 bits was accepted here, Kafka refuses it.
            (
                "group.max.session.timeout.ms=2147483648",
                "from 0 to 2147483647",
            ),
        ] {
            let (key, value) = kv.split_once('=').unwrap();
            let e = load(&[kv]).unwrap_err().to_string();
            assert!(
                e.contains(key) && e.contains(value) && e.contains(range),
                "{kv}: {e}"
            );
        }
        let c = load(&["replica.fetch.max.bytes=2147483647"]).unwrap();
        assert_eq!(c.replication.replica_fetch_max_bytes, i32::MAX);
    }

    #[test]
    fn keys_not_read_are_still_checked() {
        // A cluster key on a lone broker, and a retention in minutes that log.retention.ms
        // overrides, were never parsed: a typo in them passed unseen.
        for (kvs, key) in [
            (
                &["broker.session.timeout.ms=9s"][..],
                "broker.session.timeout.ms",
            ),
            (
                &["unclean.leader.election.enable=yes"][..],
                "unclean.leader.election.enable",
            ),
            (
                &["log.retention.ms=1000", "log.retention.minutes=ten"][..],
                "log.retention.minutes",
            ),
            (&["log.roll.ms=1", "log.roll.hours=0"][..], "log.roll.hours"),
        ] {
            let e = load(kvs).unwrap_err().to_string();
            assert!(e.contains(key), "{kvs:?}: {e}");
        }
        // Unknown keys stay a warning, and keys Kafka knows but kbroker ignores are accepted.
        assert!(load(&["some.future.key=x", "num.io.threads=many"]).is_ok());
        // Kafka trims integer values.
        assert_eq!(load(&["num.partitions= 7 "]).unwrap().num_partitions, 7);
    }

    #[test]
    fn effective_lists_every_table_key_once_with_its_default() {
        let c = load(&["log.retention.hours=2"]).unwrap();
        let eff = c.effective();
        let names: Vec<&str> = eff.iter().map(|(n, _)| *n).collect();
        let table: Vec<&str> = keys::ALL.iter().map(|k| k.name).collect();
        assert_eq!(names, table);
        let value = |n: &str| eff.iter().find(|(k, _)| *k == n).unwrap().1.clone();
        // Derived from hours, shown in milliseconds as Kafka's log.retention.ms would be in force.
        assert_eq!(value("log.retention.ms").as_deref(), Some("7200000"));
        assert_eq!(value("log.retention.hours").as_deref(), Some("2"));
        assert_eq!(value("num.partitions").as_deref(), Some("1"));
        assert_eq!(value("broker.rack"), None);
        assert_eq!(value("log.dirs").as_deref(), Some("/tmp/kafka-logs"));
    }

    #[test]
    fn retention_minus_one_means_forever() {
        let c = load(&["log.retention.ms=-1", "log.retention.bytes=-1"]).unwrap();
        assert_eq!(c.log_retention_ms, None);
        assert_eq!(c.log_retention_bytes, None);
    }

    #[test]
    fn localhost_is_advertised_as_ipv4() {
        let c = load(&["listeners=PLAINTEXT://localhost:9093"]).unwrap();
        assert_eq!(c.advertised.host, "127.0.0.1");
        assert_eq!(c.advertised.port, 9093);
    }

    #[test]
    fn cluster_mode_needs_voters_and_a_controller_listener() {
        let single = load(&[]).unwrap();
        assert!(single.cluster.is_none());
        let c = load(&[
            "node.id=2",
            "listeners=PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093",
            "controller.quorum.voters=1@127.0.0.1:9091,2@127.0.0.1:9093,3@localhost:9095",
            "broker.rack=r2",
        ])
        .unwrap();
        assert_eq!(c.listener.port, 9092);
        let cluster = c.cluster.expect("cluster mode");
        assert_eq!(cluster.voters.len(), 3);
        assert_eq!(cluster.voters[&3].to_string(), "127.0.0.1:9095");
        assert_eq!(cluster.controller_listener.port, 9093);
        assert_eq!(cluster.session_timeout_ms, 9000);
        assert!(!cluster.unclean_leader_election);

        let e = load(&[
            "node.id=4",
            "listeners=PLAINTEXT://:9092,CONTROLLER://:9093",
            "controller.quorum.voters=1@127.0.0.1:9093",
        ])
        .unwrap_err()
        .to_string();
        assert!(e.contains("node.id 4"), "{e}");
        let e = load(&["node.id=1", "controller.quorum.voters=1@127.0.0.1:9093"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("controller.listener.names"), "{e}");
        let e = load(&["controller.quorum.voters=x@127.0.0.1:9093"])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("controller.quorum.voters") && e.contains("id@host:port"),
            "{e}"
        );
    }
}
