//! The one table of broker configuration keys: name, type, default, valid range, documentation,
//! and how the key's value is shown.
//!
//! It plays the part of Kafka's `ConfigDef` for the broker (`KafkaConfig`): parsing reads every
//! value through it ([`BrokerKey::check`] refuses a bad value naming the key and the range),
//! DescribeConfigs of the broker resource lists every key of it ([`ALL`]), and the warning about
//! unknown keys asks it. Keeping all of that in one place is what stops a key from being parsed
//! with one default and described with another, or a subsystem clamping a value the parser let
//! through: a range belongs here, so a value outside it is refused when the broker starts.
//!
//! Names, types and defaults are Kafka's, except where a key's doc says kbroker differs on
//! purpose. Ranges are kbroker's checks, never wider than Kafka's type (an INT key refuses a value
//! beyond 32 bits, as Kafka does).

use super::{invalid, BrokerConfig, ConfigError, Listener};

/// The type of a key's value, as Kafka's `ConfigDef.Type` names it (DescribeConfigs reports it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Type {
    /// `true` or `false` (any case).
    Boolean,
    /// A 16-bit integer.
    Short,
    /// A 32-bit integer.
    Int,
    /// A 64-bit integer.
    Long,
    /// Free text.
    String,
    /// A comma-separated list.
    List,
}

impl Type {
    /// The `ConfigType` id of a DescribeConfigs answer (v3+).
    pub(crate) fn wire_id(self) -> i8 {
        match self {
            Type::Boolean => 1,
            Type::String => 2,
            Type::Int => 3,
            Type::Short => 4,
            Type::Long => 5,
            Type::List => 7,
        }
    }

    fn is_integer(self) -> bool {
        matches!(self, Type::Short | Type::Int | Type::Long)
    }
}

/// The values an integer key accepts, both ends included; text keys accept anything (their
/// syntax, a listener or a voter list, is checked where they are parsed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Range {
    /// No limit beyond the type.
    Any,
    /// From the first to the second, both included.
    Between(i64, i64),
}

/// One broker configuration key.
#[derive(Debug)]
pub(crate) struct BrokerKey {
    /// Kafka's name for it.
    pub(crate) name: &'static str,
    /// The type of its value.
    pub(crate) ty: Type,
    /// The value a broker whose file does not set it has; `None` when Kafka's default is null
    /// (the key is optional, or another key stands in for it, as `log.retention.hours` does for
    /// `log.retention.ms`).
    pub(crate) default: Option<&'static str>,
    /// What an integer value may be.
    pub(crate) range: Range,
    /// One line saying what it does, for DescribeConfigs with IncludeDocumentation.
    pub(crate) doc: &'static str,
    /// The value DescribeConfigs shows, from the typed configuration; `None` shows the value as
    /// given, or the default. Used where the value in force comes from more than this key (a
    /// retention given in hours is shown in `log.retention.ms` too).
    shown: Option<fn(&BrokerConfig) -> Option<String>>,
}

impl BrokerKey {
    /// Checks `value` against the key's type and range: the error names the key, the value and
    /// what is allowed.
    pub(crate) fn check(&self, value: &str) -> Result<(), ConfigError> {
        match self.ty {
            Type::Boolean => match value.to_ascii_lowercase().as_str() {
                "true" | "false" => Ok(()),
                _ => Err(invalid(self.name, value, "true or false")),
            },
            ty if ty.is_integer() => match value.trim().parse::<i64>() {
                Ok(n) if self.contains(n) => Ok(()),
                _ => Err(invalid(self.name, value, &self.allowed())),
            },
            _ => Ok(()),
        }
    }

    fn contains(&self, n: i64) -> bool {
        match self.range {
            Range::Any => true,
            Range::Between(min, max) => (min..=max).contains(&n),
        }
    }

    /// What the key accepts, in words.
    pub(crate) fn allowed(&self) -> String {
        let what = match (self.ty, self.range) {
            (Type::Boolean, _) => "true or false".to_owned(),
            (ty, Range::Between(min, max)) if ty.is_integer() => {
                format!("an integer from {min} to {max}")
            }
            (ty, Range::Any) if ty.is_integer() => "an integer".to_owned(),
            _ => "any text".to_owned(),
        };
        match self.default {
            Some(d) => format!("{what} (default {d})"),
            None => what,
        }
    }

