//! Where the learnable points start: at real samples, picked here.

use rand::rngs::Xoshiro256PlusPlus;
use rand::seq::index;

pub use crate::methods::fds::farthest_point;

/// `k` distinct sample ids drawn uniformly, in draw order.
pub fn random(n: usize, k: usize, rng: &mut Xoshiro256PlusPlus) -> Vec<usize> {
    index::sample(rng, n, k).into_vec()
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
    }
}
