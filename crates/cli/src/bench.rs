//! `rnn bench`: librnn against PyTorch on the same machine, in the same run.
//!
//! For every (config, cell, mode) of the grid, librnn's time per call is
//! measured; with `--pytorch`, `benches/pytorch/bench.py --server` runs beside
//! it and the two sides are timed in turn (A B A B ...) so that machine drift
//! cancels. Each side's figure is the median of `--repeats` measurements,
//! each the mean of enough calls to last about 0.1 s. Modes: `forward` (no
//! gradient) and `train` (forward + backward of `sum(y * g)` w.r.t. the input
//! and every parameter, no optimizer). The max abs difference between the two
//! sides' outputs (and, in train mode, every gradient) is reported.
//!
//! The grid ends with the NTM of the copy task (docs/ntm.md; LSTM-100
//! controller, memory 128 x 20, one read and one write head, T = 41: length-20
//! copies) at batch 1 and 32, against `benches/pytorch/ntm.py`'s NTM on the
//! same weights.
//!
//! FLOP counts are the GEMMs' (`2 T B G H (I + H) D` forward, 3x that for a
//! train step; for the NTM its controller, head and output layers, without
//! the addressing); peak is measured in the run: a 1024^3 sequential GEMM on
//! one core, times the thread count.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use recurrent::kernels::{Mat, MatMut, Op, gemm};
use recurrent::ntm::{Ntm, NtmConfig, NtmGradScratch, NtmTape};
use recurrent::{
    CellKind, Gradients, GruVariant, NetConfig, Nonlinearity, OutputGrads, Params, Recurrent,
    SeqInput, Tape, TensorFile,
};

/// Options of `rnn bench`.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Also time PyTorch (needs `python3` with torch and safetensors).
    #[arg(long)]
    pub pytorch: bool,
    /// Write the table as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Threads for both sides, 1 to 1024 (default: all cores).
    #[arg(long, value_parser = crate::parse_threads)]
    pub threads: Option<usize>,
    /// Measurements per side; the median is reported.
    #[arg(long, default_value_t = 5)]
    pub repeats: usize,
    /// A short run: 3 repeats, the large config left out.
    #[arg(long)]
    pub quick: bool,
    /// Only rows whose `config/cell` contains this text (e.g. `medium/lstm`).
    #[arg(long)]
    pub only: Option<String>,
    /// The Python interpreter for `--pytorch`.
    #[arg(long, default_value = "python3")]
    pub python: String,
}

/// One configuration of the grid.
#[derive(Clone, Debug)]
struct Shape {
    name: &'static str,
    t: usize,
    b: usize,
    i: usize,
    h: usize,
    bidirectional: bool,
    /// Variable lengths (drawn once by [`bench_lengths`]).
    varlen: bool,
    /// An LSTM's projection size (0: none).
    proj: usize,
}

impl Shape {
    fn directions(&self) -> usize {
        if self.bidirectional { 2 } else { 1 }
    }

    fn with_lengths(self) -> Self {
        Self {
            varlen: true,
            ..self
        }
    }

    fn with_projection(self, proj: usize) -> Self {
        Self { proj, ..self }
    }

    /// The width of `h`: the projection's, or `H`.
    fn state(&self) -> usize {
        if self.proj > 0 { self.proj } else { self.h }
    }
}

const fn shape(
    name: &'static str,
    t: usize,
    b: usize,
    i: usize,
    h: usize,
    bidirectional: bool,
) -> Shape {
    Shape {
        name,
        t,
        b,
        i,
        h,
        bidirectional,
        varlen: false,
        proj: 0,
    }
}

/// The lengths of a variable-length row: uniform in `[T/2, T]` from a
/// fixed seed, unsorted, row 0 of full length.
fn bench_lengths(t: usize, b: usize) -> Vec<usize> {
    let mut s = 0x5eed_u64;
    (0..b)
        .map(|r| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            if r == 0 {
                t
            } else {
                t / 2 + ((s >> 33) as usize) % (t - t / 2 + 1)
            }
        })
        .collect()
}

