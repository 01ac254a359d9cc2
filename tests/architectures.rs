//! The seed's four architectures each learn a small synthetic task from
//! fixed seeds to a stated threshold (release mode, a few seconds each):
//!
//! | architecture | task | threshold (held-out batch) |
//! |---|---|---|
//! | many-to-one (`SequenceClassifier`, LSTM, variable lengths) | class = the symbol at the first step of a noisy sequence | accuracy >= 0.95 |
//! | many-to-many (`SequenceTagger`, GRU) | delayed echo: tag at t = symbol at t-2 (blank before) | accuracy >= 0.95 |
//! | one-to-many (`SequenceGenerator`, LSTM) | a sine of given frequency and phase, from one vector | MSE <= 0.02 (target variance 0.5) |
//! | encoder-decoder (`Seq2Seq`, LSTM) | reverse a sequence of 5 symbols | token accuracy >= 0.90 |

use recurrent::arch::{Seq2Seq, SequenceClassifier, SequenceGenerator, SequenceTagger, one_hot};
use recurrent::optim::{Adam, AdamConfig};
use recurrent::{CellKind, GruVariant, NetConfig, SeqInput};

struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
}

fn accuracy(pred: &[usize], want: &[usize]) -> f64 {
    pred.iter().zip(want).filter(|(a, b)| a == b).count() as f64 / want.len() as f64
}

/// Many-to-one: 4 classes; the class symbol is at t = 0, then noise symbols;
/// lengths 4..=12, unsorted.
#[test]
fn many_to_one_classifies_by_first_symbol() {
    let (t, b, vocab, classes) = (12, 32, 6, 4);
    let batch = |rng: &mut Rng| {
        let mut tokens = vec![0usize; t * b];
        let mut labels = vec![0usize; b];
        let lengths: Vec<usize> = (0..b).map(|_| 4 + rng.below(t - 3)).collect();
        for j in 0..b {
            labels[j] = rng.below(classes);
            for s in 0..t {
                tokens[s * b + j] = if s == 0 { labels[j] } else { rng.below(vocab) };
            }
        }
        let mut x = Vec::new();
        one_hot(&tokens, vocab, &mut x);
        (x, labels, lengths)
    };
    let mut cfg = NetConfig::new(CellKind::Lstm, vocab, 16);
    cfg.seed = 11;
    let mut model = SequenceClassifier::new(cfg, classes).unwrap();
    let mut opt = Adam::new(AdamConfig::new(0.02)).unwrap();
    let mut rng = Rng(1);
    let mut loss = f64::NAN;
    for _ in 0..600 {
        let (x, labels, lengths) = batch(&mut rng);
        let input = SeqInput::new(&x, t, b).lengths(&lengths);
        loss = model
            .train_step(input, &labels, &mut opt, Some(5.0))
            .unwrap();
    }
    let (x, labels, lengths) = batch(&mut Rng(99));
    let acc = accuracy(
        &model
            .predict(SeqInput::new(&x, t, b).lengths(&lengths))
            .unwrap(),
        &labels,
    );
    println!("many-to-one: final train loss {loss:.4}, held-out accuracy {acc:.3}");
    assert!(acc >= 0.95, "accuracy {acc}");
}

