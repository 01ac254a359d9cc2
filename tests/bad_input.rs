//! Bad input: every user error is an `Err` that names the tensor or size at
//! fault, never a panic, and changes nothing.
//!
//! Covered: a wrong `x` length, zero `seq_len` or `batch`, wrong `h0`/`c0`
//! lengths, `c0` for a cell without cell state, wrong `grad_y`/`grad_h_n`/
//! `grad_c_n` lengths, `grad_c_n` for a cell without cell state, `backward`
//! with an empty tape or one from another network, zero sizes and
//! overflowing sizes in configurations, [`Recurrent::from_params`] with a
//! missing tensor or a wrong shape, [`Params::set`] with a wrong length or
//! an unknown name. "Changes nothing" is checked on the network (`==`), the
//! gradient buffers (`==`) and the tape (its `Debug` text, which prints
//! every buffer, and a later `backward` that gives the same gradients).
//!
//! A proptest draws random, possibly inconsistent, configurations, `T`,
//! `B` and buffer lengths, runs `new`, `forward`, `forward_train` and
//! `backward` under `catch_unwind`, and requires no panic and `Ok` exactly
//! when the shapes are consistent (and, on `Err`, a message naming one of
//! the inconsistent items).

use std::panic::{AssertUnwindSafe, catch_unwind};

use proptest::prelude::*;
use recurrent::{
    CellKind, Error, Gradients, Gru, GruConfig, GruVariant, Lstm, LstmConfig, NetConfig,
    Nonlinearity, OutputGrads, Params, Recurrent, Rnn, RnnConfig, SeqInput, Tape,
};

const CELLS: [CellKind; 5] = [
    CellKind::Elman(Nonlinearity::Tanh),
    CellKind::Elman(Nonlinearity::Relu),
    CellKind::Lstm,
    CellKind::Gru(GruVariant::LinearBeforeReset),
    CellKind::Gru(GruVariant::ResetBeforeLinear),
];

/// Deterministic filler values.
fn values(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|k| {
            ((k as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) % 2001) as f32 / 1000.0 - 1.0
        })
        .collect()
}

/// Asserts `r` is a [`Error::Shape`] error for `tensor` with these shapes,
/// whose message starts with the tensor's name and shows both shapes.
#[track_caller]
fn assert_shape_err<T: std::fmt::Debug>(
    r: recurrent::Result<T>,
    tensor: &str,
    expected: &[usize],
    actual: &[usize],
) {
    let err = r.expect_err(&format!("{tensor}: an error"));
    let msg = err.to_string();
    match &err {
        Error::Shape {
            tensor: t,
            expected: e,
            actual: a,
        } => {
            assert_eq!(
                (t.as_str(), e.as_slice(), a.as_slice()),
                (tensor, expected, actual),
                "{msg}"
            );
        }
        other => panic!("{tensor}: expected a shape error, got {other:?}"),
    }
    assert!(
        msg.starts_with(&format!("{tensor}: ")),
        "message does not start with the tensor name: {msg}"
    );
    assert!(
        msg.contains(&format!("{expected:?}")) && msg.contains(&format!("{actual:?}")),
        "{msg}"
    );
}

/// Asserts `r` is a [`Error::ZeroSize`] error for `what`, named in the message.
#[track_caller]
fn assert_zero_err<T: std::fmt::Debug>(r: recurrent::Result<T>, what: &str) {
    let err = r.expect_err(&format!("{what} = 0: an error"));
    assert!(
        matches!(&err, Error::ZeroSize { what: w } if *w == what),
        "{what}: got {err:?}"
    );
    let msg = err.to_string();
    assert!(msg.starts_with(&format!("{what} ")), "{msg}");
}

/// Asserts `r` is an error whose message contains every one of `needles`.
#[track_caller]
fn assert_err_mentions<T: std::fmt::Debug>(r: recurrent::Result<T>, needles: &[&str]) -> Error {
    let err = r.expect_err(&format!("an error mentioning {needles:?}"));
    let msg = err.to_string();
    for n in needles {
        assert!(msg.contains(n), "{n:?} not in the message: {msg}");
    }
    err
}

