//! Streaming (`Recurrent::step`) equals the batched forward run one step at a
//! time, for every cell kind, 1-2 layers, with non-zero initial states; and a
//! bidirectional network refuses to stream.

mod common;

use common::data;

use recurrent::{CellKind, GruVariant, NetConfig, Nonlinearity, Recurrent, SeqInput};

#[test]
fn step_by_step_equals_batched_forward() {
    let kinds = [
        CellKind::Elman(Nonlinearity::Tanh),
        CellKind::Elman(Nonlinearity::Relu),
        CellKind::Lstm,
        CellKind::Gru(GruVariant::LinearBeforeReset),
        CellKind::Gru(GruVariant::ResetBeforeLinear),
    ];
    let (t, b, i, h) = (9, 3, 5, 7);
    // Each kind, and an LSTM with a projection (`h` 3 wide, `c` 7).
    let cases = kinds
        .map(|k| (k, 0))
        .into_iter()
        .chain([(CellKind::Lstm, 3)]);
    for (kind, proj) in cases {
        for layers in [1, 2] {
            let mut cfg = NetConfig::new(kind, i, h);
            cfg.num_layers = layers;
            cfg.proj_size = proj;
            cfg.seed = 3;
            let s = cfg.state_size();
            let net = Recurrent::new(cfg).unwrap();
            let x = data(t * b * i, 1);
            let h0 = data(layers * b * s, 2);
            let c0 = data(layers * b * h, 3);
            let mut input = SeqInput::new(&x, t, b).h0(&h0);
            if kind.has_cell_state() {
                input = input.c0(&c0);
            }
            let full = net.forward(input).unwrap();

            let mut state = net.stream_state(b).unwrap();
            state.set_h(&h0).unwrap();
            if kind.has_cell_state() {
                state.set_c(&c0).unwrap();
            }
            let mut y_t = vec![0.0; b * s];
            let mut max_err = 0.0f32;
            for step in 0..t {
                net.step(&x[step * b * i..(step + 1) * b * i], &mut state, &mut y_t)
                    .unwrap();
                let want = &full.y[step * b * s..(step + 1) * b * s];
                max_err = y_t
                    .iter()
                    .zip(want)
                    .fold(max_err, |m, (a, w)| m.max((a - w).abs()));
            }
            let hn_err = state
                .h()
                .iter()
                .zip(&full.h_n)
                .fold(0.0f32, |m, (a, w)| m.max((a - w).abs()));
            let cn_err = state
                .c()
                .iter()
                .zip(&full.c_n)
                .fold(0.0f32, |m, (a, w)| m.max((a - w).abs()));
            // Same kernels on the same rows; only the GEMM blocking of the
            // input projection (T*B rows vs B rows) may differ.
            assert!(
                max_err <= 1e-6 && hn_err <= 1e-6 && cn_err <= 1e-6,
                "{kind:?} P={proj} L={layers}: y {max_err}, h_n {hn_err}, c_n {cn_err}"
            );
        }
    }
}

#[test]
fn streaming_rejects_bidirectional_and_bad_shapes() {
    let mut cfg = NetConfig::new(CellKind::Lstm, 3, 4);
    cfg.bidirectional = true;
    let net = Recurrent::new(cfg.clone()).unwrap();
    assert!(
        net.stream_state(2)
            .unwrap_err()
            .to_string()
            .contains("bidirectional")
    );
    cfg.bidirectional = false;
    let net = Recurrent::new(cfg).unwrap();
    assert!(net.stream_state(0).is_err());
    let mut state = net.stream_state(2).unwrap();
    let before = state.h().to_vec();
    let mut y = vec![0.0; 8];
    let err = net.step(&[0.0; 5], &mut state, &mut y).unwrap_err();
    assert!(err.to_string().contains("x_t"), "{err}");
    assert_eq!(state.h(), &before[..]);
    assert!(
        net.step(&[0.0; 6], &mut state, &mut [0.0; 7])
            .unwrap_err()
            .to_string()
            .contains("y_t")
    );
}
