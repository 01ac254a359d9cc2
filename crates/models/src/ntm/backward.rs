//! Backpropagation through time of the NTM: per step in reverse, one
//! parallel task per block of batch rows runs the rows' heads, then the
//! head layer's and the controller's input gradients (on weights packed
//! transposed once per call); after the loop, every weight gradient as one
//! GEMM over all `T*B` rows.

use rnn_kernels::packed::{self, pack_transposed};
use rnn_kernels::{Mat, MatMut, lstm, reduce, threads};

use super::addressing::softmax_backward;
use super::config::{Controller, MemoryInit};
use super::model::{
    MEMORY_CHECKPOINT, Ntm, NtmGradScratch, NtmTape, in_blocks, take, take_ref, total,
};
use super::row::{self, Grads, Saved, Sizes};
use crate::error::{Error, Result, check_len};
use crate::layer::{product, resize};
use crate::linear::{bias_grad, input_grad, weight_grad};
use crate::params::Params;

impl Ntm {
    /// Gradients of `sum(y * dy)` for the last [`Ntm::forward_train`] on
    /// `tape`: `dy` `[T, B, O]` (gradient w.r.t. the logits). Writes every
    /// parameter's gradient into `grads` (overwritten; layout of
    /// [`Ntm::zero_grads`]) and, if given, `dx` `[T, B, I]`.
    ///
    /// Errors: a tape not filled by this machine, a wrong length.
    pub fn backward(
        &self,
        tape: &NtmTape,
        dy: &[f32],
        grads: &mut Params,
        dx: Option<&mut [f32]>,
        scratch: &mut NtmGradScratch,
    ) -> Result<()> {
        if tape.config.as_ref() != Some(&self.config) || !tape.keep {
            return Err(Error::Unexpected(
                "backward needs a tape filled by forward_train on the same machine".into(),
            ));
        }
        let s = Sizes::new(&self.config);
        let (t, b) = (tape.t, tape.b);
        check_len("grad_y", dy, &[t, b, s.o])?;
        if grads.infos() != self.params.infos() {
            return Err(Error::Unexpected(
                "grads must have the machine's parameter layout (Ntm::zero_grads)".into(),
            ));
        }
        if let Some(dx) = dx.as_deref() {
            check_len("grad_x", dx, &[t, b, s.i])?;
        }
        let hn = s.heads() * s.n;
        let [dmem0, dmem1] = &mut scratch.dmem;
        let [dw0, dw1] = &mut scratch.dw;
        let packed = total(s.packed_backward())
            .ok_or_else(|| Error::Unexpected("NTM packed weights: size overflows".into()))?;
        let sizes: [(&mut Vec<f32>, &[usize], &str); 12] = [
            (&mut scratch.dz, &[t + 1, b, s.z], "NTM grad states"),
            (&mut scratch.dg, &[t, b, s.g], "NTM grad gates"),
            (&mut scratch.dp, &[t, b, s.p], "NTM grad head parameters"),
            (dmem0, &[b, s.mem()], "NTM grad memory"),
            (dmem1, &[b, s.mem()], "NTM grad memory"),
            (dw0, &[b, hn], "NTM grad weightings"),
            (dw1, &[b, hn], "NTM grad weightings"),
            (&mut scratch.dc, &[b, s.c], "NTM grad cells"),
            (&mut scratch.dh, &[b, s.c], "NTM grad hidden"),
            (&mut scratch.rows, &[b, s.scratch()], "NTM grad scratch"),
            (&mut scratch.packed, &[packed], "NTM grad packed weights"),
            (
                &mut scratch.segment,
                &[b, MEMORY_CHECKPOINT, s.mem()],
                "NTM grad memory segment",
            ),
        ];
        for (v, dims, what) in sizes {
            let n = product(dims, what)?;
            resize(v, n, what)?;
        }
        threads::install(|| self.run_backward(tape, dy, grads, dx, scratch, &s));
        Ok(())
    }

