//! `kbench cluster describe`: the brokers (id, address, rack, alive, controller), then a
//! `kafka-topics --describe` of every topic, of any cluster, through rdkafka only.
//!
//! Metadata lists the live brokers only; given `--dir` of a `kbench cluster up`, the brokers
//! that cluster knows are listed too, a stopped one as down. Formatting is a pure function of
//! what was gathered ([`format_brokers`], [`format_topics`]), so it is tested without a broker.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context as _;
use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::metadata::Metadata;

use crate::sut::embedded::BrokerStatus;
use crate::sut::{controller_id, ClusterAccess};

/// Bound on each request of `describe`.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// `kbench cluster describe`: the brokers, then every topic (or `topic`) of `cluster`.
/// `known` = the brokers of the `kbench cluster up` given by `--dir`, if any.
pub async fn describe(
    cluster: &ClusterAccess,
    topic: Option<&str>,
    known: &[BrokerStatus],
) -> anyhow::Result<String> {
    let bootstrap = cluster.bootstrap();
    let consumer: BaseConsumer = cluster
        .client("kbench-describe")
        .set("log_level", "3")
        .create()
        .with_context(|| format!("--bootstrap {bootstrap}: cannot create a client"))?;
    let md = consumer
        .fetch_metadata(topic, REQUEST_TIMEOUT)
        .with_context(|| {
            format!("--bootstrap {bootstrap}: no Metadata within {REQUEST_TIMEOUT:?}")
        })?;
    if let Some(t) = topic {
        if !md
            .topics()
            .iter()
            .any(|m| m.name() == t && m.error().is_none())
        {
            anyhow::bail!("--topic {t}: no such topic at {bootstrap}");
        }
    }
    let (racks, controller) = match described_nodes(&consumer, REQUEST_TIMEOUT) {
        Some(nodes) => nodes,
        None => (BTreeMap::new(), controller_id(&consumer, REQUEST_TIMEOUT)),
    };
    let listed: Vec<(i32, String)> = md
        .brokers()
        .iter()
        .map(|b| (b.id(), format!("{}:{}", b.host(), b.port())))
        .collect();
    let brokers = broker_views(&listed, controller, &racks, known);
    let names: Vec<String> = md.topics().iter().map(|t| t.name().to_string()).collect();
    let configs = topic_configs(cluster, &names).await;
    let (topics, live) = views(&md);
    Ok(format!(
        "{}{}",
        format_brokers(&brokers),
        format_topics(&topics, &live, &configs)
    ))
}

/// One broker as `describe` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerView {
    /// `node.id`.
    pub id: i32,
    /// `host:port` of its client listener.
    pub address: String,
    /// `broker.rack`, when known.
    pub rack: Option<String>,
    /// Listed by Metadata (and, for a `kbench cluster up` broker, its process runs).
    pub alive: bool,
    /// The controller (the Raft leader of the cluster metadata).
    pub controller: bool,
}

/// The brokers Metadata lists (`listed`: id, address; with their `racks`, when known), merged
/// with the `known` brokers of a `kbench cluster up`: a known broker is alive only while its
/// process runs and Metadata lists it.
pub fn broker_views(
    listed: &[(i32, String)],
    controller: i32,
    racks: &BTreeMap<i32, String>,
    known: &[BrokerStatus],
) -> Vec<BrokerView> {
    let mut out: BTreeMap<i32, BrokerView> = listed
        .iter()
        .map(|(id, address)| {
            let view = BrokerView {
                id: *id,
                address: address.clone(),
                rack: racks.get(id).cloned(),
                alive: true,
                controller: *id == controller,
            };
            (*id, view)
        })
        .collect();
    for k in known {
        let Ok(id) = i32::try_from(k.id) else {
            continue;
        };
        let listed = out.get(&id).is_some_and(|v| v.alive);
        out.insert(
            id,
            BrokerView {
                id,
                address: k.address.clone(),
                rack: k.rack.clone(),
                alive: listed && k.pid.is_some(),
                controller: id == controller && k.pid.is_some(),
            },
        );
    }
    out.into_values().collect()
}

