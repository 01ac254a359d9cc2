//! Finite-difference checks (in f64 on the loss, directional, f32 model) of
//! the dense head's backward and of every loss's gradient, plus the losses'
//! values against direct formulas and their bad-input errors.

use recurrent::Linear;
use recurrent::loss::{bce_with_logits, last_step, mse, scatter_last_step, softmax_cross_entropy};

mod common;

/// `n` deterministic values in [-scale, scale).
fn data(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    common::data(n, seed)
        .into_iter()
        .map(|v| v * scale)
        .collect()
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum()
}

fn rel(fd: f64, an: f64) -> f64 {
    (fd - an).abs() / fd.abs().max(an.abs()).max(1e-8)
}

/// Directional check of `f` at `p` along `v`: returns the relative error.
fn check(p: &[f32], v: &[f32], grad: &[f32], eps: f32, f: impl Fn(&[f32]) -> f64) -> f64 {
    let plus: Vec<f32> = p.iter().zip(v).map(|(a, d)| a + eps * d).collect();
    let minus: Vec<f32> = p.iter().zip(v).map(|(a, d)| a - eps * d).collect();
    // The step actually taken after rounding to f32.
    let taken: Vec<f32> = plus
        .iter()
        .zip(&minus)
        .map(|(a, b)| (a - b) / 2.0)
        .collect();
    let fd = (f(&plus) - f(&minus)) / 2.0;
    rel(fd, dot(grad, &taken))
}

#[test]
fn linear_backward_matches_finite_differences() {
    for bias in [true, false] {
        let (n, i, o) = (5, 7, 3);
        let head = Linear::new(i, o, bias, 4).unwrap();
        let x = data(n * i, 1, 1.0);
        let w = data(n * o, 2, 1.0); // loss = sum(y * w)
        let loss = |head: &Linear, x: &[f32]| {
            let mut y = Vec::new();
            head.forward(x, &mut y).unwrap();
            dot(&y, &w)
        };
        let mut dx = Vec::new();
        let mut grads = head.params().zeros_like();
        head.backward(&x, &w, &mut dx, &mut grads).unwrap();
        for seed in 0..4 {
            let v = data(x.len(), 10 + seed, 1.0);
            let e = check(&x, &v, &dx, 1e-2, |xp| loss(&head, xp));
            assert!(e < 1e-3, "dx: relative error {e}");
            let p = head.params().as_slice().to_vec();
            let v = data(p.len(), 20 + seed, 1.0);
            let e = check(&p, &v, grads.as_slice(), 1e-2, |pp| {
                let mut h = head.clone();
                h.params_mut().copy_from_slice(pp);
                loss(&h, &x)
            });
            assert!(e < 1e-3, "params (bias {bias}): relative error {e}");
        }
    }
}

