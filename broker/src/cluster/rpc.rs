//! Frames and messages between controller listeners.
//!
//! A frame is a `u32` big-endian length then that many bytes of JSON. One request, one response,
//! in order, on a persistent connection. JSON keeps the wire readable while debugging; the metadata
//! traffic is small. A frame above [`MAX_FRAME`] or one that does not parse closes the connection.
//!
//! Every response carries the responder's broker id and incarnation: that is how the controller
//! learns, from its ordinary Raft traffic, that a broker is alive and whether it restarted.

use std::io;
use std::time::Duration;

use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use uuid::Uuid;

use super::controller::{ControllerReply, ControllerRequest};
use super::{ClusterError, TypeConfig};

/// Largest accepted frame (snapshots are sent in chunks well below this).
pub(crate) const MAX_FRAME: usize = 64 << 20;
/// How long a connection attempt may take.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_millis(300);

/// A request to a controller listener.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum RpcRequest {
    /// Raft log replication / heartbeat.
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    /// Raft election.
    Vote(VoteRequest<u64>),
    /// Raft snapshot chunk.
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    /// A controller request (only the leader acts on it).
    Controller(ControllerRequest),
}

/// A response, stamped with who answered.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct RpcResponse {
    /// Broker id of the responder.
    pub(crate) from: i32,
    /// Incarnation of the responding process.
    pub(crate) incarnation: Uuid,
    /// The answer.
    pub(crate) body: RpcReply,
}

/// The answer to each kind of [`RpcRequest`].
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum RpcReply {
    /// Answer to AppendEntries.
    AppendEntries(Result<AppendEntriesResponse<u64>, RaftError<u64>>),
    /// Answer to Vote.
    Vote(Result<VoteResponse<u64>, RaftError<u64>>),
    /// Answer to InstallSnapshot.
    InstallSnapshot(Result<InstallSnapshotResponse<u64>, RaftError<u64, InstallSnapshotError>>),
    /// Answer to a controller request.
    Controller(Result<ControllerReply, ClusterError>),
}

impl RpcReply {
    /// Name of the variant, for error messages.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            RpcReply::AppendEntries(_) => "AppendEntries",
            RpcReply::Vote(_) => "Vote",
            RpcReply::InstallSnapshot(_) => "InstallSnapshot",
            RpcReply::Controller(_) => "Controller",
        }
    }
}

/// Why a message could not become a frame.
pub(crate) enum EncodeError {
    /// Serialization failed.
    Io(io::Error),
    /// The message is larger than [`MAX_FRAME`] (its size).
    TooLarge(usize),
}

/// One message as a frame: length prefix and JSON body.
pub(crate) fn encode_frame<T: Serialize>(msg: &T) -> Result<Vec<u8>, EncodeError> {
    let body = serde_json::to_vec(msg)
        .map_err(|e| EncodeError::Io(io::Error::new(io::ErrorKind::InvalidData, e)))?;
    if body.len() > MAX_FRAME {
        return Err(EncodeError::TooLarge(body.len()));
    }
    let mut buf = Vec::with_capacity(body.len() + 4);
    buf.extend_from_slice(&(body.len() as u32).to_be_bytes());
    buf.extend_from_slice(&body);
    Ok(buf)
}

/// Writes one frame.
pub(crate) async fn write_frame<W: AsyncWrite + Unpin, T: Serialize>(
    w: &mut W,
    msg: &T,
) -> io::Result<()> {
    let buf = match encode_frame(msg) {
        Ok(buf) => buf,
        Err(EncodeError::Io(e)) => return Err(e),
        Err(EncodeError::TooLarge(bytes)) => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("frame of {bytes} bytes exceeds the {MAX_FRAME} byte limit"),
            ))
        }
    };
    w.write_all(&buf).await?;
    w.flush().await
}

/// Reads one frame; `Ok(None)` on a clean end of stream between frames.
pub(crate) async fn read_frame<R: AsyncRead + Unpin, T: DeserializeOwned>(
    r: &mut R,
) -> io::Result<Option<T>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes exceeds the {MAX_FRAME} byte limit"),
        ));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    serde_json::from_slice(&body).map(Some).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("undecodable frame of {len} bytes: {e}"),
        )
    })
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CallError {
    /// The peer refused the connection: nothing listens, the process is gone.
    #[error("connection refused by {0}")]
    Refused(String),
    /// No answer in time.
    #[error("no answer from {addr} within {timeout:?}")]
    Timeout { addr: String, timeout: Duration },
    /// The request does not fit in a frame (nothing was sent).
    #[error("request of {bytes} bytes to {addr} exceeds the {MAX_FRAME} byte frame limit")]
    TooLarge { addr: String, bytes: usize },
    /// Any other I/O failure.
    #[error("{addr}: {source}")]
    Io { addr: String, source: io::Error },
}

