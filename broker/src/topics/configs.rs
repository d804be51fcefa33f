//! Topic-level configuration: every key Apache Kafka 4.4 knows for a topic, its default, how a
//! value is checked, and whether kbroker acts on it.
//!
//! Clients and tools copy topic configs between clusters and describe them (`kafka-configs
//! --describe --all`, Terraform providers, MirrorMaker): a key Kafka knows must be accepted,
//! stored and described here too, never refused as unknown. The list is the one Kafka 4.4.0
//! itself describes for a topic (DescribeConfigs, all keys), with the same defaults and the
//! value checks of Kafka's `LogConfig` definitions. Only some keys change what kbroker does
//! ([`TopicKey::enforced`], listed in README.md); the others are kept and described as set.
//!
//! A topic stores only its overrides; [`TopicConfigs`] resolves them against the broker's
//! defaults. [`alter`] applies an IncrementalAlterConfigs request (set, delete, append,
//! subtract) to a set of overrides and checks the result.

use std::collections::BTreeMap;

use crate::config::BrokerConfig;
use crate::log::{CompactionConfig, LogConfig};
use crate::topics::TopicError;

/// How a value is checked (Kafka's `ConfigDef` type and validator for the key).
#[derive(Clone, Copy)]
enum Kind {
    /// A 64-bit integer no smaller than the bound.
    Long(i64),
    /// A 32-bit integer within the bounds.
    Int(i64, i64),
    /// `compression.gzip.level`: -1 (the codec's default) or 1 to 9.
    GzipLevel,
    /// `true` or `false`.
    Bool,
    /// A number from 0 to 1.
    Ratio,
    /// One of the given words.
    Choice(&'static [&'static str]),
    /// A comma-separated list of the given words.
    ListOf(&'static [&'static str]),
    /// Throttled replicas: empty, `*`, or `partition:broker` pairs.
    Replicas,
}

/// One topic config key.
struct TopicKey {
    /// Kafka's name for it.
    name: &'static str,
    /// How a value is checked.
    kind: Kind,
    /// Whether kbroker acts on the value (README.md lists these; a test holds them equal).
    #[cfg_attr(not(test), allow(dead_code))]
    enforced: bool,
    /// The value a topic without an override has.
    default: fn(&BrokerConfig) -> String,
}

const COMPRESSION_TYPES: &[&str] = &["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"];

