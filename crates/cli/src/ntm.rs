//! `rnn ntm <copy|repeat-copy|recall>`: trains a Neural Turing Machine
//! (docs/ntm.md) on one of the algorithmic tasks of Graves et al. 2014, with
//! a progress bar, a held-out evaluation and a checkpoint every
//! `--eval-every` sequences, then measures how it generalises to sizes it
//! was not trained on. Writes `model.safetensors` (at every evaluation),
//! `metrics.json` and `weightings.png` into the run folder.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use recurrent::ntm::{
    Controller, MAX_HEADS, MemoryInit, Ntm, NtmConfig, NtmOptimizer, NtmTape, NtmTrainConfig,
    NtmTrainer, Progress, Task, TaskBatch, TrainPlan, TrainReport, evaluate,
};
use recurrent::rng::SplitMix64;
use serde_json::json;

use crate::dates::utc_timestamp;
use crate::output::{OutFile, check_out_dir, fresh_dir, write_all};
use crate::plot::{self, Heatmap};

/// The checkpoint's file name in the run folder.
pub const MODEL_FILE: &str = "model.safetensors";

/// Seed of the held-out sets: fixed, so that runs with different `--seed`s
/// are evaluated on the same sequences.
const EVAL_SEED: u64 = 0x2545_F491_4F6C_DD1D;

/// Sequences longer than this many steps are evaluated on at most
/// [`LONG_CAP`] sequences per size in the generalisation table (others on
/// at most [`SHORT_CAP`]): copy lengths up to 40 get 640, longer ones 128.
const LONG_STEPS: usize = 81;
/// Most held-out sequences per size of up to [`LONG_STEPS`] steps.
const SHORT_CAP: usize = 640;
/// Most held-out sequences per size of more than [`LONG_STEPS`] steps.
const LONG_CAP: usize = 128;

/// The largest size (length, repeats, items, eval size) accepted.
const MAX_SIZE: usize = 100_000;

/// The algorithmic task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TaskArg {
    /// Copy a sequence of random bit vectors after a delimiter.
    Copy,
    /// Copy a sequence a given number of times, then emit an end marker.
    RepeatCopy,
    /// Associative recall: given one item of a list, output the next one.
    Recall,
}

impl TaskArg {
    fn name(self) -> &'static str {
        match self {
            Self::Copy => "copy",
            Self::RepeatCopy => "repeat-copy",
            Self::Recall => "recall",
        }
    }
}

/// The NTM's controller network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ControllerArg {
    /// An LSTM cell.
    Lstm,
    /// One tanh layer.
    Feedforward,
}

impl ControllerArg {
    fn controller(self) -> Controller {
        match self {
            Self::Lstm => Controller::Lstm,
            Self::Feedforward => Controller::FeedForward,
        }
    }
}

/// The update rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum NtmOptArg {
    /// RMSProp with momentum (alpha 0.95, eps 1e-10), as Graves et al.
    Rmsprop,
    /// Adam (betas 0.9, 0.999; eps 1e-8).
    Adam,
}

/// Arguments of `rnn ntm`.
#[derive(clap::Args, Debug)]
pub struct NtmArgs {
    /// The task to train on.
    #[arg(value_enum)]
    pub task: TaskArg,

    // ---- training ----
    /// Seed of the parameter initialisation and of the training sequences.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Training sequences [default: 20000 for copy, 60000 for repeat-copy,
    /// 40000 for recall]. With --load, 0 only evaluates the loaded machine.
    #[arg(long)]
    pub max_sequences: Option<usize>,
    /// Sequences per update (all of one drawn size).
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Update rule.
    #[arg(long, value_enum, default_value_t = NtmOptArg::Rmsprop)]
    pub optimizer: NtmOptArg,
    /// Learning rate.
    #[arg(long, default_value_t = 1e-4)]
    pub lr: f64,
    /// Momentum of RMSProp (--optimizer rmsprop only) [default: 0.9].
    #[arg(long)]
    pub momentum: Option<f64>,
    /// Clamp every gradient to [-v, v] before the update (0: no clamping).
    #[arg(long, default_value_t = 10.0)]
    pub clip_value: f32,
    /// Rescale the gradient to at most this global norm [default: off].
    #[arg(long)]
    pub clip_norm: Option<f32>,
    /// Evaluate on the held-out set and checkpoint every this many training
    /// sequences (and at the end).
    #[arg(long, default_value_t = 1000)]
    pub eval_every: usize,
    /// Held-out sequences per evaluation.
    #[arg(long, default_value_t = 640)]
    pub eval_sequences: usize,
    /// Size of the held-out sequences: a length (copy, repeat-copy) or an
    /// item count (recall) [default: the longest training size, e.g. 20 for
    /// copy, 10 for repeat-copy, 6 for recall].
    #[arg(long)]
    pub eval_size: Option<usize>,
    /// Stop at the first evaluation with fewer held-out bit errors per
    /// sequence than this [default: 0.1].
    #[arg(long)]
    pub stop_below: Option<f64>,
    /// Train to --max-sequences whatever the held-out error.
    #[arg(long)]
    pub no_stop: bool,

