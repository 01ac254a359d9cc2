//! The time loop of a recurrent layer-direction on a team of threads
//! ([`crate::team`]): the one loop of every cell's whole-sequence kernels.
//!
//! The units of each product's output are cut in one block per chunk of
//! work (a thread's, [`crate::team`]). A step is a short list of phases,
//! each ending at a barrier. A forward phase computes the chunk's columns
//! of one product, `out[:, g*W + u] (+)= a M[g*W + u, :]^T` for the phase's
//! gate blocks `g` of width `W` (`a` the state before the step, or a
//! per-step operand such as the GRU's `r * h_{t-1}` or the LSTM's `o *
//! tanh(c_t)` before a projection; `M` the phase's own weights: `W_hh`, or
//! a projection's `W_hr` writing the state itself), then runs the cell's
//! fused kernel, if any, on its units. A backward phase may compute the
//! chunk's columns of `dst (+)= src M` (`src` a per-step gradient such as
//! `dP_t`, or the running `dh_t` itself), then run a kernel. The LSTM and
//! Elman cells and the linear-before-reset GRU need one forward phase and
//! two backward; the reset-before-linear GRU, whose `n` block multiplies
//! `r * h_{t-1}`, two forward and three backward; a projection adds one
//! each way. No fork-join per step, only barriers. The products run over each
//! chunk's part of the weights packed once per call by its first step
//! ([`crate::panel`]); where that copy (as large as the weights) cannot be
//! allocated, they read the weights in place, slower, so that a loop never
//! fails for want of memory.
//!
//! The state `h` has its own width `S` (the hidden size `H`, or a
//! projection's size): `[T+1, B, S]` slots, gradients `[B, S]`. Each
//! step's last phase ends, on the chunk's units of every state buffer,
//! with the bookkeeping of the rows past their end, the recurrent mask and,
//! backward, the next step's upstream gradient `dh += dy`, so that the
//! phases that read all of a state find it complete after the barrier.
//!
//! **Variable lengths**: rows sorted by length, longest first, so that the
//! rows inside their sequence at step `t` are the first `active[t]`. The
//! products and kernels run over those rows only; a row past its end keeps
//! its state (the loop copies it to the next slot) and passes its state
//! gradient through unchanged.
//!
//! **Recurrent mask** ([`RecurrentMask`], for recurrent dropout): every
//! product of `h_{t-1}` reads `h_{t-1} * mask`, kept in slots of its own;
//! backward, the gradient those products send to `h_{t-1}` is multiplied by
//! the mask. The kernels see the unmasked states.
//!
//! State slots as in the models crate's layer driver: forward, the state
//! before step `t` is slot `t` and after it `t + 1`; reverse, `t + 1` and
//! `t`.

use std::ops::Range;

use crate::panel::{pack, packed_len, product, product_in_place};
use crate::team::{run_steps, split_range};

/// Units per chunk at least (a few SIMD vectors each).
const MIN_UNITS_PER_CHUNK: usize = 16;

/// A raw pointer shared by the team's threads, each touching its own
/// elements.
#[derive(Clone, Copy)]
pub(crate) struct Shared(pub(crate) *mut f32);
// SAFETY: the drivers below hand each thread disjoint elements per phase,
// and `run_steps` orders the phases with release/acquire.
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

impl Shared {
    pub(crate) fn new(v: &mut [f32]) -> Self {
        Self(v.as_mut_ptr())
    }

    /// A buffer the loop only reads.
    pub(crate) fn read(v: &[f32]) -> Self {
        Self(v.as_ptr().cast_mut())
    }

    /// The pointer (a method, so that closures capture the whole `Shared`).
    pub(crate) fn get(self) -> *mut f32 {
        self.0
    }

    /// The pointer `at` elements on (not dereferenced here).
    pub(crate) fn at(self, at: usize) -> *mut f32 {
        self.0.wrapping_add(at)
    }
}

