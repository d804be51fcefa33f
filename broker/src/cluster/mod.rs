//! Cluster metadata: every broker is a Raft voter (KRaft "combined mode", simplified).
//!
//! The metadata (brokers, topics, partition leaders, ISR, epochs) is a replicated state machine,
//! [`image::ClusterImage`], driven by openraft 0.9. Layers:
//!
//! - [`image`]: the image and its records; `apply` is pure and deterministic.
//! - [`placement`]: rack-aware replica assignment, pure.
//! - `store`: durable Raft log, vote, committed id and snapshots under `metadata_dir`.
//! - `rpc`: length-prefixed JSON frames and the messages they carry.
//! - `network`: openraft's network over those frames, the listener, and per-peer liveness.
//! - `controller`: runs on whichever node is the Raft leader; turns requests and liveness into
//!   records, one at a time.
//!
//! Why records and not requests in the log: a decision (who leads partition 3 after broker 2
//! died) depends on the image at the time it is made; logging the decision, not the request,
//! means replay never re-decides, so every node and every restart reaches the same image.
//!
//! Differences from Kafka: brokers do not heartbeat the controller; the controller's Raft
//! replication traffic to every voter *is* the heartbeat (see `controller` for fencing). A broker is
//! unfenced as soon as it registers, without waiting to catch up on the metadata log (it is a voter,
//! so it replicates the log anyway). Metadata is not readable by Kafka clients as a topic.

pub(crate) mod controller;
pub(crate) mod image;
pub(crate) mod network;
pub(crate) mod placement;
pub(crate) mod rpc;
pub(crate) mod store;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::io::Cursor;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::{BasicNode, Raft};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use uuid::Uuid;

pub(crate) use image::{ClusterImage, PartitionState, TopicInfo};

use controller::{ControllerReply, ControllerRequest, Job};
use image::MetadataRecord;

/// One Raft log entry's payload: records applied atomically, in order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct MetadataBatch(pub(crate) Vec<MetadataRecord>);

impl std::fmt::Display for MetadataBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} metadata records", self.0.len())
    }
}

openraft::declare_raft_types!(
    /// openraft types of the metadata quorum: node ids are broker ids, nodes carry the controller address.
    pub(crate) TypeConfig:
        D = MetadataBatch,
        R = (),
        NodeId = u64,
        Node = BasicNode,
        SnapshotData = Cursor<Vec<u8>>,
);

/// Settings of this node's part in the cluster, in plain Rust (the caller parses server.properties).
#[derive(Clone, Debug)]
pub(crate) struct ClusterConfig {
    /// This broker's id (`node.id`); also its Raft node id. Must be >= 0.
    pub(crate) node_id: i32,
    /// Controller addresses of all voters, this node included.
    pub(crate) voters: BTreeMap<i32, SocketAddr>,
    /// Advertised host of this broker's Kafka listener.
    pub(crate) host: String,
    /// Advertised port of this broker's Kafka listener.
    pub(crate) port: u16,
    /// `broker.rack`.
    pub(crate) rack: Option<String>,
    /// Directory of the Raft log, vote and snapshots.
    pub(crate) metadata_dir: PathBuf,
    /// `broker.session.timeout.ms`: a broker silent this long is fenced (Kafka default 9 s).
    pub(crate) session_timeout: Duration,
    /// `unclean.leader.election.enable`: elect a non-ISR replica rather than leave a partition leaderless.
    pub(crate) unclean_leader_election: bool,
    /// Automatic preferred-leader rebalancing (`auto.leader.rebalance.enable`); `None` when off.
    pub(crate) leader_rebalance: Option<LeaderRebalance>,
}

/// When the controller moves leadership back to preferred replicas (Kafka's automatic leader
/// rebalancing): after fail-overs leadership gathers on the brokers that stayed up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LeaderRebalance {
    /// `leader.imbalance.check.interval.seconds`.
    pub(crate) interval: Duration,
    /// `leader.imbalance.per.broker.percentage`.
    pub(crate) max_imbalance_percent: u32,
}

/// A CreateTopics request as the controller sees it (name already validated by the caller).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct CreateTopicSpec {
    /// Topic name.
    pub(crate) name: String,
    /// Number of partitions, >= 1.
    pub(crate) partitions: i32,
    /// Replication factor, 1 ..= number of unfenced brokers.
    pub(crate) replication_factor: i32,
    /// Topic config overrides.
    pub(crate) configs: BTreeMap<String, String>,
    /// Check and compute the assignment without creating the topic.
    pub(crate) validate_only: bool,
}

