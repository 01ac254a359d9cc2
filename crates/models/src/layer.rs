//! The shared driver of one layer in one direction, for every cell kind:
//!
//! 1. the input projection of all steps in one GEMM,
//!    `P[T*B, G*H] = X[T*B, I] W_ih^T + folded biases`;
//! 2. per step, the cell's recurrent GEMM(s) and fused kernel(s);
//! 3. backward, per step in reverse, the cell's fused kernel(s) and the GEMM
//!    giving `dh_{t-1}`;
//! 4. after the time loop, the weight gradients as single GEMMs over all
//!    `T*B` rows: `dW_ih = dP^T X`, `dX = dP W_ih`, `dW_hh = dP^T H_prev`,
//!    biases as column sums.
//!
//! Nothing is allocated inside the time loops: the buffers live in a
//! [`LayerTape`] and [`LayerGradBuffers`], sized once per call and reused
//! across calls.
//!
//! State slots: `states` holds `T+1` slots of `[B, H]`. Forward in time, the
//! state before step `t` is slot `t` and after it slot `t+1`; in reverse,
//! before is slot `t+1` and after is slot `t`. Either way the states before
//! every step are `T` consecutive slots aligned with time, so `dW_hh` is one
//! GEMM.

use rnn_kernels::{Mat, MatMut, Op, SeqShape, gemm, reduce};

pub(crate) use crate::alloc::{product, resize};
use crate::cells::{
    BwdSequence, BwdStep, Cell, Dims, FwdSequence, FwdStep, HiddenGradInputs, LayerWeights,
};
use crate::error::Result;

/// Sizes and direction of one layer run.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Run<'a> {
    pub dims: Dims,
    pub seq_len: usize,
    pub input_size: usize,
    pub reverse: bool,
    /// Whether the cell carries a cell state (LSTM).
    pub has_cell_state: bool,
    /// Per-row sequence lengths (`[B]`, each in `1..=T`), or `None` when all
    /// rows run `T` steps. Row `b` is frozen at steps `t >= lengths[b]`: its
    /// state passes through unchanged, and so does its gradient.
    pub lengths: Option<&'a [usize]>,
}

impl Run<'_> {
    /// The time loop's shape, for the cells' whole-sequence kernels.
    fn shape(&self) -> SeqShape {
        SeqShape {
            seq_len: self.seq_len,
            batch: self.dims.batch,
            hidden: self.dims.hidden,
            reverse: self.reverse,
        }
    }

    /// Rows frozen at time `t` (past their sequence's end).
    fn frozen_rows(&self, t: usize) -> impl Iterator<Item = usize> + '_ {
        self.lengths
            .into_iter()
            .flatten()
            .enumerate()
            .filter(move |&(_, &l)| t >= l)
            .map(|(b, _)| b)
    }

    /// Whether row `b` is inside its sequence at time `t`.
    pub fn valid(&self, t: usize, b: usize) -> bool {
        self.lengths.is_none_or(|l| t < l[b])
    }

    fn prev_slot(&self, t: usize) -> usize {
        if self.reverse { t + 1 } else { t }
    }
    fn out_slot(&self, t: usize) -> usize {
        if self.reverse { t } else { t + 1 }
    }
    /// Slot holding the final state.
    pub fn last_slot(&self) -> usize {
        if self.reverse { 0 } else { self.seq_len }
    }
    /// Time steps in processing order.
    fn times(&self) -> impl DoubleEndedIterator<Item = usize> + use<> {
        let (t, rev) = (self.seq_len, self.reverse);
        (0..t).map(move |s| if rev { t - 1 - s } else { s })
    }
    fn bh(&self) -> usize {
        self.dims.batch * self.dims.hidden
    }
    fn bgh(&self) -> usize {
        self.dims.batch * self.dims.gh()
    }
}

/// What one layer-direction keeps from forward for backward.
#[derive(Clone, Debug, Default)]
pub(crate) struct LayerTape {
    /// `[T, B, G*H]` activated gates, by time.
    pub gates: Vec<f32>,
    /// `[T+1, B, H]` hidden-state slots (see the module docs).
    pub states: Vec<f32>,
    /// `[T+1, B, H]` cell-state slots (LSTM), else empty.
    pub cells: Vec<f32>,
    /// `[T, B, H]` per-step values the cell saves (GRU), else empty.
    pub saved: Vec<f32>,
    scratch: Vec<f32>,
}

