//! Fused GRU step kernels, both variants (gate order `r, z, n`, PyTorch's).
//!
//! Layout: `gates` is `[B, 3H]` row-major, each row the blocks `[r | z | n]`;
//! states are `[B, H]`. Update: `h = (1 - z) * n + z * h_prev`.
//!
//! **Linear before reset** (PyTorch, cuDNN): `n = tanh(X_n + r * (W_hn h_prev + b_hn))`.
//! The step takes the input projection `gates = x W_ih^T + b_ih (+ b_hr, b_hz)`
//! and the recurrent projection `hw = h_prev W_hh^T` separately, because the
//! reset gate multiplies the `n` part of the latter only:
//! [`lbr_forward`], [`lbr_backward`].
//!
//! **Reset before linear** (Cho et al. 2014): `n = tanh(X_n + W_hn (r * h_prev) + b_hn)`.
//! The step needs the reset gate before the `n` block's recurrent product, so
//! it is split in two kernels around that product: [`rbl_forward_rz`] then
//! [`rbl_forward_n`]; backward: [`rbl_backward_n`] then [`rbl_backward_r`].

use std::ops::Range;

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

// ---------------------------------------------------------------- lane bodies

/// `dn = dh (1 - z) (1 - n^2)` and `dz = dh (h_prev - n) z (1 - z)`.
#[inline(always)]
fn update_grads<S: Simd>(
    simd: S,
    z: S::f32s,
    n: S::f32s,
    hp: S::f32s,
    dh: S::f32s,
) -> (S::f32s, S::f32s) {
    let one = simd.splat_f32s(1.0);
    let dn = simd.mul_f32s(
        simd.mul_f32s(dh, simd.sub_f32s(one, z)),
        simd.negate_mul_add_f32s(n, n, one),
    );
    let dz = simd.mul_f32s(
        simd.mul_f32s(dh, simd.sub_f32s(hp, n)),
        simd.mul_f32s(z, simd.sub_f32s(one, z)),
    );
    (dn, dz)
}

/// `h = (1 - z) n + z h_prev = n + z (h_prev - n)`.
#[inline(always)]
fn update<S: Simd>(simd: S, z: S::f32s, n: S::f32s, hp: S::f32s) -> S::f32s {
    simd.mul_add_f32s(z, simd.sub_f32s(hp, n), n)
}

/// `x (1 - x)`.
#[inline(always)]
fn sigmoid_slope<S: Simd>(simd: S, x: S::f32s) -> S::f32s {
    simd.mul_f32s(x, simd.sub_f32s(simd.splat_f32s(1.0), x))
}

/// Inputs `[hw_r, hw_z, hw_n, b_hn, h_prev]`; read-write `[r, z, n, h, hn]`
/// (pre-activations in).
struct LbrForwardLanes;

impl Lanes<5, 5> for LbrForwardLanes {
    #[inline(always)]
    fn apply<S: Simd>(&self, simd: S, x: [S::f32s; 5], y: [S::f32s; 5]) -> [S::f32s; 5] {
        let [hr, hz, hnn, bn, hp] = x;
        let [pr, pz, pn, _, _] = y;
        let r = math::sigmoid(simd, simd.add_f32s(pr, hr));
        let z = math::sigmoid(simd, simd.add_f32s(pz, hz));
        let hn = simd.add_f32s(hnn, bn);
        let n = math::tanh(simd, simd.mul_add_f32s(r, hn, pn));
        [r, z, n, update(simd, z, n, hp), hn]
    }
}

impl Twin<5, 5> for LbrForwardLanes {
    fn twin(&self, [hr, hz, hnn, bn, hp]: [f32; 5], y: [f32; 5]) -> [f32; 5] {
        let (r, z) = (sigmoid(y[0] + hr), sigmoid(y[1] + hz));
        let hn = hnn + bn;
        let n = tanh(y[2] + r * hn);
        [r, z, n, (1.0 - z) * n + z * hp, hn]
    }
}

/// Inputs `[r, z, n, hn, h_prev, dh]`; written `[dr, dz, dn, dhw_r, dhw_z,
/// dhw_n, dh_prev]`.
struct LbrBackwardLanes;

