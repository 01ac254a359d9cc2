//! End-to-end tests of the `rnn` binary on small CSV files: exit codes,
//! outputs, PNG headers, metrics.json keys, and one test per kind of bad
//! input (a one-line error that names the problem, a non-zero exit, no
//! output folder left behind).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";

/// A fresh, empty folder for one test.
fn scratch(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "rnn-cli-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn rnn(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rnn"))
        .args(args)
        .current_dir(cwd)
        .env("RNN_NUM_THREADS", "1")
        .output()
        .expect("run rnn")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A small price-like series in the layout of data/finance.csv.
fn small_csv(rows: usize) -> String {
    let mut s = String::from("date,open,high,low,close,adj_close,volume\n");
    for i in 0..rows {
        let day = 18_262 + i as i64; // 2020-01-01
        let (y, m, d) = civil(day);
        let c = 100.0 + 0.3 * i as f64 + 5.0 * (i as f64 * 0.3).sin();
        s.push_str(&format!(
            "{y:04}-{m:02}-{d:02},{:.4},{:.4},{:.4},{c:.4},{:.4},{}\n",
            c - 0.5,
            c + 1.0,
            c - 1.0,
            c * 0.98,
            1_000_000 + (i * 7919) % 50_000
        ));
    }
    s
}

/// Sets cell `column` of CSV line `line` (0 is the header) to `value`.
fn set_cell(lines: &mut [String], line: usize, column: usize, value: &str) {
    let mut cells: Vec<&str> = lines[line].split(',').collect();
    cells[column] = value;
    lines[line] = cells.join(",");
}

/// CSV lines back into a file's text.
fn csv_text(lines: &[String]) -> String {
    lines.join("\n") + "\n"
}

fn civil(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p
}

/// The names in `dir`, sorted.
fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Fails if `dir` holds a staging folder or a run set aside.
fn assert_no_staging(dir: &Path) {
    for n in entries(dir) {
        assert!(
            !n.contains(".staging-") && !n.contains(".replaced-"),
            "{} left behind in {}",
            n,
            dir.display()
        );
    }
}

/// Every entry of `dir` and its bytes (`<folder>` for a folder), sorted
/// by name.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    entries(dir)
        .into_iter()
        .map(|n| {
            let p = dir.join(&n);
            let b = if p.is_dir() {
                b"<folder>".to_vec()
            } else {
                std::fs::read(&p).unwrap()
            };
            (n, b)
        })
        .collect()
}

