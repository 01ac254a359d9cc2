//! Times one product shape through the library's `gemm` (median of 7 runs),
//! to compare layouts and thread counts.
//!
//! `cargo run --release -p rnn-kernels --example gemm_shapes -- M K N <N|T> <N|T> [threads]`
//! times `C[M, N] += op_a(A) op_b(B)`, `op_a(A)` `[M, K]`, `op_b(B)` `[K, N]`,
//! every operand row-major (`T`: stored transposed).

use rnn_kernels::{Mat, MatMut, Op, gemm};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let size = |k: usize| -> usize {
        args.get(k)
            .and_then(|s| s.parse().ok())
            .expect("usage: M K N <N|T> <N|T> [threads]")
    };
    let (m, k, n) = (size(0), size(1), size(2));
    let op = |k: usize| {
        if args.get(k).is_some_and(|s| s == "T") {
            Op::T
        } else {
            Op::N
        }
    };
    let (op_a, op_b) = (op(3), op(4));
    let threads = args.get(5).and_then(|s| s.parse().ok()).unwrap_or(2);
    rnn_kernels::threads::set_num_threads(threads).expect("thread count");
    let (a, b) = (vec![0.01f32; m * k], vec![0.02f32; k * n]);
    let mut c = vec![0.0f32; m * n];
    let a = match op_a {
        Op::N => Mat::new(&a, m, k),
        Op::T => Mat::new(&a, k, m),
    };
    let b = match op_b {
        Op::N => Mat::new(&b, k, n),
        Op::T => Mat::new(&b, n, k),
    };
    let mut times: Vec<f64> = (0..7)
        .map(|_| {
            let start = std::time::Instant::now();
            let c = MatMut::new(&mut c, m, n);
            rnn_kernels::threads::install(|| gemm(1.0, a, op_a, b, op_b, 1.0, c));
            start.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    let med = times[times.len() / 2];
    let gflops = 2.0 * (m * n * k) as f64 / med / 1e9;
    println!(
        "{m}x{k}x{n} {op_a:?}{op_b:?} threads {threads}: {:.3} ms, {gflops:.1} GFLOP/s",
        med * 1e3
    );
}
