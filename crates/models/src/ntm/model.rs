//! The batched NTM. The controller's input projection of `x` and the output
//! layer run as single GEMMs over all `T*B` rows; each step runs as one
//! parallel task per block of batch rows: the controller's recurrent
//! products and the head layer on weights packed once per call
//! (`rnn_kernels::packed`), the LSTM cell, then each row's addressing,
//! reads and write (`row.rs`, on the SIMD kernels of
//! `rnn_kernels::addressing`, each row's memory column-major `[M, N]`).

use rnn_kernels::packed::{self, pack};
use rnn_kernels::{Activation, Mat, MatMut, Op, activation, gemm, lstm, reduce, threads};

use super::config::{Controller, MemoryInit, NtmConfig};
use super::row::{self, After, Before, Sizes};
use crate::config::check_nonzero;
use crate::error::{Result, check_len};
use crate::layer::{product, resize};
use crate::params::Params;
use crate::rng::SplitMix64;

/// A Neural Turing Machine (docs/ntm.md): configuration and parameters.
#[derive(Clone, Debug)]
pub struct Ntm {
    pub(super) config: NtmConfig,
    pub(super) params: Params,
}

/// Everything [`Ntm::forward_train`] keeps for [`Ntm::backward`]; reuse one
/// across calls (buffers only grow).
#[derive(Debug, Default)]
pub struct NtmTape {
    pub(super) config: Option<NtmConfig>,
    /// Whether what the backward needs is kept ([`Ntm::forward_train`]:
    /// every step's weightings and addressing, the memory at checkpoints),
    /// or only the two slots the next step needs ([`Ntm::forward_into`]).
    pub(super) keep: bool,
    pub(super) t: usize,
    pub(super) b: usize,
    /// `[T, B, I]`.
    pub(super) x: Vec<f32>,
    /// `[T+1, B, Z]`: slot 0 the initial `(h, r)`, slot `t+1` step `t`'s.
    pub(super) z: Vec<f32>,
    /// `[T+1, B, C]`: LSTM cell states.
    pub(super) c: Vec<f32>,
    /// `[T, B, G]`: activated LSTM gates (pre-activations while filling).
    pub(super) gates: Vec<f32>,
    /// `[T, B, P]`: raw head parameters.
    pub(super) p: Vec<f32>,
    /// `[2 + C, B, M, N]`: two working slots used in turn, then (when
    /// `keep`) `C = ceil(T / MEMORY_CHECKPOINT)` checkpoints, checkpoint
    /// `c` the memory before step `c * MEMORY_CHECKPOINT`; the backward
    /// recomputes the steps between from the kept write weightings and
    /// erase/add vectors. Each row's memory is column-major, the layout of
    /// `rnn_kernels::addressing` (the transpose of `init.memory`'s `[N,
    /// M]`).
    pub(super) mem: Vec<f32>,
    /// `[T+1, B, R+W, N]` (`[2, ...]` when not `keep`).
    pub(super) w: Vec<f32>,
    /// `[T, B, row_save]` (`[1, ...]` when not `keep`): per row, `[R+W,
    /// save]`, then the memory's norms `[N]`.
    pub(super) saves: Vec<f32>,
    /// `[T, B, 2, W, M]` (`[1, ...]` when not `keep`).
    pub(super) ea: Vec<f32>,
    /// `[T, B, O]`: the output logits.
    pub(super) y: Vec<f32>,
    /// `[B, C]` scratch.
    pub(super) h: Vec<f32>,
    /// The per-step weights packed (`rnn_kernels::packed`): `W_hh` (LSTM),
    /// the reads' columns of the input weight, `W_heads`.
    pub(super) packed: Vec<f32>,
}

impl NtmTape {
    /// An empty tape.
    pub fn new() -> Self {
        Self::default()
    }

    /// The logits of the last [`Ntm::forward_train`]: `[T, B, O]`.
    pub fn y(&self) -> &[f32] {
        &self.y
    }

