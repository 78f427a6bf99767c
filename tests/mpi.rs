//! The MPI build (`--features mpi`) under `mpirun -n 1, 2, 3`: the same
//! selection as one process over the same shards, losses within 1e-9, eval
//! alike, refusals on every rank, and a killed rank ending the run with
//! nothing written.
#![cfg(feature = "mpi")]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{activeft, fixture, json, read_f32, write_f32};

fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_activeft"))
}

fn mpirun(ranks: usize, args: &[&str], dir: &Path) -> Output {
    Command::new("mpirun")
        .args(["--allow-run-as-root", "--oversubscribe", "-n", &ranks.to_string()])
        .arg(binary())
        .args(args)
        .current_dir(dir)
        .output()
        .expect("mpirun runs")
}

/// The digits in shards of these sizes, in `dir`; their file names.
fn shards(dir: &Path, sizes: &[usize], tag: &str) -> Vec<String> {
    let (rows, cols, values) = read_f32(&fixture("digits.npy"));
    assert_eq!(sizes.iter().sum::<usize>(), rows);
    let mut start = 0;
    sizes
        .iter()
        .enumerate()
        .map(|(i, &size)| {
            let name = format!("{tag}{i}.npy");
            write_f32(&dir.join(&name), size, cols, &values[start * cols..(start + size) * cols]);
            start += size;
            name
        })
        .collect()
}

fn with_features<'a>(names: &'a [String], rest: &[&'a str]) -> Vec<&'a str> {
    let mut args = Vec::new();
    for name in names {
        args.extend(["--features", name.as_str()]);
    }
    args.extend(rest);
    args
}

fn losses(report: &serde_json::Value) -> Vec<f64> {
    report["losses"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect()
}

/// One process, then 1, 2 and 3 ranks: same selection, losses within 1e-9.
fn same_as_one_process(dir: &Path, names: &[String], rest: &[&str]) {
    let plain = activeft()
        .current_dir(dir)
        .args(["select", "--quiet", "--report", "plain.json"])
        .args(with_features(names, rest))
        .output()
        .unwrap();
    assert!(plain.status.success(), "{}", String::from_utf8_lossy(&plain.stderr));
    let plain_report = json(&std::fs::read(dir.join("plain.json")).unwrap());
    for ranks in 1..=3 {
        let args = [&["select", "--quiet", "--report", "ranks.json"][..], &with_features(names, rest)].concat();
        let out = mpirun(ranks, &args, dir);
        assert!(out.status.success(), "{ranks} ranks: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(json(&out.stdout), json(&plain.stdout), "{ranks} ranks, {rest:?}: another selection");
        let report = json(&std::fs::read(dir.join("ranks.json")).unwrap());
        for (a, b) in losses(&report).iter().zip(losses(&plain_report)) {
            assert!((a - b).abs() <= 1e-9, "{ranks} ranks: loss {a} vs {b}");
        }
        assert_eq!(report["picks"], plain_report["picks"]);
    }
}

#[test]
fn ranks_select_what_one_process_selects() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let unequal = shards(d, &[1000, 500, 297], "u");
    // With three ranks, rank 1's even share holds no shard's start: it owns no rows.
    let lopsided = shards(d, &[1777, 10, 10], "l");
    let labeled: Vec<usize> = (3..1797).step_by(37).collect();
    std::fs::write(d.join("labeled.json"), serde_json::to_string(&labeled).unwrap()).unwrap();
    let excluded = (6..1797).step_by(41).filter(|i| !labeled.contains(i));
    std::fs::write(d.join("exclude.txt"), excluded.map(|i| format!("{i}\n")).collect::<String>()).unwrap();
    same_as_one_process(d, &unequal, &["--budget", "40", "--iterations", "60"]);
    same_as_one_process(d, &lopsided, &["--budget", "40", "--iterations", "60"]);
    same_as_one_process(d, &unequal, &["--budget", "30", "--iterations", "40", "--init", "fps"]);
    same_as_one_process(
        d,
        &lopsided,
        &[
            "--budget",
            "30",
            "--iterations",
            "40",
            "--labeled",
            "labeled.json",
            "--exclude",
            "exclude.txt",
            "--init",
            "fps",
        ],
    );
    same_as_one_process(d, &unequal, &["--budget", "200", "--iterations", "30", "--batch-size", "700"]);
}

#[test]
fn a_file_split_across_ranks_has_no_hash() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Three ranks, two shards: even row shares split the first file over all
    // three ranks; the second lies within rank 2's share and is read whole.
    let names = shards(d, &[1200, 597], "h");
    let args = [
        &["select", "--quiet", "--report", "r.json"][..],
        &with_features(&names, &["--budget", "10", "--iterations", "5"]),
    ]
    .concat();
    let out = mpirun(3, &args, d);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report = json(&std::fs::read(d.join("r.json")).unwrap());
    let files = report["features"].as_array().unwrap();
    assert!(files[0]["blake3"].is_null(), "{}", files[0]);
    let whole = std::fs::read(d.join(&names[1])).unwrap();
    assert_eq!(files[1]["blake3"], blake3::hash(&whole).to_hex().as_str());
    assert_eq!(files[1]["bytes"], whole.len());
}

#[test]
fn eval_over_ranks_gives_the_same_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let names = shards(d, &[1000, 500, 297], "e");
    let selection: Vec<usize> = (0..1797).step_by(23).collect();
    std::fs::write(d.join("sel.json"), serde_json::to_string(&selection).unwrap()).unwrap();
    let labels = fixture("digits_labels.npy");
    let rest = ["--selection", "sel.json", "--labels", labels.to_str().unwrap(), "--json"];
    let plain = activeft().current_dir(d).arg("eval").args(with_features(&names, &rest)).output().unwrap();
    let plain = json(&plain.stdout);
    for ranks in 2..=3 {
        let out = mpirun(ranks, &[&["eval"][..], &with_features(&names, &rest)].concat(), d);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let got = json(&out.stdout);
        for (key, value) in plain.as_object().unwrap() {
            let (a, b) = (value.as_f64().unwrap(), got[key].as_f64().unwrap());
            assert!((a - b).abs() <= 1e-12, "{ranks} ranks: {key} {a} vs {b}");
        }
    }
}

