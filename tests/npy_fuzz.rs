//! The `.npy` reader on damaged files: every truncation point of small
//! files, random byte flips and random edits of the header text. It never
//! panics, never asks for more memory than the file could describe, and
//! every refusal is one line that names the file (exit 2 from the binary).

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use activeft::internals::load_features;
use ndarray::Array2;
use ndarray_npy::WriteNpyExt;
use proptest::prelude::*;

#[global_allocator]
static ALLOCATOR: common::Largest = common::Largest;

/// Buffers the reader may hold whatever the file: its read chunk and buffer.
const FIXED_BUFFERS: usize = 4 << 20;

/// Good files to damage: float32 C order, float64 Fortran order, big-endian.
fn originals(dir: &Path) -> Vec<Vec<u8>> {
    let values = Array2::from_shape_fn((12, 5), |(i, j)| (i * 5 + j) as f32 * 0.1 + 0.05);
    let mut c32 = Vec::new();
    values.write_npy(&mut c32).unwrap();
    let mut f64_fortran = Vec::new();
    let fortran = values.mapv(f64::from).t().as_standard_layout().into_owned().reversed_axes();
    assert!(fortran.t().is_standard_layout());
    fortran.write_npy(&mut f64_fortran).unwrap();
    let big = dir.join("big.npy");
    let data: Vec<u8> = values.iter().flat_map(|v| v.to_be_bytes()).collect();
    common::write_npy_raw(&big, ">f4", false, "(12, 5)", &data);
    vec![c32, f64_fortran, std::fs::read(big).unwrap()]
}

/// Loads `bytes` as a pool file; checks the reader's promises either way.
fn check(path: &Path, bytes: &[u8]) -> Result<(), String> {
    std::fs::write(path, bytes).unwrap();
    common::LARGEST.store(0, Ordering::Relaxed);
    let paths = [PathBuf::from(path)];
    let loaded = std::panic::catch_unwind(|| load_features(&paths, false).map(|_| ()).map_err(|e| e.to_string()));
    let largest = common::LARGEST.load(Ordering::Relaxed);
    let result = loaded.map_err(|_| format!("the reader panicked on {bytes:?}"))?;
    if largest > bytes.len() * 2 + FIXED_BUFFERS {
        return Err(format!("asked for {largest} bytes from a file of {}", bytes.len()));
    }
    if let Err(message) = &result
        && (message.contains('\n') || !message.contains(&path.display().to_string()))
    {
        return Err(format!("not one line naming the file: {message}"));
    }
    Ok(())
}

#[test]
fn every_truncation_point_is_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.npy");
    for original in originals(dir.path()) {
        check(&path, &original).unwrap();
        assert!(load_features(std::slice::from_ref(&path), false).is_ok(), "the untouched file loads");
        for len in 0..original.len() {
            check(&path, &original[..len]).unwrap();
            assert!(load_features(std::slice::from_ref(&path), false).is_err(), "cut at {len} was accepted");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]
    #[test]
    fn random_damage_never_panics_or_overallocates(
        which in 0usize..3,
        flips in proptest::collection::vec((0usize..400, any::<u8>(), any::<bool>()), 1..6),
        shape in (0u64..u64::MAX, 0u64..100_000),
        edit_shape in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = originals(dir.path()).swap_remove(which);
        if edit_shape {
            // Rewrite the shape in the header text, keeping its length where possible.
            let text = String::from_utf8_lossy(&bytes).into_owned();
            if let (Some(a), Some(b)) = (text.find("'shape': ("), text.find("), }")) {
                let new = format!("'shape': ({}, {}", shape.0, shape.1);
                let mut edited = bytes[..a].to_vec();
                edited.extend(new.as_bytes());
                edited.extend(&bytes[b..]);
                bytes = edited;
            }
        }
        for (at, byte, in_header) in flips {
            // Most damage lands in the header, where the parsing is.
            let at = if in_header { at % 128 } else { at };
            if at < bytes.len() {
                bytes[at] = byte;
            }
        }
        prop_assert_eq!(check(&dir.path().join("damaged.npy"), &bytes), Ok(()));
    }
}

#[test]
fn the_binary_refuses_damaged_files_with_exit_2_and_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let original = originals(dir.path()).swap_remove(0);
    let path = dir.path().join("bad.npy");
    let mut huge_header = original.clone();
    huge_header[8..10].copy_from_slice(&u16::MAX.to_le_bytes());
    let mut huge_shape = String::from_utf8_lossy(&original).into_owned().into_bytes();
    let at = String::from_utf8_lossy(&original).find("(12, 5)").unwrap();
    huge_shape.splice(at..at + 7, b"(9999999999999, 99999999)".iter().copied());
    for bytes in [&original[..original.len() - 3], &huge_header[..], &huge_shape[..], &original[..9]] {
        std::fs::write(&path, bytes).unwrap();
        let a = common::activeft().args(["select", "--budget", "2", "--features"]).arg(&path).assert().code(2);
        let err = String::from_utf8_lossy(&a.get_output().stderr).to_string();
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.contains("bad.npy"), "{err}");
    }
}
