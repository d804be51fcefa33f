//! Charts of a run, drawn with plotters, one chart per file, each as PNG and SVG.
//!
//! Each submodule turns run data into one chart *description* (a [`Chart`]: lines, axes,
//! units, warm-up and events) without drawing anything; this module draws descriptions onto
//! a PNG or SVG backend. Keeping the data → description step pure makes the charts testable
//! and keeps the plotters code in one place.
//!
//! Fonts: text is rendered with plotters' `ab_glyph` feature from DejaVu Sans embedded in the
//! binary (`assets/fonts/`, Bitstream Vera licence), so charts render the same on a headless
//! machine with no fontconfig and no system fonts.

pub(crate) mod comparison;
pub(crate) mod cpu;
pub(crate) mod disk;
pub(crate) mod latency_distribution;
pub(crate) mod latency_over_time;
pub(crate) mod memory;
pub(crate) mod network;
pub(crate) mod throughput;

use std::path::Path;
use std::sync::Once;

use anyhow::Context;
use plotters::coord::combinators::BindKeyPoints;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::summary::{Event, RunData};

/// Size of every chart, pixels.
pub(crate) const SIZE: (u32, u32) = (1024, 512);

/// Colours of a chart's lines, in order.
const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// The colour of the `i`-th line.
pub(crate) fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

pub(crate) fn register_font() {
    static FONT: Once = Once::new();
    FONT.call_once(|| {
        let bytes: &'static [u8] = include_bytes!("../../../assets/fonts/DejaVuSans.ttf");
        if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_err() {
            tracing::warn!("the embedded chart font did not load; chart text may be missing");
        }
    });
}

/// One line of a chart.
#[derive(Debug, Clone)]
pub(crate) struct Line {
    /// Legend text.
    pub(crate) label: String,
    /// Index into the palette.
    pub(crate) color: usize,
    /// (x, y) points in axis units; a NaN y is a gap (no value there: the line breaks).
    pub(crate) points: Vec<(f64, f64)>,
    /// Drawn dashed (a reference such as a target rate) rather than solid.
    pub(crate) dashed: bool,
}

impl Line {
    /// Points with a value (not gaps).
    pub(crate) fn measured(&self) -> usize {
        self.points.iter().filter(|p| p.1.is_finite()).count()
    }

    pub(crate) fn new(label: impl Into<String>, color: usize, points: Vec<(f64, f64)>) -> Line {
        Line {
            label: label.into(),
            color,
            points,
            dashed: false,
        }
    }
}

/// How the x axis is scaled and labelled.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum XAxis {
    /// Seconds since the start of the run; warm-up shaded, events drawn.
    Time,
    /// `1/(1-q)` on a log scale, labelled as percentiles (the HdrHistogram plot).
    Percentile,
    /// Achieved rate (msgs/s), linear: the latency-throughput curve, one marked point per run.
    Rate,
}

/// A line chart, described.
#[derive(Debug, Clone)]
pub(crate) struct Chart {
    /// File stem of the outputs (`<stem>.png`, `<stem>.svg`).
    pub(crate) stem: &'static str,
    /// Title drawn above the chart.
    pub(crate) title: String,
    /// x axis kind.
    pub(crate) x: XAxis,
    /// y axis description, with its unit.
    pub(crate) y_desc: String,
    /// y axis on a log scale.
    pub(crate) y_log: bool,
    /// The lines.
    pub(crate) lines: Vec<Line>,
    /// End of the warm-up period, seconds (shaded from 0).
    pub(crate) warmup_end_s: Option<f64>,
    /// Events (faults, phases, ...) as (seconds, label), drawn as numbered vertical lines; the
    /// numbers are explained by a table under the chart ([`Chart::events`] in the report).
    pub(crate) events: Vec<(f64, String)>,
    /// Why the chart is not drawn even if it has points (set by the chart's builder, e.g. a
    /// run too short for per-interval rates to mean anything); see [`Chart::not_drawn`].
    pub(crate) skip: Option<String>,
}

/// Fewest points a line needs to be drawn: with one or two, a "line" shows nothing a number
/// would not, and per-interval rates of so few intervals mislead.
pub(crate) const MIN_POINTS: usize = 3;

