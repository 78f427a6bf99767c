//! Where results go: outputs that collide with each other or with inputs,
//! special files (FIFOs, devices, symbolic links), a full disk, a pool too
//! large for memory, and signals. Nothing is ever destroyed or left half
//! written.

mod common;

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use common::{activeft, fixture, write_npy_raw};

fn digits() -> PathBuf {
    fixture("digits.npy")
}

fn binary() -> StdCommand {
    StdCommand::new(env!("CARGO_BIN_EXE_activeft"))
}

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

/// Runs `cmd` to its end, or kills it after `seconds` and fails.
fn output_within(cmd: &mut StdCommand, seconds: u64) -> std::process::Output {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(seconds) {
            child.kill().unwrap();
            panic!("still running after {seconds} s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// Reads `fifo` on another thread, as a consumer process would.
fn fifo_reader(fifo: &Path) -> std::thread::JoinHandle<Vec<u8>> {
    let fifo = fifo.to_path_buf();
    std::thread::spawn(move || std::fs::read(fifo).unwrap())
}

/// The reader's bytes; fails (instead of hanging) if no writer ever closed
/// it. Called once the writer has exited, so the reader only needs time to
/// be scheduled: it gets ten seconds, however loaded the machine.
fn read_back(fifo: &Path, reader: std::thread::JoinHandle<Vec<u8>>) -> Vec<u8> {
    let start = Instant::now();
    while !reader.is_finished() && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    if !reader.is_finished() {
        // Release the reader if the FIFO is still there, then fail: it
        // would have waited forever.
        if std::fs::metadata(fifo).is_ok_and(|m| m.file_type().is_fifo()) {
            drop(std::fs::OpenOptions::new().write(true).open(fifo).unwrap());
            reader.join().unwrap();
        }
        panic!("the FIFO's reader was left waiting");
    }
    reader.join().unwrap()
}

fn one_line(stderr: &[u8]) -> String {
    let err = String::from_utf8_lossy(stderr).to_string();
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err}");
    err
}

#[test]
fn an_output_that_is_another_output_or_an_input_is_refused_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let same = dir.path().join("same.json");
    let a = activeft()
        .args(["select", "--features"])
        .arg(digits())
        .args(["--budget", "5", "-o"])
        .arg(&same)
        .arg("--report")
        .arg(dir.path().join(".").join("same.json"))
        .assert()
        .code(2);
    let err = one_line(&a.get_output().stderr);
    assert!(err.contains("--report") && err.contains("--output"), "{err}");
    assert!(names(dir.path()).is_empty(), "{:?}", names(dir.path()));

    // The input would be destroyed by the output: refused, and left intact.
    let pool = dir.path().join("pool.npy");
    std::fs::copy(digits(), &pool).unwrap();
    let a = activeft().args(["select", "--features"]).arg(&pool).args(["--budget", "5", "-o"]).arg(&pool).assert();
    let err = one_line(&a.code(2).get_output().stderr);
    assert!(err.contains("--features"), "{err}");
    assert_eq!(std::fs::read(&pool).unwrap(), std::fs::read(digits()).unwrap());

    // Through a symbolic link too, and for --init-indices.
    let init = dir.path().join("init.json");
    std::fs::write(&init, "[1, 2, 3, 4, 5]").unwrap();
    let link = dir.path().join("link.json");
    std::os::unix::fs::symlink(&init, &link).unwrap();
    let a = activeft()
        .args(["select", "--features"])
        .arg(digits())
        .args(["--budget", "5", "--init-indices"])
        .arg(&init)
        .arg("-o")
        .arg(&link)
        .assert()
        .code(2);
    assert!(one_line(&a.get_output().stderr).contains("--init-indices"));
    assert_eq!(std::fs::read_to_string(&init).unwrap(), "[1, 2, 3, 4, 5]");

    // eval's plot must not overwrite the selection it judges.
    let a = activeft()
        .args(["eval", "--features"])
        .arg(digits())
        .arg("--selection")
        .arg(&init)
        .arg("--plot")
        .arg(&init)
        .assert()
        .code(2);
    assert!(one_line(&a.get_output().stderr).contains("--plot"));
    assert_eq!(std::fs::read_to_string(&init).unwrap(), "[1, 2, 3, 4, 5]");
}

#[test]
fn a_symbolic_link_survives_and_its_target_gets_the_result() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("target.json");
    std::fs::write(&target, "old").unwrap();
    let link = dir.path().join("link.json");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    activeft().args(["select", "--features"]).arg(digits()).args(["--budget", "5", "-o"]).arg(&link).assert().success();
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    let ids: Vec<usize> = serde_json::from_slice(&std::fs::read(&target).unwrap()).unwrap();
    assert_eq!(ids.len(), 5);
    assert_eq!(names(dir.path()), ["link.json", "target.json"]);
}

