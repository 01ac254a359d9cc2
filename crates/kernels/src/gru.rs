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

use pulp::{Simd, WithSimd};

use crate::gates;
use crate::math;
use crate::sequence::{
    self, Loop, NoMemory, Part, Product, SeqShape, Shared, Upstream, part_mut, part_ref,
};
use crate::simd::{Lanes, dispatch, zip_map};

fn check_states(b: usize, hidden: usize, states: &[usize]) {
    assert!(
        states.iter().all(|&l| l == b * hidden),
        "gru kernel: state length"
    );
}

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

/// Inputs `[z, h_prev]`; read-write `[n, h]` (pre-activation of `n` in).
struct RblForwardNLanes;

impl Lanes<2, 2> for RblForwardNLanes {
    #[inline(always)]
    fn apply<S: Simd>(&self, simd: S, [z, hp]: [S::f32s; 2], y: [S::f32s; 2]) -> [S::f32s; 2] {
        let n = math::tanh(simd, y[0]);
        [n, update(simd, z, n, hp)]
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

/// Inputs `[r, h_prev, d(r h)]`; read-write `[dr, dh_prev]`.
struct RblBackwardRLanes;

impl Lanes<3, 2> for RblBackwardRLanes {
    #[inline(always)]
    fn apply<S: Simd>(&self, simd: S, [r, hp, drh]: [S::f32s; 3], y: [S::f32s; 2]) -> [S::f32s; 2] {
        let dr = simd.mul_f32s(simd.mul_f32s(drh, hp), sigmoid_slope(simd, r));
        [dr, simd.mul_add_f32s(drh, r, y[1])]
    }
}

// ---------------------------------------------------------------- linear before reset

struct LbrForward<'a> {
    gates: &'a mut [f32],
    hw: &'a [f32],
    b_hn: &'a [f32],
    h_prev: &'a [f32],
    h: &'a mut [f32],
    hn: &'a mut [f32],
    hidden: usize,
}

impl WithSimd for LbrForward<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let hd = self.hidden;
        let rows = self
            .gates
            .chunks_exact_mut(3 * hd)
            .zip(self.hw.chunks_exact(3 * hd));
        let states = self
            .h_prev
            .chunks_exact(hd)
            .zip(self.h.chunks_exact_mut(hd));
        for (((row, hw), (h_prev, h)), hn) in rows.zip(states).zip(self.hn.chunks_exact_mut(hd)) {
            let [r, z, n] = gates::blocks_mut::<3>(row, hd);
            let [hr, hz, hnn] = gates::blocks::<3>(hw, hd);
            zip_map(
                simd,
                [hr, hz, hnn, self.b_hn, h_prev],
                [r, z, n, h, hn],
                &LbrForwardLanes,
            );
        }
    }
}

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
    let b = gates::rows::<3>(gates.len(), hidden);
    assert_eq!(hw.len(), gates.len());
    assert_eq!(b_hn.len(), hidden);
    check_states(b, hidden, &[h_prev.len(), h.len(), hn.len()]);
    dispatch(LbrForward {
        gates,
        hw,
        b_hn,
        h_prev,
        h,
        hn,
        hidden,
    });
}

struct LbrBackward<'a> {
    gates: &'a [f32],
    hn: &'a [f32],
    h_prev: &'a [f32],
    dh: &'a [f32],
    dgates: &'a mut [f32],
    dhw: &'a mut [f32],
    dh_prev: &'a mut [f32],
    hidden: usize,
}

impl WithSimd for LbrBackward<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let hd = self.hidden;
        for b in 0..self.dh.len() / hd {
            let (s, g) = (b * hd..(b + 1) * hd, b * 3 * hd..(b + 1) * 3 * hd);
            let [r, z, n] = gates::blocks::<3>(&self.gates[g.clone()], hd);
            let [dr, dz, dn] = gates::blocks_mut::<3>(&mut self.dgates[g.clone()], hd);
            let [dhr, dhz, dhn] = gates::blocks_mut::<3>(&mut self.dhw[g], hd);
            let ins = [
                r,
                z,
                n,
                &self.hn[s.clone()],
                &self.h_prev[s.clone()],
                &self.dh[s.clone()],
            ];
            zip_map(
                simd,
                ins,
                [dr, dz, dn, dhr, dhz, dhn, &mut self.dh_prev[s]],
                &LbrBackwardLanes,
            );
        }
    }
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
    let b = gates::rows::<3>(gates.len(), hidden);
    assert!(dgates.len() == gates.len() && dhw.len() == gates.len());
    check_states(
        b,
        hidden,
        &[hn.len(), h_prev.len(), dh.len(), dh_prev.len()],
    );
    dispatch(LbrBackward {
        gates,
        hn,
        h_prev,
        dh,
        dgates,
        dhw,
        dh_prev,
        hidden,
    });
}

