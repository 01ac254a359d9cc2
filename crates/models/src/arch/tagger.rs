//! Many-to-many aligned: a class per time step.

use super::{Body, argmax_rows};
use crate::config::NetConfig;
use crate::error::{Error, Result};
use crate::loss::softmax_cross_entropy;
use crate::net::{Output, Recurrent, SeqInput};
use crate::optim::Optimizer;

/// Many-to-many tagger: `logits [T, B, C] = Linear(y)` at every step,
/// trained with softmax cross-entropy averaged over the valid steps.
#[derive(Clone, Debug)]
pub struct SequenceTagger {
    body: Body,
    classes: usize,
    y: Vec<f32>,
    last: Output,
    logits: Vec<f32>,
    dlogits: Vec<f32>,
    dy: Vec<f32>,
    valid_logits: Vec<f32>,
    valid_targets: Vec<usize>,
    valid_grad: Vec<f32>,
}

impl SequenceTagger {
    /// A network from `config` and a per-step head to `classes` classes.
    pub fn new(config: NetConfig, classes: usize) -> Result<Self> {
        Ok(Self {
            body: Body::with_head(config, classes)?,
            classes,
            y: Vec::new(),
            last: Output::default(),
            logits: Vec::new(),
            dlogits: Vec::new(),
            dy: Vec::new(),
            valid_logits: Vec::new(),
            valid_targets: Vec::new(),
            valid_grad: Vec::new(),
        })
    }

    /// The recurrent network.
    pub fn net(&self) -> &Recurrent {
        &self.body.net
    }

    /// The recurrent network, mutable.
    pub fn net_mut(&mut self) -> &mut Recurrent {
        &mut self.body.net
    }

    /// The final states `h_n` (and `c_n`) of the last forward pass (`y` left
    /// empty): what truncated BPTT carries to the next chunk.
    pub fn last_states(&self) -> &Output {
        &self.last
    }

    /// Logits `[T, B, C]`.
    pub fn logits(&mut self, input: SeqInput<'_>) -> Result<&[f32]> {
        let mut out = self.body.net.forward_train(input, &mut self.body.tape)?;
        self.y = std::mem::take(&mut out.y);
        self.last = out;
        self.body.head.forward(&self.y, &mut self.logits)?;
        Ok(&self.logits)
    }

    /// The predicted class at every step, `[T, B]`.
    pub fn predict(&mut self, input: SeqInput<'_>) -> Result<Vec<usize>> {
        let classes = self.classes;
        Ok(argmax_rows(self.logits(input)?, classes))
    }

    /// One training step with `targets` `[T, B]` (entries past a sequence's
    /// length are ignored). Returns the mean cross-entropy over valid steps.
    pub fn train_step(
        &mut self,
        input: SeqInput<'_>,
        targets: &[usize],
        opt: &mut dyn Optimizer,
        clip: Option<f32>,
    ) -> Result<f64> {
        let (t, b, c) = (input.seq_len, input.batch, self.classes);
        if targets.len() != t * b {
            return Err(Error::shape("targets", &[t, b], &[targets.len()]));
        }
        self.logits(input)?;
        // Gather the valid steps, take the loss there, scatter its gradient.
        let valid = |k: usize| input.lengths.is_none_or(|l| k / b < l[k % b]);
        self.valid_logits.clear();
        self.valid_targets.clear();
        for k in (0..t * b).filter(|&k| valid(k)) {
            self.valid_logits
                .extend_from_slice(&self.logits[k * c..(k + 1) * c]);
            self.valid_targets.push(targets[k]);
        }
        self.valid_grad.resize(self.valid_logits.len(), 0.0);
        let loss = softmax_cross_entropy(
            &self.valid_logits,
            c,
            &self.valid_targets,
            &mut self.valid_grad,
        )?;
        self.dlogits.clear();
        self.dlogits.resize(t * b * c, 0.0);
        for (row, k) in (0..t * b).filter(|&k| valid(k)).enumerate() {
            self.dlogits[k * c..(k + 1) * c]
                .copy_from_slice(&self.valid_grad[row * c..(row + 1) * c]);
        }
        self.body
            .backward_per_step(&self.y, &self.dlogits, &mut self.dy)?;
        self.body.update(opt, clip)?;
        Ok(loss)
    }
}
