//! One client connection: Kafka frames in, responses out, in order.
//!
//! A frame is a big-endian `i32` size followed by that many bytes. The size is checked before
//! anything is allocated (negative or over `socket.request.max.bytes` closes the connection, as
//! Kafka does), and every read is bounded by `connections.max.idle.ms`, so a client that stops
//! mid-frame costs one idle task until the timeout, never a stuck broker. Requests on one
//! connection are handled one at a time, in order, which is Kafka's guarantee to clients (and
//! what idempotent producers rely on). Anything the broker cannot parse closes this connection
//! only, with a warning naming the peer and what was wrong.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, RequestHeader, RequestKind, ResponseHeader, ResponseKind,
};
use kafka_protocol::protocol::{Decodable, Encodable};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::broker::Broker;
use crate::handlers::{self, RequestContext};

/// What to do after a frame was handled.
enum Outcome {
    /// Send these bytes (a complete response frame).
    Reply(BytesMut),
    /// Send nothing (a produce request with acks=0).
    NoReply,
    /// Close the connection; the reason is logged.
    Close(String),
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
    let mut rd = BufReader::with_capacity(64 * 1024, rd);
    let idle = Duration::from_millis(broker.config.connections_max_idle_ms);
    let max = broker.config.socket_request_max_bytes;
    loop {
        let size = tokio::select! {
            r = tokio::time::timeout(idle, rd.read_i32()) => match r {
                Ok(Ok(n)) => n,
                Ok(Err(_)) => return, // closed by the client
                Err(_) => {
                    tracing::debug!(%peer, "closing idle connection");
                    return;
                }
            },
            _ = stop.changed() => return,
        };
        if size < 0 || size as usize > max {
            tracing::warn!(%peer, size, limit = max, "closing connection: request size is negative or exceeds socket.request.max.bytes");
            return;
        }
        let mut frame = BytesMut::zeroed(size as usize);
        match tokio::time::timeout(idle, rd.read_exact(&mut frame)).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => {
                tracing::debug!(%peer, size, "connection closed mid-request");
                return;
            }
            Err(_) => {
                tracing::warn!(%peer, size, "closing connection: request not completed within connections.max.idle.ms");
                return;
            }
        }
        match handle_frame(&broker, peer, frame.freeze()).await {
            Outcome::Reply(bytes) => {
                if wr.write_all(&bytes).await.is_err() {
                    return;
                }
            }
            Outcome::NoReply => {}
            Outcome::Close(reason) => {
                tracing::warn!(%peer, "closing connection: {reason}");
                return;
            }
        }
    }
}

/// Decodes one request frame, dispatches it, and encodes the response frame.
async fn handle_frame(broker: &Arc<Broker>, peer: SocketAddr, mut frame: Bytes) -> Outcome {
    if frame.len() < 8 {
        return Outcome::Close(format!(
            "request of {} bytes is too short for a header",
            frame.len()
        ));
    }
    let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let Ok(api_key) = ApiKey::try_from(raw_key) else {
        return Outcome::Close(format!("unknown API key {raw_key}"));
    };
    let Some((min, max)) = handlers::supported_versions(api_key) else {
        return Outcome::Close(format!("API {api_key:?} (key {raw_key}) is not supported"));
    };
    if !(min..=max).contains(&version) {
        if api_key == ApiKey::ApiVersions {
            // Kafka answers an ApiVersions request it cannot parse with a v0 response carrying
            // UNSUPPORTED_VERSION and its ranges, so the client can retry with a version we know.
            return unsupported_api_versions(correlation_id);
        }
        if api_key == ApiKey::Produce && (0..min).contains(&version) {
            return Outcome::Close(format!(
                "Produce v{version} carries message format v0/v1, which kbroker does not store; \
                 use a client that writes record batches (Kafka 0.11+ clients, Produce v3+)"
            ));
        }
        return Outcome::Close(format!(
            "{api_key:?} v{version} is not supported (supported: v{min}-v{max})"
        ));
    }
    let header = match RequestHeader::decode(&mut frame, api_key.request_header_version(version)) {
        Ok(h) => h,
        Err(e) => return Outcome::Close(format!("malformed {api_key:?} v{version} header: {e}")),
    };
    let request = match RequestKind::decode(api_key, &mut frame, version) {
        Ok(r) => r,
        Err(e) => return Outcome::Close(format!("malformed {api_key:?} v{version} request: {e}")),
    };
    let silent = matches!(&request, RequestKind::Produce(p) if p.acks == 0);
    let ctx = RequestContext {
        broker,
        header: &header,
        version,
        peer,
    };
    let response = handlers::dispatch(&ctx, request).await;
    if silent {
        return Outcome::NoReply;
    }
    match encode_response(api_key, version, correlation_id, &response) {
        Ok(bytes) => Outcome::Reply(bytes),
        Err(e) => {
            tracing::error!(%peer, api = ?api_key, version, error = %e, "cannot encode response (a kbroker bug)");
            Outcome::Close(format!(
                "internal error encoding {api_key:?} v{version} response"
            ))
        }
    }
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
        Ok(b) => Outcome::Reply(b),
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
}
