//! The point-point part of the objective: `ln S_k` and `V_k` for every point.
//!
//! ```text
//! S_k = Σ_j exp(ĉ_j·ĉ_k / t),    V_k = Σ_j exp(ĉ_j·ĉ_k / t) ĉ_j / S_k
//! ```
//!
//! Shifted by the largest possible similarity (1, a point with itself), the
//! weights `E_kj = exp((ĉ_j·ĉ_k − 1) / t)` are at most about 1, never
//! overflow, and form a symmetric matrix. So each pair of blocks of points
//! computes its block of similarities once and uses it both ways: three
//! k²·d products instead of four. Memory stays O(block²) per task.
//!
//! The pairs run in rounds of a round-robin tournament: within a round no two
//! pairs share a block, so they run in parallel without locks, and every
//! block receives its sums in round order, whatever the thread count.
//!
//! The products run on the crate's own kernel ([`Packed`]): each block is
//! packed once per call, both ways, and every entry is the same chain of
//! fused multiply-adds on every CPU, so the term, and the points' path, do
//! not depend on which kernel the machine picks.

use ndarray::{Array1, Array2, ArrayView2, s};
use rayon::prelude::*;

use crate::chunks::rounds;
use crate::linalg::{Packed, exp_in_place};

/// Per-point quantities of the diversity term: `ln S_k` and `V_k`.
pub struct PointTerm {
    pub log_s: Vec<f64>,
    pub v: Array2<f64>,
}

/// Points per block: small enough that small budgets still give both cores
/// pairs to share in every round, large enough for efficient products
/// (the sizes measured best; README).
fn block_size(k: usize) -> usize {
    if k <= 2048 { 128 } else { 256 }
}

/// A block of points, packed for both of its products: as the columns of
/// similarities with another block, and transposed, as the columns of a
/// weighted sum of its points.
struct Block<'a> {
    points: ArrayView2<'a, f32>,
    columns: Packed,
    transposed: Packed,
}

impl<'a> Block<'a> {
    fn new(points: ArrayView2<'a, f32>) -> Self {
        Block { points, columns: Packed::new(points), transposed: Packed::new(points.t()) }
    }
}

