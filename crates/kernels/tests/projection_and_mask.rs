//! The time loop's projection (LSTMP, `h_t = W_hr (o_t * tanh(c_t))`) and
//! recurrent mask (`h_{t-1} * mask` in the recurrent products) equal a
//! step-by-step reference (full GEMMs + the whole-slice step kernels), in
//! both time directions, for several thread counts, with the weights packed
//! or read in place.

mod common;

use common::{Cell, Inputs, Pass, assert_close, run_cell, shape, slots};
use rnn_kernels::{Mat, MatMut, Op, gemm, gru, lstm};

/// `c (+)= a b^T` (`op_b = Op::T`) or `a b` (`Op::N`), `a` `[m, k]`.
fn mul(a: &[f32], k: usize, b: &[f32], op_b: Op, c: &mut [f32], accumulate: bool) {
    let m = a.len() / k;
    let n = c.len() / m.max(1);
    let b = match op_b {
        Op::T => Mat::new(b, n, k),
        Op::N => Mat::new(b, k, n),
    };
    let beta = if accumulate { 1.0 } else { 0.0 };
    gemm(
        1.0,
        Mat::new(a, m, k),
        Op::N,
        b,
        op_b,
        beta,
        MatMut::new(c, m, n),
    );
}

/// `h * mask`, or `h` without a mask.
fn masked(h: &[f32], mask: &[f32]) -> Vec<f32> {
    if mask.is_empty() {
        return h.to_vec();
    }
    h.iter().zip(mask).map(|(h, m)| h * m).collect()
}

/// The stepwise reference of an LSTM (with `x.w_hr`, `x.mask` if any) or
/// a linear-before-reset GRU (with `x.mask` if any): the states in `p`
/// (initial slot filled), the rest written.
fn reference(cell: Cell, x: &Inputs, (t_len, b, hd): (usize, usize, usize), reverse: bool) -> Pass {
    let (bh, sw) = (b * hd, x.h0.len() / b);
    let (bs, gh) = (b * sw, cell.gates() * hd);
    let init = if reverse { t_len } else { 0 };
    let mut p = Pass {
        gates: x.gates0.clone(),
        states: vec![0.0; (t_len + 1) * bs],
        cells: vec![0.0; (t_len + 1) * bh],
        saved: vec![0.0; t_len * bh],
        dgates: vec![0.0; x.gates0.len()],
        ..Pass::default()
    };
    p.states[init * bs..][..bs].copy_from_slice(&x.h0);
    p.cells[init * bh..][..bh].copy_from_slice(&x.c0);
    for s in 0..t_len {
        let (t, prev, out) = slots(t_len, reverse, s);
        let h_prev = p.states[prev * bs..][..bs].to_vec();
        let a = masked(&h_prev, &x.mask);
        let g = &mut p.gates[t * b * gh..][..b * gh];
        let mut h = vec![0.0; bh];
        if let Cell::Lstm = cell {
            mul(&a, sw, &x.w_hh, Op::T, g, true);
            let mut c = vec![0.0; bh];
            lstm::forward(g, &p.cells[prev * bh..][..bh], &mut c, &mut h, hd);
            p.cells[out * bh..][..bh].copy_from_slice(&c);
            if !x.w_hr.is_empty() {
                let mut projected = vec![0.0; bs];
                mul(&h, hd, &x.w_hr, Op::T, &mut projected, false);
                h = projected;
            }
        } else {
            let mut hw = vec![0.0; b * gh];
            mul(&a, hd, &x.w_hh, Op::T, &mut hw, false);
            let hn = &mut p.saved[t * bh..][..bh];
            gru::lbr_forward(g, &hw, &x.b_hn, &h_prev, &mut h, hn, hd);
        }
        p.states[out * bs..][..bs].copy_from_slice(&h);
    }
    let (mut dh, mut dc) = (x.dh_n.clone(), x.dc_n.clone());
    for s in (0..t_len).rev() {
        let (t, prev, out) = slots(t_len, reverse, s);
        dh.iter_mut()
            .zip(&x.dy[t * bs..])
            .for_each(|(d, g)| *d += g);
        let g = &p.gates[t * b * gh..][..b * gh];
        let dg = &mut p.dgates[t * b * gh..][..b * gh];
        // The gradient w.r.t. `h_{t-1}` outside the recurrent product.
        let mut direct = vec![0.0; bs];
        let mut dp = vec![0.0; b * gh];
        if let Cell::Lstm = cell {
            let mut dm = dh.clone();
            if !x.w_hr.is_empty() {
                dm = vec![0.0; bh];
                mul(&dh, sw, &x.w_hr, Op::N, &mut dm, false);
            }
            let (cp, c) = (&p.cells[prev * bh..][..bh], &p.cells[out * bh..][..bh]);
            lstm::backward(g, cp, c, &dm, &mut dc, dg, hd);
            dp.copy_from_slice(dg);
        } else {
            let (hn, h_prev) = (&p.saved[t * bh..][..bh], &p.states[prev * bh..][..bh]);
            gru::lbr_backward(g, hn, h_prev, &dh, dg, &mut dp, &mut direct, hd);
        }
        let mut through = vec![0.0; bs];
        mul(&dp, gh, &x.w_hh, Op::N, &mut through, false);
        let through = masked(&through, &x.mask);
        dh = direct.iter().zip(&through).map(|(a, b)| a + b).collect();
    }
    p.masked = p
        .states
        .chunks(bs)
        .flat_map(|h| masked(h, &x.mask))
        .collect();
    p.dh0 = dh;
    p.dc0 = dc;
    p
}

