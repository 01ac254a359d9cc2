//! The threaded whole-sequence kernels (`lstm`, `gru`, `elman`: the hidden
//! units split over a team of threads, the per-step products over packed
//! weights) equal the step-by-step forms (full GEMM + fused step kernel), in
//! both time directions, for every thread count.

use rnn_kernels::activation::{self, Activation};
use rnn_kernels::gemm::PARALLEL_FLOP_THRESHOLD;
mod common;

use common::{Cell, Inputs, assert_close, data, run_cell, shape, slots, sorted_lengths};
use rnn_kernels::{Mat, MatMut, Op, SeqShape, Upstream, elman, gemm, lstm};

/// Sizes `(T, B, H)` whose per-step product (`B * G * H * H` for `G` gate
/// blocks up to 4) is above the team's threshold for `G >= 3`, so that the
/// units really are split over the threads (with panels of every width: 40
/// and 48 units for H = 88 on 2 threads, 32 + 32 + 36 for H = 100 on 3).
const SPLIT: [(usize, usize, usize); 2] = [(3, 12, 88), (2, 9, 100)];

#[test]
fn split_sizes_are_above_the_threshold() {
    for (_, b, hd) in SPLIT {
        assert!(b * 3 * hd * hd >= PARALLEL_FLOP_THRESHOLD);
    }
}

/// The reference: one step at a time.
fn stepwise(
    gates: &mut [f32],
    w_hh: &[f32],
    states: &mut [f32],
    cells: &mut [f32],
    (t_len, b, hd): (usize, usize, usize),
    reverse: bool,
) {
    let (gh, bh) = (4 * hd, b * hd);
    for s in 0..t_len {
        let (t, prev, out) = slots(t_len, reverse, s);
        let g = &mut gates[t * b * gh..(t + 1) * b * gh];
        let h_prev = states[prev * bh..(prev + 1) * bh].to_vec();
        gemm(
            1.0,
            Mat::new(&h_prev, b, hd),
            Op::N,
            Mat::new(w_hh, gh, hd),
            Op::T,
            1.0,
            MatMut::new(g, b, gh),
        );
        let c_prev = cells[prev * bh..(prev + 1) * bh].to_vec();
        let mut c = vec![0.0; bh];
        let mut h = vec![0.0; bh];
        lstm::forward(g, &c_prev, &mut c, &mut h, hd);
        cells[out * bh..(out + 1) * bh].copy_from_slice(&c);
        states[out * bh..(out + 1) * bh].copy_from_slice(&h);
    }
}

/// `dh += dy_t`: row `t*B + r` of `dy` holds `dh_t[r]` at `offset`.
fn add_upstream(dh: &mut [f32], dy: &[f32], t: usize, hd: usize, (stride, offset): (usize, usize)) {
    let b = dh.len() / hd;
    for (r, d) in dh.chunks_exact_mut(hd).enumerate() {
        let row = &dy[(t * b + r) * stride + offset..][..hd];
        d.iter_mut().zip(row).for_each(|(a, g)| *a += g);
    }
}

