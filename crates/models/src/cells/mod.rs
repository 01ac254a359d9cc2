//! The per-step math of each cell kind, on top of the shared layer driver
//! ([`crate::layer`]).
//!
//! A cell says how its biases fold into the input projection, what it keeps
//! for backward, and which whole-sequence kernel of `rnn-kernels` runs its
//! time loop (one loop per cell, for uniform and variable lengths, both
//! directions). Everything else (the input projection, the weight
//! gradients as GEMMs over the rows inside their sequences) is the
//! driver's, shared by all cells.

mod elman;
mod gru;
mod lstm;

use rnn_kernels::{Mat, MatMut, Op, RecurrentMask, SeqShape, gemm};

use crate::config::{CellKind, GruVariant};

/// One layer-direction's weights, views into the model's parameter buffer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LayerWeights<'a> {
    /// `[G*H, I_k]`.
    pub w_ih: &'a [f32],
    /// `[G*H, S]`.
    pub w_hh: &'a [f32],
    /// `[P, H]`, an LSTM's projection, absent without one.
    pub w_hr: Option<&'a [f32]>,
    /// `[G*H]`, absent without bias.
    pub b_ih: Option<&'a [f32]>,
    /// `[G*H]`, absent without bias.
    pub b_hh: Option<&'a [f32]>,
}

/// Sizes of one step.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Dims {
    pub batch: usize,
    pub hidden: usize,
    pub gates: usize,
    /// `S`, the width of `h`: `H`, or an LSTM's projection size `P`.
    pub state: usize,
}

impl Dims {
    /// `G * H`.
    pub fn gh(&self) -> usize {
        self.gates * self.hidden
    }

    /// The width of state `k`: `S` for `h` (`k = 0`), `H` for the others
    /// (an LSTM's cell state).
    pub fn state_width(&self, k: usize) -> usize {
        if k == 0 { self.state } else { self.hidden }
    }
}

/// The most state tensors a cell carries from step to step (an LSTM's `h`
/// and `c`).
pub(crate) const MAX_STATES: usize = 2;

/// The buffers of a whole layer-direction's forward pass (row-major; state
/// slots as in [`crate::layer`]).
pub(crate) struct FwdSequence<'a> {
    /// `[T, B, G*H]`: input projections with folded biases in, activated
    /// gates out.
    pub gates: &'a mut [f32],
    /// The `T+1` slots of each of the cell's [`Cell::states`], `h` first
    /// (`[T+1, B, S]`, then `[T+1, B, H]` each), the initial states in
    /// place.
    pub states: &'a mut [f32],
    /// `[T, B, H]` that the cell keeps per step for backward, when it
    /// does ([`Cell::saves_per_step`]).
    pub saved: &'a mut [f32],
    /// Cell-defined scratch of [`Cell::scratch_len`] values.
    pub scratch: &'a mut [f32],
    /// Recurrent dropout: the `[B, S]` mask on `h_{t-1}` and the masked
    /// state slots `[T+1, B, S]` the loop writes, or `None`.
    pub mask: Option<RecurrentMask<'a>>,
    /// `T`, `B`, `H`, the direction and the rows inside their sequences.
    pub shape: SeqShape<'a>,
}

/// The buffers of a whole layer-direction's backward pass (row-major).
pub(crate) struct BwdSequence<'a> {
    /// `[T, B, G*H]` activated gates.
    pub gates: &'a [f32],
    /// The slots of each state, `h` first, as in [`FwdSequence`].
    pub states: &'a [f32],
    /// `[T, B, H]` that the cell kept per step ([`Cell::saves_per_step`]).
    pub saved: &'a [f32],
    /// The upstream gradient w.r.t. the outputs.
    pub up: rnn_kernels::Upstream<'a>,
    /// `[T, B, G*H]`, written.
    pub dgates: &'a mut [f32],
    /// `[T, B, G*H]`, the gradient w.r.t. the recurrent products, written,
    /// when the cell keeps it apart from `dgates` ([`Cell::separate_dhw`]).
    pub dhw: &'a mut [f32],
    /// The gradients w.r.t. the final states in, w.r.t. the initial ones
    /// out: `h`'s `[B, S]` first, then `[B, H]` each.
    pub dstates: &'a mut [f32],
    /// `[B, S]` scratch.
    pub dh_spare: &'a mut [f32],
    /// `[T, B, S]`, each step's gradient w.r.t. `h_t`, written when the
    /// cell records it ([`Cell::records_dh`]), else empty.
    pub dh_steps: &'a mut [f32],
    /// Cell-defined scratch of [`Cell::scratch_len`] values.
    pub scratch: &'a mut [f32],
    /// Recurrent dropout: the forward pass's mask with `[B, S]` scratch, or
    /// `None`.
    pub mask: Option<RecurrentMask<'a>>,
    /// `T`, `B`, `H`, the direction and the rows inside their sequences.
    pub shape: SeqShape<'a>,
}

