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

/// What one forward and backward pass of a cell gives.
#[derive(Clone, Debug, Default)]
pub struct Pass {
    /// `[T, B, G*H]` activated gates.
    pub gates: Vec<f32>,
    /// `[T+1, B, H]`.
    pub states: Vec<f32>,
    /// `[T+1, B, H]` (LSTM).
    pub cells: Vec<f32>,
    /// `[T, B, H]` (GRU).
    pub saved: Vec<f32>,
    /// `[T, B, G*H]`.
    pub dgates: Vec<f32>,
    /// `[B, H]` gradient w.r.t. the initial states.
    pub dh0: Vec<f32>,
    pub dc0: Vec<f32>,
}

/// The inputs of a pass: `gates0` `[T, B, G*H]`, `h0`, `c0`, `dh_n`,
/// `dc_n` `[B, H]`, `dy` `[T, B, H]`.
pub struct Inputs {
    pub w_hh: Vec<f32>,
    pub b_hn: Vec<f32>,
    pub gates0: Vec<f32>,
    pub h0: Vec<f32>,
    pub c0: Vec<f32>,
    pub dy: Vec<f32>,
    pub dh_n: Vec<f32>,
    pub dc_n: Vec<f32>,
}

pub fn run_cell(cell: Cell, shape: SeqShape<'_>, x: &Inputs, threads: usize) -> Pass {
    use rnn_kernels::gru;
    let (t_len, b, hd) = shape.sizes();
    let bh = b * hd;
    let init = if shape.reverse { t_len } else { 0 };
    let mut p = Pass {
        gates: x.gates0.clone(),
        states: vec![0.0; (t_len + 1) * bh],
        cells: vec![0.0; (t_len + 1) * bh],
        saved: vec![0.0; t_len * bh],
        dgates: vec![0.0; x.gates0.len()],
        dh0: x.dh_n.clone(),
        dc0: x.dc_n.clone(),
    };
    p.states[init * bh..(init + 1) * bh].copy_from_slice(&x.h0);
    p.cells[init * bh..(init + 1) * bh].copy_from_slice(&x.c0);
    let up = Upstream {
        dy: &x.dy,
        offset: 0,
        stride: hd,
    };
    let mut spare = vec![0.0; bh];
    let mut hw = vec![0.0; 3 * bh];
    let mut dhw = vec![0.0; x.gates0.len()];
    rnn_kernels::threads::install(|| match cell {
        Cell::Lstm => {
            lstm::forward_sequence(
                lstm::Sequence {
                    gates: &mut p.gates,
                    w_hh: &x.w_hh,
                    states: &mut p.states,
                    cells: &mut p.cells,
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
                    shape,
                },
                threads,
            );
        }
    });
    p
}

impl Inputs {
    /// Deterministic inputs of `cell` for `T` steps, `B` rows, `H` units.
    pub fn new(cell: Cell, t_len: usize, b: usize, hd: usize) -> Self {
        let (gh, bh) = (cell.gates() * hd, b * hd);
        Self {
            w_hh: data(gh * hd, 1).iter().map(|v| v * 0.3).collect(),
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

/// Lengths from `T` down to 1 over `B` rows, longest first (with ties),
/// and the rows inside their sequence at each step.
pub fn sorted_lengths(t_len: usize, b: usize) -> (Vec<usize>, Vec<usize>) {
    let lens: Vec<usize> = (0..b).map(|r| (t_len - r * t_len / b).max(1)).collect();
    let active = (0..t_len)
        .map(|t| lens.iter().filter(|&&l| l > t).count())
        .collect();
    (lens, active)
}