// ---------------------------------------------------------------- reset before linear

struct RblForwardRz<'a> {
    gates: &'a mut [f32],
    h_prev: &'a [f32],
    rh: &'a mut [f32],
    hidden: usize,
}

impl WithSimd for RblForwardRz<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let hd = self.hidden;
        for b in 0..self.h_prev.len() / hd {
            let s = b * hd..(b + 1) * hd;
            let [r, z, _] =
                gates::blocks_mut::<3>(&mut self.gates[b * 3 * hd..(b + 1) * 3 * hd], hd);
            zip_map(
                simd,
                [&self.h_prev[s.clone()]],
                [r, z, &mut self.rh[s]],
                &RblForwardRzLanes,
            );
        }
    }
}

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
    let b = gates::rows::<3>(gates.len(), hidden);
    check_states(b, hidden, &[h_prev.len(), rh.len()]);
    dispatch(RblForwardRz {
        gates,
        h_prev,
        rh,
        hidden,
    });
}

struct RblForwardN<'a> {
    gates: &'a mut [f32],
    h_prev: &'a [f32],
    h: &'a mut [f32],
    hidden: usize,
}

impl WithSimd for RblForwardN<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let hd = self.hidden;
        for b in 0..self.h_prev.len() / hd {
            let s = b * hd..(b + 1) * hd;
            let [_, z, n] =
                gates::blocks_mut::<3>(&mut self.gates[b * 3 * hd..(b + 1) * 3 * hd], hd);
            zip_map(
                simd,
                [&*z, &self.h_prev[s.clone()]],
                [n, &mut self.h[s]],
                &RblForwardNLanes,
            );
        }
    }
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
    let b = gates::rows::<3>(gates.len(), hidden);
    check_states(b, hidden, &[h_prev.len(), h.len()]);
    dispatch(RblForwardN {
        gates,
        h_prev,
        h,
        hidden,
    });
}

struct RblBackwardN<'a> {
    gates: &'a [f32],
    h_prev: &'a [f32],
    dh: &'a [f32],
    dgates: &'a mut [f32],
    dh_prev: &'a mut [f32],
    hidden: usize,
}

impl WithSimd for RblBackwardN<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let hd = self.hidden;
        for b in 0..self.dh.len() / hd {
            let (s, g) = (b * hd..(b + 1) * hd, b * 3 * hd..(b + 1) * 3 * hd);
            let [_, z, n] = gates::blocks::<3>(&self.gates[g.clone()], hd);
            let [_, dz, dn] = gates::blocks_mut::<3>(&mut self.dgates[g], hd);
            let ins = [z, n, &self.h_prev[s.clone()], &self.dh[s.clone()]];
            zip_map(
                simd,
                ins,
                [dz, dn, &mut self.dh_prev[s]],
                &RblBackwardNLanes,
            );
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
    let b = gates::rows::<3>(gates.len(), hidden);
    assert_eq!(dgates.len(), gates.len());
    check_states(b, hidden, &[h_prev.len(), dh.len(), dh_prev.len()]);
    dispatch(RblBackwardN {
        gates,
        h_prev,
        dh,
        dgates,
        dh_prev,
        hidden,
    });
}

struct RblBackwardR<'a> {
    gates: &'a [f32],
    h_prev: &'a [f32],
    drh: &'a [f32],
    dgates: &'a mut [f32],
    dh_prev: &'a mut [f32],
    hidden: usize,
}

impl WithSimd for RblBackwardR<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let hd = self.hidden;
        for b in 0..self.drh.len() / hd {
            let (s, g) = (b * hd..(b + 1) * hd, b * 3 * hd..(b + 1) * 3 * hd);
            let [r, _, _] = gates::blocks::<3>(&self.gates[g.clone()], hd);
            let [dr, _, _] = gates::blocks_mut::<3>(&mut self.dgates[g], hd);
            let ins = [r, &self.h_prev[s.clone()], &self.drh[s.clone()]];
            zip_map(simd, ins, [dr, &mut self.dh_prev[s]], &RblBackwardRLanes);
        }
    }
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
    let b = gates::rows::<3>(gates.len(), hidden);
    assert_eq!(dgates.len(), gates.len());
    check_states(b, hidden, &[h_prev.len(), drh.len(), dh_prev.len()]);
    dispatch(RblBackwardR {
        gates,
        h_prev,
        drh,
        dgates,
        dh_prev,
        hidden,
    });
}