impl Lanes<6, 7> for LbrBackwardLanes {
    #[inline(always)]
    fn apply<S: Simd>(&self, simd: S, x: [S::f32s; 6], _: [S::f32s; 7]) -> [S::f32s; 7] {
        let [r, z, n, hn, hp, dh] = x;
        let (dn, dz) = update_grads(simd, z, n, hp, dh);
        let dr = simd.mul_f32s(simd.mul_f32s(dn, hn), sigmoid_slope(simd, r));
        [
            dr,
            dz,
            dn,
            dr,
            dz,
            simd.mul_f32s(dn, r),
            simd.mul_f32s(dh, z),
        ]
    }
}

impl Twin<6, 7> for LbrBackwardLanes {
    fn twin(&self, [r, z, n, hn, hp, dh]: [f32; 6], _: [f32; 7]) -> [f32; 7] {
        let (dn, dz) = twin_update_grads(z, n, hp, dh);
        let dr = dn * hn * r * (1.0 - r);
        [dr, dz, dn, dr, dz, dn * r, dh * z]
    }
}

/// Inputs `[h_prev]`; read-write `[r, z, r * h_prev]` (pre-activations in).
struct RblForwardRzLanes;

impl Lanes<1, 3> for RblForwardRzLanes {
    #[inline(always)]
    fn apply<S: Simd>(&self, simd: S, [hp]: [S::f32s; 1], y: [S::f32s; 3]) -> [S::f32s; 3] {
        let r = math::sigmoid(simd, y[0]);
        let z = math::sigmoid(simd, y[1]);
        [r, z, simd.mul_f32s(r, hp)]
    }
}

impl Twin<1, 3> for RblForwardRzLanes {
    fn twin(&self, [hp]: [f32; 1], y: [f32; 3]) -> [f32; 3] {
        let r = sigmoid(y[0]);
        [r, sigmoid(y[1]), r * hp]
    }
}

/// Inputs `[z, h_prev]`; read-write `[n, h]` (pre-activation of `n` in).
struct RblForwardNLanes;

impl Lanes<2, 2> for RblForwardNLanes {
    #[inline(always)]
    fn apply<S: Simd>(&self, simd: S, [z, hp]: [S::f32s; 2], y: [S::f32s; 2]) -> [S::f32s; 2] {
        let n = math::tanh(simd, y[0]);
        [n, update(simd, z, n, hp)]
    }
}

impl Twin<2, 2> for RblForwardNLanes {
    fn twin(&self, [z, hp]: [f32; 2], y: [f32; 2]) -> [f32; 2] {
        let n = tanh(y[0]);
        [n, (1.0 - z) * n + z * hp]
    }
}

/// Inputs `[z, n, h_prev, dh]`; written `[dz, dn, dh_prev]`.
struct RblBackwardNLanes;

impl Lanes<4, 3> for RblBackwardNLanes {
    #[inline(always)]
    fn apply<S: Simd>(
        &self,
        simd: S,
        [z, n, hp, dh]: [S::f32s; 4],
        _: [S::f32s; 3],
    ) -> [S::f32s; 3] {
        let (dn, dz) = update_grads(simd, z, n, hp, dh);
        [dz, dn, simd.mul_f32s(dh, z)]
    }
}

impl Twin<4, 3> for RblBackwardNLanes {
    fn twin(&self, [z, n, hp, dh]: [f32; 4], _: [f32; 3]) -> [f32; 3] {
        let (dn, dz) = twin_update_grads(z, n, hp, dh);
        [dz, dn, dh * z]
    }
}

/// Inputs `[r, h_prev, d(r h)]`; read-write `[dr, dh_prev]`.
struct RblBackwardRLanes;

impl Lanes<3, 2> for RblBackwardRLanes {
    #[inline(always)]
    fn apply<S: Simd>(&self, simd: S, [r, hp, drh]: [S::f32s; 3], y: [S::f32s; 2]) -> [S::f32s; 2] {
        let dr = simd.mul_f32s(simd.mul_f32s(drh, hp), sigmoid_slope(simd, r));
        [dr, simd.mul_add_f32s(drh, r, y[1])]
    }
}

impl Twin<3, 2> for RblBackwardRLanes {
    fn twin(&self, [r, hp, drh]: [f32; 3], y: [f32; 2]) -> [f32; 2] {
        [drh * hp * r * (1.0 - r), y[1] + drh * r]
    }
}

/// The twin of [`update_grads`].
fn twin_update_grads(z: f32, n: f32, hp: f32, dh: f32) -> (f32, f32) {
    (
        dh * (1.0 - z) * (1.0 - n * n),
        dh * (hp - n) * z * (1.0 - z),
    )
}

