//! Rounds and names: selecting after what is already labeled, never picking
//! excluded samples, names in and out, and `eval` on a union of rounds with
//! bounds for CI jobs.

mod common;

use std::path::{Path, PathBuf};

use common::{activeft, fixture, json};

const METHODS: [&str; 8] = ["activeft", "bilaf", "random", "fds", "kmeans", "facloc", "typiclust", "probcover"];

fn digits() -> PathBuf {
    fixture("digits.npy")
}

/// `select` on the digits with `args`; its stdout.
fn select(args: &[&str]) -> Vec<u8> {
    let a = activeft().args(["select", "--quiet", "--features"]).arg(digits()).args(args).assert().success();
    a.get_output().stdout.clone()
}

fn ids(bytes: &[u8]) -> Vec<usize> {
    serde_json::from_slice(bytes).unwrap()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn method_args(method: &str) -> Vec<&str> {
    let mut args = vec!["--method", method];
    if method == "activeft" || method == "bilaf" {
        args.extend(["--iterations", "30"]);
    }
    if method == "probcover" {
        args.extend(["--delta", "0.3"]);
    }
    args
}

#[test]
fn a_second_round_adds_new_samples_only_for_every_method() {
    let dir = tempfile::tempdir().unwrap();
    let excluded: Vec<usize> = (0..1797).filter(|i| i % 13 == 0).collect();
    let exclude = write(dir.path(), "exclude.txt", &excluded.iter().map(|i| format!("{i}\n")).collect::<String>());
    for method in METHODS {
        let args = method_args(method);
        let first = select(&[&args[..], &["--budget", "50", "--exclude", exclude.to_str().unwrap()]].concat());
        let labeled = write(dir.path(), "first.json", std::str::from_utf8(&first).unwrap());
        let report = dir.path().join("report.json");
        let second = select(
            &[
                &args[..],
                &["--budget", "50", "--labeled", labeled.to_str().unwrap(), "--exclude", exclude.to_str().unwrap()],
                &["--report", report.to_str().unwrap()],
            ]
            .concat(),
        );
        let (first, second) = (ids(&first), ids(&second));
        assert_eq!(second.len(), 50, "{method}");
        let mut union: Vec<usize> = first.iter().chain(&second).copied().collect();
        union.sort_unstable();
        union.dedup();
        assert_eq!(union.len(), 100, "{method}: the rounds overlap");
        assert!(union.iter().all(|i| i % 13 != 0), "{method} picked an excluded sample");
        let r = json(&std::fs::read(&report).unwrap());
        assert_eq!((r["labeled"].as_u64(), r["excluded"].as_u64()), (Some(50), Some(excluded.len() as u64)));
        let mut picks: Vec<usize> = serde_json::from_value(r["picks"].clone()).unwrap();
        picks.sort_unstable();
        assert_eq!(picks, second, "{method}: picks are the selection in another order");
    }
}

#[test]
fn an_empty_labeled_list_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let empty = write(dir.path(), "empty.json", "[]");
    let empty_lines = write(dir.path(), "empty.txt", "");
    for method in METHODS {
        let args = method_args(method);
        let plain = select(&[&args[..], &["--budget", "30"]].concat());
        for list in [&empty, &empty_lines] {
            let with = select(&[&args[..], &["--budget", "30", "--labeled", list.to_str().unwrap()]].concat());
            assert_eq!(plain, with, "{method}");
        }
    }
}

#[test]
fn labeled_samples_change_where_the_new_picks_go() {
    // Label half of one digit class: a second round should spend less on it
    // than a first round does, since the labeled half already serves it.
    let dir = tempfile::tempdir().unwrap();
    let labels = common::read_labels(&fixture("digits_labels.npy"));
    let half: Vec<usize> = (0..1797).filter(|&i| labels[i] == 0).step_by(2).collect();
    let labeled = write(dir.path(), "zeros.json", &serde_json::to_string(&half).unwrap());
    for method in ["activeft", "bilaf", "fds", "kmeans", "facloc"] {
        let mut args = vec!["--method", method];
        if method == "activeft" || method == "bilaf" {
            args.extend(["--lr", "0.01"]);
        }
        let count_zeros = |bytes: &[u8]| ids(bytes).iter().filter(|&&i| labels[i] == 0).count();
        let fresh = count_zeros(&select(&[&args[..], &["--budget", "60"]].concat()));
        let after =
            count_zeros(&select(&[&args[..], &["--budget", "60", "--labeled", labeled.to_str().unwrap()]].concat()));
        eprintln!("{method}: zeros picked {fresh} fresh, {after} after labeling half of them");
        assert!(after < fresh, "{method}: {after} zeros after labeling half, {fresh} without");
    }
}

