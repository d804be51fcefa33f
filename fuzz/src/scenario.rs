//! The `scenario` target: what it does with its input, shared by its libFuzzer binary
//! (`fuzz/fuzz_targets/scenario.rs`, built with the fuzz crate's `scenario` feature) and the
//! replay test of the main workspace (`tests/fuzz_inputs.rs`), both of which include this file by
//! path. Apart from `lib.rs` because it is the only target that reads kbench.

use std::path::Path;

/// A scenario file into [`kbench::scenario::load_str`]. Lines `#set key=value` (TOML comments)
/// are also given as `--set` overrides, so the override path is fuzzed from the same text. A
/// loaded scenario has at least one variant, each of which validates again.
pub fn scenario(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let sets: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("#set "))
        .map(str::to_owned)
        .collect();
    match kbench::scenario::load_str(text, Path::new("fuzz.toml"), &sets) {
        Ok(loaded) => {
            assert!(
                !loaded.variants.is_empty(),
                "a loaded scenario runs something"
            );
            for v in &loaded.variants {
                if let Err(e) = v.scenario.validate() {
                    panic!("loaded variant {:?} does not validate: {e:?}", v.label);
                }
                let _ = v.scenario.resolved();
            }
        }
        Err(e) => drop(e.to_string()),
    }
}
