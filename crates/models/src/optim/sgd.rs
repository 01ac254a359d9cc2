//! Stochastic gradient descent with momentum, Nesterov momentum, dampening
//! and weight decay (`torch.optim.SGD`).

use super::check_hyper;
use super::stateful::{Rule, STATE_BUFFERS, State, Stateful};
use crate::error::{Error, Result};

/// `torch.optim.SGD`:
/// `g += wd p; b = mu b + (1 - damp) g (b = g at the first step);
/// g = nesterov ? g + mu b : b; p -= lr g`.
pub type Sgd = Stateful<SgdConfig>;

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

/// State: the momentum buffer `b`, with a momentum.
impl Rule for SgdConfig {
    fn buffers(&self) -> [bool; STATE_BUFFERS] {
        [self.momentum != 0.0, false, false]
    }

    fn check(&self) -> Result<()> {
        check_hyper("lr", self.lr, 0.0, f64::MAX)?;
        check_hyper("momentum", self.momentum, 0.0, f64::MAX)?;
        check_hyper("dampening", self.dampening, 0.0, f64::MAX)?;
        check_hyper("weight_decay", self.weight_decay, 0.0, f64::MAX)?;
        if self.nesterov && (self.momentum <= 0.0 || self.dampening != 0.0) {
            return Err(Error::Config(
                "Nesterov momentum requires a momentum and zero dampening".into(),
            ));
        }
        Ok(())
    }

    fn lr_mut(&mut self) -> &mut f64 {
        &mut self.lr
    }

    fn apply(&self, step: u64, params: &mut [f32], grads: &[f32], [momentum_buf, _, _]: State<'_>) {
        let c = self;
        let first = step == 1;
        // Scalars as PyTorch uses them: Python floats rounded to f32.
        let (lr, momentum, wd) = (c.lr as f32, c.momentum as f32, c.weight_decay as f32);
        let one_minus_damp = (1.0 - c.dampening) as f32;
        for (k, (p, &g)) in params.iter_mut().zip(grads).enumerate() {
            let mut g = g + wd * *p;
            if c.momentum != 0.0 {
                let b = &mut momentum_buf[k];
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
}