#[test]
fn names_go_out_and_come_back_in() {
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = (0..1797).map(|i| format!("images/{:04}.png", i)).collect();
    let names_file = write(dir.path(), "names.txt", &(names.join("\n") + "\n"));
    let n = names_file.to_str().unwrap();
    let plain = ids(&select(&["--budget", "20", "--method", "fds"]));
    let as_names: Vec<String> =
        serde_json::from_slice(&select(&["--budget", "20", "--method", "fds", "--names", n])).unwrap();
    assert_eq!(as_names, plain.iter().map(|&i| names[i].clone()).collect::<Vec<_>>());
    let lines = select(&["--budget", "20", "--method", "fds", "--names", n, "--format", "lines"]);
    let want: String = plain.iter().map(|&i| format!("{}\n", names[i])).collect();
    assert_eq!(String::from_utf8(lines.clone()).unwrap(), want);
    let id_lines = select(&["--budget", "20", "--method", "fds", "--format", "lines"]);
    assert_eq!(String::from_utf8(id_lines).unwrap(), plain.iter().map(|i| format!("{i}\n")).collect::<String>());

    // Both forms of the names output are accepted as --labeled.
    let json_list = write(dir.path(), "round1.json", &serde_json::to_string(&as_names).unwrap());
    let line_list = write(dir.path(), "round1.txt", std::str::from_utf8(&lines).unwrap());
    let by_ids = write(dir.path(), "round1_ids.json", &serde_json::to_string(&plain).unwrap());
    let next = |list: &Path| select(&["--budget", "20", "--method", "fds", "--labeled", list.to_str().unwrap()]);
    let want = next(&by_ids);
    let with_names = |list: &Path| {
        select(&[
            "--budget",
            "20",
            "--method",
            "fds",
            "--names",
            n,
            "--format",
            "json",
            "--labeled",
            list.to_str().unwrap(),
        ])
    };
    let expected: Vec<String> = ids(&want).iter().map(|&i| names[i].clone()).collect();
    for list in [&json_list, &line_list] {
        let got: Vec<String> = serde_json::from_slice(&with_names(list)).unwrap();
        assert_eq!(got, expected);
    }

    // eval takes names too.
    let a = activeft()
        .args(["eval", "--json", "--features"])
        .arg(digits())
        .args(["--names", n, "--selection"])
        .arg(&line_list)
        .assert()
        .success();
    assert_eq!(json(&a.get_output().stdout)["k"], 20);
}

/// `select` on the digits must fail with exit 2, one line containing every needle, and no output.
fn refused(args: &[&str], needles: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.json");
    let a = activeft().args(["select", "--features"]).arg(digits()).args(args).arg("-o").arg(&out).assert().code(2);
    let err = String::from_utf8_lossy(&a.get_output().stderr).to_string();
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    for needle in needles {
        assert!(err.contains(needle), "expected {needle:?} in {err:?}");
    }
    assert!(!out.exists());
}

