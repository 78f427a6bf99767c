//! Where the learnable points start: at real samples, picked here.

use rand::rngs::Xoshiro256PlusPlus;
use rand::seq::index;

pub use crate::methods::fds::{farthest_point, farthest_point_part};

/// `k` distinct sample ids drawn uniformly, in draw order.
pub fn random(n: usize, k: usize, rng: &mut Xoshiro256PlusPlus) -> Vec<usize> {
    index::sample(rng, n, k).into_vec()
}

/// `k` distinct ids drawn uniformly from `candidates`, in draw order; the
/// same draws as [`random`] when the candidates are `0..n`.
pub fn random_from(candidates: &[usize], k: usize, rng: &mut Xoshiro256PlusPlus) -> Vec<usize> {
    index::sample(rng, candidates.len(), k).into_iter().map(|i| candidates[i]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn random_ids_are_distinct_and_seeded() {
        let a = random(100, 30, &mut Xoshiro256PlusPlus::seed_from_u64(5));
        let b = random(100, 30, &mut Xoshiro256PlusPlus::seed_from_u64(5));
        let mut sorted = a.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!((a == b, sorted.len()), (true, 30));
        assert!(sorted.iter().all(|&i| i < 100));
        let all: Vec<usize> = (0..100).collect();
        assert_eq!(random_from(&all, 30, &mut Xoshiro256PlusPlus::seed_from_u64(5)), a);
        let odd: Vec<usize> = (0..100).filter(|i| i % 2 == 1).collect();
        let picked = random_from(&odd, 50, &mut Xoshiro256PlusPlus::seed_from_u64(5));
        assert!(picked.iter().all(|i| i % 2 == 1) && picked.len() == 50);
    }
}
