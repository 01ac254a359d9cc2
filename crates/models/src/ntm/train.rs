//! Training an NTM on a [`Task`]: batches drawn from a seed, BPTT, gradient
//! clipping, RMSProp or Adam, a NaN/Inf guard, periodic held-out evaluation
//! and atomic checkpoints.

use std::path::PathBuf;
use std::time::Instant;

use super::model::{Ntm, NtmGradScratch, NtmTape};
use super::tasks::{Score, Task, TaskBatch, score};
use crate::error::{Error, Result};
use crate::optim::{
    Adam, AdamConfig, Optimizer, RmsProp, RmsPropConfig, check_finite, clip_grad_norm,
    clip_grad_value,
};
use crate::params::Params;
use crate::rng::SplitMix64;
use crate::train::{AllReduce, SingleProcess, slice_of};

/// The update rule of a training run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum NtmOptimizer {
    /// `torch.optim.RMSprop` with momentum (Graves et al. 2014 used RMSProp
    /// with momentum 0.9).
    RmsProp {
        /// Learning rate.
        lr: f64,
        /// Momentum.
        momentum: f64,
        /// Smoothing constant of the squared-gradient average.
        alpha: f64,
        /// Added to the denominator.
        eps: f64,
    },
    /// `torch.optim.Adam` (betas 0.9, 0.999; eps 1e-8).
    Adam {
        /// Learning rate.
        lr: f64,
    },
}

/// How a run updates the machine.
#[derive(Clone, Debug, PartialEq)]
pub struct NtmTrainConfig {
    /// Sequences per update.
    pub batch: usize,
    /// The update rule.
    pub optimizer: NtmOptimizer,
    /// Clamp every gradient to `[-v, v]` before the update.
    pub clip_value: Option<f32>,
    /// Rescale the gradient to this global norm at most.
    pub clip_norm: Option<f32>,
    /// Seed of the training data.
    pub seed: u64,
}

impl Default for NtmTrainConfig {
    /// Batch 1, RMSProp (lr 1e-4, momentum 0.9, alpha 0.95, eps 1e-10),
    /// gradients clamped to `[-10, 10]`: the setup of the pytorch-ntm
    /// reference implementation.
    fn default() -> Self {
        Self {
            batch: 1,
            optimizer: NtmOptimizer::RmsProp {
                lr: 1e-4,
                momentum: 0.9,
                alpha: 0.95,
                eps: 1e-10,
            },
            clip_value: Some(10.0),
            clip_norm: None,
            seed: 0,
        }
    }
}

/// The result of one update.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepStats {
    /// Mean binary cross-entropy per scored bit.
    pub loss: f64,
    /// Thresholded bit errors per sequence.
    pub bit_errors: f64,
    /// The drawn size (length, or items for recall).
    pub size: usize,
    /// Gradient norm before clipping.
    pub grad_norm: f32,
}

/// A held-out evaluation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Evaluation {
    /// Training sequences seen when it was taken.
    pub sequences: usize,
    /// Mean binary cross-entropy per scored bit.
    pub loss: f64,
    /// Thresholded bit errors per sequence.
    pub bit_errors: f64,
    /// The score on the selection set of [`TrainPlan::select`], if any.
    pub selection: Option<SelectionScore>,
}

/// The score of a machine on the selection set of [`TrainPlan::select`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SelectionScore {
    /// Mean binary cross-entropy per scored bit.
    pub loss: f64,
    /// Thresholded bit errors per sequence.
    pub bit_errors: f64,
}

/// Model selection for a run that trains past convergence. At every
/// evaluation a second held-out set, of sequences longer than the training
/// ones, is scored too; the run trains to `max_sequences` even once under
/// `stop_below`, and ends with the machine of the evaluation with the
/// lowest loss on that set among those under `stop_below` on the held-out
/// set (among all while none is). The machines of one run differ far more
/// on sequences longer than trained than on the training sizes (README,
/// NTM): some keep their heads apart and sharp, some do not; and the
/// lowest loss on long sequences can belong to a machine that has not
/// learned the trained sizes yet.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Selection {
    /// The task the selection set is drawn from (`None`: the training
    /// task), e.g. repeat copy with more repeats than trained.
    pub task: Option<Task>,
    /// Size of the selection sequences (length, or items).
    pub size: usize,
    /// Sequences in the selection set.
    pub sequences: usize,
    /// Seed of the selection set (fixed across evaluations).
    pub seed: u64,
}

