//! openraft's network over [`super::rpc`] frames, the controller listener, and peer liveness.
//!
//! Liveness comes for free from Raft: the leader sends AppendEntries (at least a heartbeat every
//! 100 ms) to every voter. [`Health`] records, per peer, when the last RPC succeeded, which
//! incarnation answered, and when a connection was last *refused* (nothing listens on the port:
//! the process is gone, the fastest possible death signal after `kill -9`). The controller reads it
//! to fence brokers (see `controller`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError,
    Unreachable,
};
use openraft::network::{Backoff, RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, Raft};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};
use uuid::Uuid;

use super::controller::Job;
use super::rpc::{read_frame, write_frame, CallError, PeerConn, RpcReply, RpcRequest, RpcResponse};
use super::{ClusterError, TypeConfig};

/// What this node last saw of one peer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PeerHealth {
    /// Last successful RPC to the peer.
    pub(crate) last_ok: Instant,
    /// Incarnation of the last answer.
    pub(crate) incarnation: Option<Uuid>,
    /// When a connection attempt was last refused, cleared by the next success.
    pub(crate) refused_at: Option<Instant>,
}

/// Per-peer liveness shared by the Raft network and the controller.
#[derive(Clone, Default)]
pub(crate) struct Health {
    peers: Arc<Mutex<BTreeMap<i32, PeerHealth>>>,
}

impl Health {
    fn with<R>(&self, f: impl FnOnce(&mut BTreeMap<i32, PeerHealth>) -> R) -> R {
        f(&mut self.peers.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn entry(map: &mut BTreeMap<i32, PeerHealth>, id: i32) -> &mut PeerHealth {
        map.entry(id).or_insert(PeerHealth {
            last_ok: Instant::now(),
            incarnation: None,
            refused_at: None,
        })
    }

    /// Records a successful RPC answered by `incarnation`.
    pub(crate) fn ok(&self, id: i32, incarnation: Uuid) {
        self.with(|m| {
            let h = Self::entry(m, id);
            h.last_ok = Instant::now();
            h.incarnation = Some(incarnation);
            h.refused_at = None;
        })
    }

    /// Records a refused connection.
    pub(crate) fn refused(&self, id: i32) {
        self.with(|m| Self::entry(m, id).refused_at = Some(Instant::now()))
    }

    /// Treats every peer in `ids` as seen now (on becoming leader: silence before does not count).
    pub(crate) fn reset(&self, ids: impl IntoIterator<Item = i32>) {
        let now = Instant::now();
        self.with(|m| {
            for id in ids {
                Self::entry(m, id).last_ok = now;
            }
        })
    }

    /// A copy of one peer's record.
    pub(crate) fn get(&self, id: i32) -> Option<PeerHealth> {
        self.with(|m| m.get(&id).copied())
    }
}

/// Creates one [`PeerNetwork`] per target for openraft.
pub(crate) struct NetworkFactory {
    health: Health,
}

impl NetworkFactory {
    /// A factory whose clients record into `health`.
    pub(crate) fn new(health: Health) -> NetworkFactory {
        NetworkFactory { health }
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerNetwork;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> PeerNetwork {
        PeerNetwork {
            target: target as i32,
            conn: PeerConn::new(node.addr.clone()),
            health: self.health.clone(),
        }
    }
}

/// openraft's client to one peer: a persistent connection.
pub(crate) struct PeerNetwork {
    target: i32,
    conn: PeerConn,
    health: Health,
}

type RpcErr<E = openraft::error::Infallible> = RPCError<u64, BasicNode, RaftError<u64, E>>;

impl PeerNetwork {
    /// One call; `split_hint` is the entry count to retry with if the request is too large.
    async fn call<E: std::error::Error>(
        &mut self,
        req: RpcRequest,
        ttl: Duration,
        split_hint: u64,
    ) -> Result<RpcReply, RpcErr<E>> {
        match self.conn.call(&req, ttl).await {
            Ok(RpcResponse {
                from,
                incarnation,
                body,
            }) => {
                if from != self.target {
                    let e = std::io::Error::other(format!(
                        "expected broker {} but broker {from} answered: check the controller addresses",
                        self.target
                    ));
                    return Err(RPCError::Unreachable(Unreachable::new(&e)));
                }
                self.health.ok(self.target, incarnation);
                Ok(body)
            }
            Err(e @ CallError::Refused(_)) => {
                self.health.refused(self.target);
                Err(RPCError::Unreachable(Unreachable::new(&e)))
            }
            Err(CallError::TooLarge { addr, bytes }) => {
                tracing::warn!(
                    "request of {bytes} bytes to broker {} at {addr} is too large; splitting",
                    self.target
                );
                Err(RPCError::PayloadTooLarge(
                    PayloadTooLarge::new_entries_hint(split_hint),
                ))
            }
            Err(e) => Err(RPCError::Network(NetworkError::new(&e))),
        }
    }

    fn mismatch<E: std::error::Error>(&self, body: &RpcReply, wanted: &str) -> RpcErr<E> {
        let e = std::io::Error::other(format!(
            "broker {} answered a {wanted} request with a {} reply",
            self.target,
            body.kind()
        ));
        RPCError::Network(NetworkError::new(&e))
    }
}

impl RaftNetwork<TypeConfig> for PeerNetwork {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RpcErr> {
        // If the batch does not fit in a frame, openraft retries with half as many entries.
        let half = (rpc.entries.len() as u64 / 2).max(1);
        match self
            .call(RpcRequest::AppendEntries(rpc), option.hard_ttl(), half)
            .await?
        {
            RpcReply::AppendEntries(r) => {
                r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target as u64, e)))
            }
            other => Err(self.mismatch(&other, "AppendEntries")),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<u64>, RpcErr<InstallSnapshotError>> {
        match self
            .call(RpcRequest::InstallSnapshot(rpc), option.hard_ttl(), 1)
            .await?
        {
            RpcReply::InstallSnapshot(r) => {
                r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target as u64, e)))
            }
            other => Err(self.mismatch(&other, "InstallSnapshot")),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RpcErr> {
        match self
            .call(RpcRequest::Vote(rpc), option.hard_ttl(), 1)
            .await?
        {
            RpcReply::Vote(r) => {
                r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target as u64, e)))
            }
            other => Err(self.mismatch(&other, "Vote")),
        }
    }

    fn backoff(&self) -> Backoff {
        // Retry an unreachable peer quickly: a restarted broker rejoins within this.
        Backoff::new(std::iter::repeat(Duration::from_millis(200)))
    }
}

