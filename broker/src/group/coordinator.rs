//! The group coordinator: Kafka's classic consumer-group protocol, server side.
//!
//! All groups sit behind one mutex (a broker hosts few groups and every operation on them is a
//! handful of map updates), and nothing awaits while holding it. Requests whose answer must wait
//! for other members (JoinGroup during a rebalance, a follower's SyncGroup before the leader's
//! assignment arrives) leave a `oneshot` sender in the member and await the receiver outside the
//! lock. Time is handled by small tokio tasks that sleep and then re-check the group under the
//! lock, so stale timers are harmless and tests can run them with `tokio::time::pause()`:
//!
//! - a per-member expiry task (session timeout; a long join timeout for new members),
//! - a per-rebalance timer (the rebalance timeout, or `group.initial.rebalance.delay.ms` for
//!   the first rebalance of an empty group, extended while members keep arriving),
//! - a per-generation timer removing members that never send SyncGroup,
//! - a per-handed-out-id timer forgetting member ids given with MEMBER_ID_REQUIRED that never
//!   come back.
//!
//! The flow follows Apache Kafka's `GroupCoordinator` (Scala) closely, so clients see the same
//! answers in the same situations. Committed offsets and group metadata are written to the
//! [`OffsetStore`] (the `__consumer_offsets` log) before a request is answered.

use crate::clock::now_ms;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError as E;
use tokio::sync::oneshot;
use tokio::time::Instant;
use uuid::Uuid;

use super::state::{
    CommittedOffset, Group, GroupState, JoinOutcome, Member, Protocol, SyncOutcome,
};
use super::store::{GroupSnapshot, MemberSnapshot, OffsetStore, StoreRecord};
use super::{GroupConfig, GroupError};

/// How long a new member may wait in a rebalance before it is dropped (Kafka's
/// `NewMemberJoinTimeoutMs`): a client that disconnected while waiting will retry anyway.
const NEW_MEMBER_JOIN_TIMEOUT: Duration = Duration::from_secs(300);

/// A JoinGroup request, decoded from any version.
#[derive(Debug, Clone)]
pub(crate) struct JoinRequest {
    /// Group id.
    pub(crate) group_id: String,
    /// Member id ("" for a new member).
    pub(crate) member_id: String,
    /// Static membership id (v5+).
    pub(crate) group_instance_id: Option<String>,
    /// Client id from the request header.
    pub(crate) client_id: String,
    /// Peer address.
    pub(crate) client_host: String,
    /// Session timeout (ms).
    pub(crate) session_timeout_ms: i32,
    /// Rebalance timeout (ms); v0 uses the session timeout.
    pub(crate) rebalance_timeout_ms: i32,
    /// Protocol type ("consumer").
    pub(crate) protocol_type: String,
    /// Supported protocols in order of preference.
    pub(crate) protocols: Vec<Protocol>,
    /// JoinGroup v4+: a new member first gets an id with MEMBER_ID_REQUIRED.
    pub(crate) require_known_member_id: bool,
}

/// A SyncGroup request.
#[derive(Debug, Clone)]
pub(crate) struct SyncRequest {
    /// Group id.
    pub(crate) group_id: String,
    /// Generation the member believes it is in.
    pub(crate) generation_id: i32,
    /// Member id.
    pub(crate) member_id: String,
    /// Protocol type (v5+), checked against the group's.
    pub(crate) protocol_type: Option<String>,
    /// Protocol name (v5+), checked against the group's.
    pub(crate) protocol_name: Option<String>,
    /// The leader's assignment per member id (empty from followers).
    pub(crate) assignments: Vec<(String, Bytes)>,
}

/// A member leaving (LeaveGroup v0-2 carry one, v3+ a batch).
#[derive(Debug, Clone)]
pub(crate) struct LeavingMember {
    /// Member id ("" when only the instance id is given).
    pub(crate) member_id: String,
    /// Static membership id.
    pub(crate) group_instance_id: Option<String>,
}

/// One partition's offset in an OffsetCommit request.
#[derive(Debug, Clone)]
pub(crate) struct CommitPartition {
    /// Topic.
    pub(crate) topic: String,
    /// Partition.
    pub(crate) partition: i32,
    /// Offset to commit.
    pub(crate) offset: i64,
    /// Leader epoch (-1 if unknown).
    pub(crate) leader_epoch: i32,
    /// Client metadata (null is stored as "").
    pub(crate) metadata: Option<String>,
}

/// An OffsetCommit request.
#[derive(Debug, Clone)]
pub(crate) struct CommitRequest {
    /// Group id.
    pub(crate) group_id: String,
    /// Generation (-1 for commits outside group management).
    pub(crate) generation_id: i32,
    /// Member id ("" outside group management).
    pub(crate) member_id: String,
    /// Static membership id (v7+).
    pub(crate) group_instance_id: Option<String>,
    /// Retention (v2-4; -1 = broker default).
    pub(crate) retention_time_ms: i64,
    /// The offsets.
    pub(crate) partitions: Vec<CommitPartition>,
}

/// One group in a ListGroups answer.
#[derive(Debug, Clone)]
pub(crate) struct ListedGroup {
    /// Group id.
    pub(crate) group_id: String,
    /// Protocol type ("" for groups that only hold offsets).
    pub(crate) protocol_type: String,
    /// State name.
    pub(crate) state: &'static str,
}

/// One member in a DescribeGroups answer.
#[derive(Debug, Clone)]
pub(crate) struct DescribedMember {
    /// Member id.
    pub(crate) member_id: String,
    /// Static membership id.
    pub(crate) group_instance_id: Option<String>,
    /// Client id.
    pub(crate) client_id: String,
    /// Peer address.
    pub(crate) client_host: String,
    /// Metadata for the group's protocol (only in Stable, as Kafka).
    pub(crate) metadata: Bytes,
    /// Assignment (only in Stable, as Kafka).
    pub(crate) assignment: Bytes,
}

/// A DescribeGroups answer for one group (Dead for unknown groups, as Kafka).
#[derive(Debug, Clone)]
pub(crate) struct DescribedGroup {
    /// Kafka error code.
    pub(crate) error_code: i16,
    /// State name.
    pub(crate) state: &'static str,
    /// Protocol type.
    pub(crate) protocol_type: String,
    /// Protocol name (only in Stable).
    pub(crate) protocol: String,
    /// Members.
    pub(crate) members: Vec<DescribedMember>,
}

/// Either an answer now or a receiver for an answer a rebalance will give.
enum Pending<T> {
    Ready(T),
    Wait(oneshot::Receiver<T>),
}

/// A TxnOffsetCommit request: offsets committed inside a producer's open transaction.
#[derive(Debug, Clone)]
pub(crate) struct TxnCommitRequest {
    /// Group id.
    pub(crate) group_id: String,
    /// The transaction's producer id.
    pub(crate) producer_id: i64,
    /// The transaction's producer epoch.
    pub(crate) producer_epoch: i16,
    /// Generation (-1 when not given: v0-2, or a producer outside the group).
    pub(crate) generation_id: i32,
    /// Member id ("" when not given).
    pub(crate) member_id: String,
    /// Static membership id (v3+).
    pub(crate) group_instance_id: Option<String>,
    /// The offsets.
    pub(crate) partitions: Vec<CommitPartition>,
}

/// The coordinator for every group on this broker. Cloning gives another handle to the same
/// coordinator (the transaction coordinator keeps one to complete transactional offsets).
#[derive(Clone)]
pub(crate) struct GroupCoordinator {
    /// State shared with the timer tasks.
    inner: Arc<Inner>,
}

/// What the timer tasks share with the coordinator.
struct Inner {
    /// Limits and delays.
    cfg: GroupConfig,
    /// All live groups by id.
    groups: Mutex<HashMap<String, Group>>,
    /// Where commits and group metadata are written; `None` keeps everything in memory
    /// (unit tests).
    store: Option<OffsetStore>,
    /// Cluster mode: the `__consumer_offsets` partitions whose groups are loaded here, i.e. the
    /// groups this broker answers for. Leadership (the metadata) comes first and the load a
    /// moment later; in between a request must not see an empty group (a member would be told
    /// UNKNOWN_MEMBER_ID and drop its id), so it is told COORDINATOR_LOAD_IN_PROGRESS.
    /// A partition is added with the `groups` lock held, after its groups are installed.
    coordinating: Mutex<HashSet<i32>>,
}