    // ---- the machine ----
    /// Controller network [default: lstm].
    #[arg(long, value_enum)]
    pub controller: Option<ControllerArg>,
    /// Controller units [default: 100].
    #[arg(long)]
    pub controller_size: Option<usize>,
    /// Memory rows N [default: 128].
    #[arg(long)]
    pub memory_rows: Option<usize>,
    /// Memory width M [default: 20].
    #[arg(long)]
    pub memory_width: Option<usize>,
    /// Read heads [default: 1].
    #[arg(long)]
    pub read_heads: Option<usize>,
    /// Write heads [default: 1].
    #[arg(long)]
    pub write_heads: Option<usize>,
    /// The heads shift by -S..=S rows [default: 1].
    #[arg(long)]
    pub shift_range: Option<usize>,
    /// Every memory cell starts each sequence at this value [default: 1e-6].
    #[arg(long, allow_negative_numbers = true)]
    pub memory_init: Option<f32>,
    /// Learn the initial memory instead of starting from a constant.
    #[arg(long)]
    pub learned_memory: bool,

    // ---- task sizes ----
    /// Bits per vector [default: 8 for copy and repeat-copy, 6 for recall].
    #[arg(long)]
    pub bits: Option<usize>,
    /// Shortest training sequence (copy, repeat-copy) [default: 1].
    #[arg(long)]
    pub min_len: Option<usize>,
    /// Longest training sequence (copy, repeat-copy) [default: 20 for copy,
    /// 10 for repeat-copy].
    #[arg(long)]
    pub max_len: Option<usize>,
    /// Fewest repeats (repeat-copy) [default: 1].
    #[arg(long)]
    pub min_repeats: Option<usize>,
    /// Most repeats, also the normaliser of the repeat count (repeat-copy)
    /// [default: 10].
    #[arg(long)]
    pub max_repeats: Option<usize>,
    /// Vectors per item (recall) [default: 3].
    #[arg(long)]
    pub item_len: Option<usize>,
    /// Fewest items (recall, at least 2) [default: 2].
    #[arg(long)]
    pub min_items: Option<usize>,
    /// Most items (recall) [default: 6].
    #[arg(long)]
    pub max_items: Option<usize>,

