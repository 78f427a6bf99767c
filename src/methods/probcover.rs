//! ProbCover (Yehuda et al., NeurIPS 2022): pick the samples whose balls
//! of radius δ cover the most samples not covered yet.
//!
//! The graph has an edge x → y when `|f_x − f_y| < δ` (x itself included),
//! for every row (the paper's code leaves the last n mod 500 rows without
//! edges). It is built exactly in tiles: a float32 product rules out the
//! pairs that cannot be within δ, and [`squared_distance`] decides the
//! rest; it is kept as `u32` neighbour lists. The distance is symmetric to
//! the bit, so the lists serve as in-edges too. Labeled samples cover
//! their balls first; then each pick is the sample covering the most
//! uncovered samples (ties: the lowest id). Once everything coverable is
//! covered (the paper's code then repeats sample 0), the rest are the
//! samples with the largest balls, ties to the lowest id.

use std::time::Instant;

use ndarray::{Array2, ArrayView2, Axis, s};
use rand::rngs::Xoshiro256PlusPlus;
use rand::seq::index;
use rayon::prelude::*;

use super::{Outcome, Round, kmeans};
use crate::error::{Error, Result};
use crate::linalg::{Packed, dot_error_bound, squared_distance};
use crate::nearest::Work;

/// Rows whose neighbours are found together.
const TILE: usize = 512;
/// Rows sampled to estimate the graph's size, and centres for purity.
const SIZE_SAMPLE: usize = 1000;
const PURITY_SAMPLE: usize = 10_000;
/// The share of pure balls the chosen δ must reach, and its grid.
const PURITY: f64 = 0.95;
const GRID: f64 = 0.05;

/// The neighbour lists: `members[starts[x]..starts[x + 1]]`, ascending.
pub struct Graph {
    starts: Vec<usize>,
    members: Vec<u32>,
}

impl Graph {
    fn ball(&self, x: usize) -> &[u32] {
        &self.members[self.starts[x]..self.starts[x + 1]]
    }

    pub fn edges(&self) -> usize {
        self.members.len()
    }
}

/// The rows of `features` that may lie within `delta` of `rows`, as a
/// float32 product can tell: similarity above `1 − δ²/2` less its error
/// and the rows' norms' rounding.
fn may_be_within(delta: f64, dim: usize) -> f32 {
    (1.0 - delta * delta / 2.0 - 1e-6 - 2.0 * f64::from(dot_error_bound(dim))) as f32
}

/// Samples of the pool compared at once with a tile of rows, so a tile's
/// scores stay in L2 (`TILE × COLUMNS` floats) whatever the pool's size.
const COLUMNS: usize = 512;

/// Calls `visit(first, scores)` for the float32 similarities of `rows` to
/// the pool from sample `from` on, block by block: `scores[[c, r]]` is
/// row `r`'s similarity to sample `first + c`. The crate's product packs
/// `rows` once, as its columns, and streams the pool past them.
fn blocks(
    rows: ArrayView2<f32>,
    features: ArrayView2<f32>,
    from: usize,
    mut visit: impl FnMut(usize, ArrayView2<f32>),
) {
    let n = features.nrows();
    let packed = Packed::new(rows);
    let mut wide = Vec::new();
    for first in (from..n).step_by(COLUMNS) {
        let columns = features.slice(s![first..(first + COLUMNS).min(n), ..]);
        packed.product_padded(columns, &mut wide);
        let scores = ArrayView2::from_shape((columns.nrows(), packed.stride()), &wide).expect("one line per sample");
        visit(first, scores.slice(s![.., ..rows.nrows()]));
    }
}

