use super::*;

#[test]
fn prepare_dir_fails_early_on_a_bad_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    let err = prepare_dir(&file.join("run")).unwrap_err();
    assert!(format!("{err:#}").contains("--out"), "{err:#}");
    prepare_dir(&dir.path().join("a/b")).unwrap();
    assert!(dir.path().join("a/b/summary.json").exists());
}

#[test]
fn write_run_then_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    let data = testdata::run_data();
    prepare_dir(dir.path()).unwrap();
    write_run(dir.path(), &data).unwrap();
    for name in [
        SUMMARY_JSON,
        TIMESERIES_CSV,
        SYSTEM_CSV,
        REPORT_HTML,
        "produce_latency.hgrm",
        "e2e_latency.hgrm",
        "produce_latency.hdr",
        "e2e_latency.hdr",
    ] {
        let len = std::fs::metadata(dir.path().join(name)).unwrap().len();
        assert!(len > 100, "{name} is {len} bytes");
    }
    for f in chart_files(dir.path(), &data) {
        assert!(f.exists(), "{} missing", f.display());
    }
    let back = read_run(dir.path()).unwrap();
    // summary.json holds the figures rounded (Summary::to_json).
    let rounded = Summary::from_json(&data.summary.to_json().unwrap()).unwrap();
    assert_eq!(back.summary, rounded);
    assert_eq!(back.intervals, data.intervals);
    assert_eq!(back.produce_latency.len(), data.produce_latency.len());
    assert_eq!(back.system.rows.len(), data.system.rows.len());
    // Redraw after removing the charts and the page.
    for f in chart_files(dir.path(), &data) {
        std::fs::remove_file(f).unwrap();
    }
    std::fs::remove_file(dir.path().join(REPORT_HTML)).unwrap();
    rebuild(dir.path()).unwrap();
    let html = std::fs::read_to_string(dir.path().join(REPORT_HTML)).unwrap();
    assert!(
        html.matches("<svg").count() >= 9,
        "charts missing from report.html"
    );
    for f in chart_files(dir.path(), &data) {
        assert!(f.exists(), "{} not rebuilt", f.display());
    }
}

#[test]
fn a_run_too_short_to_chart_gets_a_sentence_not_a_chart() {
    let dir = tempfile::tempdir().unwrap();
    let mut data = testdata::run_data();
    data.intervals.truncate(2);
    prepare_dir(dir.path()).unwrap();
    write_run(dir.path(), &data).unwrap();
    let html = std::fs::read_to_string(dir.path().join(REPORT_HTML)).unwrap();
    assert!(
        html.contains("not drawn: producing lasted") && html.contains("too short to chart"),
        "{html}"
    );
    assert!(!dir.path().join("throughput_msgs.svg").exists());
    assert!(!chart_files(dir.path(), &data)
        .iter()
        .any(|f| f.ends_with("throughput_msgs.svg")));
}

#[test]
fn rebuild_names_a_dir_without_summary() {
    let dir = tempfile::tempdir().unwrap();
    let err = rebuild(dir.path()).unwrap_err();
    assert!(format!("{err:#}").contains("summary.json"), "{err:#}");
}