/// Every topic key of Kafka 4.4, in the order Kafka describes them.
const KEYS: &[TopicKey] = &[
    TopicKey {
        name: "cleanup.policy",
        kind: Kind::ListOf(&["delete", "compact"]),
        enforced: true,
        default: |_| "delete".into(),
    },
    TopicKey {
        name: "compression.gzip.level",
        kind: Kind::GzipLevel,
        enforced: false,
        default: |_| "-1".into(),
    },
    TopicKey {
        name: "compression.lz4.level",
        kind: Kind::Int(1, 17),
        enforced: false,
        default: |_| "9".into(),
    },
    TopicKey {
        name: "compression.type",
        kind: Kind::Choice(COMPRESSION_TYPES),
        enforced: false,
        default: |_| "producer".into(),
    },
    TopicKey {
        name: "compression.zstd.level",
        kind: Kind::Int(-131_072, 22),
        enforced: false,
        default: |_| "3".into(),
    },
    TopicKey {
        name: "delete.retention.ms",
        kind: Kind::Long(0),
        enforced: true,
        default: |_| "86400000".into(),
    },
    TopicKey {
        name: "errors.deadletterqueue.group.enable",
        kind: Kind::Bool,
        enforced: false,
        default: |_| "false".into(),
    },
    TopicKey {
        name: "file.delete.delay.ms",
        kind: Kind::Long(0),
        enforced: false,
        default: |_| "60000".into(),
    },
    TopicKey {
        name: "flush.messages",
        kind: Kind::Long(-1),
        enforced: true,
        default: |b| {
            b.log_flush_interval_messages
                .map_or(i64::MAX, |v| v as i64)
                .to_string()
        },
    },
    TopicKey {
        name: "flush.ms",
        kind: Kind::Long(-1),
        enforced: true,
        default: |b| {
            b.log_flush_interval_ms
                .map_or(i64::MAX, |v| v as i64)
                .to_string()
        },
    },
    TopicKey {
        name: "follower.replication.throttled.replicas",
        kind: Kind::Replicas,
        enforced: false,
        default: |_| String::new(),
    },
    TopicKey {
        name: "index.interval.bytes",
        // Kafka's LogConfig: atLeast(0); 0 puts an index entry after every batch.
        kind: Kind::Int(0, i32::MAX as i64),
        enforced: true,
        default: |b| b.log_index_interval_bytes.to_string(),
    },
    TopicKey {
        name: "leader.replication.throttled.replicas",
        kind: Kind::Replicas,
        enforced: false,
        default: |_| String::new(),
    },
    TopicKey {
        name: "local.retention.bytes",
        kind: Kind::Long(-2),
        enforced: false,
        default: |_| "-2".into(),
    },
    TopicKey {
        name: "local.retention.ms",
        kind: Kind::Long(-2),
        enforced: false,
        default: |_| "-2".into(),
    },
    TopicKey {
        name: "max.compaction.lag.ms",
        kind: Kind::Long(1),
        enforced: true,
        default: |_| i64::MAX.to_string(),
    },
    TopicKey {
        name: "max.decompressed.message.bytes",
        kind: Kind::Int(0, i32::MAX as i64),
        enforced: false,
        default: |_| "2147483639".into(),
    },
    TopicKey {
        name: "max.message.bytes",
        kind: Kind::Int(1, i32::MAX as i64),
        enforced: true,
        default: |b| b.message_max_bytes.to_string(),
    },
    TopicKey {
        name: "message.timestamp.after.max.ms",
        kind: Kind::Long(0),
        enforced: false,
        default: |_| "3600000".into(),
    },
    TopicKey {
        name: "message.timestamp.before.max.ms",
        kind: Kind::Long(0),
        enforced: false,
        default: |_| i64::MAX.to_string(),
    },
    TopicKey {
        name: "message.timestamp.type",
        kind: Kind::Choice(&["CreateTime", "LogAppendTime"]),
        enforced: false,
        default: |_| "CreateTime".into(),
    },
    TopicKey {
        name: "min.cleanable.dirty.ratio",
        kind: Kind::Ratio,
        enforced: true,
        default: |_| "0.5".into(),
    },
    TopicKey {
        name: "min.compaction.lag.ms",
        kind: Kind::Long(0),
        enforced: true,
        default: |_| "0".into(),
    },
    TopicKey {
        name: "min.insync.replicas",
        kind: Kind::Int(1, i32::MAX as i64),
        enforced: true,
        default: |b| b.min_insync_replicas.to_string(),
    },
    TopicKey {
        name: "preallocate",
        kind: Kind::Bool,
        enforced: false,
        default: |_| "false".into(),
    },
    TopicKey {
        name: "remote.copy.lag.bytes",
        kind: Kind::Long(-1),
        enforced: false,
        default: |_| "-1".into(),
    },
    TopicKey {
        name: "remote.copy.lag.ms",
        kind: Kind::Long(0),
        enforced: false,
        default: |_| "0".into(),
    },
    TopicKey {
        name: "remote.log.copy.disable",
        kind: Kind::Bool,
        enforced: false,
        default: |_| "false".into(),
    },
    TopicKey {
        name: "remote.log.delete.on.disable",
        kind: Kind::Bool,
        enforced: false,
        default: |_| "false".into(),
    },
    TopicKey {
        name: "remote.storage.enable",
        kind: Kind::Bool,
        enforced: false,
        default: |_| "false".into(),
    },
    TopicKey {
        name: "retention.bytes",
        kind: Kind::Long(-1),
        enforced: true,
        default: |b| b.log_retention_bytes.map_or(-1, |v| v as i64).to_string(),
    },
    TopicKey {
        name: "retention.ms",
        kind: Kind::Long(-1),
        enforced: true,
        default: |b| b.log_retention_ms.unwrap_or(-1).to_string(),
    },
    TopicKey {
        // Kafka's minimum is 1 MiB; kbroker's tests and small benchmarks roll smaller segments,
        // down to one batch header.
        name: "segment.bytes",
        kind: Kind::Int(14, i32::MAX as i64),
        enforced: true,
        default: |b| b.log_segment_bytes.to_string(),
    },
    TopicKey {
        name: "segment.index.bytes",
        kind: Kind::Int(4, i32::MAX as i64),
        enforced: false,
        default: |_| "10485760".into(),
    },
    TopicKey {
        name: "segment.jitter.ms",
        kind: Kind::Long(0),
        enforced: false,
        default: |_| "0".into(),
    },
    TopicKey {
        name: "segment.ms",
        kind: Kind::Long(1),
        enforced: true,
        default: |b| b.log_roll_ms.to_string(),
    },
    TopicKey {
        name: "unclean.leader.election.enable",
        kind: Kind::Bool,
        enforced: false,
        default: |_| "false".into(),
    },
];

