//! The drain: the restarts (and resumes, commands) of faults that fired are carried out, so
//! the drain reads from a whole cluster (faults not yet due never fire); a catch-up's groups
//! start on the built backlog; the end offsets are read once they have settled; a pipeline's
//! transform group finishes its input; the groups read to the end offsets (bounded by
//! `consumers.drain_timeout`, or 5 s after a run stopped early); then every task is stopped
//! and joined, the faults are summed up and the sampler stops.

use super::prepared::Run;
use super::produce::Produced;
use super::*;

/// What the drain hands the verification.
pub(super) struct Drained {
    /// The producers' topic's watermarks after the run, or why they were not read.
    pub(super) marks_after: Result<BTreeMap<i32, (i64, i64)>, String>,
    /// A catch-up's times so far (the receive times are added by the verification).
    pub(super) catch_up_times: crate::catch_up::Times,
    /// A catch-up's page cache drop, as the summary says it.
    pub(super) page_cache: String,
    /// What each fault did.
    pub(super) fault_summaries: Vec<crate::summary::FaultSummary>,
    /// The pipeline's outcome, when there is one.
    pub(super) pipeline_outcome: Option<pipeline::PipelineOutcome>,
    /// The system sampler's measurements.
    pub(super) system: crate::summary::SystemData,
}