/// What a run does besides updating: evaluation, checkpoints, when to stop.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainPlan {
    /// Stop after this many training sequences.
    pub max_sequences: usize,
    /// Evaluate (and checkpoint) every this many sequences.
    pub eval_every: usize,
    /// Held-out sequences per evaluation.
    pub eval_sequences: usize,
    /// Held-out size (length, or items for recall).
    pub eval_size: usize,
    /// Seed of the held-out set (fixed across evaluations).
    pub eval_seed: u64,
    /// Stop at the first evaluation with fewer bit errors per sequence.
    pub stop_below: Option<f64>,
    /// Save the machine here at every evaluation (atomically); with
    /// `select`, the machine selected so far.
    pub checkpoint: Option<PathBuf>,
    /// Train past convergence and end with the machine that scores best on
    /// a set of longer sequences.
    pub select: Option<Selection>,
}

/// The outcome of [`NtmTrainer::run`].
#[derive(Clone, Debug, PartialEq)]
pub struct TrainReport {
    /// Every evaluation, in order.
    pub evaluations: Vec<Evaluation>,
    /// Sequences at the first evaluation under `stop_below`, if any.
    pub converged_at: Option<usize>,
    /// With [`TrainPlan::select`]: the index in `evaluations` of the
    /// machine the run ended with (`None`: no selection loss was finite,
    /// the run ended with its last machine).
    pub selected: Option<usize>,
    /// Training sequences seen.
    pub sequences: usize,
    /// Wall-clock seconds of the run.
    pub seconds: f64,
}

/// Progress of a run, for a progress bar.
#[derive(Clone, Copy, Debug)]
pub enum Progress {
    /// After an update.
    Step {
        /// Sequences seen.
        sequences: usize,
        /// The update's statistics.
        stats: StepStats,
    },
    /// After an evaluation.
    Evaluated(Evaluation),
}

/// An NTM, a task and the state of its training.
pub struct NtmTrainer {
    ntm: Ntm,
    task: Task,
    config: NtmTrainConfig,
    optimizer: Box<dyn Optimizer>,
    rng: SplitMix64,
    tape: NtmTape,
    scratch: NtmGradScratch,
    grads: Params,
    batch: TaskBatch,
    /// This worker's rows of `batch` (data-parallel runs).
    local: TaskBatch,
    /// The all-reduce buffer of data-parallel runs.
    reduce_buf: Vec<f32>,
    dy: Vec<f32>,
    backup: Vec<f32>,
    sequences: usize,
}

impl NtmTrainer {
    /// A trainer for `ntm` on `task`. Errors: the machine's input or output
    /// size is not the task's, a zero batch, an invalid task or optimizer.
    pub fn new(ntm: Ntm, task: Task, config: NtmTrainConfig) -> Result<Self> {
        task.validate()?;
        let c = ntm.config();
        if c.input_size != task.input_size() || c.output_size != task.output_size() {
            return Err(Error::Config(format!(
                "the {} task needs input_size {} and output_size {}, the machine has {} and {}",
                task.name(),
                task.input_size(),
                task.output_size(),
                c.input_size,
                c.output_size
            )));
        }
        if config.batch == 0 {
            return Err(Error::ZeroSize { what: "batch" });
        }
        let optimizer: Box<dyn Optimizer> = match config.optimizer {
            NtmOptimizer::RmsProp {
                lr,
                momentum,
                alpha,
                eps,
            } => Box::new(RmsProp::new(RmsPropConfig {
                momentum,
                alpha,
                eps,
                ..RmsPropConfig::new(lr)
            })?),
            NtmOptimizer::Adam { lr } => Box::new(Adam::new(AdamConfig::new(lr))?),
        };
        Ok(Self {
            grads: ntm.zero_grads(),
            ntm,
            task,
            rng: SplitMix64::new(config.seed),
            config,
            optimizer,
            tape: NtmTape::new(),
            scratch: NtmGradScratch::default(),
            batch: TaskBatch::default(),
            local: TaskBatch::default(),
            reduce_buf: Vec::new(),
            dy: Vec::new(),
            backup: Vec::new(),
            sequences: 0,
        })
    }

    /// The machine.
    pub fn ntm(&self) -> &Ntm {
        &self.ntm
    }