    /// The read and write weightings of the last [`Ntm::forward_train`]:
    /// `[T+1, B, R+W, N]` (slot 0 the initial ones; reads first), for
    /// inspection and plots. Empty after [`Ntm::forward_into`], which keeps
    /// only the last steps'.
    pub fn weightings(&self) -> &[f32] {
        if self.keep { &self.w } else { &[] }
    }
}

/// Scratch of [`Ntm::backward`]; reuse one across calls.
#[derive(Debug, Default)]
pub struct NtmGradScratch {
    pub(super) dz: Vec<f32>,
    pub(super) dg: Vec<f32>,
    pub(super) dp: Vec<f32>,
    pub(super) dmem: [Vec<f32>; 2],
    pub(super) dw: [Vec<f32>; 2],
    pub(super) dc: Vec<f32>,
    pub(super) dh: Vec<f32>,
    pub(super) rows: Vec<f32>,
    /// The per-step weights packed transposed (`rnn_kernels::packed`).
    pub(super) packed: Vec<f32>,
    /// `[B, MEMORY_CHECKPOINT, M, N]`: each row's memories of the steps
    /// between two checkpoints, recomputed.
    pub(super) segment: Vec<f32>,
}

/// `(v[k], v[k+1])`: a slot to read and the next to write.
fn slot_pair(v: &mut [f32], size: usize, k: usize) -> (&[f32], &mut [f32]) {
    let (a, b) = v[k * size..(k + 2) * size].split_at_mut(size);
    (a, b)
}

/// Runs `run` on blocks of `block` rows (the last block shorter) of the
/// `rows` rows of `all`, in parallel: `split(all, n)` splits the first `n`
/// rows off `all`. Halves recursively with `rayon::join`, so a step costs
/// no allocation.
pub(super) fn in_blocks<T: Send>(
    mut all: T,
    rows: usize,
    block: usize,
    split: &(impl Fn(&mut T, usize) -> T + Sync),
    run: &(impl Fn(T) + Sync),
) {
    if rows <= block {
        run(all);
        return;
    }
    let first = rows.div_ceil(block).div_ceil(2) * block;
    let head = split(&mut all, first);
    rayon::join(
        || in_blocks(head, first, block, split, run),
        || in_blocks(all, rows - first, block, split, run),
    );
}

/// The sum of packed lengths, `None` on overflow (or if one overflowed).
pub(super) fn total(lens: Option<[usize; 3]>) -> Option<usize> {
    lens?.iter().try_fold(0usize, |acc, &l| acc.checked_add(l))
}

/// Steps between the memories [`Ntm::forward_train`] keeps for the
/// backward: writing every step's memory made the forward memory-bound (14
/// MB at batch 32 on the copy task); the backward recomputes the others
/// with the write kernel. Measured at batch 32 (`rnn bench --only ntm-b32`,
/// 2 threads, rounds of alternated runs): 2 and 8 faster than 4 in 3 of 3
/// rounds of one set, 4 faster than 8 in 2 of 3 rounds of the next, 16 the
/// slowest in 3 of 3: within this machine's noise except 16; 4 was kept.
pub(super) const MEMORY_CHECKPOINT: usize = 4;

/// The slots of step `t` in a buffer of `T+1` slots when `keep`, else of
/// two used in turn: `(slot read, slot written)`.
fn step_slots(v: &mut [f32], size: usize, t: usize, keep: bool) -> (&[f32], &mut [f32]) {
    if keep || t % 2 == 0 {
        return slot_pair(v, size, if keep { t } else { 0 });
    }
    let (a, b) = v[..2 * size].split_at_mut(size);
    (b, a)
}

/// Whether `name` is in one of the NTM's parameter groups (`controller.*`,
/// `heads.*`, `output.*`, `init.*`), used or not by a given configuration.
pub(crate) fn is_parameter_name(name: &str) -> bool {
    ["controller.", "heads.", "output.", "init."]
        .iter()
        .any(|group| name.starts_with(group))
}

