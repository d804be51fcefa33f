//! libFuzzer entry for `kbench_fuzz::server_properties` (see that function for what it checks).
#![no_main]

#[global_allocator]
static ALLOC: kbench_fuzz::alloc::Counting = kbench_fuzz::alloc::Counting;

libfuzzer_sys::fuzz_target!(|data: &[u8]| kbench_fuzz::server_properties(data));