/// Scalar twins of this module's kernels, written from the equations.
pub mod scalar {
    use crate::math::scalar::{sigmoid, tanh};

    /// Twin of [`super::lbr_forward`].
    pub fn lbr_forward(
        gates: &mut [f32],
        hw: &[f32],
        b_hn: &[f32],
        h_prev: &[f32],
        h: &mut [f32],
        hn: &mut [f32],
        hidden: usize,
    ) {
        let hd = hidden;
        for b in 0..h.len() / hd {
            let g = b * 3 * hd;
            for j in 0..hd {
                let k = b * hd + j;
                let r = sigmoid(gates[g + j] + hw[g + j]);
                let z = sigmoid(gates[g + hd + j] + hw[g + hd + j]);
                hn[k] = hw[g + 2 * hd + j] + b_hn[j];
                let n = tanh(gates[g + 2 * hd + j] + r * hn[k]);
                gates[g + j] = r;
                gates[g + hd + j] = z;
                gates[g + 2 * hd + j] = n;
                h[k] = (1.0 - z) * n + z * h_prev[k];
            }
        }
    }

    /// Twin of [`super::lbr_backward`].
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
        let hd = hidden;
        for b in 0..dh.len() / hd {
            let g = b * 3 * hd;
            for j in 0..hd {
                let k = b * hd + j;
                let (r, z, n) = (gates[g + j], gates[g + hd + j], gates[g + 2 * hd + j]);
                let dn = dh[k] * (1.0 - z) * (1.0 - n * n);
                let dz = dh[k] * (h_prev[k] - n) * z * (1.0 - z);
                let dr = dn * hn[k] * r * (1.0 - r);
                dgates[g + j] = dr;
                dgates[g + hd + j] = dz;
                dgates[g + 2 * hd + j] = dn;
                dhw[g + j] = dr;
                dhw[g + hd + j] = dz;
                dhw[g + 2 * hd + j] = dn * r;
                dh_prev[k] = dh[k] * z;
            }
        }
    }

    /// Twin of [`super::rbl_forward_rz`].
    pub fn rbl_forward_rz(gates: &mut [f32], h_prev: &[f32], rh: &mut [f32], hidden: usize) {
        let hd = hidden;
        for b in 0..h_prev.len() / hd {
            let g = b * 3 * hd;
            for j in 0..hd {
                let r = sigmoid(gates[g + j]);
                gates[g + j] = r;
                gates[g + hd + j] = sigmoid(gates[g + hd + j]);
                rh[b * hd + j] = r * h_prev[b * hd + j];
            }
        }
    }

    /// Twin of [`super::rbl_forward_n`].
    pub fn rbl_forward_n(gates: &mut [f32], h_prev: &[f32], h: &mut [f32], hidden: usize) {
        let hd = hidden;
        for b in 0..h_prev.len() / hd {
            let g = b * 3 * hd;
            for j in 0..hd {
                let k = b * hd + j;
                let z = gates[g + hd + j];
                let n = tanh(gates[g + 2 * hd + j]);
                gates[g + 2 * hd + j] = n;
                h[k] = (1.0 - z) * n + z * h_prev[k];
            }
        }
    }

    /// Twin of [`super::rbl_backward_n`].
    pub fn rbl_backward_n(
        gates: &[f32],
        h_prev: &[f32],
        dh: &[f32],
        dgates: &mut [f32],
        dh_prev: &mut [f32],
        hidden: usize,
    ) {
        let hd = hidden;
        for b in 0..dh.len() / hd {
            let g = b * 3 * hd;
            for j in 0..hd {
                let k = b * hd + j;
                let (z, n) = (gates[g + hd + j], gates[g + 2 * hd + j]);
                dgates[g + 2 * hd + j] = dh[k] * (1.0 - z) * (1.0 - n * n);
                dgates[g + hd + j] = dh[k] * (h_prev[k] - n) * z * (1.0 - z);
                dh_prev[k] = dh[k] * z;
            }
        }
    }

    /// Twin of [`super::rbl_backward_r`].
    pub fn rbl_backward_r(
        gates: &[f32],
        h_prev: &[f32],
        drh: &[f32],
        dgates: &mut [f32],
        dh_prev: &mut [f32],
        hidden: usize,
    ) {
        let hd = hidden;
        for b in 0..drh.len() / hd {
            let g = b * 3 * hd;
            for j in 0..hd {
                let k = b * hd + j;
                let r = gates[g + j];
                dgates[g + j] = drh[k] * h_prev[k] * r * (1.0 - r);
                dh_prev[k] += drh[k] * r;
            }
        }
    }
}

