//! An 8-bit product for filters: bounds on each similarity, above and
//! below, at a quarter of the float32 product's bytes and, with AVX-512
//! VNNI, several times its multiply rate.
//!
//! Each row `f` is stored as codes `q` (integers in −127..=127, one byte
//! each) and a scale `s`, with `f = s q + δ`. Then
//! `f_a · f_b − s_a s_b (q_a · q_b) = δ_a · f_b + s_a q_a · δ_b`, which is at
//! most `F (|δ_a| + |δ_b|)` in size, where `F` bounds `|f|` and `|s q|` over
//! both sides of the product. Each row's share of that term (its *radius*,
//! plus a margin for the float32 arithmetic that applies the scales) makes
//! `s_a s_b (q_a · q_b) ± (radius_a + radius_b)` an upper and a lower bound
//! on the true similarity. The integer dot products are exact, so every
//! kernel gives the same bits.

use ndarray::ArrayView2;

/// Codes per 32-bit group: the VNNI instruction multiplies four byte pairs
/// into each 32-bit lane.
const GROUP: usize = 4;
/// Columns are padded to a multiple of this many (one AVX-512 register).
const WIDTH: usize = 16;
/// Columns per panel: four registers (the last panel may be narrower).
const PANEL: usize = 64;
/// Rows per kernel call in [`Codes::bounds`]: each panel of columns is
/// read once for them all.
const SLAB: usize = 64;
/// Rows per block of the AVX-512 body (16 accumulators).
const BLOCK_ROWS: usize = 4;

/// A set of rows as 8-bit codes, with the scale and rounding error of each.
pub struct Codes {
    /// Per row, `dim` codes stored as `q + 128` (the VNNI instruction takes
    /// one unsigned operand), padded with 128 (a zero code).
    codes: Vec<u8>,
    scale: Vec<f32>,
    /// `|δ|` per row, rounded up.
    residual: Vec<f64>,
    /// The largest `|f|` or `|s q|` of any row.
    largest: f64,
    /// The dimension rounded up to a multiple of [`GROUP`].
    dim: usize,
}

impl Codes {
    /// Quantises every row of `features`, on the calling thread.
    pub fn new(features: ArrayView2<f32>) -> Self {
        let dim = features.ncols().div_ceil(GROUP) * GROUP;
        let mut codes = vec![0u8; features.nrows() * dim];
        let (mut scale, mut residual) = (Vec::with_capacity(features.nrows()), Vec::with_capacity(features.nrows()));
        let mut largest = 0.0f64;
        for (i, f) in features.outer_iter().enumerate() {
            let (s, r, l) = quantise(f.as_slice().expect("rows are contiguous"), &mut codes[i * dim..(i + 1) * dim]);
            scale.push(s);
            residual.push(r);
            largest = largest.max(l);
        }
        Codes { codes, scale, residual, largest, dim }
    }

    /// The rows `ids` packed as the columns of a product.
    pub fn columns(&self, ids: &[usize]) -> Columns {
        let width = ids.len().div_ceil(WIDTH) * WIDTH;
        let mut data = vec![0i8; self.dim * width];
        let mut code_sum = vec![0i32; width];
        for (c, &j) in ids.iter().enumerate() {
            for (k, &u) in self.row(j).iter().enumerate() {
                let q = i16::from(u) - 128;
                data[column_index(k, c, self.dim, width)] = q as i8;
                code_sum[c] += i32::from(q);
            }
        }
        let mut scale = vec![0.0; width];
        let mut residual = vec![0.0; width];
        for (c, &j) in ids.iter().enumerate() {
            (scale[c], residual[c]) = (self.scale[j], self.residual[j]);
        }
        Columns { data, code_sum, scale, residual, largest: self.largest, width }
    }

