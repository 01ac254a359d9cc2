//! The NTM's SIMD kernels (`recurrent::kernels::addressing`, memory `[M,
//! N]`) against the f64 reference equations (`recurrent::ntm::addressing`
//! and `recurrent::ntm::memory`, memory `[N, M]`, themselves held to finite
//! differences by `tests/ntm_addressing.rs`), at every SIMD level this CPU
//! offers (pulp's portable `Scalar` fallback included), forward and
//! backward, on random problems and on the edges: sizes that leave a
//! partial vector (`N` from 1 to 130), shifts wider than the memory, exact
//! zeros in the weightings (a one-hot shift of a one-hot weighting),
//! `gamma == 1`, all-zero memory locations, a gate at 0 and 1, several
//! write heads with a full erase.
//!
//! The kernels compute in f32 from the same f32 inputs the reference gets
//! (widened to f64). Every tensor must satisfy `max|kernel - reference| <=
//! 1e-5 + TOL * max|reference|` — the bound of the PyTorch parity tests,
//! with `TOL` = 1e-4 — and backward kernels must *add* their gradients
//! into buffers prefilled with random values (the `+=` contract).
//!
//! `cargo test --release --test ntm_kernels -- --nocapture` prints the
//! worst error of each quantity relative to its bound: at most 0.04 of it
//! (measured) except the memory gradient of content addressing, 0.63 at
//! `M = 1` with all-zero locations, where its two terms (`a_i key_j` and
//! `bm_i M_ij`) cancel almost exactly for the other locations.

use recurrent::kernels::addressing::{self as k, Head, HeadGrads, Steps, WriteGrads};
use recurrent::kernels::simd::{self, SimdLevel};
use recurrent::ntm::addressing as reference;
use recurrent::ntm::memory;
use recurrent::rng::SplitMix64;

/// Relative part of the bound.
const TOL: f64 = 1e-4;
/// Absolute part of the bound.
const ABS: f64 = 1e-5;

struct Rng(SplitMix64);

impl Rng {
    fn normals(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| scale * self.0.normal()).collect()
    }

    fn uniform(&mut self) -> f32 {
        self.0.next_f32()
    }

    fn simplex(&mut self, n: usize) -> Vec<f32> {
        let mut v = self.normals(n, 2.0);
        reference::softmax_in_place(&mut v);
        v
    }

    fn one_hot(&mut self, n: usize) -> Vec<f32> {
        let mut v = vec![0.0; n];
        v[(self.0.next_u64() % n as u64) as usize] = 1.0;
        v
    }
}

fn wide(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
}

/// `[rows, cols]` row-major to `[cols, rows]`.
fn transpose<T: Copy>(v: &[T], rows: usize, cols: usize) -> Vec<T> {
    (0..cols * rows)
        .map(|idx| v[(idx % rows) * cols + idx / rows])
        .collect()
}

/// The worst `error / bound` of each named quantity, over every case.
#[derive(Default)]
struct Report(Vec<(String, f64)>);

impl Report {
    /// Checks `ours` against `reference` and records the ratio.
    fn check(&mut self, what: &str, ctx: &str, ours: &[f32], reference: &[f64]) {
        assert_eq!(ours.len(), reference.len(), "{what}: lengths ({ctx})");
        let max_ref = reference.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let bound = ABS + TOL * max_ref;
        let err = ours
            .iter()
            .zip(reference)
            .map(|(&a, &b)| {
                if a.is_finite() {
                    (f64::from(a) - b).abs()
                } else {
                    f64::INFINITY
                }
            })
            .fold(0.0f64, f64::max);
        assert!(
            err <= bound,
            "{what}: error {err:.3e} over bound {bound:.3e} ({ctx})\nours {ours:?}\nreference {reference:?}"
        );
        match self.0.iter_mut().find(|(name, _)| name == what) {
            Some((_, worst)) => *worst = worst.max(err / bound),
            None => self.0.push((what.to_string(), err / bound)),
        }
    }

    fn print(&self, title: &str) {
        println!("{title}: worst error / bound");
        for (name, ratio) in &self.0 {
            println!("  {name:<12} {ratio:.3}");
        }
    }
}

/// One addressing problem: the head's parameters after their
/// nonlinearities, the memory (`[N, M]`), the previous weighting and the
/// upstream gradient `dw`.
struct Problem {
    n: usize,
    m: usize,
    key: Vec<f32>,
    beta: f32,
    gate: f32,
    shift: Vec<f32>,
    gamma: f32,
    mem: Vec<f32>,
    w_prev: Vec<f32>,
    dw: Vec<f32>,
}

