//! Optimizers and gradient hygiene, on flat parameter buffers.
//!
//! A model's parameters and gradients each live in one contiguous buffer
//! ([`crate::Params`]), so an optimizer is a loop over two slices with its
//! state in slices of the same length. The update rules are PyTorch's
//! (`torch.optim.SGD`, `Adam`, `AdamW`, `RMSprop`), checked against
//! `torch.optim` on fixtures.

mod adam;
mod clip;
mod rmsprop;
mod sgd;

pub use adam::{Adam, AdamConfig};
pub use clip::{check_finite, clip_grad_norm, clip_grad_value};
pub use rmsprop::{RmsProp, RmsPropConfig};
pub use sgd::{Sgd, SgdConfig};

use crate::error::{Error, Result};

/// An update rule: `params -= f(grads, state)`.
pub trait Optimizer: Send {
    /// One update of `params` from `grads` (same length, one flat buffer).
    ///
    /// Errors: `params` and `grads` differ in length, or differ from the
    /// length of the first call (the state is sized then). Nothing is changed
    /// on error.
    fn step(&mut self, params: &mut [f32], grads: &[f32]) -> Result<()>;

    /// The learning rate.
    fn lr(&self) -> f32;

    /// Sets the learning rate (schedules).
    fn set_lr(&mut self, lr: f32);

    /// Forgets the state (moments, step count).
    fn reset(&mut self);
}

/// Checks lengths and sizes the state buffers on first use.
pub(crate) fn prepare(params: &[f32], grads: &[f32], state: &mut [&mut Vec<f32>]) -> Result<()> {
    if params.len() != grads.len() {
        return Err(Error::shape("grads", &[params.len()], &[grads.len()]));
    }
    for s in state.iter_mut() {
        if s.is_empty() {
            s.resize(params.len(), 0.0);
        } else if s.len() != params.len() {
            return Err(Error::shape("params", &[s.len()], &[params.len()]));
        }
    }
    Ok(())
}

/// Checks a hyper-parameter is finite and within `lo..=hi`.
pub(crate) fn check_hyper(name: &str, v: f32, lo: f32, hi: f32) -> Result<()> {
    if v.is_finite() && v >= lo && v <= hi {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "{name} = {v} is outside [{lo}, {hi}]"
        )))
    }
}
