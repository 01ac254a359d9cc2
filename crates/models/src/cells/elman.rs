//! Elman cell: `h = act(P)`, `P = x W_ih^T + b_ih + b_hh + h_prev W_hh^T`,
//! on the whole-sequence kernels of `rnn_kernels::elman`.

use rnn_kernels::{Activation, elman, threads::current_threads};

use crate::config::Nonlinearity;

use super::{BwdSequence, Cell, Dims, FwdSequence, LayerWeights};

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
    fn forward_sequence(&self, w: &LayerWeights<'_>, d: Dims, s: FwdSequence<'_>) {
        let seq = elman::Sequence {
            act: self.0,
            pre: s.gates,
            w_hh: &w.w_hh[..d.hidden * d.hidden],
            states: s.states,
            mask: s.mask,
            shape: s.shape,
        };
        elman::forward_sequence(seq, current_threads())
    }

    fn backward_sequence(&self, w: &LayerWeights<'_>, d: Dims, s: BwdSequence<'_>) {
        let grads = elman::SequenceGrads {
            act: self.0,
            w_hh: &w.w_hh[..d.hidden * d.hidden],
            states: s.states,
            up: s.up,
            dpre: s.dgates,
            dh: s.dstates,
            dh_spare: s.dh_spare,
            mask: s.mask,
            shape: s.shape,
        };
        elman::backward_sequence(grads, current_threads())
    }
}