/// Every sample's ball of radius `delta`, exactly. The distance is
/// symmetric to the bit, so each pair is computed once: a tile of rows
/// against the columns from its own first row on, and each edge found
/// serves both directions.
pub fn graph(features: ArrayView2<f32>, delta: f64) -> Graph {
    let n = features.nrows();
    let cut = may_be_within(delta, features.ncols());
    let limit = delta * delta;
    // upper[x]: the neighbours of x from x on, ascending.
    let upper: Vec<Vec<u32>> = (0..n.div_ceil(TILE))
        .into_par_iter()
        .flat_map_iter(|t| {
            let start = t * TILE;
            let rows = features.slice(s![start..(start + TILE).min(n), ..]);
            let mut balls: Vec<Vec<u32>> = vec![Vec::new(); rows.nrows()];
            // Samples come in ascending order, so each ball stays sorted.
            blocks(rows, features, start, |first, scores| {
                for (c, line) in scores.outer_iter().enumerate() {
                    let y = first + c;
                    let ys = features.row(y);
                    let ys = ys.as_slice().expect("contiguous rows");
                    for (r, &s) in line.iter().enumerate() {
                        let x = start + r;
                        if y >= x
                            && s > cut
                            && squared_distance(features.row(x).as_slice().expect("contiguous"), ys) < limit
                        {
                            balls[r].push(y as u32);
                        }
                    }
                }
            });
            balls
        })
        .collect();
    let mut degree = vec![0usize; n];
    for (x, ys) in upper.iter().enumerate() {
        degree[x] += ys.len();
        for &y in ys.iter().filter(|&&y| y as usize != x) {
            degree[y as usize] += 1;
        }
    }
    let mut starts = Vec::with_capacity(n + 1);
    starts.push(0);
    for d in &degree {
        starts.push(starts.last().expect("a start") + d);
    }
    let mut members = vec![0u32; starts[n]];
    let mut next = starts[..n].to_vec();
    // Each ball: its neighbours below it (from the lists of lower samples,
    // met in ascending order), then its own list.
    for (y, xs) in upper.iter().enumerate() {
        for &x in xs.iter().filter(|&&x| x as usize != y) {
            members[next[x as usize]] = y as u32;
            next[x as usize] += 1;
        }
    }
    for (x, ys) in upper.into_iter().enumerate() {
        members[next[x]..next[x] + ys.len()].copy_from_slice(&ys);
    }
    Graph { starts, members }
}

/// The graph's edges for radius `delta`, estimated from a seeded sample of
/// rows, and for each step of the grid the estimate at that radius.
fn estimate_edges(features: ArrayView2<f32>, rng: &mut Xoshiro256PlusPlus) -> Vec<f64> {
    let n = features.nrows();
    let sample = index::sample(rng, n, SIZE_SAMPLE.min(n)).into_vec();
    let rows = features.select(Axis(0), &sample);
    // Distances from similarities (unit rows), counted per grid step.
    let steps = (2.0 / GRID).round() as usize + 1;
    let mut counts = vec![0u64; steps + 1];
    blocks(rows.view(), features, 0, |_, scores| {
        for &s in &scores {
            let d = (2.0 - 2.0 * f64::from(s)).max(0.0).sqrt();
            counts[((d / GRID).ceil() as usize).min(steps)] += 1;
        }
    });
    let scale = n as f64 / rows.nrows() as f64;
    let mut total = 0u64;
    counts
        .iter()
        .map(|&c| {
            total += c;
            total as f64 * scale
        })
        .collect()
}

/// `k` picks after `round` with balls of radius `delta` (or, with
/// `purity_classes`, the δ the purity rule chooses).
pub fn select(
    features: &Array2<f32>,
    k: usize,
    delta: Option<f64>,
    purity_classes: Option<usize>,
    round: &Round,
    rng: &mut Xoshiro256PlusPlus,
) -> Result<(Outcome, f64, usize)> {
    let start = Instant::now();
    let delta = match (delta, purity_classes) {
        (Some(delta), _) => delta,
        (None, Some(classes)) => purest_delta(&mut features.clone(), classes, rng)?,
        (None, None) => unreachable!("the command line requires one"),
    };
    let estimates = estimate_edges(features.view(), rng);
    let step = ((delta / GRID).ceil() as usize).min(estimates.len() - 1);
    let bytes = estimates[step] * 4.0 + features.nrows() as f64 * 8.0;
    let room = available_memory() / 2.0;
    if bytes > room {
        let fits = (0..=step).rev().find(|&s| estimates[s] * 4.0 < room).map_or(0.0, |s| s as f64 * GRID);
        return Err(Error::usage(
            "--delta",
            format!(
                "the graph would need about {:.1} GB (estimated from {} rows), more than half the memory here; \
                 try --delta {fits:.2} or less",
                bytes / 1e9,
                SIZE_SAMPLE.min(features.nrows())
            ),
        ));
    }
    let graph = graph(features.view(), delta);
    let edges = graph.edges();
    let picks = greedy(&graph, k, round);
    let outcome = Outcome::new(picks, Vec::new(), Vec::new(), start.elapsed().as_secs_f64(), 0.0, Work::default());
    Ok((outcome, delta, edges))
}

