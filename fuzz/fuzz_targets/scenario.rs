//! libFuzzer entry for the `scenario` target (`fuzz/src/scenario.rs`: what it checks). Built
//! only with the fuzz crate's `scenario` feature, the one that brings in kbench.
#![no_main]

#[path = "../src/scenario.rs"]
mod scenario;

#[global_allocator]
static ALLOC: kbench_fuzz::alloc::Counting = kbench_fuzz::alloc::Counting;

libfuzzer_sys::fuzz_target!(|data: &[u8]| scenario::scenario(data));