impl Chart {
    /// A time chart decorated with the run's warm-up period and events.
    pub(crate) fn time(stem: &'static str, title: String, y_desc: &str, data: &RunData) -> Chart {
        Chart {
            stem,
            title,
            x: XAxis::Time,
            y_desc: y_desc.to_string(),
            y_log: false,
            lines: Vec::new(),
            warmup_end_s: warmup_end(data),
            skip: None,
            events: data
                .summary
                .events
                .iter()
                .filter(|e| e.kind != Event::WARMUP_END)
                .map(|e| {
                    let label = if e.detail.is_empty() {
                        e.kind.clone()
                    } else {
                        format!("{}: {}", e.kind, e.detail)
                    };
                    (e.t_s, label)
                })
                .collect(),
        }
    }

    /// Whether any line has a point.
    #[cfg(test)]
    pub(crate) fn has_data(&self) -> bool {
        self.lines.iter().any(|l| l.measured() > 0)
    }

    /// The lines that are drawn (and named in the legend): those with at least
    /// [`MIN_POINTS`] points. A reference line (dashed: a target rate) is drawn only beside a
    /// measured one.
    pub(crate) fn drawn_lines(&self) -> Vec<&Line> {
        let measured: Vec<&Line> = self
            .lines
            .iter()
            .filter(|l| !l.dashed && l.measured() >= MIN_POINTS)
            .collect();
        if measured.is_empty() {
            return measured;
        }
        self.lines
            .iter()
            .filter(|l| l.measured() >= MIN_POINTS || (l.dashed && l.measured() > 0))
            .collect()
    }

    /// Why the chart is not drawn, in words for the report, or `None` when it is.
    pub(crate) fn not_drawn(&self) -> Option<String> {
        if let Some(why) = &self.skip {
            return Some(why.clone());
        }
        if !self.drawn_lines().is_empty() {
            return None;
        }
        let most = self.lines.iter().map(Line::measured).max().unwrap_or(0);
        Some(match (self.x, most) {
            (_, 0) => "nothing was measured for it in this run".to_string(),
            (XAxis::Time, n) => format!(
                "only {n} sampling interval(s) had a value; a chart needs at least {MIN_POINTS} \
                 (run longer, or set a shorter [sampling] interval)"
            ),
            (XAxis::Percentile, n) => {
                format!("only {n} distinct latency value(s) were recorded")
            }
            (XAxis::Rate, n) => {
                format!("only {n} run(s) measured it; a curve needs at least {MIN_POINTS} rates")
            }
        })
    }
}

/// End of the warm-up period: the `warmup_end` event, else the end of the last interval marked
/// `in_warmup`.
pub(crate) fn warmup_end(data: &RunData) -> Option<f64> {
    data.summary
        .events
        .iter()
        .find(|e| e.kind == Event::WARMUP_END)
        .map(|e| e.t_s)
        .or_else(|| {
            data.intervals
                .iter()
                .filter(|r| r.in_warmup)
                .map(|r| r.t_s)
                .fold(None, |m: Option<f64>, t| Some(m.map_or(t, |m| m.max(t))))
        })
}

/// Each system row's (time, length of its interval) in seconds; the first row's interval is
/// the sampling interval (or its own time when that is unknown).
pub(crate) fn system_intervals(data: &RunData) -> Vec<(f64, f64)> {
    let rows = &data.system.rows;
    let nominal = data.system.summary.interval_s;
    rows.iter()
        .enumerate()
        .map(|(i, r)| {
            let dt = if i == 0 {
                if nominal > 0.0 {
                    nominal
                } else {
                    r.t_s
                }
            } else {
                r.t_s - rows[i - 1].t_s
            };
            (r.t_s, dt.max(1e-3))
        })
        .collect()
}

/// Whether a watched process label names a broker (`broker-1`, `kbroker-2`, ...).
pub(crate) fn is_broker(label: &str) -> bool {
    label.contains("broker")
}

/// Every chart of a run, described, in report order.
pub(crate) fn run_charts(data: &RunData) -> Vec<Chart> {
    vec![
        throughput::messages(data),
        throughput::mebibytes(data),
        latency_over_time::produce(data),
        latency_over_time::end_to_end(data),
        latency_distribution::chart(data),
        cpu::chart(data),
        memory::chart(data),
        network::chart(data),
        disk::chart(data),
    ]
}

