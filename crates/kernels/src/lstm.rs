//! Fused LSTM step kernels (gate order `i, f, g, o`, PyTorch's).
//!
//! Layout: `gates` is `[B, 4H]` row-major, each row the four blocks
//! `[i | f | g | o]` of `H` values; states `c_prev`, `c`, `h` are `[B, H]`.
//!
//! Forward: from the pre-activations `P = x W_ih^T + b_ih + b_hh + h W_hh^T`,
//! ```text
//! i = sig(P_i)  f = sig(P_f)  g = tanh(P_g)  o = sig(P_o)
//! c = f * c_prev + i * g      h = o * tanh(c)
//! ```
//! Backward, from `dh` (gradient w.r.t. `h`) and `dc` (w.r.t. `c`, from step t+1):
//! ```text
//! dc' = dc + dh * o * (1 - tanh(c)^2)
//! dP_i = dc' g i (1-i)  dP_f = dc' c_prev f (1-f)  dP_g = dc' i (1-g^2)
//! dP_o = dh tanh(c) o (1-o)                         dc_prev = dc' f
//! ```

use pulp::{Simd, WithSimd};

use crate::gates;
use crate::math;
use crate::sequence::{self, Loop, NoMemory, Part, Product, SeqShape, Shared, Upstream, part_mut};
use crate::simd::{Lanes, dispatch, zip_map};

/// Inputs `[c_prev]`; read-write `[i, f, g, o, c, h]` (pre-activations in).
struct ForwardLanes;

impl Lanes<1, 6> for ForwardLanes {
    #[inline(always)]
    fn apply<S: Simd>(&self, simd: S, [cp]: [S::f32s; 1], y: [S::f32s; 6]) -> [S::f32s; 6] {
        let [pi, pf, pg, po, _, _] = y;
        let i = math::sigmoid(simd, pi);
        let f = math::sigmoid(simd, pf);
        let g = math::tanh(simd, pg);
        let o = math::sigmoid(simd, po);
        let c = simd.mul_add_f32s(f, cp, simd.mul_f32s(i, g));
        let h = simd.mul_f32s(o, math::tanh(simd, c));
        [i, f, g, o, c, h]
    }
}

/// Inputs `[i, f, g, o, c_prev, c, dh]`; read-write `[dc, di, df, dg, do]`.
struct BackwardLanes;

impl Lanes<7, 5> for BackwardLanes {
    #[inline(always)]
    fn apply<S: Simd>(&self, simd: S, x: [S::f32s; 7], y: [S::f32s; 5]) -> [S::f32s; 5] {
        let [i, f, g, o, cp, c, dh] = x;
        let dc = y[0];
        let one = simd.splat_f32s(1.0);
        let tc = math::tanh(simd, c);
        let dtc = simd.mul_f32s(simd.mul_f32s(dh, o), simd.negate_mul_add_f32s(tc, tc, one));
        let dct = simd.add_f32s(dc, dtc);
        let di = simd.mul_f32s(
            simd.mul_f32s(dct, g),
            simd.mul_f32s(i, simd.sub_f32s(one, i)),
        );
        let df = simd.mul_f32s(
            simd.mul_f32s(dct, cp),
            simd.mul_f32s(f, simd.sub_f32s(one, f)),
        );
        let dg = simd.mul_f32s(simd.mul_f32s(dct, i), simd.negate_mul_add_f32s(g, g, one));
        let dout = simd.mul_f32s(
            simd.mul_f32s(dh, tc),
            simd.mul_f32s(o, simd.sub_f32s(one, o)),
        );
        [simd.mul_f32s(dct, f), di, df, dg, dout]
    }
}

struct Forward<'a> {
    gates: &'a mut [f32],
    c_prev: &'a [f32],
    c: &'a mut [f32],
    h: &'a mut [f32],
    hidden: usize,
}

impl WithSimd for Forward<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let hd = self.hidden;
        let rows = self.gates.chunks_exact_mut(4 * hd);
        let states = self
            .c_prev
            .chunks_exact(hd)
            .zip(self.c.chunks_exact_mut(hd));
        for ((row, (c_prev, c)), h) in rows.zip(states).zip(self.h.chunks_exact_mut(hd)) {
            let [i, f, g, o] = gates::blocks_mut::<4>(row, hd);
            zip_map(simd, [c_prev], [i, f, g, o, c, h], &ForwardLanes);
        }
    }
}

