//! One batch row of one NTM step: every head's addressing, the reads and the
//! write, forward and backward, on the head-parameter vector `p` laid out as
//! docs/ntm.md says (read heads' chunks, then write heads'), with the
//! vector kernels of `rnn_kernels::addressing` (memory column-major, `[M,
//! N]`).

use rnn_kernels::addressing::{self as kernels, Head, HeadGrads, Steps, WriteGrads};
use rnn_kernels::packed::packed_len;

use super::addressing::{sigmoid, softmax_backward, softmax_in_place, softplus};
use super::config::NtmConfig;

/// The sizes one step needs, taken from an [`NtmConfig`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sizes {
    pub i: usize,
    pub o: usize,
    pub c: usize,
    pub n: usize,
    pub m: usize,
    pub r: usize,
    pub w: usize,
    pub k: usize,
    /// Controller input `I + R*M`.
    pub u: usize,
    /// Head parameters per step.
    pub p: usize,
    /// State row `[h, r^0 .. r^{R-1}]`: `C + R*M`.
    pub z: usize,
    /// Gate width: `4C` (LSTM) or `C` (feed-forward).
    pub g: usize,
    /// Whether the controller is an LSTM.
    pub lstm: bool,
    read_chunk: usize,
    write_chunk: usize,
}

impl Sizes {
    pub fn new(c: &NtmConfig) -> Self {
        let lstm = c.controller == super::Controller::Lstm;
        Self {
            i: c.input_size,
            o: c.output_size,
            c: c.controller_size,
            n: c.memory_rows,
            m: c.memory_width,
            r: c.read_heads,
            w: c.write_heads,
            k: c.shifts(),
            u: c.controller_input(),
            p: c.head_params(),
            z: c.output_input(),
            g: if lstm { 4 } else { 1 } * c.controller_size,
            lstm,
            read_chunk: c.read_chunk(),
            write_chunk: c.write_chunk(),
        }
    }

    pub fn heads(&self) -> usize {
        self.r + self.w
    }

    /// Memory values per batch row, `N*M`.
    pub fn mem(&self) -> usize {
        self.n * self.m
    }

    /// Saved values per head: `sim, wc, wg, ws` (`[N]` each) and `s` `[K]`.
    pub fn save(&self) -> usize {
        4 * self.n + self.k
    }

    /// Saved values per batch row and step: every head's [`Sizes::save`],
    /// then the memory's norms `[N]` (shared by the heads).
    pub fn row_save(&self) -> usize {
        self.heads() * self.save() + self.n
    }

    /// Lengths of the per-step weights packed for the forward
    /// (`rnn_kernels::packed`): `W_hh` `[G, C]` (0 without an LSTM), the
    /// reads' columns of the input weight `[G, R*M]`, `W_heads` `[P, C]`;
    /// `None` if one overflows.
    pub fn packed_forward(&self) -> Option<[usize; 3]> {
        let hh = if self.lstm {
            packed_len(self.g, self.c)?
        } else {
            0
        };
        Some([
            hh,
            packed_len(self.g, self.u - self.i)?,
            packed_len(self.p, self.c)?,
        ])
    }

    /// Lengths of the same weights packed transposed for the backward:
    /// `W_heads^T`, `W_hh^T` (0 without an LSTM), `W_r^T`.
    pub fn packed_backward(&self) -> Option<[usize; 3]> {
        let hh = if self.lstm {
            packed_len(self.c, self.g)?
        } else {
            0
        };
        Some([
            packed_len(self.c, self.p)?,
            hh,
            packed_len(self.u - self.i, self.g)?,
        ])
    }

    /// Per-row length of the erase/add save: `2*W*M`, at least 1.
    pub fn ea(&self) -> usize {
        (2 * self.w * self.m).max(1)
    }

    /// Per-row scratch of [`backward`]: `[3N]` for the addressing, `[K]`
    /// for the shift weights' gradient, `[2, W, M]` for erase and add.
    pub fn scratch(&self) -> usize {
        3 * self.n + self.k + 2 * self.w * self.m
    }

    fn chunk(&self, h: usize) -> (usize, usize) {
        if h < self.r {
            (h * self.read_chunk, self.read_chunk)
        } else {
            (
                self.r * self.read_chunk + (h - self.r) * self.write_chunk,
                self.write_chunk,
            )
        }
    }
}

/// A head's scalars from its raw chunk: `(beta, g, gamma)`.
fn scalars(raw: &[f32], s: &Sizes) -> (f32, f32, f32) {
    let m = s.m;
    (
        softplus(raw[m]),
        sigmoid(raw[m + 1]),
        1.0 + softplus(raw[m + 2 + s.k]),
    )
}