/// Draws `chart` as `<dir>/<stem>.png` and `<dir>/<stem>.svg`; returns the SVG text.
pub(crate) fn write_chart(dir: &Path, chart: &Chart) -> anyhow::Result<String> {
    let svg = render_svg(chart)?;
    let svg_path = dir.join(format!("{}.svg", chart.stem));
    std::fs::write(&svg_path, &svg).with_context(|| format!("writing {}", svg_path.display()))?;
    let png_path = dir.join(format!("{}.png", chart.stem));
    render_png(chart, &png_path)?;
    Ok(svg)
}

/// Draws `chart` as SVG text.
pub(crate) fn render_svg(chart: &Chart) -> anyhow::Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        draw(&root, chart).with_context(|| format!("drawing chart {} (SVG)", chart.stem))?;
        root.present()
            .map_err(|e| anyhow::anyhow!("drawing chart {} (SVG): {e}", chart.stem))?;
    }
    Ok(svg)
}

/// Draws `chart` as a PNG file at `path`.
pub(crate) fn render_png(chart: &Chart, path: &Path) -> anyhow::Result<()> {
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    draw(&root, chart).with_context(|| format!("drawing {}", path.display()))?;
    root.present()
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
    Ok(())
}

pub(crate) fn plot_err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

/// Height of the title band above the plot, pixels.
const TITLE_H: u32 = 36;
/// Rows of event numbers above the plot area, and their height in pixels.
const EVENT_ROWS: usize = 3;
const EVENT_ROW_H: i32 = 13;

/// Width of the legend panel right of the plot, pixels: wide enough for the longest label
/// (14 px DejaVu Sans averages about 7.5 px a character) so the legend never covers data and
/// no label is cut at the edge.
fn legend_width(lines: &[&Line]) -> u32 {
    let longest = lines
        .iter()
        .map(|l| l.label.chars().count())
        .chain(std::iter::once("events 1.. (table below)".len()))
        .max()
        .unwrap_or(0);
    (longest as u32 * 15 / 2 + 52).clamp(180, 340)
}
/// Colour of the event markers: grey, so they cannot be taken for a data or target line.
const EVENT_COLOR: RGBColor = RGBColor(90, 90, 90);
/// Colour of the target (reference) line: black, dashed.
const TARGET_COLOR: RGBColor = RGBColor(0, 0, 0);

