//! RMSProp (`torch.optim.RMSprop`), with momentum and the centered variant.

use super::check_hyper;
use super::stateful::{Rule, STATE_BUFFERS, State, Stateful};
use crate::error::Result;

/// `g += wd p; s = a s + (1 - a) g^2; (centered: m = a m + (1 - a) g,
/// s' = s - m^2); d = sqrt(s') + eps; momentum: b = mu b + g / d, p -= lr b;
/// else p -= lr g / d`.
pub type RmsProp = Stateful<RmsPropConfig>;

/// RMSProp hyper-parameters (PyTorch's defaults via [`RmsPropConfig::new`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RmsPropConfig {
    /// Learning rate (default 1e-2).
    pub lr: f64,
    /// Decay of the squared-gradient average, in `[0, 1]` (default 0.99).
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

/// State: the squared-gradient average `s`; the gradient average `m` when
/// centered; the momentum buffer `b` with a momentum.
impl Rule for RmsPropConfig {
    fn buffers(&self) -> [bool; STATE_BUFFERS] {
        [true, self.centered, self.momentum > 0.0]
    }

    fn check(&self) -> Result<()> {
        check_hyper("lr", self.lr, 0.0, f64::MAX)?;
        check_hyper("alpha", self.alpha, 0.0, 1.0)?;
        check_hyper("eps", self.eps, 0.0, f64::MAX)?;
        check_hyper("weight_decay", self.weight_decay, 0.0, f64::MAX)?;
        check_hyper("momentum", self.momentum, 0.0, f64::MAX)
    }

    fn lr_mut(&mut self) -> &mut f64 {
        &mut self.lr
    }

    fn apply(&self, _step: u64, params: &mut [f32], grads: &[f32], state: State<'_>) {
        let c = self;
        let [square_avg, grad_avg, momentum_buf] = state;
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
            let g = g + wd * *p;
            let s = &mut square_avg[k];
            *s = alpha * *s + one_minus_alpha * g * g;
            let var = if c.centered {
                let m = &mut grad_avg[k];
                *m = alpha * *m + one_minus_alpha * g;
                *s - *m * *m
            } else {
                *s
            };
            let denom = var.sqrt() + eps;
            if c.momentum > 0.0 {
                let b = &mut momentum_buf[k];
                *b = momentum * *b + g / denom;
                *p -= lr * *b;
            } else {
                *p -= lr * g / denom;
            }
        }
    }
}