    /// The value DescribeConfigs shows for a broker with this configuration.
    pub(crate) fn shown(&self, config: &BrokerConfig) -> Option<String> {
        match self.shown {
            Some(f) => f(config),
            None => config
                .raw
                .get(self.name)
                .cloned()
                .or_else(|| self.default.map(str::to_owned)),
        }
    }
}

/// Where a value DescribeConfigs shows comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// The properties file or an `--override` (Kafka's STATIC_BROKER_CONFIG).
    Set,
    /// The table's default (Kafka's DEFAULT_CONFIG).
    Default,
}

impl BrokerKey {
    /// The keys that stand for the same setting, in Kafka's order of precedence (Kafka's
    /// `brokerConfigSynonyms`): a retention or roll time in ms, minutes or hours, the flush
    /// interval and the scheduler interval Kafka uses as its default; any other key alone.
    fn family(&self) -> &[&'static str] {
        match self.name {
            "log.roll.ms" | "log.roll.hours" => &["log.roll.ms", "log.roll.hours"],
            "log.retention.ms" | "log.retention.minutes" | "log.retention.hours" => &[
                "log.retention.ms",
                "log.retention.minutes",
                "log.retention.hours",
            ],
            "log.flush.interval.ms" => {
                &["log.flush.interval.ms", "log.flush.scheduler.interval.ms"]
            }
            _ => std::slice::from_ref(&self.name),
        }
    }

    /// The synonyms DescribeConfigs lists for this key, as Kafka's `ConfigHelper` makes them:
    /// every key of its family the file sets, then every one with a default, from this key on
    /// (the ones ahead of it in precedence are left out). Empty when neither this key nor one
    /// after it is set or has a default.
    pub(crate) fn synonyms(&self, config: &BrokerConfig) -> Vec<(&'static str, String, Origin)> {
        let family = self.family();
        let set = family
            .iter()
            .filter_map(|n| Some((*n, config.raw.get(*n)?.clone(), Origin::Set)));
        let defaults = family
            .iter()
            .filter_map(|n| Some((*n, find(n)?.default?.to_owned(), Origin::Default)));
        set.chain(defaults)
            .skip_while(|(n, _, _)| *n != self.name)
            .collect()
    }
}

/// The key named `name`, if the table has it.
pub(crate) fn find(name: &str) -> Option<&'static BrokerKey> {
    ALL.iter().find(|k| k.name == name)
}

/// A key shown as a number of the typed configuration.
macro_rules! shown {
    ($f:expr) => {
        Some(|c: &BrokerConfig| Some(($f)(c).to_string()))
    };
}

/// Defines each key as a constant and [`ALL`] as the list of them, so no key can be read by the
/// parser and missing from DescribeConfigs.
macro_rules! keys {
    ($(
        $id:ident {
            $name:literal, $ty:ident, $default:expr, $range:expr, $doc:literal, $shown:expr $(,)?
        }
    )*) => {
        $(
            #[doc = $doc]
            pub(crate) const $id: BrokerKey = BrokerKey {
                name: $name,
                ty: Type::$ty,
                default: $default,
                range: $range,
                doc: $doc,
                shown: $shown,
            };
        )*
        /// Every broker key kbroker reads, in the order DescribeConfigs lists them.
        pub(crate) const ALL: &[BrokerKey] = &[$($id),*];
    };
}

const I16: i64 = i16::MAX as i64;
const I32: i64 = i32::MAX as i64;
const I64: i64 = i64::MAX;

fn listener(l: &Listener) -> String {
    format!("{}://{}:{}", l.name, l.host, l.port)
}

