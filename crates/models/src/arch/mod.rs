//! The seed's four sequence architectures, composed from a [`Recurrent`]
//! network and a [`Linear`] read-out head:
//!
//! - [`SequenceClassifier`]: many-to-one (a class per sequence, from the
//!   final states), and [`SequenceRegressor`], its regression twin (values
//!   per sequence, e.g. tomorrow's price from a window of days; with
//!   [`WindowRegression`] it is an objective for [`crate::train::Trainer`]);
//! - [`SequenceTagger`]: many-to-many aligned (a class per step);
//! - [`SequenceGenerator`]: one-to-many (a sequence of values from one
//!   input vector);
//! - [`Seq2Seq`]: encoder-decoder (a sequence of symbols from another, of
//!   any length, through the encoder's final state).
//!
//! Each has a `train_step` (forward, loss, BPTT, NaN/Inf guard, optional
//! clipping, one optimizer update over all its parameters) and a prediction
//! method.

mod classifier;
mod generator;
mod regressor;
mod seq2seq;
mod tagger;

pub use classifier::SequenceClassifier;
pub use generator::SequenceGenerator;
pub use regressor::{SequenceRegressor, WindowRegression, gather_relative_windows, gather_windows};
pub use seq2seq::Seq2Seq;
pub use tagger::SequenceTagger;

use crate::config::NetConfig;
use crate::error::Result;
use crate::linear::Linear;
use crate::net::{Gradients, OutputGrads, Recurrent, Tape};
use crate::optim::{Optimizer, check_finite, clip_grad_norm_parts};
use crate::params::Params;

/// `tokens` (each `< vocab`) as one-hot rows `[N, vocab]`.
pub fn one_hot(tokens: &[usize], vocab: usize, out: &mut Vec<f32>) {
    out.clear();
    out.resize(tokens.len() * vocab, 0.0);
    for (row, &t) in out.chunks_exact_mut(vocab).zip(tokens) {
        if t < vocab {
            row[t] = 1.0;
        }
    }
}

/// Row-wise argmax of `[N, C]`.
pub fn argmax_rows(m: &[f32], classes: usize) -> Vec<usize> {
    m.chunks_exact(classes)
        .map(|r| {
            r.iter()
                .enumerate()
                .fold(0, |best, (k, &v)| if v > r[best] { k } else { best })
        })
        .collect()
}

/// Checks every gradient set is finite (naming the step, tensor and index
/// otherwise), clips them together to `clip` (global norm) if given, then
/// applies one optimizer update over all `(params, grads)` pairs.
pub(crate) fn update(
    step: u64,
    pairs: Vec<(&mut [f32], &mut Params)>,
    opt: &mut dyn Optimizer,
    clip: Option<f32>,
) -> Result<()> {
    for (_, g) in &pairs {
        check_finite(g, &format!("gradients at step {step}"))?;
    }
    let (params, mut grads): (Vec<&mut [f32]>, Vec<&mut Params>) = pairs.into_iter().unzip();
    let mut slices: Vec<&mut [f32]> = grads.iter_mut().map(|g| g.as_mut_slice()).collect();
    if let Some(max) = clip {
        clip_grad_norm_parts(&mut slices, max);
    }
    let mut parts: Vec<(&mut [f32], &[f32])> = params
        .into_iter()
        .zip(slices.into_iter().map(|s| &*s))
        .collect();
    opt.step_parts(&mut parts)
}

/// The top layer's final hidden state per direction, `[B, D*S]`, from
/// `h_n` `[L*D, B, S]` (`S` the state size: `H`, or a projection's).
pub fn top_state(net: &Recurrent, h_n: &[f32], batch: usize, out: &mut Vec<f32>) {
    let c = net.config();
    let (d, h) = (c.directions(), c.state_size());
    let top = (c.num_layers - 1) * d;
    out.resize(batch * d * h, 0.0);
    for dir in 0..d {
        for b in 0..batch {
            let src = ((top + dir) * batch + b) * h;
            out[(b * d + dir) * h..(b * d + dir + 1) * h].copy_from_slice(&h_n[src..src + h]);
        }
    }
}

