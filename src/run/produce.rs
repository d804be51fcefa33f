//! The produce phase: the start gate opened (the measured window begins at the first send),
//! then every 50 ms an interval row when one is due, the progress line, faults fired on
//! schedule, and the checks that stop a run early (Ctrl-C, a broker process exiting, the time
//! limit, a message refused with a storage error: a full disk, no acknowledgement for
//! [`STALL_TIMEOUT`]), until every producer is done. Stopping early raises the producers' stop
//! flag only: the consumers get a short drain, so the verdict reflects what was written. Then
//! the producers are joined, a shard waits for the others to be done, and a run that ended
//! with messages never sent is said to have been stopped by the time limit.

use super::prepared::Run;
use super::setup::Ready;
use super::*;

/// What the produce phase hands the drain and the verification.
pub(super) struct Produced {
    /// The progress line (hidden when stderr is not a terminal).
    pub(super) progress: ProgressBar,
    /// When the next interval row is due.
    pub(super) rows: Rows,
    /// Run clock (s) when the producers started: the set-up's length.
    pub(super) t0_s: f64,
    /// When the producers started, µs since the epoch.
    pub(super) start_us: u64,
    /// Seconds the producers' clients took to be created (from the set-up).
    pub(super) clients_s: f64,
    /// Whether something stopped the producers before they were done (see the module doc).
    pub(super) stopped_early: bool,
    /// Whether the producers were stopped by `producers.time_limit`.
    pub(super) time_limited: bool,
    /// Run clock (s) when every producer was done.
    pub(super) done_s: f64,
    /// With a message count to send: how many were never sent.
    pub(super) never_sent: Option<u64>,
}

/// The clock of the interval rows.
pub(super) struct Rows {
    /// The sampling interval.
    pub(super) interval: Duration,
    /// When the next row is due.
    next: Instant,
}

impl Rows {
    /// Whether a row is due now; if so, the next is due one interval later.
    pub(super) fn due(&mut self) -> bool {
        if Instant::now() < self.next {
            return false;
        }
        self.next += self.interval;
        true
    }
}

/// How the produce loop tells the cluster has stopped answering.
struct Stall {
    /// Messages acknowledged or failed, when that count last changed.
    answered: u64,
    /// When it changed.
    since: Instant,
}