fn key(name: &str) -> Option<&'static TopicKey> {
    KEYS.iter().find(|k| k.name == name)
}

/// The keys kbroker acts on (README.md lists them).
#[cfg(test)]
fn enforced_keys() -> impl Iterator<Item = &'static str> {
    KEYS.iter().filter(|k| k.enforced).map(|k| k.name)
}

/// A topic's effective configuration: overrides resolved against broker defaults.
pub(crate) struct TopicConfigs<'a> {
    broker: &'a BrokerConfig,
    overrides: &'a BTreeMap<String, String>,
}

impl<'a> TopicConfigs<'a> {
    pub(crate) fn new(broker: &'a BrokerConfig, overrides: &'a BTreeMap<String, String>) -> Self {
        TopicConfigs { broker, overrides }
    }

    /// Every key with its value and whether it is the default.
    pub(crate) fn entries(&self) -> Vec<(&'static str, String, bool)> {
        KEYS.iter()
            .map(|k| match self.overrides.get(k.name) {
                Some(v) => (k.name, v.clone(), false),
                None => (k.name, (k.default)(self.broker), true),
            })
            .collect()
    }

    /// The effective value of `name` (a key of [`KEYS`]).
    fn value(&self, name: &str) -> String {
        match self.overrides.get(name) {
            Some(v) => v.clone(),
            None => key(name).map_or_else(String::new, |k| (k.default)(self.broker)),
        }
    }

    fn int(&self, name: &str) -> i64 {
        self.value(name).parse().unwrap_or(-1)
    }

    /// The storage settings for this topic's partitions.
    /// `cleanup.policy=compact` alone turns time and size retention off, as in Kafka;
    /// `compact,delete` applies both.
    pub(crate) fn log_config(&self) -> LogConfig {
        let positive = |v: i64| (v >= 0 && v != i64::MAX).then_some(v as u64);
        let policy = self.value("cleanup.policy");
        let has = |word: &str| policy.split(',').any(|w| w.trim() == word);
        let delete = has("delete");
        let compaction = has("compact").then(|| CompactionConfig {
            min_cleanable_dirty_ratio: self
                .value("min.cleanable.dirty.ratio")
                .trim()
                .parse()
                .unwrap_or(0.5),
            min_compaction_lag_ms: self.int("min.compaction.lag.ms").max(0),
            max_compaction_lag_ms: self.int("max.compaction.lag.ms").max(1),
            delete_retention_ms: self.int("delete.retention.ms").max(0),
        });
        LogConfig {
            segment_bytes: self.int("segment.bytes") as u64,
            segment_ms: positive(self.int("segment.ms")),
            retention_ms: (delete && self.int("retention.ms") >= 0)
                .then(|| self.int("retention.ms")),
            retention_bytes: positive(self.int("retention.bytes")).filter(|_| delete),
            flush_interval_messages: positive(self.int("flush.messages")),
            flush_interval_ms: positive(self.int("flush.ms")),
            index_interval_bytes: self.int("index.interval.bytes") as u32,
            max_message_bytes: self.int("max.message.bytes") as usize,
            compaction,
        }
    }
}

/// Whether a topic with these overrides is compacted (`cleanup.policy` includes `compact`;
/// the broker default is `delete`).
pub(crate) fn is_compacted(overrides: &BTreeMap<String, String>) -> bool {
    overrides
        .get("cleanup.policy")
        .is_some_and(|p| p.split(',').any(|w| w.trim() == "compact"))
}

fn invalid(msg: String) -> TopicError {
    TopicError::InvalidConfig(msg)
}

/// Kafka's words for a key it does not know (InvalidConfigurationException).
fn unknown(name: &str) -> TopicError {
    invalid(format!("Unknown topic config name: {name}"))
}

