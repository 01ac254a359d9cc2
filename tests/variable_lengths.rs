//! A variable-length batch equals each of its sequences run alone, for
//! every cell kind, two layers, both directions, at sizes where the time
//! loops split the hidden units over the threads: outputs (zero past each
//! end), final states, input and initial-state gradients row by row, and
//! parameter gradients as the sum of the rows' own. A batch whose longest
//! sequence is shorter than `T` is covered too (the steps where no row is
//! inside its sequence), and so is a tape reused from a call without
//! lengths (whose buffers hold values past the sequences' ends).

mod common;

use common::data;

use recurrent::{
    CellKind, Gradients, GruVariant, NetConfig, Nonlinearity, OutputGrads, Recurrent, SeqInput,
    Tape,
};

/// Rows `row` of every `[B, width]` block of `v`, for the first `steps`
/// blocks.
fn rows(v: &[f32], b: usize, width: usize, steps: usize, row: usize) -> Vec<f32> {
    (0..steps)
        .flat_map(|t| v[(t * b + row) * width..][..width].iter().copied())
        .collect()
}

fn assert_close(what: &str, ours: &[f32], theirs: &[f32], tol: f32) {
    assert_eq!(ours.len(), theirs.len(), "{what}: lengths");
    let scale = theirs.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    let worst = ours
        .iter()
        .zip(theirs)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(
        worst <= tol * scale,
        "{what}: differs by {worst} (scale {scale})"
    );
}

/// One forward and backward pass: `(y, h_n, c_n, grads)`.
struct Pass {
    y: Vec<f32>,
    h_n: Vec<f32>,
    c_n: Vec<f32>,
    grads: Gradients,
}

#[allow(clippy::too_many_arguments)]
fn pass(
    net: &Recurrent,
    tape: &mut Tape,
    x: &[f32],
    (t, b): (usize, usize),
    lengths: Option<&[usize]>,
    h0: &[f32],
    c0: &[f32],
    gy: &[f32],
    (gh, gc): (&[f32], &[f32]),
) -> Pass {
    let lstm = net.config().cell.has_cell_state();
    let mut input = SeqInput::new(x, t, b).h0(h0);
    if lstm {
        input = input.c0(c0);
    }
    if let Some(l) = lengths {
        input = input.lengths(l);
    }
    let out = net.forward_train(input, tape).unwrap();
    let mut g = OutputGrads::new(gy).h_n(gh);
    if lstm {
        g = g.c_n(gc);
    }
    let mut grads = Gradients::for_net(net);
    net.backward(tape, g, &mut grads).unwrap();
    Pass {
        y: out.y,
        h_n: out.h_n,
        c_n: out.c_n,
        grads,
    }
}

#[test]
fn a_variable_length_batch_equals_each_sequence_alone() {
    let kinds = [
        CellKind::Elman(Nonlinearity::Tanh),
        CellKind::Lstm,
        CellKind::Gru(GruVariant::LinearBeforeReset),
        CellKind::Gru(GruVariant::ResetBeforeLinear),
    ];
    // B * G * H * H >= 2^18 for every cell: the units split over threads.
    let (t, b, i, h) = (9, 12, 5, 160);
    // Unsorted, with ties; the longest (8) shorter than T.
    let lengths = [3, 8, 1, 8, 5, 2, 7, 4, 6, 8, 2, 5];
    recurrent::set_num_threads(2).unwrap();
    for kind in kinds {
        for bidirectional in [false, true] {
            let mut cfg = NetConfig::new(kind, i, h);
            cfg.num_layers = 2;
            cfg.bidirectional = bidirectional;
            cfg.seed = 7;
            let net = Recurrent::new(cfg).unwrap();
            let (dirs, lstm) = (net.config().directions(), kind.has_cell_state());
            let states = 2 * dirs;
            let x = data(t * b * i, 1);
            let h0 = data(states * b * h, 2);
            let c0 = data(states * b * h, 3);
            let gy = data(t * b * dirs * h, 4);
            let gh = data(states * b * h, 5);
            let gc = data(states * b * h, 6);
            // The tape first serves a call without lengths.
            let mut tape = Tape::new();
            let full = (&gh[..], &gc[..]);
            pass(&net, &mut tape, &x, (t, b), None, &h0, &c0, &gy, full);
            let all = pass(
                &net,
                &mut tape,
                &x,
                (t, b),
                Some(&lengths),
                &h0,
                &c0,
                &gy,
                full,
            );
            let mut param_sum = vec![0.0f32; all.grads.params.as_slice().len()];
            for (r, &len) in lengths.iter().enumerate() {
                let case = format!("{kind:?} bidirectional={bidirectional} row {r} (length {len})");
                let one = |v: &[f32], width: usize, steps: usize| rows(v, b, width, steps, r);
                let alone = pass(
                    &net,
                    &mut tape,
                    &one(&x, i, len),
                    (len, 1),
                    None,
                    &one(&h0, h, states),
                    &one(&c0, h, states),
                    &one(&gy, dirs * h, len),
                    (&one(&gh, h, states), &one(&gc, h, states)),
                );
                let y = one(&all.y, dirs * h, t);
                assert_close(&format!("{case}: y"), &y[..len * dirs * h], &alone.y, 1e-5);
                assert!(
                    y[len * dirs * h..].iter().all(|&v| v == 0.0),
                    "{case}: y past the end"
                );
                assert_close(
                    &format!("{case}: h_n"),
                    &one(&all.h_n, h, states),
                    &alone.h_n,
                    1e-5,
                );
                let gx = one(&all.grads.x, i, t);
                assert_close(
                    &format!("{case}: grad x"),
                    &gx[..len * i],
                    &alone.grads.x,
                    1e-4,
                );
                assert!(
                    gx[len * i..].iter().all(|&v| v == 0.0),
                    "{case}: grad x past the end"
                );
                assert_close(
                    &format!("{case}: grad h0"),
                    &one(&all.grads.h0, h, states),
                    &alone.grads.h0,
                    1e-4,
                );
                if lstm {
                    assert_close(
                        &format!("{case}: c_n"),
                        &one(&all.c_n, h, states),
                        &alone.c_n,
                        1e-5,
                    );
                    assert_close(
                        &format!("{case}: grad c0"),
                        &one(&all.grads.c0, h, states),
                        &alone.grads.c0,
                        1e-4,
                    );
                }
                param_sum
                    .iter_mut()
                    .zip(alone.grads.params.as_slice())
                    .for_each(|(s, g)| *s += g);
            }
            let case = format!("{kind:?} bidirectional={bidirectional}");
            assert_close(
                &format!("{case}: parameter gradients"),
                all.grads.params.as_slice(),
                &param_sum,
                1e-4,
            );
        }
    }
}