/// Checks each partition's metadata size and builds the records to store, for plain and
/// transactional commits alike: one error code per partition in request order (0 when
/// accepted), and the records of the accepted ones.
fn offset_records(
    max_metadata_bytes: usize,
    group: &str,
    partitions: &[CommitPartition],
    now: i64,
    expire: Option<i64>,
) -> (Vec<i16>, Vec<StoreRecord>) {
    let mut codes = Vec::with_capacity(partitions.len());
    let mut records = Vec::new();
    for p in partitions {
        let metadata = p.metadata.clone().unwrap_or_default();
        if metadata.len() > max_metadata_bytes {
            codes.push(E::OffsetMetadataTooLarge.code());
            continue;
        }
        codes.push(0);
        records.push(StoreRecord::Offset {
            group: group.to_owned(),
            topic: p.topic.clone(),
            partition: p.partition,
            value: Some(CommittedOffset {
                offset: p.offset,
                leader_epoch: p.leader_epoch,
                metadata,
                commit_timestamp_ms: now,
                expire_timestamp_ms: expire,
            }),
        });
    }
    (codes, records)
}

/// Groups rebuilt from replayed records, with the transactional offsets still waiting for
/// their marker.
fn build_groups(
    replayed: Vec<StoreRecord>,
    pending: Vec<super::store::PendingTxnRecords>,
) -> HashMap<String, Group> {
    let mut groups = HashMap::new();
    for record in replayed {
        apply_replayed(&mut groups, record);
    }
    for p in pending {
        let group = groups
            .entry(p.group.clone())
            .or_insert_with(|| Group::new(p.group.clone(), now_ms()));
        let pending = group.pending_txn_offsets.entry(p.producer_id).or_default();
        pending.producer_epoch = p.producer_epoch;
        pending
            .offsets
            .extend(p.records.into_iter().filter_map(StoreRecord::into_commit));
    }
    groups
}

impl GroupCoordinator {
    /// A coordinator that keeps everything in memory.
    #[cfg(test)]
    pub(crate) fn in_memory(cfg: GroupConfig) -> Self {
        GroupCoordinator {
            inner: Arc::new(Inner {
                cfg,
                groups: Mutex::new(HashMap::new()),
                store: None,
                coordinating: Mutex::default(),
            }),
        }
    }

    /// A coordinator backed by `store`, with the groups replayed from it.
    pub(crate) fn with_store(
        cfg: GroupConfig,
        store: OffsetStore,
        replayed: Vec<StoreRecord>,
    ) -> Self {
        let pending = store.take_replayed_pending();
        let coordinator = GroupCoordinator {
            inner: Arc::new(Inner {
                cfg,
                groups: Mutex::new(HashMap::new()),
                store: Some(store),
                coordinating: Mutex::default(),
            }),
        };
        coordinator.install(build_groups(replayed, pending));
        coordinator
    }

    /// Adds replayed groups to the live ones. Members restored from the log keep their
    /// session: they expire unless they heartbeat, exactly like after a coordinator move in
    /// Kafka.
    fn install(&self, loaded: HashMap<String, Group>) {
        let mut groups = self.inner.lock();
        self.install_locked(&mut groups, loaded);
    }

    fn install_locked(&self, groups: &mut HashMap<String, Group>, loaded: HashMap<String, Group>) {
        let ids: Vec<String> = loaded.keys().cloned().collect();
        for (id, group) in loaded {
            groups.insert(id, group);
        }
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        for gid in &ids {
            let Some(group) = groups.get_mut(gid) else {
                continue;
            };
            let ids: Vec<String> = group.members.keys().cloned().collect();
            for id in ids {
                let Some(timeout) = group.members.get(&id).map(|m| m.session_timeout_ms) else {
                    continue;
                };
                self.inner
                    .schedule_member_expiry(group, &id, Duration::from_millis(timeout));
            }
        }
    }

    /// Whether this broker answers for `group_id` now: always on a single broker; in cluster
    /// mode once the group's `__consumer_offsets` partition is loaded here.
    pub(crate) fn is_coordinating(&self, group_id: &str) -> bool {
        self.is_partition_loaded(self.offsets_partition_for(group_id))
    }

    /// Whether `__consumer_offsets` partition `index` is loaded here (always on a single
    /// broker): a transaction marker written to it reaches its groups' pending offsets.
    pub(crate) fn is_partition_loaded(&self, index: i32) -> bool {
        match &self.inner.store {
            Some(store) if store.is_replicated() => self.inner.coordinating().contains(&index),
            _ => true,
        }
    }

    /// Cluster mode: this broker has become the leader of `__consumer_offsets` partition
    /// `index`, so it coordinates that partition's groups from now on: their state is replayed
    /// from the (replicated) partition, replacing whatever this broker remembered of them.
    pub(crate) fn load_partition(
        &self,
        index: i32,
        partition: Arc<crate::partition::Partition>,
    ) -> Result<usize, GroupError> {
        let Some(store) = &self.inner.store else {
            return Ok(0);
        };
        // A reload (new leader epoch) stops answering first, so nothing is written between the
        // replay and the install.
        self.inner.coordinating().remove(&index);
        let (records, pending) = store.lead(index, partition)?;
        let loaded = build_groups(records, pending);
        let count = loaded.len();
        // One critical section: no request sees the partition's groups half replaced.
        let mut groups = self.inner.lock();
        groups.retain(|id, _| store.partition_for(id) != index);
        self.install_locked(&mut groups, loaded);
        self.inner.coordinating().insert(index);
        Ok(count)
    }

    /// Cluster mode: another broker leads `__consumer_offsets` partition `index` now; its
    /// groups are forgotten here (their members are told NOT_COORDINATOR and look it up again).
    pub(crate) fn unload_partition(&self, index: i32) {
        let Some(store) = &self.inner.store else {
            return;
        };
        let mut groups = self.inner.lock();
        self.inner.coordinating().remove(&index);
        store.resign(index);
        groups.retain(|id, _| store.partition_for(id) != index);
    }

    /// JoinGroup. Waits while the group rebalances.
    pub(crate) async fn join_group(&self, req: JoinRequest) -> JoinOutcome {
        let member_id = req.member_id.clone();
        match self.inner.join(req) {
            Pending::Ready(out) => out,
            Pending::Wait(rx) => rx
                .await
                .unwrap_or_else(|_| JoinOutcome::error(member_id, E::NotCoordinator.code())),
        }
    }

    /// SyncGroup. A follower waits for the leader's assignment.
    pub(crate) async fn sync_group(&self, req: SyncRequest) -> SyncOutcome {
        match self.inner.sync(req) {
            Pending::Ready(out) => out,
            Pending::Wait(rx) => rx
                .await
                .unwrap_or_else(|_| SyncOutcome::error(E::RebalanceInProgress.code())),
        }
    }

    /// Heartbeat: returns the error code.
    pub(crate) fn heartbeat(&self, group_id: &str, member_id: &str, generation_id: i32) -> i16 {
        self.inner.heartbeat(group_id, member_id, generation_id)
    }

    /// LeaveGroup: a top-level error code and one code per leaving member.
    pub(crate) fn leave_group(&self, group_id: &str, members: &[LeavingMember]) -> (i16, Vec<i16>) {
        self.inner.leave(group_id, members)
    }

    /// OffsetCommit: one error code per partition, in request order. Every committed offset is
    /// written to the log before this returns.
    pub(crate) fn commit_offsets(&self, req: &CommitRequest) -> Vec<i16> {
        self.inner.commit(req)
    }

    /// TxnOffsetCommit: one error code per partition, in request order. The offsets are written
    /// to the log as a transactional batch and stay pending (invisible to OffsetFetch) until
    /// [`GroupCoordinator::complete_transaction`] is called for the producer. The caller has
    /// checked the producer against the transaction coordinator.
    pub(crate) fn commit_txn_offsets(&self, req: &TxnCommitRequest) -> Vec<i16> {
        let mut groups = self.inner.lock();
        self.inner.commit_txn_locked(&mut groups, req)
    }

