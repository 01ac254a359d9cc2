//! Runs one cell's forward or train step in a loop, for profiling
//! (`perf record`, `valgrind --tool=callgrind`).
//!
//! `cargo run --release --example profile_cell -- <rnn_tanh|lstm|gru|gru_reset_before> <forward|train> T B I H [iters] [bi|uni] [len]`
//!
//! `len`: variable lengths, uniform in `[T/2, T]` (row 0 of length `T`).

use recurrent::{CellKind, Gradients, NetConfig, OutputGrads, Recurrent, SeqInput, Tape};

fn main() -> recurrent::Result<()> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let arg = |k: usize, d: usize| a.get(k).and_then(|s| s.parse().ok()).unwrap_or(d);
    let cell = CellKind::from_name(a.first().map_or("lstm", String::as_str))?;
    let train = a.get(1).is_some_and(|m| m == "train");
    let (t, b, i, h, iters) = (
        arg(2, 100),
        arg(3, 32),
        arg(4, 128),
        arg(5, 256),
        arg(6, 10),
    );
    let mut cfg = NetConfig::new(cell, i, h);
    cfg.bidirectional = a.get(7).is_some_and(|s| s == "bi");
    let net = Recurrent::new(cfg)?;
    let d = if net.config().bidirectional { 2 } else { 1 };
    let x = vec![0.1f32; t * b * i];
    let g = vec![0.01f32; t * b * d * h];
    let lengths: Vec<usize> = (0..b)
        .map(|r| {
            if r == 0 {
                t
            } else {
                t / 2 + (r * 7919) % (t - t / 2 + 1)
            }
        })
        .collect();
    let varlen = a.get(8).is_some_and(|s| s == "len");
    let input = || {
        let input = SeqInput::new(&x, t, b);
        if varlen {
            input.lengths(&lengths)
        } else {
            input
        }
    };
    let mut tape = Tape::new();
    let mut grads = Gradients::for_net(&net);
    let mut times = Vec::new();
    for _ in 0..iters {
        let start = std::time::Instant::now();
        net.forward_train(input(), &mut tape)?;
        if train {
            net.backward(&mut tape, OutputGrads::new(&g), &mut grads)?;
        }
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    let flops =
        2.0 * (t * b * cell.gates() * h * (i + h) * d) as f64 * if train { 3.0 } else { 1.0 };
    let med = times[times.len() / 2];
    println!(
        "median {med:.3} ms, min {:.3} ms, mean {:.3} ms, p90 {:.3} ms, max {:.3} ms, {:.1} GFLOP/s (median)",
        times[0],
        times.iter().sum::<f64>() / times.len() as f64,
        times[times.len() * 9 / 10],
        times[times.len() - 1],
        flops / med / 1e6
    );
    Ok(())
}
