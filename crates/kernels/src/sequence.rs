//! The time loop of a recurrent layer-direction on a team of threads
//! ([`crate::team`]), shared by the cells' whole-sequence kernels.
//!
//! The hidden units are cut in one block per thread. Forward, per step, each
//! thread computes its units' columns of every gate block, `P_t[:, g*H + u]
//! += h_{t-1} W_hh[g*H + u, :]^T`, then runs the cell's fused kernel on its
//! units; the next step waits for every thread's `h_t`. Backward, per step,
//! each thread runs the cell's backward kernel on its units (giving its
//! columns of `dP_t`), then, once all of `dP_t` is there, its columns of
//! `dh_{t-1} = dP_t W_hh`. No fork-join per step: one barrier forward, two
//! backward. The products run over each block's part of `W_hh` packed once
//! per call by the block's first step ([`crate::panel`]).
//!
//! State slots as in the models crate's layer driver: forward, the state
//! before step `t` is slot `t` and after it `t + 1`; reverse, `t + 1` and
//! `t`.

use std::ops::Range;

use crate::panel::{pack, packed_len, product};
use crate::team::{run_steps, split_range};

/// Hidden units per thread at least (a few SIMD vectors each).
const MIN_UNITS_PER_CHUNK: usize = 16;

/// A raw pointer shared by the team's threads, each touching its own
/// elements.
#[derive(Clone, Copy)]
pub(crate) struct Shared(*mut f32);
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

/// A whole-sequence kernel could not allocate its packed copy of `W_hh`
/// (as large as `W_hh`): it computed and wrote nothing, and the caller can
/// run the step-by-step loop instead, which needs no such copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub struct NoMemory;

/// The shape of a layer-direction's time loop, shared by the cells'
/// whole-sequence kernels: state slots as in the module documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeqShape {
    /// `T`, the steps.
    pub seq_len: usize,
    /// `B`, the batch rows.
    pub batch: usize,
    /// `H`, the hidden units.
    pub hidden: usize,
    /// Whether time runs backwards (the reverse direction of a
    /// bidirectional layer).
    pub reverse: bool,
}

impl SeqShape {
    /// `(T, B, H)`.
    pub fn sizes(&self) -> (usize, usize, usize) {
        (self.seq_len, self.batch, self.hidden)
    }
}

/// The sizes of a layer-direction's time loop.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Loop {
    pub seq_len: usize,
    pub batch: usize,
    pub hidden: usize,
    /// Gate blocks `G`: `W_hh` is `[G*H, H]`, gate rows `[G*H]`.
    pub gates: usize,
    pub reverse: bool,
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
    /// This thread's hidden units.
    pub units: Range<usize>,
}

impl Loop {
    /// The loop of `shape` with `gates` gate blocks on up to `threads`.
    pub(crate) fn new(shape: SeqShape, gates: usize, threads: usize) -> Self {
        Self {
            seq_len: shape.seq_len,
            batch: shape.batch,
            hidden: shape.hidden,
            gates,
            reverse: shape.reverse,
            threads,
        }
    }

    /// Threads (one chunk of units each): one when a step's recurrent
    /// product is below the GEMM's parallel threshold, where the barriers
    /// would cost more than a second core gives.
    fn chunks(&self) -> usize {
        let work = self.batch * self.gates * self.hidden * self.hidden;
        if work < crate::gemm::PARALLEL_FLOP_THRESHOLD {
            return 1;
        }
        self.threads.min(self.hidden / MIN_UNITS_PER_CHUNK).max(1)
    }

    fn part(&self, step: usize, chunk: usize, backward: bool) -> Part {
        // Time runs down for the forward pass of the reverse direction and
        // the backward pass of the forward one, up otherwise.
        let descending = backward != self.reverse;
        let t = if descending {
            self.seq_len - 1 - step
        } else {
            step
        };
        let (prev, out) = if self.reverse { (t + 1, t) } else { (t, t + 1) };
        Part {
            t,
            prev,
            out,
            units: split_range(self.hidden, self.chunks(), 8, chunk),
        }
    }
}

