//! Snapshots of the points, for a tighter bound on the points a sample does
//! not keep as candidates.
//!
//! The simple bound grows by the largest movement of any point at every
//! iteration, so it only ever grows, even while the points settle and
//! oscillate in place: the sum soon overtakes every sample's margin, and
//! each sample is then rescanned against every point, while no point has
//! moved far from where it started (the README gives the figures).
//!
//! With a snapshot of the points taken at iteration `c`, a point's score for
//! a unit feature at iteration `T` differs from its score at `c` by at most
//! `|ĉ_j(T) − ĉ_j(c)|`, its displacement, however far it travelled. A sample
//! scanned at `T₀ ≥ c` adds the path from `c` to `T₀` once, when it is scanned.

use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

use crate::linalg::squared_distance;

/// Memory for snapshots; they hold `k x dim` float32 values each.
const SNAPSHOT_BYTES: usize = 40 << 20;
/// Snapshots kept at most, whatever the memory.
const MAX_SNAPSHOTS: usize = 8;
/// A new snapshot is taken once some point has travelled this far since the
/// latest one: samples scanned later pay that path in their bound.
const SPACING: f64 = 0.05;

/// "No snapshot": the sample only has the simple bound.
pub const NONE: u32 = u32::MAX;

struct Snapshot {
    /// Its sequence number, for the samples anchored to it.
    seq: u32,
    points: Array2<f32>,
    /// Each point's path length when it was taken.
    path: Vec<f64>,
    /// Samples anchored to it.
    users: u64,
}

/// The live snapshots and what they say about the current points.
pub struct Snapshots {
    live: Vec<Snapshot>,
    capacity: usize,
    /// By sequence number: the largest displacement of any point since the
    /// snapshot, infinite once it is dropped.
    growth: Vec<f64>,
    /// The snapshot scans are anchored to this iteration, and the largest
    /// path any point travelled since it.
    current: (u32, f64),
}

impl Snapshots {
    pub fn new(k: usize, dim: usize) -> Self {
        let capacity = (SNAPSHOT_BYTES / (k * dim * 4).max(1)).clamp(2, MAX_SNAPSHOTS);
        Snapshots { live: Vec::new(), capacity, growth: Vec::new(), current: (NONE, 0.0) }
    }

    /// Brings the bounds to the current `points`, given every point's path
    /// length so far; takes a snapshot when the latest is too far behind.
    pub fn advance(&mut self, points: ArrayView2<f32>, path: &[f64]) {
        let behind = self.live.last().map_or(f64::INFINITY, |latest| largest_gap(path, &latest.path));
        if behind > SPACING {
            self.take(points, path);
        }
        // Only the latest snapshot gains samples: the others go once none are left.
        let latest = self.live.last().expect("a snapshot was taken").seq;
        let growth = &mut self.growth;
        self.live.retain(|snapshot| {
            let keep = snapshot.seq == latest || snapshot.users > 0;
            if !keep {
                growth[snapshot.seq as usize] = f64::INFINITY;
            }
            keep
        });
        for snapshot in &self.live {
            self.growth[snapshot.seq as usize] =
                movements(points, snapshot.points.view()).into_iter().fold(0.0, f64::max);
        }
        let latest = self.live.last().expect("a snapshot was taken");
        self.current = (latest.seq, largest_gap(path, &latest.path));
    }

    /// The snapshot a scan of this iteration is anchored to, and the path
    /// to add to its bound.
    pub fn current(&self) -> (u32, f64) {
        self.current
    }

    /// How far the points are from snapshot `seq`, at most (infinite for
    /// [`NONE`] or a dropped snapshot).
    pub fn growth(&self, seq: u32) -> f64 {
        self.growth.get(seq as usize).copied().unwrap_or(f64::INFINITY)
    }

    /// Moves one sample's anchor from `old` to `new` (counts only: which
    /// snapshot is dropped first).
    pub fn reanchor(&mut self, old: u32, new: u32) {
        for snapshot in &mut self.live {
            if snapshot.seq == old {
                snapshot.users -= 1;
            }
            if snapshot.seq == new {
                snapshot.users += 1;
            }
        }
    }

