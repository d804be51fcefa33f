//! The consumer groups of a run: waiting until every group is settled (every partition
//! assigned, every member that can have one holding one), and what the drain asks of them.

use super::*;

/// The consumer groups of a run, as the wait for their assignment sees them.
pub(super) struct Groups<'a> {
    pub(super) s: &'a Scenario,
    pub(super) meters: &'a [Vec<Arc<ConsumerMeter>>],
    pub(super) ids: &'a [String],
    pub(super) topic: &'a str,
    pub(super) partitions: i32,
    /// In a sharded run, only this shard's members are seen here.
    pub(super) shard: Option<&'a crate::shard::ShardRun>,
}

impl Groups<'_> {
    /// Waits until every group is settled: every partition assigned *and* every member that
    /// can have one holding one (the first member to join is briefly given everything, and
    /// producing then would put the second rebalance inside the measured run). Bounded by
    /// `consumers.assign_timeout`; an error names the group and the counts.
    pub(super) async fn await_assignment(
        &self,
        target: &mut Target,
        interrupt: &Stop,
    ) -> anyhow::Result<()> {
        let s = self.s;
        let (consume_partitions, consume_topic) = (self.partitions, self.topic);
        eprintln!(
            "kbench: waiting for {} group(s) of {} member(s) to be assigned {consume_partitions} partitions of {consume_topic}",
            s.consumers.groups, s.consumers.members
        );
        let deadline = Instant::now() + s.consumers.assign_timeout.0;
        let busy_members = (s.consumers.members as usize).min(consume_partitions as usize);
        loop {
            let assigned: Vec<usize> = self
                .meters
                .iter()
                .map(|ms| ms.iter().map(|m| m.with_state(|st| st.assigned)).sum())
                .collect();
            let settled = self
                .meters
                .iter()
                .zip(&assigned)
                .all(|(ms, a)| match self.shard {
                    Some(r) => r.members_settled(members_assigned(ms), consume_partitions),
                    None => {
                        *a >= consume_partitions as usize && members_assigned(ms) >= busy_members
                    }
                });
            if settled {
                return Ok(());
            }
            if let Some(dead) = target.dead_broker() {
                bail!("{dead}");
            }
            if interrupt.is_raised() {
                bail!("interrupted while waiting for consumer group assignment");
            }
            if Instant::now() >= deadline {
                let g = (0..assigned.len())
                    .find(|&g| {
                        assigned[g] < consume_partitions as usize
                            || members_assigned(&self.meters[g]) < busy_members
                    })
                    .unwrap_or(0);
                bail!(
                    "consumer group {} has {} of {consume_partitions} partitions of {consume_topic} assigned, to {} of {} members, after {:?} (consumers.assign_timeout); is the group coordinator working?",
                    self.ids[g],
                    assigned[g],
                    members_assigned(&self.meters[g]),
                    s.consumers.members,
                    s.consumers.assign_timeout.0
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The end offsets of the partitions some local member holds.
pub(super) fn held_only(
    groups: &[Vec<Arc<ConsumerMeter>>],
    after: &BTreeMap<i32, (i64, i64)>,
) -> BTreeMap<i32, (i64, i64)> {
    let held: std::collections::BTreeSet<i32> = groups
        .iter()
        .flatten()
        .flat_map(|m| m.with_state(|st| st.held.clone()))
        .collect();
    after
        .iter()
        .filter(|(p, _)| held.contains(p))
        .map(|(p, w)| (*p, *w))
        .collect()
}

/// The first group still short of the end offsets, described; `None` when every group is there.
pub(super) fn lagging(
    groups: &[Vec<Arc<ConsumerMeter>>],
    ids: &[String],
    before: &std::collections::BTreeMap<i32, (i64, i64)>,
    after: &std::collections::BTreeMap<i32, (i64, i64)>,
) -> Option<String> {
    for (g, members) in groups.iter().enumerate() {
        let mut reached = std::collections::BTreeMap::<i32, i64>::new();
        for m in members {
            m.with_state(|st| {
                for (p, o) in &st.next_offsets {
                    let e = reached.entry(*p).or_insert(0);
                    *e = (*e).max(*o);
                }
            });
        }
        for (p, (_, end)) in after {
            let start = before.get(p).map_or(0, |w| w.1);
            let at = reached.get(p).copied().unwrap_or(0);
            if *end > start && at < *end {
                return Some(format!(
                    "group {} is at offset {at} of {end} in partition {p}",
                    ids[g]
                ));
            }
        }
    }
    None
}

/// How many of a group's members hold at least one partition.
pub(super) fn members_assigned(members: &[Arc<ConsumerMeter>]) -> usize {
    members
        .iter()
        .filter(|m| m.with_state(|st| st.assigned) > 0)
        .count()
}
