//! Stochastic gradient descent with momentum, Nesterov momentum, dampening
//! and weight decay (`torch.optim.SGD`).

use super::{Optimizer, check_hyper, size_state};
use crate::error::{Error, Result};

/// SGD hyper-parameters (PyTorch's defaults except `lr`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdConfig {
    /// Learning rate.
    pub lr: f64,
    /// Momentum factor (0 = plain SGD).
    pub momentum: f64,
    /// Dampening of the momentum.
    pub dampening: f64,
    /// L2 penalty added to the gradient.
    pub weight_decay: f64,
    /// Nesterov momentum (needs `momentum > 0` and `dampening == 0`).
    pub nesterov: bool,
}

impl SgdConfig {
    /// Plain SGD at `lr`.
    pub fn new(lr: f64) -> Self {
        Self {
            lr,
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
        }
    }
}

/// `torch.optim.SGD`:
/// `g += wd p; b = mu b + (1 - damp) g (b = g at the first step);
/// g = nesterov ? g + mu b : b; p -= lr g`.
#[derive(Clone, Debug)]
pub struct Sgd {
    config: SgdConfig,
    momentum_buf: Vec<f32>,
    /// Steps begun so far.
    steps: u64,
}

impl Sgd {
    /// Errors: a negative or non-finite hyper-parameter, Nesterov without
    /// momentum or with dampening.
    pub fn new(config: SgdConfig) -> Result<Self> {
        check_hyper("lr", config.lr, 0.0, f64::MAX)?;
        check_hyper("momentum", config.momentum, 0.0, f64::MAX)?;
        check_hyper("dampening", config.dampening, 0.0, f64::MAX)?;
        check_hyper("weight_decay", config.weight_decay, 0.0, f64::MAX)?;
        if config.nesterov && (config.momentum <= 0.0 || config.dampening != 0.0) {
            return Err(Error::Config(
                "Nesterov momentum requires a momentum and zero dampening".into(),
            ));
        }
        Ok(Self {
            config,
            momentum_buf: Vec::new(),
            steps: 0,
        })
    }
}

impl Optimizer for Sgd {
    fn begin(&mut self, len: usize) -> Result<()> {
        if self.config.momentum != 0.0 {
            size_state(len, &mut [&mut self.momentum_buf])?;
        }
        self.steps += 1;
        Ok(())
    }

    fn update(&mut self, offset: usize, params: &mut [f32], grads: &[f32]) {
        let c = self.config;
        let first = self.steps == 1;
        // Scalars as PyTorch uses them: Python floats rounded to f32.
        let (lr, momentum, wd) = (c.lr as f32, c.momentum as f32, c.weight_decay as f32);
        let one_minus_damp = (1.0 - c.dampening) as f32;
        for (k, (p, &g)) in params.iter_mut().zip(grads).enumerate() {
            let mut g = g + wd * *p;
            if c.momentum != 0.0 {
                let b = &mut self.momentum_buf[offset + k];
                *b = if first {
                    g
                } else {
                    momentum * *b + one_minus_damp * g
                };
                g = if c.nesterov { g + momentum * *b } else { *b };
            }
            *p -= lr * g;
        }
    }

    fn lr(&self) -> f64 {
        self.config.lr
    }

    fn set_lr(&mut self, lr: f64) {
        self.config.lr = lr;
    }

    fn reset(&mut self) {
        self.momentum_buf.clear();
        self.steps = 0;
    }
}