/// Where the forward recurrent product `h_{t-1} W_hh^T` goes.
#[derive(Clone, Copy)]
pub(crate) struct Product {
    /// `[T, B, G*H]` (indexed by step) or `[B, G*H]` (reused every step).
    pub buf: Shared,
    /// Whether `buf` holds one `[B, G*H]` block per time step.
    pub per_step: bool,
    /// Add to `buf` (the gates' input projections) or overwrite it.
    pub accumulate: bool,
}

/// Forward: per step and thread, `out[:, g*H + u] (+)= h_prev W_hh[g*H +
/// u]^T` for every gate block `g` and the thread's units `u`, then
/// `kernel(part)`, which must write only its units' columns.
///
/// # Safety
/// `out.buf` must point to `[T, B, G*H]` (or `[B, G*H]`) values and
/// `states` to `[T+1, B, H]`, valid for the call, accessed by nobody else;
/// `kernel` must touch only the units of its part (and slot `prev`
/// read-only).
///
/// Errors: [`NoMemory`] for the packed weights, before anything is written.
pub(crate) unsafe fn forward(
    l: Loop,
    w_hh: &[f32],
    out: Product,
    states: Shared,
    kernel: &(dyn Fn(&Part) + Sync),
) -> Result<(), NoMemory> {
    let (b, hd) = (l.batch, l.hidden);
    let (gh, bh) = (l.gates * hd, b * hd);
    assert_eq!(w_hh.len(), gh * hd, "w_hh");
    // Each chunk's rows of every gate block of W_hh, packed by the chunk's
    // first step.
    let mut packed = Packed::new(&l, l.gates, hd)?;
    let panels = Shared::new(&mut packed.data);
    let packed = &packed;
    let work = move |step: usize, chunk: usize| {
        let p = l.part(step, chunk, false);
        let n = p.units.len();
        let seg = packed_len(n, hd);
        // SAFETY: slot `prev` was completed by the previous step and is
        // written by no one during this one; the gate columns of this
        // thread's units are its alone (see the caller's contract); the
        // chunk's packed weights are written at its first step only, and
        // read after it (ordered by `run_steps`).
        let h_prev = unsafe { std::slice::from_raw_parts(states.get().add(p.prev * bh), bh) };
        let at = if out.per_step { p.t * b * gh } else { 0 };
        let g_t = unsafe { out.buf.get().add(at) };
        let mine = packed.range(chunk);
        if step == 0 {
            let dst = unsafe { part_mut(panels.get(), mine.start, mine.len()) };
            for (g, dst) in dst.chunks_exact_mut(seg.max(1)).enumerate() {
                pack(&w_hh[(g * hd + p.units.start) * hd..], n, hd, hd, 1, dst);
            }
        }
        let mine = unsafe { part_ref(panels.get(), mine.start, mine.len()) };
        for g in 0..l.gates {
            let c = unsafe { g_t.add(g * hd + p.units.start) };
            let w = &mine[g * seg..(g + 1) * seg];
            unsafe { product(h_prev, b, hd, w, n, hd, c, gh, out.accumulate) };
        }
        kernel(&p);
    };
    run_steps(l.threads, l.seq_len, l.chunks(), &work);
    Ok(())
}

/// Weights packed per chunk of units (see [`crate::panel`]).
struct Packed {
    data: Vec<f32>,
    /// Where each chunk's panels start (and, last, the end).
    starts: Vec<usize>,
}

impl Packed {
    /// Room for `blocks` packed blocks of depth `depth` per chunk of `l`,
    /// each as wide as the chunk's units (zeros until packed), or
    /// [`NoMemory`] when it cannot be allocated.
    fn new(l: &Loop, blocks: usize, depth: usize) -> Result<Self, NoMemory> {
        let chunks = l.chunks();
        let mut starts = vec![0];
        for c in 0..chunks {
            let n = split_range(l.hidden, chunks, 8, c).len();
            starts.push(starts[c] + blocks * packed_len(n, depth));
        }
        let mut data = Vec::new();
        data.try_reserve_exact(starts[chunks])
            .map_err(|_| NoMemory)?;
        data.resize(starts[chunks], 0.0);
        Ok(Self { data, starts })
    }

