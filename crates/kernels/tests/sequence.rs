//! The threaded whole-sequence kernels (`lstm`, `gru`, `elman`: the hidden
//! units split over a team of threads, the per-step products over packed
//! weights) equal the step-by-step forms (full GEMM + fused step kernel), in
//! both time directions, for every thread count, and a variable-length
//! batch equals each of its rows alone.

use rnn_kernels::activation::Activation;
use rnn_kernels::gemm::PARALLEL_FLOP_THRESHOLD;
mod common;

use common::{Cell, Inputs, assert_close, run_cell, shape, sorted_lengths, stepwise};
use rnn_kernels::SeqShape;

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

/// Every size of the cases below: small ones on one chunk, and ones whose
/// product is above the team's threshold for every cell (`B * G * H * H`
/// with `G = 1` for the Elman cell), so that the units are split.
const SIZES: [(usize, usize, usize); 12] = [
    (5, 3, 16),
    (7, 4, 40),
    (3, 1, 64),
    (4, 2, 33),
    (2, 5, 8),
    (4, 1, 37),
    (1, 2, 32),
    (3, 1, 200),
    SPLIT[0],
    SPLIT[1],
    (3, 40, 88),
    (2, 27, 100),
];

/// The threaded whole-sequence kernels equal one step at a time (full GEMMs
/// and the whole-slice kernels), forward and backward, for every cell (the
/// Elman cell with both activations), both directions and 1-4 threads; and
/// so do the loop's other inputs: the upstream gradient in some columns of
/// wider rows (a bidirectional layer's), a recurrent mask, and an LSTM's
/// projection.
#[test]
fn team_equals_stepwise() {
    assert!(
        SIZES[10..]
            .iter()
            .all(|&(_, b, h)| b * h * h >= PARALLEL_FLOP_THRESHOLD)
    );
    let cells = Cell::ALL.into_iter().chain([Cell::Elman(Activation::Relu)]);
    for cell in cells {
        for (t_len, b, hd) in SIZES {
            let plain = Inputs::new(cell, t_len, b, hd);
            let mut variants = vec![("plain", plain.clone())];
            let mut other = plain.clone().upstream_columns();
            if cell.takes_mask() {
                other = other.masked();
            }
            variants.push(("columns, mask", other));
            if let Cell::Lstm = cell {
                let projected = plain
                    .clone()
                    .projected(hd / 2 + 1)
                    .masked()
                    .upstream_columns();
                variants.push(("projection, mask, columns", projected));
            }
            let batch_first = Inputs {
                dy_batch_first: true,
                ..plain.upstream_columns()
            };
            variants.push(("batch-first dy", batch_first));
            for (name, x) in &variants {
                for reverse in [false, true] {
                    let want = stepwise(cell, x, (t_len, b, hd), reverse);
                    for threads in [1, 2, 3, 4] {
                        let got = run_cell(cell, shape(t_len, b, hd, reverse), x, threads);
                        let case = format!(
                            "{cell:?} {name} T={t_len} B={b} H={hd} reverse={reverse} threads={threads}"
                        );
                        assert_close(
                            &case,
                            2e-5,
                            &[
                                ("gates", &got.gates, &want.gates),
                                ("states", &got.states, &want.states),
                                ("masked states", &got.masked, &want.masked),
                                ("cells", &got.cells, &want.cells),
                                ("saved", &got.saved, &want.saved),
                                ("dgates", &got.dgates, &want.dgates),
                                ("dh0", &got.dh0, &want.dh0),
                                ("dc0", &got.dc0, &want.dc0),
                                ("dh_t", &got.dh_steps, &want.dh_steps),
                            ],
                        );
                    }
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
    let variants = Cell::ALL.map(|c| (c, false, false)).into_iter().chain([
        (Cell::Lstm, true, true),
        (Cell::Elman(Activation::Tanh), false, true),
    ]);
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
                            up: x.up,
                            dy_batch_first: false,
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
                            (
                                "dh_t",
                                pick(&all.dh_steps, b, sw, 0..all.dh_steps.len() / (b * sw), r),
                                pick(&alone.dh_steps, 1, sw, 0..alone.dh_steps.len() / sw, 0)
                                    .into_iter()
                                    .chain(std::iter::repeat_n(
                                        0.0,
                                        all.dh_steps.len() / b - alone.dh_steps.len(),
                                    ))
                                    .collect(),
                            ),
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