// ---------------------------------------------------------------- one step

/// What every kernel of one GRU step reads: `gates` `[B, 3H]` (activated
/// by the forward kernels) and `h_prev` `[B, H]`. Each kernel takes the
/// other buffers it reads or writes, `[B, H]` or `[B, 3H]` (`dgates`,
/// `dhw`, `hw`).
#[derive(Clone, Copy)]
struct Step {
    gates: *mut f32,
    h_prev: *const f32,
    hidden: usize,
}

impl Step {
    /// The step over whole slices (`gates` `gates_len` values at `gates`)
    /// and its rows `B`.
    ///
    /// # Panics
    /// If `gates_len` is not a multiple of `3H`, or `h_prev` or a length
    /// of `states` is not `B * H` (a broken internal invariant).
    fn whole(
        gates: (*mut f32, usize),
        h_prev: &[f32],
        hidden: usize,
        states: &[usize],
    ) -> (Self, usize) {
        let b = gates::rows::<3>(gates.1, hidden);
        assert!(
            h_prev.len() == b * hidden && states.iter().all(|&l| l == b * hidden),
            "gru kernel: state length"
        );
        let at = Self {
            gates: gates.0,
            h_prev: h_prev.as_ptr(),
            hidden,
        };
        (at, b)
    }

    /// Gate block `k` of a `[B, 3H]` buffer, read.
    fn block(&self, p: *const f32, k: usize) -> gates::In {
        (p.wrapping_add(k * self.hidden), 3 * self.hidden)
    }
    /// Gate block `k` of a `[B, 3H]` buffer, written.
    fn block_mut(&self, p: *mut f32, k: usize) -> gates::Out {
        (p.wrapping_add(k * self.hidden), 3 * self.hidden)
    }
    fn gate(&self, k: usize) -> gates::Out {
        self.block_mut(self.gates, k)
    }
    fn gate_in(&self, k: usize) -> gates::In {
        self.block(self.gates, k)
    }
    fn state_in(&self, p: *const f32) -> gates::In {
        (p, self.hidden)
    }
    fn state(&self, p: *mut f32) -> gates::Out {
        (p, self.hidden)
    }

    /// Linear before reset, forward: `hw` `[B, 3H]` and `b_hn` `[H]` in;
    /// `h` and `hn = W_hn h_prev + b_hn` written.
    ///
    /// # Safety
    /// As [`gates::on_units`] for these buffers.
    unsafe fn lbr_forward(
        &self,
        (hw, b_hn): (*const f32, *const f32),
        (h, hn): (*mut f32, *mut f32),
        rows: usize,
        units: Range<usize>,
    ) {
        let hw = |k| self.block(hw, k);
        let ins = [hw(0), hw(1), hw(2), (b_hn, 0), self.state_in(self.h_prev)];
        let outs = [
            self.gate(0),
            self.gate(1),
            self.gate(2),
            self.state(h),
            self.state(hn),
        ];
        // SAFETY: the caller's contract.
        unsafe { gates::on_units(&LbrForwardLanes, ins, outs, rows, units) }
    }

    /// Linear before reset, backward, from `hn` and `dh`: `dgates`, `dhw`
    /// (`[B, 3H]`) and the direct part `dh * z` of `dh_prev`.
    ///
    /// # Safety
    /// As [`gates::on_units`] for these buffers.
    unsafe fn lbr_backward(
        &self,
        (hn, dh): (*const f32, *const f32),
        (dgates, dhw, dh_prev): (*mut f32, *mut f32, *mut f32),
        rows: usize,
        units: Range<usize>,
    ) {
        let ins = [
            self.gate_in(0),
            self.gate_in(1),
            self.gate_in(2),
            self.state_in(hn),
            self.state_in(self.h_prev),
            self.state_in(dh),
        ];
        let (dg, dw) = (|k| self.block_mut(dgates, k), |k| self.block_mut(dhw, k));
        let outs = [
            dg(0),
            dg(1),
            dg(2),
            dw(0),
            dw(1),
            dw(2),
            self.state(dh_prev),
        ];
        // SAFETY: the caller's contract.
        unsafe { gates::on_units(&LbrBackwardLanes, ins, outs, rows, units) }
    }