/// The shape of a layer-direction's time loop, shared by the cells'
/// whole-sequence kernels: state slots as in the module documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeqShape<'a> {
    /// `T`, the steps.
    pub seq_len: usize,
    /// `B`, the batch rows.
    pub batch: usize,
    /// `H`, the hidden units.
    pub hidden: usize,
    /// Whether time runs backwards (the reverse direction of a
    /// bidirectional layer).
    pub reverse: bool,
    /// `[T]`: the rows inside their sequence at each step, `None` when every
    /// row runs all `T` steps. With `Some(active)`, rows are sorted by
    /// length (longest first) and rows `0..active[t]` are inside their
    /// sequence at time `t` (in either direction); each `active[t] <= B`.
    pub active: Option<&'a [usize]>,
}

impl SeqShape<'_> {
    /// `(T, B, H)`.
    pub fn sizes(&self) -> (usize, usize, usize) {
        (self.seq_len, self.batch, self.hidden)
    }

    /// Rows inside their sequence at time `t`.
    pub fn rows_at(&self, t: usize) -> usize {
        self.active.map_or(self.batch, |a| a[t])
    }

    /// The state slot before the first forward step.
    pub fn initial_slot(&self) -> usize {
        if self.reverse { self.seq_len } else { 0 }
    }

    /// # Panics
    /// If `active` has the wrong length or a count above `B`.
    fn check(&self) {
        if let Some(a) = self.active {
            assert_eq!(a.len(), self.seq_len, "active");
            assert!(a.iter().all(|&n| n <= self.batch), "active rows");
        }
    }
}

/// A per-sequence mask on `h_{t-1}` in the recurrent products (recurrent
/// dropout, one mask per sequence for all its steps) and the buffer the
/// loop keeps the masked states in.
#[derive(Debug)]
pub struct RecurrentMask<'a> {
    /// `[B, S]`: the mask of each row (in the loop's row order) and state
    /// unit, for example zeros and `1 / (1 - p)`.
    pub mask: &'a [f32],
    /// Forward: `[T+1, B, S]`, the masked state slots, written (the
    /// recurrent weights' gradient multiplies these). Backward: `[B, S]`
    /// scratch.
    pub masked: &'a mut [f32],
}

/// The sizes of a layer-direction's time loop.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Loop<'a> {
    pub shape: SeqShape<'a>,
    /// Gate blocks `G` of the recurrent product: `[T, B, G*H]` gates.
    pub gates: usize,
    /// `S`, the width of the state `h` (`H` unless projected).
    pub state: usize,
    pub threads: usize,
}

/// One chunk's share of one phase of one step.
pub(crate) struct Part {
    /// The time step.
    pub t: usize,
    /// The state slot before the step.
    pub prev: usize,
    /// The state slot after the step.
    pub out: usize,
    /// The rows inside their sequence at this step: `0..rows`.
    pub rows: usize,
    /// This chunk's units of the phase's output (hidden units for the
    /// cells' kernels).
    pub units: Range<usize>,
}

impl<'a> Loop<'a> {
    /// The loop of `shape` with `gates` gate blocks and a state of `H`
    /// units, on up to `threads`.
    ///
    /// # Panics
    /// If `shape.active` disagrees with its sizes.
    pub(crate) fn new(shape: SeqShape<'a>, gates: usize, threads: usize) -> Self {
        shape.check();
        Self {
            shape,
            gates,
            state: shape.hidden,
            threads,
        }
    }

    /// The same loop with a state of `width` units (a projection's).
    pub(crate) fn with_state(self, width: usize) -> Self {
        Self {
            state: width,
            ..self
        }
    }

    /// Chunks of units (one per thread): one when a step's recurrent
    /// product is below the GEMM's parallel threshold, where the barriers
    /// would cost more than a second core gives.
    fn chunks(&self) -> usize {
        let s = &self.shape;
        let work = s.batch * self.gates * s.hidden * self.state;
        if work < crate::gemm::PARALLEL_FLOP_THRESHOLD {
            return 1;
        }
        self.threads.min(s.hidden / MIN_UNITS_PER_CHUNK).max(1)
    }

    /// Chunk `chunk`'s units of an output `width` wide.
    fn units(&self, width: usize, chunk: usize) -> Range<usize> {
        split_range(width, self.chunks(), 8, chunk)
    }

