//! The set-up of a run, before anything is measured: the target up (embedded brokers started,
//! or an external cluster reached), the topic (and a pipeline's output topic) ready, the
//! consumers subscribed and assigned, a pipeline's workers initialised, the producers' clients
//! created behind the start gate and, in a sharded run, the start barrier passed. The measured
//! window begins only when the gate opens ([`produce`](super::produce)); the clients' set-up
//! time is reported apart. An error here means the run could not start
//! ([`run_one`](super::run_one) then writes a summary saying why).

use super::prepared::{Before, PipelineRun, Run};
use super::*;

/// What the set-up hands the produce phase: the producers' clients waiting at the gate.
pub(super) struct Ready {
    /// The gate the producers wait behind; opening it starts the measured run.
    pub(super) gate: crate::workload::StartGate,
    /// Seconds the producers' clients took to be created and their transactions initialised.
    pub(super) clients_s: f64,
}

impl<'a> Run<'a> {
    /// Sets the run up, from the target to the producers at the gate. An error means the run
    /// could not start; it names the step.
    pub(super) async fn set_up(
        s: &'a Scenario,
        out: &'a Path,
        args: &ClusterArgs<'a>,
        interrupt: &'a Stop,
    ) -> anyhow::Result<(Run<'a>, Ready)> {
        let started_at = chrono::Utc::now();
        let t0 = Instant::now();
        let t_s = || t0.elapsed().as_secs_f64();
        let mut events = Vec::new();

        // Target.
        let settings = args.settings(s);
        let target = start_target(s, out, args, &settings)?;
        let bootstrap = target.bootstrap();
        let cluster = ClusterAccess::new(&bootstrap, settings);
        phase(&mut events, t_s(), "cluster_ready", &bootstrap);
        let mut watched = vec![("kbench".to_string(), std::process::id())];
        watched.extend(target.processes());
        let sampler = Sampler::start_at(t0, s.sampling.interval.0, watched.clone());

        // Topic.
        let shard = args.shard;
        let run_tag: u32 = shard.map_or_else(
            || rand::random::<u32>() | 1,
            |r| crate::shard::run_tag(&r.shard.run_id),
        );
        let run_id = format!("{run_tag:08x}");
        let topic = s
            .topic
            .name
            .clone()
            .unwrap_or_else(|| format!("kbench-{}-{run_id}", s.name));
        let partitions = match shard {
            // Shard 1 creates the topic; the others wait for it (bounded).
            Some(r) if r.shard.index != 1 => {
                topic::wait_ready(&cluster, &topic, r.shard.barrier_timeout, false).await?
            }
            _ => topic::ensure(s, &cluster, &topic, SETUP_TIMEOUT).await?,
        };
        if partitions != s.topic.partitions {
            eprintln!("kbench: topic {topic} already exists with {partitions} partitions (scenario says {}); using it as is", s.topic.partitions);
        }
        phase(
            &mut events,
            t_s(),
            "topic_ready",
            &format!("{topic}: {partitions} partitions"),
        );
        let disk_before = target.log_dirs().as_deref().map(verify::on_disk::dir_bytes);
        // Without log dirs to walk (an external cluster), the brokers report replica sizes.
        let reported_before = match (&disk_before, s.verify.on_disk) {
            (None, true) => Some(verify::log_dirs::snapshot(&cluster, &topic, partitions).await),
            _ => None,
        };
        let marks_before =
            topic::watermarks(&cluster, &topic, partitions, Duration::from_secs(10))?;
        // With a pipeline the groups read its output topic; without, the producers' topic.
        let pipeline = pipeline_output(s, &cluster, &topic, &mut events, t0).await?;
        let consume_topic = pipeline
            .as_ref()
            .map_or(topic.clone(), |p| p.output.clone());
        let consume_partitions = pipeline
            .as_ref()
            .map_or(partitions, |p| p.output_partitions);
        let consume_marks_before = match &pipeline {
            Some(p) => topic::watermarks(
                &cluster,
                &p.output,
                p.output_partitions,
                Duration::from_secs(10),
            )?,
            None => marks_before.clone(),
        };

        // The tasks' meters.
        let producer_meters: Vec<Arc<ProducerMeter>> =
            (0..s.producers.count).map(|_| Arc::default()).collect();
        let group_meters: Vec<Vec<Arc<ConsumerMeter>>> = (0..s.consumers.groups)
            .map(|_| (0..s.consumers.members).map(|_| Arc::default()).collect())
            .collect();
        if let Some(r) = shard {
            let local = r.first_producer..r.first_producer + s.producers.count;
            for m in group_meters.iter().flatten() {
                m.with_state(|st| st.local_producers = Some(local.clone()));
            }
        }
        let group_ids: Vec<String> = (0..s.consumers.groups)
            .map(|g| format!("kbench-{}-{run_id}-g{g}", s.name))
            .collect();
        let mut run = Run {
            s,
            out,
            interrupt,
            shard,
            started_at,
            t0,
            faults: None,
            pipeline,
            tasks: Tasks {
                producers: Vec::new(),
                consumers: Vec::new(),
                stop_producers: Stop::default(),
                stop_consumers: Stop::default(),
                abandon: Stop::default(),
            },
            member_tasks: Vec::new(),
            collector: Collector::new(producer_meters.clone(), group_meters.clone()),
            producer_meters,
            group_meters,
            group_ids,
            warmup_end: Arc::new(WarmupEnd::default()),
            record: None,
            sizes_by_shard_1: false,
            sampler: Some(sampler),
            watched,
            run_tag,
            topic,
            partitions,
            consume_topic,
            consume_partitions,
            before: Before {
                marks: marks_before,
                consume_marks: consume_marks_before,
                disk: disk_before,
                reported: reported_before,
            },
            cluster,
            target,
            events,
            failures: Vec::new(),
        };

        let scenario = Arc::new(s.clone());
        let filler = Filler::new(
            s.producers.payload,
            s.producers.compress_ratio,
            s.producers.message_size.0 as usize,
            u64::from(run_tag),
        );
        run.start_consumers(&scenario, &filler).await?;
        run.start_pipeline(&scenario, &run_id).await?;
        run.faults = (!s.faults.is_empty()).then(|| {
            let log = out.join("faults.log");
            let _ = fault::create_log(&log);
            fault::Supervisor::new(fault::Plan::new(&s.faults), &run.cluster, &run.topic, &log)
        });
        let ready = run.start_producers(&scenario, &filler).await?;
        run.pass_start_barrier().await?;
        Ok((run, ready))
    }

