//! Dropout between stacked layers and recurrent (variational) dropout on
//! `h_{t-1}`: training passes drop (deterministically for a model seed,
//! whatever the thread count), inference never does, the gradient is exact
//! for the drawn masks (finite differences with the masks fixed), and bad
//! probabilities are errors naming the argument.

mod common;

use common::data;
use recurrent::{
    CellKind, Gradients, GruVariant, NetConfig, Nonlinearity, OutputGrads, Recurrent, SeqInput,
    Tape,
};

const CELLS: [CellKind; 4] = [
    CellKind::Elman(Nonlinearity::Tanh),
    CellKind::Lstm,
    CellKind::Gru(GruVariant::LinearBeforeReset),
    CellKind::Gru(GruVariant::ResetBeforeLinear),
];

fn config(cell: CellKind, dropout: f32, bidirectional: bool) -> NetConfig {
    NetConfig {
        num_layers: 3,
        bidirectional,
        dropout,
        seed: 7,
        ..NetConfig::new(cell, 4, 6)
    }
}

/// The dropout variants of a cell: between layers, recurrent (not for the
/// reset-before-linear GRU), both.
fn variants(cell: CellKind, bidirectional: bool) -> Vec<NetConfig> {
    let between = config(cell, 0.5, bidirectional);
    let mut out = vec![between.clone()];
    if cell != CellKind::Gru(GruVariant::ResetBeforeLinear) {
        out.push(NetConfig {
            dropout: 0.0,
            recurrent_dropout: 0.4,
            ..between.clone()
        });
        out.push(NetConfig {
            recurrent_dropout: 0.3,
            ..between
        });
    }
    out
}

/// `y` of a training forward on a fresh tape (the first draw of its masks).
fn train_y(net: &Recurrent, x: &[f32], (t, b): (usize, usize)) -> Vec<f32> {
    train_y_lengths(net, x, (t, b), None)
}

fn train_y_lengths(
    net: &Recurrent,
    x: &[f32],
    (t, b): (usize, usize),
    lengths: Option<&[usize]>,
) -> Vec<f32> {
    let mut input = SeqInput::new(x, t, b);
    if let Some(l) = lengths {
        input = input.lengths(l);
    }
    net.forward_train(input, &mut Tape::new())
        .expect("forward")
        .y
}

#[test]
fn inference_never_drops_and_training_does() {
    let (t, b) = (5, 3);
    for cell in CELLS {
        for bidirectional in [false, true] {
            let plain = Recurrent::new(config(cell, 0.0, bidirectional)).expect("net");
            for cfg in variants(cell, bidirectional) {
                let dropped = Recurrent::new(cfg).expect("net");
                let x = data(t * b * 4, 1);
                let infer = |n: &Recurrent| n.forward(SeqInput::new(&x, t, b)).expect("forward").y;
                let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                // Inference with p = 0.5 is bit for bit inference with p = 0,
                // and so is training with p = 0.
                assert_eq!(bits(&infer(&dropped)), bits(&infer(&plain)));
                assert_eq!(bits(&train_y(&plain, &x, (t, b))), bits(&infer(&plain)));
                // Training with p = 0.5 drops: different outputs, the same for
                // the same draw, others for the next draw of a tape.
                let first = train_y(&dropped, &x, (t, b));
                assert_ne!(bits(&first), bits(&infer(&plain)), "{cell:?}");
                assert_eq!(bits(&first), bits(&train_y(&dropped, &x, (t, b))));
                let mut tape = Tape::new();
                let once = dropped
                    .forward_train(SeqInput::new(&x, t, b), &mut tape)
                    .expect("forward")
                    .y;
                let twice = dropped
                    .forward_train(SeqInput::new(&x, t, b), &mut tape)
                    .expect("forward")
                    .y;
                assert_eq!(bits(&once), bits(&first));
                assert_ne!(bits(&twice), bits(&once), "{cell:?}: a tape's next draw");
            }
        }
    }
}