/// A 2-layer bidirectional network of `cell` (I = 2, H = 3), `T` = 4,
/// `B` = 2, with inputs, states and output gradients of the right sizes.
struct Setup {
    net: Recurrent,
    x: Vec<f32>,
    h0: Vec<f32>,
    c0: Vec<f32>,
    gy: Vec<f32>,
    ghn: Vec<f32>,
    gcn: Vec<f32>,
}

const T: usize = 4;
const B: usize = 2;
const I: usize = 2;
const H: usize = 3;
const STATE: [usize; 3] = [4, B, H]; // [L*D, B, H]

impl Setup {
    fn new(cell: CellKind) -> Self {
        let config = NetConfig {
            num_layers: 2,
            bidirectional: true,
            seed: 5,
            ..NetConfig::new(cell, I, H)
        };
        let n_state = STATE.iter().product();
        Self {
            net: Recurrent::new(config).expect("valid config"),
            x: values(T * B * I, 1),
            h0: values(n_state, 2),
            c0: values(n_state, 3),
            gy: values(T * B * 2 * H, 4),
            ghn: values(n_state, 5),
            gcn: values(n_state, 6),
        }
    }

    fn lstm(&self) -> bool {
        self.net.config().cell.has_cell_state()
    }

    fn input(&self) -> SeqInput<'_> {
        let input = SeqInput::new(&self.x, T, B).h0(&self.h0);
        if self.lstm() {
            input.c0(&self.c0)
        } else {
            input
        }
    }

    fn grads_in(&self) -> OutputGrads<'_> {
        let g = OutputGrads::new(&self.gy).h_n(&self.ghn);
        if self.lstm() { g.c_n(&self.gcn) } else { g }
    }

    /// A tape from a good `forward_train`, and the gradients of a good
    /// `backward` from it.
    fn trained(&self) -> (Tape, Gradients) {
        let mut tape = Tape::new();
        self.net
            .forward_train(self.input(), &mut tape)
            .expect("good forward");
        let mut grads = Gradients::for_net(&self.net);
        self.net
            .backward(&mut tape, self.grads_in(), &mut grads)
            .expect("good backward");
        (tape, grads)
    }

    /// Asserts a good `backward` from `tape` gives exactly `reference`.
    #[track_caller]
    fn assert_tape_intact(&self, tape: &mut Tape, reference: &Gradients) {
        let mut grads = Gradients::for_net(&self.net);
        self.net
            .backward(tape, self.grads_in(), &mut grads)
            .expect("good backward");
        assert_eq!(&grads, reference, "the tape changed");
    }
}

/// Runs `forward` and `forward_train` (on a tape holding a good record) with
/// a bad input, checks the error with `check`, and that nothing changed.
fn reject_input(
    s: &Setup,
    input: SeqInput<'_>,
    check: impl Fn(recurrent::Result<recurrent::Output>),
) {
    let net_before = s.net.clone();
    let (mut tape, reference) = s.trained();
    let tape_before = format!("{tape:?}");
    check(s.net.forward(input));
    check(s.net.forward_train(input, &mut tape));
    assert_eq!(
        format!("{tape:?}"),
        tape_before,
        "a rejected forward_train changed the tape"
    );
    s.assert_tape_intact(&mut tape, &reference);
    assert_eq!(s.net, net_before);
}

