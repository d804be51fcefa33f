//! Apache Kafka's own command-line tools (Kafka 4.4.0's jars, run by `compat/kafka/kafka.sh run`)
//! against kbroker, as the people in our user stories type them: `kafka-topics` create (with
//! partitions, replication factor and `--config`), list, describe (Leader / Replicas / Isr) and
//! alter partitions; the console producer (keys) and consumer (`--from-beginning
//! --max-messages`, in a group); `kafka-consumer-groups --describe` and `--reset-offsets
//! --to-earliest --execute`; `kafka-producer-perf-test`; `kafka-configs --describe --all` of a
//! broker. The expectations live in `common/kafka_tools.rs` and `compat_kafka.rs` holds Apache
//! Kafka to the same ones.
//!
//! Needs Java 17+ and Kafka's jars (`.ci/install-deps.sh` fetches them); without them the tests
//! fail saying so.

mod common;

use common::clients::log_tail;
use common::cluster::TestCluster;
use common::kafka_tools::{self, Target};
use common::TestBroker;

/// One kbroker (node 0): every tool step.
#[test]
fn kafka_command_line_tools_against_one_kbroker() {
    let broker = TestBroker::start(&[]);
    let context = || log_tail("kbroker log", &broker.log(), 60);
    let t = Target {
        bootstrap: &broker.bootstrap,
        broker_ids: &[0],
        context: &context,
    };
    let topic = kafka_tools::topics(&t, 1);
    kafka_tools::console_and_groups(&t, &topic, 4);
    kafka_tools::active_group(&t, &topic, 4);
    kafka_tools::producer_perf(&t, 20_000, &[]);
    kafka_tools::broker_configs(&t);
}

/// Three kbrokers: a topic with replication factor 3 described with three replicas in sync and
/// leaders spread, grown to 4 partitions, and producer-perf-test with acks=all.
#[test]
fn kafka_command_line_tools_against_a_3_broker_kbroker_cluster() {
    let cluster = TestCluster::start(3, &[], &["default.replication.factor=3"]);
    let context = || cluster.log_tails(30);
    let bootstrap = cluster.bootstrap();
    let t = Target {
        bootstrap: &bootstrap,
        broker_ids: &[1, 2, 3],
        context: &context,
    };
    kafka_tools::topics(&t, 3);
    kafka_tools::producer_perf(&t, 20_000, &["acks=all"]);
}