    /// Writes the COMMIT or ABORT marker of `producer_id`'s transaction to `__consumer_offsets`
    /// partition `index`, then makes that producer's pending offsets in the partition's groups
    /// committed (COMMIT) or drops them (ABORT).
    pub(crate) fn complete_transaction(
        &self,
        index: i32,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        coordinator_epoch: i32,
    ) -> Result<(), GroupError> {
        let mut groups = self.inner.lock();
        if let Some(store) = &self.inner.store {
            store.append_marker(
                index,
                producer_id,
                producer_epoch,
                commit,
                coordinator_epoch,
            )?;
        }
        for group in groups.values_mut() {
            if self.inner.partition_of(&group.id) != index {
                continue;
            }
            let Some(pending) = group.pending_txn_offsets.remove(&producer_id) else {
                continue;
            };
            if commit {
                group.offsets.extend(pending.offsets);
            }
        }
        self.inner.snapshot_if_due(&groups);
        Ok(())
    }

    /// The `__consumer_offsets` partition that holds `group_id`'s offsets.
    pub(crate) fn offsets_partition_for(&self, group_id: &str) -> i32 {
        self.inner.partition_of(group_id)
    }

    /// The partitions of `group_id` with offsets pending in an open transaction (OffsetFetch
    /// answers UNSTABLE_OFFSET_COMMIT for them when the client requires stable offsets).
    pub(crate) fn unstable_partitions(
        &self,
        group_id: &str,
    ) -> std::collections::BTreeSet<(String, i32)> {
        self.inner
            .lock()
            .get(group_id)
            .map(|g| {
                g.pending_txn_offsets
                    .values()
                    .flat_map(|p| p.offsets.keys().cloned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// OffsetFetch: committed offsets of `group_id` for `partitions` (topic, partition list),
    /// or all of them when `None`. A partition without a commit is returned with `None`.
    /// The error is the group-level error code.
    #[allow(clippy::type_complexity)]
    pub(crate) fn fetch_offsets(
        &self,
        group_id: &str,
        partitions: Option<&[(String, Vec<i32>)]>,
    ) -> Result<Vec<(String, i32, Option<CommittedOffset>)>, i16> {
        self.inner.fetch(group_id, partitions)
    }

    /// ListGroups, filtered by state names (case-insensitive; empty = all).
    pub(crate) fn list_groups(&self, states: &[String]) -> Vec<ListedGroup> {
        let groups = self.inner.lock();
        let mut out: Vec<ListedGroup> = groups
            .values()
            .filter(|g| {
                states.is_empty()
                    || states
                        .iter()
                        .any(|s| s.eq_ignore_ascii_case(g.state.name()))
            })
            .map(|g| ListedGroup {
                group_id: g.id.clone(),
                protocol_type: g.protocol_type.clone().unwrap_or_default(),
                state: g.state.name(),
            })
            .collect();
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        out
    }

    /// DescribeGroups for one group.
    pub(crate) fn describe_group(&self, group_id: &str) -> DescribedGroup {
        let groups = self.inner.lock();
        let Some(g) = groups.get(group_id) else {
            return DescribedGroup {
                error_code: 0,
                state: GroupState::Dead.name(),
                protocol_type: String::new(),
                protocol: String::new(),
                members: Vec::new(),
            };
        };
        let stable = g.state == GroupState::Stable;
        let protocol = if stable {
            g.protocol_name.clone().unwrap_or_default()
        } else {
            String::new()
        };
        DescribedGroup {
            error_code: 0,
            state: g.state.name(),
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            members: g
                .members
                .values()
                .map(|m| DescribedMember {
                    member_id: m.id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if stable {
                        m.metadata_for(&protocol)
                    } else {
                        Bytes::new()
                    },
                    assignment: if stable {
                        m.assignment.clone()
                    } else {
                        Bytes::new()
                    },
                })
                .collect(),
            protocol,
        }
    }

    /// DeleteGroups for one group, with Kafka's rules: a group that still has members is
    /// NON_EMPTY_GROUP, an unknown one GROUP_ID_NOT_FOUND; otherwise tombstones for its offsets
    /// and its metadata are written and it is forgotten. Returns the error code.
    pub(crate) fn delete_group(&self, group_id: &str) -> i16 {
        let mut groups = self.inner.lock();
        let Some(group) = groups.get(group_id) else {
            return E::GroupIdNotFound.code();
        };
        if group.state != GroupState::Empty || !group.members.is_empty() {
            return E::NonEmptyGroup.code();
        }
        let mut records: Vec<StoreRecord> = group
            .offsets
            .keys()
            .map(|(topic, partition)| StoreRecord::Offset {
                group: group_id.to_owned(),
                topic: topic.clone(),
                partition: *partition,
                value: None,
            })
            .collect();
        records.push(StoreRecord::Group {
            group: group_id.to_owned(),
            value: None,
        });
        if let Some(store) = &self.inner.store {
            if let Err(e) = store.append(group_id, &records) {
                tracing::warn!(
                    group = group_id,
                    "cannot write the deleted group's tombstones: {e}"
                );
                return E::NotCoordinator.code();
            }
        }
        groups.remove(group_id);
        tracing::info!(group = group_id, "group deleted");
        0
    }

    /// OffsetDelete: removes committed offsets of `group_id`, with Kafka's rules: an unknown
    /// group is GROUP_ID_NOT_FOUND (top level); a partition of a topic a current member is
    /// subscribed to is GROUP_SUBSCRIBED_TO_TOPIC and keeps its offset. Returns the top-level
    /// code and one code per partition, in request order.
    pub(crate) fn delete_offsets(
        &self,
        group_id: &str,
        partitions: &[(String, i32)],
    ) -> (i16, Vec<i16>) {
        let mut groups = self.inner.lock();
        let Some(group) = groups.get_mut(group_id) else {
            return (E::GroupIdNotFound.code(), Vec::new());
        };
        let subscribed = group.subscribed_topics();
        let codes: Vec<i16> = partitions
            .iter()
            .map(|(topic, _)| {
                if subscribed.contains(topic) {
                    E::GroupSubscribedToTopic.code()
                } else {
                    0
                }
            })
            .collect();
        let records: Vec<StoreRecord> = partitions
            .iter()
            .zip(&codes)
            .filter(|(key, code)| **code == 0 && group.offsets.contains_key(*key))
            .map(|((topic, partition), _)| StoreRecord::Offset {
                group: group_id.to_owned(),
                topic: topic.clone(),
                partition: *partition,
                value: None,
            })
            .collect();
        if records.is_empty() {
            return (0, codes);
        }
        if let Some(store) = &self.inner.store {
            if let Err(e) = store.append(group_id, &records) {
                tracing::warn!(group = group_id, "cannot write offset tombstones: {e}");
                return (E::NotCoordinator.code(), Vec::new());
            }
        }
        for r in records {
            if let StoreRecord::Offset {
                topic, partition, ..
            } = r
            {
                group.offsets.remove(&(topic, partition));
            }
        }
        (0, codes)
    }

    /// Removes expired offsets (and forgets empty groups without offsets), writing tombstones.
    /// Returns how many offsets expired.
    #[cfg(test)]
    pub(crate) fn expire_offsets(&self, now_ms: i64) -> usize {
        self.inner.expire_offsets(now_ms)
    }

    /// fsyncs the offsets log (at shutdown).
    pub(crate) fn flush(&self) -> Result<(), GroupError> {
        match &self.inner.store {
            Some(store) => store.flush(),
            None => Ok(()),
        }
    }

    /// Starts the background task applying `log.flush.interval.ms` to the offsets log.
    pub(crate) fn spawn_flush_task(&self, interval: Duration) {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                if let Some(store) = &inner.store {
                    if let Err(e) = store.maybe_flush(now_ms()) {
                        tracing::warn!("flushing the consumer offsets log failed: {e}");
                    }
                }
            }
        });
    }

    /// Starts the background task expiring offsets every `interval` (Kafka's
    /// `offsets.retention.check.interval.ms`). The task ends when the coordinator is dropped.
    pub(crate) fn spawn_retention_task(&self, interval: Duration) {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                let n = inner.expire_offsets(now_ms());
                if n > 0 {
                    tracing::info!("expired {n} committed offsets");
                }
            }
        });
    }

    #[cfg(test)]
    fn with_group<R>(&self, group_id: &str, f: impl FnOnce(&Group) -> R) -> Option<R> {
        self.inner.lock().get(group_id).map(f)
    }
}

