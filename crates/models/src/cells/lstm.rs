//! LSTM cell (gates `i, f, g, o`): the whole-sequence kernels of
//! `rnn_kernels::lstm`, whose steps are one recurrent product into the
//! `[B, 4H]` pre-activations and one fused kernel.

use rnn_kernels::{lstm, threads::current_threads};

use super::{BwdSequence, Cell, Dims, FwdSequence, LayerWeights};

pub(crate) struct LstmCell;

impl Cell for LstmCell {
    fn forward_sequence(&self, w: &LayerWeights<'_>, d: Dims, s: FwdSequence<'_>) {
        let seq = lstm::Sequence {
            gates: s.gates,
            w_hh: &w.w_hh[..d.gh() * d.hidden],
            states: s.states,
            cells: s.cells,
            shape: s.shape,
        };
        lstm::forward_sequence(seq, current_threads())
    }

    fn backward_sequence(&self, w: &LayerWeights<'_>, d: Dims, s: BwdSequence<'_>) {
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
        lstm::backward_sequence(grads, current_threads())
    }
}