    // ---- running ----
    /// Threads of the library [default: all cores, or RNN_NUM_THREADS].
    #[arg(long)]
    pub threads: Option<usize>,
    /// Output folder [default: runs/ntm-<task>-<UTC timestamp>/]. With
    /// --max-sequences 0 nothing is written unless --out is given.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Start from a machine saved by `rnn ntm` (a model.safetensors) instead
    /// of a new one; size flags, if given, must agree with it.
    #[arg(long)]
    pub load: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// Checks of the flags alone, before anything is read or written.
fn check_args(a: &NtmArgs) -> Result<()> {
    let t = a.task;
    let only = |given: bool, flag: &str, tasks: &[TaskArg]| -> Result<()> {
        if given && !tasks.contains(&t) {
            let names: Vec<&str> = tasks.iter().map(|t| t.name()).collect();
            bail!(
                "{flag} applies to the {} task{} only, not {}",
                names.join(" and "),
                if names.len() > 1 { "s" } else { "" },
                t.name()
            );
        }
        Ok(())
    };
    use TaskArg::{Copy, Recall, RepeatCopy};
    only(a.min_len.is_some(), "--min-len", &[Copy, RepeatCopy])?;
    only(a.max_len.is_some(), "--max-len", &[Copy, RepeatCopy])?;
    only(a.min_repeats.is_some(), "--min-repeats", &[RepeatCopy])?;
    only(a.max_repeats.is_some(), "--max-repeats", &[RepeatCopy])?;
    only(a.item_len.is_some(), "--item-len", &[Recall])?;
    only(a.min_items.is_some(), "--min-items", &[Recall])?;
    only(a.max_items.is_some(), "--max-items", &[Recall])?;

    if a.memory_init.is_some() && a.learned_memory {
        bail!(
            "--memory-init and --learned-memory conflict: the memory starts either at a constant or learned"
        );
    }
    if let Some(v) = a.memory_init
        && !v.is_finite()
    {
        bail!("--memory-init must be a finite number, got {v}");
    }
    if a.stop_below.is_some() && a.no_stop {
        bail!("--stop-below and --no-stop conflict");
    }
    if let Some(s) = a.stop_below
        && !(s.is_finite() && s > 0.0)
    {
        bail!("--stop-below must be a positive number, got {s}");
    }
    if a.momentum.is_some() && a.optimizer != NtmOptArg::Rmsprop {
        bail!("--momentum applies to --optimizer rmsprop only");
    }
    if let Some(m) = a.momentum
        && !(m.is_finite() && (0.0..1.0).contains(&m))
    {
        bail!("--momentum must be in [0, 1), got {m}");
    }
    if !(a.lr.is_finite() && a.lr > 0.0) {
        bail!("--lr must be a positive number, got {}", a.lr);
    }
    if !(a.clip_value.is_finite() && a.clip_value >= 0.0) {
        bail!(
            "--clip-value must be 0 (off) or positive, got {}",
            a.clip_value
        );
    }
    if let Some(c) = a.clip_norm
        && !(c.is_finite() && c > 0.0)
    {
        bail!("--clip-norm must be a positive number, got {c}");
    }
    let positive = [
        ("--batch", Some(a.batch)),
        ("--eval-every", Some(a.eval_every)),
        ("--eval-sequences", Some(a.eval_sequences)),
        ("--eval-size", a.eval_size),
        ("--controller-size", a.controller_size),
        ("--memory-rows", a.memory_rows),
        ("--memory-width", a.memory_width),
        ("--read-heads", a.read_heads),
        ("--bits", a.bits),
        ("--min-len", a.min_len),
        ("--max-len", a.max_len),
        ("--min-repeats", a.min_repeats),
        ("--max-repeats", a.max_repeats),
        ("--item-len", a.item_len),
        ("--min-items", a.min_items),
        ("--max-items", a.max_items),
        ("--threads", a.threads),
    ];
    for (flag, v) in positive {
        if v == Some(0) {
            bail!("{flag} must be at least 1");
        }
    }
    let bounded = [
        ("--bits", a.bits),
        ("--min-len", a.min_len),
        ("--max-len", a.max_len),
        ("--min-repeats", a.min_repeats),
        ("--max-repeats", a.max_repeats),
        ("--item-len", a.item_len),
        ("--min-items", a.min_items),
        ("--max-items", a.max_items),
        ("--eval-size", a.eval_size),
        ("--eval-sequences", Some(a.eval_sequences)),
        ("--batch", Some(a.batch)),
    ];
    for (flag, v) in bounded {
        if let Some(v) = v
            && v > MAX_SIZE
        {
            bail!("{flag} {v} is too large (at most {MAX_SIZE})");
        }
    }
    for (flag, v) in [
        ("--read-heads", a.read_heads),
        ("--write-heads", a.write_heads),
    ] {
        if let Some(v) = v
            && v > MAX_HEADS
        {
            bail!("{flag} {v}: at most {MAX_HEADS}");
        }
    }
    if let (Some(s), Some(n)) = (a.shift_range, a.memory_rows)
        && s >= n
    {
        bail!("--shift-range {s} must be below --memory-rows {n}");
    }
    let ranges = [
        ("--min-len", a.min_len, "--max-len", a.max_len),
        (
            "--min-repeats",
            a.min_repeats,
            "--max-repeats",
            a.max_repeats,
        ),
        ("--min-items", a.min_items, "--max-items", a.max_items),
    ];
    for (lo_flag, lo, hi_flag, hi) in ranges {
        if let (Some(lo), Some(hi)) = (lo, hi)
            && lo > hi
        {
            bail!("{lo_flag} {lo} is more than {hi_flag} {hi}");
        }
    }
    if a.min_items == Some(1) {
        bail!("--min-items must be at least 2 (recall queries an item that has a successor)");
    }
    if a.max_items == Some(1) {
        bail!("--max-items must be at least 2");
    }
    if a.max_sequences == Some(0) && a.load.is_none() {
        bail!("--max-sequences 0 only evaluates a machine given with --load");
    }
    if let Some(out) = &a.out {
        check_out_dir(out)?;
    }
    Ok(())
}

/// The task's sizes from the flags and the defaults, with `bits` resolved.
fn make_task(a: &NtmArgs, bits: usize) -> Result<Task> {
    let task = match a.task {
        TaskArg::Copy => Task::Copy {
            bits,
            min_len: a.min_len.unwrap_or(1),
            max_len: a.max_len.unwrap_or(20),
        },
        TaskArg::RepeatCopy => Task::RepeatCopy {
            bits,
            min_len: a.min_len.unwrap_or(1),
            max_len: a.max_len.unwrap_or(10),
            min_repeats: a.min_repeats.unwrap_or(1),
            max_repeats: a.max_repeats.unwrap_or(10),
        },
        TaskArg::Recall => Task::AssociativeRecall {
            bits,
            item_len: a.item_len.unwrap_or(3),
            min_items: a.min_items.unwrap_or(2),
            max_items: a.max_items.unwrap_or(6),
        },
    };
    // A default meeting a given bound (e.g. --max-len 0 < default 1 is
    // refused above; --min-len 30 > default 20 is not).
    let check = |lo_flag: &str, lo: usize, hi_flag: &str, hi: usize| -> Result<()> {
        if lo > hi {
            bail!("{lo_flag} {lo} is more than {hi_flag} {hi}");
        }
        Ok(())
    };
    match task {
        Task::Copy {
            min_len, max_len, ..
        } => check("--min-len", min_len, "--max-len", max_len)?,
        Task::RepeatCopy {
            min_len,
            max_len,
            min_repeats,
            max_repeats,
            ..
        } => {
            check("--min-len", min_len, "--max-len", max_len)?;
            check("--min-repeats", min_repeats, "--max-repeats", max_repeats)?;
        }
        Task::AssociativeRecall {
            min_items,
            max_items,
            ..
        } => check("--min-items", min_items, "--max-items", max_items)?,
    }
    task.validate().map_err(|e| anyhow!("the task: {e}"))?;
    Ok(task)
}

/// Bits of the task that fits a machine with these input and output sizes.
fn bits_for(task: TaskArg, input: usize, output: usize) -> Option<usize> {
    let bits = match task {
        TaskArg::Copy | TaskArg::Recall => output,
        TaskArg::RepeatCopy => output.checked_sub(1)?,
    };
    let need_in = match task {
        TaskArg::Copy => bits + 1,
        TaskArg::RepeatCopy | TaskArg::Recall => bits + 2,
    };
    (bits > 0 && input == need_in).then_some(bits)
}

fn memory_label(m: MemoryInit) -> String {
    match m {
        MemoryInit::Constant(v) => format!("constant {v:e}"),
        MemoryInit::Learned => "learned".into(),
    }
}

/// Checks that the size flags given agree with a loaded machine.
fn check_loaded(a: &NtmArgs, c: &NtmConfig, path: &Path) -> Result<()> {
    let file = path.display();
    let sizes = [
        (
            "--controller-size",
            a.controller_size,
            c.controller_size,
            "controller_size",
        ),
        ("--memory-rows", a.memory_rows, c.memory_rows, "memory_rows"),
        (
            "--memory-width",
            a.memory_width,
            c.memory_width,
            "memory_width",
        ),
        ("--read-heads", a.read_heads, c.read_heads, "read_heads"),
        ("--write-heads", a.write_heads, c.write_heads, "write_heads"),
        ("--shift-range", a.shift_range, c.shift_range, "shift_range"),
    ];
    for (flag, given, have, key) in sizes {
        if let Some(g) = given
            && g != have
        {
            bail!("{flag} {g} disagrees with the machine of --load {file} ({key} {have})");
        }
    }
    if let Some(ctl) = a.controller
        && ctl.controller() != c.controller
    {
        bail!(
            "--controller {} disagrees with the machine of --load {file} (controller {})",
            ctl.controller().name(),
            c.controller.name()
        );
    }
    match (a.memory_init, a.learned_memory, c.memory) {
        (Some(v), _, m) if m != MemoryInit::Constant(v) => bail!(
            "--memory-init {v} disagrees with the machine of --load {file} (memory {})",
            memory_label(m)
        ),
        (_, true, m) if m != MemoryInit::Learned => bail!(
            "--learned-memory disagrees with the machine of --load {file} (memory {})",
            memory_label(m)
        ),
        _ => Ok(()),
    }
}

/// The machine: loaded (`--load`) or new from the flags; and the task's bits.
fn make_machine(a: &NtmArgs) -> Result<(Ntm, usize)> {
    let default_bits = if a.task == TaskArg::Recall { 6 } else { 8 };
    let Some(path) = &a.load else {
        let bits = a.bits.unwrap_or(default_bits);
        let (input_size, output_size) = match a.task {
            TaskArg::Copy => (bits + 1, bits),
            TaskArg::RepeatCopy => (bits + 2, bits + 1),
            TaskArg::Recall => (bits + 2, bits),
        };
        let config = NtmConfig {
            controller: a.controller.unwrap_or(ControllerArg::Lstm).controller(),
            input_size,
            output_size,
            controller_size: a.controller_size.unwrap_or(100),
            memory_rows: a.memory_rows.unwrap_or(128),
            memory_width: a.memory_width.unwrap_or(20),
            read_heads: a.read_heads.unwrap_or(1),
            write_heads: a.write_heads.unwrap_or(1),
            shift_range: a.shift_range.unwrap_or(1),
            memory: if a.learned_memory {
                MemoryInit::Learned
            } else {
                MemoryInit::Constant(a.memory_init.unwrap_or(1e-6))
            },
            seed: a.seed,
        };
        if config.shift_range >= config.memory_rows {
            bail!(
                "--shift-range {} must be below --memory-rows {}",
                config.shift_range,
                config.memory_rows
            );
        }
        let ntm = Ntm::new(config).map_err(|e| anyhow!("the machine: {e}"))?;
        return Ok((ntm, bits));
    };
    let ntm = Ntm::load(path).map_err(|e| match recurrent::TensorFile::read(path) {
        // A network saved by `rnn train` names its cell, not a controller.
        Ok(f) if f.metadata.contains_key("cell") && !f.metadata.contains_key("controller") => {
            anyhow!(
                "--load: {}: holds a recurrent network (cell {}), not an NTM",
                path.display(),
                f.metadata["cell"]
            )
        }
        _ => anyhow!("--load: {e}"),
    })?;
    let c = ntm.config().clone();
    check_loaded(a, &c, path)?;
    let fits = bits_for(a.task, c.input_size, c.output_size);
    let bits = match (a.bits, fits) {
        (Some(b), Some(f)) if b == f => b,
        (Some(b), _) => bail!(
            "--bits {b} disagrees with the machine of --load {} ({} inputs, {} outputs; the {} task with {b} bits needs {} and {})",
            path.display(),
            c.input_size,
            c.output_size,
            a.task.name(),
            b + if a.task == TaskArg::Copy { 1 } else { 2 },
            b + usize::from(a.task == TaskArg::RepeatCopy),
        ),
        (None, Some(f)) => f,
        (None, None) => bail!(
            "--load {}: the machine ({} inputs, {} outputs) does not fit the {} task",
            path.display(),
            c.input_size,
            c.output_size,
            a.task.name()
        ),
    };
    Ok((ntm, bits))
}

/// The longest training size (length, or items for recall).
fn longest(task: &Task) -> usize {
    match *task {
        Task::Copy { max_len, .. } | Task::RepeatCopy { max_len, .. } => max_len,
        Task::AssociativeRecall { max_items, .. } => max_items,
    }
}

/// `(shortest, longest)` training size.
fn training_range(task: &Task) -> (usize, usize) {
    match *task {
        Task::Copy {
            min_len, max_len, ..
        }
        | Task::RepeatCopy {
            min_len, max_len, ..
        } => (min_len, max_len),
        Task::AssociativeRecall {
            min_items,
            max_items,
            ..
        } => (min_items, max_items),
    }
}

/// What a size counts: `length` or `items`.
fn size_word(task: &Task) -> &'static str {
    match task {
        Task::AssociativeRecall { .. } => "items",
        _ => "length",
    }
}

