//! `kbench cluster up | describe`: a local embedded cluster for manual use, and a
//! `kafka-topics --describe` of any cluster, through rdkafka only.
//!
//! `up` starts the brokers (more than one = one replicated cluster, see `target::embedded`)
//! from the main thread (so `PR_SET_PDEATHSIG` ties them to kbench, see
//! `target::embedded`), prints the bootstrap string and waits for Ctrl-C or SIGTERM; dropping
//! the cluster stops them. `describe` is a pure function from Metadata (and the topics'
//! non-default configs) to text, so its format is tested without a broker.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::metadata::Metadata;

use crate::target::embedded::{EmbeddedCluster, Mode, Spec};
use crate::target::ClusterAccess;

/// Bound on starting the brokers.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on each request of `describe`.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// `kbench cluster up`'s flags.
#[derive(Debug, Clone, Default)]
pub struct UpOptions {
    /// `--brokers`: number of brokers.
    pub brokers: u32,
    /// `--port`: port of broker 1, or free ports.
    pub port: Option<u16>,
    /// `--data`: where the brokers' data and logs go.
    pub data: Option<PathBuf>,
    /// `--racks a,b,c`: `broker.rack` values handed out in turn.
    pub racks: Vec<String>,
    /// `--independent`: N unrelated single-node brokers instead of one replicated cluster.
    pub independent: bool,
}

/// Splits `--racks a,b,c` into rack names (empty names are an error naming the flag).
pub fn parse_racks(value: &str) -> anyhow::Result<Vec<String>> {
    let racks: Vec<String> = value.split(',').map(|r| r.trim().to_string()).collect();
    if racks.iter().any(String::is_empty) {
        anyhow::bail!("--racks {value:?}: rack names must be non-empty, e.g. --racks a,b,c");
    }
    Ok(racks)
}

/// `kbench cluster up`: starts the brokers (one replicated cluster unless `independent`) with
/// their data under `data`, prints `bootstrap: ...` and runs until Ctrl-C / SIGTERM or a broker
/// exits.
pub async fn up(opts: &UpOptions) -> anyhow::Result<()> {
    let (brokers, port) = (opts.brokers, opts.port);
    let data = opts.data.as_deref();
    if brokers == 0 || brokers > 64 {
        anyhow::bail!("--brokers {brokers} must be 1..=64");
    }
    let data: PathBuf = match data {
        Some(d) => d.to_path_buf(),
        None => std::env::temp_dir().join(format!("kbench-cluster-{}", std::process::id())),
    };
    std::fs::create_dir_all(&data).with_context(|| {
        format!(
            "cannot create the data directory {} (choose another with --data DIR)",
            data.display()
        )
    })?;
    let spec = Spec {
        brokers,
        base_port: port,
        racks: opts.racks.clone(),
        mode: if opts.independent {
            Mode::Independent
        } else {
            Mode::Replicated
        },
        ..Default::default()
    };
    eprintln!(
        "kbench: starting {brokers} broker(s){} with data in {}",
        if spec.replicated() {
            " as one replicated cluster"
        } else if brokers > 1 {
            " (independent single-node brokers)"
        } else {
            ""
        },
        data.join("brokers").display()
    );
    let mut cluster = EmbeddedCluster::start_spec(&spec, &data, START_TIMEOUT)
        .context("cannot start the cluster")?;
    // Watch the signals before the bootstrap line goes out: whoever reads it may stop us at
    // once, and an unwatched Ctrl-C would kill kbench without a clean stop of the brokers.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot watch SIGTERM")?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("cannot watch Ctrl-C (SIGINT)")?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "bootstrap: {}", cluster.bootstrap())?;
    stdout.flush()?;
    eprintln!("kbench: cluster up; Ctrl-C stops it");
    let outcome = loop {
        tokio::select! {
            _ = int.recv() => break Ok(()),
            _ = term.recv() => break Ok(()),
            _ = tokio::time::sleep(Duration::from_millis(200)) => {
                if let Some(dead) = cluster.dead_broker() {
                    break Err(anyhow::anyhow!("{dead}"));
                }
            }
        }
    };
    eprintln!("kbench: stopping the cluster");
    cluster.stop(Duration::from_secs(5));
    outcome
}

/// `kbench cluster describe`: prints every topic (or `topic`) of `cluster`.
pub async fn describe(cluster: &ClusterAccess, topic: Option<&str>) -> anyhow::Result<String> {
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
    let names: Vec<String> = md.topics().iter().map(|t| t.name().to_string()).collect();
    let configs = topic_configs(cluster, &names).await;
    Ok(format_describe(&md, &configs))
}

/// Non-default configs of each topic (`k=v,k=v`); empty when the cluster does not say.
async fn topic_configs(
    cluster: &ClusterAccess,
    topics: &[String],
) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
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

/// The `kafka-topics --describe` text of `md`, topics in name order.
pub fn format_describe(
    md: &Metadata,
    configs: &std::collections::BTreeMap<String, String>,
) -> String {
    let (topics, live) = views(md);
    format_topics(&topics, &live, configs)
}

/// The `kafka-topics --describe` text of `topics`, in name order: a header line per topic,
/// then per partition `Leader / Replicas / Isr`, and `Offline: ...` for replicas on brokers
/// that are not among the `live` ones (Metadata lists live brokers only), as Kafka's tool does.
pub fn format_topics(
    topics: &[TopicView],
    live: &[i32],
    configs: &std::collections::BTreeMap<String, String>,
) -> String {
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