/// Draws a described chart on any plotters backend: the plot on the left, the legend in a
/// panel of its own on the right, event numbers above the plot area.
pub(crate) fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    chart: &Chart,
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    register_font();
    root.fill(&WHITE).map_err(plot_err)?;
    let lines = chart.drawn_lines();
    let (mut x_min, mut x_max) = (f64::INFINITY, f64::NEG_INFINITY);
    let (mut y_min_pos, mut y_max) = (f64::INFINITY, 0.0f64);
    for &(x, y) in lines.iter().flat_map(|l| l.points.iter()) {
        x_min = x_min.min(x);
        x_max = x_max.max(x);
        if y > 0.0 {
            y_min_pos = y_min_pos.min(y);
        }
        y_max = y_max.max(y);
    }
    for (t, _) in &chart.events {
        x_max = x_max.max(*t);
    }
    if let Some(w) = chart.warmup_end_s {
        x_max = x_max.max(w);
    }
    if !x_max.is_finite() {
        x_max = 1.0;
    }
    if y_max <= 0.0 {
        y_max = 1.0;
    }
    let (w, _) = root.dim_in_pixel();
    // The title in a band of its own, then the event numbers' rows above the plot area (in its
    // top margin), so numbers never run into the title.
    let (title_band, body) = root.split_vertically(TITLE_H);
    let (plot, legend) = body.split_horizontally(w.saturating_sub(legend_width(&lines)));
    title_band
        .draw(&Text::new(
            chart.title.clone(),
            ((w.saturating_sub(legend_width(&lines)) / 2) as i32, 8),
            TextStyle::from(("sans-serif", 22).into_font()).pos(Pos::new(HPos::Center, VPos::Top)),
        ))
        .map_err(plot_err)?;
    let mut builder = ChartBuilder::on(&plot);
    builder
        .margin(12)
        .margin_top(if chart.events.is_empty() {
            12
        } else {
            EVENT_ROWS as u32 * EVENT_ROW_H as u32 + 8
        })
        .margin_right(16)
        .x_label_area_size(48)
        .y_label_area_size(80);
    let mut markers = Vec::new();
    match (chart.x, chart.y_log) {
        (XAxis::Time, false) => {
            let mut c = builder
                .build_cartesian_2d(0.0..x_max.max(1e-3), 0.0..y_max * 1.1)
                .map_err(plot_err)?;
            c.configure_mesh()
                .x_desc("time (s)")
                .y_desc(&chart.y_desc)
                .label_style(("sans-serif", 14))
                .axis_desc_style(("sans-serif", 16))
                .y_label_formatter(&|v| short(*v))
                .draw()
                .map_err(plot_err)?;
            markers = decorate_time(&mut c, chart, 0.0, y_max * 1.1)?;
            draw_lines(&mut c, &lines)?;
        }
        (XAxis::Time, true) => {
            let lo = if y_min_pos.is_finite() {
                y_min_pos * 0.8
            } else {
                0.01
            };
            let hi = (y_max * 1.5).max(lo * 10.0);
            let mut c = builder
                .build_cartesian_2d(
                    0.0..x_max.max(1e-3),
                    (lo..hi).log_scale().with_key_points(log_ticks(lo, hi)),
                )
                .map_err(plot_err)?;
            c.configure_mesh()
                .x_desc("time (s)")
                .y_desc(&chart.y_desc)
                .label_style(("sans-serif", 14))
                .axis_desc_style(("sans-serif", 16))
                .y_label_formatter(&|v| short(*v))
                .draw()
                .map_err(plot_err)?;
            markers = decorate_time(&mut c, chart, lo, hi)?;
            draw_lines(&mut c, &lines)?;
        }
        (XAxis::Rate, _) => {
            let lo = if y_min_pos.is_finite() {
                y_min_pos * 0.8
            } else {
                0.01
            };
            let hi = (y_max * 1.5).max(lo * 10.0);
            let pad = ((x_max - x_min) * 0.05).max(1.0);
            let mut c = builder
                .build_cartesian_2d(
                    (x_min - pad).max(0.0)..x_max + pad,
                    (lo..hi).log_scale().with_key_points(log_ticks(lo, hi)),
                )
                .map_err(plot_err)?;
            c.configure_mesh()
                .x_desc("achieved produce rate (acknowledged msgs/s)")
                .y_desc(&chart.y_desc)
                .label_style(("sans-serif", 14))
                .axis_desc_style(("sans-serif", 16))
                .x_label_formatter(&|v| short(*v))
                .y_label_formatter(&|v| short(*v))
                .draw()
                .map_err(plot_err)?;
            draw_lines(&mut c, &lines)?;
            for line in &lines {
                let col = color(line.color);
                c.draw_series(line.points.iter().map(|&p| Circle::new(p, 4, col.filled())))
                    .map_err(plot_err)?;
            }
        }
        (XAxis::Percentile, _) => {
            // From the median's 2 to at least 99.99 %, a decade past the largest point.
            let decades = x_max.max(10.0).log10().ceil();
            let hi_x = 10f64.powf(decades.max(4.0));
            // Ticks at the median and every nine: 50 %, 90 %, 99 %, ...
            let mut ticks = vec![1.0, 2.0];
            let mut t = 10.0;
            while t <= hi_x * 1.001 {
                ticks.push(t);
                t *= 10.0;
            }
            let mut c = builder
                .build_cartesian_2d(
                    (1.0..hi_x).log_scale().with_key_points(ticks),
                    0.0..y_max * 1.1,
                )
                .map_err(plot_err)?;
            c.configure_mesh()
                .x_desc("percentile")
                .y_desc(&chart.y_desc)
                .label_style(("sans-serif", 14))
                .axis_desc_style(("sans-serif", 16))
                .x_label_formatter(&|x| percentile_label(*x))
                .y_label_formatter(&|v| short(*v))
                .draw()
                .map_err(plot_err)?;
            draw_lines(&mut c, &lines)?;
        }
    }
    draw_event_numbers(root, &markers)?;
    draw_legend(&legend, chart, &lines)
}