/// The gradient of [`top_state`]: `g` `[B, D*S]` into `grad_h_n` `[L*D, B, S]`
/// (zero elsewhere).
pub fn scatter_top_state(net: &Recurrent, g: &[f32], batch: usize, grad_h_n: &mut Vec<f32>) {
    let c = net.config();
    let (d, h) = (c.directions(), c.state_size());
    let top = (c.num_layers - 1) * d;
    grad_h_n.clear();
    grad_h_n.resize(c.num_layers * d * batch * h, 0.0);
    for dir in 0..d {
        for b in 0..batch {
            let dst = ((top + dir) * batch + b) * h;
            grad_h_n[dst..dst + h].copy_from_slice(&g[(b * d + dir) * h..(b * d + dir + 1) * h]);
        }
    }
}

/// The architectures read time-major sequences and concatenated
/// directions (their heads take `[.., D*H]` features): a `batch_first` or
/// `merge = sum` configuration is an error naming the argument.
pub(crate) fn check_layout(config: &NetConfig) -> Result<()> {
    if config.batch_first {
        return Err(crate::Error::Config(
            "batch_first: the architectures take time-major sequences [T, B, F]".into(),
        ));
    }
    if config.merge != crate::config::Merge::Concat {
        return Err(crate::Error::Config(
            "merge: the architectures concatenate the two directions (merge = concat)".into(),
        ));
    }
    Ok(())
}

/// A recurrent network and a head with their training buffers.
#[derive(Clone, Debug)]
pub(crate) struct Body {
    pub net: Recurrent,
    pub head: Linear,
    pub tape: Tape,
    pub net_grads: Gradients,
    pub head_grads: Params,
    pub steps: u64,
}

impl Body {
    pub fn new(net: Recurrent, head: Linear) -> Self {
        let net_grads = Gradients::for_net(&net);
        let head_grads = head.params().zeros_like();
        Self {
            net,
            head,
            tape: Default::default(),
            net_grads,
            head_grads,
            steps: 0,
        }
    }

    /// A network from `config` and a head from its top layer's outputs
    /// (`D*S` features, `S` the state size) to `outputs` values, seeded from
    /// `config.seed + 1`.
    /// The head is made first, so its errors come first. Errors: invalid
    /// sizes, a configuration the architectures do not take.
    pub fn with_head(config: NetConfig, outputs: usize) -> Result<Self> {
        check_layout(&config)?;
        let features = config.directions() * config.state_size();
        let head = Linear::new(features, outputs, true, config.seed.wrapping_add(1))?;
        Ok(Self::new(Recurrent::new(config)?, head))
    }

    /// Backward through the head applied at every step of the network's
    /// outputs `y` and then through the network: from `dout`, the gradient
    /// w.r.t. the head's outputs, through `dy` (w.r.t. `y`, resized) into
    /// the head's and the network's gradients.
    pub fn backward_per_step(&mut self, y: &[f32], dout: &[f32], dy: &mut Vec<f32>) -> Result<()> {
        self.head.backward(y, dout, dy, &mut self.head_grads)?;
        self.net
            .backward(&mut self.tape, OutputGrads::new(dy), &mut self.net_grads)
    }

    /// The `(parameters, gradients)` of the network and of the head, in
    /// the order of the optimizer's state.
    pub fn parts(&mut self) -> [(&mut [f32], &mut Params); 2] {
        [
            (self.net.params_mut(), &mut self.net_grads.params),
            (self.head.params_mut(), &mut self.head_grads),
        ]
    }

    /// Optimizer update over the network's and the head's parameters.
    pub fn update(&mut self, opt: &mut dyn Optimizer, clip: Option<f32>) -> Result<()> {
        self.steps += 1;
        let step = self.steps;
        update(step, self.parts().into(), opt, clip)
    }
}