/// Checks one value against its key's rule.
fn check_value(k: &TopicKey, v: &str) -> Result<(), TopicError> {
    let bad = |allowed: String| {
        Err(invalid(format!(
            "Invalid value {v} for configuration {}: {allowed}",
            k.name
        )))
    };
    let trimmed = v.trim();
    match k.kind {
        Kind::Long(min) => match trimmed.parse::<i64>() {
            Ok(n) if n >= min => Ok(()),
            _ => bad(format!("a whole number of at least {min}")),
        },
        Kind::Int(min, max) => match trimmed.parse::<i64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(()),
            _ => bad(format!("a whole number from {min} to {max}")),
        },
        Kind::GzipLevel => match trimmed.parse::<i64>() {
            Ok(n) if n == -1 || (1..=9).contains(&n) => Ok(()),
            _ => bad("-1 or a whole number from 1 to 9".into()),
        },
        Kind::Bool => match trimmed.to_ascii_lowercase().as_str() {
            "true" | "false" => Ok(()),
            _ => bad("true or false".into()),
        },
        Kind::Ratio => match trimmed.parse::<f64>() {
            Ok(n) if (0.0..=1.0).contains(&n) => Ok(()),
            _ => bad("a number from 0 to 1".into()),
        },
        Kind::Choice(words) => {
            if words.contains(&trimmed) {
                Ok(())
            } else {
                bad(format!("one of {}", words.join(", ")))
            }
        }
        Kind::ListOf(words) => {
            if trimmed.split(',').all(|w| words.contains(&w.trim())) {
                Ok(())
            } else {
                bad(format!("a comma-separated list of {}", words.join(", ")))
            }
        }
        Kind::Replicas => {
            let pair = |p: &str| {
                p.split_once(':').is_some_and(|(a, b)| {
                    a.trim().parse::<u32>().is_ok() && b.trim().parse::<u32>().is_ok()
                })
            };
            if trimmed.is_empty() || trimmed == "*" || trimmed.split(',').all(pair) {
                Ok(())
            } else {
                bad("empty, * or a list of partition:broker pairs".into())
            }
        }
    }
}

/// Checks a set of topic config overrides: known keys, values Kafka would accept, and no
/// setting kbroker cannot honour at all (tiered storage).
pub(crate) fn validate_configs(configs: &BTreeMap<String, String>) -> Result<(), TopicError> {
    for (name, v) in configs {
        let k = key(name).ok_or_else(|| unknown(name))?;
        check_value(k, v)?;
        if k.name == "remote.storage.enable" && v.trim().eq_ignore_ascii_case("true") {
            // Kafka's answer when the broker has no remote log manager.
            return Err(invalid(
                "Tiered Storage functionality is disabled in the broker. Topic cannot be \
                 configured with remote log storage."
                    .into(),
            ));
        }
    }
    Ok(())
}

/// One change of an IncrementalAlterConfigs request.
pub(crate) enum Alteration {
    /// Set the key to the value.
    Set(String),
    /// Remove the override: back to the default.
    Delete,
    /// Add the values to a list key (those not in it already).
    Append(String),
    /// Remove the values from a list key.
    Subtract(String),
}

impl Alteration {
    /// From the wire: operation code (0 set, 1 delete, 2 append, 3 subtract) and value.
    pub(crate) fn from_wire(op: i8, value: Option<&str>) -> Result<Self, TopicError> {
        let value = || value.unwrap_or_default().to_owned();
        match op {
            0 => Ok(Alteration::Set(value())),
            1 => Ok(Alteration::Delete),
            2 => Ok(Alteration::Append(value())),
            3 => Ok(Alteration::Subtract(value())),
            other => Err(invalid(format!(
                "unknown config operation {other} (0 set, 1 delete, 2 append, 3 subtract)"
            ))),
        }
    }
}

