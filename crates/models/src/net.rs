//! [`Recurrent`]: a stack of layers of any cell kind, one or two directions,
//! with forward, training forward and backpropagation through time.

use crate::alloc;
use crate::batch_order::{BatchOrder, Layout};
use crate::cells::{Cell, Dims, LayerWeights, cell_for};
use crate::config::{Merge, NetConfig};
use crate::error::{Error, Result, check_len};
use crate::layer::{self, InputGrads, LayerGradBuffers, LayerGrads, LayerTape, Run, Upstream};
use crate::params::Params;
use crate::rng::SplitMix64;

/// A batch of sequences to run: `x` is `[T, B, I]` time-major (or `[B, T,
/// I]` for a `batch_first` network), row-major.
#[derive(Clone, Copy, Debug)]
pub struct SeqInput<'a> {
    /// `[T, B, I]`, or `[B, T, I]` batch-first.
    pub x: &'a [f32],
    /// `T`.
    pub seq_len: usize,
    /// `B`.
    pub batch: usize,
    /// Initial hidden states `[L*D, B, S]` (`S` = `H`, or an LSTM's
    /// `proj_size`; index `layer * D + direction`), or
    /// `None` for zeros.
    pub h0: Option<&'a [f32]>,
    /// Initial cell states `[L*D, B, H]` (LSTM only), or `None` for zeros.
    pub c0: Option<&'a [f32]>,
    /// Per-sequence lengths `[B]`, each in `1..=T`, any order; `None` when
    /// every sequence has `T` steps. PyTorch's
    /// `pack_padded_sequence(enforce_sorted=False)` semantics without packing:
    /// outputs past a sequence's end are zero, `h_n`/`c_n` are the states at
    /// its last step, and the reverse direction starts at its last step.
    pub lengths: Option<&'a [usize]>,
}

impl<'a> SeqInput<'a> {
    /// `x`: `[seq_len, batch, input_size]`, zero initial states.
    pub fn new(x: &'a [f32], seq_len: usize, batch: usize) -> Self {
        Self {
            x,
            seq_len,
            batch,
            h0: None,
            c0: None,
            lengths: None,
        }
    }

    /// Per-sequence lengths, `[B]`, each in `1..=T`.
    pub fn lengths(mut self, lengths: &'a [usize]) -> Self {
        self.lengths = Some(lengths);
        self
    }

    /// Initial hidden states, `[L*D, B, S]`.
    pub fn h0(mut self, h0: &'a [f32]) -> Self {
        self.h0 = Some(h0);
        self
    }

    /// Initial cell states (LSTM), `[L*D, B, H]`.
    pub fn c0(mut self, c0: &'a [f32]) -> Self {
        self.c0 = Some(c0);
        self
    }
}

/// The gradient of the loss w.r.t. the outputs of a forward pass.
#[derive(Clone, Copy, Debug)]
pub struct OutputGrads<'a> {
    /// `[T, B, O]` (`[B, T, O]` batch-first), `O` the output width
    /// ([`NetConfig::output_size`]: `D*S`, or `S` with summed directions).
    pub y: &'a [f32],
    /// `[L*D, B, S]`, or `None` for zero.
    pub h_n: Option<&'a [f32]>,
    /// `[L*D, B, H]` (LSTM), or `None` for zero.
    pub c_n: Option<&'a [f32]>,
}

impl<'a> OutputGrads<'a> {
    /// Gradient w.r.t. `y` only.
    pub fn new(y: &'a [f32]) -> Self {
        Self {
            y,
            h_n: None,
            c_n: None,
        }
    }
    /// Adds the gradient w.r.t. `h_n`, `[L*D, B, S]`.
    pub fn h_n(mut self, g: &'a [f32]) -> Self {
        self.h_n = Some(g);
        self
    }
    /// Adds the gradient w.r.t. `c_n` (LSTM), `[L*D, B, H]`.
    pub fn c_n(mut self, g: &'a [f32]) -> Self {
        self.c_n = Some(g);
        self
    }
}

/// The outputs of a forward pass.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Output {
    /// `[T, B, O]` (`[B, T, O]` batch-first): the last layer's hidden state
    /// at every step, directions concatenated (forward first; `O = D*S`)
    /// or summed (`O = S`).
    pub y: Vec<f32>,
    /// `[L*D, B, S]`: every layer-direction's final hidden state.
    pub h_n: Vec<f32>,
    /// `[L*D, B, H]`: final cell states (LSTM), else empty.
    pub c_n: Vec<f32>,
}

/// Gradients from [`Recurrent::backward`].
#[derive(Clone, Debug, PartialEq)]
pub struct Gradients {
    /// `[T, B, I]` (`[B, T, I]` batch-first).
    pub x: Vec<f32>,
    /// `[L*D, B, S]`.
    pub h0: Vec<f32>,
    /// `[L*D, B, H]` (LSTM), else empty.
    pub c0: Vec<f32>,
    /// One gradient per parameter, same names and layout as the model's.
    pub params: Params,
}

impl Gradients {
    /// Zero gradients shaped for `net` (reuse one across calls).
    pub fn for_net(net: &Recurrent) -> Self {
        Self {
            x: Vec::new(),
            h0: Vec::new(),
            c0: Vec::new(),
            params: net.params.zeros_like(),
        }
    }

    /// As [`Gradients::for_net`], reporting a failed allocation as an error.
    pub fn try_for_net(net: &Recurrent) -> Result<Self> {
        Ok(Self {
            x: Vec::new(),
            h0: Vec::new(),
            c0: Vec::new(),
            params: net.params.try_zeros_like()?,
        })
    }
}

