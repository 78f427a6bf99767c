//! Facility location: the exact greedy maximisation of
//! `Σ_i max_{s ∈ S} (1 + cos(f_i, f_s))`, the selection that minimises
//! `eval`'s own mean coverage (k-medoids under cosine distance, with the
//! classic 1 − 1/e guarantee for the greedy).
//!
//! With `c_i` the best similarity of sample `i` to the selection (−1 before
//! the first pick), adding `j` gains `Σ_i max(0, cos(f_i, f_j) − c_i)`.
//! Gains only shrink as the selection grows, so an old gain bounds the new
//! one (the lazy greedy), and each pick recomputes only the leading
//! candidates: first an estimate (an upper bound, from the float32
//! product, or from 12-bit codes where the CPU multiplies them faster:
//! [`codes12`]), then, for the few that lead, the gain itself with float64
//! similarities ([`dot64`](crate::linalg::dot64)), so gains are a float64
//! greedy's to rounding; gains within [`TIE`] of the best are ties, which
//! go to the lowest id.
//!
//! The first estimate after a sample is served is a *full round*: every
//! candidate against the whole pool, which the lazy greedy would need
//! anyway there (similarities are symmetric, so each pair of tiles of the
//! pool is multiplied once and read both ways). On the way each sample
//! lists its [`LISTED`] most similar candidates. Once a sample's coverage
//! reaches the least similarity on its list it is *resolved*: no candidate
//! off its list can gain from it, so its part of every later gain is read
//! from the lists instead of from its row. Within a few hundred picks most
//! samples are resolved, and a gain costs a pass over the rest. The lists
//! also lower stale keys: a sample served better takes a known amount from
//! each candidate it lists.
//!
//! Memory is O(n · [`LISTED`]): no n × n matrix.
//!
//! - this file: the greedy (its heap of candidates, the picks, and
//!   `--partitions`);
//! - `coverage`: the greedy's state, the estimates and the exact gains;
//! - `full_round`: the first estimate after a sample is served;
//! - `lists`: each sample's most similar candidates;
//! - `above`: the estimates' sums over samples.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::time::Instant;

use ndarray::{Array2, ArrayView2, Axis};
use rayon::prelude::*;

mod above;
mod coverage;
mod full_round;
mod lists;

use coverage::Coverage;
use lists::LISTED;

use super::{Outcome, Round, kmeans};
use crate::error::Result;
use crate::linalg::codes12;
use crate::linalg::row;
use crate::nearest::Work;

/// Gains this close to the best (relative) are ties, decided by id.
pub const TIE: f64 = 1e-12;
/// Candidates recomputed together (in parallel) when none is current.
const BATCH: usize = 64;
// The full round's strips of BATCH candidates are single panels when coded.
const _: () = assert!(BATCH == codes12::PANEL);
/// The same where the estimates go through 12-bit codes: each batch codes
/// the unresolved rows again, so more candidates share that pass, at the
/// price of estimating some that a smaller batch would have left stale.
const CODED_BATCH: usize = 256;
/// Rows of the pool per parallel tile (consecutive groups): large enough
/// for the matrix product to run near its best rate.
const TILE_ROWS: usize = 512;
/// Fewer rows than this are scored by plain dot products.
const FEW: usize = 4;
/// Pools from this many samples estimate through 12-bit codes where the
/// CPU makes them cheap ([`codes12::codes_are_fast`]). Smaller ones keep
/// float32 estimates, so their work counters (the regression check's
/// pools) are the same on every CPU.
const CODED_FROM: usize = 4096;
/// Lloyd iterations for `--partitions`: at ImageNet scale k-means does not
/// settle in 100, and the parts only have to be compact, not optimal.
const PARTITION_STEPS: usize = 10;

/// How well a candidate's gain is known at the current pick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Known {
    /// `key` bounds the gain from above (from an earlier pick).
    Stale,
    /// `key` bounds it from above by an estimate.
    Estimated,
    /// `key` is the gain.
    Exact,
}

/// A candidate in the heap: the largest key first, then the lowest id.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    key: f64,
    id: u32,
    /// The pick `known` refers to; an older one makes it stale.
    stamp: u32,
    known: Known,
}

