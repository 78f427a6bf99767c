//! TypiClust (Hacohen et al., ICML 2022): cluster the pool, then take the
//! most typical sample of the least-covered clusters in turn.
//!
//! - clusters: the tool's spherical k-means (seeded), `min(labeled +
//!   budget, 500)` of them unless `--clusters` says otherwise (the paper's
//!   code uses unseeded Euclidean k-means, which on unit rows is close);
//! - clusters of 5 samples or fewer are visited only once every larger one
//!   has nothing left to give;
//! - each visit goes to the cluster with the fewest labeled or picked
//!   members, then the largest, then the lowest index;
//! - it takes, among the cluster's R remaining members (neither labeled,
//!   excluded nor picked), the one of highest typicality `1 / (mean squared
//!   distance to its K = min(20, ⌊R/2⌋) nearest remaining members + 1e-5)`;
//!   with one member left, that one. Ties go to the lowest id. A member's
//!   typicality is computed again only when a member within its K-th
//!   nearest distance leaves (or K changes), which gives the same values.

use std::time::Instant;

use ndarray::{Array2, ArrayView2, Axis};
use rand::rngs::Xoshiro256PlusPlus;
use rayon::prelude::*;

use super::{Outcome, Round, kmeans};
use crate::error::Result;
use crate::linalg::{Packed, dot64, score_tolerance, squared_distance};
use crate::nearest::{Work, group_by_point};

/// Clusters at most, by default.
pub const MAX_CLUSTERS: usize = 500;
/// Clusters this small are visited last.
const SMALL: usize = 5;
/// Neighbours in the typicality, at most.
const NEIGHBOURS: usize = 20;

/// The default cluster count for a round.
pub fn default_clusters(labeled: usize, budget: usize) -> usize {
    (labeled + budget).min(MAX_CLUSTERS)
}

/// `k` picks after `round`, with `clusters` k-means clusters.
pub fn select(
    features: &mut Array2<f32>,
    k: usize,
    clusters: usize,
    round: &Round,
    rng: &mut Xoshiro256PlusPlus,
) -> Result<Outcome> {
    let start = Instant::now();
    let cluster_of = kmeans::clusters(features, clusters, rng)?;
    let picks = pick(features.view(), &cluster_of, clusters, k, round);
    Ok(Outcome::new(picks, Vec::new(), Vec::new(), start.elapsed().as_secs_f64(), 0.0, Work::default()))
}

/// The picks in order, given each sample's cluster.
fn pick(features: ArrayView2<f32>, cluster_of: &[usize], clusters: usize, k: usize, round: &Round) -> Vec<usize> {
    let members = group_by_point(cluster_of, clusters);
    let mut covered = vec![0usize; clusters];
    for &i in &round.labeled {
        covered[cluster_of[i]] += 1;
    }
    let sizes: Vec<usize> = members.iter().map(Vec::len).collect();
    let mut state: Vec<Cluster> = members
        .into_iter()
        .map(|m| Cluster { left: m.into_iter().filter(|&i| !round.taken[i]).collect(), typical: None })
        .collect();
    let mut picks = Vec::with_capacity(k);
    while picks.len() < k {
        let cluster = (0..clusters)
            .filter(|&c| !state[c].left.is_empty())
            .min_by_key(|&c| (sizes[c] <= SMALL, covered[c], std::cmp::Reverse(sizes[c]), c))
            .expect("the budget fits in the samples left");
        picks.push(state[cluster].take_most_typical(features));
        covered[cluster] += 1;
    }
    picks
}

/// A cluster's members not yet labeled, excluded or picked (ascending ids),
/// with their typicality once computed.
struct Cluster {
    left: Vec<usize>,
    typical: Option<Typical>,
}

/// Each remaining member's typicality and the distance to its K-th nearest
/// remaining member, for the K they were computed with.
struct Typical {
    k: usize,
    score: Vec<f64>,
    kth: Vec<f64>,
}