/// The greedy on a built graph: the picks in order.
fn greedy(graph: &Graph, k: usize, round: &Round) -> Vec<usize> {
    let n = round.taken.len();
    let mut covered = vec![false; n];
    let mut gain: Vec<usize> = (0..n).map(|x| graph.ball(x).len()).collect();
    let cover = |x: usize, covered: &mut Vec<bool>, gain: &mut Vec<usize>| {
        for &y in graph.ball(x) {
            if !std::mem::replace(&mut covered[y as usize], true) {
                for &z in graph.ball(y as usize) {
                    gain[z as usize] -= 1;
                }
            }
        }
    };
    for &x in &round.labeled {
        cover(x, &mut covered, &mut gain);
    }
    let mut taken = round.taken.clone();
    let mut picks = Vec::with_capacity(k);
    while picks.len() < k {
        let best = (0..n).filter(|&x| !taken[x]).fold(None, |b: Option<usize>, x| match b {
            Some(b) if gain[b] >= gain[x] => Some(b),
            _ => Some(x),
        });
        let best = best.expect("the budget fits in the samples left");
        if gain[best] == 0 {
            break;
        }
        cover(best, &mut covered, &mut gain);
        taken[best] = true;
        picks.push(best);
    }
    // Everything coverable is covered: the largest balls left, lowest id first.
    let mut rest: Vec<usize> = (0..n).filter(|&x| !taken[x]).collect();
    rest.sort_by_key(|&x| (std::cmp::Reverse(graph.ball(x).len()), x));
    picks.extend(rest.into_iter().take(k - picks.len()));
    picks
}

/// The largest δ on the grid 0.05, 0.10, … 2.00 whose balls are pure (all
/// members share the centre's k-means pseudo-label) for at least 95% of a
/// seeded sample of up to 10,000 centres.
fn purest_delta(features: &mut Array2<f32>, classes: usize, rng: &mut Xoshiro256PlusPlus) -> Result<f64> {
    let labels = kmeans::clusters(features, classes, rng)?;
    let features = &*features;
    let n = features.nrows();
    let centres = index::sample(rng, n, PURITY_SAMPLE.min(n)).into_vec();
    let nearest_other = nearest_other(features.view(), &labels, &centres);
    let steps = (2.0 / GRID).round() as usize;
    // Grid values in hundredths, so 0.3 prints as 0.3.
    let chosen = (1..=steps).rev().map(|s| (s as f64 * GRID * 100.0).round() / 100.0).find(|&delta| {
        let pure = nearest_other.iter().filter(|&&d| d >= delta).count();
        pure as f64 >= PURITY * nearest_other.len() as f64
    });
    Ok(chosen.unwrap_or(GRID))
}

/// Candidates a centre holds before those out of reach are dropped.
const PRUNE_AT: usize = 64;

/// For each of `centres`, the exact distance to its nearest sample of
/// another label (infinite when there is none): a ball of radius δ around
/// it is pure iff that is at least δ.
fn nearest_other(features: ArrayView2<f32>, labels: &[usize], centres: &[usize]) -> Vec<f64> {
    centres
        .par_chunks(TILE)
        .flat_map_iter(|chunk| {
            let rows = features.select(Axis(0), chunk);
            let tolerance = 4.0 * dot_error_bound(features.ncols());
            let row = |i: usize| features.row(i).to_slice().expect("contiguous rows");
            // Per centre: the best other-label filter score so far, and the
            // samples within the filter's error of it (at the time: those
            // too far below the final best are dropped at the end), so one
            // pass finds every candidate the exact distances must decide.
            let mut best = vec![f32::NEG_INFINITY; chunk.len()];
            let mut near: Vec<Vec<(f32, u32)>> = vec![Vec::new(); chunk.len()];
            // A list this long is thinned to the samples still within reach,
            // so a pool whose scores climb sample after sample (frames of a
            // video, say) does not keep them all.
            let mut room = vec![PRUNE_AT; chunk.len()];
            blocks(rows.view(), features, 0, |first, scores| {
                for (c, line) in scores.outer_iter().enumerate() {
                    let y = first + c;
                    for (r, &s) in line.iter().enumerate() {
                        if s >= best[r] - tolerance && labels[y] != labels[chunk[r]] {
                            best[r] = best[r].max(s);
                            near[r].push((s, y as u32));
                            if near[r].len() == room[r] {
                                let reach = best[r] - tolerance;
                                near[r].retain(|&(s, _)| s >= reach);
                                room[r] = (2 * near[r].len()).max(PRUNE_AT);
                            }
                        }
                    }
                }
            });
            let nearest = near.iter().zip(&best).zip(chunk).map(|((near, &best), &x)| {
                let within = near.iter().filter(|&&(s, _)| s >= best - tolerance);
                within.map(|&(_, y)| squared_distance(row(x), row(y as usize)).sqrt()).fold(f64::INFINITY, f64::min)
            });
            nearest.collect::<Vec<_>>()
        })
        .collect()
}

