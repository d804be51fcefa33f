//! The bounds check every request body passes before the `kafka-protocol` decoder sees it.
//!
//! Why it exists: the crate's decoder (0.18, the newest release) reads an array's element count
//! off the wire and calls `Vec::with_capacity(count)` before decoding a single element, so a
//! 20-byte request claiming two billion topics makes the broker ask for a hundred gigabytes. An
//! allocation failure aborts the process; no task boundary contains it. The same holds for
//! `Vec<u8>` byte fields and `String` fields, which are zero-filled to the claimed length first.
//!
//! So kbroker walks the body once with the layout the decoder will use ([`super::layouts`],
//! generated from the crate's own decoders) and checks every count and length against the bytes
//! that remain: an array of `n` elements needs at least `n` bytes after its count (every element
//! of every request takes at least one byte on the wire), a string or byte field of `n` bytes
//! needs `n` bytes. A body that passes is decoded with allocations bounded by its own size; one
//! that does not is a malformed request, named with the field that lied.
//!
//! The walk mirrors the decoder exactly where the structure depends on it (which fields exist in
//! which version, compact or classic encodings, tagged fields the decoder reads in place rather
//! than by their size, tags invalid for the version) and is deliberately lenient where it does
//! not (nullability, UTF-8, trailing bytes): those the decoder itself refuses without allocating.

use std::fmt;

/// How a field is encoded for one range of versions.
#[derive(Debug, Clone, Copy)]
pub(super) enum Wire {
    /// A fixed number of bytes: booleans, integers, UUIDs.
    Fixed(u8),
    /// `INT16` length, then bytes; -1 is null.
    String,
    /// Unsigned varint length + 1, then bytes; 0 is null.
    CompactString,
    /// `INT32` length, then bytes; -1 is null.
    Bytes,
    /// Unsigned varint length + 1, then bytes; 0 is null.
    CompactBytes,
    /// `INT32` count, then elements; -1 is null.
    Array(Elem),
    /// Unsigned varint count + 1, then elements; 0 is null.
    CompactArray(Elem),
    /// A nested structure, in place.
    Struct(&'static Layout),
    /// `INT8` presence marker (1: present), then the structure when present.
    OptionStruct(&'static Layout),
}

/// What an array holds.
#[derive(Debug, Clone, Copy)]
pub(super) enum Elem {
    /// Fixed-size integers.
    Fixed(u8),
    /// Classic strings.
    String,
    /// Compact strings.
    CompactString,
    /// Structures.
    Struct(&'static Layout),
}

impl Elem {
    /// How one element is encoded.
    pub(super) fn wire(self) -> Wire {
        match self {
            Elem::Fixed(n) => Wire::Fixed(n),
            Elem::String => Wire::String,
            Elem::CompactString => Wire::CompactString,
            Elem::Struct(layout) => Wire::Struct(layout),
        }
    }
}

/// One encoding of a field, for versions `min..=max`.
#[derive(Debug)]
pub(super) struct Arm {
    min: i16,
    max: i16,
    wire: Wire,
}

impl Arm {
    pub(super) const fn new(min: i16, max: i16, wire: Wire) -> Self {
        Self { min, max, wire }
    }

    /// Whether this arm is the field's encoding in `version` (given no earlier arm is).
    pub(super) fn covers(&self, version: i16) -> bool {
        (self.min..=self.max).contains(&version)
    }

    #[cfg(test)]
    pub(super) fn wire(&self) -> Wire {
        self.wire
    }
}

/// A field: the first arm whose range holds the version is its encoding; none means the field
/// is absent in that version.
#[derive(Debug)]
pub(super) struct Field {
    pub(super) name: &'static str,
    pub(super) arms: &'static [Arm],
}

/// A tagged field the decoder reads in place (by its type, not by its declared size), valid for
/// versions `min..=max`; outside them the decoder refuses the tag.
#[derive(Debug)]
pub(super) struct Tag {
    tag: u32,
    name: &'static str,
    min: i16,
    max: i16,
    wire: Wire,
}

impl Tag {
    pub(super) const fn new(tag: u32, name: &'static str, min: i16, max: i16, wire: Wire) -> Self {
        Self {
            tag,
            name,
            min,
            max,
            wire,
        }
    }

    /// Whether the decoder accepts this tag in `version`.
    pub(super) fn covers(&self, version: i16) -> bool {
        (self.min..=self.max).contains(&version)
    }

    #[cfg(test)]
    pub(super) fn wire(&self) -> Wire {
        self.wire
    }

    #[cfg(test)]
    pub(super) fn tag(&self) -> u32 {
        self.tag
    }
}

/// A structure's wire layout over all versions.
#[derive(Debug)]
pub(super) struct Layout {
    /// The structure's name in the protocol crate (for messages).
    pub(super) name: &'static str,
    /// Its fields, in wire order.
    pub(super) fields: &'static [Field],
    /// Versions that end the structure with a tagged-field section.
    pub(super) tagged: Option<(i16, i16)>,
    /// Tagged fields the decoder knows.
    pub(super) tags: &'static [Tag],
}

/// Why a body failed the check: the field (a path such as `topics[3].partitions`) and what was
/// wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundsError {
    /// Where in the body.
    pub field: String,
    /// What was wrong.
    pub problem: String,
}

impl fmt::Display for BoundsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.problem)
    }
}

impl std::error::Error for BoundsError {}

/// Checks a request body against its layout for `version`; `Ok` means the decoder will allocate
/// no more than the body's own size justifies.
pub(super) fn check(layout: &'static Layout, version: i16, body: &[u8]) -> Result<(), BoundsError> {
    consumed(layout, version, body).map(drop)
}