/// The run's manifest.json.
fn manifest(run: &Path) -> serde_json::Value {
    let p = run.join("manifest.json");
    serde_json::from_slice(&std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .unwrap()
}

/// The files the run's manifest lists, with their sizes.
fn manifest_files(run: &Path) -> Vec<(String, u64)> {
    let m = manifest(run);
    assert_eq!(m["format"], "librnn-run-1", "{m}");
    assert_eq!(m["complete"], true, "{m}");
    m["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap().to_string(),
                f["bytes"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Polls (every 10 ms, up to 60 s) until `cond` holds.
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// The staging folder of `--out NAME` in `dir`, if there is one.
fn staging_of(dir: &Path, name: &str) -> Option<PathBuf> {
    let prefix = format!(".{name}.staging-");
    entries(dir)
        .into_iter()
        .find(|n| n.starts_with(&prefix))
        .map(|n| dir.join(n))
}

/// A running `rnn`, killed (SIGKILL) if the test ends before it does.
struct Running(Option<std::process::Child>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Starts `rnn ARGS` in `dir` (stderr captured).
fn spawn_rnn(args: &[&str], cwd: &Path) -> Running {
    Running(Some(
        Command::new(env!("CARGO_BIN_EXE_rnn"))
            .args(args)
            .current_dir(cwd)
            .env("RNN_NUM_THREADS", "1")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start rnn"),
    ))
}

/// Sends `signal` (e.g. `-INT`) to the process and waits for it.
fn signal_and_wait(mut running: Running, signal: &str) -> Output {
    let child = running.0.take().expect("running");
    let st = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(st.success(), "kill {signal} failed");
    child.wait_with_output().unwrap()
}

const FAST: &[&str] = &[
    "--window",
    "5",
    "--hidden",
    "4",
    "--epochs",
    "3",
    "--batch-size",
    "16",
    "--quiet",
];

fn assert_png(p: &Path) {
    let b = std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    assert!(b.len() > 1000, "{}: {} bytes", p.display(), b.len());
    assert_eq!(&b[..8], PNG_MAGIC, "{}", p.display());
}

#[test]
fn train_then_predict_end_to_end() {
    let dir = scratch("e2e");
    write(&dir, "small.csv", &small_csv(80));
    let mut args = vec!["train", "--data", "small.csv", "--out", "run"];
    args.extend_from_slice(FAST);
    let o = rnn(&args, &dir);
    let (out, err) = (text(&o.stdout), text(&o.stderr));
    assert!(o.status.success(), "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("persistence"), "{out}");
    assert!(out.contains("RMSE") && out.contains("MAE"), "{out}");
    let run = dir.join("run");
    for f in [
        "model.safetensors",
        "head.safetensors",
        "metrics.json",
        "test_predictions.csv",
    ] {
        assert!(run.join(f).is_file(), "{f} missing");
    }
    for f in ["data.png", "prediction.png", "loss.png"] {
        assert_png(&run.join(f));
    }
    // No temporary files left, and a manifest listing every other file
    // with its size.
    for e in std::fs::read_dir(&run).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!name.starts_with('.'), "leftover {name}");
    }
    let listed = manifest_files(&run);
    let mut names: Vec<String> = listed.iter().map(|(n, _)| n.clone()).collect();
    names.push("manifest.json".into());
    names.sort();
    assert_eq!(names, entries(&run));
    for (n, bytes) in &listed {
        assert_eq!(std::fs::metadata(run.join(n)).unwrap().len(), *bytes, "{n}");
    }
    assert_no_staging(&dir);

    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("metrics.json")).unwrap()).unwrap();
    for k in [
        "data", "rows", "features", "target", "window", "split", "model", "training", "test",
    ] {
        assert!(m.get(k).is_some(), "metrics.json lacks {k}: {m}");
    }
    for k in [
        "rmse",
        "mae",
        "baseline_rmse",
        "baseline_mae",
        "winner",
        "n",
    ] {
        assert!(m["test"].get(k).is_some(), "metrics.json test lacks {k}");
    }
    assert!(m["test"]["rmse"].as_f64().unwrap().is_finite());
    assert_eq!(m["rows"], 80);
    assert_eq!(m["target"], "close");
    // The defaults: the target's own history, forecasting its change.
    assert_eq!(m["features"], serde_json::json!(["close"]));
    assert_eq!(m["mode"], "delta");
    assert_eq!(m["world_size"], 1);
    assert_eq!(m["per_rank_batch"].as_array().unwrap().len(), 1);
    assert!(!m["training"]["step_loss"].as_array().unwrap().is_empty());
    let split = &m["split"];
    let total = ["train", "validation", "test"]
        .iter()
        .map(|k| split[k].as_u64().unwrap())
        .sum::<u64>();
    assert_eq!(total, 80 - 5);
    assert_eq!(m["training"]["train_loss"].as_array().unwrap().len(), 3);
    // The persistence baseline, checked by hand on the test rows.
    let csv = std::fs::read_to_string(run.join("test_predictions.csv")).unwrap();
    assert!(csv.starts_with("date,actual_close,predicted_close,persistence_close\n"));
    assert_eq!(
        csv.lines().count() as u64,
        1 + split["test"].as_u64().unwrap()
    );

    // The saved model predicts (to an explicit file, and by default into
    // the run folder).
    let o = rnn(
        &[
            "predict",
            "--model",
            "run",
            "--data",
            "small.csv",
            "--output",
            "pred.csv",
        ],
        &dir,
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let pred = std::fs::read_to_string(dir.join("pred.csv")).unwrap();
    let lines: Vec<&str> = pred.lines().collect();
    assert_eq!(
        lines[0],
        "input_end_date,forecast_date,predicted_close,actual_close"
    );
    assert_eq!(lines.len(), 1 + 80 - 5 + 1);
    assert!(
        lines[1].starts_with("2020-01-05,2020-01-06,"),
        "{}",
        lines[1]
    );
    assert!(
        lines.last().unwrap().ends_with(','),
        "last forecast has no actual"
    );
    // Its test-period forecasts equal the ones `train` wrote.
    let last_test = csv.lines().last().unwrap();
    let train_pred: f64 = last_test.split(',').nth(2).unwrap().parse().unwrap();
    let row = lines
        .iter()
        .find(|l| l.split(',').nth(1) == last_test.split(',').next())
        .unwrap();
    let pred_pred: f64 = row.split(',').nth(2).unwrap().parse().unwrap();
    assert!((train_pred - pred_pred).abs() <= 1e-4 * train_pred.abs().max(1.0));

    let o = rnn(
        &[
            "predict",
            "--model",
            "run/model.safetensors",
            "--data",
            "small.csv",
        ],
        &dir,
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(run.join("predictions.csv").is_file());
}

#[test]
fn train_variants_run() {
    let dir = scratch("variants");
    write(&dir, "small.csv", &small_csv(60));
    let variants: &[&[&str]] = &[
        &[
            "--cell",
            "gru",
            "--layers",
            "2",
            "--bidirectional",
            "--optimizer",
            "rmsprop",
        ],
        &[
            "--cell",
            "rnn",
            "--activation",
            "relu",
            "--optimizer",
            "sgd",
            "--lr",
            "0.01",
        ],
        &[
            "--mode",
            "delta",
            "--features",
            "close,volume",
            "--clip",
            "0",
        ],
        &["--mode", "relative", "--features", "all"],
        &["--mode", "level", "--features", "open,close"],
        &["--layers", "2", "--bidirectional", "--merge", "sum"],
        &["--layers", "2", "--proj-size", "3", "--bidirectional"],
        &[
            "--layers",
            "3",
            "--dropout",
            "0.3",
            "--recurrent-dropout",
            "0.2",
        ],
    ];
    for (k, v) in variants.iter().enumerate() {
        let out = format!("run{k}");
        let mut args = vec!["train", "--data", "small.csv", "--out", &out];
        args.extend_from_slice(FAST);
        args.extend_from_slice(v);
        let o = rnn(&args, &dir);
        assert!(o.status.success(), "{v:?}: {}", text(&o.stderr));
        let metrics =
            std::fs::read_to_string(dir.join(&out).join("metrics.json")).expect("metrics.json");
        let merge = if v.contains(&"sum") { "sum" } else { "concat" };
        assert!(
            metrics.contains(&format!("\"merge\": \"{merge}\"")),
            "{v:?}: {metrics}"
        );
        let o = rnn(
            &[
                "predict",
                "--model",
                &out,
                "--data",
                "small.csv",
                "--output",
                "p.csv",
            ],
            &dir,
        );
        assert!(o.status.success(), "{v:?}: {}", text(&o.stderr));
    }
}

#[test]
fn train_target_outside_features_and_no_date_column() {
    let dir = scratch("nodate");
    let mut s = String::from("a,b\n");
    for i in 0..40 {
        s.push_str(&format!(
            "{},{}\n",
            (i as f64 * 0.2).sin(),
            (i as f64 * 0.2).cos()
        ));
    }
    write(&dir, "plain.csv", &s);
    let mut args = vec![
        "train",
        "--data",
        "plain.csv",
        "--features",
        "a",
        "--target",
        "b",
        "--out",
        "r",
    ];
    args.extend_from_slice(FAST);
    let o = rnn(&args, &dir);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_png(&dir.join("r/data.png"));
}

#[test]
fn gradients_writes_png_and_prints_numbers() {
    let dir = scratch("grad");
    let o = rnn(
        &["gradients", "--steps", "12", "--hidden", "4", "--out", "g"],
        &dir,
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    // Zero inputs keep the tanh networks in their linear regime: the norm
    // goes as s^lag exactly.
    let o = rnn(
        &[
            "gradients",
            "--steps",
            "12",
            "--hidden",
            "4",
            "--scales",
            "0.5,2",
            "--input-std",
            "0",
            "--out",
            "g",
            "--overwrite",
        ],
        &dir,
    );
    let out = text(&o.stdout);
    assert!(o.status.success(), "{}", text(&o.stderr));
    for name in ["Elman tanh", "Elman relu", "LSTM"] {
        assert!(out.contains(name), "{out}");
    }
    assert_png(&dir.join("g/gradients.png"));
    let csv = std::fs::read_to_string(dir.join("g/gradients.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 12);
    let row = |l: usize| -> Vec<f64> {
        csv.lines()
            .nth(1 + l)
            .unwrap()
            .split(',')
            .skip(1)
            .map(|v| v.parse().unwrap())
            .collect()
    };
    let (first, last) = (row(1), row(11));
    let ratio = |c: usize| last[c] / first[c];
    let (vanish, grow) = (0.5f64.powi(10), 2f64.powi(10));
    assert!(
        (ratio(0) - vanish).abs() < 1e-3 * vanish,
        "{first:?} {last:?}"
    );
    assert!((ratio(1) - grow).abs() < 1e-3 * grow, "{first:?} {last:?}");
}

#[test]
fn info_prints_version_simd_threads() {
    let dir = scratch("info");
    let o = rnn(&["info"], &dir);
    let out = text(&o.stdout);
    assert!(o.status.success());
    assert!(
        out.contains("librnn") && out.contains("simd:") && out.contains("threads: 1"),
        "{out}"
    );
}

// ---- bad input -------------------------------------------------------------

/// Runs `rnn train` (fast settings, output folder `out`) and checks it fails
/// with one line on stderr containing every `needles`, and no `out` folder.
fn train_fails(dir: &Path, extra: &[&str], needles: &[&str]) {
    let mut args = vec!["train", "--out", "out"];
    args.extend_from_slice(FAST);
    args.extend_from_slice(extra);
    let o = rnn(&args, dir);
    let err = text(&o.stderr);
    assert!(
        !o.status.success(),
        "{extra:?} succeeded: {}",
        text(&o.stdout)
    );
    assert_eq!(o.status.code(), Some(1), "{extra:?}: {err}");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "{extra:?}: not one line: {err}"
    );
    assert!(err.starts_with("rnn: error: "), "{err}");
    for n in needles {
        assert!(err.contains(n), "{extra:?}: {err:?} lacks {n:?}");
    }
    assert!(
        !dir.join("out").exists(),
        "{extra:?}: output folder left behind"
    );
    assert_no_staging(dir);
}

#[test]
fn bad_missing_file() {
    let dir = scratch("missing");
    train_fails(&dir, &["--data", "nope.csv"], &["nope.csv", "no such file"]);
}

#[test]
fn bad_empty_file() {
    let dir = scratch("empty");
    write(&dir, "empty.csv", "");
    train_fails(&dir, &["--data", "empty.csv"], &["empty.csv", "empty file"]);
    write(&dir, "header.csv", "date,close\n");
    train_fails(
        &dir,
        &["--data", "header.csv"],
        &["header.csv", "no data rows"],
    );
}

#[test]
fn bad_no_numeric_columns() {
    let dir = scratch("nonum");
    write(
        &dir,
        "t.csv",
        "date,name,city\n2020-01-01,a,x\n2020-01-02,b,y\n2020-01-03,c,z\n",
    );
    train_fails(
        &dir,
        &["--data", "t.csv", "--features", "all"],
        &["t.csv", "no numeric columns"],
    );
}

#[test]
fn bad_unknown_column() {
    let dir = scratch("unknown");
    write(&dir, "s.csv", &small_csv(40));
    train_fails(
        &dir,
        &["--data", "s.csv", "--target", "price"],
        &["s.csv", "no column \"price\"", "close"],
    );
    train_fails(
        &dir,
        &["--data", "s.csv", "--features", "open,Close"],
        &["no column \"Close\""],
    );
    train_fails(
        &dir,
        &["--data", "s.csv", "--date-column", "day"],
        &["no column \"day\""],
    );
}

#[test]
fn bad_nan_in_numeric_column() {
    let dir = scratch("nan");
    let mut s = small_csv(40);
    s = s.replacen(",1000000\n", ",NaN\n", 1); // volume of row 1
    write(&dir, "n.csv", &s);
    train_fails(
        &dir,
        &["--data", "n.csv", "--features", "all"],
        &["n.csv", "\"volume\"", "row 1 (line 2)"],
    );
}

#[test]
fn bad_text_in_numeric_column() {
    let dir = scratch("text");
    let mut lines: Vec<String> = small_csv(150).lines().map(String::from).collect();
    // Row 120: past any sampled schema inference.
    set_cell(&mut lines, 120, 4, "n/a");
    write(&dir, "t.csv", &csv_text(&lines));
    train_fails(
        &dir,
        &["--data", "t.csv"],
        &[
            "t.csv",
            "column \"close\"",
            "row 120 (line 121)",
            "not a number",
            "n/a",
        ],
    );
}

#[test]
fn bad_missing_value() {
    let dir = scratch("hole");
    let mut lines: Vec<String> = small_csv(40).lines().map(String::from).collect();
    set_cell(&mut lines, 7, 1, "");
    write(&dir, "h.csv", &csv_text(&lines));
    train_fails(
        &dir,
        &["--data", "h.csv", "--features", "all"],
        &["column \"open\"", "row 7", "missing value"],
    );
}

#[test]
fn bad_fewer_rows_than_window() {
    let dir = scratch("short");
    // FAST trains on windows of 5 rows.
    write(&dir, "s.csv", &small_csv(3));
    train_fails(
        &dir,
        &["--data", "s.csv"],
        &["s.csv", "3 rows", "--window 5"],
    );
    // Enough for a window, not for a window and the three splits.
    write(&dir, "s.csv", &small_csv(6));
    train_fails(
        &dir,
        &["--data", "s.csv"],
        &["s.csv", "6 rows", "--window 5"],
    );
}

#[test]
fn bad_dates_out_of_order() {
    let dir = scratch("order");
    let mut lines: Vec<String> = small_csv(40).lines().map(String::from).collect();
    lines.swap(10, 11);
    write(&dir, "o.csv", &csv_text(&lines));
    train_fails(
        &dir,
        &["--data", "o.csv"],
        &["o.csv", "row 11 (line 12)", "dates must increase"],
    );
}

#[test]
fn bad_conflicting_flags() {
    let dir = scratch("flags");
    write(&dir, "s.csv", &small_csv(40));
    train_fails(
        &dir,
        &["--data", "s.csv", "--cell", "lstm", "--activation", "relu"],
        &["--activation", "--cell rnn"],
    );
    train_fails(
        &dir,
        &["--data", "s.csv", "--val-frac", "0.6", "--test-frac", "0.5"],
        &["--val-frac", "--test-frac"],
    );
    train_fails(
        &dir,
        &[
            "--data",
            "s.csv",
            "--optimizer",
            "adam",
            "--momentum",
            "0.9",
        ],
        &["--momentum"],
    );
    // An unknown flag is clap's error: one line too, exit code 2.
    let o = rnn(&["train", "--data", "s.csv", "--colour", "red"], &dir);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        text(&o.stderr).trim_end().lines().count(),
        1,
        "{}",
        text(&o.stderr)
    );
    assert!(!dir.join("out").exists());
}

#[test]
fn bad_relative_mode_needs_positive_values() {
    let dir = scratch("relative");
    let csv = small_csv(60);
    // A zero close on the 10th data row.
    let mut lines: Vec<String> = csv.lines().map(str::to_string).collect();
    let header: Vec<&str> = lines[0].split(',').collect();
    let close = header.iter().position(|h| *h == "close").unwrap();
    set_cell(&mut lines, 10, close, "0");
    write(&dir, "s.csv", &csv_text(&lines));
    train_fails(
        &dir,
        &["--data", "s.csv", "--mode", "relative"],
        &["close", "not positive", "--mode delta"],
    );
}

#[test]
fn distributed_needs_mpi() {
    // The test build has no `mpi` feature: it says how to get one.
    let dir = scratch("distributed");
    write(&dir, "s.csv", &small_csv(60));
    train_fails(
        &dir,
        &["--data", "s.csv", "--distributed"],
        &["--distributed", "--features mpi"],
    );
}

#[test]
fn bad_out_is_a_file() {
    let dir = scratch("outfile");
    write(&dir, "s.csv", &small_csv(40));
    write(&dir, "out", "not a folder");
    let o = rnn(
        &["train", "--data", "s.csv", "--out", "out", "--quiet"],
        &dir,
    );
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("not a folder"), "{err}");
    assert_eq!(
        std::fs::read_to_string(dir.join("out")).unwrap(),
        "not a folder"
    );
}

#[test]
fn bad_predict_inputs() {
    let dir = scratch("predict-bad");
    write(&dir, "s.csv", &small_csv(40));
    let o = rnn(
        &[
            "predict", "--model", "nowhere", "--data", "s.csv", "--output", "p.csv",
        ],
        &dir,
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("nowhere"), "{}", text(&o.stderr));
    assert!(!dir.join("p.csv").exists());

    let mut args = vec![
        "train",
        "--data",
        "s.csv",
        "--out",
        "run",
        "--features",
        "all",
    ];
    args.extend_from_slice(FAST);
    assert!(rnn(&args, &dir).status.success());
    // Data without a feature column of the model.
    let narrow: String = small_csv(40)
        .lines()
        .map(|l| l.rsplit_once(',').unwrap().0.to_string() + "\n")
        .collect();
    write(&dir, "narrow.csv", &narrow);
    let o = rnn(
        &[
            "predict",
            "--model",
            "run",
            "--data",
            "narrow.csv",
            "--output",
            "p.csv",
        ],
        &dir,
    );
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("no column \"volume\""), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1);
    assert!(!dir.join("p.csv").exists());
    // Fewer rows than the window.
    write(&dir, "tiny.csv", &small_csv(3));
    let o = rnn(
        &[
            "predict", "--model", "run", "--data", "tiny.csv", "--output", "p.csv",
        ],
        &dir,
    );
    assert!(
        text(&o.stderr).contains("fewer than the model's window"),
        "{}",
        text(&o.stderr)
    );
    assert!(!dir.join("p.csv").exists());
}

#[test]
fn train_default_out_and_timestamps() {
    let dir = scratch("stamps");
    let mut s = String::from("time,value\n");
    for i in 0..48 {
        s.push_str(&format!(
            "2020-03-01 {:02}:{:02},{}\n",
            i / 2,
            (i % 2) * 30,
            (i as f64 * 0.4).sin()
        ));
    }
    write(&dir, "hourly.csv", &s);
    let mut args = vec!["train", "--data", "hourly.csv", "--target", "value"];
    args.extend_from_slice(FAST);
    let o = rnn(&args, &dir);
    assert!(o.status.success(), "{}", text(&o.stderr));
    // Default output folder: runs/<UTC timestamp>/.
    let runs: Vec<_> = std::fs::read_dir(dir.join("runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert!(runs[0].join("metrics.json").is_file());
    assert_png(&runs[0].join("prediction.png"));
}

// ---- rnn ntm -----------------------------------------------------------------

/// A Neural Turing Machine small enough to train in well under a second.
const NTM_SMALL: &[&str] = &[
    "--min-len",
    "1",
    "--max-len",
    "3",
    "--bits",
    "4",
    "--controller-size",
    "16",
    "--memory-rows",
    "16",
    "--memory-width",
    "6",
    "--eval-sequences",
    "32",
    "--eval-size",
    "3",
    "--quiet",
];

/// Runs `rnn ntm <args>` and checks it fails with exit code `code`, one
/// line on stderr containing every `needles`, and no `out` folder.
fn ntm_fails(dir: &Path, args: &[&str], code: i32, needles: &[&str]) {
    let mut all = vec!["ntm"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--out", "out"]);
    let o = rnn(&all, dir);
    let err = text(&o.stderr);
    assert_eq!(
        o.status.code(),
        Some(code),
        "{args:?}: stdout {} stderr {err}",
        text(&o.stdout)
    );
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "{args:?}: not one line: {err}"
    );
    assert!(err.starts_with("rnn: error: "), "{err}");
    for n in needles {
        assert!(err.contains(n), "{args:?}: {err:?} lacks {n:?}");
    }
    assert!(
        !dir.join("out").exists(),
        "{args:?}: output folder left behind"
    );
}

/// Repeat copy's own defaults: 256 memory rows, an evaluation every 500
/// sequences, selection on the longest trained length with twice the
/// repeats.
#[test]
fn ntm_repeat_copy_defaults() {
    let dir = scratch("ntm-repeat-defaults");
    let args = [
        "ntm",
        "repeat-copy",
        "--max-sequences",
        "3",
        "--bits",
        "2",
        "--controller-size",
        "8",
        "--memory-width",
        "4",
        "--max-len",
        "2",
        "--max-repeats",
        "3",
        "--eval-sequences",
        "4",
        "--select-sequences",
        "4",
        "--quiet",
        "--out",
        "run",
    ];
    let o = rnn(&args, &dir);
    let (out, err) = (text(&o.stdout), text(&o.stderr));
    assert!(o.status.success(), "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("4 sequences of length 2 x 6 repeats"), "{out}");
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("run/metrics.json")).unwrap()).unwrap();
    assert_eq!(m["config"]["memory_rows"], 256);
    assert_eq!(m["train_config"]["eval_every"], 500);
    assert_eq!(m["train_config"]["select_size"], 2);
    assert_eq!(m["train_config"]["select_repeats"], 6);
}

#[test]
fn ntm_copy_end_to_end() {
    let dir = scratch("ntm");
    let mut args = vec![
        "ntm",
        "copy",
        "--max-sequences",
        "300",
        "--eval-every",
        "100",
        "--no-stop",
        "--out",
        "run",
    ];
    args.extend_from_slice(NTM_SMALL);
    let o = rnn(&args, &dir);
    let (out, err) = (text(&o.stdout), text(&o.stderr));
    assert!(o.status.success(), "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("2,630 parameters"), "{out}");
    assert!(out.contains("not converged within 300 sequences"), "{out}");
    assert!(out.contains("sequences/s"), "{out}");
    assert!(out.contains("generalisation"), "{out}");
    for len in ["10", "40", "120"] {
        assert!(
            out.lines()
                .any(|l| l.split_whitespace().next() == Some(len)),
            "no row for length {len}: {out}"
        );
    }
    // Copy selects by default: on 64 sequences of 6 times the longest
    // trained length.
    assert!(out.contains("selected the machine of"), "{out}");
    assert!(out.contains("64 sequences of length 18"), "{out}");
    let run = dir.join("run");
    assert_png(&run.join("weightings.png"));
    assert_png(&run.join("learning.png"));
    for e in std::fs::read_dir(&run).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!name.starts_with('.'), "leftover {name}");
    }
    let ntm = recurrent::ntm::Ntm::load(run.join("model.safetensors")).unwrap();
    let c = ntm.config();
    assert_eq!((c.input_size, c.output_size, c.controller_size), (5, 4, 16));
    assert_eq!((c.memory_rows, c.memory_width), (16, 6));

    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("metrics.json")).unwrap()).unwrap();
    for k in [
        "task",
        "config",
        "train_config",
        "evaluations",
        "converged_at",
        "seconds",
        "sequences_per_second",
        "generalisation",
    ] {
        assert!(m.get(k).is_some(), "metrics.json lacks {k}: {m}");
    }
    assert_eq!(m["task"], "copy");
    assert_eq!(m["config"]["memory_rows"], 16);
    assert_eq!(m["train_config"]["eval_size"], 3);
    assert!(m["converged_at"].is_null());
    let evals = m["evaluations"].as_array().unwrap();
    let at: Vec<u64> = evals
        .iter()
        .map(|e| e["sequences"].as_u64().unwrap())
        .collect();
    assert_eq!(at, [100, 200, 300]);
    for e in evals {
        assert!(e["loss"].as_f64().unwrap().is_finite(), "{e}");
        assert!(e["bit_errors"].as_f64().is_some(), "{e}");
        assert!(e["selection_loss"].as_f64().unwrap().is_finite(), "{e}");
    }
    assert_eq!(m["train_config"]["select_size"], 18);
    let selected = m["selected_at"].as_u64().unwrap();
    assert!(at.contains(&selected), "{selected} not among {at:?}");
    let table = m["generalisation"].as_array().unwrap();
    let sizes: Vec<u64> = table.iter().map(|r| r["size"].as_u64().unwrap()).collect();
    assert_eq!(sizes, [10, 20, 30, 40, 60, 80, 100, 120]);
    for r in table {
        let bits = r["bits_per_sequence"].as_f64().unwrap();
        let errors = r["bit_errors_per_sequence"].as_f64().unwrap();
        assert_eq!(bits, 4.0 * r["size"].as_f64().unwrap(), "{r}");
        assert!((0.0..=bits).contains(&errors), "{r}");
        assert!((r["bit_error_rate"].as_f64().unwrap() - errors / bits).abs() < 1e-12);
        assert_eq!(r["sequences"], 32);
    }

    // The learning curves of runs in one chart; never over an input, never
    // over a file without --overwrite.
    let o = rnn(&["ntm-curves", "run", "run", "--out", "curves.png"], &dir);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_png(&dir.join("curves.png"));
    for (args, needle) in [
        (
            &[
                "ntm-curves",
                "run",
                "--out",
                "run/metrics.json",
                "--overwrite",
            ][..],
            "refusing to write over an input",
        ),
        (
            &["ntm-curves", "run", "--out", "curves.png"][..],
            "--overwrite",
        ),
        (&["ntm-curves", ".", "--out", "c2.png"][..], "manifest.json"),
    ] {
        let o = rnn(args, &dir);
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    assert!(!dir.join("c2.png").exists());

    // Evaluation only: the saved machine, the same table, nothing written.
    let o = rnn(
        &[
            "ntm",
            "copy",
            "--load",
            "run/model.safetensors",
            "--max-sequences",
            "0",
            "--max-len",
            "3",
            "--eval-size",
            "3",
            "--eval-sequences",
            "32",
        ],
        &dir,
    );
    let (out2, err2) = (text(&o.stdout), text(&o.stderr));
    assert!(o.status.success(), "stdout:\n{out2}\nstderr:\n{err2}");
    assert!(out2.contains("loaded from run/model.safetensors"), "{out2}");
    assert!(out2.contains("held-out: loss"), "{out2}");
    let table_of = |s: &str| -> Vec<String> {
        s.lines()
            .skip_while(|l| !l.starts_with("generalisation"))
            .take(10)
            .map(String::from)
            .collect()
    };
    assert_eq!(table_of(&out), table_of(&out2));
    assert_eq!(table_of(&out2).len(), 10, "{out2}");
    assert!(!dir.join("runs").exists());
}

#[test]
fn ntm_divergence_is_one_line_and_leaves_no_bad_checkpoint() {
    let dir = scratch("ntm-nan");
    // An absurd learning rate: the first update sends the parameters to
    // about 1e30 and the first evaluation's loss is NaN. That machine must
    // not be saved.
    let mut args = vec![
        "ntm",
        "copy",
        "--optimizer",
        "adam",
        "--lr",
        "1e30",
        "--max-sequences",
        "50",
        "--eval-every",
        "1",
        "--out",
        "out",
    ];
    args.extend_from_slice(NTM_SMALL);
    let o = rnn(&args, &dir);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("diverged"), "{err}");
    assert!(err.contains("after 1 training sequences"), "{err}");
    assert!(err.contains("no checkpoint"), "{err}");
    assert!(!dir.join("out").exists());
    // Without an evaluation before the failure: the NaN loss of the second
    // training sequence stops it, naming the sequence.
    let at = args.iter().position(|a| *a == "--eval-every").unwrap();
    args[at + 1] = "10";
    let pos = args.iter().position(|a| *a == "out").unwrap();
    args[pos] = "out2";
    let o = rnn(&args, &dir);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("training sequence 2"), "{err}");
    assert!(err.contains("no checkpoint"), "{err}");
    assert!(!dir.join("out2").exists());
}

