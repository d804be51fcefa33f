//! Kafka record batches (magic v2) as raw bytes: framing, header parsing, produce validation,
//! in-place offset assignment, and a small builder/decoder for the broker's own records.
//!
//! The broker stores batches exactly as clients send them, so nearly everything here works on
//! `&[u8]` without copying: [`batches`] walks the batches of a buffer, [`BatchHeader`] holds the
//! 61-byte header's fields, [`validate_produce`] applies Kafka's checks to one produce payload,
//! and [`set_base_offset`] / [`set_partition_leader_epoch`] patch the two header fields that are
//! outside the CRC. Records are only encoded and decoded for the broker's internal topics and
//! control markers ([`build_batch`], [`decode_records`]); produce and fetch never touch them.
//!
//! Wire layout of a v2 batch (big-endian), offsets in bytes:
//!
//! ```text
//!  0 baseOffset i64          8 batchLength i32        12 partitionLeaderEpoch i32
//! 16 magic i8 (=2)          17 crc u32 (CRC32C of bytes 21..end)
//! 21 attributes i16         23 lastOffsetDelta i32    27 baseTimestamp i64
//! 35 maxTimestamp i64       43 producerId i64         51 producerEpoch i16
//! 53 baseSequence i32       57 recordsCount i32       61 records...
//! ```

use bytes::{BufMut, Bytes, BytesMut};

/// Size of a v2 batch header, records excluded.
pub const BATCH_HEADER_LEN: usize = 61;
/// Bytes before `batchLength` counts: `baseOffset` (8) and `batchLength` (4) themselves.
pub const LOG_OVERHEAD: usize = 12;
/// The only record format the broker accepts.
pub const MAGIC_V2: i8 = 2;

const MIN_BATCH_LENGTH: i32 = (BATCH_HEADER_LEN - LOG_OVERHEAD) as i32;
const LENGTH_OFFSET: usize = 8;
const LEADER_EPOCH_OFFSET: usize = 12;
const MAGIC_OFFSET: usize = 16;
const CRC_OFFSET: usize = 17;
/// The CRC covers the batch from `attributes` to its end.
const ATTRIBUTES_OFFSET: usize = 21;
const BASE_TIMESTAMP_OFFSET: usize = 27;

const COMPRESSION_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_BIT: i16 = 0x08;
const TRANSACTIONAL_BIT: i16 = 0x10;
const CONTROL_BIT: i16 = 0x20;
/// KIP-534: `baseTimestamp` holds the delete horizon set by the log cleaner.
const DELETE_HORIZON_BIT: i16 = 0x40;

/// Kafka error code CORRUPT_MESSAGE.
const CORRUPT_MESSAGE: i16 = 2;
/// Kafka error code MESSAGE_TOO_LARGE.
const MESSAGE_TOO_LARGE: i16 = 10;
/// Kafka error code INVALID_RECORD.
const INVALID_RECORD: i16 = 87;

/// Why a record set was refused. `position` is the byte offset of the offending batch inside the
/// buffer that was checked (the produce payload, or the stored batch).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// Bytes are damaged: truncated batch, impossible length, CRC mismatch, bad record framing.
    #[error("corrupt record batch at byte {position}: {reason}")]
    CorruptMessage {
        /// Byte offset of the batch in the checked buffer.
        position: usize,
        /// What is wrong, with the values found.
        reason: String,
    },
    /// Bytes are intact but not acceptable: wrong magic, inconsistent counts, control batch from a
    /// client, unknown compression codec, empty record set.
    #[error("invalid record batch at byte {position}: {reason}")]
    InvalidRecord {
        /// Byte offset of the batch in the checked buffer.
        position: usize,
        /// What is wrong, with the values found.
        reason: String,
    },
    /// One batch is larger than the topic's `max.message.bytes`.
    #[error(
        "record batch at byte {position} is {size} bytes, larger than max.message.bytes = {max}; \
         raise the topic's max.message.bytes or make the producer's batches smaller"
    )]
    MessageTooLarge {
        /// Byte offset of the batch in the checked buffer.
        position: usize,
        /// Size of the batch in bytes (`12 + batchLength`).
        size: usize,
        /// The limit in bytes.
        max: usize,
    },
}

impl BatchError {
    /// The Kafka protocol error code a produce response carries for this error.
    pub fn kafka_error_code(&self) -> i16 {
        match self {
            BatchError::CorruptMessage { .. } => CORRUPT_MESSAGE,
            BatchError::InvalidRecord { .. } => INVALID_RECORD,
            BatchError::MessageTooLarge { .. } => MESSAGE_TOO_LARGE,
        }
    }

    fn corrupt(position: usize, reason: impl Into<String>) -> Self {
        BatchError::CorruptMessage {
            position,
            reason: reason.into(),
        }
    }

    fn invalid(position: usize, reason: impl Into<String>) -> Self {
        BatchError::InvalidRecord {
            position,
            reason: reason.into(),
        }
    }
}

/// Compression codec from bits 0-2 of a batch's attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Codec 0: records are stored as is.
    None,
    /// Codec 1.
    Gzip,
    /// Codec 2.
    Snappy,
    /// Codec 3.
    Lz4,
    /// Codec 4.
    Zstd,
}

impl Compression {
    /// The codec for a numeric id, `None` for the unassigned ids 5-7.
    pub fn from_id(id: i16) -> Option<Self> {
        match id {
            0 => Some(Compression::None),
            1 => Some(Compression::Gzip),
            2 => Some(Compression::Snappy),
            3 => Some(Compression::Lz4),
            4 => Some(Compression::Zstd),
            _ => None,
        }
    }

    /// The codec's id in bits 0-2 of a batch's attributes.
    pub fn id(self) -> i16 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }
}

/// The parsed 61-byte header of a v2 record batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record (assigned by the broker on append).
    pub base_offset: i64,
    /// Bytes after the `batchLength` field: the whole batch is `12 + batch_length` bytes.
    pub batch_length: i32,
    /// Leader epoch of the partition leader that appended the batch (-1 when unknown).
    pub partition_leader_epoch: i32,
    /// Record format version; always 2 once parsed.
    pub magic: i8,
    /// CRC32C of bytes `21..` of the batch, as stored.
    pub crc: u32,
    /// Compression codec, timestamp type, transactional and control flags.
    pub attributes: i16,
    /// Offset of the last record minus `base_offset`.
    pub last_offset_delta: i32,
    /// Timestamp of the first record, milliseconds since the epoch (-1 when absent).
    pub base_timestamp: i64,
    /// Largest record timestamp in the batch, milliseconds since the epoch (-1 when absent).
    pub max_timestamp: i64,
    /// Idempotent/transactional producer id, -1 for a plain producer.
    pub producer_id: i64,
    /// Producer epoch, -1 for a plain producer.
    pub producer_epoch: i16,
    /// Sequence number of the first record, -1 for a plain producer.
    pub base_sequence: i32,
    /// Number of records in the batch.
    pub records_count: i32,
}

