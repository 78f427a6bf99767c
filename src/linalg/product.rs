//! The float32 product `rows · colsᵀ` used as a filter, with every entry a
//! plain chain of fused multiply-adds over the dimension in order
//! (`acc = fma(a_k, b_k, acc)`, from zero). Vectorising across columns, not
//! along the dimension, keeps that chain intact on every kernel, so the
//! AVX-512, AVX2 and portable bodies give the same bits and anything counted
//! from the filter does not depend on the CPU.

use ndarray::{ArrayView2, ArrayViewMut2};

/// Columns are padded to a multiple of this many (one AVX-512 register).
const WIDTH: usize = 16;
/// Columns per panel: the widest block a kernel computes.
const PANEL: usize = 64;
/// The dimension is taken in stretches of this many, so the stretch of the
/// packed columns a block reads (64 columns × 64 × 4 bytes, 16 KB) stays
/// in L1 beside the rows: at 128 it filled a 32 KB L1 on its own.
const DEPTH: usize = 64;

/// The columns of a product, transposed and padded to a multiple of the
/// register width (16 floats) so a kernel loads them whole, in panels of 64
/// columns, each panel contiguous (entry `(k, c)` where `panel_index` says). With
/// one panel as wide as all the columns, a block's stretch would sit at a
/// stride of a few kilobytes, where it maps onto a few L1 sets and evicts
/// itself.
pub struct Packed {
    data: Vec<f32>,
    dim: usize,
    cols: usize,
    width: usize,
}

impl Packed {
    /// Packs the rows of `cols` (each a column of the product).
    pub fn new(cols: ArrayView2<f32>) -> Self {
        let (count, dim) = cols.dim();
        let width = count.div_ceil(WIDTH) * WIDTH;
        let mut data = vec![0.0f32; dim * width];
        // Panel by panel, along the dimension: each write follows the last,
        // and the panel's source lines stay in L1 for sixteen steps.
        let cols = cols.as_standard_layout();
        let source = cols.as_slice().expect("standard layout");
        for start in (0..count).step_by(PANEL) {
            let rows = &source[start * dim..(start + PANEL).min(count) * dim];
            let (at, stride) = column_start(start, dim, width);
            for (k, line) in data[at..at + dim * stride].chunks_exact_mut(stride).enumerate() {
                for (slot, row) in line.iter_mut().zip(rows.chunks_exact(dim)) {
                    *slot = row[k];
                }
            }
        }
        Packed { data, dim, cols: count, width }
    }

    /// How many columns.
    pub fn len(&self) -> usize {
        self.cols
    }

    /// Whether there are no columns.
    pub fn is_empty(&self) -> bool {
        self.cols == 0
    }

    /// The row stride of [`Packed::product_padded`]'s output: the column
    /// count rounded up to the register width.
    pub fn stride(&self) -> usize {
        self.width
    }

    /// `rows · colsᵀ`, single-threaded, into `wide`, resized to rows ×
    /// [`Packed::stride`]: row `r`'s scores are `wide[r * stride..][..len]`,
    /// and the padding holds zeros. Reusing `wide` across calls saves an
    /// allocation per tile.
    pub fn product_padded(&self, rows: ArrayView2<f32>, wide: &mut Vec<f32>) {
        assert_eq!(rows.ncols(), self.dim, "rows and columns differ in length");
        // The kernels write every entry: what is reused needs no clearing.
        wide.resize(rows.nrows() * self.width, 0.0);
        // The kernels count rows as `out.len() / width`: no columns, nothing to do.
        if self.is_empty() {
            return;
        }
        let rows = rows.as_standard_layout();
        let a = rows.as_slice().expect("standard layout");
        // SAFETY: the kernel was chosen for this CPU's features; `a` holds
        // `nrows * dim` floats, `data` `dim * width`, `wide` `nrows * width`,
        // and `width` is a multiple of WIDTH.
        unsafe { (KERNEL.0)(a, &self.data, self.dim, self.width, wide) };
    }

    /// `rows · colsᵀ` into `out` (rows × [`Packed::len`]), single-threaded,
    /// through [`Packed::product_padded`] and `wide`, a buffer to reuse.
    pub fn product_into(&self, rows: ArrayView2<f32>, wide: &mut Vec<f32>, out: &mut ArrayViewMut2<f32>) {
        assert_eq!(out.dim(), (rows.nrows(), self.cols), "the output is rows by columns");
        self.product_padded(rows, wide);
        if self.is_empty() {
            return;
        }
        for (padded, mut row) in wide.chunks_exact(self.width).zip(out.rows_mut()) {
            row.assign(&ndarray::ArrayView1::from(&padded[..self.cols]));
        }
    }
}

