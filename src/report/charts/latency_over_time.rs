//! Latency percentiles over time: p50, p99 and max of each sampling interval, in ms, on a log
//! scale (max can be orders of magnitude above the median). Intervals with no value recorded
//! leave a gap rather than a false zero.

use super::{Chart, Line};
use crate::summary::{IntervalRow, RunData};

fn ms(data: &RunData, f: impl Fn(&IntervalRow) -> u64) -> Vec<(f64, f64)> {
    data.intervals
        .iter()
        .filter(|r| f(r) > 0)
        .map(|r| (r.t_s, f(r) as f64 / 1000.0))
        .collect()
}

/// `produce_latency_over_time`: send → acknowledgement, per interval.
pub(crate) fn produce(data: &RunData) -> Chart {
    let mut c = Chart::time(
        "produce_latency_over_time",
        format!(
            "{}: produce latency per interval",
            data.summary.scenario.name
        ),
        "latency (ms, log scale)",
        data,
    );
    c.y_log = true;
    c.lines
        .push(Line::new("p50", 0, ms(data, |r| r.produce_p50_us)));
    c.lines
        .push(Line::new("p99", 1, ms(data, |r| r.produce_p99_us)));
    c.lines
        .push(Line::new("max", 3, ms(data, |r| r.produce_max_us)));
    c
}

/// `e2e_latency_over_time`: producer timestamp → consumer receipt, per interval.
pub(crate) fn end_to_end(data: &RunData) -> Chart {
    let mut c = Chart::time(
        "e2e_latency_over_time",
        format!(
            "{}: end-to-end latency per interval",
            data.summary.scenario.name
        ),
        "latency (ms, log scale)",
        data,
    );
    c.y_log = true;
    c.lines
        .push(Line::new("p50", 0, ms(data, |r| r.e2e_p50_us)));
    c.lines
        .push(Line::new("p99", 1, ms(data, |r| r.e2e_p99_us)));
    c.lines
        .push(Line::new("max", 3, ms(data, |r| r.e2e_max_us)));
    c
}