    /// Reset before linear, forward, first half: activates `r`, `z` and
    /// writes `rh = r * h_prev`.
    ///
    /// # Safety
    /// As [`gates::on_units`] for these buffers.
    unsafe fn rbl_forward_rz(&self, rh: *mut f32, rows: usize, units: Range<usize>) {
        let outs = [self.gate(0), self.gate(1), self.state(rh)];
        let ins = [self.state_in(self.h_prev)];
        // SAFETY: the caller's contract.
        unsafe { gates::on_units(&RblForwardRzLanes, ins, outs, rows, units) }
    }

    /// Reset before linear, forward, second half: activates `n`, writes `h`.
    ///
    /// # Safety
    /// As [`gates::on_units`] for these buffers.
    unsafe fn rbl_forward_n(&self, h: *mut f32, rows: usize, units: Range<usize>) {
        let ins = [self.gate_in(1), self.state_in(self.h_prev)];
        let outs = [self.gate(2), self.state(h)];
        // SAFETY: the caller's contract.
        unsafe { gates::on_units(&RblForwardNLanes, ins, outs, rows, units) }
    }

    /// Reset before linear, backward, first half, from `dh`: the `z` and `n`
    /// blocks of `dgates` and the direct part `dh * z` of `dh_prev`.
    ///
    /// # Safety
    /// As [`gates::on_units`] for these buffers.
    unsafe fn rbl_backward_n(
        &self,
        dh: *const f32,
        (dgates, dh_prev): (*mut f32, *mut f32),
        rows: usize,
        units: Range<usize>,
    ) {
        let ins = [
            self.gate_in(1),
            self.gate_in(2),
            self.state_in(self.h_prev),
            self.state_in(dh),
        ];
        let dg = |k| self.block_mut(dgates, k);
        let outs = [dg(1), dg(2), self.state(dh_prev)];
        // SAFETY: the caller's contract.
        unsafe { gates::on_units(&RblBackwardNLanes, ins, outs, rows, units) }
    }

    /// Reset before linear, backward, second half, from `drh` (the gradient
    /// w.r.t. `r * h_prev`): the `r` block of `dgates`, and `dh_prev +=
    /// drh * r`.
    ///
    /// # Safety
    /// As [`gates::on_units`] for these buffers.
    unsafe fn rbl_backward_r(
        &self,
        drh: *const f32,
        (dgates, dh_prev): (*mut f32, *mut f32),
        rows: usize,
        units: Range<usize>,
    ) {
        let ins = [
            self.gate_in(0),
            self.state_in(self.h_prev),
            self.state_in(drh),
        ];
        let outs = [self.block_mut(dgates, 0), self.state(dh_prev)];
        // SAFETY: the caller's contract.
        unsafe { gates::on_units(&RblBackwardRLanes, ins, outs, rows, units) }
    }
}

// ---------------------------------------------------------------- linear before reset

/// One forward step, linear-before-reset variant.
///
/// `gates`: `[B, 3H]`, the input projection in (with `b_ih`, and `b_hh` for the
/// `r` and `z` blocks), activated `r, z, n` out; `hw`: `[B, 3H]`, `h_prev W_hh^T`
/// without bias; `b_hn`: `[H]` (zeros without bias); `h_prev`: `[B, H]`;
/// `h`: `[B, H]`, written; `hn`: `[B, H]`, `W_hn h_prev + b_hn` written (kept
/// for backward).
///
/// # Panics
/// If the lengths disagree with `hidden` (a broken internal invariant).
pub fn lbr_forward(
    gates: &mut [f32],
    hw: &[f32],
    b_hn: &[f32],
    h_prev: &[f32],
    h: &mut [f32],
    hn: &mut [f32],
    hidden: usize,
) {
    assert!(
        hw.len() == gates.len() && b_hn.len() == hidden,
        "gru kernel: hw, b_hn"
    );
    let (at, b) = Step::whole(
        (gates.as_mut_ptr(), gates.len()),
        h_prev,
        hidden,
        &[h.len(), hn.len()],
    );
    let ins = (hw.as_ptr(), b_hn.as_ptr());
    // SAFETY: every unit of every row of buffers of the asserted sizes.
    unsafe { at.lbr_forward(ins, (h.as_mut_ptr(), hn.as_mut_ptr()), b, 0..hidden) }
}

