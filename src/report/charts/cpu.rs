//! CPU over time: the machine's total CPU use, the brokers' share and kbench's share, all on
//! the one base of every CPU % in kbench: % of the whole machine (the sampler already divides
//! process CPU by the number of cores).

use super::{is_broker, Chart, Line};
use crate::summary::RunData;

/// `cpu`.
pub(crate) fn chart(data: &RunData) -> Chart {
    let rows = &data.system.rows;
    let mut c = Chart::time(
        "cpu",
        format!("{}: CPU (% of all cores)", data.summary.scenario.name),
        "CPU (% of all cores)",
        data,
    );
    let share = |pick: &dyn Fn(&str) -> bool| -> Vec<(f64, f64)> {
        rows.iter()
            .map(|r| {
                let sum: f64 = r
                    .processes
                    .iter()
                    .filter(|p| pick(&p.label))
                    .map(|p| p.cpu_pct)
                    .sum();
                (r.t_s, sum)
            })
            .collect()
    };
    c.lines.push(Line::new(
        "machine total",
        0,
        rows.iter().map(|r| (r.t_s, r.cpu_total_pct)).collect(),
    ));
    if rows
        .iter()
        .any(|r| r.processes.iter().any(|p| is_broker(&p.label)))
    {
        c.lines
            .push(Line::new("brokers", 1, share(&|l| is_broker(l))));
    }
    if rows
        .iter()
        .any(|r| r.processes.iter().any(|p| p.label == "kbench"))
    {
        c.lines
            .push(Line::new("kbench", 2, share(&|l| l == "kbench")));
    }
    c
}
