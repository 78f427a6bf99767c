//! The few dense kernels the methods share.
//!
//! Every similarity that decides an assignment or a mapping is computed by
//! [`dot`], whose summation order is fixed, so the same pair always gets the
//! same bits whatever the thread count or code path. The float32 matrix
//! products run on the crate's [`Packed`] product (or its 8-bit [`Codes`],
//! or, for facility location and the full scans against a few hundred
//! points, the 12-bit [`codes12`]), which
//! give the same bits on every CPU. Most are filters: their error
//! against [`dot`] is bounded by [`score_tolerance`], and any candidate
//! within that tolerance of the best is re-scored with [`dot`]. ActiveFT's
//! point term uses the product's values themselves.

mod codes;
pub mod codes12;
mod product;
mod screen;

pub use codes::{Codes, Columns, codes_are_fast};
pub use product::{Packed, kernel_name};
pub use screen::Screen;

use ndarray::{Array2, ArrayView2};

/// Independent partial sums in [`dot`]: four SIMD registers of eight, so
/// additions do not wait on each other.
const LANES: usize = 32;

/// Dot product with a fixed summation order: 32 running sums (lane `l` takes
/// the elements `l mod 32`), combined by the tree in [`dot_plain`], then the
/// tail in order. The canonical similarity of the crate.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    // SAFETY: `KERNELS` holds a body whose CPU features were detected at
    // start-up, and every body accepts any two slices of equal length.
    unsafe { (KERNELS.dot)(a, b) }
}

/// `acc[j] += alpha * x[j]`, accumulating float32 values in float64.
#[inline]
pub fn add_scaled(acc: &mut [f64], alpha: f64, x: &[f32]) {
    assert_eq!(acc.len(), x.len());
    // SAFETY: as in `dot`.
    unsafe { (KERNELS.add_scaled)(acc, alpha, x) }
}

/// The bodies of the dispatched kernels for this CPU, chosen once.
struct Kernels {
    dot: unsafe fn(&[f32], &[f32]) -> f32,
    add_scaled: unsafe fn(&mut [f64], f64, &[f32]),
    squared_distance: DistanceBody,
}

/// A body of [`squared_distance`].
type DistanceBody = unsafe fn(&[f32], &[f32]) -> f64;

static KERNELS: std::sync::LazyLock<Kernels> = std::sync::LazyLock::new(|| {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        let squared_distance: DistanceBody = if std::arch::is_x86_feature_detected!("avx512f") {
            simd::squared_distance_avx512
        } else {
            simd::squared_distance_avx2
        };
        return Kernels { dot: simd::dot_avx2, add_scaled: simd::add_scaled_avx2, squared_distance };
    }
    Kernels { dot: dot_plain, add_scaled: add_scaled_plain, squared_distance: squared_distance_plain }
});

/// The portable body of [`dot`]: plain multiplies and adds in a fixed order
/// (no fused multiply-add), which the SIMD version reproduces exactly.
fn dot_plain(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let mut acc = [0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..LANES {
            acc[l] += x[l] * y[l];
        }
    }
    // Four registers of eight lanes, added register-wise; then halves; then
    // the upper pair onto the lower pair; then the last two.
    let r: [f32; 8] = std::array::from_fn(|l| (acc[l] + acc[8 + l]) + (acc[16 + l] + acc[24 + l]));
    let s: [f32; 4] = std::array::from_fn(|l| r[l] + r[4 + l]);
    let mut sum = (s[0] + s[2]) + (s[1] + s[3]);
    for (x, y) in ra.iter().zip(rb) {
        sum += x * y;
    }
    sum
}

#[inline(always)]
fn add_scaled_plain(acc: &mut [f64], alpha: f64, x: &[f32]) {
    debug_assert_eq!(acc.len(), x.len());
    for (a, &v) in acc.iter_mut().zip(x) {
        *a += alpha * f64::from(v);
    }
}

