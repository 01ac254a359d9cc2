//! Criterion benches of the cells: inference forward and a train step
//! (training forward + BPTT w.r.t. input, initial states and every parameter,
//! no optimizer) for Elman (tanh), LSTM and GRU on the grid of the benchmark
//! issue. Throughput is reported in FLOP (the GEMMs' multiply-adds x 2):
//! forward `2 T B G H (I + H)`, train step 3x that.
//!
//! Run: `cargo bench --bench cells` (all), or filter, e.g.
//! `cargo bench --bench cells -- lstm/medium`.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use recurrent::{
    CellKind, Gradients, NetConfig, Nonlinearity, OutputGrads, Recurrent, SeqInput, Tape,
};

struct Shape {
    name: &'static str,
    t: usize,
    b: usize,
    i: usize,
    h: usize,
}

const GRID: [Shape; 4] = [
    Shape {
        name: "tiny",
        t: 50,
        b: 1,
        i: 32,
        h: 64,
    },
    Shape {
        name: "finance",
        t: 20,
        b: 64,
        i: 6,
        h: 64,
    },
    Shape {
        name: "medium",
        t: 100,
        b: 32,
        i: 128,
        h: 256,
    },
    Shape {
        name: "large",
        t: 50,
        b: 64,
        i: 512,
        h: 1024,
    },
];

fn data(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|k| {
            let v = (k as u32).wrapping_mul(2_654_435_761).wrapping_add(seed);
            (v >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        })
        .collect()
}

fn cells(c: &mut Criterion) {
    let kinds = [
        ("rnn_tanh", CellKind::Elman(Nonlinearity::Tanh)),
        ("lstm", CellKind::Lstm),
        ("gru", CellKind::Gru(Default::default())),
    ];
    for (cell_name, kind) in kinds {
        let mut group = c.benchmark_group(cell_name);
        group.sample_size(10);
        group.warm_up_time(std::time::Duration::from_millis(500));
        group.measurement_time(std::time::Duration::from_secs(3));
        for s in &GRID {
            let net = Recurrent::new(NetConfig::new(kind, s.i, s.h)).expect("valid config");
            let x = data(s.t * s.b * s.i, 1);
            let gy = data(s.t * s.b * s.h, 2);
            let flops = 2 * s.t * s.b * kind.gates() * s.h * (s.i + s.h);

            group.throughput(Throughput::Elements(flops as u64));
            group.bench_function(BenchmarkId::new("forward", s.name), |bench| {
                bench.iter(|| net.forward(SeqInput::new(&x, s.t, s.b)).expect("forward"))
            });

            let mut tape = Tape::new();
            let mut grads = Gradients::for_net(&net);
            group.throughput(Throughput::Elements(3 * flops as u64));
            group.bench_function(BenchmarkId::new("train", s.name), |bench| {
                bench.iter(|| {
                    net.forward_train(SeqInput::new(&x, s.t, s.b), &mut tape)
                        .expect("forward");
                    net.backward(&mut tape, OutputGrads::new(&gy), &mut grads)
                        .expect("backward");
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, cells);
criterion_main!(benches);
