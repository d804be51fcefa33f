//! Quantities as people write them in scenario files: sizes (`"1KiB"`, `"64MB"`, `1024`),
//! durations (`"10s"`, `"250ms"`, `"1m 30s"`) and rates (`"20000/s"`, `"5k/s"`, `"1.2M/min"`).
//!
//! Each quantity is a newtype that deserializes from what a person would type and serializes back
//! to a canonical string, so the resolved scenario written into `summary.json` reads like the
//! file it came from. Parsing errors say what was written and show a correct example.

use std::fmt;
use std::time::Duration;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

/// A number of bytes. Written as an integer (bytes) or a string with a unit: `B`, `KB`/`MB`/`GB`/`TB`
/// (powers of 1000) or `KiB`/`MiB`/`GiB`/`TiB` (powers of 1024). Unit letters are case-insensitive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Size(pub u64);

/// A length of time, written as a string with a unit (`"10s"`, `"250ms"`, `"2m 30s"`; `"0"` is zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Dur(pub Duration);

/// A message rate in messages per second. Written as an integer (per second) or a string
/// `"<number>[k|M]/<s|sec|ms|min|m|h>"`, e.g. `"20000/s"`, `"5k/s"`, `"1.5M/min"`.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default)]
pub struct Rate(pub f64);

/// Parses a size such as `"1KiB"`, `"1 MB"`, `"512"`, `"512B"`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let num = num.replace('_', "");
    if num.is_empty() {
        return Err(format!(
            "\"{text}\" is not a size; write e.g. \"1KiB\", \"64MB\" or 1024"
        ));
    }
    let value: f64 = num
        .parse()
        .map_err(|_| format!("\"{text}\" is not a size; write e.g. \"1KiB\", \"64MB\" or 1024"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" | "ki" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" | "mi" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" | "gi" => 1 << 30,
        "t" | "tb" => 1_000_000_000_000,
        "tib" | "ti" => 1 << 40,
        other => {
            return Err(format!(
                "unknown size unit \"{other}\" in \"{text}\"; use B, KB, MB, GB, KiB, MiB or GiB"
            ))
        }
    };
    let bytes = value * mult as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(format!("size \"{text}\" is out of range"));
    }
    if bytes.fract() != 0.0 {
        return Err(format!("size \"{text}\" is not a whole number of bytes"));
    }
    Ok(bytes as u64)
}

/// Parses a count such as `"1M"` (1,000,000), `"64k"`, `"65_536"` or `"65,536"`; the
/// suffixes `k`, `M`, `G` are powers of 1000.
pub fn parse_count(text: &str) -> Result<u64, String> {
    let t = text.trim().replace(['_', ','], "");
    let (digits, mult) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1e3),
        Some('M' | 'm') => (&t[..t.len() - 1], 1e6),
        Some('G' | 'g') => (&t[..t.len() - 1], 1e9),
        _ => (t.as_str(), 1.0),
    };
    let n: f64 = digits
        .parse()
        .map_err(|_| format!("\"{text}\" is not a count; write e.g. 10000, 64k or 1M"))?;
    let n = n * mult;
    if !(n.is_finite() && n >= 0.0 && n.fract() == 0.0 && n <= u64::MAX as f64) {
        return Err(format!("\"{text}\" is not a whole count"));
    }
    Ok(n as u64)
}

/// Formats bytes with the largest binary unit that divides them exactly (`1024` → `"1KiB"`).
pub fn format_size(bytes: u64) -> String {
    for (unit, mult) in [
        ("TiB", 1u64 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ] {
        if bytes >= mult && bytes % mult == 0 {
            return format!("{}{unit}", bytes / mult);
        }
    }
    for (unit, mult) in [("GB", 1_000_000_000u64), ("MB", 1_000_000), ("KB", 1_000)] {
        if bytes >= mult && bytes % mult == 0 {
            return format!("{}{unit}", bytes / mult);
        }
    }
    format!("{bytes}B")
}

/// Parses a duration such as `"10s"`, `"250ms"`, `"1m 30s"` or `"0"`: one or more parts of a
/// number and a unit written right after it, the units being `ms`, `s`, `m` and `h` (what
/// `scenarios/README.md` documents; `"10 sec"` and `"5 minutes"` are refused rather than
/// guessed at).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = |why: &str| {
        format!("\"{text}\" is not a duration ({why}); write e.g. \"10s\", \"250ms\" or \"1m 30s\" (units ms, s, m, h)")
    };
    let t = text.trim();
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    if t.is_empty() {
        return Err(bad("it is empty"));
    }
    let mut total = 0f64;
    let joined: String = t.split_whitespace().collect();
    {
        let mut rest = joined.as_str();
        while !rest.is_empty() {
            let split = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
                .unwrap_or(rest.len());
            let (num, after) = rest.split_at(split);
            if num.is_empty() {
                return Err(bad(&format!("\"{rest}\" has no number before it")));
            }
            let unit_len = after
                .find(|c: char| !c.is_ascii_alphabetic())
                .unwrap_or(after.len());
            let (unit, next) = after.split_at(unit_len);
            let seconds = match unit {
                "ms" => 1e-3,
                "s" => 1.0,
                "m" => 60.0,
                "h" => 3600.0,
                "" => return Err(bad(&format!("{num} has no unit"))),
                other => return Err(bad(&format!("unknown unit \"{other}\""))),
            };
            let value: f64 = num
                .replace('_', "")
                .parse()
                .map_err(|_| bad(&format!("\"{num}\" is not a number")))?;
            total += value * seconds;
            rest = next;
        }
    }
    if !total.is_finite() || total > 1e12 {
        return Err(bad("out of range"));
    }
    Ok(Duration::from_secs_f64(total))
}

