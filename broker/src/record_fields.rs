//! Big-endian fields of the broker's internal-topic records (`__consumer_offsets`,
//! `__transaction_state`): Kafka's classic encoding of int8/16/32/64, int16-length strings and
//! int32-length bytes. Readers return `None` on truncated or malformed input instead of
//! panicking, so a damaged record is skipped by replay rather than taking the broker down.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Writes an int16-length string; lengths are clamped so they never wrap (ids, topic names and
/// metadata are bounded far below 32 KiB by request limits anyway).
pub(crate) fn put_str(b: &mut BytesMut, s: &str) {
    let bytes = &s.as_bytes()[..s.len().min(i16::MAX as usize)];
    b.put_i16(bytes.len() as i16);
    b.put_slice(bytes);
}

/// Writes a nullable int16-length string (-1 for null).
pub(crate) fn put_nullable_str(b: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_str(b, s),
        None => b.put_i16(-1),
    }
}

/// Writes int32-length bytes.
pub(crate) fn put_bytes(b: &mut BytesMut, v: &[u8]) {
    b.put_i32(v.len() as i32);
    b.put_slice(v);
}

pub(crate) fn get_i8(b: &mut &[u8]) -> Option<i8> {
    (b.remaining() >= 1).then(|| b.get_i8())
}

pub(crate) fn get_i16(b: &mut &[u8]) -> Option<i16> {
    (b.remaining() >= 2).then(|| b.get_i16())
}

pub(crate) fn get_i32(b: &mut &[u8]) -> Option<i32> {
    (b.remaining() >= 4).then(|| b.get_i32())
}

pub(crate) fn get_i64(b: &mut &[u8]) -> Option<i64> {
    (b.remaining() >= 8).then(|| b.get_i64())
}

/// Reads a nullable int16-length string: `Some(None)` for null, `None` when malformed.
pub(crate) fn get_nullable_str(b: &mut &[u8]) -> Option<Option<String>> {
    let len = get_i16(b)?;
    if len < 0 {
        return Some(None);
    }
    let len = len as usize;
    if b.remaining() < len {
        return None;
    }
    let s = String::from_utf8(b[..len].to_vec()).ok()?;
    b.advance(len);
    Some(Some(s))
}

/// Reads a non-null int16-length string.
pub(crate) fn get_str(b: &mut &[u8]) -> Option<String> {
    get_nullable_str(b)?
}

/// Reads int32-length bytes (a null value reads as empty).
pub(crate) fn get_bytes(b: &mut &[u8]) -> Option<Bytes> {
    let len = get_i32(b)?;
    if len < 0 {
        return Some(Bytes::new());
    }
    let len = len as usize;
    if b.remaining() < len {
        return None;
    }
    let out = Bytes::copy_from_slice(&b[..len]);
    b.advance(len);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip_and_truncation_is_none() {
        let mut b = BytesMut::new();
        put_str(&mut b, "group");
        put_nullable_str(&mut b, None);
        put_bytes(&mut b, b"xyz");
        b.put_i64(42);
        let mut r: &[u8] = &b;
        assert_eq!(get_str(&mut r).as_deref(), Some("group"));
        assert_eq!(get_nullable_str(&mut r), Some(None));
        assert_eq!(get_bytes(&mut r).as_deref(), Some(&b"xyz"[..]));
        assert_eq!(get_i64(&mut r), Some(42));
        assert_eq!(get_i8(&mut r), None);
        let mut short: &[u8] = &[0, 9, b'a'];
        assert_eq!(get_str(&mut short), None, "length runs past the end");
    }
}
