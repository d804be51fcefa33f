//! The latency percentile distribution, the familiar HdrHistogram plot: latency (ms) against
//! percentile, with the x axis at `1/(1-q)` on a log scale so each "nine" gets the same width.
//! Produce and end-to-end latency share the chart. Warm-up is excluded by the histograms.

use hdrhistogram::Histogram;

use super::{Chart, Line, XAxis};
use crate::summary::RunData;

/// (1/(1-q), ms) points of `h` (µs), as HdrHistogram's percentile output iterates them.
pub(crate) fn points(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    if h.is_empty() {
        return Vec::new();
    }
    h.iter_quantiles(5)
        .filter(|v| v.quantile_iterated_to() < 1.0)
        .map(|v| {
            (
                1.0 / (1.0 - v.quantile_iterated_to()),
                v.value_iterated_to() as f64 / 1000.0,
            )
        })
        .collect()
}

/// `latency_distribution`.
pub(crate) fn chart(data: &RunData) -> Chart {
    Chart {
        stem: "latency_distribution",
        title: format!(
            "{}: latency by percentile (warm-up excluded)",
            data.summary.scenario.name
        ),
        x: XAxis::Percentile,
        y_desc: "latency (ms)".into(),
        y_log: false,
        lines: vec![
            Line::new("produce", 0, points(&data.produce_latency)),
            Line::new("end-to-end", 1, points(&data.e2e_latency)),
        ],
        warmup_end_s: None,
        events: Vec::new(),
        skip: None,
    }
}