#[cfg(test)]
impl CreateTopicSpec {
    /// A topic to create, with no configs (tests).
    pub(crate) fn plain(name: &str, partitions: i32, replication_factor: i32) -> Self {
        CreateTopicSpec {
            name: name.into(),
            partitions,
            replication_factor,
            configs: BTreeMap::new(),
            validate_only: false,
        }
    }
}

/// An AlterPartition request from a partition leader (ISR shrink or expand).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct AlterPartition {
    /// Topic name.
    pub(crate) topic: String,
    /// Partition index.
    pub(crate) partition: i32,
    /// The sender, which must be the partition's leader.
    pub(crate) leader_id: i32,
    /// The sender's leader epoch; must be current.
    pub(crate) leader_epoch: i32,
    /// The partition epoch the sender's view is based on; must be current.
    pub(crate) partition_epoch: i32,
    /// The ISR the leader wants.
    pub(crate) new_isr: Vec<i32>,
}

/// Errors of cluster operations; [`ClusterError::code`] gives the Kafka error code.
#[derive(Clone, Debug, PartialEq, thiserror::Error, Serialize, Deserialize)]
pub(crate) enum ClusterError {
    /// The node asked is not the controller.
    #[error("broker {node} is not the controller (leader: {})", leader.map_or("unknown".to_string(), |l| l.to_string()))]
    NotController { node: i32, leader: Option<i32> },
    /// No controller answered before the deadline.
    #[error("no controller reachable after {after_ms} ms: voters {voters}{}", last.as_ref().map_or(String::new(), |l| format!("; last error: {l}")))]
    NoController {
        after_ms: u64,
        voters: String,
        last: Option<String>,
    },
    /// CreateTopics for an existing name.
    #[error("topic {0} already exists")]
    TopicAlreadyExists(String),
    /// Bad replication factor.
    #[error("{0}")]
    InvalidReplicationFactor(String),
    /// Bad partition count.
    #[error("{0}")]
    InvalidPartitions(String),
    /// Bad topic name or topic-level request.
    #[error("{0}")]
    InvalidTopic(String),
    /// Topic or partition unknown.
    #[error("unknown topic or partition {0}")]
    UnknownTopicOrPartition(String),
    /// AlterPartition with a stale leader epoch.
    #[error("{0}")]
    FencedLeaderEpoch(String),
    /// AlterPartition with a stale partition epoch.
    #[error("{0}")]
    InvalidUpdateVersion(String),
    /// AlterPartition from a broker that does not lead the partition.
    #[error("{0}")]
    NotLeaderOrFollower(String),
    /// AlterPartition with an ISR containing a fenced broker or a non-replica.
    #[error("{0}")]
    IneligibleReplica(String),
    /// Invalid configuration given to `Cluster::start`.
    #[error("invalid cluster configuration: {0}")]
    Config(String),
    /// Metadata storage failed.
    #[error("metadata storage in {dir}: {message}")]
    Storage { dir: String, message: String },
    /// Raft failed (shut down, fatal storage error...).
    #[error("raft: {0}")]
    Raft(String),
    /// The cluster handle was stopped.
    #[error("broker {0} cluster service is stopped")]
    Stopped(i32),
}

impl ClusterError {
    /// The Kafka error code to answer clients with.
    pub(crate) fn code(&self) -> i16 {
        match self {
            ClusterError::NotController { .. } | ClusterError::NoController { .. } => 41,
            ClusterError::TopicAlreadyExists(_) => 36,
            ClusterError::InvalidReplicationFactor(_) => 38,
            ClusterError::InvalidPartitions(_) => 37,
            ClusterError::InvalidTopic(_) => 17,
            ClusterError::UnknownTopicOrPartition(_) => 3,
            ClusterError::FencedLeaderEpoch(_) => 74,
            ClusterError::InvalidUpdateVersion(_) => 108,
            ClusterError::NotLeaderOrFollower(_) => 6,
            ClusterError::IneligibleReplica(_) => 107,
            ClusterError::Config(_)
            | ClusterError::Storage { .. }
            | ClusterError::Raft(_)
            | ClusterError::Stopped(_) => -1,
        }
    }
}