impl Cluster {
    /// Takes the member of highest typicality (ties to the lowest id). A
    /// member's typicality changes only when a member at most its K-th
    /// nearest distance away leaves, or K itself changes; only those are
    /// computed again, so a visit costs O(R·d) plus a few members' O(R·d),
    /// not O(R²·d).
    fn take_most_typical(&mut self, features: ArrayView2<f32>) -> usize {
        let k = neighbours(self.left.len());
        if self.typical.as_ref().is_none_or(|t| t.k != k) {
            let all: Vec<usize> = (0..self.left.len()).collect();
            let (score, kth) = typicality(features, &self.left, &all);
            self.typical = Some(Typical { k, score, kth });
        }
        let t = self.typical.as_mut().expect("just computed");
        let best = (0..self.left.len()).fold(0, |b, j| if t.score[j] > t.score[b] { j } else { b });
        let chosen = self.left.remove(best);
        t.score.remove(best);
        t.kth.remove(best);
        if neighbours(self.left.len()) == t.k && !self.left.is_empty() {
            let row = |i: usize| features.row(i).to_slice().expect("contiguous rows");
            let near: Vec<usize> = (0..self.left.len())
                .into_par_iter()
                .filter(|&j| squared_distance(row(self.left[j]), row(chosen)) <= t.kth[j])
                .collect();
            let (score, kth) = typicality(features, &self.left, &near);
            for (&j, (s, d)) in near.iter().zip(score.into_iter().zip(kth)) {
                t.score[j] = s;
                t.kth[j] = d;
            }
        }
        chosen
    }
}

/// K for R remaining members (0 when R is 1: that member is taken as is).
fn neighbours(remaining: usize) -> usize {
    NEIGHBOURS.min(remaining / 2)
}

/// Members whose distances to the rest one float32 product screens.
const TILE: usize = 64;

