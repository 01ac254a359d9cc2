//! `rnn ntm-curves RUN... --out FILE.png`: the held-out learning curves of
//! several `rnn ntm` runs (e.g. one task, seeds 1-5) in one chart, read
//! from their metrics.json.

use std::fs;

use super::*;
use crate::run_dir::{same_file, verify_run, write_file};

/// Largest metrics.json read (a run's is a few hundred kilobytes).
const MAX_METRICS_BYTES: u64 = 64 << 20;

/// Arguments of `rnn ntm-curves`.
#[derive(clap::Args, Debug, Clone)]
pub struct CurvesArgs {
    /// Complete run folders written by `rnn ntm` on one task; one line each.
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// The PNG to write (atomically). An existing file is refused unless
    /// --overwrite; a file of one of the runs is always refused.
    #[arg(long)]
    pub out: PathBuf,
    /// Replace --out if it exists.
    #[arg(long)]
    pub overwrite: bool,
    /// The chart's title [default: the task and the held-out set].
    #[arg(long)]
    pub title: Option<String>,
}

/// One run as the chart needs it.
struct RunCurve {
    task: String,
    held_out: String,
    threshold: Option<f64>,
    curve: Curve,
}

/// Reads the curve of the run in `dir` (a complete `rnn ntm` run).
fn read_run(dir: &Path) -> Result<RunCurve> {
    let shown = dir.display();
    let manifest = verify_run(dir)?;
    if manifest.command != "ntm" {
        bail!(
            "{shown}: a run of `rnn {}`, not of `rnn ntm`",
            manifest.command
        );
    }
    let path = dir.join("metrics.json");
    let size = fs::metadata(&path)
        .with_context(|| format!("{}: cannot read", path.display()))?
        .len();
    if size > MAX_METRICS_BYTES {
        bail!(
            "{}: {size} bytes, more than the {MAX_METRICS_BYTES} a run writes",
            path.display()
        );
    }
    let bytes = fs::read(&path).with_context(|| format!("{}: cannot read", path.display()))?;
    let bad = |what: &str| {
        anyhow!(
            "{}: not the metrics of an `rnn ntm` run ({what})",
            path.display()
        )
    };
    let v: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| bad(&format!("invalid JSON: {e}")))?;
    let task = v["task"]
        .as_str()
        .ok_or_else(|| bad("no task"))?
        .to_string();
    let train = &v["train_config"];
    let seed = train["seed"].as_u64().ok_or_else(|| bad("no seed"))?;
    let eval_size = train["eval_size"]
        .as_u64()
        .ok_or_else(|| bad("no eval_size"))?;
    let eval_sequences = train["eval_sequences"]
        .as_u64()
        .ok_or_else(|| bad("no eval_sequences"))?;
    let threshold = train["stop_below"].as_f64();
    let evaluations = v["evaluations"]
        .as_array()
        .ok_or_else(|| bad("no evaluations"))?;
    if evaluations.is_empty() {
        bail!("{shown}: the run has no held-out evaluation (it did not train)");
    }
    let mut sequences = Vec::with_capacity(evaluations.len());
    let mut bit_errors = Vec::with_capacity(evaluations.len());
    for e in evaluations {
        let (Some(n), Some(b)) = (e["sequences"].as_f64(), e["bit_errors"].as_f64()) else {
            return Err(bad("an evaluation without sequences or bit_errors"));
        };
        if !(n.is_finite() && b.is_finite() && b >= 0.0) {
            return Err(bad("an evaluation with a value that is not a finite count"));
        }
        sequences.push(n);
        bit_errors.push(b);
    }
    let label = match v["converged_at"].as_u64() {
        Some(n) => format!("seed {seed}: under the threshold at {n}"),
        None => format!("seed {seed}: not under the threshold"),
    };
    let word = if matches!(task.as_str(), "recall" | "priority-sort") {
        format!("{eval_size} items")
    } else {
        format!("length {eval_size}")
    };
    Ok(RunCurve {
        task,
        held_out: format!("{eval_sequences} held-out sequences of {word}"),
        threshold,
        curve: Curve {
            label,
            sequences,
            bit_errors,
        },
    })
}

/// Runs `rnn ntm-curves`.
pub fn run_curves(a: &CurvesArgs) -> Result<()> {
    if a.out.is_dir() {
        bail!(
            "--out {}: is a folder (--out names a file)",
            a.out.display()
        );
    }
    let runs = a
        .runs
        .iter()
        .map(|d| read_run(d))
        .collect::<Result<Vec<_>>>()?;
    for (dir, r) in a.runs.iter().zip(&runs) {
        if r.task != runs[0].task {
            bail!(
                "{}: a run of the {} task, the first is of {}: one chart shows one task",
                dir.display(),
                r.task,
                runs[0].task
            );
        }
        let inside = fs::read_dir(dir)
            .with_context(|| format!("{}: cannot list", dir.display()))?
            .filter_map(|e| e.ok())
            .any(|e| same_file(&a.out, &e.path()));
        if inside {
            bail!(
                "--out {}: is a file of the run {}; refusing to write over an input",
                a.out.display(),
                dir.display()
            );
        }
    }
    if a.out.exists() && !a.overwrite {
        bail!(
            "--out {}: exists (give --overwrite to replace it)",
            a.out.display()
        );
    }
    let title = a
        .title
        .clone()
        .unwrap_or_else(|| format!("NTM {}: {}", runs[0].task, runs[0].held_out));
    let threshold = runs[0].threshold.unwrap_or(0.1);
    let curves: Vec<Curve> = runs.into_iter().map(|r| r.curve).collect();
    let png = learning_png(&title, &curves, threshold)?;
    write_file(&a.out, &png)?;
    println!("wrote {} ({} runs)", a.out.display(), curves.len());
    Ok(())
}
