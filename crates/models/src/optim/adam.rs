//! Adam and AdamW (`torch.optim.Adam`, `torch.optim.AdamW`).

use super::check_hyper;
use super::stateful::{Rule, STATE_BUFFERS, State, Stateful};
use crate::error::Result;

/// Adam (Kingma and Ba 2015) with PyTorch's bias correction:
/// `m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
/// p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)`;
/// AdamW first applies `p *= 1 - lr wd`.
pub type Adam = Stateful<AdamConfig>;

/// Adam / AdamW hyper-parameters (PyTorch's defaults via [`AdamConfig::new`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig {
    /// Learning rate (default 1e-3).
    pub lr: f64,
    /// First-moment decay, in `[0, 1)` (default 0.9).
    pub beta1: f64,
    /// Second-moment decay, in `[0, 1)` (default 0.999).
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

/// State: the first and second moments `m`, `v`.
impl Rule for AdamConfig {
    fn buffers(&self) -> [bool; STATE_BUFFERS] {
        [true, true, false]
    }

    fn check(&self) -> Result<()> {
        check_hyper("lr", self.lr, 0.0, f64::MAX)?;
        check_hyper("beta1", self.beta1, 0.0, 0.999_999_999)?;
        check_hyper("beta2", self.beta2, 0.0, 0.999_999_999)?;
        check_hyper("eps", self.eps, 0.0, f64::MAX)?;
        check_hyper("weight_decay", self.weight_decay, 0.0, f64::MAX)
    }

    fn lr_mut(&mut self) -> &mut f64 {
        &mut self.lr
    }

    fn apply(&self, step: u64, params: &mut [f32], grads: &[f32], [m, v, _]: State<'_>) {
        let c = self;
        let t = step as i32;
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
}
