//! One-to-many: a sequence of values generated from one input vector.

use super::Body;
use crate::alloc;
use crate::config::NetConfig;
use crate::error::{Error, Result, check_len};
use crate::loss::mse;
use crate::net::SeqInput;
use crate::optim::Optimizer;

/// One-to-many generator: the input vector `v` `[B, I]` is the input at the
/// first step and zeros follow; the outputs `[T, B, O] = Linear(y)` are
/// trained with mean squared error.
#[derive(Clone, Debug)]
pub struct SequenceGenerator {
    body: Body,
    outputs: usize,
    x: Vec<f32>,
    y: Vec<f32>,
    pred: Vec<f32>,
    dpred: Vec<f32>,
    dy: Vec<f32>,
}

impl SequenceGenerator {
    /// A network from `config` (unidirectional) and a head to `outputs` values
    /// per step.
    pub fn new(config: NetConfig, outputs: usize) -> Result<Self> {
        if config.bidirectional {
            return Err(Error::Config(
                "a generator runs forward in time: bidirectional = false".into(),
            ));
        }
        Ok(Self {
            body: Body::with_head(config, outputs)?,
            outputs,
            x: Vec::new(),
            y: Vec::new(),
            pred: Vec::new(),
            dpred: Vec::new(),
            dy: Vec::new(),
        })
    }

    /// The generated sequences `[T, B, O]` from `v` `[B, I]`.
    pub fn generate(&mut self, v: &[f32], seq_len: usize, batch: usize) -> Result<&[f32]> {
        let i = self.body.net.config().input_size;
        check_len("v", v, &[batch, i])?;
        if seq_len == 0 {
            return Err(Error::ZeroSize { what: "seq_len" });
        }
        self.x.clear();
        let n = alloc::product(&[seq_len, batch, i], "generator input")?;
        alloc::resize(&mut self.x, n, "generator input")?;
        self.x[..batch * i].copy_from_slice(v);
        let out = self
            .body
            .net
            .forward_train(SeqInput::new(&self.x, seq_len, batch), &mut self.body.tape)?;
        self.y = out.y;
        self.body.head.forward(&self.y, &mut self.pred)?;
        Ok(&self.pred)
    }

    /// One training step towards `target` `[T, B, O]`; returns the MSE before
    /// the update.
    pub fn train_step(
        &mut self,
        v: &[f32],
        target: &[f32],
        seq_len: usize,
        batch: usize,
        opt: &mut dyn Optimizer,
        clip: Option<f32>,
    ) -> Result<f64> {
        check_len("target", target, &[seq_len, batch, self.outputs])?;
        self.generate(v, seq_len, batch)?;
        self.dpred.resize(self.pred.len(), 0.0);
        let loss = mse(&self.pred, target, &mut self.dpred)?;
        self.body
            .backward_per_step(&self.y, &self.dpred, &mut self.dy)?;
        self.body.update(opt, clip)?;
        Ok(loss)
    }
}