/// One backward step, linear-before-reset variant.
///
/// `gates`: `[B, 3H]` activated `r, z, n`; `hn`: `[B, H]` from [`lbr_forward`];
/// `h_prev`, `dh`: `[B, H]`. Written: `dgates`: `[B, 3H]`, gradient w.r.t. the
/// input projection; `dhw`: `[B, 3H]`, w.r.t. the recurrent projection
/// (`hw + [0, 0, b_hn]`); `dh_prev`: `[B, H]`, the direct part `dh * z` of the
/// gradient w.r.t. `h_prev` (the caller adds `dhw W_hh`).
///
/// # Panics
/// If the lengths disagree with `hidden` (a broken internal invariant).
#[allow(clippy::too_many_arguments)]
pub fn lbr_backward(
    gates: &[f32],
    hn: &[f32],
    h_prev: &[f32],
    dh: &[f32],
    dgates: &mut [f32],
    dhw: &mut [f32],
    dh_prev: &mut [f32],
    hidden: usize,
) {
    assert!(
        dgates.len() == gates.len() && dhw.len() == gates.len(),
        "gru kernel: dgates, dhw"
    );
    let gates = (gates.as_ptr().cast_mut(), gates.len());
    let (at, b) = Step::whole(gates, h_prev, hidden, &[hn.len(), dh.len(), dh_prev.len()]);
    let outs = (dgates.as_mut_ptr(), dhw.as_mut_ptr(), dh_prev.as_mut_ptr());
    // SAFETY: every unit of every row of buffers of the asserted sizes
    // (`gates` only read).
    unsafe { at.lbr_backward((hn.as_ptr(), dh.as_ptr()), outs, b, 0..hidden) }
}

// ---------------------------------------------------------------- reset before linear

/// First half of a reset-before-linear forward step.
///
/// `gates`: `[B, 3H]`; its `r` and `z` blocks hold the full pre-activations
/// (input and recurrent projections, all biases) and are activated in place;
/// the `n` block is not touched. `h_prev`: `[B, H]`; `rh`: `[B, H]`,
/// `r * h_prev` written (the operand of the `n` block's recurrent product).
///
/// # Panics
/// If the lengths disagree with `hidden` (a broken internal invariant).
pub fn rbl_forward_rz(gates: &mut [f32], h_prev: &[f32], rh: &mut [f32], hidden: usize) {
    let (at, b) = Step::whole(
        (gates.as_mut_ptr(), gates.len()),
        h_prev,
        hidden,
        &[rh.len()],
    );
    // SAFETY: every unit of every row of buffers of the asserted sizes.
    unsafe { at.rbl_forward_rz(rh.as_mut_ptr(), b, 0..hidden) }
}

/// Second half of a reset-before-linear forward step.
///
/// `gates`: `[B, 3H]`, `z` activated by [`rbl_forward_rz`], `n` block holding
/// its full pre-activation (activated in place); `h_prev`: `[B, H]`; `h`:
/// `[B, H]`, written.
///
/// # Panics
/// If the lengths disagree with `hidden` (a broken internal invariant).
pub fn rbl_forward_n(gates: &mut [f32], h_prev: &[f32], h: &mut [f32], hidden: usize) {
    let (at, b) = Step::whole(
        (gates.as_mut_ptr(), gates.len()),
        h_prev,
        hidden,
        &[h.len()],
    );
    // SAFETY: every unit of every row of buffers of the asserted sizes.
    unsafe { at.rbl_forward_n(h.as_mut_ptr(), b, 0..hidden) }
}

/// The two halves of a reset-before-linear backward step, over whole
/// slices: `gates` `[B, 3H]` activated; `h_prev`, `d` (`dh` or `drh`),
/// `dh_prev` `[B, H]`; `dgates` `[B, 3H]`.
fn rbl_backward(
    gates: &[f32],
    h_prev: &[f32],
    d: &[f32],
    (dgates, dh_prev): (&mut [f32], &mut [f32]),
    hidden: usize,
    first_half: bool,
) {
    assert_eq!(dgates.len(), gates.len(), "gru kernel: dgates");
    let gates = (gates.as_ptr().cast_mut(), gates.len());
    let (at, b) = Step::whole(gates, h_prev, hidden, &[d.len(), dh_prev.len()]);
    let outs = (dgates.as_mut_ptr(), dh_prev.as_mut_ptr());
    // SAFETY: every unit of every row of buffers of the asserted sizes
    // (`gates` only read).
    unsafe {
        if first_half {
            at.rbl_backward_n(d.as_ptr(), outs, b, 0..hidden)
        } else {
            at.rbl_backward_r(d.as_ptr(), outs, b, 0..hidden)
        }
    }
}

