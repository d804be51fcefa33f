//! report.html as a person sees it: a short real run (the embedded kbroker, real clients), its
//! page rendered by headless Chromium (Debian's `chromium`, installed by `.ci/install-deps.sh`),
//! and a check that every chart is there and not empty, both in the page's SVG (data lines or
//! bars of at least three points) and on screen (each chart, screenshotted alone, has coloured
//! pixels: axes, grid and text are black or grey, data is coloured). The same check is shown to
//! fail on the same report with a chart removed, with a chart's data removed, and with a chart's
//! data hidden from the screen. Without Chromium the test fails and says how to install it.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

/// Window of the screenshots, pixels.
const WINDOW: (u32, u32) = (1280, 900);
/// Size a lone chart is screenshotted at, pixels.
const CHART_WINDOW: (u32, u32) = (1024, 512);
/// Coloured pixels a drawn chart has at least (two data lines of a few hundred pixels each).
const MIN_CHART_PIXELS: usize = 300;
/// Colours of data in the charts (the palette of src/report/charts/mod.rs, but its grey).
const DATA_COLOURS: [&str; 7] = [
    "#1F77B4", "#FF7F0E", "#2CA02C", "#D62728", "#9467BD", "#8C564B", "#E377C2",
];

/// Chromium on `PATH`, or a failure saying how to install it (never a silent skip).
fn chromium() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for name in ["chromium", "chromium-browser"] {
            if dir.join(name).is_file() {
                return dir.join(name);
            }
        }
    }
    panic!(
        "chromium is not installed: this test renders report.html with headless Chromium; \
         run .ci/install-deps.sh (it installs Debian's chromium package)"
    );
}

/// `chromium --headless --screenshot` of `page` into `png`, window `size`; the PNG's pixels.
fn screenshot(page: &Path, png: &Path, size: (u32, u32)) -> Vec<[u8; 3]> {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--allow-file-access-from-files",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--window-size={},{}", size.0, size.1))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("run chromium");
    assert!(
        png.exists(),
        "chromium wrote no screenshot: {}",
        common::show(&out)
    );
    decode(png)
}

fn decode(path: &Path) -> Vec<[u8; 3]> {
    let decoder = png::Decoder::new(std::fs::File::open(path).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let step = info.color_type.samples();
    buf[..info.buffer_size()]
        .chunks(step)
        .map(|p| [p[0], p[1], p[2]])
        .collect()
}

/// Pixels of a clearly saturated colour (data), not white, black or grey (text, axes, grid).
fn coloured(pixels: &[[u8; 3]]) -> usize {
    pixels
        .iter()
        .filter(|p| p.iter().max().unwrap() - p.iter().min().unwrap() > 60)
        .count()
}

/// The inline SVG of each `<figure class="chart">` of a page.
fn chart_svgs(html: &str) -> Vec<&str> {
    html.split("<figure class=\"chart\"")
        .skip(1)
        .map(|f| {
            let start = f.find("<svg").unwrap_or(f.len());
            let end = f.find("</svg>").map_or(f.len(), |e| e + "</svg>".len());
            &f[start.min(end)..end]
        })
        .collect()
}

/// Whether an SVG chart draws data: a polyline of a data colour with at least three points
/// (the legend's samples have two), or a bar of a data colour.
fn has_data(svg: &str) -> bool {
    svg.split('<').any(|el| {
        let coloured = DATA_COLOURS.iter().any(|c| {
            el.contains(&format!("stroke=\"{c}\"")) || el.contains(&format!("fill=\"{c}\""))
        });
        let line = el.starts_with("polyline")
            && el
                .split("points=\"")
                .nth(1)
                .is_some_and(|p| p.split_whitespace().filter(|s| !s.starts_with('"')).count() >= 3);
        let bar = el.starts_with("rect") && !el.contains("height=\"0\"");
        coloured && (line || bar)
    })
}

/// The check: every chart file of the run directory is inline in report.html, draws data, and
/// shows it on screen; the top of the page (verdict, headline numbers) is rendered.
fn check_report(dir: &Path, html_name: &str) -> Result<(), String> {
    let html = std::fs::read_to_string(dir.join(html_name)).map_err(|e| e.to_string())?;
    let files = std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "svg")
        })
        .count();
    let svgs = chart_svgs(&html);
    if svgs.len() != files || files == 0 {
        return Err(format!(
            "{html_name} has {} chart(s) inline, the run directory {files} chart file(s)",
            svgs.len()
        ));
    }
    let shots = tempfile::tempdir().unwrap();
    for (i, svg) in svgs.iter().enumerate() {
        if !has_data(svg) {
            return Err(format!("chart {} of {html_name} draws no data", i + 1));
        }
        let page = shots.path().join(format!("chart-{i}.html"));
        std::fs::write(
            &page,
            format!("<!DOCTYPE html><html><body style=\"margin:0\">{svg}</body></html>"),
        )
        .unwrap();
        let pixels = screenshot(
            &page,
            &shots.path().join(format!("chart-{i}.png")),
            CHART_WINDOW,
        );
        let n = coloured(&pixels);
        if n < MIN_CHART_PIXELS {
            return Err(format!(
                "chart {} of {html_name} is blank on screen ({n} coloured pixels, want {MIN_CHART_PIXELS})",
                i + 1
            ));
        }
    }
    let pixels = screenshot(&dir.join(html_name), &dir.join("report.png"), WINDOW);
    let dark = pixels.iter().filter(|p| p.iter().all(|c| *c < 100)).count();
    if dark < 2_000 {
        return Err(format!(
            "the top of {html_name} is blank on screen ({dark} dark pixels)"
        ));
    }
    Ok(())
}