#[test]
fn ntm_bad_inputs() {
    let dir = scratch("ntm-bad");
    ntm_fails(
        &dir,
        &["copy", "--memory-init", "0.5", "--learned-memory"],
        1,
        &["--memory-init", "--learned-memory"],
    );
    ntm_fails(
        &dir,
        &["copy", "--min-len", "5", "--max-len", "3"],
        1,
        &["--min-len 5", "--max-len 3"],
    );
    ntm_fails(&dir, &["copy", "--eval-size", "0"], 1, &["--eval-size"]);
    ntm_fails(&dir, &["copy", "--select-size", "0"], 1, &["--select-size"]);
    ntm_fails(
        &dir,
        &["copy", "--select-repeats", "20"],
        1,
        &["--select-repeats", "repeat-copy"],
    );
    ntm_fails(
        &dir,
        &["copy", "--select-size", "40", "--no-select"],
        1,
        &["--select-size", "--no-select"],
    );
    ntm_fails(&dir, &["copy", "--memory-rows", "0"], 1, &["--memory-rows"]);
    ntm_fails(
        &dir,
        &["recall", "--max-len", "4"],
        1,
        &["--max-len", "recall"],
    );
    ntm_fails(
        &dir,
        &["copy", "--max-sequences", "0"],
        1,
        &["--max-sequences 0", "--load"],
    );
    ntm_fails(
        &dir,
        &["copy", "--load", "missing.safetensors"],
        1,
        &["--load", "missing.safetensors"],
    );
    write(&dir, "notes.txt", "not a model\n");
    ntm_fails(
        &dir,
        &["copy", "--load", "notes.txt"],
        1,
        &["--load", "notes.txt", "safetensors"],
    );
    // Unknown task: clap's error, exit code 2.
    ntm_fails(&dir, &["copyy"], 2, &["copyy"]);

    // Sizes that disagree with a loaded machine, and a machine that does not
    // fit the task.
    let mut args = vec!["ntm", "copy", "--max-sequences", "5", "--out", "m"];
    args.extend_from_slice(NTM_SMALL);
    assert!(rnn(&args, &dir).status.success());
    ntm_fails(
        &dir,
        &[
            "copy",
            "--load",
            "m/model.safetensors",
            "--memory-rows",
            "32",
        ],
        1,
        &["--memory-rows 32", "memory_rows 16"],
    );
    ntm_fails(
        &dir,
        &["copy", "--load", "m/model.safetensors", "--bits", "8"],
        1,
        &["--bits 8"],
    );
    ntm_fails(
        &dir,
        &["recall", "--load", "m/model.safetensors"],
        1,
        &["does not fit the recall task"],
    );
}

