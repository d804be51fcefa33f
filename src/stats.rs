//! The statistics behind repeated runs and the regression gate: medians and percentile-bootstrap
//! confidence intervals, for one set of runs and for the ratio of two sets' medians.
//!
//! Why the bootstrap and why the median: a benchmark gets a handful of runs (3 to 10), their
//! figures are not normally distributed (one run that meets a page-cache writeback is slow, not
//! "one standard deviation" slow), and a gate must say how sure it is with that few. The median
//! ignores the one odd run; resampling the runs with replacement ([Efron & Tibshirani, *An
//! Introduction to the Bootstrap*], as criterion.rs does for its change estimates) gives an
//! interval for it without assuming a distribution. The resampling is seeded, so the same runs
//! always give the same interval and the same verdict.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Resamples per interval: enough for stable 2.5 % / 97.5 % percentiles, still instant.
pub const RESAMPLES: usize = 10_000;

/// Seed of every resampling (any fixed value: a verdict must not change between two looks).
const SEED: u64 = 0x6b62_656e_6368; // "kbench"

/// Confidence level of every interval kbench reports.
pub const CONFIDENCE: f64 = 0.95;

/// The median of `values` (the mean of the middle two for an even count); `None` when empty.
/// NaNs are not expected (figures come from counters and histograms) and sort last.
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    })
}

/// A point estimate with its confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Estimate {
    /// The statistic on the data as measured.
    pub point: f64,
    /// Lower end of the 95 % interval.
    pub low: f64,
    /// Upper end of the 95 % interval.
    pub high: f64,
}

/// The median of `values` with its 95 % percentile-bootstrap interval; `None` when empty. One
/// value gives an interval of width zero: one run says nothing about noise, and callers say so.
pub fn median_ci(values: &[f64]) -> Option<Estimate> {
    let point = median(values)?;
    let mut rng = StdRng::seed_from_u64(SEED);
    let mut sample = vec![0.0; values.len()];
    let stats: Vec<f64> = (0..RESAMPLES)
        .map(|_| {
            resample(values, &mut sample, &mut rng);
            median(&sample).unwrap_or(point)
        })
        .collect();
    let (low, high) = interval(stats);
    Some(Estimate { point, low, high })
}

/// `median(candidate) / median(base)` with its 95 % interval, each side resampled on its own.
/// `None` when a side is empty or the base median is not positive (nothing to divide by: the
/// figure was not measured).
pub fn ratio_of_medians(base: &[f64], candidate: &[f64]) -> Option<Estimate> {
    ratio_with(base, candidate, RESAMPLES, &mut StdRng::seed_from_u64(SEED))
}

/// [`ratio_of_medians`] with `resamples` draws from `rng`.
fn ratio_with(
    base: &[f64],
    candidate: &[f64],
    resamples: usize,
    rng: &mut StdRng,
) -> Option<Estimate> {
    let (b, c) = (median(base)?, median(candidate)?);
    if b <= 0.0 {
        return None;
    }
    let (mut bs, mut cs) = (vec![0.0; base.len()], vec![0.0; candidate.len()]);
    let stats: Vec<f64> = (0..resamples)
        .filter_map(|_| {
            resample(base, &mut bs, rng);
            resample(candidate, &mut cs, rng);
            let mb = median(&bs)?;
            (mb > 0.0).then(|| median(&cs).map(|mc| mc / mb))?
        })
        .collect();
    let (low, high) = interval(stats);
    Some(Estimate {
        point: c / b,
        low,
        high,
    })
}

/// A/A noise of a figure whose runs on an unchanged build gave `values`, for comparisons of
/// `k` runs a side: two sets of `k` are drawn from `values` (with replacement) again and again.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Noise {
    /// 95th percentile of |ratio of the two sets' medians − 1|: how far apart two unchanged
    /// sets of `k` runs land.
    pub change_p95: f64,
    /// Typical (median) 95 % interval of the ratio of two unchanged sets of `k` runs, as
    /// [`ratio_of_medians`] computes it: its ends are what a real change must clear.
    pub interval: (f64, f64),
}

/// Draws for [`noise`]: outer pairs of sets, and resamples per interval inside each.
const NOISE_PAIRS: usize = 400;
const NOISE_RESAMPLES: usize = 1_000;

