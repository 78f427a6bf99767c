//! Denoising one class, as the paper's `density_cluster_denoise` does it.
//!
//! With `M` members (ascending ids) and `c = max(1, ⌊M/10⌋)`: the `c`
//! members nearest the centre start the density cluster, a list; in each
//! round `2..=⌊M/c⌋` every member outside it is scored, and the `c` lowest
//! join (ties to the lower position). A member's score is the mean of its
//! distances to the members *at the list positions* of its 10 nearest list
//! entries (ties to the lower position): the paper's code indexes the
//! distance row with list positions, and this reproduces it. The class then
//! keeps the first `⌊0.9 · len⌋` entries of the list, in joining order.
//!
//! Departures, where the code would fail: a centre the trim drops (only
//! possible when duplicates of it sit at lower positions) is put back at
//! the end, so every class keeps its centre.
//!
//! Each outside member keeps its 10 nearest list entries and takes the
//! distances to newcomers as they join. The distances come from the class's
//! [`Distances`]: a table of every pair for classes up to its limit, so the
//! boundary stage reads its inner means from the same table, and computed
//! as asked above it, where memory stays O(M).

use rayon::prelude::*;

use super::distances::Distances;
use super::{DENSITY_NEAREST, MIN_CLASS, numpy_mean};

/// A member outside the density cluster, with its nearest list entries.
struct Outside {
    /// Its position among the class's members.
    position: usize,
    /// Up to [`DENSITY_NEAREST`] (distance, list position), ascending.
    nearest: Vec<(f64, usize)>,
}

impl Outside {
    /// Takes list entry `entry` at `d` if it is among the nearest; entries
    /// arrive in list order, so an equal distance keeps the earlier one.
    fn offer(&mut self, d: f64, entry: usize) {
        if self.nearest.len() == DENSITY_NEAREST {
            if d >= self.nearest[DENSITY_NEAREST - 1].0 {
                return;
            }
            self.nearest.pop();
        }
        let at = self.nearest.partition_point(|&(e, _)| e <= d);
        self.nearest.insert(at, (d, entry));
    }
}

/// The positions of the members of one class (the members of `distances`,
/// ascending, the centre at position `centre_at`) that denoising keeps, in
/// joining order.
pub fn denoise(distances: &Distances, centre_at: usize) -> Vec<usize> {
    let m = distances.count();
    if m < MIN_CLASS {
        return (0..m).collect();
    }
    let d = |a: usize, b: usize| distances.get(a, b);
    let step = (m / 10).max(1);
    let mut order: Vec<(f64, usize)> = (0..m).map(|p| (d(centre_at, p), p)).collect();
    order.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut list: Vec<usize> = order[..step].iter().map(|&(_, p)| p).collect();
    let mut inside = vec![false; m];
    list.iter().for_each(|&p| inside[p] = true);
    let mut outside: Vec<Outside> =
        (0..m).filter(|&p| !inside[p]).map(|position| Outside { position, nearest: Vec::new() }).collect();
    offer_newcomers(&mut outside, &list, 0, &d);
    for _round in 2..=m / step {
        if outside.is_empty() {
            break;
        }
        let mut scored: Vec<(f64, usize)> = outside
            .par_iter()
            .map(|o| {
                let at_positions: Vec<f64> = o.nearest.iter().map(|&(_, entry)| d(o.position, entry)).collect();
                (numpy_mean(&at_positions), o.position)
            })
            .collect();
        scored.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let joined = list.len();
        for &(_, p) in scored.iter().take(step) {
            list.push(p);
            inside[p] = true;
        }
        outside.retain(|o| !inside[o.position]);
        offer_newcomers(&mut outside, &list, joined, &d);
    }
    list.truncate(list.len() * 9 / 10);
    if !list.contains(&centre_at) {
        list.push(centre_at);
    }
    list
}

/// Offers every outside member the list entries from `from` on.
fn offer_newcomers(outside: &mut [Outside], list: &[usize], from: usize, d: &(impl Fn(usize, usize) -> f64 + Sync)) {
    outside.par_iter_mut().for_each(|o| {
        for (entry, &p) in list.iter().enumerate().skip(from) {
            o.offer(d(o.position, p), entry);
        }
    });
}
