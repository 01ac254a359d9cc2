//! `rnn train`: forecast one column of a CSV time series one step ahead from
//! sliding windows of the feature columns, with a chronological
//! train/validation/test split, min-max scaling fitted on the training rows
//! only, early stopping on the validation loss, and the test error next to
//! the persistence baseline (tomorrow = today).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use recurrent::arch::{SequenceRegressor, WindowRegression};
use recurrent::optim::{Adam, AdamConfig, Optimizer, RmsProp, RmsPropConfig, Sgd, SgdConfig};
use recurrent::train::{AllReduce, Trainer, TrainerConfig, slice_of};
use recurrent::{CellKind, GruVariant, Merge, NetConfig, Nonlinearity};
use serde_json::json;

use crate::csv_data::Table;
use crate::dates::utc_timestamp;
use crate::distributed::Workers;
use crate::memory;
use crate::plot::{self, Chart, Line, PALETTE, TimeAxis};
use crate::predictor::{HEAD_FILE, MODEL_FILE, Mode, Predictor, log_rows, scale_rows};
use crate::run_dir::{OutFile, Staging, check_dest, fresh_dir};
use crate::scaler::MinMax;
use plotters::chart::SeriesLabelPosition;

/// The default data file, relative to the working folder.
pub const DEFAULT_DATA: &str = "data/finance.csv";

const DEFAULT_HIDDEN: usize = 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum CellArg {
    /// Long short-term memory.
    Lstm,
    /// Gated recurrent unit (PyTorch's formulation).
    Gru,
    /// Elman network (see --activation).
    Rnn,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ActArg {
    Tanh,
    Relu,
}

/// How a bidirectional layer combines its directions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum MergeArg {
    /// Side by side (`D*H` features for the layer above), PyTorch's.
    Concat,
    /// Added (`H` features).
    Sum,
}