// ---------------------------------------------------------------- whole sequences

/// The buffers of a whole linear-before-reset GRU layer-direction's forward
/// pass (row-major; state slots as in [`crate::lstm::Sequence`]).
pub struct LbrSequence<'a> {
    /// `[T, B, 3H]`: the input projections in (as [`lbr_forward`]'s
    /// `gates`), activated `r, z, n` out.
    pub gates: &'a mut [f32],
    /// `[B, 3H]` scratch for `h_{t-1} W_hh^T`.
    pub hw: &'a mut [f32],
    /// `[H]` (zeros without bias).
    pub b_hn: &'a [f32],
    /// `[3H, H]`.
    pub w_hh: &'a [f32],
    /// `[T+1, B, H]` hidden-state slots, the initial state in place.
    pub states: &'a mut [f32],
    /// `[T, B, H]`: `W_hn h_{t-1} + b_hn` per step, written (for backward).
    pub hn: &'a mut [f32],
    /// `T`, `B`, `H` and the direction.
    pub shape: SeqShape,
}

/// The whole forward pass of one layer-direction, the hidden units split
/// over up to `threads` threads ([`crate::team`]): per step, each
/// thread's columns of `h_{t-1} W_hh^T`, then [`lbr_forward`] on its units.
///
/// Errors: [`NoMemory`] when the packed copy of `W_hh` cannot be
/// allocated; nothing is computed then.
///
/// # Panics
/// If a buffer's length disagrees with the sizes.
pub fn lbr_forward_sequence(seq: LbrSequence<'_>, threads: usize) -> Result<(), NoMemory> {
    let (t_len, b, hd) = seq.shape.sizes();
    let (gh, bh) = (3 * hd, b * hd);
    assert_eq!(seq.gates.len(), t_len * b * gh, "gates");
    assert_eq!(seq.hw.len(), b * gh, "hw");
    assert_eq!(seq.b_hn.len(), hd, "b_hn");
    assert_eq!(seq.states.len(), (t_len + 1) * bh, "states");
    assert_eq!(seq.hn.len(), t_len * bh, "hn");
    let l = Loop::new(seq.shape, 3, threads);
    let (gates, hw, states, hn) = (
        Shared::new(seq.gates),
        Shared::new(seq.hw),
        Shared::new(seq.states),
        Shared::new(seq.hn),
    );
    let b_hn = seq.b_hn;
    let kernel = move |p: &Part| {
        dispatch(LbrForwardUnits {
            // SAFETY: offsets inside the buffers asserted above.
            gates: unsafe { gates.get().add(p.t * b * gh) },
            hw: hw.get(),
            b_hn,
            h_prev: unsafe { states.get().add(p.prev * bh) },
            h: unsafe { states.get().add(p.out * bh) },
            hn: unsafe { hn.get().add(p.t * bh) },
            batch: b,
            hidden: hd,
            units: p.units.clone(),
        });
    };
    let out = Product {
        buf: hw,
        per_step: false,
        accumulate: false,
    };
    // SAFETY: sizes asserted above; the kernel touches only its units.
    unsafe { sequence::forward(l, seq.w_hh, out, states, &kernel) }
}

/// [`LbrForward`] on the units `units` of every row, through raw pointers
/// (disjoint between threads, see [`lbr_forward_sequence`]).
struct LbrForwardUnits<'a> {
    gates: *mut f32,
    hw: *mut f32,
    b_hn: &'a [f32],
    h_prev: *mut f32,
    h: *mut f32,
    hn: *mut f32,
    batch: usize,
    hidden: usize,
    units: std::ops::Range<usize>,
}

impl WithSimd for LbrForwardUnits<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let (hd, u0, n) = (self.hidden, self.units.start, self.units.len());
        for r in 0..self.batch {
            let (row, st) = (r * 3 * hd + u0, r * hd + u0);
            // SAFETY: rows `r < batch`, units `u0 + n <= hidden` of buffers
            // sized `[B, 3H]` / `[B, H]`, which this thread alone touches
            // during the step (`h_prev` is read only); pairwise disjoint.
            let part = |p: *mut f32, at: usize| unsafe { part_mut(p, at, n) };
            let read = |p: *mut f32, at: usize| unsafe { part_ref(p, at, n) };
            let [gr, gz, gn] = [0, 1, 2].map(|k| part(self.gates, row + k * hd));
            let [hr, hz, hnn] = [0, 1, 2].map(|k| read(self.hw, row + k * hd));
            zip_map(
                simd,
                [hr, hz, hnn, &self.b_hn[u0..u0 + n], read(self.h_prev, st)],
                [gr, gz, gn, part(self.h, st), part(self.hn, st)],
                &LbrForwardLanes,
            );
        }
    }
}

