//! Kafka's record compression codecs, for the one place the broker opens client data: the log
//! cleaner, which (as Kafka's `MemoryRecords.filterTo` does) decompresses a compressed batch,
//! drops the records compaction removes and compresses the survivors again with the batch's
//! own codec.
//!
//! The formats are the ones Kafka clients write into a v2 batch after its 61-byte header:
//! - **gzip**: a gzip stream (several members are read as one, like `GZIPInputStream`);
//!   written at level 6, Kafka's default.
//! - **snappy**: either the xerial framing Java clients use (`\x82SNAPPY\0` magic, versions,
//!   then length-prefixed raw snappy blocks) or a single raw snappy block (librdkafka may
//!   write that); written in xerial framing with 32 KiB blocks, as Kafka does, which every
//!   client reads.
//! - **lz4**: an LZ4 frame; written with independent 64 KiB blocks and no checksums but the
//!   header's, as Kafka's `KafkaLZ4BlockOutputStream` does.
//! - **zstd**: a zstd frame; written at level 3, Kafka's default.
//!
//! Decompression stops at [`MAX_DECOMPRESSED`] bytes so that a hostile batch cannot make the
//! cleaner allocate without bound.

use std::io::{Read, Write};

use super::batch::Compression;

/// Most bytes one batch may decompress to (Kafka's largest `max.message.bytes` is far below;
/// a batch larger than this is kept whole by the cleaner, not cleaned).
const MAX_DECOMPRESSED: usize = 256 << 20;

/// The xerial snappy stream header: magic, version 1, compatible version 1.
const XERIAL_HEADER: &[u8; 16] = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01";

/// Uncompressed bytes per xerial snappy block (the xerial library's default).
const XERIAL_BLOCK: usize = 32 * 1024;

/// zstd level Kafka uses by default (`compression.zstd.level`).
const ZSTD_LEVEL: i32 = 3;

/// A compressed records section that could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("cannot {op} {codec:?} records: {reason}")]
pub(crate) struct CodecError {
    /// "decompress" or "compress".
    op: &'static str,
    /// The batch's codec.
    codec: Compression,
    /// What went wrong.
    reason: String,
}

impl CodecError {
    fn new(op: &'static str, codec: Compression, reason: impl ToString) -> Self {
        CodecError {
            op,
            codec,
            reason: reason.to_string(),
        }
    }
}

/// The records section `data` of a batch compressed with `codec`, decompressed.
pub(crate) fn decompress(codec: Compression, data: &[u8]) -> Result<Vec<u8>, CodecError> {
    decompress_at_most(codec, data, MAX_DECOMPRESSED)
}

/// [`decompress`], failing past `limit` bytes.
fn decompress_at_most(
    codec: Compression,
    data: &[u8],
    limit: usize,
) -> Result<Vec<u8>, CodecError> {
    let err = |reason: &dyn ToString| CodecError::new("decompress", codec, reason.to_string());
    let mut out = Vec::new();
    match codec {
        Compression::None => out.extend_from_slice(data),
        Compression::Gzip => read_bounded(flate2::read::MultiGzDecoder::new(data), &mut out, limit)
            .map_err(|e| err(&e))?,
        Compression::Snappy => out = snappy_decompress(data, limit).map_err(|e| err(&e))?,
        Compression::Lz4 => read_bounded(lz4_flex::frame::FrameDecoder::new(data), &mut out, limit)
            .map_err(|e| err(&e))?,
        Compression::Zstd => {
            let decoder = zstd::stream::read::Decoder::new(data).map_err(|e| err(&e))?;
            read_bounded(decoder, &mut out, limit).map_err(|e| err(&e))?;
        }
    }
    Ok(out)
}

/// `data` (a records section) compressed with `codec`.
pub(crate) fn compress(codec: Compression, data: &[u8]) -> Result<Vec<u8>, CodecError> {
    let err = |reason: &dyn ToString| CodecError::new("compress", codec, reason.to_string());
    match codec {
        Compression::None => Ok(data.to_vec()),
        Compression::Gzip => {
            let mut encoder = flate2::write::GzEncoder::new(
                Vec::with_capacity(data.len() / 2),
                flate2::Compression::new(6),
            );
            encoder.write_all(data).map_err(|e| err(&e))?;
            encoder.finish().map_err(|e| err(&e))
        }
        Compression::Snappy => snappy_compress(data).map_err(|e| err(&e)),
        Compression::Lz4 => {
            use lz4_flex::frame::{BlockMode, BlockSize, FrameEncoder, FrameInfo};
            let info = FrameInfo::new()
                .block_size(BlockSize::Max64KB)
                .block_mode(BlockMode::Independent)
                .block_checksums(false)
                .content_checksum(false);
            let mut encoder =
                FrameEncoder::with_frame_info(info, Vec::with_capacity(data.len() / 2));
            encoder.write_all(data).map_err(|e| err(&e))?;
            encoder.finish().map_err(|e| err(&e))
        }
        Compression::Zstd => zstd::stream::encode_all(data, ZSTD_LEVEL).map_err(|e| err(&e)),
    }
}