// ---- run folders, signals, sizes, non-finite values ---------------------------

/// `rnn train` into `out` with the fast settings and `extra`; panics unless
/// it succeeds.
fn train_ok(dir: &Path, out: &str, extra: &[&str]) {
    let mut args = vec!["train", "--data", "s.csv", "--out", out];
    args.extend_from_slice(FAST);
    args.extend_from_slice(extra);
    let o = rnn(&args, dir);
    assert!(o.status.success(), "{extra:?}: {}", text(&o.stderr));
}

/// Checks that `o` failed with exit code 1 and one line on stderr holding
/// every `needles`.
fn fails_with(o: &Output, needles: &[&str]) {
    let err = text(&o.stderr);
    assert_eq!(
        o.status.code(),
        Some(1),
        "stdout {} stderr {err}",
        text(&o.stdout)
    );
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err}");
    assert!(err.starts_with("rnn: error: "), "{err}");
    for n in needles {
        assert!(err.contains(n), "{err:?} lacks {n:?}");
    }
}

#[test]
fn out_is_refused_unless_an_earlier_run_and_overwrite() {
    let dir = scratch("overwrite");
    write(&dir, "s.csv", &small_csv(40));
    // A folder of the user's: refused with or without --overwrite, untouched.
    std::fs::create_dir_all(dir.join("mine/sub")).unwrap();
    write(&dir.join("mine"), "notes.txt", "keep me\n");
    let before = snapshot(&dir.join("mine"));
    for extra in [&[][..], &["--overwrite"][..]] {
        let mut args = vec!["train", "--data", "s.csv", "--out", "mine"];
        args.extend_from_slice(FAST);
        args.extend_from_slice(extra);
        let o = rnn(&args, &dir);
        let needle = if extra.is_empty() {
            "exists and is not empty"
        } else {
            "no manifest.json"
        };
        fails_with(&o, &["mine", needle]);
        assert_eq!(snapshot(&dir.join("mine")), before);
        assert_eq!(entries(&dir.join("mine/sub")), Vec::<String>::new());
    }
    // An empty folder takes a run.
    std::fs::create_dir(dir.join("empty")).unwrap();
    train_ok(&dir, "empty", &[]);
    assert_eq!(manifest(&dir.join("empty"))["command"], "train");

    // An earlier run: refused without --overwrite, replaced with it.
    train_ok(&dir, "run", &["--seed", "1"]);
    let first = snapshot(&dir.join("run"));
    let mut args = vec!["train", "--data", "s.csv", "--out", "run", "--seed", "2"];
    args.extend_from_slice(FAST);
    fails_with(&rnn(&args, &dir), &["run", "not empty", "--overwrite"]);
    assert_eq!(snapshot(&dir.join("run")), first);
    train_ok(&dir, "run", &["--seed", "2", "--overwrite"]);
    let second = snapshot(&dir.join("run"));
    let model = |s: &[(String, Vec<u8>)]| {
        s.iter()
            .find(|(n, _)| n == "model.safetensors")
            .unwrap()
            .1
            .clone()
    };
    assert_ne!(model(&first), model(&second), "the run was not replaced");
    assert_eq!(
        first.iter().map(|f| &f.0).collect::<Vec<_>>(),
        second.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    // A run holding a file its manifest does not list: --overwrite refuses.
    write(&dir.join("run"), "predictions.csv", "mine\n");
    let with_extra = snapshot(&dir.join("run"));
    let mut args = vec!["train", "--data", "s.csv", "--out", "run", "--overwrite"];
    args.extend_from_slice(FAST);
    fails_with(&rnn(&args, &dir), &["predictions.csv", "move it away"]);
    assert_eq!(snapshot(&dir.join("run")), with_extra);
    assert_no_staging(&dir);
    // A missing parent is created; a file in the way is an error.
    train_ok(&dir, "a/b/run", &[]);
    assert!(dir.join("a/b/run/manifest.json").is_file());
    let mut args = vec!["train", "--data", "s.csv", "--out", "s.csv/run"];
    args.extend_from_slice(FAST);
    fails_with(&rnn(&args, &dir), &["s.csv", "not a folder"]);
    assert_eq!(
        std::fs::read_to_string(dir.join("s.csv")).unwrap(),
        small_csv(40)
    );
}

#[test]
fn failed_train_keeps_the_earlier_run_byte_identical() {
    let dir = scratch("keep-earlier");
    write(&dir, "s.csv", &small_csv(60));
    train_ok(&dir, "run", &[]);
    let before = snapshot(&dir.join("run"));
    // Training diverges after the staging folder exists: the earlier run
    // must stay as it was, the staging folder must go.
    let mut args = vec![
        "train",
        "--data",
        "s.csv",
        "--out",
        "run",
        "--overwrite",
        "--optimizer",
        "sgd",
        "--lr",
        "1e30",
    ];
    args.extend_from_slice(FAST);
    fails_with(&rnn(&args, &dir), &["diverged"]);
    assert_eq!(snapshot(&dir.join("run")), before);
    assert_no_staging(&dir);
    assert_eq!(entries(&dir), ["run", "s.csv"]);
    // A failure into a new folder under new parents leaves none of them.
    args[4] = "new/deeper/run";
    fails_with(&rnn(&args, &dir), &["diverged"]);
    assert_eq!(entries(&dir), ["run", "s.csv"]);
}

#[test]
fn sigint_during_train_leaves_no_folder() {
    let dir = scratch("sigint-train");
    write(&dir, "s.csv", &small_csv(60));
    let child = spawn_rnn(
        &[
            "train",
            "--data",
            "s.csv",
            "--out",
            "run",
            "--window",
            "5",
            "--hidden",
            "4",
            "--epochs",
            "100000000",
            "--patience",
            "0",
            "--quiet",
        ],
        &dir,
    );
    wait_until("the staging folder", || staging_of(&dir, "run").is_some());
    let o = signal_and_wait(child, "-INT");
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted (SIGINT)"), "{err}");
    assert_eq!(entries(&dir), ["s.csv"]);
}

/// The small NTM of the tests, training for ever.
fn ntm_forever(eval_every: &str) -> Vec<&str> {
    let mut args = vec![
        "ntm",
        "copy",
        "--max-sequences",
        "1000000000",
        "--eval-every",
        eval_every,
        "--no-stop",
        "--out",
        "run",
    ];
    args.extend_from_slice(NTM_SMALL);
    args
}

#[test]
fn sigint_during_ntm_keeps_the_last_checkpoint_as_an_interrupted_run() {
    let dir = scratch("sigint-ntm");
    let child = spawn_rnn(&ntm_forever("20"), &dir);
    wait_until("the first checkpoint", || {
        staging_of(&dir, "run").is_some_and(|s| s.join("model.safetensors").is_file())
    });
    let o = signal_and_wait(child, "-INT");
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(130), "{err}");
    assert!(
        err.contains("kept as a complete run marked interrupted"),
        "{err}"
    );
    assert_eq!(entries(&dir), ["run"]);
    let run = dir.join("run");
    let m = manifest(&run);
    assert_eq!(m["interrupted"], true, "{m}");
    assert_eq!(m["interrupted_by"], "SIGINT", "{m}");
    assert_eq!(m["command"], "ntm", "{m}");
    let files = manifest_files(&run);
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["metrics.json", "model.safetensors"]);
    assert_eq!(
        entries(&run),
        ["manifest.json", "metrics.json", "model.safetensors"]
    );
    for (n, bytes) in &files {
        assert_eq!(std::fs::metadata(run.join(n)).unwrap().len(), *bytes, "{n}");
    }
    let ntm = recurrent::ntm::Ntm::load(run.join("model.safetensors")).unwrap();
    assert_eq!(ntm.config().memory_rows, 16);
    let metrics: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["interrupted"], true);
    let at = metrics["checkpoint_sequences"].as_u64().unwrap();
    assert!(at >= 20 && at % 20 == 0, "{metrics}");
    let evals = metrics["evaluations"].as_array().unwrap();
    assert_eq!(evals.last().unwrap()["sequences"].as_u64(), Some(at));
    // It is a run of `rnn ntm`: `rnn predict` does not take it.
    write(&dir, "s.csv", &small_csv(40));
    let o = rnn(&["predict", "--model", "run", "--data", "s.csv"], &dir);
    fails_with(&o, &["rnn ntm", "not of `rnn train`"]);
}

