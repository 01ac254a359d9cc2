//! The network's sequence layouts: a `batch_first` network equals the
//! time-major one on transposed sequences (outputs, states and input
//! gradients bit for bit; parameter gradients to rounding, since without
//! lengths the batch-first input is read by batch row and `dW_ih` is summed
//! in another order), for every cell, one or two directions, with and
//! without lengths; and summed directions (`merge = sum`) equal the two halves of
//! the concatenated output added, with the gradients of the concatenated
//! network given the same `dy` in both halves.

mod common;

use common::data;
use recurrent::{
    CellKind, Gradients, GruVariant, Merge, NetConfig, Nonlinearity, OutputGrads, Recurrent,
    SeqInput, Tape,
};

const CELLS: [CellKind; 4] = [
    CellKind::Elman(Nonlinearity::Tanh),
    CellKind::Lstm,
    CellKind::Gru(GruVariant::LinearBeforeReset),
    CellKind::Gru(GruVariant::ResetBeforeLinear),
];

/// `[A, C, w]` to `[C, A, w]`.
fn transpose(v: &[f32], a: usize, c: usize, w: usize) -> Vec<f32> {
    let mut out = vec![0.0; v.len()];
    for i in 0..a {
        for j in 0..c {
            out[(j * a + i) * w..][..w].copy_from_slice(&v[(i * c + j) * w..][..w]);
        }
    }
    out
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Forward and backward of `net` on `x` with `gy`: `(y, h_n, gradients)`.
fn run(
    net: &Recurrent,
    x: &[f32],
    (t, b): (usize, usize),
    lengths: Option<&[usize]>,
    gy: &[f32],
) -> (Vec<f32>, Vec<f32>, Gradients) {
    let c = net.config();
    let n_state = c.num_layers * c.directions() * b * c.hidden_size;
    let h0 = data(n_state, 3);
    let mut input = SeqInput::new(x, t, b).h0(&h0);
    if let Some(l) = lengths {
        input = input.lengths(l);
    }
    let mut tape = Tape::new();
    let out = net.forward_train(input, &mut tape).expect("forward");
    let mut grads = Gradients::for_net(net);
    let ghn = data(n_state, 5);
    net.backward(&mut tape, OutputGrads::new(gy).h_n(&ghn), &mut grads)
        .expect("backward");
    (out.y, out.h_n, grads)
}

#[test]
fn batch_first_equals_time_major_on_transposed_sequences() {
    let (t, b, i, h) = (6, 4, 5, 7);
    let lengths = [6, 2, 5, 3];
    for cell in CELLS {
        for (bidirectional, num_layers) in [(false, 2), (true, 2)] {
            for lens in [None, Some(&lengths[..])] {
                let config = NetConfig {
                    num_layers,
                    bidirectional,
                    seed: 9,
                    ..NetConfig::new(cell, i, h)
                };
                let tm = Recurrent::new(config.clone()).expect("net");
                let bf = Recurrent::new(NetConfig {
                    batch_first: true,
                    ..config
                })
                .expect("net");
                assert_eq!(bits(tm.params().as_slice()), bits(bf.params().as_slice()));
                let o = tm.config().output_size();
                let (x, gy) = (data(t * b * i, 1), data(t * b * o, 2));
                let case = format!("{cell:?} bi={bidirectional} lengths={}", lens.is_some());
                let (y, h_n, g) = run(&tm, &x, (t, b), lens, &gy);
                let (x_bf, gy_bf) = (transpose(&x, t, b, i), transpose(&gy, t, b, o));
                let (y_bf, h_n_bf, g_bf) = run(&bf, &x_bf, (t, b), lens, &gy_bf);
                assert_eq!(bits(&y_bf), bits(&transpose(&y, t, b, o)), "{case}: y");
                assert_eq!(bits(&h_n_bf), bits(&h_n), "{case}: h_n");
                assert_eq!(bits(&g_bf.x), bits(&transpose(&g.x, t, b, i)), "{case}: dx");
                assert_eq!(bits(&g_bf.h0), bits(&g.h0), "{case}: dh0");
                assert_eq!(bits(&g_bf.c0), bits(&g.c0), "{case}: dc0");
                let worst = g_bf
                    .params
                    .as_slice()
                    .iter()
                    .zip(g.params.as_slice())
                    .map(|(a, b)| (a - b).abs() / b.abs().max(1.0))
                    .fold(0.0f32, f32::max);
                assert!(
                    worst <= 1e-5,
                    "{case}: parameter gradients differ by {worst}"
                );
                if lens.is_some() {
                    // Sorted rows: the same GEMMs on the same rows.
                    assert_eq!(bits(g_bf.params.as_slice()), bits(g.params.as_slice()));
                }
            }
        }
    }
}

#[test]
fn summed_directions_are_the_concatenated_halves_added() {
    let (t, b, i, h) = (5, 3, 4, 6);
    let lengths = [5, 2, 4];
    for cell in CELLS {
        for lens in [None, Some(&lengths[..])] {
            let config = NetConfig {
                bidirectional: true,
                seed: 4,
                ..NetConfig::new(cell, i, h)
            };
            let cat = Recurrent::new(config.clone()).expect("net");
            let sum = Recurrent::new(NetConfig {
                merge: Merge::Sum,
                ..config
            })
            .expect("net");
            assert_eq!(sum.config().output_size(), h);
            let x = data(t * b * i, 1);
            let gy = data(t * b * h, 2);
            // The concatenated network's `dy`: the same `dy` in both halves.
            let gy_cat: Vec<f32> = gy
                .chunks(h)
                .flat_map(|g| g.iter().chain(g))
                .copied()
                .collect();
            let case = format!("{cell:?} lengths={}", lens.is_some());
            let (y_cat, h_n_cat, g_cat) = run(&cat, &x, (t, b), lens, &gy_cat);
            let (y_sum, h_n_sum, g_sum) = run(&sum, &x, (t, b), lens, &gy);
            let added: Vec<f32> = y_cat
                .chunks(2 * h)
                .flat_map(|r| r[..h].iter().zip(&r[h..]).map(|(a, b)| a + b))
                .collect();
            assert_eq!(bits(&y_sum), bits(&added), "{case}: y");
            assert_eq!(bits(&h_n_sum), bits(&h_n_cat), "{case}: h_n");
            assert_eq!(bits(&g_sum.x), bits(&g_cat.x), "{case}: dx");
            assert_eq!(bits(&g_sum.h0), bits(&g_cat.h0), "{case}: dh0");
            assert_eq!(
                bits(g_sum.params.as_slice()),
                bits(g_cat.params.as_slice()),
                "{case}: parameter gradients"
            );
        }
    }
}