/// The buffers of a whole linear-before-reset GRU layer-direction's
/// backward pass (the weight gradients excepted).
pub struct LbrSequenceGrads<'a> {
    /// `[T, B, 3H]` activated gates.
    pub gates: &'a [f32],
    /// `[T, B, H]` from [`lbr_forward_sequence`].
    pub hn: &'a [f32],
    /// `[T+1, B, H]` hidden-state slots.
    pub states: &'a [f32],
    /// `[3H, H]`.
    pub w_hh: &'a [f32],
    /// The upstream gradient w.r.t. the outputs.
    pub up: Upstream<'a>,
    /// `[T, B, 3H]`, the gradient w.r.t. the input projections, written.
    pub dgates: &'a mut [f32],
    /// `[T, B, 3H]`, the gradient w.r.t. the recurrent products, written.
    pub dhw: &'a mut [f32],
    /// `[B, H]`: gradient w.r.t. the final hidden state in, initial out.
    pub dh: &'a mut [f32],
    /// `[B, H]` scratch.
    pub dh_spare: &'a mut [f32],
    /// `T`, `B`, `H` and the direction.
    pub shape: SeqShape,
}

/// The whole backward pass of one layer-direction: per step in reverse,
/// `dh_t += dy_t`, [`lbr_backward`] on each thread's units (its columns of
/// `dP_t`, `dhw_t` and the direct part of `dh_{t-1}`), then its columns of
/// `dh_{t-1} += dhw_t W_hh`.
///
/// Errors: [`NoMemory`] when the packed copy of `W_hh` cannot be
/// allocated; nothing is computed then.
///
/// # Panics
/// If a buffer's length disagrees with the sizes.
pub fn lbr_backward_sequence(g: LbrSequenceGrads<'_>, threads: usize) -> Result<(), NoMemory> {
    let (t_len, b, hd) = g.shape.sizes();
    let (gh, bh) = (3 * hd, b * hd);
    assert_eq!(g.gates.len(), t_len * b * gh, "gates");
    assert!(g.dgates.len() == g.gates.len() && g.dhw.len() == g.gates.len());
    assert_eq!(g.hn.len(), t_len * bh, "hn");
    assert_eq!(g.states.len(), (t_len + 1) * bh, "states");
    let l = Loop::new(g.shape, 3, threads);
    let (dgates, dhw) = (Shared::new(g.dgates), Shared::new(g.dhw));
    let (gates, hn, states) = (g.gates, g.hn, g.states);
    let kernel = move |p: &Part, dh: *mut f32, dh_prev: *mut f32| {
        let (hd3, u0, n) = (gh, p.units.start, p.units.len());
        for r in 0..b {
            let (row, st) = (p.t * b * hd3 + r * hd3 + u0, r * hd + u0);
            // SAFETY: row `r`, the part's units, of buffers sized above;
            // this thread alone touches them during the phase.
            let part = |q: *mut f32, at: usize| unsafe { part_mut(q, at, n) };
            let d = part(dh, st);
            let [gr, gz, gn] = [0, 1, 2].map(|k| &gates[row + k * hd..][..n]);
            let [dr, dz, dn] = [0, 1, 2].map(|k| part(dgates.get(), row + k * hd));
            let [dhr, dhz, dhn] = [0, 1, 2].map(|k| part(dhw.get(), row + k * hd));
            let hn_t = &hn[p.t * bh + st..][..n];
            let hp = &states[p.prev * bh + st..][..n];
            dispatch(LbrBackwardUnits {
                ins: [gr, gz, gn, hn_t, hp, &*d],
                outs: [dr, dz, dn, dhr, dhz, dhn, part(dh_prev, st)],
            });
        }
    };
    // SAFETY: sizes asserted above; the kernel touches only its units.
    unsafe { sequence::backward(l, g.w_hh, dhw, true, g.up, g.dh, g.dh_spare, &kernel) }
}

/// [`LbrBackwardLanes`] on one row's units.
struct LbrBackwardUnits<'a> {
    ins: [&'a [f32]; 6],
    outs: [&'a mut [f32]; 7],
}

impl WithSimd for LbrBackwardUnits<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        zip_map(simd, self.ins, self.outs, &LbrBackwardLanes);
    }
}