impl BatchHeader {
    /// Parses a header from the first 61 bytes of `buf`. Checks what is needed to frame the batch
    /// (enough bytes for a header, magic 2, `batchLength` at least 49) but not that the whole batch
    /// is present nor its CRC: see [`batches`] and [`validate_produce`] for those.
    pub fn parse(buf: &[u8]) -> Result<Self, BatchError> {
        parse_header(buf, 0)
    }

    /// Total size of the batch in bytes, `12 + batchLength`.
    pub fn len_total(&self) -> usize {
        LOG_OVERHEAD + self.batch_length.max(0) as usize
    }

    /// Offset of the last record in the batch.
    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    /// The offset that follows this batch.
    pub fn next_offset(&self) -> i64 {
        self.last_offset() + 1
    }

    /// The compression codec, `None` if the attributes name an unassigned codec.
    pub fn compression(&self) -> Option<Compression> {
        Compression::from_id(self.attributes & COMPRESSION_MASK)
    }

    /// True when record timestamps are the broker's append time (`LogAppendTime`), false for
    /// `CreateTime`.
    pub fn is_log_append_time(&self) -> bool {
        self.attributes & TIMESTAMP_TYPE_BIT != 0
    }

    /// True when the batch belongs to a transaction.
    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }

    /// True for control batches (transaction commit/abort markers).
    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }

    /// The delete horizon (ms) the log cleaner stored in `baseTimestamp` when it first cleaned
    /// this batch holding tombstones or a removable transaction marker (KIP-534's attribute
    /// bit 6); `None` when not set. Past it, the next cleaning removes them.
    pub fn delete_horizon_ms(&self) -> Option<i64> {
        (self.attributes & DELETE_HORIZON_BIT != 0).then_some(self.base_timestamp)
    }
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}

fn be_i32(b: &[u8], at: usize) -> i32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    i32::from_be_bytes(a)
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

/// Parses the header at `buf[position..]`; see [`BatchHeader::parse`].
fn parse_header(buf: &[u8], position: usize) -> Result<BatchHeader, BatchError> {
    let b = buf.get(position..).unwrap_or(&[]);
    if b.len() <= MAGIC_OFFSET {
        return Err(BatchError::corrupt(
            position,
            format!(
                "truncated: {} bytes left, a batch header needs {BATCH_HEADER_LEN}",
                b.len()
            ),
        ));
    }
    let base_offset = be_i64(b, 0);
    let batch_length = be_i32(b, LENGTH_OFFSET);
    let magic = b[MAGIC_OFFSET] as i8;
    if magic != MAGIC_V2 {
        return Err(BatchError::invalid(
            position,
            format!(
                "unsupported record format magic {magic} (base offset {base_offset}); only magic 2 \
                 (Kafka 0.11+ clients) is accepted"
            ),
        ));
    }
    if batch_length < MIN_BATCH_LENGTH {
        return Err(BatchError::corrupt(
            position,
            format!(
                "batchLength {batch_length} is below the minimum {MIN_BATCH_LENGTH} \
                 (base offset {base_offset})"
            ),
        ));
    }
    if b.len() < BATCH_HEADER_LEN {
        return Err(BatchError::corrupt(
            position,
            format!(
                "truncated: {} bytes left, a batch header needs {BATCH_HEADER_LEN}",
                b.len()
            ),
        ));
    }
    Ok(BatchHeader {
        base_offset,
        batch_length,
        partition_leader_epoch: be_i32(b, LEADER_EPOCH_OFFSET),
        magic,
        crc: be_i32(b, CRC_OFFSET) as u32,
        attributes: be_i16(b, 21),
        last_offset_delta: be_i32(b, 23),
        base_timestamp: be_i64(b, 27),
        max_timestamp: be_i64(b, 35),
        producer_id: be_i64(b, 43),
        producer_epoch: be_i16(b, 51),
        base_sequence: be_i32(b, 53),
        records_count: be_i32(b, 57),
    })
}

/// Parses the header at `buf[position..]` and checks that the whole batch is inside `buf`.
fn parse_framed(buf: &[u8], position: usize) -> Result<BatchHeader, BatchError> {
    let header = parse_header(buf, position)?;
    let available = buf.len().saturating_sub(position);
    if header.len_total() > available {
        return Err(BatchError::corrupt(
            position,
            format!(
                "truncated: batch (base offset {}) is {} bytes but only {available} remain",
                header.base_offset,
                header.len_total()
            ),
        ));
    }
    Ok(header)
}

/// Iterator over the complete batches of a buffer; see [`batches`].
#[derive(Debug, Clone)]
pub struct BatchIter<'a> {
    buf: &'a [u8],
    position: usize,
    failed: bool,
}

impl<'a> BatchIter<'a> {
    /// Byte offset in the buffer of the next batch to be returned (after an error: of the batch
    /// that failed to frame).
    pub fn position(&self) -> usize {
        self.position
    }
}

