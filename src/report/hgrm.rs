//! Latency histograms as files: HdrHistogram's percentile-distribution text (`.hgrm`, the
//! output of Java's `outputPercentileDistribution`, which HdrHistogram's plotter and many
//! tools read) and HdrHistogram's V2 serialised form (`.hdr`, base64 of the deflate-compressed
//! V2 encoding, as in HdrHistogram interval logs) so histograms of several runs or hosts can be
//! merged later without losing precision.
//!
//! Pure functions: histogram in, bytes out (and back for `.hdr`).

use anyhow::Context;
use base64::Engine;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;

/// Scaling of recorded values (µs) to the unit written in `.hgrm` files (ms).
pub const OUTPUT_VALUE_UNIT_SCALING_RATIO: f64 = 1000.0;

/// Percentile ticks per half distance, as in HdrHistogram's default output.
const TICKS_PER_HALF_DISTANCE: u32 = 5;

/// The percentile distribution of `h` (values recorded in µs), in HdrHistogram's text format,
/// values in ms (scaling ratio 1000), formatted exactly like Java's
/// `Histogram.outputPercentileDistribution(out, 5, 1000.0)`.
pub fn percentile_distribution(h: &Histogram<u64>) -> String {
    let ratio = OUTPUT_VALUE_UNIT_SCALING_RATIO;
    let sig = usize::from(h.sigfig());
    let mut out = format!(
        "{:>12} {:>14} {:>10} {:>14}\n\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    let mut total: u64 = 0;
    if !h.is_empty() {
        for v in h.iter_quantiles(TICKS_PER_HALF_DISTANCE) {
            total += v.count_since_last_iteration();
            let value = v.value_iterated_to() as f64 / ratio;
            let q = v.quantile_iterated_to();
            if q < 1.0 {
                out.push_str(&format!(
                    "{value:>12.sig$} {q:>2.12} {total:>10} {:>14.2}\n",
                    1.0 / (1.0 - q)
                ));
            } else {
                out.push_str(&format!("{value:>12.sig$} {q:>2.12} {total:>10}\n"));
            }
        }
    }
    let (mean, stdev) = if h.is_empty() {
        (0.0, 0.0)
    } else {
        (h.mean() / ratio, h.stdev() / ratio)
    };
    out.push_str(&format!(
        "#[Mean    = {mean:>12.sig$}, StdDeviation   = {stdev:>12.sig$}]\n"
    ));
    out.push_str(&format!(
        "#[Max     = {:>12.sig$}, Total count    = {:>12}]\n",
        h.max() as f64 / ratio,
        h.len()
    ));
    out.push_str(&format!(
        "#[Buckets = {:>12}, SubBuckets     = {:>12}]\n",
        h.buckets(),
        sub_bucket_count(h.sigfig())
    ));
    out
}

/// HdrHistogram's sub-bucket count for a precision of `sigfig` significant digits.
fn sub_bucket_count(sigfig: u8) -> u64 {
    let single_unit = 2 * 10u64.pow(u32::from(sigfig));
    single_unit.next_power_of_two()
}

/// One data line of an `.hgrm` file: value (ms), percentile level (0–1), total count.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HgrmLine {
    /// Value, in the file's unit (ms for kbench).
    pub value: f64,
    /// Percentile level iterated to, as a fraction (0.99 = 99th).
    pub quantile: f64,
    /// Number of values at or below this one.
    pub total_count: u64,
}

/// Parses the data lines of an `.hgrm` text (header and `#[` footer lines skipped).
pub fn parse_percentile_distribution(text: &str) -> anyhow::Result<Vec<HgrmLine>> {
    let mut lines = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') || t.starts_with("Value") {
            continue;
        }
        let f: Vec<&str> = t.split_whitespace().collect();
        let bad = || format!("line {}: not an hgrm data line: {line:?}", i + 1);
        if f.len() < 3 {
            anyhow::bail!(bad());
        }
        lines.push(HgrmLine {
            value: f[0].parse().with_context(bad)?,
            quantile: f[1].parse().with_context(bad)?,
            total_count: f[2].parse().with_context(bad)?,
        });
    }
    Ok(lines)
}

/// `h` in HdrHistogram's V2 deflate encoding, base64, one line (the `.hdr` file format).
pub fn encode_hdr(h: &Histogram<u64>) -> anyhow::Result<String> {
    let mut bytes = Vec::new();
    V2DeflateSerializer::new()
        .serialize(h, &mut bytes)
        .map_err(|e| anyhow::anyhow!("serialising a latency histogram: {e:?}"))?;
    let mut s = base64::engine::general_purpose::STANDARD.encode(bytes);
    s.push('\n');
    Ok(s)
}

/// Reads back what [`encode_hdr`] wrote (V2 or V2 deflate, base64).
pub fn decode_hdr(text: &str) -> anyhow::Result<Histogram<u64>> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .context("an .hdr file must hold one line of base64")?;
    let mut h: Histogram<u64> = Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| anyhow::anyhow!("not an HdrHistogram V2 encoding: {e:?}"))?;
    h.auto(true);
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::summary::latency_histogram;

    fn sample() -> Histogram<u64> {
        let mut h = latency_histogram();
        for v in 1..=100_000u64 {
            h.record(100 + v % 5000).unwrap();
        }
        h.record(250_000).unwrap();
        h
    }

    #[test]
    fn hgrm_percentiles_match_the_histogram() {
        let h = sample();
        let text = percentile_distribution(&h);
        assert!(text.starts_with("       Value     Percentile TotalCount 1/(1-Percentile)\n\n"));
        let lines = parse_percentile_distribution(&text).unwrap();
        assert!(lines.len() > 50);
        for l in &lines {
            let expected = h.value_at_quantile(l.quantile) as f64 / 1000.0;
            if l.quantile < 1.0 {
                assert!(
                    (l.value
                        - h.highest_equivalent(h.value_at_quantile(l.quantile)) as f64 / 1000.0)
                        .abs()
                        < 0.0011
                        || (l.value - expected).abs() < 0.0011,
                    "{l:?} vs {expected}"
                );
            }
        }
        let last = lines.last().unwrap();
        assert_eq!(last.quantile, 1.0);
        assert_eq!(last.total_count, h.len());
        assert!((last.value - h.max() as f64 / 1000.0).abs() < 0.5);
        assert!(
            text.contains("#[Max     =      250.111, Total count    =       100001]"),
            "{text}"
        );
        assert!(text.contains("SubBuckets     =         2048]"));
    }

    #[test]
    fn empty_histogram_gives_header_and_footer_only() {
        let text = percentile_distribution(&latency_histogram());
        assert!(parse_percentile_distribution(&text).unwrap().is_empty());
        assert!(text.contains("Total count    =            0]"));
    }

    #[test]
    fn hdr_round_trips() {
        let h = sample();
        let back = decode_hdr(&encode_hdr(&h).unwrap()).unwrap();
        assert_eq!(back.len(), h.len());
        assert_eq!(back.max(), h.max());
        assert_eq!(back.value_at_quantile(0.99), h.value_at_quantile(0.99));
    }
}
