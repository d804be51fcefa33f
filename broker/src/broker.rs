//! The broker's shared state: configuration, identity and the subsystems every handler reaches.
//!
//! One `Broker` is created per process after the listener is bound (so a port of 0 in
//! `listeners` is advertised as the port actually bound) and shared by every connection task.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use crate::cluster::Cluster;
use crate::config::BrokerConfig;
use crate::group::{GroupConfig, GroupCoordinator};
use crate::producer_ids::ProducerIds;
use crate::replication::ReplicaManager;
use crate::topics::{TopicError, Topics};
use crate::txn::marker_channel::ClusterMarkers;
use crate::txn::{TransactionCoordinator, TxnConfig};

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A log directory could not be created or read.
    #[error("log dir {dir} is not usable")]
    LogDir {
        /// The directory.
        dir: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Topics could not be recovered.
    #[error("cannot open topics: {0}")]
    Topics(String),
    /// The configured listener address is not usable.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The broker could not join its cluster.
    #[error("cannot join the cluster: {0}")]
    Cluster(String),
    /// A log dir holds the data of a single broker of an earlier kbroker version.
    #[error(
        "log dir {} was written by a single kbroker of an earlier version (it has {}): \
         that layout kept topics outside the metadata quorum and cannot be opened by this \
         version. Read what you need from it with the earlier kbroker, then start this one \
         with an empty log dir (move {} away)",
        dir.display(),
        found,
        dir.display()
    )]
    SingleNodeData {
        /// The directory.
        dir: std::path::PathBuf,
        /// The file that gives it away.
        found: &'static str,
    },
    /// Binding the listener failed.
    #[error("cannot listen on {addr} (is another broker using the port? change `listeners`)")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// State shared by all connections of one broker process.