impl Candidate {
    fn known(&self, stamp: u32) -> Known {
        if self.stamp == stamp { self.known } else { Known::Stale }
    }
}

impl PartialEq for Candidate {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Candidate {}
impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Candidate {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key.total_cmp(&other.key).then(other.id.cmp(&self.id))
    }
}

/// The exact greedy: `k` picks after `round` (labeled samples start in the
/// selection; taken ones are never picked). `on_pick(i, objective)` follows
/// the picks; the outcome's `losses` are the objective after each pick.
pub fn select(
    features: ArrayView2<f32>,
    k: usize,
    round: &Round,
    mut on_pick: impl FnMut(usize, f64),
) -> Result<Outcome> {
    let start = Instant::now();
    let run = greedy(features, k, round, &mut on_pick)?;
    let work = run.work();
    Ok(Outcome::new(run.picks, Vec::new(), run.objective, start.elapsed().as_secs_f64(), 0.0, work))
}

/// `--partitions`: the pool split by k-means into `parts` parts, each
/// given a share of the budget by its size ([`shares`]), and the exact
/// greedy run inside each part: an approximation (a sample is served only
/// within its part) for pools where the exact greedy is too slow. The
/// objective after each pick counts each sample as served within its part.
pub fn select_by_parts(
    features: &mut Array2<f32>,
    k: usize,
    parts: usize,
    round: &Round,
    rng: &mut rand::rngs::Xoshiro256PlusPlus,
    mut on_pick: impl FnMut(usize, f64),
) -> Result<Outcome> {
    let start = Instant::now();
    let part_of = kmeans::clusters_within(features, parts, PARTITION_STEPS, rng)?;
    let mut members = vec![Vec::new(); parts];
    for (i, &p) in part_of.iter().enumerate() {
        members[p].push(i);
    }
    let sizes: Vec<usize> = members.iter().map(Vec::len).collect();
    let room: Vec<usize> = members.iter().map(|m| m.iter().filter(|&&i| !round.taken[i]).count()).collect();
    let allotted = shares(k, &sizes, &room);
    let mut is_labeled = vec![false; features.nrows()];
    for &i in &round.labeled {
        is_labeled[i] = true;
    }
    let mut part_objective = vec![0.0; parts];
    let (mut picks, mut objective, mut work) = (Vec::with_capacity(k), Vec::with_capacity(k), Work::default());
    for (p, ids) in members.iter().enumerate() {
        if allotted[p] == 0 {
            continue;
        }
        let local = features.select(Axis(0), ids);
        let local_round = Round {
            labeled: (0..ids.len()).filter(|&l| is_labeled[ids[l]]).collect(),
            taken: ids.iter().map(|&i| round.taken[i]).collect(),
        };
        let run = greedy(local.view(), allotted[p], &local_round, &mut |_, _| {})?;
        for (&pick, &value) in run.picks.iter().zip(&run.objective) {
            picks.push(members[p][pick]);
            part_objective[p] = value;
            objective.push(part_objective.iter().sum());
            on_pick(picks.len() - 1, objective[picks.len() - 1]);
        }
        work += run.work();
    }
    Ok(Outcome::new(picks, Vec::new(), objective, start.elapsed().as_secs_f64(), 0.0, work))
}

/// The budget `k` split over parts of `sizes` in proportion to their size:
/// each gets the floor of its exact share, then the remainder goes one at a
/// time to the part with the smallest allocation (ties: the larger exact
/// share, then the lower index); no part gets more than its `room`, the
/// excess going to parts with room, largest share first. Needs `k ≤ Σ room`.
pub fn shares(k: usize, sizes: &[usize], room: &[usize]) -> Vec<usize> {
    let n: usize = sizes.iter().sum();
    // Exact integer arithmetic: part p's share is k·size/n, as a floor and a remainder.
    let mut allotted: Vec<usize> = sizes.iter().map(|&s| (k as u128 * s as u128 / n.max(1) as u128) as usize).collect();
    let larger_share = |a: usize, b: usize| (k as u128 * sizes[a] as u128).cmp(&(k as u128 * sizes[b] as u128));
    let mut left = k - allotted.iter().sum::<usize>();
    while left > 0 {
        let p = (0..sizes.len())
            .filter(|&p| allotted[p] < room[p])
            .min_by(|&a, &b| allotted[a].cmp(&allotted[b]).then(larger_share(b, a)).then(a.cmp(&b)))
            .expect("the budget fits in the room");
        allotted[p] += 1;
        left -= 1;
    }
    // Over-full parts give their excess to parts with room, largest share first.
    let mut excess = 0;
    for (a, &r) in allotted.iter_mut().zip(room) {
        excess += a.saturating_sub(r);
        *a = (*a).min(r);
    }
    let mut order: Vec<usize> = (0..sizes.len()).collect();
    order.sort_by(|&a, &b| larger_share(b, a).then(a.cmp(&b)));
    while excess > 0 {
        let p = *order.iter().find(|&&p| allotted[p] < room[p]).expect("the budget fits in the room");
        allotted[p] += 1;
        excess -= 1;
    }
    allotted
}

