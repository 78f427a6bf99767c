//! End-to-end tests of `activeft select`: the real binary, its stdout, its
//! files, its errors and exit codes.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Stdio};

use common::{activeft, fixture, json, read_f32, write_f32, write_npy_raw};

fn digits() -> PathBuf {
    fixture("digits.npy")
}

/// A quick run on the digits: a few iterations are enough to exercise everything.
fn quick(extra: &[&str]) -> assert_cmd::assert::Assert {
    activeft()
        .args(["select", "--features"])
        .arg(digits())
        .args(["--budget", "25", "--iterations", "15", "--quiet"])
        .args(extra)
        .assert()
}

fn stdout_of(assert: &assert_cmd::assert::Assert) -> Vec<u8> {
    assert.get_output().stdout.clone()
}

#[test]
fn stdout_holds_only_a_compact_sorted_json_list() {
    let a = quick(&[]).success();
    let out = stdout_of(&a);
    let text = String::from_utf8(out.clone()).unwrap();
    assert!(text.ends_with("]\n") && text.starts_with('[') && !text.contains(' '), "{text}");
    assert_eq!(text.matches('\n').count(), 1);
    let ids: Vec<usize> = serde_json::from_slice(&out).unwrap();
    assert_eq!(ids.len(), 25);
    assert!(ids.windows(2).all(|w| w[0] < w[1]) && ids.iter().all(|&i| i < 1797));
    assert!(a.get_output().stderr.is_empty(), "no progress bar when stderr is not a terminal");
}

#[test]
fn thread_count_does_not_change_a_single_byte() {
    let dir = tempfile::tempdir().unwrap();
    let mut outputs = Vec::new();
    for threads in ["1", "2", "3"] {
        let report = dir.path().join(format!("r{threads}.json"));
        let a = activeft()
            .args(["select", "--features"])
            .arg(fixture("blobs2k.npy"))
            .args(["--budget", "40", "--iterations", "20", "--threads", threads, "--batch-size", "1500", "--report"])
            .arg(&report)
            .assert()
            .success();
        let r = json(&std::fs::read(&report).unwrap());
        outputs.push((stdout_of(&a), r["losses"].to_string(), r["init"].to_string()));
    }
    assert_eq!(outputs[0], outputs[1]);
    assert_eq!(outputs[0], outputs[2]);
}

#[test]
fn same_seed_same_selection_other_seed_other_selection() {
    let run = |seed: &str| stdout_of(&quick(&["--seed", seed]).success());
    assert_eq!(run("7"), run("7"));
    assert_ne!(run("7"), run("8"));
}

#[test]
fn report_has_every_field() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let a = quick(&["--report", report.to_str().unwrap(), "--scheduler", "cosine", "--init", "fps", "--seed", "3"])
        .success();
    let r = json(&std::fs::read(&report).unwrap());
    assert_eq!(r["selected"], json(&stdout_of(&a)));
    assert_eq!(r["losses"].as_array().unwrap().len(), 15);
    assert!(r["losses"].as_array().unwrap().iter().all(|l| l.as_f64().unwrap().is_finite()));
    assert_eq!(
        (r["n"].as_u64(), r["dim"].as_u64(), r["budget"].as_u64(), r["seed"].as_u64()),
        (Some(1797), Some(64), Some(25), Some(3))
    );
    assert_eq!(r["init"].as_array().unwrap().len(), 25);
    let p = &r["params"];
    assert_eq!(p["iterations"], 15);
    assert_eq!(p["lr"], 0.001);
    assert_eq!(p["temperature"], 0.07);
    assert_eq!(p["balance"], 1.0);
    assert_eq!(p["scheduler"], "cosine");
    assert_eq!(p["init"], "fps");
    assert!(p["batch_size"].is_null());
    assert_eq!(p["label_column_dropped"], false);
    assert!(p["threads"].as_u64().unwrap() >= 1);
    for phase in ["load", "optimize", "map", "total"] {
        assert!(r["seconds"][phase].as_f64().unwrap() >= 0.0, "{phase}");
    }
    assert_eq!(r["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(r["method"], "activeft");
}

#[test]
fn output_file_is_written_whole_and_nothing_else_is_left() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("selected.json");
    let a = quick(&["-o", out.to_str().unwrap()]).success();
    assert!(stdout_of(&a).is_empty());
    let ids: Vec<usize> = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(ids.len(), 25);
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, vec![std::ffi::OsString::from("selected.json")]);
}

