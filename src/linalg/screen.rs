//! An 8-bit copy of the pool's unit rows, for the passes that read every
//! row against one new vector but change only the rows whose score passes a
//! threshold (farthest-point sampling, k-means++ seeding).
//!
//! Those passes are bound by memory bandwidth: each step reads the whole
//! pool for one dot product per row. The copy holds a quarter of the bytes,
//! and a score from it comes with a rigorous bound on how far the exact
//! [`dot`] can be above it, so a row is read in float32 only when its exact
//! score might pass. Which rows pass does not depend on how the screen
//! rounds: every decision is still made with [`dot`].
//!
//! [`dot`]: super::dot

use ndarray::ArrayView2;

use rayon::prelude::*;

use super::round_up;
use crate::error::{Result, filled};

/// The 8-bit copy of a matrix of unit rows: row `i` is approximately
/// `scale[i] · q_i`, with every entry of `q_i` in `[-127, 127]`.
pub struct Screen {
    rows: Vec<i8>,
    dim: usize,
    scale: Vec<f32>,
    /// Per row, how far [`super::dot`] of the row and a unit vector can be
    /// above the screened score (see [`Screen::new`]).
    slack: Vec<f32>,
}

impl Screen {
    /// The copy of `features` (unit rows): each row scaled so its largest
    /// entry is ±127, and rounded to integers.
    ///
    /// The bound, for a unit vector `x`: the exact `f·x` differs from
    /// `scale · (q·x)` by `e·x`, where `e` is the row's rounding error, so
    /// by at most `|e|` (Cauchy–Schwarz); the float32 sum of `q·x`, in any
    /// order, with or without fused multiply-adds, is within `γ_d · |q|`
    /// of the exact one; and `dot` is within its own error bound of the
    /// exact value. Norms that are 1 only up to rounding are covered by the
    /// factor 1.01.
    pub fn new(features: ArrayView2<f32>) -> Result<Self> {
        let (n, dim) = features.dim();
        let what = "the 8-bit screen of the features";
        let mut rows = filled(features.len(), 0i8, what)?;
        let (mut scale, mut slack) = (filled(n, 0f32, what)?, filled(n, 0f32, what)?);
        let u = f64::from(f32::EPSILON) / 2.0;
        let gamma = dim as f64 * u / (1.0 - dim as f64 * u);
        let dot_error = f64::from(super::dot_error_bound(dim)) + 1e-30;
        rows.par_chunks_mut(dim.max(1))
            .zip(scale.par_iter_mut().zip(slack.par_iter_mut()))
            .enumerate()
            .with_min_len(256)
            .for_each(|(i, (q, (s, slack)))| {
                let row = features.row(i);
                let (error, norm) = quantize(row.as_slice().expect("features are contiguous"), q, s);
                *slack = round_up(1.01 * (error.sqrt() + f64::from(*s) * gamma * norm.sqrt()) + dot_error);
            });
        Ok(Screen { rows, dim, scale, slack })
    }

    /// An upper bound on `dot(row i, x)` for a unit vector `x`.
    #[inline]
    pub fn upper_bound(&self, i: usize, x: &[f32]) -> f64 {
        assert_eq!(x.len(), self.dim);
        let row = &self.rows[i * self.dim..(i + 1) * self.dim];
        // SAFETY: `KERNEL` holds a body whose CPU features were detected at
        // start-up; every body accepts two slices of equal length.
        let score = unsafe { KERNEL(row, x) };
        // Exact: a product of two float32 values in float64.
        f64::from(self.scale[i]) * f64::from(score) + f64::from(self.slack[i])
    }
}

/// Writes `row / s` rounded to integers into `q`, where `s` (written to
/// `scale`) makes the largest entry ±127; returns the squared norms of the
/// rounding error `s·q − row` and of `q`, in float64.
fn quantize(row: &[f32], q: &mut [i8], scale: &mut f32) -> (f64, f64) {
    // Adding and taking away 1.5 · 2²³ rounds a float32 below 2²² to an
    // integer (to even), without a call to `round` for every entry.
    const MAGIC: f32 = 12_582_912.0;
    let largest = row.iter().fold(0f32, |m, x| m.max(x.abs()));
    let s = largest / 127.0;
    let inverse = if s > 0.0 { 1.0 / s } else { 0.0 };
    let (mut error, mut norm) = (0f64, 0f64);
    for (q, &x) in q.iter_mut().zip(row) {
        let r = ((x * inverse + MAGIC) - MAGIC).clamp(-127.0, 127.0);
        *q = r as i8;
        // Exact in float64: a 24-bit scale times an 8-bit integer.
        let e = f64::from(s) * f64::from(r) - f64::from(x);
        error += e * e;
        norm += f64::from(r) * f64::from(r);
    }
    *scale = s;
    (error, norm)
}