#[test]
fn team_forward_equals_stepwise_forward() {
    for &(t_len, b, hd) in &[
        (5, 3, 16),
        (7, 4, 40),
        (3, 1, 64),
        (4, 2, 33),
        (2, 5, 8),
        (4, 1, 37),
        (3, 1, 200),
        SPLIT[0],
        SPLIT[1],
    ] {
        for reverse in [false, true] {
            for threads in [1, 2, 3, 4] {
                let (gh, bh) = (4 * hd, b * hd);
                let w_hh: Vec<f32> = data(gh * hd, 1).iter().map(|v| v * 0.3).collect();
                let gates0 = data(t_len * b * gh, 2);
                let mut states0 = vec![0.0; (t_len + 1) * bh];
                let mut cells0 = vec![0.0; (t_len + 1) * bh];
                let init = if reverse { t_len } else { 0 };
                states0[init * bh..(init + 1) * bh].copy_from_slice(&data(bh, 3));
                cells0[init * bh..(init + 1) * bh].copy_from_slice(&data(bh, 4));

                let (mut g_ref, mut s_ref, mut c_ref) =
                    (gates0.clone(), states0.clone(), cells0.clone());
                stepwise(
                    &mut g_ref,
                    &w_hh,
                    &mut s_ref,
                    &mut c_ref,
                    (t_len, b, hd),
                    reverse,
                );
                let (mut g, mut s, mut c) = (gates0.clone(), states0.clone(), cells0.clone());
                rnn_kernels::threads::install(|| {
                    lstm::forward_sequence(
                        lstm::Sequence {
                            gates: &mut g,
                            w_hh: &w_hh,
                            states: &mut s,
                            cells: &mut c,
                            projection: None,
                            mask: None,
                            shape: shape(t_len, b, hd, reverse),
                        },
                        threads,
                    )
                });
                let case = format!("T={t_len} B={b} H={hd} reverse={reverse} threads={threads}");
                assert_close(
                    &case,
                    2e-6,
                    &[
                        ("gates", &g[..], &g_ref[..]),
                        ("h", &s[..], &s_ref[..]),
                        ("c", &c[..], &c_ref[..]),
                    ],
                );
            }
        }
    }
}

#[test]
fn team_backward_equals_stepwise_backward() {
    for &(t_len, b, hd) in &[
        (5, 3, 16),
        (6, 4, 40),
        (3, 1, 64),
        (4, 2, 33),
        (1, 2, 32),
        SPLIT[0],
        SPLIT[1],
    ] {
        for reverse in [false, true] {
            for threads in [1, 2, 3] {
                let (gh, bh) = (4 * hd, b * hd);
                let (stride, offset) = (2 * hd + 3, hd / 2);
                let w_hh: Vec<f32> = data(gh * hd, 1).iter().map(|v| v * 0.3).collect();
                // Activated gates in (0, 1) (g in (-1, 1)), any cell states.
                let gates: Vec<f32> = data(t_len * b * gh, 5)
                    .iter()
                    .map(|v| 0.5 + 0.4 * v)
                    .collect();
                let cells = data((t_len + 1) * bh, 6);
                let dy = data(t_len * b * stride, 7);
                let (dh_n, dc_n) = (data(bh, 8), data(bh, 9));

                // Reference: the per-step kernel and a full GEMM.
                let mut dg_ref = vec![0.0; t_len * b * gh];
                let (mut dh, mut dc) = (dh_n.clone(), dc_n.clone());
                for s in (0..t_len).rev() {
                    let (t, prev, out) = slots(t_len, reverse, s);
                    add_upstream(&mut dh, &dy, t, hd, (stride, offset));
                    let dg = &mut dg_ref[t * b * gh..(t + 1) * b * gh];
                    lstm::backward(
                        &gates[t * b * gh..(t + 1) * b * gh],
                        &cells[prev * bh..(prev + 1) * bh],
                        &cells[out * bh..(out + 1) * bh],
                        &dh,
                        &mut dc,
                        dg,
                        hd,
                    );
                    gemm(
                        1.0,
                        Mat::new(dg, b, gh),
                        Op::N,
                        Mat::new(&w_hh, gh, hd),
                        Op::N,
                        0.0,
                        MatMut::new(&mut dh, b, hd),
                    );
                }

                let mut dgates = vec![f32::NAN; t_len * b * gh];
                let (mut dh2, mut dc2, mut spare) = (dh_n.clone(), dc_n.clone(), vec![0.0; bh]);
                rnn_kernels::threads::install(|| {
                    lstm::backward_sequence(
                        lstm::SequenceGrads {
                            gates: &gates,
                            w_hh: &w_hh,
                            cells: &cells,
                            up: Upstream {
                                dy: &dy,
                                offset,
                                stride,
                            },
                            dgates: &mut dgates,
                            dh: &mut dh2,
                            dh_spare: &mut spare,
                            dc: &mut dc2,
                            projection: None,
                            mask: None,
                            shape: shape(t_len, b, hd, reverse),
                        },
                        threads,
                    )
                });
                let case = format!("T={t_len} B={b} H={hd} reverse={reverse} threads={threads}");
                assert_close(
                    &case,
                    1e-5,
                    &[
                        ("dgates", &dgates[..], &dg_ref[..]),
                        ("dh0", &dh2[..], &dh[..]),
                        ("dc0", &dc2[..], &dc[..]),
                    ],
                );
            }
        }
    }
}