    /// The time of step `step` (forward or backward pass) and its slots.
    fn part(&self, step: usize, chunk: usize, backward: bool, width: usize) -> Part {
        let s = &self.shape;
        // Time runs down for the forward pass of the reverse direction and
        // the backward pass of the forward one, up otherwise.
        let descending = backward != s.reverse;
        let t = if descending {
            s.seq_len - 1 - step
        } else {
            step
        };
        let (prev, out) = if s.reverse { (t + 1, t) } else { (t, t + 1) };
        Part {
            t,
            prev,
            out,
            rows: s.rows_at(t),
            units: self.units(width, chunk),
        }
    }
}

/// A buffer of `[T+1, B, width]` state slots.
#[derive(Clone, Copy)]
pub(crate) struct Slots {
    pub buf: Shared,
    pub width: usize,
}

/// Which `[B, stride]` block of a product's output buffer a step writes.
#[derive(Clone, Copy)]
pub(crate) enum At {
    /// Block `t` of a `[T, B, stride]` buffer.
    Step,
    /// The one block of a `[B, stride]` buffer, reused every step.
    Fixed,
    /// Block `out` (the state slot after the step) of `[T+1, B, stride]`.
    Slot,
}

/// Where a forward product goes.
#[derive(Clone, Copy)]
pub(crate) struct Product {
    pub buf: Shared,
    pub at: At,
    /// The row length of `buf`.
    pub stride: usize,
    /// Add to `buf` (the gates' input projections) or overwrite it.
    pub accumulate: bool,
}

/// The left operand `[B, depth]` of a forward product.
#[derive(Clone, Copy)]
pub(crate) enum Operand {
    /// The state before the step (slot `prev`; masked with a
    /// [`RecurrentMask`]).
    Prev,
    /// Step `t`'s block of a `[T, B, depth]` buffer written by an earlier
    /// phase of the step.
    PerStep(Shared),
}

/// One forward phase: the product `out[:, g*width + u] (+)= a
/// weights[g*width + u, :]^T` (`weights` `[G*width, depth]`) for the gate
/// blocks `blocks` and the chunk's units `u < width`, then `kernel(part)`,
/// which must write only its units' columns (rows `0..part.rows`).
pub(crate) struct FwdPhase<'k> {
    pub weights: &'k [f32],
    pub width: usize,
    pub depth: usize,
    pub blocks: Range<usize>,
    pub operand: Operand,
    pub out: Product,
    pub kernel: Option<&'k (dyn Fn(&Part) + Sync)>,
}

impl<'k> FwdPhase<'k> {
    /// The phase of a cell whose recurrent product `h_{t-1} W_hh^T`
    /// (`w_hh` `[G*H, S]`) is added to every gate block of the step's
    /// input projection (`[T, B, G*H]` at `gates`) before `kernel` (the
    /// LSTM's and the Elman cell's).
    pub(crate) fn into_gates(
        l: &Loop<'_>,
        w_hh: &'k [f32],
        gates: Shared,
        kernel: &'k (dyn Fn(&Part) + Sync),
    ) -> Self {
        let hd = l.shape.hidden;
        Self {
            weights: w_hh,
            width: hd,
            depth: l.state,
            blocks: 0..l.gates,
            operand: Operand::Prev,
            out: Product {
                buf: gates,
                at: At::Step,
                stride: l.gates * hd,
                accumulate: true,
            },
            kernel: Some(kernel),
        }
    }
}