#[test]
fn sigterm_before_the_first_ntm_checkpoint_leaves_nothing() {
    let dir = scratch("sigterm-ntm");
    let child = spawn_rnn(&ntm_forever("1000000"), &dir);
    wait_until("the staging folder", || staging_of(&dir, "run").is_some());
    let o = signal_and_wait(child, "-TERM");
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(128 + 15), "{err}");
    assert!(err.contains("no checkpoint was written"), "{err}");
    assert_eq!(entries(&dir), Vec::<String>::new());
}

#[test]
fn predict_needs_a_complete_run_and_never_writes_over_an_input() {
    let dir = scratch("predict-inputs");
    write(&dir, "s.csv", &small_csv(40));
    train_ok(&dir, "run", &[]);
    let run = snapshot(&dir.join("run"));
    let predict = |model: &str, output: &str| {
        rnn(
            &[
                "predict", "--model", model, "--data", "s.csv", "--output", output,
            ],
            &dir,
        )
    };
    // Every input, by its own path, another path, or a link to it.
    std::os::unix::fs::symlink("run/model.safetensors", dir.join("link.csv")).unwrap();
    for (model, output, what) in [
        ("run", "run/model.safetensors", "is the model"),
        (
            "run/model.safetensors",
            "./run/model.safetensors",
            "is the model",
        ),
        ("./run/", "link.csv", "is the model"),
        ("run", "run/head.safetensors", "is the model's head"),
        ("run", "run//manifest.json", "is the run's manifest"),
        ("run", "./s.csv", "is the data"),
    ] {
        fails_with(
            &predict(model, output),
            &[what, "refusing to write over an input"],
        );
    }
    assert_eq!(snapshot(&dir.join("run")), run);
    assert_eq!(
        std::fs::read_to_string(dir.join("s.csv")).unwrap(),
        small_csv(40)
    );
    assert!(predict("run", "p.csv").status.success());

    // A folder without a manifest (a copy of the files, or a run whose
    // manifest is gone), and a file that does not match its manifest.
    std::fs::create_dir(dir.join("copy")).unwrap();
    for f in ["model.safetensors", "head.safetensors"] {
        std::fs::copy(dir.join("run").join(f), dir.join("copy").join(f)).unwrap();
    }
    fails_with(&predict("copy", "q.csv"), &["copy", "no manifest.json"]);
    fails_with(
        &predict("copy/model.safetensors", "q.csv"),
        &["no manifest.json"],
    );
    let mut head = std::fs::read(dir.join("run/head.safetensors")).unwrap();
    head.push(0);
    std::fs::write(dir.join("run/head.safetensors"), &head).unwrap();
    fails_with(
        &predict("run", "q.csv"),
        &["head.safetensors", "manifest.json says"],
    );
    assert!(!dir.join("q.csv").exists());
}

