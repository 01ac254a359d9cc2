//! Adam and AdamW (`torch.optim.Adam`, `torch.optim.AdamW`).

use super::{Optimizer, check_hyper, size_state};
use crate::error::Result;

/// Adam / AdamW hyper-parameters (PyTorch's defaults via [`AdamConfig::new`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig {
    /// Learning rate (default 1e-3).
    pub lr: f64,
    /// First-moment decay (default 0.9).
    pub beta1: f64,
    /// Second-moment decay (default 0.999).
    pub beta2: f64,
    /// Added to the denominator (default 1e-8).
    pub eps: f64,
    /// Weight decay: an L2 term in the gradient for Adam, a decoupled
    /// `p *= 1 - lr wd` for AdamW (default 0 for Adam, 1e-2 for AdamW).
    pub weight_decay: f64,
    /// Decoupled weight decay (AdamW).
    pub decoupled: bool,
}

impl AdamConfig {
    /// Adam with PyTorch's defaults at `lr`.
    pub fn new(lr: f64) -> Self {
        Self {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled: false,
        }
    }

    /// AdamW with PyTorch's defaults at `lr` (weight decay 1e-2).
    pub fn adamw(lr: f64) -> Self {
        Self {
            weight_decay: 1e-2,
            decoupled: true,
            ..Self::new(lr)
        }
    }
}

/// Adam (Kingma and Ba 2015) with PyTorch's bias correction:
/// `m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
/// p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)`;
/// AdamW first applies `p *= 1 - lr wd`.
#[derive(Clone, Debug)]
pub struct Adam {
    config: AdamConfig,
    m: Vec<f32>,
    v: Vec<f32>,
    t: u32,
}

impl Adam {
    /// Errors: a hyper-parameter out of range (betas in `[0, 1)`).
    pub fn new(config: AdamConfig) -> Result<Self> {
        check_hyper("lr", config.lr, 0.0, f64::MAX)?;
        check_hyper("beta1", config.beta1, 0.0, 0.999_999_999)?;
        check_hyper("beta2", config.beta2, 0.0, 0.999_999_999)?;
        check_hyper("eps", config.eps, 0.0, f64::MAX)?;
        check_hyper("weight_decay", config.weight_decay, 0.0, f64::MAX)?;
        Ok(Self {
            config,
            m: Vec::new(),
            v: Vec::new(),
            t: 0,
        })
    }
}

impl Optimizer for Adam {
    fn begin(&mut self, len: usize) -> Result<()> {
        size_state(len, &mut [&mut self.m, &mut self.v])?;
        self.t += 1;
        Ok(())
    }

    fn update(&mut self, offset: usize, params: &mut [f32], grads: &[f32]) {
        let c = self.config;
        let t = self.t as i32;
        // Scalars computed in f64 and rounded to f32, as PyTorch does with
        // its Python floats.
        let step_size = (c.lr / (1.0 - c.beta1.powi(t))) as f32;
        let bc2_sqrt = (1.0 - c.beta2.powi(t)).sqrt() as f32;
        let decay = (1.0 - c.lr * c.weight_decay) as f32;
        let (b1, b2, eps, wd) = (
            c.beta1 as f32,
            c.beta2 as f32,
            c.eps as f32,
            c.weight_decay as f32,
        );
        let (one_minus_b1, one_minus_b2) = ((1.0 - c.beta1) as f32, (1.0 - c.beta2) as f32);
        let (m, v) = (&mut self.m[offset..], &mut self.v[offset..]);
        for (k, (p, &g)) in params.iter_mut().zip(grads).enumerate() {
            let mut g = g;
            if c.decoupled {
                *p *= decay;
            } else {
                g += wd * *p;
            }
            let (m, v) = (&mut m[k], &mut v[k]);
            *m = b1 * *m + one_minus_b1 * g;
            *v = b2 * *v + one_minus_b2 * g * g;
            let denom = v.sqrt() / bc2_sqrt + eps;
            *p -= step_size * *m / denom;
        }
    }

    fn lr(&self) -> f64 {
        self.config.lr
    }

    fn set_lr(&mut self, lr: f64) {
        self.config.lr = lr;
    }

    fn reset(&mut self) {
        self.m.clear();
        self.v.clear();
        self.t = 0;
    }
}