    /// The backward pass, in the reverse order of the forward's steps
    /// (docs/ntm.md): the output layer over every step at once; per step
    /// in reverse, the heads of every row (addressing, reads, write), the
    /// head layer and the controller; then the controller's and the head
    /// layer's weights as GEMMs over all `T*B` rows, and the learned
    /// initial state.
    fn run_backward(
        &self,
        tape: &NtmTape,
        dy: &[f32],
        grads: &mut Params,
        dx: Option<&mut [f32]>,
        sc: &mut NtmGradScratch,
        s: &Sizes,
    ) {
        self.output_backward(tape, dy, grads, sc, s);
        sc.dmem[0].fill(0.0);
        sc.dw[0].fill(0.0);
        sc.dc.fill(0.0);
        // `cur` is the slot of the gradients flowing into step `t` from
        // later steps; the step writes the other one.
        let mut cur = 0;
        let packed = std::mem::take(&mut sc.packed);
        let weights = self.pack_step_weights(packed, s);
        let b = tape.b;
        let block = b.div_ceil(2 * threads::current_threads()).max(1);
        for t in (0..tape.t).rev() {
            in_blocks(
                BackStep::of(tape, t, cur, sc, s),
                b,
                block,
                &|step, rows| step.split_rows(rows, s),
                &|rows| rows.run(tape, t, &weights, s),
            );
            cur = 1 - cur;
        }
        sc.packed = weights.buffer;
        self.controller_weight_grads(tape, grads, dx, sc, s);
        self.head_layer_weight_grads(tape, grads, sc, s);
        self.initial_state_backward(tape, grads, cur, sc, s);
    }

    /// The controller's input weight (`weight_ih` of an LSTM, `weight` of
    /// a feed-forward controller) and its name: `[G, U]`, `U = I + R*M`
    /// (the input `x_t`, then the reads `r_{t-1}`).
    fn controller_input_weight(&self) -> (&'static str, &[f32]) {
        let name = match self.config.controller {
            Controller::Lstm => "controller.weight_ih",
            Controller::FeedForward => "controller.weight",
        };
        (name, self.p(name))
    }

    /// Output layer `y = [h, r] W_out^T + b` of every step: `dz = dy W_out`
    /// (slot 0, the initial state's, zeroed), `dW_out = dy^T z`, `db =
    /// colsum(dy)`.
    fn output_backward(
        &self,
        tape: &NtmTape,
        dy: &[f32],
        grads: &mut Params,
        sc: &mut NtmGradScratch,
        s: &Sizes,
    ) {
        let (b, rows) = (tape.b, tape.t * tape.b);
        sc.dz[..b * s.z].fill(0.0);
        let dy_view = Mat::new(dy, rows, s.o);
        let dz = MatMut::new(&mut sc.dz[b * s.z..], rows, s.z);
        input_grad(
            dy_view,
            Mat::new(self.p("output.weight"), s.o, s.z),
            0.0,
            dz,
        );
        let g_out = grads.get_mut("output.weight").expect("layout");
        let z = Mat::new(&tape.z[b * s.z..], rows, s.z);
        weight_grad(dy_view, z, MatMut::new(g_out, s.o, s.z));
        bias_grad(dy, grads.get_mut("output.bias").expect("layout"));
    }

    /// The per-step weights of the backward, packed transposed into
    /// `buffer` (`rnn_kernels::packed`): `W_heads` `[P, C]` for `dh +=
    /// dp W_heads`, `W_hh` `[G, C]` (LSTM) for `dh_prev += dg W_hh`, the
    /// reads' columns of the input weight `[G, R*M]` for `dr_prev += dg
    /// W_r`.
    fn pack_step_weights(&self, mut buffer: Vec<f32>, s: &Sizes) -> BackWeights {
        let (lstm, rm) = (s.lstm, s.u - s.i);
        let lens = s.packed_backward().expect("sized by backward");
        {
            let (heads, rest) = buffer.split_at_mut(lens[0]);
            let (hh, read) = rest.split_at_mut(lens[1]);
            pack_transposed(self.p("heads.weight"), s.c, s.p, s.c, heads);
            if lstm {
                pack_transposed(self.p("controller.weight_hh"), s.c, s.g, s.c, hh);
            }
            let (_, w_in) = self.controller_input_weight();
            pack_transposed(&w_in[s.i..], rm, s.g, s.u, read);
        }
        BackWeights { buffer, lens, lstm }
    }

