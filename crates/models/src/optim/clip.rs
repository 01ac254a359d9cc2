//! Gradient clipping and the NaN/Inf guard.

use crate::error::{Error, Result};
use crate::params::Params;

/// Scales `grads` so that their global L2 norm is at most `max_norm`
/// (`torch.nn.utils.clip_grad_norm_`: coefficient `max_norm / (norm + 1e-6)`
/// when below 1). Returns the norm before clipping (computed in f64).
pub fn clip_grad_norm(grads: &mut [f32], max_norm: f32) -> f32 {
    let norm = grads
        .iter()
        .map(|&g| (g as f64) * (g as f64))
        .sum::<f64>()
        .sqrt() as f32;
    let coef = max_norm / (norm + 1e-6);
    if coef < 1.0 {
        grads.iter_mut().for_each(|g| *g *= coef);
    }
    norm
}

/// [`clip_grad_norm`] over several gradient buffers taken together (one
/// global norm). Returns the norm before clipping.
pub fn clip_grad_norm_parts(parts: &mut [&mut [f32]], max_norm: f32) -> f32 {
    let sq: f64 = parts
        .iter()
        .flat_map(|p| p.iter())
        .map(|&g| (g as f64) * (g as f64))
        .sum();
    let norm = sq.sqrt() as f32;
    let coef = max_norm / (norm + 1e-6);
    if coef < 1.0 {
        parts
            .iter_mut()
            .for_each(|p| p.iter_mut().for_each(|g| *g *= coef));
    }
    norm
}

/// Clamps every gradient to `[-limit, limit]`
/// (`torch.nn.utils.clip_grad_value_`).
pub fn clip_grad_value(grads: &mut [f32], limit: f32) {
    grads.iter_mut().for_each(|g| *g = g.clamp(-limit, limit));
}

/// Checks that every value of `set` is finite; otherwise names the first
/// tensor and element that is not, and `context` (e.g. `"gradients at step
/// 120"`).
pub fn check_finite(set: &Params, context: &str) -> Result<()> {
    for (name, _, values) in set.iter() {
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFinite(format!(
                "{context}: {name}[{i}] = {}",
                values[i]
            )));
        }
    }
    Ok(())
}
