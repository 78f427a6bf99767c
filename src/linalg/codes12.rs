//! A 12-bit product for filters that need float32's precision: upper
//! bounds on similarities from codes in 16-bit lanes, at half the float32
//! product's multiply cost where AVX-512 VNNI adds two 16-bit products per
//! 32-bit lane in one instruction.
//!
//! Each row `f` is coded as `f = s q + δ`, with `s = max|f| / L` and `q` the
//! nearest integers (so `|q| ≤ L`). Then
//! `f_a · f_b = s_a s_b (q_a · q_b) + s_a q_a · δ_b + δ_a · s_b q_b + δ_a · δ_b`,
//! and with `n = |s q|` and `ρ = |δ|` (both rounded up),
//! `f_a · f_b ≤ s_a s_b (q_a · q_b) + n_a ρ_b + ρ_a (n_b + ρ_b)`.
//! `L` is 2,047 (12 bits), or less where `L² · dim` would not fit a 32-bit
//! sum, so the integer dot products are exact and every kernel gives the
//! same bits. On unit rows the bound lies about `ρ_a + ρ_b` above the
//! similarity.

use ndarray::ArrayView2;

/// Columns per panel of the product: four AVX-512 registers of 32-bit sums.
pub const PANEL: usize = 64;
/// Rows per block of the AVX-512 body (16 accumulators).
const BLOCK_ROWS: usize = 4;

/// The largest code for rows of `dim` values: 2,047, or less where the
/// dot product of two rows of codes could leave 32 bits.
fn levels(dim: usize) -> f32 {
    let fits = ((i32::MAX as f64) / dim.max(1) as f64).sqrt().floor();
    fits.min(2047.0) as f32
}

/// Every row's scale and the norms of its coded part and of its residual:
/// what the bounds need besides the codes, computed once, so the codes
/// themselves can be made again whenever a product needs them (they take
/// half the features' bytes).
pub struct Scales {
    scale: Vec<f32>,
    /// `|s q|`, rounded up.
    norm: Vec<f64>,
    /// `|δ|`, rounded up.
    radius: Vec<f64>,
    /// The largest `|s q|` and `|δ|` over the rows.
    widest: (f64, f64),
    dim: usize,
}

impl Scales {
    /// The scales of every row of `features`, in parallel.
    pub fn new(features: ArrayView2<f32>) -> Self {
        use rayon::prelude::*;
        let (dim, levels) = (features.ncols(), levels(features.ncols()));
        let rows: Vec<(f32, f64, f64)> = (0..features.nrows())
            .into_par_iter()
            .map_init(|| vec![0i16; dim], |codes, i| measure(super::row(features, i), levels, codes))
            .collect();
        let norm: Vec<f64> = rows.iter().map(|r| r.1).collect();
        let radius: Vec<f64> = rows.iter().map(|r| r.2).collect();
        let widest = widest(&norm, &radius);
        Scales { scale: rows.iter().map(|r| r.0).collect(), norm, radius, widest, dim }
    }

    /// How far below its bound from [`Panel::upper32`] the similarity of
    /// row `i` to any of the rows may lie.
    pub fn spread(&self, i: usize) -> f64 {
        spread(self.norm[i], self.radius[i], self.widest) + ROUNDED
    }
}

/// The largest of `norm` and the largest of `radius`.
fn widest(norm: &[f64], radius: &[f64]) -> (f64, f64) {
    let largest = |v: &[f64]| v.iter().fold(0.0f64, |m, &x| m.max(x));
    (largest(norm), largest(radius))
}

/// The bound of the module's formula on the similarity of a row (scale
/// `s`, norm `n`, radius `rho`) to a column (`scale`, `radius`, and `plus`
/// its norm plus radius) whose codes' dot product is `dot`. The scales'
/// product is exact (two 24-bit mantissas); the margin covers the
/// rounding of the rest.
#[inline(always)]
fn bound((s, n, rho): (f64, f64, f64), scale: f64, radius: f64, plus: f64, dot: i32) -> f64 {
    s * scale * f64::from(dot) + n * radius + rho * plus + 1e-12
}