/// Which edge a problem sits on.
#[derive(Clone, Copy, Debug)]
enum Edge {
    Random,
    /// A one-hot shift of a one-hot previous weighting with the gate at 0:
    /// exact zeros in `ws`, and `gamma == 1` or `gamma > 1`.
    ZerosInShifted {
        gamma_one: bool,
    },
    /// Some memory locations all zero, the gate at 1.
    ZeroLocations,
}

fn problem(rng: &mut Rng, n: usize, m: usize, k: usize, edge: Edge) -> Problem {
    let softplus = |x: f32| reference::softplus(x);
    let mut p = Problem {
        n,
        m,
        key: rng.normals(m, 1.0),
        beta: softplus(rng.normals(1, 3.0)[0]),
        gate: reference::sigmoid(rng.normals(1, 2.0)[0]),
        shift: rng.simplex(k),
        gamma: 1.0 + softplus(rng.normals(1, 2.0)[0]),
        mem: rng.normals(n * m, 0.5),
        w_prev: rng.simplex(n),
        dw: rng.normals(n, 1.0),
    };
    match edge {
        Edge::Random => {}
        Edge::ZerosInShifted { gamma_one } => {
            p.shift = rng.one_hot(k);
            p.w_prev = rng.one_hot(n);
            p.gate = 0.0;
            if gamma_one {
                p.gamma = 1.0;
            }
        }
        Edge::ZeroLocations => {
            for i in (0..n).step_by(3) {
                p.mem[i * m..(i + 1) * m].fill(0.0);
            }
            p.gate = 1.0;
        }
    }
    p
}

/// The reference forward and backward of one head, in f64.
struct Expected {
    sim: Vec<f64>,
    wc: Vec<f64>,
    wg: Vec<f64>,
    ws: Vec<f64>,
    w: Vec<f64>,
    dkey: Vec<f64>,
    scalars: Vec<f64>,
    dshift: Vec<f64>,
    dw_prev: Vec<f64>,
    /// `[N, M]`.
    dmem: Vec<f64>,
}

fn expected(p: &Problem) -> Expected {
    let n = p.n;
    let (key, shift, mem, w_prev, dw) = (
        wide(&p.key),
        wide(&p.shift),
        wide(&p.mem),
        wide(&p.w_prev),
        wide(&p.dw),
    );
    let (beta, gate, gamma) = (f64::from(p.beta), f64::from(p.gate), f64::from(p.gamma));
    let [mut sim, mut wc, mut wg, mut ws, mut w] = std::array::from_fn(|_| vec![0.0; n]);
    reference::content(&key, beta, &mem, &mut sim, &mut wc);
    reference::interpolate(gate, &wc, &w_prev, &mut wg);
    reference::shift(&shift, &wg, &mut ws);
    reference::sharpen(gamma, &ws, &mut w);
    let (mut dgamma, mut dgate, mut dbeta) = (0.0, 0.0, 0.0);
    let [mut dws, mut dwg, mut dwc, mut dw_prev, mut tmp] = std::array::from_fn(|_| vec![0.0; n]);
    let mut dshift = vec![0.0; p.shift.len()];
    let mut dkey = vec![0.0; p.m];
    let mut dmem = vec![0.0; n * p.m];
    reference::sharpen_backward(gamma, &ws, &w, &dw, &mut dgamma, &mut dws);
    reference::shift_backward(&shift, &wg, &dws, &mut dshift, &mut dwg);
    reference::interpolate_backward(gate, &wc, &w_prev, &dwg, &mut dgate, &mut dwc, &mut dw_prev);
    reference::content_backward(
        &key, beta, &mem, &sim, &wc, &dwc, &mut tmp, &mut dkey, &mut dbeta, &mut dmem,
    );
    Expected {
        sim,
        wc,
        wg,
        ws,
        w,
        dkey,
        scalars: vec![dbeta, dgate, dgamma],
        dshift,
        dw_prev,
        dmem,
    }
}

