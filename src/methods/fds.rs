//! Farthest-point sampling (the paper's FDS and the CoreSet / k-center
//! greedy baseline): start from the labeled samples, or a seeded random
//! one, then repeatedly add the sample least similar to everything so far.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use ndarray::{Array2, ArrayView2, s};
use rand::RngExt;
use rand::rngs::Xoshiro256PlusPlus;
use rayon::prelude::*;

use super::Round;
use crate::comm::{Comm, Part};
use crate::linalg::{Packed, dot, dot_error_bound, row};
use crate::nearest::Work;

/// Samples per block: small enough that a block's least similarity stays
/// clear of the pick's for many picks, large enough for the product.
const BLOCK: usize = 64;
/// Stale blocks brought up to date together, in parallel.
const TOGETHER: usize = 4;

/// A (similarity, local row) pair, ordered by similarity, then row: the
/// least one is the farthest sample, ties to the lowest id.
type Least = (f32, usize);

/// The least of a block with no sample left to pick.
const NONE_LEFT: Least = (f32::INFINITY, usize::MAX);

fn nearer(a: &Least, b: &Least) -> Ordering {
    a.0.total_cmp(&b.0).then(a.1.cmp(&b.1))
}

/// A run of consecutive samples, brought up to date with the picks only
/// when its least similarity could be the farthest sample's.
struct Block {
    /// Its first local row.
    start: usize,
    /// Each sample's similarity to its nearest pick among the first
    /// `applied` (`dot`): −∞ before any pick, +∞ for taken or picked ones.
    similarity: Vec<f32>,
    /// How many picks the similarities take in.
    applied: usize,
    /// The least similarity with its row. Similarities only grow as picks
    /// are added, so this stays a lower bound on the block's least ever after.
    least: Least,
}

impl Block {
    /// A placeholder while a block is out being brought up to date.
    fn empty() -> Self {
        Block { start: 0, similarity: Vec::new(), applied: 0, least: NONE_LEFT }
    }

    fn new(start: usize, taken: &[bool]) -> Self {
        let similarity = taken.iter().map(|&t| if t { f32::INFINITY } else { f32::NEG_INFINITY }).collect();
        let mut block = Block { start, similarity, applied: 0, least: NONE_LEFT };
        block.find_least();
        block
    }

    fn find_least(&mut self) {
        let rows = self.similarity.iter().enumerate().map(|(r, &s)| (s, self.start + r));
        self.least = rows.min_by(nearer).unwrap_or(NONE_LEFT);
    }

    /// Takes in the picks after the first `applied` of `picks` (`packed`
    /// holds those); returns the samples brought up to date and the `dot`
    /// calls made. A float32 product screens each sample's new picks: only
    /// those that may beat both its similarity so far and the best new
    /// score are scored with `dot`, so the similarities are the literal
    /// rule's, bit for bit.
    fn catch_up(
        &mut self,
        rows: ArrayView2<f32>,
        picks: ArrayView2<f32>,
        packed: &Packed,
        gap: f64,
        wide: &mut Vec<f32>,
    ) -> Work {
        let new = picks.slice(s![self.applied.., ..]);
        debug_assert_eq!(packed.len(), new.nrows());
        self.applied = picks.nrows();
        packed.product_padded(rows, wide);
        let mut work = Work::default();
        for ((r, similarity), scores) in self.similarity.iter_mut().enumerate().zip(wide.chunks_exact(packed.stride()))
        {
            if *similarity == f32::INFINITY {
                continue;
            }
            work.full_scans += 1;
            let scores = &scores[..new.nrows()];
            let top = f64::from(scores.iter().copied().fold(f32::NEG_INFINITY, f32::max));
            for (p, &score) in scores.iter().enumerate() {
                // Within `gap` of `dot`, this pick can beat neither the
                // best new one nor the similarity so far.
                let score = f64::from(score);
                if score + 2.0 * gap < top || score + gap <= f64::from(*similarity) {
                    continue;
                }
                work.rescored += 1;
                *similarity = similarity.max(dot(row(rows, r), row(new, p)));
            }
        }
        self.find_least();
        work
    }

    fn mark_picked(&mut self, local: usize) {
        self.similarity[local - self.start] = f32::INFINITY;
        self.find_least();
    }
}