/// Tick positions of a log axis over `lo..hi`: 1, 2 and 5 of every decade.
pub(crate) fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let mut out = Vec::new();
    if !(lo > 0.0 && hi > lo) {
        return out;
    }
    let mut decade = 10f64.powf(lo.log10().floor());
    while decade <= hi {
        for m in [1.0, 2.0, 5.0] {
            let v = m * decade;
            if v >= lo && v <= hi {
                out.push(v);
            }
        }
        decade *= 10.0;
    }
    out
}

/// Shades the warm-up period and draws each event as a thin grey dotted vertical line; returns
/// each event's (number, x pixel, top pixel) for [`draw_event_numbers`].
fn decorate_time<'a, DB, Y>(
    c: &mut ChartContext<'a, DB, Cartesian2d<plotters::coord::types::RangedCoordf64, Y>>,
    chart: &Chart,
    y_lo: f64,
    y_hi: f64,
) -> anyhow::Result<Vec<(usize, i32, i32)>>
where
    DB: DrawingBackend + 'a,
    DB::ErrorType: 'static,
    Y: Ranged<ValueType = f64>,
{
    if let Some(w) = chart.warmup_end_s.filter(|w| *w > 0.0) {
        // Warm-up runs from the producers' start (set-up before it is not warm-up).
        let from = chart
            .events
            .iter()
            .find(|(_, label)| label.starts_with("producers_start"))
            .map_or(0.0, |(t, _)| *t)
            .min(w);
        c.draw_series(std::iter::once(Rectangle::new(
            [(from, y_lo), (w, y_hi)],
            RGBColor(200, 200, 200).mix(0.35).filled(),
        )))
        .map_err(plot_err)?;
    }
    let mut markers = Vec::new();
    for (i, (t, _)) in chart.events.iter().enumerate() {
        c.draw_series(DashedLineSeries::new(
            [(*t, y_lo), (*t, y_hi)],
            2,
            4,
            EVENT_COLOR.stroke_width(1),
        ))
        .map_err(plot_err)?;
        let (x, y) = c.backend_coord(&(*t, y_hi));
        markers.push((i + 1, x, y));
    }
    Ok(markers)
}

/// The event numbers above the plot area, each over its line; numbers that would touch the
/// previous one in a row go one row up (three rows), so close events stay readable.
fn draw_event_numbers<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    markers: &[(usize, i32, i32)],
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    const ROWS: usize = EVENT_ROWS;
    const ROW_H: i32 = EVENT_ROW_H;
    let font = ("sans-serif", 12).into_font().color(&EVENT_COLOR);
    let mut last_x = [i32::MIN / 2; ROWS];
    for &(n, x, top) in markers {
        let label = n.to_string();
        let width = 8 * label.len() as i32 + 4;
        let row = (0..ROWS)
            .find(|&r| x - last_x[r] >= width)
            .unwrap_or(n % ROWS);
        last_x[row] = x;
        let y = top - 4 - ROW_H * row as i32;
        root.draw(&Text::new(
            label,
            (x, y),
            font.pos(Pos::new(HPos::Center, VPos::Bottom)),
        ))
        .map_err(plot_err)?;
    }
    Ok(())
}

fn draw_lines<'a, DB, X, Y>(
    c: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    lines: &[&Line],
) -> anyhow::Result<()>
where
    DB: DrawingBackend + 'a,
    DB::ErrorType: 'static,
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    for (i, line) in lines.iter().enumerate() {
        if line.dashed {
            c.draw_series(DashedLineSeries::new(
                line.points.iter().copied(),
                10,
                6,
                TARGET_COLOR.stroke_width(2),
            ))
            .map_err(plot_err)?;
        } else {
            let style = color(line.color).stroke_width(line_width(lines, i));
            for part in segments(&line.points) {
                if let [p] = part {
                    c.draw_series(std::iter::once(Circle::new(*p, 2, style.filled())))
                        .map_err(plot_err)?;
                } else {
                    c.draw_series(LineSeries::new(part.iter().copied(), style))
                        .map_err(plot_err)?;
                }
            }
        }
    }
    Ok(())
}