/// First half of a reset-before-linear backward step.
///
/// `gates`: `[B, 3H]` activated; `h_prev`, `dh`: `[B, H]`. Written: the `z`
/// and `n` blocks of `dgates` (`[B, 3H]`, gradients w.r.t. pre-activations);
/// `dh_prev`: `[B, H]`, the direct part `dh * z`. The caller then forms
/// `d(r h) = dgates_n W_hn` for [`rbl_backward_r`].
///
/// # Panics
/// If the lengths disagree with `hidden` (a broken internal invariant).
pub fn rbl_backward_n(
    gates: &[f32],
    h_prev: &[f32],
    dh: &[f32],
    dgates: &mut [f32],
    dh_prev: &mut [f32],
    hidden: usize,
) {
    rbl_backward(gates, h_prev, dh, (dgates, dh_prev), hidden, true)
}

/// Second half of a reset-before-linear backward step.
///
/// `gates`: `[B, 3H]` activated; `h_prev`: `[B, H]`; `drh`: `[B, H]`, the
/// gradient w.r.t. `r * h_prev`. Written: the `r` block of `dgates`; `dh_prev`
/// (`[B, H]`) accumulates `drh * r`.
///
/// # Panics
/// If the lengths disagree with `hidden` (a broken internal invariant).
pub fn rbl_backward_r(
    gates: &[f32],
    h_prev: &[f32],
    drh: &[f32],
    dgates: &mut [f32],
    dh_prev: &mut [f32],
    hidden: usize,
) {
    rbl_backward(gates, h_prev, drh, (dgates, dh_prev), hidden, false)
}

// ---------------------------------------------------------------- whole sequences

/// The buffers of a whole GRU layer-direction's forward pass (row-major;
/// state slots as in [`crate::lstm::Sequence`]), either form.
pub struct Sequence<'a> {
    /// `[T, B, 3H]`: the input projections in (as [`lbr_forward`]'s
    /// `gates`, or with every bias folded in for reset before linear),
    /// activated `r, z, n` out (rows past their sequence's end untouched).
    pub gates: &'a mut [f32],
    /// `[3H, H]`.
    pub w_hh: &'a [f32],
    /// `[T+1, B, H]` hidden-state slots, the initial state in place.
    pub states: &'a mut [f32],
    /// `[T, B, H]` kept for backward, written: `W_hn h_{t-1} + b_hn`
    /// (linear before reset) or `r * h_{t-1}` (reset before linear).
    pub saved: &'a mut [f32],
    /// The form, with what only linear before reset needs.
    pub form: Form<'a>,
    /// A mask on `h_{t-1}` in the recurrent product, if any (linear before
    /// reset only: the other form's `r * h_{t-1}` would need the masked
    /// state in its kernels).
    pub mask: Option<RecurrentMask<'a>>,
    /// `T`, `B`, `H`, the direction and the rows inside their sequences.
    pub shape: SeqShape<'a>,
}

/// A GRU form and the forward buffers only it needs.
pub enum Form<'a> {
    /// PyTorch's: `hw` is `[B, 3H]` scratch for `h_{t-1} W_hh^T`, `b_hn`
    /// `[H]` (zeros without bias).
    LinearBeforeReset {
        /// `[B, 3H]` scratch.
        hw: &'a mut [f32],
        /// `[H]`.
        b_hn: &'a [f32],
    },
    /// Cho et al.'s: every bias folded into the input projection.
    ResetBeforeLinear,
}

