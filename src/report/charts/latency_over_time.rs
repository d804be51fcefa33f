//! Latency percentiles over time: p50, p99 and max of each sampling interval, in ms, on a log
//! scale (max can be orders of magnitude above the median). Intervals with no value recorded
//! leave a gap rather than a false zero.

use super::{Chart, Line};
use crate::summary::{IntervalRow, RunData};

/// Each interval's value in ms; an interval without one (nothing acknowledged or received)
/// after the first value is a gap (NaN), where the line breaks.
fn ms(data: &RunData, f: impl Fn(&IntervalRow) -> u64) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = Vec::new();
    for r in &data.intervals {
        match f(r) {
            0 if out.last().is_some_and(|p| p.1.is_finite()) => out.push((r.t_s, f64::NAN)),
            0 => {}
            v => out.push((r.t_s, v as f64 / 1000.0)),
        }
    }
    out
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
    // Top to bottom as on the chart; max first, drawn wide under p99 where they meet.
    c.lines
        .push(Line::new("max", 3, ms(data, |r| r.produce_max_us)));
    c.lines
        .push(Line::new("p99", 1, ms(data, |r| r.produce_p99_us)));
    c.lines
        .push(Line::new("p50", 0, ms(data, |r| r.produce_p50_us)));
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
    // Top to bottom as on the chart; max first, drawn wide under p99 where they meet.
    c.lines
        .push(Line::new("max", 3, ms(data, |r| r.e2e_max_us)));
    c.lines
        .push(Line::new("p99", 1, ms(data, |r| r.e2e_p99_us)));
    c.lines
        .push(Line::new("p50", 0, ms(data, |r| r.e2e_p50_us)));
    c
}
