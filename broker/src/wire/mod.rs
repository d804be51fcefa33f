//! The Kafka wire below the APIs: length-prefixed frames and the helpers both ends share.
//!
//! The broker reads request frames from clients ([`crate::connection`]) and, as a client of other
//! brokers, writes requests and reads response frames ([`client`]: a follower's fetches, the
//! transaction coordinator's WriteTxnMarkers). Both sides read a frame the same way and build
//! protocol strings the same way, so those live here, below everything that speaks Kafka, rather
//! than in the connection or the handlers (which replication and the transaction coordinator
//! must not reach up to). Outgoing frames that refer to record batches instead of copying them
//! are built in [`frame`].

use bytes::{BufMut, BytesMut};
use kafka_protocol::error::ResponseError;
use tokio::io::{AsyncRead, AsyncReadExt};

pub(crate) mod client;
pub(crate) mod frame;

/// Reads exactly `n` bytes into a fresh buffer, without zeroing it first (frames are up to
/// `socket.request.max.bytes`; a memset of each was a visible cost under load).
pub(crate) async fn read_exactly<R: AsyncRead + Unpin>(
    rd: &mut R,
    n: usize,
) -> std::io::Result<BytesMut> {
    let mut buf = BytesMut::with_capacity(n);
    while buf.len() < n {
        let want = n - buf.len();
        if rd.read_buf(&mut (&mut buf).limit(want)).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
    Ok(buf)
}

/// A Kafka error as a response carries it: the protocol's error code, and the message that goes
/// to the client (the responses' `error_message` fields, where the version has one) and to the
/// log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KafkaError {
    /// The error code ([`ResponseError::code`]).
    pub(crate) code: i16,
    /// What happened, naming the resource.
    pub(crate) message: String,
}

impl KafkaError {
    /// An error of a known kind.
    pub(crate) fn new(error: ResponseError, message: impl Into<String>) -> KafkaError {
        KafkaError::with_code(error.code(), message)
    }

    /// An error whose code another layer worked out (e.g. a log or topic error's own mapping).
    pub(crate) fn with_code(code: i16, message: impl Into<String>) -> KafkaError {
        KafkaError {
            code,
            message: message.into(),
        }
    }
}

/// A protocol string from a Rust string.
pub(crate) fn str_bytes(s: &str) -> kafka_protocol::protocol::StrBytes {
    kafka_protocol::protocol::StrBytes::from_string(s.to_owned())
}