/// Raft snapshot every this many applied entries (small in tests so snapshots are exercised).
const SNAPSHOT_EVERY: u64 = if cfg!(test) { 20 } else { 1000 };
/// Entries kept in the log behind a snapshot (for followers slightly behind).
const LOGS_KEPT_AFTER_SNAPSHOT: u64 = if cfg!(test) { 5 } else { 100 };

/// How long `create_topic` and the other controller calls retry before giving up.
const REQUEST_DEADLINE: Duration = Duration::from_secs(10);

/// A running cluster member: Raft node, controller listener, controller task.
pub(crate) struct Cluster {
    /// Configuration given to `start`.
    cfg: ClusterConfig,
    /// This process's incarnation (new on every start).
    incarnation: Uuid,
    /// The Raft node.
    raft: Raft<TypeConfig>,
    /// Latest applied image.
    image_rx: watch::Receiver<Arc<ClusterImage>>,
    /// Queue of the local controller task.
    controller_tx: mpsc::Sender<Job>,
    /// Connections to other nodes' controller listeners, for controller requests.
    clients: tokio::sync::Mutex<BTreeMap<i32, rpc::PeerConn>>,
    /// Listener and controller tasks, aborted by `stop`.
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// Set by `stop`.
    stopped: AtomicBool,
    /// Test hook emulating SIGSTOP: the listener stops answering.
    #[cfg_attr(not(test), allow(dead_code))] // read by the test-only `freeze`
    frozen: Arc<AtomicBool>,
}

impl Cluster {
    /// Opens storage, starts Raft, the controller listener (`None` for a lone voter, which
    /// talks to no one) and the controller task, initializes
    /// the cluster on first start (every node calls openraft `initialize` with all voters when its
    /// log is empty; "already initialized" counts as success), then registers this broker,
    /// retrying until a controller answers or `deadline` passes. Returns once registered and the
    /// local image shows the registration.
    pub(crate) async fn start(
        cfg: ClusterConfig,
        listener: Option<TcpListener>,
        deadline: Duration,
    ) -> Result<Arc<Cluster>, ClusterError> {
        if cfg.node_id < 0 {
            return Err(ClusterError::Config(format!(
                "node id {} must be >= 0",
                cfg.node_id
            )));
        }
        if !cfg.voters.contains_key(&cfg.node_id) {
            return Err(ClusterError::Config(format!(
                "node {} is not among the voters {}",
                cfg.node_id,
                voters_string(&cfg.voters)
            )));
        }
        if let Some(bad) = cfg.voters.keys().find(|id| **id < 0) {
            return Err(ClusterError::Config(format!("voter id {bad} must be >= 0")));
        }
        let started = Instant::now();
        let storage_err = |e: std::io::Error| ClusterError::Storage {
            dir: cfg.metadata_dir.display().to_string(),
            message: e.to_string(),
        };
        std::fs::create_dir_all(&cfg.metadata_dir).map_err(storage_err)?;
        let (log_store, fresh) = store::LogStore::open(&cfg.metadata_dir).map_err(storage_err)?;
        let (state_machine, image_rx) =
            store::StateMachine::open(&cfg.metadata_dir).map_err(storage_err)?;
        let fresh =
            fresh && image_rx.borrow().brokers.is_empty() && state_machine.has_no_snapshot();

        let incarnation = Uuid::new_v4();
        let health = network::Health::default();
        let factory = network::NetworkFactory::new(health.clone());
        let raft_config = openraft::Config {
            cluster_name: "kbroker".into(),
            // A follower calls an election after the leader lease (= election_timeout_max) plus
            // its own election timeout, checked every 1.5 heartbeats: 0.75-1.05 s after the
            // leader's death. That leaves room in the ~1.5 s fail-over budget for fencing.
            heartbeat_interval: 100,
            election_timeout_min: 300,
            election_timeout_max: 450,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(SNAPSHOT_EVERY),
            max_in_snapshot_log_to_keep: LOGS_KEPT_AFTER_SNAPSHOT,
            purge_batch_size: 1,
            ..Default::default()
        }
        .validate()
        .map_err(|e| ClusterError::Config(format!("raft settings: {e}")))?;
        let raft = Raft::new(
            cfg.node_id as u64,
            Arc::new(raft_config),
            factory,
            log_store,
            state_machine,
        )
        .await
        .map_err(|e| ClusterError::Raft(format!("starting raft node {}: {e}", cfg.node_id)))?;

        if !fresh {
            if let Err(e) = check_voters(&cfg, &raft).await {
                let _ = raft.shutdown().await;
                return Err(e);
            }
        }

        let (controller_tx, controller_rx) = mpsc::channel(64);
        let frozen = Arc::new(AtomicBool::new(false));
        let server = listener.map(|listener| {
            network::serve(
                listener,
                network::ServerCtx {
                    node_id: cfg.node_id,
                    incarnation,
                    raft: raft.clone(),
                    controller_tx: controller_tx.clone(),
                    frozen: frozen.clone(),
                },
            )
        });
        let ctl =
            controller::Controller::new(&cfg, incarnation, raft.clone(), image_rx.clone(), health);
        let ctl_task = tokio::spawn(ctl.run(controller_rx));

        let cluster = Arc::new(Cluster {
            cfg,
            incarnation,
            raft,
            image_rx,
            controller_tx,
            clients: tokio::sync::Mutex::new(BTreeMap::new()),
            tasks: Mutex::new(server.into_iter().chain([ctl_task]).collect()),
            stopped: AtomicBool::new(false),
            frozen,
        });

        if fresh {
            let members: BTreeMap<u64, BasicNode> = cluster
                .cfg
                .voters
                .iter()
                .map(|(id, addr)| (*id as u64, BasicNode::new(addr.to_string())))
                .collect();
            match cluster.raft.initialize(members).await {
                Ok(()) => tracing::info!(node = cluster.cfg.node_id, "initialized metadata quorum"),
                Err(openraft::error::RaftError::APIError(
                    openraft::error::InitializeError::NotAllowed(_),
                )) => {}
                Err(e) => {
                    cluster.stop().await;
                    return Err(ClusterError::Raft(format!(
                        "initializing the metadata quorum: {e}"
                    )));
                }
            }
        }

        let req = ControllerRequest::Register {
            id: cluster.cfg.node_id,
            host: cluster.cfg.host.clone(),
            port: cluster.cfg.port,
            rack: cluster.cfg.rack.clone(),
            incarnation,
        };
        let remaining = deadline.saturating_sub(started.elapsed());
        if let Err(e) = cluster.call_controller(req, remaining).await {
            cluster.stop().await;
            return Err(e);
        }
        // Registered at the controller; wait until this node's own image shows it, so callers
        // can rely on `image()` containing this broker.
        let id = cluster.cfg.node_id;
        let remaining = deadline
            .saturating_sub(started.elapsed())
            .max(Duration::from_secs(1));
        let mut rx = cluster.watch();
        let shown = rx.wait_for(|i| {
            i.brokers
                .get(&id)
                .is_some_and(|b| b.incarnation == incarnation)
        });
        if tokio::time::timeout(remaining, shown).await.is_err() {
            cluster.stop().await;
            return Err(ClusterError::Raft(format!(
                "broker {id} registered but its local metadata did not show it within {remaining:?}"
            )));
        }
        Ok(cluster)
    }