/// Where entry `(k, c)` of packed columns sits: in the panel of column `c`
/// (64 columns, the last one narrower), row `k` of that panel.
fn panel_index(k: usize, c: usize, dim: usize, width: usize) -> usize {
    let (at, stride) = column_start(c, dim, width);
    at + k * stride
}

/// Where column `c` starts in packed columns (its entry for `k = 0`), and
/// the stride from one `k` to the next: its panel's width.
fn column_start(c: usize, dim: usize, width: usize) -> (usize, usize) {
    let start = c - c % PANEL;
    (start * dim + c % PANEL, (width - start).min(PANEL))
}

type Kernel = unsafe fn(&[f32], &[f32], usize, usize, &mut [f32]);

/// The body for this CPU, chosen once; the name says which.
struct Chosen(Kernel, &'static str);

static KERNEL: std::sync::LazyLock<Chosen> = std::sync::LazyLock::new(|| {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return Chosen(simd::product_avx512, "avx512");
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            return Chosen(simd::product_avx2, "avx2+fma");
        }
    }
    Chosen(product_plain, "portable")
});

/// Which body [`Packed::product_padded`] runs on this CPU.
pub fn kernel_name() -> &'static str {
    KERNEL.1
}

/// The portable body: the fused chain spelled out with `mul_add`.
///
/// # Safety
/// None beyond the slice lengths, which are checked.
unsafe fn product_plain(a: &[f32], panel: &[f32], dim: usize, width: usize, out: &mut [f32]) {
    let rows = out.len() / width;
    assert!(a.len() >= rows * dim && panel.len() >= dim * width);
    for r in 0..rows {
        let row = &a[r * dim..(r + 1) * dim];
        for c in 0..width {
            let mut acc = 0.0f32;
            for (k, &x) in row.iter().enumerate() {
                acc = x.mul_add(panel[panel_index(k, c, dim, width)], acc);
            }
            out[r * width + c] = acc;
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod simd {
    use std::arch::x86_64::*;

    /// The product with 512-bit registers: blocks of 4 rows by 64 columns
    /// (16 accumulators), then narrower blocks at the edges.
    ///
    /// # Safety
    /// The CPU must support AVX-512F; `a` must hold `rows * dim` floats,
    /// `panel` `dim * width`, `out` `rows * width` with `rows = out.len() /
    /// width`, and `width` must be a multiple of 16.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn product_avx512(a: &[f32], panel: &[f32], dim: usize, width: usize, out: &mut [f32]) {
        let rows = out.len() / width;
        assert!(a.len() >= rows * dim && panel.len() >= dim * width && width.is_multiple_of(16));
        for c in (0..width).step_by(super::PANEL) {
            let lanes = (width - c).min(super::PANEL) / 16;
            for ks in (0..dim).step_by(super::DEPTH) {
                let ks = ks..(ks + super::DEPTH).min(dim);
                for r in (0..rows).step_by(4) {
                    let take = (rows - r).min(4);
                    let at = Block { dim, width, r, c, ks: ks.clone() };
                    // SAFETY: rows r..r+take and columns c..c+16*lanes are in bounds (asserted above).
                    unsafe {
                        match (take, lanes) {
                            (4, 4) => block512::<4, 4>(a, panel, out, at),
                            (4, 3) => block512::<4, 3>(a, panel, out, at),
                            (4, 2) => block512::<4, 2>(a, panel, out, at),
                            (4, _) => block512::<4, 1>(a, panel, out, at),
                            (3, 4) => block512::<3, 4>(a, panel, out, at),
                            (3, 3) => block512::<3, 3>(a, panel, out, at),
                            (3, 2) => block512::<3, 2>(a, panel, out, at),
                            (3, _) => block512::<3, 1>(a, panel, out, at),
                            (2, 4) => block512::<2, 4>(a, panel, out, at),
                            (2, 3) => block512::<2, 3>(a, panel, out, at),
                            (2, 2) => block512::<2, 2>(a, panel, out, at),
                            (2, _) => block512::<2, 1>(a, panel, out, at),
                            (_, 4) => block512::<1, 4>(a, panel, out, at),
                            (_, 3) => block512::<1, 3>(a, panel, out, at),
                            (_, 2) => block512::<1, 2>(a, panel, out, at),
                            _ => block512::<1, 1>(a, panel, out, at),
                        }
                    }
                }
            }
        }
    }

    /// Where a block sits: rows from `r`, columns from `c`, and the stretch
    /// `ks` of the dimension it adds (continuing the chains in `out` after
    /// the first stretch).
    struct Block {
        dim: usize,
        width: usize,
        r: usize,
        c: usize,
        ks: std::ops::Range<usize>,
    }

    /// Rows `r..r + R` by columns `c..c + 16 V`.
    ///
    /// # Safety
    /// AVX-512F, and that block in bounds of `a`, `panel` and `out`.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn block512<const R: usize, const V: usize>(a: &[f32], panel: &[f32], out: &mut [f32], at: Block) {
        let Block { dim, width, r, c, ks } = at;
        let o = out.as_mut_ptr();
        // The chains start at zero, or go on from the last stretch's sums.
        let mut acc: [[__m512; V]; R] = std::array::from_fn(|i| {
            std::array::from_fn(|v| {
                if ks.start == 0 {
                    _mm512_setzero_ps()
                } else {
                    // SAFETY: the block is in bounds of `out` (the caller's promise).
                    unsafe { _mm512_loadu_ps(o.add((r + i) * width + c + 16 * v)) }
                }
            })
        });
        let (at, stride) = super::column_start(c, dim, width);
        // SAFETY: column c's panel is in bounds of `panel` (the caller's promise).
        let (a, p) = (a.as_ptr(), unsafe { panel.as_ptr().add(at) });
        for k in ks {
            // SAFETY: k < dim and the block is in bounds (the caller's promise).
            unsafe {
                let b: [__m512; V] = std::array::from_fn(|v| _mm512_loadu_ps(p.add(k * stride + 16 * v)));
                for (i, acc_row) in acc.iter_mut().enumerate() {
                    let x = _mm512_set1_ps(*a.add((r + i) * dim + k));
                    for (v, acc) in acc_row.iter_mut().enumerate() {
                        *acc = _mm512_fmadd_ps(x, b[v], *acc);
                    }
                }
            }
        }
        for (i, acc_row) in acc.iter().enumerate() {
            for (v, acc) in acc_row.iter().enumerate() {
                // SAFETY: as above.
                unsafe { _mm512_storeu_ps(o.add((r + i) * width + c + 16 * v), *acc) };
            }
        }
    }

    /// The product with 256-bit registers: blocks of 4 rows by 16 columns
    /// (8 accumulators).
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA; the slices as for [`product_avx512`].
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn product_avx2(a: &[f32], panel: &[f32], dim: usize, width: usize, out: &mut [f32]) {
        let rows = out.len() / width;
        assert!(a.len() >= rows * dim && panel.len() >= dim * width && width.is_multiple_of(16));
        for ks in (0..dim).step_by(super::DEPTH) {
            let ks = ks..(ks + super::DEPTH).min(dim);
            for c in (0..width).step_by(16) {
                for r in (0..rows).step_by(4) {
                    let at = Block { dim, width, r, c, ks: ks.clone() };
                    // SAFETY: rows r..r+4 (or to the end) and columns c..c+16 are in bounds (asserted above).
                    unsafe {
                        match rows - r {
                            1 => block256::<1>(a, panel, out, at),
                            2 => block256::<2>(a, panel, out, at),
                            3 => block256::<3>(a, panel, out, at),
                            _ => block256::<4>(a, panel, out, at),
                        }
                    }
                }
            }
        }
    }

    /// Rows `r..r + R` by columns `c..c + 16`.
    ///
    /// # Safety
    /// AVX2 and FMA, and that block in bounds of `a`, `panel` and `out`.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn block256<const R: usize>(a: &[f32], panel: &[f32], out: &mut [f32], at: Block) {
        let Block { dim, width, r, c, ks } = at;
        let o = out.as_mut_ptr();
        // The chains start at zero, or go on from the last stretch's sums.
        let mut acc: [[__m256; 2]; R] = std::array::from_fn(|i| {
            std::array::from_fn(|v| {
                if ks.start == 0 {
                    _mm256_setzero_ps()
                } else {
                    // SAFETY: the block is in bounds of `out` (the caller's promise).
                    unsafe { _mm256_loadu_ps(o.add((r + i) * width + c + 8 * v)) }
                }
            })
        });
        let (at, stride) = super::column_start(c, dim, width);
        // SAFETY: column c's panel is in bounds of `panel` (the caller's promise).
        let (a, p) = (a.as_ptr(), unsafe { panel.as_ptr().add(at) });
        for k in ks {
            // SAFETY: k < dim and the block is in bounds (the caller's promise).
            unsafe {
                let b = [_mm256_loadu_ps(p.add(k * stride)), _mm256_loadu_ps(p.add(k * stride + 8))];
                for (i, acc_row) in acc.iter_mut().enumerate() {
                    let x = _mm256_set1_ps(*a.add((r + i) * dim + k));
                    acc_row[0] = _mm256_fmadd_ps(x, b[0], acc_row[0]);
                    acc_row[1] = _mm256_fmadd_ps(x, b[1], acc_row[1]);
                }
            }
        }
        for (i, acc_row) in acc.iter().enumerate() {
            for (v, acc) in acc_row.iter().enumerate() {
                // SAFETY: as above.
                unsafe { _mm256_storeu_ps(o.add((r + i) * width + c + 8 * v), *acc) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;
    use rand::{RngExt, SeedableRng};

    fn random(rows: usize, dim: usize, seed: u64) -> Array2<f32> {
        let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(seed);
        Array2::from_shape_fn((rows, dim), |_| rng.random_range(-1.0f32..1.0))
    }

    #[test]
    fn no_columns_or_no_rows_is_an_empty_product() {
        let none = Packed::new(random(0, 7, 3).view());
        let mut out = vec![1.0];
        none.product_padded(random(5, 7, 4).view(), &mut out);
        assert!(out.is_empty());
        let some = Packed::new(random(3, 7, 5).view());
        some.product_padded(random(0, 7, 6).view(), &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn product_into_holds_the_padded_product_without_its_padding() {
        for (rows, cols, dim) in [(5, 3, 7), (9, 70, 384), (4, 64, 33), (2, 0, 4), (0, 5, 3)] {
            let (a, b) = (random(rows, dim, 7), random(cols, dim, 8));
            let packed = Packed::new(b.view());
            let mut padded = Vec::new();
            packed.product_padded(a.view(), &mut padded);
            let mut out = Array2::from_elem((rows, cols), f32::NAN);
            packed.product_into(a.view(), &mut vec![9.0; 3], &mut out.view_mut());
            for ((r, c), &x) in out.indexed_iter() {
                assert_eq!(x.to_bits(), padded[r * packed.stride() + c].to_bits(), "{rows}x{cols}x{dim} at {r},{c}");
            }
        }
    }

    #[test]
    fn every_kernel_gives_the_portable_bits() {
        for (rows, cols, dim) in
            [(1, 1, 1), (5, 3, 7), (9, 70, 384), (4, 64, 33), (13, 17, 100), (0, 5, 3), (6, 200, 40), (3, 513, 5)]
        {
            let (a, b) = (random(rows, dim, 1), random(cols, dim, 2));
            let packed = Packed::new(b.view());
            let mut chosen = vec![1.0; 3];
            packed.product_padded(a.view(), &mut chosen);
            assert_eq!(chosen.len(), rows * packed.stride());
            let run = |kernel: Kernel| {
                let mut out = vec![0.0; rows * packed.width];
                // SAFETY: only kernels this CPU supports are passed; lengths as documented.
                unsafe { kernel(a.as_slice().unwrap(), &packed.data, dim, packed.width, &mut out) };
                out
            };
            let plain = run(product_plain);
            let mut kernels = vec![run(KERNEL.0)];
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                kernels.push(run(simd::product_avx2));
            }
            for r in 0..rows {
                for c in 0..cols {
                    let at = r * packed.width + c;
                    assert_eq!(chosen[at].to_bits(), plain[at].to_bits(), "{rows}x{cols}x{dim} at {r},{c}");
                    assert!(kernels.iter().all(|k| k[at].to_bits() == plain[at].to_bits()));
                    let exact: f64 = (0..dim).map(|k| f64::from(a[[r, k]]) * f64::from(b[[c, k]])).sum();
                    assert!((f64::from(chosen[at]) - exact).abs() < 1e-5 * dim as f64);
                }
            }
        }
    }
}