impl LayerTape {
    /// Sizes the buffers for `run` (allocating only to grow). Errors: sizes
    /// that overflow or cannot be allocated.
    pub fn prepare(&mut self, cell: &dyn Cell, run: &Run<'_>) -> Result<()> {
        let (d, t, has_cell_state) = (run.dims, run.seq_len, run.has_cell_state);
        let step_gates = product(&[d.batch, d.gates, d.hidden], "gates")?;
        let bh = product(&[d.batch, d.hidden], "states")?;
        resize(
            &mut self.gates,
            product(&[t, step_gates], "gates")?,
            "gates",
        )?;
        resize(
            &mut self.states,
            product(&[t + 1, bh], "hidden states")?,
            "hidden states",
        )?;
        let cells = if has_cell_state {
            product(&[t + 1, bh], "cell states")?
        } else {
            0
        };
        resize(&mut self.cells, cells, "cell states")?;
        let saved = if cell.saves_per_step() {
            product(&[t, bh], "saved values")?
        } else {
            0
        };
        resize(&mut self.saved, saved, "saved values")?;
        // A cell's scratch is at most B*G*H + H values: bound that sum here
        // (B*G*H is known to fit) so that the cells' own sums cannot wrap.
        step_gates
            .checked_add(d.hidden)
            .and_then(|n| n.checked_add(d.gh()))
            .ok_or_else(|| crate::alloc::overflow("scratch"))?;
        resize(&mut self.scratch, cell.scratch_len(d) + d.gh(), "scratch")
    }

    /// The hidden state in slot `s`, `[B, H]`.
    pub fn state(&self, run: &Run<'_>, s: usize) -> &[f32] {
        &self.states[s * run.bh()..(s + 1) * run.bh()]
    }
    /// The cell state in slot `s`, `[B, H]` (LSTM).
    pub fn cell(&self, run: &Run<'_>, s: usize) -> &[f32] {
        &self.cells[s * run.bh()..(s + 1) * run.bh()]
    }
    /// The output at time `t`, `[B, H]`.
    pub fn output(&self, run: &Run<'_>, t: usize) -> &[f32] {
        self.state(run, run.out_slot(t))
    }
}

/// `(buf[read slot], buf[write slot])`, two distinct slots of `size` values.
fn slots(buf: &mut [f32], size: usize, read: usize, write: usize) -> (&[f32], &mut [f32]) {
    debug_assert_ne!(read, write);
    if read < write {
        let (a, b) = buf.split_at_mut(write * size);
        (&a[read * size..(read + 1) * size], &mut b[..size])
    } else {
        let (a, b) = buf.split_at_mut(read * size);
        (&b[..size], &mut a[write * size..(write + 1) * size])
    }
}

fn slot(buf: &[f32], size: usize, i: usize) -> &[f32] {
    if buf.is_empty() {
        &[]
    } else {
        &buf[i * size..(i + 1) * size]
    }
}

