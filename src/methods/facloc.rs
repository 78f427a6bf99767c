//! Facility location: the exact greedy maximisation of
//! `Σ_i max_{s ∈ S} (1 + cos(f_i, f_s))`, the selection that minimises
//! `eval`'s own mean coverage (k-medoids under cosine distance, with the
//! classic 1 − 1/e guarantee for the greedy).
//!
//! With `c_i` the best similarity of sample `i` to the selection (−1 before
//! the first pick), adding `j` gains `Σ_i max(0, cos(f_i, f_j) − c_i)`.
//! Gains only shrink as the selection grows, so an old gain bounds the new
//! one (the lazy greedy), and each pick recomputes only the leading
//! candidates, in parallel batches. A gain needs only the samples `j`
//! could serve better: the pool is grouped around k-means centres, and the
//! triangle inequality on the sphere (`cos(f_i, f_j) ≤ cos(θ(j, μ) − θ(i,
//! μ))`) rules out whole groups and then single samples before any
//! similarity is computed. The rest are computed in float64 ([`dot64`]),
//! so gains are a float64 greedy's to rounding; gains within [`TIE`] of the
//! best are ties, which go to the lowest id. Memory is O(n): no n × n
//! matrix, no similarity kept.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::ops::Range;
use std::time::Instant;

use ndarray::{Array2, ArrayView2, Axis};
use rayon::prelude::*;

use super::{Outcome, Round, kmeans};
use crate::error::Result;
use crate::linalg::{Packed, dot_error_bound, dot64, gemm_nt};
use crate::nearest::{Work, grouped_order, permute_rows};

/// Gains this close to the best (relative) are ties, decided by id.
pub const TIE: f64 = 1e-12;
/// Candidates recomputed together (in parallel) when none is current.
const BATCH: usize = 64;
/// Rows of the pool per parallel tile (consecutive groups): large enough
/// for the matrix product to run near its best rate.
const TILE_ROWS: usize = 512;
/// Fewer rows than this are scored by plain dot products.
const FEW: usize = 4;
/// Lloyd iterations for `--partitions`: at ImageNet scale k-means does not
/// settle in 100, and the parts only have to be compact, not optimal.
const PARTITION_STEPS: usize = 10;
/// Lloyd iterations for the grouping: it only has to make groups tight.
const GROUPING_STEPS: usize = 5;
/// Slack for rounding in the bounds: float32 unit rows are unit only to
/// about 1e-7, and the trigonometry rounds too.
const SLACK: f64 = 1e-6;

/// How well a candidate's gain is known at the current pick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Known {
    /// `key` bounds the gain from above (from an earlier pick).
    Stale,
    /// `key` bounds it from above by a float32 estimate.
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

/// The pool grouped around k-means centres and stored group by group.
struct Groups {
    ranges: Vec<Range<usize>>,
    centres: Array2<f32>,
    /// An upper bound on the angle of a member to its centre.
    radius: Vec<f64>,
    /// Runs of consecutive groups of about [`TILE_ROWS`] rows.
    tiles: Vec<Range<usize>>,
}

impl Groups {
    /// About 2√n groups; rearranges `features` group by group and returns
    /// the arrangement (`from[p]`: the sample now at position `p`).
    fn build(features: &mut Array2<f32>, error: f64) -> Result<(Groups, Vec<usize>)> {
        let n = features.nrows();
        let count = ((2.0 * (n as f64).sqrt()).ceil() as usize).clamp(1, n);
        let (centres, nearest) = kmeans::grouping(features, count, GROUPING_STEPS)?;
        let key: Vec<u32> = nearest.point.iter().map(|&p| p as u32).collect();
        let from = grouped_order(&key, count);
        permute_rows(features, &from);
        let angle: Vec<f64> = from.iter().map(|&i| (nearest.similarity[i] - error).clamp(-1.0, 1.0).acos()).collect();
        let mut ranges = Vec::with_capacity(count);
        let mut radius = vec![0.0f64; count];
        let mut start = 0;
        let mut sizes = vec![0usize; count];
        for &k in &key {
            sizes[k as usize] += 1;
        }
        for (g, &size) in sizes.iter().enumerate() {
            radius[g] = angle[start..start + size].iter().copied().fold(0.0, f64::max);
            ranges.push(start..start + size);
            start += size;
        }
        let mut tiles = Vec::new();
        let mut first = 0;
        for g in 0..count {
            if ranges[g].end - ranges[first].start >= TILE_ROWS || g + 1 == count {
                tiles.push(first..g + 1);
                first = g + 1;
            }
        }
        Ok((Groups { ranges, centres, radius, tiles }, from))
    }
}