/// One layer's record: its directions' tapes and its output.
#[derive(Clone, Debug, Default)]
struct LayerRecord {
    dirs: Vec<LayerTape>,
    /// `[T, B, O]`, the two directions' outputs merged, with zeros past
    /// each sequence's end; empty for one direction, whose output is its
    /// state slots as they are ([`LayerRecord::output`]: past a sequence's
    /// end they hold its last state, which the next layer's time loop does
    /// not read and whose gradient rows are zero; the network's `y` gets
    /// zeros there).
    merged: Vec<f32>,
    /// `[T, B, O]` (training with dropout, layers below the top): the
    /// dropout mask (zeros and `1 / (1 - p)`) and the output times it, what
    /// the layer above reads. Empty otherwise.
    mask: Vec<f32>,
    dropped: Vec<f32>,
    grad_bufs: Vec<LayerGradBuffers>,
}

impl LayerRecord {
    /// What the layer above reads: the output with dropout applied, or
    /// the output itself.
    fn input_above(&self, bs: usize, t: usize) -> &[f32] {
        if self.dropped.is_empty() {
            self.output(bs, t)
        } else {
            &self.dropped
        }
    }

    /// Draws this layer's dropout mask (probability `p`) from `rng` and
    /// applies it to the output (`bs` = `B*S`, `t` steps) into `dropped`.
    fn drop_out(&mut self, bs: usize, t: usize, p: f32, rng: &mut SplitMix64) {
        draw_mask(&mut self.mask, p, rng);
        let Self {
            dirs,
            merged,
            mask,
            dropped,
            ..
        } = self;
        let out: &[f32] = if merged.is_empty() {
            &dirs[0].states[bs..(t + 1) * bs]
        } else {
            merged
        };
        for ((d, o), m) in dropped.iter_mut().zip(out).zip(mask.iter()) {
            *d = o * m;
        }
    }

    /// `[T, B, O]`, the layer's output: the merged buffer, or the hidden
    /// states after every step of the one forward direction (slots `1..=T`
    /// of `h`, `bs` = `B*S` values each).
    fn output(&self, bs: usize, t: usize) -> &[f32] {
        if self.merged.is_empty() {
            &self.dirs[0].states[bs..(t + 1) * bs]
        } else {
            &self.merged
        }
    }
}

/// What a training forward keeps for backward; reusable across calls (its
/// buffers grow only when a call needs more).
#[derive(Clone, Debug, Default)]
pub struct Tape {
    config: Option<NetConfig>,
    seq_len: usize,
    batch: usize,
    /// The batch's order for the time loops (variable lengths).
    order: BatchOrder,
    /// `[T, B, I]`, the input in that order.
    x: Vec<f32>,
    /// `[L*D, B, S]` (and an LSTM's `[L*D, B, H]`) initial states in that
    /// order (sorted rows only).
    h0: Vec<f32>,
    c0: Vec<f32>,
    /// `[L*D, B, S]` (and `[L*D, B, H]`) final-state gradients in that
    /// order, then the
    /// initial-state gradients before they go back to the caller's order
    /// (variable lengths only).
    dh_n: Vec<f32>,
    dc_n: Vec<f32>,
    layers: Vec<LayerRecord>,
    /// Training forward passes with dropout run on this tape: each draws
    /// its masks from a generator seeded by the model's seed and this count.
    dropout_draws: u64,
    dy: Vec<f32>,
    dx: Vec<f32>,
    /// The reverse direction's input gradient (bidirectional layers).
    dx_rev: Vec<f32>,
}

impl Tape {
    /// An empty tape.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many training passes with dropout this tape has run: the next
    /// one draws its masks from a generator seeded by the model's seed and
    /// this count plus one.
    pub fn dropout_draws(&self) -> u64 {
        self.dropout_draws
    }

    /// Sets [`Tape::dropout_draws`]: a caller that uses a new tape for each
    /// pass (to keep several passes for their backward) continues one count
    /// across them, so that each pass draws new masks.
    pub fn set_dropout_draws(&mut self, draws: u64) {
        self.dropout_draws = draws;
    }
}

/// A recurrent network: `num_layers` layers of one cell kind, one or two
/// directions, PyTorch's parameter names, shapes and gate order.
///
/// Parameters per layer `k` and direction suffix `s` (`""` or `"_reverse"`):
/// `weight_ih_l{k}{s}` `[G*H, I_k]`, `weight_hh_l{k}{s}` `[G*H, H]`,
/// `bias_ih_l{k}{s}`, `bias_hh_l{k}{s}` `[G*H]`, in that order, layer by
/// layer, forward direction first, all in one contiguous buffer.
#[derive(Clone, Debug, PartialEq)]
pub struct Recurrent {
    config: NetConfig,
    params: Params,
    /// Work buffers of [`Recurrent::forward`], reused across calls.
    spare: TapePool,
}

/// Tapes kept for reuse by inference calls, so that repeated forward calls
/// do not allocate (and fault in) fresh buffers. Shared safely by threads
/// running forward on the same network at once; a clone starts empty, and
/// the pool takes no part in equality.
#[derive(Default)]
struct TapePool(std::sync::Mutex<Vec<Tape>>);

impl TapePool {
    /// The most tapes kept (one per concurrent caller, up to this many).
    const KEEP: usize = 4;

