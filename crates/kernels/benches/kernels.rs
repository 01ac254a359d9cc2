//! Criterion benches of the kernels.
//!
//! - `activation`: sigmoid, tanh and relu forward over 64K and 4K elements,
//!   at every SIMD level this CPU offers (throughput in elements).
//! - `lstm`, `gru_lbr`: the fused step kernels, forward and backward, for
//!   `(B, H)` = (1, 64), (64, 64), (32, 256), (64, 1024) (elements: `B * H`).
//! - `gemm`: the per-step products `[B, H] x [G*H, H]^T` (accumulated, as in a
//!   step) of those configurations for `G` = 4 (LSTM) and 3 (GRU), and the
//!   merged input projection `[3200, 128] x [1024, 128]^T`, each on a library
//!   pool of 1 and of 2 threads (elements: multiply-adds `m * n * k`).
//! - `gemm_crossover`: a ladder of per-step shapes around
//!   `PARALLEL_FLOP_THRESHOLD`, calling faer directly: one sequential product
//!   (`seq`), the output split in two column (or row) blocks on two threads,
//!   each a sequential product (`split2`, what `gemm` does above the
//!   threshold), and faer's own threading (`faer_par2`). Where `split2`
//!   overtakes `seq` is the threshold to use.
//!
//! Run: `cargo bench -p rnn-kernels --bench kernels` (about 3 minutes), or
//! filter, e.g. `cargo bench -p rnn-kernels --bench kernels -- gemm_crossover`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut as FaerMatMut, MatRef as FaerMatRef, Par};
use rnn_kernels::gemm::PARALLEL_FLOP_THRESHOLD;
use rnn_kernels::{Activation, Mat, MatMut, Op, gemm, gru, lstm, simd, threads};

/// The `(B, H)` configurations of the step kernels.
const CONFIGS: [(usize, usize); 4] = [(1, 64), (64, 64), (32, 256), (64, 1024)];

/// Deterministic values in `[lo, hi)`.
fn data(n: usize, seed: u64, lo: f32, hi: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            lo + (hi - lo) * ((s >> 40) as f32 / (1u64 << 24) as f32)
        })
        .collect()
}

fn activations(c: &mut Criterion) {
    let mut g = c.benchmark_group("activation");
    // 64K elements (in and out: 512 KiB, about L2) and 4K (in L1).
    for n in [1 << 16, 1 << 12] {
        let x = data(n, 1, -8.0, 8.0);
        let mut y = vec![0.0f32; n];
        g.throughput(Throughput::Elements(n as u64));
        for act in [Activation::Sigmoid, Activation::Tanh, Activation::Relu] {
            for level in simd::available_levels() {
                let id = BenchmarkId::new(format!("{act:?}_{n}").to_lowercase(), level);
                g.bench_function(id, |b| {
                    simd::with_simd_level(level, || {
                        b.iter(|| rnn_kernels::activation::forward(act, black_box(&x), &mut y))
                    })
                    .expect("listed level");
                });
            }
        }
    }
    g.finish();
}

fn lstm_kernels(c: &mut Criterion) {
    let mut g = c.benchmark_group("lstm");
    for (bs, h) in CONFIGS {
        let n = bs * h;
        g.throughput(Throughput::Elements(n as u64));
        let mut gates = data(4 * n, 2, -4.0, 4.0);
        let c_prev = data(n, 3, -2.0, 2.0);
        let (mut cs, mut hs) = (vec![0.0f32; n], vec![0.0f32; n]);
        let id = format!("B{bs}_H{h}");
        g.bench_function(BenchmarkId::new("forward", &id), |b| {
            // Re-running on the activated gates costs the same (branch-free).
            b.iter(|| lstm::forward(&mut gates, black_box(&c_prev), &mut cs, &mut hs, h))
        });
        let dh = data(n, 4, -1.0, 1.0);
        let mut dc = data(n, 5, -1.0, 1.0);
        let mut dgates = vec![0.0f32; 4 * n];
        g.bench_function(BenchmarkId::new("backward", &id), |b| {
            b.iter(|| {
                lstm::backward(
                    black_box(&gates),
                    &c_prev,
                    &cs,
                    &dh,
                    &mut dc,
                    &mut dgates,
                    h,
                )
            })
        });
    }
    g.finish();
}

fn gru_kernels(c: &mut Criterion) {
    let mut g = c.benchmark_group("gru_lbr");
    for (bs, h) in CONFIGS {
        let n = bs * h;
        g.throughput(Throughput::Elements(n as u64));
        let mut gates = data(3 * n, 6, -4.0, 4.0);
        let hw = data(3 * n, 7, -2.0, 2.0);
        let b_hn = data(h, 8, -0.5, 0.5);
        let h_prev = data(n, 9, -1.0, 1.0);
        let (mut hs, mut hn) = (vec![0.0f32; n], vec![0.0f32; n]);
        let id = format!("B{bs}_H{h}");
        g.bench_function(BenchmarkId::new("forward", &id), |b| {
            b.iter(|| {
                gru::lbr_forward(
                    &mut gates,
                    black_box(&hw),
                    &b_hn,
                    &h_prev,
                    &mut hs,
                    &mut hn,
                    h,
                )
            })
        });
        let dh = data(n, 10, -1.0, 1.0);
        let (mut dgates, mut dhw, mut dh_prev) =
            (vec![0.0f32; 3 * n], vec![0.0f32; 3 * n], vec![0.0f32; n]);
        g.bench_function(BenchmarkId::new("backward", &id), |b| {
            b.iter(|| {
                gru::lbr_backward(
                    black_box(&gates),
                    &hn,
                    &h_prev,
                    &dh,
                    &mut dgates,
                    &mut dhw,
                    &mut dh_prev,
                    h,
                )
            })
        });
    }
    g.finish();
}