/// The same bodies compiled for AVX2, chosen at start-up so the binary
/// stays portable. Same operations in the same order: same results.
#[cfg(target_arch = "x86_64")]
mod simd {
    /// [`super::dot_plain`] with explicit 256-bit registers.
    ///
    /// # Safety
    /// The CPU must support AVX2; the slices must have equal lengths.
    #[target_feature(enable = "avx2")]
    pub unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
        use std::arch::x86_64::*;
        assert_eq!(a.len(), b.len());
        let chunks = a.len() / super::LANES;
        let mut v = [_mm256_setzero_ps(); 4];
        for c in 0..chunks {
            for (q, vq) in v.iter_mut().enumerate() {
                let at = c * super::LANES + 8 * q;
                // SAFETY: at + 8 <= chunks * LANES <= len of both slices.
                let (x, y) = unsafe { (_mm256_loadu_ps(a.as_ptr().add(at)), _mm256_loadu_ps(b.as_ptr().add(at))) };
                *vq = _mm256_add_ps(*vq, _mm256_mul_ps(x, y));
            }
        }
        let r = _mm256_add_ps(_mm256_add_ps(v[0], v[1]), _mm256_add_ps(v[2], v[3]));
        let s = _mm_add_ps(_mm256_castps256_ps128(r), _mm256_extractf128_ps::<1>(r));
        let t = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let mut sum = _mm_cvtss_f32(_mm_add_ss(t, _mm_shuffle_ps::<1>(t, t)));
        for (x, y) in a[chunks * super::LANES..].iter().zip(&b[chunks * super::LANES..]) {
            sum += x * y;
        }
        sum
    }

    /// [`super::add_scaled_plain`], compiled for AVX2 (the compiler
    /// vectorises the loop).
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub unsafe fn add_scaled_avx2(acc: &mut [f64], alpha: f64, x: &[f32]) {
        super::add_scaled_plain(acc, alpha, x)
    }

    /// [`super::squared_distance_plain`], compiled for AVX2 (each lane's
    /// subtraction, product and sum stay separate operations: no fusing).
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub unsafe fn squared_distance_avx2(a: &[f32], b: &[f32]) -> f64 {
        super::squared_distance_plain(a, b)
    }

    /// [`super::squared_distance_plain`], compiled for AVX-512: the eight
    /// running sums fit one register.
    ///
    /// # Safety
    /// The CPU must support AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn squared_distance_avx512(a: &[f32], b: &[f32]) -> f64 {
        super::squared_distance_plain(a, b)
    }
}

/// The dot product of two float32 vectors in float64, in a fixed order
/// (four running sums, then the tail): exact products, so only the sums
/// round. Facility location's gains are made of these.
pub fn dot64(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let mut acc = [0f64; 4];
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let tail: f64 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..4 {
            acc[l] += f64::from(x[l]) * f64::from(y[l]);
        }
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// `|a − b|²` in float64, in eight independent partial sums so it
/// vectorises: a single running sum waits on every addition, and the
/// movement bounds call this for every point and snapshot at every
/// iteration.
pub fn squared_distance(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    // SAFETY: as in `dot`.
    unsafe { (KERNELS.squared_distance)(a, b) }
}

/// The portable body of [`squared_distance`]: eight running sums, lane `l`
/// taking the elements `l mod 8`, added in lane order, then the tail.
#[inline(always)]
fn squared_distance_plain(a: &[f32], b: &[f32]) -> f64 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0f64; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f64 =
        ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2)).sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            let d = f64::from(x[l]) - f64::from(y[l]);
            acc[l] += d * d;
        }
    }
    acc.iter().sum::<f64>() + tail
}

/// `x = exp(x)` for every element, in float32, within 2 ulp of the exact
/// value for arguments in [-87, 0] (below that it returns about 1e-38, not
/// 0). Branch-free, so it vectorises, where libm's `expf` takes one element
/// at a time (the point term calls it k² times an iteration). Pure
/// arithmetic in a fixed order, so the same input always gives the same
/// bits.
pub fn exp_in_place(x: &mut [f32]) {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split so that n * LN2_HI is exact for |n| < 2^9.
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // Adding 1.5 * 2^23 rounds to an integer held in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    for v in x.iter_mut() {
        let a = v.clamp(-87.0, 88.0);
        let shifted = a * LOG2E + ROUND;
        let n = shifted - ROUND;
        let r = (a - n * LN2_HI) - n * LN2_LO;
        // Taylor series to r^7: |r| <= ln 2 / 2 leaves a 7e-9 relative remainder.
        let mut p = 1.0 / 5040.0;
        for c in [1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0] {
            p = p * r + c;
        }
        let scale = f32::from_bits((shifted.to_bits().wrapping_sub(ROUND.to_bits()).wrapping_add(127)) << 23);
        *v = p * scale;
    }
}

/// `x` rounded up to a float32, so a bound stays a bound when stored.
pub fn round_up(x: f64) -> f32 {
    let y = x as f32;
    if f64::from(y) < x { y.next_up() } else { y }
}

/// An upper bound on how far any float32 evaluation of a dot product of two
/// (near-)unit vectors of length `dim` can be from the exact value: the
/// classic `dim * u / (1 - dim * u)` bound, doubled to cover vectors whose
/// norm is 1 only up to rounding and products that underflow.
pub fn dot_error_bound(dim: usize) -> f32 {
    let u = f64::from(f32::EPSILON) / 2.0;
    let gamma = dim as f64 * u / (1.0 - dim as f64 * u);
    (2.0 * gamma) as f32 + 1e-30
}

