//! One follower fetcher: copies every partition this broker follows from one source broker,
//! in one Fetch v12 request at a time (`replica_id` = own id), as Kafka's replica fetcher
//! threads do.
//!
//! Per partition of a response: records are appended with their leader-assigned offsets and
//! epochs and the high watermark is taken from the leader; a `diverging_epoch` (KIP-320/595)
//! truncates the log to where the follower's copy of that epoch ends, bounded by the leader's
//! end of it; OFFSET_OUT_OF_RANGE moves a log that is behind the leader's log start to it, or
//! cuts one past the leader's end. Errors such as NOT_LEADER_OR_FOLLOWER or
//! FENCED_LEADER_EPOCH (the metadata has not reached one of the two brokers yet) pause that
//! partition for the backoff; a connection error pauses the fetcher. The role may change
//! meanwhile: appends are refused by the partition unless it still follows the same epoch.
//! A change of the partition set abandons the long poll in flight (and its connection), so a
//! partition added after a leader change is fetched at once, not after `replica.fetch.wait.max.ms`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, FetchResponse, TopicName};
use tokio::sync::watch;
use tokio::time::Instant;

use super::{ClusterLink, FetcherPartitions, Followed, Key, ReplicationSettings};
use crate::wire::client::Connection;

/// Fetch version used: the last one naming topics (v13 uses topic ids).
const FETCH_VERSION: i16 = 12;

/// Runs until `stop` turns true (or the task is aborted).
pub(super) async fn run(
    link: Arc<dyn ClusterLink>,
    settings: ReplicationSettings,
    source: i32,
    partitions: Arc<FetcherPartitions>,
    mut stop: watch::Receiver<bool>,
) {
    let local = link.node_id();
    let backoff = Duration::from_millis(settings.replica_fetch_backoff_ms.max(1));
    let socket_timeout = Duration::from_millis(settings.replica_socket_timeout_ms.max(1));
    let mut conn: Option<Connection> = None;
    let mut paused: HashMap<Key, Instant> = HashMap::new();
    loop {
        if *stop.borrow() {
            return;
        }
        let now = Instant::now();
        paused.retain(|_, until| *until > now);
        let wanted: Vec<(Key, Followed)> = partitions
            .map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(k, _)| !paused.contains_key(*k))
            .map(|(k, f)| (k.clone(), f.clone()))
            .collect();
        if wanted.is_empty() {
            let next = paused.values().min().copied();
            tokio::select! {
                _ = partitions.changed.notified() => {}
                _ = stop.changed() => {}
                _ = async { match next { Some(t) => tokio::time::sleep_until(t).await, None => std::future::pending().await } } => {}
            }
            continue;
        }
        if conn.is_none() {
            let Some((host, port)) = link.endpoint(source) else {
                tracing::debug!(source, "no endpoint known for the leader: backing off");
                sleep_or_stop(backoff, &mut stop).await;
                continue;
            };
            let client_id = format!("kbroker-replica-fetcher-{local}-{source}");
            match Connection::connect(&host, port, &client_id, socket_timeout).await {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    tracing::debug!(source, error = %e, "cannot connect to the leader");
                    sleep_or_stop(backoff, &mut stop).await;
                    continue;
                }
            }
        }
        let request = build_request(local, &settings, &wanted);
        let timeout = Duration::from_millis(settings.replica_fetch_wait_max_ms) + socket_timeout;
        let Some(c) = conn.as_mut() else { continue };
        let response: FetchResponse = tokio::select! {
            r = c.call(ApiKey::Fetch, FETCH_VERSION, &request, timeout) => match r {
                Ok(r) => r,
                Err(e) => {
                    tracing::debug!(source, error = %e, "follower fetch failed");
                    conn = None;
                    sleep_or_stop(backoff, &mut stop).await;
                    continue;
                }
            },
            // A partition added (e.g. after a leader change) is fetched now rather than after
            // the long poll; the half-read response makes the connection unusable.
            _ = partitions.changed.notified() => {
                conn = None;
                continue;
            }
            _ = stop.changed() => return,
        };
        if response.error_code != 0 {
            tracing::debug!(source, code = response.error_code, "follower fetch refused");
            sleep_or_stop(backoff, &mut stop).await;
            continue;
        }
        let by_key: HashMap<&Key, &Followed> = wanted.iter().map(|(k, f)| (k, f)).collect();
        for topic in &response.responses {
            for pd in &topic.partitions {
                let key: Key = (topic.topic.0.to_string(), pd.partition_index);
                let Some(followed) = by_key.get(&key) else {
                    continue;
                };
                if let Err(reason) = handle_partition(followed, pd) {
                    tracing::debug!(topic = %key.0, partition = key.1, source, reason,
                        "follower fetch of the partition failed: backing off");
                    paused.insert(key, Instant::now() + backoff);
                }
            }
        }
    }
}

