//! The full round: every candidate's estimate in one pass over the pool,
//! listing each sample's most similar candidates on the way.

use std::ops::Range;

use ndarray::s;
use rayon::prelude::*;

use super::BATCH;
use super::above::Above;
use super::coverage::Coverage;
use super::lists::{Lists, Nearest};
use crate::chunks::rounds;
use crate::error::Result;
use crate::linalg::Packed;
use crate::linalg::codes12::{self, Block, Panel, Scales};

/// A tile of the pool in the full round: its samples' lists so far, and
/// the estimates so far of its samples as candidates.
struct Tile {
    range: Range<usize>,
    nearest: Nearest,
    above: Above,
}

impl Tile {
    fn new(range: Range<usize>, width: usize) -> Result<Self> {
        Ok(Tile { nearest: Nearest::new(range.len(), width)?, above: Above::new(range.len()), range })
    }
}

/// The candidates among consecutive samples, offered together: their ids,
/// and which of the samples they are when some are not candidates.
struct Offered {
    ids: Vec<usize>,
    at: Option<Vec<usize>>,
}

impl Offered {
    fn new(samples: Range<usize>, candidate: &[bool]) -> Self {
        let ids: Vec<usize> = samples.clone().filter(|&j| candidate[j]).collect();
        let at = (ids.len() < samples.len()).then(|| ids.iter().map(|&j| j - samples.start).collect());
        Offered { ids, at }
    }

    /// Offers the candidates to sample `r` of `nearest`, given its scores
    /// against all the samples (`kept` holds the candidates' among them).
    fn offer(&self, nearest: &mut Nearest, r: usize, scores: &[f32], kept: &mut Vec<f32>) {
        match &self.at {
            None => nearest.offer(r, scores, &self.ids),
            Some(at) => {
                kept.clear();
                kept.extend(at.iter().map(|&a| scores[a]));
                nearest.offer(r, kept, &self.ids);
            }
        }
    }
}

/// `out` (resized) as the transpose of the first `cols` columns of the
/// rows of `wide`, `stride` apart: row `c` of `out` is column `c`.
fn turn(wide: &[f32], stride: usize, cols: usize, out: &mut Vec<f32>) {
    let rows = wide.len() / stride;
    out.resize(rows * cols, 0.0);
    // A line of `out` at a time: its rows' stores, one per column, would
    // otherwise each land on another line, `rows` floats apart.
    for first in (0..rows).step_by(TURNED) {
        let last = (first + TURNED).min(rows);
        for c in 0..cols {
            for r in first..last {
                out[c * rows + r] = wide[r * stride + c];
            }
        }
    }
}

/// Rows [`turn`] takes at once: a cache line of float32.
const TURNED: usize = 16;

