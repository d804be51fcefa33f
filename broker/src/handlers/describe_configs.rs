//! DescribeConfigs: topic configs (overrides and defaults) and broker configs.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};

use super::create_topics::{SOURCE_DEFAULT, SOURCE_STATIC_BROKER, SOURCE_TOPIC};
use super::RequestContext;
use crate::config::{keys, BrokerConfig};
use crate::wire::{str_bytes, KafkaError};
use crate::topics::TopicConfigs;

/// One config entry of a DescribeConfigs answer.
struct Entry {
    name: String,
    value: Option<String>,
    source: i8,
    read_only: bool,
    /// The broker key's type and one-line documentation, when the broker table has the key.
    key: Option<&'static keys::BrokerKey>,
}

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;

pub(crate) async fn handle(
    ctx: &RequestContext<'_>,
    req: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let broker = ctx.broker;
    let mut resp = DescribeConfigsResponse::default();
    for res in req.resources {
        let mut r = DescribeConfigsResult::default();
        r.resource_type = res.resource_type;
        r.resource_name = res.resource_name.clone();
        let name = res.resource_name.to_string();
        let entries: Result<Vec<Entry>, KafkaError> = match res.resource_type {
            // The metadata's view (the cluster's in a cluster): an alteration just committed
            // is described at once by whichever broker is asked.
            RESOURCE_TOPIC => match broker.topic_view(&name) {
                Some(t) => Ok(TopicConfigs::new(&broker.config, &t.configs)
                    .entries()
                    .into_iter()
                    .map(|(k, v, d)| Entry {
                        name: k.to_owned(),
                        value: Some(v),
                        source: if d { SOURCE_DEFAULT } else { SOURCE_TOPIC },
                        read_only: false,
                        key: None,
                    })
                    .collect()),
                None => Err(KafkaError::new(
                    ResponseError::UnknownTopicOrPartition,
                    format!("topic {name} does not exist"),
                )),
            },
            RESOURCE_BROKER if name.is_empty() || name == broker.node_id().to_string() => {
                Ok(broker_entries(&broker.config))
            }
            RESOURCE_BROKER => Err(KafkaError::new(
                ResponseError::InvalidRequest,
                format!("broker {name} is not this broker ({})", broker.node_id()),
            )),
            other => Err(KafkaError::new(
                ResponseError::InvalidRequest,
                format!("resource type {other} is not supported (topic = 2, broker = 4)"),
            )),
        };
        match entries {
            Ok(entries) => {
                let keys = res.configuration_keys.as_ref();
                for e in entries {
                    if keys.is_some_and(|ks| !ks.iter().any(|x| x.as_str() == e.name)) {
                        continue;
                    }
                    let mut c = DescribeConfigsResourceResult::default();
                    c.name = str_bytes(&e.name);
                    c.value = e.value.as_deref().map(str_bytes);
                    c.config_source = e.source;
                    c.read_only = e.read_only;
                    if let Some(k) = e.key {
                        c.config_type = k.ty.wire_id();
                        if req.include_documentation {
                            c.documentation = Some(str_bytes(k.doc));
                        }
                        if req.include_synonyms {
                            c.synonyms = synonyms(k, &broker.config);
                        }
                    }
                    r.configs.push(c);
                }
            }
            Err(e) => {
                r.error_code = e.code;
                r.error_message = Some(str_bytes(&e.message));
            }
        }
        resp.results.push(r);
    }
    resp
}

/// A broker key's synonyms (IncludeSynonyms), as Kafka lists them.
fn synonyms(key: &keys::BrokerKey, config: &BrokerConfig) -> Vec<DescribeConfigsSynonym> {
    key.synonyms(config)
        .into_iter()
        .map(|(name, value, origin)| {
            let mut s = DescribeConfigsSynonym::default();
            s.name = str_bytes(name);
            s.value = Some(str_bytes(&value));
            s.source = match origin {
                keys::Origin::Set => SOURCE_STATIC_BROKER,
                keys::Origin::Default => SOURCE_DEFAULT,
            };
            s
        })
        .collect()
}

/// Every key of the broker table ([`keys::ALL`]) with the value in force: keys given in the
/// properties file or as an override are STATIC_BROKER_CONFIG, the rest DEFAULT_CONFIG; all are
/// read-only (kbroker has no dynamic broker configs). Keys the table does not have but the file
/// set are listed after them as given, as Kafka lists a file's unknown keys.
fn broker_entries(config: &BrokerConfig) -> Vec<Entry> {
    let mut entries: Vec<Entry> = keys::ALL
        .iter()
        .map(|k| Entry {
            name: k.name.to_owned(),
            value: k.shown(config),
            source: if config.raw.contains_key(k.name) {
                SOURCE_STATIC_BROKER
            } else {
                SOURCE_DEFAULT
            },
            read_only: true,
            key: Some(k),
        })
        .collect();
    for (k, v) in &config.raw {
        if keys::find(k).is_none() {
            entries.push(Entry {
                name: k.clone(),
                value: Some(v.clone()),
                source: SOURCE_STATIC_BROKER,
                read_only: true,
                key: None,
            });
        }
    }
    entries
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_entries_list_every_table_key_then_the_files_unknown_keys() {
        let raw = [("num.partitions", "4"), ("some.future.key", "x")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let config = BrokerConfig::from_map(raw).unwrap();
        let entries = broker_entries(&config);
        for k in keys::ALL {
            let e = entries
                .iter()
                .find(|e| e.name == k.name)
                .unwrap_or_else(|| panic!("{} is not described", k.name));
            assert!(e.read_only && e.key.is_some(), "{}", k.name);
        }
        assert_eq!(entries.len(), keys::ALL.len() + 1);
        let get = |n: &str| entries.iter().find(|e| e.name == n).unwrap();
        let np = get("num.partitions");
        assert_eq!(
            (np.value.as_deref(), np.source),
            (Some("4"), SOURCE_STATIC_BROKER)
        );
        let mr = get("min.insync.replicas");
        assert_eq!((mr.value.as_deref(), mr.source), (Some("1"), SOURCE_DEFAULT));
        let unknown = get("some.future.key");
        assert_eq!(
            (unknown.value.as_deref(), unknown.source, unknown.key.is_none()),
            (Some("x"), SOURCE_STATIC_BROKER, true)
        );
    }
}