pub(crate) struct Broker {
    /// The configuration the broker was started with.
    pub(crate) config: Arc<BrokerConfig>,
    /// The cluster id (from `meta.properties`, created on first start).
    pub(crate) cluster_id: String,
    /// Host clients are told to connect to.
    pub(crate) advertised_host: String,
    /// Port clients are told to connect to.
    pub(crate) advertised_port: u16,
    /// The topic registry and partition logs (shared with the transaction coordinator, which
    /// writes markers to them).
    pub(crate) topics: Arc<Topics>,
    /// The group coordinator: the groups of the `__consumer_offsets` partitions led here.
    pub(crate) groups: GroupCoordinator,
    /// Producer id allocation for idempotent producers.
    pub(crate) producer_ids: ProducerIds,
    /// The transaction coordinator: the ids of the `__transaction_state` partitions led here.
    pub(crate) txn: TransactionCoordinator,
    /// The Raft metadata layer (who leads what); a quorum of one for a lone broker.
    pub(crate) cluster: Arc<Cluster>,
    /// Leaders and followers of the partitions hosted here.
    pub(crate) replicas: Arc<ReplicaManager>,
    /// How many metadata images `crate::metadata_sync` has applied here (partitions opened,
    /// leadership taken up): admin requests wait on it before answering.
    pub(crate) applied: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Broker {
    /// Opens the log dirs, recovers topics and builds the shared state.
    pub(crate) fn open(
        config: BrokerConfig,
        bound: SocketAddr,
        cluster: Arc<Cluster>,
    ) -> Result<Self, StartError> {
        for dir in &config.log_dirs {
            std::fs::create_dir_all(dir).map_err(|source| StartError::LogDir {
                dir: dir.clone(),
                source,
            })?;
        }
        let cluster_id = read_or_create_meta(&config)?;
        let (advertised_host, advertised_port) = advertised(&config, bound);
        let config = Arc::new(config);
        let topics = Arc::new(
            Topics::open(config.clone())
                .map_err(|e: TopicError| StartError::Topics(e.to_string()))?,
        );
        // The offsets log is a replicated topic; groups load as leadership arrives.
        let groups = GroupCoordinator::new(GroupConfig::from_broker(&config));
        let producer_ids = ProducerIds::open(&config.log_dirs[0], i64::from(config.node_id) << 32)
            .map_err(|source| StartError::LogDir {
                dir: config.log_dirs[0].clone(),
                source,
            })?;
        // The transaction log is a replicated topic; ids load as leadership arrives.
        let txn = TransactionCoordinator::new(
            TxnConfig::from_broker(&config),
            Arc::new(ClusterMarkers::new(
                config.node_id,
                cluster.clone(),
                topics.clone(),
                groups.clone(),
            )),
        );
        let replicas = ReplicaManager::new(
            Arc::new(crate::metadata_sync::Link {
                cluster: cluster.clone(),
                node_id: config.node_id,
            }),
            crate::replication::ReplicationSettings::from_broker(&config),
        );
        Ok(Broker {
            applied: Arc::new(tokio::sync::watch::Sender::new(0)),
            cluster,
            replicas,
            txn,
            producer_ids,
            config,
            cluster_id,
            advertised_host,
            advertised_port,
            topics,
            groups,
        })
    }

    /// This broker's node id.
    pub(crate) fn node_id(&self) -> i32 {
        self.config.node_id
    }

    /// Flushes everything to disk; called once on shutdown.
    pub(crate) fn shutdown(&self) {
        self.topics.flush_all();
    }
}

/// Refuses log dirs written by a single broker of an earlier version, before anything is
/// written to them: such a broker kept its topics in `kbroker-topics.json` instead of the
/// metadata log, and its `__consumer_offsets`/`__transaction_state` in another layout, so
/// opening it as a quorum of one would silently show no topics.
pub(crate) fn refuse_single_node_data(config: &BrokerConfig) -> Result<(), StartError> {
    match config
        .log_dirs
        .iter()
        .find(|dir| dir.join(crate::topics::LEGACY_REGISTRY_FILE).exists())
    {
        Some(dir) => Err(StartError::SingleNodeData {
            dir: dir.clone(),
            found: crate::topics::LEGACY_REGISTRY_FILE,
        }),
        None => Ok(()),
    }
}

/// The host and port clients are told to connect to (a configured port of 0 means the one bound).
pub(crate) fn advertised(config: &BrokerConfig, bound: SocketAddr) -> (String, u16) {
    let port = if config.advertised.port == 0 {
        bound.port()
    } else {
        config.advertised.port
    };
    (config.advertised.host.clone(), port)
}

/// Reads `cluster.id` from `meta.properties` in the log dirs, or writes a new one, as Kafka does.
fn read_or_create_meta(config: &BrokerConfig) -> Result<String, StartError> {
    let io = |dir: &Path, source| StartError::LogDir {
        dir: dir.to_owned(),
        source,
    };
    for dir in &config.log_dirs {
        let path = dir.join("meta.properties");
        if let Ok(file) = std::fs::File::open(&path) {
            if let Ok(props) = java_properties::read(std::io::BufReader::new(file)) {
                if let Some(id) = props.get("cluster.id") {
                    return Ok(id.clone());
                }
            }
        }
    }
    let id = match &config.cluster {
        // Every broker of a cluster must report the same id without a formatting step: derive
        // it from what they all share, the voter list.
        Some(c) => {
            let voters: String = c
                .voters
                .iter()
                .map(|(id, a)| format!("{id}@{a},"))
                .collect();
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for b in voters.bytes() {
                h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
            }
            format!("kbroker-{h:016x}")
        }
        None => uuid::Uuid::new_v4().simple().to_string()[..22].to_owned(),
    };
    for dir in &config.log_dirs {
        let text = format!(
            "#Written by kbroker\nversion=1\ncluster.id={id}\nnode.id={}\n",
            config.node_id
        );
        std::fs::write(dir.join("meta.properties"), text).map_err(|e| io(dir, e))?;
    }
    Ok(id)
}