#[test]
fn team_gru_equals_stepwise_gru() {
    use rnn_kernels::gru;
    for &(t_len, b, hd) in &[
        (5, 3, 16),
        (6, 4, 40),
        (3, 1, 64),
        (4, 2, 33),
        (5, 1, 45),
        SPLIT[0],
        SPLIT[1],
    ] {
        for reverse in [false, true] {
            for threads in [1, 2, 3] {
                let (gh, bh) = (3 * hd, b * hd);
                let (stride, offset) = (hd + 4, 3);
                let w_hh: Vec<f32> = data(gh * hd, 1).iter().map(|v| v * 0.3).collect();
                let b_hn = data(hd, 11);
                let gates0 = data(t_len * b * gh, 2);
                let mut states0 = vec![0.0; (t_len + 1) * bh];
                let init = if reverse { t_len } else { 0 };
                states0[init * bh..(init + 1) * bh].copy_from_slice(&data(bh, 3));
                let dy = data(t_len * b * stride, 7);
                let dh_n = data(bh, 8);

                // Reference, step by step.
                let (mut g_ref, mut s_ref) = (gates0.clone(), states0.clone());
                let mut hn_ref = vec![0.0; t_len * bh];
                for s in 0..t_len {
                    let (t, prev, out) = slots(t_len, reverse, s);
                    let h_prev = s_ref[prev * bh..(prev + 1) * bh].to_vec();
                    let mut hw = vec![0.0; b * gh];
                    gemm(
                        1.0,
                        Mat::new(&h_prev, b, hd),
                        Op::N,
                        Mat::new(&w_hh, gh, hd),
                        Op::T,
                        0.0,
                        MatMut::new(&mut hw, b, gh),
                    );
                    let mut h = vec![0.0; bh];
                    gru::lbr_forward(
                        &mut g_ref[t * b * gh..(t + 1) * b * gh],
                        &hw,
                        &b_hn,
                        &h_prev,
                        &mut h,
                        &mut hn_ref[t * bh..(t + 1) * bh],
                        hd,
                    );
                    s_ref[out * bh..(out + 1) * bh].copy_from_slice(&h);
                }
                let (mut dg_ref, mut dhw_ref) =
                    (vec![0.0; t_len * b * gh], vec![0.0; t_len * b * gh]);
                let mut dh = dh_n.clone();
                for s in (0..t_len).rev() {
                    let (t, prev, _) = slots(t_len, reverse, s);
                    add_upstream(&mut dh, &dy, t, hd, (stride, offset));
                    let mut dh_prev = vec![0.0; bh];
                    let g = t * b * gh..(t + 1) * b * gh;
                    gru::lbr_backward(
                        &g_ref[g.clone()],
                        &hn_ref[t * bh..(t + 1) * bh],
                        &s_ref[prev * bh..(prev + 1) * bh],
                        &dh,
                        &mut dg_ref[g.clone()],
                        &mut dhw_ref[g.clone()],
                        &mut dh_prev,
                        hd,
                    );
                    gemm(
                        1.0,
                        Mat::new(&dhw_ref[g], b, gh),
                        Op::N,
                        Mat::new(&w_hh, gh, hd),
                        Op::N,
                        1.0,
                        MatMut::new(&mut dh_prev, b, hd),
                    );
                    dh = dh_prev;
                }

                let (mut g, mut st) = (gates0.clone(), states0.clone());
                let (mut hw, mut hn) = (vec![0.0; b * gh], vec![0.0; t_len * bh]);
                let (mut dgates, mut dhw) = (
                    vec![f32::NAN; t_len * b * gh],
                    vec![f32::NAN; t_len * b * gh],
                );
                let (mut dh2, mut spare) = (dh_n.clone(), vec![0.0; bh]);
                rnn_kernels::threads::install(|| {
                    gru::forward_sequence(
                        gru::Sequence {
                            gates: &mut g,
                            w_hh: &w_hh,
                            states: &mut st,
                            saved: &mut hn,
                            form: gru::Form::LinearBeforeReset {
                                hw: &mut hw,
                                b_hn: &b_hn,
                            },
                            mask: None,
                            shape: shape(t_len, b, hd, reverse),
                        },
                        threads,
                    );
                    gru::backward_sequence(
                        gru::SequenceGrads {
                            gates: &g,
                            saved: &hn,
                            states: &st,
                            w_hh: &w_hh,
                            up: Upstream {
                                dy: &dy,
                                offset,
                                stride,
                            },
                            dgates: &mut dgates,
                            dhw: &mut dhw,
                            dh: &mut dh2,
                            dh_spare: &mut spare,
                            reset_after: true,
                            mask: None,
                            shape: shape(t_len, b, hd, reverse),
                        },
                        threads,
                    );
                });
                let case = format!("T={t_len} B={b} H={hd} reverse={reverse} threads={threads}");
                assert_close(
                    &case,
                    1e-5,
                    &[
                        ("gates", &g[..], &g_ref[..]),
                        ("h", &st[..], &s_ref[..]),
                        ("hn", &hn[..], &hn_ref[..]),
                        ("dgates", &dgates[..], &dg_ref[..]),
                        ("dhw", &dhw[..], &dhw_ref[..]),
                        ("dh0", &dh2[..], &dh[..]),
                    ],
                );
            }
        }
    }
}

