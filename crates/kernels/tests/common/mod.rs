//! Helpers shared by the whole-sequence kernel tests: deterministic data,
//! closeness, the cells' kernels behind one call ([`run_cell`]) and their
//! step-by-step reference ([`stepwise`]).
#![allow(dead_code)]

use rnn_kernels::activation::{self, Activation};
use rnn_kernels::{Mat, MatMut, Op, SeqShape, Upstream, elman, gemm, gru, lstm};

/// Deterministic values in [-1, 1).
pub fn data(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let v = (i as u32)
                .wrapping_mul(2_654_435_761)
                .wrapping_add(seed.wrapping_mul(97));
            (v % 2000) as f32 / 1000.0 - 1.0
        })
        .collect()
}

/// The loop shape of a case.
pub fn shape(seq_len: usize, batch: usize, hidden: usize, reverse: bool) -> SeqShape<'static> {
    SeqShape {
        seq_len,
        batch,
        hidden,
        reverse,
        active: None,
    }
}

/// Asserts that every pair has the same length and differs by at most
/// `tol * max(1, |y|)` anywhere (values of a ReLU cell grow large).
pub fn assert_close(case: &str, tol: f32, pairs: &[(&str, &[f32], &[f32])]) {
    for &(name, x, y) in pairs {
        assert_eq!(x.len(), y.len(), "{case}: {name} lengths");
        let d = x
            .iter()
            .zip(y)
            .map(|(a, b)| (a - b).abs() / b.abs().max(1.0))
            .fold(0.0, f32::max);
        assert!(d <= tol, "{case}: {name} differs by {d} (relative above 1)");
    }
}

/// The four cells' whole-sequence kernels behind one call, for the tests
/// that hold them to themselves on other shapes.
#[derive(Clone, Copy, Debug)]
pub enum Cell {
    Lstm,
    Elman(Activation),
    GruLinearBeforeReset,
    GruResetBeforeLinear,
}

impl Cell {
    pub const ALL: [Cell; 4] = [
        Cell::Lstm,
        Cell::Elman(Activation::Tanh),
        Cell::GruLinearBeforeReset,
        Cell::GruResetBeforeLinear,
    ];

    /// Whether the cell's loop takes a recurrent mask.
    pub fn takes_mask(self) -> bool {
        !matches!(self, Cell::GruResetBeforeLinear)
    }

    pub fn gates(self) -> usize {
        match self {
            Cell::Lstm => 4,
            Cell::Elman(_) => 1,
            _ => 3,
        }
    }
}

/// Forward step `s` of a direction: its time `t` and its state slots
/// `(t, prev, out)` (the reverse direction walks time down).
pub fn slots(t_len: usize, reverse: bool, s: usize) -> (usize, usize, usize) {
    if reverse {
        let t = t_len - 1 - s;
        (t, t + 1, t)
    } else {
        (s, s, s + 1)
    }
}

/// What one forward and backward pass of a cell gives (`S` the state
/// width: `H`, or `P` with a projection).
#[derive(Clone, Debug, Default)]
pub struct Pass {
    /// `[T, B, G*H]` activated gates.
    pub gates: Vec<f32>,
    /// `[T+1, B, S]`.
    pub states: Vec<f32>,
    /// `[T+1, B, S]`, the states times the mask (the states without one).
    pub masked: Vec<f32>,
    /// `[T+1, B, H]` (LSTM).
    pub cells: Vec<f32>,
    /// `[T, B, H]` (GRU).
    pub saved: Vec<f32>,
    /// `[T, B, G*H]`.
    pub dgates: Vec<f32>,
    /// `[B, S]` gradient w.r.t. the initial states.
    pub dh0: Vec<f32>,
    pub dc0: Vec<f32>,
    /// `[T, B, P]`: each step's `dh_t` (LSTM with a projection), zero past
    /// a row's end.
    pub dh_steps: Vec<f32>,
}

