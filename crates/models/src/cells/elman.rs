//! Elman cell: `h = act(P)`, `P = x W_ih^T + b_ih + b_hh + h_prev W_hh^T`.

use rnn_kernels::{Activation, activation, elman};

use crate::config::Nonlinearity;

use super::{
    BwdSequence, BwdStep, Cell, Dims, FwdSequence, FwdStep, LayerWeights, recurrent_gradient,
    recurrent_product, rows,
};

pub(crate) struct ElmanCell(Activation);

static TANH: ElmanCell = ElmanCell(Activation::Tanh);
static RELU: ElmanCell = ElmanCell(Activation::Relu);

pub(crate) fn for_nonlinearity(n: Nonlinearity) -> &'static ElmanCell {
    match n {
        Nonlinearity::Tanh => &TANH,
        Nonlinearity::Relu => &RELU,
    }
}

impl Cell for ElmanCell {
    fn forward_step(&self, w: &LayerWeights<'_>, d: Dims, s: FwdStep<'_>) {
        recurrent_product(
            s.h_prev,
            rows(w.w_hh, 0, d.hidden, d),
            d,
            s.gates,
            d.hidden,
            true,
        );
        activation::forward(self.0, s.gates, s.h);
    }

    fn forward_sequence(&self, w: &LayerWeights<'_>, d: Dims, s: FwdSequence<'_>) -> bool {
        let seq = elman::Sequence {
            act: self.0,
            pre: s.gates,
            w_hh: &w.w_hh[..d.hidden * d.hidden],
            states: s.states,
            shape: s.shape,
        };
        // Without memory for the packed W_hh, the per-step loop runs instead.
        elman::forward_sequence(seq, rnn_kernels::threads::current_threads()).is_ok()
    }

    fn backward_sequence(&self, w: &LayerWeights<'_>, d: Dims, s: BwdSequence<'_>) -> bool {
        let grads = elman::SequenceGrads {
            act: self.0,
            w_hh: &w.w_hh[..d.hidden * d.hidden],
            states: s.states,
            up: s.up,
            dpre: s.dgates,
            dh: s.dh,
            dh_spare: s.dh_spare,
            shape: s.shape,
        };
        // Without memory for the packed W_hh, the per-step loop runs instead.
        elman::backward_sequence(grads, rnn_kernels::threads::current_threads()).is_ok()
    }

    fn backward_step(&self, w: &LayerWeights<'_>, d: Dims, s: BwdStep<'_>) {
        activation::backward(self.0, s.h, s.dh, s.dgates);
        recurrent_gradient(
            s.dgates,
            d.hidden,
            rows(w.w_hh, 0, d.hidden, d),
            d,
            s.dh_prev,
            false,
        );
    }
}