/// Forward over the whole sequence.
///
/// `x`: `[T*B, I]` (time-major rows); `h0`, `c0`: `[B, H]` or `None` for
/// zeros (`c0` read only by cells with a cell state).
pub(crate) fn forward(
    cell: &dyn Cell,
    w: &LayerWeights<'_>,
    run: &Run<'_>,
    x: &[f32],
    h0: Option<&[f32]>,
    c0: Option<&[f32]>,
    tape: &mut LayerTape,
) {
    let (d, t_len, has_cell_state) = (run.dims, run.seq_len, run.has_cell_state);
    let (bh, bgh, gh) = (run.bh(), run.bgh(), d.gh());
    debug_assert_eq!(
        tape.gates.len(),
        t_len * bgh,
        "LayerTape::prepare not called"
    );

    // 1. Input projection of every step, biases folded in.
    let (scratch, bias_row) = tape.scratch.split_at_mut(cell.scratch_len(d));
    cell.input_bias(w, bias_row);
    reduce::broadcast_rows(bias_row, &mut tape.gates);
    gemm(
        1.0,
        Mat::new(x, t_len * d.batch, run.input_size),
        Op::N,
        Mat::new(w.w_ih, gh, run.input_size),
        Op::T,
        1.0,
        MatMut::new(&mut tape.gates, t_len * d.batch, gh),
    );

    // Initial states.
    let first = run.prev_slot(if run.reverse { t_len - 1 } else { 0 });
    let init = |buf: &mut [f32], v: Option<&[f32]>| {
        let dst = &mut buf[first * bh..(first + 1) * bh];
        match v {
            Some(v) => dst.copy_from_slice(v),
            None => dst.fill(0.0),
        }
    };
    init(&mut tape.states, h0);
    if has_cell_state {
        init(&mut tape.cells, c0);
    }

    // 2. The time loop: the cell's threaded sequence kernel when it has one
    // (variable-length batches keep the per-step loop, which freezes rows).
    if run.lengths.is_none() {
        let seq = FwdSequence {
            gates: &mut tape.gates,
            states: &mut tape.states,
            cells: &mut tape.cells,
            saved: &mut tape.saved,
            scratch: &mut *scratch,
            shape: run.shape(),
        };
        if cell.forward_sequence(w, d, seq) {
            return;
        }
    }
    for t in run.times() {
        let (h_prev, h) = slots(&mut tape.states, bh, run.prev_slot(t), run.out_slot(t));
        let (c_prev, c): (&[f32], &mut [f32]) = if has_cell_state {
            slots(&mut tape.cells, bh, run.prev_slot(t), run.out_slot(t))
        } else {
            (&[], &mut [])
        };
        let saved: &mut [f32] = if tape.saved.is_empty() {
            &mut []
        } else {
            &mut tape.saved[t * bh..(t + 1) * bh]
        };
        let step = FwdStep {
            gates: &mut tape.gates[t * bgh..(t + 1) * bgh],
            h_prev,
            h,
            c_prev,
            c,
            saved,
            scratch: &mut *scratch,
        };
        cell.forward_step(w, d, step);
        for b in run.frozen_rows(t) {
            let row =
                |slot: usize| (slot * d.batch + b) * d.hidden..(slot * d.batch + b + 1) * d.hidden;
            let (from, to) = (row(run.prev_slot(t)), row(run.out_slot(t)));
            tape.states.copy_within(from.clone(), to.start);
            if has_cell_state {
                tape.cells.copy_within(from, to.start);
            }
        }
    }
}

/// Buffers of one layer-direction's backward pass, reusable across calls.
#[derive(Clone, Debug, Default)]
pub(crate) struct LayerGradBuffers {
    dgates: Vec<f32>,
    dhw: Vec<f32>,
    dh: Vec<f32>,
    dh_prev: Vec<f32>,
    dc: Vec<f32>,
    scratch: Vec<f32>,
    /// `[B, H]` copies of frozen rows' `dh` and `dc` around a step.
    carry_dh: Vec<f32>,
    carry_dc: Vec<f32>,
}

impl LayerGradBuffers {
    /// Sizes the buffers for `run` (allocating only to grow). Errors: sizes
    /// that overflow or cannot be allocated.
    pub fn prepare(&mut self, cell: &dyn Cell, run: &Run<'_>) -> Result<()> {
        let (d, t, has_cell_state) = (run.dims, run.seq_len, run.has_cell_state);
        let all_gates = product(&[t, d.batch, d.gates, d.hidden], "gate gradients")?;
        let bh = product(&[d.batch, d.hidden], "state gradients")?;
        resize(&mut self.dgates, all_gates, "gate gradients")?;
        resize(
            &mut self.dhw,
            if cell.separate_dhw() { all_gates } else { 0 },
            "gate gradients",
        )?;
        resize(&mut self.dh, bh, "state gradients")?;
        resize(&mut self.dh_prev, bh, "state gradients")?;
        resize(
            &mut self.dc,
            if has_cell_state { bh } else { 0 },
            "state gradients",
        )?;
        resize(&mut self.scratch, cell.scratch_len(d), "scratch")?;
        let carry = if run.lengths.is_some() { bh } else { 0 };
        resize(&mut self.carry_dh, carry, "state gradients")?;
        resize(
            &mut self.carry_dc,
            if has_cell_state { carry } else { 0 },
            "state gradients",
        )
    }
}