    /// The controller's weights and biases from every step's `dg` at once:
    /// `dW_x = dg^T x`, `dW_r = dg^T r_{t-1}`, `dW_hh = dg^T h_{t-1}`,
    /// biases `colsum(dg)`; and `dx = dg W_x` when asked.
    fn controller_weight_grads(
        &self,
        tape: &NtmTape,
        grads: &mut Params,
        dx: Option<&mut [f32]>,
        sc: &NtmGradScratch,
        s: &Sizes,
    ) {
        let rows = tape.t * tape.b;
        let dg = &sc.dg[..rows * s.g];
        let dg_view = Mat::new(dg, rows, s.g);
        let (w_in_name, w_in) = self.controller_input_weight();
        if let Some(dx) = dx {
            let w_x = Mat::strided(w_in, s.g, s.i, s.u);
            input_grad(dg_view, w_x, 0.0, MatMut::new(dx, rows, s.i));
        }
        let g_in = grads.get_mut(w_in_name).expect("layout");
        let x_view = Mat::new(&tape.x, rows, s.i);
        weight_grad(dg_view, x_view, MatMut::strided(g_in, s.g, s.i, s.u));
        let reads = Mat::strided(&tape.z[s.c..], rows, s.z - s.c, s.z);
        let g_read = MatMut::strided(&mut g_in[s.i..], s.g, s.u - s.i, s.u);
        weight_grad(dg_view, reads, g_read);
        match self.config.controller {
            Controller::Lstm => {
                for name in ["controller.bias_ih", "controller.bias_hh"] {
                    bias_grad(dg, grads.get_mut(name).expect("layout"));
                }
                let h_prev = Mat::strided(&tape.z, rows, s.c, s.z);
                let g_hh = grads.get_mut("controller.weight_hh").expect("layout");
                weight_grad(dg_view, h_prev, MatMut::new(g_hh, s.g, s.c));
            }
            Controller::FeedForward => {
                bias_grad(dg, grads.get_mut("controller.bias").expect("layout"));
            }
        }
    }

    /// The head layer's weight and bias from every step's `dp` at once:
    /// `dW_heads = dp^T h`, `db = colsum(dp)`.
    fn head_layer_weight_grads(
        &self,
        tape: &NtmTape,
        grads: &mut Params,
        sc: &NtmGradScratch,
        s: &Sizes,
    ) {
        let (b, rows) = (tape.b, tape.t * tape.b);
        let dp = &sc.dp[..rows * s.p];
        let h = Mat::strided(&tape.z[b * s.z..], rows, s.c, s.z);
        let g_heads = grads.get_mut("heads.weight").expect("layout");
        weight_grad(Mat::new(dp, rows, s.p), h, MatMut::new(g_heads, s.p, s.c));
        bias_grad(dp, grads.get_mut("heads.bias").expect("layout"));
    }

    /// The learned initial state, its gradients summed over the batch: the
    /// reads and (LSTM) `h` from slot 0 of `dz`, `c` from the carried cell
    /// gradient, the weighting logits through their softmax, and (learned
    /// memory) the memory from slot `cur` of the memory gradients.
    fn initial_state_backward(
        &self,
        tape: &NtmTape,
        grads: &mut Params,
        cur: usize,
        sc: &mut NtmGradScratch,
        s: &Sizes,
    ) {
        let hn = s.heads() * s.n;
        let dz0 = &sc.dz[..tape.b * s.z];
        let sum_columns = |g: &mut [f32], cols: std::ops::Range<usize>| {
            g.fill(0.0);
            for r in dz0.chunks_exact(s.z) {
                g.iter_mut()
                    .zip(&r[cols.clone()])
                    .for_each(|(g, &d)| *g += d);
            }
        };
        sum_columns(grads.get_mut("init.read").expect("layout"), s.c..s.z);
        if self.config.controller == Controller::Lstm {
            sum_columns(grads.get_mut("init.h").expect("layout"), 0..s.c);
            let g_c = grads.get_mut("init.c").expect("layout");
            g_c.fill(0.0);
            reduce::colsum_add(&sc.dc, g_c);
        }
        let w0 = &tape.w[..hn];
        let g_logits = grads.get_mut("init.weight_logits").expect("layout");
        g_logits.fill(0.0);
        for drow in sc.dw[cur].chunks_exact(hn) {
            for h in 0..s.heads() {
                let r = h * s.n..(h + 1) * s.n;
                softmax_backward(&w0[r.clone()], &drow[r.clone()], &mut g_logits[r]);
            }
        }
        if self.config.memory == MemoryInit::Learned {
            // Summed over the batch, then `[M, N]` back to `[N, M]`.
            let g_mem = grads.get_mut("init.memory").expect("layout");
            let (dmem, spare) = pair(&mut sc.dmem, cur);
            let total = &mut spare[..s.mem()];
            total.fill(0.0);
            reduce::colsum_add(dmem, total);
            for (i, location) in g_mem.chunks_exact_mut(s.m).enumerate() {
                for (j, g) in location.iter_mut().enumerate() {
                    *g = total[j * s.n + i];
                }
            }
        }
    }
}

/// The packed weights of the backward's steps (see
/// [`Ntm::pack_step_weights`]).
struct BackWeights {
    buffer: Vec<f32>,
    /// Lengths of `W_heads^T`, `W_hh^T` (0 without an LSTM), `W_r^T`.
    lens: [usize; 3],
    lstm: bool,
}

