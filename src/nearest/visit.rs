//! One pass over a batch: each sample handed, with its exact nearest point
//! and similarity, to the caller's per-point sums, reading its row once.
//!
//! The pruned pass visits samples grouped by the point that won them last
//! time. Almost all keep that winner, so the visit adds the sample straight
//! into that point's sums, which stay in cache. The few whose winner changed,
//! or that need a full scan, are added afterwards, in batch order. Each
//! point's sums therefore see their samples in a fixed order (those that
//! stayed by position, then the newcomers by batch position) whatever the
//! thread count.

use ndarray::ArrayView2;
use rayon::prelude::*;

use super::bounds::Pruned;
use super::{Batch, dense as assign_dense, group_by_point};
use crate::linalg::row;

/// A sample not added during its group's visit: its batch position, and its
/// new winner and similarity (None until a full scan decides them).
struct Newcomer {
    position: usize,
    found: Option<(usize, f32)>,
}

/// What the visit of one point's group produced.
struct Group<S> {
    sums: S,
    /// Candidates rescored (beyond the winners) in this group.
    rescored: u64,
    /// Members that moved to another point, or need a full scan.
    left: Vec<Newcomer>,
}

/// The dense pass: the oracle's assignment, then each point's samples in
/// batch order.
pub(super) fn dense<S: Send>(
    features: ArrayView2<f32>,
    batch: &Batch,
    points: ArrayView2<f32>,
    new: impl Fn(usize) -> S + Sync,
    add: impl Fn(&mut S, usize, &[f32], f32) + Sync,
) -> Vec<S> {
    let assignment = assign_dense(features, batch, points);
    let members = group_by_point(&assignment.point, points.nrows());
    members
        .par_iter()
        .enumerate()
        .map(|(point, positions)| {
            let mut sums = new(point);
            for &i in positions {
                add(&mut sums, point, row(features, batch.id(i)), assignment.similarity[i] as f32);
            }
            sums
        })
        .collect()
}

/// The pruned pass, with the assignment decided (and remembered) by `pruned`.
pub(super) fn pruned<S: Send>(
    pruned: &mut Pruned,
    features: ArrayView2<f32>,
    batch: &Batch,
    points: ArrayView2<f32>,
    new: impl Fn(usize) -> S + Sync,
    add: impl Fn(&mut S, usize, &[f32], f32) + Sync,
) -> Vec<S> {
    pruned.begin_iteration(points);
    let previous: Vec<usize> = (0..batch.size()).map(|i| pruned.last_winner(batch.id(i))).collect();
    let members = group_by_point(&previous, points.nrows());
    drop(previous);

    let shared: &Pruned = pruned;
    let mut groups: Vec<Group<S>> = members
        .par_iter()
        .enumerate()
        .map(|(point, positions)| {
            let mut group = Group { sums: new(point), rescored: 0, left: Vec::new() };
            for &i in positions {
                let id = batch.id(i);
                match shared.check(features, id, points) {
                    Some(decision) => {
                        group.rescored += u64::from(decision.rescored);
                        if decision.point == point {
                            add(&mut group.sums, point, row(features, id), decision.similarity);
                        } else {
                            let found = Some((decision.point, decision.similarity));
                            group.left.push(Newcomer { position: i, found });
                        }
                    }
                    None => group.left.push(Newcomer { position: i, found: None }),
                }
            }
            group
        })
        .collect();
    drop(members);

    // Everyone who left a group, in batch order; misses take their full scans in that order.
    let mut newcomers: Vec<Newcomer> = groups.iter_mut().flat_map(|g| std::mem::take(&mut g.left)).collect();
    newcomers.sort_unstable_by_key(|n| n.position);
    pruned.add_rescored(groups.iter().map(|g| g.rescored).sum());
    let misses: Vec<usize> = newcomers.iter().filter(|n| n.found.is_none()).map(|n| n.position).collect();
    let mut scanned = pruned.rescan(features, batch, &misses, points).into_iter();
    let mut arrivals: Vec<Vec<(usize, f32)>> = (0..groups.len()).map(|_| Vec::new()).collect();
    let arriving = newcomers.len();
    for newcomer in newcomers {
        let (point, similarity) = newcomer.found.or_else(|| scanned.next()).expect("one scan per miss");
        arrivals[point].push((batch.id(newcomer.position), similarity));
    }
    // Few arrivals are added faster than a second thread wakes up.
    let per_task = if arriving < crate::chunks::SUM { groups.len().max(1) } else { 1 };
    groups
        .into_par_iter()
        .zip(arrivals)
        .enumerate()
        .with_min_len(per_task)
        .map(|(point, (mut group, arrivals))| {
            for (id, similarity) in arrivals {
                add(&mut group.sums, point, row(features, id), similarity);
            }
            group.sums
        })
        .collect()
}