/// Applies one replayed log record to the groups.
fn apply_replayed(groups: &mut HashMap<String, Group>, record: StoreRecord) {
    match record {
        StoreRecord::Offset {
            group,
            topic,
            partition,
            value,
        } => match value {
            Some(v) => {
                groups
                    .entry(group.clone())
                    .or_insert_with(|| Group::new(group, v.commit_timestamp_ms))
                    .offsets
                    .insert((topic, partition), v);
            }
            None => {
                if let Some(g) = groups.get_mut(&group) {
                    g.offsets.remove(&(topic, partition));
                }
            }
        },
        StoreRecord::Group { group, value } => match value {
            Some(snap) => {
                let g = groups
                    .entry(group.clone())
                    .or_insert_with(|| Group::new(group, snap.state_timestamp_ms));
                g.stored = Some(snap.clone());
                g.generation_id = snap.generation_id;
                g.protocol_type = (!snap.protocol_type.is_empty()).then_some(snap.protocol_type);
                g.protocol_name = snap.protocol_name;
                g.leader_id = snap.leader_id;
                g.state_timestamp_ms = snap.state_timestamp_ms;
                g.members.clear();
                let deadline = Instant::now();
                for m in snap.members {
                    let member = Member {
                        id: m.member_id.clone(),
                        group_instance_id: m.group_instance_id,
                        client_id: m.client_id,
                        client_host: m.client_host,
                        session_timeout_ms: u64::try_from(m.session_timeout_ms).unwrap_or(0),
                        rebalance_timeout_ms: u64::try_from(m.rebalance_timeout_ms).unwrap_or(0),
                        protocols: vec![Protocol {
                            name: g.protocol_name.clone().unwrap_or_default(),
                            metadata: m.subscription,
                        }],
                        assignment: m.assignment,
                        join_waiter: None,
                        sync_waiter: None,
                        is_new: false,
                        deadline,
                        timer_id: 0,
                        timer_wakes_at: None,
                    };
                    g.members.insert(m.member_id, member);
                }
                g.state = if g.members.is_empty() {
                    GroupState::Empty
                } else {
                    GroupState::Stable
                };
                if g.leader_id
                    .as_ref()
                    .is_some_and(|l| !g.members.contains_key(l))
                {
                    g.leader_id = g.members.keys().next().cloned();
                }
            }
            None => {
                groups.remove(&group);
            }
        },
    }
}

