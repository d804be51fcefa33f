//! Memory over time: the machine's memory in use, the brokers' summed RSS and kbench's RSS,
//! in MiB.

use super::{is_broker, Chart, Line};
use crate::summary::{RunData, MIB};

/// `memory`.
pub(crate) fn chart(data: &RunData) -> Chart {
    let rows = &data.system.rows;
    let total = data
        .system
        .summary
        .mem_total_bytes
        .max(rows.iter().map(|r| r.mem_total_bytes).max().unwrap_or(0));
    let mut c = Chart::time(
        "memory",
        format!(
            "{}: memory (MiB, machine total {:.0} MiB)",
            data.summary.scenario.name,
            total as f64 / MIB
        ),
        "MiB",
        data,
    );
    let rss = |pick: &dyn Fn(&str) -> bool| -> Vec<(f64, f64)> {
        rows.iter()
            .map(|r| {
                let sum: u64 = r
                    .processes
                    .iter()
                    .filter(|p| pick(&p.label))
                    .map(|p| p.rss_bytes)
                    .sum();
                (r.t_s, sum as f64 / MIB)
            })
            .collect()
    };
    c.lines.push(Line::new(
        "machine in use",
        0,
        rows.iter()
            .map(|r| (r.t_s, r.mem_used_bytes as f64 / MIB))
            .collect(),
    ));
    if rows
        .iter()
        .any(|r| r.processes.iter().any(|p| is_broker(&p.label)))
    {
        c.lines
            .push(Line::new("brokers RSS", 1, rss(&|l| is_broker(l))));
    }
    if rows
        .iter()
        .any(|r| r.processes.iter().any(|p| p.label == "kbench"))
    {
        c.lines
            .push(Line::new("kbench RSS", 2, rss(&|l| l == "kbench")));
    }
    c
}
