//! An 8-bit copy of the pool's unit rows, for the passes that read every
//! row against one new vector but change only the rows whose score passes a
//! threshold (k-means++ seeding).
//!
//! Such passes are bound by memory bandwidth: each step reads the whole
//! pool for one dot product per row. The copy holds a quarter of the bytes,
//! and a score from it comes with a rigorous bound on how far the exact
//! [`dot`] can be above it, so a row is read in float32 only when its exact
//! score might pass. Which rows pass does not depend on how the screen
//! rounds: every decision is still made with [`dot`].
//!
//! The new vector is quantised too ([`Query`]), so the screened score is an
//! integer dot product: exact, hence the same on every kernel, and on CPUs
//! with AVX-512 VNNI one instruction per 64 entries.
//!
//! [`dot`]: super::dot

use ndarray::ArrayView2;
use rayon::prelude::*;

use super::round_up;
use crate::error::{Result, filled};

/// Integer products summed per kernel call, at most: `|q| ≤ 127` and
/// `|u| ≤ 255`, so the sum stays far inside an `i32`.
const SPAN: usize = 1 << 14;

/// The 8-bit copy of a matrix of unit rows: row `i` is `scale[i] · q_i + e_i`,
/// with every entry of `q_i` in `[-127, 127]` and `e_i` the rounding error.
pub struct Screen {
    rows: Vec<i8>,
    dim: usize,
    /// What the bound needs besides the row, kept together so a pass over
    /// the pool reads one more stream, not four.
    meta: Vec<RowMeta>,
}

#[derive(Clone, Copy, Default)]
struct RowMeta {
    scale: f32,
    /// `Σ_j q_ij`, to take a query's offset back out.
    sum: i32,
    /// `1.01·|e_i|` plus `dot`'s error bound: the bound's part that does not
    /// depend on the query.
    slack: f32,
    /// `1.01 + |e_i|`: bounds `|scale · q_i|`, which multiplies the query's
    /// rounding error.
    reach: f32,
}

/// A unit vector prepared for [`Screen::upper_bound`]: `x = scale · q + e`,
/// stored as `q + 128` (unsigned, as VNNI wants one operand).
pub struct Query {
    offset: Vec<u8>,
    scale: f32,
    /// `|e|`, rounded up.
    error: f64,
}

impl Screen {
    /// The copy of `features` (unit rows): each row scaled so its largest
    /// entry is ±127, and rounded to integers.
    ///
    /// The bound, for unit vectors `f = s·q + e` (a row) and
    /// `x = t·p + ε` (a query): `f·x = s·t·(q·p) + (s·q)·ε + e·x`, so the
    /// exact product is at most `s·t·(q·p) + |s·q|·|ε| + |e|` by
    /// Cauchy–Schwarz, with `q·p` an exact integer; and `dot` is within its
    /// own error bound of the exact value. Norms that are 1 only up to
    /// rounding are covered by the factor 1.01, float64 rounding by 1e-12.
    pub fn new(features: ArrayView2<f32>) -> Result<Self> {
        let (n, dim) = features.dim();
        let what = "the 8-bit screen of the features";
        let mut rows = filled(features.len(), 0i8, what)?;
        let mut meta = filled(n, RowMeta::default(), what)?;
        let dot_error = f64::from(super::dot_error_bound(dim)) + 1e-12;
        rows.par_chunks_mut(dim.max(1)).zip(meta.par_iter_mut()).enumerate().with_min_len(256).for_each(
            |(i, (q, meta))| {
                let row = features.row(i);
                let error = quantize(row.as_slice().expect("features are contiguous"), q, &mut meta.scale).sqrt();
                meta.sum = q.iter().map(|&v| i32::from(v)).sum();
                meta.slack = round_up(1.01 * error + dot_error);
                meta.reach = round_up(1.01 + error);
            },
        );
        Ok(Screen { rows, dim, meta })
    }

    /// `x` (a unit vector of the rows' length) prepared for screening.
    pub fn query(&self, x: &[f32]) -> Query {
        assert_eq!(x.len(), self.dim);
        let mut q = vec![0i8; x.len()];
        let mut scale = 0f32;
        let error = quantize(x, &mut q, &mut scale).sqrt() * (1.0 + 1e-9);
        let offset = q.iter().map(|&v| (i16::from(v) + 128) as u8).collect();
        Query { offset, scale, error }
    }

    /// An upper bound on `dot(row i, x)` for the unit vector `x` that
    /// `query` was prepared from.
    #[inline]
    pub fn upper_bound(&self, i: usize, query: &Query) -> f64 {
        let row = &self.rows[i * self.dim..(i + 1) * self.dim];
        let meta = self.meta[i];
        let integer = offset_dot(row, &query.offset) - 128 * i64::from(meta.sum);
        let scaled = f64::from(meta.scale) * f64::from(query.scale) * integer as f64;
        scaled + f64::from(meta.reach) * query.error + f64::from(meta.slack)
    }
}

/// Writes `row / s` rounded to integers into `q`, where `s` (written to
/// `scale`) makes the largest entry ±127; returns the squared norm of the
/// rounding error `row − s·q`, in float64.
fn quantize(row: &[f32], q: &mut [i8], scale: &mut f32) -> f64 {
    // Adding and taking away 1.5 · 2²³ rounds a float32 below 2²² to an
    // integer (to even), without a call to `round` for every entry.
    const MAGIC: f32 = 12_582_912.0;
    let largest = row.iter().fold(0f32, |m, x| m.max(x.abs()));
    let s = largest / 127.0;
    let inverse = if s > 0.0 { 1.0 / s } else { 0.0 };
    let mut error = 0f64;
    for (q, &x) in q.iter_mut().zip(row) {
        let r = ((x * inverse + MAGIC) - MAGIC).clamp(-127.0, 127.0);
        *q = r as i8;
        // Exact in float64: a 24-bit scale times an 8-bit integer.
        let e = f64::from(s) * f64::from(r) - f64::from(x);
        error += e * e;
    }
    *scale = s;
    error
}

