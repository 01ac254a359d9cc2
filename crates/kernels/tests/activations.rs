//! Accuracy of the activations against f64 references, for the SIMD kernels
//! at every SIMD level this CPU offers and for the scalar twins
//! (`rnn_kernels::scalar_math`), with and without flush-to-zero.
//!
//! Inputs: every 97th f32 bit pattern (all signs, exponents, subnormals,
//! infinities, NaNs; 44 million values), every multiple of 2^-10 in
//! `[-20, 20]`, and the special values +-0, the subnormals 1e-40 and
//! +-1e-45, +-88, +-89, +-1e30, +-inf and NaNs with several payloads.
//!
//! Proven for sigmoid and tanh: max abs error vs f64 <= 1e-6 (measured
//! maxima are printed with `--nocapture` and quoted on each test); NaN in,
//! NaN out; sigmoid in `[0, 1]` and tanh in `[-1, 1]` for every input;
//! saturation is exact (sigmoid(x) == 1 for x >= 20 and +inf, sigmoid(-inf)
//! == 0, tanh(x) == +-1 for |x| >= 10 and +-inf); tanh keeps the sign of its
//! input, zero included (tanh(-0) = -0), and sigmoid(+-0) = 0.5. For relu:
//! exactly `max(x, 0)`, NaN in, NaN out. For the backward kernels (derivative
//! from the saved output): `act'(x)` from `y = act(x)` against the f64
//! derivative at `x`, and `dy * act'(y)` against the same formula in f64.

use rnn_kernels::denormals::FlushDenormals;
use rnn_kernels::{Activation, activation, scalar_math, simd};

/// The bound on every forward result, absolute, against f64.
const FORWARD_BOUND: f64 = 1e-6;