/// Overwrites the bytes of tensor `name` of the safetensors file `path` with
/// `value`, repeated (the file keeps its size).
fn patch_tensor(path: &Path, name: &str, value: &[u8]) {
    let mut b = std::fs::read(path).unwrap();
    let (n, meta) = safetensors::SafeTensors::read_metadata(&b).unwrap();
    let (start, end) = meta.info(name).unwrap().data_offsets;
    for chunk in b[8 + n + start..8 + n + end].chunks_exact_mut(value.len()) {
        chunk.copy_from_slice(value);
    }
    std::fs::write(path, b).unwrap();
}

#[test]
fn predict_refuses_non_finite_scalers_and_forecasts() {
    let dir = scratch("predict-finite");
    write(&dir, "s.csv", &small_csv(40));
    train_ok(&dir, "run", &[]);
    let head = dir.join("run/head.safetensors");
    let good = std::fs::read(&head).unwrap();
    let predict = || {
        rnn(
            &[
                "predict", "--model", "run", "--data", "s.csv", "--output", "p.csv",
            ],
            &dir,
        )
    };
    // A NaN scaler value (it used to act as a range of 1).
    patch_tensor(&head, "scaler.x_max", &f64::NAN.to_le_bytes());
    fails_with(
        &predict(),
        &["scaler.x_max[0]", "NaN", "not a finite number"],
    );
    std::fs::write(&head, &good).unwrap();
    patch_tensor(&head, "scaler.y_min", &f64::INFINITY.to_le_bytes());
    fails_with(&predict(), &["scaler.y_min[0]", "inf"]);
    // Finite weights whose forecasts overflow to infinity.
    std::fs::write(&head, &good).unwrap();
    patch_tensor(&head, "head.weight", &1.0e30f32.to_le_bytes());
    patch_tensor(&head, "head.bias", &1.0e30f32.to_le_bytes());
    patch_tensor(&head, "scaler.y_min", &(-1e300f64).to_le_bytes());
    patch_tensor(&head, "scaler.y_max", &1e300f64.to_le_bytes());
    fails_with(&predict(), &["forecast", "not a finite number"]);
    assert!(!dir.join("p.csv").exists());
}