/// A persistent, lazily (re)connected client connection to one peer.
pub(crate) struct PeerConn {
    addr: String,
    stream: Option<TcpStream>,
}

impl PeerConn {
    /// A client for `addr`; connects on first use.
    pub(crate) fn new(addr: String) -> PeerConn {
        PeerConn { addr, stream: None }
    }

    /// Sends `req` and waits for the response within `timeout`. A failure drops the connection;
    /// a failure on a reused connection is retried once on a fresh one (the peer may have closed
    /// it, e.g. after restarting).
    pub(crate) async fn call(
        &mut self,
        req: &RpcRequest,
        timeout: Duration,
    ) -> Result<RpcResponse, CallError> {
        let reused = self.stream.is_some();
        match self.call_once(req, timeout).await {
            Err(CallError::Io { .. }) if reused => self.call_once(req, timeout).await,
            other => other,
        }
    }

    async fn call_once(
        &mut self,
        req: &RpcRequest,
        timeout: Duration,
    ) -> Result<RpcResponse, CallError> {
        let res = tokio::time::timeout(timeout, async {
            if self.stream.is_none() {
                let s = match tokio::time::timeout(
                    CONNECT_TIMEOUT.min(timeout),
                    TcpStream::connect(&self.addr),
                )
                .await
                {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
                        return Err(CallError::Refused(self.addr.clone()))
                    }
                    Ok(Err(e)) => {
                        return Err(CallError::Io {
                            addr: self.addr.clone(),
                            source: e,
                        })
                    }
                    Err(_) => {
                        return Err(CallError::Timeout {
                            addr: self.addr.clone(),
                            timeout: CONNECT_TIMEOUT,
                        })
                    }
                };
                let _ = s.set_nodelay(true);
                self.stream = Some(s);
            }
            let Some(stream) = self.stream.as_mut() else {
                return Err(CallError::Io {
                    addr: self.addr.clone(),
                    source: io::ErrorKind::NotConnected.into(),
                });
            };
            let io = |source| CallError::Io {
                addr: self.addr.clone(),
                source,
            };
            let frame = match encode_frame(req) {
                Ok(frame) => frame,
                Err(EncodeError::TooLarge(bytes)) => {
                    return Err(CallError::TooLarge {
                        addr: self.addr.clone(),
                        bytes,
                    })
                }
                Err(EncodeError::Io(e)) => return Err(io(e)),
            };
            stream.write_all(&frame).await.map_err(io)?;
            match read_frame::<_, RpcResponse>(stream).await.map_err(io)? {
                Some(r) => Ok(r),
                None => Err(io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed before the response",
                ))),
            }
        })
        .await;
        let res = match res {
            Ok(r) => r,
            Err(_) => Err(CallError::Timeout {
                addr: self.addr.clone(),
                timeout,
            }),
        };
        if res.is_err() {
            self.stream = None;
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_oversized_frames_are_refused() {
        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        write_frame(&mut a, &vec![1u32, 2, 3]).await.unwrap();
        let got: Option<Vec<u32>> = read_frame(&mut b).await.unwrap();
        assert_eq!(got, Some(vec![1, 2, 3]));

        a.write_all(&(u32::MAX).to_be_bytes()).await.unwrap();
        let err = read_frame::<_, Vec<u32>>(&mut b).await.unwrap_err();
        assert!(err.to_string().contains("exceeds"), "{err}");

        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        a.write_all(&3u32.to_be_bytes()).await.unwrap();
        a.write_all(b"{{{").await.unwrap();
        let err = read_frame::<_, Vec<u32>>(&mut b).await.unwrap_err();
        assert!(err.to_string().contains("undecodable"), "{err}");
        drop(a);
        assert!(
            read_frame::<_, Vec<u32>>(&mut b).await.unwrap().is_none(),
            "clean EOF"
        );
    }
}
