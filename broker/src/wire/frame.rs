//! Outgoing frames that refer to large buffers instead of copying them.
//!
//! A fetch response is mostly record batches the log already holds as `Bytes` (the read
//! cache's, or a file read's). Encoding it into one contiguous buffer copied every one of them
//! once more, into a buffer grown by reallocation, only for the socket to copy them again; for
//! a leader serving two followers and a consumer group that was a copy of every produced byte
//! three times over. [`FrameBuf`] is the encoder's buffer instead: the `kafka-protocol` encoder
//! writes into it as into a `BytesMut`, except that a slice which *is* one of the buffers it was
//! told about (same address, same length) is kept as a reference to that buffer. The frame is
//! then a list of parts written with one vectored write ([`write_parts`]).
//!
//! Encoders that go back to fill a gap (`seek`/`range` before the end) still work: the parts
//! are first copied into one buffer, as before.

use std::io::IoSlice;

use bytes::buf::UninitSlice;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::protocol::buf::ByteBufMut;
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// Slices shorter than this are copied even when shareable: a part costs an iovec entry.
const SHARE_MIN: usize = 4096;

/// Parts per vectored write (well below any system's `IOV_MAX`).
const MAX_IOVECS: usize = 64;

/// An encoder's output buffer that keeps known large buffers by reference. See the module docs.
#[derive(Debug, Default)]
pub(crate) struct FrameBuf {
    /// Finished parts, in order.
    parts: Vec<Bytes>,
    /// Sum of the lengths of `parts`.
    parts_len: usize,
    /// The part being written.
    tail: BytesMut,
    /// Buffers that may be referenced rather than copied when written whole.
    shareable: Vec<Bytes>,
}

impl FrameBuf {
    /// An empty buffer that refers to any of `shareable` (instead of copying it) when the
    /// encoder writes exactly that buffer's bytes.
    pub(crate) fn sharing(shareable: Vec<Bytes>) -> Self {
        FrameBuf {
            shareable: shareable
                .into_iter()
                .filter(|b| b.len() >= SHARE_MIN)
                .collect(),
            ..FrameBuf::default()
        }
    }

    /// Bytes written so far.
    pub(crate) fn len(&self) -> usize {
        self.parts_len + self.tail.len()
    }

    /// The frame's parts, in order.
    pub(crate) fn into_parts(mut self) -> Vec<Bytes> {
        self.seal_tail();
        self.parts
    }

    /// Ends the part being written.
    fn seal_tail(&mut self) {
        if !self.tail.is_empty() {
            let part = self.tail.split().freeze();
            self.parts_len += part.len();
            self.parts.push(part);
        }
    }

    /// Copies every part into the tail, so that any offset can be written again.
    fn flatten(&mut self) {
        if self.parts.is_empty() {
            return;
        }
        let mut all = BytesMut::with_capacity(self.len());
        for part in self.parts.drain(..) {
            all.extend_from_slice(&part);
        }
        all.extend_from_slice(&self.tail);
        self.tail = all;
        self.parts_len = 0;
    }
}

// SAFETY: every unsafe method delegates to the `BytesMut` tail, whose implementation upholds
// the trait's contract; `put_slice` (safe) is the only method with behaviour of its own.
#[allow(unsafe_code)]
unsafe impl BufMut for FrameBuf {
    fn remaining_mut(&self) -> usize {
        self.tail.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: the caller initialised `cnt` bytes of the tail's `chunk_mut`, as the
        // contract of `BytesMut::advance_mut` requires.
        unsafe { self.tail.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.tail.chunk_mut()
    }

    fn put_slice(&mut self, src: &[u8]) {
        if src.len() >= SHARE_MIN {
            let shared = self
                .shareable
                .iter()
                .find(|b| b.as_ptr() == src.as_ptr() && b.len() == src.len())
                .cloned();
            if let Some(part) = shared {
                self.seal_tail();
                self.parts_len += part.len();
                self.parts.push(part);
                return;
            }
        }
        self.tail.extend_from_slice(src);
    }
}

impl ByteBufMut for FrameBuf {
    fn offset(&self) -> usize {
        self.len()
    }

    fn seek(&mut self, offset: usize) {
        if offset < self.parts_len {
            self.flatten();
        }
        self.tail.resize(offset - self.parts_len, 0);
    }

