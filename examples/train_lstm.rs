//! Trains a small LSTM to predict the next value of noisy sine waves, with
//! BPTT and SGD with momentum written over the model's one parameter buffer,
//! and prints the falling loss.
//!
//! Task: each sequence is `sin(w t + p)` plus noise, with a random frequency
//! `w` and phase `p`; at every step the network sees the current value and
//! must output the next clean value in hidden unit 0 (`y[t, b, 0]`, in
//! `(-1, 1)` like the target). Loss: mean squared error over all steps.
//!
//! Run: `cargo run --release --example train_lstm`

use recurrent::{Gradients, Lstm, LstmConfig, OutputGrads, SeqInput, Tape};

/// A tiny deterministic generator for the data (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f32 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// A batch: inputs `[T, B, 1]` and targets `[T, B]`.
fn batch(rng: &mut Rng, t: usize, b: usize) -> (Vec<f32>, Vec<f32>) {
    let (mut x, mut y) = (vec![0.0; t * b], vec![0.0; t * b]);
    for j in 0..b {
        let w = 0.2 + 0.4 * rng.next();
        let p = std::f32::consts::TAU * rng.next();
        for i in 0..t {
            let noise = 0.05 * (rng.next() - 0.5);
            x[i * b + j] = 0.8 * (w * i as f32 + p).sin() + noise;
            y[i * b + j] = 0.8 * (w * (i + 1) as f32 + p).sin();
        }
    }
    (x, y)
}

fn main() -> recurrent::Result<()> {
    let (t, b, hidden) = (30, 32, 24);
    let mut lstm = Lstm::new(LstmConfig::new(1, hidden).num_layers(1).seed(42))?;
    let mut tape = Tape::new();
    let mut grads = Gradients::for_net(lstm.as_recurrent());
    let mut velocity = vec![0.0f32; lstm.params().num_elements()];
    let (lr, momentum, clip) = (0.1f32, 0.9f32, 1.0f32);
    let mut rng = Rng(7);
    let mut grad_y = vec![0.0f32; t * b * hidden];

    println!("LSTM(1 -> {hidden}), T={t}, B={b}: predict the next value of a noisy sine");
    println!("{:>6} {:>12}", "step", "train MSE");
    let mut first = None;
    let mut last = 0.0;
    for step in 0..=300 {
        let (x, target) = batch(&mut rng, t, b);
        let out = lstm.forward_train(SeqInput::new(&x, t, b), &mut tape)?;

        // MSE on unit 0 of y, and its gradient.
        let n = (t * b) as f32;
        grad_y.fill(0.0);
        let mut loss = 0.0f64;
        for k in 0..t * b {
            let err = out.y[k * hidden] - target[k];
            loss += (err * err) as f64;
            grad_y[k * hidden] = 2.0 * err / n;
        }
        let loss = loss / n as f64;
        first.get_or_insert(loss);
        last = loss;

        lstm.backward(&mut tape, OutputGrads::new(&grad_y), &mut grads)?;
        // Clip by global norm, then SGD with momentum, on the one flat buffer.
        let g = grads.params.as_mut_slice();
        let norm = g.iter().map(|v| v * v).sum::<f32>().sqrt();
        let scale = if norm > clip { clip / norm } else { 1.0 };
        let params = lstm.as_recurrent_mut().params_mut();
        for ((p, v), g) in params.iter_mut().zip(&mut velocity).zip(g.iter()) {
            *v = momentum * *v + g * scale;
            *p -= lr * *v;
        }
        if step % 25 == 0 {
            println!("{step:>6} {loss:>12.6}");
        }
    }
    let first = first.unwrap_or(f64::NAN);
    println!("loss {first:.4} -> {last:.4} ({:.1}x lower)", first / last);
    Ok(())
}