    /// The latest applied metadata image.
    pub(crate) fn image(&self) -> Arc<ClusterImage> {
        self.image_rx.borrow().clone()
    }

    /// A receiver that sees every new image.
    pub(crate) fn watch(&self) -> watch::Receiver<Arc<ClusterImage>> {
        self.image_rx.clone()
    }

    /// The current Raft leader, which is the controller.
    pub(crate) fn controller_id(&self) -> Option<i32> {
        self.raft
            .metrics()
            .borrow()
            .current_leader
            .map(|l| l as i32)
    }

    /// Raft metrics of this node (tests).
    #[cfg(test)]
    pub(crate) fn raft_metrics(&self) -> openraft::RaftMetrics<u64, BasicNode> {
        self.raft.metrics().borrow().clone()
    }

    /// This process's incarnation id (tests).
    #[cfg(test)]
    pub(crate) fn incarnation(&self) -> Uuid {
        self.incarnation
    }

    /// Creates a topic (or only validates it, with `validate_only`), placing replicas rack-aware.
    pub(crate) async fn create_topic(
        &self,
        spec: CreateTopicSpec,
    ) -> Result<TopicInfo, ClusterError> {
        match self
            .call_controller(ControllerRequest::CreateTopic(spec), REQUEST_DEADLINE)
            .await?
        {
            ControllerReply::Topic(t) => Ok(t),
            other => Err(unexpected(other)),
        }
    }

