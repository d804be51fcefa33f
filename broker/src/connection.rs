//! One client connection: Kafka frames in, responses out, in order.
//!
//! A frame is a big-endian `i32` size followed by that many bytes. The size is checked before
//! anything is allocated (negative or over `socket.request.max.bytes` closes the connection, as
//! Kafka does), and every read is bounded by `connections.max.idle.ms`, so a client that stops
//! mid-frame costs one idle task until the timeout, never a stuck broker. Anything the broker
//! cannot parse closes this connection only, with a warning naming the peer and what was wrong.
//!
//! Requests on one connection are processed in order and answered in order, which is Kafka's
//! guarantee to clients (and what idempotent producers rely on). Within that guarantee,
//! consecutive requests of a staged API (Produce; [`handlers::Handling`]) are pipelined: each
//! is appended as soon as it arrives, in order, and only its wait for replication (acks=all)
//! overlaps with the next ones, up to
//! [`MAX_PIPELINED`] outstanding responses. Without this a producer connection would carry one
//! acks=all request per replication round trip, however many requests the client keeps in
//! flight. Any other request first waits until every earlier response is sent, so it sees the
//! connection exactly as if requests were handled one at a time.
//!
//! A fetch response refers to the record batches it carries rather than copying them into
//! its frame, and goes out with one vectored write ([`crate::wire::frame`]); other responses
//! are encoded into one buffer.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures::stream::{FuturesOrdered, StreamExt};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, RequestKind, ResponseHeader, ResponseKind,
};
use kafka_protocol::protocol::Encodable;
use tokio::io::{AsyncReadExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

use crate::broker::Broker;
use crate::handlers::{self, Handling, RequestContext};
use crate::request::{self, Request, RequestError};
use crate::wire::frame::FrameBuf;

/// Produce responses that may be outstanding on one connection: the Java client's default
/// `max.in.flight.requests.per.connection`. Past it the connection reads nothing more until
/// the oldest is answered (the client then waits on TCP, as with a busy Kafka broker).
pub(crate) const MAX_PIPELINED: usize = 5;

/// What to do after a frame was handled.
enum Outcome {
    /// Send these parts, in order (together, a complete response frame).
    Reply(Vec<Bytes>),
    /// Send nothing (a produce request with acks=0).
    NoReply,
    /// Close the connection; the reason is logged.
    Close(String),
}

/// A response still being worked out (a produce request waiting for replication).
type PendingReply = Pin<Box<dyn Future<Output = Outcome> + Send>>;

/// Aborts the frame reader when the connection ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Serves one connection until the client closes it, it misbehaves, it idles out, or the broker
/// stops.
pub(crate) async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    broker: Arc<Broker>,
    mut stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let (rd, mut wr) = stream.into_split();
    let idle = Duration::from_millis(broker.config.connections_max_idle_ms);
    let max = broker.config.socket_request_max_bytes;
    // The reader runs ahead by one frame at most, so a frame is never lost half-read when the
    // loop below turns to a response that completed.
    let (tx, mut frames) = mpsc::channel(1);
    let _reader = AbortOnDrop(tokio::spawn(read_frames(rd, peer, idle, max, tx)));
    let mut pending: FuturesOrdered<PendingReply> = FuturesOrdered::new();
    loop {
        tokio::select! {
            Some(outcome) = pending.next(), if !pending.is_empty() => {
                if !send(&mut wr, peer, outcome).await {
                    return;
                }
            }
            frame = frames.recv(), if pending.len() < MAX_PIPELINED => {
                let Some(frame) = frame else {
                    // The client closed, idled out or sent a bad frame: answer what was asked.
                    drain(&mut pending, &mut wr, peer).await;
                    return;
                };
                let request = match decode_frame(frame) {
                    Ok(request) => request,
                    Err(outcome) => {
                        // Earlier requests are answered, then this one (usually: the connection
                        // closes), before another frame is looked at.
                        if !drain(&mut pending, &mut wr, peer).await
                            || !send(&mut wr, peer, outcome).await
                        {
                            return;
                        }
                        continue;
                    }
                };
                let (api_key, version, correlation_id) =
                    (request.api_key, request.version, request.correlation_id);
                // acks=0: the client reads no response.
                let silent = matches!(&request.body, RequestKind::Produce(p) if p.acks == 0);
                let answer = move |response: ResponseKind| match silent {
                    true => Outcome::NoReply,
                    false => reply(api_key, version, correlation_id, &response, peer),
                };
                let ctx = RequestContext {
                    broker: &broker,
                    header: &request.header,
                    version,
                    peer,
                };
                match handlers::dispatch(&ctx, request.body) {
                    Handling::Staged(response) => {
                        pending.push_back(Box::pin(async move { answer(response.await) }));
                    }
                    Handling::InTurn(response) => {
                        if !drain(&mut pending, &mut wr, peer).await {
                            return;
                        }
                        if !send(&mut wr, peer, answer(response.await)).await {
                            return;
                        }
                    }
                };
            }
            _ = stop.changed() => {
                drain(&mut pending, &mut wr, peer).await;
                return;
            }
        }
    }
}