/// How far below the bound on a row's similarity (norm `n`, radius `rho`)
/// to a column the similarity may lie, for columns whose largest norm and
/// radius are `widest`: the bound's own terms, twice, and its margin.
fn spread(n: f64, rho: f64, (norm, radius): (f64, f64)) -> f64 {
    2.0 * (n * radius + rho * (norm + radius)) + 1e-12
}

/// How far above a bound from [`Panel::upper`] its float32 copy from
/// [`Panel::upper32`] may lie: raised by 2.5e-7, then rounded to nearest,
/// which moves bounds below 4 (those of unit rows) by at most 2.4e-7.
pub const ROUNDED: f64 = 5e-7;

/// Row `x`'s scale, and the norms of its coded part and residual, rounded
/// up (its codes are left in `codes`).
fn measure(x: &[f32], levels: f32, codes: &mut [i16]) -> (f32, f64, f64) {
    let scale = scale_of(x, levels);
    // SAFETY: the body was chosen for this CPU.
    unsafe { (KERNEL.quantise)(x, scale, codes) };
    // Eight running sums, so the additions need not wait on each other.
    let (mut codes2, mut residual2) = ([0i64; 8], [0.0f64; 8]);
    let mut add = |lane: usize, v: f32, q: i16| {
        codes2[lane] += i64::from(q) * i64::from(q);
        // Exact: a 24-bit scale times an 11-bit code fits a float64.
        let r = f64::from(v) - f64::from(scale) * f64::from(q);
        residual2[lane] += r * r;
    };
    let (xs, qs) = (x.chunks_exact(8), codes[..x.len()].chunks_exact(8));
    let tail = xs.remainder().iter().zip(qs.remainder()).enumerate();
    for (xs, qs) in xs.zip(qs) {
        for lane in 0..8 {
            add(lane, xs[lane], qs[lane]);
        }
    }
    for (lane, (&v, &q)) in tail {
        add(lane, v, q);
    }
    // Each norm's relative rounding error is under (dim + 3) * 2^-53: the
    // sums', the square root's and the multiplies'.
    let up = 1.0 + (x.len() as f64 + 2.0) * f64::EPSILON;
    let norm = f64::from(scale) * (codes2.iter().sum::<i64>() as f64).sqrt() * up;
    (scale, norm, residual2.iter().sum::<f64>().sqrt() * up + f64::MIN_POSITIVE)
}

/// The scale of row `x`: its largest magnitude over `levels` (1 for a zero
/// row, whose codes are then zero).
fn scale_of(x: &[f32], levels: f32) -> f32 {
    let largest = x.iter().fold(0.0f32, |m, &v| m.max(v.abs()));
    if largest > 0.0 { largest / levels } else { 1.0 }
}

/// The portable body of the codes of row `x` at `scale`: `x / scale` as
/// one float32 multiply by the reciprocal, rounded to the nearest integer
/// (ties to even). A row's own scale keeps its codes within its levels;
/// the clamp only keeps the conversion in range.
fn quantise_plain(x: &[f32], scale: f32, codes: &mut [i16]) {
    let inv = 1.0 / scale;
    for (c, &v) in codes.iter_mut().zip(x) {
        *c = (v * inv).round_ties_even().clamp(-2047.0, 2047.0) as i16;
    }
}

/// A block of coded rows, padded to whole kernel blocks with zero codes.
#[derive(Default)]
pub struct Block {
    codes: Vec<i16>,
    /// Per row: scale, norm and radius, as in [`Scales`].
    scale: Vec<f64>,
    norm: Vec<f64>,
    radius: Vec<f64>,
    /// The dimension rounded up to pairs.
    width: usize,
}

