//! Backpropagation through time of the NTM: per step in reverse, the heads
//! of every batch row (in parallel), then the head layer and the controller
//! as GEMMs; after the loop, every weight gradient as one GEMM over all
//! `T*B` rows.

use rayon::prelude::*;
use rnn_kernels::{Mat, MatMut, lstm, reduce, threads};

use super::addressing::softmax_backward;
use super::config::{Controller, MemoryInit};
use super::model::{Ntm, NtmGradScratch, NtmTape};
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
        let sizes: [(&mut Vec<f32>, &[usize], &str); 10] = [
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
        for t in (0..tape.t).rev() {
            heads_backward(tape, t, cur, sc, s);
            self.head_layer_backward(t, tape.b, sc, s);
            self.controller_backward(tape, t, sc, s);
            cur = 1 - cur;
        }
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

    /// Head layer `p_t = h_t W_heads^T + b` at step `t`: `dh_t += dp_t
    /// W_heads` (into `dz`'s `h` columns of slot `t + 1`).
    fn head_layer_backward(&self, t: usize, b: usize, sc: &mut NtmGradScratch, s: &Sizes) {
        let dz_t = &mut sc.dz[(t + 1) * b * s.z..(t + 2) * b * s.z];
        let dp_t = Mat::new(&sc.dp[t * b * s.p..(t + 1) * b * s.p], b, s.p);
        let w_heads = Mat::new(self.p("heads.weight"), s.p, s.c);
        input_grad(dp_t, w_heads, 1.0, MatMut::strided(dz_t, b, s.c, s.z));
    }

    /// Controller at step `t`: from `dh_t` (and the cell gradient carried
    /// in `sc.dc`), the gate gradients `dg_t`, then `dh_{t-1} += dg_t W_hh`
    /// (LSTM) and `dr_{t-1} += dg_t W_r` into slot `t`.
    fn controller_backward(&self, tape: &NtmTape, t: usize, sc: &mut NtmGradScratch, s: &Sizes) {
        let b = tape.b;
        let (dz_prev, dz_t) = sc.dz[t * b * s.z..(t + 2) * b * s.z].split_at_mut(b * s.z);
        let dg = &mut sc.dg[t * b * s.g..(t + 1) * b * s.g];
        let dh = &mut sc.dh;
        for (d, r) in dh.chunks_exact_mut(s.c).zip(dz_t.chunks_exact(s.z)) {
            d.copy_from_slice(&r[..s.c]);
        }
        match self.config.controller {
            Controller::Lstm => {
                let gates = &tape.gates[t * b * s.g..(t + 1) * b * s.g];
                let c_prev = &tape.c[t * b * s.c..(t + 1) * b * s.c];
                let c = &tape.c[(t + 1) * b * s.c..(t + 2) * b * s.c];
                lstm::backward(gates, c_prev, c, dh, &mut sc.dc, dg, s.c);
                let w_hh = Mat::new(self.p("controller.weight_hh"), s.g, s.c);
                let dh_prev = MatMut::strided(dz_prev, b, s.c, s.z);
                input_grad(Mat::new(dg, b, s.g), w_hh, 1.0, dh_prev);
            }
            Controller::FeedForward => {
                // h = tanh(gates): dg = dh (1 - h^2).
                let h = &tape.z[(t + 1) * b * s.z..(t + 2) * b * s.z];
                for ((d, hr), dr) in dg
                    .chunks_exact_mut(s.c)
                    .zip(h.chunks_exact(s.z))
                    .zip(dh.chunks_exact(s.c))
                {
                    for ((d, &h), &g) in d.iter_mut().zip(&hr[..s.c]).zip(dr) {
                        *d = g * (1.0 - h * h);
                    }
                }
            }
        }
        let (_, w_in) = self.controller_input_weight();
        let w_read = Mat::strided(&w_in[s.i..], s.g, s.u - s.i, s.u);
        let dr_prev = MatMut::strided(&mut dz_prev[s.c..], b, s.z - s.c, s.z);
        input_grad(Mat::new(dg, b, s.g), w_read, 1.0, dr_prev);
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

/// The heads of every batch row at step `t`, in parallel (addressing,
/// reads and write, `row::backward`): from the read gradients (`dz`'s `r`
/// columns of slot `t + 1`) and the memory and weighting gradients of
/// later steps (slot `cur`), the head parameters' gradients `dp_t` and the
/// memory and weighting gradients before the step (the other slot).
fn heads_backward(tape: &NtmTape, t: usize, cur: usize, sc: &mut NtmGradScratch, s: &Sizes) {
    let (b, hn, save) = (tape.b, s.heads() * s.n, s.row_save());
    let (dmem_in, dmem_out) = pair(&mut sc.dmem, cur);
    let (dw_in, dw_out) = pair(&mut sc.dw, cur);
    let dz_t = &sc.dz[(t + 1) * b * s.z..(t + 2) * b * s.z];
    let dp = &mut sc.dp[t * b * s.p..(t + 1) * b * s.p];
    // Batch row `r` of step `step` in a tape buffer of `width` values per row.
    let at =
        |step: usize, r: usize, width: usize| (step * b + r) * width..(step * b + r + 1) * width;
    dw_in
        .par_chunks_mut(hn)
        .zip(dw_out.par_chunks_mut(hn))
        .zip(dmem_out.par_chunks_mut(s.mem()))
        .zip(dp.par_chunks_mut(s.p))
        .zip(sc.rows.par_chunks_mut(s.scratch()))
        .enumerate()
        .for_each(|(r, ((((w, w_prev), mem_prev), p), scratch))| {
            let fw = Saved {
                p: &tape.p[at(t, r, s.p)],
                mem: &tape.mem[at(t, r, s.mem())],
                w_prev: &tape.w[at(t, r, hn)],
                w: &tape.w[at(t + 1, r, hn)],
                saves: &tape.saves[at(t, r, save)],
                ea: &tape.ea[at(t, r, s.ea())],
            };
            let g = Grads {
                reads: &dz_t[r * s.z + s.c..(r + 1) * s.z],
                mem: &dmem_in[r * s.mem()..(r + 1) * s.mem()],
                w,
                w_prev,
                mem_prev,
                p,
                scratch,
            };
            row::backward(s, fw, g);
        });
}

/// `(v[k], v[1-k])`: this step's input buffer and its output buffer.
fn pair(v: &mut [Vec<f32>; 2], k: usize) -> (&mut [f32], &mut [f32]) {
    let [a, b] = v;
    if k == 0 { (a, b) } else { (b, a) }
}