#[test]
fn bad_rounds_and_names_are_refused_by_file_and_place() {
    let dir = tempfile::tempdir().unwrap();
    let at = |name: &str, text: &str| write(dir.path(), name, text).to_str().unwrap().to_string();
    let (a, b) = (at("a.json", "[1, 2, 3]"), at("b.txt", "5\n3\n"));
    refused(&["--budget", "5", "--labeled", &a, "--exclude", &b], &["b.txt", "sample 3 is also in the labeled"]);
    refused(
        &["--budget", "5", "--labeled", &at("r.json", "[1, 1797]")],
        &["r.json", "entry 1", "1797 is out of range"],
    );
    refused(
        &["--budget", "5", "--exclude", &at("d.txt", "4\n9\n4\n")],
        &["d.txt", "line 3", "4 appears more than once"],
    );
    let most: Vec<usize> = (0..1790).collect();
    let most = at("most.json", &serde_json::to_string(&most).unwrap());
    refused(&["--budget", "8", "--labeled", &most], &["--budget", "8 is more than the 7 samples left"]);
    refused(&["--budget", "1%", "--exclude", &most], &["--budget", "17 is more than the 7 samples left"]);
    refused(&["--budget", "5", "--labeled", &at("n.json", r#"["x.png"]"#)], &["n.json", "no --names file"]);

    let names: String = (0..1797).map(|i| format!("s{i}\n")).collect();
    let good = at("names.txt", &names);
    refused(
        &["--budget", "5", "--names", &good, "--labeled", &at("u.txt", "s3\nnope\n")],
        &["u.txt", "line 2", "'nope'"],
    );
    refused(&["--budget", "5", "--names", &at("short.txt", "a\nb\n")], &["short.txt", "holds 2 names", "1797"]);
    refused(&["--budget", "5", "--names", &at("gap.txt", "a\n\nb\n")], &["gap.txt", "line 2 is empty"]);
    refused(&["--budget", "5", "--names", &at("twice.txt", "a\nb\na\n")], &["twice.txt", "line 3"]);
    let latin1 = dir.path().join("latin1.txt");
    std::fs::write(&latin1, b"caf\xe9\n").unwrap();
    refused(&["--budget", "5", "--names", latin1.to_str().unwrap()], &["latin1.txt", "UTF-8"]);
    refused(
        &["--budget", "5", "--init-indices", &at("init.json", "[1, 2, 3, 4, 5]"), "--labeled", &a],
        &["init.json", "labeled or excluded"],
    );
}

fn eval(args: &[&str]) -> assert_cmd::assert::Assert {
    activeft().args(["eval", "--features"]).arg(digits()).args(args).assert()
}

#[test]
fn eval_judges_the_union_of_rounds_and_what_was_labeled() {
    let dir = tempfile::tempdir().unwrap();
    let first = write(dir.path(), "r1.json", "[1, 2, 3]");
    let second = write(dir.path(), "r2.txt", "10\n3\n20\n");
    let union = write(dir.path(), "all.json", "[1, 2, 3, 10, 20]");
    let metrics = |args: &[&str]| json(&eval(&[&["--json"], args].concat()).success().get_output().stdout);
    let together = metrics(&["--selection", first.to_str().unwrap(), "--selection", second.to_str().unwrap()]);
    assert_eq!(together, metrics(&["--selection", union.to_str().unwrap()]));
    assert_eq!(together["k"], 5);
    let labeled = metrics(&["--selection", second.to_str().unwrap(), "--labeled", first.to_str().unwrap()]);
    assert_eq!(labeled, together);
}

#[test]
fn eval_bounds_fail_with_exit_3_after_printing_the_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let sel =
        write(dir.path(), "sel.json", &String::from_utf8(select(&["--budget", "50", "--method", "kmeans"])).unwrap());
    let labels = fixture("digits_labels.npy");
    let base = ["--json", "--selection", sel.to_str().unwrap(), "--labels", labels.to_str().unwrap()];
    let passing = eval(&[&base[..], &["--min", "knn1_accuracy=0.5", "--max", "coverage_mean=0.5"]].concat());
    let m = json(&passing.success().get_output().stdout);
    let knn = m["knn1_accuracy"].as_f64().unwrap();

    let failing =
        eval(&[&base[..], &["--min", "knn1_accuracy=0.999", "--max", "coverage_mean=0.0001", "--min", "k=1"]].concat());
    let out = failing.code(3).get_output().clone();
    assert_eq!(json(&out.stdout), m, "the metrics are printed as usual");
    let err = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = err.trim_end().lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    let shown = lines[0].split("knn1_accuracy is ").nth(1).and_then(|r| r.split(',').next()).unwrap();
    // serde_json reads floats to within an ulp.
    assert!((shown.parse::<f64>().unwrap() - knn).abs() < 1e-12, "{err}");
    assert!(lines[0].ends_with("below the --min 0.999"), "{err}");
    assert!(lines[1].contains("coverage_mean") && lines[1].contains("above the --max 0.0001"), "{err}");

    for (args, needle) in [
        (vec!["--min", "knn_accuracy=0.5"], "unknown metric 'knn_accuracy'"),
        (vec!["--min", "knn1_accuracy"], "METRIC=VALUE"),
        (vec!["--max", "coverage_mean=lots"], "not a number"),
    ] {
        let a = eval(&[&base[..], &args[..]].concat()).code(2);
        let err = String::from_utf8_lossy(&a.get_output().stderr).to_string();
        assert!(err.contains(needle) && err.trim_end().lines().count() == 1, "{err}");
        assert!(a.get_output().stdout.is_empty());
    }
    // A metric that needs labels, without labels.
    let a = eval(&["--selection", sel.to_str().unwrap(), "--min", "linear_accuracy=0.1"]).code(2);
    assert!(String::from_utf8_lossy(&a.get_output().stderr).contains("needs labels"));
}

#[test]
fn facloc_partitions_select_the_budget_and_are_refused_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let exclude = write(dir.path(), "x.txt", "1\n2\n3\n");
    let picks = ids(&select(&[
        "--budget",
        "40",
        "--method",
        "facloc",
        "--partitions",
        "8",
        "--exclude",
        exclude.to_str().unwrap(),
    ]));
    assert_eq!(picks.len(), 40);
    assert!(picks.iter().all(|&i| i > 3 || i == 0));
    // One part is the exact greedy.
    assert_eq!(
        select(&["--budget", "30", "--method", "facloc", "--partitions", "1"]),
        select(&["--budget", "30", "--method", "facloc"])
    );
    refused(&["--budget", "5", "--method", "kmeans", "--partitions", "4"], &["--partitions", "facloc"]);
    refused(&["--budget", "5", "--method", "facloc", "--partitions", "0"], &["--partitions"]);
    refused(
        &["--budget", "5", "--method", "facloc", "--partitions", "5000"],
        &["--partitions", "5000 is more than the 1797"],
    );
}

#[test]
fn typiclust_takes_its_cluster_count_and_refuses_it_elsewhere() {
    let a = ids(&select(&["--budget", "30", "--method", "typiclust", "--clusters", "10"]));
    let b = ids(&select(&["--budget", "30", "--method", "typiclust"]));
    assert_eq!((a.len(), b.len()), (30, 30));
    assert_ne!(a, b, "10 clusters and the default 30 pick differently");
    refused(&["--budget", "5", "--method", "fds", "--clusters", "4"], &["--clusters", "typiclust"]);
    refused(&["--budget", "5", "--method", "typiclust", "--clusters", "0"], &["--clusters"]);
    refused(&["--budget", "5", "--method", "typiclust", "--clusters", "1798"], &["--clusters", "1797"]);
}

#[test]
fn probcover_needs_a_radius_and_reports_its_graph() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("r.json");
    let picks = ids(&select(&[
        "--budget",
        "30",
        "--method",
        "probcover",
        "--purity-classes",
        "10",
        "--report",
        report.to_str().unwrap(),
    ]));
    assert_eq!(picks.len(), 30);
    let r = json(&std::fs::read(&report).unwrap());
    let (delta, edges) = (r["graph"]["delta"].as_f64().unwrap(), r["graph"]["edges"].as_u64().unwrap());
    assert!(delta > 0.0 && edges >= 1797, "{delta} {edges}");
    refused(&["--budget", "5", "--method", "probcover"], &["--delta", "--purity-classes"]);
    refused(&["--budget", "5", "--method", "probcover", "--delta", "0"], &["--delta", "positive"]);
    refused(&["--budget", "5", "--method", "probcover", "--delta", "-1"], &["--delta"]);
    refused(&["--budget", "5", "--method", "kmeans", "--delta", "0.3"], &["--delta", "probcover"]);
    refused(
        &["--budget", "5", "--method", "probcover", "--delta", "0.3", "--purity-classes", "4"],
        &["--purity-classes"],
    );
}