/// Formats a duration the way [`parse_duration`] reads it (`"1m30s"`, `"250ms"`, `"0s"`).
pub fn format_duration(d: Duration) -> String {
    if d.is_zero() {
        return "0s".to_string();
    }
    if d.subsec_nanos() % 1_000_000 != 0 {
        return format!("{}s", d.as_secs_f64());
    }
    let ms = d.as_millis();
    let parts = [
        (ms / 3_600_000, "h"),
        (ms / 60_000 % 60, "m"),
        (ms / 1000 % 60, "s"),
        (ms % 1000, "ms"),
    ];
    parts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect()
}

/// Parses a rate such as `"20000/s"`, `"5k/s"`, `"1.5M/min"` into messages per second.
pub fn parse_rate(text: &str) -> Result<f64, String> {
    let bad =
        || format!("\"{text}\" is not a rate; write e.g. \"20000/s\", \"5k/s\" or \"1M/min\"");
    let (num, per) = text.trim().split_once('/').ok_or_else(bad)?;
    let num = num.trim().replace('_', "");
    let (digits, mult) = match num.chars().last() {
        Some('k' | 'K') => (&num[..num.len() - 1], 1e3),
        Some('M') => (&num[..num.len() - 1], 1e6),
        Some('G') => (&num[..num.len() - 1], 1e9),
        _ => (num.as_str(), 1.0),
    };
    let value: f64 = digits.trim().parse().map_err(|_| bad())?;
    let seconds = match per.trim() {
        "s" | "sec" | "second" => 1.0,
        "ms" => 1e-3,
        "m" | "min" | "minute" => 60.0,
        "h" | "hour" => 3600.0,
        _ => return Err(bad()),
    };
    let rate = value * mult / seconds;
    if !rate.is_finite() || rate <= 0.0 {
        return Err(format!(
            "rate \"{text}\" must be a positive number of messages per time unit"
        ));
    }
    Ok(rate)
}

/// Formats a rate as `"<n>/s"`.
pub fn format_rate(per_second: f64) -> String {
    if per_second.fract() == 0.0 {
        format!("{}/s", per_second as u64)
    } else {
        format!("{per_second}/s")
    }
}

/// What a unit field may be written as in TOML: an integer, a float or a string.
#[derive(Deserialize)]
#[serde(untagged)]
enum Written {
    Int(i64),
    Float(f64),
    Text(String),
}

fn written<'de, D: Deserializer<'de>>(d: D, what: &str) -> Result<Written, D::Error> {
    // `untagged` hides the reason; a custom visitor keeps the message precise.
    struct V<'a>(&'a str);
    impl de::Visitor<'_> for V<'_> {
        type Value = Written;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "{}", self.0)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Written, E> {
            Ok(Written::Int(v))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Written, E> {
            i64::try_from(v)
                .map(Written::Int)
                .map_err(|_| E::custom("number out of range"))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Written, E> {
            Ok(Written::Float(v))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Written, E> {
            Ok(Written::Text(v.to_string()))
        }
    }
    d.deserialize_any(V(what))
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match written(d, "a size such as \"1KiB\" or a number of bytes")? {
            Written::Int(n) if n >= 0 => Ok(Size(n as u64)),
            Written::Int(n) => Err(de::Error::custom(format!("size {n} is negative"))),
            Written::Float(f) => parse_size(&f.to_string())
                .map(Size)
                .map_err(de::Error::custom),
            Written::Text(t) => parse_size(&t).map(Size).map_err(de::Error::custom),
        }
    }
}