impl MergeArg {
    fn merge(self) -> Merge {
        match self {
            Self::Concat => Merge::Concat,
            Self::Sum => Merge::Sum,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OptArg {
    Adam,
    Adamw,
    Sgd,
    Rmsprop,
}

/// Arguments of `rnn train`.
#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    /// CSV file: a date column and numeric columns, one row per time step,
    /// oldest first. ISO dates (YYYY-MM-DD, optionally with a time) must
    /// increase, and a date column with one must hold only such dates;
    /// numbers must be finite and within f32's range (about 3.4e38).
    #[arg(long, default_value = DEFAULT_DATA)]
    pub data: PathBuf,
    /// Input columns, comma-separated, or `all` for every numeric column
    /// [default: the target column alone].
    #[arg(long, value_delimiter = ',')]
    pub features: Option<Vec<String>>,
    /// The column to forecast, one step ahead.
    #[arg(long, default_value = "close")]
    pub target: String,
    /// The date column [default: a column named date, else the first column
    /// when it holds text].
    #[arg(long)]
    pub date_column: Option<String>,
    /// Time steps in each input window.
    #[arg(long, default_value_t = 20)]
    pub window: usize,
    /// Share of the windows kept for validation (those just before the test
    /// windows).
    #[arg(long, default_value_t = 0.15)]
    pub val_frac: f64,
    /// Share of the windows (the latest) kept for the test.
    #[arg(long, default_value_t = 0.15)]
    pub test_frac: f64,
    /// What the network outputs, each a forecast of the next value: its
    /// change from the last input step (delta), the value itself (level),
    /// or (relative) its log ratio to the last value, every input window
    /// made relative to its last row too.
    #[arg(long, value_enum, default_value_t = Mode::Delta)]
    pub mode: Mode,
    /// Recurrent cell.
    #[arg(long, value_enum, default_value_t = CellArg::Lstm)]
    pub cell: CellArg,
    /// Non-linearity of an Elman network (--cell rnn only) [default: tanh].
    #[arg(long, value_enum)]
    pub activation: Option<ActArg>,
    /// Hidden units per layer and direction.
    #[arg(long, default_value_t = DEFAULT_HIDDEN)]
    pub hidden: usize,
    /// Stacked recurrent layers.
    #[arg(long, default_value_t = 1)]
    pub layers: usize,
    /// Add a reverse direction to every layer.
    #[arg(long)]
    pub bidirectional: bool,
    /// Dropout between stacked layers (PyTorch's `dropout`), in [0, 1):
    /// training batches only, never the validation, test or forecasts.
    #[arg(long, default_value_t = 0.0)]
    pub dropout: f32,
    /// Recurrent (variational) dropout on h_{t-1}, one mask per sequence, in
    /// [0, 1): training batches only (not for the reset-before-linear GRU).
    #[arg(long, default_value_t = 0.0)]
    pub recurrent_dropout: f32,
    /// LSTM projection size (PyTorch's `proj_size`): each layer's output and
    /// state `h` is this wide (`0 < P < hidden`), 0 for none.
    #[arg(long, default_value_t = 0)]
    pub proj_size: usize,
    /// How a bidirectional layer's directions reach the layer above:
    /// concatenated or summed (the head reads the top layer's final states,
    /// concatenated, either way).
    #[arg(long, value_enum, default_value_t = MergeArg::Concat)]
    pub merge: MergeArg,
    /// Optimizer.
    #[arg(long, value_enum, default_value_t = OptArg::Adam)]
    pub optimizer: OptArg,
    /// Learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Momentum (sgd and rmsprop only) [default: 0.9 for sgd, 0 for rmsprop].
    #[arg(long)]
    pub momentum: Option<f64>,
    /// Most epochs.
    #[arg(long, default_value_t = 200)]
    pub epochs: usize,
    /// Stop after this many epochs without a better validation loss (0: never).
    #[arg(long, default_value_t = 25)]
    pub patience: usize,
    /// Windows per training batch.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Clip the gradients to this global norm (0: no clipping).
    #[arg(long, default_value_t = 1.0)]
    pub clip: f32,
    /// Seed of the initialisation and of the batch order.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Threads of the library, 1 to 1024 [default: all cores, or
    /// RNN_NUM_THREADS].
    #[arg(long, value_parser = crate::parse_threads)]
    pub threads: Option<usize>,
    /// Output folder [default: runs/<UTC timestamp>/]. The run is written
    /// beside it (.NAME.staging-*) and moved into place whole, with
    /// manifest.json (its files and sizes) written last; an existing folder
    /// that is not empty is refused unless --overwrite.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Replace --out if it holds an earlier run written by rnn (a folder
    /// with manifest.json and nothing else besides the files it lists),
    /// once the new run is complete. Nothing else is ever replaced.
    #[arg(long)]
    pub overwrite: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Data-parallel training under mpirun (`mpirun -np N rnn train
    /// --distributed`): each rank takes a contiguous slice of every global
    /// batch, the gradients are summed over MPI; rank 0 prints and writes.
    /// Needs a binary built with `--features mpi`.
    #[arg(long)]
    pub distributed: bool,
    /// Compare the ranks' parameters (a checksum) after every epoch; a
    /// difference stops the run naming the epoch.
    #[arg(long)]
    pub check_replicas: bool,
}

fn check_args(a: &TrainArgs) -> Result<()> {
    if a.activation.is_some() && a.cell != CellArg::Rnn {
        bail!(
            "--activation applies to --cell rnn only (got --cell {})",
            format!("{:?}", a.cell).to_lowercase()
        );
    }
    if a.momentum.is_some() && !matches!(a.optimizer, OptArg::Sgd | OptArg::Rmsprop) {
        bail!("--momentum applies to --optimizer sgd or rmsprop only");
    }
    for (name, v) in [("--val-frac", a.val_frac), ("--test-frac", a.test_frac)] {
        if !(v > 0.0 && v < 1.0) {
            bail!("{name} must be between 0 and 1 (exclusive), got {v}");
        }
    }
    if a.val_frac + a.test_frac >= 1.0 {
        bail!(
            "--val-frac {} and --test-frac {} leave nothing to train on (their sum must be below 1)",
            a.val_frac,
            a.test_frac
        );
    }
    for (name, v) in [
        ("--window", a.window),
        ("--hidden", a.hidden),
        ("--layers", a.layers),
        ("--epochs", a.epochs),
        ("--batch-size", a.batch_size),
    ] {
        if v == 0 {
            bail!("{name} must be at least 1");
        }
    }
    if !(a.lr.is_finite() && a.lr > 0.0) {
        bail!("--lr must be a positive number, got {}", a.lr);
    }
    if !(a.clip.is_finite() && a.clip >= 0.0) {
        bail!("--clip must be 0 (off) or positive, got {}", a.clip);
    }
    if let Some(f) = &a.features {
        if f.is_empty() || f.iter().any(|s| s.trim().is_empty()) {
            bail!("--features: an empty column name");
        }
        if let Some(d) = f.iter().enumerate().find(|(i, s)| f[..*i].contains(s)) {
            bail!("--features: column {:?} is listed twice", d.1);
        }
    }
    match &a.out {
        Some(out) => check_dest(out, a.overwrite)?,
        None if a.overwrite => bail!("--overwrite applies to an --out folder only"),
        None => {}
    }
    Ok(())
}

/// Bytes a training run needs, about (`None`: more than can be counted):
/// every copy of the parameters (the network, its gradients, two optimizer
/// states, the best epoch's, one more), the tape of a call over `batch`
/// windows of `window` steps and its backward, the call's inputs and
/// gradients.
fn train_need(
    a: &TrainArgs,
    (hidden, layers): (usize, usize),
    features: usize,
    window: usize,
    batch: usize,
) -> Option<u64> {
    let g: u64 = match a.cell {
        CellArg::Lstm => 4,
        CellArg::Gru => 3,
        CellArg::Rnn => 1,
    };
    let d: u64 = if a.bidirectional { 2 } else { 1 };
    // The width layers above the first read: D*H, or H summed.
    let d_in: u64 = if a.merge == MergeArg::Sum { 1 } else { d };
    let (h, l) = (hidden as u64, layers as u64);
    let (f, t, b) = (features as u64, window as u64, batch as u64);
    let gh = g.checked_mul(h)?;
    // G*H*(I_k + H + 2) per layer and direction; I_0 = F, I_k = D*H (H
    // summed).
    let first = gh.checked_mul(f.checked_add(h)?.checked_add(2)?)?;
    let rest = gh
        .checked_mul(d_in.checked_mul(h)?.checked_add(h)?.checked_add(2)?)?
        .checked_mul(l.saturating_sub(1))?;
    let params = first.checked_add(rest)?.checked_mul(d)?;
    let tape = l
        .checked_mul(d)?
        .checked_mul(t)?
        .checked_mul(b)?
        .checked_mul(g + 3)?
        .checked_mul(h)?;
    let io = t
        .checked_mul(b)?
        .checked_mul(f.checked_add(d.checked_mul(h)?)?)?;
    params
        .checked_mul(6)?
        .checked_add(tape.checked_mul(2)?)?
        .checked_add(io)?
        .checked_mul(4)
}

/// Refuses, before any allocation, a network that needs more memory than
/// is available, naming the option that weighs most: --hidden or --layers
/// (the others are bounded by the data), whichever at its default would
/// save more.
fn check_memory(a: &TrainArgs, features: usize, window: usize, batch: usize) -> Result<()> {
    let need = |hl| train_need(a, hl, features, window, batch);
    let (h, l) = (a.hidden, a.layers);
    if memory::fits(need((h, l))) {
        return Ok(());
    }
    let mut blame: Vec<(String, u64)> = Vec::new();
    if h != DEFAULT_HIDDEN {
        blame.push((
            format!("--hidden {h}"),
            need((DEFAULT_HIDDEN, l)).unwrap_or(u64::MAX),
        ));
    }
    if l != 1 {
        blame.push((format!("--layers {l}"), need((h, 1)).unwrap_or(u64::MAX)));
    }
    let what = blame.into_iter().min_by_key(|(_, n)| *n).map_or_else(
        || format!("--hidden {h} with --layers {l} and --window {window}"),
        |(w, _)| w,
    );
    memory::check(need((h, l)), &what)
}

fn make_optimizer(a: &TrainArgs) -> Result<Box<dyn Optimizer>> {
    Ok(match a.optimizer {
        OptArg::Adam => Box::new(Adam::new(AdamConfig::new(a.lr))?),
        OptArg::Adamw => Box::new(Adam::new(AdamConfig::adamw(a.lr))?),
        OptArg::Sgd => Box::new(Sgd::new(SgdConfig {
            momentum: a.momentum.unwrap_or(0.9),
            ..SgdConfig::new(a.lr)
        })?),
        OptArg::Rmsprop => Box::new(RmsProp::new(RmsPropConfig {
            momentum: a.momentum.unwrap_or(0.0),
            ..RmsPropConfig::new(a.lr)
        })?),
    })
}

fn cell_kind(a: &TrainArgs) -> CellKind {
    match a.cell {
        CellArg::Lstm => CellKind::Lstm,
        CellArg::Gru => CellKind::Gru(GruVariant::LinearBeforeReset),
        CellArg::Rnn => CellKind::Elman(match a.activation {
            Some(ActArg::Relu) => Nonlinearity::Relu,
            _ => Nonlinearity::Tanh,
        }),
    }
}

fn cell_label(c: CellKind) -> &'static str {
    match c {
        CellKind::Lstm => "LSTM",
        CellKind::Gru(_) => "GRU",
        CellKind::Elman(Nonlinearity::Relu) => "Elman RNN (relu)",
        CellKind::Elman(Nonlinearity::Tanh) => "Elman RNN (tanh)",
    }
}

/// The data path: as given, or for the default, the repository's copy when
/// the working folder has none (e.g. `cargo run` from a subfolder).
pub fn resolve_data(p: &Path) -> PathBuf {
    if p == Path::new(DEFAULT_DATA) && !p.exists() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(DEFAULT_DATA);
        if let Ok(repo) = repo.canonicalize() {
            return repo;
        }
    }
    p.to_path_buf()
}

