//! The controller: runs on every node, acts only on the Raft leader.
//!
//! One task processes requests and liveness ticks one at a time: each decision reads the latest
//! applied image, turns it into records, and awaits their Raft commit before the next decision, so
//! decisions never race. Before deciding, a new leader waits until it has applied an entry of its
//! own term (openraft commits a blank entry on election), which guarantees its image contains
//! every committed record.
//!
//! Fencing (why it works as it does): brokers do not heartbeat the controller as in Kafka; the
//! leader already talks to every voter every 100 ms. A broker is fenced when
//! - a connection to it was refused in the last [`REFUSED_RECENT`] (its port is closed: the
//!   process died; this is what makes fail-over after `kill -9` fast), or
//! - no RPC to it succeeded for `session_timeout` (a paused or partitioned broker), or
//! - it answered with an incarnation other than its registered one (it restarted faster than we
//!   noticed; it will register again).
//!
//! A fenced broker is unfenced when it answers again with its registered incarnation, unless it
//! fenced itself with a controlled shutdown. On becoming leader, every peer counts as seen now, so
//! the silence of a previous term does not fence anybody.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::error::{ClientWriteError, RaftError};
use openraft::{Raft, ServerState};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

use super::image::{BrokerInfo, ClusterImage, MetadataRecord, PartitionState, TopicInfo};
use super::network::Health;
use super::placement::{self, PlacementError};
use super::{
    AlterPartition, ClusterConfig, ClusterError, CreateTopicSpec, LeaderRebalance, MetadataBatch,
    TypeConfig,
};

/// A request and where to send its answer.
pub(crate) type Job = (
    ControllerRequest,
    oneshot::Sender<Result<ControllerReply, ClusterError>>,
);

/// A refused connection this recent fences a broker.
const REFUSED_RECENT: Duration = Duration::from_secs(2);
/// An unfence needs an RPC success this recent.
const ALIVE_RECENT: Duration = Duration::from_millis(500);
/// How often liveness is checked.
const TICK: Duration = Duration::from_millis(100);
/// How long a request waits for a new leader to catch up before answering NotController.
const READY_WAIT: Duration = Duration::from_secs(2);

/// Requests handled by the controller.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) enum ControllerRequest {
    /// A broker (re)starting.
    Register {
        id: i32,
        host: String,
        port: u16,
        rack: Option<String>,
        incarnation: Uuid,
    },
    /// Create a topic.
    CreateTopic(CreateTopicSpec),
    /// Delete a topic.
    DeleteTopic { name: String },
    /// Grow a topic to `total` partitions.
    CreatePartitions { name: String, total: usize },
    /// Replace a topic's config overrides (already checked by the broker that took the request).
    AlterTopicConfigs {
        name: String,
        configs: BTreeMap<String, String>,
    },
    /// ISR change from a partition leader.
    AlterPartition(AlterPartition),
    /// A broker leaving on purpose.
    ControlledShutdown { id: i32, incarnation: Uuid },
}

/// Successful answers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) enum ControllerReply {
    /// Done, nothing to return.
    Done,
    /// The topic as created or grown.
    Topic(TopicInfo),
    /// The partition as changed.
    Partition(PartitionState),
}

/// The controller task's state.
pub(crate) struct Controller {
    node_id: i32,
    incarnation: Uuid,
    raft: Raft<TypeConfig>,
    image_rx: watch::Receiver<Arc<ClusterImage>>,
    health: Health,
    session_timeout: Duration,
    unclean: bool,
    /// Automatic preferred-leader rebalancing, if on.
    leader_rebalance: Option<LeaderRebalance>,
    /// When the leader imbalance is checked next.
    next_rebalance_check: Instant,
    /// Term in which this node last became leader (liveness reset once per term).
    leader_term: Option<u64>,
    /// Brokers that did a controlled shutdown, by incarnation: not unfenced by liveness.
    shut_down: BTreeMap<i32, Uuid>,
}