impl<'a> Iterator for BatchIter<'a> {
    type Item = Result<(BatchHeader, &'a [u8]), BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.position >= self.buf.len() {
            return None;
        }
        match parse_framed(self.buf, self.position) {
            Ok(header) => {
                let start = self.position;
                let end = start + header.len_total();
                self.position = end;
                Some(Ok((header, &self.buf[start..end])))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// Walks the batches of `buf` in order, yielding each header with the batch's bytes. Checks
/// framing only (complete header, magic 2, length in bounds); stops after the first error.
pub fn batches(buf: &[u8]) -> BatchIter<'_> {
    BatchIter {
        buf,
        position: 0,
        failed: false,
    }
}

/// CRC-32C (Castagnoli) of `data`, as a batch's `crc` field holds it. `crc-fast` folds with
/// carry-less multiplication (VPCLMULQDQ on CPUs with AVX-512), about twice the speed of the
/// `crc32c` crate's SSE 4.2 loop on large batches; every produced batch is checked once by
/// the leader and once by each follower, so this is on the replication path.
pub(crate) fn crc32c(data: &[u8]) -> u32 {
    crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, data) as u32
}

/// Checks the stored CRC of one complete batch (`batch` must be exactly the batch's bytes).
/// `position` is only used in the error message.
pub fn verify_crc(batch: &[u8], header: &BatchHeader, position: usize) -> Result<(), BatchError> {
    let covered = batch
        .get(ATTRIBUTES_OFFSET..header.len_total())
        .ok_or_else(|| {
            BatchError::corrupt(
                position,
                format!(
                    "truncated: batch (base offset {}) is {} bytes but only {} given",
                    header.base_offset,
                    header.len_total(),
                    batch.len()
                ),
            )
        })?;
    let computed = crc32c(covered);
    if computed != header.crc {
        return Err(BatchError::corrupt(
            position,
            format!(
                "CRC mismatch (base offset {}): stored {:#010x}, computed {computed:#010x}",
                header.base_offset, header.crc
            ),
        ));
    }
    Ok(())
}

/// Validates one partition's produce payload the way Kafka's `LogValidator` does for magic v2,
/// without touching records: the payload is non-empty; every batch is complete, magic 2, with a
/// matching CRC32C, a known compression codec, `recordsCount >= 1` and
/// `recordsCount == lastOffsetDelta + 1`; no batch is a control batch (only the broker writes
/// those); an idempotent batch (`producerId >= 0`) has `baseSequence >= 0`; and no batch is
/// larger than `max_message_bytes`. Returns the headers in order.
pub fn validate_produce(
    bytes: &[u8],
    max_message_bytes: usize,
) -> Result<Vec<BatchHeader>, BatchError> {
    if bytes.is_empty() {
        return Err(BatchError::invalid(0, "empty record set"));
    }
    let mut headers = Vec::new();
    let mut iter = batches(bytes);
    loop {
        let position = iter.position();
        let Some(item) = iter.next() else { break };
        let (header, batch) = item?;
        if header.len_total() > max_message_bytes {
            return Err(BatchError::MessageTooLarge {
                position,
                size: header.len_total(),
                max: max_message_bytes,
            });
        }
        verify_crc(batch, &header, position)?;
        validate_fields(&header, position)?;
        headers.push(header);
    }
    Ok(headers)
}

fn validate_fields(header: &BatchHeader, position: usize) -> Result<(), BatchError> {
    let base = header.base_offset;
    if header.compression().is_none() {
        return Err(BatchError::invalid(
            position,
            format!(
                "unknown compression codec {} (base offset {base})",
                header.attributes & COMPRESSION_MASK
            ),
        ));
    }
    if header.records_count < 1 {
        return Err(BatchError::invalid(
            position,
            format!(
                "recordsCount {} must be at least 1 (base offset {base})",
                header.records_count
            ),
        ));
    }
    if header.last_offset_delta < 0
        || i64::from(header.records_count) != i64::from(header.last_offset_delta) + 1
    {
        return Err(BatchError::invalid(
            position,
            format!(
                "inconsistent batch: recordsCount {} but lastOffsetDelta {} (base offset {base})",
                header.records_count, header.last_offset_delta
            ),
        ));
    }
    if header.is_control() {
        return Err(BatchError::invalid(
            position,
            "clients may not write control batches",
        ));
    }
    if header.producer_id >= 0 && header.base_sequence < 0 {
        return Err(BatchError::invalid(
            position,
            format!(
                "idempotent batch of producer id {} has invalid baseSequence {}",
                header.producer_id, header.base_sequence
            ),
        ));
    }
    Ok(())
}

/// Overwrites the `baseOffset` field (bytes 0..8, outside the CRC) of the batch at the start of
/// `batch`.
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) -> Result<(), BatchError> {
    let field = batch
        .get_mut(0..8)
        .ok_or_else(|| BatchError::corrupt(0, "truncated: too short to hold a baseOffset field"))?;
    field.copy_from_slice(&base_offset.to_be_bytes());
    Ok(())
}

/// Overwrites the `partitionLeaderEpoch` field (bytes 12..16, outside the CRC) of the batch at
/// the start of `batch`.
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) -> Result<(), BatchError> {
    let field = batch
        .get_mut(LEADER_EPOCH_OFFSET..LEADER_EPOCH_OFFSET + 4)
        .ok_or_else(|| {
            BatchError::corrupt(
                0,
                "truncated: too short to hold a partitionLeaderEpoch field",
            )
        })?;
    field.copy_from_slice(&epoch.to_be_bytes());
    Ok(())
}

/// One record header (`key` is a string in Kafka's protocol).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordHeader {
    /// Header name.
    pub key: String,
    /// Header value, `None` for a null value.
    pub value: Option<Bytes>,
}

/// One decoded record of an uncompressed batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Offset relative to the batch's `baseOffset`.
    pub offset_delta: i32,
    /// Timestamp relative to the batch's `baseTimestamp`, in milliseconds.
    pub timestamp_delta: i64,
    /// Record key, `None` for a null key.
    pub key: Option<Bytes>,
    /// Record value, `None` for a null value (a tombstone).
    pub value: Option<Bytes>,
    /// Record headers in order.
    pub headers: Vec<RecordHeader>,
}

/// Appends a zigzag varint (Kafka's `varint`/`varlong`; both share this encoding).
pub(crate) fn put_varlong(buf: &mut BytesMut, value: i64) {
    let mut z = ((value << 1) ^ (value >> 63)) as u64;
    while z >= 0x80 {
        buf.put_u8((z as u8) | 0x80);
        z >>= 7;
    }
    buf.put_u8(z as u8);
}

