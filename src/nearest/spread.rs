//! The mapping over ranks: the same picks as [`super::mapping::greedy_map`]
//! over the whole pool, with each rank scoring only its own rows.
//!
//! Each rank proposes, per point, its best [`LISTED`] samples not taken
//! (exact scores, best first, ties to the lowest id). Every rank then runs
//! the same greedy over all proposals: a point takes the best proposal not
//! yet taken. When a rank's list for a point is used up and its unlisted
//! samples could still win, that rank lists its next best for that point
//! (a collective every rank joins, since every rank sees the same need).

use ndarray::{ArrayView2, s};
use rayon::prelude::*;

use super::mapping::pool_scores;
use crate::comm::Part;
use crate::linalg::{dot, score_tolerance};

/// Samples each rank proposes per point at a time.
const LISTED: usize = 16;
/// Points scored against the local rows at once.
const POINT_TILE: usize = 32;

/// An exact score and a global sample id; better is a higher score, then a lower id.
type Proposal = (f32, usize);

fn better(a: Proposal, b: Proposal) -> bool {
    a.0 > b.0 || (a.0 == b.0 && a.1 < b.1)
}

/// Maps the first `count` points, in order, to the samples not `taken`
/// (this rank's rows only), over every rank of `part`.
pub fn map_spread(
    features: ArrayView2<f32>,
    part: &Part,
    points: ArrayView2<f32>,
    count: usize,
    mut taken: Vec<bool>,
) -> Vec<usize> {
    let local = propose_all(features, part, points.slice(s![..count, ..]), &taken);
    let ranks = part.comm.size();
    // lists[p][r]: rank r's proposals for point p, best first.
    let mut lists: Vec<Vec<Vec<Proposal>>> = exchange(part, &local, count);
    let mut picked = std::collections::HashSet::new();
    let mut picks = Vec::with_capacity(count);
    for (p, point_lists) in lists.iter_mut().enumerate() {
        loop {
            let best = point_lists
                .iter()
                .flatten()
                .copied()
                .filter(|(_, i)| !picked.contains(i))
                .reduce(|a, b| if better(b, a) { b } else { a });
            // A rank whose full list is taken may hold unlisted samples that beat `best`.
            let short: Vec<usize> = (0..ranks)
                .filter(|&r| {
                    let list = &point_lists[r];
                    list.len() == LISTED
                        && list.iter().all(|(_, i)| picked.contains(i))
                        && best.is_none_or(|b| !better(b, *list.last().expect("a full list")))
                })
                .collect();
            if short.is_empty() {
                let (_, i) = best.expect("fewer points than samples leaves one untaken");
                picked.insert(i);
                if let Some(l) = part.local(i) {
                    taken[l] = true;
                }
                picks.push(i);
                break;
            }
            let mine = if short.contains(&part.comm.rank()) {
                propose(features, part, points.row(p).to_slice().expect("contiguous points"), &taken)
            } else {
                Vec::new()
            };
            let fresh = exchange(part, &[mine], 1).pop().expect("one point");
            for r in short {
                point_lists[r] = fresh[r].clone();
            }
        }
    }
    picks
}

/// Every rank's proposals for `count` points: `local[p]` is this rank's
/// for point p; the result's `[p][r]` is rank r's.
fn exchange(part: &Part, local: &[Vec<Proposal>], count: usize) -> Vec<Vec<Vec<Proposal>>> {
    let ranks = part.comm.size();
    // Padded to LISTED per point so the flat arrays line up; PAD pads.
    const PAD: u64 = u64::MAX;
    let mut scores = Vec::with_capacity(local.len() * LISTED);
    let mut ids = Vec::with_capacity(local.len() * LISTED);
    for list in local {
        for slot in 0..LISTED {
            let (s, i) = list.get(slot).map_or((f32::NEG_INFINITY, PAD), |&(s, i)| (s, i as u64));
            scores.push(s);
            ids.push(i);
        }
    }
    let (scores, ids) = (part.comm.gather(&scores), part.comm.gather(&ids));
    let per_rank = count * LISTED;
    (0..count)
        .map(|p| {
            (0..ranks)
                .map(|r| {
                    let at = r * per_rank + p * LISTED;
                    (at..at + LISTED).filter(|&j| ids[j] != PAD).map(|j| (scores[j], ids[j] as usize)).collect()
                })
                .collect()
        })
        .collect()
}

/// This rank's best [`LISTED`] samples not taken for each point: a float32
/// product screens, exact scores decide.
fn propose_all(features: ArrayView2<f32>, part: &Part, points: ArrayView2<f32>, taken: &[bool]) -> Vec<Vec<Proposal>> {
    let n = features.nrows();
    let tolerance = score_tolerance(points.ncols());
    let mut lists = Vec::with_capacity(points.nrows());
    for first in (0..points.nrows()).step_by(POINT_TILE) {
        let tile = points.slice(s![first..(first + POINT_TILE).min(points.nrows()), ..]);
        let scores = pool_scores(features, tile);
        let tile_lists: Vec<Vec<Proposal>> = (0..tile.nrows())
            .into_par_iter()
            .map(|p| {
                let column = scores.column(p);
                let mut screened: Vec<f32> = (0..n).filter(|&i| !taken[i]).map(|i| column[i]).collect();
                if screened.len() > LISTED {
                    screened.select_nth_unstable_by(LISTED - 1, |a, b| b.total_cmp(a));
                }
                let Some(floor) = screened.iter().take(LISTED).copied().reduce(f32::min) else {
                    return Vec::new();
                };
                let point = tile.row(p);
                let point = point.to_slice().expect("contiguous points");
                let near = (0..n).filter(|&i| !taken[i] && column[i] >= floor - tolerance);
                best_of(features, part, point, near)
            })
            .collect();
        lists.extend(tile_lists);
    }
    lists
}

/// This rank's best [`LISTED`] samples not taken for one point, by exact scores.
fn propose(features: ArrayView2<f32>, part: &Part, point: &[f32], taken: &[bool]) -> Vec<Proposal> {
    best_of(features, part, point, (0..features.nrows()).filter(|&i| !taken[i]))
}

fn best_of(features: ArrayView2<f32>, part: &Part, point: &[f32], rows: impl Iterator<Item = usize>) -> Vec<Proposal> {
    let mut scored: Vec<Proposal> =
        rows.map(|i| (dot(features.row(i).to_slice().expect("contiguous rows"), point), part.first + i)).collect();
    scored.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    scored.truncate(LISTED);
    scored
}
