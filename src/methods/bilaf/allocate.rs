//! The budget split over classes, as the paper's `distribute_budget` does
//! it, with the two cases its code cannot handle decided.
//!
//! 1. Each class gets `⌊total · size / Σ size⌋` (exact integers); the rest
//!    goes one at a time to the class with the smallest allocation, ties to
//!    the larger size, then the lower index.
//! 2. A class allotted 0 still takes its centre: it takes one from the
//!    largest allocation (ties to the lower class).
//! 3. No class gets more than its `room` (its centre plus the members that
//!    may be picked); the excess goes to the classes with room left,
//!    largest size first, then the lower index.
//!
//! An allocation counts the class's centre. The caller checks that `total`
//! fits in the room.

/// Allocations for classes of `sizes` with `room`, summing to `total`.
pub fn allocate(total: usize, sizes: &[usize], room: &[usize]) -> Vec<usize> {
    let all: usize = sizes.iter().sum();
    let mut alloc: Vec<usize> = sizes.iter().map(|&s| (total as u128 * s as u128 / all as u128) as usize).collect();
    for _ in 0..total - alloc.iter().sum::<usize>() {
        let c = (0..sizes.len()).min_by_key(|&c| (alloc[c], std::cmp::Reverse(sizes[c]), c)).expect("a class");
        alloc[c] += 1;
    }
    for c in 0..sizes.len() {
        if alloc[c] == 0 {
            let largest = (0..sizes.len()).max_by_key(|&l| (alloc[l], std::cmp::Reverse(l))).expect("a class");
            // More budget than classes leaves the largest at 2 or more.
            debug_assert!(alloc[largest] >= 2);
            alloc[largest] -= 1;
            alloc[c] = 1;
        }
    }
    let mut excess = 0;
    for (a, &r) in alloc.iter_mut().zip(room) {
        excess += a.saturating_sub(r);
        *a = (*a).min(r);
    }
    while excess > 0 {
        let c = (0..sizes.len())
            .filter(|&c| alloc[c] < room[c])
            .min_by_key(|&c| (std::cmp::Reverse(sizes[c]), c))
            .expect("the total fits in the room");
        let more = excess.min(room[c] - alloc[c]);
        alloc[c] += more;
        excess -= more;
    }
    alloc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proportional_then_the_remainder_to_the_smallest_allocation() {
        // 10 · (5, 3, 2) / 10 is exact; 7 · (5, 3, 2) / 10 = (3.5, 2.1, 1.4) floors to (3, 2, 1):
        // the last unit goes to the smallest allocation.
        assert_eq!(allocate(10, &[5, 3, 2], &[5, 3, 2]), [5, 3, 2]);
        assert_eq!(allocate(7, &[5, 3, 2], &[5, 3, 2]), [3, 2, 2]);
        // Equal allocations: the larger class, then the lower index.
        assert_eq!(allocate(5, &[4, 5, 11], &[4, 5, 11]), [1, 2, 2]);
        assert_eq!(allocate(5, &[4, 4, 6], &[4, 4, 6]), [2, 1, 2]);
        assert_eq!(allocate(4, &[4, 4, 4], &[4, 4, 4]), [2, 1, 1]);
    }

    #[test]
    fn every_class_keeps_its_centre() {
        // 3 · (1, 1, 98) / 100 floors to (0, 0, 2); the remainder unit goes to class 0,
        // then class 1 takes one from class 2, the largest.
        assert_eq!(allocate(3, &[1, 1, 98], &[1, 1, 98]), [1, 1, 1]);
        assert_eq!(allocate(4, &[1, 1, 1, 97], &[1, 1, 1, 97]), [1, 1, 1, 1]);
    }

    #[test]
    fn no_class_gets_more_than_its_room() {
        // Class 0 has 6 members but only 2 may be picked: its excess goes to the largest with room.
        assert_eq!(allocate(6, &[6, 3, 3], &[2, 3, 3]), [2, 3, 1]);
        assert_eq!(allocate(8, &[6, 3, 3], &[2, 3, 3]), [2, 3, 3]);
    }
}