impl Inner {
    /// The `__consumer_offsets` partition of `group_id` (the store's count when there is one).
    fn partition_of(&self, group_id: &str) -> i32 {
        match &self.store {
            Some(store) => store.partition_for(group_id),
            None => super::store::partition_for(group_id, self.cfg.offsets_topic_num_partitions),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Group>> {
        // Every mutation keeps the map consistent between statements that can panic, so a
        // poisoned lock is still usable.
        self.groups.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn coordinating(&self) -> MutexGuard<'_, HashSet<i32>> {
        self.coordinating.lock().unwrap_or_else(|e| e.into_inner())
    }

    // ----- JoinGroup -------------------------------------------------------------------

    fn join(self: &Arc<Self>, req: JoinRequest) -> Pending<JoinOutcome> {
        if req.group_id.is_empty() {
            return Pending::Ready(JoinOutcome::error(req.member_id, E::InvalidGroupId.code()));
        }
        let session = i64::from(req.session_timeout_ms);
        if session < self.cfg.min_session_timeout_ms as i64
            || session > self.cfg.max_session_timeout_ms as i64
        {
            return Pending::Ready(JoinOutcome::error(
                req.member_id,
                E::InvalidSessionTimeout.code(),
            ));
        }
        let mut groups = self.lock();
        let unknown_member = req.member_id.is_empty();
        if !groups.contains_key(&req.group_id) {
            // Only a new member may create a group; a known member id for a group we do not
            // have (e.g. the group expired) must start over.
            if !unknown_member {
                return Pending::Ready(JoinOutcome::error(
                    req.member_id,
                    E::UnknownMemberId.code(),
                ));
            }
            groups.insert(
                req.group_id.clone(),
                Group::new(req.group_id.clone(), now_ms()),
            );
        }
        let Some(group) = groups.get_mut(&req.group_id) else {
            return Pending::Ready(JoinOutcome::error(req.member_id, E::UnknownMemberId.code()));
        };
        let out = if unknown_member {
            self.join_unknown_member(group, req)
        } else {
            self.join_known_member(group, req)
        };
        if group.state == GroupState::PreparingRebalance {
            self.try_complete_join(group);
        }
        out
    }

    fn join_unknown_member(
        self: &Arc<Self>,
        group: &mut Group,
        req: JoinRequest,
    ) -> Pending<JoinOutcome> {
        if !group.supports_protocols(&req.protocol_type, &req.protocols) {
            return Pending::Ready(JoinOutcome::error(
                String::new(),
                E::InconsistentGroupProtocol.code(),
            ));
        }
        let prefix = req.group_instance_id.as_deref().unwrap_or(&req.client_id);
        let member_id = format!("{prefix}-{}", Uuid::new_v4());
        if let Some(instance) = &req.group_instance_id {
            // Static member coming back with a new incarnation: the old one is fenced and the
            // new one joins without the MEMBER_ID_REQUIRED round trip, as in Kafka.
            if let Some(old) = group.member_by_instance(instance).map(|m| m.id.clone()) {
                let keeps_protocol = group
                    .protocol_name
                    .as_ref()
                    .is_some_and(|p| req.protocols.iter().any(|x| &x.name == p));
                if group.state == GroupState::Stable && keeps_protocol {
                    return Pending::Ready(self.replace_static_member(group, &old, member_id, req));
                }
                if let Some(mut m) = group.remove_member(&old) {
                    if let Some(tx) = m.join_waiter.take() {
                        let _ =
                            tx.send(JoinOutcome::error(old.clone(), E::FencedInstanceId.code()));
                    }
                    if let Some(tx) = m.sync_waiter.take() {
                        let _ = tx.send(SyncOutcome::error(E::FencedInstanceId.code()));
                    }
                }
            }
            return Pending::Wait(self.add_member_and_rebalance(group, member_id, req));
        }
        if req.require_known_member_id {
            group.pending_members.insert(member_id.clone());
            self.schedule_pending_member_expiry(
                group,
                &member_id,
                Duration::from_millis(req.session_timeout_ms as u64),
            );
            return Pending::Ready(JoinOutcome::error(member_id, E::MemberIdRequired.code()));
        }
        Pending::Wait(self.add_member_and_rebalance(group, member_id, req))
    }

    /// A static member's new incarnation joining a stable group that keeps its protocol
    /// (Kafka's `updateStaticMemberAndRebalance`): it takes the old member's place and
    /// assignment without a rebalance, and the old incarnation is fenced. The answer names the
    /// leader as it was before (the old id when the old incarnation led), so the new one does
    /// not run an assignment a stable group would never hand out.
    fn replace_static_member(
        self: &Arc<Self>,
        group: &mut Group,
        old: &str,
        member_id: String,
        req: JoinRequest,
    ) -> JoinOutcome {
        let current_leader = group.leader_id.clone().unwrap_or_default();
        let Some(mut m) = group.members.shift_remove(old) else {
            return JoinOutcome::error(member_id, E::UnknownMemberId.code());
        };
        if let Some(tx) = m.join_waiter.take() {
            let _ = tx.send(JoinOutcome::error(
                old.to_owned(),
                E::FencedInstanceId.code(),
            ));
        }
        if let Some(tx) = m.sync_waiter.take() {
            let _ = tx.send(SyncOutcome::error(E::FencedInstanceId.code()));
        }
        m.id = member_id.clone();
        m.protocols = req.protocols;
        m.client_id = req.client_id;
        m.client_host = req.client_host;
        m.session_timeout_ms = req.session_timeout_ms.max(0) as u64;
        m.rebalance_timeout_ms = req.rebalance_timeout_ms.max(0) as u64;
        m.timer_wakes_at = None;
        let session = Duration::from_millis(m.session_timeout_ms);
        group.members.insert(member_id.clone(), m);
        if group.leader_id.as_deref() == Some(old) {
            group.leader_id = Some(member_id.clone());
        }
        self.schedule_member_expiry(group, &member_id, session);
        if let Err(e) = self.store_group(group) {
            tracing::warn!(group = %group.id, "cannot store group metadata: {e}");
        }
        tracing::info!(group = %group.id, old, new = %member_id,
            "static member replaced without a rebalance");
        JoinOutcome {
            error_code: 0,
            generation_id: group.generation_id,
            protocol_type: group.protocol_type.clone(),
            protocol_name: group.protocol_name.clone(),
            leader_id: current_leader,
            member_id,
            members: Vec::new(),
        }
    }

    fn join_known_member(
        self: &Arc<Self>,
        group: &mut Group,
        req: JoinRequest,
    ) -> Pending<JoinOutcome> {
        let member_id = req.member_id.clone();
        if !group.supports_protocols(&req.protocol_type, &req.protocols) {
            return Pending::Ready(JoinOutcome::error(
                member_id,
                E::InconsistentGroupProtocol.code(),
            ));
        }
        if group.pending_members.remove(&member_id) {
            return Pending::Wait(self.add_member_and_rebalance(group, member_id, req));
        }
        let Some(member) = group.members.get(&member_id) else {
            return Pending::Ready(JoinOutcome::error(member_id, E::UnknownMemberId.code()));
        };
        let is_leader = group.leader_id.as_deref() == Some(member_id.as_str());
        let matches = member.matches(&req.protocols);
        match group.state {
            GroupState::PreparingRebalance => {
                Pending::Wait(self.update_member_and_rebalance(group, req))
            }
            GroupState::CompletingRebalance if matches => {
                // The member lost our JoinGroup answer: give it the current generation again.
                Pending::Ready(current_generation(group, &member_id, is_leader))
            }
            GroupState::Stable if !is_leader && matches => {
                Pending::Ready(current_generation(group, &member_id, false))
            }
            // The leader rejoining a stable group asks for a rebalance (e.g. topic metadata
            // changed); so does any member whose protocols changed.
            GroupState::CompletingRebalance | GroupState::Stable => {
                Pending::Wait(self.update_member_and_rebalance(group, req))
            }
            GroupState::Empty | GroupState::Dead => {
                Pending::Ready(JoinOutcome::error(member_id, E::UnknownMemberId.code()))
            }
        }
    }

    fn add_member_and_rebalance(
        self: &Arc<Self>,
        group: &mut Group,
        member_id: String,
        req: JoinRequest,
    ) -> oneshot::Receiver<JoinOutcome> {
        let (tx, rx) = oneshot::channel();
        if group.state == GroupState::PreparingRebalance && group.generation_id == 0 {
            group.new_member_added = true;
        }
        if group.members.is_empty() {
            group.protocol_type = Some(req.protocol_type.clone());
        }
        if group.leader_id.is_none() {
            group.leader_id = Some(member_id.clone());
        }
        let member = Member {
            id: member_id.clone(),
            group_instance_id: req.group_instance_id,
            client_id: req.client_id,
            client_host: req.client_host,
            session_timeout_ms: req.session_timeout_ms.max(0) as u64,
            rebalance_timeout_ms: req.rebalance_timeout_ms.max(0) as u64,
            protocols: req.protocols,
            assignment: Bytes::new(),
            join_waiter: Some(tx),
            sync_waiter: None,
            is_new: true,
            deadline: Instant::now() + NEW_MEMBER_JOIN_TIMEOUT,
            timer_id: 0,
            timer_wakes_at: None,
        };
        group.members.insert(member_id.clone(), member);
        self.schedule_member_expiry(group, &member_id, NEW_MEMBER_JOIN_TIMEOUT);
        self.maybe_prepare_rebalance(group);
        rx
    }

    fn update_member_and_rebalance(
        self: &Arc<Self>,
        group: &mut Group,
        req: JoinRequest,
    ) -> oneshot::Receiver<JoinOutcome> {
        let (tx, rx) = oneshot::channel();
        if let Some(member) = group.members.get_mut(&req.member_id) {
            member.protocols = req.protocols;
            member.session_timeout_ms = req.session_timeout_ms.max(0) as u64;
            member.rebalance_timeout_ms = req.rebalance_timeout_ms.max(0) as u64;
            member.client_host = req.client_host;
            if let Some(old) = member.join_waiter.replace(tx) {
                // A retried JoinGroup supersedes the earlier one.
                let _ = old.send(JoinOutcome::error(
                    req.member_id.clone(),
                    E::RebalanceInProgress.code(),
                ));
            }
        }
        self.maybe_prepare_rebalance(group);
        rx
    }

    fn maybe_prepare_rebalance(self: &Arc<Self>, group: &mut Group) {
        if matches!(
            group.state,
            GroupState::Stable | GroupState::CompletingRebalance | GroupState::Empty
        ) {
            self.prepare_rebalance(group);
        }
    }

    fn prepare_rebalance(self: &Arc<Self>, group: &mut Group) {
        if group.state == GroupState::CompletingRebalance {
            // Members waiting for their assignment must rejoin instead.
            reset_and_propagate_assignment_error(group, E::RebalanceInProgress.code());
        }
        group.pending_sync.clear();
        group.sync_epoch += 1;
        let was_empty = group.state == GroupState::Empty;
        group.transition(GroupState::PreparingRebalance, now_ms());
        group.rebalance_epoch += 1;
        let timeout = group.rebalance_timeout_ms();
        if was_empty {
            let delay = self.cfg.initial_rebalance_delay_ms;
            group.new_member_added = false;
            group.initial_delay_remaining_ms = Some(timeout.saturating_sub(delay));
            self.schedule_rebalance_timer(group, Duration::from_millis(delay));
        } else {
            group.initial_delay_remaining_ms = None;
            self.schedule_rebalance_timer(group, Duration::from_millis(timeout));
            self.try_complete_join(group);
        }
        tracing::info!(
            group = %group.id,
            generation = group.generation_id,
            members = group.members.len(),
            "preparing to rebalance"
        );
    }

    /// Completes the join phase now if every member is back (not during the initial delay,
    /// which only ends by its timer).
    fn try_complete_join(self: &Arc<Self>, group: &mut Group) {
        if group.state == GroupState::PreparingRebalance
            && group.initial_delay_remaining_ms.is_none()
            && group.all_members_joined()
        {
            self.complete_join(group);
        }
    }

    /// The rebalance timer fired.
    fn on_rebalance_timer(self: &Arc<Self>, group: &mut Group) {
        if let Some(remaining) = group.initial_delay_remaining_ms {
            if group.new_member_added && remaining > 0 {
                // Members keep arriving: wait a little longer, within the rebalance timeout.
                group.new_member_added = false;
                let delay = self.cfg.initial_rebalance_delay_ms.min(remaining);
                group.initial_delay_remaining_ms = Some(remaining - delay);
                group.rebalance_epoch += 1;
                self.schedule_rebalance_timer(group, Duration::from_millis(delay));
                return;
            }
            group.initial_delay_remaining_ms = None;
        }
        self.complete_join(group);
    }

    fn complete_join(self: &Arc<Self>, group: &mut Group) {
        group.rebalance_epoch += 1;
        group.initial_delay_remaining_ms = None;
        // Members that did not rejoin in time are out.
        let gone: Vec<String> = group
            .members
            .values()
            .filter(|m| m.join_waiter.is_none())
            .map(|m| m.id.clone())
            .collect();
        for id in gone {
            tracing::info!(group = %group.id, member = %id, "member did not rejoin in time; removed");
            group.remove_member(&id);
        }
        if !group.elect_joined_leader() && !group.members.is_empty() {
            let timeout = group.rebalance_timeout_ms();
            self.schedule_rebalance_timer(group, Duration::from_millis(timeout));
            return;
        }
        group.init_next_generation(now_ms());
        if group.state == GroupState::Empty {
            tracing::info!(group = %group.id, generation = group.generation_id, "group is now empty");
            if let Err(e) = self.store_group(group) {
                tracing::warn!(group = %group.id, "cannot store group metadata: {e}");
            }
            return;
        }
        tracing::info!(
            group = %group.id,
            generation = group.generation_id,
            members = group.members.len(),
            protocol = group.protocol_name.as_deref().unwrap_or(""),
            "stabilized group"
        );
        let all = group.member_metadata();
        let leader = group.leader_id.clone().unwrap_or_default();
        let ids: Vec<String> = group.members.keys().cloned().collect();
        for id in &ids {
            let out = JoinOutcome {
                error_code: 0,
                generation_id: group.generation_id,
                protocol_type: group.protocol_type.clone(),
                protocol_name: group.protocol_name.clone(),
                leader_id: leader.clone(),
                member_id: id.clone(),
                members: if *id == leader {
                    all.clone()
                } else {
                    Vec::new()
                },
            };
            if let Some(m) = group.members.get_mut(id) {
                if let Some(tx) = m.join_waiter.take() {
                    let _ = tx.send(out);
                }
                m.is_new = false;
                let timeout = m.session_timeout_ms;
                self.schedule_member_expiry(group, id, Duration::from_millis(timeout));
            }
        }
        group.pending_sync = ids.into_iter().collect();
        group.sync_epoch += 1;
        let timeout = group.rebalance_timeout_ms();
        self.schedule_sync_expiry(group, Duration::from_millis(timeout));
    }

    // ----- SyncGroup -------------------------------------------------------------------

    fn sync(self: &Arc<Self>, req: SyncRequest) -> Pending<SyncOutcome> {
        let ready = |code: i16| Pending::Ready(SyncOutcome::error(code));
        if req.group_id.is_empty() {
            return ready(E::InvalidGroupId.code());
        }
        let mut groups = self.lock();
        let Some(group) = groups.get_mut(&req.group_id) else {
            return ready(E::UnknownMemberId.code());
        };
        if !group.members.contains_key(&req.member_id) {
            return ready(E::UnknownMemberId.code());
        }
        if req.generation_id != group.generation_id {
            return ready(E::IllegalGeneration.code());
        }
        if req
            .protocol_type
            .as_ref()
            .is_some_and(|t| group.protocol_type.as_ref() != Some(t))
            || req
                .protocol_name
                .as_ref()
                .is_some_and(|n| group.protocol_name.as_ref() != Some(n))
        {
            return ready(E::InconsistentGroupProtocol.code());
        }
        match group.state {
            GroupState::Empty => ready(E::UnknownMemberId.code()),
            GroupState::Dead => ready(E::CoordinatorNotAvailable.code()),
            GroupState::PreparingRebalance => ready(E::RebalanceInProgress.code()),
            GroupState::Stable => {
                group.pending_sync.remove(&req.member_id);
                let Some(member) = group.members.get(&req.member_id) else {
                    return ready(E::UnknownMemberId.code());
                };
                let out = SyncOutcome {
                    error_code: 0,
                    protocol_type: group.protocol_type.clone(),
                    protocol_name: group.protocol_name.clone(),
                    assignment: member.assignment.clone(),
                };
                let timeout = member.session_timeout_ms;
                self.schedule_member_expiry(group, &req.member_id, Duration::from_millis(timeout));
                Pending::Ready(out)
            }
            GroupState::CompletingRebalance => {
                let (tx, rx) = oneshot::channel();
                if let Some(m) = group.members.get_mut(&req.member_id) {
                    m.sync_waiter = Some(tx);
                }
                group.pending_sync.remove(&req.member_id);
                if group.leader_id.as_deref() == Some(req.member_id.as_str()) {
                    let mut given: HashMap<String, Bytes> = req.assignments.into_iter().collect();
                    for m in group.members.values_mut() {
                        m.assignment = given.remove(&m.id).unwrap_or_default();
                    }
                    match self.store_group(group) {
                        Ok(()) => {
                            self.propagate_assignment(group);
                            group.transition(GroupState::Stable, now_ms());
                            tracing::info!(
                                group = %group.id,
                                generation = group.generation_id,
                                "assignment received; group is stable"
                            );
                        }
                        Err(e) => {
                            tracing::warn!(group = %group.id, "cannot store group metadata: {e}");
                            reset_and_propagate_assignment_error(
                                group,
                                E::CoordinatorNotAvailable.code(),
                            );
                            self.maybe_prepare_rebalance(group);
                        }
                    }
                }
                Pending::Wait(rx)
            }
        }
    }

    fn propagate_assignment(self: &Arc<Self>, group: &mut Group) {
        let ids: Vec<String> = group.members.keys().cloned().collect();
        for id in ids {
            let Some(m) = group.members.get_mut(&id) else {
                continue;
            };
            if let Some(tx) = m.sync_waiter.take() {
                let _ = tx.send(SyncOutcome {
                    error_code: 0,
                    protocol_type: group.protocol_type.clone(),
                    protocol_name: group.protocol_name.clone(),
                    assignment: m.assignment.clone(),
                });
                let timeout = m.session_timeout_ms;
                self.schedule_member_expiry(group, &id, Duration::from_millis(timeout));
            }
        }
    }

    // ----- Heartbeat, LeaveGroup -------------------------------------------------------

    fn heartbeat(self: &Arc<Self>, group_id: &str, member_id: &str, generation_id: i32) -> i16 {
        if group_id.is_empty() {
            return E::InvalidGroupId.code();
        }
        let mut groups = self.lock();
        let Some(group) = groups.get_mut(group_id) else {
            return E::UnknownMemberId.code();
        };
        let Some(member) = group.members.get(member_id) else {
            return E::UnknownMemberId.code();
        };
        if generation_id != group.generation_id {
            return E::IllegalGeneration.code();
        }
        let timeout = Duration::from_millis(member.session_timeout_ms);
        match group.state {
            GroupState::Empty => E::UnknownMemberId.code(),
            GroupState::Dead => E::CoordinatorNotAvailable.code(),
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.schedule_member_expiry(group, member_id, timeout);
                0
            }
            GroupState::PreparingRebalance => {
                self.schedule_member_expiry(group, member_id, timeout);
                E::RebalanceInProgress.code()
            }
        }
    }

    fn leave(self: &Arc<Self>, group_id: &str, leaving: &[LeavingMember]) -> (i16, Vec<i16>) {
        if group_id.is_empty() {
            return (
                E::InvalidGroupId.code(),
                vec![E::InvalidGroupId.code(); leaving.len()],
            );
        }
        let mut groups = self.lock();
        let Some(group) = groups.get_mut(group_id) else {
            return (0, vec![E::UnknownMemberId.code(); leaving.len()]);
        };
        let mut codes = Vec::with_capacity(leaving.len());
        for l in leaving {
            let member_id = if l.member_id.is_empty() {
                l.group_instance_id
                    .as_deref()
                    .and_then(|i| group.member_by_instance(i))
                    .map(|m| m.id.clone())
            } else {
                Some(l.member_id.clone())
            };
            let Some(member_id) = member_id else {
                codes.push(E::UnknownMemberId.code());
                continue;
            };
            if group.pending_members.remove(&member_id) {
                if group.state == GroupState::PreparingRebalance {
                    self.try_complete_join(group);
                }
                codes.push(0);
                continue;
            }
            let Some(member) = group.members.get(&member_id) else {
                codes.push(E::UnknownMemberId.code());
                continue;
            };
            if let (Some(given), Some(known)) = (&l.group_instance_id, &member.group_instance_id) {
                if given != known {
                    codes.push(E::FencedInstanceId.code());
                    continue;
                }
            }
            tracing::info!(group = %group.id, member = %member_id, "member left the group");
            self.remove_member_and_update_group(group, &member_id);
            codes.push(0);
        }
        (0, codes)
    }

    /// Removes a member (it left or expired) and moves the group on.
    fn remove_member_and_update_group(self: &Arc<Self>, group: &mut Group, member_id: &str) {
        if let Some(mut m) = group.remove_member(member_id) {
            if let Some(tx) = m.join_waiter.take() {
                let _ = tx.send(JoinOutcome::error(String::new(), E::UnknownMemberId.code()));
            }
            if let Some(tx) = m.sync_waiter.take() {
                let _ = tx.send(SyncOutcome::error(E::UnknownMemberId.code()));
            }
        }
        match group.state {
            GroupState::Dead | GroupState::Empty => {}
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.maybe_prepare_rebalance(group)
            }
            GroupState::PreparingRebalance => self.try_complete_join(group),
        }
    }