/// The inputs of a pass: `w_hh` `[G*H, S]`, `gates0` `[T, B, G*H]`, `h0`,
/// `dh_n` `[B, S]`, `c0`, `dc_n` `[B, H]`, `dy` `[T*B, stride]` (`dh_t` in
/// columns `offset..+S`, `up = (stride, offset)`); `w_hr` `[P, H]` (LSTM)
/// and `mask` `[B, S]`, each empty for none.
#[derive(Clone, Debug)]
pub struct Inputs {
    pub up: (usize, usize),
    /// Whether `dy` is `[B, T, stride]` instead of `[T, B, stride]`.
    pub dy_batch_first: bool,
    pub w_hh: Vec<f32>,
    pub w_hr: Vec<f32>,
    pub mask: Vec<f32>,
    pub b_hn: Vec<f32>,
    pub gates0: Vec<f32>,
    pub h0: Vec<f32>,
    pub c0: Vec<f32>,
    pub dy: Vec<f32>,
    pub dh_n: Vec<f32>,
    pub dc_n: Vec<f32>,
}

pub fn run_cell(cell: Cell, shape: SeqShape<'_>, x: &Inputs, threads: usize) -> Pass {
    use rnn_kernels::RecurrentMask;
    let (t_len, b, hd) = shape.sizes();
    let (bh, sw) = (b * hd, x.h0.len() / b.max(1));
    let init = if shape.reverse { t_len } else { 0 };
    let mut p = Pass {
        gates: x.gates0.clone(),
        states: vec![0.0; (t_len + 1) * b * sw],
        masked: vec![0.0; (t_len + 1) * b * sw],
        cells: vec![0.0; (t_len + 1) * bh],
        saved: vec![0.0; t_len * bh],
        dgates: vec![0.0; x.gates0.len()],
        dh0: x.dh_n.clone(),
        dc0: x.dc_n.clone(),
        dh_steps: vec![f32::NAN; t_len * b * sw],
    };
    p.states[init * b * sw..][..b * sw].copy_from_slice(&x.h0);
    p.cells[init * bh..][..bh].copy_from_slice(&x.c0);
    let up = Upstream {
        dy: &x.dy,
        offset: x.up.1,
        stride: x.up.0,
        batch_first: x.dy_batch_first,
    };
    let mut spare = vec![0.0; b * sw];
    let mut hw = vec![0.0; 3 * bh];
    let mut dhw = vec![0.0; x.gates0.len()];
    let (mut m, mut dm, mut mask_scratch) =
        (vec![0.0; t_len * bh], vec![0.0; bh], vec![0.0; b * sw]);
    let projection = |m| {
        let w_hr = &x.w_hr[..];
        (!w_hr.is_empty()).then_some(lstm::Projection { w_hr, m })
    };
    let mask = |masked| {
        (!x.mask.is_empty()).then(|| RecurrentMask {
            mask: &x.mask,
            masked,
        })
    };
    rnn_kernels::threads::install(|| match cell {
        Cell::Lstm => {
            lstm::forward_sequence(
                lstm::Sequence {
                    gates: &mut p.gates,
                    w_hh: &x.w_hh,
                    states: &mut p.states,
                    cells: &mut p.cells,
                    projection: projection(&mut m),
                    mask: mask(&mut p.masked),
                    shape,
                },
                threads,
            );
            lstm::backward_sequence(
                lstm::SequenceGrads {
                    gates: &p.gates,
                    w_hh: &x.w_hh,
                    cells: &p.cells,
                    up,
                    dgates: &mut p.dgates,
                    dh: &mut p.dh0,
                    dh_spare: &mut spare,
                    dc: &mut p.dc0,
                    projection: (!x.w_hr.is_empty()).then_some(lstm::ProjectionGrads {
                        w_hr: &x.w_hr,
                        dm: &mut dm,
                        dh: &mut p.dh_steps,
                    }),
                    mask: mask(&mut mask_scratch),
                    shape,
                },
                threads,
            );
        }
        Cell::Elman(act) => {
            elman::forward_sequence(
                elman::Sequence {
                    act,
                    pre: &mut p.gates,
                    w_hh: &x.w_hh,
                    states: &mut p.states,
                    mask: mask(&mut p.masked),
                    shape,
                },
                threads,
            );
            elman::backward_sequence(
                elman::SequenceGrads {
                    act,
                    w_hh: &x.w_hh,
                    states: &p.states,
                    up,
                    dpre: &mut p.dgates,
                    dh: &mut p.dh0,
                    dh_spare: &mut spare,
                    mask: mask(&mut mask_scratch),
                    shape,
                },
                threads,
            );
        }
        Cell::GruLinearBeforeReset | Cell::GruResetBeforeLinear => {
            let reset_after = matches!(cell, Cell::GruLinearBeforeReset);
            let form = if reset_after {
                gru::Form::LinearBeforeReset {
                    hw: &mut hw,
                    b_hn: &x.b_hn,
                }
            } else {
                dhw.truncate(bh);
                gru::Form::ResetBeforeLinear
            };
            gru::forward_sequence(
                gru::Sequence {
                    gates: &mut p.gates,
                    w_hh: &x.w_hh,
                    states: &mut p.states,
                    saved: &mut p.saved,
                    form,
                    mask: mask(&mut p.masked),
                    shape,
                },
                threads,
            );
            gru::backward_sequence(
                gru::SequenceGrads {
                    gates: &p.gates,
                    saved: &p.saved,
                    states: &p.states,
                    w_hh: &x.w_hh,
                    up,
                    dgates: &mut p.dgates,
                    dhw: &mut dhw,
                    dh: &mut p.dh0,
                    dh_spare: &mut spare,
                    reset_after,
                    mask: mask(&mut mask_scratch),
                    shape,
                },
                threads,
            );
        }
    });
    if x.mask.is_empty() {
        p.masked.clone_from(&p.states);
    }
    if x.w_hr.is_empty() {
        p.dh_steps.clear();
    }
    p
}