    /// Upper bounds on the similarities of the rows `ids` to `columns`,
    /// into `out` (resized to `ids.len()` × [`Columns::stride`]; row `r`'s
    /// bounds start at `out[r * stride]`, one per column, and the padding
    /// after them holds finite values to ignore), and the radii of the rows
    /// and of the columns: each bound is `radius_r + radius_c` above the
    /// codes' estimate, and the true similarity lies within that of the
    /// estimate, so within twice that below the bound.
    pub fn bounds(&self, ids: &[usize], columns: &Columns, out: &mut Vec<f32>) -> (Vec<f32>, Vec<f32>) {
        // Every entry is written below: no need to clear what is reused.
        out.resize(ids.len() * columns.width, 0.0);
        let (row_radius, column_radius) = self.radii(ids, columns);
        if columns.is_empty() {
            return (row_radius, column_radius);
        }
        for ((ids, out), radii) in
            ids.chunks(SLAB).zip(out.chunks_mut(SLAB * columns.width)).zip(row_radius.chunks(SLAB))
        {
            let rows: Vec<&[u8]> = ids.iter().map(|&i| self.row(i)).collect();
            let row_scale: Vec<f32> = ids.iter().map(|&i| self.scale[i]).collect();
            let scales = Scales {
                row_scale: &row_scale,
                row_radius: radii,
                code_sum: &columns.code_sum,
                column_scale: &columns.scale,
                column_radius: &column_radius,
            };
            // SAFETY: the kernel was chosen for this CPU; every row holds
            // `dim` codes, `data` `dim * width`, `out` `rows * width`, the
            // scales one entry per row and per column, and `width` is a
            // multiple of WIDTH.
            unsafe { (KERNEL.dots)(&rows, &columns.data, self.dim, columns.width, &scales, out) };
        }
        (row_radius, column_radius)
    }

    /// The radii of the rows `ids` and of every column, for a product of
    /// the two (see [`Codes::bounds`]).
    fn radii(&self, ids: &[usize], columns: &Columns) -> (Vec<f32>, Vec<f32>) {
        let largest = self.largest.max(columns.largest);
        let radius = |residual: f64| round_up_f32(largest * residual * (1.0 + 1e-9) + margin(largest));
        (ids.iter().map(|&i| radius(self.residual[i])).collect(), columns.residual.iter().map(|&r| radius(r)).collect())
    }

    fn row(&self, i: usize) -> &[u8] {
        &self.codes[i * self.dim..(i + 1) * self.dim]
    }
}

/// Rows of a [`Codes`] packed as the columns of a product: per panel of 64
/// columns (the last one 16, 32 or 48 wide), for each group of four
/// dimensions, the four codes of each column in turn (one line per group).
pub struct Columns {
    data: Vec<i8>,
    /// Per column, the sum of its codes (to take the 128 offset back out).
    code_sum: Vec<i32>,
    scale: Vec<f32>,
    residual: Vec<f64>,
    largest: f64,
    width: usize,
}

impl Columns {
    /// Whether there are no columns.
    pub fn is_empty(&self) -> bool {
        // The width is the column count rounded up to a multiple of 16.
        self.width == 0
    }

    /// The row stride of [`Codes::bounds`]' output: the column count rounded
    /// up to a multiple of 16.
    pub fn stride(&self) -> usize {
        self.width
    }
}

/// Where code `k` of column `c` sits in packed columns `width` wide.
fn column_index(k: usize, c: usize, dim: usize, width: usize) -> usize {
    let start = c - c % PANEL;
    let panel = (width - start).min(PANEL);
    start * dim + (k / GROUP) * panel * GROUP + (c % PANEL) * GROUP + k % GROUP
}

/// One row's codes into `codes` (its padding stays a zero code), and its
/// scale, `|δ|`, and the larger of `|f|` and `|s q|`, on this CPU's body
/// (every body gives the same bits).
fn quantise(f: &[f32], codes: &mut [u8]) -> (f32, f64, f64) {
    // SAFETY: `KERNEL` holds a body whose CPU features were detected.
    unsafe { (KERNEL.quantise)(f, codes) }
}

