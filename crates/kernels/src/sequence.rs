//! The time loop of a recurrent layer-direction on a team of threads
//! ([`crate::team`]): the one loop of every cell's whole-sequence kernels.
//!
//! The hidden units are cut in one block per thread. A step is a short
//! list of phases, each ending at a barrier. A forward phase computes the
//! thread's units' columns of one product, `out[:, g*H + u] (+)= a
//! W_hh[g*H + u, :]^T` for the phase's gate blocks `g` (`a` the state
//! before the step, or a per-step operand such as the GRU's `r * h_{t-1}`),
//! then runs the cell's fused kernel on its units. A backward phase starts
//! with `dh_t += dy_t`, and may compute the thread's columns of `dst (+)= dP
//! W_hh[blocks, u]` (once all of `dP_t` is there), then run a kernel. The
//! LSTM and Elman cells and the linear-before-reset GRU need one forward
//! phase and two backward; the reset-before-linear GRU, whose `n` block
//! multiplies `r * h_{t-1}`, two forward and three backward. No fork-join
//! per step, only barriers. The products run over each block's part of
//! `W_hh` packed once per call by the block's first step ([`crate::panel`]);
//! where that copy (as large as `W_hh`) cannot be allocated, they read
//! `W_hh` in place, slower, so that a loop never fails for want of memory.
//!
//! **Variable lengths**: rows sorted by length, longest first, so that the
//! rows inside their sequence at step `t` are the first `active[t]`. The
//! products and kernels run over those rows only; a row past its end keeps
//! its state (the loop copies it to the next slot) and passes its state
//! gradient through unchanged (its `dP` rows are not written).
//!
//! State slots as in the models crate's layer driver: forward, the state
//! before step `t` is slot `t` and after it `t + 1`; reverse, `t + 1` and
//! `t`.

use std::ops::Range;

use crate::panel::{pack, packed_len, product, product_in_place};
use crate::team::{run_steps, split_range};

/// Hidden units per thread at least (a few SIMD vectors each).
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

    /// The pointer (a method, so that closures capture the whole `Shared`).
    pub(crate) fn get(self) -> *mut f32 {
        self.0
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

    /// # Panics
    /// If `active` has the wrong length or a count above `B`.
    fn check(&self) {
        if let Some(a) = self.active {
            assert_eq!(a.len(), self.seq_len, "active");
            assert!(a.iter().all(|&n| n <= self.batch), "active rows");
        }
    }
}

/// The sizes of a layer-direction's time loop.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Loop<'a> {
    pub shape: SeqShape<'a>,
    /// Gate blocks `G`: `W_hh` is `[G*H, H]`, gate rows `[G*H]`.
    pub gates: usize,
    pub threads: usize,
}

/// One thread's share of one step.
pub(crate) struct Part {
    /// The time step.
    pub t: usize,
    /// The state slot before the step.
    pub prev: usize,
    /// The state slot after the step.
    pub out: usize,
    /// The rows inside their sequence at this step: `0..rows`.
    pub rows: usize,
    /// This thread's hidden units.
    pub units: Range<usize>,
}

impl<'a> Loop<'a> {
    /// The loop of `shape` with `gates` gate blocks on up to `threads`.
    ///
    /// # Panics
    /// If `shape.active` disagrees with its sizes.
    pub(crate) fn new(shape: SeqShape<'a>, gates: usize, threads: usize) -> Self {
        shape.check();
        Self {
            shape,
            gates,
            threads,
        }
    }

    /// Threads (one chunk of units each): one when a step's recurrent
    /// product is below the GEMM's parallel threshold, where the barriers
    /// would cost more than a second core gives.
    fn chunks(&self) -> usize {
        let s = &self.shape;
        let work = s.batch * self.gates * s.hidden * s.hidden;
        if work < crate::gemm::PARALLEL_FLOP_THRESHOLD {
            return 1;
        }
        self.threads.min(s.hidden / MIN_UNITS_PER_CHUNK).max(1)
    }

    fn units(&self, chunk: usize) -> Range<usize> {
        split_range(self.shape.hidden, self.chunks(), 8, chunk)
    }

    fn part(&self, step: usize, chunk: usize, backward: bool) -> Part {
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
            units: self.units(chunk),
        }
    }
}

