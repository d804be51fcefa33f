package dev.kbench.compat;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeSet;
import java.util.UUID;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import java.util.stream.Collectors;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.ConsumerGroupListing;
import org.apache.kafka.clients.admin.DescribeConfigsOptions;
import org.apache.kafka.clients.admin.NewPartitions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.RecordsToDelete;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.GroupIdNotFoundException;
import org.apache.kafka.common.errors.InvalidConfigurationException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * Apache Kafka's own Java client against a broker: the AdminClient, producers with every codec
 * and idempotence, classic consumer groups (range and cooperative-sticky rebalances, static
 * membership) and transactions with read_committed. The same checks run against kbroker and
 * against a real Kafka of the same version; a check that passes on one and fails on the other
 * is a divergence.
 *
 * <p>Usage: {@code KafkaCompat BOOTSTRAP [CHECK...]} (all checks when none are named). Prints
 * {@code ok CHECK} or {@code FAIL CHECK: reason} per check and exits 1 naming the failed ones.
 * Every wait is bounded: admin calls and sends by {@link #TIMEOUT_S}, polling loops by
 * {@link #WAIT_MS}.
 */
public final class KafkaCompat {
    /** Longest wait for one admin call, send or flush (seconds). */
    static final int TIMEOUT_S = 30;
    /** Longest polling loop (milliseconds). */
    static final long WAIT_MS = 30_000;

    private final String bootstrap;

    private KafkaCompat(String bootstrap) {
        this.bootstrap = bootstrap;
    }

    /** A check failed: what was expected and what came back. */
    static final class Mismatch extends RuntimeException {
        Mismatch(String message) {
            super(message);
        }
    }

    interface Check {
        void run() throws Exception;
    }

    public static void main(String[] args) {
        if (args.length < 1) {
            System.err.println("usage: KafkaCompat BOOTSTRAP [admin|codecs|idempotence|range"
                    + "|cooperative|static_membership|transactions]...");
            System.exit(2);
        }
        KafkaCompat c = new KafkaCompat(args[0]);
        Map<String, Check> checks = new LinkedHashMap<>();
        checks.put("admin", c::adminApi);
        checks.put("codecs", c::codecs);
        checks.put("idempotence", c::idempotence);
        checks.put("range", c::range);
        checks.put("cooperative", c::cooperative);
        checks.put("static_membership", c::staticMembership);
        checks.put("transactions", c::transactions);
        List<String> names = args.length > 1 ? List.of(args).subList(1, args.length)
                : new ArrayList<>(checks.keySet());
        for (String n : names) {
            if (!checks.containsKey(n)) {
                System.err.println("unknown check " + n + "; known: " + checks.keySet());
                System.exit(2);
            }
        }
        List<String> failed = new ArrayList<>();
        for (String n : names) {
            long start = System.nanoTime();
            try {
                checks.get(n).run();
                System.out.printf("ok %s (%.1fs)%n", n, (System.nanoTime() - start) / 1e9);
            } catch (Throwable t) {
                System.out.printf("FAIL %s: %s%n", n, t);
                t.printStackTrace(System.out);
                failed.add(n);
            }
            System.out.flush();
        }
        if (!failed.isEmpty()) {
            System.out.println("FAILED: " + String.join(", ", failed));
            System.exit(1);
        }
    }

    // ----- helpers -----

    static void check(boolean cond, String what) {
        if (!cond) {
            throw new Mismatch(what);
        }
    }

    static void checkEq(Object got, Object want, String what) {
        if (!java.util.Objects.equals(got, want)) {
            throw new Mismatch(what + ": expected " + want + ", got " + got);
        }
    }

    static String unique(String prefix) {
        return prefix + "-" + UUID.randomUUID().toString().substring(0, 8);
    }

    static void waitFor(String what, BooleanSupplier done) throws InterruptedException {
        long end = System.currentTimeMillis() + WAIT_MS;
        while (!done.getAsBoolean()) {
            if (System.currentTimeMillis() > end) {
                throw new Mismatch("timed out after " + WAIT_MS + " ms waiting for " + what);
            }
            Thread.sleep(50);
        }
    }

    static <T> T get(org.apache.kafka.common.KafkaFuture<T> f) throws Exception {
        return f.get(TIMEOUT_S, TimeUnit.SECONDS);
    }

    /** How many partitions `describeTopics` shows for `topic`. */
    static int partitionCount(Admin admin, String topic) {
        try {
            return get(admin.describeTopics(List.of(topic)).allTopicNames())
                    .get(topic).partitions().size();
        } catch (Exception e) {
            throw new IllegalStateException("describeTopics(" + topic + ") failed", e);
        }
    }

    /** The cause of a failed admin future, or a mismatch when it succeeded. */
    static Throwable failure(org.apache.kafka.common.KafkaFuture<?> f, String what) throws Exception {
        try {
            f.get(TIMEOUT_S, TimeUnit.SECONDS);
        } catch (ExecutionException e) {
            return e.getCause();
        }
        throw new Mismatch(what + " succeeded; an error was expected");
    }

    Admin admin() {
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("request.timeout.ms", "20000");
        p.put("default.api.timeout.ms", "30000");
        return Admin.create(p);
    }

    KafkaProducer<String, String> producer(Map<String, Object> extra) {
        Map<String, Object> p = new HashMap<>();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class);
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class);
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, 30_000);
        p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, 20_000);
        p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, 30_000);
        p.put(ProducerConfig.LINGER_MS_CONFIG, 5);
        p.putAll(extra);
        return new KafkaProducer<>(p);
    }

    KafkaConsumer<String, String> consumer(String group, Map<String, Object> extra) {
        Map<String, Object> p = new HashMap<>();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class);
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class);
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        p.put(ConsumerConfig.REQUEST_TIMEOUT_MS_CONFIG, 20_000);
        p.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 30_000);
        if (group != null) {
            p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
            p.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, "classic");
            p.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, 10_000);
            p.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, 500);
            p.put(ConsumerConfig.MAX_POLL_INTERVAL_MS_CONFIG, 20_000);
        }
        p.putAll(extra);
        return new KafkaConsumer<>(p);
    }

    void createTopic(Admin admin, String name, int partitions, Map<String, String> configs)
            throws Exception {
        get(admin.createTopics(List.of(new NewTopic(name, partitions, (short) 1).configs(configs)))
                .all());
        // Kafka answers CreateTopics before the new partitions' leaders serve them: a producer
        // that starts at once gets NOT_LEADER_OR_FOLLOWER, and an idempotent one with 5 batches
        // in flight then saw OUT_OF_ORDER_SEQUENCE on the rest until they expired (FINDINGS D7).
        // ListOffsets succeeds only once every partition is led: wait for that.
        try (KafkaConsumer<String, String> c = consumer(null, Map.of())) {
            List<TopicPartition> tps = new ArrayList<>();
            for (int i = 0; i < partitions; i++) {
                tps.add(new TopicPartition(name, i));
            }
            c.endOffsets(tps, Duration.ofSeconds(TIMEOUT_S));
        }
    }

    /** Every record of `topic` from the start to the end offsets, read with an assignment. */
    List<ConsumerRecord<String, String>> readAll(String topic, String isolation) throws Exception {
        try (KafkaConsumer<String, String> c =
                consumer(null, Map.of(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation))) {
            List<TopicPartition> tps = c.partitionsFor(topic).stream()
                    .map(i -> new TopicPartition(topic, i.partition())).collect(Collectors.toList());
            c.assign(tps);
            c.seekToBeginning(tps);
            Map<TopicPartition, Long> end = c.endOffsets(tps);
            List<ConsumerRecord<String, String>> out = new ArrayList<>();
            long deadline = System.currentTimeMillis() + WAIT_MS;
            while (tps.stream().anyMatch(tp -> c.position(tp) < end.get(tp))) {
                if (System.currentTimeMillis() > deadline) {
                    throw new Mismatch("reading " + topic + " did not reach the end offsets " + end);
                }
                c.poll(Duration.ofMillis(200)).forEach(out::add);
            }
            return out;
        }
    }

    // ----- admin -----

    void adminApi() throws Exception {
        try (Admin admin = admin()) {
            String t = unique("java-admin");
            Map<String, String> configs = Map.of(
                    "retention.ms", "3600000",
                    "max.message.bytes", "200000",
                    "min.cleanable.dirty.ratio", "0.3",
                    "segment.jitter.ms", "10");
            createTopic(admin, t, 3, configs);
            String exists = failure(admin.createTopics(List.of(new NewTopic(t, 1, (short) 1))).all(),
                    "creating " + t + " twice").getClass().getSimpleName();
            checkEq(exists, "TopicExistsException", "creating an existing topic");

            TopicDescription d = get(admin.describeTopics(List.of(t)).allTopicNames()).get(t);
            checkEq(d.partitions().size(), 3, "partitions of " + t);
            for (TopicPartitionInfo p : d.partitions()) {
                check(p.leader() != null, "partition " + p.partition() + " has a leader");
                checkEq(p.replicas().size(), 1, "replicas of partition " + p.partition());
                checkEq(p.isr().size(), 1, "ISR of partition " + p.partition());
            }
            check(get(admin.listTopics().names()).contains(t), "listTopics has " + t);

            var cluster = admin.describeCluster();
            check(!get(cluster.nodes()).isEmpty(), "describeCluster lists brokers");
            check(get(cluster.clusterId()) != null, "describeCluster has a cluster id");
            check(get(cluster.controller()) != null, "describeCluster names a controller");

            ConfigResource topic = new ConfigResource(ConfigResource.Type.TOPIC, t);
            Config c = get(admin.describeConfigs(List.of(topic)).all()).get(topic);
            checkEq(c.get("retention.ms").value(), "3600000", "retention.ms");
            checkEq(c.get("retention.ms").source(), ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG,
                    "retention.ms source");
            checkEq(c.get("min.cleanable.dirty.ratio").value(), "0.3", "min.cleanable.dirty.ratio");
            checkEq(c.get("segment.jitter.ms").value(), "10", "segment.jitter.ms");
            for (String key : List.of("cleanup.policy", "compression.type", "segment.bytes",
                    "min.insync.replicas", "message.timestamp.type", "preallocate",
                    "local.retention.ms", "remote.storage.enable")) {
                check(c.get(key) != null, "describeConfigs of a topic has " + key);
            }
            checkEq(c.get("segment.jitter.ms").isDefault(), false, "segment.jitter.ms is an override");
            ConfigResource broker = new ConfigResource(ConfigResource.Type.BROKER,
                    String.valueOf(get(cluster.nodes()).iterator().next().id()));
            Config bc = get(admin.describeConfigs(List.of(broker)).all()).get(broker);
            check(bc.get("message.max.bytes") != null, "broker configs have message.max.bytes");
            // with documentation asked for: each broker key says what it is and its type
            bc = get(admin.describeConfigs(List.of(broker),
                    new DescribeConfigsOptions().includeDocumentation(true).includeSynonyms(true))
                    .all()).get(broker);
            ConfigEntry maxBytes = bc.get("message.max.bytes");
            check(maxBytes.documentation() != null && !maxBytes.documentation().isEmpty(),
                    "broker message.max.bytes has documentation when asked");
            checkEq(maxBytes.type(), ConfigEntry.ConfigType.INT, "broker message.max.bytes type");
            checkEq(maxBytes.source(), ConfigEntry.ConfigSource.DEFAULT_CONFIG,
                    "broker message.max.bytes source");
            checkEq(bc.get("auto.create.topics.enable").type(), ConfigEntry.ConfigType.BOOLEAN,
                    "broker auto.create.topics.enable type");
            // synonyms: an unset key's default; log.dirs, set in the file
            checkEq(maxBytes.synonyms().stream()
                    .map(y -> y.source() + ":" + y.name() + "=" + y.value()).toList(),
                    List.of("DEFAULT_CONFIG:message.max.bytes=1048588"),
                    "broker message.max.bytes synonyms");
            checkEq(bc.get("log.dirs").synonyms().get(0).source(),
                    ConfigEntry.ConfigSource.STATIC_BROKER_CONFIG, "broker log.dirs first synonym");

            Map<ConfigResource, Collection<AlterConfigOp>> alter = Map.of(topic, List.of(
                    new AlterConfigOp(new ConfigEntry("retention.ms", "7200000"), AlterConfigOp.OpType.SET),
                    new AlterConfigOp(new ConfigEntry("max.message.bytes", null), AlterConfigOp.OpType.DELETE),
                    new AlterConfigOp(new ConfigEntry("cleanup.policy", "compact"), AlterConfigOp.OpType.APPEND),
                    new AlterConfigOp(new ConfigEntry("compression.type", "zstd"), AlterConfigOp.OpType.SET)));
            get(admin.incrementalAlterConfigs(alter).all());
            c = get(admin.describeConfigs(List.of(topic)).all()).get(topic);
            checkEq(c.get("retention.ms").value(), "7200000", "retention.ms after SET");
            checkEq(c.get("max.message.bytes").value(), "1048588", "max.message.bytes after DELETE");
            checkEq(c.get("cleanup.policy").value(), "delete,compact", "cleanup.policy after APPEND");
            checkEq(c.get("compression.type").value(), "zstd", "compression.type after SET");
            Throwable unknown = failure(admin.incrementalAlterConfigs(Map.of(topic, List.of(
                    new AlterConfigOp(new ConfigEntry("no.such.config", "1"), AlterConfigOp.OpType.SET))))
                    .all(), "setting an unknown topic config");
            check(unknown instanceof InvalidConfigurationException,
                    "an unknown topic config is refused with InvalidConfigurationException, not " + unknown);
            Throwable bad = failure(admin.incrementalAlterConfigs(Map.of(topic, List.of(
                    new AlterConfigOp(new ConfigEntry("retention.ms", "soon"), AlterConfigOp.OpType.SET))))
                    .all(), "setting retention.ms=soon");
            check(bad instanceof InvalidConfigurationException,
                    "a bad value is refused with InvalidConfigurationException, not " + bad);

            get(admin.createPartitions(Map.of(t, NewPartitions.increaseTo(5))).all());
            // Kafka answers once the controller has committed the partitions; the broker that
            // serves the next describe takes them into its metadata a moment later.
            waitFor("describeTopics to show 5 partitions of " + t + " after createPartitions",
                    () -> partitionCount(admin, t) == 5);

            TopicPartition p0 = new TopicPartition(t, 0);
            TopicPartition p1 = new TopicPartition(t, 1);
            // Timestamps inside the topic's retention.ms (2 h, set above): records from 1970 were
            // deleted by Apache Kafka's first retention check, 30 s after start, when it fell
            // between these sends and the offset checks below.
            long base = System.currentTimeMillis() - 600_000L;
            try (KafkaProducer<String, String> p = producer(Map.of())) {
                for (int i = 0; i < 10; i++) {
                    p.send(new ProducerRecord<>(t, 0, base + i, "k" + i, "v" + i))
                            .get(TIMEOUT_S, TimeUnit.SECONDS);
                    p.send(new ProducerRecord<>(t, 1, "k" + i, "v" + i)).get(TIMEOUT_S, TimeUnit.SECONDS);
                }
            }
            var earliest = get(admin.listOffsets(Map.of(p0, OffsetSpec.earliest())).all());
            var latest = get(admin.listOffsets(Map.of(p0, OffsetSpec.latest())).all());
            var byTime = get(admin.listOffsets(Map.of(p0, OffsetSpec.forTimestamp(base + 3))).all());
            checkEq(earliest.get(p0).offset(), 0L, "earliest offset");
            checkEq(latest.get(p0).offset(), 10L, "latest offset");
            checkEq(byTime.get(p0).offset(), 3L, "offset for the fourth record's timestamp");

            var low = get(admin.deleteRecords(Map.of(p0, RecordsToDelete.beforeOffset(4))).lowWatermarks().get(p0));
            checkEq(low.lowWatermark(), 4L, "low watermark after deleteRecords");
            earliest = get(admin.listOffsets(Map.of(p0, OffsetSpec.earliest())).all());
            checkEq(earliest.get(p0).offset(), 4L, "earliest offset after deleteRecords");
            List<ConsumerRecord<String, String>> rest = readAll(t, "read_uncommitted");
            checkEq(rest.stream().filter(r -> r.partition() == 0).map(ConsumerRecord::offset)
                    .collect(Collectors.toList()), List.of(4L, 5L, 6L, 7L, 8L, 9L),
                    "partition 0 offsets after deleteRecords");

            String group = unique("java-admin-group");
            try (KafkaConsumer<String, String> c1 = consumer(group, Map.of())) {
                c1.subscribe(List.of(t));
                Set<Integer> seen = new HashSet<>();
                long deadline = System.currentTimeMillis() + WAIT_MS;
                int got = 0;
                while (got < 16) {
                    check(System.currentTimeMillis() < deadline, "group consumer read " + got + " of 16");
                    for (ConsumerRecord<String, String> r : c1.poll(Duration.ofMillis(200))) {
                        seen.add(r.partition());
                        got++;
                    }
                }
                c1.commitSync(Duration.ofSeconds(TIMEOUT_S));
            }
            @SuppressWarnings("deprecation")
            Collection<ConsumerGroupListing> groups = get(admin.listConsumerGroups().all());
            check(groups.stream().anyMatch(g -> g.groupId().equals(group)),
                    "listConsumerGroups has " + group + ": " + groups);
            var committed = get(admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata());
            checkEq(committed.get(p0).offset(), 10L, "committed offset of partition 0");
            checkEq(committed.get(p1).offset(), 10L, "committed offset of partition 1");

            get(admin.alterConsumerGroupOffsets(group, Map.of(p0, new OffsetAndMetadata(6))).all());
            committed = get(admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata());
            checkEq(committed.get(p0).offset(), 6L, "partition 0 after alterConsumerGroupOffsets");
            get(admin.deleteConsumerGroupOffsets(group, Set.of(p1)).all());
            committed = get(admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata());
            check(committed.get(p1) == null, "partition 1's offset is gone: " + committed);
            checkEq(committed.get(p0).offset(), 6L, "partition 0 kept its offset");

            get(admin.deleteConsumerGroups(List.of(group)).all());
            @SuppressWarnings("deprecation")
            Collection<ConsumerGroupListing> after = get(admin.listConsumerGroups().all());
            check(after.stream().noneMatch(g -> g.groupId().equals(group)),
                    group + " is gone after deleteConsumerGroups");
            Throwable again = failure(admin.deleteConsumerGroups(List.of(group)).all(),
                    "deleting a deleted group");
            check(again instanceof GroupIdNotFoundException,
                    "deleting it again is GroupIdNotFoundException, not " + again);

            get(admin.deleteTopics(List.of(t)).all());
        }
    }

    // ----- producers -----

    void codecs() throws Exception {
        try (Admin admin = admin()) {
            for (String codec : List.of("none", "gzip", "snappy", "lz4", "zstd")) {
                String t = unique("java-codec-" + codec);
                createTopic(admin, t, 1, Map.of());
                try (KafkaProducer<String, String> p = producer(Map.of(
                        ProducerConfig.COMPRESSION_TYPE_CONFIG, codec,
                        ProducerConfig.LINGER_MS_CONFIG, 50))) {
                    for (int i = 0; i < 300; i++) {
                        p.send(new ProducerRecord<>(t, "key-" + i, codec + " value " + i + " "
                                + "x".repeat(i % 50)));
                    }
                    p.flush();
                }
                List<ConsumerRecord<String, String>> got = readAll(t, "read_uncommitted");
                checkEq(got.size(), 300, codec + ": records read back");
                for (int i = 0; i < 300; i++) {
                    ConsumerRecord<String, String> r = got.get(i);
                    checkEq(r.offset(), (long) i, codec + ": offset");
                    checkEq(r.key(), "key-" + i, codec + ": key at " + i);
                    checkEq(r.value(), codec + " value " + i + " " + "x".repeat(i % 50),
                            codec + ": value at " + i);
                }
            }
        }
    }

    void idempotence() throws Exception {
        try (Admin admin = admin()) {
            String t = unique("java-idempotent");
            createTopic(admin, t, 3, Map.of());
            try (KafkaProducer<String, String> p = producer(Map.of(
                    ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, true,
                    ProducerConfig.ACKS_CONFIG, "all",
                    ProducerConfig.MAX_IN_FLIGHT_REQUESTS_PER_CONNECTION, 5,
                    ProducerConfig.BATCH_SIZE_CONFIG, 2048))) {
                List<java.util.concurrent.Future<org.apache.kafka.clients.producer.RecordMetadata>>
                        sent = new ArrayList<>();
                for (int i = 0; i < 3000; i++) {
                    sent.add(p.send(new ProducerRecord<>(t, i % 3, "k", String.valueOf(i))));
                }
                p.flush();
                // Every send acknowledged, or the first failure named (not a short read later).
                Map<String, Integer> errors = new java.util.TreeMap<>();
                for (var f : sent) {
                    try {
                        f.get(TIMEOUT_S, TimeUnit.SECONDS);
                    } catch (ExecutionException e) {
                        errors.merge(String.valueOf(e.getCause()), 1, Integer::sum);
                    }
                }
                check(errors.isEmpty(), "sends of the idempotent producer failed: " + errors);
            }
            List<ConsumerRecord<String, String>> got = readAll(t, "read_uncommitted");
            checkEq(got.size(), 3000, "records of the idempotent producer");
            for (int part = 0; part < 3; part++) {
                final int pp = part;
                List<Integer> values = got.stream().filter(r -> r.partition() == pp)
                        .map(r -> Integer.parseInt(r.value())).collect(Collectors.toList());
                List<Integer> want = new ArrayList<>();
                for (int i = part; i < 3000; i += 3) {
                    want.add(i);
                }
                checkEq(values, want, "partition " + part + ": every record once, in order");
            }
        }
    }

    // ----- consumer groups (classic protocol) -----

    /** Records what a rebalance listener is told. */
    static final class Listener implements ConsumerRebalanceListener {
        final List<Set<TopicPartition>> revoked = new ArrayList<>();
        final List<Set<TopicPartition>> assigned = new ArrayList<>();

        @Override
        public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
            revoked.add(new HashSet<>(partitions));
        }

        @Override
        public void onPartitionsAssigned(Collection<TopicPartition> partitions) {
            assigned.add(new HashSet<>(partitions));
        }
    }

    /** Polls every consumer in turn until `done` holds (one thread: each consumer's own). */
    static void pollUntil(String what, List<KafkaConsumer<String, String>> consumers, BooleanSupplier done) {
        long end = System.currentTimeMillis() + WAIT_MS;
        while (!done.getAsBoolean()) {
            if (System.currentTimeMillis() > end) {
                throw new Mismatch("timed out after " + WAIT_MS + " ms waiting for " + what);
            }
            for (KafkaConsumer<String, String> c : consumers) {
                c.poll(Duration.ofMillis(50));
            }
        }
    }

    static Set<Integer> parts(KafkaConsumer<String, String> c) {
        return c.assignment().stream().map(TopicPartition::partition).collect(Collectors.toCollection(TreeSet::new));
    }

    void groupRebalance(String strategy, boolean incremental) throws Exception {
        try (Admin admin = admin()) {
            String t = unique("java-" + strategy);
            createTopic(admin, t, 4, Map.of());
            String group = unique("java-group-" + strategy);
            Map<String, Object> cfg = Map.of(ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG, strategy);
            Listener la = new Listener();
            Listener lb = new Listener();
            try (KafkaConsumer<String, String> a = consumer(group, cfg);
                    KafkaConsumer<String, String> b = consumer(group, cfg)) {
                a.subscribe(List.of(t), la);
                pollUntil("the first member to get all 4 partitions", List.of(a), () -> parts(a).size() == 4);
                int revokedBefore = la.revoked.size();
                b.subscribe(List.of(t), lb);
                pollUntil("2 + 2 partitions after the second member joined", List.of(a, b),
                        () -> parts(a).size() == 2 && parts(b).size() == 2);
                Set<Integer> all = new TreeSet<>(parts(a));
                all.addAll(parts(b));
                checkEq(all, Set.of(0, 1, 2, 3), "the members' assignments cover the topic");
                if (incremental) {
                    // Cooperative: only the two partitions that moved are revoked, never all four.
                    for (Set<TopicPartition> r : la.revoked.subList(revokedBefore, la.revoked.size())) {
                        check(r.size() <= 2, "cooperative rebalance revoked " + r + " (at most the 2 that moved)");
                    }
                    check(la.revoked.stream().skip(revokedBefore).anyMatch(r -> r.size() == 2),
                            "the member that gave up 2 partitions was told so: " + la.revoked);
                } else {
                    // Eager: the first member gave up everything before the new assignment.
                    check(la.revoked.stream().skip(revokedBefore).anyMatch(r -> r.size() == 4),
                            "eager rebalance revoked all 4 partitions: " + la.revoked);
                }
                b.close(Duration.ofSeconds(TIMEOUT_S));
                pollUntil("all 4 partitions back with the first member after the other left", List.of(a),
                        () -> parts(a).size() == 4);
            }
        }
    }

    void range() throws Exception {
        groupRebalance("org.apache.kafka.clients.consumer.RangeAssignor", false);
    }

    void cooperative() throws Exception {
        groupRebalance("org.apache.kafka.clients.consumer.CooperativeStickyAssignor", true);
    }

    /** A static member (group.instance.id) that restarts gets its partitions back without a
     * rebalance of the others. */
    void staticMembership() throws Exception {
        try (Admin admin = admin()) {
            String t = unique("java-static");
            createTopic(admin, t, 4, Map.of());
            String group = unique("java-static-group");
            Map<String, Object> a = Map.of(ConsumerConfig.GROUP_INSTANCE_ID_CONFIG, "instance-a");
            Map<String, Object> b = Map.of(ConsumerConfig.GROUP_INSTANCE_ID_CONFIG, "instance-b");
            Listener lb = new Listener();
            try (KafkaConsumer<String, String> cb = consumer(group, b)) {
                Set<Integer> first;
                try (KafkaConsumer<String, String> ca = consumer(group, a)) {
                    ca.subscribe(List.of(t));
                    cb.subscribe(List.of(t), lb);
                    pollUntil("two static members with 2 partitions each", List.of(ca, cb),
                            () -> parts(ca).size() == 2 && parts(cb).size() == 2);
                    first = parts(ca);
                }
                // A static member's close sends no LeaveGroup: the group waits for it.
                int assignedBefore = lb.assigned.size();
                int revokedBefore = lb.revoked.size();
                try (KafkaConsumer<String, String> again = consumer(group, a)) {
                    again.subscribe(List.of(t));
                    pollUntil("the restarted static member to get its partitions back", List.of(again, cb),
                            () -> parts(again).size() == 2);
                    checkEq(parts(again), first, "the restarted static member's partitions");
                    for (int i = 0; i < 20; i++) {
                        cb.poll(Duration.ofMillis(50));
                    }
                    checkEq(lb.revoked.size(), revokedBefore, "revocations seen by the other member");
                    checkEq(lb.assigned.size(), assignedBefore, "assignments seen by the other member");
                }
            }
        }
    }

    // ----- transactions -----

    void transactions() throws Exception {
        try (Admin admin = admin()) {
            String in = unique("java-txn-in");
            String out = unique("java-txn-out");
            createTopic(admin, in, 3, Map.of());
            createTopic(admin, out, 3, Map.of());
            try (KafkaProducer<String, String> p = producer(Map.of())) {
                for (int i = 0; i < 300; i++) {
                    p.send(new ProducerRecord<>(in, i % 3, "k" + i, String.valueOf(i)));
                }
                p.flush();
            }
            String group = unique("java-txn-group");
            try (KafkaProducer<String, String> tp = producer(Map.of(
                    ProducerConfig.TRANSACTIONAL_ID_CONFIG, unique("java-txn"),
                    ProducerConfig.TRANSACTION_TIMEOUT_CONFIG, 20_000));
                    KafkaConsumer<String, String> c = consumer(group, Map.of(
                            ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed"))) {
                tp.initTransactions();
                // An aborted transaction: read_committed never sees it.
                tp.beginTransaction();
                for (int i = 0; i < 30; i++) {
                    tp.send(new ProducerRecord<>(out, i % 3, "aborted", "junk"));
                }
                tp.flush();
                tp.abortTransaction();

                c.subscribe(List.of(in));
                int done = 0;
                long deadline = System.currentTimeMillis() + WAIT_MS;
                while (done < 300) {
                    check(System.currentTimeMillis() < deadline, "transformed " + done + " of 300");
                    var records = c.poll(Duration.ofMillis(200));
                    if (records.isEmpty()) {
                        continue;
                    }
                    tp.beginTransaction();
                    Map<TopicPartition, OffsetAndMetadata> next = new HashMap<>();
                    for (ConsumerRecord<String, String> r : records) {
                        tp.send(new ProducerRecord<>(out, r.partition(), r.key(), "t" + r.value()));
                        next.put(new TopicPartition(in, r.partition()), new OffsetAndMetadata(r.offset() + 1));
                        done++;
                    }
                    tp.sendOffsetsToTransaction(next, c.groupMetadata());
                    tp.commitTransaction();
                }
            }
            List<ConsumerRecord<String, String>> committed = readAll(out, "read_committed");
            checkEq(committed.size(), 300, "read_committed records of the output");
            check(committed.stream().noneMatch(r -> "junk".equals(r.value())),
                    "read_committed shows no aborted record");
            for (int part = 0; part < 3; part++) {
                final int pp = part;
                List<String> values = committed.stream().filter(r -> r.partition() == pp)
                        .map(ConsumerRecord::value).collect(Collectors.toList());
                List<String> want = new ArrayList<>();
                for (int i = part; i < 300; i += 3) {
                    want.add("t" + i);
                }
                checkEq(values, want, "output partition " + part + ": exactly once, in input order");
            }
            List<ConsumerRecord<String, String>> all = readAll(out, "read_uncommitted");
            checkEq(all.stream().filter(r -> "junk".equals(r.value())).count(), 30L,
                    "read_uncommitted shows the aborted records");
            var offsets = get(admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata());
            for (int part = 0; part < 3; part++) {
                checkEq(offsets.get(new TopicPartition(in, part)).offset(), 100L,
                        "committed offset of input partition " + part);
            }
        }
    }
}
