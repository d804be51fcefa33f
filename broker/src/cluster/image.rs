//! The cluster metadata image and the records that change it.
//!
//! Like KRaft, the Raft log holds *explicit records* (register broker B, partition P now has this
//! leader/ISR), never requests ("create a topic"). The controller turns a request into records by
//! reading the current image; every node then replays the same records with [`ClusterImage::apply`],
//! which is pure and deterministic. A record that no longer applies (a topic deleted meanwhile) is
//! a no-op with a warning, so replay on any node at any time gives the same image and `apply` never
//! fails.
//!
//! The fencing and unfencing decisions (who becomes leader when a broker disappears) live here as
//! pure functions from an image to records so they can be unit-tested without Raft.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The replicated cluster metadata: brokers and topics.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct ClusterImage {
    /// Registered brokers by id.
    pub(crate) brokers: BTreeMap<i32, BrokerInfo>,
    /// Topics by name.
    pub(crate) topics: BTreeMap<String, TopicInfo>,
}

/// One broker's registration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct BrokerInfo {
    /// Broker (and Raft node) id.
    pub(crate) id: i32,
    /// Advertised host of the Kafka listener.
    pub(crate) host: String,
    /// Advertised port of the Kafka listener.
    pub(crate) port: u16,
    /// `broker.rack`, if set.
    pub(crate) rack: Option<String>,
    /// Random id of the broker process; a new one after each restart.
    pub(crate) incarnation: Uuid,
    /// A fenced broker leads nothing and is not in any ISR (except as the last ISR member).
    pub(crate) fenced: bool,
}

#[cfg(test)]
impl BrokerInfo {
    /// An unfenced broker `id` on `h:9092`, no rack (tests).
    pub(crate) fn test(id: i32) -> Self {
        BrokerInfo {
            id,
            host: "h".into(),
            port: 9092,
            rack: None,
            incarnation: Uuid::nil(),
            fenced: false,
        }
    }
}

/// A topic and its partitions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct TopicInfo {
    /// Topic name.
    pub(crate) name: String,
    /// Topic id (v4 uuid chosen by the controller).
    pub(crate) id: Uuid,
    /// Topic-level config overrides.
    pub(crate) configs: BTreeMap<String, String>,
    /// Partition states, index = partition number.
    pub(crate) partitions: Vec<PartitionState>,
}

/// Leadership and replica set of one partition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PartitionState {
    /// Assigned replicas, preferred leader first.
    pub(crate) replicas: Vec<i32>,
    /// In-sync replicas.
    pub(crate) isr: Vec<i32>,
    /// Current leader broker id, -1 when none.
    pub(crate) leader: i32,
    /// Bumped on every leader change.
    pub(crate) leader_epoch: i32,
    /// Bumped on every change of this state (leader or ISR).
    pub(crate) partition_epoch: i32,
}

/// One metadata record of the Raft log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) enum MetadataRecord {
    /// Insert or replace a broker registration.
    RegisterBroker(BrokerInfo),
    /// Mark a broker fenced (its partitions were moved by preceding records of the same batch).
    FenceBroker { id: i32 },
    /// Mark a broker unfenced.
    UnfenceBroker { id: i32 },
    /// Create a topic with its full assignment.
    CreateTopic(TopicInfo),
    /// Delete a topic.
    DeleteTopic { name: String },
    /// Append partitions (already assigned) to a topic.
    AddPartitions {
        topic: String,
        partitions: Vec<PartitionState>,
    },
    /// Replace a topic's config overrides (IncrementalAlterConfigs).
    TopicConfigs {
        topic: String,
        configs: BTreeMap<String, String>,
    },
    /// Replace the state of one partition.
    PartitionChange {
        topic: String,
        partition: i32,
        state: PartitionState,
    },
}