/// Farthest-point sampling under cosine distance: after `round`'s labeled
/// samples (the CoreSet setting), or else from a random first sample,
/// repeatedly the sample least similar to everything picked or labeled so
/// far (ties: lowest id), never one `round` marks as taken. Returns the `k`
/// new picks in order, and the work: samples brought up to date
/// (`full_scans`) and similarities scored with `dot` (`rescored`).
///
/// Similarities only grow as picks are added, so a block of samples whose
/// least similarity, however stale, is above the farthest sample's cannot
/// hold the next pick: it is brought up to date (with every pick it missed,
/// in one product) only when its least comes first. Most samples are read
/// a few times in all instead of once per pick. Memory beyond the features:
/// O(n + k·d).
pub fn farthest_point(
    features: ArrayView2<f32>,
    k: usize,
    round: &Round,
    rng: &mut Xoshiro256PlusPlus,
) -> (Vec<usize>, Work) {
    let comm = Comm::single();
    farthest_point_part(features, k, round, rng, &Part::whole(&comm, features.nrows()))
}

/// [`farthest_point`] over the ranks of `part.comm`, `features` being this
/// rank's rows: each rank proposes its farthest sample, and the least
/// similar proposal (ties: the lowest id) is the pick on every rank.
pub fn farthest_point_part(
    features: ArrayView2<f32>,
    k: usize,
    round: &Round,
    rng: &mut Xoshiro256PlusPlus,
    part: &Part,
) -> (Vec<usize>, Work) {
    farthest_point_blocks(features, k, round, rng, part, BLOCK)
}

/// [`farthest_point_part`] with blocks of `size` samples (tests vary it).
fn farthest_point_blocks(
    features: ArrayView2<f32>,
    k: usize,
    round: &Round,
    rng: &mut Xoshiro256PlusPlus,
    part: &Part,
    size: usize,
) -> (Vec<usize>, Work) {
    // The product and `dot` are each within the error bound of the exact value.
    let gap = 2.0 * f64::from(dot_error_bound(features.ncols()));
    let taken = &round.taken[part.first..part.first + part.rows];
    let mut blocks = Blocks::new(taken, size);
    let start = round.labeled.len();
    let mut picks = round.labeled.clone();
    if picks.is_empty() {
        let eligible = round.eligible();
        picks.push(eligible[rng.random_range(0..eligible.len())]);
    }
    // Room for every pick's row, so adding one never copies the others.
    let mut pick_rows = Array2::zeros((picks.len().max(start + k), features.ncols()));
    pick_rows.slice_mut(s![..picks.len(), ..]).assign(&part.rows(features, &picks));
    for &pick in &picks {
        blocks.mark_picked(part.local(pick));
    }
    while picks.len() < start + k {
        let (similarity, local) = blocks.farthest(features, pick_rows.slice(s![..picks.len(), ..]), gap);
        let id = if local == NONE_LEFT.1 { NONE_LEFT.1 } else { part.first + local };
        let proposals = part.comm.gather(&[f64::from(similarity), id as f64]);
        let proposals = proposals.chunks_exact(2).map(|p| (p[0] as f32, p[1] as usize));
        let next = proposals.min_by(nearer).expect("a proposal per rank").1;
        picks.push(next);
        pick_rows.row_mut(picks.len() - 1).assign(&part.rows(features, &[next]).row(0));
        blocks.mark_picked(part.local(next));
    }
    (picks.split_off(start), blocks.work)
}

/// A block in the queue, by its least when queued.
#[derive(Clone, Copy)]
struct Queued {
    least: Least,
    block: usize,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Queued {
    /// Reversed, so the heap gives the least first.
    fn cmp(&self, other: &Self) -> Ordering {
        nearer(&other.least, &self.least).then(other.block.cmp(&self.block))
    }
}

/// This rank's samples in blocks, queued by their leasts.
struct Blocks {
    blocks: Vec<Block>,
    size: usize,
    /// One entry per block holds its least; entries whose least has since
    /// grown are dropped as they come up.
    queue: BinaryHeap<Queued>,
    /// Picks that blocks brought up to date together missed alike, packed
    /// once for all of them (at the first pick every block missed every
    /// labeled sample); kept while no pick is added.
    packed: Vec<PackedPicks>,
    work: Work,
}

/// Picks `from..to`, packed for the product.
struct PackedPicks {
    from: usize,
    to: usize,
    packed: Packed,
}

impl Blocks {
    fn new(taken: &[bool], size: usize) -> Self {
        let blocks: Vec<Block> =
            (0..taken.len()).step_by(size).map(|b| Block::new(b, &taken[b..(b + size).min(taken.len())])).collect();
        let queue = blocks.iter().enumerate().map(|(block, b)| Queued { least: b.least, block }).collect();
        Blocks { blocks, size, queue, packed: Vec::new(), work: Work::default() }
    }

