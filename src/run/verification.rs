//! The verification of a drained run: the tasks' counts merged (by the count types' `merge`)
//! into the produce and consume summaries, the delivery ledger judged
//! ([`verify::delivery`]), the transactions and a pipeline summed up, then the checks made
//! against the cluster itself ([`checks`](super::checks)): the final read, the offsets and
//! the bytes on disk. Every broken expectation becomes a failure of the run; nothing here
//! stops it.

use hdrhistogram::Histogram;

use super::drain::Drained;
use super::prepared::Run;
use super::produce::Produced;
use super::*;

/// What the verification hands the report.
pub(super) struct Verified {
    /// The producers' figures.
    pub(super) produce: ProduceSummary,
    /// The groups' figures.
    pub(super) consume: ConsumeSummary,
    /// The delivery verdict's figures.
    pub(super) delivery: crate::summary::DeliverySummary,
    /// The offsets check.
    pub(super) offsets: crate::summary::OffsetsSummary,
    /// The on-disk check.
    pub(super) on_disk: crate::summary::OnDiskSummary,
    /// Errors by kind (`produce:…`, `consume:…`, the pipeline workers').
    pub(super) errors: BTreeMap<String, u64>,
    /// A catch-up's figures.
    pub(super) catch_up: Option<crate::summary::CatchUpSummary>,
    /// Every acknowledged message.
    pub(super) acks: AckLedger,
    /// Every group's receipts, by group id.
    pub(super) group_ledgers: Vec<(String, crate::ledger::GroupLedger)>,
    /// Produce latency (µs).
    pub(super) produce_hist: Histogram<u64>,
    /// End-to-end latency (µs).
    pub(super) e2e_hist: Histogram<u64>,
    /// End-to-end latency (µs) of messages another shard produced.
    pub(super) cross_hist: Histogram<u64>,
    /// Messages acknowledged, by partition.
    pub(super) per_partition: Vec<u64>,
    /// Payload bytes acknowledged, by partition.
    pub(super) per_partition_bytes: Vec<u64>,
    /// Other records (transaction markers, failed sends' possible writes) by partition.
    pub(super) per_partition_other: Vec<u64>,
    /// The producers' topic's watermarks after the run, or why they were not read.
    pub(super) marks_after: Result<BTreeMap<i32, (i64, i64)>, String>,
    /// The system sampler's measurements.
    pub(super) system: crate::summary::SystemData,
}

/// The groups' counts, merged.
struct Consumed {
    summary: ConsumeSummary,
    e2e_hist: Histogram<u64>,
    cross_hist: Histogram<u64>,
    ledgers: Vec<(String, crate::ledger::GroupLedger)>,
}