    fn take(&mut self, points: ArrayView2<f32>, path: &[f64]) {
        if self.live.len() == self.capacity {
            // The one fewest samples rely on (the oldest among equals).
            let drop = (0..self.live.len()).min_by_key(|&s| self.live[s].users).expect("capacity >= 2");
            let gone = self.live.remove(drop);
            self.growth[gone.seq as usize] = f64::INFINITY;
        }
        let seq = u32::try_from(self.growth.len()).expect("fewer than 2^32 snapshots");
        self.growth.push(0.0);
        self.live.push(Snapshot { seq, points: points.to_owned(), path: path.to_vec(), users: 0 });
    }
}

/// `max_j (now_j − then_j)`.
fn largest_gap(now: &[f64], then: &[f64]) -> f64 {
    now.iter().zip(then).map(|(a, b)| a - b).fold(0.0, f64::max)
}

/// `|a_j − b_j|` for every point `j`: how far each moved between two sets of
/// unit points, rounded up enough to bound how much the score of any float32
/// (so not exactly unit-length) feature can change with it.
pub fn movements(a: ArrayView2<f32>, b: ArrayView2<f32>) -> Vec<f64> {
    a.outer_iter()
        .into_par_iter()
        .zip(b.outer_iter())
        .with_min_len(crate::chunks::FEW_ROWS)
        .map(|(x, y)| squared_distance(x.as_slice().expect("contiguous rows"), y.as_slice().expect("contiguous rows")))
        .map(|squared| squared.sqrt() * (1.0 + 1e-6))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displacement_not_path_bounds_points_that_come_back() {
        let start = Array2::from_shape_vec((2, 2), vec![1.0f32, 0.0, 0.0, 1.0]).unwrap();
        let mut snaps = Snapshots::new(2, 2);
        snaps.advance(start.view(), &[0.0, 0.0]);
        let (seq, offset) = snaps.current();
        assert_eq!((seq, offset), (0, 0.0));
        snaps.reanchor(NONE, 0);
        // Point 0 goes out by 0.04 and comes back: path 0.08, displacement 0.
        snaps.advance(start.view(), &[0.08, 0.0]);
        assert_eq!(snaps.live.len(), 2, "0.08 > SPACING takes a new snapshot");
        assert!(snaps.growth(0) < 1e-12);
        assert_eq!(snaps.current(), (1, 0.0));
        let moved = Array2::from_shape_vec((2, 2), vec![0.6f32, 0.8, 0.0, 1.0]).unwrap();
        snaps.advance(moved.view(), &[1.0, 0.0]);
        let want = (0.4f64.powi(2) + 0.8f64.powi(2)).sqrt();
        assert!((snaps.growth(0) - want).abs() < 1e-6 && snaps.growth(0) >= want);
        assert_eq!(snaps.growth(NONE), f64::INFINITY);
        // That took snapshot 2; snapshot 1 never had a sample, so it went.
        assert_eq!(snaps.live.iter().map(|s| s.seq).collect::<Vec<_>>(), vec![0, 2]);
        assert_eq!(snaps.growth(1), f64::INFINITY);
    }

    #[test]
    fn the_least_used_snapshot_is_dropped() {
        let points = Array2::<f32>::zeros((1, 1));
        let mut snaps = Snapshots::new(1, 1);
        snaps.capacity = 2;
        snaps.advance(points.view(), &[0.0]);
        snaps.reanchor(NONE, 0);
        snaps.reanchor(NONE, 0);
        snaps.advance(points.view(), &[1.0]);
        snaps.reanchor(NONE, 1);
        snaps.advance(points.view(), &[2.0]);
        // Full: snapshot 1 (one sample) goes to make room, 0 (two) stays.
        assert_eq!(snaps.live.iter().map(|s| s.seq).collect::<Vec<_>>(), vec![0, 2]);
        assert_eq!(snaps.growth(1), f64::INFINITY);
        assert_eq!(snaps.growth(0), 0.0);
    }
}
