//! The epoch loop: shuffled mini-batches, one all-reduce per step, the
//! update, validation, early stopping, the best epoch restored.

use std::time::Instant;

use super::reduce::{AllReduce, check_same, checksum, slice_of};
use crate::alloc;
use crate::error::{Error, Result};
use crate::optim::{Optimizer, clip_grad_norm};
use crate::rng::SplitMix64;

/// A model bound to its examples (numbered `0..n` by the caller), as the
/// [`Trainer`] fits it. Losses are per example and summed: the trainer
/// divides by the global batch size, so that slices of one batch on
/// several workers add up to the batch's mean.
pub trait Objective {
    /// The parameter buffers, in a fixed order: the flat parameter and
    /// gradient vectors the trainer uses are their concatenation (and the
    /// optimizer's state follows that order).
    fn params_mut(&mut self) -> Vec<&mut [f32]>;

    /// A training pass (dropout applies) over `examples`: returns the sum
    /// of their losses and writes its gradient into `grads` (the flat
    /// vector, overwritten).
    fn loss_and_grads(&mut self, examples: &[usize], grads: &mut [f32]) -> Result<f64>;

    /// The sum of the losses of `examples`, by inference (no dropout).
    fn loss(&mut self, examples: &[usize]) -> Result<f64>;

    /// The name of element `index` of the flat parameter vector, for error
    /// messages (`weight_hh_l0[17]`).
    fn param_name(&self, index: usize) -> String {
        format!("parameter {index}")
    }
}

/// How the [`Trainer`] runs.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainerConfig {
    /// The most epochs to run (at least 1).
    pub epochs: usize,
    /// Examples per global batch (at least 1), split among the workers.
    pub batch_size: usize,
    /// Stop after this many epochs without a better validation loss (0:
    /// never stop early).
    pub patience: usize,
    /// Clip the global gradient norm to this value (`None`: no clipping).
    pub clip: Option<f32>,
    /// Seeds the shuffling of the training examples (the same on every
    /// worker).
    pub seed: u64,
    /// Compare the workers' parameters (a checksum) after every epoch; a
    /// mismatch is an error naming the epoch.
    pub check_replicas: bool,
}

impl TrainerConfig {
    /// `epochs` epochs of batches of `batch_size`, no early stopping, no
    /// clipping, seed 0, no replica check.
    pub fn new(epochs: usize, batch_size: usize) -> Self {
        Self {
            epochs,
            batch_size,
            patience: 0,
            clip: None,
            seed: 0,
            check_replicas: false,
        }
    }
}

/// What an epoch gave, as the trainer reports it after each one.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochReport {
    /// 1-based.
    pub epoch: usize,
    /// Mean training loss over the epoch's batches (as the weights were
    /// at each step).
    pub train_loss: f64,
    /// Mean validation loss after the epoch (the training loss when there
    /// is no validation example).
    pub val_loss: f64,
    /// The best epoch so far and its validation loss.
    pub best_epoch: usize,
    /// See `best_epoch`.
    pub best_val: f64,
    /// Examples trained on so far (all workers).
    pub examples: usize,
    /// Seconds since the fit began.
    pub seconds: f64,
}

/// A finished fit.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct History {
    /// Per epoch: the mean training loss.
    pub train_loss: Vec<f64>,
    /// Per epoch: the mean validation loss.
    pub val_loss: Vec<f64>,
    /// Per step: the global batch's mean loss before its update.
    pub step_loss: Vec<f64>,
    /// The epoch whose weights the model holds now (1-based).
    pub best_epoch: usize,
    /// Its validation loss.
    pub best_val: f64,
    /// Whether the fit stopped before `epochs` (patience ran out).
    pub early_stopped: bool,
    /// Wall-clock seconds of the fit.
    pub seconds: f64,
    /// Seconds spent in the all-reduce of the gradients (part of `seconds`).
    pub reduce_seconds: f64,
}