/// The head of parameter chunk `raw`, its shift weights `shift` (after
/// their softmax), its scalars through their nonlinearities.
fn head<'a>(raw: &'a [f32], shift: &'a [f32], s: &Sizes) -> Head<'a> {
    let (beta, gate, gamma) = scalars(raw, s);
    Head {
        key: &raw[..s.m],
        beta,
        gate,
        shift,
        gamma,
    }
}

/// A head's save `[save]`: its steps' weightings (`[N]` each), then its
/// shift weights `[K]`.
fn steps_of(save: &[f32], n: usize) -> (Steps<&[f32]>, &[f32]) {
    let (sim, rest) = save.split_at(n);
    let (wc, rest) = rest.split_at(n);
    let (wg, rest) = rest.split_at(n);
    let (ws, shift) = rest.split_at(n);
    (Steps { sim, wc, wg, ws }, shift)
}

/// [`steps_of`], mutable.
fn steps_of_mut(save: &mut [f32], n: usize) -> (Steps<&mut [f32]>, &mut [f32]) {
    let (sim, rest) = save.split_at_mut(n);
    let (wc, rest) = rest.split_at_mut(n);
    let (wg, rest) = rest.split_at_mut(n);
    let (ws, shift) = rest.split_at_mut(n);
    (Steps { sim, wc, wg, ws }, shift)
}

/// The memory and weightings of one batch row before a step.
pub(crate) struct Before<'a> {
    /// `[M, N]`.
    pub mem: &'a [f32],
    /// `[R+W, N]`.
    pub w: &'a [f32],
}

/// What a step writes for one batch row.
pub(crate) struct After<'a> {
    /// `[M, N]`, the memory after the write.
    pub mem: &'a mut [f32],
    /// `[R+W, N]`, the new weightings.
    pub w: &'a mut [f32],
    /// `[row_save]`, kept for backward: `[R+W, save]`, then the norms.
    pub saves: &'a mut [f32],
    /// `[ea]`: erase vectors `[W, M]` (after the sigmoid), then add vectors.
    pub ea: &'a mut [f32],
    /// `[R*M]`, the read vectors.
    pub reads: &'a mut [f32],
}

/// One step of one batch row: addresses every head on `before`, reads, then
/// writes. `p`: `[P]`, the head parameters.
pub(crate) fn forward(s: &Sizes, p: &[f32], before: Before<'_>, after: After<'_>) {
    let (n, m, k) = (s.n, s.m, s.k);
    let (saves, norms) = after.saves.split_at_mut(s.heads() * s.save());
    kernels::norms(before.mem, norms);
    for (h, save) in saves.chunks_exact_mut(s.save()).enumerate() {
        let (off, len) = s.chunk(h);
        let raw = &p[off..off + len];
        let (steps, shift) = steps_of_mut(save, n);
        shift.copy_from_slice(&raw[m + 2..m + 2 + k]);
        softmax_in_place(shift);
        kernels::address(
            &head(raw, shift, s),
            before.mem,
            norms,
            &before.w[h * n..(h + 1) * n],
            steps,
            &mut after.w[h * n..(h + 1) * n],
        );
    }
    for h in 0..s.r {
        kernels::read(
            &after.w[h * n..(h + 1) * n],
            before.mem,
            &mut after.reads[h * m..(h + 1) * m],
        );
    }
    if s.w > 0 {
        let (erase, add) = after.ea[..2 * s.w * m].split_at_mut(s.w * m);
        for j in 0..s.w {
            let (off, _) = s.chunk(s.r + j);
            let raw = &p[off..];
            let e0 = m + 3 + k;
            for (e, &x) in erase[j * m..(j + 1) * m].iter_mut().zip(&raw[e0..e0 + m]) {
                *e = sigmoid(x);
            }
            add[j * m..(j + 1) * m].copy_from_slice(&raw[e0 + m..e0 + 2 * m]);
        }
    }
    write(s, after.w, after.ea, before.mem, after.mem);
}

/// The write of one step (the memory from `mem_prev`, `[M, N]`, into
/// `mem`): `w` `[R+W, N]`, the step's weightings; `ea` `[ea]`, its erase
/// and add vectors as [`forward`] keeps them. The backward recomputes the
/// memories between checkpoints with it.
pub(crate) fn write(s: &Sizes, w: &[f32], ea: &[f32], mem_prev: &[f32], mem: &mut [f32]) {
    if s.w == 0 {
        mem.copy_from_slice(mem_prev);
        return;
    }
    let (erase, add) = ea[..2 * s.w * s.m].split_at(s.w * s.m);
    kernels::write(s.w, &w[s.r * s.n..], erase, add, mem_prev, mem);
}

