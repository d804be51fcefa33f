//! The end of a run: the brokers stopped before the report is drawn (their shutdown is part of
//! the run), the summary put together with its durability line, warnings and verdict, the
//! report written ([`crate::report::write_run`]: summary.json, CSVs, .hgrm, charts,
//! report.html) and, in a sharded run, what the merge needs beside it (ledgers, the
//! cross-shard latency, the shard's record finished).

use super::prepared::Run;
use super::produce::Produced;
use super::verification::Verified;
use super::*;

impl Run<'_> {
    /// Stops the cluster, writes the report and returns the summary.
    pub(super) async fn report(
        self,
        p: Produced,
        v: Verified,
        file: &Path,
        matrix_values: &[(String, toml::Value)],
    ) -> anyhow::Result<Summary> {
        let s = self.s;
        p.progress.finish_and_clear();
        // Stop the brokers now (before the report is drawn) so their shutdown is part of the run.
        drop(self.tasks);
        let target_info = self.target.info();
        drop(self.target);
        let durability = crate::summary::DurabilitySummary::from_run(
            s.producers.acks.as_config(),
            u32::try_from(s.topic.replication_factor).unwrap_or(0),
            s.topic.min_insync(),
            target_info.brokers,
            &v.delivery,
            &v.errors,
        );

        let warnings = crate::summary::window_warnings(
            &v.produce,
            s.sampling.interval.0.as_secs_f64(),
            s.producers
                .batch_size
                .map_or(LIBRDKAFKA_BATCH_SIZE, |b| b.0),
            s.producers.count,
        );
        let summary = Summary {
            schema_version: SCHEMA_VERSION,
            run: run_info(self.started_at, self.t0.elapsed().as_secs_f64()),
            scenario: scenario_info(s, file, matrix_values),
            config: s.resolved(),
            target: target_info,
            produce: v.produce,
            consume: v.consume,
            durability,
            delivery: v.delivery,
            offsets: v.offsets,
            on_disk: v.on_disk,
            system: v.system.summary.clone(),
            errors: v.errors,
            events: self.events,
            verdict: Verdict {
                passed: self.failures.is_empty(),
                failures: self.failures,
            },
            warnings,
            catch_up: v.catch_up,
            max_rate: None,
            hosts: Vec::new(),
        };
        let data = RunData {
            summary: summary.clone(),
            intervals: self.collector.rows.clone(),
            system: v.system,
            produce_latency: v.produce_hist,
            e2e_latency: v.e2e_hist,
        };
        crate::report::write_run(self.out, &data)
            .with_context(|| format!("writing the report into {}", self.out.display()))?;
        let Some(mut rec) = self.record else {
            return Ok(summary);
        };
        let out = self.out;
        crate::shard::write_ledgers(out, &v.acks, &v.group_ledgers)?;
        let path = out.join(crate::shard::E2E_CROSS_HDR);
        std::fs::write(&path, crate::report::hgrm::encode_hdr(&v.cross_hist)?)
            .with_context(|| format!("writing {}", path.display()))?;
        rec.e2e_local = data.e2e_latency.len();
        rec.per_partition_bytes = v.per_partition_bytes;
        if self.sizes_by_shard_1 {
            rec.log_dirs_after =
                Some(replica_sizes(&self.cluster, &self.topic, self.partitions).await);
            let (c, t) = (self.cluster.clone(), self.topic.clone());
            if let Ok(Ok(roles)) =
                tokio::task::spawn_blocking(move || verify::log_dirs::partition_roles(&c, &t)).await
            {
                rec.roles = roles
                    .into_iter()
                    .map(|(p, r)| (p, r.leader, r.replicas, r.isr))
                    .collect();
            }
        }
        rec.e2e_cross = v.cross_hist.len();
        rec.marks_after = v.marks_after.clone().unwrap_or_default();
        rec.per_partition = v.per_partition;
        rec.per_partition_other = v.per_partition_other;
        rec.groups = v
            .group_ledgers
            .iter()
            .map(|(id, g)| (id.clone(), crate::shard::counters(g)))
            .collect();
        rec.finished = true;
        rec.write(out)?;
        Ok(summary)
    }
}
