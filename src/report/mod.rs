//! The report of a run: everything `kbench run` leaves in its output directory, and the
//! `kbench report RUN_DIR` command that redraws it.
//!
//! A run directory holds:
//! - `summary.json` — [`Summary`], the whole-run figures and the verdict (schema in `summary`);
//! - `timeseries.csv` — one row per sampling interval of the workload ([`csv`]);
//! - `system.csv` — one row per interval of the system sampler ([`csv`]);
//! - `produce_latency.hgrm`, `e2e_latency.hgrm` — HdrHistogram percentile distributions in ms
//!   ([`hgrm`]);
//! - `produce_latency.hdr`, `e2e_latency.hdr` — the same histograms in HdrHistogram's V2
//!   serialised form (base64), so runs of several hosts can be merged;
//! - one PNG and one SVG per chart ([`charts`]), and `report.html` holding them all ([`html`]).
//!
//! Every writer is a pure function from results to bytes; this module only decides file
//! names and does the I/O. [`prepare_dir`] is called before the run so a bad output path fails
//! in the first second, not after the benchmark.

pub mod csv;
pub mod hgrm;
pub mod html;
pub mod terminal;

pub(crate) mod charts;

use std::path::{Path, PathBuf};

use anyhow::Context;

pub use terminal::{run_line, terminal_table};

use crate::summary::{RunData, Summary};

/// File name of the summary document.
pub const SUMMARY_JSON: &str = "summary.json";
/// File name of the workload time series.
pub const TIMESERIES_CSV: &str = "timeseries.csv";
/// File name of the system sampler's rows.
pub const SYSTEM_CSV: &str = "system.csv";
/// File name of the HTML report.
pub const REPORT_HTML: &str = "report.html";
/// Stem of the produce latency histogram files (`.hgrm`, `.hdr`).
pub const PRODUCE_LATENCY: &str = "produce_latency";
/// Stem of the end-to-end latency histogram files (`.hgrm`, `.hdr`).
pub const E2E_LATENCY: &str = "e2e_latency";

/// Creates `dir` (and its parents) and creates the report's main files in it, so an
/// unwritable or invalid output path is reported before the run starts.
pub fn prepare_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| {
        format!(
            "cannot create the output directory {} (choose another with --out DIR)",
            dir.display()
        )
    })?;
    for name in [SUMMARY_JSON, TIMESERIES_CSV, SYSTEM_CSV, REPORT_HTML] {
        let path = dir.join(name);
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| {
                format!(
                    "cannot create {} (choose another output directory with --out DIR)",
                    path.display()
                )
            })?;
    }
    Ok(())
}

/// Writes every report file of a run into `dir` (which [`prepare_dir`] created).
pub fn write_run(dir: &Path, data: &RunData) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let summary = data.summary.to_json()?;
    write(dir, SUMMARY_JSON, summary.as_bytes())?;
    write(dir, TIMESERIES_CSV, &csv::timeseries_csv(&data.intervals)?)?;
    write(dir, SYSTEM_CSV, &csv::system_csv(&data.system.rows)?)?;
    for (stem, h) in [
        (PRODUCE_LATENCY, &data.produce_latency),
        (E2E_LATENCY, &data.e2e_latency),
    ] {
        write(
            dir,
            &format!("{stem}.hgrm"),
            hgrm::percentile_distribution(h).as_bytes(),
        )?;
        write(dir, &format!("{stem}.hdr"), hgrm::encode_hdr(h)?.as_bytes())?;
    }
    write_charts_and_html(dir, data)
}

/// Re-reads a run directory (`summary.json`, `timeseries.csv`, `system.csv`, the `.hdr`
/// histograms) and redraws its charts and `report.html`. A missing CSV or histogram gives
/// empty charts rather than an error; a missing or unreadable `summary.json` is an error.
pub fn rebuild(run_dir: &Path) -> anyhow::Result<()> {
    let data = read_run(run_dir)?;
    write_charts_and_html(run_dir, &data)
}