/// Where a forward product `a W^T` goes.
#[derive(Clone, Copy)]
pub(crate) struct Product {
    /// `[T, B, G*H]` (indexed by step) or `[B, G*H]` (reused every step).
    pub buf: Shared,
    /// Whether `buf` holds one `[B, G*H]` block per time step.
    pub per_step: bool,
    /// Add to `buf` (the gates' input projections) or overwrite it.
    pub accumulate: bool,
}

/// The left operand `[B, H]` of a forward product.
#[derive(Clone, Copy)]
pub(crate) enum Operand {
    /// The hidden state before the step (slot `prev` of the states).
    Prev,
    /// Step `t`'s block of a `[T, B, H]` buffer written by an earlier phase
    /// of the step.
    PerStep(Shared),
}

/// One forward phase: the product `out[:, g*H + u] (+)= a W_hh[g*H + u,
/// :]^T` for the gate blocks `blocks` and the thread's units `u`, then
/// `kernel(part)`, which must write only its units' columns (rows
/// `0..part.rows`).
pub(crate) struct FwdPhase<'k> {
    pub blocks: Range<usize>,
    pub operand: Operand,
    pub out: Product,
    pub kernel: &'k (dyn Fn(&Part) + Sync),
}

impl<'k> FwdPhase<'k> {
    /// The one phase of a cell whose recurrent product is added to every
    /// gate block of the step's input projection (`[T, B, G*H]` at
    /// `gates`) before `kernel` (the LSTM's and the Elman cell's).
    pub(crate) fn into_gates(
        l: &Loop<'_>,
        gates: Shared,
        kernel: &'k (dyn Fn(&Part) + Sync),
    ) -> Self {
        Self {
            blocks: 0..l.gates,
            operand: Operand::Prev,
            out: Product {
                buf: gates,
                per_step: true,
                accumulate: true,
            },
            kernel,
        }
    }
}