fn sigmoid64(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn reference(act: Activation, x: f32) -> f64 {
    let x = f64::from(x);
    match act {
        Activation::Sigmoid => sigmoid64(x),
        Activation::Tanh => x.tanh(),
        Activation::Relu => x.max(0.0),
    }
}

/// `y = act(x)` over slices.
type ForwardFn = Box<dyn Fn(Activation, &[f32], &mut [f32])>;
/// `dx = dy * act'(y)` over slices.
type BackwardFn = Box<dyn Fn(Activation, &[f32], &[f32], &mut [f32])>;

/// An implementation under test.
struct Impl {
    name: String,
    forward: ForwardFn,
    backward: BackwardFn,
}

/// The SIMD kernels forced to each available level, and the scalar twins.
fn impls() -> Vec<Impl> {
    let mut v: Vec<Impl> = simd::available_levels()
        .into_iter()
        .map(|level| Impl {
            name: format!("simd {level}"),
            forward: Box::new(move |act, x: &[f32], y: &mut [f32]| {
                simd::with_simd_level(level, || activation::forward(act, x, y))
                    .expect("listed level");
            }),
            backward: Box::new(move |act, y: &[f32], dy: &[f32], dx: &mut [f32]| {
                simd::with_simd_level(level, || activation::backward(act, y, dy, dx))
                    .expect("listed level");
            }),
        })
        .collect();
    v.push(Impl {
        name: "scalar twin".into(),
        forward: Box::new(|act, x: &[f32], y: &mut [f32]| {
            let f = match act {
                Activation::Sigmoid => scalar_math::sigmoid,
                Activation::Tanh => scalar_math::tanh,
                Activation::Relu => scalar_math::relu,
            };
            for (y, &x) in y.iter_mut().zip(x) {
                *y = f(x);
            }
        }),
        backward: Box::new(activation::scalar::backward),
    });
    v
}

fn specials() -> Vec<f32> {
    let mut v = vec![
        0.0,
        -0.0,
        1e-40,
        -1e-40,
        1e-45,
        -1e-45,
        f32::MIN_POSITIVE,
        -f32::MIN_POSITIVE,
        88.0,
        -88.0,
        89.0,
        -89.0,
        87.5,
        -87.5,
        88.72,
        -88.72,
        103.9,
        -103.9,
        1e30,
        -1e30,
        f32::MAX,
        f32::MIN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        0.625,
        -0.625,
        0.624_999_94,
        -0.624_999_94,
        9.0,
        10.0,
        17.0,
        20.0,
        -20.0,
        f32::NAN,
        -f32::NAN,
        f32::from_bits(0x7f80_0001),
        f32::from_bits(0xffc1_2345),
    ];
    // A dense sweep of [-20, 20] in steps of 2^-10.
    v.extend((-20 * 1024..=20 * 1024).map(|i| i as f32 / 1024.0));
    v
}

/// Every 97th bit pattern, then the specials.
fn sweep() -> impl Iterator<Item = f32> {
    (0..=u32::MAX)
        .step_by(97)
        .map(f32::from_bits)
        .chain(specials())
}

/// The largest error seen by one implementation of one activation.
#[derive(Default)]
struct Worst {
    err: f64,
    at: f32,
}

/// Checks one chunk of forward results; returns the largest abs error.
/// With `ftz`, relu may return a subnormal input (read as zero) unchanged.
fn check_forward(
    act: Activation,
    name: &str,
    ftz: bool,
    xs: &[f32],
    ys: &[f32],
    refs: &[f64],
    worst: &mut Worst,
) {
    for ((&x, &y), &r) in xs.iter().zip(ys).zip(refs) {
        let ctx = || {
            format!(
                "{act:?} ({name}) of {x:e} (bits {:#010x}) = {y:e}",
                x.to_bits()
            )
        };
        if x.is_nan() {
            assert!(y.is_nan(), "{}: NaN must give NaN", ctx());
            continue;
        }
        assert!(!y.is_nan(), "{}: NaN from a number", ctx());
        // Only relu has an infinite result (relu(inf) = inf).
        let err = if f64::from(y) == r {
            0.0
        } else {
            (f64::from(y) - r).abs()
        };
        assert!(
            err <= FORWARD_BOUND,
            "{}: error {err:e} vs f64 {r:e}",
            ctx()
        );
        if err > worst.err {
            *worst = Worst { err, at: x };
        }
        match act {
            Activation::Sigmoid => {
                assert!((0.0..=1.0).contains(&y), "{}: outside [0, 1]", ctx());
                if x >= 20.0 {
                    assert_eq!(y, 1.0, "{}: must saturate to exactly 1", ctx());
                }
                if x == 0.0 {
                    assert_eq!(y, 0.5, "{}", ctx());
                }
            }
            Activation::Tanh => {
                assert!((-1.0..=1.0).contains(&y), "{}: outside [-1, 1]", ctx());
                assert_eq!(
                    y.is_sign_negative(),
                    x.is_sign_negative(),
                    "{}: sign",
                    ctx()
                );
                if x.abs() >= 10.0 {
                    assert_eq!(y.abs(), 1.0, "{}: must saturate to exactly +-1", ctx());
                }
            }
            Activation::Relu => {
                let want = if x < 0.0 { 0.0 } else { x };
                if ftz && x.is_subnormal() {
                    assert!(y == x || y == 0.0, "{}", ctx());
                } else {
                    assert_eq!(y, want, "{}", ctx());
                }
            }
        }
    }
}

/// Sweeps every implementation of every activation; with `ftz` the kernels
/// run with flush-to-zero and denormals-are-zero set (the f64 references are
/// computed outside, on the true inputs).
fn forward_sweep(ftz: bool) {
    let impls = impls();
    let acts = [Activation::Sigmoid, Activation::Tanh, Activation::Relu];
    let mut worst: Vec<Vec<Worst>> = acts
        .iter()
        .map(|_| impls.iter().map(|_| Worst::default()).collect())
        .collect();
    let all: Vec<f32> = sweep().collect();
    let mut ys = vec![0.0f32; 1 << 16];
    for xs in all.chunks(1 << 16) {
        let ys = &mut ys[..xs.len()];
        for (a, &act) in acts.iter().enumerate() {
            let refs: Vec<f64> = xs.iter().map(|&x| reference(act, x)).collect();
            for (i, imp) in impls.iter().enumerate() {
                ys.fill(f32::from_bits(0x7fa5_5a5a));
                {
                    let _flush = ftz.then(FlushDenormals::new);
                    (imp.forward)(act, xs, ys);
                }
                check_forward(act, &imp.name, ftz, xs, ys, &refs, &mut worst[a][i]);
            }
        }
    }
    for (act, row) in acts.iter().zip(&worst) {
        for (imp, w) in impls.iter().zip(row) {
            println!(
                "ftz {ftz:5} {:8} {:12} max abs error {:.2e} at x = {:e}",
                format!("{act:?}"),
                imp.name,
                w.err,
                w.at
            );
        }
    }
}

/// Measured (AVX2 CPU, `--nocapture`): sigmoid 8.9e-8 (SIMD at both levels
/// and the twin), tanh 3.0e-7 (SIMD: a rational approximation) and 9.9e-8
/// (twin); relu exact.
#[test]
fn forward_vs_f64_without_ftz() {
    assert!(
        !FlushDenormals::active(),
        "the test thread starts without FTZ"
    );
    forward_sweep(false);
}

/// The same sweep with FTZ and DAZ set: subnormal inputs read as zero and
/// subnormal results flush, which moves nothing by more than 1.2e-38.
#[test]
fn forward_vs_f64_with_ftz() {
    forward_sweep(true);
}

/// The exact values the documentation promises, with and without FTZ.
#[test]
fn special_values_exact() {
    use Activation::{Relu, Sigmoid, Tanh};
    let cases: &[(Activation, f32, f32)] = &[
        (Sigmoid, 0.0, 0.5),
        (Sigmoid, -0.0, 0.5),
        (Sigmoid, f32::INFINITY, 1.0),
        (Sigmoid, 1e30, 1.0),
        (Tanh, 0.0, 0.0),
        (Tanh, f32::INFINITY, 1.0),
        (Tanh, f32::NEG_INFINITY, -1.0),
        (Tanh, 89.0, 1.0),
        (Tanh, -89.0, -1.0),
        (Tanh, 1e30, 1.0),
        (Tanh, -1e30, -1.0),
        (Relu, f32::NEG_INFINITY, 0.0),
        (Relu, f32::INFINITY, f32::INFINITY),
        (Relu, -1e-45, 0.0),
        (Relu, 1e-40, 1e-40),
    ];
    let mut failures = Vec::new();
    for ftz in [false, true] {
        for imp in impls() {
            for &(act, x, want) in cases {
                let mut y = [f32::NAN];
                {
                    let _flush = ftz.then(FlushDenormals::new);
                    (imp.forward)(act, &[x], &mut y);
                }
                // Under DAZ, relu may read a subnormal input as zero.
                if ftz && x.is_subnormal() {
                    continue;
                }
                if y[0].to_bits() != want.to_bits() {
                    failures.push(format!(
                        "{act:?} ({}, ftz {ftz}) of {x:e} = {:e}, want {want:e}",
                        imp.name, y[0]
                    ));
                }
            }
            let mut y = [0.0f32];
            (imp.forward)(Tanh, &[-0.0], &mut y);
            assert_eq!(
                y[0].to_bits(),
                (-0.0f32).to_bits(),
                "tanh(-0) ({})",
                imp.name
            );
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `act'(x)` from the saved output `y = act(x)` (backward with `dy = 1`),
/// against the f64 derivative at `x`, for every finite input of a sweep of
/// every 1009th bit pattern plus the specials. Bound: 1e-6 abs (the error
/// of `y` passes through `d/dy y(1-y) = 1 - 2y` and `d/dy (1-y^2) = -2y`,
/// so at most twice the forward error plus rounding).
/// Measured: sigmoid 8.9e-8, tanh 6.0e-7 (SIMD) and 1.7e-7 (twin); relu exact.
#[test]
fn derivative_from_output_vs_f64() {
    let xs: Vec<f32> = (0..=u32::MAX)
        .step_by(1009)
        .map(f32::from_bits)
        .chain(specials())
        .filter(|x| x.is_finite())
        .collect();
    let ones = vec![1.0f32; xs.len()];
    let mut y = vec![0.0f32; xs.len()];
    let mut d = vec![0.0f32; xs.len()];
    for imp in impls() {
        for act in [Activation::Sigmoid, Activation::Tanh, Activation::Relu] {
            (imp.forward)(act, &xs, &mut y);
            (imp.backward)(act, &y, &ones, &mut d);
            let mut worst = 0.0f64;
            for ((&x, &y), &d) in xs.iter().zip(&y).zip(&d) {
                let x64 = f64::from(x);
                let want = match act {
                    Activation::Sigmoid => sigmoid64(x64) * (1.0 - sigmoid64(x64)),
                    Activation::Tanh => 1.0 - x64.tanh().powi(2),
                    Activation::Relu => f64::from(u8::from(x > 0.0)),
                };
                let err = (f64::from(d) - want).abs();
                worst = worst.max(err);
                assert!(
                    err <= 1e-6,
                    "{act:?}' ({}) at x = {x:e} (y = {y:e}): {d:e} vs {want:e}",
                    imp.name
                );
                if act == Activation::Relu {
                    assert_eq!(f64::from(d), want, "relu' ({}) at {x:e}", imp.name);
                }
            }
            println!(
                "{act:?}' ({}) from output: max abs error {worst:.2e}",
                imp.name
            );
        }
    }
}

/// `dx = dy * act'(y)` against the same formula in f64 on the same `y`, for
/// gradients `dy` from 1e-3 to 1e3 in magnitude. Bound: `|dx - exact| <=
/// 2 * 2^-23 * |dy|` (at most three roundings of values no larger than
/// `|dy|`: the SIMD form rounds the fused `1 - y^2` and the product, the
/// scalar twin also `y * y`). Measured: 0.49 * 2^-23 * |dy| (SIMD), 0.54 (twin).
#[test]
fn backward_vs_f64_formula() {
    let acts = [Activation::Sigmoid, Activation::Tanh, Activation::Relu];
    let xs: Vec<f32> = (-20 * 64..=20 * 64).map(|i| i as f32 / 64.0).collect();
    let dys: Vec<f32> = (0..xs.len())
        .map(|i| [1e-3, -0.37, 1.0, 7.5, -1e3][i % 5])
        .collect();
    let mut y = vec![0.0f32; xs.len()];
    let mut dx = vec![0.0f32; xs.len()];
    for imp in impls() {
        for act in acts {
            (imp.forward)(act, &xs, &mut y);
            (imp.backward)(act, &y, &dys, &mut dx);
            let mut worst = 0.0f64;
            for ((&y, &dy), &dx) in y.iter().zip(&dys).zip(&dx) {
                let (y64, dy64) = (f64::from(y), f64::from(dy));
                let want = dy64
                    * match act {
                        Activation::Sigmoid => y64 * (1.0 - y64),
                        Activation::Tanh => 1.0 - y64 * y64,
                        Activation::Relu => f64::from(u8::from(y > 0.0)),
                    };
                let err = (f64::from(dx) - want).abs() / (dy64.abs() * f64::from(f32::EPSILON));
                worst = worst.max(err);
                assert!(
                    err <= 2.0,
                    "{act:?} backward ({}) y = {y:e}, dy = {dy:e}: {dx:e} vs {want:e}",
                    imp.name
                );
            }
            println!(
                "{act:?} backward ({}): max error {worst:.2} * 2^-23 * |dy|",
                imp.name
            );
        }
    }
}

/// `sigmoid(-inf) == 0` exactly, with and without FTZ (the saturation the
/// documentation promises; `sigmoid(x)` for `x < -103.98` rounds to 0).
#[test]
fn sigmoid_of_minus_inf_is_zero() {
    for ftz in [false, true] {
        for imp in impls() {
            let mut y = [f32::NAN];
            {
                let _flush = ftz.then(FlushDenormals::new);
                (imp.forward)(Activation::Sigmoid, &[f32::NEG_INFINITY], &mut y);
            }
            assert_eq!(
                y[0], 0.0,
                "sigmoid(-inf) ({}, ftz {ftz}) = {:e}",
                imp.name, y[0]
            );
        }
    }
}
