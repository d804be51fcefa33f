//! The checks a run makes against the cluster once it has drained: the final read of the
//! producers' topic and the on-disk check.

use super::*;

/// The final read of the producers' topic ([`verify::final_read`]), when the cluster is whole:
/// its summary and failures. A cluster with a broker down cannot be read to its end; the
/// summary then says why it was not read.
#[allow(clippy::too_many_arguments)]
pub(super) async fn final_read(
    s: &Scenario,
    target: &mut Target,
    cluster: &ClusterAccess,
    topic: &str,
    partitions: i32,
    run_tag: u32,
    acks: &AckLedger,
    per_partition: &[u64],
) -> (crate::summary::FinalRead, Vec<String>) {
    let unread = |why: String| crate::summary::FinalRead {
        error: Some(why),
        ..Default::default()
    };
    if let Some(dead) = target.dead_broker() {
        let first = dead.lines().next().unwrap_or("").to_string();
        return (unread(format!("not read: {first}")), Vec::new());
    }
    let down = target.down_on_purpose();
    if !down.is_empty() {
        return (
            unread(format!(
                "not read: broker(s) {down:?} taken down by a fault"
            )),
            Vec::new(),
        );
    }
    let started = Instant::now();
    let (c, t, check) = (cluster.clone(), topic.to_string(), Check::new(run_tag));
    let bound = s.consumers.drain_timeout.0;
    let read = tokio::task::spawn_blocking(move || {
        verify::final_read::read(&c, &t, partitions, &check, bound)
    })
    .await
    .map_err(|e| format!("final read: the reader panicked: {e}"))
    .and_then(|r| r);
    let (ledger, found) = match read {
        Ok(r) => r,
        Err(e) => return (unread(e.clone()), vec![e]),
    };
    let (summary, mut failures) = verify::final_read::judge(
        topic,
        acks,
        per_partition,
        &ledger,
        &found,
        started.elapsed().as_secs_f64(),
    );
    let must_hold = matches!(
        s.verify.delivery,
        scenario::Delivery::ExactlyOnce | scenario::Delivery::AtLeastOnce
    );
    if !must_hold {
        failures.retain(|f| f.contains("corrupted"));
    }
    (summary, failures)
}

/// What the on-disk check needs to know about a finished run.
pub(super) struct OnDiskRun<'a> {
    pub(super) topic: &'a str,
    pub(super) rf: u32,
    pub(super) acked_bytes: u64,
    pub(super) compressed: bool,
    pub(super) marks_before: &'a BTreeMap<i32, (i64, i64)>,
    pub(super) marks_after: Option<&'a BTreeMap<i32, (i64, i64)>>,
    pub(super) per_partition: &'a [u64],
    pub(super) per_partition_other: &'a [u64],
    pub(super) per_partition_bytes: &'a [u64],
    /// The scenario promises no loss (exactly-once, at-least-once).
    pub(super) no_loss: bool,
    /// `verify.offsets`.
    pub(super) offsets: bool,
}

/// The on-disk check ([`verify::on_disk`]): embedded, the replicas' segment files; external,
/// DescribeLogDirs before and after. When it cannot be made (no end offsets, no metadata, a
/// listener kbench cannot speak to), the summary says why and the run is not failed for it.
pub(super) async fn on_disk_check(
    run: &OnDiskRun<'_>,
    target: &Target,
    cluster: &ClusterAccess,
    disk_before: Option<u64>,
    reported_before: Option<anyhow::Result<BTreeMap<(i32, i32), u64>>>,
) -> (crate::summary::OnDiskSummary, Vec<String>) {
    let unavailable = |why: String| verify::on_disk::unavailable(run.acked_bytes, run.rf, &why);
    let Some(after) = run.marks_after else {
        return (
            unavailable("the end offsets could not be read".into()),
            Vec::new(),
        );
    };
    let roles = {
        let (c, t) = (cluster.clone(), run.topic.to_string());
        match tokio::task::spawn_blocking(move || verify::log_dirs::partition_roles(&c, &t)).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return (unavailable(format!("{e:#}")), Vec::new()),
            Err(e) => {
                return (
                    unavailable(format!("metadata task failed: {e}")),
                    Vec::new(),
                )
            }
        }
    };
    let at = |v: &[u64], p: i32| {
        usize::try_from(p)
            .ok()
            .and_then(|i| v.get(i))
            .copied()
            .unwrap_or(0)
    };
    let partitions = after
        .iter()
        .map(|(p, (_, end))| {
            let verify::log_dirs::Roles {
                leader,
                replicas,
                isr,
            } = roles.get(p).cloned().unwrap_or_default();
            let other = at(run.per_partition_other, *p);
            verify::on_disk::PartitionExpect {
                partition: *p,
                leader,
                replicas,
                isr,
                offsets: (run.marks_before.get(p).map_or(0, |w| w.1), *end),
                records: at(run.per_partition, *p) + other,
                other_records: other,
                payload_bytes: at(run.per_partition_bytes, *p),
            }
        })
        .collect();
    let e = verify::on_disk::Expectation {
        topic: run.topic,
        replication_factor: run.rf,
        payload_bytes: run.acked_bytes,
        partitions,
        fewer_fail: run.no_loss,
        more_fail: run.offsets,
    };
    match (target.replica_dirs(), disk_before, reported_before) {
        (Some(dirs), Some(before), _) => {
            // Blocking (segment headers read, followers waited for), as the rest of this
            // function is: it runs on the main thread, not on a runtime worker.
            verify::on_disk::check(&dirs, before, &e)
        }
        (_, _, Some(Ok(before))) => {
            let partitions = e.partitions.len() as i32;
            match verify::log_dirs::snapshot(cluster, run.topic, partitions).await {
                Ok(after) => verify::on_disk::check_reported(&before, &after, run.compressed, &e),
                Err(err) => (
                    unavailable(format!("DescribeLogDirs failed: {err:#}")),
                    Vec::new(),
                ),
            }
        }
        (_, _, Some(Err(err))) => (
            unavailable(format!("DescribeLogDirs failed: {err:#}")),
            Vec::new(),
        ),
        _ => (
            unavailable("no sizes were taken before the run".into()),
            Vec::new(),
        ),
    }
}
