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

use super::{BwdSequence, Cell, Dims, FwdSequence, HiddenGradInputs, LayerWeights};

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

    fn forward_sequence(&self, w: &LayerWeights<'_>, d: Dims, s: FwdSequence<'_>) {
        let (hw, zeros) = s.scratch.split_at_mut(d.batch * d.gh());
        let b_hn: &[f32] = match w.b_hh {
            Some(b) => &b[2 * d.hidden..],
            None => {
                zeros.fill(0.0);
                zeros
            }
        };
        let seq = gru::Sequence {
            gates: s.gates,
            w_hh: &w.w_hh[..d.gh() * d.hidden],
            states: s.states,
            saved: s.saved,
            form: gru::Form::LinearBeforeReset { hw, b_hn },
            shape: s.shape,
        };
        gru::forward_sequence(seq, current_threads())
    }

    fn backward_sequence(&self, w: &LayerWeights<'_>, d: Dims, s: BwdSequence<'_>) {
        let grads = gru::SequenceGrads {
            gates: s.gates,
            saved: s.saved,
            states: s.states,
            w_hh: &w.w_hh[..d.gh() * d.hidden],
            up: s.up,
            dgates: s.dgates,
            dhw: s.dhw,
            dh: s.dh,
            dh_spare: s.dh_spare,
            reset_after: true,
            shape: s.shape,
        };
        gru::backward_sequence(grads, current_threads())
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

    fn forward_sequence(&self, w: &LayerWeights<'_>, d: Dims, s: FwdSequence<'_>) {
        let seq = gru::Sequence {
            gates: s.gates,
            w_hh: &w.w_hh[..d.gh() * d.hidden],
            states: s.states,
            saved: s.saved,
            form: gru::Form::ResetBeforeLinear,
            shape: s.shape,
        };
        gru::forward_sequence(seq, current_threads())
    }

    /// The gradient w.r.t. `r * h_prev` lives in the scratch.
    fn backward_sequence(&self, w: &LayerWeights<'_>, d: Dims, s: BwdSequence<'_>) {
        let grads = gru::SequenceGrads {
            gates: s.gates,
            saved: s.saved,
            states: s.states,
            w_hh: &w.w_hh[..d.gh() * d.hidden],
            up: s.up,
            dgates: s.dgates,
            dhw: &mut s.scratch[..d.batch * d.hidden],
            dh: s.dh,
            dh_spare: s.dh_spare,
            reset_after: false,
            shape: s.shape,
        };
        gru::backward_sequence(grads, current_threads())
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