#[test]
fn bilaf_takes_its_core_count_and_refuses_it_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("r.json");
    let r = report.to_str().unwrap();
    let fast = ["--method", "bilaf", "--iterations", "20"];
    let default = ids(&select(&[&fast[..], &["--budget", "40", "--report", r]].concat()));
    assert_eq!(default.len(), 40);
    let core_of = |path: &Path| json(&std::fs::read(path).unwrap())["params"]["core"].as_u64();
    assert_eq!(core_of(&report), Some(20), "half the budget by default");
    let share = ids(&select(&[&fast[..], &["--budget", "40", "--core", "1%", "--report", r]].concat()));
    assert_eq!((share.len(), core_of(&report)), (40, Some(17)));
    assert_ne!(default, share);
    // The first picks are ActiveFT's own selection for the core count.
    let picks: Vec<usize> = serde_json::from_value(json(&std::fs::read(&report).unwrap())["picks"].clone()).unwrap();
    let mut cores = picks[..17].to_vec();
    cores.sort_unstable();
    assert_eq!(cores, ids(&select(&["--iterations", "20", "--budget", "17"])));

    refused(&[&fast[..], &["--budget", "40", "--core", "40"]].concat(), &["--core", "less than the budget (40)"]);
    refused(&[&fast[..], &["--budget", "40", "--core", "0"]].concat(), &["--core", "at least 1"]);
    refused(&[&fast[..], &["--budget", "40", "--core", "3%"]].concat(), &["--core", "53 must be less"]);
    refused(&[&fast[..], &["--budget", "1"]].concat(), &["--budget", "at least 2"]);
    refused(&["--budget", "5", "--method", "typiclust", "--core", "2"], &["--core", "bilaf"]);
    refused(&["--budget", "5", "--core", "2"], &["--core", "bilaf"]);
    let init = write(dir.path(), "init.json", "[1, 2, 3]");
    refused(
        &[&fast[..], &["--budget", "10", "--core", "4", "--init-indices", init.to_str().unwrap()]].concat(),
        &["init.json", "3 sample ids", "has 4 points", "--core"],
    );
}

