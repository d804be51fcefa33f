//! The system sampler: what `nmon` gave the seed users, as data. A thread of its own wakes
//! every interval and records machine CPU (total and per core), memory, network bytes per
//! interface (loopback included: an embedded cluster talks over loopback only), disk
//! read/write bytes, and for each watched process (each broker, kbench itself) CPU %, RSS and
//! bytes written.
//!
//! Cost is kept well under 2 % of one core: one `sysinfo::System` is reused for the whole run
//! and only what is reported is refreshed (CPU usage, RAM, the watched pids and nothing else of
//! the process table), network counters come from a reused `Networks`, and disk counters from
//! one read of `/proc/diskstats` (Linux; elsewhere sysinfo's per-disk usage).
//!
//! The sampler only collects; the rows and their aggregate ([`SystemData`]) are written by
//! `report`.

use std::collections::BTreeMap;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sysinfo::{
    CpuRefreshKind, MemoryRefreshKind, Networks, Pid, ProcessRefreshKind, ProcessesToUpdate, System,
};

use crate::summary::cpu_share_of_machine;
pub use crate::summary::{
    NetCounts, ProcessRow, ProcessSummary, SystemData, SystemRow, SystemSummary,
};

/// Shortest interval the sampler accepts: sysinfo's CPU figures are meaningless below it.
pub const MIN_INTERVAL: Duration = Duration::from_millis(200);

/// A running system sampler. Start it with [`Sampler::start`], stop it with [`Sampler::stop`].
/// Dropping it without `stop` stops the thread and discards the samples.
#[derive(Debug)]
pub struct Sampler {
    /// Commands to the sampling thread (`None` after stop).
    commands: Option<Sender<Command>>,
    /// The sampling thread; it returns the rows when told to stop.
    thread: Option<JoinHandle<Vec<SystemRow>>>,
    /// Sampling interval as used (at least [`MIN_INTERVAL`]).
    interval: Duration,
}

#[derive(Debug)]
enum Command {
    /// Start watching one more process.
    Watch(String, u32),
    /// Take a last sample and return.
    Stop,
}

impl Sampler {
    /// Starts sampling every `interval` (at least [`MIN_INTERVAL`]) on a thread of its own,
    /// watching the given processes (`(label, pid)`, e.g. `("broker-1", 4242)`,
    /// `("kbench", std::process::id())`). Times (`SystemRow::t_s`) count from now.
    pub fn start(interval: Duration, processes: Vec<(String, u32)>) -> Sampler {
        Sampler::start_at(Instant::now(), interval, processes)
    }

    /// Like [`Sampler::start`], with times counted from `origin` (the run's start), so that
    /// `system.csv` and `timeseries.csv` share one clock.
    pub fn start_at(origin: Instant, interval: Duration, processes: Vec<(String, u32)>) -> Sampler {
        let interval = interval.max(MIN_INTERVAL);
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("kbench-sampler".into())
            .spawn(move || sample_loop(origin, interval, processes, rx))
            .expect("spawning the sampler thread");
        Sampler {
            commands: Some(tx),
            thread: Some(thread),
            interval,
        }
    }

    /// Starts watching one more process (e.g. a broker restarted by a fault) from the next
    /// sample on.
    pub fn watch(&self, label: impl Into<String>, pid: u32) {
        if let Some(tx) = &self.commands {
            let _ = tx.send(Command::Watch(label.into(), pid));
        }
    }

    /// Takes a last (possibly short) sample, stops the thread and returns the rows with their
    /// aggregate.
    pub fn stop(mut self) -> SystemData {
        let rows = self.finish();
        let summary = summarize(&rows, self.interval);
        SystemData { rows, summary }
    }

