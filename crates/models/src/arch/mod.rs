//! The seed's four sequence architectures, composed from a [`Recurrent`]
//! network and a [`Linear`] read-out head:
//!
//! - [`SequenceClassifier`]: many-to-one (a class per sequence, from the
//!   final states);
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
mod seq2seq;
mod tagger;

pub use classifier::SequenceClassifier;
pub use generator::SequenceGenerator;
pub use seq2seq::Seq2Seq;
pub use tagger::SequenceTagger;

use crate::error::Result;
use crate::linear::Linear;
use crate::net::Recurrent;
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

/// The top layer's final hidden state per direction, `[B, D*H]`, from
/// `h_n` `[L*D, B, H]`.
pub fn top_state(net: &Recurrent, h_n: &[f32], batch: usize, out: &mut Vec<f32>) {
    let c = net.config();
    let (d, h) = (c.directions(), c.hidden_size);
    let top = (c.num_layers - 1) * d;
    out.resize(batch * d * h, 0.0);
    for dir in 0..d {
        for b in 0..batch {
            let src = ((top + dir) * batch + b) * h;
            out[(b * d + dir) * h..(b * d + dir + 1) * h].copy_from_slice(&h_n[src..src + h]);
        }
    }
}

/// The gradient of [`top_state`]: `g` `[B, D*H]` into `grad_h_n` `[L*D, B, H]`
/// (zero elsewhere).
pub fn scatter_top_state(net: &Recurrent, g: &[f32], batch: usize, grad_h_n: &mut Vec<f32>) {
    let c = net.config();
    let (d, h) = (c.directions(), c.hidden_size);
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

/// A recurrent network and a head with their training buffers.
#[derive(Clone, Debug)]
pub(crate) struct Body {
    pub net: Recurrent,
    pub head: Linear,
    pub tape: crate::net::Tape,
    pub net_grads: crate::net::Gradients,
    pub head_grads: Params,
    pub steps: u64,
}

impl Body {
    pub fn new(net: Recurrent, head: Linear) -> Self {
        let net_grads = crate::net::Gradients::for_net(&net);
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

    /// Optimizer update over the network's and the head's parameters.
    pub fn update(&mut self, opt: &mut dyn Optimizer, clip: Option<f32>) -> Result<()> {
        self.steps += 1;
        let Self {
            net,
            head,
            net_grads,
            head_grads,
            steps,
            ..
        } = self;
        update(
            *steps,
            vec![
                (net.params_mut(), &mut net_grads.params),
                (head.params_mut(), head_grads),
            ],
            opt,
            clip,
        )
    }
}