/// Each broker's rack and the controller's id, from DescribeCluster (Kafka's API 60, which
/// Metadata's view in librdkafka leaves out); `None` when the cluster does not answer it
/// within `timeout` (brokers before Kafka 3.7 do not have it).
fn described_nodes(
    client: &BaseConsumer,
    timeout: Duration,
) -> Option<(BTreeMap<i32, String>, i32)> {
    use rdkafka::bindings as rd;
    use std::ffi::{c_char, c_int, CStr};
    let ms = c_int::try_from(timeout.as_millis()).unwrap_or(c_int::MAX);
    let mut errstr = [0 as c_char; 256];
    // SAFETY: rdkafka has no safe wrapper for DescribeCluster, so this drives librdkafka's
    // admin API as its C examples do. `rk` is the live handle owned by `client`, which outlives
    // the call. The queue, options and event are created here, checked for null, and each
    // destroyed exactly once after its last use; librdkafka copies the options into the request,
    // so they may go once the request is made. The node array, the nodes and their rack
    // strings belong to the event and are only read (rack copied into a `String`) before the
    // event is destroyed; `CStr::from_ptr` gets non-null, NUL-terminated strings from
    // librdkafka.
    #[allow(unsafe_code)]
    unsafe {
        let rk = client.client().native_ptr();
        let queue = rd::rd_kafka_queue_new(rk);
        if queue.is_null() {
            return None;
        }
        let options = rd::rd_kafka_AdminOptions_new(
            rk,
            rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DESCRIBECLUSTER,
        );
        if !options.is_null() {
            rd::rd_kafka_AdminOptions_set_request_timeout(
                options,
                ms,
                errstr.as_mut_ptr(),
                errstr.len(),
            );
        }
        rd::rd_kafka_DescribeCluster(rk, options, queue);
        if !options.is_null() {
            rd::rd_kafka_AdminOptions_destroy(options);
        }
        let event = rd::rd_kafka_queue_poll(queue, ms);
        let mut out = None;
        if !event.is_null()
            && rd::rd_kafka_event_error(event)
                == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
        {
            let result = rd::rd_kafka_event_DescribeCluster_result(event);
            if !result.is_null() {
                let mut count = 0usize;
                let nodes = rd::rd_kafka_DescribeCluster_result_nodes(result, &mut count);
                let mut racks = BTreeMap::new();
                for i in 0..if nodes.is_null() { 0 } else { count } {
                    let node = *nodes.add(i);
                    if node.is_null() {
                        continue;
                    }
                    let rack = rd::rd_kafka_Node_rack(node);
                    if !rack.is_null() {
                        let rack = CStr::from_ptr(rack).to_string_lossy().into_owned();
                        racks.insert(rd::rd_kafka_Node_id(node), rack);
                    }
                }
                let c = rd::rd_kafka_DescribeCluster_result_controller(result);
                let controller = if c.is_null() {
                    -1
                } else {
                    rd::rd_kafka_Node_id(c)
                };
                out = Some((racks, controller));
            }
        }
        if !event.is_null() {
            rd::rd_kafka_event_destroy(event);
        }
        rd::rd_kafka_queue_destroy(queue);
        out
    }
}

/// `Brokers: N` and one line per broker, in id order.
pub fn format_brokers(brokers: &[BrokerView]) -> String {
    let mut out = format!("Brokers: {}\n", brokers.len());
    let yes = |b: bool| if b { "yes" } else { "no" };
    for b in brokers {
        out.push_str(&format!(
            "\tBroker: {}\tAddress: {}\tRack: {}\tAlive: {}\tController: {}\n",
            b.id,
            b.address,
            b.rack.as_deref().unwrap_or("none"),
            yes(b.alive),
            yes(b.controller)
        ));
    }
    out
}

/// Non-default configs of each topic (`k=v,k=v`); empty when the cluster does not say.
async fn topic_configs(cluster: &ClusterAccess, topics: &[String]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Ok(admin) = cluster
        .client("kbench-describe")
        .set("log_level", "3")
        .create::<AdminClient<DefaultClientContext>>()
    else {
        return out;
    };
    let specs: Vec<ResourceSpecifier<'_>> =
        topics.iter().map(|t| ResourceSpecifier::Topic(t)).collect();
    let opts = AdminOptions::new().request_timeout(Some(REQUEST_TIMEOUT));
    let call = admin.describe_configs(&specs, &opts);
    let Ok(Ok(results)) = tokio::time::timeout(REQUEST_TIMEOUT, call).await else {
        return out;
    };
    for (name, r) in topics.iter().zip(results) {
        if let Ok(r) = r {
            let set: Vec<String> = r
                .entries
                .iter()
                .filter(|e| !e.is_default)
                .filter_map(|e| e.value.as_ref().map(|v| format!("{}={v}", e.name)))
                .collect();
            out.insert(name.clone(), set.join(","));
        }
    }
    out
}

/// One partition as Metadata shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionView {
    /// Partition index.
    pub id: i32,
    /// Leader's broker id (-1 = none).
    pub leader: i32,
    /// Replica broker ids, preferred leader first.
    pub replicas: Vec<i32>,
    /// In-sync replica broker ids.
    pub isr: Vec<i32>,
}

/// One topic as Metadata shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicView {
    /// Topic name.
    pub name: String,
    /// Its partitions.
    pub partitions: Vec<PartitionView>,
}

/// The topics of `md` without errors, and the ids of the brokers it lists (the live ones).
pub fn views(md: &Metadata) -> (Vec<TopicView>, Vec<i32>) {
    let topics = md
        .topics()
        .iter()
        .filter(|t| t.error().is_none())
        .map(|t| TopicView {
            name: t.name().to_string(),
            partitions: t
                .partitions()
                .iter()
                .map(|p| PartitionView {
                    id: p.id(),
                    leader: p.leader(),
                    replicas: p.replicas().to_vec(),
                    isr: p.isr().to_vec(),
                })
                .collect(),
        })
        .collect();
    let live = md.brokers().iter().map(|b| b.id()).collect();
    (topics, live)
}

