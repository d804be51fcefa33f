//! Starting real kbroker processes for integration tests.
//!
//! Each [`TestBroker`] is the `kbroker` binary in its own temporary log dir, listening on a port
//! the OS chose (port 0); the address is read from the broker's "ready" log line. The process is
//! killed when the value is dropped, so a failing test never leaves brokers behind.

#![allow(dead_code, unreachable_pub)]

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
    _tmp: Option<tempfile::TempDir>,
    log_lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl TestBroker {
    /// Starts a broker with a fresh log dir and the given `key=value` overrides.
    pub fn start(overrides: &[&str]) -> TestBroker {
        let tmp = tempfile::tempdir().expect("temp dir");
        let log_dir = tmp.path().join("data");
        let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
        let mut b = Self::spawn(&log_dir, "0", &overrides);
        b._tmp = Some(tmp);
        b
    }

    fn spawn(log_dir: &Path, port: &str, overrides: &[String]) -> TestBroker {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kbroker"));
        cmd.arg("--override")
            .arg(format!("listeners=PLAINTEXT://127.0.0.1:{port}"))
            .arg("--override")
            .arg(format!("log.dirs={}", log_dir.display()))
            .arg("--override")
            .arg("group.initial.rebalance.delay.ms=0");
        for o in overrides {
            cmd.arg("--override").arg(o);
        }
        cmd.env("KBROKER_LOG", "info")
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
        let addr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "kbroker did not become ready in 30 s; log:\n{}",
                    lines.lock().unwrap().join("\n")
                );
            }
        };
        TestBroker {
            child: Some(child),
            bootstrap: addr,
            log_dir: log_dir.to_owned(),
            overrides: overrides.to_vec(),
            _tmp: None,
            log_lines: lines,
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
        let mut fresh = Self::spawn(&self.log_dir, &port, &self.overrides);
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