    // ----- Offsets ---------------------------------------------------------------------

    fn commit(self: &Arc<Self>, req: &CommitRequest) -> Vec<i16> {
        let mut groups = self.lock();
        let codes = self.commit_locked(&mut groups, req);
        self.snapshot_if_due(&groups);
        codes
    }

    fn commit_locked(
        self: &Arc<Self>,
        groups: &mut HashMap<String, Group>,
        req: &CommitRequest,
    ) -> Vec<i16> {
        let all = |code: i16| vec![code; req.partitions.len()];
        if !groups.contains_key(&req.group_id) {
            if req.generation_id >= 0 {
                // A member of a generation we do not know: reject, as Kafka.
                return all(E::IllegalGeneration.code());
            }
            // Not using group management: the commit creates an empty group.
            groups.insert(
                req.group_id.clone(),
                Group::new(req.group_id.clone(), now_ms()),
            );
        }
        let Some(group) = groups.get_mut(&req.group_id) else {
            return all(E::CoordinatorNotAvailable.code());
        };
        if req.generation_id >= 0 || !req.member_id.is_empty() || req.group_instance_id.is_some() {
            let Some(member) = group.members.get(&req.member_id) else {
                return all(E::UnknownMemberId.code());
            };
            if let (Some(given), Some(known)) = (&req.group_instance_id, &member.group_instance_id)
            {
                if given != known {
                    return all(E::FencedInstanceId.code());
                }
            }
            if req.generation_id != group.generation_id {
                return all(E::IllegalGeneration.code());
            }
        } else if group.state != GroupState::Empty {
            // While the group has members, only they may commit.
            return all(E::UnknownMemberId.code());
        }
        match group.state {
            GroupState::CompletingRebalance => return all(E::RebalanceInProgress.code()),
            GroupState::Dead => return all(E::CoordinatorNotAvailable.code()),
            GroupState::Stable | GroupState::PreparingRebalance => {
                // A commit counts as a sign of life, as in Kafka.
                if let Some(m) = group.members.get(&req.member_id) {
                    let timeout = Duration::from_millis(m.session_timeout_ms);
                    self.schedule_member_expiry(group, &req.member_id, timeout);
                }
            }
            GroupState::Empty => {}
        }
        let now = now_ms();
        let expire =
            (req.retention_time_ms >= 0).then(|| now.saturating_add(req.retention_time_ms));
        let (codes, records) = offset_records(
            self.cfg.offset_metadata_max_bytes,
            &group.id,
            &req.partitions,
            now,
            expire,
        );
        if records.is_empty() {
            return codes;
        }
        if let Some(store) = &self.store {
            if let Err(e) = store.append(&group.id, &records) {
                tracing::warn!(group = %group.id, "cannot write committed offsets: {e}");
                return codes
                    .into_iter()
                    .map(|c| if c == 0 { E::NotCoordinator.code() } else { c })
                    .collect();
            }
        }
        group
            .offsets
            .extend(records.into_iter().filter_map(StoreRecord::into_commit));
        codes
    }