/// Reads frames until the client closes, idles out or breaks the framing; each complete frame
/// goes to `tx`.
async fn read_frames(
    rd: OwnedReadHalf,
    peer: SocketAddr,
    idle: Duration,
    max: usize,
    tx: mpsc::Sender<Bytes>,
) {
    let mut rd = BufReader::with_capacity(64 * 1024, rd);
    loop {
        let size = match tokio::time::timeout(idle, rd.read_i32()).await {
            Ok(Ok(n)) => n,
            Ok(Err(_)) => return, // closed by the client
            Err(_) => {
                tracing::debug!(%peer, "closing idle connection");
                return;
            }
        };
        if size < 0 || size as usize > max {
            tracing::warn!(%peer, size, limit = max, "closing connection: request size is negative or exceeds socket.request.max.bytes");
            return;
        }
        let frame = match tokio::time::timeout(
            idle,
            crate::wire::read_exactly(&mut rd, size as usize),
        )
        .await
        {
            Ok(Ok(frame)) => frame,
            Ok(Err(_)) => {
                tracing::debug!(%peer, size, "connection closed mid-request");
                return;
            }
            Err(_) => {
                tracing::warn!(%peer, size, "closing connection: request not completed within connections.max.idle.ms");
                return;
            }
        };
        if tx.send(frame.freeze()).await.is_err() {
            return;
        }
    }
}

/// Writes one outcome; `false` when the connection must end.
async fn send(wr: &mut OwnedWriteHalf, peer: SocketAddr, outcome: Outcome) -> bool {
    match outcome {
        Outcome::Reply(parts) => crate::wire::frame::write_parts(wr, parts).await.is_ok(),
        Outcome::NoReply => true,
        Outcome::Close(reason) => {
            tracing::warn!(%peer, "closing connection: {reason}");
            false
        }
    }
}

/// Sends every pending response, oldest first; `false` when the connection must end.
async fn drain(
    pending: &mut FuturesOrdered<PendingReply>,
    wr: &mut OwnedWriteHalf,
    peer: SocketAddr,
) -> bool {
    while let Some(outcome) = pending.next().await {
        if !send(wr, peer, outcome).await {
            return false;
        }
    }
    true
}

/// Encodes a response frame, or closes the connection if that fails (a kbroker bug).
fn reply(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    response: &ResponseKind,
    peer: SocketAddr,
) -> Outcome {
    match encode_frame(api_key, version, correlation_id, response) {
        Ok(parts) => Outcome::Reply(parts),
        Err(e) => {
            tracing::error!(%peer, api = ?api_key, version, error = %e, "cannot encode response (a kbroker bug)");
            Outcome::Close(format!(
                "internal error encoding {api_key:?} v{version} response"
            ))
        }
    }
}

/// Decodes a request frame as kbroker serves it: the API and version must be ones the handlers
/// table registers, and the body passes the bounds check before it is decoded. This is the
/// whole path from a frame's bytes to a typed request, so it is also what the `request_frame`
/// fuzz target drives.
pub fn decode_request(frame: Bytes) -> Result<Request, RequestError> {
    request::decode(frame, handlers::supported_versions)
}

/// Every API kbroker serves with the range of versions [`decode_request`] accepts for it
/// (`(api, min, max)`), from the handlers' table. The structure-aware fuzz target uses it to aim
/// its inputs at versions that get past the version check.
pub fn served_requests() -> &'static [(ApiKey, i16, i16)] {
    handlers::SUPPORTED
}