/// The default grid: (config, cells).
fn grid(quick: bool) -> Vec<(Shape, Vec<CellKind>)> {
    let cells = vec![
        CellKind::Elman(Nonlinearity::Tanh),
        CellKind::Lstm,
        CellKind::Gru(Default::default()),
    ];
    let mut g = vec![
        (shape("tiny", 50, 1, 32, 64, false), cells.clone()),
        (shape("finance", 20, 64, 6, 64, false), cells.clone()),
        (shape("medium", 100, 32, 128, 256, false), cells.clone()),
        (
            shape("medium-len", 100, 32, 128, 256, false).with_lengths(),
            cells.clone(),
        ),
        (
            shape("medium", 100, 32, 128, 256, false),
            vec![CellKind::Gru(GruVariant::ResetBeforeLinear)],
        ),
        (
            shape("medium-bi", 100, 32, 128, 256, true),
            vec![CellKind::Lstm],
        ),
        (
            shape("medium-proj", 100, 32, 128, 256, false).with_projection(128),
            vec![CellKind::Lstm],
        ),
    ];
    if !quick {
        g.push((shape("large", 50, 64, 512, 1024, false), cells));
    }
    g
}

/// The NTM rows: the copy task's machine at length 20 (T = 41), batch 1
/// and 32; `I` = 9 (8 bits and the delimiter), `H` = the controller size.
fn ntm_grid() -> Vec<Shape> {
    vec![
        shape("ntm-b1", 41, 1, 9, 100, false),
        shape("ntm-b32", 41, 32, 9, 100, false),
    ]
}

/// One row of the result table.
#[derive(Clone, Debug)]
struct Row {
    shape: Shape,
    cell: &'static str,
    mode: &'static str,
    librnn_ms: f64,
    pytorch_ms: Option<f64>,
    gflops: f64,
    peak_gflops: f64,
    max_abs_diff: Option<f64>,
    /// Every tensor within the parity tolerance (when compared).
    within_tolerance: Option<bool>,
    /// The mean sequence length of a variable-length row.
    mean_length: Option<f64>,
}

impl Row {
    fn speedup(&self) -> Option<f64> {
        self.pytorch_ms.map(|p| p / self.librnn_ms)
    }

    fn json(&self) -> String {
        let opt = |v: Option<f64>| v.map_or("null".to_string(), |v| format!("{v:.6}"));
        let s = &self.shape;
        format!(
            "{{\"name\": \"{}\", \"cell\": \"{}\", \"T\": {}, \"B\": {}, \"I\": {}, \"H\": {}, \"bidirectional\": {}, \
             \"mode\": \"{}\", \"librnn_ms\": {:.6}, \"pytorch_ms\": {}, \"speedup\": {}, \"gflops\": {:.3}, \
             \"peak_gflops\": {:.3}, \"max_abs_diff\": {}, \"parity\": {}{}}}",
            s.name,
            self.cell,
            s.t,
            s.b,
            s.i,
            s.h,
            s.bidirectional,
            self.mode,
            self.librnn_ms,
            opt(self.pytorch_ms),
            opt(self.speedup()),
            self.gflops,
            self.peak_gflops,
            self.max_abs_diff
                .map_or("null".to_string(), |d| format!("{d:e}")),
            match self.within_tolerance {
                Some(true) => "\"ok\"",
                Some(false) => "\"FAIL\"",
                None => "null",
            },
            self.mean_length
                .map_or(String::new(), |m| format!(", \"mean_length\": {m:.2}"))
                + &if s.proj > 0 {
                    format!(", \"proj_size\": {}", s.proj)
                } else {
                    String::new()
                },
        )
    }

    fn print(&self) {
        let opt = |v: Option<f64>, p: usize| v.map_or("-".to_string(), |v| format!("{v:.p$}"));
        println!(
            "{:10} {:9} {:8} {:>11.3} {:>11} {:>8} {:>8.1} {:>5.0}% {:>10} {}",
            self.shape.name,
            self.cell,
            self.mode,
            self.librnn_ms,
            opt(self.pytorch_ms, 3),
            opt(self.speedup(), 2),
            self.gflops,
            100.0 * self.gflops / self.peak_gflops,
            self.max_abs_diff
                .map_or("-".to_string(), |d| format!("{d:.2e}")),
            match self.within_tolerance {
                Some(true) => "ok",
                Some(false) => "FAIL (over tolerance)",
                None => "",
            },
        );
    }
}