/// One forward step. `gates`: `[B, 4H]`, pre-activations in, activated gates
/// out (kept for backward); `c_prev`: `[B, H]`; `c`, `h`: `[B, H]`, written.
///
/// # Panics
/// If the lengths disagree with `hidden` (a broken internal invariant).
pub fn forward(gates: &mut [f32], c_prev: &[f32], c: &mut [f32], h: &mut [f32], hidden: usize) {
    let b = gates::rows::<4>(gates.len(), hidden);
    assert!(c_prev.len() == b * hidden && c.len() == b * hidden && h.len() == b * hidden);
    dispatch(Forward {
        gates,
        c_prev,
        c,
        h,
        hidden,
    });
}

struct Backward<'a> {
    gates: &'a [f32],
    c_prev: &'a [f32],
    c: &'a [f32],
    dh: &'a [f32],
    dc: &'a mut [f32],
    dgates: &'a mut [f32],
    hidden: usize,
}

impl WithSimd for Backward<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let hd = self.hidden;
        let rows = self
            .gates
            .chunks_exact(4 * hd)
            .zip(self.dgates.chunks_exact_mut(4 * hd));
        let states = self.c_prev.chunks_exact(hd).zip(self.c.chunks_exact(hd));
        let grads = self.dh.chunks_exact(hd).zip(self.dc.chunks_exact_mut(hd));
        for (((row, drow), (c_prev, c)), (dh, dc)) in rows.zip(states).zip(grads) {
            let [i, f, g, o] = gates::blocks::<4>(row, hd);
            let [di, df, dg, dout] = gates::blocks_mut::<4>(drow, hd);
            zip_map(
                simd,
                [i, f, g, o, c_prev, c, dh],
                [dc, di, df, dg, dout],
                &BackwardLanes,
            );
        }
    }
}

/// One backward step. `gates`: `[B, 4H]` activated gates from [`forward`];
/// `c_prev`, `c`: `[B, H]` cell states before and after the step; `dh`:
/// `[B, H]` gradient w.r.t. `h`; `dc`: `[B, H]`, gradient w.r.t. `c` in,
/// gradient w.r.t. `c_prev` out; `dgates`: `[B, 4H]`, gradient w.r.t. the
/// pre-activations, written.
///
/// # Panics
/// If the lengths disagree with `hidden` (a broken internal invariant).
pub fn backward(
    gates: &[f32],
    c_prev: &[f32],
    c: &[f32],
    dh: &[f32],
    dc: &mut [f32],
    dgates: &mut [f32],
    hidden: usize,
) {
    let b = gates::rows::<4>(gates.len(), hidden);
    let n = b * hidden;
    assert!(c_prev.len() == n && c.len() == n && dh.len() == n && dc.len() == n);
    assert_eq!(dgates.len(), gates.len());
    dispatch(Backward {
        gates,
        c_prev,
        c,
        dh,
        dc,
        dgates,
        hidden,
    });
}

/// The buffers of a whole LSTM layer-direction's forward pass (row-major).
pub struct Sequence<'a> {
    /// `[T, B, 4H]`: the input projections with the biases in; the
    /// activated gates out (kept for backward).
    pub gates: &'a mut [f32],
    /// `[4H, H]`, the recurrent weights.
    pub w_hh: &'a [f32],
    /// `[T+1, B, H]` hidden-state slots: forward, the state before step `t`
    /// is slot `t` and after it slot `t + 1`; reverse, before is `t + 1` and
    /// after is `t`. The initial state is in place.
    pub states: &'a mut [f32],
    /// `[T+1, B, H]` cell-state slots, as `states`.
    pub cells: &'a mut [f32],
    /// `T`, `B`, `H` and the direction.
    pub shape: SeqShape,
}

/// The whole forward pass of one layer-direction: per step, `P_t += h_{t-1}
/// W_hh^T` and the fused kernel of [`forward`], with the hidden units split
/// over up to `threads` threads that walk the steps together
/// ([`crate::team`]): each thread owns a block of units (its rows of each
/// gate block of `W_hh`, its columns of `P`, `c` and `h`), so a step needs
/// no fork-join, only the others' `h_{t-1}`.
///
/// Errors: [`NoMemory`] when the packed copy of `W_hh` cannot be
/// allocated; nothing is computed then.
///
/// # Panics
/// If a buffer's length disagrees with the sizes (a broken internal
/// invariant).
pub fn forward_sequence(seq: Sequence<'_>, threads: usize) -> Result<(), NoMemory> {
    let (t_len, b, hd) = seq.shape.sizes();
    let bh = b * hd;
    assert_eq!(seq.gates.len(), t_len * b * 4 * hd, "gates");
    assert_eq!(seq.states.len(), (t_len + 1) * bh, "states");
    assert_eq!(seq.cells.len(), (t_len + 1) * bh, "cells");
    let l = Loop::new(seq.shape, 4, threads);
    let (gates, states, cells) = (
        Shared::new(seq.gates),
        Shared::new(seq.states),
        Shared::new(seq.cells),
    );
    let kernel = move |p: &Part| {
        // SAFETY: offsets inside the buffers asserted above; the kernel
        // touches only the part's units (the team's contract).
        dispatch(ForwardUnits {
            gates: unsafe { gates.get().add(p.t * b * 4 * hd) },
            c_prev: unsafe { cells.get().add(p.prev * bh) },
            c: unsafe { cells.get().add(p.out * bh) },
            h: unsafe { states.get().add(p.out * bh) },
            batch: b,
            hidden: hd,
            units: p.units.clone(),
        });
    };
    // SAFETY: the buffers have the sizes asserted above and are borrowed
    // mutably for the call; `ForwardUnits` writes only its units.
    let out = Product {
        buf: gates,
        per_step: true,
        accumulate: true,
    };
    unsafe { sequence::forward(l, seq.w_hh, out, states, &kernel) }
}