#[test]
fn bad_sizes_are_errors_not_panics_or_aborts() {
    let dir = scratch("sizes");
    write(&dir, "s.csv", &small_csv(40));
    // `window + 3` used to overflow (a panic, exit code 101).
    let o = rnn(
        &[
            "train",
            "--data",
            "s.csv",
            "--window",
            "18446744073709551615",
            "--out",
            "out",
        ],
        &dir,
    );
    fails_with(&o, &["--window 18446744073709551615", "too few"]);
    // A network that cannot be held is refused before it is allocated.
    train_fails(
        &dir,
        &["--data", "s.csv", "--layers", "1000000000"],
        &["--layers 1000000000", "bytes", "available"],
    );
    let o = rnn(
        &[
            "train", "--data", "s.csv", "--hidden", "1000000", "--out", "out",
        ],
        &dir,
    );
    fails_with(&o, &["--hidden 1000000", "bytes", "available"]);
    let o = rnn(&["gradients", "--hidden", "100000", "--out", "out"], &dir);
    fails_with(&o, &["--hidden 100000", "bytes", "available"]);
    // A count the trainer adds to its own.
    ntm_fails(
        &dir,
        &["copy", "--eval-every", "18446744073709551615"],
        1,
        &["--eval-every 18446744073709551615", "too large"],
    );
    // NTM sizes that used to abort (SIGABRT) or grow past 5 GB.
    for (flag, value) in [
        ("--memory-width", "1000000"),
        ("--eval-size", "100000"),
        ("--memory-rows", "1000000"),
    ] {
        ntm_fails(
            &dir,
            &["copy", flag, value, "--quiet"],
            1,
            &[
                &format!("{flag} {value}"),
                "needs about",
                "bytes (",
                "available",
            ],
        );
    }
    assert_no_staging(&dir);
}

