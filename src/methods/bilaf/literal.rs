//! Stage two written out as the paper's code computes it, with full
//! distance matrices and a fresh sort at every step, plus the documented
//! departures: the oracle for the tiled, incremental version.

use ndarray::{Array2, ArrayView2};

use super::boundary::argmin_prefers;
use super::{DENSITY_NEAREST, MIN_CLASS, NO_RIVAL, PENALTY_RATIO, allocate, distance, numpy_mean};
use crate::methods::Round;

/// The boundary picks in class order, or `None` when the total does not fit.
pub fn stage_two(features: ArrayView2<f32>, cores: &[usize], extra: usize, round: &Round) -> Option<Vec<usize>> {
    let n = features.nrows();
    let mut centres: Vec<usize> = cores.iter().chain(&round.labeled).copied().collect();
    centres.sort_unstable();
    let k = centres.len();
    let to_centre = Array2::from_shape_fn((n, k), |(i, c)| distance(features, i, centres[c]));
    let class_of: Vec<usize> = (0..n)
        .map(|i| match centres.iter().position(|&c| c == i) {
            Some(own) => own,
            None => argmin((0..k).map(|c| to_centre[[i, c]])),
        })
        .collect();
    let lists: Vec<Vec<usize>> = (0..k)
        .map(|c| {
            let members: Vec<usize> = (0..n).filter(|&i| class_of[i] == c).collect();
            denoise(features, &members, centres[c])
        })
        .collect();
    let sizes: Vec<usize> = lists.iter().map(Vec::len).collect();
    let room: Vec<usize> =
        (0..k).map(|c| 1 + lists[c].iter().filter(|&&i| i != centres[c] && !round.taken[i]).count()).collect();
    if extra + k > room.iter().sum() {
        return None;
    }
    let allocation = allocate::allocate(extra + k, &sizes, &room);
    let mut picks = Vec::new();
    for c in 0..k {
        let members = &lists[c];
        let outer: Vec<(f64, usize)> = members
            .iter()
            .map(|&i| {
                let mut row: Vec<f64> = (0..k).map(|j| to_centre[[i, j]]).collect();
                row[c] = NO_RIVAL;
                let r = argmin(row.iter().copied());
                (row[r], r)
            })
            .collect();
        picks.extend(select(features, members, centres[c], allocation[c], &outer, k, &round.taken));
    }
    Some(picks)
}

/// The first index of the smallest value.
fn argmin(values: impl Iterator<Item = f64>) -> usize {
    let v: Vec<f64> = values.collect();
    (0..v.len()).fold(0, |b, j| if v[j] < v[b] { j } else { b })
}

fn matrix(features: ArrayView2<f32>, members: &[usize]) -> Array2<f64> {
    Array2::from_shape_fn((members.len(), members.len()), |(a, b)| distance(features, members[a], members[b]))
}

/// Positions sorted by value, stable.
fn argsort(values: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    order
}

fn denoise(features: ArrayView2<f32>, members: &[usize], centre: usize) -> Vec<usize> {
    let m = members.len();
    if m < MIN_CLASS {
        return members.to_vec();
    }
    let dm = matrix(features, members);
    let core = members.iter().position(|&i| i == centre).unwrap();
    let step = std::cmp::max(1, m / 10);
    let row: Vec<f64> = (0..m).map(|j| dm[[core, j]]).collect();
    let mut cluster: Vec<usize> = argsort(&row)[..step].to_vec();
    for _ in 2..=m / step {
        let candidates: Vec<usize> = (0..m).filter(|i| !cluster.contains(i)).collect();
        if candidates.is_empty() {
            break;
        }
        let mut scored: Vec<(f64, usize)> = candidates
            .iter()
            .map(|&i| {
                let to_cluster: Vec<f64> = cluster.iter().map(|&p| dm[[i, p]]).collect();
                let nearest = &argsort(&to_cluster)[..DENSITY_NEAREST.min(cluster.len())];
                let values: Vec<f64> = nearest.iter().map(|&p| dm[[i, p]]).collect();
                (numpy_mean(&values), i)
            })
            .collect();
        scored.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        cluster.extend(scored.iter().take(step).map(|x| x.1));
    }
    cluster.truncate(cluster.len() * 9 / 10);
    if !cluster.contains(&core) {
        cluster.push(core);
    }
    cluster.iter().map(|&p| members[p]).collect()
}

fn select(
    features: ArrayView2<f32>,
    members: &[usize],
    centre: usize,
    budget: usize,
    outer: &[(f64, usize)],
    classes: usize,
    taken: &[bool],
) -> Vec<usize> {
    let m = members.len();
    let dm = matrix(features, members);
    let inner: Vec<f64> = (0..m).map(|i| numpy_mean(&dm.row(i).to_vec())).collect();
    let core = members.iter().position(|&i| i == centre).unwrap();
    let mut penalty = vec![1.0; classes];
    let mut list = vec![core];
    let invalid = m / budget.max(1);
    let mut candidates: Vec<usize> = (0..m).collect();
    while list.len() < budget {
        let node = *list.last().unwrap();
        let mut valid: Vec<(bool, f64, usize)> = candidates.iter().map(|&i| (i != node, dm[[node, i]], i)).collect();
        valid.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)).then(a.2.cmp(&b.2)));
        candidates = valid[invalid.min(valid.len())..].iter().map(|x| x.2).collect();
        if node != core {
            penalty[outer[node].1] *= PENALTY_RATIO;
        }
        let ok = |i: usize| !list.contains(&i) && !taken[members[i]];
        if !candidates.iter().any(|&i| ok(i)) {
            candidates = (0..m).filter(|i| !list.contains(i)).collect();
        }
        let mut best: Option<(f64, usize)> = None;
        for &i in candidates.iter().filter(|&&i| ok(i)) {
            let (o, r) = outer[i];
            let score = (o * penalty[r] - inner[i]) / o.max(inner[i]);
            if best.is_none_or(|(b, _)| argmin_prefers(score, b)) {
                best = Some((score, i));
            }
        }
        list.push(best.unwrap().1);
    }
    list[1..].iter().map(|&p| members[p]).collect()
}
