//! The optimizer around an update rule: the rule's hyper-parameters, its
//! per-parameter state and its step count, with [`Optimizer`] implemented
//! once for every rule.

use super::Optimizer;
use crate::error::{Error, Result};

/// The most per-parameter state buffers a rule keeps (RMSProp's: the
/// squared-gradient average, the gradient average and the momentum).
pub const STATE_BUFFERS: usize = 3;

/// Each state buffer's entries for the parameters of one update (an empty
/// slice for a buffer the rule does not use).
pub type State<'a> = [&'a mut [f32]; STATE_BUFFERS];

/// What tells SGD, Adam and RMSProp apart, implemented by their
/// hyper-parameters: which state buffers they use and the update of the
/// parameters. [`Stateful`] does what they share (the state's sizing and
/// reset, the step count, the learning rate), so each rule is only its
/// arithmetic.
pub trait Rule: Copy + Send {
    /// Which of the [`STATE_BUFFERS`] buffers these hyper-parameters use;
    /// the others are never allocated.
    fn buffers(&self) -> [bool; STATE_BUFFERS];

    /// Checks the hyper-parameters; errors name the first out of range.
    fn check(&self) -> Result<()>;

    /// The learning rate in these hyper-parameters.
    fn lr_mut(&mut self) -> &mut f64;

    /// Updates `params` from `grads` (same length) at update `step` (1 for
    /// the first since the state was created or reset), with the
    /// parameters' `state`.
    fn apply(&self, step: u64, params: &mut [f32], grads: &[f32], state: State<'_>);
}

/// An optimizer: the hyper-parameters `H` of an update rule
/// ([`super::AdamConfig`], [`super::RmsPropConfig`], [`super::SgdConfig`])
/// with the rule's state, the per-parameter buffers it uses (sized at the
/// first update) and the number of updates begun. [`super::Adam`],
/// [`super::RmsProp`] and [`super::Sgd`] are its kinds.
#[derive(Clone, Debug)]
pub struct Stateful<H> {
    config: H,
    buffers: [Vec<f32>; STATE_BUFFERS],
    steps: u64,
}

impl<H: Rule> Stateful<H> {
    /// An optimizer with hyper-parameters `config` and no state yet.
    ///
    /// Errors: a hyper-parameter that is not finite, negative, or above its
    /// bound (Adam's betas below 1, RMSProp's `alpha` at most 1); SGD's
    /// Nesterov momentum without a momentum or with dampening.
    pub fn new(config: H) -> Result<Self> {
        config.check()?;
        Ok(Self {
            config,
            buffers: Default::default(),
            steps: 0,
        })
    }

    /// Sizes the used buffers to `len` when empty, or checks they have that
    /// length. The memory is reserved fallibly for all of them before any is
    /// sized: no memory is an error ([`Error::OutOfMemory`]) that leaves the
    /// state as it was.
    fn size_buffers(&mut self, len: usize) -> Result<()> {
        let used = self.config.buffers();
        let mut buffers = self.buffers.iter().zip(used);
        if let Some((b, _)) = buffers.find(|(b, u)| *u && !b.is_empty() && b.len() != len) {
            return Err(Error::shape("params", &[b.len()], &[len]));
        }
        for (b, u) in self.buffers.iter_mut().zip(used) {
            if u && b.is_empty() {
                crate::alloc::reserve(b, len, "optimizer state")?;
            }
        }
        for (b, u) in self.buffers.iter_mut().zip(used) {
            if u {
                b.resize(len, 0.0);
            }
        }
        Ok(())
    }
}

impl<H: Rule> Optimizer for Stateful<H> {
    fn begin(&mut self, len: usize) -> Result<()> {
        self.size_buffers(len)?;
        self.steps += 1;
        Ok(())
    }

    fn update(&mut self, offset: usize, params: &mut [f32], grads: &[f32]) {
        let range = offset..offset + params.len();
        let state = self.buffers.each_mut().map(|b| {
            if b.is_empty() {
                &mut [][..]
            } else {
                &mut b[range.clone()]
            }
        });
        self.config.apply(self.steps, params, grads, state);
    }

    fn lr(&self) -> f64 {
        // The hyper-parameters are `Copy`: read the rate from a copy.
        let mut config = self.config;
        *config.lr_mut()
    }

    fn set_lr(&mut self, lr: f64) {
        *self.config.lr_mut() = lr;
    }

    fn reset(&mut self) {
        self.buffers.iter_mut().for_each(Vec::clear);
        self.steps = 0;
    }
}
