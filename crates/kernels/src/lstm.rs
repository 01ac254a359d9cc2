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

use pulp::Simd;

use crate::gates::{self, Twin};
use crate::math::{
    self,
    scalar::{sigmoid, tanh},
};
use crate::sequence::{
    self, At, BwdPhase, BwdProduct, FwdPhase, Loop, Operand, Part, Product, RecurrentMask,
    SeqShape, Shared, Slots, Src, Upstream,
};
use crate::simd::Lanes;

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

impl Twin<1, 6> for ForwardLanes {
    fn twin(&self, [cp]: [f32; 1], y: [f32; 6]) -> [f32; 6] {
        let (i, f, g, o) = (sigmoid(y[0]), sigmoid(y[1]), tanh(y[2]), sigmoid(y[3]));
        let c = f * cp + i * g;
        [i, f, g, o, c, o * tanh(c)]
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

impl Twin<7, 5> for BackwardLanes {
    fn twin(&self, [i, f, g, o, cp, c, dh]: [f32; 7], [dc, ..]: [f32; 5]) -> [f32; 5] {
        let tc = tanh(c);
        let dct = dc + dh * o * (1.0 - tc * tc);
        [
            dct * f,
            dct * g * i * (1.0 - i),
            dct * cp * f * (1.0 - f),
            dct * i * (1.0 - g * g),
            dh * tc * o * (1.0 - o),
        ]
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
    let at = Step {
        gates: gates.as_mut_ptr(),
        c_prev: c_prev.as_ptr(),
        c: c.as_mut_ptr(),
        h: h.as_mut_ptr(),
        hidden,
    };
    // SAFETY: every unit of every row of buffers of the asserted sizes,
    // borrowed for the call.
    unsafe { at.forward(b, 0..hidden) }
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
    let at = Step {
        gates: gates.as_ptr().cast_mut(),
        c_prev: c_prev.as_ptr(),
        c: c.as_ptr().cast_mut(),
        h: std::ptr::null_mut(),
        hidden,
    };
    // SAFETY: every unit of every row of buffers of the asserted sizes,
    // borrowed for the call (`gates` and `c` are only read).
    unsafe {
        at.backward(
            dh.as_ptr(),
            dc.as_mut_ptr(),
            dgates.as_mut_ptr(),
            b,
            0..hidden,
        )
    }
}

/// One step's forward buffers: `gates` `[B, 4H]`, `c_prev`, `c`, `h`
/// `[B, H]`.
struct Step {
    gates: *mut f32,
    c_prev: *const f32,
    c: *mut f32,
    h: *mut f32,
    hidden: usize,
}

impl Step {
    /// The forward kernel on units `units` of rows `0..rows`.
    ///
    /// # Safety
    /// As [`gates::on_units`] for these buffers.
    unsafe fn forward(&self, rows: usize, units: std::ops::Range<usize>) {
        let (hd, g) = (self.hidden, self.gates);
        let gate = |k: usize| (g.wrapping_add(k * hd), 4 * hd);
        let outs = [
            gate(0),
            gate(1),
            gate(2),
            gate(3),
            (self.c, hd),
            (self.h, hd),
        ];
        // SAFETY: the caller's contract.
        unsafe { gates::on_units(&ForwardLanes, [(self.c_prev, hd)], outs, rows, units) }
    }

    /// The backward kernel on units `units` of rows `0..rows`: reads the
    /// activated gates, `c_prev`, `c` and `dh` (`[B, H]`); `dc` (`[B, H]`)
    /// in and out; writes `dgates` (`[B, 4H]`).
    ///
    /// # Safety
    /// As [`gates::on_units`] for these buffers.
    unsafe fn backward(
        &self,
        dh: *const f32,
        dc: *mut f32,
        dgates: *mut f32,
        rows: usize,
        units: std::ops::Range<usize>,
    ) {
        let hd = self.hidden;
        let gate = |k: usize| (self.gates.cast_const().wrapping_add(k * hd), 4 * hd);
        let dgate = |k: usize| (dgates.wrapping_add(k * hd), 4 * hd);
        let ins = [
            gate(0),
            gate(1),
            gate(2),
            gate(3),
            (self.c_prev, hd),
            (self.c.cast_const(), hd),
            (dh, hd),
        ];
        let outs = [(dc, hd), dgate(0), dgate(1), dgate(2), dgate(3)];
        // SAFETY: the caller's contract.
        unsafe { gates::on_units(&BackwardLanes, ins, outs, rows, units) }
    }
}

/// An LSTM's projection of its output (PyTorch's `proj_size`, LSTMP): `h_t =
/// W_hr (o_t * tanh(c_t))`, a state of `P < H` units; the forward pass's
/// buffers.
#[derive(Debug)]
pub struct Projection<'a> {
    /// `[P, H]`.
    pub w_hr: &'a [f32],
    /// `[T, B, H]`, `m_t = o_t * tanh(c_t)` written (`W_hr`'s gradient
    /// multiplies these).
    pub m: &'a mut [f32],
}

/// The backward pass's buffers of a [`Projection`].
#[derive(Debug)]
pub struct ProjectionGrads<'a> {
    /// `[P, H]`.
    pub w_hr: &'a [f32],
    /// `[B, H]` scratch for the gradient w.r.t. `m_t`.
    pub dm: &'a mut [f32],
    /// `[T, B, P]`: each step's gradient w.r.t. `h_t` (upstream included),
    /// written, zero on the rows past their sequence's end (`W_hr`'s
    /// gradient is `sum_t dh_t^T m_t`).
    pub dh: &'a mut [f32],
}

/// `P` of a `[P, H]` projection.
fn projected_width(w_hr: &[f32], hidden: usize) -> usize {
    w_hr.len() / hidden.max(1)
}

/// The buffers of a whole LSTM layer-direction's forward pass (row-major;
/// `S` the state's width: `H`, or `P` with a projection).
pub struct Sequence<'a> {
    /// `[T, B, 4H]`: the input projections with the biases in; the
    /// activated gates out (kept for backward; rows past their sequence's
    /// end untouched).
    pub gates: &'a mut [f32],
    /// `[4H, S]`, the recurrent weights.
    pub w_hh: &'a [f32],
    /// `[T+1, B, S]` hidden-state slots: forward, the state before step `t`
    /// is slot `t` and after it slot `t + 1`; reverse, before is `t + 1` and
    /// after is `t`. The initial state is in place.
    pub states: &'a mut [f32],
    /// `[T+1, B, H]` cell-state slots, as `states`.
    pub cells: &'a mut [f32],
    /// The projection, if any.
    pub projection: Option<Projection<'a>>,
    /// A mask on `h_{t-1}` in the recurrent product, if any.
    pub mask: Option<RecurrentMask<'a>>,
    /// `T`, `B`, `H`, the direction and the rows inside their sequences.
    pub shape: SeqShape<'a>,
}

