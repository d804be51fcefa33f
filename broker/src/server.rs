//! The server loop: accept connections, run one task per connection, stop cleanly.
//!
//! `run(listener, config, shutdown)` is the whole server, so a test can bind port 0 and start
//! one in-process, and the binary only adds signal handling. On shutdown the listener stops
//! accepting, every connection task is told to stop after its current request, and once they
//! have finished (or a grace period has passed) all logs are flushed and closed.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::broker::{Broker, StartError};
use crate::config::BrokerConfig;
use crate::connection;

/// How long connections get to finish their current request after shutdown is requested.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Runs a broker on `listener` until `shutdown` completes.
pub async fn run(
    listener: TcpListener,
    config: BrokerConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StartError> {
    let local = listener.local_addr().map_err(|source| StartError::Bind {
        addr: "0.0.0.0:0".parse().expect("literal address"),
        source,
    })?;
    tokio::pin!(shutdown);
    // Every broker is a member of a metadata quorum; without `controller.quorum.voters` it is
    // a quorum of one. Joining waits for a quorum of voters; a stop request meanwhile ends it.
    crate::broker::refuse_single_node_data(&config)?;
    let controller_addr = config.controller_bind_addr().transpose()?;
    let cluster = tokio::select! {
        joined = join_cluster(&config, controller_addr, local) => joined?,
        _ = &mut shutdown => {
            tracing::info!("stopped before the cluster had a quorum");
            return Ok(());
        }
    };
    let broker = tokio::task::block_in_place(|| Broker::open(config, local, cluster))?;
    let broker = Arc::new(broker);
    let (stop_tx, stop_rx) = watch::channel(false);
    let coordination = Arc::new(crate::metadata_sync::Coordination::new(
        broker.groups.clone(),
        broker.txn.clone(),
    ));
    // Ready means serving: the partitions this broker hosts are opened (recovered) and their
    // roles taken up before the ready line, not a moment after.
    tokio::task::block_in_place(|| {
        crate::metadata_sync::apply(
            broker.node_id(),
            &broker.topics,
            &broker.replicas,
            &coordination,
            &broker.cluster.image(),
        )
    });
    broker.applied.send_modify(|n| *n += 1);
    let sync = tokio::spawn(crate::metadata_sync::run(
        broker.node_id(),
        broker.topics.clone(),
        broker.replicas.clone(),
        coordination,
        broker.cluster.watch(),
        broker.applied.clone(),
        stop_rx.clone(),
    ));
    tracing::info!(
        node_id = broker.node_id(),
        cluster_id = %broker.cluster_id,
        "kbroker ready: listening on {local}, advertised as {}:{}",
        broker.advertised_host,
        broker.advertised_port
    );
    let retention = tokio::spawn(retention_loop(broker.clone(), stop_rx.clone()));
    let cleaner = tokio::spawn(cleaner_loop(broker.clone(), stop_rx.clone()));
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let broker = broker.clone();
                    let stop = stop_rx.clone();
                    connections.spawn(async move {
                        connection::serve(stream, peer, broker, stop).await;
                    });
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    tracing::info!("shutting down: {} open connection(s)", connections.len());
    drop(listener);
    // Hand leadership over before going away, so producers move on at once rather than after
    // the session timeout.
    match tokio::time::timeout(SHUTDOWN_GRACE, broker.cluster.controlled_shutdown()).await {
        Ok(Ok(true)) => tracing::info!("controlled shutdown: leadership handed over"),
        Ok(Ok(false)) => {
            tracing::info!("controlled shutdown: no other broker is running, nothing to hand over")
        }
        Ok(Err(e)) => tracing::warn!(error = %e, "controlled shutdown failed"),
        Err(_) => tracing::warn!("controlled shutdown timed out"),
    }
    broker.replicas.shutdown();
    let _ = stop_tx.send(true);
    let _ = sync.await;
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        connections.abort_all();
    }
    retention.abort();
    cleaner.abort();
    tokio::task::block_in_place(|| broker.shutdown());
    broker.cluster.stop().await;
    tracing::info!("kbroker stopped");
    Ok(())
}