/// Where one layer-direction's parameter gradients go (views into the
/// gradient buffer); gradients are added.
pub(crate) struct LayerGrads<'a> {
    pub w_ih: &'a mut [f32],
    pub w_hh: &'a mut [f32],
    pub b_ih: Option<&'a mut [f32]>,
    pub b_hh: Option<&'a mut [f32]>,
}

/// The upstream gradient of one layer-direction: columns
/// `offset..offset+H` of each row of `dy` (`[T*B, stride]`), plus the
/// gradients w.r.t. the final states (`[B, H]`, `None` for zero).
pub(crate) struct Upstream<'a> {
    pub dy: &'a [f32],
    pub offset: usize,
    pub stride: usize,
    pub dh_n: Option<&'a [f32]>,
    pub dc_n: Option<&'a [f32]>,
}

/// Where backward writes the input and initial-state gradients.
pub(crate) struct InputGrads<'a> {
    /// `[T*B, I]`, overwritten.
    pub dx: &'a mut [f32],
    /// `[B, H]`.
    pub dh0: &'a mut [f32],
    /// `[B, H]` (LSTM), else empty.
    pub dc0: &'a mut [f32],
}

/// Everything one layer-direction's backward needs, so that the two
/// directions of a bidirectional layer can run at once.
pub(crate) struct BackwardJob<'a> {
    pub weights: LayerWeights<'a>,
    pub run: Run<'a>,
    pub x: &'a [f32],
    pub tape: &'a LayerTape,
    pub up: Upstream<'a>,
    pub grads: LayerGrads<'a>,
    pub out: InputGrads<'a>,
    pub bufs: &'a mut LayerGradBuffers,
}

impl BackwardJob<'_> {
    /// Runs [`backward`].
    pub fn run(self, cell: &dyn Cell) {
        backward(
            cell,
            &self.weights,
            &self.run,
            self.x,
            self.tape,
            self.up,
            self.grads,
            self.out,
            self.bufs,
        );
    }
}

/// Backward over the whole sequence, from a tape filled by [`forward`] with
/// the same weights, `run` and `x`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn backward(
    cell: &dyn Cell,
    w: &LayerWeights<'_>,
    run: &Run<'_>,
    x: &[f32],
    tape: &LayerTape,
    up: Upstream<'_>,
    grads: LayerGrads<'_>,
    out: InputGrads<'_>,
    buf: &mut LayerGradBuffers,
) {
    let (d, t_len, has_cell_state) = (run.dims, run.seq_len, run.has_cell_state);
    let (bh, bgh, gh) = (run.bh(), run.bgh(), d.gh());
    let rows = t_len * d.batch;
    debug_assert_eq!(
        buf.dgates.len(),
        t_len * bgh,
        "LayerGradBuffers::prepare not called"
    );

    match up.dh_n {
        Some(g) => buf.dh.copy_from_slice(g),
        None => buf.dh.fill(0.0),
    }
    if has_cell_state {
        match up.dc_n {
            Some(g) => buf.dc.copy_from_slice(g),
            None => buf.dc.fill(0.0),
        }
    }

    // 3. The reverse time loop: the cell's threaded sequence kernel when it
    // has one (not for variable-length batches), else step by step.
    let whole = run.lengths.is_none()
        && cell.backward_sequence(
            w,
            d,
            BwdSequence {
                gates: &tape.gates,
                states: &tape.states,
                cells: &tape.cells,
                saved: &tape.saved,
                up: rnn_kernels::Upstream {
                    dy: up.dy,
                    offset: up.offset,
                    stride: up.stride,
                },
                dgates: &mut buf.dgates,
                dhw: &mut buf.dhw,
                dh: &mut buf.dh,
                dh_spare: &mut buf.dh_prev,
                dc: &mut buf.dc,
                shape: run.shape(),
            },
        );
    if !whole {
        backward_steps(cell, w, run, tape, &up, buf);
    }
    out.dh0.copy_from_slice(&buf.dh);
    if has_cell_state {
        out.dc0.copy_from_slice(&buf.dc);
    }

    // 4. Weight gradients over all T*B rows at once.
    let dgates = Mat::new(&buf.dgates, rows, gh);
    let xm = Mat::new(x, rows, run.input_size);
    gemm(
        1.0,
        dgates,
        Op::T,
        xm,
        Op::N,
        1.0,
        MatMut::new(grads.w_ih, gh, run.input_size),
    );
    let w_ih = Mat::new(w.w_ih, gh, run.input_size);
    gemm(
        1.0,
        dgates,
        Op::N,
        w_ih,
        Op::N,
        0.0,
        MatMut::new(out.dx, rows, run.input_size),
    );
    if let Some(db) = grads.b_ih {
        reduce::colsum_add(&buf.dgates, db);
    }
    let first_prev = run.prev_slot(0).min(run.prev_slot(t_len - 1));
    let inputs = HiddenGradInputs {
        dgates: &buf.dgates,
        dhw: &buf.dhw,
        h_prev: &tape.states[first_prev * bh..(first_prev + t_len) * bh],
        saved: &tape.saved,
        rows,
    };
    cell.hidden_weight_grads(d, inputs, grads.w_hh, grads.b_hh);
}