#[test]
fn forward_rejects_bad_inputs_and_changes_nothing() {
    for cell in CELLS {
        let s = Setup::new(cell);
        let n_state = s.h0.len();
        let x_shape = [T, B, I];
        for n in [0, T * B * I - 1, T * B * I + 1, T * B * I * 2] {
            let x = values(n, 7);
            let input = SeqInput::new(&x, T, B).h0(&s.h0);
            reject_input(&s, input, |r| assert_shape_err(r, "x", &x_shape, &[n]));
        }
        // seq_len and batch that do not match x.
        reject_input(&s, SeqInput::new(&s.x, T - 1, B), |r| {
            assert_shape_err(r, "x", &[T - 1, B, I], &[s.x.len()])
        });
        reject_input(&s, SeqInput::new(&s.x, T, B + 1), |r| {
            assert_shape_err(r, "x", &[T, B + 1, I], &[s.x.len()])
        });
        // T * B * I overflows usize.
        reject_input(&s, SeqInput::new(&s.x, usize::MAX, 2), |r| {
            assert_shape_err(r, "x", &[usize::MAX, 2, I], &[s.x.len()])
        });
        reject_input(&s, SeqInput::new(&[], 0, B), |r| {
            assert_zero_err(r, "seq_len")
        });
        reject_input(&s, SeqInput::new(&s.x, 0, B), |r| {
            assert_zero_err(r, "seq_len")
        });
        reject_input(&s, SeqInput::new(&[], T, 0), |r| {
            assert_zero_err(r, "batch")
        });
        for n in [0, n_state - 1, n_state + 1] {
            let h0 = values(n, 8);
            let input = SeqInput::new(&s.x, T, B).h0(&h0);
            reject_input(&s, input, |r| assert_shape_err(r, "h0", &STATE, &[n]));
        }
        if s.lstm() {
            for n in [0, n_state - 1, n_state + 1] {
                let c0 = values(n, 9);
                let input = SeqInput::new(&s.x, T, B).h0(&s.h0).c0(&c0);
                reject_input(&s, input, |r| assert_shape_err(r, "c0", &STATE, &[n]));
            }
        } else {
            let input = SeqInput::new(&s.x, T, B).h0(&s.h0).c0(&s.c0);
            reject_input(&s, input, |r| {
                let err = assert_err_mentions(r, &["c0", cell.name()]);
                assert!(matches!(err, Error::Unexpected(_)), "{err:?}");
            });
        }
    }
}

#[test]
fn backward_rejects_bad_output_grads_and_changes_nothing() {
    for cell in CELLS {
        let s = Setup::new(cell);
        let net_before = s.net.clone();
        let (mut tape, reference) = s.trained();
        let n_state = s.h0.len();
        let y_shape = [T, B, 2 * H];
        let reject =
            |tape: &mut Tape, g: OutputGrads<'_>, check: &dyn Fn(recurrent::Result<()>)| {
                let tape_before = format!("{tape:?}");
                let mut grads = reference.clone();
                check(s.net.backward(tape, g, &mut grads));
                assert_eq!(
                    grads, reference,
                    "a rejected backward changed the gradients"
                );
                assert_eq!(
                    format!("{tape:?}"),
                    tape_before,
                    "a rejected backward changed the tape"
                );
            };
        for n in [0, s.gy.len() - 1, s.gy.len() + 1] {
            let gy = values(n, 10);
            reject(&mut tape, OutputGrads::new(&gy), &|r| {
                assert_shape_err(r, "grad_y", &y_shape, &[n])
            });
        }
        for n in [0, n_state - 1, n_state + 1] {
            let g = values(n, 11);
            let og = OutputGrads::new(&s.gy).h_n(&g);
            reject(&mut tape, og, &|r| {
                assert_shape_err(r, "grad_h_n", &STATE, &[n])
            });
        }
        if s.lstm() {
            for n in [0, n_state - 1, n_state + 1] {
                let g = values(n, 12);
                let og = OutputGrads::new(&s.gy).h_n(&s.ghn).c_n(&g);
                reject(&mut tape, og, &|r| {
                    assert_shape_err(r, "grad_c_n", &STATE, &[n])
                });
            }
        } else {
            let og = OutputGrads::new(&s.gy).h_n(&s.ghn).c_n(&s.gcn);
            reject(&mut tape, og, &|r| {
                let err = assert_err_mentions(r, &["grad_c_n", cell.name()]);
                assert!(matches!(err, Error::Unexpected(_)), "{err:?}");
            });
        }
        s.assert_tape_intact(&mut tape, &reference);
        assert_eq!(s.net, net_before);
    }
}