#[test]
fn percent_budget_rounds_down_like_the_reference() {
    let ids: Vec<usize> = serde_json::from_slice(&stdout_of(
        &activeft()
            .args(["select", "--features"])
            .arg(digits())
            .args(["--budget", "2.5%", "--iterations", "2"])
            .assert()
            .success(),
    ))
    .unwrap();
    assert_eq!(ids.len(), 44); // floor(1797 * 2.5 / 100)
}

/// The digits pool rewritten in another layout must give the same selection.
fn same_selection_as_digits(paths: &[&Path], extra: &[&str]) {
    let base = stdout_of(&quick(&[]).success());
    let mut cmd = activeft();
    cmd.arg("select");
    for p in paths {
        cmd.arg("--features").arg(p);
    }
    let a = cmd.args(["--budget", "25", "--iterations", "15", "--quiet"]).args(extra).assert().success();
    assert_eq!(stdout_of(&a), base);
}

#[test]
fn shards_float64_fortran_order_and_label_columns_read_as_the_same_pool() {
    let (n, d, values) = read_f32(&digits());
    let dir = tempfile::tempdir().unwrap();
    let at = |name: &str| dir.path().join(name);

    // Two shards, concatenated in the given order.
    write_f32(&at("a.npy"), 1000, d, &values[..1000 * d]);
    write_f32(&at("b.npy"), n - 1000, d, &values[1000 * d..]);
    same_selection_as_digits(&[&at("a.npy"), &at("b.npy")], &[]);

    // float64, big-endian.
    let data: Vec<u8> = values.iter().flat_map(|&v| f64::from(v).to_be_bytes()).collect();
    write_npy_raw(&at("f64.npy"), ">f8", false, &format!("({n}, {d})"), &data);
    same_selection_as_digits(&[&at("f64.npy")], &[]);

    // Fortran (column-major) order.
    let data: Vec<u8> =
        (0..d).flat_map(|j| (0..n).map(move |i| (i, j))).flat_map(|(i, j)| values[i * d + j].to_le_bytes()).collect();
    write_npy_raw(&at("fortran.npy"), "<f4", true, &format!("({n}, {d})"), &data);
    same_selection_as_digits(&[&at("fortran.npy")], &[]);

    // A label in the last column, as the reference's feature files keep it.
    let labels = common::read_labels(&fixture("digits_labels.npy"));
    let with_labels: Vec<f32> =
        (0..n).flat_map(|i| values[i * d..(i + 1) * d].iter().copied().chain([labels[i] as f32])).collect();
    write_f32(&at("labelled.npy"), n, d + 1, &with_labels);
    same_selection_as_digits(&[&at("labelled.npy")], &["--label-column", "last"]);
}

#[test]
fn mini_batches_change_the_run_and_are_seeded() {
    let dir = tempfile::tempdir().unwrap();
    let losses = |extra: &[&str]| {
        let report = dir.path().join("r.json");
        let a = quick(&[&["--seed", "4", "--report", report.to_str().unwrap()], extra].concat()).success();
        let r = json(&std::fs::read(&report).unwrap());
        (stdout_of(&a), r["losses"].clone(), r["params"]["batch_size"].clone())
    };
    let (batched, batched_losses, size) = losses(&["--batch-size", "300"]);
    assert_eq!(size, 300);
    let (again, again_losses, _) = losses(&["--batch-size", "300"]);
    assert_eq!((&batched, &batched_losses), (&again, &again_losses));
    // A batch of 300 of 1,797 samples sees another loss than the whole pool.
    let (_, full_losses, full_size) = losses(&[]);
    assert!(full_size.is_null());
    assert_ne!(batched_losses, full_losses);
    let (_, other_losses, _) = losses(&["--batch-size", "301"]);
    assert_ne!(batched_losses, other_losses);
}