/// Reads a run directory back into [`RunData`] (see [`rebuild`] for what may be missing).
pub fn read_run(run_dir: &Path) -> anyhow::Result<RunData> {
    let summary = read_summary(&run_dir.join(SUMMARY_JSON))?;
    let mut data = RunData::new(summary);
    if let Some(bytes) = read_optional(&run_dir.join(TIMESERIES_CSV))? {
        data.intervals = csv::read_timeseries(&bytes)
            .with_context(|| format!("reading {}", run_dir.join(TIMESERIES_CSV).display()))?;
    }
    if let Some(bytes) = read_optional(&run_dir.join(SYSTEM_CSV))? {
        data.system.rows = csv::read_system(&bytes)
            .with_context(|| format!("reading {}", run_dir.join(SYSTEM_CSV).display()))?;
    }
    data.system.summary = data.summary.system.clone();
    for (stem, h) in [
        (PRODUCE_LATENCY, &mut data.produce_latency),
        (E2E_LATENCY, &mut data.e2e_latency),
    ] {
        let path = run_dir.join(format!("{stem}.hdr"));
        if let Some(bytes) = read_optional(&path)? {
            let text = String::from_utf8_lossy(&bytes);
            *h = hgrm::decode_hdr(&text).with_context(|| format!("reading {}", path.display()))?;
        }
    }
    Ok(data)
}

/// Reads a `summary.json`.
pub fn read_summary(path: &Path) -> anyhow::Result<Summary> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read {} (is this a kbench run directory?)",
            path.display()
        )
    })?;
    let value: Option<serde_json::Value> = serde_json::from_str(&text).ok();
    if let Some(set) = value.filter(|v| v["kind"] == crate::summary::RUN_SET_KIND) {
        anyhow::bail!(
            "{} is the summary of a run set of {} runs, not of one run: give the set's folder, \
             or one of its run-K folders",
            path.display(),
            set["runs"]
        );
    }
    Summary::from_json(&text).map_err(|e| match e {
        crate::summary::SchemaError::Json(e) => {
            anyhow::Error::new(e).context(format!("{} is not a kbench summary", path.display()))
        }
        e => anyhow::anyhow!("{}: {e}", path.display()),
    })
}

/// Paths of every chart file the run `data` gets in `dir` (PNG and SVG of each chart drawn).
pub fn chart_files(dir: &Path, data: &RunData) -> Vec<PathBuf> {
    charts::run_charts(data)
        .iter()
        .filter(|c| c.not_drawn().is_none())
        .flat_map(|c| ["png", "svg"].map(|ext| dir.join(format!("{}.{ext}", c.stem))))
        .collect()
}

/// Draws every chart that has enough data and writes `report.html`; a chart that is not drawn
/// gets no file (a stale one from an earlier drawing is removed) and a sentence in the page.
fn write_charts_and_html(dir: &Path, data: &RunData) -> anyhow::Result<()> {
    let mut figures = Vec::new();
    for chart in charts::run_charts(data) {
        let not_drawn = chart.not_drawn();
        let svg = match &not_drawn {
            None => Some(charts::write_chart(dir, &chart)?),
            Some(_) => {
                for ext in ["png", "svg"] {
                    let _ = std::fs::remove_file(dir.join(format!("{}.{ext}", chart.stem)));
                }
                None
            }
        };
        figures.push(html::Figure {
            title: chart.title.clone(),
            svg,
            not_drawn,
            events: chart.events.clone(),
        });
    }
    write(
        dir,
        REPORT_HTML,
        html::report_html(&data.summary, &figures).as_bytes(),
    )
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
    let path = dir.join(name);
    std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))
}

fn read_optional(path: &Path) -> anyhow::Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(b) if b.is_empty() => Ok(None),
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

#[cfg(test)]
pub(crate) mod testdata;

#[cfg(test)]
mod tests;