/// `(cell, T, B, H, P, masked)`: the last sizes are large enough for the
/// team to split the units over threads.
const CASES: [(Cell, usize, usize, usize, usize, bool); 8] = [
    (Cell::Lstm, 4, 3, 16, 8, false),
    (Cell::Lstm, 4, 3, 16, 8, true),
    (Cell::Lstm, 5, 2, 24, 0, true),
    (Cell::Lstm, 3, 12, 88, 40, false),
    (Cell::Lstm, 3, 12, 88, 40, true),
    (Cell::Lstm, 3, 9, 100, 0, true),
    (Cell::GruLinearBeforeReset, 4, 3, 16, 0, true),
    (Cell::GruLinearBeforeReset, 3, 12, 88, 0, true),
];

#[test]
fn projection_and_mask_equal_the_stepwise_reference() {
    for (cell, t_len, b, hd, proj, with_mask) in CASES {
        let mut x = Inputs::new(cell, t_len, b, hd);
        if proj > 0 {
            x = x.projected(proj);
        }
        if with_mask {
            x = x.masked();
        }
        for reverse in [false, true] {
            let want = reference(cell, &x, (t_len, b, hd), reverse);
            for (threads, in_place) in [(1, false), (2, false), (3, false), (2, true)] {
                rnn_kernels::read_weights_in_place(in_place);
                let got = run_cell(cell, shape(t_len, b, hd, reverse), &x, threads);
                rnn_kernels::read_weights_in_place(false);
                let case = format!(
                    "{cell:?} T{t_len} B{b} H{hd} P{proj} mask {with_mask} reverse {reverse} \
                     threads {threads} in place {in_place}"
                );
                let mut pairs = vec![
                    ("states", &want.states[..], &got.states[..]),
                    ("masked states", &want.masked, &got.masked),
                    ("gates", &want.gates, &got.gates),
                    ("dgates", &want.dgates, &got.dgates),
                    ("dh0", &want.dh0, &got.dh0),
                ];
                if let Cell::Lstm = cell {
                    pairs.push(("cells", &want.cells, &got.cells));
                    pairs.push(("dc0", &want.dc0, &got.dc0));
                }
                assert_close(&case, 2e-4, &pairs);
            }
        }
    }
}
