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
        if tape.config.as_ref() != Some(&self.config) {
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

    fn run_backward(
        &self,
        tape: &NtmTape,
        dy: &[f32],
        grads: &mut Params,
        dx: Option<&mut [f32]>,
        sc: &mut NtmGradScratch,
        s: &Sizes,
    ) {
        let (t_len, b) = (tape.t, tape.b);
        let rows = t_len * b;
        let lstm = self.config.controller == Controller::Lstm;
        let hn = s.heads() * s.n;
        let save_len = s.heads() * s.save();
        let p = |name: &str| self.params.get(name).expect("parameter of the layout");

        // Output layer: dz = dy W_out, dW_out = dy^T z, db = colsum(dy).
        sc.dz[..b * s.z].fill(0.0);
        let dy_view = Mat::new(dy, rows, s.o);
        let dz = MatMut::new(&mut sc.dz[b * s.z..], rows, s.z);
        input_grad(dy_view, Mat::new(p("output.weight"), s.o, s.z), 0.0, dz);
        let g_out = grads.get_mut("output.weight").expect("layout");
        let z = Mat::new(&tape.z[b * s.z..], rows, s.z);
        weight_grad(dy_view, z, MatMut::new(g_out, s.o, s.z));
        bias_grad(dy, grads.get_mut("output.bias").expect("layout"));

        let (w_in_name, w_in) = if lstm {
            ("controller.weight_ih", p("controller.weight_ih"))
        } else {
            ("controller.weight", p("controller.weight"))
        };
        let w_read_view = Mat::strided(&w_in[s.i..], s.g, s.u - s.i, s.u);
        sc.dmem[0].fill(0.0);
        sc.dw[0].fill(0.0);
        sc.dc.fill(0.0);
        let mut cur = 0;
        for t in (0..t_len).rev() {
            let next = 1 - cur;
            // Heads of every batch row.
            {
                let (dmem_in, dmem_out) = pair(&mut sc.dmem, cur);
                let (dw_in, dw_out) = pair(&mut sc.dw, cur);
                let dz_t = &sc.dz[(t + 1) * b * s.z..(t + 2) * b * s.z];
                let dp = &mut sc.dp[t * b * s.p..(t + 1) * b * s.p];
                let pt = &tape.p[t * b * s.p..(t + 1) * b * s.p];
                let mem = &tape.mem[t * b * s.mem()..(t + 1) * b * s.mem()];
                let w_prev = &tape.w[t * b * hn..(t + 1) * b * hn];
                let w = &tape.w[(t + 1) * b * hn..(t + 2) * b * hn];
                let saves = &tape.saves[t * b * save_len..(t + 1) * b * save_len];
                let ea = &tape.ea[t * b * s.ea()..(t + 1) * b * s.ea()];
                pt.par_chunks(s.p)
                    .zip(mem.par_chunks(s.mem()))
                    .zip(w_prev.par_chunks(hn))
                    .zip(w.par_chunks(hn))
                    .zip(saves.par_chunks(save_len))
                    .zip(ea.par_chunks(s.ea()))
                    .zip(dz_t.par_chunks(s.z))
                    .zip(dmem_in.par_chunks_mut(s.mem()))
                    .zip(dw_in.par_chunks_mut(hn))
                    .zip(dw_out.par_chunks_mut(hn))
                    .zip(dmem_out.par_chunks_mut(s.mem()))
                    .zip(dp.par_chunks_mut(s.p))
                    .zip(sc.rows.par_chunks_mut(s.scratch()))
                    .for_each(|item| {
                        let (
                            (
                                (
                                    (
                                        ((((((((p, mem), w_prev), w), saves), ea), dz), dmem), dw),
                                        dw_prev,
                                    ),
                                    dmem_prev,
                                ),
                                dp,
                            ),
                            scratch,
                        ) = item;
                        let fw = Saved {
                            p,
                            mem,
                            w_prev,
                            w,
                            saves,
                            ea,
                        };
                        let g = Grads {
                            reads: &dz[s.c..],
                            mem: dmem,
                            w: dw,
                            w_prev: dw_prev,
                            mem_prev: dmem_prev,
                            p: dp,
                            scratch,
                        };
                        row::backward(s, fw, g);
                    });
            }
            // Head layer: dh_t += dp_t W_heads.
            let (dz_prev, dz_t) = sc.dz[t * b * s.z..(t + 2) * b * s.z].split_at_mut(b * s.z);
            let dp_t = Mat::new(&sc.dp[t * b * s.p..(t + 1) * b * s.p], b, s.p);
            let w_heads = Mat::new(p("heads.weight"), s.p, s.c);
            input_grad(dp_t, w_heads, 1.0, MatMut::strided(dz_t, b, s.c, s.z));
            // Controller.
            let dg = &mut sc.dg[t * b * s.g..(t + 1) * b * s.g];
            let dh = &mut sc.dh;
            for (d, r) in dh.chunks_exact_mut(s.c).zip(dz_t.chunks_exact(s.z)) {
                d.copy_from_slice(&r[..s.c]);
            }
            if lstm {
                let gates = &tape.gates[t * b * s.g..(t + 1) * b * s.g];
                let c_prev = &tape.c[t * b * s.c..(t + 1) * b * s.c];
                let c = &tape.c[(t + 1) * b * s.c..(t + 2) * b * s.c];
                lstm::backward(gates, c_prev, c, dh, &mut sc.dc, dg, s.c);
                let w_hh = Mat::new(p("controller.weight_hh"), s.g, s.c);
                let dh_prev = MatMut::strided(dz_prev, b, s.c, s.z);
                input_grad(Mat::new(dg, b, s.g), w_hh, 1.0, dh_prev);
            } else {
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
            let dr_prev = MatMut::strided(&mut dz_prev[s.c..], b, s.z - s.c, s.z);
            input_grad(Mat::new(dg, b, s.g), w_read_view, 1.0, dr_prev);
            cur = next;
        }
        let dg = &sc.dg[..rows * s.g];
        let dp = &sc.dp[..rows * s.p];

        // Controller weights: one GEMM each over all T*B rows.
        let dg_view = Mat::new(dg, rows, s.g);
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
        let bias_names: &[&str] = if lstm {
            &["controller.bias_ih", "controller.bias_hh"]
        } else {
            &["controller.bias"]
        };
        for name in bias_names {
            bias_grad(dg, grads.get_mut(name).expect("layout"));
        }
        if lstm {
            let h_prev = Mat::strided(&tape.z, rows, s.c, s.z);
            let g_hh = grads.get_mut("controller.weight_hh").expect("layout");
            weight_grad(dg_view, h_prev, MatMut::new(g_hh, s.g, s.c));
        }
        // Head layer.
        let h = Mat::strided(&tape.z[b * s.z..], rows, s.c, s.z);
        let g_heads = grads.get_mut("heads.weight").expect("layout");
        weight_grad(Mat::new(dp, rows, s.p), h, MatMut::new(g_heads, s.p, s.c));
        bias_grad(dp, grads.get_mut("heads.bias").expect("layout"));

        // Initial state: summed over the batch.
        let dz0 = &sc.dz[..b * s.z];
        let g_read = grads.get_mut("init.read").expect("layout");
        g_read.fill(0.0);
        for r in dz0.chunks_exact(s.z) {
            g_read.iter_mut().zip(&r[s.c..]).for_each(|(g, &d)| *g += d);
        }
        if lstm {
            let g_h = grads.get_mut("init.h").expect("layout");
            g_h.fill(0.0);
            for r in dz0.chunks_exact(s.z) {
                g_h.iter_mut().zip(&r[..s.c]).for_each(|(g, &d)| *g += d);
            }
            let g_c = grads.get_mut("init.c").expect("layout");
            g_c.fill(0.0);
            reduce::colsum_add(&sc.dc, g_c);
        }
        let dw0 = &sc.dw[cur];
        let w0 = &tape.w[..hn];
        let g_logits = grads.get_mut("init.weight_logits").expect("layout");
        g_logits.fill(0.0);
        for drow in dw0.chunks_exact(hn) {
            for h in 0..s.heads() {
                let r = h * s.n..(h + 1) * s.n;
                softmax_backward(&w0[r.clone()], &drow[r.clone()], &mut g_logits[r]);
            }
        }
        if self.config.memory == MemoryInit::Learned {
            let g_mem = grads.get_mut("init.memory").expect("layout");
            g_mem.fill(0.0);
            reduce::colsum_add(&sc.dmem[cur], g_mem);
        }
    }
}

/// `(v[k], v[1-k])`: this step's input buffer and its output buffer.
fn pair(v: &mut [Vec<f32>; 2], k: usize) -> (&mut [f32], &mut [f32]) {
    let [a, b] = v;
    if k == 0 { (a, b) } else { (b, a) }
}