    fn finish(&mut self) -> Vec<SystemRow> {
        if let Some(tx) = self.commands.take() {
            let _ = tx.send(Command::Stop);
        }
        match self.thread.take() {
            Some(t) => t.join().unwrap_or_default(),
            None => Vec::new(),
        }
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Aggregates sampled rows: means and maxima of CPU, maxima of memory and RSS, sums of byte
/// counters. `interval` is recorded as the sampling interval.
pub fn summarize(rows: &[SystemRow], interval: Duration) -> SystemSummary {
    let n = rows.len().max(1) as f64;
    let mut s = SystemSummary {
        cores: rows
            .iter()
            .map(|r| r.cpu_per_core_pct.len() as u32)
            .max()
            .unwrap_or(0),
        interval_s: interval.as_secs_f64(),
        samples: rows.len() as u64,
        cpu_avg_pct: rows.iter().map(|r| r.cpu_total_pct).sum::<f64>() / n,
        cpu_max_pct: rows.iter().map(|r| r.cpu_total_pct).fold(0.0, f64::max),
        mem_max_bytes: rows.iter().map(|r| r.mem_used_bytes).max().unwrap_or(0),
        mem_total_bytes: rows.iter().map(|r| r.mem_total_bytes).max().unwrap_or(0),
        net_rx_bytes: rows.iter().map(|r| r.net_rx_bytes).sum(),
        net_tx_bytes: rows.iter().map(|r| r.net_tx_bytes).sum(),
        disk_read_bytes: rows.iter().map(|r| r.disk_read_bytes).sum(),
        disk_write_bytes: rows.iter().map(|r| r.disk_write_bytes).sum(),
        ..Default::default()
    };
    s.net_bytes = s.net_rx_bytes + s.net_tx_bytes;
    // Processes in first-seen order; a process watched later averages over its own rows.
    let mut order: Vec<(String, u32)> = Vec::new();
    let mut acc: BTreeMap<(String, u32), ProcessAcc> = BTreeMap::new();
    for p in rows.iter().flat_map(|r| &r.processes) {
        let key = (p.label.clone(), p.pid);
        let e = acc.entry(key.clone()).or_insert_with(|| {
            order.push(key);
            (0.0, 0.0, 0, 0, 0)
        });
        e.0 += p.cpu_pct;
        e.1 = e.1.max(p.cpu_pct);
        e.2 = e.2.max(p.rss_bytes);
        e.3 += p.written_bytes;
        e.4 += 1;
    }
    s.processes = order
        .into_iter()
        .map(|key| {
            let (sum, max, rss, written, count) = acc[&key];
            ProcessSummary {
                label: key.0,
                pid: key.1,
                cpu_avg_pct: sum / count.max(1) as f64,
                cpu_max_pct: max,
                rss_max_bytes: rss,
                written_bytes: written,
            }
        })
        .collect();
    s
}

/// Running totals of one process: CPU sum, CPU max, RSS max, bytes written, rows seen.
type ProcessAcc = (f64, f64, u64, u64, u64);

/// The sampling thread's state: the reused sysinfo handles and the previous disk counters.
struct Probe {
    system: System,
    networks: Networks,
    disks: DiskCounters,
    watched: Vec<(String, Pid)>,
}

impl Probe {
    fn new(processes: Vec<(String, u32)>) -> Probe {
        let mut probe = Probe {
            system: System::new(),
            networks: Networks::new_with_refreshed_list(),
            disks: DiskCounters::new(),
            watched: processes
                .into_iter()
                .map(|(l, p)| (l, Pid::from_u32(p)))
                .collect(),
        };
        // The first refresh sets the baselines the first sample is measured against.
        probe.refresh();
        probe.disks.delta();
        probe
    }

    fn refresh(&mut self) {
        self.system
            .refresh_cpu_specifics(CpuRefreshKind::nothing().with_cpu_usage());
        self.system
            .refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram());
        let pids: Vec<Pid> = self.watched.iter().map(|(_, p)| *p).collect();
        if !pids.is_empty() {
            self.system.refresh_processes_specifics(
                ProcessesToUpdate::Some(&pids),
                true,
                ProcessRefreshKind::nothing()
                    .with_cpu()
                    .with_memory()
                    .with_disk_usage(),
            );
        }
        self.networks.refresh(true);
    }

    fn watch(&mut self, label: String, pid: u32) {
        let pid = Pid::from_u32(pid);
        self.watched.push((label, pid));
        // Baseline for the new process, so its first CPU figure covers one interval.
        self.system.refresh_processes_specifics(
            ProcessesToUpdate::Some(&[pid]),
            true,
            ProcessRefreshKind::nothing()
                .with_cpu()
                .with_memory()
                .with_disk_usage(),
        );
    }

    fn sample(&mut self, t_s: f64) -> SystemRow {
        self.refresh();
        let cpus = self.system.cpus();
        let mut net_per_interface = BTreeMap::new();
        let (mut rx, mut tx) = (0u64, 0u64);
        for (name, data) in self.networks.list() {
            let c = NetCounts {
                rx_bytes: data.received(),
                tx_bytes: data.transmitted(),
            };
            rx += c.rx_bytes;
            tx += c.tx_bytes;
            net_per_interface.insert(name.clone(), c);
        }
        let (disk_read_bytes, disk_write_bytes) = self.disks.delta();
        let processes = self
            .watched
            .iter()
            .map(|(label, pid)| match self.system.process(*pid) {
                Some(p) => ProcessRow {
                    label: label.clone(),
                    pid: pid.as_u32(),
                    cpu_pct: cpu_share_of_machine(f64::from(p.cpu_usage()), cpus.len()),
                    rss_bytes: p.memory(),
                    written_bytes: p.disk_usage().written_bytes,
                },
                None => ProcessRow {
                    label: label.clone(),
                    pid: pid.as_u32(),
                    ..Default::default()
                },
            })
            .collect();
        SystemRow {
            t_s,
            cpu_total_pct: f64::from(self.system.global_cpu_usage()),
            cpu_per_core_pct: cpus.iter().map(|c| f64::from(c.cpu_usage())).collect(),
            mem_used_bytes: self.system.used_memory(),
            mem_total_bytes: self.system.total_memory(),
            net_rx_bytes: rx,
            net_tx_bytes: tx,
            net_per_interface,
            disk_read_bytes,
            disk_write_bytes,
            processes,
        }
    }
}

fn sample_loop(
    origin: Instant,
    interval: Duration,
    processes: Vec<(String, u32)>,
    commands: Receiver<Command>,
) -> Vec<SystemRow> {
    let mut probe = Probe::new(processes);
    let mut rows = Vec::new();
    let mut last = Instant::now();
    let mut next = last + interval;
    loop {
        let wait = next.saturating_duration_since(Instant::now());
        match commands.recv_timeout(wait) {
            Ok(Command::Watch(label, pid)) => probe.watch(label, pid),
            Ok(Command::Stop) | Err(RecvTimeoutError::Disconnected) => {
                // A last, short sample so the tail of the run is covered; skipped when too
                // short for sysinfo's CPU figures to mean anything.
                if last.elapsed() >= Duration::from_millis(100) {
                    rows.push(probe.sample(origin.elapsed().as_secs_f64()));
                }
                return rows;
            }
            Err(RecvTimeoutError::Timeout) => {
                rows.push(probe.sample(origin.elapsed().as_secs_f64()));
                last = Instant::now();
                // Keep to the schedule; if we fell behind, restart it rather than bursting.
                next += interval;
                if next <= last {
                    next = last + interval;
                }
            }
        }
    }
}

/// Cumulative disk read/write bytes of the machine's whole disks, and their last values.
struct DiskCounters {
    last: Option<(u64, u64)>,
    #[cfg(not(target_os = "linux"))]
    disks: sysinfo::Disks,
}

impl DiskCounters {
    fn new() -> DiskCounters {
        DiskCounters {
            last: None,
            #[cfg(not(target_os = "linux"))]
            disks: sysinfo::Disks::new_with_refreshed_list_specifics(
                sysinfo::DiskRefreshKind::nothing().with_io_usage(),
            ),
        }
    }