    fn mark_picked(&mut self, local: Option<usize>) {
        let Some(local) = local else { return };
        let block = local / self.size;
        let before = self.blocks[block].least;
        self.blocks[block].mark_picked(local);
        if self.blocks[block].least != before {
            self.queue.push(Queued { least: self.blocks[block].least, block });
        }
    }

    /// The farthest sample from the picks `pick_rows`, as (similarity, local
    /// row): the block whose least comes first is brought up to date (with
    /// the next stale ones, [`TOGETHER`] in all) until it is up to date.
    fn farthest(&mut self, features: ArrayView2<f32>, pick_rows: ArrayView2<f32>, gap: f64) -> Least {
        let now = pick_rows.nrows();
        loop {
            let mut stale = Vec::new();
            while let Some(&top) = self.queue.peek() {
                let block = &self.blocks[top.block];
                if block.least != top.least {
                    self.queue.pop();
                    continue;
                }
                if block.applied == now || stale.len() == TOGETHER {
                    break;
                }
                stale.push(self.queue.pop().expect("peeked").block);
            }
            if stale.is_empty() {
                return self.queue.peek().map_or(NONE_LEFT, |top| top.least);
            }
            self.catch_up(&stale, features, pick_rows, gap);
        }
    }

    /// Brings the blocks `which` up to date, in parallel, and queues them again.
    fn catch_up(&mut self, which: &[usize], features: ArrayView2<f32>, pick_rows: ArrayView2<f32>, gap: f64) {
        let now = pick_rows.nrows();
        self.packed.retain(|p| p.to == now);
        // Picks two of the blocks missed alike are packed here, once; the
        // others inside each block's own task.
        let missed: Vec<usize> = which.iter().map(|&b| self.blocks[b].applied).collect();
        for (at, &from) in missed.iter().enumerate() {
            if missed[..at].contains(&from) && !self.packed.iter().any(|p| p.from == from) {
                self.packed.push(PackedPicks { from, to: now, packed: Packed::new(pick_rows.slice(s![from.., ..])) });
            }
        }
        let mut out: Vec<Block> =
            which.iter().map(|&b| std::mem::replace(&mut self.blocks[b], Block::empty())).collect();
        let packed = &self.packed;
        let update = |block: &mut Block, wide: &mut Vec<f32>| {
            let rows = features.slice(s![block.start..block.start + block.similarity.len(), ..]);
            match packed.iter().find(|p| p.from == block.applied) {
                Some(shared) => block.catch_up(rows, pick_rows, &shared.packed, gap, wide),
                None => {
                    let own = Packed::new(pick_rows.slice(s![block.applied.., ..]));
                    block.catch_up(rows, pick_rows, &own, gap, wide)
                }
            }
        };
        let done: Vec<Work> = match out.as_mut_slice() {
            [one] => vec![update(one, &mut Vec::new())],
            many => many.par_iter_mut().map_init(Vec::new, |wide, block| update(block, wide)).collect(),
        };
        for w in done {
            self.work += w;
        }
        for (&b, block) in which.iter().zip(out) {
            self.queue.push(Queued { least: block.least, block: b });
            self.blocks[b] = block;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::unit_rows;
    use ndarray::Array2;
    use rand::SeedableRng;

    /// FPS written out literally: recompute every distance every round;
    /// `before` (labeled) counts as picked; `taken` is never picked.
    fn slow_fps(f: &Array2<f32>, before: &[usize], first: Option<usize>, k: usize, taken: &[bool]) -> Vec<usize> {
        let mut picks: Vec<usize> = before.iter().copied().chain(first).collect();
        while picks.len() < before.len() + k {
            let score = |i: usize| {
                picks
                    .iter()
                    .map(|&p| dot(f.row(i).as_slice().unwrap(), f.row(p).as_slice().unwrap()))
                    .fold(f32::NEG_INFINITY, f32::max)
            };
            let next = (0..f.nrows())
                .filter(|&i| !picks.contains(&i) && !taken[i])
                .min_by(|&a, &b| score(a).total_cmp(&score(b)))
                .unwrap();
            picks.push(next);
        }
        picks.split_off(before.len())
    }

    #[test]
    fn farthest_point_matches_the_literal_rule() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
        let cases =
            [(50, 3, 10, None), (300, 8, 40, None), (9000, 4, 6, None), (3000, 16, 200, None), (400, 2, 400, None)];
        // On a coarse grid: duplicates and exact ties.
        for (n, d, k, grid) in cases.into_iter().chain([(2000, 6, 80, Some(2)), (600, 3, 100, Some(1))]) {
            let f = unit_rows(n, d, &mut rng, grid);
            let round = Round::first(n);
            let expected = slow_fps(&f, &[], Some(picks_of(&f, k, &round, 9, BLOCK)[0]), k, &round.taken);
            for size in [1, 5, BLOCK] {
                assert_eq!(picks_of(&f, k, &round, 9, size), expected, "n {n}, blocks of {size}");
            }
        }
    }

    #[test]
    fn a_block_catches_up_to_the_literal_similarities_when_picks_nearly_tie() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(6);
        let d = 384;
        let rows = unit_rows(200, d, &mut rng, None);
        // Picks a rounding error apart, where the product and `dot` may rank them differently.
        let base = unit_rows(3, d, &mut rng, None);
        let picks = Array2::from_shape_fn((60, d), |(p, c)| base[[p % 3, c]] * (1.0 + 1e-7 * ((p * 7 + c) % 5) as f32));
        let mut block = Block::new(0, &vec![false; rows.nrows()]);
        let mut wide = Vec::new();
        let gap = 2.0 * f64::from(dot_error_bound(d));
        // In two steps, so the second sees similarities already close to its scores.
        for upto in [25, 60] {
            let new = Packed::new(picks.slice(s![block.applied..upto, ..]));
            block.catch_up(rows.view(), picks.slice(s![..upto, ..]), &new, gap, &mut wide);
            for (r, &similarity) in block.similarity.iter().enumerate() {
                let literal =
                    (0..upto).map(|p| dot(row(rows.view(), r), row(picks.view(), p))).fold(f32::NEG_INFINITY, f32::max);
                assert_eq!(similarity, literal, "sample {r} after {upto} picks");
            }
        }
    }