/// Stroke width of the `i`-th of the drawn `lines`: the first solid line of several is drawn
/// wide, under the others, so where two lines coincide (produced = consumed) both show: the
/// first as a border around the next.
fn line_width(lines: &[&Line], i: usize) -> u32 {
    let solid = lines.iter().filter(|l| !l.dashed).count();
    let first_solid = lines.iter().position(|l| !l.dashed);
    if solid > 1 && first_solid == Some(i) {
        5
    } else {
        2
    }
}

/// A line's runs of points between its gaps (NaN values: e.g. no acknowledgement while a
/// broker was down), so the chart shows a gap there rather than a straight line through
/// intervals that measured nothing.
pub(crate) fn segments(points: &[(f64, f64)]) -> Vec<&[(f64, f64)]> {
    points
        .split(|p| !p.1.is_finite())
        .filter(|s| !s.is_empty())
        .collect()
}

/// The legend in its own panel: one entry per drawn line (a reference line dashed, as on the
/// plot), the warm-up shade, and a pointer to the event table.
fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    chart: &Chart,
    lines: &[&Line],
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let font = TextStyle::from(("sans-serif", 14).into_font());
    let mut y = 30;
    let row = |y: i32| (y, y + 22);
    for (i, line) in lines.iter().enumerate() {
        let (mid, next) = row(y);
        if line.dashed {
            for x0 in [8, 22] {
                area.draw(&PathElement::new(
                    [(x0, mid), (x0 + 9, mid)],
                    TARGET_COLOR.stroke_width(2),
                ))
                .map_err(plot_err)?;
            }
        } else {
            area.draw(&PathElement::new(
                [(8, mid), (32, mid)],
                color(line.color).stroke_width(line_width(lines, i).max(3)),
            ))
            .map_err(plot_err)?;
        }
        area.draw(&Text::new(
            line.label.clone(),
            (40, mid),
            font.clone().pos(Pos::new(HPos::Left, VPos::Center)),
        ))
        .map_err(plot_err)?;
        y = next;
    }
    if chart.x == XAxis::Time && chart.warmup_end_s.is_some_and(|w| w > 0.0) {
        let (mid, next) = row(y);
        area.draw(&Rectangle::new(
            [(8, mid - 7), (32, mid + 7)],
            RGBColor(200, 200, 200).mix(0.6).filled(),
        ))
        .map_err(plot_err)?;
        area.draw(&Text::new(
            "warm-up",
            (40, mid),
            font.clone().pos(Pos::new(HPos::Left, VPos::Center)),
        ))
        .map_err(plot_err)?;
        y = next;
    }
    if !chart.events.is_empty() {
        let (mid, _) = row(y);
        area.draw(&PathElement::new(
            [(20, mid - 9), (20, mid + 9)],
            EVENT_COLOR.stroke_width(1),
        ))
        .map_err(plot_err)?;
        area.draw(&Text::new(
            "events 1.. (table below)",
            (40, mid),
            font.pos(Pos::new(HPos::Left, VPos::Center)),
        ))
        .map_err(plot_err)?;
    }
    Ok(())
}

/// Axis numbers without noise: `1.5k`, `2M`, `0.25`.
pub(crate) fn short(v: f64) -> String {
    let a = v.abs();
    let (x, suffix) = if a >= 1e9 {
        (v / 1e9, "G")
    } else if a >= 1e6 {
        (v / 1e6, "M")
    } else if a >= 1e4 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    let s = if x.abs() >= 100.0 || x.fract() == 0.0 {
        format!("{x:.0}")
    } else if x.abs() >= 1.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.3}")
    };
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    format!("{s}{suffix}")
}

/// Label of a `1/(1-q)` axis position: 2 is the median `50%`, powers of ten become `90%`, `99%`,
/// `99.9%`, ...; other
/// positions get no label.
pub(crate) fn percentile_label(x: f64) -> String {
    if (x - 2.0).abs() < 1e-9 {
        return "50%".into();
    }
    let l = x.log10();
    if (l - l.round()).abs() > 1e-6 {
        return String::new();
    }
    let n = l.round() as i32;
    if n <= 0 {
        return "0%".into();
    }
    let pct = 100.0 * (1.0 - 10f64.powi(-n));
    let decimals = (n - 2).max(0) as usize;
    format!("{pct:.decimals$}%")
}

#[cfg(test)]
mod tests;
