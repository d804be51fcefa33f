//! Network over time: MiB/s received and transmitted over all interfaces (loopback included:
//! an embedded cluster talks over loopback only), and received per interface when there is
//! more than one busy interface.

use super::{system_intervals, Chart, Line};
use crate::summary::{RunData, MIB};

/// `network`.
pub(crate) fn chart(data: &RunData) -> Chart {
    let rows = &data.system.rows;
    let dts = system_intervals(data);
    let mut c = Chart::time(
        "network",
        format!("{}: network (all interfaces)", data.summary.scenario.name),
        "MiB/s",
        data,
    );
    let rate = |f: &dyn Fn(usize) -> u64| -> Vec<(f64, f64)> {
        dts.iter()
            .enumerate()
            .map(|(i, (t, dt))| (*t, f(i) as f64 / dt / MIB))
            .collect()
    };
    let rx = rate(&|i| rows[i].net_rx_bytes);
    let tx = rate(&|i| rows[i].net_tx_bytes);
    // Over loopback every byte sent is received: one line, named so, rather than a legend
    // entry whose line is hidden under the other.
    let same = rx
        .iter()
        .zip(&tx)
        .all(|(r, t)| (r.1 - t.1).abs() <= 0.01 * r.1.max(t.1).max(1e-3));
    if same {
        c.lines.push(Line::new("received = transmitted", 0, rx));
    } else {
        c.lines.push(Line::new("received", 0, rx));
        c.lines.push(Line::new("transmitted", 1, tx));
    }
    let mut busy: Vec<&String> = rows
        .iter()
        .flat_map(|r| r.net_per_interface.iter())
        .filter(|(_, n)| n.rx_bytes > 0)
        .map(|(k, _)| k)
        .collect();
    busy.sort();
    busy.dedup();
    if busy.len() > 1 {
        for (k, name) in busy.into_iter().enumerate() {
            let pts = rate(&|i| {
                rows[i]
                    .net_per_interface
                    .get(name)
                    .map_or(0, |n| n.rx_bytes)
            });
            c.lines
                .push(Line::new(format!("{name} received"), 2 + k, pts));
        }
    }
    c
}
