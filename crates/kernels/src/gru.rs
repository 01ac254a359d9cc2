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
