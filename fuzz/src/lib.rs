//! What each fuzz target does with its input, shared by the libFuzzer binaries
//! (`fuzz/fuzz_targets/*.rs`, nightly) and the replay test of the main workspace
//! (`tests/fuzz_inputs.rs`, stable, which includes this file by path), so a corpus file or a
//! regression input runs through exactly the same code either way.
//!
//! Every target calls the product's own entry point (the path real input takes), never a copy:
//!
//! - [`request_frame`]: a request frame as the connection reads it (the bytes after the size
//!   prefix) into [`kbroker::decode_request`]: header, version check, bounds check, body.
//! - [`request_body`]: the same, with the API key and version steered onto what kbroker serves,
//!   so mutations land in bodies rather than in the version check.
//! - [`record_batch`]: one partition's produce payload through
//!   [`kbroker::log::validate_produce`] (what the produce handler runs before appending), then
//!   what the append and the readers of stored batches do with it.
//! - `scenario`: TOML text through `kbench::scenario::load_str` (parse, schema, validation,
//!   `--set` overrides, matrix expansion). It lives apart, in `scenario.rs`, because it is the
//!   one target that needs kbench, and with it librdkafka and the harness: the fuzz crate's
//!   `scenario` feature brings them in, so the four kbroker targets build without them.
//! - [`server_properties`]: `server.properties` text through [`kbroker::BrokerConfig::parse`].
//!
//! A panic anywhere is a finding; so is an allocation past what the input justifies (the
//! [`alloc::Counting`] allocator measures it, and refuses any single allocation over
//! [`alloc::LIMIT`] so that even on stable, without libFuzzer's `-malloc_limit_mb`, a lost bounds
//! check aborts instead of passing on an overcommitting kernel).

use std::path::Path;

use bytes::Bytes;

/// A request frame (what follows the 4-byte size prefix on the wire) into
/// [`kbroker::decode_request`]. Checks: no panic; a decoded request agrees with the header's API
/// key and version, and the version is one kbroker serves; the decode allocates at most
/// [`request_alloc_budget`] bytes (the bounds check's promise: a body that passes it is decoded
/// with allocations bounded by its own size); errors can be displayed (they go to the log).
pub fn request_frame(data: &[u8]) {
    let frame = Bytes::copy_from_slice(data);
    let (decoded, peak) = alloc::peak_during(|| kbroker::decode_request(frame));
    let budget = request_alloc_budget(data.len());
    assert!(
        peak <= budget,
        "decoding a {}-byte frame allocated {peak} bytes at its peak (budget {budget})",
        data.len()
    );
    match decoded {
        Ok(request) => {
            let key = i16::from_be_bytes([data[0], data[1]]);
            let version = i16::from_be_bytes([data[2], data[3]]);
            assert_eq!(request.api_key as i16, key);
            assert_eq!(request.version, version);
            assert_eq!(
                request.correlation_id,
                i32::from_be_bytes([data[4], data[5], data[6], data[7]])
            );
            let served = kbroker::served_requests()
                .iter()
                .any(|&(api, min, max)| api as i16 == key && (min..=max).contains(&version));
            assert!(served, "decoded api {key} v{version}, which is not served");
        }
        Err(e) => drop(e.to_string()),
    }
}

/// The most a request decode may allocate (peak bytes live) for a frame of `len` bytes. The
/// bounds check lets an array claim at most one element per remaining byte, and request elements
/// are at most a couple of hundred bytes in memory; real and fuzzed frames stay under 60 bytes
/// per byte (the worst of 3,000 at the first calibration) and 60 KiB in all. A count or length
/// that reached the decoder unchecked, or a check lenient by a small factor, goes past this.
pub fn request_alloc_budget(len: usize) -> usize {
    16 * 1024 + 256 * len
}