/// [`Forward`] on the units `units` of every row, through raw pointers
/// (see [`forward_sequence`] for why they are disjoint between threads).
struct ForwardUnits {
    gates: *mut f32,
    c_prev: *mut f32,
    c: *mut f32,
    h: *mut f32,
    batch: usize,
    hidden: usize,
    units: std::ops::Range<usize>,
}

impl WithSimd for ForwardUnits {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let (hd, u0, n) = (self.hidden, self.units.start, self.units.len());
        for r in 0..self.batch {
            // SAFETY: rows `r < batch` and units `u0 + n <= hidden` of
            // buffers sized `[B, 4H]` / `[B, H]` (asserted by the caller),
            // which this thread alone accesses during the step; the eight
            // slices are pairwise disjoint.
            let (row, st) = (r * 4 * hd + u0, r * hd + u0);
            let part = |p: *mut f32, at: usize| unsafe { part_mut(p, at, n) };
            let c_prev = unsafe { std::slice::from_raw_parts(self.c_prev.add(st), n) };
            let [i, f, g, o] = [0, 1, 2, 3].map(|k| part(self.gates, row + k * hd));
            zip_map(
                simd,
                [c_prev],
                [i, f, g, o, part(self.c, st), part(self.h, st)],
                &ForwardLanes,
            );
        }
    }
}

/// The buffers of a whole LSTM layer-direction's backward pass (row-major;
/// slots as in [`Sequence`]).
pub struct SequenceGrads<'a> {
    /// `[T, B, 4H]` activated gates from the forward pass.
    pub gates: &'a [f32],
    /// `[4H, H]`.
    pub w_hh: &'a [f32],
    /// `[T+1, B, H]` cell-state slots from the forward pass.
    pub cells: &'a [f32],
    /// The upstream gradient w.r.t. the outputs.
    pub up: Upstream<'a>,
    /// `[T, B, 4H]`, the gradient w.r.t. the pre-activations, written.
    pub dgates: &'a mut [f32],
    /// `[B, H]`: the gradient w.r.t. the final hidden state in, w.r.t. the
    /// initial one out.
    pub dh: &'a mut [f32],
    /// `[B, H]` scratch.
    pub dh_spare: &'a mut [f32],
    /// `[B, H]`: the gradient w.r.t. the final cell state in, w.r.t. the
    /// initial one out.
    pub dc: &'a mut [f32],
    /// `T`, `B`, `H` and the direction.
    pub shape: SeqShape,
}

/// The whole backward pass of one layer-direction (without the weight
/// gradients, which are single GEMMs over all steps): per step in reverse,
/// `dh_t += dy_t`, the fused kernel of [`backward`] giving `dP_t` and
/// `dc_{t-1}`, then `dh_{t-1} = dP_t W_hh`. The hidden units are split over
/// up to `threads` threads as in [`forward_sequence`], with two barriers per
/// step: the kernel needs only its units, the product needs all of `dP_t`.
///
/// Errors: [`NoMemory`] when the packed copy of `W_hh` cannot be
/// allocated; nothing is computed then.
///
/// # Panics
/// If a buffer's length disagrees with the sizes.
pub fn backward_sequence(g: SequenceGrads<'_>, threads: usize) -> Result<(), NoMemory> {
    let (t_len, b, hd) = g.shape.sizes();
    let (gh, bh) = (4 * hd, b * hd);
    assert_eq!(g.gates.len(), t_len * b * gh, "gates");
    assert_eq!(g.dgates.len(), t_len * b * gh, "dgates");
    assert_eq!(g.cells.len(), (t_len + 1) * bh, "cells");
    assert_eq!(g.dc.len(), bh, "dc");
    let l = Loop::new(g.shape, 4, threads);
    let (dgates, dc) = (Shared::new(g.dgates), Shared::new(g.dc));
    let (gates, cells) = (g.gates, g.cells);
    let kernel = move |p: &Part, dh: *mut f32, _: *mut f32| {
        dispatch(BackwardUnits {
            gates: &gates[p.t * b * gh..(p.t + 1) * b * gh],
            c_prev: &cells[p.prev * bh..(p.prev + 1) * bh],
            c: &cells[p.out * bh..(p.out + 1) * bh],
            dh,
            dc: dc.get(),
            // SAFETY: inside `dgates`, asserted above.
            dgates: unsafe { dgates.get().add(p.t * b * gh) },
            batch: b,
            hidden: hd,
            units: p.units.clone(),
        });
    };
    // SAFETY: the buffers have the sizes asserted above and are borrowed
    // mutably for the call; `BackwardUnits` writes only its units.
    unsafe { sequence::backward(l, g.w_hh, dgates, false, g.up, g.dh, g.dh_spare, &kernel) }
}