    /// The machine, taken out of the trainer.
    pub fn into_ntm(self) -> Ntm {
        self.ntm
    }

    /// The task.
    pub fn task(&self) -> &Task {
        &self.task
    }

    /// Training sequences seen.
    pub fn sequences(&self) -> usize {
        self.sequences
    }

    /// One update on a freshly drawn batch. Errors: a NaN or infinity in the
    /// loss or a gradient (named with the sequence count; the machine is
    /// left unchanged), allocation.
    pub fn step(&mut self) -> Result<StepStats> {
        self.step_with(&mut SingleProcess)
    }

    /// [`NtmTrainer::step`] as one worker of a data-parallel run: every
    /// worker draws the same batch, runs its contiguous slice of the rows
    /// ([`slice_of`]), and the gradients of the loss sums go through one
    /// [`AllReduce::sum`] (with the losses, bit errors and scored bits),
    /// so that every worker applies the gradient of the whole batch's mean
    /// loss. Errors: as `step`, a batch smaller than the worker count, the
    /// all-reduce's.
    pub fn step_with(&mut self, reduce: &mut dyn AllReduce) -> Result<StepStats> {
        let size = self.task.draw_size(&mut self.rng);
        self.task
            .generate(&mut self.rng, self.config.batch, size, &mut self.batch)?;
        let (rank, world) = (reduce.rank(), reduce.world_size());
        let b = self.batch.batch;
        if b < world {
            return Err(Error::Config(format!(
                "a batch of {b} is smaller than the {world} workers: each needs a row"
            )));
        }
        let batch = if world == 1 {
            &self.batch
        } else {
            self.batch
                .rows_into(slice_of(b, rank, world), &mut self.local);
            &self.local
        };
        let t = batch.seq_len;
        self.ntm
            .forward_train(&batch.x, t, batch.batch, &mut self.tape)?;
        self.dy.resize(self.tape.y().len(), 0.0);
        let mut scored = score(self.tape.y(), batch, &mut self.dy)?;
        let at = self.sequences + b;
        if world == 1 && !scored.loss().is_finite() {
            return Err(Error::NonFinite(format!(
                "loss {} at training sequence {at}",
                scored.loss()
            )));
        }
        self.ntm.backward(
            &self.tape,
            &self.dy,
            &mut self.grads,
            None,
            &mut self.scratch,
        )?;
        if world > 1 {
            scored = self.reduce(reduce, scored, b)?;
        }
        let loss = scored.loss();
        if !loss.is_finite() {
            return Err(Error::NonFinite(format!(
                "loss {loss} at training sequence {at}"
            )));
        }
        check_finite(&self.grads, &format!("gradients at training sequence {at}"))?;
        let grads = self.grads.as_mut_slice();
        let grad_norm = match self.config.clip_norm {
            Some(max) => clip_grad_norm(grads, max),
            None => grads
                .iter()
                .map(|&g| g as f64 * g as f64)
                .sum::<f64>()
                .sqrt() as f32,
        };
        if let Some(v) = self.config.clip_value {
            clip_grad_value(grads, v);
        }
        // The update itself can overflow: keep the parameters to restore.
        self.backup.clear();
        self.backup.extend_from_slice(self.ntm.params().as_slice());
        self.optimizer
            .step(self.ntm.params_mut(), self.grads.as_slice())?;
        if let Err(e) = check_finite(
            self.ntm.params(),
            &format!("parameters after the update at training sequence {at}"),
        ) {
            self.ntm.params_mut().copy_from_slice(&self.backup);
            return Err(e);
        }
        self.sequences = at;
        Ok(StepStats {
            loss,
            bit_errors: scored.errors_per_sequence(),
            size,
            grad_norm,
        })
    }