#[test]
fn masks_do_not_depend_on_the_thread_count() {
    // Large enough that the thread count changes how the work is split.
    let (t, b) = (6, 40);
    let net = Recurrent::new(NetConfig {
        num_layers: 2,
        dropout: 0.3,
        seed: 3,
        ..NetConfig::new(CellKind::Lstm, 16, 96)
    })
    .expect("net");
    let x = data(t * b * 16, 2);
    let run = |threads| {
        recurrent::set_num_threads(threads).expect("threads");
        train_y(&net, &x, (t, b))
    };
    let (one, two) = (run(1), run(2));
    let d = one
        .iter()
        .zip(&two)
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    // The same masks: only the rounding of the split GEMMs differs (a
    // different mask would change outputs by their own size).
    assert!(d < 1e-5, "max difference {d}");
}

/// `sum(y * gy)` of a training pass on a fresh tape: the same masks at
/// every point.
fn loss(
    net: &Recurrent,
    x: &[f32],
    gy: &[f32],
    (t, b): (usize, usize),
    lengths: Option<&[usize]>,
) -> f64 {
    let y = train_y_lengths(net, x, (t, b), lengths);
    y.iter()
        .zip(gy)
        .map(|(a, g)| f64::from(*a) * f64::from(*g))
        .sum()
}

#[test]
fn gradients_are_exact_for_the_drawn_masks() {
    let (t, b) = (4, 3);
    let cases = CELLS.into_iter().flat_map(|c| variants(c, true));
    for (cfg, lengths) in cases.flat_map(|c| [(c.clone(), None), (c, Some(&[2usize, 4, 3][..]))]) {
        let cell = (cfg.cell, cfg.dropout, cfg.recurrent_dropout, lengths);
        let net = Recurrent::new(cfg).expect("net");
        let x = data(t * b * 4, 3);
        let gy = data(t * b * net.config().output_size(), 4);
        let mut tape = Tape::new();
        let mut input = SeqInput::new(&x, t, b);
        if let Some(l) = lengths {
            input = input.lengths(l);
        }
        net.forward_train(input, &mut tape).expect("forward");
        let mut grads = Gradients::for_net(&net);
        net.backward(&mut tape, OutputGrads::new(&gy), &mut grads)
            .expect("backward");
        let p0 = net.params().as_slice().to_vec();
        let eps = 1e-2f32;
        for (k, dir) in [(0u64, 5u64), (1, 6), (2, 7)] {
            // A random unit direction over every parameter.
            let v = data(p0.len(), dir);
            let norm = v.iter().map(|a| a * a).sum::<f32>().sqrt();
            let at = |sign: f32| {
                let mut n = net.try_clone().expect("clone");
                for ((p, a), d) in n.params_mut().iter_mut().zip(&p0).zip(&v) {
                    *p = a + sign * eps * d / norm;
                }
                loss(&n, &x, &gy, (t, b), lengths)
            };
            let fd = (at(1.0) - at(-1.0)) / (2.0 * f64::from(eps));
            let an: f64 = grads
                .params
                .as_slice()
                .iter()
                .zip(&v)
                .map(|(g, d)| f64::from(*g) * f64::from(d / norm))
                .sum();
            let rel = (fd - an).abs() / fd.abs().max(an.abs()).max(1e-12);
            assert!(
                rel < 1e-2,
                "{cell:?} direction {k}: fd {fd} an {an} rel {rel}"
            );
        }
    }
}

#[test]
fn bad_probabilities_are_errors_naming_dropout() {
    for p in [-0.1, 1.0, 1.5, f32::NAN, f32::INFINITY] {
        let e = Recurrent::new(config(CellKind::Lstm, p, false)).unwrap_err();
        assert!(e.to_string().contains("dropout = "), "{p}: {e}");
        let recurrent = NetConfig {
            recurrent_dropout: p,
            ..config(CellKind::Lstm, 0.0, false)
        };
        let e = Recurrent::new(recurrent).unwrap_err();
        assert!(e.to_string().contains("recurrent_dropout = "), "{p}: {e}");
    }
    // The reset-before-linear GRU's `r * h_{t-1}` takes no mask.
    let rbl = NetConfig {
        recurrent_dropout: 0.2,
        ..config(CellKind::Gru(GruVariant::ResetBeforeLinear), 0.0, false)
    };
    let e = Recurrent::new(rbl).unwrap_err();
    assert!(e.to_string().contains("recurrent_dropout"), "{e}");
    // One layer: accepted, as PyTorch does (nothing to act on).
    let one = NetConfig {
        dropout: 0.5,
        ..NetConfig::new(CellKind::Lstm, 3, 4)
    };
    assert!(Recurrent::new(one).is_ok());
}