impl Ntm {
    /// A machine with the initialisation of docs/ntm.md from `config.seed`:
    /// PyTorch's uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)) for the layers
    /// (`fan_in = C` for the LSTM as `torch.nn.LSTMCell`), initial read
    /// vectors `N(0, 0.01^2)`, controller state `N(0, 0.05^2)`, initial
    /// weightings focused on memory row 0, learned memory `N(0, 0.01^2)`.
    ///
    /// Errors: an invalid configuration, or no memory for the parameters.
    pub fn new(config: NtmConfig) -> Result<Self> {
        config.validate()?;
        let mut params = Params::try_zeros(config.layout())?;
        let mut rng = SplitMix64::new(config.seed);
        let s = Sizes::new(&config);
        let infos = params.infos().to_vec();
        for info in &infos {
            let values = params.get_mut(&info.name).expect("layout name");
            let fan_in = match info.name.as_str() {
                "controller.weight_ih"
                | "controller.weight_hh"
                | "controller.bias_ih"
                | "controller.bias_hh" => s.c,
                "controller.weight" | "controller.bias" => s.u,
                "heads.weight" | "heads.bias" => s.c,
                "output.weight" | "output.bias" => s.z,
                _ => 0,
            };
            if fan_in > 0 {
                let k = 1.0 / (fan_in as f32).sqrt();
                values.iter_mut().for_each(|v| *v = rng.uniform(-k, k));
                continue;
            }
            match info.name.as_str() {
                "init.read" | "init.memory" => {
                    values.iter_mut().for_each(|v| *v = 0.01 * rng.normal());
                }
                "init.h" | "init.c" => values.iter_mut().for_each(|v| *v = 0.05 * rng.normal()),
                "init.weight_logits" => {
                    for row in values.chunks_exact_mut(s.n) {
                        row.fill(0.0);
                        row[0] = 10.0;
                    }
                }
                _ => unreachable!("every NTM parameter has an initialisation"),
            }
        }
        Ok(Self { config, params })
    }

    /// A machine with the given parameters (names and shapes as
    /// [`NtmConfig::layout`]). Tensors with other names are ignored, except
    /// names of the NTM's parameter groups (`controller.*`, `heads.*`,
    /// `output.*`, `init.*`) that the configuration does not use (say
    /// `init.memory` for a constant memory): those are an error.
    ///
    /// Every tensor is checked against the configuration before anything is
    /// allocated: the memory taken is that of the tensors given.
    ///
    /// Errors: an invalid configuration, a missing tensor, a wrong shape, an
    /// unused parameter-like tensor, each named.
    pub fn from_params<'a>(
        config: NtmConfig,
        tensors: impl IntoIterator<Item = (&'a str, &'a [usize], &'a [f32])>,
    ) -> Result<Self> {
        config.validate()?;
        let params = Params::try_from_tensors(config.layout(), tensors, is_parameter_name)?;
        Ok(Self { config, params })
    }