/// What the greedy did.
struct Run {
    picks: Vec<usize>,
    /// The objective after each pick.
    objective: Vec<f64>,
    /// Gains estimated in float32, and computed exactly.
    estimated: u64,
    gains: u64,
    /// Similarities computed in float64.
    exact: u64,
}

impl Run {
    /// The counters as the report names them: gains estimated or computed
    /// count as full scans, float64 similarities as rescores.
    fn work(&self) -> Work {
        Work { full_scans: self.estimated + self.gains, rescored: self.exact }
    }
}

fn greedy(features: ArrayView2<f32>, k: usize, round: &Round, on_pick: &mut impl FnMut(usize, f64)) -> Result<Run> {
    let coded = codes12::codes_are_fast() && features.nrows() >= CODED_FROM;
    greedy_listing(features, k, round, Listing { width: LISTED, tile: TILE_ROWS, coded }, on_pick)
}

/// How the greedy estimates: `width` candidates listed per sample,
/// full-round tiles of `tile` samples, and 12-bit codes or float32 (tests
/// vary all three).
struct Listing {
    width: usize,
    tile: usize,
    coded: bool,
}

/// [`greedy`] estimating as `listing` says.
fn greedy_listing(
    features: ArrayView2<f32>,
    k: usize,
    round: &Round,
    listing: Listing,
    on_pick: &mut impl FnMut(usize, f64),
) -> Result<Run> {
    let mut coverage = Coverage::new(features, listing.width, listing.tile, listing.coded);
    coverage.add(&round.labeled);
    let mut heap = initial_bounds(features, round);
    let mut picks = Vec::with_capacity(k);
    let mut objective = Vec::with_capacity(k);
    while picks.len() < k {
        let pick = next_pick(&mut heap, &mut coverage, picks.len() as u32)?;
        coverage.add(&[pick]);
        coverage.lower(&mut heap);
        picks.push(pick);
        objective.push(coverage.objective());
        on_pick(picks.len() - 1, objective[picks.len() - 1]);
    }
    Ok(Run { picks, objective, estimated: coverage.estimated, gains: coverage.gains, exact: coverage.exact })
}

/// Every candidate's gain before any pick, `Σ_i (1 + cos(f_i, f_j)) = n +
/// f_j · Σ_i f_i`: a bound on every later gain, with no n × n work.
fn initial_bounds(features: ArrayView2<f32>, round: &Round) -> BinaryHeap<Candidate> {
    let n = features.nrows();
    let mut total = vec![0.0f64; features.ncols()];
    for f in features.rows() {
        crate::linalg::add_scaled(&mut total, 1.0, f.as_slice().expect("contiguous rows"));
    }
    round
        .eligible()
        .into_par_iter()
        .map(|j| {
            let dot: f64 = row(features, j).iter().zip(&total).map(|(&a, &b)| f64::from(a) * b).sum();
            // Rounding of the sum over n samples, generously.
            let gain = (n as f64 + dot) * (1.0 + 1e-9) + 1e-9;
            Candidate { key: gain, id: j as u32, stamp: u32::MAX, known: Known::Stale }
        })
        .collect::<Vec<_>>()
        .into()
}