#[test]
fn report_html_shows_every_chart_in_chromium_and_the_check_catches_a_missing_or_empty_one() {
    chromium();
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("run");
    // ~3 s of producing at 20k msgs/s: six sampling intervals of 500 ms, enough for every chart.
    let o = common::run(
        &common::scenario("smoke.toml"),
        &[
            "--set",
            "producers.messages_each=30000",
            "--set",
            "producers.total_rate=20000/s",
        ],
        &dir,
    );
    assert!(o.status.success(), "{}", common::show(&o));
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    // Verdict, headline numbers, charts, then the tables.
    let at = |s: &str| {
        html.find(s)
            .unwrap_or_else(|| panic!("{s} missing from report.html"))
    };
    assert!(at("PASSED") < at("class=\"headline\"") && at("class=\"headline\"") < at("<svg"));
    assert!(at("<svg") < at("<h2>Details"));
    assert_eq!(
        chart_svgs(&html).len(),
        9,
        "every chart of this run is drawn"
    );
    check_report(&dir, "report.html").unwrap();

    // The check fails when it should, on the same report:
    let svgs: Vec<String> = chart_svgs(&html).iter().map(|s| s.to_string()).collect();
    let variant = |name: &str, text: String| {
        std::fs::write(dir.join(name), text).unwrap();
        check_report(&dir, name).unwrap_err()
    };
    // a chart missing from the page,
    let err = variant(
        "removed.html",
        html.replacen("<figure class=\"chart\"", "<figure class=\"gone\"", 1),
    );
    assert!(err.contains("8 chart(s) inline"), "{err}");
    // a chart with no data (its lines gone),
    let empty: String = svgs[0]
        .split_inclusive('>')
        .filter(|el| !(el.contains("<polyline") && DATA_COLOURS.iter().any(|c| el.contains(c))))
        .collect();
    let err = variant("empty.html", html.replacen(&svgs[0], &empty, 1));
    assert!(err.contains("chart 1 of empty.html draws no data"), "{err}");
    // a chart whose data is in the SVG but not on screen.
    let hidden = svgs[1].replace("<polyline", "<polyline visibility=\"hidden\"");
    let err = variant("hidden.html", html.replacen(&svgs[1], &hidden, 1));
    assert!(
        err.contains("chart 2 of hidden.html is blank on screen"),
        "{err}"
    );
}

#[test]
fn a_comparison_page_of_a_rate_sweep_shows_its_charts_and_the_latency_curve() {
    chromium();
    let out = tempfile::tempdir().unwrap();
    let scenario = common::write_scenario(
        out.path(),
        "sweep.toml",
        r#"name = "rate-sweep"
[topic]
partitions = 2
[producers]
count = 1
duration = "2s"
message_size = "1KiB"
total_rate = "1000/s"
[consumers]
groups = 1
members = 1
drain_timeout = "20s"
[verify]
delivery = "exactly-once"
[matrix]
"producers.total_rate" = ["1000/s", "3000/s", "6000/s"]
"#,
    );
    let dir = out.path().join("sweep");
    let o = common::run(&scenario, &[], &dir);
    assert!(o.status.success(), "{}", common::show(&o));
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(
        html.contains("latency against achieved throughput"),
        "no curve"
    );
    // No loss and no fault: no all-zero loss or recovery panels.
    let panels = std::fs::read_to_string(dir.join("comparison.svg")).unwrap();
    assert!(!panels.contains("messages lost") && !panels.contains("recover"));
    // The page's charts are the panel figure and the curve; the bar charts beside them are
    // files of their own, so compare the page with its two.
    let svgs = chart_svgs(&html);
    assert_eq!(svgs.len(), 2);
    for (i, svg) in svgs.iter().enumerate() {
        assert!(has_data(svg), "comparison chart {} has no data", i + 1);
    }
}