/// `c[m, n] += a[m, k] * w[n, k]^T` through the library's `gemm` on a pool of `t` threads.
fn bench_gemm(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    m: usize,
    n: usize,
    k: usize,
) {
    let a = data(m * k, 11, -1.0, 1.0);
    let w = data(n * k, 12, -1.0, 1.0);
    let mut out = vec![0.0f32; m * n];
    g.throughput(Throughput::Elements((m * n * k) as u64));
    for t in [1, 2] {
        threads::set_num_threads(t).expect("threads");
        g.bench_function(BenchmarkId::new(name, format!("threads{t}")), |b| {
            threads::install(|| {
                b.iter(|| {
                    gemm(
                        1.0,
                        Mat::new(black_box(&a), m, k),
                        Op::N,
                        Mat::new(&w, n, k),
                        Op::T,
                        1.0,
                        MatMut::new(&mut out, m, n),
                    )
                })
            })
        });
    }
}

fn gemm_shapes(c: &mut Criterion) {
    let mut g = c.benchmark_group("gemm");
    for (bs, h) in CONFIGS {
        for gates in [4, 3] {
            bench_gemm(
                &mut g,
                &format!("step_B{bs}_H{h}_G{gates}"),
                bs,
                gates * h,
                h,
            );
        }
    }
    bench_gemm(&mut g, "merged_3200x1024x128", 3200, 1024, 128);
    g.finish();
}

/// `c = a * w^T` with faer directly: `seq`, `split2` (two sequential halves
/// of the longer output dimension on two threads) or `faer_par2`.
fn faer_product(variant: &str, a: &[f32], w: &[f32], c: &mut [f32], m: usize, n: usize, k: usize) {
    let a = FaerMatRef::from_row_major_slice(a, m, k);
    let w = FaerMatRef::from_row_major_slice(w, n, k).transpose();
    let c = FaerMatMut::from_row_major_slice_mut(c, m, n);
    match variant {
        "seq" => matmul(c, Accum::Replace, a, w, 1.0, Par::Seq),
        "faer_par2" => matmul(c, Accum::Replace, a, w, 1.0, Par::rayon(2)),
        _ if n >= m => {
            let cut = (n / 2 / 16 * 16).clamp(1, n - 1);
            let (c0, c1) = c.split_at_col_mut(cut);
            let (w0, w1) = w.split_at_col(cut);
            rayon::join(
                || matmul(c0, Accum::Replace, a, w0, 1.0, Par::Seq),
                || matmul(c1, Accum::Replace, a, w1, 1.0, Par::Seq),
            );
        }
        _ => {
            let cut = (m / 2 / 16 * 16).clamp(1, m - 1);
            let (c0, c1) = c.split_at_row_mut(cut);
            let (a0, a1) = a.split_at_row(cut);
            rayon::join(
                || matmul(c0, Accum::Replace, a0, w, 1.0, Par::Seq),
                || matmul(c1, Accum::Replace, a1, w, 1.0, Par::Seq),
            );
        }
    }
}

fn gemm_crossover(c: &mut Criterion) {
    threads::set_num_threads(2).expect("threads");
    let mut g = c.benchmark_group("gemm_crossover");
    // (m, n, k): per-step shapes [B, H] x [4H, H]^T around the threshold.
    let ladder = [
        (32, 64, 16),
        (32, 128, 32),
        (32, 192, 48),
        (32, 256, 64),
        (32, 384, 96),
        (32, 512, 128),
        (1, 512, 128),
        (1, 1024, 256),
        (1, 2048, 512),
        (64, 256, 64),
        (64, 512, 128),
    ];
    for (m, n, k) in ladder {
        let a = data(m * k, 13, -1.0, 1.0);
        let w = data(n * k, 14, -1.0, 1.0);
        let mut out = vec![0.0f32; m * n];
        let macs = m * n * k;
        g.throughput(Throughput::Elements(macs as u64));
        let side = if macs >= PARALLEL_FLOP_THRESHOLD {
            "above"
        } else {
            "below"
        };
        for variant in ["seq", "split2", "faer_par2"] {
            let id = BenchmarkId::new(variant, format!("{m}x{n}x{k}_{macs}_{side}"));
            g.bench_function(id, |b| {
                threads::install(|| {
                    b.iter(|| faer_product(variant, black_box(&a), &w, &mut out, m, n, k))
                })
            });
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    targets = activations, lstm_kernels, gru_kernels, gemm_shapes, gemm_crossover
}
criterion_main!(benches);
