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

/// `a[p] = old a[from[p]]` for every row, in place: follows each cycle of the
/// permutation with one row of scratch space.
pub fn permute_rows(a: &mut Array2<f32>, from: &[usize]) {
    let d = a.ncols();
    let data = a.as_slice_mut().expect("the pool is one contiguous block");
    let mut done = vec![false; from.len()];
    let mut scratch = vec![0f32; d];
    for start in 0..from.len() {
        if done[start] || from[start] == start {
            continue;
        }
        scratch.copy_from_slice(&data[start * d..(start + 1) * d]);
        let mut p = start;
        loop {
            done[p] = true;
            let q = from[p];
            if q == start {
                data[p * d..(p + 1) * d].copy_from_slice(&scratch);
                break;
            }
            data.copy_within(q * d..(q + 1) * d, p * d);
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

    #[test]
    fn grouped_order_is_stable() {
        assert_eq!(grouped_order(&[2, 0, 2, 1, 0], 3), vec![1, 4, 3, 0, 2]);
        assert_eq!(disorder(&[0, 0, 1, 0, 2, 1]), 2);
    }
}