#[test]
fn help_and_version_exit_zero() {
    activeft().arg("--help").assert().success().stdout(predicates::str::contains("select"));
    let help = activeft().args(["select", "--help"]).assert().success();
    let text = String::from_utf8_lossy(&help.get_output().stdout).to_string();
    for flag in ["--budget", "--init-indices", "--label-column", "--threads", "[default: 300]", "0.07"] {
        assert!(text.contains(flag), "help lacks {flag}");
    }
    activeft().arg("--version").assert().success().stdout(predicates::str::contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn a_closed_stdout_ends_the_run_quietly() {
    let mut child = StdCommand::new(env!("CARGO_BIN_EXE_activeft"))
        .args(["select", "--features"])
        .arg(digits())
        .args(["--budget", "25", "--iterations", "5"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
}

// ---- bad input: one line on stderr naming the culprit, exit 2, no output ----

/// Runs `select` with `args` (and `-o` into a scratch folder) and checks the
/// failure contract; returns the error line.
fn fails(args: &[&str], features: &[&Path]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.json");
    let mut cmd = activeft();
    cmd.arg("select");
    for f in features {
        cmd.arg("--features").arg(f);
    }
    let a = cmd.args(args).arg("-o").arg(&out).arg("--quiet").assert().code(2);
    let output = a.get_output();
    assert!(output.stdout.is_empty());
    let err = String::from_utf8(output.stderr.clone()).unwrap();
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err}");
    assert!(!err.contains("panicked") && !err.contains("RUST_BACKTRACE"), "{err}");
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none(), "files left behind after: {err}");
    err
}

fn fails_with(args: &[&str], features: &[&Path], needles: &[&str]) {
    let err = fails(args, features);
    for needle in needles {
        assert!(err.contains(needle), "expected {needle:?} in {err:?}");
    }
}

#[test]
fn bad_feature_files_are_named_with_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let at = |name: &str| dir.path().join(name);
    let budget = ["--budget", "2"];

    fails_with(&budget, &[&at("missing.npy")], &["missing.npy", "no such file"]);
    std::fs::write(at("text.npy"), "id,x\n1,2\n").unwrap();
    fails_with(&budget, &[&at("text.npy")], &["text.npy", "not an .npy file"]);
    fails_with(&budget, &[dir.path()], &["directory"]);

    for (descr, word) in [("<i8", "integers"), ("<c16", "complex"), ("|O", "objects"), ("<f16", "float")] {
        write_npy_raw(&at("dtype.npy"), descr, false, "(2, 2)", &[0u8; 64]);
        fails_with(&budget, &[&at("dtype.npy")], &["dtype.npy", descr, word]);
    }
    write_npy_raw(&at("one_d.npy"), "<f4", false, "(4,)", &[0u8; 16]);
    fails_with(&budget, &[&at("one_d.npy")], &["one_d.npy", "2-D", "(4,)"]);
    write_npy_raw(&at("three_d.npy"), "<f4", false, "(2, 2, 2)", &[0u8; 32]);
    fails_with(&budget, &[&at("three_d.npy")], &["three_d.npy", "(2, 2, 2)"]);
    write_npy_raw(&at("empty.npy"), "<f4", false, "(0, 8)", &[]);
    fails_with(&budget, &[&at("empty.npy")], &["empty.npy", "no rows"]);
    write_npy_raw(&at("short.npy"), "<f4", false, "(10, 8)", &[0u8; 100]);
    fails_with(&budget, &[&at("short.npy")], &["short.npy", "truncated"]);

    let mut values = vec![1.0f32; 5 * 3];
    values[3 * 3 + 1] = f32::NAN;
    write_f32(&at("nan.npy"), 5, 3, &values);
    fails_with(&budget, &[&at("nan.npy")], &["nan.npy", "row 3", "NaN"]);
    values[3 * 3 + 1] = f32::INFINITY;
    write_f32(&at("inf.npy"), 5, 3, &values);
    fails_with(&budget, &[&at("inf.npy")], &["inf.npy", "row 3", "inf"]);
    let mut values = vec![1.0f32; 5 * 3];
    values[6..9].fill(0.0);
    write_f32(&at("zero.npy"), 5, 3, &values);
    fails_with(&budget, &[&at("zero.npy")], &["zero.npy", "row 2", "all zeros"]);
    // In a later shard the row is named in the file and in the pool.
    write_f32(&at("ok.npy"), 5, 3, &[1.0; 15]);
    fails_with(&budget, &[&at("ok.npy"), &at("zero.npy")], &["zero.npy", "row 2 (sample 7 overall)"]);
    write_f32(&at("wide.npy"), 5, 4, &[1.0; 20]);
    fails_with(&budget, &[&at("ok.npy"), &at("wide.npy")], &["wide.npy", "4 columns"]);
}

#[test]
fn bad_budgets_are_named() {
    let d = digits();
    fails_with(&["--budget", "0"], &[&d], &["--budget", "at least 1"]);
    fails_with(&["--budget", "1798"], &[&d], &["--budget", "1797"]);
    fails_with(&["--budget", "0%"], &[&d], &["--budget", "(0, 100]"]);
    fails_with(&["--budget", "150%"], &[&d], &["--budget", "(0, 100]"]);
    fails_with(&["--budget", "0.01%"], &[&d], &["--budget", "rounds down to 0"]);
    fails_with(&["--budget", "lots"], &[&d], &["--budget", "whole number"]);
}

#[test]
fn bad_settings_are_named() {
    let d = digits();
    fails_with(&["--budget", "5", "--temperature", "0"], &[&d], &["--temperature", "positive"]);
    fails_with(&["--budget", "5", "--temperature", "-0.1"], &[&d], &["--temperature"]);
    fails_with(&["--budget", "5", "--lr", "0"], &[&d], &["--lr", "positive"]);
    fails_with(&["--budget", "5", "--lr", "nan"], &[&d], &["--lr"]);
    fails_with(&["--budget", "5", "--balance", "0"], &[&d], &["--balance"]);
    fails_with(&["--budget", "5", "--batch-size", "0"], &[&d], &["--batch-size"]);
    fails_with(&["--budget", "5", "--threads", "0"], &[&d], &["--threads"]);
    fails_with(&["--budget", "5", "--scheduler", "step"], &[&d], &["--scheduler", "step"]);
    fails_with(&["--budget", "5", "--frobnicate"], &[&d], &["--frobnicate"]);
    fails_with(&["--budget", "5"], &[], &["--features"]);
    fails_with(&[], &[&d], &["--budget"]);
}

#[test]
fn bad_init_indices_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let d = digits();
    let case = |name: &str, text: &str, budget: &str, needle: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        fails_with(&["--budget", budget, "--init-indices", path.to_str().unwrap()], &[&d], &[name, needle]);
    };
    case("garbage.json", "[1, 2,", "2", "not valid JSON");
    case("object.json", "{\"ids\": [1]}", "1", "list");
    case("negative.json", "[1, -2]", "2", "not a non-negative integer");
    case("count.json", "[1, 2, 3]", "2", "3 sample ids, one per point, but ActiveFT has 2 points");
    case("dup.json", "[4, 9, 4]", "3", "4 appears more than once");
    case("range.json", "[0, 1797]", "2", "1797 is out of range");
    let missing = dir.path().join("none.json");
    fails_with(&["--budget", "2", "--init-indices", missing.to_str().unwrap()], &[&d], &["none.json", "no such file"]);
}