/// The blocks of `size` points that `points` is cut into, packed.
fn blocks(points: ArrayView2<'_, f32>, size: usize) -> Vec<Block<'_>> {
    let k = points.nrows();
    let block = move |b: usize| Block::new(points.slice_move(s![b * size..((b + 1) * size).min(k), ..]));
    (0..k.div_ceil(size)).into_par_iter().map(block).collect()
}

/// A block's running sums: `Σ_j E_kj ĉ_j` and `Σ_j E_kj` for its points.
struct Sums {
    weighted: Array2<f32>,
    total: Array1<f64>,
}

/// `ln S_k` and `V_k` for every point.
pub fn point_term(points: ArrayView2<f32>, temperature: f64) -> PointTerm {
    let (k, dim) = points.dim();
    let blocks = blocks(points, block_size(k));
    let mut sums: Vec<Option<Sums>> = blocks
        .iter()
        .map(|b| {
            Some(Sums { weighted: Array2::zeros((b.points.nrows(), dim)), total: Array1::zeros(b.points.nrows()) })
        })
        .collect();
    let inverse_t = (1.0 / temperature) as f32;
    for round in rounds(blocks.len()) {
        let mut tasks: Vec<(usize, usize, Sums, Option<Sums>)> = round
            .iter()
            .map(|&(a, b)| {
                let first = sums[a].take().expect("a block is in one pair per round");
                let second = (a != b).then(|| sums[b].take().expect("a block is in one pair per round"));
                (a, b, first, second)
            })
            .collect();
        tasks.par_iter_mut().for_each(|(a, b, first, second)| {
            pair(&blocks[*a], &blocks[*b], inverse_t, first, second.as_mut());
        });
        for (a, b, first, second) in tasks {
            sums[a] = Some(first);
            if let Some(second) = second {
                sums[b] = Some(second);
            }
        }
    }

    finish(sums.into_iter().map(|s| s.expect("every block is back")).collect(), temperature, dim)
}

/// `ln S_k` and `V_k` from the blocks' sums, in block order.
fn finish(sums: Vec<Sums>, temperature: f64, dim: usize) -> PointTerm {
    let k: usize = sums.iter().map(|s| s.total.len()).sum();
    let mut log_s = Vec::with_capacity(k);
    let mut v = Array2::<f64>::zeros((k, dim));
    let rows = sums.into_iter().flat_map(|s| {
        let Sums { weighted, total } = s;
        weighted.outer_iter().map(|r| r.to_owned()).zip(total).collect::<Vec<_>>()
    });
    for ((weighted, total), mut out) in rows.zip(v.outer_iter_mut()) {
        log_s.push(1.0 / temperature + total.ln());
        out.assign(&weighted.mapv(|w| f64::from(w) / total));
    }
    PointTerm { log_s, v }
}

/// `ln S_k` and `V_k` for the points of blocks `which` only (the blocks
/// [`point_term`] cuts), each block taking its partners in the order the
/// tournament gives them and each pair's product in the same orientation
/// value for value, so the rows equal [`point_term`]'s bit for bit (tested).
/// Ranks split the point term this way: each computes its blocks' rows.
pub fn point_term_blocks(points: ArrayView2<f32>, temperature: f64, which: std::ops::Range<usize>) -> PointTerm {
    let (k, dim) = points.dim();
    let blocks = blocks(points, block_size(k));
    let inverse_t = (1.0 / temperature) as f32;
    let order = rounds(blocks.len());
    let sums: Vec<Sums> = which
        .into_par_iter()
        .map(|a| {
            let mine = &blocks[a];
            let rows = mine.points.nrows();
            let mut sums = Sums { weighted: Array2::zeros((rows, dim)), total: Array1::zeros(rows) };
            for round in &order {
                let Some(&(x, y)) = round.iter().find(|&&(x, y)| x == a || y == a) else {
                    continue;
                };
                let partner = if x == a { y } else { x };
                pair(mine, &blocks[partner], inverse_t, &mut sums, None);
            }
            sums
        })
        .collect();
    finish(sums, temperature, dim)
}

/// Blocks of points [`point_term`] cuts `k` points into.
pub fn block_count(k: usize) -> usize {
    k.div_ceil(block_size(k))
}

/// Adds the weights between blocks `a` and `b` to both blocks' sums (to
/// `first` alone when `second` is None: a block paired with itself).
fn pair(a: &Block, b: &Block, inverse_t: f32, first: &mut Sums, second: Option<&mut Sums>) {
    let mut wide = Vec::new();
    b.columns.product_padded(a.points, &mut wide);
    let count = b.points.nrows();
    let mut weights = Array2::<f32>::zeros((a.points.nrows(), count));
    for (mut row, line) in weights.rows_mut().into_iter().zip(wide.chunks_exact(b.columns.stride())) {
        row.iter_mut().zip(&line[..count]).for_each(|(w, &x)| *w = x);
    }
    let slice = weights.as_slice_mut().expect("a fresh array is contiguous");
    for w in slice.iter_mut() {
        *w = (*w - 1.0) * inverse_t;
    }
    exp_in_place(slice);
    for (total, row) in first.total.iter_mut().zip(weights.rows()) {
        *total += row.iter().map(|&w| f64::from(w)).sum::<f64>();
    }
    add_product(weights.view(), &b.transposed, &mut first.weighted, &mut wide);
    if let Some(second) = second {
        for (total, column) in second.total.iter_mut().zip(weights.columns()) {
            *total += column.iter().map(|&w| f64::from(w)).sum::<f64>();
        }
        add_product(weights.t(), &a.transposed, &mut second.weighted, &mut wide);
    }
}

/// `out += rows · columnsᵀ`, through `wide` (reused scratch).
fn add_product(rows: ArrayView2<f32>, columns: &Packed, out: &mut Array2<f32>, wide: &mut Vec<f32>) {
    columns.product_padded(rows, wide);
    for (mut row, line) in out.rows_mut().into_iter().zip(wide.chunks_exact(columns.stride())) {
        row.iter_mut().zip(line).for_each(|(o, &x)| *o += x);
    }
}

/// The point term straight from its definition, in float64, one row of
/// the k x k similarities at a time: the oracle for the fast path and for
/// the gradient tests.
#[cfg(test)]
pub(super) fn point_term_f64(unit: &Array2<f64>, temperature: f64) -> PointTerm {
    let k = unit.nrows();
    let mut log_s = Vec::with_capacity(k);
    let mut v = Array2::<f64>::zeros(unit.dim());
    for (a, mut out) in v.outer_iter_mut().enumerate() {
        let logits: Vec<f64> = (0..k).map(|j| unit.row(j).dot(&unit.row(a)) / temperature).collect();
        let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let ls = max + logits.iter().map(|l| (l - max).exp()).sum::<f64>().ln();
        for (logit, cj) in logits.iter().zip(unit.rows()) {
            out.scaled_add((logit - ls).exp(), &cj);
        }
        log_s.push(ls);
    }
    PointTerm { log_s, v }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::Xoshiro256PlusPlus;
    use rand::{RngExt, SeedableRng};

    #[test]
    fn a_ranks_blocks_equal_the_whole_term_bit_for_bit() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(8);
        for (k, d) in [(5, 3), (300, 24), (700, 40), (2100, 16)] {
            let raw = Array2::from_shape_fn((k, d), |_| rng.random_range(-1.0..1.0f64));
            let points = crate::linalg::normalize_rows(&raw).0.mapv(|x| x as f32);
            let whole = point_term(points.view(), 0.07);
            let blocks = block_count(k);
            for parts in 1..=3 {
                for part in 0..parts {
                    let which = blocks * part / parts..blocks * (part + 1) / parts;
                    let first = (which.start * block_size(k)).min(k);
                    let mine = point_term_blocks(points.view(), 0.07, which);
                    let rows = mine.log_s.len();
                    assert_eq!(mine.log_s[..], whole.log_s[first..first + rows], "k {k}, part {part} of {parts}");
                    assert_eq!(mine.v, whole.v.slice(s![first..first + rows, ..]), "k {k}, part {part} of {parts}");
                }
            }
        }
    }

    #[test]
    fn blocked_term_matches_the_definition() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
        // Below, at and across block boundaries; temperatures that underflow most weights.
        for (k, d, t) in [(1, 5, 0.07), (7, 3, 0.07), (64, 8, 0.5), (65, 8, 0.07), (200, 16, 0.005), (300, 24, 0.07)] {
            let raw = Array2::from_shape_fn((k, d), |_| rng.random_range(-1.0..1.0f64));
            let points = crate::linalg::normalize_rows(&raw).0.mapv(|x| x as f32);
            let fast = point_term(points.view(), t);
            let slow = point_term_f64(&points.mapv(f64::from), t);
            for (x, y) in fast.log_s.iter().zip(&slow.log_s) {
                // The similarity's float32 error, scaled by 1/t.
                assert!((x - y).abs() <= 5e-6 / t, "k {k} t {t}: {x} vs {y}");
            }
            let worst = (&fast.v - &slow.v).iter().fold(0.0f64, |m, e| m.max(e.abs()));
            assert!(worst <= 1e-6 / t, "k {k} t {t}: V differs by {worst}");
        }
    }
}