/// The recurrent-gradient inputs of [`Cell::hidden_weight_grads`], over all steps.
pub(crate) struct HiddenGradInputs<'a> {
    /// `[T*B, G*H]`.
    pub dgates: &'a [f32],
    /// `[T*B, G*H]` or empty.
    pub dhw: &'a [f32],
    /// `[T*B, S]`, the state before each step (masked with recurrent
    /// dropout), aligned with the rows of `dgates`.
    pub h_prev: &'a [f32],
    /// `[T*B, H]` or empty.
    pub saved: &'a [f32],
    /// `T*B`.
    pub rows: usize,
}

/// What distinguishes one cell kind from another.
pub(crate) trait Cell: Sync {
    /// The row added to every row of the input projection (`[G*H]`): the
    /// biases that can be folded there.
    fn input_bias(&self, w: &LayerWeights<'_>, out: &mut [f32]) {
        out.fill(0.0);
        for b in [w.b_ih, w.b_hh].into_iter().flatten() {
            out.iter_mut().zip(b).for_each(|(o, v)| *o += v);
        }
    }

    /// How many `[B, H]` state tensors the cell carries from step to step
    /// (`h`, and an LSTM's cell state `c`), at most [`MAX_STATES`].
    fn states(&self) -> usize {
        1
    }

    /// Whether the cell keeps a `[B, H]` value per step in `saved`.
    fn saves_per_step(&self, _d: Dims) -> bool {
        false
    }

    /// Whether backward records each step's `dh_t` (`[T, B, S]`) for
    /// [`Cell::projection_grads`].
    fn records_dh(&self, _d: Dims) -> bool {
        false
    }

    /// `dw_hr += dH^T saved` over rows of `[T*B, ..]`: the gradient of an
    /// LSTM's projection from the recorded `dh_t` (`[rows, S]`) and the
    /// saved `m_t` (`[rows, H]`). Nothing for the other cells.
    fn projection_grads(&self, _d: Dims, _dh: &[f32], _saved: &[f32], _dw_hr: &mut [f32]) {}

    /// Whether backward needs `dhw` distinct from `dgates`.
    fn separate_dhw(&self) -> bool {
        false
    }

    /// Scratch the time loops need (forward and backward alike).
    fn scratch_len(&self, _d: Dims) -> usize {
        0
    }

    /// The whole time loop: the cell's whole-sequence kernel of
    /// `rnn-kernels`, the hidden units split over the pool's threads.
    fn forward_sequence(&self, w: &LayerWeights<'_>, d: Dims, s: FwdSequence<'_>);

    /// The whole reverse time loop (the weight gradients excepted), as
    /// [`Cell::forward_sequence`].
    fn backward_sequence(&self, w: &LayerWeights<'_>, d: Dims, s: BwdSequence<'_>);

    /// `dw_hh += D^T H_prev` and `db_hh += colsum(D)`, `D` the gradient
    /// w.r.t. the recurrent projection. Default: `D = dhw` if the cell has a
    /// separate one, else `dgates`.
    fn hidden_weight_grads(
        &self,
        d: Dims,
        g: HiddenGradInputs<'_>,
        dw_hh: &mut [f32],
        db_hh: Option<&mut [f32]>,
    ) {
        default_hidden_weight_grads(self, d, g, dw_hh, db_hh);
    }
}

/// The default of [`Cell::hidden_weight_grads`], for the cells that
/// override it in some of their forms.
pub(crate) fn default_hidden_weight_grads<C: Cell + ?Sized>(
    cell: &C,
    d: Dims,
    g: HiddenGradInputs<'_>,
    dw_hh: &mut [f32],
    db_hh: Option<&mut [f32]>,
) {
    let dp = if cell.separate_dhw() { g.dhw } else { g.dgates };
    let gh = d.gh();
    gemm(
        1.0,
        Mat::new(dp, g.rows, gh),
        Op::T,
        Mat::new(g.h_prev, g.rows, d.state),
        Op::N,
        1.0,
        MatMut::new(dw_hh, gh, d.state),
    );
    if let Some(db) = db_hh {
        rnn_kernels::reduce::colsum_add(dp, db);
    }
}

/// The cell implementation for `kind`.
pub(crate) fn cell_for(kind: CellKind) -> &'static dyn Cell {
    match kind {
        CellKind::Elman(n) => elman::for_nonlinearity(n),
        CellKind::Lstm => &lstm::LstmCell,
        CellKind::Gru(GruVariant::LinearBeforeReset) => &gru::GruCell { reset_after: true },
        CellKind::Gru(GruVariant::ResetBeforeLinear) => &gru::GruCell { reset_after: false },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Nonlinearity;

    /// The driver's state count and the configuration's `c0`/`c_n` agree.
    #[test]
    fn every_cell_carries_the_states_its_kind_names() {
        for kind in [
            CellKind::Elman(Nonlinearity::Tanh),
            CellKind::Elman(Nonlinearity::Relu),
            CellKind::Lstm,
            CellKind::Gru(GruVariant::LinearBeforeReset),
            CellKind::Gru(GruVariant::ResetBeforeLinear),
        ] {
            let states = cell_for(kind).states();
            assert_eq!(states, 1 + usize::from(kind.has_cell_state()), "{kind:?}");
            assert!(states <= MAX_STATES);
        }
    }
}
