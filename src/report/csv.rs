//! The CSV files of a run: `timeseries.csv` (one [`IntervalRow`] per sampling interval, the
//! columns are its fields) and `system.csv` (one [`SystemRow`] per interval, flattened: fixed
//! columns first, then `cpu<N>_pct` per core, `net_<iface>_rx_bytes`/`_tx_bytes` per interface
//! and `<label>_cpu_pct`/`_rss_bytes`/`_written_bytes` per watched process).
//!
//! Every column name ends in its unit. Writers are pure (rows in, bytes out); readers give the
//! rows back so `kbench report RUN_DIR` can redraw the charts.

use std::collections::BTreeMap;

use anyhow::Context;

use crate::summary::{IntervalRow, NetCounts, ProcessRow, SystemRow};

/// `timeseries.csv` as bytes: a header from [`IntervalRow`]'s field names, then one row each.
pub fn timeseries_csv(rows: &[IntervalRow]) -> anyhow::Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    if rows.is_empty() {
        w.write_record(TIMESERIES_COLUMNS)?;
    }
    for r in rows {
        w.serialize(r)?;
    }
    Ok(w.into_inner()?)
}

/// Column names of `timeseries.csv`, in order (stable; only ever appended to).
pub const TIMESERIES_COLUMNS: &[&str] = &[
    "t_s",
    "interval_s",
    "produced_msgs",
    "produced_bytes",
    "acked_msgs",
    "acked_bytes",
    "consumed_msgs",
    "consumed_bytes",
    "errors",
    "produce_p50_us",
    "produce_p99_us",
    "produce_max_us",
    "e2e_p50_us",
    "e2e_p99_us",
    "e2e_max_us",
    "in_warmup",
];

/// Reads `timeseries.csv` back.
pub fn read_timeseries(bytes: &[u8]) -> anyhow::Result<Vec<IntervalRow>> {
    let mut r = csv::Reader::from_reader(bytes);
    r.deserialize()
        .enumerate()
        .map(|(i, row)| row.with_context(|| format!("timeseries.csv row {}", i + 2)))
        .collect()
}

/// Fixed leading columns of `system.csv`, in order.
pub const SYSTEM_COLUMNS: &[&str] = &[
    "t_s",
    "cpu_total_pct",
    "mem_used_bytes",
    "mem_total_bytes",
    "net_rx_bytes",
    "net_tx_bytes",
    "disk_read_bytes",
    "disk_write_bytes",
];

/// `system.csv` as bytes. The dynamic columns are the union over all rows (a core, interface
/// or process missing from a row is written as 0).
pub fn system_csv(rows: &[SystemRow]) -> anyhow::Result<Vec<u8>> {
    let cores = rows
        .iter()
        .map(|r| r.cpu_per_core_pct.len())
        .max()
        .unwrap_or(0);
    let mut ifaces: Vec<&str> = rows
        .iter()
        .flat_map(|r| r.net_per_interface.keys().map(String::as_str))
        .collect();
    ifaces.sort_unstable();
    ifaces.dedup();
    let mut procs: Vec<&str> = Vec::new();
    for p in rows.iter().flat_map(|r| &r.processes) {
        if !procs.contains(&p.label.as_str()) {
            procs.push(&p.label);
        }
    }
    let mut header: Vec<String> = SYSTEM_COLUMNS.iter().map(|s| s.to_string()).collect();
    header.extend((0..cores).map(|i| format!("cpu{i}_pct")));
    for i in &ifaces {
        header.push(format!("net_{i}_rx_bytes"));
        header.push(format!("net_{i}_tx_bytes"));
    }
    for p in &procs {
        header.push(format!("{p}_pid"));
        header.push(format!("{p}_cpu_pct"));
        header.push(format!("{p}_rss_bytes"));
        header.push(format!("{p}_written_bytes"));
    }
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(&header)?;
    for r in rows {
        let mut rec: Vec<String> = vec![
            fmt_f(r.t_s),
            fmt_f(r.cpu_total_pct),
            r.mem_used_bytes.to_string(),
            r.mem_total_bytes.to_string(),
            r.net_rx_bytes.to_string(),
            r.net_tx_bytes.to_string(),
            r.disk_read_bytes.to_string(),
            r.disk_write_bytes.to_string(),
        ];
        rec.extend((0..cores).map(|i| fmt_f(r.cpu_per_core_pct.get(i).copied().unwrap_or(0.0))));
        for i in &ifaces {
            let c = r.net_per_interface.get(*i).copied().unwrap_or_default();
            rec.push(c.rx_bytes.to_string());
            rec.push(c.tx_bytes.to_string());
        }
        for label in &procs {
            match r.processes.iter().find(|p| p.label == *label) {
                Some(p) => rec.extend([
                    p.pid.to_string(),
                    fmt_f(p.cpu_pct),
                    p.rss_bytes.to_string(),
                    p.written_bytes.to_string(),
                ]),
                None => rec.extend(["0", "0", "0", "0"].map(String::from)),
            }
        }
        w.write_record(&rec)?;
    }
    Ok(w.into_inner()?)
}