    fn take(&self) -> Tape {
        self.0
            .lock()
            .map(|mut v| v.pop())
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    fn give_back(&self, tape: Tape) {
        if let Ok(mut v) = self.0.lock() {
            if v.len() < Self::KEEP {
                v.push(tape);
            }
        }
    }
}

impl Clone for TapePool {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl PartialEq for TapePool {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for TapePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TapePool")
    }
}

/// Whether `name` has the form of a network parameter's name (PyTorch's
/// `weight_*`, `bias_*`), used or not by a given configuration.
pub(crate) fn is_parameter_name(name: &str) -> bool {
    name.starts_with("weight_") || name.starts_with("bias_")
}

/// PyTorch's names and shapes of every parameter of `c`, in buffer order.
pub fn param_layout(c: &NetConfig) -> Vec<(String, Vec<usize>)> {
    param_layout_iter(c).collect()
}

/// [`param_layout`], one tensor at a time (a loader compares each with the
/// file before the next is made, so that a configuration claiming many
/// layers costs nothing beyond the tensors the file really has).
fn param_layout_iter(c: &NetConfig) -> impl Iterator<Item = (String, Vec<usize>)> + '_ {
    let gh = c.cell.gates() * c.hidden_size;
    (0..c.num_layers).flat_map(move |k| {
        (0..c.directions()).flat_map(move |d| {
            let s = if d == 1 { "_reverse" } else { "" };
            let weights = [
                (
                    format!("weight_ih_l{k}{s}"),
                    vec![gh, c.layer_input_size(k)],
                ),
                (format!("weight_hh_l{k}{s}"), vec![gh, c.state_size()]),
            ];
            let biases = c
                .bias
                .then(|| {
                    [
                        (format!("bias_ih_l{k}{s}"), vec![gh]),
                        (format!("bias_hh_l{k}{s}"), vec![gh]),
                    ]
                })
                .into_iter()
                .flatten();
            let projection = (c.proj_size > 0).then(|| {
                (
                    format!("weight_hr_l{k}{s}"),
                    vec![c.proj_size, c.hidden_size],
                )
            });
            weights.into_iter().chain(biases).chain(projection)
        })
    })
}

impl Recurrent {
    /// A network with PyTorch's default initialisation,
    /// uniform(-1/sqrt(H), 1/sqrt(H)), from `config.seed`.
    pub fn new(config: NetConfig) -> Result<Self> {
        config.validate()?;
        let mut params = Params::try_zeros(param_layout(&config))?;
        let k = 1.0 / (config.hidden_size as f32).sqrt();
        let mut rng = SplitMix64::new(config.seed);
        params
            .as_mut_slice()
            .iter_mut()
            .for_each(|v| *v = rng.uniform(-k, k));
        Ok(Self {
            config,
            params,
            spare: TapePool::default(),
        })
    }

    /// A network with the given parameters (names and shapes as
    /// [`param_layout`]). Tensors with other names are ignored (a file may
    /// hold inputs or references beside the model), except names of
    /// PyTorch's parameter form (`weight_*`, `bias_*`) that the configuration
    /// does not use: those are an error, so that (say) bias tensors under a
    /// `bias = false` configuration are not dropped silently.
    ///
    /// Every tensor is checked against the configuration before anything is
    /// allocated: the memory taken is that of the tensors given, whatever the
    /// configuration claims.
    ///
    /// Errors: an invalid configuration, a missing tensor, a wrong shape, an
    /// unused `weight_*`/`bias_*` tensor, each named.
    pub fn from_params<'a>(
        config: NetConfig,
        tensors: impl IntoIterator<Item = (&'a str, &'a [usize], &'a [f32])>,
    ) -> Result<Self> {
        config.validate()?;
        let params =
            Params::try_from_tensors(param_layout_iter(&config), tensors, is_parameter_name)?;
        Ok(Self {
            config,
            params,
            spare: TapePool::default(),
        })
    }

