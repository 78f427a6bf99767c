//! The order of samples in memory during the optimisation.
//!
//! The pruned step visits samples grouped by their nearest point. Stored in
//! file order, those visits jump around the pool and every sample costs
//! several cache misses; stored grouped, each group is one contiguous run.
//! So the rows are rearranged in place (no second copy of the pool), and put
//! back in file order before anything leaves the optimiser.

use ndarray::Array2;

/// Where each sample's row currently sits.
pub struct Layout {
    /// `id[p]`: the sample stored at position `p`.
    id: Vec<usize>,
    /// `position[i]`: where sample `i` is stored.
    position: Vec<usize>,
}

impl Layout {
    pub fn identity(n: usize) -> Self {
        Layout { id: (0..n).collect(), position: (0..n).collect() }
    }

    pub fn position(&self, id: usize) -> usize {
        self.position[id]
    }

    /// Whether every sample is at its own id.
    pub fn is_identity(&self) -> bool {
        self.id.iter().enumerate().all(|(p, &i)| p == i)
    }

    /// Moves the row at position `from[p]` to position `p`, for every `p`.
    pub fn rearrange(&mut self, features: &mut Array2<f32>, from: &[usize]) {
        permute_rows(features, from);
        self.id = from.iter().map(|&p| self.id[p]).collect();
        for (p, &i) in self.id.iter().enumerate() {
            self.position[i] = p;
        }
    }

    /// Puts every row back at its sample id; returns the rearrangement used,
    /// for whatever else is kept per position.
    pub fn restore(mut self, features: &mut Array2<f32>) -> Vec<usize> {
        let from = self.position.clone();
        self.rearrange(features, &from);
        from
    }
}

/// `a[p] = old a[from[p]]` for every row, in place.
pub fn permute_rows(a: &mut Array2<f32>, from: &[usize]) {
    let d = a.ncols();
    permute_runs(a.as_slice_mut().expect("the pool is one contiguous block"), d, from);
}

/// The same for any per-sample data stored as runs of `width` values:
/// `run p = old run from[p]`. Follows each cycle of the permutation with
/// swaps, so it needs no second copy (at ImageNet scale the candidate lists
/// and their bounds are 330 MB, the features 2 GB).
pub fn permute_runs<T>(data: &mut [T], width: usize, from: &[usize]) {
    assert_eq!(data.len(), width * from.len());
    let mut done = vec![false; from.len()];
    for start in 0..from.len() {
        if done[start] {
            continue;
        }
        done[start] = true;
        let mut p = start;
        while from[p] != start {
            let q = from[p];
            let (low, high) = (p.min(q), p.max(q));
            let (head, tail) = data.split_at_mut(high * width);
            head[low * width..(low + 1) * width].swap_with_slice(&mut tail[..width]);
            done[q] = true;
            p = q;
        }
    }
}

/// Positions ordered by `key` (stable: ties keep their current order).
pub fn grouped_order(key: &[u32], groups: usize) -> Vec<usize> {
    let mut starts = vec![0usize; groups + 1];
    for &g in key {
        starts[g as usize + 1] += 1;
    }
    for g in 0..groups {
        starts[g + 1] += starts[g];
    }
    let mut order = vec![0; key.len()];
    for (p, &g) in key.iter().enumerate() {
        order[starts[g as usize]] = p;
        starts[g as usize] += 1;
    }
    order
}

/// Positions where the key drops: zero when grouped, at most two per sample
/// that left its group since.
pub fn disorder(key: &[u32]) -> usize {
    key.windows(2).filter(|w| w[1] < w[0]).count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn rearranging_then_restoring_is_the_identity(keys in proptest::collection::vec(0u32..5, 1..60), d in 1usize..4) {
            let n = keys.len();
            let original = Array2::from_shape_fn((n, d), |(i, j)| (i * 10 + j) as f32);
            let mut a = original.clone();
            let mut layout = Layout::identity(n);
            let from = grouped_order(&keys, 5);
            layout.rearrange(&mut a, &from);
            for (p, &source) in from.iter().enumerate() {
                prop_assert_eq!(a.row(p), original.row(source));
                prop_assert_eq!(layout.position(source), p);
            }
            let grouped: Vec<u32> = from.iter().map(|&p| keys[p]).collect();
            prop_assert_eq!(disorder(&grouped), 0);
            // A second arrangement composes with the first.
            let reverse: Vec<usize> = (0..n).rev().collect();
            layout.rearrange(&mut a, &reverse);
            for i in 0..n {
                prop_assert_eq!(a.row(layout.position(i)), original.row(i));
            }
            layout.restore(&mut a);
            prop_assert_eq!(a, original);
        }
    }

    proptest! {
        #[test]
        fn runs_move_like_a_gather(keys in proptest::collection::vec(0u32..6, 1..50), width in 1usize..4) {
            let n = keys.len();
            let from = grouped_order(&keys, 6);
            let original: Vec<u32> = (0..(n * width) as u32).collect();
            let want: Vec<u32> = from.iter().flat_map(|&p| original[p * width..(p + 1) * width].to_vec()).collect();
            let mut got = original.clone();
            permute_runs(&mut got, width, &from);
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn grouped_order_is_stable() {
        assert_eq!(grouped_order(&[2, 0, 2, 1, 0], 3), vec![1, 4, 3, 0, 2]);
        assert_eq!(disorder(&[0, 0, 1, 0, 2, 1]), 2);
    }
}