/// The pick at selection size `stamp`: makes the leading candidates'
/// gains known well enough that the best exact gain, and every candidate
/// that could tie with it (within [`TIE`]), is certain; the lowest id among
/// the ties wins.
fn next_pick(heap: &mut BinaryHeap<Candidate>, coverage: &mut Coverage, stamp: u32) -> Result<usize> {
    loop {
        let top = *heap.peek().expect("the budget fits in the candidates");
        if top.known(stamp) == Known::Stale && coverage.wants_full_round() {
            let mut all = std::mem::take(heap).into_vec();
            all.sort_by_key(|c| c.id);
            let ids: Vec<usize> = all.iter().map(|c| c.id as usize).collect();
            let estimates = coverage.full_round(&ids)?;
            for (c, high) in all.into_iter().zip(estimates) {
                heap.push(if c.known(stamp) == Known::Stale { coverage.estimated(c, high, stamp) } else { c });
            }
            continue;
        }
        let pending = match top.known(stamp) {
            Known::Stale => {
                let batch = coverage.batch();
                pop_while(heap, |c, taken| c.known(stamp) == Known::Stale && taken < batch)
            }
            Known::Estimated => vec![heap.pop().expect("peeked")],
            Known::Exact => {
                let n = coverage.best.len() as f64;
                let threshold = top.key - TIE * top.key.abs().max(1.0 / n);
                let leaders = pop_while(heap, |c, _| c.key >= threshold);
                if leaders.iter().all(|c| c.known(stamp) == Known::Exact) {
                    let chosen = leaders.iter().map(|c| c.id).min().expect("the top leads");
                    heap.extend(leaders.into_iter().filter(|c| c.id != chosen));
                    return Ok(chosen as usize);
                }
                leaders
            }
        };
        // Stale ones get estimates; estimated ones, exact gains.
        let mut stale = Vec::new();
        for c in pending {
            match c.known(stamp) {
                Known::Exact => heap.push(c),
                Known::Estimated => {
                    let key = coverage.exact_gain(c.id as usize);
                    heap.push(Candidate { key, id: c.id, stamp, known: Known::Exact });
                }
                Known::Stale => stale.push(c),
            }
        }
        let ids: Vec<usize> = stale.iter().map(|c| c.id as usize).collect();
        for (c, high) in stale.into_iter().zip(coverage.estimate(&ids)) {
            heap.push(coverage.estimated(c, high, stamp));
        }
    }
}