impl Inputs {
    /// Deterministic inputs of `cell` for `T` steps, `B` rows, `H` units.
    pub fn new(cell: Cell, t_len: usize, b: usize, hd: usize) -> Self {
        let (gh, bh) = (cell.gates() * hd, b * hd);
        Self {
            up: (hd, 0),
            dy_batch_first: false,
            w_hh: data(gh * hd, 1).iter().map(|v| v * 0.3).collect(),
            w_hr: Vec::new(),
            mask: Vec::new(),
            b_hn: data(hd, 11),
            gates0: data(t_len * b * gh, 2),
            h0: data(bh, 3),
            c0: data(bh, 4),
            dy: data(t_len * bh, 7),
            dh_n: data(bh, 8),
            dc_n: data(bh, 9),
        }
    }
}

impl Inputs {
    /// The same inputs for an LSTM projected to `proj` units (`W_hr`, and
    /// `W_hh`, `h0`, `dh_n`, `dy` `proj` wide).
    pub fn projected(self, proj: usize) -> Self {
        // `b_hn` is `[H]`, `c0` `[B, H]` and `dy` `[T, B, H]` before.
        let hd = self.b_hn.len();
        let b = self.c0.len() / hd;
        let t_len = self.dy.len() / (b * hd);
        Self {
            w_hh: data(4 * hd * proj, 1).iter().map(|v| v * 0.3).collect(),
            w_hr: data(proj * hd, 5).iter().map(|v| v * 0.3).collect(),
            h0: data(b * proj, 3),
            dy: data(t_len * b * proj, 7),
            dh_n: data(b * proj, 8),
            up: (proj, 0),
            ..self
        }
    }

    /// The same inputs with `dh_t` in some columns of wider `dy` rows (as a
    /// direction's columns of a bidirectional layer's).
    pub fn upstream_columns(self) -> Self {
        let (stride, sw) = (
            self.up.0,
            self.dh_n.len() / (self.c0.len() / self.b_hn.len()),
        );
        let rows = self.dy.len() / stride;
        let wide = 2 * sw + 3;
        Self {
            dy: data(rows * wide, 7),
            up: (wide, sw / 2),
            ..self
        }
    }

    /// The same inputs with a dropout-like mask on `h_{t-1}` (zeros and
    /// `1 / 0.75`).
    pub fn masked(self) -> Self {
        let mask = data(self.h0.len(), 13)
            .iter()
            .map(|&v| if v < -0.5 { 0.0 } else { 1.0 / 0.75 })
            .collect();
        Self { mask, ..self }
    }
}

