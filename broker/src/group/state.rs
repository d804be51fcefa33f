//! The data of one consumer group: its state, generation, members and committed offsets.
//!
//! This module holds plain data and the small rules that only look at one group (protocol
//! support and selection, leader hand-over when a member goes, generation bumps). Everything that
//! involves time or answering waiting requests (rebalance timers, session expiry, deferred
//! JoinGroup/SyncGroup responses) lives in [`super::coordinator`], which owns the lock around
//! these structures. Keeping them apart lets the rules be read, and tested, without tokio.

use std::collections::{BTreeMap, HashSet};

use bytes::Bytes;
use indexmap::IndexMap;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::records::GroupSnapshot;

/// The classic group protocol's states, spelled as Kafka spells them in DescribeGroups and
/// ListGroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GroupState {
    /// No members; the group may still hold committed offsets.
    Empty,
    /// A rebalance started; JoinGroup responses are held until every known member rejoins or
    /// the rebalance timeout expires.
    PreparingRebalance,
    /// JoinGroup responses were sent; waiting for the leader's SyncGroup with the assignment.
    CompletingRebalance,
    /// Every member has its assignment.
    Stable,
    /// The group is gone (removed from the coordinator). Never stored in the group map; used as
    /// the answer for unknown groups in DescribeGroups.
    Dead,
}

impl GroupState {
    /// The state's name as Kafka spells it on the wire.
    pub(crate) fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// One protocol a member supports (for consumers: an assignor such as `range`), with the
/// member's opaque metadata for it (its subscription).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Protocol {
    /// Protocol name.
    pub(crate) name: String,
    /// Client-defined metadata, passed to the leader untouched.
    pub(crate) metadata: Bytes,
}

/// The answer to a JoinGroup request, sent immediately or when the rebalance completes.
#[derive(Debug, Clone)]
pub(crate) struct JoinOutcome {
    /// Kafka error code (0 = none).
    pub(crate) error_code: i16,
    /// The generation the member joined; -1 on error.
    pub(crate) generation_id: i32,
    /// The group's protocol type (JoinGroup v7+).
    pub(crate) protocol_type: Option<String>,
    /// The chosen protocol; `None` on error.
    pub(crate) protocol_name: Option<String>,
    /// Member id of the leader ("" on error).
    pub(crate) leader_id: String,
    /// The member id the client must use from now on.
    pub(crate) member_id: String,
    /// All members with their metadata for the chosen protocol: only for the leader.
    pub(crate) members: Vec<JoinedMember>,
}

impl JoinOutcome {
    /// An error answer for `member_id`.
    pub(crate) fn error(member_id: String, error_code: i16) -> Self {
        JoinOutcome {
            error_code,
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader_id: String::new(),
            member_id,
            members: Vec::new(),
        }
    }
}

/// A member as the leader sees it in its JoinGroup response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JoinedMember {
    /// Member id.
    pub(crate) member_id: String,
    /// Static membership id, if the member gave one.
    pub(crate) group_instance_id: Option<String>,
    /// The member's metadata for the chosen protocol.
    pub(crate) metadata: Bytes,
}

/// The answer to a SyncGroup request.
#[derive(Debug, Clone)]
pub(crate) struct SyncOutcome {
    /// Kafka error code (0 = none).
    pub(crate) error_code: i16,
    /// The group's protocol type (SyncGroup v5+).
    pub(crate) protocol_type: Option<String>,
    /// The group's protocol name (SyncGroup v5+).
    pub(crate) protocol_name: Option<String>,
    /// This member's assignment, as the leader sent it (empty when it sent none).
    pub(crate) assignment: Bytes,
}

