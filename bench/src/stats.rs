//! Order statistics of a sample: min, median, p90, max (and the mean, for JSON readers).

use serde::Serialize;

/// Summary of a sample. Quantiles interpolate linearly between the two nearest ranks
/// (the usual "type 7" definition), so the median of an even-sized sample is the mean of
/// its two middle values.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Summary {
    /// Sample size.
    pub n: usize,
    /// Smallest value.
    pub min: f64,
    /// 50th percentile.
    pub median: f64,
    /// 90th percentile.
    pub p90: f64,
    /// Largest value.
    pub max: f64,
    /// Arithmetic mean.
    pub mean: f64,
}

/// Summarises `values`; `None` for an empty sample. NaNs are ignored.
pub fn summarize(values: &[f64]) -> Option<Summary> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    Some(Summary {
        n,
        min: sorted[0],
        median: quantile(&sorted, 0.5),
        p90: quantile(&sorted, 0.9),
        max: sorted[n - 1],
        mean: sorted.iter().sum::<f64>() / n as f64,
    })
}

/// Quantile `q` (0..=1) of a sorted, non-empty sample.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    let frac = pos - lo as f64;
    sorted[lo] + (sorted[hi] - sorted[lo]) * frac
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles() {
        let s = summarize(&[4.0, 1.0, 3.0, 2.0]).expect("non-empty");
        assert_eq!(s.n, 4);
        assert_eq!(s.min, 1.0);
        assert_eq!(s.max, 4.0);
        assert!((s.median - 2.5).abs() < 1e-9);
        assert!((s.p90 - 3.7).abs() < 1e-9);
        assert!((s.mean - 2.5).abs() < 1e-9);
        let one = summarize(&[7.0]).expect("non-empty");
        assert_eq!(
            (one.min, one.median, one.p90, one.max),
            (7.0, 7.0, 7.0, 7.0)
        );
        assert!(summarize(&[]).is_none());
    }
}
