//! The search for the maximum sustainable rate (`[max_rate]`, OpenMessaging's
//! `producerRate = 0`): the highest total produce rate at which the achieved rate keeps up with
//! the target (at least [`ACHIEVED_MIN_RATIO`] of it) and the produce p99 stays within a bound.
//!
//! The search is a plan of steps like any other load shape: [`Search`] holds what the steps
//! so far showed and says which rate to try next; it knows nothing of runs, so its logic is
//! tested on its own. `run.rs` runs each step as a whole run of the scenario at that rate (a
//! fresh cluster each time, so one overloaded step cannot slow the next), and writes the curve
//! walked into `summary.json`'s `max_rate` section.
//!
//! Shape: the rate doubles from `start_rate` until a step fails or `ceiling` is reached, then
//! bisects between the highest sustained and the lowest failed rate until they are within
//! `precision` of each other. A first step that fails reports no sustainable rate (`null`),
//! never a number the cluster did not sustain. Every search ends within `max_steps` steps.

use crate::summary::{MaxRateStep, MaxRateSummary, Summary};

/// A step is sustained when the achieved rate is at least this share of the target.
pub const ACHIEVED_MIN_RATIO: f64 = 0.95;

/// The search state: the bounds and the steps walked.
#[derive(Debug, Clone)]
pub struct Search {
    start: f64,
    ceiling: f64,
    max_steps: u32,
    precision: f64,
    /// Highest sustained target rate so far.
    sustained: Option<f64>,
    /// Lowest failed target rate so far.
    failed: Option<f64>,
    steps: u32,
    stopped: Option<String>,
}

impl Search {
    /// A search from `start` msgs/s, never above `ceiling`, of at most `max_steps` steps, that
    /// stops bisecting when the bounds are within `precision` (a share of the sustained rate).
    pub fn new(start: f64, ceiling: f64, max_steps: u32, precision: f64) -> Self {
        Search {
            start,
            ceiling,
            max_steps,
            precision,
            sustained: None,
            failed: None,
            steps: 0,
            stopped: None,
        }
    }

    /// The next target rate to try, or `None` when the search is over ([`Search::stopped`]
    /// then says why).
    pub fn next_rate(&mut self) -> Option<f64> {
        if self.stopped.is_some() {
            return None;
        }
        let next = match (self.sustained, self.failed) {
            (None, None) => Some(self.start),
            (None, Some(f)) => {
                self.stopped = Some(format!(
                    "the first step ({f:.0} msgs/s) was not sustained: no sustainable rate found \
                     (lower max_rate.start_rate)"
                ));
                None
            }
            (Some(s), None) if s >= self.ceiling => {
                self.stopped = Some(format!(
                    "reached max_rate.ceiling = {:.0} msgs/s, sustained",
                    self.ceiling
                ));
                None
            }
            (Some(s), None) => Some((s * 2.0).min(self.ceiling)),
            (Some(s), Some(f)) if (f - s) / s <= self.precision => {
                self.stopped = Some(format!(
                    "bounds within {:.0} % ({s:.0} sustained, {f:.0} not)",
                    self.precision * 100.0
                ));
                None
            }
            (Some(s), Some(f)) => Some((s + f) / 2.0),
        };
        if next.is_some() && self.steps >= self.max_steps {
            self.stopped = Some(format!("max_rate.max_steps = {} steps run", self.max_steps));
            return None;
        }
        if next.is_some() {
            self.steps += 1;
        }
        next
    }

    /// Records the verdict of the step at `target`.
    pub fn record(&mut self, target: f64, sustained: bool) {
        if sustained {
            self.sustained = Some(self.sustained.map_or(target, |s| s.max(target)));
        } else {
            self.failed = Some(self.failed.map_or(target, |f| f.min(target)));
        }
    }

    /// The highest sustained rate, if any step was sustained.
    pub fn found(&self) -> Option<f64> {
        self.sustained
    }

    /// Why the search ended (empty while it goes on).
    pub fn stopped(&self) -> &str {
        self.stopped.as_deref().unwrap_or("")
    }
}

/// The verdict of one step from its run's summary: achieved at least
/// [`ACHIEVED_MIN_RATIO`] of `target`, produce p99 within `p99_bound_ms`, no failed delivery.
pub fn judge(target: f64, p99_bound_ms: f64, s: &Summary, dir: &str) -> MaxRateStep {
    let achieved = s.produce.msgs_per_s;
    let p = &s.produce.latency_ms;
    let mut why = Vec::new();
    if achieved < ACHIEVED_MIN_RATIO * target {
        why.push(format!(
            "achieved {:.0} msgs/s < {:.0} % of the target",
            achieved,
            ACHIEVED_MIN_RATIO * 100.0
        ));
    }
    if p.count == 0 {
        why.push("no produce latency recorded".to_string());
    } else if p.p99 > p99_bound_ms {
        why.push(format!("p99 {:.1} ms > {p99_bound_ms} ms", p.p99));
    }
    if s.produce.failed > 0 {
        why.push(format!("{} deliveries failed", s.produce.failed));
    }
    if let Some(f) = s
        .verdict
        .failures
        .iter()
        .find(|f| f.starts_with("could not start"))
    {
        why.push(f.clone());
    }
    MaxRateStep {
        target_msgs_per_s: target,
        achieved_msgs_per_s: achieved,
        p50_ms: p.p50,
        p99_ms: p.p99,
        sustained: why.is_empty(),
        verdict: if why.is_empty() {
            "sustained".into()
        } else {
            format!("not sustained: {}", why.join("; "))
        },
        dir: dir.to_string(),
    }
}