    /// Bytes read and written since the previous call (0, 0 on the first).
    fn delta(&mut self) -> (u64, u64) {
        let now = self.totals();
        let d = match self.last {
            Some((r, w)) => (now.0.saturating_sub(r), now.1.saturating_sub(w)),
            None => (0, 0),
        };
        self.last = Some(now);
        d
    }

    #[cfg(target_os = "linux")]
    fn totals(&mut self) -> (u64, u64) {
        std::fs::read_to_string("/proc/diskstats")
            .map(|s| parse_diskstats(&s, is_whole_disk))
            .unwrap_or((0, 0))
    }

    #[cfg(not(target_os = "linux"))]
    fn totals(&mut self) -> (u64, u64) {
        self.disks
            .refresh_specifics(true, sysinfo::DiskRefreshKind::nothing().with_io_usage());
        self.disks.list().iter().fold((0, 0), |(r, w), d| {
            let u = d.usage();
            (r + u.total_read_bytes, w + u.total_written_bytes)
        })
    }
}

/// Whether `dev` (a `/proc/diskstats` name) is a whole disk rather than a partition or a
/// loop/ram device, so no byte is counted twice.
#[cfg(target_os = "linux")]
fn is_whole_disk(dev: &str) -> bool {
    !(dev.starts_with("loop") || dev.starts_with("ram") || dev.starts_with("zram"))
        && std::path::Path::new("/sys/block").join(dev).exists()
}

/// Sums sectors read and written (× 512 bytes) over the devices `keep` accepts.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn parse_diskstats(text: &str, keep: impl Fn(&str) -> bool) -> (u64, u64) {
    const SECTOR_BYTES: u64 = 512;
    let mut read = 0;
    let mut written = 0;
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 10 || !keep(f[2]) {
            continue;
        }
        read += f[5].parse::<u64>().unwrap_or(0) * SECTOR_BYTES;
        written += f[9].parse::<u64>().unwrap_or(0) * SECTOR_BYTES;
    }
    (read, written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diskstats_sums_sectors_of_kept_devices() {
        let text = " 254 0 vda 76390 5838 4300618 142752 5695 37875 6712208 25852 0 8276\n\
                    254 1 vda1 1 0 100 0 1 0 100 0 0 0\n\
                    7 0 loop0 0 0 0 0 0 0 0 0 0 0\n";
        let (r, w) = parse_diskstats(text, |d| d == "vda");
        assert_eq!(r, 4_300_618 * 512);
        assert_eq!(w, 6_712_208 * 512);
    }

    #[test]
    fn sampler_records_rows_for_this_process() {
        let s = Sampler::start(
            Duration::from_millis(200),
            vec![("kbench".into(), std::process::id())],
        );
        // Burn a little CPU and write a little so the figures have something to show.
        let t = Instant::now();
        let mut x = 0u64;
        while t.elapsed() < Duration::from_millis(650) {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        let data = s.stop();
        assert!(data.rows.len() >= 3, "{} rows", data.rows.len());
        let row = &data.rows[0];
        assert!(row.mem_total_bytes > 0);
        assert!(!row.cpu_per_core_pct.is_empty());
        assert_eq!(row.processes.len(), 1);
        assert!(data.rows.iter().any(|r| r.processes[0].rss_bytes > 0));
        assert!(data.rows.windows(2).all(|w| w[0].t_s < w[1].t_s));
        assert_eq!(data.summary.samples, data.rows.len() as u64);
        assert_eq!(data.summary.processes[0].label, "kbench");
        assert!(data.summary.processes[0].cpu_max_pct > 10.0);
    }

    #[test]
    fn summarize_aggregates_means_maxima_and_sums() {
        let row = |cpu: f64, mem: u64, net: u64, pcpu: f64| SystemRow {
            cpu_total_pct: cpu,
            mem_used_bytes: mem,
            net_rx_bytes: net,
            net_tx_bytes: net,
            disk_write_bytes: 10,
            processes: vec![ProcessRow {
                label: "broker-1".into(),
                pid: 7,
                cpu_pct: pcpu,
                rss_bytes: mem / 2,
                written_bytes: 5,
            }],
            ..Default::default()
        };
        let rows = vec![row(10.0, 100, 1, 50.0), row(30.0, 300, 2, 150.0)];
        let s = summarize(&rows, Duration::from_secs(1));
        assert_eq!(s.cpu_avg_pct, 20.0);
        assert_eq!(s.cpu_max_pct, 30.0);
        assert_eq!(s.mem_max_bytes, 300);
        assert_eq!(s.net_bytes, 6);
        assert_eq!(s.disk_write_bytes, 20);
        assert_eq!(s.processes[0].cpu_avg_pct, 100.0);
        assert_eq!(s.processes[0].rss_max_bytes, 150);
        assert_eq!(s.processes[0].written_bytes, 10);
    }
}
