//! One run from a prepared output folder to its summary: target, topic, consumers, producers,
//! the produce loop, the drain, verification and the report, each step bounded in time.

use super::*;

pub(super) async fn run_prepared(
    s: &Scenario,
    file: &Path,
    matrix_values: &[(String, toml::Value)],
    out: &Path,
    args: &ClusterArgs<'_>,
    interrupt: &Stop,
) -> anyhow::Result<Summary> {
    let started_at = chrono::Utc::now();
    let t0 = Instant::now();
    let t_s = || t0.elapsed().as_secs_f64();
    let mut events = Vec::new();
    let mut failures: Vec<String> = Vec::new();

    // Target.
    let bootstrap = args
        .bootstrap
        .map(str::to_string)
        .or_else(|| s.cluster.bootstrap.clone());
    let settings = args.settings(s);
    let mut target = match &bootstrap {
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
    };
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
    let marks_before = topic::watermarks(&cluster, &topic, partitions, Duration::from_secs(10))?;
    // With a pipeline the groups read its output topic; without, the producers' topic.
    let output = match &s.pipeline {
        Some(pl) => {
            let name = pl
                .output_topic
                .clone()
                .unwrap_or_else(|| format!("{topic}-output"));
            let n = topic::ensure(s, &cluster, &name, SETUP_TIMEOUT).await?;
            phase(
                &mut events,
                t_s(),
                "topic_ready",
                &format!("{name}: {n} partitions (pipeline output)"),
            );
            Some((name, n))
        }
        None => None,
    };
    let consume_topic = output.as_ref().map_or(topic.clone(), |o| o.0.clone());
    let consume_partitions = output.as_ref().map_or(partitions, |o| o.1);
    let consume_marks_before = match &output {
        Some((name, n)) => topic::watermarks(&cluster, name, *n, Duration::from_secs(10))?,
        None => marks_before.clone(),
    };

    // Tasks.
    let scenario = Arc::new(s.clone());
    let warmup_end = Arc::new(WarmupEnd::default());
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
    let mut collector = Collector::new(producer_meters.clone(), group_meters.clone());
    let filler = Filler::new(
        s.producers.payload,
        s.producers.compress_ratio,
        s.producers.message_size.0 as usize,
        u64::from(run_tag),
    );
    // What the groups read is checked message by message: the producers' own messages, or
    // the pipeline's output, which must show the transform.
    let check = match &s.pipeline {
        Some(pl) => Check::transformed(run_tag, filler.clone(), pl.transform),
        None => Check::new(run_tag),
    };
    let mut member_tasks: Vec<consumer::MemberTask> = Vec::new();
    // Catch-up: the groups start only once the producers are done (the backlog is built).
    let catch_up = s.consumers.begin == scenario::Begin::AfterProduce;
    let mut tasks = Tasks {
        producers: Vec::new(),
        consumers: Vec::new(),
        stop_producers: Stop::default(),
        stop_consumers: Stop::default(),
        abandon: Stop::default(),
    };
    for (g, members) in group_meters.iter().enumerate() {
        for (m, meter) in members.iter().enumerate() {
            let task = consumer::MemberTask {
                group_index: g as u32,
                member: m as u32,
                group_id: group_ids[g].clone(),
                check: check.clone(),
                topic: consume_topic.clone(),
                cluster: cluster.clone(),
                scenario: scenario.clone(),
                meter: meter.clone(),
                warmup_end: warmup_end.clone(),
                stop: tasks.stop_consumers.clone(),
                abandon: tasks.abandon.clone(),
                kill: Stop::default(),
            };
            member_tasks.push(task.clone());
            if !catch_up {
                tasks
                    .consumers
                    .push(consumer::spawn(task).context("cannot start a consumer thread")?);
            }
        }
    }
    let groups = Groups {
        s,
        meters: &group_meters,
        ids: &group_ids,
        topic: &consume_topic,
        partitions: consume_partitions,
        shard,
    };
    if s.consumers.groups > 0 && !catch_up {
        groups.await_assignment(&mut target, interrupt).await?;
        if s.consumers.start == Start::Latest {
            // Let every member resolve "latest" before the first message is written.
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    if s.consumers.groups > 0 && !catch_up {
        phase(
            &mut events,
            t_s(),
            "consumers_assigned",
            &group_ids.join(","),
        );
    }
    let pipeline_meter = s
        .pipeline
        .as_ref()
        .map(|pl| Arc::new(PipelineMeter::new(pl.workers)));
    let pipeline_events = Arc::new(std::sync::Mutex::new(Vec::new()));
    let stop_pipeline = Stop::default();
    let mut supervisor = None;
    let pipeline_produce_start = Arc::new(std::sync::OnceLock::new());
    if let (Some((out_name, out_partitions)), Some(meter)) = (&output, &pipeline_meter) {
        let task = pipeline::PipelineTask {
            scenario: scenario.clone(),
            cluster: cluster.clone(),
            input: topic.clone(),
            output: out_name.clone(),
            output_partitions: *out_partitions,
            group_id: format!("kbench-{}-{run_id}-transform", s.name),
            run_tag,
            meter: meter.clone(),
            t0,
            produce_start: pipeline_produce_start.clone(),
            events: pipeline_events.clone(),
            stop: stop_pipeline.clone(),
        };
        supervisor = Some(pipeline::spawn(task).context("cannot start the pipeline")?);
        eprintln!(
            "kbench: pipeline of {} worker(s) {topic} → {out_name}",
            meter.workers.len()
        );
        // The workers' first init_transactions may create the transaction log (on a fresh
        // cluster, a topic of 50 replicated partitions): produce once they can transform, so
        // that `at` kills find them working. A worker that cannot start is reported by the
        // pipeline itself.
        let deadline = Instant::now() + s.consumers.assign_timeout.0;
        while meter.initialised() < meter.workers.len() && Instant::now() < deadline {
            if interrupt.is_raised() {
                bail!("interrupted while waiting for the pipeline workers to initialise");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let mut faults = (!s.faults.is_empty()).then(|| {
        let log = out.join("faults.log");
        let _ = fault::create_log(&log);
        fault::Supervisor::new(fault::Plan::new(&s.faults), &cluster, &topic, &log)
    });
    // Producers: clients created and transactions initialised behind the start gate, so the
    // measured window begins at the first send, not before the set-up.
    let gate = crate::workload::StartGate::default();
    let clients_t0 = t_s();
    for (i, meter) in producer_meters.iter().enumerate() {
        let task = producer::ProducerTask {
            index: shard.map_or(0, |r| r.first_producer) + i as u32,
            run_tag,
            topic: topic.clone(),
            partitions,
            cluster: cluster.clone(),
            scenario: scenario.clone(),
            filler: filler.clone(),
            meter: meter.clone(),
            warmup_end: warmup_end.clone(),
            gate: gate.clone(),
            stop: tasks.stop_producers.clone(),
        };
        tasks
            .producers
            .push(producer::spawn(task).context("cannot start a producer thread")?);
    }
    let deadline = Instant::now() + CLIENTS_TIMEOUT;
    // A producer whose client cannot be created ends at once; its error is reported below.
    while gate.ready_count() + tasks.producers.iter().filter(|h| h.is_finished()).count()
        < tasks.producers.len()
    {
        if interrupt.is_raised() {
            bail!("interrupted while the producers' clients were being created");
        }
        if Instant::now() >= deadline {
            bail!(
                "{} of {} producer clients were ready after {CLIENTS_TIMEOUT:?} (client creation and init_transactions); is the cluster answering?",
                gate.ready_count(),
                tasks.producers.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let clients_s = t_s() - clients_t0;
    let mut record = shard.map(|r| shard_record(r, &topic, &marks_before));
    // The on-disk check of a sharded run is made once, from shard 1's sizes (by the merge).
    let sizes_by_shard_1 = shard.is_some_and(|r| r.shard.index == 1 && r.whole.verify.on_disk);
    if let (true, Some(rec)) = (sizes_by_shard_1, record.as_mut()) {
        rec.log_dirs_before = Some(
            verify::log_dirs::snapshot(&cluster, &topic, partitions)
                .await
                .map(|m| m.into_iter().collect())
                .map_err(|e| format!("{e:#}")),
        );
    }
    if let (Some(r), Some(rec)) = (shard, record.as_mut()) {
        rec.write(out)?;
        let start_us = start_barrier(r, &cluster, &topic, interrupt).await?;
        rec.start_wall_us = start_us;
        rec.start_t_s = t_s();
        rec.write(out)?;
    }
    let produce_start_us = now_us();
    let produce_start = Instant::now();
    let _ = pipeline_produce_start.set(produce_start);
    let produce_t0 = t_s();
    warmup_end.set(produce_start_us + s.producers.warmup.0.as_micros() as u64);
    gate.open(produce_start_us);
    phase(
        &mut events,
        produce_t0,
        "producers_start",
        &format!(
            "{} producer(s), clients ready in {clients_s:.3} s",
            s.producers.count
        ),
    );
    if !s.producers.warmup.0.is_zero() {
        events.push(Event {
            t_s: produce_t0 + s.producers.warmup.0.as_secs_f64(),
            kind: Event::WARMUP_END.into(),
            detail: format!("warm-up of {:?} ends", s.producers.warmup.0),
        });
    }
    eprintln!(
        "kbench: producing to {topic} ({partitions} partitions) with {} producer(s)",
        s.producers.count
    );

    // Produce phase.
    let interval = s.sampling.interval.0;
    let progress = progress_bar(s);
    // A shard's rows start at the agreed start, so the shards' intervals line up.
    let mut next_row = if shard.is_some() {
        Instant::now() + interval
    } else {
        t0 + interval
    };
    let mut last_progress = (0u64, 0u64, Instant::now());
    let produce_limit = Instant::now() + s.producers.time_limit.0;
    let mut stopped_early = false;
    let mut time_limited = false;
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if Instant::now() >= next_row {
            let in_warmup = now_us() < warmup_end.get();
            collector.collect(t_s(), interval.as_secs_f64(), in_warmup);
            next_row += interval;
            if let Some(sup) = faults.as_mut() {
                sup.snapshot(t_s(), producer_errors(&producer_meters));
            }
        }
        if let Some(sup) = faults.as_mut() {
            let acked = collector.progress().1;
            let mut members = RunMembers {
                templates: &mut member_tasks,
                handles: &mut tasks.consumers,
                per_group: s.consumers.members,
            };
            let mut hands = fault::Hands {
                target: &mut target,
                members: &mut members,
            };
            events.extend(sup.poll(produce_start.elapsed(), acked, t_s(), &mut hands));
            watch_new_processes(&sampler, &target, &mut watched);
        }
        let phase = if now_us() < warmup_end.get() {
            Phase::WarmUp
        } else {
            Phase::Producing
        };
        update_progress(&progress, &collector, s, phase, t_s() - produce_t0);
        if tasks.producers.iter().all(JoinHandle::is_finished) {
            break;
        }
        if interrupt.is_raised() {
            failures.push("interrupted (Ctrl-C) while producing".into());
            events.push(Event {
                t_s: t_s(),
                kind: "interrupted".into(),
                detail: "Ctrl-C".into(),
            });
            stopped_early = true;
        } else if let Some(dead) = target.dead_broker() {
            failures.push(dead.clone());
            tasks.abandon.raise();
            events.push(Event {
                t_s: t_s(),
                kind: "broker_exit".into(),
                detail: dead.lines().next().unwrap_or("").into(),
            });
            stopped_early = true;
        } else if Instant::now() >= produce_limit {
            time_limited = true;
            stopped_early = true;
        } else if let Some(refused) = storage_refusals(&producer_meters) {
            // A full or failing log dir does not heal itself within a run: stop now with the
            // cause named rather than send the rest of the messages into the same error.
            failures.push(format!(
                "storage: the cluster refused {refused} message(s) with KAFKA_STORAGE_ERROR \
                 (a broker's log directory is full or failing; its log names it); \
                 producing stopped"
            ));
            events.push(Event {
                t_s: t_s(),
                kind: "storage_error".into(),
                detail: format!("{refused} message(s) refused with KAFKA_STORAGE_ERROR"),
            });
            stopped_early = true;
        } else {
            let (sent, acked, _) = collector.progress();
            let failed: u64 = producer_meters
                .iter()
                .map(|m| m.with_state(|st| st.failed))
                .sum();
            if acked + failed != last_progress.1 {
                last_progress = (sent, acked + failed, Instant::now());
            } else if sent > acked + failed && last_progress.2.elapsed() >= STALL_TIMEOUT {
                failures.push(format!(
                    "no message acknowledged or failed for {:?} with {} outstanding: the cluster stopped answering",
                    STALL_TIMEOUT,
                    sent - acked - failed
                ));
                tasks.abandon.raise();
                stopped_early = true;
            }
        }
        if stopped_early {
            // Consumers keep going: they get a short drain below, so the verdict reflects
            // what was written rather than what happened to be read when the run stopped.
            tasks.stop_producers.raise();
            break;
        }
    }
    join_bounded(
        &mut tasks.producers,
        Duration::from_secs(10),
        "producer",
        &mut failures,
    );
    if let Some(r) = shard {
        // Drain only once every shard has stopped producing: the end offsets are final then.
        let (c, control, sh) = (
            cluster.clone(),
            crate::shard::control_topic(&topic),
            r.shard.clone(),
        );
        let done =
            tokio::task::spawn_blocking(move || crate::shard::barrier(&c, &control, &sh, "done"))
                .await
                .map_err(|e| anyhow::anyhow!("shard barrier task failed: {e}"))
                .and_then(|r| r);
        if let Err(e) = done {
            failures.push(format!("{e:#}"));
        }
    }
    let producers_done = t_s();
    phase(&mut events, producers_done, "producers_done", "");
    // Producers stop on their own at the time limit: a run that ended with messages never
    // sent, and nothing else stopped it, was stopped by the time limit. That is said first.
    let sent_total: u64 = producer_meters.iter().map(|m| m.sent_totals().0).sum();
    let never_sent = match s.producers.stop() {
        StopAt::Messages(n) => Some((n * u64::from(s.producers.count)).saturating_sub(sent_total)),
        StopAt::Duration(_) => None,
    };
    let planned = match s.producers.stop() {
        StopAt::Duration(d) => Some(d + s.producers.warmup.0),
        StopAt::Messages(_) => None,
    };
    time_limited |= !stopped_early
        && (never_sent.is_some_and(|n| n > 0)
            || planned.is_some_and(|d| {
                d > s.producers.time_limit.0 && produce_start.elapsed() >= s.producers.time_limit.0
            }));
    if time_limited {
        let what = match never_sent {
            Some(n) => format!("{n} of {} messages were never sent", n + sent_total),
            None => format!(
                "producing stopped after {:.1} s of the {:.1} s planned",
                s.producers.time_limit.0.as_secs_f64(),
                planned.unwrap_or_default().as_secs_f64()
            ),
        };
        failures.insert(
            0,
            format!(
                "time limit: the run was stopped by producers.time_limit = {:?}; {what}",
                s.producers.time_limit.0
            ),
        );
        events.push(Event {
            t_s: producers_done,
            kind: "time_limit".into(),
            detail: what,
        });
    }
    // Restarts (and resumes, commands) of faults that fired are still carried out, so the
    // drain reads from a whole cluster; faults not yet due never fire.
    if let Some(sup) = faults.as_mut() {
        let deadline = Instant::now() + FAULT_SETTLE_TIMEOUT;
        while sup.follow_ups_pending() && Instant::now() < deadline {
            let mut members = RunMembers {
                templates: &mut member_tasks,
                handles: &mut tasks.consumers,
                per_group: s.consumers.members,
            };
            let mut hands = fault::Hands {
                target: &mut target,
                members: &mut members,
            };
            events.extend(sup.poll_follow_ups(t_s(), &mut hands));
            watch_new_processes(&sampler, &target, &mut watched);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    // Catch-up: the backlog is built; drop the page cache and start the groups now.
    let mut catch_up_times = crate::catch_up::Times::default();
    let mut page_cache = String::new();
    if catch_up {
        catch_up_times.last_ack_us = producer_meters
            .iter()
            .map(|m| m.with_state(|st| st.last_ack_us))
            .max()
            .unwrap_or(0);
        page_cache = crate::catch_up::drop_page_cache(
            s.consumers.drop_page_cache,
            target.info().kind == crate::summary::TargetKind::Embedded,
        );
        eprintln!("kbench: backlog built; page cache {page_cache}; starting the consumer groups");
        catch_up_times.started_us = now_us();
        phase(&mut events, t_s(), "consumers_start", &page_cache);
        for task in &member_tasks {
            tasks
                .consumers
                .push(consumer::spawn(task.clone()).context("cannot start a consumer thread")?);
        }
        match groups.await_assignment(&mut target, interrupt).await {
            Ok(()) => {
                catch_up_times.assigned_us = now_us();
                phase(
                    &mut events,
                    t_s(),
                    "consumers_assigned",
                    &group_ids.join(","),
                );
            }
            Err(e) => failures.push(format!("catch-up: {e:#}")),
        }
    }

    // Drain phase.
    let down = target.down_on_purpose();
    let marks_after = match target.dead_broker() {
        Some(_) => Err("not read: a broker of the cluster exited".to_string()),
        None if !down.is_empty() => Err(format!(
            "not read: broker(s) {down:?} taken down by a fault and not restarted (give the fault restart_after)"
        )),
        None => {
            let (c, t) = (cluster.clone(), topic.clone());
            let bound = s.consumers.drain_timeout.0;
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
    };
    let interrupted_before_drain = interrupt.is_raised();
    // Pipeline: first the transform group must have read and committed the whole input; only
    // then are the output's end offsets final.
    let mut consume_marks_after = marks_after.clone();
    if let (Some((out_name, out_partitions)), Some(meter)) = (&output, &pipeline_meter) {
        let mut input_acks = AckLedger::default();
        for m in &producer_meters {
            m.with_state(|st| input_acks.merge(&st.ledger));
        }
        let bound = if stopped_early {
            s.consumers.drain_timeout.0.min(Duration::from_secs(5))
        } else {
            s.consumers.drain_timeout.0
        };
        let deadline = Instant::now() + bound;
        while let Err(behind) = meter.drained(&input_acks) {
            if Instant::now() >= deadline
                || (interrupt.is_raised() && !interrupted_before_drain)
                || target.dead_broker().is_some()
            {
                failures.push(format!(
                    "pipeline: the transform group did not finish the input within {bound:?} (consumers.drain_timeout): {behind}"
                ));
                break;
            }
            if Instant::now() >= next_row {
                collector.collect(t_s(), interval.as_secs_f64(), false);
                next_row += interval;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        phase(&mut events, t_s(), "pipeline_drained", "");
        consume_marks_after = match target.dead_broker() {
            Some(_) => Err("not read: a broker of the cluster exited".to_string()),
            None => topic::watermarks(&cluster, out_name, *out_partitions, Duration::from_secs(10))
                .map_err(|e| e.to_string()),
        };
    }
    if s.consumers.groups > 0 {
        match &consume_marks_after {
            Ok(after) => {
                let bound = if stopped_early {
                    s.consumers.drain_timeout.0.min(Duration::from_secs(5))
                } else {
                    s.consumers.drain_timeout.0
                };
                let deadline = Instant::now() + bound;
                loop {
                    // A shard drains the partitions its own members hold.
                    let after = &match shard {
                        Some(_) => held_only(&group_meters, after),
                        None => after.clone(),
                    };
                    let behind = lagging(&group_meters, &group_ids, &consume_marks_before, after);
                    if behind.is_none() {
                        break;
                    }
                    let interrupted = interrupt.is_raised() && !interrupted_before_drain;
                    if Instant::now() >= deadline || interrupted || target.dead_broker().is_some() {
                        let why = if interrupted {
                            "interrupted (Ctrl-C) while draining".to_string()
                        } else if let Some(dead) = target.dead_broker() {
                            dead
                        } else {
                            format!("consumers did not reach the end offsets within {bound:?} (consumers.drain_timeout, or 5 s after a run stopped early)")
                        };
                        failures.push(format!("{why}: {}", behind.unwrap_or_default()));
                        break;
                    }
                    if Instant::now() >= next_row {
                        collector.collect(t_s(), interval.as_secs_f64(), false);
                        next_row += interval;
                    }
                    update_progress(
                        &progress,
                        &collector,
                        s,
                        Phase::Draining,
                        t_s() - produce_t0,
                    );
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            Err(e) => failures.push(format!("cannot read end offsets to drain: {e}")),
        }
    }
    if target.dead_broker().is_some() || !target.down_on_purpose().is_empty() {
        // Closing clients would wait for brokers that are gone.
        tasks.abandon.raise();
    }
    tasks.stop_consumers.raise();
    stop_pipeline.raise();
    let mut fault_summaries = Vec::new();
    if let Some(sup) = faults.take() {
        let window_start = produce_t0 + s.producers.warmup.0.as_secs_f64();
        let held_up = fault::Span::from_held_up(
            producer_meters
                .iter()
                .flat_map(|m| m.with_state(|st| st.held_up.clone())),
            produce_start_us,
            produce_t0,
        );
        let (summaries, f, e) = sup.finish(
            &mut target,
            &collector.rows,
            &held_up,
            window_start,
            producers_done,
            t_s(),
        );
        fault_summaries = summaries;
        failures.extend(f);
        events.extend(e);
        events.sort_by(|a, b| a.t_s.total_cmp(&b.t_s));
    }
    let pipeline_outcome = supervisor.map(|h| {
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
                failures: vec!["pipeline: workers did not stop within 60 s (left behind)".into()],
                ..Default::default()
            }
        }
    });
    join_bounded(
        &mut tasks.consumers,
        Duration::from_secs(15),
        "consumer",
        &mut failures,
    );
    let last = collector.rows.last().map_or(0.0, |r| r.t_s);
    let tail_s = t_s() - last;
    if tail_s > 0.01 {
        collector.collect(t_s(), tail_s, false);
    }
    update_progress(
        &progress,
        &collector,
        s,
        Phase::Verifying,
        t_s() - produce_t0,
    );
    phase(&mut events, t_s(), "consumers_done", "");
    let system = sampler.stop();

    // Verification.
    let mut produced = ProduceTotals::new(partitions.max(0) as usize);
    for m in &producer_meters {
        produced.merge(m);
    }
    let ProduceTotals {
        sent,
        acked: (acked, acked_bytes),
        measured,
        failed,
        mut errors,
        acks,
        per_partition,
        per_partition_bytes,
        per_partition_other,
        txns,
        latency: produce_hist,
        failed_latency: failed_hist,
        last_ack_us,
    } = produced;
    let mut produce = ProduceSummary {
        messages: sent.0,
        bytes: sent.1,
        acked,
        failed,
        ..Default::default()
    };
    produce.duration_s = last_ack_us.saturating_sub(warmup_end.get()) as f64 / 1e6;
    if produce.duration_s > 0.0 {
        produce.msgs_per_s = measured.0 as f64 / produce.duration_s;
        produce.mib_per_s = measured.1 as f64 / MIB / produce.duration_s;
    }
    produce.latency_ms = Percentiles::from_histogram(&produce_hist);
    produce.latency_means = if s.producers.acks.as_config() == "0" {
        "time to send (acks=0: no acknowledgement)"
    } else {
        "send to acknowledgement"
    }
    .into();
    produce.failed_latency_ms = Percentiles::from_histogram(&failed_hist);
    if produce.acked + produce.failed > 0 {
        produce.error_ratio = produce.failed as f64 / (produce.acked + produce.failed) as f64;
    }
    produce.setup_s = produce_t0;
    produce.clients_s = clients_s;
    produce.never_sent = never_sent;
    produce.time_limited = time_limited;
    produce.target_msgs_per_s = s
        .producers
        .rate_each()
        .map(|r| r * f64::from(s.producers.count));
    produce.rate_reached = produce
        .target_msgs_per_s
        .map(|t| produce.msgs_per_s >= 0.95 * t);
    if s.verify.require_rate && produce.rate_reached == Some(false) {
        failures.push(format!(
            "rate: reached {:.0} msg/s of the {:.0} msg/s target (below 95 %)",
            produce.msgs_per_s,
            produce.target_msgs_per_s.unwrap_or_default()
        ));
    }
    if produce.failed > 0 && s.verify.delivery != scenario::Delivery::None {
        failures.push(format!(
            "produce: {} of {} messages failed delivery (produce errors: {})",
            produce.failed,
            produce.messages,
            produce_error_list(&errors)
        ));
    }

    let mut e2e_hist = latency_histogram();
    let mut consume = ConsumeSummary {
        groups: s.consumers.groups,
        ..Default::default()
    };
    let mut cross_hist = latency_histogram();
    let mut group_ledgers = Vec::new();
    let (mut first_recv_us, mut last_recv_us) = (0, 0);
    let mut consumed_measured = (0u64, 0u64);
    for (g, members) in group_meters.iter().enumerate() {
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
        group_ledgers.push((group_ids[g].clone(), group.ledger));
    }
    // A catch-up's consumers read only from their start: their window begins there.
    let consume_from = warmup_end.get().max(catch_up_times.started_us);
    consume.duration_s = last_recv_us.saturating_sub(consume_from) as f64 / 1e6;
    if consume.duration_s > 0.0 {
        consume.msgs_per_s = consumed_measured.0 as f64 / consume.duration_s;
        consume.mib_per_s = consumed_measured.1 as f64 / MIB / consume.duration_s;
    }
    consume.e2e_latency_ms = Percentiles::from_histogram(&e2e_hist);
    if catch_up {
        catch_up_times.last_recv_us = last_recv_us;
        catch_up_times.first_recv_us = first_recv_us;
    }

    let (mut delivery, delivery_failures) = verify::delivery::check(
        s.verify.delivery,
        s.verify.order,
        s.consumers.isolation,
        &acks,
        &group_ledgers,
    );
    let catch_up = catch_up.then(|| {
        crate::catch_up::summarize(
            (produce.acked, acked_bytes),
            (consume.messages, consume.bytes),
            catch_up_times,
            std::mem::take(&mut page_cache),
            !delivery.per_group.is_empty() && delivery.per_group.iter().all(|g| g.lost == 0),
        )
    });
    failures.extend(delivery_failures);
    if shard.is_some() {
        // One shard's acks against its own members' receipts mean nothing: the merge judges.
        delivery.expected = "judged by kbench merge (sharded run)".into();
        (delivery.lost, delivery.unexpected) = (0, 0);
        delivery.per_group.clear();
    }
    delivery.faults = fault_summaries;
    if s.producers.transactional {
        delivery.transactions = Some(transactions_summary(&txns, 0));
    }
    if let (Some(outcome), Some(meter), Some((out_name, _))) =
        (pipeline_outcome, &pipeline_meter, &output)
    {
        let (t, input_committed, worker_errors) = pipeline::totals(meter);
        for (k, v) in worker_errors {
            *errors.entry(k).or_insert(0) += v;
        }
        let left_open = outcome
            .kills
            .iter()
            .filter(|k| k.open_transaction_records > 0)
            .count() as u64;
        delivery.pipeline = Some(crate::summary::PipelineSummary {
            input_topic: topic.clone(),
            output_topic: out_name.clone(),
            workers: meter.workers.len() as u32,
            input_committed,
            transactions: transactions_summary(&t, left_open),
            kills: outcome.kills,
        });
        failures.extend(outcome.failures);
        events.extend(std::mem::take(
            &mut *pipeline_events
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        ));
        events.sort_by(|a, b| a.t_s.total_cmp(&b.t_s));
    }

    if s.verify.final_read {
        let (fr, fr_failures) = final_read(
            s,
            &mut target,
            &cluster,
            &topic,
            partitions,
            run_tag,
            &acks,
            &per_partition,
        )
        .await;
        delivery.lost += fr.lost;
        delivery.corrupted += fr.corrupted;
        failures.extend(fr_failures);
        delivery.final_read = Some(fr);
    }

    let mut offsets = Default::default();
    if s.verify.offsets {
        match &marks_after {
            Ok(after) => {
                let (o, f) = verify::offsets::check(
                    &topic,
                    &marks_before,
                    after,
                    &per_partition,
                    &per_partition_other,
                );
                offsets = o;
                failures.extend(f);
            }
            Err(e) => failures.push(format!("offsets: {e}")),
        }
    }

    let rf = u32::try_from(s.topic.replication_factor).unwrap_or(1);
    let on_disk = if s.verify.on_disk {
        let run = OnDiskRun {
            topic: &topic,
            rf,
            acked_bytes,
            compressed: s.producers.compression != Compression::None,
            marks_before: &marks_before,
            marks_after: marks_after.as_ref().ok(),
            per_partition: &per_partition,
            per_partition_other: &per_partition_other,
            per_partition_bytes: &per_partition_bytes,
            no_loss: matches!(
                s.verify.delivery,
                scenario::Delivery::ExactlyOnce | scenario::Delivery::AtLeastOnce
            ),
            offsets: s.verify.offsets,
        };
        let (o, f) = on_disk_check(&run, &target, &cluster, disk_before, reported_before).await;
        failures.extend(f);
        o
    } else {
        crate::summary::OnDiskSummary {
            method: "skipped".into(),
            payload_bytes: acked_bytes,
            replication_factor: rf,
            detail: "verify.on_disk = false".into(),
            ..Default::default()
        }
    };
    progress.finish_and_clear();
    // Stop the brokers now (before the report is drawn) so their shutdown is part of the run.
    drop(tasks);
    let target_info = target.info();
    drop(target);
    let durability = crate::summary::DurabilitySummary::from_run(
        s.producers.acks.as_config(),
        u32::try_from(s.topic.replication_factor).unwrap_or(0),
        s.topic.min_insync(),
        target_info.brokers,
        &delivery,
        &errors,
    );

    let warnings = crate::summary::window_warnings(
        &produce,
        s.sampling.interval.0.as_secs_f64(),
        s.producers
            .batch_size
            .map_or(LIBRDKAFKA_BATCH_SIZE, |b| b.0),
        s.producers.count,
    );
    let summary = Summary {
        schema_version: SCHEMA_VERSION,
        run: run_info(started_at, t_s()),
        scenario: scenario_info(s, file, matrix_values),
        config: s.resolved(),
        target: target_info,
        produce,
        consume,
        durability,
        delivery,
        offsets,
        on_disk,
        system: system.summary.clone(),
        errors,
        events,
        verdict: Verdict {
            passed: failures.is_empty(),
            failures,
        },
        warnings,
        catch_up,
        max_rate: None,
        hosts: Vec::new(),
    };
    let data = RunData {
        summary: summary.clone(),
        intervals: collector.rows.clone(),
        system,
        produce_latency: produce_hist,
        e2e_latency: e2e_hist,
    };
    crate::report::write_run(out, &data)
        .with_context(|| format!("writing the report into {}", out.display()))?;
    if let Some(mut rec) = record {
        crate::shard::write_ledgers(out, &acks, &group_ledgers)?;
        let path = out.join(crate::shard::E2E_CROSS_HDR);
        std::fs::write(&path, crate::report::hgrm::encode_hdr(&cross_hist)?)
            .with_context(|| format!("writing {}", path.display()))?;
        rec.e2e_local = data.e2e_latency.len();
        rec.per_partition_bytes = per_partition_bytes;
        if sizes_by_shard_1 {
            rec.log_dirs_after = Some(
                verify::log_dirs::snapshot(&cluster, &topic, partitions)
                    .await
                    .map(|m| m.into_iter().collect())
                    .map_err(|e| format!("{e:#}")),
            );
            let (c, t) = (cluster.clone(), topic.clone());
            if let Ok(Ok(roles)) =
                tokio::task::spawn_blocking(move || verify::log_dirs::partition_roles(&c, &t)).await
            {
                rec.roles = roles
                    .into_iter()
                    .map(|(p, r)| (p, r.leader, r.replicas, r.isr))
                    .collect();
            }
        }
        rec.e2e_cross = cross_hist.len();
        rec.marks_after = marks_after.clone().unwrap_or_default();
        rec.per_partition = per_partition;
        rec.per_partition_other = per_partition_other;
        rec.groups = group_ledgers
            .iter()
            .map(|(id, g)| (id.clone(), crate::shard::counters(g)))
            .collect();
        rec.finished = true;
        rec.write(out)?;
    }
    Ok(summary)
}

/// Has the sampler watch every process the target runs that it does not watch yet: a broker
/// restarted by a fault is a new process (a new pid under the same label), and without this
/// its CPU and memory would read 0 from the restart on.
pub(super) fn watch_new_processes(
    sampler: &Sampler,
    target: &Target,
    watched: &mut Vec<(String, u32)>,
) {
    for p in target.processes() {
        if !watched.contains(&p) {
            sampler.watch(p.0.clone(), p.1);
            watched.push(p);
        }
    }
}