/// Like [`check`], and how many bytes of `body` the layout covers (the decoder reads as many).
pub(super) fn consumed(
    layout: &'static Layout,
    version: i16,
    body: &[u8],
) -> Result<usize, BoundsError> {
    let mut walk = Walk {
        buf: body,
        version,
        path: Vec::new(),
    };
    walk.layout(layout)?;
    Ok(body.len() - walk.buf.len())
}

/// Nesting depth past which a body is refused (request layouts nest four levels at most).
const MAX_DEPTH: usize = 16;

/// A walk over a body: what is left of it and where we are.
struct Walk<'a> {
    buf: &'a [u8],
    version: i16,
    /// Field names (and array indexes) from the top of the body down to here.
    path: Vec<String>,
}

impl Walk<'_> {
    fn fail(&self, problem: String) -> BoundsError {
        BoundsError {
            field: if self.path.is_empty() {
                "body".to_owned()
            } else {
                self.path.join(".").replace(".[", "[")
            },
            problem,
        }
    }

    fn take(&mut self, n: usize) -> Result<&[u8], BoundsError> {
        if n > self.buf.len() {
            return Err(self.fail(format!("needs {n} bytes but {} remain", self.buf.len())));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn int(&mut self, width: usize) -> Result<i64, BoundsError> {
        let b = self.take(width)?;
        Ok(b.iter().fold(0i64, |acc, &x| (acc << 8) | i64::from(x)))
    }

    /// An unsigned varint as the crate reads it: at most five bytes, high bits past 32 dropped.
    fn uvarint(&mut self) -> Result<u32, BoundsError> {
        let mut value: u32 = 0;
        for i in 0..5 {
            let b = u32::from(self.take(1)?[0]);
            value |= (b & 0x7f) << (i * 7);
            if b < 0x80 {
                break;
            }
        }
        Ok(value)
    }

    /// A length or count that must fit in what remains (each unit needs at least one byte).
    fn bounded(&self, n: u64, what: &str) -> Result<usize, BoundsError> {
        if n > self.buf.len() as u64 {
            return Err(self.fail(format!(
                "{what} of {n} in {} remaining bytes",
                self.buf.len()
            )));
        }
        Ok(n as usize)
    }

    fn layout(&mut self, layout: &'static Layout) -> Result<(), BoundsError> {
        if self.path.len() > MAX_DEPTH {
            return Err(self.fail(format!("{} nested too deeply", layout.name)));
        }
        for field in layout.fields {
            let Some(arm) = field.arms.iter().find(|a| a.covers(self.version)) else {
                continue;
            };
            self.path.push(field.name.to_owned());
            self.wire(arm.wire)?;
            self.path.pop();
        }
        match layout.tagged {
            Some((min, max)) if (min..=max).contains(&self.version) => self.tagged(layout),
            _ => Ok(()),
        }
    }

    fn tagged(&mut self, layout: &'static Layout) -> Result<(), BoundsError> {
        self.path.push("tagged fields".to_owned());
        let count = self.uvarint()?;
        // Each tagged field takes at least two bytes (tag and size).
        self.bounded(u64::from(count), "tagged field count")?;
        for _ in 0..count {
            let tag = self.uvarint()?;
            let size = self.uvarint()?;
            match layout.tags.iter().find(|t| t.tag == tag) {
                Some(known) if known.covers(self.version) => {
                    self.path.push(known.name.to_owned());
                    self.wire(known.wire)?;
                    self.path.pop();
                }
                Some(_) => {
                    return Err(self.fail(format!(
                        "tag {tag} is not valid in version {}",
                        self.version
                    )))
                }
                None => {
                    let n = self.bounded(u64::from(size), "unknown tagged field size")?;
                    self.take(n)?;
                }
            }
        }
        self.path.pop();
        Ok(())
    }

    fn wire(&mut self, wire: Wire) -> Result<(), BoundsError> {
        match wire {
            Wire::Fixed(n) => self.take(usize::from(n)).map(drop),
            Wire::String => {
                let n = self.int(2)? as i16;
                self.bytes(i64::from(n), "string length")
            }
            Wire::Bytes => {
                let n = self.int(4)? as i32;
                self.bytes(i64::from(n), "byte length")
            }
            Wire::CompactString => {
                let n = self.uvarint()?;
                self.bytes(i64::from(n) - 1, "string length")
            }
            Wire::CompactBytes => {
                let n = self.uvarint()?;
                self.bytes(i64::from(n) - 1, "byte length")
            }
            Wire::Array(elem) => {
                let n = self.int(4)? as i32;
                self.array(i64::from(n), elem)
            }
            Wire::CompactArray(elem) => {
                let n = self.uvarint()?;
                self.array(i64::from(n) - 1, elem)
            }
            Wire::Struct(layout) => self.layout(layout),
            Wire::OptionStruct(layout) => {
                if self.int(1)? == 1 {
                    self.layout(layout)
                } else {
                    Ok(())
                }
            }
        }
    }

    /// `n` bytes of a string or byte field; -1 is null.
    fn bytes(&mut self, n: i64, what: &str) -> Result<(), BoundsError> {
        match n {
            -1 => Ok(()),
            n if n < -1 => Err(self.fail(format!("negative {what} {n}"))),
            n => {
                let n = self.bounded(n as u64, what)?;
                self.take(n).map(drop)
            }
        }
    }

    /// `n` elements; -1 is null.
    fn array(&mut self, n: i64, elem: Elem) -> Result<(), BoundsError> {
        let n = match n {
            -1 => return Ok(()),
            n if n < -1 => return Err(self.fail(format!("negative array count {n}"))),
            n => self.bounded(n as u64, "array count")?,
        };
        for i in 0..n {
            self.path.push(format!("[{i}]"));
            self.wire(elem.wire())?;
            self.path.pop();
        }
        Ok(())
    }
}