/// Runs the epochs: see the [module docs](super).
pub struct Trainer<'r> {
    config: TrainerConfig,
    reduce: &'r mut dyn AllReduce,
}

impl<'r> Trainer<'r> {
    /// A trainer that combines the workers' gradients with `reduce` (a
    /// [`super::SingleProcess`] for one process). Errors: zero epochs or
    /// batch size, a clip that is not positive and finite.
    pub fn new(config: TrainerConfig, reduce: &'r mut dyn AllReduce) -> Result<Self> {
        if config.epochs == 0 {
            return Err(Error::ZeroSize { what: "epochs" });
        }
        if config.batch_size == 0 {
            return Err(Error::ZeroSize { what: "batch_size" });
        }
        if let Some(c) = config.clip {
            if !(c.is_finite() && c > 0.0) {
                return Err(Error::Config(format!("clip = {c}: a positive finite norm")));
            }
        }
        Ok(Self { config, reduce })
    }

    /// Fits `task` on the examples `train`, selecting on `val`: worker 0's
    /// parameters are first copied to every worker; each epoch shuffles
    /// `train` (the same order everywhere), each global batch is split into
    /// contiguous slices ([`super::slice_of`]), each worker's loss sum and
    /// gradient go through one [`AllReduce::sum`], and every worker divides
    /// by the batch size, checks the gradient is finite, clips it and
    /// applies `opt`. The validation loss is split and summed the same way.
    /// At the end `task` holds the best epoch's parameters. `on_epoch` sees
    /// each epoch's report.
    ///
    /// Errors: a non-finite loss or gradient (naming the epoch, the step
    /// and the parameter; nothing updated at that step), the task's and the
    /// optimizer's errors, the all-reduce's, and replicas that differ
    /// ([`TrainerConfig::check_replicas`]).
    pub fn fit(
        &mut self,
        task: &mut dyn Objective,
        opt: &mut dyn Optimizer,
        train: &[usize],
        val: &[usize],
        on_epoch: &mut dyn FnMut(&EpochReport),
    ) -> Result<History> {
        let started = Instant::now();
        let c = self.config.clone();
        let (rank, world) = (self.reduce.rank(), self.reduce.world_size());
        let n = task.params_mut().iter().map(|p| p.len()).sum::<usize>();
        // The flat parameters (broadcast, best-epoch snapshot) and the one
        // buffer that goes through the all-reduce: the gradient, then the
        // batch's loss sum.
        let mut params = alloc::zeros(n, "the flat parameters")?;
        let mut best_params = alloc::zeros(n, "the best epoch's parameters")?;
        let mut buf = alloc::zeros(n + 1, "the flat gradient")?;
        read_params(task, &mut params);
        self.reduce.broadcast(&mut params)?;
        write_params(task, &params);
        best_params.copy_from_slice(&params);

        let mut order = train.to_vec();
        let mut rng = SplitMix64::new(c.seed ^ 0x5DEE_CE66_D1CE_4E5B);
        let mut h = History::default();
        let (mut best_epoch, mut best_val, mut since_best) = (0usize, f64::INFINITY, 0usize);
        let mut examples = 0usize;
        for epoch in 1..=c.epochs {
            shuffle(&mut rng, &mut order);
            let mut epoch_sum = 0.0f64;
            for batch in order.chunks(c.batch_size) {
                let step = h.step_loss.len() + 1;
                let mine = &batch[slice_of(batch.len(), rank, world)];
                let (grads, loss_slot) = buf.split_at_mut(n);
                let local = if mine.is_empty() {
                    grads.fill(0.0);
                    0.0
                } else {
                    task.loss_and_grads(mine, grads)?
                };
                loss_slot[0] = local as f32;
                let t = Instant::now();
                self.reduce.sum(&mut buf)?;
                h.reduce_seconds += t.elapsed().as_secs_f64();
                let scale = 1.0 / batch.len() as f32;
                let loss = f64::from(buf[n]) / batch.len() as f64;
                let where_ = || format!("epoch {epoch}, step {step}");
                if !loss.is_finite() {
                    return Err(Error::NonFinite(format!(
                        "training diverged at {}: the loss is {loss} (try a lower learning rate or clipping)",
                        where_()
                    )));
                }
                let grads = &mut buf[..n];
                grads.iter_mut().for_each(|g| *g *= scale);
                if let Some(i) = grads.iter().position(|g| !g.is_finite()) {
                    return Err(Error::NonFinite(format!(
                        "training diverged at {}: the gradient of {} is {}",
                        where_(),
                        task.param_name(i),
                        grads[i]
                    )));
                }
                if let Some(max) = c.clip {
                    clip_grad_norm(grads, max);
                }
                step_params(task, opt, grads)?;
                h.step_loss.push(loss);
                epoch_sum += loss * batch.len() as f64;
                examples += batch.len();
            }
            let train_loss = epoch_sum / train.len().max(1) as f64;
            let val_loss = if val.is_empty() {
                train_loss
            } else {
                let mine = &val[slice_of(val.len(), rank, world)];
                let mut sum = [if mine.is_empty() {
                    0.0
                } else {
                    task.loss(mine)? as f32
                }];
                self.reduce.sum(&mut sum)?;
                f64::from(sum[0]) / val.len() as f64
            };
            if !val_loss.is_finite() {
                return Err(Error::NonFinite(format!(
                    "training diverged at epoch {epoch}: the validation loss is {val_loss}"
                )));
            }
            h.train_loss.push(train_loss);
            h.val_loss.push(val_loss);
            if c.check_replicas {
                self.check_replicas(task, epoch)?;
            }
            if val_loss < best_val {
                (best_epoch, best_val, since_best) = (epoch, val_loss, 0);
                read_params(task, &mut best_params);
            } else {
                since_best += 1;
            }
            on_epoch(&EpochReport {
                epoch,
                train_loss,
                val_loss,
                best_epoch,
                best_val,
                examples,
                seconds: started.elapsed().as_secs_f64(),
            });
            if c.patience > 0 && since_best >= c.patience {
                h.early_stopped = epoch < c.epochs;
                break;
            }
        }
        write_params(task, &best_params);
        h.best_epoch = best_epoch;
        h.best_val = best_val;
        h.seconds = started.elapsed().as_secs_f64();
        Ok(h)
    }