/// Bytes of memory available, from /proc/meminfo (8 GB where unknown).
fn available_memory() -> f64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(8e9, |kb| kb * 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{round_every, unit_rows};
    use proptest::prelude::*;
    use rand::SeedableRng;

    /// ProbCover written out literally: all pairs, every gain recounted each step.
    fn literal(f: &Array2<f32>, delta: f64, k: usize, round: &Round) -> Vec<usize> {
        let n = f.nrows();
        let near = |x: usize, y: usize| {
            squared_distance(f.row(x).as_slice().unwrap(), f.row(y).as_slice().unwrap()) < delta * delta
        };
        let mut covered = vec![false; n];
        for &x in &round.labeled {
            (0..n).filter(|&y| near(x, y)).for_each(|y| covered[y] = true);
        }
        let mut taken = round.taken.clone();
        let mut picks = Vec::new();
        while picks.len() < k {
            let gain = |x: usize| (0..n).filter(|&y| near(x, y) && !covered[y]).count();
            let mut best: Option<usize> = None;
            for x in (0..n).filter(|&x| !taken[x]) {
                if best.is_none_or(|b| gain(x) > gain(b)) {
                    best = Some(x);
                }
            }
            let best = best.unwrap();
            if gain(best) == 0 {
                let mut rest: Vec<usize> = (0..n).filter(|&x| !taken[x]).collect();
                rest.sort_by_key(|&x| (std::cmp::Reverse((0..n).filter(|&y| near(x, y)).count()), x));
                picks.extend(rest.into_iter().take(k - picks.len()));
                break;
            }
            (0..n).filter(|&y| near(best, y)).for_each(|y| covered[y] = true);
            taken[best] = true;
            picks.push(best);
        }
        picks
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn picks_equal_the_literal_rule(
            n in 2usize..150, d in 1usize..8, delta in 0.05f64..1.5, k_frac in 0.0f64..0.8,
            grid in proptest::option::of(1i32..3), labeled_every in 0usize..9, excluded_every in 0usize..7,
            seed in 0u64..1000,
        ) {
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
            let f = unit_rows(n, d, &mut rng, grid);
            let round = round_every(n, labeled_every, excluded_every);
            let left = round.left();
            prop_assume!(left > 0);
            let k = ((left as f64 * k_frac) as usize).clamp(1, left);
            let g = graph(f.view(), delta);
            for x in 0..n {
                let want: Vec<u32> = (0..n)
                    .filter(|&y| squared_distance(f.row(x).as_slice().unwrap(), f.row(y).as_slice().unwrap()) < delta * delta)
                    .map(|y| y as u32)
                    .collect();
                prop_assert_eq!(g.ball(x), &want[..]);
            }
            let picks = greedy(&g, k, &round);
            prop_assert_eq!(&picks, &literal(&f, delta, k, &round));
            prop_assert!(picks.iter().all(|&x| !round.taken[x]));
        }
    }

    #[test]
    fn balls_across_tiles_equal_all_pairs() {
        // Three tiles of rows, duplicates and exact ties from a coarse grid.
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(11);
        for (n, d, grid, delta) in [(1300, 3, Some(1), 0.9), (1100, 4, None, 0.6)] {
            let f = unit_rows(n, d, &mut rng, grid);
            let g = graph(f.view(), delta);
            for x in 0..n {
                let want: Vec<u32> = (0..n as u32)
                    .filter(|&y| {
                        let y = y as usize;
                        squared_distance(f.row(x).as_slice().unwrap(), f.row(y).as_slice().unwrap()) < delta * delta
                    })
                    .collect();
                assert_eq!(g.ball(x), &want[..], "ball of {x}");
            }
        }
    }

    #[test]
    fn nearest_other_label_equals_the_literal_minimum() {
        // Centres over two tiles, the pool over several blocks; duplicates and ties on a grid.
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(12);
        for (n, d, grid, classes) in [(1400, 3, Some(1), 4), (1200, 24, None, 7), (700, 2, Some(2), 1)] {
            let f = unit_rows(n, d, &mut rng, grid);
            let labels: Vec<usize> = (0..n).map(|i| (i * 7 + i / 3) % classes).collect();
            let centres: Vec<usize> = (0..n).step_by(2).collect();
            let row = |i: usize| f.row(i).to_slice().unwrap();
            let literal: Vec<f64> = centres
                .iter()
                .map(|&x| {
                    let others = (0..n).filter(|&y| labels[y] != labels[x]);
                    others.map(|y| squared_distance(row(x), row(y)).sqrt()).fold(f64::INFINITY, f64::min)
                })
                .collect();
            assert_eq!(nearest_other(f.view(), &labels, &centres), literal, "n {n}, d {d}");
        }
    }

    #[test]
    fn nearest_other_label_when_scores_climb_sample_after_sample() {
        // Each sample nearer the first than the last: every one is a new best, and the lists thin out.
        let n = 700;
        let f = Array2::from_shape_fn((n, 2), |(i, c)| {
            let angle = std::f32::consts::PI * (n - i) as f32 / n as f32;
            if c == 0 { angle.cos() } else { angle.sin() }
        });
        let labels: Vec<usize> = (0..n).map(|i| usize::from(i % 5 != 0)).collect();
        let centres: Vec<usize> = (0..n).step_by(5).collect();
        let row = |i: usize| f.row(i).to_slice().unwrap();
        for (&x, got) in centres.iter().zip(nearest_other(f.view(), &labels, &centres)) {
            let others = (0..n).filter(|&y| labels[y] != labels[x]);
            let literal = others.map(|y| squared_distance(row(x), row(y)).sqrt()).fold(f64::INFINITY, f64::min);
            assert_eq!(got, literal, "centre {x}");
        }
    }

    #[test]
    fn nearest_other_label_among_copies_a_rounding_error_apart() {
        // Where the filter may rank the copies unlike the exact distances.
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(13);
        let (d, copies) = (384, 6);
        let base = unit_rows(100, d, &mut rng, None);
        let f = Array2::from_shape_fn((100 * copies, d), |(i, c)| {
            base[[i / copies, c]] * (1.0 + 1e-7 * ((i * 5 + c * 3) % 7) as f32)
        });
        let labels: Vec<usize> = (0..f.nrows()).map(|i| i % copies).collect();
        let centres: Vec<usize> = (0..f.nrows()).collect();
        let row = |i: usize| f.row(i).to_slice().unwrap();
        for (&x, got) in centres.iter().zip(nearest_other(f.view(), &labels, &centres)) {
            let others = (0..f.nrows()).filter(|&y| labels[y] != labels[x]);
            let literal = others.map(|y| squared_distance(row(x), row(y)).sqrt()).fold(f64::INFINITY, f64::min);
            assert_eq!(got, literal, "centre {x}");
        }
    }

    #[test]
    fn labeled_balls_are_covered_first() {
        // Two tight groups; with one labeled in the first, the first pick goes to the second.
        let mut rows = Array2::<f32>::zeros((20, 2));
        for i in 0..20 {
            let angle = if i < 10 { 0.01 * i as f32 } else { 1.5 + 0.01 * i as f32 };
            rows[[i, 0]] = angle.cos();
            rows[[i, 1]] = angle.sin();
        }
        let g = graph(rows.view(), 0.3);
        assert!(greedy(&g, 1, &Round::first(20))[0] < 10, "ties go to the lower ids");
        let mut round = Round::first(20);
        round.labeled = vec![4];
        round.taken[4] = true;
        assert!(greedy(&g, 1, &round)[0] >= 10);
    }
}