/// Elman sizes: the product is `B * H * H`, so larger batches split.
const ELMAN: [(usize, usize, usize); 5] = [
    (5, 3, 16),
    (3, 1, 64),
    (4, 2, 33),
    (3, 40, 88),
    (2, 27, 100),
];

#[test]
fn team_elman_equals_stepwise_elman() {
    assert!(
        ELMAN[3..]
            .iter()
            .all(|&(_, b, h)| b * h * h >= PARALLEL_FLOP_THRESHOLD)
    );
    for &(t_len, b, hd) in &ELMAN {
        for act in [Activation::Tanh, Activation::Relu] {
            for reverse in [false, true] {
                for threads in [1, 2, 3] {
                    let bh = b * hd;
                    let case = format!(
                        "T={t_len} B={b} H={hd} {act:?} reverse={reverse} threads={threads}"
                    );
                    let w_hh: Vec<f32> = data(hd * hd, 1).iter().map(|v| v * 0.2).collect();
                    let pre0 = data(t_len * bh, 2);
                    let mut states0 = vec![0.0; (t_len + 1) * bh];
                    let init = if reverse { t_len } else { 0 };
                    states0[init * bh..(init + 1) * bh].copy_from_slice(&data(bh, 3));

                    // Forward, step by step.
                    let (mut pre_ref, mut s_ref) = (pre0.clone(), states0.clone());
                    for s in 0..t_len {
                        let (t, prev, out) = slots(t_len, reverse, s);
                        let h_prev = s_ref[prev * bh..(prev + 1) * bh].to_vec();
                        let p = &mut pre_ref[t * bh..(t + 1) * bh];
                        gemm(
                            1.0,
                            Mat::new(&h_prev, b, hd),
                            Op::N,
                            Mat::new(&w_hh, hd, hd),
                            Op::T,
                            1.0,
                            MatMut::new(p, b, hd),
                        );
                        activation::forward(act, p, &mut s_ref[out * bh..(out + 1) * bh]);
                    }
                    let (mut pre, mut states) = (pre0.clone(), states0.clone());
                    rnn_kernels::threads::install(|| {
                        elman::forward_sequence(
                            elman::Sequence {
                                act,
                                pre: &mut pre,
                                w_hh: &w_hh,
                                states: &mut states,
                                mask: None,
                                shape: shape(t_len, b, hd, reverse),
                            },
                            threads,
                        )
                    });
                    assert_close(
                        &case,
                        2e-6,
                        &[
                            ("pre", &pre[..], &pre_ref[..]),
                            ("h", &states[..], &s_ref[..]),
                        ],
                    );

                    // Backward, step by step, from the reference states.
                    let (stride, offset) = (2 * hd + 1, hd / 3);
                    let dy = data(t_len * b * stride, 7);
                    let dh_n = data(bh, 8);
                    let mut dp_ref = vec![0.0; t_len * bh];
                    let mut dh = dh_n.clone();
                    for s in (0..t_len).rev() {
                        let (t, _, out) = slots(t_len, reverse, s);
                        add_upstream(&mut dh, &dy, t, hd, (stride, offset));
                        let dp = &mut dp_ref[t * bh..(t + 1) * bh];
                        activation::backward(act, &s_ref[out * bh..(out + 1) * bh], &dh, dp);
                        gemm(
                            1.0,
                            Mat::new(dp, b, hd),
                            Op::N,
                            Mat::new(&w_hh, hd, hd),
                            Op::N,
                            0.0,
                            MatMut::new(&mut dh, b, hd),
                        );
                    }
                    let mut dpre = vec![f32::NAN; t_len * bh];
                    let (mut dh2, mut spare) = (dh_n.clone(), vec![0.0; bh]);
                    rnn_kernels::threads::install(|| {
                        elman::backward_sequence(
                            elman::SequenceGrads {
                                act,
                                w_hh: &w_hh,
                                states: &s_ref,
                                up: Upstream {
                                    dy: &dy,
                                    offset,
                                    stride,
                                },
                                dpre: &mut dpre,
                                dh: &mut dh2,
                                dh_spare: &mut spare,
                                mask: None,
                                shape: shape(t_len, b, hd, reverse),
                            },
                            threads,
                        )
                    });
                    assert_close(
                        &case,
                        1e-5,
                        &[("dpre", &dpre[..], &dp_ref[..]), ("dh0", &dh2[..], &dh[..])],
                    );
                }
            }
        }
    }
}

