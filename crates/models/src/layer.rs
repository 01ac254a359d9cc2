//! The shared driver of one layer in one direction, for every cell kind:
//!
//! 1. the input projection in one GEMM per band of steps,
//!    `P[rows, G*H] = X[rows, I] W_ih^T + folded biases`;
//! 2. the time loop: the cell's whole-sequence kernel (recurrent products
//!    and fused kernels, the hidden units split over the threads);
//! 3. backward, the cell's reverse time loop, giving `dP` and `dh_0`;
//! 4. the weight gradients as GEMMs per band: `dW_ih = dP^T X`,
//!    `dX = dP W_ih`, `dW_hh = dP^T H_prev`, biases as column sums.
//!
//! Variable lengths: the network sorts the batch rows by length, longest
//! first, so that the rows inside their sequence at step `t` are the first
//! `active[t]` ([`Run::active`]). The time loop runs over those rows only,
//! and the GEMMs of steps 1 and 4 over [`bands`] of steps that hold few
//! other rows (the rows are time-major, so a band of steps is contiguous
//! only with the rows past their end in between; those rows' `dP` is set
//! to zero, so that they add nothing).
//!
//! Nothing is allocated inside the time loops: the buffers live in a
//! [`LayerTape`] and [`LayerGradBuffers`], sized once per call and reused
//! across calls.
//!
//! State slots: `states` holds `T+1` slots of each state, `[B, S]` for `h`
//! (`S` = `H`, or an LSTM's projection size) and `[B, H]` for an LSTM's
//! cell state. Forward in time, the
//! state before step `t` is slot `t` and after it slot `t+1`; in reverse,
//! before is slot `t+1` and after is slot `t`. Either way the states before
//! every step are `T` consecutive slots aligned with time, so `dW_hh` is one
//! GEMM per band.

use std::ops::Range;

use rnn_kernels::{Mat, MatMut, Op, RecurrentMask, SeqShape, gemm, reduce};

pub(crate) use crate::alloc::{product, resize};
use crate::cells::{
    BwdSequence, Cell, Dims, FwdSequence, HiddenGradInputs, LayerWeights, MAX_STATES,
};
use crate::error::Result;

/// Sizes and direction of one layer run.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Run<'a> {
    pub dims: Dims,
    pub seq_len: usize,
    pub input_size: usize,
    pub reverse: bool,
    /// The state tensors the cell carries ([`Cell::states`]).
    pub states: usize,
    /// Whether the layer's input `x` is batch-first `[B, T, I]` (the
    /// network's input, without lengths): the input projection and its
    /// gradients read and write it by batch row, without a transposed copy.
    pub x_batch_first: bool,
    /// Whether the upstream gradient `dy` is batch-first (the network's
    /// `grad_y`, without lengths).
    pub dy_batch_first: bool,
    /// `[T]`, the rows inside their sequence at each step, or `None` when
    /// all rows run `T` steps. The rows are sorted by length, longest
    /// first: rows `0..active[t]` run step `t`; the others are past their
    /// end, and their state passes through unchanged, and so does its
    /// gradient.
    pub active: Option<&'a [usize]>,
}