impl Block {
    /// Codes the rows `ids` of `features`, whose scales are `scales`.
    pub fn fill(&mut self, features: ArrayView2<f32>, ids: &[usize], scales: &Scales) {
        let width = self.start(scales.dim, ids.len());
        for (r, &i) in ids.iter().enumerate() {
            let codes = &mut self.codes[r * width..r * width + scales.dim];
            // SAFETY: the body was chosen for this CPU.
            unsafe { (KERNEL.quantise)(super::row(features, i), scales.scale[i], codes) };
        }
        self.scale = ids.iter().map(|&i| f64::from(scales.scale[i])).collect();
        self.norm = ids.iter().map(|&i| scales.norm[i]).collect();
        self.radius = ids.iter().map(|&i| scales.radius[i]).collect();
    }

    /// Codes every row of `rows`, measuring each as [`Scales::new`] does.
    pub fn code(&mut self, rows: ArrayView2<f32>) {
        let (dim, levels) = (rows.ncols(), levels(rows.ncols()));
        let width = self.start(dim, rows.nrows());
        self.scale.clear();
        self.norm.clear();
        self.radius.clear();
        for r in 0..rows.nrows() {
            let codes = &mut self.codes[r * width..r * width + dim];
            let (scale, norm, radius) = measure(super::row(rows, r), levels, codes);
            self.scale.push(f64::from(scale));
            self.norm.push(norm);
            self.radius.push(radius);
        }
    }

    /// Zero codes for `rows` rows of `dim` values, padded to whole kernel
    /// blocks and to pairs of dimensions; returns the padded width.
    fn start(&mut self, dim: usize, rows: usize) -> usize {
        self.width = dim.div_ceil(2) * 2;
        self.codes.clear();
        self.codes.resize(rows.div_ceil(BLOCK_ROWS) * BLOCK_ROWS * self.width, 0);
        self.width
    }

    /// The largest norm of a row's coded part and the largest radius.
    pub fn widest(&self) -> (f64, f64) {
        widest(&self.norm, &self.radius)
    }

    /// How far below its bound from [`Panel::upper32`] the similarity of
    /// row `r` to a column may lie, for columns of the widest norm and
    /// radius `widest` (see [`Block::widest`]).
    pub fn spread(&self, r: usize, widest: (f64, f64)) -> f64 {
        spread(self.norm[r], self.radius[r], widest) + ROUNDED
    }

    /// Row `r`'s scale, norm and radius: its terms in [`bound`].
    fn terms(&self, r: usize) -> (f64, f64, f64) {
        (self.scale[r], self.norm[r], self.radius[r])
    }

    /// How many rows it holds.
    pub fn len(&self) -> usize {
        self.scale.len()
    }
}

/// Up to [`PANEL`] coded rows as the columns of a product: for each pair
/// of dimensions, each column's two codes in turn.
pub struct Panel {
    codes: Vec<i16>,
    scale: Vec<f64>,
    radius: Vec<f64>,
    /// `n + ρ` per column (see the module's bound).
    norm_and_radius: Vec<f64>,
}

impl Panel {
    /// The rows of `block` (at most [`PANEL`]) as columns.
    pub fn new(block: &Block) -> Self {
        assert!(block.len() <= PANEL, "a panel holds at most {PANEL} columns");
        let pairs = block.width / 2;
        let mut codes = vec![0i16; pairs * PANEL * 2];
        for c in 0..block.len() {
            let row = &block.codes[c * block.width..(c + 1) * block.width];
            for (k, pair) in row.chunks_exact(2).enumerate() {
                codes[(k * PANEL + c) * 2..(k * PANEL + c) * 2 + 2].copy_from_slice(pair);
            }
        }
        let norm_and_radius = block.norm.iter().zip(&block.radius).map(|(n, r)| n + r).collect();
        Panel { codes, scale: block.scale.clone(), radius: block.radius.clone(), norm_and_radius }
    }

