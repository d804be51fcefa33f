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
    let highest = chart
        .bars
        .iter()
        .map(|(_, v)| *v)
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    // Nothing above zero (every cell 0 or without a value): a 0..1 axis, not a hair-thin range
    // whose ticks all read "0".
    let y_max = if highest > 0.0 { highest * 1.15 } else { 1.0 };
    // Each bar's label wrapped to the bar's width, drawn under it line by line (plotters'
    // own axis labels are one line each and ran into each other on a matrix's cells).
    let (w, _) = root.dim_in_pixel();
    let per_bar = (w.saturating_sub(110) / n as u32) as usize;
    let labels: Vec<Vec<String>> = chart
        .bars
        .iter()
        .map(|(l, _)| wrap(l, (per_bar / LABEL_CHAR_W).max(6)))
        .collect();
    let label_lines = labels.iter().map(Vec::len).max().unwrap_or(1) as u32;
    let mut c = ChartBuilder::on(root)
        .caption(&chart.title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(16 + LABEL_LINE_H as u32 * label_lines)
        .y_label_area_size(80)
        .build_cartesian_2d((0..n - 1).into_segmented(), 0.0..y_max)
        .map_err(plot_err)?;
    c.configure_mesh()
        .disable_x_mesh()
        .x_labels(n)
        .x_label_formatter(&|_| String::new())
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
    let font =
        TextStyle::from(("sans-serif", 13).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
    // backend_coord is in the whole figure's pixels; a panel draws relative to its corner.
    let (x0, y0) = root.get_base_pixel();
    for (i, lines) in labels.iter().enumerate() {
        let (x, y) = c.backend_coord(&(SegmentValue::CenterOf(i), 0.0));
        let (x, y) = (x - x0, y - y0);
        for (k, line) in lines.iter().enumerate() {
            root.draw(&Text::new(
                line.clone(),
                (x, y + 10 + LABEL_LINE_H * k as i32),
                font.clone(),
            ))
            .map_err(plot_err)?;
        }
    }
    Ok(())
}

/// Average width of a 13 px label character, and the height of a label line, pixels.
const LABEL_CHAR_W: usize = 7;
const LABEL_LINE_H: i32 = 16;

/// `text` in lines of at most `width` characters, broken at spaces (a longer word is a line
/// of its own).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for word in text.split_whitespace() {
        match lines.last_mut() {
            Some(l) if l.chars().count() + 1 + word.chars().count() <= width => {
                l.push(' ');
                l.push_str(word);
            }
            _ => lines.push(word.to_string()),
        }
    }
    if lines.is_empty() {
        lines.push(String::new());
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panel_with_no_value_above_zero_has_readable_ticks() {
        let dir = tempfile::tempdir().unwrap();
        let chart = BarChart {
            stem: "t",
            title: "time to recover".into(),
            y_desc: "s".into(),
            bars: vec![("a".into(), f64::NAN), ("b".into(), f64::NAN)],
            missing: "not recovered",
        };
        let svg = write_bar_chart(dir.path(), &chart).unwrap();
        let texts: Vec<&str> = svg
            .split("</text>")
            .filter_map(|t| t.rsplit_once('>').map(|(_, s)| s.trim()))
            .collect();
        let count = |want: &str| texts.iter().filter(|t| **t == want).count();
        assert!(count("0") <= 1, "ticks read 0: {texts:?}");
        assert!(count("0.5") == 1, "no 0..1 axis: {texts:?}");
        assert_eq!(count("not recovered"), 2, "{texts:?}");
    }

    #[test]
    fn labels_wrap_at_spaces() {
        assert_eq!(
            wrap("acks=all minISR=2 RF=3", 10),
            ["acks=all", "minISR=2", "RF=3"]
        );
        assert_eq!(wrap("acks=0 RF=1", 12), ["acks=0 RF=1"]);
        assert_eq!(wrap("", 5), [""]);
    }
}