/// Runs [`k::address`] and [`k::address_backward`] at the current level and
/// checks every output against `e`; the backward's accumulated outputs
/// start at random values.
fn check_address(p: &Problem, e: &Expected, rng: &mut Rng, rep: &mut Report, ctx: &str) {
    let (n, m) = (p.n, p.m);
    let mem = transpose(&p.mem, n, m);
    let mut norms = vec![f32::NAN; n];
    k::norms(&mem, &mut norms);
    let head = Head {
        key: &p.key,
        beta: p.beta,
        gate: p.gate,
        shift: &p.shift,
        gamma: p.gamma,
    };
    let [mut sim, mut wc, mut wg, mut ws, mut w] = std::array::from_fn(|_| vec![f32::NAN; n]);
    k::address(
        &head,
        &mem,
        &norms,
        &p.w_prev,
        Steps {
            sim: &mut sim,
            wc: &mut wc,
            wg: &mut wg,
            ws: &mut ws,
        },
        &mut w,
    );
    for (what, ours, theirs) in [
        ("sim", &sim, &e.sim),
        ("wc", &wc, &e.wc),
        ("wg", &wg, &e.wg),
        ("ws", &ws, &e.ws),
        ("w", &w, &e.w),
    ] {
        rep.check(what, ctx, ours, theirs);
    }
    // The backward from the reference's own forward values (rounded to
    // f32), so that it is checked on its own.
    let narrow = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<_>>();
    let (sim, wc, wg, ws, w) = (
        narrow(&e.sim),
        narrow(&e.wc),
        narrow(&e.wg),
        narrow(&e.ws),
        narrow(&e.w),
    );
    let key0 = rng.normals(m, 1.0);
    let shift0 = rng.normals(p.shift.len(), 1.0);
    let scalars0 = rng.normals(3, 1.0);
    let dw_prev0 = rng.normals(n, 1.0);
    let dmem0 = rng.normals(n * m, 1.0);
    let (mut dkey, mut dshift, mut dw_prev) = (key0.clone(), shift0.clone(), dw_prev0.clone());
    let mut dmem = transpose(&dmem0, n, m);
    let mut scratch = vec![f32::NAN; 3 * n];
    let mut grads = HeadGrads {
        key: &mut dkey,
        beta: scalars0[0],
        gate: scalars0[1],
        shift: &mut dshift,
        gamma: scalars0[2],
    };
    k::address_backward(
        &head,
        &mem,
        &norms,
        &p.w_prev,
        Steps {
            sim: &sim,
            wc: &wc,
            wg: &wg,
            ws: &ws,
        },
        &w,
        &p.dw,
        &mut scratch,
        &mut grads,
        &mut dw_prev,
        &mut dmem,
    );
    let scalars = [grads.beta, grads.gate, grads.gamma];
    let added = |after: &[f32], before: &[f32]| -> Vec<f32> {
        after.iter().zip(before).map(|(a, b)| a - b).collect()
    };
    rep.check("dkey", ctx, &added(&dkey, &key0), &e.dkey);
    rep.check("dshift", ctx, &added(&dshift, &shift0), &e.dshift);
    for (i, name) in ["dbeta", "dgate", "dgamma"].iter().enumerate() {
        rep.check(name, ctx, &[scalars[i] - scalars0[i]], &e.scalars[i..i + 1]);
    }
    rep.check("dw_prev", ctx, &added(&dw_prev, &dw_prev0), &e.dw_prev);
    let dmem = transpose(&dmem, m, n);
    rep.check("dmem", ctx, &added(&dmem, &dmem0), &e.dmem);
}

/// Runs `f` at every SIMD level this CPU offers.
fn at_every_level(mut f: impl FnMut(SimdLevel)) {
    for level in simd::available_levels() {
        simd::with_simd_level(level, || f(level)).expect("an available level");
    }
}

#[test]
fn addressing_matches_the_reference() {
    let mut rng = Rng(SplitMix64::new(7));
    let mut rep = Report::default();
    let edges = [
        Edge::Random,
        Edge::ZerosInShifted { gamma_one: true },
        Edge::ZerosInShifted { gamma_one: false },
        Edge::ZeroLocations,
    ];
    for n in [1, 2, 3, 5, 8, 15, 16, 17, 31, 33, 64, 100, 128, 130] {
        for (m, kk) in [(1, 1), (4, 3), (20, 3), (7, 5), (6, 7)] {
            for (case, &edge) in edges.iter().enumerate() {
                let p = problem(&mut rng, n, m, kk, edge);
                let e = expected(&p);
                at_every_level(|level| {
                    let ctx = format!("N {n}, M {m}, K {kk}, {edge:?}, case {case}, {level}");
                    check_address(&p, &e, &mut rng, &mut rep, &ctx);
                });
            }
        }
    }
    rep.print("addressing");
}