fn fmt_f(v: f64) -> String {
    format!("{:.3}", v)
        .trim_end_matches('0')
        .trim_end_matches('.')
        .to_string()
}

/// Reads `system.csv` back into rows (processes in column order; a process written as all
/// zeros because it was missing from a row comes back as zeros).
pub fn read_system(bytes: &[u8]) -> anyhow::Result<Vec<SystemRow>> {
    let mut r = csv::Reader::from_reader(bytes);
    let header: Vec<String> = r.headers()?.iter().map(String::from).collect();
    let col = |name: &str| header.iter().position(|h| h == name);
    for c in SYSTEM_COLUMNS {
        col(c).with_context(|| format!("system.csv has no column {c:?}"))?;
    }
    let cores: Vec<usize> = (0..).map_while(|i| col(&format!("cpu{i}_pct"))).collect();
    let mut ifaces = Vec::new();
    let mut procs = Vec::new();
    for (i, h) in header.iter().enumerate() {
        if let Some(name) = h
            .strip_prefix("net_")
            .and_then(|s| s.strip_suffix("_rx_bytes"))
        {
            if let Some(tx) = col(&format!("net_{name}_tx_bytes")) {
                ifaces.push((name.to_string(), i, tx));
            }
        } else if let Some(label) = h.strip_suffix("_pid") {
            let need = |s: &str| col(&format!("{label}_{s}"));
            if let (Some(c), Some(m), Some(wr)) =
                (need("cpu_pct"), need("rss_bytes"), need("written_bytes"))
            {
                procs.push((label.to_string(), i, c, m, wr));
            }
        }
    }
    let mut rows = Vec::new();
    for (n, rec) in r.records().enumerate() {
        let rec = rec.with_context(|| format!("system.csv row {}", n + 2))?;
        let f = |i: usize| -> anyhow::Result<f64> {
            rec.get(i)
                .unwrap_or("0")
                .parse::<f64>()
                .with_context(|| format!("system.csv row {} column {:?}", n + 2, header[i]))
        };
        let u = |i: usize| f(i).map(|v| v as u64);
        let mut net_per_interface = BTreeMap::new();
        for (name, rx, tx) in &ifaces {
            net_per_interface.insert(
                name.clone(),
                NetCounts {
                    rx_bytes: u(*rx)?,
                    tx_bytes: u(*tx)?,
                },
            );
        }
        let mut processes = Vec::new();
        for (label, pid, c, m, wr) in &procs {
            processes.push(ProcessRow {
                label: label.clone(),
                pid: u(*pid)? as u32,
                cpu_pct: f(*c)?,
                rss_bytes: u(*m)?,
                written_bytes: u(*wr)?,
            });
        }
        rows.push(SystemRow {
            t_s: f(0)?,
            cpu_total_pct: f(1)?,
            mem_used_bytes: u(2)?,
            mem_total_bytes: u(3)?,
            net_rx_bytes: u(4)?,
            net_tx_bytes: u(5)?,
            disk_read_bytes: u(6)?,
            disk_write_bytes: u(7)?,
            cpu_per_core_pct: cores.iter().map(|&i| f(i)).collect::<anyhow::Result<_>>()?,
            net_per_interface,
            processes,
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::testdata;

    #[test]
    fn timeseries_header_is_stable_and_round_trips() {
        let rows = testdata::run_data().intervals;
        let bytes = timeseries_csv(&rows).unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert_eq!(text.lines().next().unwrap(), TIMESERIES_COLUMNS.join(","));
        assert_eq!(read_timeseries(&bytes).unwrap(), rows);
        let empty = String::from_utf8(timeseries_csv(&[]).unwrap()).unwrap();
        assert_eq!(empty.trim_end(), TIMESERIES_COLUMNS.join(","));
    }

    #[test]
    fn system_csv_header_is_stable_and_round_trips() {
        let rows = testdata::run_data().system.rows;
        let bytes = system_csv(&rows).unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        let header = text.lines().next().unwrap();
        assert!(header.starts_with(&SYSTEM_COLUMNS.join(",")), "{header}");
        assert!(header.contains("cpu1_pct,net_eth0_rx_bytes,net_eth0_tx_bytes,net_lo_rx_bytes"));
        assert!(header.ends_with("kbench_pid,kbench_cpu_pct,kbench_rss_bytes,kbench_written_bytes"));
        let back = read_system(&bytes).unwrap();
        assert_eq!(back.len(), rows.len());
        assert_eq!(back[3].processes, rows[3].processes);
        assert_eq!(back[3].net_per_interface, rows[3].net_per_interface);
        assert_eq!(back[3].cpu_per_core_pct, rows[3].cpu_per_core_pct);
        assert_eq!(back[3].disk_write_bytes, rows[3].disk_write_bytes);
    }
}