    /// A copy of the network, reporting a failed allocation as an error
    /// (`clone` aborts the process when memory runs out).
    pub fn try_clone(&self) -> Result<Self> {
        Ok(Self {
            config: self.config.clone(),
            params: self.params.try_clone()?,
            spare: TapePool::default(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &NetConfig {
        &self.config
    }

    /// The parameters.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// The parameters, mutable (values only; the layout is fixed).
    pub fn params_mut(&mut self) -> &mut [f32] {
        self.params.as_mut_slice()
    }

    /// Copies `values` into parameter `name` (see [`Params::set`]).
    pub fn set_param(&mut self, name: &str, values: &[f32]) -> Result<()> {
        self.params.set(name, values)
    }

    /// Multiply-adds of a forward pass over `t` steps of `b` rows (the
    /// GEMMs'), saturating.
    pub(crate) fn work(&self, t: usize, b: usize) -> usize {
        let c = &self.config;
        let gh = c.cell.gates() * c.hidden_size;
        (0..c.num_layers)
            .map(|l| {
                let input = c.layer_input_size(l);
                [t, b, gh, input + c.state_size(), c.directions()]
                    .iter()
                    .fold(1usize, |a, &v| a.saturating_mul(v))
            })
            .fold(0usize, usize::saturating_add)
    }

    pub(crate) fn cell_impl(&self) -> &'static dyn Cell {
        cell_for(self.config.cell)
    }

    /// Parameter tensors per layer and direction: `weight_ih`, `weight_hh`,
    /// the two biases, `weight_hr`.
    fn entries_per_dir(&self) -> usize {
        let c = &self.config;
        2 + if c.bias { 2 } else { 0 } + usize::from(c.proj_size > 0)
    }

    fn first_entry(&self, layer: usize, dir: usize) -> usize {
        (layer * self.config.directions() + dir) * self.entries_per_dir()
    }

    pub(crate) fn layer_weights(&self, layer: usize, dir: usize) -> LayerWeights<'_> {
        let i = self.first_entry(layer, dir);
        let infos = self.params.infos();
        let data = self.params.as_slice();
        let get = |k: usize| {
            let info = &infos[i + k];
            &data[info.offset..info.offset + info.len()]
        };
        LayerWeights {
            w_ih: get(0),
            w_hh: get(1),
            b_ih: self.config.bias.then(|| get(2)),
            b_hh: self.config.bias.then(|| get(3)),
            w_hr: (self.config.proj_size > 0).then(|| get(self.entries_per_dir() - 1)),
        }
    }

    pub(crate) fn layer_run<'a>(
        &self,
        layer: usize,
        dir: usize,
        seq_len: usize,
        batch: usize,
        active: Option<&'a [usize]>,
    ) -> Run<'a> {
        Run {
            dims: Dims {
                batch,
                hidden: self.config.hidden_size,
                gates: self.config.cell.gates(),
                state: self.config.state_size(),
            },
            seq_len,
            input_size: self.config.layer_input_size(layer),
            reverse: dir == 1,
            states: self.cell_impl().states(),
            // Batch-first sequences without lengths are read and written
            // in place by batch row; with lengths they are sorted anyway.
            x_batch_first: layer == 0 && self.config.batch_first && active.is_none(),
            dy_batch_first: layer + 1 == self.config.num_layers
                && self.config.batch_first
                && active.is_none(),
            active,
        }
    }

    /// The shape of a sequence of `width` features per step of `input`'s
    /// sizes: `[T, B, width]`, or `[B, T, width]` batch-first.
    fn sequence_shape(&self, input: &SeqInput<'_>, width: usize) -> [usize; 3] {
        let (t, b) = (input.seq_len, input.batch);
        if self.config.batch_first {
            [b, t, width]
        } else {
            [t, b, width]
        }
    }

    /// `[L*D, B, S]`, the shape of `h0` and `h_n`.
    fn state_shape(&self, batch: usize) -> [usize; 3] {
        let c = &self.config;
        [c.num_layers * c.directions(), batch, c.state_size()]
    }

    /// `[L*D, B, H]`, the shape of an LSTM's `c0` and `c_n`.
    fn cell_state_shape(&self, batch: usize) -> [usize; 3] {
        let c = &self.config;
        [c.num_layers * c.directions(), batch, c.hidden_size]
    }

    fn check_input(&self, input: &SeqInput<'_>) -> Result<()> {
        let c = &self.config;
        if input.seq_len == 0 {
            return Err(Error::ZeroSize { what: "seq_len" });
        }
        if input.batch == 0 {
            return Err(Error::ZeroSize { what: "batch" });
        }
        check_len("x", input.x, &self.sequence_shape(input, c.input_size))?;
        let state = self.state_shape(input.batch);
        if let Some(h0) = input.h0 {
            check_len("h0", h0, &state)?;
        }
        match (input.c0, c.cell.has_cell_state()) {
            (Some(c0), true) => check_len("c0", c0, &self.cell_state_shape(input.batch))?,
            (Some(_), false) => {
                return Err(Error::Unexpected(format!(
                    "c0 given, but a {} has no cell state",
                    c.cell.name()
                )));
            }
            _ => {}
        }
        if let Some(lengths) = input.lengths {
            if lengths.len() != input.batch {
                return Err(Error::shape("lengths", &[input.batch], &[lengths.len()]));
            }
            if let Some((b, &l)) = lengths
                .iter()
                .enumerate()
                .find(|&(_, &l)| l == 0 || l > input.seq_len)
            {
                return Err(Error::Config(format!(
                    "lengths[{b}] = {l} is outside 1..={} (seq_len)",
                    input.seq_len
                )));
            }
        }
        Ok(())
    }

    /// Inference forward.
    ///
    /// `input.x`: `[T, B, I]` (`[B, T, I]` batch-first); `h0` `[L*D, B,
    /// S]`, `c0` `[L*D, B, H]`, or `None`. Returns `y` `[T, B, O]` (`[B, T, O]`
    /// batch-first; `O` is [`NetConfig::output_size`]), `h_n` `[L*D, B, S]`
    /// and (LSTM) `c_n` `[L*D, B, H]`.
    ///
    /// Errors: a zero `T` or `B`, a buffer whose length is not its shape's,
    /// `c0` for a cell without cell state.
    ///
    /// Several threads may run `forward` on one network at once. Work buffers
    /// are kept and reused across calls (a few, one per concurrent caller).
    pub fn forward(&self, input: SeqInput<'_>) -> Result<Output> {
        let mut tape = self.spare.take();
        let out = self.run_forward(input, &mut tape, false);
        // Not a training tape: its input is the caller's, not a copy.
        tape.config = None;
        self.spare.give_back(tape);
        out
    }

    /// Training forward: as [`Recurrent::forward`], and records in `tape`
    /// what [`Recurrent::backward`] needs. The tape's buffers are reused.
    pub fn forward_train(&self, input: SeqInput<'_>, tape: &mut Tape) -> Result<Output> {
        self.run_forward(input, tape, true)
    }

