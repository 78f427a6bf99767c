//! From points to samples: each point, in order, takes the most similar
//! sample not taken before it (ties: the lowest sample id).

use ndarray::{Array2, ArrayView2, Axis, s};
use rayon::prelude::*;

use super::bounds::Pruned;
use super::sweeps::score_key;
use crate::chunks;
use crate::linalg::{Packed, dot, refined_argmax, score_tolerance};

/// Points whose similarities to the whole pool are computed at once.
const POINT_TILE: usize = 32;

/// The sample each point takes, in point order, from a full product: the
/// oracle. `taken` marks samples no point may take; enough must be left.
pub fn greedy_map(features: ArrayView2<f32>, points: ArrayView2<f32>, mut taken: Vec<bool>) -> Vec<usize> {
    let n = features.nrows();
    let (k, dim) = points.dim();
    assert!(k <= taken.iter().filter(|&&t| !t).count(), "cannot map {k} points to the samples left of {n}");
    let tolerance = score_tolerance(dim);
    let mut picks = Vec::with_capacity(k);
    for first in (0..k).step_by(POINT_TILE) {
        let tile = points.slice(s![first..(first + POINT_TILE).min(k), ..]);
        let scores = pool_scores(features, tile);
        for (p, column) in scores.columns().into_iter().enumerate() {
            let point = tile.row(p);
            let point = point.as_slice().expect("points are contiguous");
            let exact = |i: usize| dot(features.row(i).as_slice().expect("features are contiguous"), point);
            let (i, _) = refined_argmax(column.iter().copied(), tolerance, |i| !taken[i], exact)
                .expect("fewer points than samples leaves one untaken");
            taken[i] = true;
            picks.push(i);
        }
    }
    picks
}

/// The float32 scores of every sample against each point of `tile` (n ×
/// tile), in parallel chunks of the pool: a filter, refined with [`dot`].
pub(super) fn pool_scores(features: ArrayView2<f32>, tile: ArrayView2<f32>) -> Array2<f32> {
    let mut scores = Array2::<f32>::zeros((features.nrows(), tile.nrows()));
    let packed = Packed::new(tile);
    let chunks = scores.axis_chunks_iter_mut(Axis(0), chunks::MAP).into_par_iter().enumerate();
    chunks.for_each_init(Vec::new, |wide, (c, mut out)| {
        let rows = features.slice(s![c * chunks::MAP..c * chunks::MAP + out.nrows(), ..]);
        packed.product_into(rows, wide, &mut out);
    });
    scores
}

/// The same picks as [`greedy_map`] for the first `count` points, without
/// an n × k product: `pruned` must have just assigned the whole pool to
/// these `points` (all of them: the others bound the scores too).
///
/// Each point first looks at the samples that keep it among their
/// candidates (exact scores, best first). Any other sample scores at most its
/// rest bound, so only samples whose bound reaches the best score so far
/// need an exact look; they are visited in order of decreasing bound, and
/// the walk stops at the first bound that falls short. A point whose
/// candidates are all taken ends up scanning everything, which is correct,
/// only slower.
pub fn greedy_map_pruned(
    features: ArrayView2<f32>,
    points: ArrayView2<f32>,
    count: usize,
    mut taken: Vec<bool>,
    pruned: Pruned,
) -> Vec<usize> {
    let n = features.nrows();
    let row = |i: usize| features.row(i).to_slice().expect("features are contiguous");
    let error = pruned.error();
    let mut by_bound: Vec<(f64, u32)> = (0..n).map(|i| (pruned.rest_bound(i), i as u32)).collect();
    by_bound.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    // Only the candidate lists are needed from here: the rest of the pruned
    // state (their bounds, as large again) goes before the lists are built.
    let (candidates, width) = pruned.into_candidates();
    let (starts, mut members) = candidate_lists(&candidates, width, count);
    let scores = candidate_scores(features, points, &candidates, width, count);
    let mut lists: Vec<&mut [u32]> = Vec::with_capacity(count);
    let mut rest = &mut members[..];
    for w in starts.windows(2) {
        let (list, tail) = rest.split_at_mut(w[1] - w[0]);
        lists.push(list);
        rest = tail;
    }
    lists.par_iter_mut().enumerate().for_each_init(Vec::new, |keys, (p, list)| {
        // Best score first, then lowest id: one integer per member.
        keys.clear();
        keys.extend(list.iter().map(|&i| {
            let slots = i as usize * width..(i as usize + 1) * width;
            let at = candidates[slots.clone()].iter().position(|&c| c as usize == p).expect("a listed candidate");
            score_key(scores[slots.start + at], i)
        }));
        keys.sort_unstable();
        for (slot, &key) in list.iter_mut().zip(keys.iter()) {
            *slot = key as u32;
        }
    });
    drop((candidates, scores));

    let mut picks = Vec::with_capacity(count);
    for (p, list) in lists.into_iter().enumerate() {
        let point = points.row(p).to_slice().expect("points are contiguous");
        let mut best = list.iter().map(|&i| i as usize).find(|&i| !taken[i]).map(|i| (dot(row(i), point), i));
        for &(bound, i) in &by_bound {
            if best.is_some_and(|(s, _)| bound + error < f64::from(s)) {
                break;
            }
            let i = i as usize;
            // Samples listed for this point were covered by the list (the
            // rest bound does not apply to them); scoring them again is harmless.
            if taken[i] {
                continue;
            }
            let s = dot(row(i), point);
            if best.is_none_or(|(b, j)| s > b || (s == b && i < j)) {
                best = Some((s, i));
            }
        }
        let (_, i) = best.expect("fewer points than samples leaves one untaken");
        taken[i] = true;
        picks.push(i);
    }
    picks
}