/// How far below the best filtered score a candidate must still be checked:
/// the filter and [`dot`] can each be off by [`dot_error_bound`], in
/// opposite directions, for both the leader and the candidate.
pub fn score_tolerance(dim: usize) -> f32 {
    4.0 * dot_error_bound(dim)
}

/// Row `i` of `a` as a slice; the pools and blocks the crate builds are
/// contiguous, row-major.
pub fn row<'a>(a: ArrayView2<'a, f32>, i: usize) -> &'a [f32] {
    a.index_axis_move(ndarray::Axis(0), i).to_slice().expect("rows are contiguous")
}

/// Rows scaled to unit length (in f64), with the original lengths.
pub fn normalize_rows(points: &Array2<f64>) -> (Array2<f64>, Vec<f64>) {
    let norms: Vec<f64> = points.rows().into_iter().map(|r| r.dot(&r).sqrt()).collect();
    let mut unit = points.clone();
    for (mut row, &norm) in unit.rows_mut().into_iter().zip(&norms) {
        row /= norm;
    }
    (unit, norms)
}

/// The index of the best score under [`dot`], given filter `scores` of the
/// same candidates: every candidate within [`score_tolerance`] of the best
/// filtered score is re-scored exactly. Ties go to the lowest index.
/// `eligible` restricts the candidates (e.g. to samples not yet taken).
pub fn refined_argmax(
    scores: impl Iterator<Item = f32> + Clone,
    tolerance: f32,
    mut eligible: impl FnMut(usize) -> bool,
    mut exact: impl FnMut(usize) -> f32,
) -> Option<(usize, f32)> {
    let best =
        scores.clone().enumerate().filter(|&(j, _)| eligible(j)).map(|(_, s)| s).fold(f32::NEG_INFINITY, f32::max);
    if best == f32::NEG_INFINITY {
        return None;
    }
    let mut winner: Option<(usize, f32)> = None;
    for (j, s) in scores.enumerate() {
        if s >= best - tolerance && eligible(j) {
            let e = exact(j);
            if winner.is_none_or(|(_, w)| e > w) {
                winner = Some((j, e));
            }
        }
    }
    winner
}