/// A list may come from standard input (`-`), as from a pipe: the same
/// picks and metrics as from a file; a second `-`, or `-` for a list and
/// the pool, is refused by flag.
#[test]
fn lists_may_come_from_standard_input_once() {
    let dir = tempfile::tempdir().unwrap();
    let first = select(&["--budget", "20", "--method", "kmeans"]);
    let file = write(dir.path(), "r1.json", &String::from_utf8(first.clone()).unwrap());
    let from_file = select(&["--budget", "20", "--method", "fds", "--labeled", file.to_str().unwrap()]);
    let piped = activeft()
        .args(["select", "--quiet", "--budget", "20", "--method", "fds", "--labeled", "-", "--features"])
        .arg(digits())
        .write_stdin(first.clone())
        .assert()
        .success();
    assert_eq!(piped.get_output().stdout, from_file);

    let labels = fixture("digits_labels.npy");
    let judged = |args: &[&str], stdin: Vec<u8>| {
        let mut cmd = activeft();
        cmd.args(["eval", "--json", "--labels"]).arg(&labels).args(["--features"]).arg(digits()).args(args);
        json(&cmd.write_stdin(stdin).assert().success().get_output().stdout)
    };

    let from_pipe = judged(&["--selection", "-"], first.clone());
    assert_eq!(from_pipe, judged(&["--selection", file.to_str().unwrap()], Vec::new()));
    assert_eq!(from_pipe["k"], 20);
    let labels_piped = activeft()
        .args(["eval", "--json", "--labels", "-", "--selection"])
        .arg(&file)
        .args(["--features"])
        .arg(digits())
        .write_stdin(std::fs::read(&labels).unwrap())
        .assert()
        .success();
    assert_eq!(json(&labels_piped.get_output().stdout), from_pipe);

    refused(&["--budget", "5", "--labeled", "-", "--exclude", "-"], &["--exclude", "already given to --labeled"]);
    let twice = eval(&["--selection", "-", "--selection", "-"]).code(2);
    assert!(
        String::from_utf8_lossy(&twice.get_output().stderr)
            .contains("--selection: standard input (-) can be given only once")
    );
    let pool_too = activeft().args(["eval", "--features", "-", "--selection", "-"]).assert().code(2);
    assert!(
        String::from_utf8_lossy(&pool_too.get_output().stderr)
            .contains("--selection: standard input (-) is already given to --features")
    );
}
