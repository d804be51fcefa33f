//! Apache Kafka's own command-line tools as the people in our user stories type them
//! (`kafka-topics`, `kafka-console-producer`, `kafka-console-consumer`, `kafka-consumer-groups`,
//! `kafka-producer-perf-test`, `kafka-configs`: the main classes those scripts run, from Kafka 4.4.0's jars), with
//! the expectations written once and checked against kbroker and against Apache Kafka.
//!
//! Each step is one JVM (`compat/kafka/kafka.sh run CLASS ...`), bounded by [`TOOL_TIMEOUT`].

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::process::CommandExt;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use super::clients::{kafka_tool, run_client};

/// Longest one tool may run (each starts a JVM: 2-5 s of it on a busy 2-core machine).
pub const TOOL_TIMEOUT: Duration = Duration::from_secs(60);

const TOPICS: &str = "org.apache.kafka.tools.TopicCommand";
const PRODUCER: &str = "org.apache.kafka.tools.ConsoleProducer";
const CONSUMER: &str = "org.apache.kafka.tools.consumer.ConsoleConsumer";
const GROUPS: &str = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand";
const PERF: &str = "org.apache.kafka.tools.ProducerPerformance";
const CONFIGS: &str = "org.apache.kafka.tools.ConfigCommand";

/// The broker (or cluster) the tools talk to.
pub struct Target<'a> {
    /// `host:port,...`.
    pub bootstrap: &'a str,
    /// Every broker's node id.
    pub broker_ids: &'a [i32],
    /// What to show when a tool fails (the broker's log tail).
    pub context: &'a dyn Fn() -> String,
}

impl Target<'_> {
    /// Runs `class` with `--bootstrap-server` and `args`; its stdout.
    fn tool(&self, class: &str, args: &[&str], stdin: Option<&str>) -> String {
        let mut all = vec!["--bootstrap-server", self.bootstrap];
        all.extend_from_slice(args);
        let short = class.rsplit('.').next().unwrap_or(class);
        let what = format!("{short} {}", args.join(" "));
        run_client(
            &what,
            kafka_tool(class, &all),
            stdin,
            TOOL_TIMEOUT,
            self.context,
        )
        .stdout
    }
}

/// A name no other test uses.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{prefix}-{}-{nanos:08x}", std::process::id())
}