/// Forward over every step: the phases in order. Each step's last phase
/// ends, on the chunk's units of each buffer of `states` and `carried` (the
/// LSTM's cell states), with the rows past their sequence's end copied from
/// slot `prev` to slot `out`, and with a mask, `masked[out] = states[out] *
/// mask` on every row.
///
/// # Panics
/// If a phase's weights, widths or the mask disagree with the sizes.
///
/// # Safety
/// Every product's output must point to `[T, B, stride]`, `[B, stride]` or
/// `[T+1, B, stride]` values (as its [`At`]), every `Operand::PerStep` to
/// `[T, B, depth]`, `states` and `carried` to `[T+1, B, width]` slots, valid
/// for the call and accessed by nobody else; the kernels must touch only
/// the units of their part (and slot `prev` read-only).
pub(crate) unsafe fn forward(
    l: Loop<'_>,
    phases: &[FwdPhase<'_>],
    states: Slots,
    carried: &[Slots],
    mask: Option<RecurrentMask<'_>>,
) {
    let (t_len, b, hd) = l.shape.sizes();
    let sw = l.state;
    assert_eq!(states.width, sw, "state width");
    for ph in phases {
        let rows = ph.blocks.end * ph.width;
        assert!(ph.weights.len() >= rows * ph.depth, "weights");
        assert!(ph.out.stride >= rows, "product stride");
        assert!(
            !matches!(ph.operand, Operand::Prev) || ph.depth == sw,
            "operand"
        );
        assert!(ph.kernel.is_none() || ph.width == hd, "kernel units");
    }
    let masked = mask.map(|m| {
        let bs = b * sw;
        assert_eq!(m.mask.len(), bs, "mask");
        assert_eq!(m.masked.len(), (t_len + 1) * bs, "masked states");
        let first = l.shape.initial_slot() * bs;
        // SAFETY: the initial slot of `states` (the caller's contract).
        let h0 = unsafe { part_ref(states.buf.get(), first, bs) };
        let m0 = m.masked[first..first + bs].iter_mut();
        m0.zip(h0.iter().zip(m.mask))
            .for_each(|(m, (h, k))| *m = h * k);
        (Shared::new(m.masked), Shared::read(m.mask))
    });
    let packs: Vec<_> = phases
        .iter()
        .map(|ph| Packed::new(&l, ph.blocks.len(), ph.depth, ph.width))
        .collect();
    let np = phases.len();
    let finish = move |p: &Part, chunk: usize| {
        for s in std::iter::once(&states).chain(carried) {
            let u = l.units(s.width, chunk);
            for r in p.rows..b {
                let (from, to) = ((p.prev * b + r) * s.width, (p.out * b + r) * s.width);
                // SAFETY: row `r` of two distinct slots, the chunk's units:
                // its alone during the step.
                let src = unsafe { part_ref(s.buf.get(), from + u.start, u.len()) };
                let dst = unsafe { part_mut(s.buf.get(), to + u.start, u.len()) };
                dst.copy_from_slice(src);
            }
        }
        if let Some((masked, mask)) = masked {
            let u = l.units(sw, chunk);
            for r in 0..b {
                let at = (p.out * b + r) * sw + u.start;
                // SAFETY: the chunk's units of row `r` of slot `out`, its
                // alone during the step (and complete: written by this
                // chunk's last phase or copied above).
                let h = unsafe { part_ref(states.buf.get(), at, u.len()) };
                let k = unsafe { part_ref(mask.get(), r * sw + u.start, u.len()) };
                let m = unsafe { part_mut(masked.get(), at, u.len()) };
                m.iter_mut()
                    .zip(h.iter().zip(k))
                    .for_each(|(m, (h, k))| *m = h * k);
            }
        }
    };
    let work = move |k: usize, chunk: usize| {
        let (step, ph) = (k / np, k % np);
        let (phase, packed) = (&phases[ph], packs[ph].as_ref());
        let p = l.part(step, chunk, false, phase.width);
        let (u0, n, depth) = (p.units.start, p.units.len(), phase.depth);
        // SAFETY: slot `prev` was completed by the previous step, a
        // per-step operand by the previous phase, and neither is written
        // during this one; the output columns of this chunk's units are its
        // alone (see the caller's contract); the chunk's packed weights are
        // written at its first step only, and read after it (ordered by
        // `run_steps`).
        let a = match phase.operand {
            Operand::Prev => {
                let src = masked.map_or(states.buf, |(m, _)| m);
                unsafe { part_ref(src.get(), p.prev * b * depth, b * depth) }
            }
            Operand::PerStep(buf) => unsafe { part_ref(buf.get(), p.t * b * depth, b * depth) },
        };
        let out = phase.out;
        let block = match out.at {
            At::Step => p.t,
            At::Fixed => 0,
            At::Slot => p.out,
        };
        let dst = out.buf.at(block * b * out.stride);
        let seg = packed_len(n, depth);
        for (i, g) in phase.blocks.clone().enumerate() {
            let c = dst.wrapping_add(g * phase.width + u0);
            let w = &phase.weights[(g * phase.width + u0) * depth..];
            let Some(packed) = packed else {
                let shape = ((n, depth), (depth, 1));
                unsafe {
                    product_in_place(
                        a,
                        p.rows,
                        depth,
                        w,
                        shape.0,
                        shape.1,
                        c,
                        out.stride,
                        out.accumulate,
                    )
                };
                continue;
            };
            let at = packed.range(chunk).start + i * seg;
            if step == 0 {
                pack(w, n, depth, depth, 1, unsafe {
                    part_mut(packed.ptr.get(), at, seg)
                });
            }
            let panel = unsafe { part_ref(packed.ptr.get(), at, seg) };
            unsafe {
                product(
                    a,
                    p.rows,
                    depth,
                    panel,
                    n,
                    depth,
                    c,
                    out.stride,
                    out.accumulate,
                )
            };
        }
        if let Some(kernel) = phase.kernel {
            kernel(&p);
        }
        if ph + 1 == np {
            finish(&p, chunk);
        }
    };
    run_steps(l.threads, t_len * np, l.chunks(), &work);
}

/// Whether the products read the weights in place even when the packed
/// copy could be allocated (a test hook: [`read_weights_in_place`]).
static IN_PLACE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Makes every time loop of this process read its weights in place, as
/// when their packed copy cannot be allocated (`true`), or pack them again
/// (`false`): for the tests that hold the two equal.
#[doc(hidden)]
pub fn read_weights_in_place(on: bool) {
    IN_PLACE.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// Weights packed per chunk of units (see [`crate::panel`]).
struct Packed {
    data: Vec<f32>,
    /// `data`'s pointer, for the chunks' writes at their first step.
    ptr: Shared,
    /// Where each chunk's panels start (and, last, the end).
    starts: Vec<usize>,
}

impl Packed {
    /// Room for `blocks` packed blocks of depth `depth` per chunk of `l`,
    /// each as wide as the chunk's units of an output `width` wide (zeros
    /// until packed), or `None` when it cannot be allocated.
    fn new(l: &Loop<'_>, blocks: usize, depth: usize, width: usize) -> Option<Self> {
        if IN_PLACE.load(std::sync::atomic::Ordering::Relaxed) {
            return None;
        }
        let chunks = l.chunks();
        let mut starts = vec![0];
        for c in 0..chunks {
            let n = l.units(width, c).len();
            starts.push(starts[c] + blocks * packed_len(n, depth));
        }
        let mut data = Vec::new();
        data.try_reserve_exact(starts[chunks]).ok()?;
        data.resize(starts[chunks], 0.0);
        let ptr = Shared::new(&mut data);
        Some(Self { data, ptr, starts })
    }

    fn range(&self, chunk: usize) -> Range<usize> {
        debug_assert!(self.starts[chunk + 1] <= self.data.len());
        self.starts[chunk]..self.starts[chunk + 1]
    }
}

/// The upstream gradient w.r.t. a layer-direction's outputs: row `t*B + b`
/// of `dy` (row stride `stride`; row `b*T + t` batch-first) holds `dh_t[b]`
/// in columns `offset..+S` (a direction's columns of a bidirectional
/// layer's `[T, B, 2S]`).
#[derive(Clone, Copy, Debug)]
pub struct Upstream<'a> {
    /// `[T*B, stride]`.
    pub dy: &'a [f32],
    /// The column of `h` in `dy`'s rows.
    pub offset: usize,
    /// The row stride of `dy`.
    pub stride: usize,
    /// Whether `dy` is `[B, T, stride]` (batch-first) rather than `[T, B,
    /// stride]`.
    pub batch_first: bool,
}

impl Upstream<'_> {
    /// `d[r, units] += dy_t[r, units]` for the rows `0..rows` of a `[B,
    /// width]` gradient, of step `t` of `T`.
    ///
    /// # Safety
    /// `d` must point to `[B, width]` values whose `units` columns of those
    /// rows nobody else touches during the call.
    unsafe fn add_to(
        &self,
        d: *mut f32,
        (t, t_len, b, width): (usize, usize, usize, usize),
        rows: usize,
        units: &Range<usize>,
    ) {
        for r in 0..rows {
            let row = if self.batch_first {
                r * t_len + t
            } else {
                t * b + r
            };
            let g = &self.dy[row * self.stride + self.offset + units.start..][..units.len()];
            // SAFETY: the caller's contract.
            let d = unsafe { part_mut(d, r * width + units.start, units.len()) };
            d.iter_mut().zip(g).for_each(|(a, g)| *a += g);
        }
    }
}

