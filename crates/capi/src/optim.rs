//! Optimizers (`torch.optim.SGD`, `Adam`/`AdamW`, `RMSprop`) as handles that
//! update a model's parameters from a trainer's gradients.

use rnn_models::optim::{
    Adam, AdamConfig, Optimizer, RmsProp, RmsPropConfig, Sgd, SgdConfig, check_finite,
};

use crate::args;
use crate::error::{Error, Result, guard, guard_value, rnn_status};
use crate::model::{give, rnn_model};
use crate::train::rnn_trainer;

/// SGD hyper-parameters (`torch.optim.SGD`); `rnn_sgd_config_init` fills
/// PyTorch's defaults.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct rnn_sgd_config {
    /// Learning rate (>= 0).
    pub lr: f64,
    /// Momentum factor (default 0: plain SGD).
    pub momentum: f64,
    /// Dampening of the momentum (default 0).
    pub dampening: f64,
    /// L2 penalty added to the gradient (default 0).
    pub weight_decay: f64,
    /// 1: Nesterov momentum (needs momentum > 0 and dampening 0); 0: not.
    pub nesterov: u32,
}

/// Adam / AdamW hyper-parameters (`torch.optim.Adam`, `AdamW`);
/// `rnn_adam_config_init` fills Adam's defaults. For AdamW set `decoupled =
/// 1` and `weight_decay` (PyTorch's AdamW default is 1e-2).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct rnn_adam_config {
    /// Learning rate (default 1e-3).
    pub lr: f64,
    /// First-moment decay, in [0, 1) (default 0.9).
    pub beta1: f64,
    /// Second-moment decay, in [0, 1) (default 0.999).
    pub beta2: f64,
    /// Added to the denominator (default 1e-8).
    pub eps: f64,
    /// Weight decay (default 0): an L2 term in the gradient, or with
    /// `decoupled` a decay `p *= 1 - lr*wd` (AdamW).
    pub weight_decay: f64,
    /// 1: decoupled weight decay (AdamW); 0: Adam.
    pub decoupled: u32,
}

/// RMSProp hyper-parameters (`torch.optim.RMSprop`); `rnn_rmsprop_config_init`
/// fills PyTorch's defaults.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct rnn_rmsprop_config {
    /// Learning rate (default 1e-2).
    pub lr: f64,
    /// Decay of the squared-gradient average, in [0, 1] (default 0.99).
    pub alpha: f64,
    /// Added to the denominator (default 1e-8).
    pub eps: f64,
    /// L2 penalty added to the gradient (default 0).
    pub weight_decay: f64,
    /// Momentum factor (default 0).
    pub momentum: f64,
    /// 1: centered (normalise by the variance estimate); 0: not.
    pub centered: u32,
}

/// An optimizer with its state (opaque). Made by `rnn_optimizer_new_sgd`,
/// `_adam` or `_rmsprop`; freed by `rnn_optimizer_free`. Its state is sized
/// at the first step for the model it steps: use one optimizer per model.
/// One optimizer must not be used by two threads at once.
#[allow(non_camel_case_types)]
pub struct rnn_optimizer(Box<dyn Optimizer>);

impl rnn_optimizer {
    /// One update of `m`'s parameters from `t`'s gradients.
    pub(crate) fn step(&mut self, m: &mut rnn_model, t: &rnn_trainer) -> Result<()> {
        t.check_model(m)?;
        let grads = t.param_grads()?;
        check_grads_finite(grads)?;
        self.0.step(m.net.params_mut(), grads.as_slice())?;
        m.touch();
        Ok(())
    }
}

fn check_lr(lr: f64) -> Result<()> {
    if !lr.is_finite() || lr < 0.0 {
        return Err(Error::invalid(format!(
            "lr = {lr}: must be finite and >= 0"
        )));
    }
    Ok(())
}

/// Fills `*config` with PyTorch's SGD defaults at learning rate `lr`
/// (no momentum, dampening, weight decay or Nesterov).
///
/// Errors: `RNN_STATUS_NULL_POINTER` (config). Thread-safe.
///
/// # Safety
/// `config` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnn_sgd_config_init(config: *mut rnn_sgd_config, lr: f64) -> rnn_status {
    guard("rnn_sgd_config_init", || {
        let c = SgdConfig::new(lr);
        let c = rnn_sgd_config {
            lr: c.lr,
            momentum: c.momentum,
            dampening: c.dampening,
            weight_decay: c.weight_decay,
            nesterov: c.nesterov.into(),
        };
        // SAFETY: NULL or writable, by this function's contract.
        unsafe { args::write_out(config, c, "config") }
    })
}