#[test]
fn backward_rejects_an_empty_or_foreign_tape() {
    for cell in CELLS {
        let s = Setup::new(cell);
        let (_, reference) = s.trained();
        let mut grads = reference.clone();
        let r = s.net.backward(&mut Tape::new(), s.grads_in(), &mut grads);
        assert_err_mentions(r, &["tape"]);
        assert_eq!(grads, reference);

        // Tapes from networks that differ in one setting each.
        let c = s.net.config().clone();
        let others = [
            NetConfig {
                hidden_size: H + 1,
                ..c.clone()
            },
            NetConfig {
                num_layers: 1,
                ..c.clone()
            },
            NetConfig {
                bidirectional: false,
                ..c.clone()
            },
            NetConfig {
                bias: false,
                ..c.clone()
            },
            NetConfig {
                cell: if cell == CellKind::Lstm {
                    CellKind::Gru(GruVariant::LinearBeforeReset)
                } else {
                    CellKind::Lstm
                },
                ..c.clone()
            },
        ];
        for other in others {
            let other = Recurrent::new(other).expect("valid config");
            let mut tape = Tape::new();
            other
                .forward_train(SeqInput::new(&s.x, T, B), &mut tape)
                .expect("forward of the other network");
            let r = s.net.backward(&mut tape, s.grads_in(), &mut grads);
            assert_err_mentions(r, &["tape"]);
            assert_eq!(grads, reference);
        }
    }
}

/// Not an error: a gradient buffer shaped for another network is reshaped.
#[test]
fn backward_reshapes_a_foreign_gradient_buffer() {
    let s = Setup::new(CellKind::Lstm);
    let (mut tape, reference) = s.trained();
    let other = Recurrent::new(NetConfig::new(
        CellKind::Gru(GruVariant::LinearBeforeReset),
        5,
        7,
    ))
    .expect("valid");
    let mut grads = Gradients::for_net(&other);
    s.net
        .backward(&mut tape, s.grads_in(), &mut grads)
        .expect("backward");
    assert_eq!(grads, reference);
}

#[test]
fn configs_with_zero_sizes_are_rejected() {
    type Build = fn(usize, usize, usize) -> recurrent::Result<()>;
    let builders: [(&str, Build); 4] = [
        ("Rnn", |i, h, l| {
            Rnn::new(RnnConfig::new(i, h).num_layers(l)).map(drop)
        }),
        ("Lstm", |i, h, l| {
            Lstm::new(LstmConfig::new(i, h).num_layers(l)).map(drop)
        }),
        ("Gru", |i, h, l| {
            Gru::new(GruConfig::new(i, h).num_layers(l)).map(drop)
        }),
        ("Recurrent", |i, h, l| {
            let c = NetConfig {
                num_layers: l,
                ..NetConfig::new(CellKind::Lstm, i, h)
            };
            Recurrent::new(c).map(drop)
        }),
    ];
    for (name, build) in builders {
        assert!(build(2, 3, 2).is_ok(), "{name}: a valid config");
        assert_zero_err(build(0, 3, 2), "input_size");
        assert_zero_err(build(2, 0, 2), "hidden_size");
        assert_zero_err(build(2, 3, 0), "num_layers");
    }
    let zero_hidden = NetConfig::new(CellKind::Lstm, 2, 0);
    assert_zero_err(zero_hidden.validate(), "hidden_size");
    assert_zero_err(Recurrent::from_params(zero_hidden, []), "hidden_size");
}