/// The left operand of a backward product.
#[derive(Clone, Copy)]
pub(crate) enum Src {
    /// Columns `offset..offset + depth` of step `t`'s block of a `[T, B,
    /// stride]` buffer (`dP_t`, written by an earlier phase).
    PerStep {
        buf: Shared,
        stride: usize,
        offset: usize,
    },
    /// The gradient w.r.t. the step's output state, `dh_t` (`[B, S]`,
    /// upstream included).
    Grad,
}

/// A backward product `dst[:, u] (+)= src[:, ..depth] weights[..depth, u]`
/// (`weights` `[depth, width]` row-major) over the chunk's units `u <
/// width`.
pub(crate) struct BwdProduct<'w> {
    pub weights: &'w [f32],
    pub width: usize,
    pub depth: usize,
    pub src: Src,
    /// A `[B, width]` buffer, or `None` for the gradient w.r.t. `h_{t-1}`
    /// (`[B, S]`; masked with a [`RecurrentMask`]).
    pub dst: Option<Shared>,
    /// Add to `dst` or overwrite it.
    pub accumulate: bool,
}

/// The kernel of a backward phase: `kernel(part, dh, dh_prev)`, `dh` the
/// `[B, S]` gradient w.r.t. the step's output, `dh_prev` w.r.t. the state
/// before it; it must touch only its units' columns of rows `0..part.rows`.
pub(crate) type BwdKernel<'k> = &'k (dyn Fn(&Part, *mut f32, *mut f32) + Sync);