/// `c = beta c + a op(b)`.
fn mm(a: Mat<'_>, b: Mat<'_>, op_b: Op, beta: f32, c: MatMut<'_>) {
    gemm(1.0, a, Op::N, b, op_b, beta, c);
}

/// `h * mask`, or `h` without a mask.
fn masked(h: &[f32], mask: &[f32]) -> Vec<f32> {
    if mask.is_empty() {
        return h.to_vec();
    }
    h.iter().zip(mask).map(|(h, m)| h * m).collect()
}

/// The reference of [`run_cell`]: one step at a time, with full GEMMs
/// (faer) and the whole-slice step kernels.
pub fn stepwise(
    cell: Cell,
    x: &Inputs,
    (t_len, b, hd): (usize, usize, usize),
    reverse: bool,
) -> Pass {
    let (bh, sw) = (b * hd, x.h0.len() / b);
    let (bs, gh) = (b * sw, cell.gates() * hd);
    let init = if reverse { t_len } else { 0 };
    let mut p = Pass {
        gates: x.gates0.clone(),
        states: vec![0.0; (t_len + 1) * bs],
        cells: vec![0.0; (t_len + 1) * bh],
        saved: vec![0.0; t_len * bh],
        dgates: vec![0.0; x.gates0.len()],
        dh_steps: vec![0.0; t_len * bs],
        ..Pass::default()
    };
    p.states[init * bs..][..bs].copy_from_slice(&x.h0);
    p.cells[init * bh..][..bh].copy_from_slice(&x.c0);
    let w = &x.w_hh[..];
    for s in 0..t_len {
        let (t, prev, out) = slots(t_len, reverse, s);
        let h_prev = p.states[prev * bs..][..bs].to_vec();
        let a = masked(&h_prev, &x.mask);
        let g = &mut p.gates[t * b * gh..][..b * gh];
        let saved = &mut p.saved[t * bh..][..bh];
        let mut h = vec![0.0; bh];
        match cell {
            Cell::Lstm => {
                mm(
                    Mat::new(&a, b, sw),
                    Mat::new(w, gh, sw),
                    Op::T,
                    1.0,
                    MatMut::new(g, b, gh),
                );
                let mut c = vec![0.0; bh];
                lstm::forward(g, &p.cells[prev * bh..][..bh], &mut c, &mut h, hd);
                p.cells[out * bh..][..bh].copy_from_slice(&c);
                if !x.w_hr.is_empty() {
                    let mut projected = vec![0.0; bs];
                    let (m, w_hr) = (Mat::new(&h, b, hd), Mat::new(&x.w_hr, sw, hd));
                    mm(m, w_hr, Op::T, 0.0, MatMut::new(&mut projected, b, sw));
                    h = projected;
                }
            }
            Cell::Elman(act) => {
                mm(
                    Mat::new(&a, b, hd),
                    Mat::new(w, hd, hd),
                    Op::T,
                    1.0,
                    MatMut::new(g, b, hd),
                );
                activation::forward(act, g, &mut h);
            }
            Cell::GruLinearBeforeReset => {
                let mut hw = vec![0.0; b * gh];
                mm(
                    Mat::new(&a, b, hd),
                    Mat::new(w, gh, hd),
                    Op::T,
                    0.0,
                    MatMut::new(&mut hw, b, gh),
                );
                gru::lbr_forward(g, &hw, &x.b_hn, &h_prev, &mut h, saved, hd);
            }
            Cell::GruResetBeforeLinear => {
                let w_rz = Mat::new(&w[..2 * hd * hd], 2 * hd, hd);
                mm(
                    Mat::new(&a, b, hd),
                    w_rz,
                    Op::T,
                    1.0,
                    MatMut::strided(g, b, 2 * hd, gh),
                );
                gru::rbl_forward_rz(g, &h_prev, saved, hd);
                let (rh, w_n) = (Mat::new(saved, b, hd), Mat::new(&w[2 * hd * hd..], hd, hd));
                mm(
                    rh,
                    w_n,
                    Op::T,
                    1.0,
                    MatMut::strided(&mut g[2 * hd..], b, hd, gh),
                );
                gru::rbl_forward_n(g, &h_prev, &mut h, hd);
            }
        }
        p.states[out * bs..][..bs].copy_from_slice(&h);
    }
    let (stride, offset) = x.up;
    let (mut dh, mut dc) = (x.dh_n.clone(), x.dc_n.clone());
    for s in (0..t_len).rev() {
        let (t, prev, out) = slots(t_len, reverse, s);
        for (r, d) in dh.chunks_exact_mut(sw).enumerate() {
            let row = if x.dy_batch_first {
                r * t_len + t
            } else {
                t * b + r
            };
            let row = &x.dy[row * stride + offset..][..sw];
            d.iter_mut().zip(row).for_each(|(a, g)| *a += g);
        }
        p.dh_steps[t * bs..][..bs].copy_from_slice(&dh);
        let g = &p.gates[t * b * gh..][..b * gh];
        let dg = &mut p.dgates[t * b * gh..][..b * gh];
        let h_prev = &p.states[prev * bs..][..bs];
        let saved = &p.saved[t * bh..][..bh];
        // `dP`, the gradient w.r.t. the recurrent product, and the part of
        // `dh_{t-1}` outside it.
        let mut dp = vec![0.0; b * gh];
        let mut direct = vec![0.0; bs];
        match cell {
            Cell::Lstm => {
                let mut dm = dh.clone();
                if !x.w_hr.is_empty() {
                    dm = vec![0.0; bh];
                    let (d, w_hr) = (Mat::new(&dh, b, sw), Mat::new(&x.w_hr, sw, hd));
                    mm(d, w_hr, Op::N, 0.0, MatMut::new(&mut dm, b, hd));
                }
                let (cp, c) = (&p.cells[prev * bh..][..bh], &p.cells[out * bh..][..bh]);
                lstm::backward(g, cp, c, &dm, &mut dc, dg, hd);
                dp.copy_from_slice(dg);
            }
            Cell::Elman(act) => {
                activation::backward(act, &p.states[out * bs..][..bs], &dh, dg);
                dp.copy_from_slice(dg);
            }
            Cell::GruLinearBeforeReset => {
                gru::lbr_backward(g, saved, h_prev, &dh, dg, &mut dp, &mut direct, hd);
            }
            Cell::GruResetBeforeLinear => {
                gru::rbl_backward_n(g, h_prev, &dh, dg, &mut direct, hd);
                let mut drh = vec![0.0; bh];
                let dn = Mat::strided(&dg[2 * hd..], b, hd, gh);
                let w_n = Mat::new(&w[2 * hd * hd..], hd, hd);
                mm(dn, w_n, Op::N, 0.0, MatMut::new(&mut drh, b, hd));
                gru::rbl_backward_r(g, h_prev, &drh, dg, &mut direct, hd);
                dp.copy_from_slice(dg);
                dp.chunks_exact_mut(gh)
                    .for_each(|row| row[2 * hd..].fill(0.0));
            }
        }
        let mut through = vec![0.0; bs];
        mm(
            Mat::new(&dp, b, gh),
            Mat::new(w, gh, sw),
            Op::N,
            0.0,
            MatMut::new(&mut through, b, sw),
        );
        let through = masked(&through, &x.mask);
        dh = direct.iter().zip(&through).map(|(a, b)| a + b).collect();
    }
    p.masked = p
        .states
        .chunks(bs.max(1))
        .flat_map(|h| masked(h, &x.mask))
        .collect();
    p.dh0 = dh;
    p.dc0 = dc;
    if x.w_hr.is_empty() {
        p.dh_steps.clear();
    }
    p
}

/// Lengths from `T` down to 1 over `B` rows, longest first (with ties),
/// and the rows inside their sequence at each step.
pub fn sorted_lengths(t_len: usize, b: usize) -> (Vec<usize>, Vec<usize>) {
    let lens: Vec<usize> = (0..b).map(|r| (t_len - r * t_len / b).max(1)).collect();
    let active = (0..t_len)
        .map(|t| lens.iter().filter(|&&l| l > t).count())
        .collect();
    (lens, active)
}
