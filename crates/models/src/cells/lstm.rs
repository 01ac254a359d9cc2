//! LSTM cell (gates `i, f, g, o`): one recurrent GEMM into the `[B, 4H]`
//! pre-activations, then the fused kernel of `rnn_kernels::lstm`.

use rnn_kernels::lstm;

use super::{
    BwdSequence, BwdStep, Cell, Dims, FwdSequence, FwdStep, LayerWeights, recurrent_gradient,
    recurrent_product, rows,
};

pub(crate) struct LstmCell;

impl Cell for LstmCell {
    fn forward_step(&self, w: &LayerWeights<'_>, d: Dims, s: FwdStep<'_>) {
        let gh = d.gh();
        recurrent_product(s.h_prev, rows(w.w_hh, 0, gh, d), d, s.gates, gh, true);
        lstm::forward(s.gates, s.c_prev, s.c, s.h, d.hidden);
    }

    fn forward_sequence(&self, w: &LayerWeights<'_>, d: Dims, s: FwdSequence<'_>) -> bool {
        let seq = lstm::Sequence {
            gates: s.gates,
            w_hh: &w.w_hh[..d.gh() * d.hidden],
            states: s.states,
            cells: s.cells,
            shape: s.shape,
        };
        // Without memory for the packed W_hh, the per-step loop runs instead.
        lstm::forward_sequence(seq, rnn_kernels::threads::current_threads()).is_ok()
    }

    fn backward_sequence(&self, w: &LayerWeights<'_>, d: Dims, s: BwdSequence<'_>) -> bool {
        let grads = lstm::SequenceGrads {
            gates: s.gates,
            w_hh: &w.w_hh[..d.gh() * d.hidden],
            cells: s.cells,
            up: s.up,
            dgates: s.dgates,
            dh: s.dh,
            dh_spare: s.dh_spare,
            dc: s.dc,
            shape: s.shape,
        };
        // Without memory for the packed W_hh, the per-step loop runs instead.
        lstm::backward_sequence(grads, rnn_kernels::threads::current_threads()).is_ok()
    }

    fn backward_step(&self, w: &LayerWeights<'_>, d: Dims, s: BwdStep<'_>) {
        let gh = d.gh();
        lstm::backward(s.gates, s.c_prev, s.c, s.dh, s.dc, s.dgates, d.hidden);
        recurrent_gradient(s.dgates, gh, rows(w.w_hh, 0, gh, d), d, s.dh_prev, false);
    }
}