impl Run<'_> {
    /// Drains the run (see the module doc) and stops its tasks.
    pub(super) async fn drain(&mut self, p: &mut Produced) -> anyhow::Result<Drained> {
        self.settle_faults().await;
        let mut catch_up_times = crate::catch_up::Times::default();
        let mut page_cache = String::new();
        if self.catch_up() {
            (catch_up_times, page_cache) = self.start_catch_up().await?;
        }
        let marks_after = self.settled_marks().await;
        let interrupted_before_drain = self.interrupt.is_raised();
        let bound = if p.stopped_early {
            self.s.consumers.drain_timeout.0.min(Duration::from_secs(5))
        } else {
            self.s.consumers.drain_timeout.0
        };
        // Pipeline: first the transform group must have read and committed the whole input;
        // only then are the output's end offsets final.
        let output = self.pipeline.as_ref().map(|pl| {
            let out = (pl.output.clone(), pl.output_partitions);
            (pl.meter.clone(), out)
        });
        let consume_marks_after = match output {
            Some((meter, out)) => {
                self.drain_pipeline(p, &meter, &out, bound, interrupted_before_drain)
                    .await
            }
            None => marks_after.clone(),
        };
        if self.s.consumers.groups > 0 {
            match &consume_marks_after {
                Ok(after) => {
                    self.drain_groups(p, after, bound, interrupted_before_drain)
                        .await;
                }
                Err(e) => self
                    .failures
                    .push(format!("cannot read end offsets to drain: {e}")),
            }
        }
        let (fault_summaries, pipeline_outcome) = self.stop_tasks(p);
        let last = self.collector.rows.last().map_or(0.0, |r| r.t_s);
        let tail_s = self.t_s() - last;
        if tail_s > 0.01 {
            let t_s = self.t_s();
            self.collector.collect(t_s, tail_s, false);
        }
        update_progress(
            &p.progress,
            &self.collector,
            self.s,
            Phase::Verifying,
            self.t_s() - p.t0_s,
        );
        self.mark("consumers_done", "");
        let system = self.sampler.take().map(Sampler::stop).unwrap_or_default();
        Ok(Drained {
            marks_after,
            catch_up_times,
            page_cache,
            fault_summaries,
            pipeline_outcome,
            system,
        })
    }

    /// Carries out the follow-ups of faults that fired, bounded by [`FAULT_SETTLE_TIMEOUT`].
    async fn settle_faults(&mut self) {
        let deadline = Instant::now() + FAULT_SETTLE_TIMEOUT;
        while self
            .faults
            .as_ref()
            .is_some_and(fault::Supervisor::follow_ups_pending)
            && Instant::now() < deadline
        {
            self.poll_faults(None);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Catch-up: the backlog is built; drops the page cache and starts the groups now. A group
    /// not assigned in time is a failure, not an error: the run goes on to its report.
    async fn start_catch_up(&mut self) -> anyhow::Result<(crate::catch_up::Times, String)> {
        let mut times = crate::catch_up::Times {
            last_ack_us: self
                .producer_meters
                .iter()
                .map(|m| m.with_state(|st| st.last_ack_us))
                .max()
                .unwrap_or(0),
            ..Default::default()
        };
        let page_cache = crate::catch_up::drop_page_cache(
            self.s.consumers.drop_page_cache,
            self.target.info().kind == crate::summary::TargetKind::Embedded,
        );
        eprintln!("kbench: backlog built; page cache {page_cache}; starting the consumer groups");
        times.started_us = now_us();
        self.mark("consumers_start", &page_cache);
        for task in &self.member_tasks {
            self.tasks
                .consumers
                .push(consumer::spawn(task.clone()).context("cannot start a consumer thread")?);
        }
        match self.await_assignment().await {
            Ok(()) => {
                times.assigned_us = now_us();
                let ids = self.group_ids.join(",");
                self.mark("consumers_assigned", &ids);
            }
            Err(e) => self.failures.push(format!("catch-up: {e:#}")),
        }
        Ok((times, page_cache))
    }

    /// The producers' topic's end offsets once they have settled, or why they were not read
    /// (a broker exited, or was taken down by a fault and not restarted).
    async fn settled_marks(&mut self) -> Result<BTreeMap<i32, (i64, i64)>, String> {
        let down = self.target.down_on_purpose();
        match self.target.dead_broker() {
            Some(_) => Err("not read: a broker of the cluster exited".to_string()),
            None if !down.is_empty() => Err(format!(
                "not read: broker(s) {down:?} taken down by a fault and not restarted (give the fault restart_after)"
            )),
            None => {
                let (c, t, partitions) = (self.cluster.clone(), self.topic.clone(), self.partitions);
                let bound = self.s.consumers.drain_timeout.0;
                tokio::task::spawn_blocking(move || {
                    topic::settled_watermarks(
                        &c,
                        &t,
                        partitions,
                        Duration::from_secs(10),
                        Duration::from_millis(250),
                        bound,
                    )
                })
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| e.to_string()))
            }
        }
    }

    /// Waits (within `bound`) until the pipeline's transform group has read and committed the
    /// whole input; returns the output topic's end offsets then, or why they were not read.
    async fn drain_pipeline(
        &mut self,
        p: &mut Produced,
        meter: &PipelineMeter,
        (out_name, out_partitions): &(String, i32),
        bound: Duration,
        interrupted_before_drain: bool,
    ) -> Result<BTreeMap<i32, (i64, i64)>, String> {
        let mut input_acks = AckLedger::default();
        for m in &self.producer_meters {
            m.with_state(|st| input_acks.merge(st.ledger()));
        }
        let deadline = Instant::now() + bound;
        while let Err(behind) = meter.drained(&input_acks) {
            if Instant::now() >= deadline
                || (self.interrupt.is_raised() && !interrupted_before_drain)
                || self.target.dead_broker().is_some()
            {
                self.failures.push(format!(
                    "pipeline: the transform group did not finish the input within {bound:?} (consumers.drain_timeout): {behind}"
                ));
                break;
            }
            self.collect_due_row(p);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.mark("pipeline_drained", "");
        match self.target.dead_broker() {
            Some(_) => Err("not read: a broker of the cluster exited".to_string()),
            None => topic::watermarks(
                &self.cluster,
                out_name,
                *out_partitions,
                Duration::from_secs(10),
            )
            .map_err(|e| e.to_string()),
        }
    }

    /// Waits (within `bound`) until every group has read to the end offsets `after`; a group
    /// short of them then is a failure naming where it stopped.
    async fn drain_groups(
        &mut self,
        p: &mut Produced,
        after: &BTreeMap<i32, (i64, i64)>,
        bound: Duration,
        interrupted_before_drain: bool,
    ) {
        let deadline = Instant::now() + bound;
        loop {
            // A shard drains the partitions its own members hold.
            let after = &match self.shard {
                Some(_) => held_only(&self.group_meters, after),
                None => after.clone(),
            };
            let behind = lagging(
                &self.group_meters,
                &self.group_ids,
                &self.before.consume_marks,
                after,
            );
            if behind.is_none() {
                break;
            }
            let interrupted = self.interrupt.is_raised() && !interrupted_before_drain;
            if Instant::now() >= deadline || interrupted || self.target.dead_broker().is_some() {
                let why = if interrupted {
                    "interrupted (Ctrl-C) while draining".to_string()
                } else if let Some(dead) = self.target.dead_broker() {
                    dead
                } else {
                    format!("consumers did not reach the end offsets within {bound:?} (consumers.drain_timeout, or 5 s after a run stopped early)")
                };
                self.failures
                    .push(format!("{why}: {}", behind.unwrap_or_default()));
                break;
            }
            self.collect_due_row(p);
            update_progress(
                &p.progress,
                &self.collector,
                self.s,
                Phase::Draining,
                self.t_s() - p.t0_s,
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Collects an interval row when one is due (a drain's rows are never warm-up rows).
    fn collect_due_row(&mut self, p: &mut Produced) {
        if p.rows.due() {
            let t_s = self.t_s();
            self.collector
                .collect(t_s, p.rows.interval.as_secs_f64(), false);
        }
    }

    /// Stops the consumers and the pipeline, sums up the faults (they may restart brokers
    /// still down) and joins the consumers and the pipeline, each bounded.
    fn stop_tasks(
        &mut self,
        p: &Produced,
    ) -> (
        Vec<crate::summary::FaultSummary>,
        Option<pipeline::PipelineOutcome>,
    ) {
        if self.target.dead_broker().is_some() || !self.target.down_on_purpose().is_empty() {
            // Closing clients would wait for brokers that are gone.
            self.tasks.abandon.raise();
        }
        self.tasks.stop_consumers.raise();
        if let Some(pl) = &self.pipeline {
            pl.stop.raise();
        }
        let mut fault_summaries = Vec::new();
        if let Some(sup) = self.faults.take() {
            let window_start = p.t0_s + self.s.producers.warmup.0.as_secs_f64();
            let held_up = fault::Span::from_held_up(
                self.producer_meters
                    .iter()
                    .flat_map(|m| m.with_state(|st| st.held_up.clone())),
                p.start_us,
                p.t0_s,
            );
            let t_s = self.t_s();
            let (summaries, f, e) = sup.finish(
                &mut self.target,
                &self.collector.rows,
                &held_up,
                window_start,
                p.done_s,
                t_s,
            );
            fault_summaries = summaries;
            self.failures.extend(f);
            self.events.extend(e);
            self.events.sort_by(|a, b| a.t_s.total_cmp(&b.t_s));
        }
        let pipeline_outcome = self
            .pipeline
            .as_mut()
            .and_then(|pl| pl.supervisor.take())
            .map(|h| {
                let deadline = Instant::now() + Duration::from_secs(60);
                while !h.is_finished() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(10));
                }
                if h.is_finished() {
                    h.join().unwrap_or_else(|_| pipeline::PipelineOutcome {
                        failures: vec!["pipeline: the supervisor panicked".into()],
                        ..Default::default()
                    })
                } else {
                    pipeline::PipelineOutcome {
                        failures: vec![
                            "pipeline: workers did not stop within 60 s (left behind)".into()
                        ],
                        ..Default::default()
                    }
                }
            });
        join_bounded(
            &mut self.tasks.consumers,
            Duration::from_secs(15),
            "consumer",
            &mut self.failures,
        );
        (fault_summaries, pipeline_outcome)
    }
}