#[test]
fn read_and_write_match_the_reference() {
    let mut rng = Rng(SplitMix64::new(11));
    let mut rep = Report::default();
    for n in [1, 2, 7, 16, 17, 33, 128] {
        for m in [1, 5, 20] {
            for heads in [1, 2, 3] {
                let w = (0..heads).flat_map(|_| rng.simplex(n)).collect::<Vec<_>>();
                let mut erase = (0..heads * m).map(|_| rng.uniform()).collect::<Vec<_>>();
                // A full erase and an untouched column.
                erase[0] = 1.0;
                erase[heads * m - 1] = 0.0;
                let add = rng.normals(heads * m, 1.0);
                let mem = rng.normals(n * m, 0.5);
                let dmem = rng.normals(n * m, 1.0);
                let dr = rng.normals(m, 1.0);
                let mem_t = transpose(&mem, n, m);
                let dmem_t = transpose(&dmem, n, m);

                // References, in f64, memory [N, M].
                let (wd, ed, ad, md, dmd, drd) = (
                    wide(&w),
                    wide(&erase),
                    wide(&add),
                    wide(&mem),
                    wide(&dmem),
                    wide(&dr),
                );
                let mut r_ref = vec![0.0; m];
                memory::read(&wd[..n], &md, &mut r_ref);
                let (mut dw_read, mut dmem_read) = (vec![0.0; n], vec![0.0; n * m]);
                memory::read_backward(&wd[..n], &md, &drd, &mut dw_read, &mut dmem_read);
                let mut written = vec![0.0; n * m];
                memory::write(m, &wd, &ed, &ad, &md, &mut written);
                let (mut dprev, mut dw_write) = (vec![0.0; n * m], vec![0.0; heads * n]);
                let (mut de, mut da) = (vec![0.0; heads * m], vec![0.0; heads * m]);
                memory::write_backward(
                    m,
                    &wd,
                    &ed,
                    &ad,
                    &md,
                    &dmd,
                    &mut dprev,
                    &mut dw_write,
                    &mut de,
                    &mut da,
                );

                at_every_level(|level| {
                    let ctx = format!("N {n}, M {m}, W {heads}, {level}");
                    let added = |after: &[f32], before: &[f32]| -> Vec<f32> {
                        after.iter().zip(before).map(|(a, b)| a - b).collect()
                    };
                    let mut r = vec![f32::NAN; m];
                    k::read(&w[..n], &mem_t, &mut r);
                    rep.check("read", &ctx, &r, &r_ref);
                    let (dw0, dm0) = (rng.normals(n, 1.0), rng.normals(n * m, 1.0));
                    let (mut dw, mut dm) = (dw0.clone(), dm0.clone());
                    k::read_backward(&w[..n], &mem_t, &dr, &mut dw, &mut dm);
                    rep.check("read dw", &ctx, &added(&dw, &dw0), &dw_read);
                    let dm = transpose(&added(&dm, &dm0), m, n);
                    rep.check("read dmem", &ctx, &dm, &dmem_read);

                    let mut out = vec![f32::NAN; n * m];
                    k::write(heads, &w, &erase, &add, &mem_t, &mut out);
                    rep.check("write", &ctx, &transpose(&out, m, n), &written);
                    let starts =
                        [n * m, heads * n, heads * m, heads * m].map(|l| rng.normals(l, 1.0));
                    let [mut g_prev, mut g_w, mut g_e, mut g_a] = starts.clone();
                    k::write_backward(
                        heads,
                        &w,
                        &erase,
                        &add,
                        &mem_t,
                        &dmem_t,
                        WriteGrads {
                            mem_prev: &mut g_prev,
                            w: &mut g_w,
                            erase: &mut g_e,
                            add: &mut g_a,
                        },
                    );
                    let g_prev = transpose(&added(&g_prev, &starts[0]), m, n);
                    rep.check("write dprev", &ctx, &g_prev, &dprev);
                    rep.check("write dw", &ctx, &added(&g_w, &starts[1]), &dw_write);
                    rep.check("write derase", &ctx, &added(&g_e, &starts[2]), &de);
                    rep.check("write dadd", &ctx, &added(&g_a, &starts[3]), &da);
                });
            }
        }
    }
    rep.print("read and write");
}

#[test]
fn kernels_reject_inconsistent_lengths() {
    let mem = vec![0.0f32; 12];
    let mut r = vec![0.0f32; 5];
    let w = vec![0.25f32; 4];
    let result = std::panic::catch_unwind(move || k::read(&w, &mem, &mut r));
    assert!(result.is_err(), "a [3, 4] memory read into 5 values");
}