keys! {
    NODE_ID {
        "node.id", Int, None, Range::Between(0, I32),
        "This broker's id; when unset, broker.id's.",
        shown!(|c: &BrokerConfig| c.node_id) }
    BROKER_ID {
        "broker.id", Int, Some("0"), Range::Between(-1, I32),
        "This broker's id when node.id is unset (-1, Kafka's 'generate one', is 0 here).",
        shown!(|c: &BrokerConfig| c.node_id) }
    LISTENERS {
        "listeners", List, Some("PLAINTEXT://:9092"), Range::Any,
        "NAME://host:port entries to bind: one client listener, and the controller listener in a \
         cluster.",
        Some(|c: &BrokerConfig| Some(listener(&c.listener))) }
    ADVERTISED_LISTENERS {
        "advertised.listeners", List, None, Range::Any,
        "NAME://host:port given to clients; the client listener when unset.",
        Some(|c: &BrokerConfig| Some(listener(&c.advertised))) }
    LOG_DIRS {
        "log.dirs", List, None, Range::Any,
        "Directories holding the partition logs; log.dir when unset.",
        Some(|c: &BrokerConfig| Some(
            c.log_dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(","),
        )) }
    LOG_DIR {
        "log.dir", String, Some("/tmp/kafka-logs"), Range::Any,
        "The log directory when log.dirs is unset.",
        None }
    NUM_PARTITIONS {
        "num.partitions", Int, Some("1"), Range::Between(1, 1_000_000),
        "Partitions of an auto-created topic, or of one created with -1.",
        shown!(|c: &BrokerConfig| c.num_partitions) }
    DEFAULT_REPLICATION_FACTOR {
        "default.replication.factor", Int, Some("1"), Range::Between(1, I16),
        "Replication factor of an auto-created topic, or of one created with -1.",
        shown!(|c: &BrokerConfig| c.default_replication_factor) }
    MIN_INSYNC_REPLICAS {
        "min.insync.replicas", Int, Some("1"), Range::Between(1, I32),
        "In-sync replicas an acks=all write needs, unless the topic says otherwise.",
        shown!(|c: &BrokerConfig| c.min_insync_replicas) }
    AUTO_CREATE_TOPICS_ENABLE {
        "auto.create.topics.enable", Boolean, Some("true"), Range::Any,
        "Create a topic when a client asks for metadata of one that does not exist.",
        shown!(|c: &BrokerConfig| c.auto_create_topics) }
    LOG_SEGMENT_BYTES {
        "log.segment.bytes", Int, Some("1073741824"), Range::Between(14, I32),
        "Largest size of one segment file.",
        shown!(|c: &BrokerConfig| c.log_segment_bytes) }
    LOG_ROLL_MS {
        "log.roll.ms", Long, None, Range::Between(1, I64),
        "Age at which a new segment is rolled; log.roll.hours when unset.",
        shown!(|c: &BrokerConfig| c.log_roll_ms) }
    LOG_ROLL_HOURS {
        "log.roll.hours", Int, Some("168"), Range::Between(1, I32),
        "Age in hours at which a new segment is rolled (second to log.roll.ms).",
        None }
    LOG_RETENTION_MS {
        "log.retention.ms", Long, None, Range::Between(-1, I64),
        "How long data is kept, -1 for ever; log.retention.minutes or .hours when unset.",
        shown!(|c: &BrokerConfig| c.log_retention_ms.unwrap_or(-1)) }
    LOG_RETENTION_MINUTES {
        "log.retention.minutes", Int, None, Range::Between(-1, I32),
        "How long data is kept, in minutes (second to log.retention.ms).",
        None }
    LOG_RETENTION_HOURS {
        "log.retention.hours", Int, Some("168"), Range::Between(-1, I32),
        "How long data is kept, in hours (third, after log.retention.ms and .minutes).",
        None }
    LOG_RETENTION_BYTES {
        "log.retention.bytes", Long, Some("-1"), Range::Between(-1, I64),
        "Size a partition's log is cut down to, -1 for no limit.",
        None }
    LOG_RETENTION_CHECK_INTERVAL_MS {
        "log.retention.check.interval.ms", Long, Some("300000"), Range::Between(1, I64),
        "How often segments are checked for deletion.",
        None }
    LOG_CLEANER_BACKOFF_MS {
        "log.cleaner.backoff.ms", Long, Some("15000"), Range::Between(1, I64),
        "Pause between two passes of the log cleaner over the compacted topics.",
        None }
    LOG_FLUSH_INTERVAL_MESSAGES {
        "log.flush.interval.messages", Long, Some("9223372036854775807"), Range::Between(1, I64),
        "Records appended between two fsyncs of a partition (the default leaves it to the OS).",
        None }
    LOG_FLUSH_INTERVAL_MS {
        "log.flush.interval.ms", Long, None, Range::Between(0, I64),
        "Time between two fsyncs of a partition; unset leaves it to the OS.",
        None }
    LOG_INDEX_INTERVAL_BYTES {
        "log.index.interval.bytes", Int, Some("4096"), Range::Between(0, I32),
        "Bytes of batches between two offset index entries.",
        None }
    MESSAGE_MAX_BYTES {
        "message.max.bytes", Int, Some("1048588"), Range::Between(0, I32),
        "Largest record batch accepted, unless the topic says otherwise.",
        None }
    SOCKET_REQUEST_MAX_BYTES {
        "socket.request.max.bytes", Int, Some("104857600"), Range::Between(1, I32),
        "Largest request frame accepted.",
        None }
    CONNECTIONS_MAX_IDLE_MS {
        "connections.max.idle.ms", Long, Some("600000"), Range::Between(1, I64),
        "Idle connections (or ones halfway through a request) are closed after this long.",
        None }
    OFFSETS_TOPIC_NUM_PARTITIONS {
        "offsets.topic.num.partitions", Int, Some("50"), Range::Between(1, 100_000),
        "Partitions of __consumer_offsets.",
        None }
    OFFSETS_RETENTION_MINUTES {
        "offsets.retention.minutes", Int, Some("10080"), Range::Between(1, I32),
        "How long the committed offsets of an empty group are kept.",
        None }
    OFFSETS_RETENTION_CHECK_INTERVAL_MS {
        "offsets.retention.check.interval.ms", Long, Some("600000"), Range::Between(1, I64),
        "How often expired committed offsets are removed.",
        None }
    OFFSET_METADATA_MAX_BYTES {
        "offset.metadata.max.bytes", Int, Some("4096"), Range::Between(0, I32),
        "Longest metadata string an offset commit may carry.",
        None }
    OFFSETS_TOPIC_REPLICATION_FACTOR {
        "offsets.topic.replication.factor", Short, Some("3"), Range::Between(1, I16),
        "Replicas of __consumer_offsets (capped at the brokers alive when it is created).",
        None }
    OFFSETS_TOPIC_SEGMENT_BYTES {
        "offsets.topic.segment.bytes", Int, Some("104857600"), Range::Between(14, I32),
        "segment.bytes of __consumer_offsets.",
        None }
    GROUP_INITIAL_REBALANCE_DELAY_MS {
        "group.initial.rebalance.delay.ms", Int, Some("3000"), Range::Between(0, I32),
        "How long a new group waits for more members before its first rebalance.",
        None }
    GROUP_MIN_SESSION_TIMEOUT_MS {
        "group.min.session.timeout.ms", Int, Some("6000"), Range::Between(0, I32),
        "Shortest session timeout a group member may ask for.",
        None }
    GROUP_MAX_SESSION_TIMEOUT_MS {
        "group.max.session.timeout.ms", Int, Some("1800000"), Range::Between(0, I32),
        "Longest session timeout a group member may ask for.",
        None }
    TRANSACTION_MAX_TIMEOUT_MS {
        "transaction.max.timeout.ms", Int, Some("900000"), Range::Between(1, I32),
        "Longest transaction.timeout.ms a producer may ask for.",
        None }
    TRANSACTION_ABORT_CHECK_INTERVAL_MS {
        "transaction.abort.timed.out.transaction.cleanup.interval.ms",
        Int, Some("10000"), Range::Between(1, I32),
        "How often transactions past their timeout are aborted.",
        None }
    TRANSACTION_STATE_LOG_REPLICATION_FACTOR {
        "transaction.state.log.replication.factor", Short, Some("3"), Range::Between(1, I16),
        "Replicas of __transaction_state (capped at the brokers alive when it is created).",
        None }
    TRANSACTION_STATE_LOG_NUM_PARTITIONS {
        "transaction.state.log.num.partitions", Int, Some("50"), Range::Between(1, 100_000),
        "Partitions of __transaction_state.",
        None }
    TRANSACTION_STATE_LOG_MIN_ISR {
        "transaction.state.log.min.isr", Int, Some("2"), Range::Between(1, I32),
        "min.insync.replicas of __transaction_state (capped at its replication factor).",
        None }
    TRANSACTION_STATE_LOG_SEGMENT_BYTES {
        "transaction.state.log.segment.bytes", Int, Some("104857600"), Range::Between(14, I32),
        "segment.bytes of __transaction_state.",
        None }
    BROKER_RACK {
        "broker.rack", String, None, Range::Any,
        "This broker's rack, for rack-aware replica placement.",
        None }
    PROCESS_ROLES {
        "process.roles", List, None, Range::Any,
        "Accepted for compatibility: every kbroker is broker and controller (combined mode).",
        None }
    CONTROLLER_QUORUM_VOTERS {
        "controller.quorum.voters", List, None, Range::Any,
        "id@host:port of every voter of the metadata quorum; unset runs a single broker.",
        Some(|c: &BrokerConfig| c.cluster.as_ref().map(|c| {
            c.voters.iter().map(|(id, a)| format!("{id}@{a}")).collect::<Vec<_>>().join(",")
        })) }
    CONTROLLER_LISTENER_NAMES {
        "controller.listener.names", List, Some("CONTROLLER"), Range::Any,
        "Names of the listeners that are the controller's, not clients'.",
        None }
    BROKER_SESSION_TIMEOUT_MS {
        "broker.session.timeout.ms", Int, Some("9000"), Range::Between(100, I32),
        "A broker not heard from for this long is fenced.",
        None }
    BROKER_HEARTBEAT_INTERVAL_MS {
        "broker.heartbeat.interval.ms", Int, Some("2000"), Range::Between(i32::MIN as i64, I32),
        "Accepted for compatibility; brokers are heard from through the Raft quorum.",
        None }
    UNCLEAN_LEADER_ELECTION_ENABLE {
        "unclean.leader.election.enable", Boolean, Some("false"), Range::Any,
        "Elect a replica outside the ISR when no ISR member is left (may lose acknowledged \
         writes).",
        None }
    AUTO_LEADER_REBALANCE_ENABLE {
        "auto.leader.rebalance.enable", Boolean, Some("true"), Range::Any,
        "Give partitions back to their preferred replica when a broker's imbalance is too high.",
        None }
    LEADER_IMBALANCE_CHECK_INTERVAL_SECONDS {
        "leader.imbalance.check.interval.seconds", Long, Some("300"), Range::Between(1, I64),
        "How often the leader imbalance is checked.",
        None }
    LEADER_IMBALANCE_PER_BROKER_PERCENTAGE {
        "leader.imbalance.per.broker.percentage", Int, Some("10"), Range::Between(0, 100),
        "Leader imbalance a broker may have, in percent.",
        None }
    METADATA_LOG_DIR {
        "metadata.log.dir", String, None, Range::Any,
        "Where the metadata quorum's log lives; <first log dir>/__cluster_metadata-0 when unset.",
        None }
    REPLICA_LAG_TIME_MAX_MS {
        "replica.lag.time.max.ms", Long, Some("30000"), Range::Between(1, I64),
        "A follower not caught up for this long leaves the ISR.",
        None }
    REPLICA_FETCH_WAIT_MAX_MS {
        "replica.fetch.wait.max.ms", Int, Some("500"), Range::Between(0, I32),
        "How long a follower's fetch waits at the leader for data.",
        None }
    REPLICA_FETCH_MAX_BYTES {
        "replica.fetch.max.bytes", Int, Some("1048576"), Range::Between(0, I32),
        "Bytes a follower fetches per partition and fetch.",
        None }
    REPLICA_FETCH_RESPONSE_MAX_BYTES {
        "replica.fetch.response.max.bytes", Int, Some("10485760"), Range::Between(0, I32),
        "Bytes a follower fetches per fetch response.",
        None }
    REPLICA_FETCH_BACKOFF_MS {
        "replica.fetch.backoff.ms", Int, Some("100"), Range::Between(0, I32),
        "Pause after a failed follower fetch (Kafka waits 1000; a local cluster fails over \
         faster).",
        None }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique() {
        let mut names: Vec<&str> = ALL.iter().map(|k| k.name).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(names.len(), before, "a key is listed twice");
    }

    #[test]
    fn every_default_passes_its_own_check() {
        for k in ALL {
            assert!(
                k.doc.ends_with('.') && !k.doc.contains("  ") && !k.doc.contains('\n'),
                "{}: the documentation is one line: {:?}",
                k.name,
                k.doc
            );
            if let Some(d) = k.default {
                k.check(d)
                    .unwrap_or_else(|e| panic!("default of {} is refused: {e}", k.name));
            }
            if let Range::Between(min, max) = k.range {
                assert!(k.ty.is_integer() && min <= max, "{}: bad range", k.name);
                // Kafka refuses an INT key's value beyond 32 bits, a SHORT's beyond 16.
                let (lo, hi) = match k.ty {
                    Type::Short => (i16::MIN as i64, I16),
                    Type::Int => (i32::MIN as i64, I32),
                    _ => (i64::MIN, I64),
                };
                assert!(
                    lo <= min && max <= hi,
                    "{}: range wider than its type",
                    k.name
                );
            }
        }
    }

    #[test]
    fn synonyms_follow_kafkas_precedence() {
        let config = |kv: &[&str]| {
            let raw = kv
                .iter()
                .map(|s| s.split_once('=').unwrap())
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            BrokerConfig::from_map(raw).unwrap()
        };
        let names = |k: &BrokerKey, c: &BrokerConfig| {
            k.synonyms(c)
                .into_iter()
                .map(|(n, v, o)| format!("{o:?}:{n}={v}"))
                .collect::<Vec<_>>()
        };
        let c = config(&[
            "log.retention.ms=1000",
            "log.retention.hours=5",
            "num.partitions=4",
        ]);
        assert_eq!(
            names(&LOG_RETENTION_MS, &c),
            [
                "Set:log.retention.ms=1000",
                "Set:log.retention.hours=5",
                "Default:log.retention.hours=168"
            ]
        );
        assert_eq!(
            names(&LOG_RETENTION_HOURS, &c),
            [
                "Set:log.retention.hours=5",
                "Default:log.retention.hours=168"
            ]
        );
        assert_eq!(
            names(&NUM_PARTITIONS, &c),
            ["Set:num.partitions=4", "Default:num.partitions=1"]
        );
        let d = config(&[]);
        // Unset and without a default of its own: Kafka lists no synonym (hours stands in).
        assert!(names(&LOG_RETENTION_MS, &d).is_empty());
        assert_eq!(names(&BROKER_RACK, &d), Vec::<String>::new());
        assert_eq!(names(&NUM_PARTITIONS, &d), ["Default:num.partitions=1"]);
    }

    #[test]
    fn check_refuses_what_is_outside_the_range_and_says_so() {
        let e = NUM_PARTITIONS.check("0").unwrap_err().to_string();
        assert!(
            e.contains("num.partitions")
                && e.contains("\"0\"")
                && e.contains("from 1 to 1000000")
                && e.contains("default 1"),
            "{e}"
        );
        assert!(NUM_PARTITIONS.check("1000000").is_ok());
        assert!(NUM_PARTITIONS.check("1000001").is_err());
        assert!(AUTO_CREATE_TOPICS_ENABLE.check("TRUE").is_ok());
        let e = AUTO_CREATE_TOPICS_ENABLE
            .check("1")
            .unwrap_err()
            .to_string();
        assert!(e.contains("true or false"), "{e}");
    }
}