/// Reads `reader` to its end into `out`, failing past `limit` bytes.
fn read_bounded(reader: impl Read, out: &mut Vec<u8>, limit: usize) -> std::io::Result<()> {
    reader.take(limit as u64 + 1).read_to_end(out)?;
    if out.len() > limit {
        return Err(std::io::Error::other(format!(
            "more than {limit} bytes once decompressed"
        )));
    }
    Ok(())
}

fn snappy_decompress(data: &[u8], limit: usize) -> Result<Vec<u8>, String> {
    let raw = |block: &[u8], out: &mut Vec<u8>| -> Result<(), String> {
        let len = snap::raw::decompress_len(block).map_err(|e| e.to_string())?;
        if out.len() + len > limit {
            return Err(format!("more than {limit} bytes once decompressed"));
        }
        let start = out.len();
        out.resize(start + len, 0);
        snap::raw::Decoder::new()
            .decompress(block, &mut out[start..])
            .map_err(|e| e.to_string())?;
        Ok(())
    };
    let mut out = Vec::new();
    // The xerial magic's first 8 bytes identify the framing; the versions are not checked
    // (Kafka's reader accepts any).
    let Some(mut rest) = data.strip_prefix(&XERIAL_HEADER[..8]) else {
        raw(data, &mut out)?;
        return Ok(out);
    };
    rest = rest
        .get(8..)
        .ok_or("xerial snappy header is cut short".to_string())?;
    while !rest.is_empty() {
        let (len, tail) = rest
            .split_first_chunk::<4>()
            .ok_or("xerial snappy block length is cut short".to_string())?;
        let len = u32::from_be_bytes(*len) as usize;
        let block = tail
            .get(..len)
            .ok_or(format!("xerial snappy block of {len} bytes is cut short"))?;
        raw(block, &mut out)?;
        rest = &tail[len..];
    }
    Ok(out)
}

fn snappy_compress(data: &[u8]) -> Result<Vec<u8>, snap::Error> {
    let mut out = Vec::with_capacity(XERIAL_HEADER.len() + data.len() / 2);
    out.extend_from_slice(XERIAL_HEADER);
    let mut encoder = snap::raw::Encoder::new();
    for chunk in data.chunks(XERIAL_BLOCK) {
        let block = encoder.compress_vec(chunk)?;
        out.extend_from_slice(&(block.len() as u32).to_be_bytes());
        out.extend_from_slice(&block);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CODECS: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    fn sample() -> Vec<u8> {
        (0..200_000u32)
            .flat_map(|i| (i % 251).to_be_bytes())
            .collect()
    }

    #[test]
    fn every_codec_round_trips_and_compresses() {
        let data = sample();
        for codec in CODECS {
            let packed = compress(codec, &data).expect("compress");
            if codec != Compression::None {
                assert!(packed.len() < data.len() / 2, "{codec:?}: {}", packed.len());
            }
            assert_eq!(
                decompress(codec, &packed).expect("decompress"),
                data,
                "{codec:?}"
            );
        }
    }

    #[test]
    fn each_codec_reads_what_the_reference_encoders_write() {
        // Streams written by the libraries' own stream encoders (not by `compress`): the
        // framings other writers use are read too.
        let data = sample();
        let raw_snappy = snap::raw::Encoder::new()
            .compress_vec(&data)
            .expect("snappy");
        assert_eq!(
            decompress(Compression::Snappy, &raw_snappy).expect("raw"),
            data
        );
        let mut lz4 = lz4_flex::frame::FrameEncoder::new(Vec::new());
        lz4.write_all(&data).expect("lz4");
        let lz4 = lz4.finish().expect("lz4");
        assert_eq!(decompress(Compression::Lz4, &lz4).expect("lz4"), data);
        // Two gzip members one after the other are one stream.
        let half = data.len() / 2;
        let mut gz = compress(Compression::Gzip, &data[..half]).expect("gzip");
        gz.extend(compress(Compression::Gzip, &data[half..]).expect("gzip"));
        assert_eq!(decompress(Compression::Gzip, &gz).expect("gzip"), data);
    }

    #[test]
    fn damaged_data_is_an_error_naming_the_codec() {
        for codec in CODECS.into_iter().skip(1) {
            let mut packed = compress(codec, &sample()).expect("compress");
            packed.truncate(packed.len() / 2);
            let err = decompress(codec, &packed).expect_err("cut short");
            assert!(
                err.to_string()
                    .starts_with(&format!("cannot decompress {codec:?} records")),
                "{err}"
            );
        }
        let err =
            decompress(Compression::Snappy, b"\x82SNAPPY\x00\x00\x00").expect_err("short header");
        assert!(err.to_string().contains("cut short"), "{err}");
    }

    #[test]
    fn a_decompression_bomb_is_refused() {
        let zeros = vec![0u8; 1 << 20];
        for codec in CODECS.into_iter().skip(1) {
            let packed = compress(codec, &zeros).expect("compress");
            let err = decompress_at_most(codec, &packed, (1 << 20) - 1).expect_err("too large");
            assert!(err.to_string().contains("once decompressed"), "{err}");
            let fits = decompress_at_most(codec, &packed, 1 << 20).expect("fits");
            assert_eq!(fits.len(), 1 << 20);
        }
    }
}