/// `Σ_j q_j · u_j` exactly, in spans a kernel sums in an `i32`.
#[inline]
fn offset_dot(q: &[i8], u: &[u8]) -> i64 {
    debug_assert_eq!(q.len(), u.len());
    if q.len() <= SPAN {
        // SAFETY: as below.
        return i64::from(unsafe { KERNEL(q, u) });
    }
    q.chunks(SPAN)
        .zip(u.chunks(SPAN))
        // SAFETY: `KERNEL` holds a body whose CPU features were detected at
        // start-up; every body accepts two slices of equal length up to SPAN.
        .map(|(q, u)| i64::from(unsafe { KERNEL(q, u) }))
        .sum()
}

/// The portable body: integer products, so any order gives the same sum.
#[inline(always)]
fn offset_dot_plain(q: &[i8], u: &[u8]) -> i32 {
    q.iter().zip(u).map(|(&a, &b)| i32::from(a) * i32::from(b)).sum()
}

type Body = unsafe fn(&[i8], &[u8]) -> i32;

static KERNEL: std::sync::LazyLock<Body> = std::sync::LazyLock::new(|| {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512vnni") && std::arch::is_x86_feature_detected!("avx512bw") {
            return simd::offset_dot_vnni;
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            return simd::offset_dot_avx2;
        }
    }
    offset_dot_plain
});

#[cfg(target_arch = "x86_64")]
mod simd {
    use std::arch::x86_64::*;

    /// [`super::offset_dot_plain`] with `vpdpbusd`: 64 byte products summed
    /// into 16 lanes per instruction.
    ///
    /// # Safety
    /// The CPU must support AVX-512F, AVX-512BW and AVX-512 VNNI; the
    /// slices must have equal lengths, at most [`super::SPAN`].
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn offset_dot_vnni(q: &[i8], u: &[u8]) -> i32 {
        assert_eq!(q.len(), u.len());
        let blocks = q.len() / 64;
        let mut acc = _mm512_setzero_si512();
        for b in 0..blocks {
            // SAFETY: 64 · (b + 1) <= len of both slices.
            let (qv, uv) = unsafe {
                (_mm512_loadu_si512(q.as_ptr().add(64 * b).cast()), _mm512_loadu_si512(u.as_ptr().add(64 * b).cast()))
            };
            acc = _mm512_dpbusd_epi32(acc, uv, qv);
        }
        _mm512_reduce_add_epi32(acc) + super::offset_dot_plain(&q[64 * blocks..], &u[64 * blocks..])
    }

    /// [`super::offset_dot_plain`] compiled for AVX2 (the compiler widens
    /// to 16 bits and uses `vpmaddwd`).
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub unsafe fn offset_dot_avx2(q: &[i8], u: &[u8]) -> i32 {
        super::offset_dot_plain(q, u)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linalg::dot;
    use crate::testing::unit_rows;
    use rand::rngs::Xoshiro256PlusPlus;
    use rand::{RngExt, SeedableRng};

    /// Every body this CPU can run.
    fn bodies() -> Vec<Body> {
        let mut all: Vec<Body> = vec![offset_dot_plain];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512vnni") && std::arch::is_x86_feature_detected!("avx512bw") {
                all.push(simd::offset_dot_vnni);
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                all.push(simd::offset_dot_avx2);
            }
        }
        all
    }

    #[test]
    fn every_body_gives_the_exact_integer_sum() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(2);
        for len in [0, 1, 63, 64, 65, 384, 1000, SPAN] {
            // The extremes too: every product at its largest magnitude.
            for extreme in [false, true] {
                let q: Vec<i8> = (0..len).map(|_| if extreme { -127 } else { rng.random_range(-127..=127) }).collect();
                let u: Vec<u8> = (0..len).map(|_| if extreme { 255 } else { rng.random() }).collect();
                let want: i64 = q.iter().zip(&u).map(|(&a, &b)| i64::from(a) * i64::from(b)).sum();
                for body in bodies() {
                    // SAFETY: `bodies` lists only what this CPU runs.
                    assert_eq!(i64::from(unsafe { body(&q, &u) }), want, "length {len}");
                }
            }
        }
    }

    #[test]
    fn the_bound_is_above_dot_and_close_to_it() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
        for (dim, grid) in [(384, None), (100, None), (37, None), (5, Some(1)), (16, Some(2)), (1, None)] {
            let rows = unit_rows(300, dim, &mut rng, grid);
            let screen = Screen::new(rows.view()).unwrap();
            for i in 0..rows.nrows() {
                for j in [0, i, (i * 7) % rows.nrows()] {
                    let (a, b) = (rows.row(i), rows.row(j));
                    let exact = f64::from(dot(a.as_slice().unwrap(), b.as_slice().unwrap()));
                    let upper = screen.upper_bound(i, &screen.query(b.as_slice().unwrap()));
                    assert!(upper >= exact, "dim {dim}, rows {i} and {j}: {upper} < {exact}");
                    assert!(upper - exact < 0.05, "dim {dim}: a loose bound {upper} for {exact}");
                }
            }
        }
    }
}
