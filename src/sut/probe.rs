//! The first look at an external cluster, before any Kafka client is made: every bootstrap
//! server's host resolves and takes a TCP connection, each checked within [`PROBE_TIMEOUT`]
//! and all at once. librdkafka would retry a wrong host name, a closed port or a dropped
//! packet silently until its own time-out and then say only "all brokers are down"; this says
//! which `host:port` and what happened, in under 2 s, before the output folder is made.

use std::time::Duration;

/// How long one server may take to resolve, and then to take a TCP connection.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(1500);

/// A `host:port` of a bootstrap list, split (`[::1]:9092` and a missing port, which is 9092,
/// as librdkafka reads them; a `PLAINTEXT://` style prefix is dropped).
pub fn split_server(server: &str) -> Result<(String, u16), String> {
    let s = server.trim();
    let s = s.split_once("://").map_or(s, |(_, rest)| rest);
    if s.is_empty() {
        return Err("an empty server in the bootstrap list".into());
    }
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("{server}: an IPv6 address needs a closing ]"))?;
        (host.to_string(), after.strip_prefix(':'))
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (s.to_string(), None),
        }
    };
    let port = match port {
        None => 9092,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("{server}: \"{p}\" is not a port (1-65535)"))?,
    };
    if host.is_empty() {
        return Err(format!("{server}: no host before the port"));
    }
    Ok((host, port))
}

/// Whether one server resolves and takes a TCP connection: `Err` says which and why, e.g.
/// `no-such-host.invalid:9092: no-such-host.invalid does not resolve (...)`,
/// `127.0.0.1:1: connection refused (...)`, `10.0.0.1:9092: timed out after 1.5 s (...)`.
pub async fn reach(server: &str) -> Result<(), String> {
    let (host, port) = split_server(server)?;
    let shown = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let secs = PROBE_TIMEOUT.as_secs_f64();
    let addrs: Vec<std::net::SocketAddr> = match tokio::time::timeout(
        PROBE_TIMEOUT,
        tokio::net::lookup_host((host.as_str(), port)),
    )
    .await
    {
        Ok(Ok(a)) => a.collect(),
        Ok(Err(e)) => return Err(format!("{shown}: {host} does not resolve ({e})")),
        Err(_) => {
            return Err(format!(
                "{shown}: {host} does not resolve (no answer from the resolver within {secs} s)"
            ))
        }
    };
    let Some(first) = addrs.first() else {
        return Err(format!("{shown}: {host} does not resolve (no addresses)"));
    };
    let connect = async {
        let mut last = None;
        for a in &addrs {
            match tokio::net::TcpStream::connect(a).await {
                Ok(_) => return Ok(()),
                Err(e) => last = Some((*a, e)),
            }
        }
        Err(last)
    };
    match tokio::time::timeout(PROBE_TIMEOUT, connect).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(Some((a, e)))) => {
            let at = if a.to_string() == shown {
                String::new()
            } else {
                format!(" (at {a})")
            };
            Err(match e.kind() {
                std::io::ErrorKind::ConnectionRefused => format!(
                    "{shown}: connection refused{at}: nothing listens there; is the broker running and the port right?"
                ),
                _ => format!("{shown}: cannot connect{at}: {e}"),
            })
        }
        Ok(Err(None)) => Err(format!("{shown}: {host} does not resolve (no addresses)")),
        Err(_) => Err(format!(
            "{shown}: timed out after {secs} s (at {first}): no answer to the TCP connection; a firewall dropping packets, or the wrong address"
        )),
    }
}

/// [`reach`] for every server of a bootstrap list, all at once. A client needs only one
/// bootstrap server to answer (the rest of the cluster comes from Metadata), so the run stops
/// (`Err`, listing each server and what happened) only when none can be reached; the servers
/// that could not be reached while others could come back as warnings (`Ok`): a broker down
/// in a fault experiment, or one stale address in a long list, is not a reason to refuse.
pub async fn reach_all(bootstrap: &str) -> Result<Vec<String>, String> {
    let servers: Vec<&str> = bootstrap
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .collect();
    if servers.is_empty() {
        return Err("the bootstrap list is empty; give host:port,...".into());
    }
    let checks = servers.iter().map(|s| {
        let s = s.to_string();
        async move { reach(&s).await }
    });
    let results = futures_join(checks).await;
    let reached = results.iter().filter(|r| r.is_ok()).count();
    let failed: Vec<String> = results.into_iter().filter_map(Result::err).collect();
    if reached == 0 {
        Err(failed.join("; "))
    } else {
        Ok(failed)
    }
}

/// Runs the futures concurrently and returns their results in order.
async fn futures_join<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        match h.await {
            Ok(v) => out.push(v),
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_split_like_librdkafka() {
        assert_eq!(split_server("a:1").unwrap(), ("a".into(), 1));
        assert_eq!(split_server("a").unwrap(), ("a".into(), 9092));
        assert_eq!(
            split_server("PLAINTEXT://a:9093").unwrap(),
            ("a".into(), 9093)
        );
        assert_eq!(split_server("[::1]:9092").unwrap(), ("::1".into(), 9092));
        assert!(split_server("a:x").unwrap_err().contains("is not a port"));
    }

    #[tokio::test]
    async fn a_closed_port_is_refused_at_once() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let e = reach(&format!("127.0.0.1:{port}")).await.unwrap_err();
        assert!(
            e.starts_with(&format!("127.0.0.1:{port}: connection refused")),
            "{e}"
        );
    }

    #[tokio::test]
    async fn one_answering_server_is_enough_and_the_others_are_warnings() {
        let live = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let live = live.local_addr().unwrap().port();
        let dead = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let warnings = reach_all(&format!("127.0.0.1:{dead},127.0.0.1:{live}"))
            .await
            .unwrap();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].starts_with(&format!("127.0.0.1:{dead}: connection refused")));
        let e = reach_all(&format!("127.0.0.1:{dead},127.0.0.1:{dead}"))
            .await
            .unwrap_err();
        assert_eq!(e.matches("connection refused").count(), 2, "{e}");
    }
}
