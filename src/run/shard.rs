//! What a run does differently as one shard of a sharded run ([`crate::shard`]): its record
//! in the run folder and the start barrier.

use super::*;

/// What a shard's record says before it has run.
pub(super) fn shard_record(
    r: &crate::shard::ShardRun,
    topic: &str,
    marks_before: &BTreeMap<i32, (i64, i64)>,
) -> crate::shard::ShardRecord {
    crate::shard::ShardRecord {
        run_id: r.shard.run_id.clone(),
        index: r.shard.index,
        count: r.shard.count,
        host: hostname(),
        scenario: serde_json::to_value(&r.whole).unwrap_or_default(),
        producers: (r.first_producer, r.shard.share(r.whole.producers.count).1),
        members: r.shard.share(r.members_total).1,
        topic: topic.to_string(),
        marks_before: marks_before.clone(),
        ..Default::default()
    }
}

/// The start barrier of a shard: every shard has arrived, then the agreed start has come.
pub(super) async fn start_barrier(
    r: &crate::shard::ShardRun,
    cluster: &ClusterAccess,
    topic: &str,
    interrupt: &Stop,
) -> anyhow::Result<u64> {
    let control = crate::shard::control_topic(topic);
    let mut cs = r.whole.clone();
    cs.topic.partitions = 1;
    cs.topic.name = Some(control.clone());
    topic::ensure(&cs, cluster, &control, SETUP_TIMEOUT).await?;
    eprintln!(
        "kbench: shard {}: waiting for the other shards on {control}",
        r.shard.label()
    );
    let (c, sh) = (cluster.clone(), r.shard.clone());
    let latest =
        tokio::task::spawn_blocking(move || crate::shard::barrier(&c, &control, &sh, "arrive"))
            .await
            .map_err(|e| anyhow::anyhow!("shard barrier task failed: {e}"))??;
    let start = crate::shard::start_after(latest);
    while now_us() < start {
        if interrupt.is_raised() {
            bail!("interrupted at the shard start barrier");
        }
        tokio::time::sleep(Duration::from_micros((start - now_us()).min(20_000))).await;
    }
    Ok(start)
}

/// The replica sizes the brokers report for `topic` (DescribeLogDirs), as a shard's record
/// keeps them for the merge's on-disk check, or why they could not be read.
pub(super) async fn replica_sizes(
    cluster: &ClusterAccess,
    topic: &str,
    partitions: i32,
) -> Result<crate::shard::ReplicaSizes, String> {
    verify::log_dirs::snapshot(cluster, topic, partitions)
        .await
        .map(|m| m.into_iter().collect())
        .map_err(|e| format!("{e:#}"))
}