impl BackWeights {
    /// `(W_heads, W_hh, W_r)`, packed transposed.
    fn parts(&self) -> (&[f32], &[f32], &[f32]) {
        let (heads, rest) = self.buffer.split_at(self.lens[0]);
        let (hh, read) = rest.split_at(self.lens[1]);
        (heads, hh, &read[..self.lens[2]])
    }
}

/// The gradient buffers of one step of the backward for a block of batch
/// rows (from row `r0`).
struct BackStep<'a> {
    r0: usize,
    /// `[rows, R+W, N]` in: the weightings' gradient from later steps
    /// (clobbered).
    dw_in: &'a mut [f32],
    /// `[rows, R+W, N]` written: w.r.t. the weightings before the step.
    dw_out: &'a mut [f32],
    /// `[rows, M, N]` in: w.r.t. the memory after the step.
    dmem_in: &'a [f32],
    /// `[rows, M, N]` written: w.r.t. the memory before the step.
    dmem_out: &'a mut [f32],
    /// `[rows, P]` written.
    dp: &'a mut [f32],
    /// `[rows, scratch]`.
    scratch: &'a mut [f32],
    /// `[rows, MEMORY_CHECKPOINT, M, N]`: the memories of the current
    /// segment of steps.
    segment: &'a mut [f32],
    /// `[rows, Z]`: w.r.t. `(h_t, r_t)`; its `h` columns gain the head
    /// layer's gradient.
    dz_t: &'a mut [f32],
    /// `[rows, Z]`: w.r.t. `(h_{t-1}, r_{t-1})`, accumulated.
    dz_prev: &'a mut [f32],
    /// `[rows, G]` written.
    dg: &'a mut [f32],
    /// `[rows, C]` scratch.
    dh: &'a mut [f32],
    /// `[rows, C]` (LSTM; empty otherwise): the cell gradient, carried.
    dc: &'a mut [f32],
}

impl<'a> BackStep<'a> {
    /// Every row of step `t`, gradients from later steps in slot `cur`.
    fn of(tape: &NtmTape, t: usize, cur: usize, sc: &'a mut NtmGradScratch, s: &Sizes) -> Self {
        let b = tape.b;
        let (dmem_in, dmem_out) = pair(&mut sc.dmem, cur);
        let (dw_in, dw_out) = pair(&mut sc.dw, cur);
        let (dz_prev, dz_t) = sc.dz[t * b * s.z..(t + 2) * b * s.z].split_at_mut(b * s.z);
        BackStep {
            r0: 0,
            dw_in,
            dw_out,
            dmem_in,
            dmem_out,
            dp: &mut sc.dp[t * b * s.p..(t + 1) * b * s.p],
            scratch: &mut sc.rows,
            segment: &mut sc.segment,
            dz_t,
            dz_prev,
            dg: &mut sc.dg[t * b * s.g..(t + 1) * b * s.g],
            dh: &mut sc.dh,
            dc: &mut sc.dc,
        }
    }