    /// The integer dot products of `block`'s rows with the columns, into
    /// `dots` (resized; row `r`'s start at `r * PANEL`).
    pub fn dots(&self, block: &Block, dots: &mut Vec<i32>) {
        assert_eq!(block.width * PANEL, self.codes.len(), "the block and the panel have the same dimension");
        dots.resize(block.codes.len() / block.width.max(1) * PANEL, 0);
        if block.width == 0 {
            dots.fill(0);
            return;
        }
        // SAFETY: the body was chosen for this CPU; the block holds whole
        // kernel blocks of `width` codes, the panel `width / 2` lines of
        // PANEL pairs, and `dots` a row of PANEL sums per row of the block.
        unsafe { (KERNEL.dots)(&block.codes, &self.codes, block.width, dots) };
    }

    /// Upper bounds on the similarities of row `r` of `block` to the
    /// columns, from its dot products `dots` (a row of [`Panel::dots`]).
    #[inline(always)]
    pub fn upper(&self, block: &Block, r: usize, dots: &[i32], out: &mut [f64]) {
        let row = block.terms(r);
        let columns = self.scale.iter().zip(&self.radius).zip(&self.norm_and_radius);
        for ((out, &dot), ((&scale, &radius), &plus)) in out.iter_mut().zip(dots).zip(columns) {
            *out = bound(row, scale, radius, plus, dot);
        }
    }

    /// For each column `c` of `sums` (at most the panel's): adds how far
    /// the bound [`Panel::upper`] gives on row `r`'s similarity to it lies
    /// above `floor`, when it does.
    pub fn add_above(&self, block: &Block, r: usize, dots: &[i32], floor: f64, sums: &mut [f64]) {
        let row = block.terms(r);
        // SAFETY: the body was chosen for this CPU; it checks the lengths.
        unsafe { (KERNEL.above)(self, row, dots, floor, sums) }
    }

    /// [`Panel::upper`] as float32 values, each at or above its float64
    /// bound and at most [`ROUNDED`] above it.
    pub fn upper32(&self, block: &Block, r: usize, dots: &[i32], out: &mut [f32]) {
        // SAFETY: the body was chosen for this CPU.
        unsafe { (KERNEL.upper32)(self, block, r, dots, out) }
    }

    /// [`Panel::upper32`] for every row of `block`, row `r`'s [`PANEL`]
    /// bounds at `out[r * stride..]`, through the dot products in `dots`
    /// (resized).
    pub fn upper32_rows(&self, block: &Block, dots: &mut Vec<i32>, out: &mut [f32], stride: usize) {
        self.dots(block, dots);
        for (r, out) in out.chunks_mut(stride).take(block.len()).enumerate() {
            self.upper32(block, r, &dots[r * PANEL..], &mut out[..PANEL]);
        }
    }
}

type QuantiseBody = unsafe fn(&[f32], f32, &mut [i16]);
type DotsBody = unsafe fn(&[i16], &[i16], usize, &mut [i32]);
type AboveBody = unsafe fn(&Panel, (f64, f64, f64), &[i32], f64, &mut [f64]);
type Upper32Body = unsafe fn(&Panel, &Block, usize, &[i32], &mut [f32]);

/// The bodies chosen for this CPU, once.
struct Chosen {
    quantise: QuantiseBody,
    dots: DotsBody,
    above: AboveBody,
    upper32: Upper32Body,
    name: &'static str,
}

static KERNEL: std::sync::LazyLock<Chosen> = std::sync::LazyLock::new(|| {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512bw")
            && std::is_x86_feature_detected!("avx512vnni")
        {
            return Chosen {
                quantise: simd::quantise_avx512,
                dots: simd::dots_vnni,
                above: simd::above_avx512,
                upper32: simd::upper32_avx512,
                name: "avx512vnni",
            };
        }
    }
    Chosen {
        quantise: quantise_body_plain,
        dots: dots_plain,
        above: above_plain,
        upper32: upper32_plain,
        name: "portable",
    }
});