impl SyncOutcome {
    /// An error answer.
    pub(crate) fn error(error_code: i16) -> Self {
        SyncOutcome {
            error_code,
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

/// A member of a group.
#[derive(Debug)]
pub(crate) struct Member {
    /// Member id: `"{client_id}-{uuid}"`, as Kafka generates it.
    pub(crate) id: String,
    /// Static membership id (JoinGroup v5+), if given.
    pub(crate) group_instance_id: Option<String>,
    /// Client id from the request header of its JoinGroup.
    pub(crate) client_id: String,
    /// The peer address the member joined from (DescribeGroups shows it).
    pub(crate) client_host: String,
    /// Session timeout: no heartbeat for this long removes the member (ms).
    pub(crate) session_timeout_ms: u64,
    /// How long a rebalance waits for this member to rejoin (ms).
    pub(crate) rebalance_timeout_ms: u64,
    /// Supported protocols in the member's order of preference.
    pub(crate) protocols: Vec<Protocol>,
    /// The assignment from the leader's last SyncGroup.
    pub(crate) assignment: Bytes,
    /// A JoinGroup response is owed to this member (it is waiting in the rebalance).
    pub(crate) join_waiter: Option<oneshot::Sender<JoinOutcome>>,
    /// A SyncGroup response is owed to this member (it waits for the leader's assignment).
    pub(crate) sync_waiter: Option<oneshot::Sender<SyncOutcome>>,
    /// Joined in the current rebalance and has not received a JoinGroup answer yet: it cannot
    /// heartbeat, so it gets a long join timeout instead of its session timeout.
    pub(crate) is_new: bool,
    /// When the member expires unless it heartbeats (or is waiting in a rebalance).
    pub(crate) deadline: Instant,
    /// The expiry task currently in charge of this member (older tasks exit when they see a
    /// newer id).
    pub(crate) timer_id: u64,
    /// When that task will next wake up; `None` when no task runs. A deadline moved earlier
    /// than this needs a new task.
    pub(crate) timer_wakes_at: Option<Instant>,
}

impl Member {
    /// Whether the member rejoined with exactly the protocols it already had.
    pub(crate) fn matches(&self, protocols: &[Protocol]) -> bool {
        self.protocols == protocols
    }

    /// The member's metadata for `protocol` (empty if it does not support it).
    pub(crate) fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|p| p.name == protocol)
            .map(|p| p.metadata.clone())
            .unwrap_or_default()
    }

    /// Whether a JoinGroup answer is owed to a client that is still listening.
    pub(crate) fn awaiting_join(&self) -> bool {
        self.join_waiter.as_ref().is_some_and(|tx| !tx.is_closed())
    }

    /// Whether a SyncGroup answer is owed to a client that is still listening.
    pub(crate) fn awaiting_sync(&self) -> bool {
        self.sync_waiter.as_ref().is_some_and(|tx| !tx.is_closed())
    }
}

/// One committed offset of a group for one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CommittedOffset {
    /// The committed offset (the next record the group will read).
    pub(crate) offset: i64,
    /// Leader epoch of the committed record (-1 if unknown).
    pub(crate) leader_epoch: i32,
    /// Client metadata string.
    pub(crate) metadata: String,
    /// When the commit was made (ms since the epoch).
    pub(crate) commit_timestamp_ms: i64,
    /// Explicit expiry from OffsetCommit v2-v4 `retention_time_ms` (ms since the epoch).
    pub(crate) expire_timestamp_ms: Option<i64>,
}

/// A consumer group.
#[derive(Debug)]
pub(crate) struct Group {
    /// Group id.
    pub(crate) id: String,
    /// Current state.
    pub(crate) state: GroupState,
    /// When `state` was entered (ms since the epoch); offsets of an empty group expire
    /// relative to it.
    pub(crate) state_timestamp_ms: i64,
    /// Generation: bumped each time a rebalance completes.
    pub(crate) generation_id: i32,
    /// Protocol type of the members ("consumer"), set by the first member.
    pub(crate) protocol_type: Option<String>,
    /// The protocol chosen for the current generation.
    pub(crate) protocol_name: Option<String>,
    /// Member id of the leader.
    pub(crate) leader_id: Option<String>,
    /// Members in join order (the order decides the next leader when the leader goes).
    pub(crate) members: IndexMap<String, Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED that have not rejoined yet.
    pub(crate) pending_members: HashSet<String>,
    /// Members of the current generation that have not sent SyncGroup yet.
    pub(crate) pending_sync: HashSet<String>,
    /// A member joined during the initial delayed join: the delay is extended.
    pub(crate) new_member_added: bool,
    /// While the initial (delayed) join of an empty group runs: how much of the rebalance
    /// timeout is left to extend the delay by (ms).
    pub(crate) initial_delay_remaining_ms: Option<u64>,
    /// Bumped whenever a rebalance timer is armed or the join completes: a timer whose epoch
    /// is no longer current does nothing.
    pub(crate) rebalance_epoch: u64,
    /// Same as `rebalance_epoch`, for the timer that removes members that never send SyncGroup.
    pub(crate) sync_epoch: u64,
    /// Committed offsets by (topic, partition).
    pub(crate) offsets: BTreeMap<(String, i32), CommittedOffset>,
    /// The group metadata last written to the offsets log (rewritten by snapshots).
    pub(crate) stored: Option<GroupSnapshot>,
    /// Offsets committed inside open transactions (TxnOffsetCommit), by producer id: invisible
    /// to OffsetFetch until the transaction's COMMIT marker makes them committed offsets; an
    /// ABORT marker drops them.
    pub(crate) pending_txn_offsets: BTreeMap<i64, PendingTxnOffsets>,
}

/// Offsets one transactional producer committed to a group in its open transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PendingTxnOffsets {
    /// The producer epoch of the last TxnOffsetCommit.
    pub(crate) producer_epoch: i16,
    /// The offsets by (topic, partition).
    pub(crate) offsets: BTreeMap<(String, i32), CommittedOffset>,
}