/// [`refined_argmax`] with every candidate eligible, over a slice: the
/// best filter score comes from eight running maxima, which the compiler
/// turns into vector instructions (scores are never NaN).
pub fn refined_best(scores: &[f32], tolerance: f32, exact: impl Fn(usize) -> f32) -> (usize, f32) {
    assert!(!scores.is_empty(), "at least one candidate");
    let mut maxima = [f32::NEG_INFINITY; 8];
    let lanes = scores.chunks_exact(8);
    for (m, &s) in maxima.iter_mut().zip(lanes.remainder()) {
        *m = s;
    }
    for lane in lanes {
        for (m, &s) in maxima.iter_mut().zip(lane) {
            *m = if s > *m { s } else { *m };
        }
    }
    let top = maxima.into_iter().fold(f32::NEG_INFINITY, |m, s| if s > m { s } else { m });
    let mut winner = (usize::MAX, f32::NEG_INFINITY);
    for (j, &s) in scores.iter().enumerate() {
        if s >= top - tolerance {
            let e = exact(j);
            if winner.0 == usize::MAX || e > winner.1 {
                winner = (j, e);
            }
        }
    }
    winner
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn unit(v: Vec<f32>) -> Vec<f32> {
        let n = v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
        v.iter().map(|x| (f64::from(*x) / n) as f32).collect()
    }

    proptest! {
        #[test]
        fn dot_and_the_product_agree_within_the_bound(
            d in 1usize..70,
            seed in proptest::collection::vec(-1.0f32..1.0, 140),
        ) {
            let a = unit(seed[..d].iter().map(|x| x + 1e-3).collect());
            let b = unit(seed[70..70 + d].iter().map(|x| x - 1e-3).collect());
            let exact: f64 = a.iter().zip(&b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
            let av = ArrayView2::from_shape((1, d), &a).unwrap();
            let bv = ArrayView2::from_shape((1, d), &b).unwrap();
            let mut out = Array2::zeros((1, 1));
            Packed::new(bv).product_into(av, &mut Vec::new(), &mut out.view_mut());
            let bound = f64::from(dot_error_bound(d));
            prop_assert!((f64::from(dot(&a, &b)) - exact).abs() <= bound);
            prop_assert!((f64::from(out[[0, 0]]) - exact).abs() <= bound);
        }
    }

    #[test]
    fn dispatched_kernels_equal_the_plain_ones_bit_for_bit() {
        let mut x = 0.3f32;
        let mut next = || {
            x = (x * 3.9 * (1.0 - x)).clamp(0.01, 0.99);
            x - 0.5
        };
        for d in [0, 1, 7, 8, 9, 31, 32, 33, 63, 64, 100, 384, 385, 1000] {
            let a: Vec<f32> = (0..d).map(|_| next()).collect();
            let b: Vec<f32> = (0..d).map(|_| next()).collect();
            assert_eq!(dot(&a, &b).to_bits(), dot_plain(&a, &b).to_bits(), "d = {d}");
            let (mut fast, mut plain) = (vec![0.25; d], vec![0.25; d]);
            add_scaled(&mut fast, -0.7, &a);
            add_scaled_plain(&mut plain, -0.7, &a);
            assert_eq!(fast, plain);
            let want = squared_distance_plain(&a, &b).to_bits();
            for body in squared_distance_bodies() {
                // SAFETY: only bodies this CPU runs are listed.
                assert_eq!(unsafe { body(&a, &b) }.to_bits(), want, "d = {d}");
            }
        }
    }

    /// Every body of [`squared_distance`] this CPU can run.
    fn squared_distance_bodies() -> Vec<DistanceBody> {
        let mut all: Vec<DistanceBody> = vec![squared_distance_plain, squared_distance];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") {
                all.push(simd::squared_distance_avx2);
            }
            if std::arch::is_x86_feature_detected!("avx512f") {
                all.push(simd::squared_distance_avx512);
            }
        }
        all
    }

    #[test]
    fn squared_distance_matches_the_plain_sum() {
        for d in [0, 1, 7, 8, 9, 384, 385] {
            let a: Vec<f32> = (0..d).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..d).map(|i| (i as f32 * 0.11).cos()).collect();
            let plain: f64 = a.iter().zip(&b).map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2)).sum();
            assert!((squared_distance(&a, &b) - plain).abs() <= 1e-12 * plain.max(1.0), "d = {d}");
        }
    }

    #[test]
    fn exp_in_place_is_within_two_ulp() {
        let mut xs: Vec<f32> = (0..200_001).map(|i| -87.0 + 87.0 * i as f32 / 200_000.0).collect();
        xs.extend([0.0, -1e-30, -1e-7, 1e-3, 0.5, 3.0]);
        let mut got = xs.clone();
        exp_in_place(&mut got);
        for (&x, &y) in xs.iter().zip(&got) {
            let want = f64::from(x).exp();
            let ulp = f64::from((want as f32).next_up() - want as f32);
            assert!((f64::from(y) - want).abs() <= 2.0 * ulp, "exp({x}) = {y}, want {want}");
        }
        let mut tiny = [-200.0f32, f32::NEG_INFINITY];
        exp_in_place(&mut tiny);
        assert!(tiny.iter().all(|&y| (0.0..1e-37).contains(&y)));
    }

    #[test]
    fn refined_argmax_prefers_exact_scores_and_low_indices() {
        // The filter says 1 wins narrowly, but the exact scores tie 0 and 1.
        let filter = [0.5f32, 0.50001, 0.1];
        let exact = [0.7f32, 0.7, 0.9];
        let got = refined_argmax(filter.iter().copied(), 1e-3, |_| true, |j| exact[j]);
        assert_eq!(got, Some((0, 0.7)));
        // Ineligible candidates are skipped even when they lead.
        let got = refined_argmax(filter.iter().copied(), 1e-3, |j| j == 2, |j| exact[j]);
        assert_eq!(got, Some((2, 0.9)));
        assert_eq!(refined_argmax(filter.iter().copied(), 1e-3, |_| false, |j| exact[j]), None);
    }

    proptest! {
        #[test]
        fn refined_best_is_refined_argmax_over_every_candidate(
            // Small integers: many filter and exact ties, and lengths on both sides of the lanes.
            pairs in proptest::collection::vec((0i8..6, 0i8..6), 1..40),
            tolerance in 0u8..3,
        ) {
            let filter: Vec<f32> = pairs.iter().map(|p| f32::from(p.0)).collect();
            let exact: Vec<f32> = pairs.iter().map(|p| f32::from(p.1)).collect();
            let tolerance = f32::from(tolerance);
            let want = refined_argmax(filter.iter().copied(), tolerance, |_| true, |j| exact[j]);
            prop_assert_eq!(Some(refined_best(&filter, tolerance, |j| exact[j])), want);
        }
    }
}