/// Whether this CPU has the 16-bit multiply-add that makes the codes
/// cheaper than the float32 product (AVX-512 VNNI); elsewhere the portable
/// body is far slower, and callers keep to float32 (unless
/// [`take_everywhere`]).
pub fn codes_are_fast() -> bool {
    KERNEL.name == "avx512vnni" || EVERYWHERE.load(std::sync::atomic::Ordering::Relaxed)
}

/// Set: the paths that take the codes where they are fast take them on
/// every CPU.
static EVERYWHERE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Makes the paths that take the codes where they are fast take them on
/// every CPU (`on`), or only where they are fast again. For the regression
/// check: the portable bodies give the same bits as the fast ones, so the
/// work counters of those paths are then the same on every CPU, only
/// slower to reach without VNNI.
pub fn take_everywhere(on: bool) {
    EVERYWHERE.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// The portable body of [`Panel::add_above`]: each column's bound as
/// [`Panel::upper`] computes it, less `floor`, added where positive.
///
/// # Safety
/// None beyond the slice lengths, which are checked.
#[inline(always)]
unsafe fn above_plain(panel: &Panel, row: (f64, f64, f64), dots: &[i32], floor: f64, sums: &mut [f64]) {
    let columns = sums.len();
    let (scale, radius, plus) = (&panel.scale[..columns], &panel.radius[..columns], &panel.norm_and_radius[..columns]);
    let dots = &dots[..columns];
    for c in 0..columns {
        let excess = bound(row, scale[c], radius[c], plus[c], dots[c]) - floor;
        sums[c] += if excess > 0.0 { excess } else { 0.0 };
    }
}

/// The portable body of [`Panel::upper32`].
///
/// # Safety
/// None: safe code behind the common signature.
#[inline(always)]
unsafe fn upper32_plain(panel: &Panel, block: &Block, r: usize, dots: &[i32], out: &mut [f32]) {
    let mut bounds = [0.0f64; PANEL];
    let bounds = &mut bounds[..out.len()];
    panel.upper(block, r, dots, bounds);
    for (o, &b) in out.iter_mut().zip(bounds.iter()) {
        *o = (b + ROUNDED / 2.0) as f32;
    }
}

/// [`quantise_plain`] as a kernel body.
///
/// # Safety
/// None: safe code behind the common signature.
unsafe fn quantise_body_plain(x: &[f32], scale: f32, codes: &mut [i16]) {
    quantise_plain(x, scale, codes)
}

/// The portable body of [`Panel::dots`].
///
/// # Safety
/// None beyond the slice lengths, which are checked.
unsafe fn dots_plain(block: &[i16], panel: &[i16], width: usize, dots: &mut [i32]) {
    let rows = block.len() / width;
    assert!(panel.len() >= width * PANEL && dots.len() >= rows * PANEL);
    for (row, dots) in block.chunks_exact(width).zip(dots.chunks_exact_mut(PANEL)) {
        dots.fill(0);
        for (pair, line) in row.chunks_exact(2).zip(panel.chunks_exact(2 * PANEL)) {
            for (dot, column) in dots.iter_mut().zip(line.chunks_exact(2)) {
                *dot += i32::from(pair[0]) * i32::from(column[0]) + i32::from(pair[1]) * i32::from(column[1]);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod simd {
    use super::{BLOCK_ROWS, Block, PANEL, Panel};
    use std::arch::x86_64::*;

    /// [`super::above_plain`] compiled for AVX-512 (the compiler
    /// vectorises it; each column's operations stay separate and in order,
    /// so the sums are the same bits).
    ///
    /// # Safety
    /// The CPU must support AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn above_avx512(panel: &Panel, row: (f64, f64, f64), dots: &[i32], floor: f64, sums: &mut [f64]) {
        // SAFETY: as the caller's.
        unsafe { super::above_plain(panel, row, dots, floor, sums) }
    }

    /// [`super::upper32_plain`] compiled for AVX-512 (vectorised by the
    /// compiler, each column's operations in the same order: same bits).
    ///
    /// # Safety
    /// The CPU must support AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn upper32_avx512(panel: &Panel, block: &Block, r: usize, dots: &[i32], out: &mut [f32]) {
        // SAFETY: as the caller's.
        unsafe { super::upper32_plain(panel, block, r, dots, out) }
    }

    /// [`super::quantise_plain`] with 512-bit registers: the same multiply
    /// by the reciprocal, rounded to nearest even by the conversion, so the
    /// same codes.
    ///
    /// # Safety
    /// The CPU must support AVX-512F and AVX-512BW.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub unsafe fn quantise_avx512(x: &[f32], scale: f32, codes: &mut [i16]) {
        let whole = x.len().min(codes.len()) / 16 * 16;
        let (inv, levels) = (_mm512_set1_ps(1.0 / scale), _mm512_set1_epi32(2047));
        for k in (0..whole).step_by(16) {
            // SAFETY: k + 16 <= whole, within both slices.
            unsafe {
                let v = _mm512_mul_ps(_mm512_loadu_ps(x.as_ptr().add(k)), inv);
                let q = _mm512_cvt_roundps_epi32::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(v);
                let q = _mm512_max_epi32(_mm512_min_epi32(q, levels), _mm512_sub_epi32(_mm512_setzero_si512(), levels));
                _mm256_storeu_si256(codes.as_mut_ptr().add(k) as *mut __m256i, _mm512_cvtepi32_epi16(q));
            }
        }
        super::quantise_plain(&x[whole..], scale, &mut codes[whole..]);
    }

    /// [`super::dots_plain`] with VNNI: blocks of 4 rows by the 64 columns,
    /// each instruction adding two 16-bit products per 32-bit lane.
    ///
    /// # Safety
    /// The CPU must support AVX-512F, AVX-512BW and AVX-512 VNNI; `block`
    /// must hold whole blocks of 4 rows of `width` codes (`width` even),
    /// `panel` `width / 2` lines of PANEL pairs, `dots` PANEL sums a row.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn dots_vnni(block: &[i16], panel: &[i16], width: usize, dots: &mut [i32]) {
        let rows = block.len() / width;
        assert!(rows.is_multiple_of(BLOCK_ROWS) && width.is_multiple_of(2));
        assert!(panel.len() >= width * PANEL && dots.len() >= rows * PANEL);
        let (a, p, o) = (block.as_ptr(), panel.as_ptr(), dots.as_mut_ptr());
        for r in (0..rows).step_by(BLOCK_ROWS) {
            let mut acc = [[_mm512_setzero_si512(); 4]; BLOCK_ROWS];
            for k in 0..width / 2 {
                // SAFETY: line k of the panel and pair k of rows r..r+4 are
                // in bounds (asserted above).
                unsafe {
                    let line = p.add(k * PANEL * 2) as *const __m512i;
                    let b: [__m512i; 4] = std::array::from_fn(|v| _mm512_loadu_si512(line.add(v)));
                    for (i, acc) in acc.iter_mut().enumerate() {
                        let pair = (a.add((r + i) * width + 2 * k) as *const i32).read_unaligned();
                        let x = _mm512_set1_epi32(pair);
                        for (acc, &b) in acc.iter_mut().zip(&b) {
                            *acc = _mm512_dpwssd_epi32(*acc, x, b);
                        }
                    }
                }
            }
            for (i, acc) in acc.iter().enumerate() {
                for (v, &acc) in acc.iter().enumerate() {
                    // SAFETY: row r + i's sums are in bounds (asserted above).
                    unsafe { _mm512_storeu_si512(o.add((r + i) * PANEL + 16 * v) as *mut __m512i, acc) };
                }
            }
        }
    }
}

/// One row as coded by the portable body, for tests that write a bound out.
#[cfg(test)]
pub struct Measured {
    pub scale: f64,
    pub codes: Vec<i16>,
    /// `|s q|`, rounded up.
    pub norm: f64,
    /// `|δ|`, rounded up.
    pub radius: f64,
}

#[cfg(test)]
impl Measured {
    pub fn new(x: &[f32]) -> Self {
        let mut codes = vec![0i16; x.len()];
        let levels = levels(x.len());
        let scale = scale_of(x, levels);
        let (_, norm, radius) = measure(x, levels, &mut codes);
        quantise_plain(x, scale, &mut codes);
        Measured { scale: f64::from(scale), codes, norm, radius }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;

    /// `n + cols` random unit rows of dimension `d` (with edge values),
    /// all coded as a block, the last `cols` as a panel, and their dots.
    fn coded_pair(n: usize, cols: usize, d: usize, seed: u64) -> (Block, Panel, Vec<i32>) {
        let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(seed);
        let f = crate::testing::unit_rows_with_edges(n + cols, d, &mut rng, None);
        let (mut block, mut columns) = (Block::default(), Block::default());
        block.code(f.view());
        columns.code(f.slice(ndarray::s![n.., ..]));
        let panel = Panel::new(&columns);
        let mut dots = Vec::new();
        panel.dots(&block, &mut dots);
        (block, panel, dots)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn upper_bounds_hold_and_are_close(
            n in 1usize..30, d in proptest::sample::select(vec![1usize, 2, 3, 15, 16, 17, 64, 383, 384, 600]),
            cols in 1usize..=PANEL, grid in proptest::option::of(1i32..3), seed in 0u64..1000,
        ) {
            let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(seed);
            let f = crate::testing::unit_rows_with_edges(n, d, &mut rng, grid);
            let scales = Scales::new(f.view());
            let ids: Vec<usize> = (0..n).collect();
            let columns: Vec<usize> = (0..cols).map(|c| (c * 7 + 3) % n).collect();
            let (mut block, mut coded_columns) = (Block::default(), Block::default());
            block.fill(f.view(), &ids, &scales);
            coded_columns.fill(f.view(), &columns, &scales);
            let panel = Panel::new(&coded_columns);
            let mut dots = Vec::new();
            panel.dots(&block, &mut dots);
            let mut upper = vec![0.0; cols];
            for (r, &i) in ids.iter().enumerate() {
                panel.upper(&block, r, &dots[r * PANEL..], &mut upper);
                for (&j, &u) in columns.iter().zip(&upper) {
                    let x = crate::linalg::dot64(f.row(i).as_slice().unwrap(), f.row(j).as_slice().unwrap());
                    // The bound's own terms, taken twice: the estimate is
                    // within them of the similarity on either side.
                    let slack = 2.0 * (scales.norm[i] * scales.radius[j] + scales.radius[i] * (scales.norm[j] + scales.radius[j]));
                    prop_assert!(u >= x, "rows {} and {}: bound {} below the similarity {}", i, j, u, x);
                    prop_assert!(u <= x + slack + 1e-11, "rows {} and {}: bound {} far above {}", i, j, u, x);
                }
            }
        }

        #[test]
        fn excesses_over_a_floor_are_the_upper_bounds_less_the_floor(
            n in 1usize..12, cols in 1usize..=PANEL, d in 1usize..70, floor in -1.5f64..1.5, seed in 0u64..1000,
        ) {
            let (block, panel, dots) = coded_pair(n, cols, d, seed);
            let (mut chosen, mut plain, mut written) = (vec![0.5; cols], vec![0.5; cols], vec![0.5; cols]);
            let mut upper = vec![0.0; cols];
            for r in 0..n + cols {
                let dots = &dots[r * PANEL..];
                panel.add_above(&block, r, dots, floor, &mut chosen);
                let row = block.terms(r);
                // SAFETY: `plain` has a sum per column of the panel.
                unsafe { above_plain(&panel, row, dots, floor, &mut plain) };
                panel.upper(&block, r, dots, &mut upper);
                for (w, &u) in written.iter_mut().zip(&upper) {
                    *w += (u - floor).max(0.0);
                }
            }
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            prop_assert_eq!(bits(&chosen), bits(&plain));
            prop_assert_eq!(bits(&chosen), bits(&written));
        }

        #[test]
        fn float32_bounds_are_the_portable_ones_and_round_up_by_at_most_rounded(
            n in 1usize..12, cols in 1usize..=PANEL, d in 1usize..70, seed in 0u64..1000,
        ) {
            let (block, panel, dots) = coded_pair(n, cols, d, seed);
            let (mut chosen, mut plain, mut upper) = (vec![0f32; cols], vec![0f32; cols], vec![0.0; cols]);
            for r in 0..n + cols {
                let dots = &dots[r * PANEL..];
                panel.upper32(&block, r, dots, &mut chosen);
                // SAFETY: safe code behind the body's signature.
                unsafe { upper32_plain(&panel, &block, r, dots, &mut plain) };
                panel.upper(&block, r, dots, &mut upper);
                prop_assert_eq!(&chosen, &plain);
                for (&c, &u) in chosen.iter().zip(&upper) {
                    prop_assert!(f64::from(c) >= u && f64::from(c) <= u + ROUNDED, "row {}: {} against {}", r, c, u);
                }
            }
        }

        #[test]
        fn every_body_gives_the_portable_codes_and_sums(
            rows in 1usize..10, pairs in 1usize..200, seed in 0u64..1000,
        ) {
            let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(seed);
            let width = 2 * pairs;
            // Values near the scale's extremes and near ties of the rounding.
            let x: Vec<f32> = (0..width).map(|k| match k % 4 {
                0 => rng.random_range(-1.0..1.0f32),
                1 => (rng.random_range(-8..8) as f32 + 0.5) / 2047.0,
                2 => if rng.random_bool(0.5) { 1.0 } else { -1.0 },
                _ => 0.0,
            }).collect();
            let scale = scale_of(&x, 2047.0);
            let mut plain = vec![0i16; width];
            quantise_plain(&x, scale, &mut plain);
            let mut chosen = vec![0i16; width];
            // SAFETY: the body was chosen for this CPU.
            unsafe { (KERNEL.quantise)(&x, scale, &mut chosen) };
            prop_assert_eq!(&plain, &chosen);

            let padded = rows.div_ceil(BLOCK_ROWS) * BLOCK_ROWS;
            let code = |rng: &mut rand::rngs::Xoshiro256PlusPlus| match rng.random_range(0..4) {
                0 => 2047,
                1 => -2047,
                _ => rng.random_range(-2047..=2047i16),
            };
            let block: Vec<i16> = (0..padded * width).map(|_| code(&mut rng)).collect();
            let panel: Vec<i16> = (0..width * PANEL).map(|_| code(&mut rng)).collect();
            let (mut plain, mut chosen) = (vec![0i32; padded * PANEL], vec![7i32; padded * PANEL]);
            // SAFETY: whole blocks of rows, `width` even, PANEL sums a row.
            unsafe {
                dots_plain(&block, &panel, width, &mut plain);
                (KERNEL.dots)(&block, &panel, width, &mut chosen);
            }
            prop_assert_eq!(&plain, &chosen);
            for (r, c) in [(0, 0), (padded - 1, PANEL - 1), (padded / 2, PANEL / 3)] {
                let sum: i64 = (0..pairs)
                    .flat_map(|k| [2 * k, 2 * k + 1])
                    .map(|k| i64::from(block[r * width + k]) * i64::from(panel[(k / 2 * PANEL + c) * 2 + k % 2]))
                    .sum();
                prop_assert_eq!(i64::from(plain[r * PANEL + c]), sum);
            }
        }
    }
}
