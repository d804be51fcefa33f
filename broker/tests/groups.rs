//! Consumer groups on kbroker, driven by librdkafka (the `rdkafka` crate): a group splits a
//! topic's partitions, rebalances when a member leaves and when one is killed (its session
//! times out), and committed offsets survive a broker kill -9 and restart.

mod common;

use std::collections::{BTreeSet, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::TestBroker;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

const TIMEOUT: Duration = Duration::from_secs(30);

/// Environment variable that turns `group_member_child_process` into a real group member.
const CHILD_ENV: &str = "KBROKER_TEST_GROUP_CHILD";

async fn create_topic(bootstrap: &str, name: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for r in admin
        .create_topics([&topic], &AdminOptions::new())
        .await
        .expect("create_topics")
    {
        r.unwrap_or_else(|(t, e)| panic!("creating {t}: {e}"));
    }
}

fn group_consumer(bootstrap: &str, group: &str, client_id: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("client.id", client_id)
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer")
}

fn assigned(c: &BaseConsumer) -> BTreeSet<i32> {
    c.assignment()
        .map(|tpl| tpl.elements().iter().map(|e| e.partition()).collect())
        .unwrap_or_default()
}

/// Polls every consumer until `done` holds for their assignments (and any external ones).
fn poll_until(
    consumers: &[&BaseConsumer],
    what: &str,
    mut done: impl FnMut(&[BTreeSet<i32>]) -> bool,
) -> Vec<BTreeSet<i32>> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        for c in consumers {
            if let Some(Err(e)) = c.poll(Duration::from_millis(50)) {
                eprintln!("poll: {e}");
            }
        }
        let now: Vec<BTreeSet<i32>> = consumers.iter().map(|c| assigned(c)).collect();
        if done(&now) {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; assignments now {now:?}"
        );
    }
}

fn disjoint_cover(sets: &[BTreeSet<i32>], partitions: i32) -> bool {
    let total: usize = sets.iter().map(BTreeSet::len).sum();
    let union: HashSet<i32> = sets.iter().flatten().copied().collect();
    total == partitions as usize && union.len() == partitions as usize
}

/// A group member in its own process (this test binary re-run as
/// `group_member_child_process`), so it can be killed with SIGKILL: no LeaveGroup, no
/// goodbye, only a session that stops.
struct ChildMember {
    child: Child,
    assignments: mpsc::Receiver<BTreeSet<i32>>,
    latest: BTreeSet<i32>,
}