/// Root-mean-square and mean absolute error.
fn errors(pred: &[f64], actual: &[f64]) -> (f64, f64) {
    let n = pred.len().max(1) as f64;
    let (mut se, mut ae) = (0.0, 0.0);
    for (p, a) in pred.iter().zip(actual) {
        se += (p - a) * (p - a);
        ae += (p - a).abs();
    }
    ((se / n).sqrt(), ae / n)
}

/// Sizes of the chronological split of `n` windows: (train, validation, test).
/// The standard deviation of `values` (population), 1 when there are
/// none or they are all equal (a scale that changes nothing).
fn std_dev(values: impl Iterator<Item = f64>) -> f64 {
    let (mut n, mut sum, mut sq) = (0usize, 0.0f64, 0.0f64);
    for v in values {
        n += 1;
        sum += v;
        sq += v * v;
    }
    if n == 0 {
        return 1.0;
    }
    let mean = sum / n as f64;
    let var = (sq / n as f64 - mean * mean).max(0.0);
    if var > 0.0 { var.sqrt() } else { 1.0 }
}

fn split_sizes(n: usize, val_frac: f64, test_frac: f64) -> (usize, usize, usize) {
    let test = ((n as f64 * test_frac).round() as usize).max(1);
    let val = ((n as f64 * val_frac).round() as usize).max(1);
    (n.saturating_sub(test + val), val, test)
}

