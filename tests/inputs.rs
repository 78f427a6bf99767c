//! Feature inputs beyond a plain `.npy` file: standard input, `.npz`
//! archives, float16; and the report's record of what was read.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command as StdCommand, Stdio};

use common::{activeft, fixture, json, write_npy_raw};

/// `select` (quick settings) with `features`, feeding `stdin`; (exit code, stdout, stderr, report).
fn run(features: &str, stdin: &[u8], extra: &[&str]) -> (Option<i32>, Vec<u8>, String, Option<serde_json::Value>) {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let mut child = StdCommand::new(env!("CARGO_BIN_EXE_activeft"))
        .args(["select", "--features", features, "--budget", "25", "--iterations", "15", "--report"])
        .arg(&report)
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    // A reader that stops early makes the write fail; that is fine here.
    let _ = input.write_all(stdin);
    drop(input);
    let out = child.wait_with_output().unwrap();
    let report = std::fs::read(&report).ok().map(|b| json(&b));
    (out.status.code(), out.stdout, String::from_utf8_lossy(&out.stderr).into_owned(), report)
}

fn digits_bytes() -> Vec<u8> {
    std::fs::read(fixture("digits.npy")).unwrap()
}

fn from_file() -> Vec<u8> {
    let (code, out, err, _) = run(fixture("digits.npy").to_str().unwrap(), b"", &[]);
    assert_eq!(code, Some(0), "{err}");
    out
}

#[test]
fn standard_input_reads_like_the_file_and_is_hashed_as_read() {
    let bytes = digits_bytes();
    let (code, out, err, report) = run("-", &bytes, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, from_file());
    let features = &report.unwrap()["features"][0];
    assert_eq!(features["path"], "-");
    assert_eq!(features["bytes"], bytes.len());
    assert_eq!(features["blake3"], blake3::hash(&bytes).to_hex().as_str());

    // The file's own record is the same bytes and hash.
    let (_, _, _, report) = run(fixture("digits.npy").to_str().unwrap(), b"", &[]);
    let file = &report.unwrap()["features"][0];
    assert_eq!((&file["bytes"], &file["blake3"]), (&features["bytes"], &features["blake3"]));
}

#[test]
fn bad_standard_input_is_one_line_and_exit_2() {
    let bytes = digits_bytes();
    let mut longer = bytes.clone();
    longer.extend(b"junk");
    for (input, needle) in [
        (&b""[..], "not an .npy file"),
        (&b"id,x\n1,2\n"[..], "not an .npy file"),
        (&bytes[..bytes.len() - 10], "truncated"),
        (&longer[..], "unexpected bytes after the array data"),
    ] {
        let (code, out, err, report) = run("-", input, &[]);
        assert_eq!(code, Some(2), "{err}");
        assert!(out.is_empty() && report.is_none());
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.contains("-: ") && err.contains(needle), "{needle}: {err}");
    }
    let (code, _, err, _) = run("-", &bytes, &["--features", "-"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("only once"), "{err}");
}

/// An .npz archive holding these members (name, .npy bytes), deflated or stored.
fn npz(path: &Path, members: &[(&str, &[u8])], deflated: bool) {
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let method = if deflated { zip::CompressionMethod::Deflated } else { zip::CompressionMethod::Stored };
    let options = zip::write::SimpleFileOptions::default().compression_method(method);
    for (name, bytes) in members {
        zip.start_file(*name, options).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap();
}

#[test]
fn npz_members_read_like_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = digits_bytes();
    let labels = std::fs::read(fixture("digits_labels.npy")).unwrap();
    let single = dir.path().join("single.npz");
    npz(&single, &[("arr_0.npy", &bytes)], true);
    let (code, out, err, report) = run(single.to_str().unwrap(), b"", &[]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, from_file());
    let record = &report.unwrap()["features"][0];
    assert_eq!(record["bytes"], bytes.len());
    assert_eq!(record["blake3"], blake3::hash(&bytes).to_hex().as_str());

    let several = dir.path().join("several.npz");
    npz(&several, &[("feats.npy", &bytes), ("labels.npy", &labels)], false);
    let spec = format!("{}:feats", several.display());
    let (code, out, err, _) = run(&spec, b"", &[]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, from_file());

    for (spec, needles) in [
        (several.display().to_string(), vec!["2 arrays", "feats, labels", ":KEY"]),
        (format!("{}:nope", several.display()), vec!["no array 'nope'", "feats, labels"]),
        (format!("{}:labels", several.display()), vec!["unsupported dtype '<i8'"]),
    ] {
        let (code, _, err, _) = run(&spec, b"", &[]);
        assert_eq!(code, Some(2), "{err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        for needle in needles {
            assert!(err.contains(needle), "{needle}: {err}");
        }
    }
    let broken = dir.path().join("broken.npz");
    std::fs::write(&broken, b"PK\x03\x04 not really").unwrap();
    let (code, _, err, _) = run(broken.to_str().unwrap(), b"", &[]);
    assert_eq!(code, Some(2));
    assert!(err.contains("not a readable .npz archive"), "{err}");
}

/// The float16 bits of a whole number in 0..=2048 (exact).
fn half(v: f32) -> u16 {
    if v == 0.0 {
        return 0;
    }
    let exponent = v.log2().floor() as i32;
    let fraction = ((v / 2f32.powi(exponent) - 1.0) * 1024.0) as u16;
    (((exponent + 15) as u16) << 10) | fraction
}

#[test]
fn float16_features_are_converted_exactly() {
    // The digits are whole numbers 0..16, exact in half precision.
    let (n, d, values) = common::read_f32(&fixture("digits.npy"));
    assert!(values.iter().all(|v| v.fract() == 0.0 && (0.0..=16.0).contains(v)));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("half.npy");
    let data: Vec<u8> = values.iter().flat_map(|&v| half(v).to_le_bytes()).collect();
    write_npy_raw(&path, "<f2", false, &format!("({n}, {d})"), &data);
    let a =
        activeft().args(["select", "--budget", "25", "--iterations", "15", "--features"]).arg(&path).assert().success();
    assert_eq!(a.get_output().stdout, from_file());
    // A half-precision infinity is refused by row and column.
    let mut data = data.clone();
    data[(3 * d + 2) * 2..(3 * d + 2) * 2 + 2].copy_from_slice(&0x7c00u16.to_le_bytes());
    write_npy_raw(&path, "<f2", false, &format!("({n}, {d})"), &data);
    let a = activeft().args(["select", "--budget", "5", "--features"]).arg(&path).assert().code(2);
    let err = String::from_utf8_lossy(&a.get_output().stderr).to_string();
    assert!(err.contains("row 3") && err.contains("column 2") && err.contains("inf"), "{err}");
}