/// One partition line of `kafka-topics --describe`.
#[derive(Debug)]
pub struct DescribedPartition {
    pub partition: i32,
    pub leader: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

/// `key: value` pairs of one tab-separated `--describe` line.
fn fields(line: &str) -> BTreeMap<String, String> {
    line.split('\t')
        .filter_map(|f| f.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

fn ids(list: &str) -> Vec<i32> {
    list.split(',')
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse()
                .unwrap_or_else(|_| panic!("not a broker id list: {list:?}"))
        })
        .collect()
}

/// `kafka-topics --describe --topic TOPIC`: the header's fields and the partition lines, checked
/// as users read them: PartitionCount and ReplicationFactor as asked, every partition with
/// `rf` distinct replicas among the brokers, its leader one of them, and all of them in sync.
pub fn describe_topic(
    t: &Target<'_>,
    topic: &str,
    partitions: usize,
    rf: usize,
) -> (BTreeMap<String, String>, Vec<DescribedPartition>) {
    let out = t.tool(TOPICS, &["--describe", "--topic", topic], None);
    let mut lines = out.lines().filter(|l| !l.trim().is_empty());
    let header = fields(lines.next().unwrap_or_else(|| panic!("no output:\n{out}")));
    assert_eq!(
        header.get("Topic").map(String::as_str),
        Some(topic),
        "{out}"
    );
    assert_eq!(
        header.get("PartitionCount"),
        Some(&partitions.to_string()),
        "{out}"
    );
    assert_eq!(
        header.get("ReplicationFactor"),
        Some(&rf.to_string()),
        "{out}"
    );
    assert!(header.contains_key("TopicId"), "no TopicId:\n{out}");
    let parts: Vec<DescribedPartition> = lines
        .map(|l| {
            let f = fields(l);
            let get = |k: &str| {
                f.get(k)
                    .unwrap_or_else(|| panic!("no {k}: in {l:?}\n{out}"))
                    .clone()
            };
            // `N/A` is what TopicCommand prints when the broker lacks DescribeTopicPartitions
            // (it falls back to Metadata): FINDINGS D8. Kafka prints an empty list.
            assert_ne!(
                f.get("Elr").map(String::as_str),
                Some("N/A"),
                "no DescribeTopicPartitions: {l:?}\n{out}"
            );
            DescribedPartition {
                partition: get("Partition").parse().expect("partition number"),
                leader: get("Leader").parse().expect("leader id"),
                replicas: ids(&get("Replicas")),
                isr: ids(&get("Isr")),
            }
        })
        .collect();
    let numbers: Vec<i32> = parts.iter().map(|p| p.partition).collect();
    assert_eq!(
        numbers,
        (0..partitions as i32).collect::<Vec<_>>(),
        "partition lines:\n{out}"
    );
    for p in &parts {
        let replicas: BTreeSet<i32> = p.replicas.iter().copied().collect();
        assert_eq!(replicas.len(), rf, "replicas of {p:?}:\n{out}");
        assert!(
            replicas.iter().all(|r| t.broker_ids.contains(r)),
            "replicas {p:?} are not brokers {:?}:\n{out}",
            t.broker_ids
        );
        assert!(replicas.contains(&p.leader), "leader of {p:?}:\n{out}");
        let isr: BTreeSet<i32> = p.isr.iter().copied().collect();
        assert_eq!(isr, replicas, "ISR of {p:?}:\n{out}");
    }
    (header, parts)
}

/// kafka-configs: `--describe --entity-type brokers --entity-name ID --all` lists every config of
/// the first broker with the value in force: defaults (`message.max.bytes`, and
/// `log.retention.hours`, which kbroker reads but once left out of the list) and what the broker's
/// file sets (`log.dirs`).
pub fn broker_configs(t: &Target<'_>) {
    let id = t.broker_ids[0].to_string();
    let args = [
        "--describe",
        "--entity-type",
        "brokers",
        "--entity-name",
        &id,
        "--all",
    ];
    let out = t.tool(CONFIGS, &args, None);
    assert!(
        out.contains(&format!("All configs for broker {id} are:")),
        "{out}"
    );
    // `  name=value sensitive=false synonyms={...}`
    let configs: BTreeMap<&str, &str> = out
        .lines()
        .filter_map(|l| l.trim().split_once(" sensitive=")?.0.split_once('='))
        .collect();
    assert_eq!(configs.get("message.max.bytes"), Some(&"1048588"), "{out}");
    assert_eq!(configs.get("log.retention.hours"), Some(&"168"), "{out}");
    assert!(
        configs
            .get("log.dirs")
            .is_some_and(|d| !d.is_empty() && *d != "null"),
        "{out}"
    );
}

/// kafka-topics: `--create` with partitions, replication factor and `--config`, `--list`,
/// `--describe`, `--alter --partitions`, `--describe` again. Returns the topic.
pub fn topics(t: &Target<'_>, rf: usize) -> String {
    let topic = unique("cli-topic");
    let rf_s = rf.to_string();
    let out = t.tool(
        TOPICS,
        &[
            "--create",
            "--topic",
            &topic,
            "--partitions",
            "3",
            "--replication-factor",
            &rf_s,
            "--config",
            "retention.ms=3600000",
            "--config",
            "cleanup.policy=delete",
        ],
        None,
    );
    assert!(
        out.contains(&format!("Created topic {topic}.")),
        "kafka-topics --create said:\n{out}"
    );
    let out = t.tool(TOPICS, &["--list"], None);
    assert!(
        out.lines().any(|l| l == topic),
        "{topic} is not listed by kafka-topics --list:\n{out}"
    );
    let (header, parts) = describe_topic(t, &topic, 3, rf);
    let configs = header.get("Configs").cloned().unwrap_or_default();
    assert!(
        configs.split(',').any(|c| c == "retention.ms=3600000"),
        "Configs of {topic}: {configs}"
    );
    if t.broker_ids.len() > 1 {
        let leaders: BTreeSet<i32> = parts.iter().map(|p| p.leader).collect();
        assert!(
            leaders.len() > 1,
            "every partition is led by the same broker: {parts:?}"
        );
    }
    let out = t.tool(
        TOPICS,
        &["--alter", "--topic", &topic, "--partitions", "4"],
        None,
    );
    assert!(
        !out.contains("Error"),
        "kafka-topics --alter --partitions 4 said:\n{out}"
    );
    describe_topic(t, &topic, 4, rf);
    topic
}

/// Keyed lines for the console producer (`key:value`): 4 keys, 5 values each.
fn keyed_input() -> Vec<String> {
    (0..20).map(|i| format!("k{}:v{i}", i % 4)).collect()
}

/// One row of `kafka-consumer-groups --describe` (or `--reset-offsets`) for `topic`:
/// column name → value.
fn group_rows(out: &str, topic: &str) -> BTreeMap<i32, BTreeMap<String, String>> {
    let mut rows = BTreeMap::new();
    let mut columns: Vec<String> = Vec::new();
    for line in out.lines() {
        let cells: Vec<&str> = line.split_whitespace().collect();
        if cells.first() == Some(&"GROUP") {
            columns = cells.iter().map(|s| s.to_string()).collect();
            continue;
        }
        if columns.is_empty() || cells.len() < 3 || cells[1] != topic {
            continue;
        }
        let row: BTreeMap<String, String> = columns
            .iter()
            .cloned()
            .zip(cells.iter().map(|s| s.to_string()))
            .collect();
        let partition = row["PARTITION"].parse().expect("PARTITION is a number");
        rows.insert(partition, row);
    }
    rows
}

/// Console producer (keys with `parse.key`), console consumer in a group (`--from-beginning
/// --max-messages`, keys printed), consumer-groups `--describe` (every partition's
/// CURRENT-OFFSET at its LOG-END-OFFSET, LAG 0), `--reset-offsets --to-earliest --execute`, and
/// `--describe` again (CURRENT-OFFSET 0, LAG = LOG-END-OFFSET).
pub fn console_and_groups(t: &Target<'_>, topic: &str, partitions: i32) {
    let input = keyed_input();
    let mut text = input.join("\n");
    text.push('\n');
    t.tool(
        PRODUCER,
        &[
            "--topic",
            topic,
            "--reader-property",
            "parse.key=true",
            "--reader-property",
            "key.separator=:",
        ],
        Some(&text),
    );
    let group = unique("cli-group");
    let n = input.len().to_string();
    let out = t.tool(
        CONSUMER,
        &[
            "--topic",
            topic,
            "--group",
            &group,
            "--from-beginning",
            "--max-messages",
            &n,
            "--timeout-ms",
            "30000",
            "--formatter-property",
            "print.key=true",
            "--formatter-property",
            "key.separator=:",
        ],
        None,
    );
    let got: Vec<&str> = out.lines().filter(|l| !l.is_empty()).collect();
    let mut sorted_got: Vec<&str> = got.clone();
    sorted_got.sort_unstable();
    let mut sorted_want: Vec<&str> = input.iter().map(String::as_str).collect();
    sorted_want.sort_unstable();
    assert_eq!(sorted_got, sorted_want, "console consumer read:\n{out}");
    // One key, one partition: each key's values in the order they were produced.
    for k in 0..4 {
        let prefix = format!("k{k}:");
        let of_key: Vec<&&str> = got.iter().filter(|l| l.starts_with(&prefix)).collect();
        let want: Vec<String> = input
            .iter()
            .filter(|l| l.starts_with(&prefix))
            .cloned()
            .collect();
        assert_eq!(
            of_key.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            want,
            "order of key k{k}:\n{out}"
        );
    }

    let describe = || {
        let out = t.tool(GROUPS, &["--describe", "--group", &group], None);
        let rows = group_rows(&out, topic);
        assert_eq!(
            rows.keys().copied().collect::<Vec<_>>(),
            (0..partitions).collect::<Vec<_>>(),
            "a row per partition of {topic}:\n{out}"
        );
        (out, rows)
    };
    let num = |row: &BTreeMap<String, String>, col: &str, out: &str| -> i64 {
        row.get(col)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{col} is not a number in {row:?}:\n{out}"))
    };
    let (out, rows) = describe();
    let mut total = 0;
    for row in rows.values() {
        let end = num(row, "LOG-END-OFFSET", &out);
        assert_eq!(num(row, "CURRENT-OFFSET", &out), end, "{out}");
        assert_eq!(num(row, "LAG", &out), 0, "{out}");
        total += end;
    }
    assert_eq!(total, input.len() as i64, "LOG-END-OFFSETs add up:\n{out}");

    let out = t.tool(
        GROUPS,
        &[
            "--reset-offsets",
            "--to-earliest",
            "--execute",
            "--group",
            &group,
            "--topic",
            topic,
        ],
        None,
    );
    let rows = group_rows(&out, topic);
    assert_eq!(rows.len(), partitions as usize, "{out}");
    for row in rows.values() {
        assert_eq!(num(row, "NEW-OFFSET", &out), 0, "{out}");
    }
    let (out, rows) = describe();
    for row in rows.values() {
        assert_eq!(num(row, "CURRENT-OFFSET", &out), 0, "{out}");
        assert_eq!(
            num(row, "LAG", &out),
            num(row, "LOG-END-OFFSET", &out),
            "{out}"
        );
    }
}

/// A console consumer left running in a group, stopped (SIGTERM to its process group, so the
/// JVM closes the consumer and leaves the group) when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let group = nix::unistd::Pid::from_raw(-(self.0.id() as i32));
        let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.0.wait();
    }
}

