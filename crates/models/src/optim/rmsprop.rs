//! RMSProp (`torch.optim.RMSprop`), with momentum and the centered variant.

use super::{Optimizer, check_hyper, size_state};
use crate::error::Result;

/// RMSProp hyper-parameters (PyTorch's defaults via [`RmsPropConfig::new`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RmsPropConfig {
    /// Learning rate (default 1e-2).
    pub lr: f64,
    /// Decay of the squared-gradient average (default 0.99).
    pub alpha: f64,
    /// Added to the denominator (default 1e-8).
    pub eps: f64,
    /// L2 penalty added to the gradient (default 0).
    pub weight_decay: f64,
    /// Momentum factor (default 0).
    pub momentum: f64,
    /// Normalise by the variance estimate instead of the second moment.
    pub centered: bool,
}

impl RmsPropConfig {
    /// RMSProp with PyTorch's defaults at `lr`.
    pub fn new(lr: f64) -> Self {
        Self {
            lr,
            alpha: 0.99,
            eps: 1e-8,
            weight_decay: 0.0,
            momentum: 0.0,
            centered: false,
        }
    }
}

/// `g += wd p; s = a s + (1 - a) g^2; (centered: m = a m + (1 - a) g,
/// s' = s - m^2); d = sqrt(s') + eps; momentum: b = mu b + g / d, p -= lr b;
/// else p -= lr g / d`.
#[derive(Clone, Debug)]
pub struct RmsProp {
    config: RmsPropConfig,
    square_avg: Vec<f32>,
    grad_avg: Vec<f32>,
    momentum_buf: Vec<f32>,
}

impl RmsProp {
    /// Errors: a hyper-parameter out of range (`alpha` in `[0, 1]`).
    pub fn new(config: RmsPropConfig) -> Result<Self> {
        check_hyper("lr", config.lr, 0.0, f64::MAX)?;
        check_hyper("alpha", config.alpha, 0.0, 1.0)?;
        check_hyper("eps", config.eps, 0.0, f64::MAX)?;
        check_hyper("weight_decay", config.weight_decay, 0.0, f64::MAX)?;
        check_hyper("momentum", config.momentum, 0.0, f64::MAX)?;
        Ok(Self {
            config,
            square_avg: Vec::new(),
            grad_avg: Vec::new(),
            momentum_buf: Vec::new(),
        })
    }
}

impl Optimizer for RmsProp {
    fn begin(&mut self, len: usize) -> Result<()> {
        size_state(len, &mut [&mut self.square_avg])?;
        if self.config.centered {
            size_state(len, &mut [&mut self.grad_avg])?;
        }
        if self.config.momentum > 0.0 {
            size_state(len, &mut [&mut self.momentum_buf])?;
        }
        Ok(())
    }

    fn update(&mut self, offset: usize, params: &mut [f32], grads: &[f32]) {
        let c = self.config;
        // Scalars computed in f64 and rounded to f32, as PyTorch does with
        // its Python floats.
        let one_minus_alpha = (1.0 - c.alpha) as f32;
        let (lr, alpha, eps, wd, momentum) = (
            c.lr as f32,
            c.alpha as f32,
            c.eps as f32,
            c.weight_decay as f32,
            c.momentum as f32,
        );
        for (k, (p, &g)) in params.iter_mut().zip(grads).enumerate() {
            let k = offset + k;
            let g = g + wd * *p;
            let s = &mut self.square_avg[k];
            *s = alpha * *s + one_minus_alpha * g * g;
            let var = if c.centered {
                let m = &mut self.grad_avg[k];
                *m = alpha * *m + one_minus_alpha * g;
                *s - *m * *m
            } else {
                *s
            };
            let denom = var.sqrt() + eps;
            if c.momentum > 0.0 {
                let b = &mut self.momentum_buf[k];
                *b = momentum * *b + g / denom;
                *p -= lr * *b;
            } else {
                *p -= lr * g / denom;
            }
        }
    }

    fn lr(&self) -> f64 {
        self.config.lr
    }

    fn set_lr(&mut self, lr: f64) {
        self.config.lr = lr;
    }

    fn reset(&mut self) {
        self.square_avg.clear();
        self.grad_avg.clear();
        self.momentum_buf.clear();
    }
}
