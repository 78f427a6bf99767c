//! Full scans: samples against every point, with a float32 product as the
//! filter and [`dot`] for every decision, in tiles spread over the threads.

use ndarray::{ArrayView2, Axis};
use rayon::prelude::*;

use super::Batch;
use crate::chunks;
use crate::linalg::{Packed, dot, dot_error_bound, refined_argmax, row, score_tolerance};

/// Candidate points remembered per sample, at most (see [`super::bounds::candidate_width`]).
pub const CANDIDATES: usize = 32;
/// Scores [`top_candidates`] rules out at a time.
const SKIP_BLOCK: usize = 16;
/// Interleaved stripes whose maxima bound the kept scores from below.
const STRIPES: usize = 64;

/// What a full scan of one sample against every point finds.
pub(super) struct FullScan {
    pub best: usize,
    pub similarity: f32,
    /// The best points by filter score (the first `min(k, CANDIDATES)`),
    /// always with `best`. Fixed-size, so a scan allocates nothing: millions
    /// of tiny long-lived allocations between large transient ones would
    /// fragment the heap (measured: 310 MB instead of 118 MB peak RSS at
    /// 50,000 x 384 with budget 1,000).
    pub candidates: [u32; CANDIDATES],
    /// An upper bound on the exact score of every point not in `candidates`.
    pub rest_bound: f64,
    /// An upper bound on each candidate's exact score.
    pub candidate_bounds: [f64; CANDIDATES],
}

/// Full scans of the samples at batch `positions`, remembering candidates.
pub(super) fn full_scans(
    features: ArrayView2<f32>,
    batch: &Batch,
    positions: &[usize],
    points: ArrayView2<f32>,
    width: usize,
) -> Vec<FullScan> {
    let tolerance = score_tolerance(points.ncols());
    let filter_error = f64::from(dot_error_bound(points.ncols()));
    scan(features, batch, positions, points, |scores, exact| {
        let (best, similarity) = refined_argmax(scores.iter().copied(), tolerance, |_| true, exact).expect("k >= 1");
        let (candidates, rest) = top_candidates(scores, best, width);
        let bound = |s: f32| f64::from(s) + filter_error;
        FullScan {
            best,
            similarity,
            candidate_bounds: candidates.map(|j| bound(scores.get(j as usize).copied().unwrap_or(f32::NEG_INFINITY))),
            candidates,
            rest_bound: rest.map_or(f64::NEG_INFINITY, bound),
        }
    })
}

/// Scores the samples at batch `positions` against every point with a
/// float32 product, in tiles, and hands each sample's filter scores and an
/// exact scorer (`dot` with point `j`) to `per_sample`. Score tiles are
/// reused across the tiles of a worker.
pub(super) fn scan<R: Send>(
    features: ArrayView2<f32>,
    batch: &Batch,
    positions: &[usize],
    points: ArrayView2<f32>,
    per_sample: impl Fn(&[f32], &dyn Fn(usize) -> f32) -> R + Sync,
) -> Vec<R> {
    let k = points.nrows();
    let packed = Packed::new(points);
    let stride = packed.stride();
    let chunks: Vec<Vec<R>> = positions
        .par_chunks(chunks::SCAN)
        .map_init(Vec::<f32>::new, |scores, chunk| {
            let ids: Vec<usize> = chunk.iter().map(|&i| batch.id(i)).collect();
            let rows = features.select(Axis(0), &ids);
            packed.product_padded(rows.view(), scores);
            scores
                .chunks_exact(stride)
                .enumerate()
                .map(|(r, padded)| {
                    let f = row(rows.view(), r);
                    let exact = |j: usize| dot(f, row(points, j));
                    per_sample(&padded[..k], &exact)
                })
                .collect()
        })
        .collect();
    chunks.into_iter().flatten().collect()
}

