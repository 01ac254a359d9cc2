//! Helpers shared by the whole-sequence kernel tests: deterministic data,
//! closeness, and the four cells' kernels behind one call.
#![allow(dead_code)]

use rnn_kernels::activation::Activation;
use rnn_kernels::{SeqShape, Upstream, elman, lstm};

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

/// Asserts that every pair differs by at most `tol` anywhere.
pub fn assert_close(case: &str, tol: f32, pairs: &[(&str, &[f32], &[f32])]) {
    for &(name, x, y) in pairs {
        let d = x
            .iter()
            .zip(y)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(d <= tol, "{case}: {name} differs by {d}");
    }
}

/// The four cells' whole-sequence kernels behind one call, for the tests
/// that hold them to themselves on other shapes.
#[derive(Clone, Copy, Debug)]
pub enum Cell {
    Lstm,
    Elman,
    GruLinearBeforeReset,
    GruResetBeforeLinear,
}

impl Cell {
    pub const ALL: [Cell; 4] = [
        Cell::Lstm,
        Cell::Elman,
        Cell::GruLinearBeforeReset,
        Cell::GruResetBeforeLinear,
    ];

    pub fn gates(self) -> usize {
        match self {
            Cell::Lstm => 4,
            Cell::Elman => 1,
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
}

/// The inputs of a pass: `w_hh` `[G*H, S]`, `gates0` `[T, B, G*H]`, `h0`,
/// `dh_n` `[B, S]`, `c0`, `dc_n` `[B, H]`, `dy` `[T, B, S]`; `w_hr` `[P,
/// H]` (LSTM) and `mask` `[B, S]`, each empty for none.
#[derive(Clone, Debug)]
pub struct Inputs {
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
    use rnn_kernels::{RecurrentMask, gru};
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
    };
    p.states[init * b * sw..][..b * sw].copy_from_slice(&x.h0);
    p.cells[init * bh..][..bh].copy_from_slice(&x.c0);
    let up = Upstream {
        dy: &x.dy,
        offset: 0,
        stride: sw,
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
                    projection: projection(&mut dm),
                    mask: mask(&mut mask_scratch),
                    shape,
                },
                threads,
            );
        }
        Cell::Elman => {
            elman::forward_sequence(
                elman::Sequence {
                    act: Activation::Tanh,
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
                    act: Activation::Tanh,
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
    p
}

impl Inputs {
    /// Deterministic inputs of `cell` for `T` steps, `B` rows, `H` units.
    pub fn new(cell: Cell, t_len: usize, b: usize, hd: usize) -> Self {
        let (gh, bh) = (cell.gates() * hd, b * hd);
        Self {
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

/// Lengths from `T` down to 1 over `B` rows, longest first (with ties),
/// and the rows inside their sequence at each step.
pub fn sorted_lengths(t_len: usize, b: usize) -> (Vec<usize>, Vec<usize>) {
    let lens: Vec<usize> = (0..b).map(|r| (t_len - r * t_len / b).max(1)).collect();
    let active = (0..t_len)
        .map(|t| lens.iter().filter(|&&l| l > t).count())
        .collect();
    (lens, active)
}
