//! The reference implementations' outputs on fixed inputs (tests/fixtures,
//! produced by the papers' own code): same selection, same loss curve.

mod common;

use common::{activeft, fixture, json};

fn reproduces(name: &str) {
    let expected = json(&std::fs::read(fixture(&format!("{name}_expected.json"))).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let field = |k: &str| expected[k].to_string().trim_matches('"').to_string();
    let output = activeft()
        .arg("select")
        .arg("--features")
        .arg(fixture(expected["features"].as_str().unwrap()))
        .arg("--init-indices")
        .arg(fixture(&format!("{name}_init.json")))
        .args(["--budget", &field("budget"), "--iterations", &field("iterations")])
        .args(["--temperature", &field("temperature"), "--lr", &field("lr"), "--balance", &field("balance")])
        .args(["--scheduler", &field("scheduler"), "--quiet", "--report"])
        .arg(&report)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));

    assert_eq!(json(&output.stdout), expected["selected_sorted"], "{name}: selection differs");
    let report = json(&std::fs::read(&report).unwrap());
    let ours: Vec<f64> = report["losses"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    let theirs: Vec<f64> = expected["losses"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert_eq!(ours.len(), theirs.len());
    let tolerance = expected["loss_tolerance"].as_f64().unwrap_or(1e-4);
    for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        assert!((a - b).abs() <= tolerance, "{name}: loss {i}: ours {a}, reference {b}");
    }
}

#[test]
fn digits_budget_20() {
    reproduces("digits_k20");
}

#[test]
fn blobs_budget_40() {
    reproduces("blobs2k_k40");
}

#[test]
fn digits_temperature_0005_where_the_reference_needs_float64() {
    reproduces("digits_k30_t0005");
}

#[test]
fn digits_cosine_schedule_and_balance() {
    reproduces("digits_k50_cosine");
}

/// BiLAF end to end: ActiveFT's fixture settings and init give the cores,
/// the paper's stage two the rest.
fn reproduces_bilaf(name: &str, budget: usize) {
    let core = json(&std::fs::read(fixture(&format!("{name}_expected.json"))).unwrap());
    let expected = json(&std::fs::read(fixture(&format!("bilaf_{name}_b{budget}_expected.json"))).unwrap());
    let field = |k: &str| core[k].to_string().trim_matches('"').to_string();
    let output = activeft()
        .args(["select", "--method", "bilaf", "--features"])
        .arg(fixture(core["features"].as_str().unwrap()))
        .arg("--init-indices")
        .arg(fixture(&format!("{name}_init.json")))
        .args(["--budget", &budget.to_string(), "--core", &field("budget"), "--iterations", &field("iterations")])
        .args(["--temperature", &field("temperature"), "--lr", &field("lr"), "--balance", &field("balance")])
        .args(["--scheduler", &field("scheduler"), "--quiet"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(json(&output.stdout), expected["selected_sorted"], "bilaf after {name}: selection differs");
}

#[test]
fn bilaf_digits_budget_60_from_20_cores() {
    reproduces_bilaf("digits_k20", 60);
}

#[test]
fn bilaf_digits_budget_200_from_50_cores_cosine_schedule() {
    reproduces_bilaf("digits_k50_cosine", 200);
}

#[test]
fn bilaf_blobs_budget_120_from_40_cores() {
    reproduces_bilaf("blobs2k_k40", 120);
}
