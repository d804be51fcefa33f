//! `kbench cluster up | describe`: a local embedded cluster for manual use, and a
//! `kafka-topics --describe` of any cluster, through rdkafka only.
//!
//! `up` starts the brokers from the main thread (so `PR_SET_PDEATHSIG` ties them to kbench, see
//! `target::embedded`), prints the bootstrap string and waits for Ctrl-C or SIGTERM; dropping
//! the cluster stops them. `describe` is a pure function from Metadata (and the topics'
//! non-default configs) to text, so its format is tested without a broker.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::metadata::Metadata;
use rdkafka::ClientConfig;

use crate::target::embedded::{EmbeddedCluster, Spec};

/// Bound on starting the brokers.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on each request of `describe`.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// `kbench cluster up`: starts `brokers` brokers (ports from `port`, or free ones) with their
/// data under `data`, prints `bootstrap: ...` and runs until Ctrl-C / SIGTERM or a broker exits.
pub async fn up(brokers: u32, port: Option<u16>, data: Option<&Path>) -> anyhow::Result<()> {
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
        ..Default::default()
    };
    eprintln!(
        "kbench: starting {brokers} broker(s) with data in {}",
        data.join("brokers").display()
    );
    let mut cluster = EmbeddedCluster::start_spec(&spec, &data, START_TIMEOUT)
        .context("cannot start the cluster")?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "bootstrap: {}", cluster.bootstrap())?;
    stdout.flush()?;
    eprintln!("kbench: cluster up; Ctrl-C stops it");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot watch SIGTERM")?;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let outcome = loop {
        tokio::select! {
            _ = &mut ctrl_c => break Ok(()),
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

/// `kbench cluster describe`: prints every topic (or `topic`) of the cluster at `bootstrap`.
pub async fn describe(bootstrap: &str, topic: Option<&str>) -> anyhow::Result<String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("client.id", "kbench-describe")
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
    let configs = topic_configs(bootstrap, &names).await;
    Ok(format_describe(&md, &configs))
}

/// Non-default configs of each topic (`k=v,k=v`); empty when the cluster does not say.
async fn topic_configs(
    bootstrap: &str,
    topics: &[String],
) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    let Ok(admin) = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
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

/// The `kafka-topics --describe` text of `md`, topics in name order.
pub fn format_describe(
    md: &Metadata,
    configs: &std::collections::BTreeMap<String, String>,
) -> String {
    let mut topics: Vec<_> = md.topics().iter().filter(|t| t.error().is_none()).collect();
    topics.sort_by(|a, b| a.name().cmp(b.name()));
    let mut out = String::new();
    for t in topics {
        let mut parts: Vec<_> = t.partitions().iter().collect();
        parts.sort_by_key(|p| p.id());
        let rf = parts.first().map_or(0, |p| p.replicas().len());
        out.push_str(&format!(
            "Topic: {}\tPartitionCount: {}\tReplicationFactor: {rf}\tConfigs: {}\n",
            t.name(),
            parts.len(),
            configs.get(t.name()).map_or("", String::as_str)
        ));
        let ids = |v: &[i32]| v.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
        for p in parts {
            out.push_str(&format!(
                "\tTopic: {}\tPartition: {}\tLeader: {}\tReplicas: {}\tIsr: {}\n",
                t.name(),
                p.id(),
                if p.leader() < 0 {
                    "none".to_string()
                } else {
                    p.leader().to_string()
                },
                ids(p.replicas()),
                ids(p.isr())
            ));
        }
    }
    out
}