impl ClusterImage {
    /// Applies one record. Never fails: a record that no longer applies is logged and skipped.
    pub(crate) fn apply(&mut self, record: &MetadataRecord) {
        match record {
            MetadataRecord::RegisterBroker(info) => {
                self.brokers.insert(info.id, info.clone());
            }
            MetadataRecord::FenceBroker { id } | MetadataRecord::UnfenceBroker { id } => {
                let fenced = matches!(record, MetadataRecord::FenceBroker { .. });
                match self.brokers.get_mut(id) {
                    Some(b) => b.fenced = fenced,
                    None => tracing::warn!(
                        broker = id,
                        "metadata record for unregistered broker {id} skipped"
                    ),
                }
            }
            MetadataRecord::CreateTopic(topic) => {
                if self.topics.contains_key(&topic.name) {
                    tracing::warn!(
                        "CreateTopic record for existing topic {} skipped",
                        topic.name
                    );
                } else {
                    self.topics.insert(topic.name.clone(), topic.clone());
                }
            }
            MetadataRecord::DeleteTopic { name } => {
                if self.topics.remove(name).is_none() {
                    tracing::warn!("DeleteTopic record for unknown topic {name} skipped");
                }
            }
            MetadataRecord::AddPartitions { topic, partitions } => match self.topics.get_mut(topic)
            {
                Some(t) => t.partitions.extend(partitions.iter().cloned()),
                None => tracing::warn!("AddPartitions record for unknown topic {topic} skipped"),
            },
            MetadataRecord::TopicConfigs { topic, configs } => match self.topics.get_mut(topic) {
                Some(t) => t.configs = configs.clone(),
                None => tracing::warn!("TopicConfigs record for unknown topic {topic} skipped"),
            },
            MetadataRecord::PartitionChange {
                topic,
                partition,
                state,
            } => {
                match self.topics.get_mut(topic).and_then(|t| {
                    usize::try_from(*partition)
                        .ok()
                        .and_then(|p| t.partitions.get_mut(p))
                }) {
                    Some(p) => *p = state.clone(),
                    None => tracing::warn!(
                        "PartitionChange record for unknown partition {topic}-{partition} skipped"
                    ),
                }
            }
        }
    }

    /// The state of `topic`-`partition`, if both exist.
    pub(crate) fn partition(&self, topic: &str, partition: i32) -> Option<&PartitionState> {
        let p = usize::try_from(partition).ok()?;
        self.topics.get(topic)?.partitions.get(p)
    }

    /// True if `id` is registered and not fenced.
    pub(crate) fn is_unfenced(&self, id: i32) -> bool {
        self.brokers.get(&id).is_some_and(|b| !b.fenced)
    }

    /// Records that fence broker `id`: move leadership of every partition it leads, drop it from
    /// every ISR it is in (except as the last member of a leaderless partition), then
    /// `FenceBroker`. With `unclean`, a partition without an eligible ISR member takes any unfenced
    /// replica as leader.
    pub(crate) fn fence_records(&self, id: i32, unclean: bool) -> Vec<MetadataRecord> {
        let mut out = Vec::new();
        for (name, topic) in &self.topics {
            for (p, st) in topic.partitions.iter().enumerate() {
                if st.leader != id && !st.isr.contains(&id) {
                    continue;
                }
                let mut next = st.clone();
                let eligible = |r: &i32| *r != id && self.is_unfenced(*r);
                if st.leader == id {
                    let clean = st
                        .replicas
                        .iter()
                        .copied()
                        .find(|r| st.isr.contains(r) && eligible(r));
                    let chosen = clean.or_else(|| {
                        if unclean {
                            st.replicas.iter().copied().find(|r| eligible(r))
                        } else {
                            None
                        }
                    });
                    match chosen {
                        Some(l) if clean.is_some() => {
                            next.leader = l;
                            next.isr.retain(|r| *r != id);
                        }
                        Some(l) => {
                            // Unclean: the new leader's log is the truth; it is the only ISR member.
                            next.leader = l;
                            next.isr = vec![l];
                        }
                        None => {
                            next.leader = -1;
                            // Kafka keeps the last ISR member so it can come back as leader.
                            if st.isr.len() > 1 {
                                next.isr.retain(|r| *r != id);
                            }
                        }
                    }
                    next.leader_epoch += 1;
                } else if st.isr.len() > 1 || st.leader != -1 {
                    next.isr.retain(|r| *r != id);
                }
                if next != *st {
                    next.partition_epoch += 1;
                    out.push(MetadataRecord::PartitionChange {
                        topic: name.clone(),
                        partition: p as i32,
                        state: next,
                    });
                }
            }
        }
        out.push(MetadataRecord::FenceBroker { id });
        out
    }

    /// Records that unfence broker `id`: `UnfenceBroker`, then make it leader of every leaderless
    /// partition whose ISR contains it.
    pub(crate) fn unfence_records(&self, id: i32) -> Vec<MetadataRecord> {
        let mut out = vec![MetadataRecord::UnfenceBroker { id }];
        for (name, topic) in &self.topics {
            for (p, st) in topic.partitions.iter().enumerate() {
                if st.leader == -1 && st.isr.contains(&id) {
                    out.push(leader_change(name, p, st, id));
                }
            }
        }
        out
    }