impl Run<'_> {
    /// Verifies the drained run (see the module doc).
    pub(super) async fn verify(&mut self, p: &Produced, mut d: Drained) -> Verified {
        let mut produced = ProduceTotals::new(self.partitions.max(0) as usize);
        for m in &self.producer_meters {
            produced.merge(m);
        }
        let produce = self.produce_summary(p, &produced);
        let ProduceTotals {
            acked: (_, acked_bytes),
            mut errors,
            acks,
            per_partition,
            per_partition_bytes,
            per_partition_other,
            txns,
            latency: produce_hist,
            ..
        } = produced;
        let consumed = self.consumed(&mut errors, &mut d.catch_up_times);
        let consume = consumed.summary;
        let (mut delivery, delivery_failures) = verify::delivery::check(
            self.s.verify.delivery,
            self.s.verify.order,
            self.s.consumers.isolation,
            &acks,
            &consumed.ledgers,
        );
        let catch_up = self.catch_up().then(|| {
            crate::catch_up::summarize(
                (produce.acked, acked_bytes),
                (consume.messages, consume.bytes),
                d.catch_up_times,
                std::mem::take(&mut d.page_cache),
                !delivery.per_group.is_empty() && delivery.per_group.iter().all(|g| g.lost == 0),
            )
        });
        self.failures.extend(delivery_failures);
        if self.shard.is_some() {
            // One shard's acks against its own members' receipts mean nothing: the merge judges.
            delivery.expected = "judged by kbench merge (sharded run)".into();
            (delivery.lost, delivery.unexpected) = (0, 0);
            delivery.per_group.clear();
        }
        delivery.faults = std::mem::take(&mut d.fault_summaries);
        if self.s.producers.transactional {
            delivery.transactions = Some(transactions_summary(&txns, 0));
        }
        if let Some(outcome) = d.pipeline_outcome.take() {
            self.sum_up_pipeline(outcome, &mut delivery, &mut errors);
        }
        let run = Totals {
            acked_bytes,
            acks: &acks,
            per_partition: &per_partition,
            per_partition_bytes: &per_partition_bytes,
            per_partition_other: &per_partition_other,
            marks_after: &d.marks_after,
        };
        let (offsets, on_disk) = self.check_cluster(&run, &mut delivery).await;
        Verified {
            produce,
            consume,
            delivery,
            offsets,
            on_disk,
            errors,
            catch_up,
            acks,
            group_ledgers: consumed.ledgers,
            produce_hist,
            e2e_hist: consumed.e2e_hist,
            cross_hist: consumed.cross_hist,
            per_partition,
            per_partition_bytes,
            per_partition_other,
            marks_after: d.marks_after,
            system: d.system,
        }
    }

    /// The producers' figures from their merged counts; a rate below the target (when
    /// required) and failed deliveries are failures.
    fn produce_summary(&mut self, p: &Produced, t: &ProduceTotals) -> ProduceSummary {
        let s = self.s;
        let mut produce = ProduceSummary {
            messages: t.sent.0,
            bytes: t.sent.1,
            acked: t.acked.0,
            failed: t.failed,
            ..Default::default()
        };
        produce.duration_s = t.last_ack_us.saturating_sub(self.warmup_end.get()) as f64 / 1e6;
        if produce.duration_s > 0.0 {
            produce.msgs_per_s = t.measured.0 as f64 / produce.duration_s;
            produce.mib_per_s = t.measured.1 as f64 / MIB / produce.duration_s;
        }
        produce.latency_ms = Percentiles::from_histogram(&t.latency);
        produce.latency_means = if s.producers.acks.as_config() == "0" {
            "time to send (acks=0: no acknowledgement)"
        } else {
            "send to acknowledgement"
        }
        .into();
        produce.failed_latency_ms = Percentiles::from_histogram(&t.failed_latency);
        produce.setup_s = p.t0_s;
        produce.clients_s = p.clients_s;
        produce.never_sent = p.never_sent;
        produce.time_limited = p.time_limited;
        let target = s
            .producers
            .rate_each()
            .map(|r| r * f64::from(s.producers.count));
        if let Some(failure) = produce.judge_rate(target, s.verify.require_rate) {
            self.failures.push(failure);
        }
        if produce.failed > 0 && s.verify.delivery != scenario::Delivery::None {
            self.failures.push(format!(
                "produce: {} of {} messages failed delivery (produce errors: {})",
                produce.failed,
                produce.messages,
                produce_error_list(&t.errors)
            ));
        }
        produce
    }

    /// The groups' counts merged, group by group: the consume figures, the latency
    /// histograms, each group's ledger; their errors are added to `errors`, and a catch-up's
    /// receive times to `times`.
    fn consumed(
        &self,
        errors: &mut BTreeMap<String, u64>,
        times: &mut crate::catch_up::Times,
    ) -> Consumed {
        let mut e2e_hist = latency_histogram();
        let mut consume = ConsumeSummary {
            groups: self.s.consumers.groups,
            ..Default::default()
        };
        let mut cross_hist = latency_histogram();
        let mut ledgers = Vec::new();
        let (mut first_recv_us, mut last_recv_us) = (0, 0);
        let mut consumed_measured = (0u64, 0u64);
        for (g, members) in self.group_meters.iter().enumerate() {
            let mut group = GroupTotals::default();
            for m in members {
                group.merge(m);
            }
            let _ = e2e_hist.add(&group.latency);
            let _ = cross_hist.add(&group.cross_latency);
            consume.messages += group.consumed.0;
            consume.bytes += group.consumed.1;
            consumed_measured.0 += group.measured.0;
            consumed_measured.1 += group.measured.1;
            first_recv_us = crate::measure::earliest_us(first_recv_us, group.first_recv_us);
            last_recv_us = last_recv_us.max(group.last_recv_us);
            for (k, v) in group.errors {
                *errors.entry(k).or_insert(0) += v;
            }
            if group.ledger.foreign > 0 {
                *errors.entry("consume:ForeignMessage".into()).or_insert(0) += group.ledger.foreign;
            }
            ledgers.push((self.group_ids[g].clone(), group.ledger));
        }
        // A catch-up's consumers read only from their start: their window begins there.
        let consume_from = self.warmup_end.get().max(times.started_us);
        consume.duration_s = last_recv_us.saturating_sub(consume_from) as f64 / 1e6;
        if consume.duration_s > 0.0 {
            consume.msgs_per_s = consumed_measured.0 as f64 / consume.duration_s;
            consume.mib_per_s = consumed_measured.1 as f64 / MIB / consume.duration_s;
        }
        consume.e2e_latency_ms = Percentiles::from_histogram(&e2e_hist);
        if self.catch_up() {
            times.last_recv_us = last_recv_us;
            times.first_recv_us = first_recv_us;
        }
        Consumed {
            summary: consume,
            e2e_hist,
            cross_hist,
            ledgers,
        }
    }

    /// A pipeline's figures into the delivery summary, its workers' errors into `errors`,
    /// its failures and events into the run's.
    fn sum_up_pipeline(
        &mut self,
        outcome: pipeline::PipelineOutcome,
        delivery: &mut crate::summary::DeliverySummary,
        errors: &mut BTreeMap<String, u64>,
    ) {
        let Some(pl) = &self.pipeline else {
            return;
        };
        let (t, input_committed, worker_errors) = pipeline::totals(&pl.meter);
        for (k, v) in worker_errors {
            *errors.entry(k).or_insert(0) += v;
        }
        let left_open = outcome
            .kills
            .iter()
            .filter(|k| k.open_transaction_records > 0)
            .count() as u64;
        delivery.pipeline = Some(crate::summary::PipelineSummary {
            input_topic: self.topic.clone(),
            output_topic: pl.output.clone(),
            workers: pl.meter.workers.len() as u32,
            input_committed,
            transactions: transactions_summary(&t, left_open),
            kills: outcome.kills,
        });
        self.failures.extend(outcome.failures);
        self.events.extend(std::mem::take(
            &mut *pl
                .events
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        ));
        self.events.sort_by(|a, b| a.t_s.total_cmp(&b.t_s));
    }

    /// The checks made against the cluster, each when the scenario asks for it: the final
    /// read (its losses and corruptions join `delivery`'s), the offsets, the bytes on disk.
    async fn check_cluster(
        &mut self,
        run: &Totals<'_>,
        delivery: &mut crate::summary::DeliverySummary,
    ) -> (
        crate::summary::OffsetsSummary,
        crate::summary::OnDiskSummary,
    ) {
        let s = self.s;
        if s.verify.final_read {
            let (fr, fr_failures) = final_read(
                s,
                &mut self.target,
                &self.cluster,
                &self.topic,
                self.partitions,
                self.run_tag,
                run.acks,
                run.per_partition,
            )
            .await;
            delivery.lost += fr.lost;
            delivery.corrupted += fr.corrupted;
            self.failures.extend(fr_failures);
            delivery.final_read = Some(fr);
        }

        let mut offsets = Default::default();
        if s.verify.offsets {
            match run.marks_after {
                Ok(after) => {
                    let (o, f) = verify::offsets::check(
                        &self.topic,
                        &self.before.marks,
                        after,
                        run.per_partition,
                        run.per_partition_other,
                    );
                    offsets = o;
                    self.failures.extend(f);
                }
                Err(e) => self.failures.push(format!("offsets: {e}")),
            }
        }

        let rf = u32::try_from(s.topic.replication_factor).unwrap_or(1);
        let on_disk = if s.verify.on_disk {
            let check = OnDiskRun {
                topic: &self.topic,
                rf,
                acked_bytes: run.acked_bytes,
                compressed: s.producers.compression != Compression::None,
                marks_before: &self.before.marks,
                marks_after: run.marks_after.as_ref().ok(),
                per_partition: run.per_partition,
                per_partition_other: run.per_partition_other,
                per_partition_bytes: run.per_partition_bytes,
                no_loss: matches!(
                    s.verify.delivery,
                    scenario::Delivery::ExactlyOnce | scenario::Delivery::AtLeastOnce
                ),
                offsets: s.verify.offsets,
            };
            let (o, f) = on_disk_check(
                &check,
                &self.target,
                &self.cluster,
                self.before.disk,
                self.before.reported.take(),
            )
            .await;
            self.failures.extend(f);
            o
        } else {
            crate::summary::OnDiskSummary {
                method: "skipped".into(),
                payload_bytes: run.acked_bytes,
                replication_factor: rf,
                detail: "verify.on_disk = false".into(),
                ..Default::default()
            }
        };
        (offsets, on_disk)
    }
}

/// What the checks against the cluster compare it with.
struct Totals<'a> {
    /// Payload bytes acknowledged.
    acked_bytes: u64,
    /// Every acknowledged message.
    acks: &'a AckLedger,
    /// Messages acknowledged, by partition.
    per_partition: &'a [u64],
    /// Payload bytes acknowledged, by partition.
    per_partition_bytes: &'a [u64],
    /// Other records, by partition.
    per_partition_other: &'a [u64],
    /// The watermarks after the run, or why they were not read.
    marks_after: &'a Result<BTreeMap<i32, (i64, i64)>, String>,
}