/// The whole forward pass of one layer-direction, the hidden units split
/// over up to `threads` threads ([`crate::team`]). Linear before reset,
/// per step: each thread's columns of `h_{t-1} W_hh^T`, then
/// [`lbr_forward`] on its units. Reset before linear, per step in two
/// phases: the `r, z` blocks' product and [`rbl_forward_rz`], then (once
/// all of `r * h_{t-1}` is there) the `n` block's product and
/// [`rbl_forward_n`]. Rows past their sequence's end keep their state.
///
/// # Panics
/// If a buffer's length disagrees with the sizes, or with a mask on the
/// reset-before-linear form.
pub fn forward_sequence(seq: Sequence<'_>, threads: usize) {
    let (t_len, b, hd) = seq.shape.sizes();
    let (gh, bh) = (3 * hd, b * hd);
    assert_eq!(seq.gates.len(), t_len * b * gh, "gates");
    assert_eq!(seq.w_hh.len(), gh * hd, "w_hh");
    assert_eq!(seq.states.len(), (t_len + 1) * bh, "states");
    assert_eq!(seq.saved.len(), t_len * bh, "saved");
    let l = Loop::new(seq.shape, 3, threads);
    let (gates, states, saved) = (
        Shared::new(seq.gates),
        Shared::new(seq.states),
        Shared::new(seq.saved),
    );
    let step = move |p: &Part| Step {
        gates: gates.at(p.t * b * gh),
        h_prev: states.at(p.prev * bh),
        hidden: hd,
    };
    // The step's output state and what it keeps for backward.
    let (h, kept) = (
        move |p: &Part| states.at(p.out * bh),
        move |p: &Part| saved.at(p.t * bh),
    );
    let into = |buf, at| Product {
        buf,
        at,
        stride: gh,
        accumulate: matches!(at, At::Step),
    };
    let phase = |blocks: std::ops::Range<usize>, operand, out, kernel| FwdPhase {
        weights: seq.w_hh,
        width: hd,
        depth: hd,
        blocks,
        operand,
        out,
        kernel: Some(kernel),
    };
    let states = Slots {
        buf: states,
        width: hd,
    };
    // SAFETY (every kernel below): step `t`'s buffers, of the sizes
    // asserted here; the part's units are this thread's alone during the
    // phase (the team's contract), and slot `prev` is only read.
    match seq.form {
        Form::LinearBeforeReset { hw, b_hn } => {
            assert_eq!(hw.len(), b * gh, "hw");
            assert_eq!(b_hn.len(), hd, "b_hn");
            let hw = Shared::new(hw);
            let kernel = move |p: &Part| unsafe {
                let ins = (hw.get().cast_const(), b_hn.as_ptr());
                step(p).lbr_forward(ins, (h(p), kept(p)), p.rows, p.units.clone())
            };
            let phases = [phase(0..3, Operand::Prev, into(hw, At::Fixed), &kernel)];
            // SAFETY: sizes asserted above; the kernel touches only its
            // units.
            unsafe { sequence::forward(l, &phases, states, &[], seq.mask) }
        }
        Form::ResetBeforeLinear => {
            assert!(
                seq.mask.is_none(),
                "gru: a recurrent mask on the reset-before-linear form"
            );
            let rz =
                move |p: &Part| unsafe { step(p).rbl_forward_rz(kept(p), p.rows, p.units.clone()) };
            let n = move |p: &Part| unsafe { step(p).rbl_forward_n(h(p), p.rows, p.units.clone()) };
            let phases = [
                phase(0..2, Operand::Prev, into(gates, At::Step), &rz),
                phase(2..3, Operand::PerStep(saved), into(gates, At::Step), &n),
            ];
            // SAFETY: sizes asserted above; the kernels touch only their
            // units.
            unsafe { sequence::forward(l, &phases, states, &[], None) }
        }
    }
}

/// The buffers of a whole GRU layer-direction's backward pass (the weight
/// gradients excepted), either form.
pub struct SequenceGrads<'a> {
    /// `[T, B, 3H]` activated gates.
    pub gates: &'a [f32],
    /// `[T, B, H]` from [`forward_sequence`].
    pub saved: &'a [f32],
    /// `[T+1, B, H]` hidden-state slots.
    pub states: &'a [f32],
    /// `[3H, H]`.
    pub w_hh: &'a [f32],
    /// The upstream gradient w.r.t. the outputs.
    pub up: Upstream<'a>,
    /// `[T, B, 3H]`, the gradient w.r.t. the input projections, written
    /// (rows past their sequence's end untouched).
    pub dgates: &'a mut [f32],
    /// Linear before reset: `[T, B, 3H]`, the gradient w.r.t. the recurrent
    /// products, written. Reset before linear: `[B, H]` scratch for the
    /// gradient w.r.t. `r * h_{t-1}`.
    pub dhw: &'a mut [f32],
    /// `[B, H]`: gradient w.r.t. the final hidden state in, initial out.
    pub dh: &'a mut [f32],
    /// `[B, H]` scratch.
    pub dh_spare: &'a mut [f32],
    /// Which form.
    pub reset_after: bool,
    /// The forward pass's mask (with `[B, H]` scratch), if any.
    pub mask: Option<RecurrentMask<'a>>,
    /// `T`, `B`, `H`, the direction and the rows inside their sequences.
    pub shape: SeqShape<'a>,
}