/// The exact score ([`dot`]) of each sample for each of its candidates
/// among the first `k` points, in the candidates' layout (`width` per
/// sample; NaN for the others). Sample by sample, so each row is read once,
/// in memory order, against points that stay in cache; point by point, the
/// same scores cost a row fetched from memory for every one of them.
fn candidate_scores(
    features: ArrayView2<f32>,
    points: ArrayView2<f32>,
    candidates: &[u32],
    width: usize,
    k: usize,
) -> Vec<f32> {
    let mut scores = vec![f32::NAN; candidates.len()];
    scores.par_chunks_mut(width * chunks::SUM).zip(candidates.par_chunks(width * chunks::SUM)).enumerate().for_each(
        |(c, (scores, candidates))| {
            for (r, (scores, candidates)) in scores.chunks_mut(width).zip(candidates.chunks(width)).enumerate() {
                let f = features.row(c * chunks::SUM + r);
                let f = f.as_slice().expect("features are contiguous");
                for (s, &p) in scores.iter_mut().zip(candidates).filter(|&(_, &p)| (p as usize) < k) {
                    *s = dot(f, points.row(p as usize).as_slice().expect("points are contiguous"));
                }
            }
        },
    );
    scores
}

/// For each of the first `k` points, the samples that keep it as a
/// candidate, ascending, as one flat array (`members[starts[p]..starts[p + 1]]`):
/// exactly sized, where a vector per point would keep up to twice the room.
fn candidate_lists(candidates: &[u32], width: usize, k: usize) -> (Vec<usize>, Vec<u32>) {
    let mut starts = vec![0usize; k + 1];
    for &p in candidates.iter().filter(|&&p| (p as usize) < k) {
        starts[p as usize + 1] += 1;
    }
    for p in 0..k {
        starts[p + 1] += starts[p];
    }
    let mut next = starts.clone();
    let mut members = vec![0u32; starts[k]];
    for (c, &p) in candidates.iter().enumerate().filter(|&(_, &p)| (p as usize) < k) {
        members[next[p as usize]] = (c / width) as u32;
        next[p as usize] += 1;
    }
    (starts, members)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nearest::Batch;
    use proptest::prelude::*;

    /// The rule, literally: each of the first `count` points scans every
    /// sample with `dot` and takes the best one not taken yet.
    fn slow_map(features: &Array2<f32>, points: &Array2<f32>, count: usize, mut taken: Vec<bool>) -> Vec<usize> {
        points
            .rows()
            .into_iter()
            .take(count)
            .map(|c| {
                let mut best: Option<(usize, f32)> = None;
                for (i, f) in features.rows().into_iter().enumerate() {
                    let s = dot(f.as_slice().unwrap(), c.as_slice().unwrap());
                    if !taken[i] && best.is_none_or(|(_, b)| s > b) {
                        best = Some((i, s));
                    }
                }
                taken[best.unwrap().0] = true;
                best.unwrap().0
            })
            .collect()
    }

    fn normalized(values: Vec<f32>, d: usize) -> Array2<f32> {
        let mut a = Array2::from_shape_vec((values.len() / d, d), values).unwrap();
        for mut r in a.rows_mut() {
            let norm = r.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
            r /= norm;
        }
        a
    }

    /// Every `step`-th sample taken in advance (none for 0), leaving at least `k`.
    fn taken_every(n: usize, step: usize, k: usize) -> Vec<bool> {
        let mut taken: Vec<bool> = (0..n).map(|i| step > 0 && i % step == 0).collect();
        let mut free = taken.iter().filter(|&&t| !t).count();
        for t in taken.iter_mut() {
            if free >= k {
                break;
            }
            if *t {
                *t = false;
                free += 1;
            }
        }
        taken
    }

    proptest! {
        #[test]
        fn picks_are_unique_in_range_and_equal_the_literal_rule(
            n in 1usize..80,
            k_frac in 0.0f64..=1.0,
            d in 1usize..6,
            taken_step in 0usize..5,
            // Few distinct values so duplicated samples and exact ties are common.
            values in proptest::collection::vec(-2i8..=2, 80 * 6),
            point_values in proptest::collection::vec(-1.0f32..1.0, 80 * 6),
        ) {
            let k = ((n as f64 * k_frac) as usize).max(1);
            let features = normalized(values[..n * d].iter().map(|&v| f32::from(v) + 0.25).collect(), d);
            let points = normalized(point_values[..k * d].to_vec(), d);
            let taken = taken_every(n, taken_step, k);
            let picks = greedy_map(features.view(), points.view(), taken.clone());
            prop_assert_eq!(&picks, &slow_map(&features, &points, k, taken.clone()));
            let mut sorted = picks.clone();
            sorted.sort_unstable();
            sorted.dedup();
            prop_assert_eq!(sorted.len(), k);
            prop_assert!(sorted.iter().all(|&i| i < n && !taken[i]));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(40))]
        #[test]
        fn pruned_mapping_equals_the_literal_rule(
            n in 1usize..300, k_frac in 0.0f64..=1.0, d in 1usize..8, tied in proptest::bool::ANY,
            fixed in 0usize..6, taken_step in 0usize..4,
            values in proptest::collection::vec(-2i8..=2, 300 * 8),
            noise in proptest::collection::vec(-1.0f32..1.0, 300 * 8),
        ) {
            let k = ((n as f64 * k_frac) as usize).max(1);
            // The last `fixed` points are not mapped (they stand for labeled samples).
            let count = k - fixed.min(k - 1);
            let sample = |i: usize| if tied { f32::from(values[i]) + 0.25 } else { noise[i] };
            let features = normalized((0..n * d).map(sample).collect(), d);
            // Points near (or on) samples, as after an optimisation.
            let points = normalized((0..k * d).map(|i| features.as_slice().unwrap()[i] + 0.05 * noise[(i * 7) % noise.len()]).collect(), d);
            let taken = taken_every(n, taken_step, count);
            let mut pruned = Pruned::new(n, k, d).unwrap();
            pruned.assign(features.view(), &Batch::All(n), points.view());
            let fast = greedy_map_pruned(features.view(), points.view(), count, taken.clone(), pruned);
            prop_assert_eq!(&fast, &slow_map(&features, &points, count, taken.clone()));
            let dense = greedy_map(features.view(), points.slice(s![..count, ..]), taken);
            prop_assert_eq!(fast, dense);
        }
    }

    #[test]
    fn a_point_on_a_sample_takes_it_and_ties_go_low() {
        let features = normalized(vec![1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 1.0], 2);
        let points = normalized(vec![0.0, 1.0, 0.0, 1.0, 0.0, 1.0], 2);
        // Samples 1 and 2 are identical: the first point takes 1, the next 2.
        assert_eq!(greedy_map(features.view(), points.view(), vec![false; 4]), vec![1, 2, 3]);
        // With 1 taken in advance, the first point takes 2.
        assert_eq!(greedy_map(features.view(), points.view(), vec![false, true, false, false]), vec![2, 3, 0]);
    }
}
