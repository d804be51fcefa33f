//! On-disk partition sizes from any Kafka cluster, through the DescribeLogDirs API.
//!
//! The on-disk check must work against real clusters too, where kbench cannot walk the brokers'
//! directories. Kafka answers this question itself: DescribeLogDirs (API key 35) lists every
//! replica's size per log dir. librdkafka has no admin call for it, so this module sends that one
//! request over the Kafka protocol with the `kafka-protocol` codec: version 1, which every broker
//! from Kafka 1.0 to 4.x accepts, on a plaintext connection to each broker the cluster's metadata
//! names. Clusters that need TLS or SASL get a clear error and the check reports itself
//! unavailable rather than guessing.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::{Buf, BufMut, BytesMut};
use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use kafka_protocol::messages::{
    ApiKey, DescribeLogDirsRequest, DescribeLogDirsResponse, RequestHeader, ResponseHeader,
    TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::sut::ClusterAccess;

/// The DescribeLogDirs version used: the oldest every supported broker accepts.
const VERSION: i16 = 1;
/// Bound on connecting to and hearing back from one broker.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Largest response accepted (a cluster with very many partitions answers in a few MiB).
const MAX_RESPONSE: usize = 256 << 20;

/// Bytes on disk of every replica of `topic`'s partitions on `brokers` (`(node id,
/// "host:port")`), keyed by (partition, broker). Replicas being moved between log dirs
/// ("future" replicas) are not counted.
pub async fn topic_sizes(
    brokers: &[(i32, String)],
    topic: &str,
    partitions: i32,
) -> anyhow::Result<BTreeMap<(i32, i32), u64>> {
    let mut sizes = BTreeMap::new();
    for (id, addr) in brokers {
        let resp = describe(addr, topic, partitions)
            .await
            .with_context(|| format!("DescribeLogDirs to broker {id} at {addr}"))?;
        if resp.error_code != 0 {
            bail!(
                "broker {id} at {addr} answered DescribeLogDirs with error {}",
                resp.error_code
            );
        }
        for dir in resp.results {
            if dir.error_code != 0 {
                // An offline log dir: its replicas are not on disk here.
                continue;
            }
            for t in dir.topics.iter().filter(|t| t.name.0.as_str() == topic) {
                for p in t.partitions.iter().filter(|p| !p.is_future_key) {
                    *sizes.entry((p.partition_index, *id)).or_insert(0) +=
                        p.partition_size.max(0) as u64;
                }
            }
        }
    }
    Ok(sizes)
}

/// One DescribeLogDirs request to one broker.
async fn describe(
    addr: &str,
    topic: &str,
    partitions: i32,
) -> anyhow::Result<DescribeLogDirsResponse> {
    let mut stream = tokio::time::timeout(TIMEOUT, TcpStream::connect(addr))
        .await
        .context("connect timed out")?
        .context("cannot connect")?;
    let mut header = RequestHeader::default();
    header.request_api_key = ApiKey::DescribeLogDirs as i16;
    header.request_api_version = VERSION;
    header.correlation_id = 1;
    header.client_id = Some(StrBytes::from_static_str("kbench"));
    let mut t = DescribableLogDirTopic::default();
    t.topic = TopicName(StrBytes::from_string(topic.to_owned()));
    t.partitions = (0..partitions).collect();
    let mut req = DescribeLogDirsRequest::default();
    req.topics = Some(vec![t]);

    let mut frame = BytesMut::new();
    frame.put_i32(0);
    header.encode(
        &mut frame,
        ApiKey::DescribeLogDirs.request_header_version(VERSION),
    )?;
    req.encode(&mut frame, VERSION)?;
    let size = (frame.len() - 4) as i32;
    frame[..4].copy_from_slice(&size.to_be_bytes());

    let exchange = async {
        stream.write_all(&frame).await?;
        let n = stream.read_i32().await?;
        if n < 0 || n as usize > MAX_RESPONSE {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("response size {n} is not plausible (is this a TLS or SASL listener?)"),
            ));
        }
        let mut body = vec![0u8; n as usize];
        stream.read_exact(&mut body).await?;
        Ok(body)
    };
    let body = tokio::time::timeout(TIMEOUT, exchange)
        .await
        .context("no answer in time (a TLS or SASL listener does not answer plaintext)")?
        .context("connection failed")?;
    let mut body = bytes::Bytes::from(body);
    let h = ResponseHeader::decode(
        &mut body,
        ApiKey::DescribeLogDirs.response_header_version(VERSION),
    )?;
    if h.correlation_id != 1 {
        bail!(
            "answer carries correlation id {} instead of 1",
            h.correlation_id
        );
    }
    let resp = DescribeLogDirsResponse::decode(&mut body, VERSION)?;
    if body.has_remaining() {
        tracing::debug!(
            extra = body.remaining(),
            "trailing bytes after DescribeLogDirs response"
        );
    }
    Ok(resp)
}

/// Replica sizes per partition of `topic` on the cluster behind `cluster`: the brokers come
/// from the cluster's metadata (librdkafka), the sizes from DescribeLogDirs to each of them.
///
/// librdkafka has no DescribeLogDirs call, so kbench sends that request itself, over a plain
/// TCP connection: against a cluster that needs TLS or SASL the check is unavailable, and the
/// error says so.
pub async fn snapshot(
    cluster: &ClusterAccess,
    topic: &str,
    partitions: i32,
) -> anyhow::Result<BTreeMap<(i32, i32), u64>> {
    let protocol = cluster.security_protocol();
    if protocol != "plaintext" {
        bail!(
            "kbench sends DescribeLogDirs itself over a plaintext connection and this cluster              is reached with security.protocol={protocol}; a PLAINTEXT listener would allow the check"
        );
    }
    let cluster = cluster.clone();
    let brokers = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<(i32, String)>> {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        let bootstrap = cluster.bootstrap();
        let client: BaseConsumer = cluster
            .client("kbench-log-dirs")
            .create()
            .context("cannot create a metadata client")?;
        let md = client
            .fetch_metadata(None, TIMEOUT)
            .with_context(|| format!("cannot read the metadata of {bootstrap}"))?;
        Ok(md
            .brokers()
            .iter()
            .map(|b| (b.id(), format!("{}:{}", b.host(), b.port())))
            .collect())
    })
    .await
    .context("metadata task failed")??;
    topic_sizes(&brokers, topic, partitions).await
}

/// Who holds one partition, as the cluster's metadata says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Roles {
    /// Leader (broker id; -1 when there is none).
    pub leader: i32,
    /// Replicas (broker ids).
    pub replicas: Vec<i32>,
    /// In-sync replicas (broker ids).
    pub isr: Vec<i32>,
}

/// Leader, replicas and in-sync replicas of each partition of `topic`, from the cluster's
/// metadata (librdkafka), keyed by partition.
pub fn partition_roles(
    cluster: &ClusterAccess,
    topic: &str,
) -> anyhow::Result<BTreeMap<i32, Roles>> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let client: BaseConsumer = cluster
        .client("kbench-log-dirs")
        .create()
        .context("cannot create a metadata client")?;
    let md = client
        .fetch_metadata(Some(topic), TIMEOUT)
        .with_context(|| format!("cannot read the metadata of {topic}"))?;
    let t = md
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .with_context(|| format!("the metadata does not list {topic}"))?;
    Ok(t.partitions()
        .iter()
        .map(|p| {
            let roles = Roles {
                leader: p.leader(),
                replicas: p.replicas().to_vec(),
                isr: p.isr().to_vec(),
            };
            (p.id(), roles)
        })
        .collect())
}