/// The typicality among `left` of the members at positions `which`, with
/// the squared distance to each one's K-th nearest other member.
///
/// A float32 product screens the distances (`|a|² + |b|² − 2a·b`, off by at
/// most twice the product's error); only members within twice that error of
/// the K-th screened distance get the exact float64 distance. The K nearest
/// exact distances are then the ones a full exact pass finds, so the values
/// are the same, summed in the same (ascending) order.
fn typicality(features: ArrayView2<f32>, left: &[usize], which: &[usize]) -> (Vec<f64>, Vec<f64>) {
    let k = neighbours(left.len());
    if k == 0 {
        return (vec![0.0; which.len()], vec![f64::INFINITY; which.len()]);
    }
    let block = features.select(Axis(0), left);
    let row = |j: usize| block.row(j).to_slice().expect("a fresh array is contiguous");
    let norms: Vec<f64> = (0..left.len()).map(|j| dot64(row(j), row(j))).collect();
    let tolerance = f64::from(score_tolerance(features.ncols())) + 1e-9;
    let packed = Packed::new(block.view());
    which
        .par_chunks(TILE)
        .flat_map_iter(|tile| {
            let rows = block.select(Axis(0), tile);
            let mut dots = Array2::<f32>::zeros((tile.len(), left.len()));
            packed.product_into(rows.view(), &mut Vec::new(), &mut dots.view_mut());
            let scored: Vec<(f64, f64)> = tile
                .iter()
                .zip(dots.rows())
                .map(|(&j, dots)| {
                    let screened: Vec<(f64, usize)> = (0..left.len())
                        .filter(|&m| m != j)
                        .map(|m| (norms[j] + norms[m] - 2.0 * f64::from(dots[m]), m))
                        .collect();
                    let mut sorted: Vec<f64> = screened.iter().map(|&(s, _)| s).collect();
                    let (_, &mut kth, _) = sorted.select_nth_unstable_by(k - 1, f64::total_cmp);
                    let mut exact: Vec<f64> = screened
                        .iter()
                        .filter(|&&(s, _)| s <= kth + tolerance)
                        .map(|&(_, m)| squared_distance(row(j), row(m)))
                        .collect();
                    exact.select_nth_unstable_by(k - 1, f64::total_cmp);
                    let mut nearest = exact[..k].to_vec();
                    nearest.sort_unstable_by(f64::total_cmp);
                    (1.0 / (nearest.iter().sum::<f64>() / k as f64 + 1e-5), nearest[k - 1])
                })
                .collect();
            scored
        })
        .unzip()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{round_every, unit_rows};
    use proptest::prelude::*;
    use rand::SeedableRng;

    /// The rule written out literally: all distances, sorted, every step.
    fn literal(f: &Array2<f32>, cluster_of: &[usize], clusters: usize, k: usize, round: &Round) -> Vec<usize> {
        let n = f.nrows();
        let mut taken = round.taken.clone();
        let mut covered = vec![0usize; clusters];
        for &i in &round.labeled {
            covered[cluster_of[i]] += 1;
        }
        let size = |c: usize| (0..n).filter(|&i| cluster_of[i] == c).count();
        let mut picks = Vec::new();
        while picks.len() < k {
            let mut order: Vec<usize> = (0..clusters).collect();
            order.sort_by_key(|&c| (size(c) <= SMALL, covered[c], std::cmp::Reverse(size(c)), c));
            let cluster = order.into_iter().find(|&c| (0..n).any(|i| cluster_of[i] == c && !taken[i])).unwrap();
            let left: Vec<usize> = (0..n).filter(|&i| cluster_of[i] == cluster && !taken[i]).collect();
            let chosen = if left.len() == 1 {
                left[0]
            } else {
                let kk = NEIGHBOURS.min(left.len() / 2);
                let score = |i: usize| {
                    let mut d: Vec<f64> = left
                        .iter()
                        .filter(|&&j| j != i)
                        .map(|&j| squared_distance(f.row(i).as_slice().unwrap(), f.row(j).as_slice().unwrap()))
                        .collect();
                    d.sort_by(f64::total_cmp);
                    1.0 / (d[..kk].iter().sum::<f64>() / kk as f64 + 1e-5)
                };
                let mut best = left[0];
                for &i in &left[1..] {
                    if score(i) > score(best) {
                        best = i;
                    }
                }
                best
            };
            taken[chosen] = true;
            covered[cluster] += 1;
            picks.push(chosen);
        }
        picks
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn picks_equal_the_literal_rule(
            n in 10usize..200, d in 1usize..8, clusters in 1usize..12, k_frac in 0.0f64..0.7,
            grid in proptest::option::of(1i32..3), labeled_every in 0usize..9, excluded_every in 0usize..7,
            seed in 0u64..1000,
        ) {
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
            let f = unit_rows(n, d, &mut rng, grid);
            let cluster_of: Vec<usize> = (0..n).map(|i| (i * 7 + i / 3) % clusters).collect();
            let round = round_every(n, labeled_every, excluded_every);
            let left = round.left();
            prop_assume!(left > 0);
            let k = ((left as f64 * k_frac) as usize).clamp(1, left);
            prop_assert_eq!(pick(f.view(), &cluster_of, clusters, k, &round), literal(&f, &cluster_of, clusters, k, &round));
        }
    }

    #[test]
    fn labeled_members_send_the_first_visits_elsewhere() {
        // Two equal clusters; labeling one sample of cluster 0 sends the first pick to cluster 1.
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(5);
        let f = unit_rows(40, 4, &mut rng, None);
        let cluster_of: Vec<usize> = (0..40).map(|i| i % 2).collect();
        let fresh = pick(f.view(), &cluster_of, 2, 1, &Round::first(40));
        assert_eq!(cluster_of[fresh[0]], 0, "ties in coverage and size go to the lower cluster");
        let mut round = Round::first(40);
        round.labeled = vec![0];
        round.taken[0] = true;
        let after = pick(f.view(), &cluster_of, 2, 1, &round);
        assert_eq!(cluster_of[after[0]], 1);
    }
}