    /// Splits the first `rows` batch rows off every buffer.
    fn split_rows(&mut self, rows: usize, s: &Sizes) -> BackStep<'a> {
        let hn = s.heads() * s.n;
        let lstm_c = if self.dc.is_empty() { 0 } else { s.c };
        let r0 = self.r0;
        self.r0 += rows;
        BackStep {
            r0,
            dw_in: take(&mut self.dw_in, rows * hn),
            dw_out: take(&mut self.dw_out, rows * hn),
            dmem_in: take_ref(&mut self.dmem_in, rows * s.mem()),
            dmem_out: take(&mut self.dmem_out, rows * s.mem()),
            dp: take(&mut self.dp, rows * s.p),
            scratch: take(&mut self.scratch, rows * s.scratch()),
            segment: take(&mut self.segment, rows * MEMORY_CHECKPOINT * s.mem()),
            dz_t: take(&mut self.dz_t, rows * s.z),
            dz_prev: take(&mut self.dz_prev, rows * s.z),
            dg: take(&mut self.dg, rows * s.g),
            dh: take(&mut self.dh, rows * s.c),
            dc: take(&mut self.dc, rows * lstm_c),
        }
    }

    /// Step `t` in reverse for these rows: each row's heads (write, reads,
    /// addressing: `row::backward`), the head layer `dh_t += dp_t W_heads`,
    /// then the controller: the gate gradients `dg_t` (LSTM cell or
    /// `tanh`), `dh_{t-1} += dg_t W_hh` (LSTM) and `dr_{t-1} += dg_t W_r`.
    fn run(self, tape: &NtmTape, t: usize, wt: &BackWeights, s: &Sizes) {
        let (b, hn, rows) = (tape.b, s.heads() * s.n, self.dp.len() / s.p);
        // Row `r` of the block at step `step` in a tape buffer of `width`
        // values per batch row.
        let at = |step: usize, r: usize, width: usize| {
            let row = step * b + self.r0 + r;
            row * width..(row + 1) * width
        };
        let mine = |r: usize, width: usize| r * width..(r + 1) * width;
        // The segment of steps `first..end` holding `t`: on its last step
        // (the first the backward meets), recompute the rows' memories
        // from the segment's checkpoint, as the forward wrote them.
        let first = t - t % MEMORY_CHECKPOINT;
        let end = (first + MEMORY_CHECKPOINT).min(tape.t);
        let mem = s.mem();
        let segment_len = MEMORY_CHECKPOINT * mem;
        if t + 1 == end {
            let checkpoint = 2 + first / MEMORY_CHECKPOINT;
            for r in 0..rows {
                let seg = &mut self.segment[mine(r, segment_len)];
                seg[..mem].copy_from_slice(&tape.mem[at(checkpoint, r, mem)]);
                for step in first..end - 1 {
                    let j = step - first;
                    let (prev, next) = seg[j * mem..(j + 2) * mem].split_at_mut(mem);
                    let w = &tape.w[at(step + 1, r, hn)];
                    row::write(s, w, &tape.ea[at(step, r, s.ea())], prev, next);
                }
            }
        }
        let j = t - first;
        for r in 0..rows {
            let fw = Saved {
                p: &tape.p[at(t, r, s.p)],
                mem: &self.segment[r * segment_len + j * mem..][..mem],
                w_prev: &tape.w[at(t, r, hn)],
                w: &tape.w[at(t + 1, r, hn)],
                saves: &tape.saves[at(t, r, s.row_save())],
                ea: &tape.ea[at(t, r, s.ea())],
            };
            let g = Grads {
                reads: &self.dz_t[r * s.z + s.c..(r + 1) * s.z],
                mem: &self.dmem_in[mine(r, s.mem())],
                w: &mut self.dw_in[mine(r, hn)],
                w_prev: &mut self.dw_out[mine(r, hn)],
                mem_prev: &mut self.dmem_out[mine(r, s.mem())],
                p: &mut self.dp[mine(r, s.p)],
                scratch: &mut self.scratch[mine(r, s.scratch())],
            };
            row::backward(s, fw, g);
        }
        let (w_heads, w_hh, w_read) = wt.parts();
        packed::product(
            self.dp,
            rows,
            s.p,
            w_heads,
            (s.c, s.p),
            self.dz_t,
            s.z,
            true,
        );
        for (d, r) in self
            .dh
            .chunks_exact_mut(s.c)
            .zip(self.dz_t.chunks_exact(s.z))
        {
            d.copy_from_slice(&r[..s.c]);
        }
        // This block's rows of step `step` in a tape buffer of `width`
        // values per batch row.
        fn rows_of(v: &[f32], first_row: usize, rows: usize, width: usize) -> &[f32] {
            &v[first_row * width..(first_row + rows) * width]
        }
        let block = |v, step: usize, width| rows_of(v, step * b + self.r0, rows, width);
        if wt.lstm {
            let gates = block(&tape.gates, t, s.g);
            let (c_prev, c) = (block(&tape.c, t, s.c), block(&tape.c, t + 1, s.c));
            lstm::backward(gates, c_prev, c, self.dh, self.dc, self.dg, s.c);
            packed::product(
                self.dg,
                rows,
                s.g,
                w_hh,
                (s.c, s.g),
                self.dz_prev,
                s.z,
                true,
            );
        } else {
            // h = tanh(gates): dg = dh (1 - h^2).
            let h = block(&tape.z, t + 1, s.z);
            for ((d, hr), dr) in self
                .dg
                .chunks_exact_mut(s.c)
                .zip(h.chunks_exact(s.z))
                .zip(self.dh.chunks_exact(s.c))
            {
                for ((d, &h), &g) in d.iter_mut().zip(&hr[..s.c]).zip(dr) {
                    *d = g * (1.0 - h * h);
                }
            }
        }
        let rm = s.z - s.c;
        let dr_prev = &mut self.dz_prev[s.c..];
        packed::product(self.dg, rows, s.g, w_read, (rm, s.g), dr_prev, s.z, true);
    }
}

/// `(v[k], v[1-k])`: this step's input buffer and its output buffer.
fn pair(v: &mut [Vec<f32>; 2], k: usize) -> (&mut [f32], &mut [f32]) {
    let [a, b] = v;
    if k == 0 { (a, b) } else { (b, a) }
}