    /// The consumer members' tasks made and, unless the groups start after the producers (a
    /// catch-up), their threads started and every group settled.
    async fn start_consumers(
        &mut self,
        scenario: &Arc<Scenario>,
        filler: &Filler,
    ) -> anyhow::Result<()> {
        let s = self.s;
        // What the groups read is checked message by message: the producers' own messages, or
        // the pipeline's output, which must show the transform.
        let check = match &s.pipeline {
            Some(pl) => Check::transformed(self.run_tag, filler.clone(), pl.transform),
            None => Check::new(self.run_tag),
        };
        let catch_up = self.catch_up();
        for (g, members) in self.group_meters.iter().enumerate() {
            for (m, meter) in members.iter().enumerate() {
                let task = consumer::MemberTask {
                    group_index: g as u32,
                    member: m as u32,
                    group_id: self.group_ids[g].clone(),
                    check: check.clone(),
                    topic: self.consume_topic.clone(),
                    cluster: self.cluster.clone(),
                    scenario: scenario.clone(),
                    meter: meter.clone(),
                    warmup_end: self.warmup_end.clone(),
                    stop: self.tasks.stop_consumers.clone(),
                    abandon: self.tasks.abandon.clone(),
                    kill: Stop::default(),
                };
                self.member_tasks.push(task.clone());
                if !catch_up {
                    self.tasks
                        .consumers
                        .push(consumer::spawn(task).context("cannot start a consumer thread")?);
                }
            }
        }
        if s.consumers.groups > 0 && !catch_up {
            self.await_assignment().await?;
            if s.consumers.start == Start::Latest {
                // Let every member resolve "latest" before the first message is written.
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            let ids = self.group_ids.join(",");
            self.mark("consumers_assigned", &ids);
        }
        Ok(())
    }

    /// The pipeline's supervisor started, when the scenario has a pipeline, and its workers
    /// given until `consumers.assign_timeout` to initialise.
    async fn start_pipeline(
        &mut self,
        scenario: &Arc<Scenario>,
        run_id: &str,
    ) -> anyhow::Result<()> {
        let s = self.s;
        let Some(p) = self.pipeline.as_mut() else {
            return Ok(());
        };
        let task = pipeline::PipelineTask {
            scenario: scenario.clone(),
            cluster: self.cluster.clone(),
            input: self.topic.clone(),
            output: p.output.clone(),
            output_partitions: p.output_partitions,
            group_id: format!("kbench-{}-{run_id}-transform", s.name),
            run_tag: self.run_tag,
            meter: p.meter.clone(),
            t0: self.t0,
            produce_start: p.produce_start.clone(),
            events: p.events.clone(),
            stop: p.stop.clone(),
        };
        p.supervisor = Some(pipeline::spawn(task).context("cannot start the pipeline")?);
        let meter = p.meter.clone();
        eprintln!(
            "kbench: pipeline of {} worker(s) {} → {}",
            meter.workers.len(),
            self.topic,
            p.output
        );
        // The workers' first init_transactions may create the transaction log (on a fresh
        // cluster, a topic of 50 replicated partitions): produce once they can transform, so
        // that `at` kills find them working. A worker that cannot start is reported by the
        // pipeline itself.
        let deadline = Instant::now() + s.consumers.assign_timeout.0;
        while meter.initialised() < meter.workers.len() && Instant::now() < deadline {
            if self.interrupt.is_raised() {
                bail!("interrupted while waiting for the pipeline workers to initialise");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// The producer threads started and their clients created (transactions initialised)
    /// behind the start gate, so the measured window begins at the first send, not before the
    /// set-up. Bounded by [`CLIENTS_TIMEOUT`].
    async fn start_producers(
        &mut self,
        scenario: &Arc<Scenario>,
        filler: &Filler,
    ) -> anyhow::Result<Ready> {
        let gate = crate::workload::StartGate::default();
        let clients_t0 = self.t_s();
        for (i, meter) in self.producer_meters.iter().enumerate() {
            let task = producer::ProducerTask {
                index: self.shard.map_or(0, |r| r.first_producer) + i as u32,
                run_tag: self.run_tag,
                topic: self.topic.clone(),
                partitions: self.partitions,
                cluster: self.cluster.clone(),
                scenario: scenario.clone(),
                filler: filler.clone(),
                meter: meter.clone(),
                warmup_end: self.warmup_end.clone(),
                gate: gate.clone(),
                stop: self.tasks.stop_producers.clone(),
            };
            self.tasks
                .producers
                .push(producer::spawn(task).context("cannot start a producer thread")?);
        }
        let producers = &self.tasks.producers;
        let deadline = Instant::now() + CLIENTS_TIMEOUT;
        // A producer whose client cannot be created ends at once; its error is reported later.
        while gate.ready_count() + producers.iter().filter(|h| h.is_finished()).count()
            < producers.len()
        {
            if self.interrupt.is_raised() {
                bail!("interrupted while the producers' clients were being created");
            }
            if Instant::now() >= deadline {
                bail!(
                    "{} of {} producer clients were ready after {CLIENTS_TIMEOUT:?} (client creation and init_transactions); is the cluster answering?",
                    gate.ready_count(),
                    producers.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let clients_s = self.t_s() - clients_t0;
        Ok(Ready { gate, clients_s })
    }

    /// In a sharded run: the shard's record written (with shard 1's replica sizes before),
    /// then the start barrier passed, and the record written again with the agreed start.
    async fn pass_start_barrier(&mut self) -> anyhow::Result<()> {
        let Some(r) = self.shard else {
            return Ok(());
        };
        let mut rec = shard_record(r, &self.topic, &self.before.marks);
        // The on-disk check of a sharded run is made once, from shard 1's sizes (by the merge).
        self.sizes_by_shard_1 = r.shard.index == 1 && r.whole.verify.on_disk;
        if self.sizes_by_shard_1 {
            rec.log_dirs_before =
                Some(replica_sizes(&self.cluster, &self.topic, self.partitions).await);
        }
        rec.write(self.out)?;
        let start_us = start_barrier(r, &self.cluster, &self.topic, self.interrupt).await?;
        rec.start_wall_us = start_us;
        rec.start_t_s = self.t_s();
        rec.write(self.out)?;
        self.record = Some(rec);
        Ok(())
    }
}

/// The cluster under test: an external one reached (`--bootstrap` or `cluster.bootstrap`),
/// or the embedded brokers started in `out/brokers`.
fn start_target(
    s: &Scenario,
    out: &Path,
    args: &ClusterArgs<'_>,
    settings: &BTreeMap<String, String>,
) -> anyhow::Result<Target> {
    let bootstrap = args
        .bootstrap
        .map(str::to_string)
        .or_else(|| s.cluster.bootstrap.clone());
    Ok(match &bootstrap {
        Some(b) => {
            eprintln!("kbench: connecting to {b}");
            Target::external(&ClusterAccess::new(b, settings.clone()), EXTERNAL_TIMEOUT)
                .with_context(|| format!("--bootstrap {b}: cannot reach the cluster"))?
        }
        None => {
            eprintln!(
                "kbench: starting {} embedded broker(s) in {}",
                s.cluster.brokers,
                out.join("brokers").display()
            );
            Target::Embedded(
                EmbeddedCluster::start(s, out, SETUP_TIMEOUT)
                    .context("cannot start the embedded cluster")?,
            )
        }
    })
}

/// The pipeline's output topic made, when the scenario has a pipeline, and the pipeline's
/// state (not started yet: the groups are assigned first).
async fn pipeline_output(
    s: &Scenario,
    cluster: &ClusterAccess,
    topic: &str,
    events: &mut Vec<Event>,
    t0: Instant,
) -> anyhow::Result<Option<PipelineRun>> {
    let Some(pl) = &s.pipeline else {
        return Ok(None);
    };
    let name = pl
        .output_topic
        .clone()
        .unwrap_or_else(|| format!("{topic}-output"));
    let n = topic::ensure(s, cluster, &name, SETUP_TIMEOUT).await?;
    phase(
        events,
        t0.elapsed().as_secs_f64(),
        "topic_ready",
        &format!("{name}: {n} partitions (pipeline output)"),
    );
    Ok(Some(PipelineRun {
        output: name,
        output_partitions: n,
        meter: Arc::new(PipelineMeter::new(pl.workers)),
        events: Arc::new(std::sync::Mutex::new(Vec::new())),
        supervisor: None,
        produce_start: Arc::new(std::sync::OnceLock::new()),
        stop: Stop::default(),
    }))
}