    /// The workers' sums: this worker's gradients (of its mean over its
    /// scored bits) times its bits, its loss sum, bit errors and bits go
    /// through one all-reduce; the gradients become those of the whole
    /// batch's mean, and the score the whole batch's.
    fn reduce(&mut self, reduce: &mut dyn AllReduce, local: Score, batch: usize) -> Result<Score> {
        let grads = self.grads.as_mut_slice();
        let n = grads.len();
        crate::alloc::resize(&mut self.reduce_buf, n + 3, "the all-reduce buffer")?;
        let bits = local.bits as f32;
        for (b, g) in self.reduce_buf.iter_mut().zip(grads.iter()) {
            *b = g * bits;
        }
        self.reduce_buf[n] = local.loss_sum as f32;
        self.reduce_buf[n + 1] = local.errors as f32;
        self.reduce_buf[n + 2] = bits;
        reduce.sum(&mut self.reduce_buf)?;
        let total = self.reduce_buf[n + 2];
        let inv = 1.0 / total.max(1.0);
        for (g, b) in grads.iter_mut().zip(&self.reduce_buf) {
            *g = b * inv;
        }
        Ok(Score {
            sequences: batch,
            loss_sum: f64::from(self.reduce_buf[n]),
            errors: self.reduce_buf[n + 1] as usize,
            bits: total as usize,
        })
    }

    /// Loss and bit errors per sequence on `sequences` held-out sequences of
    /// the given size drawn from `seed` (in batches of up to 64).
    pub fn evaluate(&mut self, size: usize, sequences: usize, seed: u64) -> Result<Evaluation> {
        let s = evaluate(&self.ntm, &self.task, size, sequences, seed)?;
        Ok(Evaluation {
            sequences: self.sequences,
            loss: s.loss(),
            bit_errors: s.errors_per_sequence(),
            selection: None,
        })
    }

    /// Trains by `plan`: updates until `max_sequences` (or convergence,
    /// unless `plan.select`), evaluating and checkpointing every
    /// `eval_every` sequences and at the end; with `plan.select`, ends with
    /// the selected machine (the optimizer's state stays that of the last
    /// update). Errors: as [`NtmTrainer::step`] (a checkpoint of the last
    /// good machine, or of the one selected so far, is kept), I/O of a
    /// checkpoint.
    pub fn run(&mut self, plan: &TrainPlan, progress: impl FnMut(Progress)) -> Result<TrainReport> {
        self.run_with(plan, &mut SingleProcess, progress)
    }

    /// [`NtmTrainer::run`] as one worker of a data-parallel run: worker
    /// 0's parameters are first copied to every worker, then each step is
    /// [`NtmTrainer::step_with`]; the held-out evaluations are split the
    /// same way ([`evaluate_with`]: the same numbers everywhere). Each
    /// worker saves the checkpoint of its `plan` (give worker 0 alone one).
    pub fn run_with(
        &mut self,
        plan: &TrainPlan,
        reduce: &mut dyn AllReduce,
        mut progress: impl FnMut(Progress),
    ) -> Result<TrainReport> {
        reduce.broadcast(self.ntm.params_mut())?;
        if plan.eval_every == 0 {
            return Err(Error::ZeroSize { what: "eval_every" });
        }
        let start = Instant::now();
        let mut report = TrainReport {
            evaluations: Vec::new(),
            converged_at: None,
            selected: None,
            sequences: self.sequences,
            seconds: 0.0,
        };
        // The selected machine's parameters, whether it was under
        // `stop_below` on the held-out set, and its selection loss.
        let mut best: Option<(Vec<f32>, bool, f64)> = None;
        // Saturating: `eval_every` comes from the user (an evaluation past
        // usize::MAX sequences is one at the end).
        let mut next_eval = self.sequences.saturating_add(plan.eval_every);
        while self.sequences < plan.max_sequences {
            let stats = self.step_with(reduce)?;
            progress(Progress::Step {
                sequences: self.sequences,
                stats,
            });
            let last = self.sequences >= plan.max_sequences;
            if self.sequences >= next_eval || last {
                next_eval = next_eval.saturating_add(plan.eval_every);
                let s = evaluate_with(
                    &self.ntm,
                    &self.task,
                    plan.eval_size,
                    plan.eval_sequences,
                    plan.eval_seed,
                    reduce,
                )?;
                let selection = match &plan.select {
                    Some(sel) => {
                        let s = evaluate_with(
                            &self.ntm,
                            sel.task.as_ref().unwrap_or(&self.task),
                            sel.size,
                            sel.sequences,
                            sel.seed,
                            reduce,
                        )?;
                        Some(SelectionScore {
                            loss: s.loss(),
                            bit_errors: s.errors_per_sequence(),
                        })
                    }
                    None => None,
                };
                let e = Evaluation {
                    sequences: self.sequences,
                    loss: s.loss(),
                    bit_errors: s.errors_per_sequence(),
                    selection,
                };
                if !e.loss.is_finite() {
                    return Err(Error::NonFinite(format!(
                        "held-out loss {} after {} training sequences",
                        e.loss, self.sequences
                    )));
                }
                let under = plan.stop_below.is_some_and(|s| e.bit_errors < s);
                if under && report.converged_at.is_none() {
                    report.converged_at = Some(self.sequences);
                }
                // A converged machine beats any that is not; among either,
                // the lower selection loss wins.
                if let Some(sel) = selection
                    && sel.loss.is_finite()
                    && best
                        .as_ref()
                        .is_none_or(|&(_, b_under, b_loss)| match (under, b_under) {
                            (true, false) => true,
                            (false, true) => false,
                            _ => sel.loss < b_loss,
                        })
                {
                    let mut params = best.take().map(|(p, ..)| p).unwrap_or_default();
                    let current = self.ntm.params().as_slice();
                    params.clear();
                    crate::alloc::reserve(&mut params, current.len(), "selected parameters")?;
                    params.extend_from_slice(current);
                    best = Some((params, under, sel.loss));
                    report.selected = Some(report.evaluations.len());
                }
                progress(Progress::Evaluated(e));
                report.evaluations.push(e);
                if let Some(path) = &plan.checkpoint {
                    match &best {
                        Some((params, ..)) => self.selected_ntm(params)?.save(path)?,
                        None => self.ntm.save(path)?,
                    }
                }
                if plan.select.is_none() && report.converged_at.is_some() {
                    break;
                }
            }
        }
        if let Some((params, ..)) = &best {
            self.ntm.params_mut().copy_from_slice(params);
        }
        report.sequences = self.sequences;
        report.seconds = start.elapsed().as_secs_f64();
        Ok(report)
    }