/// Rows `rows` (each `width` values) of every `[.., B, width]` block of
/// `v`, for the steps `steps`.
fn pick(
    v: &[f32],
    b: usize,
    width: usize,
    steps: impl Iterator<Item = usize>,
    row: usize,
) -> Vec<f32> {
    steps
        .flat_map(|t| v[(t * b + row) * width..][..width].iter().copied())
        .collect()
}

/// A variable-length batch (rows sorted longest first) equals each row run
/// alone over its own length, for every cell, both directions and thread
/// counts that split the units: the rows inside their sequence compute
/// exactly what they would alone, the others keep their state and pass
/// their gradient through.
#[test]
fn variable_lengths_equal_each_row_alone() {
    // T, H, B; lengths from T down to 1, longest first, with ties. The
    // first two split the units over the threads for every cell (above
    // the team's threshold: B * G * H * H >= 2^18 for G >= 1).
    let cases = [(7, 88, 36), (5, 100, 40), (6, 5, 3)];
    // Each cell, and the loop's projection and recurrent mask: (cell,
    // projected, masked).
    let variants = Cell::ALL
        .map(|c| (c, false, false))
        .into_iter()
        .chain([(Cell::Lstm, true, true), (Cell::Elman, false, true)]);
    for (cell, projected, with_mask) in variants {
        let gates = cell.gates();
        for &(t_len, hd, b) in &cases {
            assert!(b * gates * hd * hd >= PARALLEL_FLOP_THRESHOLD || hd < 16);
            let (lens, active) = sorted_lengths(t_len, b);
            let mut x = Inputs::new(cell, t_len, b, hd);
            if projected {
                x = x.projected(hd / 2);
            }
            if with_mask {
                x = x.masked();
            }
            let (gh, sw) = (gates * hd, x.h0.len() / b);
            for reverse in [false, true] {
                for threads in [1, 2, 3] {
                    let shape = SeqShape {
                        seq_len: t_len,
                        batch: b,
                        hidden: hd,
                        reverse,
                        active: Some(&active),
                    };
                    let all = run_cell(cell, shape, &x, threads);
                    for (r, &len) in lens.iter().enumerate() {
                        let alone_x = Inputs {
                            w_hh: x.w_hh.clone(),
                            w_hr: x.w_hr.clone(),
                            mask: pick(&x.mask, b, sw, 0..x.mask.len().min(1), r),
                            b_hn: x.b_hn.clone(),
                            gates0: pick(&x.gates0, b, gh, 0..len, r),
                            h0: pick(&x.h0, b, sw, 0..1, r),
                            c0: pick(&x.c0, b, hd, 0..1, r),
                            dy: pick(&x.dy, b, sw, 0..len, r),
                            dh_n: pick(&x.dh_n, b, sw, 0..1, r),
                            dc_n: pick(&x.dc_n, b, hd, 0..1, r),
                        };
                        let alone = run_cell(cell, shape_of(len, 1, hd, reverse), &alone_x, 1);
                        let slots = (0..=t_len).map(|s| s.min(len));
                        let case = format!(
                            "{cell:?} projected {projected} masked {with_mask} T={t_len} B={b} H={hd} reverse={reverse} threads={threads} row {r} (length {len})"
                        );
                        let mut pairs = vec![
                            (
                                "gates",
                                pick(&all.gates, b, gh, 0..len, r),
                                alone.gates.clone(),
                            ),
                            (
                                "dgates",
                                pick(&all.dgates, b, gh, 0..len, r),
                                alone.dgates.clone(),
                            ),
                            (
                                "states",
                                pick(&all.states, b, sw, 0..=t_len, r),
                                pick(&alone.states, 1, sw, slots.clone(), 0),
                            ),
                            (
                                "masked states",
                                pick(&all.masked, b, sw, 0..=t_len, r),
                                pick(&alone.masked, 1, sw, slots.clone(), 0),
                            ),
                            ("dh0", pick(&all.dh0, b, sw, 0..1, r), alone.dh0.clone()),
                        ];
                        if matches!(cell, Cell::Lstm) {
                            pairs.push((
                                "cells",
                                pick(&all.cells, b, hd, 0..=t_len, r),
                                pick(&alone.cells, 1, hd, slots, 0),
                            ));
                            pairs.push(("dc0", pick(&all.dc0, b, hd, 0..1, r), alone.dc0.clone()));
                        }
                        if gates == 3 {
                            pairs.push((
                                "saved",
                                pick(&all.saved, b, hd, 0..len, r),
                                alone.saved.clone(),
                            ));
                        }
                        let pairs: Vec<(&str, &[f32], &[f32])> =
                            pairs.iter().map(|(n, a, b)| (*n, &a[..], &b[..])).collect();
                        assert_close(&case, 1e-5, &pairs);
                    }
                }
            }
        }
    }
}

fn shape_of(seq_len: usize, batch: usize, hidden: usize, reverse: bool) -> SeqShape<'static> {
    shape(seq_len, batch, hidden, reverse)
}