/// What a listener connection needs to answer requests.
#[derive(Clone)]
pub(crate) struct ServerCtx {
    /// This broker's id.
    pub(crate) node_id: i32,
    /// This process's incarnation.
    pub(crate) incarnation: Uuid,
    /// The local Raft node.
    pub(crate) raft: Raft<TypeConfig>,
    /// The local controller task.
    pub(crate) controller_tx: mpsc::Sender<Job>,
    /// Test hook (`Cluster::freeze`): while set, requests are read but never answered.
    pub(crate) frozen: Arc<AtomicBool>,
}

/// Accepts connections on `listener` until the returned task is aborted; aborting it also closes
/// every connection it accepted.
pub(crate) fn serve(listener: TcpListener, ctx: ServerCtx) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut conns = JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let ctx = ctx.clone();
                        conns.spawn(async move {
                            if let Err(e) = serve_conn(stream, &ctx).await {
                                tracing::warn!(node = ctx.node_id, "controller connection from {peer} closed: {e}");
                            }
                        });
                    }
                    Err(e) => {
                        tracing::warn!(node = ctx.node_id, "controller listener accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
            }
        }
    })
}

async fn serve_conn(mut stream: TcpStream, ctx: &ServerCtx) -> std::io::Result<()> {
    let _ = stream.set_nodelay(true);
    while let Some(req) = read_frame::<_, RpcRequest>(&mut stream).await? {
        while ctx.frozen.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let body = match req {
            RpcRequest::AppendEntries(r) => {
                RpcReply::AppendEntries(ctx.raft.append_entries(r).await)
            }
            RpcRequest::Vote(r) => RpcReply::Vote(ctx.raft.vote(r).await),
            RpcRequest::InstallSnapshot(r) => {
                RpcReply::InstallSnapshot(ctx.raft.install_snapshot(r).await)
            }
            RpcRequest::Controller(r) => {
                let (tx, rx) = oneshot::channel();
                let stopped = || Err(ClusterError::Stopped(ctx.node_id));
                let res = if ctx.controller_tx.send((r, tx)).await.is_err() {
                    stopped()
                } else {
                    rx.await.unwrap_or_else(|_| stopped())
                };
                RpcReply::Controller(res)
            }
        };
        let resp = RpcResponse {
            from: ctx.node_id,
            incarnation: ctx.incarnation,
            body,
        };
        write_frame(&mut stream, &resp).await?;
    }
    Ok(())
}