    /// TxnOffsetCommit under the lock. The member checks are Kafka's
    /// `GroupCoordinator.doTxnCommitOffsets`: an unknown group is created, a given member id
    /// must be a member, a given generation must be the current one.
    fn commit_txn_locked(
        &self,
        groups: &mut HashMap<String, Group>,
        req: &TxnCommitRequest,
    ) -> Vec<i16> {
        let all = |code: i16| vec![code; req.partitions.len()];
        let group = groups
            .entry(req.group_id.clone())
            .or_insert_with(|| Group::new(req.group_id.clone(), now_ms()));
        if group.state == GroupState::Dead {
            return all(E::CoordinatorNotAvailable.code());
        }
        if let Some(given) = &req.group_instance_id {
            let fenced = group
                .members
                .values()
                .any(|m| m.group_instance_id.as_ref() == Some(given) && m.id != req.member_id);
            if fenced {
                return all(E::FencedInstanceId.code());
            }
        }
        if !req.member_id.is_empty() && !group.members.contains_key(&req.member_id) {
            return all(E::UnknownMemberId.code());
        }
        if req.generation_id >= 0 && req.generation_id != group.generation_id {
            return all(E::IllegalGeneration.code());
        }
        let now = now_ms();
        let (codes, records) = offset_records(
            self.cfg.offset_metadata_max_bytes,
            &group.id,
            &req.partitions,
            now,
            None,
        );
        if records.is_empty() {
            return codes;
        }
        if let Some(store) = &self.store {
            if let Err(e) =
                store.append_transactional(&group.id, req.producer_id, req.producer_epoch, &records)
            {
                tracing::warn!(group = %group.id, producer_id = req.producer_id, "cannot write transactional offsets: {e}");
                return codes
                    .into_iter()
                    .map(|c| if c == 0 { E::NotCoordinator.code() } else { c })
                    .collect();
            }
        }
        let pending = group
            .pending_txn_offsets
            .entry(req.producer_id)
            .or_default();
        pending.producer_epoch = req.producer_epoch;
        pending
            .offsets
            .extend(records.into_iter().filter_map(StoreRecord::into_commit));
        codes
    }

    #[allow(clippy::type_complexity)]
    fn fetch(
        &self,
        group_id: &str,
        partitions: Option<&[(String, Vec<i32>)]>,
    ) -> Result<Vec<(String, i32, Option<CommittedOffset>)>, i16> {
        let groups = self.lock();
        let group = groups.get(group_id);
        Ok(match partitions {
            None => group
                .map(|g| {
                    g.offsets
                        .iter()
                        .map(|((t, p), v)| (t.clone(), *p, Some(v.clone())))
                        .collect()
                })
                .unwrap_or_default(),
            Some(wanted) => wanted
                .iter()
                .flat_map(|(topic, parts)| {
                    parts.iter().map(move |p| {
                        let v = group.and_then(|g| g.offsets.get(&(topic.clone(), *p)).cloned());
                        (topic.clone(), *p, v)
                    })
                })
                .collect(),
        })
    }

    fn expire_offsets(&self, now: i64) -> usize {
        let retention_ms = (self.cfg.offsets_retention_minutes as i64).saturating_mul(60_000);
        let mut groups = self.lock();
        let mut expired = 0;
        let mut forget = Vec::new();
        for group in groups.values_mut() {
            // Kafka (2.1+): offsets of a group with members never expire by retention; an empty
            // group's offsets expire `retention` after it became empty (or, for groups that
            // never used group management, after the commit). Explicit expiry always applies.
            let base_empty = (group.state == GroupState::Empty && group.protocol_type.is_some())
                .then_some(group.state_timestamp_ms);
            let gone: Vec<(String, i32)> = group
                .offsets
                .iter()
                .filter(|(_, v)| match v.expire_timestamp_ms {
                    Some(t) => now >= t,
                    None => match (group.state, base_empty) {
                        (GroupState::Empty, Some(base)) => now >= base.saturating_add(retention_ms),
                        (GroupState::Empty, None) => {
                            now >= v.commit_timestamp_ms.saturating_add(retention_ms)
                        }
                        _ => false,
                    },
                })
                .map(|(k, _)| k.clone())
                .collect();
            if !gone.is_empty() {
                let records: Vec<StoreRecord> = gone
                    .iter()
                    .map(|(t, p)| StoreRecord::Offset {
                        group: group.id.clone(),
                        topic: t.clone(),
                        partition: *p,
                        value: None,
                    })
                    .collect();
                if let Some(store) = &self.store {
                    if let Err(e) = store.append(&group.id, &records) {
                        tracing::warn!(group = %group.id, "cannot write offset tombstones: {e}");
                        continue;
                    }
                }
                for k in &gone {
                    group.offsets.remove(k);
                }
                expired += gone.len();
            }
            if group.is_disposable() {
                forget.push(group.id.clone());
            }
        }
        for id in forget {
            if let Some(store) = &self.store {
                let tombstone = StoreRecord::Group {
                    group: id.clone(),
                    value: None,
                };
                if let Err(e) = store.append(&id, &[tombstone]) {
                    tracing::warn!(group = %id, "cannot write group tombstone: {e}");
                    continue;
                }
            }
            groups.remove(&id);
        }
        expired
    }

