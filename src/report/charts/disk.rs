//! Disk over time: the machine's read and write MiB/s (whole disks), with the MiB/s the
//! brokers and kbench wrote.

use super::{is_broker, system_intervals, Chart, Line};
use crate::summary::{RunData, MIB};

/// `disk`.
pub(crate) fn chart(data: &RunData) -> Chart {
    let rows = &data.system.rows;
    let dts = system_intervals(data);
    let mut c = Chart::time(
        "disk",
        format!("{}: disk I/O", data.summary.scenario.name),
        "MiB/s",
        data,
    );
    let rate = |f: &dyn Fn(usize) -> u64| -> Vec<(f64, f64)> {
        dts.iter()
            .enumerate()
            .map(|(i, (t, dt))| (*t, f(i) as f64 / dt / MIB))
            .collect()
    };
    let written = |i: usize, pick: &dyn Fn(&str) -> bool| -> u64 {
        rows[i]
            .processes
            .iter()
            .filter(|p| pick(&p.label))
            .map(|p| p.written_bytes)
            .sum()
    };
    c.lines.push(Line::new(
        "machine write",
        0,
        rate(&|i| rows[i].disk_write_bytes),
    ));
    c.lines.push(Line::new(
        "machine read",
        1,
        rate(&|i| rows[i].disk_read_bytes),
    ));
    if rows
        .iter()
        .any(|r| r.processes.iter().any(|p| is_broker(&p.label)))
    {
        c.lines.push(Line::new(
            "brokers write",
            2,
            rate(&|i| written(i, &|l| is_broker(l))),
        ));
    }
    if rows
        .iter()
        .any(|r| r.processes.iter().any(|p| p.label == "kbench"))
    {
        c.lines.push(Line::new(
            "kbench write",
            4,
            rate(&|i| written(i, &|l| l == "kbench")),
        ));
    }
    c
}
