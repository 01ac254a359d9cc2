//! LSTM cell (gates `i, f, g, o`): one recurrent GEMM into the `[B, 4H]`
//! pre-activations, then the fused kernel of `rnn_kernels::lstm`.

use rnn_kernels::lstm;

use super::{
    BwdStep, Cell, Dims, FwdStep, LayerWeights, recurrent_gradient, recurrent_product, rows,
};

pub(crate) struct LstmCell;

impl Cell for LstmCell {
    fn forward_step(&self, w: &LayerWeights<'_>, d: Dims, s: FwdStep<'_>) {
        let gh = d.gh();
        recurrent_product(s.h_prev, rows(w.w_hh, 0, gh, d), d, s.gates, gh, true);
        lstm::forward(s.gates, s.c_prev, s.c, s.h, d.hidden);
    }

    fn backward_step(&self, w: &LayerWeights<'_>, d: Dims, s: BwdStep<'_>) {
        let gh = d.gh();
        lstm::backward(s.gates, s.c_prev, s.c, s.dh, s.dc, s.dgates, d.hidden);
        recurrent_gradient(s.dgates, gh, rows(w.w_hh, 0, gh, d), d, s.dh_prev, false);
    }
}