/// A size in words: `length 20` or `6 items`.
fn size_label(task: &Task, size: usize) -> String {
    match task {
        Task::AssociativeRecall { .. } => format!("{size} items"),
        _ => format!("length {size}"),
    }
}

/// Steps of the longest sequence of the given size.
fn max_steps(task: &Task, size: usize) -> usize {
    match *task {
        Task::Copy { .. } => 2 * size + 1,
        Task::RepeatCopy { max_repeats, .. } => size + 2 + max_repeats * size + 1,
        Task::AssociativeRecall { item_len, .. } => (size + 2) * (item_len + 1),
    }
}

/// The sizes of the generalisation table.
fn table_sizes(task: &Task) -> &'static [usize] {
    match task {
        Task::Copy { .. } => &[10, 20, 30, 40, 60, 80, 100, 120],
        Task::RepeatCopy { .. } => &[5, 10, 15, 20],
        Task::AssociativeRecall { .. } => &[2, 4, 6, 8, 10, 12],
    }
}

fn describe_task(task: &Task) -> String {
    match *task {
        Task::Copy {
            bits,
            min_len,
            max_len,
        } => format!("copy: {bits}-bit vectors, lengths {min_len}..={max_len}"),
        Task::RepeatCopy {
            bits,
            min_len,
            max_len,
            min_repeats,
            max_repeats,
        } => format!(
            "repeat-copy: {bits}-bit vectors, lengths {min_len}..={max_len}, {min_repeats}..={max_repeats} repeats"
        ),
        Task::AssociativeRecall {
            bits,
            item_len,
            min_items,
            max_items,
        } => format!(
            "recall: {bits}-bit vectors, items of {item_len} vectors, {min_items}..={max_items} items"
        ),
    }
}