    /// Deletes a topic.
    pub(crate) async fn delete_topic(&self, name: &str) -> Result<(), ClusterError> {
        let req = ControllerRequest::DeleteTopic {
            name: name.to_string(),
        };
        self.call_controller(req, REQUEST_DEADLINE)
            .await
            .map(|_| ())
    }

    /// Grows a topic to `total` partitions.
    pub(crate) async fn create_partitions(
        &self,
        name: &str,
        total: usize,
    ) -> Result<TopicInfo, ClusterError> {
        let req = ControllerRequest::CreatePartitions {
            name: name.to_string(),
            total,
        };
        match self.call_controller(req, REQUEST_DEADLINE).await? {
            ControllerReply::Topic(t) => Ok(t),
            other => Err(unexpected(other)),
        }
    }

    /// Replaces a topic's config overrides.
    pub(crate) async fn alter_topic_configs(
        &self,
        name: &str,
        configs: BTreeMap<String, String>,
    ) -> Result<(), ClusterError> {
        let req = ControllerRequest::AlterTopicConfigs {
            name: name.to_string(),
            configs,
        };
        self.call_controller(req, REQUEST_DEADLINE)
            .await
            .map(|_| ())
    }

    /// Changes a partition's ISR on behalf of its leader; returns the committed state.
    pub(crate) async fn alter_partition(
        &self,
        req: AlterPartition,
    ) -> Result<PartitionState, ClusterError> {
        match self
            .call_controller(ControllerRequest::AlterPartition(req), REQUEST_DEADLINE)
            .await?
        {
            ControllerReply::Partition(p) => Ok(p),
            other => Err(unexpected(other)),
        }
    }

    /// Moves this broker's leaderships away and fences it, then stops this node; `Ok(false)`
    /// when there was no one to hand over to.
    ///
    /// When every other registered broker is fenced (the whole cluster is going down, as at the
    /// end of a kbench run that stops all brokers at once, or the others are dead), no broker
    /// can take a leadership, and with combined nodes the controller's quorum may have gone
    /// with them: the request could only time out. So the wait ends as soon as this broker's
    /// metadata shows it alone (a lone broker at once), as Kafka's controller approves the
    /// shutdown of a broker that leads nothing another broker could take.
    pub(crate) async fn controlled_shutdown(&self) -> Result<bool, ClusterError> {
        let req = ControllerRequest::ControlledShutdown {
            id: self.cfg.node_id,
            incarnation: self.incarnation,
        };
        let me = self.cfg.node_id;
        let mut images = self.watch();
        let alone = async move {
            let others_down =
                |i: &Arc<ClusterImage>| i.brokers.values().all(|b| b.id == me || b.fenced);
            // An error means the metadata is gone: nothing more will change.
            let _ = images.wait_for(others_down).await;
        };
        let res = tokio::select! {
            r = self.call_controller(req, REQUEST_DEADLINE) => r.map(|_| true),
            () = alone => Ok(false),
        };
        self.stop().await;
        res
    }

