//! End-to-end tests of the baselines (`select --method`) and `activeft eval`.

mod common;

use std::path::Path;

use common::{activeft, fixture, json, read_f32, write_f32, write_npy_raw};

fn select(method: &str, budget: &str, seed: &str) -> Vec<u8> {
    // ActiveFT's own flags are refused by the other methods.
    let iterations: &[&str] = if method == "activeft" { &["--iterations", "20"] } else { &[] };
    let a = activeft()
        .args(["select", "--features"])
        .arg(fixture("digits.npy"))
        .args(["--budget", budget, "--method", method, "--seed", seed])
        .args(iterations)
        .assert()
        .success();
    a.get_output().stdout.clone()
}

#[test]
fn every_method_selects_the_budget_reproducibly() {
    for method in ["activeft", "random", "fds", "kmeans"] {
        let out = select(method, "30", "2");
        let ids: Vec<usize> = serde_json::from_slice(&out).unwrap();
        assert_eq!(ids.len(), 30, "{method}");
        assert!(ids.windows(2).all(|w| w[0] < w[1]) && ids.iter().all(|&i| i < 1797), "{method}");
        assert_eq!(out, select(method, "30", "2"), "{method} is not deterministic");
        assert_ne!(out, select(method, "30", "3"), "{method} ignores the seed");
    }
}

#[test]
fn baseline_reports_name_the_method() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("r.json");
    activeft()
        .args(["select", "--features"])
        .arg(fixture("digits.npy"))
        .args(["--budget", "10", "--method", "kmeans", "--report"])
        .arg(&report)
        .assert()
        .success();
    let r = json(&std::fs::read(&report).unwrap());
    assert_eq!(r["method"], "kmeans");
    assert_eq!(r["init"].as_array().unwrap().len(), 10);
    assert!(!r["losses"].as_array().unwrap().is_empty(), "k-means reports its objective per iteration");
}

fn eval(selection: &Path, extra: &[&str]) -> assert_cmd::assert::Assert {
    activeft()
        .args(["eval", "--features"])
        .arg(fixture("digits.npy"))
        .arg("--selection")
        .arg(selection)
        .args(extra)
        .assert()
}

#[test]
fn eval_json_has_every_field_in_range() {
    let dir = tempfile::tempdir().unwrap();
    let sel = dir.path().join("sel.json");
    std::fs::write(&sel, select("activeft", "50", "0")).unwrap();
    let labels = fixture("digits_labels.npy");
    let a = eval(&sel, &["--json", "--labels", labels.to_str().unwrap()]).success();
    let m = json(&a.get_output().stdout);
    assert_eq!((m["n"].as_u64(), m["k"].as_u64()), (Some(1797), Some(50)));
    assert_eq!(m["classes_total"], 10);
    for field in ["coverage_mean", "coverage_max", "knn1_accuracy", "linear_accuracy"] {
        let v = m[field].as_f64().unwrap_or_else(|| panic!("{field} missing"));
        assert!((0.0..=1.0).contains(&v), "{field} = {v}");
    }
    assert!(m["knn1_accuracy"].as_f64().unwrap() > 0.8, "50 well-chosen digits label most of the pool");
    assert!(m["coverage_mean"].as_f64().unwrap() <= m["coverage_max"].as_f64().unwrap());

    // The same labels from a label column give the same metrics.
    let (n, d, values) = read_f32(&fixture("digits.npy"));
    let ys = common::read_labels(&labels);
    let with_labels: Vec<f32> =
        (0..n).flat_map(|i| values[i * d..(i + 1) * d].iter().copied().chain([ys[i] as f32])).collect();
    let labelled = dir.path().join("labelled.npy");
    write_f32(&labelled, n, d + 1, &with_labels);
    let b = activeft()
        .args(["eval", "--features"])
        .arg(&labelled)
        .args(["--label-column", "last", "--json", "--selection"])
        .arg(&sel)
        .assert()
        .success();
    assert_eq!(json(&b.get_output().stdout), m);

    // Without labels, only coverage; the table form is aligned text.
    let c = eval(&sel, &[]).success();
    let text = String::from_utf8(c.get_output().stdout.clone()).unwrap();
    assert!(text.contains("coverage mean") && !text.contains("accuracy"), "{text}");
}

#[test]
fn selecting_everything_gives_zero_coverage_and_absent_accuracies() {
    let dir = tempfile::tempdir().unwrap();
    let sel = dir.path().join("all.json");
    std::fs::write(&sel, serde_json::to_string(&(0..1797).collect::<Vec<_>>()).unwrap()).unwrap();
    let labels = fixture("digits_labels.npy");
    let m = json(&eval(&sel, &["--json", "--labels", labels.to_str().unwrap()]).success().get_output().stdout);
    assert_eq!((m["coverage_mean"].as_f64(), m["coverage_max"].as_f64()), (Some(0.0), Some(0.0)));
    assert!(m["knn1_accuracy"].is_null() && m["linear_accuracy"].is_null());
    assert_eq!(m["classes_present"], 10);
}