fn task_json(task: &Task) -> serde_json::Value {
    let mut v = match *task {
        Task::Copy {
            bits,
            min_len,
            max_len,
        } => json!({ "bits": bits, "min_len": min_len, "max_len": max_len }),
        Task::RepeatCopy {
            bits,
            min_len,
            max_len,
            min_repeats,
            max_repeats,
        } => json!({
            "bits": bits, "min_len": min_len, "max_len": max_len,
            "min_repeats": min_repeats, "max_repeats": max_repeats,
        }),
        Task::AssociativeRecall {
            bits,
            item_len,
            min_items,
            max_items,
        } => json!({
            "bits": bits, "item_len": item_len, "min_items": min_items, "max_items": max_items,
        }),
    };
    v["name"] = json!(task.name());
    v
}

fn config_json(c: &NtmConfig) -> serde_json::Value {
    let (memory, init) = match c.memory {
        MemoryInit::Constant(v) => ("constant", Some(v)),
        MemoryInit::Learned => ("learned", None),
    };
    json!({
        "controller": c.controller.name(),
        "input_size": c.input_size,
        "output_size": c.output_size,
        "controller_size": c.controller_size,
        "memory_rows": c.memory_rows,
        "memory_width": c.memory_width,
        "read_heads": c.read_heads,
        "write_heads": c.write_heads,
        "shift_range": c.shift_range,
        "memory": memory,
        "memory_init": init,
        "seed": c.seed,
        "parameters": c.num_parameters(),
    })
}

fn describe_machine(c: &NtmConfig) -> String {
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    format!(
        "{} controller ({} units), memory {} x {} ({}), {} read head{}, {} write head{}, shifts -{s}..={s}: {} parameters",
        match c.controller {
            Controller::Lstm => "LSTM",
            Controller::FeedForward => "feed-forward",
        },
        c.controller_size,
        c.memory_rows,
        c.memory_width,
        memory_label(c.memory),
        c.read_heads,
        plural(c.read_heads),
        c.write_heads,
        plural(c.write_heads),
        group_digits(c.num_parameters()),
        s = c.shift_range,
    )
}

