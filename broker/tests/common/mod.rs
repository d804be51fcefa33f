//! Starting real kbroker processes for integration tests.
//!
//! Each [`TestBroker`] is the `kbroker` binary in its own temporary log dir, listening on a port
//! the OS chose (port 0); the address is read from the broker's "ready" log line. The process is
//! killed when the value is dropped, so a failing test never leaves brokers behind.

#![allow(dead_code, unreachable_pub)]

pub mod clients;
pub mod cluster;
pub mod kafka;
pub mod kafka_tools;
pub mod tmpfs;
pub mod wire;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A running kbroker process.
pub struct TestBroker {
    child: Option<Child>,
    /// `127.0.0.1:port` to give clients.
    pub bootstrap: String,
    /// The log dir (kept across restarts of the same broker).
    pub log_dir: PathBuf,
    overrides: Vec<String>,
    /// Environment variables given to the process (kept across restarts until cleared).
    pub env: Vec<(String, String)>,
    _tmp: Option<tempfile::TempDir>,
    log_lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl TestBroker {
    /// Starts a broker with a fresh log dir and the given `key=value` overrides.
    pub fn start(overrides: &[&str]) -> TestBroker {
        Self::start_with_env(overrides, &[])
    }

    /// [`TestBroker::start`] with environment variables for the process (test hooks).
    pub fn start_with_env(overrides: &[&str], env: &[(&str, &str)]) -> TestBroker {
        let tmp = tempfile::tempdir().expect("temp dir");
        let log_dir = tmp.path().join("data");
        let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut b = Self::spawn(&log_dir, "0", &overrides, &env);
        b._tmp = Some(tmp);
        b
    }

    fn spawn(
        log_dir: &Path,
        port: &str,
        overrides: &[String],
        env: &[(String, String)],
    ) -> TestBroker {
        let listeners = format!("listeners=PLAINTEXT://127.0.0.1:{port}");
        let (mut b, rx) = Self::launch_with_env(log_dir, &listeners, overrides, env);
        b.await_ready(rx, Duration::from_secs(30));
        b
    }

    /// Starts the process without waiting for it to be ready (cluster members wait for each
    /// other, so they are all launched before any is awaited).
    pub fn launch(
        log_dir: &Path,
        listeners: &str,
        overrides: &[String],
    ) -> (TestBroker, mpsc::Receiver<String>) {
        Self::launch_with_env(log_dir, listeners, overrides, &[])
    }

    fn launch_with_env(
        log_dir: &Path,
        listeners: &str,
        overrides: &[String],
        env: &[(String, String)],
    ) -> (TestBroker, mpsc::Receiver<String>) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kbroker"));
        cmd.envs(env.iter().map(|(k, v)| (k, v)));
        cmd.arg("--override")
            .arg(listeners)
            .arg("--override")
            .arg(format!("log.dirs={}", log_dir.display()))
            .arg("--override")
            .arg("group.initial.rebalance.delay.ms=0");
        for o in overrides {
            cmd.arg("--override").arg(o);
        }
        cmd.env(
            "KBROKER_LOG",
            std::env::var("KBROKER_TEST_LOG").unwrap_or_else(|_| "info".to_owned()),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn kbroker");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let addr = rest.split([',', ' ']).next().unwrap_or_default().to_owned();
                    let _ = tx.send(addr);
                }
                sink.lock().unwrap().push(line);
            }
        });
        let b = TestBroker {
            child: Some(child),
            bootstrap: String::new(),
            log_dir: log_dir.to_owned(),
            overrides: overrides.to_vec(),
            env: env.to_vec(),
            _tmp: None,
            log_lines: lines,
        };
        (b, rx)
    }

    /// Waits for the "ready" line of a [`TestBroker::launch`]ed process and records its address.
    pub fn await_ready(&mut self, rx: mpsc::Receiver<String>, timeout: Duration) {
        match rx.recv_timeout(timeout) {
            Ok(a) => self.bootstrap = a,
            Err(_) => {
                let log = self.log();
                self.kill9();
                panic!("kbroker did not become ready in {timeout:?}; log:\n{log}");
            }
        }
    }

    /// The OS process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends a signal (`STOP`, `CONT`, ...) to the process.
    pub fn signal(&self, sig: &str) {
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill")
                .arg(format!("-{sig}"))
                .arg(pid.to_string())
                .status();
        }
    }

    /// The port the broker listens on.
    pub fn port(&self) -> String {
        self.bootstrap
            .rsplit(':')
            .next()
            .unwrap_or_default()
            .to_owned()
    }

    /// Kills the process with SIGKILL (no flush, no clean shutdown).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops with SIGTERM and waits for a clean exit; returns whether it exited 0.
    pub fn stop(&mut self) -> bool {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            for _ in 0..200 {
                if let Ok(Some(status)) = c.try_wait() {
                    return status.success();
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        false
    }

    /// Starts the same broker again on the same port and log dir.
    pub fn restart(&mut self) {
        self.kill9();
        let port = self.port();
        let mut fresh = Self::spawn(&self.log_dir, &port, &self.overrides, &self.env);
        self.child = fresh.child.take();
        self.bootstrap = fresh.bootstrap.clone();
        self.log_lines = fresh.log_lines.clone();
    }

    /// Everything the broker has logged so far.
    pub fn log(&self) -> String {
        self.log_lines.lock().unwrap().join("\n")
    }

    /// Whether the broker logs a line containing `needle` within `timeout`. The log is read by
    /// a background thread, so a line written just before a response may arrive just after it.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if self.log().contains(needle) {
                return true;
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Polls `consumer` until it has `max` messages or a poll comes back empty: (partition, offset,
/// payload as text) each. A consumer error fails the test.
pub fn poll_batch(
    consumer: &rdkafka::consumer::BaseConsumer,
    max: usize,
) -> Vec<(i32, i64, String)> {
    use rdkafka::message::Message;
    let mut batch = Vec::new();
    while batch.len() < max {
        match consumer.poll(Duration::from_millis(300)) {
            Some(Ok(m)) => batch.push((
                m.partition(),
                m.offset(),
                String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
            )),
            Some(Err(e)) => panic!("consumer error: {e}"),
            None => break,
        }
    }
    batch
}

/// The offsets to commit after consuming `batch` (from [`poll_batch`]) of `topic`: one past the
/// last offset read, per partition.
pub fn next_offsets(topic: &str, batch: &[(i32, i64, String)]) -> rdkafka::TopicPartitionList {
    let mut next: std::collections::BTreeMap<i32, i64> = std::collections::BTreeMap::new();
    for (p, o, _) in batch {
        let e = next.entry(*p).or_insert(0);
        *e = (*e).max(o + 1);
    }
    let mut offsets = rdkafka::TopicPartitionList::new();
    for (p, o) in &next {
        offsets
            .add_partition_offset(topic, *p, rdkafka::Offset::Offset(*o))
            .expect("partition offset");
    }
    offsets
}

/// Every record of `topic` partition `partition` from the start up to the high watermark, as
/// `(offset, key, value)`, read by librdkafka with a plain assignment (no group), bounded by
/// `timeout`.
pub fn read_partition(
    bootstrap: &str,
    topic: &str,
    partition: i32,
    timeout: std::time::Duration,
) -> Vec<(i64, Option<Vec<u8>>, Vec<u8>)> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "reader")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let (_, high) = consumer
        .fetch_watermarks(topic, partition, timeout)
        .expect("watermarks");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Beginning)
        .expect("assignment");
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + timeout;
    while out.last().map_or(high > 0, |(o, _, _)| o + 1 < high) {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out reading {topic}-{partition}: {} records of {high} offsets",
            out.len()
        );
        if let Some(m) = consumer.poll(std::time::Duration::from_millis(200)) {
            let m = m.unwrap_or_else(|e| panic!("reading {topic}-{partition}: {e}"));
            out.push((
                m.offset(),
                m.key().map(<[u8]>::to_vec),
                m.payload().unwrap_or_default().to_vec(),
            ));
        }
    }
    out
}