/// The `kafka-topics --describe` text of `topics`, in name order (`Topics: none` when there
/// are none): a header line per topic,
/// then per partition `Leader / Replicas / Isr`, and `Offline: ...` for replicas on brokers
/// that are not among the `live` ones (Metadata lists live brokers only), as Kafka's tool does.
pub fn format_topics(
    topics: &[TopicView],
    live: &[i32],
    configs: &BTreeMap<String, String>,
) -> String {
    if topics.is_empty() {
        return "Topics: none\n".to_string();
    }
    let mut topics: Vec<&TopicView> = topics.iter().collect();
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    let mut out = String::new();
    for t in topics {
        let mut parts: Vec<&PartitionView> = t.partitions.iter().collect();
        parts.sort_by_key(|p| p.id);
        let rf = parts.first().map_or(0, |p| p.replicas.len());
        out.push_str(&format!(
            "Topic: {}\tPartitionCount: {}\tReplicationFactor: {rf}\tConfigs: {}\n",
            t.name,
            parts.len(),
            configs.get(&t.name).map_or("", String::as_str)
        ));
        let ids = |v: &[i32]| v.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
        for p in parts {
            let offline: Vec<i32> = p
                .replicas
                .iter()
                .copied()
                .filter(|r| !live.contains(r))
                .collect();
            out.push_str(&format!(
                "\tTopic: {}\tPartition: {}\tLeader: {}\tReplicas: {}\tIsr: {}",
                t.name,
                p.id,
                if p.leader < 0 {
                    "none".to_string()
                } else {
                    p.leader.to_string()
                },
                ids(&p.replicas),
                ids(&p.isr)
            ));
            if !offline.is_empty() {
                out.push_str(&format!("\tOffline: {}", ids(&offline)));
            }
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(id: i32, leader: i32, replicas: &[i32], isr: &[i32]) -> PartitionView {
        PartitionView {
            id,
            leader,
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
        }
    }

    #[test]
    fn brokers_come_first_and_a_stopped_one_shows_as_down() {
        let listed = vec![(1, "h:1".to_string()), (3, "h:3".to_string())];
        let racks = BTreeMap::from([(1, "a".to_string()), (3, "c".to_string())]);
        // Metadata alone: what it lists, alive.
        let text = format_brokers(&broker_views(&listed, 3, &racks, &[]));
        assert_eq!(
            text,
            "Brokers: 2\n\tBroker: 1\tAddress: h:1\tRack: a\tAlive: yes\tController: no\n\tBroker: 3\tAddress: h:3\tRack: c\tAlive: yes\tController: yes\n"
        );
        // With the brokers of a `cluster up`: broker 2's process is down; broker 3's process
        // has just died, though Metadata still lists it.
        let known = |id: u32, pid: Option<u32>| BrokerStatus {
            id,
            address: format!("h:{id}"),
            rack: Some(["a", "b", "c"][id as usize - 1].into()),
            pid,
        };
        let views = broker_views(
            &listed,
            3,
            &BTreeMap::new(),
            &[known(1, Some(10)), known(2, None), known(3, None)],
        );
        let alive: Vec<(i32, bool, bool)> = views
            .iter()
            .map(|b| (b.id, b.alive, b.controller))
            .collect();
        assert_eq!(
            alive,
            vec![(1, true, false), (2, false, false), (3, false, false)]
        );
        assert_eq!(views[1].rack.as_deref(), Some("b"));
        assert_eq!(format_topics(&[], &[1], &BTreeMap::new()), "Topics: none\n");
    }

    #[test]
    fn describe_shows_leader_replicas_isr_and_offline_replicas() {
        let topics = vec![
            TopicView {
                name: "orders".into(),
                partitions: vec![part(1, -1, &[2], &[]), part(0, 1, &[1, 2, 3], &[1, 3])],
            },
            TopicView {
                name: "audit".into(),
                partitions: vec![part(0, 3, &[3, 1, 2], &[3, 1, 2])],
            },
        ];
        let mut configs = std::collections::BTreeMap::new();
        configs.insert("orders".to_string(), "min.insync.replicas=2".to_string());
        // Broker 2 is down: Metadata does not list it.
        let text = format_topics(&topics, &[1, 3], &configs);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            vec![
                "Topic: audit\tPartitionCount: 1\tReplicationFactor: 3\tConfigs: ",
                "\tTopic: audit\tPartition: 0\tLeader: 3\tReplicas: 3,1,2\tIsr: 3,1,2\tOffline: 2",
                "Topic: orders\tPartitionCount: 2\tReplicationFactor: 3\tConfigs: min.insync.replicas=2",
                "\tTopic: orders\tPartition: 0\tLeader: 1\tReplicas: 1,2,3\tIsr: 1,3\tOffline: 2",
                "\tTopic: orders\tPartition: 1\tLeader: none\tReplicas: 2\tIsr: \tOffline: 2",
            ]
        );
        // All brokers up: no Offline column.
        let text = format_topics(&topics, &[1, 2, 3], &configs);
        assert!(!text.contains("Offline"), "{text}");
    }
}