/// The terminal table of a search: one line per step, then the rate found.
pub fn terminal(m: &MaxRateSummary) -> String {
    let mut o = format!(
        "max-rate search (p99 ≤ {} ms, achieved ≥ {:.0} % of target, {} s per step)\n\
         {:>4} {:>12} {:>12} {:>9} {:>9}  verdict\n",
        m.p99_bound_ms,
        m.achieved_min_ratio * 100.0,
        m.step_s,
        "step",
        "target/s",
        "achieved/s",
        "p50 ms",
        "p99 ms"
    );
    for (i, s) in m.steps.iter().enumerate() {
        o.push_str(&format!(
            "{:>4} {:>12.0} {:>12.0} {:>9.2} {:>9.2}  {}\n",
            i + 1,
            s.target_msgs_per_s,
            s.achieved_msgs_per_s,
            s.p50_ms,
            s.p99_ms,
            s.verdict
        ));
    }
    match m.found_msgs_per_s {
        Some(r) => o.push_str(&format!(
            "max sustainable rate: {r:.0} msgs/s ({})\n",
            m.stopped
        )),
        None => o.push_str(&format!("max sustainable rate: none ({})\n", m.stopped)),
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Walks a search against a cluster that sustains exactly `limit` msgs/s.
    fn walk(mut search: Search, limit: f64) -> (Search, Vec<f64>) {
        let mut tried = Vec::new();
        while let Some(r) = search.next_rate() {
            tried.push(r);
            search.record(r, r <= limit);
        }
        (search, tried)
    }

    #[test]
    fn doubling_then_bisection_converges_on_the_limit() {
        let (s, tried) = walk(Search::new(1000.0, 1e9, 30, 0.05), 5000.0);
        assert_eq!(&tried[..4], &[1000.0, 2000.0, 4000.0, 8000.0]);
        assert_eq!(tried[4], 6000.0, "bisects between 4000 and 8000");
        let found = s.found().unwrap();
        assert!(
            (5000.0 * 0.95..=5000.0).contains(&found),
            "{found} {tried:?}"
        );
        assert!(
            s.stopped().starts_with("bounds within 5 %"),
            "{}",
            s.stopped()
        );
        // Every step after the first failure lies between the bounds.
        assert!(tried[4..].iter().all(|&r| r > 4000.0 && r < 8000.0));
    }

    #[test]
    fn a_failing_first_step_reports_no_rate() {
        let (s, tried) = walk(Search::new(1000.0, 1e6, 8, 0.1), 10.0);
        assert_eq!(tried, vec![1000.0]);
        assert_eq!(s.found(), None);
        assert!(
            s.stopped().contains("no sustainable rate"),
            "{}",
            s.stopped()
        );
    }

    #[test]
    fn the_search_is_bounded_by_steps_and_ceiling() {
        let (s, tried) = walk(Search::new(1000.0, 1e9, 3, 0.01), 1e12);
        assert_eq!(tried, vec![1000.0, 2000.0, 4000.0]);
        assert_eq!(s.found(), Some(4000.0));
        assert!(s.stopped().contains("max_steps = 3"), "{}", s.stopped());
        let (s, tried) = walk(Search::new(1000.0, 3000.0, 10, 0.01), 1e12);
        assert_eq!(tried, vec![1000.0, 2000.0, 3000.0]);
        assert_eq!(s.found(), Some(3000.0));
        assert!(s.stopped().contains("ceiling"), "{}", s.stopped());
    }

    #[test]
    fn a_step_is_judged_on_rate_and_p99() {
        let mut s = Summary::default();
        s.produce.msgs_per_s = 960.0;
        s.produce.latency_ms.p99 = 4.0;
        s.produce.latency_ms.count = 100;
        assert!(judge(1000.0, 5.0, &s, "step-1").sustained);
        let slow = judge(1000.0, 3.0, &s, "step-1");
        assert!(
            !slow.sustained && slow.verdict.contains("p99 4.0 ms > 3 ms"),
            "{slow:?}"
        );
        s.produce.msgs_per_s = 900.0;
        let behind = judge(1000.0, 5.0, &s, "step-1");
        assert!(behind.verdict.contains("achieved 900"), "{behind:?}");
    }
}