#[test]
fn unwritable_outputs_fail_before_any_work() {
    // The features do not exist either: an error about the output proves
    // the output was checked before the pool was even opened.
    for flag in ["-o", "--report"] {
        let a = activeft()
            .args(["select", "--features", "/nonexistent-dir/pool.npy", "--budget", "5", flag])
            .arg("/nonexistent-dir/out.json")
            .assert()
            .code(2);
        assert!(a.get_output().stdout.is_empty());
        let err = String::from_utf8_lossy(&a.get_output().stderr).to_string();
        assert!(err.contains("/nonexistent-dir/out.json") && err.contains("directory does not exist"), "{err}");
    }
}

#[test]
fn a_method_refuses_another_methods_settings_and_ignores_their_defaults() {
    let d = digits();
    for method in ["random", "fds", "kmeans"] {
        fails_with(&["--budget", "5", "--method", method, "--temperature", "0"], &[&d], &["--temperature", "activeft"]);
        fails_with(&["--budget", "5", "--method", method, "--init", "fps"], &[&d], &["--init", method]);
        // ActiveFT's settings are not checked for a method that does not use them.
        let a = activeft().args(["select", "--features"]).arg(&d).args(["--budget", "5", "--method", method]).assert();
        assert_eq!(serde_json::from_slice::<Vec<usize>>(&stdout_of(&a.success())).unwrap().len(), 5);
    }
}