/// Forward over every step: the phases in order, then, for the rows past
/// their sequence's end, the thread's units of every buffer of `carried`
/// (`[T+1, B, H]` state slots: the hidden states, the LSTM's cell states)
/// copied from slot `prev` to slot `out`.
///
/// # Safety
/// Every `out.buf` must point to `[T, B, G*H]` (or `[B, G*H]`) values,
/// every `Operand::PerStep` to `[T, B, H]`, `states` and `carried` to
/// `[T+1, B, H]`, valid for the call, accessed by nobody else; the kernels
/// must touch only the units of their part (and slot `prev` read-only).
pub(crate) unsafe fn forward(
    l: Loop<'_>,
    w_hh: &[f32],
    phases: &[FwdPhase<'_>],
    states: Shared,
    carried: &[Shared],
) {
    let (b, hd) = (l.shape.batch, l.shape.hidden);
    let (gh, bh) = (l.gates * hd, b * hd);
    assert_eq!(w_hh.len(), gh * hd, "w_hh");
    // Per phase, each chunk's rows of the phase's gate blocks of W_hh,
    // packed by the chunk's first step.
    let packs: Vec<_> = phases
        .iter()
        .map(|ph| Packed::new(&l, ph.blocks.len(), hd))
        .collect();
    let np = phases.len();
    // The rows past their end keep their state: the part's units of slot
    // `prev` copied to slot `out`, for every state buffer.
    let carry = move |p: &Part| {
        let n = p.units.len();
        for buf in std::iter::once(&states).chain(carried) {
            for r in p.rows..b {
                let (from, to) = ((p.prev * b + r) * hd, (p.out * b + r) * hd);
                // SAFETY: row `r` of two distinct slots, the part's units:
                // this thread's alone during the step.
                let src = unsafe { part_ref(buf.get(), from + p.units.start, n) };
                let dst = unsafe { part_mut(buf.get(), to + p.units.start, n) };
                dst.copy_from_slice(src);
            }
        }
    };
    let work = move |k: usize, chunk: usize| {
        let (step, ph) = (k / np, k % np);
        let (phase, packed) = (&phases[ph], packs[ph].as_ref());
        let p = l.part(step, chunk, false);
        let n = p.units.len();
        let seg = packed_len(n, hd);
        // SAFETY: slot `prev` was completed by the previous step, a
        // per-step operand by the previous phase, and neither is written
        // during this one; the output columns of this thread's units are
        // its alone (see the caller's contract); the chunk's packed weights
        // are written at its first step only, and read after it (ordered
        // by `run_steps`).
        let a = match phase.operand {
            Operand::Prev => unsafe { part_ref(states.get(), p.prev * bh, bh) },
            Operand::PerStep(buf) => unsafe { part_ref(buf.get(), p.t * bh, bh) },
        };
        let out = phase.out;
        let at = if out.per_step { p.t * b * gh } else { 0 };
        let dst = unsafe { out.buf.get().add(at) };
        for (i, g) in phase.blocks.clone().enumerate() {
            let c = unsafe { dst.add(g * hd + p.units.start) };
            let w = &w_hh[(g * hd + p.units.start) * hd..];
            let Some(packed) = packed else {
                let shape = ((n, hd), (hd, 1));
                unsafe {
                    product_in_place(a, p.rows, hd, w, shape.0, shape.1, c, gh, out.accumulate)
                };
                continue;
            };
            let mine = packed.range(chunk);
            if step == 0 {
                let panel = unsafe { part_mut(packed.ptr.get(), mine.start + i * seg, seg) };
                pack(w, n, hd, hd, 1, panel);
            }
            let panel = unsafe { part_ref(packed.ptr.get(), mine.start + i * seg, seg) };
            unsafe { product(a, p.rows, hd, panel, n, hd, c, gh, out.accumulate) };
        }
        (phase.kernel)(&p);
        if ph + 1 == np {
            carry(&p);
        }
    };
    run_steps(l.threads, l.shape.seq_len * np, l.chunks(), &work);
}

/// Whether the products read `W_hh` in place even when the packed copy
/// could be allocated (a test hook: [`read_weights_in_place`]).
static IN_PLACE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Makes every time loop of this process read `W_hh` in place, as when
/// its packed copy cannot be allocated (`true`), or pack it again
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
    /// each as wide as the chunk's units (zeros until packed), or `None`
    /// when it cannot be allocated.
    fn new(l: &Loop<'_>, blocks: usize, depth: usize) -> Option<Self> {
        if IN_PLACE.load(std::sync::atomic::Ordering::Relaxed) {
            return None;
        }
        let chunks = l.chunks();
        let mut starts = vec![0];
        for c in 0..chunks {
            let n = l.units(c).len();
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
/// of `dy` (row stride `stride`) holds `dh_t[b]` in columns `offset..+H`
/// (a direction's columns of a bidirectional layer's `[T, B, 2H]`).
#[derive(Clone, Copy, Debug)]
pub struct Upstream<'a> {
    /// `[T*B, stride]`.
    pub dy: &'a [f32],
    /// The column of `h` in `dy`'s rows.
    pub offset: usize,
    /// The row stride of `dy`.
    pub stride: usize,
}

/// A backward product `dst[:, u] (+)= dP_t[:, blocks] W_hh[blocks, u]`
/// over the thread's units `u` (columns of `W_hh`).
pub(crate) struct BwdProduct {
    /// The gate blocks of `dP_t` and rows of `W_hh`.
    pub blocks: Range<usize>,
    /// `[T, B, G*H]`, the gradient w.r.t. the recurrent product.
    pub src: Shared,
    /// A `[B, H]` buffer, or `None` for the gradient w.r.t. `h_{t-1}`.
    pub dst: Option<Shared>,
    /// Add to `dst` or overwrite it.
    pub accumulate: bool,
}

/// The kernel of a backward phase: `kernel(part, dh, dh_prev)`, `dh` the
/// `[B, H]` gradient w.r.t. the step's output, `dh_prev` w.r.t. the state
/// before it; it must touch only its units' columns of rows `0..part.rows`.
pub(crate) type BwdKernel<'k> = &'k (dyn Fn(&Part, *mut f32, *mut f32) + Sync);

/// One backward phase: the product if any, then the kernel if any.
pub(crate) struct BwdPhase<'k> {
    pub product: Option<BwdProduct>,
    pub kernel: Option<BwdKernel<'k>>,
}

impl<'k> BwdPhase<'k> {
    /// The two phases of a cell with one recurrent product: `kernel` (which
    /// writes `dP_t` into `src`, `[T, B, G*H]`), then `dh_{t-1} (+)= dP_t
    /// W_hh` (added to what the kernel wrote there when `accumulate`).
    pub(crate) fn one_product(
        l: &Loop<'_>,
        kernel: BwdKernel<'k>,
        src: Shared,
        accumulate: bool,
    ) -> [Self; 2] {
        [
            Self {
                product: None,
                kernel: Some(kernel),
            },
            Self {
                product: Some(BwdProduct {
                    blocks: 0..l.gates,
                    src,
                    dst: None,
                    accumulate,
                }),
                kernel: None,
            },
        ]
    }
}

/// Backward over every step in reverse. Each step's first phase begins,
/// on the thread's units, with `dh_t += dy_t` for the rows inside their
/// sequence and `dh_prev = dh_t` for the others; then every phase runs its
/// product and kernel. `dh` holds the gradient w.r.t. the final state on
/// entry and w.r.t. the initial state on return; `dh_spare` is scratch.
///
/// # Panics
/// If `dh`, `dh_spare` or `up` disagree with the sizes.
///
/// # Safety
/// Every product's `src` must point to `[T, B, G*H]` values and `dst` to
/// `[B, H]`, valid and accessed by nobody else during the call; the kernels
/// must touch only their units' columns.
pub(crate) unsafe fn backward(
    l: Loop<'_>,
    w_hh: &[f32],
    phases: &[BwdPhase<'_>],
    up: Upstream<'_>,
    dh: &mut [f32],
    dh_spare: &mut [f32],
) {
    let (t_len, b, hd) = l.shape.sizes();
    let gh = l.gates * hd;
    assert_eq!(w_hh.len(), gh * hd, "w_hh");
    assert!(dh.len() == b * hd && dh_spare.len() == b * hd, "dh");
    assert!(
        up.offset + hd <= up.stride && up.dy.len() >= t_len * b * up.stride,
        "dy"
    );
    let bufs = [Shared::new(dh), Shared::new(dh_spare)];
    // Per phase with a product, each chunk's columns of its rows of W_hh,
    // packed by the chunk's first product.
    let packs: Vec<_> = phases
        .iter()
        .map(|ph| {
            let blocks = ph.product.as_ref().map_or(0, |p| p.blocks.len());
            Packed::new(&l, 1, blocks * hd)
        })
        .collect();
    let np = phases.len();
    let work = move |k: usize, chunk: usize| {
        let (s, ph) = (k / np, k % np);
        let p = l.part(s, chunk, true);
        let (u0, n) = (p.units.start, p.units.len());
        let (cur, next) = (bufs[s % 2].get(), bufs[(s + 1) % 2].get());
        if ph == 0 {
            for r in 0..b {
                // SAFETY: row `r`, the part's units, of two `[B, H]` buffers
                // (asserted above) that this thread alone touches now.
                let d = unsafe { part_mut(cur, r * hd + u0, n) };
                if r < p.rows {
                    let g = &up.dy[(p.t * b + r) * up.stride + up.offset + u0..][..n];
                    d.iter_mut().zip(g).for_each(|(a, g)| *a += g);
                } else {
                    unsafe { part_mut(next, r * hd + u0, n) }.copy_from_slice(d);
                }
            }
        }
        let phase = &phases[ph];
        if let Some(prod) = &phase.product {
            // SAFETY: dP_t was completed by an earlier phase; this thread
            // alone writes its columns of `dst`; the chunk's packed weights
            // are written at its first product only, and read after it
            // (ordered by `run_steps`).
            let depth = prod.blocks.len() * hd;
            let first = prod.blocks.start * hd;
            let dp =
                unsafe { part_ref(prod.src.get(), p.t * b * gh + first, (b - 1) * gh + depth) };
            let out = unsafe { prod.dst.map_or(next, Shared::get).add(u0) };
            let src = &w_hh[first * hd + u0..];
            if let Some(packed) = &packs[ph] {
                let mine = packed.range(chunk);
                if s == 0 {
                    let dst = unsafe { part_mut(packed.ptr.get(), mine.start, mine.len()) };
                    pack(src, n, depth, 1, hd, dst);
                }
                let w = unsafe { part_ref(packed.ptr.get(), mine.start, mine.len()) };
                unsafe { product(dp, p.rows, gh, w, n, depth, out, hd, prod.accumulate) };
            } else {
                let shape = ((n, depth), (1, hd));
                unsafe {
                    product_in_place(
                        dp,
                        p.rows,
                        gh,
                        src,
                        shape.0,
                        shape.1,
                        out,
                        hd,
                        prod.accumulate,
                    )
                };
            }
        }
        if let Some(kernel) = phase.kernel {
            kernel(&p, cur, next);
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