/// The whole backward pass of one layer-direction. Linear before reset,
/// per step in reverse: `dh_t += dy_t`, [`lbr_backward`] on each thread's
/// units, then its columns of `dh_{t-1} += dhw_t W_hh`. Reset before
/// linear: [`rbl_backward_n`], then `d(r h) = dP_n W_hn` and
/// [`rbl_backward_r`], then `dh_{t-1} += dP_{r,z} W_h{r,z}`. Rows past their
/// sequence's end pass `dh` through.
///
/// # Panics
/// If a buffer's length disagrees with the sizes.
pub fn backward_sequence(g: SequenceGrads<'_>, threads: usize) {
    let (t_len, b, hd) = g.shape.sizes();
    let (gh, bh) = (3 * hd, b * hd);
    assert_eq!(g.gates.len(), t_len * b * gh, "gates");
    assert_eq!(g.dgates.len(), g.gates.len(), "dgates");
    assert_eq!(g.w_hh.len(), gh * hd, "w_hh");
    let dhw_len = if g.reset_after { g.gates.len() } else { bh };
    assert_eq!(g.dhw.len(), dhw_len, "dhw");
    assert_eq!(g.saved.len(), t_len * bh, "saved");
    assert_eq!(g.states.len(), (t_len + 1) * bh, "states");
    let l = Loop::new(g.shape, 3, threads);
    let (dgates, dhw) = (Shared::new(g.dgates), Shared::new(g.dhw));
    let (gates, saved, states) = (
        Shared::read(g.gates),
        Shared::read(g.saved),
        Shared::read(g.states),
    );
    // Read only, through the same `Step` as forward.
    let step = move |p: &Part| Step {
        gates: gates.at(p.t * b * gh),
        h_prev: states.at(p.prev * bh),
        hidden: hd,
    };
    let dg = move |p: &Part| dgates.at(p.t * b * gh);
    // SAFETY (every kernel below): step `t`'s buffers, of the sizes
    // asserted here, read except the part's units of `dgates`, `dhw` and
    // `dh_prev`, this thread's alone during the phase.
    if g.reset_after {
        let kernel = move |p: &Part, dh: *mut f32, dh_prev: *mut f32| unsafe {
            let ins = (saved.at(p.t * bh).cast_const(), dh.cast_const());
            let outs = (dg(p), dhw.at(p.t * b * gh), dh_prev);
            step(p).lbr_backward(ins, outs, p.rows, p.units.clone())
        };
        let phases = BwdPhase::one_product(&l, g.w_hh, &kernel, dhw, true);
        // SAFETY: sizes asserted above; the kernel touches only its units.
        unsafe { sequence::backward(l, &phases, g.up, g.dh, g.dh_spare, g.mask, None) }
    } else {
        assert!(
            g.mask.is_none(),
            "gru: a recurrent mask on the reset-before-linear form"
        );
        let n = move |p: &Part, dh: *mut f32, dh_prev: *mut f32| unsafe {
            step(p).rbl_backward_n(dh, (dg(p), dh_prev), p.rows, p.units.clone())
        };
        let r = move |p: &Part, _: *mut f32, dh_prev: *mut f32| unsafe {
            let drh = dhw.get().cast_const();
            step(p).rbl_backward_r(drh, (dg(p), dh_prev), p.rows, p.units.clone())
        };
        // `dst (+)= dP_t[:, blocks] W_hh[blocks, :]`.
        let product = |blocks: std::ops::Range<usize>, dst, accumulate| BwdProduct {
            weights: &g.w_hh[blocks.start * hd * hd..],
            width: hd,
            depth: blocks.len() * hd,
            src: Src::PerStep {
                buf: dgates,
                stride: gh,
                offset: blocks.start * hd,
            },
            dst,
            accumulate,
        };
        let phases = [
            BwdPhase {
                product: None,
                kernel: Some(&n),
            },
            BwdPhase {
                product: Some(product(2..3, Some(dhw), false)),
                kernel: Some(&r),
            },
            BwdPhase {
                product: Some(product(0..2, None, true)),
                kernel: None,
            },
        ];
        // SAFETY: sizes asserted above; the kernels touch only their units.
        unsafe { sequence::backward(l, &phases, g.up, g.dh, g.dh_spare, None, None) }
    }
}
