//! A synthetic run for the report tests: 30 one-second intervals with 3 s of warm-up, a fault
//! at 15 s, two brokers and kbench watched, and log-normal-ish latencies.

use crate::summary::*;

/// A made-up run with every part filled in.
pub(crate) fn run_data() -> RunData {
    let mut produce = latency_histogram();
    let mut e2e = latency_histogram();
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut rnd = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % 1_000_000) as f64 / 1_000_000.0
    };
    for _ in 0..50_000 {
        let u = rnd();
        produce
            .record((800.0 * (1.0 / (1.0 - u * 0.999)).powf(0.7)) as u64)
            .unwrap();
        e2e.record((1500.0 * (1.0 / (1.0 - u * 0.999)).powf(0.8)) as u64)
            .unwrap();
    }
    let intervals: Vec<IntervalRow> = (1..=30)
        .map(|i| {
            let dip = if (15..18).contains(&i) { 0.3 } else { 1.0 };
            let msgs = (40_000.0 * dip * (0.9 + 0.2 * rnd())) as u64;
            IntervalRow {
                t_s: i as f64,
                interval_s: 1.0,
                produced_msgs: msgs + 100,
                produced_bytes: (msgs + 100) * 1024,
                acked_msgs: msgs,
                acked_bytes: msgs * 1024,
                consumed_msgs: msgs - 50,
                consumed_bytes: (msgs - 50) * 1024,
                errors: u64::from(i == 15) * 3,
                produce_p50_us: 900 + (rnd() * 200.0) as u64,
                produce_p99_us: 4_000 + (rnd() * 2000.0) as u64,
                produce_max_us: 20_000 + (rnd() * 20_000.0) as u64,
                e2e_p50_us: 1_800 + (rnd() * 300.0) as u64,
                e2e_p99_us: 8_000 + (rnd() * 3000.0) as u64,
                e2e_max_us: 40_000 + (rnd() * 30_000.0) as u64,
                in_warmup: i <= 3,
            }
        })
        .collect();
    let rows: Vec<SystemRow> = (1..=30)
        .map(|i| {
            let b1 = (60.0 + 30.0 * rnd()).round();
            let b2 = (50.0 + 30.0 * rnd()).round();
            let k = (40.0 + 20.0 * rnd()).round();
            SystemRow {
                t_s: i as f64,
                cpu_total_pct: ((b1 + b2 + k) / 2.0 + 5.0).min(100.0),
                cpu_per_core_pct: vec![(70.0 + 20.0 * rnd()).round(), 65.5],
                mem_used_bytes: (2_000 + i * 10) << 20,
                mem_total_bytes: 8 << 30,
                net_rx_bytes: 90 << 20,
                net_tx_bytes: 90 << 20,
                net_per_interface: [
                    (
                        "lo".to_string(),
                        NetCounts {
                            rx_bytes: 88 << 20,
                            tx_bytes: 88 << 20,
                        },
                    ),
                    (
                        "eth0".to_string(),
                        NetCounts {
                            rx_bytes: 2 << 20,
                            tx_bytes: 2 << 20,
                        },
                    ),
                ]
                .into(),
                disk_read_bytes: 1 << 20,
                disk_write_bytes: 80 << 20,
                processes: vec![
                    ProcessRow {
                        label: "broker-1".into(),
                        pid: 101,
                        cpu_pct: b1 / 2.0,
                        rss_bytes: (200 + i) << 20,
                        written_bytes: 40 << 20,
                    },
                    ProcessRow {
                        label: "broker-2".into(),
                        pid: 102,
                        cpu_pct: b2 / 2.0,
                        rss_bytes: (190 + i) << 20,
                        written_bytes: 38 << 20,
                    },
                    ProcessRow {
                        label: "kbench".into(),
                        pid: 100,
                        cpu_pct: k / 2.0,
                        rss_bytes: 120 << 20,
                        written_bytes: 1 << 20,
                    },
                ],
            }
        })
        .collect();
    let system = SystemData {
        summary: crate::sampler::summarize(&rows, std::time::Duration::from_secs(1)),
        rows,
    };
    let acked: u64 = intervals.iter().map(|r| r.acked_msgs).sum();
    let consumed: u64 = intervals.iter().map(|r| r.consumed_msgs).sum();
    let summary = Summary {
        schema_version: SCHEMA_VERSION,
        run: RunInfo {
            kbench_version: "0.1.0".into(),
            started_at: "2025-01-31T12:00:00Z".into(),
            wall_s: 33.0,
            host: "testbox".into(),
        },
        scenario: ScenarioInfo {
            name: "synthetic".into(),
            description: "made-up data for the report tests".into(),
            file: "scenarios/synthetic.toml".into(),
            matrix_cell: Default::default(),
        },
        config: serde_json::json!({"producers": {"count": 16, "acks": "all", "message_size": "1KiB"}}),
        target: TargetInfo {
            kind: TargetKind::Embedded,
            bootstrap: "127.0.0.1:40001".into(),
            brokers: 2,
        },
        produce: ProduceSummary {
            messages: acked + 3000,
            bytes: (acked + 3000) * 1024,
            acked,
            failed: 0,
            duration_s: 27.0,
            msgs_per_s: acked as f64 / 30.0,
            mib_per_s: acked as f64 * 1024.0 / 30.0 / MIB,
            target_msgs_per_s: None,
            rate_reached: None,
            latency_ms: Percentiles::from_histogram(&produce),
            latency_means: "send to acknowledgement".into(),
            setup_s: 1.5,
            ..Default::default()
        },
        consume: ConsumeSummary {
            groups: 1,
            messages: consumed,
            bytes: consumed * 1024,
            duration_s: 27.0,
            msgs_per_s: consumed as f64 / 30.0,
            mib_per_s: consumed as f64 * 1024.0 / 30.0 / MIB,
            e2e_latency_ms: Percentiles::from_histogram(&e2e),
        },
        delivery: DeliverySummary {
            expected: "at-least-once".into(),
            acked,
            consumed,
            per_group: vec![GroupDelivery {
                group: "g1".into(),
                consumed,
                ..Default::default()
            }],
            ..Default::default()
        },
        durability: Default::default(),
        offsets: OffsetsSummary {
            ok: true,
            partitions: vec![PartitionOffsets {
                topic: "t".into(),
                partition: 0,
                start: 0,
                end: acked as i64,
                acked,
                ok: true,
            }],
        },
        on_disk: OnDiskSummary {
            method: "walk".into(),
            bytes_before: 0,
            bytes_after: acked * 1100,
            growth_bytes: (acked * 1100) as i64,
            payload_bytes: acked * 1024,
            replication_factor: 1,
            overhead_ratio: 1100.0 / 1024.0,
            ok: Some(true),
            replicas: Vec::new(),
            detail: "growth within bounds".into(),
        },
        system: system.summary.clone(),
        errors: [("produce:MsgTimedOut".to_string(), 3)].into(),
        events: vec![
            Event {
                t_s: 3.0,
                kind: Event::WARMUP_END.into(),
                detail: String::new(),
            },
            Event {
                t_s: 15.0,
                kind: Event::FAULT.into(),
                detail: "kill broker-2".into(),
            },
        ],
        verdict: Verdict {
            passed: true,
            failures: Vec::new(),
        },
        warnings: Vec::new(),
        catch_up: None,
        max_rate: None,
        hosts: Vec::new(),
    };
    RunData {
        summary,
        intervals,
        system,
        produce_latency: produce,
        e2e_latency: e2e,
    }
}