/// Decodes a request frame; `Err` is what to answer instead (usually: close, with the reason).
fn decode_frame(frame: Bytes) -> Result<Request, Outcome> {
    decode_request(frame).map_err(|e| match e {
        RequestError::ApiVersionsTooNew { correlation_id, .. } => {
            // Kafka answers an ApiVersions request it cannot parse with a v0 response carrying
            // UNSUPPORTED_VERSION and its ranges, so the client can retry with a version we know.
            unsupported_api_versions(correlation_id)
        }
        e => Outcome::Close(e.to_string()),
    })
}

/// Frames a response: size, response header for this API and version, body.
fn encode_response(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    response: &ResponseKind,
) -> anyhow::Result<BytesMut> {
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0);
    let mut header = ResponseHeader::default();
    header.correlation_id = correlation_id;
    header.encode(&mut buf, api_key.response_header_version(version))?;
    response.encode(&mut buf, version)?;
    let size = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf)
}

/// [`encode_response`], except that a fetch response's record batches are referred to, not
/// copied (see [`crate::wire::frame`]).
fn encode_frame(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    response: &ResponseKind,
) -> anyhow::Result<Vec<Bytes>> {
    let ResponseKind::Fetch(fetch) = response else {
        return Ok(vec![encode_response(
            api_key,
            version,
            correlation_id,
            response,
        )?
        .freeze()]);
    };
    let records = fetch
        .responses
        .iter()
        .flat_map(|t| &t.partitions)
        .filter_map(|p| p.records.clone())
        .collect();
    let mut buf = FrameBuf::sharing(records);
    let mut header = ResponseHeader::default();
    header.correlation_id = correlation_id;
    header.encode(&mut buf, api_key.response_header_version(version))?;
    fetch.encode(&mut buf, version)?;
    let size = i32::try_from(buf.len())?;
    let mut parts = vec![Bytes::copy_from_slice(&size.to_be_bytes())];
    parts.extend(buf.into_parts());
    Ok(parts)
}

/// The v0 ApiVersions error response for a version we do not speak.
fn unsupported_api_versions(correlation_id: i32) -> Outcome {
    let mut resp = ApiVersionsResponse::default();
    resp.error_code = kafka_protocol::error::ResponseError::UnsupportedVersion.code();
    resp.api_keys = handlers::api_versions::supported_list();
    match encode_response(
        ApiKey::ApiVersions,
        0,
        correlation_id,
        &ResponseKind::ApiVersions(resp),
    ) {
        Ok(b) => Outcome::Reply(vec![b.freeze()]),
        Err(e) => Outcome::Close(format!("cannot encode ApiVersions error response: {e}")),
    }
}

/// Reads a big-endian i32 from the start of a slice (used by tests of framing).
#[cfg(test)]
fn peek_i32(b: &[u8]) -> i32 {
    i32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_frame_carries_its_size_and_correlation_id() {
        let resp = ResponseKind::ApiVersions(ApiVersionsResponse::default());
        let b = encode_response(ApiKey::ApiVersions, 0, 77, &resp).unwrap();
        assert_eq!(peek_i32(&b) as usize, b.len() - 4);
        assert_eq!(peek_i32(&b[4..]), 77);
    }

    #[test]
    fn a_fetch_frame_is_the_encoded_response_with_its_records_shared() {
        use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
        use kafka_protocol::messages::FetchResponse;
        let records = Bytes::from(vec![5u8; 20_000]);
        let mut pd = PartitionData::default();
        pd.records = Some(records.clone());
        let mut topic = FetchableTopicResponse::default();
        topic.partitions.push(pd);
        let mut fetch = FetchResponse::default();
        fetch.responses.push(topic);
        let resp = ResponseKind::Fetch(fetch);
        for version in [4, 11, 12, 16] {
            let parts = encode_frame(ApiKey::Fetch, version, 9, &resp).unwrap();
            let joined: Vec<u8> = parts.iter().flat_map(|p| p.iter().copied()).collect();
            let copied = encode_response(ApiKey::Fetch, version, 9, &resp).unwrap();
            assert!(joined == copied.to_vec(), "version {version}");
            assert!(parts.iter().any(|p| p.as_ptr() == records.as_ptr()));
        }
    }
}