/// [`request_frame`] with the first four bytes (API key, version) steered: a pair kbroker
/// serves is kept, any other is replaced by the served pair their value picks. Real frames (the
/// seed corpus) pass unchanged, and random ones reach a body decoder instead of the version
/// check.
pub fn request_body(data: &[u8]) {
    if data.len() < 4 {
        return request_frame(data);
    }
    let key = i16::from_be_bytes([data[0], data[1]]);
    let version = i16::from_be_bytes([data[2], data[3]]);
    let pairs: Vec<(i16, i16)> = kbroker::served_requests()
        .iter()
        .flat_map(|&(api, min, max)| (min..=max).map(move |v| (api as i16, v)))
        .collect();
    if pairs.contains(&(key, version)) {
        return request_frame(data);
    }
    let pick = u32::from_be_bytes([data[0], data[1], data[2], data[3]]) as usize % pairs.len();
    let (key, version) = pairs[pick];
    let mut frame = data.to_vec();
    frame[0..2].copy_from_slice(&key.to_be_bytes());
    frame[2..4].copy_from_slice(&version.to_be_bytes());
    request_frame(&frame);
}

/// One partition's produce payload (the `records` bytes of a Produce request) into
/// [`kbroker::log::validate_produce`] with Kafka's default `max.message.bytes`, as the produce
/// handler runs it: once as given, and once with the CRC of every batch that frames recomputed,
/// so that mutations get past the CRC check to the checks and decoders behind it. A payload it
/// accepts must be a whole number of batches it described correctly; patching what the append
/// patches (base offset, leader epoch: outside the CRC) must keep it valid with the same
/// headers; and the record decoder (which reads stored control batches and the internal topics'
/// records) must not panic on any batch, valid or not.
pub fn record_batch(data: &[u8]) {
    check_payload(data);
    let resigned = with_crcs_recomputed(data);
    if resigned != data {
        check_payload(&resigned);
    }
}

/// `data` with the CRC field of each batch [`kbroker::log::batch::batches`] frames set to the
/// CRC32C of the batch (bytes 21 to its end), as an honest client would have computed it.
fn with_crcs_recomputed(data: &[u8]) -> Vec<u8> {
    let mut out = data.to_vec();
    let mut position = 0;
    for item in kbroker::log::batch::batches(data) {
        let Ok((header, bytes)) = item else { break };
        let crc = crc32c::crc32c(&bytes[21..]);
        out[position + 17..position + 21].copy_from_slice(&crc.to_be_bytes());
        position += header.len_total();
    }
    out
}

fn check_payload(data: &[u8]) {
    use kbroker::log::batch::{self, BatchHeader, Compression};

    let max = kbroker::log::LogConfig::default().max_message_bytes;
    let _ = kbroker::log::decode_records(data);
    let headers = match kbroker::log::validate_produce(data, max) {
        Ok(headers) => headers,
        Err(e) => {
            let _ = e.kafka_error_code();
            return drop(e.to_string());
        }
    };
    assert!(!headers.is_empty(), "an accepted payload has batches");
    let total: usize = headers.iter().map(BatchHeader::len_total).sum();
    assert_eq!(
        total,
        data.len(),
        "accepted batches cover the whole payload"
    );

    let mut patched = data.to_vec();
    let mut position = 0;
    for (i, h) in headers.iter().enumerate() {
        assert!(
            h.records_count >= 1
                && i64::from(h.records_count) == i64::from(h.last_offset_delta) + 1
        );
        assert!(h.compression().is_some() && !h.is_control());
        let bytes = &mut patched[position..position + h.len_total()];
        batch::set_base_offset(bytes, 1_000_000 + i as i64).expect("a batch holds a base offset");
        batch::set_partition_leader_epoch(bytes, 7).expect("a batch holds a leader epoch");
        if h.compression() == Some(Compression::None) {
            if let Ok(records) = kbroker::log::decode_records(bytes) {
                assert_eq!(records.len(), h.records_count as usize);
            }
        }
        position += h.len_total();
    }
    let again = kbroker::log::validate_produce(&patched, max)
        .expect("patching base offsets and leader epochs keeps a payload valid");
    assert_eq!(again.len(), headers.len());
    for (i, (a, b)) in headers.iter().zip(&again).enumerate() {
        assert_eq!(b.base_offset, 1_000_000 + i as i64);
        assert_eq!(b.partition_leader_epoch, 7);
        assert_eq!(
            (
                a.crc,
                a.attributes,
                a.last_offset_delta,
                a.producer_id,
                a.base_sequence
            ),
            (
                b.crc,
                b.attributes,
                b.last_offset_delta,
                b.producer_id,
                b.base_sequence
            )
        );
    }
}