/// The greedy's state over the grouped pool: each sample's best
/// similarity to the selection, and each group's lowest.
struct Coverage<'a> {
    features: ArrayView2<'a, f32>,
    groups: Groups,
    best: Vec<f64>,
    lowest: Vec<f64>,
    /// The float32 product's error bound for one similarity.
    error: f64,
    /// Similarities computed in float64 so far.
    exact: u64,
    /// Exact gains computed so far.
    gains: u64,
    /// Candidates estimated so far.
    estimated: u64,
}

impl<'a> Coverage<'a> {
    fn new(features: ArrayView2<'a, f32>, groups: Groups, error: f64) -> Self {
        let lowest = vec![-1.0; groups.ranges.len()];
        Coverage {
            features,
            groups,
            best: vec![-1.0; features.nrows()],
            lowest,
            error,
            exact: 0,
            gains: 0,
            estimated: 0,
        }
    }

    /// The objective: `Σ_i (1 + c_i)`, in fixed chunks.
    fn objective(&self) -> f64 {
        let terms: Vec<f64> = self.best.iter().map(|c| 1.0 + c).collect();
        crate::chunks::sum(&terms)
    }

    /// For each tile of groups (in parallel, returned in tile order),
    /// `visit(the tile's rows of the pool, the rows of `rows` that may
    /// improve one of them, their float32 scores against those rows)`. A
    /// group is closed to a row when the triangle inequality on the sphere,
    /// `cos(f_i, f) ≤ cos(θ(f, μ) − r)` for members within angle `r` of the
    /// centre `μ`, leaves no member a similarity above the group's lowest
    /// best; a tile, when all its groups are.
    fn per_tile<T: Send>(
        &self,
        rows: ArrayView2<f32>,
        visit: impl Fn(Range<usize>, &[usize], ArrayView2<f32>) -> T + Sync,
    ) -> Vec<T> {
        let g = &self.groups;
        let mut to_centres = Array2::<f32>::zeros((rows.nrows(), g.centres.nrows()));
        gemm_nt(rows, g.centres.view(), &mut to_centres.view_mut());
        let open_to = |b: usize, group: usize| {
            let apart = (f64::from(to_centres[[b, group]]) + self.error).clamp(-1.0, 1.0).acos();
            apart <= g.radius[group] || (apart - g.radius[group]).cos() + SLACK > self.lowest[group]
        };
        let all = (rows.nrows() >= FEW).then(|| Packed::new(rows));
        g.tiles
            .par_iter()
            .map(|groups| {
                let range = g.ranges[groups.start].start..g.ranges[groups.end - 1].end;
                let open: Vec<usize> =
                    (0..rows.nrows()).filter(|&b| groups.clone().any(|group| open_to(b, group))).collect();
                let block = self.features.slice(ndarray::s![range.clone(), ..]);
                let scores = scores(block, rows, &open, all.as_ref());
                visit(range, &open, scores.view())
            })
            .collect()
    }

    /// Upper bounds on the gains of the candidates at `positions`, from
    /// float32 estimates.
    fn estimate(&mut self, positions: &[usize]) -> Vec<f64> {
        self.estimated += positions.len() as u64;
        positions.chunks(BATCH).flat_map(|batch| self.estimate_batch(batch)).collect()
    }

    fn estimate_batch(&self, positions: &[usize]) -> Vec<f64> {
        let rows = self.features.select(Axis(0), positions);
        let error = self.error;
        let per_tile = self.per_tile(rows.view(), |range, open, scores| {
            let (mut sum, mut count) = (vec![0.0f64; open.len()], vec![0u64; open.len()]);
            for (&c, scores) in self.best[range].iter().zip(scores.rows()) {
                for ((sum, count), &s) in sum.iter_mut().zip(&mut count).zip(scores) {
                    // An exact similarity more than `error` below the estimate cannot beat c.
                    let above = f64::from(s) - c;
                    *sum += above.max(0.0);
                    *count += u64::from(above > -error);
                }
            }
            (open.to_vec(), sum, count)
        });
        let mut sums = vec![(0.0f64, 0u64); positions.len()];
        for (open, sum, count) in per_tile {
            for (b, (sum, count)) in open.into_iter().zip(sum.into_iter().zip(count)) {
                sums[b].0 += sum;
                sums[b].1 += count;
            }
        }
        // max(0, x − c) moves by at most as much as x does.
        sums.into_iter().map(|(sum, count)| sum + count as f64 * error * 1.001).collect()
    }