#[test]
fn plot_writes_an_svg_with_the_selection() {
    let dir = tempfile::tempdir().unwrap();
    let sel = dir.path().join("sel.json");
    std::fs::write(&sel, "[3, 99, 1000]").unwrap();
    let svg = dir.path().join("pool.svg");
    eval(&sel, &["--plot", svg.to_str().unwrap()]).success();
    let doc = std::fs::read_to_string(&svg).unwrap();
    assert!(doc.starts_with("<svg") && doc.matches(r#"r="4""#).count() == 3);
}

fn eval_fails(selection_text: &str, extra: &[&str], needles: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let sel = dir.path().join("sel.json");
    std::fs::write(&sel, selection_text).unwrap();
    let a = eval(&sel, extra).code(2);
    let out = a.get_output();
    assert!(out.stdout.is_empty());
    let err = String::from_utf8(out.stderr.clone()).unwrap();
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    for needle in needles {
        assert!(err.contains(needle), "expected {needle:?} in {err:?}");
    }
}

#[test]
fn bad_eval_input_is_named() {
    eval_fails("[1, 2, 1797]", &[], &["sel.json", "1797 is out of range"]);
    eval_fails("[5, 2, 5]", &[], &["sel.json", "5 appears more than once"]);
    eval_fails("[]", &[], &["sel.json", "empty"]);
    eval_fails("[1, 2", &[], &["sel.json", "not valid JSON"]);

    let dir = tempfile::tempdir().unwrap();
    let short = dir.path().join("short.npy");
    write_npy_raw(&short, "<i8", false, "(3,)", &[0u8; 24]);
    eval_fails("[1, 2]", &["--labels", short.to_str().unwrap()], &["short.npy", "3 labels", "1797"]);
    let floats = dir.path().join("floats.npy");
    write_f32(&floats, 1797, 1, &vec![0.5; 1797]);
    eval_fails("[1, 2]", &["--labels", floats.to_str().unwrap()], &["floats.npy", "must be integers"]);
    let table = dir.path().join("table.npy");
    write_npy_raw(&table, "<i8", false, "(1797, 2)", &vec![0u8; 1797 * 16]);
    eval_fails("[1, 2]", &["--labels", table.to_str().unwrap()], &["table.npy", "1-D"]);

    // A label column that is not integral.
    let (n, d, values) = read_f32(&fixture("digits.npy"));
    let rows: Vec<f32> =
        (0..n).flat_map(|i| values[i * d..(i + 1) * d].iter().copied().chain([i as f32 / 2.0])).collect();
    let halves = dir.path().join("halves.npy");
    write_f32(&halves, n, d + 1, &rows);
    let sel = dir.path().join("sel.json");
    std::fs::write(&sel, "[1, 2]").unwrap();
    let a = activeft()
        .args(["eval", "--features"])
        .arg(&halves)
        .args(["--label-column", "last", "--selection"])
        .arg(&sel)
        .assert()
        .code(2);
    let err = String::from_utf8_lossy(&a.get_output().stderr).to_string();
    assert!(err.contains("halves.npy") && err.contains("row 1") && err.contains("not an integer"), "{err}");
}

#[test]
fn a_bad_label_in_a_later_shard_is_named_by_that_file_and_its_own_row() {
    let (n, d, values) = read_f32(&fixture("digits.npy"));
    let dir = tempfile::tempdir().unwrap();
    let rows = |range: std::ops::Range<usize>, bad: Option<usize>| -> Vec<f32> {
        range
            .flat_map(|i| {
                let label = if Some(i) == bad { 0.5 } else { (i % 10) as f32 };
                values[i * d..(i + 1) * d].iter().copied().chain([label]).collect::<Vec<_>>()
            })
            .collect()
    };
    let (first, second) = (dir.path().join("first.npy"), dir.path().join("second.npy"));
    write_f32(&first, 1000, d + 1, &rows(0..1000, None));
    write_f32(&second, n - 1000, d + 1, &rows(1000..n, Some(1003)));
    let sel = dir.path().join("sel.json");
    std::fs::write(&sel, "[1, 2]").unwrap();
    let a = activeft()
        .args(["eval", "--features"])
        .arg(&first)
        .arg("--features")
        .arg(&second)
        .args(["--label-column", "last", "--selection"])
        .arg(&sel)
        .assert()
        .code(2);
    let err = String::from_utf8_lossy(&a.get_output().stderr).to_string();
    assert!(err.contains("second.npy: row 3 (sample 1003 overall)") && err.contains("0.5"), "{err}");
}

#[test]
fn facility_location_covers_the_digits_best() {
    // The greedy on eval's own objective: its coverage is the lowest of the methods here.
    let dir = tempfile::tempdir().unwrap();
    let coverage = |method: &str| {
        let sel = dir.path().join(format!("{method}.json"));
        std::fs::write(&sel, select(method, "50", "0")).unwrap();
        json(&eval(&sel, &["--json"]).success().get_output().stdout)["coverage_mean"].as_f64().unwrap()
    };
    let facloc = coverage("facloc");
    for other in ["activeft", "random", "fds", "kmeans"] {
        let theirs = coverage(other);
        assert!(facloc < theirs, "facloc {facloc} vs {other} {theirs}");
    }
}
