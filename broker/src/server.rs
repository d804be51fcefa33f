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
    let broker = tokio::task::block_in_place(|| Broker::open(config, local))?;
    let broker = Arc::new(broker);
    tracing::info!(
        node_id = broker.node_id(),
        cluster_id = %broker.cluster_id,
        "kbroker ready: listening on {local}, advertised as {}:{}",
        broker.advertised_host,
        broker.advertised_port
    );

    let (stop_tx, stop_rx) = watch::channel(false);
    let retention = tokio::spawn(retention_loop(broker.clone(), stop_rx.clone()));
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
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
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        connections.abort_all();
    }
    retention.abort();
    tokio::task::block_in_place(|| broker.shutdown());
    tracing::info!("kbroker stopped");
    Ok(())
}

/// Deletes old segments every `log.retention.check.interval.ms`.
async fn retention_loop(broker: Arc<Broker>, mut stop: watch::Receiver<bool>) {
    let period = Duration::from_millis(broker.config.log_retention_check_interval_ms);
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let b = broker.clone();
                let now = crate::clock::now_ms();
                let _ = tokio::task::spawn_blocking(move || b.topics.apply_retention(now)).await;
            }
            _ = stop.changed() => return,
        }
    }
}
