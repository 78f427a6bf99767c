//! A bfloat16 copy of the pool's unit rows, for the passes that read every
//! row against one new vector but change only the rows whose score passes a
//! threshold (farthest-point sampling, k-means++ seeding).
//!
//! Those passes are bound by memory bandwidth: each step reads the whole
//! pool for one dot product per row. The copy holds half the bytes, and a
//! score from it comes with a rigorous bound on how far the exact [`dot`]
//! can be above it, so a row is read in float32 only when its exact score
//! might pass. Which rows pass does not depend on how the screen rounds:
//! every decision is still made with [`dot`].
//!
//! [`dot`]: super::dot

use ndarray::ArrayView2;

use crate::error::{Result, reserved};

/// The bfloat16 copy of a matrix of unit rows.
pub struct Screen {
    rows: Vec<u16>,
    dim: usize,
    /// How far [`super::dot`] of a row and a unit vector can be above the
    /// screened score (see [`Screen::new`]).
    slack: f64,
}

impl Screen {
    /// The copy of `features` (unit rows), each value rounded to the nearest
    /// bfloat16 (8 significant bits).
    ///
    /// The bound: each value moves by at most `2⁻⁸` of itself, so for unit
    /// vectors the exact sum moves by at most `2⁻⁸` (Cauchy–Schwarz); the
    /// float32 sum of the screened products, in any order, with or without
    /// fused multiply-adds, is within `γ_d` of theirs; and `dot` is within
    /// its own error bound of the exact value. Norms that are 1 only up to
    /// rounding are covered by the factor 1.01.
    pub fn new(features: ArrayView2<f32>) -> Result<Self> {
        let dim = features.ncols();
        let mut rows = reserved(features.len(), "the bfloat16 screen of the features")?;
        rows.extend(features.iter().map(|&x| to_bf16(x)));
        let u = f64::from(f32::EPSILON) / 2.0;
        let gamma = dim as f64 * u / (1.0 - dim as f64 * u);
        let slack = 1.01 * (2f64.powi(-8) + gamma) + f64::from(super::dot_error_bound(dim)) + 1e-30;
        Ok(Screen { rows, dim, slack })
    }

    /// An upper bound on `dot(row i, x)` for a unit vector `x`.
    #[inline]
    pub fn upper_bound(&self, i: usize, x: &[f32]) -> f64 {
        assert_eq!(x.len(), self.dim);
        let row = &self.rows[i * self.dim..(i + 1) * self.dim];
        // SAFETY: `KERNEL` holds a body whose CPU features were detected at
        // start-up; every body accepts two slices of equal length.
        let score = unsafe { KERNEL(row, x) };
        f64::from(score) + self.slack
    }
}

/// `x` rounded to the nearest bfloat16 (ties to even), as its bits. Unit
/// rows hold no infinities or NaNs, and nothing near the float32 maximum.
fn to_bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    let rounded = bits.wrapping_add(0x7fff + ((bits >> 16) & 1));
    (rounded >> 16) as u16
}

/// The float32 value of bfloat16 bits: exact.
#[inline(always)]
fn from_bf16(h: u16) -> f32 {
    f32::from_bits(u32::from(h) << 16)
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
fn screened_dot<const FUSED: bool>(h: &[u16], x: &[f32]) -> f32 {
    let madd = |a: u16, b: f32, c: f32| if FUSED { from_bf16(a).mul_add(b, c) } else { from_bf16(a) * b + c };
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
fn screened_dot_plain(h: &[u16], x: &[f32]) -> f32 {
    screened_dot::<false>(h, x)
}

type Body = unsafe fn(&[u16], &[f32]) -> f32;

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
    pub unsafe fn screened_dot_avx512(h: &[u16], x: &[f32]) -> f32 {
        super::screened_dot::<true>(h, x)
    }

    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn screened_dot_avx2(h: &[u16], x: &[f32]) -> f32 {
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
    fn rounding_to_bfloat16_is_to_the_nearest_and_ties_to_even() {
        for x in [1.0f32, -0.5, 0.0, -0.0, 1e-40, 0.123_456_79, 3.0e-39] {
            let h = from_bf16(to_bf16(x));
            let (below, above) =
                (f32::from_bits((x.to_bits() >> 16) << 16), f32::from_bits(((x.to_bits() >> 16) + 1) << 16));
            assert!((h - x).abs() <= (below - x).abs().min((above - x).abs()), "{x}");
        }
        // Exactly halfway between 1 and the next bfloat16: ties to even (1).
        assert_eq!(to_bf16(f32::from_bits(0x3f80_8000)), 0x3f80);
        assert_eq!(to_bf16(f32::from_bits(0x3f81_8000)), 0x3f82);
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
                        let h = &screen.rows[i * dim..(i + 1) * dim];
                        // SAFETY: `bodies` lists only what this CPU runs.
                        let upper = f64::from(unsafe { body(h, b.as_slice().unwrap()) }) + screen.slack;
                        assert!(upper >= exact, "dim {dim}, rows {i} and {j}: {upper} < {exact}");
                        assert!(upper - exact < 0.01, "dim {dim}: a loose bound {upper} for {exact}");
                    }
                }
            }
            assert!(screen.upper_bound(0, rows.row(0).as_slice().unwrap()) >= 1.0 - 1e-6);
        }
    }
}