    /// A copy, reporting a failed allocation as an error
    /// ([`crate::Error::OutOfMemory`]) instead of aborting as `clone` would.
    pub fn try_clone(&self) -> Result<Self> {
        Ok(Self {
            config: self.config.clone(),
            params: self.params.try_clone()?,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &NtmConfig {
        &self.config
    }

    /// The parameters.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// The parameters, mutable (values only).
    pub fn params_mut(&mut self) -> &mut [f32] {
        self.params.as_mut_slice()
    }

    /// Zero gradients with the parameters' layout.
    pub fn zero_grads(&self) -> Params {
        self.params.zeros_like()
    }

    /// The parameter `name` of the layout.
    pub(super) fn p(&self, name: &str) -> &[f32] {
        self.params.get(name).expect("parameter of the layout")
    }

    /// Output logits `[T, B, O]` for `x` `[T, B, I]` (time-major).
    ///
    /// Errors: `x`'s length is not `T*B*I`, a zero `T` or `B`, no memory.
    pub fn forward(&self, x: &[f32], seq_len: usize, batch: usize) -> Result<Vec<f32>> {
        let mut tape = NtmTape::new();
        self.forward_into(x, seq_len, batch, &mut tape)?;
        Ok(std::mem::take(&mut tape.y))
    }

    /// [`Ntm::forward`] on `tape`'s buffers (reuse one across calls): the
    /// logits `[T, B, O]` are [`NtmTape::y`]. Keeps only the memory and
    /// weightings the next step needs, not what the backward needs (at
    /// batch 32 on the copy task, 0.7 MB of memories per call against 4.3
    /// MB for [`Ntm::forward_train`]), so the tape cannot be used by
    /// [`Ntm::backward`] (an error) and its [`NtmTape::weightings`] are
    /// empty.
    ///
    /// Errors: as [`Ntm::forward`].
    pub fn forward_into(
        &self,
        x: &[f32],
        seq_len: usize,
        batch: usize,
        tape: &mut NtmTape,
    ) -> Result<()> {
        self.run(x, seq_len, batch, tape, false)
    }

    /// [`Ntm::forward`] keeping what [`Ntm::backward`] needs in `tape`;
    /// the logits `[T, B, O]` are [`NtmTape::y`].
    pub fn forward_train(
        &self,
        x: &[f32],
        seq_len: usize,
        batch: usize,
        tape: &mut NtmTape,
    ) -> Result<()> {
        self.run(x, seq_len, batch, tape, true)
    }

    /// The forward on `tape`, keeping what the backward needs when `keep`.
    fn run(
        &self,
        x: &[f32],
        seq_len: usize,
        batch: usize,
        tape: &mut NtmTape,
        keep: bool,
    ) -> Result<()> {
        check_nonzero(&[("seq_len", seq_len), ("batch", batch)])?;
        let s = Sizes::new(&self.config);
        check_len("x", x, &[seq_len, batch, s.i])?;
        self.prepare(tape, seq_len, batch, &s, keep)?;
        tape.x.copy_from_slice(x);
        threads::install(|| self.run_forward(tape, &s));
        Ok(())
    }

    fn prepare(&self, tape: &mut NtmTape, t: usize, b: usize, s: &Sizes, keep: bool) -> Result<()> {
        tape.config = None;
        let lstm = self.config.controller == Controller::Lstm;
        // Slots of the memory, of the weightings and of the addressing saves.
        let (mem_slots, states, steps) = if keep {
            (2 + t.div_ceil(MEMORY_CHECKPOINT), t + 1, t)
        } else {
            (2, 2, 1)
        };
        let packed = total(s.packed_forward())
            .ok_or_else(|| crate::Error::Unexpected("NTM packed weights: size overflows".into()))?;
        let sizes: [(&mut Vec<f32>, &[usize], &str); 12] = [
            (&mut tape.x, &[t, b, s.i], "NTM tape x"),
            (&mut tape.z, &[t + 1, b, s.z], "NTM tape states"),
            (
                &mut tape.c,
                &[if lstm { t + 1 } else { 0 }, b, s.c],
                "NTM tape cells",
            ),
            (&mut tape.gates, &[t, b, s.g], "NTM tape gates"),
            (&mut tape.p, &[t, b, s.p], "NTM tape head parameters"),
            (&mut tape.mem, &[mem_slots, b, s.mem()], "NTM tape memory"),
            (
                &mut tape.w,
                &[states, b, s.heads(), s.n],
                "NTM tape weightings",
            ),
            (
                &mut tape.saves,
                &[steps, b, s.row_save()],
                "NTM tape addressing",
            ),
            (&mut tape.ea, &[steps, b, s.ea()], "NTM tape erase/add"),
            (&mut tape.y, &[t, b, s.o], "NTM output"),
            (&mut tape.h, &[b, s.c], "NTM scratch"),
            (&mut tape.packed, &[packed], "NTM packed weights"),
        ];
        for (v, dims, what) in sizes {
            let n = product(dims, what)?;
            resize(v, n, what)?;
        }
        tape.t = t;
        tape.b = b;
        tape.keep = keep;
        tape.config = Some(self.config.clone());
        Ok(())
    }

    /// Slot 0 of the tape: initial state, memory and weightings.
    fn initial_state(&self, tape: &mut NtmTape, s: &Sizes) {
        let b = tape.b;
        let read0 = self.p("init.read");
        for row in tape.z[..b * s.z].chunks_exact_mut(s.z) {
            row[s.c..].copy_from_slice(read0);
            if self.config.controller == Controller::Lstm {
                row[..s.c].copy_from_slice(self.p("init.h"));
            } else {
                row[..s.c].fill(0.0);
            }
        }
        if self.config.controller == Controller::Lstm {
            let c0 = self.p("init.c");
            tape.c[..b * s.c]
                .chunks_exact_mut(s.c)
                .for_each(|r| r.copy_from_slice(c0));
        }
        let mem0 = &mut tape.mem[..b * s.mem()];
        match self.config.memory {
            MemoryInit::Constant(v) => mem0.fill(v),
            MemoryInit::Learned => {
                // `init.memory` is `[N, M]`; the tape's rows are `[M, N]`.
                let m = self.p("init.memory");
                let (first, rest) = mem0.split_at_mut(s.mem());
                for (i, location) in m.chunks_exact(s.m).enumerate() {
                    for (j, &v) in location.iter().enumerate() {
                        first[j * s.n + i] = v;
                    }
                }
                rest.chunks_exact_mut(s.mem())
                    .for_each(|r| r.copy_from_slice(first));
            }
        }
        let hn = s.heads() * s.n;
        let w0 = &mut tape.w[..hn];
        w0.copy_from_slice(self.p("init.weight_logits"));
        w0.chunks_exact_mut(s.n)
            .for_each(super::addressing::softmax_in_place);
        let (first, rest) = tape.w[..b * hn].split_at_mut(hn);
        rest.chunks_exact_mut(hn)
            .for_each(|r| r.copy_from_slice(first));
    }

    fn run_forward(&self, tape: &mut NtmTape, s: &Sizes) {
        let (t_len, b) = (tape.t, tape.b);
        self.initial_state(tape, s);
        let lstm = self.config.controller == Controller::Lstm;
        let (w_in, bias) = if lstm {
            ("controller.weight_ih", "controller.bias_ih")
        } else {
            ("controller.weight", "controller.bias")
        };
        let w_in = self.p(w_in);
        // Input projection of every step at once: gates = x W_x^T + biases.
        let rows = t_len * b;
        let gates = &mut tape.gates[..rows * s.g];
        reduce::broadcast_rows(self.p(bias), gates);
        if lstm {
            let bhh = self.p("controller.bias_hh");
            gates
                .chunks_exact_mut(s.g)
                .for_each(|r| r.iter_mut().zip(bhh).for_each(|(v, &q)| *v += q));
        }
        gemm(
            1.0,
            Mat::new(&tape.x, rows, s.i),
            Op::N,
            Mat::strided(w_in, s.g, s.i, s.u),
            Op::T,
            1.0,
            MatMut::new(gates, rows, s.g),
        );
        // The per-step weights, packed once: W_hh [G, C] (LSTM), the reads'
        // columns of the input weight [G, R*M], W_heads [P, C].
        let rm = s.u - s.i;
        let [hh_len, r_len, _] = s.packed_forward().expect("sized by prepare");
        let (hh, rest) = tape.packed.split_at_mut(hh_len);
        let (w_read, w_heads) = rest.split_at_mut(r_len);
        if lstm {
            pack(self.p("controller.weight_hh"), s.g, s.c, s.c, hh);
        }
        pack(&w_in[s.i..], s.g, rm, s.u, w_read);
        pack(self.p("heads.weight"), s.p, s.c, s.c, w_heads);
        let weights = StepWeights {
            hh,
            read: w_read,
            heads: w_heads,
            heads_bias: self.p("heads.bias"),
            lstm,
        };
        let block = b.div_ceil(2 * threads::current_threads()).max(1);
        for t in 0..t_len {
            let keep = tape.keep;
            let (z_prev, z) = slot_pair(&mut tape.z, b * s.z, t);
            let (c_prev, c): (&[f32], &mut [f32]) = if lstm {
                slot_pair(&mut tape.c, b * s.c, t)
            } else {
                (&[], &mut [])
            };
            // Two working memory slots in turn; with `keep`, the memory
            // before every `MEMORY_CHECKPOINT`-th step is also copied out.
            let (work, checkpoints) = tape.mem.split_at_mut(2 * b * s.mem());
            let (mem_prev, mem) = step_slots(work, b * s.mem(), t, false);
            let checkpoint: &mut [f32] = if keep && t % MEMORY_CHECKPOINT == 0 {
                let c = t / MEMORY_CHECKPOINT;
                &mut checkpoints[c * b * s.mem()..(c + 1) * b * s.mem()]
            } else {
                &mut []
            };
            let hn = s.heads() * s.n;
            let (w_prev, w) = step_slots(&mut tape.w, b * hn, t, keep);
            let (save_len, slot) = (s.row_save(), if keep { t } else { 0 });
            let step = Step {
                z_prev,
                z,
                c_prev,
                c,
                h: &mut tape.h,
                gates: &mut tape.gates[t * b * s.g..(t + 1) * b * s.g],
                p: &mut tape.p[t * b * s.p..(t + 1) * b * s.p],
                mem_prev,
                mem,
                checkpoint,
                w_prev,
                w,
                saves: &mut tape.saves[slot * b * save_len..(slot + 1) * b * save_len],
                ea: &mut tape.ea[slot * b * s.ea()..(slot + 1) * b * s.ea()],
            };
            // One task per block of rows: controller, head layer, heads.
            in_blocks(
                step,
                b,
                block,
                &|step, rows| step.split_rows(rows, s),
                &|rows| rows.run(&weights, s),
            );
        }
        // Output logits of every step at once: y = [h, r] W_out^T + b.
        let y = &mut tape.y[..rows * s.o];
        reduce::broadcast_rows(self.p("output.bias"), y);
        gemm(
            1.0,
            Mat::new(&tape.z[b * s.z..], rows, s.z),
            Op::N,
            Mat::new(self.p("output.weight"), s.o, s.z),
            Op::T,
            1.0,
            MatMut::new(y, rows, s.o),
        );
    }
}

/// The packed per-step weights of [`Ntm::run_forward`] (see
/// `rnn_kernels::packed`).
struct StepWeights<'a> {
    /// `W_hh` `[G, C]`, empty for a feed-forward controller.
    hh: &'a [f32],
    /// The reads' columns of the controller's input weight, `[G, R*M]`.
    read: &'a [f32],
    /// `W_heads` `[P, C]`.
    heads: &'a [f32],
    /// `[P]`.
    heads_bias: &'a [f32],
    lstm: bool,
}

/// The buffers of one step for a block of batch rows (`rows` rows of each
/// `[B, ...]` buffer of the step).
struct Step<'a> {
    /// `[rows, Z]`: `(h, r)` before the step.
    z_prev: &'a [f32],
    /// `[rows, Z]`, written.
    z: &'a mut [f32],
    /// `[rows, C]` (LSTM; empty otherwise).
    c_prev: &'a [f32],
    /// `[rows, C]` (LSTM; empty otherwise), written.
    c: &'a mut [f32],
    /// `[rows, C]` scratch.
    h: &'a mut [f32],
    /// `[rows, G]`: the input projection in, the activated gates out.
    gates: &'a mut [f32],
    /// `[rows, P]`, written.
    p: &'a mut [f32],
    /// `[rows, M, N]`.
    mem_prev: &'a [f32],
    /// `[rows, M, N]`, written.
    mem: &'a mut [f32],
    /// `[rows, M, N]`: where `mem_prev` is kept for the backward, or empty.
    checkpoint: &'a mut [f32],
    /// `[rows, R+W, N]`.
    w_prev: &'a [f32],
    /// `[rows, R+W, N]`, written.
    w: &'a mut [f32],
    /// `[rows, row_save]`, written.
    saves: &'a mut [f32],
    /// `[rows, ea]`, written.
    ea: &'a mut [f32],
}

/// Splits the first `n` values off `v`.
pub(super) fn take<'a>(v: &mut &'a mut [f32], n: usize) -> &'a mut [f32] {
    let (head, tail) = std::mem::take(v).split_at_mut(n);
    *v = tail;
    head
}