/// `server.properties` bytes into [`kbroker::BrokerConfig::parse`], with `#override key=value`
/// lines (comments in properties syntax) also given as `--override`s. Host names resolve only
/// as IPv4 literals and `localhost` ([`offline_ipv4`]): the fuzzer must not send DNS queries.
/// A configuration that parses is internally consistent, and describes itself.
pub fn server_properties(data: &[u8]) {
    let overrides: Vec<String> = String::from_utf8_lossy(data)
        .lines()
        .filter_map(|l| l.strip_prefix("#override "))
        .map(str::to_owned)
        .collect();
    let parsed = kbroker::BrokerConfig::parse(
        data,
        Path::new("server.properties"),
        &overrides,
        offline_ipv4,
    );
    match parsed {
        Ok(config) => {
            assert!(!config.log_dirs.is_empty());
            if let Some(cluster) = &config.cluster {
                assert!(cluster.voters.contains_key(&config.node_id));
                assert_ne!(cluster.controller_listener.name, config.listener.name);
            }
            let _ = config.effective();
        }
        Err(e) => drop(e.to_string()),
    }
}

/// Name resolution for [`server_properties`]: IPv4 literals and `localhost`, nothing else.
pub fn offline_ipv4(host: &str) -> Option<std::net::Ipv4Addr> {
    match host {
        "localhost" => Some(std::net::Ipv4Addr::LOCALHOST),
        _ => host.parse().ok(),
    }
}

/// What a target does with one input.
pub type Target = fn(&[u8]);

/// Every target by its name (the directory names under `fuzz/corpus/` and `fuzz/regressions/`).
pub const TARGETS: &[(&str, Target)] = &[
    ("request_frame", request_frame),
    ("request_body", request_body),
    ("record_batch", record_batch),
    ("server_properties", server_properties),
];

/// The global allocator of the fuzz binaries and the replay test: `System`, counting the bytes
/// each thread has live so a target can measure what one call allocated at its peak.
pub mod alloc {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    /// Largest single allocation granted (1 GiB); larger ones fail, which aborts the process
    /// (`memory allocation of N bytes failed`). Nothing the targets do legitimately comes near.
    pub const LIMIT: usize = 1 << 30;

    thread_local! {
        static LIVE: Cell<usize> = const { Cell::new(0) };
        static PEAK: Cell<usize> = const { Cell::new(0) };
    }

    /// [`System`], counting live bytes per thread and refusing allocations over [`LIMIT`].
    pub struct Counting;

    fn grew(n: usize) {
        let _ = LIVE.try_with(|live| {
            let now = live.get().saturating_add(n);
            live.set(now);
            let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
        });
    }

    fn shrank(n: usize) {
        let _ = LIVE.try_with(|live| live.set(live.get().saturating_sub(n)));
    }

    // SAFETY: every method forwards to `System` with the caller's arguments unchanged and returns
    // its result (or null, which the contract allows, for a size over LIMIT); the bookkeeping
    // touches only const-initialised thread-locals without destructors, which never allocate.
    #[allow(unsafe_code)]
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            if layout.size() > LIMIT {
                return std::ptr::null_mut();
            }
            let p = unsafe { System.alloc(layout) };
            if !p.is_null() {
                grew(layout.size());
            }
            p
        }

        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            if layout.size() > LIMIT {
                return std::ptr::null_mut();
            }
            let p = unsafe { System.alloc_zeroed(layout) };
            if !p.is_null() {
                grew(layout.size());
            }
            p
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            unsafe { System.dealloc(ptr, layout) };
            shrank(layout.size());
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            if new_size > LIMIT {
                return std::ptr::null_mut();
            }
            let p = unsafe { System.realloc(ptr, layout, new_size) };
            if !p.is_null() {
                shrank(layout.size());
                grew(new_size);
            }
            p
        }
    }

    /// Runs `f` and returns its result with the most bytes it had allocated at once on this
    /// thread (0 when [`Counting`] is not the global allocator).
    pub fn peak_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
        let base = LIVE.with(Cell::get);
        PEAK.with(|p| p.set(base));
        let out = f();
        let peak = PEAK.with(Cell::get);
        (out, peak.saturating_sub(base))
    }
}