/// The portable body of [`quantise`]. `|δ|` and `|f|` come from float64
/// sums in eight lanes, so that they vectorise (their rounding is far
/// inside the 1e-12 added on top); `|s q|` is `s` times the root of an
/// exact integer sum.
///
/// # Safety
/// None: safe code, marked unsafe only to share the bodies' type.
#[inline(always)]
unsafe fn quantise_plain(f: &[f32], codes: &mut [u8]) -> (f32, f64, f64) {
    let largest = f.iter().fold(0.0f32, |m, &x| m.max(x.abs()));
    // The scale is a float32 value, used exactly as stored.
    let scale = (f64::from(largest) / 127.0) as f32;
    let inverse = if scale > 0.0 { (1.0 / f64::from(scale)) as f32 } else { 0.0 };
    // Adding and taking away 1.5 * 2^23 rounds to an integer without a libm
    // call; any integer would do, as the residual is measured from it.
    const ROUND: f32 = 12_582_912.0;
    codes.fill(128);
    let codes = &mut codes[..f.len()];
    for (code, &x) in codes.iter_mut().zip(f) {
        // In [2^23, 2^24) a float's low mantissa bits are the integer itself.
        let held = (x * inverse + ROUND).clamp(ROUND - 127.0, ROUND + 127.0);
        *code = (held.to_bits().wrapping_sub(ROUND.to_bits()) as i32 + 128) as u8;
    }
    // At most 127² per entry: exact in an i64 for any row.
    let squares: i64 = codes.iter().map(|&c| i64::from((i32::from(c) - 128).pow(2))).sum();
    let s = f64::from(scale);
    let (mut residual, mut norm) = ([0.0f64; 8], [0.0f64; 8]);
    // `x − q s` is exact: `q s` (a float32 times an integer below 2^7)
    // and the difference both fit in 53 bits.
    let (xs, qs) = (f.chunks_exact(8), codes.chunks_exact(8));
    for (l, (&x, &code)) in xs.remainder().iter().zip(qs.remainder()).enumerate() {
        let (x, code) = (f64::from(x), f64::from(i32::from(code) - 128));
        residual[l] += (x - code * s) * (x - code * s);
        norm[l] += x * x;
    }
    for (x, q) in xs.zip(qs) {
        let (x, q): (&[f32; 8], &[u8; 8]) = (x.try_into().expect("8 lanes"), q.try_into().expect("8 lanes"));
        let x: [f64; 8] = std::array::from_fn(|l| f64::from(x[l]));
        let d: [f64; 8] = std::array::from_fn(|l| x[l] - f64::from(i32::from(q[l]) - 128) * s);
        for l in 0..8 {
            residual[l] += d[l] * d[l];
            norm[l] += x[l] * x[l];
        }
    }
    let total = |lanes: [f64; 8]| lanes.iter().sum::<f64>().sqrt() * (1.0 + 1e-12);
    let coded = s * (squares as f64).sqrt() * (1.0 + 1e-12);
    (scale, total(residual), total(norm).max(coded))
}

/// Covers the float32 arithmetic of [`Codes::bounds`], per row (a bound
/// adds two radii): converting the integer sum, the product of the scales,
/// the multiply and the two adds each round by at most half an ulp, of
/// values at most `F²` (or the radii, which are smaller).
fn margin(largest: f64) -> f64 {
    let u = f64::from(f32::EPSILON);
    8.0 * u * largest.max(1.0).powi(2)
}

/// The smallest float32 value at or above `x`.
fn round_up_f32(x: f64) -> f32 {
    let y = x as f32;
    if f64::from(y) >= x { y } else { y.next_up() }
}

type Kernel = unsafe fn(&[&[u8]], &[i8], usize, usize, &Scales, &mut [f32]);

/// What turns row `r`'s integer sum with column `c` into a bound:
/// `(sum − 128 · code_sum[c]) · (row_scale[r] · column_scale[c]) +
/// (row_radius[r] + column_radius[c])`, in float32, in that order (a
/// multiply and an add, never fused), so every body gives the same bits.
struct Scales<'a> {
    row_scale: &'a [f32],
    row_radius: &'a [f32],
    /// Per column, the sum of its codes: the VNNI sum counts each of them
    /// 128 times too often.
    code_sum: &'a [i32],
    column_scale: &'a [f32],
    column_radius: &'a [f32],
}

impl Scales<'_> {
    /// The same scales with row `first` as row 0.
    fn rows_from(&self, first: usize) -> Self {
        Scales { row_scale: &self.row_scale[first..], row_radius: &self.row_radius[first..], ..*self }
    }

    #[inline(always)]
    fn bound(&self, sum: i32, r: usize, c: usize) -> f32 {
        let q = sum - 128 * self.code_sum[c];
        q as f32 * (self.row_scale[r] * self.column_scale[c]) + (self.row_radius[r] + self.column_radius[c])
    }
}

type Quantiser = unsafe fn(&[f32], &mut [u8]) -> (f32, f64, f64);

/// The bodies for this CPU, chosen once; the name says which.
struct Chosen {
    dots: Kernel,
    quantise: Quantiser,
    name: &'static str,
}

static KERNEL: std::sync::LazyLock<Chosen> = std::sync::LazyLock::new(|| {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            let quantise = simd::quantise_avx2;
            if std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512vnni") {
                return Chosen { dots: simd::dots_vnni, quantise, name: "avx512vnni" };
            }
            return Chosen { dots: simd::dots_avx2, quantise, name: "avx2" };
        }
    }
    Chosen { dots: dots_plain, quantise: quantise_plain, name: "portable" }
});