/// Splits the first `n` values off `v` (read-only).
pub(super) fn take_ref<'a>(v: &mut &'a [f32], n: usize) -> &'a [f32] {
    let (head, tail) = v.split_at(n);
    *v = tail;
    head
}

impl<'a> Step<'a> {
    /// Splits the first `rows` batch rows off every buffer.
    fn split_rows(&mut self, rows: usize, s: &Sizes) -> Step<'a> {
        let lstm_c = if self.c.is_empty() { 0 } else { s.c };
        let checkpoint_len = if self.checkpoint.is_empty() {
            0
        } else {
            rows * s.mem()
        };
        Step {
            z_prev: take_ref(&mut self.z_prev, rows * s.z),
            z: take(&mut self.z, rows * s.z),
            c_prev: take_ref(&mut self.c_prev, rows * lstm_c),
            c: take(&mut self.c, rows * lstm_c),
            h: take(&mut self.h, rows * s.c),
            gates: take(&mut self.gates, rows * s.g),
            p: take(&mut self.p, rows * s.p),
            mem_prev: take_ref(&mut self.mem_prev, rows * s.mem()),
            mem: take(&mut self.mem, rows * s.mem()),
            checkpoint: take(&mut self.checkpoint, checkpoint_len),
            w_prev: take_ref(&mut self.w_prev, rows * s.heads() * s.n),
            w: take(&mut self.w, rows * s.heads() * s.n),
            saves: take(&mut self.saves, rows * s.row_save()),
            ea: take(&mut self.ea, rows * s.ea()),
        }
    }

    /// The step for these rows: the controller (`gates += h_prev W_hh^T +
    /// r_prev W_r^T`, then the LSTM cell or `tanh`), the head layer `p = h
    /// W_heads^T + b`, then each row's addressing, reads and write.
    fn run(self, wt: &StepWeights<'_>, s: &Sizes) {
        let rows = self.z.len() / s.z;
        if wt.lstm {
            packed::product(
                self.z_prev,
                rows,
                s.z,
                wt.hh,
                (s.g, s.c),
                self.gates,
                s.g,
                true,
            );
        }
        let reads_prev = &self.z_prev[s.c..];
        let rm = s.z - s.c;
        packed::product(
            reads_prev,
            rows,
            s.z,
            wt.read,
            (s.g, rm),
            self.gates,
            s.g,
            true,
        );
        if wt.lstm {
            lstm::forward(self.gates, self.c_prev, self.c, self.h, s.c);
        } else {
            activation::forward_inplace(Activation::Tanh, self.gates);
            self.h.copy_from_slice(self.gates);
        }
        for (zr, hr) in self.z.chunks_exact_mut(s.z).zip(self.h.chunks_exact(s.c)) {
            zr[..s.c].copy_from_slice(hr);
        }
        reduce::broadcast_rows(wt.heads_bias, self.p);
        packed::product(self.z, rows, s.z, wt.heads, (s.p, s.c), self.p, s.p, true);
        let hn = s.heads() * s.n;
        if !self.checkpoint.is_empty() {
            self.checkpoint.copy_from_slice(self.mem_prev);
        }
        for (r, z) in self.z.chunks_exact_mut(s.z).enumerate() {
            let at = |width: usize| r * width..(r + 1) * width;
            row::forward(
                s,
                &self.p[at(s.p)],
                Before {
                    mem: &self.mem_prev[at(s.mem())],
                    w: &self.w_prev[at(hn)],
                },
                After {
                    mem: &mut self.mem[at(s.mem())],
                    w: &mut self.w[at(hn)],
                    saves: &mut self.saves[at(s.row_save())],
                    ea: &mut self.ea[at(s.ea())],
                    reads: &mut z[s.c..],
                },
            );
        }
    }
}