    fn range(&mut self, r: std::ops::Range<usize>) -> &mut [u8] {
        if r.start < self.parts_len {
            self.flatten();
        }
        let base = self.parts_len;
        &mut self.tail[r.start - base..r.end - base]
    }
}

/// Writes `parts` in order, with vectored writes.
pub(crate) async fn write_parts<W: AsyncWrite + Unpin>(
    wr: &mut W,
    mut parts: Vec<Bytes>,
) -> std::io::Result<()> {
    parts.retain(|p| !p.is_empty());
    let mut at = 0;
    while at < parts.len() {
        let slices: Vec<IoSlice<'_>> = parts[at..]
            .iter()
            .take(MAX_IOVECS)
            .map(|p| IoSlice::new(p))
            .collect();
        let mut written = wr.write_vectored(&slices).await?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while written > 0 && at < parts.len() {
            let part = &mut parts[at];
            if written >= part.len() {
                written -= part.len();
                at += 1;
            } else {
                part.advance(written);
                written = 0;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use kafka_protocol::messages::{FetchResponse, TopicName};
    use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

    fn response(records: &[Bytes]) -> FetchResponse {
        let mut topic = FetchableTopicResponse::default();
        topic.topic = TopicName(StrBytes::from_static_str("t"));
        for (i, r) in records.iter().enumerate() {
            let mut pd = PartitionData::default();
            pd.partition_index = i as i32;
            pd.high_watermark = 7;
            pd.records = Some(r.clone());
            topic.partitions.push(pd);
        }
        let mut resp = FetchResponse::default();
        resp.responses.push(topic);
        resp
    }

    fn concat(parts: &[Bytes]) -> Vec<u8> {
        parts.iter().flat_map(|p| p.iter().copied()).collect()
    }

    #[test]
    fn a_shared_frame_is_byte_for_byte_the_copied_one_for_every_version() {
        let records = vec![
            Bytes::from(vec![1u8; 10_000]),
            Bytes::from(vec![2u8; 100]),
            Bytes::new(),
            Bytes::from(vec![3u8; 5000]),
        ];
        let resp = response(&records);
        for version in 4..=16 {
            let mut copied = BytesMut::new();
            resp.encode(&mut copied, version).expect("encode");
            let mut shared = FrameBuf::sharing(records.clone());
            resp.encode(&mut shared, version).expect("encode");
            let parts = shared.into_parts();
            assert!(concat(&parts) == copied.to_vec(), "version {version}");
            // The two large record sets are referenced, not copied.
            for big in [&records[0], &records[3]] {
                assert!(
                    parts.iter().any(|p| p.as_ptr() == big.as_ptr()),
                    "v{version}"
                );
            }
            let mut frame = Bytes::from(concat(&parts));
            let decoded = FetchResponse::decode(&mut frame, version).expect("decode");
            let first = &decoded.responses[0].partitions;
            assert!(first
                .iter()
                .zip(&records)
                .all(|(p, r)| p.records.as_ref() == Some(r)));
        }
    }

    #[test]
    fn writing_before_the_end_copies_the_parts_first() {
        let big = Bytes::from(vec![9u8; 8192]);
        let mut buf = FrameBuf::sharing(vec![big.clone()]);
        buf.put_slice(b"head");
        buf.put_slice(&big);
        buf.put_slice(b"tail");
        buf.range(0..4).copy_from_slice(b"HEAD");
        let end = buf.offset();
        buf.seek(end + 2);
        let parts = buf.into_parts();
        let mut expected = b"HEAD".to_vec();
        expected.extend_from_slice(&big);
        expected.extend_from_slice(b"tail\0\0");
        assert_eq!(concat(&parts), expected);
    }

    #[tokio::test]
    async fn parts_are_written_whole_and_in_order() {
        let parts: Vec<Bytes> = (0..200u32)
            .map(|i| Bytes::from(vec![i as u8; (i as usize * 37) % 3000]))
            .collect();
        let expected = concat(&parts);
        let (mut a, mut b) = tokio::io::duplex(1000);
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut b, &mut got)
                .await
                .expect("read");
            got
        });
        write_parts(&mut a, parts).await.expect("write");
        drop(a);
        assert_eq!(reader.await.expect("reader"), expected);
    }
}