    /// Records that give each partition back to its preferred replica (the first assigned one),
    /// as Kafka's automatic leader rebalancing does: only for brokers whose leader imbalance —
    /// the share of the partitions they are preferred for that another broker leads — exceeds
    /// `max_imbalance_percent` (`leader.imbalance.per.broker.percentage`), and only where the
    /// preferred replica is unfenced and in the ISR (so it holds every committed record).
    pub(crate) fn preferred_leader_records(
        &self,
        max_imbalance_percent: u32,
    ) -> Vec<MetadataRecord> {
        // Broker → (partitions it is preferred for, of which led by another broker).
        let mut preferred: BTreeMap<i32, (u64, u64)> = BTreeMap::new();
        for topic in self.topics.values() {
            for st in &topic.partitions {
                if let Some(&first) = st.replicas.first() {
                    let e = preferred.entry(first).or_default();
                    e.0 += 1;
                    e.1 += u64::from(st.leader != first);
                }
            }
        }
        let mut out = Vec::new();
        for (name, topic) in &self.topics {
            for (p, st) in topic.partitions.iter().enumerate() {
                let Some(&first) = st.replicas.first() else {
                    continue;
                };
                let (count, off) = preferred.get(&first).copied().unwrap_or_default();
                let imbalanced = off * 100 > count * u64::from(max_imbalance_percent);
                if st.leader == first
                    || !imbalanced
                    || !self.is_unfenced(first)
                    || !st.isr.contains(&first)
                {
                    continue;
                }
                out.push(leader_change(name, p, st, first));
            }
        }
        out
    }
}