impl ChildMember {
    fn start(bootstrap: &str, group: &str, topic: &str) -> ChildMember {
        let mut child = Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "group_member_child_process",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, format!("{bootstrap},{group},{topic}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child member");
        let stdout = child.stdout.take().expect("child stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("ASSIGNED ") {
                    let set = rest
                        .split(',')
                        .filter_map(|p| p.trim().parse().ok())
                        .collect();
                    if tx.send(set).is_err() {
                        return;
                    }
                }
            }
        });
        ChildMember {
            child,
            assignments: rx,
            latest: BTreeSet::new(),
        }
    }

    fn assignment(&mut self) -> BTreeSet<i32> {
        while let Ok(a) = self.assignments.try_recv() {
            self.latest = a;
        }
        self.latest.clone()
    }

    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ChildMember {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Not a test on its own: the body of [`ChildMember`], run in a child process.
#[test]
#[ignore = "run by group_rebalances_when_a_member_leaves_and_when_one_is_killed"]
fn group_member_child_process() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut parts = spec.split(',');
    let (bootstrap, group, topic) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let consumer = group_consumer(bootstrap, group, "child-member");
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut last = None;
    loop {
        let _ = consumer.poll(Duration::from_millis(100));
        let now = assigned(&consumer);
        if last.as_ref() != Some(&now) {
            let list: Vec<String> = now.iter().map(i32::to_string).collect();
            println!("ASSIGNED {}", list.join(","));
            last = Some(now);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_rebalances_when_a_member_leaves_and_when_one_is_killed() {
    let broker = TestBroker::start(&[]);
    let bootstrap = broker.bootstrap.clone();
    create_topic(&bootstrap, "six", 6).await;

    let a = group_consumer(&bootstrap, "split", "member-a");
    let b = group_consumer(&bootstrap, "split", "member-b");
    a.subscribe(&["six"]).unwrap();
    b.subscribe(&["six"]).unwrap();
    let mut c = ChildMember::start(&bootstrap, "split", "six");

    // Three members: two partitions each, together all six.
    let sets = poll_until(&[&a, &b], "3 members with 2 partitions each", |s| {
        let mut all = s.to_vec();
        all.push(c.assignment());
        all.iter().all(|x| x.len() == 2) && disjoint_cover(&all, 6)
    });
    eprintln!("three members: {sets:?} + {:?}", c.assignment());

    // DescribeGroups as librdkafka sees it.
    let list = a
        .fetch_group_list(Some("split"), TIMEOUT)
        .expect("describe groups");
    let g = &list.groups()[0];
    assert_eq!(g.name(), "split");
    assert_eq!(g.state(), "Stable");
    assert_eq!(g.protocol_type(), "consumer");
    assert_eq!(g.protocol(), "range");
    assert_eq!(g.members().len(), 3);
    let clients: BTreeSet<&str> = g.members().iter().map(|m| m.client_id()).collect();
    assert_eq!(
        clients,
        BTreeSet::from(["child-member", "member-a", "member-b"])
    );
    for m in g.members() {
        assert_eq!(m.client_host(), "/127.0.0.1");
        assert!(m.assignment().is_some_and(|a| !a.is_empty()));
    }

    // Killed: no LeaveGroup; the session timeout (6 s) removes it and the rest rebalance.
    let killed_at = Instant::now();
    c.kill9();
    let sets = poll_until(&[&a, &b], "2 members with 3 partitions each", |s| {
        s.iter().all(|x| x.len() == 3) && disjoint_cover(s, 6)
    });
    let took = killed_at.elapsed();
    eprintln!("after kill: {sets:?} in {took:?}");
    assert!(
        took >= Duration::from_secs(4),
        "rebalanced after {took:?}: before the session timeout could expire"
    );

    // Leaves: closing a consumer sends LeaveGroup; the survivor gets everything at once
    // (no session timeout to wait for).
    let left_at = Instant::now();
    b.unsubscribe();
    drop(b);
    let sets = poll_until(&[&a], "1 member with all 6 partitions", |s| s[0].len() == 6);
    let took = left_at.elapsed();
    eprintln!("after leave: {sets:?} in {took:?}");
    assert!(
        took < Duration::from_secs(5),
        "a leave should not wait for the session timeout ({took:?})"
    );
}

async fn produce(bootstrap: &str, topic: &str, partitions: i32, per_partition: usize) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    for p in 0..partitions {
        for i in 0..per_partition {
            let payload = format!("{p}-{i}");
            producer
                .send(
                    FutureRecord::<(), _>::to(topic)
                        .partition(p)
                        .payload(&payload),
                    TIMEOUT,
                )
                .await
                .expect("produce");
        }
    }
}

fn committed(consumer: &BaseConsumer, topic: &str, partitions: i32) -> Vec<Offset> {
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let got = consumer
        .committed_offsets(tpl, TIMEOUT)
        .expect("OffsetFetch");
    got.elements().iter().map(|e| e.offset()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_offsets_survive_a_broker_kill_and_restart() {
    let mut broker = TestBroker::start(&[]);
    let bootstrap = broker.bootstrap.clone();
    create_topic(&bootstrap, "resume", 2).await;
    produce(&bootstrap, "resume", 2, 10).await;

    // A group member consumes everything and commits synchronously.
    {
        let c = group_consumer(&bootstrap, "resumers", "resumer-1");
        c.subscribe(&["resume"]).unwrap();
        let mut seen = 0;
        let deadline = Instant::now() + Duration::from_secs(60);
        while seen < 20 {
            assert!(Instant::now() < deadline, "consumed only {seen} of 20");
            if let Some(m) = c.poll(Duration::from_millis(100)) {
                m.expect("consume");
                seen += 1;
            }
        }
        c.commit_consumer_state(CommitMode::Sync).expect("commit");
        assert_eq!(
            committed(&c, "resume", 2),
            vec![Offset::Offset(10), Offset::Offset(10)]
        );
    }
    // A consumer outside group management (assign + explicit commit, generation -1).
    {
        let c = group_consumer(&bootstrap, "manual", "manual-1");
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("resume", 0, Offset::Offset(4))
            .unwrap();
        tpl.add_partition_offset("resume", 1, Offset::Offset(7))
            .unwrap();
        c.commit(&tpl, CommitMode::Sync).expect("manual commit");
    }

    // kill -9: only what was written before each commit was acknowledged can survive.
    broker.restart();
    let bootstrap = broker.bootstrap.clone();

    let c = group_consumer(&bootstrap, "resumers", "resumer-2");
    assert_eq!(
        committed(&c, "resume", 2),
        vec![Offset::Offset(10), Offset::Offset(10)]
    );
    let m = group_consumer(&bootstrap, "manual", "manual-2");
    assert_eq!(
        committed(&m, "resume", 2),
        vec![Offset::Offset(4), Offset::Offset(7)]
    );

    // The group resumes after its commit: only new messages arrive.
    produce(&bootstrap, "resume", 2, 1).await;
    c.subscribe(&["resume"]).unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while got.len() < 2 {
        assert!(Instant::now() < deadline, "resumed consumer got {got:?}");
        if let Some(msg) = c.poll(Duration::from_millis(100)) {
            let msg = msg.expect("consume");
            got.push((msg.partition(), msg.offset()));
        }
    }
    got.sort_unstable();
    assert_eq!(got, vec![(0, 10), (1, 10)]);
}