/// What [`forward`] kept for one batch row and step.
pub(crate) struct Saved<'a> {
    /// `[P]`, the head parameters.
    pub p: &'a [f32],
    /// `[M, N]`, the memory the step read.
    pub mem: &'a [f32],
    /// `[R+W, N]`, the weightings before the step.
    pub w_prev: &'a [f32],
    /// `[R+W, N]`, the weightings of the step.
    pub w: &'a [f32],
    /// `[row_save]`: `[R+W, save]`, then the memory's norms `[N]`.
    pub saves: &'a [f32],
    /// `[2, W, M]`.
    pub ea: &'a [f32],
}

/// Gradients of one batch row and step.
pub(crate) struct Grads<'a> {
    /// `[R*M]` in: gradient w.r.t. the read vectors.
    pub reads: &'a [f32],
    /// `[M, N]` in: gradient w.r.t. the memory after the step.
    pub mem: &'a [f32],
    /// `[R+W, N]` in: gradient w.r.t. the step's weightings reaching them
    /// from later steps; used as scratch (clobbered).
    pub w: &'a mut [f32],
    /// `[R+W, N]` written: gradient w.r.t. the weightings before the step.
    pub w_prev: &'a mut [f32],
    /// `[M, N]` written: gradient w.r.t. the memory before the step.
    pub mem_prev: &'a mut [f32],
    /// `[P]` written: gradient w.r.t. the head parameters.
    pub p: &'a mut [f32],
    /// `[scratch]`.
    pub scratch: &'a mut [f32],
}

/// Backward of [`forward`] for one batch row: the write, the reads, then
/// every head's addressing.
pub(crate) fn backward(s: &Sizes, fw: Saved<'_>, g: Grads<'_>) {
    let (n, m, k) = (s.n, s.m, s.k);
    g.mem_prev.fill(0.0);
    g.p.fill(0.0);
    g.w_prev.fill(0.0);
    let (scratch, rest) = g.scratch.split_at_mut(3 * n);
    let (ds, dea) = rest.split_at_mut(k);
    let (saves, norms) = fw.saves.split_at(s.heads() * s.save());
    if s.w == 0 {
        g.mem_prev.copy_from_slice(g.mem);
    } else {
        dea.fill(0.0);
        let (erase, add) = fw.ea[..2 * s.w * m].split_at(s.w * m);
        let (derase, dadd) = dea.split_at_mut(s.w * m);
        kernels::write_backward(
            s.w,
            &fw.w[s.r * n..],
            erase,
            add,
            fw.mem,
            g.mem,
            WriteGrads {
                mem_prev: g.mem_prev,
                w: &mut g.w[s.r * n..],
                erase: derase,
                add: dadd,
            },
        );
        for j in 0..s.w {
            let (off, _) = s.chunk(s.r + j);
            let e0 = off + m + 3 + k;
            for q in 0..m {
                let e = erase[j * m + q];
                g.p[e0 + q] = derase[j * m + q] * e * (1.0 - e);
                g.p[e0 + m + q] = dadd[j * m + q];
            }
        }
    }
    for h in 0..s.r {
        kernels::read_backward(
            &fw.w[h * n..(h + 1) * n],
            fw.mem,
            &g.reads[h * m..(h + 1) * m],
            &mut g.w[h * n..(h + 1) * n],
            g.mem_prev,
        );
    }
    for (h, save) in saves.chunks_exact(s.save()).enumerate() {
        let (off, len) = s.chunk(h);
        let raw = &fw.p[off..off + len];
        let (dkey, dp) = g.p[off..off + len].split_at_mut(m);
        let (steps, shift) = steps_of(save, n);
        let row = h * n..(h + 1) * n;
        let head = head(raw, shift, s);
        ds.fill(0.0);
        let mut grads = HeadGrads {
            key: dkey,
            beta: 0.0,
            gate: 0.0,
            shift: ds,
            gamma: 0.0,
        };
        kernels::address_backward(
            &head,
            fw.mem,
            norms,
            &fw.w_prev[row.clone()],
            steps,
            &fw.w[row.clone()],
            &g.w[row.clone()],
            scratch,
            &mut grads,
            &mut g.w_prev[row],
            g.mem_prev,
        );
        // `dp` starts at the chunk's `beta` logit (offset `m`).
        let (dbeta, dgate, dgamma) = (grads.beta, grads.gate, grads.gamma);
        softmax_backward(shift, ds, &mut dp[2..2 + k]);
        dp[0] = dbeta * sigmoid(raw[m]);
        dp[1] = dgate * head.gate * (1.0 - head.gate);
        dp[2 + k] = dgamma * sigmoid(raw[m + 2 + k]);
    }
}