/// Pops the leading candidates while `take(candidate, popped so far)`.
fn pop_while(heap: &mut BinaryHeap<Candidate>, take: impl Fn(&Candidate, usize) -> bool) -> Vec<Candidate> {
    let mut popped = Vec::new();
    while let Some(c) = heap.peek() {
        if !take(c, popped.len()) {
            break;
        }
        popped.push(heap.pop().expect("peeked"));
    }
    popped
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::unit_rows;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand::rngs::Xoshiro256PlusPlus;

    fn literal(f: &Array2<f32>, k: usize, round: &Round) -> Vec<usize> {
        let f = f.mapv(f64::from);
        let n = f.nrows();
        let sim = |i: usize, j: usize| f.row(i).dot(&f.row(j));
        let mut cur = vec![0.0f64; n];
        let serve = |cur: &mut Vec<f64>, j: usize| {
            for (i, c) in cur.iter_mut().enumerate() {
                *c = c.max(1.0 + sim(i, j));
            }
        };
        for &l in &round.labeled {
            serve(&mut cur, l);
        }
        let mut picks = Vec::new();
        while picks.len() < k {
            let gains: Vec<Option<f64>> = (0..n)
                .map(|j| {
                    (!round.taken[j] && !picks.contains(&j))
                        .then(|| (0..n).map(|i| (1.0 + sim(i, j) - cur[i]).max(0.0)).sum::<f64>())
                })
                .collect();
            let best = gains.iter().flatten().fold(f64::NEG_INFINITY, |a, &b| a.max(b));
            let threshold = best - TIE * best.abs().max(1.0 / n as f64);
            let j = (0..n).find(|&j| gains[j].is_some_and(|g| g >= threshold)).unwrap();
            serve(&mut cur, j);
            picks.push(j);
        }
        picks
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn picks_equal_the_literal_greedy(
            n in 2usize..160, d in 1usize..12, k_frac in 0.0f64..0.6, grid in proptest::option::of(1i32..3),
            labeled_every in 0usize..9, excluded_every in 0usize..7, seed in 0u64..1000,
            width in proptest::sample::select(vec![1usize, 2, 5, LISTED]),
            tile in proptest::sample::select(vec![1usize, 7, 70, TILE_ROWS]), coded: bool,
        ) {
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
            let f = unit_rows(n, d, &mut rng, grid);
            let round = crate::testing::round_every(n, labeled_every, excluded_every);
            let left = round.left();
            prop_assume!(left > 0);
            let k = ((left as f64 * k_frac) as usize).clamp(1, left);
            let run = greedy_listing(f.view(), k, &round, Listing { width, tile, coded }, &mut |_, _| {}).unwrap();
            prop_assert_eq!(&run.picks, &literal(&f, k, &round));
            prop_assert!(run.objective.windows(2).all(|w| w[1] >= w[0] - 1e-9));
        }
    }

    #[test]
    fn the_first_pick_is_the_most_central_sample() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
        let f = unit_rows(500, 6, &mut rng, None);
        let run = greedy(f.view(), 3, &Round::first(500), &mut |_, _| {}).unwrap();
        assert_eq!(run.picks[..1], literal(&f, 1, &Round::first(500))[..]);
        // Picking everything covers everything: the objective is 2n.
        let all = greedy(f.view(), 500, &Round::first(500), &mut |_, _| {}).unwrap().objective;
        // Each sample then serves itself: 1 + |f_i|², and float32 unit rows are unit to 1e-7.
        assert!((all[499] - 1000.0).abs() < 1e-4, "{}", all[499]);
        assert!(run.objective[2] < all[499]);
    }

    #[test]
    fn shares_follow_sizes_floors_remainders_and_room() {
        // Exact shares 2, 1.2, 0.8: floors 2, 1, 0; the one left goes to the smallest allocation.
        assert_eq!(shares(4, &[5, 3, 2], &[5, 3, 2]), vec![2, 1, 1]);
        // Equal allocations: the larger share wins the remainder, then the lower index.
        assert_eq!(shares(3, &[4, 6, 4], &[4, 6, 4]), vec![1, 1, 1]);
        assert_eq!(shares(2, &[4, 4, 4], &[4, 4, 4]), vec![1, 1, 0]);
        // No room: the remainder goes elsewhere.
        assert_eq!(shares(3, &[10, 1], &[10, 0]), vec![3, 0]);
        // More than the room: the excess moves to parts with room, largest share first.
        assert_eq!(shares(10, &[10, 10, 5], &[1, 10, 5]), vec![1, 7, 2]);
        for (k, sizes) in [(7usize, vec![3usize, 9, 1, 20]), (50, vec![17, 1, 1, 1, 30])] {
            let got = shares(k, &sizes, &sizes);
            assert_eq!(got.iter().sum::<usize>(), k);
            assert!(got.iter().zip(&sizes).all(|(g, s)| g <= s));
        }
    }

    #[test]
    fn one_part_is_the_exact_greedy_and_parts_pick_within_their_room() {
        let f = crate::testing::clustered(400, 6, 5, 0.3, false, 2);
        let mut round = Round::first(400);
        round.labeled = vec![3, 77];
        for i in [3, 77, 10, 11, 12] {
            round.taken[i] = true;
        }
        let exact = greedy(f.view(), 25, &round, &mut |_, _| {}).unwrap();
        let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(1);
        let one = select_by_parts(&mut f.clone(), 25, 1, &round, &mut rng, |_, _| {}).unwrap();
        assert_eq!(one.picks, exact.picks);
        let mut pool = f.clone();
        let parts = select_by_parts(&mut pool, 25, 5, &round, &mut rng, |_, _| {}).unwrap();
        assert_eq!(pool, f, "the pool is back in order");
        assert_eq!(parts.selected.len(), 25);
        assert!(parts.selected.windows(2).all(|w| w[0] < w[1]));
        assert!(parts.selected.iter().all(|&i| !round.taken[i]));
        // Within parts the objective can only be lower than the exact greedy's.
        assert!(parts.losses[24] <= exact.objective[24] + 1e-6);
    }
}