/// Step `t`'s buffers, between slots `prev` and `out`; `h` is `m` at `t`
/// with a projection, slot `out` of the states otherwise.
fn step(gates: Shared, h: (Shared, bool), cells: Shared, p: &Part, b: usize, hd: usize) -> Step {
    let bh = b * hd;
    let (h, at_step) = h;
    Step {
        gates: gates.at(p.t * 4 * bh),
        c_prev: cells.at(p.prev * bh),
        c: cells.at(p.out * bh),
        h: h.at((if at_step { p.t } else { p.out }) * bh),
        hidden: hd,
    }
}

/// The whole forward pass of one layer-direction: per step, `P_t += h_{t-1}
/// W_hh^T` and the fused kernel of [`forward`] (then, with a projection,
/// `h_t = m_t W_hr^T`), with the hidden units split over up to `threads`
/// threads that walk the steps together ([`crate::team`]): each thread owns
/// a block of units (its rows of each gate block of `W_hh`, its columns of
/// `P`, `c` and `h`), so a step needs no fork-join, only the others'
/// `h_{t-1}`. Rows past their sequence's end keep their `h` and `c`.
///
/// # Panics
/// If a buffer's length disagrees with the sizes (a broken internal
/// invariant).
pub fn forward_sequence(seq: Sequence<'_>, threads: usize) {
    let (t_len, b, hd) = seq.shape.sizes();
    let bh = b * hd;
    let sw = seq
        .projection
        .as_ref()
        .map_or(hd, |p| projected_width(p.w_hr, hd));
    assert_eq!(seq.gates.len(), t_len * b * 4 * hd, "gates");
    assert_eq!(seq.w_hh.len(), 4 * hd * sw, "w_hh");
    assert_eq!(seq.states.len(), (t_len + 1) * b * sw, "states");
    assert_eq!(seq.cells.len(), (t_len + 1) * bh, "cells");
    let l = Loop::new(seq.shape, 4, threads).with_state(sw);
    let (gates, states, cells) = (
        Shared::new(seq.gates),
        Shared::new(seq.states),
        Shared::new(seq.cells),
    );
    let (w_hr, m) = match seq.projection {
        Some(pr) => {
            assert_eq!(pr.w_hr.len(), sw * hd, "w_hr");
            assert_eq!(pr.m.len(), t_len * bh, "m");
            (pr.w_hr, Some(Shared::new(pr.m)))
        }
        None => (&[][..], None),
    };
    let h = m.map_or((states, false), |m| (m, true));
    let kernel = move |p: &Part| {
        let at = step(gates, h, cells, p, b, hd);
        // SAFETY: step `t`'s buffers (sizes asserted above); the part's
        // units are this thread's alone during the step (the team's
        // contract), and slot `prev` is only read.
        unsafe { at.forward(p.rows, p.units.clone()) }
    };
    let mut phases = vec![FwdPhase::into_gates(&l, seq.w_hh, gates, &kernel)];
    if let Some(m) = m {
        phases.push(FwdPhase {
            weights: w_hr,
            width: sw,
            depth: hd,
            blocks: 0..1,
            operand: Operand::PerStep(m),
            out: Product {
                buf: states,
                at: At::Slot,
                stride: sw,
                accumulate: false,
            },
            kernel: None,
        });
    }
    let slots = |buf, width| Slots { buf, width };
    // SAFETY: the buffers have the sizes asserted above and are borrowed
    // mutably for the call; the kernel writes only its units.
    unsafe { sequence::forward(l, &phases, slots(states, sw), &[slots(cells, hd)], seq.mask) }
}

