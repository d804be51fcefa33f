use super::*;
use crate::report::testdata;

#[test]
fn percentile_labels_name_the_nines() {
    assert_eq!(percentile_label(1.0), "0%");
    assert_eq!(percentile_label(10.0), "90%");
    assert_eq!(percentile_label(100.0), "99%");
    assert_eq!(percentile_label(1000.0), "99.9%");
    assert_eq!(percentile_label(10000.0), "99.99%");
    assert_eq!(percentile_label(20.0), "");
    assert_eq!(percentile_label(2.0), "50%");
}

#[test]
fn short_numbers() {
    assert_eq!(short(0.0), "0");
    assert_eq!(short(12_500.0), "12.5k");
    assert_eq!(short(2_000_000.0), "2M");
    assert_eq!(short(0.25), "0.25");
}

#[test]
fn every_chart_renders_to_png_and_svg() {
    let dir = tempfile::tempdir().unwrap();
    let data = testdata::run_data();
    for chart in run_charts(&data) {
        assert!(chart.has_data(), "{} has no data", chart.stem);
        let svg = write_chart(dir.path(), &chart).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.len() > 5_000,
            "{}",
            chart.stem
        );
        assert!(svg.contains("<text"), "{} has no text", chart.stem);
        let png = std::fs::read(dir.path().join(format!("{}.png", chart.stem))).unwrap();
        assert_eq!(&png[1..4], b"PNG");
        assert!(
            png.len() > 10_000,
            "{} png is {} bytes",
            chart.stem,
            png.len()
        );
    }
}

/// The texts of an SVG's `<text>` elements.
fn texts(svg: &str) -> Vec<String> {
    svg.split("</text>")
        .filter_map(|t| t.rsplit_once('>').map(|(_, s)| s.trim().to_string()))
        .collect()
}

#[test]
fn log_ticks_are_1_2_5_of_every_decade_and_labelled() {
    let close = |got: Vec<f64>, want: &[f64]| {
        got.len() == want.len() && got.iter().zip(want).all(|(g, w)| (g - w).abs() < 1e-9 * w)
    };
    let want = [0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0];
    assert!(
        close(log_ticks(0.3, 700.0), &want),
        "{:?}",
        log_ticks(0.3, 700.0)
    );
    assert!(close(log_ticks(1.0, 10.0), &[1.0, 2.0, 5.0, 10.0]));
    assert!(log_ticks(0.0, 10.0).is_empty() && log_ticks(5.0, 1.0).is_empty());
    // Drawn: a log latency axis from 0.012 to 0.6 ms labels every 1, 2 and 5 in it (the
    // time axis, 0..100 s, labels whole numbers, so these labels can only be the y axis).
    let mut c = Chart::time(
        "t",
        "latency".into(),
        "ms",
        &RunData::new(Default::default()),
    );
    c.y_log = true;
    let points = (0..=10)
        .map(|i| (10.0 * i as f64, 0.012 * 50f64.powf(i as f64 / 10.0)))
        .collect();
    c.lines.push(Line::new("p99", 0, points));
    let labels = texts(&render_svg(&c).unwrap());
    for want in ["0.01", "0.02", "0.05", "0.1", "0.2", "0.5"] {
        assert!(
            labels.iter().any(|l| l == want),
            "no {want} tick: {labels:?}"
        );
    }
}

#[test]
fn a_line_of_fewer_than_three_points_is_not_drawn_and_says_why() {
    let mut c = Chart::time("t", "t".into(), "ms", &RunData::new(Default::default()));
    c.lines
        .push(Line::new("p99", 0, vec![(1.0, 2.0), (2.0, 3.0)]));
    let why = c.not_drawn().expect("a chart of 2 points was drawn");
    assert!(
        why.contains("only 2 sampling interval(s)") && why.contains("at least 3"),
        "{why}"
    );
    // A target line alone is no chart either, and a short line beside a drawn one is left
    // out of the legend (no legend entry without its line).
    let mut target = Line::new("target", 1, vec![(0.0, 5.0), (3.0, 5.0)]);
    target.dashed = true;
    c.lines.push(target);
    assert!(c.not_drawn().is_some());
    c.lines.push(Line::new(
        "p50",
        2,
        vec![(1.0, 1.0), (2.0, 1.0), (3.0, 1.0)],
    ));
    assert_eq!(c.not_drawn(), None);
    let drawn: Vec<&str> = c.drawn_lines().iter().map(|l| l.label.as_str()).collect();
    assert_eq!(drawn, ["target", "p50"]);
    let labels = texts(&render_svg(&c).unwrap());
    assert!(!labels.iter().any(|l| l == "p99"), "{labels:?}");
    assert!(labels.iter().any(|l| l == "p50"), "{labels:?}");
}

#[test]
fn a_time_line_breaks_where_it_has_no_value() {
    let gap = (4.0, f64::NAN);
    let pts = [
        (1.0, 1.0),
        (2.0, 1.0),
        (3.0, 1.0),
        gap,
        (7.0, 2.0),
        (8.0, 2.0),
        gap,
    ];
    assert_eq!(segments(&pts), [&pts[..3], &pts[4..6]]);
    assert_eq!(segments(&pts[..3]), [&pts[..3]]);
    let line = Line::new("p99", 0, pts.to_vec());
    assert_eq!(line.measured(), 5);
}

#[test]
fn empty_run_still_renders() {
    let dir = tempfile::tempdir().unwrap();
    let data = RunData::new(Default::default());
    for chart in run_charts(&data) {
        write_chart(dir.path(), &chart).unwrap();
    }
}
