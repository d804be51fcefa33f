//! The control socket of a running `kbench cluster up`: `DIR/control.sock`, one JSON request
//! line in, one JSON reply line out.
//!
//! `up` owns the broker processes: it is their parent, so `PR_SET_PDEATHSIG` ties every one
//! of them to it (see `sut::embedded`), and it is the only place a broker is launched. So
//! `kbench cluster kill | stop | start | down --dir DIR` from another shell does not touch a
//! broker itself: it asks `up` through this socket, and `up` acts and answers. A socket (not
//! request files) because the answer is the point: "node 2 is already stopped" comes back to
//! the shell that asked, with a nonzero exit, and a socket nobody listens on says at once that
//! no cluster runs at DIR.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use crate::sut::embedded::BrokerStatus;

/// The socket's file name inside DIR.
const SOCKET: &str = "control.sock";
/// Longest path a unix socket address holds (`sun_path` is 108 bytes with its NUL).
const MAX_SOCKET_PATH: usize = 107;
/// Bound on a client sending its request once connected.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Bound on the whole exchange for a client: longer than `up`'s slowest request (a start that
/// waits for a broker to join, a stop that waits for a clean shutdown).
const REPLY_TIMEOUT: Duration = Duration::from_secs(90);

/// What a client asks `up` to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verb", rename_all = "lowercase")]
pub enum Request {
    /// SIGKILL one broker.
    Kill {
        /// Its `node.id`.
        node: u32,
    },
    /// SIGTERM one broker and wait until it has exited.
    Stop {
        /// Its `node.id`.
        node: u32,
    },
    /// Start one broker again (same config, ports, data) and wait until it serves.
    Start {
        /// Its `node.id`.
        node: u32,
    },
    /// Stop every broker, then `up` itself.
    Down,
    /// The brokers as `up` sees them.
    Status,
}

/// `up`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    /// Whether the request was carried out.
    pub ok: bool,
    /// What happened, or why not (names the node; the client adds DIR).
    pub message: String,
    /// Every broker (for [`Request::Status`]; empty otherwise).
    #[serde(default)]
    pub brokers: Vec<BrokerStatus>,
}

impl Reply {
    /// A request carried out.
    pub fn done(message: impl Into<String>) -> Reply {
        Reply {
            ok: true,
            message: message.into(),
            brokers: Vec::new(),
        }
    }

    /// A request refused or failed.
    pub fn refused(message: impl Into<String>) -> Reply {
        Reply {
            ok: false,
            message: message.into(),
            brokers: Vec::new(),
        }
    }
}

/// `DIR/control.sock`.
pub fn socket_path(dir: &Path) -> PathBuf {
    dir.join(SOCKET)
}

/// Listens on `DIR/control.sock` for `up`. A socket left by an `up` that was killed is
/// replaced; one that answers means another `up` runs there, which is an error.
pub async fn listen(dir: &Path) -> anyhow::Result<UnixListener> {
    let path = socket_path(dir);
    check_length(dir, &path)?;
    if path.exists() {
        if UnixStream::connect(&path).await.is_ok() {
            anyhow::bail!(
                "a cluster is already running at {} (stop it with `kbench cluster down --dir {}`, or pick another --dir)",
                dir.display(),
                dir.display()
            );
        }
        std::fs::remove_file(&path).with_context(|| {
            format!("cannot remove the stale control socket {}", path.display())
        })?;
    }
    UnixListener::bind(&path)
        .with_context(|| format!("cannot listen on the control socket {}", path.display()))
}

/// Reads one request from a client of `up` (bounded: a client that says nothing is dropped).
pub async fn read_request(stream: &mut UnixStream) -> anyhow::Result<Request> {
    let mut line = String::new();
    let mut reader = BufReader::new(stream);
    tokio::time::timeout(REQUEST_TIMEOUT, reader.read_line(&mut line))
        .await
        .context("no request within 2 s")?
        .context("cannot read the request")?;
    serde_json::from_str(line.trim()).with_context(|| format!("not a request: {:?}", line.trim()))
}

