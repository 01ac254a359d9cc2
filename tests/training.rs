//! Training machinery: truncated BPTT (forward values equal the full
//! sequence's, gradients stop at chunk boundaries, and a tagger learns a long
//! stream chunk by chunk), the NaN/Inf guard (reports the step and tensor,
//! updates nothing), and determinism (same seed and thread count give
//! bit-identical trained weights).

mod common;

use common::data;

use recurrent::arch::{SequenceTagger, one_hot};
use recurrent::optim::{Adam, AdamConfig, Optimizer, Sgd, SgdConfig};
use recurrent::{
    CellKind, Gradients, GruVariant, NetConfig, OutputGrads, Recurrent, SeqInput, Tape,
    TruncatedBptt,
};

#[test]
fn chunked_forward_equals_full_forward_and_truncation_cuts_gradients() {
    let (t, b, i, h, k) = (23, 3, 4, 5, 5);
    let mut cfg = NetConfig::new(CellKind::Lstm, i, h);
    cfg.num_layers = 2;
    let net = Recurrent::new(cfg).unwrap();
    let x = data(t * b * i, 1);
    let full = net.forward(SeqInput::new(&x, t, b)).unwrap();

    let mut tb = TruncatedBptt::new(k).unwrap();
    let mut tape = Tape::new();
    let mut grads = Gradients::for_net(&net);
    let mut ys = Vec::new();
    for steps in tb.chunks(t).collect::<Vec<_>>() {
        let input = tb.input(&x, t, b, steps.clone()).unwrap();
        let out = net.forward_train(input, &mut tape).unwrap();
        ys.extend_from_slice(&out.y);
        tb.carry(&out);
    }
    let err = ys
        .iter()
        .zip(&full.y)
        .fold(0.0f32, |m, (a, w)| m.max((a - w).abs()));
    assert!(
        err <= 1e-6,
        "chunked forward differs from full forward by {err}"
    );
    assert_eq!(tb.chunks(t).count(), 5);
    assert!(TruncatedBptt::new(0).is_err());
    assert!(tb.input(&x, t, b, 20..24).is_err());

    // Chunk-wise parameter gradients of L = sum(y) differ from full BPTT's
    // (the gradient is cut at each boundary) ...
    let gy = vec![1.0f32; t * b * h];
    let mut full_grads = Gradients::for_net(&net);
    net.forward_train(SeqInput::new(&x, t, b), &mut tape)
        .unwrap();
    net.backward(&mut tape, OutputGrads::new(&gy), &mut full_grads)
        .unwrap();
    let mut summed = vec![0.0f32; full_grads.params.num_elements()];
    tb.reset();
    for steps in tb.chunks(t).collect::<Vec<_>>() {
        let out = net
            .forward_train(tb.input(&x, t, b, steps.clone()).unwrap(), &mut tape)
            .unwrap();
        net.backward(&mut tape, OutputGrads::new(&gy[..out.y.len()]), &mut grads)
            .unwrap();
        summed
            .iter_mut()
            .zip(grads.params.as_slice())
            .for_each(|(s, g)| *s += g);
        tb.carry(&out);
    }
    let diff = summed
        .iter()
        .zip(full_grads.params.as_slice())
        .fold(0.0f32, |m, (a, w)| m.max((a - w).abs()));
    assert!(diff > 1e-3, "truncation changed nothing ({diff})");
    // ... and one chunk covering the whole sequence is full BPTT.
    let whole = TruncatedBptt::new(t).unwrap();
    net.forward_train(whole.input(&x, t, b, 0..t).unwrap(), &mut tape)
        .unwrap();
    net.backward(&mut tape, OutputGrads::new(&gy), &mut grads)
        .unwrap();
    assert_eq!(grads.params.as_slice(), full_grads.params.as_slice());
}