impl<'a> Run<'a> {
    /// The time loop's shape, for the cells' whole-sequence kernels.
    fn shape(&self) -> SeqShape<'a> {
        SeqShape {
            seq_len: self.seq_len,
            batch: self.dims.batch,
            hidden: self.dims.hidden,
            reverse: self.reverse,
            active: self.active,
        }
    }

    /// Whether row `b` is inside its sequence at time `t`.
    pub fn valid(&self, t: usize, b: usize) -> bool {
        self.active.is_none_or(|a| b < a[t])
    }

    /// The rows past their sequence's end at step `t`, as a range of rows
    /// of a `[T*B, ..]` buffer.
    fn frozen(&self, t: usize) -> Range<usize> {
        let b = self.dims.batch;
        let active = self.active.map_or(b, |a| a[t]);
        t * b + active..(t + 1) * b
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
    /// `B*S`, the values of one slot of `h`.
    fn bs(&self) -> usize {
        self.dims.batch * self.dims.state
    }
    /// Where state `k`'s slots start in [`LayerTape::states`], and the
    /// values of one of its slots.
    fn state_block(&self, k: usize) -> (usize, usize) {
        let d = self.dims;
        let before: usize = (0..k).map(|j| d.state_width(j)).sum();
        (
            (self.seq_len + 1) * d.batch * before,
            d.batch * d.state_width(k),
        )
    }
    /// The values of one slot of every state (and of their gradients):
    /// `B * (S + (n-1) H)`, `h`'s first.
    fn slot_values(&self) -> usize {
        (0..self.states)
            .map(|k| self.dims.batch * self.dims.state_width(k))
            .sum()
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
    /// The `T+1` slots of each of the cell's states (see the module docs),
    /// `h` (`[T+1, B, S]`) first.
    pub states: Vec<f32>,
    /// `[T, B, H]` per-step values the cell keeps, when it does
    /// ([`Cell::saves_per_step`]).
    pub saved: Vec<f32>,
    /// Recurrent dropout (training): the `[B, S]` mask on `h_{t-1}`, drawn
    /// by the network; empty otherwise.
    pub mask: Vec<f32>,
    /// With `mask`: the masked state slots `[T+1, B, S]` the loop writes.
    pub masked: Vec<f32>,
    scratch: Vec<f32>,
}

impl LayerTape {
    /// Sizes the buffers for `run` (allocating only to grow). Errors: sizes
    /// that overflow or cannot be allocated.
    pub fn prepare(&mut self, cell: &dyn Cell, run: &Run<'_>) -> Result<()> {
        let (d, t) = (run.dims, run.seq_len);
        let step_gates = product(&[d.batch, d.gates, d.hidden], "gates")?;
        let bh = product(&[d.batch, d.hidden], "states")?;
        resize(
            &mut self.gates,
            product(&[t, step_gates], "gates")?,
            "gates",
        )?;
        // `h` is `S <= H` wide, the other states `H`: `S + (n-1) H <= n H`.
        product(&[run.states, t + 1, bh], "states")?;
        let slots = (t + 1) * run.slot_values();
        resize(&mut self.states, slots, "states")?;
        let saved = if cell.saves_per_step(d) {
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

    /// State `k` (0 is `h`, `[B, S]`; an LSTM's `c`, `[B, H]`) in slot `s`.
    pub fn state_of(&self, run: &Run<'_>, k: usize, s: usize) -> &[f32] {
        let (start, n) = run.state_block(k);
        &self.states[start + s * n..start + (s + 1) * n]
    }
    /// Sizes the recurrent-dropout buffers for `run`: `[B, S]` and `[T+1,
    /// B, S]` when `on`, empty otherwise. Errors: no memory.
    pub fn prepare_mask(&mut self, run: &Run<'_>, on: bool) -> Result<()> {
        let (mask, slots) = if on {
            (run.bs(), (run.seq_len + 1) * run.bs())
        } else {
            (0, 0)
        };
        self.mask.clear();
        self.masked.clear();
        resize(&mut self.mask, mask, "recurrent dropout mask")?;
        resize(&mut self.masked, slots, "recurrent dropout mask")
    }

    /// The hidden state in slot `s`, `[B, S]`.
    pub fn state(&self, run: &Run<'_>, s: usize) -> &[f32] {
        self.state_of(run, 0, s)
    }

    /// The output at time `t`, `[B, S]`.
    pub fn output(&self, run: &Run<'_>, t: usize) -> &[f32] {
        self.state(run, run.out_slot(t))
    }
}

/// A run of consecutive steps whose rows are handled by one GEMM: rows
/// `rows` of a time-major `[T*B, ..]` buffer (every row of the steps but
/// the last, then the last step's rows inside their sequences).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Band {
    /// The steps.
    pub steps: Range<usize>,
    /// The rows.
    pub rows: Range<usize>,
}

/// The bands of a run: one for all `T*B` rows without lengths; with them,
/// steps grouped greedily while the rows past their end inside a band stay
/// at most an eighth of the rows inside their sequences.
pub(crate) fn bands(run: &Run<'_>) -> Vec<Band> {
    let (t_len, b) = (run.seq_len, run.dims.batch);
    let Some(active) = run.active else {
        return vec![Band {
            steps: 0..t_len,
            rows: 0..t_len * b,
        }];
    };
    let mut out = Vec::new();
    let mut t0 = 0;
    while t0 < t_len {
        let (mut t1, mut real, mut waste) = (t0 + 1, active[t0], 0);
        while t1 < t_len && 8 * (waste + b - active[t1 - 1]) <= real + active[t1] {
            waste += b - active[t1 - 1];
            real += active[t1];
            t1 += 1;
        }
        if active[t1 - 1] > 0 || t1 - 1 > t0 {
            out.push(Band {
                steps: t0..t1,
                rows: t0 * b..(t1 - 1) * b + active[t1 - 1],
            });
        }
        t0 = t1;
    }
    out
}

/// A block of rows where the layer's input `x` and its time-major `[T*B,
/// ..]` gate buffers meet in one GEMM: `n` rows of `x` from `x_row`
/// (contiguous), and rows `p_row, p_row + step, ...` of the gates.
struct XBlock {
    x_row: usize,
    p_row: usize,
    step: usize,
    n: usize,
}

/// The [`XBlock`]s of `run`: each band's rows for a time-major `x`; one
/// block per batch row `b` for a batch-first one (`T` rows of `x` from
/// `b*T`, gate rows `b, b+B, ...`; no lengths, so the one band is every
/// row).
fn x_blocks(run: &Run<'_>, bands: &[Band]) -> Vec<XBlock> {
    let (t, b) = (run.seq_len, run.dims.batch);
    if run.x_batch_first {
        return (0..b)
            .map(|r| XBlock {
                x_row: r * t,
                p_row: r,
                step: b,
                n: t,
            })
            .collect();
    }
    bands
        .iter()
        .map(|band| XBlock {
            x_row: band.rows.start,
            p_row: band.rows.start,
            step: 1,
            n: band.rows.len(),
        })
        .collect()
}

/// Forward over the whole sequence.
///
/// `x`: `[T*B, I]` (time-major rows, rows past their sequence's end
/// finite, e.g. zero); `initial`: each state's initial value (`h0` `[B,
/// S]`, then an LSTM's `c0` `[B, H]`), or `None` for zeros (the first
/// [`Cell::states`] read).
pub(crate) fn forward(
    cell: &dyn Cell,
    w: &LayerWeights<'_>,
    run: &Run<'_>,
    x: &[f32],
    initial: [Option<&[f32]>; MAX_STATES],
    tape: &mut LayerTape,
) {
    let (d, t_len) = (run.dims, run.seq_len);
    let gh = d.gh();
    debug_assert_eq!(
        tape.gates.len(),
        t_len * run.bgh(),
        "LayerTape::prepare not called"
    );

    // 1. Input projection of every step inside its sequence, biases folded
    // in.
    let (scratch, bias_row) = tape.scratch.split_at_mut(cell.scratch_len(d));
    cell.input_bias(w, bias_row);
    let bands = bands(run);
    for band in &bands {
        let rows = band.rows.start * gh..band.rows.end * gh;
        reduce::broadcast_rows(bias_row, &mut tape.gates[rows]);
    }
    let i_len = run.input_size;
    for blk in x_blocks(run, &bands) {
        let gates = &mut tape.gates[blk.p_row * gh..];
        gemm(
            1.0,
            Mat::new(
                &x[blk.x_row * i_len..(blk.x_row + blk.n) * i_len],
                blk.n,
                i_len,
            ),
            Op::N,
            Mat::new(w.w_ih, gh, i_len),
            Op::T,
            1.0,
            MatMut::strided(gates, blk.n, gh, blk.step * gh),
        );
    }

    // Initial states.
    let first = run.prev_slot(if run.reverse { t_len - 1 } else { 0 });
    for (k, v) in initial.into_iter().enumerate().take(run.states) {
        let (start, n) = run.state_block(k);
        let dst = &mut tape.states[start + first * n..start + (first + 1) * n];
        match v {
            Some(v) => dst.copy_from_slice(v),
            None => dst.fill(0.0),
        }
    }

    // 2. The time loop.
    let mask = (!tape.mask.is_empty()).then_some(RecurrentMask {
        mask: &tape.mask,
        masked: &mut tape.masked,
    });
    let seq = FwdSequence {
        gates: &mut tape.gates,
        states: &mut tape.states,
        saved: &mut tape.saved,
        scratch,
        mask,
        shape: run.shape(),
    };
    cell.forward_sequence(w, d, seq);
    // What a cell saves per step may be a GEMM operand of backward (the
    // reset-before-linear GRU's `r * h_prev`): zero, not stale, where a
    // band holds rows past their end.
    if !tape.saved.is_empty() && run.active.is_some() {
        for band in &bands {
            for t in band.steps.start..band.steps.end - 1 {
                let r = run.frozen(t);
                tape.saved[r.start * d.hidden..r.end * d.hidden].fill(0.0);
            }
        }
    }
}

/// Buffers of one layer-direction's backward pass, reusable across calls.
#[derive(Clone, Debug, Default)]
pub(crate) struct LayerGradBuffers {
    dgates: Vec<f32>,
    dhw: Vec<f32>,
    /// The gradients w.r.t. the states, `h`'s `[B, S]` first.
    dstates: Vec<f32>,
    dh_prev: Vec<f32>,
    /// `[T, B, S]`, each step's `dh_t`, when the cell records it.
    dh_steps: Vec<f32>,
    /// `[B, S]` scratch of recurrent dropout (empty without).
    mask_scratch: Vec<f32>,
    scratch: Vec<f32>,
}

impl LayerGradBuffers {
    /// Sizes the buffers for `run` (allocating only to grow). Errors: sizes
    /// that overflow or cannot be allocated.
    pub fn prepare(&mut self, cell: &dyn Cell, run: &Run<'_>) -> Result<()> {
        let (d, t) = (run.dims, run.seq_len);
        let all_gates = product(&[t, d.batch, d.gates, d.hidden], "gate gradients")?;
        let bh = product(&[d.batch, d.hidden], "state gradients")?;
        resize(&mut self.dgates, all_gates, "gate gradients")?;
        resize(
            &mut self.dhw,
            if cell.separate_dhw() { all_gates } else { 0 },
            "gate gradients",
        )?;
        product(&[run.states, bh], "state gradients")?;
        resize(&mut self.dstates, run.slot_values(), "state gradients")?;
        resize(&mut self.dh_prev, run.bs(), "state gradients")?;
        let dh_steps = if cell.records_dh(d) {
            product(&[t, run.bs()], "state gradients")?
        } else {
            0
        };
        resize(&mut self.dh_steps, dh_steps, "state gradients")?;
        resize(&mut self.mask_scratch, run.bs(), "state gradients")?;
        // Bounded as in `LayerTape::prepare`.
        resize(&mut self.scratch, cell.scratch_len(d), "scratch")
    }
}

/// Where one layer-direction's parameter gradients go (views into the
/// gradient buffer); gradients are added.
pub(crate) struct LayerGrads<'a> {
    pub w_ih: &'a mut [f32],
    pub w_hh: &'a mut [f32],
    pub b_ih: Option<&'a mut [f32]>,
    pub b_hh: Option<&'a mut [f32]>,
    pub w_hr: Option<&'a mut [f32]>,
}

/// The upstream gradient of one layer-direction: columns
/// `offset..offset+S` of each row of `dy` (`[T*B, stride]`), plus the
/// gradients w.r.t. the final states (`h`'s `[B, S]` first, then `[B, H]`
/// each, `None` for zero).
pub(crate) struct Upstream<'a> {
    pub dy: &'a [f32],
    pub offset: usize,
    pub stride: usize,
    pub finals: [Option<&'a [f32]>; MAX_STATES],
}

/// Where backward writes the input and initial-state gradients.
pub(crate) struct InputGrads<'a> {
    /// `[T*B, I]`, overwritten.
    pub dx: &'a mut [f32],
    /// `h`'s `[B, S]`, then `[B, H]` each (the first [`Cell::states`]
    /// written).
    pub initial: [&'a mut [f32]; MAX_STATES],
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
        )
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
    let (d, t_len) = (run.dims, run.seq_len);
    let gh = d.gh();
    debug_assert_eq!(
        buf.dgates.len(),
        t_len * run.bgh(),
        "LayerGradBuffers::prepare not called"
    );

    let mut rest = &mut buf.dstates[..];
    for (k, g) in up.finals.into_iter().enumerate().take(run.states) {
        let (d_state, tail) = rest.split_at_mut(d.batch * d.state_width(k));
        rest = tail;
        match g {
            Some(g) => d_state.copy_from_slice(g),
            None => d_state.fill(0.0),
        }
    }

    // 3. The reverse time loop.
    let seq = BwdSequence {
        gates: &tape.gates,
        states: &tape.states,
        saved: &tape.saved,
        up: rnn_kernels::Upstream {
            dy: up.dy,
            offset: up.offset,
            stride: up.stride,
            batch_first: run.dy_batch_first,
        },
        dgates: &mut buf.dgates,
        dhw: &mut buf.dhw,
        dstates: &mut buf.dstates,
        dh_spare: &mut buf.dh_prev,
        dh_steps: &mut buf.dh_steps,
        scratch: &mut buf.scratch,
        mask: (!tape.mask.is_empty()).then_some(RecurrentMask {
            mask: &tape.mask,
            masked: &mut buf.mask_scratch,
        }),
        shape: run.shape(),
    };
    cell.backward_sequence(w, d, seq);
    let mut out = out;
    let mut rest = &buf.dstates[..];
    for (dst, k) in out.initial.iter_mut().zip(0..run.states) {
        let (g, tail) = rest.split_at(d.batch * d.state_width(k));
        rest = tail;
        dst.copy_from_slice(g);
    }

    // 4. Weight gradients, one GEMM per band. The rows past their end
    // inside a band get a zero `dP` (the time loop leaves them alone), and
    // the rows of `dX` outside every band are zero.
    let bands = bands(run);
    if run.active.is_some() {
        out.dx.fill(0.0);
        for band in &bands {
            for t in band.steps.start..band.steps.end - 1 {
                let r = run.frozen(t);
                buf.dgates[r.start * gh..r.end * gh].fill(0.0);
                if !buf.dhw.is_empty() {
                    buf.dhw[r.start * gh..r.end * gh].fill(0.0);
                }
            }
        }
    }
    let (i_len, first_prev) = (
        run.input_size,
        run.prev_slot(0).min(run.prev_slot(t_len - 1)),
    );
    let mut grads = grads;
    for blk in x_blocks(run, &bands) {
        let dgates = Mat::strided(&buf.dgates[blk.p_row * gh..], blk.n, gh, blk.step * gh);
        let xs = blk.x_row * i_len..(blk.x_row + blk.n) * i_len;
        let xm = Mat::new(&x[xs.clone()], blk.n, i_len);
        gemm(
            1.0,
            dgates,
            Op::T,
            xm,
            Op::N,
            1.0,
            MatMut::new(grads.w_ih, gh, i_len),
        );
        gemm(
            1.0,
            dgates,
            Op::N,
            Mat::new(w.w_ih, gh, i_len),
            Op::N,
            0.0,
            MatMut::new(&mut out.dx[xs], blk.n, i_len),
        );
    }
    for band in &bands {
        let (r0, n) = (band.rows.start, band.rows.len());
        if let Some(db) = grads.b_ih.as_deref_mut() {
            reduce::colsum_add(&buf.dgates[r0 * gh..(r0 + n) * gh], db);
        }
        // The recurrent product's left operand: the states, masked with
        // recurrent dropout.
        let h_prev = if tape.mask.is_empty() {
            &tape.states
        } else {
            &tape.masked
        };
        let h0 = first_prev * run.bs() + r0 * d.state;
        let inputs = HiddenGradInputs {
            dgates: &buf.dgates[r0 * gh..(r0 + n) * gh],
            dhw: rows_of(&buf.dhw, &band.rows, gh),
            h_prev: &h_prev[h0..h0 + n * d.state],
            saved: rows_of(&tape.saved, &band.rows, d.hidden),
            rows: n,
        };
        cell.hidden_weight_grads(d, inputs, grads.w_hh, grads.b_hh.as_deref_mut());
        if let Some(dw_hr) = grads.w_hr.as_deref_mut() {
            let dh = rows_of(&buf.dh_steps, &band.rows, d.state);
            let saved = rows_of(&tape.saved, &band.rows, d.hidden);
            cell.projection_grads(d, dh, saved, dw_hr);
        }
    }
}

/// Rows `rows` of a `[T*B, width]` buffer, or the empty buffer itself.
fn rows_of<'a>(v: &'a [f32], rows: &Range<usize>, width: usize) -> &'a [f32] {
    if v.is_empty() {
        v
    } else {
        &v[rows.start * width..rows.end * width]
    }
}