/// How long a starting broker waits for the cluster's controller to answer its registration.
const JOIN_DEADLINE: Duration = Duration::from_secs(60);

/// Binds the controller listener (a lone voter, `controller_addr` = `None`, binds none: it
/// talks to no one), starts the Raft layer and registers this broker.
async fn join_cluster(
    config: &BrokerConfig,
    controller_addr: Option<std::net::SocketAddr>,
    kafka_addr: std::net::SocketAddr,
) -> Result<Arc<crate::cluster::Cluster>, StartError> {
    let settings = config.quorum();
    let listener = match controller_addr {
        None => None,
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Bind { addr, source })?,
        ),
    };
    let (host, port) = crate::broker::advertised(config, kafka_addr);
    let cfg = crate::cluster::ClusterConfig {
        node_id: config.node_id,
        voters: settings.voters.clone(),
        host,
        port,
        rack: config.rack.clone(),
        metadata_dir: settings.metadata_dir.clone(),
        session_timeout: Duration::from_millis(settings.session_timeout_ms),
        unclean_leader_election: settings.unclean_leader_election,
        leader_rebalance: settings
            .auto_leader_rebalance
            .then(|| crate::cluster::LeaderRebalance {
                interval: Duration::from_secs(settings.leader_imbalance_check_interval_s),
                max_imbalance_percent: settings.leader_imbalance_per_broker_percentage,
            }),
    };
    match controller_addr {
        Some(addr) => tracing::info!(
            node_id = config.node_id,
            "joining the cluster: controller listener on {addr}, voters {:?}",
            settings.voters
        ),
        None => tracing::info!(
            node_id = config.node_id,
            "no controller.quorum.voters: running as a quorum of one"
        ),
    }
    crate::cluster::Cluster::start(cfg, listener, JOIN_DEADLINE)
        .await
        .map_err(|e| StartError::Cluster(e.to_string()))
}

/// Environment variable for tests only: milliseconds the log cleaner sleeps after writing
/// each `.cleaned` file, before swapping it in, so a test can kill the broker mid-clean.
const CLEANER_PAUSE_ENV: &str = "KBROKER_TEST_CLEANER_PAUSE_MS";

/// Runs the log cleaner over the compacted topics every `log.cleaner.backoff.ms`.
async fn cleaner_loop(broker: Arc<Broker>, stop: watch::Receiver<bool>) {
    let period = Duration::from_millis(broker.config.log_cleaner_backoff_ms);
    let pause = std::env::var(CLEANER_PAUSE_ENV)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_millis);
    every(period, stop, move |now| {
        let hook = |path: &std::path::Path| {
            if let Some(pause) = pause {
                tracing::info!(file = %path.display(), "cleaned segment written; pausing before the swap ({CLEANER_PAUSE_ENV})");
                std::thread::sleep(pause);
            }
        };
        broker.topics.clean_compacted(now, &hook);
    })
    .await;
}

/// Deletes old segments every `log.retention.check.interval.ms`.
async fn retention_loop(broker: Arc<Broker>, stop: watch::Receiver<bool>) {
    let period = Duration::from_millis(broker.config.log_retention_check_interval_ms);
    every(period, stop, move |now| broker.topics.apply_retention(now)).await;
}

/// Runs `work(now_ms)` on a blocking thread every `period` (a late tick delays the next rather
/// than bunching them) until the broker stops.
async fn every<F>(period: Duration, mut stop: watch::Receiver<bool>, work: F)
where
    F: Fn(i64) + Send + Sync + 'static,
{
    let work = Arc::new(work);
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let (w, now) = (work.clone(), crate::clock::now_ms());
                let _ = tokio::task::spawn_blocking(move || w(now)).await;
            }
            _ = stop.changed() => return,
        }
    }
}