/// Fills `*config` with PyTorch's Adam defaults at learning rate `lr`
/// (betas 0.9, 0.999, eps 1e-8, no weight decay, not decoupled).
///
/// Errors: `RNN_STATUS_NULL_POINTER` (config). Thread-safe.
///
/// # Safety
/// `config` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnn_adam_config_init(config: *mut rnn_adam_config, lr: f64) -> rnn_status {
    guard("rnn_adam_config_init", || {
        let c = AdamConfig::new(lr);
        let c = rnn_adam_config {
            lr: c.lr,
            beta1: c.beta1,
            beta2: c.beta2,
            eps: c.eps,
            weight_decay: c.weight_decay,
            decoupled: c.decoupled.into(),
        };
        // SAFETY: NULL or writable, by this function's contract.
        unsafe { args::write_out(config, c, "config") }
    })
}

/// Fills `*config` with PyTorch's RMSprop defaults at learning rate `lr`
/// (alpha 0.99, eps 1e-8, no weight decay or momentum, not centered).
///
/// Errors: `RNN_STATUS_NULL_POINTER` (config). Thread-safe.
///
/// # Safety
/// `config` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnn_rmsprop_config_init(
    config: *mut rnn_rmsprop_config,
    lr: f64,
) -> rnn_status {
    guard("rnn_rmsprop_config_init", || {
        let c = RmsPropConfig::new(lr);
        let c = rnn_rmsprop_config {
            lr: c.lr,
            alpha: c.alpha,
            eps: c.eps,
            weight_decay: c.weight_decay,
            momentum: c.momentum,
            centered: c.centered.into(),
        };
        // SAFETY: NULL or writable, by this function's contract.
        unsafe { args::write_out(config, c, "config") }
    })
}

/// Boxes a new optimizer into `*out` after checking `out` and `config`.
///
/// # Safety
/// `config` is NULL or points to a `C`; `out` is NULL or writable.
unsafe fn new_optimizer<C: Copy>(
    config: *const C,
    out: *mut *mut rnn_optimizer,
    make: impl FnOnce(C) -> Result<Box<dyn Optimizer>>,
) -> Result<()> {
    // SAFETY: NULL or writable, by this function's contract.
    let out = unsafe { args::out_ptr(out, std::ptr::null_mut(), "out") }?;
    // SAFETY: NULL or a live config, by this function's contract.
    let config = *unsafe { args::handle(config, "config") }?;
    let opt = make(config)?;
    // SAFETY: `out` checked above.
    unsafe { give(out, rnn_optimizer(opt)) };
    Ok(())
}

/// Creates an SGD optimizer. On success `*out` is a new optimizer owned by
/// the caller (free it with `rnn_optimizer_free`); on failure NULL.
///
/// Errors: `RNN_STATUS_NULL_POINTER` (config, out),
/// `RNN_STATUS_INVALID_ARGUMENT` (a negative or non-finite value, a flag not
/// 0/1, Nesterov without momentum or with dampening). Thread-safe.
///
/// # Safety
/// `config` is NULL or points to an `rnn_sgd_config`; `out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnn_optimizer_new_sgd(
    config: *const rnn_sgd_config,
    out: *mut *mut rnn_optimizer,
) -> rnn_status {
    guard("rnn_optimizer_new_sgd", || {
        // SAFETY: this function's contract is new_optimizer's.
        unsafe {
            new_optimizer(config, out, |c: rnn_sgd_config| {
                let c = SgdConfig {
                    lr: c.lr,
                    momentum: c.momentum,
                    dampening: c.dampening,
                    weight_decay: c.weight_decay,
                    nesterov: args::flag(c.nesterov, "nesterov")?,
                };
                Ok(Box::new(Sgd::new(c)?))
            })
        }
    })
}

/// Creates an Adam (or, with `decoupled = 1`, AdamW) optimizer. On success
/// `*out` is a new optimizer owned by the caller; on failure NULL.
///
/// Errors: `RNN_STATUS_NULL_POINTER` (config, out),
/// `RNN_STATUS_INVALID_ARGUMENT` (a value out of range, a flag not 0/1).
/// Thread-safe.
///
/// # Safety
/// `config` is NULL or points to an `rnn_adam_config`; `out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnn_optimizer_new_adam(
    config: *const rnn_adam_config,
    out: *mut *mut rnn_optimizer,
) -> rnn_status {
    guard("rnn_optimizer_new_adam", || {
        // SAFETY: this function's contract is new_optimizer's.
        unsafe {
            new_optimizer(config, out, |c: rnn_adam_config| {
                let c = AdamConfig {
                    lr: c.lr,
                    beta1: c.beta1,
                    beta2: c.beta2,
                    eps: c.eps,
                    weight_decay: c.weight_decay,
                    decoupled: args::flag(c.decoupled, "decoupled")?,
                };
                Ok(Box::new(Adam::new(c)?))
            })
        }
    })
}