/// The reverse time loop one step at a time (cells without a sequence
/// kernel, and variable-length batches, whose frozen rows pass their
/// gradients through unchanged): leaves the gradient w.r.t. the initial
/// state in `buf.dh` (and `buf.dc`).
fn backward_steps(
    cell: &dyn Cell,
    w: &LayerWeights<'_>,
    run: &Run<'_>,
    tape: &LayerTape,
    up: &Upstream<'_>,
    buf: &mut LayerGradBuffers,
) {
    let (d, has_cell_state) = (run.dims, run.has_cell_state);
    let (bh, bgh, gh, hd) = (run.bh(), run.bgh(), d.gh(), d.hidden);
    for t in run.times().rev() {
        for (b, dh) in buf.dh.chunks_exact_mut(hd).enumerate() {
            if run.valid(t, b) {
                let row = (t * d.batch + b) * up.stride + up.offset;
                dh.iter_mut()
                    .zip(&up.dy[row..row + hd])
                    .for_each(|(a, g)| *a += g);
            }
        }
        // Frozen rows pass their gradients through the step unchanged.
        for b in run.frozen_rows(t) {
            let r = b * hd..(b + 1) * hd;
            buf.carry_dh[r.clone()].copy_from_slice(&buf.dh[r.clone()]);
            if has_cell_state {
                buf.carry_dc[r.clone()].copy_from_slice(&buf.dc[r]);
            }
        }
        let (prev, cur) = (run.prev_slot(t), run.out_slot(t));
        let dhw: &mut [f32] = if buf.dhw.is_empty() {
            &mut []
        } else {
            &mut buf.dhw[t * bgh..(t + 1) * bgh]
        };
        let step = BwdStep {
            gates: &tape.gates[t * bgh..(t + 1) * bgh],
            dgates: &mut buf.dgates[t * bgh..(t + 1) * bgh],
            dhw,
            h_prev: slot(&tape.states, bh, prev),
            h: slot(&tape.states, bh, cur),
            c_prev: slot(&tape.cells, bh, prev),
            c: slot(&tape.cells, bh, cur),
            saved: slot(&tape.saved, bh, t),
            dh: &buf.dh,
            dc: &mut buf.dc,
            dh_prev: &mut buf.dh_prev,
            scratch: &mut buf.scratch,
        };
        cell.backward_step(w, d, step);
        for b in run.frozen_rows(t) {
            let r = b * hd..(b + 1) * hd;
            buf.dh_prev[r.clone()].copy_from_slice(&buf.carry_dh[r.clone()]);
            if has_cell_state {
                buf.dc[r.clone()].copy_from_slice(&buf.carry_dc[r]);
            }
            let g = (t * d.batch + b) * gh..(t * d.batch + b + 1) * gh;
            buf.dgates[g.clone()].fill(0.0);
            if !buf.dhw.is_empty() {
                buf.dhw[g].fill(0.0);
            }
        }
        std::mem::swap(&mut buf.dh, &mut buf.dh_prev);
    }
}
