//! BiLAF's stage two tables a class's distances only up to a limit (2,048
//! members); a larger class is held in O(class size), never as a
//! class-size-squared distance matrix: one core makes the whole pool (4,000
//! samples) one class, and no single allocation may come near the matrix
//! that class would need.

use std::sync::atomic::Ordering;

mod common;

use activeft::internals::synth::mixture;
use activeft::internals::{ActiveFtParams, Method, Round, run};

#[global_allocator]
static ALLOCATOR: common::Largest = common::Largest;

#[test]
fn one_class_of_the_whole_pool_never_holds_its_distance_matrix() {
    let n = 4000;
    let (mut features, _) = mixture(n, 8, 4, 1.2, 3);
    for mut row in features.rows_mut() {
        let norm = row.dot(&row).sqrt();
        row /= norm;
    }
    let mut params = ActiveFtParams::new(1);
    params.iterations = 5;
    let method = Method::BiLaf(params.check(n).unwrap());
    common::LARGEST.store(0, Ordering::Relaxed);
    let outcome = run(&method, &mut features, 60, 0, &Round::first(n), |_, _| {}).unwrap();
    assert_eq!(outcome.selected.len(), 60);
    let matrix = n * n * 8;
    let largest = common::LARGEST.load(Ordering::Relaxed);
    assert!(largest < matrix / 50, "largest allocation {largest} bytes; the class's matrix is {matrix}");
}
