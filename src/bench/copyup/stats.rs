//! Quantiles of a latency sample and the comparison of two runs. Pure.
//!
//! Quantiles use the nearest-rank method (the smallest sample with at
//! least `p` of the samples at or below it), so every reported number is
//! a latency that was actually measured; with 10 samples, p90 is the 9th
//! and p99 the 10th (the maximum). The report prints the sample count
//! beside them for that reason.

use serde::{Deserialize, Serialize};

/// Nearest-rank quantile `p` (0 < p ≤ 1) of `sorted` (ascending); `None`
/// when empty.
pub fn quantile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len();
    // Sample counts are small: the float rank is exact.
    #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let rank = (p * n as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, n) - 1])
}

/// The quantiles a record carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Quantiles {
    pub min_ns: u64,
    pub p25_ns: u64,
    pub p50_ns: u64,
    pub p75_ns: u64,
    pub p90_ns: u64,
    pub p99_ns: u64,
    pub max_ns: u64,
}

impl Quantiles {
    /// `None` for an empty sample.
    pub fn of(samples: &[u64]) -> Option<Quantiles> {
        let mut s = samples.to_vec();
        s.sort_unstable();
        let q = |p| quantile(&s, p);
        Some(Quantiles {
            min_ns: *s.first()?,
            p25_ns: q(0.25)?,
            p50_ns: q(0.5)?,
            p75_ns: q(0.75)?,
            p90_ns: q(0.9)?,
            p99_ns: q(0.99)?,
            max_ns: *s.last()?,
        })
    }
}

/// `after / before` of two runs' medians, with noise bounds from their
/// spreads: the ratio could plausibly be anywhere from `after.p25 /
/// before.p75` to `after.p75 / before.p25`. A change is only called when
/// that whole interval lies on one side of 1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Change {
    pub ratio: f64,
    pub low: f64,
    pub high: f64,
}

impl Change {
    /// `None` when a median is zero (no meaningful ratio).
    pub fn between(before: &Quantiles, after: &Quantiles) -> Option<Change> {
        if before.p50_ns == 0 || before.p25_ns == 0 {
            return None;
        }
        #[allow(clippy::cast_precision_loss)]
        let r = |a: u64, b: u64| a as f64 / b as f64;
        Some(Change {
            ratio: r(after.p50_ns, before.p50_ns),
            low: r(after.p25_ns, before.p75_ns),
            high: r(after.p75_ns, before.p25_ns),
        })
    }

    /// `1.85x slower`, `2.10x faster` or `within noise`.
    pub fn verdict(&self) -> String {
        if self.low > 1.0 {
            format!("{:.2}x slower", self.ratio)
        } else if self.high < 1.0 {
            format!("{:.2}x faster", 1.0 / self.ratio)
        } else {
            "within noise".to_owned()
        }
    }
}

/// Least-squares slope of `ln y` against `ln x`: 1 for a cost
/// proportional to `x`, 0 for a flat one. `None` with fewer than two
/// distinct `x` or a non-positive value.
pub fn log_log_slope(points: &[(f64, f64)]) -> Option<f64> {
    if points.iter().any(|(x, y)| *x <= 0.0 || *y <= 0.0) {
        return None;
    }
    let pts: Vec<(f64, f64)> = points.iter().map(|(x, y)| (x.ln(), y.ln())).collect();
    #[allow(clippy::cast_precision_loss)]
    let n = pts.len() as f64;
    let mx = pts.iter().map(|p| p.0).sum::<f64>() / n;
    let my = pts.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if sxx < 1e-12 {
        return None;
    }
    let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    Some(sxy / sxx)
}

/// Nanoseconds for people: `850 ns`, `12.3 µs`, `4.56 ms`, `1.23 s`.
pub fn fmt_ns(ns: u64) -> String {
    #[allow(clippy::cast_precision_loss)]
    let v = ns as f64;
    if ns < 1_000 {
        format!("{ns} ns")
    } else if ns < 1_000_000 {
        format!("{:.1} µs", v / 1e3)
    } else if ns < 1_000_000_000 {
        format!("{:.2} ms", v / 1e6)
    } else {
        format!("{:.2} s", v / 1e9)
    }
}

/// Bytes for people: `4 KiB`, `64 MiB`, `1 GiB`.
pub fn fmt_size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 && b % (1 << 30) == 0 => format!("{} GiB", b >> 30),
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} B"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles_are_measured_values() {
        assert_eq!(quantile(&[], 0.5), None);
        let s: Vec<u64> = (1..=10).collect();
        assert_eq!(quantile(&s, 0.5), Some(5));
        assert_eq!(quantile(&s, 0.9), Some(9));
        assert_eq!(quantile(&s, 0.99), Some(10));
        assert_eq!(quantile(&[42], 0.99), Some(42));
        let q = Quantiles::of(&[30, 10, 20, 40]).unwrap();
        assert_eq!((q.min_ns, q.p25_ns, q.p50_ns, q.p75_ns, q.max_ns), (10, 10, 20, 30, 40));
        assert_eq!(Quantiles::of(&[]), None);
    }

    #[test]
    fn changes_are_called_only_outside_the_noise() {
        let q = |p25, p50, p75| Quantiles { p25_ns: p25, p50_ns: p50, p75_ns: p75, ..Quantiles::default() };
        let slower = Change::between(&q(90, 100, 110), &q(190, 200, 210)).unwrap();
        assert_eq!(slower.ratio, 2.0);
        assert_eq!(slower.verdict(), "2.00x slower");
        let faster = Change::between(&q(190, 200, 210), &q(90, 100, 110)).unwrap();
        assert_eq!(faster.verdict(), "2.00x faster");
        let noisy = Change::between(&q(50, 100, 200), &q(60, 120, 240)).unwrap();
        assert_eq!(noisy.verdict(), "within noise");
        assert!(noisy.low < 1.0 && noisy.high > 1.0);
        assert!(Change::between(&q(0, 0, 0), &q(1, 1, 1)).is_none());
    }

    #[test]
    fn slopes_read_linear_and_flat() {
        let linear: Vec<(f64, f64)> = [1.0, 64.0, 1024.0].iter().map(|x| (*x, 3.0 * x)).collect();
        assert!((log_log_slope(&linear).unwrap() - 1.0).abs() < 1e-9);
        let flat = [(1.0, 5.0), (64.0, 5.0), (1024.0, 5.0)];
        assert!(log_log_slope(&flat).unwrap().abs() < 1e-9);
        assert_eq!(log_log_slope(&[(1.0, 1.0)]), None);
        assert_eq!(log_log_slope(&[(1.0, 0.0), (2.0, 1.0)]), None);
    }

    #[test]
    fn formats_read_well() {
        assert_eq!(fmt_ns(850), "850 ns");
        assert_eq!(fmt_ns(12_345), "12.3 µs");
        assert_eq!(fmt_ns(4_560_000), "4.56 ms");
        assert_eq!(fmt_ns(1_230_000_000), "1.23 s");
        assert_eq!(fmt_size(4096), "4 KiB");
        assert_eq!(fmt_size(64 << 20), "64 MiB");
        assert_eq!(fmt_size(1 << 30), "1 GiB");
        assert_eq!(fmt_size(1000), "1000 B");
    }
}