#[test]
fn threads_above_the_cap_are_refused_at_parsing() {
    let dir = scratch("threads");
    write(&dir, "s.csv", &small_csv(40));
    let cases: &[&[&str]] = &[
        &["train", "--data", "s.csv", "--out", "out"],
        &["predict", "--model", "run", "--data", "s.csv"],
        &["ntm", "copy", "--out", "out"],
        &["bench", "--quick"],
    ];
    for args in cases {
        for (n, needle) in [("100000", "1024"), ("0", "at least 1")] {
            let mut all = args.to_vec();
            all.extend_from_slice(&["--threads", n]);
            let o = rnn(&all, &dir);
            let err = text(&o.stderr);
            assert_eq!(o.status.code(), Some(2), "{all:?}: {err}");
            assert_eq!(err.trim_end().lines().count(), 1, "{err}");
            assert!(
                err.contains("--threads") && err.contains(needle),
                "{all:?}: {err}"
            );
        }
    }
    assert_eq!(entries(&dir), ["s.csv"]);
}

#[test]
fn an_unparseable_date_is_an_error_naming_row_and_value() {
    let dir = scratch("bad-date");
    // Reversed dates with one cell that is not a date: the order check must
    // not be switched off.
    let mut lines: Vec<String> = small_csv(40).lines().map(String::from).collect();
    lines[1..].reverse();
    set_cell(&mut lines, 9, 0, "oops");
    write(&dir, "r.csv", &csv_text(&lines));
    train_fails(
        &dir,
        &["--data", "r.csv"],
        &["r.csv", "column \"date\"", "row 9 (line 10)", "\"oops\""],
    );
}

#[test]
fn data_beyond_f32_is_refused_naming_row_and_column() {
    let dir = scratch("f32-range");
    let mut lines: Vec<String> = small_csv(40).lines().map(String::from).collect();
    set_cell(&mut lines, 3, 6, "1e39");
    write(&dir, "big.csv", &csv_text(&lines));
    train_fails(
        &dir,
        &["--data", "big.csv", "--features", "all"],
        &[
            "big.csv",
            "column \"volume\"",
            "row 3 (line 4)",
            "beyond the range of f32",
        ],
    );
}
