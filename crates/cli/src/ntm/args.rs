//! The flags of `rnn ntm`, their checks, and the task and machine they
//! describe.

use super::*;

/// The algorithmic task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TaskArg {
    /// Copy a sequence of random bit vectors after a delimiter.
    Copy,
    /// Copy a sequence a given number of times, then emit an end marker.
    RepeatCopy,
    /// Associative recall: given one item of a list, output the next one.
    Recall,
    /// Priority sort: output the vectors of highest priority, sorted.
    PrioritySort,
}

impl TaskArg {
    fn name(self) -> &'static str {
        match self {
            Self::Copy => "copy",
            Self::RepeatCopy => "repeat-copy",
            Self::Recall => "recall",
            Self::PrioritySort => "priority-sort",
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
#[derive(clap::Args, Debug, Clone)]
pub struct NtmArgs {
    /// The task to train on.
    #[arg(value_enum)]
    pub task: TaskArg,

    // ---- training ----
    /// Seed of the parameter initialisation and of the training sequences.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Training sequences, at most 2^50 [default: 30000 for copy, 60000 for
    /// repeat-copy, 100000 for recall and priority-sort]. With --load, 0
    /// only evaluates the loaded machine.
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
    /// sequences (and at the end), at most 2^50 [default: 1000; 500 for
    /// repeat-copy, whose machines differ from one evaluation to the next
    /// at twice the trained repeats, so its selection gets more of them].
    #[arg(long)]
    pub eval_every: Option<usize>,
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
    /// Train to --max-sequences past convergence and end with the machine
    /// of the evaluation that scored the lowest loss on --select-sequences
    /// sequences of this size (a length or item count, longer than
    /// trained; not the generalisation table's sequences). Machines under
    /// the --stop-below threshold on the held-out set are preferred (none
    /// with --no-stop) [default: for copy 6 times --max-len, 120; for repeat-copy
    /// --max-len, 10, with --select-repeats repeats; off for the other
    /// tasks].
    #[arg(long)]
    pub select_size: Option<usize>,
    /// Sequences of the selection set (--select-size).
    #[arg(long, default_value_t = 64)]
    pub select_sequences: usize,
    /// Repeats of every selection sequence (repeat-copy; the count on the
    /// training scale) [default: 2 times --max-repeats].
    #[arg(long)]
    pub select_repeats: Option<usize>,
    /// Stop at the first evaluation under the threshold, without selecting
    /// (copy's behaviour before --select-size).
    #[arg(long)]
    pub no_select: bool,

    // ---- the machine ----
    /// Controller network [default: lstm].
    #[arg(long, value_enum)]
    pub controller: Option<ControllerArg>,
    /// Controller units [default: 100].
    #[arg(long)]
    pub controller_size: Option<usize>,
    /// Memory rows N [default: 128; 256 for repeat-copy, so that a write
    /// head walking one row per step does not wrap onto the stored
    /// sequence within twice the trained repeats, 212 steps].
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
    /// Most repeats (repeat-copy) [default: 10].
    #[arg(long)]
    pub max_repeats: Option<usize>,
    /// The repeat count is given to the machine as `n / S` (repeat-copy)
    /// [default: --max-repeats].
    #[arg(long)]
    pub count_scale: Option<usize>,
    /// Vectors per item (recall) [default: 3].
    #[arg(long)]
    pub item_len: Option<usize>,
    /// Fewest items (recall: at least 2; priority sort: more than the 4
    /// left out) [default: --max-items, every sequence of the largest
    /// count; recall from 2 items learns a local optimum, see README].
    #[arg(long)]
    pub min_items: Option<usize>,
    /// Most items (recall, priority sort) [default: 6 for recall, 20 for
    /// priority sort].
    #[arg(long)]
    pub max_items: Option<usize>,

    // ---- running ----
    /// Threads of the library, 1 to 1024 [default: all cores, or
    /// RNN_NUM_THREADS].
    #[arg(long, value_parser = crate::parse_threads)]
    pub threads: Option<usize>,
    /// Output folder [default: runs/ntm-<task>-<UTC timestamp>/]. With
    /// --max-sequences 0 nothing is written unless --out is given. The run
    /// (checkpoints included) is written beside it (.NAME.staging-*) and
    /// moved into place whole, with manifest.json written last; an existing
    /// folder that is not empty is refused unless --overwrite. Stopped by
    /// Ctrl-C (SIGINT), SIGTERM, SIGHUP or an error after a checkpoint, the
    /// last checkpoint is kept there as a complete run marked interrupted
    /// (manifest.json: "interrupted": true); before one, nothing is left.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Replace --out if it holds an earlier run written by rnn (a folder
    /// with manifest.json and nothing else besides the files it lists),
    /// once the new run is complete. Nothing else is ever replaced.
    #[arg(long)]
    pub overwrite: bool,
    /// Data-parallel training under mpirun (`mpirun -np N rnn ntm copy
    /// --distributed`): each rank runs a contiguous slice of every batch's
    /// rows (--batch at least N), the gradients are summed over MPI; rank 0
    /// prints, evaluates the generalisation and writes. Needs a binary
    /// built with `--features mpi`.
    #[arg(long)]
    pub distributed: bool,
    /// Start from a machine saved by `rnn ntm` (a model.safetensors) instead
    /// of a new one; size flags, if given, must agree with it.
    #[arg(long)]
    pub load: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// Checks of the flags alone, before anything is read or written.
pub(super) fn check_args(a: &NtmArgs) -> Result<()> {
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
    use TaskArg::{Copy, PrioritySort, Recall, RepeatCopy};
    only(a.min_len.is_some(), "--min-len", &[Copy, RepeatCopy])?;
    only(a.max_len.is_some(), "--max-len", &[Copy, RepeatCopy])?;
    only(a.min_repeats.is_some(), "--min-repeats", &[RepeatCopy])?;
    only(a.max_repeats.is_some(), "--max-repeats", &[RepeatCopy])?;
    only(a.count_scale.is_some(), "--count-scale", &[RepeatCopy])?;
    only(
        a.select_repeats.is_some(),
        "--select-repeats",
        &[RepeatCopy],
    )?;
    only(a.item_len.is_some(), "--item-len", &[Recall])?;
    only(
        a.min_items.is_some(),
        "--min-items",
        &[Recall, PrioritySort],
    )?;
    only(
        a.max_items.is_some(),
        "--max-items",
        &[Recall, PrioritySort],
    )?;

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
    if a.select_size.is_some() && a.no_select {
        bail!("--select-size and --no-select conflict");
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
        ("--eval-every", a.eval_every),
        ("--eval-sequences", Some(a.eval_sequences)),
        ("--eval-size", a.eval_size),
        ("--select-size", a.select_size),
        ("--select-sequences", Some(a.select_sequences)),
        ("--select-repeats", a.select_repeats),
        ("--controller-size", a.controller_size),
        ("--memory-rows", a.memory_rows),
        ("--memory-width", a.memory_width),
        ("--read-heads", a.read_heads),
        ("--bits", a.bits),
        ("--min-len", a.min_len),
        ("--max-len", a.max_len),
        ("--min-repeats", a.min_repeats),
        ("--max-repeats", a.max_repeats),
        ("--count-scale", a.count_scale),
        ("--item-len", a.item_len),
        ("--min-items", a.min_items),
        ("--max-items", a.max_items),
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
        ("--count-scale", a.count_scale),
        ("--item-len", a.item_len),
        ("--min-items", a.min_items),
        ("--max-items", a.max_items),
        ("--eval-size", a.eval_size),
        ("--select-size", a.select_size),
        ("--select-sequences", Some(a.select_sequences)),
        ("--select-repeats", a.select_repeats),
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
    // Counts the trainer adds to its sequence count.
    for (flag, v) in [
        ("--max-sequences", a.max_sequences),
        ("--eval-every", a.eval_every),
    ] {
        if let Some(v) = v
            && v > MAX_COUNT
        {
            bail!("{flag} {v} is too large (at most {MAX_COUNT})");
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
    match &a.out {
        Some(out) => check_dest(out, a.overwrite)?,
        None if a.overwrite => bail!("--overwrite applies to an --out folder only"),
        None => {}
    }
    Ok(())
}

/// The task's sizes from the flags and the defaults, with `bits` resolved.
pub(super) fn make_task(a: &NtmArgs, bits: usize) -> Result<Task> {
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
            count_scale: a.count_scale.or(a.max_repeats).unwrap_or(10),
        },
        // Recall trains on its largest item count: with 2 items the query
        // is always the first item and the answer the last one written,
        // which rewards reading back the last item, a local optimum that
        // uniform 2-6 items never left in 100,000 sequences (README, NTM).
        TaskArg::Recall => {
            let max_items = a.max_items.unwrap_or(6);
            Task::AssociativeRecall {
                bits,
                item_len: a.item_len.unwrap_or(3),
                min_items: a.min_items.unwrap_or(max_items),
                max_items,
            }
        }
        TaskArg::PrioritySort => {
            let max_items = a.max_items.unwrap_or(20);
            Task::PrioritySort {
                bits,
                min_items: a.min_items.unwrap_or(max_items),
                max_items,
                dropped: 4,
            }
        }
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
        }
        | Task::PrioritySort {
            min_items,
            max_items,
            ..
        } => check("--min-items", min_items, "--max-items", max_items)?,
    }
    task.validate().map_err(|e| anyhow!("the task: {e}"))?;
    Ok(task)
}

/// The task and size of the selection set (`--select-size`), if the run
/// selects: copy by default, on lengths 6 times the longest trained; with
/// `--select-size`, any task (repeat copy with `--select-repeats`
/// repeats, by default twice the most trained).
pub(super) fn selection(a: &NtmArgs, task: &Task) -> Option<(Task, usize)> {
    if a.no_select {
        return None;
    }
    let size = a.select_size.or(match task {
        Task::Copy { max_len, .. } => Some(max_len.saturating_mul(6)),
        Task::RepeatCopy { max_len, .. } => Some(*max_len),
        _ => None,
    })?;
    let mut t = *task;
    if let Task::RepeatCopy {
        min_repeats,
        max_repeats,
        ..
    } = &mut t
    {
        let n = a.select_repeats.unwrap_or(max_repeats.saturating_mul(2));
        (*min_repeats, *max_repeats) = (n, n);
    }
    Some((t, size))
}

/// Bits of the task that fits a machine with these input and output sizes.
pub(super) fn bits_for(task: TaskArg, input: usize, output: usize) -> Option<usize> {
    let bits = match task {
        TaskArg::Copy | TaskArg::Recall | TaskArg::PrioritySort => output,
        TaskArg::RepeatCopy => output.checked_sub(1)?,
    };
    let need_in = match task {
        TaskArg::Copy => bits + 1,
        TaskArg::RepeatCopy | TaskArg::Recall | TaskArg::PrioritySort => bits + 2,
    };
    (bits > 0 && input == need_in).then_some(bits)
}

pub(super) fn memory_label(m: MemoryInit) -> String {
    match m {
        MemoryInit::Constant(v) => format!("constant {v:e}"),
        MemoryInit::Learned => "learned".into(),
    }
}

/// Checks that the size flags given agree with a loaded machine.
pub(super) fn check_loaded(a: &NtmArgs, c: &NtmConfig, path: &Path) -> Result<()> {
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

/// The machine of the flags: a configuration still to build, or one loaded
/// with `--load`.
pub(super) enum Machine {
    New(NtmConfig),
    Loaded(Ntm),
}

impl Machine {
    pub(super) fn config(&self) -> &NtmConfig {
        match self {
            Self::New(c) => c,
            Self::Loaded(n) => n.config(),
        }
    }

    /// The machine itself (a new one is allocated and initialised here).
    pub(super) fn build(self) -> Result<Ntm> {
        match self {
            Self::New(c) => Ntm::new(c).map_err(|e| anyhow!("the machine: {e}")),
            Self::Loaded(n) => Ok(n),
        }
    }
}

/// Training sequences between evaluations (--eval-every or its default).
pub(super) fn eval_every(a: &NtmArgs) -> usize {
    a.eval_every.unwrap_or(match a.task {
        TaskArg::RepeatCopy => 500,
        _ => 1000,
    })
}

/// Memory rows of a new machine without --memory-rows: the paper's 128,
/// except repeat copy. Its machines walk the write head down one row per
/// step through the output too; at 20 repeats of length 10 (212 steps) it
/// wraps onto the stored sequence after about 12 repeats, and the copies
/// after that are garbage (README, NTM).
fn default_memory_rows(task: TaskArg) -> usize {
    match task {
        TaskArg::RepeatCopy => 256,
        _ => 128,
    }
}

/// The configuration of a new machine from the flags and the defaults.
pub(super) fn new_config(a: &NtmArgs) -> (NtmConfig, usize) {
    let default_bits = if a.task == TaskArg::Recall { 6 } else { 8 };
    let bits = a.bits.unwrap_or(default_bits);
    let (input_size, output_size) = match a.task {
        TaskArg::Copy => (bits + 1, bits),
        TaskArg::RepeatCopy => (bits + 2, bits + 1),
        TaskArg::Recall | TaskArg::PrioritySort => (bits + 2, bits),
    };
    (
        NtmConfig {
            controller: a.controller.unwrap_or(ControllerArg::Lstm).controller(),
            input_size,
            output_size,
            controller_size: a.controller_size.unwrap_or(100),
            memory_rows: a.memory_rows.unwrap_or(default_memory_rows(a.task)),
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
        },
        bits,
    )
}

/// The machine: loaded (`--load`) or the configuration of a new one from
/// the flags (not allocated yet: see [`check_memory`]); and the task's bits.
pub(super) fn make_machine(a: &NtmArgs) -> Result<(Machine, usize)> {
    let Some(path) = &a.load else {
        let (config, bits) = new_config(a);
        if config.shift_range >= config.memory_rows {
            bail!(
                "--shift-range {} must be below --memory-rows {}",
                config.shift_range,
                config.memory_rows
            );
        }
        config.validate().map_err(|e| anyhow!("the machine: {e}"))?;
        return Ok((Machine::New(config), bits));
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
    Ok((Machine::Loaded(ntm), bits))
}

/// Bytes a run needs, about (`None`: more than can be counted): the
/// largest of its phases, each with what it holds at once. Training: the
/// machine, the trainer's copies, a step over the longest training
/// sequences and `--batch` rows, and a held-out evaluation (`--eval-size`,
/// up to 64 rows at a time). Afterwards: the machine and the largest set of
/// the generalisation table, or the weightings plot's forward.
pub(super) fn run_need(
    a: &NtmArgs,
    config: &NtmConfig,
    task: &Task,
    eval_size: usize,
    training: bool,
) -> Option<u64> {
    use recurrent::ntm::footprint::{
        batch_bytes, params_bytes, tape_bytes, train_step_bytes, trainer_bytes,
    };
    let forward = |size: usize, rows: usize| -> Option<u64> {
        let t = max_steps(task, size);
        tape_bytes(config, t, rows)?.checked_add(batch_bytes(config, t, rows)?)
    };
    let params = params_bytes(config)?;
    let mut eval = forward(eval_size, a.eval_sequences.min(64))?;
    if let Some((t, size)) = selection(a, task)
        && training
    {
        let (steps, rows) = (max_steps(&t, size), a.select_sequences.min(64));
        eval = eval
            .max(tape_bytes(config, steps, rows)?.checked_add(batch_bytes(config, steps, rows)?)?);
    }
    let mut need = params.checked_add(eval)?;
    if training {
        let t = max_steps(task, longest(task));
        let train = params
            .checked_add(trainer_bytes(config)?)?
            .checked_add(train_step_bytes(config, t, a.batch)?)?
            .checked_add(eval)?;
        need = need.max(train);
    }
    for set in table_sets(task) {
        let rows = set_sequences(&set, a.eval_sequences).min(64);
        let t = max_steps(&set.task, set.size);
        let set_need = tape_bytes(config, t, rows)?.checked_add(batch_bytes(config, t, rows)?)?;
        need = need.max(params.checked_add(set_need)?);
    }
    need = need.max(params.checked_add(forward(eval_size, 1)?)?);
    Some(need)
}

/// Refuses, before the machine is allocated, a run that needs more memory
/// than is available: the error names the option that weighs most (the
/// one whose default would save the most), the bytes needed and the bytes
/// available.
pub(super) fn check_memory(
    a: &NtmArgs,
    config: &NtmConfig,
    task: &Task,
    eval_size: usize,
    training: bool,
) -> Result<()> {
    let need = run_need(a, config, task, eval_size, training);
    if crate::memory::fits(need) {
        return Ok(());
    }
    // Each size flag given, back at its default.
    let mut tries: Vec<(String, NtmArgs)> = Vec::new();
    let mut reset = |flag: &str, given: Option<usize>, f: &dyn Fn(&mut NtmArgs)| {
        if let Some(v) = given {
            let mut b = a.clone();
            f(&mut b);
            tries.push((format!("{flag} {v}"), b));
        }
    };
    if a.load.is_none() {
        reset("--controller-size", a.controller_size, &|b| {
            b.controller_size = None
        });
        reset("--memory-rows", a.memory_rows, &|b| b.memory_rows = None);
        reset("--memory-width", a.memory_width, &|b| b.memory_width = None);
        reset("--read-heads", a.read_heads, &|b| b.read_heads = None);
        reset("--write-heads", a.write_heads, &|b| b.write_heads = None);
        reset("--shift-range", a.shift_range, &|b| b.shift_range = None);
        reset("--bits", a.bits, &|b| b.bits = None);
    }
    reset("--max-len", a.max_len, &|b| b.max_len = None);
    reset("--max-repeats", a.max_repeats, &|b| b.max_repeats = None);
    reset("--max-items", a.max_items, &|b| b.max_items = None);
    reset("--item-len", a.item_len, &|b| b.item_len = None);
    reset("--eval-size", a.eval_size, &|b| b.eval_size = None);
    reset("--select-size", a.select_size, &|b| b.select_size = None);
    reset("--batch", (a.batch != 1).then_some(a.batch), &|b| {
        b.batch = 1
    });
    let default_sequences = 640;
    reset(
        "--eval-sequences",
        (a.eval_sequences > default_sequences).then_some(a.eval_sequences),
        &|b| b.eval_sequences = default_sequences,
    );
    let blame = tries
        .into_iter()
        .filter_map(|(label, b)| {
            let (cfg, bits) = if a.load.is_some() {
                (
                    config.clone(),
                    bits_for(a.task, config.input_size, config.output_size)?,
                )
            } else {
                new_config(&b)
            };
            let task = make_task(&b, bits).ok()?;
            let eval_size = b.eval_size.unwrap_or_else(|| longest(&task));
            let n = run_need(&b, &cfg, &task, eval_size, training).unwrap_or(u64::MAX);
            Some((label, n))
        })
        .min_by_key(|(_, n)| *n)
        .map(|(label, _)| label);
    let what = match (blame, &a.load) {
        (Some(b), _) => b,
        (None, Some(p)) => format!("the machine of --load {}", p.display()),
        (None, None) => "this configuration".into(),
    };
    crate::memory::check(need, &what)
}