#[test]
fn a_fifo_is_written_in_place_and_stays_a_fifo() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    assert!(StdCommand::new("mkfifo").arg(&fifo).status().unwrap().success());
    let reader = fifo_reader(&fifo);
    let out = output_within(
        binary().args(["select", "--features"]).arg(digits()).args(["--budget", "5", "-o"]).arg(&fifo),
        60,
    );
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let ids: Vec<usize> = serde_json::from_slice(&read_back(&fifo, reader)).unwrap();
    assert_eq!(ids.len(), 5);
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
    assert_eq!(names(dir.path()), ["fifo"]);
}

#[test]
fn a_failing_run_closes_a_fifo_empty_so_its_reader_does_not_wait() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    assert!(StdCommand::new("mkfifo").arg(&fifo).status().unwrap().success());
    let reader = fifo_reader(&fifo);
    let out = output_within(
        binary().args(["select", "--features"]).arg(digits()).args(["--budget", "99999", "-o"]).arg(&fifo),
        60,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(read_back(&fifo, reader).is_empty());
}

#[test]
fn a_bad_flag_fails_before_a_fifo_is_opened_so_no_reader_is_needed() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    assert!(StdCommand::new("mkfifo").arg(&fifo).status().unwrap().success());
    // Nobody reads: opening the FIFO to write would block until killed.
    let out = output_within(
        binary().args(["select", "--features"]).arg(digits()).args(["--budget", "0", "-o"]).arg(&fifo),
        60,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(one_line(&out.stderr).contains("at least 1"));
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
}

#[test]
fn a_full_device_is_an_error_and_stays_a_device() {
    let dir = tempfile::tempdir().unwrap();
    // A node like /dev/full: every write fails with ENOSPC.
    let Some(full) = device(dir.path(), "full", "1", "7") else {
        eprintln!("skipped: cannot make device nodes here (not root?)");
        return;
    };
    let out = output_within(
        binary().args(["select", "--features"]).arg(digits()).args(["--budget", "5", "-o"]).arg(&full),
        60,
    );
    assert_eq!(out.status.code(), Some(1));
    let err = one_line(&out.stderr);
    assert!(err.contains("full") && err.contains("No space left"), "{err}");
    assert!(std::fs::metadata(&full).unwrap().file_type().is_char_device());
    assert_eq!(names(dir.path()), ["full"]);

    // A full stdout is reported the same way.
    let out = binary()
        .args(["select", "--features"])
        .arg(digits())
        .args(["--budget", "5"])
        .stdout(std::fs::OpenOptions::new().write(true).open(&full).unwrap())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(one_line(&out.stderr).contains("stdout"));
}

/// Makes a character device node like `/dev/<name>` (`major`, `minor`) in
/// `dir`; None where this user cannot (not root).
fn device(dir: &Path, name: &str, major: &str, minor: &str) -> Option<PathBuf> {
    let path = dir.join(name);
    let made = StdCommand::new("mknod").arg(&path).args(["c", major, minor]).stderr(Stdio::null()).status();
    made.is_ok_and(|s| s.success()).then_some(path)
}