#[test]
fn tbptt_trains_a_tagger_on_a_long_stream() {
    // Delayed echo (delay 2) over one stream of 240 steps, in chunks of 24.
    let (t, b, vocab, chunk) = (240, 8, 4, 24);
    let mut cfg = NetConfig::new(CellKind::Gru(GruVariant::LinearBeforeReset), vocab, 24);
    cfg.seed = 4;
    let mut tagger = SequenceTagger::new(cfg, vocab + 1).unwrap();
    let mut opt = Adam::new(AdamConfig::new(0.02)).unwrap();
    let stream = |seed: u64| {
        let tokens: Vec<usize> = data(t * b, seed)
            .iter()
            .map(|v| ((v + 1.0) * 2.0) as usize % vocab)
            .collect();
        let targets: Vec<usize> = (0..t * b)
            .map(|k| if k / b < 2 { vocab } else { tokens[k - 2 * b] })
            .collect();
        let mut x = Vec::new();
        one_hot(&tokens, vocab, &mut x);
        (x, targets)
    };
    let mut tb = TruncatedBptt::new(chunk).unwrap();
    let mut last_epoch_loss = 0.0;
    for epoch in 0..12 {
        let (x, targets) = stream(epoch + 10);
        tb.reset();
        last_epoch_loss = 0.0;
        for steps in tb.chunks(t).collect::<Vec<_>>() {
            let input = tb.input(&x, t, b, steps.clone()).unwrap();
            let tg = &targets[steps.start * b..steps.end * b];
            last_epoch_loss +=
                tagger.train_step(input, tg, &mut opt, Some(5.0)).unwrap() / (t / chunk) as f64;
            tb.carry(tagger.last_states());
        }
    }
    // Held-out stream, predicted chunk by chunk with carried state.
    let (x, targets) = stream(999);
    tb.reset();
    let mut pred = Vec::new();
    for steps in tb.chunks(t).collect::<Vec<_>>() {
        pred.extend(tagger.predict(tb.input(&x, t, b, steps).unwrap()).unwrap());
        tb.carry(tagger.last_states());
    }
    let acc =
        pred.iter().zip(&targets).filter(|(a, b)| a == b).count() as f64 / targets.len() as f64;
    println!("TBPTT tagger: last epoch loss {last_epoch_loss:.4}, held-out accuracy {acc:.3}");
    assert!(acc >= 0.95, "accuracy {acc}");
}

#[test]
fn nan_guard_reports_the_step_and_updates_nothing() {
    let (t, b, vocab) = (6, 2, 3);
    let cfg = NetConfig::new(CellKind::Lstm, vocab, 4);
    let mut tagger = SequenceTagger::new(cfg, vocab).unwrap();
    let mut opt = Sgd::new(SgdConfig::new(0.1)).unwrap();
    let mut x = vec![0.0f32; t * b * vocab];
    let targets = vec![0usize; t * b];
    tagger
        .train_step(SeqInput::new(&x, t, b), &targets, &mut opt, None)
        .unwrap();
    let before = tagger.net().params().clone();
    x[5] = f32::NAN;
    let err = tagger
        .train_step(SeqInput::new(&x, t, b), &targets, &mut opt, None)
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("step 2") && msg.contains("NaN"), "{msg}");
    assert_eq!(
        tagger.net().params(),
        &before,
        "parameters changed despite the NaN"
    );
}

#[test]
fn training_is_deterministic() {
    let run = || {
        let (t, b, i) = (10, 4, 3);
        let mut cfg = NetConfig::new(CellKind::Gru(GruVariant::ResetBeforeLinear), i, 16);
        cfg.seed = 21;
        cfg.bidirectional = true;
        let net = Recurrent::new(cfg).unwrap();
        let mut net = net;
        let mut tape = Tape::new();
        let mut grads = Gradients::for_net(&net);
        let mut opt = Adam::new(AdamConfig::new(0.01)).unwrap();
        for step in 0..15 {
            let x = data(t * b * i, step);
            let out = net
                .forward_train(SeqInput::new(&x, t, b), &mut tape)
                .unwrap();
            let gy: Vec<f32> = out.y.iter().map(|v| v - 0.5).collect();
            net.backward(&mut tape, OutputGrads::new(&gy), &mut grads)
                .unwrap();
            opt.step(net.params_mut(), grads.params.as_slice()).unwrap();
        }
        net.params().as_slice().to_vec()
    };
    let (a, b) = (run(), run());
    assert!(
        a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()),
        "two identical runs differ"
    );
}
