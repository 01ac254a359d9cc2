//! Many-to-one: a class per sequence, read from the final hidden states.

use super::{Body, argmax_rows, scatter_top_state, top_state};
use crate::config::NetConfig;
use crate::error::Result;
use crate::loss::softmax_cross_entropy;
use crate::net::{OutputGrads, Recurrent, SeqInput};
use crate::optim::Optimizer;

/// Many-to-one classifier: `logits [B, C] = Linear(top layer's h_n)`
/// (directions concatenated), trained with softmax cross-entropy. Variable
/// lengths are honoured through `h_n` (each sequence's last valid step).
#[derive(Clone, Debug)]
pub struct SequenceClassifier {
    body: Body,
    classes: usize,
    feat: Vec<f32>,
    logits: Vec<f32>,
    dlogits: Vec<f32>,
    dfeat: Vec<f32>,
    grad_h_n: Vec<f32>,
    grad_y: Vec<f32>,
}

impl SequenceClassifier {
    /// A network from `config` and a head to `classes` classes (seeded from
    /// `config.seed + 1`). Errors: invalid sizes.
    pub fn new(config: NetConfig, classes: usize) -> Result<Self> {
        Ok(Self {
            body: Body::with_head(config, classes)?,
            classes,
            feat: Vec::new(),
            logits: Vec::new(),
            dlogits: Vec::new(),
            dfeat: Vec::new(),
            grad_h_n: Vec::new(),
            grad_y: Vec::new(),
        })
    }

    /// The recurrent network.
    pub fn net(&self) -> &Recurrent {
        &self.body.net
    }

    /// Logits `[B, C]` for `input` (`x` `[T, B, I]`, optional lengths).
    pub fn logits(&mut self, input: SeqInput<'_>) -> Result<&[f32]> {
        let out = self.body.net.forward_train(input, &mut self.body.tape)?;
        top_state(&self.body.net, &out.h_n, input.batch, &mut self.feat);
        self.body.head.forward(&self.feat, &mut self.logits)?;
        Ok(&self.logits)
    }

    /// The predicted class of each sequence, `[B]`.
    pub fn predict(&mut self, input: SeqInput<'_>) -> Result<Vec<usize>> {
        let classes = self.classes;
        Ok(argmax_rows(self.logits(input)?, classes))
    }

    /// One training step on a batch with `targets` `[B]`: returns the mean
    /// cross-entropy before the update. Errors: shapes, a target out of range,
    /// a NaN/Inf gradient (named, with the step; nothing updated).
    pub fn train_step(
        &mut self,
        input: SeqInput<'_>,
        targets: &[usize],
        opt: &mut dyn Optimizer,
        clip: Option<f32>,
    ) -> Result<f64> {
        self.logits(input)?;
        self.dlogits.resize(self.logits.len(), 0.0);
        let loss = softmax_cross_entropy(&self.logits, self.classes, targets, &mut self.dlogits)?;
        let b = &mut self.body;
        b.head.backward(
            &self.feat,
            &self.dlogits,
            &mut self.dfeat,
            &mut b.head_grads,
        )?;
        scatter_top_state(&b.net, &self.dfeat, input.batch, &mut self.grad_h_n);
        let c = b.net.config();
        self.grad_y.clear();
        self.grad_y
            .resize(input.seq_len * input.batch * c.output_size(), 0.0);
        b.net.backward(
            &mut b.tape,
            OutputGrads::new(&self.grad_y).h_n(&self.grad_h_n),
            &mut b.net_grads,
        )?;
        b.update(opt, clip)?;
        Ok(loss)
    }
}