#[test]
fn losses_match_finite_differences_and_formulas() {
    let n = 24;
    let pred = data(n, 3, 2.0);
    let target = data(n, 4, 1.0);
    let mut g = vec![0.0; n];
    let l = mse(&pred, &target, &mut g).unwrap();
    let direct = pred
        .iter()
        .zip(&target)
        .map(|(&p, &t)| (p as f64 - t as f64).powi(2))
        .sum::<f64>()
        / n as f64;
    assert!((l - direct).abs() < 1e-12);
    let e = check(&pred, &data(n, 5, 1.0), &g, 1e-2, |p| {
        mse(p, &target, &mut vec![0.0; n]).unwrap()
    });
    assert!(e < 1e-3, "mse: {e}");

    let (rows, classes) = (6, 4);
    let logits = data(rows * classes, 6, 3.0);
    let targets = [0usize, 3, 1, 2, 2, 0];
    let mut g = vec![0.0; rows * classes];
    let l = softmax_cross_entropy(&logits, classes, &targets, &mut g).unwrap();
    let direct: f64 = logits
        .chunks(classes)
        .zip(&targets)
        .map(|(r, &t)| {
            let lse = r.iter().map(|&v| (v as f64).exp()).sum::<f64>().ln();
            lse - r[t] as f64
        })
        .sum::<f64>()
        / rows as f64;
    assert!((l - direct).abs() < 1e-9, "{l} vs {direct}");
    let e = check(&logits, &data(rows * classes, 7, 1.0), &g, 1e-2, |p| {
        softmax_cross_entropy(p, classes, &targets, &mut vec![0.0; rows * classes]).unwrap()
    });
    assert!(e < 1e-3, "softmax cross-entropy: {e}");
    // Stable for huge logits.
    let mut g2 = vec![0.0; 2];
    let l = softmax_cross_entropy(&[1000.0, -1000.0], 2, &[1], &mut g2).unwrap();
    assert!((l - 2000.0).abs() < 1e-6 && g2.iter().all(|v| v.is_finite()));

    let logits = data(n, 8, 4.0);
    let targets: Vec<f32> = data(n, 9, 1.0).iter().map(|v| (v + 1.0) / 2.0).collect();
    let mut g = vec![0.0; n];
    let l = bce_with_logits(&logits, &targets, &mut g).unwrap();
    let direct: f64 = logits
        .iter()
        .zip(&targets)
        .map(|(&x, &t)| {
            let s = 1.0 / (1.0 + (-(x as f64)).exp());
            -(t as f64 * s.ln() + (1.0 - t as f64) * (1.0 - s).ln())
        })
        .sum::<f64>()
        / n as f64;
    assert!((l - direct).abs() < 1e-9, "{l} vs {direct}");
    let e = check(&logits, &data(n, 10, 1.0), &g, 1e-2, |p| {
        bce_with_logits(p, &targets, &mut vec![0.0; n]).unwrap()
    });
    assert!(e < 1e-3, "bce with logits: {e}");
    let mut g1 = [0.0];
    assert!(
        bce_with_logits(&[-200.0], &[1.0], &mut g1)
            .unwrap()
            .is_finite()
    );
}

#[test]
fn last_step_gathers_and_scatters_by_length() {
    let (t, b, f) = (4, 3, 2);
    let y: Vec<f32> = (0..t * b * f).map(|v| v as f32).collect();
    let lengths = [2, 4, 1];
    let mut last = Vec::new();
    last_step(&y, t, b, Some(&lengths), &mut last).unwrap();
    // Row b at step lengths[b] - 1: element ((t * B + b) * F).
    assert_eq!(last, vec![6.0, 7.0, 20.0, 21.0, 4.0, 5.0]);
    let mut gy = Vec::new();
    scatter_last_step(&[1.0; 6], t, b, Some(&lengths), &mut gy).unwrap();
    let ones: Vec<usize> = gy
        .iter()
        .enumerate()
        .filter(|(_, v)| **v == 1.0)
        .map(|(k, _)| k)
        .collect();
    assert_eq!(ones, vec![4, 5, 6, 7, 20, 21]);
    assert!(last_step(&y, t, b, Some(&[0, 1, 1]), &mut last).is_err());
    assert!(last_step(&y, t, b, Some(&[5, 1, 1]), &mut last).is_err());
}

#[test]
fn losses_reject_bad_shapes_and_targets() {
    let mut g = vec![0.0; 4];
    assert!(
        mse(&[1.0; 4], &[1.0; 3], &mut g)
            .unwrap_err()
            .to_string()
            .contains("target")
    );
    assert!(mse(&[], &[], &mut []).is_err());
    let err = softmax_cross_entropy(&[0.0; 4], 2, &[0, 2], &mut g)
        .unwrap_err()
        .to_string();
    assert!(err.contains("targets[1]"), "{err}");
    assert!(softmax_cross_entropy(&[0.0; 4], 0, &[0, 0], &mut g).is_err());
    assert!(
        bce_with_logits(&[0.0; 4], &[0.0; 4], &mut [0.0; 3])
            .unwrap_err()
            .to_string()
            .contains("grad")
    );
    let head = Linear::new(3, 2, true, 0).unwrap();
    assert!(
        head.forward(&[0.0; 7], &mut Vec::new())
            .unwrap_err()
            .to_string()
            .contains("x")
    );
    assert!(Linear::new(0, 2, true, 0).is_err());
}