/// Reads a zigzag varlong at `*pos`, advancing it; `None` when truncated or longer than 10 bytes.
pub(crate) fn get_varlong(b: &[u8], pos: &mut usize) -> Option<i64> {
    let mut z: u64 = 0;
    let mut shift = 0u32;
    loop {
        if shift > 63 {
            return None;
        }
        let byte = *b.get(*pos)?;
        *pos += 1;
        z |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    Some(((z >> 1) as i64) ^ -((z & 1) as i64))
}

fn get_varint(b: &[u8], pos: &mut usize) -> Option<i32> {
    get_varlong(b, pos).and_then(|v| i32::try_from(v).ok())
}

fn put_nullable_bytes(buf: &mut BytesMut, value: Option<&[u8]>) {
    match value {
        None => put_varlong(buf, -1),
        Some(v) => {
            put_varlong(buf, v.len() as i64);
            buf.put_slice(v);
        }
    }
}

/// Encodes one record (length prefix included) into `out`.
fn encode_record(
    out: &mut BytesMut,
    offset_delta: i32,
    timestamp_delta: i64,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &[(&str, Option<&[u8]>)],
) {
    let mut body = BytesMut::new();
    body.put_i8(0); // record attributes: unused
    put_varlong(&mut body, timestamp_delta);
    put_varlong(&mut body, i64::from(offset_delta));
    put_nullable_bytes(&mut body, key);
    put_nullable_bytes(&mut body, value);
    put_varlong(&mut body, headers.len() as i64);
    for (name, value) in headers {
        put_varlong(&mut body, name.len() as i64);
        body.put_slice(name.as_bytes());
        put_nullable_bytes(&mut body, *value);
    }
    put_varlong(out, body.len() as i64);
    out.extend_from_slice(&body);
}

/// A `(key, value)` pair for [`build_batch`]; `None` encodes a null key or value.
pub type KeyValue<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

/// Builds an uncompressed magic-2 batch (base offset 0, leader epoch -1, `CreateTime`, every
/// record stamped `base_timestamp_ms`) with a correct CRC, for the broker's own records: control
/// markers (`is_control`, key/value as Kafka defines them) and internal-topic records. `records`
/// are `(key, value)` pairs and should be non-empty: an empty slice gives a batch with
/// `recordsCount` 0 and `lastOffsetDelta` -1, which [`crate::log::PartitionLog::append`] refuses.
pub fn build_batch(
    records: &[KeyValue<'_>],
    base_timestamp_ms: i64,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    is_transactional: bool,
    is_control: bool,
) -> Bytes {
    let mut body = BytesMut::new();
    for (i, (key, value)) in records.iter().enumerate() {
        encode_record(&mut body, i as i32, 0, *key, *value, &[]);
    }
    let mut attributes: i16 = 0;
    if is_transactional {
        attributes |= TRANSACTIONAL_BIT;
    }
    if is_control {
        attributes |= CONTROL_BIT;
    }
    let count = records.len() as i32;
    let mut out = BytesMut::with_capacity(BATCH_HEADER_LEN + body.len());
    out.put_i64(0); // baseOffset: assigned on append
    out.put_i32((BATCH_HEADER_LEN - LOG_OVERHEAD + body.len()) as i32);
    out.put_i32(-1); // partitionLeaderEpoch
    out.put_i8(MAGIC_V2);
    out.put_u32(0); // crc, filled in below
    out.put_i16(attributes);
    out.put_i32(count - 1); // lastOffsetDelta
    out.put_i64(base_timestamp_ms);
    out.put_i64(base_timestamp_ms); // maxTimestamp
    out.put_i64(producer_id);
    out.put_i16(producer_epoch);
    out.put_i32(base_sequence);
    out.put_i32(count);
    out.extend_from_slice(&body);
    let crc = crc32c(&out[ATTRIBUTES_OFFSET..]);
    out[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    out.freeze()
}

/// Decodes the records of one uncompressed batch (`batch` starts with the batch header; bytes
/// after the batch are ignored). Compressed batches are refused with `InvalidRecord`: only the
/// log cleaner opens client data (through `codec`), and the broker writes its own records
/// uncompressed.
pub fn decode_records(batch: &[u8]) -> Result<Vec<Record>, BatchError> {
    let header = parse_framed(batch, 0)?;
    let base = header.base_offset;
    match header.compression() {
        Some(Compression::None) => {}
        other => {
            return Err(BatchError::invalid(
                0,
                format!(
                    "cannot decode records of a compressed batch ({other:?}, base offset {base})"
                ),
            ))
        }
    }
    if header.records_count < 0 {
        return Err(BatchError::invalid(
            0,
            format!(
                "negative recordsCount {} (base offset {base})",
                header.records_count
            ),
        ));
    }
    let data = &batch[..header.len_total()];
    let mut pos = BATCH_HEADER_LEN;
    // Every record takes at least 7 bytes, so a hostile count cannot force a huge allocation.
    let capacity = (header.records_count as usize).min((data.len() - pos) / 7);
    let mut records = Vec::with_capacity(capacity);
    for index in 0..header.records_count {
        let bad = |what: &str| {
            BatchError::corrupt(
                0,
                format!("record {index} of batch (base offset {base}): {what}"),
            )
        };
        let len = get_varint(data, &mut pos).ok_or_else(|| bad("bad length varint"))?;
        let len = usize::try_from(len).map_err(|_| bad("negative record length"))?;
        let end = pos
            .checked_add(len)
            .filter(|&end| end <= data.len())
            .ok_or_else(|| bad("record runs past the end of the batch"))?;
        let r = &data[pos..end];
        let mut p = 0usize;
        if r.is_empty() {
            return Err(bad("empty record"));
        }
        p += 1; // record attributes
        let timestamp_delta = get_varlong(r, &mut p).ok_or_else(|| bad("bad timestampDelta"))?;
        let offset_delta = get_varint(r, &mut p).ok_or_else(|| bad("bad offsetDelta"))?;
        let key = get_nullable_bytes(r, &mut p).ok_or_else(|| bad("bad key"))?;
        let value = get_nullable_bytes(r, &mut p).ok_or_else(|| bad("bad value"))?;
        let header_count = get_varint(r, &mut p).ok_or_else(|| bad("bad header count"))?;
        if header_count < 0 {
            return Err(bad("negative header count"));
        }
        let mut headers = Vec::with_capacity((header_count as usize).min(r.len() / 2));
        for _ in 0..header_count {
            let name = get_nullable_bytes(r, &mut p)
                .flatten()
                .ok_or_else(|| bad("bad header key"))?;
            let name = String::from_utf8(name.to_vec()).map_err(|_| bad("header key not UTF-8"))?;
            let value = get_nullable_bytes(r, &mut p).ok_or_else(|| bad("bad header value"))?;
            headers.push(RecordHeader { key: name, value });
        }
        if p != r.len() {
            return Err(bad("record length does not match its fields"));
        }
        records.push(Record {
            offset_delta,
            timestamp_delta,
            key,
            value,
            headers,
        });
        pos = end;
    }
    if pos != data.len() {
        return Err(BatchError::corrupt(
            0,
            format!(
                "batch (base offset {base}) has {} bytes after its {} records",
                data.len() - pos,
                header.records_count
            ),
        ));
    }
    Ok(records)
}

/// Reads a varint-length-prefixed byte string; `Some(None)` for length -1 (null).
fn get_nullable_bytes(b: &[u8], pos: &mut usize) -> Option<Option<Bytes>> {
    let len = get_varint(b, pos)?;
    if len == -1 {
        return Some(None);
    }
    let len = usize::try_from(len).ok()?;
    let end = pos.checked_add(len).filter(|&end| end <= b.len())?;
    let out = Bytes::copy_from_slice(&b[*pos..end]);
    *pos = end;
    Some(Some(out))
}

/// Checks that every record of a produce payload for a compacted topic has a key (Kafka's
/// `LogValidator` rule), refusing with INVALID_RECORD and Kafka's words otherwise. `headers`
/// are the payload's batches from [`validate_produce`]. Compressed batches are not opened (the
/// produce path never decompresses client data) and pass; should one hold a record without a
/// key, the log cleaner drops that record.
pub fn check_keys_present(bytes: &[u8], headers: &[BatchHeader]) -> Result<(), BatchError> {
    let mut position = 0;
    for header in headers {
        let batch = &bytes[position..position + header.len_total()];
        if header.compression() == Some(Compression::None) {
            let (_, spans) = record_spans(batch).map_err(|e| match e {
                BatchError::CorruptMessage { reason, .. } => BatchError::corrupt(position, reason),
                other => other,
            })?;
            if spans.iter().any(|s| s.key.is_none()) {
                return Err(BatchError::invalid(
                    position,
                    "Compacted topic cannot accept message without key",
                ));
            }
        }
        position += header.len_total();
    }
    Ok(())
}

/// Where one record lies in a batch's records section (uncompressed), and what the cleaner
/// needs of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RecordSpan {
    /// Byte range of the whole record (length prefix included) within the records section.
    pub(crate) range: std::ops::Range<usize>,
    /// Where the record's `offsetDelta` starts (right after its `timestampDelta`).
    pub(crate) after_timestamp: usize,
    /// The record's timestamp relative to the batch's `baseTimestamp`.
    pub(crate) timestamp_delta: i64,
    /// The record's offset relative to the batch's base offset.
    pub(crate) offset_delta: i32,
    /// Byte range of the key within the records section, `None` for a null key.
    pub(crate) key: Option<std::ops::Range<usize>>,
    /// Whether the value is null (a tombstone).
    pub(crate) null_value: bool,
}

/// The records section of one uncompressed batch (the bytes after its header) with where each
/// record lies in it ([`record_spans_in`]). Compressed batches are refused, as by
/// [`decode_records`].
pub(crate) fn record_spans(batch: &[u8]) -> Result<(&[u8], Vec<RecordSpan>), BatchError> {
    let header = parse_framed(batch, 0)?;
    let base = header.base_offset;
    if header.compression() != Some(Compression::None) {
        return Err(BatchError::invalid(
            0,
            format!("cannot read records of a compressed batch (base offset {base})"),
        ));
    }
    let records = &batch[BATCH_HEADER_LEN..header.len_total()];
    Ok((records, record_spans_in(records, base)?))
}

/// Walks the records of a records section (a batch's bytes after its header, decompressed
/// when the batch is compressed) without copying them: byte ranges, timestamp and offset
/// deltas, key, whether the value is null. `base` (the batch's base offset) names the batch in
/// errors.
pub(crate) fn record_spans_in(data: &[u8], base: i64) -> Result<Vec<RecordSpan>, BatchError> {
    let mut pos = 0;
    let mut spans = Vec::with_capacity(data.len() / 7);
    let mut index = 0usize;
    while pos < data.len() {
        let bad = |what: &str| {
            BatchError::corrupt(
                0,
                format!("record {index} of batch (base offset {base}): {what}"),
            )
        };
        let start = pos;
        let len = get_varint(data, &mut pos).ok_or_else(|| bad("bad length varint"))?;
        let len = usize::try_from(len).map_err(|_| bad("negative record length"))?;
        let end = pos
            .checked_add(len)
            .filter(|&end| end <= data.len() && len > 0)
            .ok_or_else(|| bad("record runs past the end of the batch"))?;
        let mut p = pos + 1; // record attributes
        let timestamp_delta =
            get_varlong(&data[..end], &mut p).ok_or_else(|| bad("bad timestampDelta"))?;
        let after_timestamp = p;
        let offset_delta =
            get_varint(&data[..end], &mut p).ok_or_else(|| bad("bad offsetDelta"))?;
        let key_len = get_varint(&data[..end], &mut p).ok_or_else(|| bad("bad key length"))?;
        let key = if key_len < 0 {
            None
        } else {
            let key_end = p + key_len as usize;
            if key_end > end {
                return Err(bad("key runs past the record"));
            }
            let range = p..key_end;
            p = key_end;
            Some(range)
        };
        let value_len = get_varint(&data[..end], &mut p).ok_or_else(|| bad("bad value length"))?;
        spans.push(RecordSpan {
            range: start..end,
            after_timestamp,
            timestamp_delta,
            offset_delta,
            key,
            null_value: value_len < 0,
        });
        pos = end;
        index += 1;
    }
    Ok(spans)
}

/// The records at `kept` (spans of the records section `records`, in order) as a new
/// uncompressed records section. With a `timestamp_shift`, each record's `timestampDelta` is
/// lowered by it (the batch's `baseTimestamp` moves up by as much: the record timestamps stay)
/// and the record re-encoded; otherwise the records are copied as they are.
pub(crate) fn kept_records(records: &[u8], kept: &[&RecordSpan], timestamp_shift: i64) -> Vec<u8> {
    let body: usize = kept.iter().map(|s| s.range.len()).sum();
    let mut out = Vec::with_capacity(body + kept.len() * 8);
    if timestamp_shift == 0 {
        for span in kept {
            out.extend_from_slice(&records[span.range.clone()]);
        }
        return out;
    }
    let mut record = BytesMut::new();
    let mut length = BytesMut::new();
    for span in kept {
        record.clear();
        length.clear();
        let end = span.range.end;
        // The attributes byte sits right before the timestamp delta, after the length varint.
        let length_len = {
            let mut p = span.range.start;
            get_varint(records, &mut p);
            p - span.range.start
        };
        record.put_u8(records[span.range.start + length_len]);
        put_varlong(
            &mut record,
            span.timestamp_delta.saturating_sub(timestamp_shift),
        );
        record.extend_from_slice(&records[span.after_timestamp..end]);
        put_varlong(&mut length, record.len() as i64);
        out.extend_from_slice(&length);
        out.extend_from_slice(&record);
    }
    out
}

/// A copy of `batch`'s header framing `payload` (a records section of `records_count`
/// records, compressed with `compression`): base offset, `lastOffsetDelta`, timestamps,
/// producer id, epoch and base sequence stay, so the records keep their offsets and a
/// producer's sequence state is still derivable. With `delete_horizon`, the delete-horizon
/// flag is set and `baseTimestamp` holds it (the records' deltas must have been shifted to
/// match, [`kept_records`]). Length, attributes, `recordsCount` and CRC are recomputed. An
/// empty payload with a count of 0 gives an empty batch (Kafka keeps such a batch to preserve
/// the last sequence of a producer).
pub(crate) fn reframed_batch(
    batch: &[u8],
    payload: &[u8],
    records_count: i32,
    compression: Compression,
    delete_horizon: Option<i64>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(BATCH_HEADER_LEN + payload.len());
    out.extend_from_slice(&batch[..BATCH_HEADER_LEN]);
    out.extend_from_slice(payload);
    let length = (out.len() - LOG_OVERHEAD) as i32;
    out[LENGTH_OFFSET..LENGTH_OFFSET + 4].copy_from_slice(&length.to_be_bytes());
    let mut attributes = (be_i16(batch, ATTRIBUTES_OFFSET) & !COMPRESSION_MASK) | compression.id();
    if let Some(horizon) = delete_horizon {
        attributes |= DELETE_HORIZON_BIT;
        out[BASE_TIMESTAMP_OFFSET..BASE_TIMESTAMP_OFFSET + 8]
            .copy_from_slice(&horizon.to_be_bytes());
    }
    out[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attributes.to_be_bytes());
    out[BATCH_HEADER_LEN - 4..BATCH_HEADER_LEN].copy_from_slice(&records_count.to_be_bytes());
    let crc = crc32c(&out[ATTRIBUTES_OFFSET..]);
    out[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A batch of `n` records with `value_len`-byte values, base offset 0.
    pub(crate) fn sample_batch(n: usize, value_len: usize, ts: i64) -> Bytes {
        let value = vec![b'v'; value_len];
        let records: Vec<KeyValue<'_>> = (0..n).map(|_| (None, Some(value.as_slice()))).collect();
        build_batch(&records, ts, -1, -1, -1, false, false)
    }

    /// Bitwise CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), written from the definition
    /// so the known-good test does not trust the `crc32c` crate.
    fn crc32c_reference(data: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &byte in data {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0x82F6_3B78
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    /// One record, key null, value "hi", timestamp 1000, plain producer; derived by hand from the
    /// v2 spec. Record: attributes 00, timestampDelta 0 -> 00, offsetDelta 0 -> 00,
    /// keyLength -1 -> zigzag 1 -> 01, valueLength 2 -> zigzag 4 -> 04, 'h' 'i', headers 0 -> 00;
    /// that is 8 bytes, so the length prefix is zigzag(8) = 16 = 0x10. batchLength = 49 + 9 = 58.
    fn hand_made_batch() -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&0i64.to_be_bytes()); // baseOffset
        b.extend_from_slice(&58i32.to_be_bytes()); // batchLength
        b.extend_from_slice(&(-1i32).to_be_bytes()); // partitionLeaderEpoch
        b.push(2); // magic
        b.extend_from_slice(&[0, 0, 0, 0]); // crc placeholder
        b.extend_from_slice(&0i16.to_be_bytes()); // attributes
        b.extend_from_slice(&0i32.to_be_bytes()); // lastOffsetDelta
        b.extend_from_slice(&1000i64.to_be_bytes()); // baseTimestamp
        b.extend_from_slice(&1000i64.to_be_bytes()); // maxTimestamp
        b.extend_from_slice(&(-1i64).to_be_bytes()); // producerId
        b.extend_from_slice(&(-1i16).to_be_bytes()); // producerEpoch
        b.extend_from_slice(&(-1i32).to_be_bytes()); // baseSequence
        b.extend_from_slice(&1i32.to_be_bytes()); // recordsCount
        b.extend_from_slice(&[0x10, 0x00, 0x00, 0x00, 0x01, 0x04, b'h', b'i', 0x00]);
        let crc = crc32c_reference(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        b
    }

    #[test]
    fn crc_reference_matches_published_check_value() {
        // The standard CRC-32C check value for "123456789".
        assert_eq!(crc32c_reference(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn batch_crc_matches_the_reference_at_every_length_and_alignment() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b""), 0);
        let data: Vec<u8> = (0..70_000u32).map(|i| (i * 131 + 7) as u8).collect();
        let lens = (0..300).chain([1023, 1024, 1025, 4096, 65_535, 69_000]);
        for len in lens {
            for start in [0, 1, 3, 8] {
                let slice = &data[start..start + len];
                assert_eq!(
                    crc32c(slice),
                    crc32c_reference(slice),
                    "len {len} at {start}"
                );
            }
        }
    }

    #[test]
    fn builder_matches_hand_made_batch_byte_for_byte() {
        let expected = hand_made_batch();
        assert_eq!(expected.len(), 70);
        let built = build_batch(&[(None, Some(b"hi"))], 1000, -1, -1, -1, false, false);
        assert_eq!(&built[..], &expected[..]);
    }

    #[test]
    fn hand_made_batch_validates_and_decodes() {
        let b = hand_made_batch();
        let headers = validate_produce(&b, 1_000_000).expect("valid");
        assert_eq!(headers.len(), 1);
        let h = headers[0];
        assert_eq!(h.len_total(), 70);
        assert_eq!(h.records_count, 1);
        assert_eq!(h.max_timestamp, 1000);
        assert_eq!(h.compression(), Some(Compression::None));
        let records = decode_records(&b).expect("decodes");
        assert_eq!(
            records,
            vec![Record {
                offset_delta: 0,
                timestamp_delta: 0,
                key: None,
                value: Some(Bytes::from_static(b"hi")),
                headers: vec![],
            }]
        );
    }

    #[test]
    fn builder_decoder_round_trip() {
        let big = vec![7u8; 300]; // needs a 2-byte varint length
        let records: Vec<KeyValue<'_>> = vec![
            (Some(b"k1"), Some(b"v1")),
            (None, None),
            (Some(b""), Some(&big)),
        ];
        let b = build_batch(&records, 42, 7, 3, 11, true, false);
        let h = BatchHeader::parse(&b).expect("header");
        assert_eq!(h.records_count, 3);
        assert_eq!(h.last_offset_delta, 2);
        assert_eq!(h.producer_id, 7);
        assert_eq!(h.producer_epoch, 3);
        assert_eq!(h.base_sequence, 11);
        assert!(h.is_transactional());
        assert!(!h.is_control());
        validate_produce(&b, 10_000).expect("valid");
        let decoded = decode_records(&b).expect("decode");
        assert_eq!(decoded.len(), 3);
        for (i, (r, (k, v))) in decoded.iter().zip(&records).enumerate() {
            assert_eq!(r.offset_delta, i as i32);
            assert_eq!(r.key.as_deref(), *k);
            assert_eq!(r.value.as_deref(), *v);
        }
    }

    #[test]
    fn decoder_reads_record_headers_and_negative_deltas() {
        let mut body = BytesMut::new();
        encode_record(
            &mut body,
            0,
            -5,
            Some(b"k"),
            Some(b"v"),
            &[("h1", Some(b"x")), ("h2", None)],
        );
        let mut b = BytesMut::new();
        b.put_i64(0);
        b.put_i32((49 + body.len()) as i32);
        b.put_i32(-1);
        b.put_i8(2);
        b.put_u32(0);
        b.put_i16(0);
        b.put_i32(0);
        b.put_i64(100);
        b.put_i64(100);
        b.put_i64(-1);
        b.put_i16(-1);
        b.put_i32(-1);
        b.put_i32(1);
        b.extend_from_slice(&body);
        let crc = crc32c::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        let recs = decode_records(&b).expect("decode");
        assert_eq!(recs[0].timestamp_delta, -5);
        assert_eq!(
            recs[0].headers,
            vec![
                RecordHeader {
                    key: "h1".into(),
                    value: Some(Bytes::from_static(b"x"))
                },
                RecordHeader {
                    key: "h2".into(),
                    value: None
                },
            ]
        );
    }

    #[test]
    fn control_batch_is_built_but_refused_from_clients() {
        let b = build_batch(
            &[(Some(b"\0\0\0\0"), Some(b"\0\0\0\0\0\0"))],
            5,
            9,
            0,
            -1,
            true,
            true,
        );
        let h = BatchHeader::parse(&b).expect("header");
        assert!(h.is_control() && h.is_transactional());
        let err = validate_produce(&b, 10_000).unwrap_err();
        assert_eq!(err.kafka_error_code(), 87);
    }

    #[test]
    fn several_batches_in_one_buffer() {
        let mut buf = Vec::new();
        buf.extend_from_slice(&sample_batch(3, 10, 1));
        buf.extend_from_slice(&sample_batch(1, 10, 2));
        buf.extend_from_slice(&sample_batch(5, 10, 3));
        let headers = validate_produce(&buf, 10_000).expect("valid");
        let counts: Vec<i32> = headers.iter().map(|h| h.records_count).collect();
        assert_eq!(counts, vec![3, 1, 5]);
        let total: usize = headers.iter().map(BatchHeader::len_total).sum();
        assert_eq!(total, buf.len());
    }

    #[test]
    fn bad_crc_is_corrupt_message() {
        let mut b = sample_batch(2, 10, 1).to_vec();
        let last = b.len() - 1;
        b[last] ^= 0xff;
        let err = validate_produce(&b, 10_000).unwrap_err();
        assert!(
            matches!(err, BatchError::CorruptMessage { position: 0, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("CRC mismatch"), "{err}");
        assert_eq!(err.kafka_error_code(), 2);
    }

    #[test]
    fn bad_crc_in_second_batch_names_its_position() {
        let first = sample_batch(1, 10, 1);
        let mut buf = first.to_vec();
        buf.extend_from_slice(&sample_batch(1, 10, 1));
        let last = buf.len() - 1;
        buf[last] ^= 1;
        match validate_produce(&buf, 10_000) {
            Err(BatchError::CorruptMessage { position, .. }) => assert_eq!(position, first.len()),
            other => panic!("expected CorruptMessage, got {other:?}"),
        }
    }

    #[test]
    fn bad_magic_is_invalid_record() {
        let mut b = sample_batch(1, 10, 1).to_vec();
        b[16] = 1;
        let err = validate_produce(&b, 10_000).unwrap_err();
        assert!(matches!(err, BatchError::InvalidRecord { .. }), "{err}");
        assert_eq!(err.kafka_error_code(), 87);
    }

    #[test]
    fn truncated_and_bad_length_are_corrupt() {
        let b = sample_batch(2, 10, 1);
        for cut in [1, 16, 17, 40, 60, 61, b.len() - 1] {
            let err = validate_produce(&b[..cut], 10_000).unwrap_err();
            assert_eq!(err.kafka_error_code(), 2, "cut at {cut}: {err}");
        }
        let mut short = b.to_vec();
        short[8..12].copy_from_slice(&10i32.to_be_bytes());
        let err = validate_produce(&short, 10_000).unwrap_err();
        assert!(err.to_string().contains("batchLength 10"), "{err}");
        let mut negative = b.to_vec();
        negative[8..12].copy_from_slice(&(-5i32).to_be_bytes());
        assert_eq!(
            validate_produce(&negative, 10_000)
                .unwrap_err()
                .kafka_error_code(),
            2
        );
    }

    #[test]
    fn empty_payload_is_refused() {
        assert_eq!(
            validate_produce(&[], 100).unwrap_err().kafka_error_code(),
            87
        );
    }

    #[test]
    fn too_large_is_message_too_large() {
        let b = sample_batch(4, 100, 1);
        let err = validate_produce(&b, b.len() - 1).unwrap_err();
        assert_eq!(
            err,
            BatchError::MessageTooLarge {
                position: 0,
                size: b.len(),
                max: b.len() - 1
            }
        );
        assert_eq!(err.kafka_error_code(), 10);
        assert!(validate_produce(&b, b.len()).is_ok());
    }

    /// Re-signs a batch after editing covered fields, so only the edited field is wrong.
    fn resign(b: &mut [u8]) {
        let crc = crc32c::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
    }

    #[test]
    fn inconsistent_counts_are_invalid_record() {
        let mut b = sample_batch(3, 10, 1).to_vec();
        b[23..27].copy_from_slice(&5i32.to_be_bytes()); // lastOffsetDelta 5, recordsCount 3
        resign(&mut b);
        let err = validate_produce(&b, 10_000).unwrap_err();
        assert!(
            err.to_string()
                .contains("recordsCount 3 but lastOffsetDelta 5"),
            "{err}"
        );

        let mut zero = sample_batch(1, 10, 1).to_vec();
        zero[57..61].copy_from_slice(&0i32.to_be_bytes());
        zero[23..27].copy_from_slice(&(-1i32).to_be_bytes());
        resign(&mut zero);
        assert_eq!(
            validate_produce(&zero, 10_000)
                .unwrap_err()
                .kafka_error_code(),
            87
        );

        let mut codec = sample_batch(1, 10, 1).to_vec();
        codec[21..23].copy_from_slice(&6i16.to_be_bytes());
        resign(&mut codec);
        let err = validate_produce(&codec, 10_000).unwrap_err();
        assert!(err.to_string().contains("compression codec 6"), "{err}");
    }

    #[test]
    fn base_offset_and_epoch_patch_keeps_crc_valid() {
        let mut b = sample_batch(2, 10, 1).to_vec();
        set_base_offset(&mut b, 12345).expect("patch");
        set_partition_leader_epoch(&mut b, 7).expect("patch");
        let h = validate_produce(&b, 10_000).expect("still valid")[0];
        assert_eq!(h.base_offset, 12345);
        assert_eq!(h.partition_leader_epoch, 7);
        assert_eq!(h.last_offset(), 12346);
        assert!(set_base_offset(&mut [0u8; 4], 1).is_err());
    }

    #[test]
    fn varints_round_trip_at_the_edges() {
        for v in [
            0i64,
            1,
            -1,
            63,
            -64,
            64,
            300,
            i64::from(i32::MAX),
            i64::MIN,
            i64::MAX,
        ] {
            let mut buf = BytesMut::new();
            put_varlong(&mut buf, v);
            let mut pos = 0;
            assert_eq!(get_varlong(&buf, &mut pos), Some(v));
            assert_eq!(pos, buf.len());
        }
        let mut pos = 0;
        assert_eq!(get_varlong(&[0x80; 11], &mut pos), None);
    }

    fn kafka_protocol_records(n: i64) -> Vec<kafka_protocol::records::Record> {
        use kafka_protocol::protocol::StrBytes;
        use kafka_protocol::records::{Record as KpRecord, TimestampType};
        let mut headers = indexmap::IndexMap::new();
        headers.insert(
            StrBytes::from_static_str("trace"),
            Some(Bytes::from_static(b"abc")),
        );
        (0..n)
            .map(|i| KpRecord {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: 42,
                producer_epoch: 1,
                timestamp_type: TimestampType::Creation,
                offset: i,
                sequence: 7 + i as i32,
                timestamp: 1000 + i * 10,
                key: Some(Bytes::from(format!("k{i}"))),
                value: Some(Bytes::from(vec![i as u8; 50])),
                headers: headers.clone(),
            })
            .collect()
    }

    /// A batch flagged gzip whose "compressed" payload is the plain records (the `kafka-protocol`
    /// crate is built without codecs here); enough to test that the broker frames, CRC-checks
    /// and stores compressed batches without decoding them.
    pub(crate) fn fake_gzip_batch(n: i64) -> BytesMut {
        use kafka_protocol::records::{
            Compression as KpCompression, RecordBatchEncoder, RecordEncodeOptions,
        };
        let mut buf = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression: KpCompression::Gzip,
        };
        RecordBatchEncoder::encode_with_custom_compression(
            &mut buf,
            &kafka_protocol_records(n),
            &options,
            Some(|src: &mut BytesMut, dst: &mut BytesMut, _| {
                dst.extend_from_slice(src);
                Ok(())
            }),
        )
        .expect("encode");
        buf
    }

    #[test]
    fn interoperates_with_the_kafka_protocol_crate() {
        use kafka_protocol::records::{
            Compression as KpCompression, RecordBatchDecoder, RecordBatchEncoder,
            RecordEncodeOptions,
        };
        // Theirs -> ours.
        let mut buf = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression: KpCompression::None,
        };
        RecordBatchEncoder::encode(&mut buf, &kafka_protocol_records(5), &options).expect("encode");
        let h = validate_produce(&buf, 1 << 20).expect("valid")[0];
        assert_eq!(h.len_total(), buf.len());
        assert_eq!((h.records_count, h.last_offset_delta), (5, 4));
        assert_eq!((h.base_timestamp, h.max_timestamp), (1000, 1040));
        assert_eq!(
            (h.producer_id, h.producer_epoch, h.base_sequence),
            (42, 1, 7)
        );
        let records = decode_records(&buf).expect("decode");
        assert_eq!(records.len(), 5);
        assert_eq!(records[3].offset_delta, 3);
        assert_eq!(records[3].timestamp_delta, 30);
        assert_eq!(records[3].key.as_deref(), Some(&b"k3"[..]));
        assert_eq!(records[3].value.as_deref(), Some(&[3u8; 50][..]));
        assert_eq!(records[3].headers[0].key, "trace");
        assert_eq!(records[3].headers[0].value.as_deref(), Some(&b"abc"[..]));

        // Ours -> theirs.
        let mut built = build_batch(
            &[(Some(b"a"), Some(b"1")), (None, Some(b"2"))],
            5000,
            3,
            2,
            10,
            true,
            false,
        );
        let set = RecordBatchDecoder::decode(&mut built).expect("decode");
        assert_eq!(set.records.len(), 2);
        let r = &set.records[1];
        assert_eq!((r.offset, r.timestamp, r.sequence), (1, 5000, 11));
        assert!(r.transactional && !r.control);
        assert_eq!((r.producer_id, r.producer_epoch), (3, 2));
        assert_eq!(r.key, None);
        assert_eq!(r.value.as_deref(), Some(&b"2"[..]));

        // Compressed batches are validated and stored, never decoded.
        let gz = fake_gzip_batch(3);
        let h = validate_produce(&gz, 1 << 20).expect("valid")[0];
        assert_eq!(h.compression(), Some(Compression::Gzip));
        assert_eq!(h.records_count, 3);
        assert_eq!(decode_records(&gz).unwrap_err().kafka_error_code(), 87);
    }

    #[test]
    fn decoder_refuses_garbage_records() {
        let mut b = sample_batch(1, 10, 1).to_vec();
        b[61] = 0x7e; // record length far beyond the batch
        resign(&mut b);
        assert_eq!(decode_records(&b).unwrap_err().kafka_error_code(), 2);
        let mut compressed = sample_batch(1, 10, 1).to_vec();
        compressed[21..23].copy_from_slice(&1i16.to_be_bytes());
        assert_eq!(
            decode_records(&compressed).unwrap_err().kafka_error_code(),
            87
        );
    }
}