    /// Every worker compares its parameters' checksum with worker 0's; a
    /// difference anywhere is an error on every worker.
    fn check_replicas(&mut self, task: &mut dyn Objective, epoch: usize) -> Result<()> {
        let mine = checksum(task.params_mut().iter().map(|p| &**p));
        check_same(
            &mut *self.reduce,
            mine,
            &format!("the parameters after epoch {epoch}"),
        )
    }
}

/// Fisher-Yates, drawing `j` in `0..=i` as `next % (i + 1)`.
fn shuffle(rng: &mut SplitMix64, v: &mut [usize]) {
    for i in (1..v.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
}

/// The task's parameters into the flat `out`.
fn read_params(task: &mut dyn Objective, out: &mut [f32]) {
    let mut at = 0;
    for p in task.params_mut() {
        out[at..at + p.len()].copy_from_slice(p);
        at += p.len();
    }
}

/// The flat `values` into the task's parameters.
fn write_params(task: &mut dyn Objective, values: &[f32]) {
    let mut at = 0;
    for p in task.params_mut() {
        let len = p.len();
        p.copy_from_slice(&values[at..at + len]);
        at += len;
    }
}

/// One optimizer update of the task's parameter buffers from the flat
/// gradient.
fn step_params(task: &mut dyn Objective, opt: &mut dyn Optimizer, grads: &[f32]) -> Result<()> {
    let mut at = 0;
    let mut parts: Vec<(&mut [f32], &[f32])> = task
        .params_mut()
        .into_iter()
        .map(|p| {
            let g = &grads[at..at + p.len()];
            at += p.len();
            (p, g)
        })
        .collect();
    opt.step_parts(&mut parts)
}
