//! Every seed and every regression input of the fuzz targets (`fuzz/corpus/<target>/`,
//! `fuzz/regressions/<target>/`) through the targets' own code (`fuzz/src/lib.rs` and
//! `fuzz/src/scenario.rs`, included here by path), on stable as part of `cargo test`: a fixed
//! finding stays fixed on machines without nightly or cargo-fuzz, and a seed that stops passing
//! is caught before CI fuzzes. CI fuzzes only the kbroker targets (`fuzz/fuzz.sh`), so this is
//! where the `scenario` target's inputs run in CI.

#[allow(unreachable_pub, dead_code)]
#[path = "../fuzz/src/lib.rs"]
mod fuzz_targets;

#[allow(unreachable_pub)]
#[path = "../fuzz/src/scenario.rs"]
mod scenario_target;

use std::path::{Path, PathBuf};

#[global_allocator]
static ALLOC: fuzz_targets::alloc::Counting = fuzz_targets::alloc::Counting;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The files of `dir`, sorted; none when it does not exist.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    };
    out.retain(|p| p.is_file());
    out.sort();
    out
}

/// Runs every seed and regression input of `target` through it; fails naming each input that
/// panicked. Returns how many seeds there were.
fn replay(target: &str) -> usize {
    let scenario: (&str, fuzz_targets::Target) = ("scenario", scenario_target::scenario);
    let run = fuzz_targets::TARGETS
        .iter()
        .chain([&scenario])
        .find(|(name, _)| *name == target)
        .map(|&(_, run)| run)
        .expect("a target of fuzz/src/lib.rs or fuzz/src/scenario.rs");
    // request_body starts from the real frames request_frame does.
    let seeds_of = if target == "request_body" {
        "request_frame"
    } else {
        target
    };
    let seeds = files(&fuzz_dir().join("corpus").join(seeds_of));
    let regressions = files(&fuzz_dir().join("regressions").join(target));
    let mut failed = Vec::new();
    for input in seeds.iter().chain(&regressions) {
        let bytes = std::fs::read(input).unwrap();
        if std::panic::catch_unwind(|| run(&bytes)).is_err() {
            failed.push(input.display().to_string());
        }
    }
    assert!(failed.is_empty(), "{target} panicked on {failed:#?}");
    seeds.len()
}

#[test]
fn request_frame_seeds_and_regressions_pass() {
    assert!(
        replay("request_frame") > 50,
        "fuzz/corpus/request_frame is missing its seeds"
    );
}

#[test]
fn request_body_seeds_and_regressions_pass() {
    replay("request_body");
}

#[test]
fn record_batch_seeds_and_regressions_pass() {
    assert!(
        replay("record_batch") > 10,
        "fuzz/corpus/record_batch is missing its seeds"
    );
}

#[test]
fn scenario_seeds_and_regressions_pass() {
    assert!(
        replay("scenario") > 10,
        "fuzz/corpus/scenario is missing its seeds"
    );
}

#[test]
fn server_properties_seeds_and_regressions_pass() {
    assert!(
        replay("server_properties") > 2,
        "fuzz/corpus/server_properties is missing its seeds"
    );
}

/// The allocation oracle of `request_frame` measures: a frame claiming two billion topics is
/// refused by the bounds check within its budget.
#[test]
fn a_lying_count_is_refused_within_the_allocation_budget() {
    // Metadata v4: header (key 3, version 4, correlation id, client id "x"), then a topics
    // array whose count claims 2^31 - 1 entries in a frame of 19 bytes.
    let mut frame = vec![0, 3, 0, 4, 0, 0, 0, 1, 0, 1, b'x'];
    frame.extend_from_slice(&i32::MAX.to_be_bytes());
    frame.extend_from_slice(&[0, 0, 0, 0]);
    let (result, peak) =
        fuzz_targets::alloc::peak_during(|| kbroker::decode_request(frame.clone().into()));
    assert!(result.is_err());
    assert!(
        peak <= fuzz_targets::request_alloc_budget(frame.len()),
        "{peak}"
    );
    fuzz_targets::request_frame(&frame);

    // ...and the counting allocator is the one in use: a real frame's decode is measured.
    let real = files(&fuzz_dir().join("corpus/request_frame"))
        .into_iter()
        .find(|p| p.to_string_lossy().contains("metadata_v12"))
        .expect("a captured Metadata v12 frame");
    let real = std::fs::read(real).unwrap();
    let (result, peak) = fuzz_targets::alloc::peak_during(|| kbroker::decode_request(real.into()));
    assert!(result.is_ok());
    assert!(peak > 0, "the counting allocator saw nothing");
}