/// The record that makes `leader` lead `topic`-`partition` (state `st`) in a new leader epoch,
/// the ISR unchanged.
fn leader_change(
    topic: &str,
    partition: usize,
    st: &PartitionState,
    leader: i32,
) -> MetadataRecord {
    let mut next = st.clone();
    next.leader = leader;
    next.leader_epoch += 1;
    next.partition_epoch += 1;
    MetadataRecord::PartitionChange {
        topic: topic.to_owned(),
        partition: partition as i32,
        state: next,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image_with(replicas: Vec<i32>, isr: Vec<i32>, leader: i32) -> ClusterImage {
        let mut img = ClusterImage::default();
        for id in 1..=3 {
            img.apply(&MetadataRecord::RegisterBroker(BrokerInfo::test(id)));
        }
        img.apply(&MetadataRecord::CreateTopic(TopicInfo {
            name: "t".into(),
            id: Uuid::nil(),
            configs: BTreeMap::new(),
            partitions: vec![PartitionState {
                replicas,
                isr,
                leader,
                leader_epoch: 0,
                partition_epoch: 0,
            }],
        }));
        img
    }

    fn apply_all(img: &mut ClusterImage, recs: &[MetadataRecord]) {
        for r in recs {
            img.apply(r);
        }
    }

    fn part(img: &ClusterImage) -> &PartitionState {
        &img.topics["t"].partitions[0]
    }

    #[test]
    fn fencing_the_leader_elects_the_next_isr_member_in_replica_order() {
        let mut img = image_with(vec![1, 2, 3], vec![1, 3], 1);
        let recs = img.fence_records(1, false);
        apply_all(&mut img, &recs);
        let p = part(&img);
        assert_eq!(p.leader, 3, "2 is not in the ISR, so 3 must lead");
        assert_eq!(p.isr, vec![3]);
        assert_eq!((p.leader_epoch, p.partition_epoch), (1, 1));
        assert!(img.brokers[&1].fenced);
    }

    #[test]
    fn fencing_skips_fenced_isr_members() {
        let mut img = image_with(vec![1, 2, 3], vec![1, 2, 3], 1);
        img.apply(&MetadataRecord::FenceBroker { id: 2 });
        let recs = img.fence_records(1, false);
        apply_all(&mut img, &recs);
        assert_eq!(part(&img).leader, 3);
    }

    #[test]
    fn last_isr_member_stays_in_isr_without_leader() {
        let mut img = image_with(vec![1, 2, 3], vec![1], 1);
        let recs = img.fence_records(1, false);
        apply_all(&mut img, &recs);
        let p = part(&img);
        assert_eq!(p.leader, -1);
        assert_eq!(
            p.isr,
            vec![1],
            "the last ISR member is kept so it can come back as leader"
        );
        assert_eq!(p.leader_epoch, 1);
    }

    #[test]
    fn unclean_election_picks_any_unfenced_replica() {
        let mut clean = image_with(vec![1, 2, 3], vec![1], 1);
        let mut unclean = clean.clone();
        let recs = clean.fence_records(1, false);
        apply_all(&mut clean, &recs);
        assert_eq!(part(&clean).leader, -1);
        let recs = unclean.fence_records(1, true);
        apply_all(&mut unclean, &recs);
        assert_eq!(part(&unclean).leader, 2);
        assert_eq!(part(&unclean).isr, vec![2]);
    }

    #[test]
    fn fencing_a_follower_removes_it_from_isr() {
        let mut img = image_with(vec![1, 2, 3], vec![1, 2, 3], 1);
        let recs = img.fence_records(2, false);
        apply_all(&mut img, &recs);
        let p = part(&img);
        assert_eq!((p.leader, p.isr.clone()), (1, vec![1, 3]));
        assert_eq!((p.leader_epoch, p.partition_epoch), (0, 1));
    }

    #[test]
    fn unfencing_reelects_a_leaderless_partition() {
        let mut img = image_with(vec![1, 2, 3], vec![1], 1);
        let recs = img.fence_records(1, false);
        apply_all(&mut img, &recs);
        let recs = img.unfence_records(1);
        apply_all(&mut img, &recs);
        let p = part(&img);
        assert_eq!(p.leader, 1);
        assert_eq!(p.leader_epoch, 2);
        assert!(!img.brokers[&1].fenced);
    }

    #[test]
    fn records_that_no_longer_apply_are_skipped() {
        let mut img = image_with(vec![1], vec![1], 1);
        let before = img.clone();
        img.apply(&MetadataRecord::PartitionChange {
            topic: "gone".into(),
            partition: 0,
            state: part(&before).clone(),
        });
        img.apply(&MetadataRecord::PartitionChange {
            topic: "t".into(),
            partition: 7,
            state: part(&before).clone(),
        });
        img.apply(&MetadataRecord::FenceBroker { id: 99 });
        img.apply(&MetadataRecord::DeleteTopic {
            name: "gone".into(),
        });
        assert_eq!(img, before);
    }

    #[test]
    fn preferred_leaders_come_back_once_the_imbalance_is_over_the_threshold() {
        // Broker 1 is preferred for both partitions and leads neither (it was down).
        let mut img = image_with(vec![1, 2, 3], vec![1, 2, 3], 2);
        let mut second = img.topics["t"].partitions[0].clone();
        second.leader = 3;
        img.topics.get_mut("t").unwrap().partitions.push(second);
        let recs = img.preferred_leader_records(10);
        assert_eq!(recs.len(), 2, "{recs:?}");
        apply_all(&mut img, &recs);
        for p in &img.topics["t"].partitions {
            assert_eq!(p.leader, 1);
            assert_eq!((p.leader_epoch, p.partition_epoch), (1, 1));
            assert_eq!(p.isr, vec![1, 2, 3], "the ISR is unchanged");
        }
        assert!(img.preferred_leader_records(10).is_empty(), "balanced now");
    }

    #[test]
    fn a_preferred_replica_out_of_the_isr_or_fenced_is_not_made_leader() {
        let img = image_with(vec![1, 2, 3], vec![2, 3], 2);
        assert!(
            img.preferred_leader_records(10).is_empty(),
            "1 is not in the ISR"
        );
        let mut img = image_with(vec![1, 2, 3], vec![1, 2, 3], 2);
        img.apply(&MetadataRecord::FenceBroker { id: 1 });
        assert!(img.preferred_leader_records(10).is_empty(), "1 is fenced");
    }

    #[test]
    fn an_imbalance_within_the_threshold_is_left_alone() {
        // Broker 1 is preferred for 10 partitions and leads 9 of them: 10 % off, not over 10 %.
        let mut img = image_with(vec![1, 2, 3], vec![1, 2, 3], 1);
        let led = img.topics["t"].partitions[0].clone();
        let parts = &mut img.topics.get_mut("t").unwrap().partitions;
        for _ in 0..8 {
            parts.push(led.clone());
        }
        let mut moved = led;
        moved.leader = 2;
        parts.push(moved);
        assert!(img.preferred_leader_records(10).is_empty());
        assert_eq!(img.preferred_leader_records(5).len(), 1);
    }
}