    /// The exact gain of the candidate at `position`: float64 similarities
    /// for every sample the float32 filter cannot rule out.
    fn exact_gain(&mut self, position: usize) -> f64 {
        let rows = self.features.select(Axis(0), &[position]);
        let f = row(self.features, position);
        let error = self.error;
        let per_tile = self.per_tile(rows.view(), |range, open, scores| {
            let (mut sum, mut exact) = (0.0, 0u64);
            if !open.is_empty() {
                for (r, &c) in self.best[range.clone()].iter().enumerate() {
                    if f64::from(scores[[r, 0]]) + error > c {
                        exact += 1;
                        sum += (dot64(row(self.features, range.start + r), f) - c).max(0.0);
                    }
                }
            }
            (sum, exact)
        });
        self.gains += 1;
        let mut gain = 0.0;
        for (sum, exact) in per_tile {
            gain += sum;
            self.exact += exact;
        }
        gain
    }

    /// Takes the samples at `positions` into the selection.
    fn add(&mut self, positions: &[usize]) {
        if positions.is_empty() {
            return;
        }
        let rows = self.features.select(Axis(0), positions);
        let error = self.error;
        let updates = self.per_tile(rows.view(), |range, open, scores| {
            let mut exact = 0u64;
            let mut improved = Vec::new();
            for (r, &c) in self.best[range.clone()].iter().enumerate() {
                let mut best = c;
                for (o, &s) in scores.row(r).iter().enumerate() {
                    if f64::from(s) + error > best {
                        exact += 1;
                        best = best.max(dot64(row(self.features, range.start + r), row(rows.view(), open[o])));
                    }
                }
                if best > c {
                    improved.push((range.start + r, best));
                }
            }
            (improved, exact)
        });
        for (tile, (improved, exact)) in updates.into_iter().enumerate() {
            self.exact += exact;
            if improved.is_empty() {
                continue;
            }
            for (p, best) in improved {
                self.best[p] = best;
            }
            for group in self.groups.tiles[tile].clone() {
                let range = self.groups.ranges[group].clone();
                self.lowest[group] = self.best[range].iter().copied().fold(f64::INFINITY, f64::min);
            }
        }
    }
}

/// The float32 scores of `block`'s rows against the `open` rows of `rows`:
/// one product for many rows, plain dot products for a few (a product
/// would copy the whole block to score them).
/// `all` is `rows` packed, if they are many.
fn scores(block: ArrayView2<f32>, rows: ArrayView2<f32>, open: &[usize], all: Option<&Packed>) -> Array2<f32> {
    let mut scores = Array2::<f32>::zeros((block.nrows(), open.len()));
    if open.len() < FEW {
        for (r, mut out) in scores.axis_iter_mut(Axis(0)).enumerate() {
            for (o, &b) in open.iter().enumerate() {
                out[o] = crate::linalg::dot(row(block, r), row(rows, b));
            }
        }
    } else if let Some(all) = all.filter(|all| all.len() == open.len()) {
        all.product(block, &mut scores.view_mut());
    } else {
        Packed::new(rows.select(Axis(0), open).view()).product(block, &mut scores.view_mut());
    }
    scores
}

fn row<'a>(a: ArrayView2<'a, f32>, i: usize) -> &'a [f32] {
    a.index_axis_move(Axis(0), i).to_slice().expect("rows are contiguous")
}

