//! A small Kafka client for broker-to-broker requests (follower fetches, transaction markers): one TCP connection,
//! length-prefixed frames, request header v1/v2 as the API version needs, one request in flight.
//! Encoding and decoding are the `kafka-protocol` crate's; this adds only framing and I/O.

use std::time::Duration;

use bytes::{Buf, BufMut, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest response frame accepted (a fetch response is bounded by its `max_bytes`).
const MAX_FRAME: usize = 256 << 20;

/// Why a broker-to-broker request failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ClientError {
    /// Connecting, writing or reading failed.
    #[error("connection to broker {addr} failed: {source}")]
    Io {
        /// `host:port`.
        addr: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// No answer in time.
    #[error("broker {addr} did not answer within {timeout:?}")]
    Timeout {
        /// `host:port`.
        addr: String,
        /// The time allowed.
        timeout: Duration,
    },
    /// The answer could not be decoded or does not match the request.
    #[error("bad response from broker {addr}: {reason}")]
    Protocol {
        /// `host:port`.
        addr: String,
        /// What was wrong.
        reason: String,
    },
}

/// One connection to a broker.
pub(crate) struct Connection {
    /// The socket.
    stream: TcpStream,
    /// `host:port`, for error messages.
    addr: String,
    /// Correlation id of the last request.
    correlation: i32,
    /// Client id sent in every request header.
    client_id: StrBytes,
}

impl Connection {
    /// Connects to `host:port` within `timeout`.
    pub(crate) async fn connect(
        host: &str,
        port: u16,
        client_id: &str,
        timeout: Duration,
    ) -> Result<Connection, ClientError> {
        let addr = format!("{host}:{port}");
        let stream = tokio::time::timeout(timeout, TcpStream::connect((host, port)))
            .await
            .map_err(|_| ClientError::Timeout {
                addr: addr.clone(),
                timeout,
            })?
            .map_err(|source| ClientError::Io {
                addr: addr.clone(),
                source,
            })?;
        let _ = stream.set_nodelay(true);
        Ok(Connection {
            stream,
            addr,
            correlation: 0,
            client_id: StrBytes::from_string(client_id.to_owned()),
        })
    }

    /// Sends `body` as `api` at `version` and waits (at most `timeout`) for its response.
    /// After an error the connection must be dropped (a response may be half read).
    pub(crate) async fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        body: &Req,
        timeout: Duration,
    ) -> Result<Resp, ClientError> {
        let addr = self.addr.clone();
        match tokio::time::timeout(timeout, self.call_inner(api, version, body)).await {
            Ok(r) => r,
            Err(_) => Err(ClientError::Timeout { addr, timeout }),
        }
    }

    async fn call_inner<Req: Encodable, Resp: Decodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        body: &Req,
    ) -> Result<Resp, ClientError> {
        self.correlation = self.correlation.wrapping_add(1);
        let protocol = |reason: String| ClientError::Protocol {
            addr: self.addr.clone(),
            reason,
        };
        let mut header = RequestHeader::default();
        header.request_api_key = api as i16;
        header.request_api_version = version;
        header.correlation_id = self.correlation;
        header.client_id = Some(self.client_id.clone());
        let mut buf = BytesMut::with_capacity(256);
        buf.put_i32(0);
        header
            .encode(&mut buf, api.request_header_version(version))
            .map_err(|e| protocol(format!("cannot encode {api:?} header: {e}")))?;
        body.encode(&mut buf, version)
            .map_err(|e| protocol(format!("cannot encode {api:?} v{version}: {e}")))?;
        let len = i32::try_from(buf.len() - 4)
            .map_err(|_| protocol(format!("{api:?} request too large")))?;
        buf[..4].copy_from_slice(&len.to_be_bytes());
        let io = |source| ClientError::Io {
            addr: self.addr.clone(),
            source,
        };
        self.stream.write_all(&buf).await.map_err(io)?;
        let n = self.stream.read_i32().await.map_err(io)?;
        let n = usize::try_from(n)
            .ok()
            .filter(|&n| n <= MAX_FRAME)
            .ok_or_else(|| protocol(format!("response frame of {n} bytes")))?;
        let mut frame = crate::wire::read_exactly(&mut self.stream, n)
            .await
            .map_err(io)?
            .freeze();
        let h = ResponseHeader::decode(&mut frame, api.response_header_version(version))
            .map_err(|e| protocol(format!("cannot decode {api:?} response header: {e}")))?;
        if h.correlation_id != self.correlation {
            return Err(protocol(format!(
                "correlation id {} answers request {}",
                h.correlation_id, self.correlation
            )));
        }
        let resp = Resp::decode(&mut frame, version)
            .map_err(|e| protocol(format!("cannot decode {api:?} v{version} response: {e}")))?;
        if frame.has_remaining() {
            tracing::debug!(addr = %self.addr, left = frame.remaining(), "trailing bytes in response");
        }
        Ok(resp)
    }
}