    /// Writes the group's metadata (generation, members, assignments) to the log.
    fn store_group(&self, group: &mut Group) -> Result<(), GroupError> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        let protocol = group.protocol_name.clone().unwrap_or_default();
        let snap = GroupSnapshot {
            protocol_type: group.protocol_type.clone().unwrap_or_default(),
            generation_id: group.generation_id,
            protocol_name: group.protocol_name.clone(),
            leader_id: group.leader_id.clone(),
            state_timestamp_ms: group.state_timestamp_ms,
            members: group
                .members
                .values()
                .map(|m| MemberSnapshot {
                    member_id: m.id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: i32::try_from(m.rebalance_timeout_ms).unwrap_or(i32::MAX),
                    session_timeout_ms: i32::try_from(m.session_timeout_ms).unwrap_or(i32::MAX),
                    subscription: m.metadata_for(&protocol),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        };
        store.append(
            &group.id,
            &[StoreRecord::Group {
                group: group.id.clone(),
                value: Some(snap.clone()),
            }],
        )?;
        group.stored = Some(snap);
        Ok(())
    }

    /// Rewrites the live state of every `__consumer_offsets` partition that has grown enough,
    /// so old segments can go (see [`super::store`]).
    fn snapshot_if_due(&self, groups: &HashMap<String, Group>) {
        let Some(store) = &self.store else { return };
        for index in store.due_snapshots() {
            let mut live = Vec::new();
            let mut pending = Vec::new();
            for g in groups.values() {
                if store.partition_for(&g.id) != index {
                    continue;
                }
                for (producer_id, p) in &g.pending_txn_offsets {
                    pending.push(super::store::PendingTxnRecords {
                        producer_id: *producer_id,
                        producer_epoch: p.producer_epoch,
                        group: g.id.clone(),
                        records: p
                            .offsets
                            .iter()
                            .map(|((topic, partition), v)| StoreRecord::Offset {
                                group: g.id.clone(),
                                topic: topic.clone(),
                                partition: *partition,
                                value: Some(v.clone()),
                            })
                            .collect(),
                    });
                }
                if let Some(snap) = &g.stored {
                    live.push(StoreRecord::Group {
                        group: g.id.clone(),
                        value: Some(snap.clone()),
                    });
                }
                for ((topic, partition), v) in &g.offsets {
                    live.push(StoreRecord::Offset {
                        group: g.id.clone(),
                        topic: topic.clone(),
                        partition: *partition,
                        value: Some(v.clone()),
                    });
                }
            }
            if let Err(e) = store.snapshot(index, &live, &pending) {
                tracing::warn!("cannot snapshot the consumer offsets log: {e}");
            }
        }
    }

    // ----- Timers ----------------------------------------------------------------------

    /// Pushes the member's expiry to `timeout` from now, starting its expiry task if needed.
    fn schedule_member_expiry(
        self: &Arc<Self>,
        group: &mut Group,
        member_id: &str,
        timeout: Duration,
    ) {
        let Some(member) = group.members.get_mut(member_id) else {
            return;
        };
        member.deadline = Instant::now() + timeout;
        if member
            .timer_wakes_at
            .is_some_and(|wakes| wakes <= member.deadline)
        {
            // The running task wakes up in time and re-reads the deadline.
            return;
        }
        member.timer_id += 1;
        member.timer_wakes_at = Some(member.deadline);
        let weak = Arc::downgrade(self);
        let group_id = group.id.clone();
        let member_id = member_id.to_owned();
        tokio::spawn(member_expiry_task(
            weak,
            group_id,
            member_id,
            member.timer_id,
            member.deadline,
        ));
    }

    fn schedule_rebalance_timer(self: &Arc<Self>, group: &Group, delay: Duration) {
        let epoch = group.rebalance_epoch;
        let weak = Arc::downgrade(self);
        let group_id = group.id.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let Some(inner) = weak.upgrade() else { return };
            let mut groups = inner.lock();
            if let Some(group) = groups.get_mut(&group_id) {
                if group.rebalance_epoch == epoch && group.state == GroupState::PreparingRebalance {
                    inner.on_rebalance_timer(group);
                }
            }
        });
    }

    fn schedule_sync_expiry(self: &Arc<Self>, group: &Group, delay: Duration) {
        let epoch = group.sync_epoch;
        let generation = group.generation_id;
        let weak = Arc::downgrade(self);
        let group_id = group.id.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let Some(inner) = weak.upgrade() else { return };
            let mut groups = inner.lock();
            let Some(group) = groups.get_mut(&group_id) else {
                return;
            };
            if group.sync_epoch != epoch
                || group.generation_id != generation
                || !matches!(
                    group.state,
                    GroupState::CompletingRebalance | GroupState::Stable
                )
                || group.pending_sync.is_empty()
            {
                return;
            }
            let missing: Vec<String> = group.pending_sync.drain().collect();
            for id in &missing {
                tracing::info!(group = %group.id, member = %id, "member did not sync in time; removed");
                if let Some(mut m) = group.remove_member(id) {
                    if let Some(tx) = m.sync_waiter.take() {
                        let _ = tx.send(SyncOutcome::error(E::UnknownMemberId.code()));
                    }
                }
            }
            inner.prepare_rebalance(group);
        });
    }

    fn schedule_pending_member_expiry(
        self: &Arc<Self>,
        group: &Group,
        member_id: &str,
        delay: Duration,
    ) {
        let weak = Arc::downgrade(self);
        let group_id = group.id.clone();
        let member_id = member_id.to_owned();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let Some(inner) = weak.upgrade() else { return };
            let mut groups = inner.lock();
            if let Some(group) = groups.get_mut(&group_id) {
                if group.pending_members.remove(&member_id)
                    && group.state == GroupState::PreparingRebalance
                {
                    inner.try_complete_join(group);
                }
            }
        });
    }
}

/// Watches one member's deadline until it expires (then removes it) or the member is gone.
async fn member_expiry_task(
    weak: Weak<Inner>,
    group_id: String,
    member_id: String,
    timer_id: u64,
    first_deadline: Instant,
) {
    let mut deadline = first_deadline;
    loop {
        tokio::time::sleep_until(deadline).await;
        let Some(inner) = weak.upgrade() else { return };
        let mut groups = inner.lock();
        let Some(group) = groups.get_mut(&group_id) else {
            return;
        };
        let Some(member) = group.members.get_mut(&member_id) else {
            return;
        };
        if member.timer_id != timer_id {
            return;
        }
        let now = Instant::now();
        if now < member.deadline {
            deadline = member.deadline;
            member.timer_wakes_at = Some(deadline);
            continue;
        }
        if !member.is_new && (member.awaiting_join() || member.awaiting_sync()) {
            // Waiting in a rebalance counts as alive; the rebalance has its own timeout.
            member.deadline = now + Duration::from_millis(member.session_timeout_ms);
            deadline = member.deadline;
            member.timer_wakes_at = Some(deadline);
            continue;
        }
        member.timer_wakes_at = None;
        tracing::info!(group = %group_id, member = %member_id, "member session expired");
        inner.remove_member_and_update_group(group, &member_id);
        return;
    }
}

/// The JoinGroup answer for a member of the current generation (after a lost response).
fn current_generation(group: &Group, member_id: &str, is_leader: bool) -> JoinOutcome {
    JoinOutcome {
        error_code: 0,
        generation_id: group.generation_id,
        protocol_type: group.protocol_type.clone(),
        protocol_name: group.protocol_name.clone(),
        leader_id: group.leader_id.clone().unwrap_or_default(),
        member_id: member_id.to_owned(),
        members: if is_leader {
            group.member_metadata()
        } else {
            Vec::new()
        },
    }
}

/// Clears assignments and answers waiting SyncGroups with `code`.
fn reset_and_propagate_assignment_error(group: &mut Group, code: i16) {
    for m in group.members.values_mut() {
        m.assignment = Bytes::new();
        if let Some(tx) = m.sync_waiter.take() {
            let _ = tx.send(SyncOutcome::error(code));
        }
    }
}

/// Ids of a group's members (test helper).
#[cfg(test)]
fn member_ids(c: &GroupCoordinator, group: &str) -> std::collections::HashSet<String> {
    c.with_group(group, |g| g.members.keys().cloned().collect())
        .unwrap_or_default()
}

#[cfg(test)]
#[path = "coordinator_tests.rs"]
mod tests;
