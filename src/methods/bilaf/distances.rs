//! The float64 distances between the members of one class: each pair
//! computed once and kept in a table while the class has at most
//! [`TABLE_MEMBERS`] members, otherwise computed whenever asked.
//!
//! Both give the same bits. A distance is symmetric to the last bit (each
//! difference and its negation square alike, and are summed in the same
//! order), so the table's mirrored half holds what a fresh computation
//! would give.

use ndarray::ArrayView2;
use rayon::prelude::*;

use super::distance;

/// The most members a class keeps a table for: 2,048 members take 32 MB.
/// Larger classes (a small budget over a large pool) go without, so memory
/// stays O(M) per class there.
pub const TABLE_MEMBERS: usize = 2048;

/// The distances between the members of one class, by position.
pub struct Distances<'a> {
    features: ArrayView2<'a, f32>,
    members: &'a [usize],
    /// Row-major, members × members, when there are at most the limit.
    table: Option<Vec<f64>>,
}

impl<'a> Distances<'a> {
    /// The distances between `members` (sample ids), tabled when there are
    /// at most `limit` of them.
    pub fn new(features: ArrayView2<'a, f32>, members: &'a [usize], limit: usize) -> Self {
        let m = members.len();
        let table = (m <= limit).then(|| {
            let mut table = vec![0.0; m * m];
            // Each row from the diagonal on, in parallel; then the mirror.
            table.par_chunks_mut(m.max(1)).enumerate().for_each(|(a, row)| {
                for (b, cell) in row.iter_mut().enumerate().skip(a) {
                    *cell = distance(features, members[a], members[b]);
                }
            });
            for a in 1..m {
                for b in 0..a {
                    table[a * m + b] = table[b * m + a];
                }
            }
            table
        });
        Distances { features, members, table }
    }

    /// The distance between the members at positions `a` and `b`.
    pub fn get(&self, a: usize, b: usize) -> f64 {
        match &self.table {
            Some(table) => table[a * self.members.len() + b],
            None => distance(self.features, self.members[a], self.members[b]),
        }
    }

    /// How many members.
    pub fn count(&self) -> usize {
        self.members.len()
    }

    /// Whether the distances are held in a table.
    pub fn is_tabled(&self) -> bool {
        self.table.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::unit_rows;
    use rand::SeedableRng;
    use rand::rngs::Xoshiro256PlusPlus;

    #[test]
    fn the_table_holds_what_each_distance_computes() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(4);
        // On a grid: duplicates, so zero distances off the diagonal too.
        for grid in [None, Some(1)] {
            let f = unit_rows(120, 7, &mut rng, grid);
            let members: Vec<usize> = (0..120).rev().step_by(3).collect();
            let tabled = Distances::new(f.view(), &members, TABLE_MEMBERS);
            let fresh = Distances::new(f.view(), &members, 0);
            assert!(tabled.is_tabled() && !fresh.is_tabled());
            for a in 0..members.len() {
                for b in 0..members.len() {
                    let want = distance(f.view(), members[a], members[b]);
                    assert_eq!(tabled.get(a, b).to_bits(), want.to_bits(), "{a}, {b}");
                    assert_eq!(fresh.get(a, b).to_bits(), want.to_bits(), "{a}, {b}");
                }
            }
        }
    }
}