/// Which body [`Codes::bounds`] runs on this CPU.
pub fn kernel_name() -> &'static str {
    KERNEL.name
}

/// Whether this CPU multiplies bytes fast enough for the codes to beat the
/// float32 product as a filter: with AVX-512 VNNI (64 byte products per
/// instruction) they do; the AVX2 body, which the compiler vectorises from
/// the portable one, is slower than the float32 product (README, Performance).
pub fn codes_are_fast() -> bool {
    kernel_name() == "avx512vnni"
}

/// The portable body: `out[r * width + c]` is the bound from
/// `Σ_k rows[r][k] · column c's code k`, summed in 32-bit integers (exact:
/// at most 255 · 127 · dim), through `scales`.
///
/// # Safety
/// None beyond the slice lengths, which are checked.
#[inline(always)]
unsafe fn dots_plain(rows: &[&[u8]], data: &[i8], dim: usize, width: usize, scales: &Scales, out: &mut [f32]) {
    assert!(data.len() >= dim * width && out.len() >= rows.len() * width);
    assert!(scales.row_scale.len() >= rows.len() && scales.row_radius.len() >= rows.len());
    assert!(scales.code_sum.len() >= width && scales.column_scale.len() >= width);
    assert!(scales.column_radius.len() >= width);
    if width == 0 {
        return;
    }
    for (r, (row, out)) in rows.iter().zip(out.chunks_exact_mut(width)).enumerate() {
        let row = &row[..dim];
        for start in (0..width).step_by(PANEL) {
            let wide = (width - start).min(PANEL);
            let panel = &data[start * dim..(start + wide) * dim];
            let mut acc = [0i32; PANEL];
            for (group, line) in row.chunks_exact(GROUP).zip(panel.chunks_exact(wide * GROUP)) {
                for (acc, codes) in acc.iter_mut().zip(line.chunks_exact(GROUP)) {
                    for (&x, &y) in group.iter().zip(codes) {
                        *acc += i32::from(x) * i32::from(y);
                    }
                }
            }
            for (c, &sum) in acc[..wide].iter().enumerate() {
                out[start + c] = scales.bound(sum, r, start + c);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod simd {
    use std::arch::x86_64::*;

    use super::Scales;

    /// [`super::dots_plain`] compiled for AVX2 (the compiler vectorises the
    /// byte products; integer sums, so the same results).
    ///
    /// # Safety
    /// The CPU must support AVX2; the slices as for the portable body.
    #[target_feature(enable = "avx2")]
    pub unsafe fn dots_avx2(rows: &[&[u8]], data: &[i8], dim: usize, width: usize, scales: &Scales, out: &mut [f32]) {
        // SAFETY: the caller's promise, passed on.
        unsafe { super::dots_plain(rows, data, dim, width, scales, out) }
    }

    /// [`super::quantise_plain`] compiled for AVX2: the same operations,
    /// vectorised, so the same bits.
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub unsafe fn quantise_avx2(f: &[f32], codes: &mut [u8]) -> (f32, f64, f64) {
        // SAFETY: the caller's promise, passed on.
        unsafe { super::quantise_plain(f, codes) }
    }

    /// The dots with AVX-512 VNNI: blocks of up to 4 rows by a panel of up
    /// to 64 columns, each lane adding four byte products per instruction.
    ///
    /// # Safety
    /// The CPU must support AVX-512F and AVX-512 VNNI; every row must hold
    /// `dim` codes (a multiple of 4), `data` `dim * width`, `out` `rows.len()
    /// * width`, and `width` must be a multiple of 16.
    #[target_feature(enable = "avx512f,avx512vnni")]
    pub unsafe fn dots_vnni(rows: &[&[u8]], data: &[i8], dim: usize, width: usize, scales: &Scales, out: &mut [f32]) {
        assert!(data.len() >= dim * width && out.len() >= rows.len() * width);
        assert!(scales.row_scale.len() >= rows.len() && scales.row_radius.len() >= rows.len());
        assert!(scales.code_sum.len() >= width && scales.column_scale.len() >= width);
        assert!(scales.column_radius.len() >= width);
        assert!(width.is_multiple_of(super::WIDTH) && dim.is_multiple_of(super::GROUP));
        assert!(rows.iter().all(|r| r.len() >= dim));
        for c in (0..width).step_by(super::PANEL) {
            let wide = (width - c).min(super::PANEL);
            let panel = &data[c * dim..(c + wide) * dim];
            for (r, block) in rows.chunks(super::BLOCK_ROWS).enumerate() {
                let out = &mut out[r * super::BLOCK_ROWS * width..];
                let scales = scales.rows_from(r * super::BLOCK_ROWS);
                // SAFETY: the lengths were asserted above.
                unsafe {
                    match (block.len(), wide / 16) {
                        (4, 4) => block_vnni::<4, 4>(block, panel, dim, width, c, &scales, out),
                        (4, 3) => block_vnni::<4, 3>(block, panel, dim, width, c, &scales, out),
                        (4, 2) => block_vnni::<4, 2>(block, panel, dim, width, c, &scales, out),
                        (4, _) => block_vnni::<4, 1>(block, panel, dim, width, c, &scales, out),
                        (3, 4) => block_vnni::<3, 4>(block, panel, dim, width, c, &scales, out),
                        (3, 3) => block_vnni::<3, 3>(block, panel, dim, width, c, &scales, out),
                        (3, 2) => block_vnni::<3, 2>(block, panel, dim, width, c, &scales, out),
                        (3, _) => block_vnni::<3, 1>(block, panel, dim, width, c, &scales, out),
                        (2, 4) => block_vnni::<2, 4>(block, panel, dim, width, c, &scales, out),
                        (2, 3) => block_vnni::<2, 3>(block, panel, dim, width, c, &scales, out),
                        (2, 2) => block_vnni::<2, 2>(block, panel, dim, width, c, &scales, out),
                        (2, _) => block_vnni::<2, 1>(block, panel, dim, width, c, &scales, out),
                        (_, 4) => block_vnni::<1, 4>(block, panel, dim, width, c, &scales, out),
                        (_, 3) => block_vnni::<1, 3>(block, panel, dim, width, c, &scales, out),
                        (_, 2) => block_vnni::<1, 2>(block, panel, dim, width, c, &scales, out),
                        _ => block_vnni::<1, 1>(block, panel, dim, width, c, &scales, out),
                    }
                }
            }
        }
    }

    /// `R` rows by a panel of `16 V` columns: `out[i * width + c..][..16 V]`
    /// for row `i`.
    ///
    /// # Safety
    /// AVX-512F and VNNI; each row holds `dim` codes, `panel` `dim * 16 V`,
    /// and `out` reaches `(R - 1) * width + c + 16 V`.
    #[target_feature(enable = "avx512f,avx512vnni")]
    #[inline]
    unsafe fn block_vnni<const R: usize, const V: usize>(
        rows: &[&[u8]],
        panel: &[i8],
        dim: usize,
        width: usize,
        c: usize,
        scales: &Scales,
        out: &mut [f32],
    ) {
        let mut acc = [[_mm512_setzero_si512(); V]; R];
        let p = panel.as_ptr();
        let a: [*const u8; R] = std::array::from_fn(|i| rows[i].as_ptr());
        for g in (0..dim).step_by(super::GROUP) {
            // SAFETY: g + 4 <= dim, so the line g/4 of the panel and four
            // codes of each row are in bounds (the caller's promise).
            unsafe {
                let line = p.add(g * 16 * V);
                let b: [__m512i; V] = std::array::from_fn(|v| _mm512_loadu_si512(line.add(64 * v).cast()));
                for (i, acc_row) in acc.iter_mut().enumerate() {
                    let x = _mm512_set1_epi32(a[i].add(g).cast::<i32>().read_unaligned());
                    for (v, acc) in acc_row.iter_mut().enumerate() {
                        *acc = _mm512_dpbusd_epi32(*acc, x, b[v]);
                    }
                }
            }
        }
        for (i, acc_row) in acc.iter().enumerate() {
            for (v, acc) in acc_row.iter().enumerate() {
                let column = c + 16 * v;
                // SAFETY: as above; the scales hold `width` columns and every
                // row (asserted by the caller).
                unsafe {
                    let code_sum = _mm512_loadu_si512(scales.code_sum.as_ptr().add(column).cast());
                    let q = _mm512_sub_epi32(*acc, _mm512_slli_epi32::<7>(code_sum));
                    let column_scale = _mm512_loadu_ps(scales.column_scale.as_ptr().add(column));
                    let scale = _mm512_mul_ps(_mm512_set1_ps(scales.row_scale[i]), column_scale);
                    let column_radius = _mm512_loadu_ps(scales.column_radius.as_ptr().add(column));
                    let radius = _mm512_add_ps(_mm512_set1_ps(scales.row_radius[i]), column_radius);
                    let bound = _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(q), scale), radius);
                    _mm512_storeu_ps(out.as_mut_ptr().add(i * width + column), bound);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;
    use proptest::prelude::*;
    use rand::SeedableRng;

    fn exact(a: &[f32], b: &[f32]) -> f64 {
        a.iter().zip(b).map(|(&x, &y)| f64::from(x) * f64::from(y)).sum()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn bounds_hold_and_are_close_on_every_kernel(
            n in 1usize..40, d in 1usize..70, cols in 0usize..140, grid in proptest::option::of(1i32..3), seed in 0u64..1000,
        ) {
            let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(seed);
            let f = crate::testing::unit_rows_with_edges(n, d, &mut rng, grid);
            let codes = Codes::new(f.view());
            let rows: Vec<usize> = (0..n).collect();
            let ids: Vec<usize> = (0..cols).map(|c| (c * 7 + 3) % n).collect();
            let columns = codes.columns(&ids);
            let mut out = vec![7.0];
            let (row_radius, column_radius) = codes.bounds(&rows, &columns, &mut out);
            prop_assert_eq!(out.len(), n * columns.stride());
            for (r, &i) in rows.iter().enumerate() {
                for (c, &j) in ids.iter().enumerate() {
                    let truth = exact(f.row(i).as_slice().unwrap(), f.row(j).as_slice().unwrap());
                    let bound = f64::from(out[r * columns.stride() + c]);
                    prop_assert!(bound >= truth, "{} < {} at {},{}", bound, truth, i, j);
                    // Within the two radii of the estimate on either side.
                    let width = 2.0 * f64::from(row_radius[r] + column_radius[c]);
                    prop_assert!(bound - width <= truth, "{} > {} at {},{}", bound - width, truth, i, j);
                }
            }
            let picked: Vec<&[u8]> = rows.iter().map(|&i| codes.row(i)).collect();
            let row_scale: Vec<f32> = rows.iter().map(|&i| codes.scale[i]).collect();
            let scales = Scales {
                row_scale: &row_scale,
                row_radius: &row_radius,
                code_sum: &columns.code_sum,
                column_scale: &columns.scale,
                column_radius: &column_radius,
            };
            let run = |kernel: Kernel| {
                let mut bounds = vec![0f32; n * columns.width];
                // SAFETY: only kernels this CPU supports are passed; lengths as documented.
                unsafe { kernel(&picked, &columns.data, codes.dim, columns.width, &scales, &mut bounds) };
                bounds.iter().map(|b| b.to_bits()).collect::<Vec<_>>()
            };
            let plain = run(dots_plain);
            // The chosen kernel, through `bounds` and directly, and the AVX2 body.
            prop_assert_eq!(&out.iter().map(|b| b.to_bits()).collect::<Vec<_>>(), &plain);
            prop_assert_eq!(&run(KERNEL.dots), &plain);
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2") {
                prop_assert_eq!(&run(simd::dots_avx2), &plain);
            }
            for row in f.rows() {
                let row = row.as_slice().unwrap();
                let quantised = |body: Quantiser| {
                    let mut codes = vec![0u8; codes.dim];
                    // SAFETY: only bodies this CPU supports are passed.
                    let summary = unsafe { body(row, &mut codes) };
                    (codes, summary.0.to_bits(), summary.1.to_bits(), summary.2.to_bits())
                };
                prop_assert_eq!(quantised(KERNEL.quantise), quantised(quantise_plain));
            }
        }
    }

    #[test]
    fn radii_are_small_on_spread_unit_rows() {
        let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(5);
        let f: Array2<f32> = crate::testing::unit_rows(200, 384, &mut rng, None);
        let codes = Codes::new(f.view());
        let ids: Vec<usize> = (0..200).collect();
        let (rows, columns) = codes.radii(&ids, &codes.columns(&ids));
        // Rounding to 255 levels leaves |δ| near 0.1 / 127 · √(384 / 12) for such rows.
        let largest = rows.iter().chain(&columns).fold(0.0f32, |a, &b| a.max(b));
        assert!(rows.iter().chain(&columns).all(|&r| r > 0.0) && largest < 0.02, "{largest}");
    }
}
