//! Boundary picks within one class, as the paper's `selection` makes them.
//!
//! Starting from the centre, until the class's allocation is reached: drop
//! from the candidates the `⌊size / allocation⌋` nearest to the last pick
//! (the pick itself first among them), raise the penalty of the last pick's
//! rival class by [`PENALTY_RATIO`] (not after the centre), and pick the
//! candidate of lowest boundary score `(outer · penalty − inner) /
//! max(outer, inner)`, where inner is the mean distance to the class's
//! members (itself included) and outer the distance to the nearest other
//! centre. Candidates stay sorted by distance to the last pick, so ties go
//! to the nearer one, then the lower position, as in the code.
//!
//! Departures: the pick itself is dropped first even when a duplicate of it
//! sits at a lower position (the code can pick a sample twice there);
//! samples labeled or excluded are dropped like the others but never
//! picked, and if no pickable candidate is left, every member not yet
//! picked becomes a candidate again.

use ndarray::ArrayView2;
use rayon::prelude::*;

use super::classes::Nearest;
use super::distances::Distances;
use super::{PENALTY_RATIO, numpy_mean};

/// One class after denoising.
pub struct Class<'a> {
    /// Its members, in the order denoising left them.
    pub members: &'a [usize],
    /// Its centre's sample id (a core or a labeled sample).
    pub centre: usize,
    /// Each member's inner mean, when denoising had them at hand.
    pub inner: Option<&'a [f64]>,
}

/// The boundary picks of `class` (sample ids, in pick order): its
/// allocation minus the centre. `classes` is the number of centres;
/// `taken` samples are never picked.
pub fn picks(
    features: ArrayView2<f32>,
    class: &Class,
    allocation: usize,
    nearest: &Nearest,
    classes: usize,
    taken: &[bool],
) -> Vec<usize> {
    let members = class.members;
    let m = members.len();
    let centre_at = members.iter().position(|&i| i == class.centre).expect("a class keeps its centre");
    if allocation <= 1 {
        return Vec::new();
    }
    let distances = Distances::new(features, members, 0);
    let d = |a: usize, b: usize| distances.get(a, b);
    let computed;
    let inner = match class.inner {
        Some(inner) => inner,
        None => {
            computed = inner_means(&distances, &(0..m).collect::<Vec<_>>());
            &computed[..]
        }
    };
    let drop = m / allocation;
    let mut penalty = vec![1.0f64; classes];
    let mut chosen = vec![centre_at];
    let mut picked = vec![false; m];
    picked[centre_at] = true;
    let mut candidates: Vec<usize> = (0..m).collect();
    while chosen.len() < allocation {
        let node = *chosen.last().expect("the centre");
        let mut by_distance: Vec<(bool, f64, usize)> =
            candidates.par_iter().map(|&p| (p != node, d(node, p), p)).collect();
        by_distance.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)).then(a.2.cmp(&b.2)));
        candidates = by_distance.into_iter().skip(drop).map(|(_, _, p)| p).collect();
        if node != centre_at {
            penalty[nearest.rival[members[node]]] *= PENALTY_RATIO;
        }
        let pickable = |p: usize| !picked[p] && !taken[members[p]];
        if !candidates.iter().any(|&p| pickable(p)) {
            candidates = (0..m).filter(|&p| !picked[p]).collect();
        }
        let score = |p: usize| {
            let (outer, inner) = (nearest.outer[members[p]], inner[p]);
            (outer * penalty[nearest.rival[members[p]]] - inner) / outer.max(inner)
        };
        let best = candidates
            .iter()
            .copied()
            .filter(|&p| pickable(p))
            .map(|p| (score(p), p))
            .reduce(|best, next| if argmin_prefers(next.0, best.0) { next } else { best })
            .expect("the allocation fits in the room")
            .1;
        chosen.push(best);
        picked[best] = true;
    }
    chosen[1..].iter().map(|&p| members[p]).collect()
}

/// Whether `np.argmin` takes score `a` over an earlier `b`: a lower score,
/// or the first NaN (a score is 0/0 when a member, its whole class and its
/// rival centre all sit on one point).
pub fn argmin_prefers(a: f64, b: f64) -> bool {
    (a.is_nan() && !b.is_nan()) || a < b
}

/// The inner mean of each member at `positions` (of `distances`): its mean
/// distance to the members at all those positions, itself included, summed
/// in that order as numpy does. One row of distances at a time per thread.
pub fn inner_means(distances: &Distances, positions: &[usize]) -> Vec<f64> {
    positions
        .par_iter()
        .map_init(
            || Vec::with_capacity(positions.len()),
            |row, &p| {
                row.clear();
                row.extend(positions.iter().map(|&q| distances.get(p, q)));
                numpy_mean(row)
            },
        )
        .collect()
}