    fn range(&self, chunk: usize) -> Range<usize> {
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

/// Backward: per step, on the thread's units, `dh_t += dy_t`, then
/// `kernel(part, dh, dh_prev)`: `dh` is the `[B, H]` gradient w.r.t. the
/// step's output, from which the kernel writes its columns of `dP_t` into
/// `src` (the gradient w.r.t. the recurrent product) and, for cells with a
/// direct path from `h_{t-1}` to `h_t`, its columns of `dh_prev`. Then,
/// once every thread's columns of `dP_t` are there, the thread's columns of
/// `dh_prev (+)= dP_t W_hh` (added when `accumulate`). `dh` holds the
/// gradient w.r.t. the final state on entry and w.r.t. the initial state on
/// return; `dh_spare` is scratch.
///
/// # Panics
/// If `dh`, `dh_spare` or `up` disagree with the sizes.
///
/// # Safety
/// `src` must point to `[T, B, G*H]` values, valid and accessed by nobody
/// else during the call; `kernel` must touch only its units' columns.
///
/// Errors: [`NoMemory`] for the packed weights, before anything is written.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn backward(
    l: Loop,
    w_hh: &[f32],
    src: Shared,
    accumulate: bool,
    up: Upstream<'_>,
    dh: &mut [f32],
    dh_spare: &mut [f32],
    kernel: &(dyn Fn(&Part, *mut f32, *mut f32) + Sync),
) -> Result<(), NoMemory> {
    let (b, hd) = (l.batch, l.hidden);
    let gh = l.gates * hd;
    assert_eq!(w_hh.len(), gh * hd, "w_hh");
    assert!(dh.len() == b * hd && dh_spare.len() == b * hd, "dh");
    assert!(
        up.offset + hd <= up.stride && up.dy.len() >= l.seq_len * b * up.stride,
        "dy"
    );
    let bufs = [Shared::new(dh), Shared::new(dh_spare)];
    // Each chunk's columns of W_hh, packed by its first product.
    let mut packed = Packed::new(&l, 1, gh)?;
    let panels = Shared::new(&mut packed.data);
    let packed = &packed;
    // Phase 2s: the kernel of (backward) step s; 2s + 1: its product.
    let work = move |phase: usize, chunk: usize| {
        let s = phase / 2;
        let p = l.part(s, chunk, true);
        if phase % 2 == 0 {
            let (u0, n) = (p.units.start, p.units.len());
            for r in 0..b {
                // SAFETY: row `r`, the part's units, of a `[B, H]` buffer
                // (asserted above) that this thread alone touches now.
                let d = unsafe { part_mut(bufs[s % 2].get(), r * hd + u0, n) };
                let g = &up.dy[(p.t * b + r) * up.stride + up.offset + u0..][..n];
                d.iter_mut().zip(g).for_each(|(a, g)| *a += g);
            }
            kernel(&p, bufs[s % 2].get(), bufs[(s + 1) % 2].get());
        } else {
            // SAFETY: dP_t was completed by the previous phase; this
            // thread alone writes its columns of bufs[(s + 1) % 2]; the
            // chunk's packed weights are written at its first product
            // only, and read after it (ordered by `run_steps`).
            let dg = unsafe {
                std::slice::from_raw_parts(src.get().add(p.t * b * gh).cast_const(), b * gh)
            };
            let out = unsafe { bufs[(s + 1) % 2].get().add(p.units.start) };
            let n = p.units.len();
            let mine = packed.range(chunk);
            if s == 0 {
                let dst = unsafe { part_mut(panels.get(), mine.start, mine.len()) };
                pack(&w_hh[p.units.start..], n, gh, 1, hd, dst);
            }
            let w = unsafe { part_ref(panels.get(), mine.start, mine.len()) };
            unsafe { product(dg, b, gh, w, n, gh, out, hd, accumulate) };
        }
    };
    run_steps(l.threads, 2 * l.seq_len, l.chunks(), &work);
    // The gradient w.r.t. the initial state is in `bufs[T % 2]`.
    if l.seq_len % 2 == 1 {
        dh.copy_from_slice(dh_spare);
    }
    Ok(())
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