    /// Forward; `keep_input`: copy `x` into the tape (for backward) even
    /// where the time loops could read the caller's.
    fn run_forward(
        &self,
        input: SeqInput<'_>,
        tape: &mut Tape,
        keep_input: bool,
    ) -> Result<Output> {
        self.check_input(&input)?;
        self.prepare_forward(&input, tape, keep_input)?;
        let work = self.work(input.seq_len, input.batch);
        rnn_kernels::threads::install_sized(work, || self.forward_impl(input, tape));
        tape.config = Some(self.config.clone());
        let c = &self.config;
        let (t, b, h, dirs) = (input.seq_len, input.batch, c.hidden_size, c.directions());
        let s = c.state_size();
        let n_h = layer::product(&[c.num_layers, dirs, b, s], "final states")?;
        let n_c = layer::product(&[c.num_layers, dirs, b, h], "final states")?;
        let last = tape.layers[c.num_layers - 1].output(b * s, t);
        let y = if tape.order.reorders() {
            // Filled below, from the loops' order.
            alloc::zeros(last.len(), "output y")?
        } else if c.batch_first {
            let mut y = alloc::zeros(last.len(), "output y")?;
            transpose_steps(last, &mut y, (t, b));
            y
        } else {
            alloc::copy_of(last, "output y")?
        };
        let mut out = Output {
            y,
            h_n: Vec::new(),
            c_n: Vec::new(),
        };
        alloc::reserve(&mut out.h_n, n_h, "final states h_n")?;
        if c.cell.has_cell_state() {
            alloc::reserve(&mut out.c_n, n_c, "final states c_n")?;
        }
        for (l, rec) in tape.layers.iter().take(c.num_layers).enumerate() {
            for (d, lt) in rec.dirs.iter().enumerate() {
                let run = self.layer_run(l, d, t, b, None);
                out.h_n.extend_from_slice(lt.state(&run, run.last_slot()));
                if c.cell.has_cell_state() {
                    out.c_n
                        .extend_from_slice(lt.state_of(&run, 1, run.last_slot()));
                }
            }
        }
        if tape.order.reorders() {
            // Back to the caller's row order.
            let last = tape.layers[c.num_layers - 1].output(b * s, t);
            tape.order
                .scatter_steps(last, &mut out.y, c.output_size(), true);
            for (states, width) in [(&mut out.h_n, s), (&mut out.c_n, h)] {
                tape.dh_n.clear();
                tape.dh_n.extend_from_slice(states); // capacity from prepare
                tape.order.scatter_states(&tape.dh_n, states, width);
            }
        }
        Ok(out)
    }

    /// Sizes every forward buffer of `tape` (allocating only to grow) and
    /// records the call's shapes, before any compute: a size that cannot be
    /// allocated is an error, not an abort.
    fn prepare_forward(
        &self,
        input: &SeqInput<'_>,
        tape: &mut Tape,
        keep_input: bool,
    ) -> Result<()> {
        let c = &self.config;
        let (t, b, dirs) = (input.seq_len, input.batch, c.directions());
        tape.config = None; // invalid until the forward pass completes
        tape.seq_len = t;
        tape.batch = b;
        // Sorted rows take the batch-first layout in their gathers and
        // scatters; without lengths the layers read it by batch row.
        let layout = if c.batch_first && input.lengths.is_some() {
            Layout::BatchFirst
        } else {
            Layout::TimeMajor
        };
        tape.order.set(input.lengths, t, b, layout)?;
        let copy = keep_input || tape.order.reorders();
        layer::resize(
            &mut tape.x,
            if copy { input.x.len() } else { 0 },
            "input copy",
        )?;
        if tape.order.reorders() {
            tape.order
                .gather_steps(input.x, &mut tape.x, c.input_size, true);
            // Room for the sorted initial states, and for the final states
            // on their way back to the caller's order.
            // (`h` is `S <= H` wide, `c` `H`.)
            let n_state = layer::product(&[c.num_layers, dirs, b, c.hidden_size], "states")?;
            let widths = [c.state_size(), c.hidden_size];
            for ((buf, v), w) in [(&mut tape.h0, input.h0), (&mut tape.c0, input.c0)]
                .into_iter()
                .zip(widths)
            {
                buf.clear();
                if let Some(v) = v {
                    layer::resize(buf, v.len(), "initial states")?;
                    tape.order.gather_states(v, buf, w);
                }
            }
            tape.dh_n.clear();
            alloc::reserve(&mut tape.dh_n, n_state, "final states")?;
        } else if copy {
            tape.x.copy_from_slice(input.x);
        }
        tape.layers.resize_with(c.num_layers, LayerRecord::default);
        let cell = self.cell_impl();
        let active = tape.order.active();
        for (l, rec) in tape.layers.iter_mut().enumerate() {
            rec.dirs.resize_with(dirs, LayerTape::default);
            for (d, lt) in rec.dirs.iter_mut().enumerate() {
                let run = self.layer_run(l, d, t, b, active);
                lt.prepare(cell, &run)?;
                lt.prepare_mask(&run, keep_input && c.recurrent_dropout > 0.0)?;
            }
            let n = if dirs == 1 {
                0
            } else {
                layer::product(&[t, b, c.output_size()], "layer output")?
            };
            rec.merged.clear();
            layer::resize(&mut rec.merged, n, "layer output")?;
            let dropout = keep_input && c.dropout > 0.0 && l + 1 < c.num_layers;
            let n_drop = if dropout {
                layer::product(&[t, b, c.output_size()], "dropout mask")?
            } else {
                0
            };
            rec.mask.clear();
            rec.dropped.clear();
            layer::resize(&mut rec.mask, n_drop, "dropout mask")?;
            layer::resize(&mut rec.dropped, n_drop, "dropout mask")?;
        }
        Ok(())
    }

