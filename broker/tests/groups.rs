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
                // libtest prints "test <name> ... " before a single-threaded test runs, so
                // the child's first line may carry that prefix.
                if let Some(rest) = line.split_once("ASSIGNED ").map(|(_, r)| r) {
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

mod wire_versions {
    //! Every version of every group API kbroker advertises, over the raw wire: requests built
    //! and responses decoded by the `kafka-protocol` codec at that exact version.

    use bytes::Bytes;
    use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
    use kafka_protocol::messages::leave_group_request::MemberIdentity;
    use kafka_protocol::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    use kafka_protocol::messages::offset_fetch_request::{
        OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
    };
    use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::StrBytes;

    use super::common::wire::Wire;
    use super::common::TestBroker;

    fn s(v: &str) -> StrBytes {
        StrBytes::from_string(v.to_owned())
    }

    /// Joins (through MEMBER_ID_REQUIRED on v4+), syncs, heartbeats and leaves with JoinGroup
    /// version `v` and the matching versions of the others.
    fn member_lifecycle(w: &mut Wire, v: i16) {
        let group = format!("wire-{v}");
        let sync_v = v.min(5);
        let hb_v = v.min(4);
        let leave_v = v.min(5);
        let mut join = JoinGroupRequest::default();
        join.group_id = GroupId(s(&group));
        join.session_timeout_ms = 10_000;
        join.rebalance_timeout_ms = 10_000;
        join.protocol_type = s("consumer");
        let mut p = JoinGroupRequestProtocol::default();
        p.name = s("range");
        p.metadata = Bytes::from_static(b"subscription");
        join.protocols = vec![p];
        let mut r: JoinGroupResponse = w.call(ApiKey::JoinGroup, v, &join);
        if v >= 4 {
            assert_eq!(r.error_code, 79, "v{v}: MEMBER_ID_REQUIRED expected");
            assert!(
                r.member_id.starts_with("wire-test-"),
                "v{v}: {:?}",
                r.member_id
            );
            join.member_id = r.member_id.clone();
            r = w.call(ApiKey::JoinGroup, v, &join);
        }
        assert_eq!(r.error_code, 0, "JoinGroup v{v}");
        assert_eq!(r.generation_id, 1, "JoinGroup v{v}");
        assert_eq!(r.leader, r.member_id, "JoinGroup v{v}");
        assert_eq!(r.protocol_name.as_deref(), Some("range"), "JoinGroup v{v}");
        assert_eq!(r.members.len(), 1, "JoinGroup v{v}");
        assert_eq!(&r.members[0].metadata[..], b"subscription");
        if v >= 7 {
            assert_eq!(r.protocol_type.as_deref(), Some("consumer"));
        }
        let member = r.member_id.clone();

        let mut sync = SyncGroupRequest::default();
        sync.group_id = GroupId(s(&group));
        sync.generation_id = 1;
        sync.member_id = member.clone();
        if sync_v >= 5 {
            sync.protocol_type = Some(s("consumer"));
            sync.protocol_name = Some(s("range"));
        }
        let mut a = SyncGroupRequestAssignment::default();
        a.member_id = member.clone();
        a.assignment = Bytes::from_static(b"assignment");
        sync.assignments = vec![a];
        let r: SyncGroupResponse = w.call(ApiKey::SyncGroup, sync_v, &sync);
        assert_eq!(r.error_code, 0, "SyncGroup v{sync_v}");
        assert_eq!(&r.assignment[..], b"assignment");

        let mut hb = HeartbeatRequest::default();
        hb.group_id = GroupId(s(&group));
        hb.generation_id = 1;
        hb.member_id = member.clone();
        let r: HeartbeatResponse = w.call(ApiKey::Heartbeat, hb_v, &hb);
        assert_eq!(r.error_code, 0, "Heartbeat v{hb_v}");
        hb.generation_id = 7;
        let r: HeartbeatResponse = w.call(ApiKey::Heartbeat, hb_v, &hb);
        assert_eq!(
            r.error_code, 22,
            "Heartbeat v{hb_v} with a wrong generation"
        );

        let mut d = DescribeGroupsRequest::default();
        d.groups = vec![GroupId(s(&group)), GroupId(s("no-such-group"))];
        for dv in 0..=5 {
            let r: DescribeGroupsResponse = w.call(ApiKey::DescribeGroups, dv, &d);
            assert_eq!(r.groups.len(), 2);
            let g = &r.groups[0];
            assert_eq!(g.error_code, 0);
            assert_eq!(g.group_state.as_str(), "Stable", "DescribeGroups v{dv}");
            assert_eq!(g.protocol_type.as_str(), "consumer");
            assert_eq!(g.protocol_data.as_str(), "range");
            assert_eq!(g.members.len(), 1);
            assert_eq!(g.members[0].client_id.as_str(), "wire-test");
            assert_eq!(g.members[0].client_host.as_str(), "/127.0.0.1");
            assert_eq!(&g.members[0].member_assignment[..], b"assignment");
            assert_eq!(r.groups[1].group_state.as_str(), "Dead");
        }

        let mut leave = LeaveGroupRequest::default();
        leave.group_id = GroupId(s(&group));
        if leave_v >= 3 {
            let mut m = MemberIdentity::default();
            m.member_id = member.clone();
            let mut ghost = MemberIdentity::default();
            ghost.member_id = s("ghost");
            leave.members = vec![m, ghost];
        } else {
            leave.member_id = member.clone();
        }
        let r: LeaveGroupResponse = w.call(ApiKey::LeaveGroup, leave_v, &leave);
        assert_eq!(r.error_code, 0, "LeaveGroup v{leave_v}");
        if leave_v >= 3 {
            let codes: Vec<i16> = r.members.iter().map(|m| m.error_code).collect();
            assert_eq!(codes, vec![0, 25]);
        }
    }

    #[test]
    fn every_advertised_group_api_version_round_trips() {
        let broker = TestBroker::start(&["num.partitions=2"]);
        let mut w = Wire::connect(&broker.bootstrap);
        // Create the topic the commits name (auto-create through Metadata).
        let mut md = MetadataRequest::default();
        let mut t = kafka_protocol::messages::metadata_request::MetadataRequestTopic::default();
        t.name = Some(TopicName(s("wt")));
        md.topics = Some(vec![t]);
        md.allow_auto_topic_creation = true;
        let _: MetadataResponse = w.call(ApiKey::Metadata, 9, &md);

        for v in 0..=4 {
            let mut fc = FindCoordinatorRequest::default();
            if v >= 4 {
                fc.coordinator_keys = vec![s("g1"), s("g2")];
            } else {
                fc.key = s("g1");
            }
            let r: FindCoordinatorResponse = w.call(ApiKey::FindCoordinator, v, &fc);
            let port: i32 = broker.port().parse().unwrap();
            if v >= 4 {
                assert_eq!(r.coordinators.len(), 2);
                assert!(r
                    .coordinators
                    .iter()
                    .all(|c| c.error_code == 0 && c.port == port));
            } else {
                assert_eq!((r.error_code, r.port), (0, port), "FindCoordinator v{v}");
                assert_eq!(r.host.as_str(), "127.0.0.1");
            }
        }

        for v in 0..=9 {
            member_lifecycle(&mut w, v);
        }

        // Commits outside group management, then fetches, at every version.
        for v in 2..=8 {
            let group = format!("commit-{v}");
            let mut c = OffsetCommitRequest::default();
            c.group_id = GroupId(s(&group));
            c.generation_id_or_member_epoch = -1;
            c.retention_time_ms = -1;
            let mut t = OffsetCommitRequestTopic::default();
            t.name = TopicName(s("wt"));
            let mut p = OffsetCommitRequestPartition::default();
            p.partition_index = 1;
            p.committed_offset = 100 + i64::from(v);
            p.committed_leader_epoch = 0;
            p.committed_metadata = Some(s("meta"));
            let mut missing = p.clone();
            missing.partition_index = 9;
            t.partitions = vec![p, missing];
            c.topics = vec![t];
            let r: OffsetCommitResponse = w.call(ApiKey::OffsetCommit, v, &c);
            let codes: Vec<i16> = r.topics[0]
                .partitions
                .iter()
                .map(|p| p.error_code)
                .collect();
            assert_eq!(codes, vec![0, 3], "OffsetCommit v{v}");
        }
        for v in 1..=8 {
            let group = format!("commit-{}", v.max(2));
            let mut f = OffsetFetchRequest::default();
            if v >= 8 {
                let mut g = OffsetFetchRequestGroup::default();
                g.group_id = GroupId(s(&group));
                let mut t = OffsetFetchRequestTopics::default();
                t.name = TopicName(s("wt"));
                t.partition_indexes = vec![0, 1];
                g.topics = Some(vec![t]);
                let mut all = OffsetFetchRequestGroup::default();
                all.group_id = GroupId(s(&group));
                all.topics = None;
                f.groups = vec![g, all];
                let r: OffsetFetchResponse = w.call(ApiKey::OffsetFetch, v, &f);
                let parts = &r.groups[0].topics[0].partitions;
                assert_eq!(parts[0].committed_offset, -1);
                assert_eq!(parts[1].committed_offset, 100 + v.max(2) as i64);
                assert_eq!(parts[1].metadata.as_deref(), Some("meta"));
                assert_eq!(r.groups[1].topics[0].partitions.len(), 1);
            } else {
                f.group_id = GroupId(s(&group));
                let mut t = OffsetFetchRequestTopic::default();
                t.name = TopicName(s("wt"));
                t.partition_indexes = vec![0, 1];
                f.topics = Some(vec![t]);
                let r: OffsetFetchResponse = w.call(ApiKey::OffsetFetch, v, &f);
                let parts = &r.topics[0].partitions;
                assert_eq!(parts[0].committed_offset, -1, "OffsetFetch v{v}");
                assert_eq!(parts[1].committed_offset, 100 + v.max(2) as i64);
                if v >= 5 {
                    let expect_epoch = if v.max(2) >= 6 { 0 } else { -1 };
                    assert_eq!(parts[1].committed_leader_epoch, expect_epoch);
                }
            }
        }

        for v in 0..=4 {
            let mut l = ListGroupsRequest::default();
            if v >= 4 {
                l.states_filter = vec![s("Empty")];
            }
            let r: ListGroupsResponse = w.call(ApiKey::ListGroups, v, &l);
            assert_eq!(r.error_code, 0);
            let names: Vec<&str> = r.groups.iter().map(|g| g.group_id.0.as_str()).collect();
            assert!(names.contains(&"commit-2"), "ListGroups v{v}: {names:?}");
            assert!(names.contains(&"wire-0"), "ListGroups v{v}: {names:?}");
            if v >= 4 {
                assert!(r.groups.iter().all(|g| g.group_state.as_str() == "Empty"));
            }
        }
    }
}