/// `kafka-consumer-groups --describe --state`: (STATE, #MEMBERS) of `group`, or `None` while
/// the group is not known yet (Apache Kafka 4.x answers `GroupIdNotFoundException` through the
/// KIP-848 ConsumerGroupDescribe API, kbroker a Dead group through DescribeGroups: both mean the
/// consumer has not joined yet). The COORDINATOR column holds a space (`host:port  (id)`), so the
/// two are read from the end of the row.
fn group_state(t: &Target<'_>, group: &str) -> Option<(String, String)> {
    let out = t.tool(GROUPS, &["--describe", "--state", "--group", group], None);
    if out.contains("GroupIdNotFoundException") || out.contains("does not exist") {
        return None;
    }
    let row = out
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|cells| cells.first() == Some(&group))
        .unwrap_or_else(|| panic!("no row for {group} in --describe --state:\n{out}"));
    let n = row.len();
    assert!(n >= 5, "--describe --state row too short:\n{out}");
    Some((row[n - 2].to_owned(), row[n - 1].to_owned()))
}

/// A group with a live member, as an operator looks at it: a console consumer stays in the group
/// while `kafka-consumer-groups` describes it. `--describe --state` reaches Stable with one
/// member; `--describe` names that member on every partition (CONSUMER-ID, HOST, CLIENT-ID);
/// `--describe --members --verbose` gives it all the partitions; once the consumer stops, the
/// group is Empty with no members (it left; no session timeout to wait for).
pub fn active_group(t: &Target<'_>, topic: &str, partitions: i32) {
    let group = unique("cli-active");
    let consumer = Running(
        kafka_tool(
            CONSUMER,
            &[
                "--bootstrap-server",
                t.bootstrap,
                "--topic",
                topic,
                "--group",
                &group,
                "--timeout-ms",
                "120000",
            ],
        )
        .env_remove("LD_LIBRARY_PATH")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("start the console consumer"),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let state = group_state(t, &group);
        if state
            .as_ref()
            .is_some_and(|(s, m)| s == "Stable" && m == "1")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{group} not Stable with 1 member within 60 s: {state:?}\n{}",
            (t.context)()
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    let out = t.tool(GROUPS, &["--describe", "--group", &group], None);
    let rows = group_rows(&out, topic);
    assert_eq!(
        rows.keys().copied().collect::<Vec<_>>(),
        (0..partitions).collect::<Vec<_>>(),
        "a row per partition:\n{out}"
    );
    let member = rows[&0]["CONSUMER-ID"].clone();
    assert!(member.starts_with("console-consumer-"), "{out}");
    for row in rows.values() {
        assert_eq!(
            row["CONSUMER-ID"], member,
            "one member holds every partition:\n{out}"
        );
        assert_eq!(row["HOST"], "/127.0.0.1", "{out}");
        assert_eq!(row["CLIENT-ID"], "console-consumer", "{out}");
    }

    let out = t.tool(
        GROUPS,
        &["--describe", "--members", "--verbose", "--group", &group],
        None,
    );
    let row: Vec<&str> = out
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|cells| cells.first() == Some(&group.as_str()))
        .unwrap_or_else(|| panic!("no member row:\n{out}"));
    assert_eq!(row.get(1), Some(&member.as_str()), "{out}");
    assert_eq!(
        row.get(4),
        Some(&partitions.to_string().as_str()),
        "#PARTITIONS:\n{out}"
    );
    let all: Vec<String> = (0..partitions).map(|p| p.to_string()).collect();
    let assignment = format!("{topic}:{}", all.join(","));
    assert!(
        row.contains(&assignment.as_str()),
        "assignment {assignment}:\n{out}"
    );

    drop(consumer);
    assert_eq!(
        group_state(t, &group),
        Some(("Empty".to_owned(), "0".to_owned())),
        "after the consumer stopped\n{}",
        (t.context)()
    );
}

/// `kafka-producer-perf-test --num-records N --record-size 100 --throughput -1` to a topic it
/// auto-creates (extra `--command-property` settings as given): its summary line says all N were sent.
pub fn producer_perf(t: &Target<'_>, records: u32, props: &[&str]) {
    let topic = unique("cli-perf");
    let n = records.to_string();
    let mut args = vec![
        "--topic",
        &topic,
        "--num-records",
        &n,
        "--record-size",
        "100",
        "--throughput",
        "-1",
    ];
    if !props.is_empty() {
        args.push("--command-property");
        args.extend_from_slice(props);
    }
    let out = t.tool(PERF, &args, None);
    let summary = out
        .lines()
        .rfind(|l| l.contains("records sent"))
        .unwrap_or_else(|| panic!("no summary line:\n{out}"));
    assert!(
        summary.starts_with(&format!("{records} records sent, ")),
        "producer-perf-test summary: {summary}\n{out}"
    );
    assert!(summary.contains("records/sec"), "{summary}");
}
