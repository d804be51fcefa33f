//! Throughput over time: acknowledged (produce) and consumed messages per second, and the
//! same in MiB per second, per sampling interval. A set target rate is drawn dashed.

use super::{Chart, Line, MIN_POINTS};
use crate::summary::{IntervalRow, RunData, MIB};

/// Why per-interval rates are not charted: producing spanned fewer than [`MIN_POINTS`]
/// sampling intervals, so each interval's rate is the run's rate diluted by the idle part of
/// the interval (a 0.1 s burst at 100k msgs/s in a 1 s interval reads 10k msgs/s) and the chart
/// would contradict the headline figure.
fn too_short(data: &RunData) -> Option<String> {
    let producing = data.intervals.iter().filter(|r| r.acked_msgs > 0).count();
    if producing >= MIN_POINTS || data.summary.produce.acked == 0 {
        return None;
    }
    let p = &data.summary.produce;
    Some(format!(
        "producing lasted {:.2} s, {producing} sampling interval(s): too short to chart per-interval \
         rates, which would understate the {:.0} msgs/s ({:.1} MiB/s) measured over the producing \
         window (produce for longer, or set a shorter [sampling] interval)",
        p.duration_s, p.msgs_per_s, p.mib_per_s
    ))
}

fn per_s(data: &RunData, f: impl Fn(&IntervalRow) -> u64, scale: f64) -> Vec<(f64, f64)> {
    data.intervals
        .iter()
        .filter(|r| r.interval_s > 0.0)
        .map(|r| (r.t_s, f(r) as f64 / r.interval_s / scale))
        .collect()
}

/// `throughput_msgs`: messages/s produced (acknowledged) and consumed.
pub(crate) fn messages(data: &RunData) -> Chart {
    let mut c = Chart::time(
        "throughput_msgs",
        format!("{}: throughput (messages/s)", data.summary.scenario.name),
        "messages/s",
        data,
    );
    c.lines.push(Line::new(
        "produced (acked) msgs/s",
        0,
        per_s(data, |r| r.acked_msgs, 1.0),
    ));
    c.lines.push(Line::new(
        "consumed msgs/s (all groups)",
        1,
        per_s(data, |r| r.consumed_msgs, 1.0),
    ));
    if let (Some(rate), Some(last)) = (
        data.summary.produce.target_msgs_per_s,
        data.intervals.last(),
    ) {
        let mut l = Line::new(
            format!("target {rate:.0} msgs/s"),
            3,
            vec![(0.0, rate), (last.t_s, rate)],
        );
        l.dashed = true;
        c.lines.push(l);
    }
    c.skip = too_short(data);
    c
}

/// `throughput_mib`: payload MiB/s produced (acknowledged) and consumed.
pub(crate) fn mebibytes(data: &RunData) -> Chart {
    let mut c = Chart::time(
        "throughput_mib",
        format!("{}: throughput (MiB/s)", data.summary.scenario.name),
        "payload MiB/s",
        data,
    );
    c.lines.push(Line::new(
        "produced (acked) MiB/s",
        0,
        per_s(data, |r| r.acked_bytes, MIB),
    ));
    c.lines.push(Line::new(
        "consumed MiB/s (all groups)",
        1,
        per_s(data, |r| r.consumed_bytes, MIB),
    ));
    c.skip = too_short(data);
    c
}
