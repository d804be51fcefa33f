//! Comparison bar charts for `kbench compare`: one bar per run (throughput, p99 latency), in
//! input order, each bar labelled with its value.

use std::path::Path;

use anyhow::Context;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{color, plot_err, register_font, SIZE};

/// A bar chart, described: one bar per run.
#[derive(Debug, Clone)]
pub(crate) struct BarChart {
    /// File stem of the outputs.
    pub(crate) stem: &'static str,
    /// Title.
    pub(crate) title: String,
    /// y axis description with its unit.
    pub(crate) y_desc: String,
    /// (run label, value) in input order; a NaN value is a run without one (no bar, and
    /// [`BarChart::missing`] written where the bar would stand).
    pub(crate) bars: Vec<(String, f64)>,
    /// What a NaN bar says, e.g. "not recovered".
    pub(crate) missing: &'static str,
}

/// Size of one panel of a panel chart.
const PANEL: (u32, u32) = (640, 380);

/// Size of a panel chart of `n` panels: two a row.
fn panel_size(n: usize) -> (u32, u32) {
    let cols = n.clamp(1, 2) as u32;
    let rows = n.div_ceil(2).max(1) as u32;
    (PANEL.0 * cols, PANEL.1 * rows)
}

/// Draws `panels` (bar charts over the same runs) two a row in one figure,
/// `<dir>/<stem>.png` and `.svg`, so every figure of a comparison is seen at once; returns the
/// SVG text.
pub(crate) fn write_panel_chart(
    dir: &Path,
    stem: &str,
    panels: &[BarChart],
) -> anyhow::Result<String> {
    register_font();
    let size = panel_size(panels.len());
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        draw_panels(&root, panels).with_context(|| format!("drawing chart {stem}"))?;
        root.present().map_err(plot_err)?;
    }
    let svg_path = dir.join(format!("{stem}.svg"));
    std::fs::write(&svg_path, &svg).with_context(|| format!("writing {}", svg_path.display()))?;
    let png_path = dir.join(format!("{stem}.png"));
    let root = BitMapBackend::new(&png_path, size).into_drawing_area();
    draw_panels(&root, panels).with_context(|| format!("drawing {}", png_path.display()))?;
    root.present()
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", png_path.display()))?;
    Ok(svg)
}

fn draw_panels<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    panels: &[BarChart],
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(plot_err)?;
    let rows = panels.len().div_ceil(2).max(1);
    let cols = panels.len().clamp(1, 2);
    for (area, chart) in root.split_evenly((rows, cols)).iter().zip(panels) {
        draw(area, chart)?;
    }
    Ok(())
}

/// Draws `chart` as `<dir>/<stem>.png` and `.svg`; returns the SVG text.
pub(crate) fn write_bar_chart(dir: &Path, chart: &BarChart) -> anyhow::Result<String> {
    register_font();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        draw(&root, chart).with_context(|| format!("drawing chart {}", chart.stem))?;
        root.present().map_err(plot_err)?;
    }
    let svg_path = dir.join(format!("{}.svg", chart.stem));
    std::fs::write(&svg_path, &svg).with_context(|| format!("writing {}", svg_path.display()))?;
    let png_path = dir.join(format!("{}.png", chart.stem));
    let root = BitMapBackend::new(&png_path, SIZE).into_drawing_area();
    draw(&root, chart).with_context(|| format!("drawing {}", png_path.display()))?;
    root.present()
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", png_path.display()))?;
    Ok(svg)
}

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, chart: &BarChart) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(plot_err)?;
    let n = chart.bars.len().max(1);
    let y_max = chart
        .bars
        .iter()
        .map(|(_, v)| *v)
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max)
        .max(1e-9)
        * 1.15;
    let labels: Vec<String> = chart.bars.iter().map(|(l, _)| l.clone()).collect();
    let mut c = ChartBuilder::on(root)
        .caption(&chart.title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(48)
        .y_label_area_size(80)
        .build_cartesian_2d((0..n - 1).into_segmented(), 0.0..y_max)
        .map_err(plot_err)?;
    c.configure_mesh()
        .disable_x_mesh()
        .x_labels(n)
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => labels.get(*i).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .y_desc(&chart.y_desc)
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 16))
        .y_label_formatter(&|v| super::short(*v))
        .draw()
        .map_err(plot_err)?;
    let drawn = || {
        chart
            .bars
            .iter()
            .enumerate()
            .filter(|(_, (_, v))| v.is_finite())
    };
    c.draw_series(drawn().map(|(i, (_, v))| {
        let mut r = Rectangle::new(
            [
                (SegmentValue::Exact(i), 0.0),
                (SegmentValue::Exact(i + 1), *v),
            ],
            color(i).filled(),
        );
        r.set_margin(0, 0, 20, 20);
        r
    }))
    .map_err(plot_err)?;
    c.draw_series(chart.bars.iter().enumerate().map(|(i, (_, v))| {
        let (text, y) = match v.is_finite() {
            true => (super::short(*v), *v),
            false => (chart.missing.to_string(), 0.0),
        };
        Text::new(
            text,
            (SegmentValue::CenterOf(i), y),
            TextStyle::from(("sans-serif", 14).into_font())
                .pos(Pos::new(HPos::Center, VPos::Bottom)),
        )
    }))
    .map_err(plot_err)?;
    Ok(())
}