impl Coverage<'_> {
    /// Estimates every candidate in `ids` in one pass over the pool, and on
    /// the way lists each sample's most similar candidates: the pass that
    /// makes later gains cheap. Similarities are symmetric, so the pool is
    /// cut into tiles and each pair of tiles is multiplied once and read
    /// both ways: half the products of every sample against every
    /// candidate. The pairs run in [`rounds`], so each tile takes its
    /// partners' offers and sums in a fixed order, whatever the threads.
    pub(super) fn full_round(&mut self, ids: &[usize]) -> Result<Vec<f64>> {
        let n = self.best.len();
        let width = self.width.min(ids.len()).max(1);
        let mut candidate = vec![false; n];
        for &j in ids {
            candidate[j] = true;
        }
        let mut tiles: Vec<Option<Tile>> = (0..n)
            .step_by(self.tile)
            .map(|start| Tile::new(start..(start + self.tile).min(n), width).map(Some))
            .collect::<Result<_>>()?;
        for round in rounds(tiles.len()) {
            let mut pairs: Vec<(Tile, Option<Tile>)> = round
                .iter()
                .map(|&(a, b)| {
                    let first = tiles[a].take().expect("a tile is in one pair per round");
                    (first, (a != b).then(|| tiles[b].take().expect("a tile is in one pair per round")))
                })
                .collect();
            pairs.par_iter_mut().for_each(|(first, second)| self.pair(first, second.as_mut(), &candidate));
            for tile in pairs.into_iter().flat_map(|(first, second)| std::iter::once(first).chain(second)) {
                let at = tile.range.start / self.tile;
                tiles[at] = Some(tile);
            }
        }
        let tiles: Vec<Tile> = tiles.into_iter().map(|t| t.expect("every tile is back")).collect();
        let estimates = ids.iter().map(|&j| tiles[j / self.tile].above.bound(j % self.tile, self.error)).collect();
        self.estimated += ids.len() as u64;
        let runs = tiles.into_iter().map(|t| t.nearest).collect();
        self.lists = Some(Lists::turned(runs, self.best.len(), self.tile, self.error)?);
        self.resolve(0..n);
        Ok(estimates)
    }

    /// One pair of tiles in the full round: the product of `first`'s rows
    /// and `second`'s (`first`'s own when None), in strips of [`BATCH`]
    /// columns, each read as `first`'s samples against the strip's
    /// candidates and, turned around, as the strip's samples against
    /// `first`'s candidates.
    fn pair(&self, first: &mut Tile, mut second: Option<&mut Tile>, candidate: &[bool]) {
        let rows = self.features.slice(s![first.range.clone(), ..]);
        let columns = second.as_ref().map_or(first.range.clone(), |t| t.range.clone());
        let own = Offered::new(first.range.clone(), candidate);
        let (mut wide, mut turned, mut kept) = (Vec::new(), Vec::new(), Vec::new());
        let coded_rows = self.coded.as_ref().map(|scales| {
            let mut block = Block::default();
            block.fill(self.features, &first.range.clone().collect::<Vec<_>>(), scales);
            (block, scales)
        });
        for start in columns.clone().step_by(BATCH) {
            let strip = start..(start + BATCH).min(columns.end);
            let stride = match &coded_rows {
                Some((block, scales)) => self.coded_scores(block, scales, strip.clone(), &mut wide),
                None => {
                    let packed = Packed::new(self.features.slice(s![strip.clone(), ..]));
                    packed.product_padded(rows, &mut wide);
                    packed.stride()
                }
            };
            let scores = |r: usize| &wide[r * stride..r * stride + strip.len()];
            let offered = Offered::new(strip.clone(), candidate);
            for r in 0..rows.nrows() {
                offered.offer(&mut first.nearest, r, scores(r), &mut kept);
            }
            let part = Above::of(
                self.best[first.range.clone()].iter().copied().zip((0..rows.nrows()).map(scores)),
                self.error,
            );
            let Some(second) = second.as_deref_mut() else {
                first.above.add_at(start - first.range.start, &part);
                continue;
            };
            second.above.add_at(start - second.range.start, &part);
            // Read the other way: the strip's samples against `first`'s candidates.
            turn(&wide, stride, strip.len(), &mut turned);
            let best = self.best[strip.clone()].iter().copied();
            first.above.add(&Above::of(best.zip(turned.chunks_exact(rows.nrows())), self.error));
            for (c, back) in turned.chunks_exact(rows.nrows()).enumerate() {
                own.offer(&mut second.nearest, start - second.range.start + c, back, &mut kept);
            }
        }
    }

    /// Upper bounds on the similarities of the rows coded in `block` to
    /// the samples `strip` (at most a panel of them), from 12-bit codes,
    /// into `wide` (a row of [`codes12::PANEL`] for each of the block's
    /// rows); returns that stride. The full round reads them as it reads
    /// float32 scores: every use but one takes a score as an upper bound
    /// (plus the float32 error, which only adds a margin), and that one
    /// ([`Coverage::record_fall`]) allows for the codes' spread.
    fn coded_scores(&self, block: &Block, scales: &Scales, strip: Range<usize>, wide: &mut Vec<f32>) -> usize {
        let mut columns = Block::default();
        columns.fill(self.features, &strip.collect::<Vec<_>>(), scales);
        let panel = Panel::new(&columns);
        wide.resize(block.len() * codes12::PANEL, 0.0);
        panel.upper32_rows(block, &mut Vec::new(), wide, codes12::PANEL);
        codes12::PANEL
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linalg::dot64;
    use crate::testing::unit_rows;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand::rngs::Xoshiro256PlusPlus;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn the_full_round_lists_the_most_similar_and_bounds_every_gain(
            n in 2usize..120, d in 1usize..10, tile in 1usize..40, width in 1usize..9,
            grid in proptest::option::of(1i32..3), excluded_every in 0usize..5, seed in 0u64..1000,
        ) {
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
            let f = unit_rows(n, d, &mut rng, grid);
            let round = crate::testing::round_every(n, 0, excluded_every);
            let ids: Vec<usize> = round.eligible().into_iter().filter(|&j| j != 0).collect();
            prop_assume!(!ids.is_empty());
            let mut coverage = Coverage::new(f.view(), width, tile, false);
            coverage.add(&[0]);
            let estimates = coverage.full_round(&ids).unwrap();
            // The product's bits: one fused chain per entry, in dimension order.
            let product = |i: usize, j: usize| (0..d).fold(0.0f32, |acc, k| f[[i, k]].mul_add(f[[j, k]], acc));
            let lists = coverage.lists.as_ref().unwrap();
            for i in 0..n {
                let listed: Vec<(usize, f32)> = lists.listed(i).collect();
                prop_assert_eq!(listed.len(), width.min(ids.len()));
                let least = listed.iter().map(|&(_, s)| s).fold(f32::INFINITY, f32::min);
                for &(j, s) in &listed {
                    prop_assert!(ids.contains(&j));
                    prop_assert_eq!(s.to_bits(), product(i, j).to_bits());
                }
                for &j in ids.iter().filter(|&&j| !listed.iter().any(|&(l, _)| l == j)) {
                    prop_assert!(product(i, j) <= least, "sample {} lists {:?} but not {}", i, listed, j);
                }
            }
            let f64s = f.mapv(f64::from);
            for (&j, &estimate) in ids.iter().zip(&estimates) {
                let gain: f64 = (0..n).map(|i| (f64s.row(i).dot(&f64s.row(j)) - coverage.best[i]).max(0.0)).sum();
                prop_assert!(estimate >= gain - 1e-9 && estimate <= gain + n as f64 * coverage.error * 2.0 + 1e-9,
                    "candidate {}: estimate {} against gain {}", j, estimate, gain);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn the_coded_full_round_lists_bounds_that_hold_both_ways(
            n in 2usize..120, d in 1usize..40, tile in 1usize..40, width in 1usize..9,
            grid in proptest::option::of(1i32..3), seed in 0u64..1000,
        ) {
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
            let f = unit_rows(n, d, &mut rng, grid);
            let ids: Vec<usize> = (1..n).collect();
            let mut coverage = Coverage::new(f.view(), width, tile, true);
            coverage.add(&[0]);
            let estimates = coverage.full_round(&ids).unwrap();
            let similarity = |i: usize, j: usize| dot64(f.row(i).as_slice().unwrap(), f.row(j).as_slice().unwrap());
            let (lists, scales) = (coverage.lists.as_ref().unwrap(), coverage.coded.as_ref().unwrap());
            for i in 0..n {
                let listed: Vec<(usize, f32)> = lists.listed(i).collect();
                prop_assert_eq!(listed.len(), width.min(ids.len()));
                // What `record_fall` takes a listed similarity to be at least.
                let below = coverage.error + scales.spread(i);
                for &(j, s) in &listed {
                    let (s, exact) = (f64::from(s), similarity(i, j));
                    prop_assert!(s >= exact && s - below <= exact, "sample {} lists {} at {} for {}", i, j, s, exact);
                }
                for &j in ids.iter().filter(|&&j| !listed.iter().any(|&(l, _)| l == j)) {
                    prop_assert!(similarity(i, j) <= lists.beyond(i), "sample {} leaves out {} above its bound", i, j);
                }
            }
            for (&j, &estimate) in ids.iter().zip(&estimates) {
                let gain: f64 = (0..n).map(|i| (similarity(i, j) - coverage.best[i]).max(0.0)).sum();
                prop_assert!(estimate >= gain - 1e-9, "candidate {}: estimate {} below the gain {}", j, estimate, gain);
            }
        }
    }

    proptest! {
        #[test]
        fn turn_transposes_the_leading_columns(rows in 1usize..40, cols in 1usize..9, spare in 0usize..3) {
            let stride = cols + spare;
            let wide: Vec<f32> = (0..rows * stride).map(|x| x as f32).collect();
            let mut out = vec![f32::NAN; 3];
            turn(&wide, stride, cols, &mut out);
            prop_assert_eq!(out.len(), rows * cols);
            for r in 0..rows {
                for c in 0..cols {
                    prop_assert_eq!(out[c * rows + r], wide[r * stride + c]);
                }
            }
        }
    }
}