impl Run<'_> {
    /// Opens the gate and produces until the producers are done or the run is stopped early.
    pub(super) async fn produce(&mut self, ready: Ready) -> anyhow::Result<Produced> {
        let s = self.s;
        let start_us = now_us();
        let start = Instant::now();
        if let Some(p) = &self.pipeline {
            let _ = p.produce_start.set(start);
        }
        let t0_s = self.t_s();
        self.warmup_end
            .set(start_us + s.producers.warmup.0.as_micros() as u64);
        ready.gate.open(start_us);
        phase(
            &mut self.events,
            t0_s,
            "producers_start",
            &format!(
                "{} producer(s), clients ready in {:.3} s",
                s.producers.count, ready.clients_s
            ),
        );
        if !s.producers.warmup.0.is_zero() {
            self.events.push(Event {
                t_s: t0_s + s.producers.warmup.0.as_secs_f64(),
                kind: Event::WARMUP_END.into(),
                detail: format!("warm-up of {:?} ends", s.producers.warmup.0),
            });
        }
        eprintln!(
            "kbench: producing to {} ({} partitions) with {} producer(s)",
            self.topic, self.partitions, s.producers.count
        );

        let interval = s.sampling.interval.0;
        let progress = progress_bar(s);
        let mut rows = Rows {
            interval,
            // A shard's rows start at the agreed start, so the shards' intervals line up.
            next: if self.shard.is_some() {
                Instant::now() + interval
            } else {
                self.t0 + interval
            },
        };
        let mut stall = Stall {
            answered: 0,
            since: Instant::now(),
        };
        let limit = Instant::now() + s.producers.time_limit.0;
        let mut stopped_early = false;
        let mut time_limited = false;
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if rows.due() {
                let in_warmup = now_us() < self.warmup_end.get();
                let t_s = self.t_s();
                self.collector
                    .collect(t_s, interval.as_secs_f64(), in_warmup);
                if let Some(sup) = self.faults.as_mut() {
                    let t_s = self.t0.elapsed().as_secs_f64();
                    sup.snapshot(t_s, producer_errors(&self.producer_meters));
                }
            }
            if self.faults.is_some() {
                let acked = self.collector.progress().1;
                self.poll_faults(Some((start.elapsed(), acked)));
            }
            let phase = if now_us() < self.warmup_end.get() {
                Phase::WarmUp
            } else {
                Phase::Producing
            };
            update_progress(&progress, &self.collector, s, phase, self.t_s() - t0_s);
            if self.tasks.producers.iter().all(JoinHandle::is_finished) {
                break;
            }
            if self.stops_early(&mut stall, limit, &mut time_limited) {
                stopped_early = true;
                // Consumers keep going: they get a short drain, so the verdict reflects what
                // was written rather than what happened to be read when the run stopped.
                self.tasks.stop_producers.raise();
                break;
            }
        }
        join_bounded(
            &mut self.tasks.producers,
            Duration::from_secs(10),
            "producer",
            &mut self.failures,
        );
        self.await_shards_done().await;
        let done_s = self.t_s();
        phase(&mut self.events, done_s, "producers_done", "");
        let never_sent = self.judge_time_limit(start, done_s, stopped_early, &mut time_limited);
        Ok(Produced {
            progress,
            rows,
            t0_s,
            start_us,
            clients_s: ready.clients_s,
            stopped_early,
            time_limited,
            done_s,
            never_sent,
        })
    }

    /// Whether the run must stop producing now, and why (a failure and an event, or
    /// `time_limited` raised when the time limit has come). The first reason found wins.
    fn stops_early(&mut self, stall: &mut Stall, limit: Instant, time_limited: &mut bool) -> bool {
        if self.interrupt.is_raised() {
            self.failures
                .push("interrupted (Ctrl-C) while producing".into());
            self.events.push(Event {
                t_s: self.t_s(),
                kind: "interrupted".into(),
                detail: "Ctrl-C".into(),
            });
        } else if let Some(dead) = self.target.dead_broker() {
            self.failures.push(dead.clone());
            self.tasks.abandon.raise();
            self.events.push(Event {
                t_s: self.t_s(),
                kind: "broker_exit".into(),
                detail: dead.lines().next().unwrap_or("").into(),
            });
        } else if Instant::now() >= limit {
            *time_limited = true;
        } else if let Some(refused) = storage_refusals(&self.producer_meters) {
            // A full or failing log dir does not heal itself within a run: stop now with the
            // cause named rather than send the rest of the messages into the same error.
            self.failures.push(format!(
                "storage: the cluster refused {refused} message(s) with KAFKA_STORAGE_ERROR \
                 (a broker's log directory is full or failing; its log names it); \
                 producing stopped"
            ));
            self.events.push(Event {
                t_s: self.t_s(),
                kind: "storage_error".into(),
                detail: format!("{refused} message(s) refused with KAFKA_STORAGE_ERROR"),
            });
        } else {
            let (sent, acked, _) = self.collector.progress();
            let failed: u64 = self
                .producer_meters
                .iter()
                .map(|m| m.with_state(|st| st.failed))
                .sum();
            if acked + failed != stall.answered {
                *stall = Stall {
                    answered: acked + failed,
                    since: Instant::now(),
                };
            } else if sent > acked + failed && stall.since.elapsed() >= STALL_TIMEOUT {
                self.failures.push(format!(
                    "no message acknowledged or failed for {:?} with {} outstanding: the cluster stopped answering",
                    STALL_TIMEOUT,
                    sent - acked - failed
                ));
                self.tasks.abandon.raise();
                return true;
            }
            return false;
        }
        true
    }

    /// In a sharded run, waits until every shard has stopped producing: the end offsets the
    /// drain reads are final only then. A failed wait is a failure of the run.
    async fn await_shards_done(&mut self) {
        let Some(r) = self.shard else {
            return;
        };
        let (c, control, sh) = (
            self.cluster.clone(),
            crate::shard::control_topic(&self.topic),
            r.shard.clone(),
        );
        let done =
            tokio::task::spawn_blocking(move || crate::shard::barrier(&c, &control, &sh, "done"))
                .await
                .map_err(|e| anyhow::anyhow!("shard barrier task failed: {e}"))
                .and_then(|r| r);
        if let Err(e) = done {
            self.failures.push(format!("{e:#}"));
        }
    }

    /// Producers stop on their own at the time limit: a run that ended with messages never
    /// sent, and nothing else stopped it, was stopped by the time limit. That is said first
    /// among the failures. Returns how many messages were never sent (with a count to send).
    fn judge_time_limit(
        &mut self,
        start: Instant,
        done_s: f64,
        stopped_early: bool,
        time_limited: &mut bool,
    ) -> Option<u64> {
        let s = self.s;
        let sent_total: u64 = self.producer_meters.iter().map(|m| m.sent_totals().0).sum();
        let never_sent = match s.producers.stop() {
            StopAt::Messages(n) => {
                Some((n * u64::from(s.producers.count)).saturating_sub(sent_total))
            }
            StopAt::Duration(_) => None,
        };
        let planned = match s.producers.stop() {
            StopAt::Duration(d) => Some(d + s.producers.warmup.0),
            StopAt::Messages(_) => None,
        };
        *time_limited |= !stopped_early
            && (never_sent.is_some_and(|n| n > 0)
                || planned.is_some_and(|d| {
                    d > s.producers.time_limit.0 && start.elapsed() >= s.producers.time_limit.0
                }));
        if *time_limited {
            let what = match never_sent {
                Some(n) => format!("{n} of {} messages were never sent", n + sent_total),
                None => format!(
                    "producing stopped after {:.1} s of the {:.1} s planned",
                    s.producers.time_limit.0.as_secs_f64(),
                    planned.unwrap_or_default().as_secs_f64()
                ),
            };
            self.failures.insert(
                0,
                format!(
                    "time limit: the run was stopped by producers.time_limit = {:?}; {what}",
                    s.producers.time_limit.0
                ),
            );
            self.events.push(Event {
                t_s: done_s,
                kind: "time_limit".into(),
                detail: what,
            });
        }
        never_sent
    }
}
