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

mod membership;
mod offsets;

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
    /// Where commits and group metadata are written: the `__consumer_offsets` partitions led
    /// here.
    store: OffsetStore,
    /// The `__consumer_offsets` partitions whose groups are loaded here, i.e. the
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
    /// A coordinator backed by `store`; groups come as its partitions are loaded.
    pub(crate) fn with_store(cfg: GroupConfig, store: OffsetStore) -> Self {
        GroupCoordinator {
            inner: Arc::new(Inner {
                cfg,
                groups: Mutex::new(HashMap::new()),
                store,
                coordinating: Mutex::default(),
            }),
        }
    }

    /// Adds replayed groups to the live ones. Members restored from the log keep their
    /// session: they expire unless they heartbeat, exactly like after a coordinator move in
    /// Kafka.
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

    /// Whether this broker answers for `group_id` now: once the group's `__consumer_offsets`
    /// partition is loaded here (always for the unit tests' in-memory coordinator).
    pub(crate) fn is_coordinating(&self, group_id: &str) -> bool {
        self.is_partition_loaded(self.offsets_partition_for(group_id))
    }

    /// Whether `__consumer_offsets` partition `index` is loaded here (always on a single
    /// broker): a transaction marker written to it reaches its groups' pending offsets.
    pub(crate) fn is_partition_loaded(&self, index: i32) -> bool {
        self.inner.coordinating().contains(&index)
    }

    /// This broker has become the leader of `__consumer_offsets` partition
    /// `index`, so it coordinates that partition's groups from now on: their state is replayed
    /// from the (replicated) partition, replacing whatever this broker remembered of them.
    pub(crate) fn load_partition(
        &self,
        index: i32,
        partition: Arc<crate::partition::Partition>,
    ) -> Result<usize, GroupError> {
        let store = &self.inner.store;
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

    /// Another broker leads `__consumer_offsets` partition `index` now; its
    /// groups are forgotten here (their members are told NOT_COORDINATOR and look it up again).
    pub(crate) fn unload_partition(&self, index: i32) {
        let store = &self.inner.store;
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
        self.inner.store.append_marker(
            index,
            producer_id,
            producer_epoch,
            commit,
            coordinator_epoch,
        )?;
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
        if let Err(e) = self.inner.store.append(group_id, &records) {
            tracing::warn!(
                group = group_id,
                "cannot write the deleted group's tombstones: {e}"
            );
            return E::NotCoordinator.code();
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
        if let Err(e) = self.inner.store.append(group_id, &records) {
            tracing::warn!(group = group_id, "cannot write offset tombstones: {e}");
            return (E::NotCoordinator.code(), Vec::new());
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
    /// The `__consumer_offsets` partition of `group_id`.
    fn partition_of(&self, group_id: &str) -> i32 {
        self.store.partition_for(group_id)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Group>> {
        // Every mutation keeps the map consistent between statements that can panic, so a
        // poisoned lock is still usable.
        self.groups.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn coordinating(&self) -> MutexGuard<'_, HashSet<i32>> {
        self.coordinating.lock().unwrap_or_else(|e| e.into_inner())
    }

    // ----- The store -------------------------------------------------------------------

    /// Writes the group's metadata (generation, members, assignments) to the log.
    fn store_group(&self, group: &mut Group) -> Result<(), GroupError> {
        let store = &self.store;
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
}

/// Ids of a group's members (test helper).
#[cfg(test)]
fn member_ids(c: &GroupCoordinator, group: &str) -> std::collections::HashSet<String> {
    c.with_group(group, |g| g.members.keys().cloned().collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