#[test]
fn what_cannot_run_across_ranks_is_refused_on_every_rank() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let names = shards(d, &[1000, 797], "r");
    for (rest, needle) in [
        (vec!["select", "--budget", "10", "--method", "kmeans", "-o", "out.json"], "only activeft"),
        (vec!["select", "--budget", "5000", "-o", "out.json"], "--budget"),
        (
            vec!["select", "--budget", "10", "--labeled", "-", "-o", "out.json"],
            "--labeled: standard input (-) cannot be split",
        ),
    ] {
        let out = mpirun(2, &[&rest[..1], &with_features(&names, &rest[1..])].concat(), d);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        for rank in 0..2 {
            let line = format!("activeft: rank {rank} of 2: ");
            assert!(err.lines().any(|l| l.starts_with(&line) && l.contains(needle)), "{err}");
        }
        assert!(!d.join("out.json").exists());
    }
}

#[test]
fn a_killed_rank_ends_the_run_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (rows, cols) = (20_000, 64);
    let values: Vec<f32> = (0..rows * cols).map(|i| ((i * 7919) % 1013) as f32 / 1013.0 - 0.4).collect();
    write_f32(&d.join("big.npy"), rows, cols, &values);
    let mut child = Command::new("mpirun")
        .args(["--allow-run-as-root", "--oversubscribe", "-n", "2"])
        .arg(binary())
        .args(["select", "--quiet", "--features", "big.npy", "--budget", "300", "--iterations", "100000"])
        .args(["-o", "killed-run-out.json"])
        .current_dir(d)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // However long mpirun takes to start the ranks on a loaded machine, wait
    // for both (and a little longer, so they are past start-up), then kill one.
    let deadline = Instant::now() + Duration::from_secs(60);
    let pids = loop {
        let ranks = Command::new("pgrep").args(["-f", "killed-run-out.json"]).output().unwrap().stdout;
        let pids: Vec<u32> = String::from_utf8(ranks)
            .unwrap()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .filter(|&p| p != child.id())
            .collect();
        if pids.len() >= 2 {
            break pids;
        }
        assert!(child.try_wait().unwrap().is_none(), "the run ended before both ranks started");
        assert!(Instant::now() < deadline, "two ranks running after a minute: {pids:?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    std::thread::sleep(Duration::from_millis(500));
    Command::new("kill").args(["-9", &pids[pids.len() - 1].to_string()]).status().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the run went on after a rank was killed");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(!status.success());
    let left: Vec<_> = std::fs::read_dir(d).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, vec![std::ffi::OsString::from("big.npy")], "files left behind");
}