/// The PyTorch server process.
struct Torch {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Torch {
    fn start(python: &str, threads: usize) -> Result<Self> {
        let script = bench_script()?;
        let mut child = Command::new(python)
            .arg(&script)
            .args(["--server", "--threads", &threads.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {python} {}", script.display()))?;
        let stdin = child.stdin.take().ok_or_else(|| anyhow!("no stdin"))?;
        let stdout = BufReader::new(child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?);
        let mut t = Self {
            child,
            stdin,
            stdout,
        };
        let v = t.ask("version")?;
        println!("PyTorch side: {v}");
        Ok(t)
    }

    fn ask(&mut self, line: &str) -> Result<String> {
        writeln!(self.stdin, "{line}")?;
        self.stdin.flush()?;
        let mut answer = String::new();
        if self.stdout.read_line(&mut answer)? == 0 {
            bail!("the PyTorch process exited");
        }
        let answer = answer.trim().to_string();
        if let Some(e) = answer.strip_prefix("error") {
            bail!("PyTorch side:{e}");
        }
        Ok(answer)
    }
}

impl Drop for Torch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn bench_script() -> Result<PathBuf> {
    let candidates = [
        PathBuf::from("benches/pytorch/bench.py"),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../benches/pytorch/bench.py"),
    ];
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .ok_or_else(|| anyhow!("benches/pytorch/bench.py not found (run from the repository root)"))
}

fn torch_available(python: &str) -> bool {
    Command::new(python)
        .args(["-c", "import torch, safetensors"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Deterministic inputs in [-1, 1).
fn data(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Peak GFLOP/s of the run: best of a few 1024^3 single-threaded GEMMs, times
/// the thread count.
fn measure_peak(threads: usize) -> Result<f64> {
    let n = 1024;
    let a = data(n * n, 1);
    let b = data(n * n, 2);
    let mut c = vec![0.0f32; n * n];
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
    let best = pool.install(|| {
        (0..4)
            .map(|_| {
                let start = Instant::now();
                gemm(
                    1.0,
                    Mat::new(&a, n, n),
                    Op::N,
                    Mat::new(&b, n, n),
                    Op::N,
                    0.0,
                    MatMut::new(&mut c, n, n),
                );
                start.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min)
    });
    Ok(2.0 * (n * n * n) as f64 / best / 1e9 * threads as f64)
}

/// The model of one row, with its reusable buffers.
// One per benchmark row, built once: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
enum Model {
    Net {
        net: Recurrent,
        tape: Tape,
        grads: Gradients,
    },
    Ntm {
        ntm: Ntm,
        tape: NtmTape,
        grads: Params,
        dx: Vec<f32>,
        scratch: NtmGradScratch,
    },
}

/// The librnn side of one row: a model, its inputs and reusable buffers.
struct Case {
    model: Model,
    x: Vec<f32>,
    g: Vec<f32>,
    s: Shape,
    /// `cell` column.
    cell: &'static str,
    /// GEMM FLOPs of one forward (of the rows inside their sequences).
    flops: f64,
    /// `[B]` sequence lengths of a variable-length row.
    lengths: Option<Vec<usize>>,
}

impl Case {
    fn new(s: &Shape, cell: CellKind) -> Result<Self> {
        let mut cfg = NetConfig::new(cell, s.i, s.h);
        cfg.bidirectional = s.bidirectional;
        cfg.proj_size = s.proj;
        cfg.seed = 1;
        let net = Recurrent::new(cfg)?;
        let grads = Gradients::for_net(&net);
        let lengths = s.varlen.then(|| bench_lengths(s.t, s.b));
        let steps = lengths.as_ref().map_or(s.t * s.b, |l| l.iter().sum());
        Ok(Self {
            x: data(s.t * s.b * s.i, 2),
            g: data(s.t * s.b * s.directions() * s.state(), 3),
            model: Model::Net {
                net,
                tape: Tape::new(),
                grads,
            },
            s: s.clone(),
            cell: cell.name(),
            // The gate GEMMs (input and recurrent) and the projection's.
            flops: 2.0
                * (steps * (cell.gates() * s.h * (s.i + s.state()) + s.proj * s.h) * s.directions())
                    as f64,
            lengths,
        })
    }

    /// The copy-task NTM (`s.i` = 9 inputs, `s.h` = controller size).
    fn ntm(s: &Shape) -> Result<Self> {
        let config = NtmConfig {
            seed: 1,
            controller_size: s.h,
            ..NtmConfig::copy_task(s.i - 1)
        };
        let ntm = Ntm::new(config.clone())?;
        let per_row = 4 * s.h * (config.controller_input() + s.h)
            + config.head_params() * s.h
            + config.output_size * config.output_input();
        Ok(Self {
            // Bits in {0, 1} as in the task.
            x: data(s.t * s.b * s.i, 2)
                .into_iter()
                .map(|v| f32::from(v > 0.0))
                .collect(),
            g: data(s.t * s.b * config.output_size, 3),
            model: Model::Ntm {
                grads: ntm.zero_grads(),
                ntm,
                tape: NtmTape::new(),
                dx: vec![0.0; s.t * s.b * s.i],
                scratch: NtmGradScratch::default(),
            },
            s: s.clone(),
            cell: "ntm",
            flops: 2.0 * (s.t * s.b * per_row) as f64,
            lengths: None,
        })
    }

    fn save(&self, path: &str) -> Result<()> {
        match &self.model {
            Model::Net { net, .. } => net.save(path)?,
            Model::Ntm { ntm, .. } => ntm.save(path)?,
        }
        Ok(())
    }

    /// `g`'s shape: that of the output.
    fn g_shape(&self) -> [usize; 3] {
        [self.s.t, self.s.b, self.g.len() / (self.s.t * self.s.b)]
    }

    /// The network input: `x`, and the lengths of a variable-length row.
    fn input<'a>(x: &'a [f32], s: &Shape, lengths: Option<&'a [usize]>) -> SeqInput<'a> {
        let input = SeqInput::new(x, s.t, s.b);
        match lengths {
            Some(l) => input.lengths(l),
            None => input,
        }
    }

    fn run(&mut self, mode: &str) -> Result<()> {
        let (t, b) = (self.s.t, self.s.b);
        match &mut self.model {
            Model::Net { net, tape, grads } => {
                let input = Self::input(&self.x, &self.s, self.lengths.as_deref());
                if mode == "forward" {
                    std::hint::black_box(net.forward(input)?);
                } else {
                    net.forward_train(input, tape)?;
                    net.backward(tape, OutputGrads::new(&self.g), grads)?;
                }
            }
            Model::Ntm {
                ntm,
                tape,
                grads,
                dx,
                scratch,
            } => {
                if mode == "forward" {
                    ntm.forward_into(&self.x, t, b, tape)?;
                } else {
                    ntm.forward_train(&self.x, t, b, tape)?;
                    ntm.backward(tape, &self.g, grads, Some(dx), scratch)?;
                }
            }
        }
        Ok(())
    }

    /// Mean ms per call over `iters` calls, after `iters / 10` (at least
    /// one) untimed calls that wake the threads (as `bench.py` does).
    fn time(&mut self, mode: &str, iters: usize) -> Result<f64> {
        for _ in 0..(iters / 10).max(1) {
            self.run(mode)?;
        }
        let start = Instant::now();
        for _ in 0..iters {
            self.run(mode)?;
        }
        Ok(start.elapsed().as_secs_f64() * 1e3 / iters as f64)
    }

    /// The outputs (and in train mode `grad.x` and every `grad.<param>`).
    fn outputs(&mut self, mode: &str) -> Result<Vec<(String, Vec<f32>)>> {
        let (t, b) = (self.s.t, self.s.b);
        let mut pairs = Vec::new();
        match &mut self.model {
            Model::Net { net, tape, grads } => {
                let input = Self::input(&self.x, &self.s, self.lengths.as_deref());
                pairs.push(("y".into(), net.forward_train(input, tape)?.y));
                if mode == "train" {
                    net.backward(tape, OutputGrads::new(&self.g), grads)?;
                    pairs.push(("grad.x".into(), grads.x.clone()));
                    for (name, _, v) in grads.params.iter() {
                        pairs.push((format!("grad.{name}"), v.to_vec()));
                    }
                }
            }
            Model::Ntm {
                ntm,
                tape,
                grads,
                dx,
                scratch,
            } => {
                if mode == "forward" {
                    ntm.forward_into(&self.x, t, b, tape)?;
                } else {
                    ntm.forward_train(&self.x, t, b, tape)?;
                }
                pairs.push(("y".into(), tape.y().to_vec()));
                if mode == "train" {
                    ntm.backward(tape, &self.g, grads, Some(dx), scratch)?;
                    pairs.push(("grad.x".into(), dx.clone()));
                    for (name, _, v) in grads.iter() {
                        pairs.push((format!("grad.{name}"), v.to_vec()));
                    }
                }
            }
        }
        Ok(pairs)
    }

    /// Against PyTorch's outputs (and every gradient in train mode): the max
    /// abs difference, and whether every tensor is within the parity
    /// tolerance `1e-5 + 1e-4 * max|ref|` (the PyTorch side runs in float32,
    /// so this checks agreement of two float32 implementations).
    fn compare(&mut self, mode: &str, theirs: &TensorFile) -> Result<(f64, bool)> {
        let (mut worst, mut within) = (0.0f64, true);
        for (name, ours) in self.outputs(mode)? {
            let (_, reference) = theirs
                .f32(&name)
                .ok_or_else(|| anyhow!("PyTorch output lacks {name}"))?;
            if reference.len() != ours.len() {
                bail!(
                    "{name}: {} values from PyTorch, {} here",
                    reference.len(),
                    ours.len()
                );
            }
            let max_ref = reference.iter().fold(0.0f64, |m, v| m.max(v.abs() as f64));
            let err = ours
                .iter()
                .zip(reference)
                .fold(0.0f64, |m, (a, b)| m.max((*a as f64 - *b as f64).abs()));
            within &= err <= 1e-5 + 1e-4 * max_ref;
            worst = worst.max(err);
        }
        Ok((worst, within))
    }
}

/// The files shared with the PyTorch side, in a private temporary folder.
struct Exchange {
    dir: PathBuf,
}

impl Exchange {
    fn new() -> Result<Self> {
        let dir = std::env::temp_dir().join(format!("rnn-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(Self { dir })
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The PyTorch side of one case: the server and the case's files.
struct TorchCase<'a> {
    torch: &'a mut Torch,
    model: String,
    inputs: String,
    out: String,
}

/// Builds a row's case when (and if) the row runs.
type MakeCase = Box<dyn Fn() -> Result<Case>>;

/// How long each side waits before a measurement: the other side's idle
/// threads spin for a while after its last parallel region (PyTorch's
/// OpenMP workers for `GOMP_SPINCOUNT` spins, milliseconds; rayon's
/// briefly) and would share the cores with this measurement. Each side
/// then runs a few untimed calls before its clock starts.
const SETTLE: std::time::Duration = std::time::Duration::from_millis(50);

/// Waits [`SETTLE`] before a measurement.
fn settle() {
    std::thread::sleep(SETTLE);
}

/// Measures one (config, cell, mode) row.
fn measure(
    case: &mut Case,
    mode: &'static str,
    repeats: usize,
    peak: f64,
    mut torch: Option<TorchCase<'_>>,
) -> Result<Row> {
    let s = case.s.clone();
    let flops = case.flops * if mode == "train" { 3.0 } else { 1.0 };
    // Warm up (the first call sizes the buffers) and calibrate: about 0.1 s
    // per measurement.
    case.time(mode, 1)?;
    let once = case.time(mode, 1)?;
    let iters = ((100.0 / once).ceil() as usize).clamp(1, 1000);
    let mut diff = None;
    if let Some(t) = torch.as_mut() {
        let (model, inputs, out) = (&t.model, &t.inputs, &t.out);
        t.torch
            .ask(&format!("check {mode} {model} {inputs} {out}"))?;
        diff = Some(case.compare(mode, &TensorFile::read(Path::new(out))?)?);
        t.torch.ask(&format!("time {mode} {model} {inputs} 1"))?;
    }
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..repeats {
        settle();
        ours.push(case.time(mode, iters)?);
        if let Some(t) = torch.as_mut() {
            settle();
            let ms = t
                .torch
                .ask(&format!("time {mode} {} {} {iters}", t.model, t.inputs))?;
            theirs.push(
                ms.parse::<f64>()
                    .with_context(|| format!("PyTorch answered {ms:?}"))?,
            );
        }
    }
    let librnn_ms = median(&mut ours);
    Ok(Row {
        shape: s,
        cell: case.cell,
        mode,
        librnn_ms,
        pytorch_ms: (!theirs.is_empty()).then(|| median(&mut theirs)),
        gflops: flops / librnn_ms / 1e6,
        peak_gflops: peak,
        max_abs_diff: diff.map(|d| d.0),
        within_tolerance: diff.map(|d| d.1),
        mean_length: case
            .lengths
            .as_ref()
            .map(|l| l.iter().sum::<usize>() as f64 / l.len() as f64),
    })
}

/// Runs the benchmark.
pub fn run(args: &BenchArgs) -> Result<()> {
    if let Some(n) = args.threads {
        recurrent::set_num_threads(n).map_err(|e| anyhow!("--threads: {e}"))?;
    }
    let threads = recurrent::num_threads();
    let repeats = if args.quick { 3 } else { args.repeats.max(1) };
    let mut torch = match (args.pytorch, torch_available(&args.python)) {
        (false, _) => None,
        (true, true) => Some(Torch::start(&args.python, threads)?),
        (true, false) => bail!(
            "--pytorch: {} cannot import torch; install it with: pip install torch safetensors",
            args.python
        ),
    };
    let peak = measure_peak(threads)?;
    println!(
        "librnn {} ({} SIMD), {threads} threads, peak {peak:.1} GFLOP/s (measured), {repeats} repeats",
        env!("CARGO_PKG_VERSION"),
        recurrent::kernels::simd::detected_level()
    );
    if torch.is_none() {
        println!(
            "(librnn only; for the PyTorch columns: pip install torch safetensors, then rnn bench --pytorch)"
        );
    }
    let exchange = Exchange::new()?;
    println!(
        "{:10} {:9} {:8} {:>11} {:>11} {:>8} {:>8} {:>6} {:>10} parity",
        "config",
        "cell",
        "mode",
        "librnn ms",
        "PyTorch ms",
        "speedup",
        "GFLOP/s",
        "%peak",
        "max|diff|"
    );
    let mut cases: Vec<(String, MakeCase)> = Vec::new();
    for (s, cells) in grid(args.quick) {
        for cell in cells {
            let s = s.clone();
            let label = format!("{}/{}", s.name, cell.name());
            cases.push((label, Box::new(move || Case::new(&s, cell))));
        }
    }
    for s in ntm_grid() {
        cases.push((format!("{}/ntm", s.name), Box::new(move || Case::ntm(&s))));
    }
    let mut rows = Vec::new();
    for (label, make) in cases {
        if args
            .only
            .as_ref()
            .is_some_and(|o| !label.contains(o.as_str()))
        {
            continue;
        }
        let mut case = make()?;
        // One pair of files per case: the PyTorch side caches by path.
        let tag = label.replace('/', "-");
        let (model, inputs) = (
            exchange.path(&format!("{tag}.model.safetensors")),
            exchange.path(&format!("{tag}.inputs.safetensors")),
        );
        // PyTorch has no reset-before-linear GRU: librnn alone there.
        let torch_side = case.cell != "gru_reset_before";
        if torch.is_some() && torch_side {
            case.save(&model)?;
            let s = &case.s;
            // Lengths as float32 values (exact below 2^24), read back as
            // integers by bench.py.
            let lengths: Vec<f32> = case.lengths.iter().flatten().map(|&l| l as f32).collect();
            let (x_shape, g_shape, b) = ([s.t, s.b, s.i], case.g_shape(), [s.b]);
            let mut tensors = vec![
                ("x", &x_shape[..], &case.x[..]),
                ("g", &g_shape[..], &case.g[..]),
            ];
            if !lengths.is_empty() {
                tensors.push(("lengths", &b[..], &lengths[..]));
            }
            recurrent::io::write_tensors(Path::new(&inputs), &tensors, Default::default())?;
        }
        for mode in ["forward", "train"] {
            let side = torch
                .as_mut()
                .filter(|_| torch_side)
                .map(|torch| TorchCase {
                    torch,
                    model: model.clone(),
                    inputs: inputs.clone(),
                    out: exchange.path(&format!("{tag}.{mode}.out.safetensors")),
                });
            let row = measure(&mut case, mode, repeats, peak, side)?;
            row.print();
            rows.push(row);
        }
    }
    if let Some(path) = &args.json {
        let body = format!(
            "[\n{}\n]\n",
            rows.iter()
                .map(|r| format!("  {}", r.json()))
                .collect::<Vec<_>>()
                .join(",\n")
        );
        crate::run_dir::write_file(path, body.as_bytes())?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