#[test]
fn stdout_by_name_and_a_null_device_are_written_in_place() {
    // /proc/self/fd/1 is what /dev/stdout points to; a private null device
    // stands for /dev/null, so a regression cannot replace the real one.
    let dir = tempfile::tempdir().unwrap();
    let null = device(dir.path(), "null", "1", "3");
    let mut cmd = binary();
    cmd.args(["select", "--features"]).arg(digits()).args(["--budget", "5", "-o", "/proc/self/fd/1"]);
    if let Some(null) = &null {
        cmd.arg("--report").arg(null);
    }
    let out = output_within(&mut cmd, 60);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let ids: Vec<usize> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(ids.len(), 5);
    if let Some(null) = &null {
        assert!(std::fs::metadata(null).unwrap().file_type().is_char_device());
    }
}

/// `-o -` is standard output, as without `-o`; a report or a plot to `-`
/// would mix with what standard output carries, so it is refused, and no
/// file named `-` is made.
#[test]
fn a_dash_output_is_standard_output_and_a_dash_report_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let mut cmd = binary();
        cmd.current_dir(dir.path()).args(["select", "--features"]).arg(digits()).args(["--budget", "5"]).args(args);
        output_within(&mut cmd, 60)
    };
    let plain = run(&[]);
    let dashed = run(&["-o", "-"]);
    assert_eq!(dashed.status.code(), Some(0), "{}", String::from_utf8_lossy(&dashed.stderr));
    assert_eq!(dashed.stdout, plain.stdout);
    let report = run(&["--report", "-"]);
    assert_eq!(report.status.code(), Some(2));
    assert!(report.stdout.is_empty());
    assert!(one_line(&report.stderr).contains("--report: standard output (-) carries the selection"));
    let mut cmd = binary();
    cmd.current_dir(dir.path()).args(["eval", "--features"]).arg(digits()).args(["--selection", "-", "--plot", "-"]);
    let plot = output_within(cmd.stdin(Stdio::null()), 60);
    assert_eq!(plot.status.code(), Some(2));
    assert!(one_line(&plot.stderr).contains("--plot: standard output (-) carries the metrics"));
    assert!(names(dir.path()).is_empty(), "{:?}", names(dir.path()));
}

#[test]
fn a_pool_too_large_for_memory_ends_in_one_line_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // 4,000,000 x 256 float32: 4 GB of data, a sparse file that takes no disk.
    let pool = dir.path().join("big.npy");
    write_npy_raw(&pool, "<f4", false, "(4000000, 256)", &[]);
    let header = std::fs::metadata(&pool).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&pool).unwrap().set_len(header + 4_000_000 * 256 * 4).unwrap();
    let out = StdCommand::new("sh")
        .arg("-c")
        .arg(r#"ulimit -v 1500000 && exec "$0" select --features "$1" --budget 5 -o "$2""#)
        .arg(env!("CARGO_BIN_EXE_activeft"))
        .arg(&pool)
        .arg(dir.path().join("out.json"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let err = one_line(&out.stderr);
    assert!(err.contains("the features") && err.contains("4.10 GB"), "{err}");
    assert_eq!(names(dir.path()), ["big.npy"]);
}

/// Starts a long run writing to `out`, waits for its temporary file, sends
/// `signal`, and checks the run ended by it with nothing left behind.
fn interrupted(signal: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut child = binary()
        .args(["select", "--features"])
        .arg(fixture("blobs2k.npy"))
        .args(["--budget", "40", "--iterations", "10000000", "-o"])
        .arg(dir.path().join("out.json"))
        .arg("--report")
        .arg(dir.path().join("report.json"))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while names(dir.path()).len() < 2 {
        assert!(start.elapsed() < Duration::from_secs(20), "no temporary files appeared");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Let it get into the optimisation.
    std::thread::sleep(Duration::from_millis(300));
    assert!(StdCommand::new("kill").args([signal, &child.id().to_string()]).status().unwrap().success());
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(60) {
            child.kill().unwrap();
            panic!("{signal} did not end the run");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(child.wait().unwrap().code(), Some(130), "{signal}");
    assert!(names(dir.path()).is_empty(), "{signal} left {:?}", names(dir.path()));
}

#[test]
fn ctrl_c_and_sigterm_leave_no_temporary_file() {
    interrupted("-INT");
    interrupted("-TERM");
}
