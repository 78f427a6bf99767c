//! Helpers shared by the end-to-end tests.
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use assert_cmd::Command;

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

pub fn activeft() -> Command {
    Command::cargo_bin("activeft").unwrap()
}

/// Writes an .npy file with the given header fields and raw data bytes, so
/// tests can build malformed files (and dtypes ndarray-npy does not write).
pub fn write_npy_raw(path: &Path, descr: &str, fortran: bool, shape: &str, data: &[u8]) {
    let fortran = if fortran { "True" } else { "False" };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': {shape}, }}");
    while !(10 + header.len() + 1).is_multiple_of(64) {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    bytes.extend(data);
    std::fs::write(path, bytes).unwrap();
}

/// A float32 (rows, cols) array, as `np.save` writes it.
pub fn write_f32(path: &Path, rows: usize, cols: usize, values: &[f32]) {
    let array = ndarray::Array2::from_shape_vec((rows, cols), values.to_vec()).unwrap();
    ndarray_npy::write_npy(path, &array).unwrap();
}

/// A float32 fixture's shape and values.
pub fn read_f32(path: &Path) -> (usize, usize, Vec<f32>) {
    let array: ndarray::Array2<f32> = ndarray_npy::read_npy(path).unwrap();
    let (rows, cols) = array.dim();
    (rows, cols, array.into_raw_vec_and_offset().0)
}

/// An int64 label fixture.
pub fn read_labels(path: &Path) -> Vec<i64> {
    let array: ndarray::Array1<i64> = ndarray_npy::read_npy(path).unwrap();
    array.to_vec()
}

pub fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(bytes)))
}

/// The system allocator, remembering the largest single request: a test
/// binary installs it with `#[global_allocator]` to bound what code allocates.
pub struct Largest;

pub static LARGEST: AtomicUsize = AtomicUsize::new(0);

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