impl Serialize for Size {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_size(self.0))
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match written(d, "a duration such as \"10s\"")? {
            Written::Int(0) => Ok(Dur(Duration::ZERO)),
            Written::Int(n) => Err(de::Error::custom(format!(
                "duration {n} has no unit; write \"{n}s\" or \"{n}ms\""
            ))),
            Written::Float(f) => Err(de::Error::custom(format!(
                "duration {f} has no unit; write e.g. \"{f}s\""
            ))),
            Written::Text(t) => parse_duration(&t).map(Dur).map_err(de::Error::custom),
        }
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let r = match written(d, "a rate such as \"20000/s\"")? {
            Written::Int(n) => n as f64,
            Written::Float(f) => f,
            Written::Text(t) => return parse_rate(&t).map(Rate).map_err(de::Error::custom),
        };
        if r.is_finite() && r > 0.0 {
            Ok(Rate(r))
        } else {
            Err(de::Error::custom(format!(
                "rate {r} must be positive (messages per second)"
            )))
        }
    }
}

impl Serialize for Rate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_rate(self.0))
    }
}

impl Dur {
    /// The wrapped duration.
    pub fn get(self) -> Duration {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_decimal_and_binary_units() {
        assert_eq!(parse_size("1KiB").unwrap(), 1024);
        assert_eq!(parse_size("1 KiB").unwrap(), 1024);
        assert_eq!(parse_size("1kib").unwrap(), 1024);
        assert_eq!(parse_size("1KB").unwrap(), 1000);
        assert_eq!(parse_size("64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_size("1.5KiB").unwrap(), 1536);
        assert_eq!(parse_size("512").unwrap(), 512);
        assert_eq!(parse_size("512B").unwrap(), 512);
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert!(parse_size("1 parsec")
            .unwrap_err()
            .contains("unknown size unit"));
        assert!(parse_size("KiB").is_err());
        assert!(parse_size("0.3B").is_err());
    }

    #[test]
    fn counts_take_decimal_suffixes() {
        assert_eq!(parse_count("1M").unwrap(), 1_000_000);
        assert_eq!(parse_count("64k").unwrap(), 64_000);
        assert_eq!(parse_count("65_536").unwrap(), 65_536);
        assert_eq!(parse_count("1.5k").unwrap(), 1500);
        assert!(parse_count("lots").is_err());
    }

    #[test]
    fn sizes_format_round_trip() {
        for b in [0, 1, 1000, 1024, 1536, 65536, 1 << 30, 1_000_000] {
            assert_eq!(parse_size(&format_size(b)).unwrap(), b, "{b}");
        }
        assert_eq!(format_size(1024), "1KiB");
    }

    #[test]
    fn durations_need_units() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1m 30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert!(parse_duration("10").is_err());
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert!(parse_duration("10 sec")
            .unwrap_err()
            .contains("unknown unit \"sec\""));
        assert!(parse_duration("5 minutes").is_err());
        assert_eq!(
            parse_duration(&format_duration(Duration::from_millis(1500))).unwrap(),
            Duration::from_millis(1500)
        );
    }

    #[test]
    fn rates_parse_per_unit_time() {
        assert_eq!(parse_rate("20000/s").unwrap(), 20000.0);
        assert_eq!(parse_rate("5k/s").unwrap(), 5000.0);
        assert_eq!(parse_rate("1.2M/min").unwrap(), 20000.0);
        assert_eq!(parse_rate("10/ms").unwrap(), 10000.0);
        assert!(parse_rate("20000").is_err());
        assert!(parse_rate("0/s").is_err());
        assert!(parse_rate("fast/s").is_err());
    }

    #[derive(Deserialize)]
    struct T {
        s: Size,
        d: Dur,
        r: Rate,
    }

    #[test]
    fn units_deserialize_from_toml() {
        let t: T = toml::from_str("s = \"1KiB\"\nd = \"2s\"\nr = \"100/s\"").unwrap();
        assert_eq!((t.s.0, t.d.0, t.r.0), (1024, Duration::from_secs(2), 100.0));
        let t: T = toml::from_str("s = 4096\nd = 0\nr = 50").unwrap();
        assert_eq!((t.s.0, t.d.0, t.r.0), (4096, Duration::ZERO, 50.0));
        let e = toml::from_str::<T>("s = 1\nd = 5\nr = 1").err().unwrap();
        assert!(e.message().contains("has no unit"), "{e}");
    }
}