/// Creates an RMSProp optimizer. On success `*out` is a new optimizer owned
/// by the caller; on failure NULL.
///
/// Errors: `RNN_STATUS_NULL_POINTER` (config, out),
/// `RNN_STATUS_INVALID_ARGUMENT` (a value out of range, a flag not 0/1).
/// Thread-safe.
///
/// # Safety
/// `config` is NULL or points to an `rnn_rmsprop_config`; `out` NULL or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnn_optimizer_new_rmsprop(
    config: *const rnn_rmsprop_config,
    out: *mut *mut rnn_optimizer,
) -> rnn_status {
    guard("rnn_optimizer_new_rmsprop", || {
        // SAFETY: this function's contract is new_optimizer's.
        unsafe {
            new_optimizer(config, out, |c: rnn_rmsprop_config| {
                let c = RmsPropConfig {
                    lr: c.lr,
                    alpha: c.alpha,
                    eps: c.eps,
                    weight_decay: c.weight_decay,
                    momentum: c.momentum,
                    centered: args::flag(c.centered, "centered")?,
                };
                Ok(Box::new(RmsProp::new(c)?))
            })
        }
    })
}

/// Updates `m`'s parameters from the gradients of `t`'s last backward (after
/// any clipping). Invalidates `t`'s tape (run forward again before
/// backward).
///
/// Errors: `RNN_STATUS_NULL_POINTER` (opt, m, t), `RNN_STATUS_INVALID_ARGUMENT`
/// (no backward yet; a trainer of another model), `RNN_STATUS_SHAPE_MISMATCH`
/// (the optimizer's state was sized for a model with another parameter
/// count), `RNN_STATUS_NUMERICAL` (a non-finite gradient),
/// `RNN_STATUS_OUT_OF_MEMORY` (the optimizer's state, allocated at its first
/// step: one or two buffers the size of the parameters); nothing is changed
/// on error. Needs exclusive access to the optimizer and the model.
///
/// # Safety
/// `opt`, `m` are NULL or live handles used by no other thread; `t` NULL or
/// a live trainer no thread is changing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnn_optimizer_step(
    opt: *mut rnn_optimizer,
    m: *mut rnn_model,
    t: *const rnn_trainer,
) -> rnn_status {
    guard("rnn_optimizer_step", || {
        // SAFETY: NULL or live handles, exclusive where mutable, by this
        // function's contract.
        let (opt, m, t) = unsafe {
            (
                args::handle_mut(opt, "opt")?,
                args::handle_mut(m, "m")?,
                args::handle(t, "t")?,
            )
        };
        opt.step(m, t)
    })
}

/// Writes the learning rate to `*lr`.
///
/// Errors: `RNN_STATUS_NULL_POINTER` (opt, lr).
///
/// # Safety
/// `opt` is NULL or a live optimizer no thread is changing; `lr` NULL or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnn_optimizer_lr(opt: *const rnn_optimizer, lr: *mut f64) -> rnn_status {
    guard("rnn_optimizer_lr", || {
        // SAFETY: NULL or a live optimizer, by this function's contract.
        let opt = unsafe { args::handle(opt, "opt") }?;
        // SAFETY: NULL or writable, by this function's contract.
        unsafe { args::write_out(lr, opt.0.lr(), "lr") }
    })
}

/// Sets the learning rate (for schedules); the state is kept.
///
/// Errors: `RNN_STATUS_NULL_POINTER` (opt), `RNN_STATUS_INVALID_ARGUMENT` (lr
/// negative or not finite). Needs exclusive access to the optimizer.
///
/// # Safety
/// `opt` is NULL or a live optimizer used by no other thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnn_optimizer_set_lr(opt: *mut rnn_optimizer, lr: f64) -> rnn_status {
    guard("rnn_optimizer_set_lr", || {
        // SAFETY: NULL or a live, exclusive optimizer, by this function's contract.
        let opt = unsafe { args::handle_mut(opt, "opt") }?;
        check_lr(lr)?;
        opt.0.set_lr(lr);
        Ok(())
    })
}

/// Forgets the optimizer's state (moments, step count), as if new.
///
/// Errors: `RNN_STATUS_NULL_POINTER` (opt). Needs exclusive access.
///
/// # Safety
/// `opt` is NULL or a live optimizer used by no other thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnn_optimizer_reset(opt: *mut rnn_optimizer) -> rnn_status {
    guard("rnn_optimizer_reset", || {
        // SAFETY: NULL or a live, exclusive optimizer, by this function's contract.
        let opt = unsafe { args::handle_mut(opt, "opt") }?;
        opt.0.reset();
        Ok(())
    })
}

/// Frees an optimizer. NULL is accepted.
///
/// # Safety
/// `opt` is NULL or an optimizer from this library, not yet freed nor in use.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rnn_optimizer_free(opt: *mut rnn_optimizer) {
    // SAFETY: NULL or a handle of this library, not yet freed nor in use,
    // by this function's contract.
    guard_value((), || unsafe { args::free_handle(opt) })
}

/// Checks every gradient is finite; the error names the first tensor and
/// element that is not.
pub(crate) fn check_grads_finite(grads: &rnn_models::Params) -> Result<()> {
    check_finite(grads, "gradients (parameters not updated)").map_err(Error::from)
}
