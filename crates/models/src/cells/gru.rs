//! GRU cells (gates `r, z, n`), both formulations.
//!
//! Both run on `rnn_kernels::gru`'s whole-sequence kernels.
//!
//! Linear before reset: per step one recurrent product into a `[B, 3H]`
//! scratch (the reset gate multiplies its `n` block, so it cannot be added
//! to the input projection), then one fused kernel. Saved per step: `W_hn
//! h_prev + b_hn`.
//!
//! Reset before linear: per step the `r, z` blocks' recurrent product is
//! accumulated into the pre-activations, a kernel makes `r, z` and `r *
//! h_prev`, then the `n` block's product on `r * h_prev` and a second
//! kernel. Saved per step: `r * h_prev` (the operand of `W_hn`'s gradient).
//! All biases fold into the input projection.

use rnn_kernels::{Mat, MatMut, Op, gemm, gru, reduce, threads::current_threads};

use super::{
    BwdSequence, Cell, Dims, FwdSequence, HiddenGradInputs, LayerWeights,
    default_hidden_weight_grads,
};

/// A GRU cell: PyTorch's linear-before-reset form (`reset_after`) or Cho
/// et al.'s reset-before-linear one.
pub(crate) struct GruCell {
    pub reset_after: bool,
}

impl Cell for GruCell {
    /// Linear before reset keeps `b_hn` inside the reset product; the
    /// other form folds every bias.
    fn input_bias(&self, w: &LayerWeights<'_>, out: &mut [f32]) {
        let h = out.len() / 3;
        let folded = if self.reset_after { 2 * h } else { 3 * h };
        out.fill(0.0);
        for b in [w.b_ih, w.b_hh.map(|b| &b[..folded])].into_iter().flatten() {
            out.iter_mut().zip(b).for_each(|(o, v)| *o += v);
        }
    }

    fn saves_per_step(&self, _d: Dims) -> bool {
        true
    }

    fn separate_dhw(&self) -> bool {
        self.reset_after
    }

    /// Linear before reset: `hw` `[B, 3H]`, then `[H]` zeros standing for
    /// `b_hn` without bias. Reset before linear: `d(r * h_prev)`, `[B, H]`.
    fn scratch_len(&self, d: Dims) -> usize {
        if self.reset_after {
            d.batch * d.gh() + d.hidden
        } else {
            d.batch * d.hidden
        }
    }

    fn forward_sequence(&self, w: &LayerWeights<'_>, d: Dims, s: FwdSequence<'_>) {
        let form = if self.reset_after {
            let (hw, zeros) = s.scratch.split_at_mut(d.batch * d.gh());
            let b_hn: &[f32] = match w.b_hh {
                Some(b) => &b[2 * d.hidden..],
                None => {
                    zeros.fill(0.0);
                    zeros
                }
            };
            gru::Form::LinearBeforeReset { hw, b_hn }
        } else {
            gru::Form::ResetBeforeLinear
        };
        let seq = gru::Sequence {
            gates: s.gates,
            w_hh: &w.w_hh[..d.gh() * d.hidden],
            states: s.states,
            saved: s.saved,
            form,
            mask: s.mask,
            shape: s.shape,
        };
        gru::forward_sequence(seq, current_threads());
    }

    fn backward_sequence(&self, w: &LayerWeights<'_>, d: Dims, s: BwdSequence<'_>) {
        let dhw = if self.reset_after {
            s.dhw
        } else {
            &mut s.scratch[..d.batch * d.hidden]
        };
        let grads = gru::SequenceGrads {
            gates: s.gates,
            saved: s.saved,
            states: s.states,
            w_hh: &w.w_hh[..d.gh() * d.hidden],
            up: s.up,
            dgates: s.dgates,
            dhw,
            dh: s.dstates,
            dh_spare: s.dh_spare,
            reset_after: self.reset_after,
            mask: s.mask,
            shape: s.shape,
        };
        gru::backward_sequence(grads, current_threads());
    }

    /// Linear before reset: `dW_hh += dhw^T H_prev` (the default).
    /// Reset before linear: `dW_h{r,z} += dP_{r,z}^T H_prev`, `dW_hn +=
    /// dP_n^T (r * H_prev)`.
    fn hidden_weight_grads(
        &self,
        d: Dims,
        g: HiddenGradInputs<'_>,
        dw_hh: &mut [f32],
        db_hh: Option<&mut [f32]>,
    ) {
        if self.reset_after {
            return default_hidden_weight_grads(self, d, g, dw_hh, db_hh);
        }
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
