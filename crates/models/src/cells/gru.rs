//! GRU cells (gates `r, z, n`), both formulations.
//!
//! Linear before reset: one recurrent GEMM into a `[B, 3H]` scratch (the
//! reset gate multiplies its `n` block, so it cannot be added to the input
//! projection), then one fused kernel. Saved per step: `W_hn h_prev + b_hn`.
//!
//! Reset before linear: the `r, z` blocks' recurrent GEMM is accumulated
//! into the pre-activations, a kernel makes `r, z` and `r * h_prev`, then the
//! `n` block's GEMM on `r * h_prev` and a second kernel. Saved per step:
//! `r * h_prev` (the operand of `W_hn`'s gradient). All biases fold into the
//! input projection.

use rnn_kernels::{Mat, MatMut, Op, gemm, gru, reduce};

use super::{
    BwdSequence, BwdStep, Cell, Dims, FwdSequence, FwdStep, HiddenGradInputs, LayerWeights,
    recurrent_gradient, recurrent_product, rows,
};

pub(crate) struct GruLinearBeforeReset;

impl Cell for GruLinearBeforeReset {
    fn input_bias(&self, w: &LayerWeights<'_>, out: &mut [f32]) {
        let h = out.len() / 3;
        out.fill(0.0);
        if let Some(b) = w.b_ih {
            out.copy_from_slice(b);
        }
        if let Some(b) = w.b_hh {
            // b_hr and b_hz fold in; b_hn stays inside the reset product.
            out[..2 * h]
                .iter_mut()
                .zip(&b[..2 * h])
                .for_each(|(o, v)| *o += v);
        }
    }

    fn saves_per_step(&self) -> bool {
        true
    }

    fn separate_dhw(&self) -> bool {
        true
    }

    /// `hw` `[B, 3H]`, then `[H]` zeros standing for `b_hn` without bias.
    fn scratch_len(&self, d: Dims) -> usize {
        d.batch * d.gh() + d.hidden
    }

    fn forward_step(&self, w: &LayerWeights<'_>, d: Dims, s: FwdStep<'_>) {
        let gh = d.gh();
        let (hw, zeros) = s.scratch.split_at_mut(d.batch * gh);
        let b_hn: &[f32] = match w.b_hh {
            Some(b) => &b[2 * d.hidden..],
            None => {
                zeros.fill(0.0);
                zeros
            }
        };
        recurrent_product(s.h_prev, rows(w.w_hh, 0, gh, d), d, hw, gh, false);
        gru::lbr_forward(s.gates, hw, b_hn, s.h_prev, s.h, s.saved, d.hidden);
    }

    fn forward_sequence(&self, w: &LayerWeights<'_>, d: Dims, s: FwdSequence<'_>) -> bool {
        let (hw, zeros) = s.scratch.split_at_mut(d.batch * d.gh());
        let b_hn: &[f32] = match w.b_hh {
            Some(b) => &b[2 * d.hidden..],
            None => {
                zeros.fill(0.0);
                zeros
            }
        };
        let seq = gru::LbrSequence {
            gates: s.gates,
            hw,
            b_hn,
            w_hh: &w.w_hh[..d.gh() * d.hidden],
            states: s.states,
            hn: s.saved,
            shape: s.shape,
        };
        // Without memory for the packed W_hh, the per-step loop runs instead.
        gru::lbr_forward_sequence(seq, rnn_kernels::threads::current_threads()).is_ok()
    }

    fn backward_sequence(&self, w: &LayerWeights<'_>, d: Dims, s: BwdSequence<'_>) -> bool {
        let grads = gru::LbrSequenceGrads {
            gates: s.gates,
            hn: s.saved,
            states: s.states,
            w_hh: &w.w_hh[..d.gh() * d.hidden],
            up: s.up,
            dgates: s.dgates,
            dhw: s.dhw,
            dh: s.dh,
            dh_spare: s.dh_spare,
            shape: s.shape,
        };
        // Without memory for the packed W_hh, the per-step loop runs instead.
        gru::lbr_backward_sequence(grads, rnn_kernels::threads::current_threads()).is_ok()
    }

    fn backward_step(&self, w: &LayerWeights<'_>, d: Dims, s: BwdStep<'_>) {
        let gh = d.gh();
        gru::lbr_backward(
            s.gates, s.saved, s.h_prev, s.dh, s.dgates, s.dhw, s.dh_prev, d.hidden,
        );
        recurrent_gradient(s.dhw, gh, rows(w.w_hh, 0, gh, d), d, s.dh_prev, true);
    }
}

pub(crate) struct GruResetBeforeLinear;

impl Cell for GruResetBeforeLinear {
    fn saves_per_step(&self) -> bool {
        true
    }

    /// `d(r * h_prev)`, `[B, H]`.
    fn scratch_len(&self, d: Dims) -> usize {
        d.batch * d.hidden
    }

    fn forward_step(&self, w: &LayerWeights<'_>, d: Dims, s: FwdStep<'_>) {
        let (h, gh) = (d.hidden, d.gh());
        recurrent_product(s.h_prev, rows(w.w_hh, 0, 2 * h, d), d, s.gates, gh, true);
        gru::rbl_forward_rz(s.gates, s.h_prev, s.saved, h);
        recurrent_product(
            s.saved,
            rows(w.w_hh, 2 * h, h, d),
            d,
            &mut s.gates[2 * h..],
            gh,
            true,
        );
        gru::rbl_forward_n(s.gates, s.h_prev, s.h, h);
    }

    fn backward_step(&self, w: &LayerWeights<'_>, d: Dims, s: BwdStep<'_>) {
        let (h, gh) = (d.hidden, d.gh());
        gru::rbl_backward_n(s.gates, s.h_prev, s.dh, s.dgates, s.dh_prev, h);
        let drh = s.scratch;
        recurrent_gradient(
            &s.dgates[2 * h..],
            gh,
            rows(w.w_hh, 2 * h, h, d),
            d,
            drh,
            false,
        );
        gru::rbl_backward_r(s.gates, s.h_prev, drh, s.dgates, s.dh_prev, h);
        recurrent_gradient(s.dgates, gh, rows(w.w_hh, 0, 2 * h, d), d, s.dh_prev, true);
    }

    /// `dW_h{r,z} += dP_{r,z}^T H_prev`, `dW_hn += dP_n^T (r * H_prev)`.
    fn hidden_weight_grads(
        &self,
        d: Dims,
        g: HiddenGradInputs<'_>,
        dw_hh: &mut [f32],
        db_hh: Option<&mut [f32]>,
    ) {
        let (h, gh) = (d.hidden, d.gh());
        let (dw_rz, dw_n) = dw_hh.split_at_mut(2 * h * h);
        gemm(
            1.0,
            Mat::strided(g.dgates, g.rows, 2 * h, gh),
            Op::T,
            Mat::new(g.h_prev, g.rows, h),
            Op::N,
            1.0,
            MatMut::new(dw_rz, 2 * h, h),
        );
        gemm(
            1.0,
            Mat::strided(&g.dgates[2 * h..], g.rows, h, gh),
            Op::T,
            Mat::new(g.saved, g.rows, h),
            Op::N,
            1.0,
            MatMut::new(dw_n, h, h),
        );
        if let Some(db) = db_hh {
            reduce::colsum_add(g.dgates, db);
        }
    }
}