/// The indices of the `width` highest filter scores (best first; only the
/// first `min(k, width)` entries are meaningful), always including `best`
/// (the exact winner), and the highest filter score among the rest (None
/// when every point is a candidate).
///
/// One pass keeping the best `width + 1` in a sorted array: almost
/// every score fails the first comparison, so this costs about k
/// comparisons, where a selection would move the whole row several times.
fn top_candidates(scores: &[f32], best: usize, width: usize) -> ([u32; CANDIDATES], Option<f32>) {
    debug_assert!((1..=CANDIDATES).contains(&width));
    let keep = width + 1;
    // Ranked by score, then `best` first (so it is never cut by an equal
    // score), then the lower index (guaranteed by the scan order).
    let ranks_above = |a: (f32, bool), b: (f32, bool)| a.0 > b.0 || (a.0 == b.0 && a.1 && !b.1);
    let mut kept = [(f32::NEG_INFINITY, false, u32::MAX); CANDIDATES + 1];
    let mut len = 0;
    let floor = lower_bound_of_kept(scores, keep);
    for (b, block) in scores.chunks(SKIP_BLOCK).enumerate() {
        let first = b * SKIP_BLOCK;
        // A block without `best` and without a score that could enter the
        // list is ruled out by one vectorised comparison.
        if !(first..first + block.len()).contains(&best) {
            let limit = if len == keep { floor.max(kept[keep - 1].0) } else { floor };
            if !block.iter().fold(false, |any, &s| any | (s >= limit)) {
                continue;
            }
        }
        for (j, &score) in (first..).zip(block) {
            let key = (score, j == best);
            if (score < floor && j != best) || (len == keep && !ranks_above(key, (kept[keep - 1].0, kept[keep - 1].1)))
            {
                continue;
            }
            let mut at = len.min(keep - 1);
            while at > 0 && ranks_above(key, (kept[at - 1].0, kept[at - 1].1)) {
                kept[at] = kept[at - 1];
                at -= 1;
            }
            kept[at] = (score, j == best, j as u32);
            len = (len + 1).min(keep);
        }
    }
    let mut rest = (len == keep).then(|| kept[width].0);
    let width = len.min(width);
    let mut top = [u32::MAX; CANDIDATES];
    for (t, &(_, _, j)) in top.iter_mut().zip(&kept[..width]) {
        *t = j;
    }
    // With more than CANDIDATES near-ties the exact winner can rank below the
    // cut by filter score; swap it in and let the bound cover the one it displaces.
    if !top[..width].contains(&(best as u32)) {
        let displaced = scores[top[width - 1] as usize];
        rest = Some(rest.map_or(displaced, |r| r.max(displaced)));
        top[width - 1] = best as u32;
    }
    (top, rest)
}

/// A score that at least `keep` of `scores` reach, so nothing below it can
/// be among the `keep` best: the `keep`-th largest of the maxima of
/// [`STRIPES`] interleaved stripes (each a different score). Skipping
/// everything below it cuts the insertions into the kept list, which cost
/// more than the comparisons. Minus infinity when the row is too short.
fn lower_bound_of_kept(scores: &[f32], keep: usize) -> f32 {
    if keep > STRIPES || scores.len() < 2 * STRIPES {
        return f32::NEG_INFINITY;
    }
    let mut maxima = [f32::NEG_INFINITY; STRIPES];
    let rows = scores.chunks_exact(STRIPES);
    for (m, &s) in maxima.iter_mut().zip(rows.remainder()) {
        *m = s;
    }
    for row in rows {
        for (m, &s) in maxima.iter_mut().zip(row) {
            *m = if s > *m { s } else { *m };
        }
    }
    *maxima.select_nth_unstable_by(keep - 1, |a, b| b.total_cmp(a)).1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_candidates_keep_the_exact_winner_and_bound_the_rest() {
        let scores: Vec<f32> = (0..5000).map(|j| (j % 97) as f32).collect();
        // 96 is the top score 51 times; 95 (not among the 16 best) is the exact winner.
        let (candidates, rest) = top_candidates(&scores, 95, 16);
        assert!(candidates[..16].contains(&95));
        assert!(candidates[..16].iter().filter(|&&j| j != 95).all(|&j| scores[j as usize] == 96.0));
        assert_eq!(rest, Some(96.0));
        let (small, rest) = top_candidates(&scores[..3], 2, 16);
        assert_eq!((&small[..3], rest), (&[2, 1, 0][..], None));
        // Against a full sort, on rows with many ties, short (every score
        // looked at) and long (most ruled out by the stripes' floor).
        for seed in 0..400u32 {
            let (len, values) = match seed < 200 {
                true => (seed as usize % 60 + 1, 7),
                false => (128 + (seed as usize * 37) % 700, [7, 50, 100_000][seed as usize % 3]),
            };
            let row: Vec<f32> = (0..len)
                .map(|j| (((j as u32).wrapping_mul(2_654_435_761) ^ seed.wrapping_mul(40_503)) % values) as f32)
                .collect();
            let best = (seed as usize * 31) % row.len();
            let mut order: Vec<u32> = (0..row.len() as u32).collect();
            order.sort_by(|&a, &b| {
                row[b as usize]
                    .total_cmp(&row[a as usize])
                    .then((b as usize == best).cmp(&(a as usize == best)))
                    .then(a.cmp(&b))
            });
            let width = [1, 5, 16, 32][seed as usize % 4];
            let (top, rest) = top_candidates(&row, best, width);
            let shown = row.len().min(width);
            let mut want = order[..shown].to_vec();
            let mut want_rest = order.get(width).map(|&j| row[j as usize]);
            if !want.contains(&(best as u32)) {
                // The winner takes the last place; the bound covers the one it displaced.
                let displaced = row[want[shown - 1] as usize];
                want_rest = Some(want_rest.map_or(displaced, |r| r.max(displaced)));
                want[shown - 1] = best as u32;
            }
            assert_eq!(&top[..shown], &want[..], "row {row:?} best {best} width {width}");
            assert_eq!(rest, want_rest, "row {row:?} best {best} width {width}");
        }
    }
}