/// What a run of `args` writes to a terminal `columns` wide: a
/// pseudo-terminal from util-linux `script`, where installed.
fn on_terminal(args: &str, columns: u16) -> Option<String> {
    let bin = Path::new(env!("CARGO_BIN_EXE_activeft"));
    // Without rows the terminal's size is unknown, and bars assume 80 columns.
    let command = format!("stty rows 24 cols {columns}; {} {args}", bin.display());
    match StdCommand::new("script").args(["-qec", &command, "/dev/null"]).output() {
        Ok(out) => Some(String::from_utf8_lossy(&out.stdout).into_owned()),
        Err(_) => {
            eprintln!("skipped: util-linux `script` is not installed");
            None
        }
    }
}

/// On a terminal the run ends with one summary line on stderr; `--quiet`
/// silences it.
#[test]
fn a_terminal_gets_a_summary_line_and_quiet_silences_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("picked.json");
    let args = |extra: &str| {
        format!("select --features {} --budget 20 --method fds -o {} {extra}", digits().display(), out.display())
    };
    let Some(text) = on_terminal(&args(""), 80) else { return };
    let expected = "activeft: selected 20 of 1797 samples with fds in ";
    let line = text.lines().find(|l| l.contains(expected)).unwrap_or_else(|| panic!("no summary in {text:?}"));
    assert!(line.ends_with(&format!("s; ids to {}", out.display())), "{line}");
    let quiet = on_terminal(&args("--quiet"), 80).unwrap();
    assert!(!quiet.contains("activeft: selected"));
    assert_eq!(json(&std::fs::read(&out).unwrap()).as_array().unwrap().len(), 20);
}

/// `eval` shows its phases on a terminal too (at ImageNet scale it runs
/// for a minute or more), and `--quiet` silences them.
#[test]
fn eval_shows_its_phases_on_a_terminal_unless_quiet() {
    let dir = tempfile::tempdir().unwrap();
    let selection = dir.path().join("sel.json");
    std::fs::write(&selection, "[1, 50, 700, 1200]").unwrap();
    let labels = fixture("digits_labels.npy");
    let args = |extra: &str| {
        let (d, l, s) = (digits(), &labels, &selection);
        format!("eval --features {} --labels {} --selection {} {extra}", d.display(), l.display(), s.display())
    };
    let Some(loud) = on_terminal(&args(""), 80) else { return };
    assert!(loud.contains("evaluating"), "{loud:?}");
    assert!(loud.contains("coverage mean"), "{loud:?}");
    let quiet = on_terminal(&args("--quiet"), 80).unwrap();
    assert!(!quiet.contains("loading") && !quiet.contains("evaluating"), "{quiet:?}");
    assert!(quiet.contains("coverage mean"), "{quiet:?}");
}

/// Every line of progress fits the terminal (a wrapped line would be
/// drawn again one row lower), and names what its figure measures.
#[test]
fn progress_fits_the_terminal_and_names_its_measure() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("picked.json");
    let methods = [
        ("facloc", 200, "picking", "objective"),
        ("activeft", 20, "optimizing", "loss"),
        ("kmeans", 20, "optimizing", "distance"),
    ];
    for (method, budget, phase, measure) in methods {
        for columns in [60, 100] {
            let args = format!(
                "select --features {} --budget {budget} --method {method} -o {}",
                digits().display(),
                out.display()
            );
            let Some(text) = on_terminal(&args, columns) else { return };
            let drawn: Vec<String> = text
                .split(['\r', '\n'])
                .map(|l| without_escapes(l).trim_end().to_string())
                .filter(|l| !l.is_empty() && !l.starts_with("activeft: selected"))
                .collect();
            for line in &drawn {
                assert!(line.chars().count() <= usize::from(columns), "{method}, {columns} columns: {line:?}");
            }
            // A step's bar: "picking [==>   ] 8/200 objective 3390.486  0s (eta 3s)".
            let steps: Vec<&String> = drawn.iter().filter(|l| l.starts_with(&format!("{phase} ["))).collect();
            assert!(!steps.is_empty(), "{method}: no bar in {text:?}");
            assert!(steps.iter().all(|l| l.contains(&format!(" {measure} "))), "{method}: {steps:?}");
            // Facility location's first picks take most of its time: no estimate of the time left.
            assert!(steps.iter().all(|l| l.contains("(eta ") != (method == "facloc")), "{method}: {steps:?}");
        }
    }
}

/// `line` without its ANSI escape sequences (colours, cursor moves).
fn without_escapes(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // CSI: ESC [ parameters, then one final letter.
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