/// [`Backward`] on the units `units` of every row, through raw pointers
/// (disjoint between threads, see [`backward_sequence`]).
struct BackwardUnits<'a> {
    gates: &'a [f32],
    c_prev: &'a [f32],
    c: &'a [f32],
    dh: *mut f32,
    dc: *mut f32,
    dgates: *mut f32,
    batch: usize,
    hidden: usize,
    units: std::ops::Range<usize>,
}

impl WithSimd for BackwardUnits<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let (hd, u0, n) = (self.hidden, self.units.start, self.units.len());
        for r in 0..self.batch {
            let (row, st) = (r * 4 * hd + u0, r * hd + u0);
            // SAFETY: rows `r < batch`, units `u0 + n <= hidden` of buffers
            // sized `[B, 4H]` / `[B, H]`, accessed by this thread alone
            // during the phase; the slices are pairwise disjoint.
            let part = |p: *mut f32, at: usize| unsafe { part_mut(p, at, n) };
            let dh = part(self.dh, st);
            let [i, f, g, o] = [0, 1, 2, 3].map(|k| &self.gates[row + k * hd..][..n]);
            let [di, df, dg, dout] = [0, 1, 2, 3].map(|k| part(self.dgates, row + k * hd));
            zip_map(
                simd,
                [
                    i,
                    f,
                    g,
                    o,
                    &self.c_prev[st..st + n],
                    &self.c[st..st + n],
                    &*dh,
                ],
                [part(self.dc, st), di, df, dg, dout],
                &BackwardLanes,
            );
        }
    }
}

/// Scalar twins of this module's kernels.
pub mod scalar {
    use crate::math::scalar::{sigmoid, tanh};

    /// Twin of [`super::forward`].
    pub fn forward(gates: &mut [f32], c_prev: &[f32], c: &mut [f32], h: &mut [f32], hidden: usize) {
        let hd = hidden;
        for b in 0..c.len() / hd {
            let row = &mut gates[b * 4 * hd..(b + 1) * 4 * hd];
            for j in 0..hd {
                let i = sigmoid(row[j]);
                let f = sigmoid(row[hd + j]);
                let g = tanh(row[2 * hd + j]);
                let o = sigmoid(row[3 * hd + j]);
                row[j] = i;
                row[hd + j] = f;
                row[2 * hd + j] = g;
                row[3 * hd + j] = o;
                let k = b * hd + j;
                c[k] = f * c_prev[k] + i * g;
                h[k] = o * tanh(c[k]);
            }
        }
    }

    /// Twin of [`super::backward`].
    pub fn backward(
        gates: &[f32],
        c_prev: &[f32],
        c: &[f32],
        dh: &[f32],
        dc: &mut [f32],
        dgates: &mut [f32],
        hidden: usize,
    ) {
        let hd = hidden;
        for b in 0..c.len() / hd {
            let base = b * 4 * hd;
            for j in 0..hd {
                let (i, f, g, o) = (
                    gates[base + j],
                    gates[base + hd + j],
                    gates[base + 2 * hd + j],
                    gates[base + 3 * hd + j],
                );
                let k = b * hd + j;
                let tc = tanh(c[k]);
                let dct = dc[k] + dh[k] * o * (1.0 - tc * tc);
                dgates[base + j] = dct * g * i * (1.0 - i);
                dgates[base + hd + j] = dct * c_prev[k] * f * (1.0 - f);
                dgates[base + 2 * hd + j] = dct * i * (1.0 - g * g);
                dgates[base + 3 * hd + j] = dh[k] * tc * o * (1.0 - o);
                dc[k] = dct * f;
            }
        }
    }
}
