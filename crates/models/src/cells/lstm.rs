//! LSTM cell (gates `i, f, g, o`): the whole-sequence kernels of
//! `rnn_kernels::lstm`, whose steps are one recurrent product into the
//! `[B, 4H]` pre-activations and one fused kernel.

use rnn_kernels::{lstm, threads::current_threads};

use super::{BwdSequence, Cell, Dims, FwdSequence, LayerWeights};

pub(crate) struct LstmCell;

impl Cell for LstmCell {
    /// `h`, then the cell state `c`.
    fn states(&self) -> usize {
        2
    }

    fn forward_sequence(&self, w: &LayerWeights<'_>, d: Dims, s: FwdSequence<'_>) {
        let (states, cells) = s.states.split_at_mut(s.states.len() / 2);
        let seq = lstm::Sequence {
            gates: s.gates,
            w_hh: &w.w_hh[..d.gh() * d.hidden],
            states,
            cells,
            projection: None,
            mask: None,
            shape: s.shape,
        };
        lstm::forward_sequence(seq, current_threads())
    }

    fn backward_sequence(&self, w: &LayerWeights<'_>, d: Dims, s: BwdSequence<'_>) {
        let cells = &s.states[s.states.len() / 2..];
        let (dh, dc) = s.dstates.split_at_mut(s.dstates.len() / 2);
        let grads = lstm::SequenceGrads {
            gates: s.gates,
            w_hh: &w.w_hh[..d.gh() * d.hidden],
            cells,
            up: s.up,
            dgates: s.dgates,
            dh,
            dh_spare: s.dh_spare,
            dc,
            projection: None,
            mask: None,
            shape: s.shape,
        };
        lstm::backward_sequence(grads, current_threads())
    }
}
