//! A real kbroker cluster for integration tests: N processes, each a Raft voter (combined
//! mode), on ports chosen up front (voters must know each other's controller addresses), with
//! kill -9, restart on the same ports and data, and SIGSTOP/SIGCONT per broker.

use std::net::TcpListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

use super::TestBroker;

/// One partition as Metadata shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionMeta {
    pub leader: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

/// N kbroker processes forming one cluster.
pub struct TestCluster {
    /// Brokers by index; node id = index + 1.
    pub brokers: Vec<TestBroker>,
    kafka_ports: Vec<u16>,
    controller_ports: Vec<u16>,
    overrides: Vec<Vec<String>>,
    _tmp: tempfile::TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl TestCluster {
    /// Starts `n` brokers; `racks[i]` (if given) is broker i+1's `broker.rack`; `extra` applies to
    /// every broker.
    pub fn start(n: usize, racks: &[&str], extra: &[&str]) -> TestCluster {
        let tmp = tempfile::tempdir().expect("temp dir");
        let kafka_ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let controller_ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let voters = controller_ports
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{}@127.0.0.1:{p}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let overrides: Vec<Vec<String>> = (0..n)
            .map(|i| {
                let mut o = vec![
                    format!("node.id={}", i + 1),
                    format!("controller.quorum.voters={voters}"),
                    "controller.listener.names=CONTROLLER".to_owned(),
                ];
                if let Some(r) = racks.get(i) {
                    o.push(format!("broker.rack={r}"));
                }
                o.extend(extra.iter().map(|s| s.to_string()));
                o
            })
            .collect();
        let mut cluster = TestCluster {
            brokers: Vec::new(),
            kafka_ports,
            controller_ports,
            overrides,
            _tmp: tmp,
        };
        let mut pending = Vec::new();
        for i in 0..n {
            let (b, rx) = TestBroker::launch(
                &cluster.dir(i),
                &cluster.listeners(i),
                &cluster.overrides[i],
            );
            cluster.brokers.push(b);
            pending.push(rx);
        }
        for (i, rx) in pending.into_iter().enumerate() {
            cluster.brokers[i].await_ready(rx, Duration::from_secs(60));
        }
        cluster.wait_for_controller();
        cluster
    }

    /// Waits until every broker's Metadata names the same controller. A broker is ready once it
    /// has joined, possibly before it knows the Raft leader; an admin client that is told
    /// "no controller" (-1) then waits for a metadata refresh and its CreateTopics times out
    /// (seen under load as OperationTimedOut after 60 s).
    fn wait_for_controller(&self) {
        use kafka_protocol::messages::{ApiKey, MetadataRequest, MetadataResponse};
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let controllers: Vec<i32> = self
                .kafka_ports
                .iter()
                .map(|p| {
                    let mut wire = super::wire::Wire::connect(&format!("127.0.0.1:{p}"));
                    let mut req = MetadataRequest::default();
                    req.topics = Some(Vec::new());
                    let resp: MetadataResponse = wire.call(ApiKey::Metadata, 1, &req);
                    resp.controller_id.0
                })
                .collect();
            if controllers[0] >= 0 && controllers.iter().all(|c| *c == controllers[0]) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no common controller within 30 s: {controllers:?}\n{}",
                self.log_tails(20)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn dir(&self, i: usize) -> PathBuf {
        self._tmp.path().join(format!("broker-{}", i + 1))
    }

    fn listeners(&self, i: usize) -> String {
        format!(
            "listeners=PLAINTEXT://127.0.0.1:{},CONTROLLER://127.0.0.1:{}",
            self.kafka_ports[i], self.controller_ports[i]
        )
    }

    /// `host:port,...` of every broker.
    pub fn bootstrap(&self) -> String {
        self.kafka_ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The broker with node id `id`.
    pub fn broker(&mut self, id: i32) -> &mut TestBroker {
        &mut self.brokers[(id - 1) as usize]
    }

    /// kill -9 of broker `id`.
    pub fn kill9(&mut self, id: i32) {
        self.broker(id).kill9();
    }

    /// Starts broker `id` again (same ports, same data) and waits until it is ready.
    pub fn restart(&mut self, id: i32) {
        let i = (id - 1) as usize;
        self.brokers[i].kill9();
        let (b, rx) = TestBroker::launch(&self.dir(i), &self.listeners(i), &self.overrides[i]);
        self.brokers[i] = b;
        self.brokers[i].await_ready(rx, Duration::from_secs(60));
    }

    /// Creates a topic through the admin API.
    pub fn create_topic(&self, name: &str, partitions: i32, rf: i32, configs: &[(&str, &str)]) {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .create()
            .expect("admin client");
        let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(rf));
        for (k, v) in configs {
            topic = topic.set(k, v);
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let res = rt
            .block_on(admin.create_topics(
                [&topic],
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
            ))
            .unwrap_or_else(|e| panic!("create_topics: {e}\n{}", self.log_tails(30)));
        for r in res {
            r.unwrap_or_else(|(t, e)| panic!("create topic {t}: {e}"));
        }
        self.wait_until_served(name, partitions);
    }

    /// Waits until every partition's leader answers ListOffsets: metadata names the leaders as
    /// soon as the controller has decided, a moment before they have opened the partitions.
    pub fn wait_until_served(&self, topic: &str, partitions: i32) {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .create()
            .expect("consumer");
        let deadline = Instant::now() + Duration::from_secs(15);
        for p in 0..partitions {
            while let Err(e) = consumer.fetch_watermarks(topic, p, Duration::from_secs(5)) {
                assert!(
                    Instant::now() < deadline,
                    "{topic}-{p} not served within 15 s: {e}\n{}",
                    self.log_tails(20)
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// The topic's partitions as Metadata shows them now (from any live broker).
    pub fn describe(&self, topic: &str) -> Vec<PartitionMeta> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .create()
            .expect("consumer");
        let md = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .expect("metadata");
        let t = md
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .expect("topic in metadata");
        t.partitions()
            .iter()
            .map(|p| PartitionMeta {
                leader: p.leader(),
                replicas: p.replicas().to_vec(),
                isr: p.isr().to_vec(),
            })
            .collect()
    }

    /// The last `n` log lines of every broker, for failure messages.
    pub fn log_tails(&self, n: usize) -> String {
        let mut out = String::new();
        for (i, b) in self.brokers.iter().enumerate() {
            let log = b.log();
            let lines: Vec<&str> = log.lines().collect();
            let from = lines.len().saturating_sub(n);
            out.push_str(&format!("--- broker {} log (last {n} lines):\n", i + 1));
            out.push_str(&lines[from..].join("\n"));
            out.push('\n');
        }
        out
    }

    /// Polls Metadata until `ok` holds for the topic, or panics with the last state after
    /// `timeout`.
    pub fn wait_for(
        &self,
        topic: &str,
        timeout: Duration,
        what: &str,
        ok: impl Fn(&[PartitionMeta]) -> bool,
    ) -> Vec<PartitionMeta> {
        let deadline = Instant::now() + timeout;
        loop {
            let state = self.describe(topic);
            if ok(&state) {
                return state;
            }
            if Instant::now() >= deadline {
                panic!(
                    "{what}: not reached within {timeout:?}; metadata: {state:?}\n{}",
                    self.log_tails(40)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