    /// The picks with blocks of `size` samples.
    fn picks_of(f: &Array2<f32>, k: usize, round: &Round, seed: u64, size: usize) -> Vec<usize> {
        let comm = Comm::single();
        let part = Part::whole(&comm, f.nrows());
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        farthest_point_blocks(f.view(), k, round, &mut rng, &part, size).0
    }

    #[test]
    fn blocks_away_from_the_farthest_sample_are_left_stale() {
        let (n, k) = (3000, 60);
        let f = crate::testing::clustered(n, 16, 12, 0.3, false, 5);
        let round = Round::first(n);
        let (picks, work) = farthest_point(f.view(), k, &round, &mut Xoshiro256PlusPlus::seed_from_u64(2));
        assert_eq!(picks, slow_fps(&f, &[], Some(picks[0]), k, &round.taken));
        // Bringing every sample up to date with every pick would be n·k.
        assert!(work.full_scans < (n * k / 4) as u64, "{work:?}");
        assert!(work.rescored <= work.full_scans, "{work:?}");
    }

    #[test]
    fn labeled_samples_start_the_walk_and_taken_ones_are_never_picked() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(4);
        for (n, d, k, grid) in [(300, 4, 30, None), (500, 3, 60, Some(1)), (2000, 8, 25, None)] {
            let f = unit_rows(n, d, &mut rng, grid);
            let labeled: Vec<usize> = (0..n).filter(|i| i % 37 == 5).collect();
            let mut taken = vec![false; n];
            for i in (0..n).filter(|i| i % 11 == 3).chain(labeled.iter().copied()) {
                taken[i] = true;
            }
            let round = Round { labeled: labeled.clone(), taken: taken.clone() };
            let expected = slow_fps(&f, &labeled, None, k, &taken);
            assert!(expected.iter().all(|&i| !taken[i]));
            for size in [1, 7, BLOCK] {
                assert_eq!(picks_of(&f, k, &round, 1, size), expected, "n {n}, blocks of {size}");
            }
        }
    }
}
