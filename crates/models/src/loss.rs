//! Losses computed from predictions or logits, with their gradients, and the
//! sequence helpers that apply them per step or at the last valid step.
//!
//! Every loss is the **mean** over its elements (PyTorch's default
//! `reduction='mean'`), computed in f64; the gradient is written into a
//! caller's buffer of the input's shape.

use crate::error::{Error, Result, check_len};

/// Mean squared error `mean((pred - target)^2)`; `grad = 2 (pred - target) / n`.
/// `pred`, `target`, `grad`: same length (any shape). Errors: lengths differ, or empty.
pub fn mse(pred: &[f32], target: &[f32], grad: &mut [f32]) -> Result<f64> {
    elementwise_mean(("pred", pred), ("target", target), grad, |p, t| {
        let e = p - t;
        (e * e, 2.0 * e)
    })
}

/// Softmax cross-entropy from logits, `mean_i -log softmax(logits_i)[target_i]`
/// (max-subtracted, log-sum-exp in f64); `grad = (softmax - onehot) / N`.
/// `logits`, `grad`: `[N, C]`; `targets`: `[N]`, each `< C`.
/// Errors: shapes, a target out of range, `C = 0` or `N = 0`.
pub fn softmax_cross_entropy(
    logits: &[f32],
    classes: usize,
    targets: &[usize],
    grad: &mut [f32],
) -> Result<f64> {
    if classes == 0 {
        return Err(Error::ZeroSize { what: "classes" });
    }
    let n = targets.len();
    if n == 0 {
        return Err(Error::ZeroSize { what: "targets" });
    }
    check_len("logits", logits, &[n, classes])?;
    check_len("grad", grad, &[n, classes])?;
    if let Some((i, &t)) = targets.iter().enumerate().find(|&(_, &t)| t >= classes) {
        return Err(Error::Config(format!(
            "targets[{i}] = {t} >= number of classes {classes}"
        )));
    }
    let mut loss = 0.0;
    for ((row, g), &t) in logits
        .chunks_exact(classes)
        .zip(grad.chunks_exact_mut(classes))
        .zip(targets)
    {
        let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64;
        let sum: f64 = row.iter().map(|&v| (v as f64 - max).exp()).sum();
        let lse = max + sum.ln();
        loss += lse - row[t] as f64;
        for (k, (gk, &v)) in g.iter_mut().zip(row).enumerate() {
            let p = (v as f64 - lse).exp();
            *gk = ((p - if k == t { 1.0 } else { 0.0 }) / n as f64) as f32;
        }
    }
    Ok(loss / n as f64)
}

/// Binary cross-entropy from logits, `mean(max(x, 0) - x t + log(1 + exp(-|x|)))`;
/// `grad = (sigmoid(x) - t) / n`. `logits`, `targets`, `grad`: same length;
/// targets in `[0, 1]`. Errors: lengths differ, empty.
pub fn bce_with_logits(logits: &[f32], targets: &[f32], grad: &mut [f32]) -> Result<f64> {
    elementwise_mean(("logits", logits), ("targets", targets), grad, bce_term)
}

/// One element of the binary cross-entropy from logits, in f64: the loss
/// `max(x, 0) - x t + log(1 + exp(-|x|))` (stable for every `x`) and its
/// derivative w.r.t. the logit, `sigmoid(x) - t`.
pub(crate) fn bce_term(x: f64, t: f64) -> (f64, f64) {
    let loss = x.max(0.0) - x * t + (-x.abs()).exp().ln_1p();
    let s = 1.0 / (1.0 + (-x).exp());
    (loss, s - t)
}

/// The mean over elements of a loss `term(input_i, target_i)`, in f64,
/// and its gradient `grad_i = d term / d input_i / n`: the checks and the
/// loop of the losses that are a mean of a term per element (MSE, binary
/// cross-entropy). `term` gives an element's loss and its derivative; the
/// inputs come with their names for errors.
///
/// Errors: the target's or `grad`'s length differs from the input's, or the
/// input is empty.
fn elementwise_mean(
    (input_name, input): (&'static str, &[f32]),
    (target_name, target): (&str, &[f32]),
    grad: &mut [f32],
    term: impl Fn(f64, f64) -> (f64, f64),
) -> Result<f64> {
    check_len(target_name, target, &[input.len()])?;
    check_len("grad", grad, &[input.len()])?;
    if input.is_empty() {
        return Err(Error::ZeroSize { what: input_name });
    }
    let n = input.len() as f64;
    let mut loss = 0.0;
    for ((g, &x), &t) in grad.iter_mut().zip(input).zip(target) {
        let (term_loss, derivative) = term(x as f64, t as f64);
        loss += term_loss;
        *g = (derivative / n) as f32;
    }
    Ok(loss / n)
}

/// The output at each sequence's last valid step: `y` `[T, B, F]` to
/// `[B, F]` (step `lengths[b] - 1`, or `T - 1` without lengths).
/// Errors: shapes, a length outside `1..=T`.
pub fn last_step(
    y: &[f32],
    seq_len: usize,
    batch: usize,
    lengths: Option<&[usize]>,
    out: &mut Vec<f32>,
) -> Result<()> {
    let f = features(y, seq_len, batch)?;
    out.resize(batch * f, 0.0);
    for b in 0..batch {
        let t = last_index(seq_len, lengths, b)?;
        out[b * f..(b + 1) * f].copy_from_slice(&y[(t * batch + b) * f..(t * batch + b + 1) * f]);
    }
    Ok(())
}

/// The gradient of [`last_step`]: scatters `grad_last` `[B, F]` into
/// `grad_y` `[T, B, F]` (zero elsewhere, resized).
pub fn scatter_last_step(
    grad_last: &[f32],
    seq_len: usize,
    batch: usize,
    lengths: Option<&[usize]>,
    grad_y: &mut Vec<f32>,
) -> Result<()> {
    if batch == 0 || grad_last.len() % batch != 0 {
        return Err(Error::shape("grad_last", &[batch], &[grad_last.len()]));
    }
    let f = grad_last.len() / batch;
    grad_y.clear();
    grad_y.resize(seq_len * batch * f, 0.0);
    for b in 0..batch {
        let t = last_index(seq_len, lengths, b)?;
        grad_y[(t * batch + b) * f..(t * batch + b + 1) * f]
            .copy_from_slice(&grad_last[b * f..(b + 1) * f]);
    }
    Ok(())
}

fn features(y: &[f32], seq_len: usize, batch: usize) -> Result<usize> {
    let rows = seq_len * batch;
    if rows == 0 || y.len() % rows != 0 {
        return Err(Error::shape("y", &[seq_len, batch], &[y.len()]));
    }
    Ok(y.len() / rows)
}

fn last_index(seq_len: usize, lengths: Option<&[usize]>, b: usize) -> Result<usize> {
    match lengths {
        None => Ok(seq_len - 1),
        Some(l) => match l.get(b) {
            Some(&n) if (1..=seq_len).contains(&n) => Ok(n - 1),
            Some(&n) => Err(Error::Config(format!(
                "lengths[{b}] = {n} is outside 1..={seq_len}"
            ))),
            None => Err(Error::shape("lengths", &[b + 1], &[l.len()])),
        },
    }
}