/// The buffers of a whole LSTM layer-direction's backward pass (row-major;
/// slots and `S` as in [`Sequence`]).
pub struct SequenceGrads<'a> {
    /// `[T, B, 4H]` activated gates from the forward pass.
    pub gates: &'a [f32],
    /// `[4H, S]`.
    pub w_hh: &'a [f32],
    /// `[T+1, B, H]` cell-state slots from the forward pass.
    pub cells: &'a [f32],
    /// The upstream gradient w.r.t. the outputs.
    pub up: Upstream<'a>,
    /// `[T, B, 4H]`, the gradient w.r.t. the pre-activations, written (rows
    /// past their sequence's end untouched).
    pub dgates: &'a mut [f32],
    /// `[B, S]`: the gradient w.r.t. the final hidden state in, w.r.t. the
    /// initial one out.
    pub dh: &'a mut [f32],
    /// `[B, S]` scratch.
    pub dh_spare: &'a mut [f32],
    /// `[B, H]`: the gradient w.r.t. the final cell state in, w.r.t. the
    /// initial one out.
    pub dc: &'a mut [f32],
    /// The forward pass's projection, if any.
    pub projection: Option<ProjectionGrads<'a>>,
    /// The forward pass's mask (with `[B, S]` scratch), if any.
    pub mask: Option<RecurrentMask<'a>>,
    /// `T`, `B`, `H`, the direction and the rows inside their sequences.
    pub shape: SeqShape<'a>,
}

/// The whole backward pass of one layer-direction (without the weight
/// gradients, which are GEMMs over all steps): per step in reverse,
/// `dh_t += dy_t` (with a projection, `dm_t = dh_t W_hr`), the fused
/// kernel of [`backward`] giving `dP_t` and `dc_{t-1}`, then `dh_{t-1} =
/// dP_t W_hh`. The hidden units are split over up to `threads` threads as
/// in [`forward_sequence`], with two barriers per step: the kernel needs
/// only its units, the product needs all of `dP_t`. Rows past their
/// sequence's end pass `dh` and `dc` through.
///
/// # Panics
/// If a buffer's length disagrees with the sizes.
pub fn backward_sequence(g: SequenceGrads<'_>, threads: usize) {
    let (t_len, b, hd) = g.shape.sizes();
    let (gh, bh) = (4 * hd, b * hd);
    let sw = g
        .projection
        .as_ref()
        .map_or(hd, |p| projected_width(p.w_hr, hd));
    assert_eq!(g.gates.len(), t_len * b * gh, "gates");
    assert_eq!(g.dgates.len(), t_len * b * gh, "dgates");
    assert_eq!(g.w_hh.len(), gh * sw, "w_hh");
    assert_eq!(g.cells.len(), (t_len + 1) * bh, "cells");
    assert_eq!(g.dc.len(), bh, "dc");
    let l = Loop::new(g.shape, 4, threads).with_state(sw);
    let (dgates, dc) = (Shared::new(g.dgates), Shared::new(g.dc));
    let (gates, cells) = (Shared::read(g.gates), Shared::read(g.cells));
    let (w_hr, dm, record) = match g.projection {
        Some(pr) => {
            assert_eq!(pr.w_hr.len(), sw * hd, "w_hr");
            assert_eq!(pr.dm.len(), bh, "dm");
            (pr.w_hr, Some(Shared::new(pr.dm)), Some(pr.dh))
        }
        None => (&[][..], None, None),
    };
    let kernel = move |p: &Part, dh: *mut f32, _: *mut f32| {
        // Read only, through the same `Step` as forward (without `h`).
        let at = step(gates, (Shared(std::ptr::null_mut()), true), cells, p, b, hd);
        let dg = dgates.at(p.t * b * gh);
        let dh = dm.map_or(dh, Shared::get);
        // SAFETY: step `t`'s buffers (sizes asserted above), read except
        // the part's units of `dc` and `dP_t`, this thread's alone during
        // the phase.
        unsafe { at.backward(dh, dc.get(), dg, p.rows, p.units.clone()) }
    };
    let [first, second] = BwdPhase::one_product(&l, g.w_hh, &kernel, dgates, false);
    let first = match dm {
        Some(dm) => BwdPhase {
            product: Some(BwdProduct {
                weights: w_hr,
                width: hd,
                depth: sw,
                src: Src::Grad,
                dst: Some(dm),
                accumulate: false,
            }),
            ..first
        },
        None => first,
    };
    // SAFETY: the buffers have the sizes asserted above and are borrowed
    // for the call; the kernel writes only its units.
    unsafe { sequence::backward(l, &[first, second], g.up, g.dh, g.dh_spare, g.mask, record) }
}