async fn sleep_or_stop(d: Duration, stop: &mut watch::Receiver<bool>) {
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        _ = stop.changed() => {}
    }
}

fn build_request(local: i32, s: &ReplicationSettings, wanted: &[(Key, Followed)]) -> FetchRequest {
    let mut by_topic: Vec<FetchTopic> = Vec::new();
    for ((topic, index), f) in wanted {
        let mut fp = FetchPartition::default();
        fp.partition = *index;
        fp.current_leader_epoch = f.leader_epoch;
        fp.fetch_offset = f.partition.log_end_offset();
        fp.last_fetched_epoch = f.partition.latest_epoch();
        fp.log_start_offset = f.partition.offsets().log_start;
        fp.partition_max_bytes = s.replica_fetch_max_bytes;
        match by_topic.iter_mut().find(|t| t.topic.0.as_str() == topic) {
            Some(t) => t.partitions.push(fp),
            None => {
                let mut t = FetchTopic::default();
                t.topic = TopicName(crate::wire::str_bytes(topic));
                t.partitions.push(fp);
                by_topic.push(t);
            }
        }
    }
    let mut req = FetchRequest::default();
    req.replica_id = BrokerId(local);
    req.max_wait_ms = i32::try_from(s.replica_fetch_wait_max_ms).unwrap_or(i32::MAX);
    req.min_bytes = s.replica_fetch_min_bytes;
    req.max_bytes = s.replica_fetch_response_max_bytes;
    req.isolation_level = 0;
    req.session_id = 0;
    req.session_epoch = -1;
    req.topics = by_topic;
    req
}

/// Applies one partition of a fetch response. `Err` names why the partition must back off.
fn handle_partition(
    f: &Followed,
    pd: &kafka_protocol::messages::fetch_response::PartitionData,
) -> Result<(), String> {
    let p = &f.partition;
    const OFFSET_OUT_OF_RANGE: i16 = 1;
    match pd.error_code {
        0 => {}
        OFFSET_OUT_OF_RANGE => {
            let end = p.log_end_offset();
            if end < pd.log_start_offset {
                p.truncate_fully_and_start_at(pd.log_start_offset)
                    .map_err(|e| e.to_string())?;
            } else if pd.high_watermark >= 0 && end > pd.high_watermark {
                p.truncate_to(pd.high_watermark)
                    .map_err(|e| e.to_string())?;
            }
            return Err(format!("offset {end} out of range at the leader"));
        }
        code => return Err(format!("error code {code}")),
    }
    let div = &pd.diverging_epoch;
    if div.epoch >= 0 || div.end_offset >= 0 {
        let (own_epoch, own_end) = p.epoch_end_offset(div.epoch);
        if div.epoch < 0 || div.end_offset < 0 || own_epoch < 0 {
            // Nothing in common that the leader knows of (our epochs predate its whole log):
            // start over from its log start.
            let start = pd.log_start_offset.max(0);
            tracing::warn!(topic = %p.topic, partition = p.index, start,
                "no common leader epoch with the leader: emptying the log");
            p.truncate_fully_and_start_at(start)
                .map_err(|e| e.to_string())?;
            return Ok(());
        }
        let target = div.end_offset.min(own_end);
        tracing::info!(topic = %p.topic, partition = p.index, epoch = div.epoch,
            leader_end = div.end_offset, own_epoch, own_end, target,
            "diverging epoch: truncating the log");
        p.truncate_to(target).map_err(|e| e.to_string())?;
        return Ok(());
    }
    match pd.records.as_ref().filter(|r| !r.is_empty()) {
        Some(records) => {
            p.append_replicated(
                records,
                f.leader_epoch,
                pd.high_watermark,
                crate::clock::now_ms(),
            )
            .map_err(|e| e.to_string())?;
        }
        None => p.set_follower_high_watermark(pd.high_watermark),
    }
    Ok(())
}