/// The A/A [`Noise`] of `values` at `k` runs a side; `None` without values or with a zero median.
pub fn noise(values: &[f64], k: usize) -> Option<Noise> {
    if values.is_empty() || k == 0 || median(values)? <= 0.0 {
        return None;
    }
    let mut rng = StdRng::seed_from_u64(SEED);
    let (mut a, mut b) = (vec![0.0; k], vec![0.0; k]);
    let mut changes = Vec::with_capacity(NOISE_PAIRS);
    let (mut lows, mut highs) = (Vec::new(), Vec::new());
    for _ in 0..NOISE_PAIRS {
        resample(values, &mut a, &mut rng);
        resample(values, &mut b, &mut rng);
        let Some(r) = ratio_with(&a, &b, NOISE_RESAMPLES, &mut rng) else {
            continue;
        };
        changes.push((r.point - 1.0).abs());
        lows.push(r.low);
        highs.push(r.high);
    }
    changes.sort_by(f64::total_cmp);
    let p95 = *changes.get(((changes.len() as f64 - 1.0) * 0.95).round() as usize)?;
    Some(Noise {
        change_p95: p95,
        interval: (median(&lows)?, median(&highs)?),
    })
}

/// Fills `out` with `values.len()` draws from `values`, with replacement.
fn resample(values: &[f64], out: &mut [f64], rng: &mut StdRng) {
    for slot in out.iter_mut() {
        *slot = values[rng.random_range(0..values.len())];
    }
}

/// The central [`CONFIDENCE`] interval of bootstrap statistics (percentile method).
fn interval(mut stats: Vec<f64>) -> (f64, f64) {
    if stats.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    stats.sort_by(f64::total_cmp);
    let tail = (1.0 - CONFIDENCE) / 2.0;
    let at = |q: f64| stats[((stats.len() - 1) as f64 * q).round() as usize];
    (at(tail), at(1.0 - tail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0]), Some(3.0));
        assert_eq!(median(&[5.0, 1.0, 3.0]), Some(3.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
    }

    #[test]
    fn one_run_has_an_interval_of_width_zero() {
        let e = median_ci(&[7.0]).unwrap();
        assert_eq!((e.point, e.low, e.high), (7.0, 7.0, 7.0));
        let r = ratio_of_medians(&[10.0], &[9.0]).unwrap();
        assert_eq!((r.low, r.high), (0.9, 0.9));
    }

    #[test]
    fn the_interval_holds_the_median_and_lies_within_the_data() {
        let v = [98.0, 101.0, 100.0, 103.0, 97.0, 99.0, 102.0];
        let e = median_ci(&v).unwrap();
        assert_eq!(e.point, 100.0);
        assert!(e.low <= 100.0 && e.high >= 100.0, "{e:?}");
        assert!(e.low >= 97.0 && e.high <= 103.0, "{e:?}");
        assert!(e.high - e.low > 0.0, "{e:?}");
        // Seeded: the same data, the same interval.
        assert_eq!(median_ci(&v).unwrap(), e);
    }

    #[test]
    fn noise_grows_with_the_spread_and_shrinks_with_more_runs() {
        let tight = [100.0, 101.0, 99.0, 100.5, 99.5, 100.2, 99.8];
        let loose = [100.0, 120.0, 80.0, 110.0, 90.0, 105.0, 95.0];
        let t = noise(&tight, 5).unwrap();
        let l = noise(&loose, 5).unwrap();
        assert!(t.change_p95 < 0.02 && l.change_p95 > 0.05, "{t:?} {l:?}");
        assert!(l.interval.0 < t.interval.0 && l.interval.1 > t.interval.1);
        assert!(noise(&loose, 15).unwrap().change_p95 < l.change_p95);
    }

    #[test]
    fn ratio_interval_separates_a_real_change_from_noise() {
        let base = [100.0, 102.0, 98.0, 101.0, 99.0];
        // The same noise: the interval holds 1.
        let same = [101.0, 99.0, 100.0, 98.0, 102.0];
        let r = ratio_of_medians(&base, &same).unwrap();
        assert!(r.low < 1.0 && r.high > 1.0, "{r:?}");
        // A 20 % drop well beyond the ±2 % noise: the whole interval is below 0.9.
        let slower: Vec<f64> = base.iter().map(|v| v * 0.8).collect();
        let r = ratio_of_medians(&base, &slower).unwrap();
        assert!(r.high < 0.9 && (r.point - 0.8).abs() < 1e-9, "{r:?}");
        // Nothing to divide by.
        assert_eq!(noise(&[0.0, 0.0], 3), None);
        assert_eq!(ratio_of_medians(&[0.0, 0.0], &[1.0]), None);
        assert_eq!(ratio_of_medians(&[], &[1.0]), None);
    }
}