/// Many-to-many: delayed echo of 4 symbols by 2 steps (class 4 = blank).
#[test]
fn many_to_many_echoes_with_delay() {
    let (t, b, vocab, delay) = (16, 32, 4, 2);
    let batch = |rng: &mut Rng| {
        let tokens: Vec<usize> = (0..t * b).map(|_| rng.below(vocab)).collect();
        let targets: Vec<usize> = (0..t * b)
            .map(|k| {
                if k / b < delay {
                    vocab
                } else {
                    tokens[k - delay * b]
                }
            })
            .collect();
        let mut x = Vec::new();
        one_hot(&tokens, vocab, &mut x);
        (x, targets)
    };
    let mut cfg = NetConfig::new(CellKind::Gru(GruVariant::LinearBeforeReset), vocab, 24);
    cfg.seed = 5;
    let mut model = SequenceTagger::new(cfg, vocab + 1).unwrap();
    let mut opt = Adam::new(AdamConfig::new(0.02)).unwrap();
    let mut rng = Rng(2);
    let mut loss = f64::NAN;
    for _ in 0..200 {
        let (x, targets) = batch(&mut rng);
        loss = model
            .train_step(SeqInput::new(&x, t, b), &targets, &mut opt, Some(5.0))
            .unwrap();
    }
    let (x, targets) = batch(&mut Rng(98));
    let acc = accuracy(&model.predict(SeqInput::new(&x, t, b)).unwrap(), &targets);
    println!("many-to-many: final train loss {loss:.4}, held-out accuracy {acc:.3}");
    assert!(acc >= 0.95, "accuracy {acc}");
}

/// One-to-many: v = [w, sin p, cos p] -> sin(w t + p), t = 0..20.
#[test]
fn one_to_many_generates_a_sine() {
    let (t, b) = (20, 32);
    let batch = |rng: &mut Rng| {
        let mut v = vec![0.0f32; b * 3];
        let mut target = vec![0.0f32; t * b];
        for j in 0..b {
            let w = 0.3 + 0.5 * rng.unit();
            let p = std::f32::consts::TAU * rng.unit();
            v[j * 3..j * 3 + 3].copy_from_slice(&[w, p.sin(), p.cos()]);
            for s in 0..t {
                target[s * b + j] = (w * s as f32 + p).sin();
            }
        }
        (v, target)
    };
    let mut cfg = NetConfig::new(CellKind::Lstm, 3, 32);
    cfg.seed = 3;
    let mut model = SequenceGenerator::new(cfg, 1).unwrap();
    let mut opt = Adam::new(AdamConfig::new(0.01)).unwrap();
    let mut rng = Rng(3);
    let mut loss = f64::NAN;
    for _ in 0..600 {
        let (v, target) = batch(&mut rng);
        loss = model
            .train_step(&v, &target, t, b, &mut opt, Some(1.0))
            .unwrap();
    }
    let (v, target) = batch(&mut Rng(97));
    let pred = model.generate(&v, t, b).unwrap();
    let mse = pred
        .iter()
        .zip(&target)
        .map(|(a, b)| ((a - b) as f64).powi(2))
        .sum::<f64>()
        / target.len() as f64;
    println!("one-to-many: final train MSE {loss:.4}, held-out MSE {mse:.4}");
    assert!(mse <= 0.02, "MSE {mse}");
}

/// Encoder-decoder: reverse 5 symbols from a vocabulary of 6.
#[test]
fn encoder_decoder_reverses_a_sequence() {
    let (len, b, vocab) = (5, 32, 6);
    let batch = |rng: &mut Rng| {
        let src: Vec<usize> = (0..len * b).map(|_| rng.below(vocab)).collect();
        let tgt: Vec<usize> = (0..len * b)
            .map(|k| src[(len - 1 - k / b) * b + k % b])
            .collect();
        (src, tgt)
    };
    let mut cfg = NetConfig::new(CellKind::Lstm, vocab, 64);
    cfg.seed = 9;
    let mut model = Seq2Seq::new(cfg, vocab, vocab).unwrap();
    let mut opt = Adam::new(AdamConfig::new(0.01)).unwrap();
    let mut rng = Rng(4);
    let mut loss = f64::NAN;
    for _ in 0..600 {
        let (src, tgt) = batch(&mut rng);
        loss = model
            .train_step(&src, len, &tgt, len, b, &mut opt, Some(5.0))
            .unwrap();
    }
    let (src, tgt) = batch(&mut Rng(96));
    let acc = accuracy(&model.translate(&src, len, b, len).unwrap(), &tgt);
    println!("encoder-decoder: final train loss {loss:.4}, held-out token accuracy {acc:.3}");
    assert!(acc >= 0.90, "accuracy {acc}");
}