impl Controller {
    /// A controller for node `node_id`.
    pub(crate) fn new(
        cfg: &ClusterConfig,
        incarnation: Uuid,
        raft: Raft<TypeConfig>,
        image_rx: watch::Receiver<Arc<ClusterImage>>,
        health: Health,
    ) -> Controller {
        let first_check = cfg.leader_rebalance.map_or(Duration::ZERO, |r| r.interval);
        Controller {
            node_id: cfg.node_id,
            incarnation,
            raft,
            image_rx,
            health,
            session_timeout: cfg.session_timeout,
            unclean: cfg.unclean_leader_election,
            leader_rebalance: cfg.leader_rebalance,
            next_rebalance_check: Instant::now() + first_check,
            leader_term: None,
            shut_down: BTreeMap::new(),
        }
    }

    /// Serves requests and ticks until the request channel closes.
    pub(crate) async fn run(mut self, mut rx: mpsc::Receiver<Job>) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Metrics change when this node's role changes: check at once instead of at the next tick.
        let mut metrics = self.raft.metrics();
        loop {
            tokio::select! {
                changed = metrics.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let m = metrics.borrow_and_update().clone();
                    if m.state == ServerState::Leader && self.leader_term != Some(m.current_term) {
                        if let Err(e) = self.tick().await {
                            tracing::warn!(node = self.node_id, "controller liveness check: {e}");
                        }
                    }
                }
                job = rx.recv() => {
                    let Some((req, reply)) = job else { return };
                    let res = self.handle(req).await;
                    let _ = reply.send(res);
                }
                _ = tick.tick() => {
                    if let Err(e) = self.tick().await {
                        tracing::warn!(node = self.node_id, "controller liveness check: {e}");
                    }
                }
            }
        }
    }

    /// Ok when this node is leader and has applied everything committed before its term.
    fn ready_now(&mut self) -> Result<bool, ClusterError> {
        let m = self.raft.metrics().borrow().clone();
        if m.state != ServerState::Leader || m.current_leader != Some(self.node_id as u64) {
            self.leader_term = None;
            return Err(ClusterError::NotController {
                node: self.node_id,
                leader: m.current_leader.map(|l| l as i32),
            });
        }
        let caught_up = m
            .last_applied
            .is_some_and(|l| l.leader_id.term == m.current_term);
        if caught_up && self.leader_term != Some(m.current_term) {
            self.leader_term = Some(m.current_term);
            let ids: Vec<i32> = self.image_rx.borrow().brokers.keys().copied().collect();
            self.health.reset(ids);
            tracing::info!(
                node = self.node_id,
                term = m.current_term,
                "became controller"
            );
        }
        Ok(caught_up)
    }

    async fn ready(&mut self) -> Result<(), ClusterError> {
        let until = Instant::now() + READY_WAIT;
        loop {
            if self.ready_now()? {
                return Ok(());
            }
            if Instant::now() >= until {
                return Err(ClusterError::NotController {
                    node: self.node_id,
                    leader: None,
                });
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn image(&self) -> Arc<ClusterImage> {
        self.image_rx.borrow().clone()
    }

    async fn write(&mut self, records: Vec<MetadataRecord>) -> Result<(), ClusterError> {
        if records.is_empty() {
            return Ok(());
        }
        match self.raft.client_write(MetadataBatch(records)).await {
            Ok(_) => Ok(()),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                self.leader_term = None;
                Err(ClusterError::NotController {
                    node: self.node_id,
                    leader: f.leader_id.map(|l| l as i32),
                })
            }
            Err(e) => Err(ClusterError::Raft(format!("writing metadata records: {e}"))),
        }
    }

    async fn handle(&mut self, req: ControllerRequest) -> Result<ControllerReply, ClusterError> {
        self.ready().await?;
        let image = self.image();
        match req {
            ControllerRequest::Register {
                id,
                host,
                port,
                rack,
                incarnation,
            } => {
                let records = register_records(
                    &image,
                    BrokerInfo {
                        id,
                        host,
                        port,
                        rack,
                        incarnation,
                        fenced: false,
                    },
                    self.unclean,
                );
                if self.shut_down.get(&id).is_some_and(|i| *i != incarnation) {
                    self.shut_down.remove(&id);
                }
                self.write(records).await?;
                Ok(ControllerReply::Done)
            }
            ControllerRequest::CreateTopic(spec) => {
                let topic = create_topic(&image, &spec)?;
                if !spec.validate_only {
                    self.write(vec![MetadataRecord::CreateTopic(topic.clone())])
                        .await?;
                }
                Ok(ControllerReply::Topic(topic))
            }
            ControllerRequest::DeleteTopic { name } => {
                if !image.topics.contains_key(&name) {
                    return Err(ClusterError::UnknownTopicOrPartition(name));
                }
                self.write(vec![MetadataRecord::DeleteTopic { name }])
                    .await?;
                Ok(ControllerReply::Done)
            }
            ControllerRequest::CreatePartitions { name, total } => {
                let record = add_partitions(&image, &name, total)?;
                let mut next = (*image).clone();
                next.apply(&record);
                self.write(vec![record]).await?;
                Ok(ControllerReply::Topic(next.topics[&name].clone()))
            }
            ControllerRequest::AlterTopicConfigs { name, configs } => {
                if !image.topics.contains_key(&name) {
                    return Err(ClusterError::UnknownTopicOrPartition(name));
                }
                self.write(vec![MetadataRecord::TopicConfigs {
                    topic: name,
                    configs,
                }])
                .await?;
                Ok(ControllerReply::Done)
            }
            ControllerRequest::AlterPartition(req) => {
                let state = alter_partition(&image, &req)?;
                let record = MetadataRecord::PartitionChange {
                    topic: req.topic.clone(),
                    partition: req.partition,
                    state: state.clone(),
                };
                self.write(vec![record]).await?;
                Ok(ControllerReply::Partition(state))
            }
            ControllerRequest::ControlledShutdown { id, incarnation } => {
                if !image.brokers.contains_key(&id) {
                    return Err(ClusterError::Config(format!(
                        "controlled shutdown of unregistered broker {id}"
                    )));
                }
                self.shut_down.insert(id, incarnation);
                let records = image.fence_records(id, false);
                self.write(records).await?;
                Ok(ControllerReply::Done)
            }
        }
    }

    /// Fences dead brokers and unfences returning ones (one broker per write).
    async fn tick(&mut self) -> Result<(), ClusterError> {
        match self.ready_now() {
            Ok(true) => {}
            Ok(false) | Err(_) => return Ok(()),
        }
        let image = self.image();
        let now = Instant::now();
        for b in image.brokers.values() {
            let records = if b.id == self.node_id {
                if b.fenced
                    && b.incarnation == self.incarnation
                    && !self.shut_down.contains_key(&b.id)
                {
                    image.unfence_records(b.id)
                } else {
                    continue;
                }
            } else {
                let Some(h) = self.health.get(b.id) else {
                    continue;
                };
                let refused = h
                    .refused_at
                    .is_some_and(|t| now.duration_since(t) < REFUSED_RECENT);
                let silent = now.duration_since(h.last_ok) > self.session_timeout;
                let restarted = h.incarnation.is_some_and(|i| i != b.incarnation);
                if !b.fenced && (refused || silent || restarted) {
                    let why = if refused {
                        "its controller port refused a connection"
                    } else if restarted {
                        "it answered with a new incarnation"
                    } else {
                        "it was silent for the session timeout"
                    };
                    tracing::warn!(node = self.node_id, "fencing broker {}: {why}", b.id);
                    image.fence_records(b.id, self.unclean)
                } else if b.fenced
                    && !refused
                    && !restarted
                    && h.incarnation == Some(b.incarnation)
                    && now.duration_since(h.last_ok) < ALIVE_RECENT
                    && self.shut_down.get(&b.id) != Some(&b.incarnation)
                {
                    tracing::info!(
                        node = self.node_id,
                        "unfencing broker {}: it answers again",
                        b.id
                    );
                    image.unfence_records(b.id)
                } else {
                    continue;
                }
            };
            // One write per tick keeps each decision based on the image it changes.
            return self.write(records).await;
        }
        self.rebalance_leaders(&image, now).await
    }

    /// Every `leader.imbalance.check.interval.seconds`, gives partitions back to their
    /// preferred replicas where a broker's leader imbalance is over the limit (Kafka's
    /// `auto.leader.rebalance.enable`).
    async fn rebalance_leaders(
        &mut self,
        image: &ClusterImage,
        now: Instant,
    ) -> Result<(), ClusterError> {
        let Some(r) = self.leader_rebalance else {
            return Ok(());
        };
        if now < self.next_rebalance_check {
            return Ok(());
        }
        self.next_rebalance_check = now + r.interval;
        let records = image.preferred_leader_records(r.max_imbalance_percent);
        if records.is_empty() {
            return Ok(());
        }
        tracing::info!(
            node = self.node_id,
            partitions = records.len(),
            "leader imbalance over {} %: moving leadership back to preferred replicas",
            r.max_imbalance_percent
        );
        self.write(records).await
    }
}

/// Records for a registration: a live registration with another incarnation is fenced first
/// (the broker restarted); then the broker is registered and unfenced.
pub(crate) fn register_records(
    image: &ClusterImage,
    info: BrokerInfo,
    unclean: bool,
) -> Vec<MetadataRecord> {
    let mut scratch = image.clone();
    let mut out = Vec::new();
    if let Some(old) = image.brokers.get(&info.id) {
        if *old == info {
            return out;
        }
        if !old.fenced && old.incarnation != info.incarnation {
            out.extend(image.fence_records(info.id, unclean));
        }
    }
    for r in &out {
        scratch.apply(r);
    }
    let id = info.id;
    let reg = MetadataRecord::RegisterBroker(BrokerInfo {
        fenced: true,
        ..info
    });
    scratch.apply(&reg);
    out.push(reg);
    out.extend(scratch.unfence_records(id));
    out
}

fn unfenced_candidates(image: &ClusterImage) -> Vec<placement::Candidate> {
    image
        .brokers
        .values()
        .filter(|b| !b.fenced)
        .map(|b| (b.id, b.rack.clone()))
        .collect()
}

fn placement_error(e: PlacementError) -> ClusterError {
    match e {
        PlacementError::ReplicationFactorTooSmall(rf) => ClusterError::InvalidReplicationFactor(
            format!("replication factor must be at least 1, got {rf}"),
        ),
        PlacementError::NotEnoughBrokers {
            replication_factor,
            available,
        } => ClusterError::InvalidReplicationFactor(format!(
            "replication factor {replication_factor} larger than the {available} available brokers"
        )),
    }
}

/// Validates a CreateTopic request and computes the topic with its assignment.
pub(crate) fn create_topic(
    image: &ClusterImage,
    spec: &CreateTopicSpec,
) -> Result<TopicInfo, ClusterError> {
    if image.topics.contains_key(&spec.name) {
        return Err(ClusterError::TopicAlreadyExists(spec.name.clone()));
    }
    if spec.partitions < 1 {
        return Err(ClusterError::InvalidPartitions(format!(
            "topic {}: number of partitions must be at least 1, got {}",
            spec.name, spec.partitions
        )));
    }
    let id = Uuid::new_v4();
    let brokers = unfenced_candidates(image);
    let start = (id.as_u128() % (brokers.len().max(1) as u128)) as usize;
    let assignment = placement::assign(
        &brokers,
        0,
        spec.partitions as usize,
        spec.replication_factor,
        start,
    )
    .map_err(placement_error)?;
    Ok(TopicInfo {
        name: spec.name.clone(),
        id,
        configs: spec.configs.clone(),
        partitions: assignment.into_iter().map(new_partition).collect(),
    })
}

fn new_partition(replicas: Vec<i32>) -> PartitionState {
    PartitionState {
        leader: replicas[0],
        isr: replicas.clone(),
        replicas,
        leader_epoch: 0,
        partition_epoch: 0,
    }
}

/// Computes the AddPartitions record growing `name` to `total` partitions.
pub(crate) fn add_partitions(
    image: &ClusterImage,
    name: &str,
    total: usize,
) -> Result<MetadataRecord, ClusterError> {
    let topic = image
        .topics
        .get(name)
        .ok_or_else(|| ClusterError::UnknownTopicOrPartition(name.to_string()))?;
    let current = topic.partitions.len();
    if total <= current {
        return Err(ClusterError::InvalidPartitions(format!(
            "topic {name} has {current} partitions; the new count must be larger, got {total}"
        )));
    }
    let rf = topic.partitions.first().map_or(1, |p| p.replicas.len()) as i32;
    let brokers = unfenced_candidates(image);
    let list = placement::rack_alternated(&brokers);
    let start = topic
        .partitions
        .first()
        .and_then(|p| list.iter().position(|b| *b == p.replicas[0]))
        .unwrap_or(0);
    let assignment = placement::assign(&brokers, current, total - current, rf, start)
        .map_err(placement_error)?;
    Ok(MetadataRecord::AddPartitions {
        topic: name.to_string(),
        partitions: assignment.into_iter().map(new_partition).collect(),
    })
}

/// Validates an AlterPartition request; returns the new state (partition epoch + 1).
pub(crate) fn alter_partition(
    image: &ClusterImage,
    req: &AlterPartition,
) -> Result<PartitionState, ClusterError> {
    let tp = format!("{}-{}", req.topic, req.partition);
    let cur = image
        .partition(&req.topic, req.partition)
        .ok_or_else(|| ClusterError::UnknownTopicOrPartition(tp.clone()))?;
    if req.leader_epoch != cur.leader_epoch {
        return Err(ClusterError::FencedLeaderEpoch(format!(
            "AlterPartition for {tp} from broker {} has leader epoch {} but the current one is {}",
            req.leader_id, req.leader_epoch, cur.leader_epoch
        )));
    }
    if req.leader_id != cur.leader {
        return Err(ClusterError::NotLeaderOrFollower(format!(
            "broker {} is not the leader of {tp} (leader is {})",
            req.leader_id, cur.leader
        )));
    }
    if req.partition_epoch != cur.partition_epoch {
        return Err(ClusterError::InvalidUpdateVersion(format!(
            "AlterPartition for {tp} has partition epoch {} but the current one is {}",
            req.partition_epoch, cur.partition_epoch
        )));
    }
    if !req.new_isr.contains(&req.leader_id) {
        return Err(ClusterError::IneligibleReplica(format!(
            "new ISR {:?} of {tp} does not contain the leader {}",
            req.new_isr, req.leader_id
        )));
    }
    for r in &req.new_isr {
        if !cur.replicas.contains(r) {
            return Err(ClusterError::IneligibleReplica(format!(
                "broker {r} is not a replica of {tp}"
            )));
        }
        if !image.is_unfenced(*r) {
            return Err(ClusterError::IneligibleReplica(format!(
                "broker {r} is fenced and cannot join the ISR of {tp}"
            )));
        }
    }
    let mut isr = req.new_isr.clone();
    isr.dedup();
    Ok(PartitionState {
        isr,
        partition_epoch: cur.partition_epoch + 1,
        ..cur.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(n: i32) -> ClusterImage {
        let mut img = ClusterImage::default();
        for id in 1..=n {
            img.apply(&MetadataRecord::RegisterBroker(BrokerInfo::test(id)));
        }
        img
    }

    /// Adds topic "t" with one partition in `state`.
    fn add_topic_t(img: &mut ClusterImage, state: PartitionState) {
        img.apply(&MetadataRecord::CreateTopic(TopicInfo {
            name: "t".into(),
            id: Uuid::nil(),
            configs: BTreeMap::new(),
            partitions: vec![state],
        }));
    }

    #[test]
    fn create_topic_errors_carry_kafka_codes() {
        let mut img = image(2);
        let e = create_topic(&img, &CreateTopicSpec::plain("t", 1, 3)).unwrap_err();
        assert_eq!(e.code(), 38);
        assert_eq!(
            e.to_string(),
            "replication factor 3 larger than the 2 available brokers"
        );
        assert_eq!(
            create_topic(&img, &CreateTopicSpec::plain("t", 0, 1))
                .unwrap_err()
                .code(),
            37
        );
        let t = create_topic(&img, &CreateTopicSpec::plain("t", 4, 2)).unwrap();
        assert!(t
            .partitions
            .iter()
            .all(|p| p.leader == p.replicas[0] && p.isr == p.replicas));
        img.apply(&MetadataRecord::CreateTopic(t));
        assert_eq!(
            create_topic(&img, &CreateTopicSpec::plain("t", 1, 1))
                .unwrap_err()
                .code(),
            36
        );
        // Fenced brokers are not candidates.
        img.apply(&MetadataRecord::FenceBroker { id: 2 });
        assert_eq!(
            create_topic(&img, &CreateTopicSpec::plain("u", 1, 2))
                .unwrap_err()
                .code(),
            38
        );
    }

    #[test]
    fn create_partitions_grows_only() {
        let mut img = image(3);
        img.apply(&MetadataRecord::CreateTopic(
            create_topic(&img, &CreateTopicSpec::plain("t", 2, 3)).unwrap(),
        ));
        assert_eq!(add_partitions(&img, "t", 2).unwrap_err().code(), 37);
        assert_eq!(add_partitions(&img, "nope", 5).unwrap_err().code(), 3);
        let r = add_partitions(&img, "t", 5).unwrap();
        img.apply(&r);
        assert_eq!(img.topics["t"].partitions.len(), 5);
        assert!(img.topics["t"]
            .partitions
            .iter()
            .all(|p| p.replicas.len() == 3));
    }

    fn alter(
        img: &ClusterImage,
        leader: i32,
        le: i32,
        pe: i32,
        isr: Vec<i32>,
    ) -> Result<PartitionState, ClusterError> {
        alter_partition(
            img,
            &AlterPartition {
                topic: "t".into(),
                partition: 0,
                leader_id: leader,
                leader_epoch: le,
                partition_epoch: pe,
                new_isr: isr,
            },
        )
    }

    #[test]
    fn alter_partition_rejects_stale_epochs_and_ineligible_replicas() {
        let mut img = image(4);
        add_topic_t(
            &mut img,
            PartitionState {
                replicas: vec![1, 2, 3],
                isr: vec![1, 2, 3],
                leader: 1,
                leader_epoch: 2,
                partition_epoch: 5,
            },
        );
        assert_eq!(alter(&img, 1, 1, 5, vec![1, 2]).unwrap_err().code(), 74);
        assert_eq!(alter(&img, 1, 2, 4, vec![1, 2]).unwrap_err().code(), 108);
        assert_eq!(alter(&img, 2, 2, 5, vec![1, 2]).unwrap_err().code(), 6);
        assert_eq!(
            alter(&img, 1, 2, 5, vec![1, 4]).unwrap_err().code(),
            107,
            "4 is not a replica"
        );
        img.apply(&MetadataRecord::FenceBroker { id: 3 });
        assert_eq!(
            alter(&img, 1, 2, 5, vec![1, 3]).unwrap_err().code(),
            107,
            "3 is fenced"
        );
        let ok = alter(&img, 1, 2, 5, vec![1, 2]).unwrap();
        assert_eq!(
            (ok.isr, ok.partition_epoch, ok.leader_epoch),
            (vec![1, 2], 6, 2)
        );
    }

    #[test]
    fn reregistration_with_new_incarnation_fences_then_unfences() {
        let mut img = image(3);
        add_topic_t(
            &mut img,
            PartitionState {
                replicas: vec![2, 1, 3],
                isr: vec![2, 1, 3],
                leader: 2,
                leader_epoch: 0,
                partition_epoch: 0,
            },
        );
        let same = img.brokers[&2].clone();
        assert!(
            register_records(&img, same, false).is_empty(),
            "same registration is a no-op"
        );
        let fresh = BrokerInfo {
            incarnation: Uuid::new_v4(),
            ..img.brokers[&2].clone()
        };
        for r in register_records(&img, fresh.clone(), false) {
            img.apply(&r);
        }
        let p = &img.topics["t"].partitions[0];
        assert_eq!(
            p.leader, 1,
            "the restarted broker lost leadership to the next ISR member"
        );
        assert_eq!(p.isr, vec![1, 3]);
        assert_eq!(img.brokers[&2], fresh);
    }
}
