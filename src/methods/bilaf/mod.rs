//! BiLAF (Lu, Xie, Yang, Yan, NeurIPS 2024): ActiveFT picks the core
//! samples, which become pseudo-class centres; the rest of the budget goes
//! to samples near the boundaries between those classes.
//!
//! Stage two follows the paper's `density_cluster.py` on the tool's
//! normalised rows, with float64 Euclidean distances:
//!
//! - `classes`: every sample's nearest centre and its nearest other centre;
//! - `distances`: the distances within one class, each pair computed once;
//! - `denoise`: each class grows a density cluster from its centre and
//!   drops its last tenth;
//! - `allocate`: the budget split over classes by their denoised sizes;
//! - `boundary`: within a class, picks of lowest boundary score, each
//!   ruling out its nearest neighbours for later picks.
//!
//! Where the paper's code would crash or pick a sample twice, the rules
//! written in each file decide instead; `literal` (tests only) is the whole
//! stage written out as the definitions state it, the oracle for the rest.

mod allocate;
mod boundary;
mod classes;
mod denoise;
mod distances;
#[cfg(test)]
mod literal;

use std::time::Instant;

use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

use super::{Outcome, Round, activeft};
use crate::error::{Error, Result};
use crate::linalg::squared_distance;
use crate::nearest::{Mode, group_by_point};
use activeft::ValidParams;
use distances::{Distances, TABLE_MEMBERS};

/// Classes smaller than this are not denoised.
const MIN_CLASS: usize = 10;
/// Cluster members whose positions score a candidate while denoising.
const DENSITY_NEAREST: usize = 10;
/// How much each boundary pick raises the penalty of its rival class.
const PENALTY_RATIO: f64 = 1.1;
/// The outer distance of a sample when there is no other centre.
const NO_RIVAL: f64 = 1e9 + 7.0;

/// Runs ActiveFT for `params.budget` core samples, then picks boundary
/// samples until `budget` new samples are chosen. Labeled samples are fixed
/// points in stage one and further centres in stage two; taken samples are
/// never picked.
pub fn select(
    features: &mut Array2<f32>,
    params: &ValidParams,
    budget: usize,
    round: &Round,
    on_iteration: impl FnMut(usize, f64),
) -> Result<Outcome> {
    let mut outcome = activeft::select(features, params, round, Mode::Pruned, on_iteration)?;
    let start = Instant::now();
    let boundary = stage_two(features.view(), &outcome.picks, budget - outcome.picks.len(), round, TABLE_MEMBERS)?;
    let mut picks = std::mem::take(&mut outcome.picks);
    picks.extend(boundary);
    let mut done = Outcome::new(picks, outcome.init, outcome.losses, outcome.optimize_seconds, 0.0, outcome.work);
    done.map_seconds = outcome.map_seconds + start.elapsed().as_secs_f64();
    Ok(done)
}

/// `extra` boundary picks around `cores` and the labeled samples, in class
/// order (centres ascending by id), each class's in pick order. Classes of
/// up to `table_members` table their distances (the tests vary it).
fn stage_two(
    features: ArrayView2<f32>,
    cores: &[usize],
    extra: usize,
    round: &Round,
    table_members: usize,
) -> Result<Vec<usize>> {
    let mut centres: Vec<usize> = cores.iter().chain(&round.labeled).copied().collect();
    centres.sort_unstable();
    let nearest = classes::nearest_centres(features, &centres)?;
    let members = group_by_point(&nearest.class, centres.len());
    let (denoised, inner): (Vec<Vec<usize>>, Vec<Option<Vec<f64>>>) = members
        .par_iter()
        .zip(&centres)
        .map(|(ids, &centre)| denoise_class(features, ids, centre, table_members))
        .unzip();
    let sizes: Vec<usize> = denoised.iter().map(Vec::len).collect();
    let room: Vec<usize> = denoised
        .iter()
        .zip(&centres)
        .map(|(ids, c)| 1 + ids.iter().filter(|&i| i != c && !round.taken[*i]).count())
        .collect();
    let total = extra + centres.len();
    let capacity: usize = room.iter().sum();
    if total > capacity {
        return Err(Error::usage(
            "--budget",
            format!(
                "BiLAF can pick at most {} samples here: denoising leaves {capacity} pickable samples around the {} centres",
                capacity - centres.len() + cores.len(),
                centres.len()
            ),
        ));
    }
    let allocation = allocate::allocate(total, &sizes, &room);
    let picks: Vec<Vec<usize>> = (0..centres.len())
        .into_par_iter()
        .map(|c| {
            let class = boundary::Class { members: &denoised[c], centre: centres[c], inner: inner[c].as_deref() };
            boundary::picks(features, &class, allocation[c], &nearest, centres.len(), &round.taken)
        })
        .collect();
    Ok(picks.concat())
}