/// The exact greedy: `k` picks after `round` (labeled samples start in the
/// selection; taken ones are never picked). `on_pick(i, objective)` follows
/// the picks; the outcome's `losses` are the objective after each pick. The
/// rows of `features` are grouped in memory while it runs and put back.
pub fn select(
    features: &mut Array2<f32>,
    k: usize,
    round: &Round,
    mut on_pick: impl FnMut(usize, f64),
) -> Result<Outcome> {
    let start = Instant::now();
    let run = greedy(features, k, round, &mut on_pick)?;
    let work = Work { full_scans: run.estimated + run.gains, rescored: run.exact };
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
        let mut local = features.select(Axis(0), ids);
        let local_round = Round {
            labeled: (0..ids.len()).filter(|&l| is_labeled[ids[l]]).collect(),
            taken: ids.iter().map(|&i| round.taken[i]).collect(),
        };
        let run = greedy(&mut local, allotted[p], &local_round, &mut |_, _| {})?;
        for (&pick, &value) in run.picks.iter().zip(&run.objective) {
            picks.push(members[p][pick]);
            part_objective[p] = value;
            objective.push(part_objective.iter().sum());
            on_pick(picks.len() - 1, objective[picks.len() - 1]);
        }
        work.full_scans += run.estimated + run.gains;
        work.rescored += run.exact;
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

fn greedy(features: &mut Array2<f32>, k: usize, round: &Round, on_pick: &mut impl FnMut(usize, f64)) -> Result<Run> {
    let n = features.nrows();
    let error = f64::from(dot_error_bound(features.ncols()));
    let (groups, from) = Groups::build(features, error)?;
    let mut position = vec![0; n];
    for (p, &id) in from.iter().enumerate() {
        position[id] = p;
    }
    let run = {
        let mut coverage = Coverage::new(features.view(), groups, error);
        let labeled: Vec<usize> = round.labeled.iter().map(|&id| position[id]).collect();
        coverage.add(&labeled);
        let mut heap = initial_bounds(features.view(), &position, round);
        let mut picks = Vec::with_capacity(k);
        let mut objective = Vec::with_capacity(k);
        while picks.len() < k {
            let pick = next_pick(&mut heap, &mut coverage, &position, picks.len() as u32);
            coverage.add(&[position[pick]]);
            picks.push(pick);
            objective.push(coverage.objective());
            on_pick(picks.len() - 1, objective[picks.len() - 1]);
        }
        Run { picks, objective, estimated: coverage.estimated, gains: coverage.gains, exact: coverage.exact }
    };
    permute_rows(features, &position);
    Ok(run)
}

/// Every candidate's gain before any pick, `Σ_i (1 + cos(f_i, f_j)) = n +
/// f_j · Σ_i f_i`: a bound on every later gain, with no n × n work.
/// `features` are grouped: sample `j` is at `position[j]`.
fn initial_bounds(features: ArrayView2<f32>, position: &[usize], round: &Round) -> BinaryHeap<Candidate> {
    let n = features.nrows();
    let mut total = vec![0.0f64; features.ncols()];
    for f in features.rows() {
        crate::linalg::add_scaled(&mut total, 1.0, f.as_slice().expect("contiguous rows"));
    }
    round
        .eligible()
        .into_par_iter()
        .map(|j| {
            let dot: f64 = row(features, position[j]).iter().zip(&total).map(|(&a, &b)| f64::from(a) * b).sum();
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
fn next_pick(heap: &mut BinaryHeap<Candidate>, coverage: &mut Coverage, position: &[usize], stamp: u32) -> usize {
    loop {
        let top = *heap.peek().expect("the budget fits in the candidates");
        let pending = match top.known(stamp) {
            Known::Stale => pop_while(heap, |c, taken| c.known(stamp) == Known::Stale && taken < BATCH),
            Known::Estimated => vec![heap.pop().expect("peeked")],
            Known::Exact => {
                let n = coverage.best.len() as f64;
                let threshold = top.key - TIE * top.key.abs().max(1.0 / n);
                let leaders = pop_while(heap, |c, _| c.key >= threshold);
                if leaders.iter().all(|c| c.known(stamp) == Known::Exact) {
                    let chosen = leaders.iter().map(|c| c.id).min().expect("the top leads");
                    heap.extend(leaders.into_iter().filter(|c| c.id != chosen));
                    return chosen as usize;
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
                    let key = coverage.exact_gain(position[c.id as usize]);
                    heap.push(Candidate { key, id: c.id, stamp, known: Known::Exact });
                }
                Known::Stale => stale.push(c),
            }
        }
        let positions: Vec<usize> = stale.iter().map(|c| position[c.id as usize]).collect();
        for (c, high) in stale.iter().zip(coverage.estimate(&positions)) {
            // Nothing can be gained: the gain is exactly 0.
            let candidate = if high <= 0.0 {
                Candidate { key: 0.0, id: c.id, stamp, known: Known::Exact }
            } else {
                Candidate { key: high.min(c.key), id: c.id, stamp, known: Known::Estimated }
            };
            heap.push(candidate);
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

    /// The greedy written out literally in float64: every gain of every
    /// candidate at every step, ties within TIE to the lowest id.
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
        ) {
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
            let f = unit_rows(n, d, &mut rng, grid);
            let round = crate::testing::round_every(n, labeled_every, excluded_every);
            let left = round.eligible().len();
            prop_assume!(left > 0);
            let k = ((left as f64 * k_frac) as usize).clamp(1, left);
            let run = greedy(&mut f.clone(), k, &round, &mut |_, _| {}).unwrap();
            prop_assert_eq!(&run.picks, &literal(&f, k, &round));
            prop_assert!(run.objective.windows(2).all(|w| w[1] >= w[0] - 1e-9));
        }
    }

    #[test]
    fn the_first_pick_is_the_most_central_sample() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
        let f = unit_rows(500, 6, &mut rng, None);
        let run = greedy(&mut f.clone(), 3, &Round::first(500), &mut |_, _| {}).unwrap();
        assert_eq!(run.picks[..1], literal(&f, 1, &Round::first(500))[..]);
        // Picking everything covers everything: the objective is 2n.
        let all = greedy(&mut f.clone(), 500, &Round::first(500), &mut |_, _| {}).unwrap().objective;
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
        let exact = greedy(&mut f.clone(), 25, &round, &mut |_, _| {}).unwrap();
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