    /// Stops Raft, the controller task and the listener (all its connections close). Used on
    /// shutdown and by tests to simulate a crash: nothing is flushed beyond what Raft already made durable.
    pub(crate) async fn stop(&self) {
        if self.stopped.swap(true, Ordering::SeqCst) {
            return;
        }
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for t in &tasks {
            t.abort();
        }
        for t in tasks {
            let _ = t.await;
        }
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(node = self.cfg.node_id, "raft shutdown: {e}");
        }
        self.clients.lock().await.clear();
    }

    /// Emulates SIGSTOP/SIGCONT in tests: while frozen, the listener accepts but never answers
    /// and Raft's timers stop, as in a paused process.
    #[cfg(test)]
    pub(crate) fn freeze(&self, frozen: bool) {
        self.frozen.store(frozen, Ordering::SeqCst);
        self.raft.runtime_config().tick(!frozen);
    }

    /// Sends a request to the controller (locally if this node is the leader), retrying the
    /// current leader with backoff on NotController or network errors until `deadline`.
    async fn call_controller(
        &self,
        req: ControllerRequest,
        deadline: Duration,
    ) -> Result<ControllerReply, ClusterError> {
        let until = Instant::now() + deadline;
        let mut backoff = Duration::from_millis(20);
        let mut last: Option<String>;
        loop {
            if self.stopped.load(Ordering::SeqCst) {
                return Err(ClusterError::Stopped(self.cfg.node_id));
            }
            let attempt = match self.controller_id() {
                None => Err("no raft leader elected yet".to_string()),
                Some(leader) if leader == self.cfg.node_id => {
                    let (tx, rx) = oneshot::channel();
                    if self.controller_tx.send((req.clone(), tx)).await.is_err() {
                        return Err(ClusterError::Stopped(self.cfg.node_id));
                    }
                    match rx.await {
                        Ok(r) => Ok(r),
                        Err(_) => return Err(ClusterError::Stopped(self.cfg.node_id)),
                    }
                }
                Some(leader) => self.remote_call(leader, &req, until).await,
            };
            match attempt {
                Ok(Ok(reply)) => return Ok(reply),
                Ok(Err(ClusterError::NotController { node, .. })) => {
                    last = Some(format!("broker {node} is not the controller"));
                }
                Ok(Err(e)) => return Err(e),
                Err(e) => last = Some(e),
            }
            let now = Instant::now();
            if now >= until {
                return Err(ClusterError::NoController {
                    after_ms: deadline.as_millis() as u64,
                    voters: voters_string(&self.cfg.voters),
                    last,
                });
            }
            tokio::time::sleep(backoff.min(until - now)).await;
            backoff = (backoff * 2).min(Duration::from_millis(400));
        }
    }

    /// One controller request to a remote node.
    async fn remote_call(
        &self,
        leader: i32,
        req: &ControllerRequest,
        until: Instant,
    ) -> Result<Result<ControllerReply, ClusterError>, String> {
        let Some(addr) = self.cfg.voters.get(&leader) else {
            return Err(format!("raft leader {leader} is not a configured voter"));
        };
        let timeout = until
            .saturating_duration_since(Instant::now())
            .clamp(Duration::from_millis(100), Duration::from_secs(5));
        let mut clients = self.clients.lock().await;
        let conn = clients
            .entry(leader)
            .or_insert_with(|| rpc::PeerConn::new(addr.to_string()));
        match conn
            .call(&rpc::RpcRequest::Controller(req.clone()), timeout)
            .await
        {
            Ok(resp) => match resp.body {
                rpc::RpcReply::Controller(r) => Ok(r),
                other => Err(format!(
                    "broker {leader} answered a controller request with {}",
                    other.kind()
                )),
            },
            Err(e) => Err(format!("broker {leader} at {addr}: {e}")),
        }
    }
}

/// Refuses a metadata log written by another quorum: voters are fixed at the log's first
/// start, so a directory used by a lone broker and then started with `controller.quorum.voters`
/// (or the reverse, or with other voter ids) would otherwise wait forever for an election its
/// configuration cannot win, or run under voters nobody configured. Addresses may change
/// (a lone voter's is a placeholder); ids may not.
async fn check_voters(cfg: &ClusterConfig, raft: &Raft<TypeConfig>) -> Result<(), ClusterError> {
    // Raft reads the membership from the log as it starts up.
    let metrics = raft
        .wait(Some(Duration::from_secs(5)))
        .metrics(
            |m| m.membership_config.log_id().is_some(),
            "the membership of the metadata log",
        )
        .await
        .map_err(|e| ClusterError::Storage {
            dir: cfg.metadata_dir.display().to_string(),
            message: format!("no membership found in the metadata log: {e}"),
        })?;
    let stored: Vec<i32> = metrics
        .membership_config
        .membership()
        .voter_ids()
        .map(|id| id as i32)
        .collect();
    let configured: Vec<i32> = cfg.voters.keys().copied().collect();
    if stored == configured {
        return Ok(());
    }
    let describe = |ids: &[i32]| match ids {
        [one] => format!("one voter, broker {one}"),
        _ => format!(
            "voters {}",
            ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
        ),
    };
    Err(ClusterError::Config(format!(
        "the metadata log in {} belongs to a quorum of {}, but this broker is configured for {}: \
         a broker cannot change quorums by restarting. Start it with the configuration it had \
         (controller.quorum.voters), or give it an empty log dir (and metadata.log.dir) to \
         start afresh in the new quorum",
        cfg.metadata_dir.display(),
        describe(&stored),
        describe(&configured),
    )))
}

/// "1@127.0.0.1:41001, 2@..." for error messages.
fn voters_string(voters: &BTreeMap<i32, SocketAddr>) -> String {
    voters
        .iter()
        .map(|(id, a)| format!("{id}@{a}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn unexpected(reply: ControllerReply) -> ClusterError {
    ClusterError::Raft(format!("controller sent an unexpected reply: {reply:?}"))
}