/// Denoises the class of `members` (ascending ids) around `centre`: the
/// ids it keeps, in joining order, and their inner means when its
/// distances were tabled (classes of up to `table_members`).
fn denoise_class(
    features: ArrayView2<f32>,
    members: &[usize],
    centre: usize,
    table_members: usize,
) -> (Vec<usize>, Option<Vec<f64>>) {
    let distances = Distances::new(features, members, table_members);
    let centre_at = members.binary_search(&centre).expect("a centre is in its class");
    let kept = denoise::denoise(&distances, centre_at);
    let inner = distances.is_tabled().then(|| boundary::inner_means(&distances, &kept));
    (kept.into_iter().map(|p| members[p]).collect(), inner)
}

/// The float64 Euclidean distance between samples `a` and `b`.
fn distance(features: ArrayView2<f32>, a: usize, b: usize) -> f64 {
    let row = |i: usize| features.row(i).to_slice().expect("contiguous rows");
    squared_distance(row(a), row(b)).sqrt()
}

/// The mean as numpy computes it (`np.mean` of a float64 array): pairwise
/// summation in blocks of 8 partial sums, then a division. The boundary
/// scores compare means of distances, so the order of the additions counts.
fn numpy_mean(values: &[f64]) -> f64 {
    numpy_sum(values) / values.len() as f64
}

fn numpy_sum(a: &[f64]) -> f64 {
    const BLOCK: usize = 128;
    let n = a.len();
    if n < 8 {
        return a.iter().fold(0.0, |s, v| s + v);
    }
    if n > BLOCK {
        let half = n / 2;
        let half = half - half % 8;
        return numpy_sum(&a[..half]) + numpy_sum(&a[half..]);
    }
    let mut r = [0.0; 8];
    r.copy_from_slice(&a[..8]);
    let whole = n - n % 8;
    for chunk in a[8..whole].chunks_exact(8) {
        for (acc, v) in r.iter_mut().zip(chunk) {
            *acc += v;
        }
    }
    let mut sum = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for v in &a[whole..] {
        sum += v;
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{round_every, unit_rows};
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand::rngs::Xoshiro256PlusPlus;
    use rand::seq::SliceRandom;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn stage_two_equals_the_literal_rule(
            n in 12usize..260, d in 1usize..6, cores in 1usize..9, extra_frac in 0.0f64..1.0,
            grid in proptest::option::of(1i32..3), labeled_every in 0usize..15, excluded_every in 0usize..6,
            seed in 0u64..10_000,
        ) {
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
            let f = unit_rows(n, d, &mut rng, grid);
            let round = round_every(n, labeled_every, excluded_every);
            let mut free = round.eligible();
            prop_assume!(free.len() > cores);
            free.shuffle(&mut rng);
            let cores = &free[..cores];
            let extra = ((n - cores.len()) as f64 * extra_frac) as usize;
            let expected = literal::stage_two(f.view(), cores, extra, &round);
            let ours = stage_two(f.view(), cores, extra, &round, TABLE_MEMBERS);
            prop_assert_eq!(ours.as_ref().ok(), expected.as_ref());
            // Without tables (every distance computed as asked), and with some classes tabled.
            for limit in [0, n / 3] {
                let other = stage_two(f.view(), cores, extra, &round, limit);
                prop_assert_eq!(other.as_ref().ok(), expected.as_ref(), "tables up to {} members", limit);
            }
            if let Ok(picks) = ours {
                prop_assert_eq!(picks.len(), extra);
                let mut seen = vec![false; n];
                for &i in cores.iter().chain(&picks) {
                    prop_assert!(!seen[i] && !round.taken[i], "{} picked twice or taken", i);
                    seen[i] = true;
                }
            }
        }
    }

    #[test]
    fn numpy_sum_adds_in_numpys_order() {
        // Adding 1 to 1e16 is lost to rounding, so the order shows: below
        // eight values numpy adds left to right, from eight in eight
        // running sums combined as a tree.
        let seven = [1e16, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0];
        assert_eq!(numpy_sum(&seven), 1e16);
        let eight = [1e16, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0];
        assert_eq!(numpy_sum(&eight), 1e16 + 6.0);
        assert_eq!(numpy_mean(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0]), 5.5);
    }
}