/// One backward phase: the product if any, then the kernel if any (on the
/// same units: a phase with both has a product `H` wide).
pub(crate) struct BwdPhase<'k> {
    pub product: Option<BwdProduct<'k>>,
    pub kernel: Option<BwdKernel<'k>>,
}

impl<'k> BwdPhase<'k> {
    /// The two phases of a cell with one recurrent product: `kernel` (which
    /// writes `dP_t` into `src`, `[T, B, G*H]`), then `dh_{t-1} (+)= dP_t
    /// W_hh` (`w_hh` `[G*H, S]`; added to what the kernel wrote there when
    /// `accumulate`).
    pub(crate) fn one_product(
        l: &Loop<'_>,
        w_hh: &'k [f32],
        kernel: BwdKernel<'k>,
        src: Shared,
        accumulate: bool,
    ) -> [Self; 2] {
        let gh = l.gates * l.shape.hidden;
        [
            Self {
                product: None,
                kernel: Some(kernel),
            },
            Self {
                product: Some(BwdProduct {
                    weights: w_hh,
                    width: l.state,
                    depth: gh,
                    src: Src::PerStep {
                        buf: src,
                        stride: gh,
                        offset: 0,
                    },
                    dst: None,
                    accumulate,
                }),
                kernel: None,
            },
        ]
    }
}