    fn forward_impl(&self, input: SeqInput<'_>, tape: &mut Tape) {
        let c = &self.config;
        let (t, b, h, dirs) = (input.seq_len, input.batch, c.hidden_size, c.directions());
        // `h` is `S` wide, an LSTM's `c` `H`.
        let (s, bh) = (c.state_size(), b * h);
        let bs = b * s;
        let cell = self.cell_impl();
        let sorted = tape.order.reorders();
        let lengths = tape.order.active();
        let (h0s, c0s) = if sorted {
            (non_empty(&tape.h0), non_empty(&tape.c0))
        } else {
            (input.h0, input.c0)
        };
        // Empty where the caller's input is read as it is (inference).
        let x0: &[f32] = if tape.x.is_empty() { input.x } else { &tape.x };
        // One generator per training call with dropout (none draws
        // otherwise), seeded by the model's seed and the tape's count. Per
        // layer: the recurrent masks of its directions (one per sequence),
        // then the dropout mask of its output.
        let mut rng = None;
        let recurrent = tape
            .layers
            .iter()
            .any(|r| r.dirs.iter().any(|d| !d.mask.is_empty()));
        if recurrent || tape.layers.iter().any(|r| !r.mask.is_empty()) {
            tape.dropout_draws += 1;
            let mix = tape.dropout_draws.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            rng = Some(SplitMix64::new(c.seed ^ mix));
        }
        let layers = &mut tape.layers;
        for l in 0..c.num_layers {
            let (below, rest) = layers.split_at_mut(l);
            let rec = &mut rest[0];
            let x: &[f32] = if l == 0 {
                x0
            } else {
                below[l - 1].input_above(bs, t)
            };
            if let Some(rng) = rng.as_mut() {
                for lt in rec.dirs.iter_mut() {
                    draw_mask(&mut lt.mask, c.recurrent_dropout, rng);
                }
            }
            let run_dir = |d: usize, lt: &mut LayerTape| {
                let run = self.layer_run(l, d, t, b, lengths);
                let w = self.layer_weights(l, d);
                let (h0, c0) = (
                    state_slot(h0s, l * dirs + d, bs),
                    state_slot(c0s, l * dirs + d, bh),
                );
                layer::forward(cell, &w, &run, x, [h0, c0], lt)
            };
            if let [fwd, rev] = rec.dirs.as_mut_slice() {
                rnn_kernels::threads::join(|| run_dir(0, fwd), || run_dir(1, rev));
            } else {
                run_dir(0, &mut rec.dirs[0]);
            }
            // Merge the directions' outputs into [T, B, O] (where the
            // layer's output is not its state slots as they are).
            if !rec.merged.is_empty() {
                self.merge_directions(l, rec, (t, b), lengths);
            }
            if let (Some(rng), false) = (rng.as_mut(), rec.mask.is_empty()) {
                rec.drop_out(bs, t, c.dropout, rng);
            }
        }
    }

    /// Merges the two directions' outputs of `rec` into its `[T, B, O]`
    /// buffer (concatenated or summed), with zeros past each sequence's end.
    fn merge_directions(
        &self,
        l: usize,
        rec: &mut LayerRecord,
        (t, b): (usize, usize),
        lengths: Option<&[usize]>,
    ) {
        let c = &self.config;
        let s = c.state_size();
        let width = c.output_size();
        for (d, lt) in rec.dirs.iter().enumerate() {
            let run = self.layer_run(l, d, t, b, lengths);
            // Concatenated: direction `d`'s columns; summed: the reverse
            // direction adds to what the forward one wrote.
            let (column, add) = match c.merge {
                Merge::Concat => (d * s, false),
                Merge::Sum => (0, d == 1),
            };
            for tt in 0..t {
                let src = lt.output(&run, tt);
                for bb in 0..b {
                    let dst = &mut rec.merged[(tt * b + bb) * width + column..][..s];
                    let src = &src[bb * s..(bb + 1) * s];
                    match (run.valid(tt, bb), add) {
                        (false, _) => dst.fill(0.0),
                        (true, false) => dst.copy_from_slice(src),
                        (true, true) => dst.iter_mut().zip(src).for_each(|(a, v)| *a += v),
                    }
                }
            }
        }
    }