impl Group {
    /// A new empty group.
    pub(crate) fn new(id: String, now_ms: i64) -> Self {
        Group {
            id,
            state: GroupState::Empty,
            state_timestamp_ms: now_ms,
            generation_id: 0,
            protocol_type: None,
            protocol_name: None,
            leader_id: None,
            members: IndexMap::new(),
            pending_members: HashSet::new(),
            pending_sync: HashSet::new(),
            new_member_added: false,
            initial_delay_remaining_ms: None,
            rebalance_epoch: 0,
            sync_epoch: 0,
            offsets: BTreeMap::new(),
            stored: None,
            pending_txn_offsets: BTreeMap::new(),
        }
    }

    /// Moves to `state`, recording when.
    pub(crate) fn transition(&mut self, state: GroupState, now_ms: i64) {
        self.state = state;
        self.state_timestamp_ms = now_ms;
    }

    /// Whether a member with this protocol type and protocols may join: the first member sets
    /// the type; later ones must share it and support at least one protocol every member
    /// supports.
    pub(crate) fn supports_protocols(&self, protocol_type: &str, protocols: &[Protocol]) -> bool {
        if self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols.iter().any(|p| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|q| q.name == p.name))
            })
    }

    /// The protocol for the next generation: among those every member supports, the one most
    /// members list first (each member votes for its most preferred candidate). Ties go to the
    /// leader's preference. `None` when there are no members or no common protocol.
    pub(crate) fn select_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let leader = self
            .leader_id
            .as_ref()
            .and_then(|id| self.members.get(id))
            .unwrap_or(first);
        let candidates: Vec<&str> = leader
            .protocols
            .iter()
            .map(|p| p.name.as_str())
            .filter(|name| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|q| q.name == *name))
            })
            .collect();
        let mut votes = vec![0usize; candidates.len()];
        for member in self.members.values() {
            if let Some(choice) = member
                .protocols
                .iter()
                .find_map(|p| candidates.iter().position(|c| *c == p.name))
            {
                votes[choice] += 1;
            }
        }
        let mut best: Option<(usize, usize)> = None;
        for (i, v) in votes.iter().enumerate() {
            if best.is_none_or(|(_, bv)| *v > bv) {
                best = Some((i, *v));
            }
        }
        best.map(|(i, _)| candidates[i].to_owned())
    }

    /// The largest rebalance timeout among the members (ms); 0 without members.
    pub(crate) fn rebalance_timeout_ms(&self) -> u64 {
        self.members
            .values()
            .map(|m| m.rebalance_timeout_ms)
            .max()
            .unwrap_or(0)
    }

    /// Whether every member has rejoined and no handed-out member id is still outstanding.
    pub(crate) fn all_members_joined(&self) -> bool {
        self.pending_members.is_empty() && self.members.values().all(|m| m.join_waiter.is_some())
    }

    /// Removes a member, handing leadership to the oldest remaining member if it led.
    pub(crate) fn remove_member(&mut self, member_id: &str) -> Option<Member> {
        let member = self.members.shift_remove(member_id)?;
        self.pending_sync.remove(member_id);
        if self.leader_id.as_deref() == Some(member_id) {
            self.leader_id = self.members.keys().next().cloned();
        }
        Some(member)
    }

    /// Makes sure the leader is a member that rejoined in this rebalance. False when no member
    /// rejoined (or there are none).
    pub(crate) fn elect_joined_leader(&mut self) -> bool {
        let Some(leader) = self.leader_id.as_ref().and_then(|id| self.members.get(id)) else {
            return false;
        };
        if leader.join_waiter.is_some() {
            return true;
        }
        match self.members.values().find(|m| m.join_waiter.is_some()) {
            Some(m) => {
                self.leader_id = Some(m.id.clone());
                true
            }
            None => false,
        }
    }

    /// Starts the next generation: CompletingRebalance with the selected protocol, or Empty.
    pub(crate) fn init_next_generation(&mut self, now_ms: i64) {
        self.generation_id = self.generation_id.wrapping_add(1);
        if self.members.is_empty() {
            self.protocol_name = None;
            self.transition(GroupState::Empty, now_ms);
        } else {
            self.protocol_name = self.select_protocol();
            self.transition(GroupState::CompletingRebalance, now_ms);
        }
        self.pending_sync.clear();
    }

    /// All members with their metadata for the current protocol (the leader's view).
    pub(crate) fn member_metadata(&self) -> Vec<JoinedMember> {
        let protocol = self.protocol_name.as_deref().unwrap_or("");
        self.members
            .values()
            .map(|m| JoinedMember {
                member_id: m.id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                metadata: m.metadata_for(protocol),
            })
            .collect()
    }

    /// The member with this static instance id.
    pub(crate) fn member_by_instance(&self, instance_id: &str) -> Option<&Member> {
        self.members
            .values()
            .find(|m| m.group_instance_id.as_deref() == Some(instance_id))
    }

    /// The topics the current members of a `consumer` group subscribe to (decoded from their
    /// subscriptions); empty for an empty group or another protocol type.
    pub(crate) fn subscribed_topics(&self) -> std::collections::BTreeSet<String> {
        use kafka_protocol::messages::ConsumerProtocolSubscription;
        use kafka_protocol::protocol::Decodable;
        if self.protocol_type.as_deref() != Some("consumer") {
            return Default::default();
        }
        let protocol = self.protocol_name.clone().unwrap_or_default();
        let mut topics = std::collections::BTreeSet::new();
        for m in self.members.values() {
            let mut meta = m.metadata_for(&protocol);
            if meta.len() < 2 {
                continue;
            }
            let version = i16::from_be_bytes([meta[0], meta[1]]);
            let _ = bytes::Buf::get_i16(&mut meta);
            // Versions above those the codec knows are read as its newest (Kafka's rule: new
            // versions only add fields at the end).
            if let Ok(sub) = ConsumerProtocolSubscription::decode(&mut meta, version.clamp(0, 3)) {
                topics.extend(sub.topics.iter().map(|t| t.to_string()));
            }
        }
        topics
    }

    /// Whether the group can be forgotten: no members, nothing committed.
    pub(crate) fn is_disposable(&self) -> bool {
        self.state == GroupState::Empty
            && self.members.is_empty()
            && self.offsets.is_empty()
            && self.pending_txn_offsets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, protocols: &[&str]) -> Member {
        Member {
            id: id.to_owned(),
            group_instance_id: None,
            client_id: "c".to_owned(),
            client_host: "127.0.0.1".to_owned(),
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 30_000,
            protocols: protocols
                .iter()
                .map(|n| Protocol {
                    name: (*n).to_owned(),
                    metadata: Bytes::from(format!("{id}:{n}")),
                })
                .collect(),
            assignment: Bytes::new(),
            join_waiter: None,
            sync_waiter: None,
            is_new: false,
            deadline: Instant::now(),
            timer_id: 0,
            timer_wakes_at: None,
        }
    }

    fn group_of(members: Vec<Member>) -> Group {
        let mut g = Group::new("g".to_owned(), 0);
        g.protocol_type = Some("consumer".to_owned());
        g.leader_id = members.first().map(|m| m.id.clone());
        for m in members {
            g.members.insert(m.id.clone(), m);
        }
        g
    }

    #[test]
    fn selects_the_protocol_most_members_prefer_among_common_ones() {
        let g = group_of(vec![
            member("a", &["range", "roundrobin"]),
            member("b", &["roundrobin", "range"]),
            member("c", &["roundrobin", "range", "sticky"]),
        ]);
        assert_eq!(g.select_protocol().as_deref(), Some("roundrobin"));
        let g = group_of(vec![
            member("a", &["sticky", "range"]),
            member("b", &["range"]),
        ]);
        assert_eq!(g.select_protocol().as_deref(), Some("range"));
    }

    #[test]
    fn protocol_support_requires_type_and_a_common_protocol() {
        let g = group_of(vec![member("a", &["range"])]);
        let p = |n: &str| Protocol {
            name: n.to_owned(),
            metadata: Bytes::new(),
        };
        assert!(g.supports_protocols("consumer", &[p("range")]));
        assert!(!g.supports_protocols("consumer", &[p("roundrobin")]));
        assert!(!g.supports_protocols("connect", &[p("range")]));
        let empty = Group::new("e".to_owned(), 0);
        assert!(empty.supports_protocols("x", &[p("y")]));
        assert!(!empty.supports_protocols("", &[p("y")]));
        assert!(!empty.supports_protocols("x", &[]));
    }

    #[test]
    fn removing_the_leader_hands_leadership_to_the_oldest_member() {
        let mut g = group_of(vec![
            member("a", &["range"]),
            member("b", &["range"]),
            member("c", &["range"]),
        ]);
        g.remove_member("a");
        assert_eq!(g.leader_id.as_deref(), Some("b"));
        g.remove_member("c");
        assert_eq!(g.leader_id.as_deref(), Some("b"));
        g.remove_member("b");
        assert_eq!(g.leader_id, None);
    }

    #[test]
    fn next_generation_of_a_group_without_members_is_empty() {
        let mut g = Group::new("g".to_owned(), 0);
        g.init_next_generation(5);
        assert_eq!(g.state, GroupState::Empty);
        assert_eq!(g.generation_id, 1);
        assert_eq!(g.state_timestamp_ms, 5);
    }
}
