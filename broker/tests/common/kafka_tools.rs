//! Apache Kafka's own command-line tools as the people in our user stories type them
//! (`kafka-topics`, `kafka-console-producer`, `kafka-console-consumer`, `kafka-consumer-groups`,
//! `kafka-producer-perf-test`: the main classes those scripts run, from Kafka 4.4.0's jars), with
//! the expectations written once and checked against kbroker and against Apache Kafka.
//!
//! Each step is one JVM (`compat/kafka/kafka.sh run CLASS ...`), bounded by [`TOOL_TIMEOUT`].

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::clients::{kafka_tool, run_client};

/// Longest one tool may run (each starts a JVM: 2-5 s of it on a busy 2-core machine).
pub const TOOL_TIMEOUT: Duration = Duration::from_secs(60);

const TOPICS: &str = "org.apache.kafka.tools.TopicCommand";
const PRODUCER: &str = "org.apache.kafka.tools.ConsoleProducer";
const CONSUMER: &str = "org.apache.kafka.tools.consumer.ConsoleConsumer";
const GROUPS: &str = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand";
const PERF: &str = "org.apache.kafka.tools.ProducerPerformance";

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