/// Sizes whose parameter count overflows are a configuration error, not a
/// panic (debug builds check arithmetic overflow) nor a wrapped count that
/// passes (release builds wrap). Lists every failing case.
#[test]
fn configs_with_overflowing_sizes_are_rejected() {
    let big = usize::MAX / 2 + 1;
    let cases = [
        (big, 4, 1, false),
        (4, big, 1, false),
        (4, usize::MAX / 2, 1, false),
        (4, big, 1, true),
        (4, 4, big, false),
        (4, 4, big, true),
        (usize::MAX, usize::MAX, usize::MAX, true),
    ];
    let mut failures = Vec::new();
    for cell in CELLS {
        for (i, h, l, bidirectional) in cases {
            let config = NetConfig {
                num_layers: l,
                bidirectional,
                ..NetConfig::new(cell, i, h)
            };
            let what = format!("{} I={i} H={h} L={l} bidir={bidirectional}", cell.name());
            match catch_unwind(|| config.validate()) {
                Err(_) => failures.push(format!("{what}: validate panicked")),
                Ok(Ok(())) => failures.push(format!("{what}: validate accepted it")),
                Ok(Err(e))
                    if !matches!(e, Error::Config(_))
                        || !["overflow", "too large", "limit"]
                            .iter()
                            .any(|w| e.to_string().contains(w)) =>
                {
                    failures.push(format!("{what}: {e:?}"))
                }
                Ok(Err(_)) => {}
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} cases:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn from_params_rejects_missing_or_misshapen_tensors() {
    let config = NetConfig {
        num_layers: 2,
        ..NetConfig::new(CellKind::Lstm, 2, 3)
    };
    let good = Recurrent::new(config.clone()).expect("valid");
    let tensors = || good.params().iter();
    let rebuilt = Recurrent::from_params(config.clone(), tensors()).expect("every tensor given");
    assert_eq!(rebuilt, good);
    // Extra tensors are ignored.
    let extra = [("running_mean", &[3usize][..], &[0.0f32; 3][..])];
    let rebuilt =
        Recurrent::from_params(config.clone(), tensors().chain(extra)).expect("extra tensor");
    assert_eq!(rebuilt, good);

    for missing in ["weight_ih_l0", "bias_hh_l0", "weight_hh_l1", "bias_ih_l1"] {
        let r = Recurrent::from_params(config.clone(), tensors().filter(|(n, _, _)| *n != missing));
        let err = assert_err_mentions(r, &[missing]);
        assert!(
            matches!(&err, Error::MissingParameter { name } if name == missing),
            "{err:?}"
        );
    }

    let w = good.params().get("weight_ih_l1").expect("tensor");
    for shape in [vec![12, 4], vec![4, 3], vec![36], vec![12, 3, 1], vec![]] {
        let swapped = tensors().map(|(n, s, v)| {
            if n == "weight_ih_l1" {
                (n, shape.as_slice(), v)
            } else {
                (n, s, v)
            }
        });
        let r = Recurrent::from_params(config.clone(), swapped);
        assert_shape_err(r, "weight_ih_l1", &[12, 3], &shape);
    }
    // The right shape with the wrong number of values.
    let short = &w[..w.len() - 1];
    let r = Recurrent::from_params(
        config.clone(),
        tensors().map(|(n, s, v)| {
            if n == "weight_ih_l1" {
                (n, s, short)
            } else {
                (n, s, v)
            }
        }),
    );
    assert_shape_err(r, "weight_ih_l1", &[12, 3], &[short.len()]);
}

#[test]
fn from_params_rejects_parameters_the_configuration_does_not_use() {
    let with_bias = NetConfig {
        num_layers: 2,
        bidirectional: true,
        ..NetConfig::new(CellKind::Gru(GruVariant::LinearBeforeReset), 2, 3)
    };
    let full = Recurrent::new(with_bias.clone()).expect("valid");
    let tensors = || full.params().iter();
    for (config, needles) in [
        (
            NetConfig {
                bias: false,
                ..with_bias.clone()
            },
            &["bias_ih_l0", "bias_hh_l1_reverse"][..],
        ),
        (
            NetConfig {
                num_layers: 1,
                ..with_bias.clone()
            },
            &["weight_ih_l1", "bias_hh_l1_reverse"][..],
        ),
    ] {
        let r = Recurrent::from_params(config, tensors());
        let err = assert_err_mentions(r, needles);
        assert!(matches!(err, Error::Unexpected(_)), "{err:?}");
    }
    // A unidirectional configuration given a reverse direction: layer 0's
    // reverse input weights are [9, 2] like the forward ones.
    let uni = NetConfig {
        bidirectional: false,
        num_layers: 1,
        ..with_bias.clone()
    };
    let r = Recurrent::from_params(
        uni,
        tensors().filter(|(n, _, _)| n.ends_with("_l0") || *n == "weight_ih_l0_reverse"),
    );
    assert_err_mentions(r, &["weight_ih_l0_reverse"]);
}

/// A stream whose batch overflows or cannot be held is an error when it is
/// made (its buffers are all allocated there), not an abort or a wrapped
/// size.
#[test]
fn stream_state_with_an_impossible_batch_is_an_error() {
    for cell in CELLS {
        let net = Recurrent::new(NetConfig::new(cell, 16, 16)).expect("valid");
        for batch in [1usize << 40, 1 << 60, usize::MAX, usize::MAX / 16] {
            let r = catch_unwind(AssertUnwindSafe(|| net.stream_state(batch)))
                .unwrap_or_else(|_| panic!("{cell:?}: stream_state({batch}) panicked"));
            assert!(
                matches!(r, Err(Error::OutOfMemory { .. })),
                "{cell:?}: stream_state({batch}): {r:?}"
            );
        }
        let mut state = net.stream_state(3).expect("a small batch");
        let (x, mut y) = (vec![0.5; 3 * 16], vec![0.0; 3 * 16]);
        net.step(&x, &mut state, &mut y).expect("step");
    }
}

#[test]
fn try_clone_is_clone() {
    for cell in CELLS {
        let net = Recurrent::new(NetConfig {
            num_layers: 2,
            seed: 5,
            ..NetConfig::new(cell, 3, 4)
        })
        .expect("valid");
        assert_eq!(net.try_clone().expect("clone"), net);
        let grads = Gradients::try_for_net(&net).expect("gradients");
        assert_eq!(grads, Gradients::for_net(&net));
    }
}

#[test]
fn params_set_rejects_wrong_length_or_unknown_name_and_changes_nothing() {
    let mut net = Recurrent::new(NetConfig {
        bias: false,
        ..NetConfig::new(CellKind::Gru(GruVariant::LinearBeforeReset), 2, 3)
    })
    .expect("valid");
    let before = net.clone();
    let mut params: Params = net.params().clone();
    for n in [0, 17, 19, 100] {
        let v = values(n, 13);
        assert_shape_err(
            params.set("weight_ih_l0", &v),
            "weight_ih_l0",
            &[9, 2],
            &[n],
        );
        assert_shape_err(
            net.set_param("weight_ih_l0", &v),
            "weight_ih_l0",
            &[9, 2],
            &[n],
        );
    }
    for name in [
        "weight_ih_l1",
        "bias_ih_l0",
        "weight_ih_l0_reverse",
        "",
        "WEIGHT_IH_L0",
    ] {
        let v = values(18, 14);
        let err = assert_err_mentions(params.set(name, &v), &[&format!("parameter {name}")]);
        assert!(
            matches!(&err, Error::MissingParameter { name: n } if n == name),
            "{err:?}"
        );
        assert_err_mentions(net.set_param(name, &v), &[&format!("parameter {name}")]);
    }
    assert_eq!(&params, before.params());
    assert_eq!(net, before);
    // A good set changes exactly that tensor.
    let v = values(18, 15);
    params.set("weight_ih_l0", &v).expect("good set");
    assert_eq!(params.get("weight_ih_l0"), Some(&v[..]));
    assert_eq!(
        params.get("weight_hh_l0"),
        before.params().get("weight_hh_l0")
    );
}

/// One random, possibly inconsistent, call sequence.
#[derive(Clone, Debug)]
struct Case {
    cell: CellKind,
    input_size: usize,
    hidden_size: usize,
    num_layers: usize,
    bidirectional: bool,
    bias: bool,
    seq_len: usize,
    batch: usize,
    /// Offsets from each buffer's right length; `None` for an absent
    /// optional buffer.
    x: isize,
    h0: Option<isize>,
    c0: Option<isize>,
    grad_y: isize,
    grad_h_n: Option<isize>,
    grad_c_n: Option<isize>,
}

fn offset() -> impl Strategy<Value = isize> {
    prop_oneof![3 => Just(0isize), 1 => -3isize..=3, 1 => -40isize..=40]
}

fn case() -> impl Strategy<Value = Case> {
    let sizes = (
        prop::sample::select(CELLS.to_vec()),
        0..4usize,
        0..4usize,
        0..3usize,
        any::<bool>(),
        any::<bool>(),
    );
    let buffers = (
        0..4usize,
        0..4usize,
        offset(),
        prop::option::of(offset()),
        prop::option::of(offset()),
        offset(),
        prop::option::of(offset()),
        prop::option::of(offset()),
    );
    (sizes, buffers).prop_map(
        |(
            (cell, input_size, hidden_size, num_layers, bidirectional, bias),
            (t, b, x, h0, c0, gy, ghn, gcn),
        )| Case {
            cell,
            input_size,
            hidden_size,
            num_layers,
            bidirectional,
            bias,
            seq_len: t,
            batch: b,
            x,
            h0,
            c0,
            grad_y: gy,
            grad_h_n: ghn,
            grad_c_n: gcn,
        },
    )
}

fn with_offset(right: usize, offset: isize) -> usize {
    right.saturating_add_signed(offset)
}

/// What the calls returned: `Ok` or the error message.
#[derive(Debug)]
struct Outcome {
    new: Result<(), String>,
    forward: Result<(), String>,
    forward_train: Result<(), String>,
    backward: Result<(), String>,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_shapes_never_panic_and_are_ok_exactly_when_consistent(c in case()) {
        let config = NetConfig {
            num_layers: c.num_layers,
            bidirectional: c.bidirectional,
            bias: c.bias,
            ..NetConfig::new(c.cell, c.input_size, c.hidden_size)
        };
        let (t, b, h) = (c.seq_len, c.batch, c.hidden_size);
        let dirs = config.directions();
        let n_state = c.num_layers * dirs * b * h;
        let lstm = c.cell.has_cell_state();
        let x = values(with_offset(t * b * c.input_size, c.x), 1);
        let h0 = c.h0.map(|o| values(with_offset(n_state, o), 2));
        let c0 = c.c0.map(|o| values(with_offset(n_state, o), 3));
        let gy = values(with_offset(t * b * dirs * h, c.grad_y), 4);
        let ghn = c.grad_h_n.map(|o| values(with_offset(n_state, o), 5));
        let gcn = c.grad_c_n.map(|o| values(with_offset(n_state, o), 6));

        let run = catch_unwind(AssertUnwindSafe(|| {
            let msg = |e: Error| e.to_string();
            let net = match Recurrent::new(config.clone()) {
                Ok(net) => net,
                Err(e) => {
                    let e = Err(msg(e));
                    return Outcome { new: e.clone(), forward: e.clone(), forward_train: e.clone(), backward: e };
                }
            };
            let mut input = SeqInput::new(&x, t, b);
            if let Some(h0) = &h0 {
                input = input.h0(h0);
            }
            if let Some(c0) = &c0 {
                input = input.c0(c0);
            }
            let forward = net.forward(input).map(|out| {
                assert_eq!((out.y.len(), out.h_n.len()), (t * b * dirs * h, n_state));
                assert_eq!(out.c_n.len(), if lstm { n_state } else { 0 });
            });
            let mut tape = Tape::new();
            let forward_train = net.forward_train(input, &mut tape).map(drop);
            let mut og = OutputGrads::new(&gy);
            if let Some(g) = &ghn {
                og = og.h_n(g);
            }
            if let Some(g) = &gcn {
                og = og.c_n(g);
            }
            let mut grads = Gradients::for_net(&net);
            let backward = net.backward(&mut tape, og, &mut grads).map(|()| {
                assert_eq!((grads.x.len(), grads.h0.len()), (x.len(), n_state));
                assert_eq!(grads.c0.len(), if lstm { n_state } else { 0 });
            });
            Outcome {
                new: Ok(()),
                forward: forward.map_err(msg),
                forward_train: forward_train.map_err(msg),
                backward: backward.map_err(msg),
            }
        }));
        let outcome = match run {
            Ok(o) => o,
            Err(_) => return Err(TestCaseError::fail(format!("panicked on {c:?}"))),
        };

        // What is wrong, by the name an error must mention.
        let mut bad_config = Vec::new();
        for (what, size) in [("input_size", c.input_size), ("hidden_size", h), ("num_layers", c.num_layers)] {
            if size == 0 {
                bad_config.push(what);
            }
        }
        let state_ok = |v: &Option<Vec<f32>>| v.as_ref().is_none_or(|v| v.len() == n_state);
        let mut bad_input = Vec::new();
        if t == 0 { bad_input.push("seq_len"); }
        if b == 0 { bad_input.push("batch"); }
        if x.len() != t * b * c.input_size { bad_input.push("x"); }
        if !state_ok(&h0) { bad_input.push("h0"); }
        if c0.is_some() && (!lstm || !state_ok(&c0)) { bad_input.push("c0"); }
        let mut bad_grads = Vec::new();
        if gy.len() != t * b * dirs * h { bad_grads.push("grad_y"); }
        if !state_ok(&ghn) { bad_grads.push("grad_h_n"); }
        if gcn.is_some() && (!lstm || !state_ok(&gcn)) { bad_grads.push("grad_c_n"); }

        // The message must start with one of the bad names ("x: expected
        // shape ...", "seq_len must be ...", "c0 given, ...").
        let names_one = |r: &Result<(), String>, bad: &[&str]| match r {
            Ok(()) => bad.is_empty(),
            Err(m) => bad.iter().any(|w| m.starts_with(&format!("{w}:")) || m.starts_with(&format!("{w} "))),
        };
        prop_assert!(names_one(&outcome.new, &bad_config), "{outcome:?} for {c:?}");
        if bad_config.is_empty() {
            prop_assert!(names_one(&outcome.forward, &bad_input), "{outcome:?} for {c:?}");
            prop_assert!(names_one(&outcome.forward_train, &bad_input), "{outcome:?} for {c:?}");
            if bad_input.is_empty() {
                prop_assert!(names_one(&outcome.backward, &bad_grads), "{outcome:?} for {c:?}");
            } else {
                // The tape is empty: backward must refuse it.
                prop_assert!(matches!(&outcome.backward, Err(m) if m.contains("tape")), "{outcome:?} for {c:?}");
            }
        }
    }
}

/// A configuration whose parameters cannot be allocated (2^57 f32, more
/// than any address space) is an error, not an abort of the process. The
/// call runs in a child process (this test binary again, with
/// `RNN_TEST_CHILD` set), so that an abort, which `catch_unwind` cannot
/// catch, fails this test only.
#[test]
fn unallocatable_config_is_an_error_not_an_abort() {
    let name = "unallocatable_config_is_an_error_not_an_abort";
    if std::env::var_os("RNN_TEST_CHILD").is_some() {
        let config = NetConfig::new(CellKind::Lstm, 1 << 27, 1 << 27);
        let err = Recurrent::new(config).expect_err("2^57 parameters allocated?");
        println!("child error: {err}");
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().expect("test binary path"))
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env("RNN_TEST_CHILD", "1")
        .output()
        .expect("spawn the test binary");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "the child process failed ({}): {text}",
        out.status
    );
}