    /// Backpropagation through time, from a `tape` filled by
    /// [`Recurrent::forward_train`] on this network (with unchanged
    /// parameters).
    ///
    /// `grads.y`: `[T, B, O]` (`[B, T, O]` batch-first); `grads.h_n` `[L*D,
    /// B, S]`, `grads.c_n` `[L*D, B, H]`, or `None`. Writes into `out`: `x`
    /// `[T, B, I]` (`[B, T, I]` batch-first), `h0` `[L*D, B, S]` (and `c0`
    /// `[L*D, B, H]`), and every parameter's gradient (overwritten, not
    /// accumulated).
    ///
    /// Errors: a tape from another network or empty, a buffer whose length is
    /// not its shape's, `c_n` for a cell without cell state.
    pub fn backward(
        &self,
        tape: &mut Tape,
        grads: OutputGrads<'_>,
        out: &mut Gradients,
    ) -> Result<()> {
        let c = &self.config;
        if tape.config.as_ref() != Some(c) || tape.layers.len() < c.num_layers {
            return Err(Error::Unexpected(
                "backward needs a tape filled by forward_train on the same network".into(),
            ));
        }
        let (t, b) = (tape.seq_len, tape.batch);
        let shape = if c.batch_first {
            [b, t, c.output_size()]
        } else {
            [t, b, c.output_size()]
        };
        check_len("grad_y", grads.y, &shape)?;
        let state = self.state_shape(b);
        if let Some(g) = grads.h_n {
            check_len("grad_h_n", g, &state)?;
        }
        match (grads.c_n, c.cell.has_cell_state()) {
            (Some(g), true) => check_len("grad_c_n", g, &self.cell_state_shape(b))?,
            (Some(_), false) => {
                return Err(Error::Unexpected(format!(
                    "grad_c_n given, but a {} has no cell state",
                    c.cell.name()
                )));
            }
            _ => {}
        }
        if out.params.infos() != self.params.infos() {
            out.params = self.params.try_zeros_like()?;
        }
        self.prepare_backward(tape, out)?;
        let work = self.work(tape.seq_len, tape.batch).saturating_mul(2);
        rnn_kernels::threads::install_sized(work, || self.backward_impl(tape, grads, out));
        Ok(())
    }

    /// Sizes every backward buffer (allocating only to grow) before any
    /// compute: a size that cannot be allocated is an error, not an abort.
    fn prepare_backward(&self, tape: &mut Tape, out: &mut Gradients) -> Result<()> {
        let c = &self.config;
        let (t, b, dirs) = (tape.seq_len, tape.batch, c.directions());
        let widest = c.input_size.max(c.output_size());
        let n = layer::product(&[t, b, widest], "input gradients")?;
        layer::resize(&mut tape.dy, n, "output gradients")?;
        layer::resize(&mut tape.dx, n, "input gradients")?;
        let n_rev = if dirs == 2 { n } else { 0 };
        layer::resize(&mut tape.dx_rev, n_rev, "input gradients")?;
        let n_state = layer::product(&[c.num_layers, dirs, b, c.hidden_size], "state gradients")?;
        let n_h = c.num_layers * dirs * b * c.state_size(); // S <= H
        let n_c = if c.cell.has_cell_state() { n_state } else { 0 };
        layer::resize(&mut out.h0, n_h, "state gradients")?;
        layer::resize(&mut out.c0, n_c, "state gradients")?;
        layer::resize(
            &mut out.x,
            layer::product(&[t, b, c.input_size], "input gradients")?,
            "input gradients",
        )?;
        if tape.order.reorders() {
            // The larger of `h`'s and `c`'s: `dh_n` carries both back.
            layer::resize(&mut tape.dh_n, n_h.max(n_c), "state gradients")?;
            layer::resize(&mut tape.dc_n, n_c, "state gradients")?;
        }
        let cell = self.cell_impl();
        let active = tape.order.active();
        for (l, rec) in tape.layers.iter_mut().enumerate().take(c.num_layers) {
            rec.grad_bufs.resize_with(dirs, LayerGradBuffers::default);
            for (d, bufs) in rec.grad_bufs.iter_mut().enumerate() {
                let run = self.layer_run(l, d, t, b, active);
                bufs.prepare(cell, &run)?;
            }
        }
        Ok(())
    }

