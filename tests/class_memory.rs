//! BiLAF's stage two holds O(class size) per class, never a class-size-squared
//! distance matrix: one core makes the whole pool one class, and no single
//! allocation may come near the matrix that class would need.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use activeft::internals::synth::mixture;
use activeft::internals::{ActiveFtParams, Method, Round, run};

/// The system allocator, remembering the largest single request.
struct Largest;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for Largest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Largest = Largest;

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
    LARGEST.store(0, Ordering::Relaxed);
    let outcome = run(&method, &mut features, 60, 0, &Round::first(n), |_, _| {}).unwrap();
    assert_eq!(outcome.selected.len(), 60);
    let matrix = n * n * 8;
    let largest = LARGEST.load(Ordering::Relaxed);
    assert!(largest < matrix / 50, "largest allocation {largest} bytes; the class's matrix is {matrix}");
}