/// Applies `changes` to the `current` overrides of a topic and checks the result. Append and
/// subtract work on the effective value (the default when there is no override) and only on
/// list keys, as in Kafka.
pub(crate) fn alter(
    broker: &BrokerConfig,
    current: &BTreeMap<String, String>,
    changes: &[(String, Alteration)],
) -> Result<BTreeMap<String, String>, TopicError> {
    let mut next = current.clone();
    for (name, change) in changes {
        let k = key(name).ok_or_else(|| unknown(name))?;
        let is_list = matches!(k.kind, Kind::ListOf(_) | Kind::Replicas);
        let effective = |next: &BTreeMap<String, String>| -> Vec<String> {
            TopicConfigs::new(broker, next)
                .value(name)
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        };
        match change {
            Alteration::Set(v) => {
                next.insert(name.clone(), v.clone());
            }
            Alteration::Delete => {
                next.remove(name);
            }
            Alteration::Append(_) | Alteration::Subtract(_) if !is_list => {
                return Err(invalid(format!(
                    "Config value append or subtract is not allowed for config key {name}: it \
                     is not a list"
                )));
            }
            Alteration::Append(v) => {
                let mut items = effective(&next);
                for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    if !items.iter().any(|i| i == item) {
                        items.push(item.to_owned());
                    }
                }
                next.insert(name.clone(), items.join(","));
            }
            Alteration::Subtract(v) => {
                let drop: Vec<&str> = v.split(',').map(str::trim).collect();
                let items: Vec<String> = effective(&next)
                    .into_iter()
                    .filter(|i| !drop.contains(&i.as_str()))
                    .collect();
                next.insert(name.clone(), items.join(","));
            }
        }
    }
    validate_configs(&next)?;
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn every_kafka_topic_key_is_known_and_its_default_is_valid() {
        let broker = BrokerConfig::load(None, &[]).unwrap();
        let none = BTreeMap::new();
        let entries = TopicConfigs::new(&broker, &none).entries();
        assert_eq!(entries.len(), 37, "Kafka 4.4 describes 37 topic keys");
        for (k, v, default) in entries {
            assert!(default);
            check_value(key(k).unwrap(), &v)
                .unwrap_or_else(|e| panic!("default of {k} ({v:?}) is refused: {e}"));
        }
    }

    #[test]
    fn readme_lists_the_enforced_topic_configs() {
        let readme = include_str!("../../../README.md");
        let line = readme
            .lines()
            .find(|l| l.starts_with("Topic configs kbroker enforces:"))
            .expect("README.md has a line 'Topic configs kbroker enforces: ...'");
        let listed: Vec<&str> = line.split('`').skip(1).step_by(2).collect();
        assert_eq!(listed, enforced_keys().collect::<Vec<_>>(), "{line}");
    }

    #[test]
    fn an_index_interval_of_zero_is_accepted_as_kafka_does() {
        assert!(validate_configs(&map(&[("index.interval.bytes", "0")])).is_ok());
        let e = validate_configs(&map(&[("index.interval.bytes", "-1")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("index.interval.bytes"), "{e}");
    }

    #[test]
    fn topic_configs_are_checked() {
        assert!(validate_configs(&map(&[
            ("retention.ms", "-1"),
            ("segment.bytes", "1048576"),
            ("compression.type", "zstd"),
            ("cleanup.policy", "compact,delete"),
            ("min.cleanable.dirty.ratio", "0.1"),
            ("leader.replication.throttled.replicas", "0:1,1:2"),
            ("preallocate", "true"),
        ]))
        .is_ok());
        let e = validate_configs(&map(&[("retention.msx", "1")]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("Unknown topic config name: retention.msx"),
            "{e}"
        );
        for (k, v) in [
            ("segment.bytes", "big"),
            ("compression.type", "brotli"),
            ("compression.gzip.level", "0"),
            ("min.cleanable.dirty.ratio", "1.5"),
            ("preallocate", "yes"),
            ("cleanup.policy", "keep"),
        ] {
            let e = validate_configs(&map(&[(k, v)])).unwrap_err().to_string();
            assert!(e.contains(k) && e.contains(v), "{k}={v}: {e}");
        }
        let e = validate_configs(&map(&[("remote.storage.enable", "true")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("Tiered Storage"), "{e}");
    }

    #[test]
    fn alterations_set_delete_append_and_subtract() {
        let broker = BrokerConfig::load(None, &[]).unwrap();
        let cur = map(&[("retention.ms", "1000")]);
        let next = alter(
            &broker,
            &cur,
            &[
                ("retention.ms".into(), Alteration::Delete),
                ("max.message.bytes".into(), Alteration::Set("2000".into())),
                (
                    "cleanup.policy".into(),
                    Alteration::Append("compact".into()),
                ),
            ],
        )
        .unwrap();
        assert_eq!(
            next,
            map(&[
                ("cleanup.policy", "delete,compact"),
                ("max.message.bytes", "2000")
            ])
        );
        let next = alter(
            &broker,
            &next,
            &[(
                "cleanup.policy".into(),
                Alteration::Subtract("delete".into()),
            )],
        )
        .unwrap();
        assert_eq!(next["cleanup.policy"], "compact");
        let e = alter(
            &broker,
            &next,
            &[("retention.ms".into(), Alteration::Append("5".into()))],
        )
        .unwrap_err();
        assert!(e.to_string().contains("not a list"), "{e}");
        assert!(alter(
            &broker,
            &next,
            &[("segment.bytes".into(), Alteration::Set("x".into()))]
        )
        .is_err());
    }

    #[test]
    fn overrides_resolve_against_broker_defaults() {
        let broker = BrokerConfig::load(None, &["log.segment.bytes=2048".into()]).unwrap();
        let none = BTreeMap::new();
        assert_eq!(
            TopicConfigs::new(&broker, &none).log_config().segment_bytes,
            2048
        );
        let o = map(&[("retention.ms", "-1")]);
        let lc = TopicConfigs::new(&broker, &o).log_config();
        assert_eq!(lc.retention_ms, None);
        assert_eq!(lc.segment_bytes, 2048);
    }
}