    /// A copy of the machine with the parameters `params` (the selected
    /// ones), for its checkpoint.
    fn selected_ntm(&self, params: &[f32]) -> Result<Ntm> {
        let mut ntm = self.ntm.try_clone()?;
        ntm.params_mut().copy_from_slice(params);
        Ok(ntm)
    }
}

/// The score of `ntm` on `sequences` held-out sequences of `task` with the
/// given size, drawn from `seed`, in batches of up to 64. Errors: zero
/// sequences or size, allocation.
pub fn evaluate(ntm: &Ntm, task: &Task, size: usize, sequences: usize, seed: u64) -> Result<Score> {
    evaluate_with(ntm, task, size, sequences, seed, &mut SingleProcess)
}

/// [`evaluate`] as one worker of a data-parallel run: every worker draws
/// the same held-out batches, scores its contiguous slice of their rows,
/// and the loss sums, bit errors and bits are summed over the workers (the
/// same score everywhere). Errors: as `evaluate`, the all-reduce's.
pub fn evaluate_with(
    ntm: &Ntm,
    task: &Task,
    size: usize,
    sequences: usize,
    seed: u64,
    reduce: &mut dyn AllReduce,
) -> Result<Score> {
    if sequences == 0 {
        return Err(Error::ZeroSize { what: "sequences" });
    }
    let (rank, world) = (reduce.rank(), reduce.world_size());
    let mut rng = SplitMix64::new(seed);
    let (mut batch, mut mine) = (TaskBatch::default(), TaskBatch::default());
    let mut tape = NtmTape::new();
    let mut dy = Vec::new();
    let mut total = Score::default();
    let mut drawn = 0;
    while drawn < sequences {
        let b = (sequences - drawn).min(64);
        drawn += b;
        task.generate(&mut rng, b, size, &mut batch)?;
        let part = if world == 1 {
            &batch
        } else {
            let rows = slice_of(b, rank, world);
            if rows.is_empty() {
                continue;
            }
            batch.rows_into(rows, &mut mine);
            &mine
        };
        ntm.forward_into(&part.x, part.seq_len, part.batch, &mut tape)?;
        dy.resize(tape.y().len(), 0.0);
        total.add(&score(tape.y(), part, &mut dy)?);
    }
    if world > 1 {
        let mut sums = [
            total.loss_sum as f32,
            total.errors as f32,
            total.bits as f32,
        ];
        reduce.sum(&mut sums)?;
        total = Score {
            sequences,
            loss_sum: f64::from(sums[0]),
            errors: sums[1] as usize,
            bits: sums[2] as usize,
        };
    }
    Ok(total)
}