pub fn run(a: &TrainArgs) -> Result<()> {
    check_args(a)?;
    let mut workers = Workers::new(a.distributed)?;
    let result = run_on(a, &mut workers);
    workers.finish(result)
}

/// The run on one worker (every rank of a distributed run executes it; rank
/// 0 prints and writes).
fn run_on(a: &TrainArgs, workers: &mut Workers) -> Result<()> {
    let started = Instant::now();
    let (rank, world) = (workers.rank(), workers.world_size());
    let root = rank == 0;
    workers.check_same_command()?;
    if let Some(n) = a.threads {
        recurrent::set_num_threads(n).map_err(|e| anyhow::anyhow!("--threads {n}: {e}"))?;
    }
    let data = resolve_data(&a.data);
    let table = Table::read(&data, a.date_column.as_deref())?;
    let shown = data.display().to_string();

    // Columns.
    let features = match a.features.as_deref() {
        None => vec![a.target.clone()],
        Some([all]) if all.trim() == "all" => {
            let f = table.numeric_names();
            if f.is_empty() {
                bail!(
                    "{shown}: no numeric columns (columns: {})",
                    table.all_names().join(", ")
                );
            }
            f
        }
        Some(f) => f.iter().map(|s| s.trim().to_string()).collect(),
    };
    let columns: Vec<Vec<f64>> = features
        .iter()
        .map(|n| table.series(n))
        .collect::<Result<_>>()?;
    let y = table.series(&a.target)?;

    // Windows and the chronological split. Window k reads rows k..k+W and
    // forecasts row k+W.
    let (rows, w) = (table.rows, a.window);
    let min_rows = w.checked_add(3);
    if min_rows.is_none_or(|m| rows < m) {
        bail!(
            "{shown}: {rows} rows is too few for --window {w} (need at least {}: a window, then one row each to train, validate and test)",
            min_rows.map_or_else(|| format!("{w} + 3"), |m| m.to_string())
        );
    }
    let n = rows - w;
    let (n_train, n_val, n_test) = split_sizes(n, a.val_frac, a.test_frac);
    if n_train == 0 {
        bail!(
            "{shown}: {rows} rows leave no training window with --window {w}, --val-frac {} and --test-frac {}",
            a.val_frac,
            a.test_frac
        );
    }
    // The largest call: a training batch, or a validation or test chunk.
    let widest = a.batch_size.min(n_train).max(n_val.max(n_test).min(512));
    check_memory(a, features.len(), w, widest)?;
    // The run folder, staged beside its destination from now on; removed
    // again on an error or a signal.
    let out_dir = match &a.out {
        Some(p) => p.clone(),
        None => fresh_dir(PathBuf::from("runs").join(utc_timestamp())),
    };
    let stage = if root {
        Some(Staging::create(&out_dir, a.overwrite, "train")?)
    } else {
        None
    };
    let train_idx: Vec<usize> = (0..n_train).collect();
    let val_idx: Vec<usize> = (n_train..n_train + n_val).collect();
    let test_idx: Vec<usize> = (n_train + n_val..n).collect();

    // Scalers fitted on the rows the training windows see (inputs and
    // targets): rows 0..n_train + W. Nothing later leaks in.
    let fit_rows = 0..n_train + w;
    let col_refs: Vec<&[f64]> = columns.iter().map(Vec::as_slice).collect();
    let x_scaler = MinMax::fit(&col_refs, fit_rows.clone());
    let y_scaler = match a.mode {
        Mode::Level => MinMax::fit(&[&y], fit_rows.clone()),
        Mode::Delta => {
            // Changes divided by their range over the training rows
            // (`scale_delta(d) = d / (max - min)` with min = 0, max = range).
            let d: Vec<f64> = y[fit_rows.clone()]
                .windows(2)
                .map(|p| p[1] - p[0])
                .collect();
            let s = MinMax::fit(&[&d], 0..d.len());
            MinMax {
                min: vec![0.0],
                max: vec![s.max[0] - s.min[0]],
            }
        }
        Mode::Relative => {
            if let Some(r) = y.iter().position(|&v| v.is_nan() || v <= 0.0) {
                bail!(
                    "{shown}: column {:?}, {}: {} is not positive; --mode relative forecasts ratios (try --mode delta)",
                    a.target,
                    crate::csv_data::row_ref(r),
                    y[r]
                );
            }
            // Log changes divided by their standard deviation over the
            // training rows.
            let d: Vec<f64> = y[fit_rows.clone()]
                .windows(2)
                .map(|p| (p[1] / p[0]).ln())
                .collect();
            MinMax {
                min: vec![0.0],
                max: vec![std_dev(d.iter().copied())],
            }
        }
    };
    let (x, x_scaler) = match a.mode {
        Mode::Level | Mode::Delta => (
            scale_rows(&x_scaler, &features, &columns).with_context(|| shown.clone())?,
            x_scaler,
        ),
        Mode::Relative => {
            let x = log_rows(&features, &columns).with_context(|| shown.clone())?;
            // Each feature's log ratio to the window's last row, its
            // standard deviation over the training windows.
            let f = features.len();
            let scales = (0..f)
                .map(|c| {
                    std_dev(
                        train_idx
                            .iter()
                            .flat_map(|&k| {
                                let last = f64::from(x[(k + w - 1) * f + c]);
                                (k..k + w).map(move |r| (r, last))
                            })
                            .map(|(r, last)| f64::from(x[r * f + c]) - last),
                    )
                })
                .collect();
            (
                x,
                MinMax {
                    min: vec![0.0; f],
                    max: scales,
                },
            )
        }
    };
    // Model.
    let cell = cell_kind(a);
    let config = NetConfig {
        cell,
        input_size: features.len(),
        hidden_size: a.hidden,
        num_layers: a.layers,
        bias: true,
        bidirectional: a.bidirectional,
        merge: a.merge.merge(),
        proj_size: a.proj_size,
        dropout: a.dropout,
        recurrent_dropout: a.recurrent_dropout,
        seed: a.seed,
        ..NetConfig::new(cell, features.len(), a.hidden)
    };
    if a.dropout > 0.0 && a.layers == 1 && root {
        // As PyTorch warns: the dropout acts between layers.
        eprintln!(
            "warning: --dropout acts between stacked layers; with --layers 1 it does nothing"
        );
    }
    let mut model = Predictor {
        model: SequenceRegressor::new(config.clone(), 1)?,
        features: features.clone(),
        target: a.target.clone(),
        window: w,
        mode: a.mode,
        date_column: table.date.as_ref().map(|d| d.name.clone()),
        x_scaler,
        y_scaler,
    };
    let n_params = model.model.num_params();
    let targets: Vec<f32> = (0..n).map(|k| model.scaled_target(&y, k) as f32).collect();
    if let Some(k) = targets.iter().position(|v| !v.is_finite()) {
        bail!(
            "{shown}: column {:?}, {}: {} scales to {}, beyond f32's range (the training rows span [{}, {}])",
            a.target,
            crate::csv_data::row_ref(k + w),
            y[k + w],
            model.scaled_target(&y, k),
            model.y_scaler.min[0],
            model.y_scaler.max[0]
        );
    }

    // What the run is.
    let date_of = |row: usize| -> String {
        match &table.date {
            Some(d) => d.labels[row].clone(),
            None => format!("row {}", row + 1),
        }
    };
    let span = |idx: &[usize]| -> String {
        match (idx.first(), idx.last()) {
            (Some(&f), Some(&l)) => format!("{} .. {}", date_of(f + w), date_of(l + w)),
            _ => String::new(),
        }
    };
    if root {
        println!(
            "data: {shown}: {rows} rows, {} .. {}",
            date_of(0),
            date_of(rows - 1)
        );
        println!(
            "forecast: next {} ({}) from windows of {w} steps of {}",
            a.target,
            a.mode.name(),
            features.join(", ")
        );
        println!("split (chronological; scales fitted on the training rows only):");
        for (name, idx) in [
            ("train", &train_idx),
            ("validation", &val_idx),
            ("test", &test_idx),
        ] {
            println!(
                "  {name:<10} {:>6} windows, forecasting {}",
                idx.len(),
                span(idx)
            );
        }
        println!(
            "model: {}, hidden {}{}, {} layer{}{}, {n_params} parameters; {:?} lr {}, batch {}, clip {}, seed {}, {} threads, simd {}",
            cell_label(cell),
            a.hidden,
            if a.proj_size > 0 {
                format!(" projected to {}", a.proj_size)
            } else {
                String::new()
            },
            a.layers,
            if a.layers > 1 { "s" } else { "" },
            match (a.bidirectional, a.merge) {
                (false, _) => "",
                (true, MergeArg::Concat) => ", bidirectional",
                (true, MergeArg::Sum) => ", bidirectional (summed)",
            },
            a.optimizer,
            a.lr,
            a.batch_size,
            a.clip,
            a.seed,
            recurrent::num_threads(),
            recurrent::kernels::simd::detected_level()
        );
    }

    // Training.
    let mut opt = make_optimizer(a)?;
    let bar = if a.quiet || !root {
        ProgressBar::hidden()
    } else {
        let b = ProgressBar::with_draw_target(Some(a.epochs as u64), ProgressDrawTarget::stderr());
        b.set_style(
            ProgressStyle::with_template("epoch {pos:>4}/{len} [{bar:24}] {msg} eta {eta}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        b
    };
    let trainer = TrainerConfig {
        epochs: a.epochs,
        batch_size: a.batch_size,
        patience: a.patience,
        clip: (a.clip > 0.0).then_some(a.clip),
        seed: a.seed,
        check_replicas: a.check_replicas,
    };
    let scales = model.relative_scales();
    let history = {
        let mut task = WindowRegression::new(&mut model.model, &x, w, &targets)?;
        if a.mode == Mode::Relative {
            task = task.relative_to_last(&scales)?;
        }
        let mut trainer = Trainer::new(trainer, workers)?;
        trainer.fit(&mut task, &mut *opt, &train_idx, &val_idx, &mut |r| {
            let secs = r.seconds.max(1e-9);
            bar.inc(1);
            bar.set_message(format!(
                "loss {:.2e} val {:.2e} (best {:.2e} @{}) {:.1} epochs/s {:.0} windows/s",
                r.train_loss,
                r.val_loss,
                r.best_val,
                r.best_epoch,
                r.epoch as f64 / secs,
                r.examples as f64 / secs
            ));
        })?
    };
    bar.finish_and_clear();
    let train_secs = history.seconds;
    let epochs_run = history.train_loss.len();
    let (best_val, best_epoch) = (history.best_val, history.best_epoch);
    let early = history.early_stopped;
    // The test forecasts: each rank its slice, summed into one vector.
    let test_out = {
        let mut task = WindowRegression::new(&mut model.model, &x, w, &targets)?;
        if a.mode == Mode::Relative {
            task = task.relative_to_last(&scales)?;
        }
        let mine = slice_of(n_test, rank, world);
        let mut all = vec![0.0f32; n_test];
        let p = task.predict(&test_idx[mine.clone()], 512)?;
        all[mine].copy_from_slice(&p);
        workers.sum(&mut all)?;
        all
    };
    let Some(stage) = stage else {
        return Ok(()); // not rank 0: it prints and writes
    };
    println!(
        "trained {epochs_run} epochs in {train_secs:.1} s{}; kept the weights of epoch {best_epoch} (validation MSE {best_val:.3e}, scaled)",
        if early {
            format!(" (early stop: {} epochs without improvement)", a.patience)
        } else {
            String::new()
        }
    );
    if world > 1 {
        println!(
            "distributed: {world} ranks, {:.2} s of {train_secs:.1} s in the gradient all-reduce (rank 0)",
            history.reduce_seconds
        );
    }

    // Test, in the target's units, against persistence.
    let mut pred_test = Vec::with_capacity(n_test);
    for (&k, &s) in test_idx.iter().zip(&test_out) {
        let p = model.unscale(s as f64, Some(y[k + w - 1]))?;
        if !p.is_finite() {
            bail!(
                "the trained model's forecast for {} is {p} (network output {s}): not a finite number, nothing written",
                date_of(k + w)
            );
        }
        pred_test.push(p);
    }
    let actual: Vec<f64> = test_idx.iter().map(|&k| y[k + w]).collect();
    let persist: Vec<f64> = test_idx.iter().map(|&k| y[k + w - 1]).collect();
    let (rmse, mae) = errors(&pred_test, &actual);
    let (b_rmse, b_mae) = errors(&persist, &actual);
    let winner = if rmse < b_rmse {
        "model"
    } else {
        "persistence"
    };
    let label = cell_label(cell);
    println!(
        "test: {n_test} forecasts ({}) of the next {}, in its units:",
        span(&test_idx),
        a.target
    );
    println!("  {:<28} {:>10} {:>10}", "", "RMSE", "MAE");
    println!("  {:<28} {rmse:>10.4} {mae:>10.4}", label);
    println!(
        "  {:<28} {b_rmse:>10.4} {b_mae:>10.4}",
        "persistence (tomorrow=today)"
    );
    if winner == "model" {
        println!(
            "  the model beats persistence: RMSE {:.1}% lower",
            100.0 * (b_rmse - rmse) / b_rmse
        );
    } else {
        println!(
            "  persistence wins: the model's RMSE is {:.1}% higher",
            100.0 * (rmse - b_rmse) / b_rmse.max(f64::MIN_POSITIVE)
        );
    }

    // Figures.
    let axis_of = |rows: &[usize]| -> TimeAxis {
        match table.date.as_ref().and_then(|d| d.days.as_ref()) {
            Some(days) => TimeAxis {
                x: rows.iter().map(|&r| days[r]).collect(),
                dates: true,
                title: "date".into(),
            },
            None => TimeAxis {
                x: rows.iter().map(|&r| (r + 1) as f64).collect(),
                dates: false,
                title: "row".into(),
            },
        }
    };
    let all_rows: Vec<usize> = (0..rows).collect();
    let mut shown_names = features.clone();
    let mut shown_cols = columns.clone();
    if !features.contains(&a.target) {
        shown_names.push(a.target.clone());
        shown_cols.push(y.clone());
    }
    let file_name = data
        .file_name()
        .map_or(shown.clone(), |f| f.to_string_lossy().to_string());
    let data_png = plot::overview(
        &axis_of(&all_rows),
        &shown_names,
        &shown_cols,
        &format!(
            "{file_name}: {rows} rows, {} .. {}",
            date_of(0),
            date_of(rows - 1)
        ),
    )?;
    let test_rows: Vec<usize> = test_idx.iter().map(|&k| k + w).collect();
    let taxis = axis_of(&test_rows);
    let pred_title = format!(
        "Test period: forecasts of the next {}, {label} RMSE {rmse:.3} vs persistence {b_rmse:.3}",
        a.target
    );
    let pred_png = plot::lines(
        &Chart {
            title: &pred_title,
            x_desc: &taxis.title,
            y_desc: &a.target,
            axis: Some(&taxis),
            log_y: false,
            vline: None,
            legend: SeriesLabelPosition::UpperLeft,
            size: (1200, 600),
        },
        &[
            Line {
                label: "actual".into(),
                x: &taxis.x,
                y: &actual,
                color: plotters::style::RGBColor(0, 0, 0),
                width: 2,
                dashed: false,
            },
            Line {
                label: format!("{label} forecast"),
                x: &taxis.x,
                y: &pred_test,
                color: PALETTE[0],
                width: 2,
                dashed: false,
            },
            Line {
                label: "persistence (tomorrow = today)".into(),
                x: &taxis.x,
                y: &persist,
                color: PALETTE[1],
                width: 1,
                dashed: true,
            },
        ],
    )?;
    let ex: Vec<f64> = (1..=epochs_run).map(|e| e as f64).collect();
    let best_label = format!("best epoch ({best_epoch})");
    let loss_png = plot::lines(
        &Chart {
            title: "Loss (MSE on scaled values)",
            x_desc: "epoch",
            y_desc: "loss (log scale)",
            axis: None,
            log_y: true,
            vline: Some((best_epoch as f64, best_label.as_str())),
            legend: SeriesLabelPosition::UpperRight,
            size: (1000, 600),
        },
        &[
            Line {
                label: "train".into(),
                x: &ex,
                y: &history.train_loss,
                color: PALETTE[0],
                width: 2,
                dashed: false,
            },
            Line {
                label: "validation".into(),
                x: &ex,
                y: &history.val_loss,
                color: PALETTE[1],
                width: 2,
                dashed: false,
            },
        ],
    )?;

    // Predictions over the test period, as CSV.
    let mut csv = format!("date,actual_{0},predicted_{0},persistence_{0}\n", a.target);
    for (i, &r) in test_rows.iter().enumerate() {
        csv.push_str(&format!(
            "{},{},{},{}\n",
            crate::predict::csv_field(&date_of(r)),
            actual[i],
            pred_test[i],
            persist[i]
        ));
    }

    let seconds = started.elapsed().as_secs_f64();
    let metrics = json!({
        "version": env!("CARGO_PKG_VERSION"),
        "data": shown,
        "rows": rows,
        "first_date": date_of(0),
        "last_date": date_of(rows - 1),
        "features": features,
        "target": a.target,
        "mode": a.mode.name(),
        "window": w,
        "split": {
            "train": n_train, "validation": n_val, "test": n_test,
            "test_first_date": date_of(test_rows[0]),
            "test_last_date": date_of(*test_rows.last().expect("test is not empty")),
            "scaler_fitted_on_rows": fit_rows.end,
        },
        "model": {
            "cell": cell.name(), "hidden": a.hidden, "layers": a.layers,
            "bidirectional": a.bidirectional, "merge": config.merge.name(),
            "proj_size": config.proj_size, "dropout": config.dropout,
            "recurrent_dropout": config.recurrent_dropout,
            "parameters": n_params,
        },
        "training": {
            "optimizer": format!("{:?}", a.optimizer).to_lowercase(),
            "lr": a.lr, "batch_size": a.batch_size, "clip": a.clip, "seed": a.seed,
            "threads": recurrent::num_threads(),
            "simd": recurrent::kernels::simd::detected_level().to_string(),
            "max_epochs": a.epochs, "patience": a.patience,
            "epochs_run": epochs_run, "early_stopped": early,
            "best_epoch": best_epoch, "best_val_loss": best_val,
            "train_loss": history.train_loss, "val_loss": history.val_loss,
            "step_loss": history.step_loss,
            "seconds": train_secs, "reduce_seconds": history.reduce_seconds,
        },
        "test": {
            "n": n_test, "rmse": rmse, "mae": mae,
            "baseline": "persistence",
            "baseline_rmse": b_rmse, "baseline_mae": b_mae,
            "winner": winner,
        },
        "wall_seconds": seconds,
        "world_size": world,
        "per_rank_batch": (0..world)
            .map(|r| slice_of(a.batch_size.min(n_train), r, world).len())
            .collect::<Vec<_>>(),
    });
    let metrics = serde_json::to_string_pretty(&metrics)? + "\n";
    let head_bytes = model.head_bytes()?;
    let save_net = |p: &Path| -> Result<()> { Ok(model.model.net().save(p)?) };
    let out_dir = stage.dest().to_path_buf();
    stage
        .commit(&[
            OutFile::With(MODEL_FILE, &save_net),
            OutFile::Bytes(HEAD_FILE, &head_bytes),
            OutFile::Bytes("metrics.json", metrics.as_bytes()),
            OutFile::Bytes("test_predictions.csv", csv.as_bytes()),
            OutFile::Bytes("data.png", &data_png),
            OutFile::Bytes("prediction.png", &pred_png),
            OutFile::Bytes("loss.png", &loss_png),
        ])
        .with_context(|| format!("writing the run folder {}", out_dir.display()))?;
    println!(
        "wrote {}/: {MODEL_FILE} {HEAD_FILE} metrics.json test_predictions.csv data.png prediction.png loss.png manifest.json ({:.1} s in all)",
        out_dir.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_chronological_and_complete() {
        assert_eq!(split_sizes(1240, 0.15, 0.15), (868, 186, 186));
        assert_eq!(split_sizes(3, 0.15, 0.15), (1, 1, 1));
        assert_eq!(split_sizes(2, 0.15, 0.15), (0, 1, 1));
    }

    #[test]
    fn errors_are_rmse_and_mae() {
        let (r, m) = errors(&[1.0, 3.0], &[2.0, 2.0]);
        assert_eq!((r, m), (1.0, 1.0));
    }
}