/// Lanes of one accumulator (an AVX-512 register, two AVX2 ones).
const LANES: usize = 16;
/// Independent accumulators, so the additions of a row overlap.
const CHAINS: usize = 4;

/// The screened score. Any summation order is as good as another for the
/// bound, so this one is written for the vectoriser: `CHAINS` running sums
/// of `LANES`, a pass of single sums for the rest of the row, a tree.
/// `FUSED` says whether `mul_add` is a hardware instruction (without FMA
/// it is a library call, so the portable body multiplies and adds).
#[inline(always)]
fn screened_dot<const FUSED: bool>(h: &[i8], x: &[f32]) -> f32 {
    let madd = |a: i8, b: f32, c: f32| if FUSED { f32::from(a).mul_add(b, c) } else { f32::from(a) * b + c };
    let mut acc = [[0f32; LANES]; CHAINS];
    let (blocks_h, blocks_x) = (h.chunks_exact(LANES * CHAINS), x.chunks_exact(LANES * CHAINS));
    let (rest_h, rest_x) = (blocks_h.remainder(), blocks_x.remainder());
    for (a, b) in blocks_h.zip(blocks_x) {
        for (c, sums) in acc.iter_mut().enumerate() {
            for (l, sum) in sums.iter_mut().enumerate() {
                *sum = madd(a[c * LANES + l], b[c * LANES + l], *sum);
            }
        }
    }
    let (singles_h, singles_x) = (rest_h.chunks_exact(LANES), rest_x.chunks_exact(LANES));
    let tail = singles_h.remainder().iter().zip(singles_x.remainder()).fold(0.0, |t, (&a, &b)| madd(a, b, t));
    for (a, b) in singles_h.zip(singles_x) {
        for (l, sum) in acc[0].iter_mut().enumerate() {
            *sum = madd(a[l], b[l], *sum);
        }
    }
    let mut lanes: [f32; LANES] = std::array::from_fn(|l| (acc[0][l] + acc[1][l]) + (acc[2][l] + acc[3][l]));
    let mut width = LANES / 2;
    while width > 0 {
        for l in 0..width {
            lanes[l] += lanes[l + width];
        }
        width /= 2;
    }
    lanes[0] + tail
}

/// The portable body.
fn screened_dot_plain(h: &[i8], x: &[f32]) -> f32 {
    screened_dot::<false>(h, x)
}

type Body = unsafe fn(&[i8], &[f32]) -> f32;

static KERNEL: std::sync::LazyLock<Body> = std::sync::LazyLock::new(|| {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return simd::screened_dot_avx512;
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            return simd::screened_dot_avx2;
        }
    }
    screened_dot_plain
});

/// [`screened_dot`] compiled for the vector extensions found at start-up.
#[cfg(target_arch = "x86_64")]
mod simd {
    /// # Safety
    /// The CPU must support AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn screened_dot_avx512(h: &[i8], x: &[f32]) -> f32 {
        super::screened_dot::<true>(h, x)
    }

    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn screened_dot_avx2(h: &[i8], x: &[f32]) -> f32 {
        super::screened_dot::<true>(h, x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linalg::dot;
    use crate::testing::unit_rows;
    use rand::SeedableRng;
    use rand::rngs::Xoshiro256PlusPlus;

    /// Every body this CPU can run.
    fn bodies() -> Vec<Body> {
        let mut all: Vec<Body> = vec![screened_dot_plain];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                all.push(simd::screened_dot_avx512);
            }
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                all.push(simd::screened_dot_avx2);
            }
        }
        all
    }

    #[test]
    fn every_body_bounds_dot_from_above_and_closely() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
        for (dim, grid) in [(384, None), (100, None), (37, None), (5, Some(1)), (16, Some(2)), (1, None)] {
            let rows = unit_rows(300, dim, &mut rng, grid);
            let screen = Screen::new(rows.view()).unwrap();
            for body in bodies() {
                for i in 0..rows.nrows() {
                    for j in [0, i, (i * 7) % rows.nrows()] {
                        let (a, b) = (rows.row(i), rows.row(j));
                        let exact = f64::from(dot(a.as_slice().unwrap(), b.as_slice().unwrap()));
                        let q = &screen.rows[i * dim..(i + 1) * dim];
                        // SAFETY: `bodies` lists only what this CPU runs.
                        let score = f64::from(unsafe { body(q, b.as_slice().unwrap()) });
                        let upper = f64::from(screen.scale[i]) * score + f64::from(screen.slack[i]);
                        assert!(upper >= exact, "dim {dim}, rows {i} and {j}: {upper} < {exact}");
                        assert!(upper - exact < 0.03, "dim {dim}: a loose bound {upper} for {exact}");
                    }
                }
            }
            assert!(screen.upper_bound(0, rows.row(0).as_slice().unwrap()) >= 1.0 - 1e-6);
        }
    }
}