/// Sends `reply` to a client of `up` (a client that has gone away is no error of `up`'s).
pub async fn answer(stream: &mut UnixStream, reply: &Reply) {
    if let Ok(mut text) = serde_json::to_string(reply) {
        text.push('\n');
        let _ = stream.write_all(text.as_bytes()).await;
        let _ = stream.shutdown().await;
    }
}

/// Why there is nobody to ask at `dir`.
#[derive(Debug, thiserror::Error)]
pub enum NoCluster {
    /// No `up` ever ran there (or it ended and removed its socket).
    #[error("no cluster at {dir}: no {socket} (start one with `kbench cluster up --dir {dir}`)")]
    Never {
        /// DIR.
        dir: String,
        /// The socket looked for.
        socket: String,
    },
    /// The socket is there but nobody listens: `up` was killed.
    #[error("no cluster running at {dir}: its `kbench cluster up` has ended ({socket}: {why})")]
    Ended {
        /// DIR.
        dir: String,
        /// The socket.
        socket: String,
        /// The connect error.
        why: String,
    },
}

/// Sends `request` to the `up` running at `dir` and returns its reply. `Err(NoCluster)` (in
/// the chain) when nothing runs there.
pub async fn send(dir: &Path, request: Request) -> anyhow::Result<Reply> {
    let path = socket_path(dir);
    check_length(dir, &path)?;
    let shown = dir.display().to_string();
    if !path.exists() {
        return Err(NoCluster::Never {
            dir: shown,
            socket: path.display().to_string(),
        }
        .into());
    }
    let mut stream = match UnixStream::connect(&path).await {
        Ok(s) => s,
        Err(e) => {
            return Err(NoCluster::Ended {
                dir: shown,
                socket: path.display().to_string(),
                why: e.to_string(),
            }
            .into())
        }
    };
    let exchange = async {
        let mut line = serde_json::to_string(&request)?;
        line.push('\n');
        stream.write_all(line.as_bytes()).await?;
        let mut reply = String::new();
        BufReader::new(&mut stream).read_line(&mut reply).await?;
        anyhow::Ok(reply)
    };
    let reply = tokio::time::timeout(REPLY_TIMEOUT, exchange)
        .await
        .with_context(|| format!("the cluster at {shown} did not answer within {REPLY_TIMEOUT:?}"))?
        .with_context(|| format!("cannot talk to the cluster at {shown}"))?;
    if reply.trim().is_empty() {
        anyhow::bail!(
            "the cluster at {shown} closed the connection without an answer (it may be stopping)"
        );
    }
    serde_json::from_str(reply.trim())
        .with_context(|| format!("the cluster at {shown} answered {:?}", reply.trim()))
}

/// A socket path must fit a unix socket address; say so, naming the flag, when it does not.
fn check_length(dir: &Path, path: &Path) -> anyhow::Result<()> {
    let len = path.as_os_str().len();
    if len > MAX_SOCKET_PATH {
        anyhow::bail!(
            "--dir {}: the control socket {} would be {len} bytes long, more than the {MAX_SOCKET_PATH} a unix socket allows; choose a shorter --dir",
            dir.display(),
            path.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_one_json_object_each() {
        let text = serde_json::to_string(&Request::Kill { node: 2 }).unwrap();
        assert_eq!(text, r#"{"verb":"kill","node":2}"#);
        assert_eq!(
            serde_json::from_str::<Request>(r#"{"verb":"down"}"#).unwrap(),
            Request::Down
        );
        assert!(serde_json::from_str::<Request>(r#"{"verb":"reboot"}"#).is_err());
    }

    #[tokio::test]
    async fn nothing_at_dir_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let e = send(dir.path(), Request::Status).await.unwrap_err();
        assert!(e.downcast_ref::<NoCluster>().is_some(), "{e:#}");
        assert!(e.to_string().starts_with("no cluster at "), "{e}");
        // A socket file nobody listens on: an `up` killed with -9.
        drop(std::os::unix::net::UnixListener::bind(socket_path(dir.path())).unwrap());
        let e = send(dir.path(), Request::Status).await.unwrap_err();
        assert!(e.to_string().contains("has ended"), "{e}");
        let long = dir.path().join("x".repeat(120));
        let e = send(&long, Request::Status).await.unwrap_err();
        assert!(e.to_string().contains("choose a shorter --dir"), "{e}");
    }
}