/// `62860` as `62,860`.
fn group_digits(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// One row of the generalisation table.
#[derive(Clone, Copy, Debug)]
struct SetScore {
    size: usize,
    sequences: usize,
    loss: f64,
    errors_per_sequence: f64,
    bits_per_sequence: f64,
}

impl SetScore {
    fn rate(&self) -> f64 {
        if self.bits_per_sequence > 0.0 {
            self.errors_per_sequence / self.bits_per_sequence
        } else {
            0.0
        }
    }
}

/// Loss, bit errors and scored bits per sequence on `sequences` held-out
/// sequences of one size drawn from `seed`.
fn score_set(ntm: &Ntm, task: &Task, size: usize, sequences: usize, seed: u64) -> Result<SetScore> {
    let s = evaluate(ntm, task, size, sequences, seed)?;
    Ok(SetScore {
        size,
        sequences,
        loss: s.loss(),
        errors_per_sequence: s.errors_per_sequence(),
        bits_per_sequence: s.bits_per_sequence(),
    })
}

/// The generalisation table's rows: every size of [`table_sizes`].
fn generalisation(ntm: &Ntm, task: &Task, eval_sequences: usize) -> Result<Vec<SetScore>> {
    table_sizes(task)
        .iter()
        .map(|&size| {
            let cap = if max_steps(task, size) <= LONG_STEPS {
                SHORT_CAP
            } else {
                LONG_CAP
            };
            let seed = EVAL_SEED ^ ((size as u64) << 32);
            score_set(ntm, task, size, eval_sequences.min(cap), seed)
                .with_context(|| format!("evaluating {}", size_label(task, size)))
        })
        .collect()
}

fn print_table(task: &Task, rows: &[SetScore]) {
    let (lo, hi) = training_range(task);
    let word = size_word(task);
    println!(
        "generalisation (held-out; trained on {}{}):",
        match task {
            Task::AssociativeRecall { .. } => format!("{lo}..={hi} items"),
            _ => format!("lengths {lo}..={hi}"),
        },
        match *task {
            Task::RepeatCopy {
                min_repeats,
                max_repeats,
                ..
            } => format!(", {min_repeats}..={max_repeats} repeats as in training"),
            _ => String::new(),
        }
    );
    println!(
        "  {word:>7} {:>10} {:>15} {:>10} {:>13}",
        "sequences", "bit errors/seq", "bits/seq", "% bit errors"
    );
    for r in rows {
        let trained = if (lo..=hi).contains(&r.size) {
            "  (trained size)"
        } else {
            ""
        };
        println!(
            "  {:>7} {:>10} {:>15.3} {:>10.1} {:>12.2}%{trained}",
            r.size,
            r.sequences,
            r.errors_per_sequence,
            r.bits_per_sequence,
            100.0 * r.rate()
        );
    }
}

/// The read and write weightings over one held-out sequence of `size`, as
/// heatmaps (time step across, memory row up), one panel per head (at most
/// four of each kind).
fn weightings_png(ntm: &Ntm, task: &Task, size: usize) -> Result<Vec<u8>> {
    let c = ntm.config();
    let mut rng = SplitMix64::new(EVAL_SEED ^ 0x5EED);
    let mut batch = TaskBatch::default();
    task.generate(&mut rng, 1, size, &mut batch)?;
    let mut tape = NtmTape::new();
    ntm.forward_train(&batch.x, batch.seq_len, 1, &mut tape)?;
    let (t, heads, n) = (batch.seq_len, c.heads(), c.memory_rows);
    let w = tape.weightings();
    if w.len() != (t + 1) * heads * n {
        bail!(
            "the weightings hold {} values, expected (T+1) * (R+W) * N = {}",
            w.len(),
            (t + 1) * heads * n
        );
    }
    // Head h after step s: slot s + 1 of [T+1, B=1, R+W, N].
    let per_head: Vec<Vec<f32>> = (0..heads)
        .map(|h| {
            (0..t)
                .flat_map(|s| {
                    let at = ((s + 1) * heads + h) * n;
                    w[at..at + n].iter().copied()
                })
                .collect()
        })
        .collect();
    let first_scored = batch.mask.iter().position(|&m| m > 0.0).unwrap_or(t);
    let shown: Vec<usize> = (0..c.read_heads.min(4))
        .chain(c.read_heads..c.read_heads + c.write_heads.min(4))
        .collect();
    let panels: Vec<Heatmap<'_>> = shown
        .iter()
        .map(|&h| {
            let (kind, k, of) = if h < c.read_heads {
                ("read", h, c.read_heads)
            } else {
                ("write", h - c.read_heads, c.write_heads)
            };
            let which = if of > 1 {
                format!(" {} of {of}", k + 1)
            } else {
                String::new()
            };
            Heatmap {
                title: format!("{kind} head{which}: weighting over memory rows"),
                values: &per_head[h],
                nx: t,
                ny: n,
                x_desc: "time step",
                y_desc: "memory row",
                vline: Some((first_scored as f64, "outputs scored from here")),
            }
        })
        .collect();
    let title = format!(
        "NTM {}: one held-out sequence, {} ({t} steps); darker = more weight",
        task.name(),
        size_label(task, size)
    );
    plot::heatmaps(&title, &panels, 1200)
}

/// The top-most folder that creating `dir` would create, if any.
fn top_created(dir: &Path) -> Option<PathBuf> {
    let mut created = None;
    let mut p = Some(dir);
    while let Some(q) = p {
        if q.as_os_str().is_empty() || q.exists() {
            break;
        }
        created = Some(q.to_path_buf());
        p = q.parent();
    }
    created
}

/// Runs `rnn ntm`: checks the flags, builds or loads the machine, trains
/// (unless `--max-sequences 0`), prints the generalisation table and writes
/// the run folder.
pub fn run(a: &NtmArgs) -> Result<()> {
    check_args(a)?;
    let started = Instant::now();
    if let Some(n) = a.threads {
        recurrent::set_num_threads(n).map_err(|e| anyhow!("--threads {n}: {e}"))?;
    }
    let (ntm, bits) = make_machine(a)?;
    let task = make_task(a, bits)?;
    let eval_size = a.eval_size.unwrap_or_else(|| longest(&task));
    let max_sequences = a.max_sequences.unwrap_or(match a.task {
        TaskArg::Copy => 20_000,
        TaskArg::RepeatCopy => 60_000,
        TaskArg::Recall => 40_000,
    });
    let stop_below = if a.no_stop {
        None
    } else {
        Some(a.stop_below.unwrap_or(0.1))
    };
    let optimizer = match a.optimizer {
        NtmOptArg::Rmsprop => NtmOptimizer::RmsProp {
            lr: a.lr,
            momentum: a.momentum.unwrap_or(0.9),
            alpha: 0.95,
            eps: 1e-10,
        },
        NtmOptArg::Adam => NtmOptimizer::Adam { lr: a.lr },
    };
    let train_config = NtmTrainConfig {
        batch: a.batch,
        optimizer,
        clip_value: (a.clip_value > 0.0).then_some(a.clip_value),
        clip_norm: a.clip_norm,
        seed: a.seed,
    };
    let config = ntm.config().clone();
    let evaluate_only = max_sequences == 0;
    let out_dir = match &a.out {
        Some(p) => Some(p.clone()),
        None if evaluate_only => None,
        None => Some(fresh_dir(PathBuf::from("runs").join(format!(
            "ntm-{}-{}",
            task.name(),
            utc_timestamp()
        )))),
    };

    // What the run is.
    println!(
        "task: {}; held-out: {} sequences of {}",
        describe_task(&task),
        a.eval_sequences,
        size_label(&task, eval_size)
    );
    println!(
        "machine: {} ({})",
        describe_machine(&config),
        match &a.load {
            Some(p) => format!("loaded from {}", p.display()),
            None => format!("new, seed {}", config.seed),
        }
    );
    let opt_label = match optimizer {
        NtmOptimizer::RmsProp { lr, momentum, .. } => {
            format!("rmsprop (lr {lr:e}, momentum {momentum})")
        }
        NtmOptimizer::Adam { lr } => format!("adam (lr {lr:e})"),
    };
    let threads = recurrent::num_threads();
    let simd = recurrent::kernels::simd::detected_level();
    if evaluate_only {
        println!("evaluation only (--max-sequences 0); {threads} threads, simd {simd}");
    } else {
        println!(
            "training: {opt_label}, batch {}, gradients clamped to {}, clip norm {}, up to {max_sequences} sequences, evaluated every {}, {}; data seed {}, {threads} threads, simd {simd}",
            a.batch,
            match train_config.clip_value {
                Some(v) => format!("[-{v}, {v}]"),
                None => "off".into(),
            },
            a.clip_norm.map_or("off".into(), |v| v.to_string()),
            a.eval_every,
            match stop_below {
                Some(s) => format!("stop below {s} bit errors/seq"),
                None => "no early stop".into(),
            },
            a.seed,
        );
    }
    if let Some(d) = &out_dir {
        println!("output: {}/", d.display());
    }

    // Training (or only the held-out evaluation of a loaded machine).
    let (ntm, report) = if evaluate_only {
        let held_out = evaluate(&ntm, &task, eval_size, a.eval_sequences, EVAL_SEED)?;
        let (loss, bit_errors) = (held_out.loss(), held_out.errors_per_sequence());
        println!(
            "held-out: loss {loss:.4}, {bit_errors:.3} bit errors/seq ({} sequences of {})",
            a.eval_sequences,
            size_label(&task, eval_size)
        );
        (ntm, None)
    } else {
        let dir = out_dir.as_ref().expect("training has an output folder");
        let (ntm, report) = train(
            a,
            ntm,
            task,
            train_config.clone(),
            dir,
            max_sequences,
            eval_size,
            stop_below,
        )?;
        (ntm, Some(report))
    };

    // Convergence: the first held-out evaluation under the threshold (also
    // with --no-stop, where training goes on past it).
    let threshold = a.stop_below.unwrap_or(0.1);
    let converged_at = report.as_ref().and_then(|r| {
        r.evaluations
            .iter()
            .find(|e| e.bit_errors < threshold)
            .map(|e| e.sequences)
    });
    if let Some(r) = &report {
        let last = r.evaluations.last().map_or(f64::NAN, |e| e.bit_errors);
        match converged_at {
            Some(n) => println!(
                "converged at {n} sequences (first held-out evaluation under {threshold} \
                 bit errors/seq); last held-out: {last:.3} bit errors/seq"
            ),
            None => println!(
                "not converged within {} sequences (no held-out evaluation under \
                 {threshold}; last: {last:.3} bit errors/seq)",
                r.sequences
            ),
        }
        println!(
            "wall-clock: {:.1} s for {} sequences, {:.1} sequences/s (with the evaluations)",
            r.seconds,
            r.sequences,
            r.sequences as f64 / r.seconds.max(1e-9)
        );
    }

    let table = generalisation(&ntm, &task, a.eval_sequences)?;
    print_table(&task, &table);

    let Some(out_dir) = out_dir else {
        return Ok(());
    };
    let png = weightings_png(&ntm, &task, eval_size).context("drawing weightings.png")?;
    let (evaluations, converged_at, sequences, seconds) = match &report {
        Some(r) => (
            r.evaluations
                .iter()
                .map(|e| json!({ "sequences": e.sequences, "loss": e.loss, "bit_errors": e.bit_errors }))
                .collect(),
            converged_at,
            r.sequences,
            r.seconds,
        ),
        None => (Vec::new(), None, 0, 0.0),
    };
    let (opt_name, momentum) = match optimizer {
        NtmOptimizer::RmsProp { momentum, .. } => ("rmsprop", Some(momentum)),
        NtmOptimizer::Adam { .. } => ("adam", None),
    };
    let metrics = json!({
        "version": env!("CARGO_PKG_VERSION"),
        "task": task.name(),
        "task_config": task_json(&task),
        "config": config_json(&config),
        "loaded_from": a.load.as_ref().map(|p| p.display().to_string()),
        "train_config": {
            "batch": a.batch,
            "optimizer": opt_name,
            "lr": a.lr,
            "momentum": momentum,
            "clip_value": train_config.clip_value,
            "clip_norm": a.clip_norm,
            "seed": a.seed,
            "max_sequences": max_sequences,
            "eval_every": a.eval_every,
            "eval_sequences": a.eval_sequences,
            "eval_size": eval_size,
            "stop_below": stop_below,
            "threads": threads,
            "simd": simd.to_string(),
        },
        "evaluations": evaluations,
        "converged_at": converged_at,
        "sequences": sequences,
        "seconds": seconds,
        "sequences_per_second": if seconds > 0.0 { sequences as f64 / seconds } else { 0.0 },
        "generalisation": table.iter().map(|r| json!({
            "size": r.size,
            "sequences": r.sequences,
            "loss": r.loss,
            "bit_errors_per_sequence": r.errors_per_sequence,
            "bits_per_sequence": r.bits_per_sequence,
            "bit_error_rate": r.rate(),
        })).collect::<Vec<_>>(),
        "wall_seconds": started.elapsed().as_secs_f64(),
    });
    let metrics = serde_json::to_string_pretty(&metrics)? + "\n";
    write_all(
        &out_dir,
        &[
            OutFile::Bytes("metrics.json", metrics.as_bytes()),
            OutFile::Bytes("weightings.png", &png),
        ],
    )
    .with_context(|| format!("writing the run folder {}", out_dir.display()))?;
    let model = if evaluate_only {
        ""
    } else {
        "model.safetensors "
    };
    println!(
        "wrote {}/: {model}metrics.json weightings.png ({:.1} s in all)",
        out_dir.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Trains with a progress bar, printing every evaluation and checkpointing
/// into `dir` (created here). On an error the last checkpoint is kept; a
/// folder created here with no checkpoint in it is removed again.
#[allow(clippy::too_many_arguments)]
fn train(
    a: &NtmArgs,
    ntm: Ntm,
    task: Task,
    train_config: NtmTrainConfig,
    dir: &Path,
    max_sequences: usize,
    eval_size: usize,
    stop_below: Option<f64>,
) -> Result<(Ntm, TrainReport)> {
    let mut trainer =
        NtmTrainer::new(ntm, task, train_config).map_err(|e| anyhow!("the trainer: {e}"))?;
    let plan = TrainPlan {
        max_sequences,
        eval_every: a.eval_every,
        eval_sequences: a.eval_sequences,
        eval_size,
        eval_seed: EVAL_SEED,
        stop_below,
        checkpoint: Some(dir.join(MODEL_FILE)),
    };
    let created = top_created(dir);
    std::fs::create_dir_all(dir)
        .with_context(|| format!("{}: cannot create the folder", dir.display()))?;

    let bar = if a.quiet {
        ProgressBar::hidden()
    } else {
        let b =
            ProgressBar::with_draw_target(Some(max_sequences as u64), ProgressDrawTarget::stderr());
        b.set_style(
            ProgressStyle::with_template("{pos:>6}/{len} [{bar:20}] {msg} eta {eta}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        b
    };
    println!(
        "{:>10} {:>14} {:>15} {:>10}",
        "sequences", "held-out loss", "bit errors/seq", "elapsed s"
    );
    let start = Instant::now();
    // Training means since the last evaluation, per sequence.
    let (mut sum_errors, mut sum_loss, mut seen) = (0.0f64, 0.0f64, 0usize);
    let mut last_eval: Option<(usize, f64)> = None;
    let result = trainer.run(&plan, |p| match p {
        Progress::Step { sequences, stats } => {
            sum_errors += stats.bit_errors * a.batch as f64;
            sum_loss += stats.loss * a.batch as f64;
            seen += a.batch;
            bar.set_position(sequences as u64);
            let held = last_eval.map_or("-".into(), |(_, e)| format!("{e:.2}"));
            bar.set_message(format!(
                "train {:.2} bit err/seq, loss {:.3}; held-out {held}; {:.0} seq/s",
                sum_errors / seen as f64,
                sum_loss / seen as f64,
                sequences as f64 / start.elapsed().as_secs_f64().max(1e-9)
            ));
        }
        Progress::Evaluated(e) => {
            last_eval = Some((e.sequences, e.bit_errors));
            (sum_errors, sum_loss, seen) = (0.0, 0.0, 0);
            bar.suspend(|| {
                println!(
                    "{:>10} {:>14.4} {:>15.3} {:>10.1}",
                    e.sequences,
                    e.loss,
                    e.bit_errors,
                    start.elapsed().as_secs_f64()
                );
            });
        }
    });
    bar.finish_and_clear();
    match result {
        Ok(report) => Ok((trainer.into_ntm(), report)),
        Err(e) => {
            let kept = match last_eval {
                Some((n, _)) if dir.join(MODEL_FILE).is_file() => format!(
                    "; the last checkpoint, at training sequence {n}, is kept in {}",
                    dir.join(MODEL_FILE).display()
                ),
                _ => {
                    if let Some(top) = &created {
                        let _ = std::fs::remove_dir_all(top);
                    }
                    "; no checkpoint was written".into()
                }
            };
            if matches!(e, recurrent::Error::NonFinite(_)) {
                Err(anyhow!(
                    "training diverged: {e}{kept} (try a lower --lr or a --clip-norm)"
                ))
            } else {
                Err(anyhow!("{e}{kept}"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_fit_the_machine() {
        assert_eq!(bits_for(TaskArg::Copy, 9, 8), Some(8));
        assert_eq!(bits_for(TaskArg::RepeatCopy, 10, 9), Some(8));
        assert_eq!(bits_for(TaskArg::Recall, 8, 6), Some(6));
        assert_eq!(bits_for(TaskArg::Recall, 9, 8), None);
        // The sizes alone: a copy machine fits repeat-copy with a bit fewer.
        assert_eq!(bits_for(TaskArg::RepeatCopy, 9, 8), Some(7));
        assert_eq!(bits_for(TaskArg::RepeatCopy, 8, 8), None);
        assert_eq!(bits_for(TaskArg::RepeatCopy, 1, 0), None);
    }

    #[test]
    fn table_caps_follow_the_sequence_length() {
        let copy = Task::copy();
        assert_eq!(max_steps(&copy, 40), LONG_STEPS);
        assert!(max_steps(&copy, 60) > LONG_STEPS);
        assert_eq!(longest(&copy), 20);
        assert_eq!(longest(&Task::repeat_copy()), 10);
        assert_eq!(longest(&Task::associative_recall()), 6);
    }

    #[test]
    fn digits_are_grouped() {
        assert_eq!(group_digits(62_860), "62,860");
        assert_eq!(group_digits(100), "100");
        assert_eq!(group_digits(1_234_567), "1,234,567");
    }

    #[test]
    fn scored_bits_of_copy() {
        let ntm = Ntm::new(NtmConfig {
            controller_size: 4,
            memory_rows: 8,
            memory_width: 3,
            ..NtmConfig::copy_task(2)
        })
        .unwrap();
        let task = Task::Copy {
            bits: 2,
            min_len: 1,
            max_len: 3,
        };
        let s = score_set(&ntm, &task, 5, 70, 7).unwrap();
        assert_eq!(s.bits_per_sequence, 10.0);
        assert!(s.errors_per_sequence <= 10.0 && s.rate() <= 1.0);
    }
}
