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
mod stateful;

pub use adam::{Adam, AdamConfig};
pub use clip::{check_finite, clip_grad_norm, clip_grad_norm_parts, clip_grad_value};
pub use rmsprop::{RmsProp, RmsPropConfig};
pub use sgd::{Sgd, SgdConfig};
pub use stateful::Stateful;

use crate::error::{Error, Result};

/// An update rule: `params -= f(grads, state)`.
///
/// One update is [`Optimizer::begin`] (sizes the state on first use, counts
/// the step) then [`Optimizer::update`] over the parameters, possibly in
/// several parts (a model made of several components); [`Optimizer::step`]
/// and [`Optimizer::step_parts`] do both.
pub trait Optimizer: Send {
    /// Starts an update of `len` parameters. Errors: `len` differs from the
    /// length the state was sized for.
    fn begin(&mut self, len: usize) -> Result<()>;

    /// Updates `params` (whose state starts at `offset`) from `grads` (same
    /// length). Call after [`Optimizer::begin`] covering `offset + len`.
    fn update(&mut self, offset: usize, params: &mut [f32], grads: &[f32]);

    /// One update of `params` from `grads` (same length, one flat buffer).
    ///
    /// Errors: lengths differ, or (optimizers with state) differ from the
    /// length the state was sized for. Nothing is changed on error.
    fn step(&mut self, params: &mut [f32], grads: &[f32]) -> Result<()> {
        if params.len() != grads.len() {
            return Err(Error::shape("grads", &[params.len()], &[grads.len()]));
        }
        self.begin(params.len())?;
        self.update(0, params, grads);
        Ok(())
    }

    /// One update of several `(params, grads)` parts, taken together as one
    /// concatenated buffer. Errors as [`Optimizer::step`].
    fn step_parts(&mut self, parts: &mut [(&mut [f32], &[f32])]) -> Result<()> {
        for (k, (p, g)) in parts.iter().enumerate() {
            if p.len() != g.len() {
                return Err(Error::shape(
                    format!("grads (part {k})"),
                    &[p.len()],
                    &[g.len()],
                ));
            }
        }
        self.begin(parts.iter().map(|(p, _)| p.len()).sum())?;
        let mut offset = 0;
        for (p, g) in parts.iter_mut() {
            self.update(offset, p, g);
            offset += p.len();
        }
        Ok(())
    }

    /// The learning rate.
    fn lr(&self) -> f64;

    /// Sets the learning rate (schedules).
    fn set_lr(&mut self, lr: f64);

    /// Forgets the state (moments, step count).
    fn reset(&mut self);
}

/// Checks a hyper-parameter is finite and within `lo..=hi`.
pub(crate) fn check_hyper(name: &str, v: f64, lo: f64, hi: f64) -> Result<()> {
    if v.is_finite() && v >= lo && v <= hi {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "{name} = {v} is outside [{lo}, {hi}]"
        )))
    }
}
