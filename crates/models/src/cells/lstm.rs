//! LSTM cell (gates `i, f, g, o`): the whole-sequence kernels of
//! `rnn_kernels::lstm`, whose steps are one recurrent product into the
//! `[B, 4H]` pre-activations and one fused kernel, and with a projection
//! (`proj_size`, `S = P < H`) a second product `h_t = m_t W_hr^T` from
//! `m_t = o_t * tanh(c_t)`, which the cell keeps per step for `W_hr`'s
//! gradient.

use rnn_kernels::{Mat, MatMut, Op, gemm, lstm, threads::current_threads};

use super::{BwdSequence, Cell, Dims, FwdSequence, LayerWeights};

pub(crate) struct LstmCell;

/// Whether the layer projects its output (`S < H`).
fn projected(d: Dims) -> bool {
    d.state < d.hidden
}

impl Cell for LstmCell {
    /// `h` (`[B, S]`), then the cell state `c` (`[B, H]`).
    fn states(&self) -> usize {
        2
    }

    /// With a projection, `m_t = o_t * tanh(c_t)`.
    fn saves_per_step(&self, d: Dims) -> bool {
        projected(d)
    }

    /// With a projection, `W_hr`'s gradient needs every `dh_t`.
    fn records_dh(&self, d: Dims) -> bool {
        projected(d)
    }

    /// With a projection, `[B, H]` for the gradient w.r.t. `m_t`.
    fn scratch_len(&self, d: Dims) -> usize {
        if projected(d) { d.batch * d.hidden } else { 0 }
    }

    fn forward_sequence(&self, w: &LayerWeights<'_>, d: Dims, s: FwdSequence<'_>) {
        let h_len = (s.shape.seq_len + 1) * d.batch * d.state;
        let (states, cells) = s.states.split_at_mut(h_len);
        let projection = w.w_hr.map(|w_hr| lstm::Projection { w_hr, m: s.saved });
        let seq = lstm::Sequence {
            gates: s.gates,
            w_hh: &w.w_hh[..d.gh() * d.state],
            states,
            cells,
            projection,
            mask: s.mask,
            shape: s.shape,
        };
        lstm::forward_sequence(seq, current_threads())
    }

    fn backward_sequence(&self, w: &LayerWeights<'_>, d: Dims, s: BwdSequence<'_>) {
        let h_len = (s.shape.seq_len + 1) * d.batch * d.state;
        let cells = &s.states[h_len..];
        let (dh, dc) = s.dstates.split_at_mut(d.batch * d.state);
        let projection = w.w_hr.map(|w_hr| lstm::ProjectionGrads {
            w_hr,
            dm: s.scratch,
            dh: s.dh_steps,
        });
        let grads = lstm::SequenceGrads {
            gates: s.gates,
            w_hh: &w.w_hh[..d.gh() * d.state],
            cells,
            up: s.up,
            dgates: s.dgates,
            dh,
            dh_spare: s.dh_spare,
            dc,
            projection,
            mask: s.mask,
            shape: s.shape,
        };
        lstm::backward_sequence(grads, current_threads())
    }

    /// `dW_hr += dH^T M`, `dH` `[rows, P]`, `M` `[rows, H]`.
    fn projection_grads(&self, d: Dims, dh: &[f32], saved: &[f32], dw_hr: &mut [f32]) {
        let rows = dh.len() / d.state;
        gemm(
            1.0,
            Mat::new(dh, rows, d.state),
            Op::T,
            Mat::new(saved, rows, d.hidden),
            Op::N,
            1.0,
            MatMut::new(dw_hr, d.state, d.hidden),
        );
    }
}