/// Backward over every step in reverse: every phase runs its product and
/// kernel; each step's last phase ends, on the chunk's units of the state
/// gradient, with `dh_{t-1} = dh_t` for the rows past their end and the
/// next step's `dh += dy` (the first step's is added before the loop).
/// `dh` holds the gradient w.r.t. the final state on entry and w.r.t. the
/// initial state on return; `dh_spare` is scratch; `record`, if any
/// (`[T, B, S]`), receives each step's `dh_t` (upstream included) on the
/// rows inside their sequence, zero on the others (a projection's weight
/// gradient multiplies these).
///
/// # Panics
/// If `dh`, `dh_spare`, `up`, a product or the mask disagree with the sizes.
///
/// # Safety
/// Every `Src::PerStep` must point to `[T, B, stride]` values and `dst` to
/// `[B, width]`, valid and accessed by nobody else during the call; the
/// kernels must touch only their units' columns.
pub(crate) unsafe fn backward(
    l: Loop<'_>,
    phases: &[BwdPhase<'_>],
    up: Upstream<'_>,
    dh: &mut [f32],
    dh_spare: &mut [f32],
    mask: Option<RecurrentMask<'_>>,
    record: Option<&mut [f32]>,
) {
    let (t_len, b, hd) = l.shape.sizes();
    let sw = l.state;
    assert!(dh.len() == b * sw && dh_spare.len() == b * sw, "dh");
    let record = record.map(|r| {
        assert_eq!(r.len(), t_len * b * sw, "record");
        Shared::new(r)
    });
    // `record[t] = dh_t` on rows `0..rows` and units `u` of a `[B, S]`
    // gradient `d`.
    let keep = move |d: *mut f32, t: usize, rows: usize, u: &Range<usize>| {
        if let Some(rec) = record {
            for r in 0..b {
                // SAFETY: row `r`, units `u` of `d` (`[B, S]`) and of step
                // `t`'s block of `record` (`[T, B, S]`), touched by this
                // chunk alone now.
                let at = (t * b + r) * sw + u.start;
                let dst = unsafe { part_mut(rec.get(), at, u.len()) };
                if r < rows {
                    dst.copy_from_slice(unsafe { part_ref(d, r * sw + u.start, u.len()) });
                } else {
                    dst.fill(0.0);
                }
            }
        }
    };
    assert!(
        up.offset + sw <= up.stride && up.dy.len() >= t_len * b * up.stride,
        "dy"
    );
    for ph in phases {
        if let Some(pr) = &ph.product {
            assert!(pr.weights.len() >= pr.depth * pr.width, "weights");
            assert!(pr.dst.is_some() || pr.width == sw, "dh_prev width");
            assert!(ph.kernel.is_none() || pr.width == hd, "kernel units");
            if let Src::PerStep { stride, offset, .. } = pr.src {
                assert!(offset + pr.depth <= stride, "product source");
            } else {
                assert_eq!(pr.depth, sw, "product source");
            }
        }
    }
    let mask = mask.map(|m| {
        assert!(m.mask.len() == b * sw && m.masked.len() == b * sw, "mask");
        (Shared::new(m.masked), Shared::read(m.mask))
    });
    let bufs = [Shared::new(dh), Shared::new(dh_spare)];
    if t_len > 0 {
        let p = l.part(0, 0, true, sw);
        // SAFETY: `dh`, `[B, S]` (asserted above), before the loop.
        unsafe { up.add_to(bufs[0].get(), (p.t, t_len, b, sw), p.rows, &(0..sw)) };
        keep(bufs[0].get(), p.t, p.rows, &(0..sw));
    }
    // Per phase with a product, each chunk's columns of its weights, packed
    // by the chunk's first product.
    let packs: Vec<_> = phases
        .iter()
        .map(|ph| {
            let pr = ph.product.as_ref()?;
            Packed::new(&l, 1, pr.depth, pr.width)
        })
        .collect();
    let np = phases.len();
    let work = move |k: usize, chunk: usize| {
        let (s, ph) = (k / np, k % np);
        let phase = &phases[ph];
        let width = phase.product.as_ref().map_or(hd, |pr| pr.width);
        let p = l.part(s, chunk, true, width);
        let (cur, next) = (bufs[s % 2].get(), bufs[(s + 1) % 2].get());
        if let Some(prod) = &phase.product {
            let (u0, n, depth) = (p.units.start, p.units.len(), prod.depth);
            // SAFETY: the source was completed by an earlier phase (or, for
            // `dh_t`, by the previous step) and is only read now; this chunk
            // alone writes its columns of the output; its packed weights are
            // written at its first product only, and read after it (ordered
            // by `run_steps`).
            let (a, lda) = match prod.src {
                Src::PerStep {
                    buf,
                    stride,
                    offset,
                } => {
                    let a = unsafe {
                        part_ref(buf.get(), p.t * b * stride + offset, b * stride - offset)
                    };
                    (a, stride)
                }
                Src::Grad => (unsafe { part_ref(cur, 0, b * sw) }, sw),
            };
            let (out, ldc, accumulate) = match (prod.dst, mask) {
                (Some(d), _) => (d.at(u0), prod.width, prod.accumulate),
                (None, Some((scratch, _))) => (scratch.at(u0), sw, false),
                (None, None) => (next.wrapping_add(u0), sw, prod.accumulate),
            };
            let w = &prod.weights[u0..];
            if let Some(packed) = &packs[ph] {
                let mine = packed.range(chunk);
                if s == 0 {
                    pack(w, n, depth, 1, prod.width, unsafe {
                        part_mut(packed.ptr.get(), mine.start, mine.len())
                    });
                }
                let w = unsafe { part_ref(packed.ptr.get(), mine.start, mine.len()) };
                unsafe { product(a, p.rows, lda, w, n, depth, out, ldc, accumulate) };
            } else {
                let shape = ((n, depth), (1, prod.width));
                unsafe {
                    product_in_place(a, p.rows, lda, w, shape.0, shape.1, out, ldc, accumulate)
                };
            }
            if let (None, Some((scratch, mk))) = (prod.dst, mask) {
                for r in 0..p.rows {
                    let at = r * sw + u0;
                    // SAFETY: the chunk's units of row `r` of three `[B, S]`
                    // buffers, its alone during the phase.
                    let d = unsafe { part_mut(next, at, n) };
                    let g = unsafe { part_ref(scratch.get(), at, n) };
                    let k = unsafe { part_ref(mk.get(), at, n) };
                    let masked = g.iter().zip(k).map(|(g, k)| g * k);
                    if prod.accumulate {
                        d.iter_mut().zip(masked).for_each(|(d, g)| *d += g);
                    } else {
                        d.iter_mut().zip(masked).for_each(|(d, g)| *d = g);
                    }
                }
            }
        }
        if let Some(kernel) = phase.kernel {
            kernel(&p, cur, next);
        }
        if ph + 1 == np {
            let u = l.units(sw, chunk);
            for r in p.rows..b {
                // SAFETY: the chunk's units of row `r` of the two `[B, S]`
                // gradients, its alone during the phase.
                let d = unsafe { part_ref(cur, r * sw + u.start, u.len()) };
                unsafe { part_mut(next, r * sw + u.start, u.len()) }.copy_from_slice(d);
            }
            if s + 1 < t_len {
                let q = l.part(s + 1, chunk, true, sw);
                // SAFETY: as above, the next step's gradient `dh_t`.
                unsafe { up.add_to(next, (q.t, t_len, b, sw), q.rows, &u) };
                keep(next, q.t, q.rows, &u);
            }
        }
    };
    run_steps(l.threads, np * t_len, l.chunks(), &work);
    // The gradient w.r.t. the initial state is in `bufs[T % 2]`.
    if t_len % 2 == 1 {
        dh.copy_from_slice(dh_spare);
    }
}

/// `len` values at `p + at`, as a mutable slice.
///
/// # Safety
/// The range must be valid and accessed by no one else while the slice
/// lives.
pub(crate) unsafe fn part_mut<'a>(p: *mut f32, at: usize, len: usize) -> &'a mut [f32] {
    // SAFETY: the caller's contract.
    unsafe { std::slice::from_raw_parts_mut(p.add(at), len) }
}

/// `len` values at `p + at`, as a shared slice.
///
/// # Safety
/// The range must be valid and written by no one while the slice lives.
pub(crate) unsafe fn part_ref<'a>(p: *const f32, at: usize, len: usize) -> &'a [f32] {
    // SAFETY: the caller's contract.
    unsafe { std::slice::from_raw_parts(p.add(at), len) }
}