    fn backward_impl(&self, tape: &mut Tape, grads: OutputGrads<'_>, out: &mut Gradients) {
        let c = &self.config;
        let (t, b, h, dirs) = (tape.seq_len, tape.batch, c.hidden_size, c.directions());
        // `h` is `S` wide, an LSTM's `c` `H`.
        let (s, bh) = (c.state_size(), b * h);
        let bs = b * s;
        let has_c = c.cell.has_cell_state();
        let cell = self.cell_impl();
        out.params.fill_zero();
        out.h0.clear();
        out.h0.resize(c.num_layers * dirs * bs, 0.0);
        out.c0.clear();
        out.c0
            .resize(if has_c { c.num_layers * dirs * bh } else { 0 }, 0.0);

        let Tape {
            x: x0,
            layers,
            dy,
            dx,
            dx_rev,
            order,
            dh_n,
            dc_n,
            ..
        } = tape;
        let sorted = order.reorders();
        let lengths = order.active();
        dy.resize(grads.y.len(), 0.0); // within the capacity reserved by prepare_backward
        let (grad_h_n, grad_c_n) = if sorted {
            order.gather_steps(grads.y, dy, c.output_size(), true);
            (
                sorted_copy(order, grads.h_n, dh_n, s),
                sorted_copy(order, grads.c_n, dc_n, h),
            )
        } else {
            dy.copy_from_slice(grads.y);
            (grads.h_n, grads.c_n)
        };
        let per_layer = self.entries_per_dir() * dirs;
        for l in (0..c.num_layers).rev() {
            let (below, rest) = layers.split_at_mut(l);
            let rec = &mut rest[0];
            let x: &[f32] = if l == 0 {
                x0
            } else {
                below[l - 1].input_above(bs, t)
            };
            let in_size = c.layer_input_size(l);
            dx.resize(t * b * in_size, 0.0); // within the capacity reserved by prepare_backward
            let first = l * per_layer;
            let range = out.params.range_of(first, first + per_layer - 1);
            let lens: Vec<usize> = out.params.infos()[first..first + per_layer]
                .iter()
                .map(|i| i.len())
                .collect();
            let mut pieces =
                split_by_lens(&mut out.params.as_mut_slice()[range], &lens).into_iter();
            let mut h0s = out.h0[l * dirs * bs..(l + 1) * dirs * bs].chunks_exact_mut(bs);
            let mut c0s = out.c0.chunks_exact_mut(bh).skip(l * dirs);
            // The reverse direction writes its input gradient apart, so that
            // the two directions run at once; the two are summed after.
            dx_rev.resize(if dirs == 2 { t * b * in_size } else { 0 }, 0.0);
            {
                let mut dx_slots = [&mut dx[..], &mut dx_rev[..]].into_iter();
                let mut bufs = rec.grad_bufs.iter_mut();
                let mut jobs = Vec::with_capacity(dirs);
                for d in 0..dirs {
                    let mut next = || pieces.next().expect("one gradient view per parameter");
                    let (w_ih, w_hh) = (next(), next());
                    let (b_ih, b_hh) = if c.bias {
                        (Some(next()), Some(next()))
                    } else {
                        (None, None)
                    };
                    let w_hr = (c.proj_size > 0).then(&mut next);
                    jobs.push(layer::BackwardJob {
                        weights: self.layer_weights(l, d),
                        run: self.layer_run(l, d, t, b, lengths),
                        x,
                        tape: &rec.dirs[d],
                        up: Upstream {
                            dy,
                            offset: if c.merge == Merge::Sum { 0 } else { d * s },
                            stride: c.output_size(),
                            finals: [
                                state_slot(grad_h_n, l * dirs + d, bs),
                                state_slot(grad_c_n, l * dirs + d, bh),
                            ],
                        },
                        grads: LayerGrads {
                            w_ih,
                            w_hh,
                            b_ih,
                            b_hh,
                            w_hr,
                        },
                        out: InputGrads {
                            dx: dx_slots.next().expect("one dx buffer per direction"),
                            initial: [
                                h0s.next().expect("one h0 slot per direction"),
                                if has_c {
                                    c0s.next().expect("one c0 slot per direction")
                                } else {
                                    &mut []
                                },
                            ],
                        },
                        bufs: bufs.next().expect("one buffer set per direction"),
                    });
                }
                let mut jobs = jobs.into_iter();
                match (jobs.next(), jobs.next()) {
                    (Some(fwd), Some(rev)) => {
                        rnn_kernels::threads::join(|| fwd.run(cell), || rev.run(cell));
                    }
                    (Some(only), None) => only.run(cell),
                    _ => unreachable!("a layer has one or two directions"),
                }
            }
            if dirs == 2 {
                dx.iter_mut().zip(dx_rev.iter()).for_each(|(a, r)| *a += r);
            }
            std::mem::swap(dy, dx);
            // Through the dropout of the layer below: its output's gradient.
            if let Some(below) = l.checked_sub(1).map(|k| &layers[k]) {
                dy.iter_mut().zip(&below.mask).for_each(|(g, m)| *g *= m);
            }
        }
        out.x.clear();
        out.x.extend_from_slice(dy);
        if sorted {
            // Back to the caller's row order.
            order.scatter_steps(dy, &mut out.x, c.input_size, false);
            for (states, scratch, width) in [(&mut out.h0, dh_n, s), (&mut out.c0, dc_n, h)] {
                scratch.clear();
                scratch.extend_from_slice(states); // capacity from prepare_backward
                order.scatter_states(scratch, states, width);
            }
        }
    }
}

/// `dst` (`[B, T, w]`) = `src` (`[T, B, w]`), `w` = `len / (T*B)`.
fn transpose_steps(src: &[f32], dst: &mut [f32], (t, b): (usize, usize)) {
    let w = src.len() / (t * b).max(1);
    for (k, row) in src.chunks_exact(w.max(1)).enumerate() {
        let (tt, bb) = (k / b, k % b);
        dst[(bb * t + tt) * w..][..w].copy_from_slice(row);
    }
}

/// Fills `mask` with dropout values from `rng`: 0 with probability `p`,
/// else `1 / (1 - p)`.
fn draw_mask(mask: &mut [f32], p: f32, rng: &mut SplitMix64) {
    let scale = 1.0 / (1.0 - p);
    for m in mask.iter_mut() {
        *m = if rng.next_f32() < p { 0.0 } else { scale };
    }
}

/// Splits `s` into consecutive pieces of the given lengths.
fn split_by_lens<'a>(mut s: &'a mut [f32], lens: &[usize]) -> Vec<&'a mut [f32]> {
    lens.iter()
        .map(|&n| {
            let (head, tail) = std::mem::take(&mut s).split_at_mut(n);
            s = tail;
            head
        })
        .collect()
}

/// `v`, or `None` when empty.
fn non_empty(v: &[f32]) -> Option<&[f32]> {
    (!v.is_empty()).then_some(v)
}

/// `g` (`[L*D, B, width]`) in the batch's sorted order, in the start of
/// `buf`.
fn sorted_copy<'a>(
    order: &BatchOrder,
    g: Option<&[f32]>,
    buf: &'a mut [f32],
    width: usize,
) -> Option<&'a [f32]> {
    let g = g?;
    let buf = &mut buf[..g.len()];
    order.gather_states(g, buf, width);
    Some(buf)
}

/// Slot `i` (`[B, W]`, `n` = `B*W` values) of an optional `[L*D, B, W]`
/// state tensor.
fn state_slot(s: Option<&[f32]>, i: usize, n: usize) -> Option<&[f32]> {
    s.map(|v| &v[i * n..(i + 1) * n])
}
