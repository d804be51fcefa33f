//! `kbench cluster`: a local embedded cluster for fault experiments, driven from other shells
//! with the same verbs and flags as `compat/kafka/kafka.sh` (the Apache Kafka peer), and a
//! description of any cluster.
//!
//! - [`up`]: starts the brokers and supervises them: one broker's death leaves the others
//!   serving; it owns every broker process, so none outlives it.
//! - [`control`]: the socket in DIR through which `kill | stop | start | down` ask `up` to act,
//!   so a broker is only ever launched by `up`, through `sut::embedded`.
//! - [`describe`]: brokers (id, address, rack, alive, controller) and topics.
//!
//! So one scenario whose fault `command` is `kbench cluster kill --dir D --node {broker}` runs
//! against a local kbroker cluster, and with `compat/kafka/kafka.sh kill --dir D --node
//! {broker}` against a local Apache Kafka.

pub mod control;
pub mod describe;
pub mod up;

use std::path::Path;

pub use describe::describe;
pub use up::{parse_racks, up, UpOptions};

use crate::sut::embedded::BrokerStatus;
use control::{Reply, Request};

/// `kbench cluster kill | stop | start --dir DIR --node ID` (and `status`): asks the `up` at
/// `dir`; a refusal becomes an error naming DIR and the node.
pub async fn node_request(dir: &Path, request: Request) -> anyhow::Result<String> {
    let reply = control::send(dir, request).await?;
    if reply.ok {
        Ok(format!("cluster at {}: {}", dir.display(), reply.message))
    } else {
        anyhow::bail!("cluster at {}: {}", dir.display(), reply.message)
    }
}

/// `kbench cluster down --dir DIR`: stops every broker and the `up` process. Nothing running
/// at DIR is not an error (as with `kafka.sh down`, it is safe to call twice).
pub async fn down(dir: &Path) -> anyhow::Result<String> {
    match control::send(dir, Request::Down).await {
        Ok(Reply { ok: true, .. }) => {
            // `up` answers once the brokers have stopped, then exits; wait for its socket to
            // go so that a `down` followed by `up --dir DIR` does not race it.
            let socket = control::socket_path(dir);
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while socket.exists() && std::time::Instant::now() < deadline {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Ok(format!("cluster at {} is down", dir.display()))
        }
        Ok(reply) => anyhow::bail!("cluster at {}: {}", dir.display(), reply.message),
        Err(e) if e.downcast_ref::<control::NoCluster>().is_some() => Ok(format!(
            "no cluster running at {}; nothing to stop",
            dir.display()
        )),
        Err(e) => Err(e),
    }
}

/// The brokers of the `up` at `dir` and its bootstrap string, for `describe --dir`.
pub async fn known_brokers(dir: &Path) -> anyhow::Result<(Vec<BrokerStatus>, String)> {
    let reply = control::send(dir, Request::Status).await?;
    if !reply.ok {
        anyhow::bail!("cluster at {}: {}", dir.display(), reply.message);
    }
    let bootstrap = reply
        .brokers
        .iter()
        .map(|b| b.address.as_str())
        .collect::<Vec<_>>()
        .join(",");
    Ok((reply.brokers, bootstrap))
}
